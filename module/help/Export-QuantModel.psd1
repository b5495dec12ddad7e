@{
    Synopsis    = 'Writes a quantized PyTorch model as C99 code that gives PyTorch''s integers bit for bit on a device, or as a JSON of every layer''s integer parameters.'
    Description = @'
Builds the model graph (TorchScript file, or an eager state_dict with -Architecture), walks it for the given -InputShape under the chosen engine's arithmetic and writes, into -OutputPath:

-Format C (default): <Name>.h (MODEL_INPUT_COUNT, MODEL_OUTPUT_COUNT, input / output qparams, <name>_scratch_size, <name>_run for float NCHW in and out, exactly what the PyTorch forward takes and returns, and <name>_run_q from the quantized input to the quantized output), <Name>.c (the layer sequence), <Name>_weights.c (const int8 weights, int32 / float biases, per-channel multipliers, tables) and qt_kernels.h / qt_kernels.c (portable reference kernels for conv incl. groups, depthwise, stride, dilation, padding and transposed conv, linear, add / add_relu / mul, cat, relu / relu6 / hardtanh / clamp, hardswish / hardsigmoid / sigmoid / tanh / leaky_relu / elu and the scalar add / mul as 256-entry tables, max / avg / adaptive avg pool, mean, flatten, view, transpose, chunk, channel_shuffle). C99, no malloc, no writable globals; clean with gcc -std=c99 -Wall -Wextra -Werror -O2. Compile with -ffp-contract=off: PyTorch rounds every float operation separately, and a contracted multiply-add rounds once. Add -DQT_DUMP=dir to make every layer write its output as dir/<layer>.npy, for Compare-QuantOutput against Invoke-QuantModel's dumps.

-Format Json: <Name>.json with every layer's op, input / output qparams, weight qparams, clamp bounds in the quantized domain, int32 or float bias, requantization multiplier as float and as (int32, shift) with the rounding rule and the exact formula; weights, biases and tables in <Name>.safetensors. The schema is src/QuantTools.Core/Export/JsonSchema.md.

The numbers come from QuantTools' own engine profiles (the ones Invoke-QuantModel runs): conv / linear weights prepacked and requantized as the engine does (qnnpack: int32 bias and the float multiplier f32(s_w*s_in)*f32(1/s_out); fbgemm / x86 / onednn: float bias in accumulator units; FBGEMM's depthwise kernel and fbgemm-avx2 saturate u8 x s8 product pairs to int16), QNNPACK's fixed-point add, activation tables made by running the kernels on all 256 inputs, and the memory-format dependent paths (channels_last pooling and cat, element-wise vector blocks and scalar tails). PyTorch's integers need float32 arithmetic for every engine (qnnpack's conv requantization included), so FpuNeeded is True for them: the C does the same float32 operations in the same order.

-IntegerOnly trades exactness for an FPU-free run_q (see the parameter); without it the export is PyTorch's arithmetic.

An op the exporter cannot express (dynamic quantized linear, for one) is an error naming the layer and the op, and nothing is written. Existing files are replaced only with -Force; -WhatIf lists the files without writing.
'@
    Parameters  = @{
        Path         = 'The model file: a TorchScript archive, or an eager state_dict (with -Architecture).'
        Model        = 'A model from Import-QuantModel (its source file is exported).'
        Architecture = 'For an eager state_dict: the YAML file listing the modules in forward order (see examples/architectures).'
        Engine       = 'The engine whose arithmetic the code reproduces: x86 (default), fbgemm, qnnpack, onednn or fbgemm-avx2.'
        CpuClass     = 'The CPU class whose PyTorch the code reproduces: avx512-vnni (default, the golden data''s host), avx2 (no AVX-512 and no VNNI: x86 convs on FBGEMM, int16 pair saturation in FBGEMM and oneDNN, half-width ATen vector blocks), or host (this machine''s class). fbgemm-avx2 always means avx2.'
        Format       = 'C (default): C99 sources. Json: the layer parameters as JSON plus a .safetensors file.'
        InputShape   = 'The float input''s shape with the batch, NCHW, e.g. 1,3,224,224. The code is made for this shape.'
        OutputPath   = 'The folder to write into (created when missing).'
        Name         = 'Prefix of the file names and of the C identifiers (model: model.h, model_run, MODEL_INPUT_COUNT). A C identifier.'
        Force        = 'Replace files that exist.'
        IntegerOnly  = 'C only, not the default: requantize with fixed-point multipliers (int32 multiplier and shift, gemmlowp rounding), int32 biases and QNNPACK''s fixed-point add, so <name>_run_q needs no FPU. This is an approximation, not PyTorch''s numbers: on the golden models outputs differ by up to 2 LSB (seed_convnet x86: 691 of 2304 outputs; qnnpack: 4 of 2304 by 1 LSB). Ops with a float tensor inside the model (a dequantize / quantize pair) are refused.'
    }
    Inputs      = @(@{ Type = 'QuantTools.Core.Models.QuantModel'; Description = 'A model from Import-QuantModel.' })
    Outputs     = @(@{ Type = 'QuantTools.Core.Export.ExportResult'; Description = 'Name, Engine, Format, InputShape, OutputShape, FlashBytes (constant data), RamBytes (scratch), LayerCount, FpuNeeded, Files, Written, Plan.' })
    Examples    = @(
        @{
            Title   = 'The forum thread''s network as C for a qnnpack device'
            Code    = 'Export-QuantModel ./tests/fixtures/golden/pytorch-2.11/core/engines/relu6_eager_qnnpack.torchscript.pt -Engine qnnpack -Format C -InputShape 1,3,20,20 -OutputPath ./out; gcc -std=c99 -Wall -Wextra -Werror -O2 -ffp-contract=off -c ./out/*.c'
            Remarks = 'Writes model.h, model.c, model_weights.c, qt_kernels.h and qt_kernels.c, and prints the flash and RAM bytes, the layer count and whether an FPU is needed.'
        }
        @{
            Title   = 'Every layer''s integer parameters as JSON'
            Code    = 'Import-QuantModel ./tests/fixtures/golden/pytorch-2.11/core/models/relu6_eager.torchscript.pt | Export-QuantModel -Engine qnnpack -Format Json -InputShape 1,3,20,20 -OutputPath ./out'
            Remarks = 'model.json holds each layer''s qparams, clamp bounds, int32 biases and multipliers (float and int32 with shift); model.safetensors the weights.'
        }
        @{
            Title   = 'Which files would be written'
            Code    = 'Export-QuantModel ./model.pt -InputShape 1,3,224,224 -OutputPath ./out -WhatIf'
            Remarks = 'One "What if" line per file; nothing is written.'
        }
        @{
            Title   = 'Compare a device''s layer dumps with QuantTools'' own run'
            Code    = 'gcc -std=c99 -O2 -ffp-contract=off -DQT_DUMP=dumps main.c out/*.c -o net; ./net; Import-QuantTensor ./input.npy | Invoke-QuantModel ./model.pt -Engine qnnpack -OutputPath ./ours; Compare-QuantOutput -Reference ./ours -Difference ./dumps -Summary'
            Remarks = 'The C writes dumps/<layer>.npy; FirstDivergingLayer names the first layer that differs.'
        }
    )
    Links       = @('Import-QuantModel', 'Invoke-QuantModel', 'Compare-QuantOutput', 'Get-QParams')
}
