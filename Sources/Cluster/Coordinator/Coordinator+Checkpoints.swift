// The coordinator's durable state: checkpoints that transformers opens plus AdamW state and
// the data position (trainer_state.json) to resume from, and finding the newest checkpoint of a run.
import ClusterCore
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
    /// The newest checkpoint under `out` that verifies against its manifest: the latest stage
    /// of the recipe, then the highest step. Damaged or unfinished ones are skipped, saying why.
    func latestCheckpoint(in out: URL) throws -> String {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
        var candidates: [(stage: Int, step: Int, path: String)] = []
        for entry in entries {
            let dir = out.appendingPathComponent(entry)
            let statePath = dir.appendingPathComponent("trainer_state.json").path
            guard let data = FileManager.default.contents(atPath: statePath) else { continue }
            guard let state = try? TrainerState(json: data, path: statePath),
                let stage = recipe.stages.firstIndex(where: { $0.name == state.stage })
            else {
                say("skipping checkpoint \(dir.path): its trainer_state.json is unreadable or of another recipe")
                continue
            }
            candidates.append((stage, state.step, dir.path))
        }
        for c in candidates.sorted(by: { ($0.stage, $0.step, $0.path) > ($1.stage, $1.step, $1.path) }) {
            do {
                try CheckpointManifest.verify(URL(fileURLWithPath: c.path))
            } catch {
                say("skipping checkpoint \(c.path): \(error)")
                continue
            }
            say("resuming from the newest checkpoint that verifies, \(c.path)")
            return c.path
        }
        throw ClusterError("--resume latest: no checkpoint in \(out.path) verifies against its manifest\(candidates.isEmpty ? " (there is none)" : "")")
    }

    /// `save_total_limit`: removes the oldest step checkpoints (`STAGE-stepN`, in recipe stage
    /// order, then step) beyond the limit; stage checkpoints stay.
    func pruneStepCheckpoints() throws {
        guard let limit = recipe.saveTotalLimit else { return }
        let out = URL(fileURLWithPath: recipe.output)
        var steps: [(stage: Int, step: Int, url: URL)] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? [] {
            guard let dash = entry.range(of: "-step", options: .backwards), let step = Int(entry[dash.upperBound...]),
                let stage = recipe.stages.firstIndex(where: { $0.name == entry[..<dash.lowerBound] })
            else { continue }
            steps.append((stage, step, out.appendingPathComponent(entry)))
        }
        for old in steps.sorted(by: { ($0.stage, $0.step) < ($1.stage, $1.step) }).dropLast(limit) {
            try FileManager.default.removeItem(at: old.url)
            say("removed checkpoint \(old.url.path) (save_total_limit \(limit))")
        }
    }

    /// A checkpoint to resume from, after verifying every file against its manifest (`verified`:
    /// already done) and every field of trainer_state.json: where the run stood, a reader of its
    /// weights and its optimizer file (both read as they are loaded into the servers).
    func loadResumePoint(_ path: String, config: LlamaConfig, verified: Bool) throws -> (ResumePoint, ModelReader, SafetensorsFile) {
        let dir = URL(fileURLWithPath: path)
        if !verified {
            do { try CheckpointManifest.verify(dir) } catch { throw ClusterError("cannot resume from \(path): \(error)") }
        }
        let statePath = dir.appendingPathComponent("trainer_state.json").path
        guard let data = FileManager.default.contents(atPath: statePath) else { throw ClusterError("\(statePath): missing") }
        let state = try TrainerState(json: data, path: statePath)
        guard let stage = recipe.stages.firstIndex(where: { $0.name == state.stage }) else {
            throw ClusterError("\(path): stage \"\(state.stage)\" is not in this recipe")
        }
        if let runID = state.runID, runID != recipe.runID {
            throw ClusterError("\(path) belongs to run \(runID), not \(recipe.runID)")
        }
        let reader = try Checkpoint.reader(dir)
        let count = ParameterLayout(config: config).totalCount
        guard reader.layout.totalCount == count else {
            throw ClusterError("\(path): \(reader.layout.totalCount) parameters, the recipe's model has \(count)")
        }
        let optimizer = try SafetensorsFile(url: dir.appendingPathComponent("optimizer.safetensors"))
        for name in ["exp_avg", "exp_avg_sq"] + (optimizer.tensors["master_weights"] != nil ? ["master_weights"] : []) {
            guard optimizer.tensors[name]?.count == count else { throw ClusterError("\(path): optimizer.safetensors lacks \(name) for \(count) parameters") }
        }
        return (
            ResumePoint(
                stage: stage, step: state.step, totalSteps: state.totalSteps, epoch: state.epoch, position: state.position,
                directory: dir, logMark: state.logMark), reader, optimizer
        )
    }

    /// One pulled chunk (weights, m, v frames) into a checkpoint, after checking it is finite.
    private func write(chunk id: Int, _ frames: ArraySlice<ReceivedFrame>, from server: [UInt8], into writer: CheckpointWriter) throws {
        let c = plan.chunks[id], range = c.offset..<(c.offset + c.count)
        let (w, m, v) = (frames[frames.startIndex], frames[frames.startIndex + 1], frames[frames.startIndex + 2])
        guard [w, m, v].allSatisfy({ allFinite($0.floats) }) else { throw ClusterError("\(name(of: server)) sent non-finite values for chunk \(id)") }
        try writer.write(range, weights: w.floats, m: m.floats, v: v.floats)
    }

    /// The reference log-probabilities a DPO stage saved at its start (chosen, rejected per example).
    func loadReferenceScores(_ url: URL, count: Int) throws -> [Double] {
        guard let data = try? Data(contentsOf: url) else {
            throw ClusterError("cannot resume the DPO stage: \(url.path) (the reference log-probabilities from the stage's start) is missing")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let values = object["logps"] as? [Any],
            values.count == count
        else {
            throw ClusterError("\(url.path): expected \(count) reference log-probabilities for this stage's data")
        }
        return try values.map { v in
            guard let d = (v as? NSNumber)?.doubleValue, d.isFinite, d <= 0 else { throw ClusterError("\(url.path): \(v) is not a log-probability") }
            return d
        }
    }

    /// Writes a checkpoint of the servers' state, streamed from them in rounds of at most
    /// `ChunkPlan.roundBytes` a server straight into the files: never the whole model in this process.
    @discardableResult
    func checkpoint(
        stage: String, step: Int, of total: Int, epoch: Int, position: Int, config: LlamaConfig,
        tokenizer: any Tokenizer, references: [Double]? = nil, name: String
    ) throws -> String {
        keepAlive()
        let dir = URL(fileURLWithPath: recipe.output).appendingPathComponent(name)
        // The old manifest goes first: until the new one is written last, the checkpoint does not verify.
        try? FileManager.default.removeItem(at: dir.appendingPathComponent(CheckpointManifest.fileName))
        // AdamW state beside the model, as flat vectors in the parameter layout, for resuming; with a
        // bfloat16 model, the fp32 weights too (resuming from rounded weights would change the run).
        let writer = try CheckpointWriter(
            directory: dir, config: config, tokenizer: tokenizer, dtype: recipe.saveDType, maxShardBytes: recipe.maxShardBytes,
            optimizer: ["format": "pt", "optimizer": "adamw", "optimizer_step": String(step)])
        try relayRounds(perChunk: 3, ask: { .pull(version: version.number, chunks: $0, optimizerState: true) }) { s, ids, frames in
            for (k, id) in ids.enumerated() { try write(chunk: id, frames[(3 * k)..<(3 * k + 3)], from: servers[s], into: writer) }
            keepAlive()
            return nil
        }
        try writer.finish()
        keepAlive()
        // With where the logs stood: a resumed run cuts them back there.
        let state = TrainerState(
            stage: stage, step: step, totalSteps: total, epoch: epoch, position: position, runID: recipe.runID,
            logMark: try runLog?.mark(), seed: recipe.seed, parameterVersion: version.number)
        if let references {
            try writeAtomically(
                try JSONSerialization.data(withJSONObject: ["stage": stage, "logps": references]),
                to: dir.appendingPathComponent("reference_logps.json"))
        }
        try writeAtomically(try state.json(), to: dir.appendingPathComponent("trainer_state.json"))
        keepAlive()
        try CheckpointManifest.write(in: dir, facts: ["stage": stage, "step": step, "run_id": recipe.runID])
        say("checkpoint \(dir.path)")
        try pruneStepCheckpoints()
        return dir.path
    }
}
