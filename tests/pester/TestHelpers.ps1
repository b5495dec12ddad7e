# Shared by the Pester tests: repository paths and a fresh-process runner.
$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:Manifest = Join-Path $RepoRoot 'QuantTools.psd1'
$script:Golden = Join-Path $RepoRoot 'tests/fixtures/golden/pytorch-2.11/core'

function Invoke-QTFreshPwsh {
    # Runs a script block's text in a new pwsh process (a clean session) and returns its output lines.
    param([Parameter(Mandatory)] [string] $Script)
    $pwsh = Get-QTPwshCommand
    $file = Join-Path ([System.IO.Path]::GetTempPath()) ("qt-" + [guid]::NewGuid() + '.ps1')
    Set-Content -LiteralPath $file -Value $Script
    try {
        $env:NO_COLOR = '1'
        $out = & $pwsh[0] @($pwsh | Select-Object -Skip 1) -NoProfile -NonInteractive -File $file 2>&1
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = @($out | ForEach-Object { "$_" }) }
    }
    finally { Remove-Item -LiteralPath $file -ErrorAction SilentlyContinue }
}

function Get-QTPwshCommand {
    # The pwsh running these tests. As a dotnet local tool it runs as 'dotnet <PSHOME>/pwsh.dll'.
    $exe = (Get-Process -Id $PID).Path
    if ((Split-Path -Leaf $exe) -like 'dotnet*') { return @($exe, (Join-Path $PSHOME 'pwsh.dll')) }
    return @($exe)
}

function Get-QTChromium {
    # Debian's chromium, installed by the test setup when missing (root with apt-get, as on this project's machines).
    $c = Get-Command chromium, chromium-browser -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($c) { return $c.Source }
    $apt = Get-Command apt-get -ErrorAction SilentlyContinue
    if (-not $apt -or (& id -u) -ne '0') { return $null }
    $env:DEBIAN_FRONTEND = 'noninteractive'
    & apt-get update -qq 2>&1 | Out-Null
    & apt-get install -y -qq chromium 2>&1 | Out-Null
    $c = Get-Command chromium -ErrorAction SilentlyContinue
    if ($c) { return $c.Source } else { return $null }
}
