using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Kernels.Pooling;
using QuantTools.Core.Kernels.Requantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.ConvLinear;

/// <summary>
/// The CPU-class dimension of the engine profiles: which library a conv runs on, where product pairs saturate, and the
/// ATen vector widths, against hand-computed expectations. The AVX2 rules were found with libtorch 2.10 on an AMD EPYC
/// without AVX-512 (tests/QuantTools.Torch.Tests check them against libtorch on whatever host runs the suite).
/// </summary>
public class CpuClassProfileTests
{
    public static IEnumerable<object[]> Paths() => KernelPaths.AllSupported().Select(p => new object[] { p });

    private static QTensor X(byte[] v, int[] shape, int zp = 0) =>
        new(new Tensor(DType.UInt8, shape, v), QParams.PerTensor(1.0, zp, DType.QUInt8));

    private static QTensor W(sbyte[] v, int[] shape, int zp = 0) =>
        new(new Tensor(DType.Int8, shape, v), QParams.PerTensor(1.0, zp, DType.QInt8));

    [Fact]
    public void Routing_DependsOnTheCpuClass()
    {
        // x86: oneDNN only with AVX512-VNNI; without it every conv goes to FBGEMM, which then saturates pairs
        Assert.Equal(QBackend.Onednn, EngineProfile.ForConv(QEngine.X86, CpuClass.Avx512Vnni, true, 1, false));
        Assert.Equal(QBackend.FbgemmAvx2, EngineProfile.ForConv(QEngine.X86, CpuClass.Avx2, true, 1, false));
        Assert.Equal(QBackend.Fbgemm, EngineProfile.ForConv(QEngine.X86, CpuClass.Avx512Vnni, false, 1, false));
        Assert.Equal(QBackend.FbgemmAvx2, EngineProfile.ForLinear(QEngine.X86, CpuClass.Avx2));
        Assert.Equal(QBackend.OnednnAvx2, EngineProfile.ForConv(QEngine.Onednn, CpuClass.Avx2, true, 1, false));
        Assert.Equal(QBackend.Qnnpack, EngineProfile.ForConv(QEngine.Qnnpack, CpuClass.Avx2, true, 1, false));
        // the old overloads keep the golden host's class
        Assert.Equal(QBackend.Onednn, EngineProfile.ForConv(QEngine.X86, true, 1, false));
        Assert.Equal(CpuClass.Avx2, EngineProfile.EffectiveCpu(QEngine.FbgemmAvx2, CpuClass.Avx512Vnni));
        Assert.Equal(CpuClass.Avx2, CpuClasses.Parse("AVX2"));
        Assert.Equal(CpuClasses.Host, CpuClasses.Parse("host"));
        Assert.Equal("avx512-vnni", CpuClass.Avx512Vnni.Name());
        Assert.Throws<QuantToolsException>(() => CpuClasses.Parse("avx9"));
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void OnednnAvx2_PairsChannelsWithinATap(KernelPath path)
    {
        using var _ = KernelPaths.Force(path);
        // 3 input channels, 1x2 kernel, one output pixel; inputs 255, scale 256. Weights w[c][kw]: c0 = (0, 127),
        // c1 = (0, 0), c2 = (127, 0), so in K order (kw, c) K = (0, 0, 127, 127, 0, 0):
        //   FBGEMM's K pairs (0,1) (2,3) (4,5): (2,3) = 255*127*2 = 64770 -> 32767; 32767 / 256 = 127.996 -> 128
        //   oneDNN's tap pairs (c0,c1) (c2) per tap keep c2@kw0 and c0@kw1 apart: 64770 / 256 = 253.01 -> 253
        var x = X(Enumerable.Repeat((byte)255, 3 * 1 * 2).ToArray(), [1, 3, 1, 2]);
        var w = W([0, 127, 0, 0, 127, 0], [1, 3, 1, 2]);
        foreach (var (engine, cpu, expected) in new[]
                 {
                     (QEngine.Onednn, CpuClass.Avx2, 253), (QEngine.Onednn, CpuClass.Avx512Vnni, 253),
                     (QEngine.Fbgemm, CpuClass.Avx2, 128), (QEngine.X86, CpuClass.Avx2, 128), (QEngine.X86, CpuClass.Avx512Vnni, 253),
                 })
        {
            var pw = PackedConvWeight.Create(w, null, [1], [0], [1], 1, false, [], engine, cpu);
            Assert.Equal(expected, pw.Run(x, 256, 0, false).IntRepr.AsSpan<byte>()[0]);
        }
        // within one tap the pair (c0, c1) saturates on oneDNN AVX2 only: 32767 + 32385 = 65152 / 512 = 127.25 -> 127
        // (exact 97155 / 512 = 189.76 -> 190)
        var w1 = W([127, 127, 127], [1, 3, 1, 1]);
        var x1 = X([255, 255, 255], [1, 3, 1, 1]);
        Assert.Equal(127, PackedConvWeight.Create(w1, null, [1], [0], [1], 1, false, [], QEngine.Onednn, CpuClass.Avx2).Run(x1, 512, 0, false).IntRepr.AsSpan<byte>()[0]);
        Assert.Equal(190, PackedConvWeight.Create(w1, null, [1], [0], [1], 1, false, [], QEngine.Onednn, CpuClass.Avx512Vnni).Run(x1, 512, 0, false).IntRepr.AsSpan<byte>()[0]);
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void OnednnAvx2_LinearPairsInKOrder(KernelPath path)
    {
        using var _ = KernelPaths.Force(path);
        var pw = PackedLinearWeight.Create(W([127, 127], [1, 2]), null, QEngine.Onednn, CpuClass.Avx2);
        Assert.Equal(128, pw.Run(X([255, 255], [1, 2]), 256, 0, false).IntRepr.AsSpan<byte>()[0]);
        var exact = PackedLinearWeight.Create(W([127, 127], [1, 2]), null, QEngine.Onednn, CpuClass.Avx512Vnni);
        Assert.Equal(253, exact.Run(X([255, 255], [1, 2]), 256, 0, false).IntRepr.AsSpan<byte>()[0]);
    }

    [Fact]
    public void AtenVectorWidths_FollowTheCurrentClass()
    {
        Assert.Equal(128, QOps.VectorBlock);
        Assert.Equal(16, PoolKernels.NhwcVectorChannels);
        using (CpuClasses.Use(CpuClass.Avx2))
        {
            Assert.Equal(64, QOps.VectorBlock);
            Assert.Equal(8, PoolKernels.NhwcVectorChannels);
            Assert.Equal(64, QOps.VectorPrefix(127));
            // flows into parallel work started inside the scope
            int seen = 0;
            Parallel.For(0, 4, _ => { if (QOps.VectorBlock == 64) Interlocked.Increment(ref seen); });
            Assert.Equal(4, seen);
        }
        Assert.Equal(128, QOps.VectorBlock);
    }

    [Fact]
    public void AddOf100Elements_TakesTheVectorFormOnlyOnAvx2()
    {
        // 100 elements: all scalar on AVX-512 (block 128), the first 64 vector on AVX2 (cpu_kernel_vec's
        // 2 * Vectorized<quint8>::size() blocks). The output scale is the first (of a fixed sweep) for which the two
        // forms' formulas disagree on one of the first 64 elements; each element is then checked against its form.
        byte[] qa = Enumerable.Range(0, 100).Select(i => (byte)(i * 7 % 256)).ToArray();
        byte[] qb = Enumerable.Range(0, 100).Select(i => (byte)(i * 13 % 256)).ToArray();
        const float sa = 0.0123456789f, sb = 0.0987654321f;
        const int za = 17, zb = 131, zo = 90;
        float Scalar(int i) => sa * (qa[i] - za) + sb * (qb[i] - zb);
        float Vector(int i) => MathF.FusedMultiplyAdd(sa, qa[i], sa * -(float)za) + MathF.FusedMultiplyAdd(sb, qb[i], sb * -(float)zb);
        double outScale = 0;
        for (int k = 0; k < 100_000 && outScale == 0; k++)
        {
            double s = 0.05 + k * 1e-7;
            float iv = 1f / (float)s;
            for (int i = 0; i < 64; i++)
                if (QOps.QuantizeScalar(Scalar(i), iv, zo, 0, 255) != QOps.QuantizeVector(Vector(i), iv, zo, 0, 255)) { outScale = s; break; }
        }
        Assert.NotEqual(0, outScale);
        var a = new QTensor(new Tensor(DType.UInt8, [100], qa), QParams.PerTensor(sa, za, DType.QUInt8));
        var b = new QTensor(new Tensor(DType.UInt8, [100], qb), QParams.PerTensor(sb, zb, DType.QUInt8));
        var avx512 = QElementwise.Add(a, b, outScale, zo, false, QEngine.X86).IntRepr.AsSpan<byte>().ToArray();
        byte[] avx2;
        using (CpuClasses.Use(CpuClass.Avx2)) avx2 = QElementwise.Add(a, b, outScale, zo, false, QEngine.X86).IntRepr.AsSpan<byte>().ToArray();
        float inv = 1f / (float)outScale;
        for (int i = 0; i < 100; i++)
        {
            Assert.Equal(QOps.QuantizeScalar(Scalar(i), inv, zo, 0, 255), avx512[i]);
            Assert.Equal(i < 64 ? QOps.QuantizeVector(Vector(i), inv, zo, 0, 255) : QOps.QuantizeScalar(Scalar(i), inv, zo, 0, 255), avx2[i]);
        }
        Assert.NotEqual(avx512, avx2);
    }
}
