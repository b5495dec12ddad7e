using System.Reflection;
using System.Text.Json;
using QuantTools.Core.Conformance;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels.Ops;

/// <summary>One case of ops.json with typed accessors for its inputs.</summary>
public sealed class OpCase(GoldenFile file, JsonElement json)
{
    public GoldenFile File { get; } = file;
    public JsonElement Json { get; } = json;
    public string Id => Json.GetProperty("id").GetString()!;
    public string Op => Json.GetProperty("op").GetString()!;
    public QEngine Engine => QEngineInfo.Parse(Json.GetProperty("engine").GetString()!);
    public JsonElement Params => Json.TryGetProperty("params", out var p) ? p : default;

    public bool Has(string key) => Json.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null;
    /// <summary>A quantized-tensor record such as <c>x</c>, <c>a</c>, <c>w</c>.</summary>
    public QTensor QTensor(string key) => File.GetQTensor(Json.GetProperty(key));
    /// <summary>A dense tensor named by a string value such as <c>bias</c>, <c>x_float</c>.</summary>
    public Tensor Tensor(string key) => File.Tensors.Get(Json.GetProperty(key).GetString()!);
    public Tensor? OptionalTensor(string key) => Has(key) ? Tensor(key) : null;
    public double Double(string key) => Json.GetProperty(key).GetDouble();
    public long Long(string key) => Json.GetProperty(key).GetInt64();
    public int Param(string key) => Params.GetProperty(key).GetInt32();
    public bool ParamBool(string key) => Params.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.True;
}

/// <summary>
/// Runs ops of one family for the golden "ops" category. Implementations are thin adapters from a golden case to
/// the reusable kernel API (the same kernels the model executor uses). They are found by reflection: add a class,
/// nothing else to register. Return a QTensor (compared with the case's <c>y</c>) or a float Tensor (compared with
/// <c>y_float</c>). Throw QuantToolsException for inputs PyTorch refuses too.
/// </summary>
public interface IOpHandler
{
    /// <summary>The <c>op</c> values this handler runs (e.g. "conv2d", "avg_pool2d_3_2_1").</summary>
    IEnumerable<string> Ops { get; }
    object Run(OpCase c);
}

public static class OpHandlers
{
    private static readonly Lazy<Dictionary<string, IOpHandler>> Table = new(() =>
    {
        var d = new Dictionary<string, IOpHandler>(StringComparer.Ordinal);
        foreach (var t in typeof(IOpHandler).Assembly.GetTypes())
        {
            if (t.IsAbstract || t.IsInterface || !typeof(IOpHandler).IsAssignableFrom(t)) continue;
            var h = (IOpHandler)Activator.CreateInstance(t)!;
            foreach (var op in h.Ops)
                if (!d.TryAdd(op, h))
                    throw new InvalidOperationException($"op '{op}' has two handlers: {d[op].GetType().Name} and {t.Name}");
        }
        return d;
    });

    public static IOpHandler? Find(string op) => Table.Value.TryGetValue(op, out var h) ? h : null;
    public static IReadOnlyCollection<string> Known => Table.Value.Keys;
}
