using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using QuantTools.Core.Formats.Pickle;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Checkpoints;

public class GoldenCheckpointTests
{
    public static IEnumerable<string> ModelDirs() =>
    [
        Fixtures.Core("models"), Fixtures.Core("engines"), Fixtures.Path("golden", "extra", "seed2", "models"),
    ];

    public static IEnumerable<string> AllPt() => ModelDirs().SelectMany(d => Directory.GetFiles(d, "*.pt")).OrderBy(f => f, StringComparer.Ordinal);

    public static TheoryData<string> PtFiles()
    {
        var t = new TheoryData<string>();
        foreach (var f in AllPt()) t.Add(Rel(f));
        return t;
    }

    /// <summary>Model JSONs with a converted model (every *.json with a "repr").</summary>
    public static TheoryData<string> ModelJsons()
    {
        var t = new TheoryData<string>();
        foreach (var d in ModelDirs())
            foreach (var j in Directory.GetFiles(d, "*.json").OrderBy(f => f, StringComparer.Ordinal))
                if (File.Exists(Path.ChangeExtension(j, ".state_dict.pt"))) t.Add(Rel(j));
        return t;
    }

    internal static string Rel(string f) => Path.GetRelativePath(Fixtures.Path(), f);
    internal static string Abs(string rel) => Fixtures.Path(rel);

    private static readonly Dictionary<string, TorchCheckpoint> Cache = new();

    internal static TorchCheckpoint Load(string path)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(path, out var c)) Cache[path] = c = TorchCheckpoint.Load(path);
            return c;
        }
    }

    [Theory]
    [MemberData(nameof(PtFiles))]
    public void EveryGoldenCheckpointLoads(string rel)
    {
        var path = Abs(rel);
        var ck = Load(path);
        var expected = rel.EndsWith(".torchscript.pt") ? CheckpointKind.TorchScript
            : rel.EndsWith(".legacy.pt") ? CheckpointKind.Legacy : CheckpointKind.StateDict;
        Assert.Equal(expected, ck.Kind);
        Assert.NotEmpty(ck.StateDict);
        if (expected == CheckpointKind.TorchScript)
        {
            Assert.NotNull(ck.Modules);
            Assert.StartsWith("__torch__.", ck.Modules!.ClassName);
            Assert.All(ck.Code.Keys, k => Assert.StartsWith("__torch__", k));
            var rootCode = ck.GetCode(ck.Modules.ClassName);
            Assert.Contains("def forward(self", rootCode);
            Assert.Contains("class " + ck.Modules.Kind + "(Module)", rootCode);
            Assert.NotNull(ck.Constants);
        }
        else
        {
            Assert.IsType<PyDict>(ck.Root);
            Assert.True(((PyDict)ck.Root!).IsOrderedDict);
            Assert.NotNull(ck.Metadata);
        }
    }

    /// <summary>Reads NAME.json's single case.</summary>
    internal static JsonElement Case(string jsonPath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(jsonPath));
        return doc.RootElement.GetProperty("cases")[0].Clone();
    }

    internal static float F32(object? v) => v switch
    {
        Tensor { Length: 1, DType: DType.Float32 } t => ((float[])t.Data)[0],
        double d => (float)d,
        _ => throw new Xunit.Sdk.XunitException($"not a float32 scalar: {v}"),
    };

    internal static long I64(object? v) => v switch
    {
        Tensor { Length: 1 } t => (long)t.GetDouble(0),
        long l => l,
        _ => throw new Xunit.Sdk.XunitException($"not an int scalar: {v}"),
    };

    [Theory]
    [MemberData(nameof(ModelJsons))]
    public void LayerOutputQParamsEqualTheCheckpoint(string relJson)
    {
        var json = Abs(relJson);
        var c = Case(json);
        var baseName = json[..^".json".Length];
        var forms = new[] { ".state_dict.pt", ".state_dict.legacy.pt", ".torchscript.pt" }
            .Select(s => baseName + s).Where(File.Exists).Select(Load).ToList();
        int compared = 0;
        foreach (var layer in c.GetProperty("layer_outputs_for_input0").EnumerateArray())
        {
            var m = layer.GetProperty("module").GetString()!;
            var y = layer.GetProperty("y");
            if (!y.TryGetProperty("scale", out var sEl)) continue;
            double scale = sEl.GetDouble();
            long zp = y.GetProperty("zero_point").GetInt64();
            foreach (var ck in forms)
            {
                if (!ck.StateDict.TryGetValue(m + ".scale", out var s)) continue;
                // float32 in state_dicts (torch.tensor(float)); a double in TorchScript conv state and Linear attributes
                if (s is double d) Assert.Equal(scale, d);
                else Assert.Equal(BitConverter.SingleToInt32Bits((float)scale), BitConverter.SingleToInt32Bits(F32(s)));
                Assert.Equal(zp, I64(ck.StateDict[m + ".zero_point"]));
                compared++;
            }
        }
        // every model with hooks has layers with their own qparams
        if (c.GetProperty("layer_outputs_for_input0").GetArrayLength() > 0) Assert.True(compared > 0);
    }

    private static readonly Regex ReprLine = new(@"^(\s*)\(([^)]+)\): (\w+)\((.*)\)?$", RegexOptions.Compiled);
    private static readonly Regex ScaleZp = new(@"scale=([0-9.eE+-]+), zero_point=(\d+)", RegexOptions.Compiled);

    /// <summary>(path, class, scale, zero_point) for every module line of a repr that prints plain scale/zero_point.</summary>
    internal static List<(string Path, string Type, double? Scale, long? Zp, string Line)> ParseRepr(string repr)
    {
        var result = new List<(string, string, double?, long?, string)>();
        var stack = new List<(int Indent, string Name)>();
        foreach (var line in repr.Split('\n'))
        {
            var m = ReprLine.Match(line);
            if (!m.Success) continue;
            int indent = m.Groups[1].Length;
            while (stack.Count > 0 && stack[^1].Indent >= indent) stack.RemoveAt(stack.Count - 1);
            stack.Add((indent, m.Groups[2].Value));
            var path = string.Join('.', stack.Select(s => s.Name));
            var sz = ScaleZp.Match(line);
            result.Add((path, m.Groups[3].Value, sz.Success ? double.Parse(sz.Groups[1].Value, CultureInfo.InvariantCulture) : null,
                sz.Success ? long.Parse(sz.Groups[2].Value) : null, line));
        }
        return result;
    }

    [Theory]
    [MemberData(nameof(ModelJsons))]
    public void ReprQParamsWeightsAndKeyOrderMatchTheStateDict(string relJson)
    {
        var json = Abs(relJson);
        var c = Case(json);
        var baseName = json[..^".json".Length];
        var sd = Load(baseName + ".state_dict.pt").StateDict;
        var repr = ParseRepr(c.GetProperty("repr").GetString()!);
        Assert.NotEmpty(repr);
        int checkedScales = 0;
        foreach (var (path, type, scale, zp, line) in repr)
        {
            if (scale is double s && sd.TryGetValue(path + ".scale", out var v))
            {
                // repr prints the Python float; the state_dict holds it as float32
                Assert.Equal(BitConverter.SingleToInt32Bits((float)s), BitConverter.SingleToInt32Bits(F32(v)));
                Assert.Equal(zp, I64(sd[path + ".zero_point"]));
                checkedScales++;
            }
            string? wkey = sd.ContainsKey(path + ".weight") ? path + ".weight"
                : sd.ContainsKey(path + "._packed_params.weight") ? path + "._packed_params.weight" : null;
            if (type.StartsWith("Quantized") || type.StartsWith("DynamicQuantized"))
            {
                if (!type.Contains("Conv") && !type.Contains("Linear")) continue;
                Assert.NotNull(wkey);
                var w = Assert.IsType<QTensor>(sd[wkey!]);
                Assert.Equal(DType.QInt8, w.DType);
                var qs = Regex.Match(line, @"qscheme=torch\.(\w+)");
                if (qs.Success) Assert.Equal(qs.Groups[1].Value, w.QParams.QScheme.TorchName());
                if (w.QParams.IsPerChannel) Assert.Equal(0, w.QParams.Axis);
            }
        }
        Assert.True(checkedScales > 0 || !repr.Any(r => r.Scale.HasValue && !r.Type.StartsWith("Quantize")));

        // shapes and key set as the generator recorded them
        var recorded = c.GetProperty("state_dict_keys");
        foreach (var p in recorded.EnumerateObject())
        {
            if (p.Name.EndsWith("._packed_params._packed_params"))
            {
                var parent = p.Name[..^"._packed_params".Length];
                Assert.True(sd.ContainsKey(parent + ".weight"), parent + ".weight");
                Assert.True(sd.ContainsKey(parent + ".bias"), parent + ".bias");
                continue;
            }
            Assert.True(sd.ContainsKey(p.Name), p.Name);
            if (p.Value.ValueKind == JsonValueKind.Array)
            {
                var shape = p.Value.EnumerateArray().Select(x => x.GetInt32()).ToArray();
                var actual = sd[p.Name] switch { Tensor t => t.Shape, QTensor q => q.Shape, var o => throw new Xunit.Sdk.XunitException($"{p.Name}: {o}") };
                Assert.Equal(shape, actual);
            }
        }

        // key order follows the module order (named_modules)
        var moduleOrder = c.GetProperty("modules").EnumerateArray().Select(m => m.GetProperty("name").GetString()!).ToList();
        int last = -1;
        foreach (var key in sd.Keys)
        {
            var mod = ModuleOf(key, moduleOrder);
            if (mod is null) continue; // FX root buffers
            int i = moduleOrder.IndexOf(mod);
            Assert.True(i >= last, $"key {key} (module {mod}) comes after module #{last} {moduleOrder[Math.Max(last, 0)]}");
            last = i;
        }
    }

    private static string? ModuleOf(string key, List<string> modules)
    {
        var parts = key.Split('.');
        for (int n = parts.Length - 1; n >= 1; n--)
        {
            var p = string.Join('.', parts.Take(n));
            if (modules.Contains(p)) return p;
        }
        return null;
    }

    [Theory]
    [MemberData(nameof(ModelJsons))]
    public void TheSameTensorsAppearInEveryForm(string relJson)
    {
        var baseName = Abs(relJson)[..^".json".Length];
        var sd = Load(baseName + ".state_dict.pt").StateDict;
        foreach (var other in new[] { ".state_dict.legacy.pt", ".torchscript.pt" }.Select(s => baseName + s).Where(File.Exists))
        {
            var o = Load(other).StateDict;
            int compared = 0;
            foreach (var (key, value) in sd)
            {
                if (value is not (Tensor or QTensor)) continue;
                if (!o.TryGetValue(key, out var ov))
                {
                    Assert.True(other.EndsWith(".torchscript.pt"), $"{other} lacks {key}");
                    continue;
                }
                if (value is Tensor t && ov is double d) // TorchScript keeps a Python float where the state_dict has a tensor
                {
                    Assert.Equal(F32(t), (float)d);
                    continue;
                }
                if (value is Tensor ti && ov is long l)
                {
                    Assert.Equal((long)ti.GetDouble(0), l);
                    continue;
                }
                TorchSaveWriterTests.AssertSameValue(value, ov, $"{Path.GetFileName(other)} {key}");
                compared++;
            }
            Assert.True(compared > 0, other);
        }
    }
}
