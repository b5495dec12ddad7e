using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Onnx;

/// <summary>How the ONNX graph is prepared before it runs.</summary>
public enum OrtOptimization
{
    /// <summary>ORT_DISABLE_ALL: every node of the file runs as written (QDQ graphs in float between Q and DQ).</summary>
    None,
    /// <summary>ORT's default (ORT_ENABLE_ALL): the fusions <see cref="OrtGraph.Optimize"/> describes.</summary>
    Default,
}

/// <summary>
/// Runs an ONNX model with ONNX Runtime 1.30's CPU arithmetic (<see cref="OrtKernels"/>) on the graph ORT's optimizer
/// makes of it (<see cref="OrtGraph"/>). With capture, every quantized value a node produces is kept under its value
/// name with the qparams it was produced with (what adding that value as a graph output shows in ONNX Runtime). Float
/// conv / GEMM / MatMul nodes (left in float by the file, or not fusable) run in plain float32 and are flagged as not
/// bit-exact in <see cref="FloatApproximations"/>: MLAS's float kernels block and FMA-contract their sums.
/// </summary>
public sealed class OnnxExecutor
{
    public OrtGraph Graph { get; }
    public OnnxModel Model => Graph.Model;
    public OrtOptimization Optimization { get; }
    /// <summary>Nodes whose float arithmetic is not reproduced bit for bit (empty for fully fused quantized graphs).</summary>
    public IReadOnlyList<string> FloatApproximations => _approx;

    private readonly List<string> _approx = [];
    private readonly Dictionary<OrtNode, object> _prepared = new();

    public OnnxExecutor(OnnxModel model, OrtOptimization optimization = OrtOptimization.Default)
    {
        Optimization = optimization;
        Graph = optimization == OrtOptimization.Default ? OrtGraph.Optimize(model) : OrtGraph.FromModel(model);
        foreach (var n in Graph.Nodes)
        {
            if (n.Domain is not ("" or "com.microsoft"))
                throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"node '{n.Name}': domain '{n.Domain}' op {n.Op} is not supported", model.Source);
            if (!Supported.Contains(n.Op))
                throw new QuantToolsException(ErrorCode.UnsupportedOperator,
                    $"node '{n.Name}': op {n.Op} is not supported by the ORT emulation (supported: {string.Join(", ", Supported.Order())})", model.Source);
            if (n.Op is "Conv" or "Gemm" or "MatMul" or "GlobalAveragePool" or "AveragePool" or "Sigmoid" or "Softmax") _approx.Add($"{n.Name} ({n.Op} in float32)");
        }
    }

    public static OnnxExecutor Load(string path, OrtOptimization optimization = OrtOptimization.Default) => new(OnnxReader.Load(path), optimization);

    private static readonly HashSet<string> Supported = new(StringComparer.Ordinal)
    {
        "QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "QGemm",
        "MatMulIntegerToFloat", "DynamicQuantizeLinear", "QLinearGlobalAveragePool", "QLinearConcat", "QLinearLeakyRelu",
        "QLinearAdd", "QLinearMul",
        "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Dropout", "Concat", "MaxPool", "Relu", "Clip",
        "LeakyRelu", "Add", "Sub", "Mul", "Div", "GlobalAveragePool", "Conv", "Gemm", "MatMul",
    };

    /// <summary>Runs one batch: <paramref name="input"/> feeds the first graph input.</summary>
    public ModelResult Run(Tensor input, bool captureLayers, CancellationToken cancel = default) =>
        Run(new Dictionary<string, Tensor> { [Graph.Inputs.Count > 0 ? Graph.Inputs[0].Name : "input"] = input }, captureLayers, cancel);

    public ModelResult Run(IReadOnlyDictionary<string, Tensor> inputs, bool captureLayers, CancellationToken cancel = default)
    {
        var values = new Dictionary<string, Tensor>(Graph.Constants, StringComparer.Ordinal);
        var qparams = new Dictionary<string, (float Scale, int Zp)>(StringComparer.Ordinal);
        foreach (var gi in Graph.Inputs)
        {
            if (!inputs.TryGetValue(gi.Name, out var t))
                throw new QuantToolsException(ErrorCode.InvalidArgument, $"graph input '{gi.Name}' was not given", Model.Source);
            CheckInput(gi, t);
            values[gi.Name] = t;
        }
        var captured = new List<CapturedLayer>();
        foreach (var n in Graph.Nodes)
        {
            cancel.ThrowIfCancellationRequested();
            Tensor[] outs;
            try
            {
                outs = Execute(n, values, qparams);
            }
            catch (QuantToolsException) { throw; }
            catch (Exception e) when (e is IndexOutOfRangeException or InvalidCastException or OverflowException or ArgumentException)
            {
                throw new QuantToolsException(ErrorCode.InvalidArgument, $"{n.Op} failed on inputs {Describe(n, values)}: {e.Message}", n.Name, e);
            }
            for (int i = 0; i < outs.Length && i < n.Outputs.Count; i++)
            {
                if (n.Outputs[i].Length == 0) continue;
                values[n.Outputs[i]] = outs[i];
                if (captureLayers && qparams.TryGetValue(n.Outputs[i], out var qp) && outs[i].DType is DType.UInt8 or DType.Int8)
                    captured.Add(Graph.Int8Renames.TryGetValue(n.Outputs[i], out var orig)
                        ? new CapturedLayer(orig.Original, n.Op, ToQTensor(ToInt8(outs[i]), (qp.Scale, orig.Int8ZeroPoint)))
                        : new CapturedLayer(n.Outputs[i], n.Op, ToQTensor(outs[i], qp)));
            }
        }
        var results = new List<object>();
        foreach (var o in Graph.Outputs)
        {
            if (!values.TryGetValue(o, out var t)) throw new QuantToolsException(ErrorCode.InvalidArgument, $"graph output '{o}' was not computed", Model.Source);
            results.Add(qparams.TryGetValue(o, out var qp) && t.DType is DType.UInt8 or DType.Int8 ? ToQTensor(t, qp) : t);
        }
        return new ModelResult { Outputs = results, Layers = captured };
    }

    /// <summary>A uint8 value of a QDQS8ToU8 pair as the file's int8 value (q − 128).</summary>
    private static Tensor ToInt8(Tensor u8)
    {
        var s = u8.AsSpan<byte>();
        var r = new sbyte[s.Length];
        for (int i = 0; i < r.Length; i++) r[i] = (sbyte)(s[i] - 128);
        return new Tensor(DType.Int8, u8.Shape, r);
    }

    private static QTensor ToQTensor(Tensor t, (float Scale, int Zp) qp) =>
        new(t, QParams.PerTensor(qp.Scale, qp.Zp, t.DType == DType.UInt8 ? DType.QUInt8 : DType.QInt8));

    private void CheckInput(OnnxValueInfo gi, Tensor t)
    {
        var want = OnnxReader.DenseType(gi.ElemType);
        if (want is not null && want != t.DType)
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"input '{gi.Name}' must be {want.Value.TorchName()}, got {t.DType.TorchName()}", Model.Source);
        if (gi.Shape is { } s)
        {
            bool ok = s.Length == t.Rank && s.Select((d, i) => d is null || d == t.Shape[i]).All(b => b);
            if (!ok)
                throw new QuantToolsException(ErrorCode.ShapeMismatch,
                    $"input '{gi.Name}' must have shape [{string.Join(", ", s.Select(d => d?.ToString() ?? "?"))}], got [{string.Join(", ", t.Shape)}]", Model.Source);
        }
    }

    private static string Describe(OrtNode n, Dictionary<string, Tensor> values) =>
        string.Join(", ", n.Inputs.Select(i => i.Length == 0 ? "-" : values.TryGetValue(i, out var t) ? $"{t.DType.TorchName()}[{string.Join(",", t.Shape)}]" : "?"));

    private Tensor In(OrtNode n, Dictionary<string, Tensor> v, int i)
    {
        var name = n.Input(i);
        if (name.Length == 0) throw new QuantToolsException(ErrorCode.CorruptFile, $"{n.Op} input {i} is missing", n.Name);
        return v.TryGetValue(name, out var t) ? t : throw new QuantToolsException(ErrorCode.CorruptFile, $"value '{name}' is not available", n.Name);
    }

    private static Tensor? Opt(OrtNode n, Dictionary<string, Tensor> v, int i) =>
        n.Input(i) is { Length: > 0 } name && v.TryGetValue(name, out var t) ? t : null;

    private static float Scalar(Tensor t, OrtNode n, string what)
    {
        if (t.Length != 1) throw new QuantToolsException(ErrorCode.InvalidQParams, $"{what} must be a scalar, got [{string.Join(", ", t.Shape)}]", n.Name);
        if (t.DType != DType.Float32) throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{what} must be float32, got {t.DType.TorchName()}", n.Name);
        return t.AsSpan<float>()[0];
    }

    private static int Zp(Tensor? t, OrtNode n, string what)
    {
        if (t is null) return 0;
        if (t.Length != 1) throw new QuantToolsException(ErrorCode.InvalidQParams, $"{what} must be a scalar, got [{string.Join(", ", t.Shape)}]", n.Name);
        return (int)t.GetDouble(0);
    }

    private static float[] Floats(Tensor t) => t.ToFloat32().AsSpan<float>().ToArray();

    private Tensor[] Execute(OrtNode n, Dictionary<string, Tensor> v, Dictionary<string, (float, int)> qp)
    {
        switch (n.Op)
        {
            case "QuantizeLinear":
            {
                var x = In(n, v, 0);
                var s = In(n, v, 1);
                var z = Opt(n, v, 2);
                var y = OrtKernels.QuantizeLinear(x, s, z, (int)n.Int("axis", 1), n.Name);
                if (s.Length == 1) qp[n.Outputs[0]] = (s.ToFloat32().AsSpan<float>()[0], z is null ? 0 : (int)z.GetDouble(0));
                return [y];
            }
            case "DequantizeLinear":
                return [OrtKernels.DequantizeLinear(In(n, v, 0), In(n, v, 1), Opt(n, v, 2), (int)n.Int("axis", 1), n.Name)];
            case "QLinearConv": return [QLinearConv(n, v, qp)];
            case "ConvInteger": return [ConvInteger(n, v)];
            case "QGemm": return [QGemm(n, v, qp)];
            case "QLinearMatMul": return [QLinearMatMul(n, v, qp)];
            case "MatMulInteger": return [MatMulInteger(n, v)];
            case "MatMulIntegerToFloat": return [MatMulIntegerToFloat(n, v)];
            case "DynamicQuantizeLinear":
            {
                var (y, s, z) = OrtKernels.DynamicQuantizeLinear(In(n, v, 0), n.Name);
                qp[n.Outputs[0]] = (s, z);
                return [y, new Tensor(DType.Float32, [], new[] { s }), new Tensor(DType.UInt8, [], new[] { z })];
            }
            case "QLinearGlobalAveragePool":
            {
                var x = In(n, v, 0);
                float xs = Scalar(In(n, v, 1), n, "x_scale"), ys = Scalar(In(n, v, 3), n, "y_scale");
                int xz = Zp(Opt(n, v, 2), n, "x_zero_point"), yz = Zp(Opt(n, v, 4), n, "y_zero_point");
                qp[n.Outputs[0]] = (ys, yz);
                return [OrtKernels.QLinearGlobalAveragePool(x, xs, xz, ys, yz, n.Int("channels_last", 0) != 0, n.Name)];
            }
            case "QLinearLeakyRelu":
            {
                var x = In(n, v, 0);
                float xs = Scalar(In(n, v, 1), n, "X_scale"), ys = Scalar(In(n, v, 3), n, "Y_scale");
                int xz = Zp(Opt(n, v, 2), n, "X_zero_point"), yz = Zp(Opt(n, v, 4), n, "Y_zero_point");
                float alpha = n.Float("alpha", 0.01f);
                var table = (byte[])Prepared(n, () => OrtKernels.LookupTable(x.DType, xs, xz, ys, yz, f => f >= 0 ? f : f * alpha));
                qp[n.Outputs[0]] = (ys, yz);
                return [OrtKernels.ApplyTable(x, table)];
            }
            case "QLinearConcat": return [QLinearConcat(n, v, qp)];
            case "QLinearAdd" or "QLinearMul": return [QLinearBinary(n, v, qp)];
            case "Flatten" or "Reshape" or "Squeeze" or "Unsqueeze" or "Identity" or "Dropout":
            {
                var x = In(n, v, 0);
                var shape = OnnxShapeOps.OutputShape(n, x.Shape, v);
                Propagate(n, qp);
                return [new Tensor(x.DType, shape, x.Data)];
            }
            case "Transpose":
                Propagate(n, qp);
                return [OnnxShapeOps.Transpose(In(n, v, 0), n)];
            case "Concat": return [OnnxShapeOps.Concat(n.Inputs.Select((_, i) => In(n, v, i)).ToList(), (int)n.Int("axis", 0), n.Name)];
            case "MaxPool":
                Propagate(n, qp);
                return [OnnxFloatOps.MaxPool(In(n, v, 0), n)];
            case "Relu": return [OnnxFloatOps.Map(In(n, v, 0), n, f => f > 0 ? f : 0)];
            case "LeakyRelu": { float a = n.Float("alpha", 0.01f); return [OnnxFloatOps.Map(In(n, v, 0), n, f => f >= 0 ? f : f * a)]; }
            case "Clip":
            {
                float lo = n.Attributes.ContainsKey("min") ? n.Float("min", float.MinValue) : Opt(n, v, 1) is { } a ? (float)a.GetDouble(0) : float.NegativeInfinity;
                float hi = n.Attributes.ContainsKey("max") ? n.Float("max", float.MaxValue) : Opt(n, v, 2) is { } b ? (float)b.GetDouble(0) : float.PositiveInfinity;
                return [OnnxFloatOps.Map(In(n, v, 0), n, f => f < lo ? lo : f > hi ? hi : f)];
            }
            case "Add": return [OnnxFloatOps.Binary(In(n, v, 0), In(n, v, 1), n, (a, b) => a + b)];
            case "Sub": return [OnnxFloatOps.Binary(In(n, v, 0), In(n, v, 1), n, (a, b) => a - b)];
            case "Mul": return [OnnxFloatOps.Binary(In(n, v, 0), In(n, v, 1), n, (a, b) => a * b)];
            case "Div": return [OnnxFloatOps.Binary(In(n, v, 0), In(n, v, 1), n, (a, b) => a / b)];
            case "GlobalAveragePool": return [OnnxFloatOps.GlobalAveragePool(In(n, v, 0), n)];
            case "Conv": return [OnnxFloatOps.Conv(In(n, v, 0), In(n, v, 1), Opt(n, v, 2), n)];
            case "Gemm": return [OnnxFloatOps.Gemm(In(n, v, 0), In(n, v, 1), Opt(n, v, 2), n)];
            case "MatMul": return [OnnxFloatOps.MatMul(In(n, v, 0), In(n, v, 1), n)];
            default:
                throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"op {n.Op} is not supported", n.Name);
        }
    }

    /// <summary>Data-movement ops keep their input's qparams.</summary>
    private static void Propagate(OrtNode n, Dictionary<string, (float, int)> qp)
    {
        if (qp.TryGetValue(n.Input(0), out var p)) qp[n.Outputs[0]] = p;
    }

    private object Prepared(OrtNode n, Func<object> make)
    {
        lock (_prepared)
        {
            if (!_prepared.TryGetValue(n, out var p)) _prepared[n] = p = make();
            return p;
        }
    }

    private Tensor QLinearConv(OrtNode n, Dictionary<string, Tensor> v, Dictionary<string, (float, int)> qp)
    {
        if (n.Int("channels_last", 0) != 0)
            throw new QuantToolsException(ErrorCode.NotSupported, "QLinearConv with channels_last=1 is not supported", n.Name);
        var x = In(n, v, 0);
        float xs = Scalar(In(n, v, 1), n, "x_scale");
        int xz = Zp(Opt(n, v, 2), n, "x_zero_point");
        var w = In(n, v, 3);
        var ws = Floats(In(n, v, 4));
        var wz = Opt(n, v, 5);
        float ys = Scalar(In(n, v, 6), n, "y_scale");
        int yz = Zp(Opt(n, v, 7), n, "y_zero_point");
        var bias = Opt(n, v, 8);
        var yType = Opt(n, v, 7)?.DType ?? x.DType;
        if (x.DType is not (DType.UInt8 or DType.Int8) || yType != x.DType)
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"QLinearConv input {x.DType.TorchName()} / output {yType.TorchName()}", n.Name);
        var g = OrtKernels.Geometry(n, x.Shape, w.Shape);
        var layer = (OrtKernels.ConvLayer)Prepared(n, () => OrtKernels.PrepareConv(w, wz, n, x.Shape));
        var acc = OrtKernels.ConvAccumulators(x, xz, layer, g, n.Name);
        int m = w.Shape[0], pix = g.OutSize.Aggregate(1, (a, b) => a * b);
        int[] shape = [x.Shape[0], m, .. g.OutSize];
        qp[n.Outputs[0]] = (ys, yz);
        return OrtKernels.RequantizeChannels(acc, x.Shape[0], m, pix, bias, OrtKernels.ConvMultipliers(xs, ws, ys), yz, yType, shape, n.Name);
    }

    private Tensor ConvInteger(OrtNode n, Dictionary<string, Tensor> v)
    {
        var x = In(n, v, 0);
        var w = In(n, v, 1);
        int xz = Zp(Opt(n, v, 2), n, "x_zero_point");
        var g = OrtKernels.Geometry(n, x.Shape, w.Shape);
        var layer = (OrtKernels.ConvLayer)Prepared(n, () => OrtKernels.PrepareConv(w, Opt(n, v, 3), n, x.Shape));
        var acc = OrtKernels.ConvAccumulators(x, xz, layer, g, n.Name);
        return new Tensor(DType.Int32, [x.Shape[0], w.Shape[0], .. g.OutSize], acc);
    }

    /// <summary>Rows of A (all leading dims) and K for a GEMM-like op.</summary>
    private static (int M, int K) Rows(Tensor a, OrtNode n, bool transA)
    {
        if (a.Rank < 1) throw new QuantToolsException(ErrorCode.ShapeMismatch, "A must have rank >= 1", n.Name);
        if (transA)
        {
            if (a.Rank != 2) throw new QuantToolsException(ErrorCode.NotSupported, "transA needs a 2-d A", n.Name);
            return (a.Shape[1], a.Shape[0]);
        }
        int m = 1;
        for (int i = 0; i < a.Rank - 1; i++) m *= a.Shape[i];
        return (m, a.Shape[^1]);
    }

    private static Tensor TransposeA(Tensor a)
    {
        int r = a.Shape[0], c = a.Shape[1];
        var t = Tensor.Zeros(a.DType, c, r);
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++)
                if (a.DType == DType.UInt8) t.AsSpan<byte>()[j * r + i] = a.AsSpan<byte>()[i * c + j];
                else t.AsSpan<sbyte>()[j * r + i] = a.AsSpan<sbyte>()[i * c + j];
        return t;
    }

    private int[] Accumulate(OrtNode n, Tensor a, int azp, Tensor b, Tensor? bzp, bool transA, bool transB, out int m, out int nOut)
    {
        var (rows, k) = Rows(a, n, transA);
        if (transA) a = TransposeA(a);
        var w = (OrtKernels.GemmWeight)Prepared(n, () => OrtKernels.PrepareGemmWeight(b, bzp, transB, n.Name));
        if (w.K != k) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"A has K = {k}, B has K = {w.K}", n.Name);
        m = rows;
        nOut = w.N;
        return OrtKernels.GemmAccumulators(a, rows, azp, w);
    }

    private Tensor QGemm(OrtNode n, Dictionary<string, Tensor> v, Dictionary<string, (float, int)> qp)
    {
        var a = In(n, v, 0);
        float asc = Scalar(In(n, v, 1), n, "a_scale");
        int az = Zp(Opt(n, v, 2), n, "a_zero_point");
        var b = In(n, v, 3);
        var bs = Floats(In(n, v, 4));
        var bz = Opt(n, v, 5);
        var c = Opt(n, v, 6);
        var ysT = Opt(n, v, 7);
        float alpha = n.Float("alpha", 1f);
        bool transA = n.Int("transA", 0) != 0, transB = n.Int("transB", 0) != 0;
        var acc = Accumulate(n, a, az, b, bz, transA, transB, out int m, out int nn);
        if (c is not null)
        {
            if (c.DType != DType.Int32) throw new QuantToolsException(ErrorCode.UnsupportedDType, $"QGemm C must be int32, got {c.DType.TorchName()}", n.Name);
            var cs = c.AsSpan<int>();
            for (int r = 0; r < m; r++)
                for (int j = 0; j < nn; j++)
                {
                    int cv = c.Length == 1 ? cs[0] : c.Length == nn ? cs[j] : c.Length == m ? cs[r] : c.Length == m * nn ? cs[r * nn + j]
                        : throw new QuantToolsException(ErrorCode.ShapeMismatch, $"C [{string.Join(", ", c.Shape)}] does not broadcast to [{m}, {nn}]", n.Name);
                    acc[r * nn + j] = unchecked(acc[r * nn + j] + cv);
                }
        }
        // QGemm ComputeOutputScale: alpha * a_scale * b_scale[i], then / y_scale
        var mult = new float[bs.Length];
        float? ys = ysT is null ? null : Scalar(ysT, n, "y_scale");
        for (int i = 0; i < mult.Length; i++)
        {
            mult[i] = alpha * asc * bs[i];
            if (ys is { } y) mult[i] /= y;
        }
        int[] shape = [m, nn];
        if (ys is null)
        {
            var f = new float[m * nn];
            for (int r = 0; r < m; r++)
                for (int j = 0; j < nn; j++) f[r * nn + j] = (float)acc[r * nn + j] * mult[mult.Length == 1 ? 0 : j];
            return new Tensor(DType.Float32, shape, f);
        }
        var yzT = Opt(n, v, 8);
        int yz = Zp(yzT, n, "y_zero_point");
        var yType = yzT?.DType ?? DType.UInt8;
        qp[n.Outputs[0]] = (ys.Value, yz);
        return RequantRows(acc, m, nn, mult, yz, yType, shape);
    }

    private static Tensor RequantRows(int[] acc, int m, int nn, float[] mult, int yz, DType yType, int[] shape)
    {
        var (qmin, qmax) = OrtKernels.Range(yType);
        var y = Tensor.Zeros(yType, shape);
        for (int r = 0; r < m; r++)
            for (int j = 0; j < nn; j++)
            {
                int q = OrtKernels.Requantize(acc[r * nn + j], mult[mult.Length == 1 ? 0 : j], yz, qmin, qmax);
                if (yType == DType.UInt8) y.AsSpan<byte>()[r * nn + j] = (byte)q;
                else y.AsSpan<sbyte>()[r * nn + j] = (sbyte)q;
            }
        return y;
    }

    private static int[] MatMulShape(Tensor a, int nn) => [.. a.Shape[..^1], nn];

    private Tensor QLinearMatMul(OrtNode n, Dictionary<string, Tensor> v, Dictionary<string, (float, int)> qp)
    {
        var a = In(n, v, 0);
        float asc = Scalar(In(n, v, 1), n, "a_scale");
        int az = Zp(Opt(n, v, 2), n, "a_zero_point");
        var b = In(n, v, 3);
        var bs = Floats(In(n, v, 4));
        var bz = Opt(n, v, 5);
        float ys = Scalar(In(n, v, 6), n, "y_scale");
        var yzT = Opt(n, v, 7);
        int yz = Zp(yzT, n, "y_zero_point");
        var acc = Accumulate(n, a, az, b, bz, false, false, out int m, out int nn);
        // quantize_linear_matmul.cc: a_scale * b_scale / y_scale per column
        var mult = bs.Select(s => asc * s / ys).ToArray();
        qp[n.Outputs[0]] = (ys, yz);
        return RequantRows(acc, m, nn, mult, yz, yzT?.DType ?? a.DType, MatMulShape(a, nn));
    }

    private Tensor MatMulInteger(OrtNode n, Dictionary<string, Tensor> v)
    {
        var a = In(n, v, 0);
        var acc = Accumulate(n, a, Zp(Opt(n, v, 2), n, "a_zero_point"), In(n, v, 1), Opt(n, v, 3), false, false, out _, out int nn);
        return new Tensor(DType.Int32, MatMulShape(a, nn), acc);
    }

    private Tensor MatMulIntegerToFloat(OrtNode n, Dictionary<string, Tensor> v)
    {
        var a = In(n, v, 0);
        float asc = Scalar(In(n, v, 2), n, "a_scale");
        var bs = Floats(In(n, v, 3));
        var acc = Accumulate(n, a, Zp(Opt(n, v, 4), n, "a_zero_point"), In(n, v, 1), Opt(n, v, 5), false, false, out int m, out int nn);
        var bias = Opt(n, v, 6);
        var f = new float[m * nn];
        for (int r = 0; r < m; r++)
            for (int j = 0; j < nn; j++)
            {
                float s = asc * bs[bs.Length == 1 ? 0 : j];
                float val = (float)acc[r * nn + j] * s;
                if (bias is not null) val += (float)bias.GetDouble(j);
                f[r * nn + j] = val;
            }
        _approxOnce(n, "MatMulIntegerToFloat's scale-and-bias order is from the source, not checked against ORT output");
        return new Tensor(DType.Float32, MatMulShape(a, nn), f);
    }

    private void _approxOnce(OrtNode n, string why)
    {
        lock (_approx) if (!_approx.Any(s => s.StartsWith(n.Name + " ", StringComparison.Ordinal))) _approx.Add($"{n.Name} ({why})");
    }

    private Tensor QLinearConcat(OrtNode n, Dictionary<string, Tensor> v, Dictionary<string, (float, int)> qp)
    {
        float ys = Scalar(In(n, v, 0), n, "Y_scale");
        var yzT = Opt(n, v, 1);
        int yz = Zp(yzT, n, "Y_zero_point");
        var parts = new List<Tensor>();
        for (int i = 2; i + 2 < n.Inputs.Count + 1; i += 3)
        {
            var x = In(n, v, i);
            float xs = Scalar(In(n, v, i + 1), n, "x_scale");
            int xz = Zp(Opt(n, v, i + 2), n, "x_zero_point");
            // qlinear_concat.cc: inputs with the output's qparams are copied, others go through a requantizing table
            if (BitConverter.SingleToInt32Bits(xs) == BitConverter.SingleToInt32Bits(ys) && xz == yz) parts.Add(x);
            else parts.Add(OrtKernels.ApplyTable(x, OrtKernels.LookupTable(x.DType, xs, xz, ys, yz, f => f)));
        }
        qp[n.Outputs[0]] = (ys, yz);
        return OnnxShapeOps.Concat(parts, (int)n.Int("axis", 0), n.Name);
    }

    private Tensor QLinearBinary(OrtNode n, Dictionary<string, Tensor> v, Dictionary<string, (float, int)> qp)
    {
        var a = In(n, v, 0);
        float asc = Scalar(In(n, v, 1), n, "A_scale");
        int az = Zp(Opt(n, v, 2), n, "A_zero_point");
        var b = In(n, v, 3);
        float bsc = Scalar(In(n, v, 4), n, "B_scale");
        int bz = Zp(Opt(n, v, 5), n, "B_zero_point");
        float ys = Scalar(In(n, v, 6), n, "C_scale");
        var yzT = Opt(n, v, 7);
        int yz = Zp(yzT, n, "C_zero_point");
        var (qmin, qmax) = OrtKernels.Range(a.DType);
        bool add = n.Op == "QLinearAdd";
        // MLAS's scalar helpers (qladd.cpp, qlmul.cpp): dequantize both, add or multiply in float, quantize by division.
        // QLinearAdd equals ONNX Runtime on the random models of tests/QuantTools.OnnxRuntime.Tests; QLinearMul is unchecked.
        if (!add) _approxOnce(n, "QLinearMul follows MLAS's portable float form, not checked against ONNX Runtime's vector kernel");
        var y = OnnxFloatOps.BinaryInt(a, b, n, (qa, qb) =>
        {
            float va = asc * (qa - az), vb = bsc * (qb - bz);
            return OrtKernels.Quantize(add ? va + vb : va * vb, ys, yz, qmin, qmax);
        });
        qp[n.Outputs[0]] = (ys, yz);
        return y;
    }
}
