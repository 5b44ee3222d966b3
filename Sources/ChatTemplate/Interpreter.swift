import Foundation

/// Variable scope. Jinja2 semantics: `for` iterations, macros, `with` and set/filter blocks get
/// their own scope; `if` does not.
final class Scope {
    var vars: [String: Value] = [:]
    let parent: Scope?

    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Value? {
        var s: Scope? = self
        while let cur = s {
            if let v = cur.vars[name] { return v }
            s = cur.parent
        }
        return nil
    }
}

enum Flow { case normal, breakLoop, continueLoop }

/// Tree-walking evaluator for a parsed template.
final class Interpreter {
    let now: Date
    let timeZone: TimeZone
    var autoescape = false
    private var depth = 0
    /// The limits of this render (already scaled by the input size).
    let limits: RenderLimits
    /// What this render used so far.
    private(set) var usage = RenderUsage()

    private var stackLowKnown = false
    private var stackLow: UInt? = nil

    /// Enters one level of macro / recursive-loop nesting.
    func enterRecursion() throws {
        depth += 1
        if depth > usage.recursionDepth { usage.recursionDepth = depth }
        if depth > limits.recursionDepth {
            depth -= 1
            throw EvalError.limit(.recursionDepth, "RecursionError: maximum recursion depth exceeded (\(limits.recursionDepth) nested macro or loop calls)")
        }
        if depth > 8 {
            if !stackLowKnown { stackLow = StackGuard.stackLow(); stackLowKnown = true }
            if StackGuard.nearlyExhausted(low: stackLow) {
                depth -= 1
                throw EvalError.limit(.recursionDepth, "RecursionError: maximum recursion depth exceeded (thread stack nearly exhausted)")
            }
        }
    }

    func leaveRecursion() { depth -= 1 }

    init(now: Date, timeZone: TimeZone, limits: RenderLimits = .default, inputBytes: Int = 0) {
        self.now = now
        self.timeZone = timeZone
        self.limits = limits
        usage.inputBytes = inputBytes
    }

    // MARK: resource accounting

    /// Counts `n` evaluation steps.
    @inline(__always)
    func step(_ n: Int = 1) throws {
        usage.steps &+= n
        if usage.steps > limits.steps { throw stepLimit() }
    }

    @inline(never)
    private func stepLimit() -> EvalError {
        EvalError.limit(.steps, "template exceeded its step limit (\(limits.steps) steps)")
    }

    /// Steps a builtin spends on `v`: one per element, one per `bytesPerStep` string bytes.
    static func work(_ v: Value) -> Int {
        switch v {
        case .string(let s), .markup(let s): return s.utf8.count / RenderLimits.bytesPerStep
        case .list(let a), .tuple(let a): return a.count
        case .dict(let d), .view(_, let d): return d.count
        case .loop(let l): return l.items.count
        default: return 0
        }
    }

    /// Bytes a value takes for the limits: string bytes, 16 per list element, 32 per dict entry.
    static func size(_ v: Value) -> Int {
        switch v {
        case .string(let s), .markup(let s): return s.utf8.count
        case .list(let a), .tuple(let a): return a.count &* 16
        case .dict(let d), .view(_, let d): return d.count &* 32
        default: return 0
        }
    }

    /// Charges a value just built: checks its size and adds it to the bytes built.
    @inline(__always)
    func built(_ v: Value) throws {
        let n = Interpreter.size(v)
        if n == 0 { return }
        try built(bytes: n)
    }

    func built(bytes n: Int) throws {
        if n > usage.largestValueBytes {
            usage.largestValueBytes = n
            if n > limits.valueBytes {
                throw EvalError.limit(.valueBytes, "MemoryError: a value of \(n) bytes exceeds the template value limit (\(limits.valueBytes) bytes)")
            }
        }
        usage.builtBytes &+= n
        if usage.builtBytes > limits.builtBytes {
            throw EvalError.limit(.builtBytes, "MemoryError: template built more than \(limits.builtBytes) bytes")
        }
    }

    /// Checks an output buffer after text was appended to it.
    @inline(__always)
    func checkOutput(_ out: String) throws {
        let n = out.utf8.count
        if n > usage.outputBytes {
            usage.outputBytes = n
            if n > limits.outputBytes {
                throw EvalError.limit(.outputBytes, "template output exceeded its limit (\(limits.outputBytes) bytes)")
            }
        }
    }

    // MARK: statements

    func exec(_ body: [Stmt], _ scope: Scope, _ out: inout String) throws -> Flow {
        for s in body {
            let flow = try exec(s, scope, &out)
            if flow != .normal { return flow }
        }
        return .normal
    }

    // The hot statements are handled here; the rest in `execOther`, kept out of line so that
    // recursion (macros, nested blocks) uses small stack frames.
    private func exec(_ s: Stmt, _ scope: Scope, _ out: inout String) throws -> Flow {
        try step()
        switch s {
        case .data(let text):
            out += text
            try checkOutput(out)
        case .output(let e):
            out += try toOutput(eval(e, scope))
            try at(e.pos) { try checkOutput(out) }
        case .if(let branches, let elseBody):
            for (cond, body) in branches where try eval(cond, scope).truthy {
                return try exec(body, scope, &out)
            }
            return try exec(elseBody, scope, &out)
        case .break:
            return .breakLoop
        case .continue:
            return .continueLoop
        default:
            return try execOther(s, scope, &out)
        }
        return .normal
    }

    @inline(never)
    private func execOther(_ s: Stmt, _ scope: Scope, _ out: inout String) throws -> Flow {
        switch s {
        case .data, .output, .if, .break, .continue:
            return try exec(s, scope, &out)
        case .for(let node):
            let iterValue = try eval(node.iter, scope)
            try runFor(node, iterValue, scope, depth0: 0, &out)
        case .set(let target, let e, let p):
            let v = try eval(e, scope)
            try at(p) { try assign(target, v, scope) }
        case .setBlock(let target, let filter, let body, let p):
            var text = ""
            let inner = Scope(parent: scope)
            _ = try exec(body, inner, &text)
            var v: Value = autoescape ? .markup(text) : .string(text)
            try built(v)
            if let filter { v = try applyFilterChain(filter, v, inner) }
            try at(p) { try assign(target, v, scope) }
        case .macro(let m):
            scope.vars[m.name] = .function(makeMacro(name: m.name, params: m.params, defaults: m.defaults, body: m.body,
                                                     catchVarargs: m.catchVarargs, catchKwargs: m.catchKwargs, scope: scope))
        case .callBlock(let c):
            let caller = makeMacro(name: "caller", params: c.params, defaults: c.defaults, body: c.body,
                                   catchVarargs: c.catchVarargs, catchKwargs: c.catchKwargs, scope: scope)
            guard case .call(let fn, let args, let p) = c.call else { break }
            let v = try at(p) { () throws -> Value in
                let f = try eval(fn, scope)
                var a = try evalArgs(args, scope)
                a.keywords.append(("caller", .function(caller)))
                return try call(f, a)
            }
            out += try toOutput(v)
            try checkOutput(out)
        case .filterBlock(let filter, let body, _):
            var text = ""
            let inner = Scope(parent: scope)
            _ = try exec(body, inner, &text)
            let v = try applyFilterChain(filter, autoescape ? .markup(text) : .string(text), inner)
            out += try toOutput(v)
            try checkOutput(out)
        case .with(let pairs, let body, let p):
            let inner = Scope(parent: scope)
            for (t, e) in pairs {
                let v = try eval(e, scope)
                try at(p) { try assign(t, v, inner) }
            }
            return try exec(body, inner, &out)
        case .block(_, let body, _):
            _ = try exec(body, Scope(parent: scope), &out)
        case .autoescape(let e, let body, _):
            let saved = autoescape
            autoescape = try eval(e, scope).truthy
            defer { autoescape = saved }
            return try exec(body, scope, &out)
        case .needsLoader(let tag, let p):
            throw EvalError(kind: .runtime, message: "TypeError: no loader for this environment specified ('\(tag)' needs other templates)", pos: p)
        }
        return .normal
    }

    private func runFor(_ node: ForNode, _ iterValue: Value, _ scope: Scope, depth0: Int, _ out: inout String) throws {
        var items = try at(node.pos) { try Py.iterate(iterValue) }
        if let test = node.test {
            var kept: [Value] = []
            for item in items {
                let s = Scope(parent: scope)
                try at(node.pos) { try assign(node.target, item, s) }
                if try eval(test, s).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            _ = try exec(node.elseBody, Scope(parent: scope), &out)
            return
        }
        let loop = LoopContext(items: items, depth0: depth0)
        if node.recursive {
            loop.recurse = { [unowned self] interp, newIter in
                var text = ""
                try self.runFor(node, newIter, scope, depth0: depth0 + 1, &text)
                return text
            }
        }
        for (i, item) in items.enumerated() {
            try step()
            loop.index0 = i
            let s = Scope(parent: scope)
            try at(node.pos) { try assign(node.target, item, s) }
            s.vars["loop"] = .loop(loop)
            let flow = try at(node.pos) { try exec(node.body, s, &out) }
            if flow == .breakLoop { break }
        }
    }

    func assign(_ target: Target, _ v: Value, _ scope: Scope) throws {
        switch target {
        case .name(let n):
            scope.vars[n] = v
        case .tuple(let targets):
            let items = try Py.iterate(v)
            guard items.count == targets.count else {
                if items.count > targets.count {
                    throw EvalError.type("ValueError: too many values to unpack (expected \(targets.count))")
                }
                throw EvalError.type("ValueError: not enough values to unpack (expected \(targets.count), got \(items.count))")
            }
            for (t, item) in zip(targets, items) { try assign(t, item, scope) }
        case .namespaceAttr(let name, let attr):
            guard case .namespace(let ns)? = scope.lookup(name) else {
                throw EvalError.type("TemplateRuntimeError: cannot assign attribute on non-namespace object")
            }
            // Namespaces carry values across loop iterations, the only way a template can build
            // arbitrarily deep data; bound it (deep values would exhaust the stack later).
            if Interpreter.nestingDepth(v, limit: Interpreter.maxValueNesting) > Interpreter.maxValueNesting {
                throw EvalError.type("RecursionError: value nesting deeper than \(Interpreter.maxValueNesting) levels")
            }
            ns.attrs.set(.string(attr), v)
        }
    }

    static let maxValueNesting = 256

    /// Depth of nested containers (stops counting past `limit`; namespaces count once per path).
    static func nestingDepth(_ v: Value, limit: Int) -> Int {
        var seen = Set<ObjectIdentifier>()
        func walk(_ v: Value, _ d: Int) -> Int {
            if d > limit { return d }
            switch v {
            case .list(let a), .tuple(let a):
                var m = d
                for x in a { m = max(m, walk(x, d + 1)); if m > limit { break } }
                return m
            case .dict(let dict), .view(_, let dict):
                var m = d
                for x in dict.values { m = max(m, walk(x, d + 1)); if m > limit { break } }
                return m
            case .namespace(let ns):
                if !seen.insert(ObjectIdentifier(ns)).inserted { return d }
                var m = d
                for x in ns.attrs.values { m = max(m, walk(x, d + 1)); if m > limit { break } }
                return m
            default:
                return d
            }
        }
        return walk(v, 0)
    }

    /// Namespaces created while rendering; emptied afterwards so reference cycles
    /// (`{% set ns.me = ns %}`) do not leak.
    var namespaces: [Namespace] = []

    func makeMacro(name: String, params: [String], defaults: [Expr], body: [Stmt], catchVarargs: Bool, catchKwargs: Bool,
                   scope defScope: Scope) -> Function {
        Function(name: name, isMacro: true) { interp, args in
            let s = Scope(parent: defScope)
            let firstDefault = params.count - defaults.count
            var extraKw = PyDict()
            for (k, v) in args.keywords {
                if let idx = params.firstIndex(of: k) {
                    if idx < args.positional.count {
                        throw EvalError.type("TypeError: macro '\(name)' got multiple values for argument '\(k)'")
                    }
                } else if k == "caller" {
                    s.vars["caller"] = v
                } else if catchKwargs {
                    extraKw.set(.string(k), v)
                } else {
                    throw EvalError.type("TypeError: macro '\(name)' takes no keyword argument '\(k)'")
                }
            }
            if args.positional.count > params.count && !catchVarargs {
                throw EvalError.type("TypeError: macro '\(name)' takes not more than \(params.count) argument(s)")
            }
            for (i, p) in params.enumerated() {
                if i < args.positional.count {
                    s.vars[p] = args.positional[i]
                } else if let kv = args.keyword(p) {
                    s.vars[p] = kv
                } else if i >= firstDefault {
                    s.vars[p] = try interp.eval(defaults[i - firstDefault], s)
                } else {
                    s.vars[p] = .undef("parameter '\(p)' was not provided")
                }
            }
            s.vars["varargs"] = .tuple(args.positional.count > params.count ? Array(args.positional[params.count...]) : [])
            s.vars["kwargs"] = .dict(extraKw)
            try interp.enterRecursion()
            defer { interp.leaveRecursion() }
            var text = ""
            _ = try interp.exec(body, s, &text)
            return interp.autoescape ? .markup(text) : .string(text)
        }
    }

    // MARK: helpers

    /// Runs `f`, attaching `p` to an error that has no position yet.
    @discardableResult
    func at<T>(_ p: Pos, _ f: () throws -> T) throws -> T {
        do {
            return try f()
        } catch var e as EvalError where e.pos == nil {
            e.pos = p
            throw e
        }
    }

    @inline(never)
    func toOutput(_ v: Value) throws -> String {
        switch v {
        case .undefined: return ""
        case .markup(let s): return s
        case .string(let s): return autoescape ? PyText.htmlEscape(s) : s
        default: return autoescape ? PyText.htmlEscape(try Py.str(v)) : try Py.str(v)
        }
    }

    // MARK: expressions

    func eval(_ e: Expr, _ scope: Scope) throws -> Value {
        do {
            try step()
            let v = try evalInner(e, scope)
            switch e {
            case .name, .const, .getattr, .test, .compare, .not, .and, .or, .condexpr: break
            case .getitem(_, let key, _): if case .slice = key { try built(v) }
            default: try built(v)
            }
            return v
        } catch var err as EvalError where err.pos == nil {
            err.pos = e.pos
            throw err
        }
    }

    private func evalInner(_ e: Expr, _ scope: Scope) throws -> Value {
        switch e {
        case .name(let n, _):
            return scope.lookup(n) ?? .undefName(n)
        case .getattr(let obj, let name, _):
            return try getattr(eval(obj, scope), name)
        case .call(let fn, let args, _):
            return try evalCall(fn, args, scope)
        case .filter(let operand, let name, let args, _):
            return try evalFilter(operand, name, args, scope)
        default:
            return try evalOther(e, scope)
        }
    }

    @inline(never)
    private func evalCall(_ fn: Expr, _ args: CallArgs, _ scope: Scope) throws -> Value {
        let f: Value
        if case .getattr(let objE, let name, let p) = fn {
            // a method: its work grows with the receiver (`big.split()`, `big.count(x)`)
            let obj = try eval(objE, scope)
            try step(Interpreter.work(obj))
            do {
                f = try getattr(obj, name)
            } catch var err as EvalError where err.pos == nil {
                err.pos = p
                throw err
            }
        } else {
            f = try eval(fn, scope)
        }
        let a = try evalArgs(args, scope)
        for v in a.positional { try step(Interpreter.work(v)) }
        return try call(f, a)
    }

    @inline(never)
    private func evalFilter(_ operand: Expr?, _ name: String, _ args: CallArgs, _ scope: Scope) throws -> Value {
        guard let operand else { throw EvalError.type("filter without input") }
        let v = try eval(operand, scope)
        let a = try evalArgs(args, scope)
        try chargeFilter(name, v, a)
        return try Builtins.filter(name, v, a, self)
    }

    /// Steps for a filter: its work grows with the input (and `sort`-like filters as n log n).
    func chargeFilter(_ name: String, _ v: Value, _ a: Arguments) throws {
        var w = Interpreter.work(v)
        switch name {
        case "sort", "dictsort", "unique", "groupby", "min", "max":
            w = w &* max(1, Int.bitWidth - w.leadingZeroBitCount)
        default: break
        }
        for x in a.positional { w &+= Interpreter.work(x) }
        try step(w)
    }

    @inline(never)
    private func evalOther(_ e: Expr, _ scope: Scope) throws -> Value {
        switch e {
        case .const(let c, _):
            switch c {
            case .none: return .none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .double(let d): return .double(d)
            case .string(let s): return .string(s)
            }
        case .name(let n, _):
            return scope.lookup(n) ?? .undefName(n)
        case .list(let items, _):
            return .list(try items.map { try eval($0, scope) })
        case .tuple(let items, _):
            return .tuple(try items.map { try eval($0, scope) })
        case .dict(let pairs, _):
            var d = PyDict()
            for (k, v) in pairs {
                let kv = try eval(k, scope)
                _ = try DictKey(kv)
                d.set(kv, try eval(v, scope))
            }
            return .dict(d)
        case .getattr(let obj, let name, _):
            return try getattr(eval(obj, scope), name)
        case .getitem(let obj, let key, _):
            let o = try eval(obj, scope)
            if case .slice(let a, let b, let c, _) = key {
                let start = try a.map { try eval($0, scope) } ?? .none
                let stop = try b.map { try eval($0, scope) } ?? .none
                let step = try c.map { try eval($0, scope) } ?? .none
                return try slice(o, start, stop, step)
            }
            return try getitem(o, eval(key, scope))
        case .slice:
            throw EvalError.type("TypeError: a slice is only valid inside []")
        case .call(let fn, let args, _):
            return try evalCall(fn, args, scope)
        case .filter(let operand, let name, let args, _):
            return try evalFilter(operand, name, args, scope)
        case .test(let operand, let name, let args, _):
            let v = try eval(operand, scope)
            let a = try evalArgs(args, scope)
            for x in a.positional { try step(Interpreter.work(x)) }
            return .bool(try Builtins.test(name, v, a, self))
        case .neg(let o, _):
            return try Py.negate(eval(o, scope))
        case .pos(let o, _):
            return try Py.plus(eval(o, scope))
        case .not(let o, _):
            return .bool(!(try eval(o, scope).truthy))
        case .binary(let op, let a, let b, _):
            return try Py.binary(op, eval(a, scope), eval(b, scope))
        case .and(let a, let b, _):
            let l = try eval(a, scope)
            return l.truthy ? try eval(b, scope) : l
        case .or(let a, let b, _):
            let l = try eval(a, scope)
            return l.truthy ? l : try eval(b, scope)
        case .concat(let items, _):
            var s = ""
            for item in items {
                s += try Py.str(try eval(item, scope))
                if s.utf8.count > limits.valueBytes { try built(bytes: s.utf8.count) }
            }
            return autoescape ? .markup(s) : .string(s)
        case .compare(let first, let ops, _):
            var left = try eval(first, scope)
            for (op, rhs) in ops {
                let right = try eval(rhs, scope)
                // `in` scans the container; ==, < walk the shorter operand
                try step(op == .in || op == .notin ? Interpreter.work(right) : min(Interpreter.work(left), Interpreter.work(right)))
                if !(try Py.compare(op, left, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .condexpr(let test, let then, let els, let p):
            if try eval(test, scope).truthy { return try eval(then, scope) }
            if let els { return try eval(els, scope) }
            return .undef("the inline if-expression on line \(p.line) evaluated to false and no else section was defined.")
        }
    }

    func evalArgs(_ a: CallArgs, _ scope: Scope) throws -> Arguments {
        var out = Arguments()
        out.positional = try a.args.map { try eval($0, scope) }
        for (k, e) in a.kwargs { out.keywords.append((k, try eval(e, scope))) }
        if let d = a.dynArgs {
            out.positional += try Py.iterate(eval(d, scope))
        }
        if let d = a.dynKwargs {
            let v = try eval(d, scope)
            guard case .dict(let dict) = v else {
                throw EvalError.type("TypeError: argument after ** must be a mapping, not \(v.typeName)")
            }
            for (k, val) in zip(dict.keys, dict.values) {
                guard let ks = k.stringValue else { throw EvalError.type("TypeError: keywords must be strings") }
                out.keywords.append((ks, val))
            }
        }
        return out
    }

    func call(_ f: Value, _ args: Arguments) throws -> Value {
        switch f {
        case .function(let fn):
            return try fn.body(self, args)
        case .loop(let l):
            guard let recurse = l.recurse else {
                throw EvalError.type("TypeError: The loop must be marked as 'recursive' to call it.")
            }
            guard args.positional.count == 1 else { throw EvalError.type("TypeError: loop() takes exactly one argument") }
            try enterRecursion()
            defer { leaveRecursion() }
            let text = try recurse(self, args.positional[0])
            return autoescape ? .markup(text) : .string(text)
        case .undefined(let u):
            throw u.error
        default:
            throw EvalError.type("TypeError: '\(f.typeName)' object is not callable")
        }
    }

    /// Applies a filter chain whose innermost operand is the block body (filter / set blocks).
    func applyFilterChain(_ e: Expr, _ input: Value, _ scope: Scope) throws -> Value {
        guard case .filter(let operand, let name, let args, let p) = e else { return try eval(e, scope) }
        let v = try operand.map { try applyFilterChain($0, input, scope) } ?? input
        return try at(p) { () throws -> Value in
            let a = try evalArgs(args, scope)
            try chargeFilter(name, v, a)
            let r = try Builtins.filter(name, v, a, self)
            try built(r)
            return r
        }
    }

    // MARK: attribute and item access (Jinja2 sandbox semantics)

    func getattr(_ obj: Value, _ name: String) throws -> Value {
        if case .undefined(let u) = obj { throw u.error }
        if name.hasPrefix("_") {
            return .undefined(Undefined(hint: "access to attribute '\(name)' of '\(obj.typeName)' object is unsafe.", unsafe: true))
        }
        if let m = try Builtins.attribute(obj, name, self) { return m }
        switch obj {
        case .dict(let d):
            if let v = d.get(name) { return v }
        case .namespace(let ns):
            if let v = ns.attrs.get(name) { return v }
        default:
            break
        }
        return .undef("'\(objectDescription(obj))' has no attribute '\(name)'")
    }

    func getitem(_ obj: Value, _ key: Value) throws -> Value {
        if case .undefined(let u) = obj { throw u.error }
        switch obj {
        case .dict(let d):
            if let v = d.get(key) { return v }
        case .list(let a), .tuple(let a):
            if case .int(let i)? = key.number, !(key.stringValue != nil) {
                if let j = Py.index(i, count: a.count) { return a[j] }
                return .undef("'\(objectDescription(obj))' has no element \(i)")
            }
        case .string(let s), .markup(let s):
            if case .int(let i)? = key.number {
                let u = Array(s.unicodeScalars)
                if let j = Py.index(i, count: u.count) {
                    let ch = String(Character(u[j]))
                    if case .markup = obj { return .markup(ch) }
                    return .string(ch)
                }
                return .undef("'\(objectDescription(obj))' has no element \(i)")
            }
        case .namespace:
            break
        case .loop:
            break
        default:
            break
        }
        if let name = key.stringValue {
            return try getattr(obj, name)
        }
        return .undef("'\(objectDescription(obj))' has no element \(Py.reprForMessage(key))")
    }

    func slice(_ obj: Value, _ start: Value, _ stop: Value, _ step: Value) throws -> Value {
        if case .undefined(let u) = obj { throw u.error }
        switch obj {
        case .list(let a):
            return .list(try Py.sliceIndices(start, stop, step, count: a.count).map { a[$0] })
        case .tuple(let a):
            return .tuple(try Py.sliceIndices(start, stop, step, count: a.count).map { a[$0] })
        case .string(let s), .markup(let s):
            let u = Array(s.unicodeScalars)
            let r = PyText.make(try Py.sliceIndices(start, stop, step, count: u.count).map { u[$0] })
            if case .markup = obj { return .markup(r) }
            return .string(r)
        default:
            return .undef("'\(objectDescription(obj))' is not subscriptable")
        }
    }

    func objectDescription(_ v: Value) -> String {
        switch v {
        case .none: return "None"
        default: return "\(v.typeName) object"
        }
    }
}
