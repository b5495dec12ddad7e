using System.Diagnostics;
using System.Globalization;
using System.Text;
using QuantTools.Core.Formats;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;
using QuantTools.Torch;

namespace QuantTools.Benchmarks;

/// <summary>
/// Issue 5 "Speed": whole-model latency, ours (<see cref="ModelExecutor"/>, x86 profile) vs libtorch
/// (<see cref="LibTorchModel"/>: torch.jit.load of the same TorchScript file, in-process), batch 1 and 8, one thread and
/// both cores, for shufflenet_v2_x0_5 (64x64) and MobileNetV2 (224x224 and 64x64). A Stopwatch harness rather than
/// BenchmarkDotNet: each case is one model call of 2 ms to 2 s, and the memory columns need every run of ours to happen
/// before libtorch is loaded into the process.
/// Per case: 2 warm-up runs, then runs until the time budget is spent (at least 5); the median is reported. Ours runs
/// first for every case (allocated bytes per run and the process's peak working set are measured then, with no
/// libtorch in the process), then libtorch runs the same inputs, and its outputs are checked against ours bit for bit.
/// </summary>
internal static class ModelBenchmarks
{
    private sealed record Case(string Model, string File, int Size, int Batch, int Threads)
    {
        public string Name => $"model {Model} {Size} b{Batch} {Threads}T";
    }

    public sealed record Result(string Name, double OursMs, double? TorchMs, double AllocMbPerRun, double PeakWorkingSetMb,
        bool? SameOutput, double? ReferenceMs);

    // PyTorch 2.11 on a 16-core Xeon (tests/fixtures/bench/bench_models.json, mobilenet_v2 int8 batch 1 224x224,
    // 1 thread): printed as a scale only, another machine.
    private const double XeonMobileNetV2B1T1Ms = 103.07;

    private static IEnumerable<Case> Cases(string benchDir, string coreDir)
    {
        var shufflenet = Path.Combine(coreDir, "shufflenet_v2_x0_5.torchscript.pt");
        var mobilenet = Path.Combine(benchDir, "mobilenet_v2_224.torchscript.pt");
        foreach (var (model, file, size) in new[] { ("shufflenet_v2_x0_5", shufflenet, 64), ("mobilenet_v2", mobilenet, 224), ("mobilenet_v2", mobilenet, 64) })
            foreach (var b in new[] { 1, 8 })
                foreach (var t in new[] { 1, 2 })
                    yield return new Case(model, file, size, b, t);
    }

    public static IEnumerable<string> RowNames =>
        Cases("", "").Select(c => c.Name);

    /// <summary>True when a filter selects these rows ("model", a model name, or part of a row name); none selects everything.</summary>
    public static bool Selected(string[] filters) =>
        filters.Length == 0 || filters.Any(f => f.IndexOfAny(['*', '?']) < 0 && RowNames.Any(n => n.Contains(f, StringComparison.OrdinalIgnoreCase)));

    private static bool Wanted(Case c, string[] filters) =>
        filters.Length == 0 || filters.Any(f => "model".Contains(f, StringComparison.OrdinalIgnoreCase) || c.Name.Contains(f, StringComparison.OrdinalIgnoreCase));

    private static Tensor Input(int batch, int size, int seed)
    {
        // uniform over roughly the golden inputs' range (normalized images)
        var rng = new Random(seed);
        var t = Tensor.Zeros(DType.Float32, batch, 3, size, size);
        var s = t.AsSpan<float>();
        for (int i = 0; i < s.Length; i++) s[i] = (float)(rng.NextDouble() * 4.5 - 2.1);
        return t;
    }

    private static (double MedianMs, int Runs, double MinMs) Time(Action run, double budgetMs)
    {
        run();
        run();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < 5 || (total.Elapsed.TotalMilliseconds < budgetMs && times.Count < 500))
        {
            long t0 = Stopwatch.GetTimestamp();
            run();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        times.Sort();
        int n = times.Count;
        return (n % 2 == 1 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2, n, times[0]);
    }

    private static bool LibTorchInProcess() =>
        File.Exists("/proc/self/maps") && File.ReadAllText("/proc/self/maps").Contains("libtorch_cpu.so", StringComparison.Ordinal);

    public static List<Result> Run(string repoRoot, string[] filters, bool full, TextWriter log)
    {
        var benchDir = Path.Combine(repoRoot, "tests", "fixtures", "bench");
        var coreDir = Path.Combine(repoRoot, "tests", "fixtures", "golden", "pytorch-2.11", "core", "models");
        var cases = Cases(benchDir, coreDir).Where(c => Wanted(c, filters)).ToList();
        double budget = full ? 4000 : 1200;
        var results = new List<Result>();
        if (cases.Count == 0) return results;
        bool torchBefore = LibTorchInProcess();
        log.WriteLine($"// model rows: ours = ModelExecutor (x86 profile); libtorch = torch.jit.load of the same file; budget {budget} ms per case, median");
        if (torchBefore) log.WriteLine("// note: libtorch was already loaded by earlier rows, so the peak working set below includes it");

        // ---- ours, every case, before libtorch is in the process
        var ours = new Dictionary<Case, (double Ms, double AllocMb, double PeakMb, Tensor X, Tensor Y)>();
        var executors = new Dictionary<string, ModelExecutor>();
        foreach (var c in cases)
        {
            if (!executors.TryGetValue(c.File, out var ex)) executors[c.File] = ex = ModelExecutor.Load(c.File, QEngine.X86);
            var x = Input(c.Batch, c.Size, c.Size * 100 + c.Batch);
            var budgetOptions = new ExecutionOptions { MaxThreads = c.Threads };
            Tensor y = ex.Run(x, options: budgetOptions).Output;
            long a0 = GC.GetTotalAllocatedBytes(precise: true);
            int runs0 = 0;
            var (ms, runs, min) = Time(() => { ex.Run(x, options: budgetOptions); runs0++; }, budget);
            double allocMb = (GC.GetTotalAllocatedBytes(precise: true) - a0) / (double)runs0 / (1 << 20);
            double peakMb = Process.GetCurrentProcess().PeakWorkingSet64 / (double)(1 << 20);
            ours[c] = (ms, allocMb, peakMb, x, y);
            log.WriteLine($"//   {c.Name}: ours {ms:0.000} ms (median of {runs}, fastest {min:0.000}), {allocMb:0.0} MB allocated per run, process peak working set {peakMb:0} MB");
            if (c.Threads == 1) log.Write(Profile(ex, x));
        }

        // ---- libtorch, same inputs
        LibTorchReference.EnsureLoaded();
        foreach (var c in cases)
        {
            var (oMs, allocMb, peakMb, x, y) = ours[c];
            double? tMs = null;
            bool? same = null;
            try
            {
                using var lt = LibTorchModel.Load(c.File, c.Threads);
                var yt = lt.Run(x).Output;
                same = y.AsBytes().SequenceEqual(yt.AsBytes());
                (tMs, var runs, var min) = Time(() => lt.Run(x), budget);
                log.WriteLine($"//   {c.Name}: libtorch {tMs:0.000} ms (median of {runs}, fastest {min:0.000}); outputs {(same == true ? "equal bit for bit" : "DIFFER")}");
            }
            catch (Exception e)
            {
                log.WriteLine($"//   {c.Name}: libtorch failed: {e.Message}");
            }
            results.Add(new Result(c.Name, oMs, tMs, allocMb, peakMb, same,
                c is { Model: "mobilenet_v2", Size: 224, Batch: 1, Threads: 1 } ? XeonMobileNetV2B1T1Ms : null));
        }
        return results;
    }

    /// <summary>Where ours spends a run: wall time per kind of node over 3 runs (ModelExecutor.NodeTimer), largest first.</summary>
    private static string Profile(ModelExecutor ex, Tensor x)
    {
        var byKind = new Dictionary<string, (double Ms, int Count)>();
        ex.NodeTimer = (n, ms) =>
        {
            var key = Kind(n);
            var (t, k) = byKind.GetValueOrDefault(key);
            byKind[key] = (t + ms, k + 1);
        };
        try { for (int i = 0; i < 3; i++) ex.Run(x); }
        finally { ex.NodeTimer = null; }
        double total = byKind.Values.Sum(v => v.Ms);
        var sb = new StringBuilder();
        foreach (var (k, (ms, count)) in byKind.OrderByDescending(p => p.Value.Ms).Take(6))
            sb.AppendLine($"//       {ms / 3:0.000} ms/run ({100 * ms / total:0}%) {k} x{count / 3}");
        return sb.ToString();
    }

    private static string Kind(QuantTools.Core.Models.Graph.GraphNode n)
    {
        if (n.Inputs.Count > 1 && n.Inputs[1].Constant is QuantTools.Core.Formats.Torch.ConvPackedParams cp)
        {
            var w = cp.Weight.Shape;
            string what = cp.Groups > 1 && cp.Groups == w[0] ? $"depthwise {w[2]}x{w[3]}{(cp.Groups > 100 ? " (groups > 100: fbgemm)" : " (onednn)")}"
                : w[2] * w[3] == 1 ? "1x1" : $"{w[2]}x{w[3]}";
            return $"{n.Op} {what}";
        }
        return n.Op;
    }

    public static string Report(IEnumerable<Result> results)
    {
        var sb = new StringBuilder();
        string F(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);
        sb.AppendLine("Whole models (issue 5; goal: ratio >= 1.5, i.e. 1.5x faster than libtorch). Memory is ours: managed bytes allocated per run, and the process's peak working set (runtime + model + activations; measured before libtorch was loaded):");
        foreach (var r in results)
        {
            sb.Append($"  {r.Name}: ours {F(r.OursMs)} ms, {r.AllocMbPerRun:0.0} MB/run, peak WS {r.PeakWorkingSetMb:0} MB");
            if (r.TorchMs is { } t)
            {
                double q = t / r.OursMs;
                sb.Append($"; libtorch {F(t)} ms; ratio {q.ToString("0.000", CultureInfo.InvariantCulture)} (goal >= 1.5: {(q >= 1.5 ? "met" : "NOT met")})");
            }
            if (r.SameOutput == false) sb.Append("; OUTPUTS DIFFER from libtorch");
            // A 2T time above the same case's 1T time is a contended machine (OpenMP / pool threads waiting for a busy core).
            var one = results.FirstOrDefault(o => o.Name == r.Name.Replace(" 2T", " 1T", StringComparison.Ordinal) && o != r);
            if (one is not null && r.Name.EndsWith(" 2T", StringComparison.Ordinal))
            {
                if (r.TorchMs > one.TorchMs) sb.Append($" [libtorch 2T slower than its 1T {F(one.TorchMs!.Value)} ms: contended machine]");
                if (r.OursMs > one.OursMs) sb.Append($" [ours 2T slower than its 1T {F(one.OursMs)} ms: contended machine]");
            }
            sb.AppendLine();
        }
        return sb.ToString();
    }
}
