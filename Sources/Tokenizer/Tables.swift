// Hash tables used by the tokenizers. They are built once when a vocabulary
// is loaded and are read-only afterwards, so lookups need no locking.

@inline(__always)
func hashBytes(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 &* UInt64(truncatingIfNeeded: n &+ 1)
    let raw = UnsafeRawPointer(p)
    var i = 0
    while i &+ 8 <= n {
        let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 32
        i &+= 8
    }
    if i < n {
        var w: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            w |= UInt64(p[i]) << shift
            shift &+= 8
            i &+= 1
        }
        h = (h ^ w) &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 29
    }
    h ^= h >> 33
    h = h &* 0xFF51_AFD7_ED55_8CCD
    h ^= h >> 33
    return h
}

/// Calls `body` with a valid pointer to the bytes (a dummy one when empty) and the count.
@inline(__always)
func withBytePointer<R>(_ bytes: [UInt8], _ body: (UnsafePointer<UInt8>, Int) throws -> R) rethrows -> R {
    if bytes.isEmpty {
        var zero: UInt8 = 0
        return try withUnsafePointer(to: &zero) { try body($0, 0) }
    }
    return try bytes.withUnsafeBufferPointer { try body($0.baseAddress!, $0.count) }
}

@inline(__always)
func bytesEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i &+ 8 <= n {
        if ra.loadUnaligned(fromByteOffset: i, as: UInt64.self) != rb.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i &+= 8
    }
    while i < n {
        if a[i] != b[i] { return false }
        i &+= 1
    }
    return true
}

/// Map from byte strings to `Int32` values (open addressing; keys stored
/// contiguously). Filled while a vocabulary is loaded, read-only afterwards.
final class ByteStringMap: @unchecked Sendable {
    struct Entry {
        var offset: Int32
        var length: Int32
        var value: Int32
    }

    private(set) var storage: UnsafeMutablePointer<UInt8>
    private var storageCapacity: Int
    private var storageCount: Int
    private(set) var entries: UnsafeMutablePointer<Entry>
    private var entryCapacity: Int
    private(set) var count: Int
    /// Per slot: high 32 bits = hash tag, low 32 bits = entry index + 1 (0 = empty).
    private var slots: UnsafeMutablePointer<UInt64>
    private var mask: Int

    init(expectedCount: Int, expectedBytes: Int = 0) {
        var cap = 16
        while cap < expectedCount * 2 { cap <<= 1 }
        slots = .allocate(capacity: cap)
        slots.initialize(repeating: 0, count: cap)
        mask = cap - 1
        entryCapacity = max(expectedCount, 16)
        entries = .allocate(capacity: entryCapacity)
        storageCapacity = max(expectedBytes, expectedCount * 8, 64)
        storage = .allocate(capacity: storageCapacity)
        storageCount = 0
        count = 0
    }

    deinit {
        storage.deallocate()
        entries.deallocate()
        slots.deallocate()
    }

    @inline(__always)
    private static func tag(_ h: UInt64) -> UInt64 { h & 0xFFFF_FFFF_0000_0000 }

    /// The value for the key, or -1.
    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
        let h = hashBytes(p, n)
        let t = ByteStringMap.tag(h)
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let v = slots[slot]
            if v == 0 { return -1 }
            if v & 0xFFFF_FFFF_0000_0000 == t {
                let e = entries[Int(truncatingIfNeeded: v & 0xFFFF_FFFF) - 1]
                if Int(e.length) == n && bytesEqual(storage + Int(e.offset), p, n) { return e.value }
            }
            slot = (slot &+ 1) & mask
        }
    }

    func find(_ bytes: [UInt8]) -> Int32 {
        withBytePointer(bytes) { find($0, $1) }
    }

    /// Inserts the key with `value`, or (if present) replaces its value when
    /// `overwrite`; returns the value now stored for the key.
    @discardableResult
    func insert(_ p: UnsafePointer<UInt8>, _ n: Int, value: Int32, overwrite: Bool) -> Int32 {
        if (count + 1) * 2 > mask + 1 { rehash(capacity: (mask + 1) * 2) }
        let h = hashBytes(p, n)
        let t = ByteStringMap.tag(h)
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let v = slots[slot]
            if v == 0 { break }
            if v & 0xFFFF_FFFF_0000_0000 == t {
                let k = Int(truncatingIfNeeded: v & 0xFFFF_FFFF) - 1
                let e = entries[k]
                if Int(e.length) == n && bytesEqual(storage + Int(e.offset), p, n) {
                    if overwrite { entries[k].value = value }
                    return entries[k].value
                }
            }
            slot = (slot &+ 1) & mask
        }
        if count == entryCapacity {
            let newCap = entryCapacity * 2
            let en = UnsafeMutablePointer<Entry>.allocate(capacity: newCap)
            en.update(from: entries, count: count)
            entries.deallocate()
            entries = en
            entryCapacity = newCap
        }
        if storageCount + n > storageCapacity {
            let newCap = max(storageCapacity * 2, storageCount + n)
            let st = UnsafeMutablePointer<UInt8>.allocate(capacity: newCap)
            st.update(from: storage, count: storageCount)
            storage.deallocate()
            storage = st
            storageCapacity = newCap
        }
        (storage + storageCount).update(from: p, count: n)
        (entries + count).initialize(to: Entry(offset: Int32(truncatingIfNeeded: storageCount),
                                              length: Int32(truncatingIfNeeded: n), value: value))
        storageCount += n
        count += 1
        slots[slot] = t | UInt64(count)
        return value
    }

    @discardableResult
    func insert(_ bytes: [UInt8], value: Int32, overwrite: Bool) -> Int32 {
        withBytePointer(bytes) { insert($0, $1, value: value, overwrite: overwrite) }
    }

    private func rehash(capacity cap: Int) {
        slots.deallocate()
        slots = .allocate(capacity: cap)
        slots.initialize(repeating: 0, count: cap)
        mask = cap - 1
        for k in 0..<count {
            let e = entries[k]
            let h = hashBytes(storage + Int(e.offset), Int(e.length))
            var slot = Int(truncatingIfNeeded: h) & mask
            while slots[slot] != 0 { slot = (slot &+ 1) & mask }
            slots[slot] = ByteStringMap.tag(h) | UInt64(k + 1)
        }
    }

    /// Key `k` (insertion order) as a pointer and length.
    @inline(__always)
    func key(_ k: Int) -> (UnsafePointer<UInt8>, Int) {
        let e = entries[k]
        return (UnsafePointer(storage + Int(e.offset)), Int(e.length))
    }
}

/// Immutable map from a pair of symbol ids to (merge rank, merged symbol id).
final class PairMap: @unchecked Sendable {
    private let keys: UnsafeMutablePointer<UInt64>
    private let ranks: UnsafeMutablePointer<Int32>
    private let results: UnsafeMutablePointer<Int32>
    private let mask: Int
    let count: Int

    static let empty: UInt64 = .max

    /// `entries`: (left, right, rank, result); for a repeated pair the first entry wins.
    init(_ entries: [(Int32, Int32, Int32, Int32)]) {
        var cap = 16
        while cap < entries.count * 2 { cap <<= 1 }
        keys = .allocate(capacity: cap)
        keys.initialize(repeating: PairMap.empty, count: cap)
        ranks = .allocate(capacity: cap)
        ranks.initialize(repeating: 0, count: cap)
        results = .allocate(capacity: cap)
        results.initialize(repeating: 0, count: cap)
        mask = cap - 1
        var n = 0
        for (l, r, rank, res) in entries {
            let key = PairMap.key(l, r)
            var slot = PairMap.slot(key) & mask
            var exists = false
            while keys[slot] != PairMap.empty {
                if keys[slot] == key { exists = true; break }
                slot = (slot + 1) & mask
            }
            if exists { continue }
            keys[slot] = key
            ranks[slot] = rank
            results[slot] = res
            n += 1
        }
        count = n
    }

    deinit {
        keys.deallocate()
        ranks.deallocate()
        results.deallocate()
    }

    @inline(__always)
    static func key(_ l: Int32, _ r: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
    }

    @inline(__always)
    static func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 29)
    }

    /// (rank, result) for the pair, or rank = Int32.max when the pair never merges.
    @inline(__always)
    func lookup(_ l: Int32, _ r: Int32) -> (rank: Int32, result: Int32) {
        let key = PairMap.key(l, r)
        var slot = PairMap.slot(key) & mask
        while true {
            let k = keys[slot]
            if k == key { return (ranks[slot], results[slot]) }
            if k == PairMap.empty { return (.max, -1) }
            slot = (slot &+ 1) & mask
        }
    }
}

/// A growable buffer of trivial values for scratch work; contents are not
/// preserved when it grows. Not shared between threads.
final class ScratchBuffer<T> {
    private(set) var ptr: UnsafeMutablePointer<T>
    private(set) var capacity: Int

    init() {
        capacity = 0
        ptr = .allocate(capacity: 1)
    }

    @inline(__always)
    func ensure(_ n: Int) {
        if n > capacity { grow(n) }
    }

    private func grow(_ n: Int) {
        ptr.deallocate()
        capacity = max(n, capacity * 2, 64)
        ptr = .allocate(capacity: capacity)
    }

    deinit { ptr.deallocate() }
}
