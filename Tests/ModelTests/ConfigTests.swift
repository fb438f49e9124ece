import Foundation
import Model
import XCTest

final class ConfigTests: XCTestCase {
    func decode(_ json: String) throws -> LlamaConfig { try JSONDecoder().decode(LlamaConfig.self, from: Data(json.utf8)) }

    func testDecodesHuggingFaceSmolLM2Config() throws {
        let c = try decode(
            """
            {"architectures":["LlamaForCausalLM"],"attention_bias":false,"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu",
             "hidden_size":576,"initializer_range":0.041666666666666664,"intermediate_size":1536,"max_position_embeddings":8192,
             "model_type":"llama","num_attention_heads":9,"num_hidden_layers":30,"num_key_value_heads":3,"pretraining_tp":1,
             "rms_norm_eps":1e-05,"rope_scaling":null,"rope_theta":100000,"tie_word_embeddings":true,"torch_dtype":"bfloat16",
             "use_cache":true,"vocab_size":49152}
            """)
        XCTAssertEqual(c.headDim, 64)
        XCTAssertEqual(c.numKeyValueHeads, 3)
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(ParameterLayout(config: c).totalCount, 134_515_008)
        let again = try JSONDecoder().decode(LlamaConfig.self, from: JSONEncoder().encode(c))
        XCTAssertEqual(again, c)
    }

    func testQwen2HasBiasesAndUntiedHead() throws {
        let c = try decode(
            """
            {"model_type":"qwen2","hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,"num_attention_heads":4,
             "num_key_value_heads":2,"vocab_size":50,"tie_word_embeddings":false,"rope_theta":1000000.0,"rms_norm_eps":1e-6}
            """)
        let layout = ParameterLayout(config: c)
        XCTAssertNotNil(layout.entry(named: "model.layers.0.self_attn.q_proj.bias"))
        XCTAssertNil(layout.entry(named: "model.layers.0.self_attn.o_proj.bias"))
        XCTAssertEqual(layout.entry(named: "lm_head.weight")?.shape, [50, 32])
    }

    func testRejectsWhatItCannotRun() {
        let base = #""hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":50"#
        for (extra, needle) in [
            (#""model_type":"gpt2""#, "model_type"),
            (#""model_type":"llama","hidden_act":"gelu""#, "hidden_act"),
            (#""model_type":"llama","num_key_value_heads":3"#, "multiple"),
            (#""model_type":"llama","rope_scaling":{"type":"linear","factor":2}"#, "rope_scaling")
        ] {
            XCTAssertThrowsError(try decode("{\(base),\(extra)}")) { error in
                XCTAssertTrue("\(error)".contains(needle), "\(error) should mention \(needle)")
            }
        }
    }

    func testUndecayedRangesAreTheNormsAndBiases() throws {
        let config = try LlamaConfig(
            modelType: "qwen2", hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
            numKeyValueHeads: 1, vocabSize: 11, maxPositionEmbeddings: 32, tieWordEmbeddings: false)
        let layout = ParameterLayout(config: config)
        let names = Set(layout.entries.filter { e in layout.undecayed.contains(e.range) }.map(\.name))
        XCTAssertEqual(
            names,
            Set(
                ["model.norm.weight"]
                    + (0..<2).flatMap { l in
                        ["input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"]
                            .map { "model.layers.\(l).\($0)" }
                    }))
        // A chunk boundary inside a tensor clips the range and makes it relative to the chunk.
        let norm = layout.entry(named: "model.norm.weight")!.range
        XCTAssertEqual(layout.undecayed(within: (norm.lowerBound + 3)..<(norm.upperBound + 5)), [0..<(norm.count - 3)])
    }
}
