import Foundation

/// Python operator semantics for template values.
enum Py {
    // MARK: str / repr

    /// Python `str()`. Throws a value-size limit error rather than build a string larger than
    /// `RenderBudget.valueBytes` (a list repeating one big string many times prints very large).
    static func str(_ v: Value) throws -> String {
        switch v {
        case .undefined: return ""
        case .string(let s), .markup(let s): return s
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return PyNumber.repr(d)
        default: return try repr(v, top: true)
        }
    }

    static func repr(_ v: Value, top: Bool = false) throws -> String {
        var visiting = Set<ObjectIdentifier>()
        var out = ""
        try repr(v, top: top, &out, &visiting, limit: RenderBudget.valueBytes)
        return out
    }

    /// `repr` for error messages: cut short, never fails.
    static func reprForMessage(_ v: Value) -> String {
        var visiting = Set<ObjectIdentifier>()
        var out = ""
        do {
            try repr(v, top: false, &out, &visiting, limit: 200)
        } catch {
            out = String(out.unicodeScalars.prefix(200)) + "..."
        }
        return out
    }

    static func sizeError(_ n: Int, _ limit: Int) -> EvalError {
        EvalError.limit(.valueBytes, "MemoryError: a value of more than \(n) bytes exceeds the template value limit (\(limit) bytes)")
    }

    /// `visiting` holds the namespaces being printed (namespaces can contain themselves).
    private static func repr(_ v: Value, top: Bool, _ out: inout String, _ visiting: inout Set<ObjectIdentifier>, limit: Int, depth: Int = 0) throws {
        if depth > 0 && depth % depthCheckInterval == 0 && valueTooDeep(depth) {
            throw EvalError.limit(.recursionDepth, "RecursionError: maximum recursion depth exceeded while getting the repr of an object (\(depth) nested values)")
        }
        switch v {
        case .undefined: out += top ? "" : "Undefined"
        case .none: out += "None"
        case .bool(let b): out += b ? "True" : "False"
        case .int(let i): out += String(i)
        case .double(let d): out += PyNumber.repr(d)
        case .string(let s):
            if s.utf8.count > limit { throw sizeError(s.utf8.count, limit) }
            out += top ? s : PyText.repr(s)
        case .markup(let s):
            if s.utf8.count > limit { throw sizeError(s.utf8.count, limit) }
            out += top ? s : "Markup(\(PyText.repr(s)))"
        case .list(let a):
            out += "["
            for (i, x) in a.enumerated() {
                if i > 0 { out += ", " }
                try repr(x, top: false, &out, &visiting, limit: limit, depth: depth + 1)
                if out.utf8.count > limit { throw sizeError(out.utf8.count, limit) }
            }
            out += "]"
        case .tuple(let a):
            out += "("
            for (i, x) in a.enumerated() {
                if i > 0 { out += ", " }
                try repr(x, top: false, &out, &visiting, limit: limit, depth: depth + 1)
                if out.utf8.count > limit { throw sizeError(out.utf8.count, limit) }
            }
            out += a.count == 1 ? ",)" : ")"
        case .dict(let d): try dictRepr(d, &out, &visiting, limit: limit, depth: depth + 1)
        case .view(let kind, let d):
            let items: [Value]
            switch kind {
            case .items: items = d.items
            case .keys: items = d.keys
            case .values: items = d.values
            }
            out += "\(kind.rawValue)("
            try repr(.list(items), top: false, &out, &visiting, limit: limit, depth: depth + 1)
            out += ")"
        case .iterator(let it): out += "<\(it.typeName) object>"
        case .namespace(let ns):
            let id = ObjectIdentifier(ns)
            if visiting.contains(id) { out += "<Namespace {...}>"; return }
            visiting.insert(id)
            defer { visiting.remove(id) }
            out += "<Namespace "
            try dictRepr(ns.attrs, &out, &visiting, limit: limit, depth: depth + 1)
            out += ">"
        case .function(let f): out += f.isMacro ? "<Macro \(PyText.repr(f.name))>" : "<built-in method \(f.name)>"
        case .loop(let l): out += "<LoopContext \(l.index0 + 1)/\(l.length)>"
        case .cycler: out += "<jinja2.utils.Cycler object>"
        }
        if out.utf8.count > limit { throw sizeError(out.utf8.count, limit) }
    }

    private static func dictRepr(_ d: PyDict, _ out: inout String, _ visiting: inout Set<ObjectIdentifier>, limit: Int, depth: Int = 0) throws {
        out += "{"
        for (i, (k, v)) in zip(d.keys, d.values).enumerated() {
            if i > 0 { out += ", " }
            try repr(k, top: false, &out, &visiting, limit: limit, depth: depth)
            out += ": "
            try repr(v, top: false, &out, &visiting, limit: limit, depth: depth)
            if out.utf8.count > limit { throw sizeError(out.utf8.count, limit) }
        }
        out += "}"
    }

    // MARK: equality and ordering

    /// Values nest without bound only when a template builds them (a namespace attribute wrapped
    /// in a list in a loop); printing or comparing them recurses once per level. Past this depth, or
    /// when the thread's stack runs low, that is a RecursionError (Python's limit is about 1000).
    static let maxValueDepth = 1000
    static let depthCheckInterval = 16

    /// Printing and comparing frames are small: checked every 16 levels with a 64 KiB margin (the
    /// interpreter's 256 KiB margin would refuse ordinary nesting on a 512 KiB thread).
    static func valueTooDeep(_ depth: Int) -> Bool {
        depth > maxValueDepth || StackGuard.nearlyExhausted(low: StackGuard.stackLow(), margin: 64 * 1024)
    }

    /// Python's `==`. Values nested deeper than `maxValueDepth` compare unequal (Python raises
    /// RecursionError there; this comparison cannot throw).
    static func equal(_ a: Value, _ b: Value, depth: Int = 0) -> Bool {
        if depth > 0 && depth % depthCheckInterval == 0 && valueTooDeep(depth) { return false }
        switch (a, b) {
        case (.undefined, .undefined): return true
        case (.undefined, _), (_, .undefined): return false
        case (.none, .none): return true
        case (.none, _), (_, .none): return false
        case (.string(let x), .string(let y)), (.string(let x), .markup(let y)),
             (.markup(let x), .string(let y)), (.markup(let x), .markup(let y)):
            return PyText.equal(x, y)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { equal($0.0, $0.1, depth: depth + 1) }
        case (.dict(let x), .dict(let y)):
            guard x.count == y.count else { return false }
            for (k, v) in zip(x.keys, x.values) {
                guard let w = y.get(k), equal(v, w, depth: depth + 1) else { return false }
            }
            return true
        case (.namespace(let x), .namespace(let y)): return x === y
        case (.function(let x), .function(let y)): return x === y
        case (.loop(let x), .loop(let y)): return x === y
        case (.cycler(let x), .cycler(let y)): return x === y
        case (.iterator(let x), .iterator(let y)): return x === y
        default:
            if let x = a.number, let y = b.number {
                switch (x, y) {
                case (.int(let i), .int(let j)): return i == j
                case (.int(let i), .double(let d)), (.double(let d), .int(let i)): return Double(i) == d
                case (.double(let c), .double(let d)): return c == d
                }
            }
            return false
        }
    }

    /// Python ordering: returns a<b; throws TypeError for unorderable types.
    static func less(_ a: Value, _ b: Value, op: String = "<") throws -> Bool {
        if case .undefined(let u) = a { throw u.error }
        if case .undefined(let u) = b { throw u.error }
        if let x = a.number, let y = b.number {
            switch (x, y) {
            case (.int(let i), .int(let j)): return i < j
            case (.int(let i), .double(let d)): return Double(i) < d
            case (.double(let d), .int(let i)): return d < Double(i)
            case (.double(let c), .double(let d)): return c < d
            }
        }
        if let x = a.stringValue, let y = b.stringValue { return PyText.less(x, y) }
        switch (a, b) {
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !equal(p, q) { return try less(p, q, op: op) }
            return x.count < y.count
        default:
            throw EvalError.type("TypeError: '\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    static func compare(_ op: CompareOp, _ a: Value, _ b: Value) throws -> Bool {
        switch op {
        case .eq: return equal(a, b)
        case .ne: return !equal(a, b)
        case .lt: return try less(a, b, op: "<")
        case .gt: return try less(b, a, op: ">")
        case .lteq: return try less(a, b, op: "<=") || equal(a, b)
        case .gteq: return try less(b, a, op: ">=") || equal(a, b)
        case .in: return try contains(b, a)
        case .notin: return try !contains(b, a)
        }
    }

    // MARK: containers

    static func contains(_ container: Value, _ item: Value) throws -> Bool {
        switch container {
        case .string(let s), .markup(let s):
            guard let sub = item.stringValue else {
                if case .undefined(let u) = item { throw u.error }
                throw EvalError.type("TypeError: 'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return sub.isEmpty || PyText.find(s, sub) >= 0
        case .list(let a), .tuple(let a): return a.contains { equal($0, item) }
        case .dict(let d): return try d.contains(item)
        case .view(let kind, let d):
            switch kind {
            case .keys: return try d.contains(item)
            case .values: return d.values.contains { equal($0, item) }
            case .items: return d.items.contains { equal($0, item) }
            }
        case .undefined: return false
        case .iterator(let it):
            while let v = try it.next() { if equal(v, item) { return true } }
            return false
        case .namespace(let ns):
            _ = ns
            throw EvalError.type("TypeError: argument of type 'Namespace' is not iterable")
        default:
            throw EvalError.type("TypeError: argument of type '\(container.typeName)' is not iterable")
        }
    }

    /// Python `iter()` drained to an array.
    static func iterate(_ v: Value) throws -> [Value] {
        switch v {
        case .list(let a), .tuple(let a): return a
        case .string(let s):
            try checkSize(s.utf8.count, unit: 16)
            return s.unicodeScalars.map { .string(String(Character($0))) }
        case .markup(let s):
            try checkSize(s.utf8.count, unit: 16)
            return s.unicodeScalars.map { .markup(String(Character($0))) }
        case .dict(let d): return d.keys
        case .view(let kind, let d):
            switch kind {
            case .keys: return d.keys
            case .values: return d.values
            case .items: return d.items
            }
        case .undefined: return []
        case .iterator(let it): return try it.drain()
        case .loop(let l): return l.items
        default: throw EvalError.type("TypeError: '\(v.typeName)' object is not iterable")
        }
    }

    static func length(_ v: Value) throws -> Int {
        switch v {
        case .string(let s), .markup(let s): return PyText.length(s)
        case .list(let a), .tuple(let a): return a.count
        case .dict(let d), .view(_, let d): return d.count
        case .undefined: return 0
        case .loop(let l): return l.length
        default: throw EvalError.type("TypeError: object of type '\(v.typeName)' has no len()")
        }
    }

    // MARK: arithmetic

    static func checkDefined(_ vs: Value...) throws {
        for v in vs { if case .undefined(let u) = v { throw u.error } }
    }

    private static func unsupported(_ op: String, _ a: Value, _ b: Value) -> EvalError {
        EvalError.type("TypeError: unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
    }

    private static func overflow() -> EvalError { EvalError.type("OverflowError: integer result too large for this renderer") }

    static func binary(_ op: BinaryOp, _ a: Value, _ b: Value) throws -> Value {
        try checkDefined(a, b)
        switch op {
        case .add:
            if let x = a.number, let y = b.number {
                switch (x, y) {
                case (.int(let i), .int(let j)):
                    let (r, o) = i.addingReportingOverflow(j)
                    if o { throw overflow() }
                    return .int(r)
                default: return .double(toDouble(x) + toDouble(y))
                }
            }
            switch (a, b) {
            case (.markup(let x), _): return .markup(x + (try escapeForMarkup(b)))
            case (_, .markup(let y)) where a.stringValue != nil: return .markup((try escapeForMarkup(a)) + y)
            case (.string(let x), .string(let y)): return .string(x + y)
            case (.list(let x), .list(let y)): return .list(x + y)
            case (.tuple(let x), .tuple(let y)): return .tuple(x + y)
            case (.string, _):
                throw EvalError.type("TypeError: can only concatenate str (not \"\(b.typeName)\") to str")
            case (.list, _):
                throw EvalError.type("TypeError: can only concatenate list (not \"\(b.typeName)\") to list")
            default: throw unsupported("+", a, b)
            }
        case .sub:
            guard let x = a.number, let y = b.number else { throw unsupported("-", a, b) }
            if case .int(let i) = x, case .int(let j) = y {
                let (r, o) = i.subtractingReportingOverflow(j)
                if o { throw overflow() }
                return .int(r)
            }
            return .double(toDouble(x) - toDouble(y))
        case .mul:
            if let x = a.number, let y = b.number {
                if case .int(let i) = x, case .int(let j) = y {
                    let (r, o) = i.multipliedReportingOverflow(by: j)
                    if o { throw overflow() }
                    return .int(r)
                }
                return .double(toDouble(x) * toDouble(y))
            }
            func repeatCount(_ v: Value) -> Int? {
                if case .int(let n)? = v.number { return max(0, n) }
                return nil
            }
            if let n = repeatCount(b) ?? nil, let r = try repeatSeq(a, n) { return r }
            if let n = repeatCount(a) ?? nil, let r = try repeatSeq(b, n) { return r }
            throw unsupported("*", a, b)
        case .div:
            guard let x = a.number, let y = b.number else { throw unsupported("/", a, b) }
            let d = toDouble(y)
            if d == 0 { throw EvalError.type("ZeroDivisionError: division by zero") }
            return .double(toDouble(x) / d)
        case .floordiv:
            guard let x = a.number, let y = b.number else { throw unsupported("//", a, b) }
            if case .int(let i) = x, case .int(let j) = y {
                if j == 0 { throw EvalError.type("ZeroDivisionError: integer division or modulo by zero") }
                if i == Int.min && j == -1 { throw overflow() }
                var q = i / j
                if (i % j != 0) && ((i < 0) != (j < 0)) { q -= 1 }
                return .int(q)
            }
            let d = toDouble(y)
            if d == 0 { throw EvalError.type("ZeroDivisionError: float floor division by zero") }
            return .double((toDouble(x) / d).rounded(.down))
        case .mod:
            if let fmt = a.stringValue {
                let r = try PyFormat.percent(fmt, b, markup: { if case .markup = a { return true }; return false }())
                if case .markup = a { return .markup(r) }
                return .string(r)
            }
            guard let x = a.number, let y = b.number else { throw unsupported("%", a, b) }
            if case .int(let i) = x, case .int(let j) = y {
                if j == 0 { throw EvalError.type("ZeroDivisionError: integer division or modulo by zero") }
                if j == -1 { return .int(0) }
                var r = i % j
                if r != 0 && ((r < 0) != (j < 0)) { r += j }
                return .int(r)
            }
            let dx = toDouble(x), dy = toDouble(y)
            if dy == 0 { throw EvalError.type("ZeroDivisionError: float modulo") }
            var r = fmod(dx, dy)
            if r != 0 && ((r < 0) != (dy < 0)) { r += dy }
            return .double(r)
        case .pow:
            guard let x = a.number, let y = b.number else { throw unsupported("** or pow()", a, b) }
            if case .int(let base) = x, case .int(let e) = y, e >= 0 {
                var result = 1, bb = base, ee = e
                while ee > 0 {
                    if ee & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: bb)
                        if o { throw overflow() }
                        result = r
                    }
                    ee >>= 1
                    if ee > 0 {
                        let (sq, o) = bb.multipliedReportingOverflow(by: bb)
                        if o { throw overflow() }
                        bb = sq
                    }
                }
                return .int(result)
            }
            let bx = toDouble(x), ey = toDouble(y)
            if bx == 0 && ey < 0 { throw EvalError.type("ZeroDivisionError: 0.0 cannot be raised to a negative power") }
            return .double(Foundation.pow(bx, ey))
        }
    }

    static func toDouble(_ n: Value.Num) -> Double {
        switch n {
        case .int(let i): return Double(i)
        case .double(let d): return d
        }
    }

    /// Refuses to build a string / list of `n` bytes (elements count 16) past the value limit.
    static func checkSize(_ n: Int) throws {
        let limit = RenderBudget.valueBytes
        if n > limit { throw EvalError.limit(.valueBytes, "MemoryError: result would have \(n) bytes (limit \(limit))") }
    }

    /// `checkSize` for `count` items of `unit` bytes each, without overflow.
    static func checkSize(_ count: Int, unit: Int) throws {
        let (n, o) = count.multipliedReportingOverflow(by: unit)
        try checkSize(o ? Int.max : n)
    }

    private static func repeatSeq(_ v: Value, _ n: Int) throws -> Value? {
        switch v {
        case .string(let s), .markup(let s): try checkSize(s.utf8.count, unit: n)
        case .list(let a), .tuple(let a): try checkSize(a.count &* 16, unit: n)
        default: break
        }
        switch v {
        case .string(let s): return .string(String(repeating: s, count: n))
        case .markup(let s): return .markup(String(repeating: s, count: n))
        case .list(let a): return .list(Array([[Value]](repeating: a, count: n).joined()))
        case .tuple(let a): return .tuple(Array([[Value]](repeating: a, count: n).joined()))
        default: return nil
        }
    }

    static func escapeForMarkup(_ v: Value) throws -> String {
        if case .markup(let s) = v { return s }
        return PyText.htmlEscape(try str(v))
    }

    static func negate(_ v: Value) throws -> Value {
        try checkDefined(v)
        switch v.number {
        case .int(let i)?:
            if i == Int.min { throw overflow() }
            return .int(-i)
        case .double(let d)?: return .double(-d)
        case nil: throw EvalError.type("TypeError: bad operand type for unary -: '\(v.typeName)'")
        }
    }

    static func plus(_ v: Value) throws -> Value {
        try checkDefined(v)
        switch v.number {
        case .int(let i)?: return .int(i)
        case .double(let d)?: return .double(d)
        case nil: throw EvalError.type("TypeError: bad operand type for unary +: '\(v.typeName)'")
        }
    }

    // MARK: indexing

    /// Python index normalization; nil when out of range.
    static func index(_ i: Int, count: Int) -> Int? {
        let j = i < 0 ? i + count : i
        return (j >= 0 && j < count) ? j : nil
    }

    /// Python slice indices for a sequence of length n.
    static func sliceIndices(_ start: Value, _ stop: Value, _ step: Value, count n: Int) throws -> [Int] {
        func intOrNil(_ v: Value) throws -> Int? {
            switch v {
            case .none, .undefined: return nil
            default:
                if case .int(let i)? = v.number { return i }
                throw EvalError.type("TypeError: slice indices must be integers or None or have an __index__ method")
            }
        }
        let st = try intOrNil(step) ?? 1
        if st == 0 { throw EvalError.type("ValueError: slice step cannot be zero") }
        var out: [Int] = []
        if st > 0 {
            var a = try intOrNil(start) ?? 0, b = try intOrNil(stop) ?? n
            if a < 0 { a = max(0, a + n) } else { a = min(a, n) }
            if b < 0 { b = max(0, b + n) } else { b = min(b, n) }
            var i = a
            while i < b {
                out.append(i)
                let (n, o) = i.addingReportingOverflow(st)
                if o { break }
                i = n
            }
        } else {
            var a = try intOrNil(start) ?? (n - 1), b = try intOrNil(stop) ?? -1 - n
            if a < 0 { a = max(-1, a + n) } else { a = min(a, n - 1) }
            if b < 0 { b = max(-1, b + n) } else { b = min(b, n - 1) }
            var i = a
            while i > b {
                out.append(i)
                let (n, o) = i.addingReportingOverflow(st)
                if o { break }
                i = n
            }
        }
        return out
    }
}
