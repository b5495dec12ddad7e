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
        KernelPath.Scalar | KernelPath.Vector128 | KernelPath.Vector256 | KernelPath.Vector512 | KernelPath.Avx2 | KernelPath.Avx512;

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

    public static void ReferenceQUInt8(ReadOnlySpan<byte> q, Span<float> y, double scale, long zeroPoint) =>
        ConvertDriver.Scalar<byte, float, DequantizeU8>(new DequantizeU8((float)scale, (int)zeroPoint), q, y);

    public static void ReferenceQInt8(ReadOnlySpan<sbyte> q, Span<float> y, double scale, long zeroPoint) =>
        ConvertDriver.Scalar<sbyte, float, DequantizeS8>(new DequantizeS8((float)scale, (int)zeroPoint), q, y);

    public static void ReferenceQInt32(ReadOnlySpan<int> q, Span<float> y, double scale, long zeroPoint) =>
        ConvertDriver.Scalar<int, float, DequantizeI32>(new DequantizeI32((float)scale, (int)zeroPoint), q, y);

    public static void QUInt8(ReadOnlySpan<byte> q, Span<float> y, double scale, long zeroPoint) =>
        ConvertDriver.Run<byte, float, DequantizeU8>(new DequantizeU8((float)scale, (int)zeroPoint), QUInt8Family, q, y);

    public static void QInt8(ReadOnlySpan<sbyte> q, Span<float> y, double scale, long zeroPoint) =>
        ConvertDriver.Run<sbyte, float, DequantizeS8>(new DequantizeS8((float)scale, (int)zeroPoint), QInt8Family, q, y);

    public static void QInt32(ReadOnlySpan<int> q, Span<float> y, double scale, long zeroPoint) =>
        ConvertDriver.Run<int, float, DequantizeI32>(new DequantizeI32((float)scale, (int)zeroPoint), QInt32Family, q, y);

    /// <summary>Dequantizes on one explicit path (see <see cref="ConvertDriver.RunOnPath"/>); for tests.</summary>
    internal static void OnPath(KernelPath path, ReadOnlySpan<byte> q, Span<float> y, double scale, long zeroPoint) =>
        ConvertDriver.RunOnPath<byte, float, DequantizeU8>(new DequantizeU8((float)scale, (int)zeroPoint), path, q, y);

    internal static void OnPath(KernelPath path, ReadOnlySpan<sbyte> q, Span<float> y, double scale, long zeroPoint) =>
        ConvertDriver.RunOnPath<sbyte, float, DequantizeS8>(new DequantizeS8((float)scale, (int)zeroPoint), path, q, y);

    internal static void OnPath(KernelPath path, ReadOnlySpan<int> q, Span<float> y, double scale, long zeroPoint) =>
        ConvertDriver.RunOnPath<int, float, DequantizeI32>(new DequantizeI32((float)scale, (int)zeroPoint), path, q, y);

    // ------------------------------------------------------------------ operators (one per dtype, every width): y = sf * (float)(q - zp)

    private readonly struct DequantizeU8 : IConvertOperator<byte, float>
    {
        private readonly float sf;
        private readonly int zp;
        // broadcast once per call, not once per block (the loop keeps them in registers)
        private readonly Vector128<float> _s128; private readonly Vector128<int> _z128;
        private readonly Vector256<float> _s256; private readonly Vector256<int> _z256;
        private readonly Vector512<float> _s512; private readonly Vector512<int> _z512;

        public DequantizeU8(float sf, int zp)
        {
            this.sf = sf; this.zp = zp;
            _s128 = Vector128.Create(sf); _z128 = Vector128.Create(zp);
            _s256 = Vector256.Create(sf); _z256 = Vector256.Create(zp);
            _s512 = Vector512.Create(sf); _z512 = Vector512.Create(zp);
        }

        public static int Vector128Block => 16;
        public static int Vector256Block => 32;
        public static int Vector512Block => 64;
        public static int Avx2Block => Avx2.IsSupported ? 8 : 0;
        public static int Avx512Block => Avx512F.IsSupported ? 16 : 0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Invoke(byte q) => ScalarForm(q, sf, zp);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke128(byte* q, float* y)
        {
            var vs = _s128; var vz = _z128;
            var (h0, h1) = Vector128.Widen(Vector128.Load(q));
            var (a, b) = Vector128.Widen(h0); var (c, d) = Vector128.Widen(h1);
            (vs * Vector128.ConvertToSingle(a.AsInt32() - vz)).Store(y);
            (vs * Vector128.ConvertToSingle(b.AsInt32() - vz)).Store(y + 4);
            (vs * Vector128.ConvertToSingle(c.AsInt32() - vz)).Store(y + 8);
            (vs * Vector128.ConvertToSingle(d.AsInt32() - vz)).Store(y + 12);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke256(byte* q, float* y)
        {
            var vs = _s256; var vz = _z256;
            var (h0, h1) = Vector256.Widen(Vector256.Load(q));
            var (a, b) = Vector256.Widen(h0); var (c, d) = Vector256.Widen(h1);
            (vs * Vector256.ConvertToSingle(a.AsInt32() - vz)).Store(y);
            (vs * Vector256.ConvertToSingle(b.AsInt32() - vz)).Store(y + 8);
            (vs * Vector256.ConvertToSingle(c.AsInt32() - vz)).Store(y + 16);
            (vs * Vector256.ConvertToSingle(d.AsInt32() - vz)).Store(y + 24);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke512(byte* q, float* y)
        {
            var vs = _s512; var vz = _z512;
            var (h0, h1) = Vector512.Widen(Vector512.Load(q));
            var (a, b) = Vector512.Widen(h0); var (c, d) = Vector512.Widen(h1);
            (vs * Vector512.ConvertToSingle(a.AsInt32() - vz)).Store(y);
            (vs * Vector512.ConvertToSingle(b.AsInt32() - vz)).Store(y + 16);
            (vs * Vector512.ConvertToSingle(c.AsInt32() - vz)).Store(y + 32);
            (vs * Vector512.ConvertToSingle(d.AsInt32() - vz)).Store(y + 48);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx2(byte* q, float* y) =>
            Avx.Store(y, Avx.Multiply(_s256, Avx.ConvertToVector256Single(Avx2.Subtract(Avx2.ConvertToVector256Int32(q), _z256))));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx512(byte* q, float* y) =>
            Avx512F.Store(y, Avx512F.Multiply(_s512, Avx512F.ConvertToVector512Single(
                Avx512F.Subtract(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(q)), _z512))));
    }

    private readonly struct DequantizeS8 : IConvertOperator<sbyte, float>
    {
        private readonly float sf;
        private readonly int zp;
        // broadcast once per call, not once per block (the loop keeps them in registers)
        private readonly Vector128<float> _s128; private readonly Vector128<int> _z128;
        private readonly Vector256<float> _s256; private readonly Vector256<int> _z256;
        private readonly Vector512<float> _s512; private readonly Vector512<int> _z512;

        public DequantizeS8(float sf, int zp)
        {
            this.sf = sf; this.zp = zp;
            _s128 = Vector128.Create(sf); _z128 = Vector128.Create(zp);
            _s256 = Vector256.Create(sf); _z256 = Vector256.Create(zp);
            _s512 = Vector512.Create(sf); _z512 = Vector512.Create(zp);
        }

        public static int Vector128Block => 16;
        public static int Vector256Block => 32;
        public static int Vector512Block => 64;
        public static int Avx2Block => Avx2.IsSupported ? 8 : 0;
        public static int Avx512Block => Avx512F.IsSupported ? 16 : 0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Invoke(sbyte q) => ScalarForm(q, sf, zp);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke128(sbyte* q, float* y)
        {
            var vs = _s128; var vz = _z128;
            var (h0, h1) = Vector128.Widen(Vector128.Load(q));
            var (a, b) = Vector128.Widen(h0); var (c, d) = Vector128.Widen(h1);
            (vs * Vector128.ConvertToSingle(a - vz)).Store(y);
            (vs * Vector128.ConvertToSingle(b - vz)).Store(y + 4);
            (vs * Vector128.ConvertToSingle(c - vz)).Store(y + 8);
            (vs * Vector128.ConvertToSingle(d - vz)).Store(y + 12);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke256(sbyte* q, float* y)
        {
            var vs = _s256; var vz = _z256;
            var (h0, h1) = Vector256.Widen(Vector256.Load(q));
            var (a, b) = Vector256.Widen(h0); var (c, d) = Vector256.Widen(h1);
            (vs * Vector256.ConvertToSingle(a - vz)).Store(y);
            (vs * Vector256.ConvertToSingle(b - vz)).Store(y + 8);
            (vs * Vector256.ConvertToSingle(c - vz)).Store(y + 16);
            (vs * Vector256.ConvertToSingle(d - vz)).Store(y + 24);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke512(sbyte* q, float* y)
        {
            var vs = _s512; var vz = _z512;
            var (h0, h1) = Vector512.Widen(Vector512.Load(q));
            var (a, b) = Vector512.Widen(h0); var (c, d) = Vector512.Widen(h1);
            (vs * Vector512.ConvertToSingle(a - vz)).Store(y);
            (vs * Vector512.ConvertToSingle(b - vz)).Store(y + 16);
            (vs * Vector512.ConvertToSingle(c - vz)).Store(y + 32);
            (vs * Vector512.ConvertToSingle(d - vz)).Store(y + 48);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx2(sbyte* q, float* y) =>
            Avx.Store(y, Avx.Multiply(_s256, Avx.ConvertToVector256Single(Avx2.Subtract(Avx2.ConvertToVector256Int32(q), _z256))));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx512(sbyte* q, float* y) =>
            Avx512F.Store(y, Avx512F.Multiply(_s512, Avx512F.ConvertToVector512Single(
                Avx512F.Subtract(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(q)), _z512))));
    }

    private readonly struct DequantizeI32 : IConvertOperator<int, float>
    {
        private readonly float sf;
        private readonly int zp;
        // broadcast once per call, not once per block (the loop keeps them in registers)
        private readonly Vector128<float> _s128; private readonly Vector128<int> _z128;
        private readonly Vector256<float> _s256; private readonly Vector256<int> _z256;
        private readonly Vector512<float> _s512; private readonly Vector512<int> _z512;

        public DequantizeI32(float sf, int zp)
        {
            this.sf = sf; this.zp = zp;
            _s128 = Vector128.Create(sf); _z128 = Vector128.Create(zp);
            _s256 = Vector256.Create(sf); _z256 = Vector256.Create(zp);
            _s512 = Vector512.Create(sf); _z512 = Vector512.Create(zp);
        }

        public static int Vector128Block => 4;
        public static int Vector256Block => 8;
        public static int Vector512Block => 16;
        public static int Avx2Block => Avx2.IsSupported ? 8 : 0;
        public static int Avx512Block => Avx512F.IsSupported ? 16 : 0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Invoke(int q) => ScalarForm(q, sf, zp);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke128(int* q, float* y) => (_s128 * Vector128.ConvertToSingle(Vector128.Load(q) - _z128)).Store(y);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke256(int* q, float* y) => (_s256 * Vector256.ConvertToSingle(Vector256.Load(q) - _z256)).Store(y);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke512(int* q, float* y) => (_s512 * Vector512.ConvertToSingle(Vector512.Load(q) - _z512)).Store(y);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx2(int* q, float* y) =>
            Avx.Store(y, Avx.Multiply(_s256, Avx.ConvertToVector256Single(Avx2.Subtract(Avx.LoadVector256(q), _z256))));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx512(int* q, float* y) =>
            Avx512F.Store(y, Avx512F.Multiply(_s512, Avx512F.ConvertToVector512Single(Avx512F.Subtract(Avx512F.LoadVector512(q), _z512))));
    }
}
