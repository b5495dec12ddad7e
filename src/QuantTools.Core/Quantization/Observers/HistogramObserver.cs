using QuantTools.Core.Kernels;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Quantization.Observers;

/// <summary>
/// PyTorch's HistogramObserver (the PyTorch ≥ 2.5 algorithm, numerics.md §3): a running float32 histogram of
/// <see cref="Bins"/> bins over [min, max], combined across batches by upscaling the old histogram 16× onto the
/// new range, and an L2-norm search (Caffe2 NormMinimization) for the clipping range in <see cref="CalculateQParams"/>.
/// ±inf inputs are dropped; NaN inputs are refused (torch.histc refuses a non-finite range).
/// </summary>
public sealed class HistogramObserver : Observer
{
    public override string Name => "HistogramObserver";
    public const int UpsampleRate = 16;
    public int Bins { get; }
    /// <summary>2^bits of the dtype (256 for 8-bit types even with reduce_range).</summary>
    public long DstNBins { get; }

    private float _min = float.PositiveInfinity, _max = float.NegativeInfinity;
    private float[] _hist;

    public override float[] MinVal => [_min];
    public override float[] MaxVal => [_max];
    /// <summary>A copy of the running histogram (float32 counts).</summary>
    public float[] Histogram => (float[])_hist.Clone();

    public HistogramObserver(ObserverOptions? options = null) : base(Check(options ?? new ObserverOptions()))
    {
        var o = options ?? new ObserverOptions();
        Bins = o.Bins;
        DstNBins = o.Dtype switch
        {
            DType.QInt8 or DType.QUInt8 or DType.Int8 or DType.UInt8 => 256,
            DType.QInt32 or DType.Int32 => 1L << 32,
            _ => throw new QuantToolsException(ErrorCode.NotSupported,
                $"HistogramObserver needs torch.iinfo({o.Dtype.TorchName()}), which PyTorch does not define"),
        };
        _hist = new float[Bins];
    }

    private static ObserverOptions Check(ObserverOptions o)
    {
        RequirePerTensor(o, "HistogramObserver");
        if (o.IsDynamic)
            throw new QuantToolsException(ErrorCode.NotSupported, "HistogramObserver doesn't support dynamic quantization");
        if (o.Bins <= 0)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"bins must be > 0 (torch.histc), got {o.Bins}");
        return o;
    }

    public override void Reset()
    {
        _min = float.PositiveInfinity;
        _max = float.NegativeInfinity;
        Array.Clear(_hist);
    }

    public override void Forward(Tensor x)
    {
        var v = AsFloat32(x);
        if (v.Length == 0) return;
        var (xMin, xMax) = MinMaxKernel.Compute(v);
        if (xMin == float.NegativeInfinity || xMax == float.PositiveInfinity)
        {
            // x = x[x.abs() != inf]; the dropped elements lie outside any finite histc range, so only min/max change.
            Warn("torch.inf detected in input tensor, ignoring input (the ±Inf elements are left out of the histogram, as PyTorch does)");
            (xMin, xMax) = FiniteMinMax(v);
            if (float.IsPositiveInfinity(xMin) && float.IsNegativeInfinity(xMax)) return; // nothing finite left
        }
        if (float.IsNaN(xMin) || float.IsNaN(xMax))
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                "the input contains NaN: PyTorch's HistogramObserver.forward refuses it (torch.histc: range of [nan, nan] is not finite); remove NaN from the input first");

        bool uninitialized = float.IsPositiveInfinity(_min) || float.IsNegativeInfinity(_max);
        if (uninitialized)
        {
            var h = new float[Bins];
            HistcKernel.Histc(v, Bins, xMin, xMax, h);
            _min = xMin;
            _max = xMax;
            _hist = h;
            return;
        }
        float newMin = QParamsMath.Minimum(_min, xMin);
        float newMax = QParamsMath.Maximum(_max, xMax);
        var update = new float[Bins];
        HistcKernel.Histc(v, Bins, newMin, newMax, update);
        if (newMin == _min && newMax == _max)
        {
            for (int i = 0; i < Bins; i++) _hist[i] = _hist[i] + update[i];
            return;
        }
        float[] transformed;
        if (_min == _max)
        {
            // histc(orig_min, bins, update_min, update_max) * sum(orig_hist)
            float total = TorchFloatOps.Sum(_hist);
            transformed = new float[Bins];
            HistcKernel.Histc([_min], Bins, newMin, newMax, transformed);
            for (int i = 0; i < Bins; i++) transformed[i] *= total;
        }
        else
        {
            transformed = UpscaleHistogram(_hist, _min, _max, newMin, newMax);
        }
        for (int i = 0; i < Bins; i++) update[i] = update[i] + transformed[i];
        _hist = update;
        _min = newMin;
        _max = newMax;
    }

    private static (float, float) FiniteMinMax(ReadOnlySpan<float> v)
    {
        float mn = float.PositiveInfinity, mx = float.NegativeInfinity;
        foreach (var e in v)
        {
            if (float.IsNaN(e)) return (float.NaN, float.NaN);
            if (float.IsInfinity(e)) continue;
            if (e < mn) mn = e;
            if (e > mx) mx = e;
        }
        return (mn, mx);
    }

    /// <summary>_upscale_histogram: spread each old bin over 16 sub-bins and re-bin their mid-points on the new range.</summary>
    private float[] UpscaleHistogram(float[] hist, float origMin, float origMax, float updMin, float updMax)
    {
        int bins = Bins;
        int n = bins * UpsampleRate;
        float binSize = (origMax - origMin) / (float)n;
        float halfBin = 0.5f * binSize;
        float step = (origMax - origMin) / (float)n; // linspace(orig_min, orig_max, n + 1) step
        int halfway = (n + 1) / 2;
        float[] edges = TorchFloatOps.Linspace(updMin, updMax, bins + 1);
        var result = new float[bins];
        int j = 0; // upper_bound position of the previous mid-point
        float prev = float.NegativeInfinity;
        // result[cur] is kept in `acc` while consecutive mid-points fall in the same bin: the same additions in the
        // same order as adding into result[b] each time, without a store-to-load dependency per mid-point.
        int cur = 0;
        float acc = result[0];
        for (int k = 0, i = 0; k < bins; k++)
        {
            float add = hist[k] / (float)UpsampleRate; // the same value for the 16 sub-bins of old bin k
            for (int s = 0; s < UpsampleRate; s++, i++)
            {
                float lin = i < halfway
                    ? MathF.FusedMultiplyAdd(step, i, origMin)
                    : MathF.FusedMultiplyAdd(-step, n - i, origMax);
                float mid = lin + halfBin;
                // bucketize(mid, edges, right=True): first index whose edge is > mid
                if (!(mid >= prev)) j = UpperBound(edges, mid);
                else
                    while (j < edges.Length && !(edges[j] > mid)) j++;
                prev = mid;
                int b = j - 1;
                if (b >= bins) b = bins - 1;
                if (b < 0) b = 0;
                if (b != cur)
                {
                    result[cur] = acc;
                    cur = b;
                    acc = result[b];
                }
                acc += add;
            }
        }
        result[cur] = acc;
        return result;
    }

    private static int UpperBound(float[] a, float v)
    {
        int start = 0, end = a.Length;
        while (start < end)
        {
            int mid = start + ((end - start) >> 1);
            if (!(a[mid] > v)) start = mid + 1;
            else end = mid;
        }
        return start;
    }

    public override QParams CalculateQParams()
    {
        if (float.IsPositiveInfinity(_min) && float.IsNegativeInfinity(_max))
            return CalculateFrom([], [], -1);
        var (newMin, newMax) = NonLinearParamSearch();
        return CalculateFrom([newMin], [newMax], -1);
    }

    /// <summary>The clipping range chosen by the L2 search (before qparams), as PyTorch's _non_linear_param_search.</summary>
    public (float Min, float Max) SearchRange()
    {
        if (float.IsPositiveInfinity(_min) && float.IsNegativeInfinity(_max))
            throw new QuantToolsException(ErrorCode.InvalidArgument, "the observer has not seen any data");
        return NonLinearParamSearch();
    }

    private (float, float) NonLinearParamSearch()
    {
        int bins = Bins;
        float binWidth = (_max - _min) / (float)bins;
        double total = TorchFloatOps.Sum(_hist);
        float[] cSum = TorchFloatOps.CumSum(_hist);
        const double stepSize = 1e-5;
        double alpha = 0.0, beta = 1.0;
        int start = 0, end = bins - 1;
        double normMin = double.PositiveInfinity;
        var err = new QuantErrorEvaluator(this);
        while (alpha < beta)
        {
            double nextAlpha = alpha + stepSize;
            double nextBeta = beta - stepSize;
            float ta = (float)(nextAlpha * total);
            float tb = (float)(nextBeta * total);
            int l = start, r = end;
            while (l < end && cSum[l] < ta) l++;
            while (r > start && cSum[r] > tb) r--;
            int nextStart = start, nextEnd = end;
            if (l - start > end - r)
            {
                nextStart = l;
                alpha = nextAlpha;
            }
            else
            {
                nextEnd = r;
                beta = nextBeta;
            }
            if (nextStart == start && nextEnd == end) continue;
            double norm = err.Compute(nextStart, nextEnd);
            if (norm > normMin) break;
            normMin = norm;
            start = nextStart;
            end = nextEnd;
        }
        float newMin = _min + binWidth * (float)start;
        float newMax = _min + binWidth * (float)(end + 1);
        return (newMin, newMax);
    }

    /// <summary>
    /// _compute_quantization_error(start, end) with the float32 tensor arithmetic of PyTorch, per source bin,
    /// summed with torch.sum's cascade. Per-search constants (bin offsets, densities) are precomputed.
    /// </summary>
    private sealed class QuantErrorEvaluator
    {
        private readonly HistogramObserver _o;
        private readonly double _bw;
        private readonly float _bwF;
        private readonly float[] _density;
        private readonly float[] _norm;
        private readonly float _dstMax;
        private readonly bool _fastFloor;

        public QuantErrorEvaluator(HistogramObserver o)
        {
            _o = o;
            int bins = o.Bins;
            _bw = ((double)o._max - (double)o._min) / bins;
            _bwF = (float)_bw;
            _density = new float[bins];
            for (int i = 0; i < bins; i++) _density[i] = o._hist[i] / _bwF;
            _norm = new float[bins];
            _dstMax = (float)(o.DstNBins - 1);
            // the float floor-division shortcut is exact while every quotient stays below 2^24
            _fastFloor = (double)bins * o.DstNBins < (1 << 24);
        }

        public double Compute(int s, int e)
        {
            int bins = _o.Bins;
            double dbw = _bw * (e - s + 1) / _o.DstNBins;
            if (dbw == 0.0) return 0.0;
            float bw = _bwF;
            float d = (float)dbw;
            float half = (float)(dbw / 2);
            float nhalf = (float)(-dbw / 2);
            float halfCube = half * half * half;
            float nhalfCube = nhalf * nhalf * nhalf;
            float mid = (halfCube - nhalfCube) / 3f;
            bool fast = _fastFloor && d > 0f && float.IsNormal(d) && float.IsFinite(bw);
            float dstMax = _dstMax;
            var dens = _density;
            var norm = _norm;
            for (int i = 0; i < bins; i++)
            {
                float b = (float)(i - s) * bw;
                float en = b + bw;
                float db = fast ? FloorDivClampFast(b, d, dstMax) : Clamp(TorchFloatOps.DivFloor(b, d), dstMax);
                float de = fast ? FloorDivClampFast(en, d, dstMax) : Clamp(TorchFloatOps.DivFloor(en, d), dstMax);
                float dn = dens[i];
                float dbc = (db + 0.5f) * d;
                float d1 = b - dbc;
                float n1 = dn * ((halfCube - d1 * d1 * d1) / 3f);
                float n2 = (de - db - 1f) * (dn * mid);
                float acc = 0f + n1;
                acc = acc + n2;
                float dec = de * d + half;
                float d3 = en - dec;
                float n3 = dn * ((d3 * d3 * d3 - nhalfCube) / 3f);
                norm[i] = acc + n3;
            }
            return TorchFloatOps.Sum(norm);
        }

        private static float Clamp(float v, float hi)
        {
            // torch.clamp(v, 0, hi): std::min(std::max(v, 0), hi); NaN propagates
            if (float.IsNaN(v)) return v;
            float r = v < 0f ? 0f : v;
            return hi < r ? hi : r;
        }

        /// <summary>
        /// clamp(floor_divide(a, b), 0, hi) for b &gt; 0 normal and quotients below 2^24: the float quotient's floor is the
        /// true floor unless the quotient rounded onto an integer from below, which the exact sign of fma(q, b, −a) detects.
        /// Equals c10::div_floor_floating there (its fmod-based result is the exact floor for such quotients).
        /// </summary>
        private static float FloorDivClampFast(float a, float b, float hi)
        {
            if (float.IsNaN(a)) return a;
            if (!(a > 0f)) return 0f; // a ≤ 0: floor ≤ 0 (−0 for a = −0), clamps to 0 (sign of zero is irrelevant downstream)
            float q = a / b;
            float f = MathF.Floor(q);
            if (f == q && MathF.FusedMultiplyAdd(f, b, -a) > 0f) f -= 1f;
            return hi < f ? hi : f;
        }
    }
}
