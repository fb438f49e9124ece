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
        let port = 20000 + Int.random(in: 0..<20000)
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
        let endpoint = "tcp://127.0.0.1:\(port)"
        var peers = [try start("redi-ps", ["serve", "--coordinator", endpoint, "--key", "run.key", "--timeout", "30"], log: "s.log")]
        for i in 0..<2 {
            peers.append(try start("redi-worker", ["join", "--coordinator", endpoint, "--key", "run.key", "--threads", "1", "--timeout", "30"], log: "w\(i).log"))
        }
        let coordinator = try start("redi-ps", ["coordinate", "--recipe", "eval.yaml", "--key", "run.key"], log: "coordinator.log")
        try coordinator.wait()
        for p in peers { try p.wait() }
        let log = (try? String(contentsOf: dir.appendingPathComponent("coordinator.log"), encoding: .utf8)) ?? ""
        XCTAssertEqual(coordinator.terminationStatus, 0, log)
        XCTAssertTrue(log.contains("on 2 workers"), log)

        // The figures users look at, from this run's metrics.jsonl (matplotlib, cluster/plot.py).
        let (status, text) = try python("cluster/plot.py", ["--out", "plots", "tiny=out"])
        XCTAssertEqual(status, 0, text)
        for name in ["loss.png", "grad_norm.png", "logps.png", "pass1.png"] {
            let png = try Data(contentsOf: dir.appendingPathComponent("plots/\(name)"))
            XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], name)
            XCTAssertGreaterThan(png.count, 5000, name)
        }
        let (bad, message) = try python("cluster/plot.py", ["nowhere"])
        XCTAssertEqual(bad, 1)
        XCTAssertTrue(message.contains("nowhere has no metrics.jsonl"), message)
        try checkTensorBoard("out")

        let single = try start("redi-ps", ["eval", "--model", "out/sft", "--data", "test.jsonl", "--samples", "3", "--batch", "4", "--seed", "5",
                                           "--temperature", "0.9", "--top-p", "0.95", "--max-new-tokens", "12", "--samples-out", "single.jsonl"],
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
}
