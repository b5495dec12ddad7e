using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels.Requantization;

/// <summary>
/// Requantization of int32 conv / linear accumulators <c>raw = Σ (a − a_zp)(w − w_zp)</c> to quint8, per backend.
/// Built per call from the input scale and the output qparams (O(out channels)); <see cref="Apply"/> is the scalar
/// formula every fast path must match.
/// <list type="bullet">
/// <item>FBGEMM (numerics.md 5.1): <c>s_aw = f32(s_in·s_w[n])</c>, <c>M = f32(s_aw / s_out)</c>, bias kept float:
/// <c>β = f32(b·f32(1/s_aw))</c> for per-tensor weights, <c>f32(b / s_aw)</c> per channel;
/// <c>y = sat(rne(f32(f32(raw + β)·M)) + zp)</c>.</item>
/// <item>QNNPACK (5.2): <c>qb = rne(b·f32(1/s_aw))</c> int32, <c>R = f32(s_aw·f32(1/s_out))</c>,
/// <c>y = sat(rne(f32((raw + qb)·R)) + zp)</c>.</item>
/// <item>oneDNN (derived from the golden data, numerics are not documented): the FBGEMM float formula with the division
/// form of β. On all 85 oneDNN-routed conv / linear cases of seeds 0, 2, 3 (154 926 outputs) the data cannot tell it
/// apart from <c>((raw·s_aw) + b)·f32(1/s_out)</c>, <c>((raw·s_aw) + b) / s_out</c>, the reciprocal form of β, or adding
/// the zero point in float before rounding; an FMA-contracted <c>fma(raw, M, β·M)</c> is refuted (one depthwise element
/// off by one in seed 2/3). The exact (non-saturating) accumulator matches every oneDNN depthwise case.</item>
/// </list>
/// Rounding is <c>cvtps2dq</c> (rne; NaN and |x| ≥ 2^31 give INT32_MIN), then saturating packs: int32 → int16,
/// + zp with int16 saturation, → uint8, then the ReLU floor (<c>zp</c>) — what the AVX2 epilogues do.
/// </summary>
public sealed class OutputStage
{
    public QBackend Backend { get; }
    /// <summary>Per output channel: FBGEMM/oneDNN <c>M</c>, QNNPACK <c>R</c>.</summary>
    public float[] Multiplier { get; }
    /// <summary>Per output channel float bias in accumulator units (FBGEMM/oneDNN β); null without bias.</summary>
    public float[]? Beta { get; }
    /// <summary>Per output channel int32 bias (QNNPACK); null otherwise or without bias.</summary>
    public int[]? QBias { get; }
    public int ZeroPoint { get; }
    public int Low { get; }
    public int High { get; } = 255;

    public OutputStage(QBackend backend, double inScale, float[] weightScales, float[]? bias, double outScale, long outZeroPoint,
        bool relu, bool perChannelWeights)
    {
        if (!(outScale > 0) || double.IsInfinity(outScale))
            throw new QuantToolsException(ErrorCode.InvalidQParams, $"output scale must be positive and finite, got {outScale}");
        if (outZeroPoint is < 0 or > 255)
            throw new QuantToolsException(ErrorCode.InvalidQParams, $"quint8 output zero point must be in 0..255, got {outZeroPoint}");
        Backend = backend;
        ZeroPoint = (int)outZeroPoint;
        Low = relu ? ZeroPoint : 0;
        int n = weightScales.Length;
        float sIn = (float)inScale, sOut = (float)outScale;
        Multiplier = new float[n];
        if (backend == QBackend.Qnnpack)
        {
            float invOut = 1f / sOut;
            if (bias is not null) QBias = new int[n];
            for (int i = 0; i < n; i++)
            {
                float saw = weightScales[i] * sIn;
                Multiplier[i] = saw * invOut;
                if (QBias is not null) QBias[i] = QuantizeBias(bias![i], saw);
            }
            return;
        }
        if (bias is not null) Beta = new float[n];
        for (int i = 0; i < n; i++)
        {
            float saw = sIn * weightScales[i];
            Multiplier[i] = saw / sOut;
            if (Beta is null) continue;
            bool divide = perChannelWeights || backend.IsOnednn();
            Beta[i] = divide ? bias![i] / saw : bias![i] * (float)(1.0 / saw);
        }
    }

    /// <summary>qint32 quantization of the bias with scale s_aw, zero point 0 (scalar form, clamped in double).</summary>
    private static int QuantizeBias(float b, float saw)
    {
        float inv = 1f / saw;
        float v = MathF.Round(b * inv);
        if (float.IsNaN(v)) return int.MinValue;
        if (v >= 2147483648f) return int.MaxValue;
        if (v <= -2147483648f) return int.MinValue;
        return (int)v;
    }

    /// <summary>x86 <c>cvtps2dq</c>: round half to even; NaN and out-of-range give INT32_MIN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Cvtps2dq(float v) => v is >= -2147483648f and < 2147483648f ? (int)MathF.Round(v) : int.MinValue;

    /// <summary>Saturating int32 → int16, + zp (int16 saturating), → uint8, then [low, high].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Saturate(int r, int zp, int low, int high)
    {
        int s = Math.Clamp(r, short.MinValue, short.MaxValue);
        s = Math.Clamp(s + zp, short.MinValue, short.MaxValue);
        return Math.Clamp(s, low, high);
    }

    /// <summary>The output integer for accumulator <paramref name="raw"/> of output channel <paramref name="n"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte Apply(int raw, int n)
    {
        float v;
        if (Backend == QBackend.Qnnpack)
        {
            int acc = QBias is null ? raw : unchecked(raw + QBias[n]);
            v = acc * Multiplier[n];
        }
        else
        {
            float f = raw;
            if (Beta is not null) f += Beta[n];
            v = f * Multiplier[n];
        }
        return (byte)Saturate(Cvtps2dq(v), ZeroPoint, Low, High);
    }

    public const KernelPath Implemented = KernelPath.Scalar | KernelPath.Avx2 | KernelPath.Avx512;

    /// <summary>int32 accumulators to quint8: <c>qs32-qu8-requant/{scalar, avx2, avx512}</c>.</summary>
    public static readonly KernelFamily Family = new("qs32-qu8-requant", Implemented);

    /// <summary>Requantizes <paramref name="raw"/> (all of one output channel <paramref name="n"/>) into <paramref name="y"/>.</summary>
    public void ApplyChannel(ReadOnlySpan<int> raw, Span<byte> y, int n) => ApplyChannel(raw, y, n, Family.Resolve());

    public unsafe void ApplyChannel(ReadOnlySpan<int> raw, Span<byte> y, int n, KernelPath path)
    {
        bool q = Backend == QBackend.Qnnpack;
        float m = Multiplier[n];
        float beta = q || Beta is null ? 0f : Beta[n];
        int add = q && QBias is not null ? QBias[n] : 0;
        int i = 0;
        fixed (int* r = raw)
        fixed (byte* o = y)
        {
            if (path == KernelPath.Avx512)
            {
                var vm = Vector512.Create(m); var vb = Vector512.Create(beta); var va = Vector512.Create(add);
                for (; i + 16 <= raw.Length; i += 16)
                    Finish512(Vector512.Load(r + i), va, vb, vm, q).Store(o + i);
            }
            else if (path == KernelPath.Avx2)
            {
                var vm = Vector256.Create(m); var vb = Vector256.Create(beta); var va = Vector256.Create(add);
                for (; i + 8 <= raw.Length; i += 8)
                    *(ulong*)(o + i) = Finish256(Vector256.Load(r + i), va, vb, vm, q);
            }
        }
        for (; i < raw.Length; i++) y[i] = Apply(raw[i], n);
    }

    /// <summary>Requantizes one row of a linear output: element j belongs to output channel j.</summary>
    public unsafe void ApplyRow(ReadOnlySpan<int> raw, Span<byte> y, KernelPath path)
    {
        bool q = Backend == QBackend.Qnnpack;
        int i = 0;
        fixed (int* r = raw)
        fixed (byte* o = y)
        fixed (float* m = Multiplier)
        fixed (float* b = Beta)
        fixed (int* qb = QBias)
        {
            if (path == KernelPath.Avx512)
            {
                for (; i + 16 <= raw.Length; i += 16)
                {
                    var va = q && qb != null ? Vector512.Load(qb + i) : Vector512<int>.Zero;
                    var vb = !q && b != null ? Vector512.Load(b + i) : Vector512<float>.Zero;
                    Finish512(Vector512.Load(r + i), va, vb, Vector512.Load(m + i), q).Store(o + i);
                }
            }
            else if (path == KernelPath.Avx2)
            {
                for (; i + 8 <= raw.Length; i += 8)
                {
                    var va = q && qb != null ? Vector256.Load(qb + i) : Vector256<int>.Zero;
                    var vb = !q && b != null ? Vector256.Load(b + i) : Vector256<float>.Zero;
                    *(ulong*)(o + i) = Finish256(Vector256.Load(r + i), va, vb, Vector256.Load(m + i), q);
                }
            }
        }
        for (; i < raw.Length; i++) y[i] = Apply(raw[i], i);
    }

    // v = qnnpack ? (float)(raw + qb) * R : ((float)raw + β) * M ; r = cvtps2dq(v) ; y = clamp(clamp16(r) + zp, low, 255)
    // (adding 0f for a missing bias is exact, so one code path serves both)
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Vector128<byte> Finish512(Vector512<int> raw, Vector512<int> qb, Vector512<float> beta, Vector512<float> m, bool qnnpack)
    {
        Vector512<float> f = qnnpack ? Avx512F.ConvertToVector512Single(raw + qb) : Avx512F.ConvertToVector512Single(raw) + beta;
        var r = Avx512F.ConvertToVector512Int32(f * m);
        r = Vector512.Max(Vector512.Min(r, Vector512.Create(32767)), Vector512.Create(-32768)) + Vector512.Create(ZeroPoint);
        r = Vector512.Max(Vector512.Min(r, Vector512.Create(High)), Vector512.Create(Low));
        return Avx512F.ConvertToVector128Byte(r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Finish256(Vector256<int> raw, Vector256<int> qb, Vector256<float> beta, Vector256<float> m, bool qnnpack)
    {
        Vector256<float> f = qnnpack ? Avx.ConvertToVector256Single(raw + qb) : Avx.ConvertToVector256Single(raw) + beta;
        var r = Avx.ConvertToVector256Int32(f * m);
        r = Vector256.Max(Vector256.Min(r, Vector256.Create(32767)), Vector256.Create(-32768)) + Vector256.Create(ZeroPoint);
        r = Vector256.Max(Vector256.Min(r, Vector256.Create(High)), Vector256.Create(Low));
        var s = Vector256.Narrow(r, r);
        return Vector256.Narrow(s, s).AsUInt64().GetElement(0);
    }
}
