namespace QuantTools.Core.Tensors;

/// <summary>
/// A quantized tensor: integers plus <see cref="QParams"/>. <see cref="IntRepr"/> is the dense int_repr tensor
/// (uint8 for quint8/quint4x2/quint2x4, held unpacked one value per byte; int8 for qint8; int32 for qint32).
/// </summary>
public sealed class QTensor
{
    public QParams QParams { get; }
    public Tensor IntRepr { get; }
    public DType DType => QParams.DType;
    public int[] Shape => IntRepr.Shape;
    public int Length => IntRepr.Length;

    public QTensor(Tensor intRepr, QParams qparams)
    {
        if (intRepr.DType != qparams.DType.IntReprType())
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"{qparams.DType.TorchName()} integers must be held as {qparams.DType.IntReprType().TorchName()}, got {intRepr.DType.TorchName()}");
        if (qparams.IsPerChannel)
        {
            if (qparams.Axis >= intRepr.Rank)
                throw new QuantToolsException(ErrorCode.ShapeMismatch,
                    $"channel axis {qparams.Axis} is out of range for a {intRepr.Rank}-d tensor");
            if (intRepr.Shape[qparams.Axis] != qparams.Scales.Length)
                throw new QuantToolsException(ErrorCode.ShapeMismatch,
                    $"axis {qparams.Axis} has {intRepr.Shape[qparams.Axis]} channels but {qparams.Scales.Length} scales were given");
        }
        IntRepr = intRepr;
        QParams = qparams;
    }

    /// <summary>Sub-byte types packed as PyTorch stores them: element i in byte i/k at bit (i%k)*bits, low bits first.</summary>
    public byte[] PackedBytes()
    {
        var v = IntRepr.AsSpan<byte>();
        int per = DType switch { DType.QUInt4x2 => 2, DType.QUInt2x4 => 4, _ => 1 };
        if (per == 1) return v.ToArray();
        int bits = 8 / per;
        var packed = new byte[(v.Length + per - 1) / per];
        for (int i = 0; i < v.Length; i++)
            packed[i / per] |= (byte)((v[i] & ((1 << bits) - 1)) << ((i % per) * bits));
        return packed;
    }

    /// <summary>Inverse of <see cref="PackedBytes"/>.</summary>
    public static byte[] UnpackSubByte(ReadOnlySpan<byte> packed, DType dtype, int count)
    {
        int per = dtype switch { DType.QUInt4x2 => 2, DType.QUInt2x4 => 4, _ => 1 };
        if (per == 1) return packed[..count].ToArray();
        int bits = 8 / per;
        var r = new byte[count];
        for (int i = 0; i < count; i++)
            r[i] = (byte)((packed[i / per] >> ((i % per) * bits)) & ((1 << bits) - 1));
        return r;
    }

    public override string ToString() => $"QTensor {DType.TorchName()} [{string.Join(", ", Shape)}] {QParams}";
}
