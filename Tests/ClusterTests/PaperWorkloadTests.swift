// The paper's workload end to end, in miniature: Open-R1-shaped parquet in, SFT then REDI on
// the cluster with evaluation during a stage, two benchmarks graded by the math rule, and the
// per-benchmark table, metrics and sample files a user reads.
import Foundation
import ProcessSupport
import XCTest

final class PaperWorkloadTests: ClusterTestCase {
    func testOpenR1DataToPerBenchmarkTable() throws {
        let gguf = Self.repository.appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.fileExists(atPath: gguf) else { throw XCTSkip("\(gguf) not found: run cluster/tools/fetch-test-model.sh") }
        let (status, text) = try python("Tests/reference/write_openr1_parquet.py", ["raw"])
        XCTAssertEqual(status, 0, text)

        func run(_ args: [String], log: String) throws -> String {
            let p = try start("redi-ps", args, log: log)
            let code = try p.wait()
            let output = (try? String(contentsOf: dir.appendingPathComponent(log), encoding: .utf8)) ?? ""
            XCTAssertEqual(code, 0, output)
            return output
        }
        let made = try run(["data", "openr1", "raw/train.parquet", "--model", gguf, "--out", "data", "--max-response-tokens", "1000"], log: "openr1.log")
        XCTAssertTrue(made.contains("18 sft records, 9 preference pairs from 12 rows"), made)
        let stats = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("data/stats.json"))) as! [String: Int]
        XCTAssertEqual(stats["dropped_excluded_source"], 1)
        XCTAssertEqual(stats["dropped_invalid_problem"], 1)
        XCTAssertEqual(stats["sft_dropped_too_long"], 1)
        XCTAssertEqual(stats["pairs_dropped_too_long"], 1)
        XCTAssertEqual(stats["negatives"], 11)
        _ = try run(["data", "benchmark", "raw/math500.parquet", "--out", "math500.jsonl", "--instruction", "Put the answer in \\boxed{}."], log: "b1.log")
        _ = try run(["data", "benchmark", "raw/aime24.jsonl", "--out", "aime24.jsonl"], log: "b2.log")

        let port = freePort()
        try """
        run_id: paper
        output: out
        seed: 2
        model: {init: tiny, tokenizer: \(gguf), overrides: {rope_theta: 300000}}
        stages:
          - {name: sft, objective: sft, data: data/sft.jsonl, epochs: 1, batch_size: 4, learning_rate: 1.0e-3, eval_every: 2}
          - {name: redi, objective: redi, alpha: 0.8, data: data/pref.jsonl, max_steps: 2, batch_size: 4, learning_rate: 1.0e-4,
             lr_scheduler_type: cosine, drop_longer_than: 4000}
        eval:
          samples: 2
          max_new_tokens: 6
          batch: 4
          response_prefix: "<think>\\n"
          kv_cache: bf16
          answer_rule: math
          sets:
            - {name: math500, data: math500.jsonl}
            - {name: aime24, data: aime24.jsonl, samples: 3}
        cluster: {servers: 1, workers: 2, bind: "tcp://127.0.0.1:\(port)", timeout_seconds: 30, heartbeat_seconds: 0.5}
        """.write(to: dir.appendingPathComponent("paper.yaml"), atomically: true, encoding: .utf8)
        let (ran, log) = try runWithPeers(port: port, servers: 1, workers: 2, ["--recipe", "paper.yaml"], tag: "coordinator")
        XCTAssertEqual(ran, 0, log)
        XCTAssertTrue(log.contains("model.overrides: rope_theta = 300000\n"), log)
        XCTAssertTrue(log.contains("eval math500: 3 problems × 2 samples"), log)
        // 18 SFT records in batches of 4: 5 steps, evaluated after step 2 and 4 and at the end.
        XCTAssertTrue(log.contains("eval math500 after sft-step2: pass@1"), log)
        XCTAssertTrue(log.contains("eval aime24 after sft-step4: pass@1"), log)
        XCTAssertTrue(log.contains("eval aime24 after redi: pass@1"), log)
        XCTAssertTrue(log.contains("stage        steps  math500  aime24   logps/chosen"), log)
        XCTAssertTrue(log.contains("redi step 2/2"), log)
        for file in ["eval_sft-step2_math500.jsonl", "eval_sft-step4_aime24.jsonl", "eval_sft_math500.jsonl", "eval_redi_aime24.jsonl"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/\(file)").path), file)
        }
        // Samples are saved with their grade and length; the metrics carry the paper's figures per benchmark.
        let first = try String(contentsOf: dir.appendingPathComponent("out/eval_redi_aime24.jsonl"), encoding: .utf8).split(separator: "\n")[0]
        let record = try JSONSerialization.jsonObject(with: Data(first.utf8)) as! [String: Any]
        let samples = record["samples"] as! [[String: Any]]
        XCTAssertEqual(samples.count, 3)
        XCTAssertNotNil(samples[0]["correct"] as? Bool)
        XCTAssertNotNil(samples[0]["tokens"] as? Int)
        let metrics = try String(contentsOf: dir.appendingPathComponent("out/metrics.jsonl"), encoding: .utf8)
        for key in [
            "eval/math500/pass@1", "eval/math500/pass@1_stderr", "eval/math500/pass@1_stderr_problems", "eval/aime24/pass@3",
            "eval/aime24/response_tokens", "eval/aime24/waits", "eval/math500/answers_extracted"
        ] {
            XCTAssertTrue(metrics.contains("\"\(key)\""), key)
        }
        // The checkpoint evaluated again by the cluster (`--evaluate`): the same samples as the
        // run's own evaluation after the stage (same weights, seed and rows).
        let (evaluation, evaluated) = try runWithPeers(
            port: port, servers: 1, workers: 2, ["--recipe", "paper.yaml", "--evaluate", "--model", "out/redi"],
            tag: "evaluate")
        XCTAssertEqual(evaluation, 0, evaluated)
        XCTAssertTrue(evaluated.contains("stage        steps  math500  aime24"), evaluated)
        for set in ["math500", "aime24"] {
            let again = try String(contentsOf: dir.appendingPathComponent("out/evaluation-redi/eval_redi_\(set).jsonl"), encoding: .utf8)
            let during = try String(contentsOf: dir.appendingPathComponent("out/eval_redi_\(set).jsonl"), encoding: .utf8)
            XCTAssertEqual(again, during, set)
        }
        // The overrides reach the checkpoint transformers would open.
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("out/redi/config.json"))) as! [String: Any]
        XCTAssertEqual(config["rope_theta"] as? Double, 300_000)
    }
}
