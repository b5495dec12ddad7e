using System.Globalization;
using System.Text;

namespace QuantTools.Core.Models;

/// <summary>
/// Get-QParams rows as CSV, the same columns <c>Export-Csv</c> writes for them: numbers in round-trip format,
/// per-channel values joined by <c>;</c>, empty fields for nulls. <see cref="Read"/> gives back rows equal to what was
/// written, bit for bit (the int weights are not written: the checkpoint holds them).
/// </summary>
public static class LayerQParamsCsv
{
    public static readonly IReadOnlyList<string> Columns =
    [
        "Name", "Kind", "InputScale", "InputZeroPoint", "InputLayer", "InputSource", "OutputScale", "OutputZeroPoint",
        "WeightDtype", "WeightQScheme", "WeightAxis", "WeightScales", "WeightZeroPoints", "WeightScaleMin", "WeightScaleMax",
        "WeightScaleSpread", "HasBias", "Multipliers", "FixedPointMultipliers", "Shifts", "Bias", "Int32Bias", "ObserverMin", "ObserverMax",
    ];

    private static string N(double? d) => d?.ToString("R", CultureInfo.InvariantCulture) ?? "";
    private static string N(long? d) => d?.ToString(CultureInfo.InvariantCulture) ?? "";

    public static string Field(string? s) =>
        s is null ? "" : s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    private static IEnumerable<string?> Values(LayerQParams r) =>
    [
        r.Name, r.Kind, N(r.InputScale), N(r.InputZeroPoint), r.InputLayer, r.InputSource, N(r.OutputScale), N(r.OutputZeroPoint),
        r.WeightDtype, r.WeightQScheme, N(r.WeightAxis), r.WeightScales?.ToString(), r.WeightZeroPoints?.ToString(), N(r.WeightScaleMin),
        N(r.WeightScaleMax), N(r.WeightScaleSpread), r.HasBias ? "True" : "False", r.Multipliers?.ToString(), r.FixedPointMultipliers?.ToString(),
        r.Shifts?.ToString(), r.Bias?.ToString(), r.Int32Bias?.ToString(), r.ObserverMin?.ToString(), r.ObserverMax?.ToString(),
    ];

    public static string ToCsv(IEnumerable<LayerQParams> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(",", Columns));
        foreach (var r in rows) sb.AppendLine(string.Join(",", Values(r).Select(Field)));
        return sb.ToString();
    }

    /// <summary>Reads CSV that <see cref="ToCsv"/> or <c>Export-Csv</c> wrote (columns by header name; extra columns are ignored).</summary>
    public static List<LayerQParams> Parse(string csv, string source = "<csv>")
    {
        var records = Records(csv, source);
        if (records.Count == 0) throw new QuantToolsException(ErrorCode.CorruptFile, "the CSV has no header line", source);
        var header = records[0];
        var at = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < header.Count; i++) at.TryAdd(header[i], i);
        foreach (var c in new[] { "Name", "Kind" })
            if (!at.ContainsKey(c)) throw new QuantToolsException(ErrorCode.CorruptFile, $"the CSV has no '{c}' column", source);
        var rows = new List<LayerQParams>();
        for (int line = 1; line < records.Count; line++)
        {
            var f = records[line];
            string? S(string c) => at.TryGetValue(c, out var i) && i < f.Count && f[i].Length > 0 ? f[i] : null;
            double? D(string c) => S(c) is { } s ? double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture) : null;
            long? L(string c) => S(c) is { } s ? long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture) : null;
            PerChannel<T>? P<T>(string c) where T : struct, IFormattable, ISpanParsable<T> => S(c) is { } s ? PerChannel<T>.Parse(s) : null;
            try
            {
                rows.Add(new LayerQParams
                {
                    Name = S("Name") ?? "", Kind = S("Kind") ?? "",
                    InputScale = D("InputScale"), InputZeroPoint = L("InputZeroPoint"), InputLayer = S("InputLayer"), InputSource = S("InputSource"),
                    OutputScale = D("OutputScale"), OutputZeroPoint = L("OutputZeroPoint"),
                    WeightDtype = S("WeightDtype"), WeightQScheme = S("WeightQScheme"), WeightAxis = (int?)L("WeightAxis"),
                    WeightScales = P<double>("WeightScales"), WeightZeroPoints = P<long>("WeightZeroPoints"),
                    WeightScaleMin = D("WeightScaleMin"), WeightScaleMax = D("WeightScaleMax"), WeightScaleSpread = D("WeightScaleSpread"),
                    HasBias = string.Equals(S("HasBias"), "True", StringComparison.OrdinalIgnoreCase),
                    Multipliers = P<double>("Multipliers"), FixedPointMultipliers = P<int>("FixedPointMultipliers"), Shifts = P<int>("Shifts"),
                    Bias = P<float>("Bias"), Int32Bias = P<int>("Int32Bias"), ObserverMin = P<double>("ObserverMin"), ObserverMax = P<double>("ObserverMax"),
                });
            }
            catch (FormatException e)
            {
                throw new QuantToolsException(ErrorCode.CorruptFile, $"line {line + 1}: {e.Message}", source, e);
            }
        }
        return rows;
    }

    /// <summary>RFC 4180 records: quoted fields may hold commas, quotes ("") and line breaks.</summary>
    private static List<List<string>> Records(string text, string source)
    {
        var records = new List<List<string>>();
        var field = new StringBuilder();
        var record = new List<string>();
        bool quoted = false, any = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
                continue;
            }
            switch (c)
            {
                case '"': quoted = true; any = true; break;
                case ',': record.Add(field.ToString()); field.Clear(); any = true; break;
                case '\r': break;
                case '\n':
                    if (any || field.Length > 0) { record.Add(field.ToString()); records.Add(record); }
                    record = new List<string>(); field.Clear(); any = false;
                    break;
                default: field.Append(c); any = true; break;
            }
        }
        if (quoted) throw new QuantToolsException(ErrorCode.CorruptFile, "a quoted field is not closed", source);
        if (any || field.Length > 0) { record.Add(field.ToString()); records.Add(record); }
        return records;
    }
}
