@{
    RootModule           = 'module/QuantTools.psm1'
    ModuleVersion        = '0.1.0'
    GUID                 = '3f0f6a55-6d0b-4c55-9f67-1c9b8f2f5a41'
    Author               = 'QuantTools developers'
    CompanyName          = 'QuantTools'
    Copyright            = '(c) QuantTools developers. MIT License.'
    Description          = 'Inspect, reproduce and compare PyTorch quantization bit for bit from PowerShell: qparams, observers, quantize, checkpoints, integer kernels.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    TypesToProcess       = @('module/QuantTools.types.ps1xml')
    FormatsToProcess     = @('module/QuantTools.format.ps1xml')
    CmdletsToExport      = @(
        'Get-QParams'
        'ConvertTo-Quantized'
        'ConvertFrom-Quantized'
        'Import-QuantTensor'
        'Export-QuantTensor'
        'Test-QuantConformance'
        'Import-QuantModel'
        'Test-QuantModel'
        'Invoke-QuantModel'
        'Invoke-QuantPipeline'
        'Merge-QuantReport'
        'Compare-QuantOutput'
        'Export-QuantModel'
    )
    FunctionsToExport    = @('Register-QuantShouldOperator')
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('quantization', 'pytorch', 'int8', 'qat', 'tvm')
            ProjectUri = ''
        }
    }
}
