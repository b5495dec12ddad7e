using QuantTools.Core.Compare;
using QuantTools.Core.Kernels;
using QuantTools.Core.Tensors;
using Xunit.Abstractions;

namespace QuantTools.Core.Tests.Compare;

/// <summary>
/// Each hint proven on a constructed case: a golden model run (the reference) with exactly one layer perturbed the way a
/// backend would, later layers re-run on the perturbed output with Core's bit-exact kernels. The hint must name that
/// layer and that cause; every later layer that differs must be Inherited.
/// </summary>
public class PerturbationTests(ITestOutputHelper output)
{
    private static readonly GoldenChain Relu6 = new("relu6_eager");
    private static readonly GoldenChain Seed = new("seed_convnet");

    private ComparisonSummary Run(GoldenChain chain, List<(string Name, object Value)> backend, CompareOptions? o = null)
    {
        o ??= new CompareOptions { FloatInputs = chain.Golden.FloatInputs };
        var s = QuantComparer.Compare(chain.Golden.Layers, backend, o);
        foreach (var r in s.Results)
            output.WriteLine($"{r.Layer,-10} sqnr {r.Sqnr,8:F2} maxLsb {r.MaxLsb,4} differ {r.DifferingElements,5}/{r.Elements,-5} {(r.Passed ? "ok" : "FAIL")} {r.TopHint}");
        return s;
    }

    private static void AssertNamed(ComparisonSummary s, string layer, HintCause cause)
    {
        Assert.Equal(layer, s.FirstDivergingLayer);
        Assert.Equal(cause, s.Cause);
        bool after = false;
        foreach (var r in s.Results)
        {
            if (r.Layer == layer) { after = true; continue; }
            if (!after) { Assert.True(r.Passed, $"{r.Layer} before {layer} must pass"); continue; }
            if (!r.Passed)
            {
                Assert.Equal(HintCause.Inherited, r.Cause);
                Assert.NotNull(r.TopHint!.Upstream);
            }
        }
        Assert.Contains(s.Results.SkipWhile(r => r.Layer != layer).Skip(1), r => !r.Passed); // the difference did propagate
    }

    [Fact]
    public void GoldenChainReproducesPyTorch()
    {
        foreach (var chain in new[] { Relu6, Seed })
        {
            var s = Run(chain, chain.Rerun());
            Assert.Null(s.FirstDivergingLayer);
            Assert.All(s.Results, r => Assert.Equal(1.0, r.ExactRatio));
            Assert.Equal("Name", s.Alignment);
        }
    }

    [Fact]
    public void WrappedHardtanhBoundIsClampBound()
    {
        // hardtanh's bound 6.0 at conv2's scale 0.003841, zero point 70 is q = 1632; computed in uint8 it wraps to 96
        // (relu6's bound, 440 -> 184, wraps too, but no relu6 output of input 0 exceeds 184: nothing to see there)
        var golden = Relu6.Output("hardtanh");
        var qp = golden.QParams;
        long bound = (long)Math.Round(6.0 / qp.Scale) + qp.ZeroPoint;
        Assert.Equal(1632, bound);
        byte wrapped = unchecked((byte)bound);
        Assert.Equal(96, wrapped);
        var perturbed = GoldenChain.WithInts(Relu6.Output("conv2"), (_, v) => Math.Clamp(v, qp.ZeroPoint, wrapped));
        var s = Run(Relu6, Relu6.Perturb("hardtanh", perturbed));
        AssertNamed(s, "hardtanh", HintCause.ClampBound);
        Assert.Contains("wraps to 96", s.Hint!.Evidence);
        Assert.Contains("6.00", s.Hint!.Evidence);
    }

    [Fact]
    public void WrapInsteadOfSaturationIsClampBound()
    {
        // conv1 of relu6_eager requantized to a 4x finer output scale: PyTorch saturates at 255, a backend that
        // packs int32 -> uint8 without saturation wraps (v & 0xFF)
        var x = Relu6.Output("quant");
        var acc = Relu6.Accumulators("conv1", x);
        var l = Relu6.Layer("conv1");
        int hw = acc.Length / l.Weight!.Shape[0];
        double outScale = l.OutputScale!.Value / 4;
        long Exact(int i)
        {
            double sw = l.Weight.QParams.Scales[i / hw];
            return (long)Math.Round((acc[i] * x.QParams.Scale * sw + l.Bias!.GetDouble(i / hw)) / outScale) + l.OutputZeroPoint!.Value;
        }
        var shape = Relu6.Output("conv1").Shape;
        var qp = QParams.PerTensor(outScale, l.OutputZeroPoint!.Value, DType.QUInt8);
        var reference = new QTensor(new Tensor(DType.UInt8, shape, Enumerable.Range(0, acc.Length).Select(i => (byte)Math.Clamp(Exact(i), 0, 255)).ToArray()), qp);
        var backend = new QTensor(new Tensor(DType.UInt8, shape, Enumerable.Range(0, acc.Length).Select(i => unchecked((byte)Exact(i))).ToArray()), qp);
        var r = QuantComparer.CompareTensors(reference, backend, null, "conv1");
        output.WriteLine(r.TopHint!.ToString());
        Assert.True(r.DifferingElements > 3);
        Assert.Equal(HintCause.ClampBound, r.Cause);
        Assert.Contains("wrapped instead of saturating", r.TopHint.Evidence);
    }

    [Fact]
    public void HalfAwayRoundingOfTheQuantizeStepIsRoundingMode()
    {
        // a backend quantizes the input in float16 and rounds half away from zero (C's round()): off by one exactly
        // where x/scale sits on (or, after the float16 rounding, next to) a midpoint
        var q = Relu6.Output("quant");
        var x = Relu6.Golden.FloatInputs["quant"];
        var qp = q.QParams;
        var perturbed = GoldenChain.WithInts(q, (i, _) =>
        {
            float h = (float)(Half)(x.GetDouble(i) / qp.Scale);
            return Math.Clamp((long)Math.Round(h, MidpointRounding.AwayFromZero) + qp.ZeroPoint, 0, 255);
        });
        var s = Run(Relu6, Relu6.Perturb("quant", perturbed));
        AssertNamed(s, "quant", HintCause.RoundingMode);
        Assert.True(s.Results[0].MaxLsb == 1);
    }

    [Fact]
    public void TieSignatureWithoutPreRoundingValues()
    {
        // 2x2 average pooling of the golden relu6 output: PyTorch rounds sum/4 half to even, a backend (sum + 2) >> 2
        var y = Relu6.Output("relu6");
        int c = y.Shape[1], h = y.Shape[2] / 2, w = y.Shape[3] / 2;
        long zp = y.QParams.ZeroPoint;
        var refInts = new byte[c * h * w];
        var difInts = new byte[c * h * w];
        var src = y.IntRepr.AsSpan<byte>();
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                {
                    long sum = 0;
                    for (int di = 0; di < 2; di++) for (int dj = 0; dj < 2; dj++) sum += src[(ch * y.Shape[2] + 2 * i + di) * y.Shape[3] + 2 * j + dj] - zp;
                    refInts[(ch * h + i) * w + j] = (byte)(Math.Round(sum / 4.0, MidpointRounding.ToEven) + zp);
                    difInts[(ch * h + i) * w + j] = (byte)(((sum + 2) >> 2) + zp);
                }
        var qp = y.QParams;
        var r = new QTensor(new Tensor(DType.UInt8, [1, c, h, w], refInts), qp);
        var d = new QTensor(new Tensor(DType.UInt8, [1, c, h, w], difInts), qp);
        var result = QuantComparer.CompareTensors(r, d, new CompareOptions(), "avgpool");
        output.WriteLine(result.TopHint?.ToString());
        Assert.False(result.Passed);
        Assert.Equal(HintCause.RoundingMode, result.Cause);
    }

    [Fact]
    public void ZeroPointShiftedByOneIsZeroPoint()
    {
        // the backend requantizes conv1 with zero point 70 instead of 69; relu6 reads it with the declared 69
        var conv1 = Relu6.Output("conv1");
        var perturbed = GoldenChain.WithInts(conv1, (_, v) => Math.Min(v + 1, 255));
        var s = Run(Relu6, Relu6.Perturb("conv1", perturbed));
        AssertNamed(s, "conv1", HintCause.ZeroPoint);
        Assert.Equal(1, s.Hint!.Counts["Offset"]);
    }

    [Fact]
    public void Int16SaturationIsInt16Saturation()
    {
        // the backend accumulates seed_convnet's conv2 in int16 (saturating at +-32767): where |acc| fits it is exact
        // (PyTorch's own ints), beyond that it requantizes the saturated accumulator
        var x = Seed.Output("act1");
        var acc = Seed.Accumulators("conv2", x);
        var golden = Seed.Output("conv2");
        int hw = acc.Length / golden.Shape[1];
        var conv2 = GoldenChain.WithInts(golden, (i, v) => Math.Abs(acc[i]) <= short.MaxValue ? v
            : Seed.Requantize("conv2", i / hw, Math.Clamp(acc[i], -short.MaxValue, short.MaxValue), x.QParams.Scale));
        var s = Run(Seed, Seed.Perturb("conv2", conv2));
        AssertNamed(s, "conv2", HintCause.Int16Saturation);
    }

    [Fact]
    public void BiasQuantizedWithOneChannelsScaleIsBiasQuantization()
    {
        // the backend quantizes conv1's bias with channel 0's weight scale for every channel
        var l = Relu6.Layer("conv1");
        var ws = l.Weight!.QParams.Scales;
        var b = l.Bias!.ToFloat32().AsSpan<float>().ToArray();
        for (int o = 0; o < b.Length; o++) b[o] = (float)(b[o] * ws[o] / ws[0]);
        var conv1 = Relu6.Conv("conv1", Relu6.Output("quant"), bias: new Tensor(DType.Float32, [b.Length], b));
        var s = Run(Relu6, Relu6.Perturb("conv1", conv1));
        AssertNamed(s, "conv1", HintCause.BiasQuantization);
    }

    [Fact]
    public void OneChannelsWeightScaleIsPerChannelScale()
    {
        // the backend reads channel 2's weight scale 8% too large (a per-channel scale mix-up)
        var l = Relu6.Layer("conv1");
        var w = l.Weight!;
        var scales = (double[])w.QParams.Scales.Clone();
        scales[2] *= 1.08;
        var qp = new QParams(w.QParams.QScheme, w.DType, scales, w.QParams.ZeroPoints, w.QParams.Axis);
        var conv1 = Relu6.Conv("conv1", Relu6.Output("quant"), weight: new QTensor(w.IntRepr, qp));
        var s = Run(Relu6, Relu6.Perturb("conv1", conv1));
        AssertNamed(s, "conv1", HintCause.PerChannelScale);
    }
}
