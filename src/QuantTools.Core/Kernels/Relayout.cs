using QuantTools.Core.Tensors;

namespace QuantTools.Core.Kernels;

/// <summary>
/// Data movement without arithmetic: gathers by strides, transposes, narrows, broadcasts, NCHW ↔ NHWC. Values are
/// copied bit for bit; these exist so ops can run PyTorch's layout-dependent kernels on our row-major tensors.
/// </summary>
public static class Relayout
{
    /// <summary>dst[i] = src[Σ idx_d * strides_d] over the row-major indices of <paramref name="shape"/>.</summary>
    public static T[] Gather<T>(T[] src, int[] shape, long[] strides, T[]? into = null)
    {
        int rank = shape.Length;
        long total = 1;
        foreach (var s in shape) total *= s;
        var dst = into ?? new T[total];
        if (total == 0) return dst;
        int last = shape[rank - 1];
        long lastStride = strides[rank - 1];
        var idx = new int[rank];
        long i = 0;
        while (i < total)
        {
            long off = 0;
            for (int d = 0; d < rank - 1; d++) off += idx[d] * strides[d];
            for (int x = 0; x < last; x++) dst[i++] = src[off + x * lastStride];
            for (int d = rank - 2; d >= 0; d--)
            {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
        return dst;
    }

    /// <summary>A row-major copy of <paramref name="t"/> with dims <paramref name="d0"/> and <paramref name="d1"/> swapped.</summary>
    public static Tensor Transpose(Tensor t, int d0, int d1)
    {
        int rank = t.Shape.Length;
        var shape = (int[])t.Shape.Clone();
        (shape[d0], shape[d1]) = (shape[d1], shape[d0]);
        var srcStrides = ContiguousStrides(t.Shape);
        var perm = Enumerable.Range(0, rank).ToArray();
        (perm[d0], perm[d1]) = (perm[d1], perm[d0]);
        var map = new long[rank];
        for (int d = 0; d < rank; d++) map[d] = srcStrides[perm[d]];
        Array dst = t.Data switch
        {
            byte[] b => Gather(b, shape, map),
            sbyte[] sb => Gather(sb, shape, map),
            float[] f => Gather(f, shape, map),
            int[] i32 => Gather(i32, shape, map),
            long[] i64 => Gather(i64, shape, map),
            double[] f64 => Gather(f64, shape, map),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"transpose of {t.DType.TorchName()} is not supported"),
        };
        return new Tensor(t.DType, shape, dst);
    }

    /// <summary>Elements [start, start + len) of dimension <paramref name="dim"/>, as a new row-major tensor.</summary>
    public static Tensor Narrow(Tensor t, int dim, int start, int len)
    {
        var shape = (int[])t.Shape.Clone();
        shape[dim] = len;
        int outer = 1, inner = 1;
        for (int d = 0; d < dim; d++) outer *= t.Shape[d];
        for (int d = dim + 1; d < t.Shape.Length; d++) inner *= t.Shape[d];
        var dst = Array.CreateInstance(t.Data.GetType().GetElementType()!, outer * len * inner);
        for (int o = 0; o < outer; o++)
            Array.Copy(t.Data, (o * t.Shape[dim] + start) * inner, dst, o * len * inner, len * inner);
        return new Tensor(t.DType, shape, dst);
    }

    /// <summary>NumPy / PyTorch broadcasting of two shapes.</summary>
    public static int[] BroadcastShape(int[] a, int[] b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) >= 0 ? a[i - (rank - a.Length)] : 1;
            int db = i - (rank - b.Length) >= 0 ? b[i - (rank - b.Length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new QuantToolsException(ErrorCode.ShapeMismatch, $"shapes [{string.Join(", ", a)}] and [{string.Join(", ", b)}] do not broadcast");
            r[i] = Math.Max(da, db);
        }
        return r;
    }

    /// <summary><paramref name="q"/> expanded (broadcast) to <paramref name="shape"/>, materialised.</summary>
    public static QTensor Expand(QTensor q, int[] shape)
    {
        if (q.Shape.SequenceEqual(shape)) return q;
        int rank = shape.Length;
        var src = q.IntRepr;
        var inShape = Enumerable.Repeat(1, rank - q.Shape.Length).Concat(q.Shape).ToArray();
        var inStrides = ContiguousStrides(inShape);
        var strides = new long[rank];
        for (int d = 0; d < rank; d++) strides[d] = inShape[d] == 1 ? 0 : inStrides[d];
        Array dst = src.Data switch
        {
            byte[] b => Gather(b, shape, strides),
            sbyte[] sb => Gather(sb, shape, strides),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"broadcast of {q.DType.TorchName()} is not supported"),
        };
        return new QTensor(new Tensor(src.DType, (int[])shape.Clone(), dst), q.QParams);
    }

    /// <summary>[N, C, H, W] → [N, H, W, C] (the memory order of a channels_last tensor).</summary>
    public static QTensor ToNhwc(QTensor q) =>
        new(Transpose(Transpose(q.IntRepr, 1, 2), 2, 3), q.QParams);

    /// <summary>[N, H, W, C] → [N, C, H, W].</summary>
    public static QTensor FromNhwc(QTensor q) =>
        new(Transpose(Transpose(q.IntRepr, 2, 3), 1, 2), q.QParams);

    /// <summary><see cref="ToNhwc(QTensor)"/> of a quint8 tensor into <paramref name="into"/> (its length is the tensor's).</summary>
    public static QTensor ToNhwc(QTensor q, byte[] into)
    {
        int n = q.Shape[0], c = q.Shape[1], h = q.Shape[2], w = q.Shape[3];
        int[] shape = [n, h, w, c];
        var dst = Gather((byte[])q.IntRepr.Data, shape, [(long)c * h * w, w, 1, (long)h * w], into);
        return new QTensor(new Tensor(DType.UInt8, shape, dst), q.QParams);
    }

    /// <summary><see cref="FromNhwc(QTensor)"/> of a quint8 tensor into <paramref name="into"/>.</summary>
    public static QTensor FromNhwc(QTensor q, byte[] into)
    {
        int n = q.Shape[0], h = q.Shape[1], w = q.Shape[2], c = q.Shape[3];
        int[] shape = [n, c, h, w];
        var dst = Gather((byte[])q.IntRepr.Data, shape, [(long)h * w * c, 1, (long)w * c, c], into);
        return new QTensor(new Tensor(DType.UInt8, shape, dst), q.QParams);
    }

    private static long[] ContiguousStrides(int[] shape)
    {
        // the same as Layout.Contiguous (a size-0 dim counts as 1)
        var s = new long[shape.Length];
        long acc = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            s[d] = acc;
            acc *= Math.Max(shape[d], 1);
        }
        return s;
    }
}
