using QuantTools.Core;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using CoreTensor = QuantTools.Core.Tensors.Tensor;
using TorchTensor = TorchSharp.torch.Tensor;

namespace QuantTools.Torch;

/// <summary>
/// A TorchScript file run by libtorch itself, in-process (<c>torch.jit.load</c> + <c>forward</c>): PyTorch's own
/// answer for any input, as a second opinion next to <see cref="ModelExecutor"/>. Results have the same shape as
/// the executor's (<see cref="ModelResult"/>), except that libtorch runs the forward as one call and exposes no
/// per-layer activations, so <see cref="ModelResult.Layers"/> is always empty.
/// Signatures use only BCL and QuantTools.Core types, so callers (the cmdlet, through reflection) need not reference
/// TorchSharp.
/// </summary>
public sealed class LibTorchModel : IDisposable
{
    private readonly jit.ScriptModule _module;
    private readonly object _gate = new();

    /// <summary>The TorchScript file.</summary>
    public string Source { get; }

    /// <summary>libtorch's intra-op threads for <see cref="Run"/> (<c>torch.set_num_threads</c>).</summary>
    public int Threads { get; }

    /// <summary>The quantized engine that was current when the file was loaded (it prepacks the weights): e.g. <c>x86</c>.</summary>
    public string QEngine { get; }

    /// <summary>What the result objects report as their engine, e.g. <c>libtorch 2.10.0 (x86)</c>.</summary>
    public string EngineName => $"libtorch {LibTorchReference.Version} ({QEngine})";

    /// <summary>False: libtorch gives no per-layer capture (see the class remarks).</summary>
    public static bool CapturesLayers => false;

    private LibTorchModel(string path, jit.ScriptModule module, int threads, string qengine)
    {
        Source = path;
        _module = module;
        Threads = threads;
        QEngine = qengine;
    }

    /// <summary>
    /// Loads <paramref name="path"/> with <c>torch.jit.load</c> on the CPU. <paramref name="qengine"/> (x86, fbgemm,
    /// onednn, qnnpack) is set first when given, since loading prepacks the quantized weights for the current engine;
    /// null keeps libtorch's default (x86 on x86-64).
    /// </summary>
    public static LibTorchModel Load(string path, int threads, string? qengine = null)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "at least one thread");
        if (!File.Exists(path)) throw new QuantToolsException(ErrorCode.InvalidArgument, "file not found", path);
        LibTorchReference.EnsureLoaded();
        if (qengine is not null) LibTorchReference.QEngine = qengine;
        torch.set_grad_enabled(false);
        jit.ScriptModule m;
        try
        {
            m = torch.jit.load(path, DeviceType.CPU);
        }
        catch (Exception e)
        {
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                "libtorch's torch.jit.load failed (the -Engine libtorch path needs a TorchScript archive made by torch.jit.save): " + FirstLine(e.Message), path, e);
        }
        m.eval();
        return new LibTorchModel(path, m, threads, LibTorchReference.QEngine);
    }

    /// <summary>
    /// Runs <c>forward</c> on one batch. The output tensors come back as Core tensors: quantized ones as
    /// <see cref="QTensor"/> with their qparams, float ones as <see cref="CoreTensor"/>; tuples and lists are flattened
    /// in order. <paramref name="captureLayers"/> is accepted for symmetry with <see cref="ModelExecutor.Run(CoreTensor, bool, CancellationToken)"/>
    /// and ignored: libtorch exposes no per-layer activations. Cancellation is checked before the call (libtorch's
    /// forward is not interruptible).
    /// </summary>
    public ModelResult Run(CoreTensor input, bool captureLayers = false, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        cancel.ThrowIfCancellationRequested();
        lock (_gate)
        {
            // set_num_threads is per OS thread for OpenMP: set it on the thread that runs forward.
            if (torch.get_num_threads() != Threads) torch.set_num_threads(Threads);
            using var noGrad = torch.no_grad();
            using var scope = torch.NewDisposeScope();
            var x = TorchBridge.ToTorch(input.DType == DType.Float32 ? input : input.ToFloat32());
            object? y;
            try
            {
                y = _module.forward(x);
            }
            catch (Exception e)
            {
                throw new QuantToolsException(ErrorCode.InvalidArgument,
                    $"libtorch forward failed on input {input.DType.TorchName()}[{string.Join(", ", input.Shape)}]: {FirstLine(e.Message)}", Source, e);
            }
            var outputs = new List<object>();
            Collect(y, outputs);
            if (outputs.Count == 0)
                throw new QuantToolsException(ErrorCode.InvalidArgument, $"libtorch forward returned no tensor ({y?.GetType().Name ?? "None"})", Source);
            return new ModelResult { Outputs = outputs };
        }
    }

    private void Collect(object? y, List<object> into)
    {
        switch (y)
        {
            case TorchTensor t:
                into.Add(t.is_quantized() ? TorchBridge.QFromTorch(t) : TorchBridge.FromTorch(t));
                break;
            case System.Collections.IEnumerable items and not string:
                foreach (var i in items) Collect(i, into);
                break;
            case null:
                throw new QuantToolsException(ErrorCode.InvalidArgument, "libtorch forward returned None", Source);
            default:
                throw new QuantToolsException(ErrorCode.NotSupported, $"libtorch forward returned a {y.GetType().Name}; only tensors, tuples and lists of tensors are converted", Source);
        }
    }

    private static string FirstLine(string s)
    {
        var lines = s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        // TorchScript errors put the useful line first and a C++ backtrace after it.
        return lines.Length == 0 ? s : string.Join(" ", lines.TakeWhile(l => !l.StartsWith("Exception raised from", StringComparison.Ordinal)).Take(6));
    }

    public void Dispose() => _module.Dispose();
}
