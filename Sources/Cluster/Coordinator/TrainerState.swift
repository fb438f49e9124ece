// trainer_state.json: where a checkpoint stands (stage, step, epoch, data position, where the
// logs stood). Read from disk on resume, so every field is validated before it is used.
import ClusterCore
import Foundation

public struct TrainerState {
    public let stage: String
    public let step: Int, totalSteps: Int, epoch: Int, position: Int
    public let runID: String?
    /// Where metrics.jsonl, examples.jsonl and the TensorBoard file stood (nil in older checkpoints).
    let logMark: RunLog.Mark?

    /// Parses and validates the file's bytes; `path` names it in errors.
    public init(json data: Data, path: String) throws {
        guard data.count < 1 << 20, let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ClusterError("\(path): not a readable trainer_state.json")
        }
        func whole(_ key: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let n = state[key] as? NSNumber, let v = Int(exactly: n.doubleValue), range.contains(v) else {
                throw ClusterError("\(path): \(key) is \(state[key].map { "\($0)" } ?? "missing"), not a whole number in \(range)")
            }
            return v
        }
        guard let stage = state["stage"] as? String, !stage.isEmpty, stage.utf8.count <= 256 else { throw ClusterError("\(path): no stage name") }
        self.stage = stage
        totalSteps = try whole("total_steps", 1...(1 << 40))
        step = try whole("step", 0...totalSteps)
        epoch = try whole("epoch", 0...(1 << 40))
        position = try whole("data_position", 0...(1 << 40))
        runID = state["run_id"] as? String
        logMark = RunLog.Mark(json: state["log"])
    }
}
