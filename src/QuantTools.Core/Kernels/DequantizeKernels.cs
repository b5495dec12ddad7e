using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels;

/// <summary>
/// Per-tensor dequantize kernels, quint8 / qint8 / qint32 -> float32, in the scalar form PyTorch's
/// <c>q.dequantize()</c> uses: <c>y = f32(sf * (float)(q - zp))</c> with <c>sf = f32(scale)</c>; the subtraction is
/// done in int32 (wraparound for qint32, numerics.md point 2). See <see cref="Quantization.Quantizer"/> for the
/// golden-data evidence that the scalar (not the FMA vector) form is the one to reproduce.
/// <see cref="FmaForm"/> gives the vectorized-op form <c>fma(sf, (float)q, f32(sf * (float)-zp))</c> for callers
/// that must reproduce ATen's <c>Vectorized&lt;T&gt;::dequantize</c> inside quantized ops.
/// </summary>
public static unsafe class DequantizeKernels
{
    public const KernelPath Implemented =
        KernelPath.Scalar | KernelPath.Vector256 | KernelPath.Vector512 | KernelPath.Avx2 | KernelPath.Avx512;

    /// <summary><c>qu8-f32-dequantize/...</c></summary>
    public static readonly KernelFamily QUInt8Family = new("qu8-f32-dequantize", Implemented);
    /// <summary><c>qs8-f32-dequantize/...</c></summary>
    public static readonly KernelFamily QInt8Family = new("qs8-f32-dequantize", Implemented);
    /// <summary><c>qs32-f32-dequantize/...</c></summary>
    public static readonly KernelFamily QInt32Family = new("qs32-f32-dequantize", Implemented);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ScalarForm(int q, float sf, int zp) => sf * (float)unchecked(q - zp);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FmaForm(int q, float sf, int zp) => MathF.FusedMultiplyAdd(sf, (float)q, sf * (float)unchecked(-zp));

    public static void ReferenceQUInt8(ReadOnlySpan<byte> q, Span<float> y, double scale, long zeroPoint)
    {
        float sf = (float)scale; int zp = (int)zeroPoint;
        for (int i = 0; i < q.Length; i++) y[i] = ScalarForm(q[i], sf, zp);
    }

    public static void ReferenceQInt8(ReadOnlySpan<sbyte> q, Span<float> y, double scale, long zeroPoint)
    {
        float sf = (float)scale; int zp = (int)zeroPoint;
        for (int i = 0; i < q.Length; i++) y[i] = ScalarForm(q[i], sf, zp);
    }

    public static void ReferenceQInt32(ReadOnlySpan<int> q, Span<float> y, double scale, long zeroPoint)
    {
        float sf = (float)scale; int zp = (int)zeroPoint;
        for (int i = 0; i < q.Length; i++) y[i] = ScalarForm(q[i], sf, zp);
    }

    public static void QUInt8(ReadOnlySpan<byte> q, Span<float> y, double scale, long zeroPoint)
    {
        QuantizeKernels.CheckLengths(q.Length, y.Length);
        var path = QUInt8Family.Resolve();
        if (path == KernelPath.Scalar) { ReferenceQUInt8(q, y, scale, zeroPoint); return; }
        float sf = (float)scale; int zp = (int)zeroPoint;
        fixed (byte* pq = q)
        fixed (float* py = y)
        {
            nint sq = (nint)pq, sy = (nint)py;
            Parallelism.ForRanges(q.Length, QuantizeKernels.ParallelThreshold, QuantizeKernels.ParallelChunk,
                (b, e) => RunU8(path, (byte*)sq + b, (float*)sy + b, e - b, sf, zp));
        }
    }

    public static void QInt8(ReadOnlySpan<sbyte> q, Span<float> y, double scale, long zeroPoint)
    {
        QuantizeKernels.CheckLengths(q.Length, y.Length);
        var path = QInt8Family.Resolve();
        if (path == KernelPath.Scalar) { ReferenceQInt8(q, y, scale, zeroPoint); return; }
        float sf = (float)scale; int zp = (int)zeroPoint;
        fixed (sbyte* pq = q)
        fixed (float* py = y)
        {
            nint sq = (nint)pq, sy = (nint)py;
            Parallelism.ForRanges(q.Length, QuantizeKernels.ParallelThreshold, QuantizeKernels.ParallelChunk,
                (b, e) => RunS8(path, (sbyte*)sq + b, (float*)sy + b, e - b, sf, zp));
        }
    }

    public static void QInt32(ReadOnlySpan<int> q, Span<float> y, double scale, long zeroPoint)
    {
        QuantizeKernels.CheckLengths(q.Length, y.Length);
        var path = QInt32Family.Resolve();
        if (path == KernelPath.Scalar) { ReferenceQInt32(q, y, scale, zeroPoint); return; }
        float sf = (float)scale; int zp = (int)zeroPoint;
        fixed (int* pq = q)
        fixed (float* py = y)
        {
            nint sq = (nint)pq, sy = (nint)py;
            Parallelism.ForRanges(q.Length, QuantizeKernels.ParallelThreshold, QuantizeKernels.ParallelChunk,
                (b, e) => RunI32(path, (int*)sq + b, (float*)sy + b, e - b, sf, zp));
        }
    }

    private static void RunU8(KernelPath path, byte* q, float* y, int n, float sf, int zp)
    {
        int i = 0;
        if (path is KernelPath.Avx512 && Avx512F.IsSupported)
        {
            var vs = Vector512.Create(sf); var vz = Vector512.Create(zp);
            for (; i <= n - 16; i += 16)
                Avx512F.Store(y + i, Avx512F.Multiply(vs, Avx512F.ConvertToVector512Single(
                    Avx512F.Subtract(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(q + i)), vz))));
        }
        else if (path is KernelPath.Avx2 && Avx2.IsSupported)
        {
            var vs = Vector256.Create(sf); var vz = Vector256.Create(zp);
            for (; i <= n - 8; i += 8)
                Avx.Store(y + i, Avx.Multiply(vs, Avx.ConvertToVector256Single(Avx2.Subtract(Avx2.ConvertToVector256Int32(q + i), vz))));
        }
        else if (path is KernelPath.Vector512)
        {
            var vs = Vector512.Create(sf); var vz = Vector512.Create(zp);
            for (; i <= n - 64; i += 64)
            {
                var (h0, h1) = Vector512.Widen(Vector512.Load(q + i));
                var (a, b) = Vector512.Widen(h0); var (c, d) = Vector512.Widen(h1);
                (vs * Vector512.ConvertToSingle(a.AsInt32() - vz)).Store(y + i);
                (vs * Vector512.ConvertToSingle(b.AsInt32() - vz)).Store(y + i + 16);
                (vs * Vector512.ConvertToSingle(c.AsInt32() - vz)).Store(y + i + 32);
                (vs * Vector512.ConvertToSingle(d.AsInt32() - vz)).Store(y + i + 48);
            }
        }
        else if (path is KernelPath.Vector256)
        {
            var vs = Vector256.Create(sf); var vz = Vector256.Create(zp);
            for (; i <= n - 32; i += 32)
            {
                var (h0, h1) = Vector256.Widen(Vector256.Load(q + i));
                var (a, b) = Vector256.Widen(h0); var (c, d) = Vector256.Widen(h1);
                (vs * Vector256.ConvertToSingle(a.AsInt32() - vz)).Store(y + i);
                (vs * Vector256.ConvertToSingle(b.AsInt32() - vz)).Store(y + i + 8);
                (vs * Vector256.ConvertToSingle(c.AsInt32() - vz)).Store(y + i + 16);
                (vs * Vector256.ConvertToSingle(d.AsInt32() - vz)).Store(y + i + 24);
            }
        }
        for (; i < n; i++) y[i] = ScalarForm(q[i], sf, zp);
    }

    private static void RunS8(KernelPath path, sbyte* q, float* y, int n, float sf, int zp)
    {
        int i = 0;
        if (path is KernelPath.Avx512 && Avx512F.IsSupported)
        {
            var vs = Vector512.Create(sf); var vz = Vector512.Create(zp);
            for (; i <= n - 16; i += 16)
                Avx512F.Store(y + i, Avx512F.Multiply(vs, Avx512F.ConvertToVector512Single(
                    Avx512F.Subtract(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(q + i)), vz))));
        }
        else if (path is KernelPath.Avx2 && Avx2.IsSupported)
        {
            var vs = Vector256.Create(sf); var vz = Vector256.Create(zp);
            for (; i <= n - 8; i += 8)
                Avx.Store(y + i, Avx.Multiply(vs, Avx.ConvertToVector256Single(Avx2.Subtract(Avx2.ConvertToVector256Int32(q + i), vz))));
        }
        else if (path is KernelPath.Vector512)
        {
            var vs = Vector512.Create(sf); var vz = Vector512.Create(zp);
            for (; i <= n - 64; i += 64)
            {
                var (h0, h1) = Vector512.Widen(Vector512.Load(q + i));
                var (a, b) = Vector512.Widen(h0); var (c, d) = Vector512.Widen(h1);
                (vs * Vector512.ConvertToSingle(a - vz)).Store(y + i);
                (vs * Vector512.ConvertToSingle(b - vz)).Store(y + i + 16);
                (vs * Vector512.ConvertToSingle(c - vz)).Store(y + i + 32);
                (vs * Vector512.ConvertToSingle(d - vz)).Store(y + i + 48);
            }
        }
        else if (path is KernelPath.Vector256)
        {
            var vs = Vector256.Create(sf); var vz = Vector256.Create(zp);
            for (; i <= n - 32; i += 32)
            {
                var (h0, h1) = Vector256.Widen(Vector256.Load(q + i));
                var (a, b) = Vector256.Widen(h0); var (c, d) = Vector256.Widen(h1);
                (vs * Vector256.ConvertToSingle(a - vz)).Store(y + i);
                (vs * Vector256.ConvertToSingle(b - vz)).Store(y + i + 8);
                (vs * Vector256.ConvertToSingle(c - vz)).Store(y + i + 16);
                (vs * Vector256.ConvertToSingle(d - vz)).Store(y + i + 24);
            }
        }
        for (; i < n; i++) y[i] = ScalarForm(q[i], sf, zp);
    }

    private static void RunI32(KernelPath path, int* q, float* y, int n, float sf, int zp)
    {
        int i = 0;
        if (path is KernelPath.Avx512 && Avx512F.IsSupported)
        {
            var vs = Vector512.Create(sf); var vz = Vector512.Create(zp);
            for (; i <= n - 16; i += 16)
                Avx512F.Store(y + i, Avx512F.Multiply(vs, Avx512F.ConvertToVector512Single(Avx512F.Subtract(Avx512F.LoadVector512(q + i), vz))));
        }
        else if (path is KernelPath.Avx2 && Avx2.IsSupported)
        {
            var vs = Vector256.Create(sf); var vz = Vector256.Create(zp);
            for (; i <= n - 8; i += 8)
                Avx.Store(y + i, Avx.Multiply(vs, Avx.ConvertToVector256Single(Avx2.Subtract(Avx.LoadVector256(q + i), vz))));
        }
        else if (path is KernelPath.Vector512)
        {
            var vs = Vector512.Create(sf); var vz = Vector512.Create(zp);
            for (; i <= n - 16; i += 16)
                (vs * Vector512.ConvertToSingle(Vector512.Load(q + i) - vz)).Store(y + i);
        }
        else if (path is KernelPath.Vector256)
        {
            var vs = Vector256.Create(sf); var vz = Vector256.Create(zp);
            for (; i <= n - 8; i += 8)
                (vs * Vector256.ConvertToSingle(Vector256.Load(q + i) - vz)).Store(y + i);
        }
        for (; i < n; i++) y[i] = ScalarForm(q[i], sf, zp);
    }
}
