namespace QuantTools.Core.Formats.Onnx;

/// <summary>Protocol buffers wire types (the low three bits of a field key).</summary>
internal enum WireType
{
    Varint = 0,
    Fixed64 = 1,
    LengthDelimited = 2,
    StartGroup = 3,
    EndGroup = 4,
    Fixed32 = 5,
}

/// <summary>
/// A forward-only reader of protocol-buffers wire format over one message's bytes. Every read is bounds-checked
/// against the message's own end before anything is allocated: a varint longer than 10 bytes or overflowing 64 bits,
/// a length past the end, a group (deprecated, never used by ONNX) or an unknown wire type is a
/// <see cref="ErrorCode.CorruptFile"/> error that names the message and the byte offset. Nested messages are
/// read by slicing (<see cref="ReadMessage"/>), which counts depth so that a self-nesting file cannot exhaust the stack.
/// </summary>
internal ref struct ProtoReader
{
    /// <summary>Deepest message nesting accepted (ONNX needs about 8: model, graph, node, attribute, graph, ...).</summary>
    public const int MaxDepth = 64;

    private readonly ReadOnlySpan<byte> _buf;
    private readonly int _base;         // offset of _buf[0] in the file, for messages
    private readonly string _what;
    private readonly string? _file;
    private int _pos;

    public int Depth { get; }

    public ProtoReader(ReadOnlySpan<byte> buffer, int fileOffset, string what, string? file, int depth)
    {
        if (depth > MaxDepth)
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"protobuf messages nested deeper than {MaxDepth} levels at byte {fileOffset} ({what})", file);
        _buf = buffer;
        _base = fileOffset;
        _what = what;
        _file = file;
        _pos = 0;
        Depth = depth;
    }

    public readonly bool End => _pos >= _buf.Length;

    /// <summary>Offset in the file of the next byte.</summary>
    public readonly int FileOffset => _base + _pos;

    public QuantToolsException Error(string message) =>
        new(ErrorCode.CorruptFile, $"{message} at byte {_base + _pos} ({_what})", _file);

    /// <summary>Reads the next field key; field numbers start at 1.</summary>
    public (int Field, WireType Wire) ReadKey()
    {
        ulong key = ReadVarint();
        var wire = (WireType)(key & 7);
        ulong field = key >> 3;
        if (field == 0 || field > 536_870_911)
            throw Error($"invalid field number {field}");
        if (wire is WireType.StartGroup or WireType.EndGroup)
            throw Error($"protobuf groups are not used by ONNX (field {field})");
        if (wire is not (WireType.Varint or WireType.Fixed64 or WireType.LengthDelimited or WireType.Fixed32))
            throw Error($"unknown wire type {(int)wire} (field {field})");
        return ((int)field, wire);
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        for (int shift = 0, i = 0; i < 10; i++, shift += 7)
        {
            if (_pos >= _buf.Length) throw Error("truncated varint");
            byte b = _buf[_pos++];
            if (i == 9 && b > 1) throw Error("varint overflows 64 bits");
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
        throw Error("varint longer than 10 bytes");
    }

    public long ReadInt64() => (long)ReadVarint();

    /// <summary>An int32 field: protobuf writes negative int32 values as 10-byte varints; the value must fit.</summary>
    public int ReadInt32()
    {
        long v = (long)ReadVarint();
        if (v is < int.MinValue or > int.MaxValue) throw Error($"int32 field holds {v}");
        return (int)v;
    }

    public float ReadFloat()
    {
        if (_buf.Length - _pos < 4) throw Error("truncated fixed32");
        float f = BitConverter.ToSingle(_buf.Slice(_pos, 4));
        _pos += 4;
        return f;
    }

    public double ReadDouble()
    {
        if (_buf.Length - _pos < 8) throw Error("truncated fixed64");
        double d = BitConverter.ToDouble(_buf.Slice(_pos, 8));
        _pos += 8;
        return d;
    }

    /// <summary>The bytes of a length-delimited field, with their file offset.</summary>
    public (int Offset, int Length) ReadLengthDelimited()
    {
        ulong len = ReadVarint();
        if (len > (ulong)(_buf.Length - _pos))
            throw Error($"length {len} runs past the end of the message ({_buf.Length - _pos} bytes left)");
        int off = _pos;
        _pos += (int)len;
        return (_base + off, (int)len);
    }

    public ReadOnlySpan<byte> Slice(int fileOffset, int length) => _buf.Slice(fileOffset - _base, length);

    public string ReadString()
    {
        var (off, len) = ReadLengthDelimited();
        try
        {
            return StrictUtf8.GetString(Slice(off, len));
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile, $"string at byte {off} is not valid UTF-8 ({_what})", _file);
        }
    }

    /// <summary>A nested message: a reader over its bytes, one level deeper.</summary>
    public ProtoReader ReadMessage(string what)
    {
        var (off, len) = ReadLengthDelimited();
        return new ProtoReader(Slice(off, len), off, what, _file, Depth + 1);
    }

    /// <summary>Skips a field this reader does not use.</summary>
    public void Skip(WireType wire)
    {
        switch (wire)
        {
            case WireType.Varint: ReadVarint(); break;
            case WireType.Fixed64: Advance(8); break;
            case WireType.Fixed32: Advance(4); break;
            case WireType.LengthDelimited: ReadLengthDelimited(); break;
            default: throw Error($"cannot skip wire type {(int)wire}");
        }
    }

    private void Advance(int n)
    {
        if (_buf.Length - _pos < n) throw Error($"truncated fixed{n * 8}");
        _pos += n;
    }

    /// <summary>
    /// A repeated varint field, packed (length-delimited) or not, appended to <paramref name="into"/>. The count is
    /// bounded by the bytes present, so a hostile count cannot make a large allocation.
    /// </summary>
    public void ReadRepeatedInt64(WireType wire, List<long> into)
    {
        if (wire == WireType.Varint)
        {
            into.Add(ReadInt64());
            return;
        }
        if (wire != WireType.LengthDelimited) throw Error($"repeated int64 field has wire type {(int)wire}");
        var sub = ReadMessage(_what);
        while (!sub.End) into.Add(sub.ReadInt64());
    }

    public void ReadRepeatedFloat(WireType wire, List<float> into)
    {
        if (wire == WireType.Fixed32)
        {
            into.Add(ReadFloat());
            return;
        }
        if (wire != WireType.LengthDelimited) throw Error($"repeated float field has wire type {(int)wire}");
        var (off, len) = ReadLengthDelimited();
        if (len % 4 != 0) throw Error($"packed floats of {len} bytes (not a multiple of 4)");
        var s = Slice(off, len);
        for (int i = 0; i < len; i += 4) into.Add(BitConverter.ToSingle(s.Slice(i, 4)));
    }

    public void ReadRepeatedDouble(WireType wire, List<double> into)
    {
        if (wire == WireType.Fixed64)
        {
            into.Add(ReadDouble());
            return;
        }
        if (wire != WireType.LengthDelimited) throw Error($"repeated double field has wire type {(int)wire}");
        var (off, len) = ReadLengthDelimited();
        if (len % 8 != 0) throw Error($"packed doubles of {len} bytes (not a multiple of 8)");
        var s = Slice(off, len);
        for (int i = 0; i < len; i += 8) into.Add(BitConverter.ToDouble(s.Slice(i, 8)));
    }

    public void Expect(WireType got, WireType want, string field)
    {
        if (got != want) throw Error($"field {field} has wire type {(int)got}, expected {(int)want}");
    }

    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(false, true);
}
