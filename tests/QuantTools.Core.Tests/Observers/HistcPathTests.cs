using QuantTools.Core.Kernels;
using QuantTools.Core.Quantization.Observers;

namespace QuantTools.Core.Tests.Observers;

/// <summary>
/// histc's vector paths against the scalar path and against the formula written out here
/// (bin = (int)(((x − lo)·bins) / (hi − lo)) in float32, last bin closed, NaN and out-of-range skipped),
/// over many lengths (vector bodies and tails), bin counts and ranges, with values on bin edges, their neighbours, lo and hi.
/// </summary>
public sealed class HistcPathTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    private static float[] Reference(float[] x, int bins, float lo, float hi)
    {
        var h = new float[bins];
        float nb = bins, range = hi - lo;
        foreach (var e in x)
        {
            if (!(e >= lo && e <= hi)) continue;
            float t = (e - lo) * nb;
            t /= range;
            long p = (long)t;
            if (p >= bins) p = bins - 1;
            h[p] += 1f;
        }
        return h;
    }

    private static float[] Data(Random r, int n, int bins, float lo, float hi)
    {
        var x = new float[n];
        float range = hi - lo;
        for (int i = 0; i < n; i++)
        {
            int kind = r.Next(10);
            float edge = lo + range * r.Next(bins + 1) / bins;
            x[i] = kind switch
            {
                0 => edge,
                1 => MathF.BitIncrement(edge),
                2 => MathF.BitDecrement(edge),
                3 => hi,
                4 => lo,
                5 => r.Next(4) switch { 0 => float.NaN, 1 => MathF.BitIncrement(hi), 2 => MathF.BitDecrement(lo), _ => hi + range },
                6 => r.Next(2) == 0 ? float.PositiveInfinity : float.NegativeInfinity,
                _ => lo + (float)r.NextDouble() * range,
            };
        }
        return x;
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void EveryPathMatchesTheScalarReference(KernelPath path)
    {
        var r = new Random(7);
        (float Lo, float Hi)[] ranges = [(-1f, 1f), (-3.25f, 7.5f), (0f, 1e-3f), (-1e6f, 3f), (1.5f, 1.5000001f), (-7.3f, -0.2f)];
        int[] binCounts = [1, 3, 16, 100, 2048];
        int[] lengths = [.. Enumerable.Range(0, 70), 127, 128, 129, 1000, 4099, 65557];
        foreach (var (lo, hi) in ranges)
            foreach (var bins in binCounts)
                foreach (var n in lengths)
                {
                    if (n > 4099 && bins != 2048) continue;
                    var x = Data(r, n, bins, lo, hi);
                    var want = Reference(x, bins, lo, hi);
                    var scalar = new float[bins];
                    using (KernelPaths.Force(KernelPath.Scalar)) HistcKernel.Histc(x, bins, lo, hi, scalar);
                    var got = new float[bins];
                    using (KernelPaths.Force(path)) HistcKernel.Histc(x, bins, lo, hi, got);
                    Assert.True(want.SequenceEqual(scalar), $"scalar vs formula: [{lo}, {hi}] bins {bins} n {n}");
                    Assert.True(want.SequenceEqual(got), $"{path}: [{lo}, {hi}] bins {bins} n {n}");
                }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ChunkedCountsMatchOneChunk(KernelPath path)
    {
        // above the parallel threshold the input is split across threads; integer counts make the split exact
        var r = new Random(11);
        var x = Data(r, (1 << 20) + 37, 2048, -2.5f, 4f);
        var want = Reference(x, 2048, -2.5f, 4f);
        var got = new float[2048];
        using (KernelPaths.Force(path)) HistcKernel.Histc(x, 2048, -2.5f, 4f, got);
        Assert.Equal(want, got);
    }
}
