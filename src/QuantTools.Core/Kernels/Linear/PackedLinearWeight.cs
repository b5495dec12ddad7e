using System.Buffers;
using QuantTools.Core.Kernels.Requantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Linear;

/// <summary>
/// A quantized linear layer prepared once (PyTorch's <c>linear_prepack</c>): int8 weight [N, K] with per-tensor or
/// per-output-channel scales / zero points, float bias, and the zero-point-centered int16 panel packing of the fast
/// GEMM. <see cref="Run"/> is static quantized linear (quint8 in, quint8 out, optional fused ReLU);
/// <see cref="RunDynamic"/> is dynamic linear (float in, float out).
/// </summary>
public sealed class PackedLinearWeight
{
    public int InFeatures { get; }
    public int OutFeatures { get; }
    public QEngine Engine { get; }
    public QBackend Backend { get; }
    public bool PerChannel { get; }

    /// <summary>The code a <see cref="Run(QTensor, double, long, bool)"/> / <see cref="RunDynamic"/> call takes now (<see cref="LinearPaths"/>).</summary>
    public LinearPlan Plan => LinearPaths.Resolve(this);

    internal readonly sbyte[] W;      // [N][K]
    internal readonly int[] WZp;
    internal readonly float[] WScale;
    internal readonly double[] WScaleDouble;
    internal readonly float[]? Bias;
    internal readonly short[] V;      // panel-packed (w - wzp), K x N
    internal readonly int K2;
    internal readonly int[] WSum;
    internal readonly bool AnyWeightZeroPoint;
    private sbyte[]? _vnni;

    /// <summary>
    /// Raw int8 weights in the native VNNI layout (made on first use, then reused): panels of 64 output features, per
    /// panel <c>[K/4][64][4]</c>, 4 consecutive K values of one feature per int32 lane, zero padded.
    /// </summary>
    internal sbyte[] VnniPacked()
    {
        if (_vnni is { } done) return done;
        int k = InFeatures, n = OutFeatures, kq = (k + 3) / 4, panels = (n + 63) / 64;
        var p = new sbyte[(long)panels * kq * 256];
        for (int j = 0; j < n; j++)
        {
            int baseIdx = (j / 64) * kq * 256 + (j % 64) * 4;
            for (int i = 0; i < k; i++) p[baseIdx + (i >> 2) * 256 + (i & 3)] = W[j * k + i];
        }
        return _vnni = p;
    }

    /// <summary>Work (MACs) above which a call is spread over cores.</summary>
    public static long ParallelThreshold { get; set; } = 1 << 21;

    private PackedLinearWeight(int k, int n, QEngine engine, QBackend backend, bool perChannel, sbyte[] w, int[] wzp, double[] ws, float[]? bias)
    {
        InFeatures = k; OutFeatures = n; Engine = engine; Backend = backend; PerChannel = perChannel;
        W = w; WZp = wzp; WScaleDouble = ws; WScale = ws.Select(v => (float)v).ToArray(); Bias = bias;
        K2 = (k + 1) / 2;
        V = new short[PairGemm.PackedLength(K2, n)];
        WSum = new int[n];
        for (int j = 0; j < n; j++)
        {
            int s = 0;
            for (int i = 0; i < k; i++)
            {
                s += w[j * k + i];
                V[PairGemm.PackedIndex(i, j, K2)] = (short)(w[j * k + i] - wzp[j]);
            }
            WSum[j] = s;
        }
        AnyWeightZeroPoint = wzp.Any(z => z != 0);
    }

    /// <summary>Prepares a layer from a qint8 weight [out, in] (per-tensor, or per-channel on axis 0) and a float bias [out] or null.</summary>
    public static PackedLinearWeight Create(QTensor weight, Tensor? bias, QEngine engine) => Create(weight, bias, engine, CpuClass.Avx512Vnni);

    /// <summary>As the other overload, for PyTorch on a CPU of class <paramref name="cpu"/> (which library runs the layer).</summary>
    public static PackedLinearWeight Create(QTensor weight, Tensor? bias, QEngine engine, CpuClass cpu)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.DType != DType.QInt8)
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"linear weights must be qint8, got {weight.DType.TorchName()}");
        if (weight.Shape.Length != 2)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"linear weights must be 2-d, got [{string.Join(", ", weight.Shape)}]");
        int n = weight.Shape[0], k = weight.Shape[1];
        var qp = weight.QParams;
        var wzp = new int[n];
        var ws = new double[n];
        if (qp.IsPerChannel)
        {
            if (qp.Axis != 0)
                throw new QuantToolsException(ErrorCode.NotSupported, $"per-channel linear weights must use axis 0, got {qp.Axis}");
            for (int j = 0; j < n; j++) { wzp[j] = (int)qp.ZeroPoints[j]; ws[j] = qp.Scales[j]; }
        }
        else
        {
            Array.Fill(wzp, (int)qp.ZeroPoint);
            Array.Fill(ws, qp.Scale);
        }
        float[]? b = null;
        if (bias is not null)
        {
            if (bias.Length != n)
                throw new QuantToolsException(ErrorCode.ShapeMismatch, $"bias has {bias.Length} values for {n} output features");
            b = bias.ToFloat32().AsSpan<float>().ToArray();
        }
        var backend = EngineProfile.ForLinear(engine, cpu);
        return new PackedLinearWeight(k, n, engine, backend, qp.IsPerChannel, weight.IntRepr.AsSpan<sbyte>().ToArray(), wzp, ws, b);
    }

    private int Rows(int[] shape)
    {
        if (shape.Length < 1 || shape[^1] != InFeatures)
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"input [{string.Join(", ", shape)}] does not end in {InFeatures} features");
        int m = 1;
        for (int i = 0; i < shape.Length - 1; i++) m *= shape[i];
        return m;
    }

    /// <summary>Static quantized linear: quint8 [..., in] → quint8 [..., out] with the given output qparams.</summary>
    public QTensor Run(QTensor x, double outScale, long outZeroPoint, bool relu) => Run(x, outScale, outZeroPoint, relu, null);

    /// <summary>
    /// <see cref="Run(QTensor, double, long, bool)"/> into a caller's buffer: <paramref name="output"/> (when not null) must hold
    /// exactly the output's element count (<c>[..., OutFeatures]</c>); it becomes the result's storage. Its old contents do not matter.
    /// </summary>
    public QTensor Run(QTensor x, double outScale, long outZeroPoint, bool relu, byte[]? output)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.DType != DType.QUInt8)
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"quantized linear needs quint8 input, got {x.DType.TorchName()}");
        if (x.QParams.IsPerChannel)
            throw new QuantToolsException(ErrorCode.InvalidQParams, "quantized linear needs a per-tensor quantized input");
        int m = Rows(x.Shape), n = OutFeatures;
        var stage = new OutputStage(Backend, x.QParams.Scale, WScale, Bias, outScale, outZeroPoint, relu, PerChannel);
        var plan = Plan;
        if (plan.Accumulation == LinearAccumulation.NativeAvx512Vnni)
        {
            int[] yshape = [.. x.Shape[..^1], n];
            var yn = Output(yshape, output);
            Native.NativeGemm.Linear(this, x.IntRepr.AsSpan<byte>(), (int)x.QParams.ZeroPoint, m, stage, yn.AsSpan<byte>(), default);
            return new QTensor(yn, QParams.PerTensor(outScale, outZeroPoint, DType.QUInt8));
        }
        int[] raw = ArrayPool<int>.Shared.Rent(m * n);
        try
        {
            var rs = raw.AsSpan(0, m * n);
            LinearKernels.Accumulate(this, x.IntRepr.AsSpan<byte>(), (int)x.QParams.ZeroPoint, m, rs, plan.Accumulation);
            int[] shape = [.. x.Shape[..^1], n];
            var y = Output(shape, output);
            var ys = y.AsSpan<byte>();
            for (int r = 0; r < m; r++) stage.ApplyRow(rs.Slice(r * n, n), ys.Slice(r * n, n), plan.Requantization);
            return new QTensor(y, QParams.PerTensor(outScale, outZeroPoint, DType.QUInt8));
        }
        finally
        {
            ArrayPool<int>.Shared.Return(raw);
        }
    }

    private static Tensor Output(int[] shape, byte[]? output)
    {
        if (output is null) return Tensor.Zeros(DType.UInt8, shape);
        if (output.LongLength != Tensor.CheckedNumel(shape))
            throw new ArgumentException($"linear output buffer holds {output.Length} bytes, the output has {Tensor.CheckedNumel(shape)}", nameof(output));
        Array.Clear(output);
        return new Tensor(DType.UInt8, shape, output);
    }

    /// <summary>
    /// Dynamic quantized linear (<c>quantized::linear_dynamic</c>): the input is quantized to quint8 with qparams
    /// chosen from its min / max (<paramref name="reduceRange"/> as nnqd.Linear passes it: true), the int GEMM runs,
    /// and the float output is formed per backend (numerics.md 5.3).
    /// </summary>
    public Tensor RunDynamic(Tensor x, bool relu = false, bool reduceRange = true)
    {
        ArgumentNullException.ThrowIfNull(x);
        var xf = x.ToFloat32().AsSpan<float>();
        int m = Rows(x.Shape), n = OutFeatures;
        var (scale, zp) = DynamicQParams.Choose(xf, Backend, reduceRange);
        byte[] xq = ArrayPool<byte>.Shared.Rent(Math.Max(1, xf.Length));
        int[] raw = ArrayPool<int>.Shared.Rent(m * n);
        try
        {
            var xqs = xq.AsSpan(0, xf.Length);
            DynamicQParams.QuantizeInput(Backend, xf, xqs, scale, zp);
            var rs = raw.AsSpan(0, m * n);
            LinearKernels.Accumulate(this, xqs, zp, m, rs, Plan.Accumulation);
            int[] shape = [.. x.Shape[..^1], n];
            var y = Tensor.Zeros(DType.Float32, shape);
            var ys = y.AsSpan<float>();
            var scales = new (float, float)[n];
            for (int j = 0; j < n; j++) scales[j] = DynamicQParams.OutputScales(Backend, scale, WScaleDouble[j]);
            for (int r = 0; r < m; r++)
                for (int j = 0; j < n; j++)
                {
                    // without bias FBGEMM skips the add: fma(raw, s, 0) and raw*s + 0 round the same way
                    float v = DynamicQParams.Output(Backend, rs[r * n + j], scales[j], Bias is null ? 0f : Bias[j]);
                    if (relu) v = 0f < v ? v : 0f;   // std::max(0.0f, v)
                    ys[r * n + j] = v;
                }
            return y;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(xq);
            ArrayPool<int>.Shared.Return(raw);
        }
    }
}
