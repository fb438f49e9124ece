// Reads and writes at byte offsets of an open descriptor (pread/pwrite), the whole range or an
// error however the kernel splits the transfer or a signal interrupts it. Shared by the
// streamed safetensors writer and the stages' scratch token files.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

enum PositionalIO {
    /// Writes all of `bytes` at `offset`; the errno text when it cannot.
    static func write(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32, at offset: Int) -> String? {
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return String(cString: strerror(errno)) }
            done += n
        }
        return nil
    }

    /// Fills all of `bytes` from `offset`; "truncated" or the errno text when it cannot.
    static func read(_ bytes: UnsafeMutableRawBufferPointer, from descriptor: Int32, at offset: Int) -> String? {
        var done = 0
        while done < bytes.count {
            let n = pread(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return n == 0 ? "truncated" : String(cString: strerror(errno)) }
            done += n
        }
        return nil
    }
}

/// A file of fixed-width values, created in a directory and unlinked at once, so its space
/// returns when it is closed however the process ends; written and read at value indices.
public final class ScratchFile<Element: BitwiseCopyable> {
    /// The name it had (for messages; the file no longer has one).
    public let path: String
    private let descriptor: Int32

    /// - Parameter prefix: the file name's start (a process id and a UUID follow).
    public init(in directory: URL, prefix: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("\(prefix)-\(getpid())-\(UUID().uuidString)").path
        descriptor = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw FormatError("\(path): cannot create (\(String(cString: strerror(errno))))") }
        unlink(path)
    }

    deinit { close(descriptor) }

    /// Writes `values` from value index `index` on.
    public func write(_ values: [Element], at index: Int) throws {
        let failure = values.withUnsafeBytes { PositionalIO.write($0, to: descriptor, at: index * MemoryLayout<Element>.stride) }
        if let failure { throw FormatError("\(path): cannot write (\(failure))") }
    }

    /// `count` values from value index `index` on.
    public func read(_ count: Int, at index: Int) throws -> [Element] {
        var failure: String?
        let values = [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            failure = PositionalIO.read(UnsafeMutableRawBufferPointer(buffer), from: descriptor, at: index * MemoryLayout<Element>.stride)
            initialized = failure == nil ? count : 0
        }
        if let failure { throw FormatError("\(path): cannot read back (\(failure))") }
        return values
    }
}
