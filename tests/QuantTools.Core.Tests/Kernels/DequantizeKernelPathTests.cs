using QuantTools.Core.Kernels;
using QuantTools.Core.Quantization;

namespace QuantTools.Core.Tests.Kernels;

public class DequantizeKernelPathTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    private static readonly double[] Scales = KernelInputs.Scales.Concat([1.0000001, 3.4e38, 1e-45]).ToArray();

    private static void AssertBits(float[] e, float[] a, Func<int, string> input, string what)
    {
        for (int i = 0; i < e.Length; i++)
            if (BitConverter.SingleToInt32Bits(e[i]) != BitConverter.SingleToInt32Bits(a[i]))
                Assert.Fail($"{what}: first mismatch at [{i}] of {e.Length}: q {input(i)}, reference {KernelInputs.F(e[i])}, path {KernelInputs.F(a[i])}");
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void EightBitEveryZeroPointEveryLength(KernelPath path)
    {
        var rng = new Random(5);
        for (int n = 0; n <= 300; n++)
        {
            var u = new byte[n]; rng.NextBytes(u);
            var s = u.Select(b => unchecked((sbyte)b)).ToArray();
            double scale = Scales[n % Scales.Length];
            int zp = (n * 53) % 256;
            Check(path, u, s, scale, zp, $"n={n}");
        }
        var all = Enumerable.Range(0, 256).Select(i => (byte)i).Concat(Enumerable.Range(0, 45).Select(i => (byte)(i * 5))).ToArray();
        var alls = all.Select(b => unchecked((sbyte)b)).ToArray();
        foreach (var scale in Scales)
            for (int zp = 0; zp < 256; zp++)
                Check(path, all, alls, scale, zp, "all values");
    }

    private static void Check(KernelPath path, byte[] u, sbyte[] s, double scale, int zp, string ctx)
    {
        var e = new float[u.Length]; var a = new float[u.Length];
        DequantizeKernels.ReferenceQUInt8(u, e, scale, zp);
        using (KernelPaths.Force(path)) Quantizer.DequantizePerTensor(u, a, scale, zp);
        AssertBits(e, a, i => u[i].ToString(), $"{path} quint8 {ctx} scale {scale:R} zp {zp}");
        DequantizeKernels.ReferenceQInt8(s, e, scale, zp - 128);
        using (KernelPaths.Force(path)) Quantizer.DequantizePerTensor(s, a, scale, zp - 128);
        AssertBits(e, a, i => s[i].ToString(), $"{path} qint8 {ctx} scale {scale:R} zp {zp - 128}");
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Int32WithWraparound(KernelPath path)
    {
        var rng = new Random(11);
        foreach (var zp in new[] { 0, 17, -17, int.MinValue, int.MaxValue, 123456789 })
            for (int n = 0; n <= 300; n += 7)
            {
                var q = new int[n];
                for (int i = 0; i < n; i++)
                    q[i] = (i % 5) switch { 0 => int.MinValue, 1 => int.MaxValue, 2 => rng.Next(-300, 300), _ => rng.Next(int.MinValue, int.MaxValue) };
                double scale = Scales[(n + zp) & 7];
                var e = new float[n]; var a = new float[n];
                DequantizeKernels.ReferenceQInt32(q, e, scale, zp);
                using (KernelPaths.Force(path)) Quantizer.DequantizePerTensor(q, a, scale, zp);
                AssertBits(e, a, i => q[i].ToString(), $"{path} qint32 n={n} scale {scale:R} zp {zp}");
            }
    }

    [Fact]
    public void Qint32SubtractsInInt32WithWraparound()
    {
        // numerics.md point 2: q = INT32_MIN, zp 17 -> (q - zp) wraps to 2147483631
        var y = new float[1];
        Quantizer.DequantizePerTensor([int.MinValue], y, 1.0, 17);
        Assert.Equal((float)2147483631, y[0]);
    }
}
