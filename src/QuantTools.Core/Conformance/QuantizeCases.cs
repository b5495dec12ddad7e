using System.Globalization;
using System.Text.Json;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Conformance;

/// <summary>
/// Golden category "quantize" (quantize.json): quantize_per_tensor, quantize_per_channel,
/// fake_quantize_per_tensor_affine and fake_quantize_per_channel_affine. Integers must be equal and floats equal
/// bit for bit (NaN equals NaN only by bits). A failed case's Detail names the first mismatch.
/// </summary>
public sealed class QuantizeCases : IConformanceCategory
{
    public string Category => "quantize";

    public bool Handles(string jsonPath) => GoldenPaths.Name(jsonPath) == "quantize.json";

    public IEnumerable<CaseResult> Run(GoldenFile file, CancellationToken cancel)
    {
        foreach (var c in file.Cases)
        {
            cancel.ThrowIfCancellationRequested();
            string id = c.TryGetProperty("id", out var i) ? i.GetString() ?? "?" : "?";
            CaseResult r;
            try
            {
                var detail = RunCase(file, c);
                r = new CaseResult(id, Category, null, detail is null ? CaseStatus.Passed : CaseStatus.Failed,
                    detail ?? "all values equal");
            }
            catch (QuantToolsException e)
            {
                r = new CaseResult(id, Category, null, CaseStatus.Failed, $"{e.Code}: {e.Message}");
            }
            catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
            {
                r = new CaseResult(id, Category, null, CaseStatus.Failed, $"malformed case: {e.Message}");
            }
            yield return r;
        }
    }

    /// <summary>Runs one case; null when everything matches, else a description of the first mismatch.</summary>
    public static string? RunCase(GoldenFile file, JsonElement c)
    {
        string fn = c.GetProperty("fn").GetString()!;
        var t = file.Tensors;
        var x = t.Get(c.GetProperty("input").GetString()!, widenHalf: true).ToFloat32();
        if (c.TryGetProperty("input_slice", out var sl))
        {
            int a = sl[0].GetInt32(), b = sl[1].GetInt32();
            x = Tensor.FromArray(x.AsSpan<float>()[a..b].ToArray(), b - a);
        }
        var xs = x.AsSpan<float>().ToArray();

        switch (fn)
        {
            case "quantize_per_tensor":
            {
                var dtype = DTypeInfo.Parse(c.GetProperty("dtype").GetString()!);
                var qp = QParams.PerTensor(c.GetProperty("scale").GetDouble(), c.GetProperty("zero_point").GetInt64(), dtype);
                var q = Quantizer.Quantize(x, qp);
                return CompareInts(t, c, q, xs) ?? CompareDequant(t, c, q);
            }
            case "quantize_per_channel":
            {
                var dtype = DTypeInfo.Parse(c.GetProperty("dtype").GetString()!);
                var qp = PerChannelParams(t, c, dtype);
                var q = Quantizer.Quantize(x, qp);
                return CompareInts(t, c, q, xs) ?? CompareDequant(t, c, q);
            }
            case "fake_quantize_per_tensor_affine":
            {
                long lo = c.GetProperty("quant_min").GetInt64(), hi = c.GetProperty("quant_max").GetInt64();
                var qp = new QParams(QScheme.PerTensorAffine, FakeDType(lo), [c.GetProperty("scale").GetDouble()],
                    [c.GetProperty("zero_point").GetInt64()], quantMin: lo, quantMax: hi);
                return CompareFloats("out", xs, t.GetFloats(c.GetProperty("out").GetString()!),
                    Quantizer.FakeQuantize(x, qp).AsSpan<float>());
            }
            case "fake_quantize_per_channel_affine":
            {
                long lo = c.GetProperty("quant_min").GetInt64(), hi = c.GetProperty("quant_max").GetInt64();
                var qp = PerChannelParams(t, c, FakeDType(lo), lo, hi);
                return CompareFloats("out", xs, t.GetFloats(c.GetProperty("out").GetString()!),
                    Quantizer.FakeQuantize(x, qp).AsSpan<float>());
            }
            default:
                return $"unknown fn '{fn}'";
        }
    }

    private static DType FakeDType(long quantMin) => quantMin < 0 ? DType.QInt8 : DType.QUInt8;

    private static QParams PerChannelParams(Formats.SafeTensorsFile t, JsonElement c, DType dtype, long? lo = null, long? hi = null)
    {
        var scales = t.Get(c.GetProperty("scales").GetString()!);
        var zps = t.Get(c.GetProperty("zero_points").GetString()!);
        int axis = c.GetProperty("axis").GetInt32();
        var sc = Enumerable.Range(0, scales.Length).Select(scales.GetDouble).ToArray();
        if (zps.DType.IsFloatingPoint())
            return new QParams(QScheme.PerChannelAffineFloatQParams, dtype, sc, [], axis,
                Enumerable.Range(0, zps.Length).Select(k => (float)zps.GetDouble(k)).ToArray(), lo, hi);
        return new QParams(QScheme.PerChannelAffine, dtype, sc,
            Enumerable.Range(0, zps.Length).Select(k => (long)zps.GetDouble(k)).ToArray(), axis, null, lo, hi);
    }

    private static string? CompareInts(Formats.SafeTensorsFile t, JsonElement c, QTensor q, float[] xs)
    {
        var expT = t.Get(c.GetProperty("int").GetString()!);
        long[] exp, act;
        if (q.DType is DType.QUInt4x2 or DType.QUInt2x4)
        {
            exp = QTensor.UnpackSubByte(expT.AsSpan<byte>(), q.DType, q.Length).Select(b => (long)b).ToArray();
            var packed = q.PackedBytes();
            if (!packed.AsSpan().SequenceEqual(expT.AsSpan<byte>()))
            {
                // report the element-level mismatch below; if elements agree the packing itself differs
                act = Enumerable.Range(0, q.Length).Select(k => (long)q.IntRepr.GetDouble(k)).ToArray();
                return FirstIntMismatch(exp, act, xs) ?? "int: packed bytes differ although the unpacked values agree";
            }
            return null;
        }
        if (expT.Length != q.Length)
            return $"int: expected {expT.Length} values, got {q.Length}";
        exp = Enumerable.Range(0, expT.Length).Select(k => (long)expT.GetDouble(k)).ToArray();
        act = Enumerable.Range(0, q.Length).Select(k => (long)q.IntRepr.GetDouble(k)).ToArray();
        return FirstIntMismatch(exp, act, xs);
    }

    private static string? FirstIntMismatch(long[] exp, long[] act, float[] xs)
    {
        for (int k = 0; k < exp.Length; k++)
            if (exp[k] != act[k])
            {
                int bad = 0;
                for (int j = k; j < exp.Length; j++) if (exp[j] != act[j]) bad++;
                return $"int[{k}]: input {F(xs[k])}, expected {exp[k]}, actual {act[k]} ({bad} of {exp.Length} differ)";
            }
        return null;
    }

    private static string? CompareDequant(Formats.SafeTensorsFile t, JsonElement c, QTensor q)
    {
        if (!c.TryGetProperty("dequant", out var d)) return null;
        var ints = Enumerable.Range(0, q.Length).Select(k => (float)q.IntRepr.GetDouble(k)).ToArray();
        return CompareFloats("dequant", ints, t.GetFloats(d.GetString()!), Quantizer.Dequantize(q).AsSpan<float>(), "q");
    }

    private static string? CompareFloats(string what, float[] input, float[] exp, ReadOnlySpan<float> act, string inputName = "input")
    {
        if (exp.Length != act.Length) return $"{what}: expected {exp.Length} values, got {act.Length}";
        for (int k = 0; k < exp.Length; k++)
            if (BitConverter.SingleToInt32Bits(exp[k]) != BitConverter.SingleToInt32Bits(act[k]))
            {
                int bad = 0;
                for (int j = k; j < exp.Length; j++)
                    if (BitConverter.SingleToInt32Bits(exp[j]) != BitConverter.SingleToInt32Bits(act[j])) bad++;
                return $"{what}[{k}]: {inputName} {F(input[k])}, expected {F(exp[k])}, actual {F(act[k])} ({bad} of {exp.Length} differ)";
            }
        return null;
    }

    private static string F(float v) =>
        $"{v.ToString("R", CultureInfo.InvariantCulture)} (0x{BitConverter.SingleToInt32Bits(v):X8})";
}
