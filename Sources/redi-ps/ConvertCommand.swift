// redi-ps convert / tokenize / detokenize: model files and tokenizers by hand.
import ArgumentParser
import Formats
import Foundation
import Tokenizers

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a GGUF file into a Hugging Face checkpoint directory (fp32 safetensors, config.json, tokenizer).")

    @Option(help: "Input .gguf file.")
    var from: String

    @Option(help: "Output checkpoint directory.")
    var out: String

    @Flag(help: "Overwrite an existing checkpoint in --out.")
    var force = false

    func validate() throws {
        guard from.lowercased().hasSuffix(".gguf") else { throw ValidationError("--from must be a .gguf file") }
    }

    func run() throws {
        let outURL = URL(fileURLWithPath: out)
        if !force, FileManager.default.fileExists(atPath: outURL.appendingPathComponent("model.safetensors").path) {
            throw CLIError("\(out) already holds a checkpoint; pass --force to overwrite it")
        }
        let model = try GGUFModel.load(from: URL(fileURLWithPath: from))
        try Checkpoint.write(to: outURL, config: model.config, parameters: model.parameters, tokenizer: model.tokenizer)
        print("wrote \(out): \(model.config.modelType), \(model.layout.totalCount) parameters\(model.tokenizer == nil ? " (no tokenizer in the file)" : "")")
    }
}

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Print the token ids of a text as JSON.")

    @Option(help: "Checkpoint directory or .gguf file whose tokenizer to use.")
    var model: String
    @Option(help: "Text to tokenize.")
    var text: String?
    @Option(help: "File whose whole contents to tokenize.")
    var file: String?

    func validate() throws {
        guard (text == nil) != (file == nil) else { throw ValidationError("give exactly one of --text or --file") }
    }

    func run() throws {
        let tokenizer = try requireTokenizer(model)
        let input: String
        if let file {
            guard let contents = try? String(contentsOfFile: file, encoding: .utf8) else { throw CLIError("cannot read \(file) as UTF-8") }
            input = contents
        } else {
            input = text!
        }
        print(try jsonLine(["ids": tokenizer.encode(input)]))
    }
}

struct DetokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "detokenize", abstract: "Print the text of token ids (a JSON array or space-separated).")

    @Option(help: "Checkpoint directory or .gguf file whose tokenizer to use.")
    var model: String
    @Argument(help: "Token ids, as a JSON array or separate numbers.")
    var ids: [String]

    func run() throws {
        let tokenizer = try requireTokenizer(model)
        let numbers = ids.joined(separator: " ").split { !"-0123456789".contains($0) }
        let parsed = try numbers.map { s -> Int32 in
            guard let v = Int32(s), v >= 0, Int(v) < tokenizer.vocabularySize else {
                throw CLIError("\(s) is not a token id of this tokenizer (0..<\(tokenizer.vocabularySize))")
            }
            return v
        }
        print(tokenizer.decode(parsed))
    }
}
