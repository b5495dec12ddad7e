@{
    Synopsis    = 'Compares a reference run with another runtime layer by layer: metrics, the first diverging layer, and why.'
    Description = @'
Pairs the layers of -Reference (model order) with those of -Difference and emits one ComparisonResult per layer: SQNR in dB (20 log10(||x|| / ||x - y||), as PyTorch's Numeric Suite computes it; +inf when equal), MSE, max and mean absolute error, cosine similarity, and for quantized tensors MaxLsb (max |difference| in integer steps) and ExactRatio (share of equal integers); top-1 / top-k agreement along the last dim for logits (tensors of rank 1 or 2, or any rank with -TopK).

Inputs can be tensors or quantized tensors, dictionaries of layer name -> tensor, model results with captured layers (a Layers property), folders of .npy files named by layer (as TVM's debug executor or ONNX Runtime write them), .safetensors / .npz files of per-layer dumps, or a golden model JSON (its per-layer quantized outputs). A plain integer tensor compared with a quantized one is read on the quantized side's grid; a float tensor compared with a quantized one is also quantized onto that grid for the LSB metrics.

Layers are matched by name (exactly, then ignoring case and separators, then by name tokens: act/conv1/int matches conv1), through -LayerMap, and by position as a last resort; MatchedBy says which. A layer fails below -MinSqnr or above -MaxLsb; without either threshold it passes only when exact. Each failing layer gets hints (Cause, Confidence, Evidence with counts): RoundingMode, ClampBound, ZeroPoint, PerChannelScale, BiasQuantization, Int16Saturation, QParams, Inherited (its input already differs, so look upstream) or Unknown.

Shapes must agree (size-1 dims are ignored); a mismatch is a non-terminating error that names the layer and both shapes. A comparison of nothing (no layer could be paired, or every paired layer is a shape error) is a terminating error, never an empty pass; when one side is a whole batch and the other a golden file's single element, the error suggests -BatchIndex 0. Should -BeQuantEqual and -HaveSqnrAbove take -BatchIndex too and fail on an empty comparison.
'@
    Parameters  = @{
        Reference    = 'The reference run: a tensor, quantized tensor, dictionary of layer name -> tensor, an object with a Layers property, or a path to a folder of .npy files, a .safetensors / .npz file of per-layer dumps, or a golden model JSON.'
        Difference   = 'The run to check, in any form -Reference takes. Accepts pipeline input; several piped tensors are treated as a list of layers (named by their Name property).'
        LayerMap     = 'Pairs layers whose names differ: a hashtable of name -> name (either direction) or regex rules applied to either side''s names (pattern -> replacement, e.g. @{ ''tvmgen_(.*)'' = ''$1'' }).'
        MinSqnr      = 'A layer fails when its SQNR (dB) is below this.'
        MaxLsb       = 'A layer fails when an integer differs by more than this many steps.'
        TopK         = 'k for the top-k agreement along the last dim (default min(5, last dim)); also computes it for tensors of any rank.'
        FloatInput   = 'A hashtable of reference layer name -> the float tensor that layer quantized, so that rounding midpoints can be checked (filled in automatically from a golden JSON for its Quantize layer).'
        ChannelAxis  = 'The channel axis for the per-channel hints (default 1).'
        BatchIndex   = 'Compare only this element of every batch: each side''s tensors of rank 2 or more with a first dimension above 1 are cut to that element (shape [1, ...]). A golden model JSON records input 0 of every layer, so compare a whole-batch run with it using -BatchIndex 0.'
        Summary      = 'Emit one ComparisonSummary (FirstDivergingLayer, Cause, Hint, counts, Results) instead of the per-layer results.'
        Report       = 'Also write a report to this .html or .md file: the per-layer table, an SQNR-per-layer chart and a histogram of integer differences as inline SVG.'
    }
    Inputs      = @(@{ Type = 'System.Object'; Description = 'The Difference side: tensors, quantized tensors or paths.' })
    Outputs     = @(
        @{ Type = 'QuantTools.Core.Compare.ComparisonResult'; Description = 'Layer, Sqnr, Mse, MaxAbsError, MeanAbsError, Cosine, MaxLsb, ExactRatio, Top1Agreement, TopKAgreement, Passed, FirstBad, Hints (Cause, Confidence, Evidence), MatchedBy.' }
        @{ Type = 'QuantTools.Core.Compare.ComparisonSummary'; Description = 'With -Summary: FirstDivergingLayer, Cause, Hint, Layers, Passed, Failed, WorstSqnr, Alignment, Results.' }
    )
    Examples    = @(
        @{
            Title   = 'A whole-batch run against a golden model file'
            Code    = '$run = Invoke-QuantModel ./relu6_eager.torchscript.pt -InputObject (Import-QuantTensor ./relu6_eager.safetensors -Name input) -CaptureLayers; Compare-QuantOutput $run ./relu6_eager.json -BatchIndex 0 -Summary'
            Remarks = 'The golden file holds every layer for input 0; -BatchIndex 0 compares batch element 0 of the run with it. Without it every layer is a shape error and the command stops with "nothing was compared".'
        }
        @{
            Title   = 'Find the first layer where a backend diverges from PyTorch'
            Code    = 'Compare-QuantOutput -Reference ./models/relu6_eager.json -Difference ./tvm_dump/ -MaxLsb 1 -Summary'
            Remarks = 'The golden JSON holds PyTorch''s per-layer quantized outputs; the folder holds one .npy per layer. The summary names the first layer off by more than 1 LSB and the likely cause.'
        }
        @{
            Title   = 'Quantization error against the float model'
            Code    = @'
$f = './tests/fixtures/golden/pytorch-2.11/core/models/relu6_eager.safetensors'
Compare-QuantOutput (Import-QuantTensor $f -Name float_output) (Import-QuantTensor $f -Name output) -MinSqnr 30
'@
            Remarks = 'Two float tensors: SQNR, cosine and top-1 / top-k agreement of the logits.'
        }
        @{
            Title   = 'Names that differ, and a report'
            Code    = 'Compare-QuantOutput $golden $onnxDump -LayerMap @{ ''(.*)_output_0'' = ''$1'' } -MinSqnr 35 -Report ./compare.html'
            Remarks = 'Regex rules map the runtime''s names to PyTorch''s module names; the HTML report has the table and both charts.'
        }
    )
    Links       = @('Import-QuantTensor', 'Test-QuantConformance', 'Register-QuantShouldOperator')
}
