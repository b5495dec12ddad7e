using System.Globalization;
using System.Text;

namespace QuantTools.Core.Models.Graph;

// The Python subset that torch.jit.save writes under code/: classes with annotated attributes and methods, top-level
// functions, assignments (with tuple unpacking), if/else, for over range, return, pass, expression statements, calls,
// attribute access, subscripts, literals, lists and tuples. Parsed into a small AST; anything else is an error that
// names the file and line.

/// <summary>A position in an archive's code: file below <c>code/</c>, 1-based line and the line's text.</summary>
public sealed record SourceLocation(string File, int Line, string Text)
{
    public override string ToString() => $"{File}:{Line}: {Text.Trim()}";
}

internal abstract record Expr(int Line);
internal sealed record NameExpr(int Line, string Name) : Expr(Line);
internal sealed record ConstExpr(int Line, object? Value) : Expr(Line);
internal sealed record AttrExpr(int Line, Expr Target, string Name) : Expr(Line);
internal sealed record CallExpr(int Line, Expr Func, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs) : Expr(Line);
internal sealed record SubscriptExpr(int Line, Expr Target, Expr Index) : Expr(Line);
internal sealed record ListExpr(int Line, IReadOnlyList<Expr> Items) : Expr(Line);
internal sealed record TupleExpr(int Line, IReadOnlyList<Expr> Items) : Expr(Line);
internal sealed record UnaryExpr(int Line, string Op, Expr Operand) : Expr(Line);
internal sealed record BinaryExpr(int Line, string Op, Expr Left, Expr Right) : Expr(Line);
/// <summary>A type annotation kept as text (<c>List[int]</c>); only passed to annotate / unchecked_cast / uninitialized.</summary>
internal sealed record TypeExpr(int Line, string Text) : Expr(Line);

internal abstract record Stmt(int Line);
internal sealed record AssignStmt(int Line, IReadOnlyList<Expr> Targets, bool Unpack, Expr Value) : Stmt(Line);
internal sealed record ExprStmt(int Line, Expr Value) : Stmt(Line);
internal sealed record ReturnStmt(int Line, Expr? Value) : Stmt(Line);
internal sealed record PassStmt(int Line) : Stmt(Line);
internal sealed record IfStmt(int Line, Expr Cond, IReadOnlyList<Stmt> Then, IReadOnlyList<Stmt> Else) : Stmt(Line);
internal sealed record ForStmt(int Line, IReadOnlyList<string> Targets, Expr Iter, IReadOnlyList<Stmt> Body) : Stmt(Line);

internal sealed record Param(string Name, Expr? Default);

internal sealed class FunctionDef
{
    public required string Name { get; init; }
    public required IReadOnlyList<Param> Params { get; init; }
    public required IReadOnlyList<Stmt> Body { get; init; }
    public required string File { get; init; }
    public required int Line { get; init; }
}

internal sealed class ClassDef
{
    public required string Name { get; init; }
    public Dictionary<string, FunctionDef> Methods { get; } = new(StringComparer.Ordinal);
    /// <summary>Class-level constants (<c>max_val : Final[float] = 6.</c>).</summary>
    public Dictionary<string, Expr> Constants { get; } = new(StringComparer.Ordinal);
}

internal sealed class CodeFile
{
    public required string File { get; init; }
    public required string[] Lines { get; init; }
    public Dictionary<string, ClassDef> Classes { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, FunctionDef> Functions { get; } = new(StringComparer.Ordinal);

    public SourceLocation Location(int line) => new(File, line, line >= 1 && line <= Lines.Length ? Lines[line - 1] : "");
}

internal enum Tok { Name, Number, String, Op, Newline, Indent, Dedent, End }

internal readonly record struct Token(Tok Kind, string Text, int Line, object? Value = null);

internal static class TorchScriptLexer
{
    private static readonly string[] Ops3 = ["**=", "//=", "..."];
    private static readonly string[] Ops2 = ["->", "==", "!=", "<=", ">=", "//", "**", "+=", "-=", "*=", "/=", "<<", ">>"];
    private const string Ops1 = "()[]{},:.=+-*/%<>@|&^~";

    public static List<Token> Lex(string text, string file)
    {
        var toks = new List<Token>();
        var indents = new Stack<int>();
        indents.Push(0);
        int depth = 0, line = 1, i = 0;
        bool atLineStart = true;
        QuantToolsException Err(string m) => new(ErrorCode.UnsupportedOperator, $"TorchScript syntax: {m}", $"{file}:{line}");
        while (i < text.Length)
        {
            if (atLineStart && depth == 0)
            {
                int col = 0, j = i;
                while (j < text.Length && (text[j] == ' ' || text[j] == '\t')) { col += text[j] == '\t' ? 8 - col % 8 : 1; j++; }
                if (j >= text.Length) { i = j; break; }
                if (text[j] == '\n' || text[j] == '\r' || text[j] == '#')
                {
                    while (j < text.Length && text[j] != '\n') j++;
                    if (j < text.Length) { j++; line++; }
                    i = j;
                    continue;
                }
                i = j;
                atLineStart = false;
                if (col > indents.Peek()) { indents.Push(col); toks.Add(new Token(Tok.Indent, "", line)); }
                else
                {
                    while (col < indents.Peek()) { indents.Pop(); toks.Add(new Token(Tok.Dedent, "", line)); }
                    if (col != indents.Peek()) throw Err("inconsistent indentation");
                }
            }
            char c = text[i];
            if (c == '\n')
            {
                if (depth == 0) { toks.Add(new Token(Tok.Newline, "", line)); atLineStart = true; }
                line++;
                i++;
                continue;
            }
            if (c is ' ' or '\t' or '\r') { i++; continue; }
            if (c == '\\' && i + 1 < text.Length && text[i + 1] == '\n') { i += 2; line++; continue; }
            if (c == '#') { while (i < text.Length && text[i] != '\n') i++; continue; }
            if (char.IsLetter(c) || c == '_')
            {
                int s = i;
                while (i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] == '_')) i++;
                toks.Add(new Token(Tok.Name, text[s..i], line));
                continue;
            }
            if (char.IsDigit(c) || (c == '.' && i + 1 < text.Length && char.IsDigit(text[i + 1])))
            {
                int s = i;
                bool isFloat = false;
                if (c == '0' && i + 1 < text.Length && (text[i + 1] is 'x' or 'X'))
                {
                    i += 2;
                    while (i < text.Length && Uri.IsHexDigit(text[i])) i++;
                    toks.Add(new Token(Tok.Number, text[s..i], line, Convert.ToInt64(text[(s + 2)..i], 16)));
                    continue;
                }
                while (i < text.Length && (char.IsDigit(text[i]) || text[i] == '.' || text[i] is 'e' or 'E' ||
                       ((text[i] is '+' or '-') && text[i - 1] is 'e' or 'E')))
                {
                    if (text[i] is '.' or 'e' or 'E') isFloat = true;
                    i++;
                }
                var num = text[s..i];
                object v = isFloat
                    ? (object)double.Parse(num.EndsWith('.') ? num + "0" : num, NumberStyles.Float, CultureInfo.InvariantCulture)
                    : (object)long.Parse(num, CultureInfo.InvariantCulture);
                toks.Add(new Token(Tok.Number, num, line, v));
                continue;
            }
            if (c is '"' or '\'')
            {
                var sb = new StringBuilder();
                int s = i;
                i++;
                while (true)
                {
                    if (i >= text.Length || text[i] == '\n') throw Err("unterminated string");
                    char d = text[i];
                    if (d == c) { i++; break; }
                    if (d == '\\' && i + 1 < text.Length)
                    {
                        char e = text[i + 1];
                        sb.Append(e switch { 'n' => '\n', 't' => '\t', 'r' => '\r', '0' => '\0', _ => e });
                        i += 2;
                        continue;
                    }
                    sb.Append(d);
                    i++;
                }
                toks.Add(new Token(Tok.String, text[s..i], line, sb.ToString()));
                continue;
            }
            string? op = Ops3.FirstOrDefault(o => string.CompareOrdinal(text, i, o, 0, 3) == 0)
                         ?? Ops2.FirstOrDefault(o => string.CompareOrdinal(text, i, o, 0, 2) == 0)
                         ?? (Ops1.Contains(c) ? c.ToString() : null);
            if (op is null) throw Err($"unexpected character '{c}'");
            if (op is "(" or "[" or "{") depth++;
            if (op is ")" or "]" or "}") depth = Math.Max(0, depth - 1);
            toks.Add(new Token(Tok.Op, op, line));
            i += op.Length;
        }
        if (!atLineStart) toks.Add(new Token(Tok.Newline, "", line));
        while (indents.Count > 1) { indents.Pop(); toks.Add(new Token(Tok.Dedent, "", line)); }
        toks.Add(new Token(Tok.End, "", line));
        return toks;
    }
}

internal sealed class TorchScriptParser
{
    private readonly List<Token> _t;
    private readonly CodeFile _file;
    private int _p;

    private TorchScriptParser(List<Token> tokens, CodeFile file)
    {
        _t = tokens;
        _file = file;
    }

    /// <summary>Parses one code file (classes and top-level functions).</summary>
    public static CodeFile ParseFile(string file, string text)
    {
        var cf = new CodeFile { File = file, Lines = text.Split('\n') };
        var p = new TorchScriptParser(TorchScriptLexer.Lex(text, file), cf);
        p.ParseTop();
        return cf;
    }

    private Token Cur => _t[_p];
    private Token Next() => _t[_p++];
    private bool IsOp(string s) => Cur.Kind == Tok.Op && Cur.Text == s;
    private bool IsName(string s) => Cur.Kind == Tok.Name && Cur.Text == s;

    private QuantToolsException Err(string msg, int? line = null)
    {
        var loc = _file.Location(line ?? Cur.Line);
        return new QuantToolsException(ErrorCode.UnsupportedOperator, $"TorchScript syntax: {msg} (at {loc})", $"{loc.File}:{loc.Line}");
    }

    private void ExpectOp(string s)
    {
        if (!IsOp(s)) throw Err($"expected '{s}', found '{Cur.Text}'");
        _p++;
    }

    private string ExpectName()
    {
        if (Cur.Kind != Tok.Name) throw Err($"expected a name, found '{Cur.Text}'");
        return Next().Text;
    }

    private void SkipNewlines()
    {
        while (Cur.Kind == Tok.Newline) _p++;
    }

    private void ParseTop()
    {
        while (true)
        {
            SkipNewlines();
            if (Cur.Kind == Tok.End) return;
            if (IsName("class")) ParseClass();
            else if (IsName("def"))
            {
                var f = ParseDef();
                _file.Functions[f.Name] = f;
            }
            else if (IsName("import") || IsName("from")) SkipLine();
            else SkipStatementOrBlock();
        }
    }

    private void SkipLine()
    {
        while (Cur.Kind is not (Tok.Newline or Tok.End)) _p++;
        if (Cur.Kind == Tok.Newline) _p++;
    }

    private void SkipStatementOrBlock()
    {
        SkipLine();
        if (Cur.Kind == Tok.Indent) SkipBlock();
    }

    private void SkipBlock()
    {
        int depth = 0;
        do
        {
            if (Cur.Kind == Tok.Indent) depth++;
            else if (Cur.Kind == Tok.Dedent) depth--;
            else if (Cur.Kind == Tok.End) return;
            _p++;
        } while (depth > 0);
    }

    private void ParseClass()
    {
        _p++;
        var cls = new ClassDef { Name = ExpectName() };
        _file.Classes[cls.Name] = cls;
        // bases
        while (!IsOp(":")) { if (Cur.Kind == Tok.End) throw Err("bad class header"); _p++; }
        _p++;
        if (Cur.Kind != Tok.Newline) { SkipLine(); return; }
        _p++;
        if (Cur.Kind != Tok.Indent) return;
        _p++;
        while (Cur.Kind is not (Tok.Dedent or Tok.End))
        {
            if (Cur.Kind == Tok.Newline) { _p++; continue; }
            if (IsName("def"))
            {
                var f = ParseDef();
                cls.Methods[f.Name] = f;
                continue;
            }
            // `name : Type = value` (Final constants) or `name : Type`; anything else in a class body is skipped.
            if (Cur.Kind == Tok.Name && _t[_p + 1].Kind == Tok.Op && _t[_p + 1].Text == ":")
            {
                string name = Next().Text;
                _p++;
                SkipType();
                if (IsOp("="))
                {
                    _p++;
                    int save = _p;
                    try
                    {
                        cls.Constants[name] = ParseExpr();
                    }
                    catch (QuantToolsException)
                    {
                        _p = save;
                    }
                }
                SkipLine();
                continue;
            }
            SkipStatementOrBlock();
        }
        if (Cur.Kind == Tok.Dedent) _p++;
    }

    /// <summary>Skips a type annotation up to ',' ')' '=' or ':' (or end of line) at bracket depth 0.</summary>
    private string SkipType()
    {
        int depth = 0, start = _p;
        while (Cur.Kind != Tok.End && Cur.Kind != Tok.Newline)
        {
            if (Cur.Kind == Tok.Op)
            {
                if (Cur.Text is "[" or "(") depth++;
                else if (Cur.Text is "]" or ")") { if (depth == 0) break; depth--; }
                else if (depth == 0 && Cur.Text is "," or "=" or ":") break;
            }
            _p++;
        }
        return string.Concat(_t.Skip(start).Take(_p - start).Select(x => x.Text + (x.Text == "," ? " " : "")));
    }

    private FunctionDef ParseDef()
    {
        int line = Cur.Line;
        _p++;
        string name = ExpectName();
        ExpectOp("(");
        var ps = new List<Param>();
        while (!IsOp(")"))
        {
            if (IsOp("*")) { _p++; if (IsOp(",")) _p++; continue; }
            string pn = ExpectName();
            if (IsOp(":")) { _p++; SkipType(); }
            Expr? def = null;
            if (IsOp("=")) { _p++; def = ParseExpr(); }
            ps.Add(new Param(pn, def));
            if (IsOp(",")) _p++;
            else if (!IsOp(")")) throw Err($"bad parameter list of {name}");
        }
        _p++;
        if (IsOp("->")) { _p++; SkipType(); }
        ExpectOp(":");
        var body = ParseSuite();
        return new FunctionDef { Name = name, Params = ps, Body = body, File = _file.File, Line = line };
    }

    private List<Stmt> ParseSuite()
    {
        var list = new List<Stmt>();
        if (Cur.Kind != Tok.Newline)
        {
            list.Add(ParseSimple());
            return list;
        }
        _p++;
        SkipNewlines();
        if (Cur.Kind != Tok.Indent) throw Err("expected an indented block");
        _p++;
        while (Cur.Kind is not (Tok.Dedent or Tok.End))
        {
            if (Cur.Kind == Tok.Newline) { _p++; continue; }
            list.Add(ParseStmt());
        }
        if (Cur.Kind == Tok.Dedent) _p++;
        return list;
    }

    private Stmt ParseStmt()
    {
        int line = Cur.Line;
        if (IsName("if")) return ParseIf();
        if (IsName("for"))
        {
            _p++;
            var targets = new List<string> { ExpectName() };
            while (IsOp(",")) { _p++; if (IsName("in")) break; targets.Add(ExpectName()); }
            if (!IsName("in")) throw Err("expected 'in'");
            _p++;
            var iter = ParseExpr();
            ExpectOp(":");
            return new ForStmt(line, targets, iter, ParseSuite());
        }
        if (IsName("while") || IsName("with") || IsName("try") || IsName("def") || IsName("class") || IsName("raise") ||
            IsName("break") || IsName("continue") || IsName("del") || IsName("global") || IsName("assert") || IsName("yield"))
            throw Err($"'{Cur.Text}' statements are not supported");
        return ParseSimple();
    }

    private IfStmt ParseIf()
    {
        int line = Cur.Line;
        _p++;
        var cond = ParseExpr();
        ExpectOp(":");
        var then = ParseSuite();
        SkipNewlines();
        List<Stmt> els = new();
        if (IsName("elif")) els.Add(ParseIf());
        else if (IsName("else"))
        {
            _p++;
            ExpectOp(":");
            els = ParseSuite();
        }
        return new IfStmt(line, cond, then, els);
    }

    private Stmt ParseSimple()
    {
        int line = Cur.Line;
        Stmt s;
        if (IsName("pass")) { _p++; s = new PassStmt(line); }
        else if (IsName("return"))
        {
            _p++;
            Expr? v = Cur.Kind == Tok.Newline ? null : ParseExprList(out _);
            s = new ReturnStmt(line, v);
        }
        else
        {
            var first = ParseExprList(out bool isTuple);
            if (IsOp("="))
            {
                _p++;
                var value = ParseExprList(out _);
                if (IsOp("=")) throw Err("chained assignment is not supported");
                var targets = isTuple && first is TupleExpr te ? te.Items : [first];
                s = new AssignStmt(line, targets, isTuple, value);
            }
            else if (Cur.Kind == Tok.Op && Cur.Text.EndsWith('=') && Cur.Text.Length >= 2 && Cur.Text is not ("==" or "!=" or "<=" or ">="))
                throw Err($"augmented assignment '{Cur.Text}' is not supported");
            else if (IsOp(":"))
            {
                // annotated assignment `x : T = v`
                _p++;
                SkipType();
                if (!IsOp("=")) { SkipLine(); return new PassStmt(line); }
                _p++;
                s = new AssignStmt(line, [first], false, ParseExprList(out _));
            }
            else s = new ExprStmt(line, first);
        }
        if (Cur.Kind == Tok.Newline) _p++;
        else if (Cur.Kind is not (Tok.End or Tok.Dedent)) throw Err($"unexpected '{Cur.Text}'");
        return s;
    }

    /// <summary>expr (',' expr)* [','] — a bare tuple when a comma appears.</summary>
    private Expr ParseExprList(out bool isTuple)
    {
        int line = Cur.Line;
        var first = ParseExpr();
        isTuple = false;
        if (!IsOp(",")) return first;
        isTuple = true;
        var items = new List<Expr> { first };
        while (IsOp(","))
        {
            _p++;
            if (Cur.Kind == Tok.Newline || IsOp("=") || IsOp(")")) break;
            items.Add(ParseExpr());
        }
        return new TupleExpr(line, items);
    }

    private Expr ParseExpr() => ParseOr();

    private Expr ParseOr()
    {
        var l = ParseAnd();
        while (IsName("or")) { int ln = Next().Line; l = new BinaryExpr(ln, "or", l, ParseAnd()); }
        return l;
    }

    private Expr ParseAnd()
    {
        var l = ParseNot();
        while (IsName("and")) { int ln = Next().Line; l = new BinaryExpr(ln, "and", l, ParseNot()); }
        return l;
    }

    private Expr ParseNot()
    {
        if (IsName("not")) { int ln = Next().Line; return new UnaryExpr(ln, "not", ParseNot()); }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var l = ParseArith();
        while (true)
        {
            if (Cur.Kind == Tok.Op && Cur.Text is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                var op = Next();
                l = new BinaryExpr(op.Line, op.Text, l, ParseArith());
            }
            else if (IsName("is"))
            {
                int ln = Next().Line;
                string op = "is";
                if (IsName("not")) { _p++; op = "is not"; }
                l = new BinaryExpr(ln, op, l, ParseArith());
            }
            else if (IsName("in")) { int ln = Next().Line; l = new BinaryExpr(ln, "in", l, ParseArith()); }
            else return l;
        }
    }

    private Expr ParseArith()
    {
        var l = ParseTerm();
        while (Cur.Kind == Tok.Op && Cur.Text is "+" or "-")
        {
            var op = Next();
            l = new BinaryExpr(op.Line, op.Text, l, ParseTerm());
        }
        return l;
    }

    private Expr ParseTerm()
    {
        var l = ParseUnary();
        while (Cur.Kind == Tok.Op && Cur.Text is "*" or "/" or "//" or "%")
        {
            var op = Next();
            l = new BinaryExpr(op.Line, op.Text, l, ParseUnary());
        }
        return l;
    }

    private Expr ParseUnary()
    {
        if (Cur.Kind == Tok.Op && Cur.Text is "-" or "+")
        {
            var op = Next();
            var e = ParseUnary();
            if (op.Text == "+") return e;
            if (e is ConstExpr { Value: long l }) return new ConstExpr(op.Line, -l);
            if (e is ConstExpr { Value: double d }) return new ConstExpr(op.Line, -d);
            return new UnaryExpr(op.Line, "-", e);
        }
        return ParsePostfix(ParseAtom());
    }

    private Expr ParsePostfix(Expr e)
    {
        while (true)
        {
            if (IsOp("."))
            {
                _p++;
                e = new AttrExpr(e.Line, e, ExpectName());
            }
            else if (IsOp("("))
            {
                int line = Next().Line;
                var args = new List<Expr>();
                var kw = new List<(string, Expr)>();
                while (!IsOp(")"))
                {
                    if (Cur.Kind == Tok.Name && _t[_p + 1].Kind == Tok.Op && _t[_p + 1].Text == "=")
                    {
                        string n = Next().Text;
                        _p++;
                        kw.Add((n, ParseExpr()));
                    }
                    else if (IsOp("*")) throw Err("star arguments are not supported");
                    else args.Add(args.Count == 0 && kw.Count == 0 ? ParseCallArg(e) : ParseExpr());
                    if (IsOp(",")) _p++;
                    else if (!IsOp(")")) throw Err($"expected ',' or ')' in a call, found '{Cur.Text}'");
                }
                _p++;
                e = new CallExpr(line, e, args, kw);
            }
            else if (IsOp("["))
            {
                int line = Next().Line;
                if (e is NameExpr { Name: "List" or "Tuple" or "Optional" or "Dict" or "Final" or "Union" })
                {
                    // a type in expression position (annotate(List[int], ...))
                    _p--;
                    var text = ((NameExpr)e).Name + SkipBracketed();
                    e = new TypeExpr(line, text);
                    continue;
                }
                var idx = ParseExprList(out _);
                if (IsOp(":")) throw Err("slices are not supported");
                ExpectOp("]");
                e = new SubscriptExpr(line, e, idx);
            }
            else return e;
        }
    }

    private Expr ParseCallArg(Expr func)
    {
        // annotate(T, v) / unchecked_cast(T, v) / uninitialized(T) take a type as their first argument.
        if (func is NameExpr { Name: "annotate" or "unchecked_cast" or "uninitialized" or "isinstance" } && Cur.Kind == Tok.Name)
        {
            int line = Cur.Line;
            var text = SkipType();
            return new TypeExpr(line, text);
        }
        return ParseExpr();
    }

    private string SkipBracketed()
    {
        var sb = new StringBuilder();
        int depth = 0;
        do
        {
            if (Cur.Kind == Tok.End) throw Err("unbalanced brackets");
            if (IsOp("[")) depth++;
            else if (IsOp("]")) depth--;
            sb.Append(Cur.Text);
            _p++;
        } while (depth > 0);
        return sb.ToString();
    }

    private Expr ParseAtom()
    {
        var t = Cur;
        switch (t.Kind)
        {
            case Tok.Number:
                _p++;
                return new ConstExpr(t.Line, t.Value);
            case Tok.String:
            {
                _p++;
                var s = (string)t.Value!;
                while (Cur.Kind == Tok.String) s += (string)Next().Value!;
                return new ConstExpr(t.Line, s);
            }
            case Tok.Name:
                _p++;
                return t.Text switch
                {
                    "None" => new ConstExpr(t.Line, null),
                    "True" => new ConstExpr(t.Line, true),
                    "False" => new ConstExpr(t.Line, false),
                    "lambda" => throw Err("lambda is not supported"),
                    _ => new NameExpr(t.Line, t.Text),
                };
            case Tok.Op when t.Text == "(":
            {
                _p++;
                if (IsOp(")")) { _p++; return new TupleExpr(t.Line, []); }
                var e = ParseExprList(out bool tuple);
                ExpectOp(")");
                return tuple ? e : e;
            }
            case Tok.Op when t.Text == "[":
            {
                _p++;
                var items = new List<Expr>();
                while (!IsOp("]"))
                {
                    items.Add(ParseExpr());
                    if (IsName("for")) throw Err("list comprehensions are not supported");
                    if (IsOp(",")) _p++;
                    else if (!IsOp("]")) throw Err("expected ',' or ']'");
                }
                _p++;
                return new ListExpr(t.Line, items);
            }
            case Tok.Op when t.Text == "{":
                throw Err("dict literals are not supported");
            default:
                throw Err($"unexpected '{t.Text}'");
        }
    }
}
