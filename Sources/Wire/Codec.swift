// Envelope ↔ protobuf-c. The only file that touches the generated C structs: every pointer
// built for encoding lives in one arena freed after packing; every decoded struct is freed
// before `decode` returns, so nothing from C escapes.
import CREDIProto
import Foundation
import Objectives
import Optimizer

/// Owns C allocations made while building a message for packing.
private final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []
    deinit { for b in blocks { free(b) } }

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        blocks.append(UnsafeMutableRawPointer(p))
        return p
    }

    func array<T>(_ xs: [T]) -> UnsafeMutablePointer<T>? {
        guard !xs.isEmpty else { return nil }
        let raw = malloc(MemoryLayout<T>.stride * xs.count)!
        blocks.append(raw)
        let p = raw.bindMemory(to: T.self, capacity: xs.count)
        p.initialize(from: xs, count: xs.count)
        return p
    }

    func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        ProtobufCBinaryData(len: bytes.count, data: array(bytes))
    }

    func message<T>(_ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let raw = calloc(1, MemoryLayout<T>.stride)!
        blocks.append(raw)
        let p = raw.bindMemory(to: T.self, capacity: 1)
        initialize(p)
        return p
    }
}

extension Wire {
    /// Packs an envelope into one protobuf frame.
    public static func encode(_ e: Envelope) -> [UInt8] {
        let b = Packer()
        var env = Redi__Envelope()
        redi__envelope__init(&env)
        env.run_id = b.a.string(e.runID)
        env.sender = b.a.string(e.sender)
        env.seq = e.seq
        b.setBody(e.body, on: &env)
        let size = redi__envelope__get_packed_size(&env)
        var out = [UInt8](repeating: 0, count: size)
        out.withUnsafeMutableBufferPointer { _ = redi__envelope__pack(&env, $0.baseAddress) }
        return out
    }

    /// Unpacks and validates one protobuf frame.
    ///
    /// - Throws: `WireError` for an oversized or undecodable frame, a missing body, or a
    ///   required sub-message that is absent. Never traps on hostile input.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Envelope {
        guard bytes.count <= maximumEnvelopeBytes else { throw WireError("envelope of \(bytes.count) bytes exceeds the \(maximumEnvelopeBytes)-byte limit") }
        guard let p = redi__envelope__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            throw WireError("undecodable envelope (\(bytes.count) bytes)")
        }
        defer { redi__envelope__free_unpacked(p, nil) }
        let env = p.pointee
        return Envelope(runID: Unpack.str(env.run_id), sender: Unpack.str(env.sender), seq: env.seq, body: try Unpack.body(env))
    }
}

/// Builds the C structs of one message in an arena: one function per message that has more
/// than a field or two, the rest inline in `setBody`.
private struct Packer {
    let a = CArena()

    func u32s(_ xs: [Int]) -> UnsafeMutablePointer<UInt32>? { a.array(xs.map { UInt32(truncatingIfNeeded: $0) }) }

    /// Sets `env`'s body case and its sub-message.
    func setBody(_ body: Body, on env: inout Redi__Envelope) {
        switch body {
        case let .hello(h): env.body_case = REDI__ENVELOPE__BODY_HELLO; env.hello = hello(h)
        case let .welcome(w): env.body_case = REDI__ENVELOPE__BODY_WELCOME; env.welcome = welcome(w)
        case let .error(code, message):
            let m: UnsafeMutablePointer<Redi__Error> = a.message(redi__error__init)
            m.pointee.code = UInt32(code); m.pointee.message = a.string(message)
            env.body_case = REDI__ENVELOPE__BODY_ERROR; env.error = m
        case let .heartbeat(step):
            let m: UnsafeMutablePointer<Redi__Heartbeat> = a.message(redi__heartbeat__init)
            m.pointee.step = UInt64(step)
            env.body_case = REDI__ENVELOPE__BODY_HEARTBEAT; env.heartbeat = m
        case let .shutdown(reason, failed):
            let m: UnsafeMutablePointer<Redi__Shutdown> = a.message(redi__shutdown__init)
            m.pointee.reason = a.string(reason); m.pointee.failed = failed ? 1 : 0
            env.body_case = REDI__ENVELOPE__BODY_SHUTDOWN; env.shutdown = m
        case let .work(w): env.body_case = REDI__ENVELOPE__BODY_WORK; env.work = work(w)
        case let .pull(version, chunks, state):
            let m: UnsafeMutablePointer<Redi__PullRequest> = a.message(redi__pull_request__init)
            m.pointee.version = UInt64(version); m.pointee.n_chunks = chunks.count; m.pointee.chunks = u32s(chunks)
            m.pointee.optimizer_state = state ? 1 : 0
            env.body_case = REDI__ENVELOPE__BODY_PULL; env.pull = m
        case let .pullReply(version, chunks, state):
            let m: UnsafeMutablePointer<Redi__PullReply> = a.message(redi__pull_reply__init)
            m.pointee.version = UInt64(version); m.pointee.n_chunks = chunks.count; m.pointee.chunks = u32s(chunks)
            m.pointee.optimizer_state = state ? 1 : 0
            env.body_case = REDI__ENVELOPE__BODY_PULL_REPLY; env.pull_reply = m
        case let .push(step, chunks, shard, version):
            let m: UnsafeMutablePointer<Redi__PushGradients> = a.message(redi__push_gradients__init)
            m.pointee.step = UInt64(step); m.pointee.n_chunks = chunks.count; m.pointee.chunks = u32s(chunks)
            m.pointee.shard = UInt32(shard); m.pointee.version = UInt64(version)
            env.body_case = REDI__ENVELOPE__BODY_PUSH; env.push = m
        case let .pushAck(step):
            let m: UnsafeMutablePointer<Redi__PushAck> = a.message(redi__push_ack__init)
            m.pointee.step = UInt64(step)
            env.body_case = REDI__ENVELOPE__BODY_PUSH_ACK; env.push_ack = m
        case let .load(chunks, reset, state, version):
            let m: UnsafeMutablePointer<Redi__LoadChunks> = a.message(redi__load_chunks__init)
            m.pointee.n_chunks = chunks.count; m.pointee.chunks = u32s(chunks); m.pointee.reset_optimizer = reset ? 1 : 0
            m.pointee.optimizer_state = state ? 1 : 0; m.pointee.version = UInt64(version)
            env.body_case = REDI__ENVELOPE__BODY_LOAD; env.load = m
        case let .norm(step, chunks, sums, shardSums):
            let m: UnsafeMutablePointer<Redi__NormReport> = a.message(redi__norm_report__init)
            m.pointee.step = UInt64(step); m.pointee.n_chunks = chunks.count; m.pointee.chunks = u32s(chunks)
            m.pointee.n_chunk_sums = sums.count; m.pointee.chunk_sums = a.array(sums)
            m.pointee.n_shard_sums = shardSums.count; m.pointee.shard_sums = a.array(shardSums)
            env.body_case = REDI__ENVELOPE__BODY_NORM; env.norm = m
        case let .apply(u): env.body_case = REDI__ENVELOPE__BODY_APPLY; env.apply = apply(u)
        case let .updateDone(step, version):
            let m: UnsafeMutablePointer<Redi__UpdateDone> = a.message(redi__update_done__init)
            m.pointee.step = UInt64(step); m.pointee.version = UInt64(version)
            env.body_case = REDI__ENVELOPE__BODY_UPDATE_DONE; env.update_done = m
        case let .stepReport(r): env.body_case = REDI__ENVELOPE__BODY_STEP_REPORT; env.step_report = stepReport(r)
        case let .reset(step, owners, keys):
            let m: UnsafeMutablePointer<Redi__StepReset> = a.message(redi__step_reset__init)
            m.pointee.step = UInt64(step); m.pointee.n_shard_workers = owners.count; m.pointee.shard_workers = u32s(owners)
            let binaries = keys.map(a.binary)
            m.pointee.n_worker_keys = binaries.count; m.pointee.worker_keys = a.array(binaries)
            env.body_case = REDI__ENVELOPE__BODY_RESET; env.reset = m
        case let .snapshot(c):
            let m: UnsafeMutablePointer<Redi__SnapshotCommand> = a.message(redi__snapshot_command__init)
            m.pointee.action = Redi__SnapshotCommand__Action(rawValue: UInt32(c.action.rawValue))
            m.pointee.tag = UInt64(c.tag); m.pointee.version = UInt64(c.version)
            m.pointee.n_chunks = c.chunks.count; m.pointee.chunks = u32s(c.chunks)
            env.body_case = REDI__ENVELOPE__BODY_SNAPSHOT; env.snapshot = m
        }
    }

    func hello(_ h: Hello) -> UnsafeMutablePointer<Redi__Hello> {
        let m: UnsafeMutablePointer<Redi__Hello> = a.message(redi__hello__init)
        m.pointee.role = Redi__Role(rawValue: UInt32(h.role.rawValue))
        m.pointee.endpoint = a.string(h.endpoint)
        m.pointee.threads = UInt32(h.threads)
        m.pointee.protocol_version = UInt32(h.protocolVersion)
        m.pointee.data_key = a.binary(h.dataKey)
        m.pointee.blas_kernel = a.string(h.blasKernel)
        return m
    }

    func welcome(_ w: Welcome) -> UnsafeMutablePointer<Redi__Welcome> {
        let m: UnsafeMutablePointer<Redi__Welcome> = a.message(redi__welcome__init)
        m.pointee.index = UInt32(w.index)
        m.pointee.model_config_json = a.string(w.modelConfigJSON)
        let chunks = w.chunks.map { c -> UnsafeMutablePointer<Redi__ChunkRange>? in
            let r: UnsafeMutablePointer<Redi__ChunkRange> = a.message(redi__chunk_range__init)
            r.pointee.chunk = UInt32(c.chunk); r.pointee.offset = UInt64(c.offset); r.pointee.count = UInt64(c.count)
            return r
        }
        m.pointee.n_chunks = chunks.count; m.pointee.chunks = a.array(chunks)
        m.pointee.n_chunk_owner = w.chunkOwner.count; m.pointee.chunk_owner = u32s(w.chunkOwner)
        let endpoints = w.serverEndpoints.map { Optional(a.string($0)) }
        m.pointee.n_server_endpoints = endpoints.count; m.pointee.server_endpoints = a.array(endpoints)
        m.pointee.parameter_count = UInt64(w.parameterCount)
        m.pointee.heartbeat_seconds = w.heartbeatSeconds
        m.pointee.workers = UInt32(w.workers)
        m.pointee.bf16_gradients = w.bf16Gradients ? 1 : 0
        m.pointee.bf16_weights = w.bf16Weights ? 1 : 0
        m.pointee.plain_data_plane = w.plainDataPlane ? 1 : 0
        m.pointee.sealed_data_plane = w.sealedDataPlane ? 1 : 0
        m.pointee.activation_keep_bytes = UInt64(w.activationKeepBytes)
        m.pointee.snapshot_dir = a.string(w.snapshotDirectory)
        m.pointee.timeout_seconds = w.timeoutSeconds
        let keys = w.workerKeys.map(a.binary)
        m.pointee.n_worker_keys = keys.count; m.pointee.worker_keys = a.array(keys)
        return m
    }

    func objective(_ objective: Objective) -> UnsafeMutablePointer<Redi__ObjectiveSpec> {
        let o: UnsafeMutablePointer<Redi__ObjectiveSpec> = a.message(redi__objective_spec__init)
        o.pointee.name = a.string(objective.name)
        var gamma: Double?
        switch objective {
        case .sft: break
        case let .redi(c, alpha, g, weightGradient):
            o.pointee.chosen_weight = c; o.pointee.alpha = alpha; gamma = g; o.pointee.weight_gradient = weightGradient ? 1 : 0
        case let .dpo(beta, loss): o.pointee.beta = beta; o.pointee.loss_type = a.string(loss.rawValue)
        case let .simpo(beta, g): o.pointee.beta = beta; gamma = g
        }
        o.pointee.gamma = gamma ?? 0; o.pointee.has_gamma = gamma == nil ? 0 : 1
        return o
    }

    func example(_ e: WireExample) -> UnsafeMutablePointer<Redi__Example>? {
        let x: UnsafeMutablePointer<Redi__Example> = a.message(redi__example__init)
        let seqs = e.sequences.map { s -> UnsafeMutablePointer<Redi__Sequence>? in
            let q: UnsafeMutablePointer<Redi__Sequence> = a.message(redi__sequence__init)
            q.pointee.n_tokens = s.tokens.count; q.pointee.tokens = a.array(s.tokens)
            q.pointee.prompt_length = UInt32(s.promptLength)
            return q
        }
        x.pointee.n_sequences = seqs.count; x.pointee.sequences = a.array(seqs)
        if let r = e.reference { x.pointee.has_reference = 1; x.pointee.ref_chosen_logp = r.chosen; x.pointee.ref_rejected_logp = r.rejected }
        x.pointee.id = UInt64(e.id)
        return x
    }

    func work(_ w: WorkUnit) -> UnsafeMutablePointer<Redi__WorkUnit> {
        let m: UnsafeMutablePointer<Redi__WorkUnit> = a.message(redi__work_unit__init)
        m.pointee.stage = a.string(w.stage); m.pointee.step = UInt64(w.step); m.pointee.version = UInt64(w.version)
        m.pointee.objective = objective(w.objective)
        m.pointee.normalizer = w.normalizer
        let examples = w.examples.map(example)
        m.pointee.n_examples = examples.count; m.pointee.examples = a.array(examples)
        m.pointee.micro_batch_tokens = UInt32(w.microBatchTokens)
        m.pointee.score_only = w.scoreOnly ? 1 : 0
        m.pointee.verify_only = w.verifyOnly ? 1 : 0
        m.pointee.shard = UInt32(w.shard)
        if let g = w.sampling {
            let x: UnsafeMutablePointer<Redi__SamplingSpec> = a.message(redi__sampling_spec__init)
            x.pointee.samples = UInt32(g.samples); x.pointee.temperature = g.temperature; x.pointee.top_p = g.topP
            x.pointee.max_new_tokens = UInt32(g.maxNewTokens); x.pointee.rows = UInt32(g.rows); x.pointee.seed = g.seed
            x.pointee.n_stop_tokens = g.stopTokens.count; x.pointee.stop_tokens = a.array(g.stopTokens.map { UInt32(bitPattern: $0) })
            x.pointee.bf16_cache = g.bf16Cache ? 1 : 0
            m.pointee.sampling = x
        }
        return m
    }

    func apply(_ u: ApplyUpdate) -> UnsafeMutablePointer<Redi__ApplyUpdate> {
        let m: UnsafeMutablePointer<Redi__ApplyUpdate> = a.message(redi__apply_update__init)
        m.pointee.step = UInt64(u.step); m.pointee.optimizer_step = UInt64(u.optimizerStep)
        m.pointee.learning_rate = u.learningRate; m.pointee.gradient_scale = u.gradientScale
        let s: UnsafeMutablePointer<Redi__AdamWSpec> = a.message(redi__adam_wspec__init)
        s.pointee.beta1 = u.adamW.beta1; s.pointee.beta2 = u.adamW.beta2; s.pointee.eps = u.adamW.eps
        s.pointee.weight_decay = u.adamW.weightDecay
        m.pointee.adamw = s
        return m
    }

    func stepReport(_ r: StepReport) -> UnsafeMutablePointer<Redi__StepReport> {
        let m: UnsafeMutablePointer<Redi__StepReport> = a.message(redi__step_report__init)
        m.pointee.step = UInt64(r.step); m.pointee.loss_sum = r.lossSum
        m.pointee.examples = UInt64(r.examples); m.pointee.tokens = UInt64(r.tokens)
        let metrics = r.metricSums.keys.sorted().map { k -> UnsafeMutablePointer<Redi__Metric>? in
            let x: UnsafeMutablePointer<Redi__Metric> = a.message(redi__metric__init)
            x.pointee.name = a.string(k); x.pointee.value = r.metricSums[k]!
            return x
        }
        m.pointee.n_metric_sums = metrics.count; m.pointee.metric_sums = a.array(metrics)
        m.pointee.n_sequence_logps = r.sequenceLogps.count; m.pointee.sequence_logps = a.array(r.sequenceLogps)
        m.pointee.compute_seconds = r.computeSeconds; m.pointee.communication_seconds = r.communicationSeconds
        m.pointee.waiting_seconds = r.waitingSeconds
        m.pointee.version = UInt64(r.version); m.pointee.shard = UInt32(r.shard)
        m.pointee.n_example_ids = r.exampleIDs.count; m.pointee.example_ids = a.array(r.exampleIDs.map { UInt64($0) })
        let flat = r.generated.flatMap { $0.map { UInt32(bitPattern: $0) } }
        m.pointee.n_generated_tokens = flat.count; m.pointee.generated_tokens = a.array(flat)
        m.pointee.n_generated_lengths = r.generated.count; m.pointee.generated_lengths = a.array(r.generated.map { UInt32($0.count) })
        m.pointee.n_chunk_sums = r.chunkSums.count; m.pointee.chunk_sums = a.array(r.chunkSums)
        return m
    }
}

/// Reads decoded C structs into the Swift messages, validating what a peer controls: one
/// function per message that has more than a field or two, the rest inline in `body`.
private enum Unpack {
    static func str(_ s: UnsafeMutablePointer<CChar>?) -> String { s.map { String(cString: $0) } ?? "" }
    static func ints(_ n: Int, _ p: UnsafeMutablePointer<UInt32>?) -> [Int] { (0..<n).map { Int(p![$0]) } }
    static func values<T>(_ n: Int, _ p: UnsafeMutablePointer<T>?) -> [T] { Array(UnsafeBufferPointer(start: p, count: n)) }
    /// 64-bit fields a peer controls: anything past 2^53 is no real step, count or offset.
    static func int(_ v: UInt64, _ what: String) throws -> Int {
        guard v <= 1 << 53 else { throw WireError("\(what) \(v) is out of range") }
        return Int(v)
    }
    static func binary(_ b: ProtobufCBinaryData) -> [UInt8] { b.len == 0 ? [] : Array(UnsafeBufferPointer(start: b.data, count: b.len)) }
    static func require<T>(_ p: UnsafeMutablePointer<T>?, _ what: String) throws -> T {
        guard let p else { throw WireError("\(what) message has no body") }
        return p.pointee
    }

    static func body(_ env: Redi__Envelope) throws -> Body {
        switch env.body_case {
        case REDI__ENVELOPE__BODY_HELLO: return .hello(try hello(try require(env.hello, "hello")))
        case REDI__ENVELOPE__BODY_WELCOME: return .welcome(try welcome(try require(env.welcome, "welcome")))
        case REDI__ENVELOPE__BODY_ERROR:
            let m = try require(env.error, "error")
            return .error(code: Int(m.code), message: str(m.message))
        case REDI__ENVELOPE__BODY_HEARTBEAT:
            return .heartbeat(step: try int(try require(env.heartbeat, "heartbeat").step, "step"))
        case REDI__ENVELOPE__BODY_SHUTDOWN:
            let m = try require(env.shutdown, "shutdown")
            return .shutdown(reason: str(m.reason), failed: m.failed != 0)
        case REDI__ENVELOPE__BODY_WORK: return .work(try work(try require(env.work, "work")))
        case REDI__ENVELOPE__BODY_PULL:
            let m = try require(env.pull, "pull")
            return .pull(version: try int(m.version, "version"), chunks: ints(m.n_chunks, m.chunks), optimizerState: m.optimizer_state != 0)
        case REDI__ENVELOPE__BODY_PULL_REPLY:
            let m = try require(env.pull_reply, "pull reply")
            return .pullReply(version: try int(m.version, "version"), chunks: ints(m.n_chunks, m.chunks), optimizerState: m.optimizer_state != 0)
        case REDI__ENVELOPE__BODY_PUSH:
            let m = try require(env.push, "push")
            return .push(step: try int(m.step, "step"), chunks: ints(m.n_chunks, m.chunks), shard: Int(m.shard), version: try int(m.version, "version"))
        case REDI__ENVELOPE__BODY_PUSH_ACK:
            return .pushAck(step: try int(try require(env.push_ack, "push ack").step, "step"))
        case REDI__ENVELOPE__BODY_LOAD:
            let m = try require(env.load, "load")
            return .load(
                chunks: ints(m.n_chunks, m.chunks), resetOptimizer: m.reset_optimizer != 0, optimizerState: m.optimizer_state != 0,
                version: try int(m.version, "version"))
        case REDI__ENVELOPE__BODY_NORM:
            let m = try require(env.norm, "norm")
            guard m.n_chunks == m.n_chunk_sums else { throw WireError("norm report with \(m.n_chunks) chunks and \(m.n_chunk_sums) sums") }
            return .norm(
                step: try int(m.step, "step"), chunks: ints(m.n_chunks, m.chunks), sums: values(m.n_chunk_sums, m.chunk_sums),
                shardSums: values(m.n_shard_sums, m.shard_sums))
        case REDI__ENVELOPE__BODY_APPLY: return .apply(try apply(try require(env.apply, "apply")))
        case REDI__ENVELOPE__BODY_UPDATE_DONE:
            let m = try require(env.update_done, "update done")
            return .updateDone(step: try int(m.step, "step"), version: try int(m.version, "version"))
        case REDI__ENVELOPE__BODY_STEP_REPORT: return .stepReport(try stepReport(try require(env.step_report, "step report")))
        case REDI__ENVELOPE__BODY_RESET:
            let m = try require(env.reset, "reset")
            return .reset(
                step: try int(m.step, "step"), shardWorkers: ints(m.n_shard_workers, m.shard_workers),
                workerKeys: (0..<m.n_worker_keys).map { binary(m.worker_keys[$0]) })
        case REDI__ENVELOPE__BODY_SNAPSHOT:
            let m = try require(env.snapshot, "snapshot")
            guard let action = SnapshotCommand.Action(rawValue: Int(m.action.rawValue)) else { throw WireError("snapshot command with action \(m.action.rawValue)") }
            let chunks = ints(m.n_chunks, m.chunks)
            guard Set(chunks).count == chunks.count else { throw WireError("snapshot command naming a chunk twice") }
            return .snapshot(SnapshotCommand(action, tag: try int(m.tag, "tag"), chunks: chunks, version: try int(m.version, "version")))
        default:
            throw WireError("envelope without a known body (case \(env.body_case.rawValue))")
        }
    }

    static func hello(_ m: Redi__Hello) throws -> Hello {
        guard let role = Role(rawValue: Int(m.role.rawValue)), role != .unspecified else { throw WireError("hello with unknown role \(m.role.rawValue)") }
        let kernel = str(m.blas_kernel)
        guard kernel.utf8.count <= 32, kernel.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }) else {
            throw WireError("hello with a malformed BLAS kernel name (at most 32 letters, digits or underscores)")
        }
        return Hello(
            role: role, endpoint: str(m.endpoint), threads: Int(m.threads), protocolVersion: Int(m.protocol_version),
            dataKey: binary(m.data_key), blasKernel: kernel)
    }

    static func welcome(_ m: Redi__Welcome) throws -> Welcome {
        let chunks = try (0..<m.n_chunks).map { i -> ChunkRange in
            let c = try require(m.chunks[i], "chunk range")
            return ChunkRange(chunk: Int(c.chunk), offset: try int(c.offset, "offset"), count: try int(c.count, "count"))
        }
        return Welcome(
            index: Int(m.index), modelConfigJSON: str(m.model_config_json), chunks: chunks,
            chunkOwner: ints(m.n_chunk_owner, m.chunk_owner),
            serverEndpoints: (0..<m.n_server_endpoints).map { str(m.server_endpoints[$0]) },
            parameterCount: try int(m.parameter_count, "parameter_count"), heartbeatSeconds: m.heartbeat_seconds,
            workers: Int(m.workers), timeoutSeconds: m.timeout_seconds,
            workerKeys: (0..<m.n_worker_keys).map { binary(m.worker_keys[$0]) }, bf16Gradients: m.bf16_gradients != 0, bf16Weights: m.bf16_weights != 0,
            plainDataPlane: m.plain_data_plane != 0, sealedDataPlane: m.sealed_data_plane != 0,
            activationKeepBytes: try int(m.activation_keep_bytes, "activation_keep_bytes"),
            snapshotDirectory: str(m.snapshot_dir))
    }

    /// The objective a spec names, validated as recipes validate it (Objective.named).
    static func objective(_ o: Redi__ObjectiveSpec) throws -> Objective {
        let name = str(o.name), gamma = o.has_gamma != 0 ? o.gamma : nil
        do {
            switch name {
            case "redi": return try .named(name, chosenWeight: o.chosen_weight, alpha: o.alpha, gamma: gamma, weightGradient: o.weight_gradient != 0)
            case "dpo": return try .named(name, beta: o.beta, lossType: str(o.loss_type))
            case "simpo": return try .named(name, beta: o.beta, gamma: gamma)
            default: return try .named(name)
            }
        } catch let e as ObjectiveError { throw WireError("objective: \(e.description)") }
    }

    static func example(_ x: Redi__Example) throws -> WireExample {
        let seqs = try (0..<x.n_sequences).map { j -> WireSequence in
            let s = try require(x.sequences[j], "sequence")
            let tokens = values(s.n_tokens, s.tokens)
            guard Int(s.prompt_length) <= tokens.count else { throw WireError("sequence prompt_length \(s.prompt_length) exceeds its \(tokens.count) tokens") }
            return WireSequence(tokens: tokens, promptLength: Int(s.prompt_length))
        }
        return WireExample(
            sequences: seqs, reference: x.has_reference != 0 ? (x.ref_chosen_logp, x.ref_rejected_logp) : nil, id: try int(x.id, "example id"))
    }

    static func sampling(_ g: Redi__SamplingSpec) throws -> SamplingSpec {
        guard g.samples >= 1, g.rows >= 1, g.max_new_tokens >= 1, g.temperature.isFinite, g.temperature >= 0, g.top_p > 0, g.top_p <= 1 else {
            throw WireError("sampling settings out of range")
        }
        return SamplingSpec(
            samples: Int(g.samples), temperature: g.temperature, topP: g.top_p, maxNewTokens: Int(g.max_new_tokens), rows: Int(g.rows),
            seed: g.seed, stopTokens: (0..<g.n_stop_tokens).map { Int32(bitPattern: g.stop_tokens[$0]) }, bf16Cache: g.bf16_cache != 0)
    }

    static func work(_ m: Redi__WorkUnit) throws -> WorkUnit {
        let examples = try (0..<m.n_examples).map { try example(try require(m.examples[$0], "example")) }
        return WorkUnit(
            stage: str(m.stage), step: try int(m.step, "step"), version: try int(m.version, "version"),
            objective: try objective(try require(m.objective, "objective")),
            normalizer: m.normalizer, examples: examples, microBatchTokens: Int(m.micro_batch_tokens),
            scoreOnly: m.score_only != 0, shard: Int(m.shard),
            sampling: try m.sampling.map { try sampling($0.pointee) }, verifyOnly: m.verify_only != 0)
    }

    static func apply(_ m: Redi__ApplyUpdate) throws -> ApplyUpdate {
        let s = try require(m.adamw, "adamw")
        return ApplyUpdate(
            step: try int(m.step, "step"), optimizerStep: try int(m.optimizer_step, "optimizer_step"), learningRate: m.learning_rate,
            gradientScale: m.gradient_scale, adamW: AdamWConfig(beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weight_decay))
    }

    static func stepReport(_ m: Redi__StepReport) throws -> StepReport {
        var metrics: [String: Double] = [:]
        for i in 0..<m.n_metric_sums { let x = try require(m.metric_sums[i], "metric"); metrics[str(x.name)] = x.value }
        return StepReport(
            step: try int(m.step, "step"), lossSum: m.loss_sum, examples: try int(m.examples, "examples"), tokens: try int(m.tokens, "tokens"),
            metricSums: metrics, sequenceLogps: values(m.n_sequence_logps, m.sequence_logps),
            computeSeconds: m.compute_seconds, communicationSeconds: m.communication_seconds, waitingSeconds: m.waiting_seconds,
            exampleIDs: try (0..<m.n_example_ids).map { try int(m.example_ids[$0], "example id") },
            version: try int(m.version, "version"), shard: Int(m.shard),
            generated: try generatedSamples(tokens: m.n_generated_tokens, m.generated_tokens, lengths: m.n_generated_lengths, m.generated_lengths),
            chunkSums: values(m.n_chunk_sums, m.chunk_sums))
    }
}

/// Splits a report's concatenated sample tokens by the sample lengths, which must add up.
private func generatedSamples(
    tokens n: Int, _ tokens: UnsafeMutablePointer<UInt32>?, lengths count: Int,
    _ lengths: UnsafeMutablePointer<UInt32>?
) throws -> [[Int32]] {
    var out: [[Int32]] = [], at = 0
    out.reserveCapacity(count)
    for i in 0..<count {
        let l = Int(lengths![i])
        guard l <= n - at else { throw WireError("generated sample lengths exceed the \(n) tokens sent") }
        out.append((at..<(at + l)).map { Int32(bitPattern: tokens![$0]) })
        at += l
    }
    guard at == n else { throw WireError("generated sample lengths cover \(at) of the \(n) tokens sent") }
    return out
}
