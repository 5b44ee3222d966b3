import Foundation
import XCTest
@testable import ChatTemplate

/// Hand-written checks of the public API, error positions, the clock, JSON input, and robustness
/// against hostile templates. (Language fidelity is checked against jinja2 in FixtureTests.swift.)
final class ChatTemplateTests: XCTestCase {
    private func render(_ source: String, _ ctx: [String: TemplateValue] = [:]) throws -> String {
        try ChatTemplate(source).render(ctx)
    }

    private func error(_ source: String, _ ctx: [String: TemplateValue] = [:]) -> TemplateError? {
        do {
            _ = try ChatTemplate(source).render(ctx)
            return nil
        } catch let e as TemplateError {
            return e
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)")
            return nil
        }
    }

    // MARK: API

    func testRenderMessagesAPI() throws {
        let t = try ChatTemplate("""
            {{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{{ eos_token }}
            {% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}{{ extra_flag }}
            """)
        let out = try t.render(messages: [["role": "user", "content": "Hi"], ["role": "assistant", "content": "Yo"]],
                               addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>", extra: ["extra_flag": true])
        XCTAssertEqual(out, "<s><|user|>Hi</s>\n<|assistant|>Yo</s>\n<|assistant|>True")
        let noPrompt = try t.render(messages: [["role": "user", "content": "Hi"]], addGenerationPrompt: false)
        XCTAssertEqual(noPrompt, "<|user|>Hi\n")
    }

    func testDictionaryMessagesPutRoleAndContentFirst() throws {
        let t = try ChatTemplate("{{ messages[0]|tojson }}")
        XCTAssertEqual(try t.render(messages: [["tool_calls": [], "content": "c", "role": "assistant", "name": "n"]], addGenerationPrompt: false),
                       #"{"role": "assistant", "content": "c", "name": "n", "tool_calls": []}"#)
    }

    func testMessagesKeepKeyOrderForToJSON() throws {
        let t = try ChatTemplate("{{ messages[0]|tojson }}")
        let msg = try TemplateValue(jsonString: #"{"role": "user", "content": "é \"q\"", "n": 1.0, "k": [1, null, true]}"#)
        XCTAssertEqual(try t.render(messages: [msg], addGenerationPrompt: false),
                       #"{"role": "user", "content": "é \"q\"", "n": 1.0, "k": [1, null, true]}"#)
    }

    func testTemplateIsSendableAndReusable() throws {
        let t = try ChatTemplate("{% for i in range(n) %}{{ i }}{% endfor %}")
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var values = [String](repeating: "", count: 8)
        }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let r = (try? t.render(["n": .int(i)])) ?? "error"
            results.lock.lock()
            results.values[i] = r
            results.lock.unlock()
        }
        XCTAssertEqual(results.values, (0..<8).map { (0..<$0).map(String.init).joined() })
    }

    // MARK: errors and positions

    func testSyntaxErrorPosition() {
        let e = error("line one\n{% if x %}\n  {% frobnicate %}\n{% endif %}")
        XCTAssertEqual(e?.kind, .syntax)
        XCTAssertEqual(e?.line, 3)
        XCTAssertEqual(e?.column, 6)
        XCTAssertTrue(e?.message.contains("Encountered unknown tag 'frobnicate'") ?? false, e?.message ?? "")

        let e2 = error("{{ 1 +\n * 2 }}")
        XCTAssertEqual(e2?.kind, .syntax)
        XCTAssertEqual(e2?.line, 2)
        XCTAssertEqual(e2?.column, 2)

        let e3 = error("ok\n\n{% for x in y %}never closed")
        XCTAssertEqual(e3?.kind, .syntax)
        XCTAssertTrue(e3?.message.contains("Unexpected end of template") ?? false)

        let e4 = error("{{ 'unterminated }}")
        XCTAssertEqual(e4?.kind, .syntax)
        XCTAssertEqual(e4?.line, 1)
        XCTAssertEqual(e4?.column, 4)
    }

    func testRaiseExceptionPositionAndMessage() {
        let src = "{% for m in messages %}\n{% if m.role == 'system' %}\n   {{ raise_exception('System role not supported') }}\n{% endif %}{% endfor %}"
        let e = error(src, ["messages": [["role": "system", "content": "x"]]])
        XCTAssertEqual(e?.kind, .raised)
        XCTAssertEqual(e?.message, "System role not supported")
        XCTAssertEqual(e?.line, 3)
        XCTAssertEqual(e?.column, 7)
        XCTAssertEqual(e?.description, "template raised an exception at line 3, column 7: System role not supported")
    }

    func testRuntimeErrorPosition() {
        let e = error("a\nb {{ foo.bar }}")
        XCTAssertEqual(e?.kind, .runtime)
        XCTAssertEqual(e?.line, 2)
        XCTAssertEqual(e?.column, 9)
        XCTAssertTrue(e?.message.contains("'foo' is undefined") ?? false, e?.message ?? "")

        let e2 = error("{% set l = [] %}\n{% set _ = l.append(1) %}")
        XCTAssertEqual(e2?.kind, .runtime)
        XCTAssertEqual(e2?.line, 2)
        XCTAssertTrue(e2?.message.contains("unsafe") ?? false, e2?.message ?? "")
    }

    func testGenerationTagIsUnknownLikeReference() {
        // transformers registers {% generation %} only for assistant masks; the reference renders without it
        let e = error("{% if true %}{% generation %}x{% endgeneration %}{% endif %}")
        XCTAssertEqual(e?.kind, .syntax)
    }

    // MARK: clock

    func testStrftimeNowUsesFixedClock() throws {
        TemplateClock.fix(year: 2026, month: 1, day: 15, hour: 9, minute: 5, second: 7)
        defer { TemplateClock.fix(nil) }
        XCTAssertEqual(try render("{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%d %B %Y, %A') }}|{{ strftime_now('%-d %b %y %I%p %j') }}"),
                       "2026-01-15 09:05:07|15 January 2026, Thursday|15 Jan 26 09AM 015")
    }

    func testRealClockWhenNotFixed() throws {
        TemplateClock.fix(nil)
        let year = Calendar(identifier: .gregorian).component(.year, from: Date())
        XCTAssertEqual(try render("{{ strftime_now('%Y') }}"), String(year))
    }

    // MARK: JSON input

    func testJSONParsing() throws {
        let v = try TemplateValue(jsonString: #" {"b": 1, "a": [1.5, -2, 1e2, "x\u00e9\ud83d\ude00\n", false, null], "c": {}} "#)
        XCTAssertEqual(v.objectValue?.keys, ["b", "a", "c"])
        XCTAssertEqual(v["a"], .array([.double(1.5), .int(-2), .double(100), .string("xé😀\n"), .bool(false), .null]))
        XCTAssertEqual(v.description, #"{"b": 1, "a": [1.5, -2, 100.0, "xé😀\n", false, null], "c": {}}"#)

        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"\\x\"", "01", "[1] 2", "\"a\u{01}\""] {
            XCTAssertThrowsError(try TemplateValue(jsonString: bad), bad) { e in
                XCTAssertTrue(e is TemplateError, "\(bad): \(e)")
            }
        }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        XCTAssertThrowsError(try TemplateValue(jsonString: deep))
    }

    func testJSONFromFoundation() throws {
        let data = Data(#"{"n": 1, "d": 2.5, "b": true, "s": "x", "l": [null]}"#.utf8)
        let obj = try JSONSerialization.jsonObject(with: data)
        let v = try TemplateValue(json: obj)
        XCTAssertEqual(v["n"], .int(1))
        XCTAssertEqual(v["d"], .double(2.5))
        XCTAssertEqual(v["b"], .bool(true))
        XCTAssertEqual(v["s"], .string("x"))
        XCTAssertEqual(v["l"], .array([.null]))
    }

    // MARK: robustness (hostile templates fail with an error, never crash)

    func testDeepTemplateNestingIsAnError() {
        let parens = String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000)
        XCTAssertEqual(error("{{ \(parens) }}")?.kind, .syntax)
        let ifs = String(repeating: "{% if true %}", count: 3000) + String(repeating: "{% endif %}", count: 3000)
        XCTAssertEqual(error(ifs)?.kind, .syntax)
        let lists = String(repeating: "[", count: 3000) + String(repeating: "]", count: 3000)
        XCTAssertEqual(error("{{ \(lists) }}")?.kind, .syntax)
    }

    /// 100,000 `not` used to overflow the parser's stack; operator, filter, test and suffix chains
    /// build trees as deep as they are long and count as nesting too.
    func testLongChainsAreNesting() {
        XCTAssertEqual(error(String(repeating: "{% if true %}", count: 100000))?.kind, .syntax)
        XCTAssertEqual(error("{{ " + String(repeating: "(", count: 100000) + " }}")?.kind, .syntax)
        XCTAssertEqual(error("{{ " + String(repeating: "-", count: 100000) + "1 }}")?.kind, .syntax)
        XCTAssertEqual(error("{{ " + String(repeating: "not ", count: 100000) + "1 }}")?.kind, .syntax)
        XCTAssertEqual(error("{{ x" + String(repeating: "|e", count: 100000) + " }}")?.kind, .syntax)
        // long operator chains build trees as deep as they are long (evaluation recurses through them)
        for chain in [" + 1", " * 1", " ** 1", " and 1", " or 1", " if 1 else 1", ".a", "[0]", "()", " is defined"] {
            XCTAssertEqual(error("{{ 1" + String(repeating: chain, count: 100000) + " }}")?.kind, .syntax, chain)
        }
        // ~ and comparisons are flat lists, evaluated in a loop
        XCTAssertEqual(try ChatTemplate("{{ 1" + String(repeating: " ~ 1", count: 100000) + " }}").render([:]).count, 100001)
        XCTAssertEqual(try ChatTemplate("{{ 1" + String(repeating: " == 1", count: 100000) + " }}").render([:]), "True")
        XCTAssertEqual(error("{% filter e" + String(repeating: "|e", count: 100000) + " %}x{% endfilter %}")?.kind, .syntax)
    }

    func testRecursionLimits() {
        XCTAssertEqual(error("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}")?.kind, .runtime)
        XCTAssertEqual(error("{% for x in t recursive %}{{ loop(t) }}{% endfor %}", ["t": [1]])?.kind, .runtime)
        XCTAssertEqual(try? render("{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{% endif %}x{% endmacro %}{{ m(150)|length }}"), "151")
    }

    func testDeepValuesAndCycles() throws {
        XCTAssertEqual(error("{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}")?.kind, .runtime)
        XCTAssertEqual(try render("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}"), "<Namespace {'a': 1, 'me': <Namespace {...}>}>")
        XCTAssertEqual(error("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|tojson }}")?.kind, .runtime)
    }

    func testSizeLimits() {
        XCTAssertEqual(error("{{ 'x' * 1000000000000 }}")?.kind, .runtime)
        XCTAssertEqual(error("{{ [1, 2] * 100000000 }}")?.kind, .runtime)
        XCTAssertEqual(error("{{ range(1000000)|length }}")?.kind, .runtime)
        XCTAssertEqual(error("{{ range(-9223372036854775807, 9223372036854775807)|length }}")?.kind, .runtime)
        XCTAssertEqual(error("{{ '{:999999999999999999999}'.format(1) }}")?.kind, .runtime)
        XCTAssertEqual(error("{{ '%999999999999d' % 1 }}")?.kind, .runtime)
        XCTAssertEqual(error("{{ 'a'.center(999999999999) }}")?.kind, .runtime)
        XCTAssertEqual(error("{{ 9223372036854775807 + 1 }}")?.kind, .runtime)
        XCTAssertEqual(error("{{ 2 ** 200 }}")?.kind, .runtime)
        XCTAssertEqual(try render("{{ [1, 2, 3][::9223372036854775807] }} {{ 'abc'[::-9223372036854775807] }}"), "[1] c")
    }

    /// Mutated real-looking templates and random bytes: parse + render must return or throw, never trap.
    func testFuzzNeverCrashes() {
        let seeds = [
            "{%- for m in messages %}{{- '<|' + m['role'] + '|>\\n' + m['content'] | trim }}{% if loop.last and add_generation_prompt %}<|assistant|>{% endif %}{%- endfor %}",
            "{% set ns = namespace(x=0) %}{% for i in range(3) if i is odd %}{% set ns.x = ns.x + i %}{% else %}e{% endfor %}{{ ns.x|tojson(indent=2) }}",
            "{% macro f(a, b=[1, {'k': (1, 2)}]) %}{{ a ~ b|string }}{% endmacro %}{% call(x) f(1) %}{{ x }}{% endcall %}{{ '%s %d' % ('a', 1) }}{{ '{0:>4}'.format(3) }}",
            "{# c #}{% raw %}{{ x }}{% endraw %}{{ d.items()|list|dictsort|first }}{{ 'a b'.split()[::-1]|join('-') }}{{ 1 if x is defined else -2 ** 3 // 2 }}",
        ]
        let alphabet = Array("{}%#-+()[]|.,:'\"~ \n\tabcifnorstel0123456789=<>!*/_\\")
        var rng = SystemRandomNumberGenerator()
        var rendered = 0, failed = 0
        let ctx: [String: TemplateValue] = ["messages": [["role": "user", "content": "hi"]], "add_generation_prompt": true,
                                            "d": ["b": 1, "a": [1, 2]], "x": "s"]
        for iteration in 0..<3000 {
            var chars = Array(seeds[iteration % seeds.count])
            let edits = Int.random(in: 1...6, using: &rng)
            for _ in 0..<edits {
                let pos = Int.random(in: 0...chars.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: chars.insert(alphabet.randomElement(using: &rng)!, at: pos)
                case 1: if pos < chars.count { chars.remove(at: pos) }
                default: if pos < chars.count { chars[pos] = alphabet.randomElement(using: &rng)! }
                }
            }
            do {
                _ = try ChatTemplate(String(chars)).render(ctx)
                rendered += 1
            } catch is TemplateError {
                failed += 1
            } catch {
                XCTFail("non-TemplateError \(error) for \(String(chars).debugDescription)")
            }
        }
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? ChatTemplate(String(decoding: bytes, as: UTF8.self)).render(ctx)
        }
        XCTAssertEqual(rendered + failed, 3000)
        XCTAssertGreaterThan(rendered, 0)
        XCTAssertGreaterThan(failed, 0)
    }

    /// On a small (512 KiB in release builds) thread stack, deep recursion ends in an error, not a crash.
    func testDeepRecursionOnSmallStack() {
        let done = expectation(description: "rendered")
        let thread = Thread {
            let deepMacro = "{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{% endif %}x{% endmacro %}{{ m(199)|length }}"
            do {
                let r = try ChatTemplate(deepMacro).render([:])
                XCTAssertEqual(r, "200")
            } catch let e as TemplateError {
                XCTAssertEqual(e.kind, .runtime)
                XCTAssertTrue(e.message.hasPrefix("RecursionError"), e.message)
            } catch {
                XCTFail("\(error)")
            }
            XCTAssertEqual(try? ChatTemplate("{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{% endif %}x{% endmacro %}{{ m(20)|length }}").render([:]), "21")
            let nested = String(repeating: "(", count: 90) + "1" + String(repeating: ")", count: 90)
            do {
                let r = try ChatTemplate("{{ \(nested) }}").render([:])
                XCTAssertEqual(r, "1")
            } catch let e as TemplateError {
                XCTAssertEqual(e.kind, .syntax)
            } catch {
                XCTFail("\(error)")
            }
            let deepNS = "{% set ns = namespace(x=[]) %}{% for i in range(250) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|tojson|length }} {{ ns.x|string|length }} {{ ns.x == ns.x }}"
            XCTAssertEqual(try? ChatTemplate(deepNS).render([:]), "502 502 True")
            let deepJSON = String(repeating: "[", count: 250) + String(repeating: "]", count: 250)
            XCTAssertEqual(try? ChatTemplate("{{ v|tojson|length }}").render(["v": TemplateValue(jsonString: deepJSON)]), "500")
            done.fulfill()
        }
        // Debug and sanitizer builds use several times the stack per frame (ASan: a 250-deep tojson
        // overflowed 512 KiB); the bounds are tuned for release builds, which keep 512 KiB.
        #if DEBUG
        thread.stackSize = 4 * 1024 * 1024
        #else
        thread.stackSize = 512 * 1024
        #endif
        thread.start()
        wait(for: [done], timeout: 60)
    }
}
