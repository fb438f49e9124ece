// The scripted launches, for real: cluster/launch/slurm.sbatch under a Slurm brought up by the test
// (one node, and three nodes that are network namespaces with their own addresses), and
// cluster/launch/ssh.sh over sshd in five network namespaces (one host per role, distinct addresses,
// no loopback between roles). The scenarios are shell scripts in
// Tests/launch, since they drive daemons; these tests run them and show their output on failure.
// They need root (daemons, ip netns) and slurm-wlm, munge, openssh-server, iproute2, which
// cluster/tools/install-deps.sh installs as root; CI runs as root, so there they always run.
import ClusterCore
import ClusterServer
import Foundation
import ProcessSupport
import XCTest

final class LauncherTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let slurm = ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"]

    func testSlurmBatchJobOnOneNode() throws {
        try runScenario("slurm_test.sh", ["1"], needs: Self.slurm)
    }

    func testSlurmBatchJobAcrossThreeNodes() throws {
        try runScenario("slurm_test.sh", ["3"], needs: Self.slurm + ["/usr/sbin/ip", "/usr/bin/unshare"])
    }

    func testSSHLaunchAcrossNetworkNamespaces() throws {
        try runScenario("ssh_netns_test.sh", [], needs: ["/usr/sbin/sshd", "/usr/bin/ssh", "/usr/sbin/ip"])
    }

    /// Runs Tests/launch/NAME BIN_DIR WORK_DIR ARGUMENTS…; it must exit 0 and print PASS.
    func runScenario(_ name: String, _ arguments: [String], needs tools: [String], timeout: TimeInterval = 600) throws {
        guard getuid() == 0 else { throw XCTSkip("\(name) needs root (it starts daemons and network namespaces)") }
        for tool in tools where !FileManager.default.isExecutableFile(atPath: tool) {
            XCTFail("\(tool) is missing: run `bash cluster/tools/install-deps.sh` as root")
            return
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("redi-launch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let logURL = work.appendingPathComponent("scenario.log")
        let p = try ChildProcess(
            "/bin/bash",
            [
                Self.repository.appendingPathComponent("Tests/launch/\(name)").path,
                Bundle.main.bundleURL.path, work.appendingPathComponent("run").path
            ] + arguments,
            in: work, output: logURL)
        defer { ChildProcess.killAll() }
        // Past the deadline TERM first: the scenario's trap stops the daemons it started.
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        if p.isRunning { XCTFail("\(name) was still running after \(Int(timeout)) s"); p.signal(SIGTERM) }
        do { try p.wait(seconds: 60) } catch { XCTFail("\(error)") }
        let output = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
        print(output)
        XCTAssertEqual(p.terminationStatus, 0, "\(name) failed:\n\(output.suffix(6000))")
        XCTAssertTrue(output.contains("\nPASS"), "\(name) did not finish:\n\(output.suffix(6000))")
    }
}

/// What a server tells workers to connect to, from its bound endpoint and `--advertise`.
final class AdvertisedEndpointTests: XCTestCase {
    func testAdvertisedEndpoint() throws {
        let bound = "tcp://0.0.0.0:41234"
        XCTAssertEqual(try advertisedEndpoint(bound: bound, advertise: "node7"), "tcp://node7:41234")
        XCTAssertEqual(try advertisedEndpoint(bound: bound, advertise: "10.0.0.7"), "tcp://10.0.0.7:41234")
        XCTAssertEqual(try advertisedEndpoint(bound: bound, advertise: "tcp://10.0.0.7:*"), "tcp://10.0.0.7:41234")
        XCTAssertEqual(try advertisedEndpoint(bound: bound, advertise: "tcp://10.0.0.7:6000"), "tcp://10.0.0.7:6000")
        XCTAssertEqual(try advertisedEndpoint(bound: "tcp://[::]:41234", advertise: "[fd00::7]"), "tcp://[fd00::7]:41234")
        XCTAssertEqual(try advertisedEndpoint(bound: "tcp://[::]:41234", advertise: "tcp://[fd00::7]:6000"), "tcp://[fd00::7]:6000")
        XCTAssertEqual(try advertisedEndpoint(bound: "tcp://127.0.0.1:41234", advertise: nil), "tcp://127.0.0.1:41234")
        // A wildcard bind with nothing to advertise would send remote workers to themselves.
        for wildcard in ["tcp://0.0.0.0:41234", "tcp://[::]:41234"] {
            XCTAssertThrowsError(try advertisedEndpoint(bound: wildcard, advertise: nil)) {
                XCTAssertTrue("\($0)".contains("--advertise"), "\($0)")
            }
        }
        for bad in ["tcp://host:0", "tcp://host:70000", "tcp://host:http", "tcp://:5000", "a b"] {
            XCTAssertThrowsError(try advertisedEndpoint(bound: bound, advertise: bad), bad)
        }
    }
}
