using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Compare;

/// <summary>One side of a tensor comparison, flattened: float values, and integers with their grid when there are any.</summary>
internal sealed class CompareOperand
{
    public required int[] Shape { get; init; }
    public required double[] Values { get; init; }
    /// <summary>Integers (int_repr, or the values of an integer tensor); null for float tensors.</summary>
    public long[]? Ints { get; init; }
    /// <summary>Qparams when the operand is quantized; null for plain tensors.</summary>
    public QParams? QParams { get; init; }
    public DType DType { get; init; }

    public bool IsIntegerTensor => QParams is null && Ints is not null;

    public static CompareOperand From(object value, string layer)
    {
        switch (value)
        {
            case QTensor q:
            {
                var deq = Quantizer.Dequantize(q);
                var ints = new long[q.Length];
                for (int i = 0; i < ints.Length; i++) ints[i] = (long)q.IntRepr.GetDouble(i);
                return new CompareOperand { Shape = q.Shape, Values = ToDoubles(deq), Ints = ints, QParams = q.QParams, DType = q.DType };
            }
            case Tensor t:
            {
                var vals = ToDoubles(t);
                long[]? ints = null;
                if (!t.DType.IsFloatingPoint() && t.DType != DType.Bool)
                {
                    ints = new long[t.Length];
                    for (int i = 0; i < ints.Length; i++) ints[i] = t.DType == DType.Int64 ? ((long[])t.Data)[i] : (long)vals[i];
                }
                return new CompareOperand { Shape = t.Shape, Values = vals, Ints = ints, DType = t.DType };
            }
            default:
                throw new QuantToolsException(ErrorCode.InvalidArgument,
                    $"expected a Tensor or QTensor, got {value?.GetType().Name ?? "null"}", layer);
        }
    }

    /// <summary>An integer tensor read on a quantized side's grid (a backend's int_repr dump without qparams).</summary>
    public CompareOperand WithGrid(QParams qp, int[] shape)
    {
        var q = new QTensor(IntTensor(Ints!, qp.DType, shape), qp);
        var deq = Quantizer.Dequantize(q);
        return new CompareOperand { Shape = Shape, Values = ToDoubles(deq), Ints = Ints, QParams = qp, DType = qp.DType };
    }

    /// <summary>A float tensor quantized onto a quantized side's grid (integers for the LSB metrics; values stay float).</summary>
    public long[] QuantizeOnto(QParams qp, int[] shape)
    {
        var f = new float[Values.Length];
        for (int i = 0; i < f.Length; i++) f[i] = (float)Values[i];
        var q = Quantizer.Quantize(new Tensor(DType.Float32, shape, f), qp);
        var r = new long[q.Length];
        for (int i = 0; i < r.Length; i++) r[i] = (long)q.IntRepr.GetDouble(i);
        return r;
    }

    private static Tensor IntTensor(long[] ints, DType qdtype, int[] shape)
    {
        var t = Tensor.Zeros(qdtype.IntReprType(), shape);
        var (lo, hi) = qdtype.QuantRange();
        for (int i = 0; i < ints.Length; i++)
        {
            if (ints[i] < lo || ints[i] > hi)
                throw new QuantToolsException(ErrorCode.InvalidArgument,
                    $"integer {ints[i]} at flat index {i} is outside {qdtype.TorchName()}'s range {lo}..{hi}");
            switch (t.Data)
            {
                case byte[] b: b[i] = (byte)ints[i]; break;
                case sbyte[] sb: sb[i] = (sbyte)ints[i]; break;
                case int[] n: n[i] = (int)ints[i]; break;
            }
        }
        return t;
    }

    private static double[] ToDoubles(Tensor t)
    {
        var r = new double[t.Length];
        if (t.Data is float[] f) for (int i = 0; i < r.Length; i++) r[i] = f[i];
        else for (int i = 0; i < r.Length; i++) r[i] = t.GetDouble(i);
        return r;
    }

    /// <summary>Per-element zero point on this grid (0 without qparams).</summary>
    public long ZeroPointAt(int flat)
    {
        if (QParams is null) return 0;
        if (!QParams.IsPerChannel) return QParams.ZeroPoint;
        return QParams.ZeroPoints[ChannelOf(flat, Shape, QParams.Axis)];
    }

    public (long Lo, long Hi) Range => QParams is not null ? (QParams.QuantMin, QParams.QuantMax) : DType switch
    {
        DType.UInt8 => (0, 255),
        DType.Int8 => (-128, 127),
        DType.Int16 => (short.MinValue, short.MaxValue),
        DType.Int32 => (int.MinValue, int.MaxValue),
        _ => (long.MinValue, long.MaxValue),
    };

    public static int ChannelOf(int flat, int[] shape, int axis)
    {
        int inner = 1;
        for (int d = axis + 1; d < shape.Length; d++) inner *= shape[d];
        return flat / inner % shape[axis];
    }
}
