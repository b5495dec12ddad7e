using QuantTools.Core.Kernels.Elementwise;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// Table-driven activations (<see cref="QActivation"/>): hardswish, sigmoid, tanh, hardsigmoid, leaky_relu, elu.
/// The <c>quantized::</c> forms take explicit output qparams; the <c>aten::</c> forms keep the input's (hardswish,
/// leaky_relu, elu) or use the op's fixed ones (sigmoid, tanh, hardsigmoid).
/// </summary>
internal sealed class ActivationOps : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } =
    [
        "quantized::hardswish", "aten::hardswish", "aten::sigmoid", "aten::tanh", "aten::hardsigmoid",
        "quantized::leaky_relu", "aten::leaky_relu", "quantized::elu", "aten::elu",
    ];

    // quantized::hardswish(Tensor input, float output_scale, int output_zero_point)
    public override int OutputQParamsArg(string op) => op == "quantized::hardswish" ? 1 : -1;

    public override object?[] Run(in OpContext ctx, object?[] a)
    {
        var e = ctx.Engine;
        var x = T(a[0], "input");
        switch (ctx.Op)
        {
            case "quantized::hardswish":
                return [Same(x, QActivation.Hardswish(QIn(x, "input"), D(a[1], "scale"), (long)D(a[2], "zero_point"), e))];
            case "aten::hardswish":
            {
                var q = QIn(x, "input");
                return [Same(x, QActivation.Hardswish(q, q.QParams.Scale, q.QParams.ZeroPoint, e))];
            }
            case "aten::sigmoid": return [Same(x, QActivation.Sigmoid(QIn(x, "input"), e))];
            case "aten::tanh": return [Same(x, QActivation.Tanh(QIn(x, "input"), e))];
            case "aten::hardsigmoid": return [Same(x, QActivation.Hardsigmoid(QIn(x, "input"), e))];
            case "aten::leaky_relu":
            {
                var q = QIn(x, "input");
                return [Same(x, QActivation.LeakyRelu(q, (float)D(Arg(a, 1, 0.01), "negative_slope"), q.QParams.Scale, q.QParams.ZeroPoint, e))];
            }
            case "quantized::leaky_relu":
                // quantized::leaky_relu(Tensor qx, Scalar negative_slope, bool inplace, float output_scale, int output_zero_point)
                return [Same(x, QActivation.LeakyRelu(QIn(x, "input"), (float)D(a[1], "negative_slope"), D(a[3], "scale"), (long)D(a[4], "zero_point"), e))];
            case "quantized::elu":
                // quantized::elu(Tensor self, float output_scale, int output_zero_point, Scalar alpha=1, Scalar scale=1, Scalar input_scale=1)
                if (a.Length > 4 && (D(a[4], "scale") != 1 || D(Arg(a, 5, 1.0), "input_scale") != 1))
                    throw new QuantToolsException(ErrorCode.UnsupportedOperator, "quantized::elu with scale / input_scale other than 1");
                return [Same(x, QActivation.Elu(QIn(x, "input"), (float)D(Arg(a, 3, 1.0), "alpha"), D(a[1], "scale"), (long)D(a[2], "zero_point"), e))];
            default: // aten::elu(self, alpha=1, scale=1, input_scale=1)
            {
                var q = QIn(x, "input");
                if (D(Arg(a, 2, 1.0), "scale") != 1 || D(Arg(a, 3, 1.0), "input_scale") != 1)
                    throw new QuantToolsException(ErrorCode.UnsupportedOperator, "elu with scale / input_scale other than 1");
                return [Same(x, QActivation.Elu(q, (float)D(Arg(a, 1, 1.0), "alpha"), q.QParams.Scale, q.QParams.ZeroPoint, e))];
            }
        }
    }
}
