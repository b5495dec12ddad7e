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
    /// <summary>oneDNN (the <c>onednn</c> engine, and <c>x86</c> convs routed to it) on an AVX512-VNNI host: exact int32 accumulators.</summary>
    Onednn,
    /// <summary>
    /// oneDNN on an AVX2 host without VNNI (the <c>onednn</c> engine there): <c>vpmaddubsw</c> saturates each pair of raw
    /// u8 x s8 products to int16. Conv pairs are input channels (2j, 2j+1) of one tap (oneDNN's weight blocks hold 4
    /// consecutive input channels per tap; an odd last channel pairs with zero padding), linear pairs are K (2j, 2j+1).
    /// Requantization as <see cref="Onednn"/>.
    /// </summary>
    OnednnAvx2,
}

/// <summary>
/// Which backend PyTorch 2.11 runs for an engine on a CPU class (numerics.md section 5, onednn_utils.h
/// <c>should_use_onednn_quant</c>): <c>x86</c> sends conv to oneDNN exactly when the CPU has AVX512-VNNI, every weight zero
/// point is 0, groups &lt;= 100 and output_padding is 0, else to FBGEMM; linear under <c>x86</c> is FBGEMM. FBGEMM on a
/// CPU without VNNI saturates product pairs (<see cref="QBackend.FbgemmAvx2"/>). The <c>fbgemm-avx2</c> engine name is
/// fbgemm on an AVX2 CPU whatever the class asked for.
/// </summary>
public static class EngineProfile
{
    public static QBackend ForConv(QEngine engine, bool allWeightZeroPointsZero, int groups, bool anyOutputPadding) =>
        ForConv(engine, CpuClass.Avx512Vnni, allWeightZeroPointsZero, groups, anyOutputPadding);

    public static QBackend ForConv(QEngine engine, CpuClass cpu, bool allWeightZeroPointsZero, int groups, bool anyOutputPadding) => engine switch
    {
        QEngine.X86 => cpu == CpuClass.Avx512Vnni && allWeightZeroPointsZero && groups <= 100 && !anyOutputPadding
            ? QBackend.Onednn : ForLinear(engine, cpu),
        _ => ForLinear(engine, cpu),
    };

    public static QBackend ForLinear(QEngine engine) => ForLinear(engine, CpuClass.Avx512Vnni);

    public static QBackend ForLinear(QEngine engine, CpuClass cpu) => engine switch
    {
        QEngine.X86 or QEngine.Fbgemm => cpu == CpuClass.Avx2 ? QBackend.FbgemmAvx2 : QBackend.Fbgemm,
        QEngine.FbgemmAvx2 => QBackend.FbgemmAvx2,
        QEngine.Qnnpack => QBackend.Qnnpack,
        QEngine.Onednn => cpu == CpuClass.Avx2 ? QBackend.OnednnAvx2 : QBackend.Onednn,
        _ => throw new QuantToolsException(ErrorCode.NotSupported, $"engine {engine} has no conv/linear profile"),
    };

    /// <summary>The CPU class a run follows: <paramref name="cpu"/>, except that <c>fbgemm-avx2</c> always means an AVX2 CPU.</summary>
    public static CpuClass EffectiveCpu(QEngine engine, CpuClass cpu) => engine == QEngine.FbgemmAvx2 ? CpuClass.Avx2 : cpu;

    /// <summary>True for the FBGEMM flavours (float bias, channels_last conv output).</summary>
    public static bool IsFbgemm(this QBackend b) => b is QBackend.Fbgemm or QBackend.FbgemmAvx2;

    /// <summary>True for the oneDNN flavours (same requantization and refusals on every CPU).</summary>
    public static bool IsOnednn(this QBackend b) => b is QBackend.Onednn or QBackend.OnednnAvx2;

    /// <summary>True where the GEMM saturates u8 x s8 product pairs to int16 (no VNNI): the accumulators then need the reference loop.</summary>
    public static bool SaturatesPairs(this QBackend b) => b is QBackend.FbgemmAvx2 or QBackend.OnednnAvx2;
}
