// The run key: one CURVE key pair shared by every process of a run. Holding its secret is
// what admits a process: the coordinator's control port and the servers' data ports are
// CURVE servers under this key, and the control port admits only clients that prove they
// hold it. Workers add a key pair of their own for the data plane (see WorkerRole).
import Foundation
import Transport
import Wire

public struct RunKey: Sendable {
    public let keys: CurveKeyPair

    public init(keys: CurveKeyPair) { self.keys = keys }

    public static func generate() throws -> RunKey { RunKey(keys: try CurveKeyPair.generate()) }

    /// The key's printable form: whoever sees this can tell keys apart, not join.
    public var fingerprint: String { z85Encode(keys.publicKey) }

    /// Writes the key file readable by its owner only (mode 0600); refuses to replace one.
    public func write(to path: String) throws {
        let text = """
            # redi-ps run key. Whoever holds this file can join the run: keep it private (chmod 600).
            # public key (for reference): \(fingerprint)
            curve-secret-key = \(z85Encode(keys.secretKey))

            """
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw ClusterError("cannot create key file \(path): \(reason)\(errno == EEXIST ? " (remove it or choose another path)" : "")")
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Foundation.write(fd, bytes, bytes.count) == bytes.count else { throw ClusterError("cannot write key file \(path): \(String(cString: strerror(errno)))") }
    }

    /// Reads a key file written by `redi-ps keys`.
    ///
    /// - Throws: `ClusterError` naming the file when it is missing, readable by others than
    ///   its owner, too large, or holds no valid key.
    public static func load(_ path: String) throws -> RunKey {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ClusterError("cannot read key file \(path): \(String(cString: strerror(errno))); create one with `redi-ps keys --out \(path)`") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw ClusterError("key file \(path) is not a regular file") }
        guard info.st_mode & 0o077 == 0 else {
            throw ClusterError("key file \(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); run chmod 600 \(path)")
        }
        guard info.st_size <= 4096 else { throw ClusterError("key file \(path) is \(info.st_size) bytes; a key file is a few lines") }
        guard let data = FileManager.default.contents(atPath: path) else { throw ClusterError("cannot read key file \(path)") }
        var secret: [UInt8]?
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty || t.hasPrefix("#") { continue }
            let parts = t.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, parts[0] == "curve-secret-key", secret == nil, let key = try z85Decode(parts[1]) else {
                throw ClusterError("key file \(path): expected one line `curve-secret-key = <40 Z85 characters>`")
            }
            secret = key
        }
        guard let secret else { throw ClusterError("key file \(path) holds no curve-secret-key") }
        return RunKey(keys: try CurveKeyPair.derive(secretKey: secret))
    }
}

/// Frames a run's sockets accept: the largest chunk plus the largest envelope's worth.
public func frameLimit(chunkBytes: Int) -> Int { max(chunkBytes, Wire.maximumEnvelopeBytes) + 4096 }

/// Frames a server's data port accepts once it knows the plan: one chunk of the run (data-port
/// envelopes are a few chunk ids). libzmq applies the limit from the first byte, handshake
/// included, so it also bounds what a peer without a key can make the server buffer.
public func dataFrameLimit(largestChunk count: Int) -> Int { max(4 * count, 1 << 20) + 4096 }

/// A server's data port before the Welcome: only handshakes, so nothing large is buffered.
public let handshakeFrameLimit = 64 << 10
