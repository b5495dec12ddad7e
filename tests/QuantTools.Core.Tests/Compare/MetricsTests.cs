using QuantTools.Core.Compare;
using QuantTools.Core.Formats;
using QuantTools.Core.Tensors;
using Xunit.Abstractions;

namespace QuantTools.Core.Tests.Compare;

public class MetricsTests(ITestOutputHelper output)
{
    private static Tensor F(params float[] v) => Tensor.FromArray(v, v.Length);

    [Fact]
    public void NumericSuiteDefinitions()
    {
        double[] x = [3, 4], y = [3, 5];
        Assert.Equal(20 * Math.Log10(5.0 / 1.0), TensorMetrics.Sqnr(x, y), 12);
        Assert.Equal(double.PositiveInfinity, TensorMetrics.Sqnr(x, x));
        Assert.Equal(29 / (5 * Math.Sqrt(34)), TensorMetrics.Cosine(x, y), 12);
        var (mse, max, mean) = TensorMetrics.Errors(x, y);
        Assert.Equal(0.5, mse); Assert.Equal(1, max); Assert.Equal(0.5, mean);
        var (t1, tk) = TensorMetrics.TopKAgreement([1, 5, 3, 9, 0, 2], [1, 4, 5, 0, 9, 2], 3, 2);
        Assert.Equal(0, t1);     // argmax 1 vs 2, 0 vs 1
        Assert.Equal(0.75, tk);  // top-2 row 0: {1,2} vs {2,1}; row 1: {0,2} vs {1,2}
    }

    [Fact]
    public void QuantizedComparesIntegersAndReportsFirstBadIndex()
    {
        var qp = QParams.PerTensor(0.5, 10, DType.QUInt8);
        var a = new QTensor(new Tensor(DType.UInt8, [2, 3], new byte[] { 10, 11, 12, 13, 14, 15 }), qp);
        var b = new QTensor(new Tensor(DType.UInt8, [2, 3], new byte[] { 10, 11, 12, 16, 14, 14 }), qp);
        var r = QuantComparer.CompareTensors(a, b, new CompareOptions { MaxLsb = 1 }, "fc");
        Assert.Equal(3, r.MaxLsb);
        Assert.Equal(4 / 6.0, r.ExactRatio!.Value, 12);
        Assert.False(r.Passed);
        Assert.Equal([1, 0], r.FirstBad!.Index);
        Assert.Equal(13, r.FirstBad.ReferenceInt);
        Assert.Equal(16, r.FirstBad.DifferenceInt);
        Assert.Equal(1.5, r.FirstBad.ReferenceValue);
        // a plain uint8 dump (no qparams) is read on the reference grid
        var dump = new Tensor(DType.UInt8, [2, 3], new byte[] { 10, 11, 12, 13, 14, 15 });
        var same = QuantComparer.CompareTensors(a, dump);
        Assert.True(same.Passed);
        Assert.Equal(0, same.MaxLsb);
        Assert.Contains("Reference qparams", same.IntegerBasis);
    }

    [Fact]
    public void ShapeMismatchNamesTheLayerAndBothShapes()
    {
        var e = Assert.Throws<QuantToolsException>(() =>
            QuantComparer.Compare([("conv1", F(1, 2, 3))], [("conv1", F(1, 2))]));
        Assert.Equal(ErrorCode.ShapeMismatch, e.Code);
        Assert.Contains("conv1", e.Message);
        Assert.Contains("[3]", e.Message);
        Assert.Contains("[2]", e.Message);
    }

    [Fact]
    public void AlignmentByNameMapAndPosition()
    {
        string[] refs = ["quant", "conv1", "relu6"];
        var (p1, _, _) = LayerAligner.Align(refs, ["act/quant/int", "act/conv1/int", "act/relu6/int"], null);
        Assert.All(p1, p => Assert.Equal(LayerMatch.Name, p.Match));
        var (p2, _, _) = LayerAligner.Align(refs, ["n0", "n1", "n2"], [new("n(\\d)", "L$1")]);
        Assert.All(p2, p => Assert.Equal(LayerMatch.Position, p.Match));
        var (p3, _, _) = LayerAligner.Align(refs, ["fused_conv2d", "fused_clip", "q"], [new("conv1", "fused_conv2d"), new("fused_clip", "relu6")]);
        Assert.Equal(LayerMatch.Map, p3[1].Match);
        Assert.Equal(0, p3[1].DifferenceIndex);
        Assert.Equal(1, p3[2].DifferenceIndex);
        var (p4, _, _) = LayerAligner.Align(refs, ["tvm_quant", "tvm_conv1", "tvm_relu6"], [new("tvm_(.*)", "$1")]);
        Assert.All(p4, p => Assert.Equal(LayerMatch.Map, p.Match));
    }

    [Fact]
    public void Relu6QuantizedVsFloatOutputIsSensible()
    {
        var f = SafeTensorsFile.Open(Fixtures.Core("models", "relu6_eager.safetensors"));
        var r = QuantComparer.CompareTensors(f.Get("float_output"), f.Get("output"), new CompareOptions { MinSqnr = 15 }, "output");
        output.WriteLine($"relu6_eager quantized vs float: SQNR {r.Sqnr:F2} dB, cosine {r.Cosine:F5}, max abs {r.MaxAbsError:G4}, top1 {r.Top1Agreement}");
        Assert.True(double.IsFinite(r.Sqnr) && r.Sqnr > 15 && r.Sqnr < 80);
        Assert.True(r.Cosine > 0.98);
        Assert.NotNull(r.Top1Agreement);
        Assert.True(r.Passed);
    }

    [Fact]
    public void SeedConvnetQatVsConvertedIsSensible()
    {
        var qat = SafeTensorsFile.Open(Fixtures.Core("models", "seed_convnet_qat.safetensors")).Get("qat_output");
        var converted = SafeTensorsFile.Open(Fixtures.Core("models", "seed_convnet.safetensors")).Get("output");
        var r = QuantComparer.CompareTensors(qat, converted, new CompareOptions { MinSqnr = 8 }, "output");
        // on conv3's grid (scale 0.02034, zero point 51): how many steps apart fake-quant and integer results are
        var grid = QParams.PerTensor(0.020343948155641556, 51, DType.QUInt8);
        var rq = QuantComparer.CompareTensors(qat, Quantization.Quantizer.Quantize(converted, grid), null, "output");
        output.WriteLine($"seed_convnet QAT vs converted: SQNR {r.Sqnr:F2} dB, cosine {r.Cosine:F5}, max abs {r.MaxAbsError:G4}; on the output grid max {rq.MaxLsb} LSB, {rq.ExactRatio:P1} exact");
        // measured: 11.2 dB, cosine 0.970, max 23 LSB, 5.9% exact. Fake-quant training output and the converted
        // integer model agree in direction, not bit for bit (the QAT model folds BN and observes differently)
        Assert.True(double.IsFinite(r.Sqnr) && r.Sqnr > 8 && r.Sqnr < 40);
        Assert.True(r.Cosine > 0.95);
        Assert.True(r.Passed);
        Assert.InRange(rq.MaxLsb!.Value, 1, 40);
    }
}
