using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution;

/// <summary>
/// A tensor while a model runs: dense data in logical (row-major) order, plus the strides PyTorch's tensor would
/// have at this point. QuantTools kernels work on logical order; the strides only decide which PyTorch code path an
/// op takes (channels_last average pooling, the NHWC cat kernel, mean's fast path), because those paths round
/// differently.
/// </summary>
public sealed class RtTensor
{
    public QTensor? Q { get; }
    public Tensor? F { get; }
    public long[] Strides { get; }
    public int[] Shape => Q?.Shape ?? F!.Shape;
    public bool IsQuantized => Q is not null;

    public RtTensor(QTensor q, long[] strides)
    {
        Q = q;
        Strides = strides;
    }

    public RtTensor(Tensor f, long[] strides)
    {
        F = f;
        Strides = strides;
    }

    public override string ToString() =>
        $"{(Q is not null ? Q.DType.TorchName() : F!.DType.TorchName())} [{string.Join(", ", Shape)}]{(Layout.IsChannelsLastContiguous(Shape, Strides) && !Layout.IsContiguous(Shape, Strides) ? " channels_last" : "")}";
}

/// <summary>PyTorch's stride rules (c10 TensorImpl / MemoryFormat), for deciding kernel paths.</summary>
public static class Layout
{
    public static long[] Contiguous(int[] shape)
    {
        var s = new long[shape.Length];
        long acc = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            s[d] = acc;
            acc *= Math.Max(shape[d], 1);
        }
        return s;
    }

    /// <summary>channels_last strides for a 4-d shape (NHWC in memory); other ranks get contiguous strides.</summary>
    public static long[] ChannelsLast(int[] shape)
    {
        if (shape.Length != 4) return Contiguous(shape);
        long c = Math.Max(shape[1], 1), h = Math.Max(shape[2], 1), w = Math.Max(shape[3], 1);
        return [h * w * c, 1, w * c, c];
    }

    public static bool IsContiguous(int[] shape, long[] strides)
    {
        long expected = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            if (shape[d] == 1) continue;
            if (shape[d] == 0) return true;
            if (strides[d] != expected) return false;
            expected *= shape[d];
        }
        return true;
    }

    /// <summary><c>is_contiguous(memory_format=torch.channels_last)</c> (c10 compute_channels_last_contiguous_2d).</summary>
    public static bool IsChannelsLastContiguous(int[] shape, long[] strides)
    {
        if (shape.Length != 4) return false;
        long expected = 1;
        foreach (int d in (int[])[1, 3, 2, 0])
        {
            if (shape[d] == 1) continue;
            if (strides[d] != expected) return false;
            expected *= shape[d];
        }
        return true;
    }

    /// <summary>c10 <c>is_channels_last_strides_2d_s4</c>: the test behind <c>suggest_memory_format()</c>.</summary>
    public static bool IsChannelsLastStrides(int[] shape, long[] strides)
    {
        if (shape.Length != 4) return false;
        long min = 0;
        if (strides[1] == 0) return false;
        foreach (int d in (int[])[1, 3, 2, 0])
        {
            if (shape[d] == 0) return false;
            if (strides[d] < min) return false;
            if (d == 0 && min == strides[1]) return false;
            min = strides[d];
            if (shape[d] > 1) min *= shape[d];
        }
        return true;
    }

    /// <summary><c>suggest_memory_format()</c>: true for channels_last.</summary>
    public static bool SuggestsChannelsLast(int[] shape, long[] strides) => IsChannelsLastStrides(shape, strides);

    /// <summary>Fresh strides in the format <c>suggest_memory_format()</c> gives for (shape, strides).</summary>
    public static long[] LikeSuggested(int[] shape, long[] strides) =>
        SuggestsChannelsLast(shape, strides) ? ChannelsLast(shape) : Contiguous(shape);

    /// <summary>
    /// ATen <c>computeStride</c>: strides of a view of (oldShape, oldStrides) as newShape, or null when the memory
    /// does not allow a view (reshape then copies into contiguous memory).
    /// </summary>
    public static long[]? ViewStrides(int[] oldShape, long[] oldStrides, int[] newShape)
    {
        long numel = 1;
        foreach (var s in oldShape) numel *= s;
        var newStrides = new long[newShape.Length];
        if (numel == 0) return Contiguous(newShape);
        int viewD = newShape.Length - 1;
        long chunkBase = oldStrides.Length > 0 ? oldStrides[^1] : 1;
        long tensorNumel = 1, viewNumel = 1;
        for (int tensorD = oldShape.Length - 1; tensorD >= 0; tensorD--)
        {
            tensorNumel *= oldShape[tensorD];
            if (tensorD == 0 || (oldShape[tensorD - 1] != 1 && oldStrides[tensorD - 1] != tensorNumel * chunkBase))
            {
                while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] == 1))
                {
                    newStrides[viewD] = viewNumel * chunkBase;
                    viewNumel *= newShape[viewD];
                    viewD--;
                }
                if (viewNumel != tensorNumel) return null;
                if (tensorD > 0)
                {
                    chunkBase = oldStrides[tensorD - 1];
                    tensorNumel = 1;
                    viewNumel = 1;
                }
            }
        }
        if (viewD != -1) return null;
        return newStrides;
    }
}
