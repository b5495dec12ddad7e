using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Pooling;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Elementwise;

/// <summary>Every SIMD path of the element-wise and pooling kernels gives the scalar reference's integers.</summary>
public class EltwisePathTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    private static readonly double[] Scales = [1e-4, 0.0039215686, 0.019743409007787704, 0.05, 0.1, 0.37, 1.0, 10.0395];

    /// <summary>Random bytes with runs of the extremes (0, 127, 128, 255) mixed in.</summary>
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
        for (int i = 0; i < e.Length; i++)
            if (e[i] != a[i]) Assert.Fail($"{ctx}: first mismatch at [{i}] of {e.Length}: reference {e[i]}, path {a[i]}");
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ClampEqualsReference(KernelPath path)
    {
        var rng = new Random(11);
        for (int n = 0; n <= 300; n++)
            foreach (bool signed in new[] { false, true })
            {
                var src = Bytes(rng, n);
                var (qmin, qmax) = signed ? (-128, 127) : (0, 255);
                foreach (var (lo, hi) in new[] { (qmin, qmax), (qmin, qmin), (qmax, qmax), (rng.Next(qmin, qmax + 1), qmax), (qmin, rng.Next(qmin, qmax + 1)), (qmin + 1, qmax - 1) })
                {
                    var e = new byte[n]; var a = new byte[n];
                    ClampKernels.Reference(src, e, signed, lo, hi);
                    using (KernelPaths.Force(path)) ClampKernels.Clamp(src, a, signed, lo, hi);
                    Same(e, a, $"{path} n={n} signed={signed} [{lo},{hi}]");
                }
            }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void AtenAddEqualsReference(KernelPath path)
    {
        var rng = new Random(12);
        for (int n = 0; n <= 300; n++)
            foreach (bool signed in new[] { false, true })
                foreach (bool relu in new[] { false, true })
                {
                    var a = Bytes(rng, n); var b = Bytes(rng, n);
                    var dt = signed ? DType.QInt8 : DType.QUInt8;
                    var (qmin, qmax) = QOps.Range(dt);
                    int Zp() => rng.Next(4) switch { 0 => qmin, 1 => qmax, _ => rng.Next(qmin, qmax + 1) };
                    var p = AddKernels.AtenParams(QParams.PerTensor(Scales[rng.Next(Scales.Length)], Zp(), dt),
                        QParams.PerTensor(Scales[rng.Next(Scales.Length)], Zp(), dt), Scales[rng.Next(Scales.Length)], Zp(), relu);
                    var e = new byte[n]; var y = new byte[n];
                    AddKernels.AtenAddReference(a, b, e, signed, p);
                    using (KernelPaths.Force(path)) AddKernels.AtenAdd(a, b, y, signed, p);
                    Same(e, y, $"{path} add n={n} signed={signed} relu={relu}");
                }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ActivationTablesEqualTheFormula(KernelPath path)
    {
        var rng = new Random(13);
        foreach (var dt in new[] { DType.QUInt8, DType.QInt8 })
            foreach (var engine in new[] { QEngine.X86, QEngine.Qnnpack })
                foreach (int n in new[] { 0, 1, 127, 128, 129, 255, 256, 300 })
                {
                    var t = Tensor.Zeros(dt == DType.QInt8 ? DType.Int8 : DType.UInt8, n);
                    var raw = Bytes(rng, n);
                    for (int i = 0; i < n; i++) { if (dt == DType.QInt8) t.AsSpan<sbyte>()[i] = (sbyte)raw[i]; else t.AsSpan<byte>()[i] = raw[i]; }
                    var (qmin, qmax) = QOps.Range(dt);
                    var x = new QTensor(t, QParams.PerTensor(Scales[rng.Next(Scales.Length)], rng.Next(qmin, qmax + 1), dt));
                    var plans = new[]
                    {
                        QActivation.HardswishPlan(x, 0.03, dt == DType.QInt8 ? -100 : 20, engine), QActivation.SigmoidPlan(x, engine),
                        QActivation.TanhPlan(x, engine), QActivation.HardsigmoidPlan(x, engine),
                        QActivation.LeakyReluPlan(x, 0.1f, 0.05, 3, engine), QActivation.EluPlan(x, 1f, 0.04, dt == DType.QInt8 ? 0 : 60, engine),
                    };
                    foreach (var plan in plans)
                    {
                        QTensor fast;
                        using (KernelPaths.Force(path)) fast = QActivation.Run(x, plan);
                        var reference = QActivation.Reference(x, plan);
                        Same(MemoryMarshalBytes(reference), MemoryMarshalBytes(fast), $"{path} {dt} {engine} n={n}");
                    }
                }
    }

    private static byte[] MemoryMarshalBytes(QTensor q) => QOps.Bytes(q).ToArray();

    [Theory]
    [MemberData(nameof(Paths))]
    public void PoolingEqualsReference(KernelPath path)
    {
        var rng = new Random(14);
        for (int w = 1; w <= 70; w += (w < 20 ? 1 : 7))
            foreach (bool signed in new[] { false, true })
            {
                int h = rng.Next(1, 12), planes = rng.Next(1, 4);
                var src = Bytes(rng, planes * h * w);
                foreach (var (k, s, pad) in new[] { (1, 1, 0), (2, 2, 0), (3, 2, 1), (3, 1, 1), (5, 3, 2), (2, 1, 1) })
                {
                    int kh = Math.Min(k, h + 2 * pad), kw = Math.Min(k, w + 2 * pad);
                    if (kh > h + 2 * pad || kw > w + 2 * pad || pad * 2 > kh || pad * 2 > kw) continue;
                    foreach (bool ceil in new[] { false, true })
                    {
                        int oh = QPool.OutputSize(h, kh, pad, s, ceil), ow = QPool.OutputSize(w, kw, pad, s, ceil);
                        var e = new byte[planes * oh * ow]; var a = new byte[e.Length];
                        PoolKernels.MaxPoolReference(src, e, signed, planes, h, w, oh, ow, kh, kw, s, s, pad, pad);
                        using (KernelPaths.Force(path)) PoolKernels.MaxPool(src, a, signed, planes, h, w, oh, ow, kh, kw, s, s, pad, pad);
                        Same(e, a, $"{path} max w={w} h={h} k={kh}x{kw} s={s} p={pad}");
                        var g = new PoolKernels.Geometry(planes, h, w, oh, ow, kh, kw, s, s, pad, pad);
                        foreach (var (cip, div) in new[] { (true, (int?)null), (false, null), (true, 7) })
                        {
                            int zi = rng.Next(signed ? -128 : 0, signed ? 128 : 256), zo = rng.Next(signed ? -128 : 0, signed ? 128 : 256);
                            double sf = Scales[rng.Next(Scales.Length)] / Scales[rng.Next(Scales.Length)];
                            using (KernelPaths.Force(KernelPath.Scalar)) PoolKernels.AvgPoolNchw(src, e, signed, g, zi, zo, sf, cip, div);
                            using (KernelPaths.Force(path)) PoolKernels.AvgPoolNchw(src, a, signed, g, zi, zo, sf, cip, div);
                            Same(e, a, $"{path} avg w={w} h={h} k={kh}x{kw} s={s} p={pad} cip={cip} div={div}");
                        }
                    }
                }
            }
    }

    /// <summary>QNNPACK's add saturates through int16 before adding the zero point; extremes stay in range.</summary>
    [Fact]
    public void QnnpackAddExtremes()
    {
        var a = new byte[] { 0, 255, 0, 255, 128 };
        var b = new byte[] { 0, 255, 255, 0, 128 };
        var p = AddKernels.QnnpackParams(QParams.PerTensor(1.0, 0, DType.QUInt8), QParams.PerTensor(1.0, 0, DType.QUInt8), 1.0, 0, false);
        var y = new byte[5];
        AddKernels.QnnpackAdd(a, b, y, p);
        Assert.Equal(new byte[] { 0, 255, 255, 255, 255 }, y);
        p = AddKernels.QnnpackParams(QParams.PerTensor(0.5, 128, DType.QUInt8), QParams.PerTensor(0.5, 128, DType.QUInt8), 1.0, 128, true);
        AddKernels.QnnpackAdd(a, b, y, p);
        // (a-128)/2 + (b-128)/2 + 128, round half away from zero, relu at 128
        Assert.Equal(new byte[] { 128, 255, 128, 128, 128 }, y);
    }
}

public class MulPathTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    [Theory]
    [MemberData(nameof(Paths))]
    public void MulEqualsReference(KernelPath path)
    {
        var rng = new Random(21);
        float[] ms = [1e-6f, 3.1e-4f, 0.0123f, 0.5f, 1f, 3.7f, 1e5f, 1e9f];
        for (int n = 0; n <= 300; n++)
            foreach (bool signed in new[] { false, true })
                foreach (bool relu in new[] { false, true })
                {
                    var a = new byte[n]; var b = new byte[n]; rng.NextBytes(a); rng.NextBytes(b);
                    var (qmin, qmax) = signed ? (-128, 127) : (0, 255);
                    int za = rng.Next(qmin, qmax + 1), zb = rng.Next(qmin, qmax + 1), zo = rng.Next(qmin, qmax + 1);
                    float m = ms[rng.Next(ms.Length)];
                    var e = new byte[n]; var y = new byte[n];
                    MulKernels.Reference(a, b, e, signed, za, zb, m, zo, relu);
                    using (KernelPaths.Force(path)) MulKernels.Mul(a, b, y, signed, za, zb, m, zo, relu);
                    for (int i = 0; i < n; i++)
                        if (e[i] != y[i]) Assert.Fail($"{path} mul n={n} signed={signed} relu={relu} m={m}: [{i}] reference {e[i]}, path {y[i]}");
                }
    }
}

public class LutPathTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    [Theory]
    [MemberData(nameof(Paths))]
    public void LookupEqualsReference(KernelPath path)
    {
        var rng = new Random(31);
        var table = new byte[256]; rng.NextBytes(table);
        for (int n = 0; n <= 300; n++)
        {
            var x = new byte[n]; rng.NextBytes(x);
            if (n > 0) { x[0] = 0; x[^1] = 255; x[n / 2] = 127; }
            var e = new byte[n]; var y = new byte[n];
            LutKernels.Reference(x, e, table);
            using (KernelPaths.Force(path)) LutKernels.Apply(x, y, table);
            Assert.Equal(e, y);
        }
        var all = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        var r = new byte[256];
        using (KernelPaths.Force(path)) LutKernels.Apply(all, r, table);
        Assert.Equal(table, r);
    }
}
