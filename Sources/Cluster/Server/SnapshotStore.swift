// A parameter server's snapshots, without sockets: a copy of its own chunks (weights, AdamW m
// and v) at the last committed snapshot, and a replica of another server's chunks at the same
// snapshot, so that when any one server is lost its chunks survive on its neighbour
// (chain replication, as in Li et al., OSDI 2014). The coordinator orders everything and holds
// none of it: the memory is the servers', each proportional to its share.
//
// A snapshot is taken in two phases so a server lost at any moment leaves a complete one:
// replicas are first built beside the committed ones (`storeReplica`), then every server
// commits (`commit`: live chunks → own snapshot, built replica → replica). Until the commit the
// previous snapshot is whole on every server; after it, the new one is.
//
// With a directory (`cluster.snapshot_dir`), every copy lives in a file there instead of the
// heap: written, its pages go back to the page cache (the kernel writes them out and evicts
// them under pressure), so a server's resident memory is its live state alone.
import Numerics

public struct SnapshotStore {
    /// One chunk's state at a snapshot.
    public final class Copy {
        public let weights: FloatBuffer, m: FloatBuffer, v: FloatBuffer
        init(count: Int, directory: String?) throws {
            func buffer() throws -> FloatBuffer { try directory.map { try FloatBuffer(count: count, fileIn: $0) } ?? FloatBuffer(count: count) }
            weights = try buffer(); m = try buffer(); v = try buffer()
        }
        var count: Int { weights.count }
        /// Hands a file-backed copy's pages back to the page cache once written or read.
        func release() { weights.releaseResidentPages(); m.releaseResidentPages(); v.releaseResidentPages() }
    }

    /// Where copies are kept as files (nil: in memory).
    public let directory: String?

    /// The committed snapshot's tag (nil before the first commit) and this server's chunks at it.
    public private(set) var tag: Int?
    public private(set) var own: [Int: Copy] = [:]
    /// Another server's chunks at `tag`.
    public private(set) var replica: [Int: Copy] = [:]
    /// The replica being built for `buildingTag`.
    private var building: [Int: Copy] = [:]
    private var buildingTag: Int?

    public init(directory: String? = nil) { self.directory = directory }

    /// Bytes held (in memory, or in files under `directory`): own snapshot, replica and the replica being built.
    public var bytes: Int { [own, replica, building].reduce(0) { $0 + $1.values.reduce(0) { $0 + 12 * $1.count } } }

    /// Takes replica chunks for snapshot `tag` (weights, m, v per chunk, each checked finite and
    /// of `sizes[id]` values). A new tag drops what was built for another one.
    public mutating func storeReplica(tag: Int, chunks ids: [Int], sizes: [Int: Int], _ tensors: [some ReceivedValues]) throws {
        guard ids.count * 3 == tensors.count, Set(ids).count == ids.count else {
            throw ShardStateError("replica of \(ids.count) chunks with \(tensors.count) tensors")
        }
        for (k, id) in ids.enumerated() {
            guard let n = sizes[id], n > 0, tensors[3 * k..<(3 * k + 3)].allSatisfy({ $0.holds(n, bf16: false) }) else {
                throw ShardStateError("replica chunk \(id) is not a chunk of this run or has the wrong size")
            }
        }
        if buildingTag != tag { building = [:]; buildingTag = tag }
        for (k, id) in ids.enumerated() {
            let copy = try building[id] ?? Copy(count: sizes[id]!, directory: directory)
            defer { copy.release() }
            tensors[3 * k].copyValues(into: copy.weights, bf16: false)
            tensors[3 * k + 1].copyValues(into: copy.m, bf16: false)
            tensors[3 * k + 2].copyValues(into: copy.v, bf16: false)
            guard copy.weights.isAllFinite, copy.m.isAllFinite, copy.v.isAllFinite
            else {
                throw ShardStateError("replica chunk \(id) holds non-finite values")
            }
            building[id] = copy
        }
    }

    /// Makes the live `chunks` snapshot `tag` (their buffers reused when the same chunks were
    /// committed before) and the replica built for `tag` the replica (none built: none kept).
    public mutating func commit(tag newTag: Int, chunks: [ShardState.Chunk]) throws {
        var next: [Int: Copy] = [:]
        for c in chunks {
            let id = c.range.chunk
            let copy = try own[id].flatMap { $0.count == c.range.count ? $0 : nil } ?? Copy(count: c.range.count, directory: directory)
            copy.weights.copy(from: c.weights); copy.m.copy(from: c.m); copy.v.copy(from: c.v)
            copy.release()
            next[id] = copy
        }
        own = next
        replica = buildingTag == newTag ? building : [:]
        building = [:]; buildingTag = nil
        tag = newTag
    }

    /// Copies chunks `ids` of snapshot `tag` into the live chunks (the coordinator names the
    /// ones this server kept; the others, a lost server's now this one's, arrive in a load).
    public func restore(tag wanted: Int, chunks ids: [Int], into live: [Int: ShardState.Chunk]) throws {
        guard !ids.isEmpty else { return }
        guard tag == wanted else {
            throw ShardStateError("asked to restore snapshot \(wanted), but this server's snapshot is \(tag.map(String.init) ?? "none")")
        }
        for id in ids {
            guard let copy = own[id], let c = live[id], copy.count == c.range.count else {
                throw ShardStateError("asked to restore chunk \(id) from snapshot \(wanted), which this server does not hold")
            }
            c.weights.copy(from: copy.weights); c.m.copy(from: copy.m); c.v.copy(from: copy.v)
            copy.release()
        }
    }

    /// The replica of `ids` at `tag`: weights, m and v of each, in order.
    public func replicaCopies(_ ids: [Int], tag wanted: Int) throws -> [Copy] {
        guard tag == wanted else {
            throw ShardStateError("asked for the replica of snapshot \(wanted), but this server's is \(tag.map(String.init) ?? "none")")
        }
        return try ids.map { id in
            guard let copy = replica[id] else { throw ShardStateError("no replica of chunk \(id) at snapshot \(wanted)") }
            return copy
        }
    }
}
