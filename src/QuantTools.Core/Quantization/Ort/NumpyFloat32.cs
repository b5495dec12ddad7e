namespace QuantTools.Core.Quantization.Ort;

/// <summary>
/// The numpy 2 arithmetic ONNX Runtime's Python calibrators rely on, for float32 arrays, operation by operation:
/// <c>np.linspace</c> (float32 step, <c>i·step + start</c>, last element = stop), <c>np.histogram</c> with equal bins
/// (the index <c>f32(f32(f32(x − lo) / f32(hi − lo)) · n)</c> truncated, then corrected against the edges) and with
/// explicit edges, numpy's pairwise summation (8 partial sums, blocks of 128) in float32 and float64, and
/// <c>np.floor_divide</c> for float32. The golden collector cases confirm linspace and histogram bit for bit
/// (numpy 1.24's float64 linspace misses 62 to 1095 edges per case).
/// </summary>
internal static class NumpyFloat32
{
    public static float[] Linspace(float start, float stop, int num)
    {
        if (num <= 0) return [];
        var y = new float[num];
        int div = num - 1;
        float delta = stop - start;
        float step = div > 0 ? delta / div : float.NaN;
        if (div > 0 && step == 0)
            for (int i = 0; i < num; i++) y[i] = (float)i / div * delta + start;
        else
            for (int i = 0; i < num; i++) y[i] = (div > 0 ? i * step : 0f) + start;
        if (num > 1) y[^1] = stop;
        return y;
    }

    /// <summary>np.histogram(data, bins, range=(lo, hi)) for float32 data: counts added to <paramref name="hist"/>.</summary>
    public static void HistogramUniform(ReadOnlySpan<float> data, float lo, float hi, float[] edges, long[] hist)
    {
        int n = hist.Length;
        float denom = hi - lo;
        foreach (var x in data)
        {
            if (!(x >= lo && x <= hi)) continue;
            float f = (x - lo) / denom * n;
            long idx = (long)f;
            if (idx == n) idx--;
            if (x < edges[idx]) idx--;
            if (x >= edges[idx + 1] && idx != n - 1) idx++;
            hist[idx]++;
        }
    }

    /// <summary>np.histogram(data, bins=edges) with explicit (sorted) edges: bin i holds edges[i] ≤ x &lt; edges[i+1], the last bin also x = edges[^1].</summary>
    public static void HistogramEdges(ReadOnlySpan<float> data, float[] edges, long[] hist)
    {
        int nb = edges.Length - 1;
        foreach (var x in data)
        {
            if (float.IsNaN(x) || x < edges[0] || x > edges[^1]) continue;
            // the last edge i with edges[i] <= x
            int lo = 0, hi = edges.Length - 1;
            while (lo < hi)
            {
                int mid = (lo + hi + 1) >> 1;
                if (edges[mid] <= x) lo = mid; else hi = mid - 1;
            }
            hist[Math.Min(lo, nb - 1)]++;
        }
    }

    /// <summary>numpy's pairwise sum of a contiguous float32 array (what <c>np.sum</c> returns).</summary>
    public static float PairwiseSum(ReadOnlySpan<float> a)
    {
        int n = a.Length;
        if (n < 8)
        {
            float r = 0;
            for (int i = 0; i < n; i++) r += a[i];
            return r;
        }
        if (n <= 128)
        {
            Span<float> r = stackalloc float[8];
            for (int j = 0; j < 8; j++) r[j] = a[j];
            int i = 8;
            for (; i < n - n % 8; i += 8)
                for (int j = 0; j < 8; j++) r[j] += a[i + j];
            float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (; i < n; i++) res += a[i];
            return res;
        }
        int n2 = n / 2;
        n2 -= n2 % 8;
        return PairwiseSum(a[..n2]) + PairwiseSum(a[n2..]);
    }

    public static double PairwiseSum(ReadOnlySpan<double> a)
    {
        int n = a.Length;
        if (n < 8)
        {
            double r = 0;
            for (int i = 0; i < n; i++) r += a[i];
            return r;
        }
        if (n <= 128)
        {
            Span<double> r = stackalloc double[8];
            for (int j = 0; j < 8; j++) r[j] = a[j];
            int i = 8;
            for (; i < n - n % 8; i += 8)
                for (int j = 0; j < 8; j++) r[j] += a[i + j];
            double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (; i < n; i++) res += a[i];
            return res;
        }
        int n2 = n / 2;
        n2 -= n2 % 8;
        return PairwiseSum(a[..n2]) + PairwiseSum(a[n2..]);
    }

    /// <summary>np.floor_divide for float32 scalars (npy_divmodf).</summary>
    public static float FloorDivide(float a, float b)
    {
        if (b == 0) return a / b;
        float mod = a % b; // C fmodf
        float div = (a - mod) / b;
        if (mod != 0 && (b < 0) != (mod < 0)) div -= 1;
        float floordiv;
        if (div != 0)
        {
            floordiv = MathF.Floor(div);
            if (div - floordiv > 0.5f) floordiv += 1;
        }
        else floordiv = MathF.CopySign(0, a / b);
        return floordiv;
    }

    /// <summary>np.arange(start, stop, step) for float32 scalars (length ceil((stop − start) / step), FLOAT_fill).</summary>
    public static float[] Arange(float start, float stop, float step)
    {
        double len = Math.Ceiling((double)((stop - start) / step));
        if (!(len > 0)) return [];
        if (len > 1 << 24) throw new QuantToolsException(ErrorCode.InvalidArgument, $"histogram would grow to {len} bins");
        var r = new float[(int)len];
        r[0] = start;
        if (r.Length > 1)
        {
            r[1] = start + step;
            float delta = r[1] - r[0];
            for (int i = 2; i < r.Length; i++) r[i] = start + i * delta;
        }
        return r;
    }
}
