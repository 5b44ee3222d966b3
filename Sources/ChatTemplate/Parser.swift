// Recursive-descent parser following Jinja2's grammar (jinja2/parser.py) with the
// loopcontrols extension (break / continue).

struct Parser {
    private var tokens: [Token]
    private var i = 0
    private var tagStack: [String] = []
    private var endTokenStack: [[String]] = []
    private var loopDepth = 0
    /// Nesting of blocks and sub-expressions; bounded so that hostile input cannot exhaust the stack
    /// (Jinja2 itself hits Python's recursion limit at a similar depth).
    private var nesting = 0
    static let maxNesting = 100

    private var stackLowKnown = false
    private var stackLow: UInt? = nil

    private mutating func enter() throws {
        nesting += 1
        if nesting > Parser.maxNesting {
            throw fail("template nesting too deep (more than \(Parser.maxNesting) levels)")
        }
        if nesting > 16 {
            if !stackLowKnown { stackLow = StackGuard.stackLow(); stackLowKnown = true }
            if StackGuard.nearlyExhausted(low: stackLow) {
                throw fail("template nesting too deep for the thread's stack")
            }
        }
    }

    init(tokens: [Token]) { self.tokens = tokens }

    static func parse(_ source: String) throws -> [Stmt] {
        var lexer = Lexer(source)
        let tokens = try lexer.tokenize()
        var parser = Parser(tokens: tokens)
        let body = try parser.subparse(nil)
        try Validator.check(body)
        return body
    }

    // MARK: token stream

    private var current: Token { tokens[i] }
    private var look: Token { tokens[min(i + 1, tokens.count - 1)] }

    @discardableResult
    private mutating func next() -> Token {
        let t = tokens[i]
        if i < tokens.count - 1 { i += 1 }
        return t
    }

    private func isOp(_ t: Token, _ op: String) -> Bool { t.kind == .op && t.text == op }
    private func isName(_ t: Token, _ name: String) -> Bool { t.kind == .name && t.text == name }

    /// Matches a Jinja token expression like "name:endfor", "block_end", "rparen".
    private func test(_ t: Token, _ expr: String) -> Bool {
        if expr.hasPrefix("name:") { return isName(t, String(expr.dropFirst(5))) }
        switch expr {
        case "block_end": return t.kind == .blockEnd
        case "variable_end": return t.kind == .variableEnd
        case "rparen": return isOp(t, ")")
        default: return false
        }
    }

    private func fail(_ msg: String, _ p: Pos? = nil) -> TemplateError {
        let at = p ?? current.pos
        return TemplateError(kind: .syntax, message: msg, line: Int(at.line), column: Int(at.col))
    }

    private func describe(_ t: Token) -> String {
        switch t.kind {
        case .data: return "template data / text"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case .name: return t.text
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .op: return t.text
        case .eof: return "end of template"
        }
    }

    private func describeExpr(_ e: String) -> String {
        if e.hasPrefix("name:") { return String(e.dropFirst(5)) }
        switch e {
        case "block_end": return "end of statement block"
        case "variable_end": return "end of print statement"
        default: return e
        }
    }

    private mutating func expectOp(_ op: String) throws -> Token {
        guard isOp(current, op) else {
            if current.kind == .eof { throw fail("unexpected end of template, expected '\(op)'.") }
            throw fail("expected token '\(op)', got '\(describe(current))'")
        }
        return next()
    }

    private mutating func expectName(_ name: String? = nil) throws -> Token {
        if let name {
            guard isName(current, name) else {
                if current.kind == .eof { throw fail("unexpected end of template, expected '\(name)'.") }
                throw fail("expected token '\(name)', got '\(describe(current))'")
            }
        } else if current.kind != .name {
            if current.kind == .eof { throw fail("unexpected end of template, expected 'name'.") }
            throw fail("expected token 'name', got '\(describe(current))'")
        }
        return next()
    }

    private mutating func expectKind(_ kind: TokenKind) throws {
        guard current.kind == kind else {
            let wanted = describe(Token(kind: kind, pos: .none))
            if current.kind == .eof { throw fail("unexpected end of template, expected '\(wanted)'.") }
            throw fail("expected token '\(wanted)', got '\(describe(current))'")
        }
        next()
    }

    private mutating func skipOp(_ op: String) -> Bool {
        if isOp(current, op) { next(); return true }
        return false
    }

    private mutating func skipName(_ name: String) -> Bool {
        if isName(current, name) { next(); return true }
        return false
    }

    // MARK: template structure

    private func failUnknownOrEOF(_ name: String?, _ stack: [[String]], _ p: Pos?) -> TemplateError {
        var expected = Set<String>()
        for exprs in stack { for e in exprs { expected.insert(describeExpr(e)) } }
        var message: [String] = []
        message.append(name.map { "Encountered unknown tag '\($0)'." } ?? "Unexpected end of template.")
        if let last = stack.last {
            let looking = last.map { "'\(describeExpr($0))'" }.joined(separator: " or ")
            if let name, expected.contains(name) {
                message.append("You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for \(looking).")
            } else {
                message.append("Jinja was looking for the following tags: \(looking).")
            }
        }
        if let tag = tagStack.last {
            message.append("The innermost block that needs to be closed is '\(tag)'.")
        }
        return fail(message.joined(separator: " "), p)
    }

    private mutating func subparse(_ endTokens: [String]?) throws -> [Stmt] {
        try enter()
        defer { nesting -= 1 }
        var body: [Stmt] = []
        if let endTokens { endTokenStack.append(endTokens) }
        defer { if endTokens != nil { endTokenStack.removeLast() } }
        while current.kind != .eof {
            let tok = current
            switch tok.kind {
            case .data:
                if !tok.text.isEmpty { body.append(.data(tok.text)) }
                next()
            case .variableBegin:
                next()
                body.append(.output(try parseTuple(withCondexpr: true)))
                try expectKind(.variableEnd)
            case .blockBegin:
                next()
                if let endTokens, endTokens.contains(where: { test(current, $0) }) {
                    return body
                }
                body.append(contentsOf: try parseStatement())
                try expectKind(.blockEnd)
            default:
                throw fail("unexpected '\(describe(tok))'")
            }
        }
        return body
    }

    private mutating func parseStatements(_ endTokens: [String], dropNeedle: Bool = false) throws -> [Stmt] {
        _ = skipOp(":")
        try expectKind(.blockEnd)
        let result = try subparse(endTokens)
        if current.kind == .eof {
            var stack = endTokenStack
            stack.append(endTokens)
            throw failUnknownOrEOF(nil, stack, nil)
        }
        if dropNeedle { next() }
        return result
    }

    private mutating func parseStatement() throws -> [Stmt] {
        let tok = current
        guard tok.kind == .name else { throw fail("tag name expected", tok.pos) }
        tagStack.append(tok.text)
        var popped = false
        defer { if !popped { tagStack.removeLast() } }
        switch tok.text {
        case "for": return [try parseFor()]
        case "if": return [try parseIf()]
        case "set": return [try parseSet()]
        case "macro": return [try parseMacro()]
        case "call": return [try parseCallBlock()]
        case "filter": return [try parseFilterBlock()]
        case "with": return [try parseWith()]
        case "block": return [try parseBlock()]
        case "print":
            next()
            var outs: [Stmt] = []
            while current.kind != .blockEnd {
                if !outs.isEmpty { _ = try expectOp(",") }
                outs.append(.output(try parseExpression()))
            }
            return outs
        case "autoescape":
            let p = next().pos
            let e = try parseExpression()
            let body = try parseStatements(["name:endautoescape"], dropNeedle: true)
            return [.autoescape(e, body, p)]
        case "break", "continue":
            let p = next().pos
            if loopDepth == 0 { throw fail("'\(tok.text)' outside loop", p) }
            return [tok.text == "break" ? .break(p) : .continue(p)]
        case "extends", "include", "import", "from":
            let p = next().pos
            // Parse enough to skip the tag; rendering it fails (no template loader).
            while current.kind != .blockEnd && current.kind != .eof { next() }
            return [.needsLoader(tok.text, p)]
        default:
            tagStack.removeLast()
            popped = true
            throw failUnknownOrEOF(tok.text, endTokenStack, tok.pos)
        }
    }

    private mutating func parseFor() throws -> Stmt {
        let p = try expectName("for").pos
        let target = try parseAssignTarget(extraEnd: ["name:in"])
        _ = try expectName("in")
        let iter = try parseTuple(withCondexpr: false, extraEnd: ["name:recursive"])
        var testExpr: Expr? = nil
        if skipName("if") { testExpr = try parseExpression() }
        let recursive = skipName("recursive")
        loopDepth += 1
        let body = try parseStatements(["name:endfor", "name:else"])
        loopDepth -= 1
        var elseBody: [Stmt] = []
        if next().text != "endfor" {
            elseBody = try parseStatements(["name:endfor"], dropNeedle: true)
        }
        return .for(ForNode(target: target, iter: iter, body: body, elseBody: elseBody, test: testExpr, recursive: recursive, pos: p))
    }

    private mutating func parseIf() throws -> Stmt {
        _ = try expectName("if")
        var branches: [(Expr, [Stmt])] = []
        var elseBody: [Stmt] = []
        while true {
            let cond = try parseTuple(withCondexpr: false)
            let body = try parseStatements(["name:elif", "name:else", "name:endif"])
            branches.append((cond, body))
            let tok = next()
            if isName(tok, "elif") { continue }
            if isName(tok, "else") {
                elseBody = try parseStatements(["name:endif"], dropNeedle: true)
            }
            break
        }
        return .if(branches, elseBody)
    }

    private mutating func parseSet() throws -> Stmt {
        let p = next().pos
        let target = try parseAssignTarget(withNamespace: true)
        if skipOp("=") {
            let e = try parseTuple()
            return .set(target, e, p)
        }
        let filter = try parseFilter(nil)
        let body = try parseStatements(["name:endset"], dropNeedle: true)
        return .setBlock(target, filter, body, p)
    }

    private mutating func parseWith() throws -> Stmt {
        let p = next().pos
        var pairs: [(Target, Expr)] = []
        while current.kind != .blockEnd {
            if !pairs.isEmpty { _ = try expectOp(",") }
            let t = try parseAssignTarget()
            _ = try expectOp("=")
            pairs.append((t, try parseExpression()))
        }
        let body = try parseStatements(["name:endwith"], dropNeedle: true)
        return .with(pairs, body, p)
    }

    private mutating func parseBlock() throws -> Stmt {
        let p = next().pos
        let name = try expectName().text
        _ = skipName("scoped")
        _ = skipName("required")
        if isOp(current, "-") {
            throw fail("Block names in Jinja have to be valid Python identifiers and may not contain hyphens, use an underscore instead.")
        }
        let savedDepth = loopDepth
        loopDepth = 0
        let body = try parseStatements(["name:endblock"], dropNeedle: true)
        loopDepth = savedDepth
        _ = skipName(name)
        return .block(name, body, p)
    }

    private mutating func parseSignature() throws -> ([String], [Expr]) {
        var params: [String] = []
        var defaults: [Expr] = []
        _ = try expectOp("(")
        while !isOp(current, ")") {
            if !params.isEmpty { _ = try expectOp(",") }
            let name = try expectName().text
            if skipOp("=") {
                defaults.append(try parseExpression())
            } else if !defaults.isEmpty {
                throw fail("non-default argument follows default argument")
            }
            params.append(name)
        }
        _ = try expectOp(")")
        return (params, defaults)
    }

    private mutating func parseMacro() throws -> Stmt {
        let p = next().pos
        let name = try expectName().text
        let (params, defaults) = try parseSignature()
        let savedDepth = loopDepth
        loopDepth = 0
        let body = try parseStatements(["name:endmacro"], dropNeedle: true)
        loopDepth = savedDepth
        let refs = NameScan.references(body)
        return .macro(MacroNode(name: name, params: params, defaults: defaults, body: body,
                                catchVarargs: refs.contains("varargs"), catchKwargs: refs.contains("kwargs"), pos: p))
    }

    private mutating func parseCallBlock() throws -> Stmt {
        let p = next().pos
        var params: [String] = [], defaults: [Expr] = []
        if isOp(current, "(") { (params, defaults) = try parseSignature() }
        let callExpr = try parseExpression()
        guard case .call = callExpr else { throw fail("expected call", p) }
        let savedDepth = loopDepth
        loopDepth = 0
        let body = try parseStatements(["name:endcall"], dropNeedle: true)
        loopDepth = savedDepth
        let refs = NameScan.references(body)
        return .callBlock(CallBlockNode(params: params, defaults: defaults, call: callExpr, body: body,
                                        catchVarargs: refs.contains("varargs"), catchKwargs: refs.contains("kwargs"), pos: p))
    }

    private mutating func parseFilterBlock() throws -> Stmt {
        let p = next().pos
        guard let filter = try parseFilter(nil, startInline: true) else { throw fail("expected a filter", p) }
        let body = try parseStatements(["name:endfilter"], dropNeedle: true)
        return .filterBlock(filter, body, p)
    }

    // MARK: assignment targets

    private mutating func parseAssignTarget(withTuple: Bool = true, extraEnd: [String]? = nil, withNamespace: Bool = false) throws -> Target {
        // simplified tuple of primaries (names, possibly namespace refs)
        var items: [Target] = []
        var isTuple = false
        while true {
            if !items.isEmpty { _ = try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            items.append(try parseTargetPrimary(withNamespace: withNamespace))
            if withTuple, isOp(current, ",") { isTuple = true } else { break }
        }
        if !isTuple {
            guard let only = items.first else { throw fail("Expected an expression, got '\(describe(current))'") }
            return only
        }
        return .tuple(items)
    }

    private mutating func parseTargetPrimary(withNamespace: Bool) throws -> Target {
        let tok = current
        if tok.kind == .name {
            if ["true", "false", "True", "False", "none", "None"].contains(tok.text) {
                throw fail("can't assign to 'const'", tok.pos)
            }
            next()
            if withNamespace, isOp(current, ".") {
                next()
                let attr = try expectName().text
                return .namespaceAttr(tok.text, attr)
            }
            return .name(tok.text)
        }
        if isOp(tok, "(") {
            next()
            let inner = try parseAssignTarget(extraEnd: nil, withNamespace: withNamespace)
            _ = try expectOp(")")
            return inner
        }
        if tok.kind == .string || tok.kind == .integer || tok.kind == .float {
            throw fail("can't assign to 'const'", tok.pos)
        }
        throw fail("unexpected '\(describe(tok))'", tok.pos)
    }

    // MARK: expressions

    private func isTupleEnd(_ extra: [String]?) -> Bool {
        if current.kind == .variableEnd || current.kind == .blockEnd || isOp(current, ")") { return true }
        if let extra { return extra.contains { test(current, $0) } }
        return false
    }

    private mutating func parseTuple(simplified: Bool = false, withCondexpr: Bool = true, extraEnd: [String]? = nil,
                                     explicitParentheses: Bool = false) throws -> Expr {
        let p = current.pos
        var args: [Expr] = []
        var isTuple = false
        while true {
            if !args.isEmpty { _ = try expectOp(",") }
            if isTupleEnd(extraEnd) { break }
            args.append(simplified ? try parsePrimary() : try parseExpression(withCondexpr: withCondexpr))
            if isOp(current, ",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let first = args.first { return first }
            if !explicitParentheses {
                throw fail("Expected an expression, got '\(describe(current))'")
            }
        }
        return .tuple(args, p)
    }

    private mutating func parseExpression(withCondexpr: Bool = true) throws -> Expr {
        withCondexpr ? try parseCondexpr() : try parseOr()
    }

    private mutating func parseCondexpr() throws -> Expr {
        var p = current.pos
        var expr1 = try parseOr()
        var links = 0
        defer { nesting -= links }
        while skipName("if") {
            try enter(); links += 1
            let expr2 = try parseOr()
            var expr3: Expr? = nil
            if skipName("else") { expr3 = try parseCondexpr() }
            expr1 = .condexpr(test: expr2, then: expr1, else: expr3, p)
            p = current.pos
        }
        return expr1
    }

    private mutating func parseOr() throws -> Expr {
        var p = current.pos
        var left = try parseAnd()
        var links = 0
        defer { nesting -= links }
        while skipName("or") {
            try enter(); links += 1
            let right = try parseAnd()
            left = .or(left, right, p)
            p = current.pos
        }
        return left
    }

    private mutating func parseAnd() throws -> Expr {
        var p = current.pos
        var left = try parseNot()
        var links = 0
        defer { nesting -= links }
        while skipName("and") {
            try enter(); links += 1
            let right = try parseNot()
            left = .and(left, right, p)
            p = current.pos
        }
        return left
    }

    private mutating func parseNot() throws -> Expr {
        try enter()
        defer { nesting -= 1 }
        if isName(current, "not") {
            let p = next().pos
            return .not(try parseNot(), p)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws -> Expr {
        let p = current.pos
        let expr = try parseMath1()
        var ops: [(CompareOp, Expr)] = []
        while true {
            if current.kind == .op, let op = CompareOp(rawValue: current.text), op != .in, op != .notin {
                next()
                ops.append((op, try parseMath1()))
            } else if skipName("in") {
                ops.append((.in, try parseMath1()))
            } else if isName(current, "not"), isName(look, "in") {
                next(); next()
                ops.append((.notin, try parseMath1()))
            } else {
                break
            }
        }
        if ops.isEmpty { return expr }
        return .compare(expr, ops, p)
    }

    private mutating func parseMath1() throws -> Expr {
        var p = current.pos
        var left = try parseConcat()
        var links = 0
        defer { nesting -= links }
        while isOp(current, "+") || isOp(current, "-") {
            try enter(); links += 1
            let op: BinaryOp = current.text == "+" ? .add : .sub
            next()
            let right = try parseConcat()
            left = .binary(op, left, right, p)
            p = current.pos
        }
        return left
    }

    private mutating func parseConcat() throws -> Expr {
        let p = current.pos
        var args = [try parseMath2()]
        while isOp(current, "~") {
            next()
            args.append(try parseMath2())
        }
        return args.count == 1 ? args[0] : .concat(args, p)
    }

    private mutating func parseMath2() throws -> Expr {
        var p = current.pos
        var left = try parsePow()
        var links = 0
        defer { nesting -= links }
        while current.kind == .op, ["*", "/", "//", "%"].contains(current.text) {
            try enter(); links += 1
            let op = BinaryOp(rawValue: current.text) ?? .mul
            next()
            let right = try parsePow()
            left = .binary(op, left, right, p)
            p = current.pos
        }
        return left
    }

    private mutating func parsePow() throws -> Expr {
        var p = current.pos
        var left = try parseUnary()
        var links = 0
        defer { nesting -= links }
        while isOp(current, "**") {
            try enter(); links += 1
            next()
            let right = try parseUnary()
            left = .binary(.pow, left, right, p)
            p = current.pos
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        try enter()
        defer { nesting -= 1 }
        let p = current.pos
        var node: Expr
        if isOp(current, "-") {
            next()
            node = .neg(try parseUnary(withFilter: false), p)
        } else if isOp(current, "+") {
            next()
            node = .pos(try parseUnary(withFilter: false), p)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws -> Expr {
        let tok = current
        switch tok.kind {
        case .name:
            next()
            switch tok.text {
            case "true", "True": return .const(.bool(true), tok.pos)
            case "false", "False": return .const(.bool(false), tok.pos)
            case "none", "None": return .const(.none, tok.pos)
            default: return .name(tok.text, tok.pos)
            }
        case .string:
            next()
            var s = tok.text
            while current.kind == .string { s += current.text; next() }
            return .const(.string(s), tok.pos)
        case .integer:
            next()
            return .const(.int(tok.intValue), tok.pos)
        case .float:
            next()
            return .const(.double(tok.doubleValue), tok.pos)
        case .op where tok.text == "(":
            next()
            let e = try parseTuple(explicitParentheses: true)
            _ = try expectOp(")")
            return e
        case .op where tok.text == "[":
            next()
            var items: [Expr] = []
            while !isOp(current, "]") {
                if !items.isEmpty { _ = try expectOp(",") }
                if isOp(current, "]") { break }
                items.append(try parseExpression())
            }
            _ = try expectOp("]")
            return .list(items, tok.pos)
        case .op where tok.text == "{":
            next()
            var items: [(Expr, Expr)] = []
            while !isOp(current, "}") {
                if !items.isEmpty { _ = try expectOp(",") }
                if isOp(current, "}") { break }
                let k = try parseExpression()
                _ = try expectOp(":")
                let v = try parseExpression()
                items.append((k, v))
            }
            _ = try expectOp("}")
            return .dict(items, tok.pos)
        case .eof:
            throw fail("unexpected end of template")
        default:
            throw fail("unexpected '\(describe(tok))'", tok.pos)
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws -> Expr {
        var node = start
        var links = 0
        defer { nesting -= links }
        while true {
            if isOp(current, ".") || isOp(current, "[") || isOp(current, "(") { try enter(); links += 1 }
            if isOp(current, ".") || isOp(current, "[") {
                node = try parseSubscript(node)
            } else if isOp(current, "(") {
                node = try parseCall(node)
            } else {
                break
            }
        }
        return node
    }

    private mutating func parseFilterExpr(_ start: Expr) throws -> Expr {
        var node = start
        var links = 0
        defer { nesting -= links }
        while true {
            if isOp(current, "|") || isName(current, "is") || isOp(current, "(") { try enter(); links += 1 }
            if isOp(current, "|") {
                node = try parseFilter(node) ?? node
            } else if isName(current, "is") {
                node = try parseTest(node)
            } else if isOp(current, "(") {
                node = try parseCall(node)
            } else {
                break
            }
        }
        return node
    }

    private mutating func parseSubscript(_ node: Expr) throws -> Expr {
        let tok = next()
        if isOp(tok, ".") {
            let attr = current
            next()
            if attr.kind == .name { return .getattr(node, attr.text, tok.pos) }
            guard attr.kind == .integer else { throw fail("expected name or number", attr.pos) }
            return .getitem(node, .const(.int(attr.intValue), attr.pos), tok.pos)
        }
        // "["
        var args: [Expr] = []
        while !isOp(current, "]") {
            if !args.isEmpty { _ = try expectOp(",") }
            args.append(try parseSubscribed())
        }
        _ = try expectOp("]")
        if args.count == 1 { return .getitem(node, args[0], tok.pos) }
        return .getitem(node, .tuple(args, tok.pos), tok.pos)
    }

    private mutating func parseSubscribed() throws -> Expr {
        let p = current.pos
        var parts: [Expr?] = []
        if isOp(current, ":") {
            next()
            parts = [nil]
        } else {
            let node = try parseExpression()
            if !isOp(current, ":") { return node }
            next()
            parts = [node]
        }
        if isOp(current, ":") {
            parts.append(nil)
        } else if !isOp(current, "]") && !isOp(current, ",") {
            parts.append(try parseExpression())
        } else {
            parts.append(nil)
        }
        if isOp(current, ":") {
            next()
            if !isOp(current, "]") && !isOp(current, ",") { parts.append(try parseExpression()) } else { parts.append(nil) }
        } else {
            parts.append(nil)
        }
        return .slice(parts[0], parts[1], parts[2], p)
    }

    private mutating func parseCallArgs() throws -> CallArgs {
        let open = try expectOp("(")
        var a = CallArgs()
        var requireComma = false
        func ensure(_ ok: Bool) throws {
            if !ok { throw fail("invalid syntax for function call expression", open.pos) }
        }
        while !isOp(current, ")") {
            if requireComma {
                _ = try expectOp(",")
                if isOp(current, ")") { break }
            }
            if isOp(current, "*") {
                try ensure(a.dynArgs == nil && a.dynKwargs == nil)
                next()
                a.dynArgs = try parseExpression()
            } else if isOp(current, "**") {
                try ensure(a.dynKwargs == nil)
                next()
                a.dynKwargs = try parseExpression()
            } else if current.kind == .name, isOp(look, "=") {
                try ensure(a.dynKwargs == nil)
                let key = current.text
                next(); next()
                a.kwargs.append((key, try parseExpression()))
            } else {
                try ensure(a.dynArgs == nil && a.dynKwargs == nil && a.kwargs.isEmpty)
                a.args.append(try parseExpression())
            }
            requireComma = true
        }
        _ = try expectOp(")")
        return a
    }

    private mutating func parseCall(_ node: Expr) throws -> Expr {
        let args = try parseCallArgs()
        return .call(node, args, node.pos)
    }

    private mutating func parseFilter(_ start: Expr?, startInline: Bool = false) throws -> Expr? {
        var node = start
        var inline = startInline
        var links = 0
        defer { nesting -= links }
        while isOp(current, "|") || inline {
            try enter(); links += 1
            if !inline { next() }
            let tok = try expectName()
            var name = tok.text
            while isOp(current, ".") {
                next()
                name += "." + (try expectName().text)
            }
            let args = isOp(current, "(") ? try parseCallArgs() : CallArgs()
            node = .filter(node, name, args, tok.pos)
            inline = false
        }
        return node
    }

    private mutating func parseTest(_ node: Expr) throws -> Expr {
        let tok = next()  // "is"
        var negated = false
        if isName(current, "not") { next(); negated = true }
        var name = try expectName().text
        while isOp(current, ".") {
            next()
            name += "." + (try expectName().text)
        }
        var args = CallArgs()
        if isOp(current, "(") {
            args = try parseCallArgs()
        } else if (current.kind == .name || current.kind == .string || current.kind == .integer || current.kind == .float
                    || isOp(current, "(") || isOp(current, "[") || isOp(current, "{"))
                    && !isName(current, "else") && !isName(current, "or") && !isName(current, "and") {
            if isName(current, "is") { throw fail("You cannot chain multiple tests with is") }
            var arg = try parsePrimary()
            arg = try parsePostfix(arg)
            args.args = [arg]
        }
        let t = Expr.test(node, name, args, tok.pos)
        return negated ? .not(t, tok.pos) : t
    }
}

/// Names referenced by a macro body (to decide whether it accepts extra positional/keyword arguments).
enum NameScan {
    static func references(_ body: [Stmt]) -> Set<String> {
        var out = Set<String>()
        for s in body { stmt(s, &out) }
        return out
    }

    private static func stmt(_ s: Stmt, _ out: inout Set<String>) {
        switch s {
        case .data, .break, .continue, .needsLoader: break
        case .output(let e): expr(e, &out)
        case .if(let branches, let els):
            for (c, b) in branches { expr(c, &out); b.forEach { stmt($0, &out) } }
            els.forEach { stmt($0, &out) }
        case .for(let f):
            expr(f.iter, &out)
            if let t = f.test { expr(t, &out) }
            f.body.forEach { stmt($0, &out) }
            f.elseBody.forEach { stmt($0, &out) }
        case .set(_, let e, _): expr(e, &out)
        case .setBlock(_, let f, let b, _):
            if let f { expr(f, &out) }
            b.forEach { stmt($0, &out) }
        case .macro: break  // nested macros have their own arguments
        case .callBlock(let c):
            expr(c.call, &out)
            // the caller body is its own macro
        case .filterBlock(let f, let b, _):
            expr(f, &out)
            b.forEach { stmt($0, &out) }
        case .with(let pairs, let b, _):
            pairs.forEach { expr($0.1, &out) }
            b.forEach { stmt($0, &out) }
        case .block(_, let b, _): b.forEach { stmt($0, &out) }
        case .autoescape(let e, let b, _):
            expr(e, &out)
            b.forEach { stmt($0, &out) }
        }
    }

    private static func args(_ a: CallArgs, _ out: inout Set<String>) {
        a.args.forEach { expr($0, &out) }
        a.kwargs.forEach { expr($0.1, &out) }
        if let d = a.dynArgs { expr(d, &out) }
        if let d = a.dynKwargs { expr(d, &out) }
    }

    private static func expr(_ e: Expr, _ out: inout Set<String>) {
        switch e {
        case .const: break
        case .name(let n, _): out.insert(n)
        case .list(let items, _), .tuple(let items, _), .concat(let items, _): items.forEach { expr($0, &out) }
        case .dict(let pairs, _): pairs.forEach { expr($0.0, &out); expr($0.1, &out) }
        case .getattr(let o, _, _): expr(o, &out)
        case .getitem(let o, let k, _): expr(o, &out); expr(k, &out)
        case .slice(let a, let b, let c, _):
            if let a { expr(a, &out) }
            if let b { expr(b, &out) }
            if let c { expr(c, &out) }
        case .call(let f, let a, _): expr(f, &out); args(a, &out)
        case .filter(let o, _, let a, _):
            if let o { expr(o, &out) }
            args(a, &out)
        case .test(let o, _, let a, _): expr(o, &out); args(a, &out)
        case .neg(let o, _), .pos(let o, _), .not(let o, _): expr(o, &out)
        case .binary(_, let a, let b, _), .and(let a, let b, _), .or(let a, let b, _): expr(a, &out); expr(b, &out)
        case .compare(let a, let ops, _): expr(a, &out); ops.forEach { expr($0.1, &out) }
        case .condexpr(let t, let a, let b, _):
            expr(t, &out); expr(a, &out)
            if let b { expr(b, &out) }
        }
    }
}

/// Jinja2 reports unknown filters and tests at compile time, except inside `if` statements and
/// conditional expressions (there they fail only when evaluated).
enum Validator {
    static func check(_ body: [Stmt]) throws {
        for s in body { try stmt(s, soft: false) }
    }

    private static func stmt(_ s: Stmt, soft: Bool) throws {
        switch s {
        case .data, .break, .continue, .needsLoader: break
        case .output(let e): try expr(e, soft)
        case .if(let branches, let els):
            for (c, b) in branches {
                try expr(c, true)
                for x in b { try stmt(x, soft: true) }
            }
            for x in els { try stmt(x, soft: true) }
        case .for(let f):
            try expr(f.iter, soft)
            if let t = f.test { try expr(t, false) }
            for x in f.body { try stmt(x, soft: false) }
            for x in f.elseBody { try stmt(x, soft: false) }
        case .set(_, let e, _): try expr(e, soft)
        case .setBlock(_, let f, let b, _):
            if let f { try expr(f, false) }
            for x in b { try stmt(x, soft: false) }
        case .macro(let m):
            for d in m.defaults { try expr(d, false) }
            for x in m.body { try stmt(x, soft: false) }
        case .callBlock(let c):
            try expr(c.call, soft)
            for d in c.defaults { try expr(d, false) }
            for x in c.body { try stmt(x, soft: false) }
        case .filterBlock(let f, let b, _):
            try expr(f, false)
            for x in b { try stmt(x, soft: false) }
        case .with(let pairs, let b, _):
            for p in pairs { try expr(p.1, soft) }
            for x in b { try stmt(x, soft: false) }
        case .block(_, let b, _):
            for x in b { try stmt(x, soft: false) }
        case .autoescape(let e, let b, _):
            try expr(e, soft)
            for x in b { try stmt(x, soft: soft) }
        }
    }

    private static func args(_ a: CallArgs, _ soft: Bool) throws {
        for x in a.args { try expr(x, soft) }
        for x in a.kwargs { try expr(x.1, soft) }
        if let d = a.dynArgs { try expr(d, soft) }
        if let d = a.dynKwargs { try expr(d, soft) }
    }

    private static func expr(_ e: Expr, _ soft: Bool) throws {
        switch e {
        case .const, .name: break
        case .list(let items, _), .tuple(let items, _), .concat(let items, _):
            for x in items { try expr(x, soft) }
        case .dict(let pairs, _):
            for p in pairs { try expr(p.0, soft); try expr(p.1, soft) }
        case .getattr(let o, _, _): try expr(o, soft)
        case .getitem(let o, let k, _): try expr(o, soft); try expr(k, soft)
        case .slice(let a, let b, let c, _):
            if let a { try expr(a, soft) }
            if let b { try expr(b, soft) }
            if let c { try expr(c, soft) }
        case .call(let f, let a, _): try expr(f, soft); try args(a, soft)
        case .filter(let o, let name, let a, let p):
            if !soft && !Builtins.knownFilters.contains(name) {
                throw TemplateError(kind: .syntax, message: "No filter named '\(name)'.", line: Int(p.line), column: Int(p.col))
            }
            if let o { try expr(o, soft) }
            try args(a, soft)
        case .test(let o, let name, let a, let p):
            if !soft && !Builtins.knownTests.contains(name) {
                throw TemplateError(kind: .syntax, message: "No test named '\(name)'.", line: Int(p.line), column: Int(p.col))
            }
            try expr(o, soft)
            try args(a, soft)
        case .neg(let o, _), .pos(let o, _), .not(let o, _): try expr(o, soft)
        case .binary(_, let a, let b, _), .and(let a, let b, _), .or(let a, let b, _):
            try expr(a, soft); try expr(b, soft)
        case .compare(let a, let ops, _):
            try expr(a, soft)
            for o in ops { try expr(o.1, soft) }
        case .condexpr(let t, let a, let b, _):
            try expr(t, true); try expr(a, true)
            if let b { try expr(b, true) }
        }
    }
}
