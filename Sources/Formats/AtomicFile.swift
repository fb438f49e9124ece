// Files a run depends on (checkpoints, their manifests, trainer_state.json) are written through
// a hidden temporary file beside them and a rename: readers see the old file or the whole new
// one, and a failure (a full disk) names the file and leaves no temporary behind.
import Foundation

/// Writes `url` by letting `body` fill a temporary file, flushed to disk, then renamed over `url`.
public func writeAtomically(to url: URL, _ body: (FileHandle) throws -> Void) throws {
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial")
    guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
        throw FormatError("\(url.path): cannot write (cannot create \(tmp.lastPathComponent) beside it: is the directory there and writable?)")
    }
    do {
        let handle = try FileHandle(forWritingTo: tmp)
        defer { try? handle.close() }
        try body(handle)
        try handle.synchronize()
        try handle.close()
        guard rename(tmp.path, url.path) == 0 else {
            throw FormatError("cannot rename \(tmp.lastPathComponent) over it (\(String(cString: strerror(errno))))")
        }
    } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw FormatError("\(url.path): cannot write (\((error as? FormatError)?.description ?? error.localizedDescription))")
    }
}

/// Writes `data` to `url` atomically (see `writeAtomically(to:_:)`).
public func writeAtomically(_ data: Data, to url: URL) throws {
    try writeAtomically(to: url) { try $0.write(contentsOf: data) }
}
