import Foundation
import XCTest
@testable import EdgeAI

/// Counts calls of a producer and hands out distinct answers, so a second computation shows.
private final class Producer: @unchecked Sendable {
    private let calls = Locked(0)
    var count: Int { calls.withLock { $0 } }

    /// A JSON body naming the call number, after an optional delay.
    func json(delay: Double = 0) -> @Sendable () async throws -> AI.ResponseBody {
        { [self] in
            let n = calls.withLock { $0 += 1; return $0 }
            if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay * 1e9)) }
            return .json(Array("{\"call\":\(n),\"nonce\":\"\(UUID().uuidString)\"}".utf8))
        }
    }

    /// Three events (spaced by `gap` seconds) naming the call number.
    func events(gap: Double = 0) -> @Sendable () async throws -> AI.ResponseBody {
        { [self] in
            let n = calls.withLock { $0 += 1; return $0 }
            let nonce = UUID().uuidString
            let (stream, c) = AsyncThrowingStream<[UInt8], Error>.makeStream()
            let t = Task {
                for i in 0..<3 {
                    if gap > 0 { try? await Task.sleep(nanoseconds: UInt64(gap * 1e9)) }
                    c.yield(Array("data: {\"call\":\(n),\"i\":\(i),\"nonce\":\"\(nonce)\"}\n\n".utf8))
                }
                c.yield(AIChunk.sseDone)
                c.finish()
            }
            c.onTermination = { _ in t.cancel() }
            return .eventStream(stream)
        }
    }

    func failing() -> @Sendable () async throws -> AI.ResponseBody {
        { [self] in
            calls.withLock { $0 += 1 }
            throw AIError.invalidInput("no")
        }
    }
}

private func collect(_ body: AI.ResponseBody) async throws -> [UInt8] {
    switch body {
    case .json(let b): return b
    case .eventStream(let s):
        var out: [UInt8] = []
        for try await e in s { out += e }
        return out
    }
}

final class GatewayTests: XCTestCase {
    func testHitReturnsSameBytesWithoutComputing() async throws {
        let cache = ResponseCache()
        let p = Producer()
        let (a, s1) = try await cache.respond(key: "k", ttl: 60, produce: p.json())
        let (b, s2) = try await cache.respond(key: "k", ttl: 60, produce: p.json())
        let first = try await collect(a), second = try await collect(b)
        XCTAssertEqual(first, second)
        XCTAssertEqual([s1, s2], [.miss, .hit])
        XCTAssertEqual(p.count, 1)
        XCTAssertEqual(cache.stats.hits, 1)
        XCTAssertEqual(cache.stats.misses, 1)
        XCTAssertEqual(cache.stats.entries, 1)
        // Another key computes.
        _ = try await cache.respond(key: "other", ttl: 60, produce: p.json())
        XCTAssertEqual(p.count, 2)
    }

    func testSkipAndZeroTTLBypass() async throws {
        let cache = ResponseCache()
        let p = Producer()
        _ = try await cache.respond(key: "k", ttl: 60, produce: p.json())
        // A nil key (skipCache) and TTL 0 compute every time and do not read the entry.
        let (a, sa) = try await cache.respond(key: nil, ttl: 60, produce: p.json())
        let (b, sb) = try await cache.respond(key: "k", ttl: 0, produce: p.json())
        XCTAssertEqual([sa, sb], [.miss, .miss])
        do { let v1 = try await collect(a); let v2 = try await collect(b); XCTAssertNotEqual(v1, v2) }
        XCTAssertEqual(p.count, 3)
        XCTAssertEqual(cache.stats.bypassed, 2)
        // Through AI's options: skipCache gives no key.
        let ai = try TestModel.ai()
        let before = ai.responseCache.stats
        let r = try await ai.cached(namespace: "t", model: TestModel.id, body: Array("x\(UUID())".utf8),
                                    gateway: .init(skipCache: true, cacheTtl: 60), produce: p.json())
        XCTAssertEqual(r.cacheStatus, .miss)
        XCTAssertEqual(ai.responseCache.stats.bypassed, before.bypassed + 1)
        XCTAssertEqual(ai.responseCache.stats.entries, before.entries)
    }

    func testTTLExpiry() async throws {
        let now = Locked(1000.0)
        let cache = ResponseCache(byteBudget: 1 << 20, defaultTTL: 300, clock: { now.withLock { $0 } })
        let p = Producer()
        _ = try await cache.respond(key: "k", ttl: 2, produce: p.json())
        now.withLock { $0 += 1.9 }
        do { let v3 = try await cache.respond(key: "k", ttl: 2, produce: p.json()).1; XCTAssertEqual(v3, .hit) }
        now.withLock { $0 += 0.2 }
        do { let v4 = try await cache.respond(key: "k", ttl: 2, produce: p.json()).1; XCTAssertEqual(v4, .miss) }
        XCTAssertEqual(p.count, 2)
        XCTAssertEqual(cache.stats.expired, 1)
        XCTAssertEqual(cache.stats.entries, 1)

        // And on the real clock, with a small TTL.
        let real = ResponseCache()
        _ = try await real.respond(key: "k", ttl: 0.2, produce: p.json())
        do { let v5 = try await real.respond(key: "k", ttl: 0.2, produce: p.json()).1; XCTAssertEqual(v5, .hit) }
        try await Task.sleep(nanoseconds: 300_000_000)
        do { let v6 = try await real.respond(key: "k", ttl: 0.2, produce: p.json()).1; XCTAssertEqual(v6, .miss) }
    }

    func testKeys() throws {
        let ai = try TestModel.ai()
        let body = Array(#"{"prompt":"Hi"}"#.utf8)
        let k = ai.gatewayKey(namespace: "workers-ai", model: TestModel.id, body: body)
        XCTAssertEqual(k?.count, 64)
        XCTAssertEqual(k, ai.gatewayKey(namespace: "workers-ai", model: TestModel.id, body: body))
        XCTAssertNotEqual(k, ai.gatewayKey(namespace: "workers-ai", model: TestModel.id, body: Array(#"{"prompt":"Hi" }"#.utf8)))
        XCTAssertNotEqual(k, ai.gatewayKey(namespace: "openai-chat", model: TestModel.id, body: body))
        XCTAssertNil(ai.gatewayKey(namespace: "workers-ai", model: "@cf/nope/none", body: body))
        // A custom key stands for model and body.
        let c1 = ai.gatewayKey(namespace: "workers-ai", model: TestModel.id, body: body, cacheKey: "greeting")
        let c2 = ai.gatewayKey(namespace: "workers-ai", model: "@cf/nope/none", body: Array("other".utf8), cacheKey: "greeting")
        XCTAssertEqual(c1, c2)
        XCTAssertNotEqual(c1, k)

        // The model file is part of the key: the same id over a changed file gets a new key.
        let local = try AI(catalog: nil, modelsDirectory: NSTemporaryDirectory())
        let path = NSTemporaryDirectory() + "gateway-key-\(UUID().uuidString).gguf"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3])))
        defer { try? FileManager.default.removeItem(atPath: path) }
        local.register("@cf/test/file", path: path)
        let before = local.gatewayKey(namespace: "workers-ai", model: "@cf/test/file", body: body)
        let h = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        h.seekToEndOfFile()
        h.write(Data([4]))
        try h.close()
        XCTAssertNotEqual(before, local.gatewayKey(namespace: "workers-ai", model: "@cf/test/file", body: body))
    }

    func testCustomKeyThroughAI() async throws {
        let ai = try TestModel.ai()
        let p = Producer()
        let key = "custom-\(UUID().uuidString)"
        let a = try await ai.cached(namespace: "t", model: TestModel.id, body: Array("one".utf8),
                                    gateway: .init(cacheTtl: 60, cacheKey: key), produce: p.json())
        let b = try await ai.cached(namespace: "t", model: TestModel.id, body: Array("two".utf8),
                                    gateway: .init(cacheTtl: 60, cacheKey: key), produce: p.json())
        XCTAssertEqual([a.cacheStatus, b.cacheStatus], [.miss, .hit])
        do { let v7 = try await collect(a.body); let v8 = try await collect(b.body); XCTAssertEqual(v7, v8) }
        XCTAssertEqual(p.count, 1)
        do {
            _ = try await ai.cached(namespace: "t", model: TestModel.id, body: [], gateway: .init(cacheTtl: -1), produce: p.json())
            XCTFail("a negative TTL was accepted")
        } catch let e as AIError {
            XCTAssertEqual(e.code, 5006)
        }
    }

    func testLRUEvictionWithinBudget() async throws {
        // Each entry: ~50 bytes of body + key + overhead (~215 bytes); room for three.
        let cache = ResponseCache(byteBudget: 3 * (ResponseCache.entryOverhead + 60) + 20, defaultTTL: 60)
        let p = Producer()
        for k in ["a", "b", "c"] { _ = try await cache.respond(key: k, ttl: 60, produce: p.json()) }
        XCTAssertEqual(cache.stats.entries, 3)
        do { let v9 = try await cache.respond(key: "a", ttl: 60, produce: p.json()).1; XCTAssertEqual(v9, .hit) }// a is now the most recent
        _ = try await cache.respond(key: "d", ttl: 60, produce: p.json())
        XCTAssertEqual(cache.stats.evictions, 1)
        XCTAssertLessThanOrEqual(cache.stats.bytes, cache.byteBudget)
        do { let v10 = try await cache.respond(key: "a", ttl: 60, produce: p.json()).1; XCTAssertEqual(v10, .hit) }
        do { let v11 = try await cache.respond(key: "c", ttl: 60, produce: p.json()).1; XCTAssertEqual(v11, .hit) }
        do { let v12 = try await cache.respond(key: "d", ttl: 60, produce: p.json()).1; XCTAssertEqual(v12, .hit) }
        let countBefore = p.count
        do { let v13 = try await cache.respond(key: "b", ttl: 60, produce: p.json()).1; XCTAssertEqual(v13, .miss) }// b was evicted
        XCTAssertEqual(p.count, countBefore + 1)
        // An answer larger than the whole budget is served but not kept.
        let tiny = ResponseCache(byteBudget: 10, defaultTTL: 60)
        _ = try await tiny.respond(key: "x", ttl: 60, produce: p.json())
        XCTAssertEqual(tiny.stats.entries, 0)
        do { let v14 = try await tiny.respond(key: "x", ttl: 60, produce: p.json()).1; XCTAssertEqual(v14, .miss) }
        // Lowering the budget evicts at once.
        cache.byteBudget = 0
        XCTAssertEqual(cache.stats.entries, 0)
        XCTAssertEqual(cache.stats.bytes, 0)
    }

    func testInFlightDedupJSON() async throws {
        let cache = ResponseCache()
        let p = Producer()
        async let a = cache.respond(key: "k", ttl: 60, produce: p.json(delay: 0.3))
        try await Task.sleep(nanoseconds: 50_000_000)
        async let b = cache.respond(key: "k", ttl: 60, produce: p.json(delay: 0.3))
        let (ra, rb) = try await (a, b)
        XCTAssertEqual(p.count, 1)
        do { let v15 = try await collect(ra.0); let v16 = try await collect(rb.0); XCTAssertEqual(v15, v16) }
        XCTAssertEqual(Set([ra.1, rb.1]), [.miss, .hit])
        XCTAssertEqual(cache.stats.joined, 1)
    }

    func testInFlightDedupAndReplayOfStreams() async throws {
        let cache = ResponseCache()
        let p = Producer()
        async let a = cache.respond(key: "s", ttl: 60, produce: p.events(gap: 0.1))
        try await Task.sleep(nanoseconds: 150_000_000)   // joins after the first event
        async let b = cache.respond(key: "s", ttl: 60, produce: p.events(gap: 0.1))
        let (ra, rb) = try await (a, b)
        let ea = try await collect(ra.0), eb = try await collect(rb.0)
        XCTAssertEqual(ea, eb)
        XCTAssertEqual(p.count, 1)
        XCTAssertTrue(String(decoding: ea, as: UTF8.self).hasSuffix("data: [DONE]\n\n"))
        // Once finished it is stored: a replay gives the same events without computing.
        let (rc, sc) = try await cache.respond(key: "s", ttl: 60, produce: p.events())
        XCTAssertEqual(sc, .hit)
        guard case .eventStream = rc else { return XCTFail("a cached stream replays as a stream") }
        do { let v17 = try await collect(rc); XCTAssertEqual(v17, ea) }
        XCTAssertEqual(p.count, 1)
    }

    func testFailuresAreNotCachedAndAbandonedFlightsStop() async throws {
        let cache = ResponseCache()
        let p = Producer()
        for _ in 0..<2 {
            do {
                _ = try await cache.respond(key: "f", ttl: 60, produce: p.failing())
                XCTFail("no error")
            } catch let e as AIError {
                XCTAssertEqual(e.code, 5006)
            }
        }
        XCTAssertEqual(p.count, 2)
        XCTAssertEqual(cache.stats.entries, 0)

        // A stream whose only reader leaves (the body dropped after one event) is cancelled and not stored.
        do {
            let (body, _) = try await cache.respond(key: "gone", ttl: 60, produce: p.events(gap: 0.2))
            guard case .eventStream(let s) = body else { return XCTFail() }
            var it = s.makeAsyncIterator()
            _ = try await it.next()
        }
        try await Task.sleep(nanoseconds: 100_000_000)
        let computedBefore = p.count
        let (_, status) = try await cache.respond(key: "gone", ttl: 60, produce: p.json())
        XCTAssertEqual(status, .miss)
        XCTAssertEqual(p.count, computedBefore + 1)
        XCTAssertEqual(cache.stats.joined, 0)
    }

    // The options on the real model: `run`, `stream` and `respond(json:)` with `gateway:`.
    func testGatewayOptionsOnModel() async throws {
        let ai = try TestModel.ai()
        let input = AIInput(messages: [.user("Name a fruit. \(UUID().uuidString.prefix(4))")], maxTokens: 6, temperature: 0.9)
        let g = AI.GatewayOptions(id: "test", cacheTtl: 60)
        let computed = ai.responseCache.stats.computed
        let (first, s1) = try await ai.runReportingStatus(TestModel.id, input, gateway: g)
        let (second, s2) = try await ai.runReportingStatus(TestModel.id, input, gateway: g)
        XCTAssertEqual([s1, s2], [.miss, .hit])
        XCTAssertEqual(first, second)
        XCTAssertNotNil(first.stats)
        XCTAssertNil(second.stats, "a cached answer was generated again")
        XCTAssertEqual(ai.responseCache.stats.computed, computed + 1)

        let (stream1, t1) = try await ai.streamReportingStatus(TestModel.id, input, gateway: g)
        var chunks1: [AIChunk] = []
        for try await c in stream1 { chunks1.append(c) }
        let (stream2, t2) = try await ai.streamReportingStatus(TestModel.id, input, gateway: g)
        var chunks2: [AIChunk] = []
        for try await c in stream2 { chunks2.append(c) }
        XCTAssertEqual([t1, t2], [.miss, .hit])
        XCTAssertEqual(chunks1, chunks2)
        XCTAssertNotNil(chunks2.last?.usage)
        XCTAssertEqual(ai.responseCache.stats.computed, computed + 2)

        let body = Array(#"{"prompt":"Say hi","max_tokens":4,"temperature":1}"#.utf8)
        let r1 = try await ai.respond(TestModel.id, json: body, gateway: g)
        let r2 = try await ai.respond(TestModel.id, json: body, gateway: g)
        do { let v18 = try await collect(r1.body); let v19 = try await collect(r2.body); XCTAssertEqual(v18, v19) }
        XCTAssertEqual(r2.cacheStatus, .hit)
        // One custom key for a whole answer and a stream: each keeps its own shape.
        let key = AI.GatewayOptions(cacheTtl: 60, cacheKey: "shape-\(UUID().uuidString)")
        let (whole, w1) = try await ai.runReportingStatus(TestModel.id, input, gateway: key)
        let (streamed, w2) = try await ai.streamReportingStatus(TestModel.id, input, gateway: key)
        var last: AIChunk? = nil
        for try await c in streamed { last = c }
        XCTAssertEqual([w1, w2], [.miss, .miss])
        XCTAssertNotNil(whole.stats)
        XCTAssertNotNil(last?.usage)
        // Errors pass through and are not stored.
        let bad = Array(#"{"prompt":""}"#.utf8)
        for _ in 0..<2 {
            do {
                _ = try await ai.respond(TestModel.id, json: bad, gateway: g)
                XCTFail("no error")
            } catch let e as AIError {
                XCTAssertEqual(e.code, 5006)
            }
        }
    }
}
