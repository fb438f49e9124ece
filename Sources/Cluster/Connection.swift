// Joining a run: a DEALER socket to the coordinator, a Hello, and a bounded wait for the
// Welcome that says what this process is to do.
import Foundation
import Transport
import Wire

/// Errors that end a cluster process with a message for the user.
public struct ClusterError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

func log(_ role: String, _ message: String) {
    FileHandle.standardError.write(Data("[\(role)] \(message)\n".utf8))
}

/// Connects to the coordinator, says hello, and waits (bounded) for a Welcome.
func join(context: ZMQContext, coordinator: String, identity: String, hello: Hello, runID: String?,
          timeout: Double) throws -> (Messenger, Welcome, String) {
    let socket = try ZMQSocket(context, .dealer)
    try socket.setIdentity(identity)
    try socket.connect(coordinator)
    // The run id is learnt from the Welcome; until then accept any.
    var messenger = Messenger(socket: socket, runID: runID ?? "", sender: identity, routed: false)
    let started = Date()
    var lastHello = Date.distantPast
    while Date().timeIntervalSince(started) < timeout {
        if Date().timeIntervalSince(lastHello) >= 5 {
            if lastHello != .distantPast { log(identity, "waiting for the coordinator at \(coordinator) (\(Int(Date().timeIntervalSince(started))) s)") }
            try messenger.send(.hello(hello))
            lastHello = Date()
        }
        guard let frames = try socket.receive(timeout: 1) else { continue }
        guard let head = frames.first, let envelope = try? head.withUnsafeBytes({ try Wire.decode($0) }) else { continue }
        switch envelope.body {
        case let .welcome(w):
            messenger = Messenger(socket: socket, runID: envelope.runID, sender: identity, routed: false)
            return (messenger, w, envelope.runID)
        case let .error(_, message):
            throw ClusterError("the coordinator refused \(identity): \(message)")
        case let .shutdown(reason):
            throw ClusterError("the coordinator ended the run before it started: \(reason)")
        default:
            continue
        }
    }
    throw ClusterError("no coordinator answered at \(coordinator) within \(Int(timeout)) s; is `redi-ps coordinate` running there?")
}

func hostIdentity(_ role: String) -> String {
    "\(role)-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
}
