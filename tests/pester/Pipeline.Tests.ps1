BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
    $script:models = Join-Path $Golden 'models'
    $script:example = Join-Path $RepoRoot 'examples/pipelines/golden-models.yaml'
    $script:pwsh = Get-QTPwshCommand

    function Start-QTPwsh([string] $Script, [hashtable] $Environment = @{}) {
        # a pwsh child process running $Script (a file), stdout/stderr to files next to it
        $psi = [System.Diagnostics.ProcessStartInfo]::new($pwsh[0])
        foreach ($a in @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $Script)) { $psi.ArgumentList.Add($a) }
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $psi.WorkingDirectory = $RepoRoot
        foreach ($k in $Environment.Keys) { $psi.Environment[$k] = $Environment[$k] }
        $psi.Environment['CI'] = ''
        [System.Diagnostics.Process]::Start($psi)
    }

    function Get-QTNormalizedResults([string] $Dir) {
        # results.json without what differs between runs: durations, start times, run ids
        (Get-Content -LiteralPath (Join-Path $Dir 'results.json')) -notmatch '^\s*"(Duration|Started|RunId)":' -join "`n"
    }
}

Describe 'Invoke-QuantPipeline' {
    It 'runs the example pipeline on the bundled models and writes every report' {
        $out = Join-Path $TestDrive 'example'
        $r = Invoke-QuantPipeline $example -OutputPath $out -ThrottleLimit 2 -FailOnRegression
        $r.Count | Should -Be 16
        @($r | Where-Object Status -ne 'Passed').Job | Should -BeNullOrEmpty
        foreach ($f in 'results.json', 'results.csv', 'junit.xml', 'summary.md') { Join-Path $out $f | Should -Exist }
        (Get-ChildItem (Join-Path $out 'jobs') -Filter *.json).Count | Should -Be 16
        [xml] $junit = Get-Content -Raw (Join-Path $out 'junit.xml')
        $asserts = ($r | ForEach-Object { $_.Steps } | ForEach-Object { $_.Assertions }).Count
        @($junit.SelectNodes('//testcase')).Count | Should -Be $asserts
        (Import-Csv (Join-Path $out 'results.csv')).Count | Should -Be 16
        $csv = Join-Path $out 'jobs' | Get-ChildItem -Recurse -Filter qparams.csv
        $csv | Should -HaveCount 2
        # per-channel columns survive: the same values Get-QParams gives, bit for bit
        $rows = Import-Csv ($csv | Where-Object { $_.FullName -like '*seed_convnet*' }).FullName
        $conv = $rows | Where-Object { $_.Kind -like 'Conv*' } | Select-Object -First 1
        $live = Get-QParams -Path (Join-Path $models 'seed_convnet.torchscript.pt') | Where-Object Name -eq $conv.Name
        foreach ($p in 'WeightScales', 'Multipliers', 'FixedPointMultipliers', 'Shifts', 'Int32Bias') {
            $conv.$p | Should -Not -BeNullOrEmpty -Because $p
            $conv.$p | Should -Be $live.$p.ToString() -Because $p
        }
        [double[]] ($conv.WeightScales -split ';') | Should -Be ([double[]] $live.WeightScales)
    }

    It 'writes an HTML summary with charts per job and layer that renders in headless Chromium' {
        $out = Join-Path $TestDrive 'html'
        $r = Invoke-QuantPipeline $example -OutputPath $out -ThrottleLimit 2 -FailOnRegression:$false
        $file = Join-Path $out 'summary.html'
        $html = Get-Content -Raw $file
        [xml] $doc = $html -replace '<!DOCTYPE html>', ''
        $ns = @{ s = 'http://www.w3.org/2000/svg' }
        $doc.SelectNodes('//table[@id="jobs"]/tr').Count | Should -Be ($r.Count + 1)
        $doc.SelectSingleNode('//p[@id="verdict"]').InnerText | Should -Be 'PASSED'
        # one bar per job, and an SQNR-per-layer chart for each compare step with one bar per compared layer
        ($doc | Select-Xml -XPath '//s:svg[@id="jobs-chart"]//s:rect[@class="bar"]' -Namespace $ns).Count | Should -Be $r.Count
        $compareRows = @($r | ForEach-Object { $_.Steps } | Where-Object { $_.Layers } | ForEach-Object { $_.Layers })
        $compareRows.Count | Should -BeGreaterThan 0
        ($doc | Select-Xml -XPath '//s:svg[starts-with(@id, "job-")]//s:rect[@class="bar"]' -Namespace $ns).Count | Should -Be $compareRows.Count
        $chromium = Get-QTChromium
        if (-not $chromium) {
            Set-ItResult -Skipped -Because 'Chromium is not installed and could not be installed (apt-get chromium)'
            return
        }
        $png = Join-Path $TestDrive 'summary.png'
        $flags = @('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', "--user-data-dir=$(Join-Path $TestDrive 'chromium-profile')", '--hide-scrollbars')
        & $chromium @flags --window-size=1200,2000 "--screenshot=$png" "file://$file" 2>&1 | Out-Null
        $bytes = [IO.File]::ReadAllBytes($png)
        $bytes[1..3] | Should -Be @(0x50, 0x4E, 0x47)
        [BitConverter]::ToInt32([byte[]]($bytes[19], $bytes[18], $bytes[17], $bytes[16]), 0) | Should -Be 1200
        $bytes.Length | Should -BeGreaterThan 30000 -Because 'charts and tables, not a blank page'
        $dom = (& $chromium @flags --dump-dom "file://$file" 2>$null) -join "`n"
        $dom | Should -Match '<svg[^>]+id="jobs-chart"'
        $dom | Should -Match '<svg[^>]+id="job-\d+-sqnr-0"'
        $dom | Should -Match 'compare-layers'
        if ($env:QT_KEEP_SCREENSHOT) { Copy-Item $png ($env:QT_KEEP_SCREENSHOT -replace '\.png$', '-pipeline.png') }
    }

    It '-Validate reports every problem with file:line:column before anything runs' {
        $bad = Join-Path $TestDrive 'bad.yaml'
        Set-Content -LiteralPath $bad -Value @"
jobs:
  - name: a
    modles: x.pt
    steps:
      - run: {engines: [tpu]}
"@
        $err = { Invoke-QuantPipeline $bad -Validate -OutputPath (Join-Path $TestDrive 'never') } | Should -Throw -PassThru
        $err.Exception.Message | Should -BeLike "*bad.yaml:3:5: job: unknown key 'modles'*"
        $err.Exception.Message | Should -BeLike "*bad.yaml:5:25: run.engines: unknown engine 'tpu'*"
        $err.FullyQualifiedErrorId | Should -BeLike 'QuantTools.PipelineInvalid*'
        Join-Path $TestDrive 'never' | Should -Not -Exist
        $jobs = Invoke-QuantPipeline $example -Validate -Shard 1/4
        $jobs.Count | Should -BeIn 3, 4
    }

    It 'fails the build on a planted regression, naming job, layer and metric' {
        # a copy of the golden state_dict with conv1's activation scale changed, written as torch.save does
        $dir = Join-Path $TestDrive 'planted'
        New-Item -ItemType Directory $dir | Out-Null
        $null = Get-QParams -InputObject 1.0   # QuantTools.Core is loaded
        $core = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'QuantTools.Core' } | Select-Object -First 1
        $ck = $core.GetType('QuantTools.Core.Formats.Torch.TorchCheckpoint')::Load((Join-Path $models 'seed_convnet.state_dict.pt'))
        $scale = $ck.StateDict['conv1.scale']
        $scale.Data[0] = [float]($scale.Data[0] * 1.25)
        $core.GetType('QuantTools.Core.Formats.Torch.TorchSaveWriter')::WriteStateDict((Join-Path $dir 'epoch7.state_dict.pt'), $ck.StateDict)
        Copy-Item (Join-Path $models 'seed_convnet.state_dict.pt') (Join-Path $dir 'epoch6.state_dict.pt')
        $yaml = Join-Path $dir 'qat.yaml'
        Set-Content -LiteralPath $yaml -Value @"
variables: {golden: "$($models -replace '\\', '/')/seed_convnet.safetensors"}
jobs:
  - name: qat
    models: ./*.state_dict.pt
    architecture: "$((Join-Path $RepoRoot 'examples/architectures/seed_convnet.yaml') -replace '\\', '/')"
    inputs: [{file: "`${golden}", tensors: [input]}]
    steps:
      - run
      - assert:
          - {metric: qparams.OutputScale, layer: conv1, equals: 0.023252634331583977}
          - {metric: output.max_diff_lsb, golden: "`${golden}", tensor: output, max: 0}
"@
        $out = Join-Path $dir 'out'
        # as a CI step runs it: pwsh -File with $ErrorActionPreference = 'Stop' (GitHub Actions' and Azure Pipelines' pwsh default)
        $run = Invoke-QTFreshPwsh "`$ErrorActionPreference = 'Stop'; Import-Module '$Manifest'; Invoke-QuantPipeline '$yaml' -OutputPath '$out' -FailOnRegression | Out-Null"
        $run.ExitCode | Should -Not -Be 0
        ($run.Output -join "`n") | Should -BeLike '*qat/epoch7.state_dict.pt: assert qparams.OutputScale layer ''conv1''*'
        $results = Get-Content -Raw (Join-Path $out 'results.json') | ConvertFrom-Json
        ($results.Jobs | Where-Object Job -eq 'qat/epoch6.state_dict.pt').Status | Should -Be 'Passed'
        $bad = $results.Jobs | Where-Object Job -eq 'qat/epoch7.state_dict.pt'
        $bad.Status | Should -Be 'Failed'
        $f = $bad.Failures | Where-Object Metric -eq 'qparams.OutputScale'
        $f.Layer | Should -Be 'conv1'
        $f.Actual | Should -Be ([double][float](0.023252634331583977 * 1.25))
        ($bad.Failures | Where-Object Metric -eq 'output.max_diff_lsb').Actual | Should -BeGreaterThan 0
        [xml] $junit = Get-Content -Raw (Join-Path $out 'junit.xml')
        $failure = $junit.SelectNodes('//testcase[failure]') | Where-Object { $_.failure.type -eq 'qparams.OutputScale' }
        $failure.classname | Should -Be 'qat/epoch7.state_dict.pt'
        $failure.failure.message | Should -BeLike 'layer conv1:*'
        Get-Content -Raw (Join-Path $out 'summary.md') | Should -BeLike '*| qat/epoch7.state_dict.pt | assert | conv1 | qparams.OutputScale |*'
    }

    It 'compares every layer with a golden file: passes on the bundled models, names layer and metric when perturbed, -UpdateGolden -Force rewrites it' {
        $dir = Join-Path $TestDrive 'compare'
        New-Item -ItemType Directory $dir | Out-Null
        foreach ($f in 'seed_convnet.json', 'seed_convnet.safetensors', 'seed_convnet.torchscript.pt') { Copy-Item (Join-Path $models $f) $dir }
        $yaml = Join-Path $dir 'compare.yaml'
        Set-Content -LiteralPath $yaml -Value @"
jobs:
  - name: cmp
    models: seed_convnet.torchscript.pt
    inputs: [{file: "$((Join-Path $models 'seed_convnet.safetensors') -replace '\\', '/')", tensors: [input]}]
    steps:
      - run
      - compare: {against: {golden: seed_convnet.json}, max_lsb: 0}
      - assert:
          - {metric: compare.first_diverging_layer}
          - {metric: compare.max_lsb, max: 0}
"@
        $ok = Invoke-QuantPipeline $yaml -OutputPath (Join-Path $dir 'out1') -FailOnRegression
        $ok.Status | Should -Be 'Passed'
        $rows = ((Get-Content -Raw (Join-Path $dir 'out1/results.json') | ConvertFrom-Json).Jobs[0].Steps | Where-Object Step -eq 'compare').Layers
        $rows.Layer | Should -Be @('quant', 'conv1', 'bn1', 'act1', 'conv2', 'bn2', 'act2', 'conv3', 'output')
        @($rows | Where-Object { -not $_.Passed }) | Should -BeNullOrEmpty

        # perturb one integer of act2 in the golden's companion file
        $null = Get-QParams -InputObject 1.0
        $core = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'QuantTools.Core' } | Select-Object -First 1
        $st = $core.GetType('QuantTools.Core.Formats.SafeTensorsFile')
        $golden = Join-Path $dir 'seed_convnet.safetensors'
        $file = $st::Open($golden)
        $all = $file.ReadAll($false)
        $t = ($all | Where-Object { $_.Item1 -eq 'act/act2/int' }).Item2
        $t.Data[7] = [byte](($t.Data[7] + 2) % 256)
        $st::Write("$golden.new", $all, $file.Metadata)
        Move-Item -Force "$golden.new" $golden
        $before = (Get-FileHash $golden).Hash

        $bad = Invoke-QuantPipeline $yaml -OutputPath (Join-Path $dir 'out2') -FailOnRegression:$false
        $bad.Status | Should -Be 'Failed'
        $first = $bad.Failures | Where-Object Metric -eq 'compare.first_diverging_layer'
        $first.Layer | Should -Be 'act2'
        $first.Message | Should -BeLike "*first diverging layer 'act2'*"
        ($bad.Failures | Where-Object Metric -eq 'compare.max_lsb').Layer | Should -Be 'act2'
        [xml] $junit = Get-Content -Raw (Join-Path $dir 'out2/junit.xml')
        ($junit.SelectNodes('//testcase[failure]') | ForEach-Object { $_.failure.type }) | Should -Contain 'compare.first_diverging_layer'

        # -WhatIf only lists; -UpdateGolden -Force rewrites and lists what it wrote; then the plain run passes
        Invoke-QuantPipeline $yaml -OutputPath (Join-Path $dir 'whatif') -UpdateGolden -WhatIf | Should -BeNullOrEmpty
        (Get-FileHash $golden).Hash | Should -Be $before
        $up = Invoke-QuantPipeline $yaml -OutputPath (Join-Path $dir 'out3') -UpdateGolden -Force -InformationVariable info -FailOnRegression
        $up.Status | Should -Be 'Passed'
        $up.GoldenWritten | Should -Be @($golden)
        ($info | ForEach-Object { "$_" }) -join "`n" | Should -BeLike "*rewrote $golden*"
        (Get-FileHash $golden).Hash | Should -Not -Be $before
        (Invoke-QuantPipeline $yaml -OutputPath (Join-Path $dir 'out4') -FailOnRegression).Status | Should -Be 'Passed'
    }

    It 'runs 4 shards as separate processes that merge into the single-run report' {
        $shards = 1..4 | ForEach-Object {
            $dir = Join-Path $TestDrive "shard$_"
            $script = Join-Path $TestDrive "shard$_.ps1"
            Set-Content -LiteralPath $script -Value "Import-Module '$Manifest'; Invoke-QuantPipeline '$example' -Shard $_/4 -OutputPath '$dir' -ThrottleLimit 1 | Out-Null"
            [pscustomobject]@{ Dir = $dir; Process = Start-QTPwsh $script }
        }
        $single = Join-Path $TestDrive 'single'
        Invoke-QuantPipeline $example -OutputPath $single -ThrottleLimit 2 | Out-Null
        foreach ($s in $shards) {
            $s.Process.WaitForExit(120000) | Should -BeTrue
            $s.Process.ExitCode | Should -Be 0 -Because $s.Process.StandardError.ReadToEnd()
        }
        $counts = $shards | ForEach-Object { (Get-Content -Raw (Join-Path $_.Dir 'results.json') | ConvertFrom-Json).Jobs.Count }
        ($counts | Measure-Object -Sum).Sum | Should -Be 16
        $merged = Join-Path $TestDrive 'merged'
        $summary = Merge-QuantReport $shards.Dir -OutputPath $merged
        $summary.Jobs | Should -Be 16
        $summary.Passed | Should -Be 16
        Get-QTNormalizedResults $merged | Should -BeExactly (Get-QTNormalizedResults $single)
        (Import-Csv (Join-Path $merged 'results.csv')).Job | Should -Be (Import-Csv (Join-Path $single 'results.csv')).Job
        $summary.Shards | Should -Be 'shards 1/4, 2/4, 3/4, 4/4 (complete)'
        (Get-Content -Raw (Join-Path $shards[1].Dir 'shard.json') | ConvertFrom-Json).Index | Should -Be 2
        # a missing shard never merges into a PASSED report
        { Merge-QuantReport $shards[0].Dir -OutputPath (Join-Path $TestDrive 'only1') -FailOnRegression:$false } | Should -Throw -ExpectedMessage '*2/4, 3/4, 4/4 missing*'
        $p = Merge-QuantReport $shards[0].Dir, $shards[2].Dir -OutputPath (Join-Path $TestDrive 'part') -AllowPartial -FailOnRegression:$false -WarningVariable w -WarningAction SilentlyContinue
        "$w" | Should -BeLike '*2/4, 4/4 missing*of 16 jobs*'
        $p.Shards | Should -BeLike '*PARTIAL*'
        Get-Content -Raw (Join-Path $TestDrive 'part/summary.md') | Should -Match '\*\*INCOMPLETE\*\*'
        { Merge-QuantReport $shards[0].Dir, $shards[0].Dir, $shards[1].Dir, $shards[2].Dir, $shards[3].Dir -OutputPath (Join-Path $TestDrive 'dup') } | Should -Not -Throw
    }

    It 'resumes a killed run with no job lost or run twice' {
        $dir = Join-Path $TestDrive 'resume'
        New-Item -ItemType Directory $dir | Out-Null
        $yaml = Join-Path $dir 'slow.yaml'
        Set-Content -LiteralPath $yaml -Value @'
jobs:
  - name: slow
    matrix: {seed: [1, 2, 3, 4, 5, 6]}
    inputs:
      - random: {shape: [16, 3, 112, 112], seed: "${seed}"}
    steps:
      - calibrate: {engine: x86}
      - quantize
      - assert:
          - {metric: quantize.max_error_lsb, max: 1000}
'@
        $out = Join-Path $dir 'out'
        $log = Join-Path $dir 'runs.log'
        $script = Join-Path $dir 'run.ps1'
        Set-Content -LiteralPath $script -Value "Import-Module '$Manifest'; Invoke-QuantPipeline '$yaml' -OutputPath '$out' -ThrottleLimit 1 | Out-Null"
        $p = Start-QTPwsh $script @{ QUANTTOOLS_PIPELINE_LOG = $log }
        $deadline = [DateTime]::UtcNow.AddSeconds(60)
        while (-not (Test-Path (Join-Path $out 'jobs/*.json')) -and [DateTime]::UtcNow -lt $deadline -and -not $p.HasExited) { Start-Sleep -Milliseconds 20 }
        $p.Kill($true)
        $p.WaitForExit()
        $kept = @(Get-ChildItem (Join-Path $out 'jobs') -Filter *.json | ForEach-Object { Get-Content -Raw $_.FullName | ConvertFrom-Json })
        $kept.Count | Should -BeGreaterThan 0
        $kept.Count | Should -BeLessThan 6 -Because 'the run was killed mid-way'
        Join-Path $out 'results.json' | Should -Not -Exist
        Get-ChildItem (Join-Path $out 'jobs') -Filter *.tmp | Should -BeNullOrEmpty

        $env:QUANTTOOLS_PIPELINE_LOG = $log
        try { $r = Invoke-QuantPipeline $yaml -OutputPath $out -ThrottleLimit 2 -Resume }
        finally { Remove-Item Env:QUANTTOOLS_PIPELINE_LOG }
        $r.Count | Should -Be 6
        @($r | Where-Object Status -ne 'Passed') | Should -BeNullOrEmpty
        $resumed = @($r | Where-Object Resumed).Job | Sort-Object
        $resumed | Should -Be (@($kept.Job) | Sort-Object)
        foreach ($k in $kept) { ($r | Where-Object Job -eq $k.Job).RunId | Should -Be $k.RunId }

        $lines = Get-Content $log | ForEach-Object { $e, $job, $procId, $run = $_ -split "`t"; [pscustomobject]@{ Event = $e; Job = $job; Pid = [int]$procId } }
        $second = $lines | Where-Object Pid -eq $PID
        # the resumed run started exactly the jobs the killed run had not finished, each once
        @($second | Where-Object Event -eq 'started').Job | Sort-Object | Should -Be (@($r | Where-Object { -not $_.Resumed }).Job | Sort-Object)
        @($second | Where-Object Event -eq 'finished').Job | Sort-Object | Should -Be (@($r | Where-Object { -not $_.Resumed }).Job | Sort-Object)
        # no job finished twice across both runs
        $finished = @($lines | Where-Object Event -eq 'finished' | Group-Object Job | Where-Object Count -gt 1)
        $finished | Should -BeNullOrEmpty
        (Get-Content -Raw (Join-Path $out 'results.json') | ConvertFrom-Json).Jobs.Count | Should -Be 6
    }
}
