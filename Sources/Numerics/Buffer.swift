// Owned, 64-byte-aligned fp32 storage: the one allocation behind parameters,
// gradients, optimizer state and activations. Not for small scratch values.
import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// A fixed-size, zero-initialised, 64-byte-aligned array of `Float` that owns its memory.
///
/// Reference semantics on purpose: parameters, gradients and activation workspaces are
/// large and shared by views, never copied implicitly.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let baseAddress: UnsafeMutablePointer<Float>

    /// Allocates `count` floats, all zero.
    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer count must be non-negative")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        baseAddress = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        baseAddress.initialize(repeating: 0, count: max(count, 1))
        mappedBytes = 0
    }

    /// Where a file-backed buffer's pages live: a mapping of `mappedBytes` (0: heap memory).
    private let mappedBytes: Int

    /// `count` floats, all zero, in a file of their own in `directory` (unlinked at once, so its
    /// disk space goes with the buffer): memory the kernel can write back and evict, for data
    /// kept but rarely read (a parameter server's snapshots). Its pages count as the process's
    /// resident memory while touched; `releaseResidentPages` hands them back to the page cache.
    public init(count: Int, fileIn directory: String) throws {
        precondition(count >= 0, "FloatBuffer count must be non-negative")
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        var template = Array("\(directory)/.redi-ps-buffer-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw BufferFileError("cannot create a file in \(directory): \(String(cString: strerror(errno)))") }
        defer { close(fd) }  // the mapping keeps the file
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        guard ftruncate(fd, off_t(bytes)) == 0 else { throw BufferFileError("cannot size a \(bytes)-byte file in \(directory): \(String(cString: strerror(errno)))") }
        guard let mapped = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
            throw BufferFileError("cannot map a \(bytes)-byte file in \(directory): \(String(cString: strerror(errno)))")
        }
        self.count = count
        mappedBytes = bytes
        baseAddress = mapped.bindMemory(to: Float.self, capacity: max(count, 1))  // a fresh file reads as zeros
    }

    /// A file-backed buffer's pages leave this process's resident set (their data stays in the
    /// page cache and the file; the next access reads it back). Nothing for heap buffers.
    public func releaseResidentPages() {
        guard mappedBytes > 0 else { return }
        _ = madvise(UnsafeMutableRawPointer(baseAddress), mappedBytes, MADV_DONTNEED)
    }

    deinit {
        if mappedBytes > 0 { munmap(UnsafeMutableRawPointer(baseAddress), mappedBytes) } else { baseAddress.deallocate() }
    }

    public subscript(i: Int) -> Float {
        get { precondition(i >= 0 && i < count); return baseAddress[i] }
        set { precondition(i >= 0 && i < count); baseAddress[i] = newValue }
    }

    public func zero() { baseAddress.update(repeating: 0, count: count) }

    public var array: [Float] { Array(UnsafeBufferPointer(start: baseAddress, count: count)) }

    /// Copies all values from `other`, which must have the same count.
    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "FloatBuffer.copy: count mismatch \(other.count) vs \(count)")
        baseAddress.update(from: other.baseAddress, count: count)
    }
}

/// Whole-buffer and range operations, so code outside the numeric modules works on buffers
/// and ranges instead of pointer arithmetic.
extension FloatBuffer {
    /// Every value finite (no NaN, no ±inf): values from peers and files are checked with this.
    public var isAllFinite: Bool { allFinite(baseAddress, count: count) }

    /// Whether any value is below zero (AdamW's second moment never is).
    public var hasNegative: Bool { (0..<count).contains { baseAddress[$0] < 0 } }

    /// Copies `values` into this buffer from `offset` on (they must fit).
    public func update(at offset: Int, from values: Slice<UnsafeBufferPointer<Float>>) {
        precondition(offset >= 0 && offset + values.count <= count, "\(values.count) values do not fit at \(offset) of \(count)")
        guard let base = values.base.baseAddress, !values.isEmpty else { return }
        (baseAddress + offset).update(from: base + values.startIndex, count: values.count)
    }

    /// Copies `source`'s values `range` into this buffer from `offset` on.
    public func update(at offset: Int, from source: FloatBuffer, _ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= source.count, "\(range) is outside \(source.count) values")
        precondition(offset >= 0 && offset + range.count <= count, "\(range.count) values do not fit at \(offset) of \(count)")
        (baseAddress + offset).update(from: source.baseAddress + range.lowerBound, count: range.count)
    }

    /// Sets every value in `range` to `value`.
    public func fill(_ range: Range<Int>, with value: Float) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        (baseAddress + range.lowerBound).update(repeating: value, count: range.count)
    }

    /// Σx² in float64, in index order: a gradient's squared norm (the servers' per-chunk sums
    /// for the global norm, and the single-process trainer's, alike).
    public var sumOfSquares: Double {
        var s = 0.0
        for i in 0..<count { let g = Double(baseAddress[i]); s += g * g }
        return s
    }

    /// Adds `other` elementwise (same count).
    public func add(_ other: FloatBuffer) {
        precondition(other.count == count)
        Numerics.add(baseAddress, other.baseAddress, count: count)
    }

    /// Multiplies `range`'s values by `factor`.
    public func scale(_ range: Range<Int>, by factor: Float) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        for i in range { baseAddress[i] *= factor }
    }

    /// `range`'s values narrowed to bfloat16 into the same range of `destination`.
    public func narrow(_ range: Range<Int>, into destination: BFloat16Buffer) {
        precondition(range.lowerBound >= 0 && range.upperBound <= min(count, destination.count))
        narrowToBF16(baseAddress + range.lowerBound, into: destination.baseAddress + range.lowerBound, count: range.count)
    }
}

public struct BufferFileError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Grows on demand and never shrinks; the workspace for activations whose size depends on the batch.
public struct GrowableBuffer {
    public private(set) var buffer = FloatBuffer(count: 0)
    public init() {}

    /// Returns a pointer to at least `count` floats (contents unspecified after growth: zeroed).
    ///
    /// Grows by a quarter at least: micro-batches of slowly rising sizes otherwise reallocated
    /// (and the kernel zero-filled) the whole arena at nearly every step, ~5% of a small model's
    /// training time in page faults and memset (`perf`, the default job's `small` model).
    /// The old buffer is released before the new one is allocated: its contents are not kept,
    /// and holding both had a worker's peak at old + new (8.1 GB instead of ~5.5 for SmolLM2
    /// when a 4096-token REDI micro-batch followed 2048-token SFT ones).
    public mutating func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if buffer.count < count {
            let grown = max(count, buffer.count + buffer.count / 4)
            buffer = FloatBuffer(count: 0)
            buffer = FloatBuffer(count: grown)
        }
        return buffer.baseAddress
    }
}

/// Whether every one of `count` values is finite (no NaN, no ±inf): values from peers are
/// checked with this before they are used. An integer max over the exponent bits, so it vectorises.
public func allFinite(_ values: UnsafeBufferPointer<Float>) -> Bool {
    guard let base = values.baseAddress else { return true }
    return allFinite(base, count: values.count)
}

/// `allFinite` over `count` values from `x`.
public func allFinite(_ x: UnsafePointer<Float>, count: Int) -> Bool {
    let bits = UnsafeRawPointer(x).assumingMemoryBound(to: UInt32.self)
    var worst: UInt32 = 0
    for i in 0..<count { worst = max(worst, bits[i] & 0x7F80_0000) }
    return worst != 0x7F80_0000
}

/// Memory bandwidth of copying `count` floats from `source` into `destination`, best of
/// `repeats`, in GB/s counting bytes read plus bytes written (what a copy moves).
public func copyBandwidth(_ destination: FloatBuffer, from source: FloatBuffer, count: Int, repeats: Int = 5) -> Double {
    precondition(count <= destination.count && count <= source.count)
    var best = Double.infinity
    for _ in 0..<repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        destination.baseAddress.update(from: source.baseAddress, count: count)
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return 2 * Double(count * MemoryLayout<Float>.size) / best / 1e9
}
