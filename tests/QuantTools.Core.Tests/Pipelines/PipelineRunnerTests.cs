using System.Text.Json.Nodes;
using QuantTools.Core.Pipelines;

namespace QuantTools.Core.Tests.Pipelines;

public class PipelineRunnerTests
{
    private static string Models => Fixtures.Core("models").Replace('\\', '/');

    private static string Yaml => $$"""
        variables: {m: "{{Models}}"}
        jobs:
          - name: ok
            matrix: {engine: [x86, qnnpack]}
            models: ${m}/seed_convnet.torchscript.pt
            engine: ${engine}
            inputs: [{file: "${m}/seed_convnet.safetensors", tensors: [input]}]
            steps:
              - lint
              - run
              - assert:
                  - {metric: lint.errors, max: 0}
                  - {metric: qparams.OutputScale, layer: conv1, equals: 0.023252634331583977}
          - name: golden
            models: ${m}/seed_convnet.torchscript.pt
            inputs: [{file: "${m}/seed_convnet.safetensors", tensors: [input]}]
            steps:
              - run
              - assert:
                  - {metric: output.equal, golden: "${m}/seed_convnet.safetensors", tensor: output}
                  - {metric: output.max_diff_lsb, golden: "${m}/seed_convnet.safetensors", tensor: output, max: 0}
          - name: corrupt
            models: broken.pt
            steps: [qparams]
          - name: wrong-layer
            models: ${m}/relu6_eager.torchscript.pt
            steps:
              - assert:
                  - {metric: qparams.OutputScale, layer: conv1, equals: 0.5}
        """;

    private static List<PipelineJobResult> RunAll(PipelineRunner runner) =>
        runner.Run(CancellationToken.None).OfType<PipelineJobFinished>().Select(e => e.Result).ToList();

    [Fact]
    public void JobsRunInParallelAndAFailingJobDoesNotStopTheOthers()
    {
        using var d = new PipelineDir();
        d.Touch("broken.pt", "PK\u0003\u0004 not a zip at all");
        var def = d.Valid(Yaml);
        var outDir = Path.Combine(d.Dir, "out");
        var results = RunAll(new PipelineRunner(def.Jobs, outDir) { ThrottleLimit = 3 }).ToDictionary(r => r.Job);
        Assert.Equal(5, results.Count);
        Assert.Equal(PipelineStatus.Passed, results["ok[engine=x86]"].Status);
        Assert.Equal(PipelineStatus.Passed, results["ok[engine=qnnpack]"].Status);
        Assert.Equal(PipelineStatus.Passed, results["golden"].Status);
        var corrupt = results["corrupt"];
        Assert.Equal(PipelineStatus.Error, corrupt.Status);
        Assert.NotNull(corrupt.Error);
        Assert.Equal("error", Assert.Single(corrupt.Failures).Metric);
        var wrong = results["wrong-layer"];
        Assert.Equal(PipelineStatus.Failed, wrong.Status);
        var f = Assert.Single(wrong.Failures);
        Assert.Equal(("wrong-layer", "conv1", "qparams.OutputScale"), (f.Job, f.Layer, f.Metric));
        Assert.Equal(0.5, double.Parse(f.Expected!.TrimStart('=', ' '), System.Globalization.CultureInfo.InvariantCulture));
        foreach (var j in def.Jobs)
        {
            var back = PipelineJson.ReadResult(Path.Combine(outDir, "jobs", j.FileName + ".json"));
            Assert.Equal(results[j.Id].Status, back.Status);
            Assert.Equal(results[j.Id].InputHash, back.InputHash);
            Assert.Equal(j.Index, back.Index);
        }
        Assert.Empty(Directory.GetFiles(Path.Combine(outDir, "jobs"), "*.tmp"));
    }

    [Fact]
    public void ResumeSkipsJobsWhoseInputsAreUnchanged()
    {
        using var d = new PipelineDir();
        d.Touch("broken.pt", "garbage");
        var outDir = Path.Combine(d.Dir, "out");
        var first = RunAll(new PipelineRunner(d.Valid(Yaml).Jobs, outDir) { ThrottleLimit = 2 });
        Assert.All(first, r => Assert.False(r.Resumed));

        var again = RunAll(new PipelineRunner(d.Valid(Yaml).Jobs, outDir) { Resume = true, ThrottleLimit = 2 }).ToDictionary(r => r.Job);
        Assert.All(again.Values, r => Assert.True(r.Resumed, r.Job));
        Assert.All(first, r => Assert.Equal(r.RunId, again[r.Job].RunId));

        // one job's definition changes, and the corrupt checkpoint's contents change: only those two run again
        d.Touch("broken.pt", "still garbage");
        var changed = Yaml.Replace("equals: 0.5", "equals: 0.25");
        var third = RunAll(new PipelineRunner(d.Valid(changed).Jobs, outDir) { Resume = true }).ToDictionary(r => r.Job);
        Assert.Equal(["corrupt", "wrong-layer"], third.Values.Where(r => !r.Resumed).Select(r => r.Job).Order());
        Assert.Contains("0.25", third["wrong-layer"].Failures[0].Expected);
    }

    [Fact]
    public void MergedShardsGiveTheSingleRunReport()
    {
        using var d = new PipelineDir();
        d.Touch("broken.pt", "garbage");
        var jobs = d.Valid(Yaml).Jobs;
        var single = Path.Combine(d.Dir, "single");
        var runner = new PipelineRunner(jobs, single) { ThrottleLimit = 2 };
        RunAll(runner);
        PipelineReports.Write(single, runner.Results.Values);
        var shards = new List<string>();
        for (int i = 1; i <= 3; i++)
        {
            var dir = Path.Combine(d.Dir, $"shard{i}");
            var r = new PipelineRunner(PipelineShard.Select(jobs, i, 3), dir) { Shard = ShardRecord.For(jobs, i, 3) };
            RunAll(r);
            PipelineReports.Write(dir, r.Results.Values);
            shards.Add(dir);
        }
        var merged = Path.Combine(d.Dir, "merged");
        var (summary, results, warnings) = PipelineReports.Merge(shards, merged);
        Assert.Empty(warnings);
        Assert.Equal("shards 1/3, 2/3, 3/3 (complete)", summary.Shards);
        Assert.Equal(5, summary.Jobs);
        Assert.Equal((3, 1, 1), (summary.Passed, summary.Failed, summary.Errors));
        Assert.Equal(jobs.Select(j => j.Id), results.Select(r => r.Job));
        Assert.Equal(Normalize(Path.Combine(single, "results.json")), Normalize(Path.Combine(merged, "results.json")));
        Assert.Equal(5, Directory.GetFiles(Path.Combine(merged, "jobs"), "*.json").Length);
        foreach (var f in PipelineReports.Files) Assert.True(File.Exists(Path.Combine(merged, f)), f);
        // shards that overlap are refused
        Assert.Throws<QuantToolsException>(() => PipelineReports.Merge([shards[0], single], Path.Combine(d.Dir, "bad")));

        // a missing shard is refused, or merged with a warning and an INCOMPLETE summary when asked for
        var e = Assert.Throws<QuantToolsException>(() => PipelineReports.Merge([shards[0], shards[2]], Path.Combine(d.Dir, "partial")));
        Assert.Contains("shard(s) 2/3 missing", e.Message);
        Assert.Contains("-AllowPartial", e.Message);
        Assert.False(Directory.Exists(Path.Combine(d.Dir, "partial")));
        var (ps, pr, pw) = PipelineReports.Merge([shards[0], shards[2]], Path.Combine(d.Dir, "partial"), allowPartial: true);
        Assert.Equal(ShardRecord.Read(shards[0])!.Jobs.Count + ShardRecord.Read(shards[2])!.Jobs.Count, ps.Jobs);
        Assert.Contains(pw, w => w.Contains("2/3 missing") && w.Contains($"of {jobs.Count} jobs"));
        Assert.Contains("INCOMPLETE", File.ReadAllText(Path.Combine(d.Dir, "partial", "summary.md")));
        // the same shard twice
        var copy = Path.Combine(d.Dir, "shard1-again");
        CopyTree(shards[0], copy);
        Assert.Contains("shard 1/3 is given twice", Assert.Throws<QuantToolsException>(() => PipelineReports.Merge([shards[0], copy, shards[1], shards[2]], Path.Combine(d.Dir, "dup"))).Message);
        // a shard of another split
        var other = Path.Combine(d.Dir, "other");
        var o = new PipelineRunner(PipelineShard.Select(jobs, 1, 2), other) { Shard = ShardRecord.For(jobs, 1, 2) };
        RunAll(o);
        Assert.Contains("different splits", Assert.Throws<QuantToolsException>(() => PipelineReports.Merge([shards[0], other], Path.Combine(d.Dir, "mix"))).Message);
        // an unfinished shard: its record lists a job without a result
        var cut = Path.Combine(d.Dir, "cut");
        CopyTree(shards[1], cut);
        var rec = ShardRecord.Read(cut)!;
        File.Delete(Path.Combine(cut, "results.json"));
        File.Delete(Directory.GetFiles(Path.Combine(cut, "jobs"), "*.json")[0]);
        Assert.Contains("has no result for 1 of its", Assert.Throws<QuantToolsException>(() => PipelineReports.Merge([shards[0], cut, shards[2]], Path.Combine(d.Dir, "cutm"))).Message);
        Assert.True(rec.Jobs.Count >= 1);
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var dd in Directory.GetDirectories(from)) CopyTree(dd, Path.Combine(to, Path.GetFileName(dd)));
    }

    /// <summary>results.json without what differs between runs (durations, start times, run ids).</summary>
    internal static string Normalize(string resultsJson)
    {
        var node = JsonNode.Parse(File.ReadAllText(resultsJson))!;
        void Strip(JsonNode? n)
        {
            if (n is JsonObject o)
            {
                foreach (var k in new[] { "Duration", "Started", "RunId" }) o.Remove(k);
                foreach (var (_, v) in o.ToList()) Strip(v);
            }
            else if (n is JsonArray a) foreach (var v in a) Strip(v);
        }
        Strip(node);
        return node.ToJsonString();
    }

    [Fact]
    public void RandomInputsAreReproducible()
    {
        var spec = new PipelineInput { RandomShape = [3, 5], RandomSeed = 42, Distribution = "normal", A = 0, B = 1 };
        var a = RandomTensor.Create(spec).AsSpan<float>().ToArray();
        Assert.Equal(a, RandomTensor.Create(spec).AsSpan<float>().ToArray());
        Assert.NotEqual(a, RandomTensor.Create(new PipelineInput { RandomShape = [3, 5], RandomSeed = 43 }).AsSpan<float>().ToArray());
        var u = RandomTensor.Create(new PipelineInput { RandomShape = [1000], RandomSeed = 1, Distribution = "uniform", A = -2, B = 3 }).AsSpan<float>().ToArray();
        Assert.All(u, v => Assert.InRange(v, -2f, 3f));
    }
}
