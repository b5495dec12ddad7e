using System.Text.Json;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Conformance;

/// <summary>
/// The "models" category (core/models/*.json, core/engines/*.json): each model's TorchScript file is built into a
/// graph and run under the case's engine (x86 unless the case names one) on <c>input</c>; the float <c>output</c> is
/// compared by bits, and every layer of <c>layer_outputs_for_input0</c> (run on <c>input[0:1]</c> with capture) by
/// integers, dtype, shape and qparams. Detail names the first diverging layer. Cases without a TorchScript file are
/// NotRun with the reason.
/// </summary>
public sealed class ModelCases : IConformanceCategory
{
    public string Category => "models";
    public bool Handles(string jsonPath) => GoldenPaths.Dir(jsonPath) is "models" or "engines";

    public IEnumerable<CaseResult> Run(GoldenFile file, CancellationToken cancel)
    {
        var stem = Path.GetFileNameWithoutExtension(file.JsonPath);
        foreach (var json in file.Cases)
        {
            cancel.ThrowIfCancellationRequested();
            yield return RunCase(file, json, stem, cancel);
        }
        foreach (var err in file.Errors)
            yield return new CaseResult(stem + "/error", Category, null, CaseStatus.NotRun,
                $"PyTorch could not produce this form: {(err.TryGetProperty("error", out var e) ? e.GetString() : err.ToString())}");
    }

    /// <summary>The TorchScript file a model case names in <c>files</c>, or null.</summary>
    public static string? TorchScriptPath(GoldenFile file, JsonElement json)
    {
        if (!json.TryGetProperty("files", out var files) || files.ValueKind != JsonValueKind.Array) return null;
        var name = files.EnumerateArray().Select(f => f.GetString()).FirstOrDefault(f => f?.EndsWith(".torchscript.pt", StringComparison.Ordinal) == true);
        if (name is null) return null;
        var p = Path.Combine(Path.GetDirectoryName(file.JsonPath)!, name);
        return File.Exists(p) ? p : null;
    }

    public static QEngine EngineOf(JsonElement json) =>
        json.TryGetProperty("engine", out var e) && e.GetString() is { } s ? QEngineInfo.Parse(s) : QEngine.X86;

    public CaseResult RunCase(GoldenFile file, JsonElement json, string id, CancellationToken cancel = default)
    {
        var engine = EngineOf(json);
        string engineName = engine.TorchName();
        CaseResult R(CaseStatus s, string d) => new(id, Category, engineName, s, d);
        if (json.TryGetProperty("what", out var what) && !json.TryGetProperty("files", out _))
            return R(CaseStatus.NotRun, $"not a converted model ({what.GetString()}); QAT fake-quant forward is not run by the executor");
        var ts = TorchScriptPath(file, json);
        if (ts is null)
            return R(CaseStatus.NotRun, "the case has no TorchScript file; running an eager state_dict needs an architecture description (not implemented yet)");
        ModelExecutor exec;
        try
        {
            exec = new ModelExecutor(TorchScriptFrontEnd.Build(ts), engine);
        }
        catch (QuantToolsException e) when (e.Code is ErrorCode.NotSupported)
        {
            return R(CaseStatus.NotRun, $"{e.Code}: {e.Message}");
        }
        catch (QuantToolsException e)
        {
            return R(CaseStatus.Failed, $"graph: {e.Code}: {e.Message}");
        }
        var cmp = Compare(file, json, exec, cancel);
        return R(cmp.Passed ? CaseStatus.Passed : CaseStatus.Failed, cmp.Detail);
    }

    /// <summary>Result of comparing one model with its golden data.</summary>
    public sealed record Comparison(bool Passed, string Detail, int LayersCompared, int LayersEqual, bool OutputEqual);

    /// <summary>Runs the model on the golden input(s) and compares output bits and every captured layer.</summary>
    public static Comparison Compare(GoldenFile file, JsonElement json, ModelExecutor exec, CancellationToken cancel = default)
    {
        var input = file.Tensors.Get("input");
        ModelResult full;
        try
        {
            full = exec.Run(input, false, cancel);
        }
        catch (QuantToolsException e)
        {
            return new Comparison(false, $"run: {e.Code}: {e.Message}", 0, 0, false);
        }
        var want = file.Tensors.Get("output");
        string? outDiff = CompareFloatBits(full.Output, want);
        var layerRecs = json.TryGetProperty("layer_outputs_for_input0", out var lo) ? lo.EnumerateArray().ToList() : [];
        int equal = 0;
        string? firstLayerDiff = null;
        if (layerRecs.Count > 0)
        {
            ModelResult one;
            try
            {
                one = exec.Run(FirstItem(input), true, cancel);
            }
            catch (QuantToolsException e)
            {
                return new Comparison(false, $"run on input[0:1]: {e.Code}: {e.Message}", layerRecs.Count, 0, outDiff is null);
            }
            foreach (var rec in layerRecs)
            {
                var name = rec.GetProperty("module").GetString()!;
                var golden = file.GetQTensor(rec.GetProperty("y"));
                var got = one.Layer(name);
                string? d = got is null ? "not captured (no module call with this path produced a quantized tensor)" : CompareQTensor(got.Value, golden);
                if (d is null) equal++;
                else firstLayerDiff ??= $"first diverging layer '{name}' ({rec.GetProperty("type").GetString()}): {d}";
            }
        }
        bool ok = outDiff is null && firstLayerDiff is null;
        string detail = ok
            ? $"output bit-exact ({want.Length} values), {equal}/{layerRecs.Count} layers bit-exact, engine {exec.Engine.TorchName()}, {exec.Graph.Nodes.Count} nodes"
            : string.Join("; ", new[] { firstLayerDiff, outDiff is null ? null : "output: " + outDiff, $"{equal}/{layerRecs.Count} layers bit-exact" }.Where(s => s is not null));
        return new Comparison(ok, detail, layerRecs.Count, equal, outDiff is null);
    }

    /// <summary><c>x[0:1]</c>.</summary>
    public static Tensor FirstItem(Tensor x)
    {
        if (x.Shape.Length == 0 || x.Shape[0] == 0) return x;
        int per = x.Length / x.Shape[0];
        var shape = (int[])x.Shape.Clone();
        shape[0] = 1;
        var data = Array.CreateInstance(x.Data.GetType().GetElementType()!, per);
        Array.Copy(x.Data, 0, data, 0, per);
        return new Tensor(x.DType, shape, data);
    }

    /// <summary>Null when equal bit for bit, else a description of the first difference.</summary>
    public static string? CompareFloatBits(Tensor got, Tensor want)
    {
        if (!got.Shape.SequenceEqual(want.Shape)) return $"shape [{string.Join(", ", got.Shape)}] != golden [{string.Join(", ", want.Shape)}]";
        var g = got.ToFloat32().AsSpan<float>();
        var w = want.ToFloat32().AsSpan<float>();
        int bad = 0, first = -1;
        double maxAbs = 0;
        for (int i = 0; i < g.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(g[i]) == BitConverter.SingleToInt32Bits(w[i])) continue;
            bad++;
            if (first < 0) first = i;
            maxAbs = Math.Max(maxAbs, Math.Abs((double)g[i] - w[i]));
        }
        return bad == 0 ? null : $"{bad} of {g.Length} floats differ (first at {first}: got {g[first]:R}, golden {w[first]:R}; max |diff| {maxAbs:G6})";
    }

    /// <summary>Null when dtype, shape, qparams and every integer are equal, else the first difference.</summary>
    public static string? CompareQTensor(QTensor got, QTensor want)
    {
        if (got.DType != want.DType) return $"dtype {got.DType.TorchName()} != golden {want.DType.TorchName()}";
        if (!got.Shape.SequenceEqual(want.Shape)) return $"shape [{string.Join(", ", got.Shape)}] != golden [{string.Join(", ", want.Shape)}]";
        if (got.QParams.IsPerChannel != want.QParams.IsPerChannel) return "qscheme differs";
        if (!got.QParams.Scales.SequenceEqual(want.QParams.Scales)) return $"scale {got.QParams.Scale:R} != golden {want.QParams.Scale:R}";
        if (!got.QParams.ZeroPoints.SequenceEqual(want.QParams.ZeroPoints)) return $"zero_point {got.QParams.ZeroPoint} != golden {want.QParams.ZeroPoint}";
        int bad = 0, first = -1, maxd = 0;
        for (int i = 0; i < got.Length; i++)
        {
            long a = (long)got.IntRepr.GetDouble(i), b = (long)want.IntRepr.GetDouble(i);
            if (a == b) continue;
            bad++;
            if (first < 0) first = i;
            maxd = Math.Max(maxd, (int)Math.Abs(a - b));
        }
        if (bad == 0) return null;
        return $"{bad} of {got.Length} integers differ (first at {first}: got {got.IntRepr.GetDouble(first)}, golden {want.IntRepr.GetDouble(first)}; max |diff| {maxd})";
    }
}
