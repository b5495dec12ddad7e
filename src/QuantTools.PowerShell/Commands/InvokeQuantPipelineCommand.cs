using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Pipelines;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>
/// Runs a YAML pipeline of jobs (qparams, lint, calibrate, quantize, run, assert over many checkpoints) in parallel,
/// writing each job's result as it finishes and the reports (JSON, CSV, JUnit, Markdown) at the end.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "QuantPipeline", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(PipelineJobResult), typeof(PipelineJob))]
public sealed class InvokeQuantPipelineCommand : QuantCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    public string Path { get; set; } = "";

    [Parameter]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = Environment.ProcessorCount;

    [Parameter]
    [ValidatePattern(@"^\d+/\d+$")]
    public string? Shard { get; set; }

    [Parameter]
    public SwitchParameter Resume { get; set; }

    [Parameter]
    public string? OutputPath { get; set; }

    [Parameter]
    public SwitchParameter Validate { get; set; }

    [Parameter]
    public SwitchParameter FailOnRegression { get; set; }

    [Parameter]
    public SwitchParameter UpdateGolden { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        var file = GetUnresolvedProviderPathFromPSPath(Path);
        if (!File.Exists(file))
            ThrowTerminatingError(new ErrorRecord(new FileNotFoundException($"'{file}' does not exist", file),
                "QuantTools.PathNotFound", ErrorCategory.ObjectNotFound, Path));
        var (definition, errors) = OrThrow(file, () => PipelineParser.TryLoad(file));
        if (errors.Count > 0)
            ThrowTerminatingError(new ErrorRecord(new QuantToolsException(ErrorCode.InvalidArgument, PipelineParser.Describe(errors)),
                "QuantTools.PipelineInvalid", ErrorCategory.InvalidData, file));
        IReadOnlyList<PipelineJob> jobs = definition!.Jobs;
        ShardRecord? shard = null;
        if (Shard is not null)
        {
            var (i, n) = OrThrow(Shard, () => PipelineShard.Parse(Shard));
            jobs = PipelineShard.Select(jobs, i, n);
            shard = ShardRecord.For(definition.Jobs, i, n);
        }
        if (Validate)
        {
            WriteVerbose($"{file}: valid, {definition.Jobs.Count} job(s){(Shard is null ? "" : $", {jobs.Count} in shard {Shard}")}");
            foreach (var j in jobs) WriteObject(j);
            return;
        }

        if (UpdateGolden)
        {
            OrThrow<object?>(file, () => { PipelinePolicy.CheckOptions(UpdateGolden, Resume); return null; });
            var goldens = PipelinePolicy.GoldenFiles(jobs);
            if (goldens.Count == 0)
            {
                WriteWarning("-UpdateGolden: no step of the selected jobs reads a golden file (assert with golden:, compare with against: {golden: ...}); nothing to rewrite");
            }
            else
            {
                var list = string.Join(Environment.NewLine, goldens.Select(g => "  " + g));
                if (!ShouldProcess($"{goldens.Count} golden file(s):{Environment.NewLine}{list}", "Rewrite from the current run"))
                    return;
                if (!Force && !ShouldContinue($"Rewrite {goldens.Count} golden file(s) from this run's outputs and layers?{Environment.NewLine}{list}",
                        "Invoke-QuantPipeline -UpdateGolden"))
                    return;
            }
        }

        var output = GetUnresolvedProviderPathFromPSPath(OutputPath ?? "pipeline-results");
        // jobs run side by side; each job's kernels share the cores
        var runner = new PipelineRunner(jobs, output)
        {
            ThrottleLimit = ThrottleLimit, Resume = Resume, UpdateGolden = UpdateGolden, Shard = shard,
            MaxThreadsPerJob = PipelinePolicy.KernelThreadsPerJob(ThrottleLimit, jobs.Count, Environment.ProcessorCount),
        };
        int running = 0, done = 0, failed = 0;
        bool stopped = false;
        var progress = new ProgressRecord(3, "Invoke-QuantPipeline", "starting");
        try
        {
            foreach (var e in runner.Run(Cancel))
            {
                if (e is PipelineJobStarted) running++;
                else if (e is PipelineJobFinished f)
                {
                    running--;
                    done++;
                    if (f.Result.Status != PipelineStatus.Passed) failed++;
                    foreach (var g in f.Result.GoldenWritten ?? [])
                        WriteInformation(new InformationRecord(new HostInformationMessage { Message = $"{f.Job.Id}: rewrote {g}" }, "Invoke-QuantPipeline")
                        { Tags = { "PSHOST", "UpdateGolden" } });
                    WriteObject(f.Result);
                }
                progress.StatusDescription = $"{done}/{jobs.Count} done, {running} running, {failed} failed";
                progress.CurrentOperation = e is PipelineJobStarted ? $"started {e.Job.Id}" : $"finished {e.Job.Id}";
                progress.PercentComplete = jobs.Count == 0 ? 100 : (int)(100L * done / jobs.Count);
                WriteProgress(progress);
            }
        }
        catch (OperationCanceledException) when (Cancel.IsCancellationRequested)
        {
            stopped = true;
        }
        catch (QuantToolsException ex)
        {
            ThrowTerminatingError(ToErrorRecord(ex, file));
        }
        finally
        {
            // the reports cover every job finished so far, also after Ctrl+C
            var results = runner.Results.Values.ToList();
            if (results.Count > 0 || !stopped)
            {
                var summary = PipelineReports.Write(output, results);
                if (!stopped) WriteVerbose($"{summary} (reports in {output})");
            }
            if (!stopped)
                WriteProgress(new ProgressRecord(3, "Invoke-QuantPipeline", "done") { RecordType = ProgressRecordType.Completed });
        }
        if (stopped) return;

        if (PipelinePolicy.FailOnRegression(MyInvocation.BoundParameters.ContainsKey(nameof(FailOnRegression)) ? FailOnRegression : null))
        {
            var bad = PipelinePolicy.Regressions(runner.Results.Values);
            if (bad.Count > 0)
                ThrowTerminatingError(new ErrorRecord(new QuantToolsException(ErrorCode.InvalidArgument, PipelinePolicy.RegressionMessage(bad, output)),
                    "QuantTools.PipelineRegression", ErrorCategory.InvalidResult, file));
        }
    }
}
