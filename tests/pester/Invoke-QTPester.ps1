<#
.SYNOPSIS
    Runs the Pester tests (Pester 5.7.1 from the NuGet cache) and writes the counts as JSON for build.ps1.
#>
param(
    [Parameter(Mandatory)] [string] $ResultPath,
    [Parameter(Mandatory)] [string] $NuGetPackages
)
$ErrorActionPreference = 'Stop'
$pester = Join-Path $NuGetPackages 'pester/5.7.1/tools/Pester.psd1'
if (-not (Test-Path $pester)) {
    throw "Pester 5.7.1 not found at $pester (it is restored by tests/QuantTools.Core.Tests through PackageDownload)"
}
Import-Module $pester -Force
$config = New-PesterConfiguration
$config.Run.Path = $PSScriptRoot
$config.Run.PassThru = $true
$config.Output.Verbosity = 'Normal'
$config.TestResult.Enabled = $true
$config.TestResult.OutputPath = [System.IO.Path]::ChangeExtension($ResultPath, '.xml')
$config.TestResult.OutputFormat = 'NUnitXml'
$r = Invoke-Pester -Configuration $config
[pscustomobject]@{ Passed = $r.PassedCount; Failed = $r.FailedCount + $r.FailedBlocksCount + $r.FailedContainersCount; Skipped = $r.SkippedCount + $r.NotRunCount } |
    ConvertTo-Json | Set-Content -LiteralPath $ResultPath
if ($r.FailedCount + $r.FailedBlocksCount + $r.FailedContainersCount -gt 0) { exit 1 }
exit 0
