@{
    Synopsis    = 'Runs a quantized PyTorch model from its TorchScript file with integer arithmetic identical to a PyTorch engine''s.'
    Description = @'
Builds the model graph from the TorchScript archive (the module tree and the forward code TorchScript saved: quantized modules, torch.ops.quantized and aten calls, helper functions), prepacks the weights once, and runs every input batch with QuantTools' kernels under the chosen engine profile: x86 (the default; sends conv to oneDNN where PyTorch does), fbgemm, qnnpack, onednn, or fbgemm-avx2 (fbgemm as on CPUs without VNNI, where u8 x s8 product pairs saturate to int16).

PyTorch's results depend on the CPU it runs on, and -CpuClass says which: avx512-vnni (the default; the golden data came from such an Intel Xeon), avx2 (AVX2 + FMA without AVX-512, e.g. AMD Zen 2/3: the x86 engine then sends every conv to FBGEMM, FBGEMM and oneDNN saturate u8 x s8 product pairs to int16, and ATen's element-wise and pooling kernels use half the vector width, which moves their vector/scalar split), or host (this machine's class, what -Engine libtorch computes here). Our kernels give the same answer for a class on any machine.

Each piped tensor, each -InputObject, and each tensor in the -InputPath files is one batch; one result per batch comes out, with the float Output, the QuantizedOutput where the model ends quantized, and with -CaptureLayers every layer's quantized output and qparams by layer name (the module path, as in the state_dict). -OutputPath writes the output and the captured layers as one .safetensors file (qparams kept) or as a folder of .npy files named by layer.

-Engine libtorch runs the same TorchScript file through libtorch itself, in-process (torch.jit.load and forward through TorchSharp, libtorch's default x86 engine, torch.set_num_threads from -ThrottleLimit): PyTorch's own answer for any input, as a second opinion. It gives no per-layer capture (libtorch runs forward as one call): with -CaptureLayers it warns and Layers stays empty. The module loads QuantTools.Torch and libtorch (module/bin/torch, linux-x64 only) only when this engine is asked for; where it is missing or cannot load, the error says why.

An .onnx file runs with ONNX Runtime 1.30's CPU arithmetic (-Engine ort, the default for .onnx): the graph is first rewritten as ORT's default optimization level does (int8 Q/DQ activation pairs to uint8 on x86, Relu / Clip before a Q dropped where the Q clips, DQ-op-Q groups fused into QLinearConv, QGemm, QLinearMatMul, QLinearAdd, QLinearConcat, QLinearGlobalAveragePool, ...), then every kernel runs with MLAS's requantization (float multiplier, clamp, round half to even) and its dividing QuantizeLinear. The integers are those of VNNI / AMX hosts (exact int32 dot products); -CaptureLayers keeps every quantized value by its name in the file. -Engine onnxruntime runs the file through ONNX Runtime itself, in-process (QuantTools.OnnxRuntime, loaded only then), with per-node capture by adding graph outputs.

An op or construct the graph builder does not support is an error that names it and the source line; nothing is skipped silently. Ctrl+C stops between layers.
'@
    Parameters  = @{
        Path          = 'The TorchScript file (torch.jit.save of a scripted or traced quantized model).'
        Model         = 'A model from Import-QuantModel (its source file is run).'
        Architecture  = 'For an eager state_dict (.pt, zip or legacy): a YAML file that lists the modules in forward order, what each does, its hyperparameters and, for residual adds and cats, its inputs. A state_dict holds only weights and qparams. Examples for the golden models: examples/architectures/seed_convnet.yaml and relu6_eager.yaml.'
        InputObject   = 'An input batch: a float tensor (e.g. from Import-QuantTensor), or numbers.'
        InputPath     = 'Tensor files (.npy, .npz, .safetensors); every tensor in them is one batch.'
        Engine        = 'The engine whose arithmetic to reproduce: x86 (default), fbgemm, qnnpack, onednn or fbgemm-avx2; or libtorch, to run the file through libtorch itself in-process (no per-layer capture). For .onnx files: ort (default: ONNX Runtime 1.30''s CPU arithmetic after its default graph rewrites) or onnxruntime (ONNX Runtime itself, in-process, from module/bin/onnxruntime).'
        CpuClass      = 'The CPU class whose PyTorch to reproduce: avx512-vnni (default), avx2, or host (this machine''s class).'
        NoGraphOptimization = '.onnx files: run the graph as written (ORT_DISABLE_ALL) instead of after ONNX Runtime''s default fusions (ORT_ENABLE_ALL). QDQ graphs then run their float ops between DQ and Q.'
        CaptureLayers = 'Keep every layer''s quantized output with its qparams (the Layers property).'
        OutputPath    = 'Write the output and every layer: a .safetensors file, or a folder of .npy files named by layer (batchN subfolders after the first batch).'
        ThrottleLimit = 'How many threads the kernels may use (default: all cores); with -Engine libtorch, torch.set_num_threads. The results do not depend on it.'
    }
    Inputs      = @(@{ Type = 'QuantTools.Core.Tensors.Tensor'; Description = 'Input batches.' })
    Outputs     = @(@{ Type = 'QuantTools.Core.Models.Execution.ModelResult'; Description = 'Output (float), QuantizedOutput, Outputs, Layers (Name, Kind, Value, QParams); note properties Batch, Engine, CpuClass, InputName (and EngineDetail, e.g. "libtorch 2.10.0.0 (x86)", with -Engine libtorch).' })
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
            Title   = 'Second opinion from libtorch on a random input'
            Code    = '$m = ''./tests/fixtures/golden/pytorch-2.11/core/models/seed_convnet.torchscript.pt''; $x = Import-QuantTensor ./tests/fixtures/golden/pytorch-2.11/core/models/seed_convnet.safetensors -Name input; $ours = Invoke-QuantModel $m -InputObject $x; $lt = Invoke-QuantModel $m -InputObject $x -Engine libtorch; [Linq.Enumerable]::SequenceEqual([float[]]$ours.Output.Data, [float[]]$lt.Output.Data)'
            Remarks = 'True on an AVX512-VNNI CPU, where libtorch''s x86 engine takes the same paths as the default x86 profile; on another CPU add -CpuClass host to the first call.'
        }
        @{
            Title   = 'Reproduce PyTorch as it runs on an AVX2 machine'
            Code    = '$m = ''./tests/fixtures/golden/pytorch-2.11/core/models''; Import-QuantTensor "$m/relu6_eager.safetensors" -Name input | Invoke-QuantModel "$m/relu6_eager.torchscript.pt" -Engine onednn -CpuClass avx2'
            Remarks = 'oneDNN''s int16 pair saturation and ATen''s AVX2 vector widths, whatever CPU runs the command.'
        }
        @{
            Title   = 'Dump every layer for a comparison with another runtime'
            Code    = 'Import-QuantTensor ./input.npy | Invoke-QuantModel ./model.torchscript.pt -Engine qnnpack -OutputPath ./dumps'
            Remarks = 'Writes ./dumps/<layer>.npy (int_repr of each layer) and ./dumps/output.npy.'
        }
        @{
            Title   = 'An ORT-quantized ONNX model, as ONNX Runtime computes it, and ONNX Runtime itself as the second opinion'
            Code    = '$d = ''./tests/fixtures/golden/pytorch-2.11/core/onnx''; $x = Import-QuantTensor "$d/onnx.safetensors" -Name input; $ours = Invoke-QuantModel "$d/smallcnn.qdq_minmax_pc.onnx" -InputObject $x -CaptureLayers; $ours.Layers | Format-Table Name, Kind, Scale, ZeroPoint; Invoke-QuantModel "$d/smallcnn.qdq_minmax_pc.onnx" -InputObject $x -Engine onnxruntime -CaptureLayers'
            Remarks = 'Both runs list the same quantized values (QuantizeLinear, each QLinearConv, QLinearGlobalAveragePool, QGemm outputs by value name) with the same integers where the CPU has VNNI; without VNNI ONNX Runtime saturates u8 x s8 pairs to int16 (Test-QuantModel warns about that).'
        }
    )
    Links       = @('Import-QuantModel', 'Get-QParams')
}
