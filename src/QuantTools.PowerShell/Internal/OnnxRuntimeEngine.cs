using System.Reflection;
using System.Runtime.InteropServices;
using QuantTools.Core;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;

namespace QuantTools.PowerShell.Internal;

/// <summary>
/// <c>-Engine onnxruntime</c>: loads QuantTools.OnnxRuntime (Microsoft.ML.OnnxRuntime and its natives, in the module's
/// bin/onnxruntime folder) into the module's load context on first use, through reflection, so that importing the module
/// never loads ONNX Runtime. Every failure says why ONNX Runtime cannot be used.
/// </summary>
internal sealed class OnnxRuntimeEngine : IDisposable
{
    private const string AssemblyName = "QuantTools.OnnxRuntime";
    private const string NativeEntry = "libonnxruntime.so";
    private static readonly object Gate = new();
    private static Assembly? _assembly;

    private readonly object _model;
    private readonly Func<Tensor, bool, CancellationToken, ModelResult> _run;
    public string EngineName { get; }

    private OnnxRuntimeEngine(object model)
    {
        _model = model;
        var t = model.GetType();
        var run = t.GetMethod("Run", [typeof(Tensor), typeof(bool), typeof(CancellationToken)])
                  ?? throw Broken("OrtSessionModel.Run(Tensor, bool, CancellationToken) is missing");
        _run = run.CreateDelegate<Func<Tensor, bool, CancellationToken, ModelResult>>(model);
        EngineName = (string?)t.GetProperty("EngineName")?.GetValue(model) ?? "onnxruntime";
    }

    public static OnnxRuntimeEngine Load(string path, int threads, bool optimize)
    {
        var asm = EnsureAssembly();
        var type = asm.GetType("QuantTools.OnnxRuntime.OrtSessionModel") ?? throw Broken("type QuantTools.OnnxRuntime.OrtSessionModel not found");
        var load = type.GetMethod("Load", BindingFlags.Public | BindingFlags.Static, [typeof(string), typeof(int), typeof(bool)])
                   ?? throw Broken("OrtSessionModel.Load(string, int, bool) is missing");
        try
        {
            return new OnnxRuntimeEngine(load.Invoke(null, [path, threads, optimize])!);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            if (e.InnerException is QuantToolsException) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
            throw new QuantToolsException(ErrorCode.NotSupported, "ONNX Runtime could not be started: " + e.InnerException.Message, path, e.InnerException);
        }
    }

    public ModelResult Run(Tensor input, bool captureLayers, CancellationToken cancel) => _run(input, captureLayers, cancel);

    public void Dispose() => (_model as IDisposable)?.Dispose();

    private static QuantToolsException Broken(string what) =>
        new(ErrorCode.NotSupported, $"the ONNX Runtime engine in {ModuleLoadContext.OnnxRuntimeFolder} is incomplete or from another build ({what}); rebuild the module (./build.ps1)");

    private static Assembly EnsureAssembly()
    {
        lock (Gate)
        {
            if (_assembly is not null) return _assembly;
            var dir = ModuleLoadContext.OnnxRuntimeFolder;
            if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
                throw new QuantToolsException(ErrorCode.NotSupported,
                    $"-Engine onnxruntime ships ONNX Runtime's linux-x64 natives only; this process is {RuntimeInformation.RuntimeIdentifier} (-Engine ort works everywhere)");
            var dll = Path.Combine(dir, AssemblyName + ".dll");
            var native = Path.Combine(dir, NativeEntry);
            if (!File.Exists(dll) || !File.Exists(native))
                throw new QuantToolsException(ErrorCode.NotSupported,
                    $"-Engine onnxruntime is not installed: {(File.Exists(dll) ? native : dll)} is missing. The module build (./build.ps1) puts " +
                    "QuantTools.OnnxRuntime and ONNX Runtime 1.30 (about 25 MB) in module/bin/onnxruntime; -Engine ort does not need it");
            if (!NativeLibrary.TryLoad(native, out _))
                throw new QuantToolsException(ErrorCode.NotSupported, $"ONNX Runtime's native library could not be loaded from {native}");
            ModuleLoadContext.Instance.EnableOnnxRuntimeFolder();
            try
            {
                _assembly = ModuleLoadContext.Instance.LoadFromAssemblyPath(dll);
            }
            catch (Exception e)
            {
                throw new QuantToolsException(ErrorCode.NotSupported, $"QuantTools.OnnxRuntime could not be loaded from {dir}: {e.Message}", dll, e);
            }
            return _assembly;
        }
    }
}
