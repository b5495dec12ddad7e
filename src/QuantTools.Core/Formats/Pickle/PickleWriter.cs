using System.Buffers.Binary;
using System.Text;

namespace QuantTools.Core.Formats.Pickle;

/// <summary>
/// Emits protocol-2 pickle opcodes into a growing buffer, the way CPython's pickler lays out what
/// <c>torch.save</c> writes: globals and strings are memoized on first use and fetched back with BINGET afterwards.
/// Only the opcodes a checkpoint needs; the caller drives the structure.
/// </summary>
internal sealed class PickleWriter
{
    private readonly MemoryStream _s = new();
    private readonly Dictionary<string, int> _memo = new(StringComparer.Ordinal);
    private int _nextMemo;

    public PickleWriter Proto(int protocol = 2) => Op(0x80, (byte)protocol);
    public PickleWriter Mark() => Op((byte)'(');
    public PickleWriter Stop() => Op((byte)'.');
    public PickleWriter None() => Op((byte)'N');
    public PickleWriter Bool(bool b) => Op(b ? (byte)0x88 : (byte)0x89);
    public PickleWriter EmptyTuple() => Op((byte)')');
    public PickleWriter EmptyDict() => Op((byte)'}');
    public PickleWriter Reduce() => Op((byte)'R');
    public PickleWriter BinPersId() => Op((byte)'Q');
    public PickleWriter SetItems() => Op((byte)'u');
    public PickleWriter SetItem() => Op((byte)'s');
    public PickleWriter Build() => Op((byte)'b');
    public PickleWriter Appends() => Op((byte)'e');
    public PickleWriter EmptyList() => Op((byte)']');

    /// <summary>Closes a tuple of <paramref name="count"/> items pushed after a MARK (count > 3) or without one (count ≤ 3).</summary>
    /// <remarks>For 0-3 items CPython uses EMPTY_TUPLE / TUPLE1-3 and pushes no MARK; callers use <see cref="NeedsMark"/>.</remarks>
    public PickleWriter TupleEnd(int count) => count switch
    {
        0 => EmptyTuple(),
        1 => Op(0x85),
        2 => Op(0x86),
        3 => Op(0x87),
        _ => Op((byte)'t'),
    };

    public static bool NeedsMark(int count) => count > 3;

    /// <summary>BINPUT / LONG_BINPUT of the value on top of the stack (anonymous: never fetched back by this writer).</summary>
    public PickleWriter Put() => Put(_nextMemo++);

    private PickleWriter Put(int id) => MemoOp((byte)'q', (byte)'r', id);   // BINPUT / LONG_BINPUT

    private PickleWriter Get(int id) => MemoOp((byte)'h', (byte)'j', id);   // BINGET / LONG_BINGET

    /// <summary>A memo opcode with a 1-byte id below 256, else its 4-byte little-endian form.</summary>
    private PickleWriter MemoOp(byte shortOp, byte longOp, int id)
    {
        if (id < 256) return Op(shortOp, (byte)id);
        Span<byte> b = stackalloc byte[5];
        b[0] = longOp;
        BinaryPrimitives.WriteInt32LittleEndian(b[1..], id);
        _s.Write(b);
        return this;
    }

    private bool TryGetMemo(string key)
    {
        if (!_memo.TryGetValue(key, out int id)) return false;
        Get(id);
        return true;
    }

    private void Remember(string key)
    {
        _memo[key] = _nextMemo;
        Put(_nextMemo++);
    }

    /// <summary>GLOBAL <c>module\nname\n</c> (memoized).</summary>
    public PickleWriter Global(string module, string name)
    {
        var key = "\0g" + module + "\n" + name;
        if (TryGetMemo(key)) return this;
        Op((byte)'c');
        _s.Write(Encoding.ASCII.GetBytes(module + "\n" + name + "\n"));
        Remember(key);
        return this;
    }

    /// <summary>BINUNICODE (memoized by value).</summary>
    public PickleWriter Str(string s)
    {
        var key = "\0s" + s;
        if (TryGetMemo(key)) return this;
        var b = Encoding.UTF8.GetBytes(s);
        Span<byte> h = stackalloc byte[5];
        h[0] = (byte)'X';
        BinaryPrimitives.WriteInt32LittleEndian(h[1..], b.Length);
        _s.Write(h);
        _s.Write(b);
        Remember(key);
        return this;
    }

    /// <summary>BININT1 / BININT2 / BININT / LONG1, the smallest that holds <paramref name="v"/> (as CPython picks).</summary>
    public PickleWriter Int(long v)
    {
        if (v is >= 0 and <= 0xFF) return Op((byte)'K', (byte)v);
        if (v is >= 0 and <= 0xFFFF) return Op((byte)'M', (byte)v, (byte)(v >> 8));
        Span<byte> b = stackalloc byte[10];
        if (v is >= int.MinValue and <= int.MaxValue)
        {
            b[0] = (byte)'J';
            BinaryPrimitives.WriteInt32LittleEndian(b[1..], (int)v);
            _s.Write(b[..5]);
            return this;
        }
        // LONG1: minimal two's-complement little-endian bytes
        BinaryPrimitives.WriteInt64LittleEndian(b[2..], v);
        int n = 8;
        while (n > 1 && (b[2 + n - 1] == 0x00 && (b[2 + n - 2] & 0x80) == 0 || b[2 + n - 1] == 0xFF && (b[2 + n - 2] & 0x80) != 0)) n--;
        b[0] = 0x8a;
        b[1] = (byte)n;
        _s.Write(b[..(2 + n)]);
        return this;
    }

    /// <summary>BINFLOAT (big-endian IEEE double).</summary>
    public PickleWriter Float(double d)
    {
        Span<byte> b = stackalloc byte[9];
        b[0] = (byte)'G';
        BinaryPrimitives.WriteDoubleBigEndian(b[1..], d);
        _s.Write(b);
        return this;
    }

    /// <summary>SHORT_BINBYTES is protocol 3; protocol 2 writes bytes as <c>_codecs.encode(str, 'latin1')</c>, as CPython does.</summary>
    public PickleWriter Bytes(byte[] v)
    {
        Global("_codecs", "encode");
        var chars = new char[v.Length];
        for (int i = 0; i < v.Length; i++) chars[i] = (char)v[i];
        var s = new string(chars);
        // unmemoized: two equal byte strings are distinct objects
        var b = Encoding.UTF8.GetBytes(s);
        Span<byte> h = stackalloc byte[5];
        h[0] = (byte)'X';
        BinaryPrimitives.WriteInt32LittleEndian(h[1..], b.Length);
        _s.Write(h);
        _s.Write(b);
        Put();
        Str("latin1");
        return TupleEnd(2).Put().Reduce().Put();
    }

    private PickleWriter Op(params ReadOnlySpan<byte> b)
    {
        _s.Write(b);
        return this;
    }

    public byte[] ToArray() => _s.ToArray();
}
