// Which tokens of a vocabulary can continue a document: a trie over the tokens' bytes, walked
// with the grammar automaton so that tokens sharing a prefix share the work, and a dead prefix
// skips its whole subtree.

/// The byte strings of a vocabulary's tokens as a trie, flattened in preorder (lexicographic
/// byte order). Build once per vocabulary; read-only afterwards.
public final class TokenTrie: Sendable {
    /// Per node: the byte on the edge into it, its depth (1 for children of the root), the index
    /// just past its subtree, and its range in `nodeTokens` (tokens whose bytes end here).
    let nodeByte: [UInt8]
    let nodeDepth: [Int32]
    let nodeEnd: [Int32]
    let nodeTokenStart: [Int32]
    let nodeTokens: [Int32]
    let maxDepth: Int
    /// Vocabulary size (ids 0..<count).
    public let vocabularySize: Int
    /// Bytes of every token in the trie, by id (empty for tokens left out).
    let tokenBytes: [[UInt8]]
    /// Tokens in the trie (text tokens); the others can never be chosen in a document.
    let inTrie: [Bool]

    public var nodeCount: Int { nodeByte.count }

    /// - Parameters:
    ///   - vocabularySize: number of token ids.
    ///   - bytes: the bytes a token adds to the text, or nil for a token that must never appear
    ///     in a document (control tokens, unknown, empty pieces).
    public init(vocabularySize: Int, bytes: (Int32) -> [UInt8]?) {
        self.vocabularySize = vocabularySize
        var all: [[UInt8]] = Array(repeating: [], count: vocabularySize)
        var inTrie = [Bool](repeating: false, count: vocabularySize)
        var ids: [Int32] = []
        for i in 0..<vocabularySize {
            if let b = bytes(Int32(i)), !b.isEmpty {
                all[i] = b
                inTrie[i] = true
                ids.append(Int32(i))
            }
        }
        ids.sort { a, b in
            let x = all[Int(a)], y = all[Int(b)]
            return x.lexicographicallyPrecedes(y) || (x == y && a < b)
        }
        var nodeByte: [UInt8] = []
        var nodeDepth: [Int32] = []
        var nodeEnd: [Int32] = []
        var nodeTokenStart: [Int32] = []
        var nodeTokens: [Int32] = []
        var path: [Int32] = []          // open nodes, root excluded
        var prev: [UInt8] = []
        var maxDepth = 0
        for id in ids {
            let b = all[Int(id)]
            var l = 0
            while l < b.count && l < prev.count && b[l] == prev[l] { l += 1 }
            while path.count > l {
                nodeEnd[Int(path.removeLast())] = Int32(nodeByte.count)
            }
            for d in l..<b.count {
                let n = Int32(nodeByte.count)
                nodeByte.append(b[d])
                nodeDepth.append(Int32(d + 1))
                nodeEnd.append(0)
                nodeTokenStart.append(Int32(nodeTokens.count))
                path.append(n)
            }
            // tokens of a node are contiguous: sorted order visits a node's own tokens before its children
            nodeTokens.append(id)
            maxDepth = max(maxDepth, b.count)
            prev = b
        }
        while let n = path.popLast() { nodeEnd[Int(n)] = Int32(nodeByte.count) }
        nodeTokenStart.append(Int32(nodeTokens.count))  // sentinel
        self.nodeByte = nodeByte
        self.nodeDepth = nodeDepth
        self.nodeEnd = nodeEnd
        self.nodeTokenStart = nodeTokenStart
        self.nodeTokens = nodeTokens
        self.maxDepth = maxDepth
        self.tokenBytes = all
        self.inTrie = inTrie
    }
}

/// The grammar state of one generation and the token masks it implies. Not thread-safe: one per
/// request (the automaton's caches grow as it runs).
public final class TokenMasker {
    public let automaton: GrammarAutomaton
    public let trie: TokenTrie
    /// End-of-generation tokens: allowed exactly when the document is complete.
    public let endTokens: [Int32]
    /// The automaton state after the tokens accepted so far.
    public private(set) var state: Int32
    /// The document's bytes so far.
    public private(set) var text: [UInt8] = []

    private var maskCache: [Int32: [UInt64]] = [:]
    private var stateAtDepth: [Int32]
    /// Masks computed by walking the trie (not from the cache), for measurements.
    public private(set) var walks = 0
    public private(set) var cacheHits = 0

    public init(automaton: GrammarAutomaton, trie: TokenTrie, endTokens: [Int32]) {
        self.automaton = automaton
        self.trie = trie
        self.endTokens = endTokens.filter { $0 >= 0 && Int($0) < trie.vocabularySize }
        self.state = automaton.initialState
        self.stateAtDepth = [Int32](repeating: GrammarAutomaton.dead, count: trie.maxDepth + 1)
    }

    /// The document so far is complete (end of generation is allowed).
    public var isAccepting: Bool { automaton.isAccepting(state) }
    /// The document is complete and nothing may follow: the only allowed tokens are end tokens.
    public var isComplete: Bool { automaton.isComplete(state) }

    /// Allowed tokens as a bitset over ids (bit `id % 64` of word `id / 64`).
    public func allowedMask() -> [UInt64] {
        if let m = maskCache[state] {
            cacheHits += 1
            return m
        }
        walks += 1
        var mask = [UInt64](repeating: 0, count: (trie.vocabularySize + 63) / 64)
        let a = automaton
        let nodeByte = trie.nodeByte, nodeDepth = trie.nodeDepth, nodeEnd = trie.nodeEnd
        let starts = trie.nodeTokenStart, tokens = trie.nodeTokens
        if !a.isComplete(state) {
            stateAtDepth.withUnsafeMutableBufferPointer { at in
                at[0] = state
                mask.withUnsafeMutableBufferPointer { m in
                    var i = 0
                    let n = nodeByte.count
                    while i < n {
                        let d = Int(nodeDepth[i])
                        let s = a.next(at[d - 1], nodeByte[i])
                        if s < 0 {
                            i = Int(nodeEnd[i])
                            continue
                        }
                        at[d] = s
                        var t = Int(starts[i])
                        let e = Int(starts[i + 1])
                        while t < e {
                            let id = Int(tokens[t])
                            m[id >> 6] |= UInt64(1) << UInt64(id & 63)
                            t += 1
                        }
                        i += 1
                    }
                }
            }
        }
        if a.isAccepting(state) {
            for id in endTokens { mask[Int(id) >> 6] |= UInt64(1) << UInt64(Int(id) & 63) }
        }
        maskCache[state] = mask
        return mask
    }

    /// Whether `token` may come next (without building the whole mask).
    public func allows(_ token: Int32) -> Bool {
        guard token >= 0 && Int(token) < trie.vocabularySize else { return false }
        if endTokens.contains(token) { return automaton.isAccepting(state) }
        guard trie.inTrie[Int(token)] else { return false }
        return automaton.next(state, bytes: trie.tokenBytes[Int(token)]) >= 0
    }

    /// Set every logit of a token that cannot come next to −∞. Returns the number still allowed.
    @discardableResult
    public func apply(to logits: UnsafeMutableBufferPointer<Float>) -> Int {
        let mask = allowedMask()
        var allowed = 0
        let n = min(logits.count, trie.vocabularySize)
        for i in 0..<n {
            if mask[i >> 6] & (UInt64(1) << UInt64(i & 63)) == 0 {
                logits[i] = -.infinity
            } else {
                allowed += 1
            }
        }
        // ids beyond the vocabulary the trie knows (padding rows of the output matrix)
        if logits.count > n {
            for i in n..<logits.count { logits[i] = -.infinity }
        }
        return allowed
    }

    /// Advance over bytes that are not a whole token (the rest of a token after a trigger text).
    /// Returns false, and leaves the state as it was, when they cannot continue the document.
    public func feed(_ bytes: some Collection<UInt8>) -> Bool {
        let s = automaton.next(state, bytes: bytes)
        guard s >= 0 else { return false }
        state = s
        text.append(contentsOf: bytes)
        return true
    }

    /// Advance over a chosen token. End tokens are accepted only when the document is complete.
    public func accept(_ token: Int32) throws(GrammarError) {
        guard allows(token) else {
            throw GrammarError(.invalidGrammar, "token \(token) cannot continue the document")
        }
        if endTokens.contains(token) { return }
        let bytes = trie.tokenBytes[Int(token)]
        state = automaton.next(state, bytes: bytes)
        text.append(contentsOf: bytes)
    }
}
