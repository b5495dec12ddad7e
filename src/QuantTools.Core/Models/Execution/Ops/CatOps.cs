using QuantTools.Core.Kernels.Elementwise;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// Concatenation: <c>quantized::cat</c> / <c>cat_relu</c> (explicit output qparams) and <c>aten::cat</c> of quantized
/// tensors (the first input's qparams). Channel concatenation of channels_last inputs takes PyTorch's NHWC kernel,
/// which rounds differently from the general path.
/// </summary>
internal sealed class CatOps : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } = ["quantized::cat", "quantized::cat_relu", "aten::cat"];

    // quantized::cat(Tensor[] qx, int dim, float? scale, int? zero_point)
    public override int OutputQParamsArg(string op) => op == "aten::cat" ? -1 : 2;

    public override object?[] Run(in OpContext ctx, object?[] a)
    {
        var xs = TensorList(a[0]);
        if (ctx.Op == "aten::cat")
        {
            int d = (int)L(Arg(a, 1, 0L), "dim");
            if (xs.Any(x => x.Q is null)) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "float cat is not supported");
            return [Cat(ctx, xs, d, xs[0].Q!.QParams.Scale, xs[0].Q!.QParams.ZeroPoint, false)];
        }
        int dim = (int)L(a[1], "dim");
        double scale = a.Length > 2 && a[2] is not null ? D(a[2], "scale") : xs[0].Q!.QParams.Scale;
        long zp = a.Length > 3 && a[3] is not null ? (long)D(a[3], "zero_point") : xs[0].Q!.QParams.ZeroPoint;
        return [Cat(ctx, xs, dim, scale, zp, ctx.Op == "quantized::cat_relu")];
    }

    private static RtTensor Cat(in OpContext ctx, List<RtTensor> xs, int dim, double scale, long zp, bool relu)
    {
        if (xs.Count == 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "cat of an empty list");
        var qs = xs.Select(x => QIn(x, "cat input")).ToList();
        int rank = qs[0].Shape.Length;
        if (dim < 0) dim += rank;
        bool nhwc = dim == 1 && xs.All(x => x.Shape.Length == 4 && Layout.IsChannelsLastContiguous(x.Shape, x.Strides));
        if (nhwc)
        {
            var y = QElementwise.CatNhwc(qs, scale, zp, relu);
            return new RtTensor(y, Layout.ChannelsLast(y.Shape));
        }
        if (relu) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "cat_relu outside the channels_last fast path");
        var yq = QElementwise.Cat(qs, dim, scale, zp, ctx.Engine);
        // the general path dequantizes, torch.cat's the floats (channels_last only if every input suggests it) and quantizes
        bool cl = xs.All(x => Layout.SuggestsChannelsLast(x.Shape, x.Strides));
        return new RtTensor(yq, cl ? Layout.ChannelsLast(yq.Shape) : Layout.Contiguous(yq.Shape));
    }
}
