// pass@k as the REDI paper reports it: pass@1 averaged over k samples, and the unbiased
// pass@k estimator of Chen et al. (2021), with standard errors over problems.
import Foundation

/// Unbiased pass@k for one problem with n samples of which c are correct: 1 − C(n−c, k)/C(n, k).
public func passAtK(samples n: Int, correct c: Int, k: Int) -> Double {
    precondition(k >= 1 && k <= n && c >= 0 && c <= n)
    if c == 0 { return 0 }
    if n - c < k { return 1 }
    var ratio = 1.0
    for i in (n - c + 1)...n { ratio *= 1 - Double(k) / Double(i) }
    return 1 - ratio
}

/// Mean and standard error of the mean.
public func meanAndStandardError(_ xs: [Double]) -> (mean: Double, stderr: Double) {
    guard !xs.isEmpty else { return (0, 0) }
    let m = xs.reduce(0, +) / Double(xs.count)
    guard xs.count > 1 else { return (m, 0) }
    let v = xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)
    return (m, (v / Double(xs.count)).squareRoot())
}
