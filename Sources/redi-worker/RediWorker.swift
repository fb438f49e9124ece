// redi-worker: the worker process of a redi-ps run. Exits 0 when the run finished, 1 with
// a one-line error when it failed (here or anywhere in the run).
import ArgumentParser
import BLASKernel
import ClusterCore
import ClusterWorker
import Foundation
import Numerics

@main
struct RediWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redi-worker", abstract: "A redi-ps worker.",
        subcommands: [Join.self])

    /// The BLAS kernel is chosen and logged before anything runs (see `BLASStartup`).
    static func main() {
        BLASStartup.start(program: "redi-worker")
        main(nil)
    }

    struct Join: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Join a run and compute gradients until it ends.")
        @Option(help: "The coordinator's control endpoint, e.g. tcp://host:5570.") var coordinator: String
        @Option(help: "The run key file (made by `redi-ps keys`; default: $REDI_PS_KEY).") var key: String?
        @Option(help: "Threads for matrix products (default: all cores).") var threads: Int?
        @Option(help: "Seconds to wait for the coordinator or a peer before giving up.") var timeout: Double = 120
        @Option(help: ArgumentHelp("Fault injection: exit abruptly when given this 0-based training step.", visibility: .hidden))
        var failAtStep: Int?
        @Option(help: ArgumentHelp("Fault injection: seconds of extra work per work unit.", visibility: .hidden))
        var delaySteps: Double = 0
        @Option(
            help: ArgumentHelp(
                "Fault injection: multiply the gradients this worker pushes by this (a dishonest worker within the norm bound).",
                visibility: .hidden))
        var corruptGradients: Float?

        func validate() throws {
            guard coordinator.hasPrefix("tcp://") || coordinator.hasPrefix("ipc://") else { throw ValidationError("--coordinator must be tcp://HOST:PORT") }
            if let threads, threads < 1 { throw ValidationError("--threads must be positive") }
            guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        }

        func run() throws {
            if let threads { setMatmulThreads(threads) }
            do {
                guard let path = key ?? ProcessInfo.processInfo.environment["REDI_PS_KEY"] else {
                    throw ClusterError("no run key: pass --key FILE (made by `redi-ps keys --out FILE`) or set REDI_PS_KEY")
                }
                try WorkerRole(
                    coordinator: coordinator, key: try RunKey.load(path), timeout: timeout, failAtStep: failAtStep, delay: delaySteps,
                    corruptGradients: corruptGradients
                ).run()
            } catch let e as ClusterError {
                FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
                throw ExitCode.failure
            }
        }
    }
}
