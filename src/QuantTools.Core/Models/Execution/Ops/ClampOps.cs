using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// The clamp family: relu (quantized and float), relu6, hardtanh, clamp. Output qparams are the input's. Reproduces
/// PyTorch's qnnpack clamp layout behaviour (see <see cref="QnnpackClamp"/>).
/// </summary>
internal sealed class ClampOps : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } =
        ["quantized::relu6", "aten::relu", "aten::relu_", "aten::hardtanh", "aten::hardtanh_", "aten::clamp", "aten::clamp_"];

    public override object?[] Run(in OpContext ctx, object?[] a)
    {
        var e = ctx.Engine;
        switch (ctx.Op)
        {
            case "quantized::relu6":
            {
                var x = T(a[0], "input");
                var q = QIn(x, "input");
                if (q.DType != DType.QUInt8) return [QnnpackClamp(ctx, x, QActivation.Relu6(q, e))];
                var buf = ctx.Rent(q.Length);
                QActivation.Hardtanh(q, 0f, 6f, e, buf);
                return [QnnpackClamp(ctx, x, LikeInput(q, q.Shape, buf))];
            }
            case "aten::relu" or "aten::relu_":
            {
                var x = T(a[0], "input");
                if (x.Q is { DType: DType.QUInt8 } xq)
                {
                    var buf = ctx.Rent(xq.Length);
                    QActivation.Relu(xq, e, buf);
                    return [Same(x, LikeInput(xq, xq.Shape, buf))];
                }
                if (x.Q is not null) return [Same(x, QActivation.Relu(x.Q, e))];
                return [new RtTensor(FloatRelu(x.F!), Layout.LikeSuggested(x.Shape, x.Strides))];
            }
            default: // hardtanh(self, min_val=-1, max_val=1), clamp(self, min=None, max=None)
            {
                var x = T(a[0], "input");
                var q = QIn(x, "input");
                float lo = a.Length > 1 && a[1] is not null ? (float)D(a[1], "min") : float.NegativeInfinity;
                float hi = a.Length > 2 && a[2] is not null ? (float)D(a[2], "max") : float.PositiveInfinity;
                if (ctx.Op.StartsWith("aten::hardtanh", StringComparison.Ordinal))
                {
                    lo = a.Length > 1 ? (float)D(a[1], "min_val") : -1f;
                    hi = a.Length > 2 ? (float)D(a[2], "max_val") : 1f;
                }
                QTensor y;
                if (q.DType == DType.QUInt8)
                {
                    var buf = ctx.Rent(q.Length);
                    QActivation.Hardtanh(q, lo, hi, e, buf);
                    y = LikeInput(q, q.Shape, buf);
                }
                else y = QActivation.Hardtanh(q, lo, hi, e);
                return [float.IsInfinity(lo) || float.IsInfinity(hi) ? Same(x, y) : QnnpackClamp(ctx, x, y)];
            }
        }
    }

    /// <summary>
    /// PyTorch's <c>qnnpack_clamp</c> (relu6, hardtanh, clamp with both bounds; qnnpack engine, quint8) clamps the
    /// input's memory in its suggested format but allocates the output as NCHW-contiguous, so a channels_last input
    /// comes back with its NHWC memory read as NCHW: the channels, rows and columns are scrambled. PyTorch 2.11 does
    /// this (the qnnpack relu6_eager golden model proves it), so the executor does it too.
    /// </summary>
    private static RtTensor QnnpackClamp(in OpContext ctx, RtTensor x, QTensor clamped)
    {
        if (ctx.Engine != QEngine.Qnnpack || clamped.DType != DType.QUInt8 || x.Shape.Length != 4 || !Layout.SuggestsChannelsLast(x.Shape, x.Strides))
            return Same(x, clamped);
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        var src = clamped.IntRepr.AsSpan<byte>();
        var dst = ctx.Rent(src.Length);
        int i = 0;
        for (int b = 0; b < n; b++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++)
                    for (int ch = 0; ch < c; ch++)
                        dst[i++] = src[((b * c + ch) * h + y) * w + xx];
        ctx.Return(clamped.IntRepr.Data as byte[]); // the clamped tensor is a temporary (returned only when pooled)
        var q = new QTensor(new Tensor(DType.UInt8, (int[])x.Shape.Clone(), dst), clamped.QParams);
        return new RtTensor(q, Layout.Contiguous(x.Shape));
    }

    private static Tensor FloatRelu(Tensor x)
    {
        var f = x.ToFloat32();
        var src = f.AsSpan<float>();
        var y = new float[src.Length];
        for (int i = 0; i < y.Length; i++) y[i] = src[i] > 0f || float.IsNaN(src[i]) ? src[i] : 0f;
        return new Tensor(DType.Float32, (int[])x.Shape.Clone(), y);
    }
}
