import Foundation
import XCTest
@testable import ChatTemplate

/// Renders llama.cpp's real chat templates (from the llama-cpp-python sdist) and compares with the
/// output of Python jinja2 configured like Hugging Face apply_chat_template
/// (Tests/Fixtures/render-templates.py, run by Tests/fetch-fixtures.sh).
final class FixtureTests: XCTestCase {
    static var cacheDir: URL {
        if let c = ProcessInfo.processInfo.environment["EDGEAI_CACHE"], !c.isEmpty {
            return URL(fileURLWithPath: c)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/edgeai")
    }

    struct Loaded {
        let root: TemplateValue
        let templatesDir: URL
        let specials: [String: TemplateValue]
    }

    /// Loads the expected-output file and fixes the clock at its `fixed_now`.
    static func load() throws -> Loaded? {
        let fixtures = cacheDir.appendingPathComponent("fixtures")
        let expectedURL = fixtures.appendingPathComponent("chat-templates-expected.json")
        let templatesDir = fixtures.appendingPathComponent("llama.cpp/models/templates")
        guard let data = try? Data(contentsOf: expectedURL),
              FileManager.default.fileExists(atPath: templatesDir.path) else {
            XCTFail("missing \(expectedURL.path) or \(templatesDir.path): run Tests/fetch-fixtures.sh first")
            return nil
        }
        let root = try TemplateValue(jsonData: data)
        guard let specials = root["special_tokens"]?.objectValue, let fixedNow = root["fixed_now"]?.stringValue else {
            XCTFail("unexpected layout of \(expectedURL.path): re-run Tests/fetch-fixtures.sh")
            return nil
        }
        // The fixture script fixes datetime.now() (a naive datetime); use the same wall-clock time.
        let nums = fixedNow.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard nums.count == 6 else {
            XCTFail("fixed_now should look like 2024-07-26T12:00:00, got \(fixedNow)")
            return nil
        }
        TemplateClock.fix(year: nums[0], month: nums[1], day: nums[2], hour: nums[3], minute: nums[4], second: nums[5])
        var sp: [String: TemplateValue] = [:]
        for (k, v) in specials { sp[k] = v }
        return Loaded(root: root, templatesDir: templatesDir, specials: sp)
    }

    struct Outcome {
        var pass = 0, total = 0
        var failures: [String] = []
        var mustFailButRendered: [String] = []
        var rate: Double { Double(pass) / Double(max(total, 1)) }
    }

    /// Renders every case; `conversation` maps a case's conversation field to (messages, extra variables).
    static func run(_ cases: [TemplateValue], _ loaded: Loaded,
                    conversation: (TemplateValue) -> ([TemplateValue], [String: TemplateValue])?) throws -> Outcome {
        var parsed: [String: Result<ChatTemplate, Error>] = [:]
        var o = Outcome()
        for c in cases {
            guard let name = c["template"]?.stringValue, let conv = c["conversation"], case .bool(let agp)? = c["add_generation_prompt"],
                  let (messages, kwargs) = conversation(conv) else {
                XCTFail("malformed case \(c)")
                continue
            }
            if parsed[name] == nil {
                let source = try String(contentsOf: loaded.templatesDir.appendingPathComponent(name), encoding: .utf8)
                parsed[name] = Result { try ChatTemplate(source) }
            }
            o.total += 1
            let label = "\(name) conv \(conv) agp \(agp)"
            let result: Result<String, Error> = Result {
                let t = try parsed[name]!.get()
                var ctx = loaded.specials
                for (k, v) in kwargs { ctx[k] = v }
                ctx["messages"] = .array(messages)
                ctx["add_generation_prompt"] = .bool(agp)
                return try t.render(ctx)
            }
            if let expected = c["expected"]?.stringValue {
                switch result {
                case .success(let got) where got == expected:
                    o.pass += 1
                case .success(let got):
                    o.failures.append("\(label): output differs at \(firstDifference(got, expected))")
                case .failure(let e):
                    o.failures.append("\(label): \(e)")
                }
            } else {
                let jinjaError = c["error"]?.stringValue ?? "?"
                switch result {
                case .success:
                    o.mustFailButRendered.append("\(label): jinja2 failed (\(jinjaError.prefix(120))) but we rendered")
                case .failure(let e):
                    if let why = errorMismatch(jinjaError, e) {
                        o.failures.append("\(label): both fail, but \(why)")
                    } else {
                        o.pass += 1
                    }
                }
            }
        }
        return o
    }

    /// The reference conversations (Tests/Fixtures/chat-conversations.json), no extra variables.
    func testRealTemplatesMatchJinja2() throws {
        guard let loaded = try Self.load() else { return }
        defer { TemplateClock.fix(nil) }
        guard let cases = loaded.root["cases"]?.arrayValue, let conversations = loaded.root["conversations"]?.arrayValue else {
            XCTFail("no cases in the expected file")
            return
        }
        let o = try Self.run(cases, loaded) { conv in
            guard case .int(let i) = conv, i >= 0, i < conversations.count,
                  let messages = conversations[i]["messages"]?.arrayValue else { return nil }
            return (messages, [:])
        }
        print("chat templates: \(o.pass)/\(o.total) cases identical to jinja2 (\(String(format: "%.1f", o.rate * 100))%)")
        for f in o.failures + o.mustFailButRendered { print("  FAIL \(f)") }
        XCTAssertGreaterThan(o.total, 300, "expected ~420 cases")
        XCTAssertGreaterThanOrEqual(o.rate, 0.90, "pass rate below 90%")
        XCTAssertEqual(o.mustFailButRendered, [], "cases where jinja2 fails must fail here too")
    }

    /// Our richer conversations: tools, tool calls and results, reasoning, list content, documents.
    func testRealTemplatesWithToolsAndExtrasMatchJinja2() throws {
        guard let loaded = try Self.load() else { return }
        defer { TemplateClock.fix(nil) }
        guard let cases = loaded.root["extra_cases"]?.arrayValue, let conversations = loaded.root["extra_conversations"]?.arrayValue else {
            XCTFail("no extra_cases in the expected file: re-run Tests/fetch-fixtures.sh")
            return
        }
        let o = try Self.run(cases, loaded) { conv in
            guard let name = conv.stringValue,
                  let c = conversations.first(where: { $0["name"]?.stringValue == name }),
                  let messages = c["messages"]?.arrayValue, let kwargs = c["kwargs"]?.objectValue else { return nil }
            var kw: [String: TemplateValue] = [:]
            for (k, v) in kwargs { kw[k] = v }
            return (messages, kw)
        }
        print("chat templates with tools/extras: \(o.pass)/\(o.total) cases identical to jinja2 (\(String(format: "%.1f", o.rate * 100))%)")
        for f in o.failures + o.mustFailButRendered { print("  FAIL \(f)") }
        XCTAssertGreaterThan(o.total, 400, "expected ~560 cases")
        XCTAssertGreaterThanOrEqual(o.rate, 0.90, "pass rate below 90%")
        XCTAssertEqual(o.mustFailButRendered, [], "cases where jinja2 fails must fail here too")
    }

    /// Checks that our error is the same kind as jinja2's: a syntax error for compile failures,
    /// `raise_exception` with the same message, otherwise a runtime error.
    static func errorMismatch(_ jinja: String, _ error: Error) -> String? {
        guard let e = error as? TemplateError else { return "we threw \(type(of: error)), not TemplateError" }
        if jinja.hasPrefix("compile:") || jinja.hasPrefix("TemplateSyntaxError") || jinja.hasPrefix("TemplateAssertionError") {
            return e.kind == .syntax ? nil : "jinja2 had a syntax error (\(jinja.prefix(100))), we: \(e)"
        }
        if jinja.hasPrefix("TemplateError: ") {
            let msg = String(jinja.dropFirst("TemplateError: ".count))
            return e.kind == .raised && e.message == msg ? nil : "jinja2 raised \(msg.debugDescription), we: \(e)"
        }
        return e.kind == .runtime ? nil : "jinja2 had a runtime error (\(jinja.prefix(100))), we: \(e)"
    }

    static func firstDifference(_ a: String, _ b: String) -> String {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        var i = 0
        while i < x.count, i < y.count, x[i] == y[i] { i += 1 }
        func ctx(_ s: [Unicode.Scalar]) -> String {
            let lo = max(0, i - 30), hi = min(s.count, i + 30)
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s[lo..<hi])
            return String(v).debugDescription
        }
        return "scalar \(i): got \(ctx(x)) expected \(ctx(y))"
    }
}

/// Small templates exercising the language (Tests/Fixtures/render-templates.py LANGUAGE_CASES),
/// with expected output or error from Python jinja2.
final class LanguageCaseTests: XCTestCase {
    func testLanguageCasesMatchJinja2() throws {
        let url = FixtureTests.cacheDir.appendingPathComponent("fixtures/chat-templates-expected.json")
        guard let data = try? Data(contentsOf: url) else {
            XCTFail("missing \(url.path): run Tests/fetch-fixtures.sh first")
            return
        }
        let root = try TemplateValue(jsonData: data)
        guard let cases = root["language_cases"]?.arrayValue, let fixedNow = root["fixed_now"]?.stringValue else {
            XCTFail("no language_cases in \(url.path): re-run Tests/fetch-fixtures.sh")
            return
        }
        let nums = fixedNow.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard nums.count == 6 else { XCTFail("bad fixed_now \(fixedNow)"); return }
        TemplateClock.fix(year: nums[0], month: nums[1], day: nums[2], hour: nums[3], minute: nums[4], second: nums[5])
        defer { TemplateClock.fix(nil) }
        var pass = 0
        var failures: [String] = []
        for c in cases {
            guard let name = c["name"]?.stringValue, let source = c["template"]?.stringValue,
                  let context = c["context"]?.objectValue else {
                XCTFail("malformed case \(c)")
                continue
            }
            var ctx: [String: TemplateValue] = [:]
            for (k, v) in context { ctx[k] = v }
            let result = Result { try ChatTemplate(source).render(ctx) }
            if let expected = c["expected"]?.stringValue {
                switch result {
                case .success(let got) where got == expected: pass += 1
                case .success(let got): failures.append("\(name): got \(got.debugDescription), expected \(expected.debugDescription)")
                case .failure(let e): failures.append("\(name): \(e), expected \(expected.debugDescription)")
                }
            } else {
                let jinjaError = c["error"]?.stringValue ?? "?"
                switch result {
                case .success(let got): failures.append("\(name): jinja2 failed (\(jinjaError)) but we rendered \(got.debugDescription)")
                case .failure(let e):
                    if let why = FixtureTests.errorMismatch(jinjaError, e) { failures.append("\(name): \(why)") } else { pass += 1 }
                }
            }
        }
        print("language cases: \(pass)/\(cases.count) identical to jinja2")
        for f in failures { print("  FAIL \(f)") }
        XCTAssertGreaterThan(cases.count, 100)
        XCTAssertEqual(failures, [])
    }
}
