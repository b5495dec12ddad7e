using System.Runtime.InteropServices;

namespace QuantTools.Core.Tensors;

/// <summary>
/// A dense, C-contiguous N-d tensor. <see cref="Data"/> is a typed array matching <see cref="DType"/>:
/// float[] (Float32), double[] (Float64), Half[] (Float16), ushort[] (BFloat16 bit patterns), sbyte[] (Int8),
/// byte[] (UInt8), short[] (Int16), int[] (Int32), long[] (Int64), bool[] (Bool).
/// </summary>
public sealed class Tensor
{
    public DType DType { get; }
    public int[] Shape { get; }
    public Array Data { get; }
    public int Length => Data.Length;
    public int Rank => Shape.Length;

    public Tensor(DType dtype, int[] shape, Array data)
    {
        if (dtype.IsQuantized())
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"a dense tensor cannot have quantized dtype {dtype}; use QTensor");
        var expected = ElementTypeOf(dtype);
        if (data.GetType().GetElementType() != expected)
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"data of type {data.GetType().Name} does not match dtype {dtype.TorchName()} (expected {expected.Name}[])");
        long n = CheckedNumel(shape);
        if (n != data.Length)
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"shape [{string.Join(", ", shape)}] holds {n} elements but the data has {data.Length}");
        DType = dtype;
        Shape = (int[])shape.Clone();
        Data = data;
    }

    public static Tensor FromArray(float[] data, params int[] shape) =>
        new(DType.Float32, shape.Length == 0 && data.Length != 1 ? [data.Length] : shape, data);

    public static Tensor Zeros(DType dtype, params int[] shape) =>
        new(dtype, shape, Array.CreateInstance(ElementTypeOf(dtype), checked((int)CheckedNumel(shape))));

    public Span<T> AsSpan<T>() where T : unmanaged =>
        Data is T[] a ? a.AsSpan()
            : throw new QuantToolsException(ErrorCode.InvalidArgument, $"tensor of dtype {DType.TorchName()} is not a {typeof(T).Name} tensor");

    /// <summary>The raw little-endian bytes of the elements.</summary>
    public ReadOnlySpan<byte> AsBytes() => DataSpanBytesMutable();

    /// <summary>Builds a tensor from raw little-endian element bytes (the length must match exactly).</summary>
    public static Tensor FromBytes(DType dtype, int[] shape, ReadOnlySpan<byte> bytes)
    {
        long n = CheckedNumel(shape);
        int es = dtype.ElementSize();
        if (n * es != bytes.Length)
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"shape [{string.Join(", ", shape)}] of {dtype.TorchName()} needs {n * es} bytes but {bytes.Length} were given");
        var t = Zeros(dtype, shape);
        bytes.CopyTo(t.DataSpanBytesMutable());
        return t;
    }

    private Span<byte> DataSpanBytesMutable() => DType switch
    {
        DType.Float32 => MemoryMarshal.AsBytes(AsSpan<float>()),
        DType.Float64 => MemoryMarshal.AsBytes(AsSpan<double>()),
        DType.Float16 => MemoryMarshal.AsBytes(AsSpan<Half>()),
        DType.BFloat16 => MemoryMarshal.AsBytes(AsSpan<ushort>()),
        DType.Int8 => MemoryMarshal.AsBytes(AsSpan<sbyte>()),
        DType.UInt8 => AsSpan<byte>(),
        DType.Int16 => MemoryMarshal.AsBytes(AsSpan<short>()),
        DType.Int32 => MemoryMarshal.AsBytes(AsSpan<int>()),
        DType.Int64 => MemoryMarshal.AsBytes(AsSpan<long>()),
        DType.Bool => MemoryMarshal.AsBytes(AsSpan<bool>()),
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, DType.ToString()),
    };

    public Tensor Reshape(params int[] shape)
    {
        if (CheckedNumel(shape) != Length)
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"cannot reshape [{string.Join(", ", Shape)}] to [{string.Join(", ", shape)}]");
        return new Tensor(DType, shape, Data);
    }

    /// <summary>Converts to float32 (BFloat16/Float16 widen exactly; int64/float64 round to nearest).</summary>
    public Tensor ToFloat32()
    {
        if (DType == DType.Float32) return this;
        var r = new float[Length];
        for (int i = 0; i < r.Length; i++) r[i] = (float)GetDouble(i);
        return new Tensor(DType.Float32, Shape, r);
    }

    /// <summary>Element i as a double (exact for every dtype but int64 beyond 2^53).</summary>
    public double GetDouble(int i) => DType switch
    {
        DType.Float32 => ((float[])Data)[i],
        DType.Float64 => ((double[])Data)[i],
        DType.Float16 => (double)((Half[])Data)[i],
        DType.BFloat16 => BitConverter.Int32BitsToSingle(((ushort[])Data)[i] << 16),
        DType.Int8 => ((sbyte[])Data)[i],
        DType.UInt8 => ((byte[])Data)[i],
        DType.Int16 => ((short[])Data)[i],
        DType.Int32 => ((int[])Data)[i],
        DType.Int64 => ((long[])Data)[i],
        DType.Bool => ((bool[])Data)[i] ? 1 : 0,
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, DType.ToString()),
    };

    public override string ToString() => $"Tensor {DType.TorchName()} [{string.Join(", ", Shape)}]";

    public static Type ElementTypeOf(DType dtype) => dtype switch
    {
        DType.Float32 => typeof(float),
        DType.Float64 => typeof(double),
        DType.Float16 => typeof(Half),
        DType.BFloat16 => typeof(ushort),
        DType.Int8 => typeof(sbyte),
        DType.UInt8 => typeof(byte),
        DType.Int16 => typeof(short),
        DType.Int32 => typeof(int),
        DType.Int64 => typeof(long),
        DType.Bool => typeof(bool),
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{dtype} has no dense element type"),
    };

    /// <summary>Product of the dimensions; throws on negative dims or a product beyond int.MaxValue elements.</summary>
    public static long CheckedNumel(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"negative dimension {d}");
            n *= d;
            if (n > int.MaxValue)
                throw new QuantToolsException(ErrorCode.ShapeMismatch, $"shape product exceeds {int.MaxValue} elements");
        }
        return n;
    }

    /// <summary>Same, for 64-bit dims read from files.</summary>
    public static int CheckedNumel(ReadOnlySpan<long> shape, string? target = null)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0 || d > int.MaxValue)
                throw new QuantToolsException(ErrorCode.CorruptFile, $"invalid dimension {d}", target);
            n *= d;
            if (n > int.MaxValue)
                throw new QuantToolsException(ErrorCode.CorruptFile,
                    $"shape [{string.Join(", ", shape.ToArray())}] has more than {int.MaxValue} elements", target);
        }
        return (int)n;
    }
}
