namespace QuantTools.Core.Pipelines;

/// <summary>
/// Decisions Invoke-QuantPipeline and Merge-QuantReport share, independent of PowerShell: when a run counts as failed,
/// how its failure reads, which golden files -UpdateGolden rewrites, and how many kernel threads each job gets.
/// </summary>
public static class PipelinePolicy
{
    /// <summary>True when the CI environment variable says a CI system runs us (set and not "false" / "0").</summary>
    public static bool IsCi(string? ciVariable)
    {
        return !string.IsNullOrEmpty(ciVariable) && !string.Equals(ciVariable, "false", StringComparison.OrdinalIgnoreCase) && ciVariable != "0";
    }

    /// <summary>True when this process runs under CI (the CI environment variable).</summary>
    public static bool IsCi() => IsCi(Environment.GetEnvironmentVariable("CI"));

    /// <summary>-FailOnRegression when given, else on under CI.</summary>
    public static bool FailOnRegression(bool? requested) => requested ?? IsCi();

    /// <summary>The jobs that failed or errored, in job order.</summary>
    public static List<PipelineJobResult> Regressions(IEnumerable<PipelineJobResult> results) =>
        results.Where(r => r.Status is PipelineStatus.Failed or PipelineStatus.Error).OrderBy(r => r.Index).ToList();

    /// <summary>The terminating error's text: how many jobs failed, where the reports are, and each failure (50 at most).</summary>
    public static string RegressionMessage(IReadOnlyList<PipelineJobResult> bad, string output)
    {
        var lines = bad.SelectMany(r => r.Failures.Count > 0 ? r.Failures.Select(f => "  " + f) : [$"  {r.Job}: {r.Status}"]).Take(50).ToList();
        return $"{bad.Count} job(s) failed (reports in {output}):{Environment.NewLine}{string.Join(Environment.NewLine, lines)}";
    }

    /// <summary>The golden files the jobs' steps after a run step read (what -UpdateGolden rewrites), a golden JSON with its companion.</summary>
    public static List<string> GoldenFiles(IEnumerable<PipelineJob> jobs)
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var j in jobs)
            foreach (var t in j.Steps.SkipWhile(s => s is not RunStep).SelectMany(s => s.GoldenFiles))
                foreach (var f in GoldenWriter.FilesOf(t.Path)) set.Add(f);
        return set.ToList();
    }

    /// <summary>Refuses option combinations that cannot work: -UpdateGolden rewrites from a fresh run, so not with -Resume.</summary>
    public static void CheckOptions(bool updateGolden, bool resume)
    {
        if (updateGolden && resume)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "-UpdateGolden rewrites golden files from a fresh run; it does not go with -Resume");
    }

    /// <summary>Kernel threads per job: jobs run side by side, so the cores are shared among those that run at once.</summary>
    public static int KernelThreadsPerJob(int throttleLimit, int jobCount, int processorCount) =>
        Math.Max(1, processorCount / Math.Min(Math.Max(1, throttleLimit), Math.Max(1, jobCount)));
}
