// What the data layer and the checkpoint writer need from a tokenizer. Byte-level BPE for
// pretrained models arrives in a later issue behind the same protocol.
import Foundation

/// Text ↔ token ids, plus the special tokens sequences are framed with.
public protocol Tokenizer: Sendable {
    var vocabularySize: Int { get }
    var bosID: Int32? { get }
    var eosID: Int32? { get }
    var padID: Int32? { get }
    /// Whether sequences start with BOS (Hugging Face `add_bos_token`).
    var addsBOS: Bool { get }
    /// The Jinja chat template the model was trained with, if any.
    var chatTemplate: String? { get }
    /// Token ids of `text`, without BOS/EOS.
    func encode(_ text: String) -> [Int32]
    /// Text of `ids`; special tokens are rendered by name.
    func decode(_ ids: [Int32]) -> String
    /// Writes the files `transformers`' `AutoTokenizer.from_pretrained` reads.
    func writeFiles(to directory: URL) throws
}

/// The largest vocabulary a tokenizer file may declare (real ones are at most a few hundred thousand).
public let maximumVocabularySize = 1 << 21

/// Errors a user can cause when loading a tokenizer.
public struct TokenizerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
