using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using QuantTools.Core.Kernels.Elementwise;

namespace QuantTools.Core.Kernels.Pooling;

/// <summary>
/// Pooling loops over NCHW planes. Max and average pooling have a Scalar reference (the window loop per output, as
/// ATen writes it) and SIMD paths (Vector128 / Vector256 / Vector512) that reduce the kH input rows of each output row
/// vertically with vector max / widening adds, then finish each window horizontally; integer reductions are exact,
/// and the requantization is the reference's scalar formula, so every path gives the reference's integers.
/// </summary>
public static partial class PoolKernels
{
    public const KernelPath Implemented = KernelPath.Scalar | KernelPath.Vector128 | KernelPath.Vector256 | KernelPath.Vector512 | KernelPath.Avx512;

    /// <summary><c>qu8-maxpool2d/...</c>: max pooling over NCHW planes (AVX-512 where the row fits, else the vector path).</summary>
    public static readonly KernelFamily MaxPoolFamily = new("qu8-maxpool2d", Implemented);

    /// <summary><c>qu8-avgpool2d/...</c>: ATen's NCHW average pooling (<c>avg_pool2d_out_frame</c>).</summary>
    public static readonly KernelFamily AvgPoolFamily = new("qu8-avgpool2d", Implemented);

    /// <summary><c>qu8-avgpool2d-nhwc/{scalar, avx512}</c>: ATen's channels_last average pooling.</summary>
    public static readonly KernelFamily AvgPoolNhwcFamily = new("qu8-avgpool2d-nhwc", KernelPath.Avx512);

    /// <summary>
    /// Channels per vector block in ATen's NHWC average-pool kernels (<c>Vectorized&lt;quint8&gt;::size()/4</c>): 16 on
    /// AVX-512, 8 on AVX2 (<see cref="CpuClasses.Current"/>); the channels after the last whole block take the scalar form.
    /// </summary>
    public static int NhwcVectorChannels => QOps.AtenVectorBytes / 4;

    public readonly record struct Geometry(int Planes, int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW);

    // ------------------------------------------------------------------ max

    public static void MaxPool(ReadOnlySpan<byte> src, Span<byte> dst, bool signed, int planes, int h, int w, int oh, int ow,
        int kH, int kW, int sH, int sW, int pH, int pW)
    {
        var path = MaxPoolFamily.Resolve();
        if (path == KernelPath.Avx512 && MaxPoolAvx512Fits(w, kW, sW))
        {
            MaxPoolAvx512(src, dst, signed, planes, h, w, oh, ow, kH, kW, sH, sW, pH, pW);
            return;
        }
        if (path == KernelPath.Avx512) path = KernelPath.Vector512;
        if (path == KernelPath.Scalar || w > 8192) { MaxPoolReference(src, dst, signed, planes, h, w, oh, ow, kH, kW, sH, sW, pH, pW); return; }
        Span<byte> row = stackalloc byte[w];
        for (int p = 0; p < planes; p++)
        {
            var plane = src.Slice(p * h * w, h * w);
            for (int oy = 0; oy < oh; oy++)
            {
                int hs = oy * sH - pH, he = Math.Min(hs + kH, h);
                hs = Math.Max(hs, 0);
                plane.Slice(hs * w, w).CopyTo(row);
                for (int iy = hs + 1; iy < he; iy++) VerticalMax(row, plane.Slice(iy * w, w), signed, path);
                for (int ox = 0; ox < ow; ox++)
                {
                    int ws = ox * sW - pW, we = Math.Min(ws + kW, w);
                    ws = Math.Max(ws, 0);
                    int m = signed ? sbyte.MinValue : 0;
                    for (int ix = ws; ix < we; ix++) m = Math.Max(m, QOps.Get(row, ix, signed));
                    dst[(p * oh + oy) * ow + ox] = (byte)m;
                }
            }
        }
    }

    public static void MaxPoolReference(ReadOnlySpan<byte> src, Span<byte> dst, bool signed, int planes, int h, int w, int oh, int ow,
        int kH, int kW, int sH, int sW, int pH, int pW)
    {
        for (int p = 0; p < planes; p++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    int hs = oy * sH - pH, ws = ox * sW - pW;
                    int he = Math.Min(hs + kH, h), we = Math.Min(ws + kW, w);
                    hs = Math.Max(hs, 0); ws = Math.Max(ws, 0);
                    int m = signed ? sbyte.MinValue : 0;
                    for (int iy = hs; iy < he; iy++)
                        for (int ix = ws; ix < we; ix++)
                            m = Math.Max(m, QOps.Get(src, (p * h + iy) * w + ix, signed));
                    dst[(p * oh + oy) * ow + ox] = (byte)m;
                }
    }

    private static void VerticalMax(Span<byte> acc, ReadOnlySpan<byte> row, bool signed, KernelPath path)
    {
        int i = 0, n = acc.Length;
        if (signed)
        {
            var a = MemoryMarshal.Cast<byte, sbyte>(acc);
            var r = MemoryMarshal.Cast<byte, sbyte>(row);
            if (path == KernelPath.Vector512)
                for (; i + 64 <= n; i += 64) Vector512.Max(Vector512.Create(a.Slice(i, 64)), Vector512.Create(r.Slice(i, 64))).CopyTo(a.Slice(i, 64));
            if (path >= KernelPath.Vector256)
                for (; i + 32 <= n; i += 32) Vector256.Max(Vector256.Create(a.Slice(i, 32)), Vector256.Create(r.Slice(i, 32))).CopyTo(a.Slice(i, 32));
            for (; i + 16 <= n; i += 16) Vector128.Max(Vector128.Create(a.Slice(i, 16)), Vector128.Create(r.Slice(i, 16))).CopyTo(a.Slice(i, 16));
            for (; i < n; i++) a[i] = Math.Max(a[i], r[i]);
        }
        else
        {
            if (path == KernelPath.Vector512)
                for (; i + 64 <= n; i += 64) Vector512.Max(Vector512.Create(acc.Slice(i, 64)), Vector512.Create(row.Slice(i, 64))).CopyTo(acc.Slice(i, 64));
            if (path >= KernelPath.Vector256)
                for (; i + 32 <= n; i += 32) Vector256.Max(Vector256.Create(acc.Slice(i, 32)), Vector256.Create(row.Slice(i, 32))).CopyTo(acc.Slice(i, 32));
            for (; i + 16 <= n; i += 16) Vector128.Max(Vector128.Create(acc.Slice(i, 16)), Vector128.Create(row.Slice(i, 16))).CopyTo(acc.Slice(i, 16));
            for (; i < n; i++) acc[i] = Math.Max(acc[i], row[i]);
        }
    }

    // ------------------------------------------------------------------ average, NCHW (avg_pool2d_out_frame)

    /// <summary>
    /// ATen <c>avg_pool2d_out_frame</c>: per output, <c>sum = Σq - size*zp_in</c> over in-bounds taps,
    /// <c>m = f32(scaleFactor / div)</c>, <c>y = clamp(rne(f32(f32((float)sum * m) + zo)))</c> — the zero point is added in
    /// float before rounding. <paramref name="scaleFactor"/> is <c>s_in / s_out</c> in double.
    /// </summary>
    public static void AvgPoolNchw(ReadOnlySpan<byte> src, Span<byte> dst, bool signed, Geometry g, int zpIn, int zpOut,
        double scaleFactor, bool countIncludePad, int? divisorOverride)
    {
        var path = AvgPoolFamily.Resolve();
        var (qmin, qmax) = signed ? (-128, 127) : (0, 255);
        if (path == KernelPath.Avx512 && AvgPoolAvx512Fits(g) && float.IsFinite((float)scaleFactor))
        {
            AvgPoolAvx512(src, dst, signed, g, zpIn, zpOut,
                (pool, size) => (float)(scaleFactor / (divisorOverride ?? (countIncludePad ? pool : size))), null, _ => AvgMode.Frame);
            return;
        }
        if (path == KernelPath.Avx512) path = KernelPath.Vector512;
        if (path == KernelPath.Scalar || g.W > 4096)
        {
            for (int p = 0; p < g.Planes; p++)
                for (int oy = 0; oy < g.OH; oy++)
                    for (int ox = 0; ox < g.OW; ox++)
                    {
                        var (hs, he, ws, we, poolSize) = Window(g, oy, ox);
                        int sum = 0;
                        for (int iy = hs; iy < he; iy++)
                            for (int ix = ws; ix < we; ix++)
                                sum += QOps.Get(src, (p * g.H + iy) * g.W + ix, signed);
                        dst[(p * g.OH + oy) * g.OW + ox] = (byte)AvgNchwOut(sum, (he - hs) * (we - ws), poolSize, zpIn, zpOut, scaleFactor, countIncludePad, divisorOverride, qmin, qmax);
                    }
            return;
        }
        Span<int> row = stackalloc int[g.W];
        for (int p = 0; p < g.Planes; p++)
        {
            var plane = src.Slice(p * g.H * g.W, g.H * g.W);
            for (int oy = 0; oy < g.OH; oy++)
            {
                var (hs, he, _, _, _) = Window(g, oy, 0);
                row.Clear();
                for (int iy = hs; iy < he; iy++) VerticalSum(row, plane.Slice(iy * g.W, g.W), signed, path);
                for (int ox = 0; ox < g.OW; ox++)
                {
                    var (_, _, ws, we, poolSize) = Window(g, oy, ox);
                    int sum = 0;
                    for (int ix = ws; ix < we; ix++) sum += row[ix];
                    dst[(p * g.OH + oy) * g.OW + ox] = (byte)AvgNchwOut(sum, (he - hs) * (we - ws), poolSize, zpIn, zpOut, scaleFactor, countIncludePad, divisorOverride, qmin, qmax);
                }
            }
        }
    }

    private static (int Hs, int He, int Ws, int We, int PoolSize) Window(Geometry g, int oy, int ox)
    {
        int hs = oy * g.SH - g.PH, ws = ox * g.SW - g.PW;
        int he = Math.Min(hs + g.KH, g.H + g.PH), we = Math.Min(ws + g.KW, g.W + g.PW);
        int poolSize = (he - hs) * (we - ws);
        hs = Math.Max(hs, 0); ws = Math.Max(ws, 0);
        he = Math.Min(he, g.H); we = Math.Min(we, g.W);
        return (hs, he, ws, we, poolSize);
    }

    private static int AvgNchwOut(int sum, int size, int poolSize, int zpIn, int zpOut, double scaleFactor, bool countIncludePad, int? divisorOverride, int qmin, int qmax)
    {
        int div = divisorOverride ?? (countIncludePad ? poolSize : size);
        float m = (float)(scaleFactor / div);
        sum -= size * zpIn;
        float v = (float)sum * m + (float)zpOut;
        return Math.Clamp((int)MathF.Round(v), qmin, qmax);
    }

    private static void VerticalSum(Span<int> acc, ReadOnlySpan<byte> row, bool signed, KernelPath path)
    {
        int i = 0, n = acc.Length;
        ref int ra = ref MemoryMarshal.GetReference(acc);
        if (path >= KernelPath.Vector256)
        {
            for (; i + 16 <= n; i += 16)
            {
                Vector256<short> wide = signed
                    ? Vector256.WidenLower(Vector256.Create(Vector128.Create(MemoryMarshal.Cast<byte, sbyte>(row.Slice(i, 16))), Vector128<sbyte>.Zero))
                    : Vector256.WidenLower(Vector256.Create(Vector128.Create(row.Slice(i, 16)), Vector128<byte>.Zero)).AsInt16();
                var (lo, hi) = Vector256.Widen(wide);
                (Vector256.LoadUnsafe(ref ra, (nuint)i) + lo).StoreUnsafe(ref ra, (nuint)i);
                (Vector256.LoadUnsafe(ref ra, (nuint)(i + 8)) + hi).StoreUnsafe(ref ra, (nuint)(i + 8));
            }
        }
        for (; i + 4 <= n; i += 4)
        {
            var v = signed
                ? Vector128.Create((int)(sbyte)row[i], (sbyte)row[i + 1], (sbyte)row[i + 2], (sbyte)row[i + 3])
                : Vector128.Create((int)row[i], row[i + 1], row[i + 2], row[i + 3]);
            (Vector128.LoadUnsafe(ref ra, (nuint)i) + v).StoreUnsafe(ref ra, (nuint)i);
        }
        for (; i < n; i++) acc[i] += QOps.Get(row, i, signed);
    }

    // ------------------------------------------------------------------ average, qnnpack

    /// <summary>
    /// QNNPACK q8avgpool: every window has kH*kW taps, padded taps read the input zero point;
    /// <c>acc = Σ(q - zp_in)</c>, <c>y = clamp(rne(f32((float)acc * r)) + zo, 0, 255)</c>.
    /// </summary>
    public static void AvgPoolQnnpack(ReadOnlySpan<byte> src, Span<byte> dst, Geometry g, int zpIn, int zpOut, float r)
    {
        for (int p = 0; p < g.Planes; p++)
            for (int oy = 0; oy < g.OH; oy++)
                for (int ox = 0; ox < g.OW; ox++)
                {
                    int acc = -zpIn * g.KH * g.KW;
                    for (int ky = 0; ky < g.KH; ky++)
                        for (int kx = 0; kx < g.KW; kx++)
                        {
                            int iy = oy * g.SH - g.PH + ky, ix = ox * g.SW - g.PW + kx;
                            acc += iy >= 0 && iy < g.H && ix >= 0 && ix < g.W ? src[(p * g.H + iy) * g.W + ix] : zpIn;
                        }
                    dst[(p * g.OH + oy) * g.OW + ox] = (byte)Math.Clamp((int)MathF.Round((float)acc * r) + zpOut, 0, 255);
                }
    }

    // ------------------------------------------------------------------ average, channels_last (qavg_pool2d_nhwc)

    /// <summary>
    /// One output of ATen's NHWC average pool: <c>acc = Σq - zp_in*size</c> (int32), <c>m = f32(f32(f32(s_in)/f32(s_out))/div)</c>;
    /// channels below <c>C / 16 * 16</c> go through QuantizeAvx512 (<c>zo + rne(f32((float)acc*m))</c>), the rest through
    /// <c>quantize_val(1/m)</c> (<c>zo + rne(f32((float)acc * f32(1/f32(1/m))))</c>).
    /// </summary>
    public static int AvgPoolNhwcElement(int acc, float m, int channel, int channels, int zpOut, int qmin, int qmax)
    {
        int v = NhwcVectorChannels;
        if (channel < channels / v * v)
            return QOps.QuantizeVector(acc, m, zpOut, qmin, qmax);
        float scale = 1.0f / m;
        return QOps.QuantizeScalar(acc, 1.0f / scale, zpOut, qmin, qmax);
    }

    public static void AvgPoolNhwc(ReadOnlySpan<byte> src, Span<byte> dst, bool signed, int batch, int channels, Geometry g,
        int zpIn, int zpOut, float scaleRatio, bool countIncludePad, int? divisorOverride)
    {
        if (AvgPoolNhwcFamily.Resolve() == KernelPath.Avx512 && AvgPoolAvx512Fits(g) && float.IsFinite(scaleRatio) && channels > 0)
        {
            int vecC = channels / NhwcVectorChannels * NhwcVectorChannels;
            AvgPoolAvx512(src, dst, signed, g, zpIn, zpOut,
                (pool, size) => scaleRatio / (divisorOverride ?? (countIncludePad ? pool : size)),
                m => 1.0f / (1.0f / m),
                p => p % channels < vecC ? AvgMode.NhwcVector : AvgMode.NhwcScalar);
            return;
        }
        AvgPoolNhwcReference(src, dst, signed, batch, channels, g, zpIn, zpOut, scaleRatio, countIncludePad, divisorOverride);
    }

    /// <summary>The readable reference of <see cref="AvgPoolNhwc"/> (one window per output).</summary>
    public static void AvgPoolNhwcReference(ReadOnlySpan<byte> src, Span<byte> dst, bool signed, int batch, int channels, Geometry g,
        int zpIn, int zpOut, float scaleRatio, bool countIncludePad, int? divisorOverride)
    {
        var (qmin, qmax) = signed ? (-128, 127) : (0, 255);
        for (int b = 0; b < batch; b++)
            for (int c = 0; c < channels; c++)
            {
                int p = b * channels + c;
                for (int oy = 0; oy < g.OH; oy++)
                    for (int ox = 0; ox < g.OW; ox++)
                    {
                        var (hs, he, ws, we, poolSize) = Window(g, oy, ox);
                        int size = (he - hs) * (we - ws);
                        int div = divisorOverride ?? (countIncludePad ? poolSize : size);
                        float m = scaleRatio / div;
                        int acc = -zpIn * size;
                        for (int iy = hs; iy < he; iy++)
                            for (int ix = ws; ix < we; ix++)
                                acc += QOps.Get(src, (p * g.H + iy) * g.W + ix, signed);
                        dst[(p * g.OH + oy) * g.OW + ox] = (byte)AvgPoolNhwcElement(acc, m, c, channels, zpOut, qmin, qmax);
                    }
            }
    }

    // ------------------------------------------------------------------ adaptive average, NCHW

    /// <summary>
    /// ATen's NCHW adaptive average pool: window <c>[floor(f32(o*I)/O), ceil(f32((o+1)*I)/O))</c>,
    /// <c>y = rne(f32((float)Σq * r))</c> with <c>r = f32(f32(1/kH)/kW)</c>.
    /// </summary>
    public static void AdaptiveAvgNchw(ReadOnlySpan<byte> src, Span<byte> dst, bool signed, int planes, int h, int w, int oh, int ow)
    {
        for (int p = 0; p < planes; p++)
            for (int oy = 0; oy < oh; oy++)
            {
                int hs = (int)MathF.Floor((float)(oy * h) / oh), he = (int)MathF.Ceiling((float)((oy + 1) * h) / oh);
                for (int ox = 0; ox < ow; ox++)
                {
                    int ws = (int)MathF.Floor((float)(ox * w) / ow), we = (int)MathF.Ceiling((float)((ox + 1) * w) / ow);
                    int kh = he - hs, kw = we - ws;
                    float r = (float)(1.0 / kh) / kw;
                    long sum = 0;
                    for (int iy = hs; iy < he; iy++)
                        for (int ix = ws; ix < we; ix++)
                            sum += QOps.Get(src, (p * h + iy) * w + ix, signed);
                    dst[(p * oh + oy) * ow + ox] = (byte)(int)MathF.Round((float)sum * r);
                }
            }
    }
}
