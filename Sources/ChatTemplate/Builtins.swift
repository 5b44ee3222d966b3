import Foundation

/// Jinja2's builtin filters, tests, global functions, and the Python methods templates call.
enum Builtins {
    static let knownFilters: Set<String> = [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "join", "last",
        "length", "list", "lower", "items", "map", "min", "max", "pprint", "random", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags", "sum",
        "title", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
        "tojson",
    ]

    static let knownTests: Set<String> = [
        "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
        "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
        "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=", "<",
        "lt", "lessthan", "<=", "le",
    ]

    // MARK: globals

    static func globals(raise: Bool = true) -> [String: Value] {
        var g: [String: Value] = [:]
        g["range"] = .function(Function(name: "range") { _, a in
            try a.check("range", ["start", "stop", "step"])
            func int(_ v: Value) throws -> Int {
                guard case .int(let i)? = v.number else {
                    if case .undefined(let u) = v { throw u.error }
                    throw EvalError.type("TypeError: '\(v.typeName)' object cannot be interpreted as an integer")
                }
                return i
            }
            let p = try a.positional.map(int)
            var start = 0, stop = 0, step = 1
            switch p.count {
            case 1: stop = p[0]
            case 2: start = p[0]; stop = p[1]
            case 3: start = p[0]; stop = p[1]; step = p[2]
            default: throw EvalError.type("TypeError: range expected 1 to 3 arguments, got \(p.count)")
            }
            if step == 0 { throw EvalError.type("ValueError: range() arg 3 must not be zero") }
            // element count computed in Double: no overflow for extreme arguments
            let span = step > 0 ? Double(stop) - Double(start) : Double(start) - Double(stop)
            let countD = span <= 0 ? 0 : (span / Double(step.magnitude)).rounded(.up)
            if countD > 100_000 { throw EvalError.type("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).") }
            let count = Int(countD)
            var out: [Value] = []
            out.reserveCapacity(count)
            var i = start
            for _ in 0..<count { out.append(.int(i)); i &+= step }
            return .list(out)
        })
        g["dict"] = .function(Function(name: "dict") { _, a in
            var d = PyDict()
            if a.positional.count > 1 { throw EvalError.type("TypeError: dict expected at most 1 argument, got \(a.positional.count)") }
            if let first = a.positional.first {
                if case .dict(let src) = first {
                    d = src
                } else {
                    for item in try Py.iterate(first) {
                        let pair = try Py.iterate(item)
                        guard pair.count == 2 else { throw EvalError.type("ValueError: dictionary update sequence element has length \(pair.count); 2 is required") }
                        _ = try DictKey(pair[0])
                        d.set(pair[0], pair[1])
                    }
                }
            }
            for (k, v) in a.keywords { d.set(.string(k), v) }
            return .dict(d)
        })
        g["namespace"] = .function(Function(name: "namespace") { interp, a in
            let ns = Namespace()
            interp.namespaces.append(ns)
            for p in a.positional {
                if case .dict(let src) = p {
                    for (k, v) in zip(src.keys, src.values) { ns.attrs.set(k, v) }
                } else {
                    for item in try Py.iterate(p) {
                        let pair = try Py.iterate(item)
                        guard pair.count == 2 else { throw EvalError.type("ValueError: dictionary update sequence element has length \(pair.count); 2 is required") }
                        ns.attrs.set(pair[0], pair[1])
                    }
                }
            }
            for (k, v) in a.keywords { ns.attrs.set(.string(k), v) }
            if Interpreter.nestingDepth(.namespace(ns), limit: Interpreter.maxValueNesting) > Interpreter.maxValueNesting {
                throw EvalError.type("RecursionError: value nesting deeper than \(Interpreter.maxValueNesting) levels")
            }
            return .namespace(ns)
        })
        g["cycler"] = .function(Function(name: "cycler") { _, a in .cycler(Cycler(a.positional)) })
        g["joiner"] = .function(Function(name: "joiner") { _, a in
            try a.check("joiner", ["sep"])
            let sep = try a.get(0, "sep").map { try Py.str($0) } ?? ", "
            var used = false
            return .function(Function(name: "joiner") { _, _ in
                if !used { used = true; return .string("") }
                return .string(sep)
            })
        })
        if raise {
            g["raise_exception"] = .function(Function(name: "raise_exception") { _, a in
                let msg = try a.get(0, "message").map { try Py.str($0) } ?? ""
                throw EvalError(kind: .raised, message: msg, pos: nil)
            })
        }
        g["strftime_now"] = .function(Function(name: "strftime_now") { interp, a in
            guard let fmt = a.get(0, "format")?.stringValue else { throw EvalError.type("TypeError: strftime_now() argument must be str") }
            return .string(PyFormat.strftime(fmt, date: interp.now, timeZone: interp.timeZone))
        })
        return g
    }

    /// `sep.join(items)`, converting each item with `str`; stops at the value-size limit before
    /// building more (items can be the same big string many times over).
    static func joinLimited(_ items: [Value], _ sep: String, _ str: (Value) throws -> String) throws -> String {
        let limit = RenderBudget.valueBytes
        var out = ""
        for (i, item) in items.enumerated() {
            if i > 0 { out += sep }
            let t = try str(item)
            if out.utf8.count &+ t.utf8.count > limit { throw Py.sizeError(out.utf8.count &+ t.utf8.count, limit) }
            out += t
        }
        return out
    }

    // MARK: attributes and methods

    private static func method(_ name: String, _ body: @escaping (Interpreter, Arguments) throws -> Value) -> Value {
        .function(Function(name: name, body))
    }

    private static let unsafeListMethods: Set<String> = ["append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"]
    private static let unsafeDictMethods: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]

    private static func str(_ a: Arguments, _ i: Int, _ name: String) throws -> String? {
        guard let v = a.get(i, name) else { return nil }
        if case .none = v { return nil }
        guard let s = v.stringValue else {
            if case .undefined(let u) = v { throw u.error }
            throw EvalError.type("TypeError: must be str, not \(v.typeName)")
        }
        return s
    }

    private static func int(_ a: Arguments, _ i: Int, _ name: String) throws -> Int? {
        guard let v = a.get(i, name) else { return nil }
        if case .none = v { return nil }
        guard case .int(let n)? = v.number else {
            if case .undefined(let u) = v { throw u.error }
            throw EvalError.type("TypeError: '\(v.typeName)' object cannot be interpreted as an integer")
        }
        return n
    }

    /// Attribute lookup before item lookup (Python `getattr`): methods, loop/cycler attributes.
    /// Returns nil when the object has no such attribute.
    static func attribute(_ obj: Value, _ name: String, _ interp: Interpreter) throws -> Value? {
        switch obj {
        case .string(let s), .markup(let s):
            let isMarkup: Bool = { if case .markup = obj { return true }; return false }()
            return stringMethod(s, name, isMarkup: isMarkup)
        case .list(let a), .tuple(let a):
            let isList: Bool = { if case .list = obj { return true }; return false }()
            if isList, unsafeListMethods.contains(name) {
                return .undefined(Undefined(hint: "access to attribute '\(name)' of 'list' object is unsafe.", unsafe: true))
            }
            switch name {
            case "count":
                return method(name) { _, args in .int(a.filter { Py.equal($0, args.positional.first ?? .none) }.count) }
            case "index":
                return method(name) { _, args in
                    let x = args.positional.first ?? .none
                    guard let i = a.firstIndex(where: { Py.equal($0, x) }) else {
                        throw EvalError.type("ValueError: \(Py.reprForMessage(x)) is not in list")
                    }
                    return .int(i)
                }
            case "copy" where isList:
                return method(name) { _, _ in .list(a) }
            default:
                return nil
            }
        case .dict(let d):
            if unsafeDictMethods.contains(name) {
                return .undefined(Undefined(hint: "access to attribute '\(name)' of 'dict' object is unsafe.", unsafe: true))
            }
            switch name {
            case "items": return method(name) { _, _ in .view(.items, d) }
            case "keys": return method(name) { _, _ in .view(.keys, d) }
            case "values": return method(name) { _, _ in .view(.values, d) }
            case "get":
                return method(name) { _, args in
                    guard let k = args.positional.first else { throw EvalError.type("TypeError: get expected at least 1 argument, got 0") }
                    if case .undefined(let u) = k { throw u.error }
                    _ = try DictKey(k)
                    return d.get(k) ?? (args.positional.count > 1 ? args.positional[1] : .none)
                }
            case "copy": return method(name) { _, _ in .dict(d) }
            default: return nil
            }
        case .loop(let l):
            return loopAttribute(l, name)
        case .cycler(let c):
            switch name {
            case "current": return c.current
            case "next": return method(name) { _, _ in c.next() }
            case "reset": return method(name) { _, _ in c.pos = 0; return .none }
            default: return nil
            }
        case .double(let d):
            switch name {
            case "real": return .double(d)
            case "imag": return .double(0)
            case "is_integer": return method(name) { _, _ in .bool(d.isFinite && d == d.rounded()) }
            default: return nil
            }
        case .int(let i):
            switch name {
            case "real", "numerator": return .int(i)
            case "imag": return .int(0)
            case "denominator": return .int(1)
            default: return nil
            }
        default:
            return nil
        }
    }

    private static func loopAttribute(_ l: LoopContext, _ name: String) -> Value? {
        let i = l.index0, n = l.length
        switch name {
        case "index": return .int(i + 1)
        case "index0": return .int(i)
        case "revindex": return .int(n - i)
        case "revindex0": return .int(n - i - 1)
        case "first": return .bool(i == 0)
        case "last": return .bool(i == n - 1)
        case "length": return .int(n)
        case "depth": return .int(l.depth0 + 1)
        case "depth0": return .int(l.depth0)
        case "previtem": return i > 0 ? l.items[i - 1] : .undef("there is no previous item")
        case "nextitem": return i + 1 < n ? l.items[i + 1] : .undef("there is no next item")
        case "cycle":
            return method(name) { _, a in
                guard !a.positional.isEmpty else { throw EvalError.type("TypeError: no items for cycling given") }
                return a.positional[i % a.positional.count]
            }
        case "changed":
            return method(name) { _, a in
                let vals = a.positional
                if let last = l.lastChanged, last.count == vals.count, zip(last, vals).allSatisfy({ Py.equal($0.0, $0.1) }) {
                    return .bool(false)
                }
                l.lastChanged = vals
                return .bool(true)
            }
        default: return nil
        }
    }

    private static func stringMethod(_ s: String, _ name: String, isMarkup: Bool) -> Value? {
        func wrap(_ r: String) -> Value { isMarkup ? .markup(r) : .string(r) }
        func ok(_ b: Bool, _ pred: (Unicode.Scalar) -> Bool) -> Value {
            .bool(!s.isEmpty && b && s.unicodeScalars.allSatisfy(pred))
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            return method(name) { _, a in
                try a.check(name, ["chars"])
                let chars = try str(a, 0, "chars")
                return wrap(PyText.strip(s, chars: chars, left: name != "rstrip", right: name != "lstrip"))
            }
        case "split", "rsplit":
            return method(name) { _, a in
                try a.check(name, ["sep", "maxsplit"])
                let sep = try str(a, 0, "sep")
                let maxsplit = try int(a, 1, "maxsplit") ?? -1
                let parts = name == "split" ? try PyText.split(s, sep: sep, maxsplit: maxsplit) : try PyText.rsplit(s, sep: sep, maxsplit: maxsplit)
                return .list(parts.map(wrap))
            }
        case "splitlines":
            return method(name) { _, a in
                let keep = a.get(0, "keepends")?.truthy ?? false
                return .list(PyText.splitlines(s, keepends: keep).map(wrap))
            }
        case "startswith", "endswith":
            return method(name) { _, a in
                guard let p = a.positional.first else { throw EvalError.type("TypeError: \(name)() takes at least 1 argument (0 given)") }
                let candidates: [Value]
                if case .tuple(let t) = p { candidates = t } else { candidates = [p] }
                let u = PyText.scalars(s)
                let (lo, hi) = PyText.clampRange(try int(a, 1, "start"), try int(a, 2, "end"), u.count)
                let sub = lo <= hi ? Array(u[lo..<hi]) : []
                for c in candidates {
                    guard let cs = c.stringValue else {
                        if case .undefined(let un) = c { throw un.error }
                        throw EvalError.type("TypeError: \(name) first arg must be str or a tuple of str, not \(c.typeName)")
                    }
                    let pu = PyText.scalars(cs)
                    if lo > u.count || lo > hi && !pu.isEmpty { continue }
                    if pu.count <= sub.count {
                        if name == "startswith" ? Array(sub.prefix(pu.count)) == pu : Array(sub.suffix(pu.count)) == pu { return .bool(true) }
                    }
                }
                return .bool(false)
            }
        case "upper": return method(name) { _, _ in wrap(PyText.upper(s)) }
        case "lower": return method(name) { _, _ in wrap(PyText.lower(s)) }
        case "casefold": return method(name) { _, _ in wrap(PyText.lower(s)) }
        case "title": return method(name) { _, _ in wrap(PyText.pyTitle(s)) }
        case "capitalize": return method(name) { _, _ in wrap(PyText.capitalize(s)) }
        case "swapcase": return method(name) { _, _ in wrap(PyText.swapcase(s)) }
        case "replace":
            return method(name) { _, a in
                guard let old = try str(a, 0, "old"), let new = try str(a, 1, "new") else {
                    throw EvalError.type("TypeError: replace expected at least 2 arguments")
                }
                return wrap(try PyText.replace(s, old, new, count: try int(a, 2, "count") ?? -1))
            }
        case "find", "rfind", "index", "rindex":
            return method(name) { _, a in
                guard let sub = try str(a, 0, "sub") else { throw EvalError.type("TypeError: \(name)() takes at least 1 argument (0 given)") }
                let r = PyText.find(s, sub, start: try int(a, 1, "start"), end: try int(a, 2, "end"), reverse: name.hasPrefix("r"))
                if r < 0 && name.hasSuffix("index") { throw EvalError.type("ValueError: substring not found") }
                return .int(r)
            }
        case "count":
            return method(name) { _, a in
                guard let sub = try str(a, 0, "sub") else { throw EvalError.type("TypeError: count() takes at least 1 argument (0 given)") }
                return .int(PyText.count(s, sub))
            }
        case "join":
            return method(name) { _, a in
                guard let seq = a.positional.first else { throw EvalError.type("TypeError: join() takes exactly one argument (0 given)") }
                var parts: [String] = []
                for item in try Py.iterate(seq) {
                    guard let t = item.stringValue else {
                        throw EvalError.type("TypeError: sequence item \(parts.count): expected str instance, \(item.typeName) found")
                    }
                    parts.append(isMarkup ? try Py.escapeForMarkup(item) : t)
                }
                return wrap(try joinLimited(parts.map { .string($0) }, s) { $0.stringValue ?? "" })
            }
        case "format":
            return method(name) { interp, a in wrap(try PyFormat.format(s, a, interp: interp)) }
        case "partition", "rpartition":
            return method(name) { _, a in
                guard let sep = try str(a, 0, "sep"), !sep.isEmpty else { throw EvalError.type("ValueError: empty separator") }
                let i = PyText.find(s, sep, reverse: name == "rpartition")
                let u = PyText.scalars(s)
                if i < 0 {
                    return name == "partition" ? .tuple([wrap(s), wrap(""), wrap("")]) : .tuple([wrap(""), wrap(""), wrap(s)])
                }
                let n = sep.unicodeScalars.count
                return .tuple([wrap(PyText.make(u[..<i])), wrap(sep), wrap(PyText.make(u[(i + n)...]))])
            }
        case "removeprefix", "removesuffix":
            return method(name) { _, a in
                guard let x = try str(a, 0, "prefix") else { throw EvalError.type("TypeError: \(name)() takes exactly one argument") }
                let u = PyText.scalars(s), p = PyText.scalars(x)
                if name == "removeprefix", u.starts(with: p) { return wrap(PyText.make(u.dropFirst(p.count))) }
                if name == "removesuffix", !p.isEmpty, u.count >= p.count, Array(u.suffix(p.count)) == p { return wrap(PyText.make(u.dropLast(p.count))) }
                return wrap(s)
            }
        case "center", "ljust", "rjust":
            return method(name) { _, a in
                let width = try int(a, 0, "width") ?? 0
                let fill = try str(a, 1, "fillchar") ?? " "
                let n = PyText.length(s)
                if width <= n { return wrap(s) }
                try Py.checkSize(width)
                let total = width - n
                var left = 0
                switch name {
                case "ljust": left = 0
                case "rjust": left = total
                default: left = total / 2 + (total & width & 1)
                }
                return wrap(String(repeating: fill, count: left) + s + String(repeating: fill, count: total - left))
            }
        case "zfill":
            return method(name) { _, a in
                let width = try int(a, 0, "width") ?? 0
                var u = PyText.scalars(s)
                if width <= u.count { return wrap(s) }
                try Py.checkSize(width)
                var sign: [Unicode.Scalar] = []
                if let f = u.first, f == "+" || f == "-" { sign = [f]; u.removeFirst() }
                return wrap(PyText.make(sign + Array(repeating: "0", count: width - u.count - sign.count) + u))
            }
        case "isdigit": return method(name) { _, _ in ok(true, PyText.isDigit) }
        case "isdecimal": return method(name) { _, _ in ok(true, PyText.isDecimal) }
        case "isnumeric": return method(name) { _, _ in ok(true, PyText.isNumeric) }
        case "isalpha": return method(name) { _, _ in ok(true, PyText.isAlpha) }
        case "isalnum": return method(name) { _, _ in ok(true, PyText.isAlnum) }
        case "isspace": return method(name) { _, _ in ok(true, PyText.isSpace) }
        case "isascii": return method(name) { _, _ in .bool(s.unicodeScalars.allSatisfy { $0.isASCII }) }
        case "islower":
            return method(name) { _, _ in
                let cased = s.unicodeScalars.filter(PyText.isCased)
                return .bool(!cased.isEmpty && cased.allSatisfy { $0.properties.isLowercase })
            }
        case "isupper":
            return method(name) { _, _ in
                let cased = s.unicodeScalars.filter(PyText.isCased)
                return .bool(!cased.isEmpty && cased.allSatisfy { $0.properties.isUppercase })
            }
        case "istitle": return method(name) { _, _ in .bool(!s.isEmpty && PyText.pyTitle(s) == s && s.unicodeScalars.contains(where: PyText.isCased)) }
        case "encode":
            return nil
        default:
            return nil
        }
    }

    // MARK: filters

    /// `attr` chains like "function.name" or "0" (Jinja's make_attrgetter).
    private static func attrGetter(_ attribute: Value, _ interp: Interpreter, default dflt: Value? = nil,
                                   postprocess: ((Value) -> Value)? = nil) -> (Value) throws -> Value {
        var parts: [Value] = []
        if let s = attribute.stringValue {
            for p in s.split(separator: ".", omittingEmptySubsequences: false) {
                parts.append(Int(p).map { .int($0) } ?? .string(String(p)))
            }
        } else {
            parts = [attribute]
        }
        return { item in
            var v = item
            for p in parts {
                v = try interp.getitem(v, p)
                if let dflt, v.isUndefined { v = dflt }
            }
            return postprocess.map { $0(v) } ?? v
        }
    }

    private static func caseInsensitive(_ v: Value) -> Value {
        if let s = v.stringValue { return .string(PyText.lower(s)) }
        return v
    }

    private static func sortKey(caseSensitive: Bool, attribute: Value?, _ interp: Interpreter) -> (Value) throws -> Value {
        var post: ((Value) -> Value)? = nil
        if !caseSensitive { post = { caseInsensitive($0) } }
        if let attribute, !attribute.isNone {
            return attrGetter(attribute, interp, postprocess: post)
        }
        return { v in post.map { $0(v) } ?? v }
    }

    private static func bool(_ a: Arguments, _ i: Int, _ name: String) -> Bool? {
        a.get(i, name).map { $0.truthy }
    }

    static func filter(_ name: String, _ value: Value, _ a: Arguments, _ interp: Interpreter) throws -> Value {
        switch name {
        case "tojson":
            try a.check("tojson", ["ensure_ascii", "indent", "separators", "sort_keys"])
            let asciiOnly = bool(a, 0, "ensure_ascii") ?? false
            var indent: String? = nil
            if let iv = a.get(1, "indent"), !iv.isNone {
                switch iv {
                case .int(let n):
                    try Py.checkSize(n)
                    indent = String(repeating: " ", count: max(0, n))
                case .string(let s), .markup(let s): indent = s
                default: throw EvalError.type("TypeError: can't multiply sequence by non-int of type '\(iv.typeName)'")
                }
            }
            var itemSep = indent == nil ? ", " : ",", keySep = ": "
            if let sv = a.get(2, "separators"), !sv.isNone {
                let parts = try Py.iterate(sv)
                guard parts.count == 2, let x = parts[0].stringValue, let y = parts[1].stringValue else {
                    throw EvalError.type("ValueError: separators must be a pair of strings")
                }
                itemSep = x
                keySep = y
            }
            let sortKeys = bool(a, 3, "sort_keys") ?? false
            return .string(try JSONText.dump(value, indent: indent, itemSeparator: itemSep, keySeparator: keySep, sortKeys: sortKeys, asciiOnly: asciiOnly))
        case "length", "count":
            return .int(try Py.length(value))
        case "string":
            if case .markup = value { return value }
            return .string(try Py.str(value))
        case "trim":
            try a.check(name, ["chars"])
            let chars = try str(a, 0, "chars")
            let r = PyText.strip(try Py.str(value), chars: chars, left: true, right: true)
            if case .markup = value { return .markup(r) }
            return .string(r)
        case "upper": return wrapLike(value, PyText.upper(try Py.str(value)))
        case "lower": return wrapLike(value, PyText.lower(try Py.str(value)))
        case "capitalize": return wrapLike(value, PyText.capitalize(try Py.str(value)))
        case "title": return wrapLike(value, PyText.jinjaTitle(try Py.str(value)))
        case "replace":
            try a.check(name, ["old", "new", "count"])
            guard let oldV = a.get(0, "old"), let newV = a.get(1, "new") else {
                throw EvalError.type("TypeError: do_replace() missing required arguments 'old' and 'new'")
            }
            let count = try int(a, 2, "count") ?? -1
            if case .markup(let s) = value {
                return .markup(try PyText.replace(s, try Py.escapeForMarkup(oldV), try Py.escapeForMarkup(newV), count: count))
            }
            return .string(try PyText.replace(try Py.str(value), try Py.str(oldV), try Py.str(newV), count: count))
        case "join":
            try a.check(name, ["d", "attribute"])
            let sep = try a.get(0, "d").map { try Py.str($0) } ?? ""
            var items = try Py.iterate(value)
            if let attr = a.get(1, "attribute"), !attr.isNone {
                let g = attrGetter(attr, interp)
                items = try items.map(g)
            }
            return .string(try joinLimited(items, sep) { try Py.str($0) })
        case "default", "d":
            try a.check(name, ["default_value", "boolean"])
            let dflt = a.get(0, "default_value") ?? .string("")
            let boolean = bool(a, 1, "boolean") ?? false
            if value.isUndefined || (boolean && !value.truthy) { return dflt }
            return value
        case "first":
            if case .iterator(let it) = value {
                return try it.next() ?? .undef("No first item, sequence was empty.")
            }
            let items = try Py.iterate(value)
            return items.first ?? .undef("No first item, sequence was empty.")
        case "last":
            switch value {
            case .iterator, .view:
                throw EvalError.type("TypeError: '\(value.typeName)' object is not reversible")
            default:
                let items = try Py.iterate(value)
                return items.last ?? .undef("No last item, sequence was empty.")
            }
        case "items":
            switch value {
            case .undefined: return .iterator(PyIterator(typeName: "generator", items: []))
            case .dict(let d): return .iterator(PyIterator(typeName: "generator", items: d.items))
            default: throw EvalError.type("TypeError: Can only get item pairs from a mapping.")
            }
        case "list":
            return .list(try Py.iterate(value))
        case "int":
            try a.check(name, ["default", "base"])
            let dflt = a.get(0, "default") ?? .int(0)
            let base = try int(a, 1, "base") ?? 10
            return toInt(value, base: base) ?? dflt
        case "float":
            try a.check(name, ["default"])
            return toFloat(value) ?? (a.get(0, "default") ?? .double(0))
        case "abs":
            try Py.checkDefined(value)
            switch value.number {
            case .int(let i)?: return .int(i.magnitude > UInt(Int.max) ? i : abs(i))
            case .double(let d)?: return .double(abs(d))
            case nil: throw EvalError.type("TypeError: bad operand type for abs(): '\(value.typeName)'")
            }
        case "round":
            try a.check(name, ["precision", "method"])
            let precision = try int(a, 0, "precision") ?? 0
            let methodName = try str(a, 1, "method") ?? "common"
            try Py.checkDefined(value)
            guard let n = value.number else { throw EvalError.type("TypeError: type \(value.typeName) doesn't define __round__ method") }
            switch methodName {
            case "common":
                if case .int(let i) = n { return .int(i) }
                return .double(PyNumber.round(Py.toDouble(n), precision))
            case "floor", "ceil":
                let p = pow(10.0, Double(precision))
                let x = Py.toDouble(n) * p
                return .double((methodName == "floor" ? x.rounded(.down) : x.rounded(.up)) / p)
            default:
                throw EvalError.type("FilterArgumentError: method must be common, ceil or floor")
            }
        case "reverse":
            switch value {
            case .string(let s): return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed())))
            case .markup(let s): return .markup(String(String.UnicodeScalarView(s.unicodeScalars.reversed())))
            case .list(let arr): return .iterator(PyIterator(typeName: "list_reverseiterator", items: arr.reversed()))
            case .tuple(let arr): return .iterator(PyIterator(typeName: "reversed", items: arr.reversed()))
            case .dict(let d): return .iterator(PyIterator(typeName: "dict_reversekeyiterator", items: d.keys.reversed()))
            default: return .list(try Py.iterate(value).reversed())
            }
        case "sort":
            try a.check(name, ["reverse", "case_sensitive", "attribute"])
            let reverse = bool(a, 0, "reverse") ?? false
            let key = sortKey(caseSensitive: bool(a, 1, "case_sensitive") ?? false, attribute: a.get(2, "attribute"), interp)
            let items = try Py.iterate(value)
            let keyed = try items.map { (try key($0), $0) }
            let sorted = try Sorting.stableSort(keyed) { reverse ? try Py.less($1.0, $0.0) : try Py.less($0.0, $1.0) }
            return .list(sorted.map { $0.1 })
        case "dictsort":
            try a.check(name, ["case_sensitive", "by", "reverse"])
            guard case .dict(let d) = value else {
                if case .undefined(let u) = value { throw u.error }
                throw EvalError.type("AttributeError: '\(value.typeName)' object has no attribute 'items'")
            }
            let caseSensitive = bool(a, 0, "case_sensitive") ?? false
            let by = try str(a, 1, "by") ?? "key"
            guard by == "key" || by == "value" else { throw EvalError.type("FilterArgumentError: You can only sort by either \"key\" or \"value\"") }
            let reverse = bool(a, 2, "reverse") ?? false
            let pairs = Array(zip(d.keys, d.values))
            let sorted = try Sorting.stableSort(pairs) { x, y in
                var kx = by == "key" ? x.0 : x.1, ky = by == "key" ? y.0 : y.1
                if !caseSensitive { kx = caseInsensitive(kx); ky = caseInsensitive(ky) }
                return reverse ? try Py.less(ky, kx) : try Py.less(kx, ky)
            }
            return .list(sorted.map { .tuple([$0.0, $0.1]) })
        case "unique":
            try a.check(name, ["case_sensitive", "attribute"])
            let key = sortKey(caseSensitive: bool(a, 0, "case_sensitive") ?? false, attribute: a.get(1, "attribute"), interp)
            let items = try Py.iterate(value)
            var seen: [Value] = []
            var out: [Value] = []
            for item in items {
                let k = try key(item)
                _ = try DictKey(k)
                if !seen.contains(where: { Py.equal($0, k) }) {
                    seen.append(k)
                    out.append(item)
                }
            }
            return .iterator(PyIterator(typeName: "generator", items: out))
        case "min", "max":
            try a.check(name, ["case_sensitive", "attribute"])
            let key = sortKey(caseSensitive: bool(a, 0, "case_sensitive") ?? false, attribute: a.get(1, "attribute"), interp)
            let items = try Py.iterate(value)
            guard var best = items.first else { return .undef("No aggregated item, sequence was empty.") }
            var bestKey = try key(best)
            for item in items.dropFirst() {
                let k = try key(item)
                if name == "min" ? try Py.less(k, bestKey) : try Py.less(bestKey, k) {
                    best = item
                    bestKey = k
                }
            }
            return best
        case "sum":
            try a.check(name, ["attribute", "start"])
            var items = try Py.iterate(value)
            if let attr = a.get(0, "attribute"), !attr.isNone {
                let g = attrGetter(attr, interp)
                items = try items.map(g)
            }
            var total = a.get(1, "start") ?? .int(0)
            for item in items { total = try Py.binary(.add, total, item) }
            return total
        case "map", "select", "reject", "selectattr", "rejectattr":
            // Python generators: nothing runs until the first item is requested; falsy input yields nothing.
            var items: [Value]? = nil
            var fn: ((Value) throws -> Value?)? = nil
            var i = 0
            return .iterator(PyIterator(typeName: "generator") {
                if items == nil {
                    guard value.truthy else { items = []; return nil }
                    fn = try mapOrSelect(name, a, interp)
                    items = try Py.iterate(value)
                }
                guard let items, let fn else { return nil }
                while i < items.count {
                    let item = items[i]
                    i += 1
                    if let r = try fn(item) { return r }
                }
                return nil
            })
        case "indent":
            try a.check(name, ["width", "first", "blank"])
            var indention = "    "
            if let w = a.get(0, "width") {
                if let s = w.stringValue { indention = s } else if case .int(let n)? = w.number {
                    try Py.checkSize(n)
                    indention = String(repeating: " ", count: max(0, n))
                }
            }
            let first = bool(a, 1, "first") ?? false
            let blank = bool(a, 2, "blank") ?? false
            let s = try Py.str(value) + "\n"
            // the indentation added is at most lines x width
            try Py.checkSize(PyText.splitlines(s).count, unit: indention.utf8.count)
            var rv: String
            if blank {
                rv = PyText.splitlines(s).joined(separator: "\n" + indention)
            } else {
                var lines = PyText.splitlines(s)
                rv = lines.isEmpty ? "" : lines.removeFirst()
                if !lines.isEmpty {
                    rv += "\n" + lines.map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n")
                }
            }
            if first { rv = indention + rv }
            return wrapLike(value, rv)
        case "wordcount":
            var count = 0
            var inWord = false
            for c in try Py.str(value).unicodeScalars {
                if PyText.isWord(c) {
                    if !inWord { count += 1 }
                    inWord = true
                } else {
                    inWord = false
                }
            }
            return .int(count)
        case "safe":
            if case .markup = value { return value }
            return .markup(try Py.str(value))
        case "e", "escape":
            if case .markup = value { return value }
            return .markup(PyText.htmlEscape(try Py.str(value)))
        case "forceescape":
            return .markup(PyText.htmlEscape(try Py.str(value)))
        case "center":
            try a.check(name, ["width"])
            let width = try int(a, 0, "width") ?? 80
            let s = try Py.str(value)
            let n = PyText.length(s)
            if width <= n { return .string(s) }
            try Py.checkSize(width)
            let total = width - n
            let left = total / 2 + (total & width & 1)
            return .string(String(repeating: " ", count: left) + s + String(repeating: " ", count: total - left))
        case "format":
            let fmt = try Py.str(value)
            if !a.positional.isEmpty && !a.keywords.isEmpty {
                throw EvalError.type("FilterArgumentError: can't handle positional and keyword arguments at the same time")
            }
            if !a.keywords.isEmpty {
                var d = PyDict()
                for (k, v) in a.keywords { d.set(.string(k), v) }
                return .string(try PyFormat.percent(fmt, .dict(d), markup: false))
            }
            return .string(try PyFormat.percent(fmt, .tuple(a.positional), markup: false))
        case "attr":
            guard let n = a.positional.first?.stringValue else { throw EvalError.type("TypeError: attr() requires a name") }
            if case .undefined(let u) = value { throw u.error }
            if n.hasPrefix("_") { return .undefined(Undefined(hint: "access to attribute '\(n)' is unsafe.", unsafe: true)) }
            if let m = try attribute(value, n, interp) { return m }
            if case .namespace(let ns) = value, let v = ns.attrs.get(n) { return v }
            return .undef("'\(interp.objectDescription(value))' has no attribute '\(n)'")
        case "batch":
            try a.check(name, ["linecount", "fill_with"])
            guard let n = try int(a, 0, "linecount"), n > 0 else { throw EvalError.type("ValueError: batch size must be positive") }
            try Py.checkSize(n, unit: 16)
            let fill = a.get(1, "fill_with")
            var out: [Value] = []
            var cur: [Value] = []
            for item in try Py.iterate(value) {
                cur.append(item)
                if cur.count == n { out.append(.list(cur)); cur = [] }
            }
            if !cur.isEmpty {
                if let fill, !fill.isNone { while cur.count < n { cur.append(fill) } }
                out.append(.list(cur))
            }
            return .iterator(PyIterator(typeName: "generator", items: out))
        case "slice":
            try a.check(name, ["slices", "fill_with"])
            guard let slices = try int(a, 0, "slices"), slices > 0 else { throw EvalError.type("ValueError: slices must be positive") }
            try Py.checkSize(slices, unit: 16)
            let fill = a.get(1, "fill_with")
            let seq = try Py.iterate(value)
            let perSlice = seq.count / slices, withExtra = seq.count % slices
            var offset = 0
            var out: [Value] = []
            for k in 0..<slices {
                let start = offset + k * perSlice
                if k < withExtra { offset += 1 }
                let end = offset + (k + 1) * perSlice
                var tmp = Array(seq[min(start, seq.count)..<min(end, seq.count)])
                if let fill, !fill.isNone, k >= withExtra { tmp.append(fill) }
                out.append(.list(tmp))
            }
            return .iterator(PyIterator(typeName: "generator", items: out))
        case "truncate":
            try a.check(name, ["length", "killwords", "end", "leeway"])
            let s = try Py.str(value)
            let length = try int(a, 0, "length") ?? 255
            let killwords = bool(a, 1, "killwords") ?? false
            let end = try str(a, 2, "end") ?? "..."
            let leeway = try int(a, 3, "leeway") ?? 5
            let u = PyText.scalars(s)
            let endLen = end.unicodeScalars.count
            if length < endLen { throw EvalError.type("AssertionError: expected length >= \(endLen), got \(length)") }
            if leeway < 0 { throw EvalError.type("AssertionError: expected leeway >= 0, got \(leeway)") }
            if u.count <= length + leeway { return .string(s) }
            if killwords { return .string(PyText.make(u.prefix(length - endLen)) + end) }
            var cut = PyText.make(u.prefix(length - endLen))
            if let sp = cut.lastIndex(of: " ") { cut = String(cut[..<sp]) } else { cut = "" }
            return .string(cut + end)
        case "striptags":
            var out = ""
            var inTag = false
            for c in try Py.str(value).unicodeScalars {
                if c == "<" { inTag = true; continue }
                if c == ">" && inTag { inTag = false; continue }
                if !inTag { out.unicodeScalars.append(c) }
            }
            return .string(try PyText.split(out, sep: nil, maxsplit: -1).joined(separator: " "))
        case "pprint":
            return .string(try Py.repr(value))
        default:
            if knownFilters.contains(name) {
                throw EvalError.type("TemplateRuntimeError: the '\(name)' filter is not supported by this renderer")
            }
            throw EvalError(kind: .runtime, message: "TemplateRuntimeError: No filter named '\(name)' found.", pos: nil)
        }
    }

    /// The per-item function of map / select / reject / selectattr / rejectattr: returns the
    /// produced item, or nil to skip it.
    private static func mapOrSelect(_ name: String, _ a: Arguments, _ interp: Interpreter) throws -> (Value) throws -> Value? {
        if name == "map" {
            if a.positional.isEmpty, let attr = a.keyword("attribute") {
                if let k = a.keywords.first(where: { $0.0 != "attribute" && $0.0 != "default" }) {
                    throw EvalError.type("FilterArgumentError: Unexpected keyword argument '\(k.0)'")
                }
                let dflt = a.keyword("default").flatMap { $0.isNone ? nil : $0 }
                let g = attrGetter(attr, interp, default: dflt)
                return { try g($0) }
            }
            guard let fname = a.positional.first?.stringValue else {
                throw EvalError.type("FilterArgumentError: map requires a filter argument")
            }
            let rest = Arguments(positional: Array(a.positional.dropFirst()), keywords: a.keywords)
            return { try filter(fname, $0, rest, interp) }
        }
        let wantTrue = name == "select" || name == "selectattr"
        var getter: ((Value) throws -> Value)? = nil
        var rest = a.positional
        if name.hasSuffix("attr") {
            guard let attr = rest.first else { throw EvalError.type("FilterArgumentError: Missing parameter for attribute name") }
            getter = attrGetter(attr, interp)
            rest.removeFirst()
        }
        var testName: String? = nil
        if let t = rest.first {
            guard let tn = t.stringValue else { throw EvalError.type("TypeError: test name must be a string") }
            testName = tn
            rest.removeFirst()
        }
        let testArgs = Arguments(positional: rest, keywords: a.keywords)
        return { item in
            let v = try getter?(item) ?? item
            let r = try testName.map { try test($0, v, testArgs, interp) } ?? v.truthy
            return r == wantTrue ? item : nil
        }
    }

    private static func wrapLike(_ v: Value, _ s: String) -> Value {
        if case .markup = v { return .markup(s) }
        return .string(s)
    }

    private static func toInt(_ v: Value, base: Int) -> Value? {
        switch v {
        case .bool(let b): return .int(b ? 1 : 0)
        case .int(let i): return .int(i)
        case .double(let d):
            guard d.isFinite, abs(d) < 9.2e18 else { return nil }
            return .int(Int(d))
        case .string(let s), .markup(let s):
            var t = PyText.strip(s, chars: nil, left: true, right: true).replacingOccurrences(of: "_", with: "")
            var negative = false
            if t.hasPrefix("-") { negative = true; t.removeFirst() } else if t.hasPrefix("+") { t.removeFirst() }
            var b = base
            let lower = t.lowercased()
            if base == 16 && lower.hasPrefix("0x") || base == 8 && lower.hasPrefix("0o") || base == 2 && lower.hasPrefix("0b") {
                t.removeFirst(2)
            } else if base == 0 {
                if lower.hasPrefix("0x") { b = 16; t.removeFirst(2) } else if lower.hasPrefix("0o") { b = 8; t.removeFirst(2) } else if lower.hasPrefix("0b") { b = 2; t.removeFirst(2) } else { b = 10 }
            }
            if !t.isEmpty, !t.hasPrefix("+"), !t.hasPrefix("-"), let i = Int(t, radix: b) { return .int(negative ? -i : i) }
            // int(float(value))
            if case .double(let d)? = toFloat(.string(s)), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
            return nil
        default:
            return nil
        }
    }

    private static func toFloat(_ v: Value) -> Value? {
        switch v {
        case .bool(let b): return .double(b ? 1 : 0)
        case .int(let i): return .double(Double(i))
        case .double(let d): return .double(d)
        case .string(let s), .markup(let s):
            let t = PyText.strip(s, chars: nil, left: true, right: true).replacingOccurrences(of: "_", with: "").lowercased()
            switch t {
            case "nan", "+nan", "-nan": return .double(.nan)
            case "inf", "+inf", "infinity", "+infinity": return .double(.infinity)
            case "-inf", "-infinity": return .double(-.infinity)
            default: break
            }
            guard !t.isEmpty, t.allSatisfy({ "0123456789.e+-".contains($0) }), let d = Double(t) else { return nil }
            return .double(d)
        default:
            return nil
        }
    }

    // MARK: tests

    static func test(_ name: String, _ value: Value, _ a: Arguments, _ interp: Interpreter) throws -> Bool {
        func arg() throws -> Value {
            guard let v = a.positional.first ?? a.keywords.first?.1 else {
                throw EvalError.type("TypeError: test '\(name)' requires an argument")
            }
            return v
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNone
        case "boolean": if case .bool = value { return true }; return false
        case "false": if case .bool(false) = value { return true }; return false
        case "true": if case .bool(true) = value { return true }; return false
        case "integer": if case .int = value { return true }; return false
        case "float": if case .double = value { return true }; return false
        case "number": return value.number != nil
        case "string": return value.stringValue != nil
        case "mapping": if case .dict = value { return true }; return false
        case "sequence":
            switch value {
            case .string, .markup, .list, .tuple, .dict, .undefined: return true
            default: return false
            }
        case "iterable":
            switch value {
            case .string, .markup, .list, .tuple, .dict, .view, .iterator, .undefined, .loop: return true
            default: return false
            }
        case "callable":
            switch value {
            case .function, .undefined, .loop: return true
            default: return false
            }
        case "escaped": if case .markup = value { return true }; return false
        case "lower":
            let s = try Py.str(value)
            let cased = s.unicodeScalars.filter(PyText.isCased)
            return !cased.isEmpty && cased.allSatisfy { $0.properties.isLowercase }
        case "upper":
            let s = try Py.str(value)
            let cased = s.unicodeScalars.filter(PyText.isCased)
            return !cased.isEmpty && cased.allSatisfy { $0.properties.isUppercase }
        case "odd", "even":
            let r = try Py.binary(.mod, value, .int(2))
            return Py.equal(r, .int(name == "odd" ? 1 : 0))
        case "divisibleby":
            return Py.equal(try Py.binary(.mod, value, arg()), .int(0))
        case "eq", "equalto", "==": return Py.equal(value, try arg())
        case "ne", "!=": return !Py.equal(value, try arg())
        case "lt", "lessthan", "<": return try Py.less(value, arg(), op: "<")
        case "gt", "greaterthan", ">": return try Py.less(arg(), value, op: ">")
        case "le", "<=": return try Py.compare(.lteq, value, arg())
        case "ge", ">=": return try Py.compare(.gteq, value, arg())
        case "in": return try Py.contains(arg(), value)
        case "sameas":
            let other = try arg()
            switch (value, other) {
            case (.none, .none): return true
            case (.bool(let x), .bool(let y)): return x == y
            case (.int(let x), .int(let y)): return x == y && x >= -5 && x <= 256
            case (.namespace(let x), .namespace(let y)): return x === y
            case (.function(let x), .function(let y)): return x === y
            default: return false
            }
        case "filter": return knownFilters.contains(value.stringValue ?? "")
        case "test": return knownTests.contains(value.stringValue ?? "")
        default:
            throw EvalError(kind: .runtime, message: "TemplateRuntimeError: No test named '\(name)' found.", pos: nil)
        }
    }
}
