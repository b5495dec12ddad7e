using System.Text.Json;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Execution.Ops;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Conformance.Ops;

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
/// Runs the golden "ops" cases of one op family. An adapter turns a case into the op call PyTorch made and runs it
/// through the op's registry handler (<see cref="OpRegistry.Run"/>, the same code a model's node runs), or calls the
/// kernel directly for ops no TorchScript graph reaches yet (upsample, batch_norm2d, layer_norm). Return a QTensor
/// (compared with the case's <c>y</c>) or a float Tensor (compared with <c>y_float</c>). Throw QuantToolsException for
/// inputs PyTorch refuses too. Register a new adapter in <see cref="OpCaseAdapters"/>.
/// </summary>
public interface IOpCaseAdapter
{
    /// <summary>The <c>op</c> values of ops.json this adapter runs (e.g. "conv2d", "avg_pool2d_3_2_1").</summary>
    IEnumerable<string> Ops { get; }
    object Run(OpCase c);
}

/// <summary>The golden op-case adapters, one line each.</summary>
public static class OpCaseAdapters
{
    private static IOpCaseAdapter[] Adapters() =>
    [
        new ConvLinearCases(),
        new BinaryCases(),
        new UnaryCases(),
        new PoolCases(),
        new NormCases(),
    ];

    private static readonly Lazy<Dictionary<string, IOpCaseAdapter>> Table = new(() =>
    {
        var d = new Dictionary<string, IOpCaseAdapter>(StringComparer.Ordinal);
        foreach (var h in Adapters())
            foreach (var op in h.Ops)
                if (!d.TryAdd(op, h))
                    throw new InvalidOperationException($"op '{op}' has two adapters: {d[op].GetType().Name} and {h.GetType().Name}");
        return d;
    });

    public static IOpCaseAdapter? Find(string op) => Table.Value.TryGetValue(op, out var h) ? h : null;
    public static IReadOnlyCollection<string> Known => Table.Value.Keys;

    /// <summary>Runs a TorchScript op through the registry on the case's engine and returns its one output.</summary>
    internal static object Call(OpCase c, string op, params object?[] args) =>
        OpRegistry.Run(op, c.Engine, args)[0] ?? throw new QuantToolsException(ErrorCode.InvalidArgument, $"{op} returned None");
}
