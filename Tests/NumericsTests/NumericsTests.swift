// Each kernel against a naive reference, and each layer's backward against central finite
// differences of its own forward (loss = Σ r·out with a random projection r, in float64).
import BLASKernel
import Foundation
import Numerics
import SeededRandom
import XCTest

func randomArray(_ n: Int, _ rng: inout SeededGenerator, scale: Double = 1) -> [Float] {
    (0..<n).map { _ in Float(rng.nextNormal() * scale) }
}

/// Checks `analytic` (∂L/∂x) against finite differences of `loss(x)` at a sample of indices.
func checkGradient(
    _ name: String, x: [Float], analytic: [Float], samples: Int = 40, h: Float = 1e-2,
    tolerance: Double = 2e-3, file: StaticString = #filePath, line: UInt = #line,
    loss: ([Float]) -> Double
) {
    var rng = SeededGenerator(seed: 99)
    let scale = analytic.map { abs(Double($0)) }.max() ?? 0
    XCTAssertGreaterThan(scale, 0, "\(name): zero gradient", file: file, line: line)
    var worst = 0.0
    for _ in 0..<samples {
        let i = Int(rng.next() % UInt64(x.count))
        var p = x, m = x
        p[i] += h; m[i] -= h
        let fd = (loss(p) - loss(m)) / Double(2 * h)
        let err = abs(fd - Double(analytic[i])) / max(scale, 1e-6)
        worst = max(worst, err)
    }
    XCTAssertLessThan(worst, tolerance, "\(name): worst finite-difference error \(worst) relative to gradient scale \(scale)", file: file, line: line)
}

func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

final class MatmulTests: XCTestCase {
    func testBLASAgreesWithNaiveReferenceForEveryTransposeAndStride() {
        var rng = SeededGenerator(seed: 1)
        for (opA, opB) in [(Op.n, Op.n), (.n, .t), (.t, .n), (.t, .t)] {
            let m = 37, n = 29, k = 53, pad = 3
            let lda = (opA == .n ? k : m) + pad, ldb = (opB == .n ? n : k) + pad, ldc = n + pad
            let a = randomArray((opA == .n ? m : k) * lda, &rng), b = randomArray((opB == .n ? k : n) * ldb, &rng)
            let c0 = randomArray(m * ldc, &rng)
            var fast = c0, slow = c0
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    gemm(
                        opA, opB, m: m, n: n, k: k, alpha: 0.7, a.baseAddress!, lda: lda, b.baseAddress!, ldb: ldb,
                        beta: 0.3, &fast, ldc: ldc)
                    referenceGemm(
                        opA, opB, m: m, n: n, k: k, alpha: 0.7, a.baseAddress!, lda: lda, b.baseAddress!, ldb: ldb,
                        beta: 0.3, &slow, ldc: ldc)
                }
            }
            let worst = zip(fast, slow).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-4, "\(opA)\(opB): max difference \(worst)")
        }
    }

    /// The decode product: the float64 reference's values, and a row's bits the same at every
    /// position of the batch, with or without accumulation and bias, on 1 or all threads.
    func testRowStableLinearAgreesWithTheReferenceAndKeepsARowsBitsWhereverItSits() {
        var rng = SeededGenerator(seed: 3)
        let inF = 70, outF = 1100, rows = 32  // several output slices, a ragged last one
        let w = randomArray(outF * inF, &rng), bias = randomArray(outF, &rng), row = randomArray(inF, &rng), y0 = randomArray(outF, &rng)
        func product(_ x: [Float], accumulate: Bool, scratch: inout [Float]) -> [Float] {
            var y = (0..<rows).flatMap { _ in y0 }
            rowStableLinearForward(&y, x, w, bias, rows: rows, inFeatures: inF, outFeatures: outF, accumulate: accumulate, scratch: &scratch)
            return y
        }
        let running = RowStableProducts.layout
        defer { RowStableProducts.layout = running }
        // Values in every layout; bits wherever the row sits in those the running kernel's
        // self-test allows (16-row blocks always).
        let layouts: [DecodeLayout] = [.sixteenRowBlocks, .vectorisedBatch, .plainBatch]
        for (accumulate, layout) in layouts.flatMap({ l in [(false, l), (true, l)] }) {
            RowStableProducts.layout = layout
            var scratch = [Float](repeating: 0, count: rowStableScratchCount(rows: rows, products: [(inF, outF)]))
            var first: [Float]?
            for (position, threads) in [(0, matmulThreads), (13, matmulThreads), (31, 1), (16, matmulThreads)] {
                let saved = matmulThreads
                setMatmulThreads(threads)
                var x = randomArray(rows * inF, &rng)
                x.replaceSubrange((position * inF)..<((position + 1) * inF), with: row)
                let y = product(x, accumulate: accumulate, scratch: &scratch)
                setMatmulThreads(saved)
                let mine = Array(y[(position * outF)..<((position + 1) * outF)])
                if let first, layout <= running { XCTAssertEqual(mine, first, "row at \(position) on \(threads) threads, \(layout)") } else { first = mine }
                var worst = 0.0
                for o in 0..<outF {
                    let want = (0..<inF).reduce(0.0) { $0 + Double(row[$1]) * Double(w[o * inF + $1]) } + Double(bias[o]) + (accumulate ? Double(y0[o]) : 0)
                    worst = max(worst, abs(Double(mine[o]) - want))
                }
                XCTAssertLessThan(worst, 1e-4)
            }
        }
    }

    /// The decode layout the running kernel's self-test chose keeps a row's bits whatever the
    /// row count (a multiple of 16: 16 rows, padded, when a sample decodes alone, up to a full
    /// batch); a plain product only promises that at a fixed count, so it is checked as the
    /// vectorised layout.
    func testRowStableLinearKeepsARowsBitsWhateverTheRowCount() {
        var rng = SeededGenerator(seed: 5)
        let inF = 96, outF = 700
        let w = randomArray(outF * inF, &rng), row = randomArray(inF, &rng)
        let running = RowStableProducts.layout
        defer { RowStableProducts.layout = running }
        RowStableProducts.layout = min(running, .vectorisedBatch)
        var first: [Float]?
        for rows in [16, 32, 48, 80, 128] {
            for position in Set([0, 7, 8, 15, rows / 2, rows - 9, rows - 1]) {
                var x = randomArray(rows * inF, &rng)
                x.replaceSubrange((position * inF)..<((position + 1) * inF), with: row)
                var y = [Float](repeating: 0, count: rows * outF)
                var scratch = [Float](repeating: 0, count: rowStableScratchCount(rows: rows, products: [(inF, outF)]))
                rowStableLinearForward(&y, x, w, nil, rows: rows, inFeatures: inF, outFeatures: outF, scratch: &scratch)
                let mine = Array(y[(position * outF)..<((position + 1) * outF)])
                if let first { XCTAssertEqual(mine, first, "row at \(position) of \(rows), \(RowStableProducts.layout)") } else { first = mine }
            }
        }
    }

    /// The prefill product: the float64 reference's values over several 64-row blocks and output
    /// slices (ragged both), with bias and accumulation; the same bits on 1 or all BLAS threads.
    func testPromptLinearAgreesWithTheReferenceAndDoesNotDependOnThreads() {
        var rng = SeededGenerator(seed: 4)
        let inF = 70, outF = 1100, rows = 150
        let w = randomArray(outF * inF, &rng), bias = randomArray(outF, &rng), x = randomArray(rows * inF, &rng), y0 = randomArray(rows * outF, &rng)
        let running = RowStableProducts.layout
        defer { RowStableProducts.layout = running }
        for (accumulate, plain) in [(false, false), (true, false), (true, true)] {
            RowStableProducts.layout = plain ? .plainBatch : .sixteenRowBlocks
            var results: [[Float]] = []
            for threads in [matmulThreads, 1] {
                let saved = matmulThreads
                setMatmulThreads(threads)
                var y = y0
                promptLinearForward(&y, x, w, bias, rows: rows, inFeatures: inF, outFeatures: outF, accumulate: accumulate)
                setMatmulThreads(saved)
                results.append(y)
            }
            if !plain || running == .plainBatch { XCTAssertEqual(results[0], results[1], "bits depend on the thread count") }
            var worst = 0.0
            for r in 0..<rows {
                for o in 0..<outF {
                    let dot = (0..<inF).reduce(0.0) { $0 + Double(x[r * inF + $1]) * Double(w[o * inF + $1]) }
                    let want = dot + Double(bias[o]) + (accumulate ? Double(y0[r * outF + o]) : 0)
                    worst = max(worst, abs(Double(results[0][r * outF + o]) - want))
                }
            }
            XCTAssertLessThan(worst, 1e-4, "accumulate \(accumulate), plain \(plain)")
        }
    }

    func testSumOfSquaresAndParallelMapKeepTheirOrder() {
        let b = FloatBuffer(count: 3)
        for (i, v) in [3, 4, 1e-8].enumerated() { b.baseAddress[i] = Float(v) }
        XCTAssertEqual(b.sumOfSquares, 25 + Double(Float(1e-8)) * Double(Float(1e-8)))
        XCTAssertEqual(FloatBuffer(count: 0).sumOfSquares, 0)
        XCTAssertEqual(parallelMap(1000) { $0 * $0 }, (0..<1000).map { $0 * $0 })
        XCTAssertEqual(parallelMap(0) { $0 }, [])
    }

    func testLinearBackwardMatchesFiniteDifferences() {
        var rng = SeededGenerator(seed: 2)
        let t = 5, i = 7, o = 6
        let x = randomArray(t * i, &rng), w = randomArray(o * i, &rng), b = randomArray(o, &rng), r = randomArray(t * o, &rng)
        func forward(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: t * o)
            linearForward(&y, x, w, b, rows: t, inFeatures: i, outFeatures: o)
            return y
        }
        var dx = [Float](repeating: 0, count: t * i), dw = [Float](repeating: 0, count: o * i), db = [Float](repeating: 0, count: o)
        linearBackward(&dx, &dw, &db, r, x, w, rows: t, inFeatures: i, outFeatures: o)
        checkGradient("linear dx", x: x, analytic: dx) { dot(forward($0, w, b), r) }
        checkGradient("linear dw", x: w, analytic: dw) { dot(forward(x, $0, b), r) }
        checkGradient("linear db", x: b, analytic: db) { dot(forward(x, w, $0), r) }
    }
}

final class LayerGradientTests: XCTestCase {
    func testRMSNorm() {
        var rng = SeededGenerator(seed: 3)
        let t = 6, c = 40
        let x = randomArray(t * c, &rng), w = randomArray(c, &rng), r = randomArray(t * c, &rng)
        func forward(_ x: [Float], _ w: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: t * c), rstd = [Float](repeating: 0, count: t)
            rmsnormForward(&y, &rstd, x, w, rows: t, width: c, eps: 1e-5)
            return y
        }
        var y = [Float](repeating: 0, count: t * c), rstd = [Float](repeating: 0, count: t)
        rmsnormForward(&y, &rstd, x, w, rows: t, width: c, eps: 1e-5)
        // Reference forward in float64.
        for row in 0..<t {
            let xs = x[(row * c)..<((row + 1) * c)].map(Double.init)
            let inv = 1 / (xs.reduce(0) { $0 + $1 * $1 } / Double(c) + 1e-5).squareRoot()
            for j in 0..<c { XCTAssertEqual(Double(y[row * c + j]), xs[j] * inv * Double(w[j]), accuracy: 1e-5) }
        }
        var dx = [Float](repeating: 0, count: t * c), dw = [Float](repeating: 0, count: c)
        var partials = [Float](repeating: 0, count: elementwiseThreads * c)
        rmsnormBackward(&dx, &dw, r, x, w, rstd, partials: &partials, rows: t, width: c, accumulate: false)
        checkGradient("rmsnorm dx", x: x, analytic: dx) { dot(forward($0, w), r) }
        checkGradient("rmsnorm dw", x: w, analytic: dw) { dot(forward(x, $0), r) }
    }

    func testRoPEIsARotationAndInverseUndoesIt() {
        var rng = SeededGenerator(seed: 4)
        let t = 9, heads = 3, hd = 8
        let table = RotaryTable(headDim: hd, maxPosition: 16, theta: 10000)
        let positions: [Int32] = [0, 1, 2, 3, 0, 1, 2, 7, 15]
        let x = randomArray(t * heads * hd, &rng)
        var y = x
        ropeApply(&y, positions: positions, table: table, rows: t, heads: heads, inverse: false)
        // Position 0 is the identity; every other position preserves each head's norm.
        for j in 0..<(heads * hd) { XCTAssertEqual(y[j], x[j], accuracy: 1e-6) }
        for row in 0..<t {
            for h in 0..<heads {
                let base = (row * heads + h) * hd
                let nx = (0..<hd).reduce(0.0) { $0 + Double(x[base + $1] * x[base + $1]) }
                let ny = (0..<hd).reduce(0.0) { $0 + Double(y[base + $1] * y[base + $1]) }
                XCTAssertEqual(nx, ny, accuracy: 1e-4)
            }
        }
        // Hugging Face's rotate_half at position 7, dimension pair (1, 5).
        let angle = 7 * Double(Float(1 / Foundation.pow(10000, 2.0 / 8)))
        let base = 7 * heads * hd
        XCTAssertEqual(Double(y[base + 1]), Double(x[base + 1]) * cos(angle) - Double(x[base + 5]) * sin(angle), accuracy: 1e-5)
        XCTAssertEqual(Double(y[base + 5]), Double(x[base + 5]) * cos(angle) + Double(x[base + 1]) * sin(angle), accuracy: 1e-5)
        // The backward (inverse rotation) is the transpose: <R x, r> = <x, Rᵀ r>.
        let r = randomArray(t * heads * hd, &rng)
        var back = r
        ropeApply(&back, positions: positions, table: table, rows: t, heads: heads, inverse: true)
        XCTAssertEqual(dot(y, r), dot(x, back), accuracy: 1e-3)
    }

    func testSwiGLU() {
        var rng = SeededGenerator(seed: 5)
        let rows = 4, width = 16
        // Each row is [gate | up].
        let gu = randomArray(rows * 2 * width, &rng, scale: 2), r = randomArray(rows * width, &rng)
        func forward(_ gu: [Float]) -> [Float] {
            var h = [Float](repeating: 0, count: rows * width); swigluForward(&h, gu, rows: rows, width: width); return h
        }
        let h = forward(gu)
        for t in 0..<rows {
            for i in 0..<width {
                let g = Double(gu[t * 2 * width + i]), u = Double(gu[t * 2 * width + width + i])
                XCTAssertEqual(Double(h[t * width + i]), g / (1 + exp(-g)) * u, accuracy: 1e-5)
            }
        }
        var dgu = [Float](repeating: 0, count: rows * 2 * width)
        swigluBackward(&dgu, r, gu, rows: rows, width: width)
        checkGradient("swiglu d[gate|up]", x: gu, analytic: dgu) { dot(forward($0), r) }
    }

    func testAttentionPackedGroupedQuery() {
        // Kept probabilities, and blocks of 3 query rows recomputed in backward (sequences of 5, 1, 7).
        for keep in [true, false] {
            var rng = SeededGenerator(seed: 6)
            let heads = 4, kvHeads = 2, hd = 6
            let shape = AttentionShape(heads: heads, kvHeads: kvHeads, headDim: hd, sequenceStarts: [0, 5, 6, 13], queryBlock: 3)
            let t = 13
            let q = randomArray(t * heads * hd, &rng), k = randomArray(t * kvHeads * hd, &rng), v = randomArray(t * kvHeads * hd, &rng)
            let r = randomArray(t * heads * hd, &rng)
            var probs = [Float](repeating: 0, count: keep ? shape.probabilityCount : shape.blockScratchCount)
            func forward(_ q: [Float], _ k: [Float], _ v: [Float]) -> [Float] {
                var out = [Float](repeating: 0, count: t * heads * hd)
                attentionForward(&out, &probs, q, k, v, shape: shape, keepProbabilities: keep)
                return out
            }
            // Reference: loops per sequence, causal, float64.
            let out = forward(q, k, v)
            for j in 0..<3 {
                let s0 = shape.sequenceStarts[j], s1 = shape.sequenceStarts[j + 1]
                for i in s0..<s1 {
                    for h in 0..<heads {
                        let g = h / (heads / kvHeads)
                        let scores = (s0...i).map { p in
                            (0..<hd).reduce(0.0) { $0 + Double(q[(i * heads + h) * hd + $1]) * Double(k[(p * kvHeads + g) * hd + $1]) } / Double(hd).squareRoot()
                        }
                        let m = scores.max()!, e = scores.map { exp($0 - m) }, z = e.reduce(0, +)
                        for d in 0..<hd {
                            let ref = (s0...i).enumerated().reduce(0.0) { $0 + e[$1.offset] / z * Double(v[($1.element * kvHeads + g) * hd + d]) }
                            XCTAssertEqual(Double(out[(i * heads + h) * hd + d]), ref, accuracy: 1e-5)
                        }
                    }
                }
            }
            _ = forward(q, k, v)
            let kept = probs
            var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 9, count: k.count), dv = [Float](repeating: 9, count: v.count)
            var scratch = [Float](repeating: 0, count: keep ? shape.scratchCount : 2 * shape.blockScratchCount)
            if keep {
                attentionBackward(&dq, &dk, &dv, scratch: &scratch, r, kept, q, k, v, shape: shape)
            } else {
                attentionBackward(&dq, &dk, &dv, scratch: &scratch, r, nil, q, k, v, shape: shape)
            }
            checkGradient("attention dq keep=\(keep)", x: q, analytic: dq) { dot(forward($0, k, v), r) }
            checkGradient("attention dk keep=\(keep)", x: k, analytic: dk) { dot(forward(q, $0, v), r) }
            checkGradient("attention dv keep=\(keep)", x: v, analytic: dv) { dot(forward(q, k, $0), r) }
        }
    }

    func testTargetLogProbsAndBackward() {
        var rng = SeededGenerator(seed: 7)
        let rows = 5, vocab = 37
        let logits = randomArray(rows * vocab, &rng, scale: 3)
        let targets: [Int32] = [0, 36, 5, 5, 17]
        let weights = randomArray(rows, &rng)
        func forward(_ z: [Float]) -> [Float] {
            var lp = [Float](repeating: 0, count: rows), probs = z
            targetLogProbs(&lp, &probs, targets: targets, rows: rows, vocab: vocab)
            return lp
        }
        let lp = forward(logits)
        for r in 0..<rows {
            let row = logits[(r * vocab)..<((r + 1) * vocab)].map(Double.init)
            let ref = row[Int(targets[r])] - log(row.map(exp).reduce(0, +))
            XCTAssertEqual(Double(lp[r]), ref, accuracy: 1e-5)
        }
        var dummy = [Float](repeating: 0, count: rows), grad = logits
        targetLogProbs(&dummy, &grad, targets: targets, rows: rows, vocab: vocab)
        targetLogProbsBackward(&grad, targets: targets, weights: weights, rows: rows, vocab: vocab)
        checkGradient("log-softmax", x: logits, analytic: grad, h: 1e-2) { dot(forward($0), weights) }
    }

    func testVectorExpAccuracy() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let rel = abs(fastExp(x) - Foundation.exp(x)) / Foundation.exp(x)
            worst = max(worst, rel)
            x += 0.173
        }
        XCTAssertLessThan(worst, 1e-6, "vector exp worst relative error \(worst)")
        XCTAssertEqual(fastExp(-200), 0, accuracy: 1e-37)
    }
}

final class BFloat16Tests: XCTestCase {
    func testRoundsToNearestEvenAndKeepsSpecials() {
        XCTAssertEqual(bfloat16(1), 0x3F80)
        XCTAssertEqual(bfloat16(-2), 0xC000)
        // Halfway between 1 and the next bfloat16 (1 + 2^-7): ties go to the even one (1).
        XCTAssertEqual(bfloat16(1 + 0x1p-8), 0x3F80)
        XCTAssertEqual(bfloat16(1 + 0x1p-8 + 0x1p-20), 0x3F81)
        // Halfway above an odd one rounds up to even.
        XCTAssertEqual(bfloat16(Float(bitPattern: 0x3F81_8000)), 0x3F82)
        XCTAssertEqual(bfloat16(.infinity), 0x7F80)
        XCTAssertEqual(bfloat16(-.infinity), 0xFF80)
        XCTAssertEqual(bfloat16(.greatestFiniteMagnitude), 0x7F80)  // rounds up to inf, as RNE does
        XCTAssertTrue(float(fromBFloat16: bfloat16(.nan)).isNaN)
        XCTAssertEqual(float(fromBFloat16: bfloat16(0x1p-130)), 0x1p-130)  // subnormals keep their top bits
        // Round trip error is at most half an ulp: 2^-8 relative (8 significant bits).
        var rng = SeededGenerator(seed: 12)
        let x = (0..<100_000).map { _ in Float(rng.nextNormal()) * 100 }
        var narrow = [UInt16](repeating: 0, count: x.count), wide = [Float](repeating: 0, count: x.count)
        narrowToBF16(x, into: &narrow, count: x.count)
        widenBF16(narrow, into: &wide, count: x.count)
        for (a, b) in zip(x, wide) where abs(a - b) > abs(a) * 0x1p-8 { XCTFail("\(a) → \(b)"); break }
    }
}
