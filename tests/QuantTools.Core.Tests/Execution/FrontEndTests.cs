using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Execution;

public class FrontEndTests
{
    [Fact]
    public void SeedConvnetGraphHasTheExpectedOps()
    {
        var g = TorchScriptFrontEnd.Build(Fixtures.Core("models", "seed_convnet.torchscript.pt"));
        var ops = g.Nodes.Where(n => !n.Op.StartsWith("prim::", StringComparison.Ordinal) && !ScalarOps.Names.Contains(n.Op) && n.Op != "aten::size")
            .Select(n => (n.Op, n.ModulePath)).ToList();
        Assert.Equal(
        [
            ("aten::quantize_per_tensor", "quant"), ("quantized::conv2d_relu", "conv1"), ("quantized::conv2d_relu", "conv2"),
            ("quantized::conv2d", "conv3"), ("aten::dequantize", "dequant"),
        ], ops);
        var conv1 = g.Nodes.Single(n => n.Op == "quantized::conv2d_relu" && n.ModulePath == "conv1");
        Assert.Equal(0.023252634331583977, conv1.OutputScale);
        Assert.Equal(0, conv1.OutputZeroPoint);
        Assert.Equal("ConvReLU2d", conv1.ModuleKind);
        Assert.Contains("ops.quantized.conv2d_relu", conv1.Source!.Text);
        Assert.EndsWith("conv_relu.py", conv1.Source.File);
        // the layer outputs follow the module calls, Identity layers alias the conv output
        Assert.Equal(["quant", "conv1", "bn1", "act1", "conv2", "bn2", "act2", "conv3", "dequant"], g.LayerOutputs.Select(kv => kv.Key));
        Assert.Equal(g.LayerOutputs.Single(kv => kv.Key == "conv1").Value, g.LayerOutputs.Single(kv => kv.Key == "act1").Value);
        Assert.Contains("quantized::conv2d_relu", g.Dump());
    }

    [Fact]
    public void ShufflenetChannelShuffleAndChunkBecomeNodes()
    {
        var g = TorchScriptFrontEnd.Build(Fixtures.Core("models", "shufflenet_v2_x0_5.torchscript.pt"));
        Assert.Equal(16, g.NodesOf("aten::view").Count() / 2);
        Assert.Equal(13, g.NodesOf("aten::chunk").Count());
        Assert.Equal(16, g.NodesOf("quantized::cat").Count());
        Assert.Single(g.NodesOf("aten::mean"));
        Assert.Single(g.NodesOf("aten::max_pool2d"));
        var shuffle = g.NodesOf("aten::transpose").First();
        Assert.EndsWith("shufflenetv2.py", shuffle.Source!.File);
        Assert.Equal("stage2.0", shuffle.ModulePath);
        Assert.Contains(g.LayerOutputs, kv => kv.Key == "stage2.0.branch2.5");
        Assert.Contains(g.LayerOutputs, kv => kv.Key == "stage2.0.cat.activation_post_process");
    }

    [Fact]
    public void DynamicMlpFoldsTheDtypeBranches()
    {
        var g = TorchScriptFrontEnd.Build(Fixtures.Core("models", "dynamic_mlp.torchscript.pt"));
        var lin = g.NodesOf("quantized::linear_dynamic").ToList();
        Assert.Equal(2, lin.Count);
        Assert.Equal(["fc1", "fc2"], lin.Select(n => n.ModulePath));
        // version 4 modules pass reduce_range=True
        Assert.All(lin, n => Assert.Equal(true, n.Inputs[2].Constant));
        Assert.Single(g.NodesOf("aten::relu"));
    }

    private static string RewriteArchive(string source, Func<string, string, string> edit)
    {
        var tmp = Path.Combine(Path.GetTempPath(), $"qt-exec-{Guid.NewGuid():N}.pt");
        using (var src = System.IO.Compression.ZipFile.OpenRead(source))
        using (var dst = System.IO.Compression.ZipFile.Open(tmp, System.IO.Compression.ZipArchiveMode.Create))
            foreach (var e in src.Entries)
            {
                var ne = dst.CreateEntry(e.FullName, System.IO.Compression.CompressionLevel.NoCompression);
                using var r = e.Open();
                using var w = ne.Open();
                if (e.FullName.EndsWith(".py", StringComparison.Ordinal))
                {
                    var text = new StreamReader(r).ReadToEnd();
                    var bytes = System.Text.Encoding.UTF8.GetBytes(edit(e.FullName, text));
                    w.Write(bytes);
                }
                else r.CopyTo(w);
            }
        return tmp;
    }

    [Fact]
    public void UnsupportedOpNamesTheOpAndTheLine()
    {
        var path = RewriteArchive(Fixtures.Core("models", "relu6_eager.torchscript.pt"), (name, text) =>
            name.EndsWith("code/__torch__.py", StringComparison.Ordinal)
                ? text.Replace("x3 = torch.flatten((pool).forward(x2, ), 1)", "x3 = torch.erfinv((pool).forward(x2, ))")
                : text);
        try
        {
            var ck = TorchCheckpoint.Load(path);
            var ex = Assert.Throws<QuantToolsException>(() => TorchScriptFrontEnd.Build(ck));
            Assert.Equal(ErrorCode.UnsupportedOperator, ex.Code);
            Assert.Contains("aten::erfinv", ex.Message);
            Assert.Contains("torch.erfinv", ex.Message);
            Assert.Contains("__torch__.py:", ex.Message);
            Assert.Contains("x3 = torch.erfinv", ex.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void UnsupportedConstructNamesTheLine()
    {
        var path = RewriteArchive(Fixtures.Core("models", "seed_convnet.torchscript.pt"), (name, text) =>
            name.EndsWith("code/__torch__.py", StringComparison.Ordinal)
                ? text.Replace("    x3 = (conv3).forward(x2, )\n", "    while True:\n      pass\n    x3 = (conv3).forward(x2, )\n")
                : text);
        try
        {
            var ex = Assert.Throws<QuantToolsException>(() => TorchScriptFrontEnd.Build(TorchCheckpoint.Load(path)));
            Assert.Equal(ErrorCode.UnsupportedOperator, ex.Code);
            Assert.Contains("'while'", ex.Message);
            Assert.Contains("__torch__.py:", ex.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void DataDependentIfIsRefused()
    {
        var path = RewriteArchive(Fixtures.Core("models", "seed_convnet.torchscript.pt"), (name, text) =>
            name.EndsWith("code/__torch__.py", StringComparison.Ordinal)
                ? text.Replace("    x3 = (conv3).forward(x2, )\n",
                    "    if torch.eq(torch.len(torch.size(x2)), 4):\n      x3 = (conv3).forward(x2, )\n    else:\n      x3 = x2\n")
                : text);
        try
        {
            var ex = Assert.Throws<QuantToolsException>(() => TorchScriptFrontEnd.Build(TorchCheckpoint.Load(path)));
            Assert.Equal(ErrorCode.UnsupportedOperator, ex.Code);
            Assert.Contains("data-dependent", ex.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void RankCheckBecomesARunTimeErrorNamingTheLayerAndShapes()
    {
        var g = TorchScriptFrontEnd.Build(Fixtures.Core("models", "seed_convnet.torchscript.pt"));
        Assert.Contains(g.Nodes, n => n.Op == "prim::RaiseIf" && n.ModulePath == "conv1");
        var exec = new ModelExecutor(g, QEngine.X86);
        var bad = Tensor.FromArray(new float[24 * 24], 1, 24, 24);
        var ex = Assert.Throws<QuantToolsException>(() => exec.Run(bad));
        Assert.Contains("layer 'conv1'", ex.Message);
        Assert.Contains("Input shape must be `(N, C, H, W)`!", ex.Message);
    }

    [Fact]
    public void CancellationStopsARun()
    {
        var exec = new ModelExecutor(TorchScriptFrontEnd.Build(Fixtures.Core("models", "seed_convnet.torchscript.pt")), QEngine.X86);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => exec.Run(Tensor.FromArray(new float[24 * 24], 1, 1, 24, 24), false, cts.Token));
    }

    [Fact]
    public void LayoutRulesMatchPyTorch()
    {
        int[] s = [2, 8, 5, 5];
        var cl = Layout.ChannelsLast(s);
        Assert.True(Layout.IsChannelsLastContiguous(s, cl));
        Assert.False(Layout.IsContiguous(s, cl));
        Assert.True(Layout.SuggestsChannelsLast(s, cl));
        // N111 contiguous is not channels_last-like (PyTorch's ambiguity rule)
        int[] n111 = [4, 1, 1, 1];
        Assert.False(Layout.SuggestsChannelsLast(n111, Layout.Contiguous(n111)));
        // a channel chunk of a channels_last tensor is not channels_last contiguous
        int[] half = [2, 4, 5, 5];
        Assert.False(Layout.IsChannelsLastContiguous(half, cl));
        // view of channels_last [N, C, H, W] as [N, g, C/g, H, W] keeps the memory
        var v = Layout.ViewStrides(s, cl, [2, 2, 4, 5, 5]);
        Assert.Equal([200L, 4, 1, 40, 8], v);
        // and a transposed then viewed tensor can not be viewed back without a copy
        Assert.Null(Layout.ViewStrides([2, 4, 2, 5, 5], [200L, 1, 4, 40, 8], [2, 8, 5, 5]));
    }
}
