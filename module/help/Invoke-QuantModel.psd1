@{
    Synopsis    = 'Runs a quantized PyTorch model from its TorchScript file with integer arithmetic identical to a PyTorch engine''s.'
    Description = @'
Builds the model graph from the TorchScript archive (the module tree and the forward code TorchScript saved: quantized modules, torch.ops.quantized and aten calls, helper functions), prepacks the weights once, and runs every input batch with QuantTools' kernels under the chosen engine profile: x86 (the default; sends conv to oneDNN where PyTorch does), fbgemm, qnnpack, onednn, or fbgemm-avx2 (fbgemm as on CPUs without VNNI, where u8 x s8 product pairs saturate to int16).

Each piped tensor, each -InputObject, and each tensor in the -InputPath files is one batch; one result per batch comes out, with the float Output, the QuantizedOutput where the model ends quantized, and with -CaptureLayers every layer's quantized output and qparams by layer name (the module path, as in the state_dict). -OutputPath writes the output and the captured layers as one .safetensors file (qparams kept) or as a folder of .npy files named by layer.

An op or construct the graph builder does not support is an error that names it and the source line; nothing is skipped silently. Ctrl+C stops between layers.
'@
    Parameters  = @{
        Path          = 'The TorchScript file (torch.jit.save of a scripted or traced quantized model).'
        Model         = 'A model from Import-QuantModel (its source file is run).'
        Architecture  = 'For an eager state_dict (.pt, zip or legacy): a YAML file that lists the modules in forward order, what each does, its hyperparameters and, for residual adds and cats, its inputs. A state_dict holds only weights and qparams. Examples for the golden models: examples/architectures/seed_convnet.yaml and relu6_eager.yaml.'
        InputObject   = 'An input batch: a float tensor (e.g. from Import-QuantTensor), or numbers.'
        InputPath     = 'Tensor files (.npy, .npz, .safetensors); every tensor in them is one batch.'
        Engine        = 'The engine whose arithmetic to reproduce: x86 (default), fbgemm, qnnpack, onednn or fbgemm-avx2.'
        CaptureLayers = 'Keep every layer''s quantized output with its qparams (the Layers property).'
        OutputPath    = 'Write the output and every layer: a .safetensors file, or a folder of .npy files named by layer (batchN subfolders after the first batch).'
        ThrottleLimit = 'How many threads the kernels may use (default: all cores). The results do not depend on it.'
    }
    Inputs      = @(@{ Type = 'QuantTools.Core.Tensors.Tensor'; Description = 'Input batches.' })
    Outputs     = @(@{ Type = 'QuantTools.Core.Models.Execution.ModelResult'; Description = 'Output (float), QuantizedOutput, Outputs, Layers (Name, Kind, Value, QParams); note properties Batch, Engine, InputName.' })
    Examples    = @(
        @{
            Title   = 'Run the forum thread''s network on its golden input'
            Code    = '$m = ''./tests/fixtures/golden/pytorch-2.11/core/models''; Import-QuantTensor "$m/seed_convnet.safetensors" -Name input | Invoke-QuantModel "$m/seed_convnet.torchscript.pt" -CaptureLayers'
            Remarks = 'The output and every layer equal PyTorch 2.11''s bit for bit under the x86 engine.'
        }
        @{
            Title   = 'Run an eager state_dict with its architecture file'
            Code    = '$m = ''./tests/fixtures/golden/pytorch-2.11/core/models''; Import-QuantTensor "$m/relu6_eager.safetensors" -Name input | Invoke-QuantModel "$m/relu6_eager.state_dict.pt" -Architecture ./examples/architectures/relu6_eager.yaml'
            Remarks = 'The same output as the TorchScript file gives, bit for bit.'
        }
        @{
            Title   = 'Dump every layer for a comparison with another runtime'
            Code    = 'Import-QuantTensor ./input.npy | Invoke-QuantModel ./model.torchscript.pt -Engine qnnpack -OutputPath ./dumps'
            Remarks = 'Writes ./dumps/<layer>.npy (int_repr of each layer) and ./dumps/output.npy.'
        }
    )
    Links       = @('Import-QuantModel', 'Get-QParams')
}
