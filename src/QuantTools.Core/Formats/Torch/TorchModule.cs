using System.Collections;
using QuantTools.Core.Formats.Pickle;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats.Torch;

/// <summary>An ordered name → value map (state_dict entries, module attributes), in file order.</summary>
public sealed class TorchStateDict : IReadOnlyDictionary<string, object?>
{
    private readonly List<string> _keys = new();
    private readonly Dictionary<string, object?> _map = new(StringComparer.Ordinal);

    internal void Add(string key, object? value)
    {
        if (_map.TryAdd(key, value)) _keys.Add(key);
        else _map[key] = value;
    }

    public object? this[string key] => _map.TryGetValue(key, out var v) ? v
        : throw new QuantToolsException(ErrorCode.InvalidArgument, $"no entry '{key}'");
    public IEnumerable<string> Keys => _keys;
    public IEnumerable<object?> Values => _keys.Select(k => _map[k]);
    public int Count => _keys.Count;
    public bool ContainsKey(string key) => _map.ContainsKey(key);
    public bool TryGetValue(string key, out object? value) => _map.TryGetValue(key, out value);
    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => _keys.Select(k => new KeyValuePair<string, object?>(k, _map[k])).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The entry as T (QTensor, Tensor, double, long, bool, string, object?[]...), or an error naming the key and what it holds.</summary>
    public T Get<T>(string key) => this[key] is T t ? t
        : throw new QuantToolsException(ErrorCode.InvalidArgument, $"entry '{key}' is {PickleResolver.Describe(this[key])}, not {typeof(T).Name}");

    public bool TryGet<T>(string key, out T value)
    {
        if (_map.TryGetValue(key, out var v) && v is T t)
        {
            value = t;
            return true;
        }
        value = default!;
        return false;
    }

    public QTensor GetQTensor(string key) => Get<QTensor>(key);
    public Tensor GetTensor(string key) => Get<Tensor>(key);

    /// <summary>A scalar entry as double: a Python float/int, or a one-element tensor (<c>scale</c> buffers).</summary>
    public double GetScalar(string key) => this[key] switch
    {
        double d => d,
        long l => l,
        bool b => b ? 1 : 0,
        Tensor { Length: 1 } t => t.GetDouble(0),
        var v => throw new QuantToolsException(ErrorCode.InvalidArgument, $"entry '{key}' is {PickleResolver.Describe(v)}, not a scalar"),
    };

    public override string ToString() => $"{Count} entries";
}

/// <summary>A module of a TorchScript archive: its class, attributes and child modules, in file order.</summary>
public sealed class TorchModule
{
    /// <summary>Dotted path from the root (<c>""</c> for the root, <c>features.0.0</c>...).</summary>
    public required string Path { get; init; }
    public string Name => Path.Length == 0 ? "" : Path[(Path.LastIndexOf('.') + 1)..];
    /// <summary>Qualified class name, e.g. <c>__torch__.torch.ao.nn.quantized.modules.conv.Conv2d</c>.</summary>
    public required string ClassName { get; init; }
    /// <summary>The class name without the <c>__torch__.</c> prefix and TorchScript's <c>___torch_mangle_N</c> parts (<c>torch.ao.nn.quantized.modules.conv.Conv2d</c>).</summary>
    public string TypeName => string.Join('.', ClassName.Split('.').Where(p => p != "__torch__" && !p.StartsWith("___torch_mangle_", StringComparison.Ordinal)));
    /// <summary>The last part of the class name (<c>Conv2d</c>).</summary>
    public string Kind => ClassName[(ClassName.LastIndexOf('.') + 1)..];
    /// <summary>Attributes other than child modules (parameters, buffers, scale / zero_point, in_channels, training, decoded packed params...).</summary>
    public required TorchStateDict Attributes { get; init; }
    public required IReadOnlyList<TorchModule> Children { get; init; }
    /// <summary>The unpickled object this module was read from.</summary>
    public required PickleObject Object { get; init; }
    /// <summary>Attribute and child names in file order (children marked), for walks that keep the order.</summary>
    internal List<(string Name, TorchModule? Child)> Order { get; init; } = new();

    public IEnumerable<TorchModule> DescendantsAndSelf()
    {
        yield return this;
        foreach (var c in Children)
            foreach (var d in c.DescendantsAndSelf())
                yield return d;
    }

    public TorchModule? Find(string path) => DescendantsAndSelf().FirstOrDefault(m => m.Path == path);

    public override string ToString() => $"{(Path.Length == 0 ? "<root>" : Path)}: {Kind}";
}

/// <summary>The unpacked state of a <c>LinearPackedParamsBase</c> (or an eager <c>_packed_params</c> tuple).</summary>
public sealed class LinearPackedParams
{
    /// <summary>A QTensor (qint8 weights) or a float16/float32 Tensor (dynamic fp16).</summary>
    public required object Weight { get; init; }
    public Tensor? Bias { get; init; }
    public override string ToString() => $"LinearPackedParams weight {Weight}";
}

/// <summary>The unpacked state of a <c>Conv{2,3}dPackedParamsBase</c> (serialization versions 1, 2 and 3).</summary>
public sealed class ConvPackedParams
{
    public required int Version { get; init; }
    public required int SpatialDims { get; init; }
    public required QTensor Weight { get; init; }
    public Tensor? Bias { get; init; }
    public required long[] Stride { get; init; }
    public required long[] Padding { get; init; }
    public required long[] Dilation { get; init; }
    public required long[] OutputPadding { get; init; }
    public required long Groups { get; init; }
    public required bool Transpose { get; init; }
    public override string ToString() => $"ConvPackedParams v{Version} {SpatialDims}d weight {Weight}";
}
