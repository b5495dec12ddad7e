using System.Globalization;
using System.Net;
using System.Text;

namespace QuantTools.Core.Compare;

/// <summary>One bar: its label, value (±Infinity and NaN allowed), fill colour and tooltip.</summary>
public readonly record struct Bar(string Label, double Value, string Color, string Tooltip);

/// <summary>
/// A vertical bar chart as inline SVG (the compare and pipeline reports): bars grow from the zero line, upwards for
/// positive values and downwards for negative ones (a negative SQNR is a visible bar), +Infinity is drawn to the top and
/// labelled "inf", -Infinity to the bottom ("-inf"), NaN as a grey stub ("nan"); the y axis has labelled ticks and a
/// title; an optional dashed threshold line.
/// </summary>
public static class SvgBarChart
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Render(string id, IReadOnlyList<Bar> bars, string yTitle, double? threshold = null, string? thresholdLabel = null)
    {
        int n = Math.Max(bars.Count, 1), bw = Math.Clamp(600 / n, 8, 60), w = 70 + n * bw + 20, h = 300, top = 20, bottom = 90;
        double plotH = h - top - bottom;
        var finite = bars.Select(b => b.Value).Where(double.IsFinite).ToList();
        if (threshold is { } t0) finite.Add(t0);
        double fMax = finite.Count > 0 ? Math.Max(finite.Max(), 0) : 0, fMin = finite.Count > 0 ? Math.Min(finite.Min(), 0) : 0;
        double span = fMax - fMin;
        if (span <= 0) span = 10;
        // headroom above the tallest finite bar (infinite bars reach the top) and below the lowest negative one
        double hi = fMax + span * 0.15, lo = fMin < 0 ? fMin - span * 0.1 : 0;
        if (bars.Any(b => double.IsNegativeInfinity(b.Value)) && lo == 0) lo = -span * 0.15;
        double step = TickStep(lo, hi);
        lo = Math.Floor(lo / step) * step;
        hi = Math.Ceiling(hi / step) * step;
        double Y(double v) => top + plotH - (Math.Clamp(v, lo, hi) - lo) / (hi - lo) * plotH;
        double y0 = Y(0);
        var sb = new StringBuilder();
        sb.Append(F("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{0}\" width=\"{1}\" height=\"{2}\" viewBox=\"0 0 {1} {2}\" font-family=\"sans-serif\" font-size=\"11\">", id, w, h));
        sb.Append(F("<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>", w, h));
        foreach (var v in Ticks(lo, hi))
        {
            double y = Y(v);
            sb.Append(F("<line x1=\"65\" x2=\"{0}\" y1=\"{1:F1}\" y2=\"{1:F1}\" stroke=\"{3}\"/><text class=\"ytick\" x=\"60\" y=\"{2:F1}\" text-anchor=\"end\">{4}</text>",
                w - 10, y, y + 4, v == 0 ? "#888" : "#ddd", v.ToString("G4", Inv)));
        }
        sb.Append(F("<text class=\"ytitle\" x=\"14\" y=\"{0:F1}\" transform=\"rotate(-90 14 {0:F1})\" text-anchor=\"middle\">{1}</text>", top + plotH / 2, WebUtility.HtmlEncode(yTitle)));
        for (int i = 0; i < bars.Count; i++)
        {
            var b = bars[i];
            double v = b.Value;
            double x = 70 + i * bw;
            double yv = double.IsPositiveInfinity(v) ? Y(hi) : double.IsNegativeInfinity(v) ? Y(lo) : double.IsNaN(v) ? y0 - 2 : Y(v);
            double yTop = Math.Min(yv, y0), height = Math.Max(Math.Abs(y0 - yv), 1);
            string color = double.IsNaN(v) ? "#999" : b.Color;
            sb.Append(F("<rect class=\"bar\" x=\"{0:F1}\" y=\"{1:F1}\" width=\"{2}\" height=\"{3:F1}\" fill=\"{4}\"><title>{5}</title></rect>",
                x + 1, yTop, bw - 2, height, color, WebUtility.HtmlEncode(b.Tooltip)));
            string? tag = double.IsPositiveInfinity(v) ? "inf" : double.IsNegativeInfinity(v) ? "-inf" : double.IsNaN(v) ? "nan" : null;
            if (tag is not null)
                sb.Append(F("<text x=\"{0:F1}\" y=\"{1:F1}\" text-anchor=\"middle\" font-size=\"9\">{2}</text>", x + bw / 2.0, v < 0 ? yv - 3 : yv + 10, tag));
            double lx = x + bw / 2.0, ly = top + plotH + 8;
            sb.Append(F("<text x=\"{0:F1}\" y=\"{1:F1}\" transform=\"rotate(45 {0:F1} {1:F1})\">{2}</text>", lx, ly, WebUtility.HtmlEncode(Short(b.Label))));
        }
        if (threshold is { } m)
            sb.Append(F("<line x1=\"65\" x2=\"{0}\" y1=\"{1:F1}\" y2=\"{1:F1}\" stroke=\"#c0392b\" stroke-dasharray=\"4 3\"/><text x=\"{0}\" y=\"{2:F1}\" text-anchor=\"end\" fill=\"#c0392b\">{3}</text>",
                w - 10, Y(m), Y(m) - 3, WebUtility.HtmlEncode(thresholdLabel ?? m.ToString("G4", Inv))));
        sb.Append("</svg>");
        return sb.ToString();
    }

    private static double TickStep(double lo, double hi)
    {
        double raw = (hi - lo) / 5, mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        return new[] { 1, 2, 5, 10 }.Select(k => k * mag).First(s => s >= raw * (1 - 1e-12));
    }

    /// <summary>About five round tick values from lo to hi (multiples of the step), 0 among them when it is in range.</summary>
    private static IEnumerable<double> Ticks(double lo, double hi)
    {
        double step = TickStep(lo, hi);
        for (double v = Math.Ceiling(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
            yield return Math.Abs(v) < step * 1e-9 ? 0 : Math.Round(v / step) * step;
    }

    internal static string Short(string name) => name.Length <= 18 ? name : "…" + name[^17..];
    private static string F(string format, params object[] args) => string.Format(Inv, format, args);
}
