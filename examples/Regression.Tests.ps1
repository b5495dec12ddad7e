# A regression check for a build pipeline: a model's per-layer outputs against PyTorch's golden run.
#
#   Invoke-Pester ./examples/Regression.Tests.ps1            (Pester 5.7+, QuantTools built: dotnet pwsh ./build.ps1)
#
# Point $Golden at the golden JSON of your model (PyTorch's per-layer quantized outputs, written by the golden
# generator) and $Candidate at what your backend dumped: a folder of .npy files named by layer (TVM's debug
# executor, ONNX Runtime), a .safetensors file of per-layer tensors, or a hashtable / model result with a Layers
# property. Here the candidate is the golden safetensors itself (act/<layer>/int tensors), so the example passes;
# set QT_CANDIDATE to check a real dump.
BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../QuantTools.psd1')
    $models = Join-Path $PSScriptRoot '../tests/fixtures/golden/pytorch-2.11/core/models'
    $script:Golden = Join-Path $models 'relu6_eager.json'
    $script:Candidate = if ($env:QT_CANDIDATE) { $env:QT_CANDIDATE } else { Join-Path $models 'relu6_eager.safetensors' }
    $script:Models = $models
}

Describe 'relu6_eager on the candidate backend' {
    It 'matches PyTorch bit for bit in every layer' {
        # fails with the first diverging layer, its MaxLsb / SQNR, the first bad index with both values, and the likely cause
        $Candidate | Should -BeQuantEqual $Golden -MaxLsb 0
    }

    It 'has no layer below 40 dB SQNR' {
        $Candidate | Should -HaveSqnrAbove 40 -Expected $Golden
    }

    It 'keeps the quantized logits close to the float model' {
        $f = Join-Path $Models 'relu6_eager.safetensors'
        $q = Import-QuantTensor $f -Name output
        $q | Should -HaveSqnrAbove 30 -Expected (Import-QuantTensor $f -Name float_output)
        (Compare-QuantOutput (Import-QuantTensor $f -Name float_output) $q).Top1Agreement | Should -Be 1
    }

    It 'writes a report for the build artifacts' {
        $report = Join-Path ([IO.Path]::GetTempPath()) 'relu6_eager-compare.html'
        $s = Compare-QuantOutput $Golden $Candidate -MaxLsb 1 -Summary -Report $report
        $s.FirstDivergingLayer | Should -BeNullOrEmpty -Because "the report at $report shows where it diverges"
    }
}
