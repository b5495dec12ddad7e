using System.Management.Automation;
using QuantTools.Core.Models;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>Loads a quantized model (TorchScript, state_dict, legacy .pt, QAT or FX checkpoint) without Python.</summary>
[Cmdlet(VerbsData.Import, "QuantModel", DefaultParameterSetName = "Path")]
[OutputType(typeof(QuantModel))]
public sealed class ImportQuantModelCommand : QuantPathCmdlet
{
    protected override void ProcessRecord()
    {
        foreach (var file in InputFiles())
            TryItem(file, () => WriteObject(ModelLoader.Load(file)));
    }
}
