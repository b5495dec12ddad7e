using System.Management.Automation;
using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>
/// Computes qparams exactly as a PyTorch observer would: every piped tensor is one forward() batch, and one QParams
/// object comes out at the end (calculate_qparams()).
/// </summary>
[Cmdlet(VerbsCommon.Get, "QParams", DefaultParameterSetName = TensorSet)]
[OutputType(typeof(QParams))]
public sealed class GetQParamsCommand : QuantCmdlet
{
    private const string TensorSet = "Tensor";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = TensorSet)]
    public object? InputObject { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    [ValidateSet("MinMax", "MovingAverageMinMax", "PerChannelMinMax", "MovingAveragePerChannelMinMax", "Histogram", "FixedQParams",
        "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver",
        "HistogramObserver", "FixedQParamsObserver", IgnoreCase = true)]
    public string? Observer { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    [ValidateSet("quint8", "qint8", "qint32", "quint4x2", "quint2x4", IgnoreCase = true)]
    public string? Dtype { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    [ValidateSet("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric",
        "per_channel_affine_float_qparams", IgnoreCase = true)]
    public string? QScheme { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    public SwitchParameter ReduceRange { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    public long? QuantMin { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    public long? QuantMax { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    [Alias("ChAxis")]
    public int? Axis { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    public double? AveragingConstant { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    [ValidateRange(1, 1 << 20)]
    public int? Bins { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    public float? Eps { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    [ValidateSet("x86", "fbgemm", "qnnpack", "onednn", IgnoreCase = true)]
    public string? Engine { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    public SwitchParameter Weight { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    public double? Scale { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    public long? ZeroPoint { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    public string? ConfigPath { get; set; }

    private Observer? _observer;
    private ObserverChoice? _choice;
    private int _batches;

    protected override void BeginProcessing()
    {
        _choice = new ObserverChoice
        {
            Observer = Observer, Dtype = Dtype, QScheme = QScheme, ReduceRange = ReduceRange, QuantMin = QuantMin,
            QuantMax = QuantMax, Axis = Axis, AveragingConstant = AveragingConstant, Bins = Bins, Eps = Eps,
            Engine = Engine, Weight = Weight, Scale = Scale, ZeroPoint = ZeroPoint,
            ConfigPath = ConfigPath is null ? null : GetUnresolvedProviderPathFromPSPath(ConfigPath),
        };
        _observer = OrThrow(ConfigPath, () => _choice.Create());
    }

    protected override void ProcessRecord()
    {
        Cancel.ThrowIfCancellationRequested();
        TryItem(InputObject, () =>
        {
            var t = TensorArgument.ToTensor(InputObject);
            _observer!.Forward(t);
            _batches++;
        });
    }

    protected override void EndProcessing()
    {
        var qp = OrThrow<QParams>(null, () => _observer!.CalculateQParams());
        var ps = PSObject.AsPSObject(qp);
        ps.Properties.Add(new PSNoteProperty("Observer", _choice!.Describe(_observer!)));
        ps.Properties.Add(new PSNoteProperty("Batches", _batches));
        ps.Properties.Add(new PSNoteProperty("MinVal", _observer!.MinVal));
        ps.Properties.Add(new PSNoteProperty("MaxVal", _observer!.MaxVal));
        WriteObject(ps);
    }
}
