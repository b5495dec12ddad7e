using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Export;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Graph;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>
/// Writes a quantized model as C99 code that reproduces a PyTorch engine bit for bit on a device, or as a JSON of every
/// layer's integer parameters with a .safetensors sidecar. Returns (and prints) the export's sizes.
/// </summary>
[Cmdlet(VerbsData.Export, "QuantModel", DefaultParameterSetName = PathSet, SupportsShouldProcess = true)]
[OutputType(typeof(ExportResult))]
public sealed class ExportQuantModelCommand : QuantCmdlet
{
    private const string PathSet = "Path";
    private const string ModelSet = "Model";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
    public string Path { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = ModelSet, ValueFromPipeline = true)]
    public QuantModel? Model { get; set; }

    /// <summary>For an eager state_dict: the YAML file with the forward order (see examples/architectures).</summary>
    [Parameter]
    public string? Architecture { get; set; }

    [Parameter]
    [ValidateSet("x86", "fbgemm", "qnnpack", "onednn", "fbgemm-avx2", IgnoreCase = true)]
    public string Engine { get; set; } = "x86";

    /// <summary>The CPU class whose PyTorch the code reproduces: avx512-vnni (default), avx2, or host.</summary>
    [Parameter]
    [ValidateSet("avx512-vnni", "avx2", "host", IgnoreCase = true)]
    public string CpuClass { get; set; } = "avx512-vnni";

    [Parameter]
    [ValidateSet("C", "Json", IgnoreCase = true)]
    public string Format { get; set; } = "C";

    /// <summary>The float input's shape, NCHW with the batch, e.g. 1,3,224,224.</summary>
    [Parameter(Mandatory = true)]
    [ValidateCount(1, 8)]
    public int[] InputShape { get; set; } = [];

    [Parameter(Mandatory = true)]
    public string OutputPath { get; set; } = "";

    /// <summary>Prefix of the file names and C identifiers.</summary>
    [Parameter]
    [ValidatePattern("^[A-Za-z_][A-Za-z0-9_]*$")]
    public string Name { get; set; } = "model";

    /// <summary>C only: fixed-point requantization so run_q needs no FPU (an approximation of PyTorch, not its numbers).</summary>
    [Parameter]
    public SwitchParameter IntegerOnly { get; set; }

    /// <summary>Replace existing files.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        var file = ParameterSetName == ModelSet ? Model!.Source : GetUnresolvedProviderPathFromPSPath(Path);
        TryItem(file, () =>
        {
            var arch = Architecture is null ? null : GetUnresolvedProviderPathFromPSPath(Architecture);
            ModelGraph graph;
            if (arch is not null) graph = ArchitectureFrontEnd.Build(file, arch);
            else
            {
                var ck = TorchCheckpoint.Load(file);
                if (ck.Kind != CheckpointKind.TorchScript)
                    throw new QuantToolsException(ErrorCode.InvalidArgument,
                        $"a {ck.Kind} checkpoint holds weights and qparams but not the forward order: give -Architecture (a YAML file, see examples/architectures)", file);
                graph = TorchScriptFrontEnd.Build(ck);
            }
            var options = new ExportOptions
            {
                Engine = QEngineInfo.Parse(Engine),
                Cpu = CpuClasses.Parse(CpuClass),
                Format = Format.Equals("Json", StringComparison.OrdinalIgnoreCase) ? ExportFormat.Json : ExportFormat.C,
                InputShape = InputShape,
                Name = Name,
                IntegerOnly = IntegerOnly,
            };
            var dir = GetUnresolvedProviderPathFromPSPath(OutputPath);
            var result = ModelExporter.Export(graph, options, dir, Force, write: true,
                confirm: p => ShouldProcess(p, $"Write {options.Format} export of '{System.IO.Path.GetFileName(file)}' ({Engine})"));
            WriteObject(result);
        });
    }
}
