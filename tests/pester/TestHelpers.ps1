# Shared by the Pester tests: repository paths and a fresh-process runner.
$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:Manifest = Join-Path $RepoRoot 'QuantTools.psd1'
$script:Golden = Join-Path $RepoRoot 'tests/fixtures/golden/pytorch-2.11/core'

function Invoke-QTFreshPwsh {
    # Runs a script block's text in a new pwsh process (a clean session) and returns its output lines.
    param([Parameter(Mandatory)] [string] $Script)
    $exe = (Get-Process -Id $PID).Path
    $file = Join-Path ([System.IO.Path]::GetTempPath()) ("qt-" + [guid]::NewGuid() + '.ps1')
    Set-Content -LiteralPath $file -Value $Script
    try {
        $env:NO_COLOR = '1'
        $out = & $exe -NoProfile -NonInteractive -File $file 2>&1
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = @($out | ForEach-Object { "$_" }) }
    }
    finally { Remove-Item -LiteralPath $file -ErrorAction SilentlyContinue }
}
