using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Pooling;

/// <summary>
/// Quantized pooling, bit for bit as PyTorch 2.11 per engine (numerics.md 5.5). Inputs are 4-d NCHW tensors (our
/// tensors are always NCHW in memory); where PyTorch's rounding depends on the memory format it had (a channels_last
/// input, e.g. the output of an fbgemm conv), the caller says so with <c>channelsLast</c>.
/// Output qparams equal the input's.
/// </summary>
public static class QPool
{
    /// <summary>ATen <c>pooling_output_shape</c> (dilation 1).</summary>
    public static int OutputSize(int input, int kernel, int pad, int stride, bool ceilMode)
    {
        long num = (long)input + 2L * pad - (kernel - 1) - 1 + (ceilMode ? stride - 1 : 0);
        long o = FloorDiv(num, stride) + 1;
        if (ceilMode && (o - 1) * stride >= input + pad) o--;
        if (o < 1)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"pooling: input size {input} is too small for kernel {kernel}, padding {pad}, stride {stride}");
        return (int)o;
    }

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);

    private static void Check2d(QTensor x, int kH, int kW, int sH, int sW, int pH, int pW, string op)
    {
        QOps.RequirePerTensor(x, op);
        QOps.RequireRank(x, 4, op);
        if (kH <= 0 || kW <= 0 || sH <= 0 || sW <= 0)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"{op}: kernel and stride must be positive");
        if (pH < 0 || pW < 0 || pH * 2 > kH || pW * 2 > kW)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"{op}: padding must be at most half the kernel size");
    }

    // ------------------------------------------------------------------ max pool

    /// <summary>
    /// max_pool2d: the integer maximum over the in-bounds taps (padding never wins); the same on every engine
    /// (qnnpack's u8maxpool gives the same integers).
    /// </summary>
    public static QTensor MaxPool2d(QTensor x, int kH, int kW, int sH, int sW, int pH, int pW, bool ceilMode, QEngine engine)
    {
        var shape = MaxPool2dShape(x, kH, kW, sH, sW, pH, pW, ceilMode);
        var y = QOps.NewLikeOutput(x, shape, out var dst);
        MaxPool2dCore(x, shape, kH, kW, sH, sW, pH, pW, dst);
        return y;
    }

    /// <summary>
    /// <see cref="MaxPool2d(QTensor, int, int, int, int, int, int, bool, QEngine)"/> into a caller's output
    /// (<paramref name="output"/>: the integers of the [N, C, OH, OW] result as bytes; qparams = the input's).
    /// </summary>
    public static void MaxPool2d(QTensor x, int kH, int kW, int sH, int sW, int pH, int pW, bool ceilMode, QEngine engine, Span<byte> output)
    {
        _ = engine;
        var shape = MaxPool2dShape(x, kH, kW, sH, sW, pH, pW, ceilMode);
        QOps.RequireOutput(output, (long)shape[0] * shape[1] * shape[2] * shape[3], "max_pool2d");
        MaxPool2dCore(x, shape, kH, kW, sH, sW, pH, pW, output);
    }

    /// <summary>The output shape of max_pool2d / avg_pool2d for input <paramref name="x"/> (after checking the arguments).</summary>
    public static int[] MaxPool2dShape(QTensor x, int kH, int kW, int sH, int sW, int pH, int pW, bool ceilMode)
    {
        Check2d(x, kH, kW, sH, sW, pH, pW, "max_pool2d");
        int h = x.Shape[2], w = x.Shape[3];
        return [x.Shape[0], x.Shape[1], OutputSize(h, kH, pH, sH, ceilMode), OutputSize(w, kW, pW, sW, ceilMode)];
    }

    private static void MaxPool2dCore(QTensor x, int[] shape, int kH, int kW, int sH, int sW, int pH, int pW, Span<byte> dst) =>
        PoolKernels.MaxPool(QOps.Bytes(x), dst, QOps.IsSigned(x.DType), shape[0] * shape[1], x.Shape[2], x.Shape[3], shape[2], shape[3],
            kH, kW, sH, sW, pH, pW);

    // ------------------------------------------------------------------ average pool

    /// <summary>
    /// avg_pool2d. qnnpack engine with quint8 and no ceil_mode (PT: AveragePool2d.cpp -> <c>qnnpack_avg_pool2d</c>):
    /// always divides by kH*kW, padded taps count as the zero point, multiplier <c>f32(s_in / f32(s_out*kH*kW))</c>.
    /// Otherwise NCHW (<c>avg_pool2d_out_frame</c>): <c>y = rne(f32(f32((float)sum * m) + zo))</c>,
    /// <c>m = f32((s_in/s_out) / div)</c>; channels_last (<c>qavg_pool2d_nhwc</c>): see <see cref="PoolKernels.AvgPoolNhwcElement"/>.
    /// </summary>
    public static QTensor AvgPool2d(QTensor x, int kH, int kW, int sH, int sW, int pH, int pW, bool ceilMode,
        bool countIncludePad, int? divisorOverride, QEngine engine, bool channelsLast = false)
    {
        var shape = AvgPool2dShape(x, kH, kW, sH, sW, pH, pW, ceilMode, divisorOverride);
        var y = QOps.NewLikeOutput(x, shape, out var dst);
        AvgPool2dCore(x, shape, kH, kW, sH, sW, pH, pW, ceilMode, countIncludePad, divisorOverride, engine, channelsLast, dst);
        return y;
    }

    /// <summary>
    /// <see cref="AvgPool2d(QTensor, int, int, int, int, int, int, bool, bool, int?, QEngine, bool)"/> into a caller's output
    /// (<paramref name="output"/>: the integers of the [N, C, OH, OW] result as bytes; qparams = the input's).
    /// </summary>
    public static void AvgPool2d(QTensor x, int kH, int kW, int sH, int sW, int pH, int pW, bool ceilMode,
        bool countIncludePad, int? divisorOverride, QEngine engine, bool channelsLast, Span<byte> output)
    {
        var shape = AvgPool2dShape(x, kH, kW, sH, sW, pH, pW, ceilMode, divisorOverride);
        QOps.RequireOutput(output, (long)shape[0] * shape[1] * shape[2] * shape[3], "avg_pool2d");
        AvgPool2dCore(x, shape, kH, kW, sH, sW, pH, pW, ceilMode, countIncludePad, divisorOverride, engine, channelsLast, output);
    }

    /// <summary>The output shape of avg_pool2d for input <paramref name="x"/> (after checking the arguments).</summary>
    public static int[] AvgPool2dShape(QTensor x, int kH, int kW, int sH, int sW, int pH, int pW, bool ceilMode, int? divisorOverride)
    {
        Check2d(x, kH, kW, sH, sW, pH, pW, "avg_pool2d");
        if (divisorOverride is <= 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "avg_pool2d: divisor_override must be positive");
        int h = x.Shape[2], w = x.Shape[3];
        return [x.Shape[0], x.Shape[1], OutputSize(h, kH, pH, sH, ceilMode), OutputSize(w, kW, pW, sW, ceilMode)];
    }

    private static void AvgPool2dCore(QTensor x, int[] shape, int kH, int kW, int sH, int sW, int pH, int pW, bool ceilMode,
        bool countIncludePad, int? divisorOverride, QEngine engine, bool channelsLast, Span<byte> dst)
    {
        int n = shape[0], c = shape[1], oh = shape[2], ow = shape[3], h = x.Shape[2], w = x.Shape[3];
        var src = QOps.Bytes(x);
        bool signed = QOps.IsSigned(x.DType);
        var g = new PoolKernels.Geometry(n * c, h, w, oh, ow, kH, kW, sH, sW, pH, pW);
        int zp = (int)x.QParams.ZeroPoint;
        if (engine == QEngine.Qnnpack && x.DType == DType.QUInt8 && !ceilMode)
        {
            float r = (float)x.QParams.Scale / ((float)x.QParams.Scale * (kH * kW));
            PoolKernels.AvgPoolQnnpack(src, dst, g, zp, zp, r);
        }
        else if (channelsLast)
            PoolKernels.AvgPoolNhwc(src, dst, signed, n, c, g, zp, zp, 1.0f, countIncludePad, divisorOverride);
        else
            PoolKernels.AvgPoolNchw(src, dst, signed, g, zp, zp, 1.0, countIncludePad, divisorOverride);
    }

    /// <summary>
    /// adaptive_avg_pool2d. qnnpack engine, quint8, input divisible by output in both dims: QNNPACK average pooling with
    /// kernel = stride = input/output (PT: AdaptiveAveragePooling.cpp <c>enable_qnnpack_for_ada_avgpool</c>). Otherwise
    /// NCHW: window <c>[floor(o*I/O), ceil((o+1)*I/O))</c>, <c>y = rne(f32((float)sum * r))</c>,
    /// <c>r = f32(f32(1/kH)/kW)</c> (no zero-point correction: the output keeps the input's qparams).
    /// </summary>
    public static QTensor AdaptiveAvgPool2d(QTensor x, int outH, int outW, QEngine engine)
    {
        QOps.RequirePerTensor(x, "adaptive_avg_pool2d");
        QOps.RequireRank(x, 4, "adaptive_avg_pool2d");
        if (outH <= 0 || outW <= 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "adaptive_avg_pool2d: output size must be positive");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        if (engine == QEngine.Qnnpack && x.DType == DType.QUInt8 && h % outH == 0 && w % outW == 0)
        {
            int kh = h / outH, kw = w / outW;
            return AvgPool2d(x, kh, kw, kh, kw, 0, 0, false, true, null, engine);
        }
        var y = QOps.NewLikeOutput(x, [n, c, outH, outW], out var dst);
        PoolKernels.AdaptiveAvgNchw(QOps.Bytes(x), dst, QOps.IsSigned(x.DType), n * c, h, w, outH, outW);
        return y;
    }

    /// <summary>
    /// <c>torch.mean(x, (2, 3), keepdim)</c>. qnnpack engine with quint8: QNNPACK global average pooling
    /// (<c>acc = sum - zp*HW</c>, multiplier <c>f32(s / f32(s*HW))</c>, <c>y = clamp(rne(acc*R) + zp)</c>); otherwise
    /// <c>qmean_inner_dim_kernel</c>: <c>y = rne(f32((float)sum / HW))</c>.
    /// </summary>
    public static QTensor MeanHW(QTensor x, bool keepDim, QEngine engine)
    {
        QOps.RequirePerTensor(x, "mean");
        QOps.RequireRank(x, 4, "mean");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        if (h * w == 0) throw new QuantToolsException(ErrorCode.ShapeMismatch, "mean over an empty H x W");
        int[] shape = keepDim ? [n, c, 1, 1] : [n, c];
        var y = QOps.NewLikeOutput(x, shape, out var dst);
        var src = QOps.Bytes(x);
        bool signed = QOps.IsSigned(x.DType);
        int hw = h * w, zp = (int)x.QParams.ZeroPoint;
        if (engine == QEngine.Qnnpack && x.DType == DType.QUInt8)
        {
            float s = (float)x.QParams.Scale;
            float r = s / (s * (float)hw);
            for (int p = 0; p < n * c; p++)
            {
                int acc = -zp * hw;
                for (int i = 0; i < hw; i++) acc += src[p * hw + i];
                dst[p] = (byte)Math.Clamp((int)MathF.Round((float)acc * r) + zp, 0, 255);
            }
            return y;
        }
        for (int p = 0; p < n * c; p++)
        {
            long sum = 0;
            for (int i = 0; i < hw; i++) sum += QOps.Get(src, p * hw + i, signed);
            dst[p] = (byte)(int)MathF.Round((float)sum / hw);
        }
        return y;
    }

    /// <summary>
    /// ATen's channels_last adaptive average pool (<c>qadaptive_avg_pool2d_nhwc_kernel</c>), for an input whose PyTorch
    /// tensor was channels_last-contiguous: per window <c>acc = Σq - zp·size</c>,
    /// <c>m = f32(f32(f32(s_in)/f32(s_out))/size)</c>, vector channel blocks and scalar tail as in
    /// <see cref="PoolKernels.AvgPoolNhwcElement"/>. Input and output share qparams.
    /// </summary>
    public static QTensor AdaptiveAvgPool2dNhwc(QTensor x, int oh, int ow)
    {
        QOps.RequirePerTensor(x, "adaptive_avg_pool2d");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        var y = QOps.NewLike(x, [n, c, oh, ow], out var dst);
        var src = QOps.Bytes(x);
        bool signed = QOps.IsSigned(x.DType);
        var (qmin, qmax) = QOps.Range(x.DType);
        int zp = (int)x.QParams.ZeroPoint;
        float ratio = (float)x.QParams.Scale / (float)x.QParams.Scale;
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
            {
                int p = b * c + ch;
                for (int oy = 0; oy < oh; oy++)
                {
                    int hs = (int)MathF.Floor((float)(oy * h) / oh), he = (int)MathF.Ceiling((float)((oy + 1) * h) / oh);
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int ws = (int)MathF.Floor((float)(ox * w) / ow), we = (int)MathF.Ceiling((float)((ox + 1) * w) / ow);
                        int size = (he - hs) * (we - ws);
                        float m = ratio / size;
                        int acc = -zp * size;
                        for (int iy = hs; iy < he; iy++)
                            for (int ix = ws; ix < we; ix++)
                                acc += QOps.Get(src, (p * h + iy) * w + ix, signed);
                        dst[(p * oh + oy) * ow + ox] = (byte)PoolKernels.AvgPoolNhwcElement(acc, m, ch, c, zp, qmin, qmax);
                    }
                }
            }
        return y;
    }

    /// <summary>
    /// <c>torch.mean(x, (2, 3), keepdim)</c> where PyTorch takes its general path (a channels_last input outside the
    /// qnnpack route): dequantize, float mean per plane (sum in index order, then divide by H·W), quantize with the
    /// input's qparams.
    /// </summary>
    public static QTensor MeanHWDequantized(QTensor q, bool keepDim)
    {
        QOps.RequireRank(q, 4, "mean");
        int n = q.Shape[0], c = q.Shape[1], h = q.Shape[2], w = q.Shape[3];
        var f = Quantizer.Dequantize(q).AsSpan<float>();
        var r = new float[n * c];
        float count = h * w;
        for (int p = 0; p < n * c; p++)
        {
            float sum = 0f;
            for (int i = 0; i < h * w; i++) sum += f[p * h * w + i];
            r[p] = sum / count;
        }
        int[] shape = keepDim ? [n, c, 1, 1] : [n, c];
        return Quantizer.Quantize(new Tensor(DType.Float32, shape, r), QParams.PerTensor(q.QParams.Scale, q.QParams.ZeroPoint, q.DType));
    }
}
