using System.Diagnostics;
using System.Globalization;
using System.Text;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Tensors;

namespace QuantTools.Benchmarks;

/// <summary>
/// One row per engine and kernel path ("path ..." rows): each layer / op is run with every ISA path this CPU has
/// forced (<see cref="KernelPaths.Force"/>), under each engine, and named by the plan the resolver chose
/// (<c>qu8-conv2d/avx2-pairgemm</c>, ...). Paths that resolve to the same plan are measured once. The peer of each row
/// is the scalar path of the same layer and engine measured in the same run, so the ratio says what the SIMD path buys.
/// A Stopwatch harness (like the model rows): medians over a short time budget, single thread.
/// </summary>
internal static class KernelPathBenchmarks
{
    public sealed record Result(string Name, double Ms, string? Peer, double? PeerMs);

    private static readonly QEngine[] Engines = [QEngine.X86, QEngine.Fbgemm, QEngine.FbgemmAvx2, QEngine.Qnnpack, QEngine.Onednn];

    /// <summary>True when a filter selects these rows ("path", a family or layer name); none selects everything.</summary>
    public static bool Selected(string[] filters) =>
        filters.Length == 0 || filters.Any(f => f.IndexOfAny(['*', '?']) < 0 &&
            ("path".Contains(f, StringComparison.OrdinalIgnoreCase) || f.Contains("path", StringComparison.OrdinalIgnoreCase) ||
             f.Contains('/', StringComparison.Ordinal)));

    private static double Median(Action run, double budgetMs)
    {
        run();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < 3 || (total.Elapsed.TotalMilliseconds < budgetMs && times.Count < 200))
        {
            long t0 = Stopwatch.GetTimestamp();
            run();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        times.Sort();
        int n = times.Count;
        return n % 2 == 1 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
    }

    private static QTensor Activations(Random rng, int[] shape, double scale, int zp)
    {
        var t = Tensor.Zeros(DType.UInt8, shape);
        rng.NextBytes(t.AsSpan<byte>());
        return new QTensor(t, QParams.PerTensor(scale, zp, DType.QUInt8));
    }

    private static QTensor Weights(Random rng, int[] shape)
    {
        var t = Tensor.Zeros(DType.Int8, shape);
        var s = t.AsSpan<sbyte>();
        for (int i = 0; i < s.Length; i++) s[i] = (sbyte)rng.Next(-100, 101);
        return new QTensor(t, QParams.PerTensor(0.01, 0, DType.QInt8));
    }

    public static List<Result> Run(bool full, TextWriter log)
    {
        double budget = full ? 2000 : 300;
        var results = new List<Result>();
        var rng = new Random(16);
        log.WriteLine($"// path rows: every ISA path forced in turn, per engine; budget {budget} ms per row, median; peer = the scalar path");

        // conv and linear: the plan depends on the engine (backend numerics) and the layer
        var convs = new (string Layer, QTensor X, QTensor W, int Groups)[]
        {
            ("conv3x3 64ch 28x28", Activations(rng, [1, 64, 28, 28], 0.02, 3), Weights(rng, [64, 64, 3, 3]), 1),
            ("dwconv3x3 96ch 28x28", Activations(rng, [1, 96, 28, 28], 0.02, 3), Weights(rng, [96, 1, 3, 3]), 96),
        };
        foreach (var (layer, x, w, groups) in convs)
            foreach (var engine in Engines)
            {
                var pw = PackedConvWeight.Create(w, null, [1], [1], [1], groups, false, [], engine);
                Measure($"{layer} {engine.ToString().ToLowerInvariant()}", () => pw.Plan.ToString(), () => pw.Run(x, 0.05, 7, true));
            }
        var lx = Activations(rng, [64, 512], 0.02, 3);
        var lw = Weights(rng, [512, 512]);
        foreach (var engine in Engines)
        {
            var pw = PackedLinearWeight.Create(lw, null, engine);
            Measure($"linear 64x512x512 {engine.ToString().ToLowerInvariant()}", () => pw.Plan.ToString(), () => pw.Run(lx, 0.05, 7, false));
        }

        // CPU-only families: one row per path
        const int n = 1 << 20;
        var f = new float[n];
        for (int i = 0; i < n; i++) f[i] = (float)(rng.NextDouble() * 8 - 4);
        var q = new byte[n];
        var q2 = new byte[n];
        rng.NextBytes(q);
        rng.NextBytes(q2);
        var y = new float[n];
        var o = new byte[n];
        var addParams = AddKernels.AtenParams(QParams.PerTensor(0.03, 120, DType.QUInt8), QParams.PerTensor(0.02, 130, DType.QUInt8), 0.04, 128, false);
        var ops = new (KernelFamily Family, Action Run)[]
        {
            (QuantizeKernels.QUInt8Family, () => QuantizeKernels.QUInt8(f, q, 0.03, 128)),
            (DequantizeKernels.QUInt8Family, () => DequantizeKernels.QUInt8(q, y, 0.03, 128)),
            (AddKernels.Family, () => AddKernels.AtenAdd(q, q2, o, false, addParams)),
            (ClampKernels.Family, () => ClampKernels.Clamp(q, o, false, 20, 200)),
            (MinMaxKernel.Family, () => MinMaxKernel.Compute(f)),
        };
        foreach (var (family, run) in ops)
            Measure($"{family.Name} 1M", () => family.ResolvedName, run);
        return results;

        void Measure(string what, Func<string> plan, Action run)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            double? scalarMs = null;
            string? scalarName = null;
            foreach (var p in KernelPaths.AllSupported())
            {
                using var _ = KernelPaths.Force(p);
                var name = plan();
                if (!seen.Add(name)) continue;
                double ms = Median(run, budget);
                if (p == KernelPath.Scalar) { scalarMs = ms; scalarName = name; }
                var row = $"path {what} {name}";
                results.Add(new Result(row, ms, p == KernelPath.Scalar ? null : "scalar path", p == KernelPath.Scalar ? null : scalarMs));
                log.WriteLine($"//   {row}: {ms:0.000} ms{(p != KernelPath.Scalar && scalarMs is { } s ? $" ({s / ms:0.00}x the scalar path {scalarName})" : "")}");
            }
        }
    }

    public static string Report(IEnumerable<Result> results)
    {
        var sb = new StringBuilder();
        sb.AppendLine("Kernel paths (one row per engine and path; ratio = scalar path ms / this path's ms, measured in the same run):");
        foreach (var r in results)
        {
            sb.Append($"  {r.Name}: {r.Ms.ToString("0.000", CultureInfo.InvariantCulture)} ms");
            if (r.PeerMs is { } p) sb.Append($", {(p / r.Ms).ToString("0.00", CultureInfo.InvariantCulture)}x the scalar path");
            sb.AppendLine();
        }
        return sb.ToString();
    }
}
