// An independent float64 Llama forward written as plainly as possible (loops, no BLAS, one
// sequence at a time), used as the oracle for the engine's logits and gradients.
import Foundation
import Model

public struct ReferenceLlama {
    public let config: LlamaConfig
    public let layout: ParameterLayout

    public init(config: LlamaConfig) {
        self.config = config
        layout = ParameterLayout(config: config)
    }

    /// Log-probability of every scored token, in `PackedBatch` order.
    public func logProbs(_ w: [Double], sequences: [TokenSequence]) -> [Double] {
        var out: [Double] = []
        for s in sequences {
            let logits = forward(w, tokens: s.tokens)
            for i in max(s.promptLength, 1)..<s.tokens.count {
                let row = logits[i - 1]
                let m = row.max()!
                let lse = m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
                out.append(row[Int(s.tokens[i])] - lse)
            }
        }
        return out
    }

    /// Logits [position][vocab] of every position of one sequence.
    public func forward(_ w: [Double], tokens: [Int32]) -> [[Double]] {
        let c = config.hiddenSize, hd = config.headDim, h = config.numAttentionHeads, kvh = config.numKeyValueHeads
        let inter = config.intermediateSize, t = tokens.count
        func mat(_ off: Int, _ rows: Int, _ cols: Int, _ x: [Double]) -> [Double] {
            (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + w[off + r * cols + $1] * x[$1] } }
        }
        func norm(_ x: [Double], _ off: Int) -> [Double] {
            let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
            let r = 1 / (ms + config.rmsNormEps).squareRoot()
            return x.indices.map { x[$0] * r * w[off + $0] }
        }
        func rope(_ v: inout [Double], _ pos: Int, heads: Int) {
            let half = hd / 2
            for hh in 0..<heads {
                for i in 0..<half {
                    let invFreq = Double(Float(1 / Foundation.pow(config.ropeTheta, Double(2 * i) / Double(hd))))
                    let a = Double(pos) * invFreq
                    let x0 = v[hh * hd + i], x1 = v[hh * hd + i + half]
                    v[hh * hd + i] = x0 * Foundation.cos(a) - x1 * Foundation.sin(a)
                    v[hh * hd + i + half] = x1 * Foundation.cos(a) + x0 * Foundation.sin(a)
                }
            }
        }
        var x: [[Double]] = tokens.map { id in (0..<c).map { w[layout.embedding + Int(id) * c + $0] } }
        for l in 0..<config.numHiddenLayers {
            let o = layout.layers[l]
            var qs: [[Double]] = [], ks: [[Double]] = [], vs: [[Double]] = []
            for i in 0..<t {
                let n = norm(x[i], o.inputNorm)
                var q = mat(o.q, h * hd, c, n), k = mat(o.k, kvh * hd, c, n), v = mat(o.v, kvh * hd, c, n)
                if let b = o.qBias { for j in q.indices { q[j] += w[b + j] } }
                if let b = o.kBias { for j in k.indices { k[j] += w[b + j] } }
                if let b = o.vBias { for j in v.indices { v[j] += w[b + j] } }
                rope(&q, i, heads: h)
                rope(&k, i, heads: kvh)
                qs.append(q); ks.append(k); vs.append(v)
            }
            var next = x
            for i in 0..<t {
                var att = [Double](repeating: 0, count: h * hd)
                for hh in 0..<h {
                    let g = hh / (h / kvh)
                    var s = (0...i).map { j in (0..<hd).reduce(0.0) { $0 + qs[i][hh * hd + $1] * ks[j][g * hd + $1] } / Double(hd).squareRoot() }
                    let m = s.max()!
                    s = s.map { Foundation.exp($0 - m) }
                    let z = s.reduce(0, +)
                    for j in 0...i { for d in 0..<hd { att[hh * hd + d] += s[j] / z * vs[j][g * hd + d] } }
                }
                let proj = mat(o.o, c, h * hd, att)
                let mid = (0..<c).map { x[i][$0] + proj[$0] }
                let n2 = norm(mid, o.postAttentionNorm)
                let gate = mat(o.gate, inter, c, n2), up = mat(o.up, inter, c, n2)
                let hidden = (0..<inter).map { gate[$0] / (1 + Foundation.exp(-gate[$0])) * up[$0] }
                let down = mat(o.down, c, inter, hidden)
                next[i] = (0..<c).map { mid[$0] + down[$0] }
            }
            x = next
        }
        return x.map { mat(layout.lmHead, config.vocabSize, c, norm($0, layout.finalNorm)) }
    }
}
