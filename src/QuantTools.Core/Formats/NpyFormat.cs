using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats;

/// <summary>
/// A .npy file as read: the C-contiguous tensor plus what is needed to write the file back the way it was
/// (format version, Fortran order, the descr string with its byte-order character).
/// </summary>
public sealed record NpyFile(Tensor Tensor, int FormatVersion, bool FortranOrder, string Descr)
{
    /// <summary>The descr's byte-order character: '&lt;', '&gt;', '|' or '=' ('=' when the descr has none).</summary>
    public char ByteOrder => Descr.Length > 0 && Descr[0] is '<' or '>' or '|' or '=' ? Descr[0] : '=';
}

/// <summary>How <see cref="NpyFormat.Write(Stream, Tensor, NpyWriteOptions?)"/> lays the file out.</summary>
public sealed class NpyWriteOptions
{
    /// <summary>1, 2 or 3; null picks the oldest that holds the header, as numpy does.</summary>
    public int? FormatVersion { get; init; }
    /// <summary>Store the data column-major with fortran_order True.</summary>
    public bool FortranOrder { get; init; }
    /// <summary>Store multi-byte elements big-endian ('&gt;' descr).</summary>
    public bool BigEndian { get; init; }
}

/// <summary>
/// NumPy .npy reader/writer (format 1.0, 2.0, 3.0). Headers are parsed by a strict literal parser, never evaluated;
/// sizes are checked against the stream before anything is allocated. Files are written in numpy's own layout
/// (sorted keys, 21-digit growth space, padded with spaces and a newline to a multiple of 64 bytes), so a file
/// numpy wrote is reproduced byte for byte by <see cref="WriteFile(Stream, NpyFile)"/>.
/// </summary>
public static class NpyFormat
{
    internal static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];
    /// <summary>Largest header accepted (numpy's own default limit is 10000 characters).</summary>
    public const int MaxHeaderBytes = 1 << 20;
    private const int ArrayAlign = 64;
    private const int GrowthAxisMaxDigits = 21;
    private const string Supported = "b1, i1, u1, i2, i4, i8, f2, f4, f8";

    // ---------------------------------------------------------------- reading

    public static Tensor Read(string path) => ReadFile(path).Tensor;

    public static Tensor Read(Stream s, string source) => ReadFile(s, source).Tensor;

    public static NpyFile ReadFile(string path)
    {
        using var fs = RawData.OpenRead(path);
        return ReadFile(fs, path);
    }

    public static NpyFile ReadFile(Stream s, string source) => ReadFile(s, source, null);

    /// <param name="available">Bytes the stream holds from its position, when known without seeking (npz entries).</param>
    internal static NpyFile ReadFile(Stream s, string source, long? available)
    {
        if (available is null && s.CanSeek)
        {
            try { available = s.Length - s.Position; }
            catch (NotSupportedException) { }
        }
        var pre = new byte[12];
        int got = RawData.ReadFully(s, pre.AsSpan(0, 8), source);
        if (got < 6 || !pre.AsSpan(0, 6).SequenceEqual(Magic))
            throw new QuantToolsException(ErrorCode.UnsupportedFormat,
                $"not a .npy file: expected the magic \\x93NUMPY, found {Hex(pre.AsSpan(0, Math.Min(got, 6)))}", source);
        if (got < 8)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"file ends after {got} bytes, inside the 8-byte magic and version", source);
        int major = pre[6], minor = pre[7];
        if (major is < 1 or > 3 || minor != 0)
            throw new QuantToolsException(ErrorCode.UnsupportedFormat,
                $"npy format version {major}.{minor}; expected 1.0, 2.0 or 3.0", source);
        int lenBytes = major == 1 ? 2 : 4;
        got = RawData.ReadFully(s, pre.AsSpan(8, lenBytes), source);
        if (got < lenBytes)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"file ends inside the {lenBytes}-byte header length", source);
        long hlen = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(pre.AsSpan(8)) : BinaryPrimitives.ReadUInt32LittleEndian(pre.AsSpan(8));
        long prefix = 8 + lenBytes;
        if (hlen > MaxHeaderBytes)
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"header length {hlen} exceeds the {MaxHeaderBytes}-byte limit", source);
        if (available is long av0 && hlen > av0 - prefix)
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"header claims {hlen} bytes but only {Math.Max(0, av0 - prefix)} follow the {prefix}-byte prefix", source);
        var hbytes = new byte[hlen];
        got = RawData.ReadFully(s, hbytes, source);
        if (got < hlen)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"header claims {hlen} bytes but the file ends after {got}", source);

        string text;
        if (major == 3)
        {
            try { text = new UTF8Encoding(false, true).GetString(hbytes); }
            catch (DecoderFallbackException ex)
            {
                throw new QuantToolsException(ErrorCode.CorruptFile, $"format 3.0 header is not valid UTF-8: {ex.Message}", source, ex);
            }
        }
        else text = Encoding.Latin1.GetString(hbytes);

        var (dtype, bigEndian, descr, fortran, shape) = ParseHeader(text, source);
        int numel = Tensor.CheckedNumel(shape, source);
        long need = RawData.ByteCount(dtype, numel);
        var ishape = shape.Select(d => (int)d).ToArray();
        string what = $"array {descr} {ShapeRepr(shape)}";

        Tensor t;
        if (available is long av)
        {
            long left = av - prefix - hlen;
            if (need > left)
                throw new QuantToolsException(ErrorCode.CorruptFile,
                    $"{what} needs {need} data bytes but only {left} follow the header", source);
            t = RawData.ReadTensor(s, dtype, ishape, bigEndian, source, what);
        }
        else
        {
            // Unknown length: buffer what actually arrives (bounded by the need) before allocating the tensor.
            var ms = new MemoryStream();
            var buf = new byte[1 << 16];
            long remaining = need;
            while (remaining > 0)
            {
                int r = RawData.ReadFully(s, buf.AsSpan(0, (int)Math.Min(buf.Length, remaining)), source);
                if (r == 0) break;
                ms.Write(buf, 0, r);
                remaining -= r;
            }
            if (remaining > 0)
                throw new QuantToolsException(ErrorCode.CorruptFile,
                    $"{what} needs {need} data bytes but only {need - remaining} follow the header", source);
            ms.Position = 0;
            t = RawData.ReadTensor(ms, dtype, ishape, bigEndian, source, what);
        }
        if (fortran) t = RawData.Reorder(t, fortranToC: true);
        return new NpyFile(t, major, fortran, descr);
    }

    private static string Hex(ReadOnlySpan<byte> b) => b.Length == 0 ? "an empty file" : Convert.ToHexString(b);

    private static (DType, bool BigEndian, string Descr, bool Fortran, long[] Shape) ParseHeader(string text, string source)
    {
        object? lit;
        try { lit = PyLiteral.Parse(text); }
        catch (FormatException ex)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"header is not a valid Python dict literal ({ex.Message}); expected {{'descr': ..., 'fortran_order': ..., 'shape': (...), }}", source, ex);
        }
        if (lit is not Dictionary<string, object?> d)
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"header is not a dict: expected {{'descr': ..., 'fortran_order': ..., 'shape': (...)}}, found {TypeName(lit)}", source);
        foreach (var key in new[] { "descr", "fortran_order", "shape" })
            if (!d.ContainsKey(key))
                throw new QuantToolsException(ErrorCode.CorruptFile,
                    $"header lacks the key '{key}': expected keys descr, fortran_order, shape, found {KeyList(d)}", source);
        if (d.Count != 3)
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"header has extra keys: expected exactly descr, fortran_order, shape, found {KeyList(d)}", source);
        if (d["descr"] is not string descr)
            throw new QuantToolsException(ErrorCode.UnsupportedDType,
                $"descr is {TypeName(d["descr"])}, expected a simple dtype string ({Supported}); structured dtypes are not supported", source);
        if (d["fortran_order"] is not bool fortran)
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"fortran_order is {TypeName(d["fortran_order"])}, expected True or False", source);
        if (d["shape"] is not PyTuple tup)
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"shape is {TypeName(d["shape"])}, expected a tuple of ints", source);
        var shape = new long[tup.Items.Count];
        if (shape.Length > 64)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"shape has {shape.Length} dimensions, more than numpy's limit of 64", source);
        for (int i = 0; i < shape.Length; i++)
        {
            if (tup.Items[i] is not long v)
                throw new QuantToolsException(ErrorCode.CorruptFile,
                    $"shape element {i} is {TypeName(tup.Items[i])}, expected an int", source);
            if (v < 0)
                throw new QuantToolsException(ErrorCode.CorruptFile, $"shape {ShapeRepr(tup)} has negative dimension {v}", source);
            shape[i] = v;
        }
        var (dtype, big) = ParseDescr(descr, source);
        return (dtype, big, descr, fortran, shape);
    }

    private static string KeyList(Dictionary<string, object?> d) =>
        d.Count == 0 ? "none" : string.Join(", ", d.Keys.Select(k => k.Length > 40 ? k[..40] + "..." : k));

    private static string TypeName(object? o) => o switch
    {
        null => "None",
        string => "a str",
        bool => "a bool",
        long => "an int",
        PyTuple => "a tuple",
        List<object?> => "a list",
        Dictionary<string, object?> => "a dict",
        _ => o.GetType().Name,
    };

    /// <summary>Maps a numpy descr ('&lt;f4', '|b1', '&gt;i8', 'f2', '?') to our dtype and whether the data is big-endian.</summary>
    public static (DType DType, bool BigEndian) ParseDescr(string descr, string? source = null)
    {
        var s = descr;
        char order = '=';
        if (s.Length > 0 && s[0] is '<' or '>' or '|' or '=') { order = s[0]; s = s[1..]; }
        DType? dt = s switch
        {
            "b1" or "?" => DType.Bool,
            "i1" => DType.Int8,
            "u1" => DType.UInt8,
            "i2" => DType.Int16,
            "i4" => DType.Int32,
            "i8" => DType.Int64,
            "f2" => DType.Float16,
            "f4" => DType.Float32,
            "f8" => DType.Float64,
            _ => null,
        };
        if (dt is null)
        {
            var shown = descr.Length > 40 ? descr[..40] + "..." : descr;
            string hint = s is "u2" or "u4" or "u8" ? " (unsigned 16/32/64-bit integers have no QuantTools dtype)" : "";
            throw new QuantToolsException(ErrorCode.UnsupportedDType,
                $"unsupported npy descr '{shown}'{hint}; expected one of {Supported} with byte order <, >, | or =", source);
        }
        bool big = order == '>' || (order is '=' or '|' && !BitConverter.IsLittleEndian);
        return (dt.Value, big && dt.Value.ElementSize() > 1);
    }

    /// <summary>The descr numpy writes for a dtype: '|' for one-byte types, else '&lt;' or '&gt;'.</summary>
    public static string ToDescr(DType dtype, bool bigEndian = false)
    {
        string code = dtype switch
        {
            DType.Bool => "b1",
            DType.Int8 => "i1",
            DType.UInt8 => "u1",
            DType.Int16 => "i2",
            DType.Int32 => "i4",
            DType.Int64 => "i8",
            DType.Float16 => "f2",
            DType.Float32 => "f4",
            DType.Float64 => "f8",
            DType.BFloat16 => throw new QuantToolsException(ErrorCode.UnsupportedDType,
                "bfloat16 has no numpy dtype and cannot be stored in .npy/.npz; convert it to float32 or use .safetensors"),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{dtype.TorchName()} cannot be stored in .npy"),
        };
        char order = dtype.ElementSize() == 1 ? '|' : bigEndian ? '>' : '<';
        return order + code;
    }

    private static string ShapeRepr(IReadOnlyList<long> shape) => shape.Count switch
    {
        0 => "()",
        1 => $"({shape[0].ToString(CultureInfo.InvariantCulture)},)",
        _ => "(" + string.Join(", ", shape.Select(x => x.ToString(CultureInfo.InvariantCulture))) + ")",
    };

    private static string ShapeRepr(PyTuple t) => "(" + string.Join(", ", t.Items.Select(x => x?.ToString() ?? "None")) + ")";

    // ---------------------------------------------------------------- writing

    public static void Write(string path, Tensor t, NpyWriteOptions? o = null) =>
        RawData.WriteFileAtomically(path, s => Write(s, t, o));

    public static void Write(Stream s, Tensor t, NpyWriteOptions? o = null)
    {
        o ??= new NpyWriteOptions();
        WriteCore(s, t, o.FormatVersion, o.FortranOrder, ToDescr(t.DType, o.BigEndian));
    }

    /// <summary>Writes a file read by <see cref="ReadFile(Stream, string)"/> back with the same version, order and descr.</summary>
    public static void WriteFile(string path, NpyFile f) => RawData.WriteFileAtomically(path, s => WriteFile(s, f));

    public static void WriteFile(Stream s, NpyFile f)
    {
        var (dt, _) = ParseDescr(f.Descr);
        if (dt != f.Tensor.DType)
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"descr '{f.Descr}' is {dt.TorchName()} but the tensor is {f.Tensor.DType.TorchName()}");
        WriteCore(s, f.Tensor, f.FormatVersion, f.FortranOrder, f.Descr);
    }

    /// <summary>The header bytes (magic through newline) numpy writes for this array.</summary>
    public static byte[] BuildHeader(string descr, bool fortranOrder, IReadOnlyList<long> shape, int? formatVersion = null)
    {
        var sb = new StringBuilder("{");
        sb.Append("'descr': ").Append(PyStrRepr(descr)).Append(", ");
        sb.Append("'fortran_order': ").Append(fortranOrder ? "True" : "False").Append(", ");
        sb.Append("'shape': ").Append(ShapeRepr(shape)).Append(", ");
        sb.Append('}');
        if (shape.Count > 0)
        {
            long growth = shape[fortranOrder ? shape.Count - 1 : 0];
            sb.Append(' ', Math.Max(0, GrowthAxisMaxDigits - growth.ToString(CultureInfo.InvariantCulture).Length));
        }
        string header = sb.ToString();
        bool latin1 = header.All(c => c <= 0xff);
        int version = formatVersion ?? 0;
        if (version == 0)
        {
            if (!latin1) version = 3;
            else version = Wrap(header, 1, out var b1) ? 1 : 2;
        }
        if (version is < 1 or > 3)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"npy format version {version}; expected 1, 2 or 3");
        if (version < 3 && !latin1)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"the header needs UTF-8, which format {version}.0 cannot hold; use 3");
        if (!Wrap(header, version, out var bytes))
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"the header is too long for format {version}.0");
        return bytes;
    }

    private static bool Wrap(string header, int version, out byte[] result)
    {
        var enc = version == 3 ? Encoding.UTF8 : Encoding.Latin1;
        var hb = enc.GetBytes(header);
        int lenBytes = version == 1 ? 2 : 4;
        long hlen = hb.Length + 1;
        long pad = ArrayAlign - ((8 + lenBytes + hlen) % ArrayAlign);
        long total = hlen + pad;
        if (version == 1 && total > ushort.MaxValue) { result = []; return false; }
        result = new byte[8 + lenBytes + total];
        Magic.CopyTo(result, 0);
        result[6] = (byte)version;
        result[7] = 0;
        if (version == 1) BinaryPrimitives.WriteUInt16LittleEndian(result.AsSpan(8), (ushort)total);
        else BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(8), (uint)total);
        hb.CopyTo(result, 8 + lenBytes);
        result.AsSpan(8 + lenBytes + hb.Length, (int)pad).Fill((byte)' ');
        result[^1] = (byte)'\n';
        return true;
    }

    private static string PyStrRepr(string s)
    {
        // Python's repr for the simple strings a descr can be: single quotes unless the text holds one.
        char q = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder().Append(q);
        foreach (var c in s)
        {
            if (c == '\\' || c == q) sb.Append('\\');
            sb.Append(c);
        }
        return sb.Append(q).ToString();
    }

    private static void WriteCore(Stream s, Tensor t, int? version, bool fortran, string descr)
    {
        var (_, big) = ParseDescr(descr);
        var header = BuildHeader(descr, fortran, t.Shape.Select(x => (long)x).ToArray(), version);
        try
        {
            s.Write(header);
            RawData.WriteTensor(s, fortran ? RawData.Reorder(t, fortranToC: false) : t, big);
        }
        catch (IOException ex)
        {
            throw new QuantToolsException(ErrorCode.IoError, $"write failed: {ex.Message}", (s as FileStream)?.Name, ex);
        }
    }
}
