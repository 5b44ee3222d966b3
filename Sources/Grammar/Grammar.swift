// A byte-level context-free grammar: rules made of alternatives, each a sequence of byte classes
// and references to other rules. JSON Schemas compile to it (`SchemaCompiler`), and
// `GrammarAutomaton` runs it one byte at a time.

/// A set of bytes (256 bits).
public struct ByteSet: Hashable, Sendable {
    public var words: (UInt64, UInt64, UInt64, UInt64)

    public init() { words = (0, 0, 0, 0) }

    public init(_ bytes: some Sequence<UInt8>) {
        self.init()
        for b in bytes { insert(b) }
    }

    public init(ranges: [ClosedRange<UInt8>]) {
        self.init()
        for r in ranges { for b in r { insert(b) } }
    }

    public static func byte(_ b: UInt8) -> ByteSet { ByteSet([b]) }

    public mutating func insert(_ b: UInt8) {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }

    @inline(__always)
    public func contains(_ b: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: return words.0 & bit != 0
        case 1: return words.1 & bit != 0
        case 2: return words.2 & bit != 0
        default: return words.3 & bit != 0
        }
    }

    public var isEmpty: Bool { words.0 | words.1 | words.2 | words.3 == 0 }

    public static func == (a: ByteSet, b: ByteSet) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into h: inout Hasher) {
        h.combine(words.0); h.combine(words.1); h.combine(words.2); h.combine(words.3)
    }
}

/// One symbol of a sequence.
public enum GrammarSymbol: Hashable, Sendable {
    /// Exactly one byte from the set.
    case bytes(ByteSet)
    /// A whole phrase of another rule.
    case rule(Int)
}

/// Rules by index; rule `start` derives the documents. A rule is a list of alternatives, each a
/// (possibly empty) sequence of symbols.
public struct Grammar: Sendable {
    public private(set) var rules: [[[GrammarSymbol]]] = []
    public private(set) var names: [String] = []
    public var start: Int = 0

    public init() {}

    /// A new rule with no alternatives yet (fill it with `define`); returns its index.
    public mutating func declare(_ name: String) -> Int {
        rules.append([])
        names.append(name)
        return rules.count - 1
    }

    public mutating func define(_ rule: Int, _ alternatives: [[GrammarSymbol]]) {
        rules[rule] = alternatives
    }

    /// A new rule with these alternatives.
    public mutating func add(_ name: String, _ alternatives: [[GrammarSymbol]]) -> Int {
        let r = declare(name)
        define(r, alternatives)
        return r
    }

    /// The symbols of a literal byte string.
    public static func literal(_ s: String) -> [GrammarSymbol] {
        s.utf8.map { .bytes(.byte($0)) }
    }

    /// Text form (for tests and error messages), one rule per line in a GBNF-like notation.
    public var description: String {
        var out = ""
        for (i, alts) in rules.enumerated() {
            out += "\(names[i])#\(i) ::= "
            out += alts.map { seq in
                seq.isEmpty ? "\"\"" : seq.map { sym -> String in
                    switch sym {
                    case .rule(let r): return "\(names[r])#\(r)"
                    case .bytes(let set): return Grammar.describe(set)
                    }
                }.joined(separator: " ")
            }.joined(separator: " | ")
            out += "\n"
        }
        return out
    }

    static func describe(_ set: ByteSet) -> String {
        var members: [UInt8] = []
        for b in 0...255 where set.contains(UInt8(b)) { members.append(UInt8(b)) }
        func show(_ b: UInt8) -> String {
            (0x21...0x7E).contains(b) && b != UInt8(ascii: "\\") && b != UInt8(ascii: "]") && b != UInt8(ascii: "\"")
                ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16, uppercase: true)
        }
        if members.count == 1 { return "\"" + show(members[0]) + "\"" }
        var parts: [String] = []
        var i = 0
        while i < members.count {
            var j = i
            while j + 1 < members.count && members[j + 1] == members[j] + 1 { j += 1 }
            parts.append(i == j ? show(members[i]) : show(members[i]) + "-" + show(members[j]))
            i = j + 1
        }
        return "[" + parts.joined() + "]"
    }
}
