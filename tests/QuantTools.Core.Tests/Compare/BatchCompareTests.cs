using QuantTools.Core.Compare;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Compare;

/// <summary>A whole-batch run against a golden model file (which records input 0 only), and comparisons of nothing.</summary>
public class BatchCompareTests
{
    private static (List<(string, object)> Run, LayerSet Golden) RunSeedConvnet()
    {
        var json = Fixtures.Core("models", "seed_convnet.json");
        var golden = LayerDumps.Read(json);
        using var g = new QuantTools.Core.Conformance.GoldenFile(json);
        var input = g.Tensors.Get("input");
        Assert.True(input.Shape[0] > 1);
        var r = new ModelExecutor(ModelLoader.LoadGraph(Fixtures.Core("models", "seed_convnet.torchscript.pt")), QEngine.X86).Run(input, captureLayers: true);
        return (r.Layers.Select(l => (l.Name, (object)l.Value)).ToList(), golden);
    }

    [Fact]
    public void AWholeBatchAgainstAGoldenIsAnErrorThatNamesBatchIndex()
    {
        var (run, golden) = RunSeedConvnet();
        var errors = new List<QuantToolsException>();
        var e = Assert.Throws<QuantToolsException>(() => QuantComparer.Compare(run, golden.Layers, new CompareOptions(), errors.Add));
        Assert.Contains("nothing was compared", e.Message);
        Assert.Contains("-BatchIndex 0", e.Message);
        Assert.Equal(golden.Layers.Count, errors.Count); // every layer reported its shapes
        // without an error callback the first shape error throws
        Assert.Throws<QuantToolsException>(() => QuantComparer.Compare(run, golden.Layers, new CompareOptions()));
    }

    [Fact]
    public void BatchIndexZeroIsBitExactAndOneIsNot()
    {
        var (run, golden) = RunSeedConvnet();
        var s0 = QuantComparer.Compare(run, golden.Layers, new CompareOptions { BatchIndex = 0 });
        Assert.Equal(golden.Layers.Count, s0.Layers);
        Assert.Equal(s0.Layers, s0.Passed);
        Assert.All(s0.Results, r => Assert.Equal(0, r.MaxLsb));
        Assert.All(s0.Results, r => Assert.Equal(1, r.Shape[0]));
        var s1 = QuantComparer.Compare(run, golden.Layers, new CompareOptions { BatchIndex = 1 });
        Assert.True(s1.Failed > 0);
        Assert.Equal("quant", s1.FirstDivergingLayer);
        var e = Assert.Throws<QuantToolsException>(() => QuantComparer.Compare(run, golden.Layers, new CompareOptions { BatchIndex = 99 }));
        Assert.Contains("beyond the batch", e.Message);
    }

    [Fact]
    public void NoPairedLayerIsAnError()
    {
        var t = Tensor.FromArray([1f, 2f], 1, 2);
        var e = Assert.Throws<QuantToolsException>(() => QuantComparer.Compare([("a", t)], [], new CompareOptions()));
        Assert.Contains("Difference holds no layers", e.Message);
        var slice = (Tensor)BatchSlice.Take(Tensor.FromArray([1f, 2f, 3f, 4f, 5f, 6f], 3, 2), 2, "x");
        Assert.Equal([1, 2], slice.Shape);
        Assert.Equal([5f, 6f], slice.AsSpan<float>().ToArray());
    }
}
