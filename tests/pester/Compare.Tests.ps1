BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
    $script:Models = Join-Path $Golden 'models'
    $script:GoldenJson = Join-Path $Models 'relu6_eager.json'
    $script:Dumps = Join-Path $Models 'relu6_eager.safetensors'

    # the golden run with conv1's zero point shifted by one in a backend's dump (an .npy folder named by layer)
    function New-ShiftedDumpFolder {
        $dir = Join-Path ([IO.Path]::GetTempPath()) ('qt-dump-' + [guid]::NewGuid())
        New-Item -ItemType Directory $dir | Out-Null
        $i = 0
        foreach ($layer in 'quant', 'conv1', 'relu6', 'conv2', 'hardtanh', 'pool') {   # model order, as a backend dumps
            $t = Import-QuantTensor $Dumps -Name "act/$layer/int"
            $data = $t.Data   # a fresh import: changed in place
            if ($layer -eq 'conv1') { for ($k = 0; $k -lt $data.Length; $k++) { if ($data[$k] -lt 255) { $data[$k]++ } } }
            $t | Export-QuantTensor (Join-Path $dir ('{0:D2}_{1}.npy' -f $i++, $layer)) -Force
        }
        $dir
    }
}

Describe 'Compare-QuantOutput' {
    It 'matches golden layers by name and finds them all exact' {
        $r = Compare-QuantOutput $GoldenJson $Dumps -WarningAction SilentlyContinue
        $r.Layer | Should -Be @('quant', 'conv1', 'relu6', 'conv2', 'hardtanh', 'pool')
        $r | ForEach-Object { $_.Passed | Should -BeTrue; $_.MaxLsb | Should -Be 0; $_.ExactRatio | Should -Be 1 }
        foreach ($p in 'Layer', 'Sqnr', 'Mse', 'MaxAbsError', 'MeanAbsError', 'Cosine', 'MaxLsb', 'ExactRatio', 'Passed', 'Hints') {
            $r[0].PSObject.Properties.Name | Should -Contain $p
        }
    }

    It 'names the first diverging layer and the cause from an .npy folder, by name with a LayerMap' {
        $dir = New-ShiftedDumpFolder
        try {
            $s = Compare-QuantOutput -Reference $GoldenJson -Difference $dir -LayerMap @{ '\d+_(.*)' = '$1' } -MaxLsb 0 -Summary
            $s.FirstDivergingLayer | Should -Be 'conv1'
            $s.Cause | Should -Be 'ZeroPoint'
            $s.Alignment | Should -Be 'Map'
            $conv1 = $s.Results | Where-Object Layer -eq conv1
            $conv1.Hints[0].Evidence | Should -Match 'off by exactly \+1 LSB'
            $conv1.Hints[0].Confidence | Should -BeGreaterThan 0.9
            # only conv1 was changed in this dump, so the later layers still match
            ($s.Results | Where-Object Layer -eq relu6).Passed | Should -BeTrue
            # without names, the folder pairs by position, and the result says so
            $k = 0
            $p = Compare-QuantOutput $GoldenJson (Get-ChildItem $dir -Filter *.npy | Sort-Object Name | ForEach-Object { Import-QuantTensor $_.FullName } | ForEach-Object { $_.Name = 'node' + $k++; $_ }) -MaxLsb 0 -Summary -ErrorAction Stop
            $p.Alignment | Should -Be 'Position'
            $p.FirstDivergingLayer | Should -Be 'conv1'
        }
        finally { Remove-Item -Recurse -Force $dir }
    }

    It 'gives sensible numbers for relu6_eager quantized vs float output' {
        $f = Import-QuantTensor $Dumps -Name float_output
        $q = Import-QuantTensor $Dumps -Name output
        $r = Compare-QuantOutput $f $q -MinSqnr 15
        Write-Host ("relu6_eager quantized vs float: SQNR {0:F2} dB, cosine {1:F5}, top-1 {2}" -f $r.Sqnr, $r.Cosine, $r.Top1Agreement)
        [double]::IsInfinity($r.Sqnr) | Should -BeFalse
        $r.Sqnr | Should -BeGreaterThan 15
        $r.Passed | Should -BeTrue
    }

    It 'gives sensible numbers for seed_convnet QAT (fake-quant) vs converted output' {
        $qat = Import-QuantTensor (Join-Path $Models 'seed_convnet_qat.safetensors') -Name qat_output
        $conv = Import-QuantTensor (Join-Path $Models 'seed_convnet.safetensors') -Name output
        $r = Compare-QuantOutput $qat $conv -MinSqnr 8
        Write-Host ("seed_convnet QAT vs converted: SQNR {0:F2} dB, cosine {1:F5}, max abs {2:G4}" -f $r.Sqnr, $r.Cosine, $r.MaxAbsError)
        $r.Sqnr | Should -BeGreaterThan 8
        $r.Cosine | Should -BeGreaterThan 0.95
    }

    It 'reports mismatched shapes with the layer and both shapes' {
        $a = @{ conv1 = [float[]](1, 2, 3) }
        $b = @{ conv1 = [float[]](1, 2) }
        # the layer's error, then (nothing else was compared) a terminating error: never an empty pass
        $caught = $null
        try { $null = Compare-QuantOutput $a $b -ErrorVariable errs -ErrorAction SilentlyContinue } catch { $caught = $_ }
        "$caught" | Should -BeLike '*nothing was compared*'
        "$($errs[0])" | Should -Match 'conv1'
        "$($errs[0])" | Should -Match '\[3\]'
        "$($errs[0])" | Should -Match '\[2\]'
        $errs[0].FullyQualifiedErrorId | Should -Match 'QuantTools.ShapeMismatch'
    }

    It 'compares a whole-batch run with a golden file through -BatchIndex, and refuses to compare nothing' {
        $ts = Join-Path $Models 'relu6_eager.torchscript.pt'
        $input = Import-QuantTensor $Dumps -Name input
        $input.Shape[0] | Should -BeGreaterThan 1
        $run = Invoke-QuantModel $ts -InputObject $input -CaptureLayers
        { Compare-QuantOutput $run $GoldenJson -ErrorAction SilentlyContinue } | Should -Throw -ExpectedMessage '*nothing was compared*-BatchIndex 0*'
        $s = Compare-QuantOutput $run $GoldenJson -BatchIndex 0 -Summary
        $s.Layers | Should -Be 6
        $s.Passed | Should -Be 6
        $s.FirstDivergingLayer | Should -BeNullOrEmpty
        (Compare-QuantOutput $run $GoldenJson -BatchIndex 1 -Summary).FirstDivergingLayer | Should -Be 'quant'
        # the Pester operator: no silent pass on a batch mismatch, exact with -BatchIndex 0
        { $run | Should -BeQuantEqual $GoldenJson } | Should -Throw
        $run | Should -BeQuantEqual $GoldenJson -BatchIndex 0
        { @{ x = [float[]](1, 2) } | Should -BeQuantEqual @{ y = [float[]](1, 2, 3) } } | Should -Throw
    }

    It 'takes a model result with a Layers property' {
        $layers = [ordered]@{}
        Import-QuantTensor $Dumps -Name 'act/*' | ForEach-Object { $layers[($_.Name -split '/')[1]] = $_ }
        $s = Compare-QuantOutput $GoldenJson ([pscustomobject]@{ Layers = $layers }) -Summary
        $s.Layers | Should -Be 6
        $s.FirstDivergingLayer | Should -BeNullOrEmpty
    }

    It 'writes HTML and Markdown reports with the table and both SVG charts' {
        $dir = New-ShiftedDumpFolder
        try {
            $html = Join-Path $dir 'r.html'; $md = Join-Path $dir 'r.md'
            $null = Compare-QuantOutput $GoldenJson $dir -LayerMap @{ '\d+_(.*)' = '$1' } -MaxLsb 0 -Report $html
            $null = Compare-QuantOutput $GoldenJson $dir -LayerMap @{ '\d+_(.*)' = '$1' } -MaxLsb 0 -Report $md
            $h = Get-Content -Raw $html
            $h | Should -Match '<svg[^>]+id="sqnr-chart"'
            $h | Should -Match '<svg[^>]+id="lsb-histogram"'
            $h | Should -Match 'First diverging layer: conv1 \(ZeroPoint\)'
            ([xml]($h -replace '<!DOCTYPE html>', '')).html | Should -Not -BeNullOrEmpty -Because 'the report is well-formed'
            $m = Get-Content -Raw $md
            $m | Should -Match '\| \*\*conv1\*\* \|'
            $m | Should -Match 'data:image/svg\+xml;base64,'
        }
        finally { Remove-Item -Recurse -Force $dir }
    }

    It 'renders the HTML report in headless Chromium (table and both charts visible)' {
        $chromium = Get-QTChromium
        if (-not $chromium) {
            Set-ItResult -Skipped -Because 'Chromium is not installed and could not be installed (apt-get chromium)'
            return
        }
        $dir = New-ShiftedDumpFolder
        try {
            $html = Join-Path $dir 'r.html'
            $null = Compare-QuantOutput $GoldenJson $dir -LayerMap @{ '\d+_(.*)' = '$1' } -MaxLsb 0 -Report $html
            $png = Join-Path $dir 'r.png'
            $profileDir = Join-Path $dir 'chromium-profile'
            $flags = @('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', "--user-data-dir=$profileDir", '--hide-scrollbars')
            & $chromium @flags --window-size=1200,1400 "--screenshot=$png" "file://$html" 2>&1 | Out-Null
            Test-Path $png | Should -BeTrue
            $bytes = [IO.File]::ReadAllBytes($png)
            # PNG signature and IHDR width/height (big-endian at offsets 16 and 20)
            $bytes[1..3] | Should -Be @(0x50, 0x4E, 0x47)
            [BitConverter]::ToInt32([byte[]]($bytes[19], $bytes[18], $bytes[17], $bytes[16]), 0) | Should -Be 1200
            $bytes.Length | Should -BeGreaterThan 20000 -Because 'a blank page compresses to a few KB'
            # the DOM Chromium built holds the table rows and both charts
            $dom = (& $chromium @flags --dump-dom "file://$html" 2>$null) -join "`n"
            $dom | Should -Match '<svg[^>]+id="sqnr-chart"'
            $dom | Should -Match '<svg[^>]+id="lsb-histogram"'
            $dom | Should -Match 'conv1'
            if ($env:QT_KEEP_SCREENSHOT) { Copy-Item $png $env:QT_KEEP_SCREENSHOT }
        }
        finally { Remove-Item -Recurse -Force $dir }
    }

    It 'has help for every parameter and an example' {
        $h = Get-Help Compare-QuantOutput -Full
        $h.examples.example.Count | Should -BeGreaterThan 0
        foreach ($p in $h.parameters.parameter) { "$($p.description.Text)" | Should -Not -BeNullOrEmpty -Because $p.name }
    }
}

Describe 'Should operators' {
    It 'BeQuantEqual passes within MaxLsb and fails with layer, metric and first bad index' {
        $mk = { param([double[]] $v) ConvertTo-Quantized -InputObject $v -Scale 0.5 -ZeroPoint 10 }
        $expected = & $mk (0, 0.5, 1, 1.5, 2, 2.5)
        $actual = & $mk (0, 0.5, 1, 2, 2, 2.5)
        $actual | Should -BeQuantEqual $expected -MaxLsb 1
        $err = { $actual | Should -BeQuantEqual $expected } | Should -Throw -PassThru
        $err.Exception.Message | Should -Match "layer 'output'"
        $err.Exception.Message | Should -Match 'MaxLsb 1'
        $err.Exception.Message | Should -Match 'first bad index \[3\]: expected 13 \(1\.5\), actual 14 \(2\)'
        $actual | Should -Not -BeQuantEqual $expected
    }

    It 'HaveSqnrAbove checks every layer against -Expected' {
        $Dumps | Should -HaveSqnrAbove 40 -Expected $GoldenJson
        $f = Import-QuantTensor $Dumps -Name float_output
        $q = Import-QuantTensor $Dumps -Name output
        $err = { $q | Should -HaveSqnrAbove 60 -Expected $f } | Should -Throw -PassThru
        $err.Exception.Message | Should -Match 'SQNR above 60 dB'
        $err.Exception.Message | Should -Match 'first bad index'
    }

    It 'work in a fresh session whether Pester is imported before or after QuantTools' {
        $pester = Join-Path (Get-Module Pester).ModuleBase 'Pester.psd1'
        foreach ($order in 'PesterFirst', 'QuantToolsFirst') {
            $test = Join-Path ([IO.Path]::GetTempPath()) ("qt-ops-" + [guid]::NewGuid() + '.Tests.ps1')
            Set-Content -LiteralPath $test -Value @"
Describe 'fresh' {
    It 'BeQuantEqual' {
        `$t = [float[]](1, 2, 3)
        `$t | Should -BeQuantEqual `$t
        { [float[]](1, 2, 4) | Should -BeQuantEqual `$t } | Should -Throw '*first bad index*expected 3, actual 4*'
    }
    It 'HaveSqnrAbove' { '$Dumps' | Should -HaveSqnrAbove 40 -Expected '$GoldenJson' }
}
"@
            $imports = if ($order -eq 'PesterFirst') { "Import-Module '$pester'; Import-Module '$Manifest'" } else { "Import-Module '$Manifest'; Import-Module '$pester'" }
            $r = Invoke-QTFreshPwsh -Script @"
$imports
`$c = New-PesterConfiguration; `$c.Run.Path = '$test'; `$c.Run.PassThru = `$true; `$c.Output.Verbosity = 'None'
`$res = Invoke-Pester -Configuration `$c
"passed=`$(`$res.PassedCount) failed=`$(`$res.FailedCount)"
"@
            Remove-Item -LiteralPath $test -ErrorAction SilentlyContinue
            ($r.Output -join "`n") | Should -Match 'passed=2 failed=0' -Because "$order`: $($r.Output -join "`n")"
        }
    }
}
