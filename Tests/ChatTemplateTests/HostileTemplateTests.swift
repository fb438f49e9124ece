// Chat templates come from model files and users: every hostile one is an error naming the
// problem, within bounded time and memory, never a trap (each case below trapped, hung or
// took gigabytes before).
import ChatTemplate
import Foundation
import XCTest

final class HostileTemplateTests: XCTestCase {
    func render(_ source: String) throws -> String {
        try ChatTemplate(source).render(messages: [["role": "user", "content": "hi"]], addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
    }

    func assertError(_ source: String, _ needle: String, file: StaticString = #filePath, line: UInt = #line) {
        let started = Date()
        XCTAssertThrowsError(try render(source), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(needle), "\(error) should mention \(needle)", file: file, line: line)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "took too long: \(source.prefix(60))", file: file, line: line)
    }

    func testHostileTemplatesAreErrors() {
        // Nesting: brackets, prefix operators, long operator chains, blocks.
        assertError("{{ " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000) + " }}", "nested more than")
        assertError("{{ " + String(repeating: "not ", count: 100_000) + "1 }}", "repeated more than")
        assertError("{{ " + String(repeating: "- ", count: 100_000) + "1 }}", "repeated more than")
        assertError("{{ 1" + String(repeating: " + 1", count: 100_000) + " }}", "levels deep")
        assertError("{{ x" + String(repeating: ".a", count: 100_000) + " }}", "levels deep")
        assertError(String(repeating: "{% if true %}", count: 10_000) + String(repeating: "{% endif %}", count: 10_000), "blocks nested")
        // Integer overflow.
        assertError("{{ 9223372036854775807 + 1 }}", "overflows")
        assertError("{{ 4611686018427387904 * 4 }}", "overflows")
        assertError("{{ -9223372036854775807 - 2 }}", "overflows")
        // Ranges: a zero step, too many numbers, no arguments.
        assertError("{% for i in range(0, 10, 0) %}x{% endfor %}", "step must not be zero")
        assertError("{% for i in range(100000000) %}{% endfor %}", "range of")
        assertError("{{ range() }}", "range takes")
        // Repetition and doubling past the output cap; loops past the iteration budget.
        assertError("{{ 'x' * 1000000000000 }}", "repeated past")
        assertError("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}", "longer than")
        assertError("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", "loop iterations")
        assertError(
            "{% for i in range(1000000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}",
            "output would pass")
    }

    func testOrdinaryArithmeticStillWorks() throws {
        XCTAssertEqual(
            try render("{{ 7 // 2 }} {{ -7 % 3 }} {{ 5 % -1 }} {{ 2 * 3 - 10 }} {{ 'ab' * 3 }} {{ range(1, 10, 3) | list }}"),
            "3 2 0 -4 ababab [1, 4, 7]")
    }
}
