using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Models.Graph;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// Quantized conv1d / conv2d (+ReLU) and transposed convs: the module's packed params are packed once per node
/// (<see cref="PackedConvWeight"/>, which picks the engine's kernel path); the output is channels_last like PyTorch's.
/// </summary>
internal sealed class ConvOps : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } =
    [
        "quantized::conv1d", "quantized::conv1d_relu", "quantized::conv2d", "quantized::conv2d_relu",
        "quantized::conv_transpose1d", "quantized::conv_transpose2d",
    ];

    // conv(Tensor qx, ConvPackedParams packed, float output_scale, int output_zero_point)
    public override int OutputQParamsArg(string op) => 2;

    public override object? Prepack(GraphNode n, QEngine engine) => Prepack(n, engine, CpuClass.Avx512Vnni);

    public override object? Prepack(GraphNode n, QEngine engine, CpuClass cpu)
    {
        if (n.Inputs.Count < 2 || n.Inputs[1].Constant is not ConvPackedParams cp)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "conv packed params must be a module constant");
        static int[] I(long[] v) => v.Select(x => checked((int)x)).ToArray();
        try
        {
            return PackedConvWeight.Create(cp.Weight, cp.Bias, I(cp.Stride), I(cp.Padding), I(cp.Dilation), checked((int)cp.Groups),
                cp.Transpose, I(cp.OutputPadding), engine, cpu);
        }
        catch (QuantToolsException e)
        {
            throw new QuantToolsException(e.Code, "prepacking: " + e.Message, null, e);
        }
    }

    public override object?[] Run(in OpContext ctx, object?[] a)
    {
        var prep = (PackedConvWeight)ctx.Prepacked!;
        var x = QIn(a[0], "input");
        var y = prep.Run(x, D(a[2], "scale"), (long)D(a[3], "zero_point"), IsRelu(ctx.Op), ctx.Rent(Numel(prep.OutputShape(x))));
        return [new RtTensor(y, y.Shape.Length == 4 ? Layout.ChannelsLast(y.Shape) : ChannelsLast1d(y.Shape))];
    }

    private static long[] ChannelsLast1d(int[] shape)
    {
        // conv1d runs as conv2d on [N, C, 1, W] in channels_last, then squeezes dim 2
        if (shape.Length != 3) return Layout.Contiguous(shape);
        var s4 = Layout.ChannelsLast([shape[0], shape[1], 1, shape[2]]);
        return [s4[0], s4[1], s4[3]];
    }
}
