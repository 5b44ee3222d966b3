import XCTest
@testable import EdgeAI
@testable import Grammar

/// Compiles a schema written as JSON text.
func compile(_ schema: String, file: StaticString = #filePath, line: UInt = #line) throws -> GrammarAutomaton {
    let value = try JSONParser.parse(schema)
    return try GrammarAutomaton(SchemaCompiler.compile(value.schemaValue))
}

/// The compiler's error for a schema (nil when it compiles).
func compileError(_ schema: String) throws -> GrammarError? {
    let value = try JSONParser.parse(schema)
    do {
        _ = try SchemaCompiler.compile(value.schemaValue)
        return nil
    } catch {
        return error
    }
}

final class SchemaCompilerTests: XCTestCase {
    func check(_ schema: String, accepts good: [String], rejects bad: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let a = try compile(schema)
        for g in good { XCTAssertTrue(a.accepts(g), "should accept \(g)", file: file, line: line) }
        for b in bad { XCTAssertFalse(a.accepts(b), "should reject \(b)", file: file, line: line) }
    }

    func testObjectWithRequiredAndOptionalPropertiesInSchemaOrder() throws {
        let schema = #"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},"required":["name","tags"]}"#
        try check(schema, accepts: [
            #"{"name":"Ann","age":3,"tags":[]}"#,
            #"{"name":"Ann","tags":["a","b"]}"#,
            "{\n  \"name\": \"Ann\",\n  \"age\": 3,\n  \"tags\": [\"x\"]\n}",
            #"{ "name": "Ann", "tags": [ "x" ] }"#,
        ], rejects: [
            #"{"age":3,"tags":[]}"#,                 // name missing
            #"{"name":"Ann"}"#,                       // tags missing
            #"{"tags":[],"name":"Ann"}"#,             // out of schema order
            #"{"name":"Ann","tags":[],"extra":1}"#,   // additionalProperties false by default
            #"{"name":"Ann","age":3.5,"tags":[]}"#,   // not an integer
            #"{"name":"Ann","age":3,"tags":[],}"#,    // trailing comma
            #" {"name":"Ann","tags":[]}"#,            // leading whitespace
            #"{"name":"Ann","tags":[]} "#,            // trailing whitespace
        ])
    }

    func testWhitespaceIsBounded() throws {
        let a = try compile(#"{"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"]}"#)
        XCTAssertTrue(a.accepts("{\n" + String(repeating: " ", count: 16) + "\"a\": true\n}"))
        XCTAssertFalse(a.accepts("{\n" + String(repeating: " ", count: 17) + "\"a\": true\n}"))
        XCTAssertFalse(a.accepts("{\n\n\"a\": true}"))       // two newlines
        XCTAssertFalse(a.accepts("{  \"a\": true}"))          // two spaces
        XCTAssertFalse(a.accepts("{\"a\" : true}"))           // space before the colon
        XCTAssertFalse(a.accepts("{\"a\":\ttrue}"))             // a tab alone is not a run
    }

    func testArraysWithMinAndMaxItems() throws {
        let schema = #"{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3}"#
        try check(schema, accepts: ["[1,2]", "[1, 2, 3]", "[\n  1,\n  2\n]"], rejects: ["[]", "[1]", "[1,2,3,4]", "[1,,2]", "[1,2,]"])
        try check(#"{"type":"array","maxItems":0}"#, accepts: ["[]", "[ ]"], rejects: ["[1]"])
        try check(#"{"type":"array"}"#, accepts: ["[]", #"[1,"a",{"b":null},[true]]"#], rejects: ["[", "[1 2]"])
    }

    func testEnumConstAndPrimitives() throws {
        try check(#"{"enum":["red","green",3,null,{"a":[1]}]}"#, accepts: [#""red""#, #""green""#, "3", "null", #"{"a":[1]}"#], rejects: [#""blue""#, "4", #""Red""#])
        try check(#"{"const":"x"}"#, accepts: [#""x""#], rejects: [#""y""#])
        try check(#"{"type":"string","enum":["a",1]}"#, accepts: [#""a""#], rejects: ["1"])
        try check(#"{"type":"boolean"}"#, accepts: ["true", "false"], rejects: ["True", "1"])
        try check(#"{"type":"null"}"#, accepts: ["null"], rejects: ["nil"])
        try check(#"{"type":["string","null"]}"#, accepts: ["null", #""s""#], rejects: ["1"])
        try check(#"{"type":"number"}"#, accepts: ["0", "-1.5", "3e10", "1E-2", "123456789012345.5"], rejects: ["01", "1.", ".5", "+1", "1e", "1e100", "1234567890123456"])
    }

    func testStrings() throws {
        try check(#"{"type":"string"}"#, accepts: [#""""#, #""a\"b\\c\n\u00e9""#, "\"é€😀\""], rejects: ["\"a\nb\"", #""\x""#, #""\u00g0""#, "\"abc"])
        try check(#"{"type":"string","minLength":2,"maxLength":4}"#, accepts: [#""ab""#, #""abcd""#, #""é😀""#, #""\n\t""#], rejects: [#""a""#, #""abcde""#])
        // invalid UTF-8 (an overlong form, a lone continuation byte) is never a string character
        let a = try compile(#"{"type":"string"}"#)
        XCTAssertEqual(a.next(a.initialState, bytes: [0x22, 0xC0, 0x80]), GrammarAutomaton.dead)
        XCTAssertEqual(a.next(a.initialState, bytes: [0x22, 0x80]), GrammarAutomaton.dead)
        XCTAssertEqual(a.next(a.initialState, bytes: [0x22, 0xED, 0xA0, 0x80]), GrammarAutomaton.dead) // surrogate
    }

    func testFormats() throws {
        try check(#"{"type":"string","format":"date"}"#,
                  accepts: [#""2024-02-29""#, #""2000-02-29""#, #""1999-12-31""#, #""0001-01-01""#, #""2023-04-30""#],
                  rejects: [#""1900-02-29""#, #""2023-02-29""#, #""2023-04-31""#, #""2023-13-01""#, #""2023-00-10""#, #""0000-01-01""#, #""2023-1-01""#])
        try check(#"{"type":"string","format":"time"}"#,
                  accepts: [#""23:59:59Z""#, #""00:00:00+05:30""#, #""12:30:00.123-01:00""#],
                  rejects: [#""24:00:00Z""#, #""12:60:00Z""#, #""12:00:00""#, #""12:00Z""#])
        try check(#"{"type":"string","format":"date-time"}"#, accepts: [#""2024-05-01T08:00:00Z""#], rejects: [#""2024-05-01 08:00:00Z""#])
        try check(#"{"type":"string","format":"uuid"}"#, accepts: [#""123e4567-e89b-12d3-a456-426614174000""#, #""123E4567-E89B-12D3-A456-426614174000""#],
                  rejects: [#""123e4567e89b12d3a456426614174000""#, #""123e4567-e89b-12d3-a456-42661417400g""#])
    }

    func testIntegerRanges() throws {
        // exhaustive over a window around each range: accepted exactly when inside
        let ranges: [(Int64?, Int64?)] = [(0, 100), (-5, 5), (17, 2023), (-120, -7), (1, nil), (nil, -3), (nil, 250), (999, 1000), (5, 5), (0, 0)]
        for (lo, hi) in ranges {
            var schema = #"{"type":"integer""#
            if let lo { schema += ",\"minimum\":\(lo)" }
            if let hi { schema += ",\"maximum\":\(hi)" }
            schema += "}"
            let a = try compile(schema)
            for v in -2100...2100 {
                let inside = (lo.map { Int64(v) >= $0 } ?? true) && (hi.map { Int64(v) <= $0 } ?? true)
                XCTAssertEqual(a.accepts(String(v)), inside, "\(schema) on \(v)")
            }
            XCTAssertFalse(a.accepts("007"))
        }
        try check(#"{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10}"#, accepts: ["1", "9"], rejects: ["0", "10"])
        try check(#"{"type":"integer","minimum":0.5,"maximum":2.5}"#, accepts: ["1", "2"], rejects: ["0", "3"])
        try check(#"{"type":"integer"}"#, accepts: ["0", "-0", "-12", "999999999999999"], rejects: ["1.0", "1e3", "1000000000000000", "--1"])
    }

    func testRefsDefsAndRecursion() throws {
        let schema = #"""
        {"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}},
         "$ref":"#/$defs/node"}
        """#
        try check(schema, accepts: [#"{"v":1}"#, #"{"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]}"#],
                  rejects: [#"{"v":1,"kids":[{}]}"#, #"{"kids":[]}"#])
        try check(##"{"definitions":{"a b":{"type":"boolean"}},"type":"object","properties":{"x":{"$ref":"#/definitions/a b"}},"required":["x"]}"##,
                  accepts: [#"{"x":true}"#], rejects: [#"{"x":1}"#])
    }

    func testAnyOfOneOfAllOf() throws {
        try check(#"{"anyOf":[{"type":"integer","minimum":0,"maximum":9},{"type":"string","maxLength":1}]}"#,
                  accepts: ["5", #""x""#], rejects: ["10", #""xy""#])
        try check(#"{"oneOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},{"type":"object","properties":{"b":{"type":"boolean"}},"required":["b"]}]}"#,
                  accepts: [#"{"a":1}"#, #"{"b":false}"#], rejects: [#"{"a":true}"#, #"{}"#])
        try check(#"{"allOf":[{"type":"boolean"}]}"#, accepts: ["true"], rejects: ["1"])
    }

    func testMapsAndFreeObjects() throws {
        try check(#"{"type":"object","additionalProperties":{"type":"integer"}}"#, accepts: ["{}", #"{"a":1,"b":2}"#], rejects: [#"{"a":"x"}"#])
        try check(#"{"type":"object"}"#, accepts: ["{}", #"{"a":[1,{"b":null}]}"#], rejects: ["[]", #"{"a"}"#])
        let any = try GrammarAutomaton(SchemaCompiler.anyObject())
        XCTAssertTrue(any.accepts(#"{"x": {"y": [1, 2.5, "z", true, null]}}"#))
        XCTAssertFalse(any.accepts("[1]"))
        XCTAssertFalse(any.accepts("\"s\""))
        XCTAssertTrue(any.isComplete(any.next(any.initialState, bytes: "{}".utf8)))
    }

    func testRequiredPropertyWithoutSchemaTakesAnyValue() throws {
        try check(#"{"type":"object","properties":{"a":{"type":"integer"}},"required":["b"]}"#,
                  accepts: [#"{"b":[1]}"#, #"{"a":1,"b":"x"}"#], rejects: [#"{"a":1}"#])
    }

    func testUnsupportedKeywordsAreNamed() throws {
        let cases: [(String, String)] = [
            (#"{"type":"string","pattern":"^a+$"}"#, "pattern"),
            (#"{"type":"object","properties":{"x":{"type":"string","format":"email"}}}"#, "format"),
            (#"{"type":"number","minimum":0}"#, "minimum"),
            (#"{"type":"array","uniqueItems":true}"#, "uniqueItems"),
            (#"{"type":"object","patternProperties":{"a":{}}}"#, "patternProperties"),
            (#"{"type":"object","properties":{"a":{}},"additionalProperties":true}"#, "additionalProperties"),
            (#"{"allOf":[{"type":"string"},{"maxLength":3}]}"#, "allOf"),
            (#"{"$ref":"http://example.com/s.json"}"#, "$ref"),
            (#"{"type":"integer","multipleOf":2}"#, "multipleOf"),
            (#"{"type":"object","properties":{"a":{"type":"string","requird":true}}}"#, "requird"),
            (#"{"type":"integer","format":"int32"}"#, "format"),
        ]
        for (schema, keyword) in cases {
            let e = try compileError(schema)
            XCTAssertEqual(e?.kind, .unsupportedKeyword, schema)
            XCTAssertEqual(e?.keyword, keyword, schema)
            XCTAssertTrue(e?.message.contains("'\(keyword)'") ?? false, e?.message ?? "no error for \(schema)")
        }
        // annotations are fine
        XCTAssertNil(try compileError(#"{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"T","description":"d","type":"string","examples":["x"],"default":"y"}"#))
    }

    func testInvalidSchemas() throws {
        for schema in [#"{"type":"strin"}"#, ##"{"$ref":"#/$defs/missing"}"##, #"{"type":"integer","minimum":5,"maximum":1}"#,
                       #"{"type":"string","minLength":-1}"#, #"{"enum":[]}"#, "false", #"{"type":"array","minItems":3,"maxItems":2}"#] {
            let e = try compileError(schema)
            XCTAssertEqual(e?.kind, .invalidSchema, schema)
        }
        XCTAssertEqual(try compileError(#"{"type":"string","maxLength":100000}"#)?.kind, .tooLarge)
    }

    func testLeftRecursionIsRefused() {
        var g = Grammar()
        let a = g.declare("a")
        g.define(a, [[.rule(a)] + Grammar.literal("x"), Grammar.literal("y")])
        g.start = a
        XCTAssertThrowsError(try GrammarAutomaton(g))
    }

    func testStatesRepeatInsideStrings() throws {
        // the token-mask cache relies on this: after the first character of a string, characters lead back to one state
        let a = try compile(#"{"type":"object","properties":{"s":{"type":"string"}},"required":["s"]}"#)
        let s1 = a.next(a.initialState, bytes: #"{"s":"ab"#.utf8)
        let s2 = a.next(s1, bytes: "cdef".utf8)
        XCTAssertEqual(s1, s2)
    }
}

final class TokenMaskTests: XCTestCase {
    /// A toy vocabulary: every byte string listed, id = position; "<eos>" is the end token (no bytes).
    func masker(_ schema: String, vocab: [String]) throws -> TokenMasker {
        let trie = TokenTrie(vocabularySize: vocab.count + 1) { id in id < vocab.count ? Array(vocab[Int(id)].utf8) : nil }
        return TokenMasker(automaton: try compile(schema), trie: trie, endTokens: [Int32(vocab.count)])
    }

    func allowed(_ m: TokenMasker, _ vocab: [String]) -> [String] {
        let mask = m.allowedMask()
        return (0...vocab.count).filter { mask[$0 >> 6] & (1 << UInt64($0 & 63)) != 0 }.map { $0 < vocab.count ? vocab[$0] : "<eos>" }
    }

    func testMaskMatchesBruteForce() throws {
        let vocab = ["{", "}", "\"", "\"a", "a", "ab", "\":", ":", " ", "1", "12", "1}", "true", "tr", "ue", ",", "\"b\":", "x\"", "\n", "  ", "é", "\u{FFFD}", "\"a\":1}", "[", "]"]
        let schema = #"{"type":"object","properties":{"a":{"type":"integer","maximum":20},"b":{"type":"boolean"}},"required":["a"]}"#
        let m = try masker(schema, vocab: vocab)
        let automaton = m.automaton
        // walk a document token by token; at each step the mask equals the brute-force check of every token
        for token in ["{", "\"a", "\":", "1", "}"] {
            let brute = vocab.filter { automaton.next(m.state, bytes: $0.utf8) >= 0 } + (automaton.isAccepting(m.state) ? ["<eos>"] : [])
            XCTAssertEqual(Set(allowed(m, vocab)), Set(brute), "after \(String(decoding: m.text, as: UTF8.self))")
            try m.accept(Int32(vocab.firstIndex(of: token)!))
        }
        XCTAssertTrue(m.isComplete)
        XCTAssertEqual(allowed(m, vocab), ["<eos>"])
        XCTAssertEqual(String(decoding: m.text, as: UTF8.self), #"{"a":1}"#)
        XCTAssertThrowsError(try m.accept(0))
    }

    func testApplySetsMinusInfinity() throws {
        let vocab = ["{", "}", "a", "\"", "[" ]
        let m = try masker(#"{"type":"object"}"#, vocab: vocab)
        var logits: [Float] = [1, 2, 3, 4, 5, 6]
        let n = logits.withUnsafeMutableBufferPointer { m.apply(to: $0) }
        XCTAssertEqual(n, 1)
        XCTAssertEqual(logits, [1, -.infinity, -.infinity, -.infinity, -.infinity, -.infinity])
    }
}
