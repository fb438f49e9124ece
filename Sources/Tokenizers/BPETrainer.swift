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
    /// repeat; counts are updated only in the words a merge changes. Every byte keeps its own
    /// id, so any text still encodes.
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
        // Distinct words in a fixed order (a dictionary's order is not), each pair's count over
        // them and the words that may hold it: a merge touches only those words, so training is
        // proportional to what changes, not to the corpus times the merges.
        let distinct = counts.filter { $0.key.count > 1 }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        var words = distinct.map(\.key)
        let frequency = distinct.map(\.value)
        var pairCounts: [IDPair: Int] = [:], holders: [IDPair: Set<Int>] = [:]
        // Each count change pushes the new count; a popped entry whose count is no longer the pair's is stale.
        var queue = Heap<CountedPair>()
        func count(_ k: Int, _ sign: Int) {
            let w = words[k]
            guard w.count > 1 else { return }
            for i in 0..<(w.count - 1) {
                let p = IDPair(a: w[i], b: w[i + 1]), n = pairCounts[p, default: 0] + sign * frequency[k]
                pairCounts[p] = n
                if sign > 0 { holders[p, default: []].insert(k) }
                queue.push(CountedPair(n: n, p: p))
            }
        }
        for k in words.indices { count(k, 1) }
        var merges: [(String, String)] = []
        while tokens.count < vocabularySize {
            // The most frequent pair (ties: the smaller ids); entries whose count has changed since are stale.
            var best: IDPair?
            while let (n, p) = queue.pop().map({ ($0.n, $0.p) }) {
                if pairCounts[p] == n { best = n >= 2 ? p : nil; break }
            }
            guard let pair = best else { break }
            let id = Int32(tokens.count), (a, b) = (pair.a, pair.b)
            tokens.append(tokens[Int(a)] + tokens[Int(b)])
            merges.append((tokens[Int(a)], tokens[Int(b)]))
            for k in holders.removeValue(forKey: pair) ?? [] {
                let s = words[k]
                // Left to right within a word, as encoding applies a merge.
                var out: [Int32] = [], i = 0
                while i < s.count {
                    if i + 1 < s.count && s[i] == a && s[i + 1] == b { out.append(id); i += 2 } else { out.append(s[i]); i += 1 }
                }
                guard out.count != s.count else { continue }  // a stale holder
                count(k, -1)
                words[k] = out
                count(k, 1)
            }
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

/// A pair with a count it had, most frequent first (ties: the smaller pair).
private struct CountedPair: HeapOrdered {
    let n: Int, p: IDPair
    static func before(_ x: CountedPair, _ y: CountedPair) -> Bool { x.n > y.n || (x.n == y.n && x.p < y.p) }
}
