using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels;

/// <summary>
/// The class of x86-64 CPU whose PyTorch arithmetic an engine profile reproduces. PyTorch's quantized results
/// depend on the CPU it runs on, not only on the engine:
/// <list type="bullet">
/// <item>the <c>x86</c> engine sends a conv to oneDNN only on CPUs with AVX512-VNNI, else every conv to FBGEMM
/// (onednn_utils.h, <c>should_use_onednn_quant</c>);</item>
/// <item>FBGEMM without VNNI multiplies with <c>vpmaddubsw</c>, which saturates each u8 x s8 product pair to int16;</item>
/// <item>ATen's quantized kernels split work into vector blocks and a scalar tail whose sizes are multiples of
/// <c>Vectorized&lt;T&gt;::size()</c>: 64 bytes on an AVX-512 build, 32 on AVX2. Elements in the tail take other float
/// formulas (<c>quantize_val</c> vs <c>QuantizeAvx512/Avx2</c>, <c>dequantize_val</c> vs the FMA form).</item>
/// </list>
/// <see cref="Avx512Vnni"/> is the default everywhere: the golden data came from such a host (an Intel Xeon). This is
/// not the CPU our own kernels run on: any host reproduces any class.
/// </summary>
public enum CpuClass
{
    /// <summary>AVX-512 (F, BW, DQ, VL) with AVX512-VNNI: ATen's AVX512 kernels, exact VNNI FBGEMM, x86 convs on oneDNN.</summary>
    Avx512Vnni,
    /// <summary>AVX2 + FMA without AVX-512: ATen's AVX2 kernels (half the vector width), saturating FBGEMM, x86 convs on FBGEMM.</summary>
    Avx2,
}

/// <summary>Names, host detection and the per-run CPU class that ATen-width-dependent kernels read.</summary>
public static class CpuClasses
{
    private static readonly AsyncLocal<CpuClass?> Ambient = new();

    /// <summary>
    /// The class of the CPU this process runs on, as PyTorch would classify it: <see cref="CpuClass.Avx512Vnni"/> when
    /// the CPU and OS run AVX512F, AVX512BW and AVX512-VNNI, else <see cref="CpuClass.Avx2"/>. (A CPU with AVX-512 but
    /// no VNNI, e.g. Skylake-SP, is a third class that no profile models yet; it is reported as Avx2.)
    /// </summary>
    public static CpuClass Host { get; } = Detect();

    private static CpuClass Detect()
    {
        if (!X86Base.IsSupported || !Avx512F.IsSupported || !Avx512BW.IsSupported) return CpuClass.Avx2;
        var (maxLeaf, _, _, _) = X86Base.CpuId(0, 0);
        if (maxLeaf < 7) return CpuClass.Avx2;
        var (_, _, ecx, _) = X86Base.CpuId(7, 0);
        return (ecx & (1 << 11)) != 0 ? CpuClass.Avx512Vnni : CpuClass.Avx2;
    }

    /// <summary>The class kernels follow in the current async flow: the one set by <see cref="Use"/>, else the default (AVX512-VNNI).</summary>
    public static CpuClass Current => Ambient.Value ?? CpuClass.Avx512Vnni;

    /// <summary>
    /// Makes kernels follow <paramref name="cpu"/> until the returned scope is disposed (the model executor sets it
    /// for each run; it flows into parallel loops started inside).
    /// </summary>
    public static IDisposable Use(CpuClass cpu)
    {
        var previous = Ambient.Value;
        Ambient.Value = cpu;
        return new Scope(previous);
    }

    /// <summary><c>avx512-vnni</c> or <c>avx2</c>.</summary>
    public static string Name(this CpuClass c) => c switch
    {
        CpuClass.Avx512Vnni => "avx512-vnni",
        CpuClass.Avx2 => "avx2",
        _ => c.ToString(),
    };

    /// <summary>Parses <c>avx512-vnni</c>, <c>avx2</c> or <c>host</c> (this machine's class).</summary>
    public static CpuClass Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "avx512-vnni" or "avx512vnni" or "avx512_vnni" => CpuClass.Avx512Vnni,
        "avx2" => CpuClass.Avx2,
        "host" => Host,
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"unknown CPU class '{name}'; expected avx512-vnni, avx2 or host"),
    };

    /// <summary>Bytes in one ATen <c>Vectorized&lt;T&gt;</c> register on this class: 64 (AVX-512) or 32 (AVX2).</summary>
    public static int AtenVectorBytes(this CpuClass c) => c == CpuClass.Avx2 ? 32 : 64;

    private sealed class Scope(CpuClass? previous) : IDisposable
    {
        public void Dispose() => Ambient.Value = previous;
    }
}
