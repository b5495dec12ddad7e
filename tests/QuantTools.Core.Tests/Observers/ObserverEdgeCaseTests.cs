using System.Text.Json;
using QuantTools.Core.Conformance;
using QuantTools.Core.Quantization;
using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Observers;

/// <summary>
/// Focused edge cases. Expected numbers always come from PyTorch's output in the seed-0 golden file
/// (looked up by observer, kwargs and batches), never from this code.
/// </summary>
public sealed class ObserverEdgeCaseTests : IDisposable
{
    private readonly GoldenFile _g = new(Fixtures.Core("observers.json"));

    public void Dispose() => _g.Dispose();

    private sealed record Expected(string Id, float[] Scale, long[]? Zp, float[]? FloatZp, float[]? Min, float[]? Max, float[]? Histogram);

    private JsonElement FindCase(string observer, string kwargsJson, params string[] batches)
    {
        using var want = JsonDocument.Parse(kwargsJson);
        foreach (var c in _g.Cases)
        {
            if (c.GetProperty("observer").GetString() != observer) continue;
            var b = c.GetProperty("batches").EnumerateArray().Select(e => e.GetString()!).ToArray();
            if (!b.SequenceEqual(batches)) continue;
            var kw = c.GetProperty("kwargs");
            if (kw.EnumerateObject().Count() != want.RootElement.EnumerateObject().Count()) continue;
            bool same = want.RootElement.EnumerateObject().All(p =>
                kw.TryGetProperty(p.Name, out var v) && v.GetRawText() == p.Value.GetRawText());
            if (same) return c;
        }
        throw new InvalidOperationException($"no golden case {observer} {kwargsJson} {string.Join(",", batches)}");
    }

    private Expected Load(JsonElement c)
    {
        var t = _g.Tensors;
        var zp = t.Get(c.GetProperty("zero_point").GetString()!);
        float[]? Opt(string k) => c.TryGetProperty(k, out var e) ? t.GetFloats(e.GetString()!) : null;
        return new Expected(c.GetProperty("id").GetString()!, t.GetFloats(c.GetProperty("scale").GetString()!),
            zp.DType == DType.Int64 ? zp.AsSpan<long>().ToArray() : null,
            zp.DType == DType.Float32 ? zp.AsSpan<float>().ToArray() : null,
            Opt("min_val"), Opt("max_val"), Opt("histogram"));
    }

    private Expected Golden(string observer, string kwargsJson, params string[] batches) =>
        Load(FindCase(observer, kwargsJson, batches));

    private Tensor Input(string key) => _g.Tensors.Get(key);

    private static void AssertBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
    }

    private static void AssertQParams(Expected e, QParams qp)
    {
        AssertBits(e.Scale, qp.Scales.Select(s => (float)s).ToArray(), e.Id + " scale");
        if (e.Zp is not null) Assert.Equal(e.Zp, qp.ZeroPoints);
        if (e.FloatZp is not null) AssertBits(e.FloatZp, qp.FloatZeroPoints!, e.Id + " zero_point");
    }

    // ---------------------------------------------------------------- qparam math on degenerate ranges

    [Theory]
    [InlineData("quint8", "per_tensor_affine", "in/const")]
    [InlineData("qint8", "per_tensor_affine", "in/const")]
    [InlineData("quint8", "per_tensor_symmetric", "in/const")]
    [InlineData("qint8", "per_tensor_symmetric", "in/const")]
    [InlineData("quint8", "per_tensor_affine", "in/zeros")]
    [InlineData("qint8", "per_tensor_affine", "in/zeros")]
    [InlineData("quint8", "per_tensor_symmetric", "in/zeros")]
    [InlineData("qint8", "per_tensor_symmetric", "in/zeros")]
    public void MinEqualsMaxAndAllZerosMatchPyTorch(string dtype, string scheme, string input)
    {
        var e = Golden("MinMaxObserver", $"{{\"dtype\":\"{dtype}\",\"qscheme\":\"{scheme}\",\"reduce_range\":false}}", input);
        var dt = DTypeInfo.Parse(dtype);
        var qs = QSchemeInfo.Parse(scheme);
        var (qmin, qmax) = QParamsMath.QuantRange(dt, false, null, null);
        // straight from the recorded min/max through the qparam math ...
        AssertQParams(e, QParamsMath.Calculate(e.Min!, e.Max!, dt, qs, qmin, qmax, 1.1920929e-07f));
        // ... and through the observer
        var o = new MinMaxObserver(new ObserverOptions { Dtype = dt, QScheme = qs });
        o.Forward(Input(input));
        AssertBits(e.Min!, o.MinVal, "min_val");
        AssertBits(e.Max!, o.MaxVal, "max_val");
        AssertQParams(e, o.CalculateQParams());
    }

    [Fact]
    public void EpsBoundsTheScale()
    {
        var e = Golden("MinMaxObserver", "{\"dtype\":\"quint8\",\"eps\":0.001}", "in/tiny");
        var o = new MinMaxObserver(new ObserverOptions { Eps = (float)0.001 });
        o.Forward(Input("in/tiny"));
        AssertQParams(e, o.CalculateQParams());
        Assert.Equal((float)0.001, e.Scale[0]); // PyTorch clamps the tiny range's scale to eps
    }

    [Theory]
    [InlineData("{\"dtype\":\"quint8\",\"quant_min\":0,\"quant_max\":15}", "in/normal", 0, 15)]
    [InlineData("{\"dtype\":\"qint8\",\"quant_min\":-8,\"quant_max\":7}", "in/normal", -8, 7)]
    [InlineData("{\"dtype\":\"qint8\",\"qscheme\":\"per_tensor_symmetric\",\"quant_min\":-127,\"quant_max\":127}", "in/outliers", -127, 127)]
    public void CustomRangesMatchPyTorch(string kwargs, string input, long qmin, long qmax)
    {
        var c = FindCase("MinMaxObserver", kwargs, input);
        var e = Load(c);
        var o = ObserverFactory.Create("MinMax", ObserverCases.OptionsFromKwargs(c.GetProperty("kwargs"), "MinMaxObserver"));
        Assert.Equal((qmin, qmax), (o.QuantMin, o.QuantMax));
        Assert.True(o.HasCustomRange);
        o.Forward(Input(input));
        AssertQParams(e, o.CalculateQParams());
    }

    [Fact]
    public void ReduceRangeHalvesTheRangeLikePyTorch()
    {
        Assert.Equal((0L, 127L), QParamsMath.QuantRange(DType.QUInt8, true, null, null));
        Assert.Equal((-64L, 63L), QParamsMath.QuantRange(DType.QInt8, true, null, null));
        // custom ranges are halved with Python floor division
        Assert.Equal((-64L, 63L), QParamsMath.QuantRange(DType.QInt8, true, -127, 127));
        Assert.Equal((0L, 7L), QParamsMath.QuantRange(DType.QUInt8, true, 0, 15));
        foreach (var (dt, input) in new[] { ("quint8", "in/normal"), ("qint8", "in/relu_like") })
        {
            var e = Golden("MinMaxObserver", $"{{\"dtype\":\"{dt}\",\"qscheme\":\"per_tensor_affine\",\"reduce_range\":true}}", input);
            var o = new MinMaxObserver(new ObserverOptions { Dtype = DTypeInfo.Parse(dt), ReduceRange = true });
            o.Forward(Input(input));
            AssertQParams(e, o.CalculateQParams());
        }
    }

    // ---------------------------------------------------------------- NaN / inf

    [Fact]
    public void NaNIsRefusedAtQParamTime()
    {
        var o = new MinMaxObserver();
        o.Forward(new[] { 1f, float.NaN, -2f });
        Assert.True(float.IsNaN(o.MinVal[0]) && float.IsNaN(o.MaxVal[0]));
        var ex = Assert.Throws<QuantToolsException>(() => o.CalculateQParams());
        Assert.Equal(ErrorCode.InvalidQParams, ex.Code);

        var pc = new PerChannelMinMaxObserver(new ObserverOptions { QScheme = QScheme.PerChannelAffine });
        pc.Forward(Tensor.FromArray([1f, 2f, float.NaN, 4f], 2, 2));
        Assert.Equal(ErrorCode.InvalidQParams, Assert.Throws<QuantToolsException>(() => pc.CalculateQParams()).Code);
    }

    [Fact]
    public void NaNIsRefusedByTheHistogram()
    {
        var h = new HistogramObserver();
        var ex = Assert.Throws<QuantToolsException>(() => h.Forward(new[] { 1f, float.NaN, -2f }));
        Assert.Equal(ErrorCode.InvalidArgument, ex.Code);
        // the refused batch left the observer untouched
        Assert.True(float.IsPositiveInfinity(h.MinVal[0]));
    }

    [Fact]
    public void InfinitiesAreDroppedByTheHistogram()
    {
        var e = Golden("HistogramObserver", "{\"bins\":2048,\"dtype\":\"quint8\",\"qscheme\":\"per_tensor_affine\",\"reduce_range\":false}", "in/normal");
        var x = _g.Tensors.GetFloats("in/normal").ToList();
        x.Insert(0, float.PositiveInfinity);
        x.Insert(100, float.NegativeInfinity);
        x.Add(float.PositiveInfinity);
        var h = new HistogramObserver();
        h.Forward(new[] { float.PositiveInfinity, float.NegativeInfinity }); // nothing finite: ignored
        Assert.True(float.IsPositiveInfinity(h.MinVal[0]));
        h.Forward(x.ToArray());
        AssertBits(e.Histogram!, h.Histogram, "histogram");
        AssertBits(e.Min!, h.MinVal, "min_val");
        AssertBits(e.Max!, h.MaxVal, "max_val");
        AssertQParams(e, h.CalculateQParams());
    }

    // ---------------------------------------------------------------- streaming

    [Fact]
    public void StreamingOverBatchesMatchesPyTorch()
    {
        string[] grow = ["seq/grow/0", "seq/grow/1", "seq/grow/2", "seq/grow/3"];
        var eh = Golden("HistogramObserver", "{\"bins\":256,\"dtype\":\"qint8\",\"qscheme\":\"per_tensor_symmetric\",\"reduce_range\":false}", grow);
        var h = new HistogramObserver(new ObserverOptions { Bins = 256, Dtype = DType.QInt8, QScheme = QScheme.PerTensorSymmetric });
        var em = Golden("MovingAverageMinMaxObserver", "{\"averaging_constant\":0.5,\"dtype\":\"qint8\",\"qscheme\":\"per_tensor_affine\"}", grow);
        var m = new MovingAverageMinMaxObserver(new ObserverOptions { AveragingConstant = 0.5, Dtype = DType.QInt8 });
        foreach (var b in grow)
        {
            h.Forward(Input(b));
            m.Forward(Input(b));
        }
        AssertBits(eh.Histogram!, h.Histogram, "histogram");
        AssertQParams(eh, h.CalculateQParams());
        AssertBits(em.Min!, m.MinVal, "min_val");
        AssertBits(em.Max!, m.MaxVal, "max_val");
        AssertQParams(em, m.CalculateQParams());

        // Reset forgets everything, then the same stream gives the same answer again
        h.Reset();
        Assert.Equal(1.0, h.CalculateQParams().Scale);
        foreach (var b in grow) h.Forward(Input(b));
        AssertQParams(eh, h.CalculateQParams());
    }

    [Fact]
    public void PerChannelNegativeAxisAndOtherDTypesFollowPyTorch()
    {
        var e = Golden("PerChannelMinMaxObserver", "{\"ch_axis\":3,\"dtype\":\"qint8\",\"qscheme\":\"per_channel_affine\",\"reduce_range\":false}", "in/normal");
        var o = new PerChannelMinMaxObserver(new ObserverOptions { ChAxis = -1, Dtype = DType.QInt8, QScheme = QScheme.PerChannelAffine });
        o.Forward(Input("in/normal"));
        AssertBits(e.Min!, o.MinVal, "min_val");
        AssertBits(e.Max!, o.MaxVal, "max_val");
        var qp = o.CalculateQParams();
        AssertQParams(e, qp);
        Assert.Equal(3, qp.Axis);

        // a float64 batch is converted to float32 first (x.to(min_val.dtype)) — the same values give the same answer
        var f = _g.Tensors.GetFloats("in/normal");
        var m = new MinMaxObserver();
        m.Forward(new Tensor(DType.Float64, [f.Length], f.Select(v => (double)v).ToArray()));
        AssertQParams(Golden("MinMaxObserver", "{\"dtype\":\"quint8\",\"qscheme\":\"per_tensor_affine\",\"reduce_range\":false}", "in/normal"),
            m.CalculateQParams());
    }

    [Fact]
    public void EmptyBatchesAreIgnoredAndUnobservedGivesScaleOneZeroPointZero()
    {
        foreach (var name in new[] { "MinMax", "MovingAverageMinMax", "PerChannelMinMax", "MovingAveragePerChannelMinMax", "Histogram" })
        {
            var o = ObserverFactory.Create(name, new ObserverOptions
            {
                QScheme = name.Contains("PerChannel") ? QScheme.PerChannelAffine : QScheme.PerTensorAffine,
            });
            o.Forward(Array.Empty<float>());
            var qp = o.CalculateQParams();
            Assert.Equal([1.0], qp.Scales);
            Assert.Equal([0L], qp.ZeroPoints);
        }
    }

    // ---------------------------------------------------------------- refusals

    [Theory]
    [InlineData("MinMaxObserver", "per_tensor_symmetric")]
    [InlineData("MovingAverageMinMaxObserver", "per_tensor_symmetric")]
    [InlineData("PerChannelMinMaxObserver", "per_channel_symmetric")]
    [InlineData("MovingAveragePerChannelMinMaxObserver", "per_channel_symmetric")]
    public void SymmetricReducedQUInt8IsRefused(string cls, string scheme)
    {
        var ex = Assert.Throws<QuantToolsException>(() => ObserverFactory.Create(cls,
            new ObserverOptions { Dtype = DType.QUInt8, QScheme = QSchemeInfo.Parse(scheme), ReduceRange = true }));
        Assert.Equal(ErrorCode.NotSupported, ex.Code);
        Assert.Contains("Cannot reduce range for symmetric quantization for quint8", ex.Message);
    }

    [Fact]
    public void HistogramAcceptsSymmetricReducedQUInt8LikePyTorch()
    {
        // PyTorch's HistogramObserver has no such refusal; its result is in the golden data
        var e = Golden("HistogramObserver", "{\"bins\":2048,\"dtype\":\"quint8\",\"qscheme\":\"per_tensor_symmetric\",\"reduce_range\":true}", "in/relu_like");
        var h = new HistogramObserver(new ObserverOptions { QScheme = QScheme.PerTensorSymmetric, ReduceRange = true });
        h.Forward(Input("in/relu_like"));
        AssertQParams(e, h.CalculateQParams());
    }

    [Theory]
    [InlineData(1L, 10L)]      // must include 0
    [InlineData(-10L, -1L)]    // must include 0
    [InlineData(0L, 0L)]       // qmin < qmax
    [InlineData(-200L, 100L)]  // qint8: at most 256 levels
    public void InvalidCustomRangesAreRefused(long qmin, long qmax)
    {
        var ex = Assert.Throws<QuantToolsException>(() =>
            new MinMaxObserver(new ObserverOptions { Dtype = DType.QInt8, QuantMin = qmin, QuantMax = qmax }));
        Assert.Equal(ErrorCode.InvalidQParams, ex.Code);
    }

    [Fact]
    public void SchemeMismatchesAndBadNamesAreRefused()
    {
        Assert.Equal(ErrorCode.NotSupported, Assert.Throws<QuantToolsException>(() =>
            new MinMaxObserver(new ObserverOptions { QScheme = QScheme.PerChannelAffine })).Code);
        Assert.Equal(ErrorCode.NotSupported, Assert.Throws<QuantToolsException>(() =>
            new HistogramObserver(new ObserverOptions { QScheme = QScheme.PerChannelSymmetric })).Code);
        Assert.Equal(ErrorCode.NotSupported, Assert.Throws<QuantToolsException>(() =>
            new PerChannelMinMaxObserver(new ObserverOptions { QScheme = QScheme.PerTensorAffine })).Code);
        Assert.Equal(ErrorCode.InvalidQParams, Assert.Throws<QuantToolsException>(() =>
            new MinMaxObserver(new ObserverOptions { Dtype = DType.Float32 })).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<QuantToolsException>(() =>
            ObserverFactory.Create("KLDivergence", new ObserverOptions())).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<QuantToolsException>(() =>
            ObserverFactory.ForEngine("tensorrt", false)).Code);
    }

    // ---------------------------------------------------------------- factory

    [Theory]
    [InlineData("minmax", "MinMaxObserver")]
    [InlineData("MinMaxObserver", "MinMaxObserver")]
    [InlineData("torch.ao.quantization.observer.HistogramObserver", "HistogramObserver")]
    [InlineData("HISTOGRAM", "HistogramObserver")]
    [InlineData("MovingAverageMinMax", "MovingAverageMinMaxObserver")]
    [InlineData("perchannelminmax", "PerChannelMinMaxObserver")]
    [InlineData("MovingAveragePerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver")]
    public void FactoryAcceptsClassAndShortNames(string name, string cls)
    {
        var o = new ObserverOptions { QScheme = cls.Contains("PerChannel") ? QScheme.PerChannelAffine : QScheme.PerTensorAffine };
        Assert.Equal(cls, ObserverFactory.Create(name, o).Name);
        var fixedQ = ObserverFactory.Create("fixedqparams", new ObserverOptions { Scale = 1.0 / 256, ZeroPoint = 0 });
        Assert.Equal("FixedQParamsObserver", fixedQ.Name);
    }

    [Theory]
    [InlineData("x86")]
    [InlineData("fbgemm")]
    [InlineData("qnnpack")]
    [InlineData("onednn")]
    public void EngineDefaultsMatchPyTorchQConfigs(string engine)
    {
        // PyTorch's repr of get_default_qconfig(engine) observers, recorded in the golden file
        var qc = _g.Root.GetProperty("default_qconfigs").GetProperty(engine + "/ptq");
        string Cls(string repr) => repr[..repr.IndexOf('(')];
        var act = ObserverFactory.ForEngine(engine, weight: false);
        var w = ObserverFactory.ForEngine(engine, weight: true);
        Assert.Equal(Cls(qc.GetProperty("activation").GetString()!), act.Name);
        Assert.Equal(Cls(qc.GetProperty("weight").GetString()!), w.Name);
        // activation: quint8 affine, 7-bit on x86/fbgemm (reduce_range, as their QAT repr records quant_max=127)
        var qat = _g.Root.GetProperty("default_qconfigs").GetProperty(engine + "/qat").GetProperty("activation").GetString()!;
        Assert.Contains($"quant_max={act.QuantMax}", qat);
        Assert.Equal(DType.QUInt8, act.Dtype);
        Assert.Equal(DType.QInt8, w.Dtype);
        Assert.True(w.QScheme.IsSymmetric());
        Assert.Equal((-128L, 127L), (w.QuantMin, w.QuantMax));
    }
    [Fact]
    public void HistogramOfAConstantBatchIsCarriedIntoAWiderRange()
    {
        // first batch constant (min == max): PyTorch moves the whole old mass into the bin of that value
        var e = Golden("HistogramObserver", "{}", "in/const");
        var h = new HistogramObserver();
        h.Forward(Input("in/const"));
        AssertBits(e.Histogram!, h.Histogram, "histogram");
        AssertQParams(e, h.CalculateQParams());
        var n = Input("in/normal");
        h.Forward(n);
        Assert.Equal(4608f + n.Length, h.Histogram.Sum());
        Assert.True(h.MinVal[0] < 0.5f && h.MaxVal[0] > 0.5f);
    }
}
