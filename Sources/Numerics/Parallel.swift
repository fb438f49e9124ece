// Spreads elementwise work over the cores. Matrix products get their threads from
// OpenBLAS; everything else that touches every activation goes through here.
import Dispatch

/// Number of worker threads used for elementwise passes (the machine's active cores).
public let elementwiseThreads: Int = max(1, ProcessInfoCores.active)

enum ProcessInfoCores {
    static var active: Int {
        #if canImport(Glibc)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 1
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Calls `body` on disjoint, contiguous sub-ranges covering `0..<count`, concurrently.
///
/// Blocks until every range is done. Runs inline when the work is small (`count < minimumPerThread * 2`)
/// so tiny test models do not pay for thread hand-offs.
public func parallelRanges(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
    let threads = min(elementwiseThreads, count / max(1, minimumPerThread))
    if threads <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    let per = (count + threads - 1) / threads
    withoutActuallyEscaping(body) { body in
        let box = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: threads) { i in
            let lo = i * per, hi = min(count, lo + per)
            if lo < hi { box.value(lo..<hi) }
        }
    }
}

/// `body(i)` for every i in 0..<count, spread over the threads as `parallelRanges` spreads
/// ranges; the results in index order.
public func parallelMap<T>(_ count: Int, minimumPerThread: Int = 1, _ body: (Int) -> T) -> [T] {
    var results = [T?](repeating: nil, count: count)
    results.withUnsafeMutableBufferPointer { out in
        guard let base = out.baseAddress else { return }
        let slots = UncheckedSendable(base)
        parallelRanges(count, minimumPerThread: minimumPerThread) { r in for i in r { (slots.value + i).pointee = body(i) } }
    }
    return results.map { $0! }
}

/// y += x elementwise (threaded past 16k values).
public func add(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    parallelRanges(count, minimumPerThread: 8192) { r in for i in r { y[i] += x[i] } }
}

/// Wraps a value the compiler cannot prove thread-safe but that the caller partitions by index.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
