// Variable-length sequences packed end to end with no padding. Positions restart at 0 in
// every sequence and attention never crosses a boundary. Only completion tokens are scored.

/// One tokenised sequence: prompt ids followed by completion ids.
public struct TokenSequence: Equatable, Sendable {
    public var tokens: [Int32]
    /// How many leading tokens are prompt (not scored).
    public var promptLength: Int

    public init(tokens: [Int32], promptLength: Int) {
        precondition(promptLength >= 0 && promptLength <= tokens.count)
        self.tokens = tokens
        self.promptLength = promptLength
    }

    /// Tokens whose log-probability is scored: every completion token that has a predecessor.
    public var scoredCount: Int { tokens.count - max(promptLength, 1) }
}

/// A packed batch ready for the model.
public struct PackedBatch: Sendable {
    /// [T] token ids, sequences end to end.
    public let tokens: [Int32]
    /// [T] position of each token within its sequence.
    public let positions: [Int32]
    /// [n+1] start row of each sequence, then T.
    public let sequenceStarts: [Int]
    /// [P] rows whose next token is a scored completion token.
    public let predictRows: [Int32]
    /// [P] the token each of those rows predicts.
    public let predictTargets: [Int32]
    /// [P] the sequence each scored token belongs to.
    public let predictSequence: [Int32]

    public var tokenCount: Int { tokens.count }
    public var sequenceCount: Int { sequenceStarts.count - 1 }
    public var scoredCount: Int { predictRows.count }

    public init(_ sequences: [TokenSequence]) {
        var tokens: [Int32] = [], positions: [Int32] = [], starts: [Int] = []
        var rows: [Int32] = [], targets: [Int32] = [], owner: [Int32] = []
        for (j, s) in sequences.enumerated() {
            let start = tokens.count
            starts.append(start)
            tokens += s.tokens
            positions += (0..<s.tokens.count).map { Int32($0) }
            for i in max(s.promptLength, 1)..<max(s.tokens.count, 1) where i < s.tokens.count {
                rows.append(Int32(start + i - 1))
                targets.append(s.tokens[i])
                owner.append(Int32(j))
            }
        }
        starts.append(tokens.count)
        self.tokens = tokens
        self.positions = positions
        sequenceStarts = starts
        predictRows = rows
        predictTargets = targets
        predictSequence = owner
    }
}
