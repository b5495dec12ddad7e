using System.Management.Automation;
using QuantTools.Core.Models;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>Loads a quantized model (TorchScript, state_dict, legacy .pt, QAT or FX checkpoint) without Python.</summary>
[Cmdlet(VerbsData.Import, "QuantModel", DefaultParameterSetName = PathSet)]
[OutputType(typeof(QuantModel))]
public sealed class ImportQuantModelCommand : QuantCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath")]
    public string[] LiteralPath { get; set; } = [];

    protected override void ProcessRecord()
    {
        bool literal = ParameterSetName == LiteralPathSet;
        foreach (var file in ResolvePaths(literal ? LiteralPath : Path, literal))
            TryItem(file, () => WriteObject(ModelLoader.Load(file)));
    }
}
