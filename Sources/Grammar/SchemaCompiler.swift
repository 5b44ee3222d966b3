// JSON Schema -> grammar. The documents a compiled grammar derives are compact-ish JSON texts
// that satisfy the schema: no whitespace before or after the value, and between tokens at most
// one whitespace run (a single space, or one newline followed by at most `maxIndent` spaces or
// tabs), so a small model cannot spin on whitespace. Numbers are bounded too (integer part at most
// 15 digits, fraction at most 15, exponent at most 2 digits).
//
// Supported: type (one or a list), properties (emitted in schema order; optional ones may be
// left out), required, additionalProperties (false by default when `properties` is given;
// a schema or true only on objects without `properties`), items, minItems, maxItems, enum,
// const, anyOf, oneOf (as anyOf: overlap between branches is not excluded), allOf with one
// schema, $ref to local "#/..." pointers ($defs/definitions, recursion allowed), string
// minLength/maxLength, format date/time/date-time/uuid, integer minimum/maximum/
// exclusiveMinimum/exclusiveMaximum, unevaluatedProperties: false. Annotations are ignored.
// Every other keyword is a `GrammarError.unsupportedKeyword` naming it.

public struct SchemaCompiler {
    public struct Options: Sendable {
        /// Longest run of spaces/tabs after a newline between tokens.
        public var maxIndent = 16
        /// `additionalProperties` when a schema with `properties` does not say.
        public var additionalPropertiesDefault = false
        public init() {}
    }

    /// Keywords that only annotate (ignored).
    static let annotations: Set<String> = [
        "title", "description", "$schema", "$id", "$comment", "examples", "default", "deprecated",
        "readOnly", "writeOnly", "$defs", "definitions",
    ]
    /// Keywords this compiler implements.
    static let implemented: Set<String> = [
        "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
        "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "format", "minLength", "maxLength",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "unevaluatedProperties",
    ]
    static let formats: Set<String> = ["date", "time", "date-time", "uuid"]

    /// Limits that keep the grammar small.
    static let maxLengthLimit = 10_000
    static let maxItemsLimit = 1_000
    static let maxRules = 200_000
    static let maxNesting = 128

    /// The grammar of documents valid under `schema`.
    public static func compile(_ schema: SchemaValue, options: Options = Options()) throws(GrammarError) -> Grammar {
        var b = Builder(root: schema, options: options)
        let top = try b.schemaRule(schema, path: "#", depth: 0)
        b.g.start = b.g.add("root", [[.rule(top)]])
        return b.g
    }

    /// `response_format: {"type": "json_object"}`: any JSON object.
    public static func anyObject(options: Options = Options()) -> Grammar {
        var b = Builder(root: .bool(true), options: options)
        let obj = b.anyObjectRule()
        b.g.start = b.g.add("root", [[.rule(obj)]])
        return b.g
    }

    /// One piece of a templated document (`compileSequence`).
    public enum Piece: Sendable {
        /// These exact bytes.
        case literal(String)
        /// The whitespace allowed between JSON tokens (nothing, a space, or a newline and an indent).
        case whitespace
        /// A JSON value valid under the schema.
        case json(SchemaValue)
    }

    /// The grammar of documents made of one of `alternatives`, each a sequence of literal text,
    /// whitespace and schema-constrained JSON values (a tool call: `{"name": "f", "arguments": `,
    /// the arguments' schema, `}`, then a closing tag). Errors name the alternative and the
    /// keyword, as `compile` does.
    public static func compileSequence(_ alternatives: [[Piece]], options: Options = Options()) throws(GrammarError) -> Grammar {
        var b = Builder(root: .bool(true), options: options)
        var alts: [[GrammarSymbol]] = []
        for (n, pieces) in alternatives.enumerated() {
            var seq: [GrammarSymbol] = []
            for piece in pieces {
                switch piece {
                case .literal(let s): seq += Builder.lit(s)
                case .whitespace: seq.append(.rule(try b.ws()))
                case .json(let schema):
                    b = Builder(root: schema, options: options, carrying: b)
                    seq.append(.rule(try b.schemaRule(schema, path: "#/\(n)", depth: 0)))
                }
            }
            alts.append(seq)
        }
        b.g.start = b.g.add("root", alts)
        return b.g
    }

    // MARK: - Builder

    struct Builder {
        var g = Grammar()
        let root: SchemaValue
        let options: Options
        var refRules: [String: Int] = [:]
        var common: [String: Int] = [:]

        init(root: SchemaValue, options: Options) {
            self.root = root
            self.options = options
        }

        /// A builder that adds to `other`'s grammar, with `root` for `$ref` resolution.
        init(root: SchemaValue, options: Options, carrying other: Builder) {
            self.root = root
            self.options = options
            self.g = other.g
            self.common = other.common
        }

        typealias Seq = [GrammarSymbol]

        static func lit(_ s: String) -> Seq { Grammar.literal(s) }
        static func cls(_ r: ClosedRange<UInt8>...) -> GrammarSymbol { .bytes(ByteSet(ranges: r)) }
        static func ch(_ c: Character) -> GrammarSymbol { .bytes(.byte(c.asciiValue!)) }
        static let digit = cls(UInt8(ascii: "0")...UInt8(ascii: "9"))
        static let digit19 = cls(UInt8(ascii: "1")...UInt8(ascii: "9"))

        mutating func add(_ name: String, _ alts: [Seq]) throws(GrammarError) -> Int {
            if g.rules.count >= SchemaCompiler.maxRules {
                throw GrammarError(.tooLarge, "The schema needs more than \(SchemaCompiler.maxRules) grammar rules; simplify it (smaller maxLength/maxItems, fewer branches)")
            }
            return g.add(name, alts)
        }

        /// A shared rule built once.
        mutating func shared(_ name: String, _ make: (inout Builder) throws(GrammarError) -> [Seq]) throws(GrammarError) -> Int {
            if let r = common[name] { return r }
            let r = g.declare(name)
            common[name] = r
            g.define(r, try make(&self))
            return r
        }

        /// `item` repeated min…max times (max nil: unbounded).
        mutating func repetition(_ item: Seq, min: Int, max: Int?, name: String) throws(GrammarError) -> Seq {
            var seq: Seq = []
            for _ in 0..<min { seq += item }
            if let max {
                if max > min {
                    var tail = try add(name + "-opt", [[], item])
                    for _ in 1..<(max - min) { tail = try add(name + "-opt", [[], item + [.rule(tail)]]) }
                    seq.append(.rule(tail))
                }
            } else {
                let star = g.declare(name + "-star")
                g.define(star, [[], item + [.rule(star)]])
                seq.append(.rule(star))
            }
            return seq
        }

        // MARK: Common pieces

        /// Whitespace between tokens: nothing, one space, or a newline and at most maxIndent spaces/tabs.
        mutating func ws() throws(GrammarError) -> Int {
            let maxIndent = options.maxIndent
            return try shared("ws") { (b: inout Builder) throws(GrammarError) in
                let indent = try b.repetition([Builder.cls(0x20...0x20, 0x09...0x09)], min: 0, max: maxIndent, name: "indent")
                return [[], Builder.lit(" "), Builder.lit("\n") + indent]
            }
        }

        /// One character of a JSON string (an escape, or a valid UTF-8 sequence other than `"`, `\` and controls).
        mutating func char() throws(GrammarError) -> Int {
            try shared("char") { (b: inout Builder) throws(GrammarError) in
                let cont = Builder.cls(0x80...0xBF)
                let hex = Builder.cls(0x30...0x39, 0x41...0x46, 0x61...0x66)
                let esc = try b.add("escape", [
                    [.bytes(ByteSet(Array("\"\\/bfnrt".utf8)))],
                    Builder.lit("u") + [hex, hex, hex, hex],
                ])
                return [
                    [Builder.cls(0x20...0x21, 0x23...0x5B, 0x5D...0x7F)],
                    Builder.lit("\\") + [.rule(esc)],
                    [Builder.cls(0xC2...0xDF), cont],
                    [Builder.cls(0xE0...0xE0), Builder.cls(0xA0...0xBF), cont],
                    [Builder.cls(0xE1...0xEC, 0xEE...0xEF), cont, cont],
                    [Builder.cls(0xED...0xED), Builder.cls(0x80...0x9F), cont],
                    [Builder.cls(0xF0...0xF0), Builder.cls(0x90...0xBF), cont, cont],
                    [Builder.cls(0xF1...0xF3), cont, cont, cont],
                    [Builder.cls(0xF4...0xF4), Builder.cls(0x80...0x8F), cont, cont],
                ]
            }
        }

        mutating func stringRule(minLength: Int, maxLength: Int?) throws(GrammarError) -> Int {
            let key = "string{\(minLength),\(maxLength.map(String.init) ?? "")}"
            if let r = common[key] { return r }
            let c = try char()
            let body = try repetition([.rule(c)], min: minLength, max: maxLength, name: "chars")
            let r = try add("string", [Builder.lit("\"") + body + Builder.lit("\"")])
            common[key] = r
            return r
        }

        mutating func numberRule() throws(GrammarError) -> Int {
            try shared("number") { (b: inout Builder) throws(GrammarError) in
                let i = try b.integerRule(min: nil, max: nil)
                let frac = try b.add("frac", [[], Builder.lit(".") + (try b.repetition([Builder.digit], min: 1, max: 15, name: "frac-digits"))])
                let sign = try b.add("exp-sign", [[], Builder.lit("-"), Builder.lit("+")])
                let exp = try b.add("exp", [[], [Builder.cls(0x45...0x45, 0x65...0x65), .rule(sign), Builder.digit], [Builder.cls(0x45...0x45, 0x65...0x65), .rule(sign), Builder.digit, Builder.digit]])
                return [[.rule(i), .rule(frac), .rule(exp)]]
            }
        }

        /// Integers in [min, max] (nil: unbounded on that side, at most 15 digits).
        mutating func integerRule(min lo: Int64?, max hi: Int64?) throws(GrammarError) -> Int {
            let key = "integer[\(lo.map(String.init) ?? ""),\(hi.map(String.init) ?? "")]"
            if let r = common[key] { return r }
            let cap: UInt64 = 999_999_999_999_999
            var alts: [Seq] = []
            if hi == nil || hi! >= 0 {
                let a = UInt64(Swift.max(lo ?? 0, 0))
                let b = hi.map { UInt64($0) } ?? Swift.max(cap, Self.allNines(a))
                alts += Self.decimalRange(a, b)
            }
            if lo == nil || lo! < 0 {
                let minMag: UInt64 = (hi != nil && hi! < 0) ? UInt64(-hi!) : 1
                let maxMag: UInt64 = lo.map { UInt64(-$0) } ?? Swift.max(cap, Self.allNines(minMag))
                if lo == nil && (hi == nil || hi! >= 0) {
                    // also "-0", a valid integer
                    alts.append(Builder.lit("-0"))
                }
                for seq in Self.decimalRange(minMag, maxMag) { alts.append(Builder.lit("-") + seq) }
            }
            let r = try add("integer", alts)
            common[key] = r
            return r
        }

        /// 10^digits(v) - 1.
        static func allNines(_ v: UInt64) -> UInt64 {
            var n: UInt64 = 9
            while n < v { n = n * 10 + 9 }
            return n
        }

        /// Decimal numbers without leading zeros in [a, b], as alternatives of digit classes.
        static func decimalRange(_ a: UInt64, _ b: UInt64) -> [Seq] {
            guard a <= b else { return [] }
            var alts: [Seq] = []
            let la = String(a).count, lb = String(b).count
            for len in la...lb {
                let low: UInt64 = len == 1 ? 0 : pow10(len - 1)
                let high: UInt64 = len >= 20 ? UInt64.max : pow10(len) - 1
                let x = Swift.max(a, low), y = Swift.min(b, high)
                if x > y { continue }
                alts += fixedRange(Array(String(x).utf8)[...], Array(String(y).utf8)[...])
            }
            return alts
        }

        static func pow10(_ n: Int) -> UInt64 {
            var v: UInt64 = 1
            for _ in 0..<n { v *= 10 }
            return v
        }

        /// Digit strings of equal length between x and y (inclusive), as alternatives.
        static func fixedRange(_ x: ArraySlice<UInt8>, _ y: ArraySlice<UInt8>) -> [Seq] {
            guard let x0 = x.first, let y0 = y.first else { return [[]] }
            let xr = x.dropFirst(), yr = y.dropFirst()
            if x0 == y0 { return fixedRange(xr, yr).map { [.bytes(.byte(x0))] + $0 } }
            let zero = UInt8(ascii: "0"), nine = UInt8(ascii: "9")
            if xr.allSatisfy({ $0 == zero }) && yr.allSatisfy({ $0 == nine }) {
                return [[cls(x0...y0)] + Array(repeating: digit, count: xr.count)]
            }
            var alts: [Seq] = []
            var lowStart = x0
            if !xr.allSatisfy({ $0 == zero }) {
                alts += fixedRange(xr, ArraySlice(repeating: nine, count: xr.count)).map { [.bytes(.byte(x0))] + $0 }
                lowStart = x0 + 1
            }
            var highEnd = y0
            var tail: [Seq] = []
            if !yr.allSatisfy({ $0 == nine }) {
                tail = fixedRange(ArraySlice(repeating: zero, count: yr.count), yr).map { [.bytes(.byte(y0))] + $0 }
                highEnd = y0 - 1
            }
            if lowStart <= highEnd {
                alts.append([cls(lowStart...highEnd)] + Array(repeating: digit, count: xr.count))
            }
            return alts + tail
        }

        mutating func literalRule(_ values: [SchemaValue]) throws(GrammarError) -> Int {
            try add("literal", values.map { Builder.lit($0.compactJSON) })
        }

        /// Any JSON value (recursive).
        mutating func anyValueRule() throws(GrammarError) -> Int {
            if let r = common["value"] { return r }
            let value = g.declare("value")
            common["value"] = value
            let obj = try objectOf(value: value, name: "object")
            let w = try ws()
            let array = try add("array", [
                Builder.lit("[") + [.rule(w)] + [.rule(try add("array-items", [[], [.rule(value)] + (try repetition(Builder.lit(",") + [.rule(w), .rule(value)], min: 0, max: nil, name: "array-more")) + [.rule(w)]]))] + Builder.lit("]"),
            ])
            g.define(value, [
                [.rule(obj)], [.rule(array)], [.rule(try stringRule(minLength: 0, maxLength: nil))],
                [.rule(try numberRule())], Builder.lit("true"), Builder.lit("false"), Builder.lit("null"),
            ])
            return value
        }

        /// Any JSON object (cannot fail: the shared rules are far below the limits).
        mutating func anyObjectRule() -> Int {
            (try? anyObjectRule2()) ?? 0
        }

        /// `{ "k": value, … }` with any keys and values of rule `value`.
        mutating func objectOf(value: Int, name: String) throws(GrammarError) -> Int {
            let w = try ws()
            let key = try stringRule(minLength: 0, maxLength: nil)
            let member: Seq = [.rule(key)] + Builder.lit(":") + [.rule(w), .rule(value)]
            let more = try repetition(Builder.lit(",") + [.rule(w)] + member, min: 0, max: nil, name: name + "-more")
            let members = try add(name + "-members", [[], member + more + [.rule(w)]])
            let r = try add(name, [Builder.lit("{") + [.rule(w), .rule(members)] + Builder.lit("}")])
            if common[name] == nil { common[name] = r }
            return r
        }

        // MARK: Schemas

        func unsupported(_ keyword: String, _ path: String, _ why: String = "") -> GrammarError {
            GrammarError(.unsupportedKeyword, "Unsupported JSON Schema keyword '\(keyword)' at '\(path)'\(why.isEmpty ? "" : ": " + why)", keyword: keyword)
        }

        func invalid(_ path: String, _ why: String) -> GrammarError {
            GrammarError(.invalidSchema, "Invalid JSON Schema at '\(path)': \(why)")
        }

        func nonNegativeInt(_ s: SchemaValue, _ key: String, _ path: String) throws(GrammarError) -> Int? {
            guard let v = s[key] else { return nil }
            guard case .number(let d, _) = v, d >= 0, d == d.rounded(), d < 1e15 else {
                throw invalid(path + "/" + key, "'\(key)' must be a non-negative integer")
            }
            return Int(d)
        }

        func number(_ s: SchemaValue, _ key: String, _ path: String) throws(GrammarError) -> Double? {
            guard let v = s[key] else { return nil }
            guard case .number(let d, _) = v else { throw invalid(path + "/" + key, "'\(key)' must be a number") }
            return d
        }

        /// The rule of the values valid under `schema` (at `path`, a JSON pointer from the root).
        mutating func schemaRule(_ schema: SchemaValue, path: String, depth: Int) throws(GrammarError) -> Int {
            if depth > SchemaCompiler.maxNesting {
                throw GrammarError(.tooLarge, "The schema nests deeper than \(SchemaCompiler.maxNesting) levels at '\(path)'")
            }
            switch schema {
            case .bool(true): return try anyValueRule()
            case .bool(false): throw invalid(path, "the schema 'false' admits no value")
            case .object: break
            default: throw invalid(path, "a schema must be an object or a boolean, got \(schema.typeName)")
            }
            guard case .object(let members) = schema else { return 0 }
            for m in members where !SchemaCompiler.annotations.contains(m.key) && !SchemaCompiler.implemented.contains(m.key) {
                throw unsupported(m.key, path)
            }
            let constraintKeys = members.map(\.key).filter { !SchemaCompiler.annotations.contains($0) }

            if let ref = schema["$ref"] {
                guard constraintKeys == ["$ref"] else {
                    throw unsupported("$ref", path, "other constraints beside $ref (\(constraintKeys.filter { $0 != "$ref" }.joined(separator: ", "))) are not supported; move them into the referenced schema")
                }
                guard case .string(let target) = ref else { throw invalid(path + "/$ref", "'$ref' must be a string") }
                return try refRule(target, path: path, depth: depth)
            }
            for key in ["anyOf", "oneOf", "allOf"] {
                guard let v = schema[key] else { continue }
                guard constraintKeys == [key] else {
                    throw unsupported(key, path, "other constraints beside \(key) (\(constraintKeys.filter { $0 != key }.joined(separator: ", "))) are not supported; move them into each branch")
                }
                guard case .array(let branches) = v, !branches.isEmpty else {
                    throw invalid(path + "/" + key, "'\(key)' must be a non-empty array of schemas")
                }
                if key == "allOf" && branches.count > 1 {
                    throw unsupported("allOf", path, "only a single schema in allOf is supported")
                }
                var alts: [Seq] = []
                for (i, branch) in branches.enumerated() {
                    alts.append([.rule(try schemaRule(branch, path: "\(path)/\(key)/\(i)", depth: depth + 1))])
                }
                return try add(key, alts)
            }

            // types
            var types: [String]
            switch schema["type"] {
            case nil:
                types = []
            case .string(let t)?:
                types = [t]
            case .array(let list)?:
                types = []
                for t in list {
                    guard case .string(let s) = t else { throw invalid(path + "/type", "'type' must be a string or an array of strings") }
                    types.append(s)
                }
                if types.isEmpty { throw invalid(path + "/type", "'type' must not be an empty array") }
            default:
                throw invalid(path + "/type", "'type' must be a string or an array of strings")
            }
            let known = ["null", "boolean", "integer", "number", "string", "array", "object"]
            for t in types where !known.contains(t) {
                throw invalid(path + "/type", "unknown type '\(t)' (one of \(known.joined(separator: ", ")))")
            }

            if let e = schema["enum"] ?? schema["const"] {
                let key = schema["enum"] != nil ? "enum" : "const"
                var values: [SchemaValue]
                if key == "enum" {
                    guard case .array(let list) = e, !list.isEmpty else { throw invalid(path + "/enum", "'enum' must be a non-empty array") }
                    values = list
                } else {
                    values = [e]
                }
                if schema["enum"] != nil && schema["const"] != nil {
                    throw unsupported("const", path, "'enum' and 'const' together are not supported")
                }
                let others = constraintKeys.filter { $0 != key && $0 != "type" }
                if let k = others.first {
                    throw unsupported(k, path, "only 'type' may accompany '\(key)'")
                }
                if !types.isEmpty {
                    values = values.filter { v in
                        types.contains { t in
                            switch (t, v) {
                            case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object), ("number", .number): return true
                            case ("integer", .number(let d, _)): return d == d.rounded()
                            default: return false
                            }
                        }
                    }
                    if values.isEmpty { throw invalid(path, "no value of '\(key)' has the schema's type") }
                }
                return try literalRule(values)
            }

            if types.isEmpty {
                let keys = Set(constraintKeys)
                if !keys.isDisjoint(with: ["properties", "required", "additionalProperties", "unevaluatedProperties"]) { types.append("object") }
                if !keys.isDisjoint(with: ["items", "minItems", "maxItems"]) { types.append("array") }
                if !keys.isDisjoint(with: ["minLength", "maxLength", "format"]) { types.append("string") }
                if !keys.isDisjoint(with: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) { types.append("number") }
                if types.isEmpty { return try anyValueRule() }
                if types.count > 1 {
                    throw invalid(path, "keywords of several types (\(types.joined(separator: ", "))) without 'type'; say which type(s)")
                }
            }
            if schema["format"] != nil && !types.contains("string") {
                throw unsupported("format", path, "format is supported on strings only (date, time, date-time, uuid)")
            }
            var alts: [Seq] = []
            for t in types {
                alts.append([.rule(try typeRule(t, schema, path: path, depth: depth, allTypes: types))])
            }
            return alts.count == 1 ? (alts[0].first.flatMap { if case .rule(let r) = $0 { return r } else { return nil } } ?? 0) : try add("types", alts)
        }

        mutating func typeRule(_ type: String, _ schema: SchemaValue, path: String, depth: Int, allTypes: [String]) throws(GrammarError) -> Int {
            switch type {
            case "null": return try add("null", [Builder.lit("null")])
            case "boolean": return try add("boolean", [Builder.lit("true"), Builder.lit("false")])
            case "integer":
                var lo: Double? = try number(schema, "minimum", path)
                var hi: Double? = try number(schema, "maximum", path)
                if let x = try number(schema, "exclusiveMinimum", path) {
                    let v = x.rounded(.down) + 1
                    lo = lo.map { Swift.max($0, v) } ?? v
                }
                if let x = try number(schema, "exclusiveMaximum", path) {
                    let v = x.rounded(.up) - 1
                    hi = hi.map { Swift.min($0, v) } ?? v
                }
                let limit = 1e18
                if let l = lo, abs(l) > limit { throw unsupported("minimum", path, "bounds beyond ±1e18 are not supported") }
                if let h = hi, abs(h) > limit { throw unsupported("maximum", path, "bounds beyond ±1e18 are not supported") }
                let l = lo.map { Int64($0.rounded(.up)) }, h = hi.map { Int64($0.rounded(.down)) }
                if let l, let h, l > h { throw invalid(path, "no integer lies between minimum \(l) and maximum \(h)") }
                return try integerRule(min: l, max: h)
            case "number":
                for k in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] where schema[k] != nil {
                    throw unsupported(k, path, "ranges are supported on 'integer' only, not on 'number'")
                }
                return try numberRule()
            case "string":
                let minL = try nonNegativeInt(schema, "minLength", path) ?? 0
                let maxL = try nonNegativeInt(schema, "maxLength", path)
                if let maxL, maxL > SchemaCompiler.maxLengthLimit {
                    throw GrammarError(.tooLarge, "maxLength \(maxL) at '\(path)' is above the supported \(SchemaCompiler.maxLengthLimit)", keyword: "maxLength")
                }
                if minL > SchemaCompiler.maxLengthLimit {
                    throw GrammarError(.tooLarge, "minLength \(minL) at '\(path)' is above the supported \(SchemaCompiler.maxLengthLimit)", keyword: "minLength")
                }
                if let maxL, minL > maxL { throw invalid(path, "minLength \(minL) > maxLength \(maxL)") }
                if let f = schema["format"] {
                    guard case .string(let name) = f else { throw invalid(path + "/format", "'format' must be a string") }
                    guard SchemaCompiler.formats.contains(name) else {
                        throw unsupported("format", path, "format '\(name)' is not supported (supported: date, time, date-time, uuid)")
                    }
                    if schema["minLength"] != nil || schema["maxLength"] != nil {
                        throw unsupported("format", path, "format together with minLength/maxLength is not supported")
                    }
                    return try formatRule(name)
                }
                return try stringRule(minLength: minL, maxLength: maxL)
            case "array":
                if case .array? = schema["items"] {
                    throw unsupported("items", path, "tuple form (an array of schemas) is not supported; use one schema")
                }
                let item: Int
                if let v = schema["items"] {
                    item = try schemaRule(v, path: path + "/items", depth: depth + 1)
                } else {
                    item = try anyValueRule()
                }
                let minI = try nonNegativeInt(schema, "minItems", path) ?? 0
                let maxI = try nonNegativeInt(schema, "maxItems", path)
                if minI > SchemaCompiler.maxItemsLimit || (maxI ?? 0) > SchemaCompiler.maxItemsLimit {
                    throw GrammarError(.tooLarge, "minItems/maxItems at '\(path)' above the supported \(SchemaCompiler.maxItemsLimit)", keyword: maxI != nil ? "maxItems" : "minItems")
                }
                if let maxI, minI > maxI { throw invalid(path, "minItems \(minI) > maxItems \(maxI)") }
                let w = try ws()
                if maxI == 0 { return try add("array", [Builder.lit("[") + [.rule(w)] + Builder.lit("]")]) }
                let more = try repetition(Builder.lit(",") + [.rule(w), .rule(item)], min: Swift.max(minI - 1, 0), max: maxI.map { $0 - 1 }, name: "items")
                let content: Seq = [.rule(item)] + more + [.rule(w)]
                let body: Seq = minI == 0 ? [.rule(try add("items-opt", [[], content]))] : content
                return try add("array", [Builder.lit("[") + [.rule(w)] + body + Builder.lit("]")])
            case "object":
                return try objectRule(schema, path: path, depth: depth)
            default:
                throw invalid(path + "/type", "unknown type '\(type)'")
            }
        }

        mutating func objectRule(_ schema: SchemaValue, path: String, depth: Int) throws(GrammarError) -> Int {
            var props: [(key: String, value: SchemaValue)] = []
            if let p = schema["properties"] {
                guard case .object(let list) = p else { throw invalid(path + "/properties", "'properties' must be an object") }
                props = list
            }
            var required: [String] = []
            if let r = schema["required"] {
                guard case .array(let list) = r else { throw invalid(path + "/required", "'required' must be an array of strings") }
                for v in list {
                    guard case .string(let s) = v else { throw invalid(path + "/required", "'required' must be an array of strings") }
                    if !required.contains(s) { required.append(s) }
                }
            }
            // required names without a schema in properties: any value, after the declared ones
            for name in required where !props.contains(where: { $0.key == name }) {
                props.append((name, .bool(true)))
            }
            if let u = schema["unevaluatedProperties"] {
                guard case .bool(false) = u else {
                    throw unsupported("unevaluatedProperties", path, "only 'false' is supported")
                }
            }
            var additional: SchemaValue? = options.additionalPropertiesDefault || props.isEmpty ? .bool(true) : nil
            if let a = schema["additionalProperties"] {
                switch a {
                case .bool(false): additional = nil
                case .bool(true), .object: additional = a
                default: throw invalid(path + "/additionalProperties", "'additionalProperties' must be a boolean or a schema")
                }
            }
            if schema["unevaluatedProperties"] != nil { additional = nil }
            if additional != nil && !props.isEmpty {
                throw unsupported("additionalProperties", path, "extra properties beside declared 'properties' are not supported; set \"additionalProperties\": false (the default here) or drop 'properties'")
            }
            if let additional {
                // a map: any keys, values of the given schema
                if case .bool(true) = additional { return try anyObjectRule2() }
                let value = try schemaRule(additional, path: path + "/additionalProperties", depth: depth + 1)
                return try objectOf(value: value, name: "map")
            }
            let w = try ws()
            // tails[i][c]: members i… where c says whether a comma comes before the next member
            let n = props.count
            var next: [Int] = [try add("members-end", [[]]), try add("members-end", [[]])]
            for i in stride(from: n - 1, through: 0, by: -1) {
                let (name, sub) = props[i]
                let value = try schemaRule(sub, path: path + "/properties/" + Self.escapePointer(name), depth: depth + 1)
                let member: Seq = Builder.lit(SchemaValue.quoted(name)) + Builder.lit(":") + [.rule(w), .rule(value)]
                let isRequired = required.contains(name)
                var cur: [Int] = []
                for comma in [false, true] {
                    var alts: [Seq] = [(comma ? Builder.lit(",") : []) + [.rule(w)] + member + [.rule(next[1])]]
                    if !isRequired { alts.append([.rule(next[comma ? 1 : 0])]) }
                    cur.append(try add("members-\(i)", alts))
                }
                next = cur
            }
            return try add("object", [Builder.lit("{") + [.rule(next[0]), .rule(w)] + Builder.lit("}")])
        }

        mutating func anyObjectRule2() throws(GrammarError) -> Int {
            _ = try anyValueRule()
            return common["object"]!
        }

        /// `s` with every `a` replaced by `b` (no Foundation here).
        static func replace(_ s: String, _ a: String, _ b: String) -> String {
            guard !a.isEmpty else { return s }
            var out = ""
            var rest = Substring(s)
            while let r = rest.firstRange(of: a) {
                out += rest[..<r.lowerBound]
                out += b
                rest = rest[r.upperBound...]
            }
            return out + rest
        }

        static func escapePointer(_ s: String) -> String {
            replace(replace(s, "~", "~0"), "/", "~1")
        }

        mutating func refRule(_ target: String, path: String, depth: Int) throws(GrammarError) -> Int {
            if let r = refRules[target] { return r }
            guard target == "#" || target.hasPrefix("#/") else {
                throw unsupported("$ref", path, "only local references ('#' or '#/…') are supported, got '\(target)'")
            }
            var node = root
            if target != "#" {
                for raw in target.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false) {
                    let token = Self.replace(Self.replace(String(raw), "~1", "/"), "~0", "~")
                    switch node {
                    case .object:
                        guard let v = node[token] else { throw invalid(path + "/$ref", "'\(target)' does not resolve (no '\(token)')") }
                        node = v
                    case .array(let items):
                        guard let i = Int(token), i >= 0, i < items.count else { throw invalid(path + "/$ref", "'\(target)' does not resolve (no index '\(token)')") }
                        node = items[i]
                    default:
                        throw invalid(path + "/$ref", "'\(target)' does not resolve")
                    }
                }
            }
            // declare first so recursive references find the rule
            let r = g.declare("ref")
            refRules[target] = r
            let body = try schemaRule(node, path: target, depth: depth + 1)
            g.define(r, [[.rule(body)]])
            return r
        }

        mutating func formatRule(_ name: String) throws(GrammarError) -> Int {
            let d = Builder.digit
            func two(_ a: ClosedRange<UInt8>, _ b: ClosedRange<UInt8>) -> Seq { [Builder.cls(a), Builder.cls(b)] }
            let c0 = UInt8(ascii: "0"), c1 = UInt8(ascii: "1"), c2 = UInt8(ascii: "2"), c3 = UInt8(ascii: "3"), c5 = UInt8(ascii: "5"), c9 = UInt8(ascii: "9")
            switch name {
            case "uuid":
                return try shared("uuid") { (b: inout Builder) throws(GrammarError) in
                    let hex = Builder.cls(0x30...0x39, 0x41...0x46, 0x61...0x66)
                    var seq = Builder.lit("\"")
                    for (i, n) in [8, 4, 4, 4, 12].enumerated() {
                        if i > 0 { seq += Builder.lit("-") }
                        seq += Array(repeating: hex, count: n)
                    }
                    return [seq + Builder.lit("\"")]
                }
            case "date":
                let date = try dateRule()
                return try shared("date-string") { _ throws(GrammarError) in [Builder.lit("\"") + [.rule(date)] + Builder.lit("\"")] }
            case "time":
                let time = try timeRule(d: d, two: two, c0: c0, c1: c1, c2: c2, c3: c3, c5: c5, c9: c9)
                return try shared("time-string") { _ throws(GrammarError) in [Builder.lit("\"") + [.rule(time)] + Builder.lit("\"")] }
            default: // date-time
                let date = try dateRule()
                let time = try timeRule(d: d, two: two, c0: c0, c1: c1, c2: c2, c3: c3, c5: c5, c9: c9)
                return try shared("date-time-string") { _ throws(GrammarError) in [Builder.lit("\"") + [.rule(date)] + Builder.lit("T") + [.rule(time)] + Builder.lit("\"")] }
            }
        }

        /// RFC 3339 full-date with real month lengths (29 February only in leap years), years 0001-9999.
        mutating func dateRule() throws(GrammarError) -> Int {
            try shared("date") { (b: inout Builder) throws(GrammarError) in
                let d = Builder.digit
                let z = UInt8(ascii: "0")
                let year = try b.add("year", [
                    [Builder.digit19, d, d, d],
                    Builder.lit("0") + [Builder.digit19, d, d],
                    Builder.lit("00") + [Builder.digit19, d],
                    Builder.lit("000") + [Builder.digit19],
                ])
                // two digits divisible by 4 (00 excluded where noted)
                let by4NonZero: [Seq] = [Builder.lit("0") + [.bytes(ByteSet(Array("48".utf8)))],
                                         [.bytes(ByteSet(Array("2468".utf8))), .bytes(ByteSet(Array("048".utf8)))],
                                         [.bytes(ByteSet(Array("13579".utf8))), .bytes(ByteSet(Array("26".utf8)))]]
                let leapYY = try b.add("leap-yy", by4NonZero)
                let leapYear = try b.add("leap-year", [
                    [d, d, .rule(leapYY)],
                    [.rule(leapYY)] + Builder.lit("00"),
                ])
                let d28 = try b.add("day28", [Builder.lit("0") + [Builder.digit19], Builder.lit("1") + [d], Builder.lit("2") + [Builder.cls(z...UInt8(ascii: "8"))]])
                let d30 = try b.add("day30", [[.rule(d28)], Builder.lit("29"), Builder.lit("30")])
                let d31 = try b.add("day31", [[.rule(d30)], Builder.lit("31")])
                let m31: [Seq] = ["01", "03", "05", "07", "08", "10", "12"].map { Builder.lit($0) }
                let m30: [Seq] = ["04", "06", "09", "11"].map { Builder.lit($0) }
                let month31 = try b.add("month31", m31)
                let month30 = try b.add("month30", m30)
                let monthDay = try b.add("month-day", [
                    [.rule(month31)] + Builder.lit("-") + [.rule(d31)],
                    [.rule(month30)] + Builder.lit("-") + [.rule(d30)],
                    Builder.lit("02-") + [.rule(d28)],
                ])
                return [
                    [.rule(year)] + Builder.lit("-") + [.rule(monthDay)],
                    [.rule(leapYear)] + Builder.lit("-02-29"),
                ]
            }
        }

        mutating func timeRule(d: GrammarSymbol, two: (ClosedRange<UInt8>, ClosedRange<UInt8>) -> Seq,
                               c0: UInt8, c1: UInt8, c2: UInt8, c3: UInt8, c5: UInt8, c9: UInt8) throws(GrammarError) -> Int {
            try shared("time") { (b: inout Builder) throws(GrammarError) in
                let hour = try b.add("hour", [two(c0...c1, c0...c9), two(c2...c2, c0...c3)])
                let minute = try b.add("minute", [two(c0...c5, c0...c9)])
                let frac = try b.add("time-frac", [[], Builder.lit(".") + (try b.repetition([d], min: 1, max: 9, name: "time-frac-digits"))])
                let offset = try b.add("offset", [Builder.lit("Z"), [.bytes(ByteSet(Array("+-".utf8))), .rule(hour)] + Builder.lit(":") + [.rule(minute)]])
                return [[.rule(hour)] + Builder.lit(":") + [.rule(minute)] + Builder.lit(":") + [.rule(minute), .rule(frac), .rule(offset)]]
            }
        }
    }
}
