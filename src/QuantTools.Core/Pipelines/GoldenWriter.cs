using System.Text.Json.Nodes;
using QuantTools.Core.Formats;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Pipelines;

/// <summary>
/// A golden file a step reads: which engine and batch of the run it stands for, and (for layer.max_diff) which of its
/// tensors holds which layer.
/// </summary>
public sealed record GoldenTarget(string Path, string? Engine, int Batch, string? Layer = null, string? Tensor = null);

/// <summary>
/// Rewrites golden files from a run (Invoke-QuantPipeline -UpdateGolden), in the format they were read: every tensor of
/// the file that stands for the run's output or a captured layer is replaced (same name, same kind: quantized tensor,
/// integer tensor or float tensor; batch element 0 where the file holds one); other tensors (input, float_output) stay.
/// A golden model JSON's companion .safetensors is rewritten and its per-tensor scale / zero point records updated.
/// </summary>
public static class GoldenWriter
{
    /// <summary>Rewrites every target of one job from the job's runs; returns the files written.</summary>
    public static List<string> Write(JobContext ctx, IEnumerable<GoldenTarget> targets)
    {
        var written = new List<string>();
        foreach (var group in targets.GroupBy(t => t.Path, StringComparer.Ordinal))
        {
            var t0 = group.First();
            var engine = t0.Engine ?? ctx.Runs.Keys.FirstOrDefault()
                ?? throw new QuantToolsException(ErrorCode.InvalidArgument, "no run to write the golden file from", t0.Path);
            if (!ctx.Runs.TryGetValue(engine, out var runs) || t0.Batch >= runs.Count)
                throw new QuantToolsException(ErrorCode.InvalidArgument, $"the run has no batch {t0.Batch} for engine {engine}", t0.Path);
            var run = runs[t0.Batch];
            var layerFor = new Dictionary<string, string>(StringComparer.Ordinal);
            var outputs = new HashSet<string>(StringComparer.Ordinal) { "output" };
            foreach (var t in group)
            {
                if (t.Layer is not null && t.Tensor is not null) layerFor[t.Tensor] = t.Layer;
                else if (t.Tensor is not null) outputs.Add(t.Tensor);
            }
            written.AddRange(Rewrite(t0.Path, run, layerFor, outputs));
        }
        return written;
    }

    /// <summary>The files rewriting <paramref name="path"/> may touch: a golden JSON and its companion .safetensors, else the path.</summary>
    public static IEnumerable<string> FilesOf(string path)
    {
        yield return path;
        if (!path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || !File.Exists(path)) yield break;
        string? file = null;
        try { file = JsonNode.Parse(File.ReadAllText(path))?["file"]?.GetValue<string>(); }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or IOException) { }
        if (!string.IsNullOrEmpty(file)) yield return Path.Combine(Path.GetDirectoryName(path)!, file);
    }

    public static List<string> Rewrite(string path, ModelResult run, IReadOnlyDictionary<string, string> layerFor, IReadOnlySet<string> outputs)
    {
        if (Directory.Exists(path))
        {
            var list = new List<string>();
            foreach (var f in Directory.GetFiles(path, "*.npy").Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileNameWithoutExtension(f);
                var old = NpyFormat.Read(f);
                if (Replace(name, old, run, layerFor, outputs) is Tensor t && !ReferenceEquals(t, old))
                {
                    NpyFormat.Write(f, t);
                    list.Add(f);
                }
            }
            return list;
        }
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext == ".json") return RewriteJson(path, run, layerFor, outputs);
        if (ext != ".safetensors")
            throw new QuantToolsException(ErrorCode.NotSupported, "-UpdateGolden rewrites golden model .json, .safetensors and folders of .npy", path);
        RewriteSafeTensors(path, run, layerFor, outputs);
        return [path];
    }

    private static void RewriteSafeTensors(string path, ModelResult run, IReadOnlyDictionary<string, string> layerFor, IReadOnlySet<string> outputs)
    {
        var content = QTensorFile.Load(path);
        var items = content.Items.Select(x => (x.Name, Replace(x.Name, x.Value, run, layerFor, outputs))).ToList();
        QTensorFile.Write(path, items, new TensorFileWriteOptions { Metadata = content.Metadata });
    }

    private static List<string> RewriteJson(string path, ModelResult run, IReadOnlyDictionary<string, string> layerFor, IReadOnlySet<string> outputs)
    {
        var root = JsonNode.Parse(File.ReadAllText(path)) ?? throw new QuantToolsException(ErrorCode.CorruptFile, "empty JSON", path);
        var file = root["file"]?.GetValue<string>() ?? throw new QuantToolsException(ErrorCode.CorruptFile, "no 'file' key naming the safetensors file", path);
        var companion = Path.Combine(Path.GetDirectoryName(path)!, file);
        var map = new Dictionary<string, string>(layerFor, StringComparer.Ordinal);
        bool changed = false;
        foreach (var c in root["cases"]?.AsArray() ?? [])
        {
            if (c?["layer_outputs_for_input0"] is not JsonArray recs) continue;
            foreach (var rec in recs)
            {
                // {module, type, y: {int, dtype, qscheme, shape, scale, zero_point}}
                if (rec?["module"]?.GetValue<string>() is not { } module || rec["y"] is not JsonObject y || y["int"]?.GetValue<string>() is not { } intName) continue;
                map[intName] = module;
                var layer = run.Layer(module);
                if (layer is null || layer.QParams.IsPerChannel || y["scale"] is null || y["zero_point"] is null) continue;
                if (y["scale"]!.GetValue<double>() != layer.QParams.Scale || y["zero_point"]!.GetValue<long>() != layer.QParams.ZeroPoint)
                {
                    y["scale"] = layer.QParams.Scale;
                    y["zero_point"] = layer.QParams.ZeroPoint;
                    changed = true;
                }
            }
        }
        RewriteSafeTensors(companion, run, map, outputs);
        var written = new List<string> { companion };
        if (changed)
        {
            PipelineJson.WriteTextAtomic(path, root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
            written.Insert(0, path);
        }
        return written;
    }

    /// <summary>The run's value for a golden tensor, in the tensor's kind; the tensor itself where the run has none.</summary>
    private static object Replace(string name, object old, ModelResult run, IReadOnlyDictionary<string, string> layerFor, IReadOnlySet<string> outputs)
    {
        int[] oldShape = CompareStep.ShapeOf(old);
        if (outputs.Contains(name) && name != "float_output")
        {
            object value = old is QTensor && run.QuantizedOutput is { } qo ? qo : run.Output;
            return Kind(Fit(value, oldShape, name), old, name);
        }
        var layerName = layerFor.TryGetValue(name, out var l) ? l : CompareStep.LayerName(name);
        if (run.Layer(layerName) is not { } layer) return old;
        return Kind(Fit(layer.Value, oldShape, name), old, name);
    }

    private static object Fit(object value, int[] oldShape, string name)
    {
        var s = CompareStep.ShapeOf(value);
        if (s.SequenceEqual(oldShape)) return value;
        if (s.Length == oldShape.Length && s.Length > 0 && oldShape[0] == 1 && s[0] > 1 && s.AsSpan(1).SequenceEqual(oldShape.AsSpan(1)))
            return CompareStep.First(value);
        if (Tensor.CheckedNumel(s) == Tensor.CheckedNumel(oldShape))
            return value switch { QTensor q => new QTensor(q.IntRepr.Reshape(oldShape), q.QParams), Tensor t => t.Reshape(oldShape), _ => value };
        throw new QuantToolsException(ErrorCode.ShapeMismatch,
            $"the run's '{name}' has shape [{string.Join(", ", s)}], the golden tensor [{string.Join(", ", oldShape)}]");
    }

    /// <summary>The new value as the old one was stored: quantized, integers, or floats (of the old dtype).</summary>
    private static object Kind(object value, object old, string name) => (value, old) switch
    {
        (QTensor q, QTensor) => q,
        (QTensor q, Tensor ot) when !ot.DType.IsFloatingPoint() => Cast(q.IntRepr, ot.DType, name),
        (QTensor q, Tensor ot) => Cast(Quantizer.Dequantize(q), ot.DType, name),
        (Tensor t, Tensor ot) => Cast(t, ot.DType, name),
        (Tensor t, QTensor oq) => Quantizer.Quantize(t.ToFloat32(), oq.QParams),
        _ => old,
    };

    private static Tensor Cast(Tensor t, DType dtype, string name)
    {
        if (t.DType == dtype) return t;
        var r = Tensor.Zeros(dtype, t.Shape);
        var elem = r.Data.GetType().GetElementType()!;
        for (int i = 0; i < t.Length; i++) r.Data.SetValue(Convert.ChangeType(t.GetDouble(i), elem, System.Globalization.CultureInfo.InvariantCulture), i);
        return r;
    }
}
