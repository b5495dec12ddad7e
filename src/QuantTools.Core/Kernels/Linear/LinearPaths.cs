using QuantTools.Core.Kernels.Requantization;

namespace QuantTools.Core.Kernels.Linear;

/// <summary>How a linear layer's int32 accumulators are computed (names in <see cref="LinearPaths.Name"/>).</summary>
public enum LinearAccumulation
{
    /// <summary><c>qu8-linear/scalar</c>: the definition (<see cref="LinearKernels.AccumulateReference"/>).</summary>
    Scalar,
    /// <summary><c>qu8-linear/scalar-sat16</c>: the definition with fbgemm-avx2's int16 saturation of product pairs.</summary>
    ScalarSat16,
    /// <summary><c>qu8-linear/avx2-pairgemm</c>: <see cref="PairGemm"/>'s AVX2 tiles over the packed weights.</summary>
    Avx2PairGemm,
    /// <summary><c>qu8-linear/avx512-pairgemm</c>: the AVX-512 tiles.</summary>
    Avx512PairGemm,
    /// <summary><c>qu8-linear/native-avx512vnni</c>: the native VPDPBUSD library (requantization fused for static linear).</summary>
    NativeAvx512Vnni,
}

/// <summary>The code one linear call runs: backend (PyTorch's routing, <see cref="EngineProfile.ForLinear"/>), accumulation, requantization.</summary>
public readonly record struct LinearPlan(QBackend Backend, LinearAccumulation Accumulation, KernelPath Requantization)
{
    public string Name => LinearPaths.Name(Accumulation);

    /// <summary>The requantization path of static linear (<c>qs32-qu8-requant/avx2</c>), or "fused".</summary>
    public string RequantizationName => Accumulation == LinearAccumulation.NativeAvx512Vnni ? "fused" : OutputStage.Family.PathName(Requantization);

    public override string ToString() => $"{Name} + {RequantizationName} ({Backend})";
}

/// <summary>
/// The one place a linear call's path is chosen: the native VNNI library where it exists and applies, else the widest
/// PairGemm tiles; the scalar definition for fbgemm-avx2's saturating numerics. A forced <see cref="KernelPath"/>
/// picks the same way among what that ISA allows.
/// </summary>
public static class LinearPaths
{
    /// <summary>The ISA paths linear code exists for.</summary>
    public const KernelPath Implemented = PairGemm.Implemented | KernelPath.NativeVnni;

    public static string Name(LinearAccumulation a) => a switch
    {
        LinearAccumulation.Scalar => "qu8-linear/scalar",
        LinearAccumulation.ScalarSat16 => "qu8-linear/scalar-sat16",
        LinearAccumulation.Avx2PairGemm => "qu8-linear/avx2-pairgemm",
        LinearAccumulation.Avx512PairGemm => "qu8-linear/avx512-pairgemm",
        LinearAccumulation.NativeAvx512Vnni => "qu8-linear/native-avx512vnni",
        _ => throw new ArgumentOutOfRangeException(nameof(a)),
    };

    /// <summary>The plan for this call (honours a forced path).</summary>
    public static LinearPlan Resolve(PackedLinearWeight pw) => Resolve(pw, KernelPaths.Choose(Implemented));

    /// <summary>The plan when the ISA path is <paramref name="isa"/>.</summary>
    public static LinearPlan Resolve(PackedLinearWeight pw, KernelPath isa)
    {
        var requant = OutputStage.Family.Resolve();
        if (isa == KernelPath.Scalar || pw.Backend.SaturatesPairs())
            return new(pw.Backend, pw.Backend.SaturatesPairs() ? LinearAccumulation.ScalarSat16 : LinearAccumulation.Scalar, requant);
        if (isa == KernelPath.NativeVnni)
        {
            if (Native.NativeGemm.Applies(pw)) return new(pw.Backend, LinearAccumulation.NativeAvx512Vnni, requant);
            isa = KernelPaths.Widest(PairGemm.Implemented);
        }
        return new(pw.Backend, isa switch
        {
            KernelPath.Avx512 => LinearAccumulation.Avx512PairGemm,
            KernelPath.Avx2 => LinearAccumulation.Avx2PairGemm,
            _ => LinearAccumulation.Scalar,
        }, requant);
    }
}
