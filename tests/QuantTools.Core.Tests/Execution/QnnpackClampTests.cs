using QuantTools.Core.Conformance;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Graph;

namespace QuantTools.Core.Tests.Execution;

/// <summary>
/// PyTorch 2.11's <c>qnnpack_clamp</c> (relu6 / hardtanh / clamp under the qnnpack engine) clamps a channels_last
/// input's NHWC memory but returns it as an NCHW-contiguous tensor, scrambling channels and pixels. The golden
/// relu6_eager_qnnpack data shows it; the executor reproduces it rather than the "correct" clamp.
/// </summary>
public class QnnpackClampTests
{
    [Fact]
    public void Relu6UnderQnnpackIsTheNhwcMemoryReadAsNchw()
    {
        using var f = new GoldenFile(Fixtures.Core("engines", "relu6_eager_qnnpack.json"));
        var json = f.Cases.First();
        var layers = json.GetProperty("layer_outputs_for_input0").EnumerateArray().ToList();
        var conv1 = f.GetQTensor(layers.Single(l => l.GetProperty("module").GetString() == "conv1").GetProperty("y"));
        var relu6 = f.GetQTensor(layers.Single(l => l.GetProperty("module").GetString() == "relu6").GetProperty("y"));
        // a plain clamp of conv1's output is NOT what PyTorch returned
        var plain = QActivation.Relu6(conv1, QEngine.Qnnpack);
        Assert.NotNull(ModelCases.CompareQTensor(plain, relu6));
        // the executor's capture equals PyTorch's
        var exec = new ModelExecutor(TorchScriptFrontEnd.Build(ModelCases.TorchScriptPath(f, json)!), QEngine.Qnnpack);
        var r = exec.Run(ModelCases.FirstItem(f.Tensors.Get("input")), captureLayers: true);
        Assert.Null(ModelCases.CompareQTensor(r.Layer("relu6")!.Value, relu6));
        Assert.Null(ModelCases.CompareQTensor(r.Layer("hardtanh")!.Value,
            f.GetQTensor(layers.Single(l => l.GetProperty("module").GetString() == "hardtanh").GetProperty("y"))));
        // the same model under x86 clamps in place (no scramble)
        var x86 = new ModelExecutor(TorchScriptFrontEnd.Build(ModelCases.TorchScriptPath(f, json)!), QEngine.X86);
        var rx = x86.Run(ModelCases.FirstItem(f.Tensors.Get("input")), captureLayers: true);
        Assert.Null(ModelCases.CompareQTensor(rx.Layer("relu6")!.Value, QActivation.Relu6(rx.Layer("conv1")!.Value, QEngine.X86)));
    }

    [Fact]
    public void CaptureListsEveryLayerWithQParamsInCallOrder()
    {
        var exec = ModelExecutor.Load(Fixtures.Core("models", "seed_convnet.torchscript.pt"), QEngine.X86);
        using var f = new GoldenFile(Fixtures.Core("models", "seed_convnet.json"));
        var r = exec.Run(ModelCases.FirstItem(f.Tensors.Get("input")), captureLayers: true);
        Assert.Equal(["quant", "conv1", "bn1", "act1", "conv2", "bn2", "act2", "conv3"], r.Layers.Select(l => l.Name));
        Assert.Equal(0.020343948155641556, r.Layer("conv3")!.QParams.Scale);
        Assert.Equal(51, r.Layer("conv3")!.QParams.ZeroPoint);
        Assert.Equal("ConvReLU2d", r.Layer("conv1")!.Kind);
        var plain = exec.Run(f.Tensors.Get("input"));
        Assert.Empty(plain.Layers);
        Assert.Null(plain.QuantizedOutput);
        // batches with progress
        var reports = new List<ModelProgress>();
        var results = exec.RunBatches([f.Tensors.Get("input"), f.Tensors.Get("input")], progress: new SyncProgress(reports.Add)).ToList();
        Assert.Equal(2, results.Count);
        Assert.Equal([new ModelProgress(1, 2), new ModelProgress(2, 2)], reports);
    }

    private sealed class SyncProgress(Action<ModelProgress> a) : IProgress<ModelProgress>
    {
        public void Report(ModelProgress value) => a(value);
    }
}
