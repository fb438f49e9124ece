// redi-ps doctor: the machine report a user attaches to a bug or reads before renting more of
// the same: what the CPU is and can do, which OpenBLAS kernel runs and why, what each kernel the
// CPU qualifies for does (self-test and sgemm rate, each in a child process), sgemm at the
// model's training and decoding shapes, memory bandwidth and ZeroMQ loopback throughput.
import ArgumentParser
import BLASKernel
import Foundation
import Model
import Numerics
import Transport

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Print the machine report: CPU, BLAS kernel and why, sgemm at the model's shapes, memcpy and ZeroMQ loopback bandwidth.")
    @Option(help: "Model whose shapes to measure: a preset (\(LlamaConfig.presetNames.joined(separator: ", "))).") var config = "smollm2-135m"
    @Option(help: "Or a checkpoint directory or .gguf file whose config to use.") var model: String?
    @Option(help: "Tokens per training product.") var tokens = 512
    @Option(help: "Rows per decoding product.") var batch = 32
    @Flag(help: "Skip the per-kernel comparison and the transport measurement.") var quick = false

    func validate() throws {
        guard tokens > 0, batch > 0 else { throw ValidationError("--tokens and --batch must be positive") }
    }

    func run() throws {
        let modelConfig: LlamaConfig
        if let model {
            modelConfig = try loadModelWithTokenizer(model).0.config
        } else {
            guard let preset = try LlamaConfig.preset(config, vocabSize: 49152, bos: 1, eos: 2, pad: 2) else {
                throw ValidationError("unknown --config \(config); use one of \(LlamaConfig.presetNames.joined(separator: ", ")) or --model")
            }
            modelConfig = preset
        }
        let choice = BLASStartup.choice
        let cpu = choice.cpu
        print(
            "CPU: \(cpu.modelName.isEmpty ? "(no model name)" : cpu.modelName); vendor \(cpu.vendor), family \(cpu.family), model \(cpu.model); "
                + "\(cpu.processors) processors, \(elementwiseThreads) online; \(Int(cpu.megahertz)) MHz reported")
        print("  vector class \(cpu.vectorLevel); kernel-relevant features: \(cpu.kernelFeatures)")
        print("OpenBLAS: \(OpenBLASRuntime.config)")
        print("  library \(OpenBLASRuntime.libraryPath); \(OpenBLASRuntime.canSwitchKernels ? "can switch kernels at run time" : "cannot switch kernels (not DYNAMIC_ARCH)")")
        print("kernel: \(choice.runningName) (\(BLASStartup.describe(choice))), \(OpenBLASRuntime.threads) threads")
        print("  decoding: \(RowStableProducts.layout) (a row's numbers never depend on its neighbours)")
        let probe = MatmulShape.trainingDefault
        if !quick, OpenBLASRuntime.canSwitchKernels {
            print("kernels this CPU qualifies for (each in a child process; sgemm at \(probe), \(OpenBLASRuntime.threads) threads):")
            for kernel in candidateKernels(for: cpu).filter(OpenBLASRuntime.has) {
                let verdict = KernelProbe.verify(kernel)
                var rate = ""
                if verdict.isCorrect, case .exited(0, let gflops) = KernelProbe.inChild(kernel: kernel, timeout: 60, { (0, BLASStartup.sgemmRate(probe)) }) {
                    rate = String(format: "%6.0f GFLOP/s", gflops)
                }
                print("  \(kernel.name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(rate.padding(toLength: 15, withPad: " ", startingAt: 0)) \(verdict)")
            }
        }
        let c = modelConfig.hiddenSize, i = modelConfig.intermediateSize
        let q = modelConfig.numAttentionHeads * modelConfig.headDim, kv = modelConfig.numKeyValueHeads * modelConfig.headDim
        for (label, rows) in [("training, \(tokens) tokens", tokens), ("decoding, \(batch) rows", batch)] {
            let shapes = [
                ("q", MatmulShape(m: rows, n: q, k: c)), ("k, v", MatmulShape(m: rows, n: kv, k: c)),
                ("o", MatmulShape(m: rows, n: c, k: q)), ("gate+up", MatmulShape(m: rows, n: 2 * i, k: c)),
                ("down", MatmulShape(m: rows, n: c, k: i)), ("lm head", MatmulShape(m: rows, n: modelConfig.vocabSize, k: c))
            ]
            var flops = 0.0, seconds = 0.0, parts: [String] = []
            for (name, shape) in shapes {
                let rate = BLASStartup.sgemmRate(shape)
                flops += shape.flops
                seconds += shape.flops / (rate * 1e9)
                parts.append("\(name) \(shape) \(Int(rate))")
            }
            print("sgemm at the model's shapes, \(label): \(Int(flops / seconds / 1e9)) GFLOP/s overall (\(parts.joined(separator: ", ")))")
        }
        let count = 64 << 20
        print(
            String(
                format: "memcpy: %.1f GB/s read + written (256 MiB copies)",
                copyBandwidth(FloatBuffer(count: count), from: FloatBuffer(count: count), count: count, repeats: 3)))
        if !quick {
            let raw = try LoopbackThroughput.raw(mib: 4, messages: 50)
            let plain = try LoopbackThroughput.messages(mib: 4, messages: 50, protection: .clear)
            let curve = try LoopbackThroughput.messages(mib: 4, messages: 50, protection: .curve)
            let sealed = try LoopbackThroughput.messages(mib: 4, messages: 50, protection: .sealed)
            print(
                String(
                    format: "ZeroMQ TCP loopback, 4 MiB messages: raw %.2f GB/s; redi-ps messages plain %.2f GB/s, CURVE %.2f GB/s, sealed %.2f GB/s",
                    raw, plain, curve, sealed))
        }
    }
}
