using System.Text.RegularExpressions;

namespace QuantTools.Core.Compare;

/// <summary>
/// Pairs Difference layers with Reference layers: first the LayerMap (name pairs in either direction, or regex rules
/// pattern -> replacement applied to either side's names), then equal names, then names equal after normalizing case
/// and separators (or one name's tokens containing the other's), then by position as a last resort.
/// </summary>
public static class LayerAligner
{
    public sealed record Pair(int ReferenceIndex, int DifferenceIndex, LayerMatch Match);

    public static (IReadOnlyList<Pair> Pairs, IReadOnlyList<int> UnmatchedReference, IReadOnlyList<int> UnmatchedDifference)
        Align(IReadOnlyList<string> reference, IReadOnlyList<string> difference, IReadOnlyList<KeyValuePair<string, string>>? map)
    {
        var refFree = new HashSet<int>(Enumerable.Range(0, reference.Count));
        var difFree = new HashSet<int>(Enumerable.Range(0, difference.Count));
        var pairs = new List<Pair>();
        var refIdx = Index(reference);
        var difIdx = Index(difference);

        void Add(int r, int d, LayerMatch m)
        {
            if (!refFree.Contains(r) || !difFree.Contains(d)) return;
            refFree.Remove(r); difFree.Remove(d);
            pairs.Add(new Pair(r, d, m));
        }

        foreach (var (key, value) in map ?? [])
        {
            if (refIdx.TryGetValue(key, out var r1) && difIdx.TryGetValue(value, out var d1)) { Add(r1, d1, LayerMatch.Map); continue; }
            if (difIdx.TryGetValue(key, out var d2) && refIdx.TryGetValue(value, out var r2)) { Add(r2, d2, LayerMatch.Map); continue; }
            Regex rx;
            try { rx = new Regex("^(?:" + key + ")$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
            catch (ArgumentException e)
            {
                throw new QuantToolsException(ErrorCode.InvalidArgument, $"LayerMap key '{key}' is neither a layer name nor a valid regex: {e.Message}");
            }
            foreach (var d in difFree.OrderBy(i => i).ToList())
                if (rx.IsMatch(difference[d]) && refIdx.TryGetValue(rx.Replace(difference[d], value), out var r)) Add(r, d, LayerMatch.Map);
            foreach (var r in refFree.OrderBy(i => i).ToList())
                if (rx.IsMatch(reference[r]) && difIdx.TryGetValue(rx.Replace(reference[r], value), out var d)) Add(r, d, LayerMatch.Map);
        }

        foreach (var r in refFree.OrderBy(i => i).ToList())
            if (difIdx.TryGetValue(reference[r], out var d)) Add(r, d, LayerMatch.Name);

        // normalized names, then token containment (act/conv1/int contains conv1), only when unambiguous
        var difNorm = difFree.GroupBy(d => Normalize(difference[d])).Where(g => g.Count() == 1).ToDictionary(g => g.Key, g => g.First());
        foreach (var r in refFree.OrderBy(i => i).ToList())
            if (difNorm.TryGetValue(Normalize(reference[r]), out var d)) Add(r, d, LayerMatch.Name);
        foreach (var r in refFree.OrderBy(i => i).ToList())
        {
            var hits = difFree.Where(d => Contains(difference[d], reference[r])).ToList();
            if (hits.Count == 1 && reference.Count(x => Contains(difference[hits[0]], x)) == 1) Add(r, hits[0], LayerMatch.Name);
        }

        // position: everything when no name matched, else the leftovers when both sides have the same number left
        if (pairs.Count == 0 || refFree.Count == difFree.Count)
        {
            var rl = refFree.OrderBy(i => i).ToList();
            var dl = difFree.OrderBy(i => i).ToList();
            for (int i = 0; i < Math.Min(rl.Count, dl.Count); i++) Add(rl[i], dl[i], LayerMatch.Position);
        }
        pairs.Sort((a, b) => a.ReferenceIndex.CompareTo(b.ReferenceIndex));
        return (pairs, refFree.OrderBy(i => i).ToList(), difFree.OrderBy(i => i).ToList());
    }

    private static Dictionary<string, int> Index(IReadOnlyList<string> names)
    {
        var d = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < names.Count; i++) d.TryAdd(names[i], i);
        return d;
    }

    /// <summary>Lower case, runs of non-alphanumerics as one '.', trimmed.</summary>
    public static string Normalize(string name) =>
        Regex.Replace(name.ToLowerInvariant(), "[^a-z0-9]+", ".").Trim('.');

    private static bool Contains(string longer, string shorter)
    {
        var s = Normalize(shorter);
        if (s.Length == 0) return false;
        return ("." + Normalize(longer) + ".").Contains("." + s + ".", StringComparison.Ordinal) && Normalize(longer) != s;
    }
}
