// trainer_state.json: where a checkpoint stands (stage, step, epoch, data position, where the
// logs stood). One Codable type writes it and reads it back; read from disk on resume, so
// every field is validated before it is used.
import ClusterCore
import Foundation

public struct TrainerState: Codable, Equatable {
    public let stage: String
    public let step: Int, totalSteps: Int, epoch: Int, position: Int
    /// AdamW steps taken (one per training step), the recipe's seed and the parameter version
    /// at the checkpoint: written for people and tools reading the file, not read back.
    public var optimizerStep: Int?, seed: UInt64?, parameterVersion: Int?
    public let runID: String?
    /// Where metrics.jsonl, examples.jsonl and the TensorBoard file stood (nil in older
    /// checkpoints, and when unreadable: the logs are then kept as they are).
    let logMark: RunLog.Mark?

    enum CodingKeys: String, CodingKey {
        case stage, step, totalSteps = "total_steps", epoch, position = "data_position", optimizerStep = "optimizer_step", seed
        case runID = "run_id", parameterVersion = "parameter_version", logMark = "log"
    }

    init(
        stage: String, step: Int, totalSteps: Int, epoch: Int, position: Int, runID: String?, logMark: RunLog.Mark?,
        seed: UInt64? = nil, parameterVersion: Int? = nil
    ) {
        self.stage = stage; self.step = step; self.totalSteps = totalSteps; self.epoch = epoch; self.position = position
        self.runID = runID; self.logMark = logMark; self.seed = seed; self.parameterVersion = parameterVersion
        optimizerStep = step
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        /// A JSON number that must be whole (decoding 2.5 as an Int would not say which key).
        func whole(_ key: CodingKeys) throws -> Int {
            let value = try c.decode(Double.self, forKey: key)
            guard let v = Int(exactly: value) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "is \(value), not a whole number")
            }
            return v
        }
        stage = try c.decode(String.self, forKey: .stage)
        step = try whole(.step)
        totalSteps = try whole(.totalSteps)
        epoch = try whole(.epoch)
        position = try whole(.position)
        optimizerStep = try? c.decodeIfPresent(Int.self, forKey: .optimizerStep)
        seed = try? c.decodeIfPresent(UInt64.self, forKey: .seed)
        parameterVersion = try? c.decodeIfPresent(Int.self, forKey: .parameterVersion)
        runID = try c.decodeIfPresent(String.self, forKey: .runID)
        logMark = try? c.decodeIfPresent(RunLog.Mark.self, forKey: .logMark)
    }

    /// Parses and validates the file's bytes; `path` names it in errors.
    public init(json data: Data, path: String) throws {
        guard data.count < 1 << 20 else { throw ClusterError("\(path): not a readable trainer_state.json (over 1 MiB)") }
        do {
            self = try JSONDecoder().decode(Self.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ClusterError("\(path): \(key.stringValue) is missing")
        } catch let DecodingError.typeMismatch(_, context) where !context.codingPath.isEmpty {
            throw ClusterError("\(path): \(context.codingPath.map(\.stringValue).joined(separator: ".")) is not a number or a string as expected")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            throw ClusterError("\(path): \(context.codingPath.map(\.stringValue).joined(separator: ".")) \(context.debugDescription)")
        } catch {
            throw ClusterError("\(path): not a readable trainer_state.json")
        }
        guard !stage.isEmpty, stage.utf8.count <= 256 else { throw ClusterError("\(path): no stage name") }
        func check(_ key: CodingKeys, _ value: Int, _ range: ClosedRange<Int>) throws {
            guard range.contains(value) else { throw ClusterError("\(path): \(key.stringValue) is \(value), not a whole number in \(range)") }
        }
        try check(.totalSteps, totalSteps, 1...(1 << 40))
        try check(.step, step, 0...totalSteps)
        try check(.epoch, epoch, 0...(1 << 40))
        try check(.position, position, 0...(1 << 40))
    }

    /// The file's bytes: sorted keys, indented.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}
