using QuantTools.Core.Kernels;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Quantization;

/// <summary>
/// quantize_per_tensor / quantize_per_channel / dequantize / fake_quantize, bit for bit as PyTorch 2.11 on x86
/// (FBGEMM build). See Numerics.md in this project ("Checked against PyTorch" points 1-2, sections 0 and 4).
/// <para>Which dequantize form <c>q.dequantize()</c> uses, as the golden data shows (quantize.json of seeds 0, 2, 3,
/// compared bit for bit against both the scalar form <c>f32(sf*(float)(q-zp))</c> and the FMA vector form
/// <c>fma(sf, (float)q, f32(sf*(float)-zp))</c>): per-tensor quint8, qint8 and qint32 all follow the
/// <b>scalar</b> form (FBGEMM's Dequantize), for short (9-element) and long (4096-element) tensors alike.
/// Over the three seeds, dequant records (x and special inputs): quint8 240, scalar exact in 240, FMA form
/// exact in only 115 (147,437 elements off); qint8 144 / 144 / 62 (88,974 off); qint32 96 / 96 / 52 (32,463 off;
/// the qint32 subtraction wraps in int32). Per-channel dequantize (18 records) matches
/// <c>f32((double)f32((float)q - (float)zp) * scale_c)</c> with the double scale; quint4x2/quint2x4 (6 records)
/// match <c>f32(f32((float)q - zp) * sf)</c>.
/// Per-channel fake-quant: PyTorch's CPU kernel with an integer zero point computes
/// <c>(int64)((float)zp + rne(f32(x*inv)))</c>, i.e. round half to even with the zero point added after rounding;
/// no golden element lies on a tie, so the data cannot tell this from numerics.md's "rha, zp before rounding".
/// We follow the kernel source.</para>
/// </summary>
public static class Quantizer
{
    // ------------------------------------------------------------------ span kernels (per-tensor)

    /// <summary>quint8 per-tensor quantize (vector form, see <see cref="QuantizeKernels"/>).</summary>
    public static void QuantizePerTensor(ReadOnlySpan<float> x, Span<byte> q, double scale, long zeroPoint)
    {
        CheckScale(scale); CheckZeroPoint(zeroPoint, DType.QUInt8);
        QuantizeKernels.QUInt8(x, q, scale, zeroPoint);
    }

    /// <summary>qint8 per-tensor quantize (vector form).</summary>
    public static void QuantizePerTensor(ReadOnlySpan<float> x, Span<sbyte> q, double scale, long zeroPoint)
    {
        CheckScale(scale); CheckZeroPoint(zeroPoint, DType.QInt8);
        QuantizeKernels.QInt8(x, q, scale, zeroPoint);
    }

    /// <summary>qint32 per-tensor quantize (scalar form <c>f32(zp + rne(t))</c>, clamped in double).</summary>
    public static void QuantizePerTensor(ReadOnlySpan<float> x, Span<int> q, double scale, long zeroPoint)
    {
        CheckScale(scale); CheckZeroPoint(zeroPoint, DType.QInt32);
        QuantizeKernels.QInt32(x, q, scale, zeroPoint);
    }

    public static void DequantizePerTensor(ReadOnlySpan<byte> q, Span<float> y, double scale, long zeroPoint)
    {
        CheckScale(scale); CheckZeroPoint(zeroPoint, DType.QUInt8);
        DequantizeKernels.QUInt8(q, y, scale, zeroPoint);
    }

    public static void DequantizePerTensor(ReadOnlySpan<sbyte> q, Span<float> y, double scale, long zeroPoint)
    {
        CheckScale(scale); CheckZeroPoint(zeroPoint, DType.QInt8);
        DequantizeKernels.QInt8(q, y, scale, zeroPoint);
    }

    public static void DequantizePerTensor(ReadOnlySpan<int> q, Span<float> y, double scale, long zeroPoint)
    {
        CheckScale(scale); CheckZeroPoint(zeroPoint, DType.QInt32);
        DequantizeKernels.QInt32(q, y, scale, zeroPoint);
    }

    // ------------------------------------------------------------------ tensor API

    /// <summary>
    /// <c>torch.quantize_per_tensor</c> / <c>torch.quantize_per_channel</c> / float-qparams quantization, chosen by
    /// <paramref name="qp"/>'s scheme. Any dense input is converted to float32 first.
    /// </summary>
    public static QTensor Quantize(Tensor x, QParams qp)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(qp);
        Validate(qp, x.Shape, forFakeQuant: false);
        var xf = x.ToFloat32().AsSpan<float>();
        var dtype = qp.DType;
        var ints = Tensor.Zeros(dtype.IntReprType(), x.Shape);

        if (qp.QScheme == QScheme.PerChannelAffineFloatQParams)
        {
            QuantizeFloatQParams(xf, ints, qp, x.Shape);
        }
        else if (qp.IsPerChannel)
        {
            if (dtype is DType.QUInt4x2 or DType.QUInt2x4)
                throw new QuantToolsException(ErrorCode.NotSupported,
                    $"per-channel affine quantization does not support {dtype.TorchName()} (PyTorch supports quint8, qint8, qint32; use per_channel_affine_float_qparams)");
            QuantizePerChannel(xf, ints, qp, x.Shape);
        }
        else
        {
            switch (dtype)
            {
                case DType.QUInt8: QuantizeKernels.QUInt8(xf, ints.AsSpan<byte>(), qp.Scale, qp.ZeroPoint); break;
                case DType.QInt8: QuantizeKernels.QInt8(xf, ints.AsSpan<sbyte>(), qp.Scale, qp.ZeroPoint); break;
                case DType.QInt32: QuantizeKernels.QInt32(xf, ints.AsSpan<int>(), qp.Scale, qp.ZeroPoint); break;
                default: QuantizeSubByte(xf, ints.AsSpan<byte>(), qp); break;
            }
        }
        return new QTensor(ints, qp);
    }

    /// <summary><c>q.dequantize()</c>: float32 tensor of the same shape.</summary>
    public static Tensor Dequantize(QTensor q)
    {
        ArgumentNullException.ThrowIfNull(q);
        var qp = q.QParams;
        Validate(qp, q.Shape, forFakeQuant: false);
        var y = Tensor.Zeros(DType.Float32, q.Shape);
        var ys = y.AsSpan<float>();
        var ints = q.IntRepr;
        if (qp.QScheme == QScheme.PerChannelAffineFloatQParams)
        {
            // (float(q) - zp_f) * scale_f, all float
            int inner = Inner(q.Shape, qp.Axis), channels = q.Shape[qp.Axis];
            for (int i = 0; i < ys.Length; i++)
            {
                int c = i / inner % channels;
                ys[i] = (GetInt(ints, i) - qp.FloatZeroPoints![c]) * (float)qp.Scales[c];
            }
        }
        else if (qp.IsPerChannel)
        {
            // (float(q) - zp) in float, times the double scale, rounded to float
            int inner = Inner(q.Shape, qp.Axis), channels = q.Shape[qp.Axis];
            for (int i = 0; i < ys.Length; i++)
            {
                int c = i / inner % channels;
                ys[i] = (float)((double)((float)GetInt(ints, i) - (float)qp.ZeroPoints[c]) * qp.Scales[c]);
            }
        }
        else
        {
            switch (q.DType)
            {
                case DType.QUInt8: DequantizeKernels.QUInt8(ints.AsSpan<byte>(), ys, qp.Scale, qp.ZeroPoint); break;
                case DType.QInt8: DequantizeKernels.QInt8(ints.AsSpan<sbyte>(), ys, qp.Scale, qp.ZeroPoint); break;
                case DType.QInt32: DequantizeKernels.QInt32(ints.AsSpan<int>(), ys, qp.Scale, qp.ZeroPoint); break;
                default:
                {
                    // dequantize_tensor_per_tensor_affine_sub_byte: (float(q) - zp_f) * scale_f, all float
                    float sf = (float)qp.Scale, zf = qp.ZeroPoint;
                    var b = ints.AsSpan<byte>();
                    for (int i = 0; i < b.Length; i++) ys[i] = (b[i] - zf) * sf;
                    break;
                }
            }
        }
        return y;
    }

    /// <summary>
    /// <c>torch.fake_quantize_per_tensor_affine</c> / <c>torch.fake_quantize_per_channel_affine</c> with
    /// <see cref="QParams.QuantMin"/>..<see cref="QParams.QuantMax"/>. Returns float32.
    /// </summary>
    public static Tensor FakeQuantize(Tensor x, QParams qp)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(qp);
        Validate(qp, x.Shape, forFakeQuant: true);
        var xf = x.ToFloat32().AsSpan<float>();
        var y = Tensor.Zeros(DType.Float32, x.Shape);
        var ys = y.AsSpan<float>();
        double qmin = qp.QuantMin, qmax = qp.QuantMax;
        if (!qp.IsPerChannel)
        {
            float sf = (float)qp.Scale, inv = 1.0f / sf;
            long zp = qp.ZeroPoint;
            float zpf = zp;
            for (int i = 0; i < xf.Length; i++)
            {
                float qf = zpf + MathF.Round(xf[i] * inv);      // float
                long qv = (long)FMin(FMax(qf, qmin), qmax);     // fmin/fmax: NaN -> the other operand
                ys[i] = (float)(qv - zp) * sf;
            }
            return y;
        }
        {
            int inner = Inner(x.Shape, qp.Axis), channels = x.Shape[qp.Axis];
            bool floatZp = qp.QScheme == QScheme.PerChannelAffineFloatQParams;
            for (int i = 0; i < xf.Length; i++)
            {
                int c = i / inner % channels;
                float sf = (float)qp.Scales[c], inv = 1.0f / sf;
                if (floatZp)
                {
                    // float zero point: lrintf(zp + x*inv), zero point added before rounding
                    float zf = qp.FloatZeroPoints![c];
                    long qv = LrintF(zf + xf[i] * inv);
                    ys[i] = (float)((FMin(FMax(qv, qmin), qmax) - zf) * (double)sf);
                }
                else
                {
                    // integer zero point: (int64)((float)zp + rne(f32(x*inv))), zero point added after rounding
                    int zp = (int)qp.ZeroPoints[c];
                    long qv = TruncToInt64(zp + MathF.Round(xf[i] * inv));
                    ys[i] = (float)((FMin(FMax(qv, qmin), qmax) - zp) * (double)sf);
                }
            }
        }
        return y;
    }

    // ------------------------------------------------------------------ per-channel / sub-byte / float-qparams

    private static void QuantizePerChannel(ReadOnlySpan<float> xf, Tensor ints, QParams qp, int[] shape)
    {
        var (outer, channels, inner) = Split(shape, qp.Axis);
        var (lo, hi) = qp.DType.QuantRange();
        for (int c = 0; c < channels; c++)
        {
            // quantize_val: fbgemm::Quantize<T, LEGACY=false>(x, zp, (float)scale) = clamp_double((float)zp + rne(f32(x*inv)))
            float inv = 1.0f / (float)qp.Scales[c];
            float zpf = (int)qp.ZeroPoints[c];
            for (int o = 0; o < outer; o++)
            {
                int b = (o * channels + c) * inner;
                for (int e = 0; e < inner; e++)
                {
                    float v = zpf + MathF.Round(xf[b + e] * inv);
                    SetInt(ints, b + e, ClampToIntX86(v, lo, hi));
                }
            }
        }
    }

    private static void QuantizeFloatQParams(ReadOnlySpan<float> xf, Tensor ints, QParams qp, int[] shape)
    {
        var (outer, channels, inner) = Split(shape, qp.Axis);
        var (lo, hi) = qp.DType.QuantRange();
        for (int c = 0; c < channels; c++)
        {
            // quantize_val_float_qparams: inv = scale==0 ? 1 : 1f/scale; lrintf(x*inv + zp); clamp
            float sf = (float)qp.Scales[c];
            float inv = sf == 0 ? 1.0f : 1.0f / sf;
            float zf = qp.FloatZeroPoints![c];
            for (int o = 0; o < outer; o++)
            {
                int b = (o * channels + c) * inner;
                for (int e = 0; e < inner; e++)
                    SetInt(ints, b + e, (int)Math.Clamp(LrintF(xf[b + e] * inv + zf), lo, hi));
            }
        }
    }

    private static void QuantizeSubByte(ReadOnlySpan<float> xf, Span<byte> q, QParams qp)
    {
        // quantize_tensor_per_tensor_affine_sub_byte: lrintf(rne(f32(x*inv)) + (float)zp), clamp to [0, 2^bits-1]
        var (lo, hi) = qp.DType.QuantRange();
        float sf = (float)qp.Scale;
        float inv = sf == 0 ? 1.0f : 1.0f / sf;
        float zf = qp.ZeroPoint;
        for (int i = 0; i < xf.Length; i++)
            q[i] = (byte)Math.Clamp(LrintF(MathF.Round(xf[i] * inv) + zf), lo, hi);
    }

    // ------------------------------------------------------------------ x86 conversion semantics

    /// <summary>C <c>lrintf</c> on x86-64 (<c>cvtss2si</c> to 64 bits): rne; NaN and out-of-range give INT64_MIN.</summary>
    internal static long LrintF(float v) =>
        v is >= -9.223372E+18f and < 9.223372E+18f ? (long)MathF.Round(v) : long.MinValue;

    /// <summary>C <c>static_cast&lt;int64_t&gt;(float)</c> on x86-64 (<c>cvttss2si</c>): NaN/out-of-range give INT64_MIN.</summary>
    private static long TruncToInt64(float v) =>
        v is >= -9.223372E+18f and < 9.223372E+18f ? (long)v : long.MinValue;

    /// <summary>FBGEMM's clamp&lt;double,T&gt; then static_cast: std::min/max pass NaN through, and the cast of NaN
    /// (cvttsd2si) gives INT32_MIN, whose low bits are kept for 8-bit types.</summary>
    private static int ClampToIntX86(float v, long lo, long hi)
    {
        if (float.IsNaN(v)) return int.MinValue;
        double d = Math.Min(Math.Max((double)v, lo), hi);
        return (int)d;
    }

    private static double FMax(double a, double b) => double.IsNaN(a) ? b : double.IsNaN(b) ? a : Math.Max(a, b);
    private static double FMin(double a, double b) => double.IsNaN(a) ? b : double.IsNaN(b) ? a : Math.Min(a, b);

    // ------------------------------------------------------------------ helpers

    private static (int Outer, int Channels, int Inner) Split(int[] shape, int axis)
    {
        int outer = 1, inner = 1;
        for (int d = 0; d < axis; d++) outer *= shape[d];
        for (int d = axis + 1; d < shape.Length; d++) inner *= shape[d];
        return (outer, shape[axis], inner);
    }

    private static int Inner(int[] shape, int axis)
    {
        int inner = 1;
        for (int d = axis + 1; d < shape.Length; d++) inner *= shape[d];
        return Math.Max(inner, 1);
    }

    // Switch on the dtype, not the array type: the CLR lets byte[] and sbyte[] pass each other's 'is' tests.
    private static int GetInt(Tensor t, int i) => t.DType switch
    {
        DType.Int8 => ((sbyte[])t.Data)[i],
        DType.UInt8 => ((byte[])t.Data)[i],
        DType.Int32 => ((int[])t.Data)[i],
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"unexpected int_repr dtype {t.DType.TorchName()}"),
    };

    private static void SetInt(Tensor t, int i, int v)
    {
        switch (t.DType)
        {
            case DType.Int8: ((sbyte[])t.Data)[i] = unchecked((sbyte)v); break;
            case DType.UInt8: ((byte[])t.Data)[i] = unchecked((byte)v); break;
            case DType.Int32: ((int[])t.Data)[i] = v; break;
        }
    }

    // ------------------------------------------------------------------ validation

    private static void CheckScale(double s, int? channel = null)
    {
        if (!(s > 0) || double.IsInfinity(s) || !float.IsFinite((float)s) || (float)s == 0)
            throw new QuantToolsException(ErrorCode.InvalidQParams,
                $"scale{(channel is { } c ? $"[{c}]" : "")} must be a finite number > 0 (also as float32), got {s:R}");
    }

    private static void CheckZeroPoint(long zp, DType dtype, int? channel = null)
    {
        var (lo, hi) = dtype.QuantRange();
        if (zp < lo || zp > hi)
            throw new QuantToolsException(ErrorCode.InvalidQParams,
                $"zero_point{(channel is { } c ? $"[{c}]" : "")} {zp} is outside the {dtype.TorchName()} range [{lo}, {hi}]");
    }

    private static void Validate(QParams qp, int[] shape, bool forFakeQuant)
    {
        for (int c = 0; c < qp.Scales.Length; c++) CheckScale(qp.Scales[c], qp.IsPerChannel ? c : null);
        if (qp.IsPerChannel)
        {
            if (qp.Axis < 0 || qp.Axis >= shape.Length)
                throw new QuantToolsException(ErrorCode.ShapeMismatch,
                    $"channel axis {qp.Axis} is out of range for a {shape.Length}-d tensor [{string.Join(", ", shape)}]");
            if (shape[qp.Axis] != qp.Scales.Length)
                throw new QuantToolsException(ErrorCode.ShapeMismatch,
                    $"axis {qp.Axis} has {shape[qp.Axis]} channels but {qp.Scales.Length} scales were given");
        }
        if (forFakeQuant)
        {
            if (qp.QuantMin > qp.QuantMax)
                throw new QuantToolsException(ErrorCode.InvalidQParams,
                    $"quant_min {qp.QuantMin} must be <= quant_max {qp.QuantMax}");
            if (qp.QScheme != QScheme.PerChannelAffineFloatQParams)
                for (int c = 0; c < qp.ZeroPoints.Length; c++)
                    if (qp.ZeroPoints[c] < qp.QuantMin || qp.ZeroPoints[c] > qp.QuantMax)
                        throw new QuantToolsException(ErrorCode.InvalidQParams,
                            $"zero_point{(qp.IsPerChannel ? $"[{c}]" : "")} {qp.ZeroPoints[c]} is outside [quant_min, quant_max] = [{qp.QuantMin}, {qp.QuantMax}]");
        }
        else if (qp.QScheme != QScheme.PerChannelAffineFloatQParams)
        {
            for (int c = 0; c < qp.ZeroPoints.Length; c++) CheckZeroPoint(qp.ZeroPoints[c], qp.DType, qp.IsPerChannel ? c : null);
        }
        if (qp.QScheme == QScheme.PerChannelAffineFloatQParams)
        {
            foreach (var z in qp.FloatZeroPoints!)
                if (!float.IsFinite(z))
                    throw new QuantToolsException(ErrorCode.InvalidQParams, $"float zero points must be finite, got {z}");
            if (qp.DType is not (DType.QUInt8 or DType.QUInt4x2 or DType.QUInt2x4) && !forFakeQuant)
                throw new QuantToolsException(ErrorCode.NotSupported,
                    $"per_channel_affine_float_qparams supports quint8, quint4x2 and quint2x4, not {qp.DType.TorchName()}");
        }
    }
}
