// End to end: a real coordinator, parameter servers and workers as separate processes on
// 127.0.0.1 must produce the same weights (to float tolerance) as the single-process
// trainer over the same global batches, through stage 1 → stage 2 → final checkpoint.
import BLASKernel
import Data
import Formats
import Foundation
import Model
import Numerics
import Objectives
import ProcessSupport
import Tokenizers
import Training
import XCTest

/// A temporary directory with small SFT and preference data, a run key, and helpers that
/// start real processes in it. Tests live in the subclasses.
class ClusterTestCase: XCTestCase {
    static let products = Bundle.main.bundleURL
    var dir: URL!

    /// A loopback TCP port for a coordinator: below the kernel's ephemeral range (32768+, where
    /// connections and `tcp://…:*` binds take theirs) and free right now.
    func freePort() -> Int {
        while true {
            let port = Int.random(in: 20000..<32768)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            close(fd)
            if bound == 0 { return port }
        }
    }

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("redi-cluster-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var sft = "", pref = ""
        for i in 0..<12 {
            let a = i * 7 % 10, b = i * 3 % 10
            sft += #"{"prompt": "\#(a)+\#(b)=", "completion": "\#(a + b)"}"# + "\n"
            pref += #"{"prompt": "\#(a)+\#(b)=", "chosen": "\#(a + b)", "rejected": "\#(a + b + 1)"}"# + "\n"
        }
        try sft.write(to: dir.appendingPathComponent("sft.jsonl"), atomically: true, encoding: .utf8)
        try pref.write(to: dir.appendingPathComponent("pref.jsonl"), atomically: true, encoding: .utf8)
        let keys = try start("redi-ps", ["keys", "--out", "run.key"], log: "keys.log")
        XCTAssertEqual(try keys.wait(), 0)
    }

    override func tearDownWithError() throws {
        ChildProcess.killAll()
        try? FileManager.default.removeItem(at: dir)
    }

    func recipe(
        servers: Int, workers: Int, port: Int, output: String? = nil, timeout: Double = 30, heartbeat: Double = 0.5,
        chunkMiB: Double = 0.05, sftData: String = "sft.jsonl", wire: String = "fp32", dataPlane: String = "curve",
        stepTimeout: Double = 1800, verifyEvery: Int = 0, verifyShards: Int = 1, clusterExtra: String = "", model: String = "{init: tiny}"
    ) -> String {
        """
        run_id: e2e
        output: \(output ?? "out-\(servers)x\(workers)")
        seed: 3
        model: \(model)
        stages:
          - {name: sft, objective: sft, data: \(sftData), epochs: 4, batch_size: 12, learning_rate: 1.0e-2, warmup_ratio: 0.25, checkpoint_every: 2}
          - {name: redi, objective: redi, data: pref.jsonl, epochs: 2, batch_size: 12, learning_rate: 5.0e-3, warmup_ratio: 0}
        cluster: {servers: \(servers), workers: \(workers), bind: "tcp://127.0.0.1:\(port)", timeout_seconds: \(timeout), chunk_mib: \(chunkMiB),
                  heartbeat_seconds: \(heartbeat), wire: \(wire), data_plane: \(dataPlane), step_timeout_seconds: \(stepTimeout),
                  verify_every: \(verifyEvery), verify_shards: \(verifyShards)\(clusterExtra)}
        """
    }

    /// Starts one of the built products in the test's directory, its output in `log`.
    /// Starts a product with stdout to `log` and stderr there too, or to `errors` when given.
    func start(_ binary: String, _ args: [String], log: String, errors: String? = nil) throws -> ChildProcess {
        try ChildProcess(
            Self.products.appendingPathComponent(binary).path, args, in: dir, output: dir.appendingPathComponent(log),
            errors: errors.map { dir.appendingPathComponent($0) })
    }

    /// Starts `servers` servers and `workers` workers (1 thread each) for the coordinator on
    /// `port`, then `redi-ps coordinate ARGUMENTS --key run.key`; waits for every process.
    /// Returns the coordinator's exit status and log (`TAG.log`; peers log to `TAG-sN.log`, `TAG-wN.log`).
    func runWithPeers(port: Int, servers: Int, workers: Int, _ arguments: [String], tag: String) throws -> (status: Int32, log: String) {
        let endpoint = "tcp://127.0.0.1:\(port)"
        var peers: [ChildProcess] = []
        for i in 0..<servers {
            peers.append(try start("redi-ps", ["serve", "--coordinator", endpoint, "--key", "run.key", "--timeout", "30"], log: "\(tag)-s\(i).log"))
        }
        for i in 0..<workers {
            peers.append(
                try start(
                    "redi-worker", ["join", "--coordinator", endpoint, "--key", "run.key", "--threads", "1", "--timeout", "30"],
                    log: "\(tag)-w\(i).log"))
        }
        let coordinator = try start("redi-ps", ["coordinate"] + arguments + ["--key", "run.key"], log: "\(tag).log")
        try coordinator.wait()
        for p in peers { try p.wait() }
        return (coordinator.terminationStatus, (try? String(contentsOf: dir.appendingPathComponent("\(tag).log"), encoding: .utf8)) ?? "")
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Runs a Python script of the repository (path relative to its root) in the test's
    /// directory; returns its exit status and output.
    func python(_ script: String, _ args: [String]) throws -> (Int32, String) {
        let log = dir.appendingPathComponent("python-\(UUID().uuidString).log")
        let p = try ChildProcess(
            ProcessInfo.processInfo.environment["REDI_PS_PYTHON"] ?? "python3",
            [Self.repository.appendingPathComponent(script).path] + args, in: dir, output: log)
        let status = try p.wait(seconds: 120)
        return (status, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// Checks OUTPUT's TensorBoard events with TensorBoard's own reader against its metrics.jsonl
    /// (`bash cluster/tools/install-deps.sh` installs tensorboard).
    func checkTensorBoard(_ output: String) throws {
        let (status, text) = try python("Tests/reference/check_tensorboard.py", [output])
        print("tensorboard events of \(output): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        XCTAssertEqual(status, 0, text)
    }

    /// Runs the cluster; returns the final checkpoint's parameters.
    func runCluster(
        servers: Int, workers: Int, resume: String? = nil, failingWorkerAtStep: Int? = nil, wire: String = "fp32",
        dataPlane: String = "curve", trainTokenizer: Int? = nil
    ) throws -> [Float] {
        let port = freePort()
        let tag =
            "\(servers)x\(workers)\(resume == nil ? "" : "-resumed")\(failingWorkerAtStep == nil ? "" : "-failing")\(wire == "fp32" ? "" : "-" + wire)"
            + (dataPlane == "curve" ? "" : "-" + dataPlane) + (trainTokenizer == nil ? "" : "-bpe")
        let name = "recipe-\(tag).yaml"
        try recipe(
            servers: servers, workers: workers, port: port, output: "out-\(tag)", timeout: failingWorkerAtStep == nil ? 30 : 3, wire: wire,
            dataPlane: dataPlane, model: trainTokenizer.map { "{init: tiny, train_tokenizer: \($0)}" } ?? "{init: tiny}"
        )
        .write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        let endpoint = "tcp://127.0.0.1:\(port)"
        // Start workers and servers first: processes may start in any order.
        var others: [ChildProcess] = []
        for i in 0..<workers {
            let fault = i == 0 ? failingWorkerAtStep.map { ["--fail-at-step", String($0)] } ?? [] : []
            others.append(
                try start(
                    "redi-worker", ["join", "--coordinator", endpoint, "--key", "run.key", "--threads", "1", "--timeout", "30"] + fault,
                    log: "w\(i).log"))
        }
        for i in 0..<servers { others.append(try start("redi-ps", ["serve", "--coordinator", endpoint, "--key", "run.key", "--timeout", "30"], log: "s\(i).log")) }
        let coordinator = try start(
            "redi-ps", ["coordinate", "--recipe", name, "--key", "run.key"] + (resume.map { ["--resume", $0] } ?? []),
            log: "coordinator-\(tag).log")
        try coordinator.wait()
        for p in others { try p.wait() }
        let log = (try? String(contentsOf: dir.appendingPathComponent("coordinator-\(tag).log"), encoding: .utf8)) ?? ""
        XCTAssertEqual(coordinator.terminationStatus, 0, log)
        for (i, p) in others.enumerated() where !(failingWorkerAtStep != nil && i == 0) {
            XCTAssertEqual(p.terminationStatus, 0, "a server or worker failed")
        }
        if failingWorkerAtStep != nil { XCTAssertTrue(log.contains("stopped answering"), log) }
        XCTAssertTrue(log.contains("sft step 4/4") && log.contains("redi step 2/2"), log)
        // Workers say which BLAS kernel they run (one machine: the same as this process's).
        XCTAssertTrue(log.contains("(BLAS kernel \(OpenBLASRuntime.coreName))") && !log.contains("WARNING: worker"), log)
        let checkpoint = try Checkpoint.load(from: dir.appendingPathComponent("out-\(tag)/redi"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out-\(tag)/sft/model.safetensors").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out-\(tag)/sft/optimizer.safetensors").path))
        let metrics = try String(contentsOf: dir.appendingPathComponent("out-\(tag)/metrics.jsonl"), encoding: .utf8)
        XCTAssertEqual(metrics.split(separator: "\n").count, resume == nil ? 6 : 4)
        try checkTensorBoard("out-\(tag)")
        return checkpoint.parameters.array
    }

    /// The same two stages in one process with LocalTrainer.
    func runSingleProcess() throws -> [Float] {
        let tokenizer = ByteTokenizer()
        let config = try XCTUnwrap(try LlamaConfig.preset("tiny", vocabSize: 260, bos: 259, eos: 1, pad: 0))
        let layout = ParameterLayout(config: config)
        let params = FloatBuffer(count: layout.totalCount)
        initializeParameters(params, layout: layout, seed: 3)
        let sft = try Dataset.load(dir.appendingPathComponent("sft.jsonl"), tokenizer: tokenizer, maxLength: 1024, vocabularySize: 260).examples
        let pref = try Dataset.load(dir.appendingPathComponent("pref.jsonl"), tokenizer: tokenizer, maxLength: 1024, vocabularySize: 260).examples
        let stage1 = LocalTrainer(
            config: config, parameters: params,
            settings: StageSettings(objective: .sft, learningRate: 1e-2, warmupRatio: 0.25), totalSteps: 4)
        for _ in 0..<4 { _ = try stage1.step(sft) }
        let stage2 = LocalTrainer(
            config: config, parameters: params,
            settings: StageSettings(objective: .redi(), learningRate: 5e-3, warmupRatio: 0), totalSteps: 2)
        for _ in 0..<2 { _ = try stage2.step(pref) }
        return params.array
    }
}

final class ClusterTests: ClusterTestCase {
    func testClustersMatchTheSingleProcessTrainer() throws {
        let reference = try runSingleProcess()
        var byPlane: [String: [Float]] = [:]
        for (servers, workers, plane) in [(1, 1, "curve"), (2, 2, "curve"), (2, 2, "plain"), (2, 2, "sealed")] {
            let weights = try runCluster(servers: servers, workers: workers, dataPlane: plane)
            XCTAssertEqual(weights.count, reference.count)
            let worst = zip(weights, reference).map { abs($0 - $1) }.max()!
            print("\(servers) servers × \(workers) workers, \(plane) data plane: max |w - single-process| = \(worst) over \(weights.count) parameters")
            XCTAssertLessThan(worst, 1e-4)
            if servers == 2 { byPlane[plane] = weights }
        }
        // The data plane changes how bytes travel, never which: the same weights bit for bit.
        XCTAssertEqual(byPlane["plain"], byPlane["curve"])
        XCTAssertEqual(byPlane["sealed"], byPlane["curve"])
        // And the two stages moved the weights away from the initialisation.
        let config = try XCTUnwrap(try LlamaConfig.preset("tiny", vocabSize: 260, bos: 259, eos: 1, pad: 0))
        let initial = FloatBuffer(count: ParameterLayout(config: config).totalCount)
        initializeParameters(initial, layout: ParameterLayout(config: config), seed: 3)
        XCTAssertGreaterThan(zip(initial.array, reference).map { abs($0 - $1) }.max()!, 1e-3)
    }

    /// bfloat16 on the wire (gradients only, or gradients and weights): the run stays
    /// deterministic whoever holds which chunk (bit-identical weights with 1 or 2 servers), and
    /// lands near the fp32 trainer, not on it.
    func testBF16WireIsDeterministicAndCloseToFP32() throws {
        let reference = try runSingleProcess()
        let norm = reference.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
        for wire in ["bf16-gradients", "bf16"] {
            let a = try runCluster(servers: 1, workers: 2, wire: wire)
            let b = try runCluster(servers: 2, workers: 2, wire: wire)
            XCTAssertEqual(a, b, wire)
            let difference = zip(a, reference).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
            print("\(wire) wire: ‖w − w_fp32‖ / ‖w_fp32‖ = \(difference / norm)")
            XCTAssertGreaterThan(difference, 0, "the \(wire) run should differ from fp32")
            // Adam moves every weight by ~lr per step whatever its gradient's size, so rounding noise in
            // small gradients shows up at a few percent here (lr 1e-2 on a tiny model).
            XCTAssertLessThan(difference / norm, 5e-2, wire)
        }
    }

    func testAWorkerThatDiesIsDroppedAndTheStepIsRedone() throws {
        let reference = try runSingleProcess()
        let weights = try runCluster(servers: 1, workers: 3, failingWorkerAtStep: 1)
        let worst = zip(weights, reference).map { abs($0 - $1) }.max()!
        print("3 workers, one killed at step 2: max |w - single-process| = \(worst)")
        XCTAssertLessThan(worst, 1e-4)
    }

    func testAnEpochEndsWithAShortBatchAndUsesEveryExampleOnceAsTheSingleProcessTrainerDoes() throws {
        let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
        try """
        run_id: short
        output: out
        seed: 11
        model: {init: tiny}
        stages:
          - {name: sft, objective: sft, data: sft.jsonl, epochs: 1, batch_size: 5, learning_rate: 1.0e-2, warmup_ratio: 0.25}
          - {name: redi, objective: redi, data: pref.jsonl, epochs: 1, batch_size: 5, learning_rate: 5.0e-3, warmup_ratio: 0}
        cluster: {servers: 1, workers: 2, bind: "tcp://127.0.0.1:\(port)", timeout_seconds: 30, heartbeat_seconds: 0.5, chunk_mib: 0.05}
        """.write(to: dir.appendingPathComponent("short.yaml"), atomically: true, encoding: .utf8)
        let peers =
            [try start("redi-ps", ["serve", "--coordinator", endpoint, "--key", "run.key", "--timeout", "30"], log: "s.log")]
            + (try (0..<2).map { try start("redi-worker", ["join", "--coordinator", endpoint, "--key", "run.key", "--threads", "1", "--timeout", "30"], log: "w\($0).log") })
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "short.yaml", "--key", "run.key"], log: "c.log")
        let log = { (try? String(contentsOf: self.dir.appendingPathComponent("c.log"), encoding: .utf8)) ?? "" }
        XCTAssertEqual(try coordinator.wait(), 0, log())
        for p in peers { XCTAssertEqual(try p.wait(), 0, p.name) }
        XCTAssertTrue(log().contains("sft step 3/3") && log().contains("redi step 3/3"), log())
        // Batches of 5, 5, 2 per stage; each of the 12 examples exactly once.
        var batches: [String: [[Int]]] = [:]
        for line in try String(contentsOf: dir.appendingPathComponent("out/examples.jsonl"), encoding: .utf8).split(separator: "\n") {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let pairs = try XCTUnwrap(object["examples"] as? [[Int]])
            XCTAssertTrue(pairs.allSatisfy { $0[0] == 1 }, "every batch is from epoch 1")
            batches[try XCTUnwrap(object["stage"] as? String), default: []].append(pairs.map { $0[1] })
        }
        for stage in ["sft", "redi"] {
            XCTAssertEqual(batches[stage]?.map(\.count), [5, 5, 2], stage)
            XCTAssertEqual(batches[stage]?.flatMap { $0 }.sorted(), Array(0..<12), stage)
        }
        // The single-process trainer on the same batches reaches the same weights.
        let tokenizer = ByteTokenizer()
        let config = try XCTUnwrap(try LlamaConfig.preset("tiny", vocabSize: 260, bos: 259, eos: 1, pad: 0))
        let params = FloatBuffer(count: ParameterLayout(config: config).totalCount)
        initializeParameters(params, layout: ParameterLayout(config: config), seed: 11)
        for (stage, file, settings) in [
            ("sft", "sft.jsonl", StageSettings(objective: .sft, learningRate: 1e-2, warmupRatio: 0.25)),
            ("redi", "pref.jsonl", StageSettings(objective: .redi(), learningRate: 5e-3, warmupRatio: 0))
        ] {
            let examples = try Dataset.load(dir.appendingPathComponent(file), tokenizer: tokenizer, maxLength: 1024, vocabularySize: 260).examples
            let trainer = LocalTrainer(config: config, parameters: params, settings: settings, totalSteps: 3)
            for batch in batches[stage] ?? [] { _ = try trainer.step(batch.map { examples[$0] }) }
        }
        let weights = try Checkpoint.load(from: dir.appendingPathComponent("out/redi")).parameters.array
        let reference = params.array
        let worst = zip(weights, reference).map { abs($0 - $1) }.max()!
        let relative =
            (zip(weights, reference).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +)
            / reference.map { Double($0) * Double($0) }.reduce(0, +)).squareRoot()
        print("batches of 5, 5, 2: max |w - single-process on the same batches| = \(worst), relative norm \(relative)")
        // Adam at lr 1e-2 turns float-rounding differences in near-zero gradients into steps of up to ~lr.
        XCTAssertLessThan(worst, 1e-3)
        XCTAssertLessThan(relative, 5e-5)
    }

    func testAResumedDPOStageKeepsTheReferenceFromItsStart() throws {
        func run(output: String, resume: String?) throws -> [Float] {
            let port = freePort(), endpoint = "tcp://127.0.0.1:\(port)"
            try """
            run_id: dpo
            output: \(output)
            seed: 5
            model: {init: tiny}
            stages:
              - {name: dpo, objective: dpo, data: pref.jsonl, epochs: 4, batch_size: 12, learning_rate: 1.0e-2, warmup_ratio: 0, checkpoint_every: 2}
            cluster: {servers: 1, workers: 1, bind: "tcp://127.0.0.1:\(port)", timeout_seconds: 30, heartbeat_seconds: 0.5, chunk_mib: 0.05}
            """.write(to: dir.appendingPathComponent("dpo.yaml"), atomically: true, encoding: .utf8)
            let peers = [
                try start("redi-ps", ["serve", "--coordinator", endpoint, "--key", "run.key", "--timeout", "30"], log: "s-\(output).log"),
                try start("redi-worker", ["join", "--coordinator", endpoint, "--key", "run.key", "--threads", "1", "--timeout", "30"], log: "w-\(output).log")
            ]
            let coordinator = try start(
                "redi-ps", ["coordinate", "--recipe", "dpo.yaml", "--key", "run.key"] + (resume.map { ["--resume", $0] } ?? []),
                log: "c-\(output).log")
            let text = { (try? String(contentsOf: self.dir.appendingPathComponent("c-\(output).log"), encoding: .utf8)) ?? "" }
            XCTAssertEqual(try coordinator.wait(), 0, text())
            for p in peers { XCTAssertEqual(try p.wait(), 0, p.name) }
            if resume != nil { XCTAssertTrue(text().contains("reference log-probabilities from its start"), text()) }
            return try Checkpoint.load(from: dir.appendingPathComponent("\(output)/dpo")).parameters.array
        }
        let full = try run(output: "full", resume: nil)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("full/dpo-step2/reference_logps.json").path))
        let resumed = try run(output: "resumed", resume: "full/dpo-step2")
        let worst = zip(full, resumed).map { abs($0 - $1) }.max()!
        print("DPO resumed from step 2 with its saved reference: max |w - uninterrupted| = \(worst)")
        XCTAssertEqual(worst, 0)
    }

    func testResumingFromAStepCheckpointGivesTheSameWeights() throws {
        let full = try runCluster(servers: 1, workers: 1)
        let from = dir.appendingPathComponent("out-1x1/sft-step2").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: from + "/trainer_state.json"))
        let resumed = try runCluster(servers: 1, workers: 1, resume: from)
        let worst = zip(full, resumed).map { abs($0 - $1) }.max()!
        print("resumed from sft step 2: max |w - uninterrupted| = \(worst)")
        XCTAssertLessThan(worst, 1e-6)
    }

    /// A run whose tokenizer is learned from its data resumes with the tokenizer its checkpoint
    /// was trained with (not one learned again) and ends with the uninterrupted run's weights.
    func testAResumedRunKeepsTheTokenizerItsCheckpointWasTrainedWith() throws {
        let full = try runCluster(servers: 1, workers: 1, trainTokenizer: 300)
        let first = try String(contentsOf: dir.appendingPathComponent("coordinator-1x1-bpe.log"), encoding: .utf8)
        XCTAssertTrue(first.contains("trained a byte-level BPE tokenizer of"), first)
        let from = dir.appendingPathComponent("out-1x1-bpe/sft-step2").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: from + "/tokenizer.json"))
        let resumed = try runCluster(servers: 1, workers: 1, resume: from, trainTokenizer: 300)
        let log = try String(contentsOf: dir.appendingPathComponent("coordinator-1x1-resumed-bpe.log"), encoding: .utf8)
        XCTAssertTrue(log.contains("the tokenizer of \(from)"), log)
        XCTAssertFalse(log.contains("trained a byte-level BPE tokenizer"), log)
        let worst = zip(full, resumed).map { abs($0 - $1) }.max()!
        print("learned tokenizer, resumed from sft step 2: max |w - uninterrupted| = \(worst)")
        XCTAssertLessThan(worst, 1e-6)
    }

    func testMissingCoordinatorIsAClearErrorNotAHang() throws {
        let p = try start("redi-worker", ["join", "--coordinator", "tcp://127.0.0.1:1", "--key", "run.key", "--timeout", "2"], log: "lonely.log")
        try p.wait()
        let log = try String(contentsOf: dir.appendingPathComponent("lonely.log"), encoding: .utf8)
        XCTAssertTrue(log.contains("no coordinator answered"), log)
    }

    func testShippedRecipesAndUnquotedEndpointsParse() throws {
        let recipes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("cluster/recipes")
        try "model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\ncluster: {bind: tcp://127.0.0.1:5000, workers: 2}\n"
            .write(to: dir.appendingPathComponent("plain.yaml"), atomically: true, encoding: .utf8)
        for (path, expected) in [
            (recipes.appendingPathComponent("default.yaml").path, "1 2 tcp://127.0.0.1:5570"),
            (recipes.appendingPathComponent("smollm2.yaml").path, "1 2 tcp://127.0.0.1:5571"),
            ("plain.yaml", "1 2 tcp://127.0.0.1:5000")
        ] {
            // What launchers read from standard output (the BLAS start line goes to standard error).
            let p = try start("redi-ps", ["coordinate", "--recipe", path, "--print-cluster"], log: "print.log", errors: "print.err")
            try p.wait()
            let text = try String(contentsOf: dir.appendingPathComponent("print.log"), encoding: .utf8)
            let errors = try String(contentsOf: dir.appendingPathComponent("print.err"), encoding: .utf8)
            XCTAssertEqual(p.terminationStatus, 0, text + errors)
            XCTAssertEqual(text.trimmingCharacters(in: .whitespacesAndNewlines), expected)
        }
    }

    /// The coordinator refuses a bad recipe before anything starts, exits 1 and names the
    /// problem (the recipe's own rules are unit-tested in ClusterUnitTests.RecipeTests).
    func testBadRecipesNameTheKey() throws {
        for (text, needle) in [
            ("run_id: x\nmodel: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\nbogus: 1", "unknown key bogus"),
            (
                "model: {init: tiny, tokenizer: /nowhere}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\ncluster: {timeout_seconds: 4, heartbeat_seconds: 1}",
                "/nowhere: no tokenizer"
            )
        ] {
            try text.write(to: dir.appendingPathComponent("bad.yaml"), atomically: true, encoding: .utf8)
            let p = try start("redi-ps", ["coordinate", "--recipe", "bad.yaml"], log: "bad.log")
            try p.wait()
            XCTAssertEqual(p.terminationStatus, 1)
            let log = try String(contentsOf: dir.appendingPathComponent("bad.log"), encoding: .utf8)
            XCTAssertTrue(log.contains(needle), "\(log) should mention \(needle)")
        }
    }
}
