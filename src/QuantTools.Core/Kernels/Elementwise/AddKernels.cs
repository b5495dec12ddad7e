using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Elementwise;

/// <summary>
/// Quantized add kernels. <see cref="AtenAdd"/> is ATen's <c>qadd_kernel</c> (PT: QuantizedOpKernels.cpp): elements
/// of the vector prefix (<see cref="QOps.VectorPrefix"/>) are dequantized in the FMA form and quantized in the vector
/// form, the tail in the scalar forms. <see cref="QnnpackAdd"/> is QNNPACK's fixed-point q8vadd.
/// Paths for AtenAdd: Scalar reference, Avx2, Avx512 (same split, same numbers).
/// </summary>
public static class AddKernels
{
    /// <summary>Compile-time flags (type arguments) for kernels specialized per combination.</summary>
    internal struct Yes;
    internal struct No;

    public const KernelPath Implemented = KernelPath.Scalar | KernelPath.Avx2 | KernelPath.Avx512;

    /// <summary>ATen's quantized add (<c>qadd_kernel</c>): <c>qu8-add/{scalar, avx2, avx512}</c> (qint8 runs the same code).</summary>
    public static readonly KernelFamily Family = new("qu8-add", Implemented);

    public readonly record struct AtenAddParams(float Sa, int Za, float Pa, float Sb, int Zb, float Pb, float Inv, int Zo, bool Relu);

    public static AtenAddParams AtenParams(QParams a, QParams b, double outScale, long outZp, bool relu)
    {
        float sa = (float)a.Scale, sb = (float)b.Scale;
        int za = (int)a.ZeroPoint, zb = (int)b.ZeroPoint;
        return new(sa, za, QOps.Premul(sa, za), sb, zb, QOps.Premul(sb, zb), 1.0f / (float)outScale, (int)outZp, relu);
    }

    /// <summary>Reference: element i takes the vector lambda when <c>i &lt; VectorPrefix(n)</c>.</summary>
    public static void AtenAddReference(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> y, bool signed, in AtenAddParams p)
    {
        var (qmin, qmax) = signed ? (-128, 127) : (0, 255);
        int prefix = QOps.VectorPrefix(y.Length);
        for (int i = 0; i < y.Length; i++)
        {
            int qa = QOps.Get(a, i, signed), qb = QOps.Get(b, i, signed);
            if (i < prefix)
            {
                float c = QOps.DqFma(qa, p.Sa, p.Pa) + QOps.DqFma(qb, p.Sb, p.Pb);
                if (p.Relu) c = MathF.Max(c, 0f);
                y[i] = (byte)QOps.QuantizeVector(c, p.Inv, p.Zo, qmin, qmax);
            }
            else
            {
                float c = QOps.DqScalar(qa, p.Sa, p.Za) + QOps.DqScalar(qb, p.Sb, p.Zb);
                if (p.Relu) c = MathF.Max(c, 0f);
                y[i] = (byte)QOps.QuantizeScalar(c, p.Inv, p.Zo, qmin, qmax);
            }
        }
    }

    public static unsafe void AtenAdd(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> y, bool signed, in AtenAddParams p)
    {
        if (a.Length != y.Length || b.Length != y.Length) throw new QuantToolsException(ErrorCode.ShapeMismatch, "add: lengths differ");
        var path = Family.Resolve();
        int done = 0, prefix = QOps.VectorPrefix(y.Length);
        fixed (byte* pa = a, pb = b, py = y)
        {
            if (path == KernelPath.Avx512) done = Add512(pa, pb, py, prefix, signed, p);
            else if (path == KernelPath.Avx2) done = Add256(pa, pb, py, prefix, signed, p);
        }
        // What the SIMD loop did not cover (the scalar tail, and everything on the Scalar path) runs the reference.
        if (done == 0) { AtenAddReference(a, b, y, signed, p); return; }
        AtenAddTail(a, b, y, done, signed, p);
    }

    private static void AtenAddTail(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> y, int from, bool signed, in AtenAddParams p)
    {
        var (qmin, qmax) = signed ? (-128, 127) : (0, 255);
        for (int i = from; i < y.Length; i++)
        {
            float c = QOps.DqScalar(QOps.Get(a, i, signed), p.Sa, p.Za) + QOps.DqScalar(QOps.Get(b, i, signed), p.Sb, p.Zb);
            if (p.Relu) c = MathF.Max(c, 0f);
            y[i] = (byte)QOps.QuantizeScalar(c, p.Inv, p.Zo, qmin, qmax);
        }
    }

    /// <summary>Elements of the vector prefix at least this long are split across <see cref="Parallelism.MaxThreads"/> threads.</summary>
    internal const int ParallelThreshold = 1 << 18;

    private static unsafe int Add512(byte* a, byte* b, byte* y, int n, bool signed, in AtenAddParams p)
    {
        if (!Avx512BW.IsSupported) return 0;
        n -= n % 64;
        var q = p;
        // minps(x*inv, cap) is a no-op when |x*inv| stays below the cap for every possible input: then it is skipped.
        double bound = (Math.Abs((double)p.Sa) * 256 + Math.Abs((double)p.Pa) + Math.Abs((double)p.Sb) * 256 + Math.Abs((double)p.Pb))
                       * Math.Abs((double)p.Inv) * 1.01 + 1;
        bool needCap = !(bound < 2.0e9);
        int threads = Math.Min(Parallelism.MaxThreads, n / (ParallelThreshold / 2));
        if (threads <= 1 || n < ParallelThreshold)
        {
            Add512Block(a, b, y, n, signed, needCap, q);
            return n;
        }
        nint pa = (nint)a, pb = (nint)b, py = (nint)y;
        int chunk = (n / threads + 63) / 64 * 64;
        Parallel.For(0, threads, Parallelism.Options, t =>
        {
            int from = t * chunk, len = Math.Min(chunk, n - from);
            if (len > 0) Add512Block((byte*)pa + from, (byte*)pb + from, (byte*)py + from, len, signed, needCap, q);
        });
        return n;
    }

    /// <summary>Permutes the dwords of a 4 x (16 int32) pack result back to element order.</summary>
    internal static readonly Vector512<int> PackOrder = Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);

    /// <summary>
    /// 64 int32 values (four vectors of 16 consecutive elements) to 64 saturated bytes in element order: int32 -> int16
    /// (signed saturation) -> uint8 / int8 saturation equals <c>clamp(v, qmin, qmax)</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<byte> Pack64(Vector512<int> r0, Vector512<int> r1, Vector512<int> r2, Vector512<int> r3, bool signed)
    {
        var w01 = Avx512BW.PackSignedSaturate(r0, r1);
        var w23 = Avx512BW.PackSignedSaturate(r2, r3);
        var bytes = signed ? Avx512BW.PackSignedSaturate(w01, w23).AsInt32() : Avx512BW.PackUnsignedSaturate(w01, w23).AsInt32();
        return Avx512F.PermuteVar16x32(bytes, PackOrder).AsByte();
    }

    private static unsafe void Add512Block(byte* a, byte* b, byte* y, int n, bool signed, bool needCap, AtenAddParams p)
    {
        // Each flag becomes a type argument so that the JIT compiles one branch-free loop per combination.
        if (signed)
        {
            if (p.Relu) { if (needCap) Add512Loop<Yes, Yes, Yes>(a, b, y, n, p); else Add512Loop<Yes, Yes, No>(a, b, y, n, p); }
            else { if (needCap) Add512Loop<Yes, No, Yes>(a, b, y, n, p); else Add512Loop<Yes, No, No>(a, b, y, n, p); }
        }
        else
        {
            if (p.Relu) { if (needCap) Add512Loop<No, Yes, Yes>(a, b, y, n, p); else Add512Loop<No, Yes, No>(a, b, y, n, p); }
            else { if (needCap) Add512Loop<No, No, Yes>(a, b, y, n, p); else Add512Loop<No, No, No>(a, b, y, n, p); }
        }
    }

    private static unsafe void Add512Loop<TSigned, TRelu, TCap>(byte* a, byte* b, byte* y, int n, AtenAddParams p)
        where TSigned : struct where TRelu : struct where TCap : struct
    {
        var sa = Vector512.Create(p.Sa); var pa = Vector512.Create(p.Pa);
        var sb = Vector512.Create(p.Sb); var pb = Vector512.Create(p.Pb);
        var inv = Vector512.Create(p.Inv); var zo = Vector512.Create(p.Zo);
        var cap = Vector512.Create(QuantizeKernels.VectorCap);
        bool signed = typeof(TSigned) == typeof(Yes);
        for (int i = 0; i < n; i += 64)
        {
            var r0 = AddOne512<TSigned, TRelu, TCap>(a + i, b + i, sa, pa, sb, pb, inv, zo, cap);
            var r1 = AddOne512<TSigned, TRelu, TCap>(a + i + 16, b + i + 16, sa, pa, sb, pb, inv, zo, cap);
            var r2 = AddOne512<TSigned, TRelu, TCap>(a + i + 32, b + i + 32, sa, pa, sb, pb, inv, zo, cap);
            var r3 = AddOne512<TSigned, TRelu, TCap>(a + i + 48, b + i + 48, sa, pa, sb, pb, inv, zo, cap);
            Pack64(r0, r1, r2, r3, signed).Store(y + i);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<int> AddOne512<TSigned, TRelu, TCap>(byte* x1, byte* x2, Vector512<float> sa, Vector512<float> pa,
        Vector512<float> sb, Vector512<float> pb, Vector512<float> inv, Vector512<int> zo, Vector512<float> cap)
        where TSigned : struct where TRelu : struct where TCap : struct
    {
        bool signed = typeof(TSigned) == typeof(Yes);
        var va = Avx512F.ConvertToVector512Single(Widen512(x1, signed));
        var vb = Avx512F.ConvertToVector512Single(Widen512(x2, signed));
        var c = Avx512F.Add(Avx512F.FusedMultiplyAdd(sa, va, pa), Avx512F.FusedMultiplyAdd(sb, vb, pb));
        if (typeof(TRelu) == typeof(Yes)) c = Avx512F.Max(c, Vector512<float>.Zero);
        var t = Avx512F.Multiply(c, inv);
        if (typeof(TCap) == typeof(Yes)) t = Avx512F.Min(t, cap);
        return Avx512F.Add(Avx512F.ConvertToVector512Int32(t), zo);
    }

    private static unsafe int Add256(byte* a, byte* b, byte* y, int n, bool signed, in AtenAddParams p)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported) return 0;
        var sa = Vector256.Create(p.Sa); var pa = Vector256.Create(p.Pa);
        var sb = Vector256.Create(p.Sb); var pb = Vector256.Create(p.Pb);
        var inv = Vector256.Create(p.Inv); var zo = Vector256.Create(p.Zo);
        var cap = Vector256.Create(QuantizeKernels.VectorCap);
        var lo = Vector256.Create(signed ? -128 : 0); var hi = Vector256.Create(signed ? 127 : 255);
        var zero = Vector256<float>.Zero;
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var va = Avx.ConvertToVector256Single(Widen256(a + i, signed));
            var vb = Avx.ConvertToVector256Single(Widen256(b + i, signed));
            var c = Avx.Add(Fma.MultiplyAdd(sa, va, pa), Fma.MultiplyAdd(sb, vb, pb));
            if (p.Relu) c = Avx.Max(c, zero);
            var r = Quantize256(c, inv, cap, zo, lo, hi);
            Store256(y + i, r);
        }
        return i;
    }

    // ------------------------------------------------------------------ shared SIMD pieces (also used by other kernels)

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe Vector512<int> Widen512(byte* p, bool signed) => signed
        ? Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)p))
        : Avx512F.ConvertToVector512Int32(Vector128.Load(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe Vector256<int> Widen256(byte* p, bool signed) => signed
        ? Avx2.ConvertToVector256Int32((sbyte*)p)
        : Avx2.ConvertToVector256Int32(p);

    /// <summary>QuantizeAvx512: <c>cvtps2dq(minps(x*inv, cap)) + zp</c> (int32 wrap), clamped.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<int> Quantize512(Vector512<float> x, Vector512<float> inv, Vector512<float> cap, Vector512<int> zp, Vector512<int> lo, Vector512<int> hi)
    {
        var t = Avx512F.Min(Avx512F.Multiply(x, inv), cap);
        var r = Avx512F.Add(Avx512F.ConvertToVector512Int32(t), zp);
        return Avx512F.Min(Avx512F.Max(r, lo), hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> Quantize256(Vector256<float> x, Vector256<float> inv, Vector256<float> cap, Vector256<int> zp, Vector256<int> lo, Vector256<int> hi)
    {
        var t = Avx.Min(Avx.Multiply(x, inv), cap);
        var r = Avx2.Add(Avx.ConvertToVector256Int32(t), zp);
        return Avx2.Min(Avx2.Max(r, lo), hi);
    }

    /// <summary>Stores 16 clamped int32 as bytes (truncating narrow; values already lie in the 8-bit range).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe void Store512(byte* y, Vector512<int> r) => Avx512F.ConvertToVector128Byte(r).Store(y);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe void Store256(byte* y, Vector256<int> r)
    {
        var s = Vector256.Narrow(r, r);            // 16 x int16, lanes 0..7 and 8..15 both hold r
        var b = Vector256.Narrow(s, s);            // 32 x int8
        *(long*)y = b.AsInt64().GetElement(0);
    }

    // ------------------------------------------------------------------ QNNPACK fixed-point add

    public readonly record struct QnnpackAddParams(int ZeroPointProduct, uint Ma, uint Mb, int Shift, int RemainderMask, int RemainderThreshold, int Zo, int OutMin, int OutMax);

    /// <summary>
    /// <c>pytorch_qnnp_compute_add_quantization_params</c>: <c>ra = f32(sa/so)</c>, <c>rb = f32(sb/so)</c> in [2^-14, 2^8);
    /// <c>shift = 21 - exponent(max(ra, rb))</c>; multipliers <c>lrintf(r * 2^shift)</c>.
    /// </summary>
    public static QnnpackAddParams QnnpackParams(QParams a, QParams b, double outScale, long outZp, bool relu)
    {
        float so = (float)outScale;
        float ra = (float)a.Scale / so, rb = (float)b.Scale / so;
        if (!(ra >= 1f / 16384f && rb >= 1f / 16384f && ra < 256f && rb < 256f))
            throw new QuantToolsException(ErrorCode.NotSupported,
                $"qnnpack add: input-to-output scale ratios {ra} and {rb} must lie in [2^-14, 2^8)");
        float max = Math.Max(ra, rb);
        int exponent = (int)(BitConverter.SingleToUInt32Bits(max) >> 23) - 127;
        int shift = 21 - exponent;
        uint ma = (uint)(int)QOps.Lrintf(BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(ra) + ((uint)shift << 23)));
        uint mb = (uint)(int)QOps.Lrintf(BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(rb) + ((uint)shift << 23)));
        int zpp = unchecked((int)(0u - (ma * (uint)a.ZeroPoint + mb * (uint)b.ZeroPoint)));
        int mask = (int)((1L << shift) - 1);
        int zo = (int)outZp;
        return new(zpp, ma, mb, shift, mask, (int)((uint)mask >> 1), zo, relu ? Math.Clamp(zo, 0, 255) : 0, 255);
    }

    /// <summary>q8vadd: <c>acc = zpp + ma*a + mb*b</c>; round half away from zero by <c>shift</c>; saturate, add zo, clamp.</summary>
    public static void QnnpackAdd(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> y, in QnnpackAddParams p)
    {
        for (int i = 0; i < y.Length; i++)
        {
            int acc = unchecked(p.ZeroPointProduct + (int)(p.Ma * a[i]) + (int)(p.Mb * b[i]));
            int rem = (acc & p.RemainderMask) - (acc < 0 ? 1 : 0);
            int n = (acc >> p.Shift) + (rem > p.RemainderThreshold ? 1 : 0);
            int v = Math.Clamp(n, short.MinValue, short.MaxValue);
            v = Math.Clamp(v + p.Zo, short.MinValue, short.MaxValue);
            v = Math.Clamp(v, 0, 255);
            y[i] = (byte)Math.Clamp(v, p.OutMin, p.OutMax);
        }
    }
}
