using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Onnx;

/// <summary>
/// Get-QParams rows and Test-QuantModel findings for ONNX models. Rows describe the kernels ONNX Runtime runs (the
/// graph after <see cref="OrtGraph.Optimize"/>): one per quantized node, named after the file's node (the Conv of a
/// DQ-Conv-Q group), with its input, weight and output qparams and the requantization multipliers exactly as ORT computes
/// them in float32 (<c>f32(f32(s_x · s_w) / s_y)</c>), with their fixed-point form.
/// </summary>
public static class OnnxModelInfo
{
    public static IReadOnlyList<LayerQParams> Rows(OnnxModel model) => Rows(OrtGraph.Optimize(model));

    public static IReadOnlyList<LayerQParams> Rows(OrtGraph g)
    {
        var rows = new List<LayerQParams>();
        var producer = new Dictionary<string, OrtNode>(StringComparer.Ordinal);
        foreach (var n in g.Nodes) foreach (var o in n.Outputs) producer[o] = n;
        string? From(string value) => producer.TryGetValue(value, out var p) ? p.Name : value;
        foreach (var n in g.Nodes)
        {
            var (x, w, y, bias) = Slots(n);
            if (x is null && y is null) continue;
            var xs = x is { } xi ? ScalarQ(g, n, xi.Scale, xi.Zp) : null;
            var ys = y is { } yi ? ScalarQ(g, n, yi.Scale, yi.Zp) : null;
            QTensor? weight = null;
            double[]? mult = null;
            int[]? fixedM = null, shifts = null;
            if (w is { } wi && g.Const(n.Input(wi.Data)) is { } wt && g.Const(n.Input(wi.Scale)) is { } ws)
            {
                var wsF = ws.ToFloat32().AsSpan<float>().ToArray();
                var wz = g.Const(n.Input(wi.Zp));
                weight = WeightTensor(wt, wsF, wz, n.Op == "QGemm" && n.Int("transB", 0) == 0 || n.Op == "QLinearMatMul" ? 1 : 0);
                if (xs is { } xq && ys is { } yq)
                {
                    float alpha = n.Op == "QGemm" ? n.Float("alpha", 1f) : 1f;
                    mult = wsF.Select(s => (double)(n.Op == "QGemm" ? alpha * (float)xq.Scale * s / (float)yq.Scale : (float)xq.Scale * s / (float)yq.Scale)).ToArray();
                    if (mult.All(m => double.IsFinite(m) && m >= 0))
                    {
                        fixedM = new int[mult.Length];
                        shifts = new int[mult.Length];
                        for (int c = 0; c < mult.Length; c++) (fixedM[c], shifts[c]) = FixedPointMultiplier.From(mult[c]);
                    }
                }
            }
            double[]? scales = weight?.QParams.Scales;
            rows.Add(new LayerQParams
            {
                Name = n.Name,
                Kind = n.Op,
                InputScale = xs?.Scale,
                InputZeroPoint = xs?.Zp,
                InputLayer = x is null || n.Op == "QuantizeLinear" ? null : From(n.Input(0)),
                OutputScale = ys?.Scale,
                OutputZeroPoint = ys?.Zp,
                WeightDtype = weight?.DType.TorchName(),
                WeightQScheme = weight?.QParams.QScheme.TorchName(),
                WeightAxis = weight is { QParams.IsPerChannel: true } ? weight.QParams.Axis : null,
                WeightScales = scales,
                WeightZeroPoints = weight?.QParams.ZeroPoints,
                WeightScaleMin = scales?.Min(),
                WeightScaleMax = scales?.Max(),
                WeightScaleSpread = scales is { Length: > 0 } && scales.Min() > 0 ? scales.Max() / scales.Min() : null,
                HasBias = bias is { } b && n.Input(b).Length > 0,
                Multipliers = mult,
                FixedPointMultipliers = fixedM,
                Shifts = shifts,
            });
        }
        return rows;
    }

    internal readonly record struct Triple(int Data, int Scale, int Zp);

    /// <summary>Input positions of (x), (weight), (y) and the bias for each quantized op.</summary>
    internal static (Triple? X, Triple? W, Triple? Y, int? Bias) Slots(OrtNode n) => n.Op switch
    {
        "QuantizeLinear" => (null, null, new Triple(-1, 1, 2), null),
        "DequantizeLinear" => (new Triple(0, 1, 2), null, null, null),
        "QLinearConv" => (new Triple(0, 1, 2), new Triple(3, 4, 5), new Triple(-1, 6, 7), 8),
        "QLinearMatMul" => (new Triple(0, 1, 2), new Triple(3, 4, 5), new Triple(-1, 6, 7), null),
        "QGemm" => (new Triple(0, 1, 2), new Triple(3, 4, 5), n.Inputs.Count > 7 ? new Triple(-1, 7, 8) : null, 6),
        "MatMulIntegerToFloat" => (new Triple(0, 2, 4), new Triple(1, 3, 5), null, 6),
        "QLinearGlobalAveragePool" or "QLinearLeakyRelu" or "QLinearSigmoid" or "QLinearAveragePool" or "QLinearSoftmax" =>
            (new Triple(0, 1, 2), null, new Triple(-1, 3, 4), null),
        "QLinearAdd" or "QLinearMul" => (new Triple(0, 1, 2), null, new Triple(-1, 6, 7), null),
        "QLinearConcat" => (n.Inputs.Count > 4 ? new Triple(2, 3, 4) : null, null, new Triple(-1, 0, 1), null),
        _ => (null, null, null, null),
    };

    private static (double Scale, long Zp)? ScalarQ(OrtGraph g, OrtNode n, int scaleAt, int zpAt)
    {
        var s = g.Const(n.Input(scaleAt));
        if (s is null || s.Length != 1) return null;
        var z = g.Const(n.Input(zpAt));
        return ((float)s.GetDouble(0), z is { Length: 1 } ? (long)z.GetDouble(0) : 0);
    }

    private static QTensor WeightTensor(Tensor w, float[] scales, Tensor? zp, int axis)
    {
        var dtype = w.DType == DType.UInt8 ? DType.QUInt8 : DType.QInt8;
        var ints = w.DType is DType.UInt8 or DType.Int8 ? w : new Tensor(DType.Int8, w.Shape, new sbyte[w.Length]);
        long Z(int i) => zp is null ? 0 : zp.Length == 1 ? (long)zp.GetDouble(0) : (long)zp.GetDouble(i);
        if (scales.Length == 1)
            return new QTensor(ints, QParams.PerTensor(scales[0], Z(0), dtype, Z(0) == 0 && dtype == DType.QInt8 ? QScheme.PerTensorSymmetric : QScheme.PerTensorAffine));
        var zps = Enumerable.Range(0, scales.Length).Select(Z).ToArray();
        bool sym = dtype == DType.QInt8 && zps.All(z => z == 0);
        return new QTensor(ints, QParams.PerChannel(scales.Select(s => (double)s).ToArray(), zps, axis, dtype,
            sym ? QScheme.PerChannelSymmetric : QScheme.PerChannelAffine));
    }
}
