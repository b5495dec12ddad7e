using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Pooling;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// Pooling and spatial mean: max_pool2d, avg_pool2d, adaptive_avg_pool2d, mean over (H, W). PyTorch's path (and so
/// its rounding) depends on the input's memory format, which <see cref="RtTensor.Strides"/> tracks.
/// </summary>
internal sealed class PoolOps : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } =
        ["aten::adaptive_avg_pool2d", "aten::avg_pool2d", "aten::max_pool2d", "aten::mean"];

    public override object?[] Run(in OpContext ctx, object?[] a) => ctx.Op switch
    {
        "aten::adaptive_avg_pool2d" => [AdaptiveAvgPool(ctx.Engine, T(a[0], "input"), Ints(a[1], "output_size"))],
        "aten::avg_pool2d" => [AvgPool(ctx, T(a[0], "input"), a)],
        "aten::max_pool2d" => [MaxPool(ctx, T(a[0], "input"), a)],
        _ => [Mean(ctx.Engine, T(a[0], "input"), a)],
    };

    private static RtTensor AdaptiveAvgPool(QEngine engine, RtTensor x, int[] size)
    {
        var q = QIn(x, "input");
        if (q.Shape.Length != 4) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "adaptive_avg_pool2d needs a 4-d input");
        var (oh, ow) = Pair(size);
        int h = q.Shape[2], w = q.Shape[3];
        if (engine == QEngine.Qnnpack && q.DType == DType.QUInt8 && h % oh == 0 && w % ow == 0)
        {
            var yq = QPool.AdaptiveAvgPool2d(q, oh, ow, engine);
            return new RtTensor(yq, Layout.ChannelsLast(yq.Shape));
        }
        if (Layout.IsChannelsLastContiguous(x.Shape, x.Strides))
            return new RtTensor(QPool.AdaptiveAvgPool2dNhwc(q, oh, ow), Layout.ChannelsLast([q.Shape[0], q.Shape[1], oh, ow]));
        var y = QPool.AdaptiveAvgPool2d(q, oh, ow, engine == QEngine.Qnnpack ? QEngine.X86 : engine);
        return new RtTensor(y, Layout.Contiguous(y.Shape));
    }

    private static RtTensor AvgPool(in OpContext ctx, RtTensor x, object?[] a)
    {
        // avg_pool2d(input, kernel_size, stride=[], padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None)
        var q = QIn(x, "input");
        var k = Pair(Ints(a[1], "kernel_size"));
        var s = a.Length > 2 && Ints(a[2], "stride") is { Length: > 0 } st ? Pair(st) : k;
        var p = a.Length > 3 ? Pair(Ints(a[3], "padding")) : (0, 0);
        bool ceil = a.Length > 4 && ScalarOps.ToBool(a[4], "ceil_mode");
        bool cip = a.Length <= 5 || ScalarOps.ToBool(a[5], "count_include_pad");
        int? div = a.Length > 6 && a[6] is not null ? (int)L(a[6], "divisor_override") : null;
        bool cl = IsChannelsLastOnly(x);
        QTensor y;
        if (q.DType == DType.QUInt8)
        {
            var shape = QPool.AvgPool2dShape(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, div);
            var buf = ctx.Rent(Numel(shape));
            QPool.AvgPool2d(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, cip, div, ctx.Engine, cl, buf);
            y = LikeInput(q, shape, buf);
        }
        else y = QPool.AvgPool2d(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, cip, div, ctx.Engine, cl);
        return new RtTensor(y, cl ? Layout.ChannelsLast(y.Shape) : Layout.Contiguous(y.Shape));
    }

    private static RtTensor MaxPool(in OpContext ctx, RtTensor x, object?[] a)
    {
        // max_pool2d(input, kernel_size, stride=[], padding=0, dilation=1, ceil_mode=False)
        var q = QIn(x, "input");
        var k = Pair(Ints(a[1], "kernel_size"));
        var s = a.Length > 2 && Ints(a[2], "stride") is { Length: > 0 } st ? Pair(st) : k;
        var p = a.Length > 3 ? Pair(Ints(a[3], "padding")) : (0, 0);
        var d = a.Length > 4 ? Pair(Ints(a[4], "dilation")) : (1, 1);
        bool ceil = a.Length > 5 && ScalarOps.ToBool(a[5], "ceil_mode");
        if (d != (1, 1)) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "max_pool2d with dilation is not supported");
        QTensor y;
        if (q.DType == DType.QUInt8)
        {
            var shape = QPool.MaxPool2dShape(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil);
            var buf = ctx.Rent(Numel(shape));
            QPool.MaxPool2d(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, ctx.Engine, buf);
            y = LikeInput(q, shape, buf);
        }
        else y = QPool.MaxPool2d(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, ctx.Engine);
        return new RtTensor(y, IsChannelsLastOnly(x) ? Layout.ChannelsLast(y.Shape) : Layout.Contiguous(y.Shape));
    }

    private static RtTensor Mean(QEngine engine, RtTensor x, object?[] a)
    {
        // mean(self, dim, keepdim=False, dtype=None)
        var q = QIn(x, "input");
        var dims = Ints(a[1], "dim").Select(d => d < 0 ? d + q.Shape.Length : d).ToArray();
        bool keep = a.Length > 2 && ScalarOps.ToBool(a[2], "keepdim");
        if (a.Length > 3 && a[3] is not null) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "mean with a dtype");
        bool hw = q.Shape.Length == 4 && dims.Length == 2 && dims[0] == 2 && dims[1] == 3;
        if (hw && engine == QEngine.Qnnpack && q.DType == DType.QUInt8)
        {
            var y = QPool.MeanHW(q, keep, engine);
            return new RtTensor(y, Layout.Contiguous(y.Shape));
        }
        if (hw && Layout.IsContiguous(x.Shape, x.Strides))
        {
            var y = QPool.MeanHW(q, keep, QEngine.X86);
            return new RtTensor(y, Layout.Contiguous(y.Shape));
        }
        if (!hw) throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"quantized mean over dims [{string.Join(", ", dims)}] of a {q.Shape.Length}-d tensor");
        var yq = QPool.MeanHWDequantized(q, keep);
        return new RtTensor(yq, Layout.Contiguous(yq.Shape));
    }
}
