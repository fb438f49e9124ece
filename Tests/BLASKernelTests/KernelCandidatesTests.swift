// The feature-to-kernel mapping over /proc/cpuinfo flag sets recorded on real processors
// (abridged to the lines that matter), and the speed warning's thresholds.
import BLASKernel
import Foundation
import XCTest

enum RecordedCPUs {
    static let base = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx lm"
    static func x86(_ vendor: String, _ name: String, family: Int, model: Int, _ flags: String, mhz: Double = 2600) -> CPUFeatures {
        CPUFeatures(
            cpuinfo: """
                processor\t: 0
                vendor_id\t: \(vendor)
                cpu family\t: \(family)
                model\t\t: \(model)
                model name\t: \(name)
                cpu MHz\t\t: \(mhz)
                flags\t\t: \(base) \(flags)
                processor\t: 1
                """, architecture: .x86_64)
    }
    static let sandyBridge = " pni pclmulqdq ssse3 cx16 pcid sse4_1 sse4_2 x2apic popcnt aes xsave avx lahf_lm"
    static let haswell = sandyBridge + " fma movbe f16c rdrand abm fsgsbase bmi1 avx2 smep bmi2 erms invpcid"
    static let skylake = haswell + " 3dnowprefetch hle rtm mpx rdseed adx smap clflushopt xsaveopt xsavec xgetbv1 xsaves"
    static let avx512 = " avx512f avx512dq avx512cd avx512bw avx512vl"
    static let zen3 = haswell + " cmp_legacy svm extapic cr8_legacy sse4a misalignsse topoext rdseed adx smap clflushopt clwb sha_ni vaes vpclmulqdq rdpid"
    static let zen4 = zen3 + avx512 + " avx512ifma avx512_bf16 avx512vbmi avx512_vbmi2 gfni avx512_vnni avx512_bitalg avx512_vpopcntdq"

    /// A cloud VM's Xeon with AVX-512 and AVX512_BF16 whose model name is masked (the machine).
    static let maskedXeon = x86(
        "GenuineIntel", "Intel(R) Xeon(R) Processor", family: 6, model: 143,
        skylake + avx512 + " clwb avx512ifma sha_ni avx_vnni avx512_bf16 avx512vbmi amx_bf16 amx_tile amx_int8")
    static let epyc7763 = x86("AuthenticAMD", "AMD EPYC 7763 64-Core Processor", family: 25, model: 1, zen3)
    static let epyc9654 = x86("AuthenticAMD", "AMD EPYC 9654 96-Core Processor", family: 25, model: 17, zen4)
    /// Zen 5 in a VM that masks the name (family 26, which OpenBLAS 0.3.21 predates).
    static let maskedZen5 = x86("AuthenticAMD", "AMD EPYC", family: 26, model: 2, zen4 + " avx_vnni avx512_vp2intersect")
    static let skylakeClient = x86("GenuineIntel", "Intel(R) Core(TM) i7-6700 CPU @ 3.40GHz", family: 6, model: 94, skylake)
    static let skylakeServer = x86("GenuineIntel", "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", family: 6, model: 85, skylake + avx512 + " clwb")
    static let haswellServer = x86("GenuineIntel", "Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz", family: 6, model: 63, haswell)
    static let sandyBridgeServer = x86("GenuineIntel", "Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", family: 6, model: 45, sandyBridge)
    /// Xeon Phi: AVX-512 F and CD without BW/VL, so not the class SkylakeX kernels need.
    static let knightsLanding = x86(
        "GenuineIntel", "Intel(R) Xeon Phi(TM) CPU 7250 @ 1.40GHz", family: 6, model: 87,
        haswell + " avx512f avx512pf avx512er avx512cd")
    static let westmere = x86(
        "GenuineIntel", "Intel(R) Xeon(R) CPU X5670 @ 2.93GHz", family: 6, model: 44,
        " pni pclmulqdq ssse3 cx16 sse4_1 sse4_2 popcnt aes lahf_lm")
    static let graviton2 = CPUFeatures(
        cpuinfo: """
            processor\t: 0
            Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
            CPU implementer\t: 0x41
            CPU part\t: 0xd0c
            """, architecture: .aarch64)
    static let graviton3 = CPUFeatures(
        cpuinfo: """
            processor\t: 0
            Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng
            CPU implementer\t: 0x41
            CPU part\t: 0xd40
            """, architecture: .aarch64)
}

final class KernelCandidatesTests: XCTestCase {
    func names(_ cpu: CPUFeatures) -> [String] { candidateKernels(for: cpu).map(\.name) }

    func testCPUInfoParsing() {
        let cpu = RecordedCPUs.maskedXeon
        XCTAssertEqual(cpu.vendor, "GenuineIntel")
        XCTAssertEqual(cpu.modelName, "Intel(R) Xeon(R) Processor")
        XCTAssertEqual(cpu.family, "6")
        XCTAssertEqual(cpu.model, "143")
        XCTAssertEqual(cpu.megahertz, 2600)
        XCTAssertEqual(cpu.processors, 2)
        XCTAssertTrue(cpu.has("avx512_bf16"))
        XCTAssertEqual(cpu.vectorLevel, .avx512)
        XCTAssertEqual(RecordedCPUs.graviton2.vendor, "0x41")
        XCTAssertEqual(RecordedCPUs.graviton2.model, "0xd0c")
        XCTAssertNotEqual(RecordedCPUs.epyc9654.fingerprint, RecordedCPUs.maskedZen5.fingerprint)
    }

    func testAVX512ProcessorsGetTheAVX512KernelsFirstWhateverTheirName() {
        let sse = ["Sandybridge", "Nehalem", "Core2", "Prescott"]
        XCTAssertEqual(names(RecordedCPUs.maskedXeon), ["Cooperlake", "SkylakeX", "Haswell", "Zen"] + sse)
        XCTAssertEqual(names(RecordedCPUs.skylakeServer), ["SkylakeX", "Haswell", "Zen"] + sse)
        XCTAssertEqual(names(RecordedCPUs.epyc9654), ["Cooperlake", "SkylakeX", "Zen", "Haswell"] + sse)
        XCTAssertEqual(names(RecordedCPUs.maskedZen5), ["Cooperlake", "SkylakeX", "Zen", "Haswell"] + sse)
    }

    func testAVX2ProcessorsGetHaswellClassKernels() {
        let rest = ["Sandybridge", "Nehalem", "Core2", "Prescott"]
        XCTAssertEqual(names(RecordedCPUs.epyc7763), ["Zen", "Haswell"] + rest)
        XCTAssertEqual(names(RecordedCPUs.skylakeClient), ["Haswell", "Zen"] + rest)
        XCTAssertEqual(names(RecordedCPUs.haswellServer), ["Haswell", "Zen"] + rest)
        XCTAssertEqual(names(RecordedCPUs.knightsLanding), ["Haswell", "Zen"] + rest, "AVX-512 F without BW/VL is not SkylakeX class")
    }

    func testProcessorsWithoutAVX2FallBackByClass() {
        XCTAssertEqual(names(RecordedCPUs.sandyBridgeServer), ["Sandybridge", "Nehalem", "Core2", "Prescott"])
        XCTAssertEqual(names(RecordedCPUs.westmere), ["Nehalem", "Core2", "Prescott"])
        XCTAssertEqual(RecordedCPUs.westmere.vectorLevel, .sse)
    }

    func testArmProcessors() {
        XCTAssertEqual(names(RecordedCPUs.graviton2), ["NeoverseN1", "CortexA57", "ARMV8"])
        XCTAssertEqual(names(RecordedCPUs.graviton3), ["NeoverseV1", "NeoverseN1", "CortexA57", "ARMV8"])
    }

    func choice(_ cpu: CPUFeatures, running: String) -> KernelChoice {
        KernelChoice(cpu: cpu, running: running, reason: .openBLASDefault(""), verdicts: [], bestForFeatures: candidateKernels(for: cpu).first)
    }

    func testSpeedWarning() {
        let cpu = RecordedCPUs.maskedXeon  // 2 cores at 2600 MHz: AVX-512's floor is 166 GFLOP/s
        XCTAssertNotNil(BLASStartup.speedWarning(choice(cpu, running: "prescott"), rate: 65, threads: 2), "an SSE kernel on AVX-512")
        XCTAssertNil(BLASStartup.speedWarning(choice(cpu, running: "skylakex"), rate: 309, threads: 2))
        XCTAssertNil(BLASStartup.speedWarning(choice(cpu, running: "haswell"), rate: 230, threads: 2))
        let slow = BLASStartup.speedWarning(choice(cpu, running: "skylakex"), rate: 50, threads: 2)
        XCTAssertTrue(slow?.contains("under 40%") == true, slow ?? "no warning")
        XCTAssertNil(BLASStartup.speedWarning(choice(RecordedCPUs.westmere, running: "nehalem"), rate: 40, threads: 2))
        // Measured while other processes held the cores (a local cluster's processes start together):
        // a low rate is not the kernel's, but a wrong kernel class still is.
        XCTAssertNil(BLASStartup.speedWarning(choice(cpu, running: "skylakex"), rate: 50, threads: 2, coreShare: 0.3))
        XCTAssertNotNil(BLASStartup.speedWarning(choice(cpu, running: "prescott"), rate: 20, threads: 2, coreShare: 0.3))
    }

    /// The probe knows when it did not have its cores: with busy processes on every core, its
    /// share is far below `busyShare`, and the start line says so instead of warning.
    func testAProbeAmongBusyProcessesSaysItDidNotHaveTheCores() throws {
        let alone = BLASStartup.sgemmProbe(.trainingDefault)
        print("sgemm probe alone: \(Int(alone.rate)) GFLOP/s, \(Int(100 * alone.coreShare))% of the cores")
        XCTAssertGreaterThan(alone.coreShare, 0)
        XCTAssertLessThanOrEqual(alone.coreShare, 1)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let hogs = try (0..<(2 * cores)).map { _ in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "while :; do :; done"]
            try p.run()
            return p
        }
        defer { for p in hogs { p.terminate(); p.waitUntilExit() } }
        Thread.sleep(forTimeInterval: 0.2)
        let crowded = BLASStartup.sgemmProbe(.trainingDefault, repeats: 10)
        print("sgemm probe beside \(hogs.count) busy processes: \(Int(crowded.rate)) GFLOP/s, \(Int(100 * crowded.coreShare))% of the cores")
        XCTAssertLessThan(crowded.coreShare, BLASStartup.busyShare)
        let lines = BLASStartup.startLines(program: "test", shape: .trainingDefault)
        XCTAssertTrue(lines[0].contains("other processes, a CPU quota or the hypervisor held the rest"), lines[0])
        XCTAssertFalse(lines.contains { $0.contains("WARNING") && $0.contains("under 40%") }, lines.joined(separator: "\n"))
    }
}
