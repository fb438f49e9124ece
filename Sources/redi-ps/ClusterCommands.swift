// redi-ps keys / coordinate / serve: the run key and the coordinator and parameter-server
// processes of a run.
import ArgumentParser
import ClusterCoordinator
import ClusterCore
import ClusterServer
import ClusterWorker
import Foundation

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create a run key: every process of a run needs it (--key); it is the run's only credential.",
        discussion: "Copy the file to each host over a private channel (scp); it is written with mode 0600 and refused if others can read it.")
    @Option(help: "Where to write the key file (must not exist).") var out: String

    func run() throws {
        let key = try wrap { try RunKey.generate() }
        try wrap { try key.write(to: out) }
        print("wrote \(out) (public key \(key.fingerprint))")
    }
}

/// `--key FILE`: the run key file made by `redi-ps keys`.
struct KeyOption: ParsableArguments {
    @Option(help: "The run key file (made by `redi-ps keys`; default: $REDI_PS_KEY).") var key: String?

    var path: String? { key ?? ProcessInfo.processInfo.environment["REDI_PS_KEY"] }

    func load() throws -> RunKey {
        guard let path else { throw CLIError("no run key: pass --key FILE (made by `redi-ps keys --out FILE`) or set REDI_PS_KEY") }
        return try wrap { try RunKey.load(path) }
    }
}

struct CoordinateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinate",
        abstract: "Run a recipe: admit servers and workers, train stage 1 then stage 2, checkpoint and evaluate.",
        discussion: "Without --key, the coordinator uses OUTPUT/run.key, creating it when missing; peers then need that file.")
    @Option(help: "Run recipe (YAML).") var recipe: String
    @Option(help: "Control endpoint to bind (overrides the recipe's cluster.bind), e.g. tcp://*:5570.") var bind: String?
    @Option(help: "Continue from a checkpoint of this recipe (a stage or step checkpoint directory), or `latest` for the newest in the output.")
    var resume: String?
    @Flag(help: "Replace a run already in the recipe's output directory (its logs and checkpoints); without it such a directory is refused.")
    var overwrite = false
    @OptionGroup var key: KeyOption
    @Flag(help: "Train nothing: evaluate the recipe's model (or --model) on the recipe's benchmarks with the cluster's workers; results go to OUTPUT/evaluation-NAME.")
    var evaluate = false
    @Option(help: "With --evaluate: the checkpoint directory or .gguf to evaluate instead of the recipe's model.")
    var model: String?
    @Flag(help: ArgumentHelp("Print the recipe's server count, worker count and a local connect endpoint, then exit.", visibility: .hidden))
    var printCluster = false

    func validate() throws {
        if overwrite && resume != nil { throw ValidationError("--overwrite replaces the run that --resume continues: give one of them") }
        if evaluate && resume != nil { throw ValidationError("--evaluate trains nothing: it does not take --resume") }
        if model != nil && !evaluate { throw ValidationError("--model applies to --evaluate (a training run's model is the recipe's)") }
    }

    func run() throws {
        var r = try wrap { try Recipe.load(recipe) }
        if evaluate {
            guard r.eval != nil else { throw CLIError("\(recipe): --evaluate needs an eval section") }
            if let model {
                guard FileManager.default.fileExists(atPath: model) else { throw CLIError("\(model): no such checkpoint or file") }
                r.model.path = URL(fileURLWithPath: model).standardizedFileURL.path
                r.model.initialize = nil
            }
            guard let path = r.model.path else { throw CLIError("--evaluate needs a trained model: give --model CHECKPOINT (the recipe initialises one)") }
            r.output = URL(fileURLWithPath: r.output).appendingPathComponent("evaluation-" + URL(fileURLWithPath: path).lastPathComponent).path
        }
        if printCluster {
            let local = (bind ?? r.cluster.bind).replacingOccurrences(of: "*", with: "127.0.0.1").replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1")
            print("\(r.cluster.servers) \(r.cluster.workers) \(local)")
            return
        }
        let runKey: RunKey
        if key.path != nil {
            runKey = try key.load()
        } else {
            try FileManager.default.createDirectory(atPath: r.output, withIntermediateDirectories: true)
            let path = (r.output as NSString).appendingPathComponent("run.key")
            if !FileManager.default.fileExists(atPath: path) {
                try wrap { try RunKey.generate().write(to: path) }
                FileHandle.standardError.write(Data("[coordinator] created the run key \(path): start servers and workers with --key \(path)\n".utf8))
            }
            runKey = try wrap { try RunKey.load(path) }
        }
        _ = try wrap { try Coordinator(recipe: r, key: runKey, bind: bind, resume: resume, overwrite: overwrite, evaluateOnly: evaluate).run() }
    }
}

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run one parameter-server shard.")
    @Option(help: "The coordinator's control endpoint, e.g. tcp://host:5570.") var coordinator: String
    @OptionGroup var key: KeyOption
    @Option(help: "Data-plane endpoint to bind; tcp://0.0.0.0:* takes any free port on every interface.") var bind = "tcp://127.0.0.1:*"
    @Option(help: "Where workers reach this server: HOST, or tcp://HOST[:PORT] (default port: the bound one). Needed when --bind is a wildcard.")
    var advertise: String?
    @Option(help: "Seconds to wait for the coordinator before giving up.") var timeout: Double = 120

    func validate() throws {
        guard coordinator.hasPrefix("tcp://") || coordinator.hasPrefix("ipc://") else { throw ValidationError("--coordinator must be tcp://HOST:PORT") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let runKey = try key.load()
        try wrap { try ParameterServer(coordinator: coordinator, key: runKey, bind: bind, advertise: advertise, timeout: timeout).run() }
    }
}

/// Cluster and recipe errors become a one-line message and exit status 1.
@discardableResult
func wrap<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as ClusterError { throw CLIError(e.description) } catch let e as RecipeError { throw CLIError(e.description) }
}
