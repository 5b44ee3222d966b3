import CStackPointer
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Guards deep recursion (nested macros, recursive loops, deeply nested template syntax) against
/// exhausting the calling thread's stack: past a nesting threshold, the remaining stack is
/// checked and a `RecursionError` is raised while a safety margin is left.
#if canImport(Glibc) || canImport(Musl)
// glibc/musl declare pthread_getattr_np only under _GNU_SOURCE, which Swift's Glibc module does not
// expose. Signature: int pthread_getattr_np(pthread_t, pthread_attr_t *).
@_silgen_name("pthread_getattr_np")
private func edgeai_pthread_getattr_np(_ thread: pthread_t, _ attr: UnsafeMutablePointer<pthread_attr_t>) -> Int32
#endif

enum StackGuard {
    /// Stack kept free for the work done between two checks (filters, printing nested values).
    static let margin: UInt = 256 * 1024

    /// Lowest address of the current thread's stack, or nil when it cannot be determined.
    static func stackLow() -> UInt? {
        #if canImport(Glibc) || canImport(Musl)
        var attr = pthread_attr_t()
        guard edgeai_pthread_getattr_np(pthread_self(), &attr) == 0 else { return nil }
        defer { pthread_attr_destroy(&attr) }
        var addr: UnsafeMutableRawPointer? = nil
        var size = 0
        guard pthread_attr_getstack(&attr, &addr, &size) == 0, let addr else { return nil }
        return UInt(bitPattern: addr)
        #elseif canImport(Darwin)
        let top = UInt(bitPattern: pthread_get_stackaddr_np(pthread_self()))
        let size = UInt(pthread_get_stacksize_np(pthread_self()))
        return top > size ? top - size : nil
        #else
        return nil
        #endif
    }

    /// Approximate current stack pointer (a frame address: a local's address would be on
    /// AddressSanitizer's heap fake stack in sanitized builds).
    @inline(never)
    static func currentAddress() -> UInt {
        UInt(edgeai_stack_pointer())
    }

    /// True when less than `margin` bytes of stack remain below the current frame.
    static func nearlyExhausted(low: UInt?, margin: UInt = margin) -> Bool {
        guard let low else { return false }
        let sp = currentAddress()
        return sp < low || sp - low < margin
    }
}
