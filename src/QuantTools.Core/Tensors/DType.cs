namespace QuantTools.Core.Tensors;

/// <summary>Element types, named as PyTorch names them (without the <c>torch.</c> prefix).</summary>
public enum DType
{
    Float32,
    Float64,
    Float16,
    BFloat16,
    Int8,
    UInt8,
    Int16,
    Int32,
    Int64,
    Bool,
    // quantized
    QUInt8,
    QInt8,
    QInt32,
    QUInt4x2,
    QUInt2x4,
}

public static class DTypeInfo
{
    public static bool IsQuantized(this DType d) => d >= DType.QUInt8;

    public static bool IsFloatingPoint(this DType d) =>
        d is DType.Float32 or DType.Float64 or DType.Float16 or DType.BFloat16;

    /// <summary>Bytes per element of the in-memory representation (sub-byte quantized types are held unpacked, one byte each).</summary>
    public static int ElementSize(this DType d) => d switch
    {
        DType.Float32 or DType.Int32 or DType.QInt32 => 4,
        DType.Float64 or DType.Int64 => 8,
        DType.Float16 or DType.BFloat16 or DType.Int16 => 2,
        _ => 1,
    };

    /// <summary>The dense storage type that holds a quantized type's integers (PyTorch's <c>int_repr()</c> dtype).</summary>
    public static DType IntReprType(this DType d) => d switch
    {
        DType.QUInt8 or DType.QUInt4x2 or DType.QUInt2x4 => DType.UInt8,
        DType.QInt8 => DType.Int8,
        DType.QInt32 => DType.Int32,
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{d} is not a quantized dtype"),
    };

    /// <summary>Full integer range of a quantized dtype.</summary>
    public static (long Min, long Max) QuantRange(this DType d) => d switch
    {
        DType.QUInt8 => (0, 255),
        DType.QInt8 => (-128, 127),
        DType.QInt32 => (int.MinValue, int.MaxValue),
        DType.QUInt4x2 => (0, 15),
        DType.QUInt2x4 => (0, 3),
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{d} is not a quantized dtype"),
    };

    /// <summary>PyTorch spelling: <c>quint8</c>, <c>float32</c>, ...</summary>
    public static string TorchName(this DType d) => d switch
    {
        DType.QUInt8 => "quint8",
        DType.QInt8 => "qint8",
        DType.QInt32 => "qint32",
        DType.QUInt4x2 => "quint4x2",
        DType.QUInt2x4 => "quint2x4",
        DType.Float32 => "float32",
        DType.Float64 => "float64",
        DType.Float16 => "float16",
        DType.BFloat16 => "bfloat16",
        DType.Int8 => "int8",
        DType.UInt8 => "uint8",
        DType.Int16 => "int16",
        DType.Int32 => "int32",
        DType.Int64 => "int64",
        DType.Bool => "bool",
        _ => d.ToString().ToLowerInvariant(),
    };

    /// <summary>Parses PyTorch names (<c>quint8</c>, <c>torch.qint8</c>, <c>float</c>, <c>long</c>...) and enum names.</summary>
    public static DType Parse(string name)
    {
        var n = name.Trim();
        if (n.StartsWith("torch.", StringComparison.Ordinal)) n = n[6..];
        switch (n.ToLowerInvariant())
        {
            case "quint8": return DType.QUInt8;
            case "qint8": return DType.QInt8;
            case "qint32": return DType.QInt32;
            case "quint4x2": return DType.QUInt4x2;
            case "quint2x4": return DType.QUInt2x4;
            case "float32": case "float": return DType.Float32;
            case "float64": case "double": return DType.Float64;
            case "float16": case "half": return DType.Float16;
            case "bfloat16": return DType.BFloat16;
            case "int8": return DType.Int8;
            case "uint8": return DType.UInt8;
            case "int16": case "short": return DType.Int16;
            case "int32": case "int": return DType.Int32;
            case "int64": case "long": return DType.Int64;
            case "bool": return DType.Bool;
        }
        throw new QuantToolsException(ErrorCode.UnsupportedDType,
            $"unknown dtype '{name}'; expected one of quint8, qint8, qint32, quint4x2, quint2x4, float32, float64, float16, bfloat16, int8, uint8, int16, int32, int64, bool");
    }
}
