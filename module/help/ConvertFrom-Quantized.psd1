@{
    Synopsis    = 'Dequantizes quantized tensors exactly as PyTorch''s dequantize() does.'
    Description = 'Turns each piped QTensor into a float32 Tensor: (q - zero_point) * scale with PyTorch''s float32 arithmetic, per tensor or per channel (float-qparams included). The results are bit-identical to q.dequantize() in PyTorch 2.11.'
    Parameters  = @{
        InputObject = 'A quantized tensor (from ConvertTo-Quantized or Import-QuantTensor).'
    }
    Inputs      = @(@{ Type = 'QuantTools.Core.Tensors.QTensor'; Description = 'Quantized tensors.' })
    Outputs     = @(@{ Type = 'QuantTools.Core.Tensors.Tensor'; Description = 'float32 tensors of the same shape.' })
    Examples    = @(
        @{
            Title   = 'Round trip'
            Code    = '(ConvertTo-Quantized -InputObject @(0.1, 0.25, -1.5) -Scale 0.1 -ZeroPoint 10 | ConvertFrom-Quantized).Data'
            Remarks = 'Shows the values the quantized tensor represents: 0.1, 0.2 (0.25 rounds half to even to 2 steps, 0.2), -1.0 (-1.5 saturates at 0).'
        }
    )
    Links       = @('ConvertTo-Quantized')
}
