@{
    Synopsis    = 'Quantizes tensors bit for bit as torch.quantize_per_tensor / quantize_per_channel do, or fake-quantizes them.'
    Description = @'
Quantizes each piped tensor with explicit qparams (-Scale, -ZeroPoint, -Dtype, and -Axis for per-channel), with a QParams object (-QParams, e.g. from Get-QParams), or with an observer calibrated on that tensor (-Observer, -Engine or -ConfigPath). The integers equal PyTorch 2.11's: the input is multiplied by the float32 reciprocal of the scale, rounded half to even, offset by the zero point and saturated, including PyTorch's behaviour for infinities and NaN.

With -FakeQuantize the result is the float tensor torch.fake_quantize_per_tensor_affine (or _per_channel_affine, which rounds half away from zero with the zero point added first) returns, using -QuantMin/-QuantMax when given.
'@
    Parameters  = @{
        InputObject       = 'The tensor to quantize: a Tensor, numbers or an array of numbers.'
        Scale             = 'The scale, or one scale per channel along -Axis.'
        ZeroPoint         = 'The zero point, or one per channel (default 0). Fractional values are only allowed with per_channel_affine_float_qparams.'
        QParams           = 'A QParams object (from Get-QParams, or a QTensor''s QParams property).'
        Observer          = 'Calibrate this observer on each tensor, then quantize with its qparams (see Get-QParams).'
        Engine            = 'Calibrate the default observer of this engine (x86, fbgemm, qnnpack, onednn) on each tensor.'
        Weight            = 'With -Engine: use the engine''s default weight observer.'
        ConfigPath        = 'Calibrate the observer described by this YAML file (see Get-QParams -ConfigPath).'
        Dtype             = 'quint8 (default), qint8, qint32, quint4x2 or quint2x4.'
        QScheme           = 'The qscheme; per-tensor affine by default, per-channel affine when several scales or -Axis are given.'
        Axis              = 'The channel axis for per-channel quantization.'
        QuantMin          = 'Lower integer bound (fake quant and observers; default: the dtype''s range).'
        QuantMax          = 'Upper integer bound (fake quant and observers; default: the dtype''s range).'
        ReduceRange       = 'reduce_range for the observer.'
        AveragingConstant = 'averaging_constant for a moving-average observer.'
        Bins              = 'bins for HistogramObserver.'
        Eps               = 'eps for the observer.'
        FakeQuantize      = 'Return the fake-quantized float tensor instead of a quantized tensor.'
    }
    Inputs      = @(@{ Type = 'QuantTools.Core.Tensors.Tensor'; Description = 'Tensors to quantize.' })
    Outputs     = @(
        @{ Type = 'QuantTools.Core.Tensors.QTensor'; Description = 'IntRepr (the integers), QParams, DType, Shape.' }
        @{ Type = 'QuantTools.Core.Tensors.Tensor'; Description = 'With -FakeQuantize: the float32 result.' }
    )
    Examples    = @(
        @{
            Title   = 'ReLU6''s bound 6.0 at the forum thread''s input scale'
            Code    = 'ConvertTo-Quantized -InputObject 6.0 -Scale 0.019743409007787704 -ZeroPoint 0 | ForEach-Object { $_.IntRepr.Data }'
            Remarks = '6/scale = 303.9 does not fit quint8: the result saturates at 255, so a quantized ReLU6 acts as a plain ReLU there.'
        }
        @{
            Title   = 'Quantize with qparams computed by an observer'
            Code    = '$qp = Import-QuantTensor ./calib.npz | Get-QParams -Observer Histogram -ReduceRange; Import-QuantTensor ./x.npy | ConvertTo-Quantized -QParams $qp'
            Remarks = 'The same integers torch.quantize_per_tensor(x, scale, zero_point, torch.quint8) gives.'
        }
        @{
            Title   = 'Fake quantization as in QAT'
            Code    = 'Import-QuantTensor ./x.npy | ConvertTo-Quantized -Scale 0.1 -ZeroPoint 10 -QuantMin 0 -QuantMax 255 -FakeQuantize'
            Remarks = 'Equals torch.fake_quantize_per_tensor_affine(x, 0.1, 10, 0, 255).'
        }
    )
    Links       = @('ConvertFrom-Quantized', 'Get-QParams')
}
