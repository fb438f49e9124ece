// The protocol: every message round-trips through protobuf-c, hostile bytes are errors
// (never crashes), and the committed generated code matches proto/redi.proto.
import Foundation
import Optimizer
import ProcessSupport
import Wire
import XCTest

final class CodecTests: XCTestCase {
    static let bodies: [Body] = [
        .hello(Hello(role: .server, endpoint: "tcp://127.0.0.1:5555", threads: 2)),
        .hello(Hello(role: .worker, dataKey: Array(0..<32))),
        .hello(Hello(role: .worker, dataKey: Array(0..<32), blasKernel: "Cooperlake")),
        .welcome(
            Welcome(
                index: 1, modelConfigJSON: #"{"hidden_size": 64}"#,
                chunks: [ChunkRange(chunk: 0, offset: 0, count: 1_048_576), ChunkRange(chunk: 1, offset: 1_048_576, count: 7)],
                chunkOwner: [0, 1], serverEndpoints: ["tcp://a:1", "tcp://b:2"], parameterCount: 1_048_583, heartbeatSeconds: 2.5,
                workers: 2, timeoutSeconds: 30, workerKeys: [Array(repeating: 7, count: 32), []])),
        .welcome(
            Welcome(
                index: 0, modelConfigJSON: "{}", chunks: [ChunkRange(chunk: 0, offset: 0, count: 3)], chunkOwner: [0],
                serverEndpoints: ["tcp://a:1"], parameterCount: 3, heartbeatSeconds: 1, workers: 1, timeoutSeconds: 4,
                bf16Gradients: true, bf16Weights: true, plainDataPlane: true, activationKeepBytes: 0,
                snapshotDirectory: "/var/tmp/snapshots")),
        .error(code: 400, message: "bad ünïcode message"),
        .heartbeat(step: 12),
        .shutdown(reason: "done", failed: false),
        .shutdown(reason: "worker 1 failed", failed: true),
        .work(
            WorkUnit(
                stage: "redi", step: 3, version: 7, objective: .redi(c: 1, alpha: 0.8, gamma: 0.5, weightGradient: true),
                normalizer: 32,
                examples: [
                    WireExample(
                        sequences: [WireSequence(tokens: [259, 5, 7, 1], promptLength: 2), WireSequence(tokens: [259, 5, 9, 9, 1], promptLength: 2)],
                        reference: (-10.5, -12.25), id: 41),
                    WireExample(sequences: [WireSequence(tokens: [1, 2], promptLength: 0)])
                ], microBatchTokens: 4096, scoreOnly: true)),
        .pull(version: 4, chunks: [0, 3, 5]),
        .pullReply(version: 4, chunks: [0, 3, 5]),
        .pull(version: 4, chunks: [1], optimizerState: true),
        .pullReply(version: 4, chunks: [1], optimizerState: true),
        .load(chunks: [2], resetOptimizer: false, optimizerState: true, version: 5),
        .push(step: 9, chunks: [2], shard: 1, version: 12),
        .pushAck(step: 9),
        .load(chunks: [0, 1], resetOptimizer: true),
        .norm(step: 9, chunks: [1, 4], sums: [123.456, 0], shardSums: [100, 23.5, 0]),
        .apply(
            ApplyUpdate(
                step: 9, optimizerStep: 10, learningRate: 1e-6, gradientScale: 0.5,
                adamW: AdamWConfig(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4))),
        .updateDone(step: 9, version: 10),
        .reset(step: 9, shardWorkers: [0, 2, 0], workerKeys: [Array(repeating: 1, count: 32), [], Array(repeating: 2, count: 32)]),
        .stepReport(
            StepReport(
                step: 9, lossSum: 3.5, examples: 16, tokens: 512, metricSums: ["logps/chosen": -40, "rewards/accuracies": 11],
                sequenceLogps: [-1.5, -2.25], computeSeconds: 1.25, communicationSeconds: 0.5, waitingSeconds: 0.125,
                exampleIDs: [3, 17], version: 8)),
        .stepReport(
            StepReport(
                step: 2, lossSum: 1.5, examples: 2, tokens: 30, metricSums: [:], exampleIDs: [4, 5], version: 3, shard: 1,
                chunkSums: [0.25, 1e-9, 3])),
        .work(
            WorkUnit(
                stage: "sft", step: 2, version: 3, objective: .sft, normalizer: 30,
                examples: [WireExample(sequences: [WireSequence(tokens: [1, 2, 3], promptLength: 1)], id: 4)],
                microBatchTokens: 512, shard: 1, verifyOnly: true)),
        .work(
            WorkUnit(
                stage: "ipo", step: 0, version: 1, objective: .dpo(beta: 0.3, loss: .ipo), normalizer: 2,
                examples: [
                    WireExample(
                        sequences: [WireSequence(tokens: [1, 2], promptLength: 1), WireSequence(tokens: [1, 3], promptLength: 1)],
                        reference: (-1.5, -2), id: 0)
                ],
                microBatchTokens: 64, shard: 0)),
        .work(
            WorkUnit(
                stage: "eval", step: 0, version: 2, objective: .sft, normalizer: 1,
                examples: [WireExample(sequences: [WireSequence(tokens: [1, 2], promptLength: 2)], id: 3)], microBatchTokens: 1,
                sampling: SamplingSpec(
                    samples: 4, temperature: 0.6, topP: 0.95, maxNewTokens: 32768, rows: 8, seed: 9, stopTokens: [2, 7],
                    bf16Cache: true)))
    ]

    func testEveryMessageRoundTrips() throws {
        for (i, body) in Self.bodies.enumerated() {
            let e = Envelope(runID: "run-1", sender: "worker-0", seq: UInt64(i + 1), body: body)
            let bytes = Wire.encode(e)
            let back = try bytes.withUnsafeBytes { try Wire.decode($0) }
            XCTAssertEqual(back, e, "\(body)")
        }
    }

    func testAMalformedBLASKernelNameIsAnError() {
        for name in [String(repeating: "a", count: 33), "haswell\n", "x y", "../etc", "é"] {
            let bytes = Wire.encode(Envelope(runID: "r", sender: "worker-0", seq: 1, body: .hello(Hello(role: .worker, blasKernel: name))))
            XCTAssertThrowsError(try bytes.withUnsafeBytes { try Wire.decode($0) }, name) { XCTAssertTrue("\($0)".contains("BLAS kernel"), "\($0)") }
        }
    }

    func testSixtyFourBitFieldsPastTwoToTheFiftyThreeAreErrors() throws {
        // Envelope{run_id "r", heartbeat{step = 2^63}}: Int(UInt64) trapped here before.
        let step: [UInt8] = [0x08] + [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]
        let bytes: [UInt8] = [0x0A, 0x01, 0x72, 0x6A, UInt8(step.count)] + step
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try Wire.decode($0) }) { XCTAssertTrue("\($0)".contains("out of range"), "\($0)") }
    }

    func testHostileBytesAreErrorsNotCrashes() {
        var rng = SystemRandomNumberGenerator()
        let valid = Wire.encode(Envelope(runID: "r", sender: "s", seq: 1, body: Self.bodies[7]))
        var rejected = 0
        for trial in 0..<2000 {
            var bytes: [UInt8]
            switch trial % 3 {
            case 0: bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1: bytes = Array(valid.prefix(Int(rng.next() % UInt64(valid.count))))
            default:
                bytes = valid
                for _ in 0..<3 { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8.random(in: 0...255, using: &rng) }
            }
            do { _ = try bytes.withUnsafeBytes { try Wire.decode($0) } } catch is WireError { rejected += 1 } catch { XCTFail("\(error)") }
        }
        XCTAssertGreaterThan(rejected, 500)
        XCTAssertThrowsError(try [UInt8]().withUnsafeBytes { try Wire.decode($0) })  // no body
    }

    func testCommittedGeneratedCodeMatchesTheProto() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/protoc-c") else { throw XCTSkip("protoc-c not installed") }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("redi-proto-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("redi-proto-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: log) }
        let p = try ChildProcess("/bin/bash", [root.appendingPathComponent("proto/generate.sh").path, out.path], in: root, output: log)
        XCTAssertEqual(try p.wait(), 0, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
        for file in ["redi.pb-c.c", "include/redi.pb-c.h"] {
            let fresh = try Data(contentsOf: out.appendingPathComponent(file))
            let committed = try Data(contentsOf: root.appendingPathComponent("Sources/CREDIProto/\(file)"))
            XCTAssertEqual(fresh, committed, "\(file) differs from what proto/redi.proto generates: run bash proto/generate.sh and commit")
        }
    }
}
