// trainer_state.json read back as a hostile file: what redi-ps writes reads back the same,
// every field out of range or of the wrong type is an error naming it, and an unreadable log
// mark only costs the log cut (the checkpoint still resumes).
import ClusterCoordinator
import Foundation
import XCTest

final class TrainerStateTests: XCTestCase {
    let path = "/run/sft-step2/trainer_state.json"
    let written = """
        {"stage": "sft", "step": 2, "total_steps": 4, "epoch": 1, "data_position": 24, "optimizer_step": 2, "seed": 3,
         "run_id": "e2e", "parameter_version": 3,
         "log": {"metrics": 400, "examples": 200, "events": 1000, "events_file": "events.out.tfevents.1700000000.host"}}
        """

    func state(_ text: String) throws -> TrainerState { try TrainerState(json: Data(text.utf8), path: path) }

    func error(_ text: String) -> String {
        do {
            _ = try state(text)
            return "no error"
        } catch { return "\(error)" }
    }

    func testWhatIsWrittenReadsBackTheSame() throws {
        let s = try state(written)
        XCTAssertEqual([s.stage, s.runID], ["sft", "e2e"])
        XCTAssertEqual([s.step, s.totalSteps, s.epoch, s.position, s.optimizerStep, s.parameterVersion], [2, 4, 1, 24, 2, 3])
        XCTAssertEqual(s.seed, 3)
        let again = try TrainerState(json: try s.json(), path: path)
        XCTAssertEqual(again, s)
        let keys = try XCTUnwrap(try JSONSerialization.jsonObject(with: try s.json()) as? [String: Any]).keys.sorted()
        XCTAssertEqual(keys, ["data_position", "epoch", "log", "optimizer_step", "parameter_version", "run_id", "seed", "stage", "step", "total_steps"])
    }

    func testFieldsOutOfRangeOrMistypedAreErrorsNamingThem() {
        func with(_ field: String, _ value: String) -> String {
            error(written.replacingOccurrences(of: "\"\(field)\": ", with: "\"\(field)\": \(value), \"was_\(field)\": "))
        }
        XCTAssertTrue(with("data_position", "-5").contains("data_position is -5"), with("data_position", "-5"))
        XCTAssertTrue(with("step", "1000000").contains("step is 1000000, not a whole number in 0...4"), with("step", "1000000"))
        XCTAssertTrue(with("total_steps", "0").contains("total_steps is 0"), with("total_steps", "0"))
        XCTAssertTrue(with("epoch", "\"one\"").contains("epoch is not a number"), with("epoch", "\"one\""))
        XCTAssertTrue(with("step", "2.5").contains("step is 2.5, not a whole number"), with("step", "2.5"))
        XCTAssertTrue(with("stage", "\"\"").contains("no stage name"), with("stage", "\"\""))
        XCTAssertTrue(error("{\"stage\": \"sft\"}").contains("is missing"), error("{\"stage\": \"sft\"}"))
        XCTAssertTrue(error("[1, 2]").contains("not a readable trainer_state.json"), error("[1, 2]"))
        XCTAssertTrue(error("{").contains(path), error("{"))
        XCTAssertTrue(error(String(repeating: " ", count: 1 << 20)).contains("over 1 MiB"))
    }

    /// Older checkpoints have no log mark, and a mark naming a path outside the run is not
    /// followed: both resume, keeping the logs as they are.
    func testAMissingOrHostileLogMarkIsDroppedNotFatal() throws {
        let noLog = try state(#"{"stage": "sft", "step": 2, "total_steps": 4, "epoch": 1, "data_position": 24}"#)
        XCTAssertNil(noLog.runID)
        XCTAssertEqual(noLog.step, 2)
        let hostile = try state(written.replacingOccurrences(of: "events.out.tfevents.1700000000.host", with: "../../etc/passwd"))
        XCTAssertNotEqual(hostile, try state(written))
        XCTAssertEqual(hostile.step, 2)
        let reencoded = try XCTUnwrap(try JSONSerialization.jsonObject(with: try hostile.json()) as? [String: Any])
        XCTAssertNil(reencoded["log"], "a dropped mark is not written back")
    }
}
