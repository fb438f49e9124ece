// The parameters' version: the one rule for when it moves, shared by the coordinator and the
// servers. A worker computes a step at a version and its push carries it; a server takes only
// pushes computed at its current version, so work from before a change is never applied.

/// Which parameters (and which assignment of shards to workers) a push was computed against.
/// The coordinator and every server move it on the same events: an applied AdamW step and a
/// reassignment of shards on both sides alike; a replacement of the weights (load, restore,
/// optimizer reset) by the coordinator, which names the new number in its message for the
/// servers to adopt.
public struct ParameterVersion: Sendable, Equatable, CustomStringConvertible {
    /// The number on the wire (`WorkUnit.version`, a push's `version`, `updateDone`).
    public private(set) var number = 0

    public init() {}

    /// One AdamW step applied on every server.
    public mutating func stepApplied() { number += 1 }

    /// Shards handed to other workers (a membership change): pushes of the abandoned attempt are stale.
    public mutating func shardsReassigned() { number += 1 }

    /// The coordinator replaces the weights or the optimizer state; its message names the new number.
    public mutating func weightsReplaced() { number += 1 }

    /// A server takes the number the coordinator named with a load or a restore.
    public mutating func adopt(_ named: Int) { number = named }

    /// Whether a push computed at `pushed` is from before the current version.
    public func isStale(_ pushed: Int) -> Bool { pushed < number }

    /// Whether a push claims a version that does not exist yet.
    public func isAhead(_ pushed: Int) -> Bool { pushed > number }

    public var description: String { String(number) }
}
