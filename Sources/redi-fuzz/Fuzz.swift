// redi-fuzz: feeds mutated inputs to every decoder that reads bytes from outside the
// process (GGUF, safetensors, protocol envelopes, JSONL records, YAML recipes, tokenizer.json,
// chat templates, trainer_state.json, graded answers) and reports
// how many it ran and how many each decoder accepted. A decoder that traps is a bug: the
// input that did it is written to crash-TARGET.bin before the process dies.
//
// Not coverage-guided (libFuzzer's -sanitize=fuzzer does not build through SwiftPM here):
// a mutation loop over seeds, with inputs that decode kept as further seeds.
import ArgumentParser
import ChatTemplate
import ClusterCoordinator
import ClusterCore
import Data
import Formats
import Foundation
import Grading
import Objectives
import Optimizer
import Tokenizers
import Wire

// The input being decoded, for the crash handler (signal handlers cannot capture).
nonisolated(unsafe) private var currentInput: UnsafeMutablePointer<UInt8>?
nonisolated(unsafe) private var currentCount = 0
nonisolated(unsafe) private var crashPath: UnsafeMutablePointer<CChar>?

private func installCrashHandler(target: String) {
    crashPath = strdup("crash-\(target).bin")
    currentInput = .allocate(capacity: 1 << 24)
    for sig in [SIGSEGV, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE] {
        signal(sig) { sig in
            let fd = open(crashPath!, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            if fd >= 0 { _ = write(fd, currentInput!, currentCount); close(fd) }
            let message = "redi-fuzz: the decoder crashed (signal \(sig)); input written to the crash file\n"
            message.withCString { _ = write(2, $0, strlen($0)) }
            _exit(2)
        }
    }
}

/// One decoder under test: seeds, and a function that decodes (throwing is fine, trapping is not).
struct Target {
    let name: String
    let seeds: () throws -> [[UInt8]]
    let decode: ([UInt8]) -> Bool
}

@main
struct RediFuzz: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redi-fuzz",
        abstract: "Run mutated inputs through redi-ps's decoders; exits nonzero if one traps.")
    @Argument(help: "Decoders: gguf, safetensors, envelope, jsonl, yaml, tokenizer, template, trainer_state, grading (default: all).") var targets: [String] = []
    @Option(help: "Inputs per decoder.") var runs = 100_000
    @Option(help: "Directory with seed files (NAME.gguf, NAME.safetensors, NAME.jsonl, NAME.yaml).") var seeds: String
    @Option(help: "Seed for the mutation RNG.") var seed: UInt64 = 1

    func run() throws {
        let progress = isatty(2) != 0
        // A decoder that allocates what the file cannot back hits this ceiling and traps.
        var limit = rlimit(rlim_cur: 6 << 30, rlim_max: 6 << 30)
        setrlimit(Int32(RLIMIT_AS.rawValue), &limit)
        let all = allTargets(seedDirectory: URL(fileURLWithPath: seeds))
        let chosen =
            targets.isEmpty
            ? all
            : try targets.map { name in
                guard let t = all.first(where: { $0.name == name }) else { throw ValidationError("unknown decoder \(name)") }
                return t
            }
        var total = 0
        for target in chosen {
            installCrashHandler(target: target.name)
            var corpus = try target.seeds()
            guard !corpus.isEmpty else { throw ValidationError("no seeds for \(target.name) in \(seeds)") }
            var rng = SplitMix(state: seed)
            var accepted = 0
            let started = Date()
            for i in 0..<runs {
                var input = corpus[Int(rng.next() % UInt64(corpus.count))]
                mutate(&input, corpus: corpus, rng: &rng)
                if input.count > 1 << 24 { input.removeLast(input.count - (1 << 24)) }
                currentCount = input.count
                input.withUnsafeBufferPointer { currentInput!.update(from: $0.baseAddress!, count: $0.count) }
                if target.decode(input) {
                    accepted += 1
                    if corpus.count < 512 { corpus.append(input) }
                }
                if progress, (i + 1) % max(1, runs / 10) == 0 {
                    FileHandle.standardError.write(Data("  \(target.name): \(i + 1)/\(runs)\r".utf8))
                }
            }
            let seconds = Date().timeIntervalSince(started)
            say(
                String(
                    format: "%@ %9d inputs, %8d decoded, %7d rejected with an error, 0 crashes  (%.0f inputs/s)",
                    target.name.padding(toLength: 12, withPad: " ", startingAt: 0), runs, accepted, runs - accepted, Double(runs) / seconds))
            total += runs
        }
        say("fuzz: \(total) inputs through \(chosen.count) decoders, 0 crashes")
    }
}

/// A line on standard output, unbuffered: what was printed survives a crash that follows.
func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

// MARK: Mutations

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Values that tend to break size arithmetic.
let interesting: [UInt64] = [
    0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 64, 127, 128, 255, 256, 1023, 1024, 4096, 65535, 65536,
    0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32, 1 << 40, 1 << 53, 1 << 62,
    0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, UInt64.max, UInt64.max - 1
]

func mutate(_ input: inout [UInt8], corpus: [[UInt8]], rng: inout SplitMix) {
    for _ in 0..<(1 + Int(rng.next() % 4)) {
        let n = input.count
        let at = n == 0 ? 0 : Int(rng.next() % UInt64(n))
        switch rng.next() % 10 {
        case 8 where n > 0:  // an interesting integer as a protobuf varint (overwrites a varint-sized run)
            var v = interesting[Int(rng.next() % UInt64(interesting.count))]
            var bytes: [UInt8] = []
            repeat { bytes.append(UInt8(v & 0x7F) | (v > 0x7F ? 0x80 : 0)); v >>= 7 } while v > 0
            input.replaceSubrange(at..<min(n, at + Int(rng.next() % 10) + 1), with: bytes)
        case 0 where n > 0:  // flip a bit
            input[at] ^= 1 << UInt8(rng.next() % 8)
        case 1 where n > 0:  // a random byte
            input[at] = UInt8(truncatingIfNeeded: rng.next())
        case 2:  // an interesting integer, 1/2/4/8 bytes little-endian
            let width = [1, 2, 4, 8][Int(rng.next() % 4)]
            var v = interesting[Int(rng.next() % UInt64(interesting.count))]
            if rng.next() % 4 == 0 { v = v &+ UInt64(rng.next() % 3) &- 1 }
            for k in 0..<width where at + k < n { input[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
        case 3 where n > 1:  // delete a range
            let length = 1 + Int(rng.next() % UInt64(min(n - at, 64)))
            input.removeSubrange(at..<min(n, at + length))
        case 4 where n > 0:  // duplicate a range in place
            let length = 1 + Int(rng.next() % UInt64(min(n - at, 64)))
            input.insert(contentsOf: input[at..<min(n, at + length)], at: Int(rng.next() % UInt64(n)))
        case 5 where n > 0:  // truncate
            input.removeLast(n - at)
        case 6:  // splice another input's tail
            let other = corpus[Int(rng.next() % UInt64(corpus.count))]
            if !other.isEmpty {
                let from = Int(rng.next() % UInt64(other.count))
                input = Array(input[..<at]) + other[from...]
            }
        case 7 where n > 0:  // a structural character (text formats)
            let chars = Array("{}[]\":,-*&!|>'\n #0e.".utf8)
            input[at] = chars[Int(rng.next() % UInt64(chars.count))]
        default:  // insert random bytes
            input.insert(contentsOf: (0..<(1 + Int(rng.next() % 8))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
        }
    }
}

// MARK: The decoders

func files(_ directory: URL, _ suffix: String) throws -> [[UInt8]] {
    try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(suffix) }.sorted()
        .map { Array(try Data(contentsOf: directory.appendingPathComponent($0))) }
}

func allTargets(seedDirectory dir: URL) -> [Target] {
    let fakeURL = URL(fileURLWithPath: "/fuzz/input")
    return [
        Target(name: "gguf", seeds: { try files(dir, ".gguf") }) { bytes in
            guard let file = try? GGUFFile(data: Data(bytes), url: fakeURL) else { return false }
            // Everything a loader does with a parsed file: tensors, configuration, tokenizer.
            for name in file.tensors.keys { _ = try? file.read(name) }
            if let model = try? GGUFModel.load(file: file), let t = model.tokenizer {
                _ = t.decode(t.encode("hello world 123"))
            }
            return true
        },
        Target(name: "safetensors", seeds: { try files(dir, ".safetensors") }) { bytes in
            guard let file = try? SafetensorsFile(data: Data(bytes), url: fakeURL) else { return false }
            for name in file.tensors.keys { _ = try? file.read(name) }
            return true
        },
        Target(name: "envelope", seeds: { envelopeSeeds() }) { bytes in
            (try? bytes.withUnsafeBytes { try Wire.decode($0) }) != nil
        },
        Target(name: "jsonl", seeds: { try files(dir, ".jsonl") }) { bytes in
            guard let read = try? RecordReader.read(data: Data(bytes), path: "/fuzz/input.jsonl", skippingInvalid: true) else { return false }
            for (line, record) in read.records { _ = try? Example(record: record, line: line, tokenizer: ByteTokenizer()) }
            return true
        },
        Target(name: "yaml", seeds: { try files(dir, ".yaml") }) { bytes in
            (try? Recipe.parse(String(decoding: bytes, as: UTF8.self), base: URL(fileURLWithPath: "/fuzz"), path: "/fuzz/recipe.yaml")) != nil
        },
        Target(name: "tokenizer", seeds: { try files(dir, "tokenizer.json") }) { bytes in
            guard let t = try? BPETokenizer.load(tokenizerJSON: Data(bytes), config: nil, url: fakeURL) else { return false }
            _ = t.decode(t.encode("hello world 123 <|im_start|>user"))
            return true
        },
        Target(name: "template", seeds: { try files(dir, ".jinja") }) { bytes in
            guard let template = try? ChatTemplate(String(decoding: bytes, as: UTF8.self)) else { return false }
            _ = try? template.render(
                messages: [
                    ["role": "system", "content": "be brief"], ["role": "user", "content": "2+2?"],
                    ["role": "assistant", "content": "4"]
                ],
                addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
            return true
        },
        Target(name: "trainer_state", seeds: { try files(dir, "trainer_state.json") }) { bytes in
            (try? TrainerState(json: Data(bytes), path: "/fuzz/trainer_state.json")) != nil
        },
        // A sample's answer is model output: graded against a reference, and used as one.
        Target(
            name: "grading",
            seeds: {
                try files(dir, "math_verify_pairs.jsonl").flatMap { $0.split(separator: UInt8(ascii: "\n")).map(Array.init) }
            }
        ) { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            let forward = AnswerRule.math.grade(text, reference: "\\frac{1}{2}"), backward = AnswerRule.math.grade("\\boxed{x = 5}", reference: text)
            return forward.extracted != nil || backward.correct
        }
    ]
}

/// One envelope of every message type, as seeds.
func envelopeSeeds() -> [[UInt8]] {
    let key = Array(repeating: UInt8(7), count: 32)
    let bodies: [Body] = [
        .hello(Hello(role: .worker, endpoint: "tcp://127.0.0.1:6000", threads: 2, dataKey: key)),
        .welcome(
            Welcome(
                index: 1, modelConfigJSON: #"{"hidden_size": 64}"#, chunks: [ChunkRange(chunk: 0, offset: 0, count: 1000)],
                chunkOwner: [0], serverEndpoints: ["tcp://a:1"], parameterCount: 1000, heartbeatSeconds: 2, workers: 2,
                timeoutSeconds: 30, workerKeys: [key, []])),
        .error(code: 400, message: "bad"), .heartbeat(step: 3), .shutdown(reason: "done", failed: true),
        .work(
            WorkUnit(
                stage: "redi", step: 3, version: 7, objective: .redi(gamma: 0.5), normalizer: 32,
                examples: [
                    WireExample(
                        sequences: [
                            WireSequence(tokens: [1, 2, 3], promptLength: 1),
                            WireSequence(tokens: [1, 4], promptLength: 1)
                        ], reference: (-1, -2), id: 9)
                ],
                microBatchTokens: 4096)),
        .pull(version: 4, chunks: [0, 3], optimizerState: true), .pullReply(version: 4, chunks: [1]),
        .push(step: 9, chunks: [2, 5], shard: 1, version: 12), .pushAck(step: 9), .load(chunks: [0, 1], resetOptimizer: true),
        .norm(step: 9, chunks: [0, 2], sums: [1.5, 0.25], shardSums: [0.75, 1]),
        .apply(ApplyUpdate(step: 9, optimizerStep: 10, learningRate: 1e-6, gradientScale: 0.5, adamW: AdamWConfig(weightDecay: 0))),
        .updateDone(step: 9, version: 10), .reset(step: 9, shardWorkers: [0, 2, 0], workerKeys: [key, [], key]),
        .stepReport(
            StepReport(
                step: 9, lossSum: 3.5, examples: 16, tokens: 512, metricSums: ["a": 1], sequenceLogps: [-1.5],
                exampleIDs: [3, 4], version: 8))
    ]
    return bodies.enumerated().map { Wire.encode(Envelope(runID: "run", sender: "fuzz", seq: UInt64($0.offset), body: $0.element)) }
}
