// What a run writes as it goes, besides checkpoints: OUTPUT/metrics.jsonl (one JSON line per
// step and per evaluation), OUTPUT/examples.jsonl (the examples each applied step used), and
// the same scalars as TensorBoard events under OUTPUT/tensorboard/. When steps are replayed
// after a lost server, all three are cut back to the snapshot together.
import ClusterCore
import Formats
import Foundation

final class RunLog {
    private let metrics: FileHandle
    private let examples: FileHandle
    private let events: TensorBoardWriter
    private let output: String
    /// The last step logged per stage: where a stage's evaluation goes on TensorBoard's axis.
    private var lastStep: [String: Int] = [:]

    /// Where each file ended at a snapshot or checkpoint (`eventsFile`: the TensorBoard file then written).
    struct Mark: Codable, Equatable {
        let metrics: UInt64, examples: UInt64, events: UInt64
        var eventsFile = ""

        enum CodingKeys: String, CodingKey { case metrics, examples, events, eventsFile = "events_file" }

        init(metrics: UInt64, examples: UInt64, events: UInt64, eventsFile: String = "") {
            self.metrics = metrics; self.examples = examples; self.events = events; self.eventsFile = eventsFile
        }

        /// As stored in trainer_state.json; the events file must be a TensorBoard file's bare name.
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                metrics: try c.decode(UInt64.self, forKey: .metrics), examples: try c.decode(UInt64.self, forKey: .examples),
                events: try c.decode(UInt64.self, forKey: .events), eventsFile: try c.decode(String.self, forKey: .eventsFile))
            guard eventsFile.hasPrefix("events.out.tfevents."), !eventsFile.contains("/") else {
                throw DecodingError.dataCorruptedError(forKey: .eventsFile, in: c, debugDescription: "not a TensorBoard file name")
            }
        }
    }

    /// Opens the logs in `output`: emptied when `fresh`, appended to when resuming. A resumed
    /// run gets a new TensorBoard file (TensorBoard merges the files of a directory); with
    /// `resumingAt`, every log is first cut back to where it was when that checkpoint was
    /// written, so the steps between the checkpoint and the crash are not logged twice.
    init(output: URL, fresh: Bool, resumingAt mark: Mark? = nil) throws {
        self.output = output.path
        let board = output.appendingPathComponent("tensorboard")
        if let mark, !fresh { try Self.cut(output: output, board: board, to: mark) }
        metrics = try Self.appendable(output.appendingPathComponent("metrics.jsonl"), fresh: fresh)
        examples = try Self.appendable(output.appendingPathComponent("examples.jsonl"), fresh: fresh)
        if fresh, FileManager.default.fileExists(atPath: board.path) {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: board.path)) ?? [] where name.hasPrefix("events.out.tfevents.") {
                try? FileManager.default.removeItem(at: board.appendingPathComponent(name))
            }
        }
        do { events = try TensorBoardWriter(directory: board) } catch {
            throw ClusterError("cannot create a TensorBoard file in \(board.path): \(error.localizedDescription)")
        }
    }

    /// One training step: its metrics line and TensorBoard scalars tagged STAGE/NAME.
    func step(stage: String, step: Int, epoch: Double, metrics values: [String: Double]) throws {
        var line: [String: Any] = values
        line["stage"] = stage; line["step"] = step; line["epoch"] = epoch
        try append(line, to: metrics)
        lastStep[stage] = step
        try scalars(values, stage: stage, step: step)
    }

    /// The (epoch, example id) pairs an applied step used.
    func examples(stage: String, step: Int, pairs: [[Int]]) throws {
        try append(["stage": stage, "step": step, "examples": pairs], to: examples)
    }

    /// An evaluation after `stage`: a metrics line, and scalars at the stage's last step.
    func evaluation(stage: String, problems: Int, values: [String: Double]) throws {
        var line: [String: Any] = values
        line["stage"] = stage; line["eval/problems"] = problems
        try append(line, to: metrics)
        try scalars(values, stage: stage, step: lastStep[stage] ?? 0)
    }

    /// `values` as TensorBoard scalars tagged STAGE/NAME, in name order.
    private func scalars(_ values: [String: Double], stage: String, step: Int) throws {
        try write(events.url.path) { try events.write(step: step, scalars: values.sorted { $0.key < $1.key }.map { ("\(stage)/\($0.key)", $0.value) }) }
    }

    func mark() throws -> Mark {
        try Mark(metrics: metrics.offset(), examples: examples.offset(), events: events.offset(), eventsFile: events.url.lastPathComponent)
    }

    /// Cuts metrics.jsonl and examples.jsonl to `mark`, the TensorBoard file it names to its
    /// offset, and removes TensorBoard files started after that one (by later resumed sessions).
    private static func cut(output: URL, board: URL, to mark: Mark) throws {
        func truncate(_ url: URL, _ offset: UInt64) throws {
            guard let handle = FileHandle(forUpdatingAtPath: url.path) else { return }
            defer { try? handle.close() }
            if try handle.seekToEnd() > offset { try handle.truncate(atOffset: offset) }
        }
        do {
            try truncate(output.appendingPathComponent("metrics.jsonl"), mark.metrics)
            try truncate(output.appendingPathComponent("examples.jsonl"), mark.examples)
            let kept = TensorBoardWriter.startOrder(mark.eventsFile)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: board.path)) ?? []
            where name.hasPrefix("events.out.tfevents.") && name != mark.eventsFile && TensorBoardWriter.startOrder(name) >= kept {
                try FileManager.default.removeItem(at: board.appendingPathComponent(name))
            }
            try truncate(board.appendingPathComponent(mark.eventsFile), mark.events)
        } catch {
            throw ClusterError("cannot cut the logs in \(output.path) back to the checkpoint: \(error.localizedDescription)")
        }
    }

    /// Cuts every log back to `mark` (steps after it are about to be replayed).
    func rewind(to mark: Mark) throws {
        try write("the logs in \(output)") {
            for (file, offset) in [(metrics, mark.metrics), (examples, mark.examples)] {
                try file.truncate(atOffset: offset)
                try file.seekToEnd()
            }
            try events.truncate(atOffset: mark.events)
        }
    }

    /// Runs a write; a failure (a full disk) names `what` was being written.
    private func write(_ what: String, _ body: () throws -> Void) throws {
        do { try body() } catch let e as ClusterError { throw e } catch {
            throw ClusterError("cannot write \(what): \(error.localizedDescription)")
        }
    }

    /// Appends one JSON line; non-finite numbers are written as null. A full disk is a thrown error.
    private func append(_ line: [String: Any], to file: FileHandle) throws {
        let clean = line.mapValues { v -> Any in
            if let d = v as? Double, !d.isFinite { return NSNull() }; return v
        }
        try write("\(output)/\(file === metrics ? "metrics.jsonl" : "examples.jsonl")") {
            try file.write(contentsOf: try JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys, .withoutEscapingSlashes]) + Data("\n".utf8))
        }
    }

    private static func appendable(_ url: URL, fresh: Bool) throws -> FileHandle {
        if fresh || !FileManager.default.fileExists(atPath: url.path) {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else { throw ClusterError("cannot create \(url.path)") }
        }
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        return handle
    }
}
