namespace QuantTools.Core.Tensors;

/// <summary>Quantization schemes, named as PyTorch's <c>torch.qscheme</c> values.</summary>
public enum QScheme
{
    PerTensorAffine,
    PerTensorSymmetric,
    PerChannelAffine,
    PerChannelSymmetric,
    PerChannelAffineFloatQParams,
}

public static class QSchemeInfo
{
    public static bool IsPerChannel(this QScheme s) => s >= QScheme.PerChannelAffine;
    public static bool IsSymmetric(this QScheme s) => s is QScheme.PerTensorSymmetric or QScheme.PerChannelSymmetric;

    public static string TorchName(this QScheme s) => s switch
    {
        QScheme.PerTensorAffine => "per_tensor_affine",
        QScheme.PerTensorSymmetric => "per_tensor_symmetric",
        QScheme.PerChannelAffine => "per_channel_affine",
        QScheme.PerChannelSymmetric => "per_channel_symmetric",
        QScheme.PerChannelAffineFloatQParams => "per_channel_affine_float_qparams",
        _ => s.ToString(),
    };

    public static QScheme Parse(string name)
    {
        var n = name.Trim();
        if (n.StartsWith("torch.", StringComparison.Ordinal)) n = n[6..];
        foreach (QScheme s in Enum.GetValues<QScheme>())
            if (string.Equals(s.TorchName(), n, StringComparison.OrdinalIgnoreCase) ||
                string.Equals(s.ToString(), n, StringComparison.OrdinalIgnoreCase))
                return s;
        throw new QuantToolsException(ErrorCode.InvalidArgument,
            $"unknown qscheme '{name}'; expected per_tensor_affine, per_tensor_symmetric, per_channel_affine, per_channel_symmetric or per_channel_affine_float_qparams");
    }
}

/// <summary>
/// Scale(s) and zero point(s) of a quantized tensor, as PyTorch holds them: per-tensor scale is a double
/// (<c>q_scale()</c>), per-channel scales a float64 tensor, zero points int64, float-qparams zero points float32.
/// Kernels cast scales to float32 themselves, exactly where PyTorch does.
/// </summary>
public sealed class QParams
{
    public QScheme QScheme { get; }
    public DType DType { get; }
    public double[] Scales { get; }
    public long[] ZeroPoints { get; }
    /// <summary>Fractional zero points of <see cref="QScheme.PerChannelAffineFloatQParams"/>; null otherwise.</summary>
    public float[]? FloatZeroPoints { get; }
    /// <summary>Channel axis for per-channel schemes, -1 for per-tensor.</summary>
    public int Axis { get; }
    public long QuantMin { get; }
    public long QuantMax { get; }

    public bool IsPerChannel => QScheme.IsPerChannel();
    public double Scale => Scales[0];
    public long ZeroPoint => ZeroPoints[0];

    public QParams(QScheme scheme, DType dtype, double[] scales, long[] zeroPoints, int axis = -1,
        float[]? floatZeroPoints = null, long? quantMin = null, long? quantMax = null)
    {
        if (!dtype.IsQuantized())
            throw new QuantToolsException(ErrorCode.InvalidQParams, $"qparams need a quantized dtype, got {dtype.TorchName()}");
        if (scales.Length == 0)
            throw new QuantToolsException(ErrorCode.InvalidQParams, "at least one scale is required");
        if (scheme == QScheme.PerChannelAffineFloatQParams)
        {
            if (floatZeroPoints is null || floatZeroPoints.Length != scales.Length)
                throw new QuantToolsException(ErrorCode.InvalidQParams,
                    $"float-qparams need one float zero point per scale ({scales.Length}), got {floatZeroPoints?.Length ?? 0}");
            zeroPoints = zeroPoints.Length == scales.Length ? zeroPoints : new long[scales.Length];
        }
        else if (zeroPoints.Length != scales.Length)
            throw new QuantToolsException(ErrorCode.InvalidQParams,
                $"{scales.Length} scales but {zeroPoints.Length} zero points");
        if (!scheme.IsPerChannel() && scales.Length != 1)
            throw new QuantToolsException(ErrorCode.InvalidQParams, $"{scheme.TorchName()} takes one scale, got {scales.Length}");
        if (scheme.IsPerChannel() && axis < 0)
            throw new QuantToolsException(ErrorCode.InvalidQParams, $"{scheme.TorchName()} needs a channel axis >= 0");
        var (lo, hi) = dtype.QuantRange();
        QScheme = scheme;
        DType = dtype;
        Scales = scales;
        ZeroPoints = zeroPoints;
        FloatZeroPoints = floatZeroPoints;
        Axis = scheme.IsPerChannel() ? axis : -1;
        QuantMin = quantMin ?? lo;
        QuantMax = quantMax ?? hi;
    }

    public static QParams PerTensor(double scale, long zeroPoint, DType dtype, QScheme scheme = QScheme.PerTensorAffine) =>
        new(scheme, dtype, [scale], [zeroPoint]);

    public static QParams PerChannel(double[] scales, long[] zeroPoints, int axis, DType dtype,
        QScheme scheme = QScheme.PerChannelAffine) => new(scheme, dtype, scales, zeroPoints, axis);

    public override string ToString() => IsPerChannel
        ? $"{DType.TorchName()} {QScheme.TorchName()} axis={Axis} channels={Scales.Length}"
        : $"{DType.TorchName()} {QScheme.TorchName()} scale={Scale:R} zero_point={ZeroPoint}";
}
