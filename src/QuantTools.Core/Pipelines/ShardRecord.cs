using System.Text.Json;

namespace QuantTools.Core.Pipelines;

/// <summary>
/// What a shard run (-Shard i/n) writes to its output folder as <c>shard.json</c>: which shard of how many, how many
/// jobs the whole pipeline has, and the ids of this shard's jobs, so Merge-QuantReport can tell a missing, duplicated
/// or unfinished shard from a complete set.
/// </summary>
public sealed record ShardRecord(int Index, int Count, int PipelineJobs, IReadOnlyList<string> Jobs)
{
    public const string FileName = "shard.json";

    public override string ToString() => $"{Index}/{Count}";

    /// <summary>The record of shard <paramref name="index"/> of <paramref name="count"/> of <paramref name="all"/>.</summary>
    public static ShardRecord For(IReadOnlyList<PipelineJob> all, int index, int count) =>
        new(index, count, all.Count, PipelineShard.Select(all, index, count).Select(j => j.Id).ToList());

    public void Write(string dir) => PipelineJson.WriteAtomic(Path.Combine(dir, FileName), this);

    /// <summary>The folder's record, or null when it has none (a run without -Shard).</summary>
    public static ShardRecord? Read(string dir)
    {
        var f = Path.Combine(dir, FileName);
        if (!File.Exists(f)) return null;
        try
        {
            return JsonSerializer.Deserialize<ShardRecord>(File.ReadAllText(f), PipelineJson.Options)
                   ?? throw new QuantToolsException(ErrorCode.CorruptFile, "empty shard record", f);
        }
        catch (JsonException e) { throw new QuantToolsException(ErrorCode.CorruptFile, $"shard record: {e.Message}", f, e); }
    }

    /// <summary>
    /// Checks that the folders to merge are one complete split: every shard 1..n exactly once, all of the same n, each
    /// with a result for every job it was given. Problems are errors, or with <paramref name="allowPartial"/> warnings
    /// (missing and unfinished shards only; duplicates and mixed splits are always errors). Returns the warnings and a
    /// one-line description of the set (null when no folder has a record).
    /// </summary>
    public static (List<string> Warnings, string? Description) Check(IReadOnlyList<(string Dir, ShardRecord? Record, IReadOnlyCollection<string> JobsWithResults)> parts, bool allowPartial)
    {
        var warnings = new List<string>();
        var sharded = parts.Where(p => p.Record is not null).ToList();
        if (sharded.Count == 0) return (warnings, null);
        var bare = parts.Where(p => p.Record is null).ToList();
        if (bare.Count > 0)
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"'{bare[0].Dir}' has no shard record ({FileName}) but {sharded[0].Record} in '{sharded[0].Dir}' does: merge the output folders of one -Shard i/n split");
        var splits = sharded.Select(p => (p.Record!.Count, p.Record.PipelineJobs)).Distinct().ToList();
        if (splits.Count > 1)
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                "the folders come from different splits: " + string.Join(", ", sharded.Select(p => $"{p.Record} of {p.Record!.PipelineJobs} jobs ('{p.Dir}')")));
        int n = splits[0].Count;
        foreach (var g in sharded.GroupBy(p => p.Record!.Index).Where(g => g.Count() > 1))
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"shard {g.Key}/{n} is given twice: {string.Join(", ", g.Select(p => $"'{p.Dir}'"))}");
        var missing = Enumerable.Range(1, n).Except(sharded.Select(p => p.Record!.Index)).ToList();
        var problems = new List<string>();
        if (missing.Count > 0)
        {
            int lost = sharded.Sum(p => p.Record!.Jobs.Count);
            problems.Add($"shard(s) {string.Join(", ", missing.Select(i => $"{i}/{n}"))} missing: the merged report would hold {lost} of {splits[0].PipelineJobs} jobs");
        }
        foreach (var p in sharded)
        {
            var undone = p.Record!.Jobs.Where(j => !p.JobsWithResults.Contains(j)).ToList();
            if (undone.Count > 0)
                problems.Add($"shard {p.Record} ('{p.Dir}') has no result for {undone.Count} of its {p.Record.Jobs.Count} job(s) ({string.Join(", ", undone.Take(5))}{(undone.Count > 5 ? ", ..." : "")}): run it again with -Resume");
        }
        if (problems.Count > 0 && !allowPartial)
            throw new QuantToolsException(ErrorCode.InvalidArgument, string.Join("; ", problems) + "; merge every shard, or pass -AllowPartial for a partial report");
        warnings.AddRange(problems);
        string desc = missing.Count == 0 && problems.Count == 0
            ? $"shards {string.Join(", ", sharded.OrderBy(p => p.Record!.Index).Select(p => p.Record!.ToString()))} (complete)"
            : $"shards {string.Join(", ", sharded.OrderBy(p => p.Record!.Index).Select(p => p.Record!.ToString()))} of {n} (PARTIAL: {string.Join("; ", problems)})";
        return (warnings, desc);
    }
}
