BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    Import-Module $Manifest -Force
    $obsFile = Join-Path $Golden 'observers.safetensors'
    $obsCases = (Get-Content -Raw (Join-Path $Golden 'observers.json') | ConvertFrom-Json).cases
    $qFile = Join-Path $Golden 'quantize.safetensors'
    $qCases = (Get-Content -Raw (Join-Path $Golden 'quantize.json') | ConvertFrom-Json).cases
    function Get-Golden([string] $file, [string] $name) { Import-QuantTensor -LiteralPath $file -Name ([WildcardPattern]::Escape($name)) }
    function Bits([float] $f) { [BitConverter]::SingleToInt32Bits($f) }
    function Find-ObsCase([string] $observer, [hashtable] $kwargs, [string] $batch) {
        $obsCases | Where-Object {
            $c = $_
            $c.observer -eq $observer -and $c.batches.Count -eq 1 -and $c.batches[0] -eq $batch -and
            @($c.kwargs.PSObject.Properties).Count -eq $kwargs.Count -and
            -not ($kwargs.GetEnumerator() | Where-Object { "$($c.kwargs.($_.Key))" -ne "$($_.Value)" })
        } | Select-Object -First 1
    }
}

Describe 'Get-QParams' {
    It 'gives one outcome per observer for Inf and NaN, as PyTorch does' {
        $inf = [single]::PositiveInfinity
        $q = ,[single[]](1, $inf, -2) | Get-QParams -WarningVariable w -WarningAction SilentlyContinue
        [double]::IsPositiveInfinity($q.Scale) | Should -BeTrue
        "$w" | Should -BeLike '*scale is Infinity*'
        $h = ,[single[]](1, $inf, -2, 0.5) | Get-QParams -Observer Histogram -WarningVariable hw -WarningAction SilentlyContinue
        $h.MaxVal[0] | Should -Be 1
        "$hw" | Should -BeLike '*torch.inf detected in input tensor, ignoring input*'
        # NaN: an error and nothing else (no QParams with scale 1 after it)
        $out = $null
        { $script:out = ,[single[]](1, [single]::NaN, -2) | Get-QParams -Observer Histogram -ErrorAction Stop } | Should -Throw -ExpectedMessage '*contains NaN*'
        $script:out | Should -BeNullOrEmpty
        { ,[single[]](1, [single]::NaN, -2) | Get-QParams -ErrorAction Stop } | Should -Throw -ExpectedMessage '*contains NaN*min nan should be less than max nan*'
    }

    It 'matches PyTorch MinMaxObserver bit for bit on a golden batch' {
        $case = Find-ObsCase 'MinMaxObserver' @{ dtype = 'quint8'; qscheme = 'per_tensor_affine'; reduce_range = 'False' } 'in/normal'
        $case | Should -Not -BeNullOrEmpty
        $x = Get-Golden $obsFile 'in/normal'
        $qp = $x | Get-QParams -Observer MinMax -Dtype quint8 -QScheme per_tensor_affine
        Bits $qp.Scale | Should -Be (Bits (Get-Golden $obsFile $case.scale).Data[0])
        $qp.ZeroPoint | Should -Be (Get-Golden $obsFile $case.zero_point).Data[0]
        $qp.Observer | Should -BeLike 'MinMax*'
        $qp.Batches | Should -Be 1
    }

    It 'streams batches: a moving-average observer over the golden sequence' {
        $case = $obsCases | Where-Object { $_.observer -eq 'MovingAverageMinMaxObserver' -and $_.kwargs.averaging_constant -eq 0.5 -and $_.kwargs.dtype -eq 'qint8' -and $_.kwargs.qscheme -eq 'per_tensor_affine' -and $_.batches[0] -like 'seq/grow/*' } | Select-Object -First 1
        $batches = $case.batches | ForEach-Object { Get-Golden $obsFile $_ }
        $qp = $batches | Get-QParams -Observer MovingAverageMinMax -AveragingConstant 0.5 -Dtype qint8
        $qp.Batches | Should -Be 4
        Bits $qp.Scale | Should -Be (Bits (Get-Golden $obsFile $case.scale).Data[0])
        $qp.ZeroPoint | Should -Be (Get-Golden $obsFile $case.zero_point).Data[0]
        Bits $qp.MinVal[0] | Should -Be (Bits (Get-Golden $obsFile $case.min_val).Data[0])
    }

    It 'uses the x86 engine default activation observer (HistogramObserver, reduce_range)' {
        $case = Find-ObsCase 'HistogramObserver' @{ bins = 2048; dtype = 'quint8'; qscheme = 'per_tensor_affine'; reduce_range = 'True' } 'in/relu_like'
        $x = Get-Golden $obsFile 'in/relu_like'
        $qp = $x | Get-QParams -Engine x86
        $qp.QuantMax | Should -Be 127
        Bits $qp.Scale | Should -Be (Bits (Get-Golden $obsFile $case.scale).Data[0])
        $qp.ZeroPoint | Should -Be (Get-Golden $obsFile $case.zero_point).Data[0]
    }

    It 'computes per-channel qparams along -Axis' {
        $case = Find-ObsCase 'PerChannelMinMaxObserver' @{ ch_axis = 1; dtype = 'qint8'; qscheme = 'per_channel_symmetric'; reduce_range = 'False' } 'in/normal'
        $x = Get-Golden $obsFile 'in/normal'
        $qp = $x | Get-QParams -Observer PerChannelMinMax -Dtype qint8 -QScheme per_channel_symmetric -Axis 1
        $expected = (Get-Golden $obsFile $case.scale).Data
        $qp.Scales.Count | Should -Be 8
        for ($i = 0; $i -lt 8; $i++) { Bits $qp.Scales[$i] | Should -Be (Bits $expected[$i]) }
        $qp.Axis | Should -Be 1
    }

    It 'computes the documented example from plain numbers' {
        $qp = Get-QParams -InputObject @(-1.0, 0.5, 3.0)
        Bits $qp.Scale | Should -Be (Bits ([float](4.0 / 255.0)))
        $qp.ZeroPoint | Should -Be 64
    }

    It 'refuses symmetric reduce_range quint8 as PyTorch does' {
        { Get-QParams -InputObject 1.0 -Dtype quint8 -QScheme per_tensor_symmetric -ReduceRange -ErrorAction Stop } |
            Should -Throw -ExpectedMessage '*reduce range*symmetric*quint8*'
    }

    It 'reads the observer from YAML with PyTorch argument names, and reports unknown keys with line and column' {
        $yaml = Join-Path $TestDrive 'obs.yaml'
        "observer: HistogramObserver`ndtype: quint8`nqscheme: per_tensor_affine`nreduce_range: true`nbins: 2048" | Set-Content $yaml
        $case = Find-ObsCase 'HistogramObserver' @{ bins = 2048; dtype = 'quint8'; qscheme = 'per_tensor_affine'; reduce_range = 'True' } 'in/normal'
        $qp = Get-Golden $obsFile 'in/normal' | Get-QParams -ConfigPath $yaml
        Bits $qp.Scale | Should -Be (Bits (Get-Golden $obsFile $case.scale).Data[0])
        $bad = Join-Path $TestDrive 'bad.yaml'
        "observer: MinMaxObserver`nreduce_rnage: true" | Set-Content $bad
        { Get-QParams -InputObject 1.0 -ConfigPath $bad -ErrorAction Stop } | Should -Throw -ExpectedMessage "*bad.yaml:2:1*unknown key 'reduce_rnage'*"
    }
}

Describe 'ConvertTo-Quantized and ConvertFrom-Quantized' {
    It 'quantizes like torch.quantize_per_tensor for every golden x case of one scale' {
        $x = Get-Golden $qFile 'x'
        $cases = $qCases | Where-Object { $_.fn -eq 'quantize_per_tensor' -and $_.input -eq 'x' -and $_.scale -eq 0.019743409007787704 }
        $cases.Count | Should -BeGreaterThan 5
        foreach ($c in $cases) {
            $q = $x | ConvertTo-Quantized -Scale $c.scale -ZeroPoint $c.zero_point -Dtype $c.dtype
            $expected = (Get-Golden $qFile $c.int).Data
            [System.Linq.Enumerable]::SequenceEqual([long[]]$q.IntRepr.Data, [long[]]$expected) | Should -BeTrue -Because $c.id
            $deq = ($q | ConvertFrom-Quantized).Data
            $expDeq = (Get-Golden $qFile $c.dequant).Data
            [System.Linq.Enumerable]::SequenceEqual([float[]]$deq, [float[]]$expDeq) | Should -BeTrue -Because "$($c.id) dequant"
        }
    }

    It 'quantizes per channel like torch.quantize_per_channel' {
        $c = $qCases | Where-Object fn -eq 'quantize_per_channel' | Select-Object -First 1
        $w = Get-Golden $qFile 'w'
        $scales = (Get-Golden $qFile $c.scales).Data
        $zps = (Get-Golden $qFile $c.zero_points).Data
        $q = $w | ConvertTo-Quantized -Scale $scales -ZeroPoint $zps -Axis $c.axis -Dtype $c.dtype
        [System.Linq.Enumerable]::SequenceEqual([long[]]$q.IntRepr.Data, [long[]](Get-Golden $qFile $c.int).Data) | Should -BeTrue
    }

    It 'fake-quantizes like torch.fake_quantize_per_tensor_affine' {
        $c = $qCases | Where-Object fn -eq 'fake_quantize_per_tensor_affine' | Select-Object -First 1
        $y = Get-Golden $qFile 'x' | ConvertTo-Quantized -Scale $c.scale -ZeroPoint $c.zero_point -QuantMin $c.quant_min -QuantMax $c.quant_max -FakeQuantize
        [System.Linq.Enumerable]::SequenceEqual([float[]]$y.Data, [float[]](Get-Golden $qFile $c.out).Data) | Should -BeTrue
    }

    It 'saturates ReLU6 bound 6.0 at the thread''s scale to 255' {
        (ConvertTo-Quantized -InputObject 6.0 -Scale 0.019743409007787704 -ZeroPoint 0).IntRepr.Data | Should -Be @(255)
    }

    It 'documents a round trip that holds' {
        (ConvertTo-Quantized -InputObject @(0.1, 0.25, -1.5) -Scale 0.1 -ZeroPoint 10 | ConvertFrom-Quantized).Data | Should -Be @([float]0.1, [float]0.2, [float]-1.0)
    }

    It 'quantizes with a QParams object from Get-QParams, and with an observer in one step' {
        $x = Get-Golden $obsFile 'in/normal'
        $qp = $x | Get-QParams
        $a = $x | ConvertTo-Quantized -QParams $qp
        $b = $x | ConvertTo-Quantized -Observer MinMax
        [System.Linq.Enumerable]::SequenceEqual([byte[]]$a.IntRepr.Data, [byte[]]$b.IntRepr.Data) | Should -BeTrue
        $a.QParams.Scale | Should -Be $qp.Scale
    }

    It 'reports bad qparams as a non-terminating error and goes on' {
        $r = @(1.0, 2.0), @(3.0) | ConvertTo-Quantized -Scale 0 -ErrorVariable errs -ErrorAction SilentlyContinue
        $errs.Count | Should -Be 2
        $errs[0].FullyQualifiedErrorId | Should -BeLike 'QuantTools.InvalidQParams*'
    }
}
