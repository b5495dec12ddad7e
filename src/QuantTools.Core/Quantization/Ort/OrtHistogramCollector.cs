namespace QuantTools.Core.Quantization.Ort;

/// <summary>ONNX Runtime's calibration methods (onnxruntime.quantization.CalibrationMethod).</summary>
public enum OrtCalibrationMethod { MinMax, Entropy, Percentile, Distribution }

public static class OrtCalibrationMethodInfo
{
    public static OrtCalibrationMethod Parse(string s) => s.Trim().ToLowerInvariant() switch
    {
        "minmax" => OrtCalibrationMethod.MinMax,
        "entropy" => OrtCalibrationMethod.Entropy,
        "percentile" => OrtCalibrationMethod.Percentile,
        "distribution" => OrtCalibrationMethod.Distribution,
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"unknown calibration method '{s}'; expected minmax, entropy, percentile or distribution"),
    };
}

/// <summary>
/// What <see cref="OrtHistogramCollector.Compute"/> returns for one tensor: the range (<c>lowest</c>, <c>highest</c>)
/// and what ORT's <c>compute_collection_result</c> puts beside it: entropy the histogram and its edges, percentile the
/// first two histogram counts (ORT appends <c>*hist[:2]</c>), distribution the average and standard deviation.
/// </summary>
public sealed class OrtCollectorResult
{
    public required float Lowest { get; init; }
    public required float Highest { get; init; }
    public long[] Hist { get; init; } = [];
    public float[] Edges { get; init; } = [];
    public float? Avg { get; init; }
    public float? Std { get; init; }
    public OrtCalibrationMethod Method { get; init; }

    /// <summary>The values in the order the golden collector cases list them, as exact doubles.</summary>
    public IReadOnlyList<double[]> Parts() => Method switch
    {
        OrtCalibrationMethod.Entropy => [[Lowest], [Highest], Hist.Select(h => (double)h).ToArray(), Edges.Select(e => (double)e).ToArray()],
        OrtCalibrationMethod.Percentile => [[Lowest], [Highest], [Hist.Length > 0 ? Hist[0] : 0], [Hist.Length > 1 ? Hist[1] : 0]],
        _ => [[Lowest], [Highest], [Avg ?? 0], [Std ?? 0]],
    };
}

/// <summary>
/// ONNX Runtime 1.30's <c>HistogramCollector</c> (onnxruntime/python/tools/quantization/calibrate.py) for one tensor,
/// with numpy's float32 arithmetic (<see cref="NumpyFloat32"/>). Each <see cref="Collect"/> is one <c>collect()</c>
/// call: entropy and distribution histogram the values over [−t, t] (t = max|x| of the first call; later calls that
/// exceed it grow the histogram by whole bins on both sides, <c>merge_histogram</c>); symmetric percentile histograms
/// |x| over [min|x|, max|x|] (later calls append bins of the same width, <c>collect_absolute_value</c>); asymmetric
/// percentile uses the value histogram. ORT's own calibrators (HistogramCalibrater.collect_data) make a single call
/// with every calibration batch concatenated. State is the histogram only: memory does not grow with the data.
/// </summary>
public sealed class OrtHistogramCollector
{
    public OrtCalibrationMethod Method { get; }
    public bool Symmetric { get; }
    public int NumBins { get; }
    public int NumQuantizedBins { get; }
    public double Percentile { get; }

    private long[]? _hist;
    private float[]? _edges;
    private float _min, _max, _threshold;

    public long[]? Histogram => _hist;
    public float[]? Edges => _edges;
    public float Min => _min;
    public float Max => _max;

    public OrtHistogramCollector(OrtCalibrationMethod method, bool symmetric, int numBins, int numQuantizedBins = 128, double percentile = 99.999)
    {
        if (method == OrtCalibrationMethod.MinMax)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "MinMax is not a histogram method; use OrtMinMaxObserver");
        if (numBins < 1 || numBins > 1 << 24) throw new QuantToolsException(ErrorCode.InvalidArgument, $"num_bins must be in [1, 2^24], got {numBins}");
        if (numQuantizedBins < 1) throw new QuantToolsException(ErrorCode.InvalidArgument, $"num_quantized_bins must be positive, got {numQuantizedBins}");
        Method = method;
        Symmetric = symmetric;
        NumBins = numBins;
        NumQuantizedBins = numQuantizedBins;
        Percentile = percentile;
    }

    private bool AbsoluteValues => Method == OrtCalibrationMethod.Percentile && Symmetric;

    /// <summary>One <c>collect()</c> call on <paramref name="data"/> (all of it at once, as ORT flattens its batches).</summary>
    public void Collect(ReadOnlySpan<float> data)
    {
        var (mn, mx) = NanMinMax(data);
        if (AbsoluteValues) CollectAbsolute(data, mn, mx, data);
        else CollectValue(data, mn, mx);
    }

    /// <summary>nanmin / nanmax (0 for an empty array, as ORT sets them).</summary>
    internal static (float Min, float Max) NanMinMax(ReadOnlySpan<float> data)
    {
        float mn = float.NaN, mx = float.NaN;
        foreach (var v in data)
        {
            if (float.IsNaN(v)) continue;
            if (float.IsNaN(mn) || v < mn) mn = v;
            if (float.IsNaN(mx) || v > mx) mx = v;
        }
        if (data.Length == 0) return (0, 0);
        return (mn, mx);
    }

    /// <summary>
    /// The part of <see cref="Collect"/> after the pass that found the data's min and max: <paramref name="chunks"/> are
    /// read once (a spilled calibration set can be streamed back in pieces).
    /// </summary>
    internal void CollectStreamed(Func<IEnumerable<float[]>> chunks, float mn, float mx, float absMin, float absMax, long count)
    {
        if (AbsoluteValues) CollectAbsoluteStreamed(chunks, mn, mx, absMin, absMax, count);
        else CollectValueStreamed(chunks, mn, mx, count);
    }

    private void CollectValue(ReadOnlySpan<float> data, float mn, float mx)
    {
        var copy = data.ToArray();
        CollectValueStreamed(() => [copy], mn, mx, data.Length);
    }

    private void CollectValueStreamed(Func<IEnumerable<float[]>> chunks, float mn, float mx, long count)
    {
        if (float.IsNaN(mn)) throw new QuantToolsException(ErrorCode.InvalidArgument, "every value is NaN: numpy's histogram range would be [nan, nan]");
        float threshold = Math.Max(Math.Abs(mn), Math.Abs(mx));
        if (float.IsInfinity(threshold)) throw new QuantToolsException(ErrorCode.InvalidArgument, "supplied range of [-inf, inf] is not finite (numpy's histogram refuses it)");
        if (_hist is null)
        {
            (_hist, _edges) = Hist(chunks, NumBins, -threshold, threshold);
            _min = mn; _max = mx; _threshold = threshold;
            return;
        }
        // merge_histogram
        if (threshold <= _threshold)
        {
            var (h, _) = Hist(chunks, _hist.Length, -_threshold, _threshold);
            for (int i = 0; i < h.Length; i++) h[i] += _hist[i];
            _hist = h;
        }
        else if (_threshold == 0)
        {
            var (h, e) = Hist(chunks, _hist.Length, -threshold, threshold);
            for (int i = 0; i < h.Length; i++) h[i] += _hist[i];
            _hist = h; _edges = e; _threshold = threshold;
        }
        else
        {
            int oldBins = _hist.Length;
            float oldStride = 2 * _threshold / oldBins;
            float half = NumpyFloat32.FloorDivide(threshold - _threshold, oldStride) + 1;
            if (!(half < 1 << 24)) throw new QuantToolsException(ErrorCode.InvalidArgument, $"the histogram would grow by {half} bins on each side");
            int halfBins = (int)half;
            int newBins = checked(oldBins + 2 * halfBins);
            float newThreshold = halfBins * oldStride + _threshold;
            var (h, e) = Hist(chunks, newBins, -newThreshold, newThreshold);
            for (int i = 0; i < oldBins; i++) h[halfBins + i] += _hist[i];
            _hist = h; _edges = e; _threshold = newThreshold;
        }
        _min = Math.Min(_min, mn);
        _max = Math.Max(_max, mx);
    }

    private static (long[] Hist, float[] Edges) Hist(Func<IEnumerable<float[]>> chunks, int bins, float lo, float hi)
    {
        // np.histogram: an empty range widens by 0.5 on each side
        if (lo == hi) { lo -= 0.5f; hi += 0.5f; }
        var edges = NumpyFloat32.Linspace(lo, hi, bins + 1);
        var hist = new long[bins];
        foreach (var c in chunks()) NumpyFloat32.HistogramUniform(c, lo, hi, edges, hist);
        return (hist, edges);
    }

    private void CollectAbsolute(ReadOnlySpan<float> data, float mn, float mx, ReadOnlySpan<float> _)
    {
        float amin = float.PositiveInfinity, amax = float.NegativeInfinity;
        bool nan = false;
        foreach (var v in data)
        {
            float a = Math.Abs(v);
            if (float.IsNaN(a)) { nan = true; continue; }
            if (a < amin) amin = a;
            if (a > amax) amax = a;
        }
        if (nan) amin = amax = float.NaN;
        var copy = data.ToArray();
        CollectAbsoluteStreamed(() => [copy], mn, mx, amin, amax, data.Length);
    }

    private void CollectAbsoluteStreamed(Func<IEnumerable<float[]>> chunks, float mn, float mx, float amin, float amax, long count)
    {
        IEnumerable<float[]> Abs() => chunks().Select(c => c.Select(MathF.Abs).ToArray());
        if (_hist is null)
        {
            float lo, hi;
            if (count == 0) { lo = 0; hi = 1; }
            else
            {
                if (float.IsNaN(amin) || float.IsInfinity(amax))
                    throw new QuantToolsException(ErrorCode.InvalidArgument, $"autodetected range of [{amin}, {amax}] is not finite (numpy's histogram refuses it)");
                lo = amin; hi = amax;
            }
            (_hist, _edges) = Hist(Abs, NumBins, lo, hi);
            _min = mn; _max = mx;
            return;
        }
        float tempAmax = amax;
        var edges = _edges!;
        if (tempAmax > edges[^1])
        {
            float width = edges[1] - edges[0];
            var extra = NumpyFloat32.Arange(edges[^1] + width, tempAmax + width, width);
            edges = [.. edges, .. extra];
        }
        var h = new long[edges.Length - 1];
        foreach (var c in Abs()) NumpyFloat32.HistogramEdges(c, edges, h);
        for (int i = 0; i < _hist.Length; i++) h[i] += _hist[i];
        _hist = h; _edges = edges;
        _min = Math.Min(_min, mn);
        _max = Math.Max(_max, mx);
    }

    /// <summary><c>compute_collection_result()</c> for this tensor.</summary>
    public OrtCollectorResult Compute()
    {
        if (_hist is null || _edges is null) throw new QuantToolsException(ErrorCode.InvalidArgument, "Histogram has not been collected. Please run collect() first.");
        return Method switch
        {
            OrtCalibrationMethod.Entropy => Entropy(),
            OrtCalibrationMethod.Percentile => PercentileResult(),
            _ => Distribution(),
        };
    }

    private OrtCollectorResult PercentileResult()
    {
        if (Percentile < 0 || Percentile > 100) throw new QuantToolsException(ErrorCode.InvalidArgument, "Invalid percentile. Must be in range 0 <= percentile <= 100.");
        var hist = _hist!;
        var edges = _edges!;
        long total = hist.Sum();
        // cdf = np.cumsum(hist / total): float64, sequential
        var cdf = new double[hist.Length];
        double run = 0;
        for (int i = 0; i < hist.Length; i++) { run += (double)hist[i] / total; cdf[i] = run; }
        float lo, hi;
        if (Symmetric)
        {
            int r = SearchSortedLeft(cdf, Percentile / 100.0);
            lo = -edges[r]; hi = edges[r];
        }
        else
        {
            double cut = (100.0 - Percentile) / 200.0;
            int r = SearchSortedLeft(cdf, 1.0 - cut);
            int l = SearchSortedLeft(cdf, cut);
            lo = edges[l]; hi = edges[r];
        }
        if (lo < _min) lo = _min;
        if (hi > _max) hi = _max;
        return new OrtCollectorResult { Lowest = lo, Highest = hi, Hist = hist, Edges = edges, Method = Method };
    }

    /// <summary>np.searchsorted(a, v, side='left') on a non-decreasing array.</summary>
    private static int SearchSortedLeft(double[] a, double v)
    {
        int lo = 0, hi = a.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (a[mid] < v) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    private OrtCollectorResult Distribution()
    {
        if (NumBins < 512) throw new QuantToolsException(ErrorCode.InvalidArgument, "Invalid num_bins. Must be in range 512 <= num_bins.");
        var hist = _hist!;
        var edges = _edges!;
        // _avg_std(power=1): values = (edges[:-1] + edges[1:]) * 0.5 in float32; the sums in float64
        int n = hist.Length;
        var hv = new double[n];
        var hv2 = new double[n];
        for (int i = 0; i < n; i++)
        {
            float v = (edges[i] + edges[i + 1]) * 0.5f;
            hv[i] = hist[i] * (double)v;
            hv2[i] = hist[i] * (double)(v * v);
        }
        long hs = hist.Sum();
        double avg = NumpyFloat32.PairwiseSum(hv) / hs;
        double std = Math.Sqrt(NumpyFloat32.PairwiseSum(hv2) / hs - avg * avg);
        return new OrtCollectorResult
        {
            Lowest = edges.Min(), Highest = edges.Max(), Hist = hist, Edges = edges, Avg = (float)avg, Std = (float)std, Method = Method,
        };
    }

    private OrtCollectorResult Entropy()
    {
        var hist = _hist!;
        var edges = _edges!;
        int numBins = hist.Length, zero = numBins / 2, halfQ = NumQuantizedBins / 2;
        if (zero - halfQ + 1 <= 0)
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"num_quantized_bins {NumQuantizedBins} is larger than the histogram's {numBins} bins allow (numpy: negative dimensions are not allowed)");
        var kl = new double[zero - halfQ + 1];
        var thr = new (float Lo, float Hi)[kl.Length];
        var prefix = new long[numBins + 1];
        for (int i = 0; i < numBins; i++) prefix[i + 1] = prefix[i] + hist[i];
        for (int i = halfQ; i <= zero; i++)
        {
            int start = zero - i, end = Math.Min(zero + i + 1, numBins);
            thr[i - halfQ] = (edges[start], edges[end]);
            int len = end - start;
            var p = new long[len];
            Array.Copy(hist, start, p, 0, len);
            p[0] += prefix[start];
            p[^1] += prefix[numBins] - prefix[end];
            var nonzero = p.Select(v => v != 0 ? 1L : 0L).ToArray();
            var qb = new long[NumQuantizedBins];
            int merged = len / NumQuantizedBins;
            for (int k = 0; k < NumQuantizedBins; k++)
            {
                long s = 0;
                for (int j = k * merged; j < k * merged + merged; j++) s += hist[start + j];
                qb[k] = s;
            }
            for (int j = NumQuantizedBins * merged; j < len; j++) qb[^1] += hist[start + j];
            var q = new long[len];
            for (int k = 0; k < NumQuantizedBins; k++)
            {
                int s0 = k * merged, s1 = s0 + merged;
                long norm = 0;
                for (int j = s0; j < s1; j++) norm += nonzero[j];
                // q[start:end] = quantized_bins[index] / norm: a float64 quotient stored into int64 (truncated)
                if (norm != 0)
                    for (int j = s0; j < s1; j++) q[j] = (long)((double)qb[k] / norm);
            }
            var ps = Smooth(p);
            var qs = Smooth(q);
            kl[i - halfQ] = ps is null || qs is null ? double.PositiveInfinity : KlDivergence(ps, qs);
        }
        int best = 0;
        for (int i = 1; i < kl.Length; i++)
        {
            if (double.IsNaN(kl[best])) break;
            if (double.IsNaN(kl[i]) || kl[i] < kl[best]) best = i;
        }
        var (lo, hi) = thr[best];
        if (lo < _min) lo = _min;
        if (hi > _max) hi = _max;
        return new OrtCollectorResult { Lowest = lo, Highest = hi, Hist = hist, Edges = edges, Method = Method };
    }

    /// <summary>quant_utils.smooth_distribution in float32: zeros become eps, non-zeros lose eps·n_zeros/n_nonzeros.</summary>
    private static float[]? Smooth(long[] p)
    {
        int zeros = p.Count(v => v == 0);
        // n_zeros is a float32 sum; p.size - n_zeros a float32 difference
        float nz = zeros, nnz = p.Length - nz;
        if (nnz == 0) return null;
        double eps1 = 0.0001 * (double)nz / (double)nnz;
        if (!(eps1 < 1.0))
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"smooth_distribution: n_zeros={zeros}, n_nonzeros={nnz}, eps1={eps1} (ORT asserts eps1 < 1)");
        float e0 = 0.0001f, e1 = (float)-eps1;
        var h = new float[p.Length];
        for (int i = 0; i < p.Length; i++)
        {
            float add = p[i] == 0 ? e0 + -0f * e1 : 0f * e0 + e1;
            h[i] = (float)p[i] + add;
        }
        return h;
    }

    /// <summary>calibrate.py entropy(p, q): both normalized by their float32 pairwise sums, Σ p·log(p/q) in float32.</summary>
    private static double KlDivergence(float[] p, float[] q)
    {
        float sp = NumpyFloat32.PairwiseSum(p), sq = NumpyFloat32.PairwiseSum(q);
        var v = new float[p.Length];
        for (int i = 0; i < p.Length; i++)
        {
            float pk = p[i] / sp, qk = q[i] / sq;
            if (pk == 0 && qk >= 0) { v[i] = 0; continue; }
            if (!(pk > 0 && qk > 0)) { v[i] = float.PositiveInfinity; continue; }
            v[i] = pk * (float)Math.Log(pk / qk);
        }
        return NumpyFloat32.PairwiseSum(v);
    }
}
