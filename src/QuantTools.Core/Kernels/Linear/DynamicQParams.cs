using QuantTools.Core.Kernels.Requantization;

namespace QuantTools.Core.Kernels.Linear;

/// <summary>
/// Dynamic linear's input qparams and float output (numerics.md 5.3). Input qparams follow PyTorch's
/// <c>quant_utils::ChooseQuantizationParams(min, max, 0, 255, preserve_sparsity=false, pow2=false, reduce_range)</c>;
/// QNNPACK ignores reduce_range.
/// </summary>
public static class DynamicQParams
{
    private const float SmallScaleThreshold = 6.1e-5f;

    /// <summary>Scale (double, as PyTorch keeps it) and zero point for the input of a dynamic linear.</summary>
    public static (double Scale, int ZeroPoint) Choose(ReadOnlySpan<float> x, QBackend backend, bool reduceRange)
    {
        float min = 0f, max = 0f;
        if (x.Length > 0)
        {
            min = x[0]; max = x[0];
            for (int i = 1; i < x.Length; i++)
            {
                if (x[i] < min) min = x[i];
                if (x[i] > max) max = x[i];
            }
        }
        bool reduce = reduceRange && backend != QBackend.Qnnpack;
        return ChooseQuantizationParams(min, max, 0, 255, reduce);
    }

    public static (double Scale, int ZeroPoint) ChooseQuantizationParams(float min, float max, int qmin, int qmax, bool reduceRange)
    {
        if (!(min <= max))
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"min ({min}) must not be greater than max ({max})");
        if (reduceRange) { qmin /= 2; qmax /= 2; }
        min = Math.Min(min, 0f);
        max = Math.Max(max, 0f);
        double scale = ((double)max - min) / (qmax - qmin);
        if ((float)scale == 0f || float.IsInfinity(1f / (float)scale)) scale = 0.1;
        if (scale < SmallScaleThreshold)
        {
            float org = (float)scale;
            scale = SmallScaleThreshold;
            if (min == 0f) max = SmallScaleThreshold * (qmax - qmin);
            else if (max == 0f) min = -SmallScaleThreshold * (qmax - qmin);
            else
            {
                float amp = SmallScaleThreshold / org;
                min *= amp; max *= amp;
            }
        }
        double zpFromMin = qmin - min / scale;
        double zpFromMax = qmax - max / scale;
        double errMin = Math.Abs(qmin) - Math.Abs(min / scale);
        double errMax = Math.Abs(qmax) - Math.Abs(max / scale);
        double initial = errMin < errMax ? zpFromMin : zpFromMax;
        int zp = initial < qmin ? qmin : initial > qmax ? qmax : (int)Math.Round(initial, MidpointRounding.ToEven);
        return (scale, zp);
    }

    /// <summary>
    /// Quantizes the float input with the chosen qparams. FBGEMM / QNNPACK: the vector quantize form with
    /// <c>inv = f32(1/f32(scale))</c>. oneDNN (ideep passes the source scale as <c>1.0/scale</c> computed in double):
    /// <c>inv = f32(1.0/scale)</c>, <c>q = clamp(rne(f32(x·inv)) + zp)</c>.
    /// </summary>
    public static void QuantizeInput(QBackend backend, ReadOnlySpan<float> x, Span<byte> q, double scale, int zp)
    {
        if (!backend.IsOnednn())
        {
            QuantizeKernels.QUInt8(x, q, (float)scale, zp);
            return;
        }
        float inv = (float)(1.0 / scale);
        for (int i = 0; i < x.Length; i++) q[i] = (byte)Math.Clamp(QuantizeKernels.VectorFormRaw(x[i], inv, zp), 0, 255);
    }

    /// <summary>
    /// Per output column: the factor(s) turning an accumulator into float. FBGEMM and QNNPACK use one product
    /// <c>f32(s_in·s_w)</c>; oneDNN applies the source scale <c>1/f32(1.0/s_in)</c> then the weight scale (ideep's
    /// reciprocal round trip <c>1/f32(1.0/s_w)</c>) one after the other.
    /// </summary>
    public static (float First, float Second) OutputScales(QBackend backend, double inScale, double weightScale)
    {
        if (backend.IsOnednn())
            return (1f / (float)(1.0 / inScale), 1f / (float)(1.0 / weightScale));
        return ((float)inScale * (float)weightScale, 1f);
    }

    /// <summary>
    /// Float output of accumulator <paramref name="raw"/> (numerics.md 5.3, settled by the golden data):
    /// FBGEMM (AVX2 epilogue, FMA-contracted): <c>fma((float)raw, f32(s_in·s_w), b)</c>;
    /// QNNPACK: <c>f32(f32((float)raw·f32(s_in·s_w)) + b)</c>;
    /// oneDNN: <c>f32(f32(f32((float)raw·s_in')·s_w') + b)</c>.
    /// </summary>
    public static float Output(QBackend backend, int raw, (float First, float Second) scales, float bias)
    {
        float a = raw;
        return backend switch
        {
            QBackend.Fbgemm or QBackend.FbgemmAvx2 => MathF.FusedMultiplyAdd(a, scales.First, bias),
            QBackend.Onednn or QBackend.OnednnAvx2 => a * scales.First * scales.Second + bias,
            _ => a * scales.First + bias,
        };
    }
}
