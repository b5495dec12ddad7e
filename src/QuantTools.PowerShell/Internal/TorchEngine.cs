using System.Reflection;
using System.Runtime.InteropServices;
using QuantTools.Core;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;

namespace QuantTools.PowerShell.Internal;

/// <summary>
/// <c>-Engine libtorch</c>: loads QuantTools.Torch (TorchSharp + libtorch, in the module's bin/torch folder) into the
/// module's load context on first use, through reflection, so that the cmdlet assembly has no compile-time reference to
/// TorchSharp and importing the module never loads it. Every failure says why libtorch cannot be used.
/// </summary>
internal sealed class TorchEngine : IDisposable
{
    private const string TorchAssembly = "QuantTools.Torch";
    private const string NativeEntry = "libLibTorchSharp.so";

    private static readonly object Gate = new();
    private static Assembly? _assembly;

    private readonly object _model;
    private readonly Func<Tensor, bool, CancellationToken, ModelResult> _run;

    public string EngineName { get; }

    private TorchEngine(object model)
    {
        _model = model;
        var t = model.GetType();
        var run = t.GetMethod("Run", [typeof(Tensor), typeof(bool), typeof(CancellationToken)])
                  ?? throw Broken("LibTorchModel.Run(Tensor, bool, CancellationToken) is missing");
        _run = run.CreateDelegate<Func<Tensor, bool, CancellationToken, ModelResult>>(model);
        EngineName = (string?)t.GetProperty("EngineName")?.GetValue(model) ?? "libtorch";
    }

    /// <summary>Loads <paramref name="path"/> with torch.jit.load; libtorch runs forward on <paramref name="threads"/> threads.</summary>
    public static TorchEngine Load(string path, int threads)
    {
        var asm = EnsureAssembly();
        var type = asm.GetType("QuantTools.Torch.LibTorchModel") ?? throw Broken("type QuantTools.Torch.LibTorchModel not found");
        var load = type.GetMethod("Load", BindingFlags.Public | BindingFlags.Static, [typeof(string), typeof(int), typeof(string)])
                   ?? throw Broken("LibTorchModel.Load(string, int, string) is missing");
        try
        {
            return new TorchEngine(load.Invoke(null, [path, threads, null])!);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            // QuantToolsException from the Torch side (file, load errors) keeps its message; anything else says libtorch failed.
            if (e.InnerException is QuantToolsException) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
            throw new QuantToolsException(ErrorCode.NotSupported, "libtorch could not be started: " + e.InnerException.Message, path, e.InnerException);
        }
    }

    public ModelResult Run(Tensor input, bool captureLayers, CancellationToken cancel) => _run(input, captureLayers, cancel);

    public void Dispose() => (_model as IDisposable)?.Dispose();

    private static QuantToolsException Broken(string what) =>
        new(ErrorCode.NotSupported, $"the libtorch engine in {ModuleLoadContext.TorchFolder} is incomplete or from another build ({what}); rebuild the module (./build.ps1)");

    /// <summary>Loads QuantTools.Torch and libtorch once, or throws saying why it cannot.</summary>
    private static Assembly EnsureAssembly()
    {
        lock (Gate)
        {
            if (_assembly is not null) return _assembly;
            var dir = ModuleLoadContext.TorchFolder;
            if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
                throw new QuantToolsException(ErrorCode.NotSupported,
                    $"-Engine libtorch ships only libtorch's linux-x64 natives; this process is {RuntimeInformation.RuntimeIdentifier} " +
                    "(the other engines work everywhere)");
            var dll = Path.Combine(dir, TorchAssembly + ".dll");
            var native = Path.Combine(dir, NativeEntry);
            if (!File.Exists(dll) || !File.Exists(native))
                throw new QuantToolsException(ErrorCode.NotSupported,
                    $"-Engine libtorch is not installed: {(File.Exists(dll) ? native : dll)} is missing. The module build " +
                    "(./build.ps1, Invoke-QTBuild) puts QuantTools.Torch, TorchSharp and libtorch (about 450 MB) in module/bin/torch; " +
                    "the other engines do not need it");
            // Load the native entry point by full path first: its RUNPATH ($ORIGIN) pulls libtorch_cpu/libc10 from the same
            // folder, and a failure here carries the dynamic loader's own reason (e.g. a missing GLIBCXX version).
            if (!NativeLibrary.TryLoad(native, out _))
            {
                string reason;
                try { NativeLibrary.Load(native); reason = "unknown"; }
                catch (Exception e)
                {
                    // keep the dynamic loader's line, drop .NET's generic advice about strace / LD_DEBUG
                    reason = System.Text.RegularExpressions.Regex.Replace(e.Message, @"In order to help diagnose.*?environment variable:", " ",
                        System.Text.RegularExpressions.RegexOptions.Singleline);
                    reason = System.Text.RegularExpressions.Regex.Replace(reason, @"\s+", " ").Trim().TrimEnd('.');
                }
                throw new QuantToolsException(ErrorCode.NotSupported,
                    $"libtorch could not be loaded from {dir}: {reason}. On a libstdc++ older than GCC 13's the build must have " +
                    "marked GLIBCXX_3.4.32 weak in libLibTorchSharp.so (Invoke-QTBuild does; rebuild if the file was copied from elsewhere)");
            }
            ModuleLoadContext.Instance.EnableTorchFolder();
            try
            {
                _assembly = ModuleLoadContext.Instance.LoadFromAssemblyPath(dll);
            }
            catch (Exception e)
            {
                throw new QuantToolsException(ErrorCode.NotSupported, $"QuantTools.Torch could not be loaded from {dir}: {e.Message}", dll, e);
            }
            return _assembly;
        }
    }
}
