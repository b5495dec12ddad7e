using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels.Elementwise;

/// <summary>
/// 256-entry byte table lookup <c>y[i] = table[x[i]]</c>, the inner loop of every 8-bit activation.
/// Paths: Scalar reference; Avx512 (with AVX512-VBMI: two two-table <c>vpermi2b</c> lookups and a select on bit 7).
/// </summary>
public static class LutKernels
{
    public const KernelPath Implemented = KernelPath.Scalar | KernelPath.Avx512;

    /// <summary><c>qu8-lut/{scalar, avx512}</c>: 256-entry table lookups; the AVX-512 path needs VBMI (vpermi2b), else scalar.</summary>
    public static readonly KernelFamily Family = new("qu8-lut", Implemented);

    public static void Reference(ReadOnlySpan<byte> x, Span<byte> y, ReadOnlySpan<byte> table)
    {
        for (int i = 0; i < x.Length; i++) y[i] = table[x[i]];
    }

    public static void Apply(ReadOnlySpan<byte> x, Span<byte> y, ReadOnlySpan<byte> table)
    {
        if (table.Length != 256) throw new QuantToolsException(ErrorCode.InvalidArgument, "a lookup table needs 256 entries");
        if (y.Length != x.Length) throw new QuantToolsException(ErrorCode.ShapeMismatch, "lookup: lengths differ");
        int i = 0;
        if (Family.Resolve() == KernelPath.Avx512 && Avx512Vbmi.IsSupported)
        {
            ref byte rt = ref MemoryMarshal.GetReference(table);
            var t0 = Vector512.LoadUnsafe(ref rt, 0); var t1 = Vector512.LoadUnsafe(ref rt, 64);
            var t2 = Vector512.LoadUnsafe(ref rt, 128); var t3 = Vector512.LoadUnsafe(ref rt, 192);
            ref byte rx = ref MemoryMarshal.GetReference(x);
            ref byte ry = ref MemoryMarshal.GetReference(y);
            for (; i + 64 <= x.Length; i += 64)
            {
                var idx = Vector512.LoadUnsafe(ref rx, (nuint)i);
                var lo = Avx512Vbmi.PermuteVar64x8x2(t0, idx, t1);   // indices 0..127 (bit 6 picks the table)
                var hi = Avx512Vbmi.PermuteVar64x8x2(t2, idx, t3);   // indices 128..255 (bit 7 ignored)
                var high = Vector512.LessThan(idx.AsSByte(), Vector512<sbyte>.Zero).AsByte();
                Vector512.ConditionalSelect(high, hi, lo).StoreUnsafe(ref ry, (nuint)i);
            }
        }
        Reference(x[i..], y[i..], table);
    }
}
