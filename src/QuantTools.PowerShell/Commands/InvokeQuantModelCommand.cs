using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Formats;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Onnx;
using QuantTools.Core.Tensors;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>
/// Runs a quantized TorchScript model with QuantTools' integer kernels, exactly as the chosen PyTorch engine does.
/// Each piped tensor (or -InputObject, or each tensor of -InputPath files) is one batch. <c>-Engine libtorch</c> runs the
/// same file through libtorch in-process instead (QuantTools.Torch, loaded only then). A .onnx file runs with ONNX
/// Runtime 1.30's CPU arithmetic (<c>-Engine ort</c>, the default for .onnx) or through ONNX Runtime itself in-process
/// (<c>-Engine onnxruntime</c>, QuantTools.OnnxRuntime, loaded only then).
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
    [ValidateSet("x86", "fbgemm", "qnnpack", "onednn", "fbgemm-avx2", "libtorch", "ort", "onnxruntime", IgnoreCase = true)]
    public string Engine { get; set; } = "x86";

    /// <summary>
    /// The CPU class whose PyTorch to reproduce: avx512-vnni (default, the golden data's host), avx2, or host (this
    /// machine's). Decides where x86 sends convs, FBGEMM's / oneDNN's int16 pair saturation and ATen's vector widths.
    /// </summary>
    [Parameter]
    [ValidateSet("avx512-vnni", "avx2", "host", IgnoreCase = true)]
    public string CpuClass { get; set; } = "avx512-vnni";

    /// <summary>.onnx with -Engine ort: the graph as written (ORT_DISABLE_ALL) instead of after ORT's default fusions.</summary>
    [Parameter]
    public SwitchParameter NoGraphOptimization { get; set; }

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
    private OnnxExecutor? _onnx;
    private OnnxRuntimeEngine? _ort;
    private TorchEngine? _torch;
    private bool _warnedNoLayers;
    private int _batch;
    private ExecutionOptions? _executionOptions;

    protected override void BeginProcessing()
    {
        var file = ParameterSetName == ModelSet ? Model!.Source : GetUnresolvedProviderPathFromPSPath(Path);
        _executionOptions = new ExecutionOptions { MaxThreads = ThrottleLimit };
        bool isOnnx = file.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);
        bool engineGiven = MyInvocation.BoundParameters.ContainsKey(nameof(Engine));
        if (isOnnx || IsOnnxEngine)
        {
            if (!isOnnx)
                ThrowTerminatingError(new ErrorRecord(new ArgumentException($"-Engine {Engine} runs .onnx files; {System.IO.Path.GetFileName(file)} is not one"),
                    "QuantTools.InvalidArgument", ErrorCategory.InvalidArgument, file));
            if (engineGiven && !IsOnnxEngine)
                ThrowTerminatingError(new ErrorRecord(new ArgumentException($"-Engine {Engine} is a PyTorch engine; .onnx files run with -Engine ort (ONNX Runtime's arithmetic) or onnxruntime (ONNX Runtime in-process)"),
                    "QuantTools.InvalidArgument", ErrorCategory.InvalidArgument, Engine));
            if (Architecture is not null)
                ThrowTerminatingError(new ErrorRecord(new ArgumentException("-Architecture is for state_dicts; an .onnx file holds its graph"),
                    "QuantTools.InvalidArgument", ErrorCategory.InvalidArgument, Architecture));
            var model = OrThrow(file, () => Core.Formats.Onnx.OnnxReader.Load(file));
            _onnxBatchOne = model.Graph.Inputs.Count > 0 && model.Graph.Inputs[0].Shape is { Length: > 1 } s0 && s0[0] == 1;
            if (string.Equals(Engine, "onnxruntime", StringComparison.OrdinalIgnoreCase))
                _ort = OrThrow(file, () => OnnxRuntimeEngine.Load(file, ThrottleLimit, !NoGraphOptimization));
            else
                _onnx = OrThrow(file, () => new OnnxExecutor(model, NoGraphOptimization ? OrtOptimization.None : OrtOptimization.Default));
        }
        else if (IsLibTorch)
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
            var cpu = CpuClasses.Parse(CpuClass);
            var arch = Architecture is null ? null : ResolveArchitecture(Architecture);
            _executor = OrThrow(file, () => new ModelExecutor(ModelLoader.LoadGraph(file, arch), engine, cpu));
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

    private bool _onnxBatchOne;

    private void RunOne(Tensor input, string? name)
    {
        // an ONNX model exported for batch 1: each row of a larger batch is one run (one result each), as ORT needs
        if (_onnxBatchOne && input.Rank > 1 && input.Shape[0] > 1)
        {
            for (int r = 0; r < input.Shape[0]; r++) RunOneBatch(Row(input, r), $"{name ?? "input"}[{r}]");
            return;
        }
        RunOneBatch(input, name);
    }

    private static Tensor Row(Tensor x, int r)
    {
        int per = x.Length / x.Shape[0];
        var shape = (int[])x.Shape.Clone();
        shape[0] = 1;
        var data = Array.CreateInstance(x.Data.GetType().GetElementType()!, per);
        Array.Copy(x.Data, r * per, data, 0, per);
        return new Tensor(x.DType, shape, data);
    }

    private void RunOneBatch(Tensor input, string? name)
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
        ModelResult result;
        if (_torch is not null) result = _torch.Run(input, capture, Cancel);
        else if (_onnx is not null)
        {
            using var budget = Parallelism.Limit(ThrottleLimit);
            result = _onnx.Run(input, capture, Cancel);
        }
        else if (_ort is not null) result = _ort.Run(input, capture, Cancel);
        else result = _executor!.Run(input, capture, Cancel, _executionOptions);
        if (OutputPath is not null) Save(result, _batch);
        var ps = PSObject.AsPSObject(result);
        ps.Properties.Add(new PSNoteProperty("Batch", _batch));
        if (name is not null) ps.Properties.Add(new PSNoteProperty("InputName", name));
        ps.Properties.Add(new PSNoteProperty("Engine", _torch is not null ? "libtorch" : _onnx is not null ? "ort" : _ort is not null ? "onnxruntime" : _executor!.Engine.TorchName()));
        if (_executor is not null) ps.Properties.Add(new PSNoteProperty("CpuClass", _executor.Cpu.Name()));
        else if (_torch is not null) ps.Properties.Add(new PSNoteProperty("CpuClass", Core.Kernels.CpuClasses.Host.Name()));
        if (_torch is not null) ps.Properties.Add(new PSNoteProperty("EngineDetail", _torch.EngineName));
        if (_ort is not null) ps.Properties.Add(new PSNoteProperty("EngineDetail", _ort.EngineName));
        if (_onnx is not null && _onnx.FloatApproximations.Count > 0 && _batch == 1)
            WriteWarning($"{_onnx.FloatApproximations.Count} node(s) run in float32 without MLAS's exact summation order, so their outputs may differ from ONNX Runtime in the last bits: " +
                         string.Join("; ", _onnx.FloatApproximations.Take(5)));
        WriteObject(ps);
    }

    private void Save(ModelResult result, int batch) =>
        ModelRunFiles.Write(GetUnresolvedProviderPathFromPSPath(OutputPath!), result, batch);

    /// <summary>
    /// PowerShell disposes the cmdlet after the pipeline, also when it was stopped or failed: frees libtorch's module.
    /// (The thread budget is this command's own, passed with each run, so there is nothing process-wide to restore.)
    /// </summary>
    public void Dispose()
    {
        _torch?.Dispose();
        _torch = null;
        _ort?.Dispose();
        _ort = null;
    }

    private bool IsLibTorch => string.Equals(Engine, "libtorch", StringComparison.OrdinalIgnoreCase);
    private bool IsOnnxEngine => Engine.Equals("ort", StringComparison.OrdinalIgnoreCase) || Engine.Equals("onnxruntime", StringComparison.OrdinalIgnoreCase);

    protected override void EndProcessing()
    {
        WriteProgress(new ProgressRecord(2, "Invoke-QuantModel", "done") { RecordType = ProgressRecordType.Completed });
    }

}
