namespace QuantTools.Core.Tests;

/// <summary>Locates tests/fixtures in the repository (tests never read outside it).</summary>
public static class Fixtures
{
    private static readonly Lazy<string> Root = new(() =>
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "tests", "fixtures");
            if (Directory.Exists(candidate)) return candidate;
            dir = dir.Parent;
        }
        throw new DirectoryNotFoundException("tests/fixtures not found above " + AppContext.BaseDirectory);
    });

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root.Value, .. parts]);

    /// <summary>The seed-0 core golden folder.</summary>
    public static string Core(params string[] parts) => Path(["golden", "pytorch-2.11", "core", .. parts]);

    /// <summary>Every folder holding golden cases made by the same generator (seed 0 core, seeds 2 and 3).</summary>
    public static IEnumerable<string> AllSeedFolders()
    {
        yield return Core();
        yield return Path("golden", "extra", "seed2");
        yield return Path("golden", "extra", "seed3");
    }
}
