using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Observers;

/// <summary>
/// One outcome per observer for ±Inf and NaN, as PyTorch gives it (checked with torch 1.13's observers, whose code for
/// these cases is that of 2.11, except HistogramObserver, which 2.11 changed to drop ±Inf with a warning: its source is
/// followed). MinMax family: ±Inf gives scale Infinity (warned), NaN is refused at calculate_qparams.
/// Histogram: ±Inf elements are dropped (warned), NaN is refused at forward. FixedQParams ignores the data.
/// </summary>
public class ObserverNonFiniteTests
{
    private static readonly float Inf = float.PositiveInfinity;

    private static Observer Make(string name) => name switch
    {
        "PerChannelMinMax" or "MovingAveragePerChannelMinMax" => ObserverFactory.Create(name, new ObserverOptions { QScheme = QScheme.PerChannelAffine }),
        "FixedQParams" => ObserverFactory.Create(name, new ObserverOptions { Scale = 1.0 / 256, ZeroPoint = 0 }),
        _ => ObserverFactory.Create(name, new ObserverOptions()),
    };

    private static Tensor Row(params float[] v) => Tensor.FromArray(v, 1, v.Length);

    [Theory]
    [InlineData("MinMax")]
    [InlineData("MovingAverageMinMax")]
    [InlineData("PerChannelMinMax")]
    [InlineData("MovingAveragePerChannelMinMax")]
    public void MinMaxFamilyGivesInfiniteScaleWithAWarning(string name)
    {
        foreach (var x in new[] { Row(1f, Inf, -2f), Row(1f, -Inf, 2f) })
        {
            var o = Make(name);
            o.Forward(x);
            var qp = o.CalculateQParams();
            // torch: scale=[inf] zp=[0]
            Assert.True(double.IsPositiveInfinity(qp.Scales[0]), $"{name}: scale {qp.Scales[0]}");
            Assert.Equal(0, qp.ZeroPoints[0]);
            Assert.Contains(o.Warnings, w => w.Contains("infinite") && w.Contains("Infinity"));
        }
    }

    [Theory]
    [InlineData("MinMax")]
    [InlineData("MovingAverageMinMax")]
    [InlineData("PerChannelMinMax")]
    [InlineData("MovingAveragePerChannelMinMax")]
    public void MinMaxFamilyRefusesNaNAtCalculateQParams(string name)
    {
        var o = Make(name);
        o.Forward(Row(1f, float.NaN, 2f)); // forward takes it, as torch's does
        var e = Assert.Throws<QuantToolsException>(() => o.CalculateQParams());
        Assert.Contains("contains NaN", e.Message);
        Assert.Contains("min nan should be less than max nan", e.Message);
    }

    [Fact]
    public void HistogramDropsInfWithAWarningAndRefusesNaN()
    {
        var withInf = Make("Histogram");
        withInf.Forward(Tensor.FromArray([1f, Inf, -2f, 0.5f], 4));
        var finite = Make("Histogram");
        finite.Forward(Tensor.FromArray([1f, -2f, 0.5f], 3));
        var a = withInf.CalculateQParams();
        var b = finite.CalculateQParams();
        Assert.Equal(b.Scale, a.Scale);
        Assert.Equal(b.ZeroPoint, a.ZeroPoint);
        Assert.Equal(-2f, withInf.MinVal[0]);
        Assert.Equal(1f, withInf.MaxVal[0]);
        Assert.Contains(withInf.Warnings, w => w.StartsWith("torch.inf detected in input tensor, ignoring input"));
        Assert.Empty(finite.Warnings);

        // only ±Inf: nothing observed, torch's defaults (1.0, 0) with its warning
        var allInf = Make("Histogram");
        allInf.Forward(Tensor.FromArray([Inf, -Inf], 2));
        var d = allInf.CalculateQParams();
        Assert.Equal(1.0, d.Scale);
        Assert.Equal(0, d.ZeroPoint);
        Assert.Contains(allInf.Warnings, w => w.StartsWith("must run observer before calling calculate_qparams"));

        var nan = Make("Histogram");
        var e = Assert.Throws<QuantToolsException>(() => nan.Forward(Tensor.FromArray([1f, float.NaN, 2f], 3)));
        Assert.Contains("contains NaN", e.Message);
        Assert.Contains("range of [nan, nan] is not finite", e.Message);
    }

    [Fact]
    public void FixedQParamsIgnoresTheData()
    {
        foreach (var x in new[] { Row(Inf), Row(float.NaN) })
        {
            var o = Make("FixedQParams");
            o.Forward(x);
            var qp = o.CalculateQParams();
            Assert.Equal(1.0 / 256, qp.Scale);
            Assert.Empty(o.Warnings);
        }
    }

    [Fact]
    public void FiniteDataWarnsNothing()
    {
        var o = Make("MinMax");
        o.Forward(Row(1f, -2f, 3f));
        o.CalculateQParams();
        Assert.Empty(o.Warnings);
    }
}
