// The trust rule for gradients (README, Security) as plain state, without processes: a
// shard's norm over `cluster.max_shard_grad_norm` is refused; one over 100× the median of the
// last 50 steps' shard norms is an outlier, logged but kept (training can spike). Also counts
// the shards verified by recomputation.

public struct ContributionScreen: Sendable {
    /// A shard whose norm is over 100× the recent median.
    public struct Outlier: Equatable, Sendable {
        public var shard: Int, median: Double
        public init(shard: Int, median: Double) { self.shard = shard; self.median = median }
    }

    /// A step's shards as the rule sees them.
    public enum Verdict: Equatable, Sendable {
        /// Every shard within the limit: their norms, and the outliers among them.
        case accepted(norms: [Double], outliers: [Outlier])
        /// Shard `shard`'s norm is over the limit: the run ends naming its worker.
        case refused(shard: Int, norm: Double)
    }

    public let maxShardNorm: Double
    /// Steps whose shard norms the outlier median is taken over.
    public static let historySteps = 50
    /// The last steps' non-zero shard norms, oldest first.
    public private(set) var history: [Double] = []
    /// Shards a second worker recomputed and agreed with.
    public private(set) var verified = 0

    public init(maxShardNorm: Double) { self.maxShardNorm = maxShardNorm }

    /// Judges a step: `byServer[s][k]` is server s's Σg² of shard k's pushes. An accepted step's
    /// norms join the history (zero norms, from shards with no gradient, do not).
    public mutating func screen(_ byServer: [[Double]]) -> Verdict {
        guard let shards = byServer.first?.count else { return .accepted(norms: [], outliers: []) }
        let norms = (0..<shards).map { k in byServer.reduce(0) { $0 + $1[k] }.squareRoot() }
        if let k = norms.indices.first(where: { !(norms[$0] <= maxShardNorm) }) { return .refused(shard: k, norm: norms[k]) }
        var outliers: [Outlier] = []
        if history.count >= 5 {
            let sorted = history.sorted(), median = sorted[sorted.count / 2]
            outliers = norms.indices.filter { norms[$0] > 100 * median }.map { Outlier(shard: $0, median: median) }
        }
        history += norms.filter { $0 > 0 }
        let keep = Self.historySteps * max(1, shards)
        if history.count > keep { history.removeFirst(history.count - keep) }
        return .accepted(norms: norms, outliers: outliers)
    }

    /// Counts one more shard verified; whether this one is worth saying (the first, then every 100th).
    public mutating func recordVerified() -> Bool {
        verified += 1
        return verified == 1 || verified % 100 == 0
    }
}
