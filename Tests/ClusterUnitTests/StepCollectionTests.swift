// A step's reports and norms without processes: taken in any order, ignored when they are
// not the sender's to give, fatal when a worker or server reports what cannot be true.
import ClusterCoordinator
import ClusterCore
import Wire
import XCTest

final class StepCollectionTests: XCTestCase {
    /// Two shards (to worker slots 0 and 1), three chunks on two servers (0, 0, 1).
    func collection(checks: [(shard: Int, slot: Int)] = []) -> StepCollection {
        StepCollection(step: 4, version: 9, sent: [[0, 1], [2]], owners: [0, 1], checks: checks, chunkOwner: [0, 0, 1], expectNorms: true)
    }
    func report(shard: Int, ids: [Int], step: Int = 4, version: Int = 9, loss: Double = 1, chunkSums: [Double] = []) -> StepReport {
        StepReport(step: step, lossSum: loss, examples: ids.count, tokens: 3, metricSums: [:], exampleIDs: ids, version: version, shard: shard, chunkSums: chunkSums)
    }

    func testReportsAndNormsCompleteTheStepInAnyOrder() throws {
        var c = collection()
        XCTAssertTrue(try c.takeNorms(step: 4, server: 1, chunks: [2], sums: [9], shardSums: [4, 1], sender: "s1"))
        XCTAssertNil(try c.take(report(shard: 1, ids: [2]), fromSlot: 1, sender: "w1"))
        XCTAssertEqual(c.waitingOn, [0])
        XCTAssertEqual(c.firstMissingShard, 0)
        XCTAssertNil(try c.take(report(shard: 0, ids: [0, 1]), fromSlot: 0, sender: "w0"))
        XCTAssertFalse(c.isComplete)
        XCTAssertEqual(c.firstSilentServer, 0)
        XCTAssertTrue(try c.takeNorms(step: 4, server: 0, chunks: [0, 1], sums: [1, 2], shardSums: [2, 1], sender: "s0"))
        XCTAssertTrue(c.isComplete)
        XCTAssertEqual(c.sumOfSquares, 12)
        XCTAssertEqual(c.orderedReports.map(\.shard), [0, 1])
        XCTAssertEqual(c.shardSumsFrom, [0: [2, 1], 1: [4, 1]])
    }

    func testReportsNotTheSendersToGiveAreIgnored() throws {
        var c = collection()
        XCTAssertNotNil(try c.take(report(shard: 0, ids: [0, 1]), fromSlot: 1, sender: "w1"), "another slot's shard")
        XCTAssertNotNil(try c.take(report(shard: 0, ids: [0, 1]), fromSlot: nil, sender: "stranger"), "not a worker")
        XCTAssertNotNil(try c.take(report(shard: 7, ids: [0, 1]), fromSlot: 0, sender: "w0"), "no such shard")
        XCTAssertNotNil(try c.take(report(shard: -1, ids: [0, 1]), fromSlot: 0, sender: "w0"), "no such shard")
        XCTAssertNil(try c.take(report(shard: 0, ids: [0, 1], step: 3), fromSlot: 0, sender: "w0"), "a late report is dropped quietly")
        XCTAssertNil(try c.take(report(shard: 0, ids: [0, 1], version: 8), fromSlot: 0, sender: "w0"))
        XCTAssertEqual(c.firstMissingShard, 0, "none of those was taken")
        XCTAssertNil(try c.take(report(shard: 0, ids: [0, 1]), fromSlot: 0, sender: "w0"))
        XCTAssertNotNil(try c.take(report(shard: 0, ids: [0, 1]), fromSlot: 0, sender: "w0"), "a repeat")
        XCTAssertFalse(try c.takeNorms(step: 4, server: nil, chunks: [0, 1], sums: [1, 2], shardSums: [2, 1], sender: "stranger"))
        XCTAssertFalse(try c.takeNorms(step: 3, server: 0, chunks: [0, 1], sums: [1, 2], shardSums: [2, 1], sender: "s0"))
        XCTAssertFalse(try c.takeNorms(step: 4, server: 5, chunks: [0, 1], sums: [1, 2], shardSums: [2, 1], sender: "s5"))
        XCTAssertTrue(try c.takeNorms(step: 4, server: 0, chunks: [0, 1], sums: [1, 2], shardSums: [2, 1], sender: "s0"))
        XCTAssertFalse(try c.takeNorms(step: 4, server: 0, chunks: [0, 1], sums: [1, 2], shardSums: [2, 1], sender: "s0"), "a repeat")
    }

    func testImpossibleReportsAndNormsEndTheRun() {
        var c = collection()
        for (r, needle) in [(report(shard: 0, ids: [0, 1], loss: .nan), "non-finite"), (report(shard: 0, ids: [1, 0]), "it was not given")] {
            XCTAssertThrowsError(try c.take(r, fromSlot: 0, sender: "w0")) { XCTAssertTrue("\($0)".contains(needle), "\($0)") }
        }
        for (chunks, sums, shardSums, needle) in [
            ([0], [1.0], [2.0, 1], "reported norms for chunks"), ([0, 1], [1, 2], [2], "shards"), ([0, 1], [1], [2, 1], "non-finite"),
            ([0, 1], [1, -2], [2, 1], "non-finite"), ([0, 1], [1, .infinity], [2, 1], "non-finite"),
            ([0, 1], [100, 100], [2, 1], "more than the workers' pushes to it allow")
        ] {
            XCTAssertThrowsError(try c.takeNorms(step: 4, server: 0, chunks: chunks, sums: sums, shardSums: shardSums, sender: "s0")) {
                XCTAssertTrue("\($0)".contains(needle), "\($0) should mention \(needle)")
            }
        }
    }

    func testRecomputationsAreTakenOnlyFromTheWorkerAskedAndWhole() throws {
        var c = collection(checks: [(shard: 1, slot: 0)])
        let sums = [1.0, 2, 3]
        XCTAssertNil(try c.take(report(shard: 1, ids: [2]), fromSlot: 1, sender: "w1"))
        XCTAssertEqual(c.waitingOn, [0])
        XCTAssertNotNil(try c.take(report(shard: 1, ids: [2], chunkSums: sums), fromSlot: 1, sender: "w1"), "not the one asked")
        XCTAssertNotNil(try c.take(report(shard: 1, ids: [2], chunkSums: [1, 2]), fromSlot: 0, sender: "w0"), "one sum per chunk")
        XCTAssertNotNil(try c.take(report(shard: 1, ids: [2], chunkSums: [1, -2, 3]), fromSlot: 0, sender: "w0"), "negative")
        XCTAssertEqual(c.firstMissingCheck?.slot, 0)
        XCTAssertNil(try c.take(report(shard: 1, ids: [2], chunkSums: sums), fromSlot: 0, sender: "w0"))
        XCTAssertNil(c.firstMissingCheck)
        XCTAssertNotNil(try c.take(report(shard: 1, ids: [2], chunkSums: sums), fromSlot: 0, sender: "w0"), "a repeat")
        XCTAssertEqual(c.recomputed[1]?.chunkSums, sums)
    }
}
