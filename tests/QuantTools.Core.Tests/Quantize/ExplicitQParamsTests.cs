using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Quantize;

public class ExplicitQParamsTests
{
    [Fact]
    public void OneScaleIsPerTensorAffineQuint8()
    {
        var qp = ExplicitQParams.Create([0.5], [3]);
        Assert.Equal(QScheme.PerTensorAffine, qp.QScheme);
        Assert.Equal(DType.QUInt8, qp.DType);
        Assert.Equal(0.5, qp.Scale);
        Assert.Equal(3, qp.ZeroPoint);
    }

    [Fact]
    public void SeveralScalesArePerChannelAndRepeatOneZeroPoint()
    {
        var qp = ExplicitQParams.Create([0.5, 0.25], [1], "qint8", axis: 0);
        Assert.Equal(QScheme.PerChannelAffine, qp.QScheme);
        Assert.Equal(new long[] { 1, 1 }, qp.ZeroPoints);
        Assert.Equal(0, qp.Axis);
    }

    [Fact]
    public void Refusals()
    {
        Assert.Contains("-Axis", Assert.Throws<QuantToolsException>(() => ExplicitQParams.Create([0.5, 0.25])).Message);
        Assert.Contains("per-channel -QScheme", Assert.Throws<QuantToolsException>(() => ExplicitQParams.Create([0.5, 0.25], qscheme: "per_tensor_affine", axis: 0)).Message);
        Assert.Contains("not an integer", Assert.Throws<QuantToolsException>(() => ExplicitQParams.Create([0.5], [1.5])).Message);
        var f = ExplicitQParams.Create([0.5, 0.25], [1.5, -0.25], qscheme: "per_channel_affine_float_qparams", axis: 1);
        Assert.Equal(new float[] { 1.5f, -0.25f }, f.FloatZeroPoints);
    }
}
