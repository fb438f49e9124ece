// Evaluation on the workers: the problems go out as prompts, and the samples that come back
// are exactly those `redi-ps eval` draws from the saved checkpoint with the same seed and
// batch rows, however the problems were split.
import Foundation
import ProcessSupport
import XCTest

final class DistributedEvalTests: ClusterTestCase {
    func testWorkersSampleWhatSingleProcessEvalSamples() throws {
        var test = ""
        for i in 0..<7 { test += #"{"prompt": "\#(i)+\#(i * 3 % 10)=", "answer": "\#(i + i * 3 % 10)"}"# + "\n" }
        try test.write(to: dir.appendingPathComponent("test.jsonl"), atomically: true, encoding: .utf8)
        let port = freePort()
        let recipe = """
            run_id: evaltest
            output: out
            seed: 5
            model: {init: tiny}
            stages:
              - {name: sft, objective: sft, data: sft.jsonl, epochs: 2, batch_size: 6, learning_rate: 1.0e-2}
            eval: {data: test.jsonl, samples: 3, batch: 4, temperature: 0.9, top_p: 0.95, max_new_tokens: 12}
            cluster: {servers: 1, workers: 2, bind: "tcp://127.0.0.1:\(port)", timeout_seconds: 30, heartbeat_seconds: 0.5}
            """
        try recipe.write(to: dir.appendingPathComponent("eval.yaml"), atomically: true, encoding: .utf8)
        let (ran, log) = try runWithPeers(port: port, servers: 1, workers: 2, ["--recipe", "eval.yaml"], tag: "coordinator")
        XCTAssertEqual(ran, 0, log)
        XCTAssertTrue(log.contains("on 2 workers"), log)

        // The figures users look at, from this run's metrics.jsonl (matplotlib, cluster/tools/plot.py).
        let (status, text) = try python("cluster/tools/plot.py", ["--out", "plots", "tiny=out"])
        XCTAssertEqual(status, 0, text)
        for name in ["loss.png", "grad_norm.png", "logps.png", "pass1.png"] {
            let png = try Data(contentsOf: dir.appendingPathComponent("plots/\(name)"))
            XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], name)
            XCTAssertGreaterThan(png.count, 5000, name)
        }
        let (bad, message) = try python("cluster/tools/plot.py", ["nowhere"])
        XCTAssertEqual(bad, 1)
        XCTAssertTrue(message.contains("nowhere has no metrics.jsonl"), message)
        try checkTensorBoard("out")

        let single = try start(
            "redi-ps",
            [
                "eval", "--model", "out/sft", "--data", "test.jsonl", "--samples", "3", "--batch", "4", "--seed", "5",
                "--temperature", "0.9", "--top-p", "0.95", "--max-new-tokens", "12", "--samples-out", "single.jsonl"
            ],
            log: "single.log")
        try single.wait()
        XCTAssertEqual(single.terminationStatus, 0, (try? String(contentsOf: dir.appendingPathComponent("single.log"), encoding: .utf8)) ?? "")
        func samples(_ file: String) throws -> [[String]] {
            try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8).split(separator: "\n").map { line in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return (object["samples"] as! [[String: Any]]).map { $0["text"] as! String }
            }
        }
        let distributed = try samples("out/eval_sft.jsonl"), local = try samples("single.jsonl")
        XCTAssertEqual(distributed.count, 7)
        XCTAssertEqual(distributed, local)
        XCTAssertGreaterThan(Set(distributed.joined()).count, 3, "samples should differ: \(distributed)")
    }

    /// `cluster/experiments/reproduce.sh --quick`: the teacher, the student trained on its
    /// samples (here, the quick teacher solving nothing, on the slip pairs standing in), every
    /// method's grid on validation from the student's checkpoint and its run at the tuned rate,
    /// the stability runs, the tables (curves, paired comparison, log-probs, first mistakes) and
    /// the figures; run again, it keeps what finished instead of training it again.
    func testReproductionRunsEveryMethodFromOneCheckpointAndKeepsFinishedRuns() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["REDI_PS_BIN"] = Self.products.path
        environment["REDI_PS_REPRODUCE_PORT"] = String(freePort())
        func reproduce(_ log: String) throws -> String {
            let p = try ChildProcess(
                "bash",
                [
                    Self.repository.appendingPathComponent("cluster/experiments/reproduce.sh").path, "--quick", "--seeds", "1",
                    "--out", dir.appendingPathComponent("repro").path
                ],
                in: dir, output: dir.appendingPathComponent(log), environment: environment)
            let status = try p.wait(seconds: 600)
            let text = (try? String(contentsOf: dir.appendingPathComponent(log), encoding: .utf8)) ?? ""
            XCTAssertEqual(status, 0, text)
            return text
        }
        let first = try reproduce("reproduce.log")
        let table = try String(contentsOf: dir.appendingPathComponent("repro/table.md"), encoding: .utf8)
        let arms = ["redi", "dpo", "simpo", "simpo_trl", "sft_continued", "redi_symmetric", "redi_slip"]
        for method in ["sft_checkpoint"] + arms {
            XCTAssertTrue(table.contains("| \(method) | 1 | "), "no row for \(method) in\n\(table)")
        }
        for section in [
            "| redi vs | difference (paired per problem) | its SEM | ≥ 2 SEM better? |", "## The teacher (small", "## The teacher's samples",
            "## The student (smaller",
            "## Learning rates on validation", "## Per-token log-probs", "## Stability", "## First mistake"
        ] {
            XCTAssertTrue(table.contains(section), "no \(section) in\n\(table)")
        }
        // Every method trained from the same checkpoint for its own stage and was evaluated:
        // the grid (two rates per method), the seeds (named with their tuned rate), the two
        // stability pairs (5× REDI's rate and the grid's top).
        let runs = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("repro/runs").path)
        let grid = runs.filter { $0.hasPrefix("grid-") }, stability = runs.filter { $0.hasPrefix("stability-") }
        XCTAssertEqual(grid.count, 10, "\(runs)")
        XCTAssertEqual(stability.count, 4, "\(runs)")
        let seeded = try arms.map { arm in try XCTUnwrap(runs.first { $0.hasPrefix("\(arm)-lr") && $0.hasSuffix("-seed1") }, "no seed run of \(arm): \(runs)") }
        XCTAssertTrue(runs.contains("teacher") && runs.contains("student"), "\(runs)")
        for run in seeded + grid + stability {
            let metrics = try String(contentsOf: dir.appendingPathComponent("repro/runs/\(run)/metrics.jsonl"), encoding: .utf8)
            XCTAssertTrue(metrics.contains("\"eval/pass@1\""), run)
            XCTAssertFalse(metrics.contains("\"stage\":\"sft\""), "\(run) trained SFT again")
        }
        for figure in ["figures/pass1.png", "figures/logps.png", "stability/logps.png"] {
            let png = try Data(contentsOf: dir.appendingPathComponent("repro/\(figure)"))
            XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], figure)
        }
        XCTAssertTrue(first.contains("[reproduce] \(seeded[0]): eval after train: pass@1"), first)
        let again = try reproduce("reproduce-again.log")
        // The teacher, the student, 10 grid runs, 7 arms, 4 stability runs.
        XCTAssertEqual(again.components(separatedBy: "done before, kept").count - 1, 23, again)
        XCTAssertFalse(again.contains(": running"), again)
    }
}
