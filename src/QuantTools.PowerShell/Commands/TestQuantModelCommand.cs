using System.Management.Automation;
using QuantTools.Core.Kernels;
using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Onnx;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>Lints a quantized model's qparams for problems that hurt on deployment (.onnx files: ONNX Runtime's rules).</summary>
[Cmdlet(VerbsDiagnostic.Test, "QuantModel", DefaultParameterSetName = "Path")]
[OutputType(typeof(Finding))]
public sealed class TestQuantModelCommand : QuantPathCmdlet
{
    private const string ModelSet = "Model";

    [Parameter(Mandatory = true, ParameterSetName = ModelSet, ValueFromPipeline = true)]
    public QuantModel? Model { get; set; }

    /// <summary>The engine the model will run on (x86 by default); some rules depend on it.</summary>
    [Parameter]
    [ValidateSet("x86", "fbgemm", "qnnpack", "onednn", "fbgemm-avx2", IgnoreCase = true)]
    public string Engine { get; set; } = "x86";

    /// <summary>For a state_dict: the architecture that names its parameter-free modules and wiring, so every rule can check them.</summary>
    [Parameter(ParameterSetName = "Path")]
    [Parameter(ParameterSetName = "LiteralPath")]
    public string? Architecture { get; set; }

    /// <summary>Only findings at or above this severity.</summary>
    [Parameter]
    [ValidateSet("Info", "Warning", "Error", IgnoreCase = true)]
    public string MinimumSeverity { get; set; } = "Info";

    protected override void ProcessRecord()
    {
        var engine = QEngineInfo.Parse(Engine);
        var min = Enum.Parse<Severity>(MinimumSeverity, ignoreCase: true);
        IEnumerable<(object Target, Func<QuantModel> Load)> models = ParameterSetName == ModelSet
            ? [(Model!, () => Model!)]
            : InputFiles().Select(f => ((object)f, (Func<QuantModel>)(() => ModelLoader.Load(f, Architecture is null ? null : ResolveArchitecture(Architecture)))));
        if (ParameterSetName != ModelSet)
        {
            var files = InputFiles().ToList();
            foreach (var f in files.Where(f => f.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)))
                TryItem(f, () =>
                {
                    foreach (var finding in OnnxLinter.Lint(OnnxReader.Load(f)))
                        if (finding.Severity >= min) WriteObject(finding);
                });
            models = files.Where(f => !f.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
                .Select(f => ((object)f, (Func<QuantModel>)(() => ModelLoader.Load(f, Architecture is null ? null : ResolveArchitecture(Architecture)))));
        }
        foreach (var (target, load) in models)
            TryItem(target, () =>
            {
                foreach (var f in QuantModelLinter.Lint(load(), engine))
                    if (f.Severity >= min) WriteObject(f);
            });
    }
}
