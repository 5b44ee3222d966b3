/// Turns generated token ids into text as they arrive, never emitting half a
/// UTF-8 character: bytes of an incomplete sequence are held back until the
/// tokens that complete it arrive (byte-fallback and byte-level tokens can
/// split a character).
///
/// The concatenation of everything returned by `append` and `finish` equals
/// `tokenizer.decode(ids, skipSpecial: !renderSpecial)` for the same ids;
/// in particular SentencePiece's leading space is removed from the first
/// token when the vocabulary adds one when encoding (set
/// `removeLeadingSpace` to override, e.g. when continuing a prompt).
public struct StreamingDetokenizer: Sendable {
    public let tokenizer: Tokenizer
    public let renderSpecial: Bool
    private var removeSpace: Bool
    private var pending: [UInt8] = []
    private var started = false

    public init(tokenizer: Tokenizer, renderSpecial: Bool = false, removeLeadingSpace: Bool? = nil) {
        self.tokenizer = tokenizer
        self.renderSpecial = renderSpecial
        self.removeSpace = removeLeadingSpace ?? tokenizer.addsSpacePrefix
    }

    /// Adds one token; returns the text that is now complete (possibly "").
    public mutating func append(_ id: Int32) -> String {
        if !started {
            started = true
            if !renderSpecial && tokenizer.addsBOS && id == tokenizer.bosID {
                // decode(skipSpecial: true) drops a leading BOS and keeps the next token's space.
                removeSpace = false
                return ""
            }
        }
        tokenizer.appendPiece(id, special: renderSpecial, stripLeadingSpace: removeSpace, to: &pending)
        removeSpace = false
        let cut = StreamingDetokenizer.completePrefixLength(pending)
        if cut == 0 { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Adds several tokens; returns the text that is now complete.
    public mutating func append<S: Sequence>(contentsOf ids: S) -> String where S.Element == Int32 {
        var s = ""
        for id in ids { s += append(id) }
        return s
    }

    /// Returns whatever is held back (an incomplete sequence becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Bytes held back because they may start a character that is not complete yet.
    public var pendingByteCount: Int { pending.count }

    /// Length of the longest prefix that does not end inside a UTF-8
    /// sequence that later bytes could still complete.
    static func completePrefixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        // Find the start of the last sequence (at most 3 continuation bytes back).
        var i = n - 1
        var cont = 0
        while i >= 0 && cont < 3 && b[i] & 0xC0 == 0x80 {
            i -= 1
            cont += 1
        }
        guard i >= 0 else { return n }
        let lead = b[i]
        let need: Int
        switch lead {
        case 0xC2...0xDF: need = 2
        case 0xE0...0xEF: need = 3
        case 0xF0...0xF4: need = 4
        default: return n          // ASCII, stray continuation or invalid lead: nothing to wait for
        }
        let have = n - i
        if have >= need { return n }
        // Check that what we have is a valid prefix (second-byte ranges per RFC 3629).
        if have >= 2 {
            let b1 = b[i + 1]
            switch lead {
            case 0xE0: if b1 < 0xA0 { return n }
            case 0xED: if b1 > 0x9F { return n }
            case 0xF0: if b1 < 0x90 { return n }
            case 0xF4: if b1 > 0x8F { return n }
            default: break
            }
        }
        return i
    }
}
