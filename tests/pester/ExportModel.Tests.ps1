BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
    $script:Engines = Join-Path $Golden 'engines'
    $script:Relu6 = Join-Path $Engines 'relu6_eager_qnnpack.torchscript.pt'
    function New-QTTempDir { $d = Join-Path ([IO.Path]::GetTempPath()) ('qt-export-' + [guid]::NewGuid()); $d }
}

Describe 'Export-QuantModel' {
    It 'writes the C files and returns flash, RAM, layer count and FPU' {
        $dir = New-QTTempDir
        try {
            $r = Export-QuantModel $Relu6 -Engine qnnpack -Format C -InputShape 4, 3, 20, 20 -OutputPath $dir
            $r.Files | ForEach-Object { Split-Path -Leaf $_ } | Should -Be @('model.h', 'model.c', 'model_weights.c', 'qt_kernels.h', 'qt_kernels.c')
            $r.Files | ForEach-Object { Test-Path $_ | Should -BeTrue }
            $r.LayerCount | Should -Be 8
            $r.FlashBytes | Should -BeGreaterThan 0
            $r.RamBytes | Should -Be (Get-Content (Join-Path $dir 'model.h') | Select-String 'MODEL_SCRATCH_SIZE (\d+)').Matches[0].Groups[1].Value
            $r.FpuNeeded | Should -BeTrue
            $r.Written | Should -BeTrue
            ($r | Format-Table | Out-String) | Should -Match 'qnnpack'
        }
        finally { Remove-Item $dir -Recurse -Force -ErrorAction SilentlyContinue }
    }

    It 'takes a model piped from Import-QuantModel and writes JSON' {
        $dir = New-QTTempDir
        try {
            $r = Import-QuantModel $Relu6 | Export-QuantModel -Engine qnnpack -Format Json -InputShape 1, 3, 20, 20 -OutputPath $dir -Name net
            $r.Files | ForEach-Object { Split-Path -Leaf $_ } | Should -Be @('net.json', 'net.safetensors')
            $j = Get-Content (Join-Path $dir 'net.json') -Raw | ConvertFrom-Json
            ($j.layers | Where-Object name -eq 'relu6' | Where-Object kind -eq 'clamp').clamp | Should -Be @(138, 255)
        }
        finally { Remove-Item $dir -Recurse -Force -ErrorAction SilentlyContinue }
    }

    It '-WhatIf lists every file and writes nothing' {
        $dir = New-QTTempDir
        $out = Invoke-QTFreshPwsh "Import-Module '$Manifest'; Export-QuantModel '$Relu6' -InputShape 1,3,20,20 -OutputPath '$dir' -WhatIf | Out-Null"
        ($out.Output | Where-Object { $_ -match 'What if' }).Count | Should -Be 5
        $out.Output -join "`n" | Should -Match ([regex]::Escape((Join-Path $dir 'model_weights.c')))
        Test-Path $dir | Should -BeFalse
    }

    It 'refuses to replace files without -Force' {
        $dir = New-QTTempDir
        try {
            $null = Export-QuantModel $Relu6 -InputShape 1, 3, 20, 20 -OutputPath $dir
            { Export-QuantModel $Relu6 -InputShape 1, 3, 20, 20 -OutputPath $dir -ErrorAction Stop } | Should -Throw '*-Force*'
            (Export-QuantModel $Relu6 -InputShape 1, 3, 20, 20 -OutputPath $dir -Force).Written | Should -BeTrue
        }
        finally { Remove-Item $dir -Recurse -Force -ErrorAction SilentlyContinue }
    }

    It 'names the layer and op it cannot express, and writes nothing' {
        $dir = New-QTTempDir
        $mlp = Join-Path $Golden 'models/dynamic_mlp.torchscript.pt'
        $err = $null
        Export-QuantModel $mlp -InputShape 6, 64 -OutputPath $dir -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'QuantTools.UnsupportedOperator*'
        "$($err[0])" | Should -Match "layer 'fc1'.*quantized::linear_dynamic"
        Test-Path $dir | Should -BeFalse
    }

    It 'asks for -Architecture for a state_dict' {
        $sd = Join-Path $Engines 'relu6_eager_qnnpack.state_dict.pt'
        { Export-QuantModel $sd -InputShape 1, 3, 20, 20 -OutputPath (New-QTTempDir) -ErrorAction Stop } | Should -Throw '*-Architecture*'
        $dir = New-QTTempDir
        try {
            $r = Export-QuantModel $sd -Architecture (Join-Path $RepoRoot 'examples/architectures/relu6_eager.yaml') -Engine qnnpack -InputShape 1, 3, 20, 20 -OutputPath $dir
            $r.LayerCount | Should -Be 8
        }
        finally { Remove-Item $dir -Recurse -Force -ErrorAction SilentlyContinue }
    }
}
