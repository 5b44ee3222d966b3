import CKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Owned, 64-byte aligned, uninitialized memory (weights converted at load, caches, scratch).
/// Allocation failure is a typed error, not a crash.
final class AlignedBuffer: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    let byteCount: Int

    init(byteCount: Int, what: @autoclosure () -> String = "buffer") throws {
        guard byteCount >= 0, byteCount <= Int.max / 2 else {
            throw ModelError.outOfMemory("\(what()): \(byteCount) bytes is not a valid size")
        }
        var p: UnsafeMutableRawPointer?
        guard posix_memalign(&p, 64, max(byteCount, 64)) == 0, let p else {
            throw ModelError.outOfMemory("\(what()): cannot allocate \(byteCount) bytes")
        }
        self.byteCount = byteCount
        raw = p
    }

    convenience init(floats count: Int, what: @autoclosure () -> String = "buffer") throws {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        guard !overflow else { throw ModelError.outOfMemory("\(what()): \(count) floats is too many") }
        try self.init(byteCount: bytes, what: what())
    }

    var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }

    deinit { free(raw) }
}

/// The persistent worker pool (CKernels ek_pool): `threads` threads including the caller,
/// created once; `run` hands every thread one call and returns when all are done.
final class ThreadPool: @unchecked Sendable {
    let threads: Int
    /// nil if the workers could not be created: ek_pool_run then runs every share on the caller.
    private let pool: OpaquePointer?

    init(threads: Int) {
        let p: OpaquePointer? = ek_pool_create(Int32(max(1, threads)))
        pool = p
        self.threads = p == nil ? 1 : max(1, threads)
    }

    deinit { ek_pool_destroy(pool) }

    /// How long idle workers (and the caller waiting for them) spin before sleeping.
    func setSpin(microseconds: Int) {
        ek_pool_set_spin_us(pool, Int32(microseconds))
    }

    /// Runs a C task `fn(ctx, ith, nth)` on every thread.
    func run(_ fn: ek_task_fn, _ ctx: UnsafeMutableRawPointer) {
        ek_pool_run(pool, fn, ctx)
    }

    /// Runs a C task whose context is a value of type T.
    func run<T>(_ fn: ek_task_fn, context: inout T) {
        withUnsafeMutablePointer(to: &context) { ek_pool_run(pool, fn, UnsafeMutableRawPointer($0)) }
    }

    /// Runs a Swift closure body(ith, nth) on every thread (for work outside the hot loop).
    func run(_ body: (Int, Int) -> Void) {
        withoutActuallyEscaping(body) { escaping in
            let box = ClosureBox(escaping)
            let ctx = Unmanaged.passUnretained(box).toOpaque()
            ek_pool_run(pool, { ctx, ith, nth in
                guard let ctx else { return }
                Unmanaged<ClosureBox>.fromOpaque(ctx).takeUnretainedValue().body(Int(ith), Int(nth))
            }, ctx)
            withExtendedLifetime(box) {}
        }
    }
}

private final class ClosureBox {
    let body: (Int, Int) -> Void
    init(_ body: @escaping (Int, Int) -> Void) { self.body = body }
}
