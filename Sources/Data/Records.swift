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
        switch self { case .preference, .chatPreference: true; default: false }
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
    public init(errors: [DataError]) { self.errors = errors }
    public var description: String {
        let shown = errors.prefix(20).map(\.description).joined(separator: "\n")
        return errors.count > 20 ? shown + "\n… and \(errors.count - 20) more" : shown
    }
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
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DataError(file: url.path, line: nil, message: "cannot read (\(error.localizedDescription))")
        }
        return try read(data: data, path: url.path, skippingInvalid: skippingInvalid)
    }

    /// Parses JSONL `data` (the contents of `path`, which names it in errors); see `read(_:skippingInvalid:)`.
    public static func read(data: Data, path: String, skippingInvalid: Bool) throws -> (records: [(line: Int, record: Record)], skipped: Int) {
        var records: [(Int, Record)] = []
        var errors: [DataError] = []
        var lineNumber = 0
        for rawLine in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            // Parsing and tokenising cost ~10× a line's bytes: refuse absurd lines before either.
            guard rawLine.count <= maximumRecordBytes else {
                errors.append(DataError(file: path, line: lineNumber, message: "a record of \(rawLine.count) bytes (at most \(maximumRecordBytes >> 20) MiB)"))
                continue
            }
            if rawLine.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            do {
                records.append((lineNumber, try parse(Data(rawLine))))
            } catch {
                errors.append(DataError(file: path, line: lineNumber, message: error.message))
            }
        }
        if let first = records.first?.1 {
            for (line, r) in records where r.isPreference != first.isPreference {
                errors.append(DataError(file: path, line: line, message: "mixes formats: expected a \(first.isPreference ? "preference" : "prompt/completion") record like the first one"))
            }
        }
        if !errors.isEmpty && !skippingInvalid { throw DataErrors(errors: errors.sorted { ($0.line ?? 0) < ($1.line ?? 0) }) }
        if skippingInvalid, let first = records.first?.1 { records = records.filter { $0.1.isPreference == first.isPreference } }
        if records.isEmpty { throw DataError(file: path, line: nil, message: "no records") }
        return (records, errors.count)
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
                return .chatPreference(prompt: prompt, chosen: try messages("chosen", c), rejected: try messages("rejected", r),
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
    /// - Throws: `DataErrors` naming every bad line when `skipInvalid` is false.
    public static func load(_ url: URL, tokenizer: any Tokenizer, maxLength: Int, vocabularySize: Int,
                            limits: LengthLimits = LengthLimits(), skipInvalid: Bool = false) throws -> (examples: [Example], report: LoadReport) {
        var errors: [DataError] = []
        var examples: [Example] = []
        var report = LoadReport()
        let (records, skipped) = try RecordReader.read(url, skippingInvalid: skipInvalid)
        report.skipped += skipped
        for (line, record) in records {
            var example: Example
            do { example = try Example(record: record, line: line, tokenizer: tokenizer) } catch {
                errors.append(DataError(file: url.path, line: line, message: "\(error)"))
                continue
            }
            if let limit = limits.dropLongerThan, example.sequences.contains(where: { $0.tokens.count > limit }) { report.dropped += 1; continue }
            var fits = true
            for k in example.sequences.indices {
                var s = example.sequences[k]
                if let maxPrompt = limits.maxPromptLength, s.promptLength > maxPrompt {
                    let prompt = limits.truncate(prompt: s.tokens.prefix(s.promptLength), bos: tokenizer.addsBOS ? tokenizer.bosID : nil)
                    s = TokenSequence(tokens: prompt + s.tokens.dropFirst(s.promptLength), promptLength: prompt.count)
                    if k == 0 { report.truncatedPrompts += 1 }
                }
                if let maxLen = limits.maxLength, s.tokens.count > maxLen {
                    if maxLen - max(s.promptLength, 1) < 1 { fits = false; break }
                    s = TokenSequence(tokens: Array(s.tokens.prefix(maxLen)), promptLength: s.promptLength)
                    report.truncatedCompletions += 1
                }
                example.sequences[k] = s
            }
            if !fits { report.dropped += 1; continue }
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
                continue
            }
            examples.append(example)
        }
        if !errors.isEmpty { throw DataErrors(errors: errors) }
        report.records = examples.count
        if examples.isEmpty { throw DataError(file: url.path, line: nil, message: "no usable records (\(report))") }
        return (examples, report)
    }
}
