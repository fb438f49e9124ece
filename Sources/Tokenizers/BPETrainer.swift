// Training a byte-level BPE tokenizer on a corpus, for models initialised from scratch: a
// task's text in a few hundred learned tokens instead of one token per byte, so the same
// records cost a fraction of the positions (training and attention cost per position).
// The result is an ordinary `BPETokenizer` (SmolLM2's pre-tokeniser: every digit alone, so
// numbers stay digit by digit), written and read as a Hugging Face tokenizer.json.
import Foundation

extension BPETokenizer {
    /// The special tokens of a trained tokenizer, at ids 0, 1, 2 (then the 256 bytes, then merges).
    public static let trainedSpecials = (pad: "<pad>", eos: "</s>", bos: "<s>")

    /// Learns merges from `texts` until the vocabulary has `vocabularySize` ids (3 special
    /// tokens + 256 bytes + merges) or no pair occurs twice. Classic BPE (Sennrich et al.):
    /// count adjacent pairs over the pre-tokenised words weighted by frequency, merge the most
    /// frequent (ties: the smaller pair of ids, so the result is the same on every machine),
    /// repeat. Every byte keeps its own id, so any text still encodes.
    ///
    /// - Throws: `TokenizerError` when `vocabularySize` leaves no room for the bytes or exceeds the limit.
    public static func train(texts: [String], vocabularySize: Int) throws -> BPETokenizer {
        let firstMerge = 3 + 256
        guard vocabularySize >= firstMerge && vocabularySize <= 1 << 16 else {
            throw TokenizerError("a trained tokenizer has \(firstMerge)…65536 ids (3 special tokens and 256 bytes first), not \(vocabularySize)")
        }
        let byteMap = ByteMap.shared
        var tokens = [trainedSpecials.pad, trainedSpecials.eos, trainedSpecials.bos] + (0..<256).map { String(byteMap.toUnicode[$0]) }
        // Distinct pre-tokenised words as id sequences, with how often each occurs.
        var counts: [[Int32]: Int] = [:]
        for text in texts {
            for piece in PreTokenizer.smollm.split(text) { counts[String(piece).utf8.map { Int32($0) + 3 }, default: 0] += 1 }
        }
        var words = counts.map { (symbols: $0.key, count: $0.value) }.filter { $0.symbols.count > 1 }
        var merges: [(String, String)] = []
        while tokens.count < vocabularySize {
            var pairs: [IDPair: Int] = [:]
            for w in words { for i in 0..<(w.symbols.count - 1) { pairs[IDPair(a: w.symbols[i], b: w.symbols[i + 1]), default: 0] += w.count } }
            guard let best = pairs.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }), best.value >= 2 else { break }
            let id = Int32(tokens.count), (a, b) = (best.key.a, best.key.b)
            tokens.append(tokens[Int(a)] + tokens[Int(b)])
            merges.append((tokens[Int(a)], tokens[Int(b)]))
            // Left to right within a word, as encoding applies a merge.
            for k in words.indices {
                var s = words[k].symbols, out: [Int32] = [], i = 0
                guard s.count > 1 else { continue }
                while i < s.count {
                    if i + 1 < s.count && s[i] == a && s[i + 1] == b { out.append(id); i += 2 } else { out.append(s[i]); i += 1 }
                }
                s = out
                words[k].symbols = s
            }
            words.removeAll { $0.symbols.count < 2 }
        }
        return BPETokenizer(
            tokens: tokens, merges: merges, special: [0, 1, 2], preTokenizer: .smollm,
            bos: 2, eos: 1, pad: 0, addsBOS: true, chatTemplate: nil)
    }
}

/// Two adjacent token ids, ordered by (a, b) for tie-breaking.
private struct IDPair: Hashable, Comparable {
    let a: Int32, b: Int32
    static func < (l: IDPair, r: IDPair) -> Bool { (l.a, l.b) < (r.a, r.b) }
}
