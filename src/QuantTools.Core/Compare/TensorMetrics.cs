using QuantTools.Core.Tensors;

namespace QuantTools.Core.Compare;

/// <summary>
/// Float metrics between a reference x and an actual y, as PyTorch's Numeric Suite defines them where it does
/// (<c>compute_sqnr</c>: 20 log10(||x|| / ||x − y||), <c>compute_cosine_similarity</c>), plus MSE and absolute errors.
/// </summary>
public static class TensorMetrics
{
    public static double Sqnr(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        double ps = 0, pn = 0;
        for (int i = 0; i < x.Length; i++)
        {
            ps += x[i] * x[i];
            double d = x[i] - y[i];
            pn += d * d;
        }
        if (pn == 0) return double.PositiveInfinity;
        if (ps == 0) return double.NegativeInfinity;
        return 20 * Math.Log10(Math.Sqrt(ps) / Math.Sqrt(pn));
    }

    public static double Cosine(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        double xy = 0, xx = 0, yy = 0;
        for (int i = 0; i < x.Length; i++) { xy += x[i] * y[i]; xx += x[i] * x[i]; yy += y[i] * y[i]; }
        if (xx == 0 && yy == 0) return 1;
        if (xx == 0 || yy == 0) return 0;
        return xy / (Math.Sqrt(xx) * Math.Sqrt(yy));
    }

    public static (double Mse, double MaxAbs, double MeanAbs) Errors(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (x.Length == 0) return (0, 0, 0);
        double se = 0, sa = 0, ma = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double d = Math.Abs(x[i] - y[i]);
            se += d * d; sa += d;
            if (d > ma || double.IsNaN(d)) ma = d;
        }
        return (se / x.Length, ma, sa / x.Length);
    }

    /// <summary>Top-1 and top-k agreement over rows of the last dim: share of equal argmax, mean |top-k(x) ∩ top-k(y)| / k.</summary>
    public static (double Top1, double TopK) TopKAgreement(ReadOnlySpan<double> x, ReadOnlySpan<double> y, int lastDim, int k)
    {
        if (lastDim <= 0 || x.Length % lastDim != 0) throw new QuantToolsException(ErrorCode.ShapeMismatch, "last dim does not divide the tensor");
        k = Math.Clamp(k, 1, lastDim);
        int rows = x.Length / lastDim;
        if (rows == 0) return (1, 1);
        double top1 = 0, topk = 0;
        for (int r = 0; r < rows; r++)
        {
            var xs = Top(x.Slice(r * lastDim, lastDim), k);
            var ys = Top(y.Slice(r * lastDim, lastDim), k);
            if (xs[0] == ys[0]) top1++;
            topk += xs.Intersect(ys).Count() / (double)k;
        }
        return (top1 / rows, topk / rows);
    }

    private static int[] Top(ReadOnlySpan<double> row, int k)
    {
        var idx = Enumerable.Range(0, row.Length).ToArray();
        var copy = row.ToArray();
        // descending by value, ties by lower index (torch.topk / argmax take the first maximum)
        Array.Sort(idx, (a, b) => copy[b].CompareTo(copy[a]) is var c && c != 0 ? c : a.CompareTo(b));
        return idx[..k];
    }

    /// <summary>C-order multi-index of a flat index.</summary>
    public static int[] Unravel(int flat, int[] shape)
    {
        var r = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            if (shape[d] == 0) break;
            r[d] = flat % shape[d];
            flat /= shape[d];
        }
        return r;
    }

    /// <summary>The shape without size-1 dims (so [1, 8, 20, 20] and [8, 20, 20] compare).</summary>
    public static int[] Squeeze(int[] shape) => shape.Where(d => d != 1).ToArray();

    public static string Format(int[] shape) => "[" + string.Join(", ", shape) + "]";

    internal static bool SameGrid(QParams a, QParams b) =>
        a.QScheme.IsPerChannel() == b.QScheme.IsPerChannel() && a.Axis == b.Axis && a.Scales.Length == b.Scales.Length &&
        a.Scales.Zip(b.Scales).All(p => (float)p.First == (float)p.Second);
}
