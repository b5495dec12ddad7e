using System.Globalization;
using System.Text.Json;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats;

/// <summary>
/// Stores quantized tensors in plain tensor files: the int_repr under the tensor's name, per-channel scales and
/// zero points as companion tensors <c>NAME.scales</c> / <c>NAME.zero_points</c>, and the qparams as a JSON string
/// in the safetensors metadata under <c>quanttools.qparams.NAME</c> (the record layout of the golden data:
/// dtype, qscheme, shape, scale, zero_point, axis). Files without that metadata read back as plain tensors.
/// </summary>
public static class QTensorCodec
{
    public const string MetadataPrefix = "quanttools.qparams.";

    public static IEnumerable<(string Name, Tensor Tensor)> Encode(string name, QTensor q, IDictionary<string, string> metadata)
    {
        var qp = q.QParams;
        var rec = new Dictionary<string, object?>
        {
            ["dtype"] = q.DType.TorchName(),
            ["qscheme"] = qp.QScheme.TorchName(),
            ["shape"] = q.Shape,
        };
        var ints = q.IntRepr;
        yield return (name, ints);
        if (qp.IsPerChannel)
        {
            rec["axis"] = qp.Axis;
            rec["scales"] = name + ".scales";
            rec["zero_points"] = name + ".zero_points";
            yield return (name + ".scales", new Tensor(DType.Float64, [qp.Scales.Length], (double[])qp.Scales.Clone()));
            yield return qp.FloatZeroPoints is { } fz
                ? (name + ".zero_points", new Tensor(DType.Float32, [fz.Length], (float[])fz.Clone()))
                : (name + ".zero_points", new Tensor(DType.Int64, [qp.ZeroPoints.Length], (long[])qp.ZeroPoints.Clone()));
        }
        else
        {
            rec["scale"] = qp.Scale;
            rec["zero_point"] = qp.ZeroPoint;
        }
        metadata[MetadataPrefix + name] = JsonSerializer.Serialize(rec);
    }

    /// <summary>Rebuilds tensors from a file's tensors and metadata: QTensor where metadata describes one, else Tensor.</summary>
    public static IReadOnlyList<(string Name, object Value)> Decode(IReadOnlyList<(string Name, Tensor Tensor)> tensors,
        IReadOnlyDictionary<string, string>? metadata, string source)
    {
        var byName = tensors.ToDictionary(t => t.Name, t => t.Tensor, StringComparer.Ordinal);
        var companions = new HashSet<string>(StringComparer.Ordinal);
        var quantized = new Dictionary<string, QTensor>(StringComparer.Ordinal);
        if (metadata is not null)
        {
            foreach (var (key, json) in metadata)
            {
                if (!key.StartsWith(MetadataPrefix, StringComparison.Ordinal)) continue;
                var name = key[MetadataPrefix.Length..];
                if (!byName.TryGetValue(name, out var ints))
                    throw new QuantToolsException(ErrorCode.CorruptFile, $"qparams metadata names tensor '{name}', which the file does not hold", source);
                try
                {
                    using var doc = JsonDocument.Parse(json);
                    var r = doc.RootElement;
                    var dtype = DTypeInfo.Parse(r.GetProperty("dtype").GetString()!);
                    var scheme = QSchemeInfo.Parse(r.GetProperty("qscheme").GetString()!);
                    QParams qp;
                    if (scheme.IsPerChannel())
                    {
                        var sName = r.GetProperty("scales").GetString()!;
                        var zName = r.GetProperty("zero_points").GetString()!;
                        var s = Get(byName, sName, source);
                        var z = Get(byName, zName, source);
                        companions.Add(sName);
                        companions.Add(zName);
                        var scales = Enumerable.Range(0, s.Length).Select(s.GetDouble).ToArray();
                        int axis = r.GetProperty("axis").GetInt32();
                        qp = z.DType.IsFloatingPoint()
                            ? new QParams(scheme, dtype, scales, [], axis, Enumerable.Range(0, z.Length).Select(i => (float)z.GetDouble(i)).ToArray())
                            : new QParams(scheme, dtype, scales, Enumerable.Range(0, z.Length).Select(i => (long)z.GetDouble(i)).ToArray(), axis);
                    }
                    else
                        qp = new QParams(scheme, dtype, [r.GetProperty("scale").GetDouble()], [r.GetProperty("zero_point").GetInt64()]);
                    quantized[name] = new QTensor(ints, qp);
                }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
                {
                    throw new QuantToolsException(ErrorCode.CorruptFile, $"qparams metadata of '{name}' is malformed: {e.Message}", source, e);
                }
            }
        }
        var result = new List<(string, object)>();
        foreach (var (name, t) in tensors)
        {
            if (companions.Contains(name)) continue;
            result.Add((name, quantized.TryGetValue(name, out var q) ? q : t));
        }
        return result;
    }

    private static Tensor Get(Dictionary<string, Tensor> byName, string name, string source) =>
        byName.TryGetValue(name, out var t) ? t
            : throw new QuantToolsException(ErrorCode.CorruptFile, $"qparams metadata refers to missing tensor '{name}'", source);
}
