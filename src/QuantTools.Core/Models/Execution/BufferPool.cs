namespace QuantTools.Core.Models.Execution;

/// <summary>
/// byte[] activation buffers by exact length, for one executor. Only arrays this pool handed out during the current run
/// ("owned") are ever taken back, so graph inputs, constants, weights and results from earlier runs are never reused.
/// </summary>
internal sealed class BufferPool
{
    private readonly Dictionary<int, Stack<byte[]>> _free = new();
    private readonly HashSet<byte[]> _owned = new(ReferenceEqualityComparer.Instance);

    /// <summary>A buffer of exactly <paramref name="length"/> bytes (contents undefined).</summary>
    public byte[] Rent(int length)
    {
        var b = _free.TryGetValue(length, out var st) && st.Count > 0 ? st.Pop() : new byte[length];
        _owned.Add(b);
        return b;
    }

    /// <summary>Takes back a buffer handed out this run and not returned since; anything else is ignored.</summary>
    public void Return(byte[]? b)
    {
        if (b is null || !_owned.Remove(b)) return;
        if (!_free.TryGetValue(b.Length, out var st)) _free[b.Length] = st = new Stack<byte[]>();
        st.Push(b);
    }

    /// <summary>The owned arrays a run value holds (through tensors, lists and tuples), each once.</summary>
    public byte[][] OwnedIn(object? v)
    {
        if (_owned.Count == 0) return [];
        List<byte[]>? found = null;
        void Walk(object? o)
        {
            switch (o)
            {
                case RtTensor { Q: { } q } when q.IntRepr.Data is byte[] b && _owned.Contains(b):
                    found ??= new List<byte[]>();
                    if (!found.Exists(x => ReferenceEquals(x, b))) found.Add(b);
                    break;
                case List<object?> l: foreach (var e in l) Walk(e); break;
                case object?[] t: foreach (var e in t) Walk(e); break;
            }
        }
        Walk(v);
        return found is null ? [] : found.ToArray();
    }

    /// <summary>Ends a run: buffers still out belong to its results (outputs, captured layers) and are never taken back.</summary>
    public void EndRun() => _owned.Clear();
}
