using System.Text.Json;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Linear;

namespace QuantTools.Core.Kernels.Ops;

/// <summary>Golden-case adapters for conv2d, conv1d, conv_transpose2d, linear (+ReLU) and dynamic_linear.</summary>
public sealed class ConvLinearHandlers : IOpHandler
{
    public IEnumerable<string> Ops => ["conv2d", "conv1d", "conv_transpose2d", "linear", "dynamic_linear"];

    private static int[] Ints(OpCase c, string key, int fallback)
    {
        if (c.Params.ValueKind != JsonValueKind.Object || !c.Params.TryGetProperty(key, out var v)) return [fallback];
        return v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().Select(e => e.GetInt32()).ToArray() : [v.GetInt32()];
    }

    public object Run(OpCase c)
    {
        var w = c.QTensor("w");
        var bias = c.OptionalTensor("bias");
        switch (c.Op)
        {
            case "linear":
            {
                var pw = PackedLinearWeight.Create(w, bias, c.Engine);
                return pw.Run(c.QTensor("x"), c.Double("out_scale"), c.Long("out_zero_point"), c.ParamBool("relu"));
            }
            case "dynamic_linear":
            {
                var pw = PackedLinearWeight.Create(w, bias, c.Engine);
                return pw.RunDynamic(c.Tensor("x_float"), relu: c.ParamBool("relu"), reduceRange: true);
            }
            default:
            {
                bool transposed = c.Op == "conv_transpose2d";
                int groups = Ints(c, "groups", 1)[0];
                var pw = PackedConvWeight.Create(w, bias, Ints(c, "stride", 1), Ints(c, "pad", 0), Ints(c, "dil", 1), groups,
                    transposed, transposed ? Ints(c, "output_padding", 0) : [], c.Engine);
                return pw.Run(c.QTensor("x"), c.Double("out_scale"), c.Long("out_zero_point"), c.ParamBool("relu"));
            }
        }
    }
}
