using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Quantization;
using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>
/// Quantizes tensors exactly as torch.quantize_per_tensor / quantize_per_channel (or, with -FakeQuantize,
/// torch.fake_quantize_per_tensor_affine / _per_channel_affine), from explicit qparams, a QParams object, or an observer
/// calibrated on each tensor.
/// </summary>
[Cmdlet(VerbsData.ConvertTo, "Quantized", DefaultParameterSetName = ExplicitSet)]
[OutputType(typeof(QTensor), typeof(Tensor))]
public sealed class ConvertToQuantizedCommand : QuantCmdlet
{
    private const string ExplicitSet = "Explicit";
    private const string QParamsSet = "QParams";
    private const string ObserverSet = "Observer";
    private const string EngineSet = "Engine";
    private const string ConfigSet = "Config";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    public object? InputObject { get; set; }

    /// <summary>Scale, or one scale per channel along -Axis.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = ExplicitSet)]
    public double[] Scale { get; set; } = [];

    [Parameter(Position = 2, ParameterSetName = ExplicitSet)]
    public double[]? ZeroPoint { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = QParamsSet)]
    public QParams? QParams { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = ObserverSet)]
    [ValidateSet("MinMax", "MovingAverageMinMax", "PerChannelMinMax", "MovingAveragePerChannelMinMax", "Histogram", "FixedQParams",
        "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver",
        "HistogramObserver", "FixedQParamsObserver", IgnoreCase = true)]
    public string? Observer { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = EngineSet)]
    [ValidateSet("x86", "fbgemm", "qnnpack", "onednn", IgnoreCase = true)]
    public string? Engine { get; set; }

    [Parameter(ParameterSetName = EngineSet)]
    public SwitchParameter Weight { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = ConfigSet)]
    public string? ConfigPath { get; set; }

    [Parameter(ParameterSetName = ExplicitSet)]
    [Parameter(ParameterSetName = ObserverSet)]
    [ValidateSet("quint8", "qint8", "qint32", "quint4x2", "quint2x4", IgnoreCase = true)]
    public string? Dtype { get; set; }

    [Parameter(ParameterSetName = ExplicitSet)]
    [Parameter(ParameterSetName = ObserverSet)]
    [ValidateSet("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric",
        "per_channel_affine_float_qparams", IgnoreCase = true)]
    public string? QScheme { get; set; }

    [Parameter(ParameterSetName = ExplicitSet)]
    [Parameter(ParameterSetName = ObserverSet)]
    [Alias("ChAxis")]
    public int? Axis { get; set; }

    [Parameter(ParameterSetName = ExplicitSet)]
    [Parameter(ParameterSetName = ObserverSet)]
    public long? QuantMin { get; set; }

    [Parameter(ParameterSetName = ExplicitSet)]
    [Parameter(ParameterSetName = ObserverSet)]
    public long? QuantMax { get; set; }

    [Parameter(ParameterSetName = ObserverSet)]
    public SwitchParameter ReduceRange { get; set; }

    [Parameter(ParameterSetName = ObserverSet)]
    public double? AveragingConstant { get; set; }

    [Parameter(ParameterSetName = ObserverSet)]
    [ValidateRange(1, 1 << 20)]
    public int? Bins { get; set; }

    [Parameter(ParameterSetName = ObserverSet)]
    public float? Eps { get; set; }

    /// <summary>Return the float result of quantize-then-dequantize (fake quant, QAT's forward) instead of a QTensor.</summary>
    [Parameter]
    public SwitchParameter FakeQuantize { get; set; }

    protected override void ProcessRecord()
    {
        Cancel.ThrowIfCancellationRequested();
        TryItem(InputObject, () =>
        {
            var x = TensorArgument.ToTensor(InputObject);
            var qp = QParamsFor(x);
            object result = FakeQuantize ? Quantizer.FakeQuantize(x, qp) : Quantizer.Quantize(x, qp);
            var name = TensorArgument.NameOf(InputObject);
            WriteObject(name is null ? result : TensorArgument.WithName(result, name));
        });
    }

    private QParams QParamsFor(Tensor x)
    {
        switch (ParameterSetName)
        {
            case QParamsSet:
                return QParams!;
            case ExplicitSet:
                return ExplicitQParams.Create(Scale, ZeroPoint, Dtype, QScheme, Axis, QuantMin, QuantMax);
            default:
            {
                var choice = new ObserverRequest
                {
                    Observer = Observer, Engine = Engine, Weight = Weight,
                    ConfigPath = ConfigPath is null ? null : GetUnresolvedProviderPathFromPSPath(ConfigPath),
                    Dtype = Dtype, QScheme = QScheme, Axis = Axis, QuantMin = QuantMin, QuantMax = QuantMax,
                    ReduceRange = ReduceRange, AveragingConstant = AveragingConstant, Bins = Bins, Eps = Eps,
                };
                var obs = choice.Create();
                obs.Forward(x);
                var qp = obs.CalculateQParams();
                foreach (var w in obs.Warnings) WriteWarning($"{obs.Name}: {w}");
                return qp;
            }
        }
    }
}
