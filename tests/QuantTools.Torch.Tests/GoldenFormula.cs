using QuantTools.Core.Tensors;

namespace QuantTools.Torch.Tests;

/// <summary>
/// A private scalar statement of the documented quantize/dequantize arithmetic (docs/numerics.md section 4 and
/// "Checked" points 1-2), written independently of the Core quantizer, to confirm that libtorch on this CPU
/// follows it.
/// </summary>
internal static class GoldenFormula
{
    /// <summary>The largest float below 2^31 (the clamp FBGEMM's AVX2/AVX-512 quantize applies before cvtps2dq).</summary>
    public const float MaxBeforeConvert = 2147483520f;

    public static float Inverse(double scale) => 1.0f / (float)scale;

    /// <summary>x86 cvtps2dq: round half to even; NaN and anything outside int32 give INT32_MIN.</summary>
    public static int Cvtps2dq(float t)
    {
        if (float.IsNaN(t)) return int.MinValue;
        float r = MathF.Round(t, MidpointRounding.ToEven);
        if (r >= 2147483648f || r < -2147483648f) return int.MinValue;
        return (int)r;
    }

    /// <summary>quint8 / qint8 per-tensor (vector form, used for every element): wraps, then clamps.</summary>
    public static int QuantizeVector(float x, float inv, int zp, int qmin, int qmax)
    {
        float t = x * inv;
        t = t < MaxBeforeConvert ? t : MaxBeforeConvert; // minps(t, c): NaN selects the constant
        int r = unchecked(Cvtps2dq(t) + zp);
        return r < qmin ? qmin : r > qmax ? qmax : r;
    }

    /// <summary>Scalar form: <c>f32(f32(zp) + rne(f32(x * inv)))</c>, clamped in double, then truncated.</summary>
    public static long QuantizeScalar(float x, float inv, long zp, long qmin, long qmax)
    {
        float t = x * inv;
        float q = (float)zp + MathF.Round(t, MidpointRounding.ToEven);
        double d = q;
        // std::max / std::min semantics (the first operand survives a comparison with NaN).
        d = d < qmin ? qmin : d;
        d = qmax < d ? qmax : d;
        return double.IsNaN(d) ? long.MinValue : (long)d;
    }

    public static int QuantizePerTensor(float x, double scale, long zp, DType dtype)
    {
        float inv = Inverse(scale);
        var (lo, hi) = dtype.QuantRange();
        return dtype == DType.QInt32
            ? ScalarToInt32(QuantizeScalar(x, inv, zp, lo, hi))
            : QuantizeVector(x, inv, (int)zp, (int)lo, (int)hi);
    }

    private static int ScalarToInt32(long v) => v == long.MinValue ? int.MinValue : (int)v;

    /// <summary>Per-channel quantize: the scalar form with the channel's scale and zero point.</summary>
    public static int QuantizePerChannelElement(float x, double scale, long zp, DType dtype)
    {
        var (lo, hi) = dtype.QuantRange();
        long v = QuantizeScalar(x, Inverse(scale), zp, lo, hi);
        // A NaN result converts to INT32_MIN and is then narrowed to the storage type.
        return dtype switch
        {
            DType.QUInt8 => v == long.MinValue ? unchecked((byte)int.MinValue) : (int)v,
            DType.QInt8 => v == long.MinValue ? unchecked((sbyte)int.MinValue) : (int)v,
            _ => ScalarToInt32(v),
        };
    }

    /// <summary>Per-tensor dequantize: <c>f32(f32(scale) * (float)(q - zp))</c>, q - zp in int32 with wraparound.</summary>
    public static float DequantizePerTensor(int q, double scale, long zp) =>
        (float)scale * (float)unchecked(q - (int)zp);

    /// <summary>
    /// Per-channel dequantize as libtorch computes it: <c>f32((double)f32(f32(q) - f32(zp)) * scale_c)</c>. q and zp
    /// are converted to float before the subtraction, so qint32 does not wrap (unlike per-tensor dequantize) and
    /// large values round first. numerics.md section 4 states <c>f32((double)(float)(q - zp) * scale_c)</c>, which
    /// is the same for 8-bit types only (<see cref="DequantizePerChannelElementAsDocumented"/>).
    /// </summary>
    public static float DequantizePerChannelElement(int q, double scale, long zp) =>
        (float)((double)((float)q - (float)zp) * scale);

    /// <summary>numerics.md section 4's per-channel dequantize: <c>f32((double)(float)(q - zp) * scale_c)</c>.</summary>
    public static float DequantizePerChannelElementAsDocumented(int q, double scale, long zp) =>
        (float)((double)(float)unchecked(q - (int)zp) * scale);
}
