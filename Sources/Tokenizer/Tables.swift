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

/// Map from byte strings to `Int32` values (open addressing). Filled while
/// a vocabulary is loaded, read-only afterwards.
///
/// Each slot holds the key's first 8 bytes and its length, so looking up a
/// key of up to 8 bytes (most tokens) touches one slot only; longer keys are
/// compared against the copy kept in `storage`.
final class ByteStringMap: @unchecked Sendable {
    struct Entry {
        var offset: Int32
        var length: Int32
        var value: Int32
    }

    private var storage: UnsafeMutablePointer<UInt8>
    private var storageCapacity: Int
    private var storageCount: Int
    private var entries: UnsafeMutablePointer<Entry>
    private var entryCapacity: Int
    private(set) var count: Int
    /// Two words per slot: the key's first 8 bytes (zero-padded), then
    /// `(length + 1) << 32 | payload` where payload is the value (keys of up
    /// to 8 bytes) or the entry index (longer keys); 0 = empty.
    private var slots: UnsafeMutablePointer<UInt64>
    private var mask: Int

    static let maxKeyLength = 1 << 30

    init(expectedCount: Int, expectedBytes: Int = 0) {
        var cap = 16
        while cap < expectedCount * 2 { cap <<= 1 }
        slots = .allocate(capacity: 2 * cap)
        slots.initialize(repeating: 0, count: 2 * cap)
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

    /// The first (up to) 8 bytes as a little-endian word, zero-padded.
    @inline(__always)
    private static func prefix(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        if n >= 8 { return UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self)) }
        var w: UInt64 = 0
        var i = 0
        while i < n {
            w |= UInt64(p[i]) << (8 * UInt64(i))
            i &+= 1
        }
        return w
    }

    /// Slot index of the key, or of the empty slot where it belongs.
    @inline(__always)
    private func probe(_ p: UnsafePointer<UInt8>, _ n: Int, _ h: UInt64) -> (slot: Int, found: Bool) {
        let key8 = ByteStringMap.prefix(p, n)
        let lenTag = UInt64(n &+ 1) << 32
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let w1 = slots[2 &* slot &+ 1]
            if w1 == 0 { return (slot, false) }
            if w1 & 0xFFFF_FFFF_0000_0000 == lenTag && slots[2 &* slot] == key8 {
                if n <= 8 { return (slot, true) }
                let e = entries[Int(truncatingIfNeeded: w1 & 0xFFFF_FFFF)]
                if bytesEqual(storage + Int(e.offset) + 8, p + 8, n - 8) { return (slot, true) }
            }
            slot = (slot &+ 1) & mask
        }
    }

    /// The value for the key, or -1.
    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
        guard n < ByteStringMap.maxKeyLength else { return -1 }
        let (slot, found) = probe(p, n, hashBytes(p, n))
        guard found else { return -1 }
        let payload = Int32(truncatingIfNeeded: slots[2 &* slot &+ 1] & 0xFFFF_FFFF)
        return n <= 8 ? payload : entries[Int(payload)].value
    }

    func find(_ bytes: [UInt8]) -> Int32 {
        withBytePointer(bytes) { find($0, $1) }
    }

    /// Inserts the key with `value`, or (if present) replaces its value when
    /// `overwrite`; returns the value now stored for the key (-1 for a key
    /// too long to store).
    @discardableResult
    func insert(_ p: UnsafePointer<UInt8>, _ n: Int, value: Int32, overwrite: Bool) -> Int32 {
        guard n < ByteStringMap.maxKeyLength, storageCount + n < Int(Int32.max), count < Int(Int32.max) - 1 else { return -1 }
        if (count + 1) * 2 > mask + 1 { rehash(capacity: (mask + 1) * 2) }
        let (slot, found) = probe(p, n, hashBytes(p, n))
        if found {
            let w1 = slots[2 * slot + 1]
            if n <= 8 {
                if overwrite { slots[2 * slot + 1] = (w1 & 0xFFFF_FFFF_0000_0000) | UInt64(UInt32(bitPattern: value)) }
                return Int32(truncatingIfNeeded: slots[2 * slot + 1] & 0xFFFF_FFFF)
            }
            let k = Int(truncatingIfNeeded: w1 & 0xFFFF_FFFF)
            if overwrite { entries[k].value = value }
            return entries[k].value
        }
        if count == entryCapacity {
            let newCap = entryCapacity * 2
            let en = UnsafeMutablePointer<Entry>.allocate(capacity: newCap)
            en.moveInitialize(from: entries, count: count)
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
        let payload = n <= 8 ? UInt64(UInt32(bitPattern: value)) : UInt64(count)
        slots[2 * slot] = ByteStringMap.prefix(p, n)
        slots[2 * slot + 1] = UInt64(n + 1) << 32 | payload
        count += 1
        return value
    }

    @discardableResult
    func insert(_ bytes: [UInt8], value: Int32, overwrite: Bool) -> Int32 {
        withBytePointer(bytes) { insert($0, $1, value: value, overwrite: overwrite) }
    }

    private func rehash(capacity cap: Int) {
        let old = slots
        let oldCap = mask + 1
        slots = .allocate(capacity: 2 * cap)
        slots.initialize(repeating: 0, count: 2 * cap)
        mask = cap - 1
        for s in 0..<oldCap where old[2 * s + 1] != 0 {
            let w0 = old[2 * s], w1 = old[2 * s + 1]
            let n = Int(w1 >> 32) - 1
            let h: UInt64
            if n <= 8 {
                var k = w0.littleEndian
                h = withUnsafeBytes(of: &k) { hashBytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), n) }
            } else {
                let e = entries[Int(truncatingIfNeeded: w1 & 0xFFFF_FFFF)]
                h = hashBytes(storage + Int(e.offset), n)
            }
            var slot = Int(truncatingIfNeeded: h) & mask
            while slots[2 * slot + 1] != 0 { slot = (slot &+ 1) & mask }
            slots[2 * slot] = w0
            slots[2 * slot + 1] = w1
        }
        old.deallocate()
    }
}

/// Immutable map from a pair of symbol ids to (merge rank, merged symbol id).
final class PairMap: @unchecked Sendable {
    struct Slot {
        var key: UInt64
        var rank: Int32
        var result: Int32
    }

    private let slots: UnsafeMutablePointer<Slot>
    private let mask: Int
    let count: Int

    static let empty: UInt64 = .max

    /// `entries`: (left, right, rank, result); for a repeated pair the first entry wins.
    init(_ entries: [(Int32, Int32, Int32, Int32)]) {
        var cap = 16
        while cap < entries.count * 2 { cap <<= 1 }
        slots = .allocate(capacity: cap)
        slots.initialize(repeating: Slot(key: PairMap.empty, rank: 0, result: 0), count: cap)
        mask = cap - 1
        var n = 0
        for (l, r, rank, res) in entries {
            let key = PairMap.key(l, r)
            var slot = PairMap.slot(key) & mask
            var exists = false
            while slots[slot].key != PairMap.empty {
                if slots[slot].key == key { exists = true; break }
                slot = (slot + 1) & mask
            }
            if exists { continue }
            slots[slot] = Slot(key: key, rank: rank, result: res)
            n += 1
        }
        count = n
    }

    deinit { slots.deallocate() }

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
            let s = slots[slot]
            if s.key == key { return (s.rank, s.result) }
            if s.key == PairMap.empty { return (.max, -1) }
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
