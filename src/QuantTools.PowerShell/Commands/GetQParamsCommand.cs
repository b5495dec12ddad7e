using System.Management.Automation;
using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Onnx;
using QuantTools.Core.Quantization.Ort;
using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>
/// Computes qparams exactly as a PyTorch observer would: every piped tensor is one forward() batch, and one QParams
/// object comes out at the end (calculate_qparams()). With -Path or -Model: one row per layer of a quantized model
/// (.onnx files: one row per kernel ONNX Runtime runs, with its float32 multipliers). -Observer Ort* runs ONNX
/// Runtime's calibrators (MinMax, Entropy, Percentile, Distribution) with their arguments.
/// </summary>
[Cmdlet(VerbsCommon.Get, "QParams", DefaultParameterSetName = TensorSet)]
[OutputType(typeof(QParams), typeof(LayerQParams))]
public sealed class GetQParamsCommand : QuantCmdlet
{
    private const string TensorSet = "Tensor";
    private const string PathSet = "Path";
    private const string ModelSet = "Model";

    /// <summary>Checkpoint files: one row per layer.</summary>
    [Parameter(Mandatory = true, ParameterSetName = PathSet)]
    [SupportsWildcards]
    public string[] Path { get; set; } = [];

    /// <summary>A model from Import-QuantModel: one row per layer.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ModelSet)]
    public QuantModel? Model { get; set; }

    /// <summary>For a state_dict: the architecture (forward order, wiring) that gives each layer its exact input.</summary>
    [Parameter(ParameterSetName = PathSet)]
    public string? Architecture { get; set; }

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = TensorSet)]
    public object? InputObject { get; set; }

    [Parameter(ParameterSetName = TensorSet)]
    [ValidateSet("MinMax", "MovingAverageMinMax", "PerChannelMinMax", "MovingAveragePerChannelMinMax", "Histogram", "FixedQParams",
        "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver",
        "HistogramObserver", "FixedQParamsObserver", "OrtMinMax", "OrtEntropy", "OrtPercentile", "OrtDistribution", IgnoreCase = true)]
    public string? Observer { get; set; }

    /// <summary>ORT histogram calibrators: num_bins (default 128 entropy, 2048 percentile / distribution).</summary>
    [Parameter(ParameterSetName = TensorSet)]
    [ValidateRange(1, 1 << 24)]
    public int? NumBins { get; set; }

    /// <summary>OrtEntropy: num_quantized_bins (default 128).</summary>
    [Parameter(ParameterSetName = TensorSet)]
    [ValidateRange(1, 1 << 24)]
    public int? NumQuantizedBins { get; set; }

    /// <summary>OrtPercentile: percentile (default 99.999).</summary>
    [Parameter(ParameterSetName = TensorSet)]
    [ValidateRange(0.0, 100.0)]
    public double? Percentile { get; set; }

    /// <summary>ORT calibrators: symmetric range (CalibTensorRangeSymmetric); OrtPercentile defaults to on, -Symmetric:$false turns it off.</summary>
    [Parameter(ParameterSetName = TensorSet)]
    public SwitchParameter Symmetric { get; set; }

    /// <summary>ORT calibrators: symmetric qparams (quantize_static's ActivationSymmetric).</summary>
    [Parameter(ParameterSetName = TensorSet)]
    public SwitchParameter ActivationSymmetric { get; set; }

    /// <summary>OrtMinMax: moving_average (mean of the per-batch minima and maxima).</summary>
    [Parameter(ParameterSetName = TensorSet)]
    public SwitchParameter MovingAverage { get; set; }

    /// <summary>ORT histogram calibrators: every piped tensor is its own collect() call (ORT merges histograms) instead of one call over all.</summary>
    [Parameter(ParameterSetName = TensorSet)]
    public SwitchParameter CollectPerBatch { get; set; }

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
    private ObserverRequest? _choice;
    private int _batches;

    private bool _sawModel;

    private void WriteOnnxRows(string file)
    {
        foreach (var row in OnnxModelInfo.Rows(OnnxReader.Load(file)))
        {
            var ps = PSObject.AsPSObject(row);
            ps.Properties.Add(new PSNoteProperty("Model", System.IO.Path.GetFileName(file)));
            WriteObject(ps);
        }
    }

    private bool IsOrt => Observer?.StartsWith("Ort", StringComparison.OrdinalIgnoreCase) == true;

    /// <summary>-Observer Ort*: ONNX Runtime's calibrator with ORT's arguments; PyTorch-only arguments are refused.</summary>
    private Observer CreateOrt()
    {
        var bound = MyInvocation.BoundParameters;
        foreach (var p in new[] { "QScheme", "QuantMin", "QuantMax", "Axis", "Bins", "Eps", "Engine", "Weight", "Scale", "ZeroPoint", "ConfigPath" })
            if (bound.ContainsKey(p))
                throw new Core.QuantToolsException(Core.ErrorCode.InvalidArgument,
                    $"-{p} is a PyTorch observer argument; ONNX Runtime's calibrators take -Dtype, -ReduceRange, -Symmetric, -ActivationSymmetric, -MovingAverage, -AveragingConstant, -NumBins, -NumQuantizedBins, -Percentile and -CollectPerBatch");
        var o = new OrtCalibrationOptions
        {
            Dtype = Dtype is null ? Core.Tensors.DType.QUInt8 : Core.Tensors.DTypeInfo.Parse(Dtype),
            Symmetric = bound.ContainsKey(nameof(Symmetric)) ? Symmetric.IsPresent : null,
            ActivationSymmetric = ActivationSymmetric,
            ReduceRange = ReduceRange,
            MovingAverage = MovingAverage,
            NumBins = NumBins,
            CollectPerBatch = CollectPerBatch,
        };
        if (AveragingConstant is { } c) o.AveragingConstant = c;
        if (NumQuantizedBins is { } q) o.NumQuantizedBins = q;
        if (Percentile is { } pc) o.Percentile = pc;
        var method = OrtCalibrationMethodInfo.Parse(Observer![3..]);
        return method == OrtCalibrationMethod.MinMax ? new OrtMinMaxObserver(o) : new OrtHistogramObserver(method, o);
    }

    private void WriteRows(QuantModel model)
    {
        var rows = LayerQParams.For(model);
        if (LayerQParams.UnknownInputsReason(rows, model) is { } why) WriteWarning(why);
        if (model.GraphError is { } ge)
            WriteWarning($"{System.IO.Path.GetFileName(model.Source)}: the forward code could not be read ({ge}); input qparams follow the module order");
        foreach (var row in rows)
        {
            var ps = PSObject.AsPSObject(row);
            ps.Properties.Add(new PSNoteProperty("Model", System.IO.Path.GetFileName(model.Source)));
            WriteObject(ps);
        }
    }

    protected override void BeginProcessing()
    {
        if (ParameterSetName == PathSet)
        {
            foreach (var file in ResolvePaths(Path, literal: false))
            {
                var arch = Architecture is null ? null : ResolveArchitecture(Architecture);
                TryItem(file, () =>
                {
                    if (file.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) WriteOnnxRows(file);
                    else WriteRows(ModelLoader.Load(file, arch));
                });
            }
            return;
        }
        if (ParameterSetName == ModelSet)
        {
            WriteRows(Model!);
            return;
        }
        if (IsOrt)
        {
            _observer = OrThrow(null, CreateOrt);
            return;
        }
        foreach (var p in new[] { nameof(NumBins), nameof(NumQuantizedBins), nameof(Percentile), nameof(Symmetric), nameof(ActivationSymmetric), nameof(MovingAverage), nameof(CollectPerBatch) })
            if (MyInvocation.BoundParameters.ContainsKey(p))
                ThrowTerminatingError(new ErrorRecord(new ArgumentException($"-{p} is an argument of ONNX Runtime's calibrators (-Observer OrtMinMax, OrtEntropy, OrtPercentile, OrtDistribution)"),
                    "QuantTools.InvalidArgument", ErrorCategory.InvalidArgument, p));
        _choice = new ObserverRequest
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
        if (ParameterSetName != TensorSet) return;
        Cancel.ThrowIfCancellationRequested();
        if (InputObject is not null && TensorArgument.Unwrap(InputObject) is QuantModel piped)
        {
            _sawModel = true;
            WriteRows(piped);
            return;
        }
        // a batch the observer refuses (NaN) ends the command: no qparams come out of a partial calibration
        OrThrow<object?>(InputObject, () =>
        {
            var t = TensorArgument.ToTensor(InputObject);
            _observer!.Forward(t);
            _batches++;
            return null;
        });
    }

    protected override void EndProcessing()
    {
        if (ParameterSetName != TensorSet || (_sawModel && _batches == 0)) return;
        var qp = OrThrow<QParams>(null, () => _observer!.CalculateQParams());
        foreach (var w in _observer!.Warnings) WriteWarning($"{_observer.Name}: {w}");
        var ps = PSObject.AsPSObject(qp);
        ps.Properties.Add(new PSNoteProperty("Observer", _choice is null ? _observer!.Name : _choice.Describe(_observer!)));
        ps.Properties.Add(new PSNoteProperty("Batches", _batches));
        ps.Properties.Add(new PSNoteProperty("MinVal", _observer!.MinVal));
        ps.Properties.Add(new PSNoteProperty("MaxVal", _observer!.MaxVal));
        WriteObject(ps);
    }
}
