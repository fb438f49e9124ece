// Which OpenBLAS kernels a processor's features qualify, fastest first. OpenBLAS's own choice
// goes by a table of known models and falls back to Prescott (SSE3) on one it does not know,
// which is most newly rented CPUs and every VM that masks its model; this goes by features.
// Pure: unit-tested over recorded /proc/cpuinfo flag sets.

/// An OpenBLAS kernel family as `OPENBLAS_CORETYPE` names it.
public struct KernelName: Hashable, Sendable, CustomStringConvertible, Codable {
    /// As OpenBLAS spells it in `OPENBLAS_CORETYPE` (matched without regard to case).
    public let name: String
    /// The vector instructions its sgemm uses.
    public let level: VectorLevel

    public var description: String { name }
    /// The symbol of its function table in a DYNAMIC_ARCH OpenBLAS (`gotoblas_SKYLAKEX`).
    var tableSymbol: String { "gotoblas_" + name.uppercased() }

    public init(_ name: String, _ level: VectorLevel) { self.name = name; self.level = level }
    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        self = KernelName.known.first { $0.name.lowercased() == name.lowercased() } ?? KernelName(name, .unknown)
    }
    public func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(name) }

    public static let cooperlake = KernelName("Cooperlake", .avx512), skylakeX = KernelName("SkylakeX", .avx512)
    public static let zen = KernelName("Zen", .avx2), haswell = KernelName("Haswell", .avx2)
    public static let sandybridge = KernelName("Sandybridge", .avx)
    public static let nehalem = KernelName("Nehalem", .sse), core2 = KernelName("Core2", .sse), prescott = KernelName("Prescott", .sse)
    public static let neoverseV1 = KernelName("NeoverseV1", .sve), neoverseN1 = KernelName("NeoverseN1", .neon)
    public static let cortexA57 = KernelName("CortexA57", .neon), armv8 = KernelName("ARMV8", .neon)

    /// Every kernel this module may choose.
    public static let known: [KernelName] = [
        .cooperlake, .skylakeX, .zen, .haswell, .sandybridge, .nehalem, .core2, .prescott,
        .neoverseV1, .neoverseN1, .cortexA57, .armv8
    ]

    /// The known kernel OpenBLAS reports as `name` (its core names are lower case), if any.
    public static func named(_ name: String) -> KernelName? { known.first { $0.name.lowercased() == name.lowercased() } }
}

/// The kernels `cpu` qualifies for, fastest first; each still has to pass the self-test.
///
/// x86-64: AVX-512 (F, BW, VL, DQ, CD) → Cooperlake (with AVX512_BF16; same sgemm as SkylakeX,
/// bf16 products besides) and SkylakeX; AVX2 with FMA → Zen and Haswell (Zen first on AMD:
/// same kernels, blocking tuned for its caches); AVX → Sandybridge; SSE4.2 → Nehalem,
/// SSSE3 → Core2, SSE3 → Prescott. Every class below the processor's follows as a fallback.
/// aarch64: SVE → NeoverseV1; dot-product NEON → NeoverseN1; then CortexA57 and ARMV8.
public func candidateKernels(for cpu: CPUFeatures) -> [KernelName] {
    var out: [KernelName] = []
    switch cpu.architecture {
    case .x86_64:
        let level = cpu.vectorLevel
        if level >= .avx512 {
            if cpu.has("avx512_bf16") { out.append(.cooperlake) }
            out.append(.skylakeX)
        }
        if level >= .avx2 { out += cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine" ? [.zen, .haswell] : [.haswell, .zen] }
        if level >= .avx { out.append(.sandybridge) }
        if cpu.has("sse4_2") { out.append(.nehalem) }
        if cpu.has("ssse3") { out.append(.core2) }
        out.append(.prescott)  // SSE3: every x86-64 processor still made
    case .aarch64:
        if cpu.has("sve") { out.append(.neoverseV1) }
        if cpu.has("asimddp") { out.append(.neoverseN1) }
        out += [.cortexA57, .armv8]
    case .other:
        break
    }
    return out
}
