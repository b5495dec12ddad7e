using QuantTools.Core.Kernels.Normalization;
using QuantTools.Core.Kernels.Pooling;

namespace QuantTools.Core.Conformance.Ops;

/// <summary>
/// Golden cases of the binary ops of gen_golden.py <c>gen_ops</c> (QFunctional add, mul, cat, add_scalar,
/// mul_scalar), run as the TorchScript ops QFunctional calls.
/// </summary>
public sealed class BinaryCases : IOpCaseAdapter
{
    public IEnumerable<string> Ops => ["add", "add_relu", "mul", "mul_relu", "cat", "add_scalar", "mul_scalar"];

    public object Run(OpCase c)
    {
        double os = c.Double("out_scale");
        long oz = c.Long("out_zero_point");
        return c.Op switch
        {
            "add" or "add_relu" or "mul" or "mul_relu" => OpCaseAdapters.Call(c, "quantized::" + c.Op, c.QTensor("a"), c.QTensor("b"), os, oz),
            // QFunctional.cat(x, dim=0) with the module's scale / zero point.
            "cat" => OpCaseAdapters.Call(c, "quantized::cat", new List<object?> { c.QTensor("a"), c.QTensor("b") }, 0L, os, oz),
            // QFunctional.add_scalar / mul_scalar ignore the module's qparams: the op derives them.
            "add_scalar" => OpCaseAdapters.Call(c, "quantized::add_scalar", c.QTensor("a"), c.Double("scalar")),
            "mul_scalar" => OpCaseAdapters.Call(c, "quantized::mul_scalar", c.QTensor("a"), c.Double("scalar")),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedOperator, c.Op),
        };
    }
}

/// <summary>Golden cases of the unary quantized ops (activations, clamps), as the TorchScript ops the calls reach.</summary>
public sealed class UnaryCases : IOpCaseAdapter
{
    public IEnumerable<string> Ops =>
    [
        "relu", "relu6", "hardtanh_0_6", "hardtanh_m1_1", "clamp_m0.5_2", "hardswish", "sigmoid", "tanh", "hardsigmoid",
        "leaky_relu", "elu",
    ];

    public object Run(OpCase c)
    {
        var x = c.QTensor("x");
        // hardswish / leaky_relu / elu were called with explicit output qparams (from a MinMax observer on the float
        // result); the case records them as y's qparams.
        var y = c.Json.GetProperty("y");
        double os = y.GetProperty("scale").GetDouble();
        long oz = y.GetProperty("zero_point").GetInt64();
        return c.Op switch
        {
            "relu" => OpCaseAdapters.Call(c, "aten::relu", x),
            "relu6" => OpCaseAdapters.Call(c, "quantized::relu6", x, false),
            "hardtanh_0_6" => OpCaseAdapters.Call(c, "aten::hardtanh", x, 0.0, 6.0),
            "hardtanh_m1_1" => OpCaseAdapters.Call(c, "aten::hardtanh", x, -1.0, 1.0),
            "clamp_m0.5_2" => OpCaseAdapters.Call(c, "aten::clamp", x, -0.5, 2.0),
            "hardswish" => OpCaseAdapters.Call(c, "quantized::hardswish", x, os, oz),
            "sigmoid" => OpCaseAdapters.Call(c, "aten::sigmoid", x),
            "tanh" => OpCaseAdapters.Call(c, "aten::tanh", x),
            "hardsigmoid" => OpCaseAdapters.Call(c, "aten::hardsigmoid", x),
            "leaky_relu" => OpCaseAdapters.Call(c, "quantized::leaky_relu", x, 0.1, false, os, oz),
            "elu" => OpCaseAdapters.Call(c, "quantized::elu", x, os, oz, 1.0),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedOperator, c.Op),
        };
    }
}

/// <summary>
/// Golden cases of pooling, mean, flatten and channel_shuffle (through the registry) and of upsampling (no graph op
/// runs it yet, so the kernel is called directly).
/// </summary>
public sealed class PoolCases : IOpCaseAdapter
{
    public IEnumerable<string> Ops =>
    [
        "max_pool2d_3_2_1", "avg_pool2d_3_2_1", "avg_pool2d_3_2_1_nopad", "avg_pool2d_2", "avg_pool2d_3_1_0_ceil",
        "adaptive_avg_pool2d_1", "adaptive_avg_pool2d_3", "upsample_nearest_2", "upsample_bilinear_2",
        "upsample_bilinear_ac", "mean_hw", "flatten", "channel_shuffle_2",
    ];

    private static List<object?> L(params long[] v) => v.Select(x => (object?)x).ToList();

    public object Run(OpCase c)
    {
        var x = c.QTensor("x");
        int h = x.Shape.Length == 4 ? x.Shape[2] : 0, w = x.Shape.Length == 4 ? x.Shape[3] : 0;
        return c.Op switch
        {
            // max_pool2d(x, kernel, stride, padding, dilation, ceil_mode); avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
            "max_pool2d_3_2_1" => OpCaseAdapters.Call(c, "aten::max_pool2d", x, L(3, 3), L(2, 2), L(1, 1), L(1, 1), false),
            "avg_pool2d_3_2_1" => OpCaseAdapters.Call(c, "aten::avg_pool2d", x, L(3, 3), L(2, 2), L(1, 1), false, true, null),
            "avg_pool2d_3_2_1_nopad" => OpCaseAdapters.Call(c, "aten::avg_pool2d", x, L(3, 3), L(2, 2), L(1, 1), false, false, null),
            "avg_pool2d_2" => OpCaseAdapters.Call(c, "aten::avg_pool2d", x, L(2, 2), L(2, 2), L(0, 0), false, true, null),
            // The generator ran avg_pool2d(3, 2, 0, ceil_mode=True) under this name (numerics.md point 8).
            "avg_pool2d_3_1_0_ceil" => OpCaseAdapters.Call(c, "aten::avg_pool2d", x, L(3, 3), L(2, 2), L(0, 0), true, true, null),
            "adaptive_avg_pool2d_1" => OpCaseAdapters.Call(c, "aten::adaptive_avg_pool2d", x, L(1, 1)),
            "adaptive_avg_pool2d_3" => OpCaseAdapters.Call(c, "aten::adaptive_avg_pool2d", x, L(3, 3)),
            "upsample_nearest_2" => QResample.UpsampleNearest2d(x, h * 2, w * 2, 2.0, 2.0),
            "upsample_bilinear_2" => QResample.UpsampleBilinear2d(x, h * 2, w * 2, false, 2.0, 2.0),
            "upsample_bilinear_ac" => QResample.UpsampleBilinear2d(x, 11, 5, true),
            "mean_hw" => OpCaseAdapters.Call(c, "aten::mean", x, L(2, 3), true, null),
            "flatten" => OpCaseAdapters.Call(c, "aten::flatten", x, 1L),
            "channel_shuffle_2" => OpCaseAdapters.Call(c, "aten::channel_shuffle", x, 2L),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedOperator, c.Op),
        };
    }
}

/// <summary>Golden cases of quantized batch_norm2d and layer_norm (no graph op runs them yet: direct kernel calls).</summary>
public sealed class NormCases : IOpCaseAdapter
{
    public IEnumerable<string> Ops => ["batch_norm2d", "layer_norm"];

    public object Run(OpCase c)
    {
        var x = c.QTensor("x");
        float[] F(string k) => c.Tensor(k).ToFloat32().AsSpan<float>().ToArray();
        return c.Op switch
        {
            "batch_norm2d" => QNorm.BatchNorm2d(x, F("weight"), F("bias"), F("mean"), F("var"), c.Double("eps"),
                c.Double("out_scale"), c.Long("out_zero_point"), false, c.Engine),
            "layer_norm" => QNorm.LayerNorm(x, NormalizedSize(c), F("weight"), F("bias"), c.Double("eps"),
                c.Double("out_scale"), c.Long("out_zero_point"), c.Engine),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedOperator, c.Op),
        };
    }

    private static int NormalizedSize(OpCase c)
    {
        int n = 1;
        foreach (var d in c.Json.GetProperty("normalized_shape").EnumerateArray()) n *= d.GetInt32();
        return n;
    }
}
