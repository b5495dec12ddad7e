using System.Diagnostics;
using QuantTools.Core.Kernels;
using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;
using Xunit.Abstractions;

namespace QuantTools.Core.Tests.Observers;

/// <summary>Rough speed checks (loose bounds: the build machine is shared); the measured numbers go to the test output.</summary>
public class ObserverSpeedTests(ITestOutputHelper output)
{
    private static float[] Normal(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2) * 1.7 + 0.3);
        }
        return x;
    }

    private static double Best(int reps, Action a)
    {
        double best = double.MaxValue;
        for (int r = 0; r < reps; r++)
        {
            var sw = Stopwatch.StartNew();
            a();
            best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
        }
        return best;
    }

    [Fact]
    public void HistogramUpdateAndSearchAreFast()
    {
        const int n = 4 << 20;
        var x1 = Normal(n, 1);
        var x2 = Normal(n, 2);
        for (int i = 0; i < n; i++) x2[i] *= 1.3f;
        var t1 = Tensor.FromArray(x1, n);
        var t2 = Tensor.FromArray(x2, n);

        double minmax = Best(7, () => MinMaxKernel.Compute(x1));
        double first = Best(7, () => new HistogramObserver().Forward(t1));
        var obs = new HistogramObserver();
        obs.Forward(t1);
        double same = Best(7, () => obs.Forward(t1)); // range unchanged: histc + add
        double combine = Best(5, () => { var o = new HistogramObserver(); o.Forward(t1); o.Forward(t2); }) - first;
        double qparams = Best(7, () => obs.CalculateQParams());
        var o256 = new HistogramObserver(new ObserverOptions { Bins = 256 });
        o256.Forward(t1);
        double q256 = Best(7, () => o256.CalculateQParams());
        output.WriteLine($"MinMax pass over 4M floats: {minmax:F2} ms");
        output.WriteLine($"Histogram first batch: {first:F2} ms ({first / minmax:F1}x), same-range batch: {same:F2} ms ({same / minmax:F1}x), range-growing batch: {combine:F2} ms");
        output.WriteLine($"CalculateQParams 2048 bins: {qparams:F3} ms, 256 bins: {q256:F3} ms");
        Assert.True(qparams < 50, $"CalculateQParams took {qparams} ms");
        Assert.True(same < 40 * Math.Max(minmax, 0.5), $"histogram update {same} ms vs minmax {minmax} ms");
    }
}
