using System.Text.Json;
using QuantTools.Core.Formats.Torch;

namespace QuantTools.Core.Conformance.Ops;

/// <summary>
/// Golden cases of conv2d, conv1d, conv_transpose2d, linear (+ReLU) and dynamic_linear: the module's packed params are
/// built from the case and run through the registry's conv / linear ops (prepack, then run).
/// </summary>
public sealed class ConvLinearCases : IOpCaseAdapter
{
    public IEnumerable<string> Ops => ["conv2d", "conv1d", "conv_transpose2d", "linear", "dynamic_linear"];

    private static long[] Ints(OpCase c, string key, long fallback)
    {
        if (c.Params.ValueKind != JsonValueKind.Object || !c.Params.TryGetProperty(key, out var v)) return [fallback];
        return v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().Select(e => e.GetInt64()).ToArray() : [v.GetInt64()];
    }

    public object Run(OpCase c)
    {
        var w = c.QTensor("w");
        var bias = c.OptionalTensor("bias");
        bool relu = c.ParamBool("relu");
        switch (c.Op)
        {
            case "linear":
                return OpCaseAdapters.Call(c, relu ? "quantized::linear_relu" : "quantized::linear", c.QTensor("x"),
                    new LinearPackedParams { Weight = w, Bias = bias }, c.Double("out_scale"), c.Long("out_zero_point"));
            case "dynamic_linear":
                // nn.quantized.dynamic.Linear (version 4) passes reduce_range=True
                return OpCaseAdapters.Call(c, relu ? "quantized::linear_relu_dynamic" : "quantized::linear_dynamic", c.Tensor("x_float"),
                    new LinearPackedParams { Weight = w, Bias = bias }, true);
            default:
            {
                bool transposed = c.Op == "conv_transpose2d";
                if (transposed && relu) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "conv_transpose2d has no fused ReLU op");
                var packed = new ConvPackedParams
                {
                    Version = 3, SpatialDims = c.Op == "conv1d" ? 1 : 2, Weight = w, Bias = bias,
                    Stride = Ints(c, "stride", 1), Padding = Ints(c, "pad", 0), Dilation = Ints(c, "dil", 1),
                    OutputPadding = transposed ? Ints(c, "output_padding", 0) : [], Groups = Ints(c, "groups", 1)[0], Transpose = transposed,
                };
                string op = transposed ? "quantized::conv_transpose2d" : $"quantized::{c.Op}{(relu ? "_relu" : "")}";
                return OpCaseAdapters.Call(c, op, c.QTensor("x"), packed, c.Double("out_scale"), c.Long("out_zero_point"));
            }
        }
    }
}
