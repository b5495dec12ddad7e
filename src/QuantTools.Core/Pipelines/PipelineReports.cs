using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Xml;

namespace QuantTools.Core.Pipelines;

/// <summary>JSON settings and atomic writes (temp file, then rename over the target).</summary>
public static class PipelineJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new JsonStringEnumConverter() },
    };

    public static void WriteAtomic<T>(string path, T value) => WriteTextAtomic(path, JsonSerializer.Serialize(value, Options) + "\n");

    public static void WriteTextAtomic(string path, string text)
    {
        var tmp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllText(tmp, text, new UTF8Encoding(false));
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw new QuantToolsException(ErrorCode.IoError, e.Message, path, e);
        }
    }

    public static PipelineJobResult ReadResult(string path) =>
        JsonSerializer.Deserialize<PipelineJobResult>(File.ReadAllText(path), Options)
        ?? throw new QuantToolsException(ErrorCode.CorruptFile, "empty result file", path);
}

/// <summary>Counts of a run (or a merge) and where its reports are.</summary>
public sealed class PipelineSummary
{
    public string? Pipeline { get; init; }
    public int Jobs { get; init; }
    public int Passed { get; init; }
    public int Failed { get; init; }
    public int Errors { get; init; }
    public int Assertions { get; init; }
    public int AssertionsFailed { get; init; }
    public string? OutputPath { get; init; }
    /// <summary>For a merged report: which shards it holds and whether the set is complete (null for a single run).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Shards { get; init; }
    public override string ToString() => $"{Jobs} jobs: {Passed} passed, {Failed} failed, {Errors} errors; {Assertions} assertions, {AssertionsFailed} failed" + (Shards is null ? "" : $" ({Shards})");
}

/// <summary>
/// The reports of a run, written to its output folder: results.json (every job result, ordered by job index),
/// results.csv (one row per job), junit.xml (one test case per assertion) and summary.md. Merging shard folders gives
/// the same reports as one run of all jobs.
/// </summary>
public static class PipelineReports
{
    public static readonly IReadOnlyList<string> Files = ["results.json", "results.csv", "junit.xml", "summary.md", "summary.html"];

    private sealed class ResultsFile
    {
        public string? Pipeline { get; init; }
        public PipelineSummary? Summary { get; init; }
        public List<PipelineJobResult> Jobs { get; init; } = new();
    }

    public static IReadOnlyList<PipelineJobResult> Order(IEnumerable<PipelineJobResult> results) =>
        results.OrderBy(r => r.Index).ThenBy(r => r.Job, StringComparer.Ordinal).ToList();

    public static PipelineSummary Summarize(IReadOnlyList<PipelineJobResult> results, string? outputPath) => new()
    {
        Pipeline = PipelineName(results),
        Jobs = results.Count,
        Passed = results.Count(r => r.Status == PipelineStatus.Passed),
        Failed = results.Count(r => r.Status == PipelineStatus.Failed),
        Errors = results.Count(r => r.Status == PipelineStatus.Error),
        Assertions = results.Sum(r => r.Steps.Sum(s => s.Assertions.Count)),
        AssertionsFailed = results.Sum(r => r.Steps.Sum(s => s.Assertions.Count(a => !a.Passed))),
        OutputPath = outputPath,
    };

    private static string? PipelineName(IEnumerable<PipelineJobResult> results)
    {
        var names = results.Select(r => r.Pipeline).Where(p => p is not null).Distinct().ToList();
        return names.Count == 0 ? null : string.Join(", ", names);
    }

    /// <summary>Writes the four reports for <paramref name="results"/> into <paramref name="outputPath"/>.</summary>
    public static PipelineSummary Write(string outputPath, IEnumerable<PipelineJobResult> results, string? shards = null)
    {
        var ordered = Order(results);
        Directory.CreateDirectory(outputPath);
        var s0 = Summarize(ordered, Path.GetFullPath(outputPath));
        var summary = new PipelineSummary
        {
            Pipeline = s0.Pipeline, Jobs = s0.Jobs, Passed = s0.Passed, Failed = s0.Failed, Errors = s0.Errors,
            Assertions = s0.Assertions, AssertionsFailed = s0.AssertionsFailed, OutputPath = s0.OutputPath, Shards = shards,
        };
        var json = new ResultsFile
        {
            Pipeline = summary.Pipeline,
            Summary = new PipelineSummary
            {
                Pipeline = summary.Pipeline, Jobs = summary.Jobs, Passed = summary.Passed, Failed = summary.Failed, Errors = summary.Errors,
                Assertions = summary.Assertions, AssertionsFailed = summary.AssertionsFailed,
            },
            Jobs = ordered.ToList(),
        };
        PipelineJson.WriteAtomic(Path.Combine(outputPath, "results.json"), json);
        PipelineJson.WriteTextAtomic(Path.Combine(outputPath, "results.csv"), Csv(ordered));
        PipelineJson.WriteTextAtomic(Path.Combine(outputPath, "junit.xml"), JUnit(ordered, summary));
        PipelineJson.WriteTextAtomic(Path.Combine(outputPath, "summary.md"), Markdown(ordered, summary));
        PipelineJson.WriteTextAtomic(Path.Combine(outputPath, "summary.html"), PipelineHtmlReport.Render(ordered, summary, Status(summary)));
        return summary;
    }

    /// <summary>
    /// The job results recorded in a run's folder: the jobs listed by its results.json, or, where the run did not get
    /// that far (killed), every jobs/*.json.
    /// </summary>
    public static IReadOnlyList<PipelineJobResult> Read(string dir)
    {
        var results = Path.Combine(dir, "results.json");
        if (File.Exists(results))
        {
            try
            {
                var file = JsonSerializer.Deserialize<ResultsFile>(File.ReadAllText(results), PipelineJson.Options);
                if (file is not null) return file.Jobs;
            }
            catch (JsonException e) { throw new QuantToolsException(ErrorCode.CorruptFile, e.Message, results, e); }
        }
        var jobs = Path.Combine(dir, "jobs");
        if (!Directory.Exists(jobs))
            throw new QuantToolsException(ErrorCode.InvalidArgument, "not a pipeline output folder (no results.json, no jobs folder)", dir);
        var list = new List<PipelineJobResult>();
        foreach (var f in Directory.GetFiles(jobs, "*.json").Order(StringComparer.Ordinal))
        {
            try { list.Add(PipelineJson.ReadResult(f)); }
            catch (JsonException e) { throw new QuantToolsException(ErrorCode.CorruptFile, e.Message, f, e); }
        }
        return list;
    }

    /// <summary>
    /// Joins the results of several output folders (shards) into one: job result files and artifacts are copied into
    /// <paramref name="outputPath"/>/jobs and the reports are written there. A job found in two folders is an error
    /// unless both results are the same run's.
    /// </summary>
    public static (PipelineSummary Summary, IReadOnlyList<PipelineJobResult> Results, IReadOnlyList<string> Warnings) Merge(
        IEnumerable<string> dirs, string outputPath, bool allowPartial = false)
    {
        var byId = new Dictionary<string, (PipelineJobResult Result, string Dir)>(StringComparer.Ordinal);
        var outFull = Path.GetFullPath(outputPath);
        // shard records first: a missing, duplicated or unfinished shard stops the merge before anything is copied
        var parts = dirs.Select(d => Path.GetFullPath(d)).Distinct(StringComparer.Ordinal)
            .Select(d => (Dir: d, Record: ShardRecord.Read(d), Results: Read(d))).ToList();
        var (warnings, shards) = ShardRecord.Check(
            parts.Select(p => (p.Dir, p.Record, (IReadOnlyCollection<string>)p.Results.Select(r => r.Job).ToHashSet(StringComparer.Ordinal))).ToList(), allowPartial);
        Directory.CreateDirectory(Path.Combine(outFull, "jobs"));
        foreach (var (full, _, read) in parts)
        {
            foreach (var r in read)
            {
                if (byId.TryGetValue(r.Job, out var had))
                {
                    if (had.Result.RunId == r.RunId && had.Result.InputHash == r.InputHash) continue;
                    throw new QuantToolsException(ErrorCode.InvalidArgument,
                        $"job '{r.Job}' has results in both '{had.Dir}' and '{full}'; shards must be disjoint (-Shard i/n with the same n)");
                }
                byId[r.Job] = (r, full);
                if (string.Equals(full, outFull, StringComparison.Ordinal)) continue;
                var name = PipelineHash.SafeName(r.Job);
                var src = Path.Combine(full, "jobs", name + ".json");
                if (File.Exists(src)) File.Copy(src, Path.Combine(outFull, "jobs", name + ".json"), overwrite: true);
                else PipelineJson.WriteAtomic(Path.Combine(outFull, "jobs", name + ".json"), r);
                var art = Path.Combine(full, "jobs", name);
                if (Directory.Exists(art)) CopyDir(art, Path.Combine(outFull, "jobs", name));
            }
        }
        var results = byId.Values.Select(v => v.Result).ToList();
        return (Write(outFull, results, shards), Order(results), warnings);
    }

    private static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
        foreach (var d in Directory.GetDirectories(from)) CopyDir(d, Path.Combine(to, Path.GetFileName(d)));
    }

    private static string N(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    private static string Secs(TimeSpan t) => t.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture);

    private static string Csv(IReadOnlyList<PipelineJobResult> results)
    {
        var sb = new StringBuilder();
        sb.AppendLine("Index,Job,Status,Model,Engines,Duration,Assertions,AssertionsFailed,Failures");
        foreach (var r in results)
            sb.AppendLine(string.Join(",", r.Index.ToString(CultureInfo.InvariantCulture), Pipelines.Csv.Field(r.Job), r.Status,
                Pipelines.Csv.Field(r.Model), Pipelines.Csv.Field(string.Join(" ", r.Engines)), Secs(r.Duration),
                r.Steps.Sum(s => s.Assertions.Count), r.Steps.Sum(s => s.Assertions.Count(a => !a.Passed)),
                Pipelines.Csv.Field(string.Join(" | ", r.Failures.Select(f => f.ToString())))));
        return sb.ToString();
    }

    private static string JUnit(IReadOnlyList<PipelineJobResult> results, PipelineSummary summary)
    {
        var sb = new StringBuilder();
        var settings = new XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false), OmitXmlDeclaration = false };
        using (var sw = new StringWriter(sb))
        using (var w = XmlWriter.Create(sw, settings))
        {
            w.WriteStartDocument();
            w.WriteStartElement("testsuites");
            w.WriteAttributeString("name", summary.Pipeline ?? "pipeline");
            int tests = results.Sum(r => Math.Max(1, r.Steps.Sum(s => s.Assertions.Count)) + (r.Status == PipelineStatus.Error && r.Steps.Sum(s => s.Assertions.Count) > 0 ? 1 : 0));
            w.WriteAttributeString("tests", tests.ToString(CultureInfo.InvariantCulture));
            w.WriteAttributeString("failures", summary.AssertionsFailed.ToString(CultureInfo.InvariantCulture));
            w.WriteAttributeString("errors", summary.Errors.ToString(CultureInfo.InvariantCulture));
            w.WriteAttributeString("time", Secs(TimeSpan.FromTicks(results.Sum(r => r.Duration.Ticks))));
            foreach (var r in results)
            {
                var asserts = r.Steps.SelectMany(s => s.Assertions).ToList();
                w.WriteStartElement("testsuite");
                w.WriteAttributeString("name", r.Job);
                w.WriteAttributeString("tests", (Math.Max(1, asserts.Count) + (r.Status == PipelineStatus.Error && asserts.Count > 0 ? 1 : 0)).ToString(CultureInfo.InvariantCulture));
                w.WriteAttributeString("failures", asserts.Count(a => !a.Passed).ToString(CultureInfo.InvariantCulture));
                w.WriteAttributeString("errors", (r.Status == PipelineStatus.Error ? 1 : 0).ToString(CultureInfo.InvariantCulture));
                w.WriteAttributeString("time", Secs(r.Duration));
                foreach (var a in asserts)
                {
                    w.WriteStartElement("testcase");
                    w.WriteAttributeString("classname", r.Job);
                    w.WriteAttributeString("name", a.Name);
                    w.WriteAttributeString("time", "0");
                    if (!a.Passed)
                    {
                        w.WriteStartElement("failure");
                        w.WriteAttributeString("type", a.Metric);
                        w.WriteAttributeString("message", (a.Layer is null ? "" : $"layer {a.Layer}: ") + (a.Message ?? "failed"));
                        w.WriteString($"job: {r.Job}\nmetric: {a.Metric}\nlayer: {a.Layer}\nengine: {a.Engine}\nexpected: {a.Expected}\nactual: {(a.Actual is { } v ? N(v) : "")}\n{a.Message}");
                        w.WriteEndElement();
                    }
                    w.WriteEndElement();
                }
                if (asserts.Count == 0 || r.Status == PipelineStatus.Error)
                {
                    w.WriteStartElement("testcase");
                    w.WriteAttributeString("classname", r.Job);
                    w.WriteAttributeString("name", r.Status == PipelineStatus.Error ? "job error" : "job steps");
                    w.WriteAttributeString("time", Secs(r.Duration));
                    if (r.Status == PipelineStatus.Error)
                    {
                        var step = r.Steps.LastOrDefault(s => s.Status == PipelineStatus.Error);
                        w.WriteStartElement("error");
                        w.WriteAttributeString("type", step?.Step ?? "job");
                        w.WriteAttributeString("message", r.Error ?? "error");
                        w.WriteString($"job: {r.Job}\nstep: {step?.Step}\n{r.Error}");
                        w.WriteEndElement();
                    }
                    w.WriteEndElement();
                }
                w.WriteEndElement();
            }
            w.WriteEndElement();
            w.WriteEndDocument();
        }
        return sb.ToString().Replace("encoding=\"utf-16\"", "encoding=\"utf-8\"") + "\n";
    }

    private static string Md(string? s) => (s ?? "").Replace("|", "\\|").Replace("\r", "").Replace("\n", " ");

    /// <summary>The verdict: FAILED when a job failed or errored; a partial merge never reads as a pass (INCOMPLETE).</summary>
    public static string Status(PipelineSummary s)
    {
        bool partial = s.Shards?.Contains("PARTIAL", StringComparison.Ordinal) == true;
        return s.Failed + s.Errors > 0 ? partial ? "FAILED, INCOMPLETE" : "FAILED" : partial ? "INCOMPLETE" : "PASSED";
    }

    private static string Markdown(IReadOnlyList<PipelineJobResult> results, PipelineSummary s)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Pipeline {s.Pipeline}");
        sb.AppendLine();
        string status = Status(s);
        sb.AppendLine($"**{status}**: {s.Jobs} jobs, {s.Passed} passed, {s.Failed} failed, {s.Errors} errors; {s.Assertions} assertions, {s.AssertionsFailed} failed.");
        if (s.Shards is not null)
        {
            sb.AppendLine();
            sb.AppendLine($"Merged from {Md(s.Shards)}.");
        }
        sb.AppendLine();
        sb.AppendLine("| # | Job | Status | Model | Engines | Assertions | Seconds |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var r in results)
        {
            var asserts = r.Steps.SelectMany(x => x.Assertions).ToList();
            sb.AppendLine($"| {r.Index} | {Md(r.Job)} | {r.Status} | {Md(r.Model)} | {Md(string.Join(" ", r.Engines))} | {asserts.Count(a => a.Passed)}/{asserts.Count} | {Secs(r.Duration)} |");
        }
        var failures = results.SelectMany(r => r.Failures).ToList();
        if (failures.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("## Failures");
            sb.AppendLine();
            sb.AppendLine("| Job | Step | Layer | Metric | Engine | Expected | Actual | Message |");
            sb.AppendLine("|---|---|---|---|---|---|---|---|");
            foreach (var f in failures)
                sb.AppendLine($"| {Md(f.Job)} | {f.Step} | {Md(f.Layer)} | {Md(f.Metric)} | {f.Engine} | {Md(f.Expected)} | {(f.Actual is { } v ? N(v) : "")} | {Md(f.Message)} |");
        }
        return sb.ToString();
    }
}
