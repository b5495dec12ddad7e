using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Formats;
using QuantTools.Core.Tensors;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>Reads tensors from .npy, .npz and .safetensors files.</summary>
[Cmdlet(VerbsData.Import, "QuantTensor", DefaultParameterSetName = "Path")]
[OutputType(typeof(Tensor), typeof(QTensor))]
public sealed class ImportQuantTensorCommand : QuantPathCmdlet
{
    /// <summary>Only tensors whose names match (wildcards).</summary>
    [Parameter(Position = 1)]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary>Widen float16 / bfloat16 to float32.</summary>
    [Parameter]
    public SwitchParameter WidenHalf { get; set; }

    protected override void ProcessRecord()
    {
        var patterns = Name?.Select(n => WildcardPattern.Get(n, WildcardOptions.IgnoreCase)).ToArray();
        foreach (var file in InputFiles())
        {
            TryItem(file, () =>
            {
                int matched = 0;
                foreach (var (name, value) in QTensorFile.ReadAll(file))
                {
                    if (patterns is not null && !patterns.Any(p => p.IsMatch(name))) continue;
                    matched++;
                    var v = value is Tensor t && WidenHalf && t.DType is DType.Float16 or DType.BFloat16 ? t.ToFloat32() : value;
                    var ps = TensorArgument.WithName(v, name);
                    ps.Properties.Add(new PSNoteProperty("SourcePath", file));
                    WriteObject(ps);
                }
                if (patterns is not null && matched == 0)
                    throw new QuantToolsException(ErrorCode.InvalidArgument,
                        $"no tensor matches {string.Join(", ", Name!)}", file);
            });
        }
    }
}
