// The parameter server's rules without sockets or processes: pushes summed in shard order
// whatever order they arrive in, early pushes held unacknowledged, one contribution per
// (version, shard), stale / foreign / future / non-finite pushes, resets and loads.
import ClusterCore
import ClusterServer
import Model
import Numerics
import Transport
import Wire
import XCTest

/// fp32 values as a pushed frame would carry them.
struct Values: ReceivedValues {
    let floats: [Float]
    init(_ floats: [Float]) { self.floats = floats }
    func holds(_ values: Int, bf16: Bool) -> Bool { !bf16 && floats.count == values }
    func sumOfSquares(bf16: Bool) -> Double { floats.withUnsafeBytes { Transport.sumOfSquares($0, bf16: false) } }
    func addValues(into destination: FloatBuffer, bf16: Bool) { for (i, x) in floats.enumerated() { destination[i] += x } }
    func copyValues(into destination: FloatBuffer, bf16: Bool) { for (i, x) in floats.enumerated() { destination[i] = x } }
}

final class ShardStateTests: XCTestCase {
    let n = 8

    /// A server holding chunks 0 and 1 (8 values each) for `slots` worker slots, loaded at version 1.
    func server(slots: Int = 3) throws -> ShardState {
        let config = try XCTUnwrap(try LlamaConfig.preset("tiny", vocabSize: 260, bos: 259, eos: 1, pad: 0))
        var state = ShardState(slots: slots, bf16Gradients: false)
        state.configure([ChunkRange(chunk: 0, offset: 0, count: n), ChunkRange(chunk: 1, offset: n, count: n)], layout: ParameterLayout(config: config))
        try state.load(
            [0, 1], [Values(Array(repeating: 1, count: n)), Values(Array(repeating: 2, count: n))],
            reset: true, optimizerState: false, version: 1)
        return state
    }

    func ack(_ worker: Int, _ step: Int = 0) -> ShardState.Acknowledgement { .init(peer: Array("w\(worker)".utf8), step: step) }

    func push(_ state: inout ShardState, worker: Int, shard: Int? = nil, chunks: [Int], value: Float, version: Int = 1) -> ShardState.PushOutcome {
        state.push(
            from: "worker-\(worker)", step: 0, chunks: chunks, shard: shard ?? worker, computedAt: version,
            values: chunks.map { _ in Values(Array(repeating: value, count: n)) }, ack: ack(worker))
    }

    func testPushesAreSummedInShardOrderAndEarlyOnesWaitUnacknowledged() throws {
        var state = try server()
        // Shard 2 first: held, not acknowledged; then shard 0; then shard 1 releases shard 2's.
        XCTAssertEqual(push(&state, worker: 2, chunks: [0], value: 3), .accepted(acknowledge: [], mostHeld: 1, completed: nil))
        XCTAssertEqual(push(&state, worker: 0, chunks: [0, 1], value: 1), .accepted(acknowledge: [ack(0)], mostHeld: nil, completed: nil))
        XCTAssertEqual(push(&state, worker: 1, chunks: [0], value: 2), .accepted(acknowledge: [ack(2), ack(1)], mostHeld: nil, completed: nil))
        XCTAssertEqual(push(&state, worker: 2, chunks: [1], value: 3), .accepted(acknowledge: [], mostHeld: nil, completed: nil))
        guard case let .accepted(acknowledge, _, completed?) = push(&state, worker: 1, chunks: [1], value: 2) else { return XCTFail("not complete") }
        XCTAssertEqual(acknowledge, [ack(2), ack(1)])
        // Every chunk sums 1 + 2 + 3 = 6 per value; shard k pushed value k+1 on both chunks.
        XCTAssertEqual(completed, ShardState.Completed(step: 0, chunks: [0, 1], sums: [36 * 8, 36 * 8], shardSums: [2 * 8, 8 * 8, 18 * 8]))
        XCTAssertEqual(state.chunks[0]!.gradient.array, Array(repeating: 6, count: n))
    }

    /// The issue-21 finding: after the step's sum was reported, a second push at that version
    /// replaced it. Now refused until the version moves on.
    func testOnlyOneContributionPerVersionAndShard() throws {
        var state = try server(slots: 1)
        guard case .accepted(_, _, _?) = push(&state, worker: 0, chunks: [0, 1], value: 1) else { return XCTFail("not complete") }
        guard case let .refused(code, text) = push(&state, worker: 0, chunks: [0, 1], value: 1e6) else { return XCTFail("accepted a second push") }
        XCTAssertEqual(code, .conflict)
        XCTAssertTrue(text.contains("every shard of this step was summed"), text)
        XCTAssertEqual(state.chunks[0]!.gradient.array, Array(repeating: 1, count: n))
        // A duplicate chunk within a step is refused too.
        var other = try server(slots: 2)
        _ = push(&other, worker: 0, chunks: [0], value: 1)
        XCTAssertEqual(push(&other, worker: 0, chunks: [0], value: 1), .refused(.malformed, "bad or duplicate push from worker 0: chunks [0] do not match this server's"))
    }

    func testStaleForeignFutureAndNonFinitePushes() throws {
        var state = try server()
        XCTAssertEqual(push(&state, worker: 0, chunks: [0], value: 1, version: 0), .stale)
        guard case .refused(.notYours, _) = push(&state, worker: 1, shard: 0, chunks: [0], value: 1) else { return XCTFail("a foreign shard was taken") }
        guard case .refused(.notYours, _) = state.push(from: "", step: 0, chunks: [0], shard: 0, computedAt: 1, values: [Values([1])], ack: ack(9)) else {
            return XCTFail("a push without a worker key was taken")
        }
        guard case .refused(.conflict, _) = push(&state, worker: 0, chunks: [0], value: 1, version: 2) else { return XCTFail("a future version was taken") }
        guard case .fatal = push(&state, worker: 0, chunks: [0], value: .nan) else { return XCTFail("NaN was taken") }
        guard case .fatal = push(&state, worker: 0, chunks: [0], value: .infinity) else { return XCTFail("inf was taken") }
        guard case .refused(.malformed, _) = push(&state, worker: 0, chunks: [7], value: 1) else { return XCTFail("an unknown chunk was taken") }
    }

    /// Memory bound: a worker has at most one held push, and a held push is one chunk.
    func testAtMostOneEarlyChunkPerWorker() throws {
        var state = try server()
        XCTAssertEqual(push(&state, worker: 1, chunks: [0], value: 1), .accepted(acknowledge: [], mostHeld: 1, completed: nil))
        guard case .refused(.malformed, _) = push(&state, worker: 1, chunks: [1], value: 1) else { return XCTFail("a second early push was held") }
        guard case .refused(.malformed, _) = push(&state, worker: 2, chunks: [0, 1], value: 1) else { return XCTFail("an early push of two chunks was held") }
        XCTAssertEqual(state.mostHeld, 1)
    }

    /// A reset (membership changed) acknowledges held pushes as not counted, reassigns shards
    /// and makes earlier pushes stale.
    func testAResetReleasesHeldPushesAndMovesTheVersion() throws {
        var state = try server()
        _ = push(&state, worker: 2, chunks: [0], value: 1)
        XCTAssertEqual(try state.reset(owners: [0, 0, 1]), [ack(2)])
        XCTAssertEqual(state.version.number, 2)
        XCTAssertEqual(push(&state, worker: 2, chunks: [0], value: 1, version: 1), .stale)
        guard case .refused(.notYours, _) = push(&state, worker: 2, chunks: [0], value: 1, version: 2) else { return XCTFail("a dropped worker's shard was taken") }
        XCTAssertEqual(push(&state, worker: 0, shard: 1, chunks: [0], value: 1, version: 2), .accepted(acknowledge: [], mostHeld: nil, completed: nil))
        XCTAssertThrowsError(try state.reset(owners: [0, 5, 1]))
    }

    func testLoadsAreCheckedBeforeAnythingIsCopied() throws {
        var state = try server()
        XCTAssertThrowsError(try state.load([0, 1], [Values(Array(repeating: 5, count: n)), Values([1])], reset: false, optimizerState: false, version: 4))
        XCTAssertEqual(state.chunks[0]!.weights.array, Array(repeating: 1, count: n))
        XCTAssertThrowsError(
            try state.load(
                [0, 0], [Values(Array(repeating: 5, count: n)), Values(Array(repeating: 5, count: n))],
                reset: false, optimizerState: false, version: 4))
        XCTAssertEqual(state.version.number, 1)
    }
}
