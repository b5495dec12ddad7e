using System.Collections;
using System.Numerics;

namespace QuantTools.Core.Formats.Pickle;

/// <summary>
/// A Python dict or <c>collections.OrderedDict</c> from a pickle, in insertion order (a state_dict's order is its
/// module order). Keys follow Python equality for the hashable values pickles hold (str, int, float, bool, None,
/// bytes, tuples of those); other keys compare by reference.
/// </summary>
public sealed class PyDict : IEnumerable<KeyValuePair<object?, object?>>
{
    private readonly List<KeyValuePair<object?, object?>> _items = new();
    private readonly Dictionary<object, int> _index = new(PyKeyComparer.Instance);
    private static readonly object NullKey = new();

    /// <summary>True for <c>collections.OrderedDict</c>, false for a plain dict (both keep insertion order).</summary>
    public bool IsOrderedDict { get; init; }

    /// <summary>Instance attributes set on the dict by BUILD (a state_dict's <c>_metadata</c>), or null.</summary>
    public PyDict? Attributes { get; internal set; }

    public int Count => _items.Count;
    public IEnumerable<object?> Keys => _items.Select(p => p.Key);
    public IEnumerable<object?> Values => _items.Select(p => p.Value);
    public KeyValuePair<object?, object?> GetAt(int i) => _items[i];

    public object? this[object? key]
    {
        get => TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"key '{key}' is not in the dict");
        set => Set(key, value);
    }

    /// <summary>Python assignment: a new key goes last, an existing key keeps its position.</summary>
    public void Set(object? key, object? value)
    {
        var k = key ?? NullKey;
        if (_index.TryGetValue(k, out int i)) _items[i] = new(_items[i].Key, value);
        else
        {
            _index.Add(k, _items.Count);
            _items.Add(new(key, value));
        }
    }

    public bool TryGetValue(object? key, out object? value)
    {
        if (_index.TryGetValue(key ?? NullKey, out int i))
        {
            value = _items[i].Value;
            return true;
        }
        value = null;
        return false;
    }

    public bool ContainsKey(object? key) => _index.ContainsKey(key ?? NullKey);

    public IEnumerator<KeyValuePair<object?, object?>> GetEnumerator() => _items.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    public override string ToString() => $"{(IsOrderedDict ? "OrderedDict" : "dict")} ({Count} items)";
}

/// <summary>A Python set or frozenset, in pickle order.</summary>
public sealed class PySet : IEnumerable<object?>
{
    internal readonly List<object?> Items = new();
    public bool IsFrozen { get; init; }
    public int Count => Items.Count;
    public IEnumerator<object?> GetEnumerator() => Items.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    public override string ToString() => $"{(IsFrozen ? "frozenset" : "set")} ({Count} items)";
}

/// <summary>A reference to an allow-listed Python global (<c>module.name</c>), as GLOBAL / STACK_GLOBAL push it.</summary>
public sealed record PyGlobal(string Module, string Name)
{
    public string FullName => Module + "." + Name;
    public override string ToString() => FullName;
}

/// <summary>
/// An instance of an allow-listed class (TorchScript <c>__torch__.*</c> modules, torchbind packed params,
/// <c>slice</c>...): its class, the constructor arguments and the state BUILD gave it. Nothing of the class runs.
/// </summary>
public sealed class PickleObject
{
    public PyGlobal Class { get; }
    public string ClassName => Class.FullName;
    public object?[] Args { get; }
    /// <summary>The BUILD state: an attribute dict (<see cref="PyDict"/>) or a <c>__getstate__</c> value (often a tuple).</summary>
    public object? State { get; internal set; }

    public PickleObject(PyGlobal cls, object?[] args)
    {
        Class = cls;
        Args = args;
    }

    /// <summary>An attribute from a dict state, or null when absent.</summary>
    public object? GetAttribute(string name) =>
        State is PyDict d && d.TryGetValue(name, out var v) ? v : null;

    public override string ToString() => $"{ClassName} object";
}

/// <summary>Python equality for dict keys: numbers by value (1 == 1.0 == True), strings and bytes by content, tuples elementwise.</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();
    private const int MaxDepth = 200;

    public new bool Equals(object? a, object? b) => Eq(a, b, 0);

    private static bool Eq(object? a, object? b, int depth)
    {
        if (ReferenceEquals(a, b)) return true;
        if (a is null || b is null) return false;
        if (depth > MaxDepth)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"dict key nested deeper than {MaxDepth} levels");
        if (a is long la && b is long lb) return la == lb;
        if (Numeric(a, out var na) && Numeric(b, out var nb)) return na == nb;
        return (a, b) switch
        {
            (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
            (byte[] x, byte[] y) => x.AsSpan().SequenceEqual(y),
            (object?[] x, object?[] y) => x.Length == y.Length && x.Zip(y).All(p => Eq(p.First, p.Second, depth + 1)),
            _ => a.Equals(b) && a.GetType() == b.GetType() && a is PyGlobal,
        };
    }

    public int GetHashCode(object o) => Hash(o, 0);

    private static int Hash(object? o, int depth)
    {
        if (o is null) return 0;
        if (Numeric(o, out var n)) return n.GetHashCode();
        return o switch
        {
            string s => StringComparer.Ordinal.GetHashCode(s),
            byte[] b => b.Length,
            object?[] t => depth > 3 ? t.Length : t.Aggregate(17, (h, x) => h * 31 + Hash(x, depth + 1)),
            PyGlobal g => g.GetHashCode(),
            _ => System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(o),
        };
    }

    private static bool Numeric(object o, out double v)
    {
        switch (o)
        {
            case long l: v = l; return true;
            case bool b: v = b ? 1 : 0; return true;
            case double d: v = d; return true;
            case BigInteger bi: v = (double)bi; return true;
            default: v = 0; return false;
        }
    }
}
