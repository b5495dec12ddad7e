using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Quantization.Ort;

/// <summary>Arguments of ONNX Runtime's calibrators, under ORT's names (extra_options of quantize_static).</summary>
public sealed class OrtCalibrationOptions
{
    /// <summary>Activation type: QUInt8 (ORT's default) or QInt8.</summary>
    public DType Dtype { get; set; } = DType.QUInt8;
    /// <summary>
    /// The calibrator's <c>symmetric</c> (quantize_static's CalibTensorRangeSymmetric): a range ±max|·|. Null takes
    /// create_calibrator's default: true for percentile, false for the others.
    /// </summary>
    public bool? Symmetric { get; set; }
    /// <summary>quantize_static's ActivationSymmetric: symmetric qparams (zero point at the middle of the range).</summary>
    public bool ActivationSymmetric { get; set; }
    public bool ReduceRange { get; set; }
    public bool MovingAverage { get; set; }
    public double AveragingConstant { get; set; } = 0.01;
    /// <summary>Default per method: 128 entropy, 2048 percentile and distribution.</summary>
    public int? NumBins { get; set; }
    public int NumQuantizedBins { get; set; } = 128;
    public double Percentile { get; set; } = 99.999;
    /// <summary>Histogram methods: every batch is its own collect() call (merge_histogram), instead of one call over all batches.</summary>
    public bool CollectPerBatch { get; set; }
}

/// <summary>ORT's qparams from a calibrated range (quant_utils.compute_scale_zp with get_qmin_qmax_for_qType).</summary>
public static class OrtQParams
{
    /// <summary>(qmin, qmax): reduce_range [0,127] / [−64,64]; symmetric [0,254] / [−127,127]; else the full type.</summary>
    public static (int Min, int Max) Range(DType dtype, bool reduceRange, bool symmetric) => (dtype, reduceRange, symmetric) switch
    {
        (DType.QUInt8, true, _) => (0, 127),
        (DType.QInt8, true, _) => (-64, 64),
        (DType.QUInt8, false, true) => (0, 254),
        (DType.QInt8, false, true) => (-127, 127),
        (DType.QUInt8, false, false) => (0, 255),
        (DType.QInt8, false, false) => (-128, 127),
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"ORT calibration quantizes to quint8 or qint8, not {dtype.TorchName()}"),
    };

    /// <summary>
    /// compute_scale_zp: the range extended to include 0 (float32), made symmetric when asked, <c>scale = f64(rmax − rmin) / (qmax − qmin)</c>;
    /// below float32's smallest normal it becomes 1 with zero point 0; zp = rne((qmin + qmax) / 2) when symmetric, else
    /// rne(qmin − rmin / scale) in float64; the scale is then rounded to float32.
    /// </summary>
    public static (float Scale, long ZeroPoint) Compute(float rmin, float rmax, int qmin, int qmax, bool symmetric)
    {
        rmin = Math.Min(rmin, 0f);
        rmax = Math.Max(rmax, 0f);
        if (symmetric)
        {
            float absmax = Math.Max(Math.Abs(rmin), Math.Abs(rmax));
            rmin = -absmax;
            rmax = absmax;
        }
        double dr = rmax - rmin; // float32 subtraction, then float64
        double scale = dr / ((double)qmax - qmin);
        if (double.IsNaN(scale)) throw new QuantToolsException(ErrorCode.InvalidArgument, $"range [{rmin}, {rmax}] gives a NaN scale");
        if (scale < 1.17549435e-38) return (1f, 0);
        double zp = symmetric ? Math.Round((qmin + qmax) / 2.0, MidpointRounding.ToEven) : Math.Round(qmin - rmin / scale, MidpointRounding.ToEven);
        return ((float)scale, (long)zp);
    }
}

/// <summary>Shared part of the ORT calibrators as QuantTools observers (Get-QParams -Observer Ort*).</summary>
public abstract class OrtObserver : Observer
{
    protected OrtCalibrationOptions Options { get; }

    protected OrtObserver(OrtCalibrationOptions o) : base(new ObserverOptions { Dtype = o.Dtype }, validateUniform: false)
    {
        Options = o;
        if (o.Dtype is not (DType.QUInt8 or DType.QInt8))
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"ORT calibration quantizes to quint8 or qint8, not {o.Dtype.TorchName()}");
        var (lo, hi) = OrtQParams.Range(o.Dtype, o.ReduceRange, o.ActivationSymmetric);
        QuantMin = lo;
        QuantMax = hi;
    }

    /// <summary>The calibrated range (what ORT's TensorData.range_value holds).</summary>
    public abstract (float Lowest, float Highest) Range();

    public override QParams CalculateQParams()
    {
        var (lo, hi) = Range();
        var (s, z) = OrtQParams.Compute(lo, hi, (int)QuantMin, (int)QuantMax, Options.ActivationSymmetric);
        return new QParams(Options.ActivationSymmetric ? QScheme.PerTensorSymmetric : QScheme.PerTensorAffine, Dtype, [s], [z],
            quantMin: QuantMin, quantMax: QuantMax);
    }

    protected static ReadOnlySpan<float> Values(Tensor x) => x.ToFloat32().AsSpan<float>();
}

/// <summary>
/// ORT's MinMaxCalibrater for one tensor: each batch gives its min and max (ReduceMin / ReduceMax); the range is
/// nanmin / nanmax over the batches, or with moving_average their float32 nanmean (compute_data; the exponential
/// <c>old + c·(new − old)</c> of merge_range applies only between separate calibrate calls); symmetric makes it ±max|·|.
/// Memory: two floats per batch.
/// </summary>
public sealed class OrtMinMaxObserver : OrtObserver
{
    public override string Name => "OrtMinMax";
    private readonly List<float> _mins = [], _maxs = [];

    public OrtMinMaxObserver(OrtCalibrationOptions o) : base(o)
    {
        if (o.MovingAverage && (o.AveragingConstant < 0 || o.AveragingConstant > 1))
            throw new QuantToolsException(ErrorCode.InvalidArgument, "Invalid averaging constant, which should not be < 0 or > 1.");
    }

    public override float[] MinVal => Range() is var r ? [r.Lowest] : [];
    public override float[] MaxVal => Range() is var r ? [r.Highest] : [];

    public override void Forward(Tensor x)
    {
        if (x.Length == 0) return;
        var (mn, mx) = OrtHistogramCollector.NanMinMax(Values(x));
        _mins.Add(mn);
        _maxs.Add(mx);
    }

    public override (float Lowest, float Highest) Range()
    {
        if (_mins.Count == 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "No data is collected.");
        float lo, hi;
        if (Options.MovingAverage)
        {
            lo = NanMean(_mins);
            hi = NanMean(_maxs);
        }
        else
        {
            lo = _mins.Where(v => !float.IsNaN(v)).DefaultIfEmpty(float.NaN).Min();
            hi = _maxs.Where(v => !float.IsNaN(v)).DefaultIfEmpty(float.NaN).Max();
        }
        if (Options.Symmetric == true)
        {
            float m = float.IsNaN(lo) ? Math.Abs(hi) : float.IsNaN(hi) ? Math.Abs(lo) : Math.Max(Math.Abs(lo), Math.Abs(hi));
            lo = -m;
            hi = m;
        }
        return (lo, hi);
    }

    private static float NanMean(List<float> v)
    {
        var kept = v.Select(x => float.IsNaN(x) ? 0f : x).ToArray();
        long cnt = v.Count(x => !float.IsNaN(x));
        float tot = NumpyFloat32.PairwiseSum(kept);
        return (float)((double)tot / cnt);
    }

    public override void Reset()
    {
        _mins.Clear();
        _maxs.Clear();
    }
}

/// <summary>
/// ORT's Entropy / Percentile / Distribution calibrators for one tensor. ORT collects every calibration batch first and
/// makes one collect() over all of them; here each batch is written to a temporary file while its min and max are
/// tracked, and the single histogram pass reads it back in chunks, so memory stays constant whatever the data size
/// (the file is deleted on <see cref="Reset"/> and at exit). <see cref="OrtCalibrationOptions.CollectPerBatch"/> makes
/// each batch its own collect() instead (no file).
/// </summary>
public sealed class OrtHistogramObserver : OrtObserver, IDisposable
{
    public OrtCalibrationMethod Method { get; }
    public override string Name => "Ort" + Method;
    private OrtHistogramCollector _collector;
    private readonly int _bins;
    private SpillFile? _spill;
    private float _min = float.NaN, _max = float.NaN, _amin = float.NaN, _amax = float.NaN;
    private bool _anyNaN;
    private long _count;
    private bool _collected;
    private OrtCollectorResult? _result;

    public OrtHistogramObserver(OrtCalibrationMethod method, OrtCalibrationOptions o) : base(Resolve(method, o))
    {
        Method = method;
        _bins = o.NumBins ?? (method == OrtCalibrationMethod.Entropy ? 128 : 2048);
        _collector = NewCollector();
    }

    private OrtHistogramCollector NewCollector() =>
        new(Method, Options.Symmetric == true, _bins, Options.NumQuantizedBins, Options.Percentile);

    private static OrtCalibrationOptions Resolve(OrtCalibrationMethod m, OrtCalibrationOptions o)
    {
        if (m == OrtCalibrationMethod.MinMax) throw new QuantToolsException(ErrorCode.InvalidArgument, "use OrtMinMaxObserver for MinMax");
        var r = o.MemberwiseCloneOptions();
        // create_calibrator: percentile is symmetric unless told otherwise; distribution has no symmetric argument
        r.Symmetric = m == OrtCalibrationMethod.Distribution ? false : o.Symmetric ?? (m == OrtCalibrationMethod.Percentile);
        return r;
    }

    public override float[] MinVal => _collected || _count > 0 ? [Range().Lowest] : [];
    public override float[] MaxVal => _collected || _count > 0 ? [Range().Highest] : [];

    /// <summary>The histogram result (with the histogram, edges, and distribution's avg / std).</summary>
    public OrtCollectorResult Result()
    {
        Flush();
        return _result ??= _collector.Compute();
    }

    public override (float Lowest, float Highest) Range()
    {
        var r = Result();
        return (r.Lowest, r.Highest);
    }

    public override void Forward(Tensor x)
    {
        if (x.Length == 0) return;
        var v = Values(x);
        _result = null;
        if (Options.CollectPerBatch)
        {
            _collector.Collect(v);
            _collected = true;
            return;
        }
        foreach (var f in v)
        {
            if (float.IsNaN(f)) { _anyNaN = true; continue; }
            if (float.IsNaN(_min) || f < _min) _min = f;
            if (float.IsNaN(_max) || f > _max) _max = f;
            float a = Math.Abs(f);
            if (float.IsNaN(_amin) || a < _amin) _amin = a;
            if (float.IsNaN(_amax) || a > _amax) _amax = a;
        }
        _count += v.Length;
        (_spill ??= new SpillFile()).Append(v);
    }

    private void Flush()
    {
        if (_spill is null) return;
        var spill = _spill;
        _spill = null;
        try
        {
            float amin = _anyNaN ? float.NaN : _amin, amax = _anyNaN ? float.NaN : _amax;
            _collector.CollectStreamed(spill.Chunks, _min, _max, amin, amax, _count);
            _collected = true;
        }
        finally
        {
            spill.Dispose();
        }
        _count = 0;
        _min = _max = _amin = _amax = float.NaN;
        _anyNaN = false;
    }

    public override void Reset()
    {
        _spill?.Dispose();
        _spill = null;
        _collector = NewCollector();
        _result = null;
        _collected = false;
        _count = 0;
        _min = _max = _amin = _amax = float.NaN;
        _anyNaN = false;
    }

    public void Dispose() => _spill?.Dispose();

    /// <summary>float32 values appended to a temporary file, read back in 64K-value chunks.</summary>
    private sealed class SpillFile : IDisposable
    {
        private readonly string _path = Path.Combine(Path.GetTempPath(), $"quanttools-ort-calib-{Guid.NewGuid():N}.f32");
        private readonly FileStream _out;

        public SpillFile() => _out = new FileStream(_path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);

        public void Append(ReadOnlySpan<float> v) => _out.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(v));

        public IEnumerable<float[]> Chunks()
        {
            _out.Flush();
            long total = _out.Length / 4;
            var buf = new float[1 << 16];
            for (long at = 0; at < total; at += buf.Length)
            {
                int n = (int)Math.Min(buf.Length, total - at);
                _out.Position = at * 4;
                _out.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(buf.AsSpan(0, n)));
                yield return n == buf.Length ? buf : buf[..n];
            }
            _out.Position = _out.Length;
        }

        public void Dispose() => _out.Dispose();
    }
}

internal static class OrtOptionsExtensions
{
    public static OrtCalibrationOptions MemberwiseCloneOptions(this OrtCalibrationOptions o) => new()
    {
        Dtype = o.Dtype, Symmetric = o.Symmetric, ActivationSymmetric = o.ActivationSymmetric, ReduceRange = o.ReduceRange,
        MovingAverage = o.MovingAverage, AveragingConstant = o.AveragingConstant, NumBins = o.NumBins,
        NumQuantizedBins = o.NumQuantizedBins, Percentile = o.Percentile, CollectPerBatch = o.CollectPerBatch,
    };
}
