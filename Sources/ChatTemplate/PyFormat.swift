import Foundation

/// Python string formatting: `%` (printf-style), `str.format`, and `datetime.strftime`.
enum PyFormat {
    // MARK: printf-style

    static func percent(_ fmt: String, _ arg: Value, markup: Bool) throws -> String {
        var args: [Value]
        var mapping: PyDict? = nil
        switch arg {
        case .tuple(let a): args = a
        case .dict(let d): args = [arg]; mapping = d
        default: args = [arg]
        }
        let u = Array(fmt.unicodeScalars)
        var out = ""
        var i = 0
        var argi = 0
        func nextArg() throws -> Value {
            guard argi < args.count else { throw EvalError.type("TypeError: not enough arguments for format string") }
            defer { argi += 1 }
            return args[argi]
        }
        while i < u.count {
            let c = u[i]
            if c != "%" { out.unicodeScalars.append(c); i += 1; continue }
            i += 1
            guard i < u.count else { throw EvalError.type("ValueError: incomplete format") }
            var key: String? = nil
            if u[i] == "(" {
                var depth = 1
                var j = i + 1
                while j < u.count, depth > 0 {
                    if u[j] == "(" { depth += 1 }
                    if u[j] == ")" { depth -= 1 }
                    j += 1
                }
                guard depth == 0 else { throw EvalError.type("ValueError: incomplete format key") }
                key = PyText.make(u[(i + 1)..<(j - 1)])
                i = j
            }
            var flags = ""
            while i < u.count, "-+ #0".unicodeScalars.contains(u[i]) { flags.unicodeScalars.append(u[i]); i += 1 }
            var width: Int? = nil
            if i < u.count, u[i] == "*" {
                guard case .int(let w)? = try nextArg().number else { throw EvalError.type("TypeError: * wants int") }
                width = w
                i += 1
            } else {
                var w = 0, any = false
                while i < u.count, let d = u[i].properties.numericType == .decimal ? Int(String(Character(u[i]))) : nil { w = min(w, 1_000_000_000) * 10 + d; any = true; i += 1 }
                if any { width = w }
            }
            var precision: Int? = nil
            if i < u.count, u[i] == "." {
                i += 1
                if i < u.count, u[i] == "*" {
                    guard case .int(let p)? = try nextArg().number else { throw EvalError.type("TypeError: * wants int") }
                    precision = p
                    i += 1
                } else {
                    var p = 0
                    while i < u.count, let d = u[i].properties.numericType == .decimal ? Int(String(Character(u[i]))) : nil { p = min(p, 1_000_000_000) * 10 + d; i += 1 }
                    precision = p
                }
            }
            try Py.checkSize(width ?? 0)
            try Py.checkSize(precision ?? 0)
            if (precision ?? 0) > 10_000 { throw EvalError.type("ValueError: precision too large") }
            while i < u.count, u[i] == "h" || u[i] == "l" || u[i] == "L" { i += 1 }
            guard i < u.count else { throw EvalError.type("ValueError: incomplete format") }
            let conv = Character(u[i])
            i += 1
            if conv == "%" { out += "%"; continue }
            let value: Value
            if let key {
                guard let mapping else { throw EvalError.type("TypeError: format requires a mapping") }
                guard let v = mapping.get(.string(key)) else { throw EvalError.type("KeyError: \(PyText.repr(key))") }
                value = v
            } else {
                value = try nextArg()
            }
            if case .undefined(let u) = value, conv != "s" { throw u.error }
            var body: String
            switch conv {
            case "s", "r", "a":
                var s = conv == "s" ? try Py.str(value) : try Py.repr(value)
                if markup, conv == "s" { s = try Py.escapeForMarkup(value) }
                if let precision { s = PyText.make(s.unicodeScalars.prefix(precision)) }
                body = s
                body = pad(body, width: width, left: flags.contains("-"), zero: false)
                out += body
            try Py.checkSize(out.utf8.count)
                try Py.checkSize(out.utf8.count)
                continue
            case "d", "i", "u":
                guard let n = value.number else { throw EvalError.type("TypeError: %\(conv) format: a real number is required, not \(value.typeName)") }
                let iv: Int
                switch n {
                case .int(let x): iv = x
                case .double(let d):
                    guard d.isFinite, abs(d) < 9.2e18 else { throw EvalError.type("OverflowError: cannot convert float to integer") }
                    iv = Int(d)
                }
                body = formatInt(iv, radix: 10, upper: false, flags: flags, width: width, precision: precision, alt: "")
            case "x", "X", "o":
                guard case .int(let iv)? = value.number else { throw EvalError.type("TypeError: %\(conv) format: an integer is required, not \(value.typeName)") }
                let alt = flags.contains("#") ? (conv == "o" ? "0o" : (conv == "x" ? "0x" : "0X")) : ""
                body = formatInt(iv, radix: conv == "o" ? 8 : 16, upper: conv == "X", flags: flags, width: width, precision: precision, alt: alt)
            case "e", "E", "f", "F", "g", "G":
                guard let n = value.number else { throw EvalError.type("TypeError: must be real number, not \(value.typeName)") }
                body = PyNumber.cFormat(Py.toDouble(n), flags: flags, width: width, precision: precision ?? 6, conv: conv)
            case "c":
                if case .int(let cp)? = value.number, let sc = Unicode.Scalar(UInt32(clamping: cp)) {
                    body = pad(String(Character(sc)), width: width, left: flags.contains("-"), zero: false)
                } else if let s = value.stringValue, s.unicodeScalars.count == 1 {
                    body = pad(s, width: width, left: flags.contains("-"), zero: false)
                } else {
                    throw EvalError.type("TypeError: %c requires int or char")
                }
            default:
                throw EvalError.type("ValueError: unsupported format character '\(conv)'")
            }
            out += body
        }
        if mapping == nil, argi < args.count {
            throw EvalError.type("TypeError: not all arguments converted during string formatting")
        }
        return out
    }

    private static func pad(_ s: String, width: Int?, left: Bool, zero: Bool) -> String {
        guard let width else { return s }
        let n = s.unicodeScalars.count
        if n >= width { return s }
        let fill = String(repeating: zero ? "0" : " ", count: width - n)
        return left ? s + fill : fill + s
    }

    private static func formatInt(_ v: Int, radix: Int, upper: Bool, flags: String, width: Int?, precision: Int?, alt: String) -> String {
        var digits = String(v.magnitude, radix: radix, uppercase: upper)
        if let precision, digits.count < precision { digits = String(repeating: "0", count: precision - digits.count) + digits }
        var sign = ""
        if v < 0 { sign = "-" } else if flags.contains("+") { sign = "+" } else if flags.contains(" ") { sign = " " }
        let prefix = sign + alt
        if let width, flags.contains("0"), !flags.contains("-"), prefix.count + digits.count < width {
            digits = String(repeating: "0", count: width - prefix.count - digits.count) + digits
        }
        return pad(prefix + digits, width: width, left: flags.contains("-"), zero: false)
    }

    // MARK: str.format

    static func format(_ fmt: String, _ args: Arguments, interp: Interpreter) throws -> String {
        let u = Array(fmt.unicodeScalars)
        var out = ""
        var i = 0
        var auto = 0
        while i < u.count {
            let c = u[i]
            if c == "{" {
                if i + 1 < u.count, u[i + 1] == "{" { out += "{"; i += 2; continue }
                // find the matching close brace (nested braces allowed in the spec)
                var depth = 1
                var j = i + 1
                while j < u.count, depth > 0 {
                    if u[j] == "{" { depth += 1 } else if u[j] == "}" { depth -= 1 }
                    if depth > 0 { j += 1 }
                }
                guard j < u.count else { throw EvalError.type("ValueError: expected '}' before end of string") }
                let field = PyText.make(u[(i + 1)..<j])
                out += try formatField(field, args, &auto, interp)
                try Py.checkSize(out.utf8.count)
                i = j + 1
                continue
            }
            if c == "}" {
                if i + 1 < u.count, u[i + 1] == "}" { out += "}"; i += 2; continue }
                throw EvalError.type("ValueError: Single '}' encountered in format string")
            }
            out.unicodeScalars.append(c)
            i += 1
        }
        return out
    }

    private static func formatField(_ field: String, _ args: Arguments, _ auto: inout Int, _ interp: Interpreter) throws -> String {
        var name = field, conversion: Character? = nil, spec = ""
        if let colon = field.firstIndex(of: ":") {
            name = String(field[..<colon])
            spec = String(field[field.index(after: colon)...])
        }
        if let bang = name.firstIndex(of: "!") {
            conversion = name[name.index(after: bang)...].first
            name = String(name[..<bang])
        }
        // first part: arg index or keyword name, then .attr / [key] chains
        var head = ""
        var rest = Substring(name)
        while let ch = rest.first, ch != ".", ch != "[" { head.append(ch); rest = rest.dropFirst() }
        var value: Value
        if head.isEmpty {
            guard auto < args.positional.count else { throw EvalError.type("IndexError: Replacement index \(auto) out of range for positional args tuple") }
            value = args.positional[auto]
            auto += 1
        } else if let idx = Int(head) {
            guard idx < args.positional.count else { throw EvalError.type("IndexError: Replacement index \(idx) out of range for positional args tuple") }
            value = args.positional[idx]
        } else {
            guard let v = args.keyword(head) else { throw EvalError.type("KeyError: \(PyText.repr(head))") }
            value = v
        }
        while let ch = rest.first {
            rest = rest.dropFirst()
            if ch == "." {
                var attr = ""
                while let c2 = rest.first, c2 != ".", c2 != "[" { attr.append(c2); rest = rest.dropFirst() }
                value = try interp.getattr(value, attr)
            } else {
                var key = ""
                while let c2 = rest.first, c2 != "]" { key.append(c2); rest = rest.dropFirst() }
                rest = rest.dropFirst()
                value = try interp.getitem(value, Int(key).map { .int($0) } ?? .string(key))
            }
            if case .undefined(let u) = value { throw u.error }
        }
        if conversion == "r" || conversion == "a" { value = .string(try Py.repr(value)) } else if conversion == "s" { value = .string(try Py.str(value)) }
        // nested replacement fields inside the spec
        if spec.contains("{") { spec = try format(spec, args, interp: interp) }
        return try formatSpec(value, spec)
    }

    /// Python's format-spec mini-language for str, int and float.
    static func formatSpec(_ value: Value, _ spec: String) throws -> String {
        if spec.isEmpty { return try Py.str(value) }
        var u = Array(spec.unicodeScalars)
        var fill: Unicode.Scalar = " "
        var align: Unicode.Scalar? = nil
        if u.count >= 2, "<>=^".unicodeScalars.contains(u[1]) {
            fill = u[0]; align = u[1]; u.removeFirst(2)
        } else if let f = u.first, "<>=^".unicodeScalars.contains(f) {
            align = f; u.removeFirst()
        }
        var sign: Unicode.Scalar = "-"
        if let f = u.first, "+- ".unicodeScalars.contains(f) { sign = f; u.removeFirst() }
        var alt = false
        if u.first == "#" { alt = true; u.removeFirst() }
        if u.first == "0" {
            if align == nil { fill = "0"; align = "=" }
            u.removeFirst()
        }
        var width = 0
        while let f = u.first, f.value >= 48, f.value <= 57 { width = min(width, 1_000_000_000) * 10 + Int(f.value - 48); u.removeFirst() }
        var grouping: Unicode.Scalar? = nil
        if let f = u.first, f == "," || f == "_" { grouping = f; u.removeFirst() }
        var precision: Int? = nil
        if u.first == "." {
            u.removeFirst()
            var p = 0
            while let f = u.first, f.value >= 48, f.value <= 57 { p = min(p, 1_000_000_000) * 10 + Int(f.value - 48); u.removeFirst() }
            precision = p
        }
        let type: Character? = u.first.map { Character($0) }
        if u.count > 1 { throw EvalError.type("ValueError: Invalid format specifier") }
        try Py.checkSize(width)
        if (precision ?? 0) > 10_000 { throw EvalError.type("ValueError: precision too large") }

        var body: String
        var signStr = ""
        switch value {
        case .string(let s), .markup(let s):
            guard type == nil || type == "s" else { throw EvalError.type("ValueError: Unknown format code '\(type!)' for object of type 'str'") }
            body = precision.map { PyText.make(s.unicodeScalars.prefix($0)) } ?? s
            if align == nil { align = "<" }
        default:
            guard let n = value.number else {
                if type == nil { body = try Py.str(value); break }
                throw EvalError.type("TypeError: unsupported format string passed to \(value.typeName).__format__")
            }
            let isInt: Bool
            if case .int = n { isInt = true } else { isInt = false }
            let t = type ?? (isInt ? "d" : "g")
            let d = Py.toDouble(n)
            let negative: Bool
            switch t {
            case "d", "b", "o", "x", "X", "n", "c":
                guard case .int(let iv) = n else { throw EvalError.type("ValueError: Unknown format code '\(t)' for object of type 'float'") }
                negative = iv < 0
                switch t {
                case "b": body = (alt ? "0b" : "") + String(iv.magnitude, radix: 2)
                case "o": body = (alt ? "0o" : "") + String(iv.magnitude, radix: 8)
                case "x": body = (alt ? "0x" : "") + String(iv.magnitude, radix: 16)
                case "X": body = (alt ? "0X" : "") + String(iv.magnitude, radix: 16, uppercase: true)
                case "c": body = Unicode.Scalar(UInt32(clamping: iv)).map { String(Character($0)) } ?? ""
                default: body = String(iv.magnitude)
                }
            case "e", "E", "f", "F", "%", "g", "G":
                negative = d.sign == .minus && !d.isNaN
                var x = abs(d)
                var suffix = ""
                var conv: Character = t
                if t == "%" { x *= 100; conv = "f"; suffix = "%" }
                if type == nil && !isInt {
                    // no type: like 'g' but at least one digit after the point; repr when no precision
                    if let precision {
                        body = PyNumber.cFormat(x, flags: "", width: nil, precision: max(precision, 1), conv: "g")
                        if !body.contains(".") && !body.contains("e") && !body.contains("n") && !body.contains("i") { body += ".0" }
                    } else {
                        body = PyNumber.repr(x)
                    }
                } else {
                    body = PyNumber.cFormat(x, flags: alt ? "#" : "", width: nil, precision: precision ?? 6, conv: conv) + suffix
                }
            default:
                throw EvalError.type("ValueError: Unknown format code '\(t)' for object of type '\(value.typeName)'")
            }
            if let grouping, t == "d" || t == "f" || t == "g" || t == "e" || t == "%" || t == "F" || t == "E" || t == "G" {
                // group the integer part
                var intPart = body, restPart = ""
                if let dot = body.firstIndex(where: { !$0.isNumber }) {
                    intPart = String(body[..<dot])
                    restPart = String(body[dot...])
                }
                var grouped = ""
                for (k, ch) in intPart.reversed().enumerated() {
                    if k > 0 && k % 3 == 0 { grouped.append(Character(grouping)) }
                    grouped.append(ch)
                }
                body = String(grouped.reversed()) + restPart
            }
            if negative { signStr = "-" } else if sign == "+" { signStr = "+" } else if sign == " " { signStr = " " }
            if align == nil { align = ">" }
        }
        let total = signStr.unicodeScalars.count + body.unicodeScalars.count
        if width <= total { return signStr + body }
        let padN = width - total
        let padding = String(repeating: String(Character(fill)), count: padN)
        switch align {
        case "<": return signStr + body + padding
        case "^":
            let l = padN / 2
            return String(repeating: String(Character(fill)), count: l) + signStr + body + String(repeating: String(Character(fill)), count: padN - l)
        case "=": return signStr + padding + body
        default: return padding + signStr + body
        }
    }

    // MARK: strftime

    private static let weekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    private static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                                 "October", "November", "December"]

    /// `datetime.now().strftime(fmt)` for a naive local datetime (as Python on glibc formats it,
    /// C locale). `%z` and `%Z` are empty, as for a naive datetime.
    static func strftime(_ fmt: String, date: Date, timeZone: TimeZone) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = timeZone
        let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .nanosecond, .weekday], from: date)
        let year = c.year ?? 1970, month = c.month ?? 1, day = c.day ?? 1
        let hour = c.hour ?? 0, minute = c.minute ?? 0, second = c.second ?? 0
        let micro = (c.nanosecond ?? 0) / 1000
        let wday = (c.weekday ?? 1) - 1  // 0 = Sunday
        let yday = cal.ordinality(of: .day, in: .year, for: date) ?? 1
        let u = Array(fmt.unicodeScalars)
        var out = ""
        var i = 0
        func num(_ v: Int, _ w: Int, _ flag: Unicode.Scalar?, _ padChar: String = "0") -> String {
            let s = String(v)
            if flag == "-" { return s }
            let p = flag == "_" ? " " : (flag == "0" ? "0" : padChar)
            return s.count >= w ? s : String(repeating: p, count: w - s.count) + s
        }
        while i < u.count {
            if u[i] != "%" || i + 1 >= u.count { out.unicodeScalars.append(u[i]); i += 1; continue }
            var j = i + 1
            var flag: Unicode.Scalar? = nil
            if "-_0^#".unicodeScalars.contains(u[j]), j + 1 < u.count { flag = u[j]; j += 1 }
            let d = u[j]
            var piece: String
            switch d {
            case "a": piece = String(weekdays[wday].prefix(3))
            case "A": piece = weekdays[wday]
            case "b", "h": piece = String(months[month - 1].prefix(3))
            case "B": piece = months[month - 1]
            case "d": piece = num(day, 2, flag)
            case "e": piece = num(day, 2, flag, " ")
            case "m": piece = num(month, 2, flag)
            case "y": piece = num(year % 100, 2, flag)
            case "Y": piece = String(year)
            case "C": piece = num(year / 100, 2, flag)
            case "H": piece = num(hour, 2, flag)
            case "k": piece = num(hour, 2, flag, " ")
            case "I": piece = num(hour % 12 == 0 ? 12 : hour % 12, 2, flag)
            case "l": piece = num(hour % 12 == 0 ? 12 : hour % 12, 2, flag, " ")
            case "M": piece = num(minute, 2, flag)
            case "S": piece = num(second, 2, flag)
            case "f": piece = num(micro, 6, nil)
            case "p": piece = hour < 12 ? "AM" : "PM"
            case "P": piece = hour < 12 ? "am" : "pm"
            case "j": piece = num(yday, 3, flag)
            case "w": piece = String(wday)
            case "u": piece = String(wday == 0 ? 7 : wday)
            case "U": piece = num((yday + 6 - wday) / 7, 2, flag)
            case "W": piece = num((yday + 6 - ((wday + 6) % 7)) / 7, 2, flag)
            case "z", "Z": piece = ""
            case "D": piece = num(month, 2, nil) + "/" + num(day, 2, nil) + "/" + num(year % 100, 2, nil)
            case "x": piece = num(month, 2, nil) + "/" + num(day, 2, nil) + "/" + num(year % 100, 2, nil)
            case "F": piece = String(year) + "-" + num(month, 2, nil) + "-" + num(day, 2, nil)
            case "T", "X": piece = num(hour, 2, nil) + ":" + num(minute, 2, nil) + ":" + num(second, 2, nil)
            case "R": piece = num(hour, 2, nil) + ":" + num(minute, 2, nil)
            case "r": piece = num(hour % 12 == 0 ? 12 : hour % 12, 2, nil) + ":" + num(minute, 2, nil) + ":" + num(second, 2, nil) + " " + (hour < 12 ? "AM" : "PM")
            case "c":
                piece = String(weekdays[wday].prefix(3)) + " " + String(months[month - 1].prefix(3)) + " " + num(day, 2, nil, " ")
                    + " " + num(hour, 2, nil) + ":" + num(minute, 2, nil) + ":" + num(second, 2, nil) + " " + String(year)
            case "n": piece = "\n"
            case "t": piece = "\t"
            case "%": piece = "%"
            case "s": piece = String(Int(date.timeIntervalSince1970))
            default:
                piece = "%" + (flag.map { String(Character($0)) } ?? "") + String(Character(d))
            }
            if flag == "^" { piece = piece.uppercased() }
            out += piece
            i = j + 1
        }
        return out
    }
}
