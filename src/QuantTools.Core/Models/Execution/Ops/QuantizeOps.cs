using QuantTools.Core.Models.Graph;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>Crossing between float and quantized tensors: <c>quantize_per_tensor</c>, <c>dequantize</c>, <c>to</c>.</summary>
internal sealed class QuantizeOps : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } = ["aten::quantize_per_tensor", "aten::dequantize", "aten::to"];

    public override int OutputQParamsArg(string op) => op == "aten::quantize_per_tensor" ? 1 : -1;

    public override object?[] Run(in OpContext ctx, object?[] a)
    {
        switch (ctx.Op)
        {
            case "aten::quantize_per_tensor":
            {
                // quantize_per_tensor(Tensor self, float scale, int zero_point, ScalarType dtype)
                var x = T(a[0], "input");
                if (x.F is null) throw new QuantToolsException(ErrorCode.UnsupportedDType, "quantize_per_tensor needs a float input");
                var dt = ScalarOps.DTypeOfCode(L(a[3], "dtype"));
                var q = Quantizer.Quantize(x.F.ToFloat32(), QParams.PerTensor(D(a[1], "scale"), (long)D(a[2], "zero_point"), dt));
                return [new RtTensor(q, Layout.LikeSuggested(x.Shape, x.Strides))];
            }
            case "aten::dequantize":
            {
                var x = T(a[0], "input");
                if (x.Q is null) return [x];
                return [new RtTensor(Quantizer.Dequantize(x.Q), Layout.LikeSuggested(x.Shape, x.Strides))];
            }
            default: // aten::to
            {
                var x = T(a[0], "input");
                var target = a.Length > 1 ? a[1] : null;
                if (x.F is not null && target is long code && ScalarOps.DTypeOfCode(code) == x.F.DType) return [x];
                if (x.F is not null && target is long code2 && ScalarOps.DTypeOfCode(code2) == DType.Float32) return [new RtTensor(x.F.ToFloat32(), x.Strides)];
                throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"aten::to with {ModelGraph.Describe(target)} is not supported");
            }
        }
    }
}
