using QuantTools.Core.Conformance;
using Xunit.Abstractions;

namespace QuantTools.Core.Tests.Onnx;

/// <summary>Every case of the golden onnx.json: ORT-quantized models bit for bit, ORT's calibrators bit for bit.</summary>
public class OnnxConformanceTests(ITestOutputHelper output)
{
    public static string Json => Fixtures.Core("onnx", "onnx.json");

    [Fact]
    public void EveryOnnxGoldenCasePasses()
    {
        using var file = new GoldenFile(Json);
        var results = new OnnxCases().Run(file, default).ToList();
        foreach (var r in results) output.WriteLine($"{r.Status,-7} {r.Id}: {r.Detail}");
        Assert.Equal(16, results.Count);
        Assert.All(results, r => Assert.True(r.Status == CaseStatus.Passed, $"{r.Id}: {r.Detail}"));
    }
}
