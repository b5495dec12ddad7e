@{
    Synopsis    = "Computes scale and zero point exactly as a PyTorch observer would, from tensors piped in as batches."
    Description = @'
Each tensor piped to Get-QParams is one call of the observer's forward(); after the last one, Get-QParams emits one QParams object, the result of calculate_qparams(). The observers are PyTorch's, with PyTorch's names, arguments, defaults and refusals: MinMaxObserver, MovingAverageMinMaxObserver, PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver, HistogramObserver (the PyTorch 2.5+ algorithm) and FixedQParamsObserver. Scales are bit-identical to PyTorch 2.11's float32 results and zero points equal.

Without -Observer, a MinMaxObserver is used (a PerChannelMinMaxObserver when -Axis or a per-channel -QScheme is given). -Engine picks that engine's default activation observer (or, with -Weight, its weight observer), as get_default_qconfig(engine) does. -ConfigPath reads the observer and its arguments from a YAML file with PyTorch's argument names.

Input may be a Tensor from Import-QuantTensor, a QTensor (it is dequantized), or plain numbers: an array passed with -InputObject or piped as one item with the unary comma is one batch.
'@
    Parameters  = @{
        InputObject       = 'A tensor (one batch). Tensors, quantized tensors (dequantized first), numbers and arrays of numbers are accepted.'
        Observer          = 'The observer class: MinMax, MovingAverageMinMax, PerChannelMinMax, MovingAveragePerChannelMinMax, Histogram or FixedQParams (the PyTorch class names work too).'
        Dtype             = 'dtype argument: quint8 (default), qint8, qint32, quint4x2 or quint2x4.'
        QScheme           = 'qscheme argument: per_tensor_affine (default), per_tensor_symmetric, per_channel_affine, per_channel_symmetric or per_channel_affine_float_qparams.'
        ReduceRange       = 'reduce_range=True: one bit less range (0..127 for quint8, -64..63 for qint8), as x86/fbgemm activations use. PyTorch refuses it with a symmetric quint8 observer, and so does this cmdlet.'
        QuantMin          = 'quant_min argument: custom lower bound of the integer range (must be <= 0).'
        QuantMax          = 'quant_max argument: custom upper bound of the integer range (must be >= 0).'
        Axis              = 'ch_axis argument of the per-channel observers (default 0).'
        AveragingConstant = 'averaging_constant argument of the moving-average observers (default 0.01).'
        Bins              = 'bins argument of HistogramObserver (default 2048).'
        Eps               = 'eps argument: the smallest scale (default float32 eps, 2^-23).'
        Engine            = "Use the default observer of this engine's qconfig: x86, fbgemm, qnnpack or onednn."
        Weight            = 'With -Engine: the default weight observer instead of the activation observer.'
        Scale             = 'scale argument of FixedQParamsObserver.'
        ZeroPoint         = 'zero_point argument of FixedQParamsObserver.'
        ConfigPath        = 'A YAML file naming the observer and its arguments with PyTorch names (observer, dtype, qscheme, reduce_range, quant_min, quant_max, eps, ch_axis, averaging_constant, bins, scale, zero_point).'
    }
    Inputs      = @(@{ Type = 'QuantTools.Core.Tensors.Tensor'; Description = 'Each piped tensor is one observer batch.' })
    Outputs     = @(@{ Type = 'QuantTools.Core.Tensors.QParams'; Description = 'DType, QScheme, Scales, ZeroPoints (FloatZeroPoints for float qparams), Axis, QuantMin, QuantMax; Scale and ZeroPoint for per-tensor schemes; note properties Observer, Batches, MinVal and MaxVal.' })
    Notes       = 'Scales are float32 values held as doubles, exactly as PyTorch returns them from calculate_qparams().'
    Examples    = @(
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
