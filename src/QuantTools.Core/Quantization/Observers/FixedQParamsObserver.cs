using QuantTools.Core.Tensors;

namespace QuantTools.Core.Quantization.Observers;

/// <summary>
/// PyTorch's FixedQParamsObserver: forward is the identity, qparams are the fixed ones given at construction
/// (scale stored as float32, zero point as int32; quant range defaults to 0..255).
/// </summary>
public sealed class FixedQParamsObserver : Observer
{
    public override string Name => "FixedQParamsObserver";
    private readonly float _scale;
    private readonly int _zeroPoint;

    public override float[] MinVal => [];
    public override float[] MaxVal => [];

    public FixedQParamsObserver(ObserverOptions options) : base(Check(options), validateUniform: false)
    {
        _scale = (float)options.Scale!.Value;
        _zeroPoint = checked((int)options.ZeroPoint!.Value);
        if (!options.Dtype.IsQuantized() && options.Dtype is not (DType.Int8 or DType.UInt8 or DType.Int32))
            throw new QuantToolsException(ErrorCode.NotSupported,
                $"FixedQParamsObserver with dtype {options.Dtype.TorchName()} cannot produce qparams");
    }

    /// <summary>PyTorch's default_fixed_qparams_range_0to1_observer: scale 1/256, zero point 0, quint8 0..255.</summary>
    public static FixedQParamsObserver Range0To1() =>
        new(new ObserverOptions { Scale = 1.0 / 256.0, ZeroPoint = 0, Dtype = DType.QUInt8, QuantMin = 0, QuantMax = 255 });

    /// <summary>PyTorch's default_fixed_qparams_range_neg1to1_observer: scale 2/256, zero point 128, quint8 0..255.</summary>
    public static FixedQParamsObserver RangeNeg1To1() =>
        new(new ObserverOptions { Scale = 2.0 / 256.0, ZeroPoint = 128, Dtype = DType.QUInt8, QuantMin = 0, QuantMax = 255 });

    private static ObserverOptions Check(ObserverOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (o.IsDynamic)
            throw new QuantToolsException(ErrorCode.NotSupported, "FixedQParamsObserver doesn't support dynamic quantization");
        if (o.Scale is null || o.ZeroPoint is null)
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                "FixedQParamsObserver needs a scale and a zero point (ObserverOptions.Scale and ZeroPoint)");
        return o;
    }

    public override void Forward(Tensor x) => ArgumentNullException.ThrowIfNull(x);

    public override QParams CalculateQParams() =>
        new(QScheme.IsPerChannel() ? QScheme.PerTensorAffine : QScheme, QParamsMath.QParamsDType(Dtype),
            [_scale], [_zeroPoint], -1, null, QuantMin, QuantMax);

    public override void Reset() { }
}
