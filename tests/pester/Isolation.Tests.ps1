BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
}

Describe 'Dependency isolation' {
    It 'works when an older YamlDotNet (16.3.0) was loaded into the session first' {
        $nuget = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { ((& dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', '').Trim() }
        $old = Get-ChildItem (Join-Path $nuget 'yamldotnet/16.3.0/lib') -Recurse -Filter YamlDotNet.dll | Where-Object { $_.Directory.Name -like 'net8*' } | Select-Object -First 1
        $old | Should -Not -BeNullOrEmpty -Because 'YamlDotNet 16.3.0 is restored by the test project'
        $yaml = Join-Path $TestDrive 'obs.yaml'
        "observer: MinMaxObserver`ndtype: qint8`nqscheme: per_tensor_symmetric" | Set-Content $yaml
        $script = @"
`$ErrorActionPreference = 'Stop'
Add-Type -LiteralPath '$($old.FullName)'
'before=' + [YamlDotNet.Serialization.Deserializer].Assembly.GetName().Version
Import-Module '$Manifest'
`$qp = Get-QParams -InputObject @(-2.0, 1.0) -ConfigPath '$yaml'
'scale=' + `$qp.Scale.ToString('R') + ' zp=' + `$qp.ZeroPoint
'after=' + [YamlDotNet.Serialization.Deserializer].Assembly.GetName().Version
"@
        $r = Invoke-QTFreshPwsh $script
        $r.ExitCode | Should -Be 0 -Because ($r.Output -join "`n")
        $r.Output | Should -Contain 'before=16.0.0.0'
        $r.Output | Should -Contain 'after=16.0.0.0'
        # symmetric qint8: scale = max(|min|, max) / 127.5 in float32
        $r.Output | Should -Contain ('scale=' + ([double][float](2.0 / 127.5)).ToString('R') + ' zp=0')
    }
}
