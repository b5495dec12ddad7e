using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats.Onnx;

/// <summary>An ONNX model as read from a .onnx file: IR version, opset imports and the main graph.</summary>
public sealed class OnnxModel
{
    public required string Source { get; init; }
    public long IrVersion { get; init; }
    public string ProducerName { get; init; } = "";
    public string ProducerVersion { get; init; } = "";
    /// <summary>Opset version per domain ("" is the default ai.onnx domain).</summary>
    public required IReadOnlyDictionary<string, long> Opsets { get; init; }
    public required OnnxGraph Graph { get; init; }
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>The default domain's opset (0 when the file imports none).</summary>
    public long Opset => Opsets.TryGetValue("", out var v) ? v : Opsets.TryGetValue("ai.onnx", out var w) ? w : 0;

    public override string ToString() =>
        $"{Path.GetFileName(Source)} (IR {IrVersion}, opset {Opset}, {Graph.Nodes.Count} nodes, {Graph.Initializers.Count} initializers)";
}

/// <summary>A graph: nodes in file order (checked to be a DAG), initializers by name, inputs and outputs.</summary>
public sealed class OnnxGraph
{
    public string Name { get; init; } = "";
    public required IReadOnlyList<OnnxNode> Nodes { get; init; }
    public required IReadOnlyDictionary<string, OnnxTensor> Initializers { get; init; }
    /// <summary>Graph inputs that are not initializers (what a caller feeds).</summary>
    public required IReadOnlyList<OnnxValueInfo> Inputs { get; init; }
    public required IReadOnlyList<OnnxValueInfo> Outputs { get; init; }
    public IReadOnlyList<OnnxValueInfo> ValueInfo { get; init; } = [];

    /// <summary>The node producing <paramref name="value"/>, or null for a graph input / initializer.</summary>
    public OnnxNode? Producer(string value) => Nodes.FirstOrDefault(n => n.Outputs.Contains(value));
}

/// <summary>One node: op type, domain (""), named inputs ("" marks an omitted optional input), outputs, attributes.</summary>
public sealed class OnnxNode
{
    public required string Name { get; init; }
    public required string OpType { get; init; }
    public string Domain { get; init; } = "";
    public required IReadOnlyList<string> Inputs { get; init; }
    public required IReadOnlyList<string> Outputs { get; init; }
    public required IReadOnlyDictionary<string, OnnxAttribute> Attributes { get; init; }

    public string Input(int i) => i < Inputs.Count ? Inputs[i] : "";

    public long Int(string name, long fallback) => Attributes.TryGetValue(name, out var a) && a.Type == OnnxAttributeType.Int ? a.I : fallback;
    public float Float(string name, float fallback) => Attributes.TryGetValue(name, out var a) && a.Type == OnnxAttributeType.Float ? a.F : fallback;
    public string? String(string name) => Attributes.TryGetValue(name, out var a) && a.Type == OnnxAttributeType.String ? a.S : null;
    public long[]? Ints(string name) => Attributes.TryGetValue(name, out var a) && a.Type == OnnxAttributeType.Ints ? a.Ints : null;

    public override string ToString() =>
        $"{(Domain.Length > 0 ? Domain + "." : "")}{OpType} '{Name}' ({string.Join(", ", Inputs)}) -> ({string.Join(", ", Outputs)})";
}

/// <summary>A node attribute; only the field its <see cref="Type"/> names is meaningful.</summary>
public sealed class OnnxAttribute
{
    public required string Name { get; init; }
    public OnnxAttributeType Type { get; init; }
    public float F { get; init; }
    public long I { get; init; }
    public string S { get; init; } = "";
    public OnnxTensor? T { get; init; }
    public OnnxGraph? G { get; init; }
    public float[] Floats { get; init; } = [];
    public long[] Ints { get; init; } = [];
    public string[] Strings { get; init; } = [];

    public override string ToString() => Type switch
    {
        OnnxAttributeType.Float => $"{Name}={F:R}",
        OnnxAttributeType.Int => $"{Name}={I}",
        OnnxAttributeType.String => $"{Name}='{S}'",
        OnnxAttributeType.Ints => $"{Name}=[{string.Join(",", Ints)}]",
        OnnxAttributeType.Floats => $"{Name}=[{string.Join(",", Floats)}]",
        OnnxAttributeType.Tensor => $"{Name}={T}",
        _ => $"{Name}:{Type}",
    };
}

/// <summary>A graph input or output: its name, element type and shape (a dimension is null when symbolic or unknown).</summary>
public sealed record OnnxValueInfo(string Name, OnnxDataType ElemType, long?[]? Shape)
{
    public override string ToString() =>
        $"{Name}: {ElemType} [{(Shape is null ? "?" : string.Join(", ", Shape.Select(d => d?.ToString() ?? "?")))}]";
}

/// <summary>
/// A tensor of the file (initializer or attribute value). Its data stays where it is (a slice of the model's bytes,
/// or a checked range of an external file in the model's folder) until <see cref="ToTensor"/> decodes it.
/// </summary>
public sealed class OnnxTensor
{
    public required string Name { get; init; }
    public required OnnxDataType DataType { get; init; }
    public required long[] Dims { get; init; }
    /// <summary>Element count (checked against the data when the file was read).</summary>
    public int Count { get; init; }
    internal Func<Tensor> Decode { get; init; } = () => throw new InvalidOperationException();
    private Tensor? _value;

    /// <summary>The values as a dense tensor (float32, uint8, int8, int32, int64, ...); decoded once.</summary>
    public Tensor ToTensor() => _value ??= Decode();

    public int[] Shape => Dims.Select(d => (int)d).ToArray();

    public override string ToString() => $"{Name} {DataType} [{string.Join(", ", Dims)}]";
}
