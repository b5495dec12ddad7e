using System.Text.Json;
using System.Text.RegularExpressions;
using QuantTools.Core.Conformance;
using QuantTools.Core.Formats;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Compare;

/// <summary>Named per-layer tensors in model order, with the float inputs of quantize layers when the source has them.</summary>
public sealed class LayerSet
{
    public required string Source { get; init; }
    public required IReadOnlyList<(string Name, object Value)> Layers { get; init; }
    public IReadOnlyDictionary<string, Tensor> FloatInputs { get; init; } = new Dictionary<string, Tensor>();
}

/// <summary>
/// Reads per-layer dumps: a folder of .npy files named by layer (as TVM's debug executor or ONNX Runtime write them;
/// natural file-name order), a .safetensors / .npz file of per-layer tensors (quantized ones with their qparams when
/// Export-QuantTensor wrote them), a single .npy, or a golden model JSON (its <c>layer_outputs_for_input0</c>).
/// </summary>
public static class LayerDumps
{
    public static LayerSet Read(string path)
    {
        if (Directory.Exists(path))
        {
            var files = Directory.GetFiles(path, "*.npy").OrderBy(f => NaturalKey(Path.GetFileName(f)), StringComparer.Ordinal).ToList();
            if (files.Count == 0)
                throw new QuantToolsException(ErrorCode.InvalidArgument, "the folder holds no .npy files named by layer", path);
            return new LayerSet { Source = path, Layers = files.Select(f => (Path.GetFileNameWithoutExtension(f), (object)NpyFormat.Read(f))).ToList() };
        }
        if (!File.Exists(path)) throw new QuantToolsException(ErrorCode.IoError, "no such file or folder", path);
        if (Path.GetExtension(path).Equals(".json", StringComparison.OrdinalIgnoreCase)) return ReadGolden(path);
        return new LayerSet { Source = path, Layers = QTensorFile.ReadAll(path) };
    }

    /// <summary>A golden model JSON: each module's quantized output for input 0, in forward order.</summary>
    public static LayerSet ReadGolden(string jsonPath, string? model = null)
    {
        using var g = new GoldenFile(jsonPath);
        var cases = g.Cases.ToList();
        var c = cases.FirstOrDefault(x => x.TryGetProperty("layer_outputs_for_input0", out _) &&
            (model is null || (x.TryGetProperty("model", out var m) && m.GetString() == model)));
        if (c.ValueKind != JsonValueKind.Object)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "the golden file has no layer_outputs_for_input0" + (model is null ? "" : $" for model '{model}'"), jsonPath);
        var layers = new List<(string, object)>();
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var rec in c.GetProperty("layer_outputs_for_input0").EnumerateArray())
        {
            var name = rec.GetProperty("module").GetString()!;
            var q = g.GetQTensor(rec.GetProperty("y"));
            layers.Add((name, q));
            // the model's float input feeds its Quantize layer: batch element 0 gives the pre-rounding values
            if (rec.TryGetProperty("type", out var t) && t.GetString() == "Quantize" && g.Tensors.Contains("input"))
            {
                var input = g.Tensors.Get("input").ToFloat32();
                int per = q.Length;
                if (input.Length >= per)
                    inputs[name] = new Tensor(DType.Float32, q.Shape, input.AsSpan<float>()[..per].ToArray());
            }
        }
        return new LayerSet { Source = jsonPath, Layers = layers, FloatInputs = inputs };
    }

    private static string NaturalKey(string s) => Regex.Replace(s, @"\d+", m => m.Value.PadLeft(12, '0'));
}
