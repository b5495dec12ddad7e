using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// The one table of ops QuantTools runs: TorchScript op name → its family's <see cref="OpHandler"/>. The TorchScript
/// front end accepts exactly the tensor ops listed here, the executor prepacks and runs nodes through them, and the
/// golden "ops" conformance cases run through them too. To add an op family: one handler file in this folder plus one
/// line in <see cref="Handlers"/> (README.md here).
/// </summary>
public static class OpRegistry
{
    /// <summary>Every op family, in no particular order; one line each.</summary>
    private static OpHandler[] Handlers() =>
    [
        new QuantizeOps(),
        new ConvOps(),
        new LinearOps(),
        new ClampOps(),
        new ActivationOps(),
        new PoolOps(),
        new CatOps(),
        new BinaryOps(),
        new ViewOps(),
        new ListOps(),
        new ScalarFamily(),
    ];

    private static readonly Lazy<IReadOnlyDictionary<string, OpHandler>> Table = new(() => Build(Handlers()));

    /// <summary>Indexes handlers by op name; two families claiming one op is a programming error, named here.</summary>
    internal static IReadOnlyDictionary<string, OpHandler> Build(IEnumerable<OpHandler> handlers)
    {
        var d = new Dictionary<string, OpHandler>(StringComparer.Ordinal);
        foreach (var h in handlers)
            foreach (var op in h.Ops)
                if (!d.TryAdd(op, h))
                    throw new InvalidOperationException($"op '{op}' has two handlers: {d[op].GetType().Name} and {h.GetType().Name}");
        return d;
    }

    /// <summary>The handler of <paramref name="op"/>, or null when QuantTools does not run it.</summary>
    internal static OpHandler? Find(string op) => Table.Value.TryGetValue(op, out var h) ? h : null;

    /// <summary>Every op name the executor runs (tensor and scalar ops).</summary>
    public static IReadOnlyCollection<string> Ops => (IReadOnlyCollection<string>)Table.Value.Keys;

    /// <summary>The tensor ops (TorchScript names) the front end accepts in a model's code.</summary>
    public static IReadOnlySet<string> TensorOps => TensorOpSet.Value;

    private static readonly Lazy<IReadOnlySet<string>> TensorOpSet = new(() =>
        Table.Value.Where(kv => kv.Value.IsTensorFamily).Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal));

    /// <summary>True when <paramref name="op"/> is a tensor op the executor runs.</summary>
    public static bool IsTensorOp(string op) => Find(op) is { IsTensorFamily: true };

    /// <summary>The argument index of <paramref name="op"/>'s output scale (zero point next), or -1.</summary>
    public static int OutputQParamsArg(string op) => Find(op)?.OutputQParamsArg(op) ?? -1;

    /// <summary>
    /// Runs one op outside a model, on row-major (contiguous) tensors: prepack, then run, as the executor does for a
    /// node whose inputs are these values. Arguments are <see cref="QTensor"/>, <see cref="Tensor"/>, numbers, bools,
    /// lists (of tensors or numbers), packed params; the result holds one value per output (QTensor, Tensor, number,
    /// list). Used by the golden op cases and by tests.
    /// </summary>
    public static IReadOnlyList<object?> Run(string op, QEngine engine, params object?[] args)
    {
        var h = Find(op) ?? throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"op {op} is not supported by the executor");
        var node = new GraphNode
        {
            Index = 0, Op = op, Inputs = args.Select(Operand.Const).ToList(), Outputs = ["y"], ModulePath = "",
        };
        var prepacked = h.Prepack(node, engine);
        var outs = h.Run(new OpContext(op, engine, prepacked, 1, new BufferPool()), args.Select(Wrap).ToArray());
        return outs.Select(Unwrap).ToList();
    }

    private static object? Wrap(object? v) => v switch
    {
        QTensor q => new RtTensor(q, Layout.Contiguous(q.Shape)),
        Tensor t => new RtTensor(t, Layout.Contiguous(t.Shape)),
        IEnumerable<QTensor> qs => qs.Select(Wrap).ToList(),
        List<object?> l => l.Select(Wrap).ToList(),
        _ => v,
    };

    private static object? Unwrap(object? v) => v switch
    {
        RtTensor { Q: { } q } => q,
        RtTensor t => t.F,
        List<object?> l => l.Select(Unwrap).ToList(),
        _ => v,
    };
}
