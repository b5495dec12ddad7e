# Build logic for build.ps1 (which only dispatches). Every step runs dotnet from the repository root.
$ErrorActionPreference = 'Stop'
$script:Root = Split-Path -Parent $PSScriptRoot
$script:ModuleBin = Join-Path $Root 'module/bin'
$script:Artifacts = Join-Path $Root 'artifacts'
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'
$env:DOTNET_SKIP_FIRST_TIME_EXPERIENCE = '1'

function Invoke-Dotnet {
    # No param block: every argument (including dotnet's own -v q, -c ...) arrives untouched in $args.
    $Arguments = @($args)
    Write-Host "dotnet $($Arguments -join ' ')" -ForegroundColor DarkGray
    & dotnet @Arguments
    if ($LASTEXITCODE -ne 0) { throw "dotnet $($Arguments[0]) failed with exit code $LASTEXITCODE" }
}

function Get-QTPwsh {
    # The pwsh running this script (the local dotnet tool); child processes use the same one.
    $exe = (Get-Process -Id $PID).Path
    if ($exe -and (Split-Path -Leaf $exe) -like 'pwsh*') { return @($exe) }
    if ($exe -and (Split-Path -Leaf $exe) -like 'dotnet*') { return @($exe, (Join-Path $PSHOME 'pwsh.dll')) }
    return @('dotnet', 'pwsh')
}

function Invoke-QTPwshChild {
    param([string] $File, [string[]] $Arguments = @())
    $cmd = Get-QTPwsh
    $exe = $cmd[0]
    $pre = @($cmd | Select-Object -Skip 1)
    & $exe @pre -NoProfile -NonInteractive -File $File @Arguments | Out-Host
    return $LASTEXITCODE
}

function Get-QTNuGetPackages {
    if ($env:NUGET_PACKAGES) { return $env:NUGET_PACKAGES }
    $line = & dotnet nuget locals global-packages --list | Select-Object -First 1
    return ($line -replace '^global-packages:\s*', '').Trim()
}

function Publish-QTTorch {
    # -Engine libtorch: QuantTools.Torch + TorchSharp + the linux-x64 libtorch natives in module/bin/torch, which the
    # module loads only when that engine is asked for (src/QuantTools.PowerShell/Internal/TorchEngine.cs). The publish
    # target of src/QuantTools.Torch/build/QuantTools.Torch.targets marks GLIBCXX_3.4.32 weak in this copy of
    # libLibTorchSharp.so where the system libstdc++ lacks it. Skipped (with a note) where it cannot run: not linux-x64,
    # or QT_SKIP_TORCH=1.
    param([string] $Configuration, [string] $Deps)
    $torch = Join-Path $ModuleBin 'torch'
    $rid = [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier
    if ($env:QT_SKIP_TORCH -eq '1' -or -not $IsLinux -or [System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture -ne 'X64') {
        if (Test-Path $torch) { Remove-Item -Recurse -Force $torch }
        Write-Host "module/bin/torch not built ($rid$(if ($env:QT_SKIP_TORCH -eq '1') { ', QT_SKIP_TORCH=1' })): -Engine libtorch will say it is not installed" -ForegroundColor Yellow
        return
    }
    Invoke-Dotnet publish src/QuantTools.Torch/QuantTools.Torch.csproj -c $Configuration -o $torch -v m -nologo '-clp:NoSummary' |
        Where-Object { $_ -match 'QuantTools.Torch:|error|warn' } | Out-Host
    # Core and its dependencies load from bin/deps (one copy in the module's load context); libtorch's test and
    # Python-binding libraries are never loaded by TorchSharp.
    $drop = @(Get-ChildItem $Deps -File | ForEach-Object Name) + @('QuantTools.Torch.deps.json',
        'libtorch_python.so', 'libjitbackend_test.so', 'libtorchbind_test.so', 'libbackend_with_compiler.so',
        'libnnapi_backend.so', 'libaoti_custom_ops.so')
    foreach ($f in $drop) { Remove-Item -LiteralPath (Join-Path $torch $f) -Force -ErrorAction SilentlyContinue }
    $mb = [math]::Round(((Get-ChildItem $torch -File | Measure-Object Length -Sum).Sum) / 1MB)
    Write-Host "libtorch engine: $torch ($mb MB)" -ForegroundColor DarkGray
}

function Publish-QTOnnxRuntime {
    # -Engine onnxruntime: QuantTools.OnnxRuntime + Microsoft.ML.OnnxRuntime 1.30 (linux-x64 natives) in
    # module/bin/onnxruntime, loaded only when that engine is asked for (src/QuantTools.PowerShell/Internal/OnnxRuntimeEngine.cs).
    param([string] $Configuration, [string] $Deps)
    $dest = Join-Path $ModuleBin 'onnxruntime'
    if ($env:QT_SKIP_ONNXRUNTIME -eq '1' -or -not $IsLinux -or [System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture -ne 'X64') {
        if (Test-Path $dest) { Remove-Item -Recurse -Force $dest }
        Write-Host "module/bin/onnxruntime not built: -Engine onnxruntime will say it is not installed" -ForegroundColor Yellow
        return
    }
    Invoke-Dotnet publish src/QuantTools.OnnxRuntime/QuantTools.OnnxRuntime.csproj -c $Configuration -o $dest -v q -nologo '-clp:NoSummary' | Out-Host
    # Core and its dependencies load from bin/deps; the Windows natives of the package are never loaded here.
    $drop = @(Get-ChildItem $Deps -File | ForEach-Object Name) + @('QuantTools.OnnxRuntime.deps.json', 'onnxruntime.dll', 'onnxruntime_providers_shared.dll')
    foreach ($f in $drop) { Remove-Item -LiteralPath (Join-Path $dest $f) -Force -ErrorAction SilentlyContinue }
}

function Invoke-QTBuild {
    param([string] $Configuration = 'Release')
    Push-Location $Root
    try {
        Invoke-Dotnet build src/QuantTools.PowerShell/QuantTools.PowerShell.csproj -c $Configuration -v q -nologo
        # Cmdlet assembly at module/bin; Core and its dependencies at module/bin/deps (own AssemblyLoadContext).
        $deps = Join-Path $ModuleBin 'deps'
        # bin/torch (~450 MB) is kept between builds: its publish below only copies what changed.
        if (Test-Path $ModuleBin) { Get-ChildItem $ModuleBin | Where-Object Name -notin 'torch', 'onnxruntime' | Remove-Item -Recurse -Force }
        New-Item -ItemType Directory -Force $deps | Out-Null
        Invoke-Dotnet publish src/QuantTools.Core/QuantTools.Core.csproj -c $Configuration -o $deps -v q -nologo
        Publish-QTTorch -Configuration $Configuration -Deps $deps
        Publish-QTOnnxRuntime -Configuration $Configuration -Deps $deps
        $psOut = Join-Path $Root "src/QuantTools.PowerShell/bin/$Configuration/net10.0"
        Copy-Item (Join-Path $psOut 'QuantTools.PowerShell.dll') $ModuleBin
        Copy-Item (Join-Path $psOut 'QuantTools.PowerShell.pdb') $ModuleBin -ErrorAction SilentlyContinue
        Get-ChildItem $deps -Filter '*.deps.json' | Remove-Item
        # Help (MAML) from module/help/*.psd1, checked against the compiled cmdlets' parameters.
        $rc = Invoke-QTPwshChild -File (Join-Path $PSScriptRoot 'New-QTHelp.ps1')
        if ($rc -ne 0) { throw "help generation failed" }
        Write-Host "Built module: $(Join-Path $Root 'QuantTools.psd1')" -ForegroundColor Green
    }
    finally { Pop-Location }
}

function Read-QTTrx {
    param([string] $Path)
    [xml] $x = Get-Content -Raw $Path
    $c = $x.TestRun.ResultSummary.Counters
    [pscustomobject]@{
        Passed  = [int]$c.passed
        Failed  = [int]$c.failed + [int]$c.error + [int]$c.timeout + [int]$c.aborted
        Skipped = [int]$c.notExecuted
    }
}

function Invoke-QTTest {
    param([string] $Configuration = 'Release')
    $resultsDir = Join-Path $Artifacts 'test'
    if (Test-Path $resultsDir) { Remove-Item -Recurse -Force $resultsDir }
    New-Item -ItemType Directory -Force $resultsDir | Out-Null
    $totals = [ordered]@{ Passed = 0; Failed = 0; Skipped = 0 }
    $suites = @()
    Push-Location $Root
    try {
        foreach ($proj in Get-ChildItem (Join-Path $Root 'tests') -Recurse -Filter '*.Tests.csproj' | Sort-Object FullName) {
            $name = $proj.BaseName
            $trx = "$name.trx"
            Write-Host "== xunit: $name" -ForegroundColor Cyan
            & dotnet test $proj.FullName -c $Configuration -nologo -v q --logger "trx;LogFileName=$trx" --logger 'console;verbosity=minimal' --results-directory $resultsDir | Out-Host
            $testRc = $LASTEXITCODE
            $trxPath = Join-Path $resultsDir $trx
            if (Test-Path $trxPath) {
                $r = Read-QTTrx $trxPath
            }
            else {
                Write-Host "   $name did not produce results (build or host failure)" -ForegroundColor Red
                $r = [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 }
            }
            if ($testRc -ne 0 -and $r.Failed -eq 0) { $r.Failed = 1 }
            $suites += [pscustomobject]@{ Suite = $name; Passed = $r.Passed; Failed = $r.Failed; Skipped = $r.Skipped }
        }
        Write-Host "== Pester" -ForegroundColor Cyan
        $pesterJson = Join-Path $resultsDir 'pester.json'
        $rc = Invoke-QTPwshChild -File (Join-Path $Root 'tests/pester/Invoke-QTPester.ps1') -Arguments @('-ResultPath', $pesterJson, '-NuGetPackages', (Get-QTNuGetPackages))
        if (Test-Path $pesterJson) {
            $p = Get-Content -Raw $pesterJson | ConvertFrom-Json
            if ($rc -ne 0 -and $p.Failed -eq 0) { $p.Failed = 1 }
        }
        else { $p = [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 } }
        $suites += [pscustomobject]@{ Suite = 'Pester'; Passed = $p.Passed; Failed = $p.Failed; Skipped = $p.Skipped }
    }
    finally { Pop-Location }
    foreach ($s in $suites) {
        $totals.Passed += $s.Passed; $totals.Failed += $s.Failed; $totals.Skipped += $s.Skipped
        Write-Host ("   {0,-28} {1,6} passed {2,4} failed {3,4} skipped" -f $s.Suite, $s.Passed, $s.Failed, $s.Skipped)
    }
    $line = "$($totals.Passed) passed, $($totals.Failed) failed"
    if ($totals.Skipped -gt 0) { $line += ", $($totals.Skipped) skipped" }
    # The closing line CI reads; the function's only output is the exit code.
    Write-Host $line
    if ($totals.Failed -gt 0) { return 1 } else { return 0 }
}

function Invoke-QTDemo {
    return (Invoke-QTPwshChild -File (Join-Path $Root 'examples/demo.ps1'))
}

function Invoke-QTBench {
    param([string] $Filter = '*', [switch] $Full)
    $proj = Join-Path $Root 'src/QuantTools.Benchmarks/QuantTools.Benchmarks.csproj'
    if (-not (Test-Path $proj)) { throw "no benchmark project at $proj" }
    $runArgs = @('run', '-c', 'Release', '--project', $proj, '--')
    if ($Filter -and $Filter -ne '*') { $runArgs += $Filter }
    if ($Full) { $runArgs += '--full' }
    Push-Location $Root
    try { & dotnet @runArgs | Out-Host; return $LASTEXITCODE } finally { Pop-Location }
}

function Invoke-QTPackage {
    param([string] $Configuration = 'Release')
    $dest = Join-Path $Artifacts 'package/QuantTools'
    if (Test-Path $dest) { Remove-Item -Recurse -Force $dest }
    New-Item -ItemType Directory -Force $dest | Out-Null
    Copy-Item (Join-Path $Root 'QuantTools.psd1') $dest
    Copy-Item (Join-Path $Root 'README.md') $dest
    New-Item -ItemType Directory -Force (Join-Path $dest 'module') | Out-Null
    Get-ChildItem (Join-Path $Root 'module') | Where-Object Name -ne 'help' | Copy-Item -Destination (Join-Path $dest 'module') -Recurse
    $zip = Join-Path $Artifacts 'package/QuantTools.zip'
    Compress-Archive -Path $dest -DestinationPath $zip -Force
    Write-Host "Package: $dest and $zip" -ForegroundColor Green
}

Export-ModuleMember -Function Invoke-QTBuild, Invoke-QTTest, Invoke-QTDemo, Invoke-QTBench, Invoke-QTPackage
