using System.Globalization;
using QuantTools.Core.Formats;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;
using YamlDotNet.RepresentationModel;

namespace QuantTools.Core.Pipelines;

/// <summary>
/// <c>assert</c>: a list of thresholds on what earlier steps produced; each one is a JUnit test case. A failed
/// assertion fails the job (status Failed) and names the job, layer and metric; later steps still run.
/// <code>
/// - assert:
///   - {metric: lint.errors, max: 0}
///   - {metric: qparams.OutputScale, layer: conv1, equals: 0.023252634331583977}
///   - {metric: output.max_diff_lsb, golden: model.safetensors, tensor: output, max: 0}
///   - {metric: output.equal, golden: model.safetensors, tensor: output}
/// </code>
/// </summary>
public sealed class AssertStep : PipelineStep
{
    public override string Kind => "assert";
    public override string Summary => "thresholds on earlier results (lint counts, layer qparams, calibrated qparams, quantization error, outputs vs golden files)";

    /// <summary>Metric → (the step that must come earlier, extra keys it takes).</summary>
    public static readonly IReadOnlyDictionary<string, (string? Needs, string[] Keys)> Metrics = new Dictionary<string, (string?, string[])>(StringComparer.Ordinal)
    {
        ["lint.errors"] = ("lint", ["rule", "layer"]),
        ["lint.warnings"] = ("lint", ["rule", "layer"]),
        ["lint.infos"] = ("lint", ["rule", "layer"]),
        ["lint.findings"] = ("lint", ["rule", "layer"]),
        ["qparams.InputScale"] = (null, ["layer"]),
        ["qparams.InputZeroPoint"] = (null, ["layer"]),
        ["qparams.OutputScale"] = (null, ["layer"]),
        ["qparams.OutputZeroPoint"] = (null, ["layer"]),
        ["qparams.WeightScaleMin"] = (null, ["layer"]),
        ["qparams.WeightScaleMax"] = (null, ["layer"]),
        ["qparams.WeightScaleSpread"] = (null, ["layer"]),
        ["calibrate.scale"] = ("calibrate", ["step"]),
        ["calibrate.zero_point"] = ("calibrate", ["step"]),
        ["calibrate.scale_min"] = ("calibrate", ["step"]),
        ["calibrate.scale_max"] = ("calibrate", ["step"]),
        ["calibrate.min"] = ("calibrate", ["step"]),
        ["calibrate.max"] = ("calibrate", ["step"]),
        ["quantize.max_error"] = ("quantize", []),
        ["quantize.max_error_lsb"] = ("quantize", []),
        ["quantize.saturated"] = ("quantize", []),
        ["output.max_diff_lsb"] = ("run", ["golden", "tensor", "engine", "batch", "lsb"]),
        ["output.equal"] = ("run", ["golden", "tensor", "engine", "batch"]),
        ["layer.max_diff"] = ("run", ["layer", "golden", "tensor", "engine", "batch"]),
        ["compare.sqnr"] = ("compare", ["layer", "engine", "step"]),
        ["compare.max_lsb"] = ("compare", ["layer", "engine", "step"]),
        ["compare.mse"] = ("compare", ["layer", "engine", "step"]),
        ["compare.max_abs_error"] = ("compare", ["layer", "engine", "step"]),
        ["compare.mean_abs_error"] = ("compare", ["layer", "engine", "step"]),
        ["compare.cosine"] = ("compare", ["layer", "engine", "step"]),
        ["compare.exact_ratio"] = ("compare", ["layer", "engine", "step"]),
        ["compare.failed_layers"] = ("compare", ["engine", "step"]),
        ["compare.first_diverging_layer"] = ("compare", ["engine", "step"]),
    };

    /// <summary>Metrics that check a condition and take no threshold.</summary>
    private static bool NoThreshold(string metric) => metric is "output.equal" or "compare.first_diverging_layer";

    private static readonly string[] Common = ["metric", "name", "equals", "tolerance", "min", "max"];

    private sealed record Check(string Metric, string Name, string? Layer, string? Rule, string? Step, string? Golden, string? Tensor,
        string? Engine, int Batch, double? Lsb, double? EqualsValue, double Tolerance, double? Min, double? Max)
    {
        public string Expected =>
            Metric == "output.equal" ? "bit-identical" :
            Metric == "compare.first_diverging_layer" ? "no diverging layer" :
            EqualsValue is { } e ? (Tolerance > 0 ? $"== {F(e)} ± {F(Tolerance)}" : $"== {F(e)}") :
            Min is { } lo && Max is { } hi ? $"{F(lo)} <= x <= {F(hi)}" :
            Min is { } l ? $">= {F(l)}" : $"<= {F(Max!.Value)}";

        public bool Holds(double actual) =>
            EqualsValue is { } e ? (Tolerance > 0 ? Math.Abs(actual - e) <= Tolerance : actual.Equals(e))
                : (Min is null || actual >= Min) && (Max is null || actual <= Max);
    }

    private readonly List<Check> _checks = new();
    private bool _capture;
    public override bool NeedsCapture => _capture;
    public override IEnumerable<GoldenTarget> GoldenFiles =>
        _checks.Where(c => c.Golden is not null).Select(c => new GoldenTarget(c.Golden!, c.Engine, c.Batch, c.Metric == "layer.max_diff" ? c.Layer : null, c.Tensor));

    public override void Configure(StepArgs args)
    {
        if (args.Value is not YamlSequenceNode seq)
        {
            args.Error("assert: expected a list of assertions, e.g. - {metric: lint.errors, max: 0}");
            return;
        }
        int n = 0;
        foreach (var item in seq.Children)
        {
            n++;
            if (item is not YamlMappingNode)
            {
                args.Yaml.Error(item, $"assert #{n}: expected a mapping with 'metric' (one of {string.Join(", ", Metrics.Keys)})");
                continue;
            }
            var a = args.Nested(item, $"assert #{n}");
            var metricText = a.String("metric");
            if (metricText is null) { a.Error("assert: the key 'metric' is required (e.g. lint.errors, qparams.OutputScale, output.max_diff_lsb)"); continue; }
            var metric = Metrics.Keys.FirstOrDefault(k => string.Equals(k, metricText, StringComparison.OrdinalIgnoreCase));
            if (metric is null)
            {
                a.Error("metric", $"assert: unknown metric '{metricText}'; expected one of {string.Join(", ", Metrics.Keys)}");
                continue;
            }
            var (needs, keys) = Metrics[metric];
            a.Allow([.. Common, .. keys]);
            if (needs is not null && !args.Job.Earlier.Any(s => s.Kind == needs))
                a.Error("metric", $"assert: metric '{metric}' needs an earlier '{needs}' step in this job");
            if (metric.StartsWith("qparams.", StringComparison.Ordinal) && !args.Job.HasModel)
                a.Error("metric", $"assert: metric '{metric}' needs the job's models");
            var layer = a.String("layer");
            if ((metric.StartsWith("qparams.", StringComparison.Ordinal) || metric == "layer.max_diff") && layer is null)
                a.Error($"assert: metric '{metric}' needs 'layer' (the module path, as Get-QParams names it)");
            string? golden = null;
            if (keys.Contains("golden"))
            {
                golden = a.File("golden");
                if (!a.Has("golden")) a.Error($"assert: metric '{metric}' needs 'golden' (a tensor file)");
                if (golden is not null) args.Job.Files.Add(golden);
            }
            string? tensor = a.String("tensor");
            if (metric == "layer.max_diff" && tensor is null) a.Error("assert: metric 'layer.max_diff' needs 'tensor' (the golden integer tensor's name)");
            if (golden is not null && !golden.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && a.Has("tensor") && tensor is not null)
                args.Yaml.CheckTensorNames(a.Get("tensor")!, golden, [tensor], "assert.tensor");
            else if (golden is not null && tensor is null && metric.StartsWith("output.", StringComparison.Ordinal) && !golden.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
                     && args.Yaml.TensorNames(a.Get("golden")!, golden, "assert.golden") is { Count: > 1 } gn && !gn.Contains("output"))
                a.Error("golden", $"assert: '{Path.GetFileName(golden)}' holds {gn.Count} tensors and none is named 'output': name the golden tensor with 'tensor'");
            string? engine = null;
            if (a.Has("engine"))
            {
                engine = a.Choice("engine", PipelineParser.EngineNames);
                var run = args.Job.Earlier.OfType<RunStep>().LastOrDefault();
                if (engine is not null && run is not null && !run.Engines.Contains(engine))
                    a.Error("engine", $"assert: engine '{engine}' is not among the run step's engines ({string.Join(", ", run.Engines)})");
            }
            var eq = a.Double("equals");
            var min = a.Double("min");
            var max = a.Double("max");
            var tol = a.Double("tolerance") ?? 0;
            if (NoThreshold(metric))
            {
                if (eq is not null || min is not null || max is not null)
                    a.Error($"assert: {metric} takes no equals/min/max ({(metric == "output.equal" ? "it requires identical bits" : "it requires that no layer diverges past the compare step's thresholds")})");
            }
            else if (eq is null && min is null && max is null)
                a.Error($"assert: metric '{metric}' needs a threshold: equals (with optional tolerance), min and/or max");
            else if (eq is not null && (min is not null || max is not null))
                a.Error("equals", "assert: give either equals or min/max, not both");
            if (a.Has("tolerance") && eq is null) a.Error("tolerance", "assert: tolerance goes with equals");
            var lsb = a.Double("lsb");
            if (lsb is <= 0) a.Error("lsb", "assert: lsb must be positive");
            var batch = a.Long("batch") ?? 0;
            if (batch < 0) a.Error("batch", "assert: batch must be 0 or more");
            var stepName = a.String("step");
            bool isCompare = metric.StartsWith("compare.", StringComparison.Ordinal);
            if (stepName is not null && !isCompare && !args.Job.Earlier.OfType<CalibrateStep>().Any(c => c.Name == stepName))
                a.Error("step", $"assert: no earlier calibrate step named '{stepName}'");
            if (isCompare)
            {
                var compares = args.Job.Earlier.OfType<CompareStep>().ToList();
                if (stepName is not null && compares.Count > 0 && compares.All(x => x.Name != stepName))
                    a.Error("step", $"assert: no earlier compare step named '{stepName}'; there is {string.Join(", ", compares.Select(x => x.Name))}");
                var cmp = compares.LastOrDefault(x => stepName is null || x.Name == stepName);
                stepName ??= cmp?.Name;
                if (engine is not null && cmp is not null && !cmp.Engines.Contains(engine))
                    a.Error("engine", $"assert: engine '{engine}' is not among the compare step's engines ({string.Join(", ", cmp.Engines)})");
            }
            // without 'step': the calibrate step closest before this assert
            if (metric.StartsWith("calibrate.", StringComparison.Ordinal)) stepName ??= args.Job.Earlier.OfType<CalibrateStep>().LastOrDefault()?.Name;
            if (metric == "layer.max_diff" || (metric == "output.max_diff_lsb" && lsb is null)) _capture = true;
            var name = a.String("name") ?? metric + (layer is null ? "" : $" {layer}") + (a.String("rule") is { } r ? $" {r}" : "")
                + (tensor is null || golden is null ? "" : $" {Path.GetFileName(golden)}:{tensor}");
            _checks.Add(new Check(metric, name, layer, a.String("rule"), stepName, golden, tensor, engine, (int)batch, lsb, eq, tol, min, max));
        }
        if (n == 0) args.Error("assert: the list is empty");
    }

    public override void Execute(JobContext ctx, StepResult result)
    {
        foreach (var c in _checks)
        {
            ctx.Cancel.ThrowIfCancellationRequested();
            result.Assertions.AddRange(Evaluate(ctx, c));
        }
        result.Metrics["assertions"] = result.Assertions.Count;
        result.Metrics["failed"] = result.Assertions.Count(a => !a.Passed);
    }

    private static AssertionResult Result(Check c, double? actual, string? engine = null, string? message = null, bool? passed = null)
    {
        bool ok = passed ?? (actual is { } v && c.Holds(v));
        return new AssertionResult
        {
            Name = engine is null ? c.Name : $"{c.Name} [{engine}]",
            Metric = c.Metric,
            Layer = c.Layer,
            Engine = engine,
            Expected = c.Expected,
            Actual = actual,
            Passed = ok,
            Message = message ?? (ok ? null : actual is null ? "no value" : $"{F(actual.Value)} is not {c.Expected}"),
        };
    }

    private static IEnumerable<AssertionResult> Evaluate(JobContext ctx, Check c)
    {
        var family = c.Metric[..c.Metric.IndexOf('.')];
        var what = c.Metric[(c.Metric.IndexOf('.') + 1)..];
        switch (family)
        {
            case "lint":
            {
                var f = ctx.Findings ?? [];
                var sel = f.Where(x => (c.Rule is null || x.Rule == c.Rule) && (c.Layer is null || x.Layer == c.Layer));
                sel = what switch
                {
                    "errors" => sel.Where(x => x.Severity == Severity.Error),
                    "warnings" => sel.Where(x => x.Severity == Severity.Warning),
                    "infos" => sel.Where(x => x.Severity == Severity.Info),
                    _ => sel,
                };
                var list = sel.ToList();
                var r = Result(c, list.Count);
                if (!r.Passed && list.Count > 0)
                    r = Result(c, list.Count, message: $"{list.Count} finding(s) is not {c.Expected}: " +
                        string.Join("; ", list.Take(5).Select(x => $"{x.Severity} {x.Layer} {x.Rule}")));
                yield return r;
                break;
            }
            case "qparams":
            {
                var row = ctx.QParams.FirstOrDefault(x => x.Name == c.Layer);
                if (row is null)
                {
                    yield return Result(c, null, message: $"the model has no layer '{c.Layer}'; layers: {string.Join(", ", ctx.QParams.Select(x => x.Name).Take(30))}", passed: false);
                    break;
                }
                double? v = what switch
                {
                    "InputScale" => row.InputScale,
                    "InputZeroPoint" => row.InputZeroPoint,
                    "OutputScale" => row.OutputScale,
                    "OutputZeroPoint" => row.OutputZeroPoint,
                    "WeightScaleMin" => row.WeightScaleMin,
                    "WeightScaleMax" => row.WeightScaleMax,
                    _ => row.WeightScaleSpread,
                };
                yield return v is null ? Result(c, null, message: $"layer '{c.Layer}' ({row.Kind}) has no {what}", passed: false) : Result(c, v);
                break;
            }
            case "calibrate":
            {
                var name = c.Step!;
                var obs = ctx.Calibrations[name];
                var qp = ctx.CalibratedQParams[name];
                var m = CalibrateStep.Metrics(obs, qp).Where(x => x.Item1 == what).Select(x => (double?)x.Item2).FirstOrDefault();
                yield return m is null ? Result(c, null, message: $"calibrate step '{name}' has no {what} ({(qp.IsPerChannel ? "per-channel: use scale_min / scale_max" : "per-tensor")})", passed: false)
                    : Result(c, m);
                break;
            }
            case "quantize":
            {
                var metrics = ctx.QuantizeMetrics ?? new Dictionary<string, double>();
                yield return Result(c, metrics.TryGetValue(what, out var v) ? v : null);
                break;
            }
            case "compare":
            {
                if (!ctx.Comparisons.TryGetValue(c.Step!, out var byEngine))
                {
                    yield return Result(c, null, message: $"compare step '{c.Step}' has no results", passed: false);
                    break;
                }
                foreach (var (engine, s) in byEngine)
                    if (c.Engine is null || c.Engine == engine) yield return CompareMetric(c, what, engine, s);
                break;
            }
            default:
                foreach (var engine in c.Engine is null ? ctx.Runs.Keys.ToList() : [c.Engine])
                    yield return CompareRun(ctx, c, engine);
                break;
        }
    }

    private static AssertionResult CompareRun(JobContext ctx, Check c, string engine)
    {
        if (!ctx.Runs.TryGetValue(engine, out var runs)) return Result(c, null, engine, $"the run step did not run engine {engine}", false);
        if (c.Batch >= runs.Count) return Result(c, null, engine, $"batch {c.Batch} does not exist; the run had {runs.Count} input batch(es)", false);
        var run = runs[c.Batch];
        var golden = GoldenTensor(c);
        if (c.Metric == "layer.max_diff")
        {
            var layer = run.Layer(c.Layer!);
            if (layer is null)
                return Result(c, null, engine, $"no captured layer '{c.Layer}'; captured: {string.Join(", ", run.Layers.Select(l => l.Name).Take(30))}", false);
            var got = layer.Value.IntRepr;
            if (!got.Shape.SequenceEqual(golden.Shape))
                return Result(c, null, engine, $"layer '{c.Layer}' has shape [{string.Join(", ", got.Shape)}], golden '{c.Tensor}' [{string.Join(", ", golden.Shape)}]", false);
            double max = 0;
            for (int i = 0; i < got.Length; i++) max = Math.Max(max, Math.Abs(got.GetDouble(i) - golden.GetDouble(i)));
            return Result(c, max, engine);
        }
        var output = run.Output;
        if (!output.Shape.SequenceEqual(golden.Shape))
            return Result(c, null, engine, $"output has shape [{string.Join(", ", output.Shape)}], golden '{c.Tensor ?? "output"}' [{string.Join(", ", golden.Shape)}]", false);
        var a = output.ToFloat32().AsSpan<float>();
        var b = golden.ToFloat32().AsSpan<float>();
        if (c.Metric == "output.equal")
        {
            int diff = 0, first = -1;
            for (int i = 0; i < a.Length; i++)
                if (BitConverter.SingleToInt32Bits(a[i]) != BitConverter.SingleToInt32Bits(b[i])) { diff++; if (first < 0) first = i; }
            return Result(c, diff, engine, diff == 0 ? null : $"{diff} of {a.Length} values differ (first at flat index {first}: {F(a[first])} vs golden {F(b[first])})", diff == 0);
        }
        double lsb = c.Lsb ?? run.QuantizedOutput?.QParams.Scale ?? (run.Layers.Count > 0 ? run.Layers[^1].QParams.Scale : double.NaN);
        if (double.IsNaN(lsb)) return Result(c, null, engine, "cannot tell the output's LSB (no quantized layer was captured); give lsb", false);
        double maxDiff = 0;
        int at = -1;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d) || d > maxDiff) { maxDiff = double.IsNaN(d) ? double.PositiveInfinity : d; at = i; }
        }
        double inLsb = maxDiff / lsb;
        var r = Result(c, inLsb, engine);
        return r.Passed ? r : Result(c, inLsb, engine,
            $"max |output - golden| = {F(maxDiff)} = {F(inLsb)} LSB (scale {F(lsb)}) at flat index {at} ({F(a[at])} vs golden {F(b[at])}), not {c.Expected}", false);
    }

    private static AssertionResult CompareMetric(Check c, string what, string engine, Compare.ComparisonSummary s)
    {
        AssertionResult Named(double? actual, string? layer, string? message = null, bool? passed = null)
        {
            var r = Result(c, actual, engine, message, passed);
            return layer is null || c.Layer is not null ? r : new AssertionResult
            {
                Name = r.Name, Metric = r.Metric, Layer = layer, Engine = r.Engine, Expected = r.Expected, Actual = r.Actual, Passed = r.Passed,
                Message = r.Passed ? null : $"layer '{layer}': {r.Message}",
            };
        }
        if (what == "first_diverging_layer")
        {
            var first = s.FirstDivergingLayer;
            if (first is null) return Named(null, null, passed: true);
            var row = s.Results.First(r => r.Layer == first);
            var detail = $"SQNR {F(row.Sqnr)} dB" + (row.MaxLsb is { } ml ? $", max {ml} LSB" : "") + (row.TopHint is { } h ? $"; likely {h}" : "");
            return Named(row.Index, first, $"first diverging layer '{first}' ({detail})", false);
        }
        if (what == "failed_layers")
        {
            var r0 = Named(s.Failed, s.FirstDivergingLayer);
            return r0;
        }
        var rows = c.Layer is null ? s.Results.ToList() : s.Results.Where(r => r.Layer == c.Layer).ToList();
        if (rows.Count == 0)
            return Named(null, null, c.Layer is null ? "no compared layers" : $"layer '{c.Layer}' was not compared; compared: {string.Join(", ", s.Results.Select(r => r.Layer).Take(30))}", false);
        double? Value(Compare.ComparisonResult r) => what switch
        {
            "sqnr" => r.Sqnr,
            "max_lsb" => r.MaxLsb,
            "mse" => r.Mse,
            "max_abs_error" => r.MaxAbsError,
            "mean_abs_error" => r.MeanAbsError,
            "cosine" => r.Cosine,
            _ => r.ExactRatio,
        };
        // lower is worse for sqnr, cosine, exact_ratio; higher for the errors
        bool lowWorse = what is "sqnr" or "cosine" or "exact_ratio";
        var valued = rows.Where(r => Value(r) is not null).ToList();
        if (valued.Count == 0) return Named(null, null, $"no {what} for {(c.Layer is null ? "any compared layer" : $"layer '{c.Layer}'")} (no integers on one grid)", false);
        // the first layer that breaks the threshold, else the worst one
        var bad = valued.FirstOrDefault(r => !c.Holds(Value(r)!.Value));
        var pick = bad ?? (lowWorse ? valued.MinBy(r => Value(r)!.Value) : valued.MaxBy(r => Value(r)!.Value))!;
        return Named(Value(pick), pick.Layer);
    }

    private static Tensor GoldenTensor(Check c)
    {
        var all = TensorFile.ReadAll(c.Golden!);
        if (c.Tensor is null && all.Count == 1) return all[0].Tensor;
        var name = c.Tensor ?? "output";
        foreach (var (n, t) in all) if (n == name) return t;
        throw new QuantToolsException(ErrorCode.InvalidArgument,
            $"no tensor '{name}' in the golden file; it has {string.Join(", ", all.Select(x => x.Name).Take(20))}", c.Golden);
    }

    internal static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
