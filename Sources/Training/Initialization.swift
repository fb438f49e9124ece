// Random initialisation as Hugging Face's `LlamaPreTrainedModel._init_weights` does it:
// every matrix ~ N(0, 0.02²), RMSNorm weights 1, biases 0. Seeded, so runs reproduce.
import Model
import Numerics
import SeededRandom

public func initializeParameters(_ parameters: FloatBuffer, layout: ParameterLayout, seed: UInt64, std: Double = 0.02) {
    precondition(parameters.count == layout.totalCount)
    let fill = initialValues(layout: layout, seed: seed, std: std)
    // Drawn a bounded piece at a time (the stream is sequential, so the cut changes no value).
    let piece = FloatBuffer(count: max(1, min(ModelReader.pieceElements, layout.totalCount)))
    for entry in layout.entries {
        for start in stride(from: 0, to: entry.count, by: piece.count) {
            let range = start..<min(start + piece.count, entry.count)
            try! fill(entry, range, piece)  // drawing never throws
            parameters.update(at: entry.offset + start, from: piece, 0..<range.count)
        }
    }
}

/// The same initialisation as a `ModelReader`: drawn piece by piece in layout order (one
/// seeded stream per pass, so the bits of `initializeParameters` every time), never the whole
/// model at once.
public func initialParameters(config: LlamaConfig, seed: UInt64, std: Double = 0.02) -> ModelReader {
    let layout = ParameterLayout(config: config)
    return ModelReader(config: config, layout: layout) { initialValues(layout: layout, seed: seed, std: std) }
}

/// Fills elements `range` of a tensor; called in layout order (the values come from one stream).
private func initialValues(layout: ParameterLayout, seed: UInt64, std: Double) -> ModelReader.ReadRows {
    final class Stream { var rng: SeededGenerator; init(_ seed: UInt64) { rng = SeededGenerator(seed: seed) } }
    let stream = Stream(seed), norms = layout.normOffsets
    return { entry, range, p in
        if norms.contains(entry.offset) {
            p.fill(0..<range.count, with: 1)
        } else if entry.shape.count == 1 {
            p.fill(0..<range.count, with: 0)
        } else {
            for i in 0..<range.count { p[i] = Float(stream.rng.nextNormal() * std) }
        }
    }
}
