// safetensors I/O to the format's specification: an 8-byte little-endian header length, a
// JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {…}}, then the tensor
// bytes, packed without holes. Reads F32, F16 and BF16 (converted to fp32); writes F32.
import Foundation
import Numerics

/// Errors from reading or writing safetensors files; the message names the file.
public struct FormatError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Element types this reader converts to fp32.
public enum TensorDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"
    public var size: Int { self == .f32 ? 4 : 2 }
}

/// One tensor's header entry.
public struct TensorInfo: Equatable, Sendable {
    public let name: String
    public let dtype: TensorDType
    public let shape: [Int]
    /// Byte range relative to the start of the data section.
    public let dataRange: Range<Int>
    /// Elements: the shape's product (checked against the data range when read).
    public let count: Int

    public init(name: String, dtype: TensorDType, shape: [Int], dataRange: Range<Int>) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.dataRange = dataRange
        count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
    }
}

/// A parsed, validated safetensors file, memory-mapped.
public struct SafetensorsFile {
    public let url: URL
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]
    private let data: Data
    private let dataStart: Int

    /// Opens and validates `url`: header bounds, JSON shape, dtypes, offsets that tile the data exactly.
    public init(url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw FormatError("\(url.path): cannot read (\(error.localizedDescription))")
        }
        try self.init(data: data, url: url)
    }

    /// Parses `data` as the contents of `url` (which names the file in errors); every shape
    /// and offset is checked with overflow-checked arithmetic against the bytes present.
    public init(data: Data, url: URL) throws {
        self.url = url
        self.data = data
        let path = url.path
        guard data.count >= 8 else { throw FormatError("\(path): truncated: \(data.count) bytes, shorter than the 8-byte header length") }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= 100_000_000, Int(headerLength) <= data.count - 8 else {
            throw FormatError("\(path): header length \(headerLength) exceeds the file (\(data.count) bytes): truncated or not safetensors")
        }
        dataStart = 8 + Int(headerLength)
        guard let json = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<dataStart)) as? [String: Any] else {
            throw FormatError("\(path): header is not a JSON object")
        }
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in json {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else { throw FormatError("\(path): __metadata__ must map strings to strings") }
                metadata = m
                continue
            }
            guard let entry = value as? [String: Any], let dtypeName = entry["dtype"] as? String,
                let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else {
                throw FormatError("\(path): tensor \"\(name)\" needs dtype, shape and data_offsets [begin, end]")
            }
            guard let dtype = TensorDType(rawValue: dtypeName) else {
                throw FormatError("\(path): tensor \"\(name)\" has dtype \(dtypeName); supported: F32, F16, BF16")
            }
            guard shape.allSatisfy({ $0 >= 0 }), shape.count <= 8, offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] <= data.count else {
                throw FormatError("\(path): tensor \"\(name)\" has a negative dimension, more than 8 dimensions, or offsets outside the file")
            }
            let info = TensorInfo(name: name, dtype: dtype, shape: shape, dataRange: offsets[0]..<offsets[1])
            guard info.count <= data.count, info.count * dtype.size == info.dataRange.count else {
                let needs = info.count <= data.count ? "\(info.count * dtype.size) bytes" : "more bytes than the file holds"
                throw FormatError("\(path): tensor \"\(name)\" shape \(shape) needs \(needs) but data_offsets span \(info.dataRange.count)")
            }
            tensors[name] = info
        }
        var cursor = 0
        for info in tensors.values.sorted(by: { $0.dataRange.lowerBound < $1.dataRange.lowerBound }) {
            guard info.dataRange.lowerBound == cursor else {
                throw FormatError("\(path): tensor \"\(info.name)\" starts at byte \(info.dataRange.lowerBound), expected \(cursor) (overlap or hole in the data)")
            }
            cursor = info.dataRange.upperBound
        }
        guard dataStart + cursor == data.count else {
            throw FormatError("\(path): header describes \(cursor) data bytes but the file holds \(data.count - dataStart) (truncated or trailing bytes)")
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Elements `range` of tensor `name` into `destination`, which holds exactly that many.
    public func read(_ name: String, elements range: Range<Int>, into destination: FloatBuffer, release: Bool = false) throws {
        guard destination.count == range.count else { throw FormatError("\(url.path): \(range.count) elements of \"\(name)\" into \(destination.count) values") }
        try read(name, elements: range, into: destination.baseAddress, release: release)
    }

    /// Converts elements `range` of tensor `name` (flat, row-major) to fp32 into `destination`;
    /// with `release`, the file's pages read are dropped from memory afterwards (a streaming
    /// reader then stays small however large the file).
    func read(_ name: String, elements range: Range<Int>, into destination: UnsafeMutablePointer<Float>, release: Bool = false) throws {
        guard let info = tensors[name] else { throw FormatError("\(url.path): no tensor \"\(name)\"") }
        guard range.lowerBound >= 0, range.upperBound <= info.count else { throw FormatError("\(url.path): elements \(range) of \"\(name)\" (\(info.count))") }
        let first = dataStart + info.dataRange.lowerBound + range.lowerBound * info.dtype.size
        data.withUnsafeBytes { raw in
            let src = raw.baseAddress! + first
            switch info.dtype {
            case .f32:
                for i in 0..<range.count { destination[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            case .bf16:
                for i in 0..<range.count { destination[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
            case .f16:
                for i in 0..<range.count { destination[i] = halfToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            }
        }
        if release { dropResidentPages(of: data, bytes: first..<(first + range.count * info.dtype.size)) }
    }

    /// Tensor `name` as a new fp32 array.
    public func read(_ name: String) throws -> [Float] {
        guard let info = tensors[name] else { throw FormatError("\(url.path): no tensor \"\(name)\"") }
        var out = [Float](repeating: 0, count: info.count)
        try out.withUnsafeMutableBufferPointer { if let base = $0.baseAddress { try read(name, elements: 0..<info.count, into: base) } }
        return out
    }
}

/// Drops the whole pages of a memory-mapped file's `bytes` from memory (they are read again
/// from the file if touched): what a streaming reader has consumed stops counting as resident.
func dropResidentPages(of data: Data, bytes: Range<Int>) {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    data.withUnsafeBytes { raw in
        guard let base = raw.baseAddress else { return }
        let start = (Int(bitPattern: base) + bytes.lowerBound + page - 1) / page * page
        let end = (Int(bitPattern: base) + bytes.upperBound) / page * page
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
    }
}

/// IEEE binary16 → binary32, including subnormals, infinities and NaN.
public func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        let magnitude = Float(mantissa) * 0x1.0p-24
        return sign != 0 ? -magnitude : magnitude
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
}

/// A tensor to write: a name, a shape, and `shape.product` floats of `values` from `offset` on.
public struct TensorToWrite {
    public let name: String
    public let shape: [Int]
    public let values: FloatBuffer
    public let offset: Int
    public init(name: String, shape: [Int], values: FloatBuffer, at offset: Int = 0) {
        precondition(offset >= 0 && offset + shape.reduce(1, *) <= values.count, "tensor \(name) \(shape) does not fit at \(offset) of \(values.count) values")
        self.name = name; self.shape = shape; self.values = values; self.offset = offset
    }
}

/// How tensors are stored: fp32 as computed, or bfloat16 (rounded to nearest even) as Hugging
/// Face ships models of this size, at half the bytes.
public enum StoredDType: String, Sendable {
    case f32 = "F32", bf16 = "BF16"
    var bytes: Int { self == .f32 ? 4 : 2 }
}

/// Writes fp32 tensors in the given order, as F32 or BF16, header padded with spaces to 8
/// bytes as Hugging Face does.
///
/// Writes to a temporary file first and renames it, so a crash never leaves a half-written checkpoint.
public func writeSafetensors(_ tensors: [TensorToWrite], metadata: [String: String] = ["format": "pt"], dtype: StoredDType = .f32, to url: URL) throws {
    let writer = try SafetensorsWriter(url: url, tensors: tensors.map { ($0.name, $0.shape) }, metadata: metadata, dtype: dtype)
    for (k, t) in tensors.enumerated() { try writer.write(tensor: k, from: 0, t.values.baseAddress + t.offset, count: t.shape.reduce(1, *)) }
    try writer.finish()
}

/// A safetensors file written in pieces, so no process needs all of it in memory: the header
/// first (names, shapes, offsets), then any range of any tensor in any order (positioned
/// writes), then flushed and renamed over `url`. Until `finish`, only a hidden temporary file
/// beside it exists; a writer dropped unfinished removes it.
public final class SafetensorsWriter {
    public let url: URL
    let temporary: URL
    let descriptor: Int32
    let dtype: StoredDType
    /// Each tensor's first byte in the file and its element count.
    let starts: [Int], counts: [Int]
    var finished = false

    public init(url: URL, tensors: [(name: String, shape: [Int])], metadata: [String: String] = ["format": "pt"], dtype: StoredDType = .f32) throws {
        self.url = url; self.dtype = dtype
        temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial")
        func quote(_ s: String) -> String {
            let d = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
            return String(decoding: d.dropFirst().dropLast(), as: UTF8.self)
        }
        var header = "{"
        if !metadata.isEmpty {
            header += "\"__metadata__\":{" + metadata.keys.sorted().map { "\(quote($0)):\(quote(metadata[$0]!))" }.joined(separator: ",") + "},"
        }
        var offset = 0, offsets: [Int] = []
        counts = tensors.map { $0.shape.reduce(1, *) }
        header +=
            zip(tensors, counts).map { t, count -> String in
                let bytes = count * dtype.bytes
                defer { offset += bytes }
                offsets.append(offset)
                return
                    "\(quote(t.name)):{\"dtype\":\"\(dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            }.joined(separator: ",") + "}"
        while header.utf8.count % 8 != 0 { header += " " }
        let dataStart = 8 + header.utf8.count
        starts = offsets.map { $0 + dataStart }
        descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw FormatError("\(url.path): cannot write (cannot create \(temporary.lastPathComponent) beside it: \(String(cString: strerror(errno))))")
        }
        var head = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
        head += Array(header.utf8)
        try put(head, at: 0)
        guard ftruncate(descriptor, off_t(dataStart + offset)) == 0 else { throw failure("cannot size it") }
    }

    deinit {
        if !finished { close(descriptor); unlink(temporary.path) }
    }

    /// Writes `values` into tensor `tensor` from its element `first` on.
    public func write(tensor: Int, from first: Int, _ values: [Float]) throws {
        try values.withUnsafeBufferPointer { v in
            guard let base = v.baseAddress else { return }
            try write(tensor: tensor, from: first, base, count: v.count)
        }
    }

    /// Writes `count` values of tensor `tensor` starting at its element `first`.
    func write(tensor: Int, from first: Int, _ values: UnsafePointer<Float>, count: Int) throws {
        precondition(first >= 0 && first + count <= counts[tensor], "a write past the end of tensor \(tensor)")
        let at = starts[tensor] + first * dtype.bytes
        switch dtype {
        case .f32:
            // fp32 little-endian is the in-memory layout on every platform we build for.
            try put(UnsafeRawBufferPointer(start: values, count: count * 4), at: at)
        case .bf16:
            let narrowed = BFloat16Buffer(count: count)
            narrowToBF16(values, into: narrowed.baseAddress, count: count)
            try put(UnsafeRawBufferPointer(start: narrowed.baseAddress, count: count * 2), at: at)
        }
    }

    /// Flushes the file to disk and renames it into place.
    public func finish() throws {
        guard fsync(descriptor) == 0 else { throw failure("cannot flush it") }
        close(descriptor)
        finished = true
        guard rename(temporary.path, url.path) == 0 else {
            unlink(temporary.path)
            throw FormatError("\(url.path): cannot write (cannot rename \(temporary.lastPathComponent) over it: \(String(cString: strerror(errno))))")
        }
    }

    private func put(_ bytes: [UInt8], at offset: Int) throws {
        try bytes.withUnsafeBytes { try put($0, at: offset) }
    }

    private func put(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        if let failure = PositionalIO.write(bytes, to: descriptor, at: offset) {
            throw FormatError("\(url.path): cannot write (writing \(temporary.lastPathComponent): \(failure))")
        }
    }

    private func failure(_ what: String) -> FormatError {
        FormatError("\(url.path): cannot write (\(what): \(String(cString: strerror(errno))))")
    }
}
/// A size as Hugging Face writes `max_shard_size`: bytes, or a number with KB/MB/GB (powers of
/// 1000) or KiB/MiB/GiB (powers of 1024); nil when it is not one or not positive.
public func parseByteSize(_ text: String) -> Int? {
    let t = text.trimmingCharacters(in: .whitespaces).uppercased()
    let units: [(String, Double)] = [("KIB", 1024), ("MIB", 1_048_576), ("GIB", 1_073_741_824), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("B", 1)]
    var number = Substring(t), scale = 1.0
    if let (suffix, factor) = units.first(where: { t.hasSuffix($0.0) }) { number = t.dropLast(suffix.count); scale = factor }
    guard let value = Double(number.trimmingCharacters(in: .whitespaces)), value.isFinite, value > 0, value * scale < 1e15 else { return nil }
    return max(1, Int(value * scale))
}
