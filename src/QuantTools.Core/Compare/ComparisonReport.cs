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
              .Append($"<td>{r.Cosine.ToString("F5", Inv)}</td><td>{r.MaxLsb?.ToString(Inv) ?? "-"}</td><td>{(r.ExactRatio is { } e ? e.ToString("P1", Inv) : "-")}</td>")
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
            sb.Append($"| {name} | {Db(r.Sqnr)} | {r.Mse.ToString("G4", Inv)} | {r.MaxAbsError.ToString("G4", Inv)} | {r.Cosine.ToString("F5", Inv)} | {r.MaxLsb?.ToString(Inv) ?? "-"} | {(r.ExactRatio is { } e ? e.ToString("P1", Inv) : "-")} | {(r.Passed ? "yes" : "no")} | {hint} |\n");
        }
        sb.Append("\n## SQNR per layer\n\n![SQNR per layer](data:image/svg+xml;base64,").Append(Convert.ToBase64String(Encoding.UTF8.GetBytes(SqnrChart(s)))).Append(")\n");
        sb.Append("\n## Integer differences\n\n![Histogram of integer differences](data:image/svg+xml;base64,").Append(Convert.ToBase64String(Encoding.UTF8.GetBytes(Histogram(s)))).Append(")\n");
        return sb.ToString();
    }

    /// <summary>Bars of SQNR per layer in model order; exact layers (inf) drawn full height and labelled "inf"; MinSqnr as a line.</summary>
    public static string SqnrChart(ComparisonSummary s)
    {
        var rs = s.Results;
        int n = Math.Max(rs.Count, 1), bw = Math.Clamp(600 / n, 8, 60), w = 60 + n * bw + 20, h = 300, top = 20, bottom = 90;
        double plotH = h - top - bottom;
        var finite = rs.Select(r => r.Sqnr).Where(double.IsFinite).ToList();
        double max = Math.Max(10, (finite.Count > 0 ? finite.Max() : 0) + 10);
        if (s.MinSqnr is { } ms) max = Math.Max(max, ms + 10);
        double Y(double v) => top + plotH - Math.Clamp(v, 0, max) / max * plotH;
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"sqnr-chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">");
        sb.Append($"<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
        for (int g = 0; g <= 4; g++)
        {
            double v = max * g / 4, y = Y(v);
            sb.Append(F("<line x1=\"55\" x2=\"{0}\" y1=\"{1:F1}\" y2=\"{1:F1}\" stroke=\"#ddd\"/><text x=\"50\" y=\"{2:F1}\" text-anchor=\"end\">{3:F0}</text>", w - 10, y, y + 4, v));
        }
        sb.Append(F("<text x=\"12\" y=\"{0}\" transform=\"rotate(-90 12 {0})\" text-anchor=\"middle\">SQNR (dB)</text>", top + plotH / 2));
        for (int i = 0; i < rs.Count; i++)
        {
            var r = rs[i];
            double v = double.IsPositiveInfinity(r.Sqnr) ? max : double.IsFinite(r.Sqnr) ? r.Sqnr : 0;
            double x = 60 + i * bw, y = Y(v);
            string color = r.Layer == s.FirstDivergingLayer ? "#c0392b" : r.Passed ? "#2e86c1" : "#e67e22";
            sb.Append(F("<rect x=\"{0:F1}\" y=\"{1:F1}\" width=\"{2}\" height=\"{3:F1}\" fill=\"{4}\"><title>{5}: {6} dB</title></rect>",
                x + 1, y, bw - 2, top + plotH - y, color, WebUtility.HtmlEncode(r.Layer), Db(r.Sqnr)));
            if (double.IsPositiveInfinity(r.Sqnr)) sb.Append(F("<text x=\"{0:F1}\" y=\"{1:F1}\" text-anchor=\"middle\" font-size=\"9\">inf</text>", x + bw / 2.0, y + 10));
            double lx = x + bw / 2.0, ly = top + plotH + 8;
            sb.Append(F("<text x=\"{0:F1}\" y=\"{1:F1}\" transform=\"rotate(45 {0:F1} {1:F1})\">{2}</text>", lx, ly, WebUtility.HtmlEncode(Short(r.Layer))));
        }
        if (s.MinSqnr is { } m)
            sb.Append(F("<line x1=\"55\" x2=\"{0}\" y1=\"{1:F1}\" y2=\"{1:F1}\" stroke=\"#c0392b\" stroke-dasharray=\"4 3\"/><text x=\"{0}\" y=\"{2:F1}\" text-anchor=\"end\" fill=\"#c0392b\">MinSqnr {3}</text>", w - 10, Y(m), Y(m) - 3, m));
        sb.Append("</svg>");
        return sb.ToString();
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
        sb.Append(F("<text x=\"{0}\" y=\"{1}\" text-anchor=\"middle\">difference - reference (LSB), count on a log scale</text>", w / 2, h - 6));
        sb.Append("</svg>");
        return sb.ToString();
    }

    private static string Short(string name) => name.Length <= 18 ? name : "…" + name[^17..];
    private static string F(string format, params object[] args) => string.Format(Inv, format, args);
}
