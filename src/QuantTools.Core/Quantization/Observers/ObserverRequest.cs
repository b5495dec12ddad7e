using QuantTools.Core.Tensors;

namespace QuantTools.Core.Quantization.Observers;

/// <summary>
/// An observer asked for by name and arguments (Get-QParams, ConvertTo-Quantized), by engine default, or by a YAML/JSON
/// config: which of them wins, which combinations are refused, and which observer PyTorch would build for the rest.
/// </summary>
public sealed class ObserverRequest
{
    public const string ObserverNames = "MinMax, MovingAverageMinMax, PerChannelMinMax, MovingAveragePerChannelMinMax, Histogram, FixedQParams";

    public string? Observer;
    public string? Dtype;
    public string? QScheme;
    public bool ReduceRange;
    public long? QuantMin;
    public long? QuantMax;
    public int? Axis;
    public double? AveragingConstant;
    public int? Bins;
    public float? Eps;
    public string? Engine;
    public bool Weight;
    public double? Scale;
    public long? ZeroPoint;
    public string? ConfigPath;

    private bool AnyExplicit =>
        Observer is not null || Dtype is not null || QScheme is not null || ReduceRange || QuantMin.HasValue || QuantMax.HasValue ||
        Axis.HasValue || AveragingConstant.HasValue || Bins.HasValue || Eps.HasValue || Scale.HasValue || ZeroPoint.HasValue;

    /// <summary>Short name of what <see cref="Create"/> builds, for display.</summary>
    public string Describe(Observer o) => Engine is not null ? $"{o.Name} ({Engine} default {(Weight ? "weight" : "activation")})" : o.Name;

    public Observer Create()
    {
        if (ConfigPath is not null)
        {
            if (AnyExplicit || Engine is not null)
                throw new QuantToolsException(ErrorCode.InvalidArgument, "-ConfigPath describes the whole observer; do not combine it with other observer parameters");
            return ObserverConfig.Load(ConfigPath).Create();
        }
        if (Engine is not null)
        {
            if (AnyExplicit)
                throw new QuantToolsException(ErrorCode.InvalidArgument,
                    $"-Engine {Engine} selects that engine's default observer; drop -Engine to set observer arguments yourself");
            return ObserverFactory.ForEngine(Engine, Weight);
        }
        if (Weight)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "-Weight selects an engine's default weight observer and needs -Engine");
        var o = new ObserverOptions();
        if (Dtype is not null) o.Dtype = DTypeInfo.Parse(Dtype);
        if (QScheme is not null) o.QScheme = QSchemeInfo.Parse(QScheme);
        o.ReduceRange = ReduceRange;
        o.QuantMin = QuantMin;
        o.QuantMax = QuantMax;
        if (Axis is { } ax) o.ChAxis = ax;
        if (AveragingConstant is { } c) o.AveragingConstant = c;
        if (Bins is { } b) o.Bins = b;
        if (Eps is { } e) o.Eps = e;
        if (Scale is { } s) o.Scale = s;
        if (ZeroPoint is { } z) o.ZeroPoint = z;
        var name = Observer;
        if (name is null)
        {
            // Per-channel when a channel axis or a per-channel scheme is asked for; else PyTorch's plain MinMaxObserver.
            bool perChannel = Axis.HasValue || (QScheme is not null && o.QScheme.IsPerChannel());
            name = perChannel ? "PerChannelMinMax" : "MinMax";
            if (perChannel && QScheme is null) o.QScheme = Tensors.QScheme.PerChannelAffine;
        }
        return ObserverFactory.Create(name, o);
    }
}
