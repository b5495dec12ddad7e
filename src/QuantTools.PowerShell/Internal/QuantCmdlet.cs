using System.Management.Automation;
using QuantTools.Core;

namespace QuantTools.PowerShell.Internal;

/// <summary>Base for QuantTools cmdlets: maps Core's QuantToolsException to ErrorRecords with stable ids.</summary>
public abstract class QuantCmdlet : PSCmdlet
{
    private CancellationTokenSource? _cts;

    /// <summary>Cancelled when the user presses Ctrl+C (StopProcessing).</summary>
    protected CancellationToken Cancel => (_cts ??= new CancellationTokenSource()).Token;

    protected override void StopProcessing() => _cts?.Cancel();

    internal static ErrorRecord ToErrorRecord(QuantToolsException e, object? target) =>
        new(e, "QuantTools." + e.Code, CategoryOf(e.Code), target ?? e.Target);

    internal static ErrorCategory CategoryOf(ErrorCode code) => code switch
    {
        ErrorCode.InvalidArgument or ErrorCode.InvalidQParams => ErrorCategory.InvalidArgument,
        ErrorCode.ShapeMismatch => ErrorCategory.InvalidData,
        ErrorCode.UnsupportedDType or ErrorCode.UnsupportedFormat or ErrorCode.UnsupportedOperator or ErrorCode.NotSupported
            => ErrorCategory.NotImplemented,
        ErrorCode.CorruptFile => ErrorCategory.InvalidData,
        ErrorCode.IoError => ErrorCategory.ReadError,
        _ => ErrorCategory.NotSpecified,
    };

    /// <summary>Runs one item's work; a QuantToolsException becomes a non-terminating error so the pipeline goes on.</summary>
    protected bool TryItem(object? target, Action work)
    {
        try
        {
            work();
            return true;
        }
        catch (QuantToolsException e)
        {
            WriteError(ToErrorRecord(e, target));
            return false;
        }
    }

    /// <summary>Same, but the error ends the command (for failures that leave nothing sensible to do).</summary>
    protected T OrThrow<T>(object? target, Func<T> work)
    {
        try
        {
            return work();
        }
        catch (QuantToolsException e)
        {
            ThrowTerminatingError(ToErrorRecord(e, target));
            throw; // unreachable
        }
    }

    /// <summary>
    /// An -Architecture argument: a file path (resolved like any path), or a built-in name such as
    /// <c>torchvision:mobilenet_v2</c> (a <c>scheme:name</c> whose scheme is no PowerShell drive), passed on as is.
    /// </summary>
    protected string ResolveArchitecture(string architecture)
    {
        var m = System.Text.RegularExpressions.Regex.Match(architecture, @"^(?<scheme>[A-Za-z][A-Za-z0-9_]+):(?![\\/])");
        if (m.Success && !SessionState.Drive.GetAll().Any(d => string.Equals(d.Name, m.Groups["scheme"].Value, StringComparison.OrdinalIgnoreCase)))
            return architecture;
        return GetUnresolvedProviderPathFromPSPath(architecture);
    }

    /// <summary>Resolves -Path (wildcards) / -LiteralPath to provider paths; a missing path is a non-terminating error.</summary>
    protected IEnumerable<string> ResolvePaths(string[]? paths, bool literal)
    {
        if (paths is null) yield break;
        foreach (var p in paths)
        {
            List<string> resolved = new();
            try
            {
                if (literal)
                    resolved.Add(GetUnresolvedProviderPathFromPSPath(p));
                else
                    resolved.AddRange(GetResolvedProviderPathFromPSPath(p, out _));
            }
            catch (ItemNotFoundException e)
            {
                WriteError(new ErrorRecord(e, "QuantTools.PathNotFound", ErrorCategory.ObjectNotFound, p));
                continue;
            }
            foreach (var r in resolved)
            {
                if (literal && !File.Exists(r) && !Directory.Exists(r))
                {
                    WriteError(new ErrorRecord(new FileNotFoundException($"'{r}' does not exist", r),
                        "QuantTools.PathNotFound", ErrorCategory.ObjectNotFound, p));
                    continue;
                }
                yield return r;
            }
        }
    }
}
