using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Normalization;
using QuantTools.Core.Kernels.Pooling;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Ops;

/// <summary>
/// Golden "ops" adapters for the element-wise, activation, pooling, resampling and normalization ops of
/// gen_golden.py <c>gen_ops</c>. Each maps a case to the reusable kernel call PyTorch made there.
/// </summary>
public sealed class BinaryOpHandler : IOpHandler
{
    public IEnumerable<string> Ops => ["add", "add_relu", "mul", "mul_relu", "cat", "add_scalar", "mul_scalar"];

    public object Run(OpCase c)
    {
        var e = c.Engine;
        return c.Op switch
        {
            "add" => QElementwise.Add(c.QTensor("a"), c.QTensor("b"), c.Double("out_scale"), c.Long("out_zero_point"), false, e),
            "add_relu" => QElementwise.Add(c.QTensor("a"), c.QTensor("b"), c.Double("out_scale"), c.Long("out_zero_point"), true, e),
            "mul" => QElementwise.Mul(c.QTensor("a"), c.QTensor("b"), c.Double("out_scale"), c.Long("out_zero_point"), false, e),
            "mul_relu" => QElementwise.Mul(c.QTensor("a"), c.QTensor("b"), c.Double("out_scale"), c.Long("out_zero_point"), true, e),
            // QFunctional.cat(x, dim=0) with the module's scale / zero point.
            "cat" => QElementwise.Cat([c.QTensor("a"), c.QTensor("b")], 0, c.Double("out_scale"), c.Long("out_zero_point"), e),
            // QFunctional.add_scalar / mul_scalar ignore the module's qparams: the op derives them.
            "add_scalar" => QElementwise.AddScalar(c.QTensor("a"), c.Double("scalar"), false, e),
            "mul_scalar" => QElementwise.MulScalar(c.QTensor("a"), c.Double("scalar"), false, e),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedOperator, c.Op),
        };
    }
}

public sealed class UnaryOpHandler : IOpHandler
{
    public IEnumerable<string> Ops =>
    [
        "relu", "relu6", "hardtanh_0_6", "hardtanh_m1_1", "clamp_m0.5_2", "hardswish", "sigmoid", "tanh", "hardsigmoid",
        "leaky_relu", "elu",
    ];

    public object Run(OpCase c)
    {
        var x = c.QTensor("x");
        var e = c.Engine;
        // hardswish / leaky_relu / elu were called with explicit output qparams (from a MinMax observer on the float
        // result); the case records them as y's qparams.
        var y = c.Json.GetProperty("y");
        double os = y.GetProperty("scale").GetDouble();
        long oz = y.GetProperty("zero_point").GetInt64();
        return c.Op switch
        {
            "relu" => QActivation.Relu(x, e),
            "relu6" => QActivation.Relu6(x, e),
            "hardtanh_0_6" => QActivation.Hardtanh(x, 0f, 6f, e),
            "hardtanh_m1_1" => QActivation.Hardtanh(x, -1f, 1f, e),
            "clamp_m0.5_2" => QActivation.Clamp(x, -0.5f, 2f, e),
            "hardswish" => QActivation.Hardswish(x, os, oz, e),
            "sigmoid" => QActivation.Sigmoid(x, e),
            "tanh" => QActivation.Tanh(x, e),
            "hardsigmoid" => QActivation.Hardsigmoid(x, e),
            "leaky_relu" => QActivation.LeakyRelu(x, 0.1f, os, oz, e),
            "elu" => QActivation.Elu(x, 1f, os, oz, e),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedOperator, c.Op),
        };
    }
}

public sealed class PoolOpHandler : IOpHandler
{
    public IEnumerable<string> Ops =>
    [
        "max_pool2d_3_2_1", "avg_pool2d_3_2_1", "avg_pool2d_3_2_1_nopad", "avg_pool2d_2", "avg_pool2d_3_1_0_ceil",
        "adaptive_avg_pool2d_1", "adaptive_avg_pool2d_3", "upsample_nearest_2", "upsample_bilinear_2",
        "upsample_bilinear_ac", "mean_hw", "flatten", "channel_shuffle_2",
    ];

    public object Run(OpCase c)
    {
        var x = c.QTensor("x");
        var e = c.Engine;
        int h = x.Shape.Length == 4 ? x.Shape[2] : 0, w = x.Shape.Length == 4 ? x.Shape[3] : 0;
        return c.Op switch
        {
            "max_pool2d_3_2_1" => QPool.MaxPool2d(x, 3, 3, 2, 2, 1, 1, false, e),
            "avg_pool2d_3_2_1" => QPool.AvgPool2d(x, 3, 3, 2, 2, 1, 1, false, true, null, e),
            "avg_pool2d_3_2_1_nopad" => QPool.AvgPool2d(x, 3, 3, 2, 2, 1, 1, false, false, null, e),
            "avg_pool2d_2" => QPool.AvgPool2d(x, 2, 2, 2, 2, 0, 0, false, true, null, e),
            // The generator ran avg_pool2d(3, 2, 0, ceil_mode=True) under this name (numerics.md point 8).
            "avg_pool2d_3_1_0_ceil" => QPool.AvgPool2d(x, 3, 3, 2, 2, 0, 0, true, true, null, e),
            "adaptive_avg_pool2d_1" => QPool.AdaptiveAvgPool2d(x, 1, 1, e),
            "adaptive_avg_pool2d_3" => QPool.AdaptiveAvgPool2d(x, 3, 3, e),
            "upsample_nearest_2" => QResample.UpsampleNearest2d(x, h * 2, w * 2, 2.0, 2.0),
            "upsample_bilinear_2" => QResample.UpsampleBilinear2d(x, h * 2, w * 2, false, 2.0, 2.0),
            "upsample_bilinear_ac" => QResample.UpsampleBilinear2d(x, 11, 5, true),
            "mean_hw" => QPool.MeanHW(x, true, e),
            "flatten" => QResample.Flatten(x, 1),
            "channel_shuffle_2" => QResample.ChannelShuffle(x, 2),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedOperator, c.Op),
        };
    }
}

public sealed class NormOpHandler : IOpHandler
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
