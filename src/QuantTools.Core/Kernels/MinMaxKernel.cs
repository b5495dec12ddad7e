using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels;

/// <summary>
/// torch.aminmax over a float32 span: NaN propagates to both results. Empty input returns (+inf, -inf).
/// <see cref="Reference"/> is the scalar definition; <see cref="Compute"/> picks a SIMD path (KernelPaths) that
/// returns the same bits on every input. Signed zeros: the reference keeps the first element that compares equal
/// to the extreme, so when an extreme is 0 the SIMD paths look up that first zero to return its sign.
/// </summary>
public static unsafe class MinMaxKernel
{
    public const KernelPath Implemented =
        KernelPath.Scalar | KernelPath.Vector256 | KernelPath.Vector512 | KernelPath.Avx2 | KernelPath.Avx512;

    /// <summary><c>f32-minmax/...</c>: the min / max pass of the observers.</summary>
    public static readonly KernelFamily Family = new("f32-minmax", Implemented);

    public static (float Min, float Max) Reference(ReadOnlySpan<float> x)
    {
        float mn = float.PositiveInfinity, mx = float.NegativeInfinity;
        foreach (var v in x)
        {
            if (float.IsNaN(v)) return (float.NaN, float.NaN);
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
        return (mn, mx);
    }

    public static (float Min, float Max) Compute(ReadOnlySpan<float> x)
    {
        var path = Family.Resolve();
        if (path == KernelPath.Scalar || x.Length < 16) return Reference(x);
        float mn, mx; bool nan; int i;
        fixed (float* p = x)
        {
            (mn, mx, nan, i) = path switch
            {
                KernelPath.Avx512 when Avx512F.IsSupported => Avx512Body(p, x.Length),
                KernelPath.Avx2 when Avx.IsSupported => Avx2Body(p, x.Length),
                KernelPath.Vector512 => V512Body(p, x.Length),
                _ => V256Body(p, x.Length),
            };
        }
        if (nan) return (float.NaN, float.NaN);
        for (; i < x.Length; i++)
        {
            float v = x[i];
            if (float.IsNaN(v)) return (float.NaN, float.NaN);
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
        if (mn == 0) mn = FirstZero(x);
        if (mx == 0) mx = FirstZero(x);
        return (mn, mx);
    }

    private static float FirstZero(ReadOnlySpan<float> x)
    {
        foreach (var v in x) if (v == 0) return v;
        return 0f;
    }

    private static (float, float, bool, int) Avx512Body(float* p, int n)
    {
        var vmn = Vector512.Create(float.PositiveInfinity); var vmx = Vector512.Create(float.NegativeInfinity);
        var vmn2 = vmn; var vmx2 = vmx;
        var bad = Vector512<uint>.Zero;
        int i = 0;
        for (; i <= n - 32; i += 32)
        {
            var a = Avx512F.LoadVector512(p + i); var b = Avx512F.LoadVector512(p + i + 16);
            bad = Avx512F.Or(bad, Avx512F.Or(Avx512F.CompareUnordered(a, a).AsUInt32(), Avx512F.CompareUnordered(b, b).AsUInt32()));
            vmn = Avx512F.Min(vmn, a); vmx = Avx512F.Max(vmx, a);
            vmn2 = Avx512F.Min(vmn2, b); vmx2 = Avx512F.Max(vmx2, b);
        }
        for (; i <= n - 16; i += 16)
        {
            var a = Avx512F.LoadVector512(p + i);
            bad = Avx512F.Or(bad, Avx512F.CompareUnordered(a, a).AsUInt32());
            vmn = Avx512F.Min(vmn, a); vmx = Avx512F.Max(vmx, a);
        }
        bool nan = bad != Vector512<uint>.Zero;
        return (Reduce(Avx512F.Min(vmn, vmn2), true), Reduce(Avx512F.Max(vmx, vmx2), false), nan, i);
    }

    private static (float, float, bool, int) Avx2Body(float* p, int n)
    {
        var vmn = Vector256.Create(float.PositiveInfinity); var vmx = Vector256.Create(float.NegativeInfinity);
        var vmn2 = vmn; var vmx2 = vmx;
        var bad = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 16; i += 16)
        {
            var a = Avx.LoadVector256(p + i); var b = Avx.LoadVector256(p + i + 8);
            bad = Avx.Or(bad, Avx.Or(Avx.CompareUnordered(a, a), Avx.CompareUnordered(b, b)));
            vmn = Avx.Min(vmn, a); vmx = Avx.Max(vmx, a);
            vmn2 = Avx.Min(vmn2, b); vmx2 = Avx.Max(vmx2, b);
        }
        for (; i <= n - 8; i += 8)
        {
            var a = Avx.LoadVector256(p + i);
            bad = Avx.Or(bad, Avx.CompareUnordered(a, a));
            vmn = Avx.Min(vmn, a); vmx = Avx.Max(vmx, a);
        }
        bool nan = !Avx.TestZ(bad.AsInt32(), bad.AsInt32());
        return (Reduce(Avx.Min(vmn, vmn2), true), Reduce(Avx.Max(vmx, vmx2), false), nan, i);
    }

    private static (float, float, bool, int) V512Body(float* p, int n)
    {
        var vmn = Vector512.Create(float.PositiveInfinity); var vmx = Vector512.Create(float.NegativeInfinity);
        var bad = Vector512<float>.Zero;
        int i = 0;
        for (; i <= n - 16; i += 16)
        {
            var a = Vector512.Load(p + i);
            bad |= ~Vector512.Equals(a, a);
            vmn = Vector512.MinNative(vmn, a); vmx = Vector512.MaxNative(vmx, a); // NaN handled via 'bad'
        }
        return (Reduce(vmn, true), Reduce(vmx, false), bad != Vector512<float>.Zero, i);
    }

    private static (float, float, bool, int) V256Body(float* p, int n)
    {
        var vmn = Vector256.Create(float.PositiveInfinity); var vmx = Vector256.Create(float.NegativeInfinity);
        var bad = Vector256<float>.Zero;
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            var a = Vector256.Load(p + i);
            bad |= ~Vector256.Equals(a, a);
            vmn = Vector256.MinNative(vmn, a); vmx = Vector256.MaxNative(vmx, a);
        }
        return (Reduce(vmn, true), Reduce(vmx, false), bad != Vector256<float>.Zero, i);
    }

    // Lane values are NaN-free here (a NaN anywhere makes the caller return NaN), so the order of a reduction
    // only matters for the sign of zero, which Compute fixes up afterwards.
    private static float Reduce(Vector512<float> v, bool min)
    {
        float r = min ? float.PositiveInfinity : float.NegativeInfinity;
        for (int k = 0; k < 16; k++) r = min ? (v[k] < r ? v[k] : r) : (v[k] > r ? v[k] : r);
        return r;
    }

    private static float Reduce(Vector256<float> v, bool min)
    {
        float r = min ? float.PositiveInfinity : float.NegativeInfinity;
        for (int k = 0; k < 8; k++) r = min ? (v[k] < r ? v[k] : r) : (v[k] > r ? v[k] : r);
        return r;
    }
}
