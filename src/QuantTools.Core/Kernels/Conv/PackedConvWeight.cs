using System.Buffers;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Kernels.Requantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Conv;

/// <summary>
/// A quantized conv1d / conv2d / conv_transpose2d layer prepared once (PyTorch's <c>conv2d_prepack</c>): the int8
/// weight reordered to [C_out][K] with K in (kH, kW, C_in/groups) order (FBGEMM's im2col order for NHWC), weight
/// scales and zero points per output channel, the float bias, the engine's backend and algorithm, and the
/// zero-point-centered int16 pair packing the fast GEMM reads. <see cref="Run"/> is then called per input.
/// </summary>
public sealed class PackedConvWeight
{
    public ConvShape Shape { get; }
    public QEngine Engine { get; }
    public QBackend Backend { get; }
    /// <summary>1 for conv1d (weights [C_out, C_in/g, k]), 2 for conv2d.</summary>
    public int SpatialDims { get; }
    public bool PerChannel { get; }
    /// <summary>FBGEMM's depthwise kernel runs this layer (tap pairs saturate to int16, numerics.md point 3).</summary>
    public bool FbgemmDepthwise { get; }
    /// <summary>
    /// A depthwise layer (one input channel per group) that <see cref="ConvKernels.AccumulateDepthwiseAvx512"/> covers: 2-d, not
    /// transposed, dilation 1, stride 1 or 2, at most 64 taps. Exact or saturating per the backend.
    /// </summary>
    internal bool DepthwiseAvx512Applies { get; }
    /// <summary>
    /// FBGEMM returns conv outputs in channels_last memory format. Our tensors are always NCHW; the flag tells later
    /// ops (avg_pool2d rounds differently on channels_last input) which layout PyTorch would have had.
    /// </summary>
    public bool OutputChannelsLast => Backend.IsFbgemm();

    /// <summary>The code a <see cref="Run(QTensor, double, long, bool)"/> call takes now (<see cref="ConvPaths"/>).</summary>
    public ConvPlan Plan => ConvPaths.Resolve(this);

    internal readonly sbyte[] W;          // [OC][K], K order (kh, kw, icg)
    internal readonly int[] WZp;          // per output channel
    internal readonly float[] WScale;     // per output channel, f32(scale)
    internal readonly float[]? Bias;
    internal readonly int[] A2;           // [OC][K2] pairs of (w - wzp)
    internal readonly int K2;
    internal readonly int[] WSum;         // Σ_k w[oc][k] (raw)
    internal readonly bool AnyWeightZeroPoint;
    private sbyte[]? _vnni;

    /// <summary>Raw int8 weights [OC][K padded to a multiple of 4] for the native VNNI kernels (made on first use).</summary>
    internal sbyte[] VnniPacked()
    {
        if (_vnni is { } done) return done;
        int oc = Shape.OutChannels, k = Shape.K, k4 = (k + 3) / 4 * 4;
        var p = new sbyte[(long)oc * k4];
        for (int o = 0; o < oc; o++) W.AsSpan(o * k, k).CopyTo(p.AsSpan(o * k4, k));
        return _vnni = p;
    }

    private PackedConvWeight(ConvShape shape, QEngine engine, QBackend backend, int spatial, bool perChannel, sbyte[] w,
        int[] wzp, float[] wscale, float[]? bias)
    {
        Shape = shape; Engine = engine; Backend = backend; SpatialDims = spatial; PerChannel = perChannel;
        W = w; WZp = wzp; WScale = wscale; Bias = bias;
        int oc = shape.OutChannels, k = shape.K;
        K2 = (k + 1) / 2;
        A2 = new int[oc * K2];
        WSum = new int[oc];
        for (int o = 0; o < oc; o++)
        {
            int s = 0;
            for (int i = 0; i < k; i++) s += w[o * k + i];
            WSum[o] = s;
            for (int j = 0; j < K2; j++)
            {
                int lo = w[o * k + 2 * j] - wzp[o];
                int hi = 2 * j + 1 < k ? w[o * k + 2 * j + 1] - wzp[o] : 0;
                A2[o * K2 + j] = PairGemm.Pair(lo, hi);
            }
        }
        AnyWeightZeroPoint = wzp.Any(z => z != 0);
        FbgemmDepthwise = backend.IsFbgemm() && !shape.Transposed && spatial == 2 &&
            shape.InChannels == shape.Groups && (shape.OutChannels == shape.Groups || shape.OutChannels == 2 * shape.Groups) &&
            shape.Groups % 8 == 0 && shape.StrideH is 1 or 2 && shape.StrideW is 1 or 2 &&
            shape.KernelH == shape.KernelW && shape.KernelH is 3 or 5 or 7 &&
            shape.DilationH == 1 && shape.DilationW == 1 &&
            shape.PadH == (shape.KernelH - 1) / 2 && shape.PadW == (shape.KernelW - 1) / 2;
        DepthwiseAvx512Applies = !shape.Transposed && spatial == 2 && shape.InPerGroup == 1 && shape.DilationH == 1 && shape.DilationW == 1 &&
            shape.StrideH is 1 or 2 && shape.StrideW is 1 or 2 && shape.Taps <= 64 && shape.PadH <= 16 && shape.PadW <= 16;
    }

    /// <summary>
    /// Prepares a layer. <paramref name="weight"/>: qint8 [C_out, C_in/groups, (kH,) kW] (conv) or
    /// [C_in, C_out/groups, kH, kW] (transposed), per-tensor or per-channel on axis 0; <paramref name="bias"/>: float
    /// [C_out] or null. Spatial arguments take one value per spatial dim (or one for all).
    /// </summary>
    public static PackedConvWeight Create(QTensor weight, Tensor? bias, int[] stride, int[] padding, int[] dilation, int groups,
        bool transposed, int[] outputPadding, QEngine engine) =>
        Create(weight, bias, stride, padding, dilation, groups, transposed, outputPadding, engine, CpuClass.Avx512Vnni);

    /// <summary>As the other overload, for PyTorch on a CPU of class <paramref name="cpu"/> (which library runs the layer).</summary>
    public static PackedConvWeight Create(QTensor weight, Tensor? bias, int[] stride, int[] padding, int[] dilation, int groups,
        bool transposed, int[] outputPadding, QEngine engine, CpuClass cpu)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.DType != DType.QInt8)
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"conv weights must be qint8, got {weight.DType.TorchName()}");
        int spatial = weight.Shape.Length - 2;
        if (spatial is not (1 or 2))
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"conv weights must be 3-d or 4-d, got [{string.Join(", ", weight.Shape)}]");
        if (transposed && spatial != 2)
            throw new QuantToolsException(ErrorCode.NotSupported, "only 2-d transposed convolutions are supported");
        static int At(int[] a, int i, string what, int spatial)
        {
            if (a.Length != 1 && a.Length != spatial)
                throw new QuantToolsException(ErrorCode.InvalidArgument, $"{what} needs 1 or {spatial} values, got {a.Length}");
            return a[a.Length == 1 ? 0 : i];
        }
        int kh = spatial == 2 ? weight.Shape[2] : 1, kw = weight.Shape[^1];
        int sh = spatial == 2 ? At(stride, 0, "stride", 2) : 1, sw = At(stride, spatial - 1, "stride", spatial);
        int ph = spatial == 2 ? At(padding, 0, "padding", 2) : 0, pw = At(padding, spatial - 1, "padding", spatial);
        int dh = spatial == 2 ? At(dilation, 0, "dilation", 2) : 1, dw = At(dilation, spatial - 1, "dilation", spatial);
        int oph = 0, opw = 0;
        if (outputPadding.Length > 0)
        {
            oph = spatial == 2 ? At(outputPadding, 0, "output_padding", 2) : 0;
            opw = At(outputPadding, spatial - 1, "output_padding", spatial);
        }
        if (groups <= 0) throw new QuantToolsException(ErrorCode.InvalidArgument, $"groups must be positive, got {groups}");
        int inC = transposed ? weight.Shape[0] : weight.Shape[1] * groups;
        int outC = transposed ? weight.Shape[1] * groups : weight.Shape[0];
        var shape = new ConvShape(inC, outC, kh, kw, sh, sw, ph, pw, dh, dw, groups, transposed, oph, opw);
        shape.Validate();

        var qp = weight.QParams;
        bool perChannel = qp.IsPerChannel;
        var wzp = new int[outC];
        var wscale = new float[outC];
        if (perChannel)
        {
            if (transposed)
                throw new QuantToolsException(ErrorCode.NotSupported, "per-channel weights for a transposed convolution are not supported");
            if (qp.Axis != 0)
                throw new QuantToolsException(ErrorCode.NotSupported, $"per-channel conv weights must use axis 0, got {qp.Axis}");
            for (int o = 0; o < outC; o++) { wzp[o] = (int)qp.ZeroPoints[o]; wscale[o] = (float)qp.Scales[o]; }
        }
        else
        {
            Array.Fill(wzp, (int)qp.ZeroPoint);
            Array.Fill(wscale, (float)qp.Scale);
        }
        bool allZero = wzp.All(z => z == 0);
        var backend = EngineProfile.ForConv(engine, cpu, allZero, groups, oph != 0 || opw != 0);
        if (backend.IsOnednn() && !allZero)
            throw new QuantToolsException(ErrorCode.NotSupported,
                "quantized::qconv_prepack: ONEDNN only supports symmetric quantization of weight, whose zero point must be 0.");
        if (backend.IsOnednn() && (oph != 0 || opw != 0))
            throw new QuantToolsException(ErrorCode.NotSupported, "quantized::conv_prepack: ONEDNN only supports zero output_padding.");

        float[]? b = null;
        if (bias is not null)
        {
            if (bias.Length != outC)
                throw new QuantToolsException(ErrorCode.ShapeMismatch, $"bias has {bias.Length} values for {outC} output channels");
            b = bias.ToFloat32().AsSpan<float>().ToArray();
        }

        // reorder to [OC][ (kh, kw, icg) ]
        int icg = shape.InPerGroup, ocg = shape.OutPerGroup, k = shape.K;
        var src = weight.IntRepr.AsSpan<sbyte>();
        var w = new sbyte[outC * k];
        for (int o = 0; o < outC; o++)
            for (int c = 0; c < icg; c++)
                for (int y = 0; y < kh; y++)
                    for (int x = 0; x < kw; x++)
                    {
                        int srcIdx = transposed
                            ? (((o / ocg) * icg + c) * ocg + o % ocg) * kh * kw + y * kw + x
                            : ((o * icg + c) * kh + y) * kw + x;
                        w[o * k + (y * kw + x) * icg + c] = src[srcIdx];
                    }
        return new PackedConvWeight(shape, engine, backend, spatial, perChannel, w, wzp, wscale, b);
    }

    /// <summary>
    /// Runs the layer on quint8 input [N, C_in, (H,) W] and requantizes to (<paramref name="outScale"/>,
    /// <paramref name="outZeroPoint"/>); <paramref name="relu"/> fuses ReLU (output floor at the zero point).
    /// </summary>
    public QTensor Run(QTensor x, double outScale, long outZeroPoint, bool relu) => Run(x, outScale, outZeroPoint, relu, null);

    /// <summary>The output shape for input <paramref name="x"/> (checks the input as <see cref="Run(QTensor, double, long, bool)"/> does).</summary>
    public int[] OutputShape(QTensor x)
    {
        CheckInput(x);
        int n = x.Shape[0], h = SpatialDims == 2 ? x.Shape[2] : 1, wd = x.Shape[^1];
        var (oh, ow) = Shape.OutputSize(h, wd);
        return SpatialDims == 2 ? [n, Shape.OutChannels, oh, ow] : [n, Shape.OutChannels, ow];
    }

    private void CheckInput(QTensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.DType != DType.QUInt8)
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"quantized conv needs quint8 input, got {x.DType.TorchName()}");
        if (x.QParams.IsPerChannel)
            throw new QuantToolsException(ErrorCode.InvalidQParams, "quantized conv needs a per-tensor quantized input");
        if (x.Shape.Length != SpatialDims + 2 || x.Shape[1] != Shape.InChannels)
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"input [{string.Join(", ", x.Shape)}] does not match the layer ({Shape.InChannels} input channels, {SpatialDims}-d)");
    }

    /// <summary>
    /// <see cref="Run(QTensor, double, long, bool)"/> into a caller's buffer: <paramref name="output"/> (when not null) must hold
    /// exactly the output's element count (see <see cref="OutputShape"/>); it becomes the result's storage. Its old
    /// contents do not matter.
    /// </summary>
    public QTensor Run(QTensor x, double outScale, long outZeroPoint, bool relu, byte[]? output)
    {
        int[] outShape = OutputShape(x); // checks the input
        int n = x.Shape[0], h = SpatialDims == 2 ? x.Shape[2] : 1, wd = x.Shape[^1];
        int oh = SpatialDims == 2 ? outShape[2] : 1, ow = outShape[^1];
        var stage = new OutputStage(Backend, x.QParams.Scale, WScale, Bias, outScale, outZeroPoint, relu, PerChannel);
        Tensor y;
        if (output is null) y = Tensor.Zeros(DType.UInt8, outShape);
        else
        {
            if (output.LongLength != Tensor.CheckedNumel(outShape))
                throw new ArgumentException($"conv output buffer holds {output.Length} bytes, the output has {Tensor.CheckedNumel(outShape)}", nameof(output));
            Array.Clear(output);
            y = new Tensor(DType.UInt8, outShape, output);
        }
        ConvKernels.Run(this, x.IntRepr.AsSpan<byte>(), (int)x.QParams.ZeroPoint, n, h, wd, oh, ow, stage, y.AsSpan<byte>(), Plan);
        return new QTensor(y, QParams.PerTensor(outScale, outZeroPoint, DType.QUInt8));
    }
}
