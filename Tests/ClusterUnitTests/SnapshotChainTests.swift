// Where snapshot copies are and how a re-plan restores them, without processes: each chunk's
// replica on its owner's successor, a lost server's chunks restored from there, both copies
// lost an error before any server is asked to restore.
import ClusterCoordinator
import ClusterCore
import XCTest

final class SnapshotChainTests: XCTestCase {
    let a = Array("A".utf8), b = Array("B".utf8), c = Array("C".utf8), d = Array("D".utf8)

    func testReplicasAreOnTheSuccessorAndTagsIncrease() {
        var chain = SnapshotChain()
        XCTAssertEqual([chain.nextTag(), chain.nextTag()], [1, 2])
        chain.committed(owners: [0, 0, 1, 2], servers: [a, b, c])
        XCTAssertEqual(chain.owner, [a, a, b, c])
        XCTAssertEqual(chain.replicaHolder, [b, b, c, a])
        chain.committed(owners: [0, 0], servers: [a])
        XCTAssertEqual(chain.replicaHolder, [nil, nil], "one server: the replica is the coordinator's")
    }

    /// B is lost: its chunks went to A and C (the survivors re-planned) and come from C, B's
    /// successor; A's and C's own chunks are restored in place.
    func testALostServersChunksComeFromItsSuccessor() throws {
        var chain = SnapshotChain()
        chain.committed(owners: [0, 0, 1, 1, 2, 2], servers: [a, b, c])
        let plan = try chain.restorePlan(owners: [0, 0, 0, 1, 1, 1], servers: [a, c])
        XCTAssertEqual(plan.keptBy, [[0, 1], [4, 5]])
        XCTAssertEqual(plan.moves, [.init(holder: 1, owner: 0, chunks: [2]), .init(holder: 1, owner: 1, chunks: [3])])
        XCTAssertEqual(plan.movedCount, 2)
    }

    /// A spare D takes the lost B's place: B's chunks move to D from C's replica.
    func testASpareTakesTheLostServersChunksFromTheReplica() throws {
        var chain = SnapshotChain()
        chain.committed(owners: [0, 1, 1, 2], servers: [a, b, c])
        let plan = try chain.restorePlan(owners: [0, 1, 1, 2], servers: [a, d, c])
        XCTAssertEqual(plan.keptBy, [[0], [], [3]])
        XCTAssertEqual(plan.moves, [.init(holder: 2, owner: 1, chunks: [1, 2])])
    }

    func testBothCopiesLostIsAnError() {
        var chain = SnapshotChain()
        chain.committed(owners: [0, 1, 2], servers: [a, b, c])
        XCTAssertThrowsError(try chain.restorePlan(owners: [0, 0, 0], servers: [a])) { error in
            XCTAssertTrue("\(error)".contains("chunk 1: the server that held it and the one holding its replica were both lost"), "\(error)")
        }
    }

    func testWithOneServerMovedChunksComeFromTheCoordinator() throws {
        var chain = SnapshotChain()
        chain.committed(owners: [0, 0], servers: [a])
        let plan = try chain.restorePlan(owners: [0, 0], servers: [d])
        XCTAssertEqual(plan.moves, [.init(holder: nil, owner: 0, chunks: [0, 1])])
    }
}
