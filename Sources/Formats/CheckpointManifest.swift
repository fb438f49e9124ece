// A checkpoint's manifest: every file's SHA-256 and size, written last and atomically, so a
// checkpoint either verifies whole or is known to be damaged or incomplete (a crash while
// writing, a flipped bit, a truncated copy). Resuming verifies it before reading anything.
import Foundation

public enum CheckpointManifest {
    public static let fileName = "manifest.json"

    /// Hashes every regular file of `directory` (not hidden ones, not the manifest) and writes
    /// the manifest through a temporary file and a rename; `facts` are stored beside the files.
    public static func write(in directory: URL, facts: [String: Any] = [:]) throws {
        var files: [String: Any] = [:]
        for name in try listing(directory) {
            let (sha, bytes) = try SHA256.file(directory.appendingPathComponent(name))
            files[name] = ["sha256": sha, "bytes": bytes]
        }
        var object = facts
        object["files"] = files
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(data, to: directory.appendingPathComponent(fileName))
    }

    /// Checks every file the manifest names (and that no other file was added).
    ///
    /// - Throws: `FormatError` saying which file is missing, resized, altered or extra, or that
    ///   there is no readable manifest (a checkpoint cut short, or written by an older redi-ps).
    public static func verify(_ directory: URL) throws {
        let url = directory.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw FormatError("\(directory.path): no \(fileName) (the checkpoint was not finished, or predates manifests)")
        }
        guard data.count < 1 << 20, let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let files = object["files"] as? [String: Any], !files.isEmpty
        else {
            throw FormatError("\(url.path): not a readable manifest")
        }
        for (name, entry) in files.sorted(by: { $0.key < $1.key }) {
            guard !name.contains("/"), !name.hasPrefix("."), let e = entry as? [String: Any],
                let sha = e["sha256"] as? String, let bytes = e["bytes"] as? Int
            else {
                throw FormatError("\(url.path): entry \"\(name)\" is malformed")
            }
            let file = directory.appendingPathComponent(name)
            let size = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? nil
            guard let size else { throw FormatError("\(file.path): missing (the manifest lists it)") }
            guard size == bytes else { throw FormatError("\(file.path): \(size) bytes, the manifest says \(bytes) (truncated or replaced)") }
            guard try SHA256.file(file).sha256 == sha else { throw FormatError("\(file.path): contents differ from the manifest's SHA-256 (damaged)") }
        }
        if let extra = try listing(directory).first(where: { files[$0] == nil }) {
            throw FormatError("\(directory.appendingPathComponent(extra).path): not in the manifest (added after the checkpoint was written)")
        }
    }

    /// The regular, visible files of `directory` but the manifest, sorted.
    private static func listing(_ directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { name in
            var isDirectory: ObjCBool = false
            return !name.hasPrefix(".") && name != fileName
                && FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path, isDirectory: &isDirectory) && !isDirectory.boolValue
        }.sorted()
    }
}
