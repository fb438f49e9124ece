// A stage's tokenised examples in a scratch file beside the run's output: written once while
// the JSONL streams through, each example read back (pread) when a batch needs it. What lets
// the coordinator run the paper's data (131k traces, ~10 GB of token ids) holding only a few
// bytes per example: where its tokens lie, its lengths, its line and DPO reference scores.
import Formats
import Foundation
import Model
import Tokenizers

public final class TokenStore {
    /// Usable examples, and what loading did (as `Dataset.load`).
    public let count: Int
    public let report: LoadReport
    /// Sequences per example: 1 (prompt/completion) or 2 (chosen, rejected).
    public let sequencesPerExample: Int
    /// Bytes the scratch file holds (it is unlinked: gone when the store is).
    public let fileBytes: Int

    private let file: ScratchFile<Int32>
    private let path: String
    private let firstToken: [Int64]  // token index of each example's first sequence
    private let lengths: [Int32], promptLengths: [Int32]  // per sequence
    private let lines: [Int32]
    /// chosen, rejected per example (preference data); NaN where the record had none.
    private var references: [Double] = []

    /// Reads, tokenises and checks `url` as `Dataset.load` does (same limits, report and
    /// errors), writing the tokens to an unlinked scratch file in `directory`.
    public init(
        _ url: URL, tokenizer: any Tokenizer, maxLength: Int, vocabularySize: Int,
        limits: LengthLimits = LengthLimits(), skipInvalid: Bool = false, directory: URL
    ) throws {
        // Unlinked at once: the space returns when the store goes, whichever way the process ends.
        let file = try ScratchFile<Int32>(in: directory, prefix: ".tokens")
        self.file = file
        path = url.path
        var pending: [Int32] = [], written: Int64 = 0, perExample: Int?
        var firstToken: [Int64] = [], lengths: [Int32] = [], promptLengths: [Int32] = [], lines: [Int32] = [], references: [Double] = []
        func flush() throws {
            try file.write(pending, at: Int(written))
            written += Int64(pending.count)
            pending.removeAll(keepingCapacity: true)
        }
        report = try Dataset.forEach(
            url, tokenizer: tokenizer, maxLength: maxLength, vocabularySize: vocabularySize,
            limits: limits, skipInvalid: skipInvalid
        ) { example in
            perExample = perExample ?? example.sequences.count
            firstToken.append(written + Int64(pending.count))
            lines.append(Int32(clamping: example.line))
            for s in example.sequences {
                lengths.append(Int32(s.tokens.count)); promptLengths.append(Int32(s.promptLength))
                pending += s.tokens
            }
            if example.isPreference { references += [example.refChosen ?? .nan, example.refRejected ?? .nan] }
            if pending.count >= 1 << 20 { try flush() }
            return true
        }
        try flush()
        self.firstToken = firstToken; self.lengths = lengths; self.promptLengths = promptLengths
        self.lines = lines; self.references = references
        count = lines.count
        sequencesPerExample = perExample ?? 1
        fileBytes = Int(written) * 4
    }

    public var isPreference: Bool { sequencesPerExample == 2 }

    /// Whether every example carries DPO reference log-probabilities.
    public var hasReferences: Bool { isPreference && !references.contains(where: \.isNaN) }

    /// Sets every example's reference log-probabilities: (chosen, rejected) per example, in order.
    public func setReferences(_ scores: [Double]) {
        precondition(isPreference && scores.count == 2 * count, "two reference scores per preference example")
        references = scores
    }

    /// Example `i`, its tokens read from the file.
    public func example(_ i: Int) throws -> Example {
        precondition(i >= 0 && i < count, "example \(i) of \(count)")
        let k = sequencesPerExample
        var offset = Int(firstToken[i])
        var sequences: [TokenSequence] = []
        for j in 0..<k {
            let n = Int(lengths[i * k + j])
            let tokens = try file.read(n, at: offset)
            offset += n
            sequences.append(TokenSequence(tokens: tokens, promptLength: Int(promptLengths[i * k + j])))
        }
        var e = Example(sequences: sequences, line: Int(lines[i]))
        if isPreference {
            let (c, r) = (references[2 * i], references[2 * i + 1])
            e.refChosen = c.isNaN ? nil : c
            e.refRejected = r.isNaN ? nil : r
        }
        return e
    }

    /// Examples at `indices`, in that order.
    public func examples(_ indices: some Sequence<Int>) throws -> [Example] { try indices.map(example) }
}
