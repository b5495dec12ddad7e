using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using QuantTools.Core.Kernels;

namespace QuantTools.Core.Pipelines;

/// <summary>Something that happened while a pipeline ran (consumed on the caller's thread).</summary>
public abstract record PipelineEvent(PipelineJob Job);
public sealed record PipelineJobStarted(PipelineJob Job) : PipelineEvent(Job);
public sealed record PipelineJobFinished(PipelineJob Job, PipelineJobResult Result) : PipelineEvent(Job);

/// <summary>
/// Runs jobs in parallel in this process (at most <see cref="ThrottleLimit"/> at a time). Each finished job's result is
/// written at once to <c>OutputPath/jobs/&lt;job&gt;.json</c> (a temp file renamed over the target, so a kill never leaves
/// a half-written result); with <see cref="Resume"/> a job whose result file exists with the same input hash is not run
/// again. A job's failure (corrupt checkpoint, unsupported op, missing tensor) is recorded in its result; the others go on.
/// </summary>
public sealed class PipelineRunner
{
    public PipelineRunner(IReadOnlyList<PipelineJob> jobs, string outputPath)
    {
        Jobs = jobs;
        OutputPath = Path.GetFullPath(outputPath);
    }

    public IReadOnlyList<PipelineJob> Jobs { get; }
    public string OutputPath { get; }
    public int ThrottleLimit { get; init; } = 1;
    /// <summary>Threads each job's kernels may use (null: the process default); each worker holds its own budget.</summary>
    public int? MaxThreadsPerJob { get; init; }
    public bool Resume { get; init; }
    /// <summary>Rewrite the golden files the jobs' steps read from this run (right after each job's run step).</summary>
    public bool UpdateGolden { get; init; }
    /// <summary>Which shard of a -Shard i/n split this run is; written to the output folder as shard.json.</summary>
    public ShardRecord? Shard { get; init; }
    /// <summary>Identifies this run in the result files (resumed results keep the run id that produced them).</summary>
    public string RunId { get; } = Guid.NewGuid().ToString("N")[..12];
    /// <summary>Results of the jobs finished (or resumed) so far, by job id.</summary>
    public ConcurrentDictionary<string, PipelineJobResult> Results { get; } = new(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<string, string> _fileHashes = new(StringComparer.Ordinal);

    public string ResultFile(PipelineJob job) => Path.Combine(OutputPath, "jobs", job.FileName + ".json");

    /// <summary>
    /// Starts the workers and yields events as jobs start and finish. Cancelling <paramref name="cancel"/> stops the
    /// workers between layers and steps (no result is written for a job that did not finish) and ends the enumeration with
    /// <see cref="OperationCanceledException"/>; the finished jobs' result files stay as written.
    /// </summary>
    public IEnumerable<PipelineEvent> Run(CancellationToken cancel)
    {
        Directory.CreateDirectory(Path.Combine(OutputPath, "jobs"));
        Shard?.Write(OutputPath);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        // not disposed: a worker that outlives a cancelled enumeration may still add to it
        var events = new BlockingCollection<PipelineEvent>();
        int next = -1;
        void Worker()
        {
            using var budget = Parallelism.Limit(MaxThreadsPerJob);
            while (!cts.IsCancellationRequested)
            {
                int i = Interlocked.Increment(ref next);
                if (i >= Jobs.Count) return;
                var job = Jobs[i];
                events.Add(new PipelineJobStarted(job));
                PipelineJobResult result;
                try { result = RunOrResume(job, cts.Token); }
                catch (OperationCanceledException) when (cts.IsCancellationRequested) { return; }
                Results[job.Id] = result;
                events.Add(new PipelineJobFinished(job, result));
            }
        }
        var workers = Enumerable.Range(0, Math.Max(1, Math.Min(ThrottleLimit, Jobs.Count)))
            .Select(_ => Task.Factory.StartNew(Worker, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        _ = Task.WhenAll(workers).ContinueWith(_ => events.CompleteAdding(), TaskScheduler.Default);
        try
        {
            foreach (var e in events.GetConsumingEnumerable(cancel)) yield return e;
        }
        finally
        {
            cts.Cancel();
            try { Task.WaitAll(workers, TimeSpan.FromSeconds(60)); } catch (AggregateException) { }
        }
        var faulted = workers.FirstOrDefault(w => w.IsFaulted);
        if (faulted is not null) throw faulted.Exception!.InnerException!;
    }

    private PipelineJobResult RunOrResume(PipelineJob job, CancellationToken cancel)
    {
        var hash = PipelineHash.InputHash(job, FileHash);
        var file = ResultFile(job);
        if (Resume && File.Exists(file))
        {
            try
            {
                var previous = PipelineJson.ReadResult(file);
                if (previous.InputHash == hash && previous.Job == job.Id)
                {
                    previous.Resumed = true;
                    previous.Index = job.Index; // the job's place in the file may have moved
                    Trace("resumed", job);
                    return previous;
                }
            }
            catch (Exception e) when (e is IOException or System.Text.Json.JsonException or UnauthorizedAccessException) { /* run it again */ }
        }
        Trace("started", job);
        var result = RunJob(job, OutputPath, hash, RunId, cancel, UpdateGolden);
        PipelineJson.WriteAtomic(file, result);
        Trace("finished", job);
        return result;
    }

    private string FileHash(string path) => _fileHashes.GetOrAdd(path, PipelineHash.FileHash);

    private static readonly object TraceLock = new();

    /// <summary>QUANTTOOLS_PIPELINE_LOG=file appends "event job pid run" lines (tests count runs with it).</summary>
    private void Trace(string what, PipelineJob job)
    {
        var log = Environment.GetEnvironmentVariable("QUANTTOOLS_PIPELINE_LOG");
        if (string.IsNullOrEmpty(log)) return;
        lock (TraceLock) File.AppendAllText(log, $"{what}\t{job.Id}\t{Environment.ProcessId}\t{RunId}{Environment.NewLine}");
    }

    /// <summary>Runs one job's steps in order. Errors end the job (status Error); failed assertions make it Failed.</summary>
    public static PipelineJobResult RunJob(PipelineJob job, string outputPath, string inputHash, string runId, CancellationToken cancel,
        bool updateGolden = false)
    {
        var sw = Stopwatch.StartNew();
        var result = new PipelineJobResult
        {
            Job = job.Id, Name = job.Name, Index = job.Index, Pipeline = Path.GetFileName(job.Source), Model = job.ModelName,
            Engines = job.Engines, Matrix = job.Matrix, InputHash = inputHash, RunId = runId, Started = DateTimeOffset.UtcNow,
        };
        var ctx = new JobContext(job, outputPath, cancel) { UpdateGolden = updateGolden };
        foreach (var step in job.Steps)
        {
            cancel.ThrowIfCancellationRequested();
            var sr = new StepResult { Step = step.Kind };
            var t0 = sw.Elapsed;
            result.Steps.Add(sr);
            try
            {
                step.Execute(ctx, sr);
                if (updateGolden && step is RunStep)
                {
                    // the steps after this run step read their golden files afresh
                    var targets = job.Steps.SkipWhile(s => s != step).Skip(1).SelectMany(s => s.GoldenFiles).ToList();
                    var written = GoldenWriter.Write(ctx, targets);
                    (result.GoldenWritten ??= new()).AddRange(written);
                    if (written.Count > 0) sr.Message = $"golden files rewritten: {string.Join(", ", written.Select(Path.GetFileName))}";
                }
                sr.Status = sr.Assertions.Any(a => !a.Passed) ? PipelineStatus.Failed : PipelineStatus.Passed;
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested) { throw; }
            catch (Exception e)
            {
                var message = e is QuantToolsException ? e.Message : $"{e.GetType().Name}: {e.Message}";
                sr.Status = PipelineStatus.Error;
                sr.Message = message;
                result.Error = message;
                result.Failures.Add(new PipelineFailure
                {
                    Job = job.Id, Step = step.Kind, Layer = LayerOf(e), Metric = "error", Message = message,
                });
            }
            finally { sr.Duration = sw.Elapsed - t0; }
            foreach (var a in sr.Assertions.Where(a => !a.Passed))
                result.Failures.Add(new PipelineFailure
                {
                    Job = job.Id, Step = step.Kind, Layer = a.Layer, Metric = a.Metric, Engine = a.Engine, Expected = a.Expected,
                    Actual = a.Actual, Message = a.Message ?? "failed",
                });
            if (sr.Status == PipelineStatus.Error) break;
        }
        result.Status = result.Error is not null ? PipelineStatus.Error
            : result.Failures.Count > 0 ? PipelineStatus.Failed : PipelineStatus.Passed;
        result.Duration = sw.Elapsed;
        return result;
    }

    private static string? LayerOf(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
            if (x is QuantToolsException { Target: { } t } && t.StartsWith("layer '", StringComparison.Ordinal) && t.EndsWith('\''))
                return t[7..^1];
        return null;
    }
}
