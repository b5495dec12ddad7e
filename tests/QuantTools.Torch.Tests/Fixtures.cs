namespace QuantTools.Torch.Tests;

/// <summary>Locates tests/fixtures in the repository (tests never read outside it).</summary>
internal static class Fixtures
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "tests", "fixtures");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("tests/fixtures not found above " + AppContext.BaseDirectory);
    });

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root.Value, .. parts]);

    /// <summary>The seed-0 core golden folder.</summary>
    public static string Core(params string[] parts) => Path(["golden", "pytorch-2.11", "core", .. parts]);
}
