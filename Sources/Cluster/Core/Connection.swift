// Joining a run: a CURVE-authenticated DEALER socket to the coordinator, a Hello, and a
// bounded wait for the Welcome that says what this process is to do. Also the control
// channel a worker shares between its main thread and its heartbeat thread.
import Foundation
import Transport
import Wire

/// Errors that end a cluster process with a message for the user.
public struct ClusterError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The coordinator said nothing for a peer's whole timeout: it died or was cut off.
public struct CoordinatorSilent: Error, CustomStringConvertible {
    public let seconds: Double
    /// A (restarted) coordinator answered that this process is not in its run.
    public var restarted = false
    public init(seconds: Double, restarted: Bool = false) { self.seconds = seconds; self.restarted = restarted }
    public var description: String {
        restarted ? "the coordinator does not know this process (it restarted)" : "the coordinator has been silent for \(Int(seconds)) s"
    }
}

/// A role's log line on stderr: `[role] message`.
public func log(_ role: String, _ message: String) {
    FileHandle.standardError.write(Data("[\(role)] \(message)\n".utf8))
}

/// This process's peak resident memory so far, in MiB (what `redi-ps plan` predicts per role).
///
/// Read from /proc/self/status (VmHWM, this address space's high-water mark), not getrusage:
/// Linux's `ru_maxrss` carries over the spawning process's peak through `exec` when it was
/// started with posix_spawn (vfork shares the parent's memory until exec), so a coordinator
/// started by a 100 MB test process reported 98 MiB while it never held more than 48.
public func peakResidentMiB() -> Double {
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kib = Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
    {
        return kib / 1024
    }
    var usage = rusage()
    guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
    return Double(usage.ru_maxrss) / 1024  // Linux reports KiB
}

/// CPU seconds this process has used (user + system), for the same exit line.
public func cpuSeconds() -> Double {
    var usage = rusage()
    guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// How long a server or worker waits on a silent coordinator once admitted: twice the
/// coordinator's own timeout, so the coordinator is always the one that decides a peer is gone.
public func peerTimeout(_ welcome: Welcome, cli: Double) -> Double {
    max(cli, 2 * welcome.timeoutSeconds + 2 * welcome.heartbeatSeconds)
}

/// Connects to the coordinator under the run key, says hello, and waits (bounded) for a Welcome.
public func join(
    context: ZMQContext, coordinator: String, key: RunKey, identity: String, hello: Hello,
    timeout: Double
) throws -> (Messenger, Welcome, String) {
    let socket = try ZMQSocket(context, .dealer)
    try socket.setIdentity(identity)
    try socket.makeCurveClient(keys: key.keys, serverKey: key.keys.publicKey)
    // Loads of weights arrive on this socket: frames up to the largest chunk a recipe may use.
    try socket.setMaximumMessageSize(frameLimit(chunkBytes: Wire.maximumChunkBytes))
    let monitor = try HandshakeMonitor(context: context, watching: socket)
    try socket.connect(coordinator)
    // The run id is learnt from the Welcome; until then accept any.
    var messenger = Messenger(socket: socket, runID: "", sender: identity, routed: false)
    var started = Date()
    var lastHello = Date.distantPast
    while Date().timeIntervalSince(started) < timeout {
        if monitor.handshakeFailed() {
            throw ClusterError("the coordinator at \(coordinator) refused this process's key: is --key the run's key file (public key \(key.fingerprint))?")
        }
        if Date().timeIntervalSince(lastHello) >= 5 {
            if lastHello != .distantPast { log(identity, "waiting for the coordinator at \(coordinator) (\(Int(Date().timeIntervalSince(started))) s)") }
            try messenger.send(.hello(hello))
            lastHello = Date()
        }
        guard let frames = try socket.receive(timeout: 0.5) else { continue }
        guard let head = frames.first, let envelope = try? head.envelope() else { continue }
        switch envelope.body {
        case let .welcome(w):
            try w.validate()
            messenger = Messenger(socket: socket, runID: envelope.runID, sender: identity, routed: false)
            return (messenger, w, envelope.runID)
        case let .error(_, message):
            throw ClusterError("the coordinator refused \(identity): \(message)")
        case let .shutdown(reason, _):
            throw ClusterError("the coordinator ended the run before it started: \(reason)")
        case .heartbeat:
            // Queued as a spare: the coordinator is alive, so keep waiting.
            if Date().timeIntervalSince(started) > 5 { started = Date() }
        default:
            continue
        }
    }
    throw ClusterError("no coordinator answered at \(coordinator) within \(Int(timeout)) s; is `redi-ps coordinate` running there?")
}

extension Welcome {
    /// Checks the layout a coordinator sent before anything is allocated or indexed with it.
    public func validate() throws {
        guard parameterCount > 0, parameterCount <= 1 << 36 else { throw ClusterError("welcome: implausible parameter count \(parameterCount)") }
        guard chunkOwner.count == chunks.count, !serverEndpoints.isEmpty, chunkOwner.allSatisfy({ $0 < serverEndpoints.count }) else {
            throw ClusterError("welcome: chunk owners do not match the \(serverEndpoints.count) servers")
        }
        var next = 0
        for (i, c) in chunks.enumerated() {
            guard c.chunk == i, c.offset == next, c.count > 0, c.count * 4 <= Wire.maximumChunkBytes else {
                throw ClusterError("welcome: chunk \(i) does not tile the parameter vector")
            }
            next += c.count
        }
        guard next == parameterCount else { throw ClusterError("welcome: chunks cover \(next) of \(parameterCount) parameters") }
        guard workers > 0, workers <= 4096, index >= 0, heartbeatSeconds > 0, heartbeatSeconds.isFinite,
            timeoutSeconds > 0, timeoutSeconds.isFinite, workerKeys.count <= workers
        else {
            throw ClusterError("welcome: implausible workers, index, heartbeat or timeout")
        }
        guard !sealedDataPlane || plainDataPlane else { throw ClusterError("welcome: a sealed data plane runs over PLAIN connections, not CURVE") }
    }

    /// The data plane in words, for logs.
    public var dataPlaneDescription: String {
        sealedDataPlane
            ? "sealed (PLAIN connections, workers authenticated, every frame AES-256-GCM under the run's data key)"
            : plainDataPlane ? "PLAIN (workers authenticated, frames unencrypted)" : "CURVE"
    }
}

/// The control socket of a process that computes for long stretches: its main thread and a
/// heartbeat thread share it under a lock (libzmq sockets may change threads only behind a
/// full barrier), so the coordinator hears from the process while it computes.
public final class ControlChannel: @unchecked Sendable {
    private let messenger: Messenger
    private let lock = NSLock()
    private var stopped = false, beating = false
    private let finished = DispatchSemaphore(value: 0)

    public init(_ messenger: Messenger) { self.messenger = messenger }

    public func send(_ body: Body) throws {
        lock.lock(); defer { lock.unlock() }
        try messenger.send(body)
    }

    /// The next valid message within `timeout` seconds; the lock is released every 2 ms.
    public func receive(timeout: Double, onInvalid: (String) -> Void) throws -> Incoming? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            lock.lock()
            let msg = try? messenger.receive(timeout: 0, onInvalid: onInvalid)
            lock.unlock()
            if let msg { return msg }
            try poll([messenger.socket], timeout: 0.002, lockedBy: lock)
        } while Date() < deadline
        return nil
    }

    /// Sends a heartbeat every `interval` seconds until `stop()`.
    public func startHeartbeats(every interval: Double, step: @escaping @Sendable () -> Int) {
        lock.lock(); beating = true; lock.unlock()
        let thread = Thread { [self] in
            var last = Date.distantPast
            while true {
                lock.lock(); let done = stopped; lock.unlock()
                if done { break }
                if Date().timeIntervalSince(last) >= interval {
                    try? send(.heartbeat(step: step()))
                    last = Date()
                }
                Thread.sleep(forTimeInterval: min(0.05, interval))
            }
            finished.signal()
        }
        thread.name = "heartbeat"
        thread.start()
    }

    public func stop() {
        lock.lock(); let wait = beating && !stopped; stopped = true; lock.unlock()
        if wait { finished.wait() }
    }
}

/// Sleeps up to `timeout` seconds or until `sockets` are readable, holding `lock` only
/// while libzmq looks at them.
private func poll(_ sockets: [ZMQSocket], timeout: Double, lockedBy lock: NSLock) throws {
    lock.lock()
    let ready = try poll(sockets, timeout: 0)
    lock.unlock()
    if !ready.contains(true) { Thread.sleep(forTimeInterval: timeout) }
}

/// A peer's name on the control channel: role, host and process id.
public func hostIdentity(_ role: String) -> String {
    "\(role)-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
}

/// The coordinator ended the run (normally or not).
public struct Stop: Error {
    public let reason: String
    public let failed: Bool
    public init(reason: String, failed: Bool) { self.reason = reason; self.failed = failed }
}
