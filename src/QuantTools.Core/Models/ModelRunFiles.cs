using QuantTools.Core.Formats;
using QuantTools.Core.Models.Execution;

namespace QuantTools.Core.Models;

/// <summary>A model run's output and captured layers as tensor-file entries, and the files Invoke-QuantModel -OutputPath writes.</summary>
public static class ModelRunFiles
{
    /// <summary>The run's float output as <c>output</c>, then every captured layer (quantized, with qparams) by name; names get <paramref name="prefix"/>/ in front when given.</summary>
    public static List<(string Name, object Value)> Entries(ModelResult result, string? prefix = null)
    {
        string P(string n) => prefix is null ? n : $"{prefix}/{n}";
        var list = new List<(string, object)> { (P("output"), result.Output) };
        foreach (var l in result.Layers) list.Add((P(l.Name), l.Value));
        return list;
    }

    /// <summary>
    /// Writes one batch's run: to a .safetensors file (batch 2 on as <c>NAME.2.safetensors</c>, ...), or else to a folder of
    /// .npy files named by layer (batch 2 on in <c>batch2/</c>, ...; layers as their int_repr). Returns the file or folder written.
    /// </summary>
    public static string Write(string target, ModelResult result, int batch)
    {
        var entries = Entries(result);
        if (target.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            if (batch > 1) target = Path.ChangeExtension(target, null) + $".{batch}.safetensors";
            QTensorFile.Write(target, entries);
            return target;
        }
        var dir = batch > 1 ? Path.Combine(target, $"batch{batch}") : target;
        QTensorFile.WriteFolder(dir, entries);
        return dir;
    }
}
