// Syntax tree of a parsed template.

enum ConstValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
}

enum BinaryOp: String, Sendable {
    case add = "+", sub = "-", mul = "*", div = "/", floordiv = "//", mod = "%", pow = "**"
}

enum CompareOp: String, Sendable {
    case eq = "==", ne = "!=", lt = "<", lteq = "<=", gt = ">", gteq = ">=", `in` = "in", notin = "not in"
}

struct CallArgs: Sendable {
    var args: [Expr] = []
    var kwargs: [(String, Expr)] = []
    var dynArgs: Expr? = nil
    var dynKwargs: Expr? = nil
}

indirect enum Expr: Sendable {
    case const(ConstValue, Pos)
    case name(String, Pos)
    case list([Expr], Pos)
    case tuple([Expr], Pos)
    case dict([(Expr, Expr)], Pos)
    case getattr(Expr, String, Pos)
    case getitem(Expr, Expr, Pos)
    case slice(Expr?, Expr?, Expr?, Pos)
    case call(Expr, CallArgs, Pos)
    /// `operand|name(args)`; operand nil means "the filter block's body" (filter/set blocks).
    case filter(Expr?, String, CallArgs, Pos)
    case test(Expr, String, CallArgs, Pos)
    case neg(Expr, Pos)
    case pos(Expr, Pos)
    case not(Expr, Pos)
    case binary(BinaryOp, Expr, Expr, Pos)
    case and(Expr, Expr, Pos)
    case or(Expr, Expr, Pos)
    case concat([Expr], Pos)
    case compare(Expr, [(CompareOp, Expr)], Pos)
    case condexpr(test: Expr, then: Expr, else: Expr?, Pos)

    var pos: Pos {
        switch self {
        case .const(_, let p), .name(_, let p), .list(_, let p), .tuple(_, let p), .dict(_, let p),
             .getattr(_, _, let p), .getitem(_, _, let p), .slice(_, _, _, let p), .call(_, _, let p),
             .filter(_, _, _, let p), .test(_, _, _, let p), .neg(_, let p), .pos(_, let p), .not(_, let p),
             .binary(_, _, _, let p), .and(_, _, let p), .or(_, _, let p), .concat(_, let p), .compare(_, _, let p),
             .condexpr(_, _, _, let p):
            return p
        }
    }
}

indirect enum Target: Sendable {
    case name(String)
    case tuple([Target])
    case namespaceAttr(String, String)
}

struct ForNode: Sendable {
    var target: Target
    var iter: Expr
    var body: [Stmt]
    var elseBody: [Stmt]
    var test: Expr?
    var recursive: Bool
    var pos: Pos
}

struct MacroNode: Sendable {
    var name: String
    var params: [String]
    var defaults: [Expr]  // for the last defaults.count params
    var body: [Stmt]
    var catchVarargs: Bool
    var catchKwargs: Bool
    var pos: Pos
}

struct CallBlockNode: Sendable {
    var params: [String]
    var defaults: [Expr]
    var call: Expr
    var body: [Stmt]
    var catchVarargs: Bool
    var catchKwargs: Bool
    var pos: Pos
}

indirect enum Stmt: Sendable {
    case data(String)
    case output(Expr)
    case `if`([(Expr, [Stmt])], [Stmt])
    case `for`(ForNode)
    case set(Target, Expr, Pos)
    case setBlock(Target, Expr?, [Stmt], Pos)
    case macro(MacroNode)
    case callBlock(CallBlockNode)
    case filterBlock(Expr, [Stmt], Pos)
    case with([(Target, Expr)], [Stmt], Pos)
    case block(String, [Stmt], Pos)
    case autoescape(Expr, [Stmt], Pos)
    case `break`(Pos)
    case `continue`(Pos)
    /// extends / include / import / from: need a template loader, which chat templates do not have.
    case needsLoader(String, Pos)
}
