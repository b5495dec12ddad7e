using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Elementwise;

/// <summary>
/// Quantized activations, bit for bit as PyTorch 2.11 per engine (numerics.md 5.4). Output qparams: the input's for
/// the clamp family; fixed for sigmoid / hardsigmoid (1/256, 0 or -128) and tanh (1/128, 128 or 0); the caller's
/// (module) qparams for hardswish, leaky_relu and elu.
/// <para>Each float activation is a pure function of the 8-bit input, so the kernels evaluate the formula once per
/// possible input value for each of ATen's two lambdas (vector and scalar) and apply the tables with the
/// vector/scalar split of <see cref="QOps.VectorPrefix"/>. <see cref="Reference"/> evaluates the formula per element
/// instead; the two agree by construction and the path tests check it.</para>
/// </summary>
public static class QActivation
{
    // ------------------------------------------------------------------ clamp family (integer)

    /// <summary><c>torch.relu</c>: <c>max(q, zp)</c>. qnnpack (quint8) runs its clamp op with min = zp: the same integers.</summary>
    public static QTensor Relu(QTensor x, QEngine engine)
    {
        _ = engine;
        QOps.RequirePerTensor(x, "relu");
        var (_, qmax) = QOps.Range(x.DType);
        return ClampInt(x, (int)x.QParams.ZeroPoint, qmax);
    }

    /// <summary><c>quantized::relu6</c> = <c>hardtanh(x, 0, 6)</c> (PT: qrelu.cpp).</summary>
    public static QTensor Relu6(QTensor x, QEngine engine) => Hardtanh(x, 0f, 6f, engine);

    /// <summary>
    /// <c>hardtanh</c> / <c>clamp</c> (PT: qclamp_kernel): bounds quantized with the input qparams by the scalar
    /// <c>quantize_val</c> (saturating to the dtype), then an integer clamp. Same on every engine.
    /// </summary>
    public static QTensor Hardtanh(QTensor x, float min, float max, QEngine engine)
    {
        _ = engine;
        QOps.RequirePerTensor(x, "hardtanh");
        var (lo, hi) = HardtanhBounds(x, min, max);
        return ClampInt(x, lo, hi);
    }

    /// <summary><c>torch.clamp</c> on a quantized tensor: the same kernel as <see cref="Hardtanh"/>.</summary>
    public static QTensor Clamp(QTensor x, float min, float max, QEngine engine) => Hardtanh(x, min, max, engine);

    private static QTensor ClampInt(QTensor x, int lo, int hi)
    {
        var y = QOps.NewLikeOutput(x, x.Shape, out var dst);
        ClampInt(x, lo, hi, dst);
        return y;
    }

    private static void ClampInt(QTensor x, int lo, int hi, Span<byte> dst)
    {
        // PyTorch applies min after max: with lo > hi every element becomes hi.
        if (lo > hi) lo = hi;
        ClampKernels.Clamp(QOps.Bytes(x), dst, QOps.IsSigned(x.DType), lo, hi);
    }

    /// <summary>
    /// <see cref="Relu(QTensor, QEngine)"/> into a caller's output (<paramref name="output"/>: the result's integers as bytes;
    /// qparams = the input's). <paramref name="output"/> may be the input's own bytes (in place).
    /// </summary>
    public static void Relu(QTensor x, QEngine engine, Span<byte> output)
    {
        _ = engine;
        QOps.RequirePerTensor(x, "relu");
        QOps.RequireOutput(output, x.Length, "relu");
        var (_, qmax) = QOps.Range(x.DType);
        ClampInt(x, (int)x.QParams.ZeroPoint, qmax, output);
    }

    /// <summary><see cref="Hardtanh(QTensor, float, float, QEngine)"/> into a caller's output (qparams = the input's).</summary>
    public static void Hardtanh(QTensor x, float min, float max, QEngine engine, Span<byte> output)
    {
        _ = engine;
        QOps.RequirePerTensor(x, "hardtanh");
        QOps.RequireOutput(output, x.Length, "hardtanh");
        var (lo, hi) = HardtanhBounds(x, min, max);
        ClampInt(x, lo, hi, output);
    }

    private static (int Lo, int Hi) HardtanhBounds(QTensor x, float min, float max)
    {
        var (qmin, qmax) = QOps.Range(x.DType);
        float inv = 1.0f / (float)x.QParams.Scale;
        int zp = (int)x.QParams.ZeroPoint;
        return (QOps.QuantizeScalar(min, inv, zp, qmin, qmax), QOps.QuantizeScalar(max, inv, zp, qmin, qmax));
    }

    // ------------------------------------------------------------------ float activations (tables)

    /// <summary>Which function of ATen's pair (or QNNPACK's table) computes one output element.</summary>
    public enum Lambda { Vector, Scalar, QnnpackTable }

    /// <summary>One element of an activation: the formula PyTorch evaluates for input integer <c>q</c>.</summary>
    public delegate int ElementFn(int q, Lambda lambda);

    /// <summary>A prepared activation: output qparams and the per-element formula.</summary>
    public sealed record Plan(DType DType, double OutScale, long OutZp, bool UsesQnnpackTable, ElementFn Fn);

    public static QTensor Hardswish(QTensor x, double outScale, long outZp, QEngine engine) => Run(x, HardswishPlan(x, outScale, outZp, engine));
    public static QTensor Sigmoid(QTensor x, QEngine engine) => Run(x, SigmoidPlan(x, engine));
    public static QTensor Tanh(QTensor x, QEngine engine) => Run(x, TanhPlan(x, engine));
    public static QTensor Hardsigmoid(QTensor x, QEngine engine) => Run(x, HardsigmoidPlan(x, engine));
    public static QTensor LeakyRelu(QTensor x, float negativeSlope, double outScale, long outZp, QEngine engine) =>
        Run(x, LeakyReluPlan(x, negativeSlope, outScale, outZp, engine));
    public static QTensor Elu(QTensor x, float alpha, double outScale, long outZp, QEngine engine) =>
        Run(x, EluPlan(x, alpha, outScale, outZp, engine));

    /// <summary>
    /// hardswish. fbgemm / x86 / onednn (and qint8 everywhere): <c>qhardswish_kernel</c>, <c>y = f32(f32(x*clamp(x+3,0,6))/6)</c>
    /// with FMA dequantize in the vector lambda. qnnpack quint8: QNNPACK's 256-entry table, zero point added before
    /// <c>lrintf</c> (PT: Activation.cpp... QNNPACK hardswish.c).
    /// </summary>
    public static Plan HardswishPlan(QTensor x, double outScale, long outZp, QEngine engine)
    {
        var (sf, zp, pm, qmin, qmax) = In(x, "hardswish");
        float so = (float)outScale; int zo = (int)outZp;
        float inv = 1.0f / so;
        bool table = engine == QEngine.Qnnpack && x.DType == DType.QUInt8;
        return new(x.DType, outScale, outZp, table, (q, l) =>
        {
            if (l == Lambda.QnnpackTable)
            {
                float xv = sf * (float)(q - zp);
                float t = xv + 3f; t = t > 0f ? t : 0f; t = t < 6f ? t : 6f;
                float yv = xv * t / 6f;
                float scaled = yv * inv + zo;
                return (int)Math.Clamp(QOps.Lrintf(Math.Clamp(scaled, 0f, 255f)), 0, 255);
            }
            float v = l == Lambda.Vector ? QOps.DqFma(q, sf, pm) : QOps.DqScalar(q, sf, zp);
            float y = v * MathF.Min(MathF.Max(v + 3f, 0f), 6f) / 6f;
            return l == Lambda.Vector ? QOps.QuantizeVector(y, inv, zo, qmin, qmax) : QOps.QuantizeScalar(y, inv, zo, qmin, qmax);
        });
    }

    /// <summary>
    /// sigmoid, output (1/256, 0) for quint8 and (1/256, -128) for qint8. Vector lambda: 2-argument dequantize
    /// <c>(q - zp) * s</c>, Sleef expf, <c>1/(1+e)</c> in float; scalar: glibc expf, <c>1/(1 + (double)e)</c> in double.
    /// qnnpack quint8: table <c>lrintf(clamp(f32(256 / (1 + expf(-x)))))</c>.
    /// </summary>
    public static Plan SigmoidPlan(QTensor x, QEngine engine)
    {
        var (sf, zp, _, qmin, qmax) = In(x, "sigmoid");
        bool table = engine == QEngine.Qnnpack && x.DType == DType.QUInt8;
        int zo = x.DType == DType.QInt8 ? -128 : 0;
        const float inv = 256f;
        return new(x.DType, 0.00390625, zo, table, (q, l) =>
        {
            float v = QOps.DqScalar(q, sf, zp);
            switch (l)
            {
                case Lambda.QnnpackTable:
                {
                    float scaled = inv / (1f + MathF.Exp(-v));
                    return (int)Math.Clamp(QOps.Lrintf(Math.Clamp(scaled, 0f, 255f)), 0, 255);
                }
                case Lambda.Vector:
                {
                    float y = 1f / (1f + SleefMath.Expf(-v));
                    return QOps.QuantizeVector(y, inv, zo, qmin, qmax);
                }
                default:
                {
                    float y = (float)(1.0 / (1.0 + (double)MathF.Exp(-v)));
                    return QOps.QuantizeScalar(y, inv, zo, qmin, qmax);
                }
            }
        });
    }

    /// <summary>
    /// tanh, output (2/256, 128) for quint8 and (2/256, 0) for qint8. Vector lambda: FMA dequantize, tanh; scalar:
    /// glibc tanhf. qnnpack quint8: table <c>lrintf(clamp(f32(128 * tanhf(x) + zo)))</c>.
    /// </summary>
    public static Plan TanhPlan(QTensor x, QEngine engine)
    {
        var (sf, zp, pm, qmin, qmax) = In(x, "tanh");
        bool table = engine == QEngine.Qnnpack && x.DType == DType.QUInt8;
        int zo = x.DType == DType.QUInt8 ? 128 : 0;
        const float inv = 128f;
        return new(x.DType, 0.0078125, zo, table, (q, l) =>
        {
            switch (l)
            {
                case Lambda.QnnpackTable:
                {
                    float v = QOps.DqScalar(q, sf, zp);
                    float scaled = inv * MathF.Tanh(v) + zo;
                    return (int)Math.Clamp(QOps.Lrintf(Math.Clamp(scaled, 0f, 255f)), 0, 255);
                }
                case Lambda.Vector:
                    return QOps.QuantizeVector(MathF.Tanh(QOps.DqFma(q, sf, pm)), inv, zo, qmin, qmax);
                default:
                    return QOps.QuantizeScalar(MathF.Tanh(QOps.DqScalar(q, sf, zp)), inv, zo, qmin, qmax);
            }
        });
    }

    /// <summary>
    /// hardsigmoid, output (1/256, 0) quint8 / (1/256, -128) qint8: <c>y = clamp(x+3, 0, 6) / 6</c>. qnnpack quint8: table
    /// <c>lrintf(clamp(f32(256*y + zo)))</c>.
    /// </summary>
    public static Plan HardsigmoidPlan(QTensor x, QEngine engine)
    {
        var (sf, zp, pm, qmin, qmax) = In(x, "hardsigmoid");
        bool table = engine == QEngine.Qnnpack && x.DType == DType.QUInt8;
        int zo = x.DType == DType.QInt8 ? -128 : 0;
        const float inv = 256f;
        return new(x.DType, 0.00390625, zo, table, (q, l) =>
        {
            if (l == Lambda.QnnpackTable)
            {
                float xv = sf * (float)(q - zp);
                float t = xv + 3f; t = t > 0f ? t : 0f; t = t < 6f ? t : 6f;
                float scaled = inv * (t / 6f) + zo;
                return (int)Math.Clamp(QOps.Lrintf(Math.Clamp(scaled, 0f, 255f)), 0, 255);
            }
            float v = l == Lambda.Vector ? QOps.DqFma(q, sf, pm) : QOps.DqScalar(q, sf, zp);
            float y = MathF.Min(MathF.Max(v + 3f, 0f), 6f) / 6f;
            return l == Lambda.Vector ? QOps.QuantizeVector(y, inv, zo, qmin, qmax) : QOps.QuantizeScalar(y, inv, zo, qmin, qmax);
        });
    }

    /// <summary>
    /// leaky_relu into the given output qparams (PT: <c>leaky_qrelu_out_kernel</c>): vector lambda multiplies the FMA
    /// dequantized value by 1 or the slope; scalar: <c>x &gt; 0 ? x : x*slope</c>. Same on every engine.
    /// </summary>
    public static Plan LeakyReluPlan(QTensor x, float slope, double outScale, long outZp, QEngine engine)
    {
        _ = engine;
        var (sf, zp, pm, qmin, qmax) = In(x, "leaky_relu");
        float inv = 1.0f / (float)outScale; int zo = (int)outZp;
        return new(x.DType, outScale, outZp, false, (q, l) =>
        {
            if (l == Lambda.Vector)
            {
                float v = QOps.DqFma(q, sf, pm);
                float y = v * (v < 0f ? slope : 1f);
                return QOps.QuantizeVector(y, inv, zo, qmin, qmax);
            }
            else
            {
                float v = QOps.DqScalar(q, sf, zp);
                float y = v > 0f ? v : v * slope;
                return QOps.QuantizeScalar(y, inv, zo, qmin, qmax);
            }
        });
    }

    /// <summary>
    /// elu into the given output qparams (PT: <c>qelu_kernel</c>, scale = input_scale = 1): <c>x &gt;= 0 ? x : (exp(x) - 1)*alpha</c>;
    /// vector lambda: FMA dequantize and Sleef expf; scalar: glibc expf. Same on every engine.
    /// </summary>
    public static Plan EluPlan(QTensor x, float alpha, double outScale, long outZp, QEngine engine)
    {
        _ = engine;
        var (sf, zp, pm, qmin, qmax) = In(x, "elu");
        float inv = 1.0f / (float)outScale; int zo = (int)outZp;
        return new(x.DType, outScale, outZp, false, (q, l) =>
        {
            if (l == Lambda.Vector)
            {
                float v = QOps.DqFma(q, sf, pm);
                float y = v < 0f ? (SleefMath.Expf(v * 1f) - 1f) * alpha * 1f : v * 1f;
                return QOps.QuantizeVector(y, inv, zo, qmin, qmax);
            }
            else
            {
                float v = QOps.DqScalar(q, sf, zp);
                float y = v >= 0f ? v * 1f : (MathF.Exp(v * 1f) - 1f) * alpha * 1f;
                return QOps.QuantizeScalar(y, inv, zo, qmin, qmax);
            }
        });
    }

    // ------------------------------------------------------------------ running a plan

    /// <summary>The two 256-entry tables of a plan, indexed by the raw input byte.</summary>
    public static (byte[] Vector, byte[] Scalar) Tables(Plan plan)
    {
        bool signed = QOps.IsSigned(plan.DType);
        var v = new byte[256]; var s = new byte[256];
        for (int b = 0; b < 256; b++)
        {
            int q = signed ? (sbyte)(byte)b : b;
            if (plan.UsesQnnpackTable) v[b] = s[b] = (byte)plan.Fn(q, Lambda.QnnpackTable);
            else { v[b] = (byte)plan.Fn(q, Lambda.Vector); s[b] = (byte)plan.Fn(q, Lambda.Scalar); }
        }
        return (v, s);
    }

    /// <summary>Table lookup with the vector/scalar split.</summary>
    public static QTensor Run(QTensor x, Plan plan)
    {
        var y = QOps.NewOutput(plan.DType, x.Shape, plan.OutScale, plan.OutZp, out var dst);
        Run(x, plan, dst);
        return y;
    }

    /// <summary>
    /// <see cref="Run(QTensor, Plan)"/> into a caller's output (<paramref name="output"/>: the result's integers as bytes, with
    /// the plan's output qparams).
    /// </summary>
    public static void Run(QTensor x, Plan plan, Span<byte> output)
    {
        QOps.RequireOutput(output, x.Length, "activation");
        var (vec, sca) = Tables(plan);
        var src = QOps.Bytes(x);
        int prefix = QOps.VectorPrefix(src.Length);
        LutKernels.Apply(src[..prefix], output[..prefix], vec);
        LutKernels.Apply(src[prefix..], output[prefix..], sca);
    }

    /// <summary>The formula per element, without tables (the readable reference).</summary>
    public static QTensor Reference(QTensor x, Plan plan)
    {
        var y = QOps.NewPerTensor(plan.DType, x.Shape, plan.OutScale, plan.OutZp, out var dst);
        var src = QOps.Bytes(x);
        bool signed = QOps.IsSigned(x.DType);
        int prefix = QOps.VectorPrefix(src.Length);
        for (int i = 0; i < src.Length; i++)
        {
            var l = plan.UsesQnnpackTable ? Lambda.QnnpackTable : i < prefix ? Lambda.Vector : Lambda.Scalar;
            dst[i] = (byte)plan.Fn(QOps.Get(src, i, signed), l);
        }
        return y;
    }

    private static (float Sf, int Zp, float Premul, int QMin, int QMax) In(QTensor x, string op)
    {
        QOps.RequirePerTensor(x, op);
        float sf = (float)x.QParams.Scale;
        int zp = (int)x.QParams.ZeroPoint;
        var (lo, hi) = QOps.Range(x.DType);
        return (sf, zp, QOps.Premul(sf, zp), lo, hi);
    }
}
