using System.Collections;
using System.Management.Automation;
using QuantTools.Core;
using QuantTools.Core.Compare;
using QuantTools.Core.Tensors;
using QuantTools.PowerShell.Internal;

namespace QuantTools.PowerShell.Commands;

/// <summary>
/// Compares a Reference run with a Difference run layer by layer (or two tensors): SQNR, MSE, absolute errors,
/// cosine, LSB metrics, top-k agreement, the first layer past -MinSqnr / -MaxLsb, and a likely cause per failing layer.
/// </summary>
[Cmdlet(VerbsData.Compare, "QuantOutput")]
[OutputType(typeof(ComparisonResult), typeof(ComparisonSummary))]
public sealed class CompareQuantOutputCommand : QuantCmdlet
{
    [Parameter(Mandatory = true, Position = 0)]
    public object? Reference { get; set; }

    [Parameter(Mandatory = true, Position = 1, ValueFromPipeline = true)]
    public object? Difference { get; set; }

    [Parameter]
    public IDictionary? LayerMap { get; set; }

    [Parameter]
    public double? MinSqnr { get; set; }

    [Parameter]
    [ValidateRange(0, long.MaxValue)]
    public long? MaxLsb { get; set; }

    [Parameter]
    [ValidateRange(1, 100000)]
    public int? TopK { get; set; }

    [Parameter]
    public IDictionary? FloatInput { get; set; }

    [Parameter]
    public int? ChannelAxis { get; set; }

    /// <summary>Compare only this batch element of every layer (a golden model JSON records element 0).</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? BatchIndex { get; set; }

    [Parameter]
    public SwitchParameter Summary { get; set; }

    [Parameter]
    public string? Report { get; set; }

    private readonly List<object?> _difference = new();

    protected override void ProcessRecord() => _difference.Add(Difference);

    protected override void EndProcessing()
    {
        var floatInputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var reference = OrThrow(Reference, () => Resolve(Reference, floatInputs));
        object? difInput = _difference.Count == 1 ? _difference[0] : _difference.ToArray();
        var difference = OrThrow(difInput, () => Resolve(difInput, null));
        if (FloatInput is not null)
            foreach (DictionaryEntry e in FloatInput)
                floatInputs[e.Key.ToString()!] = OrThrow(e.Key, () => TensorArgument.ToTensor(e.Value));
        var options = new CompareOptions
        {
            MinSqnr = MinSqnr, MaxLsb = MaxLsb, TopK = TopK, ChannelAxis = ChannelAxis, FloatInputs = floatInputs, BatchIndex = BatchIndex,
            LayerMap = LayerMap?.Cast<DictionaryEntry>().Select(e => new KeyValuePair<string, string>(e.Key.ToString()!, e.Value?.ToString() ?? "")).ToList(),
        };
        ComparisonSummary summary;
        if (reference.Count == 1 && difference.Count == 1)
        {
            // two tensors: compare them whatever their names
            var name = reference[0].Name;
            summary = OrThrow(name, () => QuantComparer.Compare([reference[0]], [(name, difference[0].Value)], options,
                e => WriteError(ToErrorRecord(e, e.Target))));
        }
        else
            summary = OrThrow<ComparisonSummary>(null, () => QuantComparer.Compare(reference, difference, options,
                e => WriteError(ToErrorRecord(e, e.Target))));
        if (summary.UnmatchedReference.Count > 0)
            WriteWarning($"no Difference layer for {summary.UnmatchedReference.Count} Reference layer(s): {string.Join(", ", summary.UnmatchedReference.Take(10))}");
        if (summary.UnmatchedDifference.Count > 0)
            WriteWarning($"no Reference layer for {summary.UnmatchedDifference.Count} Difference layer(s): {string.Join(", ", summary.UnmatchedDifference.Take(10))}");
        if (summary.Alignment.Contains("Position"))
            WriteVerbose("some layers were matched by position; use -LayerMap to pair them by name");
        if (Report is not null)
        {
            var path = GetUnresolvedProviderPathFromPSPath(Report);
            OrThrow(path, () => { ComparisonReport.Write(path, summary); return 0; });
        }
        if (Summary) WriteObject(summary);
        else foreach (var r in summary.Results) WriteObject(r);
    }

    /// <summary>Tensors, quantized tensors, dictionaries, model results (a Layers property), paths of dumps, or lists of those.</summary>
    private List<(string Name, object Value)> Resolve(object? input, Dictionary<string, Tensor>? floatInputs)
    {
        if (input is null) throw new QuantToolsException(ErrorCode.InvalidArgument, "input is null");
        var ps = input as PSObject;
        var o = ps?.BaseObject ?? input;
        switch (o)
        {
            case Tensor or QTensor:
                return [(TensorArgument.NameOf(input) ?? "output", o)];
            case string s:
                return FromPath(GetUnresolvedProviderPathFromPSPath(s), floatInputs);
            case FileSystemInfo fi:
                return FromPath(fi.FullName, floatInputs);
            case LayerSet set:
                return Take(set, floatInputs);
            case IDictionary d:
            {
                var list = new List<(string, object)>();
                foreach (DictionaryEntry e in d) list.Add((e.Key.ToString()!, Value(e.Value, e.Key.ToString()!)));
                return list;
            }
        }
        var layers = PSObject.AsPSObject(input).Properties["Layers"];
        if (layers is not null && layers.Value is not null) return Resolve(layers.Value, floatInputs);
        if (o is IEnumerable en && o is not string)
        {
            var items = en.Cast<object?>().ToList();
            if (items.Count > 0 && items.All(i => Unwrap(i) is Tensor or QTensor))
                return items.Select((i, k) => (TensorArgument.NameOf(i) ?? $"#{k}", Unwrap(i)!)).ToList();
            if (items.Count > 0 && items.All(i => i is not null && NamedValue(i) is not null))
                return items.Select(i => NamedValue(i!)!.Value).ToList();
            if (items.Count > 0 && items.All(i => Unwrap(i) is string or FileSystemInfo))
                return items.SelectMany(i => Resolve(i, floatInputs)).ToList();
        }
        return [(TensorArgument.NameOf(input) ?? "output", TensorArgument.ToTensor(input))];
    }

    private static object? Unwrap(object? o) => o is PSObject p ? p.BaseObject : o;

    /// <summary>An object with Name (or Layer) and Output (or Value, Tensor): one captured layer.</summary>
    private static (string, object)? NamedValue(object item)
    {
        var p = PSObject.AsPSObject(item);
        var name = (p.Properties["Name"] ?? p.Properties["Layer"])?.Value?.ToString();
        var value = (p.Properties["Output"] ?? p.Properties["Value"] ?? p.Properties["Tensor"])?.Value;
        if (name is null || value is null) return null;
        return (name, Value(value, name));
    }

    private static object Value(object? v, string layer)
    {
        var o = Unwrap(v);
        if (o is Tensor or QTensor) return o;
        try { return TensorArgument.ToTensor(v); }
        catch (QuantToolsException e) { throw new QuantToolsException(e.Code, e.Message, layer); }
    }

    private static List<(string, object)> FromPath(string path, Dictionary<string, Tensor>? floatInputs) => Take(LayerDumps.Read(path), floatInputs);

    private static List<(string, object)> Take(LayerSet set, Dictionary<string, Tensor>? floatInputs)
    {
        if (floatInputs is not null) foreach (var (k, v) in set.FloatInputs) floatInputs[k] = v;
        return set.Layers.ToList();
    }
}
