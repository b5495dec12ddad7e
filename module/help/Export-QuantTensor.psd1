@{
    Synopsis    = 'Writes piped tensors to one .npy, .npz or .safetensors file.'
    Description = @'
Collects the piped tensors and writes them to -Path when the pipeline ends. The format follows the extension: .npy (exactly one tensor, numpy's own layout), .npz (stored, or deflated with -Compress) or .safetensors (the reference layout). Names come from -Name, else from each tensor's Name property, else tensor0, tensor1, ...

Quantized tensors keep their qparams in .safetensors (int_repr plus scale and zero point metadata, per-channel scales as companion tensors), so Import-QuantTensor returns them as quantized tensors again; .npy and .npz receive the int_repr only, with a warning. An existing file is only replaced with -Force.
'@
    Parameters  = @{
        Path        = 'The file to write; its extension chooses the format.'
        LiteralPath = 'Like -Path, without wildcard interpretation.'
        InputObject = 'Tensors or quantized tensors to write (from the pipeline).'
        Name        = 'Names for the tensors, in input order.'
        Compress    = 'Deflate the entries of an .npz file.'
        Force       = 'Overwrite an existing file.'
        PassThru    = 'Emit the written file.'
    }
    Inputs      = @(@{ Type = 'QuantTools.Core.Tensors.Tensor'; Description = 'Tensors and quantized tensors.' })
    Outputs     = @(@{ Type = 'System.IO.FileInfo'; Description = 'With -PassThru, the file written.' })
    Examples    = @(
        @{
            Title   = 'Convert an .npz archive to safetensors'
            Code    = 'Import-QuantTensor ./activations.npz | Export-QuantTensor ./activations.safetensors'
            Remarks = 'Tensor names are kept.'
        }
        @{
            Title   = 'Save quantized tensors with their qparams'
            Code    = 'Import-QuantTensor ./x.npy | ConvertTo-Quantized -Scale 0.05 -ZeroPoint 128 | Export-QuantTensor ./xq.safetensors -Name x_q -Force'
            Remarks = 'Import-QuantTensor ./xq.safetensors returns a QTensor with scale 0.05 and zero point 128.'
        }
    )
    Links       = @('Import-QuantTensor')
}
