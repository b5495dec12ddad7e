using System.Text;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Graph;

/// <summary>A node input: a graph value by name, or a constant (number, bool, string, list, tensor, packed weights).</summary>
public readonly record struct Operand
{
    public string? Value { get; }
    public object? Constant { get; }
    public bool IsValue => Value is not null;

    private Operand(string? value, object? constant)
    {
        Value = value;
        Constant = constant;
    }

    public static Operand Of(string value) => new(value, null);
    public static Operand Const(object? constant) => new(null, constant);

    public override string ToString() => IsValue ? "%" + Value : ModelGraph.Describe(Constant);
}

/// <summary>
/// One operation: its op kind (TorchScript's name, e.g. <c>quantized::conv2d</c>, <c>aten::flatten</c>,
/// <c>prim::ListConstruct</c>), inputs, output value names, the module it came from and the source line.
/// </summary>
public sealed class GraphNode
{
    public required int Index { get; init; }
    public required string Op { get; init; }
    public required IReadOnlyList<Operand> Inputs { get; init; }
    public required IReadOnlyList<string> Outputs { get; init; }
    /// <summary>Dotted path of the innermost module whose code emitted this node (<c>stage2.0.branch2.5</c>); "" for the root.</summary>
    public required string ModulePath { get; init; }
    /// <summary>Class of that module (<c>ConvReLU2d</c>).</summary>
    public string? ModuleKind { get; init; }
    /// <summary>The TorchScript line the node came from (innermost frame).</summary>
    public SourceLocation? Source { get; init; }

    /// <summary>Output scale of a requantizing op (conv, linear, add, cat, quantize_per_tensor, hardswish...) when it is a constant.</summary>
    public double? OutputScale { get; internal set; }
    public long? OutputZeroPoint { get; internal set; }

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append(string.Join(", ", Outputs.Select(o => "%" + o))).Append(" = ").Append(Op).Append('(')
          .Append(string.Join(", ", Inputs)).Append(')');
        if (OutputScale is { } s) sb.Append($" -> ({s:R}, {OutputZeroPoint})");
        if (ModulePath.Length > 0) sb.Append("  # ").Append(ModulePath);
        return sb.ToString();
    }
}

/// <summary>
/// A model as a graph: inputs, nodes in topological (execution) order, outputs, and the value each module call
/// produced (<see cref="LayerOutputs"/>, for capturing every layer's activation by its module path).
/// </summary>
public sealed class ModelGraph
{
    public required string Source { get; init; }
    public required IReadOnlyList<string> Inputs { get; init; }
    public required IReadOnlyList<string> Outputs { get; init; }
    public required IReadOnlyList<GraphNode> Nodes { get; init; }
    /// <summary>Module path → the value its forward returned (first call), in call order.</summary>
    public required IReadOnlyList<KeyValuePair<string, string>> LayerOutputs { get; init; }
    /// <summary>Module path → class name (<c>ConvReLU2d</c>) for every module called.</summary>
    public required IReadOnlyDictionary<string, string> LayerKinds { get; init; }
    /// <summary>Module paths that have no child modules (what PyTorch's forward hooks on leaf modules see).</summary>
    public required IReadOnlySet<string> LeafLayers { get; init; }

    /// <summary>The node producing <paramref name="value"/>, or null for a graph input.</summary>
    public GraphNode? Producer(string value) => Nodes.FirstOrDefault(n => n.Outputs.Contains(value));

    public IEnumerable<GraphNode> NodesOf(string op) => Nodes.Where(n => n.Op == op);

    /// <summary>A readable listing, one node a line.</summary>
    public string Dump()
    {
        var sb = new StringBuilder();
        sb.Append("graph(").Append(string.Join(", ", Inputs.Select(i => "%" + i))).AppendLine("):");
        foreach (var n in Nodes) sb.Append("  ").AppendLine(n.ToString());
        sb.Append("  return ").AppendLine(string.Join(", ", Outputs.Select(o => "%" + o)));
        return sb.ToString();
    }

    public override string ToString() => $"ModelGraph '{Path.GetFileName(Source)}' ({Nodes.Count} nodes, {LayerOutputs.Count} layers)";

    internal static string Describe(object? v) => v switch
    {
        null => "None",
        string s => "\"" + s + "\"",
        bool b => b ? "True" : "False",
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        object?[] t => "(" + string.Join(", ", t.Select(Describe)) + ")",
        List<object?> l => "[" + string.Join(", ", l.Select(Describe)) + "]",
        Tensor t => t.ToString(),
        QTensor q => q.ToString(),
        ConvPackedParams c => $"ConvPacked(w[{string.Join(",", c.Weight.Shape)}] s[{string.Join(",", c.Stride)}] p[{string.Join(",", c.Padding)}] d[{string.Join(",", c.Dilation)}] g{c.Groups})",
        LinearPackedParams l => $"LinearPacked(w{(l.Weight is QTensor q ? "[" + string.Join(",", q.Shape) + "]" : "")})",
        _ => v.ToString() ?? "?",
    };
}
