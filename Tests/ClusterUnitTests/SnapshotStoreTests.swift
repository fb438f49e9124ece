// A server's snapshots without sockets: its own chunks and its neighbour's replica, taken in
// two phases so a server lost at any moment leaves a whole snapshot, and restored exactly.
import ClusterCore
import ClusterServer
import Model
import Numerics
import Wire
import XCTest

final class SnapshotStoreTests: XCTestCase {
    let n = 8
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("redi-snapshots-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        // Copies kept in files unlink them at once: nothing is left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), [])
        try FileManager.default.removeItem(at: scratch)
    }

    /// Every test runs on both stores: in memory, and in files (`cluster.snapshot_dir`).
    func forEachStore(_ body: (SnapshotStore) throws -> Void) throws {
        for directory in [nil, scratch.path] { try body(SnapshotStore(directory: directory)) }
    }

    /// A server holding chunks 0 and 1, with weights `w`, m = w/10, v = w/100 (by loading them).
    func server(_ w: Float) throws -> ShardState {
        let config = try XCTUnwrap(try LlamaConfig.preset("tiny", vocabSize: 260, bos: 259, eos: 1, pad: 0))
        var state = ShardState(slots: 1, bf16Gradients: false)
        state.configure([ChunkRange(chunk: 0, offset: 0, count: n), ChunkRange(chunk: 1, offset: n, count: n)], layout: ParameterLayout(config: config))
        try load(&state, w, version: 1)
        return state
    }

    func load(_ state: inout ShardState, _ w: Float, version: Int) throws {
        var tensors: [Values] = []
        for c in 0..<2 {
            let x: Float = w + Float(c)
            for value in [x, x / 10, x / 100] { tensors.append(Values(Array(repeating: value, count: n))) }
        }
        try state.load([0, 1], tensors, reset: false, optimizerState: true, version: version)
    }

    /// Chunk `c`'s (weights, m, v) first values.
    func values(_ state: ShardState, _ c: Int) -> [Float] {
        let chunk = state.chunks[c]!
        return [chunk.weights.baseAddress[0], chunk.m.baseAddress[0], chunk.v.baseAddress[0]]
    }

    /// The replica tensors of a neighbour's chunk 7 with weights `w`.
    func replica(_ w: Float) -> [Values] { [w, w / 10, w / 100].map { Values(Array(repeating: $0, count: n)) } }

    func testACommittedSnapshotIsRestoredExactlyAndTheReplicaSentBack() throws {
        try forEachStore { start in
            var state = try server(1)
            var store = start
            try store.storeReplica(tag: 1, chunks: [7], sizes: [7: n], replica(5))
            try store.commit(tag: 1, chunks: state.ordered)
            XCTAssertEqual(store.tag, 1)
            XCTAssertEqual(store.bytes, 3 * 12 * n)  // two own chunks and one replica chunk, weights + m + v
            try load(&state, 9, version: 4)  // steps went on
            try state.restore(from: store, tag: 1, chunks: [0, 1], version: 6)
            XCTAssertEqual(values(state, 0), [1, 0.1, 0.01])
            XCTAssertEqual(values(state, 1), [2, 0.2, 0.02])
            XCTAssertEqual(state.version.number, 6)
            let copies = try store.replicaCopies([7], tag: 1)
            XCTAssertEqual([copies[0].weights.baseAddress[0], copies[0].m.baseAddress[0], copies[0].v.baseAddress[0]], [5, 0.5, 0.05])
        }
    }

    /// A replica built for the next snapshot changes nothing until the commit: a server lost
    /// while it was sent leaves the previous snapshot whole, own chunks and replica.
    func testUntilTheCommitThePreviousSnapshotIsWhole() throws {
        try forEachStore { start in
            var state = try server(1)
            var store = start
            try store.storeReplica(tag: 1, chunks: [7], sizes: [7: n], replica(5))
            try store.commit(tag: 1, chunks: state.ordered)
            try load(&state, 3, version: 2)
            try store.storeReplica(tag: 2, chunks: [7], sizes: [7: n], replica(8))  // snapshot 2 under way
            XCTAssertEqual(try store.replicaCopies([7], tag: 1)[0].weights.baseAddress[0], 5)
            try state.restore(from: store, tag: 1, chunks: [0], version: 3)
            XCTAssertEqual(values(state, 0), [1, 0.1, 0.01])
            try store.commit(tag: 2, chunks: state.ordered)  // the commit makes the built replica current
            XCTAssertEqual(try store.replicaCopies([7], tag: 2)[0].weights.baseAddress[0], 8)
            XCTAssertThrowsError(try store.replicaCopies([7], tag: 1))
        }
    }

    func testWhatCannotBeRestoredIsRefusedNotGuessed() throws {
        try forEachStore { start in
            var state = try server(1)
            var store = start
            // Nothing committed: restoring nothing is fine (a spare), restoring a chunk is not.
            XCTAssertNoThrow(try state.restore(from: store, tag: 1, chunks: [], version: 2))
            XCTAssertThrowsError(try state.restore(from: store, tag: 1, chunks: [0], version: 2))
            try store.commit(tag: 1, chunks: [state.chunks[0]!])
            XCTAssertThrowsError(try state.restore(from: store, tag: 2, chunks: [0], version: 2)) { XCTAssertTrue("\($0)".contains("snapshot is 1"), "\($0)") }
            XCTAssertThrowsError(try state.restore(from: store, tag: 1, chunks: [1], version: 2)) { XCTAssertTrue("\($0)".contains("does not hold"), "\($0)") }
            XCTAssertThrowsError(try store.replicaCopies([7], tag: 1))  // no replica was built for it
            // Replica chunks of the wrong size, an unknown chunk, a frame short, non-finite values.
            XCTAssertThrowsError(try store.storeReplica(tag: 2, chunks: [7], sizes: [7: n + 1], replica(1)))
            XCTAssertThrowsError(try store.storeReplica(tag: 2, chunks: [9], sizes: [7: n], replica(1)))
            XCTAssertThrowsError(try store.storeReplica(tag: 2, chunks: [7], sizes: [7: n], Array(replica(1).prefix(2))))
            XCTAssertThrowsError(try store.storeReplica(tag: 2, chunks: [7], sizes: [7: n], replica(.nan)))
        }
    }
}
