// CurveZMQ for every socket of a run: key pairs, the socket options that make a socket a
// CURVE server or client, a ZAP handler that admits only known client keys, and a monitor
// that tells a client its handshake was refused. Not here: which keys a run uses (Cluster).
import CZeroMQ
import Foundation

/// A CURVE key pair (32-byte Curve25519 keys).
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: [UInt8]
    public let secretKey: [UInt8]

    public init(publicKey: [UInt8], secretKey: [UInt8]) {
        precondition(publicKey.count == 32 && secretKey.count == 32, "CURVE keys are 32 bytes")
        self.publicKey = publicKey; self.secretKey = secretKey
    }

    /// A fresh key pair from libzmq's (libsodium's) random source.
    public static func generate() throws -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        try ZMQError.check(zmq_curve_keypair(&pub, &sec), "zmq_curve_keypair (libzmq built without CURVE?)")
        return CurveKeyPair(publicKey: try z85Decode(nulTerminatedString(pub))!, secretKey: try z85Decode(nulTerminatedString(sec))!)
    }

    /// The public key that belongs to `secretKey`.
    public static func derive(secretKey: [UInt8]) throws -> CurveKeyPair {
        precondition(secretKey.count == 32)
        let secret = z85Encode(secretKey)
        var pub = [CChar](repeating: 0, count: 41)
        try ZMQError.check(zmq_curve_public(&pub, secret), "zmq_curve_public")
        return CurveKeyPair(publicKey: try z85Decode(nulTerminatedString(pub))!, secretKey: secretKey)
    }
}

/// Z85 (ZeroMQ's printable encoding) of a 32-byte key: 40 characters.
public func z85Encode(_ key: [UInt8]) -> String {
    precondition(key.count % 4 == 0)
    var out = [CChar](repeating: 0, count: key.count * 5 / 4 + 1)
    _ = zmq_z85_encode(&out, key, key.count)
    return nulTerminatedString(out)
}

/// Decodes 40 Z85 characters into a 32-byte key; nil when the text is not one.
public func z85Decode(_ text: String) throws -> [UInt8]? {
    let chars = Array(text.utf8)
    guard chars.count == 40, chars.allSatisfy({ $0 > 32 && $0 < 127 }) else { return nil }
    var out = [UInt8](repeating: 0, count: 32)
    guard zmq_z85_decode(&out, text) != nil else { return nil }
    return out
}

extension ZMQSocket {
    /// Makes this socket a CURVE server (call before bind): peers must hold a key the ZAP
    /// handler of `domain` admits, and every frame is encrypted and authenticated.
    public func makeCurveServer(secretKey: [UInt8], domain: String) throws {
        try setOption(ZMQ_CURVE_SERVER, Int32(1))
        try setBytes(ZMQ_CURVE_SECRETKEY, secretKey, "curve secret key")
        try setBytes(ZMQ_ZAP_DOMAIN, Array(domain.utf8), "zap domain")
    }

    /// Makes this socket a PLAIN server (call before bind): peers must present a user name and
    /// password the ZAP handler of `domain` admits; frames travel unencrypted.
    public func makePlainServer(domain: String) throws {
        try setOption(ZMQ_CURVE_SERVER, Int32(0))
        try setOption(ZMQ_PLAIN_SERVER, Int32(1))
        try setBytes(ZMQ_ZAP_DOMAIN, Array(domain.utf8), "zap domain")
    }

    /// Makes this socket a PLAIN client that logs in as `user` with `key` (Z85-encoded) as its password (call before connect).
    public func makePlainClient(user: String, key: [UInt8]) throws {
        try setBytes(ZMQ_PLAIN_USERNAME, Array(user.utf8), "plain user name")
        try setBytes(ZMQ_PLAIN_PASSWORD, Array(z85Encode(key).utf8), "plain password")
    }

    /// Makes this socket a CURVE client of a server whose public key is `serverKey` (call before connect).
    public func makeCurveClient(keys: CurveKeyPair, serverKey: [UInt8]) throws {
        try setBytes(ZMQ_CURVE_SERVERKEY, serverKey, "curve server key")
        try setBytes(ZMQ_CURVE_PUBLICKEY, keys.publicKey, "curve public key")
        try setBytes(ZMQ_CURVE_SECRETKEY, keys.secretKey, "curve secret key")
    }

    /// Lets a new connection take over a routing id still held by an old one (a peer that
    /// reconnects after a re-plan or a coordinator restart); who a peer is comes from ZAP, not its routing id.
    public func allowRoutingIDHandover() throws {
        try setOption(ZMQ_ROUTER_HANDOVER, Int32(1))
    }

    /// Drops any peer that sends a frame larger than `bytes` (call before bind or connect):
    /// libzmq then never buffers an oversized frame.
    public func setMaximumMessageSize(_ bytes: Int) throws {
        var v = Int64(bytes)
        try ZMQError.check(zmq_setsockopt(handle, ZMQ_MAXMSGSIZE, &v, MemoryLayout<Int64>.size), "zmq_setsockopt(MAXMSGSIZE)")
    }

    func setBytes(_ option: Int32, _ bytes: [UInt8], _ what: String) throws {
        try ZMQError.check(zmq_setsockopt(handle, option, bytes, bytes.count), "set \(what)")
    }
}

extension ReceivedFrame {
    /// The ZAP user id of the connection the frame came from ("" when there is none).
    public var userID: String {
        guard let p = zmq_msg_gets(&message, "User-Id") else { return "" }
        return String(cString: p)
    }
}

/// Answers libzmq's ZAP requests (RFC 27) for every CURVE or PLAIN server socket of one
/// context: a CURVE client key, or a PLAIN password that is the Z85 text of a key together
/// with the user name it was allowed under, is admitted when it was allowed for the socket's
/// domain, and the connection's messages then carry that user id.
///
/// Thread-safe: `allow`/`revoke` may be called from any thread while the handler runs on
/// its own. Refusals are reported through `onRefused` once per (domain, address, key), at
/// most `refusalLinesPerMinute` a minute (the rest counted in one line), and the handler
/// remembers at most `rememberedRefusals` of them: a flood of handshakes costs bounded memory and log.
public final class ZAPHandler: @unchecked Sendable {
    private let lock = NSLock()
    private var allowed: [String: [[UInt8]: String]] = [:]
    private var refused = Set<String>()
    public static let rememberedRefusals = 4096, refusalLinesPerMinute = 20
    private var linesThisMinute = 0, unlogged = 0
    private var minuteStarted = Date()
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)
    private let onRefused: @Sendable (String) -> Void

    /// Binds the ZAP endpoint of `context` and starts answering on a thread of its own.
    public init(context: ZMQContext, onRefused: @escaping @Sendable (String) -> Void) throws {
        self.onRefused = onRefused
        let socket = try ZMQSocket(context, .rep)
        try socket.bind("inproc://zeromq.zap.01")
        // The socket moves to the handler's thread and is used there only.
        let owned = UncheckedSocket(socket: socket)
        let thread = Thread { [self] in
            serve(owned.socket)
            done.signal()
        }
        thread.name = "zap"
        thread.start()
    }

    /// Stops the handler (call before the context ends); blocks until its thread has exited.
    public func stop() {
        lock.lock(); let already = stopping; stopping = true; lock.unlock()
        if !already { done.wait() }
    }

    deinit { stop() }

    /// Admits `key` on sockets of `domain`, its messages tagged `userID`; replaces any key held under that user id.
    public func allow(_ key: [UInt8], userID: String, domain: String) {
        lock.lock(); defer { lock.unlock() }
        allowed[domain, default: [:]] = allowed[domain, default: [:]].filter { $0.value != userID }
        allowed[domain]![key] = userID
    }

    /// Stops admitting the key held under `userID` (connections already made stay).
    public func revoke(userID: String, domain: String) {
        lock.lock(); defer { lock.unlock() }
        allowed[domain] = allowed[domain]?.filter { $0.value != userID }
    }

    private func decide(domain: String, address: String, mechanism: String, credentials: [[UInt8]]) -> (String, String, String) {
        var key = credentials.first ?? []
        var claimed: String?
        if mechanism == "PLAIN", credentials.count == 2 {
            claimed = String(decoding: credentials[0], as: UTF8.self)
            key = (try? z85Decode(String(decoding: credentials[1], as: UTF8.self))).flatMap { $0 } ?? []
        }
        lock.lock()
        var user = ["CURVE", "PLAIN"].contains(mechanism) ? allowed[domain]?[key] : nil
        if mechanism == "PLAIN", user != claimed { user = nil }
        var lines: [String] = []
        if user == nil {
            if refused.count >= Self.rememberedRefusals { refused.removeAll() }
            if refused.insert("\(domain)|\(address)|\(key)").inserted {
                if Date().timeIntervalSince(minuteStarted) >= 60 {
                    if unlogged > 0 { lines.append("refused \(unlogged) more handshakes in the last minute (not logged one by one)") }
                    minuteStarted = Date(); linesThisMinute = 0; unlogged = 0
                }
                if linesThisMinute < Self.refusalLinesPerMinute {
                    linesThisMinute += 1
                    let keyText = key.count == 32 ? z85Encode(key) : "none"
                    lines.append("refused \(mechanism) peer \(address) on \(domain) (key \(keyText)): not a key of this run")
                } else {
                    unlogged += 1
                }
            }
        }
        lock.unlock()
        for line in lines { onRefused(line) }
        if let user { return ("200", "OK", user) }
        return ("400", "unknown key", "")
    }

    private func serve(_ socket: ZMQSocket) {
        while true {
            lock.lock(); let stop = stopping; lock.unlock()
            if stop { return }
            guard let frames = try? socket.receive(timeout: 0.2) else { continue }
            let parts = frames.map(\.bytes)
            // version, request id, domain, address, routing id, mechanism, credentials…
            guard parts.count >= 6 else { continue }
            let text = { (i: Int) in String(decoding: parts[i], as: UTF8.self) }
            let (code, status, user) = decide(domain: text(2), address: text(3), mechanism: text(5), credentials: Array(parts.dropFirst(6)))
            try? socket.send([
                .bytes(Array("1.0".utf8)), .bytes(parts[1]), .bytes(Array(code.utf8)), .bytes(Array(status.utf8)),
                .bytes(Array(user.utf8)), .bytes([])
            ])
        }
    }
}

private struct UncheckedSocket: @unchecked Sendable { let socket: ZMQSocket }

/// Watches a client socket's handshakes, so a refused key becomes a clear error instead
/// of a silent retry loop.
public final class HandshakeMonitor {
    private let socket: ZMQSocket

    public init(context: ZMQContext, watching target: ZMQSocket) throws {
        let endpoint = "inproc://monitor-\(UUID().uuidString)"
        try ZMQError.check(
            zmq_socket_monitor(
                target.handle, endpoint,
                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL), "zmq_socket_monitor")
        socket = try ZMQSocket(context, .pair)
        try socket.connect(endpoint)
    }

    /// Whether a handshake has failed since the last call (never blocks).
    public func handshakeFailed() -> Bool {
        var failed = false
        while let frames = try? socket.receive(timeout: 0) {
            // Frame 1: event (uint16) + value (uint32); frame 2: the endpoint.
            if let head = frames.first, head.count >= 2 { failed = true }
        }
        return failed
    }
}
