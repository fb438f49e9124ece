import BLASKernel
// A worker: pulls the current weights, computes the gradient of its share of each global
// batch (micro-batched), pushes the sums to the servers that own each chunk, and reports
// the objective's sums and its time split to the coordinator. While it works, a heartbeat
// thread tells the coordinator it is alive, so a long step is never taken for a dead worker.
import ClusterCore
import Data
import Evaluation
import Foundation
import Model
import Numerics
import Objectives
import Training
import Transport
import Wire

public final class WorkerRole {
    let coordinator: String
    let key: RunKey
    let timeout: Double
    /// Fault injection: exit abruptly on receiving this training step (tests the failure path).
    let failAtStep: Int?
    /// Fault injection: seconds added to every work unit (a slow worker; tests liveness).
    let delay: Double

    /// Fault injection (tests): pushed gradients are multiplied by this.
    let corruptGradients: Float?

    public init(coordinator: String, key: RunKey, timeout: Double, failAtStep: Int? = nil, delay: Double = 0, corruptGradients: Float? = nil) {
        self.coordinator = coordinator; self.key = key; self.timeout = timeout; self.failAtStep = failAtStep; self.delay = delay
        self.corruptGradients = corruptGradients
    }

    /// Joins the run and works until the coordinator ends it.
    ///
    /// - Throws: `ClusterError` when the run fails (told by the coordinator, or found here);
    ///   a failure found here is reported to the coordinator first, so the run ends at once.
    public func run() throws {
        // One I/O thread per core: pulls from several servers are received (and decrypted) in parallel.
        let context = ZMQContext(ioThreads: elementwiseThreads)
        let identity = hostIdentity("worker")
        // The data plane: servers admit this key only, bound to the index the coordinator gives.
        let dataKeys = try CurveKeyPair.generate()
        // A coordinator that goes silent may be restarted (`--resume latest`): join it again.
        while true {
            let (messenger, welcome, runID) = try join(
                context: context, coordinator: coordinator, key: key, identity: identity,
                hello: Hello(role: .worker, threads: elementwiseThreads, dataKey: dataKeys.publicKey, blasKernel: OpenBLASRuntime.coreName),
                timeout: timeout)
            let control = ControlChannel(messenger)
            let name = "worker-\(welcome.index)"
            let step = StepCounter()
            control.startHeartbeats(every: welcome.heartbeatSeconds) { step.value }
            defer { control.stop() }
            do {
                try work(context: context, control: control, welcome: welcome, runID: runID, name: name, dataKeys: dataKeys, step: step)
                return
            } catch let silent as CoordinatorSilent {
                log(name, "\(silent); waiting up to \(Int(timeout)) s for it to come back (redi-ps coordinate --resume latest)")
            } catch let error as ClusterError {
                try? control.send(.error(.failed, error.description))
                throw error
            } catch {
                let e = ClusterError("\(name): \(error)")
                try? control.send(.error(.failed, e.description))
                throw e
            }
        }
    }

    final class StepCounter: @unchecked Sendable {
        private let lock = NSLock()
        private var step = 0
        var value: Int {
            get { lock.lock(); defer { lock.unlock() }; return step }
            set { lock.lock(); step = newValue; lock.unlock() }
        }
    }

    private func work(
        context: ZMQContext, control: ControlChannel, welcome: Welcome, runID: String, name: String,
        dataKeys: CurveKeyPair, step: StepCounter
    ) throws {
        let session = try WorkerSession(
            role: self, context: context, control: control, welcome: welcome, runID: runID, name: name, dataKeys: dataKeys, step: step)
        do {
            try session.serve()
        } catch let stop as Stop {
            log(name, String(format: "shutting down: %@ (peak RSS %.0f MiB, CPU %.2f s)", stop.reason, peakResidentMiB(), cpuSeconds()))
            if stop.failed { throw ClusterError("\(name): the run failed: \(stop.reason)") }
        }
    }
}

/// One membership of a run (from a welcome to the run's end or the coordinator's silence): the
/// model's buffers, the connections of the current plan, and the loop that runs work units.
final class WorkerSession {
    let role: WorkerRole
    let context: ZMQContext
    let control: ControlChannel
    let runID: String, name: String
    let dataKeys: CurveKeyPair
    let step: WorkerRole.StepCounter
    let config: LlamaConfig
    let timeout: Double
    let parameters: FloatBuffer, gradients: FloatBuffer
    /// With a bfloat16 wire, pushes are narrowed here first (each chunk once per step).
    let narrowedGradients: BFloat16Buffer
    let computer: GradientComputer
    private(set) var welcome: Welcome
    /// The current plan's server connections, and the chunks each server owns.
    private(set) var servers: [Messenger] = []
    private(set) var owned: [[ChunkRange]] = []
    var lastHeard = Date()
    /// Work units that arrived while another was in progress, in arrival order.
    var queued: [Incoming] = []

    init(
        role: WorkerRole, context: ZMQContext, control: ControlChannel, welcome: Welcome, runID: String, name: String,
        dataKeys: CurveKeyPair, step: WorkerRole.StepCounter
    ) throws {
        do { config = try JSONDecoder().decode(LlamaConfig.self, from: Data(welcome.modelConfigJSON.utf8)) } catch {
            throw ClusterError("\(name): the coordinator sent a model configuration that does not decode: \(error)")
        }
        guard ParameterLayout(config: config).totalCount == welcome.parameterCount else {
            throw ClusterError("\(name): the model configuration has \(ParameterLayout(config: config).totalCount) parameters, the welcome says \(welcome.parameterCount)")
        }
        self.role = role; self.context = context; self.control = control; self.welcome = welcome
        self.runID = runID; self.name = name; self.dataKeys = dataKeys; self.step = step
        timeout = peerTimeout(welcome, cli: role.timeout)
        parameters = FloatBuffer(count: welcome.parameterCount)
        gradients = FloatBuffer(count: welcome.parameterCount)
        narrowedGradients = BFloat16Buffer(count: welcome.bf16Gradients ? welcome.parameterCount : 0)
        computer = GradientComputer(config: config)
        computer.engine.activationKeepBytes = welcome.activationKeepBytes
        try connect(welcome)
        log(name, "joined run \(runID): \(welcome.parameterCount) parameters on \(servers.count) servers")
        // The start line measured one fixed shape; this is the model's own MLP shape (capped at 4096 outputs).
        let shape = MatmulShape(m: 512, n: min(config.intermediateSize, 4096), k: config.hiddenSize)
        log(name, "sgemm at this model's shape \(shape): \(Int(BLASStartup.sgemmRate(shape))) GFLOP/s (BLAS threads: \(matmulThreads))")
    }

    /// Connects to the servers of a (new) plan; the old connections close.
    func connect(_ w: Welcome) throws {
        guard w.parameterCount == parameters.count, w.index == welcome.index else {
            throw ClusterError("\(name): a new plan for \(w.parameterCount) parameters as worker \(w.index)")
        }
        welcome = w
        let largestChunk = w.chunks.map(\.count).max() ?? 0
        servers = try w.serverEndpoints.map { endpoint in
            let s = try ZMQSocket(context, .dealer)
            try s.setIdentity(name)
            if w.plainDataPlane {
                try s.makePlainClient(user: name, key: dataKeys.publicKey)
            } else {
                try s.makeCurveClient(keys: dataKeys, serverKey: role.key.keys.publicKey)
            }
            try s.setMaximumMessageSize(frameLimit(chunkBytes: largestChunk * 4))
            try s.connect(endpoint)
            // A sealed frame's tag covers the worker's identity: the socket's, which is `name`.
            let sealing = w.sealedDataPlane ? FrameSealing(runSecret: role.key.keys.secretKey, runID: runID) : nil
            return Messenger(socket: s, runID: runID, sender: name, routed: false, sealing: sealing)
        }
        owned = Array(repeating: [ChunkRange](), count: servers.count)
        for (i, c) in w.chunks.enumerated() { owned[w.chunkOwner[i]].append(c) }
    }

    /// Runs work units until the coordinator ends the run (`Stop`) or falls silent.
    func serve() throws {
        while true {
            guard
                let msg = queued.isEmpty
                    ? try control.receive(timeout: welcome.heartbeatSeconds, onInvalid: { log(self.name, "dropped: \($0)") })
                    : queued.removeFirst()
            else {
                if Date().timeIntervalSince(lastHeard) > timeout { throw CoordinatorSilent(seconds: timeout) }
                continue
            }
            lastHeard = Date()
            do {
                guard case let .work(unit) = msg.envelope.body else {
                    try handleInterrupt(msg)
                    continue
                }
                try control.send(.stepReport(try run(unit)))
            } catch let r as Replan {
                try r.welcome.validate()
                try connect(r.welcome)
                queued.removeAll()  // units of the old plan: the coordinator sends the step again
                log(name, "the coordinator re-planned: \(servers.count) servers")
            } catch let fault as ServerFault {
                // The unit is abandoned; the coordinator replaces the server and sends the step again.
                let endpoint = welcome.serverEndpoints[fault.server]
                log(name, "server \(endpoint) \(fault.detail): reported to the coordinator")
                try control.send(.error(.serverFault, "server \(endpoint): \(fault.detail)"))
            }
        }
    }

    /// A coordinator message that is not the next unit: the run's end, an error, a unit to run
    /// after this one, or a new plan (thrown as `Replan`: the unit in progress is abandoned).
    func handleInterrupt(_ msg: Incoming) throws {
        switch msg.envelope.body {
        case let .shutdown(reason, failed): throw Stop(reason: reason, failed: failed)
        case .error(PeerError.notInRun.rawValue, _): throw CoordinatorSilent(seconds: 0, restarted: true)
        case let .error(_, message): throw ClusterError("\(name): coordinator error: \(message)")
        case .work: queued.append(msg)
        case let .welcome(w): throw Replan(welcome: w)
        default: break
        }
    }

    /// The coordinator's channel, watched whenever this thread waits on the transfer. A push
    /// held by a server for a slow predecessor waits as long as the coordinator is heard from:
    /// it decides who is stuck (its step timeout), not this worker.
    func watch() throws {
        if let msg = try control.receive(timeout: 0, onInvalid: { log(self.name, "dropped: \($0)") }) {
            lastHeard = Date()
            try handleInterrupt(msg)
        } else if Date().timeIntervalSince(lastHeard) > timeout {
            throw CoordinatorSilent(seconds: timeout)
        }
    }

    /// One work unit: the pull (and, for a training step, the pushes) on the transfer's thread
    /// while this one computes; returns the report with its time split.
    func run(_ unit: WorkUnit) throws -> StepReport {
        try unit.validate(config: config, name: name)
        step.value = unit.step
        let pushes = !unit.scoreOnly && unit.sampling == nil && !unit.verifyOnly
        if let failAtStep = role.failAtStep, unit.step == failAtStep, pushes {
            log(name, "fault injection: exiting at step \(unit.step + 1)")
            exit(3)
        }
        let t0 = Date()
        // Forward starts on the first blocks while the rest arrive; pushes leave while backward goes on.
        let transfer = StepTransfer(
            servers: servers, owned: owned, parameters: parameters,
            version: unit.version, bf16Weights: welcome.bf16Weights,
            pushTag: pushes ? StepTransfer.PushTag(step: unit.step, shard: unit.shard, version: unit.version) : nil,
            name: name, timeout: timeout)
        transfer.start()
        let pull = PullWait(transfer: transfer, watch: watch)
        var report: StepReport
        let t2: Date
        do {
            if role.delay > 0 { Thread.sleep(forTimeInterval: role.delay) }
            computer.microBatchTokens = unit.microBatchTokens
            let examples = unit.examples.map { e in
                Example(
                    sequences: e.sequences.map { TokenSequence(tokens: $0.tokens, promptLength: $0.promptLength) },
                    refChosen: e.reference?.chosen, refRejected: e.reference?.rejected, line: e.id + 1)
            }
            if let sampling = unit.sampling {
                try pull.all(parameters.count)
                report = sample(unit, sampling, prompts: examples.count)
            } else if unit.scoreOnly {
                try pull.all(parameters.count)
                let scores = computer.scores(parameters: parameters, examples: examples)
                report = StepReport(
                    step: unit.step, lossSum: 0, examples: examples.count, tokens: scores.reduce(0) { $0 + $1.tokens }, metricSums: [:],
                    sequenceLogps: scores.map(\.logp))
            } else {
                report = try gradient(unit, examples, pull: pull, pushes: pushes)
            }
            t2 = Date()
            try transfer.wait(watch: watch)
        } catch {
            transfer.cancel()
            // A cancelled compute says why through the transfer's own failure, if it had one.
            if error is StepTransfer.Cancelled { try transfer.wait(watch: {}) }
            throw error
        }
        report.exampleIDs = unit.examples.map(\.id)
        report.version = unit.version
        report.shard = unit.shard
        // Communication is what compute waited for: weights still arriving, then the last acknowledgements.
        report.computeSeconds = t2.timeIntervalSince(t0) - pull.waited
        report.communicationSeconds = pull.waited + Date().timeIntervalSince(t2)
        return report
    }

    /// Samples answers to the unit's prompts (evaluation on the workers).
    private func sample(_ unit: WorkUnit, _ sampling: SamplingSpec, prompts: Int) -> StepReport {
        let requests = unit.examples.map {
            GenerationRequest(prompt: $0.sequences[0].tokens, samples: sampling.samples, seed: sampling.seed &+ UInt64($0.id))
        }
        let settings = SamplingSettings(
            temperature: sampling.temperature, topP: sampling.topP, maxNewTokens: sampling.maxNewTokens, cache: sampling.bf16Cache ? .bf16 : .fp32)
        let samples = Array(
            generate(
                config: config, parameters: parameters, requests: requests, rows: sampling.rows, settings: settings,
                stop: Set(sampling.stopTokens)
            ).joined())
        return StepReport(
            step: unit.step, lossSum: 0, examples: prompts, tokens: samples.reduce(0) { $0 + $1.count }, metricSums: [:], generated: samples)
    }

    /// The gradient of the unit's examples; each chunk is queued for its server once backward
    /// has finished every parameter in it, and sent without a copy while compute continues.
    private func gradient(_ unit: WorkUnit, _ examples: [Example], pull: PullWait, pushes: Bool) throws -> StepReport {
        gradients.zero()
        var pushed = Set<Int>()
        func push(from frontier: Int) {
            guard pull.interruption == nil, pushes else { return }
            var ready: [StepTransfer.Push] = []
            for (s, chunks) in owned.enumerated() {
                for c in chunks where c.offset >= frontier && !pushed.contains(c.chunk) {
                    if let scale = role.corruptGradients { gradients.scale(c.offset..<(c.offset + c.count), by: scale) }
                    ready.append(StepTransfer.Push(server: s, chunk: c.chunk, tensor: outgoing(c)))
                    pushed.insert(c.chunk)
                }
            }
            pull.transfer.push(ready)
        }
        let result: ObjectiveResult
        do {
            result =
                examples.isEmpty
                ? ObjectiveResult()
                : try computer.accumulate(
                    parameters: parameters, gradients: gradients, examples: examples, objective: unit.objective,
                    normalizer: unit.normalizer, parametersNeeded: pull.upTo, gradientsFinal: push)
        } catch let e as ObjectiveError {
            throw ClusterError("\(name): stage \(unit.stage) step \(unit.step + 1): \(e.description)")
        }
        if let interruption = pull.interruption { throw interruption }
        push(from: 0)
        pull.transfer.finishPushes()
        var report = StepReport(step: unit.step, lossSum: result.lossSum, examples: result.examples, tokens: result.tokens, metricSums: result.metricSums)
        if unit.verifyOnly {
            // Σg² per chunk of the values as they would be pushed (the servers measure the same bytes).
            report.chunkSums = welcome.chunks.map { c in
                outgoing(c).sumOfSquares(bf16: welcome.bf16Gradients)
            }
        }
        return report
    }

    /// Chunk `c` of the gradient as it goes on the wire (narrowed to bfloat16 with that wire).
    private func outgoing(_ c: ChunkRange) -> OutgoingTensor {
        let range = c.offset..<(c.offset + c.count)
        guard welcome.bf16Gradients else { return OutgoingTensor(gradients, range: range) }
        gradients.narrow(range, into: narrowedGradients)
        return OutgoingTensor(narrowedGradients, range: range)
    }
}

/// Compute's side of the pull: blocks until the weights up to an offset are in. An
/// interruption or a failed transfer is kept and compute runs on to its end (its result is
/// dropped); the time spent waiting is communication, not compute.
final class PullWait {
    let transfer: StepTransfer
    let watch: () throws -> Void
    private(set) var interruption: Error?
    private(set) var waited = 0.0

    init(transfer: StepTransfer, watch: @escaping () throws -> Void) { self.transfer = transfer; self.watch = watch }

    func upTo(_ offset: Int) {
        guard interruption == nil else { return }
        let t = Date()
        do {
            if try !transfer.waitForParameters(upTo: offset, watch: watch) { interruption = StepTransfer.Cancelled() }
        } catch { interruption = error }
        waited += Date().timeIntervalSince(t)
    }

    /// Every weight, or the interruption.
    func all(_ count: Int) throws {
        upTo(count)
        if let interruption { throw interruption }
    }
}

/// The coordinator sent a new plan (a server was lost): the unit in progress is abandoned.
struct Replan: Error {
    let welcome: Welcome
}

extension WorkUnit {
    /// Checks a unit against the model before any of it is used: token ids, lengths and counts.
    func validate(config: LlamaConfig, name: String) throws {
        func bad(_ what: String) -> ClusterError { ClusterError("\(name): work unit for step \(step + 1) \(what)") }
        guard normalizer > 0, normalizer.isFinite else { throw bad("has normalizer \(normalizer)") }
        guard microBatchTokens > 0 else { throw bad("has micro_batch_tokens 0") }
        if let sampling {
            // Prompts only; the cache must hold a prompt and its budget, `rows` times.
            guard sampling.rows <= 4096, sampling.samples <= 4096, sampling.maxNewTokens < config.maxPositionEmbeddings else {
                throw bad("asks for \(sampling.rows) rows, \(sampling.samples) samples, \(sampling.maxNewTokens) new tokens")
            }
            guard sampling.stopTokens.allSatisfy({ $0 >= 0 && Int($0) < config.vocabSize }) else { throw bad("has stop tokens outside the vocabulary") }
            for (i, e) in examples.enumerated() {
                guard e.sequences.count == 1, let s = e.sequences.first, !s.tokens.isEmpty, s.tokens.count < config.maxPositionEmbeddings,
                    s.promptLength == s.tokens.count
                else { throw bad("example \(i) is not a prompt") }
                guard s.tokens.allSatisfy({ $0 >= 0 && Int($0) < config.vocabSize }) else { throw bad("example \(i) has token ids outside the vocabulary") }
            }
            return
        }
        for (i, e) in examples.enumerated() {
            guard e.sequences.count == 1 || e.sequences.count == 2 else { throw bad("example \(i) has \(e.sequences.count) sequences") }
            if let r = e.reference, !(r.chosen.isFinite && r.rejected.isFinite) { throw bad("example \(i) has non-finite reference log-probabilities") }
            for s in e.sequences {
                guard s.tokens.count >= 2, s.tokens.count <= config.maxPositionEmbeddings, s.promptLength >= 1, s.promptLength < s.tokens.count else {
                    throw bad("example \(i) has a sequence of \(s.tokens.count) tokens with prompt length \(s.promptLength)")
                }
                guard s.tokens.allSatisfy({ $0 >= 0 && Int($0) < config.vocabSize }) else { throw bad("example \(i) has token ids outside the vocabulary") }
            }
        }
    }
}
