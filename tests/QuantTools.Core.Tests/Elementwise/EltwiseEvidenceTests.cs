using System.Text.Json;
using QuantTools.Core.Conformance;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Normalization;
using QuantTools.Core.Tensors;
using Xunit.Abstractions;

namespace QuantTools.Core.Tests.Elementwise;

/// <summary>
/// Which of the plausible forms the golden data (seeds 0, 2, 3) decides, by counting the elements each alternative
/// gets wrong. Printed for the report; asserted where the data discriminates.
/// </summary>
public class EltwiseEvidenceTests(ITestOutputHelper output)
{
    private static IEnumerable<(GoldenFile G, JsonElement J)> Cases(params string[] ops)
    {
        foreach (var folder in Fixtures.AllSeedFolders())
        {
            var g = EltwiseGoldenTests.File(System.IO.Path.GetFileName(folder));
            foreach (var j in g.Cases)
                if (ops.Contains(j.GetProperty("op").GetString()!)) yield return (g, j);
        }
    }

    private static int Diff(QTensor expected, Func<int, int> element)
    {
        int bad = 0;
        for (int i = 0; i < expected.Length; i++)
            if ((int)expected.IntRepr.GetDouble(i) != element(i)) bad++;
        return bad;
    }

    private static int Q(QTensor t, int i) => (int)t.IntRepr.GetDouble(i);

    /// <summary>add / add_relu on x86, fbgemm, onednn: split (FMA dequantize in 128-element blocks, scalar tail) vs all-scalar vs all-FMA.</summary>
    [Fact]
    public void AddFollowsTheVectorScalarSplit()
    {
        int split = 0, scalar = 0, fma = 0, elems = 0;
        foreach (var (g, j) in Cases("add", "add_relu"))
        {
            if (j.GetProperty("engine").GetString() == "qnnpack") continue;
            var a = g.GetQTensor(j.GetProperty("a")); var b = g.GetQTensor(j.GetProperty("b")); var y = g.GetQTensor(j.GetProperty("y"));
            var p = AddKernels.AtenParams(a.QParams, b.QParams, y.QParams.Scale, y.QParams.ZeroPoint, j.GetProperty("op").GetString() == "add_relu");
            int prefix = QOps.VectorPrefix(y.Length);
            int Form(int i, bool vec)
            {
                float c = vec ? QOps.DqFma(Q(a, i), p.Sa, p.Pa) + QOps.DqFma(Q(b, i), p.Sb, p.Pb)
                              : QOps.DqScalar(Q(a, i), p.Sa, p.Za) + QOps.DqScalar(Q(b, i), p.Sb, p.Zb);
                if (p.Relu) c = MathF.Max(c, 0);
                return vec ? QOps.QuantizeVector(c, p.Inv, p.Zo, 0, 255) : QOps.QuantizeScalar(c, p.Inv, p.Zo, 0, 255);
            }
            split += Diff(y, i => Form(i, i < prefix));
            scalar += Diff(y, i => Form(i, false));
            fma += Diff(y, i => Form(i, true));
            elems += y.Length;
        }
        output.WriteLine($"add/add_relu non-qnnpack, {elems} elements: split {split} wrong, all-scalar {scalar} wrong, all-FMA {fma} wrong");
        Assert.Equal(0, split);
    }

    /// <summary>add under qnnpack: QNNPACK's fixed-point form vs ATen's float qadd_kernel.</summary>
    [Fact]
    public void QnnpackAddIsFixedPoint()
    {
        int fixedPt = 0, aten = 0, elems = 0;
        foreach (var (g, j) in Cases("add", "add_relu"))
        {
            if (j.GetProperty("engine").GetString() != "qnnpack") continue;
            var a = g.GetQTensor(j.GetProperty("a")); var b = g.GetQTensor(j.GetProperty("b")); var y = g.GetQTensor(j.GetProperty("y"));
            bool relu = j.GetProperty("op").GetString() == "add_relu";
            var viaQnnpack = QElementwise.Add(a, b, y.QParams.Scale, y.QParams.ZeroPoint, relu, QEngine.Qnnpack);
            var viaAten = QElementwise.Add(a, b, y.QParams.Scale, y.QParams.ZeroPoint, relu, QEngine.Fbgemm);
            fixedPt += Diff(y, i => Q(viaQnnpack, i));
            aten += Diff(y, i => Q(viaAten, i));
            elems += y.Length;
        }
        output.WriteLine($"add/add_relu qnnpack, {elems} elements: fixed-point {fixedPt} wrong, float qadd_kernel {aten} wrong");
        Assert.Equal(0, fixedPt);
    }

    /// <summary>mul multiplier: f32(f32(sa*sb) * f32(1/so)) vs f32(double(sa*sb) * inv).</summary>
    [Fact]
    public void MulMultiplierForm()
    {
        int ours = 0, dbl = 0, elems = 0;
        foreach (var (g, j) in Cases("mul"))
        {
            var a = g.GetQTensor(j.GetProperty("a")); var b = g.GetQTensor(j.GetProperty("b")); var y = g.GetQTensor(j.GetProperty("y"));
            int za = (int)a.QParams.ZeroPoint, zb = (int)b.QParams.ZeroPoint, zo = (int)y.QParams.ZeroPoint;
            float m1 = QElementwise.MulMultiplier(a.QParams.Scale, b.QParams.Scale, y.QParams.Scale);
            float m2 = (float)((double)(float)a.QParams.Scale * (float)b.QParams.Scale * (1.0f / (float)y.QParams.Scale));
            ours += Diff(y, i => QOps.RequantizeFromInt((Q(a, i) - za) * (Q(b, i) - zb), m1, zo, 0, 255));
            dbl += Diff(y, i => QOps.RequantizeFromInt((Q(a, i) - za) * (Q(b, i) - zb), m2, zo, 0, 255));
            elems += y.Length;
        }
        output.WriteLine($"mul, {elems} elements: float-product multiplier {ours} wrong, double-product multiplier {dbl} wrong");
        Assert.Equal(0, ours);
    }

    /// <summary>sigmoid / elu vector lambda: Sleef expf vs glibc expf; tanh: glibc tanhf in both lambdas.</summary>
    [Fact]
    public void ExpInTheVectorLambda()
    {
        int sleef = 0, libm = 0, elems = 0, vecElems = 0;
        foreach (var (g, j) in Cases("sigmoid", "elu"))
        {
            var engine = j.GetProperty("engine").GetString();
            var x = g.GetQTensor(j.GetProperty("x")); var y = g.GetQTensor(j.GetProperty("y"));
            if (j.GetProperty("op").GetString() == "sigmoid" && engine == "qnnpack" && x.DType == DType.QUInt8) continue;
            float sf = (float)x.QParams.Scale; int zp = (int)x.QParams.ZeroPoint;
            var (qmin, qmax) = QOps.Range(x.DType);
            float inv = 1.0f / (float)y.QParams.Scale; int zo = (int)y.QParams.ZeroPoint;
            int prefix = QOps.VectorPrefix(y.Length);
            bool sig = j.GetProperty("op").GetString() == "sigmoid";
            int Vec(int q, Func<float, float> exp)
            {
                if (sig) return QOps.QuantizeVector(1f / (1f + exp(-QOps.DqScalar(q, sf, zp))), inv, zo, qmin, qmax);
                float v = QOps.DqFma(q, sf, QOps.Premul(sf, zp));
                return QOps.QuantizeVector(v < 0 ? (exp(v) - 1f) * 1f : v, inv, zo, qmin, qmax);
            }
            for (int i = 0; i < prefix; i++)
            {
                int e = Q(y, i);
                if (Vec(Q(x, i), SleefMath.Expf) != e) sleef++;
                if (Vec(Q(x, i), MathF.Exp) != e) libm++;
            }
            elems += y.Length; vecElems += prefix;
        }
        output.WriteLine($"sigmoid/elu vector lambda, {vecElems} of {elems} elements: Sleef expf {sleef} wrong, glibc expf {libm} wrong");
        Assert.Equal(0, sleef);
    }

    /// <summary>Sleef's expf and glibc's expf disagree on some floats (so the two are really different functions).</summary>
    [Fact]
    public void SleefAndLibmExpDifferSomewhere()
    {
        int differ = 0, n = 0;
        for (float v = -20f; v < 20f; v += 0.00137f, n++)
            if (BitConverter.SingleToInt32Bits(SleefMath.Expf(v)) != BitConverter.SingleToInt32Bits(MathF.Exp(v))) differ++;
        output.WriteLine($"Sleef expf vs glibc expf: {differ} of {n} samples differ in the last bit");
        Assert.True(differ > 0);
    }

    /// <summary>batch_norm2d scalar channel tail and layer_norm: FMA-contracted vs separate multiply and add.</summary>
    [Fact]
    public void NormalizationTailsAreFmaContracted()
    {
        var rows = new List<string>();
        int bnFma = 0, bnPlain = 0, lnBoth = 0, lnNoVar = 0, lnNoTail = 0, lnNone = 0;
        foreach (var (g, j) in Cases("batch_norm2d", "layer_norm"))
        {
            var x = g.GetQTensor(j.GetProperty("x")); var y = g.GetQTensor(j.GetProperty("y"));
            float[] F(string k) => g.Tensors.Get(j.GetProperty(k).GetString()!).ToFloat32().AsSpan<float>().ToArray();
            double eps = j.GetProperty("eps").GetDouble(), os = j.GetProperty("out_scale").GetDouble();
            long oz = j.GetProperty("out_zero_point").GetInt64();
            int D(QTensor r) => Diff(y, i => Q(r, i));
            if (j.GetProperty("op").GetString() == "batch_norm2d")
            {
                bnFma += D(QNorm.BatchNorm2dCore(x, F("weight"), F("bias"), F("mean"), F("var"), eps, os, oz, false, true));
                bnPlain += D(QNorm.BatchNorm2dCore(x, F("weight"), F("bias"), F("mean"), F("var"), eps, os, oz, false, false));
            }
            else
            {
                lnBoth += D(QNorm.LayerNormCore(x, 16, F("weight"), F("bias"), eps, os, oz, true, true));
                lnNoVar += D(QNorm.LayerNormCore(x, 16, F("weight"), F("bias"), eps, os, oz, false, true));
                lnNoTail += D(QNorm.LayerNormCore(x, 16, F("weight"), F("bias"), eps, os, oz, true, false));
                lnNone += D(QNorm.LayerNormCore(x, 16, F("weight"), F("bias"), eps, os, oz, false, false));
            }
        }
        output.WriteLine($"batch_norm2d: FMA tail {bnFma} wrong, plain tail {bnPlain} wrong");
        output.WriteLine($"layer_norm: var+tail FMA {lnBoth}, plain var {lnNoVar}, plain tail {lnNoTail}, no FMA {lnNone} wrong");
        Assert.Equal(0, bnFma);
        Assert.Equal(0, lnBoth);
    }
}
