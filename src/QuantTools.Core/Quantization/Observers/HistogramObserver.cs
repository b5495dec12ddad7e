using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
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
            Histc(v, Bins, xMin, xMax, h);
            _min = xMin;
            _max = xMax;
            _hist = h;
            return;
        }
        float newMin = QParamsMath.Minimum(_min, xMin);
        float newMax = QParamsMath.Maximum(_max, xMax);
        var update = new float[Bins];
        Histc(v, Bins, newMin, newMax, update);
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
            Histc([_min], Bins, newMin, newMax, transformed);
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

    /// <summary>
    /// torch.histc(x, bins, min, max) added into <paramref name="hist"/> (which must start at zero):
    /// LINEAR_INTERPOLATION binning <c>(int64)(((x − lo)·bins) / (hi − lo))</c> in float32, the last bin closed,
    /// NaN and out-of-range elements skipped. min == max widens to the data's own range, then to [v−1, v+1].
    /// </summary>
    internal static void Histc(ReadOnlySpan<float> x, int bins, float min, float max, float[] hist)
    {
        double left = min, right = max;
        if (left == right && x.Length > 0)
        {
            var (a, b) = MinMaxKernel.Compute(x);
            left = a;
            right = b;
        }
        if (left == right)
        {
            left -= 1;
            right += 1;
        }
        if (double.IsInfinity(left) || double.IsInfinity(right) || double.IsNaN(left) || double.IsNaN(right))
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"torch.histc: range of [{left}, {right}] is not finite");
        if (!(left < right))
            throw new QuantToolsException(ErrorCode.InvalidArgument, "torch.histc: max must be larger than min");
        // bin_edges = linspace(left, right, bins + 1) in float32; the kernel uses its first and last edges.
        float lo = TorchFloatOps.LinspaceAt((float)left, (float)right, bins + 1, 0);
        float hi = TorchFloatOps.LinspaceAt((float)left, (float)right, bins + 1, bins);
        HistcCount(x, bins, lo, hi, hist);
    }

    private const int ParallelThreshold = 1 << 20;
    /// <summary>Count arrays per chunk: consecutive elements go to different arrays so that runs of equal bins do not
    /// serialize on one counter.</summary>
    private const int Copies = 4;
    /// <summary>The paths <see cref="CountChunk"/> implements (tests force each against the scalar reference).</summary>
    internal const KernelPath HistcPaths = KernelPath.Scalar | KernelPath.Vector128 | KernelPath.Avx2 | KernelPath.Avx512;

    private static void HistcCount(ReadOnlySpan<float> x, int bins, float lo, float hi, float[] hist)
    {
        var path = KernelPaths.Choose(HistcPaths);
        int stride = bins + 1; // slot `bins` collects skipped elements
        int chunks = x.Length >= ParallelThreshold ? Math.Min(Kernels.Parallelism.MaxThreads, 8) : 1;
        if (chunks <= 1)
        {
            var counts = new int[Copies * stride];
            CountChunk(x, bins, lo, hi, counts, path);
            AddCounts(counts, Copies, stride, bins, hist);
            return;
        }
        // thread-local counts, summed exactly afterwards (integer counts, so the split cannot change the result)
        var all = new int[chunks * Copies * stride];
        int per = (x.Length + chunks - 1) / chunks;
        unsafe
        {
            fixed (float* px = x)
            {
                float* p = px;
                int len = x.Length;
                Parallel.For(0, chunks, k =>
                {
                    int s0 = k * per, s1 = Math.Min(len, s0 + per);
                    if (s1 > s0)
                        CountChunk(new ReadOnlySpan<float>(p + s0, s1 - s0), bins, lo, hi,
                            all.AsSpan(k * Copies * stride, Copies * stride), path);
                });
            }
        }
        AddCounts(all, chunks * Copies, stride, bins, hist);
    }

    private static void AddCounts(int[] counts, int copies, int stride, int bins, float[] hist)
    {
        for (int k = 0; k < bins; k++)
        {
            long c = 0;
            for (int j = 0; j < copies; j++) c += counts[j * stride + k];
            hist[k] += c;
        }
    }

    /// <summary>
    /// Counts elements per bin into <see cref="Copies"/> count arrays of <c>bins + 1</c> slots (the last slot takes the
    /// skipped elements), bin = (int)(((x − lo)·bins) / (hi − lo)) in float32 with the last bin closed.
    /// The vector paths compute 16 (AVX-512), 8 (AVX2) or 4 (Vector128) bins at once with the same float32 division and move them to
    /// general registers two at a time (no store and reload); consecutive elements go to different count arrays.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void CountChunk(ReadOnlySpan<float> x, int bins, float lo, float hi, Span<int> countsSpan, KernelPath path)
    {
        float nb = bins;
        float range = hi - lo;
        int stride = bins + 1;
        int n = x.Length;
        int i = 0;
        fixed (float* px = x)
        fixed (int* c0 = countsSpan)
        {
            int* c1 = c0 + stride, c2 = c1 + stride, c3 = c2 + stride;
            if (path == KernelPath.Avx512 && Avx512F.IsSupported && n >= 32)
            {
                var vlo = Vector512.Create(lo);
                var vhi = Vector512.Create(hi);
                var vnb = Vector512.Create(nb);
                var vrange = Vector512.Create(range);
                var vlast = Vector512.Create(bins - 1);
                var vskip = Vector512.Create(bins);
                for (; i <= n - 32; i += 32)
                {
                    var b0 = Bins512(Avx512F.LoadVector512(px + i), vlo, vhi, vnb, vrange, vlast, vskip);
                    var b1 = Bins512(Avx512F.LoadVector512(px + i + 16), vlo, vhi, vnb, vrange, vlast, vskip);
                    Inc8(b0.GetLower(), c0, c1, c2, c3);
                    Inc8(b0.GetUpper(), c0, c1, c2, c3);
                    Inc8(b1.GetLower(), c0, c1, c2, c3);
                    Inc8(b1.GetUpper(), c0, c1, c2, c3);
                }
            }
            else if (path is KernelPath.Avx2 or KernelPath.Avx512 && Avx2.IsSupported && n >= 8)
            {
                var vlo = Vector256.Create(lo);
                var vhi = Vector256.Create(hi);
                var vnb = Vector256.Create(nb);
                var vrange = Vector256.Create(range);
                var vlast = Vector256.Create(bins - 1);
                var vskip = Vector256.Create(bins);
                for (; i <= n - 8; i += 8)
                {
                    var v = Avx.LoadVector256(px + i);
                    var inRange = Avx.And(Avx.CompareGreaterThanOrEqual(v, vlo), Avx.CompareLessThanOrEqual(v, vhi));
                    var t = Avx.Divide(Avx.Multiply(Avx.Subtract(v, vlo), vnb), vrange);
                    var b = Avx2.Min(Avx.ConvertToVector256Int32WithTruncation(t), vlast);
                    Inc8(Avx2.BlendVariable(vskip, b, inRange.AsInt32()), c0, c1, c2, c3);
                }
            }
            else if (path == KernelPath.Vector128 && Vector128.IsHardwareAccelerated && n >= 4)
            {
                // portable 4-wide form (NEON on arm64)
                var vlo = Vector128.Create(lo);
                var vhi = Vector128.Create(hi);
                var vnb = Vector128.Create(nb);
                var vrange = Vector128.Create(range);
                var vlast = Vector128.Create(bins - 1);
                var vskip = Vector128.Create(bins);
                for (; i <= n - 4; i += 4)
                {
                    var v = Vector128.Load(px + i);
                    var inRange = Vector128.GreaterThanOrEqual(v, vlo) & Vector128.LessThanOrEqual(v, vhi);
                    var t = (v - vlo) * vnb / vrange;
                    var b = Vector128.Min(Vector128.ConvertToInt32(t), vlast);
                    var q = Vector128.ConditionalSelect(inRange.AsInt32(), b, vskip).AsUInt64();
                    ulong p = q.ToScalar();
                    c0[(uint)p]++;
                    c1[p >> 32]++;
                    p = q.GetElement(1);
                    c2[(uint)p]++;
                    c3[p >> 32]++;
                }
            }
            for (; i < n; i++)
            {
                float e = px[i];
                if (!(e >= lo && e <= hi)) continue;
                long p = (long)((e - lo) * nb / range);
                if (p >= bins) p = bins - 1;
                c0[p]++;
            }
        }
    }

    /// <summary>Adds one to the 8 slots of <paramref name="b"/> (non-negative), lane k into count array k mod 4.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Inc8(Vector256<int> b, int* c0, int* c1, int* c2, int* c3)
    {
        var q0 = b.GetLower().AsUInt64();
        var q1 = b.GetUpper().AsUInt64();
        ulong p = q0.ToScalar();
        c0[(uint)p]++;
        c1[p >> 32]++;
        p = q0.GetElement(1);
        c2[(uint)p]++;
        c3[p >> 32]++;
        p = q1.ToScalar();
        c0[(uint)p]++;
        c1[p >> 32]++;
        p = q1.GetElement(1);
        c2[(uint)p]++;
        c3[p >> 32]++;
    }

    /// <summary>The 16 bins of <paramref name="v"/>, <paramref name="vskip"/> for NaN and out-of-range lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Bins512(Vector512<float> v, Vector512<float> vlo, Vector512<float> vhi, Vector512<float> vnb,
        Vector512<float> vrange, Vector512<int> vlast, Vector512<int> vskip)
    {
        var inRange = Vector512.GreaterThanOrEqual(v, vlo) & Vector512.LessThanOrEqual(v, vhi);
        var t = Avx512F.Divide(Avx512F.Multiply(Avx512F.Subtract(v, vlo), vnb), vrange);
        var b = Avx512F.Min(Avx512F.ConvertToVector512Int32WithTruncation(t), vlast);
        return Vector512.ConditionalSelect(inRange.AsInt32(), b, vskip);
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
