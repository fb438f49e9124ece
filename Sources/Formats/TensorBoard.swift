// TensorBoard event files: what `tensorboard --logdir` and tbparse read. A file is a sequence
// of TFRecords (length, masked CRC32C of the length, payload, masked CRC32C of the payload),
// each payload a serialized `tensorflow.Event`. Only the fields scalars need are written:
// Event{wall_time=1 (double), step=2 (int64), file_version=3 (string), summary=5},
// Summary{value=1 (repeated)}, Summary.Value{tag=1 (string), simple_value=2 (float)}.
// Three small messages are encoded here by hand rather than through protobuf-c: they are
// fixed, write-only, and checked against TensorBoard's own reader in the tests.
import Foundation

/// Appends scalar summaries to one TensorBoard event file.
public final class TensorBoardWriter {
    public let url: URL
    private let handle: FileHandle

    /// Creates `directory/events.out.tfevents.<seconds>.<host>.<pid>.<microseconds>` (unique, and
    /// ordered by `startOrder`, even for two runs that start within one second) and writes the
    /// file-version record.
    public init(directory: URL, wallTime: Double = Date().timeIntervalSince1970) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }
        let micro = String(format: "%06d", Int((wallTime - wallTime.rounded(.down)) * 1e6))
        url = directory.appendingPathComponent("events.out.tfevents.\(Int(wallTime)).\(host.isEmpty ? "localhost" : host).\(getpid()).\(micro)")
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
        handle = try FileHandle(forWritingTo: url)
        var event = ProtobufWriter()
        event.double(1, wallTime)
        event.bytes(3, Array("brain.Event:2".utf8))
        try handle.write(contentsOf: Self.record(event.bytes))
    }

    deinit { try? handle.close() }

    /// When the file named `name` was started, as (seconds, microseconds) from its name; older
    /// names without microseconds count as the second's start.
    public static func startOrder(_ name: String) -> (Int, Int) {
        let parts = name.split(separator: ".")
        let seconds = parts.count > 3 ? Int(parts[3]) ?? 0 : 0
        let micro = parts.count > 6 ? Int(parts[parts.count - 1]) ?? 0 : 0
        return (seconds, micro)
    }

    /// Writes one event holding `scalars` (tag → value) at `step`; non-finite values are skipped.
    public func write(step: Int, scalars: [(String, Double)], wallTime: Double = Date().timeIntervalSince1970) throws {
        var summary = ProtobufWriter()
        for (tag, value) in scalars where value.isFinite {
            var v = ProtobufWriter()
            v.bytes(1, Array(tag.utf8))
            v.float(2, Float(value))
            summary.bytes(1, v.bytes)
        }
        var event = ProtobufWriter()
        event.double(1, wallTime)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.bytes(5, summary.bytes)
        try handle.write(contentsOf: Self.record(event.bytes))
    }

    /// Bytes written so far (to cut the file back when steps are replayed).
    public func offset() throws -> UInt64 { try handle.offset() }

    /// Drops everything after `offset`.
    public func truncate(atOffset offset: UInt64) throws {
        try handle.truncate(atOffset: offset)
        try handle.seekToEnd()
    }

    /// One TFRecord around `payload`.
    static func record(_ payload: [UInt8]) -> Data {
        var out = Data()
        let length = withUnsafeBytes(of: UInt64(payload.count).littleEndian) { Array($0) }
        out.append(contentsOf: length)
        out.append(contentsOf: withUnsafeBytes(of: maskedCRC32C(length).littleEndian) { Array($0) })
        out.append(contentsOf: payload)
        out.append(contentsOf: withUnsafeBytes(of: maskedCRC32C(payload).littleEndian) { Array($0) })
        return out
    }
}

/// TFRecord's checksum: CRC32C rotated right by 15 bits plus a constant.
func maskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
    let crc = crc32c(bytes)
    return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
public func crc32c(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes { crc = crc32cTable[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
    return crc ^ 0xFFFF_FFFF
}

private let crc32cTable: [UInt32] = (0..<256).map { i in
    var c = UInt32(i)
    for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    return c
}

/// The protobuf wire encoding of the few field kinds event files use.
struct ProtobufWriter {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ value: UInt64) { rawVarint(UInt64(field << 3)); rawVarint(value) }

    mutating func double(_ field: Int, _ value: Double) {
        rawVarint(UInt64(field << 3 | 1))
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func float(_ field: Int, _ value: Float) {
        rawVarint(UInt64(field << 3 | 5))
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        rawVarint(UInt64(field << 3 | 2))
        rawVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }
}
