BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
}

Describe 'Test-QuantConformance' {
    It 'runs the onnx category: ORT-quantized models, calibrators and ORT''s refusals all pass' {
        $r = Test-QuantConformance -Path (Join-Path $Golden 'onnx')
        $r.Count | Should -Be 16
        $r | ForEach-Object { $_.Status | Should -Be 'Passed' -Because $_.Id; $_.Category | Should -Be 'onnx' }
    }

    It 'emits one summary per category with the property names scripts rely on' {
        $s = Test-QuantConformance -Path $Golden -Summary
        ($s.Category | Sort-Object) | Should -Be @('models', 'observers', 'onnx', 'ops', 'quantize')
        foreach ($row in $s) {
            $row.PSObject.Properties.Name | Should -Contain 'Passed'
            $row.PSObject.Properties.Name | Should -Contain 'Failed'
            $row.PSObject.Properties.Name | Should -Contain 'NotRun'
        }
        ($s | Where-Object Category -eq ops).Total | Should -Be (440 + 16) -Because '440 cases and 16 refusals recorded by PyTorch'
    }

    It 'writes a non-terminating error for a missing folder and goes on' {
        $r = Test-QuantConformance -Path (Join-Path $Golden 'no-such-folder'), (Join-Path $Golden 'onnx') -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs.Count | Should -Be 1
        $r.Count | Should -Be 16
    }
}
