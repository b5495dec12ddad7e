using System.Globalization;
using System.Text;
using QuantTools.Core.Formats;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Quantization;
using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Pipelines;

/// <summary><c>qparams</c>: the per-layer qparams table of the model (Get-QParams -Path); written as .csv or .json by <c>outputs</c>.</summary>
public sealed class QParamsStep : PipelineStep
{
    public override string Kind => "qparams";
    public override string Summary => "the model's per-layer qparams table (as Get-QParams -Path gives it)";
    public override IReadOnlyList<string> OutputExtensions => [".csv", ".json"];

    public override void Configure(StepArgs args)
    {
        args.Allow([]);
        if (!args.Job.HasModel) args.Error($"step 'qparams' needs the job's models");
    }

    public override void Execute(JobContext ctx, StepResult result)
    {
        var rows = ctx.QParams;
        result.Metrics["layers"] = rows.Count;
        result.Metrics["quantized_layers"] = rows.Count(r => r.OutputScale is not null);
        if (ctx.OutputFile(Kind) is { } file)
        {
            if (file.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) PipelineJson.WriteAtomic(file, rows);
            else WriteCsv(file, rows);
            result.Output = ctx.Relative(file);
        }
    }

    internal static void WriteCsv(string file, IReadOnlyList<LayerQParams> rows) =>
        PipelineJson.WriteTextAtomic(file, LayerQParamsCsv.ToCsv(rows));
}

/// <summary><c>lint</c>: Test-QuantModel's findings (engine: the job's first engine unless given).</summary>
public sealed class LintStep : PipelineStep
{
    public override string Kind => "lint";
    public override string Summary => "Test-QuantModel's findings (counts of Error, Warning, Info)";
    public override IReadOnlyList<string> OutputExtensions => [".json"];
    private string? _engine;

    public override void Configure(StepArgs args)
    {
        args.Allow(["engine"]);
        if (!args.Job.HasModel) args.Error("step 'lint' needs the job's models");
        _engine = args.Choice("engine", PipelineParser.EngineNames);
    }

    public override void Execute(JobContext ctx, StepResult result)
    {
        var engine = QEngineInfo.Parse(_engine ?? ctx.Job.Engines[0]);
        var findings = QuantModelLinter.Lint(ctx.Model, engine).ToList();
        ctx.Findings = findings;
        result.Metrics["errors"] = findings.Count(f => f.Severity == Severity.Error);
        result.Metrics["warnings"] = findings.Count(f => f.Severity == Severity.Warning);
        result.Metrics["infos"] = findings.Count(f => f.Severity == Severity.Info);
        if (ctx.OutputFile(Kind) is { } file)
        {
            PipelineJson.WriteAtomic(file, findings.Select(f => new { Severity = f.Severity.ToString(), f.Layer, f.Rule, f.Message }).ToList());
            result.Output = ctx.Relative(file);
        }
    }
}

/// <summary><c>calibrate</c>: a PyTorch observer (names and arguments as in torch.ao.quantization) over the job's inputs.</summary>
public sealed class CalibrateStep : PipelineStep
{
    public override string Kind => "calibrate";
    public override string Summary => "an observer over every input batch (PyTorch's observer names and arguments, or an engine's default)";
    public override IReadOnlyList<string> OutputExtensions => [".json"];

    public static readonly IReadOnlyList<string> Keys =
        ["name", "engine", "weight", .. ObserverConfig.Keys];

    public string Name { get; private set; } = "calibrate";
    private string? _observer;
    private string? _engine;
    private bool _weight;
    private ObserverOptions _options = new();

    public override void Configure(StepArgs args)
    {
        args.Allow(Keys);
        if (!args.Job.HasInputs) args.Error("step 'calibrate' needs the job's inputs");
        Name = args.String("name") ?? "calibrate";
        _observer = args.String("observer");
        _engine = args.Choice("engine", ["x86", "fbgemm", "qnnpack", "onednn"]);
        _weight = args.Bool("weight") ?? false;
        if (_observer is not null && _engine is not null) args.Error("engine", "calibrate: give either observer or engine (its default observer), not both");
        if (_observer is null && _engine is null) _observer = "MinMaxObserver";
        var o = new ObserverOptions();
        T? Wrap<T>(string key, Func<string, T> parse)
        {
            var t = args.String(key);
            if (t is null) return default;
            try { return parse(t); }
            catch (QuantToolsException e) { args.Error(key, $"calibrate.{key}: {e.Message}"); return default; }
        }
        if (args.Has("dtype")) o.Dtype = Wrap("dtype", DTypeInfo.Parse);
        if (args.Has("qscheme")) o.QScheme = Wrap("qscheme", QSchemeInfo.Parse);
        if (args.Bool("reduce_range") is { } rr) o.ReduceRange = rr;
        o.QuantMin = args.Long("quant_min");
        o.QuantMax = args.Long("quant_max");
        if (args.Double("eps") is { } eps) o.Eps = (float)eps;
        if (args.Long("ch_axis") is { } ax) o.ChAxis = (int)ax;
        if (args.Double("averaging_constant") is { } ac) o.AveragingConstant = ac;
        if (args.Long("bins") is { } bins) o.Bins = (int)bins;
        o.Scale = args.Double("scale");
        o.ZeroPoint = args.Long("zero_point");
        _options = o;
        if (_engine is not null && args.Has("observer") == false && ObserverConfig.Keys.Any(k => k != "observer" && args.Has(k)))
            args.Error("calibrate: observer arguments apply to 'observer', not to an engine's default observer");
        try { Create(); }
        catch (QuantToolsException e) { args.Error($"calibrate: {e.Message}"); }
        if (args.Job.Earlier.OfType<CalibrateStep>().Any(c => c.Name == Name))
            args.Error("name", $"calibrate: a calibrate step named '{Name}' comes earlier in this job; give this one another name");
    }

    private Observer Create() => _engine is not null ? ObserverFactory.ForEngine(_engine, _weight) : ObserverFactory.Create(_observer!, _options.Clone());

    public override void Execute(JobContext ctx, StepResult result)
    {
        var obs = Create();
        foreach (var (_, t) in ctx.Inputs)
        {
            ctx.Cancel.ThrowIfCancellationRequested();
            obs.Forward(t);
        }
        var qp = obs.CalculateQParams();
        ctx.Calibrations[Name] = obs;
        ctx.CalibratedQParams[Name] = qp;
        ctx.LastCalibration = Name;
        result.Message = $"{obs.Name}: {qp}" + string.Concat(obs.Warnings.Select(w => $"; warning: {w}"));
        result.Metrics["batches"] = ctx.Inputs.Count;
        foreach (var (k, v) in Metrics(obs, qp)) result.Metrics[k] = v;
        if (ctx.OutputFile(Kind) is { } file)
        {
            PipelineJson.WriteAtomic(file, new
            {
                Observer = obs.Name, DType = qp.DType.TorchName(), QScheme = qp.QScheme.TorchName(), qp.Scales, qp.ZeroPoints,
                Axis = qp.IsPerChannel ? qp.Axis : (int?)null, qp.QuantMin, qp.QuantMax, MinVal = obs.MinVal, MaxVal = obs.MaxVal,
            });
            result.Output = ctx.Relative(file);
        }
    }

    internal static IEnumerable<(string, double)> Metrics(Observer obs, QParams qp)
    {
        if (qp.IsPerChannel)
        {
            yield return ("scale_min", qp.Scales.Min());
            yield return ("scale_max", qp.Scales.Max());
        }
        else
        {
            yield return ("scale", qp.Scale);
            yield return ("zero_point", qp.ZeroPoint);
        }
        if (obs.MinVal.Length > 0)
        {
            yield return ("min", obs.MinVal.Min());
            yield return ("max", obs.MaxVal.Max());
        }
    }
}

/// <summary><c>quantize</c>: quantizes every input with calibrated (or given) qparams; measures rounding error and saturation.</summary>
public sealed class QuantizeStep : PipelineStep
{
    public override string Kind => "quantize";
    public override string Summary => "quantize every input with a calibrate step's qparams (or scale, zero_point, dtype)";
    public override IReadOnlyList<string> OutputExtensions => [".safetensors"];
    private string? _from;
    private QParams? _fixed;

    public override void Configure(StepArgs args)
    {
        args.Allow(["from", "scale", "zero_point", "dtype"]);
        if (!args.Job.HasInputs) args.Error("step 'quantize' needs the job's inputs");
        _from = args.String("from");
        var scale = args.Double("scale");
        if (scale is not null)
        {
            if (_from is not null) args.Error("from", "quantize: give either from (a calibrate step) or scale, not both");
            var dtype = DType.QUInt8;
            if (args.String("dtype") is { } dt)
            {
                try { dtype = DTypeInfo.Parse(dt); } catch (QuantToolsException e) { args.Error("dtype", $"quantize.dtype: {e.Message}"); }
            }
            try { _fixed = QParams.PerTensor(scale.Value, args.Long("zero_point") ?? 0, dtype); }
            catch (QuantToolsException e) { args.Error("scale", $"quantize: {e.Message}"); }
        }
        else
        {
            if (args.Has("zero_point") || args.Has("dtype")) args.Error("quantize: zero_point and dtype go with scale");
            var cal = args.Job.Earlier.OfType<CalibrateStep>().ToList();
            if (cal.Count == 0) args.Error("quantize: needs scale (and zero_point, dtype) or an earlier calibrate step");
            else if (_from is not null && cal.All(c => c.Name != _from))
                args.Error("from", $"quantize.from: no earlier calibrate step named '{_from}'; there is {string.Join(", ", cal.Select(c => c.Name))}");
            _from ??= cal.LastOrDefault()?.Name; // the calibrate step closest before this one
        }
    }

    public override void Execute(JobContext ctx, StepResult result)
    {
        var qp = _fixed ?? ctx.CalibratedQParams[_from!];
        var list = new List<(string, Tensor, QTensor)>();
        long values = 0, saturated = 0;
        double maxErr = 0, maxLsb = 0;
        foreach (var (name, t) in ctx.Inputs)
        {
            ctx.Cancel.ThrowIfCancellationRequested();
            var x = t.ToFloat32();
            var q = Quantizer.Quantize(x, qp);
            var dq = Quantizer.Dequantize(q).AsSpan<float>();
            var xs = x.AsSpan<float>();
            var ints = q.IntRepr;
            int inner = 1, channels = 1;
            if (qp.IsPerChannel)
            {
                channels = x.Shape[qp.Axis];
                for (int d = qp.Axis + 1; d < x.Rank; d++) inner *= x.Shape[d];
            }
            for (int i = 0; i < xs.Length; i++)
            {
                double e = Math.Abs((double)xs[i] - dq[i]);
                if (double.IsNaN(e)) continue;
                double s = qp.IsPerChannel ? qp.Scales[(i / inner) % channels] : qp.Scale;
                maxErr = Math.Max(maxErr, e);
                maxLsb = Math.Max(maxLsb, e / s);
                var v = ints.GetDouble(i);
                if (v <= qp.QuantMin || v >= qp.QuantMax) saturated++;
            }
            values += xs.Length;
            list.Add((name, x, q));
        }
        ctx.Quantized = list;
        result.Metrics["values"] = values;
        result.Metrics["saturated"] = saturated;
        result.Metrics["max_error"] = maxErr;
        result.Metrics["max_error_lsb"] = maxLsb;
        result.Message = qp.ToString();
        ctx.QuantizeMetrics = new Dictionary<string, double>(result.Metrics);
        if (ctx.OutputFile(Kind) is { } file)
        {
            QTensorFile.Write(file, list.Select(e => (e.Item1, (object)e.Item3)).ToList());
            result.Output = ctx.Relative(file);
        }
    }
}

/// <summary><c>run</c>: runs the model on every input under each engine (QuantTools' integer kernels), optionally keeping every layer.</summary>
public sealed class RunStep : PipelineStep
{
    public override string Kind => "run";
    public override string Summary => "run the model on every input with each engine (capture: true keeps every layer)";
    public override IReadOnlyList<string> OutputExtensions => [".safetensors"];
    public IReadOnlyList<string> Engines { get; private set; } = [];
    private bool _capture;

    public override void Configure(StepArgs args)
    {
        args.Allow(["engines", "capture"]);
        if (!args.Job.HasModel) args.Error("step 'run' needs the job's models");
        if (!args.Job.HasInputs) args.Error("step 'run' needs the job's inputs");
        var engines = new List<string>();
        if (args.List("engines") is { } list)
            foreach (var (t, n) in list)
            {
                var e = PipelineParser.EngineNames.FirstOrDefault(x => string.Equals(x, t, StringComparison.OrdinalIgnoreCase));
                if (e is null) args.Yaml.Error(n, $"run.engines: unknown engine '{t}'; expected one of {string.Join(", ", PipelineParser.EngineNames)}");
                else engines.Add(e);
            }
        Engines = engines.Count > 0 ? engines : args.Job.Engines;
        _capture = args.Bool("capture") ?? false;
    }

    public override void Execute(JobContext ctx, StepResult result)
    {
        bool capture = _capture || ctx.CaptureRequested;
        var file = ctx.OutputFile(Kind);
        var entries = new List<(string, object)>();
        ctx.Runs.Clear();
        foreach (var engine in Engines)
        {
            var exec = ctx.Executor(engine);
            var runs = new List<ModelResult>();
            foreach (var (name, t) in ctx.Inputs)
            {
                ctx.Cancel.ThrowIfCancellationRequested();
                var r = exec.Run(t, capture, ctx.Cancel);
                runs.Add(r);
                if (file is not null) entries.AddRange(ModelRunFiles.Entries(r, $"{engine}/{runs.Count - 1}"));
            }
            ctx.Runs[engine] = runs;
            result.Metrics[$"{engine}.batches"] = runs.Count;
            if (capture) result.Metrics[$"{engine}.layers"] = runs.Count > 0 ? runs[0].Layers.Count : 0;
        }
        if (file is not null)
        {
            QTensorFile.Write(file, entries);
            result.Output = ctx.Relative(file);
        }
    }
}

internal static class Csv
{
    public static string Field(string? s) =>
        s is null ? "" : s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
}
