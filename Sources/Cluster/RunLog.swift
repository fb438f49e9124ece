// What a run writes as it goes, besides checkpoints: OUTPUT/metrics.jsonl (one JSON line per
// step and per evaluation), OUTPUT/examples.jsonl (the examples each applied step used), and
// the same scalars as TensorBoard events under OUTPUT/tensorboard/. When steps are replayed
// after a lost server, all three are cut back to the snapshot together.
import Formats
import Foundation

final class RunLog {
    private let metrics: FileHandle
    private let examples: FileHandle
    private let events: TensorBoardWriter
    private let output: String
    /// The last step logged per stage: where a stage's evaluation goes on TensorBoard's axis.
    private var lastStep: [String: Int] = [:]

    /// Where each file ended at a snapshot.
    struct Mark { let metrics: UInt64, examples: UInt64, events: UInt64 }

    /// Opens the logs in `output`: emptied when `fresh`, appended to when resuming. A resumed
    /// run gets a new TensorBoard file (TensorBoard merges the files of a directory).
    init(output: URL, fresh: Bool) throws {
        self.output = output.path
        metrics = try Self.appendable(output.appendingPathComponent("metrics.jsonl"), fresh: fresh)
        examples = try Self.appendable(output.appendingPathComponent("examples.jsonl"), fresh: fresh)
        let board = output.appendingPathComponent("tensorboard")
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
        try write { try events.write(step: step, scalars: values.sorted { $0.key < $1.key }.map { ("\(stage)/\($0.key)", $0.value) }) }
    }

    func mark() throws -> Mark {
        try Mark(metrics: metrics.offset(), examples: examples.offset(), events: events.offset())
    }

    /// Cuts every log back to `mark` (steps after it are about to be replayed).
    func rewind(to mark: Mark) throws {
        try write {
            for (file, offset) in [(metrics, mark.metrics), (examples, mark.examples)] {
                try file.truncate(atOffset: offset)
                try file.seekToEnd()
            }
            try events.truncate(atOffset: mark.events)
        }
    }

    private func write(_ body: () throws -> Void) throws {
        do { try body() } catch let e as ClusterError { throw e } catch {
            throw ClusterError("cannot write to \(output): \(error.localizedDescription)")
        }
    }

    /// Appends one JSON line; non-finite numbers are written as null. A full disk is a thrown error.
    private func append(_ line: [String: Any], to file: FileHandle) throws {
        let clean = line.mapValues { v -> Any in if let d = v as? Double, !d.isFinite { return NSNull() }; return v }
        try write { try file.write(contentsOf: try JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys, .withoutEscapingSlashes]) + Data("\n".utf8)) }
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
