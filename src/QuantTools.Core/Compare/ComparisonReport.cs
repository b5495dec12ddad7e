using System.Globalization;
using System.Net;
using System.Text;

namespace QuantTools.Core.Compare;

/// <summary>
/// Writes a comparison as HTML or Markdown: the per-layer table, an SQNR-per-layer bar chart and a histogram of
/// integer differences, both as SVG generated here (inline in HTML; a data: URI image in Markdown). No external files.
/// </summary>
public static class ComparisonReport
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static void Write(string path, ComparisonSummary s, string? title = null)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        string text = ext switch
        {
            ".html" or ".htm" => Html(s, title),
            ".md" or ".markdown" => Markdown(s, title),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedFormat, $"report extension '{ext}': expected .html or .md", path),
        };
        try { File.WriteAllText(path, text, new UTF8Encoding(false)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QuantToolsException(ErrorCode.IoError, e.Message, path, e);
        }
    }

    private static string Db(double v) => double.IsPositiveInfinity(v) ? "inf" : double.IsNegativeInfinity(v) ? "-inf" : v.ToString("F2", Inv);

    private static string Headline(ComparisonSummary s) => s.FirstDivergingLayer is null
        ? $"All {s.Layers} layers pass."
        : $"First diverging layer: {s.FirstDivergingLayer} ({s.Cause}). {s.Failed} of {s.Layers} layers fail.";

    public static string Html(ComparisonSummary s, string? title = null)
    {
        var sb = new StringBuilder();
        string t = WebUtility.HtmlEncode(title ?? "QuantTools comparison");
        sb.Append("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"/><title>").Append(t).Append("</title>\n<style>")
          .Append("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}")
          .Append("td:first-child,th:first-child,td.hint{text-align:left}tr.fail{background:#fde8e8}tr.first{background:#f8c4c4;font-weight:bold}")
          .Append("</style></head><body>\n<h1>").Append(t).Append("</h1>\n<p id=\"headline\">").Append(WebUtility.HtmlEncode(Headline(s)))
          .Append($" Thresholds: MinSqnr {(s.MinSqnr?.ToString(Inv) ?? "-")}, MaxLsb {(s.MaxLsb?.ToString(Inv) ?? "-")}. Alignment: {s.Alignment}.</p>\n");
        sb.Append("<h2>SQNR per layer</h2>\n").Append(SqnrChart(s)).Append('\n');
        sb.Append("<h2>Integer differences</h2>\n").Append(Histogram(s)).Append('\n');
        sb.Append("<h2>Layers</h2>\n<table id=\"layers\"><tr><th>Layer</th><th>SQNR dB</th><th>MSE</th><th>MaxAbs</th><th>Cosine</th><th>MaxLsb</th><th>Exact</th><th>Passed</th><th>Hint</th></tr>\n");
        foreach (var r in s.Results)
        {
            string cls = r.Layer == s.FirstDivergingLayer ? "first" : r.Passed ? "" : "fail";
            sb.Append($"<tr class=\"{cls}\"><td>{WebUtility.HtmlEncode(r.Layer)}</td><td>{Db(r.Sqnr)}</td><td>{r.Mse.ToString("G4", Inv)}</td><td>{r.MaxAbsError.ToString("G4", Inv)}</td>")
              .Append($"<td>{r.Cosine.ToString("F5", Inv)}</td><td>{r.MaxLsb?.ToString(Inv) ?? "-"}</td><td>{WebUtility.HtmlEncode(Exact(r))}</td>")
              .Append($"<td>{(r.Passed ? "yes" : "no")}</td><td class=\"hint\">{WebUtility.HtmlEncode(r.TopHint is { } h ? $"{h.Cause}: {h.Evidence}" : "")}</td></tr>\n");
        }
        sb.Append("</table>\n</body></html>\n");
        return sb.ToString();
    }

    public static string Markdown(ComparisonSummary s, string? title = null)
    {
        var sb = new StringBuilder();
        sb.Append("# ").Append(title ?? "QuantTools comparison").Append("\n\n").Append(Headline(s)).Append("\n\n");
        sb.Append("| Layer | SQNR dB | MSE | MaxAbs | Cosine | MaxLsb | Exact | Passed | Hint |\n|---|---:|---:|---:|---:|---:|---:|---|---|\n");
        foreach (var r in s.Results)
        {
            string hint = r.TopHint is { } h ? $"{h.Cause}: {h.Evidence}".Replace("|", "\\|") : "";
            string name = r.Layer == s.FirstDivergingLayer ? $"**{r.Layer}**" : r.Layer;
            sb.Append($"| {name} | {Db(r.Sqnr)} | {r.Mse.ToString("G4", Inv)} | {r.MaxAbsError.ToString("G4", Inv)} | {r.Cosine.ToString("F5", Inv)} | {r.MaxLsb?.ToString(Inv) ?? "-"} | {Exact(r)} | {(r.Passed ? "yes" : "no")} | {hint} |\n");
        }
        sb.Append("\n## SQNR per layer\n\n![SQNR per layer](data:image/svg+xml;base64,").Append(Convert.ToBase64String(Encoding.UTF8.GetBytes(SqnrChart(s)))).Append(")\n");
        sb.Append("\n## Integer differences\n\n![Histogram of integer differences](data:image/svg+xml;base64,").Append(Convert.ToBase64String(Encoding.UTF8.GetBytes(Histogram(s)))).Append(")\n");
        return sb.ToString();
    }

    /// <summary>Bars of SQNR per layer in model order (negative SQNR downwards from 0, exact layers "inf"); MinSqnr as a line.</summary>
    public static string SqnrChart(ComparisonSummary s) => SvgBarChart.Render("sqnr-chart",
        s.Results.Select(r => new Bar(r.Layer, r.Sqnr, r.Layer == s.FirstDivergingLayer ? "#c0392b" : r.Passed ? "#2e86c1" : "#e67e22", $"{r.Layer}: {Db(r.Sqnr)} dB")).ToList(),
        "SQNR (dB)", s.MinSqnr, s.MinSqnr is { } m ? $"MinSqnr {m.ToString(Inv)}" : null);

    /// <summary>
    /// The share of equal integers as text that never rounds a difference away: "100 %" only when every element is
    /// equal; otherwise as many decimals as it takes to stay below 100 %, and the count that differs.
    /// </summary>
    public static string Exact(ComparisonResult r)
    {
        if (r.ExactRatio is not { } e) return "-";
        if (r.DifferingElements is 0 || e >= 1) return "100 %";
        double pct = e * 100;
        // enough decimals to show the gap to 100, truncated (rounding could reach 100.0)
        int d = Math.Clamp((int)Math.Ceiling(-Math.Log10(100 - pct)), 1, 10);
        double p10 = Math.Pow(10, d);
        string text = (Math.Floor(pct * p10) / p10).ToString("F" + d, Inv);
        return $"{text} % ({r.DifferingElements} differ)";
    }

    /// <summary>Histogram of integer differences (difference − reference) over all compared layers; the zero bar is the exact elements.</summary>
    public static string Histogram(ComparisonSummary s)
    {
        var counts = new SortedDictionary<long, long>();
        foreach (var r in s.Results)
            foreach (var (k, v) in r.LsbHistogram)
                counts[k] = (counts.TryGetValue(k, out var c) ? c : 0) + v;
        int w = 640, h = 260, top = 20, bottom = 40;
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"lsb-histogram\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">");
        sb.Append($"<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
        if (counts.Count == 0)
        {
            sb.Append("<text x=\"20\" y=\"40\">no integer representations to compare</text></svg>");
            return sb.ToString();
        }
        // clip the tails into the outer bins so that the plot stays readable
        long lo = Math.Max(counts.Keys.First(), -20), hi = Math.Min(counts.Keys.Last(), 20);
        var bins = new SortedDictionary<long, long>();
        foreach (var (k, v) in counts) { long b = Math.Clamp(k, lo, hi); bins[b] = (bins.TryGetValue(b, out var c) ? c : 0) + v; }
        int nb = (int)(hi - lo + 1);
        double bw = (w - 80) / (double)nb, plotH = h - top - bottom;
        double maxLog = Math.Log10(bins.Values.Max() + 1);
        // y axis: element counts on a log scale, a tick at every power of ten up to the tallest bar
        for (long p = 1; p <= bins.Values.Max() * 10L && p > 0; p *= 10)
        {
            double y = top + plotH - Math.Log10(p + 1) / maxLog * plotH;
            if (y < top - 1) break;
            sb.Append(F("<line x1=\"55\" x2=\"{0}\" y1=\"{1:F1}\" y2=\"{1:F1}\" stroke=\"#eee\"/><text class=\"ytick\" x=\"52\" y=\"{2:F1}\" text-anchor=\"end\">{3}</text>",
                w - 10, y, y + 4, p.ToString("N0", Inv)));
        }
        sb.Append(F("<text class=\"ytitle\" x=\"12\" y=\"{0:F1}\" transform=\"rotate(-90 12 {0:F1})\" text-anchor=\"middle\">elements (log)</text>", top + plotH / 2));
        for (long k = lo; k <= hi; k++)
        {
            long c = bins.TryGetValue(k, out var v) ? v : 0;
            double bh = c == 0 ? 0 : Math.Max(1, Math.Log10(c + 1) / maxLog * plotH);
            double x = 60 + (k - lo) * bw;
            sb.Append(F("<rect x=\"{0:F1}\" y=\"{1:F1}\" width=\"{2:F1}\" height=\"{3:F1}\" fill=\"{4}\"><title>{5}{6} LSB: {7} elements</title></rect>",
                x + 1, top + plotH - bh, Math.Max(1, bw - 2), bh, k == 0 ? "#27ae60" : "#c0392b",
                (k == lo && counts.Keys.First() < lo) || (k == hi && counts.Keys.Last() > hi) ? "<=/>= " : "", k, c));
            if (nb <= 21 || k % 5 == 0)
                sb.Append(F("<text x=\"{0:F1}\" y=\"{1}\" text-anchor=\"middle\">{2}</text>", x + bw / 2, top + plotH + 14, k));
        }
        sb.Append(F("<text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\">difference - reference (LSB)</text>", w / 2, h - 6));
        sb.Append("</svg>");
        return sb.ToString();
    }

    private static string F(string format, params object[] args) => string.Format(Inv, format, args);
}
