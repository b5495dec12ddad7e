using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using QuantTools.Core.Quantization.Observers;

namespace QuantTools.Core.Kernels;

/// <summary>
/// <c>torch.histc</c> for float32 (HistogramObserver's binning), with the bins computed 16 (AVX-512), 8 (AVX2) or 4
/// (Vector128) at a time and counted into several arrays; every path equals the scalar loop bit for bit.
/// </summary>
public static class HistcKernel
{
    /// <summary>
    /// torch.histc(x, bins, min, max) added into <paramref name="hist"/> (which must start at zero):
    /// LINEAR_INTERPOLATION binning <c>(int64)(((x − lo)·bins) / (hi − lo))</c> in float32, the last bin closed,
    /// NaN and out-of-range elements skipped. min == max widens to the data's own range, then to [v−1, v+1].
    /// </summary>
    public static void Histc(ReadOnlySpan<float> x, int bins, float min, float max, float[] hist)
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
    public const KernelPath Implemented = KernelPath.Scalar | KernelPath.Vector128 | KernelPath.Avx2 | KernelPath.Avx512;

    /// <summary><c>f32-histc/{scalar, vector128, avx2, avx512}</c>.</summary>
    public static readonly KernelFamily Family = new("f32-histc", Implemented);

    private static void HistcCount(ReadOnlySpan<float> x, int bins, float lo, float hi, float[] hist)
    {
        var path = Family.Resolve();
        int stride = bins + 1; // slot `bins` collects skipped elements
        int chunks = x.Length >= ParallelThreshold ? Math.Min(Parallelism.MaxThreads, 8) : 1;
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
}
