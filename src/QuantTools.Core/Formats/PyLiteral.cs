using System.Text;

namespace QuantTools.Core.Formats;

/// <summary>A Python tuple as parsed from a literal (distinct from a list).</summary>
internal sealed class PyTuple(List<object?> items)
{
    public List<object?> Items { get; } = items;
}

/// <summary>
/// A small strict parser for the subset of Python literal syntax found in .npy headers:
/// dicts, tuples, lists, str ('..' or ".."), int, True/False/None. No evaluation, bounded nesting.
/// Produces Dictionary&lt;string, object?&gt; (string keys only, insertion ordered), PyTuple, List&lt;object?&gt;,
/// string, long, bool, null. Any deviation is a <see cref="FormatException"/> with the offset.
/// </summary>
internal sealed class PyLiteral
{
    private const int MaxDepth = 16;
    private readonly string _s;
    private int _i;

    private PyLiteral(string s) { _s = s; }

    /// <summary>Parses one literal; only whitespace may follow it.</summary>
    public static object? Parse(string s)
    {
        var p = new PyLiteral(s);
        p.SkipWs();
        var v = p.Value(0);
        p.SkipWs();
        if (p._i != s.Length)
            throw p.Error($"unexpected '{Show(s[p._i])}' after the literal");
        return v;
    }

    private FormatException Error(string what) => new($"{what} at offset {_i}");

    private static string Show(char c) => c < 0x20 || c > 0x7e ? $"\\x{(int)c:x2}" : c.ToString();

    private void SkipWs()
    {
        while (_i < _s.Length && _s[_i] is ' ' or '\t' or '\n' or '\r' or '\f' or '\v') _i++;
    }

    private char Peek() => _i < _s.Length ? _s[_i] : '\0';

    private object? Value(int depth)
    {
        if (depth > MaxDepth) throw Error($"nesting deeper than {MaxDepth}");
        if (_i >= _s.Length) throw Error("unexpected end of header");
        char c = _s[_i];
        switch (c)
        {
            case '{': return Dict(depth);
            case '(': return Sequence(depth, ')', tuple: true);
            case '[': return Sequence(depth, ']', tuple: false);
            case '\'' or '"': return Str();
        }
        if (c is '-' or '+' || char.IsAsciiDigit(c)) return Int();
        if (char.IsAsciiLetter(c) || c == '_')
        {
            int start = _i;
            while (_i < _s.Length && (char.IsAsciiLetterOrDigit(_s[_i]) || _s[_i] == '_')) _i++;
            var word = _s[start.._i];
            return word switch
            {
                "True" => true,
                "False" => false,
                "None" => null,
                _ => throw new FormatException($"unexpected name '{Truncate(word)}' at offset {start} (only True, False and None are literals)"),
            };
        }
        throw Error($"unexpected '{Show(c)}'");
    }

    private static string Truncate(string s) => s.Length > 40 ? s[..40] + "..." : s;

    private Dictionary<string, object?> Dict(int depth)
    {
        _i++; // {
        var d = new Dictionary<string, object?>(StringComparer.Ordinal);
        while (true)
        {
            SkipWs();
            if (Peek() == '}') { _i++; return d; }
            int keyAt = _i;
            if (Peek() is not ('\'' or '"')) throw Error("expected a string key or '}'");
            var key = Str();
            SkipWs();
            if (Peek() != ':') throw Error("expected ':' after a dict key");
            _i++;
            SkipWs();
            var v = Value(depth + 1);
            if (!d.TryAdd(key, v)) throw new FormatException($"key '{Truncate(key)}' appears twice (offset {keyAt})");
            SkipWs();
            if (Peek() == ',') { _i++; continue; }
            if (Peek() == '}') { _i++; return d; }
            throw Error("expected ',' or '}' in a dict");
        }
    }

    private object Sequence(int depth, char close, bool tuple)
    {
        _i++;
        var items = new List<object?>();
        bool sawComma = false;
        while (true)
        {
            SkipWs();
            if (Peek() == close) { _i++; break; }
            items.Add(Value(depth + 1));
            SkipWs();
            if (Peek() == ',') { _i++; sawComma = true; continue; }
            if (Peek() == close) { _i++; break; }
            throw Error($"expected ',' or '{close}'");
        }
        if (!tuple) return items;
        // "(5)" is just a parenthesised int in Python, not a tuple.
        if (items.Count == 1 && !sawComma) return items[0]!;
        return new PyTuple(items);
    }

    private string Str()
    {
        char q = _s[_i++];
        var sb = new StringBuilder();
        while (true)
        {
            if (_i >= _s.Length) throw Error("unterminated string");
            char c = _s[_i++];
            if (c == q) return sb.ToString();
            if (c is '\n' or '\r') throw Error("newline inside a string");
            if (c != '\\') { sb.Append(c); continue; }
            if (_i >= _s.Length) throw Error("unterminated escape");
            char e = _s[_i++];
            switch (e)
            {
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '0': sb.Append('\0'); break;
                default: throw Error($"unsupported escape '\\{Show(e)}'");
            }
        }
    }

    private long Int()
    {
        int start = _i;
        bool neg = false;
        if (_s[_i] is '-' or '+') { neg = _s[_i] == '-'; _i++; SkipWs(); }
        if (!char.IsAsciiDigit(Peek())) throw Error("expected digits");
        if (Peek() == '0' && _i + 1 < _s.Length && char.IsAsciiDigit(_s[_i + 1]))
            throw Error("leading zeros are not allowed in an int");
        long v = 0;
        while (_i < _s.Length && (char.IsAsciiDigit(_s[_i]) || _s[_i] == '_'))
        {
            if (_s[_i] == '_') { _i++; continue; }
            int digit = _s[_i++] - '0';
            if (v > (long.MaxValue - digit) / 10)
                throw new FormatException($"integer '{Truncate(_s[start..Math.Min(_s.Length, start + 40)])}' at offset {start} is too large");
            v = v * 10 + digit;
        }
        if (_i < _s.Length && _s[_i] == 'L') _i++; // Python 2 long suffix, as numpy tolerates in v1/v2 headers
        if (_i < _s.Length && (_s[_i] is '.' or 'e' or 'E' or 'x' or 'X' or 'j' or 'J' || char.IsAsciiLetter(_s[_i])))
            throw Error("only plain integers are allowed");
        return neg ? -v : v;
    }
}
