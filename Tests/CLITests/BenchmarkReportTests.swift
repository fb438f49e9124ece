// cluster/experiments/targets.sh's table, read from what the benchmarks really print: a change
// to redi-bench's output or to the rounds line that the table can no longer read fails here,
// not half an hour into a measurement.
import Foundation
import XCTest

final class BenchmarkReportTests: CLITestCase {
    static let reports = references.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("cluster/tools/reports.py").path

    func testTheTargetsTableReadsWhatTheBenchmarksPrint() throws {
        let out = dir.appendingPathComponent("targets")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        func write(_ name: String, _ text: String) throws {
            try text.write(to: out.appendingPathComponent(name + ".txt"), atomically: true, encoding: .utf8)
        }
        // reports.py rounds as the benchmark scripts call it: round lines, then the result line.
        func rounds(_ ours: String, _ theirs: String, _ a: String, _ b: String, _ options: [String] = []) throws -> String {
            let r = try run("python3", [Self.reports, "rounds"] + options + [ours, theirs, a, b, "(tail)"])
            return r.err + r.out
        }
        // A real (tiny) sampling run: its start line names the kernel, its result line the MFU.
        let bench = Self.binary.deletingLastPathComponent().appendingPathComponent("redi-bench").path
        let sampled = try run(
            bench, ["generate", "--config", "tiny", "--tokens", "4", "--batch", "2", "--samples", "1", "--prompts", "2", "--prompt-tokens", "4"])
        let mfuText = try XCTUnwrap(sampled.out.firstMatch(of: /MFU ([0-9.]+)% of sgemm/)?.1, sampled.out)
        let mfu = try XCTUnwrap(Double(mfuText))

        try write("step", sampled.err + (try rounds("redi-ps", "pytorch eager", "160,170,180", "100,100,100")))  // 1.70x: met
        try write("generate", sampled.err + sampled.out + (try rounds("redi-ps", "transformers generate", "200,210,220", "110,110,110")))  // 1.91x: missed
        try write("efficiency-plain", try rounds("1 server + 2 workers", "single process", "93,94,95", "100,100,100", ["--percent"]))  // 94%: met
        try write("efficiency-curve", try rounds("1 server + 2 workers", "single process", "70,75,79", "100,100,100", ["--percent"]))  // 75%: missed
        try write("default", "fresh 230.0\nbuilt 95.5\n")  // met, missed

        let table = try run("python3", [Self.reports, "targets", out.path]).out
        func row(_ start: String) -> String { table.split(separator: "\n").map(String.init).first { $0.hasPrefix(start) } ?? "no row \(start) in:\n\(table)" }
        XCTAssertTrue(table.contains("BLAS: OpenBLAS") && table.contains("kernel "), table)
        XCTAssertTrue(row("training step vs PyTorch eager").contains("1.70x"), table)
        XCTAssertTrue(row("training step vs PyTorch eager").hasSuffix("met"), table)
        XCTAssertTrue(row("sampling, batch 32, vs transformers").contains("1.91x"), table)
        XCTAssertTrue(row("sampling, batch 32, vs transformers").hasSuffix("MISSED"), table)
        XCTAssertTrue(row("sampling, batch 32, of sgemm").contains(String(format: "%.1f%%", mfu)), table)
        XCTAssertTrue(row("sampling, batch 32, of sgemm").hasSuffix(mfu >= 45 ? "met" : "MISSED"), table)
        XCTAssertTrue(row("cluster efficiency, plain").contains("94%") && row("cluster efficiency, plain").hasSuffix("met"), table)
        XCTAssertTrue(row("cluster efficiency, curve").contains("75%") && row("cluster efficiency, curve").hasSuffix("MISSED"), table)
        XCTAssertTrue(row("default job, fresh clone").contains("230 s") && row("default job, fresh clone").hasSuffix("met"), table)
        XCTAssertTrue(row("default job, binaries built").contains("96 s") && row("default job, binaries built").hasSuffix("MISSED"), table)
        XCTAssertTrue(table.contains("\(mfu >= 45 ? 4 : 3) of 7 targets met"), table)

        // A benchmark that did not finish: named, and no table.
        try write("efficiency-curve", "== round 1 of 3: 1 server + 2 workers\n")
        let broken = try run("python3", [Self.reports, "targets", out.path], expect: 1)
        XCTAssertTrue(broken.err.contains("efficiency-curve.txt has no result line"), broken.err)
    }
}
