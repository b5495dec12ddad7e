using System.Text.Json;
using QuantTools.Core.Conformance;
using QuantTools.Core.Kernels;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;
using Xunit.Abstractions;

namespace QuantTools.Core.Tests.Quantize;

public class QuantizeGoldenTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> AllCases()
    {
        foreach (var folder in Fixtures.AllSeedFolders())
        {
            var path = System.IO.Path.Combine(folder, "quantize.json");
            using var g = new GoldenFile(path);
            foreach (var c in g.Cases)
                yield return [System.IO.Path.GetFileName(folder), c.GetProperty("id").GetString()!];
        }
    }

    private static string FolderOf(string seed) =>
        Fixtures.AllSeedFolders().First(f => System.IO.Path.GetFileName(f) == seed);

    [Theory]
    [MemberData(nameof(AllCases))]
    public void CaseMatchesPyTorchBitForBit(string seed, string id)
    {
        using var g = new GoldenFile(System.IO.Path.Combine(FolderOf(seed), "quantize.json"));
        var c = g.Cases.Single(e => e.GetProperty("id").GetString() == id);
        var detail = QuantizeCases.RunCase(g, c);
        Assert.True(detail is null, $"{seed}/{id}: {detail}");
    }

    [Fact]
    public void CategoryReportsEveryCasePassedOnAllSeeds()
    {
        foreach (var folder in Fixtures.AllSeedFolders())
        {
            var results = new ConformanceRunner([new QuantizeCases()]).Run(System.IO.Path.Combine(folder, "quantize.json")).ToList();
            Assert.Equal(253, results.Count);
            var failed = results.Where(r => r.Status != CaseStatus.Passed).ToList();
            Assert.True(failed.Count == 0, string.Join("\n", failed.Select(f => $"{f.Id}: {f.Detail}")));
            Assert.All(results, r => Assert.Equal("quantize", r.Category));
        }
    }

    [Fact]
    public void RegistryRunsQuantizeCases() =>
        Assert.Contains(CategoryRegistry.All(), c => c is QuantizeCases && c.Handles("/x/quantize.json"));

    /// <summary>
    /// Evidence for the dequantize form (see the Quantizer summary): counts per dtype how many golden dequant
    /// records the scalar form and the FMA vector form reproduce exactly.
    /// </summary>
    [Fact]
    public void DequantizeFormIsScalarForPerTensorTypes()
    {
        var stats = new Dictionary<string, (int Records, int ScalarOk, int FmaOk, int ScalarBadElems, int FmaBadElems)>();
        foreach (var folder in Fixtures.AllSeedFolders())
        {
            using var g = new GoldenFile(System.IO.Path.Combine(folder, "quantize.json"));
            foreach (var c in g.Cases)
            {
                if (c.GetProperty("fn").GetString() != "quantize_per_tensor" || !c.TryGetProperty("dequant", out var d)) continue;
                var dtype = DTypeInfo.Parse(c.GetProperty("dtype").GetString()!);
                if (dtype is DType.QUInt4x2 or DType.QUInt2x4) continue;
                var ints = g.Tensors.Get(c.GetProperty("int").GetString()!);
                var exp = g.Tensors.GetFloats(d.GetString()!);
                float sf = (float)c.GetProperty("scale").GetDouble();
                int zp = (int)c.GetProperty("zero_point").GetInt64();
                int sBad = 0, fBad = 0;
                for (int i = 0; i < exp.Length; i++)
                {
                    int q = (int)ints.GetDouble(i);
                    if (Bits(DequantizeKernels.ScalarForm(q, sf, zp)) != Bits(exp[i])) sBad++;
                    if (Bits(DequantizeKernels.FmaForm(q, sf, zp)) != Bits(exp[i])) fBad++;
                }
                var k = dtype.TorchName();
                var s = stats.GetValueOrDefault(k);
                stats[k] = (s.Records + 1, s.ScalarOk + (sBad == 0 ? 1 : 0), s.FmaOk + (fBad == 0 ? 1 : 0),
                    s.ScalarBadElems + sBad, s.FmaBadElems + fBad);
            }
        }
        foreach (var (k, s) in stats)
            output.WriteLine($"{k}: {s.Records} records; scalar form exact in {s.ScalarOk} ({s.ScalarBadElems} bad elements), " +
                             $"FMA form exact in {s.FmaOk} ({s.FmaBadElems} bad elements)");
        Assert.All(stats.Values, s => Assert.Equal(s.Records, s.ScalarOk));
    }

    private static int Bits(float f) => BitConverter.SingleToInt32Bits(f);
}
