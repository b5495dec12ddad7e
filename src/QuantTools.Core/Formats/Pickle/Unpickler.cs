using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace QuantTools.Core.Formats.Pickle;

/// <summary>
/// A pickle virtual machine for protocols 0-5 that never runs code: every global goes through a
/// <see cref="PickleResolver"/> allow-list. The VM is iterative (no recursion), every length is checked against
/// the bytes that remain before anything is allocated, the memo is sparse, and the result is checked for
/// nesting depth, so hostile input ends in a <see cref="QuantToolsException"/>.
/// </summary>
/// <remarks>
/// Values: None → null, bool, int → long (or <see cref="BigInteger"/> beyond 64 bits), float → double,
/// str → string, bytes → byte[], list → List&lt;object?&gt;, tuple → object?[], dict / OrderedDict → <see cref="PyDict"/>,
/// set → <see cref="PySet"/>, allow-listed classes → <see cref="PickleObject"/>, plus whatever the resolver returns.
/// </remarks>
public sealed class Unpickler
{
    /// <summary>Deepest container nesting accepted in a result (and deepest MARK nesting while reading).</summary>
    public const int MaxDepth = 1000;

    private readonly byte[] _data;
    private readonly int _end;
    private int _pos;
    private readonly PickleResolver _resolver;
    private readonly string _what;
    private readonly string? _target;

    private readonly List<object?> _stack = new();
    private readonly List<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = new();
    private int _opPos;

    /// <param name="data">The buffer holding the pickle.</param>
    /// <param name="offset">Where the pickle starts.</param>
    /// <param name="length">Bytes available to it (it may end earlier, at STOP).</param>
    /// <param name="resolver">The allow-list; <see cref="PickleResolver"/> itself accepts only harmless builtins.</param>
    /// <param name="what">Names the pickle in messages (e.g. <c>data.pkl</c>).</param>
    /// <param name="target">The file path, for <see cref="QuantToolsException.Target"/>.</param>
    public Unpickler(byte[] data, int offset, int length, PickleResolver resolver, string what = "pickle", string? target = null)
    {
        if (offset < 0 || length < 0 || (long)offset + length > data.Length) throw new ArgumentOutOfRangeException(nameof(length));
        _data = data;
        _pos = offset;
        _end = offset + length;
        _resolver = resolver;
        _what = what;
        _target = target;
    }

    /// <summary>Position just after the STOP opcode once <see cref="Load"/> returned.</summary>
    public int Position => _pos;

    public static object? Load(byte[] data, PickleResolver? resolver = null, string what = "pickle", string? target = null) =>
        new Unpickler(data, 0, data.Length, resolver ?? new PickleResolver(), what, target).Load();

    public object? Load()
    {
        try
        {
            var result = Run();
            CheckDepth(result);
            return result;
        }
        catch (QuantToolsException e)
        {
            if (e.Target is not null) throw;
            throw new QuantToolsException(e.Code, $"{_what} at byte {_opPos}: {e.Message}", _target, e);
        }
        catch (Exception e) when (e is InvalidCastException or ArgumentException or OverflowException or FormatException
                                       or IndexOutOfRangeException or KeyNotFoundException or InvalidOperationException)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile, $"{_what} at byte {_opPos}: malformed pickle ({e.Message})", _target, e);
        }
    }

    private object? Run()
    {
        while (true)
        {
            _opPos = _pos;
            byte op = ReadByte();
            switch (op)
            {
                case (byte)'(': // MARK
                    if (_marks.Count >= MaxDepth) throw Corrupt($"MARKs nested deeper than {MaxDepth} levels");
                    _marks.Add(_stack.Count);
                    break;
                case (byte)'.': // STOP
                    if (_stack.Count != 1) throw Corrupt($"STOP with {_stack.Count} values on the stack (expected 1)");
                    return _stack[0];
                case (byte)'0': Pop(); break; // POP
                case (byte)'1': PopMark(); break; // POP_MARK
                case (byte)'2': Push(Peek()); break; // DUP
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case (byte)'I': // INT
                {
                    var line = ReadLine();
                    Push(line switch { "00" => false, "01" => true, _ => ParseInt(line) });
                    break;
                }
                case (byte)'L': // LONG
                {
                    var line = ReadLine();
                    Push(ParseInt(line.EndsWith('L') ? line[..^1] : line));
                    break;
                }
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadSpan(4))); break; // BININT
                case (byte)'K': Push((long)ReadByte()); break; // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadSpan(2))); break; // BININT2
                case 0x8a: Push(DecodeLong(ReadSpan(ReadByte()))); break; // LONG1
                case 0x8b: Push(DecodeLong(ReadSpan(ReadLength4Signed()))); break; // LONG4
                case (byte)'F': // FLOAT
                {
                    var line = ReadLine();
                    if (!double.TryParse(line, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
                        d = line switch { "inf" => double.PositiveInfinity, "-inf" => double.NegativeInfinity, "nan" => double.NaN, _ => throw Corrupt($"FLOAT '{Short(line)}' is not a number") };
                    Push(d);
                    break;
                }
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(ReadSpan(8))); break; // BINFLOAT
                case (byte)'S': Push(DecodeQuotedString(ReadLine())); break; // STRING
                case (byte)'T': Push(Encoding.Latin1.GetString(ReadSpan(ReadLength4Signed()))); break; // BINSTRING
                case (byte)'U': Push(Encoding.Latin1.GetString(ReadSpan(ReadByte()))); break; // SHORT_BINSTRING
                case (byte)'V': Push(DecodeRawUnicodeEscape(ReadLine())); break; // UNICODE
                case (byte)'X': Push(Utf8(ReadSpan(ReadLength4()))); break; // BINUNICODE
                case 0x8c: Push(Utf8(ReadSpan(ReadByte()))); break; // SHORT_BINUNICODE
                case 0x8d: Push(Utf8(ReadSpan(ReadLength8()))); break; // BINUNICODE8
                case (byte)'B': Push(ReadSpan(ReadLength4()).ToArray()); break; // BINBYTES
                case (byte)'C': Push(ReadSpan(ReadByte()).ToArray()); break; // SHORT_BINBYTES
                case 0x8e: Push(ReadSpan(ReadLength8()).ToArray()); break; // BINBYTES8
                case 0x96: Push(ReadSpan(ReadLength8()).ToArray()); break; // BYTEARRAY8
                case 0x97: throw new QuantToolsException(ErrorCode.NotSupported, "NEXT_BUFFER: out-of-band pickle buffers are not supported");
                case 0x98: break; // READONLY_BUFFER: no-op on our byte[]
                case (byte)')': Push(Array.Empty<object?>()); break; // EMPTY_TUPLE
                case (byte)'t': Push(PopMark().ToArray()); break; // TUPLE
                case 0x85: Push(new[] { Pop() }); break; // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; } // TUPLE2
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; } // TUPLE3
                case (byte)']': Push(new List<object?>()); break; // EMPTY_LIST
                case (byte)'l': Push(PopMark()); break; // LIST
                case (byte)'a': { var v = Pop(); AsList(Peek(), "APPEND").Add(v); break; } // APPEND
                case (byte)'e': { var items = PopMark(); AsList(Peek(), "APPENDS").AddRange(items); break; } // APPENDS
                case (byte)'}': Push(new PyDict()); break; // EMPTY_DICT
                case (byte)'d': // DICT
                {
                    var items = PopMark();
                    if (items.Count % 2 != 0) throw Corrupt("DICT with an odd number of items");
                    var d = new PyDict();
                    for (int i = 0; i < items.Count; i += 2) d.Set(items[i], items[i + 1]);
                    Push(d);
                    break;
                }
                case (byte)'s': { var v = Pop(); var k = Pop(); AsDict(Peek(), "SETITEM").Set(k, v); break; } // SETITEM
                case (byte)'u': // SETITEMS
                {
                    var items = PopMark();
                    if (items.Count % 2 != 0) throw Corrupt("SETITEMS with an odd number of items");
                    var d = AsDict(Peek(), "SETITEMS");
                    for (int i = 0; i < items.Count; i += 2) d.Set(items[i], items[i + 1]);
                    break;
                }
                case 0x8f: Push(new PySet()); break; // EMPTY_SET
                case 0x90: // ADDITEMS
                {
                    var items = PopMark();
                    if (Peek() is not PySet s || s.IsFrozen) throw Corrupt($"ADDITEMS on {PickleResolver.Describe(Peek())}");
                    s.Items.AddRange(items);
                    break;
                }
                case 0x91: { var s = new PySet { IsFrozen = true }; s.Items.AddRange(PopMark()); Push(s); break; } // FROZENSET
                case (byte)'p': Memo(ParseIndex(ReadLine())); break; // PUT
                case (byte)'q': Memo(ReadByte()); break; // BINPUT
                case (byte)'r': Memo(BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4))); break; // LONG_BINPUT
                case 0x94: Memo(_memo.Count); break; // MEMOIZE
                case (byte)'g': Push(Recall(ParseIndex(ReadLine()))); break; // GET
                case (byte)'h': Push(Recall(ReadByte())); break; // BINGET
                case (byte)'j': Push(Recall(BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4)))); break; // LONG_BINGET
                case (byte)'c': // GLOBAL
                {
                    var module = ReadLine();
                    var name = ReadLine();
                    Push(_resolver.ResolveGlobal(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop();
                    var module = Pop();
                    if (module is not string m || name is not string n) throw Corrupt("STACK_GLOBAL needs two strings");
                    Push(_resolver.ResolveGlobal(m, n));
                    break;
                }
                case (byte)'R': // REDUCE
                {
                    var args = Pop();
                    var f = Pop();
                    if (args is not object?[] t) throw Corrupt($"REDUCE arguments must be a tuple, got {PickleResolver.Describe(args)}");
                    Push(_resolver.Call(f, t));
                    break;
                }
                case 0x81: // NEWOBJ
                {
                    var args = Pop();
                    var cls = Pop();
                    if (args is not object?[] t) throw Corrupt($"NEWOBJ arguments must be a tuple, got {PickleResolver.Describe(args)}");
                    Push(_resolver.New(cls, t));
                    break;
                }
                case 0x92: // NEWOBJ_EX
                {
                    var kwargs = Pop();
                    var args = Pop();
                    var cls = Pop();
                    if (args is not object?[] t) throw Corrupt("NEWOBJ_EX arguments must be a tuple");
                    if (kwargs is PyDict { Count: > 0 }) throw Corrupt("NEWOBJ_EX with keyword arguments is not supported");
                    Push(_resolver.New(cls, t));
                    break;
                }
                case (byte)'i': // INST
                {
                    var module = ReadLine();
                    var name = ReadLine();
                    var cls = _resolver.ResolveGlobal(module, name);
                    Push(_resolver.New(cls, PopMark().ToArray()));
                    break;
                }
                case (byte)'o': // OBJ
                {
                    var items = PopMark();
                    if (items.Count == 0) throw Corrupt("OBJ without a class");
                    Push(_resolver.New(items[0], items.Skip(1).ToArray()));
                    break;
                }
                case (byte)'b': // BUILD
                {
                    var state = Pop();
                    var target = Peek();
                    switch (target)
                    {
                        case PickleObject o:
                            if (o.State is PyDict old && state is PyDict add)
                                foreach (var kv in add) old.Set(kv.Key, kv.Value);
                            else o.State = state;
                            break;
                        case PyDict d:
                            // dict subclass state: (instance dict, slots) or instance dict
                            var attrs = state is object?[] { Length: 2 } st ? st[0] : state;
                            if (attrs is PyDict ad)
                            {
                                d.Attributes ??= new PyDict();
                                foreach (var kv in ad) d.Attributes.Set(kv.Key, kv.Value);
                            }
                            else if (attrs is not null) throw Corrupt($"BUILD on a dict with {PickleResolver.Describe(attrs)} state");
                            break;
                        default:
                            _stack[^1] = _resolver.Build(target, state);
                            break;
                    }
                    break;
                }
                case (byte)'P': Push(_resolver.PersistentLoad(ReadLine())); break; // PERSID
                case (byte)'Q': Push(_resolver.PersistentLoad(Pop())); break; // BINPERSID
                case 0x80: // PROTO
                {
                    int proto = ReadByte();
                    if (proto > 5) throw new QuantToolsException(ErrorCode.UnsupportedFormat, $"pickle protocol {proto} (expected 0 to 5)");
                    break;
                }
                case 0x95: // FRAME
                {
                    long n = BinaryPrimitives.ReadInt64LittleEndian(ReadSpan(8));
                    if (n < 0 || n > _end - _pos) throw Corrupt($"FRAME of {n} bytes but only {_end - _pos} remain");
                    break;
                }
                case 0x82 or 0x83 or 0x84:
                    throw new QuantToolsException(ErrorCode.NotSupported, "EXT opcodes (copyreg extension registry) are not supported");
                default:
                    throw Corrupt($"unknown opcode 0x{op:x2}");
            }
        }
    }

    // ---- stack
    private void Push(object? v) => _stack.Add(v);

    private object? Pop()
    {
        int floor = _marks.Count > 0 ? _marks[^1] : 0;
        if (_stack.Count <= floor) throw Corrupt("stack underflow");
        var v = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    private object? Peek()
    {
        int floor = _marks.Count > 0 ? _marks[^1] : 0;
        if (_stack.Count <= floor) throw Corrupt("stack underflow");
        return _stack[^1];
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) throw Corrupt("no MARK on the stack");
        int m = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(m, _stack.Count - m);
        _stack.RemoveRange(m, _stack.Count - m);
        return items;
    }

    private void Memo(long index)
    {
        if (index < 0) throw Corrupt($"negative memo index {index}");
        _memo[index] = Peek();
    }

    private object? Recall(long index) =>
        _memo.TryGetValue(index, out var v) ? v : throw Corrupt($"memo index {index} was never stored");

    private List<object?> AsList(object? v, string op) =>
        v as List<object?> ?? throw Corrupt($"{op} on {PickleResolver.Describe(v)} (expected a list)");

    private PyDict AsDict(object? v, string op) =>
        v as PyDict ?? throw Corrupt($"{op} on {PickleResolver.Describe(v)} (expected a dict)");

    // ---- input
    private byte ReadByte()
    {
        if (_pos >= _end) throw Truncated(1);
        return _data[_pos++];
    }

    private ReadOnlySpan<byte> ReadSpan(long n)
    {
        if (n < 0) throw Corrupt($"negative length {n}");
        if (n > _end - _pos) throw Truncated(n);
        var s = new ReadOnlySpan<byte>(_data, _pos, (int)n);
        _pos += (int)n;
        return s;
    }

    private long ReadLength4() => BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4));

    private long ReadLength4Signed()
    {
        int n = BinaryPrimitives.ReadInt32LittleEndian(ReadSpan(4));
        if (n < 0) throw Corrupt($"negative length {n}");
        return n;
    }

    private long ReadLength8()
    {
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(ReadSpan(8));
        if (n > (ulong)(_end - _pos)) throw Truncated(n > long.MaxValue ? long.MaxValue : (long)n);
        return (long)n;
    }

    private string ReadLine()
    {
        int nl = Array.IndexOf(_data, (byte)'\n', _pos, _end - _pos);
        if (nl < 0) throw Corrupt("text opcode argument without a terminating newline");
        var s = Encoding.Latin1.GetString(_data, _pos, nl - _pos);
        _pos = nl + 1;
        return s.EndsWith('\r') ? s[..^1] : s;
    }

    private QuantToolsException Truncated(long wanted) =>
        Corrupt($"opcode needs {wanted} more bytes but only {_end - _pos} remain (truncated or corrupt pickle)");

    private static QuantToolsException Corrupt(string msg) => new(ErrorCode.CorruptFile, msg);

    private static string Short(string s) => s.Length > 40 ? s[..40] + "..." : s;

    private static string Utf8(ReadOnlySpan<byte> b)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(b);
        }
        catch (DecoderFallbackException)
        {
            // Python pickles str with 'surrogatepass'; keep going with replacement rather than failing a whole checkpoint
            return Encoding.UTF8.GetString(b);
        }
    }

    private static object ParseInt(string s)
    {
        s = s.Trim();
        if (long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return l;
        if (s.Length <= 10000 && BigInteger.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var bi)) return bi;
        throw Corrupt($"'{Short(s)}' is not an integer");
    }

    private static long ParseIndex(string s) =>
        long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var l) ? l : throw Corrupt($"memo index '{Short(s)}' is not a number");

    private static object DecodeLong(ReadOnlySpan<byte> b)
    {
        if (b.Length == 0) return 0L;
        if (b.Length <= 8)
        {
            long v = (b[^1] & 0x80) != 0 ? -1L : 0L;
            for (int i = b.Length - 1; i >= 0; i--) v = (v << 8) | b[i];
            return v;
        }
        var bi = new BigInteger(b, isUnsigned: false, isBigEndian: false);
        return bi >= long.MinValue && bi <= long.MaxValue ? (long)bi : bi;
    }

    private static string DecodeQuotedString(string s)
    {
        if (s.Length < 2 || s[0] != s[^1] || (s[0] != '\'' && s[0] != '"')) throw Corrupt("STRING argument is not quoted");
        var body = s[1..^1];
        var sb = new StringBuilder(body.Length);
        for (int i = 0; i < body.Length; i++)
        {
            char c = body[i];
            if (c != '\\' || i + 1 >= body.Length) { sb.Append(c); continue; }
            char e = body[++i];
            if (e == 'n') sb.Append('\n');
            else if (e == 't') sb.Append('\t');
            else if (e == 'r') sb.Append('\r');
            else if (e == 'x' && i + 2 < body.Length &&
                     int.TryParse(body.AsSpan(i + 1, 2), NumberStyles.HexNumber, null, out int hx))
            {
                sb.Append((char)hx);
                i += 2;
            }
            else if (e is '\\' or '\'' or '"') sb.Append(e);
            else sb.Append('\\').Append(e);
        }
        return sb.ToString();
    }

    private static string DecodeRawUnicodeEscape(string s)
    {
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length && s[i + 1] == 'u' && i + 6 <= s.Length &&
                int.TryParse(s.AsSpan(i + 2, 4), NumberStyles.HexNumber, null, out int u))
            {
                sb.Append((char)u);
                i += 5;
            }
            else if (s[i] == '\\' && i + 1 < s.Length && s[i + 1] == 'U' && i + 10 <= s.Length &&
                     int.TryParse(s.AsSpan(i + 2, 8), NumberStyles.HexNumber, null, out int U) && U <= 0x10FFFF)
            {
                sb.Append(char.ConvertFromUtf32(U));
                i += 9;
            }
            else sb.Append(s[i]);
        }
        return sb.ToString();
    }

    // ---- result check: no container deeper than MaxDepth (so later walkers cannot overflow the stack)
    private static void CheckDepth(object? root)
    {
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(object Obj, int Depth)>();
        if (root is not null) stack.Push((root, 0));
        while (stack.Count > 0)
        {
            var (o, depth) = stack.Pop();
            if (!IsContainer(o) || !seen.Add(o)) continue;
            if (depth >= MaxDepth) throw Corrupt($"values nested deeper than {MaxDepth} levels");
            foreach (var child in Children(o))
                if (child is not null && IsContainer(child)) stack.Push((child, depth + 1));
        }
    }

    private static bool IsContainer(object o) => o is List<object?> or object?[] or PyDict or PySet or PickleObject;

    private static IEnumerable<object?> Children(object o)
    {
        switch (o)
        {
            case List<object?> l: return l;
            case object?[] t: return t;
            case PySet s: return s;
            case PyDict d:
                var r = d.Keys.Concat(d.Values);
                return d.Attributes is null ? r : r.Append(d.Attributes);
            case PickleObject p: return p.Args.Append(p.State);
            default: return [];
        }
    }
}
