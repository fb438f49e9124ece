// The protocol's messages as Swift values (proto/redi.proto is the source of truth; the
// codec in Codec.swift maps between these and the protobuf-c structs). Tensor payloads
// travel as separate frames next to the envelope, never inside these values. Objectives and
// AdamW settings travel as the same types recipes, the trainer and the server use.
import Objectives
import Optimizer

public enum Role: Int, Sendable { case unspecified = 0, server = 1, worker = 2 }

public struct ChunkRange: Equatable, Sendable {
    public var chunk: Int, offset: Int, count: Int
    public init(chunk: Int, offset: Int, count: Int) { self.chunk = chunk; self.offset = offset; self.count = count }
}

public struct Hello: Equatable, Sendable {
    public var role: Role, endpoint: String, threads: Int, protocolVersion: Int
    /// A worker's data-plane CURVE public key (32 bytes).
    public var dataKey: [UInt8]
    /// The OpenBLAS kernel a worker runs (`openblas_get_corename`; "" when not said).
    public var blasKernel: String
    public init(
        role: Role, endpoint: String = "", threads: Int = 1, protocolVersion: Int = Wire.protocolVersion, dataKey: [UInt8] = [],
        blasKernel: String = ""
    ) {
        self.role = role; self.endpoint = endpoint; self.threads = threads; self.protocolVersion = protocolVersion; self.dataKey = dataKey
        self.blasKernel = blasKernel
    }
}

public struct Welcome: Equatable, Sendable {
    public var index: Int
    public var modelConfigJSON: String
    public var chunks: [ChunkRange]
    public var chunkOwner: [Int]
    public var serverEndpoints: [String]
    public var parameterCount: Int
    public var heartbeatSeconds: Double
    public var workers: Int
    public var timeoutSeconds: Double
    /// Servers only: each worker slot's data-plane key (empty for a vacant slot).
    public var workerKeys: [[UInt8]]
    /// Worker pushes (gradients) and pulls (weights) carry bfloat16 instead of fp32.
    public var bf16Gradients: Bool, bf16Weights: Bool
    /// Pushes and pulls travel unencrypted, the worker authenticated by its data key as a PLAIN password.
    public var plainDataPlane: Bool
    /// With `plainDataPlane`: every data-plane frame sealed under the run's data key (`FrameSealing`).
    public var sealedDataPlane: Bool
    /// Workers only: activations kept for backward up to this many bytes, recomputed past it
    /// (`LlamaEngine.activationKeepBytes`).
    public var activationKeepBytes: Int
    /// Servers only: snapshots and replicas kept in files in this local directory ("" : in memory).
    public var snapshotDirectory: String
    public init(
        index: Int, modelConfigJSON: String, chunks: [ChunkRange], chunkOwner: [Int], serverEndpoints: [String],
        parameterCount: Int, heartbeatSeconds: Double, workers: Int, timeoutSeconds: Double, workerKeys: [[UInt8]] = [],
        bf16Gradients: Bool = false, bf16Weights: Bool = false, plainDataPlane: Bool = false, sealedDataPlane: Bool = false,
        activationKeepBytes: Int = 4 << 30, snapshotDirectory: String = ""
    ) {
        self.bf16Gradients = bf16Gradients; self.bf16Weights = bf16Weights
        self.plainDataPlane = plainDataPlane; self.sealedDataPlane = sealedDataPlane
        self.activationKeepBytes = activationKeepBytes; self.snapshotDirectory = snapshotDirectory
        self.index = index; self.modelConfigJSON = modelConfigJSON; self.chunks = chunks; self.chunkOwner = chunkOwner
        self.serverEndpoints = serverEndpoints; self.parameterCount = parameterCount; self.heartbeatSeconds = heartbeatSeconds
        self.workers = workers; self.timeoutSeconds = timeoutSeconds; self.workerKeys = workerKeys
    }
}

public struct WireSequence: Equatable, Sendable {
    public var tokens: [Int32], promptLength: Int
    public init(tokens: [Int32], promptLength: Int) { self.tokens = tokens; self.promptLength = promptLength }
}

public struct WireExample: Equatable, Sendable {
    public var sequences: [WireSequence]
    public var reference: (chosen: Double, rejected: Double)?
    /// The example's index in its stage's dataset.
    public var id: Int
    public init(sequences: [WireSequence], reference: (chosen: Double, rejected: Double)? = nil, id: Int = 0) {
        self.sequences = sequences; self.reference = reference; self.id = id
    }
    public static func == (a: WireExample, b: WireExample) -> Bool {
        a.sequences == b.sequences && a.reference?.chosen == b.reference?.chosen && a.reference?.rejected == b.reference?.rejected && a.id == b.id
    }
}

public struct WorkUnit: Equatable, Sendable {
    public var stage: String, step: Int, version: Int
    public var objective: Objective
    public var normalizer: Double
    public var examples: [WireExample]
    public var microBatchTokens: Int
    public var scoreOnly: Bool
    public var shard: Int
    /// Set for evaluation units: sample from each example's prompt instead of computing gradients.
    public var sampling: SamplingSpec?
    /// Recompute another worker's shard, push nothing, report Σg² per chunk.
    public var verifyOnly: Bool
    public init(
        stage: String, step: Int, version: Int, objective: Objective, normalizer: Double, examples: [WireExample],
        microBatchTokens: Int, scoreOnly: Bool = false, shard: Int = 0, sampling: SamplingSpec? = nil, verifyOnly: Bool = false
    ) {
        self.shard = shard; self.sampling = sampling; self.verifyOnly = verifyOnly
        self.stage = stage; self.step = step; self.version = version; self.objective = objective; self.normalizer = normalizer
        self.examples = examples; self.microBatchTokens = microBatchTokens; self.scoreOnly = scoreOnly
    }
}

/// How an evaluation unit samples (see `SamplingSpec` in redi.proto for the seeding rule).
public struct SamplingSpec: Equatable, Sendable {
    public var samples: Int, temperature: Double, topP: Double, maxNewTokens: Int, rows: Int
    public var seed: UInt64
    public var stopTokens: [Int32]
    /// Keys and values cached as bfloat16.
    public var bf16Cache: Bool
    public init(samples: Int, temperature: Double, topP: Double, maxNewTokens: Int, rows: Int, seed: UInt64, stopTokens: [Int32], bf16Cache: Bool = false) {
        self.samples = samples; self.temperature = temperature; self.topP = topP; self.maxNewTokens = maxNewTokens
        self.rows = rows; self.seed = seed; self.stopTokens = stopTokens; self.bf16Cache = bf16Cache
    }
}

/// A coordinator's order about the servers' snapshots (see `SnapshotCommand` in redi.proto).
public struct SnapshotCommand: Equatable, Sendable {
    public enum Action: Int, Sendable {
        /// Fill the replica being built for `tag` with the attached chunks (weights, m, v each).
        case storeReplica = 1
        /// The live chunks become snapshot `tag`; the replica built for `tag` becomes the replica.
        case commit = 2
        /// Snapshot `tag` back into the live chunks it covers; take `version`.
        case restore = 3
        /// Send replica chunks back (a pull reply with optimizer state).
        case sendReplica = 4
    }
    public var action: Action
    public var tag: Int
    public var chunks: [Int]
    public var version: Int
    public init(_ action: Action, tag: Int, chunks: [Int] = [], version: Int = 0) {
        self.action = action; self.tag = tag; self.chunks = chunks; self.version = version
    }
}

public struct ApplyUpdate: Equatable, Sendable {
    public var step: Int, optimizerStep: Int, learningRate: Double, gradientScale: Double, adamW: AdamWConfig
    public init(step: Int, optimizerStep: Int, learningRate: Double, gradientScale: Double, adamW: AdamWConfig) {
        self.step = step; self.optimizerStep = optimizerStep; self.learningRate = learningRate
        self.gradientScale = gradientScale; self.adamW = adamW
    }
}

public struct StepReport: Equatable, Sendable {
    public var step: Int, lossSum: Double, examples: Int, tokens: Int
    public var metricSums: [String: Double]
    public var sequenceLogps: [Double]
    public var computeSeconds: Double, communicationSeconds: Double, waitingSeconds: Double
    public var exampleIDs: [Int]
    public var version: Int
    public var shard: Int
    /// Evaluation units: each sample's generated tokens, in (example, sample) order.
    public var generated: [[Int32]]
    /// Verification units: Σg² of each chunk of the recomputed gradient, in chunk order.
    public var chunkSums: [Double]
    public init(
        step: Int, lossSum: Double, examples: Int, tokens: Int, metricSums: [String: Double], sequenceLogps: [Double] = [],
        computeSeconds: Double = 0, communicationSeconds: Double = 0, waitingSeconds: Double = 0, exampleIDs: [Int] = [],
        version: Int = 0, shard: Int = 0, generated: [[Int32]] = [], chunkSums: [Double] = []
    ) {
        self.version = version; self.shard = shard; self.generated = generated; self.chunkSums = chunkSums
        self.step = step; self.lossSum = lossSum; self.examples = examples; self.tokens = tokens; self.metricSums = metricSums
        self.sequenceLogps = sequenceLogps; self.computeSeconds = computeSeconds
        self.communicationSeconds = communicationSeconds; self.waitingSeconds = waitingSeconds; self.exampleIDs = exampleIDs
    }

    /// Every number in the report is finite (a peer's report is refused otherwise).
    public var isFinite: Bool {
        ([lossSum, computeSeconds, communicationSeconds, waitingSeconds] + Array(metricSums.values) + sequenceLogps + chunkSums).allSatisfy(\.isFinite)
    }
}

/// The typed body of an envelope.
public enum Body: Equatable, Sendable {
    case hello(Hello)
    case welcome(Welcome)
    case error(code: Int, message: String)
    case heartbeat(step: Int)
    case shutdown(reason: String, failed: Bool)
    case work(WorkUnit)
    case pull(version: Int, chunks: [Int], optimizerState: Bool = false)
    case pullReply(version: Int, chunks: [Int], optimizerState: Bool = false)
    case push(step: Int, chunks: [Int], shard: Int, version: Int)
    case pushAck(step: Int)
    case load(chunks: [Int], resetOptimizer: Bool, optimizerState: Bool = false, version: Int = 0)
    /// A server's Σg² per chunk it holds, and per shard (each worker's contribution) over those chunks.
    case norm(step: Int, chunks: [Int], sums: [Double], shardSums: [Double])
    case apply(ApplyUpdate)
    case updateDone(step: Int, version: Int)
    case stepReport(StepReport)
    case reset(step: Int, shardWorkers: [Int], workerKeys: [[UInt8]])
    case snapshot(SnapshotCommand)
}

/// One control message: who sent it, in which run, its sequence number, and its body.
public struct Envelope: Equatable, Sendable {
    public var runID: String
    public var sender: String
    public var seq: UInt64
    public var body: Body
    public init(runID: String, sender: String, seq: UInt64, body: Body) {
        self.runID = runID; self.sender = sender; self.seq = seq; self.body = body
    }
}

public enum Wire {
    /// Bumped when a message changes incompatibly; peers with another version are refused.
    public static let protocolVersion = 4
    /// Largest envelope accepted (tensor frames are separate and bounded by the chunk size).
    public static let maximumEnvelopeBytes = 64 << 20
    /// Largest tensor frame any peer may send: the largest chunk a recipe may ask for.
    public static let maximumChunkBytes = 1 << 30
    /// Most tensor frames one message may carry (three per chunk for optimizer state).
    public static let maximumTensorFrames = 1 << 16
}

/// A message that cannot be used: undecodable, oversized, or inconsistent.
public struct WireError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
