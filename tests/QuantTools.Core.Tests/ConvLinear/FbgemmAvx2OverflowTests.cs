using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.ConvLinear;

/// <summary>
/// fbgemm-avx2 (FBGEMM without VNNI: <c>vpmaddubsw</c> saturates each even-aligned pair of u8 x s8 products to int16)
/// and FBGEMM's depthwise kernel (which saturates tap pairs on every host), against hand-computed expectations.
/// </summary>
public class FbgemmAvx2OverflowTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    private static QTensor X(byte[] v, int[] shape, int zp = 0) =>
        new(new Tensor(DType.UInt8, shape, v), QParams.PerTensor(1.0, zp, DType.QUInt8));

    private static QTensor W(sbyte[] v, int[] shape, int zp = 0) =>
        new(new Tensor(DType.Int8, shape, v), QParams.PerTensor(1.0, zp, DType.QInt8));

    private static byte Linear(QEngine e, byte[] x, sbyte[] w, double outScale, long outZp)
    {
        var pw = PackedLinearWeight.Create(W(w, [1, w.Length]), null, e);
        return pw.Run(X(x, [1, x.Length]), outScale, outZp, false).IntRepr.AsSpan<byte>()[0];
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void PairOfMaxProductsSaturates(KernelPath path)
    {
        using var _ = KernelPaths.Force(path);
        // 255*127 + 255*127 = 64770 -> int16 32767; scale 256: 32767/256 = 127.996 -> 128, exact 64770/256 = 253.01 -> 253
        Assert.Equal(128, Linear(QEngine.FbgemmAvx2, [255, 255], [127, 127], 256, 0));
        Assert.Equal(253, Linear(QEngine.Fbgemm, [255, 255], [127, 127], 256, 0));
        // 255*-128 * 2 = -65280 -> -32768; /256 = -128, + zp 255 = 127; exact -255 + 255 = 0
        Assert.Equal(127, Linear(QEngine.FbgemmAvx2, [255, 255], [-128, -128], 256, 255));
        Assert.Equal(0, Linear(QEngine.Fbgemm, [255, 255], [-128, -128], 256, 255));
        // the large products sit in different pairs (0,1) and (2,3): no saturation, same as exact
        Assert.Equal(253, Linear(QEngine.FbgemmAvx2, [0, 255, 255, 0], [0, 127, 127, 0], 256, 0));
        // odd K: the last element pairs with nothing: (0,1) saturates to 32767, (2) adds 32385 -> 65152/256 = 254.5 -> 254
        Assert.Equal(254, Linear(QEngine.FbgemmAvx2, [255, 255, 255], [127, 127, 127], 256, 0));
        Assert.Equal(253, Linear(QEngine.FbgemmAvx2, [255, 255, 255], [0, 127, 127], 256, 0));
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ZeroPointsComeAfterTheSaturatedSum(KernelPath path)
    {
        using var _ = KernelPaths.Force(path);
        // a_zp 200, w_zp 0: raw = sat16(255*127*2) - 200*(127+127) = 32767 - 50800 = -18033; /128 -> -140.9 -> -141 + 255 = 114
        // exact: (55*127)*2 = 13970 /128 = 109.1 -> 109 + 255 -> 255 (saturated)
        var pw = PackedLinearWeight.Create(W([127, 127], [1, 2]), null, QEngine.FbgemmAvx2);
        Assert.Equal(114, pw.Run(X([255, 255], [1, 2], 200), 128, 255, false).IntRepr.AsSpan<byte>()[0]);
        var exact = PackedLinearWeight.Create(W([127, 127], [1, 2]), null, QEngine.Fbgemm);
        Assert.Equal(255, exact.Run(X([255, 255], [1, 2], 200), 128, 255, false).IntRepr.AsSpan<byte>()[0]);
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ConvPairsFollowTheChannelsLastIm2colOrder(KernelPath path)
    {
        using var _ = KernelPaths.Force(path);
        // 1x1 conv, 2 input channels: K order is (kh, kw, c), so the two channels of a pixel form one pair
        var x = X(Enumerable.Repeat((byte)255, 2 * 3 * 3).ToArray(), [1, 2, 3, 3]);
        var w = W([127, 127], [1, 2, 1, 1]);
        foreach (var (engine, expected) in new[] { (QEngine.FbgemmAvx2, 128), (QEngine.Fbgemm, 253) })
        {
            var pw = PackedConvWeight.Create(w, null, [1], [0], [1], 1, false, [], engine);
            var y = pw.Run(x, 256, 0, false).IntRepr.AsSpan<byte>().ToArray();
            Assert.All(y, v => Assert.Equal(expected, v));
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void DepthwiseSaturatesTapPairsOnEveryFbgemmHost(KernelPath path)
    {
        using var _ = KernelPaths.Force(path);
        // 16 channels, 3x3, stride 1, pad 1: FBGEMM's depthwise kernel. All inputs 255, all weights 127, a_zp 0.
        // interior: pairs (0,1),(2,3),(4,5),(6,7) saturate to 32767 each, tap 8 = 32385: 163453 / 2048 = 79.8 -> 80
        //           (exact 9*32385 = 291465 / 2048 = 142.3 -> 142)
        // corner (0,0): taps 4,5,7,8 in range: sat(64770) + (0 + 32385) + 32385 = 97537 / 2048 = 47.6 -> 48 (exact 63)
        var x = X(Enumerable.Repeat((byte)255, 16 * 5 * 5).ToArray(), [1, 16, 5, 5]);
        var w = W(Enumerable.Repeat((sbyte)127, 16 * 9).ToArray(), [16, 1, 3, 3]);
        foreach (var (engine, inner, corner) in new[] { (QEngine.Fbgemm, 80, 48), (QEngine.FbgemmAvx2, 80, 48), (QEngine.X86, 80, 48),
                     (QEngine.Qnnpack, 142, 63), (QEngine.Onednn, 142, 63) })
        {
            // x86 routes a weight-zp-3 conv to FBGEMM; with zp 0 it would go to oneDNN (exact)
            var wq = engine == QEngine.X86 ? W(Enumerable.Repeat((sbyte)127, 16 * 9).ToArray(), [16, 1, 3, 3], 0) : w;
            var pw = PackedConvWeight.Create(wq, null, [1], [1], [1], 16, false, [], engine);
            bool fbgemm = pw.FbgemmDepthwise;
            var y = pw.Run(x, 2048, 0, false).IntRepr.AsSpan<byte>();
            int expInner = engine == QEngine.X86 ? 142 : inner, expCorner = engine == QEngine.X86 ? 63 : corner;
            Assert.Equal(engine is QEngine.Fbgemm or QEngine.FbgemmAvx2, fbgemm);
            for (int c = 0; c < 16; c++)
            {
                Assert.Equal(expInner, y[c * 25 + 2 * 5 + 2]);
                Assert.Equal(expCorner, y[c * 25]);
            }
        }
    }
}
