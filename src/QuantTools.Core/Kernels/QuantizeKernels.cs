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
        KernelPath.Scalar | KernelPath.Vector128 | KernelPath.Vector256 | KernelPath.Vector512 | KernelPath.Avx2 | KernelPath.Avx512;

    /// <summary><c>f32-qu8-quantize/...</c></summary>
    public static readonly KernelFamily QUInt8Family = new("f32-qu8-quantize", Implemented);
    /// <summary><c>f32-qs8-quantize/...</c></summary>
    public static readonly KernelFamily QInt8Family = new("f32-qs8-quantize", Implemented);
    /// <summary><c>f32-qs32-quantize/...</c></summary>
    public static readonly KernelFamily QInt32Family = new("f32-qs32-quantize", Implemented);

    /// <summary>Inputs at least this long are split across cores (in chunks of <see cref="ParallelChunk"/>).</summary>
    public static int ParallelThreshold { get => ConvertDriver.ParallelThreshold; set => ConvertDriver.ParallelThreshold = value; }
    public const int ParallelChunk = ConvertDriver.ParallelChunk;

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

    public static void ReferenceQUInt8(ReadOnlySpan<float> x, Span<byte> q, double scale, long zeroPoint) =>
        ConvertDriver.Scalar<float, byte, QuantizeU8>(new QuantizeU8(InverseScale(scale), (int)zeroPoint), x, q);

    public static void ReferenceQInt8(ReadOnlySpan<float> x, Span<sbyte> q, double scale, long zeroPoint) =>
        ConvertDriver.Scalar<float, sbyte, QuantizeS8>(new QuantizeS8(InverseScale(scale), (int)zeroPoint), x, q);

    public static void ReferenceQInt32(ReadOnlySpan<float> x, Span<int> q, double scale, long zeroPoint) =>
        ConvertDriver.Scalar<float, int, QuantizeI32>(new QuantizeI32(InverseScale(scale), (int)zeroPoint), x, q);

    // ------------------------------------------------------------------ dispatch

    public static void QUInt8(ReadOnlySpan<float> x, Span<byte> q, double scale, long zeroPoint) =>
        ConvertDriver.Run<float, byte, QuantizeU8>(new QuantizeU8(InverseScale(scale), (int)zeroPoint), QUInt8Family, x, q);

    public static void QInt8(ReadOnlySpan<float> x, Span<sbyte> q, double scale, long zeroPoint) =>
        ConvertDriver.Run<float, sbyte, QuantizeS8>(new QuantizeS8(InverseScale(scale), (int)zeroPoint), QInt8Family, x, q);

    public static void QInt32(ReadOnlySpan<float> x, Span<int> q, double scale, long zeroPoint) =>
        ConvertDriver.Run<float, int, QuantizeI32>(new QuantizeI32(InverseScale(scale), (int)zeroPoint), QInt32Family, x, q);

    internal static void CheckLengths(int a, int b) => ConvertDriver.CheckLengths(a, b);

    /// <summary>Quantizes on one explicit path (see <see cref="ConvertDriver.RunOnPath"/>); for tests.</summary>
    internal static void OnPath(KernelPath path, ReadOnlySpan<float> x, Span<byte> q, double scale, long zeroPoint) =>
        ConvertDriver.RunOnPath<float, byte, QuantizeU8>(new QuantizeU8(InverseScale(scale), (int)zeroPoint), path, x, q);

    internal static void OnPath(KernelPath path, ReadOnlySpan<float> x, Span<sbyte> q, double scale, long zeroPoint) =>
        ConvertDriver.RunOnPath<float, sbyte, QuantizeS8>(new QuantizeS8(InverseScale(scale), (int)zeroPoint), path, x, q);

    internal static void OnPath(KernelPath path, ReadOnlySpan<float> x, Span<int> q, double scale, long zeroPoint) =>
        ConvertDriver.RunOnPath<float, int, QuantizeI32>(new QuantizeI32(InverseScale(scale), (int)zeroPoint), path, x, q);

    // ------------------------------------------------------------------ operators (one per dtype, every width)

    /// <summary>float32 → quint8, vector form (<see cref="VectorFormRaw"/> clamped to 0..255).</summary>
    private readonly struct QuantizeU8 : IConvertOperator<float, byte>
    {
        private readonly float inv;
        private readonly int zp;
        // broadcast once per call, not once per block (the loop keeps them in registers)
        private readonly Vector128<float> _inv128; private readonly Vector128<float> _cap128; private readonly Vector128<int> _zp128; private readonly Vector128<float> _zpf128;
        private readonly Vector256<float> _inv256; private readonly Vector256<float> _cap256; private readonly Vector256<int> _zp256; private readonly Vector256<float> _zpf256;
        private readonly Vector512<float> _inv512; private readonly Vector512<float> _cap512; private readonly Vector512<int> _zp512; private readonly Vector512<float> _zpf512;

        public QuantizeU8(float inv, int zp)
        {
            this.inv = inv; this.zp = zp;
            _inv128 = Vector128.Create(inv); _cap128 = Vector128.Create(VectorCap); _zp128 = Vector128.Create(zp); _zpf128 = Vector128.Create((float)zp);
            _inv256 = Vector256.Create(inv); _cap256 = Vector256.Create(VectorCap); _zp256 = Vector256.Create(zp); _zpf256 = Vector256.Create((float)zp);
            _inv512 = Vector512.Create(inv); _cap512 = Vector512.Create(VectorCap); _zp512 = Vector512.Create(zp); _zpf512 = Vector512.Create((float)zp);
        }

        public static int Vector128Block => 16;
        public static int Vector256Block => 32;
        public static int Vector512Block => 64;
        public static int Avx2Block => Avx2.IsSupported ? 32 : 0;
        public static int Avx512Block => Avx512BW.IsSupported ? 64 : 0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public byte Invoke(float x) => (byte)Math.Clamp(VectorFormRaw(x, inv, zp), 0, 255);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke128(float* x, byte* q)
        {
            var vinv = _inv128; var cap = _cap128; var vzp = _zp128;
            var lo = Vector128<int>.Zero; var hi = U8Max128;
            var a = Vector128.Narrow(RawV128(x, vinv, cap, vzp, lo, hi).AsUInt32(), RawV128(x + 4, vinv, cap, vzp, lo, hi).AsUInt32());
            var b = Vector128.Narrow(RawV128(x + 8, vinv, cap, vzp, lo, hi).AsUInt32(), RawV128(x + 12, vinv, cap, vzp, lo, hi).AsUInt32());
            Vector128.Narrow(a, b).Store(q);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke256(float* x, byte* q)
        {
            var vinv = _inv256; var cap = _cap256; var vzp = _zp256;
            var lo = Vector256<int>.Zero; var hi = U8Max256;
            var a = Vector256.Narrow(RawV256(x, vinv, cap, vzp, lo, hi).AsUInt32(), RawV256(x + 8, vinv, cap, vzp, lo, hi).AsUInt32());
            var b = Vector256.Narrow(RawV256(x + 16, vinv, cap, vzp, lo, hi).AsUInt32(), RawV256(x + 24, vinv, cap, vzp, lo, hi).AsUInt32());
            Vector256.Narrow(a, b).Store(q);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke512(float* x, byte* q)
        {
            var vinv = _inv512; var cap = _cap512; var vzp = _zp512;
            var lo = Vector512<int>.Zero; var hi = U8Max512;
            var a = Vector512.Narrow(RawV512(x, vinv, cap, vzp, lo, hi).AsUInt32(), RawV512(x + 16, vinv, cap, vzp, lo, hi).AsUInt32());
            var b = Vector512.Narrow(RawV512(x + 32, vinv, cap, vzp, lo, hi).AsUInt32(), RawV512(x + 48, vinv, cap, vzp, lo, hi).AsUInt32());
            Vector512.Narrow(a, b).Store(q);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx2(float* x, byte* q)
        {
            var vinv = _inv256; var cap = _cap256; var vzp = _zp256;
            var r0 = RawAvx2(x, vinv, cap, vzp);
            var r1 = RawAvx2(x + 8, vinv, cap, vzp);
            var r2 = RawAvx2(x + 16, vinv, cap, vzp);
            var r3 = RawAvx2(x + 24, vinv, cap, vzp);
            var b = Avx2.PackUnsignedSaturate(Avx2.PackSignedSaturate(r0, r1), Avx2.PackSignedSaturate(r2, r3));
            Avx.Store(q, Avx2.PermuteVar8x32(b.AsInt32(), PackOrder256).AsByte());
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx512(float* x, byte* q)
        {
            var vinv = _inv512; var cap = _cap512; var vzp = _zp512;
            var r0 = RawAvx512(x, vinv, cap, vzp);
            var r1 = RawAvx512(x + 16, vinv, cap, vzp);
            var r2 = RawAvx512(x + 32, vinv, cap, vzp);
            var r3 = RawAvx512(x + 48, vinv, cap, vzp);
            var s01 = Avx512BW.PackSignedSaturate(r0, r1);
            var s23 = Avx512BW.PackSignedSaturate(r2, r3);
            var b = Avx512BW.PackUnsignedSaturate(s01, s23);
            Avx512F.Store(q, Avx512F.PermuteVar16x32(b.AsInt32(), PackOrder512).AsByte());
        }
    }

    /// <summary>float32 → qint8, vector form clamped to -128..127.</summary>
    private readonly struct QuantizeS8 : IConvertOperator<float, sbyte>
    {
        private readonly float inv;
        private readonly int zp;
        // broadcast once per call, not once per block (the loop keeps them in registers)
        private readonly Vector128<float> _inv128; private readonly Vector128<float> _cap128; private readonly Vector128<int> _zp128; private readonly Vector128<float> _zpf128;
        private readonly Vector256<float> _inv256; private readonly Vector256<float> _cap256; private readonly Vector256<int> _zp256; private readonly Vector256<float> _zpf256;
        private readonly Vector512<float> _inv512; private readonly Vector512<float> _cap512; private readonly Vector512<int> _zp512; private readonly Vector512<float> _zpf512;

        public QuantizeS8(float inv, int zp)
        {
            this.inv = inv; this.zp = zp;
            _inv128 = Vector128.Create(inv); _cap128 = Vector128.Create(VectorCap); _zp128 = Vector128.Create(zp); _zpf128 = Vector128.Create((float)zp);
            _inv256 = Vector256.Create(inv); _cap256 = Vector256.Create(VectorCap); _zp256 = Vector256.Create(zp); _zpf256 = Vector256.Create((float)zp);
            _inv512 = Vector512.Create(inv); _cap512 = Vector512.Create(VectorCap); _zp512 = Vector512.Create(zp); _zpf512 = Vector512.Create((float)zp);
        }

        public static int Vector128Block => 16;
        public static int Vector256Block => 32;
        public static int Vector512Block => 64;
        public static int Avx2Block => Avx2.IsSupported ? 32 : 0;
        public static int Avx512Block => Avx512BW.IsSupported ? 64 : 0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public sbyte Invoke(float x) => (sbyte)Math.Clamp(VectorFormRaw(x, inv, zp), -128, 127);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke128(float* x, sbyte* q)
        {
            var vinv = _inv128; var cap = _cap128; var vzp = _zp128;
            var lo = S8Min128; var hi = S8Max128;
            var a = Vector128.Narrow(RawV128(x, vinv, cap, vzp, lo, hi), RawV128(x + 4, vinv, cap, vzp, lo, hi));
            var b = Vector128.Narrow(RawV128(x + 8, vinv, cap, vzp, lo, hi), RawV128(x + 12, vinv, cap, vzp, lo, hi));
            Vector128.Narrow(a, b).Store(q);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke256(float* x, sbyte* q)
        {
            var vinv = _inv256; var cap = _cap256; var vzp = _zp256;
            var lo = S8Min256; var hi = S8Max256;
            var a = Vector256.Narrow(RawV256(x, vinv, cap, vzp, lo, hi), RawV256(x + 8, vinv, cap, vzp, lo, hi));
            var b = Vector256.Narrow(RawV256(x + 16, vinv, cap, vzp, lo, hi), RawV256(x + 24, vinv, cap, vzp, lo, hi));
            Vector256.Narrow(a, b).Store(q);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke512(float* x, sbyte* q)
        {
            var vinv = _inv512; var cap = _cap512; var vzp = _zp512;
            var lo = S8Min512; var hi = S8Max512;
            var a = Vector512.Narrow(RawV512(x, vinv, cap, vzp, lo, hi), RawV512(x + 16, vinv, cap, vzp, lo, hi));
            var b = Vector512.Narrow(RawV512(x + 32, vinv, cap, vzp, lo, hi), RawV512(x + 48, vinv, cap, vzp, lo, hi));
            Vector512.Narrow(a, b).Store(q);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx2(float* x, sbyte* q)
        {
            var vinv = _inv256; var cap = _cap256; var vzp = _zp256;
            var r0 = RawAvx2(x, vinv, cap, vzp);
            var r1 = RawAvx2(x + 8, vinv, cap, vzp);
            var r2 = RawAvx2(x + 16, vinv, cap, vzp);
            var r3 = RawAvx2(x + 24, vinv, cap, vzp);
            var b = Avx2.PackSignedSaturate(Avx2.PackSignedSaturate(r0, r1), Avx2.PackSignedSaturate(r2, r3));
            Avx.Store(q, Avx2.PermuteVar8x32(b.AsInt32(), PackOrder256).AsSByte());
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx512(float* x, sbyte* q)
        {
            var vinv = _inv512; var cap = _cap512; var vzp = _zp512;
            var r0 = RawAvx512(x, vinv, cap, vzp);
            var r1 = RawAvx512(x + 16, vinv, cap, vzp);
            var r2 = RawAvx512(x + 32, vinv, cap, vzp);
            var r3 = RawAvx512(x + 48, vinv, cap, vzp);
            var s01 = Avx512BW.PackSignedSaturate(r0, r1);
            var s23 = Avx512BW.PackSignedSaturate(r2, r3);
            var b = Avx512BW.PackSignedSaturate(s01, s23);
            Avx512F.Store(q, Avx512F.PermuteVar16x32(b.AsInt32(), PackOrder512).AsSByte());
        }
    }

    /// <summary>float32 → qint32, scalar form (<see cref="QInt32Scalar"/>) on every path.</summary>
    private readonly struct QuantizeI32 : IConvertOperator<float, int>
    {
        private readonly float inv;
        private readonly int zp;
        // broadcast once per call, not once per block (the loop keeps them in registers)
        private readonly Vector128<float> _inv128; private readonly Vector128<float> _cap128; private readonly Vector128<int> _zp128; private readonly Vector128<float> _zpf128;
        private readonly Vector256<float> _inv256; private readonly Vector256<float> _cap256; private readonly Vector256<int> _zp256; private readonly Vector256<float> _zpf256;
        private readonly Vector512<float> _inv512; private readonly Vector512<float> _cap512; private readonly Vector512<int> _zp512; private readonly Vector512<float> _zpf512;

        public QuantizeI32(float inv, int zp)
        {
            this.inv = inv; this.zp = zp;
            _inv128 = Vector128.Create(inv); _cap128 = Vector128.Create(VectorCap); _zp128 = Vector128.Create(zp); _zpf128 = Vector128.Create((float)zp);
            _inv256 = Vector256.Create(inv); _cap256 = Vector256.Create(VectorCap); _zp256 = Vector256.Create(zp); _zpf256 = Vector256.Create((float)zp);
            _inv512 = Vector512.Create(inv); _cap512 = Vector512.Create(VectorCap); _zp512 = Vector512.Create(zp); _zpf512 = Vector512.Create((float)zp);
        }

        public static int Vector128Block => 4;
        public static int Vector256Block => 8;
        public static int Vector512Block => 16;
        public static int Avx2Block => Avx2.IsSupported ? 8 : 0;
        public static int Avx512Block => Avx512F.IsSupported ? 16 : 0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Invoke(float x) => QInt32Scalar(x, inv, zp);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke128(float* x, int* q)
        {
            var v = _zpf128 + Vector128.Round(Vector128.Load(x) * _inv128);
            var r = Vector128.ConvertToInt32(v);                                                 // saturating, NaN -> 0
            r = Vector128.ConditionalSelect(Vector128.Equals(v, v).AsInt32(), r, Vector128.Create(int.MinValue)); // NaN -> INT32_MIN
            r = Vector128.ConditionalSelect(Vector128.GreaterThanOrEqual(v, Big128).AsInt32(), Vector128.Create(int.MaxValue), r);
            r.Store(q);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke256(float* x, int* q)
        {
            var v = _zpf256 + Vector256.Round(Vector256.Load(x) * _inv256);
            var r = Vector256.ConvertToInt32(v);
            r = Vector256.ConditionalSelect(Vector256.Equals(v, v).AsInt32(), r, Vector256.Create(int.MinValue));
            r = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(v, Big256).AsInt32(), Vector256.Create(int.MaxValue), r);
            r.Store(q);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Invoke512(float* x, int* q)
        {
            var v = _zpf512 + Vector512.Round(Vector512.Load(x) * _inv512);
            var r = Vector512.ConvertToInt32(v);
            r = Vector512.ConditionalSelect(Vector512.Equals(v, v).AsInt32(), r, Vector512.Create(int.MinValue));
            r = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(v, Big512).AsInt32(), Vector512.Create(int.MaxValue), r);
            r.Store(q);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx2(float* x, int* q)
        {
            var t = Avx.Multiply(Avx.LoadVector256(x), _inv256);
            var v = Avx.Add(_zpf256, Avx.RoundToNearestInteger(t));
            var r = Avx.ConvertToVector256Int32(v);
            var over = Avx.CompareGreaterThanOrEqual(v, Big256).AsInt32();
            Avx.Store(q, Avx2.Xor(r, over));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void InvokeAvx512(float* x, int* q)
        {
            var t = Avx512F.Multiply(Avx512F.LoadVector512(x), _inv512);
            var v = Avx512F.Add(_zpf512, Avx512F.RoundScale(t, 0x08)); // rne, suppress exceptions
            var r = Avx512F.ConvertToVector512Int32(v);              // v is integral; overflow/NaN -> INT32_MIN
            var over = Avx512F.CompareGreaterThanOrEqual(v, Big512).AsInt32();
            Avx512F.Store(q, Avx512F.Xor(r, over));                  // INT32_MIN ^ ~0 = INT32_MAX
        }
    }

    // ------------------------------------------------------------------ shared vector steps

    private static Vector128<float> Big128 => Vector128.Create(TwoPow31);
    private static Vector256<float> Big256 => Vector256.Create(TwoPow31);
    private static Vector512<float> Big512 => Vector512.Create(TwoPow31);
    private static Vector128<int> U8Max128 => Vector128.Create(255);
    private static Vector256<int> U8Max256 => Vector256.Create(255);
    private static Vector512<int> U8Max512 => Vector512.Create(255);
    private static Vector128<int> S8Min128 => Vector128.Create(-128);
    private static Vector256<int> S8Min256 => Vector256.Create(-128);
    private static Vector512<int> S8Min512 => Vector512.Create(-128);
    private static Vector128<int> S8Max128 => Vector128.Create(127);
    private static Vector256<int> S8Max256 => Vector256.Create(127);
    private static Vector512<int> S8Max512 => Vector512.Create(127);

    // After packs/packus within 128-bit lanes, dword k of the result holds source vector k%4's lane k/4.
    private static readonly Vector512<int> PackOrder512 = Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    private static readonly Vector256<int> PackOrder256 = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> RawAvx512(float* p, Vector512<float> inv, Vector512<float> cap, Vector512<int> zp)
    {
        var t = Avx512F.Multiply(Avx512F.LoadVector512(p), inv);
        t = Avx512F.Min(t, cap);                          // vminps: NaN -> second operand (cap)
        return Avx512F.Add(Avx512F.ConvertToVector512Int32(t), zp); // cvtps2dq (rne), int32 wraparound add
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> RawAvx2(float* p, Vector256<float> inv, Vector256<float> cap, Vector256<int> zp)
    {
        var t = Avx.Multiply(Avx.LoadVector256(p), inv);
        t = Avx.Min(t, cap);
        return Avx2.Add(Avx.ConvertToVector256Int32(t), zp);
    }

    // portable: minps semantics (NaN -> cap), rne, saturating convert (< -2^31 -> INT32_MIN), + zp, clamp to [lo, hi]
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> RawV128(float* p, Vector128<float> inv, Vector128<float> cap, Vector128<int> zp,
        Vector128<int> lo, Vector128<int> hi)
    {
        var t = Vector128.Load(p) * inv;
        t = Vector128.ConditionalSelect(Vector128.LessThan(t, cap), t, cap);
        var r = Vector128.ConvertToInt32(Vector128.Round(t));
        return Vector128.Min(Vector128.Max(r + zp, lo), hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> RawV256(float* p, Vector256<float> inv, Vector256<float> cap, Vector256<int> zp,
        Vector256<int> lo, Vector256<int> hi)
    {
        var t = Vector256.Load(p) * inv;
        t = Vector256.ConditionalSelect(Vector256.LessThan(t, cap), t, cap);
        var r = Vector256.ConvertToInt32(Vector256.Round(t));
        return Vector256.Min(Vector256.Max(r + zp, lo), hi);
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
}
