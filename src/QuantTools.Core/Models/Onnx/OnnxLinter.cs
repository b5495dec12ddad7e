using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Onnx;

/// <summary>
/// Test-QuantModel rules for ONNX graphs, judged on what ONNX Runtime's CPU provider will run:
/// <list type="bullet">
/// <item>FloatOpBetweenQdq (Warning): a Conv / Gemm / MatMul that stays in float after ORT's fusions (its DQ/Q
/// neighbours do not form a node group ORT accepts, e.g. int8 activations on x86 or a Q with two consumers), so ORT
/// dequantizes, runs MLAS's float kernel and quantizes again.</item>
/// <item>U8S8SaturationRisk (Warning): uint8 activations with int8 weights outside [−64, 64]: on x86 CPUs without
/// VNNI, MLAS's vpmaddubsw kernels saturate the sum of two u8·s8 products to int16 (ORT's quantization docs recommend
/// reduce_range or per-channel there); AVX512-VNNI / AMX hosts are exact.</item>
/// <item>PerChannelWeightZeroPoints (Error): QLinearConv needs one weight zero point for every channel
/// ("zero point of per-channel filter must be same").</item>
/// <item>BiasScaleMismatch (Warning): an int32 bias DQ whose scale is not <c>f32(s_x · s_w[c])</c>: ORT adds the bias
/// integers as they are, so the bias is off by that ratio.</item>
/// <item>DegenerateScale (Error): a scale that is 0, negative, NaN, infinite or subnormal.</item>
/// <item>GlobalAveragePoolRange (Error): QLinearGlobalAveragePool with s_x / (s_y · pixels) outside [2^-32, 256),
/// which ORT refuses at run time.</item>
/// </list>
/// </summary>
public static class OnnxLinter
{
    public static IEnumerable<Finding> Lint(OnnxModel model) => Lint(OrtGraph.Optimize(model), OrtGraph.FromModel(model));

    private static Finding F(Severity s, string layer, string rule, string message, params (string K, object? V)[] values) =>
        new(s, layer, rule, message, values.ToDictionary(v => v.K, v => v.V));

    public static IEnumerable<Finding> Lint(OrtGraph fused, OrtGraph original)
    {
        foreach (var n in fused.Nodes)
        {
            if (n.Op is "Conv" or "Gemm" or "MatMul" && n.Inputs.Any(i => original.Nodes.Any(o => o.Op == "DequantizeLinear" && o.Outputs.Contains(i))))
                yield return F(Severity.Warning, n.Name, "FloatOpBetweenQdq",
                    $"{n.Op} '{n.Name}' reads dequantized values but is not fused into an integer kernel by ONNX Runtime's x86 CPU provider " +
                    "(int8 activations are not fused on x86, and each DQ / Q must belong to this node alone); it runs MLAS's float kernel between DQ and Q",
                    ("Op", n.Op));
            foreach (var f in Scales(fused, n)) yield return f;
            if (n.Op is "QLinearConv" or "QGemm" or "QLinearMatMul" && fused.Const(n.Input(3)) is { DType: DType.Int8 } w)
            {
                var ws = w.AsSpan<sbyte>();
                int outside = 0, max = 0;
                foreach (var v in ws) { if (v < -64 || v > 64) outside++; max = Math.Max(max, Math.Abs((int)v)); }
                if (outside > 0)
                    yield return F(Severity.Warning, n.Name, "U8S8SaturationRisk",
                        $"{outside} of {ws.Length} int8 weights lie outside [-64, 64] (max |w| = {max}): on x86 CPUs without VNNI, MLAS sums each pair " +
                        "of uint8 x int8 products in int16 (vpmaddubsw) and saturates at 32767; quantize with reduce_range (7-bit weights) or run on VNNI / AMX",
                        ("WeightsOutside", outside), ("MaxAbsWeight", max));
            }
            if (n.Op == "QLinearConv" && fused.Const(n.Input(5)) is { Length: > 1 } wz && Enumerable.Range(1, wz.Length - 1).Any(i => wz.GetDouble(i) != wz.GetDouble(0)))
                yield return F(Severity.Error, n.Name, "PerChannelWeightZeroPoints",
                    "QLinearConv's per-channel weight zero points differ; ONNX Runtime's CPU kernel refuses this (zero point of per-channel filter must be same)");
            if (n.Op == "QLinearConv" && n.Input(8).Length > 0)
                foreach (var f in BiasScale(fused, original, n)) yield return f;
            if (n.Op == "QLinearGlobalAveragePool" && fused.Const(n.Input(1)) is { Length: 1 } xs && fused.Const(n.Input(3)) is { Length: 1 } ys)
            {
                // pixel count is known only at run time; report the bound per pixel count that breaks it
                float ratio = (float)xs.GetDouble(0) / (float)ys.GetDouble(0);
                if (!(ratio < 256f))
                    yield return F(Severity.Error, n.Name, "GlobalAveragePoolRange",
                        $"s_x / s_y = {ratio:R}: for a 1-pixel image the multiplier is >= 256, which ONNX Runtime refuses (parameter out of computation range)");
            }
        }
    }

    private static IEnumerable<Finding> Scales(OrtGraph g, OrtNode n)
    {
        var (x, w, y, _) = OnnxModelInfo.Slots(n);
        foreach (var slot in new[] { x, w, y })
        {
            if (slot is not { } s || g.Const(n.Input(s.Scale)) is not { } t) continue;
            for (int i = 0; i < t.Length; i++)
            {
                float v = (float)t.GetDouble(i);
                if (v > 0 && float.IsNormal(v)) continue;
                yield return F(Severity.Error, n.Name, "DegenerateScale",
                    $"scale '{n.Input(s.Scale)}'[{i}] = {v:R}: a quantization scale must be a positive normal float32", ("Scale", v));
                break;
            }
        }
    }

    private static IEnumerable<Finding> BiasScale(OrtGraph fused, OrtGraph original, OrtNode n)
    {
        var dq = original.Nodes.FirstOrDefault(o => o.Op == "DequantizeLinear" && o.Input(0) == n.Input(8));
        if (dq is null) yield break;
        if (original.Const(dq.Input(1)) is not { } bs || fused.Const(n.Input(1)) is not { Length: 1 } xs || fused.Const(n.Input(4)) is not { } ws) yield break;
        float sx = (float)xs.GetDouble(0);
        for (int c = 0; c < bs.Length; c++)
        {
            float want = sx * (float)ws.GetDouble(ws.Length == 1 ? 0 : c);
            float got = (float)bs.GetDouble(c);
            if (Math.Abs(got - want) <= 1e-6f * Math.Abs(want)) continue;
            yield return F(Severity.Warning, n.Name, "BiasScaleMismatch",
                $"bias scale [{c}] = {got:R} but s_x · s_w = {want:R}: ONNX Runtime adds the int32 bias as it is, so the bias is scaled by {got / want:R}",
                ("Channel", c), ("BiasScale", got), ("Expected", want));
            yield break;
        }
    }
}
