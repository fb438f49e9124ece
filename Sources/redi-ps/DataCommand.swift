// redi-ps data synth: the built-in verifiable reasoning task's files; redi-ps data openr1:
// Open-R1-Math-shaped rows (parquet or JSONL) into REDI's SFT and preference files.
import ArgumentParser
import Data
import Foundation
import ReasoningTask
import Tokenizers

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Make training data.",
        subcommands: [SynthCommand.self, OpenR1Command.self, BenchmarkCommand.self])
}

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Multi-step arithmetic word problems with teacher traces: sft.jsonl, pref.jsonl, test.jsonl, stats.json.")

    @Option(help: "Training problems.")
    var problems: Int
    @Option(help: "Teacher traces sampled per problem.")
    var tracesPerProblem = 4
    @Option(help: "Held-out test problems (disjoint from training).")
    var testProblems = 100
    @Option(help: "Seed.")
    var seed: UInt64 = 0
    @Option(help: "Digits per operand (difficulty).")
    var digits = 2
    @Option(help: "Operations per problem (difficulty).")
    var steps = 3
    @Option(help: "Probability the teacher slips at each step.")
    var errorRate = 0.15
    @Option(help: "Output directory.")
    var out: String

    func validate() throws {
        guard problems > 0 else { throw ValidationError("--problems must be positive") }
        guard tracesPerProblem >= 2 else { throw ValidationError("--traces-per-problem must be at least 2 to find correct and incorrect traces") }
        guard testProblems >= 0 else { throw ValidationError("--test-problems must be ≥ 0") }
        guard (1...6).contains(digits) else { throw ValidationError("--digits must be 1…6") }
        guard (1...12).contains(steps) else { throw ValidationError("--steps must be 1…12") }
        guard (0...1).contains(errorRate) else { throw ValidationError("--error-rate must be in [0, 1]") }
    }

    func run() throws {
        let stats = try Synthesis.run(
            SynthesisSettings(
                problems: problems, tracesPerProblem: tracesPerProblem, testProblems: testProblems,
                seed: seed, digits: digits, steps: steps, errorRate: errorRate),
            to: URL(fileURLWithPath: out))
        print(
            String(
                format: "wrote %@: %d sft, %d preference, %d test records; teacher accuracy %.3f",
                out, stats.sftRecords, stats.preferenceRecords, stats.testProblems, stats.teacherAccuracy))
    }
}

struct OpenR1Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openr1",
        abstract:
            "Open-R1-Math-shaped rows (problem, generations, per-generation verdicts; parquet or JSONL) into sft.jsonl, pref.jsonl and stats.json, selected as the REDI paper does.",
        discussion: """
            As the paper's reference script: problems with problem_is_valid other than "yes" and \\
            excluded sources are left out; a generation is correct when every verdict column \\
            says true (OpenR1-Math-Raw's correctness.llama_verification and \\
            correctness.math_verify_reparsed_answer, or OpenR1-Math-220k's correctness_llama and \\
            correctness_math_verify), incorrect otherwise. SFT takes the correct generations; a \\
            preference pair is the k-th correct with the k-th incorrect generation of one problem. \\
            Problems whose rendered prompt is over --max-prompt-tokens are dropped, and so are \\
            traces (and the pairs they are in) over --max-response-tokens: dropped, not truncated. \\
            Parquet is read through python3 with pyarrow.
            """)

    @Argument(help: "Open-R1-shaped .parquet or .jsonl files (e.g. every shard of OpenR1-Math-Raw), read in order.")
    var inputs: [String]
    @Option(help: "Model (checkpoint directory or .gguf) whose tokenizer and chat template measure lengths.")
    var model: String
    @Option(help: "Output directory.")
    var out: String
    @Option(help: "Drop problems whose rendered prompt has more tokens than this.")
    var maxPromptTokens = 800
    @Option(help: "Drop generations with more tokens than this.")
    var maxResponseTokens = 19_000
    @Option(help: "Comma-separated sources to leave out (\"\" for none).")
    var excludeSources = "cn_k12"
    @Option(help: "Preference pairs per problem.")
    var pairsPerProblem = 1
    @Option(help: "Correct generations per problem in the SFT file (default: all).")
    var positivesPerProblem: Int?
    @Option(
        help:
            "Comma-separated verdict columns (lists of booleans, one per generation; dotted names reach into mappings). Default: OpenR1-Math-Raw's or -220k's, whichever the rows have."
    )
    var verdicts = ""
    @Option(help: "Text appended to each problem in the user's message (the paper: none).")
    var instruction = OpenR1.Settings().instruction
    @Option(help: "Read only the first N rows.")
    var limit: Int?

    func validate() throws {
        guard !inputs.isEmpty else { throw ValidationError("give at least one input file") }
        guard maxPromptTokens >= 1, maxResponseTokens >= 1 else { throw ValidationError("--max-prompt-tokens and --max-response-tokens must be positive") }
        guard pairsPerProblem >= 0 else { throw ValidationError("--pairs-per-problem must be ≥ 0") }
        if let p = positivesPerProblem, p < 0 { throw ValidationError("--positives-per-problem must be ≥ 0") }
        if let l = limit, l < 1 { throw ValidationError("--limit must be positive") }
    }

    func run() throws {
        var settings = OpenR1.Settings()
        settings.maxPromptTokens = maxPromptTokens
        settings.maxResponseTokens = maxResponseTokens
        settings.excludedSources = Set(excludeSources.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        settings.pairsPerProblem = pairsPerProblem
        settings.positivesPerProblem = positivesPerProblem
        settings.verdictColumns = verdicts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        settings.instruction = instruction
        let tokenizer = try requireTokenizer(model)
        guard tokenizer.chatTemplate != nil else { throw CLIError("\(model): the tokenizer has no chat template; the records are conversations") }
        // A byte-level token covers at least one byte: only texts longer (in bytes) than a limit need counting.
        func count(_ limit: Int) -> (String) -> Int { { $0.utf8.count <= limit ? $0.utf8.count : tokenizer.encode($0).count } }
        let outDir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
        // Written under temporary names and renamed at the end: a file named sft.jsonl is complete.
        let sftURL = outDir.appendingPathComponent("sft.jsonl"), prefURL = outDir.appendingPathComponent("pref.jsonl")
        let sftPart = outDir.appendingPathComponent(".sft.jsonl.part"), prefPart = outDir.appendingPathComponent(".pref.jsonl.part")
        let sft = try LineWriter(path: sftPart.path), pref = try LineWriter(path: prefPart.path)
        var counts = OpenR1.Counts(), bad: [String] = [], lastReport = Date()
        let started = Date()
        for input in inputs {
            try RowReader.read(input, limit: limit.map { $0 - counts.rows }) { line, number in
                guard let row = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else {
                    bad.append("\(input): row \(number): not a JSON object"); counts.rows += 1; return
                }
                let picked = try OpenR1.select(row, settings: settings, tokens: count(max(maxPromptTokens, maxResponseTokens))) {
                    try ChatRendering.renderPrompt($0, tokenizer: tokenizer)
                }
                for r in picked.sft { sft.write(try jsonLine(r)) }
                for r in picked.preference { pref.write(try jsonLine(r)) }
                counts.add(picked.counts)
                if Date().timeIntervalSince(lastReport) >= 2 {
                    lastReport = Date()
                    printError(
                        String(
                            format: "openr1: %d rows, %d sft records, %d pairs (%.0f rows/s)", counts.rows, counts.sftRecords, counts.pairs,
                            Double(counts.rows) / Date().timeIntervalSince(started)))
                }
            }
            if let limit, counts.rows >= limit { break }
        }
        guard bad.count * 10 <= max(1, counts.rows) else {
            throw CLIError("\(bad.count) of \(counts.rows) rows are not JSON objects; is this Open-R1-shaped data?\n" + bad.prefix(5).joined(separator: "\n"))
        }
        guard counts.sftRecords > 0 || counts.pairs > 0 else {
            try? FileManager.default.removeItem(at: sftPart); try? FileManager.default.removeItem(at: prefPart)
            throw CLIError("\(inputs.joined(separator: ", ")): no usable generations in \(counts.rows) rows (\(String(decoding: try JSONEncoder().encode(counts), as: UTF8.self)))")
        }
        for (part, final) in [(sftPart, sftURL), (prefPart, prefURL)] { try finish(part, as: final) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(counts).write(to: outDir.appendingPathComponent("stats.json"))
        print(
            """
            wrote \(out): \(counts.sftRecords) sft records, \(counts.pairs) preference pairs from \(counts.rows) rows
              problems: \(counts.problemsUsed) used; dropped \(counts.invalidProblem) invalid, \(counts.excludedSource) excluded source, \(counts.promptTooLong) prompt over \(maxPromptTokens) tokens, \(counts.verdictsMissing) verdicts missing, \(counts.noProblem) without problem/generations; \(counts.problemsWithoutPair) without both a correct and an incorrect generation
              generations: \(counts.generations), \(counts.positives) correct, \(counts.negatives) incorrect; over \(maxResponseTokens) tokens: \(counts.sftTooLong) sft traces and \(counts.pairsTooLong) pairs dropped
            """)
        if !bad.isEmpty { printError("\(bad.count) rows skipped:\n" + bad.prefix(5).joined(separator: "\n")) }
    }
}

struct BenchmarkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmark",
        abstract:
            "A benchmark's rows (problem and answer columns, as MATH-500, AIME24, AMC23 publish them; parquet or JSONL) into a test file for eval: {\"prompt\": [user message], \"answer\": …}."
    )

    @Argument(help: "Benchmark .parquet or .jsonl file.")
    var input: String
    @Option(help: "Output JSONL file.")
    var out: String
    @Option(help: "Column holding the problem.")
    var problemColumn = "problem"
    @Option(help: "Column holding the reference answer (text or number).")
    var answerColumn = "answer"
    @Option(help: "Text appended to each problem in the user's message.")
    var instruction = ""
    @Option(help: "Read only the first N rows.")
    var limit: Int?

    func run() throws {
        let part = out + ".part"
        let writer = try LineWriter(path: part)
        var written = 0, bad: [String] = []
        try RowReader.read(input, limit: limit) { line, number in
            guard let row = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else { bad.append("row \(number): not a JSON object"); return }
            guard let problem = row[problemColumn] as? String, !problem.isEmpty else { bad.append("row \(number): no text in \"\(problemColumn)\""); return }
            let answer: String
            if let text = row[answerColumn] as? String, !text.isEmpty {
                answer = text
            } else if let number = row[answerColumn] as? NSNumber {
                answer = number.stringValue
            } else {
                bad.append("row \(number): no answer in \"\(answerColumn)\""); return
            }
            let content = instruction.isEmpty ? problem : problem + "\n" + instruction
            writer.write(try jsonLine(["prompt": [["role": "user", "content": content]], "answer": answer]))
            written += 1
        }
        guard bad.isEmpty else {
            try? FileManager.default.removeItem(atPath: part)
            throw CLIError("\(input): \(bad.count) bad rows\n" + bad.prefix(10).joined(separator: "\n"))
        }
        guard written > 0 else { try? FileManager.default.removeItem(atPath: part); throw CLIError("\(input): no rows") }
        try finish(URL(fileURLWithPath: part), as: URL(fileURLWithPath: out))
        print("wrote \(out): \(written) problems")
    }
}

/// Rows of a JSONL file, or of a parquet file converted to JSON lines by python3 + pyarrow
/// (streamed in record batches, so a large file is never whole in memory).
enum RowReader {
    static let parquetToJSONLines = """
        import json, sys
        try:
            import pyarrow.parquet as pq
        except ImportError:
            sys.stderr.write("reading parquet needs pyarrow: python3 -m pip install pyarrow (or convert the file to JSONL)\\n")
            sys.exit(3)
        limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
        n = 0
        for batch in pq.ParquetFile(sys.argv[1]).iter_batches(batch_size=64):
            for row in batch.to_pylist():
                if limit is not None and n >= limit:
                    sys.exit(0)
                sys.stdout.write(json.dumps(row, ensure_ascii=False, default=str) + "\\n")
                n += 1
        """

    static func read(_ path: String, limit: Int?, _ body: (Data, Int) throws -> Void) throws {
        guard FileManager.default.isReadableFile(atPath: path) else { throw CLIError("\(path): cannot read") }
        if path.hasSuffix(".parquet") {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", parquetToJSONLines, path] + (limit.map { [String($0)] } ?? [])
            let pipe = Pipe()
            process.standardOutput = pipe
            do { try process.run() } catch { throw CLIError("reading parquet needs python3 (with pyarrow): \(error)") }
            do { try lines(pipe.fileHandleForReading, limit: limit, body) } catch {
                process.terminate(); process.waitUntilExit(); throw error
            }
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw CLIError("\(path): the parquet reader (python3 + pyarrow) failed with status \(process.terminationStatus)") }
        } else {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError("\(path): cannot read") }
            defer { try? handle.close() }
            try lines(handle, limit: limit, body)
        }
    }

    /// Calls `body` with each non-blank line and its number (`LineReader`: 1 MiB at a time),
    /// the first `limit` of them; a line over `RecordReader.maximumRecordBytes` is an error.
    static func lines(_ handle: FileHandle, limit: Int?, _ body: (Data, Int) throws -> Void) throws {
        var rows = 0
        guard limit.map({ $0 > 0 }) ?? true else { return }
        try LineReader.forEach(handle, maximumBytes: RecordReader.maximumRecordBytes) { number, line in
            switch line {
            case let .tooLong(bytes):
                throw CLIError("line \(number): a row of \(bytes) bytes (at most \(RecordReader.maximumRecordBytes >> 20) MiB)")
            case let .text(text):
                try body(text, number)
                rows += 1
                return limit.map { rows < $0 } ?? true
            }
        }
    }
}
