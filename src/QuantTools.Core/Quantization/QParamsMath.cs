using QuantTools.Core.Tensors;

namespace QuantTools.Core.Quantization;

/// <summary>
/// Quantization ranges and scale / zero-point calculation exactly as PyTorch's observers do them
/// (<c>calculate_qmin_qmax</c>, <c>validate_qmin_qmax</c> and <c>_calculate_qparams</c>), all in float32
/// where PyTorch works on float32 tensors.
/// </summary>
public static class QParamsMath
{
    /// <summary>The dtypes PyTorch's uniform observers accept (float8 types are not modelled here).</summary>
    public static bool IsObserverDType(DType d) =>
        d is DType.QInt8 or DType.QUInt8 or DType.QUInt4x2 or DType.QInt32
            or DType.Int8 or DType.UInt8 or DType.Int16 or DType.Int32;

    /// <summary>
    /// The (quant_min, quant_max) an observer uses. A custom range counts only when both bounds are given
    /// (as in PyTorch); it must include 0 and satisfy qmin &lt; qmax, and for qint8/int8 span at most 256 levels,
    /// for qint32/int32 at most 2^32. <paramref name="reduceRange"/> halves the range with floor division.
    /// </summary>
    public static (long QMin, long QMax) QuantRange(DType dtype, bool reduceRange, long? quantMin, long? quantMax)
    {
        if (quantMin is long lo && quantMax is long hi)
        {
            if (!(lo <= 0 && 0 <= hi))
                throw new QuantToolsException(ErrorCode.InvalidQParams,
                    $"Used-specified quantization range must include 0 (got quant_min={lo}, quant_max={hi}).");
            if (!(lo < hi))
                throw new QuantToolsException(ErrorCode.InvalidQParams,
                    $"qmin must be strictly less than qmax for user-specified quantization range (got quant_min={lo}, quant_max={hi}).");
            long len = hi - lo + 1;
            if (dtype is DType.QInt8 or DType.Int8 && !(len > 0 && len <= 256))
                throw new QuantToolsException(ErrorCode.InvalidQParams,
                    $"quantization range should be positive and not exceed the maximum bit range (=256) (got {len} levels for {dtype.TorchName()}).");
            if (dtype is DType.QInt32 or DType.Int32 && !(len > 0 && len <= 4294967296L))
                throw new QuantToolsException(ErrorCode.InvalidQParams,
                    $"quantization range should be positive and not exceed the maximum bit range (=4294967296) (got {len} levels for {dtype.TorchName()}).");
            return reduceRange ? (FloorDiv2(lo), FloorDiv2(hi)) : (lo, hi);
        }
        return dtype switch
        {
            DType.QInt8 or DType.Int8 => reduceRange ? (-64, 63) : (-128, 127),
            DType.QUInt8 or DType.UInt8 => reduceRange ? (0, 127) : (0, 255),
            DType.QInt32 or DType.Int32 => (int.MinValue, int.MaxValue),
            DType.Int16 => (short.MinValue, short.MaxValue),
            _ => (0, 15),
        };
    }

    private static long FloorDiv2(long v) => v >= 0 ? v / 2 : -((-v + 1) / 2);

    /// <summary>The quantized dtype a QParams record carries for an observer dtype (int8 → qint8, uint8 → quint8, int32 → qint32).</summary>
    public static DType QParamsDType(DType dtype) => dtype switch
    {
        DType.Int8 => DType.QInt8,
        DType.UInt8 => DType.QUInt8,
        DType.Int32 => DType.QInt32,
        _ when dtype.IsQuantized() => dtype,
        _ => throw new QuantToolsException(ErrorCode.NotSupported,
            $"qparams of dtype {dtype.TorchName()} cannot be represented (no matching quantized dtype)"),
    };

    /// <summary>
    /// PyTorch's <c>_calculate_qparams</c>. Per-tensor schemes take one-element arrays. Unobserved statistics
    /// (empty arrays, or a per-tensor +inf/-inf pair) give scale 1 and zero point 0. Scales are float32 results
    /// widened to double; affine zero points follow int32 arithmetic (including its wraparound), symmetric zero
    /// points are 0, 128 or the midpoint of a custom unsigned range, float-qparams zero points are float32.
    /// </summary>
    public static QParams Calculate(float[] minVal, float[] maxVal, DType dtype, QScheme scheme, long qmin, long qmax,
        float eps, int axis = -1, bool customRange = false)
    {
        ArgumentNullException.ThrowIfNull(minVal);
        ArgumentNullException.ThrowIfNull(maxVal);
        var qdt = QParamsDType(dtype);
        bool perChannel = scheme.IsPerChannel();
        int qpAxis = perChannel ? Math.Max(axis, 0) : -1;
        if (minVal.Length != maxVal.Length)
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"{minVal.Length} minimum values but {maxVal.Length} maximum values");
        if (!perChannel && minVal.Length > 1)
            throw new QuantToolsException(ErrorCode.InvalidQParams,
                $"{scheme.TorchName()} takes one min/max pair, got {minVal.Length}");

        // check_min_max_valid
        bool unobserved = minVal.Length == 0 ||
                          (!perChannel && float.IsPositiveInfinity(minVal[0]) && float.IsNegativeInfinity(maxVal[0]));
        if (unobserved)
        {
            return scheme == QScheme.PerChannelAffineFloatQParams
                ? new QParams(scheme, qdt, [1.0], [0], qpAxis, [0f], qmin, qmax)
                : new QParams(scheme, qdt, [1.0], [0], qpAxis, null, qmin, qmax);
        }
        for (int i = 0; i < minVal.Length; i++)
            if (!(minVal[i] <= maxVal[i]))
                throw new QuantToolsException(ErrorCode.InvalidQParams,
                    $"min {Fmt(minVal[i])} should be less than max {Fmt(maxVal[i])}" +
                    (minVal.Length > 1 ? $" (channel {i})" : ""));

        int n = minVal.Length;
        var scales = new double[n];
        var zps = new long[n];
        float[]? fzps = null;
        float range = (float)(double)(qmax - qmin);
        switch (scheme)
        {
            case QScheme.PerTensorSymmetric:
            case QScheme.PerChannelSymmetric:
            {
                float half = (float)((double)(qmax - qmin) / 2.0);
                long zp = 0;
                if (dtype is DType.QUInt8 or DType.UInt8)
                    zp = customRange ? FloorDiv2(qmin + qmax) : 128;
                for (int i = 0; i < n; i++)
                {
                    float mn = Minimum(minVal[i], 0f), mx = Maximum(maxVal[i], 0f);
                    float a = Maximum(-mn, mx);
                    float s = Maximum(a / half, eps);
                    scales[i] = s;
                    zps[i] = zp;
                }
                break;
            }
            case QScheme.PerChannelAffineFloatQParams:
            {
                fzps = new float[n];
                for (int i = 0; i < n; i++)
                {
                    float s = (maxVal[i] - minVal[i]) / range;
                    s = s > eps ? s : 1f;
                    scales[i] = s;
                    fzps[i] = (-1f * minVal[i]) / s;
                }
                break;
            }
            default:
            {
                for (int i = 0; i < n; i++)
                {
                    float mn = Minimum(minVal[i], 0f), mx = Maximum(maxVal[i], 0f);
                    float s = Maximum((mx - mn) / range, eps);
                    scales[i] = s;
                    int r = ToInt32Like(MathF.Round(mn / s));
                    int zp = unchecked((int)qmin - r);
                    // torch.clamp(int32 tensor, qmin, qmax)
                    long z = zp;
                    if (z < qmin) z = qmin;
                    if (z > qmax) z = qmax;
                    zps[i] = z;
                }
                break;
            }
        }
        return new QParams(scheme, qdt, scales, zps, qpAxis, fzps, qmin, qmax);
    }

    /// <summary>float → int32 as x86 converts (NaN and out-of-range give int.MinValue).</summary>
    internal static int ToInt32Like(float v) =>
        v >= -2147483648f && v < 2147483648f ? (int)v : int.MinValue;

    /// <summary>torch.minimum / torch.min(a, b): NaN propagates.</summary>
    public static float Minimum(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : (b < a ? b : a);

    /// <summary>torch.maximum / torch.max(a, b): NaN propagates.</summary>
    public static float Maximum(float a, float b) => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : (a < b ? b : a);

    private static string Fmt(float v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
}
