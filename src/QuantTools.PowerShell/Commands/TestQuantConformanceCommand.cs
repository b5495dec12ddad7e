using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Conformance;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>Runs a folder of golden cases and reports each case (or, with -Summary, each category).</summary>
[Cmdlet(VerbsDiagnostic.Test, "QuantConformance", DefaultParameterSetName = "Path")]
[OutputType(typeof(CaseResult), typeof(CategorySummary))]
public sealed class TestQuantConformanceCommand : QuantPathCmdlet
{
    /// <summary>Only these categories (observers, quantize, ops, models, onnx).</summary>
    [Parameter]
    [ValidateSet("observers", "quantize", "ops", "models", "onnx", IgnoreCase = true)]
    public string[]? Category { get; set; }

    /// <summary>Emit one object per category with Passed / Failed / NotRun counts instead of one per case.</summary>
    [Parameter]
    public SwitchParameter Summary { get; set; }

    private readonly List<CaseResult> _all = new();

    protected override void ProcessRecord()
    {
        foreach (var folder in InputFiles())
        {
            var cats = ConformanceRunner.DefaultCategories()
                .Where(c => Category is null || Category.Contains(c.Category, StringComparer.OrdinalIgnoreCase));
            var runner = new ConformanceRunner(cats);
            IReadOnlyList<string> files;
            try { files = ConformanceRunner.FindFiles(folder); }
            catch (QuantToolsException e) { WriteError(ToErrorRecord(e, folder)); continue; }
            var progress = new ProgressRecord(1, "Test-QuantConformance", folder);
            int done = 0;
            foreach (var file in files)
            {
                Cancel.ThrowIfCancellationRequested();
                progress.StatusDescription = $"{System.IO.Path.GetFileName(file)} ({done + 1} of {files.Count} files)";
                progress.PercentComplete = files.Count == 0 ? 100 : 100 * done / files.Count;
                WriteProgress(progress);
                TryItem(file, () =>
                {
                    foreach (var r in runner.Run(file, cancel: Cancel))
                    {
                        if (Summary) _all.Add(r);
                        else WriteObject(r);
                    }
                });
                done++;
            }
            progress.RecordType = ProgressRecordType.Completed;
            WriteProgress(progress);
        }
    }

    protected override void EndProcessing()
    {
        if (Summary)
            foreach (var s in ConformanceRunner.Summarize(_all))
                WriteObject(s);
    }
}
