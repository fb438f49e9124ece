// Training records in TRL's standard JSONL formats, and their tokenisation into sequences.
//   prompt/completion: {"prompt": "...", "completion": "..."}
//   preference:        {"prompt": "...", "chosen": "...", "rejected": "..."}
//                      (+ "ref_chosen_logp", "ref_rejected_logp" for DPO)
// Conversational (message-list) records and truncation arrive with the chat-template issue.
import Foundation
import Model
import Tokenizers

/// A chat message list as `[{"role": …, "content": …}]`.
public typealias Messages = [[String: String]]

/// One record of a JSONL file; `.chat*` cases are TRL's conversational formats.
public enum Record: Equatable, Sendable {
    case completion(prompt: String, completion: String)
    case preference(prompt: String, chosen: String, rejected: String, refChosen: Double?, refRejected: Double?)
    case chatCompletion(prompt: Messages, completion: Messages)
    case chatPreference(prompt: Messages, chosen: Messages, rejected: Messages, refChosen: Double?, refRejected: Double?)

    public var isPreference: Bool {
        switch self {
        case .preference, .chatPreference: true;
        default: false
        }
    }

    /// Every text the record holds (prompt, completions; a chat's message contents): what a
    /// tokenizer trained on the data sees.
    public var texts: [String] {
        func contents(_ m: Messages) -> [String] { m.compactMap { $0["content"] } }
        switch self {
        case let .completion(prompt, completion): return [prompt, completion]
        case let .preference(prompt, chosen, rejected, _, _): return [prompt, chosen, rejected]
        case let .chatCompletion(prompt, completion): return contents(prompt) + contents(completion)
        case let .chatPreference(prompt, chosen, rejected, _, _): return contents(prompt) + contents(chosen) + contents(rejected)
        }
    }
}

/// A problem in a data file, located by file and 1-based line number.
public struct DataError: Error, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let message: String
    public init(file: String, line: Int?, message: String) { self.file = file; self.line = line; self.message = message }
    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

/// Several data errors reported together, so a user fixes a file in one pass.
public struct DataErrors: Error, CustomStringConvertible {
    public let errors: [DataError]
    /// Errors beyond `errors` that were counted but not kept (a bad file can have millions).
    public let more: Int
    public init(errors: [DataError], more: Int = 0) { self.errors = errors; self.more = more }
    public var description: String {
        let shown = errors.prefix(20).map(\.description).joined(separator: "\n")
        let hidden = errors.count - min(errors.count, 20) + more
        return hidden > 0 ? shown + "\n… and \(hidden) more" : shown
    }
}

/// Errors found while a file streams through: the first `kept` in full, the rest counted.
struct ErrorList {
    static let kept = 1000
    var errors: [DataError] = []
    var more = 0
    var count: Int { errors.count + more }
    mutating func append(_ e: DataError) { if errors.count < Self.kept { errors.append(e) } else { more += 1 } }
    func thrown() -> DataErrors { DataErrors(errors: errors.sorted { ($0.line ?? 0) < ($1.line ?? 0) }, more: more) }
}

public enum RecordReader {
    /// The longest record line read (a 32k-token trace is ~150 KB).
    public static let maximumRecordBytes = 16 << 20

    /// Parses every line of a JSONL file; blank lines are skipped.
    ///
    /// - Throws: `DataErrors` listing every malformed line (invalid JSON, missing field, wrong
    ///   type, empty completion, mixed formats), or a single `DataError` if the file is unreadable or empty.
    public static func read(_ url: URL) throws -> [(line: Int, record: Record)] {
        try read(url, skippingInvalid: false).records
    }

    /// Parses a JSONL file, either failing with every bad line listed or, with `skippingInvalid`, dropping bad lines and saying how many.
    public static func read(_ url: URL, skippingInvalid: Bool) throws -> (records: [(line: Int, record: Record)], skipped: Int) {
        var records: [(line: Int, record: Record)] = []
        let skipped = try forEach(url, skippingInvalid: skippingInvalid) {
            records.append(($0, $1)); return true
        }
        return (records, skipped)
    }

    /// Parses a JSONL file a line at a time (the file is never held whole), calling `body` with
    /// each good record until it returns false; returns how many bad lines were skipped.
    ///
    /// Records reach `body` before the whole file is checked: without `skippingInvalid`, a bad
    /// line anywhere still makes this throw (every bad line listed) after the last record.
    public static func forEach(_ url: URL, skippingInvalid: Bool, _ body: (Int, Record) throws -> Bool) throws -> Int {
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: url) } catch {
            throw DataError(file: url.path, line: nil, message: "cannot read (\(error.localizedDescription))")
        }
        defer { try? handle.close() }
        var parser = RecordParser(path: url.path)
        do {
            try LineReader.forEach(handle, maximumBytes: maximumRecordBytes) { number, line in
                guard let record = parser.parse(line, number: number) else { return true }
                return try body(number, record)
            }
        } catch let e as DataErrors { throw e } catch let e as DataError { throw e } catch {
            throw DataError(file: url.path, line: nil, message: "cannot read (\(error.localizedDescription))")
        }
        return try parser.finish(skippingInvalid: skippingInvalid)
    }

    /// Parses JSONL `data` (the contents of `path`, which names it in errors); see `read(_:skippingInvalid:)`.
    public static func read(data: Data, path: String, skippingInvalid: Bool) throws -> (records: [(line: Int, record: Record)], skipped: Int) {
        var records: [(line: Int, record: Record)] = []
        var parser = RecordParser(path: path)
        for (i, rawLine) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if rawLine.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let line: LineReader.Line = rawLine.count <= maximumRecordBytes ? .text(Data(rawLine)) : .tooLong(bytes: rawLine.count)
            if let r = parser.parse(line, number: i + 1) { records.append((i + 1, r)) }
        }
        return (records, try parser.finish(skippingInvalid: skippingInvalid))
    }

    /// Checks lines one at a time: each parses, and all are of the first good record's kind.
    struct RecordParser {
        let path: String
        var errors = ErrorList()
        var records = 0
        var firstIsPreference: Bool?

        /// The line's record, or nil with the problem noted.
        mutating func parse(_ line: LineReader.Line, number: Int) -> Record? {
            // Parsing and tokenising cost ~10× a line's bytes: absurd lines are refused before either.
            let text: Data
            switch line {
            case let .text(t): text = t
            case let .tooLong(bytes):
                errors.append(DataError(file: path, line: number, message: "a record of \(bytes) bytes (at most \(maximumRecordBytes >> 20) MiB)"))
                return nil
            }
            let record: Record
            do { record = try RecordReader.parse(text) } catch {
                errors.append(DataError(file: path, line: number, message: error.message))
                return nil
            }
            let first = firstIsPreference ?? record.isPreference
            firstIsPreference = first
            guard record.isPreference == first else {
                errors.append(DataError(file: path, line: number, message: "mixes formats: expected a \(first ? "preference" : "prompt/completion") record like the first one"))
                return nil
            }
            records += 1
            return record
        }

        /// How many lines were skipped; throws the errors unless skipping, or when nothing was read.
        func finish(skippingInvalid: Bool) throws -> Int {
            if errors.count > 0 && !skippingInvalid { throw errors.thrown() }
            if records == 0 { throw DataError(file: path, line: nil, message: "no records") }
            return errors.count
        }
    }

    static func parse(_ line: Data) throws(LineProblem) -> Record {
        guard let object = try? JSONSerialization.jsonObject(with: line) else { throw LineProblem("invalid JSON") }
        guard let json = object as? [String: Any] else { throw LineProblem("expected a JSON object") }
        func text(_ key: String) throws(LineProblem) -> String {
            guard let value = json[key] else { throw LineProblem("missing field \"\(key)\"") }
            guard let s = value as? String else { throw LineProblem("field \"\(key)\" must be a string") }
            return s
        }
        func messages(_ key: String, _ value: Any) throws(LineProblem) -> Messages {
            guard let list = value as? [Any], !list.isEmpty else { throw LineProblem("field \"\(key)\" must be a non-empty message list") }
            var out: Messages = []
            for (i, m) in list.enumerated() {
                guard let d = m as? [String: Any], let role = d["role"] as? String, let content = d["content"] as? String else {
                    throw LineProblem("\(key)[\(i)] needs string \"role\" and \"content\"")
                }
                out.append(["role": role, "content": content])
            }
            return out
        }
        let conversational = ["prompt", "completion", "chosen", "rejected"].contains { json[$0] is [Any] } || json["messages"] != nil
        if conversational {
            if let all = json["messages"] {
                let list = try messages("messages", all)
                guard list.count >= 2, list.last?["role"] == "assistant" else {
                    throw LineProblem("\"messages\" needs at least two messages ending with an assistant turn")
                }
                return .chatCompletion(prompt: Array(list.dropLast()), completion: [list.last!])
            }
            guard let p = json["prompt"] else { throw LineProblem("missing field \"prompt\"") }
            let prompt = try messages("prompt", p)
            if json["chosen"] != nil || json["rejected"] != nil {
                guard let c = json["chosen"], let r = json["rejected"] else { throw LineProblem("preference records need both \"chosen\" and \"rejected\"") }
                let rc = try number("ref_chosen_logp"), rr = try number("ref_rejected_logp")
                if (rc == nil) != (rr == nil) { throw LineProblem("give both ref_chosen_logp and ref_rejected_logp, or neither") }
                return .chatPreference(
                    prompt: prompt, chosen: try messages("chosen", c), rejected: try messages("rejected", r),
                    refChosen: rc, refRejected: rr)
            }
            guard let c = json["completion"] else { throw LineProblem("missing field \"completion\"") }
            return .chatCompletion(prompt: prompt, completion: try messages("completion", c))
        }
        func number(_ key: String) throws(LineProblem) -> Double? {
            guard let value = json[key], !(value is NSNull) else { return nil }
            guard !(value is Bool), let n = value as? NSNumber else { throw LineProblem("field \"\(key)\" must be a number") }
            guard n.doubleValue.isFinite else { throw LineProblem("field \"\(key)\" must be finite") }
            return n.doubleValue
        }
        if json["chosen"] != nil || json["rejected"] != nil {
            let prompt = try text("prompt"), chosen = try text("chosen"), rejected = try text("rejected")
            if chosen.isEmpty { throw LineProblem("field \"chosen\" is empty") }
            if rejected.isEmpty { throw LineProblem("field \"rejected\" is empty") }
            let rc = try number("ref_chosen_logp"), rr = try number("ref_rejected_logp")
            if (rc == nil) != (rr == nil) { throw LineProblem("give both ref_chosen_logp and ref_rejected_logp, or neither") }
            return .preference(prompt: prompt, chosen: chosen, rejected: rejected, refChosen: rc, refRejected: rr)
        }
        if json["completion"] != nil {
            let prompt = try text("prompt"), completion = try text("completion")
            if completion.isEmpty { throw LineProblem("field \"completion\" is empty") }
            return .completion(prompt: prompt, completion: completion)
        }
        throw LineProblem("expected {\"prompt\", \"completion\"} or {\"prompt\", \"chosen\", \"rejected\"}")
    }
}

/// What is wrong with one line; the reader adds the file and line number.
struct LineProblem: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// A record as token sequences: one for prompt/completion, (chosen, rejected) for preference.
public struct Example: Equatable, Sendable {
    public var sequences: [TokenSequence]
    public var refChosen: Double?
    public var refRejected: Double?
    /// 1-based line in the source file, for error messages.
    public var line: Int

    public init(sequences: [TokenSequence], refChosen: Double? = nil, refRejected: Double? = nil, line: Int) {
        self.sequences = sequences; self.refChosen = refChosen; self.refRejected = refRejected; self.line = line
    }
}

extension Example {
    /// Tokenises as `bos (if the tokenizer adds one) + tok(prompt) + tok(completion) + eos`; the completion part is `tok(completion) + eos`.
    ///
    /// Conversational records are rendered with the tokenizer's chat template: the prompt
    /// messages with the generation prompt, the completion as the rest of the full
    /// conversation, closed by the end-of-turn (EOS) token.
    /// - Throws: `LineProblem`-style text when a conversational record meets a tokenizer without a chat template.
    public init(record: Record, line: Int, tokenizer: any Tokenizer) throws {
        let bos = tokenizer.addsBOS ? tokenizer.bosID.map { [$0] } ?? [] : []
        let eos = tokenizer.eosID.map { [$0] } ?? []
        func sequence(_ prompt: String, _ completion: String) -> TokenSequence {
            let p = bos + tokenizer.encode(prompt)
            var c = tokenizer.encode(completion)
            if c.last != eos.first || eos.isEmpty { c += eos }
            return TokenSequence(tokens: p + c, promptLength: p.count)
        }
        func chat(_ prompt: Messages, _ completion: Messages) throws -> TokenSequence {
            let (p, c) = try ChatRendering.render(prompt: prompt, completion: completion, tokenizer: tokenizer)
            return sequence(p, c)
        }
        self.line = line
        switch record {
        case let .completion(prompt, completion):
            sequences = [sequence(prompt, completion)]
        case let .preference(prompt, chosen, rejected, rc, rr):
            sequences = [sequence(prompt, chosen), sequence(prompt, rejected)]
            refChosen = rc
            refRejected = rr
        case let .chatCompletion(prompt, completion):
            sequences = [try chat(prompt, completion)]
        case let .chatPreference(prompt, chosen, rejected, rc, rr):
            sequences = [try chat(prompt, chosen), try chat(prompt, rejected)]
            refChosen = rc
            refRejected = rr
        }
    }

    public var isPreference: Bool { sequences.count == 2 }
}

/// Which part of a too-long prompt is kept (TRL's `truncation_mode`).
public enum PromptTruncation: String, Sendable, CaseIterable {
    /// The prompt's last tokens (TRL's default): the question usually sits at the end of a
    /// long prompt, right before the completion. A leading BOS stays.
    case keepEnd = "keep_end"
    /// The prompt's first tokens.
    case keepStart = "keep_start"
}

/// Length limits applied while loading (TRL's `max_prompt_length` / `max_length`).
public struct LengthLimits: Sendable {
    /// Longest prompt kept; longer prompts are cut as `promptTruncation` says.
    public var maxPromptLength: Int?
    /// Longest sequence kept; longer completions keep their start.
    public var maxLength: Int?
    public var promptTruncation: PromptTruncation
    /// Records with a sequence longer than this are dropped whole (the paper drops, rather
    /// than cuts, over-long traces), before any truncation.
    public var dropLongerThan: Int?
    public init(maxPromptLength: Int? = nil, maxLength: Int? = nil, promptTruncation: PromptTruncation = .keepEnd, dropLongerThan: Int? = nil) {
        self.maxPromptLength = maxPromptLength; self.maxLength = maxLength; self.promptTruncation = promptTruncation
        self.dropLongerThan = dropLongerThan
    }

    /// `prompt` cut to `maxPromptLength` tokens (unchanged when it fits).
    func truncate(prompt: ArraySlice<Int32>, bos: Int32?) -> [Int32] {
        guard let limit = maxPromptLength, prompt.count > limit else { return Array(prompt) }
        switch promptTruncation {
        case .keepStart:
            return Array(prompt.prefix(limit))
        case .keepEnd:
            if let bos, prompt.first == bos, limit > 1 { return [bos] + prompt.suffix(limit - 1) }
            return Array(prompt.suffix(limit))
        }
    }
}

/// What loading did to the data, so nothing is lost silently.
public struct LoadReport: Sendable, CustomStringConvertible {
    public var records = 0
    public var truncatedPrompts = 0
    public var truncatedCompletions = 0
    /// Records dropped because nothing of the completion fit.
    public var dropped = 0
    /// Invalid records skipped (only with `skipInvalid`).
    public var skipped = 0
    public var description: String {
        "\(records) records kept; \(truncatedPrompts) prompts and \(truncatedCompletions) completions truncated, "
            + "\(dropped) dropped as too long, \(skipped) invalid skipped"
    }
}

public enum Dataset {
    /// Reads and tokenises a JSONL file, applying `limits` and checking every sequence fits the model.
    ///
    /// - Parameters:
    ///   - maxLength: the model's own limit (max_position_embeddings); a longer sequence is an error.
    ///   - skipInvalid: skip bad records (counted in the report) instead of failing.
    ///   - first: stop after this many usable examples.
    /// - Throws: `DataErrors` naming every bad line when `skipInvalid` is false.
    public static func load(
        _ url: URL, tokenizer: any Tokenizer, maxLength: Int, vocabularySize: Int,
        limits: LengthLimits = LengthLimits(), skipInvalid: Bool = false,
        first: Int? = nil
    ) throws -> (examples: [Example], report: LoadReport) {
        var examples: [Example] = []
        let report = try forEach(
            url, tokenizer: tokenizer, maxLength: maxLength, vocabularySize: vocabularySize,
            limits: limits, skipInvalid: skipInvalid
        ) { example in
            examples.append(example)
            return first.map { examples.count < $0 } ?? true
        }
        return (examples, report)
    }

    /// `load` a record at a time: the file is read a MiB at a time and each usable example goes
    /// to `body` as it is tokenised (until `body` returns false), so nothing holds the whole data.
    ///
    /// Examples reach `body` before the whole file is checked: without `skipInvalid`, a bad line
    /// anywhere still makes this throw, every bad line listed, after the last record.
    public static func forEach(
        _ url: URL, tokenizer: any Tokenizer, maxLength: Int, vocabularySize: Int,
        limits: LengthLimits = LengthLimits(), skipInvalid: Bool = false,
        _ body: (Example) throws -> Bool
    ) throws -> LoadReport {
        var errors = ErrorList()
        var report = LoadReport()
        /// The record as an example within `limits`, or nil (dropped, skipped or an error noted).
        func tokenised(_ record: Record, line: Int) -> Example? {
            var example: Example
            do { example = try Example(record: record, line: line, tokenizer: tokenizer) } catch {
                errors.append(DataError(file: url.path, line: line, message: "\(error)"))
                return nil
            }
            if let limit = limits.dropLongerThan, example.sequences.contains(where: { $0.tokens.count > limit }) { report.dropped += 1; return nil }
            for k in example.sequences.indices {
                var s = example.sequences[k]
                if let maxPrompt = limits.maxPromptLength, s.promptLength > maxPrompt {
                    let prompt = limits.truncate(prompt: s.tokens.prefix(s.promptLength), bos: tokenizer.addsBOS ? tokenizer.bosID : nil)
                    s = TokenSequence(tokens: prompt + s.tokens.dropFirst(s.promptLength), promptLength: prompt.count)
                    if k == 0 { report.truncatedPrompts += 1 }
                }
                if let maxLen = limits.maxLength, s.tokens.count > maxLen {
                    if maxLen - max(s.promptLength, 1) < 1 { report.dropped += 1; return nil }
                    s = TokenSequence(tokens: Array(s.tokens.prefix(maxLen)), promptLength: s.promptLength)
                    report.truncatedCompletions += 1
                }
                example.sequences[k] = s
            }
            var problem: String?
            for s in example.sequences {
                if s.tokens.count > maxLength {
                    problem = "\(s.tokens.count) tokens exceed the model's limit of \(maxLength) (set max_length to truncate)"
                } else if let bad = s.tokens.first(where: { $0 < 0 || Int($0) >= vocabularySize }) {
                    problem = "token id \(bad) is outside the model's vocabulary (\(vocabularySize)); is this the model's tokenizer?"
                } else if s.scoredCount < 1 {
                    problem = "nothing to score: the completion is empty after tokenisation"
                }
            }
            if let problem {
                if skipInvalid { report.skipped += 1 } else { errors.append(DataError(file: url.path, line: line, message: problem)) }
                return nil
            }
            return example
        }
        do {
            report.skipped += try RecordReader.forEach(url, skippingInvalid: skipInvalid) { line, record in
                guard let example = tokenised(record, line: line) else { return true }
                report.records += 1
                return try body(example)
            }
        } catch let parsing as DataErrors {
            // Reported with the tokenising problems, in line order.
            for e in parsing.errors { errors.append(e) }
            errors.more += parsing.more
        }
        if errors.count > 0 { throw errors.thrown() }
        if report.records == 0 { throw DataError(file: url.path, line: nil, message: "no usable records (\(report))") }
        return report
    }
}
