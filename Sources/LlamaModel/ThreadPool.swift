import CKernels

/// Owned, aligned, uninitialized memory (weights converted at load, caches, scratch).
final class AlignedBuffer: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    let byteCount: Int

    init(byteCount: Int, alignment: Int = 64) {
        self.byteCount = byteCount
        raw = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, alignment), alignment: alignment)
    }

    convenience init(floats count: Int) {
        self.init(byteCount: count * MemoryLayout<Float>.stride)
    }

    var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }

    deinit { raw.deallocate() }
}

/// The persistent worker pool (CKernels ek_pool): `threads` threads including the caller,
/// created once; `run` hands every thread one call and returns when all are done.
final class ThreadPool: @unchecked Sendable {
    let threads: Int
    private let pool: OpaquePointer

    init(threads: Int) {
        self.threads = max(1, threads)
        pool = ek_pool_create(Int32(self.threads))
    }

    deinit { ek_pool_destroy(pool) }

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
