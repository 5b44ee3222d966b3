import Foundation

// WordPiece (`tokenizer.ggml.model = bert`) as llama.cpp runs it: BERT's
// normalisation (optional lower-casing and accent stripping, control
// characters dropped), split at white space, punctuation, ASCII symbols and
// CJK ideographs, then each word — prefixed with U+2581 — is covered by the
// longest matching tokens from the left; a word that cannot be covered
// becomes the unknown token.

final class WordPieceModel: @unchecked Sendable {
    let tokens: ByteStringMap
    let maxTokenLength: Int
    let unknownToken: Int32
    let lowercase: Bool
    let stripAccents: Bool

    init(texts: [String], unknownToken: Int32, lowercase: Bool, stripAccents: Bool) {
        let map = ByteStringMap(expectedCount: texts.count)
        var maxLen = 0
        for (i, t) in texts.enumerated() {
            _ = withUTF8Bytes(t) { u in map.insert(u.baseAddress!, u.count, value: Int32(i), overwrite: true) }
            maxLen = max(maxLen, t.utf8.count)
        }
        tokens = map
        maxTokenLength = maxLen
        self.unknownToken = unknownToken
        self.lowercase = lowercase
        self.stripAccents = stripAccents
    }

    /// CJK ideograph ranges that BERT splits into single-character words.
    static func isChineseChar(_ cp: UInt32) -> Bool {
        (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF)
            || (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF)
            || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F)
    }

    /// Simple (one code point) lower-case mapping, as in UnicodeData.txt (Unicode 15.1).
    static func lowercased(_ cp: UInt32) -> UInt32 {
        if cp < 0x80 { return (cp >= 0x41 && cp <= 0x5A) ? cp + 0x20 : cp }
        guard let s = Unicode.Scalar(cp) else { return cp }
        if let age = s.properties.age, age.major >= 16 { return cp }
        let mapped = s.properties.lowercaseMapping.unicodeScalars
        // The only multi-character lower-case mapping is U+0130 → i + U+0307; its simple mapping is "i".
        return mapped.first?.value ?? cp
    }

    /// First code point of the canonical decomposition (llama.cpp's `unicode_cpts_normalize_nfd`).
    static func nfdFirst(_ cp: UInt32) -> UInt32 {
        if cp < 0xC0 { return cp }
        guard let s = Unicode.Scalar(cp) else { return cp }
        if let age = s.properties.age, age.major >= 16 { return cp }
        let nfd = String(Character(s)).decomposedStringWithCanonicalMapping.unicodeScalars
        return nfd.first?.value ?? cp
    }

    /// BERT normalisation and splitting into words (each as UTF-8).
    func words(_ p: UnsafePointer<UInt8>, _ n: Int) -> [[UInt8]] {
        let table = codepointClassTable
        var words: [[UInt8]] = [[]]
        var i = 0
        while i < n {
            var (cp, len) = decodeCodepoint(p, i, n)
            i += len
            if stripAccents { cp = WordPieceModel.nfdFirst(cp) }
            let c = codepointClass(cp, table)
            if c & CPClass.whitespace != 0 {
                if !words[words.count - 1].isEmpty { words.append([]) }
                continue
            }
            let category = c & CPClass.categoryMask
            if cp == 0 || cp == 0xFFFD || category == CPClass.control { continue }
            if stripAccents && category == CPClass.mark { continue }
            let out = lowercase ? WordPieceModel.lowercased(cp) : cp
            var utf8 = [UInt8]()
            if let s = Unicode.Scalar(out) { utf8.append(contentsOf: String(Character(s)).utf8) }
            if category == CPClass.punctuation || (cp < 0x7F && category == CPClass.symbol) || WordPieceModel.isChineseChar(cp) {
                if !words[words.count - 1].isEmpty { words.append([]) }
                words[words.count - 1] = utf8
                words.append([])
            } else {
                words[words.count - 1].append(contentsOf: utf8)
            }
        }
        if words[words.count - 1].isEmpty { words.removeLast() }
        return words
    }

    func encode(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32]) {
        for word in words(p, n) where !word.isEmpty {
            let w = [0xE2, 0x96, 0x81] + word
            let before = out.count
            w.withUnsafeBufferPointer { wb in
                let q = wb.baseAddress!
                let m = wb.count
                var i = 0
                while i < m {
                    var matched = false
                    var j = min(m, i + maxTokenLength + 1)
                    while j > i {
                        let id = tokens.find(q + i, j - i)
                        if id >= 0 {
                            out.append(id)
                            matched = true
                            i = j
                            break
                        }
                        j -= 1
                    }
                    if !matched {
                        out.removeSubrange(before...)
                        break
                    }
                }
            }
            if out.count == before && unknownToken >= 0 { out.append(unknownToken) }
        }
    }
}
