using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using QuantTools.Core.Formats;
using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Onnx;
using QuantTools.Core.Tensors;
using Tensor = QuantTools.Core.Tensors.Tensor;

namespace QuantTools.Benchmarks;

/// <summary>
/// Issue 13: the bundled QOperator kernels (tests/fixtures/bench/*.qop.onnx: QLinearMatMul 256x1024x1024, two 3x3
/// QLinearConv + ReLU) through QuantTools' ORT emulation (<see cref="OnnxExecutor"/>) and through ONNX Runtime
/// (this project's Microsoft.ML.OnnxRuntime, CPU provider, ORT_ENABLE_ALL), same input, same thread count, one process.
/// A Stopwatch harness: 2 warm-up runs, then runs until the budget is spent (at least 5); medians. The outputs are
/// compared (ORT saturates u8 x s8 pairs on CPUs without VNNI, so they may differ there; the row says how many).
/// </summary>
internal static class OnnxBenchmarks
{
    public sealed record Result(string Name, double OursMs, double OrtMs, int Differ, int Total);

    public static bool Selected(string[] filters) => filters.Any(f => "onnx".Contains(f, StringComparison.OrdinalIgnoreCase) || f.Contains("qop", StringComparison.OrdinalIgnoreCase));

    private static double Median(Action run, double budgetMs)
    {
        run(); run();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < 5 || total.Elapsed.TotalMilliseconds < budgetMs)
        {
            var sw = Stopwatch.StartNew();
            run();
            times.Add(sw.Elapsed.TotalMilliseconds);
            if (times.Count > 200) break;
        }
        times.Sort();
        return times[times.Count / 2];
    }

    public static List<Result> Run(string repoRoot, bool full, TextWriter log)
    {
        var dir = Path.Combine(repoRoot, "tests", "fixtures", "bench");
        var inputs = SafeTensorsFile.Open(Path.Combine(dir, "bench.safetensors"));
        var results = new List<Result>();
        foreach (var name in new[] { "qlinear_256x1024x1024", "qconv_64x56x56_k3", "qconv_128x28x28_k3" })
            foreach (int threads in new[] { 1, 2 })
            {
                var path = Path.Combine(dir, name + ".qop.onnx");
                var x = inputs.Get(name + "/input").ToFloat32();
                int previous = Parallelism.MaxThreads;
                Parallelism.MaxThreads = threads;
                try
                {
                    var ours = new OnnxExecutor(OnnxReader.Load(path));
                    Tensor? yOurs = null;
                    double oursMs = Median(() => yOurs = ours.Run(x, false).Output, full ? 3000 : 1000);
                    using var so = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                        GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
                    using var session = new InferenceSession(path, so);
                    var input = new[] { NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.Single(), new DenseTensor<float>((float[])x.Data, x.Shape)) };
                    float[]? yOrt = null;
                    double ortMs = Median(() => { using var r = session.Run(input); yOrt = r.First().AsEnumerable<float>().ToArray(); }, full ? 3000 : 1000);
                    var a = yOurs!.AsSpan<float>();
                    int differ = 0;
                    for (int i = 0; i < a.Length; i++) if (BitConverter.SingleToInt32Bits(a[i]) != BitConverter.SingleToInt32Bits(yOrt![i])) differ++;
                    var res = new Result($"onnx {name} {threads}T", oursMs, ortMs, differ, a.Length);
                    log.WriteLine($"{res.Name}: ours {oursMs:0.000} ms, onnxruntime {ortMs:0.000} ms, ratio {ortMs / oursMs:0.00}, {differ} of {a.Length} outputs differ");
                    results.Add(res);
                }
                finally
                {
                    Parallelism.MaxThreads = previous;
                }
            }
        return results;
    }

    public static string Report(IReadOnlyList<Result> rs)
    {
        var sb = new StringBuilder();
        sb.AppendLine();
        sb.AppendLine($"ONNX QOperator kernels, ours (ORT emulation) vs onnxruntime {OrtEnv.Instance().GetVersionString()} in the same run (ratio = onnxruntime_ms / ours_ms, > 1: we are faster):");
        foreach (var r in rs)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"  {r.Name,-34} ours {r.OursMs,9:0.000} ms  onnxruntime {r.OrtMs,9:0.000} ms  ratio {r.OrtMs / r.OursMs,5:0.00}  outputs differing {r.Differ}/{r.Total}"));
        return sb.ToString();
    }
}
