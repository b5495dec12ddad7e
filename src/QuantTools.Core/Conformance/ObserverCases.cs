using System.Globalization;
using System.Text;
using System.Text.Json;
using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Conformance;

/// <summary>
/// Golden observer cases (observers.json): builds each observer from its kwargs, feeds the batches in order and
/// compares scale (float32 bits), zero points (exactly), min_val / max_val and histogram (float32 bits).
/// Each entry of <c>errors</c> (PyTorch refusing to construct an observer) becomes a case that passes when our
/// constructor refuses with the same meaning.
/// </summary>
public sealed class ObserverCases : IConformanceCategory
{
    public string Category => "observers";

    public bool Handles(string jsonPath) => GoldenPaths.Name(jsonPath) == "observers.json";

    public IEnumerable<CaseResult> Run(GoldenFile file, CancellationToken cancel)
    {
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var c in file.Cases)
        {
            cancel.ThrowIfCancellationRequested();
            string id = c.TryGetProperty("id", out var idEl) ? idEl.GetString() ?? "?" : "?";
            CaseResult r;
            try
            {
                r = RunCase(file, c, id, inputs);
            }
            catch (QuantToolsException e)
            {
                r = new CaseResult(id, Category, null, CaseStatus.Failed, $"refused: {e.Code}: {e.Message}");
            }
            yield return r;
        }
        foreach (var err in file.Errors)
        {
            cancel.ThrowIfCancellationRequested();
            yield return RunRefusal(err);
        }
    }

    private CaseResult RunCase(GoldenFile file, JsonElement c, string id, Dictionary<string, Tensor> inputs)
    {
        string cls = c.GetProperty("observer").GetString()!;
        var opts = OptionsFromKwargs(c.GetProperty("kwargs"), cls);
        var obs = ObserverFactory.Create(cls, opts);
        foreach (var b in c.GetProperty("batches").EnumerateArray())
        {
            var key = b.GetString()!;
            if (!inputs.TryGetValue(key, out var t))
                inputs[key] = t = file.Tensors.Get(key, widenHalf: true);
            obs.Forward(t);
        }
        var qp = obs.CalculateQParams();
        var tensors = file.Tensors;

        // scale
        var expScale = tensors.GetFloats(c.GetProperty("scale").GetString()!);
        if (expScale.Length != qp.Scales.Length)
            return Fail(id, $"scale: expected {expScale.Length} values, got {qp.Scales.Length}");
        for (int i = 0; i < expScale.Length; i++)
            if (Bits((float)qp.Scales[i]) != Bits(expScale[i]))
                return Fail(id, $"scale[{i}]: expected {F(expScale[i])}, got {F((float)qp.Scales[i])}");

        // zero point
        var zpT = tensors.Get(c.GetProperty("zero_point").GetString()!);
        if (zpT.Length != qp.Scales.Length)
            return Fail(id, $"zero_point: expected {zpT.Length} values, got {qp.Scales.Length}");
        if (zpT.DType.IsFloatingPoint())
        {
            if (qp.FloatZeroPoints is null)
                return Fail(id, "zero_point: expected float zero points, got integer ones");
            for (int i = 0; i < zpT.Length; i++)
            {
                float e = (float)zpT.GetDouble(i);
                if (Bits(e) != Bits(qp.FloatZeroPoints[i]))
                    return Fail(id, $"zero_point[{i}]: expected {F(e)}, got {F(qp.FloatZeroPoints[i])}");
            }
        }
        else
        {
            if (qp.FloatZeroPoints is not null)
                return Fail(id, "zero_point: expected integer zero points, got float ones");
            var zps = zpT.AsSpan<long>();
            for (int i = 0; i < zps.Length; i++)
                if (zps[i] != qp.ZeroPoints[i])
                    return Fail(id, $"zero_point[{i}]: expected {zps[i]}, got {qp.ZeroPoints[i]}");
        }

        // statistics
        foreach (var (field, actual) in new[] { ("min_val", obs.MinVal), ("max_val", obs.MaxVal) })
        {
            if (!c.TryGetProperty(field, out var k)) continue;
            var exp = tensors.GetFloats(k.GetString()!);
            var m = CompareBits(field, exp, actual);
            if (m is not null) return Fail(id, m);
        }
        if (c.TryGetProperty("histogram", out var hk))
        {
            if (obs is not HistogramObserver h)
                return Fail(id, "histogram expected but the observer keeps none");
            if (c.TryGetProperty("bins", out var bins) && bins.GetInt32() != h.Bins)
                return Fail(id, $"bins: expected {bins.GetInt32()}, got {h.Bins}");
            var m = CompareBits("histogram", tensors.GetFloats(hk.GetString()!), h.Histogram);
            if (m is not null) return Fail(id, m);
        }
        return new CaseResult(id, Category, null, CaseStatus.Passed,
            $"{cls}: scale, zero_point{(c.TryGetProperty("min_val", out _) ? ", min/max" : "")}{(c.TryGetProperty("histogram", out _) ? ", histogram" : "")} bit-exact");
    }

    private static string? CompareBits(string field, float[] expected, float[] actual)
    {
        if (expected.Length != actual.Length)
            return $"{field}: expected {expected.Length} values, got {actual.Length}";
        for (int i = 0; i < expected.Length; i++)
            if (Bits(expected[i]) != Bits(actual[i]))
                return $"{field}[{i}]: expected {F(expected[i])}, got {F(actual[i])}";
        return null;
    }

    private CaseResult Fail(string id, string detail) => new(id, Category, null, CaseStatus.Failed, detail);

    private static int Bits(float f) => BitConverter.SingleToInt32Bits(f);

    private static string F(float f) =>
        $"{f.ToString("R", CultureInfo.InvariantCulture)} (0x{BitConverter.SingleToUInt32Bits(f):X8})";

    /// <summary>Maps PyTorch observer kwargs (JSON object or parsed Python dict) to options.</summary>
    public static ObserverOptions OptionsFromKwargs(JsonElement kw, string observerClass)
    {
        var o = new ObserverOptions();
        bool schemeGiven = false;
        foreach (var p in kw.EnumerateObject())
        {
            var v = p.Value;
            switch (p.Name)
            {
                case "dtype": o.Dtype = DTypeInfo.Parse(v.GetString()!); break;
                case "qscheme": o.QScheme = QSchemeInfo.Parse(v.GetString()!); schemeGiven = true; break;
                case "reduce_range": o.ReduceRange = v.GetBoolean(); break;
                case "quant_min": o.QuantMin = v.ValueKind == JsonValueKind.Null ? null : v.GetInt64(); break;
                case "quant_max": o.QuantMax = v.ValueKind == JsonValueKind.Null ? null : v.GetInt64(); break;
                case "eps": o.Eps = (float)v.GetDouble(); break;
                case "ch_axis": o.ChAxis = v.GetInt32(); break;
                case "averaging_constant": o.AveragingConstant = v.GetDouble(); break;
                case "bins": o.Bins = v.GetInt32(); break;
                case "scale": o.Scale = v.GetDouble(); break;
                case "zero_point": o.ZeroPoint = v.GetInt64(); break;
                case "is_dynamic": o.IsDynamic = v.GetBoolean(); break;
                default:
                    throw new QuantToolsException(ErrorCode.NotSupported, $"observer kwarg '{p.Name}' is not supported");
            }
        }
        // per-channel classes default to per_channel_affine in PyTorch
        if (!schemeGiven && observerClass.Contains("PerChannel", StringComparison.OrdinalIgnoreCase))
            o.QScheme = QScheme.PerChannelAffine;
        return o;
    }

    private CaseResult RunRefusal(JsonElement err)
    {
        string caseText = err.TryGetProperty("case", out var ce) ? ce.GetString() ?? "" : "";
        string errorText = err.TryGetProperty("error", out var ee) ? ee.GetString() ?? "" : "";
        var parts = caseText.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
        string id = parts.Length > 0 ? parts[0] : "?";
        if (parts.Length < 3)
            return new CaseResult(id, Category, null, CaseStatus.Failed, $"cannot parse refusal case '{caseText}'");
        string cls = parts[1];
        int colon = errorText.IndexOf(':');
        string pyType = colon > 0 ? errorText[..colon].Trim() : errorText.Trim();
        string pyMessage = colon > 0 ? errorText[(colon + 1)..] : "";
        ObserverOptions opts;
        try
        {
            using var doc = JsonDocument.Parse(PythonLiteralToJson(parts[2]));
            opts = OptionsFromKwargs(doc.RootElement, cls);
        }
        catch (Exception e) when (e is JsonException or FormatException or QuantToolsException or InvalidOperationException)
        {
            return new CaseResult(id, Category, null, CaseStatus.Failed, $"cannot parse kwargs of '{caseText}': {e.Message}");
        }
        try
        {
            ObserverFactory.Create(cls, opts);
            return new CaseResult(id, Category, null, CaseStatus.Failed,
                $"PyTorch refused ({errorText}) but {cls} was constructed");
        }
        catch (QuantToolsException e)
        {
            var expectedCode = pyType switch
            {
                "NotImplementedError" => ErrorCode.NotSupported,
                "AssertionError" or "ValueError" => ErrorCode.InvalidQParams,
                _ => e.Code,
            };
            bool sameMeaning = Normalize(e.Message).Contains(Normalize(pyMessage), StringComparison.OrdinalIgnoreCase);
            if (e.Code == expectedCode && sameMeaning)
                return new CaseResult(id, Category, null, CaseStatus.Passed, $"refused like PyTorch: {e.Code}: {e.Message}");
            return new CaseResult(id, Category, null, CaseStatus.Failed,
                $"expected {pyType}: {Normalize(pyMessage)}; got {e.Code}: {e.Message}");
        }
    }

    private static string Normalize(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool space = false;
        foreach (var ch in s.Trim())
        {
            if (char.IsWhiteSpace(ch)) { space = true; continue; }
            if (space && sb.Length > 0) sb.Append(' ');
            space = false;
            sb.Append(ch);
        }
        return sb.ToString();
    }

    /// <summary>Converts a Python dict literal of simple values ('str', True/False/None, numbers) to JSON.</summary>
    internal static string PythonLiteralToJson(string py)
    {
        var sb = new StringBuilder(py.Length + 8);
        for (int i = 0; i < py.Length; i++)
        {
            char ch = py[i];
            if (ch is '\'' or '"')
            {
                char q = ch;
                sb.Append('"');
                for (i++; i < py.Length && py[i] != q; i++)
                {
                    if (py[i] == '\\' && i + 1 < py.Length) { sb.Append('\\').Append(py[++i]); continue; }
                    if (py[i] == '"') sb.Append('\\');
                    sb.Append(py[i]);
                }
                sb.Append('"');
            }
            else if (char.IsLetter(ch))
            {
                int j = i;
                while (j < py.Length && (char.IsLetterOrDigit(py[j]) || py[j] == '_' || py[j] == '.')) j++;
                string word = py[i..j];
                sb.Append(word switch
                {
                    "True" => "true",
                    "False" => "false",
                    "None" => "null",
                    "inf" => "1e999",
                    _ => throw new FormatException($"unsupported Python literal '{word}'"),
                });
                i = j - 1;
            }
            else if (ch == '(') sb.Append('[');
            else if (ch == ')') sb.Append(']');
            else sb.Append(ch);
        }
        return sb.ToString();
    }
}
