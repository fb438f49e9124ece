import Formats
// safetensors and checkpoint directories: round trips bit for bit, every dtype we read,
// and a clear error for each way a file can be broken.
import Foundation
import Model
import Numerics
import SeededRandom
import Tokenizers
import XCTest

final class FormatsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("redi-formats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func config(tied: Bool = true, type: String = "llama") throws -> LlamaConfig {
        try LlamaConfig(
            modelType: type, hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 2, numAttentionHeads: 2,
            numKeyValueHeads: 1, vocabSize: 260, maxPositionEmbeddings: 32, tieWordEmbeddings: tied,
            bosTokenId: 259, eosTokenId: 1, padTokenId: 0)
    }

    func randomParameters(_ layout: ParameterLayout) -> FloatBuffer {
        var rng = SeededGenerator(seed: 1)
        let p = FloatBuffer(count: layout.totalCount)
        for i in 0..<p.count { p[i] = Float(rng.nextNormal()) }
        return p
    }

    func testCheckpointRoundTripsBitForBit() throws {
        for (tied, type) in [(true, "llama"), (false, "qwen2")] {
            let c = try config(tied: tied, type: type)
            let layout = ParameterLayout(config: c)
            let params = randomParameters(layout)
            let a = dir.appendingPathComponent("a-\(type)"), b = dir.appendingPathComponent("b-\(type)")
            try Checkpoint.write(to: a, config: c, parameters: params, tokenizer: ByteTokenizer())
            let loaded = try Checkpoint.load(from: a)
            XCTAssertEqual(loaded.config, c)
            XCTAssertEqual(loaded.parameters.array.map(\.bitPattern), params.array.map(\.bitPattern))
            XCTAssertNotNil(loaded.tokenizer)
            try Checkpoint.write(to: b, config: loaded.config, parameters: loaded.parameters, tokenizer: loaded.tokenizer)
            for file in ["model.safetensors", "config.json", "tokenizer_config.json"] {
                XCTAssertEqual(try Data(contentsOf: a.appendingPathComponent(file)), try Data(contentsOf: b.appendingPathComponent(file)), file)
            }
        }
    }

    /// Past `maxShardBytes` a checkpoint is written as save_pretrained shards it (whole tensors per
    /// file, an index with every tensor), reads back bit for bit, and a later write in one file
    /// leaves no stale shard behind.
    func testShardedCheckpointsRoundTripAndReplaceEachOther() throws {
        let c = try config(tied: false, type: "llama")
        let layout = ParameterLayout(config: c)
        let params = randomParameters(layout)
        let out = dir.appendingPathComponent("sharded")
        try Checkpoint.write(to: out, config: c, parameters: params, tokenizer: nil, maxShardBytes: 4096)
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertGreaterThan(files.count, 1)
        XCTAssertEqual(files.first, "model-00001-of-\(String(format: "%05d", files.count)).safetensors")
        let index = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("model.safetensors.index.json"))) as? [String: Any])
        XCTAssertEqual((index["weight_map"] as? [String: String])?.count, layout.entries.count)
        XCTAssertEqual((index["metadata"] as? [String: Any])?["total_size"] as? Int, layout.totalCount * 4)
        XCTAssertEqual(try Checkpoint.load(from: out).parameters.array.map(\.bitPattern), params.array.map(\.bitPattern))
        try Checkpoint.write(to: out, config: c, parameters: params, tokenizer: nil)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasPrefix("model") }.sorted(), ["model.safetensors"])
        XCTAssertEqual(parseByteSize("5GB"), 5_000_000_000)
        XCTAssertEqual(parseByteSize("500MB"), 500_000_000)
        XCTAssertEqual(parseByteSize("2MiB"), 2 << 20)
        XCTAssertEqual(parseByteSize("100000"), 100_000)
        XCTAssertNil(parseByteSize("-5GB")); XCTAssertNil(parseByteSize("lots")); XCTAssertNil(parseByteSize("1e300"))
    }

    /// Builds a safetensors file by hand from a header dictionary and raw bytes.
    func handMade(_ header: String, _ body: [UInt8], pad: Bool = true) throws -> URL {
        var h = Array(header.utf8)
        while pad && h.count % 8 != 0 { h.append(0x20) }
        var bytes = withUnsafeBytes(of: UInt64(h.count).littleEndian) { Array($0) }
        bytes += h + body
        let url = dir.appendingPathComponent("\(UUID().uuidString).safetensors")
        try Data(bytes).write(to: url)
        return url
    }

    func testReadsF16AndBF16() throws {
        // 1.0, -2.5, 65504 (max half), 2^-24 (smallest subnormal) as F16; 1.0 and -3.0 as BF16.
        let f16: [UInt16] = [0x3C00, 0xC100, 0x7BFF, 0x0001], bf16: [UInt16] = [0x3F80, 0xC040]
        let body = (f16 + bf16).flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } }
        let url = try handMade(#"{"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}"#, body)
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(try file.read("a"), [1.0, -2.5, 65504, 0x1.0p-24])
        XCTAssertEqual(try file.read("b"), [1.0, -3.0])
    }

    func testRejectsBrokenFilesWithTheProblemNamed() throws {
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let cases: [(URL, String)] = [
            (try handMade(ok, [UInt8](repeating: 0, count: 4)), "truncated"),
            (try handMade(ok, [UInt8](repeating: 0, count: 12)), "trailing"),
            (try handMade(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)), "needs 12 bytes"),
            (try handMade(#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)), "I64"),
            (try handMade(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, [UInt8](repeating: 0, count: 8)), "hole"),
            (try handMade("not json", []), "JSON"),
            // Shapes whose product overflows 64 bits (these trapped before): errors, not crashes.
            (try handMade(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)), "needs"),
            (try handMade(#"{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)), "needs"),
            (try handMade(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,9223372036854775807]}}"#, [UInt8](repeating: 0, count: 8)), "offsets outside the file"),
            (try handMade(String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000), []), "JSON")
        ]
        for (url, needle) in cases {
            XCTAssertThrowsError(try SafetensorsFile(url: url)) { error in
                XCTAssertTrue("\(error)".contains(needle) && "\(error)".contains(url.lastPathComponent), "\(error) should name the file and mention \(needle)")
            }
        }
        let short = dir.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: short)
        XCTAssertThrowsError(try SafetensorsFile(url: short)) { XCTAssertTrue("\($0)".contains("truncated")) }
    }

    func testCheckpointRejectsMissingExtraAndMisshapenTensors() throws {
        let c = try config()
        let layout = ParameterLayout(config: c)
        let params = randomParameters(layout)
        let ckpt = dir.appendingPathComponent("ckpt")
        try Checkpoint.write(to: ckpt, config: c, parameters: params, tokenizer: nil)
        let weights = ckpt.appendingPathComponent("model.safetensors")
        func rewrite(_ tensors: [TensorToWrite]) throws { try writeSafetensors(tensors, to: weights) }
        let all = layout.entries.map { TensorToWrite(name: $0.name, shape: $0.shape, values: params, at: $0.offset) }

        try rewrite(all.filter { $0.name != "model.norm.weight" })
        XCTAssertThrowsError(try Checkpoint.load(from: ckpt)) { XCTAssertTrue("\($0)".contains("missing tensor \"model.norm.weight\"")) }
        try rewrite(all + [TensorToWrite(name: "model.layers.9.mlp.up_proj.weight", shape: [1], values: params)])
        XCTAssertThrowsError(try Checkpoint.load(from: ckpt)) { XCTAssertTrue("\($0)".contains("unexpected tensor")) }
        try rewrite(all.map { $0.name == "model.norm.weight" ? TensorToWrite(name: $0.name, shape: [4, 2], values: $0.values, at: $0.offset) : $0 })
        XCTAssertThrowsError(try Checkpoint.load(from: ckpt)) { XCTAssertTrue("\($0)".contains("has shape [4, 2]")) }
        XCTAssertThrowsError(try Checkpoint.load(from: dir.appendingPathComponent("nowhere"))) { XCTAssertTrue("\($0)".contains("no such checkpoint")) }
    }
}

final class GGUFErrorTests: XCTestCase {
    func write(_ bytes: [UInt8]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("redi-\(UUID().uuidString).gguf")
        try Data(bytes).write(to: url)
        return url
    }

    func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    func testRejectsBadMagicVersionAndTruncation() throws {
        let cases: [([UInt8], String)] = [
            (Array("GGML".utf8) + le(UInt32(3)), "bad magic"),
            (Array("GGUF".utf8) + le(UInt32(9)) + le(UInt64(0)) + le(UInt64(0)), "version 9"),
            (Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(1)), "truncated"),
            // One key "k" with an unknown value type 99.
            (Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(0)) + le(UInt64(1)) + le(UInt64(1)) + Array("k".utf8) + le(UInt32(99)), "unknown metadata value type 99"),
            // One tensor of ggml type 12 (Q4_K), which is not supported.
            (
                Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(1)) + le(UInt64(0)) + le(UInt64(1)) + Array("t".utf8) + le(UInt32(1)) + le(UInt64(256)) + le(UInt32(12))
                    + le(UInt64(0)), "ggml type 12"
            ),
            // A tensor whose data lies past the end of the file.
            (
                Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(1)) + le(UInt64(0)) + le(UInt64(1)) + Array("t".utf8) + le(UInt32(1)) + le(UInt64(64)) + le(UInt32(0))
                    + le(UInt64(0)), "past the end"
            ),
            // These trapped before (found by crafting and fuzzing); now each is an error.
            // A u64 dimension past Int.max.
            (
                Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(1)) + le(UInt64(0)) + le(UInt64(1)) + Array("t".utf8) + le(UInt32(1)) + le(UInt64.max) + le(UInt32(0))
                    + le(UInt64(0)), "dimension"
            ),
            // Dimensions whose product overflows.
            (
                Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(1)) + le(UInt64(0)) + le(UInt64(1)) + Array("t".utf8) + le(UInt32(4))
                    + le(UInt64(1 << 31 - 1)) + le(UInt64(1 << 31 - 1)) + le(UInt64(1 << 31 - 1)) + le(UInt64(1 << 31 - 1)) + le(UInt32(0)) + le(UInt64(0)), "cannot fit"
            ),
            // A data offset of 2^63.
            (
                Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(1)) + le(UInt64(0)) + le(UInt64(1)) + Array("t".utf8) + le(UInt32(1)) + le(UInt64(1)) + le(UInt32(0))
                    + le(UInt64(1) << 63), "past the end"
            ),
            // An array claiming 2^40 u64 elements (a 6 TB allocation before any was read).
            (
                Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(0)) + le(UInt64(1)) + le(UInt64(1)) + Array("k".utf8) + le(UInt32(9)) + le(UInt32(10)) + le(UInt64(1 << 40)),
                "exceeds the file"
            ),
            // Arrays nested 100 000 deep (a stack overflow before).
            (
                Array("GGUF".utf8) + le(UInt32(3)) + le(UInt64(0)) + le(UInt64(1)) + le(UInt64(1)) + Array("k".utf8) + le(UInt32(9))
                    + Array(repeating: le(UInt32(9)) + le(UInt64(1)), count: 100_000).flatMap { $0 }, "nested more than"
            )
        ]
        for (bytes, needle) in cases {
            let url = try write(bytes)
            XCTAssertThrowsError(try GGUFFile(url: url)) { error in
                XCTAssertTrue("\(error)".contains(needle) && "\(error)".contains(url.lastPathComponent), "\(error) should mention \(needle)")
            }
        }
    }
}

/// TensorBoard's record framing (the events themselves are read back by TensorBoard's own
/// loader in the cluster tests).
final class TensorBoardTests: XCTestCase {
    func testCRC32CAndRecordFraming() throws {
        XCTAssertEqual(crc32c(Array("123456789".utf8)), 0xE306_9283)  // the CRC-32C check value
        XCTAssertEqual(crc32c([]), 0)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("redi-tb-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = try TensorBoardWriter(directory: dir, wallTime: 1_700_000_000)
        let afterVersion = try writer.offset()
        try writer.write(step: 3, scalars: [("sft/loss", 1.5), ("sft/nan", .nan)], wallTime: 1_700_000_001)
        let bytes = [UInt8](try Data(contentsOf: writer.url))
        XCTAssertTrue(writer.url.lastPathComponent.hasPrefix("events.out.tfevents.1700000000."))
        // Two runs starting in one second get distinct names, ordered by their microseconds.
        let later = try TensorBoardWriter(directory: dir, wallTime: 1_700_000_000.25)
        XCTAssertNotEqual(later.url, writer.url)
        XCTAssertTrue(TensorBoardWriter.startOrder(later.url.lastPathComponent) > TensorBoardWriter.startOrder(writer.url.lastPathComponent))
        XCTAssertTrue(TensorBoardWriter.startOrder("events.out.tfevents.1700000000.node.example.org.77.000042") == (1_700_000_000, 42))
        XCTAssertTrue(TensorBoardWriter.startOrder("events.out.tfevents.1700000000.localhost") == (1_700_000_000, 0))
        // Record 1: the file version; record 2: one scalar (the NaN is dropped).
        var i = 0, payloads: [[UInt8]] = []
        while i < bytes.count {
            let length = Int(bytes[i..<(i + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            payloads.append(Array(bytes[(i + 12)..<(i + 12 + length)]))
            i += 16 + length
        }
        XCTAssertEqual(i, bytes.count)
        XCTAssertEqual(payloads.count, 2)
        XCTAssertEqual(UInt64(afterVersion), UInt64(16 + payloads[0].count))
        XCTAssertTrue(String(decoding: payloads[0], as: UTF8.self).contains("brain.Event:2"))
        XCTAssertTrue(String(decoding: payloads[1], as: UTF8.self).contains("sft/loss"))
        XCTAssertFalse(String(decoding: payloads[1], as: UTF8.self).contains("sft/nan"))
        try writer.truncate(atOffset: afterVersion)
        XCTAssertEqual(try Data(contentsOf: writer.url).count, Int(afterVersion))
    }
}

final class CheckpointManifestTests: XCTestCase {
    func testSHA256MatchesTheStandardVectorsAndHashlib() throws {
        XCTAssertEqual(SHA256.hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Pieces of every length across block edges hash like one piece.
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        var h = SHA256()
        var i = 0, piece = 1
        while i < bytes.count { let j = min(bytes.count, i + piece); h.update(Array(bytes[i..<j])); i = j; piece = piece % 70 + 1 }
        XCTAssertEqual(h.finish(), SHA256.hex(bytes))
    }

    func testAManifestVerifiesAndNamesTheFileThatChanged() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("manifest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(repeating: 7, count: 100_000).write(to: dir.appendingPathComponent("model.safetensors"))
        try Data("{}".utf8).write(to: dir.appendingPathComponent("trainer_state.json"))
        XCTAssertThrowsError(try CheckpointManifest.verify(dir)) { XCTAssertTrue("\($0)".contains("no manifest.json"), "\($0)") }
        try CheckpointManifest.write(in: dir, facts: ["step": 2])
        try CheckpointManifest.verify(dir)
        var bytes = try Data(contentsOf: dir.appendingPathComponent("model.safetensors"))
        bytes[5000] ^= 1
        try bytes.write(to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try CheckpointManifest.verify(dir)) { XCTAssertTrue("\($0)".contains("model.safetensors: contents differ"), "\($0)") }
        try bytes.prefix(4000).write(to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try CheckpointManifest.verify(dir)) { XCTAssertTrue("\($0)".contains("4000 bytes, the manifest says 100000"), "\($0)") }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try CheckpointManifest.verify(dir)) { XCTAssertTrue("\($0)".contains("missing"), "\($0)") }
    }

    /// A write that fails (here: into a directory that is gone) names the file and leaves no partial file.
    func testAFailedWriteNamesTheFileAndLeavesNothingBehind() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gone-\(UUID().uuidString)")
        let url = dir.appendingPathComponent("trainer_state.json")
        XCTAssertThrowsError(try writeAtomically(Data("{}".utf8), to: url)) { XCTAssertTrue("\($0)".contains(url.path), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path))
    }
}

final class StreamedWriteTests: XCTestCase {
    /// A checkpoint written a flat range at a time, in scrambled order and uneven ranges (as
    /// the coordinator writes what the servers send), is byte for byte the one written whole:
    /// sharded model files, index, and optimizer state with bf16 master weights.
    func testACheckpointWrittenInRangesIsTheOneWrittenWhole() throws {
        let config = try XCTUnwrap(try LlamaConfig.preset("tiny", vocabSize: 260, bos: 259, eos: 1, pad: 0))
        let p = ParameterLayout(config: config).totalCount
        var rng = SeededGenerator(seed: 5)
        let w = (0..<p).map { _ in Float(rng.nextNormal()) }, m = w.map { $0 / 10 }, v = w.map { $0 * $0 }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("streamed-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let metadata = ["format": "pt", "optimizer": "adamw"]
        func write(_ name: String, ranges: [Range<Int>]) throws -> URL {
            let dir = root.appendingPathComponent(name)
            let writer = try CheckpointWriter(directory: dir, config: config, tokenizer: nil, dtype: .bf16, maxShardBytes: p / 2, optimizer: metadata)
            for r in ranges {
                try w[r].withUnsafeBufferPointer { w in
                    try m[r].withUnsafeBufferPointer { m in try v[r].withUnsafeBufferPointer { v in try writer.write(r, weights: w, m: m, v: v) } }
                }
            }
            try writer.finish()
            return dir
        }
        let whole = try write("whole", ranges: [0..<p])
        var cuts = [0, p] + (0..<40).map { _ in Int(rng.next() % UInt64(p)) }
        cuts = Array(Set(cuts)).sorted()
        let pieces = zip(cuts, cuts.dropFirst()).map { $0..<$1 }.shuffled(using: &rng)
        let streamed = try write("streamed", ranges: pieces)
        let names = try FileManager.default.contentsOfDirectory(atPath: whole.path).sorted()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: streamed.path).sorted(), names)
        XCTAssertTrue(names.contains("model.safetensors.index.json") && names.contains("optimizer.safetensors"), "\(names)")
        for name in names {
            XCTAssertEqual(try Data(contentsOf: whole.appendingPathComponent(name)), try Data(contentsOf: streamed.appendingPathComponent(name)), name)
        }
        // And it reads back: bf16 weights within rounding, fp32 master weights exact.
        let loaded = try Checkpoint.load(from: streamed)
        XCTAssertLessThan(zip(loaded.parameters.array, w).map { abs($0 - $1) / max(1e-3, abs($1)) }.max()!, 1e-2)
        let optimizer = try SafetensorsFile(url: streamed.appendingPathComponent("optimizer.safetensors"))
        XCTAssertEqual(try optimizer.read("master_weights"), w)
        XCTAssertEqual(try optimizer.read("exp_avg_sq"), v)
    }

    /// A writer dropped before `finish` (a failed pull) leaves no file, not even its temporary.
    func testAnUnfinishedWriteLeavesNothing() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("unfinished-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        do {
            let writer = try SafetensorsWriter(url: root.appendingPathComponent("x.safetensors"), tensors: [("a", [4])])
            try writer.write(tensor: 0, from: 0, [1, 2])
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path), [])
    }
}
