using System.Text.Json;
using QuantTools.Core.Export;
using QuantTools.Core.Formats;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Export;

/// <summary>What Export-QuantModel writes (and refuses to write): files, errors, the JSON description and its sidecar.</summary>
public class ExportFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "qt-export-tests", "files-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    private static ModelGraph Model(string name, string dir = "models") => TorchScriptFrontEnd.Build(Fixtures.Core(dir, name + ".torchscript.pt"));

    [Fact]
    public void AnOpTheExporterCannotExpressIsAnErrorNamingTheLayerAndOpAndNothingIsWritten()
    {
        // dynamic_mlp's linear layers choose their input qparams from each input at run time
        var e = Assert.Throws<QuantToolsException>(() => ModelExporter.Export(Model("dynamic_mlp"),
            new ExportOptions { InputShape = [6, 64], Format = ExportFormat.C }, _dir, force: false));
        Assert.Equal(ErrorCode.UnsupportedOperator, e.Code);
        Assert.Contains("quantized::linear_dynamic", e.Message);
        Assert.StartsWith("layer 'fc1'", e.Message);
        Assert.False(Directory.Exists(_dir), "nothing may be written, not even the folder");
        // the same for the JSON form
        Assert.Throws<QuantToolsException>(() => ModelExporter.Export(Model("dynamic_mlp"),
            new ExportOptions { InputShape = [6, 64], Format = ExportFormat.Json }, _dir, force: false));
        Assert.False(Directory.Exists(_dir));
    }

    [Fact]
    public void AWrongInputShapeNamesTheLayerWhereItFails()
    {
        var e = Assert.Throws<QuantToolsException>(() => ModelExporter.Render(Model("seed_convnet"), new ExportOptions { InputShape = [1, 3, 24, 24] }));
        Assert.StartsWith("layer 'conv1'", e.Message);
        Assert.Contains("3", e.Message);
        Assert.Throws<QuantToolsException>(() => ModelExporter.Render(Model("seed_convnet"), new ExportOptions { InputShape = [1, 0, 24, 24] }));
        Assert.Throws<QuantToolsException>(() => ModelExporter.Render(Model("seed_convnet"), new ExportOptions { InputShape = [1, 1, 24, 24], Name = "9lives" }));
    }

    [Fact]
    public void ListingWritesNothingAndExistingFilesNeedForce()
    {
        var opts = new ExportOptions { InputShape = [1, 1, 24, 24], Name = "net" };
        var listed = ModelExporter.Export(Model("seed_convnet"), opts, _dir, force: false, write: false);
        Assert.Equal(["net.h", "net.c", "net_weights.c", "qt_kernels.h", "qt_kernels.c"], listed.Files.Select(Path.GetFileName));
        Assert.False(Directory.Exists(_dir));
        var written = ModelExporter.Export(Model("seed_convnet"), opts, _dir, force: false);
        Assert.All(written.Files, f => Assert.True(File.Exists(f)));
        var e = Assert.Throws<QuantToolsException>(() => ModelExporter.Export(Model("seed_convnet"), opts, _dir, force: false));
        Assert.Equal(ErrorCode.IoError, e.Code);
        Assert.Contains("-Force", e.Message);
        ModelExporter.Export(Model("seed_convnet"), opts, _dir, force: true);
        Assert.Empty(Directory.EnumerateFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void TheSummaryCountsFlashRamLayersAndFpu()
    {
        var r = ModelExporter.Export(Model("seed_convnet"), new ExportOptions { InputShape = [1, 1, 24, 24], Engine = QEngine.Qnnpack }, _dir, false, write: false);
        // quantize, 3 convs, dequantize
        Assert.Equal(5, r.LayerCount);
        // weights 72 + 576 + 72 int8, zero points 3 x 4 x (8, 8, 1), int32 bias 2 x 8 x 4, multipliers 17 x 4
        Assert.Equal(72 + 576 + 72 + 4 * 17 + 4 * 16 + 4 * 17, r.FlashBytes);
        // the two largest live buffers: conv1's and conv2's outputs, 8 x 24 x 24 each
        Assert.Equal(2 * 8 * 24 * 24, r.RamBytes);
        // QNNPACK's conv requantization multiplies by a float (PyTorch's own arithmetic): an FPU (or soft float) is needed
        Assert.True(r.FpuNeeded);
        Assert.Equal([1, 1, 24, 24], r.OutputShape);
    }

    [GccFact]
    public void ThePlainBuildIsCleanWithMinusWerrorAndPedantic()
    {
        // the flags without -DQT_DUMP, plus -pedantic: every generated file and the kernels, for every model kind
        foreach (var (m, shape, engine) in new[] { ("shufflenet_v2_x0_5", new[] { 1, 3, 64, 64 }, QEngine.Qnnpack), ("relu6_fx", new[] { 1, 3, 20, 20 }, QEngine.X86) })
        {
            var dir = Path.Combine(_dir, m);
            ModelExporter.Export(Model(m), new ExportOptions { InputShape = shape, Engine = engine }, dir, false);
            var (code, output) = Gcc.Run(Gcc.Path_!, dir, [.. Gcc.Flags, "-pedantic", "-c", "model.c", "model_weights.c", "qt_kernels.c"]);
            Assert.True(code == 0, output);
            Assert.Equal("", output.Trim());
        }
    }

    private JsonElement Json(string model, QEngine engine, string dir = "models", string name = "model")
    {
        var r = ModelExporter.Export(Model(model, dir), new ExportOptions { InputShape = [1, 3, 20, 20], Engine = engine, Format = ExportFormat.Json, Name = name }, _dir, true);
        Assert.Equal([name + ".json", name + ".safetensors"], r.Files.Select(Path.GetFileName));
        return JsonDocument.Parse(File.ReadAllBytes(r.Files[0])).RootElement;
    }

    private static JsonElement Layer(JsonElement root, string name) => root.GetProperty("layers").EnumerateArray().First(l => l.GetProperty("name").GetString() == name);

    [Fact]
    public void JsonGivesTheRelu6BoundInTheQuantizedDomain()
    {
        // relu6_eager: conv1's output scale 0.016184404492378235, zero point 69; 6.0 is 370.7 steps, so the bound is
        // min(255, 69 + 371) = 255: ReLU6 is only a ReLU here (Test-QuantModel's ClampBoundOutOfRange finding)
        var root = Json("relu6_eager", QEngine.Qnnpack);
        var relu6 = Layer(root, "relu6");
        Assert.Equal("clamp", relu6.GetProperty("kind").GetString());
        var inp = relu6.GetProperty("inputs")[0];
        Assert.Equal(0.016184404492378235, inp.GetProperty("scale").GetDouble());
        Assert.Equal(69, inp.GetProperty("zero_point").GetInt32());
        Assert.Equal([69, 255], relu6.GetProperty("clamp").EnumerateArray().Select(v => v.GetInt32()));
        Assert.Equal(6.0, relu6.GetProperty("float_max").GetDouble());
        // conv2's output (0.0038411368150264025, 70): hardtanh(0, 6) bounds 70 and min(255, 70 + rne(6/s))
        var ht = Layer(root, "hardtanh");
        var s = ht.GetProperty("inputs")[0].GetProperty("scale").GetDouble();
        Assert.Equal([70, Math.Min(255, 70 + (int)Math.Round(6 / s, MidpointRounding.ToEven))], ht.GetProperty("clamp").EnumerateArray().Select(v => v.GetInt32()));
    }

    [Fact]
    public void JsonConvLayerHasQParamsInt32BiasAndBothMultiplierForms()
    {
        var root = Json("relu6_eager", QEngine.Qnnpack);
        var st = SafeTensorsFile.Open(Path.Combine(_dir, "model.safetensors"));
        var conv = Layer(root, "conv1");
        Assert.Equal("quantized::conv2d", conv.GetProperty("op").GetString());
        Assert.Equal("qnnpack", conv.GetProperty("backend").GetString());
        var w = conv.GetProperty("weight");
        Assert.Equal([8, 3, 3, 3], w.GetProperty("shape").EnumerateArray().Select(v => v.GetInt32()));
        // the sidecar weight is the checkpoint's own int8 weight
        var graphConv = Model("relu6_eager").Nodes.First(n => n.ModulePath == "conv1" && n.Op == "quantized::conv2d");
        var cp = (QuantTools.Core.Formats.Torch.ConvPackedParams)graphConv.Inputs[1].Constant!;
        Assert.True(cp.Weight.IntRepr.AsBytes().SequenceEqual(st.Get(w.GetProperty("tensor").GetString()!).AsBytes()));
        // int32 bias: PyTorch's QNNPACK rule, rne(b * f32(1 / f32(s_w * s_in))), recomputed here from the float bias
        float sIn = (float)conv.GetProperty("inputs")[0].GetProperty("scale").GetDouble();
        var sws = w.GetProperty("scale").EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();
        float sw = sws[0];
        var bias = conv.GetProperty("bias");
        var fb = st.Get(bias.GetProperty("float_tensor").GetString()!).AsSpan<float>().ToArray();
        var qb = st.Get(bias.GetProperty("int32_tensor").GetString()!).AsSpan<int>().ToArray();
        Assert.Equal(8, qb.Length);
        Assert.Equal(fb.Select((b, c) => (int)MathF.Round(b * (1f / (sws[sws.Length == 1 ? 0 : c] * sIn)))), qb);
        // multiplier R = f32(f32(s_w * s_in) * f32(1 / s_out)), and its (int32, shift) form standing for the same value
        var rq = conv.GetProperty("requantization");
        float sOut = (float)conv.GetProperty("output").GetProperty("scale").GetDouble();
        float r = (sw * sIn) * (1f / sOut);
        Assert.Equal(r, rq.GetProperty("multiplier")[0].GetSingle());
        int m = rq.GetProperty("fixed_point").GetProperty("multiplier")[0].GetInt32();
        int shift = rq.GetProperty("fixed_point").GetProperty("shift")[0].GetInt32();
        Assert.InRange(m, 1 << 30, int.MaxValue);
        Assert.True(Math.Abs(Math.ScaleB(m, -31 - shift) / r - 1) < 1e-9);
        Assert.Contains("round half away from zero", rq.GetProperty("fixed_point").GetProperty("rounding").GetString());
        Assert.Equal([0, 255], rq.GetProperty("clamp").EnumerateArray().Select(v => v.GetInt32())); // no fused ReLU: the full quint8 range
    }

    [Fact]
    public void JsonFbgemmKeepsTheBiasFloatAndSaysSo()
    {
        var root = Json("relu6_eager", QEngine.Fbgemm);
        var conv = Layer(root, "conv1");
        Assert.Equal("fbgemm", conv.GetProperty("backend").GetString());
        Assert.False(conv.GetProperty("bias").TryGetProperty("int32_tensor", out _));
        Assert.True(conv.GetProperty("bias").TryGetProperty("accumulator_tensor", out _));
        Assert.StartsWith("M = f32(f32(s_in * s_w) / s_out)", conv.GetProperty("requantization").GetProperty("multiplier_rule").GetString());
        var fc = Layer(root, "fc");
        Assert.Equal("linear", fc.GetProperty("kind").GetString());
        Assert.Equal([1, 4], fc.GetProperty("output").GetProperty("shape").EnumerateArray().Select(v => v.GetInt32()));
        Assert.Equal("adaptive_avg_pool2d", Layer(root, "pool").GetProperty("kind").GetString());
        Assert.Equal("channels_last", Layer(root, "pool").GetProperty("inputs")[0].GetProperty("memory_format").GetString());
    }
}
