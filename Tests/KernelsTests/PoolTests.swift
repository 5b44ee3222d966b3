import CKernels
import Foundation
import XCTest

/// Shared memory for pool tasks: slot 0 = run id; then per ith: count, last run id, nth seen.
private struct Log: @unchecked Sendable {
    static let maxThreads = 64
    let base: UnsafeMutablePointer<Int>
    init() {
        base = .allocate(capacity: 1 + 3 * Log.maxThreads)
        base.initialize(repeating: 0, count: 1 + 3 * Log.maxThreads)
    }
    func free() { base.deallocate() }
    var runID: Int { get { base[0] } nonmutating set { base[0] = newValue } }
    func count(_ i: Int) -> Int { base[1 + i] }
    func stamp(_ i: Int) -> Int { base[1 + Log.maxThreads + i] }
    func nth(_ i: Int) -> Int { base[1 + 2 * Log.maxThreads + i] }
}

/// Records (count, run id, nth) for its ith; every few runs one part does a little work so
/// parts finish in different orders.
private let recordTask: ek_task_fn = { ctx, ith, nth in
    let base = ctx!.assumingMemoryBound(to: Int.self)
    let i = Int(ith)
    let run = base[0]
    if run % 5 == i % 5 {
        var x = 0
        for k in 0..<(200 * (i + 1)) { x &+= k &* run }
        if x == 42 { base[0] = run }   // never true in practice; keeps the loop
    }
    base[1 + i] += 1
    base[1 + Log.maxThreads + i] = run
    base[1 + 2 * Log.maxThreads + i] = Int(nth)
}

private struct PoolRef: @unchecked Sendable { let p: OpaquePointer }

private final class Box<T>: @unchecked Sendable { var value: T; init(_ v: T) { value = v } }

/// Runs body on its own thread and fails (instead of hanging the whole test run) if it does
/// not finish in time - a broken pool protocol shows up as a deadlock.
@discardableResult
private func withWatchdog(seconds: Double = 120, _ what: String, file: StaticString = #filePath, line: UInt = #line,
                          _ body: @escaping @Sendable () -> Void) -> Bool {
    let done = DispatchSemaphore(value: 0)
    Thread {
        body()
        done.signal()
    }.start()
    if done.wait(timeout: .now() + seconds) == .timedOut {
        XCTFail("\(what) did not finish within \(Int(seconds)) s (deadlock?)", file: file, line: line)
        return false
    }
    return true
}

final class PoolTests: XCTestCase {
    private let cores = ProcessInfo.processInfo.activeProcessorCount

    private func exercise(pool: OpaquePointer?, runs: Int, file: StaticString = #filePath, line: UInt = #line) {
        let n = Int(ek_pool_size(pool))
        let log = Log()
        let ref = pool.map { PoolRef(p: $0) }
        let failure = Box<String?>(nil)
        let finished = withWatchdog("\(runs) runs on a pool of \(n)", file: file, line: line) {
            for run in 1...runs {
                log.runID = run
                ek_pool_run(ref?.p, recordTask, log.base)
                for i in 0..<n where log.stamp(i) != run || log.nth(i) != n {
                    failure.value = "size \(n) run \(run): part \(i) stamp \(log.stamp(i)) nth \(log.nth(i))"
                    return
                }
            }
        }
        if let f = failure.value { XCTFail(f, file: file, line: line) }
        for i in 0..<n { XCTAssertEqual(log.count(i), runs, "size \(n) part \(i)", file: file, line: line) }
        XCTAssertEqual(log.count(n), 0, "no part beyond nth", file: file, line: line)
        if finished { log.free() }   // a stuck thread may still write to it
    }

    func testEachPartRunsExactlyOncePerCall() {
        for n in 1...6 {
            guard let pool = ek_pool_create(Int32(n)) else { return XCTFail("create \(n)") }
            XCTAssertEqual(ek_pool_size(pool), Int32(n))
            // more threads than cores: let idle workers sleep so the run stays quick
            if n > cores { ek_pool_set_spin_us(pool, 0) }
            exercise(pool: pool, runs: n > cores ? 300 : 5_000)
            ek_pool_destroy(pool)
        }
    }

    func testRunNHandsOutEveryTaskOnce() {
        // slots: [0] caller thread id, [1] thread id that ran task 0, [2 + i] count of task i
        let maxTasks = 1000
        let slots = UnsafeMutablePointer<UInt>.allocate(capacity: 2 + maxTasks)
        defer { slots.deallocate() }
        let task: ek_task_fn = { ctx, i, n in
            let s = ctx!.assumingMemoryBound(to: UInt.self)
            if i == 0 { s[1] = UInt(pthread_self()) }
            s[2 + Int(i)] += 1
            if n > 1 && i % 3 == 1 { usleep(1) }   // uneven task lengths
        }
        for threads: Int32 in [1, 2, 3, 4] {
            let pool = ek_pool_create(threads)
            defer { ek_pool_destroy(pool) }
            for nTasks in [1, 2, 3, 7, 64, maxTasks] {
                for _ in 0..<(nTasks > 100 ? 3 : 50) {
                    slots.initialize(repeating: 0, count: 2 + maxTasks)
                    slots[0] = UInt(pthread_self())
                    let (ref, sp) = (pool.map { PoolRef(p: $0) }, Box(slots))
                    withWatchdog("run_n \(nTasks) tasks on \(threads) threads") {
                        sp.value[0] = UInt(pthread_self())
                        ek_pool_run_n(ref?.p, task, sp.value, Int32(nTasks))
                    }
                    XCTAssertEqual(slots[1], slots[0], "task 0 runs on the calling thread")
                    for i in 0..<maxTasks where slots[2 + i] != (i < nTasks ? 1 : 0) {
                        XCTFail("pool \(threads) tasks \(nTasks): task \(i) ran \(slots[2 + i]) times")
                        return
                    }
                }
            }
            slots.initialize(repeating: 0, count: 2 + maxTasks)
            ek_pool_run_n(pool, task, slots, 0)
            ek_pool_run_n(pool, task, slots, -4)
            XCTAssertEqual((0..<maxTasks).map { slots[2 + $0] }.reduce(0, +), 0, "n_tasks <= 0 runs nothing")
        }
    }

    func testSpinThenSleepTransitions() {
        guard let pool = ek_pool_create(2) else { return XCTFail("create") }
        defer { ek_pool_destroy(pool) }
        ek_pool_set_spin_us(pool, 20)
        let log = Log()
        defer { log.free() }
        for run in 1...200 {
            log.runID = run
            ek_pool_run(pool, recordTask, log.base)
            XCTAssertEqual(log.stamp(1), run)
            // alternate between gaps shorter and longer than the spin time
            if run % 3 == 0 { usleep(UInt32(50 + run % 7 * 30)) }
        }
        XCTAssertEqual(log.count(0), 200)
        XCTAssertEqual(log.count(1), 200)
        ek_pool_set_spin_us(pool, 0)
        exercise(pool: pool, runs: 500)
    }

    func testNullAndClampedPools() {
        XCTAssertEqual(ek_pool_size(nil), 1)
        exercise(pool: nil, runs: 3)
        for n: Int32 in [0, -3] {
            let p = ek_pool_create(n)
            XCTAssertEqual(ek_pool_size(p), 1)
            exercise(pool: p, runs: 3)
            ek_pool_destroy(p)
        }
        ek_pool_destroy(nil)
    }

    func testNestedRunDoesNotDeadlock() {
        guard let pool = ek_pool_create(3) else { return XCTFail("create") }
        defer { ek_pool_destroy(pool) }
        // part 0 (the calling thread) and part 2 (a worker) each start a run on the busy
        // pool; those runs must execute all parts serially instead of deadlocking.
        let logs = [Log(), Log()]
        defer { logs.forEach { $0.free() } }
        logs.forEach { $0.runID = 1 }
        let slots = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 3)
        defer { slots.deallocate() }
        slots[0] = UnsafeMutableRawPointer(pool)
        slots[1] = UnsafeMutableRawPointer(logs[0].base)
        slots[2] = UnsafeMutableRawPointer(logs[1].base)
        let nestedTask: ek_task_fn = { ctx, ith, _ in
            let s = ctx!.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
            if ith == 0 { ek_pool_run(OpaquePointer(s[0]!), recordTask, s[1]) }
            if ith == 2 { ek_pool_run(OpaquePointer(s[0]!), recordTask, s[2]) }
        }
        ek_pool_run(pool, nestedTask, slots)
        for log in logs {
            for i in 0..<3 {
                XCTAssertEqual(log.count(i), 1, "nested part \(i)")
                XCTAssertEqual(log.nth(i), 3)
            }
        }
        // and the pool still works normally afterwards
        exercise(pool: pool, runs: 100)
    }

    func testConcurrentCallersEachGetEveryPart() {
        guard let pool = ek_pool_create(2) else { return XCTFail("create") }
        defer { ek_pool_destroy(pool) }
        let ref = PoolRef(p: pool)
        let logs = [Log(), Log()]
        defer { logs.forEach { $0.free() } }
        let runs = 2000
        let group = DispatchGroup()
        for t in 0..<2 {
            let log = logs[t]
            group.enter()
            Thread {
                for run in 1...runs {
                    log.runID = run
                    ek_pool_run(ref.p, recordTask, log.base)
                    if log.stamp(0) != run || log.stamp(1) != run { break }
                }
                group.leave()
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success, "concurrent callers hung")
        for t in 0..<2 {
            XCTAssertEqual(logs[t].count(0), runs, "caller \(t) part 0")
            XCTAssertEqual(logs[t].count(1), runs, "caller \(t) part 1")
        }
    }

    func testDestroyDoesNotHang() {
        let done = DispatchSemaphore(value: 0)
        Thread {
            // destroy right after create (workers may not have started yet)
            for n: Int32 in [2, 3, 4, 8] { ek_pool_destroy(ek_pool_create(n)) }
            // destroy while workers spin
            if let p = ek_pool_create(2) {
                let log = Log()
                ek_pool_run(p, recordTask, log.base)
                ek_pool_destroy(p)
                log.free()
            }
            // destroy while workers sleep on the futex
            if let p = ek_pool_create(3) {
                ek_pool_set_spin_us(p, 0)
                let log = Log()
                ek_pool_run(p, recordTask, log.base)
                usleep(20_000)
                ek_pool_destroy(p)
                log.free()
            }
            // many create/run/destroy cycles
            for k in 0..<100 {
                guard let p = ek_pool_create(Int32(1 + k % 3)) else { continue }
                if k % 2 == 0 {
                    let log = Log()
                    ek_pool_run(p, recordTask, log.base)
                    log.free()
                }
                ek_pool_destroy(p)
            }
            done.signal()
        }.start()
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "ek_pool_destroy hung")
    }

    // ---- ek_pool_matvec_q8_0 -----------------------------------------------------------

    func testPoolMatvecMatchesSingleThreaded() {
        var g = SplitMix64(seed: 60)
        let shapes: [(Int, Int)] = [(576, 576), (192, 576), (5, 576), (0, 576), (1536, 576), (33, 1536), (1, 32)]
        let weights = shapes.map { randomQ8Matrix(rows: $0.0, cols: $0.1, using: &g) }
        let acts = shapes.map { randomActivation(cols: $0.1, using: &g) }
        var expected: [[Float]] = []
        for (k, s) in shapes.enumerated() {
            var y = [Float](repeating: 0, count: s.0)
            ek_matvec_q8_0(weights[k], Int64(s.1), 0, Int64(s.0), acts[k], &y)
            expected.append(y)
        }
        for n in [0, 1, 2, 3, 5] {
            let pool = n == 0 ? nil : ek_pool_create(Int32(n))
            defer { ek_pool_destroy(pool) }
            for subset in [[0], [0, 1, 2], [3], [4, 5, 6], Array(0..<shapes.count)] {
                var outputs = subset.map { [Float](repeating: .nan, count: shapes[$0].0 + 1) }
                // keep every buffer alive and pinned while the C code runs
                withPinned(weights, acts, &outputs) { wp, ap, op in
                    let jobs = subset.enumerated().map { (slot, k) in
                        ek_matvec_job(w: wp[k], xq: ap[k], y: op[slot], nrows: Int64(shapes[k].0), ncols: Int64(shapes[k].1))
                    }
                    ek_pool_matvec_q8_0(pool, jobs, Int32(jobs.count))
                }
                for (slot, k) in subset.enumerated() {
                    for r in 0..<shapes[k].0 where outputs[slot][r].bitPattern != expected[k][r].bitPattern {
                        XCTFail("pool \(n) job \(k) row \(r): \(outputs[slot][r]) vs \(expected[k][r])")
                        break
                    }
                    XCTAssertTrue(outputs[slot][shapes[k].0].isNaN, "pool \(n) job \(k) wrote past nrows")
                }
            }
        }
        ek_pool_matvec_q8_0(nil, nil, 0)   // no jobs: nothing happens
    }
}

/// Runs body with stable base addresses of every array.
private func withPinned(_ w: [[UInt8]], _ a: [[UInt8]], _ o: inout [[Float]],
                        _ body: ([UnsafeRawPointer?], [UnsafeRawPointer?], [UnsafeMutablePointer<Float>?]) -> Void) {
    // copy into manually managed buffers: simple and obviously stable
    let wb = w.map { arr -> UnsafeMutableRawPointer in
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(arr.count, 1), alignment: 64)
        arr.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: arr.count) } }
        return p
    }
    let ab = a.map { arr -> UnsafeMutableRawPointer in
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(arr.count, 1), alignment: 64)
        arr.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: arr.count) } }
        return p
    }
    let ob = o.map { arr -> UnsafeMutablePointer<Float> in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: arr.count)
        p.initialize(from: arr, count: arr.count)
        return p
    }
    body(wb.map { UnsafeRawPointer($0) }, ab.map { UnsafeRawPointer($0) }, ob)
    for i in 0..<o.count { o[i] = Array(UnsafeBufferPointer(start: ob[i], count: o[i].count)) }
    wb.forEach { $0.deallocate() }
    ab.forEach { $0.deallocate() }
    ob.forEach { $0.deallocate() }
}
