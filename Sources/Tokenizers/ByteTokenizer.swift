// UTF-8 bytes as tokens, for models trained from scratch. The id layout is ByT5's
// (<pad>=0, </s>=1, <unk>=2, byte b = b+3) with <s>=259 added, so the checkpoint's
// tokenizer opens in `transformers` as `ByT5Tokenizer` and agrees id for id.
import Foundation

public struct ByteTokenizer: Tokenizer, Equatable {
    public static let pad: Int32 = 0, eos: Int32 = 1, unk: Int32 = 2, bos: Int32 = 259
    static let byteOffset: Int32 = 3

    public init() {}

    public var vocabularySize: Int { 260 }
    public var bosID: Int32? { Self.bos }
    public var eosID: Int32? { Self.eos }
    public var padID: Int32? { Self.pad }
    public var addsBOS: Bool { true }
    public var chatTemplate: String? { nil }

    public func encode(_ text: String) -> [Int32] { text.utf8.map { Int32($0) + Self.byteOffset } }

    public func decode(_ ids: [Int32]) -> String {
        var out = ""
        var bytes: [UInt8] = []
        func flush() {
            if !bytes.isEmpty { out += String(decoding: bytes, as: UTF8.self); bytes.removeAll() }
        }
        for id in ids {
            if id >= Self.byteOffset && id < Self.byteOffset + 256 {
                bytes.append(UInt8(id - Self.byteOffset))
            } else {
                flush()
                switch id {
                case Self.pad: out += "<pad>"
                case Self.eos: out += "</s>"
                case Self.bos: out += "<s>"
                default: out += "<unk>"
                }
            }
        }
        flush()
        return out
    }

    public func writeFiles(to directory: URL) throws {
        let config: [String: Any] = [
            "tokenizer_class": "ByT5Tokenizer", "extra_ids": 0,
            "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
            "additional_special_tokens": ["<s>"], "model_max_length": 1_000_000
        ]
        let special: [String: Any] = [
            "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
            "additional_special_tokens": ["<s>"]
        ]
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            .write(to: directory.appendingPathComponent("tokenizer_config.json"))
        try JSONSerialization.data(withJSONObject: special, options: [.prettyPrinted, .sortedKeys])
            .write(to: directory.appendingPathComponent("special_tokens_map.json"))
    }

    /// Whether a checkpoint directory holds this tokenizer's files.
    public static func isStored(in directory: URL) -> Bool {
        let url = directory.appendingPathComponent("tokenizer_config.json")
        guard let data = try? Data(contentsOf: url),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return false }
        return json["tokenizer_class"] as? String == "ByT5Tokenizer"
    }
}
