// The built-in verifiable reasoning task: multi-step arithmetic word problems with
// chain-of-thought solutions ending in a marked answer, a stochastic teacher that makes
// realistic mistakes, and a verifier. Mirrors the Open-R1 → REDI pipeline on a task whose
// answers can be checked exactly.
import Foundation
import SeededRandom

/// One operation applied to the running total.
public struct Operation: Equatable, Sendable {
    public enum Kind: String, Sendable { case add, subtract, multiply, groupAdd }
    public let kind: Kind
    /// Operand; for `groupAdd`, `count` groups of `value` are added.
    public let value: Int
    public let count: Int
}

/// A word problem with its exact answer.
public struct Problem: Equatable, Sendable {
    public let item: String
    public let person: String
    public let start: Int
    public let operations: [Operation]

    public var answer: Int { operations.reduce(start) { Problem.apply($1, to: $0) } }

    static func apply(_ op: Operation, to total: Int) -> Int {
        switch op.kind {
        case .add: total + op.value
        case .subtract: total - op.value
        case .multiply: total * op.value
        case .groupAdd: total + op.count * op.value
        }
    }

    public var text: String {
        var s = "\(person) has \(start) \(item)."
        for op in operations {
            switch op.kind {
            case .add: s += " Then \(person) gets \(op.value) more \(item)."
            case .subtract: s += " Then \(person) gives away \(op.value) \(item)."
            case .multiply: s += " Then the number of \(item) becomes \(op.value) times as large."
            case .groupAdd: s += " Then \(person) buys \(op.count) boxes with \(op.value) \(item) each."
            }
        }
        return s + " How many \(item) does \(person) have now?"
    }

    /// The prompt shown to the model.
    public var prompt: String { "Problem: \(text)\nSolve step by step and end with \"Answer: <number>\".\n" }
}

/// The mistakes the teacher makes; each looks plausible and fails only on checking.
public enum MistakeKind: String, CaseIterable, Sendable {
    case carrySlip = "carry_slip", borrowSlip = "borrow_slip", operandCopy = "operand_copy"
    case skippedStep = "skipped_step", offByOne = "off_by_one", wrongOperation = "wrong_operation"
}

/// A teacher's solution: the text and the mistakes it made.
public struct Trace: Sendable {
    public let text: String
    public let mistakes: [MistakeKind]
    public let finalAnswer: Int
}

/// Generates problems of a given difficulty.
public struct ProblemGenerator {
    public var digits: Int
    public var steps: Int
    static let items = ["apples", "marbles", "stickers", "coins", "books", "pencils", "cards", "shells", "stamps", "beads"]
    static let people = ["Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonah", "Kira", "Leo"]

    public init(digits: Int = 2, steps: Int = 3) { self.digits = digits; self.steps = steps }

    public func make(_ rng: inout SeededGenerator) -> Problem {
        let hi = Int(pow(10.0, Double(digits))) - 1, lo = digits > 1 ? Int(pow(10.0, Double(digits - 1))) : 1
        func number() -> Int { lo + Int(rng.next() % UInt64(hi - lo + 1)) }
        var total = number()
        let start = total
        var ops: [Operation] = []
        for _ in 0..<steps {
            let roll = rng.next() % 8
            let op: Operation
            if roll < 3 {
                op = Operation(kind: .add, value: number(), count: 1)
            } else if roll < 6 && total > lo {
                // Keep totals positive: give away less than there is.
                let top = min(hi, total - 1)
                op = Operation(kind: .subtract, value: lo + Int(rng.next() % UInt64(top - lo + 1)), count: 1)
            } else if roll < 6 {
                op = Operation(kind: .add, value: number(), count: 1)
            } else if roll < 7 && total < 10 * hi {
                op = Operation(kind: .multiply, value: 2 + Int(rng.next() % 3), count: 1)
            } else {
                op = Operation(kind: .groupAdd, value: number(), count: 2 + Int(rng.next() % 4))
            }
            ops.append(op)
            total = Problem.apply(op, to: total)
        }
        return Problem(
            item: Self.items[Int(rng.next() % UInt64(Self.items.count))],
            person: Self.people[Int(rng.next() % UInt64(Self.people.count))], start: start, operations: ops)
    }
}

/// A stochastic teacher: writes a chain of thought, slipping at each step with `errorRate`.
public struct Teacher {
    public var errorRate: Double
    public init(errorRate: Double) { self.errorRate = errorRate }

    public func solve(_ p: Problem, _ rng: inout SeededGenerator) -> Trace {
        var lines = ["We start with \(p.start) \(p.item)."]
        var total = p.start
        var mistakes: [MistakeKind] = []
        for (i, op) in p.operations.enumerated() {
            let slip = rng.nextUnit() < errorRate
            var kind: MistakeKind? = nil
            if slip {
                var candidates: [MistakeKind] = [.operandCopy, .offByOne, .wrongOperation]
                if i > 0 { candidates.append(.skippedStep) }
                if op.kind == .add || op.kind == .groupAdd, Self.hasCarry(total, op.kind == .add ? op.value : op.count * op.value) { candidates.append(.carrySlip) }
                if op.kind == .subtract, Self.hasBorrow(total, op.value) { candidates.append(.borrowSlip) }
                kind = candidates[Int(rng.next() % UInt64(candidates.count))]
            }
            if kind == .skippedStep { mistakes.append(.skippedStep); continue }
            var value = op.value
            if kind == .operandCopy { value = Self.miscopy(value, &rng) }
            var opKind = op.kind
            if kind == .wrongOperation { opKind = op.kind == .add ? .subtract : op.kind == .subtract ? .add : op.kind == .multiply ? .add : .add }
            let step = Step(kind: opKind, value: value, count: op.count, total: total)
            var result = step.result
            switch kind {
            case .carrySlip: result -= Self.carryUnit(total, opKind == .add ? value : op.count * value)
            case .borrowSlip: result += Self.borrowUnit(total, value)
            case .offByOne: result += rng.next() % 2 == 0 ? 1 : -1
            default: break
            }
            if let kind { mistakes.append(kind) }
            lines += step.lines(result: result, item: p.item)
            total = result
        }
        lines.append("Answer: \(total)")
        return Trace(text: lines.joined(separator: "\n"), mistakes: mistakes, finalAnswer: total)
    }

    struct Step {
        let kind: Operation.Kind, value: Int, count: Int, total: Int
        var result: Int { Problem.apply(Operation(kind: kind, value: value, count: count), to: total) }
        func lines(result: Int, item: String) -> [String] {
            switch kind {
            case .add: ["\(total) + \(value) = \(result)."]
            case .subtract: ["\(total) - \(value) = \(result)."]
            case .multiply: ["\(total) * \(value) = \(result)."]
            case .groupAdd: ["\(count) boxes of \(value) is \(count) * \(value) = \(count * value) \(item).", "\(total) + \(count * value) = \(result)."]
            }
        }
    }

    static func hasCarry(_ a: Int, _ b: Int) -> Bool { carryUnit(a, b) > 0 }
    /// The place value of the lowest carry in a + b (0 if none).
    static func carryUnit(_ a: Int, _ b: Int) -> Int {
        var x = abs(a), y = abs(b), unit = 1
        while x > 0 || y > 0 {
            if x % 10 + y % 10 >= 10 { return unit * 10 }
            x /= 10; y /= 10; unit *= 10
        }
        return 0
    }
    static func hasBorrow(_ a: Int, _ b: Int) -> Bool { borrowUnit(a, b) > 0 }
    /// The place value of the lowest borrow in a − b (0 if none).
    static func borrowUnit(_ a: Int, _ b: Int) -> Int {
        var x = a, y = b, unit = 1
        while y > 0 {
            if x % 10 < y % 10 { return unit * 10 }
            x /= 10; y /= 10; unit *= 10
        }
        return 0
    }
    /// Copies a number with one digit changed or two adjacent digits swapped.
    static func miscopy(_ v: Int, _ rng: inout SeededGenerator) -> Int {
        var digits = Array(String(v))
        if digits.count >= 2 && rng.next() % 2 == 0 {
            let i = Int(rng.next() % UInt64(digits.count - 1))
            if digits[i] != digits[i + 1] { digits.swapAt(i, i + 1); if digits[0] != "0" { return Int(String(digits))! } }
        }
        let i = Int(rng.next() % UInt64(digits.count))
        let d = Int(String(digits[i]))!
        digits[i] = Character(String((d + 1 + Int(rng.next() % 8)) % 10))
        if digits[0] == "0" { digits[0] = "1" }
        return Int(String(digits))!
    }
}
