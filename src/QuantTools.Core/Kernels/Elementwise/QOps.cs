using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Elementwise;

/// <summary>
/// Shared arithmetic of PyTorch's quantized element-wise kernels (numerics.md section 0 and 5.4), bit for bit:
/// the two dequantize forms, the two quantize forms, and ATen's vector/scalar split.
/// <para>8-bit integers are handled as raw bytes plus a signedness flag (quint8: 0..255, qint8: -128..127), so one
/// kernel serves both types without generic dispatch.</para>
/// </summary>
public static class QOps
{
    /// <summary>
    /// Bytes in ATen's <c>Vectorized&lt;quint8&gt;</c> on the CPU class of the current run (<see cref="CpuClasses.Current"/>):
    /// 64 on AVX-512 (the golden data's host), 32 on AVX2.
    /// </summary>
    public static int AtenVectorBytes => CpuClasses.Current.AtenVectorBytes();

    /// <summary>
    /// <c>cpu_kernel_vec</c> runs blocks of <c>2 * Vectorized&lt;quint8&gt;::size()</c> elements through the SIMD lambda
    /// and the tail through the scalar lambda: 128 on AVX-512, 64 on AVX2.
    /// </summary>
    public static int VectorBlock => 2 * AtenVectorBytes;

    /// <summary>How many leading elements of an <paramref name="n"/>-element contiguous run take the vector lambda.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int VectorPrefix(int n) => n - n % VectorBlock;

    /// <summary>Scalar dequantize (<c>at::native::dequantize_val</c>): <c>f32(sf * (float)(q - zp))</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float DqScalar(int q, float sf, int zp) => sf * (float)(q - zp);

    /// <summary>Vector dequantize (<c>Vectorized&lt;quint8&gt;::dequantize(scale, zp, premul)</c>): <c>fma(sf, (float)q, premul)</c>, <c>premul = f32(sf * -(float)zp)</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float DqFma(int q, float sf, float premul) => MathF.FusedMultiplyAdd(sf, q, premul);

    /// <summary>The premultiplied term of <see cref="DqFma"/>.</summary>
    public static float Premul(float sf, int zp) => sf * -(float)zp;

    /// <summary>
    /// Scalar quantize (<c>at::native::quantize_val</c> = FBGEMM <c>Quantize&lt;T,false&gt;</c>):
    /// <c>v = f32((float)zp + rne(f32(x * inv)))</c>, clamped in double; NaN gives INT32_MIN (low byte 0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int QuantizeScalar(float x, float inv, int zp, int qmin, int qmax)
    {
        float v = (float)zp + MathF.Round(x * inv);
        if (float.IsNaN(v)) return 0;
        if (v <= qmin) return qmin;
        if (v >= qmax) return qmax;
        return (int)v;
    }

    /// <summary>Vector quantize (<c>QuantizeAvx512</c>): <c>rne(min(x*inv, 2^31-128)) + zp</c> with int32 wraparound, then clamp.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int QuantizeVector(float x, float inv, int zp, int qmin, int qmax) =>
        Math.Clamp(QuantizeKernels.VectorFormRaw(x, inv, zp), qmin, qmax);

    /// <summary>C <c>lrintf</c> (x86-64): round half to even; NaN / out of range give INT64_MIN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Lrintf(float v) =>
        v is >= -9.223372E+18f and < 9.223372E+18f ? (long)MathF.Round(v) : long.MinValue;

    /// <summary><c>requantize_from_int</c>: <c>clamp(zp + lrintf(f32((float)c * m)))</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int RequantizeFromInt(long c, float m, int zp, int qmin, int qmax)
    {
        long r = zp + Lrintf((float)c * m);
        return (int)Math.Clamp(r, qmin, qmax);
    }

    // ------------------------------------------------------------------ tensor plumbing

    public static bool IsSigned(DType d) => d switch
    {
        DType.QUInt8 => false,
        DType.QInt8 => true,
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType,
            $"this quantized kernel supports quint8 and qint8, got {d.TorchName()}"),
    };

    public static (int Min, int Max) Range(DType d) => IsSigned(d) ? (-128, 127) : (0, 255);

    /// <summary>The integers of an 8-bit quantized tensor as raw bytes (two's complement for qint8).</summary>
    public static ReadOnlySpan<byte> Bytes(QTensor q)
    {
        IsSigned(q.DType);
        return q.IntRepr.DType == DType.Int8 ? MemoryMarshal.AsBytes(q.IntRepr.AsSpan<sbyte>()) : q.IntRepr.AsSpan<byte>();
    }

    /// <summary>A new 8-bit quantized tensor (zeros) and its bytes to fill.</summary>
    public static QTensor NewPerTensor(DType dtype, int[] shape, double scale, long zeroPoint, out Span<byte> bytes)
    {
        var signed = IsSigned(dtype);
        var t = Tensor.Zeros(signed ? DType.Int8 : DType.UInt8, shape);
        bytes = signed ? MemoryMarshal.AsBytes(t.AsSpan<sbyte>()) : t.AsSpan<byte>();
        return new QTensor(t, QParams.PerTensor(scale, zeroPoint, dtype));
    }

    /// <summary>
    /// A new 8-bit quantized output tensor that the caller overwrites completely. Allocated zeroed on purpose: for these
    /// large-object-heap outputs <see cref="GC.AllocateUninitializedArray{T}"/> measured slower in the benchmark on the
    /// project's machine (relu 1x64x112x112: 0.44-0.92 ms vs 0.20-0.24 ms), the first write then paying the page faults.
    /// Callers that run often should use the span overloads with a reused buffer instead.
    /// </summary>
    public static QTensor NewOutput(DType dtype, int[] shape, double scale, long zeroPoint, out Span<byte> bytes)
    {
        var signed = IsSigned(dtype);
        int n = checked((int)Tensor.CheckedNumel(shape));
        Tensor t;
        if (signed)
        {
            var data = new sbyte[n];
            t = new Tensor(DType.Int8, shape, data);
            bytes = MemoryMarshal.AsBytes(data.AsSpan());
        }
        else
        {
            var data = new byte[n];
            t = new Tensor(DType.UInt8, shape, data);
            bytes = data;
        }
        return new QTensor(t, QParams.PerTensor(scale, zeroPoint, dtype));
    }

    /// <summary><see cref="NewOutput"/> with the qparams of <paramref name="x"/>.</summary>
    public static QTensor NewLikeOutput(QTensor x, int[] shape, out Span<byte> bytes) =>
        NewOutput(x.DType, shape, x.QParams.Scale, x.QParams.ZeroPoint, out bytes);

    /// <summary>The writable bytes of an 8-bit quantized tensor (a caller-provided output).</summary>
    public static Span<byte> MutableBytes(QTensor q)
    {
        IsSigned(q.DType);
        return q.IntRepr.DType == DType.Int8 ? MemoryMarshal.AsBytes(q.IntRepr.AsSpan<sbyte>()) : q.IntRepr.AsSpan<byte>();
    }

    /// <summary>Checks that a caller-provided output span has exactly <paramref name="n"/> bytes.</summary>
    public static void RequireOutput(Span<byte> output, long n, string op)
    {
        if (output.Length != n)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"{op}: the output holds {output.Length} bytes, {n} are needed");
    }

    public static QTensor NewLike(QTensor x, int[] shape, out Span<byte> bytes) =>
        NewPerTensor(x.DType, shape, x.QParams.Scale, x.QParams.ZeroPoint, out bytes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Get(ReadOnlySpan<byte> b, int i, bool signed) => signed ? (sbyte)b[i] : b[i];

    public static void RequirePerTensor(QTensor q, string op)
    {
        if (q.QParams.IsPerChannel)
            throw new QuantToolsException(ErrorCode.NotSupported, $"{op} takes per-tensor quantized inputs, got {q.QParams.QScheme.TorchName()}");
        IsSigned(q.DType);
    }

    public static void RequireRank(QTensor q, int rank, string op)
    {
        if (q.Shape.Length != rank)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"{op} expects a {rank}-d input, got [{string.Join(", ", q.Shape)}]");
    }
}
