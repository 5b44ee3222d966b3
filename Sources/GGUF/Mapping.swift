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

    deinit {
        if mappedLength > 0 {
            munmap(UnsafeMutableRawPointer(mutating: base), mappedLength)
        }
        heap?.deallocate()
    }
}
