using QuantTools.Core.Models.Graph;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// What the front end emits for Python constructs on run-time values: unpacking a list or tuple into several values
/// (<c>prim::ListUnpack</c>) and a model's own checks that raise (<c>prim::RaiseIf</c>, from <c>if ...: raise</c>).
/// </summary>
internal sealed class ListOps : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } = ["prim::ListUnpack", "prim::RaiseIf"];

    public override object?[] Run(in OpContext ctx, object?[] a)
    {
        if (ctx.Op == "prim::RaiseIf")
        {
            // RaiseIf(condition, negate, message): raises when condition != negate
            bool c = ScalarOps.ToBool(a[0], "condition");
            if (c != (bool)a[1]!) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"the model's check failed: {a[2]}");
            return [];
        }
        IReadOnlyList<object?> seq = a[0] switch
        {
            List<object?> l => l,
            object?[] t => t,
            _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"cannot unpack {ScalarOps.TypeOf(a[0])}"),
        };
        if (seq.Count != ctx.OutputCount)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"expected {ctx.OutputCount} values to unpack, got {seq.Count}");
        return seq.ToArray();
    }
}

/// <summary>
/// Ints, floats, bools, strings and lists (<see cref="ScalarOps"/>) at run time, e.g. <c>torch.size(x)</c> arithmetic
/// feeding a <c>view</c>. Not a tensor family: the front end folds these when every argument is known.
/// </summary>
internal sealed class ScalarFamily : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } = ScalarOps.Names.Order(StringComparer.Ordinal).ToArray();

    public override bool IsTensorFamily => false;

    public override object?[] Run(in OpContext ctx, object?[] a) => [ScalarOps.Eval(ctx.Op, a)];
}
