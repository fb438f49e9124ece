// SmolLM2-135M-Instruct from its GGUF, against independent references: llama.cpp's
// `gguf` reader with a numpy float64 forward, transformers' tokenizer and chat template
// (fixtures made by Tests/reference/make_smollm2_fixtures.py), and Jinja2.
import Foundation
import XCTest

final class RealModelTests: CLITestCase {
    var model: String!

    override func setUpWithError() throws {
        try super.setUpWithError()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path =
            ProcessInfo.processInfo.environment["REDI_PS_TEST_MODEL"]
            ?? root.appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("SmolLM2-135M-Instruct GGUF not found at \(path): run cluster/tools/fetch-test-model.sh")
        }
        model = path
    }

    var fixtures: [String: Any] {
        get throws {
            let data = try Data(contentsOf: Self.references.appendingPathComponent("smollm2_fixtures.json"))
            return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
    }

    func testLogitsAndGreedyTokensAgreeWithGGUFNumpyReference() throws {
        try """
        {"prompt": [{"role": "user", "content": "What is 7 times 8?"}], "completion": [{"role": "assistant", "content": "7 times 8 is 56."}]}
        {"prompt": [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Name a primary color."}], "completion": [{"role": "assistant", "content": "Blue."}]}
        {"prompt": "The quick brown fox", "completion": " jumps over the lazy dog."}
        """.write(to: dir.appendingPathComponent("chat.jsonl"), atomically: true, encoding: .utf8)
        let lp = try redi("logprobs", "--model", model, "--data", "chat.jsonl", "--ids", "--per-token").out
        try lp.write(to: dir.appendingPathComponent("lp.jsonl"), atomically: true, encoding: .utf8)
        let gen = try redi(
            "generate", "--model", model, "--prompt", "What is the capital of France?", "--temperature", "0",
            "--max-new-tokens", "8", "--ids", "--logits-out", "logits.json"
        ).out
        try gen.write(to: dir.appendingPathComponent("gen.jsonl"), atomically: true, encoding: .utf8)
        print(try reference("gguf_numpy.py", [model, "lp.jsonl", "gen.jsonl", "logits.json"]))
        XCTAssertTrue(
            try redi(
                "generate", "--model", model, "--prompt", "What is the capital of France?", "--temperature", "0",
                "--max-new-tokens", "12"
            ).out.contains("Paris"))
    }

    func testTokenizerMatchesTransformers() throws {
        let cases = try XCTUnwrap(try fixtures["tokenizer"] as? [[String: Any]])
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String), want = try XCTUnwrap(c["ids"] as? [Int])
            try text.write(to: dir.appendingPathComponent("t.txt"), atomically: true, encoding: .utf8)
            let out = try redi("tokenize", "--model", model, "--file", "t.txt").out
            let got = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])?["ids"] as? [Int])
            XCTAssertEqual(got, want, "tokenizing \(text.debugDescription)")
            let back = try redi("detokenize", "--model", model, String(data: try JSONSerialization.data(withJSONObject: got), encoding: .utf8)!).out
            XCTAssertEqual(String(back.dropLast()), text, "decode(encode(x)) != x")
        }
    }

    func testChatTemplateRendersLikeTransformers() throws {
        let cases = try XCTUnwrap(try fixtures["chat"] as? [[String: Any]])
        for c in cases {
            let messages = String(data: try JSONSerialization.data(withJSONObject: c["messages"]!), encoding: .utf8)!
            let gen = c["add_generation_prompt"] as? Bool == true
            let out = try run(Self.binary.path, ["render", "--model", model, "--messages", messages] + (gen ? ["--add-generation-prompt"] : [])).out
            XCTAssertEqual(out, c["text"] as? String)
        }
    }

    func testConvertWritesACheckpointThatScoresIdentically() throws {
        try redi("convert", "--from", model, "--out", "hf")
        for file in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("hf/\(file)").path), file)
        }
        try #"{"prompt": [{"role": "user", "content": "Hi there"}], "completion": [{"role": "assistant", "content": "Hello! 123"}]}"#
            .write(to: dir.appendingPathComponent("c.jsonl"), atomically: true, encoding: .utf8)
        let fromGGUF = try redi("logprobs", "--model", model, "--data", "c.jsonl", "--ids").out
        let fromDirectory = try redi("logprobs", "--model", "hf", "--data", "c.jsonl", "--ids").out
        XCTAssertEqual(fromGGUF, fromDirectory)
        print(try reference("check_gguf_quants.py", [Self.binary.path, dir.path]))
    }
}
