using QuantTools.Core.Tensors;

namespace QuantTools.Core.Quantization.Observers;

/// <summary>Constructor arguments of PyTorch's observers (defaults as in torch.ao.quantization.observer).</summary>
public sealed class ObserverOptions
{
    public DType Dtype { get; set; } = DType.QUInt8;
    public QScheme QScheme { get; set; } = QScheme.PerTensorAffine;
    public bool ReduceRange { get; set; }
    public long? QuantMin { get; set; }
    public long? QuantMax { get; set; }
    /// <summary>torch.finfo(torch.float32).eps = 2^-23 (stored by PyTorch as a float32 buffer).</summary>
    public float Eps { get; set; } = 1.1920929e-07f;
    public int ChAxis { get; set; }
    /// <summary>Python float; PyTorch multiplies it into float32 tensors, i.e. uses (float)AveragingConstant.</summary>
    public double AveragingConstant { get; set; } = 0.01;
    public int Bins { get; set; } = 2048;
    /// <summary>FixedQParamsObserver only.</summary>
    public double? Scale { get; set; }
    /// <summary>FixedQParamsObserver only.</summary>
    public long? ZeroPoint { get; set; }
    /// <summary>PyTorch's is_dynamic flag (only MovingAverage observers with averaging constant 1 accept it).</summary>
    public bool IsDynamic { get; set; }

    public ObserverOptions Clone() => (ObserverOptions)MemberwiseClone();
}

/// <summary>
/// Base of the PyTorch observers: feed batches with <see cref="Forward"/>, then read <see cref="CalculateQParams"/>.
/// </summary>
public abstract class Observer
{
    /// <summary>PyTorch class name, e.g. MinMaxObserver.</summary>
    public abstract string Name { get; }
    public DType Dtype { get; }
    public QScheme QScheme { get; }
    public bool ReduceRange { get; }
    public long QuantMin { get; protected set; }
    public long QuantMax { get; protected set; }
    public float Eps { get; }
    /// <summary>True when both quant_min and quant_max were given (PyTorch's has_customized_qrange).</summary>
    public bool HasCustomRange { get; }

    /// <summary>Running minimum (one element per tensor, one per channel, empty before the first per-channel batch).</summary>
    public abstract float[] MinVal { get; }
    public abstract float[] MaxVal { get; }

    /// <summary>Observes one batch (float32; other dense dtypes are converted to float32 first). Empty tensors are ignored.</summary>
    public abstract void Forward(Tensor x);

    public abstract QParams CalculateQParams();

    /// <summary>Forgets everything observed (PyTorch's reset_min_max_vals / a fresh observer).</summary>
    public abstract void Reset();

    /// <summary>Convenience: observe a float32 vector.</summary>
    public void Forward(float[] x) => Forward(Tensor.FromArray(x, x.Length));

    /// <summary>Uniform-observer constructor checks, in PyTorch's order (class-specific scheme checks come first, in the subclass).</summary>
    protected Observer(ObserverOptions o, bool validateUniform = true)
    {
        ArgumentNullException.ThrowIfNull(o);
        Dtype = o.Dtype;
        QScheme = o.QScheme;
        ReduceRange = o.ReduceRange;
        Eps = o.Eps;
        if (!validateUniform)
        {
            QuantMin = o.QuantMin ?? 0;
            QuantMax = o.QuantMax ?? 255;
            return;
        }
        if (!QParamsMath.IsObserverDType(o.Dtype))
            throw new QuantToolsException(ErrorCode.InvalidQParams,
                $"Default Observer only works for (qint8, quint8, quint4x2, qint32, int8, uint8, int16, int32, float8_e5m2, float8_e4m3fn) data type, got {o.Dtype.TorchName()}");
        if (o.Dtype == DType.Int16)
            throw new QuantToolsException(ErrorCode.NotSupported,
                "int16 observers are accepted by PyTorch but QuantTools has no quantized int16 dtype to carry their qparams");
        HasCustomRange = o.QuantMin.HasValue && o.QuantMax.HasValue;
        (QuantMin, QuantMax) = QParamsMath.QuantRange(o.Dtype, o.ReduceRange, o.QuantMin, o.QuantMax);
    }

    protected static void RequirePerTensor(ObserverOptions o, string cls)
    {
        if (o.QScheme.IsPerChannel())
            throw new QuantToolsException(ErrorCode.NotSupported,
                $"{cls}'s qscheme only support torch.per_tensor_symmetric and torch.per_tensor_affine. (got {o.QScheme.TorchName()})");
    }

    protected static void RequirePerChannel(ObserverOptions o, string cls)
    {
        if (!o.QScheme.IsPerChannel())
            throw new QuantToolsException(ErrorCode.NotSupported,
                $"{cls}'s qscheme only support torch.per_channel_symmetric, torch.per_channel_affine and torch.per_channel_affine_float_qparams. (got {o.QScheme.TorchName()})");
    }

    /// <summary>MinMax / PerChannel observers (and their moving-average subclasses) refuse this combination.</summary>
    protected void RefuseSymmetricReducedQUInt8()
    {
        if (QScheme.IsSymmetric() && ReduceRange && Dtype == DType.QUInt8)
            throw new QuantToolsException(ErrorCode.NotSupported,
                "Cannot reduce range for symmetric quantization for quint8");
    }

    private readonly List<string> _warnings = new();

    /// <summary>
    /// What PyTorch's observer would <c>warnings.warn</c> for the data seen so far (each text once, in order): ignored
    /// ±Inf inputs (HistogramObserver), qparams asked for before any finite data, an infinite observed range.
    /// </summary>
    public IReadOnlyList<string> Warnings => _warnings;

    protected void Warn(string text)
    {
        if (!_warnings.Contains(text)) _warnings.Add(text);
    }

    /// <summary>
    /// calculate_qparams from running min/max, with PyTorch's outcomes for data that is not finite (stated in
    /// Get-QParams' help): nothing observed gives the defaults (scale 1, zero point 0) and a warning; NaN is an error
    /// (PyTorch's check_min_max_valid asserts min &lt;= max, which NaN fails); ±Inf gives the scale the formula gives
    /// (Infinity), with a warning.
    /// </summary>
    protected QParams CalculateFrom(float[] minVal, float[] maxVal, int axis)
    {
        bool unobserved = minVal.Length == 0 || minVal.Length == 1 && float.IsPositiveInfinity(minVal[0]) && float.IsNegativeInfinity(maxVal[0]);
        if (unobserved)
            Warn("must run observer before calling calculate_qparams. Returning default values (no finite data was observed).");
        else
        {
            int nan = Enumerable.Range(0, minVal.Length).FirstOrDefault(i => float.IsNaN(minVal[i]) || float.IsNaN(maxVal[i]), -1);
            if (nan >= 0)
                throw new QuantToolsException(ErrorCode.InvalidQParams,
                    $"the observed data contains NaN{(minVal.Length > 1 ? $" (channel {nan})" : "")}, so the running min/max are NaN: " +
                    $"PyTorch's {Name}.calculate_qparams refuses them (AssertionError: min nan should be less than max nan); remove NaN from the input first");
            if (minVal.Any(float.IsInfinity) || maxVal.Any(float.IsInfinity))
                Warn($"the observed range is infinite (min {minVal.Min()}, max {maxVal.Max()}): the scale is Infinity, as PyTorch computes it, " +
                     "so every finite value quantizes to the zero point; clip or remove the ±Inf inputs first");
        }
        return QParamsMath.Calculate(minVal, maxVal, Dtype, QScheme, QuantMin, QuantMax, Eps, axis, HasCustomRange);
    }

    /// <summary>x.to(float32) as a span (no copy for float32 tensors).</summary>
    protected static ReadOnlySpan<float> AsFloat32(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return x.ToFloat32().AsSpan<float>();
    }

    public override string ToString() =>
        $"{Name}(dtype={Dtype.TorchName()}, qscheme={QScheme.TorchName()}, quant_min={QuantMin}, quant_max={QuantMax})";
}
