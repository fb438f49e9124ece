// Random initialisation as Hugging Face's `LlamaPreTrainedModel._init_weights` does it:
// every matrix ~ N(0, 0.02²), RMSNorm weights 1, biases 0. Seeded, so runs reproduce.
import Model
import Numerics

public func initializeParameters(_ parameters: FloatBuffer, layout: ParameterLayout, seed: UInt64, std: Double = 0.02) {
    precondition(parameters.count == layout.totalCount)
    var rng = SeededGenerator(seed: seed)
    let norms = layout.normOffsets
    for entry in layout.entries {
        let p = parameters.baseAddress + entry.offset
        if norms.contains(entry.offset) {
            p.update(repeating: 1, count: entry.count)
        } else if entry.shape.count == 1 {
            p.update(repeating: 0, count: entry.count)
        } else {
            for i in 0..<entry.count { p[i] = Float(rng.nextNormal() * std) }
        }
    }
}
