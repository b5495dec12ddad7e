using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Models;

/// <summary>What a C port needs from the rows: int weights, the int32 bias and the observer ranges, with real values.</summary>
public class LayerQParamsIntegerTests
{
    [Fact]
    public void AnIntegerOnlyLinearFromTheRowEqualsTheQnnpackEngine()
    {
        // relu6_eager converted for qnnpack: fc = sat(rne(f32((Σ (a - za)(w - zw) + qb) · R)) + zo), R = f32(f32(s_in·s_w) · f32(1/s_out)),
        // qb = the row's Int32Bias; a is what the executor feeds fc (the flattened pool output)
        var file = Fixtures.Core("engines", "relu6_eager_qnnpack.torchscript.pt");
        var model = ModelLoader.Load(file);
        var fc = LayerQParams.For(model).Single(r => r.Name == "fc");
        Assert.NotNull(fc.Int32Bias);
        Assert.NotNull(fc.IntWeight);
        using var g = new QuantTools.Core.Conformance.GoldenFile(Fixtures.Core("engines", "relu6_eager_qnnpack.json"));
        var run = new ModelExecutor(model.Graph!, QEngine.Qnnpack).Run(g.Tensors.Get("input"), captureLayers: true);
        var pool = run.Layer("pool")!.Value;   // [N, C, 1, 1], flattened into fc
        var y = run.Layer("fc")!.Value;
        Assert.Equal(pool.QParams.Scale, fc.InputScale);
        int n = y.Shape[0], outC = y.Shape[1], inC = pool.Length / n;
        var w = fc.IntWeight!.AsSpan<sbyte>();
        var a = pool.IntRepr.AsSpan<byte>();
        var got = y.IntRepr.AsSpan<byte>();
        float sIn = (float)fc.InputScale!.Value, invOut = 1f / (float)fc.OutputScale!.Value;
        int mismatches = 0, nonZeroBias = fc.Int32Bias!.Count(b => b != 0);
        for (int b = 0; b < n; b++)
            for (int o = 0; o < outC; o++)
            {
                int acc = fc.Int32Bias![o];
                for (int i = 0; i < inC; i++)
                    acc += (a[b * inC + i] - (int)fc.InputZeroPoint!.Value) * (w[o * inC + i] - (int)fc.WeightZeroPoints![fc.WeightZeroPoints.Count == 1 ? 0 : o]);
                float r = (float)fc.WeightScales![fc.WeightScales.Count == 1 ? 0 : o] * sIn * invOut;
                int q = (int)MathF.Round(acc * r) + (int)fc.OutputZeroPoint!.Value;
                if (Math.Clamp(q, 0, 255) != got[b * outC + o]) mismatches++;
            }
        Assert.Equal(0, mismatches);
        Assert.True(nonZeroBias > 0);
    }

    [Fact]
    public void Int32BiasIsTheBiasOverTheAccumulatorScale()
    {
        var row = LayerQParams.For(ModelLoader.Load(Fixtures.Core("models", "seed_convnet.torchscript.pt"))).Single(r => r.Name == "conv1");
        for (int c = 0; c < row.Bias!.Count; c++)
        {
            double exact = row.Bias[c] / (row.InputScale!.Value * row.WeightScales![row.WeightScales.Count == 1 ? 0 : c]);
            Assert.InRange(row.Int32Bias![c], Math.Floor(exact) - 1, Math.Ceiling(exact) + 1);
        }
        Assert.Equal(4, row.IntWeight!.Shape.Length);
        Assert.Equal(row.Bias.Count, row.IntWeight.Shape[0]);
        Assert.Equal(DType.Int8, row.IntWeight.DType);
    }

    [Fact]
    public void QatRowsShowObserverRangesAsNumbers()
    {
        var file = Fixtures.Core("models", "seed_convnet.qat.state_dict.pt");
        var rows = LayerQParams.For(ModelLoader.Load(file)).ToDictionary(r => r.Name);
        var sd = TorchCheckpoint.Load(file).StateDict;
        double V(string key, int i = 0) => ((Tensor)sd[key]!).GetDouble(i);
        var quant = rows["quant.activation_post_process"];
        Assert.Equal(V("quant.activation_post_process.activation_post_process.min_val"), Assert.Single(quant.ObserverMin!));
        Assert.Equal(V("quant.activation_post_process.activation_post_process.max_val"), Assert.Single(quant.ObserverMax!));
        var w = rows["conv1.weight_fake_quant"];
        Assert.Equal(8, w.ObserverMin!.Count);
        for (int c = 0; c < 8; c++) Assert.Equal(V("conv1.weight_fake_quant.activation_post_process.max_val", c), w.ObserverMax![c]);
        Assert.True(quant.ObserverMin![0] < 0 && quant.ObserverMax![0] > 0);
    }
}
