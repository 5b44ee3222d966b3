import Foundation
@testable import EdgeAI

/// A small JSON Schema validator for the tests, written separately from the grammar compiler (it
/// shares no code with `Sources/Grammar`): it checks a parsed value against a schema directly, the
/// way a validator library does. Keywords: type, properties, required, additionalProperties,
/// items, minItems, maxItems, enum, const, anyOf, oneOf (exactly one), allOf, $ref (local),
/// minLength/maxLength (in code points), minimum/maximum/exclusive*, format date/time/date-time/uuid.
struct SchemaValidator {
    let root: JSONValue

    /// The problems of `value` under the root schema ([] when valid).
    func problems(_ value: JSONValue) -> [String] {
        var out: [String] = []
        check(value, root, "$", &out)
        return out
    }

    private func resolve(_ ref: String) -> JSONValue? {
        guard ref.hasPrefix("#") else { return nil }
        var node = root
        for part in ref.dropFirst().split(separator: "/") {
            let key = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            guard let next = node[key] else { return nil }
            node = next
        }
        return node
    }

    private func isType(_ v: JSONValue, _ t: String) -> Bool {
        switch (t, v) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object), ("number", .number): return true
        case ("integer", .number(let d, _)): return d.isFinite && d == d.rounded()
        default: return false
        }
    }

    private func check(_ v: JSONValue, _ schema: JSONValue, _ at: String, _ out: inout [String]) {
        if case .bool(let b) = schema {
            if !b { out.append("\(at): schema false") }
            return
        }
        if case .string(let ref)? = schema["$ref"] {
            guard let target = resolve(ref) else { out.append("\(at): unresolved \(ref)"); return }
            check(v, target, at, &out)
        }
        if let t = schema["type"] {
            let types: [String]
            switch t {
            case .string(let s): types = [s]
            case .array(let list): types = list.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
            default: types = []
            }
            if !types.contains(where: { isType(v, $0) }) { out.append("\(at): type \(v.typeName) not in \(types)") }
        }
        if case .array(let options)? = schema["enum"], !options.contains(v) { out.append("\(at): \(v.jsonText) not in enum") }
        if let c = schema["const"], c != v { out.append("\(at): \(v.jsonText) is not the const") }
        if case .array(let subs)? = schema["anyOf"] {
            let ok = subs.contains { s in var p: [String] = []; check(v, s, at, &p); return p.isEmpty }
            if !ok { out.append("\(at): no anyOf branch matches") }
        }
        if case .array(let subs)? = schema["oneOf"] {
            let n = subs.filter { s in var p: [String] = []; check(v, s, at, &p); return p.isEmpty }.count
            if n != 1 { out.append("\(at): \(n) oneOf branches match") }
        }
        if case .array(let subs)? = schema["allOf"] { for s in subs { check(v, s, at, &out) } }

        switch v {
        case .string(let s):
            let n = s.unicodeScalars.count
            if case .number(let m, _)? = schema["minLength"], Double(n) < m { out.append("\(at): shorter than \(m)") }
            if case .number(let m, _)? = schema["maxLength"], Double(n) > m { out.append("\(at): longer than \(m)") }
            if case .string(let f)? = schema["format"], !Self.hasFormat(s, f) { out.append("\(at): '\(s)' is not a \(f)") }
        case .number(let d, _):
            if case .number(let m, _)? = schema["minimum"], d < m { out.append("\(at): \(d) < minimum \(m)") }
            if case .number(let m, _)? = schema["maximum"], d > m { out.append("\(at): \(d) > maximum \(m)") }
            if case .number(let m, _)? = schema["exclusiveMinimum"], d <= m { out.append("\(at): \(d) <= exclusiveMinimum \(m)") }
            if case .number(let m, _)? = schema["exclusiveMaximum"], d >= m { out.append("\(at): \(d) >= exclusiveMaximum \(m)") }
        case .array(let items):
            if case .number(let m, _)? = schema["minItems"], Double(items.count) < m { out.append("\(at): fewer than \(m) items") }
            if case .number(let m, _)? = schema["maxItems"], Double(items.count) > m { out.append("\(at): more than \(m) items") }
            if let itemSchema = schema["items"] {
                for (i, item) in items.enumerated() { check(item, itemSchema, "\(at)[\(i)]", &out) }
            }
        case .object(let members):
            let props = schema["properties"]
            if case .array(let req)? = schema["required"] {
                for case .string(let name) in req where v[name] == nil { out.append("\(at): missing required '\(name)'") }
            }
            for m in members {
                if let ps = props?[m.key] {
                    check(m.value, ps, "\(at).\(m.key)", &out)
                } else if let extra = schema["additionalProperties"] {
                    check(m.value, extra, "\(at).\(m.key)", &out)
                }
            }
            if Set(members.map(\.key)).count != members.count { out.append("\(at): duplicate keys") }
        default:
            break
        }
    }

    /// RFC 3339 / JSON Schema formats, checked with Foundation's calendar rather than a grammar.
    static func hasFormat(_ s: String, _ format: String) -> Bool {
        switch format {
        case "uuid":
            return UUID(uuidString: s) != nil && s.count == 36
        case "date":
            return validDate(s)
        case "time":
            return validTime(s)
        case "date-time":
            let parts = s.split(separator: "T", maxSplits: 1)
            return parts.count == 2 && validDate(String(parts[0])) && validTime(String(parts[1]))
        default:
            return true
        }
    }

    static func validDate(_ s: String) -> Bool {
        let p = s.split(separator: "-", omittingEmptySubsequences: false)
        guard p.count == 3, p[0].count == 4, p[1].count == 2, p[2].count == 2,
              let y = Int(p[0]), let m = Int(p[1]), let d = Int(p[2]), y >= 1 else { return false }
        var c = DateComponents()
        c.year = y; c.month = m; c.day = d
        let cal = Calendar(identifier: .gregorian)
        return c.isValidDate(in: cal)
    }

    static func validTime(_ s: String) -> Bool {
        // HH:MM:SS[.frac](Z|±HH:MM), read field by field
        let c = Array(s)
        func num(_ r: Range<Int>, below limit: Int) -> Bool {
            guard r.upperBound <= c.count, r.allSatisfy({ c[$0].isASCII && c[$0].isNumber }), let v = Int(String(c[r])) else { return false }
            return v < limit
        }
        guard c.count >= 9, num(0..<2, below: 24), c[2] == ":", num(3..<5, below: 60), c[5] == ":", num(6..<8, below: 60) else { return false }
        var i = 8
        if c[i] == "." {
            i += 1
            let start = i
            while i < c.count, c[i].isASCII, c[i].isNumber { i += 1 }
            if i == start { return false }
        }
        let rest = c[i...]
        if rest.count == 1 { return rest.first == "Z" || rest.first == "z" }
        return rest.count == 6 && (c[i] == "+" || c[i] == "-") && num((i + 1)..<(i + 3), below: 24) && c[i + 3] == ":" && num((i + 4)..<(i + 6), below: 60)
    }
}
