using System.Globalization;
using System.Text;

namespace QuantTools.Benchmarks;

/// <summary>
/// The rows of the kernel benchmarks (issue 4, "Speed"), the derived "vpdpbusd-peak" peers and the GOPS report.
/// Row names without a thread suffix are single-thread; " 2T" rows use both cores (ours: Parallelism.MaxThreads = 2,
/// libtorch: torch.set_num_threads(2), onnxruntime: IntraOpNumThreads = 2).
/// </summary>
internal static class KernelRows
{
    private sealed record Layer(string Name, string Model, string Prefix, long Macs, double? XeonMs);

    // Xeon reference: tests/fixtures/bench/bench.json "<model>/torch_int8/threads1" (PyTorch 2.11, another machine).
    private static readonly Layer[] Layers =
    [
        new("linear 256x1024x1024 int8", "qlinear_256x1024x1024", "Linear", 256L * 1024 * 1024, 1.637),
        new("conv3x3 relu 64ch 56x56", "qconv_64x56x56_k3", "Conv64", 56L * 56 * 64 * 64 * 9, 0.916),
        new("conv3x3 relu 128ch 28x28", "qconv_128x28x28_k3", "Conv128", 28L * 28 * 128 * 128 * 9, 0.679),
    ];

    private const string PeakMethod = "Vpdpbusd512_Peak";
    private const string PeakMethod2 = "Vpdpbusd512_Peak_T2";

    private static string AtPeak(string prefix, int t) => $"{prefix}_AtPeak_T{t}";

    public static readonly Row[] All = BuildRows();

    private static Row[] BuildRows()
    {
        var rows = new List<Row>();
        foreach (var l in Layers)
            foreach (var t in new[] { 1, 2 })
                rows.Add(new(t == 1 ? l.Name : l.Name + " 2T", $"{l.Prefix}_Ours_T{t}",
                    [("libtorch", $"{l.Prefix}_LibTorch_T{t}"), ("onnxruntime", $"{l.Prefix}_Ort_T{t}"), ("vpdpbusd-peak", AtPeak(l.Prefix, t))],
                    t == 1 ? l.XeonMs : null));
        // Peak rows: ours_ms = time of DotProductPeak.Macs MACs with that instruction form; peer = the 512-bit VPDPBUSD.
        // ("vpdpbusd peak": 512-bit; the layer rows' "vpdpbusd-peak" peer uses the faster of the 512- and 256-bit forms.)
        rows.Add(new("vpdpbusd peak", PeakMethod, [], null));
        rows.Add(new("vpdpbusd peak 2T", PeakMethod2, [], null));
        rows.Add(new("vpdpbusd ymm (EVEX) peak", "Vpdpbusd256_Peak", [("vpdpbusd-peak", PeakMethod)], null));
        rows.Add(new("vpdpbusd ymm (EVEX) peak 2T", "Vpdpbusd256_Peak_T2", [("vpdpbusd-peak", PeakMethod2)], null));
        if (DotProductPeak.AvxVnniUnavailable is null) // else the skip line says why, and no empty row is written
            rows.Add(new("AvxVnni.MultiplyWideningAndAdd ymm peak", "AvxVnni256_Peak", [("vpdpbusd-peak", PeakMethod)], null));
        rows.Add(new("vpmaddwd+vpaddd zmm peak (PairGemm)", "Vpmaddwd512_Peak", [("vpdpbusd-peak", PeakMethod)], null));
        // Memory-bound ops: peer = copy of every input byte (ratio >= 0.5 is the goal).
        const string shape = "1x64x112x112 quint8";
        rows.Add(new($"quantized add {shape}", "Add_Ours", [("copy", "Copy_TwoInputs")], null));
        rows.Add(new($"relu {shape}", "Relu_Ours", [("copy", "Copy_OneInput")], null));
        rows.Add(new($"max_pool2d 3x3 s2 {shape}", "MaxPool_Ours", [("copy", "Copy_OneInput")], null));
        rows.Add(new($"avg_pool2d 3x3 s2 {shape}", "AvgPool_Ours", [("copy", "Copy_OneInput")], null));
        // The same ops writing into a caller's buffer (span overloads): without the fresh output tensor per call.
        rows.Add(new($"quantized add {shape} into output", "Add_Into", [("copy", "Copy_TwoInputs")], null));
        rows.Add(new($"relu {shape} into output", "Relu_Into", [("copy", "Copy_OneInput")], null));
        rows.Add(new($"max_pool2d 3x3 s2 {shape} into output", "MaxPool_Into", [("copy", "Copy_OneInput")], null));
        rows.Add(new($"avg_pool2d 3x3 s2 {shape} into output", "AvgPool_Into", [("copy", "Copy_OneInput")], null));
        return rows.ToArray();
    }

    /// <summary>
    /// Peak loops report the fastest iteration, not the median: a peak is what the core can do, and on a shared machine
    /// the median of a 1 ms register-only loop mostly measures the neighbours. (Using the minimum makes the peak
    /// higher, so the fraction of peak printed for our kernels lower, never flattering.)
    /// </summary>
    public static bool UsesMin(string method) => method.EndsWith("_Peak", StringComparison.Ordinal) || method.EndsWith("_Peak_T2", StringComparison.Ordinal);

    /// <summary>Why a kernel benchmark method cannot run on this machine, or null.</summary>
    public static string? Unavailable(string method) => method switch
    {
        "AvxVnni256_Peak" => DotProductPeak.AvxVnniUnavailable,
        "Vpdpbusd512_Peak" or "Vpdpbusd512_Peak_T2" or "Vpdpbusd256_Peak" or "Vpdpbusd256_Peak_T2" => DotProductPeak.EvexUnavailable,
        _ => null,
    };

    /// <summary>
    /// Adds the derived "vpdpbusd-peak" peers: the time each layer's MACs would take at the measured 512-bit VPDPBUSD
    /// throughput (1 or 2 threads), so that their ratio is the fraction of peak ours reaches.
    /// </summary>
    public static void Derive(Dictionary<string, double> medians)
    {
        foreach (var l in Layers)
            foreach (var t in new[] { 1, 2 })
                if (PeakMs(medians, t) is { } peakMs)
                    medians[AtPeak(l.Prefix, t)] = peakMs * l.Macs / DotProductPeak.Macs;
    }

    /// <summary>The faster of the 512-bit and 256-bit VPDPBUSD loops (the same MAC rate on Zen 4), on t threads.</summary>
    private static double? PeakMs(Dictionary<string, double> medians, int t)
    {
        var ms = (t == 1 ? new[] { PeakMethod, "Vpdpbusd256_Peak" } : [PeakMethod2, "Vpdpbusd256_Peak_T2"])
            .Where(medians.ContainsKey).Select(m => medians[m]).ToList();
        return ms.Count > 0 ? ms.Min() : null;
    }

    private static string Gops(long macs, double ms) => (2.0 * macs / (ms * 1e6)).ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>GOPS (2 x MACs / time) of every measured conv / linear / peak method, and the goals of issue 4.</summary>
    public static string Report(Dictionary<string, double> medians)
    {
        var sb = new StringBuilder();
        string F(double v) => v.ToString("0.00", CultureInfo.InvariantCulture);
        bool any = false;
        foreach (var l in Layers)
            foreach (var t in new[] { 1, 2 })
            {
                if (!medians.TryGetValue($"{l.Prefix}_Ours_T{t}", out var ours)) continue;
                if (!any) { sb.AppendLine("GOPS = 2*MACs/median (int8 conv / linear; ours includes quantize + op + dequantize like the peers):"); any = true; }
                sb.Append($"  {l.Name} {t}T: ours {Gops(l.Macs, ours)} GOPS");
                foreach (var (peer, method) in new[] { ("libtorch", "LibTorch"), ("onnxruntime", "Ort") })
                    if (medians.TryGetValue($"{l.Prefix}_{method}_T{t}", out var p))
                    {
                        double r = p / ours;
                        double goal = peer == "libtorch" ? 1.5 : 1.0;
                        sb.Append($"; {peer} {Gops(l.Macs, p)} GOPS, ratio {r.ToString("0.000", CultureInfo.InvariantCulture)} " +
                                  $"(goal >= {goal:0.0}: {(r >= goal ? "met" : "NOT met")})");
                        // A peer slower on 2 threads than on 1 is a contended machine (e.g. OpenMP barriers on busy cores), not a win.
                        if (t == 2 && medians.TryGetValue($"{l.Prefix}_{method}_T1", out var p1) && p > p1)
                            sb.Append($" [{peer} 2T slower than its 1T {F(p1)} ms: the machine is contended, so this 2T ratio says little]");
                    }
                if (medians.TryGetValue(AtPeak(l.Prefix, t), out var atPeak))
                    sb.Append($"; {F(atPeak / ours * 100)}% of vpdpbusd peak");
                sb.AppendLine();
            }
        foreach (var (method, what) in new[]
                 {
                     (PeakMethod, "vpdpbusd zmm, 1 thread"), (PeakMethod2, "vpdpbusd zmm, 2 threads"), ("Vpdpbusd256_Peak", "vpdpbusd ymm (EVEX), 1 thread"),
                     ("Vpdpbusd256_Peak_T2", "vpdpbusd ymm (EVEX), 2 threads"),
                     ("AvxVnni256_Peak", "AvxVnni.MultiplyWideningAndAdd ymm (.NET), 1 thread"), ("Vpmaddwd512_Peak", "vpmaddwd+vpaddd zmm (.NET Avx512BW, PairGemm's pair), 1 thread"),
                 })
            if (medians.TryGetValue(method, out var ms))
                sb.AppendLine($"  peak {what}: {Gops(DotProductPeak.Macs, ms)} GOPS (fastest iteration)");
        foreach (var (op, ours, copy) in new[] { ("quantized add", "Add_Ours", "Copy_TwoInputs"), ("relu", "Relu_Ours", "Copy_OneInput"),
                     ("max_pool2d", "MaxPool_Ours", "Copy_OneInput"), ("avg_pool2d", "AvgPool_Ours", "Copy_OneInput"),
                     ("quantized add into output", "Add_Into", "Copy_TwoInputs"), ("relu into output", "Relu_Into", "Copy_OneInput"),
                     ("max_pool2d into output", "MaxPool_Into", "Copy_OneInput"), ("avg_pool2d into output", "AvgPool_Into", "Copy_OneInput") })
            if (medians.TryGetValue(ours, out var o) && medians.TryGetValue(copy, out var c))
            {
                long bytes = MemoryBoundBenchmarks.Shape.Aggregate(1L, (a, b) => a * b) * (copy == "Copy_TwoInputs" ? 2 : 1);
                sb.AppendLine($"  {op}: ours reads {bytes / 1e9 / (o / 1e3):0.0} GB/s, copy {bytes / 1e9 / (c / 1e3):0.0} GB/s, " +
                              $"ratio {F(c / o)} (goal >= 0.50: {(c / o >= 0.5 ? "met" : "NOT met")})");
            }
        return sb.ToString();
    }
}
