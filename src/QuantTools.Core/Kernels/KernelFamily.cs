namespace QuantTools.Core.Kernels;

/// <summary>
/// A kernel family whose path depends only on the CPU (and on a path forced for tests): its name in XNNPACK's
/// <c>dtype-op</c> words (<c>qu8-add</c>: quint8 in, quint8 out; <c>f32-qu8-quantize</c>: float32 in, quint8 out) and
/// the ISA paths it implements. <see cref="Resolve"/> is the one place the family's path is chosen; a path is named
/// <c>family/isa</c> (<c>qu8-add/avx2</c>). Conv and linear, whose path also depends on the layer, have their own
/// resolvers (<see cref="Conv.ConvPaths"/>, <see cref="Linear.LinearPaths"/>).
/// </summary>
public sealed class KernelFamily
{
    public KernelFamily(string name, KernelPath implemented)
    {
        Name = name;
        Implemented = implemented | KernelPath.Scalar;
    }

    /// <summary><c>dtype-op</c>, e.g. <c>qu8-clamp</c>.</summary>
    public string Name { get; }

    /// <summary>The paths the family has code for (always including its scalar reference).</summary>
    public KernelPath Implemented { get; }

    /// <summary>The path this call runs: the forced one when forced (Scalar when the family lacks it), else the widest this CPU runs.</summary>
    public KernelPath Resolve() => KernelPaths.Choose(Implemented);

    /// <summary><c>family/isa</c> for one of the family's paths.</summary>
    public string PathName(KernelPath path) => $"{Name}/{KernelPaths.IsaName(path)}";

    /// <summary>The name of the path <see cref="Resolve"/> picks now.</summary>
    public string ResolvedName => PathName(Resolve());

    /// <summary>The family's paths this CPU can run, scalar first.</summary>
    public IEnumerable<KernelPath> SupportedPaths() => KernelPaths.AllSupported().Where(p => (Implemented & p) != 0);

    public override string ToString() => Name;
}

/// <summary>Every CPU-only kernel family (benchmarks list a row per family and path; tests check the names).</summary>
public static class KernelFamilies
{
    public static IReadOnlyList<KernelFamily> All { get; } =
    [
        QuantizeKernels.QUInt8Family, QuantizeKernels.QInt8Family, QuantizeKernels.QInt32Family,
        DequantizeKernels.QUInt8Family, DequantizeKernels.QInt8Family, DequantizeKernels.QInt32Family,
        MinMaxKernel.Family, HistcKernel.Family,
        Elementwise.AddKernels.Family, Elementwise.MulKernels.Family, Elementwise.ClampKernels.Family, Elementwise.LutKernels.Family,
        Pooling.PoolKernels.MaxPoolFamily, Pooling.PoolKernels.AvgPoolFamily, Pooling.PoolKernels.AvgPoolNhwcFamily,
        Requantization.OutputStage.Family,
    ];
}
