using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Conformance.Ops;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.ConvLinear;

/// <summary>Every kernel path gives the scalar reference's integers, over shape sweeps and zero-point / saturation edges.</summary>
public class ConvLinearPathTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    internal static QTensor Activations(Random rng, int[] shape, double scale, int zp, int mode)
    {
        var t = Tensor.Zeros(DType.UInt8, shape);
        var s = t.AsSpan<byte>();
        for (int i = 0; i < s.Length; i++)
            s[i] = mode switch { 0 => (byte)rng.Next(256), 1 => 255, 2 => 0, _ => (byte)(rng.Next(2) * 255) };
        return new QTensor(t, QParams.PerTensor(scale, zp, DType.QUInt8));
    }

    internal static QTensor Weights(Random rng, int[] shape, bool perChannel, int zp, int mode)
    {
        var t = Tensor.Zeros(DType.Int8, shape);
        var s = t.AsSpan<sbyte>();
        for (int i = 0; i < s.Length; i++)
            s[i] = mode switch { 0 => (sbyte)rng.Next(-128, 128), 1 => 127, 2 => -128, _ => (sbyte)(rng.Next(2) == 0 ? -128 : 127) };
        if (!perChannel) return new QTensor(t, QParams.PerTensor(0.01 + rng.NextDouble() * 0.01, zp, DType.QInt8));
        int oc = shape[0];
        var scales = Enumerable.Range(0, oc).Select(_ => 0.005 + rng.NextDouble() * 0.02).ToArray();
        var zps = Enumerable.Range(0, oc).Select(i => (long)(zp == 0 ? 0 : (zp + i * 37) % 256 - 128)).ToArray();
        return new QTensor(t, QParams.PerChannel(scales, zps, 0, DType.QInt8));
    }

    private static Tensor Bias(Random rng, int n) => Tensor.FromArray(Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray(), n);

    private static void AssertSameQ(QTensor e, QTensor a, string ctx)
    {
        Assert.Equal(e.Shape, a.Shape);
        var d = QuantTools.Core.Conformance.OpsCases.CompareQ(e, a);
        Assert.True(d.Length == 0, $"{ctx}: {d}");
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void LinearSweep(KernelPath path)
    {
        var rng = new Random(11);
        var engines = new[] { QEngine.Fbgemm, QEngine.Qnnpack, QEngine.Onednn, QEngine.X86 };
        int count = 0;
        foreach (int k in new[] { 1, 2, 3, 7, 8, 31, 32, 33, 64, 65, 130 })
            foreach (int n in new[] { 1, 3, 15, 16, 17, 33, 63, 64, 65, 129 })
                foreach (int m in new[] { 1, 3, 4, 5, 9 })
                {
                    int mode = count % 4, azp = new[] { 0, 255, 128, 7 }[count % 4];
                    bool pc = count % 3 == 0;
                    int wzp = count % 5 == 0 ? 0 : (count % 2 == 0 ? 127 : -128);
                    var engine = engines[count % engines.Length];
                    if (engine == QEngine.Onednn) wzp = 0;
                    var x = Activations(rng, [m, k], 0.05, azp, mode);
                    var w = Weights(rng, [n, k], pc, wzp, (count / 4) % 4);
                    var pw = PackedLinearWeight.Create(w, count % 7 == 0 ? null : Bias(rng, n), engine);
                    QTensor e, a;
                    int[] rawE = new int[m * n], rawA = new int[m * n];
                    LinearKernels.AccumulateReference(pw, x.IntRepr.AsSpan<byte>(), azp, m, rawE);
                    LinearKernels.Accumulate(pw, x.IntRepr.AsSpan<byte>(), azp, m, rawA, LinearPaths.Resolve(pw, path).Accumulation);
                    Assert.True(rawE.AsSpan().SequenceEqual(rawA), $"{path} raw m={m} n={n} k={k}");
                    // PairGemm's tiles on this ISA (the portable scalar tile for paths without tiles)
                    LinearKernels.AccumulateGemm(pw, x.IntRepr.AsSpan<byte>(), azp, m, rawA, path);
                    Assert.True(rawE.AsSpan().SequenceEqual(rawA), $"{path} gemm m={m} n={n} k={k}");
                    using (KernelPaths.Force(KernelPath.Scalar)) e = pw.Run(x, 0.07, 3, count % 2 == 0);
                    using (KernelPaths.Force(path)) a = pw.Run(x, 0.07, 3, count % 2 == 0);
                    AssertSameQ(e, a, $"{path} {engine} m={m} n={n} k={k}");
                    count++;
                }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void LinearLargeKExtremes(KernelPath path)
    {
        // |(a - azp)(w - wzp)| up to 255*255 per product, K = 4099: the int32 accumulator is exercised near its top.
        var rng = new Random(5);
        foreach (var (azp, wzp, am, wm) in new[] { (0, -128, 1, 1), (255, 127, 2, 2), (0, 127, 1, 2), (128, 0, 3, 3) })
        {
            var x = Activations(rng, [5, 4099], 0.1, azp, am);
            var w = Weights(rng, [67, 4099], false, wzp, wm);
            var pw = PackedLinearWeight.Create(w, null, QEngine.Fbgemm);
            int[] e = new int[5 * 67], a = new int[5 * 67];
            LinearKernels.AccumulateReference(pw, x.IntRepr.AsSpan<byte>(), azp, 5, e);
            LinearKernels.Accumulate(pw, x.IntRepr.AsSpan<byte>(), azp, 5, a, LinearPaths.Resolve(pw, path).Accumulation);
            Assert.True(e.AsSpan().SequenceEqual(a), $"{path} azp={azp} wzp={wzp}");
        }
    }

    public static IEnumerable<object[]> ConvConfigs()
    {
        // cin, cout, kh, kw, stride, pad, dil, groups, h, w, transposed, outpad
        yield return [3, 8, 3, 3, 1, 1, 1, 1, 16, 17, false, 0];
        yield return [8, 5, 3, 3, 2, 1, 1, 1, 15, 15, false, 0];
        yield return [16, 16, 3, 3, 1, 1, 1, 16, 12, 13, false, 0];   // depthwise
        yield return [16, 32, 3, 3, 2, 1, 1, 16, 9, 9, false, 0];     // depthwise, multiplier 2
        yield return [16, 16, 3, 3, 1, 1, 1, 16, 9, 40, false, 0];    // depthwise, 16-column interior blocks
        yield return [8, 8, 5, 5, 1, 2, 1, 8, 7, 37, false, 0];       // depthwise 5x5
        yield return [8, 16, 7, 7, 1, 3, 1, 8, 10, 45, false, 0];     // depthwise 7x7, multiplier 2
        yield return [24, 24, 3, 3, 1, 1, 1, 24, 7, 7, false, 0];     // depthwise, rows shorter than a 32-output block
        yield return [40, 40, 3, 3, 2, 1, 1, 40, 14, 15, false, 0];   // depthwise stride 2, odd width
        yield return [72, 72, 3, 3, 1, 1, 1, 72, 5, 70, false, 0];    // depthwise, channels not a multiple of 64
        yield return [24, 48, 5, 5, 2, 2, 1, 24, 17, 19, false, 0];   // depthwise 5x5 stride 2, multiplier 2
        yield return [136, 136, 3, 3, 2, 1, 1, 136, 5, 6, false, 0];  // depthwise, groups > 100 (x86 -> fbgemm)
        yield return [16, 16, 3, 3, 1, 0, 1, 16, 6, 9, false, 0];     // depthwise, no padding (exact backends only)
        yield return [4, 6, 5, 5, 1, 2, 2, 1, 13, 14, false, 0];
        yield return [8, 6, 3, 3, 1, 1, 1, 2, 11, 11, false, 0];
        yield return [7, 9, 1, 1, 1, 0, 1, 1, 9, 8, false, 0];
        yield return [3, 5, 3, 5, 2, 2, 1, 1, 14, 15, false, 0];
        yield return [5, 7, 1, 4, 3, 1, 1, 1, 1, 40, false, 0];      // conv1d-like
        yield return [6, 4, 3, 3, 2, 1, 1, 1, 7, 8, true, 1];
        yield return [4, 6, 4, 3, 3, 2, 2, 2, 5, 6, true, 1];
        yield return [2, 3, 2, 2, 1, 0, 1, 1, 8, 8, true, 0];
    }

    [Theory]
    [MemberData(nameof(ConvConfigs))]
    public void ConvSweepEveryPath(int cin, int cout, int kh, int kw, int stride, int pad, int dil, int groups, int h, int w,
        bool transposed, int outpad)
    {
        var rng = new Random(cin * 1000 + cout * 10 + kh);
        int count = 0;
        foreach (var engine in new[] { QEngine.Fbgemm, QEngine.Qnnpack, QEngine.Onednn, QEngine.X86, QEngine.FbgemmAvx2 })
            foreach (int mode in new[] { 0, 1, 3 })
            {
                if (engine == QEngine.Onednn && outpad != 0) continue;
                int azp = new[] { 0, 255, 100 }[count % 3];
                int wzp = engine == QEngine.Onednn ? 0 : new[] { 0, 3, -128, 127 }[count % 4];
                bool pc = !transposed && count % 2 == 1;
                int[] wshape = transposed ? [cin, cout / groups, kh, kw] : [cout, cin / groups, kh, kw];
                var x = Activations(rng, [2, cin, h, w], 0.03, azp, mode);
                var wt = Weights(rng, wshape, pc, wzp, mode == 0 ? 0 : 3);
                var pw = PackedConvWeight.Create(wt, count % 4 == 2 ? null : Bias(rng, cout), [stride], [pad], [dil], groups,
                    transposed, [outpad], engine);
                QTensor e;
                using (KernelPaths.Force(KernelPath.Scalar)) e = pw.Run(x, 0.09, 77, count % 2 == 0);
                foreach (var path in KernelPaths.AllSupported())
                {
                    QTensor a;
                    using (KernelPaths.Force(path)) a = pw.Run(x, 0.09, 77, count % 2 == 0);
                    AssertSameQ(e, a, $"{path} {engine} mode={mode}");
                }
                count++;
            }
    }

    public static IEnumerable<object[]> DepthwiseConfigs()
    {
        // c, multiplier, k, strideH, strideW, pad, h, w
        foreach (var (c, m) in new[] { (8, 1), (24, 2), (64, 1), (96, 1), (136, 1) })
            foreach (int k in new[] { 3, 5 })
                foreach (var (sh, sw) in new[] { (1, 1), (2, 2), (1, 2), (2, 1) })
                    foreach (var (h, w) in new[] { (1, 1), (4, 7), (13, 33), (9, 64) })
                        yield return [c, m, k, sh, sw, (k - 1) / 2, h, w];
    }

    /// <summary>The depthwise AVX-512 accumulators equal the scalar reference on every engine, over channel counts,
    /// strides (also unequal), tiny and wide planes, and saturating operands (255 x ±128 pairs overflow int16).</summary>
    [Fact]
    public void DepthwiseRawEqualsReference()
    {
        if (!System.Runtime.Intrinsics.X86.Avx512BW.IsSupported) return;
        var rng = new Random(77);
        int count = 0;
        foreach (var cfg in DepthwiseConfigs())
        {
            int c = (int)cfg[0], mlt = (int)cfg[1], k = (int)cfg[2], sh = (int)cfg[3], sw = (int)cfg[4], pad = (int)cfg[5], h = (int)cfg[6], w = (int)cfg[7];
            foreach (var engine in new[] { QEngine.Fbgemm, QEngine.X86, QEngine.Onednn, QEngine.Qnnpack, QEngine.FbgemmAvx2 })
            {
                int mode = count % 4, azp = new[] { 0, 255, 100, 3 }[count % 4];
                int wzp = engine == QEngine.Onednn ? 0 : new[] { 0, 3, -128, 127, 0 }[count % 5];
                var x = Activations(rng, [1, c, h, w], 0.03, azp, mode);
                var wt = Weights(rng, [c * mlt, 1, k, k], count % 2 == 1, wzp, new[] { 0, 3, 1, 2 }[count % 4]);
                var pw = PackedConvWeight.Create(wt, null, [sh, sw], [pad], [1], c, false, [], engine);
                Assert.True(pw.DepthwiseAvx512Applies);
                var (oh, ow) = pw.Shape.OutputSize(h, w);
                int[] e = new int[c * mlt * oh * ow], a = new int[e.Length];
                ConvKernels.AccumulateReference(pw, x.IntRepr.AsSpan<byte>(), azp, h, w, oh, ow, e);
                ConvKernels.AccumulateDepthwiseAvx512(pw, x.IntRepr.AsSpan<byte>(), azp, h, w, oh, ow, a);
                Assert.True(e.AsSpan().SequenceEqual(a), $"{engine} c={c}x{mlt} k={k} s={sh}x{sw} {h}x{w} mode={mode} azp={azp}");
                count++;
            }
        }
    }

    public static IEnumerable<object[]> WideConvConfigs()
    {
        // cin, cout, kh, kw, stride, pad, dil, groups, h, w: rows longer than the 16-pixel chunks and 64-pixel panels,
        // channel counts that are / are not multiples of 4 (the native packer's fast path), 6-row tile remainders
        yield return [64, 13, 3, 3, 1, 1, 1, 1, 9, 70];
        yield return [20, 17, 3, 3, 1, 1, 1, 1, 11, 37];
        yield return [64, 70, 1, 1, 1, 0, 1, 1, 9, 33];
        yield return [16, 12, 3, 3, 1, 2, 2, 1, 13, 40];
        yield return [12, 24, 3, 5, 2, 2, 1, 2, 19, 50];
        yield return [24, 36, 3, 3, 1, 1, 1, 3, 6, 100];
        yield return [8, 8, 3, 3, 1, 0, 1, 1, 20, 18];
        yield return [32, 7, 1, 9, 1, 4, 1, 1, 1, 300];   // conv1d-like, long row
        yield return [16, 20, 3, 3, 2, 1, 1, 1, 15, 41];   // stride 2 (native packer's vpmovwb path)
        yield return [32, 16, 1, 1, 2, 0, 1, 1, 14, 40];   // 1x1 stride 2 downsample
        yield return [8, 9, 5, 3, 2, 2, 2, 1, 17, 66];     // stride 2, dilation 2, odd width
        yield return [12, 6, 3, 3, 3, 1, 1, 3, 16, 50];    // stride 3 (generic packer)
    }

    [Theory]
    [MemberData(nameof(WideConvConfigs))]
    public void WideConvEveryPath(int cin, int cout, int kh, int kw, int stride, int pad, int dil, int groups, int h, int w)
    {
        var rng = new Random(cin * 7919 + cout * 31 + w);
        int count = 0;
        foreach (var engine in new[] { QEngine.Fbgemm, QEngine.Qnnpack, QEngine.X86, QEngine.Onednn })
            foreach (int mode in new[] { 0, 3 })
            {
                int azp = new[] { 0, 255, 37 }[count % 3];
                int wzp = engine == QEngine.Onednn ? 0 : new[] { 5, 0, -128, 127 }[count % 4];
                bool pc = count % 2 == 0;
                var x = Activations(rng, [2, cin, h, w], 0.03, azp, mode);
                var wt = Weights(rng, [cout, cin / groups, kh, kw], pc, wzp, mode);
                var pw = PackedConvWeight.Create(wt, count % 3 == 1 ? null : Bias(rng, cout), [stride], [pad], [dil], groups,
                    false, [], engine);
                var (oh, ow) = pw.Shape.OutputSize(h, w);
                int[] e = new int[cout * oh * ow];
                ConvKernels.AccumulateReference(pw, x.IntRepr.AsSpan<byte>(), azp, h, w, oh, ow, e);
                QTensor qe;
                using (KernelPaths.Force(KernelPath.Scalar)) qe = pw.Run(x, 0.09, 77, count % 2 == 1);
                foreach (var path in KernelPaths.AllSupported())
                {
                    if (path != KernelPath.Scalar && !pw.FbgemmDepthwise)
                    {
                        int[] a = new int[e.Length];
                        ConvKernels.AccumulateGemm(pw, x.IntRepr.AsSpan<byte>(), azp, h, w, oh, ow, a, path);
                        Assert.True(e.AsSpan().SequenceEqual(a), $"{path} raw {engine} mode={mode}");
                    }
                    QTensor qa;
                    using (KernelPaths.Force(path)) qa = pw.Run(x, 0.09, 77, count % 2 == 1);
                    AssertSameQ(qe, qa, $"{path} {engine} mode={mode}");
                }
                count++;
            }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ConvPixelAndChannelRemainders(KernelPath path)
    {
        // output pixels around the 16 / 64 column tiles, output channels around the 4-row tile, odd and even K
        var rng = new Random(3);
        foreach (int oc in new[] { 1, 3, 4, 5, 8, 9 })
            foreach (int hw in new[] { 4, 7, 8, 9, 11 })
                foreach (int cin in new[] { 1, 2, 3 })
                {
                    var x = Activations(rng, [1, cin, hw, hw + 1], 0.02, 13, 0);
                    var wt = Weights(rng, [oc, cin, 3, 3], false, 5, 0);
                    var pw = PackedConvWeight.Create(wt, Bias(rng, oc), [1], [1], [1], 1, false, [], QEngine.Qnnpack);
                    int p = hw * (hw + 1);
                    int[] e = new int[oc * p], a = new int[oc * p];
                    ConvKernels.AccumulateReference(pw, x.IntRepr.AsSpan<byte>(), 13, hw, hw + 1, hw, hw + 1, e);
                    if (path == KernelPath.Scalar) ConvKernels.AccumulateReference(pw, x.IntRepr.AsSpan<byte>(), 13, hw, hw + 1, hw, hw + 1, a);
                    else ConvKernels.AccumulateGemm(pw, x.IntRepr.AsSpan<byte>(), 13, hw, hw + 1, hw, hw + 1, a, path);
                    Assert.True(e.AsSpan().SequenceEqual(a), $"{path} oc={oc} hw={hw} cin={cin}");
                }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void GoldenCasesUnderEveryPath(KernelPath path)
    {
        var failures = new List<string>();
        foreach (var row in ConvLinearGoldenTests.Cases())
        {
            string seed = (string)row[0], id = (string)row[1];
            if (ConvLinearGoldenTests.KnownFailures.ContainsKey((seed, id))) continue;
            var c = ConvLinearGoldenTests.Find(seed, id);
            object r;
            using (KernelPaths.Force(path)) r = OpCaseAdapters.Find(c.Op)!.Run(c);
            var d = ConvLinearGoldenTests.Compare(c, r);
            if (d.Length > 0) failures.Add($"{seed}/{id}: {d}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ParallelSplitGivesTheSameIntegers(KernelPath path)
    {
        // thresholds forced to 0 so that even these shapes are spread over cores (results must not depend on it)
        var rng = new Random(21);
        var x = Activations(rng, [2, 16, 23, 29], 0.02, 31, 0);
        var cw = PackedConvWeight.Create(Weights(rng, [24, 8, 3, 3], true, 0, 0), Bias(rng, 24), [1], [1], [1], 2, false, [], QEngine.Qnnpack);
        var lx = Activations(rng, [37, 300], 0.02, 200, 0);
        var lw = PackedLinearWeight.Create(Weights(rng, [150, 300], false, 9, 0), Bias(rng, 150), QEngine.Fbgemm);
        var dw = PackedConvWeight.Create(Weights(rng, [32, 1, 3, 3], true, 0, 3), Bias(rng, 32), [2], [1], [1], 16, false, [], QEngine.Fbgemm);
        QTensor ce, le, ca, la, de, da;
        using (KernelPaths.Force(KernelPath.Scalar)) { ce = cw.Run(x, 0.1, 100, false); le = lw.Run(lx, 0.2, 50, true); de = dw.Run(x, 0.3, 9, true); }
        long c0 = ConvKernels.ParallelThreshold, l0 = PackedLinearWeight.ParallelThreshold;
        try
        {
            ConvKernels.ParallelThreshold = 0;
            PackedLinearWeight.ParallelThreshold = 0;
            using (KernelPaths.Force(path)) { ca = cw.Run(x, 0.1, 100, false); la = lw.Run(lx, 0.2, 50, true); da = dw.Run(x, 0.3, 9, true); }
        }
        finally
        {
            ConvKernels.ParallelThreshold = c0;
            PackedLinearWeight.ParallelThreshold = l0;
        }
        AssertSameQ(ce, ca, $"{path} parallel conv");
        AssertSameQ(le, la, $"{path} parallel linear");
        AssertSameQ(de, da, $"{path} parallel depthwise");
    }
}
