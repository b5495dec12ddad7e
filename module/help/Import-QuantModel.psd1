@{
    Synopsis    = 'Loads a quantized PyTorch model from its checkpoint file, without Python and without running anything from the file.'
    Description = @'
Reads TorchScript archives (torch.jit.save), torch.save state_dicts (zip and legacy formats), QAT checkpoints before convert (FakeQuantize buffers), FX-converted models (root qparams buffers) and dynamic-quantized models, and returns a model object: its layers in forward order with each layer's kind, activation qparams, quantized weight and bias.

Pickled data is read by QuantTools' own unpickler, which resolves globals against an allow-list of what PyTorch checkpoints contain; anything else (os.system, builtins.eval, an unknown class) is an error that names it, and nothing from the file is executed. Sizes are checked against the file before anything is allocated.

A TorchScript file names every module's class (ConvReLU2d, ReLU6, QFunctional...). A state_dict names only modules with parameters or buffers and cannot tell a fused ConvReLU2d from a Conv2d; its key order is the module order.
'@
    Parameters  = @{
        Path        = 'Checkpoint files. Wildcards are allowed.'
        LiteralPath = 'Checkpoint files, without wildcard expansion.'
    }
    Inputs      = @(@{ Type = 'System.String'; Description = 'Paths, by value or by property name.' })
    Outputs     = @(@{ Type = 'QuantTools.Core.Models.QuantModel'; Description = 'Source, Form (torchscript, state_dict, legacy, qat, fx), Layers (Name, Kind, TypeName, OutputScale, OutputZeroPoint, Weight, Bias, Attributes).' })
    Examples    = @(
        @{
            Title   = 'Load a TorchScript model and list its layers'
            Code    = '(Import-QuantModel ./tests/fixtures/golden/pytorch-2.11/core/models/relu6_eager.torchscript.pt).Layers | Format-Table Name, Kind, OutScale, OutZp'
            Remarks = 'Shows quant, conv1, relu6, conv2, hardtanh, pool, fc and dequant with their activation qparams.'
        }
        @{
            Title   = 'Load every checkpoint of a QAT run'
            Code    = 'Get-ChildItem ./checkpoints/*.pt | Import-QuantModel | ForEach-Object { Get-QParams -Model $_ }'
            Remarks = 'One row per layer and checkpoint; the Model property names the file.'
        }
    )
    Links       = @('Get-QParams', 'Test-QuantModel')
}
