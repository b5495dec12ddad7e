using System.Text.Json;
using QuantTools.Core.Conformance;
using QuantTools.Core.Export;
using QuantTools.Core.Formats;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Export;

/// <summary>
/// Export-QuantModel -Format C for every golden model with a graph (core/models, core/engines under each engine,
/// extra/seed2/models, the MobileNetV2 224 bench model), compiled with gcc -std=c99 -Wall -Wextra -Werror -O2
/// -ffp-contract=off -DQT_DUMP once per model (the full-batch and the batch-1 export go into one program), then run:
/// the float output equals PyTorch's bit for bit, every layer's QT_DUMP .npy equals the golden
/// layer_outputs_for_input0 integers (run on input[0:1]), and run_q on the quantized input gives the integers whose
/// dequantization is PyTorch's output.
/// </summary>
public class ExportGoldenModelTests
{
    /// <summary>(golden json or bench safetensors relative to tests/fixtures, model file, architecture or "", engine).</summary>
    public static IEnumerable<object[]> Cases()
    {
        foreach (var dir in new[] { Fixtures.Core("models"), Fixtures.Core("engines"), Fixtures.Path("golden", "extra", "seed2", "models") })
        {
            if (!Directory.Exists(dir)) continue;
            foreach (var json in Directory.EnumerateFiles(dir, "*.json").OrderBy(p => p, StringComparer.Ordinal))
            {
                using var f = new GoldenFile(json);
                foreach (var c in f.Cases)
                {
                    var ts = ModelCases.TorchScriptPath(f, c);
                    if (ts is null) continue;
                    // dynamic quantized linear chooses its input qparams per input at run time: not expressible
                    // (ExportErrorTests asserts the error for it)
                    if (TorchScriptFrontEnd.Build(ts).Nodes.Any(n => n.Op.Contains("linear_dynamic", StringComparison.Ordinal))) break;
                    yield return [Path.GetRelativePath(Fixtures.Path(), json), Path.GetRelativePath(Fixtures.Path(), ts), "", ModelCases.EngineOf(c).TorchName()];
                    break;
                }
            }
        }
        // eager state_dicts with an architecture file go through the same exporter (ArchitectureFrontEnd's graph)
        yield return [Path.Combine("golden", "pytorch-2.11", "core", "engines", "relu6_eager_qnnpack.json"),
            Path.Combine("golden", "pytorch-2.11", "core", "engines", "relu6_eager_qnnpack.state_dict.pt"), "relu6_eager.yaml", "qnnpack"];
        yield return [Path.Combine("golden", "pytorch-2.11", "core", "engines", "seed_convnet_fbgemm.json"),
            Path.Combine("golden", "pytorch-2.11", "core", "engines", "seed_convnet_fbgemm.state_dict.pt"), "seed_convnet.yaml", "fbgemm"];
        yield return [Path.Combine("bench", "mobilenet_v2_224.safetensors"), Path.Combine("bench", "mobilenet_v2_224.torchscript.pt"), "", "x86"];
    }

    [Fact]
    public void EveryGoldenModelWithAGraphIsCovered()
    {
        var names = Cases().Select(c => Path.GetFileNameWithoutExtension((string)c[1])).ToHashSet();
        foreach (var m in new[] { "seed_convnet.torchscript", "relu6_eager.torchscript", "relu6_fx.torchscript", "shufflenet_v2_x0_5.torchscript", "mobilenet_v2_224.torchscript" })
            Assert.Contains(m, names);
        foreach (var e in new[] { "x86", "fbgemm", "qnnpack", "onednn" })
        {
            Assert.Contains($"seed_convnet_{e}.torchscript", names);
            Assert.Contains($"relu6_eager_{e}.torchscript", names);
        }
    }

    private static string Architecture(string name) => Path.Combine(Fixtures.Path(), "..", "..", "examples", "architectures", name);

    private static ModelGraph Graph(string model, string arch) => arch.Length == 0
        ? TorchScriptFrontEnd.Build(Fixtures.Path(model))
        : ArchitectureFrontEnd.Build(Fixtures.Path(model), Architecture(arch));

    [GccTheory]
    [MemberData(nameof(Cases))]
    public void GeneratedCEqualsPyTorchBitForBit(string golden, string model, string arch, string engineName)
    {
        var engine = QEngineInfo.Parse(engineName);
        using GoldenFile? file = golden.EndsWith(".json", StringComparison.Ordinal) ? new GoldenFile(Fixtures.Path(golden)) : null;
        var tensors = file?.Tensors ?? SafeTensorsFile.Open(Fixtures.Path(golden));
        JsonElement? json = file?.Cases.First(c => c.TryGetProperty("files", out _));
        var layers = json is { } j && j.TryGetProperty("layer_outputs_for_input0", out var lo) ? lo.EnumerateArray().ToList() : [];
        var input = tensors.Get("input");
        var want = tensors.Get("output");
        var input0 = ModelCases.FirstItem(input);

        using var build = new CBuild(Path.GetFileNameWithoutExtension(model));
        var graph = Graph(model, arch);
        var full = build.Add(graph, new ExportOptions { Engine = engine, InputShape = input.Shape, Name = "full" });
        bool needOne = input.Shape[0] > 1;
        var one = needOne ? build.Add(graph, new ExportOptions { Engine = engine, InputShape = input0.Shape, Name = "one" }) : full;
        build.Compile();

        // the whole golden batch: the float output, bit for bit
        var (y, _) = build.Run("full", input);
        Assert.Null(ModelCases.CompareFloatBits(new Tensor(DType.Float32, want.Shape, y), want));

        // input[0:1]: every layer PyTorch recorded, from the QT_DUMP files
        var (y0, dumps) = build.Run(one.Name, input0);
        Assert.Null(ModelCases.CompareFloatBits(new Tensor(DType.Float32, one.OutputShape, y0), ModelCases.FirstItem(want)));
        var graphLayers = graph.LayerOutputs.Select(kv => kv.Key).ToHashSet();
        foreach (var rec in layers)
        {
            var name = rec.GetProperty("module").GetString()!;
            // an architecture file lists only the modules that compute: PyTorch's Identity modules (bn1, act1) are not layers there
            if (arch.Length > 0 && !graphLayers.Contains(name) && rec.GetProperty("type").GetString() == "Identity") continue;
            var goldenQ = file!.GetQTensor(rec.GetProperty("y"));
            var path = Path.Combine(dumps, DumpName(name) + ".npy");
            Assert.True(File.Exists(path), $"layer '{name}': no QT_DUMP file {path}");
            var got = NpyFormat.Read(path);
            Assert.Equal(goldenQ.Shape, got.Shape);
            Assert.True(goldenQ.IntRepr.AsBytes().SequenceEqual(got.AsBytes()), $"layer '{name}': integers differ from PyTorch's");
        }

        // run_q: quantized input -> quantized output, whose dequantization is PyTorch's output
        var plan = one.Plan;
        Assert.NotNull(plan.QuantizedInput);
        Assert.NotNull(plan.QuantizedOutput);
        var qi = plan.QuantizedInput!;
        var qin = Quantizer.Quantize(input0, QParams.PerTensor(qi.Scale, qi.ZeroPoint, qi.DType));
        var (code, qout) = build.RunQ(one.Name, qin.IntRepr.AsBytes().ToArray());
        Assert.Equal(0, code);
        var qo = plan.QuantizedOutput!;
        var deq = Quantizer.Dequantize(new QTensor(Tensor.FromBytes(qo.DType.IntReprType(), qo.Shape, qout), QParams.PerTensor(qo.Scale, qo.ZeroPoint, qo.DType)));
        Assert.Null(ModelCases.CompareFloatBits(new Tensor(DType.Float32, one.OutputShape, deq.AsSpan<float>().ToArray()), ModelCases.FirstItem(want)));
    }

    /// <summary>The file name qt_dump_npy gives a layer (characters outside [A-Za-z0-9._-] become '_').</summary>
    public static string DumpName(string layer) =>
        new(layer.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_').ToArray());
}
