import EdgeAI
import Foundation
import Hummingbird

/// Settings of the example worker.
public struct WorkerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Model of `POST /` (the seed worker's route).
    public var model: String
    public var systemPrompt: String
    public var maxTokens: Int
    public var temperature: Double

    public init(host: String = "127.0.0.1", port: Int = 8787, model: String,
                systemPrompt: String = "You are a helpful assistant.", maxTokens: Int = 256, temperature: Double = 0.7) {
        self.host = host
        self.port = port
        self.model = model
        self.systemPrompt = systemPrompt
        self.maxTokens = maxTokens
        self.temperature = temperature
    }
}

/// The worker's HTTP routes:
/// - `POST /`: the seed worker. `{"prompt": "…"}` → `{"generated_text": "…"}` (system message,
///   max_tokens 256, temperature 0.7); 400 `Invalid JSON`; 400 `Missing 'prompt' field`;
///   500 `AI processing error: <code>: <message>`.
/// - `POST /ai/run/<model id>` (also `/accounts/<account>/ai/run/<model id>`): the Workers AI REST
///   API. A Workers AI request body → `{"result":{…},"success":true,"errors":[],"messages":[]}`, or
///   `text/event-stream` for `"stream": true`; errors → `{"result":null,"success":false,"errors":[{"code":…,"message":"…"}],"messages":[]}`
///   with status 400 (5006, 5007), 413 (5021), 408 (3008) or 500.
public func makeWorkerRouter(ai: AI, configuration: WorkerConfiguration) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)

    router.post("/") { request, context -> Response in
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: context.maxUploadSize)
        } catch {
            return text(.contentTooLarge, "Request body too large")
        }
        guard let json = try? JSONParser.parse(body.readableBytesView) else {
            return text(.badRequest, "Invalid JSON")
        }
        // JavaScript truthiness of body.prompt: absent, null, false, 0 and "" count as missing.
        let prompt = json["prompt"]
        switch prompt {
        case nil, .null?, .bool(false)?, .string("")?: return text(.badRequest, "Missing 'prompt' field")
        case .number(let v, _)? where v == 0: return text(.badRequest, "Missing 'prompt' field")
        default: break
        }
        // The seed's call, built as JSON so a non-string prompt fails validation as on Workers AI.
        let call: JSONValue = .object([
            ("messages", .array([
                .object([("role", .string("system")), ("content", .string(configuration.systemPrompt))]),
                .object([("role", .string("user")), ("content", prompt ?? .null)]),
            ])),
            ("max_tokens", .number(Double(configuration.maxTokens), literal: String(configuration.maxTokens))),
            ("temperature", .number(configuration.temperature, literal: String(configuration.temperature))),
        ])
        do {
            let input = try AIInput(jsonValue: call)
            let output = try await ai.run(configuration.model, input)
            var w = JSONWriter()
            w.raw("{")
            w.key("generated_text")
            w.string(output.response)
            w.raw("}")
            return bytes(.ok, w.bytes, contentType: "application/json")
        } catch {
            let message = (error as? AIError)?.description ?? String(describing: error)
            return text(.internalServerError, "AI processing error: \(message)")
        }
    }

    @Sendable func runModel(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let path = request.uri.path
        guard let range = path.range(of: "/ai/run/") else { return envelope(AIError.noSuchModel("")) }
        let rawID = String(path[range.upperBound...])
        let model = rawID.removingPercentEncoding ?? rawID
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: context.maxUploadSize)
        } catch {
            return envelope(AIError(code: 3006, message: "Request is too large"))
        }
        do {
            switch try await ai.respond(model, json: body.readableBytesView) {
            case .json(let result):
                var out: [UInt8] = Array("{\"result\":".utf8)
                out += result
                out += Array(",\"success\":true,\"errors\":[],\"messages\":[]}".utf8)
                return bytes(.ok, out, contentType: "application/json")
            case .eventStream(let events):
                var headers = HTTPFields()
                headers[.contentType] = SSE.contentType
                headers[.cacheControl] = "no-cache"
                return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                    for try await event in events {
                        try await writer.write(ByteBuffer(bytes: event))
                    }
                    try await writer.finish(nil)
                })
            }
        } catch {
            let e = (error as? AIError) ?? AIError.internal(String(describing: error))
            return envelope(e)
        }
    }
    router.post("/ai/run/**", use: runModel)
    router.post("/accounts/:account/ai/run/**", use: runModel)
    return router
}

/// The worker as a Hummingbird application. `onServerRunning` receives the bound port
/// (useful with port 0, which picks a free one).
public func makeWorkerApplication(
    ai: AI, configuration: WorkerConfiguration, onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    Application(
        router: makeWorkerRouter(ai: ai, configuration: configuration),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "EdgeAI-worker"),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) }
    )
}

private func bytes(_ status: HTTPResponse.Status, _ body: [UInt8], contentType: String) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = contentType
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
}

private func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
    bytes(status, Array(message.utf8), contentType: "text/plain;charset=UTF-8")
}

private func envelope(_ error: AIError) -> Response {
    bytes(HTTPResponse.Status(code: error.httpStatus), error.envelopeJSON, contentType: "application/json")
}
