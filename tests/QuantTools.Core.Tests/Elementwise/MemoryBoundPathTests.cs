using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Pooling;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Elementwise;

/// <summary>
/// The paths added for the memory-bound ops (Avx512 pools with permute slices, 64-wide add with pack, threaded splits,
/// outputs into a caller's span) give the scalar reference's integers: wide rows (several slices), large kernels and
/// strides, channels_last rounding, every zero point.
/// </summary>
public class MemoryBoundPathTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    private static byte[] Bytes(Random rng, int n)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        for (int i = 0; i < n; i++)
            if (rng.Next(5) == 0) b[i] = (byte)(rng.Next(4) switch { 0 => 0, 1 => 127, 2 => 128, _ => 255 });
        return b;
    }

    private static void Same(ReadOnlySpan<byte> e, ReadOnlySpan<byte> a, string ctx)
    {
        Assert.Equal(e.Length, a.Length);
        for (int i = 0; i < e.Length; i++)
            if (e[i] != a[i]) Assert.Fail($"{ctx}: first mismatch at [{i}] of {e.Length}: reference {e[i]}, path {a[i]}");
    }

    private static readonly (int K, int S, int P)[] Kernels1d =
        [(1, 1, 0), (2, 2, 0), (3, 2, 1), (3, 1, 1), (5, 3, 2), (2, 1, 1), (7, 2, 3), (11, 4, 5), (4, 4, 0), (3, 3, 1)];

    [Theory]
    [MemberData(nameof(Paths))]
    public void WidePoolsEqualReference(KernelPath path)
    {
        var rng = new Random(41);
        foreach (int w in new[] { 1, 31, 32, 33, 63, 64, 65, 96, 127, 128, 129, 130, 191, 200, 255, 256, 257, 300 })
            foreach (bool signed in new[] { false, true })
            {
                int h = rng.Next(1, 9), planes = rng.Next(1, 4);
                var src = Bytes(rng, planes * h * w);
                var (kh0, sh, ph) = Kernels1d[rng.Next(Kernels1d.Length)];
                foreach (var (k, s, pad) in Kernels1d)
                {
                    int kh = Math.Min(kh0, h + 2 * ph), kw = Math.Min(k, w + 2 * pad);
                    if (ph * 2 > kh || pad * 2 > kw) continue;
                    foreach (bool ceil in new[] { false, true })
                    {
                        int oh = QPool.OutputSize(h, kh, ph, sh, ceil), ow = QPool.OutputSize(w, kw, pad, s, ceil);
                        var e = new byte[planes * oh * ow]; var a = new byte[e.Length];
                        string ctx = $"{path} w={w} h={h} k={kh}x{kw} s={sh}x{s} p={ph}x{pad} ceil={ceil} signed={signed}";
                        PoolKernels.MaxPoolReference(src, e, signed, planes, h, w, oh, ow, kh, kw, sh, s, ph, pad);
                        using (KernelPaths.Force(path)) PoolKernels.MaxPool(src, a, signed, planes, h, w, oh, ow, kh, kw, sh, s, ph, pad);
                        Same(e, a, "max " + ctx);
                        var g = new PoolKernels.Geometry(planes, h, w, oh, ow, kh, kw, sh, s, ph, pad);
                        foreach (var (cip, div) in new[] { (true, (int?)null), (false, null), (true, 5) })
                        {
                            int zi = rng.Next(signed ? -128 : 0, signed ? 128 : 256), zo = rng.Next(signed ? -128 : 0, signed ? 128 : 256);
                            double sf = Math.Exp(rng.NextDouble() * 8 - 4);
                            using (KernelPaths.Force(KernelPath.Scalar)) PoolKernels.AvgPoolNchw(src, e, signed, g, zi, zo, sf, cip, div);
                            using (KernelPaths.Force(path)) PoolKernels.AvgPoolNchw(src, a, signed, g, zi, zo, sf, cip, div);
                            Same(e, a, $"avg {ctx} cip={cip} div={div}");
                            // channels_last rounding: the planes are split into channels; C/16*16 of them take the vector form
                            foreach (int channels in new[] { planes, 1 })
                            {
                                if (planes % channels != 0) continue;
                                float ratio = (float)Math.Exp(rng.NextDouble() * 6 - 3);
                                PoolKernels.AvgPoolNhwcReference(src, e, signed, planes / channels, channels, g, zi, zo, ratio, cip, div);
                                using (KernelPaths.Force(path)) PoolKernels.AvgPoolNhwc(src, a, signed, planes / channels, channels, g, zi, zo, ratio, cip, div);
                                Same(e, a, $"avg nhwc {ctx} cip={cip} div={div} C={channels}");
                            }
                        }
                    }
                }
            }
    }

    /// <summary>channels_last with C = 40: channels 0..31 take the vector form, 32..39 the scalar form.</summary>
    [Theory]
    [MemberData(nameof(Paths))]
    public void NhwcChannelSplitEqualsReference(KernelPath path)
    {
        var rng = new Random(42);
        foreach (bool signed in new[] { false, true })
            foreach (int zp in signed ? new[] { -128, -1, 0, 5, 127 } : new[] { 0, 1, 77, 128, 255 })
            {
                int batch = 2, channels = 40, h = 9, w = 13;
                var src = Bytes(rng, batch * channels * h * w);
                foreach (var (k, s, pad, ceil) in new[] { (3, 2, 1, false), (2, 2, 0, true), (3, 1, 0, true) })
                {
                    int oh = QPool.OutputSize(h, k, pad, s, ceil), ow = QPool.OutputSize(w, k, pad, s, ceil);
                    var g = new PoolKernels.Geometry(batch * channels, h, w, oh, ow, k, k, s, s, pad, pad);
                    var e = new byte[batch * channels * oh * ow]; var a = new byte[e.Length];
                    foreach (float ratio in new[] { 1.0f, 0.37f, 3.3f, 1e-3f, 1e6f })
                    {
                        PoolKernels.AvgPoolNhwcReference(src, e, signed, batch, channels, g, zp, zp, ratio, true, null);
                        using (KernelPaths.Force(path)) PoolKernels.AvgPoolNhwc(src, a, signed, batch, channels, g, zp, zp, ratio, true, null);
                        Same(e, a, $"{path} nhwc signed={signed} zp={zp} k={k} s={s} ratio={ratio}");
                    }
                }
            }
    }

    /// <summary>Extreme scale factors: outputs saturate the same way as the reference's casts.</summary>
    [Theory]
    [MemberData(nameof(Paths))]
    public void AvgPoolExtremeScalesEqualReference(KernelPath path)
    {
        var rng = new Random(43);
        foreach (bool signed in new[] { false, true })
        {
            int planes = 3, h = 7, w = 70;
            var src = Bytes(rng, planes * h * w);
            int oh = QPool.OutputSize(h, 3, 1, 2, false), ow = QPool.OutputSize(w, 3, 1, 2, false);
            var g = new PoolKernels.Geometry(planes, h, w, oh, ow, 3, 3, 2, 2, 1, 1);
            var e = new byte[planes * oh * ow]; var a = new byte[e.Length];
            foreach (double sf in new[] { 1e-30, 1e-9, 1e5, 1e9, 1e30, 3e38, 1e300 })
                foreach (int zo in signed ? new[] { -128, 0, 127 } : new[] { 0, 128, 255 })
                {
                    using (KernelPaths.Force(KernelPath.Scalar)) PoolKernels.AvgPoolNchw(src, e, signed, g, signed ? -3 : 100, zo, sf, true, null);
                    using (KernelPaths.Force(path)) PoolKernels.AvgPoolNchw(src, a, signed, g, signed ? -3 : 100, zo, sf, true, null);
                    Same(e, a, $"{path} avg sf={sf} zo={zo} signed={signed}");
                    PoolKernels.AvgPoolNhwcReference(src, e, signed, 1, planes, g, signed ? -3 : 100, zo, (float)Math.Min(sf, 3e38), true, null);
                    using (KernelPaths.Force(path)) PoolKernels.AvgPoolNhwc(src, a, signed, 1, planes, g, signed ? -3 : 100, zo, (float)Math.Min(sf, 3e38), true, null);
                    Same(e, a, $"{path} avg nhwc sf={sf} zo={zo} signed={signed}");
                }
        }
    }

    /// <summary>Long inputs take the threaded split (and every vector block); the result equals the reference.</summary>
    [Theory]
    [MemberData(nameof(Paths))]
    public void LongAddAndPoolsEqualReferenceOnEveryThreadCount(KernelPath path)
    {
        var rng = new Random(44);
        int previous = Parallelism.MaxThreads;
        try
        {
            foreach (int threads in new[] { 1, 2, 3 })
            {
                Parallelism.MaxThreads = threads;
                foreach (int n in new[] { (1 << 19) + 77, 1 << 19, (1 << 18) + 128 * 3 })
                {
                    var a = Bytes(rng, n); var b = Bytes(rng, n);
                    foreach (bool signed in new[] { false, true })
                        foreach (bool relu in new[] { false, true })
                        {
                            var dt = signed ? DType.QInt8 : DType.QUInt8;
                            var p = AddKernels.AtenParams(QParams.PerTensor(0.05, signed ? 3 : 128, dt), QParams.PerTensor(0.04, signed ? -7 : 120, dt), 0.07, signed ? 1 : 125, relu);
                            var e = new byte[n]; var y = new byte[n];
                            AddKernels.AtenAddReference(a, b, e, signed, p);
                            using (KernelPaths.Force(path)) AddKernels.AtenAdd(a, b, y, signed, p);
                            Same(e, y, $"{path} add n={n} threads={threads} signed={signed} relu={relu}");
                        }
                }
                int planes = 37, h = 56, w = 57;
                var src = Bytes(rng, planes * h * w);
                int oh = QPool.OutputSize(h, 3, 1, 2, true), ow = QPool.OutputSize(w, 3, 1, 2, true);
                var eo = new byte[planes * oh * ow]; var ao = new byte[eo.Length];
                PoolKernels.MaxPoolReference(src, eo, false, planes, h, w, oh, ow, 3, 3, 2, 2, 1, 1);
                using (KernelPaths.Force(path)) PoolKernels.MaxPool(src, ao, false, planes, h, w, oh, ow, 3, 3, 2, 2, 1, 1);
                Same(eo, ao, $"{path} max threads={threads}");
                var g = new PoolKernels.Geometry(planes, h, w, oh, ow, 3, 3, 2, 2, 1, 1);
                using (KernelPaths.Force(KernelPath.Scalar)) PoolKernels.AvgPoolNchw(src, eo, false, g, 100, 90, 0.8, false, null);
                using (KernelPaths.Force(path)) PoolKernels.AvgPoolNchw(src, ao, false, g, 100, 90, 0.8, false, null);
                Same(eo, ao, $"{path} avg threads={threads}");
            }
        }
        finally { Parallelism.MaxThreads = previous; }
    }

    /// <summary>The span overloads write what the allocating ones return.</summary>
    [Fact]
    public void SpanOverloadsEqualAllocatingOnes()
    {
        var rng = new Random(45);
        foreach (var dt in new[] { DType.QUInt8, DType.QInt8 })
        {
            int[] shape = [2, 3, 11, 17];
            QTensor Make(double scale, long zp)
            {
                var raw = Bytes(rng, 2 * 3 * 11 * 17);
                var t = dt == DType.QInt8 ? new Tensor(DType.Int8, shape, raw.Select(b => (sbyte)b).ToArray()) : new Tensor(DType.UInt8, shape, raw);
                return new QTensor(t, QParams.PerTensor(scale, zp, dt));
            }
            var a = Make(0.05, dt == DType.QInt8 ? 3 : 128); var b = Make(0.04, dt == DType.QInt8 ? -9 : 120);
            void Check(QTensor expected, Action<Span<byte>> into, string what)
            {
                var buf = new byte[expected.Length];
                rng.NextBytes(buf);
                into(buf);
                Same(QOps.Bytes(expected), buf, $"{dt} {what}");
            }
            foreach (var engine in new[] { QEngine.X86, QEngine.Qnnpack })
            {
                Check(QElementwise.Add(a, b, 0.07, dt == DType.QInt8 ? 2 : 125, true, engine), o => QElementwise.Add(a, b, 0.07, dt == DType.QInt8 ? 2 : 125, true, engine, o), $"add {engine}");
                Check(QElementwise.Mul(a, b, 0.07, dt == DType.QInt8 ? 2 : 125, false, engine), o => QElementwise.Mul(a, b, 0.07, dt == DType.QInt8 ? 2 : 125, false, engine, o), $"mul {engine}");
                Check(QActivation.Relu(a, engine), o => QActivation.Relu(a, engine, o), $"relu {engine}");
                Check(QActivation.Hardtanh(a, -0.5f, 2f, engine), o => QActivation.Hardtanh(a, -0.5f, 2f, engine, o), $"hardtanh {engine}");
                var plan = QActivation.SigmoidPlan(a, engine);
                Check(QActivation.Run(a, plan), o => QActivation.Run(a, plan, o), $"sigmoid {engine}");
                Check(QPool.MaxPool2d(a, 3, 3, 2, 2, 1, 1, true, engine), o => QPool.MaxPool2d(a, 3, 3, 2, 2, 1, 1, true, engine, o), $"max_pool2d {engine}");
                foreach (bool cl in new[] { false, true })
                    Check(QPool.AvgPool2d(a, 3, 3, 2, 2, 1, 1, false, false, null, engine, cl), o => QPool.AvgPool2d(a, 3, 3, 2, 2, 1, 1, false, false, null, engine, cl, o), $"avg_pool2d {engine} cl={cl}");
            }
            // relu in place
            var copy = new QTensor(new Tensor(a.IntRepr.DType, shape, (Array)a.IntRepr.Data.Clone()), a.QParams);
            var expected = QActivation.Relu(a, QEngine.X86);
            QActivation.Relu(copy, QEngine.X86, QOps.MutableBytes(copy));
            Same(QOps.Bytes(expected), QOps.Bytes(copy), $"{dt} relu in place");
            Assert.Throws<QuantToolsException>(() => QElementwise.Add(a, b, 0.07, 0, false, QEngine.X86, new byte[3]));
        }
    }
}
