// Recipes parsed without a cluster: the paper's recipe says what the paper did, and each new
// key is read, ranged and named in its errors.
import ClusterCore
import Foundation
import Grading
import Model
import Objectives
import Optimizer
import XCTest

final class RecipeTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func parse(_ text: String) throws -> Recipe {
        try Recipe.parse(text, base: URL(fileURLWithPath: "/base"), path: "test.yaml")
    }

    /// cluster/recipes/qwen2.5-math-1.5b-redi.yaml against the paper's settings (§5 and its
    /// reference configs sft_landmv_5ep, redi_1_08_1e-6; evaluation as its Table 1).
    func testQwenRecipeIsThePapers() throws {
        let r = try Recipe.load(Self.repository.appendingPathComponent("cluster/recipes/qwen2.5-math-1.5b-redi.yaml").path)
        XCTAssertEqual(r.model.overrides, ["max_position_embeddings": 32768, "rope_theta": 300_000])
        XCTAssertTrue(r.model.path?.hasSuffix("models/Qwen2.5-Math-1.5B") ?? false)
        XCTAssertEqual(r.stages.map(\.name), ["sft", "redi"])
        let (sft, redi) = (r.stages[0], r.stages[1])
        XCTAssertEqual(sft.objective, .sft)
        XCTAssertEqual(sft.learningRate, 5e-5)
        XCTAssertEqual(sft.batchSize, 128)
        XCTAssertEqual(sft.epochs, 5)
        XCTAssertEqual(sft.maxLength, 32768)
        XCTAssertEqual(redi.objective, .redi(c: 1, alpha: 0.8))
        XCTAssertEqual(redi.learningRate, 1e-6)
        XCTAssertEqual(redi.batchSize, 32)
        XCTAssertEqual(redi.epochs, 1)
        XCTAssertEqual(redi.maxPromptLength, 800)
        XCTAssertEqual(redi.maxLength, 19800)
        for stage in r.stages {
            XCTAssertEqual(stage.scheduler, .linear, stage.name)
            XCTAssertEqual(stage.warmupRatio, 0.1, stage.name)
            XCTAssertEqual(stage.adamW, AdamWConfig(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4), stage.name)
        }
        // 10% warm-up then linear decay, as the paper's schedule.
        let schedule = LearningRateSchedule(sft.scheduler, peak: sft.learningRate, totalSteps: 1000, warmupRatio: sft.warmupRatio)
        XCTAssertEqual(schedule.warmupSteps, 100)
        XCTAssertEqual(schedule.learningRate(atStep: 100), 5e-5)
        XCTAssertEqual(schedule.learningRate(atStep: 550), 2.5e-5, accuracy: 1e-18)
        let e = try XCTUnwrap(r.eval)
        XCTAssertEqual(e.temperature, 0.6)
        XCTAssertEqual(e.topP, 0.95)
        XCTAssertEqual(e.maxNewTokens, 32768)
        XCTAssertEqual(e.responsePrefix, "<think>\n")
        XCTAssertEqual(e.cache, .bf16)
        XCTAssertEqual(e.benchmarks.map(\.name), ["math500", "aime24", "amc23", "minerva", "olympiadbench"])
        for b in e.benchmarks {
            XCTAssertEqual(b.samples, 16, b.name)
            XCTAssertEqual(b.answerRule, .math, b.name)
        }
        XCTAssertEqual(r.saveDType, .bf16)
    }

    func testNewKeysAreReadAndDefaulted() throws {
        let r = try parse(
            """
            model: {init: tiny, overrides: {rope_theta: 5.0e5, max_position_embeddings: 4096}}
            stages:
              - {objective: sft, data: a.jsonl, learning_rate: 1, lr_scheduler_type: cosine, adam_beta1: 0.8, adam_beta2: 0.95,
                 adam_epsilon: 1.0e-6, max_steps: 7, drop_longer_than: 300, eval_every: 2}
              - {objective: redi, data: b.jsonl, learning_rate: 1e-3}
            eval:
              samples: 3
              answer_rule: math
              sets:
                - {name: math500, data: m.jsonl}
                - {name: gsm, data: g.jsonl, answer_rule: gsm8k, samples: 1, limit: 5}
            """)
        XCTAssertEqual(r.model.overrides, ["rope_theta": 5e5, "max_position_embeddings": 4096])
        let s = r.stages[0]
        XCTAssertEqual(s.scheduler, .cosine)
        XCTAssertEqual(s.adamW, AdamWConfig(beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 1e-4))
        XCTAssertEqual(s.totalSteps(examples: 1000), 7)
        XCTAssertEqual(s.limits.dropLongerThan, 300)
        XCTAssertEqual(s.evalEvery, 2)
        XCTAssertEqual(r.stages[1].scheduler, .linear)
        XCTAssertEqual(r.stages[1].learningRate, 1e-3)  // YAML 1.1 reads 1e-3 as text; a recipe means the number
        XCTAssertEqual(r.stages[1].totalSteps(examples: 65), 3)  // ceil(65 / 32) batches, one epoch
        XCTAssertNil(r.stages[1].evalEvery)
        let e = try XCTUnwrap(r.eval)
        XCTAssertTrue(e.named)
        XCTAssertEqual(e.benchmarks.map(\.name), ["math500", "gsm"])
        XCTAssertEqual(e.benchmarks.map(\.answerRule), [.math, .gsm8k])
        XCTAssertEqual(e.benchmarks.map(\.samples), [3, 1])
        XCTAssertEqual(e.benchmarks.map(\.limit), [nil, 5])
        XCTAssertEqual(e.benchmarks[0].data, "/base/m.jsonl")
        // The one-file form keeps the metric names it always had.
        let single = try parse("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\neval: {data: t.jsonl}")
        XCTAssertFalse(try XCTUnwrap(single.eval).named)
        XCTAssertNil(single.model.trainTokenizer)
        XCTAssertEqual(try parse("model: {init: small, train_tokenizer: 512}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]").model.trainTokenizer, 512)
    }

    func testBadNewKeysNameTheKey() {
        let base = "model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1"
        for (text, needle) in [
            (base + ", lr_scheduler_type: step}]", "stages[0].lr_scheduler_type: \"step\" is not one of linear, cosine, constant_with_warmup"),
            (base + ", adam_beta2: 1.5}]", "stages[0].adam_beta2"),
            (base + ", adam_epsilon: 0}]", "stages[0].adam_epsilon"),
            (base + ", max_steps: 0}]", "stages[0].max_steps"),
            (base + ", drop_longer_than: -3}]", "stages[0].drop_longer_than"),
            (base + ", eval_every: 5}]", "sets eval_every but the recipe has no eval section"),
            ("model: {init: tiny, overrides: {hidden_size: 8}}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]", "model.overrides.hidden_size: not one of"),
            ("model: {init: tiny, overrides: {rope_theta: -1}}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]", "model.overrides.rope_theta"),
            (
                "model: {init: tiny, overrides: {max_position_embeddings: 4096.5}}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]",
                "model.overrides.max_position_embeddings: 4096.5 is not a whole number"
            ),
            (base + "}]\neval: {data: t.jsonl, sets: [{name: a, data: a.jsonl}]}", "eval: give data (one test file) or sets"),
            (base + "}]\neval: {samples: 2}", "eval: give data (one test file) or sets"),
            (base + "}]\neval: {sets: [{name: a, data: a.jsonl}, {name: a, data: b.jsonl}]}", "two benchmarks share a name"),
            (base + "}]\neval: {sets: [{name: \"../x\", data: a.jsonl}]}", "eval.sets[0].name"),
            (base + "}]\neval: {sets: [{name: a, data: a.jsonl, answer_rule: exact}]}", "eval.sets[0].answer_rule: \"exact\" is not one of marker, boxed, gsm8k, math"),
            (base + "}]\neval: {sets: [{name: a, data: a.jsonl, bogus: 1}]}", "unknown key eval.sets[0].bogus"),
            (base + "}]\neval: {data: t.jsonl, kv_cache: fp16}", "eval.kv_cache: \"fp16\" is not fp32 or bf16"),
            ("model: {init: tiny, train_tokenizer: 100}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]", "model.train_tokenizer: 100 must be in 259...65536"),
            ("model: {path: m, train_tokenizer: 512}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]", "model.train_tokenizer: only for a model trained from scratch"),
            ("model: {init: tiny, tokenizer: t, train_tokenizer: 512}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]", "model.train_tokenizer: only")
        ] {
            XCTAssertThrowsError(try parse(text), needle) { error in
                XCTAssertTrue("\(error)".contains(needle), "\(error) should mention \(needle)")
            }
        }
    }

    /// Bad values, hostile YAML (these trapped or hung once) and numbers out of range: each an
    /// error naming the key or the problem.
    func testBadRecipesNameTheProblem() {
        for (text, needle) in [
            ("model: {init: tiny}\nstages: [{objective: sfx, data: a.jsonl, learning_rate: 1}]", "stages[0].objective"),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: -1}]", "stages[0].learning_rate"),
            ("model: {init: tiny, path: x}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]", "model: give exactly one"),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\ncluster: {workers: 0}", "cluster.workers"),
            (
                "model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1, truncation_mode: middle}]",
                "stages[0].truncation_mode: \"middle\" is not one of keep_end, keep_start"
            ),
            (
                "model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\ncluster: {timeout_seconds: 3, heartbeat_seconds: 2}",
                "cluster.heartbeat_seconds must be at most half"
            ),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\ncluster: {chunk_mib: 4096}", "cluster.chunk_mib"),
            (
                "model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\ncluster: {data_plane: none}",
                "cluster.data_plane: \"none\" is not curve"
            ),
            // Hostile YAML (these trapped or hung before): errors naming the problem.
            ("? [a, b]\n: 1\nmodel: {init: tiny}", "mapping keys must be plain text"),
            (
                "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                    + "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]",
                "more than 100000 values"
            ),
            (String(repeating: "[", count: 10_000), "nested 10000 deep"),
            ("stages:\n  " + String(repeating: "- ", count: 20_000) + "x", "sequences deep"),
            // Numbers out of range: each named before any peer is admitted.
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\ncluster: {workers: 100000000000}", "cluster.workers"),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1, batch_size: 9223372036854775807}]", "stages[0].batch_size"),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1, epochs: 1.0e300}]", "stages[0].epochs"),
            (
                "model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1, micro_batch_tokens: 8589934592}]",
                "stages[0].micro_batch_tokens"
            ),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\neval: {data: t.jsonl, samples: 8589934592}", "eval.samples"),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\neval: {data: t.jsonl, batch: 8589934592}", "eval.batch"),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1, max_grad_norm: -5}]", "stages[0].max_grad_norm"),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1, max_grad_norm: .nan}]", "stages[0].max_grad_norm"),
            // Types, as the recipe writes them: null is a value of the wrong type, not "absent".
            ("run_id: 5\nmodel: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]", "run_id: must be text"),
            ("seed: ~\nmodel: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]", "seed: must be a whole number"),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: one}]", "stages[0].learning_rate: must be a number"),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, lerning_rate: 1}]", "unknown key stages[0].lerning_rate"),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl}]", "stages[0].learning_rate: missing"),
            ("model: {init: tiny}\nstages: []", "stages: give at least one stage"),
            ("model: {init: tiny}\nstages: 5", "stages: must be a list"),
            ("model: [tiny]\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]", "model: must be a mapping"),
            (
                "model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1, negative_weight_gradient: yes please}]",
                "stages[0].negative_weight_gradient: must be true or false"
            ),
            ("model: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]\ncluster: {snapshot_dir: relative/dir}", "cluster.snapshot_dir"),
            ("max_shard_size: 0\nmodel: {init: tiny}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1}]", "max_shard_size"),
            ("- a\n- b", "the recipe must be a mapping")
        ] {
            XCTAssertThrowsError(try parse(text), needle) { error in
                XCTAssertTrue("\(error)".contains(needle), "\(error) should mention \(needle)")
            }
        }
    }
}
