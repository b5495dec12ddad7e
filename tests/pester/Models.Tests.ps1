BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
    $models = Join-Path $Golden 'models'
    function Get-ModelCase([string] $name) { (Get-Content -Raw (Join-Path $models "$name.json") | ConvertFrom-Json).cases[0] }
}

Describe 'Get-QParams -Path' {
    It 'gives every layer''s activation qparams of <_> exactly as PyTorch recorded them' -ForEach @('seed_convnet.torchscript.pt', 'seed_convnet.state_dict.pt', 'seed_convnet.state_dict.legacy.pt') {
        $rows = Get-QParams -Path (Join-Path $models $_)
        $case = Get-ModelCase 'seed_convnet'
        foreach ($l in $case.layer_outputs_for_input0 | Where-Object type -in 'Quantize', 'ConvReLU2d', 'Conv2d') {
            $row = $rows | Where-Object Name -eq $l.module
            $row | Should -Not -BeNullOrEmpty -Because $l.module
            [BitConverter]::SingleToInt32Bits([float]$row.OutputScale) | Should -Be ([BitConverter]::SingleToInt32Bits([float]$l.y.scale))
            $row.OutputZeroPoint | Should -Be $l.y.zero_point
        }
        ($rows | Where-Object Name -eq conv2).InputScale | Should -Be ($rows | Where-Object Name -eq conv1).OutputScale
        ($rows | Where-Object Name -eq conv1).Multipliers.Count | Should -Be 8
        ($rows | Where-Object Name -eq conv1).Model | Should -Be $_
    }

    It 'exports rows to CSV and JSON with the documented property names' {
        $rows = Get-QParams -Path (Join-Path $models 'relu6_eager.torchscript.pt')
        $rows | Export-Csv -Path (Join-Path $TestDrive 'q.csv') -ErrorAction Stop
        (Import-Csv (Join-Path $TestDrive 'q.csv')).Name | Should -Contain 'conv1'
        $json = $rows | Select-Object Name, Kind, OutputScale, FixedPointMultipliers, Shifts | ConvertTo-Json -Depth 3 | ConvertFrom-Json
        $json.Name | Should -Contain 'relu6'
        foreach ($p in 'Name', 'Kind', 'InputScale', 'InputZeroPoint', 'OutputScale', 'OutputZeroPoint', 'WeightDtype', 'WeightQScheme', 'WeightAxis', 'WeightScales', 'WeightZeroPoints', 'HasBias', 'Multipliers', 'FixedPointMultipliers', 'Shifts') {
            $rows[0].PSObject.Properties.Name | Should -Contain $p
        }
    }

    It 'keeps per-channel values through Export-Csv and reads them back bit for bit' {
        $rows = Get-QParams -Path (Join-Path $models 'relu6_fx.torchscript.pt')
        $file = Join-Path $TestDrive 'fx.csv'
        $rows | Export-Csv -Path $file
        (Get-Content -Raw $file) | Should -Not -Match 'System\.(Double|Int32|Int64)\[\]'
        $back = Import-Csv $file
        $conv1 = $rows | Where-Object Name -eq conv1
        $csv1 = $back | Where-Object Name -eq conv1
        $csv1.WeightScales | Should -Match '^[^;]+(;[^;]+){7}$'
        $scales = [double[]] ($csv1.WeightScales -split ';')
        for ($c = 0; $c -lt $conv1.WeightScales.Count; $c++) {
            [BitConverter]::DoubleToInt64Bits($scales[$c]) | Should -Be ([BitConverter]::DoubleToInt64Bits($conv1.WeightScales[$c]))
        }
        [int[]] ($csv1.FixedPointMultipliers -split ';') | Should -Be ([int[]] $conv1.FixedPointMultipliers)
        [int[]] ($csv1.Shifts -split ';') | Should -Be ([int[]] $conv1.Shifts)
        $csv1.Multipliers | Should -Be $conv1.Multipliers.ToString()
        # and the lists still behave like arrays in PowerShell
        $conv1.WeightScales.Count | Should -Be 8
        $conv1.WeightScales[-1] | Should -Be $conv1.WeightScales[7]
        ($conv1 | Select-Object WeightScales | ConvertTo-Json -Compress) | Should -Match '"WeightScales":\['
    }

    It 'shows scales with significant digits in column-selected tables, and keeps the twins out of CSV' {
        $rows = Get-QParams -Path (Join-Path $models 'relu6_fx.torchscript.pt')
        $conv1 = $rows | Where-Object Name -eq conv1
        $text = $rows | Format-Table Name, InScale, InZp, OutScale, OutZp, M | Out-String -Width 200
        $text | Should -Match ([regex]::Escape($conv1.InputScale.ToString('G6', [cultureinfo]::InvariantCulture)))
        $text | Should -Match ([regex]::Escape($conv1.OutputScale.ToString('G6', [cultureinfo]::InvariantCulture)))
        $conv1.InScale | Should -Be $conv1.InputScale.ToString('G6', [cultureinfo]::InvariantCulture)
        $conv1.OutZp | Should -Be $conv1.OutputZeroPoint
        $conv1.M | Should -Match '^0\.00\d+\.\.0\.00\d+$'
        ($rows | ConvertTo-Csv)[0] | Should -Not -Match '"InScale"'
        ($conv1 | Get-Member -Name InScale) | Should -BeNullOrEmpty
        $layer = (Import-QuantModel (Join-Path $models 'relu6_eager.torchscript.pt')).Layers | Where-Object Name -eq conv1
        ($layer | Format-Table Name, OutScale | Out-String) | Should -Match ([regex]::Escape($layer.OutputScale.ToString('G6', [cultureinfo]::InvariantCulture)))
    }

    It 'says where each input comes from, and warns where a state_dict cannot tell' {
        $fx = Get-QParams -Path (Join-Path $models 'relu6_fx.torchscript.pt')
        ($fx | Where-Object Name -eq conv1).InputLayer | Should -Be 'conv1_input_0'
        ($fx | Where-Object Name -eq fc).InputScale | Should -Be ($fx | Where-Object Name -eq quantize_0).OutputScale
        $sd = Get-QParams -Path (Join-Path $models 'relu6_fx.state_dict.pt') -WarningVariable w -WarningAction SilentlyContinue
        ($sd | Where-Object Name -eq fc).InputSource | Should -Be 'unknown'
        ($sd | Where-Object Name -eq fc).InputScale | Should -BeNullOrEmpty
        "$w" | Should -BeLike '*-Architecture*'
        $arch = Join-Path $RepoRoot 'examples/architectures/relu6_eager.yaml'
        $eager = Get-QParams -Path (Join-Path $models 'relu6_eager.state_dict.pt') -Architecture $arch
        ($eager | Where-Object Name -eq relu6).InputLayer | Should -Be 'conv1'
        ($eager | Where-Object Name -eq conv2).InputLayer | Should -Be 'relu6'
        ($eager | Where-Object Name -eq conv2).InputSource | Should -Be 'graph'
    }

    It 'takes a model object from Import-QuantModel, by parameter and by pipeline' {
        $m = Import-QuantModel (Join-Path $models 'seed_convnet.torchscript.pt')
        $m.Form | Should -Be 'torchscript'
        (Get-QParams -Model $m).Count | Should -Be $m.Layers.Count
        ($m | Get-QParams).Count | Should -Be $m.Layers.Count
    }

    It 'refuses a pickle that would run code, naming the global' {
        $bad = Join-Path $TestDrive 'evil.pt'
        # protocol 2: GLOBAL 'os system', a string, TUPLE1, REDUCE, STOP
        $bytes = [byte[]](0x80, 2) + [Text.Encoding]::ASCII.GetBytes("cos`nsystem`n") + [byte[]](0x58, 4, 0, 0, 0) + [Text.Encoding]::ASCII.GetBytes('true') + [byte[]](0x85, 0x52, 0x2e)
        # inside a torch.save-style zip archive, as torch.load would read it
        $fs = [IO.File]::Create($bad)
        $zip = [IO.Compression.ZipArchive]::new($fs, [IO.Compression.ZipArchiveMode]::Create)
        $e = $zip.CreateEntry('evil/data.pkl', [IO.Compression.CompressionLevel]::NoCompression)
        $s = $e.Open(); $s.Write($bytes, 0, $bytes.Length); $s.Dispose()
        $zip.Dispose(); $fs.Dispose()
        Import-QuantModel $bad -ErrorVariable errs -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        "$($errs[0])" | Should -BeLike '*os.system*'
    }
}

Describe 'Test-QuantModel' {
    It 'says what a state_dict hides from the rules, and checks it with -Architecture' {
        $sd = Join-Path $models 'relu6_eager.state_dict.pt'
        $f = Test-QuantModel $sd
        $f | Where-Object Rule -eq 'ClampBoundOutOfRange' | Should -BeNullOrEmpty
        $hidden = $f | Where-Object Rule -eq 'NotChecked'
        $hidden.Layer | Should -Contain 'relu6'
        $hidden.Layer | Should -Contain 'hardtanh'
        ($hidden | Where-Object Layer -eq relu6).Message | Should -BeLike '*ClampBoundOutOfRange was not checked*'
        # the same file with its architecture: relu6's bound is checked at its real input qparams, as for TorchScript
        $arch = Join-Path $RepoRoot 'examples/architectures/relu6_eager.yaml'
        $withArch = Test-QuantModel $sd -Architecture $arch
        $withArch | Where-Object Rule -eq 'NotChecked' | Should -BeNullOrEmpty
        $a = $withArch | Where-Object { $_.Rule -eq 'ClampBoundOutOfRange' -and $_.Layer -eq 'relu6' }
        $t = Test-QuantModel (Join-Path $models 'relu6_eager.torchscript.pt') | Where-Object { $_.Rule -eq 'ClampBoundOutOfRange' -and $_.Layer -eq 'relu6' }
        $a.Values.QuantizedBound | Should -Be $t.Values.QuantizedBound
        $a.Values.InputScale | Should -Be $t.Values.InputScale
    }

    It 'reports relu6_eager''s ReLU6 bound with its real numbers' {
        $f = Test-QuantModel (Join-Path $models 'relu6_eager.torchscript.pt') | Where-Object Rule -eq 'ClampBoundOutOfRange'
        $f.Layer | Should -Be 'relu6'
        $conv1 = (Get-ModelCase 'relu6_eager').layer_outputs_for_input0 | Where-Object module -eq conv1
        $f.Values.InputScale | Should -Be $conv1.y.scale
        $f.Values.InputZeroPoint | Should -Be $conv1.y.zero_point
        $f.Values.Saturated | Should -Be 255
        $f.Message | Should -BeLike '*acts as ReLU*'
    }

    It 'filters by severity' {
        Test-QuantModel (Join-Path $models 'relu6_eager.torchscript.pt') -MinimumSeverity Error | Should -BeNullOrEmpty
    }
}
