<#
.SYNOPSIS
    QuantTools demo: PyTorch-exact qparams, quantization and the golden conformance check on bundled data.
.DESCRIPTION
    Run through build.ps1 -Demo (which builds first), or after a build: dotnet pwsh ./examples/demo.ps1
#>
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'QuantTools.psd1') -Force
$data = Join-Path $PSScriptRoot 'data/calibration.safetensors'

function Section([string] $title) { Write-Host ""; Write-Host "== $title" -ForegroundColor Cyan }

Section "Bundled tensors ($data)"
Import-QuantTensor $data | Format-Table -AutoSize | Out-Host

Section 'Activation qparams from four calibration batches, with each engine''s default observer'
$batches = Import-QuantTensor $data -Name 'batch*'
$rows = foreach ($engine in 'x86', 'fbgemm', 'qnnpack', 'onednn') {
    $qp = $batches | Get-QParams -Engine $engine
    [pscustomobject]@{
        Engine    = $engine
        Observer  = $qp.Observer
        Scale     = $qp.Scale.ToString('R')
        ZeroPoint = $qp.ZeroPoint
        Range     = "$($qp.QuantMin)..$($qp.QuantMax)"
    }
}
$rows | Format-Table -AutoSize | Out-Host

Section 'Weight qparams, per output channel (x86 default weight observer)'
$w = Import-QuantTensor $data -Name weight
$wq = $w | Get-QParams -Engine x86 -Weight
$wq | Format-List Observer, QScheme, Axis, Scales, ZeroPoints | Out-Host

Section 'ReLU6 at the forum thread''s input scale 0.019743409 (zero point 0)'
$q6 = ConvertTo-Quantized -InputObject 6.0 -Scale 0.019743409007787704 -ZeroPoint 0
Write-Host ("6.0 / scale = {0:N1} steps -> quantized bound {1}: it saturates at quint8's 255, so ReLU6 acts as ReLU here." -f (6.0 / 0.019743409007787704), $q6.IntRepr.Data[0])

Section 'Quantize the activations with MinMax and Histogram qparams, and measure the round-trip error'
$x = Import-QuantTensor $data -Name activations
$rows = foreach ($obs in 'MinMax', 'Histogram') {
    $q = $x | ConvertTo-Quantized -Observer $obs -ReduceRange
    $y = $q | ConvertFrom-Quantized
    $err = 0.0; $max = 0.0
    for ($i = 0; $i -lt $x.Length; $i++) { $d = [Math]::Abs($x.Data[$i] - $y.Data[$i]); $err += $d * $d; if ($d -gt $max) { $max = $d } }
    [pscustomobject]@{ Observer = $obs; Scale = $q.QParams.Scale.ToString('R'); ZeroPoint = $q.QParams.ZeroPoint; RmsError = [Math]::Sqrt($err / $x.Length).ToString('G6'); MaxError = $max.ToString('G6') }
}
$rows | Format-Table -AutoSize | Out-Host

Section 'Conformance with PyTorch 2.11 (golden cases bundled in tests/fixtures)'
Test-QuantConformance -Path (Join-Path $root 'tests/fixtures/golden') -Summary | Format-Table -AutoSize | Out-Host

Section 'Which layer uses which scale and zero point (the forum thread''s ReLU6 model, TorchScript form)'
$model = Join-Path $root 'tests/fixtures/golden/pytorch-2.11/core/models/relu6_eager.torchscript.pt'
Get-QParams -Path $model | Format-Table Name, Kind, InScale, InZp, OutScale, OutZp, M -AutoSize | Out-Host

Section 'Lint: qparams that will hurt on deployment'
Test-QuantModel -Path $model | Where-Object Rule -eq 'ClampBoundOutOfRange' | Format-List Layer, Rule, Message | Out-Host

Section 'Run the forum thread''s network with PyTorch''s x86 integer arithmetic, and compare with PyTorch''s own output'
$models = Join-Path $root 'tests/fixtures/golden/pytorch-2.11/core/models'
$x = Import-QuantTensor (Join-Path $models 'seed_convnet.safetensors') -Name input
$golden = Import-QuantTensor (Join-Path $models 'seed_convnet.safetensors') -Name output
$run = $x | Invoke-QuantModel (Join-Path $models 'seed_convnet.torchscript.pt') -CaptureLayers
$run.Layers | Format-Table -AutoSize | Out-Host
Compare-QuantOutput -Reference $golden -Difference $run.Output | Format-Table Layer, SqnrText, MaxAbsErrorText, Passed -AutoSize | Out-Host
