// Text files read a MiB at a time, so a JSONL file larger than memory streams through.
import Foundation

public enum LineReader {
    /// One line of a file: its bytes, or only its length when it is over the reader's limit.
    public enum Line {
        case text(Data)
        case tooLong(bytes: Int)
    }

    /// Calls `body(number, line)` for each non-blank line of `handle` (numbers are 1-based and
    /// count every line). A line longer than `maximumBytes` comes as `.tooLong`, its bytes
    /// skipped without being held. `body` returns false to stop reading.
    public static func forEach(_ handle: FileHandle, maximumBytes: Int, _ body: (Int, Line) throws -> Bool) throws {
        var buffer = Data(), number = 0, skipped = 0  // bytes of an over-long line dropped so far
        /// False when `body` asked to stop.
        func emit(_ line: Data) throws -> Bool {
            number += 1
            if skipped > 0 || line.count > maximumBytes {
                defer { skipped = 0 }
                return try body(number, .tooLong(bytes: skipped + line.count))
            }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return true }
            return try body(number, .text(line))
        }
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            buffer.append(chunk)
            // Lines are cut from `start` on; what is left is kept once per chunk, not per line.
            var start = buffer.startIndex
            while let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                guard try emit(buffer[start..<newline]) else { return }
                start = newline + 1
            }
            buffer = Data(buffer[start...])
            if buffer.count > maximumBytes { skipped += buffer.count; buffer = Data() }
        }
        if skipped > 0 || !buffer.isEmpty { _ = try emit(buffer) }
    }
}
