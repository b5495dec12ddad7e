using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// Quantized add / mul (+ReLU) of two tensors and with a scalar. Element-wise kernels split vector blocks and a scalar
/// tail in memory order, so channels_last operands run in NHWC order to round as PyTorch does.
/// </summary>
internal sealed class BinaryOps : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } =
    [
        "quantized::add", "quantized::add_relu", "quantized::mul", "quantized::mul_relu",
        "quantized::add_scalar", "quantized::add_scalar_relu", "quantized::mul_scalar", "quantized::mul_scalar_relu",
    ];

    // quantized::add(Tensor qa, Tensor qb, float scale, int zero_point)
    public override int OutputQParamsArg(string op) => op.Contains("_scalar", StringComparison.Ordinal) ? -1 : 2;

    public override object?[] Run(in OpContext ctx, object?[] a)
    {
        bool relu = IsRelu(ctx.Op);
        if (ctx.Op.Contains("_scalar", StringComparison.Ordinal))
        {
            // the scalar forms derive their output qparams from the input's and the scalar
            var x = T(a[0], "input");
            var y = ctx.Op.Contains("add", StringComparison.Ordinal)
                ? QElementwise.AddScalar(QIn(x, "input"), D(a[1], "other"), relu, ctx.Engine)
                : QElementwise.MulScalar(QIn(x, "input"), D(a[1], "other"), relu, ctx.Engine);
            return [Same(x, y)];
        }
        return [TwoTensors(ctx, a, relu, ctx.Op.StartsWith("quantized::add", StringComparison.Ordinal))];
    }

    private static RtTensor TwoTensors(in OpContext ctx, object?[] a, bool relu, bool add)
    {
        var e = ctx.Engine;
        var x = T(a[0], "a");
        var xb = T(a[1], "b");
        var qa = QIn(x, "a");
        var qb = QIn(xb, "b");
        if (!qa.Shape.SequenceEqual(qb.Shape))
        {
            // mul is the same integer formula on its vector and scalar paths, so broadcasting by expansion is exact
            if (add) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "quantized add with broadcasting is not supported");
            var shape = Relayout.BroadcastShape(qa.Shape, qb.Shape);
            qa = Relayout.Expand(qa, shape);
            qb = Relayout.Expand(qb, shape);
        }
        bool nhwc = qa.Shape.Length == 4 && Layout.SuggestsChannelsLast(x.Shape, x.Strides) &&
                    Layout.IsChannelsLastContiguous(x.Shape, x.Strides) && Layout.IsChannelsLastContiguous(xb.Shape, xb.Strides) &&
                    !Layout.IsContiguous(x.Shape, x.Strides);
        double os = D(a[2], "scale");
        long oz = (long)D(a[3], "zero_point");
        QTensor y;
        if (qa.DType == DType.QUInt8 && qb.DType == DType.QUInt8 && qa.Shape.SequenceEqual(qb.Shape))
        {
            // pooled buffers; the NHWC operands and result are temporaries that go straight back to the pool
            var ta = nhwc ? Relayout.ToNhwc(qa, ctx.Rent(qa.Length)) : qa;
            var tb = nhwc ? Relayout.ToNhwc(qb, ctx.Rent(qb.Length)) : qb;
            var buf = ctx.Rent(ta.Length);
            if (add) QElementwise.Add(ta, tb, os, oz, relu, e, buf);
            else QElementwise.Mul(ta, tb, os, oz, relu, e, buf);
            y = new QTensor(new Tensor(DType.UInt8, (int[])ta.Shape.Clone(), buf), QParams.PerTensor(os, oz, DType.QUInt8));
            if (nhwc)
            {
                var yn = y;
                y = Relayout.FromNhwc(yn, ctx.Rent(yn.Length));
                ctx.Return((byte[])ta.IntRepr.Data);
                ctx.Return((byte[])tb.IntRepr.Data);
                ctx.Return(buf);
            }
        }
        else
        {
            if (nhwc)
            {
                qa = Relayout.ToNhwc(qa);
                qb = Relayout.ToNhwc(qb);
            }
            y = add ? QElementwise.Add(qa, qb, os, oz, relu, e) : QElementwise.Mul(qa, qb, os, oz, relu, e);
            if (nhwc) y = Relayout.FromNhwc(y);
        }
        return new RtTensor(y, Layout.SuggestsChannelsLast(x.Shape, x.Strides) ? Layout.ChannelsLast(y.Shape) : Layout.Contiguous(y.Shape));
    }
}
