#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only bytes of a GGUF file: either a private read-only memory map of
/// the file or a heap copy (for in-memory files). Immutable after init.
final class Mapping: @unchecked Sendable {
    let base: UnsafeRawPointer
    let size: Int
    private let mappedLength: Int        // > 0 when `base` came from mmap
    private let heap: UnsafeMutableRawPointer?

    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            throw GGUFError(.io, "cannot open '\(path)': \(String(cString: strerror(e)))")
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let e = errno
            throw GGUFError(.io, "cannot stat '\(path)': \(String(cString: strerror(e)))")
        }
        if (st.st_mode & S_IFMT) != S_IFREG {
            throw GGUFError(.io, "'\(path)' is not a regular file")
        }
        let size = Int(st.st_size)
        if size == 0 {
            throw GGUFError(.truncated, "'\(path)' is empty (0 bytes); a GGUF file starts with a 24-byte header")
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            let e = errno
            throw GGUFError(.io, "cannot memory-map '\(path)' (\(size) bytes): \(String(cString: strerror(e)))")
        }
        base = UnsafeRawPointer(p)
        self.size = size
        mappedLength = size
        heap = nil
    }

    init(bytes: [UInt8]) {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress, src.count > 0 { p.copyMemory(from: s, byteCount: src.count) }
        }
        base = UnsafeRawPointer(p)
        size = bytes.count
        mappedLength = 0
        heap = p
    }

    /// Lets the kernel drop this process's pages of bytes [offset, offset + count) of a file
    /// mapping (the whole pages inside the range); a later read faults them in again from the
    /// file, with the same bytes. Nothing happens for a heap copy.
    func releasePages(offset: Int, count: Int) {
        guard mappedLength > 0, offset >= 0, count > 0, offset <= size - count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let start = (Int(bitPattern: base) + offset + page - 1) / page * page
        let end = (Int(bitPattern: base) + offset + count) / page * page
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        madvise(p, end - start, MADV_DONTNEED)
    }

    deinit {
        if mappedLength > 0 {
            munmap(UnsafeMutableRawPointer(mutating: base), mappedLength)
        }
        heap?.deallocate()
    }
}
