using System.Text.Json;
using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Models.Onnx;
using QuantTools.Core.Quantization.Ort;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Conformance;

/// <summary>
/// The "onnx" category (core/onnx/onnx.json). Model cases: the ORT-quantized model runs through
/// <see cref="OnnxExecutor"/> (ORT's default graph rewrites and CPU arithmetic) on each row of <c>input</c> separately,
/// as the generator fed ONNX Runtime, and the concatenated float output is compared by bits with <c>&lt;id&gt;/output</c>.
/// Collector cases: ORT's HistogramCollector (<see cref="OrtHistogramCollector"/>) on <c>calib_arr/*</c> with the case's
/// method, symmetric flag and arguments; every threshold (and the entropy / distribution extras) compared by bits.
/// </summary>
public sealed class OnnxCases : IConformanceCategory
{
    public string Category => "onnx";
    public bool Handles(string jsonPath) => GoldenPaths.Dir(jsonPath) == "onnx";

    public IEnumerable<CaseResult> Run(GoldenFile file, CancellationToken cancel)
    {
        foreach (var json in file.Cases)
        {
            cancel.ThrowIfCancellationRequested();
            string id = json.TryGetProperty("id", out var i) ? i.GetString()! : "?";
            CaseResult r;
            try
            {
                r = json.TryGetProperty("model", out _) ? RunModel(file, json, id, cancel)
                    : json.TryGetProperty("method", out _) ? RunCollector(file, json, id)
                    : new CaseResult(id, Category, null, CaseStatus.NotRun, "neither a model nor a collector case");
            }
            catch (QuantToolsException e)
            {
                r = new CaseResult(id, Category, "ort", CaseStatus.Failed, $"{e.Code}: {e.Message}");
            }
            yield return r;
        }
        foreach (var err in file.Errors)
            yield return RunError(err);
    }

    /// <summary>Runs a model case; also used by tests, which look at the executor's graph.</summary>
    public CaseResult RunModel(GoldenFile file, JsonElement json, string id, CancellationToken cancel = default)
    {
        var path = Path.Combine(Path.GetDirectoryName(file.JsonPath)!, json.GetProperty("model").GetString()!);
        if (!File.Exists(path)) return new CaseResult(id, Category, "ort", CaseStatus.NotRun, $"model file {Path.GetFileName(path)} is missing");
        var exec = new OnnxExecutor(OnnxReader.Load(path));
        var input = file.Tensors.Get("input");
        var want = file.Tensors.Get(json.GetProperty("output").GetString()!);
        var got = RunRows(exec, input, cancel);
        var diff = ModelCases.CompareFloatBits(got, want);
        string fused = string.Join(", ", exec.Graph.Nodes.GroupBy(n => n.Op).Select(g => $"{g.Count()} {g.Key}"));
        return diff is null
            ? new CaseResult(id, Category, "ort", CaseStatus.Passed, $"output bit-exact ({want.Length} values, {input.Shape[0]} inputs); graph after ORT's rewrites: {fused}")
            : new CaseResult(id, Category, "ort", CaseStatus.Failed, $"{diff}; graph after ORT's rewrites: {fused}");
    }

    /// <summary>Runs <paramref name="exec"/> on each row of <paramref name="input"/> and stacks the float outputs.</summary>
    public static Tensor RunRows(OnnxExecutor exec, Tensor input, CancellationToken cancel = default)
    {
        int rows = input.Shape[0], per = input.Length / Math.Max(1, rows);
        var outs = new List<Tensor>();
        for (int r = 0; r < rows; r++)
        {
            var shape = (int[])input.Shape.Clone();
            shape[0] = 1;
            var data = new float[per];
            Array.Copy(input.Data, r * per, data, 0, per);
            outs.Add(exec.Run(new Tensor(DType.Float32, shape, data), false, cancel).Output);
        }
        var oshape = (int[])outs[0].Shape.Clone();
        oshape[0] = rows;
        var all = new float[outs.Sum(o => o.Length)];
        int at = 0;
        foreach (var o in outs)
        {
            o.ToFloat32().AsSpan<float>().CopyTo(all.AsSpan(at));
            at += o.Length;
        }
        return new Tensor(DType.Float32, oshape, all);
    }

    /// <summary>
    /// A case ORT refused (the generator recorded its error): a collector case passes when QuantTools refuses the same
    /// arguments with the same message; anything else is reported as not run, with ORT's message.
    /// </summary>
    private CaseResult RunError(JsonElement err)
    {
        string id = err.TryGetProperty("case", out var c) ? c.GetString()! : err.TryGetProperty("id", out var i) ? i.GetString()! : "error";
        string message = err.TryGetProperty("error", out var m) ? m.GetString()! : err.ToString();
        var match = System.Text.RegularExpressions.Regex.Match(id, @"^collector_(\w+?)_(True|False)_\{'num_bins': (\d+)\}$");
        if (!match.Success)
            return new CaseResult(id, Category, "ort", CaseStatus.NotRun, $"ONNX Runtime could not produce this case: {message}");
        var method = OrtCalibrationMethodInfo.Parse(match.Groups[1].Value);
        try
        {
            var col = new OrtHistogramCollector(method, match.Groups[2].Value == "True", int.Parse(match.Groups[3].Value));
            col.Collect([1f, -2f, 3f]);
            col.Compute();
            return new CaseResult(id, Category, "ort", CaseStatus.Failed, $"ONNX Runtime refused this case ({message}) but QuantTools accepted it");
        }
        catch (QuantToolsException e)
        {
            string want = message[(message.IndexOf(':') + 1)..].Trim();
            return e.Message == want
                ? new CaseResult(id, Category, "ort", CaseStatus.Passed, $"refused as ONNX Runtime refuses it: {want}")
                : new CaseResult(id, Category, "ort", CaseStatus.Failed, $"ONNX Runtime: {want}; QuantTools: {e.Message}");
        }
    }

    private CaseResult RunCollector(GoldenFile file, JsonElement json, string id)
    {
        var method = json.GetProperty("method").GetString()!;
        bool symmetric = json.GetProperty("symmetric").GetBoolean();
        var kw = json.GetProperty("kwargs");
        int bins = kw.TryGetProperty("num_bins", out var nb) ? nb.GetInt32() : 128;
        int qbins = kw.TryGetProperty("num_quantized_bins", out var nq) ? nq.GetInt32() : 128;
        double pct = kw.TryGetProperty("percentile", out var p) ? p.GetDouble() : 99.999;
        var result = json.GetProperty("result");
        var arrays = json.TryGetProperty("arrays", out var a) ? a.EnumerateArray().Select(x => x.GetString()!).ToList()
            : result.EnumerateObject().Select(o => o.Name).ToList();
        int compared = 0;
        var problems = new List<string>();
        foreach (var name in arrays)
        {
            var data = file.Tensors.Get($"calib_arr/{name}").ToFloat32();
            var c = new OrtHistogramCollector(OrtCalibrationMethodInfo.Parse(method), symmetric, bins, qbins, pct);
            c.Collect(data.AsSpan<float>());
            var got = c.Compute();
            var want = result.GetProperty(name).EnumerateArray().Select(e => e.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToList();
            var gotParts = got.Parts();
            if (gotParts.Count != want.Count)
            {
                problems.Add($"{name}: {gotParts.Count} result parts, golden {want.Count}");
                continue;
            }
            for (int k = 0; k < want.Count; k++)
            {
                if (gotParts[k].Length != want[k].Length)
                {
                    problems.Add($"{name} part {k}: {gotParts[k].Length} values, golden {want[k].Length}");
                    continue;
                }
                for (int j = 0; j < want[k].Length; j++)
                {
                    compared++;
                    // the golden JSON holds each value as the exact double of the float32 ORT computed
                    if (BitConverter.DoubleToInt64Bits(gotParts[k][j]) != BitConverter.DoubleToInt64Bits(want[k][j]))
                    {
                        problems.Add($"{name} part {k}[{j}]: got {gotParts[k][j]:R}, golden {want[k][j]:R}");
                        break;
                    }
                }
            }
        }
        return problems.Count == 0
            ? new CaseResult(id, Category, "ort", CaseStatus.Passed, $"{compared} values bit-exact over {arrays.Count} arrays")
            : new CaseResult(id, Category, "ort", CaseStatus.Failed, string.Join("; ", problems.Take(4)));
    }
}
