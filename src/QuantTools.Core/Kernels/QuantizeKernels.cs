using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels;

/// <summary>
/// Per-tensor quantize kernels, float32 -> quint8 / qint8 / qint32, bit-exact with PyTorch 2.11 (x86, FBGEMM).
/// <para>quint8/qint8 use the vector form for every element (numerics.md "Checked against PyTorch" point 1):
/// <c>t = f32(x * inv)</c>, <c>t = minps(t, 2147483520f)</c> (NaN becomes the constant), <c>r = cvtps2dq(t)</c>
/// (rne; below -2^31 gives INT32_MIN), <c>r = r + zp</c> with int32 wraparound, clamp to the dtype range.</para>
/// <para>qint32 uses the scalar form <c>v = f32((float)zp + rne(t))</c>, clamped in double; NaN gives INT32_MIN
/// (x86 <c>cvttsd2si</c>).</para>
/// <c>inv = f32(1f / f32(scale))</c>: multiply by the float reciprocal, never divide.
/// Arguments are not validated here (<see cref="Quantization.Quantizer"/> validates); spans must have equal length.
/// </summary>
public static unsafe class QuantizeKernels
{
    /// <summary>Largest float below 2^31 (what the vector kernels clamp t to).</summary>
    public const float VectorCap = 2147483520f;
    private const float TwoPow31 = 2147483648f;

    public const KernelPath Implemented =
        KernelPath.Scalar | KernelPath.Vector256 | KernelPath.Vector512 | KernelPath.Avx2 | KernelPath.Avx512;

    /// <summary><c>f32-qu8-quantize/...</c></summary>
    public static readonly KernelFamily QUInt8Family = new("f32-qu8-quantize", Implemented);
    /// <summary><c>f32-qs8-quantize/...</c></summary>
    public static readonly KernelFamily QInt8Family = new("f32-qs8-quantize", Implemented);
    /// <summary><c>f32-qs32-quantize/...</c></summary>
    public static readonly KernelFamily QInt32Family = new("f32-qs32-quantize", Implemented);

    /// <summary>Inputs at least this long are split across cores (in chunks of <see cref="ParallelChunk"/>).</summary>
    public static int ParallelThreshold { get; set; } = 1 << 20;
    public const int ParallelChunk = 1 << 18;

    internal static float InverseScale(double scale) => 1.0f / (float)scale;

    // ------------------------------------------------------------------ scalar references

    /// <summary>The vector-form integer before clamping: rne(min(x*inv, cap)) + zp with int32 wraparound.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int VectorFormRaw(float x, float inv, int zp)
    {
        float t = x * inv;
        if (!(t < VectorCap)) t = VectorCap;            // minps(t, cap): NaN and >= cap become cap
        int r = t < -TwoPow31 ? int.MinValue : (int)MathF.Round(t); // cvtps2dq: rne, overflow -> INT32_MIN
        return unchecked(r + zp);
    }

    /// <summary>qint32 scalar form: clamp_double((float)zp + rne(x*inv)); NaN -> INT32_MIN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int QInt32Scalar(float x, float inv, float zpf)
    {
        float v = zpf + MathF.Round(x * inv);
        if (float.IsNaN(v)) return int.MinValue;
        if (v >= TwoPow31) return int.MaxValue;
        if (v <= -TwoPow31) return int.MinValue;
        return (int)v;
    }

    public static void ReferenceQUInt8(ReadOnlySpan<float> x, Span<byte> q, double scale, long zeroPoint)
    {
        float inv = InverseScale(scale);
        int zp = (int)zeroPoint;
        for (int i = 0; i < x.Length; i++)
            q[i] = (byte)Math.Clamp(VectorFormRaw(x[i], inv, zp), 0, 255);
    }

    public static void ReferenceQInt8(ReadOnlySpan<float> x, Span<sbyte> q, double scale, long zeroPoint)
    {
        float inv = InverseScale(scale);
        int zp = (int)zeroPoint;
        for (int i = 0; i < x.Length; i++)
            q[i] = (sbyte)Math.Clamp(VectorFormRaw(x[i], inv, zp), -128, 127);
    }

    public static void ReferenceQInt32(ReadOnlySpan<float> x, Span<int> q, double scale, long zeroPoint)
    {
        float inv = InverseScale(scale);
        float zpf = (int)zeroPoint;
        for (int i = 0; i < x.Length; i++)
            q[i] = QInt32Scalar(x[i], inv, zpf);
    }

    // ------------------------------------------------------------------ dispatch

    public static void QUInt8(ReadOnlySpan<float> x, Span<byte> q, double scale, long zeroPoint)
    {
        CheckLengths(x.Length, q.Length);
        var path = QUInt8Family.Resolve();
        if (path == KernelPath.Scalar) { ReferenceQUInt8(x, q, scale, zeroPoint); return; }
        float inv = InverseScale(scale);
        int zp = (int)zeroPoint;
        fixed (float* px = x)
        fixed (byte* pq = q)
        {
            nint sx = (nint)px, sq = (nint)pq;
            Parallelism.ForRanges(x.Length, ParallelThreshold, ParallelChunk, (b, e) => RunU8(path, (float*)sx + b, (byte*)sq + b, e - b, inv, zp));
        }
    }

    public static void QInt8(ReadOnlySpan<float> x, Span<sbyte> q, double scale, long zeroPoint)
    {
        CheckLengths(x.Length, q.Length);
        var path = QInt8Family.Resolve();
        if (path == KernelPath.Scalar) { ReferenceQInt8(x, q, scale, zeroPoint); return; }
        float inv = InverseScale(scale);
        int zp = (int)zeroPoint;
        fixed (float* px = x)
        fixed (sbyte* pq = q)
        {
            nint sx = (nint)px, sq = (nint)pq;
            Parallelism.ForRanges(x.Length, ParallelThreshold, ParallelChunk, (b, e) => RunS8(path, (float*)sx + b, (sbyte*)sq + b, e - b, inv, zp));
        }
    }

    public static void QInt32(ReadOnlySpan<float> x, Span<int> q, double scale, long zeroPoint)
    {
        CheckLengths(x.Length, q.Length);
        var path = QInt32Family.Resolve();
        if (path == KernelPath.Scalar) { ReferenceQInt32(x, q, scale, zeroPoint); return; }
        float inv = InverseScale(scale);
        int zp = (int)zeroPoint;
        fixed (float* px = x)
        fixed (int* pq = q)
        {
            nint sx = (nint)px, sq = (nint)pq;
            Parallelism.ForRanges(x.Length, ParallelThreshold, ParallelChunk, (b, e) => RunI32(path, (float*)sx + b, (int*)sq + b, e - b, inv, zp));
        }
    }

    internal static void CheckLengths(int a, int b)
    {
        if (a != b)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"input has {a} elements but output has {b}");
    }

    private static void RunU8(KernelPath path, float* x, byte* q, int n, float inv, int zp)
    {
        int i = path switch
        {
            KernelPath.Avx512 => U8Avx512(x, q, n, inv, zp),
            KernelPath.Avx2 => U8Avx2(x, q, n, inv, zp),
            KernelPath.Vector512 => U8V512(x, q, n, inv, zp),
            KernelPath.Vector256 => U8V256(x, q, n, inv, zp),
            _ => 0,
        };
        for (; i < n; i++) q[i] = (byte)Math.Clamp(VectorFormRaw(x[i], inv, zp), 0, 255);
    }

    private static void RunS8(KernelPath path, float* x, sbyte* q, int n, float inv, int zp)
    {
        int i = path switch
        {
            KernelPath.Avx512 => S8Avx512(x, q, n, inv, zp),
            KernelPath.Avx2 => S8Avx2(x, q, n, inv, zp),
            KernelPath.Vector512 => S8V512(x, q, n, inv, zp),
            KernelPath.Vector256 => S8V256(x, q, n, inv, zp),
            _ => 0,
        };
        for (; i < n; i++) q[i] = (sbyte)Math.Clamp(VectorFormRaw(x[i], inv, zp), -128, 127);
    }

    private static void RunI32(KernelPath path, float* x, int* q, int n, float inv, int zp)
    {
        int i = path switch
        {
            KernelPath.Avx512 => I32Avx512(x, q, n, inv, zp),
            KernelPath.Avx2 => I32Avx2(x, q, n, inv, zp),
            KernelPath.Vector512 => I32V512(x, q, n, inv, zp),
            KernelPath.Vector256 => I32V256(x, q, n, inv, zp),
            _ => 0,
        };
        float zpf = zp;
        for (; i < n; i++) q[i] = QInt32Scalar(x[i], inv, zpf);
    }

    // ------------------------------------------------------------------ AVX-512 intrinsics

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> RawAvx512(float* p, Vector512<float> inv, Vector512<float> cap, Vector512<int> zp)
    {
        var t = Avx512F.Multiply(Avx512F.LoadVector512(p), inv);
        t = Avx512F.Min(t, cap);                          // vminps: NaN -> second operand (cap)
        return Avx512F.Add(Avx512F.ConvertToVector512Int32(t), zp); // cvtps2dq (rne), int32 wraparound add
    }

    // After packs/packus within 128-bit lanes, dword k of the result holds source vector k%4's lane k/4.
    private static readonly Vector512<int> PackOrder512 = Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    private static readonly Vector256<int> PackOrder256 = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);

    private static int U8Avx512(float* x, byte* q, int n, float inv, int zp)
    {
        if (!Avx512BW.IsSupported) return 0;
        var vinv = Vector512.Create(inv); var cap = Vector512.Create(VectorCap); var vzp = Vector512.Create(zp);
        var order = PackOrder512;
        int i = 0;
        for (; i <= n - 64; i += 64)
        {
            var r0 = RawAvx512(x + i, vinv, cap, vzp);
            var r1 = RawAvx512(x + i + 16, vinv, cap, vzp);
            var r2 = RawAvx512(x + i + 32, vinv, cap, vzp);
            var r3 = RawAvx512(x + i + 48, vinv, cap, vzp);
            var s01 = Avx512BW.PackSignedSaturate(r0, r1);
            var s23 = Avx512BW.PackSignedSaturate(r2, r3);
            var b = Avx512BW.PackUnsignedSaturate(s01, s23);
            Avx512F.Store(q + i, Avx512F.PermuteVar16x32(b.AsInt32(), order).AsByte());
        }
        return i;
    }

    private static int S8Avx512(float* x, sbyte* q, int n, float inv, int zp)
    {
        if (!Avx512BW.IsSupported) return 0;
        var vinv = Vector512.Create(inv); var cap = Vector512.Create(VectorCap); var vzp = Vector512.Create(zp);
        var order = PackOrder512;
        int i = 0;
        for (; i <= n - 64; i += 64)
        {
            var r0 = RawAvx512(x + i, vinv, cap, vzp);
            var r1 = RawAvx512(x + i + 16, vinv, cap, vzp);
            var r2 = RawAvx512(x + i + 32, vinv, cap, vzp);
            var r3 = RawAvx512(x + i + 48, vinv, cap, vzp);
            var s01 = Avx512BW.PackSignedSaturate(r0, r1);
            var s23 = Avx512BW.PackSignedSaturate(r2, r3);
            var b = Avx512BW.PackSignedSaturate(s01, s23);
            Avx512F.Store(q + i, Avx512F.PermuteVar16x32(b.AsInt32(), order).AsSByte());
        }
        return i;
    }

    private static int I32Avx512(float* x, int* q, int n, float inv, int zp)
    {
        if (!Avx512F.IsSupported) return 0;
        var vinv = Vector512.Create(inv); var vzp = Vector512.Create((float)zp); var big = Vector512.Create(TwoPow31);
        int i = 0;
        for (; i <= n - 16; i += 16)
        {
            var t = Avx512F.Multiply(Avx512F.LoadVector512(x + i), vinv);
            var v = Avx512F.Add(vzp, Avx512F.RoundScale(t, 0x08)); // rne, suppress exceptions
            var r = Avx512F.ConvertToVector512Int32(v);              // v is integral; overflow/NaN -> INT32_MIN
            var over = Avx512F.CompareGreaterThanOrEqual(v, big).AsInt32();
            Avx512F.Store(q + i, Avx512F.Xor(r, over));              // INT32_MIN ^ ~0 = INT32_MAX
        }
        return i;
    }

    // ------------------------------------------------------------------ AVX2 intrinsics

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> RawAvx2(float* p, Vector256<float> inv, Vector256<float> cap, Vector256<int> zp)
    {
        var t = Avx.Multiply(Avx.LoadVector256(p), inv);
        t = Avx.Min(t, cap);
        return Avx2.Add(Avx.ConvertToVector256Int32(t), zp);
    }

    private static int U8Avx2(float* x, byte* q, int n, float inv, int zp)
    {
        if (!Avx2.IsSupported) return 0;
        var vinv = Vector256.Create(inv); var cap = Vector256.Create(VectorCap); var vzp = Vector256.Create(zp);
        var order = PackOrder256;
        int i = 0;
        for (; i <= n - 32; i += 32)
        {
            var r0 = RawAvx2(x + i, vinv, cap, vzp);
            var r1 = RawAvx2(x + i + 8, vinv, cap, vzp);
            var r2 = RawAvx2(x + i + 16, vinv, cap, vzp);
            var r3 = RawAvx2(x + i + 24, vinv, cap, vzp);
            var b = Avx2.PackUnsignedSaturate(Avx2.PackSignedSaturate(r0, r1), Avx2.PackSignedSaturate(r2, r3));
            Avx.Store(q + i, Avx2.PermuteVar8x32(b.AsInt32(), order).AsByte());
        }
        return i;
    }

    private static int S8Avx2(float* x, sbyte* q, int n, float inv, int zp)
    {
        if (!Avx2.IsSupported) return 0;
        var vinv = Vector256.Create(inv); var cap = Vector256.Create(VectorCap); var vzp = Vector256.Create(zp);
        var order = PackOrder256;
        int i = 0;
        for (; i <= n - 32; i += 32)
        {
            var r0 = RawAvx2(x + i, vinv, cap, vzp);
            var r1 = RawAvx2(x + i + 8, vinv, cap, vzp);
            var r2 = RawAvx2(x + i + 16, vinv, cap, vzp);
            var r3 = RawAvx2(x + i + 24, vinv, cap, vzp);
            var b = Avx2.PackSignedSaturate(Avx2.PackSignedSaturate(r0, r1), Avx2.PackSignedSaturate(r2, r3));
            Avx.Store(q + i, Avx2.PermuteVar8x32(b.AsInt32(), order).AsSByte());
        }
        return i;
    }

    private static int I32Avx2(float* x, int* q, int n, float inv, int zp)
    {
        if (!Avx2.IsSupported) return 0;
        var vinv = Vector256.Create(inv); var vzp = Vector256.Create((float)zp); var big = Vector256.Create(TwoPow31);
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            var t = Avx.Multiply(Avx.LoadVector256(x + i), vinv);
            var v = Avx.Add(vzp, Avx.RoundToNearestInteger(t));
            var r = Avx.ConvertToVector256Int32(v);
            var over = Avx.CompareGreaterThanOrEqual(v, big).AsInt32();
            Avx.Store(q + i, Avx2.Xor(r, over));
        }
        return i;
    }

    // ------------------------------------------------------------------ portable Vector256 / Vector512

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> RawV256(float* p, Vector256<float> inv, Vector256<float> cap, Vector256<int> zp,
        Vector256<int> lo, Vector256<int> hi)
    {
        var t = Vector256.Load(p) * inv;
        t = Vector256.ConditionalSelect(Vector256.LessThan(t, cap), t, cap); // minps semantics, NaN -> cap
        var r = Vector256.ConvertToInt32(Vector256.Round(t));                // saturating: < -2^31 -> INT32_MIN
        return Vector256.Min(Vector256.Max(r + zp, lo), hi);
    }

    private static int U8V256(float* x, byte* q, int n, float inv, int zp)
    {
        var vinv = Vector256.Create(inv); var cap = Vector256.Create(VectorCap); var vzp = Vector256.Create(zp);
        var lo = Vector256.Create(0); var hi = Vector256.Create(255);
        int i = 0;
        for (; i <= n - 32; i += 32)
        {
            var a = Vector256.Narrow(RawV256(x + i, vinv, cap, vzp, lo, hi).AsUInt32(), RawV256(x + i + 8, vinv, cap, vzp, lo, hi).AsUInt32());
            var b = Vector256.Narrow(RawV256(x + i + 16, vinv, cap, vzp, lo, hi).AsUInt32(), RawV256(x + i + 24, vinv, cap, vzp, lo, hi).AsUInt32());
            Vector256.Narrow(a, b).Store(q + i);
        }
        return i;
    }

    private static int S8V256(float* x, sbyte* q, int n, float inv, int zp)
    {
        var vinv = Vector256.Create(inv); var cap = Vector256.Create(VectorCap); var vzp = Vector256.Create(zp);
        var lo = Vector256.Create(-128); var hi = Vector256.Create(127);
        int i = 0;
        for (; i <= n - 32; i += 32)
        {
            var a = Vector256.Narrow(RawV256(x + i, vinv, cap, vzp, lo, hi), RawV256(x + i + 8, vinv, cap, vzp, lo, hi));
            var b = Vector256.Narrow(RawV256(x + i + 16, vinv, cap, vzp, lo, hi), RawV256(x + i + 24, vinv, cap, vzp, lo, hi));
            Vector256.Narrow(a, b).Store(q + i);
        }
        return i;
    }

    private static int I32V256(float* x, int* q, int n, float inv, int zp)
    {
        var vinv = Vector256.Create(inv); var vzp = Vector256.Create((float)zp);
        var big = Vector256.Create(TwoPow31); var mn = Vector256.Create(int.MinValue);
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            var v = vzp + Vector256.Round(Vector256.Load(x + i) * vinv);
            var r = Vector256.ConvertToInt32(v);                                   // saturating, NaN -> 0
            r = Vector256.ConditionalSelect(Vector256.Equals(v, v).AsInt32(), r, mn); // NaN -> INT32_MIN
            r = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(v, big).AsInt32(), Vector256.Create(int.MaxValue), r);
            r.Store(q + i);
        }
        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> RawV512(float* p, Vector512<float> inv, Vector512<float> cap, Vector512<int> zp,
        Vector512<int> lo, Vector512<int> hi)
    {
        var t = Vector512.Load(p) * inv;
        t = Vector512.ConditionalSelect(Vector512.LessThan(t, cap), t, cap);
        var r = Vector512.ConvertToInt32(Vector512.Round(t));
        return Vector512.Min(Vector512.Max(r + zp, lo), hi);
    }

    private static int U8V512(float* x, byte* q, int n, float inv, int zp)
    {
        var vinv = Vector512.Create(inv); var cap = Vector512.Create(VectorCap); var vzp = Vector512.Create(zp);
        var lo = Vector512.Create(0); var hi = Vector512.Create(255);
        int i = 0;
        for (; i <= n - 64; i += 64)
        {
            var a = Vector512.Narrow(RawV512(x + i, vinv, cap, vzp, lo, hi).AsUInt32(), RawV512(x + i + 16, vinv, cap, vzp, lo, hi).AsUInt32());
            var b = Vector512.Narrow(RawV512(x + i + 32, vinv, cap, vzp, lo, hi).AsUInt32(), RawV512(x + i + 48, vinv, cap, vzp, lo, hi).AsUInt32());
            Vector512.Narrow(a, b).Store(q + i);
        }
        return i;
    }

    private static int S8V512(float* x, sbyte* q, int n, float inv, int zp)
    {
        var vinv = Vector512.Create(inv); var cap = Vector512.Create(VectorCap); var vzp = Vector512.Create(zp);
        var lo = Vector512.Create(-128); var hi = Vector512.Create(127);
        int i = 0;
        for (; i <= n - 64; i += 64)
        {
            var a = Vector512.Narrow(RawV512(x + i, vinv, cap, vzp, lo, hi), RawV512(x + i + 16, vinv, cap, vzp, lo, hi));
            var b = Vector512.Narrow(RawV512(x + i + 32, vinv, cap, vzp, lo, hi), RawV512(x + i + 48, vinv, cap, vzp, lo, hi));
            Vector512.Narrow(a, b).Store(q + i);
        }
        return i;
    }

    private static int I32V512(float* x, int* q, int n, float inv, int zp)
    {
        var vinv = Vector512.Create(inv); var vzp = Vector512.Create((float)zp);
        var big = Vector512.Create(TwoPow31); var mn = Vector512.Create(int.MinValue);
        int i = 0;
        for (; i <= n - 16; i += 16)
        {
            var v = vzp + Vector512.Round(Vector512.Load(x + i) * vinv);
            var r = Vector512.ConvertToInt32(v);
            r = Vector512.ConditionalSelect(Vector512.Equals(v, v).AsInt32(), r, mn);
            r = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(v, big).AsInt32(), Vector512.Create(int.MaxValue), r);
            r.Store(q + i);
        }
        return i;
    }
}
