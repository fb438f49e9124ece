// redi-ps as a user runs it: real processes, real files, and independent Python references
// (numpy always; transformers + torch when installed) reading what it wrote.
import Foundation
import ProcessSupport
import XCTest

class CLITestCase: XCTestCase {
    static let binary = Bundle.main.bundleURL.appendingPathComponent("redi-ps")
    static let references = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("reference")
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("redi-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    @discardableResult
    func run(
        _ executable: String, _ arguments: [String], expect status: Int32 = 0,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> (out: String, err: String, status: Int32) {
        let out = dir.appendingPathComponent("stdout-\(UUID().uuidString)"), err = dir.appendingPathComponent("stderr-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: err) }
        let p = try ChildProcess(executable, arguments, in: dir, output: out, errors: err)
        try p.wait(seconds: 900)
        let o = try Data(contentsOf: out), e = try Data(contentsOf: err)
        let result = (String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self), p.terminationStatus)
        if status >= 0 {
            XCTAssertEqual(result.2, status, "\(executable) \(arguments.joined(separator: " ")):\n\(result.0)\n\(result.1)", file: file, line: line)
        }
        return result
    }

    func redi(_ args: String..., expect status: Int32 = 0) throws -> (out: String, err: String, status: Int32) {
        try run(Self.binary.path, args, expect: status)
    }

    var python: String { ProcessInfo.processInfo.environment["REDI_PS_PYTHON"] ?? "python3" }

    func writeData() throws {
        try """
        {"prompt": "What is 12+30? ", "completion": "12+30=42. Answer: 42"}
        {"prompt": "Name a color: ", "completion": "blue, ünïcode 🙂"}
        {"prompt": "", "completion": "no prompt at all"}
        """.write(to: dir.appendingPathComponent("sft.jsonl"), atomically: true, encoding: .utf8)
        try """
        {"prompt": "7*6=", "chosen": "42", "rejected": "48", "ref_chosen_logp": -16.1, "ref_rejected_logp": -16.5}
        {"prompt": "9-5=", "chosen": "4", "rejected": "14", "ref_chosen_logp": -10.9, "ref_rejected_logp": -17.0}
        """.write(to: dir.appendingPathComponent("pref.jsonl"), atomically: true, encoding: .utf8)
    }

    /// Runs a reference script; skips the test when it exits 77 (its Python packages are missing).
    func reference(_ script: String, _ args: [String]) throws -> String {
        let r = try run(python, [Self.references.appendingPathComponent(script).path] + args, expect: -1)
        if r.status == 77 { throw XCTSkip("\(script): \(r.out.trimmingCharacters(in: .whitespacesAndNewlines)) (cluster/tools/install-deps.sh installs it)") }
        XCTAssertEqual(r.status, 0, "\(script):\n\(r.out)\n\(r.err)")
        return r.out
    }
}

final class CLITests: CLITestCase {
    /// Chat templates (SmolLM2's and Qwen2's, committed) rendered by Jinja2 as transformers
    /// configures it and by `redi-ps render --template`: no model download.
    func testChatTemplatesRenderAsJinja2Does() throws {
        print(
            try reference(
                "check_chat_template.py",
                [
                    Self.binary.path,
                    Self.references.appendingPathComponent("smollm2_chat_template.jinja").path,
                    Self.references.appendingPathComponent("qwen2_chat_template.jinja").path
                ]))
    }

    /// Byte-level BPE with each pre-tokenizer against Hugging Face's `tokenizers`, on
    /// tokenizers trained in the test: no model download.
    func testBPEMatchesHuggingFaceTokenizers() throws {
        print(try reference("check_bpe.py", [Self.binary.path, dir.path]))
    }

    func testInitLogprobsAgreeWithIndependentNumpyReference() throws {
        guard try run(python, ["-c", "import numpy"], expect: -1).status == 0 else {
            throw XCTSkip("numpy is not installed for \(python); .ci/run installs it")
        }
        try writeData()
        try redi("init", "--config", "tiny", "--seed", "3", "--out", "llama")
        // A Qwen2-style config (q/k/v biases, untied head) initialised from a config.json.
        try
            #"{"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1, "vocab_size": 300, "max_position_embeddings": 128, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": false, "bos_token_id": 259, "eos_token_id": 1}"#
            .write(to: dir.appendingPathComponent("qwen.json"), atomically: true, encoding: .utf8)
        try redi("init", "--config", "qwen.json", "--seed", "4", "--out", "qwen")
        for model in ["llama", "qwen"] {
            for data in ["sft", "pref"] {
                let lines = try redi("logprobs", "--model", model, "--data", "\(data).jsonl", "--ids").out
                try lines.write(to: dir.appendingPathComponent("\(model)-\(data).out.jsonl"), atomically: true, encoding: .utf8)
                let check = try run(python, [Self.references.appendingPathComponent("llama_numpy.py").path, model, "\(model)-\(data).out.jsonl"])
                print(model, data, check.out.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
    }

    func testCheckpointOpensInTransformersAndGradientsMatchAutograd() throws {
        try writeData()
        /// `check_transformers.py` on checkpoint `model`: its token ids, log-probabilities and
        /// SFT gradients against transformers and torch autograd.
        func checkInTransformers(_ model: String, _ label: String) throws {
            try redi("logprobs", "--model", model, "--data", "sft.jsonl", "--ids", "--out", "\(model)-lp.jsonl")
            try redi("grad", "--model", model, "--data", "sft.jsonl", "--objective", "sft", "--out", "\(model)-g.safetensors")
            let check = try run(
                python,
                [Self.references.appendingPathComponent("check_transformers.py").path, model, "sft.jsonl", "\(model)-lp.jsonl", "\(model)-g.safetensors"],
                expect: -1)
            if check.status == 77 { throw XCTSkip("transformers/torch not installed for \(python) (set REDI_PS_PYTHON): \(check.out)") }
            XCTAssertEqual(check.status, 0, label + ": " + check.out + check.err)
            print("\(label): " + check.out)
        }
        try redi("init", "--config", "tiny", "--seed", "5", "--out", "m")
        try checkInTransformers("m", "one file")
        // The same weights sharded as save_pretrained shards them: transformers opens them alike.
        try redi("init", "--config", "tiny", "--seed", "5", "--out", "ms", "--max-shard-size", "100KB")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("ms/model.safetensors.index.json").path))
        try checkInTransformers("ms", "sharded")
        // A tokenizer trained on the data (`--train-tokenizer`): transformers encodes with it id for id.
        let trainedInit = try redi("init", "--config", "tiny", "--seed", "6", "--out", "mt", "--train-tokenizer", "300", "--tokenizer-data", "sft.jsonl")
        XCTAssertTrue(trainedInit.out.contains("trained a tokenizer of"), trainedInit.out)
        try checkInTransformers("mt", "trained tokenizer")
    }

    func testGradPrintsMetricsForEveryObjectiveAndWritesEveryTensor() throws {
        try writeData()
        try redi("init", "--config", "tiny", "--out", "m")
        for (objective, data, extra) in [
            ("sft", "sft", [String]()), ("redi", "pref", []), ("redi", "pref", ["--alpha", "1", "--gamma", "0.5"]),
            ("dpo", "pref", ["--beta", "0.2"]), ("simpo", "pref", [])
        ] {
            let r = try run(
                Self.binary.path,
                [
                    "grad", "--model", "m", "--data", "\(data).jsonl", "--objective", objective,
                    "--out", "g.safetensors"
                ] + extra)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
            XCTAssertEqual(json["objective"] as? String, objective)
            for key in ["loss", "grad_norm", "num_tokens"] + (data == "pref" ? ["logps/chosen", "logps/rejected", "rewards/margins", "rewards/accuracies"] : []) {
                XCTAssertNotNil(json[key], "\(objective) should report \(key): \(r.out)")
            }
            XCTAssertTrue((json["loss"] as? Double)?.isFinite == true)
        }
        let header = try Data(contentsOf: dir.appendingPathComponent("g.safetensors"))
        XCTAssertTrue(String(decoding: header.prefix(4096), as: UTF8.self).contains("model.layers.1.mlp.down_proj.weight"))
    }

    func testUserErrorsAreClearAndNonZero() throws {
        try writeData()
        try redi("init", "--config", "tiny", "--out", "m")
        XCTAssertTrue(try redi("init", "--config", "tiny", "--out", "m", expect: 1).err.contains("--force"))
        XCTAssertTrue(try redi("init", "--config", "enormous", "--out", "x", expect: 64).err.contains("neither a preset"))
        XCTAssertTrue(
            try redi("grad", "--model", "m", "--data", "sft.jsonl", "--objective", "redi", "--out", "g.safetensors", expect: 1)
                .err.contains("needs preference records"))
        XCTAssertTrue(
            try redi("grad", "--model", "m", "--data", "pref.jsonl", "--objective", "sft", "--gamma", "1", "--out", "g", expect: 64)
                .err.contains("--gamma applies"))
        XCTAssertTrue(try redi("logprobs", "--model", "nowhere", "--data", "sft.jsonl", expect: 1).err.contains("no such checkpoint"))
        try "{\"prompt\": \"a\", \"completion\": \"b\"}\nnot json\n".write(to: dir.appendingPathComponent("bad.jsonl"), atomically: true, encoding: .utf8)
        XCTAssertTrue(try redi("logprobs", "--model", "m", "--data", "bad.jsonl", expect: 1).err.contains("bad.jsonl:2: invalid JSON"))
    }
}
