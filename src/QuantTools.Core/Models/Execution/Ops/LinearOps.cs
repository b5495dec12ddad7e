using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// Quantized linear (+ReLU) on quantized inputs and dynamic linear (+ReLU) on float inputs; weights packed once per
/// node (<see cref="PackedLinearWeight"/>).
/// </summary>
internal sealed class LinearOps : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } =
        ["quantized::linear", "quantized::linear_relu", "quantized::linear_dynamic", "quantized::linear_relu_dynamic"];

    // linear(Tensor X, LinearPackedParams W_prepack, float Y_scale_i, int Y_zero_point_i)
    public override int OutputQParamsArg(string op) => op is "quantized::linear" or "quantized::linear_relu" ? 2 : -1;

    public override object? Prepack(GraphNode n, QEngine engine) => Prepack(n, engine, CpuClass.Avx512Vnni);

    public override object? Prepack(GraphNode n, QEngine engine, CpuClass cpu)
    {
        if (n.Inputs.Count < 2 || n.Inputs[1].Constant is not LinearPackedParams lp)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "linear packed params must be a module constant");
        if (lp.Weight is not QTensor w)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "float16 dynamic linear weights are not supported");
        try
        {
            return PackedLinearWeight.Create(w, lp.Bias, engine, cpu);
        }
        catch (QuantToolsException e)
        {
            throw new QuantToolsException(e.Code, "prepacking: " + e.Message, null, e);
        }
    }

    public override object?[] Run(in OpContext ctx, object?[] a)
    {
        var prep = (PackedLinearWeight)ctx.Prepacked!;
        if (ctx.Op is "quantized::linear_dynamic" or "quantized::linear_relu_dynamic")
        {
            // linear_dynamic(Tensor X, LinearPackedParams W_prepack, bool reduce_range=False)
            var xf = T(a[0], "input");
            if (xf.F is null) throw new QuantToolsException(ErrorCode.UnsupportedDType, "dynamic linear needs a float input");
            bool reduce = a.Length > 2 && ScalarOps.ToBool(a[2], "reduce_range");
            var yf = prep.RunDynamic(xf.F, ctx.Op == "quantized::linear_relu_dynamic", reduce);
            return [new RtTensor(yf, Layout.Contiguous(yf.Shape))];
        }
        var x = QIn(a[0], "input");
        byte[]? buf = x.DType == DType.QUInt8 && x.Shape.Length > 0 && x.Shape[^1] == prep.InFeatures
            ? ctx.Rent(Numel([.. x.Shape[..^1], prep.OutFeatures])) : null;
        var y = prep.Run(x, D(a[2], "scale"), (long)D(a[3], "zero_point"), IsRelu(ctx.Op), buf);
        return [new RtTensor(y, Layout.Contiguous(y.Shape))];
    }
}
