<#
.SYNOPSIS
    The one entry point: build, test, demo, bench and package QuantTools.
.DESCRIPTION
    With no switch, builds the module into module/bin (Import-Module ./QuantTools.psd1 works afterwards).
    -Test    builds, runs every xunit and Pester test, prints "N passed, N failed[, N skipped]" and exits non-zero on any failure.
    -Demo    builds and runs examples/demo.ps1 on the bundled example data.
    -Bench   builds and runs the BenchmarkDotNet suite (optional -Filter), writing artifacts/bench/results.json.
    -Package builds and lays out a distributable module folder and zip under artifacts/package.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 -Test
#>
[CmdletBinding(DefaultParameterSetName = 'Build')]
param(
    [Parameter(ParameterSetName = 'Test')] [switch] $Test,
    [Parameter(ParameterSetName = 'Demo')] [switch] $Demo,
    [Parameter(ParameterSetName = 'Bench')] [switch] $Bench,
    [Parameter(ParameterSetName = 'Bench', Position = 0)] [string] $Filter = '*',
    [Parameter(ParameterSetName = 'Bench')] [switch] $Full,
    [Parameter(ParameterSetName = 'Package')] [switch] $Package,
    [ValidateSet('Debug', 'Release')] [string] $Configuration = 'Release'
)
$ErrorActionPreference = 'Stop'
Import-Module (Join-Path $PSScriptRoot '.build/QuantTools.Build.psm1') -Force

Invoke-QTBuild -Configuration $Configuration
switch ($PSCmdlet.ParameterSetName) {
    'Test'    { exit (Invoke-QTTest -Configuration $Configuration) }
    'Demo'    { exit (Invoke-QTDemo) }
    'Bench'   { exit (Invoke-QTBench -Filter $Filter -Full:$Full) }
    'Package' { Invoke-QTPackage -Configuration $Configuration }
}
