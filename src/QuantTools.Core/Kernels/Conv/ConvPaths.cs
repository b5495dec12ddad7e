using System.Runtime.Intrinsics.X86;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Kernels.Requantization;

namespace QuantTools.Core.Kernels.Conv;

/// <summary>How a conv layer's int32 accumulators are computed (see <see cref="ConvPaths"/> for the names).</summary>
public enum ConvAccumulation
{
    /// <summary><c>qu8-conv2d/scalar</c>: the definition, one output at a time (<see cref="ConvKernels.AccumulateReference"/>).</summary>
    Scalar,
    /// <summary><c>qu8-conv2d/scalar-sat16</c>: the definition with FBGEMM's int16 saturation of u8 x s8 product pairs
    /// (fbgemm-avx2, and FBGEMM's depthwise kernel on any host); no managed SIMD path reproduces it for general convs.</summary>
    ScalarSat16,
    /// <summary><c>qu8-conv2d/avx2-pairgemm</c>: zero-point-centered im2col panels and <see cref="PairGemm"/>'s AVX2 vpmaddwd tiles.</summary>
    Avx2PairGemm,
    /// <summary><c>qu8-conv2d/avx512-pairgemm</c>: the same with the AVX-512 tiles.</summary>
    Avx512PairGemm,
    /// <summary><c>qu8-conv2d/native-avx512vnni</c>: the native VPDPBUSD library, requantization fused (<see cref="Native.NativeGemm"/>).</summary>
    NativeAvx512Vnni,
    /// <summary><c>qu8-dwconv2d/avx512</c>: depthwise over padded planes, 32 outputs per zmm, exact pair sums.</summary>
    Avx512Depthwise,
    /// <summary><c>qu8-dwconv2d/avx512-sat16</c>: the same with FBGEMM's saturating tap pairs.</summary>
    Avx512DepthwiseSat16,
}

/// <summary>
/// The code one conv call runs, chosen by <see cref="ConvPaths.Resolve(PackedConvWeight)"/>: the backend whose numerics
/// it follows (PyTorch's engine routing, fixed when the layer was packed: <see cref="EngineProfile.ForConv"/>), how the
/// accumulators are made, and the requantization path (<see cref="OutputStage.Family"/>; fused into the native path).
/// </summary>
public readonly record struct ConvPlan(QBackend Backend, ConvAccumulation Accumulation, KernelPath Requantization)
{
    /// <summary>The accumulation path's name, e.g. <c>qu8-conv2d/avx2-pairgemm</c>.</summary>
    public string Name => ConvPaths.Name(Accumulation);

    /// <summary>The requantization path's name (<c>qs32-qu8-requant/avx2</c>), or "fused".</summary>
    public string RequantizationName => Accumulation == ConvAccumulation.NativeAvx512Vnni ? "fused" : OutputStage.Family.PathName(Requantization);

    public override string ToString() => $"{Name} + {RequantizationName} ({Backend})";
}

/// <summary>
/// The one place a conv call's path is chosen. With nothing forced: the native VNNI library where it exists and the
/// layer suits it, the AVX-512 depthwise kernel for depthwise layers it covers, else the widest PairGemm tiles, and the
/// scalar definition for saturating (FBGEMM int16) numerics outside depthwise. A forced <see cref="KernelPath"/>
/// (<see cref="KernelPaths.Force"/>, tests and benchmarks) picks the same way among what that ISA allows.
/// </summary>
public static class ConvPaths
{
    /// <summary>The ISA paths conv code exists for.</summary>
    public const KernelPath Implemented = PairGemm.Implemented | KernelPath.NativeVnni;

    public static string Name(ConvAccumulation a) => a switch
    {
        ConvAccumulation.Scalar => "qu8-conv2d/scalar",
        ConvAccumulation.ScalarSat16 => "qu8-conv2d/scalar-sat16",
        ConvAccumulation.Avx2PairGemm => "qu8-conv2d/avx2-pairgemm",
        ConvAccumulation.Avx512PairGemm => "qu8-conv2d/avx512-pairgemm",
        ConvAccumulation.NativeAvx512Vnni => "qu8-conv2d/native-avx512vnni",
        ConvAccumulation.Avx512Depthwise => "qu8-dwconv2d/avx512",
        ConvAccumulation.Avx512DepthwiseSat16 => "qu8-dwconv2d/avx512-sat16",
        _ => throw new ArgumentOutOfRangeException(nameof(a)),
    };

    /// <summary>True when the layer's integer arithmetic saturates u8 x s8 product pairs to int16 (FBGEMM depthwise; FBGEMM and oneDNN without VNNI).</summary>
    public static bool Saturating(PackedConvWeight pw) => pw.FbgemmDepthwise || pw.Backend.SaturatesPairs();

    /// <summary>The plan for this call (honours a forced path).</summary>
    public static ConvPlan Resolve(PackedConvWeight pw) => Resolve(pw, KernelPaths.Choose(Implemented));

    /// <summary>The plan when the ISA path is <paramref name="isa"/> (what <see cref="KernelPaths.Choose"/> gave, or a path a test names).</summary>
    public static ConvPlan Resolve(PackedConvWeight pw, KernelPath isa)
    {
        var requant = OutputStage.Family.Resolve();
        bool sat = Saturating(pw);
        if (pw.DepthwiseAvx512Applies && isa is KernelPath.NativeVnni or KernelPath.Avx512 && Avx512BW.IsSupported)
            return new(pw.Backend, sat ? ConvAccumulation.Avx512DepthwiseSat16 : ConvAccumulation.Avx512Depthwise, requant);
        if (isa == KernelPath.NativeVnni)
        {
            if (Native.NativeGemm.Applies(pw)) return new(pw.Backend, ConvAccumulation.NativeAvx512Vnni, requant);
            isa = KernelPaths.Widest(PairGemm.Implemented);
        }
        if (sat) return new(pw.Backend, ConvAccumulation.ScalarSat16, requant);
        return new(pw.Backend, isa switch
        {
            KernelPath.Avx512 => ConvAccumulation.Avx512PairGemm,
            KernelPath.Avx2 => ConvAccumulation.Avx2PairGemm,
            _ => ConvAccumulation.Scalar,
        }, requant);
    }
}
