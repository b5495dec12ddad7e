@{
    Synopsis    = "Computes scale and zero point exactly as a PyTorch observer would, from tensors piped in as batches."
    Description = @'
Each tensor piped to Get-QParams is one call of the observer's forward(); after the last one, Get-QParams emits one QParams object, the result of calculate_qparams(). The observers are PyTorch's, with PyTorch's names, arguments, defaults and refusals: MinMaxObserver, MovingAverageMinMaxObserver, PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver, HistogramObserver (the PyTorch 2.5+ algorithm) and FixedQParamsObserver. Scales are bit-identical to PyTorch 2.11's float32 results and zero points equal.

Without -Observer, a MinMaxObserver is used (a PerChannelMinMaxObserver when -Axis or a per-channel -QScheme is given). -Engine picks that engine's default activation observer (or, with -Weight, its weight observer), as get_default_qconfig(engine) does. -ConfigPath reads the observer and its arguments from a YAML file with PyTorch's argument names.

Infinite and NaN inputs give one outcome per observer, PyTorch's: MinMax, MovingAverageMinMax, PerChannelMinMax and MovingAveragePerChannelMinMax take +-Inf into the range, so the scale is Infinity (a warning says so; every finite value then quantizes to the zero point), and refuse NaN when the qparams are computed (an error: PyTorch asserts min <= max, which NaN fails). HistogramObserver leaves +-Inf elements out of the histogram with PyTorch's warning "torch.inf detected in input tensor, ignoring input" (only +-Inf: nothing is observed, and the defaults scale 1, zero point 0 come with a warning), and refuses NaN in the batch itself (an error, and no QParams object). FixedQParamsObserver ignores the data. A batch an observer refuses ends the command.

With -Path or -Model, Get-QParams answers "where are the activation scale and zero point, and which layer uses which": one row per layer with Name (the module path as in the state_dict; quantized ops called in FX graph code are rows named kind_N, e.g. add_0), Kind, InputScale / InputZeroPoint (the qparams of the value the layer reads, as the executor feeds it), InputLayer (the layer or quantize step producing it) and InputSource (graph: from a TorchScript file's forward or -Architecture, exact; name: an FX quantize step named after its consumer; file order: a state_dict's previous module, right for plain chains; unknown: the file cannot tell, and a warning says why), OutputScale / OutputZeroPoint (the activation qparams), the weight's dtype, qscheme, axis, scales, zero points and scale spread, HasBias, and for conv and linear the requantization multiplier per output channel M = s_in * s_w / s_out with its fixed-point form (FixedPointMultipliers, Shifts: M = m * 2^-31 * 2^-shift, as integer-only kernels use). For a C port the rows also carry IntWeight (the int8 weights, PyTorch's layout), Bias (float) and Int32Bias (per output channel, as QNNPACK computes it: rne(b * f32(1 / f32(s_in * s_w))); FBGEMM, x86 and oneDNN keep the bias in float and add b / f32(s_in * s_w) to the accumulator instead), and QAT / observer rows ObserverMin / ObserverMax (the observed ranges, per channel for weight fake-quants).

Per-channel values (WeightScales, WeightZeroPoints, Multipliers, FixedPointMultipliers, Shifts, Bias, Int32Bias, ObserverMin, ObserverMax) are lists that index and count like arrays and serialize to JSON arrays; as text they are the values joined by ';' in round-trip format, so Export-Csv keeps them and [double[]] ($row.WeightScales -split ';') reads them back bit for bit. The default table's column names InScale, InZp, OutScale, OutZp and WScale are also (hidden) text properties with significant digits: select those in Format-Table (PowerShell 7.3+ shows every double in a selected table column with two decimals).

An .onnx file in -Path gives one row per kernel ONNX Runtime's CPU provider runs after its default graph rewrites (a DQ-Conv-Q group is one QLinearConv row named after the Conv node; Kind is the ORT kernel: QuantizeLinear, QLinearConv, QGemm, QLinearMatMul, QLinearGlobalAveragePool, ...), with input, weight and output qparams and the multipliers exactly as ORT computes them in float32, f32(f32(s_x * s_w) / s_y).

-Observer OrtMinMax, OrtEntropy, OrtPercentile and OrtDistribution are ONNX Runtime's calibrators (onnxruntime.quantization.calibrate, version 1.30) with ORT's arguments and numpy's float32 arithmetic: the range comes out bit for bit as ORT's (MinVal, MaxVal) and the qparams as quantize_static's compute_scale_zp makes them (quint8 activations by default; -Dtype qint8, -ReduceRange, -ActivationSymmetric). The histogram calibrators see every piped batch as part of one collect() call, as ORT's calibrators do; the batches are written to a temporary file between the pass that finds the range and the histogram pass, so memory stays constant. -CollectPerBatch makes each batch its own collect() instead (ORT then merges histograms).

Input may be a Tensor from Import-QuantTensor, a QTensor (it is dequantized), or plain numbers: an array passed with -InputObject or piped as one item with the unary comma is one batch.
'@
    Parameters  = @{
        Path              = 'Checkpoint files (TorchScript, state_dict, legacy .pt, QAT, FX, .safetensors) or ONNX models (.onnx): one row per layer instead of an observer result. Wildcards are allowed.'
        Model             = 'A model from Import-QuantModel: one row per layer.'
        Architecture      = 'With -Path, for a state_dict: an architecture file (see examples/architectures) or a built-in architecture name (torchvision:<name>). It gives every layer its exact input (InputLayer, InputScale, InputSource graph), the parameter-free modules (ReLU6, pools) as rows, and the wiring of branches. Without it a state_dict is wired in file order (InputSource file order); where that cannot be right (branches, FX quantize steps that do not name their consumer) the input qparams are left empty (InputSource unknown) with a warning.'
        InputObject       = 'A tensor (one batch). Tensors, quantized tensors (dequantized first), numbers and arrays of numbers are accepted. A model piped in (from Import-QuantModel) gives its per-layer rows.'
        Observer          = 'The observer class: MinMax, MovingAverageMinMax, PerChannelMinMax, MovingAveragePerChannelMinMax, Histogram or FixedQParams (the PyTorch class names work too); or ONNX Runtime''s calibrators OrtMinMax, OrtEntropy, OrtPercentile, OrtDistribution.'
        NumBins           = 'ORT calibrators: num_bins (default 128 for OrtEntropy, 2048 for OrtPercentile and OrtDistribution; OrtDistribution needs at least 512).'
        NumQuantizedBins  = 'OrtEntropy: num_quantized_bins (default 128).'
        Percentile        = 'OrtPercentile: percentile (default 99.999).'
        Symmetric         = 'ORT calibrators: symmetric, a range of +-max|x| (quantize_static''s CalibTensorRangeSymmetric). OrtPercentile is symmetric by default; -Symmetric:$false turns that off.'
        ActivationSymmetric = 'ORT calibrators: symmetric qparams (quantize_static''s ActivationSymmetric): zero point 127 for quint8 over 0..254, 0 for qint8 over -127..127.'
        MovingAverage     = 'OrtMinMax: moving_average, the mean of the per-batch minima and maxima (averaging_constant applies only when ORT merges separate calibrate calls).'
        CollectPerBatch   = 'ORT histogram calibrators: every piped tensor is its own collect() call, merged as ORT''s merge_histogram does, instead of one call over all batches.'
        Dtype             = 'dtype argument: quint8 (default), qint8, qint32, quint4x2 or quint2x4 (ORT calibrators: quint8 or qint8, the activation type).'
        QScheme           = 'qscheme argument: per_tensor_affine (default), per_tensor_symmetric, per_channel_affine, per_channel_symmetric or per_channel_affine_float_qparams.'
        ReduceRange       = 'reduce_range=True: one bit less range (0..127 for quint8, -64..63 for qint8), as x86/fbgemm activations use. PyTorch refuses it with a symmetric quint8 observer, and so does this cmdlet. ORT calibrators: 0..127 / -64..64.'
        QuantMin          = 'quant_min argument: custom lower bound of the integer range (must be <= 0).'
        QuantMax          = 'quant_max argument: custom upper bound of the integer range (must be >= 0).'
        Axis              = 'ch_axis argument of the per-channel observers (default 0).'
        AveragingConstant = 'averaging_constant argument of the moving-average observers (default 0.01); also accepted by OrtMinMax.'
        Bins              = 'bins argument of HistogramObserver (default 2048).'
        Eps               = 'eps argument: the smallest scale (default float32 eps, 2^-23).'
        Engine            = "Use the default observer of this engine's qconfig: x86, fbgemm, qnnpack or onednn."
        Weight            = 'With -Engine: the default weight observer instead of the activation observer.'
        Scale             = 'scale argument of FixedQParamsObserver.'
        ZeroPoint         = 'zero_point argument of FixedQParamsObserver.'
        ConfigPath        = 'A YAML file naming the observer and its arguments with PyTorch names (observer, dtype, qscheme, reduce_range, quant_min, quant_max, eps, ch_axis, averaging_constant, bins, scale, zero_point).'
    }
    Inputs      = @(@{ Type = 'QuantTools.Core.Tensors.Tensor'; Description = 'Each piped tensor is one observer batch.' })
    Outputs     = @(
        @{ Type = 'QuantTools.Core.Tensors.QParams'; Description = 'DType, QScheme, Scales, ZeroPoints (FloatZeroPoints for float qparams), Axis, QuantMin, QuantMax; Scale and ZeroPoint for per-tensor schemes; note properties Observer, Batches, MinVal and MaxVal.' }
        @{ Type = 'QuantTools.Core.Models.LayerQParams'; Description = 'With -Path or -Model: Name, Kind, InputScale, InputZeroPoint, OutputScale, OutputZeroPoint, WeightDtype, WeightQScheme, WeightAxis, WeightScales, WeightZeroPoints, HasBias, Multipliers, FixedPointMultipliers, Shifts; note property Model (the file name).' }
    )
    Notes       = 'Scales are float32 values held as doubles, exactly as PyTorch returns them from calculate_qparams().'
    Examples    = @(
        @{
            Title   = 'Every layer''s scale and zero point in a quantized checkpoint'
            Code    = 'Get-QParams -Path ./tests/fixtures/golden/pytorch-2.11/core/models/seed_convnet.torchscript.pt | Format-Table Name, Kind, InScale, InZp, OutScale, OutZp, M'
            Remarks = 'One row per layer; InScale, InZp, OutScale, OutZp and M (the multipliers'' range) are the text twins of InputScale ... Multipliers with significant digits, for selected table columns. Conv and linear rows also carry the per-channel requantization multipliers and their fixed-point form.'
        }
        @{
            Title   = 'Export the table for a C port'
            Code    = 'Get-QParams -Path ./model.pt | Select-Object Name, OutputScale, OutputZeroPoint, FixedPointMultipliers, Shifts | ConvertTo-Json -Depth 3'
            Remarks = 'The rows pipe cleanly into ConvertTo-Json and Export-Csv; per-channel values become JSON arrays, and in CSV the values joined by ;.'
        }
        @{
            Title   = 'Which scale ONNX Runtime uses where, in an ORT-quantized model'
            Code    = 'Get-QParams -Path ./tests/fixtures/golden/pytorch-2.11/core/onnx/smallcnn.qdq_minmax_pc.onnx | Format-Table Name, Kind, InputScale, InputZeroPoint, OutputScale, OutputZeroPoint, WeightScaleMin, WeightScaleMax'
            Remarks = 'Rows for QuantizeLinear, three QLinearConv (the DQ-Conv-Q groups ORT fuses), QLinearGlobalAveragePool, QGemm and DequantizeLinear.'
        }
        @{
            Title   = 'ONNX Runtime''s entropy calibrator over calibration batches'
            Code    = 'Import-QuantTensor ./calib.npz | Get-QParams -Observer OrtEntropy -NumBins 2048 -NumQuantizedBins 128'
            Remarks = 'The KL-divergence threshold exactly as onnxruntime.quantization computes it, and the quint8 qparams quantize_static would write for it.'
        }
        @{
            Title   = 'MinMaxObserver over a few numbers'
            Code    = 'Get-QParams -InputObject @(-1.0, 0.5, 3.0)'
            Remarks = 'scale = 4/255 = 0.0156862754, zero point 64 (quint8, per_tensor_affine), exactly PyTorch''s MinMaxObserver result.'
        }
        @{
            Title   = 'The x86 engine''s default activation observer over calibration batches'
            Code    = 'Import-QuantTensor ./calib.npz | Get-QParams -Engine x86'
            Remarks = 'Every tensor in the file is one batch of a HistogramObserver(reduce_range=True), as get_default_qconfig("x86") builds it.'
        }
        @{
            Title   = 'Per-channel weight qparams'
            Code    = 'Import-QuantTensor ./weights.safetensors -Name conv1.weight | Get-QParams -Observer PerChannelMinMax -Dtype qint8 -QScheme per_channel_symmetric -Axis 0'
            Remarks = 'One scale per output channel; zero points are 0 for the symmetric scheme.'
        }
    )
    Links       = @('ConvertTo-Quantized', 'Import-QuantTensor')
}
