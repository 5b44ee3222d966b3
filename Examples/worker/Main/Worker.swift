import ArgumentParser
import EdgeAI
import Foundation
import Hummingbird
import WorkerApp

@main
struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve the Workers AI API over HTTP from local GGUF models.",
        discussion: """
            POST /                     {"prompt": "…"} → {"generated_text": "…"} (the seed worker)
            POST /ai/run/<model id>    Workers AI request → REST envelope, or SSE with "stream": true
            """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port).") var port = 8787
    @Option(help: "Model id (or GGUF path) for POST / (default: the catalog's default).") var model: String?
    @Option(name: .shortAndLong, help: "Compute threads (0: all cores).") var threads = 0

    func run() async throws {
        do {
            let ai = try AI(threads: threads)
            var id = model ?? ai.defaultModel
            if let m = model, m.hasSuffix(".gguf") || FileManager.default.fileExists(atPath: m) {
                ai.register(m, path: m)
                id = m
            }
            guard let id else { throw AIError(code: 5007, message: "No model given and no catalog default; pass --model") }
            try await ai.preload(id)
            let config = WorkerConfiguration(host: host, port: port, model: id)
            let app = makeWorkerApplication(ai: ai, configuration: config) { port in
                FileHandle.standardError.write(Data("worker: serving \(id) on http://\(config.host):\(port)\n".utf8))
            }
            try await app.runService()
        } catch let e as AIError {
            FileHandle.standardError.write(Data("error \(e.code): \(e.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}
