BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
}

Describe 'QuantTools module' {
    It 'exports every cmdlet the manifest lists' {
        $manifest = Import-PowerShellDataFile $Manifest
        $exported = (Get-Command -Module QuantTools).Name
        foreach ($name in $manifest.CmdletsToExport) { $exported | Should -Contain $name }
    }

    It 'has help with a synopsis, parameter descriptions and examples for <_>' -ForEach @(
        (Import-PowerShellDataFile (Join-Path $PSScriptRoot '../../QuantTools.psd1')).CmdletsToExport
    ) {
        $help = Get-Help $_ -Full
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match '^\s*\S+\s*\[' # not the auto-generated syntax stub
        @($help.Examples.Example).Count | Should -BeGreaterThan 0
        $common = [System.Management.Automation.Cmdlet]::CommonParameters
        foreach ($p in (Get-Command $_).Parameters.Keys | Where-Object { $common -notcontains $_ -and $_ -notin 'WhatIf', 'Confirm' }) {
            $ph = $help.Parameters.Parameter | Where-Object Name -eq $p
            ($ph.Description | Out-String).Trim() | Should -Not -BeNullOrEmpty -Because "-$p needs a description"
        }
    }

    It 'loads QuantTools.Core into its own AssemblyLoadContext' {
        $asm = [System.AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'QuantTools.Core' }
        $asm | Should -Not -BeNullOrEmpty
        [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext($asm[0]).Name | Should -Be 'QuantTools'
    }
}
