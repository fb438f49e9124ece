// The stage's data order without a run: batches never cross an epoch, every example once per
// epoch, and a resumed order continues exactly where the saved epoch and position say.
import ClusterCoordinator
import XCTest

final class EpochOrderTests: XCTestCase {
    func testEveryEpochUsesEveryExampleOnceAndEndsWithAShortBatch() {
        var data = EpochOrder(count: 10, batchSize: 4, recipeSeed: 3, stageIndex: 1)
        var epochs: [Int: [Int]] = [:], sizes: [Int] = []
        for _ in 0..<6 {
            let (ids, epoch) = data.nextBatch()
            epochs[epoch, default: []] += ids
            sizes.append(ids.count)
        }
        XCTAssertEqual(sizes, [4, 4, 2, 4, 4, 2])
        XCTAssertEqual(epochs.keys.sorted(), [1, 2])
        XCTAssertEqual(epochs[1]!.sorted(), Array(0..<10))
        XCTAssertEqual(epochs[2]!.sorted(), Array(0..<10))
        XCTAssertNotEqual(epochs[1], epochs[2], "each epoch is shuffled afresh")
        XCTAssertEqual(data.progress, 2)
    }

    func testAResumedOrderContinuesTheSameBatches() {
        var run = EpochOrder(count: 7, batchSize: 3, recipeSeed: 0, stageIndex: 0)
        var batches: [[Int]] = []
        for _ in 0..<8 { batches.append(Array(run.nextBatch().ids)) }
        // Saved after batch 4 (epoch 2, position 3): the rest is the same.
        var fresh = EpochOrder(count: 7, batchSize: 3, recipeSeed: 0, stageIndex: 0)
        for _ in 0..<4 { _ = fresh.nextBatch() }
        var resumed = EpochOrder(count: 7, batchSize: 3, recipeSeed: 0, stageIndex: 0)
        resumed.resume(epoch: fresh.epoch, position: fresh.position)
        XCTAssertEqual([fresh.epoch, fresh.position], [2, 3])
        XCTAssertEqual((4..<8).map { _ in Array(resumed.nextBatch().ids) }, Array(batches[4..<8]))
    }

    func testTheOrderDependsOnTheSeedAndTheStage() {
        func first(_ seed: UInt64, _ stage: Int) -> [Int] {
            var d = EpochOrder(count: 50, batchSize: 50, recipeSeed: seed, stageIndex: stage)
            return Array(d.nextBatch().ids)
        }
        XCTAssertEqual(first(1, 0), first(1, 0))
        XCTAssertNotEqual(first(1, 0), first(2, 0))
        XCTAssertNotEqual(first(1, 0), first(1, 1))
    }
}
