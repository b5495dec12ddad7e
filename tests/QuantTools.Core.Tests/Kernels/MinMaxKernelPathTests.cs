using QuantTools.Core.Kernels;

namespace QuantTools.Core.Tests.Kernels;

public class MinMaxKernelPathTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    private static void Check(KernelPath path, float[] x, string ctx)
    {
        var (em, eM) = MinMaxKernel.Reference(x);
        (float am, float aM) r;
        using (KernelPaths.Force(path)) r = MinMaxKernel.Compute(x);
        if (BitConverter.SingleToInt32Bits(em) != BitConverter.SingleToInt32Bits(r.am) ||
            BitConverter.SingleToInt32Bits(eM) != BitConverter.SingleToInt32Bits(r.aM))
            Assert.Fail($"{path} {ctx} (n={x.Length}): reference ({KernelInputs.F(em)}, {KernelInputs.F(eM)}), path ({KernelInputs.F(r.am)}, {KernelInputs.F(r.aM)})");
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void EqualsReferenceOnEveryLengthAndEdgeCase(KernelPath path)
    {
        var rng = new Random(3);
        for (int n = 0; n <= 300; n++)
        {
            var x = KernelInputs.ForScale(0.1, n, n).Where(v => !float.IsNaN(v)).ToArray();
            Check(path, x, "no NaN");
            if (n > 0)
            {
                var y = (float[])x.Clone();
                if (y.Length > 0) { y[rng.Next(y.Length)] = float.NaN; Check(path, y, "one NaN"); }
            }
            var z = new float[n];
            for (int i = 0; i < n; i++) z[i] = rng.Next(3) switch { 0 => 0f, 1 => -0f, _ => (float)rng.NextDouble() };
            Check(path, z, "signed zeros and positives");
            for (int i = 0; i < n; i++) z[i] = rng.Next(2) == 0 ? 0f : -0f;
            Check(path, z, "only zeros");
            Check(path, Enumerable.Repeat(float.PositiveInfinity, n).ToArray(), "all +inf");
            Check(path, Enumerable.Repeat(float.NegativeInfinity, n).ToArray(), "all -inf");
            Check(path, Enumerable.Range(0, n).Select(i => i % 2 == 0 ? float.Epsilon : -float.Epsilon * i).ToArray(), "denormals");
            Check(path, Enumerable.Range(0, n).Select(i => (float)KernelInputs.NextGaussian(rng) * 3).ToArray(), "gaussian");
        }
        var big = Enumerable.Range(0, 100_003).Select(i => (float)Math.Sin(i)).ToArray();
        Check(path, big, "large");
        big[99_999] = float.NaN;
        Check(path, big, "large, NaN near the end");
    }

    [Fact]
    public void EmptyGivesInfinities()
    {
        foreach (var p in KernelPaths.AllSupported())
            using (KernelPaths.Force(p))
                Assert.Equal((float.PositiveInfinity, float.NegativeInfinity), MinMaxKernel.Compute([]));
    }
}
