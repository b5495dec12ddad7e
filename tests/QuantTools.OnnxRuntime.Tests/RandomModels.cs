using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Tensors;
using W = QuantTools.Core.Formats.Onnx.OnnxWriter;

namespace QuantTools.OnnxRuntime.Tests;

/// <summary>
/// Random quantized ONNX models written the way ORT's quantize_static writes them (QDQ: Q/DQ pairs around float ops,
/// int8 symmetric per-channel weights, int32 biases with scale s_x·s_w; QOperator: QLinear nodes). Weights stay in
/// [−64, 64] so that no pair of u8·s8 products exceeds int16: MLAS's non-VNNI kernels then give the exact integers too,
/// and the comparison holds on every x86 host.
/// </summary>
internal sealed class RandomModels(int seed)
{
    private readonly Random _rng = new(seed);
    private readonly List<W.Node> _nodes = [];
    private readonly List<(string, Tensor)> _inits = [];
    private int _id;

    private string N(string stem) => $"{stem}_{_id++}";
    private float Uniform(float lo, float hi) => lo + (float)_rng.NextDouble() * (hi - lo);

    private string Scalar(float v) { var n = N("s"); _inits.Add((n, new Tensor(DType.Float32, [], new[] { v }))); return n; }
    private string ZpU8(int v) { var n = N("zp"); _inits.Add((n, new Tensor(DType.UInt8, [], new[] { (byte)v }))); return n; }

    /// <summary>Q then DQ of a float value with fresh qparams covering about [lo, hi].</summary>
    private (string Value, float Scale, string S, string Z) QDQ(string x, float lo, float hi)
    {
        float scale = (hi - lo) / 255f;
        int zp = Math.Clamp((int)MathF.Round(-lo / scale), 0, 255);
        string s = Scalar(scale), z = ZpU8(zp), q = N("q"), dq = N("dq");
        _nodes.Add(new W.Node("QuantizeLinear", [x, s, z], [q], N("Q")));
        _nodes.Add(new W.Node("DequantizeLinear", [q, s, z], [dq], N("DQ")));
        return (dq, scale, s, z);
    }

    private string Weight(int[] shape, out float[] scales, out string scaleName)
    {
        int m = shape[0], per = shape.Skip(1).Aggregate(1, (a, b) => a * b);
        var w = new sbyte[m * per];
        scales = new float[m];
        for (int o = 0; o < m; o++)
        {
            scales[o] = Uniform(0.002f, 0.02f);
            for (int i = 0; i < per; i++) w[o * per + i] = (sbyte)_rng.Next(-64, 65);
        }
        string q = N("w"), s = N("ws"), z = N("wz"), dq = N("wdq");
        _inits.Add((q, new Tensor(DType.Int8, shape, w)));
        _inits.Add((s, new Tensor(DType.Float32, [m], scales)));
        _inits.Add((z, new Tensor(DType.Int8, [m], new sbyte[m])));
        _nodes.Add(new W.Node("DequantizeLinear", [q, s, z], [dq], N("WDQ"), Attributes: new Dictionary<string, object> { ["axis"] = 0L }));
        scaleName = s;
        return dq;
    }

    private string Bias(float xs, float[] ws)
    {
        int m = ws.Length;
        var b = new int[m];
        var bs = new float[m];
        for (int o = 0; o < m; o++) { b[o] = _rng.Next(-3000, 3000); bs[o] = xs * ws[o]; }
        string q = N("b"), s = N("bs"), z = N("bz"), dq = N("bdq");
        _inits.Add((q, new Tensor(DType.Int32, [m], b)));
        _inits.Add((s, new Tensor(DType.Float32, [m], bs)));
        _inits.Add((z, new Tensor(DType.Int32, [m], new int[m])));
        _nodes.Add(new W.Node("DequantizeLinear", [q, s, z], [dq], N("BDQ"), Attributes: new Dictionary<string, object> { ["axis"] = 0L }));
        return dq;
    }

    private string Conv(string x, float xs, int cin, int cout, int k, int stride, int pad, int group)
    {
        var w = Weight([cout, cin / group, k, k], out var ws, out _);
        var b = Bias(xs, ws);
        var y = N("conv");
        _nodes.Add(new W.Node("Conv", [x, w, b], [y], N("Conv"), Attributes: new Dictionary<string, object>
        {
            ["kernel_shape"] = new long[] { k, k }, ["strides"] = new long[] { stride, stride },
            ["pads"] = new long[] { pad, pad, pad, pad }, ["group"] = (long)group, ["dilations"] = new long[] { 1, 1 },
        }));
        return y;
    }

    /// <summary>A QDQ CNN: conv 3x3, relu-range Q, depthwise stride 2, max-pool, 1x1 conv, global average pool, flatten, gemm.</summary>
    public byte[] QdqCnn(int c, int h, bool withAdd)
    {
        var (x0, s0, _, _) = QDQ("input", -2.5f, 2.5f);
        var c1 = Conv(x0, s0, 3, c, 3, 1, 1, 1);
        var (x1, s1, _, _) = QDQ(c1, 0, Uniform(2, 6));           // zp 0: ORT's quantizer folds the ReLU into this Q
        var c2 = Conv(x1, s1, c, c, 3, 2, 1, c);
        var (x2, s2, ps, pz) = QDQ(c2, -Uniform(1, 3), Uniform(1, 3));
        var mp = N("mp");
        _nodes.Add(new W.Node("MaxPool", [x2], [mp], N("MaxPool"), Attributes: new Dictionary<string, object>
            { ["kernel_shape"] = new long[] { 2, 2 }, ["strides"] = new long[] { 1, 1 } }));
        var mq = N("q"); var mdq = N("dq");
        _nodes.Add(new W.Node("QuantizeLinear", [mp, ps, pz], [mq], N("Q")));
        _nodes.Add(new W.Node("DequantizeLinear", [mq, ps, pz], [mdq], N("DQ")));
        var c3 = Conv(mdq, s2, c, 2 * c, 1, 1, 0, 1);
        var (x3, s3, _, _) = QDQ(c3, -Uniform(1, 4), Uniform(1, 4));
        string last = x3;
        float lastScale = s3;
        if (withAdd)
        {
            var c4 = Conv(mdq, s2, c, 2 * c, 1, 1, 0, 1);
            var (x4, _, _, _) = QDQ(c4, -Uniform(1, 4), Uniform(1, 4));
            var add = N("add");
            _nodes.Add(new W.Node("Add", [x3, x4], [add], N("Add")));
            (last, lastScale, _, _) = QDQ(add, -Uniform(2, 6), Uniform(2, 6));
        }
        var gap = N("gap");
        _nodes.Add(new W.Node("GlobalAveragePool", [last], [gap], N("GAP")));
        var (g0, gs, gsn, gzn) = QDQ(gap, -Uniform(0.5f, 2), Uniform(0.5f, 2));
        var fl = N("flat");
        _nodes.Add(new W.Node("Flatten", [g0], [fl], N("Flatten"), Attributes: new Dictionary<string, object> { ["axis"] = 1L }));
        var fq = N("q"); var fdq = N("dq");
        _nodes.Add(new W.Node("QuantizeLinear", [fl, gsn, gzn], [fq], N("Q")));
        _nodes.Add(new W.Node("DequantizeLinear", [fq, gsn, gzn], [fdq], N("DQ")));
        var fw = Weight([10, 2 * c], out var fws, out _);
        var fb = Bias(gs, fws);
        var gemm = N("gemm");
        _nodes.Add(new W.Node("Gemm", [fdq, fw, fb], [gemm], N("Gemm"), Attributes: new Dictionary<string, object>
            { ["alpha"] = 1f, ["beta"] = 1f, ["transB"] = 1L }));
        var (outDq, _, _, _) = QDQ(gemm, -Uniform(1, 3), Uniform(1, 3));
        _nodes.Add(new W.Node("Identity", [outDq], ["output"], N("Out")));
        return W.Write(_nodes, _inits, [new W.Value("input", OnnxDataType.Float, [1, 3, h, h])], [new W.Value("output", OnnxDataType.Float, [1, 10])]);
    }

    /// <summary>QOperator nodes as the file holds them: QLinearConv, QLinearMatMul, then MatMulInteger and ConvInteger heads.</summary>
    public byte[] QOperator(int c, int h)
    {
        var xs = Uniform(0.01f, 0.03f); int xz = _rng.Next(100, 156);
        string s0 = Scalar(xs), z0 = ZpU8(xz);
        _nodes.Add(new W.Node("QuantizeLinear", ["input", s0, z0], ["xq"], "Q0"));
        var w = new sbyte[c * 3 * 9];
        for (int i = 0; i < w.Length; i++) w[i] = (sbyte)_rng.Next(-64, 65);
        var ws = Enumerable.Range(0, c).Select(_ => Uniform(0.002f, 0.01f)).ToArray();
        _inits.Add(("w1", new Tensor(DType.Int8, [c, 3, 3, 3], w)));
        _inits.Add(("w1s", new Tensor(DType.Float32, [c], ws)));
        _inits.Add(("w1z", new Tensor(DType.Int8, [c], new sbyte[c])));
        _inits.Add(("b1", new Tensor(DType.Int32, [c], Enumerable.Range(0, c).Select(_ => _rng.Next(-2000, 2000)).ToArray())));
        string ys = Scalar(Uniform(0.01f, 0.05f)), yz = ZpU8(_rng.Next(0, 40));
        _nodes.Add(new W.Node("QLinearConv", ["xq", s0, z0, "w1", "w1s", "w1z", ys, yz, "b1"], ["y1"], "QConv", Attributes: new Dictionary<string, object>
            { ["kernel_shape"] = new long[] { 3, 3 }, ["pads"] = new long[] { 1, 0, 1, 2 }, ["strides"] = new long[] { 1, 2 } }));
        _nodes.Add(new W.Node("Flatten", ["y1"], ["y1f"], "Flat", Attributes: new Dictionary<string, object> { ["axis"] = 1L }));
        int k = c * h * ((h + 2 - 3) / 2 + 1);
        var bw = new byte[k * 8];
        for (int i = 0; i < bw.Length; i++) bw[i] = (byte)_rng.Next(64, 192);
        _inits.Add(("mw", new Tensor(DType.UInt8, [k, 8], bw)));
        _inits.Add(("mws", new Tensor(DType.Float32, [], new[] { Uniform(0.001f, 0.004f) })));
        _inits.Add(("mwz", new Tensor(DType.UInt8, [], new[] { (byte)128 })));
        string ms = Scalar(Uniform(0.05f, 0.2f)), mz = ZpU8(_rng.Next(100, 156));
        _nodes.Add(new W.Node("QLinearMatMul", ["y1f", ys, yz, "mw", "mws", "mwz", ms, mz], ["y2"], "QMatMul"));
        _nodes.Add(new W.Node("MatMulInteger", ["y1f", "mw", yz, "mwz"], ["y3"], "MMInt"));
        _nodes.Add(new W.Node("DequantizeLinear", ["y2", ms, mz], ["output"], "DQ"));
        _nodes.Add(new W.Node("ConvInteger", ["xq", "w1u", z0, "w1uz"], ["y4"], "ConvInt", Attributes: new Dictionary<string, object>
            { ["kernel_shape"] = new long[] { 3, 3 }, ["pads"] = new long[] { 1, 1, 1, 1 } }));
        _inits.Add(("w1u", new Tensor(DType.UInt8, [c, 3, 3, 3], w.Select(v => (byte)(v + 128)).ToArray())));
        _inits.Add(("w1uz", new Tensor(DType.UInt8, [], new[] { (byte)128 })));
        return W.Write(_nodes, _inits, [new W.Value("input", OnnxDataType.Float, [1, 3, h, h])],
            [new W.Value("output", OnnxDataType.Float, null), new W.Value("y3", OnnxDataType.Int32, null), new W.Value("y4", OnnxDataType.Int32, null)],
            new Dictionary<string, long> { [""] = 13 });
    }

    public Tensor Input(int h)
    {
        var x = new float[3 * h * h];
        for (int i = 0; i < x.Length; i++) x[i] = Uniform(-3f, 3f);
        return new Tensor(DType.Float32, [1, 3, h, h], x);
    }
}
