using System.Text.RegularExpressions;
using QuantTools.Core.Compare;
using QuantTools.Core.Formats;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;
using YamlDotNet.RepresentationModel;

namespace QuantTools.Core.Pipelines;

/// <summary>
/// <c>compare</c>: compares the run step's output and captured layers (Compare-QuantOutput's metrics, layer by layer)
/// against another engine of the same run, or a golden file (golden model JSON, .safetensors, a folder of .npy).
/// Its results feed <c>assert</c> (<c>compare.sqnr</c>, <c>compare.max_lsb</c>, <c>compare.first_diverging_layer</c>, ...)
/// and its per-layer rows appear in the step's <see cref="StepResult.Layers"/>.
/// <code>
/// - run: {engines: [x86, qnnpack]}
/// - compare: {against: {engine: x86}, max_lsb: 1}
/// - compare: {name: golden, against: {golden: model.json}, min_sqnr: 40}
/// - assert:
///   - {metric: compare.max_lsb, max: 1}
///   - {metric: compare.first_diverging_layer, step: golden}
/// </code>
/// </summary>
public sealed class CompareStep : PipelineStep
{
    public override string Kind => "compare";
    public override string Summary => "the run's output and layers against another engine or a golden file (SQNR, LSB, first diverging layer)";
    public override bool NeedsCapture => _layers;
    public override IEnumerable<GoldenTarget> GoldenFiles =>
        Golden is null ? [] : [new GoldenTarget(Golden, Engines.FirstOrDefault(), _batch, null, OutputTensor == "output" ? null : OutputTensor)];

    public static readonly IReadOnlyList<string> Keys = ["name", "against", "engines", "batch", "layers", "layer_map", "min_sqnr", "max_lsb", "tensor"];

    public string Name { get; private set; } = "compare";
    /// <summary>The reference engine (against: {engine: ...}), or null.</summary>
    public string? AgainstEngine { get; private set; }
    /// <summary>The golden file or folder (against: {golden: ...}), or null.</summary>
    public string? Golden { get; private set; }
    /// <summary>The golden tensor that is the reference output (default <c>output</c>; <c>float_output</c> compares with the float model).</summary>
    public string OutputTensor { get; private set; } = "output";
    public IReadOnlyList<string> Engines { get; private set; } = [];
    private int _batch;
    private bool _layers = true;
    private CompareOptions _options = new();

    public override void Configure(StepArgs args)
    {
        args.Allow(Keys);
        var run = args.Job.Earlier.OfType<RunStep>().LastOrDefault();
        if (run is null) args.Error("step 'compare' needs an earlier 'run' step in this job");
        Name = args.String("name") ?? "compare";
        if (args.Job.Earlier.OfType<CompareStep>().Any(c => c.Name == Name))
            args.Error("name", $"compare: a compare step named '{Name}' comes earlier in this job; give this one another name");
        _batch = (int)(args.Long("batch") ?? 0);
        if (_batch < 0) args.Error("batch", "compare.batch: must be 0 or more");
        _layers = args.Bool("layers") ?? true;
        var minSqnr = args.Double("min_sqnr");
        var maxLsb = args.Long("max_lsb");
        if (maxLsb is < 0) args.Error("max_lsb", "compare.max_lsb: must be 0 or more");
        var tensor = args.String("tensor");

        List<KeyValuePair<string, string>>? map = null;
        if (args.Get("layer_map") is { } lm)
        {
            if (lm is not YamlMappingNode m) args.Yaml.Error(lm, "compare.layer_map: expected a mapping of names (reference: difference) or regex rules (pattern: replacement)");
            else
            {
                map = new();
                foreach (var (k, v) in m.Children)
                    if (args.Yaml.Text(k, "compare.layer_map key") is { } ks && args.Yaml.Text(v, "compare.layer_map value") is { } vs)
                        map.Add(new(ks, vs));
            }
        }
        _options = new CompareOptions { MinSqnr = minSqnr, MaxLsb = maxLsb, LayerMap = map };

        // against: {engine: e} | {golden: path}
        var against = args.Get("against");
        if (against is null) args.Error("compare: the key 'against' is required: {engine: <engine>} or {golden: <file or folder>}");
        else if (against is not YamlMappingNode)
            args.Yaml.Error(against, "compare.against: expected a mapping: {engine: <engine>} or {golden: <file or folder>}");
        else
        {
            var a = args.Nested(against, "compare.against");
            a.Allow(["engine", "golden"]);
            if (a.Has("engine") == a.Has("golden"))
                a.Error("compare.against: give exactly one of engine (another engine of the run) or golden (a golden file or folder)");
            if (a.Has("engine"))
            {
                AgainstEngine = a.Choice("engine", PipelineParser.EngineNames);
                if (AgainstEngine is not null && run is not null && !run.Engines.Contains(AgainstEngine))
                    a.Error("engine", $"compare.against.engine: '{AgainstEngine}' is not among the run step's engines ({string.Join(", ", run.Engines)})");
                if (tensor is not null) args.Error("tensor", "compare.tensor: goes with against: {golden: ...}");
            }
            else if (a.Get("golden") is { } g && a.String("golden") is { } gt)
            {
                var full = Path.GetFullPath(Path.Combine(args.Yaml.BaseDir, gt));
                if (gt.Length == 0) a.Error("golden", "compare.against.golden: expected a file or folder path, found an empty value");
                else if (Directory.Exists(full))
                {
                    if (Directory.GetFiles(full, "*.npy").Length == 0) a.Error("golden", $"compare.against.golden: the folder '{gt}' holds no .npy files named by layer");
                    else { Golden = full; args.Job.Files.AddRange(Directory.GetFiles(full, "*.npy").Order(StringComparer.Ordinal)); }
                }
                else if (!File.Exists(full))
                    args.Yaml.Error(g, $"compare.against.golden: file '{gt}' does not exist (looked for {full})");
                else if (Path.GetExtension(full).ToLowerInvariant() is not (".json" or ".safetensors" or ".npz" or ".npy"))
                    args.Yaml.Error(g, $"compare.against.golden: '{gt}' is not a golden model .json, .safetensors, .npz, .npy or a folder of .npy");
                else
                {
                    Golden = full;
                    args.Job.Files.Add(full);
                }
            }
        }
        OutputTensor = tensor ?? "output";

        // engines: which of the run's engines are compared (default: all but the reference engine)
        var engines = new List<string>();
        if (args.List("engines") is { } list)
            foreach (var (t, n) in list)
            {
                var e = PipelineParser.EngineNames.FirstOrDefault(x => string.Equals(x, t, StringComparison.OrdinalIgnoreCase));
                if (e is null) args.Yaml.Error(n, $"compare.engines: unknown engine '{t}'; expected one of {string.Join(", ", PipelineParser.EngineNames)}");
                else if (run is not null && !run.Engines.Contains(e))
                    args.Yaml.Error(n, $"compare.engines: '{e}' is not among the run step's engines ({string.Join(", ", run.Engines)})");
                else engines.Add(e);
            }
        Engines = engines.Count > 0 ? engines : (run?.Engines ?? []).Where(e => e != AgainstEngine).ToList();
        if (AgainstEngine is not null && Engines.Count == 0 && run is not null)
            args.Error($"compare: the run step has no engine besides '{AgainstEngine}' to compare; add one to run.engines");
        if (AgainstEngine is not null && Engines.Contains(AgainstEngine))
            args.Error("engines", $"compare.engines: '{AgainstEngine}' is the reference engine itself");
    }

    public override void Execute(JobContext ctx, StepResult result)
    {
        var summaries = new Dictionary<string, ComparisonSummary>(StringComparer.Ordinal);
        List<(string Name, object Value)>? golden = null;
        result.Layers = new List<CompareLayerRow>();
        foreach (var engine in Engines)
        {
            ctx.Cancel.ThrowIfCancellationRequested();
            var dif = Batch(ctx, engine);
            List<(string Name, object Value)> reference;
            if (AgainstEngine is not null) reference = Layers(Batch(ctx, AgainstEngine), _layers);
            else reference = golden ??= GoldenLayers(Golden!, OutputTensor, _layers);
            var difference = Layers(dif, _layers);
            var fitted = FitBatch(reference, difference);
            var s = QuantComparer.Compare(reference, fitted, _options);
            summaries[engine] = s;
            var against = AgainstEngine ?? Path.GetFileName(Golden!);
            foreach (var r in s.Results)
                result.Layers.Add(new CompareLayerRow
                {
                    Compare = Name, Engine = engine, Against = against, Layer = r.Layer, Sqnr = r.Sqnr, Mse = r.Mse, MaxAbsError = r.MaxAbsError,
                    MeanAbsError = r.MeanAbsError, Cosine = r.Cosine, MaxLsb = r.MaxLsb, ExactRatio = r.ExactRatio, Passed = r.Passed,
                    Hint = r.TopHint?.ToString(),
                });
            if (s.Layers == 0)
                throw new QuantToolsException(ErrorCode.InvalidArgument,
                    $"no layer of the run matched the reference {against}; reference layers: {string.Join(", ", reference.Select(x => x.Name).Take(20))}; " +
                    $"run layers: {string.Join(", ", difference.Select(x => x.Name).Take(20))} (give layer_map)");
            string p = engine + ".";
            result.Metrics[p + "layers"] = s.Layers;
            result.Metrics[p + "failed_layers"] = s.Failed;
            result.Metrics[p + "sqnr"] = s.WorstSqnr;
            if (s.Results.Any(r => r.MaxLsb is not null)) result.Metrics[p + "max_lsb"] = s.Results.Max(r => r.MaxLsb ?? 0);
            if (s.FirstDivergingLayer is not null) result.Message = (result.Message is null ? "" : result.Message + "; ") + $"{engine}: first diverging layer '{s.FirstDivergingLayer}'";
        }
        ctx.Comparisons[Name] = summaries;
    }

    private ModelResult Batch(JobContext ctx, string engine)
    {
        if (!ctx.Runs.TryGetValue(engine, out var runs))
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"the run step did not run engine {engine}");
        if (_batch >= runs.Count)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"batch {_batch} does not exist; the run had {runs.Count} input batch(es)");
        return runs[_batch];
    }

    /// <summary>A run's captured layers (when asked) then its output (quantized when the model ends quantized), as named tensors.</summary>
    internal static List<(string Name, object Value)> Layers(ModelResult r, bool layers)
    {
        var list = new List<(string, object)>();
        if (layers) list.AddRange(r.Layers.Select(l => (l.Name, (object)l.Value)));
        list.Add(("output", (object?)r.QuantizedOutput ?? r.Output));
        return list;
    }

    /// <summary>
    /// A golden's reference tensors, named as the run names them: a golden model JSON's layers (and its companion file's
    /// output), a .safetensors file's tensors (<c>act/NAME/int</c> read as layer NAME), or a folder of .npy.
    /// </summary>
    public static List<(string Name, object Value)> GoldenLayers(string path, string outputTensor = "output", bool layers = true)
    {
        var list = new List<(string, object)>();
        object? output = null;
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            var set = LayerDumps.ReadGolden(path);
            if (layers) list.AddRange(set.Layers);
            using var g = new Conformance.GoldenFile(path);
            if (g.Tensors.Contains(outputTensor)) output = g.Tensors.Get(outputTensor);
        }
        else
        {
            foreach (var (name, value) in LayerDumps.Read(path).Layers)
            {
                if (name == outputTensor) output = value;
                else if (name is "input" or "output" or "float_output" || name.EndsWith(".scales", StringComparison.Ordinal) || name.EndsWith(".zero_points", StringComparison.Ordinal)) continue;
                else if (layers) list.Add((LayerName(name), value));
            }
        }
        if (output is null && !layers)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"the golden has no tensor '{outputTensor}'", path);
        if (output is not null) list.Add(("output", output));
        if (list.Count == 0) throw new QuantToolsException(ErrorCode.InvalidArgument, $"the golden holds no layers and no '{outputTensor}'", path);
        return list;
    }

    private static readonly Regex ActName = new(@"^act/(.+)/int$", RegexOptions.CultureInvariant);

    /// <summary>The layer a golden tensor name stands for (<c>act/conv1/int</c> → conv1).</summary>
    public static string LayerName(string tensorName) => ActName.Match(tensorName) is { Success: true } m ? m.Groups[1].Value : tensorName;

    /// <summary>
    /// Golden files hold layers for batch element 0 ([1, ...]) while a run's batch may hold several: the run's layers
    /// are cut to their first element where the reference has 1 in dim 0 and the run more.
    /// </summary>
    internal static List<(string Name, object Value)> FitBatch(List<(string Name, object Value)> reference, List<(string Name, object Value)> difference)
    {
        var shapes = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var (n, v) in reference) shapes[n] = ShapeOf(v);
        return difference.Select(d =>
        {
            if (!shapes.TryGetValue(d.Name, out var rs)) return d;
            var ds = ShapeOf(d.Value);
            if (rs.Length == ds.Length && rs.Length > 0 && rs[0] == 1 && ds[0] > 1 && rs.AsSpan(1).SequenceEqual(ds.AsSpan(1)))
                return (d.Name, First(d.Value));
            return d;
        }).ToList();
    }

    internal static int[] ShapeOf(object v) => v switch { QTensor q => q.Shape, Tensor t => t.Shape, _ => [] };

    internal static object First(object v) => v switch
    {
        QTensor q when !q.QParams.IsPerChannel || q.QParams.Axis != 0 => new QTensor(FirstOf(q.IntRepr), q.QParams),
        Tensor t => FirstOf(t),
        _ => v,
    };

    internal static Tensor FirstOf(Tensor t)
    {
        var shape = (int[])t.Shape.Clone();
        int per = shape[0] == 0 ? 0 : t.Length / shape[0];
        shape[0] = 1;
        var data = Array.CreateInstance(t.Data.GetType().GetElementType()!, per);
        Array.Copy(t.Data, data, per);
        return new Tensor(t.DType, shape, data);
    }
}

/// <summary>One compared layer of a compare step (a row of results.json).</summary>
public sealed class CompareLayerRow
{
    public string Compare { get; init; } = "compare";
    public string? Engine { get; init; }
    public string? Against { get; init; }
    public required string Layer { get; init; }
    public double Sqnr { get; init; }
    public double Mse { get; init; }
    public double MaxAbsError { get; init; }
    public double MeanAbsError { get; init; }
    public double Cosine { get; init; }
    public long? MaxLsb { get; init; }
    public double? ExactRatio { get; init; }
    public bool Passed { get; init; }
    public string? Hint { get; init; }
}
