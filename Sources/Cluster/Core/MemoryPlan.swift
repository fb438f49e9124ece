// The memory model: each role's predicted peak resident memory for a recipe, from the model's
// shape and the run's settings, term by term (`redi-ps plan`). The terms are the buffers the
// code allocates (the engine's own workspace plan, not a formula beside it) plus a measured
// per-process base; every role logs its measured peak when a run ends, to check it against.
import Foundation
import Model

public struct MemoryPlan: Sendable {
    /// One role's prediction: its terms (what, bytes) and their sum.
    public struct Role: Sendable {
        public let name: String
        public let terms: [(String, Int)]
        public var bytes: Int { terms.reduce(0) { $0 + $1.1 } }
    }

    public let roles: [Role]
    /// How many processes of each role the run has (coordinator 1, servers, workers).
    public let counts: [Int]
    /// What a worker may need beyond its prediction when the data's sequences are shorter than
    /// the planned length (kept attention probabilities): the worst over shorter lengths.
    public let shorterSequencesCost: Int

    /// What a process holds besides the terms: the Swift runtime, libzmq, OpenBLAS's buffers
    /// (workers multiply, so theirs are larger), the coordinator's tokenizer and (small) data.
    /// Measured: peak RSS of a run of the `tiny` preset (0.1 M parameters) minus its terms,
    /// 2026-12-01 (the coordinator's whole peak was 39 MiB once it stopped holding the model).
    public static let coordinatorBase = 40 << 20, serverBase = 40 << 20, workerBase = 150 << 20
    /// The prompt length evaluation rows are planned for (benchmark problems are short).
    public static let evalPromptTokens = 128

    /// The prediction for `recipe` on a model of `config`, training sequences of `sequenceLength`
    /// tokens (packed into each stage's micro-batches).
    public init(recipe: Recipe, config: LlamaConfig, sequenceLength: Int) {
        let p = ParameterLayout(config: config).totalCount
        let (worker, shorter) = Self.workerTerms(recipe, config, parameters: p, sequenceLength: sequenceLength)
        shorterSequencesCost = shorter
        roles = [
            Role(name: "coordinator", terms: Self.coordinatorTerms(recipe.cluster, parameters: p)),
            Role(name: "server", terms: Self.serverTerms(recipe.cluster, parameters: p)), Role(name: "worker", terms: worker)
        ]
        counts = [1, recipe.cluster.servers, recipe.cluster.workers]
    }

    /// Servers: weights, AdamW m and v and the gradient sum of their share; a held push per
    /// worker (a server acknowledges an early chunk only when its predecessors arrived); loads
    /// and replicas arriving a round at a time (the coordinator waits for the acknowledgements);
    /// the snapshot terms.
    static func serverTerms(_ c: Recipe.ClusterSpec, parameters p: Int) -> [(String, Int)] {
        let f = MemoryLayout<Float>.size, chunk = Int(c.chunkMiB * Double(1 << 20))
        let share = (p + c.servers - 1) / c.servers
        var terms: [(String, Int)] = [
            ("base", serverBase), ("weights, m, v, gradient sum of its share", 4 * share * f),
            ("a round of chunks arriving", min(3 * share * f, ChunkPlan.roundBytes)),
            ("held pushes (one chunk per worker)", c.workers * chunk)
        ]
        guard c.snapshotEvery > 0 else { return terms }
        // Its own chunks at the snapshot; with a neighbour, that neighbour's replica and, while
        // a snapshot is taken, the next one beside it.
        var snapshot = [("snapshot of its share (weights, m, v)", 3 * share * f)]
        if c.servers > 1 { snapshot.append(("a neighbour's replica, and the next one while a snapshot is taken", 2 * 3 * share * f)) }
        if let dir = c.snapshotDirectory {
            // Files: written pages go back to the page cache, so they are disk, not resident memory.
            let bytes = snapshot.reduce(0) { $0 + $1.1 }
            terms.append((String(format: "snapshot and replicas: %.2f GiB of files in %@, not resident", Double(bytes) / Double(1 << 30), dir), 0))
        } else {
            terms += snapshot
        }
        return terms
    }

    /// Workers: the whole model and its gradients, the engine's workspaces at the largest
    /// micro-batch (kept for the run), and an evaluation's KV cache and logits; with what
    /// shorter sequences may cost beyond that.
    static func workerTerms(_ recipe: Recipe, _ config: LlamaConfig, parameters p: Int, sequenceLength: Int) -> ([(String, Int)], Int) {
        let c = recipe.cluster, f = MemoryLayout<Float>.size
        let engine = LlamaEngine(config: config)
        engine.activationKeepBytes = c.activationKeepMiB << 20
        // Micro-batches pack whole sequences up to micro_batch_tokens (a longer one goes alone).
        func workspace(_ stage: Recipe.Stage, _ length: Int) -> Int {
            let lengths = Array(repeating: max(1, length), count: max(1, stage.microBatchTokens / max(1, length)))
            let (forward, backward) = engine.workspaceBytes(sequenceLengths: lengths, scored: lengths.reduce(0, +) - lengths.count)
            return forward + backward
        }
        var planned = 0, worst = 0
        for stage in recipe.stages {
            let length = min(sequenceLength, stage.maxLength ?? sequenceLength, config.maxPositionEmbeddings)
            planned = max(planned, workspace(stage, length))
            // Shorter sequences can cost more: their attention probabilities (heads × Σ L² a layer)
            // are kept for backward while they fit in attentionKeepBytes. The worst is just under that.
            let threshold = engine.attentionKeepBytes / max(1, config.numAttentionHeads * stage.microBatchTokens * config.numHiddenLayers * f)
            var candidates = [length, min(length, threshold)]
            var l = length
            while l > 64 { l /= 2; candidates.append(l) }
            worst = max(worst, candidates.map { workspace(stage, $0) }.max()!)
        }
        var terms: [(String, Int)] = [("base", workerBase), ("weights", p * f), ("gradients", p * f)]
        if c.bf16Gradients { terms.append(("bf16 copy of the gradients to push", p * 2)) }
        if c.bf16Weights { terms.append(("bf16 weights as pulled", p * 2)) }
        terms.append(("training workspace (largest micro-batch)", planned))
        // Workspaces grow by at least a quarter at a time (so slowly rising micro-batches do not
        // reallocate every step): up to 25% more than the largest micro-batch needs.
        terms.append(("workspace growth (up to a quarter more)", planned / 4))
        if let e = recipe.eval {
            let kv = config.numKeyValueHeads * config.headDim, perValue = e.cache == .bf16 ? 2 : 4
            // A row's cache grows 256 tokens, then doubling, to its prompt (taken as ≤ 256 tokens) + answer.
            let longest = min(config.maxPositionEmbeddings, evalPromptTokens + (e.benchmarks.map(\.maxNewTokens).max() ?? e.maxNewTokens))
            var rowTokens = 256
            while rowTokens < longest { rowTokens *= 2 }
            rowTokens = min(rowTokens, config.maxPositionEmbeddings)
            terms.append(("evaluation KV cache (\(e.batch) rows of \(rowTokens) tokens)", e.batch * rowTokens * kv * 2 * config.numHiddenLayers * perValue))
            terms.append(("evaluation logits", ((e.batch + 15) / 16 * 16) * config.vocabSize * f))
        }
        return (terms, max(0, worst - planned))
    }

    /// The coordinator: a piece of the model as it is read and streamed into the servers, a
    /// round of chunks in flight per server (the load, snapshots relayed between servers,
    /// checkpoints streamed to disk), and with a single server its replica (there is no other
    /// server to keep it). Nothing else of the model's size.
    static func coordinatorTerms(_ c: Recipe.ClusterSpec, parameters p: Int) -> [(String, Int)] {
        let f = MemoryLayout<Float>.size
        var terms: [(String, Int)] = [
            ("base", coordinatorBase),
            ("a piece of the model as it is read", min(p, ModelReader.pieceElements) * f),
            ("a round of chunks in flight (one per server)", min(3 * p * f, c.servers * ChunkPlan.roundBytes)),
            // Control messages are CURVE: libzmq decrypts a server's reply into a new frame while
            // the encrypted one is still held (measured: the Qwen-0.5B shape's coordinator 25 MiB
            // above the plan without it).
            ("a server's reply decrypted beside its encrypted frames", min(3 * p * f, ChunkPlan.roundBytes))
        ]
        if c.snapshotEvery > 0 && c.servers == 1 {
            terms.append(
                (
                    "the only server's replica, and the next one while a snapshot is taken\(c.snapshotDirectory.map { " (files in \($0), not resident)" } ?? "")",
                    c.snapshotDirectory == nil ? 2 * 3 * p * f : 0
                ))
        }
        return terms
    }

    /// Whether the run fits `machines` machines of `bytes` each, placing processes greedily
    /// (largest first, each on the machine with the most room); the placement if it does.
    public func placement(machines: Int, bytes: Int) -> [[String]]? {
        var free = Array(repeating: bytes, count: machines), placed = Array(repeating: [String](), count: machines)
        let processes = zip(roles, counts).flatMap { role, n in (0..<n).map { i in (n > 1 ? "\(role.name)-\(i)" : role.name, role.bytes) } }
        for (name, need) in processes.sorted(by: { $0.1 > $1.1 }) {
            guard let m = free.indices.max(by: { free[$0] < free[$1] }), free[m] >= need else { return nil }
            free[m] -= need
            placed[m].append(name)
        }
        return placed
    }
}
