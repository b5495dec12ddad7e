using System.Text.Json;
using QuantTools.Core.Conformance;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Graph;

namespace QuantTools.Core.Tests.Execution;

/// <summary>
/// Every golden model with a TorchScript file (core/models, core/engines under each engine, extra/seed2/models when
/// present): the graph builds, and the output and every captured layer equal PyTorch's bit for bit under the engine
/// the data was made with.
/// </summary>
public class GoldenModelExecutionTests
{
    public static IEnumerable<object[]> Cases()
    {
        foreach (var dir in new[] { Fixtures.Core("models"), Fixtures.Core("engines"), Fixtures.Path("golden", "extra", "seed2", "models") })
        {
            if (!Directory.Exists(dir)) continue;
            foreach (var json in Directory.EnumerateFiles(dir, "*.json").OrderBy(p => p, StringComparer.Ordinal))
            {
                using var f = new GoldenFile(json);
                foreach (var c in f.Cases)
                    if (ModelCases.TorchScriptPath(f, c) is not null)
                    {
                        yield return [Path.GetRelativePath(Fixtures.Path(), json)];
                        break;
                    }
            }
        }
    }

    private static (GoldenFile File, JsonElement Case) Open(string rel)
    {
        var f = new GoldenFile(Fixtures.Path(rel));
        return (f, f.Cases.First(c => ModelCases.TorchScriptPath(f, c) is not null));
    }

    [Fact]
    public void AllExpectedModelsAreFound()
    {
        var names = Cases().Select(c => Path.GetFileNameWithoutExtension((string)c[0])).ToHashSet();
        foreach (var m in new[] { "seed_convnet", "relu6_eager", "relu6_fx", "dynamic_mlp", "shufflenet_v2_x0_5" })
            Assert.Contains(m, names);
        foreach (var e in new[] { "x86", "fbgemm", "qnnpack", "onednn" })
        {
            Assert.Contains("seed_convnet_" + e, names);
            Assert.Contains("relu6_eager_" + e, names);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GraphBuildsWithEveryGoldenLayer(string rel)
    {
        var (file, json) = Open(rel);
        using var _ = file;
        var graph = TorchScriptFrontEnd.Build(ModelCases.TorchScriptPath(file, json)!);
        Assert.NotEmpty(graph.Nodes);
        Assert.Single(graph.Inputs);
        Assert.Single(graph.Outputs);
        Assert.All(graph.Nodes, n => Assert.NotNull(n.Source));
        var layers = graph.LayerOutputs.Select(kv => kv.Key).ToHashSet();
        if (json.TryGetProperty("layer_outputs_for_input0", out var lo))
            foreach (var rec in lo.EnumerateArray())
                Assert.Contains(rec.GetProperty("module").GetString()!, layers);
        // every node is in topological order: its value inputs come from graph inputs or earlier nodes
        var known = new HashSet<string>(graph.Inputs);
        foreach (var n in graph.Nodes)
        {
            foreach (var i in n.Inputs.Where(i => i.IsValue)) Assert.Contains(i.Value!, known);
            foreach (var o in n.Outputs) known.Add(o);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OutputAndEveryLayerAreBitExact(string rel)
    {
        var (file, json) = Open(rel);
        using var _ = file;
        var exec = new ModelExecutor(TorchScriptFrontEnd.Build(ModelCases.TorchScriptPath(file, json)!), ModelCases.EngineOf(json));
        var cmp = ModelCases.Compare(file, json, exec);
        Assert.True(cmp.Passed, $"{rel}: {cmp.Detail}");
        Assert.True(cmp.OutputEqual);
        Assert.Equal(cmp.LayersCompared, cmp.LayersEqual);
    }

    [Fact]
    public void ConformanceCategoryRunsTheModelCases()
    {
        var results = new List<CaseResult>();
        var cat = new ModelCases();
        foreach (var dir in new[] { Fixtures.Core("models"), Fixtures.Core("engines") })
            foreach (var json in Directory.EnumerateFiles(dir, "*.json").OrderBy(p => p, StringComparer.Ordinal))
            {
                Assert.True(cat.Handles(json));
                using var f = new GoldenFile(json);
                results.AddRange(cat.Run(f, CancellationToken.None));
            }
        // seed_convnet_qat.json is the QAT fake-quant forward: never Passed, always NotRun with its reason
        var qat = Assert.Single(results, r => r.Id == "seed_convnet_qat");
        Assert.Equal(CaseStatus.NotRun, qat.Status);
        Assert.All(results.Where(r => r.Id != "seed_convnet_qat"), r => Assert.True(r.Status == CaseStatus.Passed, $"{r.Id}: {r.Status} {r.Detail}"));
    }
}
