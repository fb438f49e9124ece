// The version rule both sides follow: the coordinator's copy and a server's agree after every
// event of a run, so the coordinator's work units are never stale on an up-to-date server.
import ClusterCore
import ClusterServer
import XCTest

final class ParameterVersionTests: XCTestCase {
    func testTheCoordinatorAndAServerAgreeAfterEveryEvent() throws {
        var coordinator = ParameterVersion()
        var state = ShardState(slots: 2, bf16Gradients: false)
        // Load: the coordinator names the number, the server adopts it.
        coordinator.weightsReplaced()
        try state.load([Int](), [Values](), reset: false, optimizerState: false, version: coordinator.number)
        XCTAssertEqual(state.version, coordinator)
        // Membership change: both move by themselves.
        coordinator.shardsReassigned()
        _ = try state.reset(owners: [1, 0])
        XCTAssertEqual(state.version, coordinator)
        // New stage (optimizer reset as an empty load).
        coordinator.weightsReplaced()
        try state.load([Int](), [Values](), reset: true, optimizerState: false, version: coordinator.number)
        XCTAssertEqual(state.version, coordinator)
        XCTAssertEqual(coordinator.number, 3)
    }

    func testStaleAndAheadAreTheTwoSidesOfTheCurrentNumber() {
        var v = ParameterVersion()
        v.stepApplied()
        v.stepApplied()
        XCTAssertTrue(v.isStale(1))
        XCTAssertFalse(v.isStale(2))
        XCTAssertFalse(v.isAhead(2))
        XCTAssertTrue(v.isAhead(3))
        v.adopt(7)
        XCTAssertEqual(v.number, 7)
        XCTAssertEqual("\(v)", "7")
    }
}
