using QuantTools.Core.Conformance;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Models;

/// <summary>
/// Get-QParams rows against what the executor really feeds each layer: every golden model in every file form
/// (TorchScript, state_dict and legacy with and without the example architecture, FX, engine variants). The model runs
/// with every graph value captured; a row's InputScale / InputZeroPoint must be the runtime qparams of the value the
/// layer reads, its OutputScale / OutputZeroPoint those of the layer's output, its Multipliers s_in * s_w / s_out from
/// those, and its InputLayer the layer whose output holds the very integers the layer reads. A row may leave its input
/// empty only when it says so (InputSource unknown); it may never be wrong.
/// </summary>
public class LayerQParamsExecutorTests
{
    private static string ArchFile(string name) => Fixtures.Path("..", "..", "examples", "architectures", name + ".yaml");
    private static readonly string[] Engines = ["x86", "fbgemm", "qnnpack", "onednn"];

    public static TheoryData<string, bool> Cases()
    {
        var d = new TheoryData<string, bool>();
        foreach (var dir in new[] { Fixtures.Core("models"), Fixtures.Core("engines"), Fixtures.Path("golden", "extra", "seed2", "models"), Fixtures.Path("fx") })
            foreach (var f in Directory.EnumerateFiles(dir, "*.pt").Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(f);
                if (name.Contains(".float.") || name.Contains(".qat.")) continue;
                var rel = Path.GetRelativePath(Fixtures.Path(), f);
                d.Add(rel, false);
                if (!name.Contains(".torchscript.") && File.Exists(ArchFile(ArchitectureOf(name)))) d.Add(rel, true);
            }
        return d;
    }

    private static string Stem(string file) => Path.GetFileName(file)[..Path.GetFileName(file).IndexOf('.')];

    private static string EngineOf(string file) => Engines.FirstOrDefault(e => Stem(file).EndsWith("_" + e, StringComparison.Ordinal)) ?? "x86";

    private static string ArchitectureOf(string file)
    {
        var stem = Stem(file);
        var e = Engines.FirstOrDefault(x => stem.EndsWith("_" + x, StringComparison.Ordinal));
        return e is null ? stem : stem[..^(e.Length + 1)];
    }

    /// <summary>The graph with every node output captured under "%name" as well as the module outputs.</summary>
    private static ModelGraph CaptureAll(ModelGraph g) => new()
    {
        Source = g.Source, Inputs = g.Inputs, Outputs = g.Outputs, Nodes = g.Nodes, LayerKinds = g.LayerKinds, LeafLayers = g.LeafLayers,
        LayerOutputs = [.. g.LayerOutputs, .. g.Nodes.SelectMany(n => n.Outputs).Select(o => new KeyValuePair<string, string>("%" + o, o))],
    };

    /// <summary>A row for a quantized op the graph code calls (kind_N): the N-th root-level call of quantized::kind.</summary>
    private static GraphNode? RootCall(ModelGraph g, string row)
    {
        var m = System.Text.RegularExpressions.Regex.Match(row, @"^(?<kind>.+)_(?<n>\d+)$");
        if (!m.Success) return null;
        var calls = g.Nodes.Where(n => n.ModulePath.Length == 0 && n.Op == "quantized::" + m.Groups["kind"].Value).ToList();
        int k = int.Parse(m.Groups["n"].Value);
        return k < calls.Count ? calls[k] : null;
    }

    /// <summary>The value a row's layer reads: the first tensor operand of its code that was made outside it (first element of a list).</summary>
    private static string? Fed(ModelGraph g, string row)
    {
        var producer = new Dictionary<string, GraphNode>(StringComparer.Ordinal);
        foreach (var n in g.Nodes) foreach (var o in n.Outputs) producer[o] = n;
        string? Resolve(string v) => producer.TryGetValue(v, out var p) && p.Op == "prim::ListConstruct" ? p.Inputs.First(i => i.IsValue).Value : v;
        var own = g.Nodes.Where(n => n.ModulePath == row).ToList();
        if (own.Count == 0)
            return RootCall(g, row)?.Inputs.Where(i => i.IsValue).Select(i => Resolve(i.Value!)).FirstOrDefault();
        foreach (var n in own)
            foreach (var i in n.Inputs.Where(i => i.IsValue))
            {
                if (producer.TryGetValue(i.Value!, out var p) && p.ModulePath == row) continue;
                return Resolve(i.Value!);
            }
        return null;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RowsMatchWhatTheExecutorFeedsEachLayer(string fileRelative, bool withArchitecture)
    {
        var file = Fixtures.Path(fileRelative);
        var model = ModelLoader.Load(file, withArchitecture ? ArchFile(ArchitectureOf(file)) : null);
        var rows = LayerQParams.For(model);
        // the reference run: the file's own graph, else the same model's TorchScript form (same tensors, same module names)
        var graph = model.Graph ?? ModelLoader.Load(Path.Combine(Path.GetDirectoryName(file)!, Stem(file) + ".torchscript.pt")).Graph!;
        Assert.NotNull(graph);
        var json = Path.Combine(Path.GetDirectoryName(file)!, Stem(file) + ".json");
        Tensor input;
        if (File.Exists(json))
        {
            using var golden = new GoldenFile(json);
            input = golden.Tensors.Get("input");
        }
        else input = QuantTools.Core.Formats.NpyFormat.Read(Path.Combine(Path.GetDirectoryName(file)!, Stem(file) + ".input.npy"));
        var one = new Tensor(input.DType, [1, .. input.Shape[1..]], input.AsSpan<float>()[..(input.Length / input.Shape[0])].ToArray());
        var run = new ModelExecutor(CaptureAll(graph), QEngineInfo.Parse(EngineOf(file))).Run(one, captureLayers: true);
        QParams? Value(string? v) => v is null ? null : run.Layer("%" + v)?.QParams;

        int inputs = 0, floats = 0, outputs = 0, multipliers = 0, wiring = 0, unknown = 0;
        foreach (var row in rows)
        {
            if (row.InputSource == "unknown")
            {
                Assert.Null(row.InputScale);
                Assert.Null(row.InputZeroPoint);
                Assert.Null(row.Multipliers);
                unknown++;
                continue;
            }
            var fed = Fed(graph, row.Name);
            var fq = Value(fed);
            if (row.Kind is not ("Quantize" or "FakeQuantize" or "Observer") && fed is not null)
            {
                if (fq is null)
                {
                    Assert.Null(row.InputScale); // a float input (dynamic linear)
                    floats++;
                }
                else
                {
                    Assert.True(fq.Scale == row.InputScale && fq.ZeroPoint == row.InputZeroPoint,
                        $"{row.Name}: row input ({row.InputScale:R}, {row.InputZeroPoint}) but the executor feeds ({fq.Scale:R}, {fq.ZeroPoint}) from %{fed}");
                    inputs++;
                    // the producer the graph names holds exactly the integers the layer reads (a state_dict's file
                    // order names the previous module with tensors, which may sit before a ReLU6 the file cannot show)
                    if (row.InputSource == "graph" && row.InputLayer is { } producer &&
                        (run.Layer(producer) ?? (RootCall(graph, producer) is { } rc ? run.Layer("%" + rc.Outputs[0]) : null)) is { } made)
                    {
                        var p = graph.Nodes.First(n => n.Outputs.Contains(fed));
                        if (p.ModulePath == producer || p == RootCall(graph, producer))
                            Assert.True(made.Value.IntRepr.AsSpan<byte>().SequenceEqual(run.Layer("%" + fed)!.Value.IntRepr.AsSpan<byte>()),
                                $"{row.Name} reads %{fed}, which does not hold the integers of its InputLayer {producer}");
                        else // through graph code that is no layer (shufflenet's x.mean([2, 3])): the nearest layer upstream
                            Assert.True(made.QParams.Scale == fq.Scale && made.QParams.ZeroPoint == fq.ZeroPoint, $"{row.Name}: InputLayer {producer}");
                        wiring++;
                    }
                }
            }
            var produced = run.Layer(row.Name)?.QParams ?? (RootCall(graph, row.Name) is { } call ? Value(call.Outputs[0]) : null);
            if (produced is not null && row.OutputScale is not null)
            {
                Assert.Equal(produced.Scale, row.OutputScale);
                Assert.Equal(produced.ZeroPoint, row.OutputZeroPoint);
                outputs++;
            }
            if (row.Multipliers is { } m)
            {
                Assert.NotNull(fq);
                Assert.NotNull(produced);
                for (int c = 0; c < m.Count; c++)
                    Assert.Equal(fq!.Scale * row.WeightScales![c] / produced!.Scale, m[c]);
                multipliers++;
            }
        }
        string what = $"{Path.GetFileName(file)}{(withArchitecture ? " + architecture" : "")}: {inputs} inputs ({floats} float), {outputs} outputs, {multipliers} multipliers, {wiring} producers, {unknown} unknown";
        if (rows.Any(r => r.InputSource == "unknown"))
            Assert.NotNull(LayerQParams.UnknownInputsReason(rows, model));
        if (model.Form is "torchscript" || withArchitecture)
        {
            Assert.True(unknown == 0, what);
            Assert.True(floats >= 2 || inputs >= 2 && outputs >= 2 && multipliers >= 1, what);
        }
        else Assert.True(inputs + floats + unknown >= 2, what);
    }

    [Fact]
    public void FxTorchScriptConv1ReadsItsOwnQuantizeStep()
    {
        // the case that was wrong: conv1 was given fc's input scale (0.000763), so M was 2.57e-05 instead of ~0.00223
        var rows = LayerQParams.For(ModelLoader.Load(Fixtures.Core("models", "relu6_fx.torchscript.pt"))).ToDictionary(r => r.Name);
        Assert.Equal("conv1_input_0", rows["conv1"].InputLayer);
        Assert.Equal(rows["conv1_input_0"].OutputScale, rows["conv1"].InputScale);
        Assert.InRange(rows["conv1"].Multipliers![0], 0.002, 0.0025);
        Assert.Equal("quantize_0", rows["fc"].InputLayer);
        Assert.Equal(rows["quantize_0"].OutputScale, rows["fc"].InputScale);
        Assert.Equal("graph", rows["fc"].InputSource);
    }

    [Fact]
    public void FxGraphCodeCallsOfQuantizedOpsAreRows()
    {
        // torch.ops.quantized.add(conv1, conv2, _scale_0, _zero_point_0) in the graph code: a row of its own, and
        // _scale_0 is the add's output qparams, not a quantize step
        var rows = LayerQParams.For(ModelLoader.Load(Fixtures.Path("fx", "fx_functional.torchscript.pt")));
        var add = Assert.Single(rows, r => r.Kind == "add");
        Assert.Equal("add_0", add.Name);
        Assert.Equal("conv1", add.InputLayer);
        Assert.Equal(rows.Single(r => r.Name == "conv1").OutputScale, add.InputScale);
        Assert.Equal("add_0", rows.Single(r => r.Name == "fc").InputLayer);
        Assert.Equal(add.OutputScale, rows.Single(r => r.Name == "fc").InputScale);
        Assert.Single(rows, r => r.Kind == "Quantize");
    }

    [Fact]
    public void FxStateDictSaysWhatItCannotWire()
    {
        var model = ModelLoader.Load(Fixtures.Core("models", "relu6_fx.state_dict.pt"));
        var rows = LayerQParams.For(model).ToDictionary(r => r.Name);
        // conv1_input_scale_0 names its consumer; _scale_0 does not
        Assert.Equal("name", rows["conv1"].InputSource);
        Assert.Equal(rows["conv1_input_0"].OutputScale, rows["conv1"].InputScale);
        Assert.Equal("unknown", rows["fc"].InputSource);
        Assert.Null(rows["fc"].InputScale);
        var why = LayerQParams.UnknownInputsReason(rows.Values.ToList(), model)!;
        Assert.Contains("quantize_0", why);
        Assert.Contains("-Architecture", why);
    }
}
