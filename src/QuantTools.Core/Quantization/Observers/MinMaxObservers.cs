using QuantTools.Core.Kernels;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Quantization.Observers;

/// <summary>
/// PyTorch's MinMaxObserver: running min/max of every batch (NaN propagates), per-tensor schemes only.
/// </summary>
public class MinMaxObserver : Observer
{
    public override string Name => "MinMaxObserver";
    protected float _min = float.PositiveInfinity, _max = float.NegativeInfinity;

    public override float[] MinVal => [_min];
    public override float[] MaxVal => [_max];

    public MinMaxObserver(ObserverOptions? options = null) : this(options ?? new ObserverOptions(), "MinMaxObserver") { }

    protected MinMaxObserver(ObserverOptions o, string cls) : base(CheckScheme(o, cls))
    {
        RefuseSymmetricReducedQUInt8();
    }

    private static ObserverOptions CheckScheme(ObserverOptions o, string cls)
    {
        ArgumentNullException.ThrowIfNull(o);
        RequirePerTensor(o, cls);
        if (cls == "MovingAverageMinMaxObserver" && o.IsDynamic && o.AveragingConstant != 1)
            throw new QuantToolsException(ErrorCode.NotSupported,
                $"MovingAverageMinMaxObserver doesn't support dynamic quantization for averaging constant of {o.AveragingConstant}");
        return o;
    }

    public override void Forward(Tensor x)
    {
        var v = AsFloat32(x);
        if (v.Length == 0) return;
        var (mn, mx) = MinMaxKernel.Compute(v);
        Update(mn, mx);
    }

    protected virtual void Update(float curMin, float curMax)
    {
        _min = QParamsMath.Minimum(curMin, _min);
        _max = QParamsMath.Maximum(curMax, _max);
    }

    public override QParams CalculateQParams() => CalculateFrom([_min], [_max], -1);

    public override void Reset()
    {
        _min = float.PositiveInfinity;
        _max = float.NegativeInfinity;
    }
}

/// <summary>
/// PyTorch's MovingAverageMinMaxObserver: the first batch sets min/max, later ones move them by
/// <c>m + c·(cur − m)</c> (three float32 ops, c = (float)averaging_constant).
/// </summary>
public sealed class MovingAverageMinMaxObserver : MinMaxObserver
{
    public override string Name => "MovingAverageMinMaxObserver";
    public double AveragingConstant { get; }
    private readonly float _c;

    public MovingAverageMinMaxObserver(ObserverOptions? options = null)
        : base(options ?? new ObserverOptions(), "MovingAverageMinMaxObserver")
    {
        AveragingConstant = (options ?? new ObserverOptions()).AveragingConstant;
        _c = (float)AveragingConstant;
    }

    protected override void Update(float curMin, float curMax)
    {
        if (float.IsPositiveInfinity(_min) && float.IsNegativeInfinity(_max))
        {
            _min = curMin;
            _max = curMax;
        }
        else
        {
            _min = _min + _c * (curMin - _min);
            _max = _max + _c * (curMax - _max);
        }
    }
}

/// <summary>
/// PyTorch's PerChannelMinMaxObserver: min/max per index of <c>ch_axis</c> over all other dims, running
/// element-wise min/max across batches.
/// </summary>
public class PerChannelMinMaxObserver : Observer
{
    public override string Name => "PerChannelMinMaxObserver";
    public int ChAxis { get; }
    protected float[] _min = [], _max = [];
    private int _axisUsed = -1;

    public override float[] MinVal => (float[])_min.Clone();
    public override float[] MaxVal => (float[])_max.Clone();

    /// <summary>Without options: PyTorch's defaults for this class (quint8, per_channel_affine, ch_axis 0).</summary>
    public PerChannelMinMaxObserver(ObserverOptions? options = null)
        : this(options ?? new ObserverOptions { QScheme = QScheme.PerChannelAffine }, "PerChannelMinMaxObserver") { }

    protected PerChannelMinMaxObserver(ObserverOptions o, string cls) : base(CheckScheme(o, cls))
    {
        ChAxis = o.ChAxis;
        RefuseSymmetricReducedQUInt8();
    }

    private static ObserverOptions CheckScheme(ObserverOptions o, string cls)
    {
        ArgumentNullException.ThrowIfNull(o);
        RequirePerChannel(o, cls);
        if (o.IsDynamic)
            throw new QuantToolsException(ErrorCode.NotSupported, $"{cls} doesn't support dynamic quantization");
        return o;
    }

    public override void Forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Length == 0) return;
        int rank = x.Rank;
        int ax = ChAxis < 0 ? ChAxis + rank : ChAxis;
        if (ax < 0 || ax >= rank)
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"ch_axis {ChAxis} is out of range for a tensor of rank {rank} (shape [{string.Join(", ", x.Shape)}])");
        var (mn, mx) = ChannelMinMax(AsFloat32(x), x.Shape, ax);
        if (_min.Length != 0 && _min.Length != mn.Length)
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"this batch has {mn.Length} channels along axis {ax} but earlier batches had {_min.Length}");
        _axisUsed = ax;
        Update(mn, mx);
    }

    protected virtual void Update(float[] curMin, float[] curMax)
    {
        if (_min.Length == 0)
        {
            _min = curMin;
            _max = curMax;
            return;
        }
        for (int c = 0; c < curMin.Length; c++)
        {
            _min[c] = QParamsMath.Minimum(curMin[c], _min[c]);
            _max[c] = QParamsMath.Maximum(curMax[c], _max[c]);
        }
    }

    /// <summary>aminmax over every dim but <paramref name="axis"/> (NaN propagates per channel).</summary>
    internal static (float[] Min, float[] Max) ChannelMinMax(ReadOnlySpan<float> x, int[] shape, int axis)
    {
        long outer = 1, inner = 1;
        for (int i = 0; i < axis; i++) outer *= shape[i];
        for (int i = axis + 1; i < shape.Length; i++) inner *= shape[i];
        int channels = shape[axis];
        var mn = new float[channels];
        var mx = new float[channels];
        Array.Fill(mn, float.PositiveInfinity);
        Array.Fill(mx, float.NegativeInfinity);
        if (inner >= 16)
        {
            int len = (int)inner;
            for (long o = 0; o < outer; o++)
                for (int c = 0; c < channels; c++)
                {
                    var (a, b) = MinMaxKernel.Compute(x.Slice((int)((o * channels + c) * inner), len));
                    mn[c] = Combine(mn[c], a, true);
                    mx[c] = Combine(mx[c], b, false);
                }
        }
        else
        {
            int idx = 0;
            for (long o = 0; o < outer; o++)
                for (int c = 0; c < channels; c++)
                {
                    float a = mn[c], b = mx[c];
                    for (long k = 0; k < inner; k++, idx++)
                    {
                        float v = x[idx];
                        if (float.IsNaN(v)) { a = float.NaN; b = float.NaN; }
                        else if (!float.IsNaN(a))
                        {
                            if (v < a) a = v;
                            if (v > b) b = v;
                        }
                    }
                    mn[c] = a;
                    mx[c] = b;
                }
        }
        return (mn, mx);
    }

    private static float Combine(float acc, float v, bool min)
    {
        if (float.IsNaN(acc) || float.IsNaN(v)) return float.NaN;
        return min ? (v < acc ? v : acc) : (v > acc ? v : acc);
    }

    public override QParams CalculateQParams() =>
        CalculateFrom((float[])_min.Clone(), (float[])_max.Clone(), _axisUsed >= 0 ? _axisUsed : Math.Max(ChAxis, 0));

    public override void Reset()
    {
        _min = [];
        _max = [];
    }
}

/// <summary>PyTorch's MovingAveragePerChannelMinMaxObserver: per-channel layout, moving-average update.</summary>
public sealed class MovingAveragePerChannelMinMaxObserver : PerChannelMinMaxObserver
{
    public override string Name => "MovingAveragePerChannelMinMaxObserver";
    public double AveragingConstant { get; }
    private readonly float _c;

    public MovingAveragePerChannelMinMaxObserver(ObserverOptions? options = null)
        : base(options ?? new ObserverOptions { QScheme = QScheme.PerChannelAffine }, "MovingAveragePerChannelMinMaxObserver")
    {
        AveragingConstant = (options ?? new ObserverOptions()).AveragingConstant;
        _c = (float)AveragingConstant;
    }

    protected override void Update(float[] curMin, float[] curMax)
    {
        if (_min.Length == 0)
        {
            _min = curMin;
            _max = curMax;
            return;
        }
        for (int c = 0; c < curMin.Length; c++)
        {
            _min[c] = _min[c] + _c * (curMin[c] - _min[c]);
            _max[c] = _max[c] + _c * (curMax[c] - _max[c]);
        }
    }
}
