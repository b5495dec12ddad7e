using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models;

/// <summary>
/// One module of a loaded model, in forward order: what a checkpoint tells about it. <see cref="Kind"/> uses
/// PyTorch's class names without the namespace (Quantize, Conv2d, ConvReLU2d, Linear, LinearReLU, DynamicLinear,
/// QFunctional, ReLU6, Hardtanh, FakeQuantize, ...).
/// </summary>
public sealed class ModelLayer
{
    public required string Name { get; init; }
    public required string Kind { get; init; }
    /// <summary>Fully qualified class name when the file names it (TorchScript), else null.</summary>
    public string? TypeName { get; init; }
    /// <summary>The module's own output (activation) qparams, when it has them.</summary>
    public double? OutputScale { get; init; }
    public long? OutputZeroPoint { get; init; }
    public DType OutputDType { get; init; } = DType.QUInt8;
    public QTensor? Weight { get; init; }
    /// <summary>Weight qparams known without integer weights (a QAT checkpoint's weight FakeQuantize).</summary>
    public QParams? WeightQParams { get; init; }
    public Tensor? Bias { get; init; }
    /// <summary>Names of the layers whose outputs feed this one, when the file gives the graph; else null (use order).</summary>
    public IReadOnlyList<string>? Inputs { get; init; }
    /// <summary>Other facts: clamp bounds (min_val, max_val), negative_slope, observer min/max, ...</summary>
    public IReadOnlyDictionary<string, object?> Attributes { get; init; } = new Dictionary<string, object?>();

    public double? Attribute(string key) => Attributes.TryGetValue(key, out var v) ? v switch
    {
        double d => d,
        float f => f,
        long l => l,
        int i => i,
        _ => null,
    } : null;

    public override string ToString() => $"{Name} ({Kind})";
}

/// <summary>A model as QuantTools sees it: its layers in forward order and where it came from.</summary>
public sealed class QuantModel
{
    public required string Source { get; init; }
    /// <summary>state_dict, legacy, torchscript, qat, fx, ...</summary>
    public required string Form { get; init; }
    public required IReadOnlyList<ModelLayer> Layers { get; init; }
    /// <summary>
    /// The model's forward as a graph when the file carries one (TorchScript) or an architecture file gave one; null
    /// otherwise. Gives each layer its exact input (Get-QParams' InputLayer / InputScale).
    /// </summary>
    public Graph.ModelGraph? Graph { get; init; }
    /// <summary>Why a TorchScript file's forward could not be read into <see cref="Graph"/> (then rows follow file order), else null.</summary>
    public string? GraphError { get; init; }
    /// <summary>
    /// Leaf modules a state_dict names (its <c>_metadata</c>) but holds no tensors for: parameter-free modules such as
    /// ReLU6, Hardtanh, pools, or identities left by fusion. Their kind is not in the file.
    /// </summary>
    public IReadOnlyList<string> ModulesWithoutTensors { get; init; } = [];

    public ModelLayer? Find(string name) => Layers.FirstOrDefault(l => l.Name == name);

    public override string ToString() => $"{Path.GetFileName(Source)} ({Form}, {Layers.Count} layers)";
}
