using System.Diagnostics;
using QuantTools.Core;
using QuantTools.Core.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using CoreTensor = QuantTools.Core.Tensors.Tensor;
using TorchTensor = TorchSharp.torch.Tensor;

namespace QuantTools.Torch;

/// <summary>
/// Conversions between QuantTools.Core tensors and TorchSharp (libtorch) tensors. The first call loads
/// libtorch (about half a second); see <see cref="LibTorchReference.EnsureLoaded"/>.
/// Returned TorchSharp tensors are owned by the caller (dispose them, or use a dispose scope).
/// </summary>
public static class TorchBridge
{
    public static ScalarType ToScalarType(DType d) => d switch
    {
        DType.Float32 => ScalarType.Float32,
        DType.Float64 => ScalarType.Float64,
        DType.Float16 => ScalarType.Float16,
        DType.BFloat16 => ScalarType.BFloat16,
        DType.Int8 => ScalarType.Int8,
        DType.UInt8 => ScalarType.Byte,
        DType.Int16 => ScalarType.Int16,
        DType.Int32 => ScalarType.Int32,
        DType.Int64 => ScalarType.Int64,
        DType.Bool => ScalarType.Bool,
        DType.QUInt8 => ScalarType.QUInt8,
        DType.QInt8 => ScalarType.QInt8,
        DType.QInt32 => ScalarType.QInt32,
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{d.TorchName()} has no TorchSharp counterpart here"),
    };

    public static DType FromScalarType(ScalarType s) => s switch
    {
        ScalarType.Float32 => DType.Float32,
        ScalarType.Float64 => DType.Float64,
        ScalarType.Float16 => DType.Float16,
        ScalarType.BFloat16 => DType.BFloat16,
        ScalarType.Int8 => DType.Int8,
        ScalarType.Byte => DType.UInt8,
        ScalarType.Int16 => DType.Int16,
        ScalarType.Int32 => DType.Int32,
        ScalarType.Int64 => DType.Int64,
        ScalarType.Bool => DType.Bool,
        ScalarType.QUInt8 => DType.QUInt8,
        ScalarType.QInt8 => DType.QInt8,
        ScalarType.QInt32 => DType.QInt32,
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"TorchSharp dtype {s} is not supported"),
    };

    private static long[] Dims(int[] shape) => Array.ConvertAll(shape, d => (long)d);

    private static int[] Shape(TorchTensor t) => Array.ConvertAll(t.shape, d => checked((int)d));

    /// <summary>A dense Core tensor as a new contiguous libtorch tensor (the data is copied).</summary>
    public static TorchTensor ToTorch(CoreTensor x)
    {
        LibTorchReference.EnsureLoaded();
        var t = torch.empty(Dims(x.Shape), ToScalarType(x.DType));
        if (x.Length > 0) t.bytes = x.AsBytes().ToArray();
        return t;
    }

    /// <summary>A dense libtorch tensor as a Core tensor (copied; made contiguous first).</summary>
    public static CoreTensor FromTorch(TorchTensor t)
    {
        if (t.is_quantized())
            throw new QuantToolsException(ErrorCode.InvalidArgument, "a quantized libtorch tensor converts with QFromTorch");
        using var c = t.contiguous();
        var dtype = FromScalarType(c.dtype);
        var shape = Shape(c);
        return CoreTensor.CheckedNumel(shape) == 0 ? CoreTensor.Zeros(dtype, shape) : CoreTensor.FromBytes(dtype, shape, c.bytes);
    }

    /// <summary>
    /// A Core quantized tensor as a libtorch quantized tensor with the same integers and qparams: libtorch
    /// quantizes zeros with the qparams, then its integer storage is overwritten with <see cref="QTensor.IntRepr"/>.
    /// </summary>
    public static TorchTensor ToTorch(QTensor q)
    {
        LibTorchReference.EnsureLoaded();
        var qp = q.QParams;
        if (qp.QScheme == QScheme.PerChannelAffineFloatQParams)
            throw new QuantToolsException(ErrorCode.NotSupported, "per_channel_affine_float_qparams tensors are not converted to libtorch");
        using var scope = torch.NewDisposeScope();
        var zeros = torch.zeros(Dims(q.Shape), ScalarType.Float32);
        TorchTensor t;
        if (qp.IsPerChannel)
        {
            var s = torch.tensor(qp.Scales, ScalarType.Float64);
            var z = torch.tensor(qp.ZeroPoints, ScalarType.Int64);
            t = torch.quantize_per_channel(zeros, s, z, qp.Axis, ToScalarType(qp.DType));
        }
        else
            t = torch.quantize_per_tensor(zeros, qp.Scale, qp.ZeroPoint, ToScalarType(qp.DType));
        if (q.Length > 0) t.bytes = q.IntRepr.AsBytes().ToArray();
        return t.MoveToOuterDisposeScope();
    }

    /// <summary>A libtorch quantized tensor (per-tensor or per-channel affine) as a Core <see cref="QTensor"/>.</summary>
    public static QTensor QFromTorch(TorchTensor t)
    {
        if (!t.is_quantized())
            throw new QuantToolsException(ErrorCode.InvalidArgument, "the libtorch tensor is not quantized");
        var dtype = FromScalarType(t.dtype);
        using var scope = torch.NewDisposeScope();
        var intRepr = FromTorch(t.int_repr());
        QParams qp;
        if (IsPerTensor(t))
            qp = QParams.PerTensor(t.q_scale(), t.q_zero_point(), dtype);
        else
        {
            var scales = t.q_per_channel_scales().to_type(ScalarType.Float64).data<double>().ToArray();
            var zps = t.q_per_channel_zero_points().to_type(ScalarType.Int64).data<long>().ToArray();
            qp = QParams.PerChannel(scales, zps, checked((int)t.q_per_channel_axis()), dtype);
        }
        return new QTensor(intRepr, qp);
    }

    // TorchSharp 0.107 does not bind Tensor.qscheme(); q_per_channel_axis() fails on per-tensor tensors.
    private static bool IsPerTensor(TorchTensor t)
    {
        try { t.q_per_channel_axis(); return false; }
        catch (Exception) { return true; }
    }
}
