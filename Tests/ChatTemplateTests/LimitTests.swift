import Foundation
import XCTest
@testable import ChatTemplate

/// Templates are untrusted code (they come from model files): hostile ones stop at a resource
/// limit with a typed error, within a second and a few MB; real ones stay far below the limits.
final class LimitTests: XCTestCase {
    /// Renders `source`, expects a `TemplateError` with `limit`, and that it stopped quickly. The
    /// hostile cases take well under a second on a quiet machine; the bound is 3 s because CI
    /// shares 2 noisy cores with the build (one case took 1.11 s there) - it guards against hangs.
    func assertStops(_ source: String, _ limit: TemplateError.Limit, or other: TemplateError.Limit? = nil, context: [String: TemplateValue] = [:],
                     limits: RenderLimits = .default, seconds: Double = 3.0, file: StaticString = #filePath, line: UInt = #line) {
        let start = Date()
        do {
            let out = try ChatTemplate(source).render(context, limits: limits)
            XCTFail("rendered \(out.utf8.count) bytes: \(source)", file: file, line: line)
        } catch let e as TemplateError {
            XCTAssertTrue(e.limit == limit || (other != nil && e.limit == other), "\(e) for \(source)", file: file, line: line)
            XCTAssertEqual(e.kind, .runtime, file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
        let elapsed = Date().timeIntervalSince(start)
        // the time bound is for release builds (how the suite runs); debug builds are ~20x slower
        #if !DEBUG
        XCTAssertLessThan(elapsed, seconds, "took \(elapsed) s: \(source)", file: file, line: line)
        #endif
    }

    func testHugeRangeAndNestedLoopsStopOnSteps() {
        // range itself is capped like Jinja2's sandbox (MAX_RANGE); nested loops hit the step limit
        XCTAssertEqual(error("{% for i in range(10**9) %}{% endfor %}")?.kind, .runtime)
        assertStops("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", .steps, or: .builtBytes)
        assertStops("{% set r = range(100000)|list %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}", .steps)
        assertStops("{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}", .steps, or: .builtBytes)
        // builtins walking a big value count its elements
        assertStops("{% set r = range(100000)|list %}{% for i in r %}{{ i in r }}{% endfor %}", .steps)
        assertStops("{% set s = 'ab' * 1000000 %}{% for i in range(100000) %}{{ s.count('c') }}{% endfor %}", .steps)
        assertStops("{% set r = range(100000)|list %}{% for i in r %}{{ r|sort|first }}{% endfor %}", .steps)
    }

    func testHugeStringsStopOnValueSize() {
        assertStops("{{ 'x' * 10**10 }}", .valueBytes)
        assertStops("{{ ['x'] * 10**9 }}", .valueBytes)
        // doubling
        assertStops("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", .valueBytes)
        assertStops("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", .valueBytes)
        // one big string referenced many times, then printed, joined, serialized, formatted
        let big = "{% set b = 'x' * 1000000 %}{% set l = [b] * 100000 %}"
        assertStops(big + "{{ l }}", .valueBytes)
        assertStops(big + "{{ l|join }}", .valueBytes)
        assertStops(big + "{{ ''.join(l) }}", .valueBytes)
        assertStops(big + "{{ l|tojson }}", .valueBytes)
        assertStops(big + "{{ l|string }}", .valueBytes)
        assertStops(big + "{{ '%s' % (l,) }}", .valueBytes)
        assertStops(big + "{{ ('{0}' * 1000).format(b) }}", .valueBytes)
        assertStops(big + "{{ ('%s' * 1000) % (" + String(repeating: "b, ", count: 1000) + ") }}", .valueBytes)
        assertStops("{{ ('a' * 100000).replace('a', 'x' * 1000) }}", .valueBytes)
        assertStops("{{ ('a' * 100000)|replace('', 'x' * 1000) }}", .valueBytes)
        assertStops("{{ ('\\n' * 100000)|indent(1000) }}", .valueBytes)
        assertStops("{{ [1]|batch(10**12, 'x')|list }}", .valueBytes)
        assertStops("{{ [1]|slice(10**12)|list }}", .valueBytes)
        assertStops("{{ 'a'.center(10**12) }}", .valueBytes)
    }

    func testHugeToJSONStops() {
        // nested sharing: 1000 x 1000 x 1000 elements from a few kB of lists
        assertStops("{% set a = [1] * 1000 %}{% set b = [a] * 1000 %}{% set c = [b] * 1000 %}{{ c|tojson }}", .valueBytes)
        assertStops("{% set a = ['x' * 1000] * 1000 %}{% set b = [a] * 1000 %}{{ b|tojson(indent=4) }}", .valueBytes)
        assertStops("{{ [1, 2]|tojson(indent=10**9) }}", .valueBytes)
        // a huge input is fine to print once (limits grow with the input) ...
        let bigInput: TemplateValue = .array(Array(repeating: .string(String(repeating: "y", count: 1000)), count: 10000))
        XCTAssertEqual(try ChatTemplate("{{ v|tojson|length }}").render(["v": bigInput]), String(10000 * 1002 + 2 * 9999 + 2))
        // ... but not to multiply
        // (the limits grow with the input: this 10 MB input may be printed about 4 times, 0.3 s each)
        assertStops("{% for i in range(1000) %}{{ v|tojson }}{% endfor %}", .outputBytes, context: ["v": bigInput], seconds: 5)
    }

    func testOutputStopsAtOutputLimit() {
        assertStops("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", .outputBytes)
        assertStops("{% for i in range(100000) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}", .outputBytes)
        // inside a set block or a macro too
        assertStops("{% set x %}{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}", .outputBytes)
        assertStops("{% macro m() %}{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}{% endmacro %}{{ m()|length }}", .outputBytes)
    }

    func testMemoryStopsAtBuiltBytes() {
        // many distinct values kept alive: each 1 MB, 1000 of them
        assertStops("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = ns.l + [('x' * 1000000) ~ i] %}{% endfor %}", .builtBytes)
        // quadratic list growth
        assertStops("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}{% endfor %}", .builtBytes)
    }

    func testRecursionStops() {
        assertStops("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", .recursionDepth)
        assertStops("{% macro m() %}{{ m() }}{{ m() }}{% endmacro %}{{ m() }}", .recursionDepth)
        assertStops("{% for x in t recursive %}{{ loop(t) }}{% endfor %}", .recursionDepth, context: ["t": [1]])
        // a macro that calls itself twice at every level: exponential, stops on steps
        assertStops("{% macro m(n) %}{% if n < 60 %}{{ m(n + 1) }}{{ m(n + 1) }}{% endif %}{% endmacro %}{{ m(0) }}", .steps)
        // caller() loops
        assertStops("{% macro m() %}{{ caller() }}{% endmacro %}{% macro n() %}{% call m() %}{{ n() }}{% endcall %}{% endmacro %}{{ n() }}", .recursionDepth)
    }

    /// Values a template nests deeper and deeper (a namespace attribute wrapped in a list in a
    /// loop): building them stops with a RecursionError (construction is bounded; printing and
    /// comparing have their own depth and stack guards besides), nothing overflows the stack.
    func testDeeplyNestedValuesStop() throws {
        let build = "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}"
        final class Results: @unchecked Sendable { var list: [String] = [] }
        let box = Results()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            var results: [String] = []
            defer { box.list = results; done.signal() }
            for tail in ["{{ ns.x | tojson }}", "{{ ns.x }}", "{{ ns.x | string }}", "{{ ns.x == [ns.x] }}"] {
                do {
                    results.append("rendered: " + (try ChatTemplate(build + tail).render([:])).prefix(40))
                } catch {
                    results.append("\(error)".contains("RecursionError") ? "RecursionError" : "\(error)")
                }
            }
        }
        #if DEBUG
        thread.stackSize = 4 * 1024 * 1024   // debug/sanitizer frames are several times larger
        #else
        thread.stackSize = 512 * 1024
        #endif
        thread.start()
        done.wait()
        XCTAssertEqual(box.list, ["RecursionError", "RecursionError", "RecursionError", "RecursionError"])
    }

    func testSmallerLimitsAreHonored() throws {
        let t = try ChatTemplate("{% for i in range(100) %}{{ i }},{% endfor %}")
        XCTAssertNoThrow(try t.render([:], limits: RenderLimits(steps: 1000)))
        XCTAssertEqual((try? t.render([:], limits: RenderLimits(steps: 50))), nil)
        XCTAssertEqual(error("{% for i in range(100) %}{{ i }},{% endfor %}", limits: RenderLimits(outputBytes: 100))?.limit, .outputBytes)
        XCTAssertEqual(error("{% macro m(n) %}{% if n %}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(20) }}",
                             limits: RenderLimits(recursionDepth: 10))?.limit, .recursionDepth)
        XCTAssertNoThrow(try ChatTemplate("{% macro m(n) %}{% if n %}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(9) }}")
            .render([:], limits: RenderLimits(recursionDepth: 10)))
    }

    func testErrorsCarryThePosition() {
        let e = error("line one\n{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}")
        XCTAssertEqual(e?.limit, .outputBytes)
        XCTAssertEqual(e?.line, 2)
        XCTAssertTrue(e?.description.contains("4194304 bytes") ?? false, "\(String(describing: e))")
    }

    /// Nothing a template can call reads files, the environment or the clock beyond strftime_now.
    func testNoAccessToFilesEnvironmentOrClock() throws {
        for source in [
            "{% include '/etc/passwd' %}", "{% import '/etc/passwd' as x %}", "{% extends '/etc/passwd' %}",
            "{% from 'x' import y %}",
        ] {
            XCTAssertNotNil(error(source), source)
        }
        // no globals beyond Jinja's and HF's: no os, environ, open, import, config, self, lipsum
        for name in ["os", "environ", "open", "__import__", "config", "self", "lipsum", "request", "url_for", "get_flashed_messages", "now", "time", "datetime"] {
            XCTAssertEqual(try ChatTemplate("{{ \(name) is defined }}").render([:]), "False", name)
        }
        // attribute escapes that reach Python internals elsewhere are refused (unsafe attributes)
        for source in ["{{ ''.__class__ }}", "{{ x.__class__.__mro__ }}", "{{ range.__globals__ }}", "{{ namespace.__init__ }}",
                       "{{ cycler.__init__.__globals__ }}", "{{ (1).__class__ }}", "{{ raise_exception.__globals__ }}"] {
            // Jinja2's sandbox: an unsafe attribute is an Undefined (prints as nothing; using it fails)
            if let out = try? ChatTemplate(source).render(["x": "s"]) { XCTAssertEqual(out, "", source) }
        }
        // the globals a render sees are exactly these
        let names = Set(Builtins.globals().keys)
        XCTAssertEqual(names, ["range", "dict", "namespace", "cycler", "joiner", "raise_exception", "strftime_now"])
    }

    /// Every real template of the fixtures (llama.cpp's and the sdist's, with the reference and
    /// the tool/extras conversations) renders far below every limit: under 1% of the step, output,
    /// value and memory limits, and a recursion depth of a few.
    func testRealTemplatesStayFarBelowTheLimits() throws {
        guard let loaded = try FixtureTests.load() else { return }
        defer { TemplateClock.fix(nil) }
        guard let cases = loaded.root["cases"]?.arrayValue, let conversations = loaded.root["conversations"]?.arrayValue,
              let extraCases = loaded.root["extra_cases"]?.arrayValue, let extraConversations = loaded.root["extra_conversations"]?.arrayValue else {
            return XCTFail("unexpected fixture layout")
        }
        var parsed: [String: ChatTemplate] = [:]
        var worst: [String: (Double, String)] = [:]
        var rendered = 0
        var seconds = 0.0
        func note(_ what: String, _ used: Int, _ limit: Int, _ name: String) {
            let f = Double(used) / Double(limit)
            if f > (worst[what]?.0 ?? -1) { worst[what] = (f, name) }
        }
        for (list, extra) in [(cases, false), (extraCases, true)] {
            for c in list {
                guard let name = c["template"]?.stringValue, let conv = c["conversation"], case .bool(let agp)? = c["add_generation_prompt"] else { continue }
                var messages: [TemplateValue] = []
                var ctx = loaded.specials
                if extra {
                    guard let n = conv.stringValue, let cv = extraConversations.first(where: { $0["name"]?.stringValue == n }),
                          let m = cv["messages"]?.arrayValue else { continue }
                    messages = m
                    for (k, v) in cv["kwargs"]?.objectValue ?? TemplateObject([]) { ctx[k] = v }
                } else {
                    guard case .int(let i) = conv, let m = conversations[i]["messages"]?.arrayValue else { continue }
                    messages = m
                }
                ctx["messages"] = .array(messages)
                ctx["add_generation_prompt"] = .bool(agp)
                if parsed[name] == nil {
                    guard let src = try? String(contentsOf: loaded.templatesDir.appendingPathComponent(name), encoding: .utf8),
                          let t = try? ChatTemplate(src) else { continue }
                    parsed[name] = t
                }
                let t0 = Date()
                guard let (_, usage, limits) = try? parsed[name]!.renderMeasured(ctx) else { continue }
                seconds += Date().timeIntervalSince(t0)
                rendered += 1
                note("steps", usage.steps, limits.steps, name)
                note("outputBytes", usage.outputBytes, limits.outputBytes, name)
                note("valueBytes", usage.largestValueBytes, limits.valueBytes, name)
                note("builtBytes", usage.builtBytes, limits.builtBytes, name)
                note("recursionDepth", usage.recursionDepth, limits.recursionDepth, name)
            }
        }
        let summary = worst.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.3f%%", $0.value.0 * 100)) (\($0.value.1))" }
        print("real templates: \(rendered) renders of \(parsed.count) templates in \(String(format: "%.3f", seconds)) s; largest share of each limit: " + summary.joined(separator: ", "))
        XCTAssertGreaterThan(rendered, 700)
        for (what, (f, name)) in worst where what != "recursionDepth" {
            XCTAssertLessThan(f, 0.01, "\(name) uses \(f * 100)% of the \(what) limit")
        }
        XCTAssertLessThan(worst["recursionDepth"]?.0 ?? 0, 0.05)
    }

    // MARK: helpers

    func error(_ source: String, _ context: [String: TemplateValue] = [:], limits: RenderLimits = .default) -> TemplateError? {
        do {
            _ = try ChatTemplate(source).render(context, limits: limits)
            return nil
        } catch let e as TemplateError {
            return e
        } catch {
            XCTFail("\(error)")
            return nil
        }
    }
}
