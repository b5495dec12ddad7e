using System.Globalization;
using System.Net;
using System.Text;
using QuantTools.Core.Compare;

namespace QuantTools.Core.Pipelines;

/// <summary>
/// summary.html of a pipeline run (or merge): the verdict, a chart of every job (duration, coloured by status), the
/// job table, and per job its steps and assertions and, for each compare step, a chart of SQNR per layer with the
/// layer table. Self-contained: inline CSS and SVG, no scripts, no external files.
/// </summary>
public static class PipelineHtmlReport
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private static string E(string? s) => WebUtility.HtmlEncode(s ?? "");

    private static string StatusColor(PipelineStatus s) => s switch
    {
        PipelineStatus.Passed => "#27ae60",
        PipelineStatus.Failed => "#e67e22",
        _ => "#c0392b",
    };

    private static string Db(double v) => double.IsPositiveInfinity(v) ? "inf" : double.IsNegativeInfinity(v) ? "-inf" : v.ToString("F2", Inv);

    public static string Render(IReadOnlyList<PipelineJobResult> results, PipelineSummary s, string status)
    {
        var sb = new StringBuilder();
        string title = $"Pipeline {s.Pipeline}";
        sb.Append("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"/><title>").Append(E(title)).Append("</title>\n<style>")
          .Append("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}")
          .Append("td.num{text-align:right}tr.Failed{background:#fdebd0}tr.Error{background:#f8c4c4}tr.fail{background:#fde8e8}.verdict{font-size:1.3em;font-weight:bold}")
          .Append(".PASSED{color:#1e8449}.FAILED,.INCOMPLETE{color:#c0392b}section.job{border-top:1px solid #ccc;margin-top:1.5em}")
          .Append("</style></head><body>\n<h1>").Append(E(title)).Append("</h1>\n");
        sb.Append($"<p id=\"verdict\" class=\"verdict {E(status.Split(',')[0])}\">{E(status)}</p>\n");
        sb.Append($"<p id=\"headline\">{s.Jobs} jobs: {s.Passed} passed, {s.Failed} failed, {s.Errors} errors; {s.Assertions} assertions, {s.AssertionsFailed} failed.");
        if (s.Shards is not null) sb.Append(" Merged from ").Append(E(s.Shards)).Append('.');
        sb.Append("</p>\n<h2>Jobs</h2>\n");
        sb.Append(SvgBarChart.Render("jobs-chart",
            results.Select(r => new Bar(r.Job, r.Duration.TotalSeconds, StatusColor(r.Status), $"{r.Job}: {r.Status}, {r.Duration.TotalSeconds.ToString("F3", Inv)} s")).ToList(),
            "seconds")).Append('\n');
        sb.Append("<table id=\"jobs\"><tr><th>#</th><th>Job</th><th>Status</th><th>Model</th><th>Engines</th><th>Assertions</th><th>Seconds</th></tr>\n");
        foreach (var r in results)
        {
            var asserts = r.Steps.SelectMany(x => x.Assertions).ToList();
            sb.Append($"<tr class=\"{r.Status}\"><td class=\"num\">{r.Index}</td><td><a href=\"#job-{r.Index}\">{E(r.Job)}</a></td><td>{r.Status}</td><td>{E(Path.GetFileName(r.Model))}</td>")
              .Append($"<td>{E(string.Join(" ", r.Engines))}</td><td class=\"num\">{asserts.Count(a => a.Passed)}/{asserts.Count}</td><td class=\"num\">{r.Duration.TotalSeconds.ToString("F3", Inv)}</td></tr>\n");
        }
        sb.Append("</table>\n");
        foreach (var r in results)
        {
            sb.Append($"<section class=\"job\" id=\"job-{r.Index}\"><h2>{E(r.Job)}: {r.Status}</h2>\n");
            if (r.Error is not null) sb.Append("<p class=\"error\">").Append(E(r.Error)).Append("</p>\n");
            sb.Append("<table class=\"steps\"><tr><th>Step</th><th>Status</th><th>Message</th><th>Assertions</th></tr>\n");
            foreach (var st in r.Steps)
            {
                var failed = st.Assertions.Where(a => !a.Passed).Select(a => a.ToString()).ToList();
                sb.Append($"<tr class=\"{st.Status}\"><td>{E(st.Step)}</td><td>{st.Status}</td><td>{E(st.Message)}</td>")
                  .Append($"<td>{st.Assertions.Count(a => a.Passed)}/{st.Assertions.Count}{(failed.Count > 0 ? ": " + E(string.Join("; ", failed)) : "")}</td></tr>\n");
            }
            sb.Append("</table>\n");
            int chart = 0;
            foreach (var st in r.Steps.Where(x => x.Layers is { Count: > 0 }))
                foreach (var g in st.Layers!.GroupBy(l => (l.Compare, l.Engine, l.Against)))
                {
                    var rows = g.ToList();
                    sb.Append($"<h3>{E(g.Key.Compare)}: {E(g.Key.Engine)} against {E(g.Key.Against)}, SQNR per layer</h3>\n");
                    var firstBad = rows.FirstOrDefault(x => !x.Passed)?.Layer;
                    sb.Append(SvgBarChart.Render($"job-{r.Index}-sqnr-{chart++}",
                        rows.Select(l => new Bar(l.Layer, l.Sqnr, l.Layer == firstBad ? "#c0392b" : l.Passed ? "#2e86c1" : "#e67e22", $"{l.Layer}: {Db(l.Sqnr)} dB")).ToList(),
                        "SQNR (dB)")).Append('\n');
                    sb.Append("<table class=\"layers\"><tr><th>Layer</th><th>SQNR dB</th><th>MaxLsb</th><th>Cosine</th><th>Passed</th><th>Hint</th></tr>\n");
                    foreach (var l in rows)
                        sb.Append($"<tr class=\"{(l.Passed ? "" : "fail")}\"><td>{E(l.Layer)}</td><td class=\"num\">{Db(l.Sqnr)}</td><td class=\"num\">{l.MaxLsb?.ToString(Inv) ?? "-"}</td>")
                          .Append($"<td class=\"num\">{l.Cosine.ToString("F5", Inv)}</td><td>{(l.Passed ? "yes" : "no")}</td><td>{E(l.Hint)}</td></tr>\n");
                    sb.Append("</table>\n");
                }
            sb.Append("</section>\n");
        }
        sb.Append("</body></html>\n");
        return sb.ToString();
    }
}
