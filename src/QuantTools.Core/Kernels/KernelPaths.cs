using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels;

/// <summary>Code paths a kernel may take (a bitmask, resolved once from the CPU).</summary>
[Flags]
public enum KernelPath
{
    None = 0,
    Scalar = 1,
    Vector128 = 2,
    Vector256 = 4,
    Vector512 = 8,
    Avx2 = 16,
    Avx512 = 32,
    AvxVnni = 64,
    /// <summary>The native AVX512-VNNI (VPDPBUSD) library, libqt_gemm.so (see <see cref="Native.NativeVnni"/>).</summary>
    NativeVnni = 128,
}

/// <summary>
/// Which paths this CPU supports, and a per-async-flow override so that tests can force each path and
/// compare it with the scalar reference. Kernels call <see cref="Choose"/> with the paths they implement.
/// </summary>
public static class KernelPaths
{
    private static readonly AsyncLocal<KernelPath?> ForcedPath = new();

    public static KernelPath Supported { get; } = Detect();

    private static KernelPath Detect()
    {
        var p = KernelPath.Scalar;
        if (Vector128.IsHardwareAccelerated) p |= KernelPath.Vector128;
        if (Vector256.IsHardwareAccelerated) p |= KernelPath.Vector256;
        if (Vector512.IsHardwareAccelerated) p |= KernelPath.Vector512;
        if (Avx2.IsSupported && Fma.IsSupported) p |= KernelPath.Avx2;
        if (Avx512F.IsSupported && Avx512BW.IsSupported) p |= KernelPath.Avx512;
        if (AvxVnni.IsSupported) p |= KernelPath.AvxVnni;
        if (Native.NativeVnni.Available) p |= KernelPath.NativeVnni;
        return p;
    }

    /// <summary>The path forced for the current async flow, if any.</summary>
    public static KernelPath? Forced => ForcedPath.Value;

    /// <summary>Forces one path (for tests and benchmarks) until the returned scope is disposed.</summary>
    public static IDisposable Force(KernelPath path)
    {
        if (path != KernelPath.Scalar && (Supported & path) == 0)
            throw new QuantToolsException(ErrorCode.NotSupported, $"kernel path {path} is not supported on this CPU");
        var previous = ForcedPath.Value;
        ForcedPath.Value = path;
        return new Scope(previous);
    }

    /// <summary>
    /// The path to run among <paramref name="implemented"/>: the forced one when forced (Scalar if the kernel does not
    /// implement it), else the widest supported one, preferring NativeVnni &gt; Avx512 &gt; Vector512 &gt; AvxVnni &gt; Avx2 &gt; Vector256 &gt; Vector128.
    /// </summary>
    public static KernelPath Choose(KernelPath implemented)
    {
        if (ForcedPath.Value is { } f) return (implemented & f) != 0 ? f : KernelPath.Scalar;
        var usable = implemented & Supported;
        foreach (var p in Preference)
            if ((usable & p) != 0) return p;
        return KernelPath.Scalar;
    }

    private static readonly KernelPath[] Preference =
        [KernelPath.NativeVnni, KernelPath.Avx512, KernelPath.Vector512, KernelPath.AvxVnni, KernelPath.Avx2, KernelPath.Vector256, KernelPath.Vector128];

    /// <summary>The widest supported path among <paramref name="implemented"/>, ignoring any forced path (a kernel's fallback
    /// when the forced path does not apply to one call).</summary>
    public static KernelPath Widest(KernelPath implemented)
    {
        var usable = implemented & Supported;
        foreach (var p in Preference)
            if ((usable & p) != 0) return p;
        return KernelPath.Scalar;
    }

    /// <summary>
    /// The ISA part of a kernel path's name, in the words of XNNPACK's microkernel names (<c>qu8-add/avx2</c>):
    /// scalar, vector128/256/512 (portable <c>Vector{N}&lt;T&gt;</c> code), avx2, avx512, avxvnni, native-avx512vnni.
    /// </summary>
    public static string IsaName(KernelPath path) => path switch
    {
        KernelPath.Scalar => "scalar",
        KernelPath.Vector128 => "vector128",
        KernelPath.Vector256 => "vector256",
        KernelPath.Vector512 => "vector512",
        KernelPath.Avx2 => "avx2",
        KernelPath.Avx512 => "avx512",
        KernelPath.AvxVnni => "avxvnni",
        KernelPath.NativeVnni => "native-avx512vnni",
        _ => throw new ArgumentOutOfRangeException(nameof(path), path, "one path, not a set"),
    };

    /// <summary>Every path this CPU can run, Scalar first (what path-forcing tests iterate over).</summary>
    public static IEnumerable<KernelPath> AllSupported() =>
        Enum.GetValues<KernelPath>().Where(p => p != KernelPath.None && (p == KernelPath.Scalar || (Supported & p) != 0));

    private sealed class Scope(KernelPath? previous) : IDisposable
    {
        public void Dispose() => ForcedPath.Value = previous;
    }
}
