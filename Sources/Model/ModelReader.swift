// A model read a piece at a time, in the flat parameter layout's order, so a process can pass
// a model on without ever holding all of it (the coordinator loads the servers this way). A
// piece is whole rows of one tensor, at most `pieceElements` values (a tensor its source can
// only give whole, such as GGUF's permuted q and k, comes whole).
import Numerics

public struct ModelReader {
    public let config: LlamaConfig
    public let layout: ParameterLayout
    /// What reads elements `range` (whole rows) of `entry` into the first `range.count` values
    /// of a buffer; called in layout order (a source may be a stream, such as seeded init).
    public typealias ReadRows = (_ entry: ParameterEntry, _ range: Range<Int>, _ destination: FloatBuffer) throws -> Void
    /// Starts a pass.
    let startPass: () -> ReadRows
    /// Whether `entry` can only be read whole.
    let whole: (ParameterEntry) -> Bool

    /// Values per piece (16 MiB of fp32).
    public static let pieceElements = 1 << 22

    public init(
        config: LlamaConfig, layout: ParameterLayout, whole: @escaping (ParameterEntry) -> Bool = { _ in false },
        readRows: @escaping ReadRows
    ) {
        self.init(config: config, layout: layout, whole: whole, pass: { readRows })
    }

    /// A reader whose every pass starts afresh from `pass()` (the same values each time).
    public init(
        config: LlamaConfig, layout: ParameterLayout, whole: @escaping (ParameterEntry) -> Bool = { _ in false },
        pass: @escaping () -> ReadRows
    ) {
        self.config = config; self.layout = layout; self.whole = whole; self.startPass = pass
    }

    /// Calls `body(offset, values)` for consecutive pieces of the flat vector, in order: the
    /// values from flat index `offset` on, valid only during the call.
    public func forEachPiece(_ body: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        func columns(_ e: ParameterEntry) -> Int { e.shape.count > 1 ? e.shape.last! : e.count }
        func rowsPerPiece(_ e: ParameterEntry) -> Int { whole(e) ? e.count / columns(e) : max(1, Self.pieceElements / max(1, columns(e))) }
        let largest = layout.entries.map { min($0.count, rowsPerPiece($0) * columns($0)) }.max() ?? 0
        let buffer = FloatBuffer(count: largest)
        let readRows = startPass()
        for entry in layout.entries {
            let width = columns(entry), rows = entry.count / width, step = rowsPerPiece(entry)
            var row = 0
            while row < rows {
                let n = min(step, rows - row)
                try readRows(entry, (row * width)..<((row + n) * width), buffer)
                try body(entry.offset + row * width, UnsafeBufferPointer(start: buffer.baseAddress, count: n * width))
                row += n
            }
        }
    }

    /// The whole flat vector.
    public func readAll() throws -> FloatBuffer {
        let parameters = FloatBuffer(count: layout.totalCount)
        try forEachPiece { offset, values in parameters.update(at: offset, from: values[...]) }
        return parameters
    }
}
