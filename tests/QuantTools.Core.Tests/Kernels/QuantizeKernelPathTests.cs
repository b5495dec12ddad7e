using QuantTools.Core.Kernels;
using QuantTools.Core.Quantization;
using static QuantTools.Core.Tests.Kernels.KernelInputs;

namespace QuantTools.Core.Tests.Kernels;

/// <summary>Every kernel path equals the scalar reference bit for bit.</summary>
public class QuantizeKernelPathTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    private static void AssertSame<T>(ReadOnlySpan<T> expected, ReadOnlySpan<T> actual, float[] input, string what)
        where T : IEquatable<T>
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (!expected[i].Equals(actual[i]))
                Assert.Fail($"{what}: first mismatch at [{i}] of {expected.Length}: input {F(input[i])}, reference {expected[i]}, path {actual[i]}");
    }

    private static void CheckAll(KernelPath path, float[] x, double scale, int zpU8, int zpS8, int zpI32, string ctx)
    {
        var eu = new byte[x.Length]; var au = new byte[x.Length];
        var es = new sbyte[x.Length]; var @as = new sbyte[x.Length];
        var ei = new int[x.Length]; var ai = new int[x.Length];
        QuantizeKernels.ReferenceQUInt8(x, eu, scale, zpU8);
        QuantizeKernels.ReferenceQInt8(x, es, scale, zpS8);
        QuantizeKernels.ReferenceQInt32(x, ei, scale, zpI32);
        using (KernelPaths.Force(path))
        {
            Quantizer.QuantizePerTensor(x, au, scale, zpU8);
            Quantizer.QuantizePerTensor(x, @as, scale, zpS8);
            Quantizer.QuantizePerTensor(x, ai, scale, zpI32);
        }
        AssertSame<byte>(eu, au, x, $"{path} quint8 {ctx} scale {scale:R} zp {zpU8}");
        AssertSame<sbyte>(es, @as, x, $"{path} qint8 {ctx} scale {scale:R} zp {zpS8}");
        AssertSame<int>(ei, ai, x, $"{path} qint32 {ctx} scale {scale:R} zp {zpI32}");
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void EveryLengthUpTo300(KernelPath path)
    {
        for (int n = 0; n <= 300; n++)
        {
            double scale = Scales[n % Scales.Length];
            var x = ForScale(scale, n, n);
            CheckAll(path, x, scale, (n * 37) % 256, (n * 37) % 256 - 128, n % 3 == 0 ? 0 : n * 7919 - 1000000, $"n={n}");
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void EveryZeroPointAndScale(KernelPath path)
    {
        foreach (var scale in Scales)
        {
            var x = ForScale(scale, 200, (int)(scale * 1e6) % 10007);
            for (int zp = 0; zp < 256; zp++)
                CheckAll(path, x, scale, zp, zp - 128, (zp - 128) * 16777259, $"edge set");
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Qint32ExtremeZeroPoints(KernelPath path)
    {
        foreach (var scale in Scales)
            foreach (var zp in new[] { int.MinValue, int.MinValue + 1, -17, 17, int.MaxValue - 1, int.MaxValue })
                CheckAll(path, ForScale(scale, 150, zp & 0xffff), scale, 0, 0, zp, "qint32 extreme zp");
    }

    [Fact]
    public void LargeInputSplitAcrossCoresEqualsReference()
    {
        int n = QuantizeKernels.ParallelThreshold + 77;
        var x = ForScale(0.1, n, 99);
        foreach (var path in KernelPaths.AllSupported())
            CheckAll(path, x, 0.1, 128, -5, 17, "large");
    }

    [Fact]
    public void DocumentedEdgeCases()
    {
        // numerics.md point 1: +inf with zp >= 128 wraps to qmin; -1e30 with zp < 0 gives qmax; NaN -> cap
        foreach (var path in KernelPaths.AllSupported())
            using (KernelPaths.Force(path))
            {
                var x = Enumerable.Repeat(new[] { float.PositiveInfinity, -1e30f, float.NaN, float.NegativeInfinity }, 40).SelectMany(a => a).ToArray();
                var u = new byte[x.Length]; var s = new sbyte[x.Length];
                Quantizer.QuantizePerTensor(x, u, 0.1, 128);
                Quantizer.QuantizePerTensor(x, s, 0.1, -5);
                for (int i = 0; i < x.Length; i += 4)
                {
                    Assert.Equal(0, u[i]); Assert.Equal(0, u[i + 1]); Assert.Equal(0, u[i + 2]); Assert.Equal(0, u[i + 3]);
                    Assert.Equal(127, s[i]); Assert.Equal(127, s[i + 1]); Assert.Equal(127, s[i + 2]); Assert.Equal(127, s[i + 3]);
                }
                // FBGEMM's example: 0.273939937 * (1/0.00214854861) is exactly 127.5 -> 128 (division would give 127)
                var one = new byte[1];
                Quantizer.QuantizePerTensor([0.273939937f], one, 0.00214854861, 0);
                Assert.Equal(128, one[0]);
            }
    }

    [Fact]
    public void SpanKernelsValidate()
    {
        var x = new float[4];
        Assert.Throws<QuantToolsException>(() => Quantizer.QuantizePerTensor(x, new byte[4], 0, 0));
        Assert.Throws<QuantToolsException>(() => Quantizer.QuantizePerTensor(x, new byte[4], double.NaN, 0));
        Assert.Throws<QuantToolsException>(() => Quantizer.QuantizePerTensor(x, new byte[4], 0.1, 256));
        Assert.Throws<QuantToolsException>(() => Quantizer.QuantizePerTensor(x, new sbyte[4], 0.1, 128));
        Assert.Throws<QuantToolsException>(() => Quantizer.QuantizePerTensor(x, new int[4], 0.1, 1L << 31));
        Assert.Throws<QuantToolsException>(() => Quantizer.QuantizePerTensor(x, new byte[3], 0.1, 0));
        Assert.Throws<QuantToolsException>(() => Quantizer.DequantizePerTensor(new byte[4], new float[4], -1, 0));
    }
}
