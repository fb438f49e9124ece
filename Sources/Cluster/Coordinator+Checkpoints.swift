// The coordinator's durable state: checkpoints that transformers opens plus AdamW state and
// the data position (trainer_state.json) to resume from, in-memory snapshots a lost server's
// steps are replayed from, and finding the newest checkpoint of a run.
import Data
import Evaluation
import Formats
import Foundation
import Model
import Numerics
import Objectives
import ReasoningTask
import Tokenizers
import Transport
import Wire

extension Coordinator {
    /// The newest complete checkpoint under `out`: the latest stage of the recipe, then the highest step.
    func latestCheckpoint(in out: URL) throws -> String {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
        var best: (stage: Int, step: Int, path: String)?
        for entry in entries {
            let dir = out.appendingPathComponent(entry)
            guard let data = try? Data(contentsOf: dir.appendingPathComponent("trainer_state.json")),
                  let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let stageName = state["stage"] as? String, let step = state["step"] as? Int,
                  let stage = recipe.stages.firstIndex(where: { $0.name == stageName }),
                  FileManager.default.fileExists(atPath: dir.appendingPathComponent("optimizer.safetensors").path),
                  FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path) else { continue }
            if best == nil || (stage, step) > (best!.stage, best!.step) { best = (stage, step, dir.path) }
        }
        guard let best else { throw ClusterError("--resume latest: no complete checkpoint (trainer_state.json + optimizer.safetensors) in \(out.path)") }
        say("resuming from the newest checkpoint, \(best.path)")
        return best.path
    }

    func loadResumePoint(_ path: String, into parameters: FloatBuffer) throws -> ResumePoint {
        let dir = URL(fileURLWithPath: path)
        guard let data = try? Data(contentsOf: dir.appendingPathComponent("trainer_state.json")),
              let state = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let stageName = state["stage"] as? String, let step = state["step"] as? Int,
              let epoch = state["epoch"] as? Int, let position = state["data_position"] as? Int else {
            throw ClusterError("\(path): no readable trainer_state.json to resume from")
        }
        guard let stage = recipe.stages.firstIndex(where: { $0.name == stageName }) else {
            throw ClusterError("\(path): stage \"\(stageName)\" is not in this recipe")
        }
        let checkpoint = try Checkpoint.load(from: dir)
        guard checkpoint.parameters.count == parameters.count else {
            throw ClusterError("\(path): \(checkpoint.parameters.count) parameters, the recipe's model has \(parameters.count)")
        }
        parameters.copy(from: checkpoint.parameters)
        let optimizer = try SafetensorsFile(url: dir.appendingPathComponent("optimizer.safetensors"))
        let m = FloatBuffer(count: parameters.count), v = FloatBuffer(count: parameters.count)
        for (name, buffer) in [("exp_avg", m), ("exp_avg_sq", v)] {
            guard optimizer.tensors[name]?.count == parameters.count else { throw ClusterError("\(path): optimizer.safetensors lacks \(name)") }
            try optimizer.read(name, into: buffer.baseAddress)
        }
        return ResumePoint(stage: stage, step: step, epoch: epoch, position: position, m: m, v: v, directory: dir)
    }

    /// Weights, AdamW state and data position at a step boundary, held by the coordinator.
    struct Snapshot {
        let step: Int, epoch: Int, position: Int
        let order: [Int]
        let weights: FloatBuffer, m: FloatBuffer, v: FloatBuffer
        let logMark: RunLog.Mark?
    }

    func takeSnapshot(step: Int, order: [Int], position: Int, epoch: Int, reusing old: Snapshot?) throws -> Snapshot {
        let count = plan.chunks.last.map { $0.offset + $0.count } ?? 0
        let weights = old?.weights ?? FloatBuffer(count: count), m = old?.m ?? FloatBuffer(count: count), v = old?.v ?? FloatBuffer(count: count)
        try pullWeights(into: weights, optimizer: (m, v))
        return Snapshot(step: step, epoch: epoch, position: position, order: order, weights: weights, m: m, v: v,
                        logMark: try runLog?.mark())
    }

    /// The reference log-probabilities a DPO stage saved at its start (chosen, rejected per example).
    func loadReferenceScores(_ url: URL, count: Int) throws -> [Double] {
        guard let data = try? Data(contentsOf: url) else {
            throw ClusterError("cannot resume the DPO stage: \(url.path) (the reference log-probabilities from the stage's start) is missing")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let values = object["logps"] as? [Any],
              values.count == count else {
            throw ClusterError("\(url.path): expected \(count) reference log-probabilities for this stage's data")
        }
        return try values.map { v in
            guard let d = (v as? NSNumber)?.doubleValue, d.isFinite, d <= 0 else { throw ClusterError("\(url.path): \(v) is not a log-probability") }
            return d
        }
    }

    /// Writes a checkpoint of the servers' state, or of `snapshot` when one was just taken
    /// at this step (the state is then not pulled a second time).
    @discardableResult
    func checkpoint(stage: String, step: Int, of total: Int, epoch: Int, position: Int, config: LlamaConfig, parameters: FloatBuffer,
                    tokenizer: any Tokenizer, name: String, snapshot: Snapshot? = nil) throws -> String {
        let m: FloatBuffer, v: FloatBuffer
        if let snapshot, snapshot.step == step {
            parameters.copy(from: snapshot.weights)
            (m, v) = (snapshot.m, snapshot.v)
        } else {
            (m, v) = (FloatBuffer(count: parameters.count), FloatBuffer(count: parameters.count))
            try pullWeights(into: parameters, optimizer: (m, v))
        }
        keepAlive()
        let dir = URL(fileURLWithPath: recipe.output).appendingPathComponent(name)
        try Checkpoint.write(to: dir, config: config, parameters: parameters.baseAddress, tokenizer: tokenizer)
        keepAlive()
        // AdamW state beside the model, as flat vectors in the parameter layout, for resuming.
        try writeSafetensors([TensorToWrite(name: "exp_avg", shape: [m.count], values: m.baseAddress),
                              TensorToWrite(name: "exp_avg_sq", shape: [v.count], values: v.baseAddress)],
                             metadata: ["format": "pt", "optimizer": "adamw", "optimizer_step": String(step)],
                             to: dir.appendingPathComponent("optimizer.safetensors"))
        let state: [String: Any] = ["stage": stage, "step": step, "total_steps": total, "epoch": epoch, "data_position": position,
                                    "optimizer_step": step, "seed": recipe.seed, "run_id": recipe.runID, "parameter_version": version]
        if let referenceScores {
            try JSONSerialization.data(withJSONObject: ["stage": stage, "logps": referenceScores])
                .write(to: dir.appendingPathComponent("reference_logps.json"), options: .atomic)
        }
        try JSONSerialization.data(withJSONObject: state, options: [.prettyPrinted, .sortedKeys])
            .write(to: dir.appendingPathComponent("trainer_state.json"))
        say("checkpoint \(dir.path)")
        return dir.path
    }
}
