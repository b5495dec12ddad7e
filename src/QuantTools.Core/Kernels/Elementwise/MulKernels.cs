using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels.Elementwise;

/// <summary>
/// Quantized mul (ATen <c>qmul_kernel</c>): <c>c = (a-za)(b-zb)</c> in int32, <c>y = clamp(zo + rne(f32((float)c * M)))</c>,
/// relu: <c>max(y, zo)</c>. The vector lambda (<c>requantize_from_int</c> vectorized) and the scalar one give the same
/// integers, so there is no split. Paths: Scalar reference, Avx2, Avx512.
/// </summary>
public static class MulKernels
{
    public const KernelPath Implemented = KernelPath.Scalar | KernelPath.Avx2 | KernelPath.Avx512;

    /// <summary><c>qu8-mul/{scalar, avx2, avx512}</c> (qint8 runs the same code).</summary>
    public static readonly KernelFamily Family = new("qu8-mul", Implemented);

    /// <summary>
    /// SIMD paths bound <c>c*M</c> to ±2^24 before <c>cvtps2dq</c>: any such value clamps to the dtype's end either way, and
    /// the bound keeps products beyond 2^31 (absurd multipliers) equal to the scalar <c>lrintf</c> form instead of INT32_MIN.
    /// </summary>
    private const float Bound = 16777216f;

    public static void Reference(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> y, bool signed, int za, int zb, float m, int zo, bool relu)
    {
        var (lo, hi) = signed ? (-128, 127) : (0, 255);
        for (int i = 0; i < y.Length; i++)
        {
            int c = (QOps.Get(a, i, signed) - za) * (QOps.Get(b, i, signed) - zb);
            int v = QOps.RequantizeFromInt(c, m, zo, lo, hi);
            if (relu) v = Math.Max(v, zo);
            y[i] = (byte)v;
        }
    }

    public static unsafe void Mul(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> y, bool signed, int za, int zb, float m, int zo, bool relu)
    {
        if (a.Length != y.Length || b.Length != y.Length) throw new QuantToolsException(ErrorCode.ShapeMismatch, "mul: lengths differ");
        var path = Family.Resolve();
        int done = 0;
        var (qmin, qmax) = signed ? (-128, 127) : (0, 255);
        int lo = relu ? Math.Clamp(zo, qmin, qmax) : qmin;
        fixed (byte* pa = a, pb = b, py = y)
        {
            if (path == KernelPath.Avx512 && Avx512F.IsSupported)
            {
                var vza = Vector512.Create(za); var vzb = Vector512.Create(zb); var vm = Vector512.Create(m);
                var vzo = Vector512.Create(zo); var vneg = Vector512.Create(-Bound); var vpos = Vector512.Create(Bound); var vlo = Vector512.Create(lo); var vhi = Vector512.Create(qmax);
                for (; done + 16 <= y.Length; done += 16)
                {
                    var c = Avx512F.MultiplyLow(Avx512F.Subtract(AddKernels.Widen512(pa + done, signed), vza),
                                                Avx512F.Subtract(AddKernels.Widen512(pb + done, signed), vzb));
                    var t = Avx512F.Min(Avx512F.Max(Avx512F.Multiply(Avx512F.ConvertToVector512Single(c), vm), vneg), vpos);
                    var r = Avx512F.Add(Avx512F.ConvertToVector512Int32(t), vzo);
                    AddKernels.Store512(py + done, Avx512F.Min(Avx512F.Max(r, vlo), vhi));
                }
            }
            else if (path == KernelPath.Avx2 && Avx2.IsSupported)
            {
                var vza = Vector256.Create(za); var vzb = Vector256.Create(zb); var vm = Vector256.Create(m);
                var vzo = Vector256.Create(zo); var vneg = Vector256.Create(-Bound); var vpos = Vector256.Create(Bound); var vlo = Vector256.Create(lo); var vhi = Vector256.Create(qmax);
                for (; done + 8 <= y.Length; done += 8)
                {
                    var c = Avx2.MultiplyLow(Avx2.Subtract(AddKernels.Widen256(pa + done, signed), vza),
                                             Avx2.Subtract(AddKernels.Widen256(pb + done, signed), vzb));
                    var t = Avx.Min(Avx.Max(Avx.Multiply(Avx.ConvertToVector256Single(c), vm), vneg), vpos);
                    var r = Avx2.Add(Avx.ConvertToVector256Int32(t), vzo);
                    AddKernels.Store256(py + done, Avx2.Min(Avx2.Max(r, vlo), vhi));
                }
            }
        }
        Reference(a[done..], b[done..], y[done..], signed, za, zb, m, zo, relu);
    }
}
