// The gradient trust rule without processes: the limit refuses (NaN included), outliers are
// measured against the recent median only once there is a history, and the history is the
// last 50 steps' non-zero shard norms.
import ClusterCoordinator
import XCTest

final class ContributionScreenTests: XCTestCase {
    /// Two servers' Σg² for shards whose norms are `norms` (split 1:3 between the servers).
    func sums(_ norms: [Double]) -> [[Double]] { [norms.map { $0 * $0 / 4 }, norms.map { 3 * $0 * $0 / 4 }] }

    func testNormsAreSummedOverServersThenRooted() {
        var s = ContributionScreen(maxShardNorm: 100)
        XCTAssertEqual(s.screen([[9, 1], [16, 3]]), .accepted(norms: [5, 2], outliers: []))
        XCTAssertEqual(s.screen([]), .accepted(norms: [], outliers: []))
    }

    func testAShardOverTheLimitOrNotANumberIsRefused() {
        var s = ContributionScreen(maxShardNorm: 10)
        XCTAssertEqual(s.screen(sums([3, 12, 11])), .refused(shard: 1, norm: 12))
        XCTAssertEqual(s.history, [], "a refused step is not history")
        guard case .refused(shard: 0, norm: let n) = s.screen([[.nan]]) else { return XCTFail("NaN must be refused") }
        XCTAssertTrue(n.isNaN)
        XCTAssertEqual(s.screen(sums([10])), .accepted(norms: [10], outliers: []), "the limit itself is allowed")
    }

    func testOutliersNeedAHistoryAndAreKept() {
        var s = ContributionScreen(maxShardNorm: 1e9)
        XCTAssertEqual(s.screen(sums([1, 1e6])), .accepted(norms: [1, 1e6], outliers: []), "no history yet: nothing to compare with")
        for _ in 0..<3 { _ = s.screen(sums([1, 2])) }
        // History: 1, 1e6, 1, 2, 1, 2, 1, 2: median (upper) 2.
        XCTAssertEqual(s.screen(sums([150, 250])), .accepted(norms: [150, 250], outliers: [.init(shard: 1, median: 2)]))
    }

    func testTheHistoryIsTheLastFiftyStepsOfNonZeroNorms() {
        var s = ContributionScreen(maxShardNorm: 1e9)
        _ = s.screen(sums([0, 7]))
        XCTAssertEqual(s.history, [7])
        for step in 0..<30 { _ = s.screen(sums([Double(step + 1), 0])) }
        XCTAssertEqual(s.history.count, 31, "zero norms are not history")
        for step in 30..<90 { _ = s.screen(sums([Double(step + 1), 0.5])) }
        XCTAssertEqual(s.history.count, 2 * ContributionScreen.historySteps, "50 steps of 2 shards")
        XCTAssertEqual(s.history.first, 41)
        XCTAssertEqual(s.history.last, 0.5)
    }

    func testVerifiedShardsAreCountedAndSaidSparingly() {
        var s = ContributionScreen(maxShardNorm: 1)
        let said = (1...250).map { _ in s.recordVerified() }
        XCTAssertEqual(s.verified, 250)
        XCTAssertEqual(said.indices.filter { said[$0] }.map { $0 + 1 }, [1, 100, 200])
    }
}
