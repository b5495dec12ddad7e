using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats;

/// <summary>
/// A .safetensors file: 8-byte little-endian header length, a JSON header mapping names to
/// {dtype, shape, data_offsets}, then the data. Offsets and sizes are checked before anything is allocated,
/// with the reference library's rules: tensors packed from offset 0 without gaps or overlaps up to the end of the file.
/// Files up to <see cref="InMemoryLimit"/> are read in one go; larger ones keep only the header and read each
/// tensor from disk on <see cref="Get"/>.
/// </summary>
public sealed class SafeTensorsFile
{
    public sealed record Entry(string Name, string DType, long[] Shape, long Begin, long End);

    /// <summary>Largest header accepted (the reference library's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;
    /// <summary>Files up to this size are held in memory by <see cref="Open"/>; larger ones are read per tensor.</summary>
    public const long InMemoryLimit = 64L << 20;

    private readonly byte[]? _bytes;
    private readonly string? _path;
    private readonly long _dataStart;
    private readonly long _dataLength;
    private readonly Dictionary<string, Entry> _entries;
    public string Source { get; }
    /// <summary>Tensor names in header order (the data order for files the reference writer made).</summary>
    public IReadOnlyList<string> Names { get; }
    /// <summary>The <c>__metadata__</c> map in file order, or null when the file has none.</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; }

    private SafeTensorsFile(byte[]? bytes, string? path, long fileLength, ReadOnlySpan<byte> header, string source)
    {
        _bytes = bytes;
        _path = path;
        Source = source;
        _dataStart = 8 + header.Length;
        _dataLength = fileLength - _dataStart;
        _entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var names = new List<string>();
        if (!System.Text.Unicode.Utf8.IsValid(header))
            throw new QuantToolsException(ErrorCode.CorruptFile, "header is not valid UTF-8 (expected UTF-8 JSON)", source);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile, $"header is not valid JSON: {e.Message}", source, e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new QuantToolsException(ErrorCode.CorruptFile,
                    $"header is a JSON {doc.RootElement.ValueKind.ToString().ToLowerInvariant()}, expected an object of tensors", source);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__")
                {
                    if (Metadata is not null)
                        throw new QuantToolsException(ErrorCode.CorruptFile, "__metadata__ appears twice", source);
                    if (p.Value.ValueKind != JsonValueKind.Object)
                        throw new QuantToolsException(ErrorCode.CorruptFile,
                            $"__metadata__ is a JSON {p.Value.ValueKind.ToString().ToLowerInvariant()}, expected an object of strings", source);
                    var md = new Dictionary<string, string>(StringComparer.Ordinal);
                    foreach (var m in p.Value.EnumerateObject())
                        md[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    Metadata = md;
                    continue;
                }
                var e = ParseEntry(p, source);
                long numel = Tensor.CheckedNumel(e.Shape, source);
                long need = numel * ElementSize(e.DType, source);
                if (e.End - e.Begin != need)
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"tensor '{e.Name}' ({e.DType} [{string.Join(", ", e.Shape)}]) needs {need} bytes but its offsets span {e.End - e.Begin}", source);
                if (e.End > _dataLength)
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"tensor '{e.Name}' ends at byte {e.End} of the data, which has only {_dataLength} bytes", source);
                if (!_entries.TryAdd(e.Name, e))
                    throw new QuantToolsException(ErrorCode.CorruptFile, $"tensor '{e.Name}' appears twice", source);
                names.Add(e.Name);
            }
        }
        // Packed without gaps or overlaps, up to the end of the file.
        long expect = 0;
        foreach (var e in _entries.Values.OrderBy(x => x.Begin).ThenBy(x => x.End))
        {
            if (e.Begin != expect)
                throw new QuantToolsException(ErrorCode.CorruptFile,
                    $"tensor '{e.Name}' starts at data byte {e.Begin}, expected {expect} (tensors must be packed without gaps or overlaps)", source);
            expect = e.End;
        }
        if (expect != _dataLength)
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"tensors cover {expect} data bytes but {_dataLength} follow the header", source);
        Names = names;
    }

    private static Entry ParseEntry(JsonProperty p, string source)
    {
        try
        {
            var v = p.Value;
            if (v.ValueKind != JsonValueKind.Object) throw new FormatException($"value is a JSON {v.ValueKind.ToString().ToLowerInvariant()}");
            var dtype = v.GetProperty("dtype").GetString() ?? throw new FormatException("dtype is null");
            var shape = v.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            var off = v.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            if (off.Length != 2 || off[0] < 0 || off[1] < off[0])
                throw new FormatException($"data_offsets [{string.Join(", ", off)}] are not a valid [begin, end] pair");
            return new Entry(p.Name, dtype, shape, off[0], off[1]);
        }
        catch (Exception ex) when (ex is FormatException or KeyNotFoundException or InvalidOperationException)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"entry '{p.Name}' is malformed (expected {{dtype, shape, data_offsets}}): {ex.Message}", source, ex);
        }
    }

    public static SafeTensorsFile Open(string path) => Open(path, InMemoryLimit);

    internal static SafeTensorsFile Open(string path, long inMemoryLimit)
    {
        using var fs = RawData.OpenRead(path);
        try
        {
            long len = fs.Length;
            if (len <= inMemoryLimit)
            {
                var bytes = new byte[len];
                int got = RawData.ReadFully(fs, bytes, path);
                if (got != len)
                    throw new QuantToolsException(ErrorCode.IoError, $"file shrank while reading ({got} of {len} bytes)", path);
                return FromBytes(bytes, path);
            }
            var pre = new byte[8];
            RawData.ReadFully(fs, pre, path);
            long hlen = CheckHeaderLength(BinaryPrimitives.ReadUInt64LittleEndian(pre), len, path);
            var header = new byte[hlen];
            if (RawData.ReadFully(fs, header, path) != hlen)
                throw new QuantToolsException(ErrorCode.IoError, "file shrank while reading its header", path);
            return new SafeTensorsFile(null, path, len, header, path);
        }
        catch (IOException ex)
        {
            throw new QuantToolsException(ErrorCode.IoError, ex.Message, path, ex);
        }
    }

    public static SafeTensorsFile FromBytes(byte[] bytes, string source = "<memory>")
    {
        if (bytes.Length < 8)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"file is {bytes.Length} bytes, shorter than the 8-byte header length", source);
        long hlen = CheckHeaderLength(BinaryPrimitives.ReadUInt64LittleEndian(bytes), bytes.Length, source);
        return new SafeTensorsFile(bytes, null, bytes.Length, bytes.AsSpan(8, (int)hlen), source);
    }

    private static long CheckHeaderLength(ulong hlen, long fileLength, string source)
    {
        if (fileLength < 8)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"file is {fileLength} bytes, shorter than the 8-byte header length", source);
        if (hlen > MaxHeaderBytes)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"header claims {hlen} bytes, over the {MaxHeaderBytes}-byte limit", source);
        if (hlen > (ulong)(fileLength - 8))
            throw new QuantToolsException(ErrorCode.CorruptFile, $"header claims {hlen} bytes but only {fileLength - 8} follow", source);
        return (long)hlen;
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public Entry GetEntry(string name) => _entries.TryGetValue(name, out var e)
        ? e
        : throw new QuantToolsException(ErrorCode.InvalidArgument, $"no tensor named '{name}'", Source);

    /// <summary>Reads a tensor. F16/BF16 stay as such unless <paramref name="widenHalf"/> is set (then float32).</summary>
    public Tensor Get(string name, bool widenHalf = false)
    {
        var e = GetEntry(name);
        var dtype = FromSafeTensorsDType(e.DType, Source);
        var shape = e.Shape.Select(d => (int)d).ToArray();
        string what = $"tensor '{name}'";
        Tensor t;
        if (_bytes is not null)
        {
            using var ms = new MemoryStream(_bytes, (int)(_dataStart + e.Begin), (int)(e.End - e.Begin), writable: false);
            t = RawData.ReadTensor(ms, dtype, shape, bigEndian: false, Source, what);
        }
        else
        {
            using var fs = RawData.OpenRead(_path!);
            try
            {
                if (fs.Length < _dataStart + e.End)
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"{what} ends at byte {_dataStart + e.End} but the file now has {fs.Length}", Source);
                fs.Position = _dataStart + e.Begin;
                t = RawData.ReadTensor(fs, dtype, shape, bigEndian: false, Source, what);
            }
            catch (IOException ex)
            {
                throw new QuantToolsException(ErrorCode.IoError, ex.Message, Source, ex);
            }
        }
        if (widenHalf && dtype is DType.Float16 or DType.BFloat16) t = t.ToFloat32();
        return t;
    }

    public float[] GetFloats(string name) => Get(name, widenHalf: true).ToFloat32().AsSpan<float>().ToArray();

    /// <summary>Every tensor, in header order.</summary>
    public IReadOnlyList<(string Name, Tensor Tensor)> ReadAll(bool widenHalf = false) =>
        Names.Select(n => (n, Get(n, widenHalf))).ToList();

    public static DType FromSafeTensorsDType(string s, string? source = null) => s switch
    {
        "F32" => DType.Float32,
        "F64" => DType.Float64,
        "F16" => DType.Float16,
        "BF16" => DType.BFloat16,
        "I8" => DType.Int8,
        "U8" => DType.UInt8,
        "I16" => DType.Int16,
        "I32" => DType.Int32,
        "I64" => DType.Int64,
        "BOOL" => DType.Bool,
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType,
            $"unsupported safetensors dtype '{(s.Length > 40 ? s[..40] + "..." : s)}' (expected F32, F64, F16, BF16, I8, U8, I16, I32, I64 or BOOL)", source),
    };

    public static string ToSafeTensorsDType(DType d) => d switch
    {
        DType.Float32 => "F32",
        DType.Float64 => "F64",
        DType.Float16 => "F16",
        DType.BFloat16 => "BF16",
        DType.Int8 => "I8",
        DType.UInt8 => "U8",
        DType.Int16 => "I16",
        DType.Int32 => "I32",
        DType.Int64 => "I64",
        DType.Bool => "BOOL",
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{d.TorchName()} cannot be stored in safetensors"),
    };

    private static int ElementSize(string dtype, string source) => FromSafeTensorsDType(dtype, source).ElementSize();

    // ---------------------------------------------------------------- writing

    /// <summary>Position of each dtype in the reference library's Dtype enum (its sort key, compared descending).</summary>
    private static int ReferenceRank(DType d) => d switch
    {
        DType.Bool => 0,
        DType.UInt8 => 4,
        DType.Int8 => 5,
        DType.Int16 => 9,
        DType.Float16 => 11,
        DType.BFloat16 => 12,
        DType.Int32 => 13,
        DType.Float32 => 15,
        DType.Float64 => 17,
        DType.Int64 => 18,
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{d.TorchName()} cannot be stored in safetensors"),
    };

    /// <summary>
    /// Writes tensors the way the reference (Rust/Python) writer does: sorted by dtype alignment descending, then by
    /// name (UTF-8 byte order); compact JSON with <c>__metadata__</c> first; header padded with spaces to 8 bytes.
    /// Metadata keys keep the dictionary's order (the reference writer's order is its hash map's).
    /// </summary>
    public static void Write(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        RawData.WriteFileAtomically(path, s => Write(s, tensors, metadata));

    public static void Write(Stream s, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, t) in list)
        {
            if (name is null) throw new QuantToolsException(ErrorCode.InvalidArgument, "a tensor name is null");
            if (name == "__metadata__") throw new QuantToolsException(ErrorCode.InvalidArgument, "'__metadata__' is reserved and cannot name a tensor");
            if (!seen.Add(name)) throw new QuantToolsException(ErrorCode.InvalidArgument, $"tensor name '{name}' is given twice");
            ReferenceRank(t.DType);
        }
        var sorted = list
            .Select(x => (x.Name, x.Tensor, Key: Encoding.UTF8.GetBytes(x.Name)))
            .OrderByDescending(x => ReferenceRank(x.Tensor.DType))
            .ThenBy(x => x.Key, ByteOrder.Instance)
            .ToList();

        var sb = new StringBuilder("{");
        bool first = true;
        if (metadata is not null)
        {
            sb.Append("\"__metadata__\":{");
            bool f2 = true;
            foreach (var kv in metadata)
            {
                if (!f2) sb.Append(',');
                f2 = false;
                JsonString(sb, kv.Key);
                sb.Append(':');
                JsonString(sb, kv.Value ?? throw new QuantToolsException(ErrorCode.InvalidArgument, $"metadata '{kv.Key}' is null"));
            }
            sb.Append('}');
            first = false;
        }
        long offset = 0;
        foreach (var (name, t, _) in sorted)
        {
            if (!first) sb.Append(',');
            first = false;
            long n = (long)t.Length * t.DType.ElementSize();
            JsonString(sb, name);
            sb.Append(":{\"dtype\":\"").Append(ToSafeTensorsDType(t.DType)).Append("\",\"shape\":[");
            sb.Append(string.Join(",", t.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture))));
            sb.Append("],\"data_offsets\":[").Append(offset.ToString(CultureInfo.InvariantCulture)).Append(',')
              .Append((offset + n).ToString(CultureInfo.InvariantCulture)).Append("]}");
            offset += n;
        }
        sb.Append('}');
        var header = Encoding.UTF8.GetBytes(sb.ToString());
        int pad = (8 - header.Length % 8) % 8;
        var prefix = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)(header.Length + pad));
        try
        {
            s.Write(prefix);
            s.Write(header);
            for (int i = 0; i < pad; i++) s.WriteByte((byte)' ');
            foreach (var (_, t, _) in sorted) RawData.WriteTensor(s, t, bigEndian: false);
        }
        catch (IOException ex)
        {
            throw new QuantToolsException(ErrorCode.IoError, $"write failed: {ex.Message}", (s as FileStream)?.Name, ex);
        }
    }

    /// <summary>The file <see cref="Write(Stream, IEnumerable{ValueTuple{string, Tensor}}, IReadOnlyDictionary{string, string}?)"/> would produce, in memory.</summary>
    public static byte[] ToBytes(IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var ms = new MemoryStream();
        Write(ms, tensors, metadata);
        return ms.ToArray();
    }

    /// <summary>JSON string escaping as serde_json does it: \" \\ \b \f \n \r \t, other controls as \u00xx, the rest verbatim.</summary>
    private static void JsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static readonly ByteOrder Instance = new();
        public int Compare(byte[]? x, byte[]? y) => x!.AsSpan().SequenceCompareTo(y);
    }
}
