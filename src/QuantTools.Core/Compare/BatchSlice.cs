using QuantTools.Core.Tensors;

namespace QuantTools.Core.Compare;

/// <summary>
/// One batch element of a layer's tensor (Compare-QuantOutput -BatchIndex): a golden model file records its layers for
/// input[0:1], so a run on the whole batch compares with it element by element. Tensors of rank 2 or more whose first
/// dimension is above 1 become element <c>i</c>, keeping the batch dimension (shape [1, ...]); others stay as they are.
/// </summary>
public static class BatchSlice
{
    public static object Take(object value, int index, string layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        int[] shape = value switch
        {
            Tensor t => t.Shape,
            QTensor q => q.Shape,
            _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"a {value.GetType().Name} has no batch to slice", layer),
        };
        if (shape.Length < 2 || shape[0] <= 1) return value;
        if (index >= shape[0])
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"-BatchIndex {index} is beyond the batch of {shape[0]} (shape {TensorMetrics.Format(shape)})", layer);
        int[] one = [1, .. shape[1..]];
        switch (value)
        {
            case Tensor t:
                return Slice(t, index, one);
            case QTensor q:
                if (q.QParams.IsPerChannel && q.QParams.Axis == 0)
                    throw new QuantToolsException(ErrorCode.InvalidArgument, "a tensor quantized per channel along dimension 0 has no batch dimension to slice", layer);
                return new QTensor(Slice(q.IntRepr, index, one), q.QParams);
            default:
                return value;
        }
    }

    private static Tensor Slice(Tensor t, int index, int[] shape)
    {
        int per = t.Length / t.Shape[0];
        var data = Array.CreateInstance(t.Data.GetType().GetElementType()!, per);
        Array.Copy(t.Data, (long)index * per, data, 0, per);
        return new Tensor(t.DType, shape, data);
    }
}
