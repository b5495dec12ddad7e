using QuantTools.Core.Kernels;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models;

public enum Severity { Info, Warning, Error }

/// <summary>A lint finding. Property names are relied on by scripts: keep them.</summary>
public sealed record Finding(Severity Severity, string Layer, string Rule, string Message, IReadOnlyDictionary<string, object?> Values);

/// <summary>
/// Points out qparams that will hurt on deployment: clamp bounds the input qparams cannot represent, zero points
/// outside the dtype, degenerate scales, activation ranges that do not suit the engine's kernels, per-channel scale
/// outliers, dead or saturated weight channels, and biases whose int32 form overflows.
/// </summary>
public static class QuantModelLinter
{
    public const float Float32Eps = 1.1920929e-07f;
    /// <summary>Per-channel weight scales spread over more than this factor are reported.</summary>
    public const double MaxScaleSpread = 1000;
    /// <summary>
    /// A channel with more than this share of its weights at the int8 limits, and at least
    /// <see cref="SaturatedMinCount"/> of them, is reported: min/max calibration puts only the one or two extreme
    /// weights of a channel there, so more means the weight qparams clip.
    /// </summary>
    public const double SaturatedShare = 0.01;
    public const int SaturatedMinCount = 3;

    public static IEnumerable<Finding> Lint(QuantModel model, QEngine engine = QEngine.X86)
    {
        var rows = LayerQParams.For(model);
        var byName = rows.ToDictionary(r => r.Name, StringComparer.Ordinal);
        foreach (var f in NotChecked(model)) yield return f;
        foreach (var layer in LayerQParams.LayersOf(model))
        {
            if (!byName.TryGetValue(layer.Name, out var row)) continue;
            foreach (var f in ScaleAndZeroPoint(layer, row)) yield return f;
            foreach (var f in ClampBounds(layer, row)) yield return f;
            foreach (var f in Weights(layer, row)) yield return f;
        }
        foreach (var f in ActivationRange(model, rows, engine)) yield return f;
    }

    /// <summary>
    /// What a file without a graph hides from the rules (Info findings, rule <c>NotChecked</c>): a state_dict holds no
    /// tensors for parameter-free modules (ReLU6, Hardtanh, pools), so their kind and clamp bounds are unknown and
    /// ClampBoundOutOfRange cannot look at them; a fused ConvReLU2d looks like a Conv2d.
    /// </summary>
    public static IEnumerable<Finding> NotChecked(QuantModel model)
    {
        if (model.Graph is not null || model.Form == "torchscript") yield break;
        foreach (var m in model.ModulesWithoutTensors)
            yield return new Finding(Severity.Info, m, "NotChecked",
                $"'{m}' holds no tensors in this {model.Form} file, so its kind is unknown (a ReLU6, Hardtanh, clamp or pool is invisible here): " +
                "ClampBoundOutOfRange was not checked for it; run Test-QuantModel on the TorchScript form, or pass -Architecture (an architecture file or a built-in one)",
                V(("Form", model.Form)));
        if (model.Layers.Any(l => l.Kind is "Conv1d" or "Conv2d" or "Conv3d" or "Linear"))
            yield return new Finding(Severity.Info, "", "NotChecked",
                $"a {model.Form} file does not tell a fused ConvReLU2d / LinearReLU from a plain Conv2d / Linear, and wires inputs by module order; rules that need the fused ReLU or the exact producer of an input may miss findings",
                V(("Form", model.Form)));
    }

    private static Dictionary<string, object?> V(params (string K, object? V)[] kv) =>
        kv.ToDictionary(p => p.K, p => p.V, StringComparer.Ordinal);

    private static IEnumerable<Finding> ScaleAndZeroPoint(ModelLayer layer, LayerQParams row)
    {
        if (layer.OutputScale is { } s)
        {
            if (s == 0 || double.IsNaN(s) || double.IsInfinity(s))
                yield return new Finding(Severity.Error, layer.Name, "DegenerateScale",
                    $"output scale is {s}: every value quantizes to the zero point or is undefined", V(("OutputScale", s)));
            else if ((float)s <= Float32Eps)
                yield return new Finding(Severity.Warning, layer.Name, "ScaleAtEps",
                    $"output scale {s:R} is at the observer's eps ({Float32Eps:R}): the observed range was (almost) empty, so this layer's output carries no information",
                    V(("OutputScale", s), ("Eps", (double)Float32Eps)));
        }
        if (layer.OutputZeroPoint is { } z)
        {
            var (lo, hi) = layer.OutputDType.QuantRange();
            if (z < lo || z > hi)
                yield return new Finding(Severity.Error, layer.Name, "ZeroPointOutOfRange",
                    $"output zero point {z} lies outside {layer.OutputDType.TorchName()}'s range {lo}..{hi}",
                    V(("OutputZeroPoint", z), ("QuantMin", lo), ("QuantMax", hi)));
        }
        if (layer.Weight is { } w)
        {
            var qp = w.QParams;
            var (lo, hi) = w.DType.QuantRange();
            for (int c = 0; c < qp.Scales.Length; c++)
            {
                double sc = qp.Scales[c];
                if (sc == 0 || double.IsNaN(sc) || double.IsInfinity(sc))
                    yield return new Finding(Severity.Error, layer.Name, "DegenerateScale",
                        $"weight scale of channel {c} is {sc}", V(("Channel", c), ("WeightScale", sc)));
                if (qp.FloatZeroPoints is null && (qp.ZeroPoints[c] < lo || qp.ZeroPoints[c] > hi))
                    yield return new Finding(Severity.Error, layer.Name, "ZeroPointOutOfRange",
                        $"weight zero point {qp.ZeroPoints[c]} of channel {c} lies outside {w.DType.TorchName()}'s range {lo}..{hi}",
                        V(("Channel", c), ("WeightZeroPoint", qp.ZeroPoints[c])));
            }
        }
    }

    /// <summary>ReLU6 / Hardtanh / clamp bounds quantized with the input qparams, as PyTorch's kernels do.</summary>
    private static IEnumerable<Finding> ClampBounds(ModelLayer layer, LayerQParams row)
    {
        (double? Lo, double? Hi) bounds = layer.Kind switch
        {
            "ReLU6" => (0.0, 6.0),
            "Hardtanh" or "Clamp" => (layer.Attribute("min_val") ?? layer.Attribute("min"), layer.Attribute("max_val") ?? layer.Attribute("max")),
            _ => (null, null),
        };
        if (bounds.Lo is null && bounds.Hi is null) yield break;
        if (row.InputScale is not { } s || row.InputZeroPoint is not { } z) yield break;
        var dtype = DType.QUInt8;
        var (qmin, qmax) = dtype.QuantRange();
        foreach (var (which, bound) in new[] { ("upper", bounds.Hi), ("lower", bounds.Lo) })
        {
            if (bound is not { } b) continue;
            double steps = b / s;
            double exact = z + steps;
            // PyTorch quantizes the bound with the input qparams (reciprocal multiply, round half even, saturate).
            float inv = 1.0f / (float)s;
            double q = z + Math.Round((double)((float)b * inv), MidpointRounding.ToEven);
            if (q <= qmax && q >= qmin) continue;
            long saturated = (long)Math.Clamp(q, qmin, qmax);
            long wrapped = ((long)q % 256 + 256) % 256;
            string effect = which == "upper"
                ? $"saturates at {qmax}, so {layer.Kind} acts as {(bounds.Lo is 0.0 ? "ReLU" : "a one-sided clamp")} here (right in PyTorch); a backend that computes the bound in uint8 wraps it to {wrapped} and clips valid activations"
                : $"saturates at {qmin}, so the lower bound never clips (right in PyTorch); a backend that computes it in uint8 wraps it to {wrapped}";
            string beyond = which == "upper" ? $"> {qmax}" : $"< {qmin}";
            yield return new Finding(Severity.Warning, layer.Name, "ClampBoundOutOfRange",
                $"{layer.Kind} {which} bound {b} at input scale {s:R}, zero point {z} is {steps:F1} steps, q = {q} {beyond}: it {effect}",
                V(("Bound", b), ("InputScale", s), ("InputZeroPoint", z), ("Steps", steps), ("QuantizedBound", q),
                  ("Saturated", saturated), ("WrappedUInt8", wrapped), ("ExactBound", exact)));
        }
    }

    private static IEnumerable<Finding> Weights(ModelLayer layer, LayerQParams row)
    {
        if (layer.Weight is not { } w) yield break;
        var qp = w.QParams;
        if (row.WeightScaleSpread is { } spread && spread > MaxScaleSpread)
            yield return new Finding(Severity.Warning, layer.Name, "PerChannelScaleSpread",
                $"per-channel weight scales span {spread:G3}x ({row.WeightScaleMin:G3} .. {row.WeightScaleMax:G3}), more than three orders of magnitude: small channels lose precision in backends that share one scale or requantize with a single shift",
                V(("WeightScaleMin", row.WeightScaleMin), ("WeightScaleMax", row.WeightScaleMax), ("Spread", spread)));
        int channels = qp.IsPerChannel ? qp.Scales.Length : (w.Shape.Length > 0 ? w.Shape[0] : 1);
        int axis = qp.IsPerChannel ? qp.Axis : 0;
        if (w.Shape.Length == 0 || channels == 0) yield break;
        var (lo, hi) = w.DType.QuantRange();
        var zeroCount = new long[channels];
        var limitCount = new long[channels];
        var total = new long[channels];
        int inner = 1;
        for (int d = axis + 1; d < w.Shape.Length; d++) inner *= w.Shape[d];
        for (int i = 0; i < w.Length; i++)
        {
            int c = i / inner % w.Shape[axis];
            if (c >= channels) continue;
            double v = w.IntRepr.GetDouble(i);
            long zp = qp.FloatZeroPoints is null ? qp.ZeroPoints[qp.IsPerChannel ? c : 0] : 0;
            total[c]++;
            if (v == zp) zeroCount[c]++;
            if (v == lo || v == hi) limitCount[c]++;
        }
        var dead = Enumerable.Range(0, channels).Where(c => total[c] > 0 && zeroCount[c] == total[c]).ToArray();
        if (dead.Length > 0)
            yield return new Finding(Severity.Warning, layer.Name, "DeadChannel",
                $"{dead.Length} output channel(s) have all-zero weights: {string.Join(", ", dead.Take(16))}{(dead.Length > 16 ? ", ..." : "")}",
                V(("Channels", dead)));
        var saturated = Enumerable.Range(0, channels).Where(c => limitCount[c] >= SaturatedMinCount && limitCount[c] > SaturatedShare * total[c]).ToArray();
        if (saturated.Length > 0)
            yield return new Finding(Severity.Warning, layer.Name, "WeightsSaturated",
                $"{saturated.Length} channel(s) have more than {SaturatedShare:P0} of their weights at the int8 limits {lo}/{hi} (clipped by the weight qparams): {string.Join(", ", saturated.Take(16))}",
                V(("Channels", saturated), ("Counts", saturated.Select(c => limitCount[c]).ToArray())));
        if (layer.Bias is { } bias && row.InputScale is { } sIn)
        {
            var b = bias.ToFloat32().AsSpan<float>().ToArray();
            for (int c = 0; c < b.Length; c++)
            {
                double sw = qp.Scales[qp.IsPerChannel ? Math.Min(c, qp.Scales.Length - 1) : 0];
                double q = Math.Round(b[c] / (sIn * sw));
                if (Math.Abs(q) > int.MaxValue)
                    yield return new Finding(Severity.Error, layer.Name, "BiasOverflow",
                        $"bias {b[c]} of channel {c} is {q:G4} in int32 units of s_in*s_w = {sIn * sw:G4}: beyond int32, so backends that quantize the bias (qnnpack, TFLite, TVM) saturate it",
                        V(("Channel", c), ("Bias", (double)b[c]), ("BiasScale", sIn * sw), ("QuantizedBias", q)));
            }
        }
    }

    /// <summary>
    /// Non-VNNI fbgemm kernels saturate each pair of u8·s8 products to int16: activations that use the full
    /// 0..255 range can overflow there (reduce_range exists for this). The reverse on qnnpack / onednn: 7-bit
    /// activations waste a bit. A zero point above 127 shows a full-range activation.
    /// </summary>
    private static IEnumerable<Finding> ActivationRange(QuantModel model, IReadOnlyList<LayerQParams> rows, QEngine engine)
    {
        var consumers = rows.Where(r => r.Kind.StartsWith("Conv", StringComparison.Ordinal) || r.Kind.StartsWith("Linear", StringComparison.Ordinal)).ToList();
        if (consumers.Count == 0) yield break;
        var fullRange = consumers.Where(r => r.InputZeroPoint is > 127).ToList();
        bool saturatingEngine = engine is QEngine.X86 or QEngine.Fbgemm or QEngine.FbgemmAvx2;
        if (saturatingEngine && fullRange.Count > 0)
        {
            foreach (var r in fullRange)
                yield return new Finding(engine == QEngine.FbgemmAvx2 ? Severity.Warning : Severity.Info, r.Name, "ReduceRangeAdvice",
                    $"input zero point {r.InputZeroPoint} shows activations using the full 0..255 range; on {engine.TorchName()} without VNNI, pairs of u8 x s8 products saturate to int16 (255*127*2 > 32767): calibrate with reduce_range=True (the x86/fbgemm default qconfig)",
                    V(("InputScale", r.InputScale), ("InputZeroPoint", r.InputZeroPoint), ("Engine", engine.TorchName())));
        }
        else if (!saturatingEngine && fullRange.Count == 0 && rows.Any(r => r.Kind == "Quantize"))
        {
            yield return new Finding(Severity.Info, model.Layers[0].Name, "ReduceRangeAdvice",
                $"every conv/linear input zero point is at most 127, which suggests 7-bit (reduce_range) activations; {engine.TorchName()} has no int16 stage, so the full 0..255 range would give one more bit of precision",
                V(("Engine", engine.TorchName()), ("Layers", consumers.Count)));
        }
    }
}
