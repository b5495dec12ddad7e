# Root module: loads the binary cmdlets. QuantTools.Core and its dependencies live in bin/deps and are loaded into
# the module's own AssemblyLoadContext by QuantTools.PowerShell's module initializer.
$binary = Join-Path $PSScriptRoot 'bin/QuantTools.PowerShell.dll'
if (-not (Test-Path -LiteralPath $binary)) {
    throw "QuantTools is not built yet: '$binary' is missing. Run 'dotnet pwsh ./build.ps1' in the repository first."
}
Import-Module -Name $binary -ErrorAction Stop
. (Join-Path $PSScriptRoot 'QuantTools.Assertions.ps1')
Export-ModuleMember -Cmdlet * -Function * -Alias *
