// Every process says which BLAS kernel it runs and why, and the machine report agrees; where
// the environment presets OPENBLAS_CORETYPE (this test never sets or unsets it), it was kept.
import Foundation
import XCTest

final class DoctorTests: CLITestCase {
    /// The kernel named in a start line ("…, kernel Haswell (…").
    func kernel(inStartLine text: String, program: String) throws -> String {
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("\(program): BLAS OpenBLAS") }, "no start line in:\n\(text)")
        let after = try XCTUnwrap(line.range(of: ", kernel "), String(line))
        return String(line[after.upperBound...].prefix { $0 != " " })
    }

    func testEveryProcessReportsTheKernelItRunsAndKeepsAPresetOne() throws {
        let (out, err, _) = try redi("doctor", "--quick", "--config", "tiny")
        let kernel = try kernel(inStartLine: err, program: "redi-ps")
        XCTAssertTrue(out.contains("kernel: \(kernel) ("), out)
        XCTAssertTrue(err.contains("sgemm") && err.contains("GFLOP/s at 512×1536×576"), err)
        for section in ["CPU: ", "OpenBLAS: OpenBLAS", "sgemm at the model's shapes, training, 512 tokens", "decoding, 32 rows", "memcpy: "] {
            XCTAssertTrue(out.contains(section), "no '\(section)' in:\n\(out)")
        }
        if let preset = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !preset.isEmpty {
            XCTAssertEqual(kernel.lowercased(), preset.lowercased(), "a preset OPENBLAS_CORETYPE is kept")
            XCTAssertTrue(err.contains("OPENBLAS_CORETYPE=\(preset)") && err.contains("set by the environment: kept"), err)
        } else if ProcessInfo.processInfo.environment["OPENBLAS_L2_SIZE"]?.isEmpty == false {
            XCTAssertTrue(err.contains("set by the environment: kept"), err)
        } else {
            XCTAssertTrue(err.contains("chosen for") || err.contains("OpenBLAS's own choice"), err)
        }
        // A worker that cannot reach its coordinator still said which kernel it would run.
        let worker = Self.binary.deletingLastPathComponent().appendingPathComponent("redi-worker").path
        let key = dir.appendingPathComponent("run.key").path
        try redi("keys", "--out", key)
        let (_, workerErr, status) = try run(worker, ["join", "--coordinator", "tcp://127.0.0.1:9", "--key", key, "--timeout", "1"], expect: 1)
        XCTAssertEqual(status, 1)
        XCTAssertEqual(try self.kernel(inStartLine: workerErr, program: "redi-worker"), kernel)
    }
}
