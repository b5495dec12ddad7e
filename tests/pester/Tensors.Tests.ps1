BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
}

Describe 'Import-QuantTensor and Export-QuantTensor' {
    It 'reads a golden safetensors file with names and shapes' {
        $t = Import-QuantTensor (Join-Path $Golden 'quantize.safetensors') -Name 'special'
        $t.Name | Should -Be 'special'
        $t.Shape | Should -Be @(9)
        $t.Data[2] | Should -Be ([float]1e30)
    }

    It 'round-trips tensors through <_>' -ForEach @('.npy', '.npz', '.safetensors') {
        $path = Join-Path $TestDrive ("t" + $_)
        $x = Import-QuantTensor (Join-Path $Golden 'quantize.safetensors') -Name 'w'
        $x | Export-QuantTensor -Path $path -Force
        $y = Import-QuantTensor $path
        $y.Shape | Should -Be @(8, 6, 3, 3)
        [System.Linq.Enumerable]::SequenceEqual([float[]]$x.Data, [float[]]$y.Data) | Should -BeTrue
    }

    It 'keeps qparams of quantized tensors in safetensors' {
        $path = Join-Path $TestDrive 'q.safetensors'
        $q = ConvertTo-Quantized -InputObject @(0.5, -0.25, 3.0) -Scale 0.05 -ZeroPoint 128
        $q | Export-QuantTensor $path -Name xq -Force
        $back = Import-QuantTensor $path
        $back.Name | Should -Be 'xq'
        $back.QParams.Scale | Should -Be 0.05
        $back.QParams.ZeroPoint | Should -Be 128
        $back.IntRepr.Data | Should -Be $q.IntRepr.Data
    }

    It 'refuses to overwrite without -Force' {
        $path = Join-Path $TestDrive 'exists.npy'
        Set-Content $path 'x'
        Export-QuantTensor $path -InputObject (,[float[]](1.0)) -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'QuantTools.FileExists*'
        Get-Content $path | Should -Be 'x'
    }

    It 'reports a damaged file with its name and goes on with the next' {
        $bad = Join-Path $TestDrive 'bad.npy'
        [System.IO.File]::WriteAllBytes($bad, [byte[]](0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, 200, 0))
        $good = Join-Path $TestDrive 'good.npy'
        Export-QuantTensor $good -InputObject (,[float[]](1.0, 2.0)) -Force
        $r = Import-QuantTensor -LiteralPath $bad, $good -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs.Count | Should -Be 1
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'QuantTools.CorruptFile*'
        "$($errs[0])" | Should -BeLike '*bad.npy*'
        $r.Data | Should -Be @([float]1, [float]2)
    }
}
