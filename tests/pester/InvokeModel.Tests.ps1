BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
    $models = Join-Path $Golden 'models'
    function Bits([float[]] $a) { $a | ForEach-Object { [BitConverter]::SingleToInt32Bits($_) } }
}

Describe 'Invoke-QuantModel' {
    It 'reproduces <_>''s output and every captured layer bit for bit (x86)' -ForEach @('seed_convnet', 'relu6_eager') {
        $st = Join-Path $models "$_.safetensors"
        $case = (Get-Content -Raw (Join-Path $models "$_.json") | ConvertFrom-Json).cases[0]
        $input = Import-QuantTensor $st -Name input
        $expected = Import-QuantTensor $st -Name output
        $r = $input | Invoke-QuantModel (Join-Path $models "$_.torchscript.pt") -CaptureLayers
        $r.Engine | Should -Be 'x86'
        $r.CpuClass | Should -Be 'avx512-vnni'   # the golden host's class is the default on any machine
        (Bits $r.Output.Data) | Should -Be (Bits $expected.Data)
        # layers were recorded on input[0:1]
        $first = Invoke-QuantModel (Join-Path $models "$_.torchscript.pt") -InputObject (Import-QuantTensor $st -Name input) -CaptureLayers
        foreach ($l in $case.layer_outputs_for_input0) {
            $got = $first.Layers | Where-Object Name -eq $l.module
            $got | Should -Not -BeNullOrEmpty -Because $l.module
            $got.QParams.Scale | Should -Be $l.y.scale
            $got.QParams.ZeroPoint | Should -Be $l.y.zero_point
            $ints = (Import-QuantTensor $st -Name ([WildcardPattern]::Escape($l.y.int))).Data
            $n = $ints.Length
            [System.Linq.Enumerable]::SequenceEqual([long[]]@($got.Value.IntRepr.Data[0..($n - 1)]), [long[]]$ints) | Should -BeTrue -Because $l.module
        }
    }

    It 'writes the layers to a safetensors file that Import-QuantTensor reads back with qparams' {
        $st = Join-Path $models 'seed_convnet.safetensors'
        $out = Join-Path $TestDrive 'dump.safetensors'
        Import-QuantTensor $st -Name input | Invoke-QuantModel (Join-Path $models 'seed_convnet.torchscript.pt') -OutputPath $out | Out-Null
        $back = Import-QuantTensor $out
        ($back | Where-Object Name -eq 'conv1').QParams.Scale | Should -Be ((Get-QParams -Path (Join-Path $models 'seed_convnet.torchscript.pt')) | Where-Object Name -eq conv1).OutputScale
        ($back | Where-Object Name -eq 'output') | Should -Not -BeNullOrEmpty
    }

    It 'names an unsupported model file clearly' {
        { Invoke-QuantModel (Join-Path $models 'seed_convnet.state_dict.pt') -InputObject 1.0 -ErrorAction Stop } | Should -Throw -ExpectedMessage '*state_dict*no forward code*Pass -Architecture*built-in architecture (torchvision:<name>)*'
    }
}

Describe 'Invoke-QuantModel -Engine libtorch' {
    # libtorch (TorchSharp, in-process) runs the same TorchScript file: PyTorch's own answer for any input.
    It 'gives PyTorch''s golden output for <_> bit for bit' -ForEach @('seed_convnet', 'relu6_eager') {
        $st = Join-Path $models "$_.safetensors"
        $r = Import-QuantTensor $st -Name input | Invoke-QuantModel (Join-Path $models "$_.torchscript.pt") -Engine libtorch -ThrottleLimit 1
        $r.Engine | Should -Be 'libtorch'
        $r.EngineDetail | Should -BeLike 'libtorch 2.10*(x86)'
        (Bits $r.Output.Data) | Should -Be (Bits (Import-QuantTensor $st -Name output).Data)
    }

    It 'agrees bit for bit with our x86 profile for this CPU''s class on random inputs for <_>' -ForEach @('seed_convnet', 'relu6_eager') {
        # libtorch computes as this CPU does: with AVX512-VNNI its x86 engine sends each conv to oneDNN exactly when
        # groups <= 100, the weight is symmetric and output_padding is 0, else to FBGEMM; without VNNI every conv goes to
        # FBGEMM, which saturates u8 x s8 pairs to int16, and ATen's kernels use AVX2 widths. -CpuClass host asks our x86
        # profile for the same class (the default is the golden host's, AVX512-VNNI);
        # tests/QuantTools.Torch.Tests/LibTorchModelTests.cs names the layers per CPU and checks every core model. On
        # rare inputs a conv output within ~1e-6 of a rounding tie rounds the other way in libtorch 2.10's oneDNN:
        # NearTies_SeedConvnet_AreTheOnlyDifferences there; this fixed seed hits none.)
        $pt = Join-Path $models "$_.torchscript.pt"
        $x = Import-QuantTensor (Join-Path $models "$_.safetensors") -Name input
        $lo = ($x.Data | Measure-Object -Minimum).Minimum; $hi = ($x.Data | Measure-Object -Maximum).Maximum
        $rng = [System.Random]::new(42)
        foreach ($case in 1..6) {
            $wide = if ($case % 2) { 1.0 } else { 3.0 }   # even cases go past the input range (the quant stub clamps)
            for ($i = 0; $i -lt $x.Data.Length; $i++) { $x.Data[$i] = [float](($lo + $hi) / 2 + $wide * ($hi - $lo) / 2 * (2 * $rng.NextDouble() - 1)) }
            $ours = Invoke-QuantModel $pt -InputObject $x -Engine x86 -CpuClass host
            $lt = Invoke-QuantModel $pt -InputObject $x -Engine libtorch
            (Bits $lt.Output.Data) | Should -Be (Bits $ours.Output.Data) -Because "random case $case"
        }
    }

    It 'says that it gives no per-layer capture' {
        $st = Join-Path $models 'seed_convnet.safetensors'
        $r = Import-QuantTensor $st -Name input | Invoke-QuantModel (Join-Path $models 'seed_convnet.torchscript.pt') -Engine libtorch -CaptureLayers -WarningVariable w -WarningAction SilentlyContinue
        $r.Layers.Count | Should -Be 0
        "$w" | Should -BeLike '*no per-layer capture*'
    }

    It 'loads TorchSharp only when -Engine libtorch is asked for, into the module''s load context' {
        $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$Manifest'
`$m = '$models'
`$x = Import-QuantTensor "`$m/seed_convnet.safetensors" -Name input
`$null = Invoke-QuantModel "`$m/seed_convnet.torchscript.pt" -InputObject `$x
'before=' + ([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -in 'TorchSharp', 'QuantTools.Torch' }).Count
`$null = Invoke-QuantModel "`$m/seed_convnet.torchscript.pt" -InputObject `$x -Engine libtorch
`$t = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'TorchSharp' }
'after=' + [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$t).Name
"@
        $r = Invoke-QTFreshPwsh $script
        $r.ExitCode | Should -Be 0 -Because ($r.Output -join "`n")
        $r.Output | Should -Contain 'before=0'
        $r.Output | Should -Contain 'after=QuantTools'
    }

    It 'works without the libtorch folder, and -Engine libtorch then says why it cannot run' {
        # A copy of the module without bin/torch: what a machine without TorchSharp has.
        $copy = Join-Path $TestDrive 'QuantTools'
        New-Item -ItemType Directory -Force (Join-Path $copy 'module/bin') | Out-Null
        Copy-Item $Manifest $copy
        Get-ChildItem (Join-Path $RepoRoot 'module') | Where-Object Name -ne 'bin' | Copy-Item -Destination (Join-Path $copy 'module') -Recurse
        Get-ChildItem (Join-Path $RepoRoot 'module/bin') | Where-Object Name -ne 'torch' | Copy-Item -Destination (Join-Path $copy 'module/bin') -Recurse
        $script = @"
Import-Module '$(Join-Path $copy 'QuantTools.psd1')' -ErrorAction Stop
`$x = Import-QuantTensor '$models/seed_convnet.safetensors' -Name input
'x86=' + (Invoke-QuantModel '$models/seed_convnet.torchscript.pt' -InputObject `$x).Output.Length
try { Invoke-QuantModel '$models/seed_convnet.torchscript.pt' -InputObject `$x -Engine libtorch -ErrorAction Stop; 'no error' }
catch { 'error=' + `$_.Exception.Message }
"@
        $r = Invoke-QTFreshPwsh $script
        ($r.Output | Where-Object { $_ -like 'x86=*' }) | Should -Be ('x86=' + (Import-QuantTensor (Join-Path $models 'seed_convnet.safetensors') -Name output).Data.Length)
        ($r.Output | Where-Object { $_ -like 'error=*' }) | Should -BeLike '*-Engine libtorch is not installed*module/bin/torch*'
    }

    It 'says why when libtorch''s native library cannot load (GLIBCXX_3.4.32 not marked weak)' {
        # Only meaningful where the system libstdc++ lacks GLIBCXX_3.4.32 (Debian 12): the unpatched NuGet copy then fails.
        $libstdcxx = '/usr/lib/x86_64-linux-gnu/libstdc++.so.6'
        $nuget = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { ((& dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', '').Trim() }
        $unpatched = Join-Path $nuget 'torchsharp/0.107.0/runtimes/linux-x64/native/libLibTorchSharp.so'
        if (-not (Test-Path $libstdcxx) -or -not (Test-Path $unpatched) -or
            [System.Text.Encoding]::ASCII.GetString([System.IO.File]::ReadAllBytes($libstdcxx)).Contains('GLIBCXX_3.4.32')) {
            Set-ItResult -Skipped -Because 'the system libstdc++ has GLIBCXX_3.4.32 (or the NuGet copy is absent), so nothing fails to load'
            return
        }
        $copy = Join-Path $TestDrive 'QuantToolsBadNative'
        New-Item -ItemType Directory -Force (Join-Path $copy 'module/bin/torch') | Out-Null
        Copy-Item $Manifest $copy
        Get-ChildItem (Join-Path $RepoRoot 'module') | Where-Object Name -ne 'bin' | Copy-Item -Destination (Join-Path $copy 'module') -Recurse
        Get-ChildItem (Join-Path $RepoRoot 'module/bin') | Where-Object Name -ne 'torch' | Copy-Item -Destination (Join-Path $copy 'module/bin') -Recurse
        foreach ($f in Get-ChildItem (Join-Path $RepoRoot 'module/bin/torch') -File | Where-Object Name -ne 'libLibTorchSharp.so') {
            New-Item -ItemType SymbolicLink -Path (Join-Path $copy "module/bin/torch/$($f.Name)") -Target $f.FullName | Out-Null
        }
        Copy-Item $unpatched (Join-Path $copy 'module/bin/torch/libLibTorchSharp.so')
        $script = @"
Import-Module '$(Join-Path $copy 'QuantTools.psd1')' -ErrorAction Stop
`$x = Import-QuantTensor '$models/seed_convnet.safetensors' -Name input
try { Invoke-QuantModel '$models/seed_convnet.torchscript.pt' -InputObject `$x -Engine libtorch -ErrorAction Stop; 'no error' }
catch { 'error=' + `$_.Exception.Message }
"@
        $r = Invoke-QTFreshPwsh $script
        $err = $r.Output | Where-Object { $_ -like 'error=*' }
        $err | Should -BeLike "*libtorch could not be loaded*GLIBCXX_3.4.32' not found*marked GLIBCXX_3.4.32 weak*"
    }
}
