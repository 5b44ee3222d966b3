// Runs a `Grammar` one byte at a time as a pushdown automaton, and caches what it sees as a
// deterministic automaton over its configurations.
//
// A configuration is the set of parse stacks still alive after the bytes read so far (a grammar
// may be ambiguous for a while, e.g. between two `anyOf` branches). A stack is a linked list of
// frames; a frame is a position in the flattened grammar (the next symbol to match) and the frame
// to return to when the sequence ends. Frames are interned, so equal stacks are one id and a
// configuration is a sorted array of ids; configurations are interned too and get a state
// number. The transition of a state on a byte is computed once and kept, so the token-mask walk
// (`TokenMasker`) mostly reads a table: inside a string, for instance, nearly every byte leads
// back to the same state.
//
// Tail calls do not grow the stack (a rule referenced last in a sequence returns straight to the
// caller's frame), so right-recursive repetition (`items ::= item ("," items)?`) runs in
// constant stack depth and its states repeat.

public final class GrammarAutomaton {
    /// The flattened program: for each position, a byte-class index (>= 0), a rule reference
    /// (`-(rule + 2)`), or `end` (-1) closing a sequence.
    private var code: [Int32] = []
    private var classes: [ByteSet] = []
    /// Start positions of the alternatives of each rule.
    private var ruleStarts: [[Int32]] = []
    private static let end: Int32 = -1
    /// The empty stack: the document is complete.
    static let accept: Int32 = -1

    // Interned frames.
    private var framePos: [Int32] = []
    private var frameParent: [Int32] = []
    private var frameIndex: [Int64: Int32] = [:]

    // Interned configurations (states).
    private var configs: [[Int32]] = []
    private var configIndex: [[Int32]: Int32] = [:]
    private var transitions: [Int32] = []     // 256 per state; -2 unknown, -1 dead
    private var acceptingFlags: [Bool] = []
    private var completeFlags: [Bool] = []

    /// The state before any byte.
    public private(set) var initialState: Int32 = 0
    /// A state with no stack left alive (no byte and no end is allowed).
    public static let dead: Int32 = -1
    private static let unknown: Int32 = -2

    /// Bound on the configurations kept; beyond it `next` refuses new states (returns `dead`) so a
    /// pathological grammar costs memory proportional to this, not to the input. See `overflowed`.
    public let maxStates: Int
    /// True once `maxStates` was reached.
    public private(set) var overflowed = false

    public init(_ grammar: Grammar, maxStates: Int = 65_536) throws(GrammarError) {
        self.maxStates = maxStates
        var classIndex: [ByteSet: Int32] = [:]
        for alternatives in grammar.rules {
            var starts: [Int32] = []
            for seq in alternatives {
                starts.append(Int32(code.count))
                for sym in seq {
                    switch sym {
                    case .bytes(let set):
                        if let i = classIndex[set] {
                            code.append(i)
                        } else {
                            let i = Int32(classes.count)
                            classes.append(set)
                            classIndex[set] = i
                            code.append(i)
                        }
                    case .rule(let r):
                        guard r >= 0 && r < grammar.rules.count else {
                            throw GrammarError(.invalidGrammar, "rule \(r) referenced but not defined")
                        }
                        code.append(-Int32(r) - 2)
                    }
                }
                code.append(Self.end)
            }
            ruleStarts.append(starts)
        }
        guard grammar.start >= 0 && grammar.start < grammar.rules.count else {
            throw GrammarError(.invalidGrammar, "start rule \(grammar.start) is not defined")
        }
        try Self.checkNoLeftRecursion(grammar)
        var initial: [Int32] = []
        for s in ruleStarts[grammar.start] { expand(s, Self.accept, into: &initial) }
        initialState = intern(initial)
    }

    /// Left recursion (a rule that can reach itself without reading a byte) would make the
    /// expansion loop forever; refuse such grammars up front.
    static func checkNoLeftRecursion(_ g: Grammar) throws(GrammarError) {
        // nullable rules (fixed point)
        var nullable = [Bool](repeating: false, count: g.rules.count)
        var changed = true
        while changed {
            changed = false
            for (r, alts) in g.rules.enumerated() where !nullable[r] {
                for seq in alts {
                    if seq.allSatisfy({ if case .rule(let x) = $0 { return nullable[x] } else { return false } }) {
                        nullable[r] = true
                        changed = true
                        break
                    }
                }
            }
        }
        // edges r -> x when x can start r's expansion without consuming a byte
        var edges = [[Int]](repeating: [], count: g.rules.count)
        for (r, alts) in g.rules.enumerated() {
            for seq in alts {
                for sym in seq {
                    guard case .rule(let x) = sym else { break }
                    edges[r].append(x)
                    if !nullable[x] { break }
                }
            }
        }
        // cycle detection (iterative DFS, colors)
        var color = [UInt8](repeating: 0, count: g.rules.count)
        for root in 0..<g.rules.count where color[root] == 0 {
            var stack: [(Int, Int)] = [(root, 0)]
            color[root] = 1
            while let (r, i) = stack.last {
                if i < edges[r].count {
                    stack[stack.count - 1].1 += 1
                    let x = edges[r][i]
                    if color[x] == 1 {
                        throw GrammarError(.invalidGrammar, "rule \(g.names[x]) is left-recursive")
                    }
                    if color[x] == 0 {
                        color[x] = 1
                        stack.append((x, 0))
                    }
                } else {
                    color[r] = 2
                    stack.removeLast()
                }
            }
        }
    }

    // MARK: Frames and expansion

    @inline(__always)
    private func frame(_ pos: Int32, _ parent: Int32) -> Int32 {
        let key = Int64(pos) << 32 | Int64(UInt32(bitPattern: parent))
        if let f = frameIndex[key] { return f }
        let f = Int32(framePos.count)
        framePos.append(pos)
        frameParent.append(parent)
        frameIndex[key] = f
        return f
    }

    /// Adds to `out` every stack reachable from "match code[pos…], then return to `parent`"
    /// without reading a byte: stacks whose top is a byte class, or `accept`.
    private func expand(_ pos: Int32, _ parent: Int32, into out: inout [Int32]) {
        let c = code[Int(pos)]
        if c >= 0 {
            out.append(frame(pos, parent))
        } else if c == Self.end {
            if parent == Self.accept {
                out.append(Self.accept)
            } else {
                expand(framePos[Int(parent)], frameParent[Int(parent)], into: &out)
            }
        } else {
            let rule = Int(-c - 2)
            // tail call: nothing follows the reference, return straight to the caller's frame
            let next = pos + 1
            let cont = code[Int(next)] == Self.end ? parent : frame(next, parent)
            for s in ruleStarts[rule] { expand(s, cont, into: &out) }
        }
    }

    private func intern(_ stacks: [Int32]) -> Int32 {
        var config = stacks
        config.sort()
        var w = 0
        for i in 0..<config.count where i == 0 || config[i] != config[i - 1] {
            config[w] = config[i]
            w += 1
        }
        config.removeSubrange(w...)
        if config.isEmpty { return Self.dead }
        if let s = configIndex[config] { return s }
        if configs.count >= maxStates {
            overflowed = true
            return Self.dead
        }
        let s = Int32(configs.count)
        configs.append(config)
        configIndex[config] = s
        transitions.append(contentsOf: repeatElement(Self.unknown, count: 256))
        acceptingFlags.append(config.first == Self.accept)
        completeFlags.append(config == [Self.accept])
        return s
    }

    // MARK: Running

    /// The state after reading `byte` in `state`, or `dead` when the byte cannot continue a document.
    @inline(__always)
    public func next(_ state: Int32, _ byte: UInt8) -> Int32 {
        if state < 0 { return Self.dead }
        let i = Int(state) &* 256 &+ Int(byte)
        let t = transitions[i]
        if t != Self.unknown { return t }
        let t2 = computeNext(state, byte)
        // `transitions` may have grown (new states); index again
        transitions[i] = t2
        return t2
    }

    private func computeNext(_ state: Int32, _ byte: UInt8) -> Int32 {
        var out: [Int32] = []
        for f in configs[Int(state)] where f != Self.accept {
            let pos = framePos[Int(f)]
            if classes[Int(code[Int(pos)])].contains(byte) {
                expand(pos + 1, frameParent[Int(f)], into: &out)
            }
        }
        return intern(out)
    }

    /// The state after reading all `bytes` (or `dead`).
    public func next(_ state: Int32, bytes: some Sequence<UInt8>) -> Int32 {
        var s = state
        for b in bytes {
            s = next(s, b)
            if s == Self.dead { return s }
        }
        return s
    }

    /// The document read so far is complete (it may still go on, e.g. more digits of a number).
    public func isAccepting(_ state: Int32) -> Bool { state >= 0 && acceptingFlags[Int(state)] }

    /// The document is complete and nothing can follow it.
    public func isComplete(_ state: Int32) -> Bool { state >= 0 && completeFlags[Int(state)] }

    /// Whether `text` is a whole document of the grammar.
    public func accepts(_ text: String) -> Bool { isAccepting(next(initialState, bytes: text.utf8)) }

    /// Whether `text` can be continued into a document of the grammar.
    public func acceptsPrefix(_ text: String) -> Bool { next(initialState, bytes: text.utf8) != Self.dead }

    /// Number of states built so far (memory grows with it: 1 KiB each).
    public var stateCount: Int { configs.count }
}

/// What can go wrong building or compiling a grammar. `keyword` names the JSON Schema keyword
/// at fault when there is one.
public struct GrammarError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// A schema keyword (or keyword value) this compiler does not implement.
        case unsupportedKeyword
        /// A schema that is malformed (wrong types, dangling `$ref`, impossible bounds).
        case invalidSchema
        /// A grammar that cannot run (left recursion, undefined rule).
        case invalidGrammar
        /// Limits (sizes, nesting) that keep compilation bounded.
        case tooLarge
    }
    public let kind: Kind
    public let message: String
    public let keyword: String?

    public init(_ kind: Kind, _ message: String, keyword: String? = nil) {
        self.kind = kind
        self.message = message
        self.keyword = keyword
    }

    public var description: String { message }
}
