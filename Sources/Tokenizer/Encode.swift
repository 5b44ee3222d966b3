// Text → token ids.

extension Tokenizer {
    enum Fragment: Equatable {
        case text(Int, Int)     // byte range [start, end)
        case token(Int32)
    }

    /// Text → token ids, as llama.cpp's `llama_tokenize` does it.
    ///
    /// - addSpecial: add BOS / EOS when the vocabulary asks for them
    ///   (`tokenizer.ggml.add_bos_token` / `add_eos_token`).
    /// - parseSpecial: recognise control tokens (`<|im_start|>`, `<s>`, …)
    ///   written in the text. User-defined tokens are always recognised.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = false) -> [Int32] {
        var text = text
        return text.withUTF8 { buf in
            encode(bytes: buf, addSpecial: addSpecial, parseSpecial: parseSpecial, validUTF8: true)
        }
    }

    /// As `encode(_:)` for UTF-8 bytes. Malformed UTF-8 is handled as llama.cpp
    /// does: SentencePiece encodes the bytes as they are; BPE and WordPiece
    /// see each malformed byte as U+FFFD.
    public func encode(bytes buf: UnsafeBufferPointer<UInt8>, addSpecial: Bool = true, parseSpecial: Bool = false) -> [Int32] {
        return encode(bytes: buf, addSpecial: addSpecial, parseSpecial: parseSpecial, validUTF8: isValidUTF8(buf))
    }

    /// Texts longer than this are tokenized in pieces (cut after a newline
    /// when possible, else between characters) so that offsets fit in 32 bits.
    static let maxChunkBytes = 1 << 28

    func encode(bytes buf: UnsafeBufferPointer<UInt8>, addSpecial: Bool, parseSpecial: Bool, validUTF8: Bool,
                chunkBytes: Int = Tokenizer.maxChunkBytes) -> [Int32] {
        var out = [Int32]()
        out.reserveCapacity(buf.count / 3 + 4)
        guard buf.count > chunkBytes, chunkBytes > 0, let base = buf.baseAddress else {
            encodeChunk(buf, addSpecial: addSpecial, parseSpecial: parseSpecial, validUTF8: validUTF8,
                        leading: true, trailing: true, into: &out)
            return out
        }
        var start = 0
        while start < buf.count {
            var end = min(start + chunkBytes, buf.count)
            if end < buf.count {
                var cut = end
                while cut > start && base[cut - 1] != 0x0A { cut -= 1 }
                if cut == start {
                    cut = end
                    while cut > start && base[cut] & 0xC0 == 0x80 { cut -= 1 }
                }
                if cut > start { end = cut }
            }
            encodeChunk(UnsafeBufferPointer(start: base + start, count: end - start), addSpecial: addSpecial,
                        parseSpecial: parseSpecial, validUTF8: validUTF8, leading: start == 0,
                        trailing: end == buf.count, into: &out)
            start = end
        }
        return out
    }

    private func encodeChunk(_ buf: UnsafeBufferPointer<UInt8>, addSpecial: Bool, parseSpecial: Bool, validUTF8: Bool,
                             leading: Bool, trailing: Bool, into out: inout [Int32]) {
        let fragments: [Fragment]
        if let p = buf.baseAddress, buf.count > 0 {
            fragments = partition(p, buf.count, parseSpecial: parseSpecial)
        } else {
            fragments = []
        }
        let p = buf.baseAddress ?? UnsafePointer(bitPattern: 1)!

        switch engine {
        case .spm(let spm):
            if leading && addSpecial && addsBOS, let bos = bosID { out.append(bos) }
            let scratch = SPMModel.Scratch()
            var escaped = [UInt8]()
            var isPrevSpecial = leading
            for f in fragments {
                switch f {
                case .text(let a, let e):
                    escaped.removeAll(keepingCapacity: true)
                    if addsSpacePrefix && isPrevSpecial { escaped.append(contentsOf: [0xE2, 0x96, 0x81]) }
                    appendEscapingSpaces(p + a, e - a, to: &escaped)
                    escaped.withUnsafeBufferPointer { eb in
                        spm.encode(eb.baseAddress!, eb.count, into: &out, scratch: scratch)
                    }
                    isPrevSpecial = false
                case .token(let id):
                    out.append(id)
                    isPrevSpecial = true
                }
            }
            if trailing && addSpecial && addsEOS, let eos = eosID { out.append(eos) }

        case .bpe(let bpe, let pre, let escapeWhitespace):
            if leading && addSpecial && addsBOS, let bos = bosID { out.append(bos) }
            let preScratch = PreTokenizerScratch()
            let scratch = BPEModel.Scratch()
            var wordEnds = [Int32]()
            var escaped = [UInt8]()
            var repaired = [UInt8]()
            for f in fragments {
                switch f {
                case .text(let a, let e):
                    wordEnds.removeAll(keepingCapacity: true)
                    if escapeWhitespace || !validUTF8 {
                        escaped.removeAll(keepingCapacity: true)
                        if escapeWhitespace {
                            appendEscapingSpaces(p + a, e - a, to: &escaped)
                        } else {
                            escaped.append(contentsOf: UnsafeBufferPointer(start: p + a, count: e - a))
                        }
                        if !validUTF8 {
                            // llama.cpp splits on code points and rebuilds the words from them.
                            repaired.removeAll(keepingCapacity: true)
                            escaped.withUnsafeBufferPointer { appendCanonicalUTF8($0.baseAddress!, $0.count, to: &repaired) }
                            swap(&escaped, &repaired)
                        }
                        escaped.withUnsafeBufferPointer { eb in
                            let q = eb.baseAddress!
                            pre.split(q, eb.count, scratch: preScratch, wordEnds: &wordEnds)
                            bpe.encodeWords(q, start: 0, wordEnds: wordEnds[...], into: &out, scratch: scratch)
                        }
                    } else {
                        pre.split(p + a, e - a, scratch: preScratch, wordEnds: &wordEnds)
                        bpe.encodeWords(p + a, start: 0, wordEnds: wordEnds[...], into: &out, scratch: scratch)
                    }
                case .token(let id):
                    out.append(id)
                }
            }
            if trailing && addSpecial && addsEOS, let eos = eosID { out.append(eos) }

        case .wpm(let wpm):
            // llama.cpp adds BOS ([CLS]) and SEP around WordPiece text whenever asked for special tokens.
            if leading && addSpecial, let bos = bosID { out.append(bos) }
            for f in fragments {
                switch f {
                case .text(let a, let e): wpm.encode(p + a, e - a, into: &out)
                case .token(let id): out.append(id)
                }
            }
            if trailing && addSpecial, let sep = separatorID { out.append(sep) }
        }
    }

    /// Splits the text around special tokens, as llama.cpp's
    /// `tokenizer_st_partition` does: special tokens are taken longest first;
    /// each one is cut out of every remaining piece of text, left to right.
    /// Control and unknown tokens take part only with `parseSpecial`.
    func partition(_ p: UnsafePointer<UInt8>, _ n: Int, parseSpecial: Bool) -> [Fragment] {
        let buckets = parseSpecial ? specialByFirstByte : userSpecialByFirstByte
        // Which special tokens occur in the text at all?
        var present: [Bool]? = nil
        buckets.withUnsafeBufferPointer { bk in
            var i = 0
            while i < n {
                let bucket = bk[Int(p[i])]
                if !bucket.isEmpty {
                    for k in bucket {
                        let bytes = specialBytes[Int(k)]
                        if bytes.count <= n - i && (present?[Int(k)] ?? false) == false {
                            let match = bytes.withUnsafeBufferPointer { bytesEqual($0.baseAddress!, p + i, bytes.count) }
                            if match {
                                if present == nil { present = [Bool](repeating: false, count: specialTokens.count) }
                                present![Int(k)] = true
                            }
                        }
                    }
                }
                i += 1
            }
        }
        var fragments: [Fragment] = [.text(0, n)]
        guard let present else { return fragments }

        @inline(__always) func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        for k in 0..<specialTokens.count where present[k] {
            let id = specialTokens[k]
            let bytes = specialBytes[k]
            let len = bytes.count
            let lstrip = attrs[Int(id)].contains(.lstrip)
            let rstrip = attrs[Int(id)].contains(.rstrip)
            var next = [Fragment]()
            next.reserveCapacity(fragments.count + 4)
            bytes.withUnsafeBufferPointer { tb in
                let t = tb.baseAddress!
                func find(_ from: Int, _ to: Int) -> Int? {
                    guard to - from >= len else { return nil }
                    var i = from
                    let first = t[0]
                    while i <= to - len {
                        if p[i] == first && bytesEqual(p + i, t, len) { return i }
                        i += 1
                    }
                    return nil
                }
                for f in fragments {
                    guard case .text(let a, let e) = f else { next.append(f); continue }
                    var base = a
                    while true {
                        guard let m = find(base, e) else {
                            if e > base { next.append(.text(base, e)) }
                            break
                        }
                        var leftEnd = m
                        if lstrip { while leftEnd > base && isSpace(p[leftEnd - 1]) { leftEnd -= 1 } }
                        if leftEnd > base { next.append(.text(base, leftEnd)) }
                        next.append(.token(id))
                        var rs = m + len
                        if rs >= e { break }
                        if rstrip { while rs < e && isSpace(p[rs]) { rs += 1 } }
                        if rs >= e { break }
                        base = rs
                    }
                }
            }
            fragments = next
        }
        return fragments
    }
}

func isValidUTF8(_ buf: UnsafeBufferPointer<UInt8>) -> Bool {
    if !buf.contains(where: { $0 >= 0x80 }) { return true }
    var it = buf.makeIterator()
    var decoder = UTF8()
    while true {
        switch decoder.decode(&it) {
        case .scalarValue: continue
        case .emptyInput: return true
        case .error: return false
        }
    }
}

/// Appends the UTF-8 of the code points llama.cpp decodes from `p[0..<n]`
/// (each malformed byte becomes U+FFFD).
func appendCanonicalUTF8(_ p: UnsafePointer<UInt8>, _ n: Int, to out: inout [UInt8]) {
    var i = 0
    while i < n {
        let (decoded, len) = decodeCodepoint(p, i, n)
        i += len
        let cp = decoded <= 0x10FFFF ? decoded : 0xFFFD
        switch cp {
        case 0..<0x80:
            out.append(UInt8(cp))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (cp >> 6)))
            out.append(UInt8(0x80 | (cp & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (cp >> 12)))
            out.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (cp & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (cp >> 18)))
            out.append(UInt8(0x80 | ((cp >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((cp >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (cp & 0x3F)))
        }
    }
}

/// Appends bytes with each space written as U+2581 (▁).
@inline(__always)
func appendEscapingSpaces(_ p: UnsafePointer<UInt8>, _ n: Int, to out: inout [UInt8]) {
    out.reserveCapacity(out.count + n + n / 2)
    for i in 0..<n {
        let b = p[i]
        if b == 0x20 {
            out.append(0xE2); out.append(0x96); out.append(0x81)
        } else {
            out.append(b)
        }
    }
}
