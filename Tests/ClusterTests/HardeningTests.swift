// The cluster under hostile peers and failures, with real processes on 127.0.0.1: peers
// without the run key get nothing, an insider cannot forge pushes, non-finite gradients
// stop the run with the peer's name, a failing worker ends the run at once, slow steps do
// not look like dead workers, a worker can join mid-run with every example still used once
// per epoch, and every process says how the run ended in its exit status.
import Formats
import Foundation
import ProcessSupport
import XCTest

final class HardeningTests: ClusterTestCase {
    /// Waits until `log` contains `needle`; returns its text.
    @discardableResult
    func waitFor(_ needle: String, in log: String, seconds: Double = 60) throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let text = (try? String(contentsOf: dir.appendingPathComponent(log), encoding: .utf8)) ?? ""
            if text.contains(needle) { return text }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("\(log) never said \"\(needle)\"")
        return (try? String(contentsOf: dir.appendingPathComponent(log), encoding: .utf8)) ?? ""
    }

    /// Runs Tests/reference/hostile_peer.py with pyzmq; returns its exit status and output.
    func hostile(_ args: [String]) throws -> (Int32, String) {
        let name = "hostile-\(UUID().uuidString).log"
        let status = try startHostile(args, log: name).wait(seconds: 90)
        return (status, try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8))
    }

    /// Starts Tests/reference/hostile_peer.py in the background (the test waits for or kills it).
    func startHostile(_ args: [String], log: String) throws -> ChildProcess {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("reference/hostile_peer.py")
        return try ChildProcess(
            ProcessInfo.processInfo.environment["REDI_PS_PYTHON"] ?? "python3", [script.path] + args,
            in: dir, output: dir.appendingPathComponent(log))
    }

    /// The final checkpoint under OUTPUT holds the single-process trainer's weights (to sgemm's rounding).
    func assertWeights(_ checkpoint: String, match reference: [Float], file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertLessThan(zip(try loadCheckpoint(checkpoint), reference).map { abs($0 - $1) }.max()!, 1e-4, file: file, line: line)
    }

    func log(_ name: String) -> String { (try? String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)) ?? "" }

    func writeRecipe(_ text: String, _ name: String) throws {
        try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func worker(_ endpoint: String, _ log: String, _ extra: [String] = []) throws -> ChildProcess {
        try start("redi-worker", ["join", "--coordinator", endpoint, "--key", "run.key", "--threads", "1", "--timeout", "30"] + extra, log: log)
    }

    func server(_ endpoint: String, _ log: String) throws -> ChildProcess {
        try start("redi-ps", ["serve", "--coordinator", endpoint, "--key", "run.key", "--timeout", "30"], log: log)
    }

    func testOutsidersGetNothingAndNothingOfTheirsIsApplied() throws {
        let reference = try runSingleProcess()
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 1, port: port, output: "out"), "r.yaml")
        let s = try server(endpoint, "s.log")
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        let serverLog = try waitFor("serving parameters at ", in: "s.log")
        let data = try XCTUnwrap(serverLog.components(separatedBy: "serving parameters at ").last?.components(separatedBy: "\n").first)
        try waitFor("listening on", in: "c.log")
        let (status, output) = try hostile(["outsider", endpoint, data, "run.key"])
        print(output)
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(output.components(separatedBy: "no answer").count - 1, 6, output)
        // Each refused key is logged once, by the process that refused it.
        XCTAssertTrue(log("c.log").contains("refused CURVE peer"), log("c.log"))
        XCTAssertTrue(log("s.log").contains("refused CURVE peer"), log("s.log"))
        // The run then goes on with its real worker; no hostile hello took a slot.
        let w = try worker(endpoint, "w.log")
        try coordinator.wait(); try s.wait(); try w.wait()
        XCTAssertEqual(coordinator.terminationStatus, 0, log("c.log"))
        XCTAssertEqual(s.terminationStatus, 0); XCTAssertEqual(w.terminationStatus, 0)
        XCTAssertFalse(log("c.log").contains("outsider"), log("c.log"))
        try assertWeights("out/redi", match: reference)
    }

    /// A PLAIN data plane is unencrypted but not open: only the run's workers, by the name and
    /// key the coordinator admitted, get an answer from a server.
    func testAPlainDataPlaneAnswersOnlyTheRunsWorkers() throws {
        let reference = try runSingleProcess()
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 1, port: port, output: "out", dataPlane: "plain"), "r.yaml")
        let s = try server(endpoint, "s.log")
        // The worker is slow (3 s a step), so the run is still going while the outsider knocks.
        let w = try worker(endpoint, "w.log", ["--delay-steps", "3"])
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        let serverLog = try waitFor("serving parameters at ", in: "s.log")
        let data = try XCTUnwrap(serverLog.components(separatedBy: "serving parameters at ").last?.components(separatedBy: "\n").first)
        try waitFor("data plane: PLAIN", in: "s.log")
        let (status, output) = try hostile(["plain-outsider", data])
        print(output)
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(output.components(separatedBy: "no answer").count - 1, 4, output)
        XCTAssertTrue(log("s.log").contains("refused PLAIN peer"), log("s.log"))
        XCTAssertFalse(log("c.log").contains("redi step 2/2"), "the run ended before the outsider was done; the test proves less")
        try coordinator.wait(); try s.wait(); try w.wait()
        XCTAssertEqual(coordinator.terminationStatus, 0, log("c.log"))
        XCTAssertEqual(s.terminationStatus, 0, log("s.log")); XCTAssertEqual(w.terminationStatus, 0, log("w.log"))
        try assertWeights("out/redi", match: reference)
    }

    /// A server waiting for its coordinator buffers nothing large for peers without a key, and
    /// a flood of refused handshakes costs a bounded log (and memory).
    func testADataPortBuffersNothingLargeBeforeAuthenticationAndRefusalLogsAreBounded() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        let s = try server(endpoint, "s.log")  // no coordinator: it waits, data port bound
        let serverLog = try waitFor("serving parameters at ", in: "s.log")
        let data = try XCTUnwrap(serverLog.components(separatedBy: "serving parameters at ").last?.components(separatedBy: "\n").first)
        let (status, output) = try hostile(["flood", data, "\(s.pid)", "run.key"])
        print(output)
        XCTAssertEqual(status, 0, output)
        Thread.sleep(forTimeInterval: 1)
        let refusals = log("s.log").components(separatedBy: "\n").filter { $0.contains("refused CURVE peer") }
        XCTAssertGreaterThan(refusals.count, 0, log("s.log"))
        XCTAssertLessThanOrEqual(refusals.count, 20, "\(refusals.count) refusal lines for 600 handshakes")
        s.signal(SIGTERM)
        _ = try s.wait()
    }

    /// Worker 0 is slow, so worker 1's gradients are always early: the server holds one of its
    /// chunks (unacknowledged, so worker 1 sends no more) until worker 0's arrives, and the
    /// sum is still the single-process trainer's.
    func testAServerHoldsAtMostOneEarlyChunkPerWorker() throws {
        let reference = try runSingleProcess()
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 2, port: port, output: "out"), "r.yaml")
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try waitFor("listening on", in: "c.log")
        let slow = try worker(endpoint, "slow.log", ["--delay-steps", "0.5"])
        Thread.sleep(forTimeInterval: 2)  // its hello first: the slow worker takes slot 0 (asserted below)
        let fast = try worker(endpoint, "fast.log")
        let s = try server(endpoint, "s.log")
        try coordinator.wait(); try s.wait(); try slow.wait(); try fast.wait()
        XCTAssertEqual(coordinator.terminationStatus, 0, log("c.log"))
        XCTAssertTrue(log("slow.log").contains("[worker-0]"), log("slow.log"))
        XCTAssertTrue(log("s.log").contains("holding 1 early push "), log("s.log"))
        XCTAssertFalse(log("s.log").contains("holding 2 early pushes"), log("s.log"))
        try assertWeights("out/redi", match: reference)
    }

    func testAnInsiderCannotForgePushesAndNonFiniteGradientsStopTheRunNamingThePeer() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 2, port: port, output: "out"), "r.yaml")
        let s = try server(endpoint, "s.log")
        let w = try worker(endpoint, "w.log", ["--delay-steps", "1"])
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        let (status, output) = try hostile(["insider", endpoint, "run.key"])
        print(output)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains(": refused (403)"), output)
        XCTAssertTrue(output.contains("non-finite push as itself: refused (422)"), output)
        try coordinator.wait(); try s.wait(); try w.wait()
        XCTAssertEqual(coordinator.terminationStatus, 1)
        let slot = output.contains("admitted as worker 0") ? 0 : 1
        XCTAssertTrue(log("c.log").contains("worker \(slot) pushed non-finite gradients"), log("c.log"))
        XCTAssertEqual(s.terminationStatus, 1, log("s.log"))
        XCTAssertEqual(w.terminationStatus, 1, log("w.log"))
        XCTAssertTrue(log("w.log").contains("the run failed"), log("w.log"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/sft/model.safetensors").path))
    }

    /// One contribution per (version, shard): a worker that pushes its shard again after the
    /// server summed and reported the step (its report held back, so the update waits) is refused.
    func testASecondPushAfterTheStepWasSummedIsRefused() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 2, port: port, output: "out", timeout: 6), "r.yaml")
        let s = try server(endpoint, "s.log")
        let w = try worker(endpoint, "w.log", ["--delay-steps", "1"])
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        let (status, output) = try hostile(["insider-twice", endpoint, "run.key"])
        print(output)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("first push of shard 0: acknowledged") || output.contains("first push of shard 1: acknowledged"), output)
        XCTAssertTrue(output.contains("at the same version: refused (409)"), output)
        XCTAssertTrue(log("s.log").contains("every shard of this step was summed and reported"), log("s.log"))
        // The insider then goes silent: it is dropped and the honest worker finishes the run.
        try coordinator.wait(); try s.wait(); try w.wait()
        XCTAssertEqual(coordinator.terminationStatus, 0, log("c.log"))
        XCTAssertTrue(log("c.log").contains("dropped"), log("c.log"))
    }

    /// A finite but absurd push (1e30 per value) is not applied: the coordinator bounds each
    /// worker's contribution norm and ends the run naming the worker; every process exits nonzero.
    func testAnAbsurdFinitePushEndsTheRunNamingTheWorker() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 2, port: port, output: "out"), "r.yaml")
        let s = try server(endpoint, "s.log")
        let w = try worker(endpoint, "w.log")
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        let (status, output) = try hostile(["insider-absurd", endpoint, "run.key"])
        print(output)
        XCTAssertEqual(status, 0, output)
        try coordinator.wait(); try s.wait(); try w.wait()
        XCTAssertEqual(coordinator.terminationStatus, 1, log("c.log"))
        XCTAssertTrue(log("c.log").contains("worker-insider"), log("c.log"))
        XCTAssertTrue(log("c.log").contains("over cluster.max_shard_grad_norm"), log("c.log"))
        XCTAssertFalse(log("c.log").contains("sft step 1/"), "an update was logged: \(log("c.log"))")
        XCTAssertEqual(s.terminationStatus, 1, log("s.log")); XCTAssertEqual(w.terminationStatus, 1, log("w.log"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/sft/model.safetensors").path))
    }

    /// Liveness from progress: a worker that heartbeats but never reports is dropped at the step
    /// timeout (not the honest worker whose pushes wait behind it), and the run ends with the
    /// honest worker's weights.
    func testAWorkerThatHeartbeatsButNeverReportsIsDroppedNotTheHonestOne() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 2, port: port, output: "out", timeout: 30, stepTimeout: 4), "r.yaml")
        let s = try server(endpoint, "s.log")
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try waitFor("listening on", in: "c.log")
        // The silent insider joins first: it holds slot 0, so the honest worker's pushes wait behind it.
        let insider = try startHostile(["insider-silent", endpoint, "run.key"], log: "insider.log")
        Thread.sleep(forTimeInterval: 2)
        let w = try worker(endpoint, "w.log", ["--timeout", "5"])  // shorter than the wait behind the insider
        try coordinator.wait(); try s.wait(); try w.wait(); _ = try insider.wait(seconds: 70)
        XCTAssertEqual(coordinator.terminationStatus, 0, log("c.log"))
        XCTAssertEqual(w.terminationStatus, 0, log("w.log"))
        XCTAssertEqual(insider.terminationStatus, 0, log("insider.log"))
        XCTAssertTrue(log("c.log").contains("worker(s) [0] did not report shard 0 within 4 s"), log("c.log"))
        XCTAssertTrue(log("insider.log").contains("admitted as worker 0"), log("insider.log"))
    }

    /// A server that heartbeats but never acknowledges the first load is replaced by the spare
    /// that waits (it hung the run forever, or failed it at the initial load).
    func testAServerThatNeverAcknowledgesTheLoadIsReplacedByTheSpare() throws {
        let reference = try runSingleProcess()
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 1, port: port, output: "out", stepTimeout: 3), "r.yaml")
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try waitFor("listening on", in: "c.log")
        let rogue = try startHostile(["rogue-server", endpoint, "run.key", "silent-load"], log: "rogue.log")
        try waitFor("server 0 joined: server-rogue", in: "c.log")  // its hello first: it is server 0, the real one the spare
        let spare = try server(endpoint, "s.log")
        try waitFor("waits as a spare", in: "c.log")  // waiting before the run starts, not racing the worker's hello
        let w = try worker(endpoint, "w.log")
        try coordinator.wait(); try spare.wait(); try w.wait()
        rogue.signal(SIGKILL); _ = try? rogue.wait()
        XCTAssertEqual(coordinator.terminationStatus, 0, log("c.log"))
        XCTAssertTrue(log("c.log").contains("server 0 (server-rogue) did not acknowledge a load or update within 3 s"), log("c.log"))
        XCTAssertTrue(log("c.log").contains("takes over server 0"), log("c.log"))
        try assertWeights("out/redi", match: reference)
    }

    /// Verification by recomputation: with every shard recomputed by the other worker, an
    /// honest run agrees bit for bit (and ends with the single-process weights), and a worker
    /// that scales what it pushes by 1.5 (well inside the norm bound) is caught at step 1.
    func testRecomputationAgreesForHonestWorkersAndCatchesADishonestOne() throws {
        let reference = try runSingleProcess()
        for dishonest in [false, true] {
            let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)", tag = dishonest ? "dishonest" : "honest"
            try writeRecipe(recipe(servers: 1, workers: 2, port: port, output: "out-\(tag)", verifyEvery: 1, verifyShards: 2), "r.yaml")
            let s = try server(endpoint, "s-\(tag).log")
            let c = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c-\(tag).log")
            try waitFor("listening on", in: "c-\(tag).log")
            let w0 = try worker(endpoint, "w0-\(tag).log", dishonest ? ["--corrupt-gradients", "1.5"] : [])
            let w1 = try worker(endpoint, "w1-\(tag).log")
            try c.wait(); try s.wait(); try w0.wait(); try w1.wait()
            let text = log("c-\(tag).log")
            if dishonest {
                XCTAssertEqual(c.terminationStatus, 1, text)
                // Whichever slot the dishonest worker got, its shard is among the two recomputed.
                XCTAssertTrue(text.contains("step 1 shard ") && text.contains("recomputation disagree"), text)
                XCTAssertFalse(text.contains("sft step 1/"), text)
            } else {
                XCTAssertEqual(c.terminationStatus, 0, text)
                XCTAssertTrue(text.contains("verified by recomputation: 1 shard so far") && text.contains("bit for bit"), text)
                XCTAssertLessThan(zip(try loadCheckpoint("out-honest/redi"), reference).map { abs($0 - $1) }.max()!, 1e-4)
            }
        }
    }

    /// A server that sends workers chunks of the wrong size is the one replaced (by the spare),
    /// not the worker that noticed; the run replays to the single-process weights.
    func testAServerSendingWorkersWrongSizedChunksIsReplacedNotTheWorkerBlamed() throws {
        let reference = try runSingleProcess()
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 1, port: port, output: "out"), "r.yaml")
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try waitFor("listening on", in: "c.log")
        let rogue = try startHostile(["rogue-data-server", endpoint, "run.key", "bad-pull"], log: "rogue.log")
        // Its hello first: it is server 0, the real one the spare (a fixed sleep lost that race
        // on a loaded machine, where Python took longer to start).
        try waitFor("server 0 joined: server-rogue", in: "c.log")
        let spare = try server(endpoint, "s.log")
        // The spare must be waiting before the run starts: under load its hello came after
        // the worker's, the run began, and the rogue was found with no spare to take over.
        try waitFor("waits as a spare", in: "c.log")
        let w = try worker(endpoint, "w.log")
        try coordinator.wait(); try spare.wait(); try w.wait()
        rogue.signal(SIGKILL); _ = try? rogue.wait()
        XCTAssertEqual(coordinator.terminationStatus, 0, log("c.log"))
        XCTAssertEqual(w.terminationStatus, 0, log("w.log"))
        XCTAssertTrue(log("rogue.log").contains("answered a worker's pull with 8-byte chunks"), log("rogue.log"))
        XCTAssertTrue(log("c.log").contains("server 0 (server-rogue) did not answer worker 0"), log("c.log"))
        XCTAssertTrue(log("c.log").contains("takes over server 0"), log("c.log"))
        try assertWeights("out/redi", match: reference)
    }

    /// A server whose reported Σg² its workers' pushes cannot explain (‖Σₖ gₖ‖ ≤ Σₖ ‖gₖ‖) ends
    /// the run naming it (it froze training with exit 0: every step clipped to nothing).
    func testAServerReportingANormItsPushesCannotExplainEndsTheRunNamingIt() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 1, port: port, output: "out"), "r.yaml")
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try waitFor("listening on", in: "c.log")
        let rogue = try startHostile(["rogue-data-server", endpoint, "run.key", "lying-norm"], log: "rogue.log")
        let w = try worker(endpoint, "w.log")
        try coordinator.wait(); try w.wait(); _ = try rogue.wait(seconds: 100)
        XCTAssertTrue(log("rogue.log").contains("reported a gradient norm of 1e15"), log("rogue.log"))
        XCTAssertEqual(coordinator.terminationStatus, 1, log("c.log"))
        XCTAssertTrue(
            log("c.log").contains("server 0 (server-rogue) reported a gradient norm of 1000000000000000.0 for step 1, more than the workers' pushes to it allow"), log("c.log"))
        XCTAssertEqual(w.terminationStatus, 1, log("w.log"))
        XCTAssertFalse(log("c.log").contains("sft step 1/"), log("c.log"))
    }

    func testARogueServerAnsweringAPullWithWrongSizedFramesIsAnErrorNotACrash() throws {
        for mode in ["short", "long"] {
            let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
            try writeRecipe(recipe(servers: 1, workers: 1, port: port, output: "out-\(mode)"), "r.yaml")
            let w = try worker(endpoint, "w-\(mode).log")
            let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c-\(mode).log")
            let (status, output) = try hostile(["rogue-server", endpoint, "run.key", mode])
            print(output)
            XCTAssertEqual(status, 0, output)
            try coordinator.wait(); try w.wait()
            XCTAssertEqual(coordinator.terminationStatus, 1, log("c-\(mode).log"))  // an error, not a signal
            XCTAssertTrue(log("c-\(mode).log").contains("answered a pull with chunks or sizes that do not match the plan"), log("c-\(mode).log"))
            XCTAssertEqual(w.terminationStatus, 1)
        }
    }

    func testAWorkerThatFailsEndsTheRunAtOnceAndEveryProcessExitsNonzero() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        // Stage 1 is SFT but given preference records: the workers find out, not the coordinator.
        try writeRecipe(recipe(servers: 1, workers: 2, port: port, output: "out", timeout: 60, sftData: "pref.jsonl"), "r.yaml")
        let started = Date()
        let s = try server(endpoint, "s.log")
        let workers = [try worker(endpoint, "w0.log"), try worker(endpoint, "w1.log")]
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try coordinator.wait(); try s.wait(); for w in workers { try w.wait() }
        let seconds = Date().timeIntervalSince(started)
        print("a failing worker ended the run in \(String(format: "%.1f", seconds)) s (timeout 60 s)")
        XCTAssertLessThan(seconds, 20)
        XCTAssertEqual(coordinator.terminationStatus, 1)
        XCTAssertTrue(log("c.log").contains("sft needs prompt/completion records"), log("c.log"))
        XCTAssertEqual(s.terminationStatus, 1, log("s.log"))
        for w in workers { XCTAssertEqual(w.terminationStatus, 1) }
    }

    func testStepsLongerThanTheTimeoutDoNotLookLikeDeadWorkers() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 1, port: port, output: "out", timeout: 1, heartbeat: 0.2), "r.yaml")
        let s = try server(endpoint, "s.log")
        let w = try worker(endpoint, "w.log", ["--delay-steps", "1.6"])
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try coordinator.wait(); try s.wait(); try w.wait()
        XCTAssertEqual(coordinator.terminationStatus, 0, log("c.log"))
        XCTAssertFalse(log("c.log").contains("stopped answering"), log("c.log"))
        XCTAssertTrue(log("c.log").contains("redi step 2/2"), log("c.log"))
    }

    func testAWorkerJoiningMidRunIsAdmittedAndEveryExampleIsUsedOncePerEpoch() throws {
        let reference = try runSingleProcess()
        let uninterrupted = try runCluster(servers: 2, workers: 2)
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 2, workers: 2, port: port, output: "out", timeout: 2, heartbeat: 0.2), "r.yaml")
        var processes = [
            try server(endpoint, "s0.log"), try server(endpoint, "s1.log"),
            try worker(endpoint, "w1.log", ["--delay-steps", "0.4"])
        ]
        let dying = try worker(endpoint, "w0.log", ["--fail-at-step", "1", "--delay-steps", "0.4"])
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try waitFor("stopped answering", in: "c.log")
        processes.append(try worker(endpoint, "w2.log", ["--delay-steps", "0.4"]))
        try coordinator.wait(); try dying.wait()
        for p in processes { try p.wait(); XCTAssertEqual(p.terminationStatus, 0) }
        let text = log("c.log")
        XCTAssertEqual(coordinator.terminationStatus, 0, text)
        XCTAssertEqual(dying.terminationStatus, 3)
        XCTAssertTrue(text.contains("admitted at step"), text)
        // Exactly once: in each (stage, epoch), every example id appears once.
        var seen: [String: [Int]] = [:]
        for line in try String(contentsOf: dir.appendingPathComponent("out/examples.jsonl"), encoding: .utf8).split(separator: "\n") {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let stage = try XCTUnwrap(object["stage"] as? String)
            for pair in try XCTUnwrap(object["examples"] as? [[Int]]) { seen["\(stage) epoch \(pair[0])", default: []].append(pair[1]) }
        }
        XCTAssertEqual(seen.count, 6)  // 4 SFT epochs + 2 REDI epochs of 12 examples, one batch each
        for (key, ids) in seen { XCTAssertEqual(ids.sorted(), Array(0..<12), key) }
        let weights = try loadCheckpoint("out/redi")
        let worst = zip(weights, reference).map { abs($0 - $1) }.max()!
        // A batch is cut into one shard per slot whoever computes it: the same bits as a run without faults.
        let vsUninterrupted = zip(weights, uninterrupted).map { abs($0 - $1) }.max()!
        print("a worker died at step 2 and another joined: max |w - single-process| = \(worst), max |w - uninterrupted cluster| = \(vsUninterrupted)")
        XCTAssertLessThan(worst, 1e-4)
        XCTAssertEqual(vsUninterrupted, 0)
    }

    /// Kills a server mid-run (with a spare waiting, or without one) and compares the final
    /// weights with the uninterrupted cluster run: the snapshot replay must give the same bits.
    func serverLoss(spare: Bool) throws {
        let uninterrupted = try runCluster(servers: 2, workers: 2)
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(
            recipe(
                servers: 2, workers: 2, port: port, output: "out", timeout: 1.5, heartbeat: 0.2,
                clusterExtra: ", snapshot_every: 2"), "r.yaml")
        let doomed = try server(endpoint, "s1.log")
        var ps = [
            try server(endpoint, "s0.log"), try worker(endpoint, "w0.log", ["--delay-steps", "0.3"]),
            try worker(endpoint, "w1.log", ["--delay-steps", "0.3"])
        ]
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try waitFor("sft step 1/4", in: "c.log")
        if spare { ps.append(try server(endpoint, "spare.log")); try waitFor("waits as a spare", in: "c.log") }
        doomed.signal(SIGKILL)
        try coordinator.wait()
        for p in ps { try p.wait(); XCTAssertEqual(p.terminationStatus, 0) }
        let text = log("c.log")
        XCTAssertEqual(coordinator.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("replaying from the snapshot"), text)
        XCTAssertTrue(text.contains(spare ? "takes over server" : "spread over the 1 servers left"), text)
        let weights = try loadCheckpoint("out/redi")
        let worst = zip(weights, uninterrupted).map { abs($0 - $1) }.max()!
        print("server lost (\(spare ? "spare took over" : "survivors took its chunks")): max |w - uninterrupted| = \(worst)")
        XCTAssertEqual(worst, 0)
        let metrics = try String(contentsOf: dir.appendingPathComponent("out/metrics.jsonl"), encoding: .utf8)
        XCTAssertEqual(metrics.split(separator: "\n").count, 6)  // replayed steps are not logged twice
        try checkTensorBoard("out")  // nor twice in the TensorBoard events
    }

    /// Two of three servers lost one after the other, no spare: each time the lost server's
    /// chunks come back from the replica on its successor (then, with one server left, from the
    /// coordinator's), and the run ends with the uninterrupted run's bits.
    /// With `snapshot_dir`: the servers keep snapshots and replicas in files, so this also
    /// checks that file-backed copies restore bit-exactly.
    func testTwoServersLostOneAfterTheOtherAreRestoredFromTheirReplicas() throws {
        let uninterrupted = try runCluster(servers: 3, workers: 2)
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(
            recipe(
                servers: 3, workers: 2, port: port, output: "out", timeout: 1.5, heartbeat: 0.2,
                clusterExtra: ", snapshot_every: 2, snapshot_dir: \(dir.path)/snapshots"), "r.yaml")
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try waitFor("listening on", in: "c.log")
        let first = try server(endpoint, "s0.log")
        try waitFor("server 0 joined", in: "c.log")  // server 0, whose replica is on server 1
        let second = try server(endpoint, "s1.log")
        try waitFor("server 1 joined", in: "c.log")
        let ps = [
            try server(endpoint, "s2.log"), try worker(endpoint, "w0.log", ["--delay-steps", "0.4"]),
            try worker(endpoint, "w1.log", ["--delay-steps", "0.4"])
        ]
        try waitFor("sft step 1/4", in: "c.log")
        first.signal(SIGKILL)
        try waitFor("sft step 3/4", in: "c.log")
        second.signal(SIGKILL)
        try coordinator.wait()
        for p in ps { try p.wait(); XCTAssertEqual(p.terminationStatus, 0) }
        let text = log("c.log")
        XCTAssertEqual(coordinator.terminationStatus, 0, text)
        XCTAssertEqual(text.components(separatedBy: "replaying from the snapshot").count - 1, 2, text)
        XCTAssertTrue(text.contains("spread over the 2 servers left") && text.contains("spread over the 1 servers left"), text)
        XCTAssertTrue(text.contains("from replicas"), text)
        // Snapshots and replicas lived in files there (unlinked at once: none left behind).
        XCTAssertTrue(log("s2.log").contains("snapshots and replicas kept in files in \(dir.path)/snapshots"), log("s2.log"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("snapshots").path), [])
        let worst = zip(try loadCheckpoint("out/redi"), uninterrupted).map { abs($0 - $1) }.max()!
        print("two servers lost one after the other, snapshots in files: max |w - uninterrupted| = \(worst)")
        XCTAssertEqual(worst, 0)
    }

    /// The coordinator holds nothing of the model's size: the model is read a piece at a time as
    /// it is loaded into the servers, snapshots live on the servers, checkpoints are streamed to
    /// disk. Its peak RSS for the `tiny` model (0.1 M parameters) and SmolLM2-135M (538 MB of fp32
    /// weights, 1.6 GB with AdamW's state) differ by less than 100 MB.
    func testTheCoordinatorsMemoryDoesNotGrowWithTheModel() throws {
        var peaks: [String: Double] = [:]
        for model in ["tiny", "smollm2-135m"] {
            let port = freePort()
            try writeRecipe(
                """
                run_id: e2e
                output: out-\(model)
                seed: 3
                model: {init: \(model)}
                stages:
                  - {name: sft, objective: sft, data: sft.jsonl, max_steps: 2, batch_size: 2, learning_rate: 1.0e-3}
                cluster: {servers: 2, workers: 1, bind: "tcp://127.0.0.1:\(port)", timeout_seconds: 60, snapshot_every: 1, chunk_mib: 1}
                """, "\(model).yaml")
            let (status, text) = try runWithPeers(port: port, servers: 2, workers: 1, ["--recipe", "\(model).yaml"], tag: model)
            XCTAssertEqual(status, 0, text)
            let peak = try XCTUnwrap(text.firstMatch(of: /\[coordinator\] peak RSS ([0-9.]+) MiB/).flatMap { Double($0.1) }, text)
            peaks[model] = peak
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out-\(model)/sft/optimizer.safetensors").path))
        }
        print("coordinator peak RSS: tiny \(peaks["tiny"]!) MiB, smollm2-135m \(peaks["smollm2-135m"]!) MiB")
        XCTAssertLessThan(peaks["smollm2-135m"]! - peaks["tiny"]!, 100, "\(peaks)")
    }

    /// The coordinator reads a stage's examples back from a scratch token file, so 200 000
    /// records (35 MB of JSONL, 26 M token ids: ~140 MB held as before) cost it the index alone.
    func testTheCoordinatorsMemoryDoesNotGrowWithTheData() throws {
        var peaks: [Int: Double] = [:]
        for records in [20, 200_000] {
            var text = ""
            text.reserveCapacity(records * 180)
            for i in 0..<records {
                text += #"{"prompt": "\#(i % 97) + \#(i % 89) =", "completion": " \#(String(repeating: "abcdefgh", count: 15)) \#(i)"}"# + "\n"
            }
            try text.write(to: dir.appendingPathComponent("data-\(records).jsonl"), atomically: true, encoding: .utf8)
            let port = freePort()
            try writeRecipe(
                """
                run_id: e2e
                output: out-\(records)
                seed: 3
                model: {init: tiny}
                stages:
                  - {name: sft, objective: sft, data: data-\(records).jsonl, max_steps: 1, batch_size: 2, learning_rate: 1.0e-3}
                cluster: {servers: 1, workers: 1, bind: "tcp://127.0.0.1:\(port)", timeout_seconds: 60, snapshot_every: 0}
                """, "data-\(records).yaml")
            let (status, log) = try runWithPeers(port: port, servers: 1, workers: 1, ["--recipe", "data-\(records).yaml"], tag: "data-\(records)")
            XCTAssertEqual(status, 0, log)
            XCTAssertTrue(log.contains("\(records) records kept"), log)
            peaks[records] = try XCTUnwrap(log.firstMatch(of: /\[coordinator\] peak RSS ([0-9.]+) MiB/).flatMap { Double($0.1) }, log)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("out-\(records)").path).filter { $0.hasPrefix(".tokens") }, [])
        }
        print("coordinator peak RSS: 20 records \(peaks[20]!) MiB, 200 000 records \(peaks[200_000]!) MiB")
        XCTAssertLessThan(peaks[200_000]! - peaks[20]!, 30, "\(peaks)")
    }

    func testALostServerIsReplacedByASpareAndTheRunReplaysToTheSameWeights() throws { try serverLoss(spare: true) }

    func testALostServerWithoutASpareIsSpreadOverTheSurvivorsWithTheSameWeights() throws { try serverLoss(spare: false) }

    func testPeersRejoinARestartedCoordinatorThatResumesFromTheLatestCheckpoint() throws {
        let uninterrupted = try runCluster(servers: 1, workers: 2)
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 2, port: port, output: "out", timeout: 1.5, heartbeat: 0.2), "r.yaml")
        func peer(_ binary: String, _ args: [String], _ log: String) throws -> ChildProcess {
            try start(binary, args + ["--coordinator", endpoint, "--key", "run.key", "--timeout", "8"], log: log)
        }
        // One thread per worker, as in the uninterrupted run: sgemm's rounding depends on the thread count.
        let ps = [
            try peer("redi-ps", ["serve"], "s.log"), try peer("redi-worker", ["join", "--threads", "1", "--delay-steps", "0.4"], "w0.log"),
            try peer("redi-worker", ["join", "--threads", "1", "--delay-steps", "0.4"], "w1.log")
        ]
        let first = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c1.log")
        try waitFor("out/sft-step2", in: "c1.log")
        try waitFor("sft step 3/4", in: "c1.log")  // logged after the checkpoint: must not be logged twice
        first.signal(SIGKILL)
        try first.wait()
        let second = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key", "--resume", "latest"], log: "c2.log")
        try second.wait()
        for p in ps { try p.wait(); XCTAssertEqual(p.terminationStatus, 0) }
        XCTAssertEqual(second.terminationStatus, 0, log("c2.log"))
        XCTAssertTrue(log("c2.log").contains("resuming from the newest checkpoint"), log("c2.log"))
        XCTAssertTrue(log("w0.log").contains("waiting up to"), log("w0.log"))
        let worst = zip(try loadCheckpoint("out/redi"), uninterrupted).map { abs($0 - $1) }.max()!
        print("coordinator killed after sft step 2, restarted with --resume latest: max |w - uninterrupted| = \(worst)")
        XCTAssertEqual(worst, 0)
        try assertEveryStepLoggedOnce("out")
    }

    /// metrics.jsonl and examples.jsonl of OUTPUT hold each (stage, step) once, and TensorBoard agrees.
    func assertEveryStepLoggedOnce(_ output: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for name in ["metrics.jsonl", "examples.jsonl"] {
            let text = try String(contentsOf: dir.appendingPathComponent("\(output)/\(name)"), encoding: .utf8)
            let steps = try text.split(separator: "\n").compactMap { row -> String? in
                let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(row.utf8)) as? [String: Any])
                if name == "metrics.jsonl", o["step"] != nil {
                    // Each step records the workers' contributions as the servers measured them.
                    let largest = try XCTUnwrap(o["grad_norm/shard_max"] as? Double, "\(o)"), median = try XCTUnwrap(o["grad_norm/shard_median"] as? Double)
                    XCTAssertTrue(largest >= median && median > 0, "\(o)", file: file, line: line)
                }
                return (o["step"] as? Int).map { "\(o["stage"] ?? "")/\($0)" }
            }
            XCTAssertEqual(steps.count, Set(steps).count, "\(name) logs a step twice: \(steps)", file: file, line: line)
            XCTAssertEqual(Set(steps).count, 6, "\(name): \(steps)", file: file, line: line)
        }
        try checkTensorBoard(output)
    }

    /// A write that fails part-way (here the file-size limit, as a full disk would) ends the run
    /// with the file's name and leaves no partial file behind; every process exits nonzero.
    func testAFailedCheckpointWriteNamesTheFileAndLeavesNoPartialFile() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 1, port: port, output: "out"), "r.yaml")
        let s = try server(endpoint, "s.log"), w = try worker(endpoint, "w.log")
        // 200 KiB per file: the logs fit, the 430 KB model does not. SIGXFSZ ignored: write() fails with EFBIG.
        let binary = Self.products.appendingPathComponent("redi-ps").path
        let c = try ChildProcess(
            "/bin/bash", ["-c", "ulimit -f 200; trap '' XFSZ; exec \"$0\" coordinate --recipe r.yaml --key run.key", binary],
            in: dir, output: dir.appendingPathComponent("c.log"))
        try c.wait(); try s.wait(); try w.wait()
        XCTAssertEqual(c.terminationStatus, 1, log("c.log"))
        XCTAssertTrue(log("c.log").contains("out/sft-step2/model.safetensors: cannot write"), log("c.log"))
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: dir.appendingPathComponent("out").path).filter { $0.hasSuffix(".partial") }
        XCTAssertEqual(leftovers, [])
        XCTAssertEqual(s.terminationStatus, 1); XCTAssertEqual(w.terminationStatus, 1)
    }

    /// `save_dtype: bf16` checkpoints that `transformers`-style readers take as bfloat16 (half the
    /// bytes), sharded past `max_shard_size`, with the fp32 master weights in optimizer.safetensors
    /// so resuming is exact; `save_total_limit` keeps only the newest step checkpoints.
    func testBF16CheckpointsResumeExactlyAndOldStepCheckpointsArePruned() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        let text =
            recipe(servers: 1, workers: 1, port: port, output: "out").replacingOccurrences(of: "checkpoint_every: 2", with: "checkpoint_every: 1")
            + "\nsave_dtype: bf16\nsave_total_limit: 1\nmax_shard_size: 100KB\n"
        try writeRecipe(text, "r.yaml")
        func run(_ extra: [String], _ name: String) throws {
            let s = try server(endpoint, "s-\(name).log"), w = try worker(endpoint, "w-\(name).log")
            let c = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"] + extra, log: "c-\(name).log")
            try c.wait(); try s.wait(); try w.wait()
            XCTAssertEqual(c.terminationStatus, 0, log("c-\(name).log"))
        }
        try run([], "first")
        let out = dir.appendingPathComponent("out")
        XCTAssertTrue(log("c-first.log").contains("removed checkpoint \(out.path)/sft-step1 (save_total_limit 1)"), log("c-first.log"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.contains("-step") }, ["sft-step3"])
        // 107584 bf16 values = 215 KB: sharded at 100 KB, as save_pretrained would.
        let shards = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("redi").path).filter { $0.hasSuffix(".safetensors") && $0.hasPrefix("model-") }
        XCTAssertGreaterThan(shards.count, 1, "\(shards)")
        var stored = 0
        for shard in shards {
            let bytes = try Data(contentsOf: out.appendingPathComponent("redi/\(shard)"))
            XCTAssertTrue(String(decoding: bytes.prefix(4096), as: UTF8.self).contains("\"dtype\":\"BF16\""), shard)
            stored += bytes.count
        }
        XCTAssertLessThan(stored, 107584 * 2 + 8192 * shards.count)
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("redi/config.json"), encoding: .utf8).contains("\"bfloat16\""))
        let master = try SafetensorsFile(url: out.appendingPathComponent("redi/optimizer.safetensors")).read("master_weights")
        let rounded = try loadCheckpoint("out/redi")
        XCTAssertEqual(zip(master, rounded).map { abs($0 - $1) / max(abs($0), 1e-30) }.max()!, 0.004, accuracy: 0.004)  // bf16 rounding only
        // Resumed from the step checkpoint the limit kept: the same fp32 weights bit for bit.
        try run(["--resume", "out/sft-step3"], "resumed")
        XCTAssertEqual(try SafetensorsFile(url: out.appendingPathComponent("redi/optimizer.safetensors")).read("master_weights"), master)
    }

    /// Resuming verifies each checkpoint against its manifest: a flipped bit in the newest is
    /// found and the run resumes from the newest that verifies, to the uninterrupted weights;
    /// trainer_state.json fields out of range are errors; an output holding a run is refused
    /// unless --resume or --overwrite says what to do with it.
    func testADamagedCheckpointIsSkippedForTheNewestThatVerifies() throws {
        let uninterrupted = try runCluster(servers: 1, workers: 1)
        func rerun(_ extra: [String], _ log: String, peers: Bool = true) throws -> ChildProcess {
            let recipe = try String(contentsOf: dir.appendingPathComponent("recipe-1x1.yaml"), encoding: .utf8)
            let endpoint = try XCTUnwrap(recipe.components(separatedBy: "bind: \"").dropFirst().first?.components(separatedBy: "\"").first)
            let c = try start("redi-ps", ["coordinate", "--recipe", "recipe-1x1.yaml", "--key", "run.key"] + extra, log: log)
            if peers {
                _ = try server(endpoint, "s-\(log)"); _ = try worker(endpoint, "w-\(log)")
            }
            _ = try c.wait()
            return c
        }
        // The same output again, with neither flag: refused, nothing touched.
        let again = try rerun([], "again.log", peers: false)
        XCTAssertEqual(again.terminationStatus, 1)
        XCTAssertTrue(log("again.log").contains("already holds a run"), log("again.log"))
        XCTAssertTrue(log("again.log").contains("output: \(dir.appendingPathComponent("out-1x1").standardizedFileURL.path)"), log("again.log"))
        // One flipped bit in the newest checkpoint's weights, and the next one's AdamW v zeroed at its end.
        let model = dir.appendingPathComponent("out-1x1/redi/model.safetensors")
        var bytes = try Data(contentsOf: model)
        bytes[bytes.count / 2] ^= 0x10
        try bytes.write(to: model)
        let optimizer = dir.appendingPathComponent("out-1x1/sft/optimizer.safetensors")
        var state = try Data(contentsOf: optimizer)
        state.replaceSubrange((state.count - 4000)..<state.count, with: Data(count: 4000))
        try state.write(to: optimizer)
        let resumed = try rerun(["--resume", "latest"], "resumed.log")
        XCTAssertEqual(resumed.terminationStatus, 0, log("resumed.log"))
        XCTAssertTrue(log("resumed.log").contains("skipping checkpoint \(dir.appendingPathComponent("out-1x1/redi").path)"), log("resumed.log"))
        XCTAssertTrue(log("resumed.log").contains("differ from the manifest"), log("resumed.log"))
        XCTAssertTrue(log("resumed.log").contains("skipping checkpoint \(dir.appendingPathComponent("out-1x1/sft").path)"), log("resumed.log"))
        XCTAssertTrue(
            log("resumed.log").contains("resuming from the newest checkpoint that verifies, \(dir.appendingPathComponent("out-1x1/sft-step2").path)"),
            log("resumed.log"))
        XCTAssertEqual(zip(try loadCheckpoint("out-1x1/redi"), uninterrupted).map { abs($0 - $1) }.max()!, 0)
        try assertEveryStepLoggedOnce("out-1x1")
        // trainer_state.json fields out of range, with a manifest that matches (rehashed by Python's hashlib).
        for (field, value, complaint) in [("data_position", "-5", "data_position is -5"), ("step", "1000000", "step is 1000000")] {
            let (status, output) = try python("Tests/reference/edit_checkpoint.py", ["out-1x1/sft-step2", field, value])
            XCTAssertEqual(status, 0, output)
            let bad = try rerun(["--resume", "out-1x1/sft-step2"], "bad-\(field).log", peers: false)
            XCTAssertEqual(bad.terminationStatus, 1, log("bad-\(field).log"))  // an error, not a trap
            XCTAssertTrue(log("bad-\(field).log").contains(complaint), log("bad-\(field).log"))
        }
        // --overwrite replaces the run.
        let replaced = try rerun(["--overwrite"], "overwrite.log")
        XCTAssertEqual(replaced.terminationStatus, 0, log("overwrite.log"))
        XCTAssertEqual(zip(try loadCheckpoint("out-1x1/redi"), uninterrupted).map { abs($0 - $1) }.max()!, 0)
        try assertEveryStepLoggedOnce("out-1x1")
    }

    func testAServerWithoutChunksDoesNotStallTheRun() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        // One chunk for the whole tiny model: the second server holds nothing.
        try writeRecipe(recipe(servers: 2, workers: 1, port: port, output: "out", chunkMiB: 1), "r.yaml")
        let ps = [try server(endpoint, "s0.log"), try server(endpoint, "s1.log"), try worker(endpoint, "w.log")]
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        try coordinator.wait()
        for p in ps { try p.wait(); XCTAssertEqual(p.terminationStatus, 0) }
        XCTAssertEqual(coordinator.terminationStatus, 0, log("c.log"))
        XCTAssertTrue(log("c.log").contains("1 chunks of ≤ 1.0 MiB over 2 servers"), log("c.log"))
    }

    func testKeyFilesAreCheckedAndAWrongKeyIsAClearError() throws {
        func run(_ binary: String, _ args: [String]) throws -> (Int32, String) {
            let p = try start(binary, args, log: "k.log")
            try p.wait()
            return (p.terminationStatus, log("k.log"))
        }
        var (status, text) = try run("redi-ps", ["keys", "--out", "run.key"])
        XCTAssertEqual(status, 1); XCTAssertTrue(text.contains("remove it or choose another path"), text)
        chmod(dir.appendingPathComponent("run.key").path, 0o644)
        (status, text) = try run("redi-worker", ["join", "--coordinator", "tcp://127.0.0.1:1", "--key", "run.key", "--timeout", "1"])
        XCTAssertEqual(status, 1); XCTAssertTrue(text.contains("readable by others"), text)
        try "curve-secret-key = too-short\n".write(to: dir.appendingPathComponent("bad.key"), atomically: true, encoding: .utf8)
        chmod(dir.appendingPathComponent("bad.key").path, 0o600)
        (status, text) = try run("redi-ps", ["serve", "--coordinator", "tcp://127.0.0.1:1", "--key", "bad.key", "--timeout", "1"])
        XCTAssertEqual(status, 1); XCTAssertTrue(text.contains("expected one line `curve-secret-key"), text)
        (status, text) = try run("redi-worker", ["join", "--coordinator", "tcp://127.0.0.1:1", "--timeout", "1"])
        XCTAssertEqual(status, 1); XCTAssertTrue(text.contains("no run key"), text)
        // A peer holding another run's key is told so instead of waiting for its timeout.
        chmod(dir.appendingPathComponent("run.key").path, 0o600)
        _ = try run("redi-ps", ["keys", "--out", "other.key"])
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try writeRecipe(recipe(servers: 1, workers: 1, port: port, output: "out"), "r.yaml")
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "r.yaml", "--key", "run.key"], log: "c.log")
        defer { coordinator.signal(SIGTERM); _ = try? coordinator.wait() }
        try waitFor("listening on", in: "c.log")
        let started = Date()
        (status, text) = try run("redi-worker", ["join", "--coordinator", endpoint, "--key", "other.key", "--timeout", "20"])
        XCTAssertEqual(status, 1)
        XCTAssertTrue(text.contains("refused this process's key"), text)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
    }

    func loadCheckpoint(_ path: String) throws -> [Float] {
        try Checkpoint.load(from: dir.appendingPathComponent(path)).parameters.array
    }
}
