using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Pooling;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution.Ops;

/// <summary>
/// Shape, view and layout ops: flatten, reshape, view, contiguous, transpose, chunk, channel_shuffle and the shape
/// queries size, dim, dtype. Values never change; what changes is the logical shape and the strides PyTorch's tensor
/// would have, which later ops read to pick their kernel path.
/// </summary>
internal sealed class ViewOps : OpHandler
{
    public override IReadOnlyList<string> Ops { get; } =
    [
        "aten::flatten", "aten::reshape", "aten::view", "aten::transpose", "aten::contiguous", "aten::chunk",
        "aten::size", "aten::dim", "prim::dtype", "aten::channel_shuffle",
    ];

    public override object?[] Run(in OpContext ctx, object?[] a)
    {
        var x = T(a[0], "input");
        switch (ctx.Op)
        {
            case "aten::flatten": return [Flatten(x, (int)L(Arg(a, 1, 0L), "start_dim"), (int)L(Arg(a, 2, -1L), "end_dim"))];
            case "aten::reshape": return [Reshape(x, Ints(a[1], "shape"), false)];
            case "aten::view": return [Reshape(x, Ints(a[1], "size"), true)];
            case "aten::contiguous":
            {
                long fmt = a.Length > 1 && a[1] is long f ? f : 0;  // MemoryFormat: 2 = channels_last
                return [Restride(x, fmt == 2 ? Layout.ChannelsLast(x.Shape) : Layout.Contiguous(x.Shape))];
            }
            case "aten::transpose": return [Transpose(x, (int)L(a[1], "dim0"), (int)L(a[2], "dim1"))];
            case "aten::chunk": return [Chunk(x, (int)L(a[1], "chunks"), (int)L(Arg(a, 2, 0L), "dim"))];
            case "aten::size":
                if (a.Length > 1)
                {
                    long d = L(a[1], "dim");
                    if (d < 0) d += x.Shape.Length;
                    return [(long)x.Shape[d]];
                }
                return [x.Shape.Select(s => (object?)(long)s).ToList()];
            case "aten::dim": return [(long)x.Shape.Length];
            case "prim::dtype": return [ScalarOps.ScalarTypeCode(x.Q?.DType ?? x.F!.DType)];
            default: // aten::channel_shuffle
                return [Same(x, QResample.ChannelShuffle(QIn(x, "input"), (int)L(a[1], "groups")))];
        }
    }

    private static RtTensor Flatten(RtTensor x, int sd, int ed)
    {
        int rank = x.Shape.Length;
        if (sd < 0) sd += rank;
        if (ed < 0) ed += rank;
        if (rank == 0) return Reshape(x, [1], false);
        if (sd < 0 || ed >= rank || sd > ed) throw new QuantToolsException(ErrorCode.InvalidArgument, $"flatten dims {sd}..{ed} out of range for rank {rank}");
        if (sd == ed) return x;
        var shape = new List<int>();
        for (int i = 0; i < sd; i++) shape.Add(x.Shape[i]);
        int m = 1;
        for (int i = sd; i <= ed; i++) m *= x.Shape[i];
        shape.Add(m);
        for (int i = ed + 1; i < rank; i++) shape.Add(x.Shape[i]);
        return Reshape(x, shape.ToArray(), false);
    }

    private static RtTensor Restride(RtTensor x, long[] strides) => x.Q is not null ? new RtTensor(x.Q, strides) : new RtTensor(x.F!, strides);

    private static RtTensor Reshape(RtTensor x, int[] shape, bool mustView)
    {
        long numel = 1;
        foreach (var s in x.Shape) numel *= s;
        int infer = Array.IndexOf(shape, -1);
        if (infer >= 0)
        {
            long rest = 1;
            for (int i = 0; i < shape.Length; i++) if (i != infer) rest *= shape[i];
            if (rest == 0 || numel % rest != 0) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"shape [{string.Join(", ", shape)}] is invalid for {numel} elements");
            shape = (int[])shape.Clone();
            shape[infer] = (int)(numel / rest);
        }
        long n2 = 1;
        foreach (var s in shape) n2 *= s;
        if (n2 != numel) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"shape [{string.Join(", ", shape)}] is invalid for input of size {numel}");
        var strides = Layout.ViewStrides(x.Shape, x.Strides, shape);
        if (strides is null)
        {
            if (mustView) throw new QuantToolsException(ErrorCode.ShapeMismatch, "view size is not compatible with input tensor's size and stride; use reshape");
            strides = Layout.Contiguous(shape);
        }
        // logical order never changes under view / reshape
        if (x.Q is not null) return new RtTensor(new QTensor(x.Q.IntRepr.Reshape(shape), x.Q.QParams), strides);
        return new RtTensor(x.F!.Reshape(shape), strides);
    }

    private static RtTensor Transpose(RtTensor x, int d0, int d1)
    {
        int rank = x.Shape.Length;
        if (d0 < 0) d0 += rank;
        if (d1 < 0) d1 += rank;
        if (d0 < 0 || d1 < 0 || d0 >= rank || d1 >= rank) throw new QuantToolsException(ErrorCode.InvalidArgument, $"transpose dims out of range for rank {rank}");
        var strides = (long[])x.Strides.Clone();
        (strides[d0], strides[d1]) = (strides[d1], strides[d0]);
        if (d0 == d1) return x;
        if (x.Q is not null) return new RtTensor(new QTensor(Relayout.Transpose(x.Q.IntRepr, d0, d1), x.Q.QParams), strides);
        return new RtTensor(Relayout.Transpose(x.F!, d0, d1), strides);
    }

    private static List<object?> Chunk(RtTensor x, int chunks, int dim)
    {
        int rank = x.Shape.Length;
        if (dim < 0) dim += rank;
        if (chunks <= 0 || dim < 0 || dim >= rank) throw new QuantToolsException(ErrorCode.InvalidArgument, "chunk: bad chunks or dim");
        int size = x.Shape[dim];
        int each = (size + chunks - 1) / chunks;
        var list = new List<object?>();
        for (int start = 0; start < size || (size == 0 && list.Count == 0); start += each)
        {
            int len = Math.Min(each, size - start);
            if (each == 0) break;
            if (x.Q is not null) list.Add(new RtTensor(new QTensor(Relayout.Narrow(x.Q.IntRepr, dim, start, len), x.Q.QParams), (long[])x.Strides.Clone()));
            else list.Add(new RtTensor(Relayout.Narrow(x.F!, dim, start, len), (long[])x.Strides.Clone()));
        }
        return list;
    }
}
