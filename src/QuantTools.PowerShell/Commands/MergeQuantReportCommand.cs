using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Pipelines;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>
/// Joins the output folders of Invoke-QuantPipeline shards (-Shard i/n) into one folder with the same reports a single
/// run of every job writes.
/// </summary>
[Cmdlet(VerbsData.Merge, "QuantReport")]
[OutputType(typeof(PipelineSummary), typeof(PipelineJobResult))]
public sealed class MergeQuantReportCommand : QuantCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [SupportsWildcards]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, Position = 1)]
    public string OutputPath { get; set; } = "";

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    [Parameter]
    public SwitchParameter FailOnRegression { get; set; }

    /// <summary>Merge even when shards are missing or unfinished (with a warning; summary.md says INCOMPLETE).</summary>
    [Parameter]
    public SwitchParameter AllowPartial { get; set; }

    private readonly List<string> _dirs = new();

    protected override void ProcessRecord()
    {
        foreach (var p in ResolvePaths(Path, literal: false))
        {
            if (!Directory.Exists(p))
            {
                WriteError(new ErrorRecord(new DirectoryNotFoundException($"'{p}' is not a folder"), "QuantTools.PathNotFound", ErrorCategory.ObjectNotFound, p));
                continue;
            }
            _dirs.Add(p);
        }
    }

    protected override void EndProcessing()
    {
        if (_dirs.Count == 0) return;
        var output = GetUnresolvedProviderPathFromPSPath(OutputPath);
        var (summary, results, warnings) = OrThrow(output, () => PipelineReports.Merge(_dirs, output, AllowPartial));
        foreach (var w in warnings) WriteWarning(w);
        if (PassThru) foreach (var r in results) WriteObject(r);
        else WriteObject(summary);
        bool fail = PipelinePolicy.FailOnRegression(MyInvocation.BoundParameters.ContainsKey(nameof(FailOnRegression)) ? FailOnRegression : null);
        var bad = PipelinePolicy.Regressions(results);
        if (fail && bad.Count > 0)
            ThrowTerminatingError(new ErrorRecord(new QuantToolsException(ErrorCode.InvalidArgument, PipelinePolicy.RegressionMessage(bad, output)),
                "QuantTools.PipelineRegression", ErrorCategory.InvalidResult, output));
    }
}
