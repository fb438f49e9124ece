// GGUF (llama.cpp's model format, version 2 and 3) reader: header, metadata of every value
// type, tensor infos, alignment, and dequantisation of F32, F16, BF16, Q8_0, Q4_0 and Q4_1
// to fp32. Not a writer, and no K-quants (no model we test needs them; the error says so).
import Foundation

/// A metadata value, as typed in the file.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint(UInt64), int(Int64), float(Double), bool(Bool), string(String), array([GGUFValue])

    public var int: Int? {
        switch self {
        case let .uint(v): Int(exactly: v);
        case let .int(v): Int(exactly: v);
        default: nil
        }
    }
    public var double: Double? {
        switch self {
        case let .float(v): v;
        case let .uint(v): Double(v);
        case let .int(v): Double(v);
        default: nil
        }
    }
    public var string: String? { if case let .string(s) = self { s } else { nil } }
    public var array: [GGUFValue]? { if case let .array(a) = self { a } else { nil } }
    public var bool: Bool? { if case let .bool(b) = self { b } else { nil } }
}

/// ggml tensor element types this reader understands.
public enum GGMLType: UInt32, Sendable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, bf16 = 30

    /// (elements per block, bytes per block)
    var block: (Int, Int) {
        switch self {
        case .f32: (1, 4)
        case .f16, .bf16: (1, 2)
        case .q4_0: (32, 18)
        case .q4_1: (32, 20)
        case .q8_0: (32, 34)
        }
    }
}

/// One tensor's description; `dimensions` are ggml's (fastest-varying first).
public struct GGUFTensorInfo: Sendable {
    public let name: String
    public let dimensions: [Int]
    public let type: GGMLType
    /// Byte offset from the start of the file.
    public let fileOffset: Int
    public let byteCount: Int
    public var count: Int { dimensions.reduce(1, *) }
    /// The row-major shape (slowest first), as PyTorch and Hugging Face write it.
    public var shape: [Int] { dimensions.reversed() }
}

/// A parsed GGUF file, memory-mapped; tensors are dequantised on request.
public struct GGUFFile {
    public let url: URL
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    public let tensors: [String: GGUFTensorInfo]
    /// Tensor names in file order.
    public let tensorOrder: [String]
    private let data: Data

    /// Parses and validates the header, metadata and tensor table of `url`.
    ///
    /// - Throws: `FormatError` naming the file and what is wrong: bad magic, unsupported
    ///   version, a truncated table, an unknown value or tensor type, data outside the file.
    public init(url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw FormatError("\(url.path): cannot read (\(error.localizedDescription))")
        }
        try self.init(data: data, url: url)
    }

    /// Parses `data` as the contents of `url` (which names the file in errors).
    ///
    /// Every size, count and offset in the file is checked before it is used: arithmetic that
    /// would overflow, data past the end, and arrays nested deeper than `maximumDepth` are
    /// errors, and nothing is allocated beyond what the file's size can back.
    public init(data: Data, url: URL) throws {
        self.url = url
        self.data = data
        var r = ByteReader(data: data, path: url.path)
        guard try r.u32() == 0x4655_4747 else { throw FormatError("\(url.path): not a GGUF file (bad magic)") }
        version = try r.u32()
        guard version == 2 || version == 3 else { throw FormatError("\(url.path): GGUF version \(version) is not supported (2 or 3)") }
        let tensorCount = try r.u64(), kvCount = try r.u64()
        guard tensorCount < 1_000_000, kvCount < 1_000_000 else { throw FormatError("\(url.path): implausible tensor or key count") }
        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<kvCount {
            let key = try r.string()
            metadata[key] = try r.value(type: try r.u32())
        }
        var infos: [(String, [Int], GGMLType, UInt64)] = []
        for _ in 0..<tensorCount {
            let name = try r.string()
            let nDims = Int(try r.u32())
            guard nDims >= 1 && nDims <= 4 else { throw FormatError("\(url.path): tensor \"\(name)\" has \(nDims) dimensions") }
            let dims = try (0..<nDims).map { _ -> Int in
                let d = try r.u64()
                guard d >= 1, d <= UInt64(Int32.max) else { throw FormatError("\(url.path): tensor \"\(name)\" has dimension \(d)") }
                return Int(d)
            }
            let rawType = try r.u32()
            guard let type = GGMLType(rawValue: rawType) else {
                throw FormatError("\(url.path): tensor \"\(name)\" has ggml type \(rawType); supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1")
            }
            infos.append((name, dims, type, try r.u64()))
        }
        let alignment = metadata["general.alignment"]?.int ?? 32
        guard alignment > 0 && alignment.nonzeroBitCount == 1 else { throw FormatError("\(url.path): general.alignment \(alignment) is not a power of two") }
        guard alignment <= 1 << 20 else { throw FormatError("\(url.path): general.alignment \(alignment) is implausible") }
        let dataStart = (r.offset + alignment - 1) / alignment * alignment
        var tensors: [String: GGUFTensorInfo] = [:]
        for (name, dims, type, offset) in infos {
            // Each dimension is below 2^31 and there are at most 4, so only the product can overflow.
            var count = 1
            for d in dims {
                let (p, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow, p <= data.count * 2 else {
                    throw FormatError("\(url.path): tensor \"\(name)\" with dimensions \(dims) cannot fit in a \(data.count)-byte file")
                }
                count = p
            }
            let (perBlock, bytesPerBlock) = type.block
            guard count % perBlock == 0 else { throw FormatError("\(url.path): tensor \"\(name)\" has \(count) elements, not a multiple of its block size \(perBlock)") }
            let bytes = count / perBlock * bytesPerBlock
            guard offset <= UInt64(data.count), dataStart + Int(offset) + bytes <= data.count else {
                throw FormatError("\(url.path): tensor \"\(name)\" extends past the end of the file (truncated download?)")
            }
            let start = dataStart + Int(offset)
            tensors[name] = GGUFTensorInfo(name: name, dimensions: dims, type: type, fileOffset: start, byteCount: bytes)
        }
        self.metadata = metadata
        self.tensors = tensors
        tensorOrder = infos.map(\.0)
    }

    /// Tensor `name` dequantised into a new fp32 array, in ggml element order.
    public func read(_ name: String) throws -> [Float] {
        guard let info = tensors[name] else { throw FormatError("\(url.path): no tensor \"\(name)\"") }
        var out = [Float](repeating: 0, count: info.count)
        try out.withUnsafeMutableBufferPointer { if let base = $0.baseAddress { try read(name, elements: 0..<info.count, into: base) } }
        return out
    }

    /// Dequantises elements `range` of tensor `name` (whole blocks of a quantised type: rows
    /// always are) into `destination`; with `release`, the pages read are dropped from memory afterwards.
    func read(_ name: String, elements range: Range<Int>, into destination: UnsafeMutablePointer<Float>, release: Bool = false) throws {
        guard let info = tensors[name] else { throw FormatError("\(url.path): no tensor \"\(name)\"") }
        let (perBlock, blockBytes) = info.type.block
        guard range.lowerBound >= 0, range.upperBound <= info.count, range.lowerBound % perBlock == 0, range.count % perBlock == 0 else {
            throw FormatError("\(url.path): elements \(range) of \"\(name)\" are not whole blocks of its \(info.count)")
        }
        let first = info.fileOffset + range.lowerBound / perBlock * blockBytes, blocks = range.count / perBlock
        data.withUnsafeBytes { raw in
            let src = raw.baseAddress! + first
            func f16(_ at: Int) -> Float { halfToFloat(src.loadUnaligned(fromByteOffset: at, as: UInt16.self).littleEndian) }
            switch info.type {
            case .f32:
                for i in 0..<range.count { destination[i] = Float(bitPattern: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian) }
            case .f16:
                for i in 0..<range.count { destination[i] = f16(2 * i) }
            case .bf16:
                for i in 0..<range.count { destination[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16) }
            case .q8_0:
                for b in 0..<blocks {
                    let base = b * 34, d = f16(base), out = destination + b * 32
                    for j in 0..<32 { out[j] = d * Float(Int8(bitPattern: src.load(fromByteOffset: base + 2 + j, as: UInt8.self))) }
                }
            case .q4_0:
                for b in 0..<blocks {
                    let base = b * 18, d = f16(base), out = destination + b * 32
                    for j in 0..<16 {
                        let q = src.load(fromByteOffset: base + 2 + j, as: UInt8.self)
                        out[j] = d * (Float(q & 0x0F) - 8)
                        out[j + 16] = d * (Float(q >> 4) - 8)
                    }
                }
            case .q4_1:
                for b in 0..<blocks {
                    let base = b * 20, d = f16(base), m = f16(base + 2), out = destination + b * 32
                    for j in 0..<16 {
                        let q = src.load(fromByteOffset: base + 4 + j, as: UInt8.self)
                        out[j] = d * Float(q & 0x0F) + m
                        out[j + 16] = d * Float(q >> 4) + m
                    }
                }
            }
        }
        if release { dropResidentPages(of: data, bytes: first..<(first + blocks * blockBytes)) }
    }
}

/// Little-endian cursor over the file with bounds checks that become `FormatError`s.
struct ByteReader {
    let data: Data
    let path: String
    var offset = 0
    /// Metadata array values read so far (bounded by `maximumMetadataValues`).
    var metadataValues = 0

    mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
        guard offset + MemoryLayout<T>.size <= data.count else { throw FormatError("\(path): truncated at byte \(offset)") }
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) })
    }

    mutating func u32() throws -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws -> UInt64 { try load(UInt64.self) }

    mutating func string() throws -> String {
        let n = try u64()
        guard n <= UInt64(data.count - offset) else { throw FormatError("\(path): string length \(n) at byte \(offset) exceeds the file") }
        let start = offset
        offset += Int(n)
        return String(decoding: data[(data.startIndex + start)..<(data.startIndex + offset)], as: UTF8.self)
    }

    /// How deep arrays may nest (real files use one level).
    static let maximumDepth = 8
    /// How many array values all metadata may hold together.
    static let maximumMetadataValues = 1 << 23

    /// The fewest bytes one value of `type` takes in the file (0 for an unknown type).
    static func minimumSize(_ type: UInt32) -> Int {
        switch type {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 8, 10, 11, 12: 8
        case 9: 12
        default: 0
        }
    }

    mutating func value(type: UInt32, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try load(UInt8.self)))
        case 1: return .int(Int64(try load(Int8.self)))
        case 2: return .uint(UInt64(try load(UInt16.self)))
        case 3: return .int(Int64(try load(Int16.self)))
        case 4: return .uint(UInt64(try load(UInt32.self)))
        case 5: return .int(Int64(try load(Int32.self)))
        case 6: return .float(Double(Float(bitPattern: try load(UInt32.self))))
        case 7: return .bool(try load(UInt8.self) != 0)
        case 8: return .string(try string())
        case 9:
            guard depth < Self.maximumDepth else { throw FormatError("\(path): arrays nested more than \(Self.maximumDepth) deep at byte \(offset)") }
            let elementType = try u32()
            let n = try u64()
            let size = Self.minimumSize(elementType)
            guard size > 0 else { throw FormatError("\(path): unknown metadata value type \(elementType) at byte \(offset)") }
            // The elements must fit in what is left of the file, which bounds the allocation too.
            guard n <= UInt64((data.count - offset) / size) else { throw FormatError("\(path): array length \(n) at byte \(offset) exceeds the file") }
            // Each value takes ~40 bytes in memory against 1-8 in the file: a budget over the
            // whole file's metadata (real files: a vocabulary and its merges, < 2^21 each).
            metadataValues += Int(n)
            guard metadataValues <= Self.maximumMetadataValues else {
                throw FormatError("\(path): more than \(Self.maximumMetadataValues) metadata array values (at byte \(offset))")
            }
            var out: [GGUFValue] = []
            out.reserveCapacity(Int(n))
            for _ in 0..<n { out.append(try value(type: elementType, depth: depth + 1)) }
            return .array(out)
        case 10: return .uint(try load(UInt64.self))
        case 11: return .int(try load(Int64.self))
        case 12: return .float(Double(bitPattern: try load(UInt64.self)))
        default: throw FormatError("\(path): unknown metadata value type \(type) at byte \(offset)")
        }
    }
}
