@{
    Synopsis    = 'Reads tensors from .npy, .npz and .safetensors files.'
    Description = @'
Emits one tensor per array in each file, with a Name note property (the .npz entry or safetensors key; an .npy file's name without extension) and SourcePath. .npy files of format versions 1 to 3, C or Fortran order and either byte order; .npz stored or deflated; .safetensors of every dtype. Quantized tensors written by Export-QuantTensor to .safetensors come back as QTensor with their qparams.

Damaged files give an error that names the file, what was expected and what was found; sizes are checked before anything is allocated. One bad file does not stop the others.
'@
    Parameters  = @{
        Path        = 'Files to read. Wildcards are allowed.'
        LiteralPath = 'Files to read, without wildcard expansion.'
        Name        = 'Only the tensors whose names match these patterns (wildcards).'
        WidenHalf   = 'Convert float16 and bfloat16 tensors to float32.'
    }
    Inputs      = @(@{ Type = 'System.String'; Description = 'Paths, by value or by property name (Get-ChildItem output works).' })
    Outputs     = @(
        @{ Type = 'QuantTools.Core.Tensors.Tensor'; Description = 'DType, Shape, Data; note properties Name and SourcePath.' }
        @{ Type = 'QuantTools.Core.Tensors.QTensor'; Description = 'Quantized tensors stored with their qparams.' }
    )
    Examples    = @(
        @{
            Title   = 'All tensors of a safetensors file'
            Code    = 'Import-QuantTensor ./tests/fixtures/golden/pytorch-2.11/core/models/seed_convnet.safetensors'
            Remarks = 'One row per tensor: name, dtype, shape, min, max and the first values.'
        }
        @{
            Title   = 'Selected arrays of an .npz archive'
            Code    = 'Import-QuantTensor ./calib.npz -Name batch* | Get-QParams -Engine x86'
            Remarks = 'Feeds every array whose name starts with "batch" to the x86 default activation observer.'
        }
    )
    Links       = @('Export-QuantTensor', 'Get-QParams')
}
