using System.Text.Json;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats;

/// <summary>
/// A .safetensors file: 8-byte little-endian header length, a JSON header mapping names to
/// {dtype, shape, data_offsets}, then the data. Offsets and sizes are checked before anything is allocated.
/// </summary>
public sealed class SafeTensorsFile
{
    public sealed record Entry(string Name, string DType, long[] Shape, long Begin, long End);

    private readonly byte[] _bytes;
    private readonly long _dataStart;
    private readonly Dictionary<string, Entry> _entries;
    public string Source { get; }
    public IReadOnlyList<string> Names { get; }
    public IReadOnlyDictionary<string, string>? Metadata { get; }

    private SafeTensorsFile(byte[] bytes, string source)
    {
        _bytes = bytes;
        Source = source;
        if (bytes.Length < 8)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"file is {bytes.Length} bytes, shorter than the 8-byte header length", source);
        ulong hlen = BitConverter.ToUInt64(bytes, 0);
        if (hlen > (ulong)(bytes.Length - 8))
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"header claims {hlen} bytes but only {bytes.Length - 8} follow", source);
        _dataStart = 8 + (long)hlen;
        _entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var names = new List<string>();
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes.AsMemory(8, (int)hlen), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile, $"header is not valid JSON: {e.Message}", source, e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new QuantToolsException(ErrorCode.CorruptFile, "header is not a JSON object", source);
            long dataLen = bytes.Length - _dataStart;
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__")
                {
                    if (p.Value.ValueKind == JsonValueKind.Object)
                    {
                        var md = new Dictionary<string, string>();
                        foreach (var m in p.Value.EnumerateObject())
                            md[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                        Metadata = md;
                    }
                    continue;
                }
                var e = ParseEntry(p, source);
                if (e.End > dataLen)
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"tensor '{e.Name}' ends at byte {e.End} of the data, which has only {dataLen} bytes", source);
                long numel = Tensor.CheckedNumel(e.Shape, source);
                long need = numel * ElementSize(e.DType, source);
                if (e.End - e.Begin != need)
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"tensor '{e.Name}' ({e.DType} [{string.Join(", ", e.Shape)}]) needs {need} bytes but its offsets span {e.End - e.Begin}", source);
                if (!_entries.TryAdd(e.Name, e))
                    throw new QuantToolsException(ErrorCode.CorruptFile, $"tensor '{e.Name}' appears twice", source);
                names.Add(e.Name);
            }
        }
        Names = names;
    }

    private static Entry ParseEntry(JsonProperty p, string source)
    {
        try
        {
            var v = p.Value;
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

    public static SafeTensorsFile Open(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new QuantToolsException(ErrorCode.IoError, ex.Message, path, ex);
        }
        return new SafeTensorsFile(bytes, path);
    }

    public static SafeTensorsFile FromBytes(byte[] bytes, string source = "<memory>") => new(bytes, source);

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
        var span = _bytes.AsSpan((int)(_dataStart + e.Begin), (int)(e.End - e.Begin));
        var t = Tensor.FromBytes(dtype, shape, span);
        if (widenHalf && dtype is DType.Float16 or DType.BFloat16) t = t.ToFloat32();
        return t;
    }

    public float[] GetFloats(string name) => Get(name, widenHalf: true).ToFloat32().AsSpan<float>().ToArray();

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
            $"unsupported safetensors dtype '{s}' (expected F32, F64, F16, BF16, I8, U8, I16, I32, I64 or BOOL)", source),
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
}
