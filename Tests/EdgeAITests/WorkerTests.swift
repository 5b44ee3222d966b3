import Foundation
import Hummingbird
import XCTest
@testable import EdgeAI
import WorkerApp

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal HTTP/1.1 client over a loopback socket (no proxies, no client library magic).
struct HTTPResult {
    var status: Int
    var headers: [String: String]   // lower-cased names
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

func httpPost(port: Int, path: String, body: String, contentType: String = "application/json") throws -> HTTPResult {
    try httpRequest(port: port, method: "POST", path: path, headers: ["Content-Type": contentType], body: body)
}

/// One request on a fresh connection (`Connection: close`); the response read to its end.
func httpRequest(port: Int, method: String, path: String, headers: [String: String] = [:], body: String? = nil) throws -> HTTPResult {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw AIError.internal("socket failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw AIError.internal("connect to port \(port) failed") }
    let payload = Array((body ?? "").utf8)
    var requestHead = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
    for (name, value) in headers.sorted(by: { $0.key < $1.key }) { requestHead += "\(name): \(value)\r\n" }
    if body != nil { requestHead += "Content-Length: \(payload.count)\r\n" }
    requestHead += "Connection: close\r\n\r\n"
    var request = Array(requestHead.utf8)
    request += payload
    var sent = 0
    while sent < request.count {
        let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw AIError.internal("send failed") }
        sent += n
    }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    guard let split = findSubsequence(response, Array("\r\n\r\n".utf8)) else { throw AIError.internal("no header end in \(response.count) bytes") }
    let head = String(decoding: response[0..<split], as: UTF8.self).components(separatedBy: "\r\n")
    let statusParts = head[0].split(separator: " ")
    guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw AIError.internal("bad status line \(head[0])") }
    var headers: [String: String] = [:]
    for line in head.dropFirst() {
        if let colon = line.firstIndex(of: ":") {
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }
    var body = Array(response[(split + 4)...])
    if headers["transfer-encoding"]?.lowercased() == "chunked" { body = try dechunk(body) }
    return HTTPResult(status: status, headers: headers, body: body)
}

private func findSubsequence(_ a: [UInt8], _ b: [UInt8], from: Int = 0) -> Int? {
    guard a.count >= b.count else { return nil }
    var i = from
    while i + b.count <= a.count {
        if a[i..<(i + b.count)].elementsEqual(b) { return i }
        i += 1
    }
    return nil
}

private func dechunk(_ data: [UInt8]) throws -> [UInt8] {
    var out: [UInt8] = []
    var i = 0
    while true {
        guard let lineEnd = findSubsequence(data, [13, 10], from: i) else { throw AIError.internal("bad chunk header") }
        let sizeText = String(decoding: data[i..<lineEnd], as: UTF8.self).split(separator: ";")[0]
        guard let size = Int(sizeText, radix: 16) else { throw AIError.internal("bad chunk size \(sizeText)") }
        i = lineEnd + 2
        if size == 0 { return out }
        guard i + size <= data.count else { throw AIError.internal("truncated chunk") }
        out += data[i..<(i + size)]
        i += size + 2
    }
}

/// The worker example over real HTTP on loopback: started and stopped by the test.
final class WorkerTests: XCTestCase {
    func testWorkerOverHTTP() async throws {
        let ai = try TestModel.ai()
        let worker = try await RunningWorker.start(ai: ai, configuration: WorkerConfiguration(host: "127.0.0.1", port: 0, model: TestModel.id), state: WorkerState())
        defer { worker.server.cancel() }
        let p = worker.port
        XCTAssertNotEqual(p, 0)

        try await Task.detached {
            // The seed's route.
            let ok = try httpPost(port: p, path: "/", body: #"{"prompt": "Explain the edge to me using only emojis?"}"#)
            XCTAssertEqual(ok.status, 200)
            XCTAssertTrue(ok.headers["content-type"]?.hasPrefix("application/json") ?? false)
            let v = try JSONParser.parse(ok.body)
            XCTAssertEqual(v.objectKeys, ["generated_text"])
            guard case .string(let generated)? = v["generated_text"] else { return XCTFail(ok.text) }
            XCTAssertFalse(generated.isEmpty)

            let badJSON = try httpPost(port: p, path: "/", body: "{not json")
            XCTAssertEqual(badJSON.status, 400)
            XCTAssertEqual(badJSON.text, "Invalid JSON")
            let noPrompt = try httpPost(port: p, path: "/", body: #"{"text": "hi"}"#)
            XCTAssertEqual(noPrompt.status, 400)
            XCTAssertEqual(noPrompt.text, "Missing 'prompt' field")
            let wrongType = try httpPost(port: p, path: "/", body: #"{"prompt": 42}"#)
            XCTAssertEqual(wrongType.status, 500)
            XCTAssertEqual(wrongType.text, "AI processing error: 5006: Type mismatch of '/messages/1/content', 'number' not in 'string'")

            // The REST API.
            let run = try httpPost(port: p, path: "/ai/run/\(TestModel.id)",
                                   body: #"{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"List three colors."}],"max_tokens":12,"temperature":0}"#)
            XCTAssertEqual(run.status, 200)
            XCTAssertEqual(run.text, #"{"result":{"response":"Here are three colors:\n\n- Red\n- Blue","usage":{"prompt_tokens":24,"completion_tokens":12,"total_tokens":36}},"success":true,"errors":[],"messages":[]}"#)
            let account = try httpPost(port: p, path: "/accounts/abc123/ai/run/%40cf/huggingfacetb/smollm2-135m-instruct",
                                       body: #"{"prompt":"Hi","max_tokens":2}"#)
            XCTAssertEqual(account.status, 200)

            let stream = try httpPost(port: p, path: "/ai/run/\(TestModel.id)",
                                      body: #"{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"List three colors."}],"max_tokens":12,"temperature":0,"stream":true}"#)
            XCTAssertEqual(stream.status, 200)
            XCTAssertEqual(stream.headers["content-type"], "text/event-stream")
            let (chunks, done) = try parseSSE(stream.body)
            XCTAssertTrue(done)
            let text = chunks.compactMap { c -> String? in if case .string(let s)? = c["response"] { return s }; return nil }.joined()
            XCTAssertEqual(text, "Here are three colors:\n\n- Red\n- Blue")
            XCTAssertEqual(chunks.last?["usage"]?.objectKeys, ["prompt_tokens", "completion_tokens", "total_tokens"])

            let unknown = try httpPost(port: p, path: "/ai/run/@cf/nope/nothing", body: #"{"prompt":"Hi"}"#)
            XCTAssertEqual(unknown.status, 400)
            XCTAssertEqual(unknown.text, #"{"result":null,"success":false,"errors":[{"code":5007,"message":"No such model @cf/nope/nothing or task"}],"messages":[]}"#)
            let invalid = try httpPost(port: p, path: "/ai/run/\(TestModel.id)", body: #"{"prompt":"Hi","top_k":99}"#)
            XCTAssertEqual(invalid.status, 400)
            XCTAssertEqual(invalid.text, #"{"result":null,"success":false,"errors":[{"code":5006,"message":"Value of '/top_k' out of range: 99 not in [1, 50]"}],"messages":[]}"#)
            let tooLong = try httpPost(port: p, path: "/ai/run/\(TestModel.id)", body: #"{"prompt":"Hi","max_tokens":9000}"#)
            XCTAssertEqual(tooLong.status, 413)
            XCTAssertTrue(tooLong.text.contains(#""code":5021"#), tooLong.text)
        }.value

        await worker.stop()
    }
}
