using System.Management.Automation;

namespace QuantTools.PowerShell.Internal;

/// <summary>
/// Base for cmdlets that read files: -Path (wildcards, by value or property name) and -LiteralPath (alias PSPath,
/// by property name, so Get-ChildItem output pipes in), resolved by <see cref="InputFiles"/>.
/// </summary>
public abstract class QuantPathCmdlet : QuantCmdlet
{
    protected const string PathSet = "Path";
    protected const string LiteralPathSet = "LiteralPath";

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath")]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>The files (or folders) named by -Path or -LiteralPath; a missing one is a non-terminating error.</summary>
    protected IEnumerable<string> InputFiles() => ParameterSetName == LiteralPathSet
        ? ResolvePaths(LiteralPath, literal: true)
        : ResolvePaths(Path, literal: false);
}
