// The self-test in its child process and the chooser's fallbacks: injected wrong results,
// crashes and hangs skip a candidate, a preset environment is kept, verdicts are cached and a
// damaged cache is ignored. The chooser runs with `apply: false`, so this test process keeps
// the kernel it started with.
import BLASKernel
import Foundation
import XCTest

final class KernelChooserTests: XCTestCase {
    let cpu = CPUFeatures.current()
    var candidates: [KernelName] { candidateKernels(for: cpu).filter(OpenBLASRuntime.has) }

    override func setUpWithError() throws {
        _ = BLASStartup.choice
        try XCTSkipIf(!OpenBLASRuntime.canSwitchKernels, "this OpenBLAS cannot switch kernels: \(OpenBLASRuntime.config)")
        XCTAssertGreaterThanOrEqual(candidates.count, 2, "features: \(cpu.kernelFeatures)")
    }

    func testTheSelfTestPassesTheRunningKernel() {
        let running = KernelName.named(OpenBLASRuntime.coreName)!
        XCTAssertTrue(KernelProbe.verify(running).isCorrect)
    }

    func testAnInjectedCrashFallsBackToTheNextCandidate() {
        let before = OpenBLASRuntime.coreName
        let choice = KernelChooser.choose(cpu: cpu, environment: [:], cacheDirectory: nil, faults: [candidates[0]: .crash], apply: false)
        XCTAssertEqual(choice.verdicts.first?.verdict, .crashed(signal: SIGILL))
        XCTAssertEqual(choice.verdicts.count, 2)
        XCTAssertEqual(choice.verdicts.last?.verdict.isCorrect, true)
        XCTAssertEqual(choice.running, candidates[1].name.lowercased())
        XCTAssertEqual(choice.reason, .selfTested(cached: false))
        XCTAssertEqual(OpenBLASRuntime.coreName, before, "apply: false leaves this process's kernel alone")
    }

    func testAnInjectedWrongResultFallsBackToTheNextCandidate() {
        let choice = KernelChooser.choose(cpu: cpu, environment: [:], cacheDirectory: nil, faults: [candidates[0]: .wrongResult], apply: false)
        guard case .wrongResult(let ratio)? = choice.verdicts.first?.verdict else { return XCTFail("\(choice.verdicts)") }
        XCTAssertGreaterThan(ratio, 1)
        XCTAssertEqual(choice.running, candidates[1].name.lowercased())
    }

    func testAHangingSelfTestTimesOutAndFallsBack() {
        // The limit applies to every candidate's self-test, so it must leave the real one room on
        // a loaded machine (a 1 s limit timed out SkylakeX's real self-test too during CI).
        let started = Date()
        XCTAssertTrue(KernelProbe.verify(candidates[1]).isCorrect)
        let limit = max(2, 5 * Date().timeIntervalSince(started))
        let choice = KernelChooser.choose(
            cpu: cpu, environment: [:], cacheDirectory: nil, faults: [candidates[0]: .hang],
            apply: false, probeTimeout: limit)
        XCTAssertEqual(choice.verdicts.first?.verdict, .timedOut)
        XCTAssertEqual(choice.running, candidates[1].name.lowercased())
    }

    func testWhenEveryCandidateFailsOpenBLASKeepsItsOwnChoice() {
        let faults = Dictionary(uniqueKeysWithValues: candidates.map { ($0, InjectedFault.crash) })
        let choice = KernelChooser.choose(cpu: cpu, environment: [:], cacheDirectory: nil, faults: faults, apply: false)
        XCTAssertEqual(choice.verdicts.count, candidates.count)
        XCTAssertEqual(choice.reason, .openBLASDefault("no candidate passed the self-test"))
        XCTAssertEqual(choice.running.lowercased(), OpenBLASRuntime.coreName.lowercased())
    }

    func testAPresetEnvironmentIsKeptAndStillSelfTested() {
        let before = OpenBLASRuntime.coreName
        let choice = KernelChooser.choose(cpu: cpu, environment: ["OPENBLAS_CORETYPE": "Prescott"], cacheDirectory: nil)
        XCTAssertEqual(choice.reason, .presetByEnvironment("OPENBLAS_CORETYPE=Prescott"))
        XCTAssertEqual(choice.running, before)
        XCTAssertEqual(OpenBLASRuntime.coreName, before, "a preset kernel is never switched")
        XCTAssertEqual(choice.verdicts.map(\.verdict.isCorrect), [true])
        let l2 = KernelChooser.choose(cpu: cpu, environment: ["OPENBLAS_L2_SIZE": "512"], cacheDirectory: nil)
        XCTAssertEqual(l2.reason, .presetByEnvironment("OPENBLAS_L2_SIZE=512"))
    }

    func testAKernelAskedForByNameOrOpenBLASsOwn() {
        let last = candidates.last!
        let named = KernelChooser.choose(cpu: cpu, environment: ["REDI_PS_BLAS_KERNEL": last.name.uppercased()], cacheDirectory: nil, apply: false)
        XCTAssertEqual(named.reason, .requested)
        XCTAssertEqual(named.running, last.name.lowercased())
        let own = KernelChooser.choose(cpu: cpu, environment: ["REDI_PS_BLAS_KERNEL": "openblas"], cacheDirectory: nil, apply: false)
        XCTAssertEqual(own.reason, .openBLASDefault("REDI_PS_BLAS_KERNEL=openblas"))
        let typo = KernelChooser.choose(cpu: cpu, environment: ["REDI_PS_BLAS_KERNEL": "Skylakx"], cacheDirectory: nil, apply: false)
        guard case .openBLASDefault(let why) = typo.reason else { return XCTFail("\(typo.reason)") }
        XCTAssertTrue(why.contains("Skylakx is not a kernel of this OpenBLAS (it has ") && why.contains(candidates[0].name), why)
    }

    func testVerdictsAreCachedAndADamagedCacheIsIgnored() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("redi-blas-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = KernelChooser.choose(cpu: cpu, environment: [:], cacheDirectory: dir, apply: false)
        XCTAssertEqual(first.reason, .selfTested(cached: false))
        let files = try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
        XCTAssertEqual(files.count, 1)
        XCTAssertEqual(KernelChooser.choose(cpu: cpu, environment: [:], cacheDirectory: dir, apply: false).reason, .selfTested(cached: true))
        try Data("{\"verdicts\": [{\"kernel\": 7".utf8).write(to: files[0])
        let again = KernelChooser.choose(cpu: cpu, environment: [:], cacheDirectory: dir, apply: false)
        XCTAssertEqual(again.reason, .selfTested(cached: false))
        XCTAssertEqual(again.running, first.running)
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(contentsOf: files[0])), "rewritten whole")
        // A verdict in an earlier format (before decode layouts) is tested again, not trusted.
        let old = """
            {"cpu": "x", "features": "x", "openblas": "x", "verdicts": [{"kernel": "\(first.running)", "verdict": {"correct": {"wholeBatch": true}}}]}
            """
        try Data(old.utf8).write(to: files[0])
        XCTAssertEqual(KernelChooser.choose(cpu: cpu, environment: [:], cacheDirectory: dir, apply: false).reason, .selfTested(cached: false))
        XCTAssertTrue(try String(contentsOf: files[0], encoding: .utf8).contains("\"layout\""))
        // Another processor's features are another file.
        _ = KernelChooser.choose(cpu: RecordedCPUs.maskedZen5, environment: [:], cacheDirectory: dir, apply: false)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).count, cpu == RecordedCPUs.maskedZen5 ? 1 : 2)
    }
}
