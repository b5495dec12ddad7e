using QuantTools.Core.Conformance;
using QuantTools.Core.Export;
using QuantTools.Core.Formats;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Export;

/// <summary>
/// The exported C against QuantTools' executor for every op and kernel path the exporter knows, on every engine
/// profile (x86, fbgemm, qnnpack, onednn, fbgemm-avx2): one synthetic graph whose every node is a layer, so each
/// layer's QT_DUMP is compared. The golden models do not reach some paths (FBGEMM's int16-saturating depthwise,
/// fbgemm-avx2's saturating GEMM, channels_last / NCHW / qnnpack average pooling, ceil_mode and divisor_override,
/// adaptive windows, both cat kernels, broadcast mul, the float mean path, transposed conv, every activation table);
/// the executor's kernels are the reference there, as they are bit-exact with PyTorch on the op golden cases.
/// Sizes are odd (11 x 13) so element-wise ops have a scalar tail after their 128-element vector blocks. All engines
/// compile into one program.
/// </summary>
public class ExportKernelTests
{
    private static readonly string[] Engines = ["x86", "fbgemm", "qnnpack", "onednn", "fbgemm-avx2"];

    // (engine, CPU class) pairs the C must follow: every engine on the golden host's class, and the AVX2 class where it
    // changes the integers (x86 convs on saturating FBGEMM, oneDNN's tap-pair saturation, half-width ATen vector blocks)
    private static readonly (string Engine, CpuClass Cpu)[] Profiles =
        [.. Engines.Select(e => (e, CpuClass.Avx512Vnni)), ("x86", CpuClass.Avx2), ("onednn", CpuClass.Avx2)];

    private static string Sym((string Engine, CpuClass Cpu) p) => "m_" + p.Engine.Replace('-', '_') + (p.Cpu == CpuClass.Avx2 && p.Engine != "fbgemm-avx2" ? "_avx2" : "");

    private sealed class G
    {
        public readonly List<GraphNode> Nodes = new();
        public readonly List<KeyValuePair<string, string>> Layers = new();
        public string Node(string name, string op, params object?[] args)
        {
            var inputs = args.Select(a => a is V v ? Operand.Of(v.Name) : Operand.Const(a)).ToList();
            Nodes.Add(new GraphNode { Index = Nodes.Count, Op = op, Inputs = inputs, Outputs = [name], ModulePath = name, Source = new SourceLocation("synthetic", Nodes.Count, op) });
            Layers.Add(new(name, name));
            return name;
        }
        public ModelGraph Build(string output) => new()
        {
            Source = "synthetic", Inputs = ["x"], Outputs = [output], Nodes = Nodes, LayerOutputs = Layers,
            LayerKinds = Layers.ToDictionary(l => l.Key, l => "Op"), LeafLayers = Layers.Select(l => l.Key).ToHashSet(),
        };
    }

    private sealed record V(string Name);

    private static List<object?> L(params long[] v) => v.Select(x => (object?)x).ToList();

    private static QTensor Weight(Random r, int[] shape, bool perChannel, bool zeroZp)
    {
        int n = 1;
        foreach (var d in shape) n *= d;
        var w = new sbyte[n];
        for (int i = 0; i < n; i++) w[i] = (sbyte)r.Next(-128, 128);
        var t = new Tensor(DType.Int8, shape, w);
        if (!perChannel) return new QTensor(t, QParams.PerTensor(0.004 + r.NextDouble() * 0.01, zeroZp ? 0 : 3, DType.QInt8));
        var scales = Enumerable.Range(0, shape[0]).Select(_ => 0.002 + r.NextDouble() * 0.01).ToArray();
        return new QTensor(t, QParams.PerChannel(scales, new long[shape[0]], 0, DType.QInt8, QScheme.PerChannelSymmetric));
    }

    private static Tensor Bias(Random r, int n) => Tensor.FromArray(Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray(), n);

    private static ConvPackedParams Conv(Random r, int[] wshape, long stride, long pad, long dil, long groups, bool perChannel, bool zeroZp,
        bool transposed = false, long outPad = 0) => new()
    {
        Version = 3, SpatialDims = 2, Weight = Weight(r, wshape, perChannel, zeroZp), Bias = Bias(r, transposed ? wshape[1] * (int)groups : wshape[0]),
        Stride = [stride, stride], Padding = [pad, pad], Dilation = [dil, dil], OutputPadding = transposed ? [outPad, outPad] : [0, 0],
        Groups = groups, Transpose = transposed,
    };

    /// <summary>The synthetic model under <paramref name="engine"/> (oneDNN takes symmetric weights and no output padding only).</summary>
    internal static ModelGraph Model(string engine)
    {
        var r = new Random(12);
        bool onednn = engine == "onednn";
        var g = new G();
        V x = new("x");
        var q0 = new V(g.Node("quant", "aten::quantize_per_tensor", x, 0.05, 60L, 13L));
        var c1 = new V(g.Node("conv1", "quantized::conv2d_relu", q0, Conv(r, [24, 3, 3, 3], 1, 1, 1, 1, true, true), 0.04, 0L));
        // depthwise 3x3, groups % 8 == 0, "same" padding (24 channels: 16 in vector blocks, 8 in the tail of NHWC kernels): FBGEMM's int16-saturating depthwise kernel under fbgemm
        var d1 = new V(g.Node("dw", "quantized::conv2d", c1, Conv(r, [24, 1, 3, 3], 1, 1, 1, 24, true, true), 0.03, 70L));
        var a1 = new V(g.Node("add", "quantized::add", c1, d1, 0.05, 50L));
        var ar = new V(g.Node("add_relu", "quantized::add_relu", a1, d1, 0.06, 10L));
        g.Node("avg_nhwc", "aten::avg_pool2d", ar, L(3, 3), L(2, 2), L(1, 1), false, false, null);
        var pc = new V(g.Node("contig", "aten::contiguous", ar, 0L));
        g.Node("avg_ceil", "aten::avg_pool2d", pc, L(2, 2), L(2, 2), L(0, 0), true, true, null);
        g.Node("avg_div", "aten::avg_pool2d", pc, L(3, 3), L(1, 1), L(1, 1), false, true, 5L);
        var m1 = new V(g.Node("max", "aten::max_pool2d", ar, L(3, 3), L(2, 2), L(1, 1), L(1, 1), false));
        var hs = new V(g.Node("hardswish", "quantized::hardswish", m1, 0.03, 40L));
        g.Node("sigmoid", "aten::sigmoid", hs);
        g.Node("hardsigmoid", "aten::hardsigmoid", d1);
        g.Node("tanh", "aten::tanh", d1);
        g.Node("leaky", "aten::leaky_relu", d1, 0.1);
        g.Node("elu", "quantized::elu", d1, 0.04, 80L, 1.0);
        g.Node("clamp_min", "aten::clamp", d1, 0.2, null);
        g.Node("hardtanh", "aten::hardtanh", d1, -0.5, 1.5);
        g.Node("relu6", "quantized::relu6", d1);
        var rl = new V(g.Node("relu", "aten::relu", d1));
        g.Node("shuffle", "aten::channel_shuffle", rl, 4L);
        var l1 = new V(g.Node("list1", "prim::ListConstruct", c1, d1));
        g.Node("cat_nhwc", "quantized::cat", l1, 1L, 0.04, 0L);
        var l2 = new V(g.Node("list2", "prim::ListConstruct", pc, pc));
        g.Node("cat_general", "quantized::cat", l2, 1L, 0.05, 30L);
        g.Node("add_scalar", "quantized::add_scalar", d1, 0.3);
        g.Node("mul_scalar", "quantized::mul_scalar", d1, -0.5);
        var mn1 = new V(g.Node("mean_cl", "aten::mean", ar, L(2, 3), true, null));
        var mn2 = new V(g.Node("mean_contig", "aten::mean", pc, L(2, 3), false, null));
        g.Node("mul_bcast", "quantized::mul", ar, mn1, 0.05, 20L);
        g.Node("mul_relu", "quantized::mul_relu", c1, d1, 0.02, 10L);
        g.Node("adaptive_nhwc", "aten::adaptive_avg_pool2d", ar, L(4, 5));
        g.Node("adaptive_nchw", "aten::adaptive_avg_pool2d", pc, L(4, 5));
        g.Node("adaptive_1x1", "aten::adaptive_avg_pool2d", ar, L(1, 1));
        var c3 = new V(g.Node("conv_strided", "quantized::conv2d", ar, Conv(r, [8, 24, 3, 3], 2, 2, 2, 1, false, onednn), 0.05, 64L));
        if (!onednn)
            g.Node("conv_t", "quantized::conv_transpose2d", c3, Conv(r, [8, 4, 3, 3], 2, 1, 1, 1, false, false, transposed: true, outPad: 1), 0.05, 64L);
        g.Node("grouped", "quantized::conv2d_relu", c1, Conv(r, [8, 6, 3, 3], 1, 1, 1, 4, true, true), 0.03, 0L);
        var fl = new V(g.Node("flatten", "aten::flatten", mn2, 1L));
        var ln = new V(g.Node("fc", "quantized::linear", fl, new LinearPackedParams { Weight = Weight(r, [10, 24], !onednn, onednn), Bias = Bias(r, 10) }, 0.1, 60L));
        g.Node("fc_relu", "quantized::linear_relu", fl, new LinearPackedParams { Weight = Weight(r, [12, 24], true, true), Bias = null }, 0.08, 0L);
        return g.Build(g.Node("dequant", "aten::dequantize", ln));
    }

    internal static Tensor Input(int seed)
    {
        var r = new Random(seed);
        var f = new float[2 * 3 * 11 * 13];
        for (int i = 0; i < f.Length; i++) f[i] = (float)(r.NextDouble() * 6 - 3) * (i % 97 == 0 ? 4 : 1); // a few beyond the input range
        return Tensor.FromArray(f, 2, 3, 11, 13);
    }

    [GccFact]
    public void EveryKernelPathEqualsTheExecutorOnEveryEngine()
    {
        using var build = new CBuild("kernels");
        foreach (var pr in Profiles)
            build.Add(Model(pr.Engine), new ExportOptions { Engine = QEngineInfo.Parse(pr.Engine), Cpu = pr.Cpu, InputShape = [2, 3, 11, 13], Name = Sym(pr) });
        build.Compile();
        var checkedLayers = 0;
        foreach (var pr in Profiles)
        {
            var e = $"{pr.Engine} ({pr.Cpu.Name()})";
            var exec = new ModelExecutor(Model(pr.Engine), QEngineInfo.Parse(pr.Engine), pr.Cpu);
            foreach (int seed in new[] { 1, 2 })
            {
                var input = Input(seed);
                var want = exec.Run(input, captureLayers: true);
                var (y, dumps) = build.Run(Sym(pr), input);
                Assert.Null(ModelCases.CompareFloatBits(new Tensor(DType.Float32, want.Output.Shape, y), want.Output));
                foreach (var layer in want.Layers)
                {
                    var got = NpyFormat.Read(Path.Combine(dumps, ExportGoldenModelTests.DumpName(layer.Name) + ".npy"));
                    Assert.Equal(layer.Value.Shape, got.Shape);
                    Assert.True(layer.Value.IntRepr.AsBytes().SequenceEqual(got.AsBytes()), $"{e}, seed {seed}, layer '{layer.Name}': the C differs from the executor");
                    checkedLayers++;
                }
            }
        }
        Assert.True(checkedLayers > 5 * 2 * 35, $"only {checkedLayers} layers compared");
    }

    [Fact]
    public void ThePlanTakesTheKernelPathsTheTestMeansToCover()
    {
        var x86 = ExportPlanner.Plan(Model("x86"), QEngine.X86, [2, 3, 11, 13], "m");
        var fbgemm = ExportPlanner.Plan(Model("fbgemm"), QEngine.Fbgemm, [2, 3, 11, 13], "m");
        var qnnpack = ExportPlanner.Plan(Model("qnnpack"), QEngine.Qnnpack, [2, 3, 11, 13], "m");
        var avx2 = ExportPlanner.Plan(Model("fbgemm-avx2"), QEngine.FbgemmAvx2, [2, 3, 11, 13], "m");
        AvgPoolVariant Pool(ExportPlan p, string layer) => p.Steps.OfType<AvgPoolStep>().Single(s => s.Layer == layer).Variant;
        Assert.Equal(AvgPoolVariant.Nhwc, Pool(x86, "avg_nhwc"));
        Assert.Equal(AvgPoolVariant.Nchw, Pool(x86, "avg_ceil"));
        Assert.Equal(AvgPoolVariant.Qnnpack, Pool(qnnpack, "avg_nhwc"));
        Assert.Equal(AvgPoolVariant.Nchw, Pool(qnnpack, "avg_ceil")); // qnnpack has no ceil_mode: ATen's kernel
        Assert.Equal(AvgPoolVariant.MeanFloat, Pool(x86, "mean_cl"));
        Assert.Equal(AvgPoolVariant.MeanInner, Pool(x86, "mean_contig"));
        Assert.Equal(AvgPoolVariant.MeanQnnpack, Pool(qnnpack, "mean_cl"));
        Assert.Equal(AvgPoolVariant.AdaptiveNhwc, Pool(x86, "adaptive_nhwc"));
        Assert.Equal(AvgPoolVariant.AdaptiveNchw, Pool(x86, "adaptive_nchw"));
        Assert.Equal(AvgPoolVariant.Qnnpack, Pool(qnnpack, "adaptive_1x1"));
        Assert.True(x86.Steps.OfType<CatStep>().Single(s => s.Layer == "cat_nhwc").Nhwc);
        Assert.Contains(x86.Steps.OfType<CatStep>().Single(s => s.Layer == "cat_nhwc").Parts, p => p.Same);
        Assert.False(x86.Steps.OfType<CatStep>().Single(s => s.Layer == "cat_general").Nhwc);
        Assert.True(x86.Steps.OfType<BinaryStep>().Single(s => s.Layer == "add").Nhwc);
        Assert.NotNull(qnnpack.Steps.OfType<BinaryStep>().Single(s => s.Layer == "add").QnnpackAdd);
        Assert.True(fbgemm.Steps.OfType<ConvStep>().Single(s => s.Layer == "dw").Saturating);        // FBGEMM depthwise
        Assert.False(x86.Steps.OfType<ConvStep>().Single(s => s.Layer == "dw").Saturating);          // x86 sends it to oneDNN
        Assert.True(avx2.Steps.OfType<ConvStep>().Single(s => s.Layer == "conv1").Saturating);      // no VNNI: every GEMM
        Assert.True(avx2.Steps.OfType<LinearStep>().Single(s => s.Layer == "fc").Saturating);
        Assert.Contains(qnnpack.Steps.OfType<GatherStep>(), s => s.Layer == "relu6");               // qnnpack_clamp layout
        Assert.Contains(x86.Steps.OfType<GatherStep>(), s => s.Layer == "mul_bcast");               // broadcast
        Assert.Contains(x86.Steps.OfType<LutStep>(), s => !s.SingleTable);                           // vector / scalar tables differ
        Assert.Contains(qnnpack.Steps.OfType<LutStep>(), s => s.Layer == "tanh" && s.SingleTable);   // QNNPACK's table
    }
}
