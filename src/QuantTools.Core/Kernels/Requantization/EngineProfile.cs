namespace QuantTools.Core.Kernels.Requantization;

/// <summary>The library whose integer arithmetic a conv / linear runs with, after PyTorch's engine routing.</summary>
public enum QBackend
{
    /// <summary>FBGEMM on an AVX512-VNNI host: exact int32 GEMM; depthwise still saturates tap pairs to int16.</summary>
    Fbgemm,
    /// <summary>FBGEMM on an AVX2 host without VNNI: every even-aligned K pair of u8 x s8 products saturates to int16.</summary>
    FbgemmAvx2,
    /// <summary>QNNPACK: int32 bias, multiplier R = s_in*s_w * (1/s_out).</summary>
    Qnnpack,
    /// <summary>oneDNN (the <c>onednn</c> engine, and <c>x86</c> convs routed to it).</summary>
    Onednn,
}

/// <summary>
/// Which backend PyTorch 2.11 runs for an engine (numerics.md section 5): <c>x86</c> sends conv to oneDNN exactly when
/// every weight zero point is 0, groups &lt;= 100 and output_padding is 0 (on AVX512-VNNI Linux hosts such as the one
/// that made the golden data), else to FBGEMM; linear under <c>x86</c> is FBGEMM.
/// </summary>
public static class EngineProfile
{
    public static QBackend ForConv(QEngine engine, bool allWeightZeroPointsZero, int groups, bool anyOutputPadding) => engine switch
    {
        QEngine.X86 => allWeightZeroPointsZero && groups <= 100 && !anyOutputPadding ? QBackend.Onednn : QBackend.Fbgemm,
        _ => ForLinear(engine),
    };

    public static QBackend ForLinear(QEngine engine) => engine switch
    {
        QEngine.X86 or QEngine.Fbgemm => QBackend.Fbgemm,
        QEngine.FbgemmAvx2 => QBackend.FbgemmAvx2,
        QEngine.Qnnpack => QBackend.Qnnpack,
        QEngine.Onednn => QBackend.Onednn,
        _ => throw new QuantToolsException(ErrorCode.NotSupported, $"engine {engine} has no conv/linear profile"),
    };

    /// <summary>True for the FBGEMM flavours (float bias, channels_last conv output).</summary>
    public static bool IsFbgemm(this QBackend b) => b is QBackend.Fbgemm or QBackend.FbgemmAvx2;
}
