using QuantTools.Core.Kernels;
using QuantTools.Core.Models;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Models;

public class LayerQParamsTests
{
    [Theory]
    [InlineData(0.5, 1 << 30, 0)]
    [InlineData(0.25, 1 << 30, 1)]
    [InlineData(1.0, 1 << 30, -1)]
    [InlineData(0.75, 1610612736, 0)]
    public void FixedPointMultiplierOfExactPowers(double m, int expectedMultiplier, int expectedShift)
    {
        var (mult, shift) = FixedPointMultiplier.From(m);
        Assert.Equal(expectedMultiplier, mult);
        Assert.Equal(expectedShift, shift);
        Assert.Equal(m, FixedPointMultiplier.ToDouble(mult, shift));
    }

    [Fact]
    public void FixedPointMultiplierRoundsHalfAwayAndCarries()
    {
        // 0.6144 * 2^31 = 1319413953.33 -> 1319413953, exponent -11
        var (mult, shift) = FixedPointMultiplier.From(0.0003);
        Assert.Equal(1319413953, mult);
        Assert.Equal(11, shift);
        // a q that rounds up to 2^31 carries into the exponent
        double nearOne = 1 - Math.ScaleB(1, -33);
        var (m2, s2) = FixedPointMultiplier.From(nearOne);
        Assert.Equal(1 << 30, m2);
        Assert.Equal(-1, s2);
        Assert.Equal((0, 0), FixedPointMultiplier.From(0));
        Assert.Throws<QuantToolsException>(() => FixedPointMultiplier.From(double.NaN));
    }

    internal static QTensor PerChannelWeight(double[] scales, sbyte[] values, int outChannels)
    {
        int inner = values.Length / outChannels;
        var t = new Tensor(DType.Int8, [outChannels, inner], values);
        return new QTensor(t, QParams.PerChannel(scales, new long[scales.Length], 0, DType.QInt8, QScheme.PerChannelSymmetric));
    }

    [Fact]
    public void OutputQParamsFlowToTheNextLayerAndGiveMultipliers()
    {
        var w = PerChannelWeight([0.01, 0.02], [1, -2, 3, 4], 2);
        var model = new QuantModel
        {
            Source = "test", Form = "state_dict",
            Layers =
            [
                new ModelLayer { Name = "quant", Kind = "Quantize", OutputScale = 0.5, OutputZeroPoint = 10 },
                new ModelLayer { Name = "fc", Kind = "Linear", OutputScale = 0.25, OutputZeroPoint = 3, Weight = w, Bias = Tensor.FromArray([0.1f, 0.2f], 2) },
                new ModelLayer { Name = "relu6", Kind = "ReLU6" },
                new ModelLayer { Name = "dequant", Kind = "DeQuantize" },
            ],
        };
        var rows = LayerQParams.For(model);
        Assert.Null(rows[0].InputScale);
        Assert.Equal(0.5, rows[1].InputScale);
        Assert.Equal(10, rows[1].InputZeroPoint);
        Assert.Equal("quant", rows[1].InputLayer);
        Assert.Equal([0.5 * 0.01 / 0.25, 0.5 * 0.02 / 0.25], rows[1].Multipliers!);
        Assert.Equal(FixedPointMultiplier.From(0.02).Multiplier, rows[1].FixedPointMultipliers![0]);
        Assert.Equal(FixedPointMultiplier.From(0.04).RightShift, rows[1].Shifts![1]);
        Assert.Equal(2.0, rows[1].WeightScaleSpread);
        Assert.True(rows[1].HasBias);
        Assert.Equal("per_channel_symmetric", rows[1].WeightQScheme);
        // ReLU6 keeps its input's qparams
        Assert.Equal(0.25, rows[2].InputScale);
        Assert.Equal(0.25, rows[2].OutputScale);
        Assert.Equal(3, rows[2].OutputZeroPoint);
    }
}

public class QuantModelLinterTests
{
    private static QuantModel Relu6After(double scale, long zp) => new()
    {
        Source = "test", Form = "torchscript",
        Layers =
        [
            new ModelLayer { Name = "quant", Kind = "Quantize", OutputScale = 0.1, OutputZeroPoint = 0 },
            new ModelLayer { Name = "conv1", Kind = "Conv2d", OutputScale = scale, OutputZeroPoint = zp },
            new ModelLayer { Name = "relu6", Kind = "ReLU6" },
        ],
    };

    [Fact]
    public void ReportsTheThreadsReLU6BoundWithItsNumbers()
    {
        // input scale 0.0197434, zero point 0: 6.0 is 303.9 steps, quantized 304, saturating at 255; in uint8 it wraps to 48
        var f = Assert.Single(QuantModelLinter.Lint(Relu6After(0.019743409007787704, 0)), x => x.Rule == "ClampBoundOutOfRange");
        Assert.Equal("relu6", f.Layer);
        Assert.Equal(Severity.Warning, f.Severity);
        Assert.Equal(304.0, f.Values["QuantizedBound"]);
        Assert.Equal(255L, f.Values["Saturated"]);
        Assert.Equal(48L, f.Values["WrappedUInt8"]);
        Assert.Equal(303.9, (double)f.Values["Steps"]!, 1);
        Assert.Contains("acts as ReLU", f.Message);
    }

    [Fact]
    public void NoClampFindingWhenTheBoundFits()
    {
        Assert.DoesNotContain(QuantModelLinter.Lint(Relu6After(0.03, 0)), x => x.Rule == "ClampBoundOutOfRange");
    }

    [Fact]
    public void DegenerateScalesZeroPointsAndBiasOverflow()
    {
        var w = LayerQParamsTests.PerChannelWeight([1e-6, 2e-2], [0, 0, 0, 0, 127, -128, 127, 5], 2);
        var model = new QuantModel
        {
            Source = "test", Form = "state_dict",
            Layers =
            [
                new ModelLayer { Name = "quant", Kind = "Quantize", OutputScale = 1e-6, OutputZeroPoint = 300 },
                new ModelLayer { Name = "conv", Kind = "Conv2d", OutputScale = 0, OutputZeroPoint = 0, Weight = w, Bias = Tensor.FromArray([1e4f, 0f], 2) },
                new ModelLayer { Name = "eps", Kind = "Conv2d", OutputScale = QuantModelLinter.Float32Eps, OutputZeroPoint = 0 },
            ],
        };
        var findings = QuantModelLinter.Lint(model).ToList();
        Assert.Contains(findings, f => f is { Layer: "quant", Rule: "ZeroPointOutOfRange", Severity: Severity.Error });
        Assert.Contains(findings, f => f is { Layer: "conv", Rule: "DegenerateScale" });
        Assert.Contains(findings, f => f is { Layer: "eps", Rule: "ScaleAtEps" });
        Assert.Contains(findings, f => f is { Layer: "conv", Rule: "DeadChannel" } && ((int[])f.Values["Channels"]!).SequenceEqual([0]));
        Assert.Contains(findings, f => f is { Layer: "conv", Rule: "WeightsSaturated" } && ((int[])f.Values["Channels"]!).SequenceEqual([1]));
        Assert.Contains(findings, f => f is { Layer: "conv", Rule: "PerChannelScaleSpread" });
        // 1e4 / (1e-6 * 1e-6) is far beyond int32
        Assert.Contains(findings, f => f is { Layer: "conv", Rule: "BiasOverflow" } && (int)f.Values["Channel"]! == 0);
    }

    [Fact]
    public void ReduceRangeAdviceDependsOnTheEngine()
    {
        var model = new QuantModel
        {
            Source = "test", Form = "state_dict",
            Layers =
            [
                new ModelLayer { Name = "quant", Kind = "Quantize", OutputScale = 0.05, OutputZeroPoint = 200 },
                new ModelLayer { Name = "conv", Kind = "Conv2d", OutputScale = 0.05, OutputZeroPoint = 100 },
            ],
        };
        Assert.Contains(QuantModelLinter.Lint(model, QEngine.FbgemmAvx2), f => f is { Rule: "ReduceRangeAdvice", Layer: "conv", Severity: Severity.Warning });
        Assert.DoesNotContain(QuantModelLinter.Lint(model, QEngine.Qnnpack), f => f.Rule == "ReduceRangeAdvice");
        var sevenBit = new QuantModel { Source = "t", Form = "state_dict", Layers = [model.Layers[0] is var q ? new ModelLayer { Name = "quant", Kind = "Quantize", OutputScale = 0.05, OutputZeroPoint = 60 } : q, model.Layers[1]] };
        Assert.Contains(QuantModelLinter.Lint(sevenBit, QEngine.Qnnpack), f => f is { Rule: "ReduceRangeAdvice", Severity: Severity.Info });
    }
}

public class WeightSaturationRuleTests
{
    [Fact]
    public void OneOrTwoExtremeWeightsPerChannelAreWhatMinMaxCalibrationGivesAndAreNotReported()
    {
        var w = LayerQParamsTests.PerChannelWeight([0.01, 0.01], [127, -128, 3, 4, 127, 1, 2, 3], 2);
        var model = new QuantModel
        {
            Source = "t", Form = "state_dict",
            Layers = [new ModelLayer { Name = "quant", Kind = "Quantize", OutputScale = 0.1, OutputZeroPoint = 0 },
                      new ModelLayer { Name = "conv", Kind = "Conv2d", OutputScale = 0.1, OutputZeroPoint = 0, Weight = w }],
        };
        Assert.DoesNotContain(QuantModelLinter.Lint(model), f => f.Rule == "WeightsSaturated");
    }
}
