using QuantTools.Core.Conformance;
using QuantTools.Core.Conformance.Ops;
using QuantTools.Core.Tensors;
using Xunit.Abstractions;

namespace QuantTools.Core.Tests.Elementwise;

/// <summary>Every golden case of the element-wise, activation, pooling, resampling and normalization ops, seeds 0, 2, 3.</summary>
public class EltwiseGoldenTests(ITestOutputHelper output)
{
    public static readonly HashSet<string> MyOps =
    [
        "add", "add_relu", "mul", "mul_relu", "cat", "add_scalar", "mul_scalar",
        "relu", "relu6", "hardtanh_0_6", "hardtanh_m1_1", "clamp_m0.5_2", "hardswish", "sigmoid", "tanh", "hardsigmoid",
        "leaky_relu", "elu",
        "max_pool2d_3_2_1", "avg_pool2d_3_2_1", "avg_pool2d_3_2_1_nopad", "avg_pool2d_2", "avg_pool2d_3_1_0_ceil",
        "adaptive_avg_pool2d_1", "adaptive_avg_pool2d_3", "upsample_nearest_2", "upsample_bilinear_2",
        "upsample_bilinear_ac", "mean_hw", "flatten", "channel_shuffle_2", "batch_norm2d", "layer_norm",
    ];

    private static readonly Dictionary<string, GoldenFile> Files = new();

    internal static GoldenFile File(string seed)
    {
        lock (Files)
        {
            if (!Files.TryGetValue(seed, out var g))
            {
                var folder = Fixtures.AllSeedFolders().First(f => System.IO.Path.GetFileName(f) == seed);
                Files[seed] = g = new GoldenFile(System.IO.Path.Combine(folder, "ops.json"));
            }
            return g;
        }
    }

    public static IEnumerable<object[]> AllCases()
    {
        foreach (var folder in Fixtures.AllSeedFolders())
        {
            var seed = System.IO.Path.GetFileName(folder);
            foreach (var c in File(seed).Cases)
                if (MyOps.Contains(c.GetProperty("op").GetString()!))
                    yield return [seed, c.GetProperty("id").GetString()!];
        }
    }

    /// <summary>Runs one case; empty string when every integer and the output qparams match.</summary>
    internal static string RunCase(string seed, string id)
    {
        var g = File(seed);
        var json = g.Cases.Single(e => e.GetProperty("id").GetString() == id);
        var c = new OpCase(g, json);
        var handler = OpCaseAdapters.Find(c.Op) ?? throw new InvalidOperationException($"no handler for {c.Op}");
        var result = handler.Run(c);
        return OpsCases.CompareQ(g.GetQTensor(json.GetProperty("y")), (QTensor)result);
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public void CaseMatchesPyTorchBitForBit(string seed, string id)
    {
        var detail = RunCase(seed, id);
        Assert.True(detail.Length == 0, $"{seed}/{id}: {detail}");
    }

    /// <summary>Counts per op and engine over the three seeds (printed for the report).</summary>
    [Fact]
    public void Summary()
    {
        var counts = new SortedDictionary<string, (int Pass, int Total)>();
        foreach (var folder in Fixtures.AllSeedFolders())
        {
            var seed = System.IO.Path.GetFileName(folder);
            foreach (var json in File(seed).Cases)
            {
                var op = json.GetProperty("op").GetString()!;
                if (!MyOps.Contains(op)) continue;
                var key = $"{seed,-5} {op,-24} {json.GetProperty("engine").GetString()}";
                var d = RunCase(seed, json.GetProperty("id").GetString()!);
                var (p, t) = counts.GetValueOrDefault(key);
                counts[key] = (p + (d.Length == 0 ? 1 : 0), t + 1);
                if (d.Length != 0) output.WriteLine($"FAIL {seed}/{json.GetProperty("id").GetString()}: {d}");
            }
        }
        foreach (var (k, v) in counts) output.WriteLine($"{k}: {v.Pass}/{v.Total}");
        Assert.All(counts, kv => Assert.Equal(kv.Value.Total, kv.Value.Pass));
    }
}
