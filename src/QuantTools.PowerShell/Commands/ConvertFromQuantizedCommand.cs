using System.Management.Automation;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>Dequantizes quantized tensors exactly as PyTorch's dequantize() does.</summary>
[Cmdlet(VerbsData.ConvertFrom, "Quantized")]
[OutputType(typeof(Tensor))]
public sealed class ConvertFromQuantizedCommand : QuantCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    public object? InputObject { get; set; }

    protected override void ProcessRecord()
    {
        TryItem(InputObject, () =>
        {
            var y = Quantizer.Dequantize(TensorArgument.ToQTensor(InputObject));
            var name = TensorArgument.NameOf(InputObject);
            WriteObject(name is null ? y : TensorArgument.WithName(y, name));
        });
    }
}
