namespace QuantTools.Core.Quantization.Observers;

/// <summary>
/// Float32 tensor primitives reproduced with ATen's CPU operation order: the cascade <c>sum</c>, <c>linspace</c>
/// (FMA-contracted, numerics.md §3 point 5), <c>cumsum</c> (double accumulator) and floor division.
/// </summary>
internal static class TorchFloatOps
{
    /// <summary>Float lanes of ATen's Vectorized&lt;float&gt; (16 on AVX-512 hosts, 8 on AVX2).</summary>
    internal static int SumLanes = 16;

    /// <summary>torch.sum of a contiguous float32 vector (ATen cascade_sum, float accumulators).</summary>
    public static float Sum(ReadOnlySpan<float> x) => Sum(x, SumLanes);

    public static float Sum(ReadOnlySpan<float> x, int lanes)
    {
        int n = x.Length;
        if (n >= lanes)
        {
            int vecSize = n / lanes;
            Span<float> acc = stackalloc float[lanes];
            RowSum(x, vecSize, lanes, acc);
            float final = 0f;
            for (int k = vecSize * lanes; k < n; k++) final += x[k];
            for (int k = 0; k < lanes; k++) final += acc[k];
            return final;
        }
        Span<float> one = stackalloc float[1];
        RowSum(x, n, 1, one);
        return one[0];
    }

    /// <summary>
    /// ATen row_sum over <paramref name="count"/> "elements" of <paramref name="width"/> floats each
    /// (width = vector lanes, or 1 for the scalar path), ILP factor 4, four-level cascade.
    /// </summary>
    private static void RowSum(ReadOnlySpan<float> x, int count, int width, Span<float> result)
    {
        const int ilp = 4, levels = 4;
        int sizeIlp = count / ilp;
        // acc[level][row k][lane]
        var acc = new float[levels * ilp * width];
        int levelPower = Math.Max(4, CeilLog2(sizeIlp) / levels);
        int levelStep = 1 << levelPower;
        long levelMask = levelStep - 1;
        int rowStride = ilp * width;

        int i = 0;
        for (; i + levelStep <= sizeIlp;)
        {
            for (int j = 0; j < levelStep; j++, i++)
                AddRow(acc, 0, x, i * rowStride, ilp, width);
            for (int j = 1; j < levels; j++)
            {
                for (int t = 0; t < ilp * width; t++)
                {
                    acc[j * ilp * width + t] += acc[(j - 1) * ilp * width + t];
                    acc[(j - 1) * ilp * width + t] = 0f;
                }
                long mask = levelMask << (j * levelPower);
                if ((i & mask) != 0) break;
            }
        }
        for (; i < sizeIlp; i++) AddRow(acc, 0, x, i * rowStride, ilp, width);
        for (int j = 1; j < levels; j++)
            for (int t = 0; t < ilp * width; t++)
                acc[t] += acc[j * ilp * width + t];

        // partial_sums[0..3] are acc[0][k]; leftover elements go to partial 0, then partials fold into 0.
        for (int e = sizeIlp * ilp; e < count; e++)
            for (int l = 0; l < width; l++)
                acc[l] += x[e * width + l];
        for (int k = 1; k < ilp; k++)
            for (int l = 0; l < width; l++)
                acc[l] += acc[k * width + l];
        for (int l = 0; l < width; l++) result[l] = acc[l];
    }

    private static void AddRow(float[] acc, int level, ReadOnlySpan<float> x, int offset, int ilp, int width)
    {
        int baseIdx = level * ilp * width;
        for (int k = 0; k < ilp; k++)
            for (int l = 0; l < width; l++)
                acc[baseIdx + k * width + l] += x[offset + k * width + l];
    }

    private static int CeilLog2(int x)
    {
        if (x <= 2) return 1;
        return 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)(x - 1));
    }

    /// <summary>torch.cumsum of float32: double accumulator, each prefix stored as float32.</summary>
    public static float[] CumSum(ReadOnlySpan<float> x)
    {
        var r = new float[x.Length];
        double acc = 0;
        for (int i = 0; i < x.Length; i++)
        {
            acc += x[i];
            r[i] = (float)acc;
        }
        return r;
    }

    /// <summary>
    /// torch.linspace(start, end, steps) in float32 as PyTorch 2.11 computes it on x86 (FMA-contracted):
    /// step = (end − start)/(steps − 1); element i = fma(step, i, start) for i &lt; steps/2, else fma(−step, steps−1−i, end).
    /// </summary>
    public static float[] Linspace(float start, float end, int steps)
    {
        var r = new float[steps];
        if (steps == 1) { r[0] = start; return r; }
        float step = (end - start) / (float)(steps - 1);
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++)
            r[i] = i < halfway
                ? MathF.FusedMultiplyAdd(step, i, start)
                : MathF.FusedMultiplyAdd(-step, steps - 1 - i, end);
        return r;
    }

    public static float LinspaceAt(float start, float end, int steps, int i)
    {
        if (steps == 1) return start;
        float step = (end - start) / (float)(steps - 1);
        return i < steps / 2
            ? MathF.FusedMultiplyAdd(step, i, start)
            : MathF.FusedMultiplyAdd(-step, steps - 1 - i, end);
    }

    /// <summary>torch.div(a, b, rounding_mode='floor') for float32 (c10::div_floor_floating), exact emulation.</summary>
    public static float DivFloor(float a, float b)
    {
        if (b == 0f) return a / b;
        float mod = a % b; // C fmod: exact
        float div = (a - mod) / b;
        if (mod != 0f && (b < 0f) != (mod < 0f)) div -= 1f;
        float floordiv;
        if (div != 0f)
        {
            floordiv = MathF.Floor(div);
            if (div - floordiv > 0.5f) floordiv += 1f;
        }
        else floordiv = MathF.CopySign(0f, a / b);
        return floordiv;
    }
}
