using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// One op family (e.g. all convs, all clamps): the TorchScript op names it runs, its optional prepack step (once per
/// node, when an executor is made) and its run (once per node and batch). Handlers hold no state; everything a run
/// needs comes in through <see cref="OpContext"/> and the argument array. See README.md in this folder.
/// </summary>
internal abstract class OpHandler
{
    /// <summary>TorchScript op names this family runs (<c>quantized::conv2d</c>, <c>aten::relu</c>, ...).</summary>
    public abstract IReadOnlyList<string> Ops { get; }

    /// <summary>
    /// False for families whose values are not tensors (ints, lists: the front end folds them when every argument is
    /// known). The front end accepts a <c>torch.*</c> / <c>ops.*</c> call only when its op is in a tensor family.
    /// </summary>
    public virtual bool IsTensorFamily => true;

    /// <summary>
    /// The argument index of the output scale (the zero point follows it) when <paramref name="op"/> requantizes to
    /// qparams given as arguments; -1 otherwise. The front end records constant ones on the node.
    /// </summary>
    public virtual int OutputQParamsArg(string op) => -1;

    /// <summary>
    /// Work done once per node before any run (weight packing). The result comes back as
    /// <see cref="OpContext.Prepacked"/>. Throw <see cref="QuantToolsException"/>; the executor adds the layer and line.
    /// </summary>
    public virtual object? Prepack(GraphNode node, QEngine engine) => null;

    /// <summary>
    /// As <see cref="Prepack(GraphNode, QEngine)"/>, for PyTorch on a CPU of class <paramref name="cpu"/> (which library
    /// runs a conv or linear there); families whose packing does not depend on the CPU keep the two-argument form.
    /// </summary>
    public virtual object? Prepack(GraphNode node, QEngine engine, CpuClass cpu) => Prepack(node, engine);

    /// <summary>
    /// Runs one node: <paramref name="args"/> are the node's inputs (run-time values as <see cref="RtTensor"/>, lists,
    /// numbers; constants as they are), the result holds one value per node output. Throw
    /// <see cref="QuantToolsException"/> for inputs PyTorch refuses; the executor adds the layer, line and input shapes.
    /// </summary>
    public abstract object?[] Run(in OpContext ctx, object?[] args);

    // ------------------------------------------------------------------ argument helpers shared by the families

    protected static RtTensor T(object? v, string what) => v as RtTensor
        ?? throw new QuantToolsException(ErrorCode.InvalidArgument, $"{what} must be a tensor, got {ScalarOps.TypeOf(v)}");

    protected static QTensor QIn(object? v, string what)
    {
        var t = T(v, what);
        return t.Q ?? throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{what} must be a quantized tensor, got {t.F!.DType.TorchName()}");
    }

    protected static long L(object? v, string what) => ScalarOps.ToLong(v, what);
    protected static double D(object? v, string what) => ScalarOps.ToDouble(v, what);

    protected static int[] Ints(object? v, string what) => v switch
    {
        List<object?> l => l.Select(x => checked((int)L(x, what))).ToArray(),
        object?[] t => t.Select(x => checked((int)L(x, what))).ToArray(),
        long x => [checked((int)x)],
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"{what} must be a list of ints, got {ScalarOps.TypeOf(v)}"),
    };

    /// <summary>Argument <paramref name="i"/>, or <paramref name="fallback"/> when the call passed fewer.</summary>
    protected static object? Arg(object?[] a, int i, object? fallback = null) => i < a.Length ? a[i] : fallback;

    protected static (int, int) Pair(int[] v) => v.Length switch
    {
        1 => (v[0], v[0]),
        2 => (v[0], v[1]),
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"expected 1 or 2 values, got {v.Length}"),
    };

    protected static List<RtTensor> TensorList(object? v) => v switch
    {
        List<object?> l => l.Select(x => T(x, "list element")).ToList(),
        object?[] t => t.Select(x => T(x, "list element")).ToList(),
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"expected a list of tensors, got {ScalarOps.TypeOf(v)}"),
    };

    /// <summary>A result with the memory format PyTorch suggests for <paramref name="like"/> (element-wise ops).</summary>
    protected static RtTensor Same(RtTensor like, QTensor q) => new(q, Layout.LikeSuggested(like.Shape, like.Strides));

    protected static int Numel(int[] shape) => checked((int)Tensor.CheckedNumel(shape));

    /// <summary>A quint8 result over <paramref name="buf"/> with <paramref name="like"/>'s qparams.</summary>
    protected static QTensor LikeInput(QTensor like, int[] shape, byte[] buf) =>
        new(new Tensor(DType.UInt8, (int[])shape.Clone(), buf), QParams.PerTensor(like.QParams.Scale, like.QParams.ZeroPoint, like.DType));

    /// <summary>True when PyTorch's tensor is channels_last in memory and not also contiguous (size-1 dims make both true).</summary>
    protected static bool IsChannelsLastOnly(RtTensor x) =>
        Layout.IsChannelsLastContiguous(x.Shape, x.Strides) && !Layout.IsContiguous(x.Shape, x.Strides);

    protected static bool IsRelu(string op) => op.EndsWith("_relu", StringComparison.Ordinal);
}

/// <summary>What one node's run gets besides its arguments.</summary>
internal readonly struct OpContext
{
    private readonly BufferPool _pool;

    public OpContext(string op, QEngine engine, object? prepacked, int outputCount, BufferPool pool)
    {
        Op = op;
        Engine = engine;
        Prepacked = prepacked;
        OutputCount = outputCount;
        _pool = pool;
    }

    /// <summary>The node's TorchScript op name (a family tells its members apart by it).</summary>
    public string Op { get; }
    public QEngine Engine { get; }
    /// <summary>What <see cref="OpHandler.Prepack"/> returned for this node.</summary>
    public object? Prepacked { get; }
    /// <summary>How many outputs the node has (<c>prim::ListUnpack</c>).</summary>
    public int OutputCount { get; }

    /// <summary>
    /// A quint8 activation buffer of exactly <paramref name="length"/> bytes (contents undefined) from the executor's
    /// pool. A result built on it is returned to the pool when no live value holds it any more.
    /// </summary>
    public byte[] Rent(int length) => _pool.Rent(length);

    /// <summary>Gives back a rented buffer that became a temporary (never one a result still uses).</summary>
    public void Return(byte[]? buffer) => _pool.Return(buffer);
}
