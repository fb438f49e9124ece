// The memory model's terms and placement (its figures are checked against measured peaks by
// running recipes: see the README's memory section).
import ClusterCore
import Foundation
import Model
import XCTest

final class MemoryPlanTests: XCTestCase {
    func testTermsFollowTheRecipe() throws {
        let config = try XCTUnwrap(LlamaConfig.preset("smollm2-135m", vocabSize: 49152, bos: nil, eos: nil, pad: nil))
        let p = ParameterLayout(config: config).totalCount
        func plan(_ cluster: String) throws -> MemoryPlan {
            let r = try Recipe.parse(
                "model: {init: smollm2-135m}\nstages: [{objective: sft, data: a.jsonl, learning_rate: 1, micro_batch_tokens: 2048}]\n"
                    + "cluster: {\(cluster)}", base: URL(fileURLWithPath: "/"), path: "t.yaml")
            return MemoryPlan(recipe: r, config: config, sequenceLength: 2048)
        }
        let one = try plan("servers: 1, workers: 2"), two = try plan("servers: 2, workers: 2, wire: bf16-gradients, snapshot_every: 0")
        func term(_ plan: MemoryPlan, _ role: String, _ prefix: String) -> Int? {
            plan.roles.first { $0.name == role }?.terms.first { $0.0.hasPrefix(prefix) }?.1
        }
        XCTAssertEqual(term(one, "server", "weights, m, v"), 16 * p)
        XCTAssertEqual(term(two, "server", "weights, m, v"), 16 * ((p + 1) / 2))
        // Snapshots live on the servers; with one server, its replica is the coordinator's.
        XCTAssertEqual(term(one, "coordinator", "the only server's replica"), 24 * p)
        XCTAssertEqual(term(one, "server", "snapshot of its share"), 12 * p)
        XCTAssertNil(term(one, "server", "a neighbour's replica"))
        let three = try plan("servers: 3, workers: 2")
        XCTAssertNil(term(three, "coordinator", "the only server's replica"))
        XCTAssertEqual(term(three, "server", "snapshot of its share"), 12 * ((p + 2) / 3))
        XCTAssertEqual(term(three, "server", "a neighbour's replica"), 24 * ((p + 2) / 3))
        XCTAssertNil(term(two, "server", "snapshot of its share"))  // snapshot_every: 0 keeps none
        XCTAssertNil(term(three, "coordinator", "the model"))  // never held: read a piece at a time
        XCTAssertEqual(term(three, "coordinator", "a piece of the model"), 4 * ModelReader.pieceElements)
        XCTAssertNil(term(one, "worker", "bf16 copy"))
        XCTAssertEqual(term(two, "worker", "bf16 copy"), 2 * p)
        // The workspace is the engine's own plan for a full micro-batch.
        let workspace = LlamaEngine(config: config).workspaceBytes(sequenceLengths: [2048], scored: 2047)
        XCTAssertEqual(term(one, "worker", "training workspace"), workspace.forward + workspace.backward)
        XCTAssertEqual(one.counts, [1, 1, 2])
        // Placement: largest first onto the emptiest machine; too small is nil.
        let total = zip(one.roles, one.counts).reduce(0) { $0 + $1.0.bytes * $1.1 }
        XCTAssertNotNil(one.placement(machines: 4, bytes: one.roles.map(\.bytes).max()!))
        XCTAssertNil(one.placement(machines: 1, bytes: total - 1))
        XCTAssertEqual(one.placement(machines: 1, bytes: total)?.first?.count, 4)
    }
}
