using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using Perfolizer.Horology;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using QuantTools.Benchmarks;

// Usage: dotnet run -c Release --project src/QuantTools.Benchmarks -- [--full] [filter ...]
//   filter: substrings (case-insensitive) of a row name, benchmark method or category, e.g. "quantize",
//   "histogram", "libtorch", "model" (the whole-model rows), "mobilenet", "path" (one row per engine and kernel
//   path); '*' / '?' globs are matched against
//   Class.Method. No filter runs everything.
// Writes artifacts/bench/results.json at the repository root and prints the table.

bool full = args.Contains("--full");
var filters = args.Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine("dotnet run -c Release --project src/QuantTools.Benchmarks -- [--full] [filter ...]");
    Console.WriteLine("rows: " + string.Join(", ", Rows.All.Select(r => r.Name).Concat(ModelBenchmarks.RowNames)));
    return 0;
}

var singleThread = CoreBindings.ForceSingleThread();
Console.WriteLine(singleThread + "; libtorch: torch.set_num_threads(1)");
var repoRoot = Rows.FindRepoRoot();
var outDir = Path.Combine(repoRoot, "artifacts", "bench");
Directory.CreateDirectory(outDir);

var job = (full
        ? Job.Default.WithId("full").WithWarmupCount(5).WithIterationCount(20)
        : Job.Default.WithId("short").WithWarmupCount(2).WithIterationCount(6).WithIterationTime(TimeInterval.FromMilliseconds(150)))
    .WithLaunchCount(1)
    .WithToolchain(InProcessEmitToolchain.Instance);

var unavailable = new List<string>();
var kernelSkips = new Dictionary<string, string>();
bool Available(string method)
{
    if (method.EndsWith("_Ours", StringComparison.Ordinal) &&
        (method.StartsWith("Quantize", StringComparison.Ordinal) ? CoreBindings.Quantize is null : CoreBindings.Dequantize is null))
        return false;
    if (method.Contains("Observer", StringComparison.Ordinal) && !CoreBindings.HaveObservers) return false;
    if (KernelRows.Unavailable(method) is { } why) { kernelSkips[method] = why; return false; }
    return true;
}
bool Selected(BenchmarkDotNet.Running.BenchmarkCase bc)
{
    var d = bc.Descriptor;
    var method = d.WorkloadMethod.Name;
    if (filters.Length > 0)
    {
        var row = Rows.All.FirstOrDefault(r => r.Methods.Contains(method));
        var haystack = $"{d.Type.Name}.{method} {d.WorkloadMethodDisplayInfo} {string.Join(" ", d.Categories)} {row?.Name}";
        bool hit = filters.Any(f => f.IndexOfAny(['*', '?']) >= 0
            ? new GlobFilter([f]).Predicate(bc)
            : haystack.Contains(f, StringComparison.OrdinalIgnoreCase));
        if (!hit) return false;
    }
    if (!Available(method)) { if (!kernelSkips.ContainsKey(method)) unavailable.Add(method); return false; }
    return true;
}

var config = ManualConfig.CreateEmpty()
    .AddJob(job)
    .AddLogger(ConsoleLogger.Default)
    .AddColumnProvider(DefaultColumnProviders.Instance)
    .AddColumn(StatisticColumn.Median)
    .AddFilter(new SimpleFilter(Selected))
    .WithArtifactsPath(Path.Combine(outDir, "bdn"))
    .WithOptions(ConfigOptions.JoinSummary);

var summaries = BenchmarkRunner.Run(
    [typeof(QuantizeBenchmarks), typeof(DequantizeBenchmarks), typeof(ObserverBenchmarks), typeof(HistogramUpdateBenchmarks),
     typeof(CheckpointBenchmarks),
     typeof(QLinearBenchmarks), typeof(QConv64Benchmarks), typeof(QConv128Benchmarks), typeof(DotProductPeakBenchmarks),
     typeof(MemoryBoundBenchmarks)], config);

var medians = new Dictionary<string, double>();
foreach (var s in summaries)
    foreach (var r in s.Reports)
        if (r.ResultStatistics is { } st)
            medians[r.BenchmarkCase.Descriptor.WorkloadMethod.Name] =
                (KernelRows.UsesMin(r.BenchmarkCase.Descriptor.WorkloadMethod.Name) ? st.Min : st.Median) / 1e6; // ns -> ms
KernelRows.Derive(medians);

var results = new JsonArray();
var table = new List<string[]>();
foreach (var row in Rows.All)
{
    double? ours = medians.TryGetValue(row.Ours, out var o) ? o : null;
    var peers = row.Peers.Select(p => (p.Peer, Ms: medians.TryGetValue(p.Method, out var v) ? v : (double?)null))
        .Where(p => p.Ms != null).ToList();
    if (ours == null && peers.Count == 0) continue;
    if (peers.Count == 0) peers.Add((null!, null));
    foreach (var (peer, ms) in peers)
    {
        double? ratio = ours is > 0 && ms != null ? ms / ours : null;
        results.Add(new JsonObject
        {
            ["name"] = row.Name,
            ["ours_ms"] = Round(ours),
            ["peer"] = peer,
            ["peer_ms"] = Round(ms),
            ["ratio"] = Round(ratio),
        });
        table.Add([row.Name, Fmt(ours), peer ?? "-", Fmt(ms), ratio is { } q ? q.ToString("0.00", CultureInfo.InvariantCulture) : "-",
            row.ReferenceMs is { } rf ? rf.ToString("0.000", CultureInfo.InvariantCulture) : "-"]);
    }
}

// Whole-model rows (issue 5): a Stopwatch harness after the BenchmarkDotNet rows; see ModelBenchmarks.
var modelResults = ModelBenchmarks.Selected(filters) ? ModelBenchmarks.Run(repoRoot, filters, full, Console.Out) : [];
foreach (var r in modelResults)
{
    double? ratio = r.TorchMs is { } tm ? tm / r.OursMs : null;
    results.Add(new JsonObject
    {
        ["name"] = r.Name,
        ["ours_ms"] = Round(r.OursMs),
        ["peer"] = "libtorch",
        ["peer_ms"] = Round(r.TorchMs),
        ["ratio"] = Round(ratio),
        ["ours_alloc_mb_per_run"] = Round(r.AllocMbPerRun),
        ["ours_peak_working_set_mb"] = Round(r.PeakWorkingSetMb),
        ["same_output"] = r.SameOutput,
    });
    table.Add([r.Name, Fmt(r.OursMs), "libtorch", Fmt(r.TorchMs), ratio is { } q ? q.ToString("0.00", CultureInfo.InvariantCulture) : "-",
        r.ReferenceMs is { } rf ? rf.ToString("0.000", CultureInfo.InvariantCulture) : "-"]);
}

// Kernel path rows (one per engine and path): a Stopwatch harness too; see KernelPathBenchmarks.
var pathResults = KernelPathBenchmarks.Selected(filters) ? KernelPathBenchmarks.Run(full, Console.Out) : [];
foreach (var r in pathResults)
{
    double? ratio = r.PeerMs is { } pm ? pm / r.Ms : null;
    results.Add(new JsonObject
    {
        ["name"] = r.Name,
        ["ours_ms"] = Round(r.Ms),
        ["peer"] = r.Peer,
        ["peer_ms"] = Round(r.PeerMs),
        ["ratio"] = Round(ratio),
    });
    table.Add([r.Name, Fmt(r.Ms), r.Peer ?? "-", Fmt(r.PeerMs), ratio is { } q ? q.ToString("0.00", CultureInfo.InvariantCulture) : "-", "-"]);
}
// ONNX QOperator kernels (issue 13): ours (the ORT emulation) vs onnxruntime, Stopwatch harness; filter "onnx" or "qop".
var onnxResults = OnnxBenchmarks.Selected(filters) ? OnnxBenchmarks.Run(repoRoot, full, Console.Out) : [];
foreach (var r in onnxResults)
{
    results.Add(new JsonObject
    {
        ["name"] = r.Name, ["ours_ms"] = Round(r.OursMs), ["peer"] = "onnxruntime", ["peer_ms"] = Round(r.OrtMs),
        ["ratio"] = Round(r.OrtMs / r.OursMs), ["outputs_differing"] = r.Differ,
    });
    table.Add([r.Name, Fmt(r.OursMs), "onnxruntime", Fmt(r.OrtMs), (r.OrtMs / r.OursMs).ToString("0.00", CultureInfo.InvariantCulture), "-"]);
}

var json = results.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
var jsonPath = Path.Combine(outDir, "results.json");
File.WriteAllText(jsonPath, json + Environment.NewLine);

Console.WriteLine();
Console.WriteLine($"QuantTools benchmarks ({job.Id} job, in-process, single thread unless the row says 2T; median of {(full ? 20 : 6)} iterations; ratio = peer_ms / ours_ms, > 1: we are faster)");
Console.WriteLine(singleThread + "; libtorch: torch.set_num_threads(1)");
Console.WriteLine(Rows.Format(["name", "ours_ms", "peer", "peer_ms", "ratio", "PyTorch 2.11 Xeon ms (reference only)"], table));
Console.Write(KernelRows.Report(medians));
if (modelResults.Count > 0) Console.Write(ModelBenchmarks.Report(modelResults));
if (pathResults.Count > 0) Console.Write(KernelPathBenchmarks.Report(pathResults));
if (onnxResults.Count > 0) Console.Write(OnnxBenchmarks.Report(onnxResults));
foreach (var m in unavailable.Distinct())
    Console.WriteLine($"skipped {m}: the Core API it measures is not in this build yet (Quantizer / ObserverFactory)");
foreach (var (m, why) in kernelSkips)
    Console.WriteLine($"skipped {m}: {why}");
Console.WriteLine($"wrote {jsonPath}");
return 0;

static double? Round(double? v) => v is { } x ? Math.Round(x, 4) : null;
static string Fmt(double? v) => v is { } x ? x.ToString("0.000", CultureInfo.InvariantCulture) : "-";

namespace QuantTools.Benchmarks
{
    internal sealed record Row(string Name, string Ours, (string Peer, string Method)[] Peers, double? ReferenceMs)
    {
        public IEnumerable<string> Methods => Peers.Select(p => p.Method).Prepend(Ours);
    }

    internal static class Rows
    {
        // Reference column: PyTorch 2.11 medians on a 16-core Xeon, threads=1 (golden/pytorch-2.11/bench/bench.json keys
        // quantize_per_tensor/quint8/4M, dequantize/quint8/4M, MinMaxObserver/4M/first_call,
        // HistogramObserver/4M/update_growing, HistogramObserver/calculate_qparams). Printed only; never a peer.
        public static readonly Row[] All =
        [
            new("quantize_per_tensor quint8 4M", "Quantize_Ours", [("libtorch", "Quantize_LibTorch"), ("copy", "Quantize_Copy")], 1.017),
            new("dequantize quint8 4M", "Dequantize_Ours", [("libtorch", "Dequantize_LibTorch"), ("copy", "Dequantize_Copy")], 0.989),
            new("MinMaxObserver update 4M", "MinMaxObserver_Update", [], 2.001),
            new("HistogramObserver update 4M", "HistogramObserver_Update", [], 37.09),
            new("HistogramObserver calculate_qparams", "HistogramObserver_CalculateQParams", [], 13.07),
            // issue #3: TorchCheckpoint.Load of a ~100 MB state_dict vs File.ReadAllBytes of it; goal ratio >= 0.67 (load within 1.5x).
            // read-per-storage: one fresh array per storage entry, one read each (the floor for a reader returning arrays).
            new("load state_dict 100MB", "Load_Ours", [("read-bytes", "Load_ReadBytes"), ("read-per-storage", "Load_ReadPerStorage")], null),
            .. KernelRows.All,
        ];

        public static string FindRepoRoot()
        {
            foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
                for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
                    if (Directory.Exists(Path.Combine(d.FullName, ".git")) || File.Exists(Path.Combine(d.FullName, ".git")))
                        return d.FullName;
            return Directory.GetCurrentDirectory();
        }

        public static string Format(string[] header, List<string[]> rows)
        {
            var all = rows.Prepend(header).ToList();
            var w = Enumerable.Range(0, header.Length).Select(i => all.Max(r => r[i].Length)).ToArray();
            var sb = new StringBuilder();
            void Line(string[] r) => sb.AppendLine("| " + string.Join(" | ", r.Select((c, i) => i == 0 || i == 2 ? c.PadRight(w[i]) : c.PadLeft(w[i]))) + " |");
            Line(header);
            sb.AppendLine("|" + string.Join("|", w.Select((x, i) => new string('-', x + 2))) + "|");
            foreach (var r in rows) Line(r);
            return sb.ToString();
        }
    }
}
