// The coordinator's membership decisions without processes: admission at the start, spares,
// workers queued mid-run, drops and re-admission, messages from members and strangers
// (hostile ones included), and a lost server replaced by a spare or spread over the rest.
import ClusterCoordinator
import ClusterCore
import Foundation
import Wire
import XCTest

final class MembershipTests: XCTestCase {
    let key = [UInt8](repeating: 7, count: 32)
    func id(_ s: String) -> [UInt8] { Array(s.utf8) }
    func server(_ endpoint: String = "tcp://10.0.0.1:5000") -> Hello { Hello(role: .server, endpoint: endpoint) }
    func worker(kernel: String = "Haswell", key: [UInt8]? = nil) -> Hello { Hello(role: .worker, dataKey: key ?? self.key, blasKernel: kernel) }

    /// Two servers and two worker slots, filled at the start.
    func started() -> Membership {
        var m = Membership(servers: 2, workers: 2)
        m.admitting = true
        _ = m.hello(server("tcp://a:1"), from: id("s0"))
        _ = m.hello(server("tcp://b:1"), from: id("s1"))
        _ = m.hello(worker(), from: id("w0"))
        _ = m.hello(worker(), from: id("w1"))
        m.admitting = false
        m.beginRun()
        return m
    }

    func testTheStartFillsServersAndSlotsThenRefusesOrKeepsSpares() {
        var m = Membership(servers: 1, workers: 1)
        m.admitting = true
        XCTAssertEqual(m.hello(server(), from: id("s0")), .serverJoined(index: 0))
        XCTAssertEqual(m.hello(server(), from: id("s0")), .known, "a repeated hello changes nothing")
        XCTAssertEqual(m.hello(server("tcp://c:2"), from: id("s1")), .spare)
        XCTAssertEqual(m.hello(server("tcp://c:2"), from: id("s1")), .known)
        XCTAssertEqual(m.hello(worker(), from: id("w0")), .workerJoined(slot: 0, kernelWarning: nil))
        guard case .refused(.conflict, _) = m.hello(worker(), from: id("w1")) else { return XCTFail("a worker past the recipe's count was admitted") }
        XCTAssertEqual(m.servers, [id("s0")])
        XCTAssertEqual(m.spares.map(\.endpoint), ["tcp://c:2"])
        XCTAssertEqual(m.vacantSlots, [])
    }

    func testHostileHellosAreRefusedWithoutChangingAnything() {
        var m = Membership(servers: 1, workers: 1)
        m.admitting = true
        guard case .refused(.protocolMismatch, _) = m.hello(Hello(role: .server, endpoint: "tcp://a:1", protocolVersion: 99), from: id("old")) else {
            return XCTFail("another protocol version was admitted")
        }
        guard case .refused(.malformed, _) = m.hello(server("http://evil"), from: id("s")) else { return XCTFail("a non-ZeroMQ endpoint was admitted") }
        guard case .refused(.malformed, _) = m.hello(server("tcp://" + String(repeating: "a", count: 300)), from: id("s")) else {
            return XCTFail("an over-long endpoint was admitted")
        }
        guard case .refused(.malformed, _) = m.hello(worker(key: [1, 2, 3]), from: id("w")) else { return XCTFail("a worker without a 32-byte key was admitted") }
        guard case .refused(.conflict, _) = m.hello(Hello(role: .unspecified), from: id("x")) else { return XCTFail("a peer without a role was admitted") }
        XCTAssertEqual(m.servers, [])
        XCTAssertEqual(m.vacantSlots, [0])
        // A spare with a bad endpoint is not kept either.
        m.admitting = false
        XCTAssertEqual(m.hello(server("udp://x"), from: id("spare")), .known)
        XCTAssertTrue(m.spares.isEmpty)
    }

    func testWorkersJoiningMidRunWaitForAFreeSlotAndTakeTheLowest() {
        var m = started()
        XCTAssertEqual(m.hello(worker(), from: id("w2")), .workerQueued(kernelWarning: nil))
        XCTAssertEqual(m.hello(worker(), from: id("w2")), .known)
        XCTAssertEqual(m.joining.map(\.id), [id("w2")])
        XCTAssertEqual(m.admitJoiners(), [], "no slot is free")
        XCTAssertEqual(m.drop([0]), [id("w0")])
        XCTAssertEqual(m.live, [1])
        XCTAssertEqual(m.shardOwners, [1, 1], "every shard still has a worker")
        XCTAssertEqual(m.admitJoiners(), [0])
        XCTAssertEqual(m.workers[0]?.id, id("w2"))
        XCTAssertEqual(m.live, [0, 1])
        XCTAssertEqual(m.shardOwners, [0, 1])
    }

    func testAWorkerOnAnotherKernelIsAdmittedWithAWarning() {
        var m = started()
        guard case let .workerQueued(warning?) = m.hello(worker(kernel: "SkylakeX"), from: id("w2")) else { return XCTFail("no warning") }
        XCTAssertTrue(warning.contains("SkylakeX") && warning.contains("Haswell"), warning)
    }

    func testMessagesFromMembersStrangersAndHostilePeers() {
        var m = started()
        XCTAssertEqual(m.classify(.heartbeat(step: 1), from: id("s0")), .heartbeat)
        XCTAssertEqual(m.classify(.pushAck(step: 1), from: id("w0")), .deliver)
        XCTAssertEqual(m.classify(.error(code: 500, message: "disk full"), from: id("w1")), .memberFailed("disk full"))
        // Strangers: told to join again, logged once; their errors are ignored, not fatal.
        XCTAssertEqual(m.classify(.heartbeat(step: 1), from: id("ghost")), .stray(firstTime: true))
        XCTAssertEqual(m.classify(.pushAck(step: 1), from: id("ghost")), .stray(firstTime: false))
        XCTAssertEqual(m.classify(.error(code: 500, message: "boom"), from: id("ghost")), .strayError("boom"))
        // A worker reporting a server outside the plan: that server, by its endpoint.
        XCTAssertEqual(
            m.classify(.error(code: PeerError.serverFault.rawValue, message: "server tcp://b:1: sent 3 values for chunk 2"), from: id("w0")),
            .serverFault(index: 1, detail: "sent 3 values for chunk 2"))
        XCTAssertEqual(
            m.classify(.error(code: PeerError.serverFault.rawValue, message: "server tcp://gone:1: late"), from: id("w0")), .lateServerFault("server tcp://gone:1: late"))
        // Only a worker can blame a server: from a server it is that server's failure, from a stranger nothing.
        XCTAssertEqual(m.classify(.error(code: PeerError.serverFault.rawValue, message: "server tcp://a:1: x"), from: id("s1")), .memberFailed("server tcp://a:1: x"))
        XCTAssertEqual(m.classify(.error(code: PeerError.serverFault.rawValue, message: "server tcp://a:1: x"), from: id("ghost")), .strayError("server tcp://a:1: x"))
    }

    func testALostServerIsReplacedByASpareOrSpreadOverTheRest() throws {
        var m = started()
        m.admitting = false
        XCTAssertEqual(m.hello(server("tcp://spare:1"), from: id("spare")), .spare)
        var owners = [0, 1, 0, 1]
        XCTAssertEqual(try m.replace(1, owners: &owners), .spare(id: id("spare")))
        XCTAssertEqual(m.servers, [id("s0"), id("spare")])
        XCTAssertEqual(m.serverEndpoints, ["tcp://a:1", "tcp://spare:1"])
        XCTAssertEqual(owners, [0, 1, 0, 1], "the spare takes the lost server's index and chunks")
        XCTAssertEqual(try m.replace(0, owners: &owners), .spread)
        XCTAssertEqual(m.servers, [id("spare")])
        XCTAssertEqual(owners, [0, 0, 0, 0])
        XCTAssertThrowsError(try m.replace(0, owners: &owners), "the only server, no spare")
    }

    func testSilenceIsMeasuredFromTheLastMessage() {
        var m = started()
        let t = Date()
        _ = m.classify(.heartbeat(step: 0), from: id("s0"), now: t)
        _ = m.classify(.heartbeat(step: 0), from: id("s1"), now: t.addingTimeInterval(-100))
        _ = m.classify(.heartbeat(step: 0), from: id("w0"), now: t)
        _ = m.classify(.heartbeat(step: 0), from: id("w1"), now: t.addingTimeInterval(-100))
        XCTAssertEqual(m.silentServer(timeout: 10, now: t), 1)
        XCTAssertEqual(m.silentWorkers([0, 1], timeout: 10, now: t), [1])
        XCTAssertEqual(m.silentWorkers([0], timeout: 10, now: t), [])
    }
}
