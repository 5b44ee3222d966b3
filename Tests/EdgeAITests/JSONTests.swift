import XCTest
@testable import EdgeAI

/// Our JSON writer must produce what JavaScript's JSON.stringify produces (Workers AI's bytes).
final class JSONWriterTests: XCTestCase {
    private func js(_ s: String) -> String {
        var w = JSONWriter()
        w.string(s)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    func testStringEscapingMatchesJSONStringify() {
        // Expected values are what JSON.stringify returns in V8.
        XCTAssertEqual(js("plain"), #""plain""#)
        XCTAssertEqual(js("a\"b\\c"), #""a\"b\\c""#)
        XCTAssertEqual(js("/path/</script>"), #""/path/</script>""#)  // "/" is not escaped
        XCTAssertEqual(js("\u{08}\u{0C}\n\r\t"), #""\b\f\n\r\t""#)
        XCTAssertEqual(js("\u{00}\u{01}\u{1F}"), #""\u0000\u0001\u001f""#)  // lowercase hex
        XCTAssertEqual(js("\u{7F}é€😀\u{2028}"), "\"\u{7F}é€😀\u{2028}\"")   // non-ASCII and DEL as is
    }

    func testNumbersMatchJavaScript() {
        let cases: [(Double, String)] = [
            (0, "0"), (-0.0, "0"), (1, "1"), (-7, "-7"), (0.5, "0.5"), (0.1, "0.1"), (1.1, "1.1"),
            (0.001, "0.001"), (0.000001, "0.000001"), (0.0000001, "1e-7"), (1.5e-10, "1.5e-10"),
            (123456789012, "123456789012"), (1e21, "1e+21"), (1.5e300, "1.5e+300"), (2.5e20, "250000000000000000000"),
            (9999999999, "9999999999"), (.nan, "null"), (.infinity, "null"),
        ]
        for (v, s) in cases { XCTAssertEqual(JSONWriter.javaScriptNumber(v), s, "\(v)") }
    }

    func testResponseBytes() {
        let out = AIOutput(response: "Hello", usage: AIUsage(promptTokens: 12, completionTokens: 2))
        XCTAssertEqual(String(decoding: out.jsonBytes, as: UTF8.self),
                       #"{"response":"Hello","usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}"#)
    }

    func testSSEFraming() {
        let chunks = [
            AIChunk(response: "Hello"),
            AIChunk(response: " there"),
            AIChunk(response: "", usage: AIUsage(promptTokens: 12, completionTokens: 2)),
        ]
        XCTAssertEqual(String(decoding: SSE.encode(chunks), as: UTF8.self),
                       "data: {\"response\":\"Hello\"}\n\ndata: {\"response\":\" there\"}\n\ndata: {\"response\":\"\",\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":2,\"total_tokens\":14}}\n\ndata: [DONE]\n\n")
        XCTAssertEqual(String(decoding: AIChunk(response: "a\nb").sseEvent, as: UTF8.self), "data: {\"response\":\"a\\nb\"}\n\n")
        XCTAssertEqual(SSE.contentType, "text/event-stream")
    }
}

final class JSONParserTests: XCTestCase {
    func testValues() throws {
        let v = try JSONParser.parse(#" {"a": [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00\n"], "b": {}, "a2": []} "#)
        XCTAssertEqual(v["a"], .array([.number(1, literal: "1"), .number(-2500, literal: "-2.5e3"), .bool(true), .bool(false), .null, .string("xé😀\n")]))
        XCTAssertEqual(v.objectKeys, ["a", "b", "a2"])
        XCTAssertEqual(v["b"], .object([]))
    }

    func testDuplicateKeysLastWins() throws {
        XCTAssertEqual(try JSONParser.parse(#"{"k": 1, "k": "two"}"#)["k"], .string("two"))
    }

    func testLoneSurrogatesBecomeReplacementCharacters() throws {
        XCTAssertEqual(try JSONParser.parse(#""\ud83d""#), .string("\u{FFFD}"))
        XCTAssertEqual(try JSONParser.parse(#""\ude00x""#), .string("\u{FFFD}x"))
    }

    func testByteOrderMarkIsSkipped() throws {
        XCTAssertEqual(try JSONParser.parse([0xEF, 0xBB, 0xBF] + Array("1".utf8)), .number(1, literal: "1"))
    }

    func testRejects() {
        let bad = ["", " ", "01", "1.", ".5", "-", "+1", "1e", "[1,]", "{\"a\"}", "{\"a\":1,}", "\"\t\"", "\"\\x\"", "\"\\u12\"",
                   "tru", "nul", "[", "\"abc", "{} {}", "NaN", "Infinity"]
        for s in bad {
            XCTAssertThrowsError(try JSONParser.parse(s), s)
        }
        XCTAssertThrowsError(try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]))  // invalid UTF-8
        XCTAssertThrowsError(try JSONParser.parse(String(repeating: "[", count: 10000) + String(repeating: "]", count: 10000)))
    }

    func testRoundTripThroughWriter() throws {
        let text = #"{"a":[1,-2500,true,false,null,"xé😀\n"],"b":{"c":0.25}}"#
        var w = JSONWriter()
        w.value(try JSONParser.parse(text))
        XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), text)
    }
}
