using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Elementwise;

/// <summary>
/// Binary quantized ops and scalar variants, bit for bit as PyTorch 2.11 (numerics.md 5.4): <c>quantized::add</c>,
/// <c>add_relu</c>, <c>mul</c>, <c>mul_relu</c>, <c>cat</c>, <c>add_scalar</c>, <c>mul_scalar</c>. Inputs are
/// per-tensor quint8 / qint8 with equal shapes (no broadcasting).
/// </summary>
public static class QElementwise
{
    /// <summary>
    /// <c>quantized::add</c> / <c>add_relu</c> with output (<paramref name="outScale"/>, <paramref name="outZp"/>).
    /// Engine: qnnpack with quint8 runs QNNPACK's fixed-point q8vadd (PT: BinaryOps.cpp <c>qnnpack_add</c>); every
    /// other case runs ATen's <c>qadd_kernel</c> (PT: QuantizedOpKernels.cpp) with its vector/scalar split.
    /// </summary>
    public static QTensor Add(QTensor a, QTensor b, double outScale, long outZp, bool relu, QEngine engine)
    {
        CheckBinary(a, b, "add");
        var y = QOps.NewOutput(a.DType, a.Shape, outScale, outZp, out var dst);
        AddCore(a, b, outScale, outZp, relu, engine, dst);
        return y;
    }

    /// <summary>
    /// <see cref="Add(QTensor, QTensor, double, long, bool, QEngine)"/> into a caller's output: <paramref name="output"/>
    /// receives the integers (as bytes, two's complement for qint8) of the result with qparams (<paramref name="outScale"/>,
    /// <paramref name="outZp"/>). Lets a caller reuse one buffer instead of allocating per call.
    /// </summary>
    public static void Add(QTensor a, QTensor b, double outScale, long outZp, bool relu, QEngine engine, Span<byte> output)
    {
        CheckBinary(a, b, "add");
        QOps.RequireOutput(output, a.Length, "add");
        AddCore(a, b, outScale, outZp, relu, engine, output);
    }

    private static void AddCore(QTensor a, QTensor b, double outScale, long outZp, bool relu, QEngine engine, Span<byte> dst)
    {
        if (engine == QEngine.Qnnpack && a.DType == DType.QUInt8)
            AddKernels.QnnpackAdd(QOps.Bytes(a), QOps.Bytes(b), dst, AddKernels.QnnpackParams(a.QParams, b.QParams, outScale, outZp, relu));
        else
            AddKernels.AtenAdd(QOps.Bytes(a), QOps.Bytes(b), dst, QOps.IsSigned(a.DType), AddKernels.AtenParams(a.QParams, b.QParams, outScale, outZp, relu));
    }

    /// <summary>
    /// <c>quantized::mul</c> / <c>mul_relu</c> (PT: QuantizedOpKernels.cpp <c>qmul_kernel</c>; the same on every engine
    /// for quint8): <c>c = (a-za)(b-zb)</c>, <c>M = f32(f32(sa*sb) * f32(1/so))</c>, <c>y = clamp(zo + lrintf(f32(c*M)))</c>.
    /// </summary>
    public static QTensor Mul(QTensor a, QTensor b, double outScale, long outZp, bool relu, QEngine engine)
    {
        _ = engine;
        CheckBinary(a, b, "mul");
        var y = QOps.NewOutput(a.DType, a.Shape, outScale, outZp, out var dst);
        MulCore(a, b, outScale, outZp, relu, dst);
        return y;
    }

    /// <summary><see cref="Mul(QTensor, QTensor, double, long, bool, QEngine)"/> into a caller's output (see the span overload of Add).</summary>
    public static void Mul(QTensor a, QTensor b, double outScale, long outZp, bool relu, QEngine engine, Span<byte> output)
    {
        _ = engine;
        CheckBinary(a, b, "mul");
        QOps.RequireOutput(output, a.Length, "mul");
        MulCore(a, b, outScale, outZp, relu, output);
    }

    private static void MulCore(QTensor a, QTensor b, double outScale, long outZp, bool relu, Span<byte> dst) =>
        MulKernels.Mul(QOps.Bytes(a), QOps.Bytes(b), dst, QOps.IsSigned(a.DType), (int)a.QParams.ZeroPoint, (int)b.QParams.ZeroPoint,
            MulMultiplier(a.QParams.Scale, b.QParams.Scale, outScale), (int)outZp, relu);

    /// <summary>The float multiplier of <see cref="Mul"/>: <c>f32(f32(f32(sa)*f32(sb)) * f32(1/f32(so)))</c>.</summary>
    public static float MulMultiplier(double sa, double sb, double so) => ((float)sa * (float)sb) * (1.0f / (float)so);

    /// <summary>
    /// <c>quantized::cat</c> of NCHW-contiguous inputs (PT: qconcat.cpp, general path): every input is dequantized
    /// (scalar form), concatenated, then quantized per tensor with the output qparams.
    /// </summary>
    public static QTensor Cat(IReadOnlyList<QTensor> xs, int dim, double outScale, long outZp, QEngine engine)
    {
        _ = engine;
        if (xs.Count == 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "cat needs at least one tensor");
        var first = xs[0];
        int rank = first.Shape.Length;
        if (dim < 0) dim += rank;
        if (dim < 0 || dim >= rank) throw new QuantToolsException(ErrorCode.InvalidArgument, $"cat dim {dim} is out of range for rank {rank}");
        var shape = (int[])first.Shape.Clone();
        shape[dim] = 0;
        foreach (var x in xs)
        {
            QOps.RequirePerTensor(x, "cat");
            if (x.DType != first.DType) throw new QuantToolsException(ErrorCode.InvalidArgument, "cat inputs must share a dtype");
            if (x.Shape.Length != rank) throw new QuantToolsException(ErrorCode.ShapeMismatch, "cat inputs must share a rank");
            for (int d = 0; d < rank; d++)
                if (d != dim && x.Shape[d] != first.Shape[d])
                    throw new QuantToolsException(ErrorCode.ShapeMismatch, $"cat inputs differ in dimension {d}");
            shape[dim] += x.Shape[dim];
        }
        int outer = 1, inner = 1;
        for (int d = 0; d < dim; d++) outer *= shape[d];
        for (int d = dim + 1; d < rank; d++) inner *= shape[d];
        var f = new float[outer * shape[dim] * inner];
        int offset = 0;
        foreach (var x in xs)
        {
            var dq = Quantizer.Dequantize(x).AsSpan<float>();
            int run = x.Shape[dim] * inner;
            for (int o = 0; o < outer; o++)
                dq.Slice(o * run, run).CopyTo(f.AsSpan(o * shape[dim] * inner + offset, run));
            offset += run;
        }
        return Quantizer.Quantize(new Tensor(DType.Float32, shape, f), QParams.PerTensor(outScale, outZp, first.DType));
    }

    /// <summary>
    /// <c>quantized::cat</c> / <c>cat_relu</c> along channels of 4-d inputs whose PyTorch tensors were all
    /// channels_last-contiguous: <c>qcat_nhwc_kernel</c> (AVX-512 build). Per pixel and input, channels with the output's
    /// qparams are copied; otherwise channels below <c>C/16*16</c> are dequantized with the FMA form and quantized with
    /// the vector form (<c>inv = f32(1.0/scale)</c> in double), the rest with <c>dequantize_val</c> / <c>quantize_val</c>.
    /// </summary>
    public static QTensor CatNhwc(IReadOnlyList<QTensor> xs, double scale, long zp, bool relu)
    {
        if (xs.Count == 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "cat needs at least one tensor");
        var first = xs[0];
        int n = first.Shape[0], h = first.Shape[2], w = first.Shape[3];
        int cTotal = 0;
        foreach (var x in xs)
        {
            QOps.RequirePerTensor(x, "cat");
            if (x.DType != first.DType) throw new QuantToolsException(ErrorCode.InvalidArgument, "cat inputs must share a dtype");
            if (x.Shape[0] != n || x.Shape[2] != h || x.Shape[3] != w) throw new QuantToolsException(ErrorCode.ShapeMismatch, "cat inputs differ outside dim 1");
            cTotal += x.Shape[1];
        }
        var y = QOps.NewPerTensor(first.DType, [n, cTotal, h, w], scale, zp, out var dst);
        bool signed = QOps.IsSigned(first.DType);
        var (qmin, qmax) = QOps.Range(first.DType);
        int zpo = (int)zp;
        float invVec = (float)(1.0 / scale);
        float invScalar = 1.0f / (float)scale;
        int hw = h * w, cOff = 0;
        foreach (var x in xs)
        {
            var src = QOps.Bytes(x);
            int cc = x.Shape[1];
            bool same = x.QParams.Scale == scale && x.QParams.ZeroPoint == zp;
            float sf = (float)x.QParams.Scale;
            int zin = (int)x.QParams.ZeroPoint;
            float premul = QOps.Premul(sf, zin);
            int lanes = QOps.AtenVectorBytes / 4;   // Vectorized<float>::size(): 16 on AVX-512, 8 on AVX2
            int vecC = cc / lanes * lanes;
            for (int b = 0; b < n; b++)
                for (int ch = 0; ch < cc; ch++)
                {
                    int si = (b * cc + ch) * hw, di = (b * cTotal + cOff + ch) * hw;
                    for (int i = 0; i < hw; i++)
                    {
                        int v = QOps.Get(src, si + i, signed);
                        int o;
                        if (same) o = v;
                        else if (ch < vecC)
                        {
                            float fv = QOps.DqFma(v, sf, premul);
                            if (relu) fv = MathF.Max(fv, 0f);
                            o = QOps.QuantizeVector(fv, invVec, zpo, qmin, qmax);
                        }
                        else
                        {
                            float fv = QOps.DqScalar(v, sf, zin);
                            if (relu) fv = MathF.Max(fv, 0f);
                            o = QOps.QuantizeScalar(fv, invScalar, zpo, qmin, qmax);
                        }
                        if (relu && same) o = Math.Max(o, zpo);
                        dst[di + i] = (byte)o;
                    }
                }
            cOff += cc;
        }
        return y;
    }

    /// <summary>
    /// <c>quantized::add_scalar</c> / <c>add_scalar_relu</c> (PT: BinaryOps.cpp <c>_add_scalar_out</c>): <c>c_q = rne(c/s)</c>
    /// in double; if <c>z - c_q</c> fits the dtype the integers are kept and only the zero point moves; otherwise the
    /// output scale and zero point are re-derived and the values requantized (<c>qadd_scalar_kernel</c>).
    /// </summary>
    public static QTensor AddScalar(QTensor a, double c, bool relu, QEngine engine)
    {
        _ = engine;
        QOps.RequirePerTensor(a, "add_scalar");
        bool signed = QOps.IsSigned(a.DType);
        var (qmin, qmax) = QOps.Range(a.DType);
        double s = a.QParams.Scale;
        long z = a.QParams.ZeroPoint;
        long cq = (long)Math.Round(c / s, MidpointRounding.ToEven);
        var src = QOps.Bytes(a);
        if (qmin > z - cq || qmax < z - cq)
        {
            double sPrime; long zPrime;
            if (qmin > z - cq) { sPrime = ((double)qmax - (z - cq)) / ((double)qmax - qmin) * s; zPrime = qmin; }
            else { sPrime = ((double)(z - cq) - qmin) / ((double)qmax - qmin) * s; zPrime = qmax; }
            var y = QOps.NewPerTensor(a.DType, a.Shape, sPrime, zPrime, out var dst);
            float m = (float)s * (1.0f / (float)sPrime);
            int lo = relu ? Math.Max(qmin, (int)zPrime) : qmin;
            for (int i = 0; i < dst.Length; i++)
            {
                long v = QOps.Get(src, i, signed) - z + cq;
                dst[i] = (byte)Math.Max(QOps.RequantizeFromInt(v, m, (int)zPrime, qmin, qmax), lo);
            }
            return y;
        }
        else
        {
            var y = QOps.NewPerTensor(a.DType, a.Shape, s, z - cq, out var dst);
            src.CopyTo(dst);
            if (relu) ClampKernels.Clamp(dst, signed, (int)(z - cq), qmax);
            return y;
        }
    }

    /// <summary>
    /// <c>quantized::mul_scalar</c> / <c>mul_scalar_relu</c> (PT: BinaryOps.cpp <c>_mul_scalar_out</c>): c &gt; 0 keeps the
    /// integers and scales the scale; c == 0 gives zeros with (1.0, 0); c &lt; 0 mirrors the integers
    /// (<c>q' = qmax + qmin - q</c>) with scale <c>|c|*s</c> and zero point <c>qmax - (z - qmin)</c>.
    /// </summary>
    public static QTensor MulScalar(QTensor a, double c, bool relu, QEngine engine)
    {
        _ = engine;
        QOps.RequirePerTensor(a, "mul_scalar");
        bool signed = QOps.IsSigned(a.DType);
        var (qmin, qmax) = QOps.Range(a.DType);
        double s = a.QParams.Scale;
        long z = a.QParams.ZeroPoint;
        var src = QOps.Bytes(a);
        if (c > 0)
        {
            var y = QOps.NewPerTensor(a.DType, a.Shape, c * s, z, out var dst);
            src.CopyTo(dst);
            if (relu) ClampKernels.Clamp(dst, signed, (int)z, qmax);
            return y;
        }
        if (c == 0)
        {
            return QOps.NewPerTensor(a.DType, a.Shape, 1.0, 0, out _);
        }
        {
            long zPrime = qmax - (z - qmin);
            var y = QOps.NewPerTensor(a.DType, a.Shape, Math.Abs(c) * s, zPrime, out var dst);
            for (int i = 0; i < dst.Length; i++)
            {
                int v = qmax + qmin - QOps.Get(src, i, signed);
                if (relu) v = Math.Max(v, (int)zPrime);
                dst[i] = (byte)v;
            }
            return y;
        }
    }

    private static void CheckBinary(QTensor a, QTensor b, string op)
    {
        QOps.RequirePerTensor(a, op);
        QOps.RequirePerTensor(b, op);
        if (a.DType != b.DType)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"{op}: inputs must share a dtype ({a.DType.TorchName()} vs {b.DType.TorchName()})");
        if (!a.Shape.AsSpan().SequenceEqual(b.Shape))
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"{op}: shapes [{string.Join(", ", a.Shape)}] and [{string.Join(", ", b.Shape)}] differ (broadcasting is not supported)");
    }
}
