// swift-tools-version:6.0
// redi-ps: Reinforcement Distillation (REDI) post-training on a cluster of CPU machines.
import PackageDescription

// Numeric kernels only: everything that touches input from files or peers keeps Swift's
// bounds and overflow checks, so hostile input becomes a thrown error, never memory corruption.
let optimized: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "redi-ps",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "redi-ps", targets: ["redi-ps"]),
        .executable(name: "redi-worker", targets: ["redi-worker"]),
        .executable(name: "redi-bench", targets: ["redi-bench"]),
        .executable(name: "redi-fuzz", targets: ["redi-fuzz"]),
        .library(name: "REDICore", targets: ["Numerics", "Model", "Objectives", "Optimizer", "Formats", "Tokenizers", "Data", "Training", "Evaluation"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // YAML run recipes; replaces a YAML parser we would otherwise write and keep.
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1")
    ],
    targets: [
        // System libraries, each wrapped once.
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .systemLibrary(
            name: "CZeroMQ", pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"]), .brew(["zeromq"])]),
        .systemLibrary(
            name: "COpenSSL", pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"]), .brew(["openssl"])]),
        .systemLibrary(
            name: "CProtobufC", pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"]), .brew(["protobuf-c"])]),

        // protobuf-c code generated from proto/redi.proto by proto/generate.sh (committed).
        .target(name: "CREDIProto", dependencies: ["CProtobufC"]),

        // Which OpenBLAS kernel runs: chosen from the CPU's features, self-tested in a child process.
        .target(name: "BLASKernel", dependencies: ["COpenBLAS"]),
        .target(name: "Numerics", dependencies: ["COpenBLAS", "BLASKernel"], swiftSettings: optimized),
        // Seeded randomness (weights, data order, samples, the task), apart from Numerics so the task needs no BLAS.
        .target(name: "SeededRandom"),
        .target(name: "Model", dependencies: ["Numerics"], swiftSettings: optimized),
        .target(name: "Objectives"),
        .target(name: "Optimizer", dependencies: ["Numerics"], swiftSettings: optimized),
        .target(name: "Tokenizers"),
        .target(name: "ChatTemplate"),
        .target(name: "Formats", dependencies: ["Model", "Numerics", "Tokenizers"]),
        .target(name: "Data", dependencies: ["Tokenizers", "Model", "ChatTemplate", "Formats"]),
        .target(name: "Wire", dependencies: ["CREDIProto", "Objectives", "Optimizer"]),
        .target(name: "Transport", dependencies: ["CZeroMQ", "COpenSSL", "Wire", "Numerics"]),
        // The cluster, one module per role over a shared core (joining, the control channel,
        // recipes, the chunk plan, the version rule, snapshots, the memory plan).
        .target(
            name: "ClusterCore",
            dependencies: ["Transport", "Wire", "Model", "Numerics", "Objectives", "Optimizer", "Formats", "Data", "Training", "ReasoningTask", "Grading", "Yams"],
            path: "Sources/Cluster/Core"),
        .target(name: "ClusterServer", dependencies: ["ClusterCore", "Transport", "Wire", "Model", "Numerics", "Optimizer"], path: "Sources/Cluster/Server"),
        .target(
            name: "ClusterWorker", dependencies: ["ClusterCore", "BLASKernel", "Transport", "Wire", "Model", "Numerics", "Objectives", "Training", "Evaluation", "Data"],
            path: "Sources/Cluster/Worker"),
        .target(
            name: "ClusterCoordinator",
            dependencies: [
                // ClusterServer: with one server the coordinator keeps that server's snapshot replica in a SnapshotStore.
                "ClusterCore", "ClusterServer", "Transport", "Wire", "Model", "Numerics", "Objectives", "Optimizer", "Formats", "Tokenizers", "Data",
                "Training", "Evaluation", "ReasoningTask", "Grading", "SeededRandom"
            ],
            path: "Sources/Cluster/Coordinator"),
        .target(name: "Evaluation", dependencies: ["SeededRandom", "Model", "Numerics", "Tokenizers", "Data", "ReasoningTask", "Grading"]),
        .target(name: "ReasoningTask", dependencies: ["SeededRandom", "Grading"]),
        .target(name: "Grading"),
        .target(name: "Training", dependencies: ["SeededRandom", "Model", "Objectives", "Optimizer", "Data"]),
        .executableTarget(
            name: "redi-ps",
            dependencies: [
                "Model", "Objectives", "Formats", "Tokenizers", "Data", "Training", "Evaluation", "ReasoningTask", "Grading", "ChatTemplate", "ClusterCore", "ClusterServer",
                "ClusterWorker", "ClusterCoordinator", "BLASKernel", "Transport",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),
        .executableTarget(name: "redi-worker", dependencies: ["ClusterCore", "ClusterWorker", "BLASKernel", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // Mutation fuzzing of every decoder of outside bytes (cluster/tools/fuzz.sh).
        .executableTarget(
            name: "redi-fuzz",
            dependencies: [
                "Formats", "Data", "Wire", "ClusterCore", "ClusterCoordinator", "Tokenizers", "ChatTemplate", "Optimizer", "Objectives", "Grading",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),
        .executableTarget(
            name: "redi-bench",
            dependencies: [
                "BLASKernel", "Numerics", "SeededRandom", "Model", "Training", "Objectives", "Data", "Evaluation", "Formats", "Tokenizers", "Transport", "Wire",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ],
            swiftSettings: optimized),

        .testTarget(name: "NumericsTests", dependencies: ["SeededRandom", "Numerics"]),
        .testTarget(name: "BLASKernelTests", dependencies: ["BLASKernel", "Numerics", "Model", "ProcessSupport"]),
        // The float64 oracle shared by the model and training tests.
        .target(name: "ReferenceLlama", dependencies: ["Model"], path: "Tests/ReferenceLlama"),
        // Child processes with deadlines, shared by the tests that start real processes.
        .target(name: "ProcessSupport", path: "Tests/ProcessSupport"),
        .testTarget(name: "ModelTests", dependencies: ["SeededRandom", "Model", "Numerics", "ReferenceLlama", "BLASKernel"]),
        .testTarget(name: "ObjectivesTests", dependencies: ["Objectives"]),
        .testTarget(name: "OptimizerTests", dependencies: ["Optimizer", "Numerics"]),
        .testTarget(name: "FormatsTests", dependencies: ["SeededRandom", "Formats", "Model", "Tokenizers"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "Formats"]),
        .testTarget(name: "ChatTemplateTests", dependencies: ["ChatTemplate"]),
        .testTarget(name: "DataTests", dependencies: ["Data", "Tokenizers", "Model", "ChatTemplate"]),
        .testTarget(name: "TrainingTests", dependencies: ["SeededRandom", "Training", "Model", "Objectives", "Optimizer", "Data", "Tokenizers", "Numerics", "ReferenceLlama"]),
        .testTarget(name: "EvaluationTests", dependencies: ["SeededRandom", "Evaluation", "ReasoningTask", "Grading", "Model", "Numerics", "ChatTemplate"]),
        .testTarget(name: "GradingTests", dependencies: ["Grading"], resources: [.copy("math_verify_pairs.jsonl")]),
        .testTarget(name: "WireTests", dependencies: ["Wire", "Optimizer", "ProcessSupport"]),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "Wire", "Numerics"]),
        .testTarget(name: "ReasoningTaskTests", dependencies: ["ReasoningTask"]),
        .testTarget(name: "CLITests", dependencies: ["ProcessSupport"]),
        .testTarget(
            name: "ClusterUnitTests",
            dependencies: ["ClusterCore", "ClusterServer", "ClusterCoordinator", "Model", "Numerics", "Transport", "Wire", "Grading", "Objectives", "Optimizer"]),
        .testTarget(
            name: "ClusterTests",
            dependencies: ["BLASKernel", "ClusterCore", "ClusterServer", "Training", "Formats", "Model", "Numerics", "Objectives", "Tokenizers", "Data", "ProcessSupport"])
    ]
)
