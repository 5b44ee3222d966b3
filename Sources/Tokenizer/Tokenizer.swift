import GGUF

/// Text ⇄ token ids for a GGUF vocabulary, with llama.cpp's behaviour:
/// SentencePiece BPE (`llama`), byte-level BPE (`gpt2`, with the
/// pre-tokenizer chosen by `tokenizer.ggml.pre`), SentencePiece-style BPE
/// (`gemma4`) and WordPiece (`bert`).
///
/// Immutable after construction; `encode`/`decode` may run concurrently.
public final class Tokenizer: @unchecked Sendable {
    public let kind: TokenizerKind
    /// `tokenizer.ggml.model`.
    public let model: String
    /// The pre-tokenizer in use (`tokenizer.ggml.pre`, or "default").
    public let preTokenizer: String

    public var vocabularySize: Int { texts.count }
    public let bosID: Int32?
    public let eosID: Int32?
    public let eotID: Int32?
    public let eomID: Int32?
    public let unknownID: Int32?
    public let separatorID: Int32?
    public let paddingID: Int32?
    public let maskID: Int32?
    /// Whether `encode(addSpecial: true)` adds BOS / EOS.
    public let addsBOS: Bool
    public let addsEOS: Bool
    /// SentencePiece's leading space: added before the text when encoding,
    /// removed from the first token when decoding.
    public let addsSpacePrefix: Bool
    /// llama.cpp's `clean_up_tokenization_spaces` (used by `detokenize`).
    public let cleansSpaces: Bool
    /// Tokens that end generation, as llama.cpp's vocabulary marks them
    /// (EOS, EOT, EOM, and tokens such as `<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, `</s>`).
    public let endOfGenerationIDs: Set<Int32>

    let texts: [String]
    let attrs: [TokenAttr]
    /// Bytes each token contributes when decoded (special tokens as their text).
    let pieceStorage: [UInt8]
    let pieceOffsets: [Int]
    /// Control / user-defined / unknown tokens, longest text first (llama.cpp's partition order).
    let specialTokens: [Int32]
    let specialBytes: [[UInt8]]
    /// For each first byte: indexes into `specialTokens`, all or user-defined only.
    let specialByFirstByte: [[Int32]]
    let userSpecialByFirstByte: [[Int32]]

    enum Engine {
        case spm(SPMModel)
        case bpe(BPEModel, PreTokenizerKind, escapeWhitespace: Bool)
        case wpm(WordPieceModel)
    }
    let engine: Engine

    // MARK: - Loading

    /// Builds the tokenizer from a GGUF file's `tokenizer.*` metadata.
    public convenience init(gguf file: GGUFFile) throws {
        try self.init(metadata: VocabularyMetadata(gguf: file))
    }

    init(metadata md: VocabularyMetadata) throws {
        let n = md.tokens.count
        guard n > 0 else { throw TokenizerError(.badMetadata, "'tokenizer.ggml.tokens' is empty") }
        guard n < Int(Int32.max) else { throw TokenizerError(.badMetadata, "'tokenizer.ggml.tokens' has \(n) entries, too many") }
        if let s = md.scores, s.count < n {
            throw TokenizerError(.badMetadata, "'tokenizer.ggml.scores' has \(s.count) entries for \(n) tokens")
        }
        if let t = md.tokenTypes, t.count < n {
            throw TokenizerError(.badMetadata, "'tokenizer.ggml.token_type' has \(t.count) entries for \(n) tokens")
        }
        model = md.model

        // Type-specific defaults (llama.cpp's llama_vocab::impl::load).
        var bos: Int? = nil, eos: Int? = nil, unk: Int? = nil, sep: Int? = nil, pad: Int? = nil, mask: Int? = nil
        var addBOS = false, addEOS = false, addSpacePrefix = false, cleanSpaces = false
        var escapeWhitespace = true
        var preConfig: PreTokenizerConfig? = nil
        var preName = md.pre ?? ""
        let kind: TokenizerKind
        switch md.model {
        case "llama":
            kind = .spm
            bos = 1; eos = 2; unk = 0
            addSpacePrefix = true; addBOS = true
        case "gpt2", "gemma4":
            kind = .bpe
            if md.model == "gemma4" {
                preName = "gemma4"
            } else {
                bos = 11; eos = 11
            }
            if md.merges == nil {
                throw TokenizerError(.missingKey, "BPE vocabulary without merges: metadata key 'tokenizer.ggml.merges' is missing")
            }
            let name = preName.isEmpty ? "default" : preName
            guard let cfg = PreTokenizerConfig.forName(name) else {
                throw TokenizerError(.unsupportedPreTokenizer,
                    "unsupported pre-tokenizer '\(name)' (tokenizer.ggml.pre); supported: \(PreTokenizerConfig.supportedNames.joined(separator: ", "))")
            }
            preName = name
            preConfig = cfg
            cleanSpaces = cfg.cleanSpaces
            escapeWhitespace = cfg.escapeWhitespace
            if let b = cfg.addBOS { addBOS = b }
            if cfg.noBOS { bos = nil }
        case "bert":
            kind = .wpm
            bos = 101; unk = 100; sep = 102; pad = 0; mask = 103
            addBOS = true; cleanSpaces = true
            preName = "default"
        default:
            throw TokenizerError(.unsupportedModel,
                "unsupported tokenizer model '\(md.model)' (tokenizer.ggml.model); supported: llama (SPM), gpt2 (BPE), gemma4, bert (WordPiece)")
        }
        if kind == .spm { preName = "default" }
        if let v = md.addSpacePrefix { addSpacePrefix = v }
        self.kind = kind
        preTokenizer = preName

        // Token texts and attributes.
        var texts = md.tokens
        var attrs = [TokenAttr](repeating: .normal, count: n)
        for i in 0..<n {
            if texts[i].isEmpty { texts[i] = "[EMPTY_\(i)]" }
            if let t = md.tokenTypes { attrs[i] = TokenAttr(tokenType: t[i]) }
        }
        // Ids of the few token texts that llama.cpp treats specially (later duplicates win).
        var textToID = [String: Int32]()
        do {
            var firstByte = [Bool](repeating: false, count: 256)
            var length = [Bool](repeating: false, count: 64)
            for t in Tokenizer.knownTexts {
                let u = Array(t.utf8)
                firstByte[Int(u[0])] = true
                length[u.count] = true
            }
            for i in 0..<n {
                let hit = withUTF8Bytes(texts[i]) { u in u.count < 64 && length[u.count] && firstByte[Int(u[0])] }
                if hit && Tokenizer.knownTexts.contains(texts[i]) { textToID[texts[i]] = Int32(i) }
            }
        }

        // Special token ids: defaults out of range are dropped; GGUF values in range win.
        var ids: [String: Int] = [:]
        func setDefault(_ key: String, _ v: Int?) {
            if let v, v >= 0, v < n { ids[key] = v }
        }
        setDefault("bos_token_id", bos)
        setDefault("eos_token_id", eos)
        setDefault("unknown_token_id", unk)
        setDefault("seperator_token_id", sep)
        setDefault("padding_token_id", pad)
        setDefault("mask_token_id", mask)
        for key in VocabularyMetadata.specialKeys {
            guard let v = md.specialIDs[key], v >= 0, v < n else { continue }
            switch key {
            case "prefix_token_id": ids["fim_pre_token_id"] = v
            case "suffix_token_id": ids["fim_suf_token_id"] = v
            case "middle_token_id": ids["fim_mid_token_id"] = v
            default: ids[key] = v
            }
        }
        if let v = md.addBOS { addBOS = v }
        if let v = md.addEOS { addEOS = v }
        if preConfig?.gemma4 == true { addBOS = true }

        // Recognise special tokens by their text, as llama.cpp does, marking them as control tokens.
        func detect(_ key: String, _ candidates: [String]) {
            guard ids[key] == nil else { return }
            for c in candidates {
                if let id = textToID[c] {
                    ids[key] = Int(id)
                    attrs[Int(id)].insert(.control)
                    return
                }
            }
        }
        for (key, candidates) in Tokenizer.detectedByText { detect(key, candidates) }

        // Control tokens named "unused…" are unused.
        for i in 0..<n where attrs[i].contains(.control) && utf8Contains(texts[i], "unused") {
            attrs[i].insert(.unused)
        }

        // End-of-generation tokens.
        var eog = Set<Int32>()
        for key in ["fim_pad_token_id", "fim_rep_token_id", "fim_sep_token_id"] {
            if let v = ids[key] { eog.insert(Int32(v)) }
        }
        for text in Tokenizer.endOfGenerationTexts {
            if let id = textToID[text] {
                eog.insert(id)
                attrs[Int(id)].insert(.control)
            }
        }
        for text in Tokenizer.alwaysRenderedTexts {
            if let id = textToID[text] { attrs[Int(id)] = .userDefined }
        }
        for key in ["eos_token_id", "eot_token_id", "eom_token_id"] {
            if let v = ids[key] { eog.insert(Int32(v)) }
        }
        do {
            let eogTextsPresent = Set(eog.map { texts[Int($0)] })
            let hasReturn = eogTextsPresent.contains("<|return|>")
            let hasCall = eogTextsPresent.contains("<|call|>") || eogTextsPresent.contains("<|calls|>")
            let hasFlush = eogTextsPresent.contains("<|flush|>")
            if let endID = eog.first(where: { texts[Int($0)] == "<|end|>" }),
               (hasReturn && hasCall) || (hasCall && hasFlush) {
                eog.remove(endID)
                attrs[Int(endID)] = .userDefined
            }
            if eogTextsPresent.contains("<|tool_response>") || eogTextsPresent.contains("<|plamo:eos|>"),
               let sID = eog.first(where: { texts[Int($0)] == "</s>" }) {
                eog.remove(sID)
                attrs[Int(sID)] = .normal
            }
        }

        // Special tokens for partitioning: longest first (ties: lower id first).
        let specialMask: TokenAttr = [.control, .userDefined, .unknown]
        var special = (0..<n).filter { !attrs[$0].isDisjoint(with: specialMask) }.map { Int32($0) }
        let byteCounts = special.map { texts[Int($0)].utf8.count }
        let order = (0..<special.count).sorted { a, b in
            byteCounts[a] != byteCounts[b] ? byteCounts[a] > byteCounts[b] : special[a] < special[b]
        }
        special = order.map { special[$0] }

        // Per-token strip attributes by model name (llama.cpp's workarounds).
        let name = (md.generalName ?? "").lowercased()
        let arch = md.architecture ?? ""
        if ["jina-v2-de", "jina-v2-es", "jina-v2-code"].contains(where: { preName.contains($0) })
            || ["nomic-bert-moe", "jina-bert-v3"].contains(where: { arch.contains($0) }) {
            if let id = textToID["<mask>"] { attrs[Int(id)].insert(.lstrip) }
        } else if name.contains("phi-3") || name.contains("phi3") {
            for id in special { attrs[Int(id)].insert(.rstrip) }
            if let id = textToID["</s>"] { attrs[Int(id)].insert(.rstrip) }
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                if let id = textToID[t] { attrs[Int(id)].remove(.rstrip) }
            }
        } else if name.contains("modern-bert") {
            if let id = textToID["[MASK]"] { attrs[Int(id)].insert(.lstrip) }
        }

        // Pieces (what each token decodes to).
        var pieceStorage = [UInt8]()
        pieceStorage.reserveCapacity(n * 6)
        var pieceOffsets = [Int](repeating: 0, count: n + 1)
        let rawPieceMask: TokenAttr = [.unknown, .control, .userDefined]
        for i in 0..<n {
            let a = attrs[i]
            if !a.isDisjoint(with: rawPieceMask) {
                pieceStorage.append(contentsOf: texts[i].utf8)
            } else if a.contains(.normal) {
                if kind == .bpe && !escapeWhitespace {
                    ByteLevel.decodeText(texts[i], into: &pieceStorage)
                } else {
                    appendUnescaped(texts[i], to: &pieceStorage)
                }
            } else if a.contains(.byte) {
                pieceStorage.append(byteTokenValue(texts[i]))
            }
            pieceOffsets[i + 1] = pieceStorage.count
        }

        // The encoding engine.
        switch kind {
        case .spm:
            let map = ByteStringMap(expectedCount: n)
            for i in 0..<n {
                _ = withUTF8Bytes(texts[i]) { u in map.insert(u.baseAddress!, u.count, value: Int32(i), overwrite: true) }
            }
            var byteTokens = [Int32](repeating: -1, count: 256)
            for v in 0..<256 {
                var id = map.find(Array(byteTokenName(UInt8(v)).utf8))
                if id < 0 && v > 0 { id = map.find([UInt8(v)]) }
                byteTokens[v] = id
            }
            var scores = md.scores ?? [Float](repeating: 0, count: n)
            if scores.count > n { scores = Array(scores[0..<n]) }
            engine = .spm(SPMModel(tokens: map, scores: scores, byteTokens: byteTokens,
                                   unknownToken: ids["unknown_token_id"].map { Int32($0) } ?? -1))
        case .bpe:
            guard let cfg = preConfig else {
                throw TokenizerError(.unsupportedPreTokenizer, "no pre-tokenizer for '\(preName)'")
            }
            engine = .bpe(try Tokenizer.buildBPE(texts: texts, merges: md.merges ?? [], config: cfg),
                          cfg.kind, escapeWhitespace: cfg.escapeWhitespace)
        case .wpm:
            let lowercase = md.lowercase ?? true
            let strip = md.stripAccents ?? lowercase
            engine = .wpm(WordPieceModel(texts: texts, unknownToken: ids["unknown_token_id"].map { Int32($0) } ?? -1,
                                         lowercase: lowercase, stripAccents: strip))
        }

        // Index special tokens by first byte for a fast scan of the input.
        var specialBytes = [[UInt8]]()
        var all = [[Int32]](repeating: [], count: 256)
        var user = [[Int32]](repeating: [], count: 256)
        for (k, id) in special.enumerated() {
            let bytes = Array(texts[Int(id)].utf8)
            specialBytes.append(bytes)
            guard let first = bytes.first else { continue }
            all[Int(first)].append(Int32(k))
            if attrs[Int(id)].isDisjoint(with: [.control, .unknown]) { user[Int(first)].append(Int32(k)) }
        }

        func optID(_ key: String) -> Int32? { ids[key].map { Int32($0) } }
        bosID = optID("bos_token_id")
        eosID = optID("eos_token_id")
        eotID = optID("eot_token_id")
        eomID = optID("eom_token_id")
        unknownID = optID("unknown_token_id")
        separatorID = optID("seperator_token_id")
        paddingID = optID("padding_token_id")
        maskID = optID("mask_token_id")
        self.addsBOS = addBOS
        self.addsEOS = addEOS
        self.addsSpacePrefix = addSpacePrefix
        self.cleansSpaces = cleanSpaces
        self.endOfGenerationIDs = eog
        self.texts = texts
        self.attrs = attrs
        self.pieceStorage = pieceStorage
        self.pieceOffsets = pieceOffsets
        self.specialTokens = special
        self.specialBytes = specialBytes
        self.specialByFirstByte = all
        self.userSpecialByFirstByte = user
    }

    /// Special ids llama.cpp finds by token text when the GGUF does not give them.
    static let detectedByText: [(String, [String])] = [
        ("eot_token_id", ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                          "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"]),
        ("eom_token_id", ["<|eom_id|>"]),
        ("fim_pre_token_id", ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
                              "<|code_prefix|>", "<|prefix|>"]),
        ("fim_suf_token_id", ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
                              "<|code_suffix|>", "<|suffix|>"]),
        ("fim_mid_token_id", ["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
                              "<|code_middle|>", "<|middle|>"]),
        ("fim_pad_token_id", ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]),
        ("fim_rep_token_id", ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]),
        ("fim_sep_token_id", ["<|file_sep|>"]),
    ]

    /// Token texts that end generation (llama.cpp's list).
    static let endOfGenerationTexts: [String] = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
        "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
        "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<｜end▁of▁sentence｜>", "[e~[",
    ]

    /// gpt-oss tokens that llama.cpp always renders (made user-defined).
    static let alwaysRenderedTexts = ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]

    static let knownTexts: Set<String> = {
        var s = Set<String>()
        for (_, c) in detectedByText { s.formUnion(c) }
        s.formUnion(endOfGenerationTexts)
        s.formUnion(alwaysRenderedTexts)
        s.formUnion(["<mask>", "</s>", "<unk>", "<s>", "<|endoftext|>", "[MASK]", "<|plamo:eos|>"])
        return s
    }()

    private static func buildBPE(texts: [String], merges: [String], config cfg: PreTokenizerConfig) throws -> BPEModel {
        let n = texts.count
        let b = ByteStringMap(expectedCount: n + merges.count / 4)
        // Vocabulary: raw bytes of each token (byte-level: decoded from the GPT-2 alphabet).
        let scratch = ScratchBuffer<UInt8>()
        ByteLevel.codepointToByte.withUnsafeBufferPointer { cmap in
            for i in 0..<n {
                withUTF8Bytes(texts[i]) { u in
                    if cfg.byteLevel {
                        scratch.ensure(u.count)
                        let c = ByteLevel.decode(u.baseAddress!, u.count, to: scratch.ptr, map: cmap)
                        if c >= 0 { b.insert(scratch.ptr, c, value: Int32(i), overwrite: true) }
                    } else {
                        b.insert(u.baseAddress!, u.count, value: Int32(i), overwrite: true)
                    }
                }
            }
        }
        // Merges: "left right", rank = position in the list.
        var entries = [(Int32, Int32, Int32, Int32)]()
        entries.reserveCapacity(merges.count)
        ByteLevel.codepointToByte.withUnsafeBufferPointer { cmap in
            for (rank, merge) in merges.enumerated() {
                withUTF8Bytes(merge) { u in
                    let m = u.count
                    guard m >= 3, let base = u.baseAddress else { return }
                    var sp = -1
                    for j in 1..<m where base[j] == 0x20 { sp = j; break }
                    guard sp > 0, sp < m - 1 else { return }
                    // left and right parts, as raw bytes, one after the other
                    scratch.ensure(m)
                    let q = scratch.ptr
                    let ln: Int, rn: Int
                    if cfg.byteLevel {
                        ln = ByteLevel.decode(base, sp, to: q, map: cmap)
                        guard ln >= 0 else { return }
                        rn = ByteLevel.decode(base + sp + 1, m - sp - 1, to: q + ln, map: cmap)
                        guard rn >= 0 else { return }
                    } else {
                        ln = sp
                        rn = m - sp - 1
                        q.update(from: base, count: ln)
                        (q + ln).update(from: base + sp + 1, count: rn)
                    }
                    let l = b.insert(q, ln, value: Int32(b.count), overwrite: false)
                    let r = b.insert(q + ln, rn, value: Int32(b.count), overwrite: false)
                    let res = b.insert(q, ln + rn, value: Int32(b.count), overwrite: false)
                    guard l >= 0, r >= 0, res >= 0 else { return }
                    entries.append((l, r, Int32(rank), res))
                }
            }
        }
        let map = b
        var byteSymbols = [Int32](repeating: -1, count: 256)
        var fallback = [Int32](repeating: -1, count: 256)
        for v in 0..<256 {
            if cfg.byteLevel {
                byteSymbols[v] = map.find([UInt8(v)])
                if (0x21...0x7E).contains(v) {
                    let id = map.find([UInt8(v)])
                    if id >= 0 && Int(id) < n { fallback[v] = id }
                }
            } else {
                let id = map.find(Array(byteTokenName(UInt8(v)).utf8))
                if id >= 0 && Int(id) < n { fallback[v] = id }
            }
        }
        return BPEModel(symbols: map, pairs: PairMap(entries), vocabSize: n, byteLevel: cfg.byteLevel,
                        byteSymbols: byteSymbols, fallbackTokens: fallback, ignoreMerges: cfg.ignoreMerges,
                        wholeNewlineWords: cfg.gemma4)
    }

    // MARK: - Token information

    @inline(__always)
    func isValid(_ id: Int32) -> Bool { id >= 0 && Int(id) < texts.count }

    /// The token's text as stored in the vocabulary ("" for an id out of range).
    public func token(_ id: Int32) -> String {
        isValid(id) ? texts[Int(id)] : ""
    }

    /// The id of the token whose vocabulary text is exactly `text` (same
    /// bytes; a linear search).
    public func id(forToken text: String) -> Int32? {
        let u = Array(text.utf8)
        var found: Int32? = nil
        for (i, t) in texts.enumerated() where t.utf8.count == u.count && t.utf8.elementsEqual(u) {
            found = Int32(i)   // llama.cpp's text-to-id map keeps the last duplicate
        }
        return found
    }

    /// Control tokens (BOS, EOS, `<|im_start|>`, …): matched in text only
    /// with `parseSpecial`, decoded only unless `skipSpecial`.
    public func isControl(_ id: Int32) -> Bool {
        isValid(id) && attrs[Int(id)].contains(.control)
    }

    /// User-defined tokens: always matched as a whole in the text.
    public func isUserDefined(_ id: Int32) -> Bool {
        isValid(id) && attrs[Int(id)].contains(.userDefined)
    }

    public func isEndOfGeneration(_ id: Int32) -> Bool { endOfGenerationIDs.contains(id) }

    /// The bytes this token contributes to decoded text (special tokens as their text).
    public func tokenBytes(_ id: Int32) -> [UInt8] {
        guard isValid(id) else { return [] }
        return Array(pieceStorage[pieceOffsets[Int(id)]..<pieceOffsets[Int(id) + 1]])
    }

    /// Appends the token's piece; control/unknown tokens only when `special`.
    @inline(__always)
    func appendPiece(_ id: Int32, special: Bool, stripLeadingSpace: Bool, to out: inout [UInt8]) {
        guard isValid(id) else { return }
        if !special && !attrs[Int(id)].isDisjoint(with: [.unknown, .control]) { return }
        var a = pieceOffsets[Int(id)]
        let e = pieceOffsets[Int(id) + 1]
        if stripLeadingSpace && a < e && pieceStorage[a] == 0x20 { a += 1 }
        out.append(contentsOf: pieceStorage[a..<e])
    }

    // MARK: - Decoding

    /// Token ids → text: the tokens' pieces concatenated (invalid UTF-8 is
    /// replaced by U+FFFD; ids outside the vocabulary are skipped). With
    /// `skipSpecial`, control tokens are left out (and a leading BOS /
    /// trailing EOS removed). SentencePiece's leading space is removed from
    /// the first token. No other clean-up is done, so
    /// `decode(encode(text, addSpecial: false))` gives `text` back.
    public func decode(_ ids: [Int32], skipSpecial: Bool = false) -> String {
        let bytes = decodeBytes(ids, removeSpecial: skipSpecial, unparseSpecial: !skipSpecial)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// llama.cpp's `llama_detokenize`: like `decode`, with `removeSpecial`
    /// (drop leading BOS / trailing EOS) and `unparseSpecial` (render control
    /// tokens) chosen separately, and the vocabulary's
    /// `clean_up_tokenization_spaces` applied when `cleanSpaces` is nil and the
    /// vocabulary asks for it (or when `cleanSpaces` is true).
    public func detokenize(_ ids: [Int32], removeSpecial: Bool, unparseSpecial: Bool, cleanSpaces: Bool? = nil) -> String {
        var bytes = decodeBytes(ids, removeSpecial: removeSpecial, unparseSpecial: unparseSpecial)
        if cleanSpaces ?? cleansSpaces { bytes = Tokenizer.cleanUpSpaces(bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    func decodeBytes(_ ids: [Int32], removeSpecial: Bool, unparseSpecial: Bool) -> [UInt8] {
        var removeSpace = addsSpacePrefix
        var slice = ids[...]
        if removeSpecial && addsBOS, let bos = bosID, slice.first == bos {
            removeSpace = false
            slice = slice.dropFirst()
        }
        if removeSpecial && addsEOS, let eos = eosID, slice.last == eos {
            slice = slice.dropLast()
        }
        var out = [UInt8]()
        out.reserveCapacity(slice.count * 4)
        for id in slice {
            appendPiece(id, special: unparseSpecial, stripLeadingSpace: removeSpace, to: &out)
            removeSpace = false
        }
        return out
    }

    /// llama.cpp's three clean-up passes: " ?", " !", " .", " ," lose the
    /// space; " ' " loses both spaces; " 's", " 'm", " 're", " 've" lose the space.
    static func cleanUpSpaces(_ text: [UInt8]) -> [UInt8] {
        var t = text
        let sp = UInt8(ascii: " "), ap = UInt8(ascii: "'")
        func pass(_ body: (inout [UInt8], Int, inout Int) -> Void) {
            guard !t.isEmpty else { return }
            var total = 1
            var i = 1
            while i < t.count {
                body(&t, i, &total)
                i += 1
            }
            t.removeSubrange(total...)
        }
        // first pass
        pass { t, i, total in
            let x = t[i]
            if t[i - 1] == sp && (x == UInt8(ascii: "?") || x == UInt8(ascii: "!") || x == UInt8(ascii: ".") || x == UInt8(ascii: ",")) {
                total -= 1
            }
            t[total] = x
            total += 1
        }
        // second pass: " ' " → "'"
        do {
            guard !t.isEmpty else { return t }
            let n = t.count
            var total = 1
            var i = 1
            while i < n {
                let x = t[i]
                if x == ap && i + 1 < n && t[i - 1] == sp && t[i + 1] == sp {
                    total -= 1
                    i += 1
                    t[i] = 0
                }
                t[total] = x
                total += 1
                i += 1
            }
            t.removeSubrange(total...)
        }
        // third pass: contractions
        pass { t, i, total in
            let x = t[i]
            let n = t.count
            if t[i - 1] == sp && x == ap && i + 1 < n {
                let x1 = t[i + 1]
                if x1 == UInt8(ascii: "s") || x1 == UInt8(ascii: "m") {
                    total -= 1
                } else if x1 != UInt8(ascii: "t") && x1 != UInt8(ascii: "d") && i + 2 < n {
                    let x2 = t[i + 2]
                    if (x1 == UInt8(ascii: "r") && x2 == UInt8(ascii: "e")) || (x1 == UInt8(ascii: "v") && x2 == UInt8(ascii: "e")) {
                        total -= 1
                    }
                }
            }
            t[total] = x
            total += 1
        }
        return t
    }
}

// MARK: - Helpers

/// `<0xNN>` with upper-case hex digits.
func byteTokenName(_ b: UInt8) -> String {
    let hex = Array("0123456789ABCDEF".utf8)
    return String(decoding: [UInt8(ascii: "<"), UInt8(ascii: "0"), UInt8(ascii: "x"), hex[Int(b >> 4)], hex[Int(b & 15)], UInt8(ascii: ">")], as: UTF8.self)
}

/// The byte of a byte token (`<0xNN>`), as llama.cpp reads it (hex digits at 3...4).
func byteTokenValue(_ text: String) -> UInt8 {
    let u = Array(text.utf8)
    func hex(_ c: UInt8) -> Int? {
        switch c {
        case 0x30...0x39: return Int(c - 0x30)
        case 0x41...0x46: return Int(c - 0x41 + 10)
        case 0x61...0x66: return Int(c - 0x61 + 10)
        default: return nil
        }
    }
    guard u.count >= 4, let h = hex(u[3]) else { return 0 }
    if u.count >= 5, let l = hex(u[4]) { return UInt8(h * 16 + l) }
    return UInt8(h)
}

/// Byte-wise substring test (as C's strstr).
func utf8Contains(_ haystack: String, _ needle: String) -> Bool {
    let h = Array(haystack.utf8), n = Array(needle.utf8)
    guard !n.isEmpty else { return true }
    guard h.count >= n.count else { return false }
    for i in 0...(h.count - n.count) where h[i] == n[0] && Array(h[i..<(i + n.count)]) == n { return true }
    return false
}

/// Appends `text` with U+2581 (▁) replaced by a space.
func appendUnescaped(_ text: String, to out: inout [UInt8]) {
    withUTF8Bytes(text) { u in
        var i = 0
        let n = u.count
        while i < n {
            if i + 2 < n && u[i] == 0xE2 && u[i + 1] == 0x96 && u[i + 2] == 0x81 {
                out.append(0x20)
                i += 3
            } else {
                out.append(u[i])
                i += 1
            }
        }
    }
}
