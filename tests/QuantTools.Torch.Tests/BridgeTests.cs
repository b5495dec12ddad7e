using QuantTools.Core.Tensors;
using TorchSharp;

namespace QuantTools.Torch.Tests;

public sealed class BridgeTests
{
    [Fact]
    public void DenseTensors_RoundTrip()
    {
        var x = new Tensor(DType.Float32, [2, 3], new float[] { 1, -2, 3.5f, float.NaN, 0, 7 });
        using var t = TorchBridge.ToTorch(x);
        Assert.Equal(new long[] { 2, 3 }, t.shape);
        var back = TorchBridge.FromTorch(t);
        Assert.Equal(x.AsBytes().ToArray(), back.AsBytes().ToArray());

        var i = new Tensor(DType.Int64, [4], new long[] { long.MinValue, -1, 0, long.MaxValue });
        using var ti = TorchBridge.ToTorch(i);
        Assert.Equal(i.AsBytes().ToArray(), TorchBridge.FromTorch(ti).AsBytes().ToArray());

        var e = new Tensor(DType.Float32, [0, 5], Array.Empty<float>());
        using var te = TorchBridge.ToTorch(e);
        Assert.Equal(new[] { 0, 5 }, TorchBridge.FromTorch(te).Shape);
    }

    [Fact]
    public void QuantizedTensors_RoundTrip_PerTensorAndPerChannel()
    {
        var q = new QTensor(new Tensor(DType.UInt8, [2, 3], new byte[] { 0, 1, 2, 128, 254, 255 }), QParams.PerTensor(0.25, 3, DType.QUInt8));
        using (var t = TorchBridge.ToTorch(q))
        {
            Assert.True(t.is_quantized());
            Assert.Equal(0.25, t.q_scale());
            Assert.Equal(3, t.q_zero_point());
            var back = TorchBridge.QFromTorch(t);
            Assert.Equal(q.IntRepr.AsBytes().ToArray(), back.IntRepr.AsBytes().ToArray());
            Assert.Equal(3, back.QParams.ZeroPoint);
            Assert.False(back.QParams.IsPerChannel);
        }

        var pc = new QTensor(new Tensor(DType.Int8, [3, 2], new sbyte[] { -128, 127, 0, 1, -1, 5 }),
            QParams.PerChannel([0.1, 0.2, 0.3], [0, -1, 2], 0, DType.QInt8));
        using (var t = TorchBridge.ToTorch(pc))
        {
            var back = TorchBridge.QFromTorch(t);
            Assert.True(back.QParams.IsPerChannel);
            Assert.Equal(0, back.QParams.Axis);
            Assert.Equal(pc.QParams.Scales, back.QParams.Scales);
            Assert.Equal(pc.QParams.ZeroPoints, back.QParams.ZeroPoints);
            Assert.Equal(pc.IntRepr.AsBytes().ToArray(), back.IntRepr.AsBytes().ToArray());
        }

        var q32 = new QTensor(new Tensor(DType.Int32, [3], new[] { int.MinValue, 0, int.MaxValue }), QParams.PerTensor(1e-3, -7, DType.QInt32));
        using (var t = TorchBridge.ToTorch(q32))
            Assert.Equal(q32.IntRepr.AsBytes().ToArray(), TorchBridge.QFromTorch(t).IntRepr.AsBytes().ToArray());
    }

    [Fact]
    public void CoreLevelHelpers_QuantizeAndDequantize()
    {
        var x = Tensor.FromArray([0f, 0.5f, -0.5f, 1000f], 4);
        var q = LibTorchReference.Quantize(x, QParams.PerTensor(0.5, 10, DType.QUInt8));
        Assert.Equal(new byte[] { 10, 11, 9, 255 }, q.IntRepr.AsSpan<byte>().ToArray());
        var y = LibTorchReference.Dequantize(q);
        Assert.Equal(new[] { 0f, 0.5f, -0.5f, 122.5f }, y.AsSpan<float>().ToArray());
    }

    [Fact]
    public void LibTorch_LoadsInProcess()
    {
        var elapsed = LibTorchReference.EnsureLoaded();
        Assert.True(elapsed >= TimeSpan.Zero);
        Assert.False(string.IsNullOrEmpty(LibTorchReference.Version));
    }
}
