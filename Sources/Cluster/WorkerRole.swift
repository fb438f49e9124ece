// A worker: pulls the current weights, computes the gradient of its share of each global
// batch (micro-batched), pushes the sums to the servers that own each chunk, and reports
// the objective's sums and its time split to the coordinator.
import Data
import Foundation
import Model
import Numerics
import Objectives
import Training
import Transport
import Wire

public final class WorkerRole {
    let coordinator: String
    let timeout: Double
    /// Fault injection: exit abruptly on receiving this training step (tests the failure path).
    let failAtStep: Int?

    public init(coordinator: String, timeout: Double, failAtStep: Int? = nil) {
        self.coordinator = coordinator; self.timeout = timeout; self.failAtStep = failAtStep
    }

    public func run() throws {
        let context = ZMQContext()
        let identity = hostIdentity("worker")
        let (control, welcome, runID) = try join(context: context, coordinator: coordinator, identity: identity,
                                                 hello: Hello(role: .worker, threads: elementwiseThreads), runID: nil, timeout: timeout)
        let name = "worker-\(welcome.index)"
        let config = try JSONDecoder().decode(LlamaConfig.self, from: Data(welcome.modelConfigJSON.utf8))
        let parameters = FloatBuffer(count: welcome.parameterCount)
        let gradients = FloatBuffer(count: welcome.parameterCount)
        var servers: [Messenger] = []
        for endpoint in welcome.serverEndpoints {
            let s = try ZMQSocket(context, .dealer)
            try s.setIdentity(name)
            try s.connect(endpoint)
            servers.append(Messenger(socket: s, runID: runID, sender: name, routed: false))
        }
        var owned = Array(repeating: [ChunkRange](), count: servers.count)
        for (i, c) in welcome.chunks.enumerated() { owned[welcome.chunkOwner[i]].append(c) }
        let computer = GradientComputer(config: config)
        log(name, "joined run \(runID): \(welcome.parameterCount) parameters on \(servers.count) servers")
        var lastHeard = Date()
        var pushMessages = 0

        func expect(_ m: Messenger, _ what: String) throws -> Incoming {
            guard let reply = try m.receive(timeout: timeout) else { throw ClusterError("\(name): no \(what) within \(Int(timeout)) s") }
            if case let .error(_, message) = reply.envelope.body { throw ClusterError("\(name): \(what) failed: \(message)") }
            return reply
        }

        while true {
            guard let msg = try control.receive(timeout: welcome.heartbeatSeconds, onInvalid: { log(name, "dropped: \($0)") }) else {
                if Date().timeIntervalSince(lastHeard) > timeout { throw ClusterError("\(name): the coordinator has been silent for \(Int(timeout)) s") }
                continue
            }
            lastHeard = Date()
            switch msg.envelope.body {
            case let .work(unit):
                if let failAtStep, unit.step == failAtStep, !unit.scoreOnly {
                    log(name, "fault injection: exiting at step \(unit.step + 1)")
                    exit(3)
                }
                let t0 = Date()
                // Pull every chunk at the unit's version.
                for (s, server) in servers.enumerated() where !owned[s].isEmpty {
                    try server.send(.pull(version: unit.version, chunks: owned[s].map(\.chunk)))
                }
                for (s, server) in servers.enumerated() where !owned[s].isEmpty {
                    let reply = try expect(server, "pull from server \(s)")
                    guard case let .pullReply(_, ids, _) = reply.envelope.body, ids.count == reply.tensors.count else {
                        throw ClusterError("\(name): unexpected reply to a pull: \(reply.envelope.body)")
                    }
                    for (id, frame) in zip(ids, reply.tensors) {
                        let c = welcome.chunks[id]
                        guard frame.floatCount == c.count else { throw ClusterError("\(name): chunk \(id) arrived with \(frame.floatCount) values") }
                        frame.copyFloats(into: parameters.baseAddress + c.offset)
                    }
                }
                let t1 = Date()
                computer.microBatchTokens = max(1, unit.microBatchTokens)
                let examples = unit.examples.enumerated().map { i, e in
                    Example(sequences: e.sequences.map { TokenSequence(tokens: $0.tokens, promptLength: $0.promptLength) },
                            refChosen: e.reference?.chosen, refRejected: e.reference?.rejected, line: i + 1)
                }
                var report: StepReport
                if unit.scoreOnly {
                    let scores = computer.scores(parameters: parameters.baseAddress, examples: examples)
                    report = StepReport(step: unit.step, lossSum: 0, examples: examples.count, tokens: scores.reduce(0) { $0 + $1.tokens },
                                        metricSums: [:], sequenceLogps: scores.map(\.logp))
                } else {
                    gradients.zero()
                    let objective = try unit.objective.objective()
                    // Push each chunk as soon as backward has finished every parameter in it: the
                    // send only queues the frame (no copy), so compute continues while it travels.
                    var pushed = Set<Int>()
                    pushMessages = 0
                    func push(from frontier: Int) throws {
                        for (s, server) in servers.enumerated() {
                            let ready = owned[s].filter { $0.offset >= frontier && !pushed.contains($0.chunk) }
                            guard !ready.isEmpty else { continue }
                            try server.send(.push(step: unit.step, chunks: ready.map(\.chunk), worker: welcome.index),
                                            tensors: ready.map { OutgoingTensor(pointer: gradients.baseAddress + $0.offset, count: $0.count, owner: gradients) })
                            pushMessages += 1
                            pushed.formUnion(ready.map(\.chunk))
                        }
                    }
                    var pushError: Error?
                    let result = examples.isEmpty ? ObjectiveResult()
                        : try computer.accumulate(parameters: parameters.baseAddress, gradients: gradients.baseAddress,
                                                  examples: examples, objective: objective, normalizer: unit.normalizer,
                                                  gradientsFinal: { frontier in
                                                      do { try push(from: frontier) } catch { pushError = error }
                                                  })
                    if let pushError { throw pushError }
                    try push(from: 0)
                    report = StepReport(step: unit.step, lossSum: result.lossSum, examples: result.examples, tokens: result.tokens,
                                        metricSums: result.metricSums)
                }
                let t2 = Date()
                if !unit.scoreOnly {
                    // One acknowledgement per push message, from whichever server it went to.
                    var acks = 0
                    while acks < pushMessages {
                        let ready = try poll(servers.map(\.socket), timeout: timeout)
                        guard ready.contains(true) else { throw ClusterError("\(name): no push acknowledgement within \(Int(timeout)) s") }
                        for (s, server) in servers.enumerated() where ready[s] {
                            _ = try expect(server, "push acknowledgement from server \(s)")
                            acks += 1
                        }
                    }
                }
                let t3 = Date()
                report.computeSeconds = t2.timeIntervalSince(t1)
                report.communicationSeconds = t1.timeIntervalSince(t0) + t3.timeIntervalSince(t2)
                try control.send(.stepReport(report))
            case let .shutdown(reason):
                log(name, "shutting down: \(reason)")
                return
            case let .error(_, message):
                throw ClusterError("\(name): coordinator error: \(message)")
            default:
                continue
            }
        }
    }
}

extension ObjectiveSpec {
    /// The objective this spec names.
    public func objective() throws -> Objective {
        switch name {
        case "sft": return .sft
        case "redi": return .redi(c: chosenWeight, alpha: alpha, gamma: gamma)
        case "dpo": return .dpo(beta: beta)
        case "simpo": return .simpo(beta: beta, gamma: gamma ?? 1)
        default: throw ClusterError("unknown objective \"\(name)\"")
        }
    }

    public init(_ objective: Objective) {
        switch objective {
        case .sft: self.init(name: "sft")
        case let .redi(c, alpha, gamma): self.init(name: "redi", chosenWeight: c, alpha: alpha, gamma: gamma)
        case let .dpo(beta): self.init(name: "dpo", beta: beta)
        case let .simpo(beta, gamma): self.init(name: "simpo", beta: beta, gamma: gamma)
        }
    }
}
