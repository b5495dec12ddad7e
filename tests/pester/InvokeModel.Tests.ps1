BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
    $models = Join-Path $Golden 'models'
    function Bits([float[]] $a) { $a | ForEach-Object { [BitConverter]::SingleToInt32Bits($_) } }
}

Describe 'Invoke-QuantModel' {
    It 'reproduces <_>''s output and every captured layer bit for bit (x86)' -ForEach @('seed_convnet', 'relu6_eager') {
        $st = Join-Path $models "$_.safetensors"
        $case = (Get-Content -Raw (Join-Path $models "$_.json") | ConvertFrom-Json).cases[0]
        $input = Import-QuantTensor $st -Name input
        $expected = Import-QuantTensor $st -Name output
        $r = $input | Invoke-QuantModel (Join-Path $models "$_.torchscript.pt") -CaptureLayers
        $r.Engine | Should -Be 'x86'
        (Bits $r.Output.Data) | Should -Be (Bits $expected.Data)
        # layers were recorded on input[0:1]
        $first = Invoke-QuantModel (Join-Path $models "$_.torchscript.pt") -InputObject (Import-QuantTensor $st -Name input) -CaptureLayers
        foreach ($l in $case.layer_outputs_for_input0) {
            $got = $first.Layers | Where-Object Name -eq $l.module
            $got | Should -Not -BeNullOrEmpty -Because $l.module
            $got.QParams.Scale | Should -Be $l.y.scale
            $got.QParams.ZeroPoint | Should -Be $l.y.zero_point
            $ints = (Import-QuantTensor $st -Name ([WildcardPattern]::Escape($l.y.int))).Data
            $n = $ints.Length
            [System.Linq.Enumerable]::SequenceEqual([long[]]@($got.Value.IntRepr.Data[0..($n - 1)]), [long[]]$ints) | Should -BeTrue -Because $l.module
        }
    }

    It 'writes the layers to a safetensors file that Import-QuantTensor reads back with qparams' {
        $st = Join-Path $models 'seed_convnet.safetensors'
        $out = Join-Path $TestDrive 'dump.safetensors'
        Import-QuantTensor $st -Name input | Invoke-QuantModel (Join-Path $models 'seed_convnet.torchscript.pt') -OutputPath $out | Out-Null
        $back = Import-QuantTensor $out
        ($back | Where-Object Name -eq 'conv1').QParams.Scale | Should -Be ((Get-QParams -Path (Join-Path $models 'seed_convnet.torchscript.pt')) | Where-Object Name -eq conv1).OutputScale
        ($back | Where-Object Name -eq 'output') | Should -Not -BeNullOrEmpty
    }

    It 'names an unsupported model file clearly' {
        { Invoke-QuantModel (Join-Path $models 'seed_convnet.state_dict.pt') -InputObject 1.0 -ErrorAction Stop } | Should -Throw -ExpectedMessage '*needs a TorchScript archive, got a StateDict*'
    }
}
