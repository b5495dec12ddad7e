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

    public static ModuleLoadContext Instance { get; } = new(DependencyFolder);

    private ModuleLoadContext(string dir) : base("QuantTools", isCollectible: false) => _dir = dir;

    protected override Assembly? Load(AssemblyName name)
    {
        var path = Path.Combine(_dir, name.Name + ".dll");
        // Our own copy wins inside this context; anything we do not ship (System.*, PowerShell) comes from the default one.
        return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
    }

    protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
    {
        var path = Path.Combine(_dir, unmanagedDllName);
        return File.Exists(path) ? LoadUnmanagedDllFromPath(path) : IntPtr.Zero;
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
