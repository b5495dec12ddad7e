using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace QuantTools.Core.Kernels.Elementwise;

/// <summary>
/// Integer clamp <c>y = min(max(q, lo), hi)</c> over 8-bit quantized integers: relu (lo = zp), relu6, hardtanh, clamp.
/// The vector and scalar lambdas of PyTorch's <c>qclamp_kernel</c> / <c>qrelu_kernel</c> agree, so there is no split.
/// Paths: Scalar reference, Vector128 / Vector256 / Vector512 (byte or sbyte min/max).
/// </summary>
public static class ClampKernels
{
    public const KernelPath Implemented = KernelPath.Scalar | KernelPath.Vector128 | KernelPath.Vector256 | KernelPath.Vector512;

    /// <summary><c>qu8-clamp/{scalar, vector128, vector256, vector512}</c> (relu, relu6, hardtanh, clamp; qint8 too).</summary>
    public static readonly KernelFamily Family = new("qu8-clamp", Implemented);

    /// <summary>The readable reference.</summary>
    public static void Reference(ReadOnlySpan<byte> src, Span<byte> dst, bool signed, int lo, int hi)
    {
        for (int i = 0; i < src.Length; i++)
        {
            int v = QOps.Get(src, i, signed);
            dst[i] = (byte)Math.Min(Math.Max(v, lo), hi);
        }
    }

    /// <summary>In place.</summary>
    public static void Clamp(Span<byte> data, bool signed, int lo, int hi) => Clamp(data, data, signed, lo, hi);

    public static void Clamp(ReadOnlySpan<byte> src, Span<byte> dst, bool signed, int lo, int hi)
    {
        if (dst.Length != src.Length) throw new QuantToolsException(ErrorCode.ShapeMismatch, "clamp: source and destination lengths differ");
        var (qmin, qmax) = signed ? (-128, 127) : (0, 255);
        lo = Math.Clamp(lo, qmin, qmax);
        hi = Math.Clamp(hi, qmin, qmax);
        var path = Family.Resolve();
        int i = 0;
        if (signed)
        {
            var s = MemoryMarshal.Cast<byte, sbyte>(src);
            var d = MemoryMarshal.Cast<byte, sbyte>(dst);
            i = path switch
            {
                KernelPath.Vector512 => Run512(s, d, (sbyte)lo, (sbyte)hi),
                KernelPath.Vector256 => Run256(s, d, (sbyte)lo, (sbyte)hi),
                KernelPath.Vector128 => Run128(s, d, (sbyte)lo, (sbyte)hi),
                _ => 0,
            };
        }
        else
        {
            i = path switch
            {
                KernelPath.Vector512 => Run512(src, dst, (byte)lo, (byte)hi),
                KernelPath.Vector256 => Run256(src, dst, (byte)lo, (byte)hi),
                KernelPath.Vector128 => Run128(src, dst, (byte)lo, (byte)hi),
                _ => 0,
            };
        }
        Reference(src[i..], dst[i..], signed, lo, hi);
    }

    private static int Run512<T>(ReadOnlySpan<T> s, Span<T> d, T lo, T hi) where T : unmanaged
    {
        var vlo = Vector512.Create(lo); var vhi = Vector512.Create(hi);
        ref T rs = ref MemoryMarshal.GetReference(s);
        ref T rd = ref MemoryMarshal.GetReference(d);
        int n = s.Length, i = 0, w = Vector512<T>.Count;
        for (; i + w <= n; i += w)
            Vector512.Min(Vector512.Max(Vector512.LoadUnsafe(ref rs, (nuint)i), vlo), vhi).StoreUnsafe(ref rd, (nuint)i);
        return i;
    }

    private static int Run256<T>(ReadOnlySpan<T> s, Span<T> d, T lo, T hi) where T : unmanaged
    {
        var vlo = Vector256.Create(lo); var vhi = Vector256.Create(hi);
        ref T rs = ref MemoryMarshal.GetReference(s);
        ref T rd = ref MemoryMarshal.GetReference(d);
        int n = s.Length, i = 0, w = Vector256<T>.Count;
        for (; i + w <= n; i += w)
            Vector256.Min(Vector256.Max(Vector256.LoadUnsafe(ref rs, (nuint)i), vlo), vhi).StoreUnsafe(ref rd, (nuint)i);
        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Run128<T>(ReadOnlySpan<T> s, Span<T> d, T lo, T hi) where T : unmanaged
    {
        var vlo = Vector128.Create(lo); var vhi = Vector128.Create(hi);
        ref T rs = ref MemoryMarshal.GetReference(s);
        ref T rd = ref MemoryMarshal.GetReference(d);
        int n = s.Length, i = 0, w = Vector128<T>.Count;
        for (; i + w <= n; i += w)
            Vector128.Min(Vector128.Max(Vector128.LoadUnsafe(ref rs, (nuint)i), vlo), vhi).StoreUnsafe(ref rd, (nuint)i);
        return i;
    }
}
