using System.Text.Json;

namespace QuantTools.Core.Conformance;

public enum CaseStatus { Passed, Failed, NotRun }

/// <summary>Outcome of one golden case. Property names are relied on by scripts: keep them.</summary>
public sealed record CaseResult(string Id, string Category, string? Engine, CaseStatus Status, string Detail);

/// <summary>Per-category counts for <c>Test-QuantConformance -Summary</c>.</summary>
public sealed record CategorySummary(string Category, int Passed, int Failed, int NotRun)
{
    public int Total => Passed + Failed + NotRun;
}

/// <summary>Runs the cases of one golden file kind. Implementations must report every case, never skip silently.</summary>
public interface IConformanceCategory
{
    /// <summary>Category name: observers, quantize, ops, models, onnx.</summary>
    string Category { get; }
    /// <summary>True when this category handles the given JSON file.</summary>
    bool Handles(string jsonPath);
    IEnumerable<CaseResult> Run(GoldenFile file, CancellationToken cancel);
}

/// <summary>
/// Finds golden JSON files under a folder laid out like the golden data (core/observers.json, core/ops.json,
/// core/models/*.json, core/engines/*.json, core/onnx/onnx.json, ...) and runs each through its category.
/// </summary>
public sealed class ConformanceRunner
{
    private readonly List<IConformanceCategory> _categories = new();

    public ConformanceRunner(IEnumerable<IConformanceCategory>? categories = null)
    {
        _categories.AddRange(categories ?? DefaultCategories());
    }

    public static IEnumerable<IConformanceCategory> DefaultCategories() => CategoryRegistry.All();

    /// <summary>Golden JSON files below <paramref name="folder"/> in a stable order.</summary>
    public static IReadOnlyList<string> FindFiles(string folder)
    {
        if (File.Exists(folder) && folder.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return [Path.GetFullPath(folder)];
        if (!Directory.Exists(folder))
            throw new QuantToolsException(ErrorCode.IoError, "folder not found", folder);
        return Directory.EnumerateFiles(folder, "*.json", SearchOption.AllDirectories)
            .Where(IsGoldenJson)
            .OrderBy(p => p, StringComparer.Ordinal)
            .ToList();
    }

    private static bool IsGoldenJson(string path)
    {
        try
        {
            using var s = File.OpenRead(path);
            using var doc = JsonDocument.Parse(s);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("cases", out _);
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            return false;
        }
    }

    public IEnumerable<CaseResult> Run(string folder, IProgress<string>? progress = null, CancellationToken cancel = default)
    {
        foreach (var path in FindFiles(folder))
        {
            cancel.ThrowIfCancellationRequested();
            var cat = _categories.FirstOrDefault(c => c.Handles(path));
            if (cat is null) continue;
            progress?.Report(path);
            using var file = new GoldenFile(path);
            foreach (var r in cat.Run(file, cancel))
            {
                cancel.ThrowIfCancellationRequested();
                yield return r;
            }
        }
    }

    public static IReadOnlyList<CategorySummary> Summarize(IEnumerable<CaseResult> results) =>
        results.GroupBy(r => r.Category)
            .Select(g => new CategorySummary(g.Key,
                g.Count(r => r.Status == CaseStatus.Passed),
                g.Count(r => r.Status == CaseStatus.Failed),
                g.Count(r => r.Status == CaseStatus.NotRun)))
            .OrderBy(s => s.Category, StringComparer.Ordinal)
            .ToList();
}

/// <summary>A category this build cannot run yet: every case is reported NotRun with the reason.</summary>
public sealed class NotYetRunnableCategory(string category, Func<string, bool> handles, string reason) : IConformanceCategory
{
    public string Category => category;
    public bool Handles(string jsonPath) => handles(jsonPath);

    public IEnumerable<CaseResult> Run(GoldenFile file, CancellationToken cancel)
    {
        foreach (var c in file.Cases)
        {
            string id = c.TryGetProperty("id", out var i) ? i.GetString()! :
                c.TryGetProperty("model", out var m) ? m.GetString()! : "?";
            string? engine = c.TryGetProperty("engine", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;
            yield return new CaseResult(id, category, engine, CaseStatus.NotRun, reason);
        }
    }
}

internal static class GoldenPaths
{
    public static string Dir(string p) => Path.GetFileName(Path.GetDirectoryName(p)) ?? "";
    public static string Name(string p) => Path.GetFileName(p);
}
