using QuantTools.Core.Tensors;

namespace QuantTools.Core.Quantization.Observers;

/// <summary>Creates observers by PyTorch class name or short name, and the default PTQ observers of each engine.</summary>
public static class ObserverFactory
{
    public static readonly IReadOnlyList<string> Names =
    [
        "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
        "MovingAveragePerChannelMinMaxObserver", "HistogramObserver", "FixedQParamsObserver",
    ];

    /// <summary>
    /// <paramref name="name"/>: a PyTorch class name (MinMaxObserver...) or its short form (MinMax, MovingAverageMinMax,
    /// PerChannelMinMax, MovingAveragePerChannelMinMax, Histogram, FixedQParams); case-insensitive, an optional
    /// <c>torch.ao.quantization.</c> / <c>observer.</c> prefix is accepted.
    /// </summary>
    public static Observer Create(string name, ObserverOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        var o = options ?? new ObserverOptions();
        var n = name.Trim();
        int dot = n.LastIndexOf('.');
        if (dot >= 0) n = n[(dot + 1)..];
        n = n.ToLowerInvariant();
        if (n.EndsWith("observer", StringComparison.Ordinal) && n.Length > "observer".Length) n = n[..^"observer".Length];
        return n switch
        {
            "minmax" => new MinMaxObserver(o),
            "movingaverageminmax" => new MovingAverageMinMaxObserver(o),
            "perchannelminmax" => new PerChannelMinMaxObserver(o),
            "movingaverageperchannelminmax" => new MovingAveragePerChannelMinMaxObserver(o),
            "histogram" => new HistogramObserver(o),
            "fixedqparams" => new FixedQParamsObserver(o),
            _ => throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"unknown observer '{name}'; expected one of {string.Join(", ", Names)} (or the name without 'Observer')"),
        };
    }

    /// <summary>
    /// The default PTQ observer of <c>torch.ao.quantization.get_default_qconfig(engine)</c>:
    /// x86/fbgemm: activation HistogramObserver(reduce_range=True), weight PerChannelMinMaxObserver(qint8, per_channel_symmetric);
    /// qnnpack: HistogramObserver(reduce_range=False), weight MinMaxObserver(qint8, per_tensor_symmetric);
    /// onednn: HistogramObserver(reduce_range=False), weight PerChannelMinMaxObserver(qint8, per_channel_symmetric).
    /// </summary>
    public static Observer ForEngine(string engine, bool weight)
    {
        ArgumentNullException.ThrowIfNull(engine);
        var e = engine.Trim().ToLowerInvariant();
        switch (e)
        {
            case "x86":
            case "fbgemm":
                return weight
                    ? new PerChannelMinMaxObserver(new ObserverOptions { Dtype = DType.QInt8, QScheme = QScheme.PerChannelSymmetric })
                    : new HistogramObserver(new ObserverOptions { ReduceRange = true });
            case "qnnpack":
                return weight
                    ? new MinMaxObserver(new ObserverOptions { Dtype = DType.QInt8, QScheme = QScheme.PerTensorSymmetric })
                    : new HistogramObserver(new ObserverOptions { ReduceRange = false });
            case "onednn":
                return weight
                    ? new PerChannelMinMaxObserver(new ObserverOptions { Dtype = DType.QInt8, QScheme = QScheme.PerChannelSymmetric })
                    : new HistogramObserver(new ObserverOptions { ReduceRange = false });
            default:
                throw new QuantToolsException(ErrorCode.InvalidArgument,
                    $"Backend: {engine} not supported. backend must be one of ['x86', 'fbgemm', 'qnnpack', 'onednn']");
        }
    }
}
