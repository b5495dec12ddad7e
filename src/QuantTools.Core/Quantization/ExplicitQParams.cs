using QuantTools.Core.Tensors;

namespace QuantTools.Core.Quantization;

/// <summary>
/// QParams from explicit values (ConvertTo-Quantized -Scale/-ZeroPoint): several scales or a channel axis mean
/// per-channel; the scheme defaults to the affine one of that kind; one zero point is repeated per channel; integer
/// zero points must be whole numbers unless the scheme is per_channel_affine_float_qparams.
/// </summary>
public static class ExplicitQParams
{
    public static QParams Create(double[] scales, double[]? zeroPoints = null, string? dtype = null, string? qscheme = null,
        int? axis = null, long? quantMin = null, long? quantMax = null)
    {
        ArgumentNullException.ThrowIfNull(scales);
        var dt = DTypeInfo.Parse(dtype ?? "quint8");
        bool perChannel = scales.Length > 1 || axis.HasValue;
        var scheme = qscheme is not null ? QSchemeInfo.Parse(qscheme)
            : perChannel ? QScheme.PerChannelAffine : QScheme.PerTensorAffine;
        if (perChannel && !scheme.IsPerChannel())
            throw new QuantToolsException(ErrorCode.InvalidQParams, $"{scales.Length} scales or -Axis need a per-channel -QScheme, not {scheme.TorchName()}");
        var zp = zeroPoints ?? new double[scales.Length];
        if (zp.Length == 1 && scales.Length > 1) zp = Enumerable.Repeat(zp[0], scales.Length).ToArray();
        if (scheme.IsPerChannel() && !axis.HasValue)
            throw new QuantToolsException(ErrorCode.InvalidQParams, "per-channel quantization needs -Axis");
        if (scheme == QScheme.PerChannelAffineFloatQParams)
            return new QParams(scheme, dt, scales, [], axis!.Value, zp.Select(v => (float)v).ToArray(), quantMin, quantMax);
        var izp = zp.Select(v => v == Math.Floor(v) ? (long)v
            : throw new QuantToolsException(ErrorCode.InvalidQParams, $"zero point {v} is not an integer (fractional zero points need per_channel_affine_float_qparams)")).ToArray();
        return new QParams(scheme, dt, scales, izp, scheme.IsPerChannel() ? axis!.Value : -1, null, quantMin, quantMax);
    }
}
