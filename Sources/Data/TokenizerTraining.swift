// A tokenizer trained on a data file's records (`model.train_tokenizer`, `redi-ps init --train-tokenizer`).
import Foundation
import Tokenizers

/// What `trainTokenizer(onRecordsIn:)` learned from.
public struct TrainedTokenizer {
    public let tokenizer: BPETokenizer
    /// Records read and their bytes of text (at most the limit, plus the last record's).
    public let records: Int, bytes: Int
    /// Bytes of that text per token once encoded (the byte tokenizer's is 1).
    public let bytesPerToken: Double
}

/// A byte-level BPE tokenizer of up to `vocabularySize` ids trained on the texts of the JSONL
/// records in `url` (invalid lines skipped), reading until `maximumBytes` of text: enough for
/// a task's vocabulary while training stays seconds.
public func trainTokenizer(onRecordsIn url: URL, vocabularySize: Int, maximumBytes: Int = 16 << 20) throws -> TrainedTokenizer {
    var texts: [String] = [], bytes = 0, records = 0
    _ = try RecordReader.forEach(url, skippingInvalid: true) { _, record in
        texts += record.texts
        bytes += record.texts.reduce(0) { $0 + $1.utf8.count }
        records += 1
        return bytes < maximumBytes
    }
    guard records > 0 else { throw DataError(file: url.path, line: nil, message: "no records to train a tokenizer on") }
    let tokenizer = try BPETokenizer.train(texts: texts, vocabularySize: vocabularySize)
    let tokens = texts.reduce(0) { $0 + tokenizer.encode($1).count }
    return TrainedTokenizer(tokenizer: tokenizer, records: records, bytes: bytes, bytesPerToken: Double(bytes) / Double(max(1, tokens)))
}
