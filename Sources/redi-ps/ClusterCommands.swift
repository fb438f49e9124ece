// redi-ps coordinate / serve: the coordinator and parameter-server processes of a run.
import ArgumentParser
import Cluster
import Foundation

struct CoordinateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "coordinate",
        abstract: "Run a recipe: admit servers and workers, train stage 1 then stage 2, checkpoint and evaluate.")
    @Option(help: "Run recipe (YAML).") var recipe: String
    @Option(help: "Control endpoint to bind (overrides the recipe's cluster.bind), e.g. tcp://*:5570.") var bind: String?
    @Option(help: "Continue from a checkpoint of this recipe (a stage or step checkpoint directory).") var resume: String?
    @Flag(help: ArgumentHelp("Print the recipe's server count, worker count and a local connect endpoint, then exit.", visibility: .hidden))
    var printCluster = false

    func run() throws {
        let r = try wrap { try Recipe.load(recipe) }
        if printCluster {
            let local = (bind ?? r.cluster.bind).replacingOccurrences(of: "*", with: "127.0.0.1").replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1")
            print("\(r.cluster.servers) \(r.cluster.workers) \(local)")
            return
        }
        _ = try wrap { try Coordinator(recipe: r, bind: bind, resume: resume).run() }
    }
}

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run one parameter-server shard.")
    @Option(help: "The coordinator's control endpoint, e.g. tcp://host:5570.") var coordinator: String
    @Option(help: "Data-plane endpoint to bind.") var bind = "tcp://127.0.0.1:*"
    @Option(help: "Endpoint workers should connect to, when it differs from --bind (e.g. tcp://0.0.0.0:* behind a host name).") var advertise: String?
    @Option(help: "Seconds to wait for the coordinator before giving up.") var timeout: Double = 120

    func validate() throws {
        guard coordinator.hasPrefix("tcp://") || coordinator.hasPrefix("ipc://") else { throw ValidationError("--coordinator must be tcp://HOST:PORT") }
    }

    func run() throws {
        try wrap { try ParameterServer(coordinator: coordinator, bind: bind, advertise: advertise, timeout: timeout).run() }
    }
}

/// Cluster and recipe errors become a one-line message and exit status 1.
@discardableResult
func wrap<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as ClusterError { throw CLIError(e.description) } catch let e as RecipeError { throw CLIError(e.description) }
}
