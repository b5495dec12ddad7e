# Pester 5 Should operators for QuantTools (dot-sourced by QuantTools.psm1):
#   $actual | Should -BeQuantEqual $expected -MaxLsb 1
#   $actual | Should -HaveSqnrAbove 40 -Expected $reference
# Registered when the module loads if Pester 5 is loaded; otherwise the first time Describe / It / Should is looked up
# with Pester loaded, or explicitly with Register-QuantShouldOperator.

function Get-QTShouldMessage {
    param($Summary, [string] $Wanted, [string] $Because)
    $r = $Summary.Results | Where-Object Layer -eq $Summary.FirstDivergingLayer | Select-Object -First 1
    $because = if ($Because) { " because $($Because.Trim().TrimEnd('.'))," } else { '' }
    $sqnr = if ([double]::IsPositiveInfinity($r.Sqnr)) { 'inf' } else { '{0:F2} dB' -f $r.Sqnr }
    $lsb = if ($null -ne $r.MaxLsb) { "MaxLsb $($r.MaxLsb), $($r.DifferingElements) of $($r.Elements) elements differ, " } else { '' }
    $msg = "Expected layer '$($r.Layer)' $Wanted,$because but got ${lsb}SQNR $sqnr"
    if ($r.FirstBad) {
        $b = $r.FirstBad
        $idx = '[' + ($b.Index -join ', ') + ']'
        if ($null -ne $b.ReferenceInt) {
            $msg += "; first bad index $idx`: expected $($b.ReferenceInt) ($($b.ReferenceValue.ToString('G6', [cultureinfo]::InvariantCulture))), actual $($b.DifferenceInt) ($($b.DifferenceValue.ToString('G6', [cultureinfo]::InvariantCulture)))"
        }
        else {
            $msg += "; first bad index $idx`: expected $($b.ReferenceValue.ToString('G9', [cultureinfo]::InvariantCulture)), actual $($b.DifferenceValue.ToString('G9', [cultureinfo]::InvariantCulture))"
        }
    }
    if ($r.TopHint) { $msg += ". Likely cause: $($r.TopHint.Cause) - $($r.TopHint.Evidence)" }
    $msg + '.'
}

function Invoke-QTShouldCompare {
    param($ActualValue, $Reference, [hashtable] $Thresholds, $LayerMap, $BatchIndex)
    $actual = if ($ActualValue -is [array] -and $ActualValue.Count -eq 1) { $ActualValue[0] } else { $ActualValue }
    if ($null -eq $Reference) { throw 'no reference given: pass the expected tensor or layers (-ExpectedValue / -Expected)' }
    $p = @{ Reference = $Reference; Difference = $actual; Summary = $true; ErrorAction = 'Stop'; WarningAction = 'SilentlyContinue' } + $Thresholds
    if ($LayerMap) { $p.LayerMap = $LayerMap }
    if ($null -ne $BatchIndex) { $p.BatchIndex = [int]$BatchIndex }
    Compare-QuantOutput @p
}

function Test-QTShouldBeQuantEqual {
    # Passes when every layer of ActualValue is within -MaxLsb integer steps (default 0: bit exact) of ExpectedValue,
    # and at or above -MinSqnr when given.
    # -BatchIndex compares one batch element of every layer (a golden model file holds element 0). Comparing nothing
    # (no layer paired, or every pair a shape error) fails; it never passes.
    param($ActualValue, $ExpectedValue, $MaxLsb = 0, $MinSqnr, $LayerMap, $BatchIndex, [switch] $Negate, [string] $Because, $CallerSessionState)
    $t = @{ MaxLsb = [long]$MaxLsb }
    if ($null -ne $MinSqnr) { $t.MinSqnr = [double]$MinSqnr }
    $s = Invoke-QTShouldCompare -ActualValue $ActualValue -Reference $ExpectedValue -Thresholds $t -LayerMap $LayerMap -BatchIndex $BatchIndex
    $ok = $null -eq $s.FirstDivergingLayer -and $s.UnmatchedReference.Count -eq 0
    if ($Negate) { $ok = -not $ok }
    if (-not $ok -and -not $Negate -and $null -eq $s.FirstDivergingLayer) {
        return [pscustomobject]@{ Succeeded = $false; FailureMessage = "Expected every reference layer in the output, but $($s.UnmatchedReference.Count) are missing: $($s.UnmatchedReference -join ', ')." }
    }
    if ($ok) { return [pscustomobject]@{ Succeeded = $true; FailureMessage = $null } }
    $msg = if ($Negate) { "Expected the output to differ by more than $MaxLsb LSB somewhere, but all $($s.Layers) layers are within it." }
    else { Get-QTShouldMessage -Summary $s -Wanted "to be within $MaxLsb LSB of the reference$(if ($null -ne $MinSqnr) { " with SQNR >= $MinSqnr dB" })" -Because $Because }
    [pscustomobject]@{ Succeeded = $false; FailureMessage = $msg }
}

function Test-QTShouldHaveSqnrAbove {
    # Passes when every layer's SQNR (dB) against -Expected (or -Reference) is at or above ExpectedValue.
    param($ActualValue, $ExpectedValue, $Expected, $Reference, $LayerMap, $BatchIndex, [switch] $Negate, [string] $Because, $CallerSessionState)
    $ref = if ($null -ne $Expected) { $Expected } else { $Reference }
    $s = Invoke-QTShouldCompare -ActualValue $ActualValue -Reference $ref -Thresholds @{ MinSqnr = [double]$ExpectedValue } -LayerMap $LayerMap -BatchIndex $BatchIndex
    $ok = $null -eq $s.FirstDivergingLayer -and $s.UnmatchedReference.Count -eq 0
    if ($Negate) { $ok = -not $ok }
    if (-not $ok -and -not $Negate -and $null -eq $s.FirstDivergingLayer) {
        return [pscustomobject]@{ Succeeded = $false; FailureMessage = "Expected every reference layer in the output, but $($s.UnmatchedReference.Count) are missing: $($s.UnmatchedReference -join ', ')." }
    }
    if ($ok) { return [pscustomobject]@{ Succeeded = $true; FailureMessage = $null } }
    $msg = if ($Negate) { "Expected some layer's SQNR below $ExpectedValue dB, but the lowest is $('{0:F2}' -f $s.WorstSqnr) dB ($($s.WorstLayer))." }
    else { Get-QTShouldMessage -Summary $s -Wanted "to have SQNR above $ExpectedValue dB" -Because $Because }
    [pscustomobject]@{ Succeeded = $false; FailureMessage = $msg }
}

function Register-QuantShouldOperator {
    <#
    .SYNOPSIS
    Registers QuantTools' Pester 5 Should operators: BeQuantEqual and HaveSqnrAbove.
    .DESCRIPTION
    Importing QuantTools registers them when Pester 5 is already loaded, and otherwise the first time Describe, It or
    Should is looked up once Pester is loaded. Call this after importing Pester yourself if that did not happen (for
    example when Pester was removed and imported again). Returns $true when the operators are available.
    .EXAMPLE
    Import-Module Pester -MinimumVersion 5.7; Register-QuantShouldOperator
    $actual | Should -BeQuantEqual $expected -MaxLsb 1
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param()
    $pester = Get-Module Pester | Where-Object { $_.Version.Major -ge 5 } | Sort-Object Version -Descending | Select-Object -First 1
    if (-not $pester) {
        Write-Verbose 'Pester 5 is not loaded; import it first'
        return $false
    }
    $have = @(& $pester { $script:AssertionOperators.Keys })
    $ops = @(
        @{ Name = 'BeQuantEqual'; Test = ${function:Test-QTShouldBeQuantEqual}; InternalName = 'Test-QTShouldBeQuantEqual' }
        @{ Name = 'HaveSqnrAbove'; Test = ${function:Test-QTShouldHaveSqnrAbove}; InternalName = 'Test-QTShouldHaveSqnrAbove' }
    )
    $add = $pester.ExportedCommands['Add-ShouldOperator']
    foreach ($op in $ops) {
        if ($have -contains $op.Name) { continue }
        & $add -Name $op.Name -Test $op.Test -InternalName $op.InternalName -SupportsArrayInput
    }
    $script:QTRegisteredWith = $pester
    $true
}

# Register now when Pester 5 is loaded; otherwise when Pester's commands are first looked up with Pester loaded.
$script:QTRegisteredWith = $null
$script:QTInLookup = $false
$null = Register-QuantShouldOperator -ErrorAction SilentlyContinue
$script:QTLookupHandler = [EventHandler[System.Management.Automation.CommandLookupEventArgs]] {
    param($commandName, $eventArgs)
    if ($script:QTInLookup -or $commandName -notin 'Should', 'Describe', 'Context', 'It', 'BeforeAll', 'BeforeEach') { return }
    $script:QTInLookup = $true
    try {
        $pester = Get-Module Pester | Where-Object { $_.Version.Major -ge 5 } | Select-Object -First 1
        if ($pester -and -not [object]::ReferenceEquals($pester, $script:QTRegisteredWith)) {
            $null = Register-QuantShouldOperator -ErrorAction SilentlyContinue
        }
    }
    catch { }
    finally { $script:QTInLookup = $false }
}
$script:QTPreviousLookup = $ExecutionContext.InvokeCommand.PreCommandLookupAction
$ExecutionContext.InvokeCommand.PreCommandLookupAction = [Delegate]::Combine($script:QTPreviousLookup, $script:QTLookupHandler)
$ExecutionContext.SessionState.Module.OnRemove = {
    $ExecutionContext.InvokeCommand.PreCommandLookupAction = [Delegate]::Remove($ExecutionContext.InvokeCommand.PreCommandLookupAction, $script:QTLookupHandler)
}
