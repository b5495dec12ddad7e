using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Onnx;

/// <summary>
/// ONNX Runtime 1.30's CPU arithmetic for quantized ops, as MLAS computes it on x86-64. The integers of conv and GEMM
/// accumulators are those of the exact int32 dot products (AVX512-VNNI / AMX hosts, which made the golden data); the
/// differences from PyTorch are in the float steps:
/// <list type="bullet">
/// <item>QuantizeLinear divides (<c>MlasQuantizeLinearVector</c>): <c>t = x / s</c>, clamped in float to
/// [qmin − zp, qmax − zp] with MAXPS / MINPS (NaN becomes qmin − zp), rounded half to even, plus zp. PyTorch multiplies by
/// the reciprocal instead.</item>
/// <item>Requantization (<c>MlasRequantizeOutput</c>, also the QGEMM requant output processor and the symmetric conv
/// kernels): <c>f = f32(acc + bias) · M</c>, clamped to [qmin − zp, qmax − zp], rne, plus zp, with the multiplier made
/// in float as <c>M = f32(f32(s_x · s_w[c]) / s_y)</c> (qlinearconv.cc <c>ComputeOutputScale</c>; QGemm multiplies alpha in first).</item>
/// <item>DequantizeLinear: <c>f32(f32(q − zp) · s)</c>.</item>
/// </list>
/// </summary>
public static class OrtKernels
{
    // ------------------------------------------------------------------ quantize / dequantize

    /// <summary>One element of MLAS QuantizeLinear (MlasQuantizeLinearVector).</summary>
    public static int Quantize(float x, float scale, int zp, int qmin, int qmax)
    {
        float t = x / scale;
        float lo = qmin - zp, hi = qmax - zp;
        // MAXPS / MINPS return the second operand unless the first compares greater / less (so NaN gives lo)
        t = t > lo ? t : lo;
        t = t < hi ? t : hi;
        return (int)MathF.Round(t) + zp;
    }

    /// <summary>One element of MlasRequantizeOutput: <c>f32(acc) · scale</c>, clamped, rne, plus zp.</summary>
    public static int Requantize(int acc, float scale, int zp, int qmin, int qmax)
    {
        float f = (float)acc * scale;
        float lo = qmin - zp, hi = qmax - zp;
        f = f > lo ? f : lo;
        f = f < hi ? f : hi;
        return (int)MathF.Round(f) + zp;
    }

    public static (int Min, int Max) Range(DType t) => t switch
    {
        DType.UInt8 => (0, 255),
        DType.Int8 => (-128, 127),
        DType.Int16 => (short.MinValue, short.MaxValue),
        DType.Int32 => (int.MinValue, int.MaxValue),
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{t.TorchName()} is not a quantized integer type in ONNX"),
    };

    internal static int ZeroPointAt(Tensor? zp, int i) => zp is null ? 0 : zp.Length == 1 ? (int)zp.GetDouble(0) : (int)zp.GetDouble(i);

    /// <summary>
    /// QuantizeLinear (opsets 10-21, per-tensor or per-axis): float input, output of the zero point's type (uint8 when the
    /// zero point is omitted).
    /// </summary>
    public static Tensor QuantizeLinear(Tensor x, Tensor scale, Tensor? zp, int axis, string node)
    {
        var xf = x.DType == DType.Float32 ? x.AsSpan<float>()
            : throw new QuantToolsException(ErrorCode.UnsupportedDType, $"QuantizeLinear needs float32 input, got {x.DType.TorchName()}", node);
        var outType = zp?.DType ?? DType.UInt8;
        var (qmin, qmax) = Range(outType);
        if (outType is not (DType.UInt8 or DType.Int8))
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"QuantizeLinear to {outType.TorchName()} is not supported", node);
        var sc = scale.ToFloat32().AsSpan<float>();
        var y = Tensor.Zeros(outType, x.Shape);
        var (outer, ch, inner) = AxisSplit(x.Shape, sc.Length, axis, node, "y_scale");
        if (zp is not null && zp.Length != sc.Length)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"y_zero_point has {zp.Length} values, y_scale {sc.Length}", node);
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < ch; c++)
            {
                float s = sc[sc.Length == 1 ? 0 : c];
                int z = ZeroPointAt(zp, c);
                int b = (o * ch + c) * inner;
                if (outType == DType.UInt8)
                {
                    var ys = y.AsSpan<byte>();
                    for (int i = 0; i < inner; i++) ys[b + i] = (byte)Quantize(xf[b + i], s, z, qmin, qmax);
                }
                else
                {
                    var ys = y.AsSpan<sbyte>();
                    for (int i = 0; i < inner; i++) ys[b + i] = (sbyte)Quantize(xf[b + i], s, z, qmin, qmax);
                }
            }
        return y;
    }

    /// <summary>DequantizeLinear: <c>f32(f32(q − zp) · s)</c> (the subtraction in int32, wrapping for int32 input).</summary>
    public static Tensor DequantizeLinear(Tensor q, Tensor scale, Tensor? zp, int axis, string node)
    {
        if (q.DType is not (DType.UInt8 or DType.Int8 or DType.Int32 or DType.Int16))
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"DequantizeLinear of {q.DType.TorchName()} is not supported", node);
        var sc = scale.ToFloat32().AsSpan<float>();
        var y = new float[q.Length];
        var (outer, ch, inner) = AxisSplit(q.Shape, sc.Length, axis, node, "x_scale");
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < ch; c++)
            {
                float s = sc[sc.Length == 1 ? 0 : c];
                int z = ZeroPointAt(zp, c);
                int b = (o * ch + c) * inner;
                for (int i = 0; i < inner; i++) y[b + i] = (float)unchecked((int)q.GetDouble(b + i) - z) * s;
            }
        return new Tensor(DType.Float32, q.Shape, y);
    }

    /// <summary>(outer, channels, inner) of a per-axis operation; per-tensor when <paramref name="count"/> is 1.</summary>
    internal static (int Outer, int Channels, int Inner) AxisSplit(int[] shape, int count, int axis, string node, string what)
    {
        int n = (int)Tensor.CheckedNumel(shape);
        if (count == 1) return (1, 1, n);
        if (axis < 0) axis += shape.Length;
        if (axis < 0 || axis >= shape.Length)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"axis {axis} is outside a rank-{shape.Length} tensor", node);
        if (shape[axis] != count)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"{what} has {count} values for axis {axis} of size {shape[axis]}", node);
        int outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= shape[i];
        for (int i = axis + 1; i < shape.Length; i++) inner *= shape[i];
        return (outer, count, inner);
    }

    /// <summary>
    /// DynamicQuantizeLinear (uint8): range extended to include 0, <c>scale = (max − min) / 255</c> in float,
    /// <c>zp = saturate(rne(0 − min / scale))</c>, then QuantizeLinear (ORT's dynamicquantizelinear.cc with
    /// <c>GetQuantizationParameter</c>).
    /// </summary>
    public static (Tensor Y, float Scale, byte Zp) DynamicQuantizeLinear(Tensor x, string node)
    {
        var xf = x.DType == DType.Float32 ? x.AsSpan<float>()
            : throw new QuantToolsException(ErrorCode.UnsupportedDType, $"DynamicQuantizeLinear needs float32 input, got {x.DType.TorchName()}", node);
        float min = 0, max = 0;
        foreach (var v in xf) { if (v < min) min = v; if (v > max) max = v; }
        float scale = (max - min) / 255f;
        float initialZp = scale == 0 ? 0 : 0 - min / scale;
        byte zp = (byte)Math.Clamp(MathF.Round(initialZp), 0f, 255f);
        var y = Tensor.Zeros(DType.UInt8, x.Shape);
        var ys = y.AsSpan<byte>();
        float s = scale == 0 ? 1 : scale;
        for (int i = 0; i < xf.Length; i++) ys[i] = (byte)Quantize(xf[i], s, zp, 0, 255);
        return (y, scale, zp);
    }

    // ------------------------------------------------------------------ conv

    /// <summary>Conv attributes resolved against the input and weight shapes (ORT's ConvAttributes).</summary>
    public sealed record ConvGeometry(int Spatial, int[] Kernel, int[] Strides, int[] PadsBegin, int[] PadsEnd, int[] Dilations, int Group,
        int[] InSize, int[] OutSize)
    {
        public bool SymmetricPads => PadsBegin.SequenceEqual(PadsEnd);
    }

    public static ConvGeometry Geometry(OrtNode n, int[] xShape, int[] wShape)
    {
        int spatial = wShape.Length - 2;
        if (spatial is < 1 or > 2 || xShape.Length != wShape.Length)
            throw new QuantToolsException(ErrorCode.NotSupported,
                $"{n.Op} with input [{string.Join(", ", xShape)}] and weight [{string.Join(", ", wShape)}]: only 1-d and 2-d convolutions are supported", n.Name);
        int[] Attr(string name, int fill) => n.Ints(name) is { } v ? v.Select(checked_int).ToArray() : Enumerable.Repeat(fill, spatial).ToArray();
        static int checked_int(long v) => v is >= 0 and <= 1 << 20 ? (int)v : throw new QuantToolsException(ErrorCode.CorruptFile, $"conv attribute value {v} out of range");
        var kernel = n.Ints("kernel_shape") is { } ks ? ks.Select(checked_int).ToArray() : wShape[2..];
        var strides = Attr("strides", 1);
        var dil = Attr("dilations", 1);
        var pads = n.Ints("pads") is { } p ? p.Select(checked_int).ToArray() : new int[2 * spatial];
        int group = (int)n.Int("group", 1);
        if (kernel.Length != spatial || strides.Length != spatial || dil.Length != spatial || pads.Length != 2 * spatial)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"{n.Op} attributes do not match {spatial} spatial dims", n.Name);
        if (!kernel.SequenceEqual(wShape[2..]))
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"kernel_shape [{string.Join(", ", kernel)}] does not match weight [{string.Join(", ", wShape)}]", n.Name);
        if (group < 1 || xShape[1] != wShape[1] * group || wShape[0] % group != 0)
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"input channels {xShape[1]}, weight [{string.Join(", ", wShape)}] and group {group} do not fit", n.Name);
        if (strides.Any(s => s < 1) || dil.Any(d => d < 1))
            throw new QuantToolsException(ErrorCode.CorruptFile, "strides and dilations must be positive", n.Name);
        var inSize = xShape[2..];
        var outSize = new int[spatial];
        var autoPad = n.String("auto_pad") ?? "NOTSET";
        for (int d = 0; d < spatial; d++)
        {
            int ek = (kernel[d] - 1) * dil[d] + 1;
            switch (autoPad)
            {
                case "NOTSET" or "": break;
                case "VALID": pads[d] = pads[d + spatial] = 0; break;
                case "SAME_UPPER" or "SAME_LOWER":
                {
                    int o = (inSize[d] + strides[d] - 1) / strides[d];
                    int total = Math.Max(0, (o - 1) * strides[d] + ek - inSize[d]);
                    int small = total / 2;
                    pads[d] = autoPad == "SAME_UPPER" ? small : total - small;
                    pads[d + spatial] = total - pads[d];
                    break;
                }
                default: throw new QuantToolsException(ErrorCode.CorruptFile, $"unknown auto_pad '{autoPad}'", n.Name);
            }
            int span = inSize[d] + pads[d] + pads[d + spatial] - ek;
            if (span < 0) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"the kernel is larger than the padded input in dim {d}", n.Name);
            outSize[d] = span / strides[d] + 1;
        }
        return new ConvGeometry(spatial, kernel, strides, pads[..spatial], pads[spatial..], dil, group, inSize, outSize);
    }

    /// <summary>A QLinearConv / ConvInteger layer prepared once: weights, zero points, and the packed form when one applies.</summary>
    public sealed class ConvLayer
    {
        public required int[] WShape { get; init; }
        public required int[] W { get; init; }        // raw weight values, [M][C/g][k...]
        public required int[] WZp { get; init; }      // per output channel
        public required bool WSigned { get; init; }
        internal PackedConvWeight? Packed { get; init; }
    }

    public static ConvLayer PrepareConv(Tensor w, Tensor? wzp, OrtNode n, int[]? xShapeForPack)
    {
        if (w.DType is not (DType.Int8 or DType.UInt8))
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{n.Op} weights must be int8 or uint8, got {w.DType.TorchName()}", n.Name);
        int m = w.Shape[0];
        var zps = new int[m];
        if (wzp is not null)
        {
            if (wzp.Length != 1 && wzp.Length != m)
                throw new QuantToolsException(ErrorCode.ShapeMismatch, $"w_zero_point has {wzp.Length} values for {m} output channels", n.Name);
            if (wzp.DType != w.DType)
                throw new QuantToolsException(ErrorCode.UnsupportedDType, $"w_zero_point is {wzp.DType.TorchName()}, the weight {w.DType.TorchName()}", n.Name);
            for (int i = 0; i < m; i++) zps[i] = ZeroPointAt(wzp, i);
        }
        var vals = new int[w.Length];
        for (int i = 0; i < vals.Length; i++) vals[i] = (int)w.GetDouble(i);
        PackedConvWeight? packed = null;
        // the pair GEMM holds (w − w_zp) in int16: int8 weights always fit
        if (w.DType == DType.Int8 && xShapeForPack is not null)
        {
            var g = Geometry(n, xShapeForPack, w.Shape);
            if (g.SymmetricPads)
            {
                var scales = Enumerable.Repeat(1.0, m).ToArray();
                var qp = zps.All(z => z == zps[0])
                    ? QParams.PerTensor(1.0, zps[0], DType.QInt8)
                    : QParams.PerChannel(scales, zps.Select(z => (long)z).ToArray(), 0, DType.QInt8);
                var qw = new QTensor(new Tensor(DType.Int8, w.Shape, w.AsSpan<sbyte>().ToArray()), qp);
                packed = PackedConvWeight.Create(qw, null, g.Strides, g.PadsBegin, g.Dilations, g.Group, false, [], QEngine.Qnnpack);
            }
        }
        return new ConvLayer { WShape = w.Shape, W = vals, WZp = zps, WSigned = w.DType == DType.Int8, Packed = packed };
    }

    /// <summary>
    /// Exact int32 accumulators of a quantized conv, [N][M][out pixels]: <c>Σ (x − x_zp)(w − w_zp)</c>, padding reading
    /// x_zp (so contributing 0), as MLAS's VNNI / AMX GEMMs and its depthwise kernels give them.
    /// </summary>
    public static int[] ConvAccumulators(Tensor x, int xzp, ConvLayer layer, ConvGeometry g, string node)
    {
        int n = x.Shape[0], c = x.Shape[1], m = layer.WShape[0];
        int outPix = g.OutSize.Aggregate(1, (a, b) => checked(a * b));
        int inPix = g.InSize.Aggregate(1, (a, b) => checked(a * b));
        var acc = new int[checked(n * m * outPix)];
        if (layer.Packed is { } pw && x.DType == DType.UInt8 && g.SymmetricPads)
        {
            var xs = x.AsSpan<byte>();
            int h = g.Spatial == 2 ? g.InSize[0] : 1, w = g.InSize[^1];
            int oh = g.Spatial == 2 ? g.OutSize[0] : 1, ow = g.OutSize[^1];
            var plan = ConvPaths.Resolve(pw);
            for (int b = 0; b < n; b++)
            {
                var xb = xs.Slice(b * c * inPix, c * inPix);
                var rb = acc.AsSpan(b * m * outPix, m * outPix);
                ConvKernels.Accumulate(pw, xb, xzp, h, w, oh, ow, rb, plan.Accumulation);
            }
            return acc;
        }
        ConvReference(x, xzp, layer, g, acc);
        return acc;
    }

    /// <summary>The accumulators straight from the definition (any padding, uint8 or int8 weights and input).</summary>
    internal static void ConvReference(Tensor x, int xzp, ConvLayer layer, ConvGeometry g, int[] acc)
    {
        int n = x.Shape[0], c = x.Shape[1], m = layer.WShape[0], cg = c / g.Group, mg = m / g.Group;
        int kh = g.Spatial == 2 ? g.Kernel[0] : 1, kw = g.Kernel[^1];
        int h = g.Spatial == 2 ? g.InSize[0] : 1, w = g.InSize[^1];
        int oh = g.Spatial == 2 ? g.OutSize[0] : 1, ow = g.OutSize[^1];
        int sh = g.Spatial == 2 ? g.Strides[0] : 1, sw = g.Strides[^1];
        int ph = g.Spatial == 2 ? g.PadsBegin[0] : 0, pw = g.PadsBegin[^1];
        int dh = g.Spatial == 2 ? g.Dilations[0] : 1, dw = g.Dilations[^1];
        var xv = new int[x.Length];
        for (int i = 0; i < xv.Length; i++) xv[i] = (int)x.GetDouble(i) - xzp;
        for (int b = 0; b < n; b++)
            for (int o = 0; o < m; o++)
            {
                int grp = o / mg, wz = layer.WZp[o];
                for (int y = 0; y < oh; y++)
                    for (int xo = 0; xo < ow; xo++)
                    {
                        int s = 0;
                        for (int ci = 0; ci < cg; ci++)
                        {
                            int cin = grp * cg + ci;
                            for (int ky = 0; ky < kh; ky++)
                            {
                                int iy = y * sh - ph + ky * dh;
                                if (iy < 0 || iy >= h) continue;
                                for (int kx = 0; kx < kw; kx++)
                                {
                                    int ix = xo * sw - pw + kx * dw;
                                    if (ix < 0 || ix >= w) continue;
                                    int wv = layer.W[((o * cg + ci) * kh + ky) * kw + kx] - wz;
                                    s += xv[((b * c + cin) * h + iy) * w + ix] * wv;
                                }
                            }
                        }
                        acc[((b * m + o) * oh + y) * ow + xo] = s;
                    }
            }
    }

    /// <summary>Adds the int32 bias per output channel and requantizes each channel with its multiplier.</summary>
    public static Tensor RequantizeChannels(int[] acc, int n, int m, int pix, Tensor? bias, float[] mult, int yzp, DType yType, int[] shape, string node)
    {
        var (qmin, qmax) = Range(yType);
        if (bias is not null && (bias.DType != DType.Int32 || bias.Length != m))
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"bias must be int32 with {m} values, got {bias.DType.TorchName()} [{string.Join(", ", bias.Shape)}]", node);
        if (mult.Length != 1 && mult.Length != m)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"{mult.Length} weight scales for {m} output channels", node);
        int[]? bs = bias is null ? null : (int[])bias.Data;
        var y = Tensor.Zeros(yType, shape);
        for (int b = 0; b < n; b++)
            for (int o = 0; o < m; o++)
            {
                float s = mult[mult.Length == 1 ? 0 : o];
                int bv = bs is null ? 0 : bs[o];
                int at = (b * m + o) * pix;
                if (yType == DType.UInt8)
                {
                    var ys = y.AsSpan<byte>();
                    for (int i = 0; i < pix; i++) ys[at + i] = (byte)Requantize(unchecked(acc[at + i] + bv), s, yzp, qmin, qmax);
                }
                else
                {
                    var ys = y.AsSpan<sbyte>();
                    for (int i = 0; i < pix; i++) ys[at + i] = (sbyte)Requantize(unchecked(acc[at + i] + bv), s, yzp, qmin, qmax);
                }
            }
        return y;
    }

    /// <summary>QLinearConv's per-channel multipliers, <c>f32(f32(s_x · s_w[c]) / s_y)</c>.</summary>
    public static float[] ConvMultipliers(float xs, ReadOnlySpan<float> ws, float ys)
    {
        var r = new float[ws.Length];
        for (int i = 0; i < r.Length; i++) r[i] = xs * ws[i] / ys;
        return r;
    }

    // ------------------------------------------------------------------ GEMM

    /// <summary>A constant B operand ([K, N] after transB) prepared once, packed for the pair GEMM when it is int8.</summary>
    public sealed class GemmWeight
    {
        public required int K { get; init; }
        public required int N { get; init; }
        public required int[] B { get; init; }        // [K][N] raw values
        public required int[] BZp { get; init; }      // per column
        internal PackedLinearWeight? Packed { get; init; }
    }

    public static GemmWeight PrepareGemmWeight(Tensor b, Tensor? bzp, bool transB, string node)
    {
        if (b.Shape.Length != 2)
            throw new QuantToolsException(ErrorCode.NotSupported, $"B [{string.Join(", ", b.Shape)}]: only a 2-d B is supported", node);
        if (b.DType is not (DType.Int8 or DType.UInt8))
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"B must be int8 or uint8, got {b.DType.TorchName()}", node);
        int k = transB ? b.Shape[1] : b.Shape[0], n = transB ? b.Shape[0] : b.Shape[1];
        var zps = new int[n];
        if (bzp is not null)
        {
            if (bzp.Length != 1 && bzp.Length != n)
                throw new QuantToolsException(ErrorCode.ShapeMismatch, $"B's zero point has {bzp.Length} values for {n} columns", node);
            for (int j = 0; j < n; j++) zps[j] = ZeroPointAt(bzp, j);
        }
        var kn = new int[k * n];
        for (int i = 0; i < k; i++)
            for (int j = 0; j < n; j++) kn[i * n + j] = (int)b.GetDouble(transB ? j * k + i : i * n + j);
        PackedLinearWeight? packed = null;
        if (b.DType == DType.Int8)
        {
            var nk = new sbyte[n * k];
            for (int j = 0; j < n; j++) for (int i = 0; i < k; i++) nk[j * k + i] = (sbyte)kn[i * n + j];
            var qp = zps.All(z => z == zps[0])
                ? QParams.PerTensor(1.0, zps[0], DType.QInt8)
                : QParams.PerChannel(Enumerable.Repeat(1.0, n).ToArray(), zps.Select(z => (long)z).ToArray(), 0, DType.QInt8);
            packed = PackedLinearWeight.Create(new QTensor(new Tensor(DType.Int8, [n, k], nk), qp), null, QEngine.Qnnpack);
        }
        return new GemmWeight { K = k, N = n, B = kn, BZp = zps, Packed = packed };
    }

    /// <summary>Exact <c>Σ_k (a − a_zp)(b − b_zp[j])</c> for A [M, K] (uint8 or int8).</summary>
    public static int[] GemmAccumulators(Tensor a, int m, int azp, GemmWeight w)
    {
        var acc = new int[checked(m * w.N)];
        if (w.Packed is { } pw && a.DType == DType.UInt8)
        {
            LinearKernels.Accumulate(pw, a.AsSpan<byte>(), azp, m, acc, LinearPaths.Resolve(pw).Accumulation);
            return acc;
        }
        var av = new int[a.Length];
        for (int i = 0; i < av.Length; i++) av[i] = (int)a.GetDouble(i) - azp;
        int k = w.K, n = w.N;
        for (int r = 0; r < m; r++)
            for (int j = 0; j < n; j++)
            {
                int s = 0, z = w.BZp[j];
                for (int i = 0; i < k; i++) s += av[r * k + i] * (w.B[i * n + j] - z);
                acc[r * n + j] = s;
            }
        return acc;
    }

    // ------------------------------------------------------------------ pooling, elementwise

    /// <summary>
    /// QLinearGlobalAveragePool (MlasQLinearGlobalAveragePoolNchw / Nhwc): <c>acc = Σ x − x_zp · n</c>, then
    /// requantized with <c>f32(s_x / f32(s_y · n))</c>; ORT refuses multipliers outside [2^-32, 256) and images of 2^24 or more.
    /// </summary>
    public static Tensor QLinearGlobalAveragePool(Tensor x, float xs, int xzp, float ys, int yzp, bool channelsLast, string node)
    {
        if (x.Rank < 3) throw new QuantToolsException(ErrorCode.ShapeMismatch, "QLinearGlobalAveragePool needs a rank >= 3 input", node);
        int n = x.Shape[0], c = channelsLast ? x.Shape[^1] : x.Shape[1];
        int image = 1;
        for (int i = channelsLast ? 1 : 2; i < (channelsLast ? x.Rank - 1 : x.Rank); i++) image *= x.Shape[i];
        if (image >= 0x1000000) throw new QuantToolsException(ErrorCode.NotSupported, "QLinearGlobalAveragePool ImageSize too large! (ONNX Runtime refuses 2^24 pixels or more)", node);
        float scale = xs / (ys * (float)image);
        if (!(scale >= 1f / 4294967296f && scale < 256f))
            throw new QuantToolsException(ErrorCode.InvalidQParams,
                $"QLinearGlobalAveragePool parameter out of computation range: s_x / (s_y · {image}) = {scale:R} (ONNX Runtime needs [2^-32, 256))", node);
        var outShape = (int[])x.Shape.Clone();
        for (int i = channelsLast ? 1 : 2; i < (channelsLast ? x.Rank - 1 : x.Rank); i++) outShape[i] = 1;
        var (qmin, qmax) = Range(x.DType);
        var y = Tensor.Zeros(x.DType, outShape);
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
            {
                int acc = -xzp * image;
                for (int p = 0; p < image; p++)
                {
                    int idx = channelsLast ? (b * image + p) * c + ch : (b * c + ch) * image + p;
                    acc += (int)x.GetDouble(idx);
                }
                int v = Requantize(acc, scale, yzp, qmin, qmax);
                if (x.DType == DType.UInt8) y.AsSpan<byte>()[b * c + ch] = (byte)v;
                else y.AsSpan<sbyte>()[b * c + ch] = (sbyte)v;
            }
        return y;
    }

    /// <summary>
    /// The 256-entry table ORT's QLinear lookup-table kernels build (qlinear_lookup_table.cc
    /// <c>QlinearBuildLookupTable</c>): each integer dequantized <c>f32(f32(q − zp) · s)</c>, the float function applied,
    /// the results quantized with MLAS QuantizeLinear.
    /// </summary>
    public static byte[] LookupTable(DType type, float xs, int xzp, float ys, int yzp, Func<float, float> f)
    {
        var (qmin, qmax) = Range(type);
        var table = new byte[256];
        for (int i = 0; i < 256; i++)
        {
            int q = type == DType.UInt8 ? i : (sbyte)(byte)i;
            float v = f((float)(q - xzp) * xs);
            table[i] = (byte)Quantize(v, ys, yzp, qmin, qmax);
        }
        return table;
    }

    public static Tensor ApplyTable(Tensor x, byte[] table)
    {
        var y = Tensor.Zeros(x.DType, x.Shape);
        if (x.DType == DType.UInt8)
        {
            var xs = x.AsSpan<byte>(); var ysp = y.AsSpan<byte>();
            for (int i = 0; i < xs.Length; i++) ysp[i] = table[xs[i]];
        }
        else
        {
            var xs = x.AsSpan<sbyte>(); var ysp = y.AsSpan<sbyte>();
            for (int i = 0; i < xs.Length; i++) ysp[i] = (sbyte)table[(byte)xs[i]];
        }
        return y;
    }
}
