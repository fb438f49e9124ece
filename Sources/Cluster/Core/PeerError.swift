// The error codes peers answer each other with (Wire's `Body.error(code:message:)`), named
// once: what each means and who acts on it.
import Wire

public enum PeerError: Int, Sendable {
    /// A message that does not fit the protocol or the plan (wrong chunks, a bad hello).
    case malformed = 400
    /// A push for a shard the sender does not compute.
    case notYours = 403
    /// A pull for a chunk this server does not hold.
    case unknownChunk = 404
    /// The wrong parameter version, a second push for a summed step, or a full run.
    case conflict = 409
    /// The coordinator does not know the sender (it restarted, or dropped it): join again.
    case notInRun = 410
    /// Non-finite gradients: the run ends naming the sender.
    case nonFinite = 422
    /// A peer speaking another protocol version.
    case protocolMismatch = 426
    /// The sender failed and is ending; the message says why.
    case failed = 500
    /// A worker reports that a server answered outside the plan ("server ENDPOINT: DETAIL"):
    /// the coordinator replaces that server.
    case serverFault = 502
}

extension Body {
    public static func error(_ code: PeerError, _ message: String) -> Body { .error(code: code.rawValue, message: message) }
}
