using System.Collections;
using System.Globalization;

namespace QuantTools.Core.Models;

/// <summary>
/// Per-channel numbers of a qparams row (weight scales, multipliers, shifts, int32 biases, observer ranges): a
/// read-only list that indexes, counts and serializes to JSON like an array, and whose text form is the values joined
/// by <c>;</c> in round-trip format, so <c>Export-Csv</c> keeps them and <see cref="Parse"/> (or
/// <c>-split ';'</c>) reads them back bit for bit.
/// </summary>
public sealed class PerChannel<T> : IReadOnlyList<T>, IList where T : struct, IFormattable, ISpanParsable<T>
{
    private readonly T[] _values;

    public PerChannel(T[] values) => _values = values ?? throw new ArgumentNullException(nameof(values));

    public int Count => _values.Length;
    /// <summary>Same as <see cref="Count"/> (as an array has it).</summary>
    public int Length => _values.Length;
    public T this[int index] => _values[index];

    /// <summary>A copy of the values.</summary>
    public T[] ToArray() => (T[])_values.Clone();

    public static implicit operator T[](PerChannel<T> v) => v.ToArray();

    /// <summary>An array as per-channel values (null stays null), so rows can be built from arrays.</summary>
    public static implicit operator PerChannel<T>(T[] v) => v is null ? null! : new PerChannel<T>(v);

    /// <summary>The values joined by <c>;</c>, each in round-trip format (invariant culture).</summary>
    public override string ToString() => string.Join(";", _values.Select(v => v.ToString(typeof(T) == typeof(double) || typeof(T) == typeof(float) ? "R" : null, CultureInfo.InvariantCulture)));

    /// <summary>Reads <see cref="ToString"/>'s form back (an empty string is an empty list).</summary>
    public static PerChannel<T> Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0) return new PerChannel<T>([]);
        var parts = text.Split(';');
        var values = new T[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!T.TryParse(parts[i].Trim(), CultureInfo.InvariantCulture, out values[i]))
                throw new QuantToolsException(ErrorCode.InvalidArgument, $"'{parts[i]}' (value {i} of '{text}') is not a {typeof(T).Name}");
        return new PerChannel<T>(values);
    }

    public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)_values).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => _values.GetEnumerator();

    // read-only IList, so PowerShell indexes (also from the end) and enumerates it as it does arrays
    object? IList.this[int index] { get => _values[index]; set => throw new NotSupportedException("per-channel values are read-only"); }
    bool IList.IsFixedSize => true;
    bool IList.IsReadOnly => true;
    bool ICollection.IsSynchronized => false;
    object ICollection.SyncRoot => _values;
    int IList.Add(object? value) => throw new NotSupportedException("per-channel values are read-only");
    void IList.Clear() => throw new NotSupportedException("per-channel values are read-only");
    bool IList.Contains(object? value) => value is T t && Array.IndexOf(_values, t) >= 0;
    int IList.IndexOf(object? value) => value is T t ? Array.IndexOf(_values, t) : -1;
    void IList.Insert(int index, object? value) => throw new NotSupportedException("per-channel values are read-only");
    void IList.Remove(object? value) => throw new NotSupportedException("per-channel values are read-only");
    void IList.RemoveAt(int index) => throw new NotSupportedException("per-channel values are read-only");
    void ICollection.CopyTo(Array array, int index) => _values.CopyTo(array, index);
}

internal static class PerChannel
{
    public static PerChannel<T>? Of<T>(T[]? values) where T : struct, IFormattable, ISpanParsable<T> => values is null ? null : new PerChannel<T>(values);
}
