<#
.SYNOPSIS
    Writes module/bin/en-US/QuantTools.PowerShell.dll-Help.xml (MAML) from module/help/<Cmdlet>.psd1.
.DESCRIPTION
    Parameter names, types, positions, pipeline input and parameter sets come from the compiled cmdlets; texts come
    from the help sources. Fails when a cmdlet has no help source, a parameter has no description, a described
    parameter does not exist, or a cmdlet has no example.
#>
$ErrorActionPreference = 'Stop'
$root = Split-Path -Parent $PSScriptRoot
Import-Module (Join-Path $root 'QuantTools.psd1') -Force
$helpDir = Join-Path $root 'module/help'
$common = [System.Management.Automation.Cmdlet]::CommonParameters + [System.Management.Automation.Cmdlet]::OptionalCommonParameters
$problems = [System.Collections.Generic.List[string]]::new()

function Esc([string] $s) { [System.Security.SecurityElement]::Escape($s) }
function Paras([string] $text) {
    if (-not $text) { return '<maml:para></maml:para>' }
    (($text.Trim() -split "(\r?\n){2,}") | Where-Object { $_.Trim() } | ForEach-Object { "<maml:para>$(Esc ($_.Trim() -replace '\s*\r?\n\s*', ' '))</maml:para>" }) -join ''
}
function TypeName([type] $t) {
    if ($t -eq [System.Management.Automation.SwitchParameter]) { return 'SwitchParameter' }
    return $t.Name
}
function ParamXml($p, $attr, [string] $desc) {
    $pos = if ($attr.Position -ge 0) { $attr.Position } else { 'named' }
    $pipe = @()
    if ($attr.ValueFromPipeline) { $pipe += 'ByValue' }
    if ($attr.ValueFromPipelineByPropertyName) { $pipe += 'ByPropertyName' }
    $pipeText = if ($pipe) { "True ($($pipe -join ', '))" } else { 'False' }
    $glob = [bool]($p.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
    $isSwitch = $p.ParameterType -eq [System.Management.Automation.SwitchParameter]
    $vs = $p.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] } | Select-Object -First 1
    $valueXml = if ($isSwitch) { '' } else { "<command:parameterValue required=`"true`" variableLength=`"false`">$(Esc (TypeName $p.ParameterType))</command:parameterValue>" }
    $setXml = if ($vs) { '<command:parameterValueGroup>' + (($vs.ValidValues | ForEach-Object { "<command:parameterValue required=`"false`" variableLength=`"false`">$(Esc $_)</command:parameterValue>" }) -join '') + '</command:parameterValueGroup>' } else { '' }
    @"
<command:parameter required="$($attr.Mandatory.ToString().ToLower())" variableLength="true" globbing="$($glob.ToString().ToLower())" pipelineInput="$pipeText" position="$pos" aliases="$(Esc (($p.Aliases) -join ', '))">
<maml:name>$(Esc $p.Name)</maml:name><maml:description>$(Paras $desc)</maml:description>$valueXml$setXml
<dev:type><maml:name>$(Esc $p.ParameterType.FullName)</maml:name></dev:type><dev:defaultValue>None</dev:defaultValue>
</command:parameter>
"@
}

$sb = [System.Text.StringBuilder]::new()
[void]$sb.AppendLine('<?xml version="1.0" encoding="utf-8"?>')
[void]$sb.AppendLine('<helpItems schema="maml" xmlns="http://msh">')
$cmds = Get-Command -Module QuantTools -CommandType Cmdlet | Sort-Object Name
foreach ($cmd in $cmds) {
    $src = Join-Path $helpDir "$($cmd.Name).psd1"
    if (-not (Test-Path $src)) { $problems.Add("$($cmd.Name): no help source $src"); continue }
    $h = Import-PowerShellDataFile $src
    $params = $cmd.Parameters.Values | Where-Object { $common -notcontains $_.Name }
    foreach ($p in $params) { if (-not $h.Parameters -or -not $h.Parameters[$p.Name]) { $problems.Add("$($cmd.Name): parameter -$($p.Name) has no description") } }
    if ($h.Parameters) { foreach ($k in $h.Parameters.Keys) { if (-not $cmd.Parameters.ContainsKey($k)) { $problems.Add("$($cmd.Name): help describes -$k, which does not exist") } } }
    if (-not $h.Examples -or $h.Examples.Count -lt 1) { $problems.Add("$($cmd.Name): no example") }
    if (-not $h.Synopsis) { $problems.Add("$($cmd.Name): no synopsis") }
    $verb, $noun = $cmd.Name -split '-', 2
    [void]$sb.AppendLine('<command:command xmlns:maml="http://schemas.microsoft.com/maml/2004/10" xmlns:command="http://schemas.microsoft.com/maml/dev/command/2004/10" xmlns:dev="http://schemas.microsoft.com/maml/dev/2004/10">')
    [void]$sb.AppendLine("<command:details><command:name>$(Esc $cmd.Name)</command:name><maml:description>$(Paras $h.Synopsis)</maml:description><command:verb>$verb</command:verb><command:noun>$noun</command:noun></command:details>")
    [void]$sb.AppendLine("<maml:description>$(Paras $h.Description)</maml:description>")
    [void]$sb.AppendLine('<command:syntax>')
    foreach ($set in $cmd.ParameterSets) {
        [void]$sb.AppendLine("<command:syntaxItem><maml:name>$(Esc $cmd.Name)</maml:name>")
        foreach ($sp in $set.Parameters | Where-Object { $common -notcontains $_.Name }) {
            $p = $cmd.Parameters[$sp.Name]
            $attr = [pscustomobject]@{ Position = $sp.Position; Mandatory = $sp.IsMandatory; ValueFromPipeline = $sp.ValueFromPipeline; ValueFromPipelineByPropertyName = $sp.ValueFromPipelineByPropertyName }
            [void]$sb.AppendLine((ParamXml $p $attr $h.Parameters[$sp.Name]))
        }
        [void]$sb.AppendLine('</command:syntaxItem>')
    }
    [void]$sb.AppendLine('</command:syntax><command:parameters>')
    foreach ($p in $params | Sort-Object Name) {
        $a = $p.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] }
        $attr = [pscustomobject]@{
            Position = ($a | Measure-Object -Property Position -Maximum).Maximum
            Mandatory = [bool]($a | Where-Object Mandatory)
            ValueFromPipeline = [bool]($a | Where-Object ValueFromPipeline)
            ValueFromPipelineByPropertyName = [bool]($a | Where-Object ValueFromPipelineByPropertyName)
        }
        if ($attr.Position -lt 0 -or $null -eq $attr.Position -or $attr.Position -eq [int]::MinValue) { $attr.Position = -1 }
        [void]$sb.AppendLine((ParamXml $p $attr $h.Parameters[$p.Name]))
    }
    [void]$sb.AppendLine('</command:parameters>')
    [void]$sb.AppendLine('<command:inputTypes>')
    foreach ($i in @($h.Inputs)) { if ($i) { [void]$sb.AppendLine("<command:inputType><dev:type><maml:name>$(Esc $i.Type)</maml:name></dev:type><maml:description>$(Paras $i.Description)</maml:description></command:inputType>") } }
    [void]$sb.AppendLine('</command:inputTypes><command:returnValues>')
    foreach ($o in @($h.Outputs)) { if ($o) { [void]$sb.AppendLine("<command:returnValue><dev:type><maml:name>$(Esc $o.Type)</maml:name></dev:type><maml:description>$(Paras $o.Description)</maml:description></command:returnValue>") } }
    [void]$sb.AppendLine('</command:returnValues>')
    if ($h.Notes) { [void]$sb.AppendLine("<maml:alertSet><maml:alert>$(Paras $h.Notes)</maml:alert></maml:alertSet>") }
    [void]$sb.AppendLine('<command:examples>')
    $n = 0
    foreach ($e in @($h.Examples)) {
        $n++
        [void]$sb.AppendLine("<command:example><maml:title>-------------------------- Example ${n}: $(Esc $e.Title) --------------------------</maml:title><dev:code>$(Esc $e.Code.Trim())</dev:code><dev:remarks>$(Paras $e.Remarks)</dev:remarks></command:example>")
    }
    [void]$sb.AppendLine('</command:examples><command:relatedLinks>')
    foreach ($l in @($h.Links)) { if ($l) { [void]$sb.AppendLine("<maml:navigationLink><maml:linkText>$(Esc $l)</maml:linkText><maml:uri></maml:uri></maml:navigationLink>") } }
    [void]$sb.AppendLine('</command:relatedLinks></command:command>')
}
[void]$sb.AppendLine('</helpItems>')
if ($problems.Count) {
    $problems | ForEach-Object { Write-Host "help: $_" -ForegroundColor Red }
    exit 1
}
$dir = Join-Path $root 'module/bin/en-US'
New-Item -ItemType Directory -Force $dir | Out-Null
[xml]$check = $sb.ToString()   # must be well-formed
$sb.ToString() | Set-Content -Encoding utf8 (Join-Path $dir 'QuantTools.PowerShell.dll-Help.xml')
Write-Host "help: $($cmds.Count) cmdlets documented"
exit 0
