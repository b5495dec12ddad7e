using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Normalization;

/// <summary>
/// Quantized normalization, bit for bit as PyTorch 2.11 (numerics.md 5.4), the same on every engine:
/// <c>quantized::batch_norm2d</c> (PT: qbatch_norm.cpp + QuantizedOpKernels.cpp <c>q_batch_norm_kernel</c>) and
/// <c>quantized::layer_norm</c> (PT: qnormalization.cpp + <c>quantized_normalize_kernel</c>).
/// </summary>
public static class QNorm
{
    /// <summary>
    /// batch_norm2d on an NCHW quint8/qint8 input with per-channel float weight, bias, running mean and variance.
    /// <c>inv_σ = f32(1/(double)sqrtf(var + f32(eps)))</c>, <c>α = f32(f32(inv_σ*w) * (s_in/s_out))</c>,
    /// <c>β = f32(f32(b - f32(f32(mean*inv_σ)*w)) / s_out)</c>. The kernel walks channels_last rows of C channels:
    /// blocks of 64 channels (AVX-512) compute <c>zo + rne(fma(α, q-zp, β))</c>, remaining channels
    /// <c>zo + lrintf(α*(q-zp) + β)</c> (contracted to an FMA by the compiler); clamp; relu: <c>max(y, zo)</c>.
    /// </summary>
    public static QTensor BatchNorm2d(QTensor x, float[]? weight, float[]? bias, float[] mean, float[] var, double eps,
        double outScale, long outZp, bool relu, QEngine engine) =>
        BatchNorm2dCore(x, weight, bias, mean, var, eps, outScale, outZp, relu, tailFma: true);

    /// <summary>
    /// <paramref name="tailFma"/>: whether the scalar channel tail (compiled into the AVX-512 kernel file with
    /// <c>-mfma</c>) is FMA-contracted; the golden data says yes (the evidence test flips it).
    /// </summary>
    internal static QTensor BatchNorm2dCore(QTensor x, float[]? weight, float[]? bias, float[] mean, float[] var, double eps,
        double outScale, long outZp, bool relu, bool tailFma)
    {
        QOps.RequirePerTensor(x, "batch_norm2d");
        QOps.RequireRank(x, 4, "batch_norm2d");
        int n = x.Shape[0], c = x.Shape[1], hw = x.Shape[2] * x.Shape[3];
        if (mean.Length != c || var.Length != c || (weight is not null && weight.Length != c) || (bias is not null && bias.Length != c))
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"batch_norm2d: parameters must have {c} elements");
        var alpha = new float[c]; var beta = new float[c];
        double si = x.QParams.Scale;
        for (int ch = 0; ch < c; ch++)
        {
            float invSigma = (float)(1.0 / (double)MathF.Sqrt(var[ch] + (float)eps));
            float w = weight?[ch] ?? 1f, b = bias?[ch] ?? 0f;
            alpha[ch] = (float)((invSigma * w) * (si / outScale));
            beta[ch] = (float)((b - mean[ch] * invSigma * w) / outScale);
        }
        var y = QOps.NewPerTensor(x.DType, x.Shape, outScale, outZp, out var dst);
        var src = QOps.Bytes(x);
        bool signed = QOps.IsSigned(x.DType);
        var (qmin, qmax) = QOps.Range(x.DType);
        int zi = (int)x.QParams.ZeroPoint, zo = (int)outZp;
        int lanes = QOps.AtenVectorBytes;   // Vectorized<quint8>::size(): 64 on AVX-512, 32 on AVX2
        int vecChannels = c / lanes * lanes;
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < hw; i++)
                {
                    int idx = (b * c + ch) * hw + i;
                    float d = QOps.Get(src, idx, signed) - zi;
                    int v;
                    if (ch < vecChannels)
                        v = QOps.QuantizeVector(MathF.FusedMultiplyAdd(alpha[ch], d, beta[ch]), 1f, zo, qmin, qmax);
                    else
                    {
                        float t = tailFma ? MathF.FusedMultiplyAdd(alpha[ch], d, beta[ch]) : alpha[ch] * d + beta[ch];
                        v = (int)Math.Clamp(zo + QOps.Lrintf(t), qmin, qmax);
                    }
                    if (relu) v = Math.Max(v, zo);
                    dst[idx] = (byte)v;
                }
        return y;
    }

    /// <summary>
    /// layer_norm over the last <paramref name="normalizedSize"/> elements of each row. Moments from integer sums:
    /// <c>ms = f32((float)Σq / N)</c>, <c>mean = f32(ms - zp)</c>, <c>var = max(f32(f32((float)Σq² / N) - ms*ms), 0)</c>,
    /// <c>k = f32(s_x / sqrt((double)f32(var*s_x*s_x) + eps))</c>. Elements of whole 64-element blocks:
    /// <c>f32(f32(f32((q-zp) - mean) * k) * γ) + β</c>, vector quantize; the rest
    /// <c>fma(f32((q-zp) - mean) * k, γ, β)</c>, scalar quantize.
    /// </summary>
    public static QTensor LayerNorm(QTensor x, int normalizedSize, float[]? gamma, float[]? beta, double eps,
        double outScale, long outZp, QEngine engine) =>
        LayerNormCore(x, normalizedSize, gamma, beta, eps, outScale, outZp, varFma: true, tailFma: true);

    /// <summary>
    /// <paramref name="varFma"/> / <paramref name="tailFma"/>: whether <c>E[q²] - ms*ms</c> and the scalar tail's
    /// <c>t*γ + β</c> are FMA-contracted (the kernel file is compiled with <c>-mfma</c>); the golden data decides.
    /// </summary>
    internal static QTensor LayerNormCore(QTensor x, int normalizedSize, float[]? gamma, float[]? beta, double eps,
        double outScale, long outZp, bool varFma, bool tailFma)
    {
        QOps.RequirePerTensor(x, "layer_norm");
        int total = x.Length, nn = normalizedSize;
        if (nn <= 0 || total % nn != 0)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"layer_norm: {total} elements are not rows of {nn}");
        if ((gamma is not null && gamma.Length != nn) || (beta is not null && beta.Length != nn))
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"layer_norm: weight and bias must have {nn} elements");
        var y = QOps.NewPerTensor(x.DType, x.Shape, outScale, outZp, out var dst);
        var src = QOps.Bytes(x);
        bool signed = QOps.IsSigned(x.DType);
        var (qmin, qmax) = QOps.Range(x.DType);
        int zp = (int)x.QParams.ZeroPoint, zo = (int)outZp;
        float xs = (float)x.QParams.Scale;
        float ys = (float)outScale, yinv = 1.0f / ys;
        int block = QOps.AtenVectorBytes;   // Vectorized<quint8>::size(): 64 on AVX-512, 32 on AVX2
        int vecPart = nn / block * block;
        for (int row = 0; row < total / nn; row++)
        {
            int off = row * nn;
            long sum = 0, sumSq = 0;
            for (int i = 0; i < nn; i++) { int q = QOps.Get(src, off + i, signed); sum += q; sumSq += (long)q * q; }
            float ms = (float)sum / nn;
            float mean = ms - zp;
            float ex2 = (float)sumSq / nn;
            float var = varFma ? MathF.FusedMultiplyAdd(-ms, ms, ex2) : ex2 - ms * ms;
            var = MathF.Max(var, 0f);
            float k = (float)(xs / Math.Sqrt((double)(var * xs * xs) + eps));
            for (int i = 0; i < nn; i++)
            {
                float g = gamma?[i] ?? 1f, b = beta?[i] ?? 0f;
                float d = (float)(QOps.Get(src, off + i, signed) - zp);
                int v;
                if (i < vecPart)
                    v = QOps.QuantizeVector((d - mean) * k * g + b, yinv, zo, qmin, qmax);
                else
                {
                    float t = (d - mean) * k;
                    float r = tailFma ? MathF.FusedMultiplyAdd(t, g, b) : t * g + b;
                    v = QOps.QuantizeScalar(r, yinv, zo, qmin, qmax);
                }
                dst[off + i] = (byte)v;
            }
        }
        return y;
    }
}
