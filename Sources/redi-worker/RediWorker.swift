// redi-worker: the worker process of a redi-ps run.
import ArgumentParser
import Cluster
import Numerics

@main
struct RediWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "redi-worker", abstract: "A redi-ps worker.",
                                                    subcommands: [Join.self])

    struct Join: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Join a run and compute gradients until it ends.")
        @Option(help: "The coordinator's control endpoint, e.g. tcp://host:5570.") var coordinator: String
        @Option(help: "Threads for matrix products (default: all cores).") var threads: Int?
        @Option(help: "Seconds to wait for the coordinator or a peer before giving up.") var timeout: Double = 120
        @Option(help: ArgumentHelp("Fault injection: exit abruptly when given this 0-based training step.", visibility: .hidden))
        var failAtStep: Int?

        func validate() throws {
            guard coordinator.hasPrefix("tcp://") || coordinator.hasPrefix("ipc://") else { throw ValidationError("--coordinator must be tcp://HOST:PORT") }
            if let threads, threads < 1 { throw ValidationError("--threads must be positive") }
        }

        func run() throws {
            if let threads { setMatmulThreads(threads) }
            do { try WorkerRole(coordinator: coordinator, timeout: timeout, failAtStep: failAtStep).run() } catch let e as ClusterError {
                throw CleanExit.message("error: \(e.description)")
            }
        }
    }
}
