using QuantTools.Core.Conformance.Ops;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Execution.Ops;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Execution;

/// <summary>The op registry: what the front end accepts, the executor runs and the golden op cases reach.</summary>
public class OpRegistryTests
{
    /// <summary>The tensor ops the front end accepted before the registry existed (its own list then).</summary>
    private static readonly string[] TensorOpsBeforeTheRegistry =
    [
        "aten::quantize_per_tensor", "aten::dequantize", "aten::to",
        "quantized::conv1d", "quantized::conv1d_relu", "quantized::conv2d", "quantized::conv2d_relu",
        "quantized::conv_transpose1d", "quantized::conv_transpose2d",
        "quantized::linear", "quantized::linear_relu", "quantized::linear_dynamic", "quantized::linear_relu_dynamic",
        "quantized::relu6", "aten::relu", "aten::relu_", "aten::hardtanh", "aten::hardtanh_", "aten::clamp", "aten::clamp_",
        "quantized::hardswish", "aten::hardswish", "aten::sigmoid", "aten::tanh", "aten::hardsigmoid",
        "quantized::leaky_relu", "aten::leaky_relu", "quantized::elu", "aten::elu",
        "aten::adaptive_avg_pool2d", "aten::avg_pool2d", "aten::max_pool2d", "aten::mean",
        "aten::flatten", "aten::reshape", "aten::view", "aten::transpose", "aten::contiguous", "aten::chunk",
        "aten::size", "aten::dim", "prim::dtype", "aten::channel_shuffle",
        "quantized::cat", "quantized::cat_relu", "aten::cat",
        "quantized::add", "quantized::add_relu", "quantized::mul", "quantized::mul_relu",
        "quantized::add_scalar", "quantized::add_scalar_relu", "quantized::mul_scalar", "quantized::mul_scalar_relu",
        "prim::ListUnpack", "prim::RaiseIf",
    ];

    [Fact]
    public void FrontEndAcceptsTheSameTensorOpsAsBefore()
    {
        Assert.Equal(TensorOpsBeforeTheRegistry.Order(StringComparer.Ordinal), OpRegistry.TensorOps.Order(StringComparer.Ordinal));
        Assert.Same(OpRegistry.TensorOps, TorchScriptFrontEnd.SupportedTensorOps);
    }

    [Fact]
    public void EveryTensorOpTheFrontEndAcceptsHasAHandlerThatNamesIt()
    {
        foreach (var op in OpRegistry.TensorOps)
        {
            var h = OpRegistry.Find(op);
            Assert.NotNull(h);
            Assert.True(h!.IsTensorFamily, op);
            Assert.Contains(op, h.Ops);
        }
    }

    [Fact]
    public void ScalarOpsRunButAreNotTensorOps()
    {
        foreach (var op in ScalarOps.Names)
        {
            Assert.NotNull(OpRegistry.Find(op));
            Assert.False(OpRegistry.IsTensorOp(op), op);
        }
        // aten::add on tensors is not a quantized op: the front end must keep refusing it
        Assert.False(OpRegistry.IsTensorOp("aten::add"));
    }

    [Fact]
    public void OutputQParamsArgumentsAreTheOpsSchemas()
    {
        // quantize_per_tensor(x, scale, zp, dtype); conv/linear(x, packed, scale, zp); cat(xs, dim, scale, zp);
        // add/mul(a, b, scale, zp); hardswish(x, scale, zp)
        Assert.Equal(1, OpRegistry.OutputQParamsArg("aten::quantize_per_tensor"));
        foreach (var op in (string[])["quantized::conv1d", "quantized::conv1d_relu", "quantized::conv2d", "quantized::conv2d_relu",
                     "quantized::conv_transpose1d", "quantized::conv_transpose2d", "quantized::linear", "quantized::linear_relu",
                     "quantized::cat", "quantized::cat_relu", "quantized::add", "quantized::add_relu", "quantized::mul", "quantized::mul_relu"])
            Assert.Equal(2, OpRegistry.OutputQParamsArg(op));
        Assert.Equal(1, OpRegistry.OutputQParamsArg("quantized::hardswish"));
        foreach (var op in (string[])["quantized::linear_dynamic", "quantized::add_scalar", "aten::cat", "aten::relu", "aten::mean", "no::such"])
            Assert.Equal(-1, OpRegistry.OutputQParamsArg(op));
    }

    [Fact]
    public void TwoHandlersForOneOpIsAnErrorNamingBoth()
    {
        var e = Assert.Throws<InvalidOperationException>(() => OpRegistry.Build([new ClampOps(), new ViewOps(), new ClampOps()]));
        Assert.Contains("'quantized::relu6'", e.Message);
        Assert.Contains("ClampOps and ClampOps", e.Message);
    }

    public static TheoryData<string> TorchScriptModels()
    {
        var d = new TheoryData<string>();
        foreach (var f in Directory.EnumerateFiles(Fixtures.Path("golden"), "*.torchscript.pt", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            d.Add(Path.GetRelativePath(Fixtures.Path(), f));
        d.Add(Path.Combine("bench", "mobilenet_v2_224.torchscript.pt"));
        return d;
    }

    [Theory]
    [MemberData(nameof(TorchScriptModels))]
    public void EveryNodeOfEveryGoldenModelHasAHandler(string relative)
    {
        var g = TorchScriptFrontEnd.Build(Fixtures.Path(relative));
        Assert.NotEmpty(g.Nodes);
        Assert.All(g.Nodes, n => Assert.True(OpRegistry.Find(n.Op) is not null, $"{n.Op} has no handler"));
    }

    private static ModelGraph OneNodeGraph(string op, IReadOnlyList<Operand> inputs) => new()
    {
        Source = "hand-built.pt", Inputs = ["x"], Outputs = ["y"],
        Nodes =
        [
            new GraphNode
            {
                Index = 0, Op = op, Inputs = inputs, Outputs = ["y"], ModulePath = "features.3", ModuleKind = "Thing",
                Source = new SourceLocation("code/__torch__/model.py", 42, "    y = torch.erfinv(x)"),
            },
        ],
        LayerOutputs = [], LayerKinds = new Dictionary<string, string>(), LeafLayers = new HashSet<string>(),
    };

    [Fact]
    public void UnknownOpFailsWhenItRunsNamingTheOpLayerAndLine()
    {
        // a graph can hold an op no handler runs (built by hand or by another front end): the executor is made,
        // and the run names the op, the layer, the source line and the input shapes
        var exec = new ModelExecutor(OneNodeGraph("aten::erfinv", [Operand.Of("x")]), QEngine.X86);
        var e = Assert.Throws<QuantToolsException>(() => exec.Run(new Tensor(DType.Float32, [1, 3], new float[3])));
        Assert.Equal(ErrorCode.UnsupportedOperator, e.Code);
        Assert.Contains("aten::erfinv", e.Message);
        Assert.Contains("layer 'features.3'", e.Message);
        Assert.Contains("model.py:42", e.Message);
        Assert.Contains("float32 [1, 3]", e.Message);
        var r = Assert.Throws<QuantToolsException>(() => OpRegistry.Run("aten::erfinv", QEngine.X86, new Tensor(DType.Float32, [1], new float[1])));
        Assert.Contains("aten::erfinv", r.Message);
    }

    [Fact]
    public void PrepackErrorsNameTheLayerAndLine()
    {
        var e = Assert.Throws<QuantToolsException>(() =>
            new ModelExecutor(OneNodeGraph("quantized::conv2d", [Operand.Of("x"), Operand.Const(1L), Operand.Const(0.1), Operand.Const(0L)]), QEngine.X86));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Contains("quantized::conv2d: conv packed params must be a module constant", e.Message);
        Assert.Contains("layer 'features.3'", e.Message);
        Assert.Contains("model.py:42", e.Message);
    }

    [Fact]
    public void RunOutsideAGraphEqualsTheKernel()
    {
        // the one-op entry point the golden op cases use: a relu through the registry equals the kernel's result
        var x = new QTensor(new Tensor(DType.UInt8, [2, 3], new byte[] { 0, 5, 9, 10, 11, 255 }), QParams.PerTensor(0.5, 10, DType.QUInt8));
        var y = Assert.IsType<QTensor>(OpRegistry.Run("aten::relu", QEngine.X86, x)[0]);
        Assert.Equal(new byte[] { 10, 10, 10, 10, 11, 255 }, y.IntRepr.AsSpan<byte>().ToArray());
        Assert.Equal(0.5, y.QParams.Scale);
        Assert.Equal(10, y.QParams.ZeroPoint);
        var size = OpRegistry.Run("aten::size", QEngine.X86, x);
        Assert.Equal(new List<object?> { 2L, 3L }, size[0]);
    }

    [Fact]
    public void EveryGoldenOpHasACaseAdapter()
    {
        var ops = new HashSet<string>(StringComparer.Ordinal);
        foreach (var folder in Fixtures.AllSeedFolders())
        {
            using var g = new QuantTools.Core.Conformance.GoldenFile(Path.Combine(folder, "ops.json"));
            foreach (var c in g.Cases) ops.Add(c.GetProperty("op").GetString()!);
        }
        Assert.True(ops.Count > 30);
        Assert.All(ops, op => Assert.True(OpCaseAdapters.Find(op) is not null, $"golden op '{op}' has no adapter"));
    }
}
