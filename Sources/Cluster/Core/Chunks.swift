// How the flat parameter vector is cut into chunks and spread over the servers.
import Wire

public enum ChunkPlan {
    /// Chunks of about `mib` MiB (fp32), assigned round-robin so servers hold even shares.
    public static func make(parameterCount: Int, mib: Double, servers: Int) -> (chunks: [ChunkRange], owner: [Int]) {
        let size = chunkBytes(mib: mib) / 4
        var chunks: [ChunkRange] = []
        var offset = 0
        while offset < parameterCount {
            let count = min(size, parameterCount - offset)
            chunks.append(ChunkRange(chunk: chunks.count, offset: offset, count: count))
            offset += count
        }
        return (chunks, chunks.indices.map { $0 % servers })
    }

    /// The most bytes of chunks in flight per server through the coordinator (the initial load,
    /// snapshots relayed between servers, checkpoints): what its memory holds of the model. 16 MiB
    /// keeps it within ~50 MB of a tiny model's at any size; a round trip per 16 MiB costs little.
    public static let roundBytes = 16 << 20

    /// Bytes of the largest chunk a plan of `mib` MiB chunks holds.
    public static func chunkBytes(mib: Double) -> Int { 4 * max(1, Int(mib * 1_048_576 / 4)) }
}
