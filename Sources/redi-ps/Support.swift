// Helpers the subcommands share: loading a model with its tokenizer, writing JSON lines,
// progress on standard error.
import ArgumentParser
import Data
import Formats
import Foundation
import Model
import Tokenizers

/// An error to show the user as is, with exit code 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func loadModelWithTokenizer(_ path: String) throws -> (LoadedModel, any Tokenizer) {
    let model = try loadModel(path)
    guard let tokenizer = model.tokenizer else {
        throw CLIError("\(path): no tokenizer redi-ps can read (a byte-level BPE tokenizer.json, GGUF tokenizer metadata, or redi-ps's byte tokenizer)")
    }
    guard tokenizer.vocabularySize <= model.config.vocabSize else {
        throw CLIError("\(path): tokenizer has \(tokenizer.vocabularySize) ids but vocab_size is \(model.config.vocabSize)")
    }
    return (model, tokenizer)
}

/// Only the tokenizer of `--model` (a GGUF's metadata, or a directory's tokenizer files).
func requireTokenizer(_ path: String) throws -> any Tokenizer {
    guard let tokenizer = try Formats.loadTokenizer(path) else { throw CLIError("\(path): no tokenizer redi-ps can read") }
    return tokenizer
}

func loadExamples(_ path: String, model: LoadedModel, tokenizer: any Tokenizer, options: DataOptions) throws -> [Example] {
    let (examples, report) = try Dataset.load(
        URL(fileURLWithPath: path), tokenizer: tokenizer,
        maxLength: model.config.maxPositionEmbeddings, vocabularySize: model.config.vocabSize,
        limits: LengthLimits(
            maxPromptLength: options.maxPromptLength, maxLength: options.maxLength,
            promptTruncation: options.truncationMode),
        skipInvalid: options.skipInvalid)
    if report.truncatedPrompts + report.truncatedCompletions + report.dropped + report.skipped > 0 {
        printError("\(path): \(report)")
    }
    return examples
}

/// Truncation and bad-record handling for commands that read training data.
struct DataOptions: ParsableArguments {
    @Option(help: "Keep at most this many prompt tokens (which ones: --truncation-mode).")
    var maxPromptLength: Int?
    @Option(help: "Which tokens of a too-long prompt to keep: keep_end (TRL's default: the last ones, after a BOS) or keep_start.")
    var truncationMode: PromptTruncation = .keepEnd
    @Option(help: "Keep at most this many tokens per sequence (the start of the completion); records with no completion left are dropped.")
    var maxLength: Int?
    @Flag(help: "Skip invalid records (and say how many) instead of failing.")
    var skipInvalid = false

    func validate() throws {
        if let m = maxPromptLength, m < 1 { throw ValidationError("--max-prompt-length must be positive") }
        if let m = maxLength, m < 2 { throw ValidationError("--max-length must be at least 2") }
    }
}

/// One compact JSON object per line, keys sorted so output is stable.
func jsonLine(_ object: [String: Any]) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
}

/// Writes lines to a file or standard output.
final class LineWriter {
    private let handle: FileHandle
    init(path: String?) throws {
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: nil) else { throw CLIError("cannot create \(path)") }
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        } else {
            handle = FileHandle.standardOutput
        }
    }
    func write(_ line: String) { handle.write(Data((line + "\n").utf8)) }
}

/// Puts a finished `part` file in place of `final` (replacing it): output written under a
/// temporary name, so a file with the final name is always complete.
func finish(_ part: URL, as final: URL) throws {
    if FileManager.default.fileExists(atPath: final.path) { try FileManager.default.removeItem(at: final) }
    try FileManager.default.moveItem(at: part, to: final)
}

func printError(_ message: String) { FileHandle.standardError.write(Data((message + "\n").utf8)) }

extension PromptTruncation: ExpressibleByArgument {}
