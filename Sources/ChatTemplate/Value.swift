import Foundation

/// Runtime value inside the interpreter: Python objects as Jinja2 templates see them.
enum Value {
    case undefined(Undefined)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    /// markupsafe.Markup (from `|safe`, `|escape`): a string that escapes what is added to it.
    case markup(String)
    case list([Value])
    case tuple([Value])
    case dict(PyDict)
    /// dict_items / dict_keys / dict_values views.
    case view(ViewKind, PyDict)
    /// A one-shot iterator (generators from map/select/…, reversed()).
    case iterator(PyIterator)
    case namespace(Namespace)
    case function(Function)
    case loop(LoopContext)
    case cycler(Cycler)

    init(_ t: TemplateValue) {
        switch t {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map(Value.init))
        case .object(let o):
            var d = PyDict()
            for (k, v) in o { d.set(.string(k), Value(v)) }
            self = .dict(d)
        }
    }

    static func undef(_ hint: String) -> Value { .undefined(Undefined(hint: hint)) }
    static func undefName(_ name: String) -> Value { .undefined(Undefined(hint: "'\(name)' is undefined")) }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }
    var isNone: Bool { if case .none = self { return true }; return false }

    var stringValue: String? {
        switch self {
        case .string(let s), .markup(let s): return s
        default: return nil
        }
    }

    /// Python type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .markup: return "Markup"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .view(let k, _): return k.rawValue
        case .iterator(let it): return it.typeName
        case .namespace: return "Namespace"
        case .function(let f): return f.isMacro ? "Macro" : "builtin_function_or_method"
        case .loop: return "LoopContext"
        case .cycler: return "Cycler"
        }
    }

    /// Python truthiness.
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s), .markup(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d), .view(_, let d): return d.count > 0
        case .iterator, .namespace, .function, .loop, .cycler: return true
        }
    }

    /// Numeric view (bool counts as int, as in Python).
    enum Num { case int(Int), double(Double) }
    var number: Num? {
        switch self {
        case .bool(let b): return .int(b ? 1 : 0)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        default: return nil
        }
    }
}

enum ViewKind: String { case items = "dict_items", keys = "dict_keys", values = "dict_values" }

struct Undefined {
    var hint: String
    /// Sandbox violation: using the value raises a security error.
    var unsafe: Bool = false
    var error: EvalError { EvalError(kind: .runtime, message: (unsafe ? "SecurityError: " : "UndefinedError: ") + hint, pos: nil) }
}

/// Hashable form of a dict key (Python: 1 == 1.0 == True hash alike).
enum DictKey: Hashable {
    case none
    case int(Int)
    case double(Double)
    case string(String)
    case tuple([DictKey])

    init(_ v: Value) throws {
        switch v {
        case .none: self = .none
        case .bool(let b): self = .int(b ? 1 : 0)
        case .int(let i): self = .int(i)
        case .double(let d):
            if d == d.rounded(), abs(d) < 9.2e18 { self = .int(Int(d)) } else { self = .double(d) }
        case .string(let s), .markup(let s): self = .string(s)
        case .tuple(let items): self = .tuple(try items.map(DictKey.init))
        default: throw EvalError.type("TypeError: unhashable type: '\(v.typeName)'")
        }
    }
}

/// Insertion-ordered Python dict.
struct PyDict {
    private(set) var keys: [Value] = []
    private(set) var values: [Value] = []
    private var index: [DictKey: Int] = [:]

    var count: Int { keys.count }

    func get(_ k: Value) -> Value? {
        guard let key = try? DictKey(k), let i = index[key] else { return nil }
        return values[i]
    }

    func get(_ k: String) -> Value? {
        guard let i = index[.string(k)] else { return nil }
        return values[i]
    }

    mutating func set(_ k: Value, _ v: Value) {
        guard let key = try? DictKey(k) else { return }
        if let i = index[key] { values[i] = v } else {
            index[key] = keys.count
            keys.append(k)
            values.append(v)
        }
    }

    func contains(_ k: Value) throws -> Bool { index[try DictKey(k)] != nil }

    var items: [Value] { zip(keys, values).map { .tuple([$0.0, $0.1]) } }
}

/// A one-shot iterator; `next` is called lazily as the template consumes it.
final class PyIterator {
    let typeName: String
    private var producer: () throws -> Value?
    private var exhausted = false

    init(typeName: String, _ producer: @escaping () throws -> Value?) {
        self.typeName = typeName
        self.producer = producer
    }

    convenience init(typeName: String, items: [Value]) {
        var i = 0
        self.init(typeName: typeName) {
            guard i < items.count else { return nil }
            defer { i += 1 }
            return items[i]
        }
    }

    func next() throws -> Value? {
        if exhausted { return nil }
        if let v = try producer() { return v }
        exhausted = true
        return nil
    }

    func drain() throws -> [Value] {
        var out: [Value] = []
        while let v = try next() { out.append(v) }
        return out
    }
}

final class Namespace {
    var attrs = PyDict()
}

final class Cycler {
    let items: [Value]
    var pos = 0
    init(_ items: [Value]) { self.items = items }
    var current: Value { items.isEmpty ? .undef("empty cycler") : items[pos] }
    func next() -> Value {
        let v = current
        if !items.isEmpty { pos = (pos + 1) % items.count }
        return v
    }
}

/// Positional and keyword arguments of a call.
struct Arguments {
    var positional: [Value] = []
    var keywords: [(String, Value)] = []

    /// Argument by position or keyword (Python signature binding for builtins).
    func get(_ index: Int, _ name: String) -> Value? {
        if index >= 0, index < positional.count { return positional[index] }
        return keywords.first { $0.0 == name }?.1
    }

    func keyword(_ name: String) -> Value? { keywords.first { $0.0 == name }?.1 }

    /// Fails on unexpected arguments (positional beyond `names.count`, unknown keywords).
    func check(_ fn: String, _ names: [String]) throws {
        if positional.count > names.count {
            throw EvalError.type("TypeError: \(fn)() takes at most \(names.count) argument(s) (\(positional.count) given)")
        }
        for (k, _) in keywords {
            guard let idx = names.firstIndex(of: k) else {
                throw EvalError.type("TypeError: \(fn)() got an unexpected keyword argument '\(k)'")
            }
            if idx < positional.count {
                throw EvalError.type("TypeError: \(fn)() got multiple values for argument '\(k)'")
            }
        }
    }
}

/// A callable: builtin function, bound method, macro, caller.
final class Function {
    let name: String
    let isMacro: Bool
    let body: (Interpreter, Arguments) throws -> Value

    init(name: String, isMacro: Bool = false, _ body: @escaping (Interpreter, Arguments) throws -> Value) {
        self.name = name
        self.isMacro = isMacro
        self.body = body
    }
}

/// `loop` inside a for loop.
final class LoopContext {
    let items: [Value]
    var index0 = 0
    let depth0: Int
    var lastChanged: [Value]? = nil
    /// For `{% for … recursive %}`: renders the loop body over new items one level deeper.
    var recurse: ((Interpreter, Value) throws -> String)?

    init(items: [Value], depth0: Int) {
        self.items = items
        self.depth0 = depth0
    }

    var length: Int { items.count }
}
typealias RuntimeValue = Value
