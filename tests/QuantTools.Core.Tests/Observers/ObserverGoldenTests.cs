using QuantTools.Core.Conformance;

namespace QuantTools.Core.Tests.Observers;

/// <summary>Every golden observer case (seed 0, 2 and 3) must pass bit for bit, refusals included.</summary>
public class ObserverGoldenTests
{
    private static readonly Lazy<Dictionary<string, CaseResult>> Results = new(() =>
    {
        var all = new Dictionary<string, CaseResult>(StringComparer.Ordinal);
        foreach (var folder in Fixtures.AllSeedFolders())
        {
            using var g = new GoldenFile(Path.Combine(folder, "observers.json"));
            foreach (var r in new ObserverCases().Run(g, CancellationToken.None).ToList())
                all[Key(folder, r.Id)] = r;
        }
        return all;
    });

    private static string Key(string folder, string id) => Path.GetFileName(folder) + "/" + id;

    public static IEnumerable<object[]> AllCases()
    {
        foreach (var folder in Fixtures.AllSeedFolders())
        {
            using var g = new GoldenFile(Path.Combine(folder, "observers.json"));
            foreach (var c in g.Cases) yield return [Path.GetFileName(folder), c.GetProperty("id").GetString()!];
            foreach (var e in g.Errors) yield return [Path.GetFileName(folder), e.GetProperty("case").GetString()!.Split(' ')[0]];
        }
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public void CaseMatchesPyTorch(string seedFolder, string id)
    {
        Assert.True(Results.Value.TryGetValue(seedFolder + "/" + id, out var r), $"case {id} was not reported");
        Assert.True(r!.Status == CaseStatus.Passed, $"{seedFolder}/{id}: {r.Status}: {r.Detail}");
    }
}
