using System.Reflection;
using QuantTools.Core.Formats;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Pipelines;

/// <summary>
/// A kind of pipeline step (<c>qparams</c>, <c>lint</c>, <c>calibrate</c>, <c>quantize</c>, <c>run</c>, <c>assert</c>).
/// A new kind is one class: derive from this, give it a public parameterless constructor and a <see cref="Kind"/>, and
/// <see cref="PipelineSteps"/> finds it. <see cref="Configure"/> reads and validates the step's YAML (errors go to
/// the file's error list, with line:column); <see cref="Execute"/> runs it for one job. A step instance may be shared by
/// the expanded jobs of one matrix combination, so <see cref="Execute"/> keeps its state in the <see cref="JobContext"/>.
/// </summary>
public abstract class PipelineStep
{
    /// <summary>The YAML key of the step.</summary>
    public abstract string Kind { get; }

    /// <summary>One line for the README and error messages.</summary>
    public abstract string Summary { get; }

    /// <summary>File extensions the step can write when the job's <c>outputs</c> names it (empty: none).</summary>
    public virtual IReadOnlyList<string> OutputExtensions => [];

    /// <summary>True when the step needs the run step to keep every layer's output.</summary>
    public virtual bool NeedsCapture => false;

    /// <summary>The golden files the step reads, which -UpdateGolden rewrites from the run.</summary>
    public virtual IEnumerable<GoldenTarget> GoldenFiles => [];

    public abstract void Configure(StepArgs args);

    public abstract void Execute(JobContext ctx, StepResult result);
}

/// <summary>The step kinds: every non-abstract <see cref="PipelineStep"/> in QuantTools.Core.</summary>
public static class PipelineSteps
{
    private static readonly Lazy<IReadOnlyDictionary<string, Func<PipelineStep>>> _kinds = new(() =>
    {
        var d = new SortedDictionary<string, Func<PipelineStep>>(StringComparer.Ordinal);
        foreach (var t in typeof(PipelineStep).Assembly.GetTypes())
        {
            if (t.IsAbstract || !typeof(PipelineStep).IsAssignableFrom(t) || t.GetConstructor(Type.EmptyTypes) is null) continue;
            var kind = ((PipelineStep)Activator.CreateInstance(t)!).Kind;
            d[kind] = () => (PipelineStep)Activator.CreateInstance(t)!;
        }
        return d;
    });

    public static IReadOnlyCollection<string> Kinds => (IReadOnlyCollection<string>)_kinds.Value.Keys;

    public static PipelineStep? Create(string kind) => _kinds.Value.TryGetValue(kind, out var f) ? f() : null;
}

/// <summary>The state of one running job: lazily loaded model, executors and inputs, and what earlier steps produced.</summary>
public sealed class JobContext
{
    public JobContext(PipelineJob job, string outputRoot, CancellationToken cancel)
    {
        Job = job;
        OutputRoot = outputRoot;
        Cancel = cancel;
    }

    public PipelineJob Job { get; }
    public string OutputRoot { get; }
    public CancellationToken Cancel { get; }

    private QuantModel? _model;
    private IReadOnlyList<LayerQParams>? _qparams;
    private IReadOnlyList<(string Name, Tensor Tensor)>? _inputs;
    private readonly Dictionary<string, ModelExecutor> _executors = new(StringComparer.Ordinal);

    public string ModelPath => Job.Model ?? throw new QuantToolsException(ErrorCode.InvalidArgument, "the job names no model", Job.Id);

    public QuantModel Model => _model ??= ModelLoader.Load(ModelPath);

    public IReadOnlyList<LayerQParams> QParams => _qparams ??= LayerQParams.For(Model);

    /// <summary>Every input batch: each tensor of the input files (in file order), and each random tensor.</summary>
    public IReadOnlyList<(string Name, Tensor Tensor)> Inputs => _inputs ??= LoadInputs();

    public ModelExecutor Executor(string engine)
    {
        if (_executors.TryGetValue(engine, out var e)) return e;
        var q = QEngineInfo.Parse(engine);
        e = new ModelExecutor(ModelLoader.LoadGraph(ModelPath, Job.Architecture), q);
        _executors[engine] = e;
        return e;
    }

    public List<Finding>? Findings { get; set; }
    public Dictionary<string, Observer> Calibrations { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, QParams> CalibratedQParams { get; } = new(StringComparer.Ordinal);
    public string? LastCalibration { get; set; }
    public List<(string Name, Tensor Float, QTensor Quantized)>? Quantized { get; set; }
    public Dictionary<string, double>? QuantizeMetrics { get; set; }
    /// <summary>Engine → one result per input batch, from the last run step.</summary>
    public Dictionary<string, List<ModelResult>> Runs { get; } = new(StringComparer.Ordinal);
    /// <summary>Compare step name → difference engine → its comparison, from the compare steps so far.</summary>
    public Dictionary<string, Dictionary<string, Compare.ComparisonSummary>> Comparisons { get; } = new(StringComparer.Ordinal);
    public bool CaptureRequested => UpdateGolden || Job.Steps.Any(s => s.NeedsCapture);
    /// <summary>True when the run rewrites the job's golden files (every layer is captured for them).</summary>
    public bool UpdateGolden { get; init; }

    /// <summary>The absolute path for a step's artifact when the job's outputs name one (its folder is created), else null.</summary>
    public string? OutputFile(string kind)
    {
        if (!Job.Outputs.TryGetValue(kind, out var name)) return null;
        var dir = Path.Combine(OutputRoot, "jobs", Job.FileName);
        Directory.CreateDirectory(dir);
        return Path.Combine(dir, name);
    }

    /// <summary>The artifact path relative to the output folder, with '/' (as reports show it).</summary>
    public string Relative(string path) => Path.GetRelativePath(OutputRoot, path).Replace('\\', '/');

    private List<(string, Tensor)> LoadInputs()
    {
        var list = new List<(string, Tensor)>();
        foreach (var i in Job.Inputs)
        {
            if (i.File is { } f)
            {
                var all = TensorFile.ReadAll(f);
                var pick = i.Tensors.Count == 0 ? all
                    : all.Where(t => i.Tensors.Any(p => TensorName(p).IsMatch(t.Name))).ToList();
                if (pick.Count == 0)
                    throw new QuantToolsException(ErrorCode.InvalidArgument,
                        $"no tensor named {string.Join(" or ", i.Tensors)}; the file has {string.Join(", ", all.Select(t => t.Name).Take(20))}", f);
                string stem = Path.GetFileName(f);
                list.AddRange(pick.Select(t => ($"{stem}:{t.Name}", t.Tensor)));
            }
            else list.Add(($"random{list.Count}", RandomTensor.Create(i)));
        }
        return list;
    }

    internal static System.Text.RegularExpressions.Regex TensorName(string pattern) => new(
        "^" + System.Text.RegularExpressions.Regex.Escape(pattern).Replace(@"\*", ".*").Replace(@"\?", ".") + "$");
}

/// <summary>Seeded random tensors that are the same on every machine and .NET version (SplitMix64, Box-Muller).</summary>
public static class RandomTensor
{
    public static Tensor Create(PipelineInput spec)
    {
        var shape = spec.RandomShape ?? throw new ArgumentException("not a random input");
        long n = Tensor.CheckedNumel(shape);
        var data = new float[n];
        ulong state = unchecked((ulong)spec.RandomSeed * 0x9E3779B97F4A7C15UL + 0x632BE59BD9B4E019UL);
        double Next()
        {
            ulong z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (z >> 11) * (1.0 / (1UL << 53));
        }
        if (spec.Distribution == "uniform")
            for (long i = 0; i < n; i++) data[i] = (float)(spec.A + (spec.B - spec.A) * Next());
        else
            for (long i = 0; i < n; i += 2)
            {
                double u1 = 1.0 - Next(), u2 = Next();
                double r = Math.Sqrt(-2.0 * Math.Log(u1));
                data[i] = (float)(spec.A + spec.B * r * Math.Cos(2 * Math.PI * u2));
                if (i + 1 < n) data[i + 1] = (float)(spec.A + spec.B * r * Math.Sin(2 * Math.PI * u2));
            }
        return Tensor.FromArray(data, shape);
    }
}
