using QuantTools.Core.Conformance;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Execution;

/// <summary>An eager state_dict plus the example architecture files reproduces PyTorch's output and layers bit for bit.</summary>
public class ArchitectureFrontEndTests
{
    private static string Arch(string model) => Fixtures.Path("..", "..", "examples", "architectures", model + ".yaml");

    public static TheoryData<string, string, string, string> Cases()
    {
        var d = new TheoryData<string, string, string, string>();
        foreach (var (folder, prefix) in new[] { (Fixtures.Core("models"), ""), (Fixtures.Path("golden", "extra", "seed2", "models"), ""), (Fixtures.Core("engines"), "_") })
            foreach (var model in new[] { "seed_convnet", "relu6_eager" })
                foreach (var json in Directory.EnumerateFiles(folder, model + (prefix == "" ? ".json" : "_*.json")))
                    foreach (var file in new[] { ".state_dict.pt", ".state_dict.legacy.pt" })
                    {
                        var stem = Path.GetFileNameWithoutExtension(json);
                        if (File.Exists(Path.Combine(folder, stem + file)))
                            d.Add(Path.GetRelativePath(Fixtures.Path(), json), stem + file, model, stem.Contains('_') && prefix == "_" ? stem[(model.Length + 1)..] : "x86");
                    }
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void StateDictPlusArchitectureEqualsPyTorch(string jsonRelative, string file, string model, string engine)
    {
        var json = Fixtures.Path(jsonRelative);
        var dir = Path.GetDirectoryName(json)!;
        var exec = new ModelExecutor(ArchitectureFrontEnd.Build(Path.Combine(dir, file), Arch(model)), QEngineInfo.Parse(engine));
        using var g = new GoldenFile(json);
        var input = g.Tensors.Get("input");
        var r = exec.Run(input, captureLayers: true);
        Assert.Equal("", OpsCases.CompareF(g.Tensors.Get("output"), r.Output));
        // layers were recorded on input[0:1]
        var first = exec.Run(new Tensor(input.DType, [1, .. input.Shape[1..]], input.AsSpan<float>()[..(input.Length / input.Shape[0])].ToArray()), captureLayers: true);
        int compared = 0;
        foreach (var l in g.Cases.First().GetProperty("layer_outputs_for_input0").EnumerateArray())
        {
            var name = l.GetProperty("module").GetString()!;
            var got = first.Layer(name);
            if (got is null) continue; // Identity modules (bn1, act1) are not in the architecture
            Assert.Equal("", OpsCases.CompareQ(g.GetQTensor(l.GetProperty("y")), got.Value));
            compared++;
        }
        Assert.True(compared >= 4, $"only {compared} layers compared");
    }

    [Fact]
    public void ErrorsNameTheFileLineAndWhatIsWrong()
    {
        var sd = Fixtures.Core("models", "seed_convnet.state_dict.pt");
        var bad = Path.Combine(Path.GetTempPath(), "qt-arch-" + Guid.NewGuid() + ".yaml");
        try
        {
            File.WriteAllText(bad, "layers:\n  - {name: quant, op: quantize}\n  - {name: conv1, op: conv3d}\n");
            var e = Assert.Throws<QuantToolsException>(() => ArchitectureFrontEnd.Build(sd, bad));
            Assert.Contains(":3:", e.Message);
            Assert.Contains("unknown op 'conv3d'", e.Message);
            File.WriteAllText(bad, "layers:\n  - {name: quant, op: quantize, strid: 2}\n");
            e = Assert.Throws<QuantToolsException>(() => ArchitectureFrontEnd.Build(sd, bad));
            Assert.Contains("unknown key 'strid'", e.Message);
            File.WriteAllText(bad, "layers:\n  - {name: nosuch, op: conv2d}\n");
            e = Assert.Throws<QuantToolsException>(() => ArchitectureFrontEnd.Build(sd, bad));
            Assert.Contains("'nosuch.weight'", e.Message);
            File.WriteAllText(bad, "layers:\n  - {name: quant, op: quantize}\n  - {name: s, op: add, inputs: [quant, later]}\n");
            e = Assert.Throws<QuantToolsException>(() => ArchitectureFrontEnd.Build(sd, bad));
            Assert.Contains("'later'", e.Message);
        }
        finally { File.Delete(bad); }
    }
}
