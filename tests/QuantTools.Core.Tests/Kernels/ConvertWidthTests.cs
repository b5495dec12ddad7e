using QuantTools.Core.Kernels;
using static QuantTools.Core.Tests.Kernels.KernelInputs;

namespace QuantTools.Core.Tests.Kernels;

/// <summary>
/// The quantize / dequantize operators on every width, run through the driver on an explicit path whether or not the
/// CPU accelerates it: the portable Vector128/256/512 code runs (Vector512 in software on an AVX2 host), so every width
/// is checked here against the scalar form, on every length 0..300 (every block remainder) and the special values.
/// Raw-intrinsics paths the CPU lacks fall back to the scalar form inside the driver (their own tests run where the CPU has them).
/// </summary>
public class ConvertWidthTests
{
    public static TheoryData<KernelPath> Widths() => new(KernelPath.Scalar, KernelPath.Vector128, KernelPath.Vector256, KernelPath.Vector512, KernelPath.Avx2, KernelPath.Avx512);

    [Theory]
    [MemberData(nameof(Widths))]
    public void QuantizeEveryLengthOnEveryWidth(KernelPath path)
    {
        for (int n = 0; n <= 300; n++)
        {
            double scale = Scales[n % Scales.Length];
            var x = ForScale(scale, n, n + 1000);
            int zp = (n * 37) % 256;
            var eu = new byte[n]; var au = new byte[n];
            QuantizeKernels.ReferenceQUInt8(x, eu, scale, zp);
            QuantizeKernels.OnPath(path, x, au, scale, zp);
            Assert.True(eu.AsSpan().SequenceEqual(au), $"{path} quint8 n={n}");
            var es = new sbyte[n]; var @as = new sbyte[n];
            QuantizeKernels.ReferenceQInt8(x, es, scale, zp - 128);
            QuantizeKernels.OnPath(path, x, @as, scale, zp - 128);
            Assert.True(es.AsSpan().SequenceEqual(@as), $"{path} qint8 n={n}");
            int zp32 = n % 3 == 0 ? 0 : n * 7919 - 1000000;
            var ei = new int[n]; var ai = new int[n];
            QuantizeKernels.ReferenceQInt32(x, ei, scale, zp32);
            QuantizeKernels.OnPath(path, x, ai, scale, zp32);
            Assert.True(ei.AsSpan().SequenceEqual(ai), $"{path} qint32 n={n}");
        }
        // specials (NaN, infinities, values beyond 2^31 steps) at extreme zero points
        var sp = Specials.Concat(Specials).Concat(Specials).ToArray();
        foreach (var zp in new[] { int.MinValue, -1, 0, 255, int.MaxValue })
        {
            var ei = new int[sp.Length]; var ai = new int[sp.Length];
            QuantizeKernels.ReferenceQInt32(sp, ei, 0.01, zp);
            QuantizeKernels.OnPath(path, sp, ai, 0.01, zp);
            Assert.True(ei.AsSpan().SequenceEqual(ai), $"{path} qint32 specials zp={zp}");
        }
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void DequantizeEveryLengthOnEveryWidth(KernelPath path)
    {
        var rng = new Random(8);
        for (int n = 0; n <= 300; n++)
        {
            var u = new byte[n];
            rng.NextBytes(u);
            var s = u.Select(b => unchecked((sbyte)b)).ToArray();
            var i32 = Enumerable.Range(0, n).Select(i => i % 4 == 0 ? int.MinValue : rng.Next(int.MinValue, int.MaxValue)).ToArray();
            double scale = Scales[n % Scales.Length];
            int zp = (n * 53) % 256;
            var e = new float[n]; var a = new float[n];
            DequantizeKernels.ReferenceQUInt8(u, e, scale, zp);
            DequantizeKernels.OnPath(path, u, a, scale, zp);
            AssertBits(e, a, $"{path} quint8 n={n}");
            DequantizeKernels.ReferenceQInt8(s, e, scale, zp - 128);
            DequantizeKernels.OnPath(path, s, a, scale, zp - 128);
            AssertBits(e, a, $"{path} qint8 n={n}");
            DequantizeKernels.ReferenceQInt32(i32, e, scale, n * 1000003);
            DequantizeKernels.OnPath(path, i32, a, scale, n * 1000003);
            AssertBits(e, a, $"{path} qint32 n={n}");
        }
    }

    private static void AssertBits(float[] e, float[] a, string what)
    {
        for (int i = 0; i < e.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(e[i]) == BitConverter.SingleToInt32Bits(a[i]), $"{what}: first mismatch at [{i}]");
    }
}
