using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Formats;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>
/// Runs a quantized TorchScript model with QuantTools' integer kernels, exactly as the chosen PyTorch engine does.
/// Each piped tensor (or -InputObject, or each tensor of -InputPath files) is one batch. <c>-Engine libtorch</c> runs the
/// same file through libtorch in-process instead (QuantTools.Torch, loaded only then).
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "QuantModel", DefaultParameterSetName = PathSet)]
[OutputType(typeof(ModelResult))]
public sealed class InvokeQuantModelCommand : QuantCmdlet, IDisposable
{
    private const string PathSet = "Path";
    private const string ModelSet = "Model";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
    public string Path { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = ModelSet)]
    public QuantModel? Model { get; set; }

    [Parameter(ValueFromPipeline = true, Position = 1)]
    public object? InputObject { get; set; }

    /// <summary>For an eager state_dict: a YAML file listing the modules in forward order (see examples/architectures).</summary>
    [Parameter]
    public string? Architecture { get; set; }

    /// <summary>Tensor files (.npy, .npz, .safetensors): every tensor in them is one batch.</summary>
    [Parameter]
    public string[]? InputPath { get; set; }

    [Parameter]
    [ValidateSet("x86", "fbgemm", "qnnpack", "onednn", "fbgemm-avx2", "libtorch", IgnoreCase = true)]
    public string Engine { get; set; } = "x86";

    /// <summary>Keep every layer's quantized output with its qparams.</summary>
    [Parameter]
    public SwitchParameter CaptureLayers { get; set; }

    /// <summary>Write the output and captured layers: a .safetensors file, or a folder of .npy files named by layer.</summary>
    [Parameter]
    public string? OutputPath { get; set; }

    /// <summary>Threads the kernels may use (default: all cores).</summary>
    [Parameter]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = Environment.ProcessorCount;

    private ModelExecutor? _executor;
    private TorchEngine? _torch;
    private bool _warnedNoLayers;
    private int _batch;
    private ExecutionOptions? _executionOptions;

    protected override void BeginProcessing()
    {
        var file = ParameterSetName == ModelSet ? Model!.Source : GetUnresolvedProviderPathFromPSPath(Path);
        _executionOptions = new ExecutionOptions { MaxThreads = ThrottleLimit };
        if (IsLibTorch)
        {
            // PyTorch's own answer: the same TorchScript file through libtorch in-process (loaded on first use only).
            if (Architecture is not null)
                ThrowTerminatingError(new ErrorRecord(new ArgumentException("-Engine libtorch runs TorchScript files; -Architecture is for state_dicts run by QuantTools' own engines"),
                    "QuantTools.InvalidArgument", ErrorCategory.InvalidArgument, Architecture));
            _torch = OrThrow(file, () => TorchEngine.Load(file, ThrottleLimit));
        }
        else
        {
            var engine = QEngineInfo.Parse(Engine);
            var arch = Architecture is null ? null : GetUnresolvedProviderPathFromPSPath(Architecture);
            _executor = OrThrow(file, () => arch is null
                ? ModelExecutor.Load(file, engine)
                : new ModelExecutor(Core.Models.Graph.ArchitectureFrontEnd.Build(file, arch), engine));
        }
        if (InputPath is not null)
            foreach (var p in InputPath)
            {
                var resolved = GetUnresolvedProviderPathFromPSPath(p);
                TryItem(resolved, () =>
                {
                    foreach (var (name, t) in TensorFile.ReadAll(resolved)) RunOne(t, name);
                });
            }
    }

    protected override void ProcessRecord()
    {
        if (InputObject is null) return;
        TryItem(InputObject, () => RunOne(TensorArgument.ToTensor(InputObject), TensorArgument.NameOf(InputObject)));
    }

    private void RunOne(Tensor input, string? name)
    {
        Cancel.ThrowIfCancellationRequested();
        _batch++;
        WriteProgress(new ProgressRecord(2, "Invoke-QuantModel", $"batch {_batch}{(name is null ? "" : $" ({name})")}"));
        bool capture = CaptureLayers || OutputPath is not null;
        if (_torch is not null && CaptureLayers && !_warnedNoLayers)
        {
            _warnedNoLayers = true;
            WriteWarning("-Engine libtorch gives no per-layer capture: libtorch runs the TorchScript forward as one call and exposes " +
                         "no layer activations, so Layers stays empty (and -OutputPath holds only the output). Run the same input with " +
                         "-Engine x86 -CaptureLayers for every layer; its output equals libtorch's bit for bit where libtorch takes the same path.");
        }
        var result = _torch is not null ? _torch.Run(input, capture, Cancel) : _executor!.Run(input, capture, Cancel, _executionOptions);
        if (OutputPath is not null) Save(result, _batch);
        var ps = PSObject.AsPSObject(result);
        ps.Properties.Add(new PSNoteProperty("Batch", _batch));
        if (name is not null) ps.Properties.Add(new PSNoteProperty("InputName", name));
        ps.Properties.Add(new PSNoteProperty("Engine", _torch is not null ? "libtorch" : _executor!.Engine.TorchName()));
        if (_torch is not null) ps.Properties.Add(new PSNoteProperty("EngineDetail", _torch.EngineName));
        WriteObject(ps);
    }

    private void Save(ModelResult result, int batch)
    {
        var target = GetUnresolvedProviderPathFromPSPath(OutputPath!);
        var tensors = new List<(string, Tensor)> { ("output", result.Output) };
        var metadata = new Dictionary<string, string>();
        var named = new List<(string, Tensor)>();
        foreach (var l in result.Layers)
            if (target.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                named.AddRange(QTensorCodec.Encode(l.Name, l.Value, metadata));
            else
                named.Add((l.Name, l.Value.IntRepr));
        tensors.AddRange(named);
        if (target.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            if (batch > 1) target = System.IO.Path.ChangeExtension(target, null) + $".{batch}.safetensors";
            SafeTensorsFile.Write(target, tensors, metadata.Count > 0 ? metadata : null);
        }
        else
        {
            var dir = batch > 1 ? System.IO.Path.Combine(target, $"batch{batch}") : target;
            Directory.CreateDirectory(dir);
            foreach (var (n, t) in tensors)
                NpyFormat.Write(System.IO.Path.Combine(dir, n + ".npy"), t);
        }
    }

    /// <summary>
    /// PowerShell disposes the cmdlet after the pipeline, also when it was stopped or failed: frees libtorch's module.
    /// (The thread budget is this command's own, passed with each run, so there is nothing process-wide to restore.)
    /// </summary>
    public void Dispose()
    {
        _torch?.Dispose();
        _torch = null;
    }

    private bool IsLibTorch => string.Equals(Engine, "libtorch", StringComparison.OrdinalIgnoreCase);

    protected override void EndProcessing()
    {
        WriteProgress(new ProgressRecord(2, "Invoke-QuantModel", "done") { RecordType = ProgressRecordType.Completed });
    }

}
