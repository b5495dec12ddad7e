using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace QuantTools.PowerShell.Internal;

/// <summary>
/// Loads QuantTools.Core and its dependencies (YamlDotNet, ...) from the module's deps folder into a private
/// AssemblyLoadContext, so another module's older YamlDotNet in the session cannot break us, and ours cannot
/// break it (Microsoft's "resolving PowerShell module assembly dependency conflicts" pattern).
/// This class must not touch any type from QuantTools.Core.
/// </summary>
public sealed class ModuleLoadContext : AssemblyLoadContext
{
    private readonly string _dir;

    public static string DependencyFolder { get; } =
        Path.Combine(Path.GetDirectoryName(typeof(ModuleLoadContext).Assembly.Location)!, "deps");

    /// <summary>
    /// QuantTools.Torch, TorchSharp and the libtorch natives (linux-x64): probed only after something loads from it,
    /// which only <c>-Engine libtorch</c> does (see <see cref="TorchEngine"/>), so importing the module never touches it.
    /// </summary>
    public static string TorchFolder { get; } =
        Path.Combine(Path.GetDirectoryName(typeof(ModuleLoadContext).Assembly.Location)!, "torch");

    /// <summary>QuantTools.OnnxRuntime and ONNX Runtime's natives: probed only after <c>-Engine onnxruntime</c> loads from it.</summary>
    public static string OnnxRuntimeFolder { get; } =
        Path.Combine(Path.GetDirectoryName(typeof(ModuleLoadContext).Assembly.Location)!, "onnxruntime");

    private volatile bool _torchEnabled;
    private volatile bool _onnxRuntimeEnabled;

    /// <summary>Lets this context resolve assemblies and natives from <see cref="TorchFolder"/> too.</summary>
    internal void EnableTorchFolder() => _torchEnabled = true;

    /// <summary>Lets this context resolve assemblies and natives from <see cref="OnnxRuntimeFolder"/> too.</summary>
    internal void EnableOnnxRuntimeFolder() => _onnxRuntimeEnabled = true;

    public static ModuleLoadContext Instance { get; } = new(DependencyFolder);

    private ModuleLoadContext(string dir) : base("QuantTools", isCollectible: false) => _dir = dir;

    protected override Assembly? Load(AssemblyName name)
    {
        // Our own copy wins inside this context; anything we do not ship (System.*, PowerShell) comes from the default one.
        foreach (var dir in Folders())
        {
            var path = Path.Combine(dir, name.Name + ".dll");
            if (File.Exists(path)) return LoadFromAssemblyPath(path);
        }
        return null;
    }

    protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
    {
        // DllImport("LibTorchSharp") asks for the bare name: try it as given, then as lib<name>.so.
        foreach (var dir in Folders())
            foreach (var file in new[] { unmanagedDllName, "lib" + unmanagedDllName + ".so", unmanagedDllName + ".so" })
            {
                var path = Path.Combine(dir, file);
                if (File.Exists(path)) return LoadUnmanagedDllFromPath(path);
            }
        return IntPtr.Zero;
    }

    private IEnumerable<string> Folders()
    {
        yield return _dir;
        if (_torchEnabled) yield return TorchFolder;
        if (_onnxRuntimeEnabled) yield return OnnxRuntimeFolder;
    }
}

/// <summary>Runs on Import-Module: routes requests for QuantTools.* assemblies to <see cref="ModuleLoadContext"/>.</summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    public void OnImport() => AssemblyLoadContext.Default.Resolving += Resolve;

    public void OnRemove(PSModuleInfo psModuleInfo) => AssemblyLoadContext.Default.Resolving -= Resolve;

    private static Assembly? Resolve(AssemblyLoadContext context, AssemblyName name)
    {
        // Only our own engine assemblies are handed to the default context; their dependencies stay private.
        if (name.Name is null || !name.Name.StartsWith("QuantTools.", StringComparison.Ordinal)) return null;
        var path = Path.Combine(ModuleLoadContext.DependencyFolder, name.Name + ".dll");
        return File.Exists(path) ? ModuleLoadContext.Instance.LoadFromAssemblyName(name) : null;
    }
}
