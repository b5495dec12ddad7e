using System.Text.Json;
using QuantTools.Core.Conformance;
using QuantTools.Core.Models;

namespace QuantTools.Core.Tests.Models;

/// <summary>
/// Every golden quantized model, in every file form, gives per-layer activation qparams equal to what PyTorch
/// recorded for that layer's output (layer_outputs_for_input0), scales as float32 bits and zero points exactly.
/// </summary>
public class ModelLoaderGoldenTests
{
    private static IEnumerable<string> ModelJsons()
    {
        foreach (var dir in new[] { Fixtures.Core("models"), Fixtures.Core("engines"), Fixtures.Path("golden", "extra", "seed2", "models") })
            foreach (var f in Directory.EnumerateFiles(dir, "*.json").Order(StringComparer.Ordinal))
                yield return f;
    }

    public static TheoryData<string, string> Files()
    {
        var data = new TheoryData<string, string>();
        foreach (var json in ModelJsons())
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
            var c = doc.RootElement.GetProperty("cases")[0];
            if (!c.TryGetProperty("layer_outputs_for_input0", out _)) continue;
            var files = c.TryGetProperty("files", out var fl) ? fl.EnumerateArray().Select(x => x.GetString()!).ToList()
                : Directory.EnumerateFiles(Path.GetDirectoryName(json)!, Path.GetFileNameWithoutExtension(json) + ".*.pt").Select(Path.GetFileName).ToList()!;
            foreach (var f in files)
                if (!f!.Contains(".float.") && !f.Contains(".qat."))
                    data.Add(Path.GetRelativePath(Fixtures.Path(), json), f);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void LayerOutputQParamsEqualPyTorchs(string jsonRelative, string file)
    {
        var json = Fixtures.Path(jsonRelative);
        var model = ModelLoader.Load(Path.Combine(Path.GetDirectoryName(json)!, file));
        var rows = LayerQParams.For(model).ToDictionary(r => r.Name, StringComparer.Ordinal);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
        var c = doc.RootElement.GetProperty("cases")[0];
        bool torchscript = model.Form == "torchscript";
        int compared = 0;
        var recorded = c.GetProperty("layer_outputs_for_input0").EnumerateArray().ToList();
        if (recorded.Count == 0 && c.GetProperty("modules").EnumerateArray().Any(m => m.GetProperty("type").GetString()!.Contains(".dynamic.")))
        {
            // dynamic quantization: weights are quantized, activations are not (no output qparams)
            foreach (var m in c.GetProperty("modules").EnumerateArray().Where(m => m.GetProperty("type").GetString()!.EndsWith("dynamic.modules.linear.Linear")))
            {
                var row = rows[m.GetProperty("name").GetString()!];
                Assert.Equal("DynamicLinear", row.Kind);
                Assert.Null(row.OutputScale);
                Assert.Equal("qint8", row.WeightDtype);
                compared++;
            }
            Assert.Equal(2, compared);
            return;
        }
        if (recorded.Count == 0)
        {
            // FX and dynamic models were recorded without per-layer outputs: the module reprs carry the qparams
            foreach (var m in c.GetProperty("modules").EnumerateArray())
            {
                var match = System.Text.RegularExpressions.Regex.Match(m.GetProperty("repr").GetString()!, @"scale=([0-9.eE+-]+), zero_point=(-?\d+)");
                if (!match.Success) continue;
                var row = rows.GetValueOrDefault(m.GetProperty("name").GetString()!);
                Assert.NotNull(row);
                Assert.Equal(double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), row!.OutputScale);
                Assert.Equal(long.Parse(match.Groups[2].Value), row.OutputZeroPoint);
                compared++;
            }
            Assert.True(compared >= 1, $"{file}: no layer compared");
            return;
        }
        foreach (var layer in recorded)
        {
            string name = layer.GetProperty("module").GetString()!;
            string type = layer.GetProperty("type").GetString()!;
            var y = layer.GetProperty("y");
            if (!y.TryGetProperty("scale", out var scaleEl)) continue; // per-channel outputs do not occur here
            bool hasOwnQParams = type is "Quantize" or "Conv2d" or "ConvReLU2d" or "Conv1d" or "Linear" or "LinearReLU" or "QFunctional";
            if (!rows.TryGetValue(name, out var row))
            {
                // a state_dict only names modules with state; FX names quantize steps by buffer
                Assert.False(hasOwnQParams && !model.Form.StartsWith("fx", StringComparison.Ordinal) && !jsonRelative.Contains("_fx"),
                    $"{file}: layer {name} ({type}) is missing");
                continue;
            }
            if (!torchscript && !hasOwnQParams) continue;
            Assert.True(row.OutputScale.HasValue, $"{file}: {name} has no output scale");
            Assert.Equal(BitConverter.SingleToInt32Bits((float)scaleEl.GetDouble()), BitConverter.SingleToInt32Bits((float)row.OutputScale!.Value));
            Assert.Equal(scaleEl.GetDouble(), row.OutputScale!.Value);
            Assert.Equal(y.GetProperty("zero_point").GetInt64(), row.OutputZeroPoint);
            if (torchscript) Assert.Equal(type, row.Kind == "DynamicLinear" ? "Linear" : row.Kind);
            compared++;
        }
        Assert.True(compared >= 2, $"{file}: only {compared} layers compared");
    }

    [Fact]
    public void Relu6EagerTorchScriptReportsTheSaturatingBoundWithItsRealNumbers()
    {
        var model = ModelLoader.Load(Fixtures.Core("models", "relu6_eager.torchscript.pt"));
        var conv1 = model.Find("conv1")!;
        var f = Assert.Single(QuantModelLinter.Lint(model), x => x.Rule == "ClampBoundOutOfRange" && x.Layer == "relu6");
        Assert.Equal(conv1.OutputScale, f.Values["InputScale"]);
        Assert.Equal(conv1.OutputZeroPoint, f.Values["InputZeroPoint"]);
        // 6 / 0.016184404 = 370.7 steps above zero point 69: far beyond 255
        Assert.True((double)f.Values["QuantizedBound"]! > 255);
        Assert.Equal(255L, f.Values["Saturated"]);
    }

    [Fact]
    public void StateDictAndTorchScriptFormsAgreeOnWeightsAndMultipliers()
    {
        var a = LayerQParams.For(ModelLoader.Load(Fixtures.Core("models", "seed_convnet.state_dict.pt")));
        var b = LayerQParams.For(ModelLoader.Load(Fixtures.Core("models", "seed_convnet.torchscript.pt")));
        var c = LayerQParams.For(ModelLoader.Load(Fixtures.Core("models", "seed_convnet.state_dict.legacy.pt")));
        foreach (var name in new[] { "conv1", "conv2", "conv3" })
        {
            var ra = a.Single(r => r.Name == name);
            var rb = b.Single(r => r.Name == name);
            var rc = c.Single(r => r.Name == name);
            Assert.Equal(ra.WeightScales, rb.WeightScales);
            Assert.Equal(ra.WeightScales, rc.WeightScales);
            Assert.Equal(ra.Multipliers, rb.Multipliers);
            Assert.Equal(ra.FixedPointMultipliers, rb.FixedPointMultipliers);
            Assert.Equal(ra.Shifts, rc.Shifts);
            Assert.NotNull(ra.Multipliers);
        }
        Assert.Equal("ConvReLU2d", b.Single(r => r.Name == "conv1").Kind);
    }
}
