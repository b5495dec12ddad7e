using System.Text.RegularExpressions;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Kernels.Requantization;
using QuantTools.Core.Tensors;
using QuantTools.Core.Tests.ConvLinear;

namespace QuantTools.Core.Tests.Kernels;

/// <summary>Kernel path names and the resolvers that choose them (conv, linear, and the CPU-only families).</summary>
public class KernelPathResolverTests
{
    private static readonly Regex PathName = new(@"^(f32|qu8|qs8|qs32)(-(f32|qu8|qs8|qs32))?-[a-z0-9]+(-[a-z0-9]+)*/[a-z0-9]+(-[a-z0-9]+)*$");

    [Fact]
    public void EveryFamilyPathHasAUniqueDtypeOpIsaName()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in KernelFamilies.All)
            foreach (var p in Enum.GetValues<KernelPath>().Where(p => p != KernelPath.None && (f.Implemented & p) != 0))
            {
                var n = f.PathName(p);
                Assert.Matches(PathName, n);
                Assert.True(names.Add(n), $"{n} twice");
            }
        foreach (var a in Enum.GetValues<ConvAccumulation>()) Assert.True(names.Add(ConvPaths.Name(a)) && PathName.IsMatch(ConvPaths.Name(a)), ConvPaths.Name(a));
        foreach (var a in Enum.GetValues<LinearAccumulation>()) Assert.True(names.Add(LinearPaths.Name(a)) && PathName.IsMatch(LinearPaths.Name(a)), LinearPaths.Name(a));
        Assert.Contains("qu8-conv2d/avx2-pairgemm", names);
        Assert.Contains("qu8-conv2d/native-avx512vnni", names);
        Assert.Contains("qu8-clamp/vector256", names);
        Assert.Contains("f32-qu8-quantize/avx2", names);
    }

    [Fact]
    public void FamiliesResolveTheForcedPathOrTheirScalarReference()
    {
        foreach (var f in KernelFamilies.All)
            foreach (var p in KernelPaths.AllSupported())
                using (KernelPaths.Force(p))
                    Assert.Equal((f.Implemented & p) != 0 ? p : KernelPath.Scalar, f.Resolve());
    }

    /// <summary>The path this CPU takes for an exact 3x3 conv / linear when nothing is forced.</summary>
    private static (ConvAccumulation Conv, LinearAccumulation Linear) ExpectedOnThisHost()
    {
        if ((KernelPaths.Supported & KernelPath.NativeVnni) != 0) return (ConvAccumulation.NativeAvx512Vnni, LinearAccumulation.NativeAvx512Vnni);
        if ((KernelPaths.Supported & KernelPath.Avx512) != 0) return (ConvAccumulation.Avx512PairGemm, LinearAccumulation.Avx512PairGemm);
        if ((KernelPaths.Supported & KernelPath.Avx2) != 0) return (ConvAccumulation.Avx2PairGemm, LinearAccumulation.Avx2PairGemm);
        return (ConvAccumulation.Scalar, LinearAccumulation.Scalar);
    }

    private static PackedConvWeight Conv(QEngine engine, int cin, int cout, int groups, int seed = 1)
    {
        var rng = new Random(seed);
        var w = ConvLinearPathTests.Weights(rng, [cout, cin / groups, 3, 3], false, 0, 0);
        return PackedConvWeight.Create(w, null, [1], [1], [1], groups, false, [], engine);
    }

    [Fact]
    public void ConvPlansFollowTheBackendTheLayerAndTheCpu()
    {
        var (conv, _) = ExpectedOnThisHost();
        var dense = Conv(QEngine.X86, 16, 8, 1);
        Assert.Equal(QBackend.Onednn, dense.Plan.Backend);
        Assert.Equal(conv, dense.Plan.Accumulation);
        Assert.Equal(OutputStage.Family.Resolve(), dense.Plan.Requantization);
        using (KernelPaths.Force(KernelPath.Scalar))
        {
            Assert.Equal(ConvAccumulation.Scalar, dense.Plan.Accumulation);
            Assert.Equal("qu8-conv2d/scalar + qs32-qu8-requant/scalar (Onednn)", dense.Plan.ToString());
        }
        // fbgemm-avx2 saturates product pairs: only the scalar definition reproduces it, whatever is forced
        var sat = Conv(QEngine.FbgemmAvx2, 16, 8, 1);
        foreach (var p in KernelPaths.AllSupported())
            using (KernelPaths.Force(p))
                Assert.Equal(ConvAccumulation.ScalarSat16, sat.Plan.Accumulation);
        // FBGEMM's depthwise kernel saturates tap pairs; the AVX-512 depthwise kernel reproduces it where AVX-512 runs
        var dw = Conv(QEngine.Fbgemm, 32, 32, 32);
        Assert.True(dw.FbgemmDepthwise);
        bool avx512 = System.Runtime.Intrinsics.X86.Avx512BW.IsSupported && (KernelPaths.Supported & KernelPath.Avx512) != 0;
        Assert.Equal(avx512 ? ConvAccumulation.Avx512DepthwiseSat16 : ConvAccumulation.ScalarSat16, dw.Plan.Accumulation);
        var dwExact = Conv(QEngine.Qnnpack, 32, 32, 32);
        Assert.Equal(avx512 ? ConvAccumulation.Avx512Depthwise : conv == ConvAccumulation.NativeAvx512Vnni ? ConvAccumulation.Avx512PairGemm : conv,
            dwExact.Plan.Accumulation);
    }

    [Fact]
    public void LinearPlansFollowTheBackendAndTheCpu()
    {
        var (_, linear) = ExpectedOnThisHost();
        var rng = new Random(2);
        var w = ConvLinearPathTests.Weights(rng, [24, 40], true, 0, 0);
        Assert.Equal(linear, PackedLinearWeight.Create(w, null, QEngine.X86).Plan.Accumulation);
        Assert.Equal(QBackend.Fbgemm, PackedLinearWeight.Create(w, null, QEngine.X86).Plan.Backend);
        Assert.Equal(LinearAccumulation.ScalarSat16, PackedLinearWeight.Create(w, null, QEngine.FbgemmAvx2).Plan.Accumulation);
        using (KernelPaths.Force(KernelPath.Scalar))
            Assert.Equal("qu8-linear/scalar", PackedLinearWeight.Create(w, null, QEngine.Qnnpack).Plan.Name);
    }

    [Fact]
    public void ConvRunExecutesItsPlan()
    {
        // the plan is what runs: its accumulation and requantization, applied by hand, give Run's integers on every path
        var rng = new Random(9);
        var x = ConvLinearPathTests.Activations(rng, [1, 16, 9, 11], 0.02, 7, 0);
        foreach (var engine in new[] { QEngine.X86, QEngine.Qnnpack, QEngine.FbgemmAvx2 })
        {
            var pw = Conv(engine, 16, 12, engine == QEngine.Qnnpack ? 4 : 1, seed: 4);
            foreach (var p in KernelPaths.AllSupported())
                using (KernelPaths.Force(p))
                {
                    var plan = pw.Plan;
                    var y = pw.Run(x, 0.05, 9, false);
                    if (plan.Accumulation == ConvAccumulation.NativeAvx512Vnni) continue; // requantization fused in native code
                    var (oh, ow) = pw.Shape.OutputSize(9, 11);
                    var raw = new int[12 * oh * ow];
                    ConvKernels.Accumulate(pw, x.IntRepr.AsSpan<byte>(), 7, 9, 11, oh, ow, raw, plan.Accumulation);
                    var stage = new OutputStage(pw.Backend, 0.02, pw.WScale, null, 0.05, 9, false, pw.PerChannel);
                    var expect = new byte[raw.Length];
                    for (int o = 0; o < 12; o++)
                        stage.ApplyChannel(raw.AsSpan(o * oh * ow, oh * ow), expect.AsSpan(o * oh * ow, oh * ow), o, plan.Requantization);
                    Assert.Equal(expect, y.IntRepr.AsSpan<byte>().ToArray());
                }
        }
    }
}
