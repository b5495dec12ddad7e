BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
    $onnx = Join-Path $Golden 'onnx'
    $input4 = Import-QuantTensor (Join-Path $onnx 'onnx.safetensors') -Name input
}

Describe 'ONNX models' {
    It 'Invoke-QuantModel -Engine ort gives ONNX Runtime''s golden output of <_> bit for bit' -ForEach @('qdq_minmax_pc', 'qop_minmax_pc', 'qdq_minmax_s8s8') {
        $want = Import-QuantTensor (Join-Path $onnx 'onnx.safetensors') -Name "$_/output"
        $r = @(Invoke-QuantModel (Join-Path $onnx "smallcnn.$_.onnx") -InputObject $input4)
        $r.Count | Should -Be 4 -Because 'the model takes batch 1, so each of the 4 rows runs once'
        $got = [float[]]($r | ForEach-Object { $_.Output.Data })
        $bits = { param($a) $a | ForEach-Object { [BitConverter]::SingleToInt32Bits($_) } }
        (& $bits $got) | Should -Be (& $bits ([float[]]$want.Data))
        $r[0].Engine | Should -Be 'ort'
        $r[1].InputName | Should -Be 'input[1]'
    }

    It 'captures every quantized value with its qparams, int8 values under their own names' {
        $r = @(Invoke-QuantModel (Join-Path $onnx 'smallcnn.qdq_minmax_s8s8.onnx') -InputObject $input4 -CaptureLayers)[0]
        $r.Layers.Count | Should -Be 7
        $conv = $r.Layers | Where-Object Name -eq '/Relu_output_0_QuantizeLinear_Output'
        $conv.Kind | Should -Be 'QLinearConv'
        $conv.Value.DType | Should -Be 'QInt8'
        $conv.QParams.ZeroPoint | Should -Be -128
    }

    It 'Get-QParams -Path lists ORT''s kernels with their float32 multipliers' {
        $rows = Get-QParams -Path (Join-Path $onnx 'smallcnn.qdq_minmax_pc.onnx')
        ($rows.Kind -join ',') | Should -Be 'QuantizeLinear,QLinearConv,QLinearConv,QLinearConv,QLinearGlobalAveragePool,QGemm,DequantizeLinear'
        $c1 = $rows | Where-Object Name -eq '/c1/Conv'
        $c1.InputZeroPoint | Should -Be 119
        $c1.Multipliers.Count | Should -Be 16
        [float]$c1.Multipliers[0] | Should -Be ([float]([float]$c1.InputScale * [float]$c1.WeightScales[0] / [float]$c1.OutputScale))
        $c1.Model | Should -Be 'smallcnn.qdq_minmax_pc.onnx'
    }

    It 'Test-QuantModel warns where non-VNNI CPUs saturate u8 x s8 pairs' {
        $f = Test-QuantModel (Join-Path $onnx 'smallcnn.qdq_minmax_pc.onnx')
        ($f | Where-Object Rule -eq U8S8SaturationRisk).Layer | Should -Contain '/c1/Conv'
    }

    It 'Get-QParams -Observer OrtPercentile gives the qparams quantize_static wrote for the input' {
        $calib = Import-QuantTensor (Join-Path $onnx 'onnx.safetensors') -Name calib
        $q = $calib | Get-QParams -Observer OrtPercentile
        $row = Get-QParams -Path (Join-Path $onnx 'smallcnn.qdq_percentile.onnx') | Select-Object -First 1
        $q.Scale | Should -Be $row.OutputScale
        $q.ZeroPoint | Should -Be $row.OutputZeroPoint
        $q.Observer | Should -Be 'OrtPercentile'
        { $calib | Get-QParams -Observer OrtEntropy -QScheme per_tensor_symmetric } | Should -Throw '*PyTorch observer argument*'
    }

    It 'refuses a PyTorch engine for an .onnx file' {
        { Invoke-QuantModel (Join-Path $onnx 'smallcnn.qdq_minmax_pc.onnx') -InputObject $input4 -Engine qnnpack -ErrorAction Stop } | Should -Throw '*PyTorch engine*'
    }
}
