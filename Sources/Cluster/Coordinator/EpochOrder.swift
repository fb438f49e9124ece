// The order a stage visits its examples, as the Hugging Face Trainer does: each epoch a fresh
// shuffle, batches that never cross an epoch (an epoch's last batch may be short, so one epoch
// uses every example exactly once). Each epoch's order is a function of (seed, stage, epoch),
// so a resumed run rebuilds it from the epoch and position a checkpoint saved.
import ClusterCore
import SeededRandom

public struct EpochOrder: Equatable, Sendable {
    public let count: Int, batchSize: Int
    /// The stage's seed: the recipe's seed and the stage's index.
    public let seed: UInt64
    /// The current epoch's order; `position` examples of it are used. `epoch` counts from 1 once the first batch is cut.
    public private(set) var order: [Int] = []
    public private(set) var position = 0, epoch = 0

    public init(count: Int, batchSize: Int, recipeSeed: UInt64, stageIndex: Int) {
        precondition(batchSize > 0)
        self.count = count; self.batchSize = batchSize
        seed = recipeSeed &+ UInt64(stageIndex) &* 1_000_003
    }

    /// Where a checkpoint or snapshot left it: `epoch`'s order rebuilt, `position` used (epoch 0: nothing yet).
    public mutating func resume(epoch: Int, position: Int) {
        (self.epoch, self.position) = (epoch, position)
        order = epoch > 0 ? shuffled(epoch - 1) : []
    }

    /// The next batch's example indices and the epoch they belong to.
    public mutating func nextBatch() -> (ids: ArraySlice<Int>, epoch: Int) {
        if position >= order.count {
            order = shuffled(epoch)
            position = 0
            epoch += 1
        }
        let end = min(position + batchSize, order.count)
        defer { position = end }
        return (order[position..<end], epoch)
    }

    /// Epochs done, with the current one's fraction (the metrics' `epoch`).
    public var progress: Double { Double(epoch - 1) + Double(position) / Double(max(1, count)) }

    private func shuffled(_ e: Int) -> [Int] {
        var rng = SeededGenerator(seed: seed &+ UInt64(e))
        return Array(0..<count).shuffled(using: &rng)
    }
}
