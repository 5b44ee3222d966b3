import Foundation
import XCTest
@testable import EdgeAI
@testable import WorkerApp

/// A worker on a loopback port for one test.
struct RunningWorker {
    let port: Int
    let state: WorkerState
    let server: Task<Void, Error>

    static func start(ai: AI, configuration: WorkerConfiguration, state: WorkerState = WorkerState(readiness: .ready)) async throws -> RunningWorker {
        let portBox = Locked<Int?>(nil)
        setenv("LOG_LEVEL", "critical", 1)
        let app = makeWorkerApplication(ai: ai, configuration: configuration, state: state) { port in portBox.withLock { $0 = port } }
        let server = Task { try await app.run() }
        for _ in 0..<250 {
            if let p = portBox.withLock({ $0 }) { return RunningWorker(port: p, state: state, server: server) }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        server.cancel()
        throw AIError.internal("the worker did not start")
    }

    func stop() async {
        server.cancel()
        _ = await server.result
    }

    /// Runs a blocking HTTP call on a GCD thread: never on the cooperative pool, which the
    /// server's handlers need (2 threads on a 2-core machine).
    func call(_ method: String, _ path: String, headers: [String: String] = [:], body: String? = nil) async throws -> HTTPResult {
        let port = self.port
        var h = headers
        if body != nil, h["Content-Type"] == nil { h["Content-Type"] = "application/json" }
        let allHeaders = h
        return try await withCheckedThrowingContinuation { c in
            DispatchQueue.global().async {
                c.resume(with: Result { try httpRequest(port: port, method: method, path: path, headers: allHeaders, body: body) })
            }
        }
    }
}
