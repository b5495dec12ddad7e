using System.Buffers.Binary;
using System.Runtime.InteropServices;
using QuantTools.Core.Formats.Pickle;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats.Torch;

/// <summary>A storage class global such as <c>torch.QInt8Storage</c> (or <c>torch.UntypedStorage</c>, read as bytes).</summary>
public sealed record TorchStorageType(string Name, DType DType)
{
    public override string ToString() => "torch." + Name;

    internal static readonly Dictionary<string, DType> ByName = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = DType.Float32, ["DoubleStorage"] = DType.Float64, ["HalfStorage"] = DType.Float16,
        ["BFloat16Storage"] = DType.BFloat16, ["LongStorage"] = DType.Int64, ["IntStorage"] = DType.Int32,
        ["ShortStorage"] = DType.Int16, ["CharStorage"] = DType.Int8, ["ByteStorage"] = DType.UInt8,
        ["BoolStorage"] = DType.Bool, ["QUInt8Storage"] = DType.QUInt8, ["QInt8Storage"] = DType.QInt8,
        ["QInt32Storage"] = DType.QInt32, ["QUInt4x2Storage"] = DType.QUInt4x2, ["QUInt2x4Storage"] = DType.QUInt2x4,
        ["UntypedStorage"] = DType.UInt8,
    };

    /// <summary>Storage classes of dtypes QuantTools does not hold (complex...): recognised, refused when a tensor uses them.</summary>
    internal static readonly HashSet<string> Unsupported = new(StringComparer.Ordinal)
        { "ComplexFloatStorage", "ComplexDoubleStorage", "ComplexHalfStorage" };
}

/// <summary>One storage of a checkpoint, as a persistent id names it: where its bytes are and what they hold.</summary>
public sealed class TorchStorage
{
    public required string Key { get; init; }
    public required DType DType { get; init; }
    public required string Location { get; init; }
    /// <summary>Elements of <see cref="DType"/> (bytes for sub-byte quantized types, which pack several values a byte).</summary>
    public required long Numel { get; init; }
    public int ElementSize => DType.ElementSize();
    internal StorageSource Source { get; init; } = null!;
    /// <summary>Byte offset of this storage inside its source blob (legacy views), else 0.</summary>
    internal long ByteOffset { get; init; }
    public override string ToString() => $"storage '{Key}' {DType.TorchName()} x{Numel} ({Location})";
}

/// <summary>Where storage bytes come from: zip entries <c>data/&lt;key&gt;</c> or the blobs after a legacy pickle.</summary>
internal abstract class StorageSource
{
    public bool BigEndian { get; init; }
    /// <summary>Byte length available for <paramref name="key"/>; throws when there is no such storage.</summary>
    public abstract long GetLength(string key);
    public abstract void Read(string key, long offset, Span<byte> dest);
}

internal sealed class ZipStorageSource(ZipReader zip, string prefix, string folder = "data/") : StorageSource
{
    private ZipEntryInfo Entry(string key) =>
        zip.Find(prefix + folder + key)
        ?? throw new QuantToolsException(ErrorCode.CorruptFile, $"the pickle references storage '{key}' but the archive has no entry '{prefix}{folder}{key}'", zip.Path);

    public override long GetLength(string key) => Entry(key).Size;
    public override void Read(string key, long offset, Span<byte> dest) => zip.Read(Entry(key), offset, dest);
}

/// <summary>Builds <see cref="Tensor"/> / <see cref="QTensor"/> values from storage views.</summary>
internal static class TensorBuilder
{
    /// <summary>Materializes the view (offset, size, stride) of <paramref name="storage"/> as a C-contiguous tensor of its dtype's int repr / dense type.</summary>
    public static Tensor View(TorchStorage storage, long offset, long[] size, long[] stride, string? target, LoadBudget budget)
    {
        var dtype = storage.DType;
        var dense = dtype.IsQuantized() ? dtype.IntReprType() : dtype;
        if (size.Length != stride.Length)
            throw Corrupt($"tensor has {size.Length} sizes but {stride.Length} strides", target);
        if (size.Length > 64) throw Corrupt($"tensor of rank {size.Length}", target);
        int numel = Tensor.CheckedNumel(size, target);
        int[] shape = size.Select(s => (int)s).ToArray();
        if (offset < 0) throw Corrupt($"negative storage offset {offset}", target);
        foreach (var s in stride)
            if (s < 0) throw Corrupt($"negative stride {s}", target);

        if (dtype is DType.QUInt4x2 or DType.QUInt2x4)
        {
            int per = dtype == DType.QUInt4x2 ? 2 : 4;
            long bytes = (numel + per - 1) / per;
            if (offset != 0 || !IsContiguous(size, stride))
                throw new QuantToolsException(ErrorCode.NotSupported, $"a non-contiguous or offset {dtype.TorchName()} view is not supported", target);
            if (bytes > storage.Numel)
                throw Corrupt($"{dtype.TorchName()} tensor [{string.Join(", ", size)}] needs {bytes} bytes but {storage} holds {storage.Numel}", target);
            budget.Take(bytes + numel, target);
            var packed = new byte[bytes];
            storage.Source.Read(storage.Key, storage.ByteOffset, packed);
            return new Tensor(DType.UInt8, shape, QTensor.UnpackSubByte(packed, dtype, numel));
        }

        int es = dtype.ElementSize();
        if (numel == 0) return new Tensor(dense, shape, Array.CreateInstance(Tensor.ElementTypeOf(dense), 0));
        // last element index the view touches; checked before anything is allocated beyond the tensor itself
        Int128 last = offset;
        for (int i = 0; i < size.Length; i++) last += (Int128)(size[i] - 1) * stride[i];
        if (last >= storage.Numel)
            throw Corrupt($"tensor view [{string.Join(", ", size)}] stride [{string.Join(", ", stride)}] offset {offset} reaches element {last} " +
                          $"but {storage} holds only {storage.Numel} elements", target);
        if (numel > storage.Numel && (long)numel * es > 16L << 20)
            throw Corrupt($"tensor view [{string.Join(", ", size)}] stride [{string.Join(", ", stride)}] expands {storage} ({storage.Numel} elements) " +
                          $"to {numel} elements; refusing to allocate more than the file holds", target);
        budget.Take((long)numel * es, target);
        // every element is written below (one read straight from the file, or the gather), so the array need not be zeroed
        var data = NewUninitialized(dense, numel);
        var dest = MemoryMarshal.CreateSpan(ref MemoryMarshal.GetArrayDataReference(data), numel * es);
        if (IsContiguous(size, stride))
            storage.Source.Read(storage.Key, storage.ByteOffset + offset * es, dest);
        else
        {
            long span = (long)(last - offset + 1) * es;
            if (span > Array.MaxLength) throw new QuantToolsException(ErrorCode.NotSupported, "strided view spans too many bytes", target);
            var src = new byte[span];
            storage.Source.Read(storage.Key, storage.ByteOffset + offset * es, src);
            Gather(src, dest, size, stride, es);
        }
        if (storage.Source.BigEndian && es > 1) SwapInPlace(dest, es);
        return new Tensor(dense, shape, data);
    }

    private static Array NewUninitialized(DType dense, int n) => dense switch
    {
        DType.Float32 => GC.AllocateUninitializedArray<float>(n),
        DType.Float64 => GC.AllocateUninitializedArray<double>(n),
        DType.Float16 => GC.AllocateUninitializedArray<Half>(n),
        DType.BFloat16 => GC.AllocateUninitializedArray<ushort>(n),
        DType.Int8 => GC.AllocateUninitializedArray<sbyte>(n),
        DType.UInt8 => GC.AllocateUninitializedArray<byte>(n),
        DType.Int16 => GC.AllocateUninitializedArray<short>(n),
        DType.Int32 => GC.AllocateUninitializedArray<int>(n),
        DType.Int64 => GC.AllocateUninitializedArray<long>(n),
        _ => Array.CreateInstance(Tensor.ElementTypeOf(dense), n),
    };

    public static bool IsContiguous(long[] size, long[] stride)
    {
        long expected = 1;
        for (int i = size.Length - 1; i >= 0; i--)
        {
            if (size[i] != 1 && stride[i] != expected) return false;
            expected *= size[i];
        }
        return true;
    }

    private static void Gather(ReadOnlySpan<byte> src, Span<byte> dest, long[] size, long[] stride, int es)
    {
        int rank = size.Length;
        var idx = new long[rank];
        long srcOff = 0;
        int n = dest.Length / es;
        for (int k = 0; k < n; k++)
        {
            src.Slice((int)(srcOff * es), es).CopyTo(dest.Slice(k * es, es));
            for (int d = rank - 1; d >= 0; d--)
            {
                idx[d]++;
                srcOff += stride[d];
                if (idx[d] < size[d]) break;
                srcOff -= stride[d] * idx[d];
                idx[d] = 0;
            }
        }
    }

    private static void SwapInPlace(Span<byte> b, int es)
    {
        switch (es)
        {
            case 2: BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, ushort>(b), MemoryMarshal.Cast<byte, ushort>(b)); break;
            case 4: BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, uint>(b), MemoryMarshal.Cast<byte, uint>(b)); break;
            case 8: BinaryPrimitives.ReverseEndianness(MemoryMarshal.Cast<byte, ulong>(b), MemoryMarshal.Cast<byte, ulong>(b)); break;
        }
    }

    private static QuantToolsException Corrupt(string msg, string? target) => new(ErrorCode.CorruptFile, msg, target);
}

/// <summary>Caps the bytes one load may materialize (a hostile pickle could view one big storage many times).</summary>
internal sealed class LoadBudget(long bytes)
{
    private long _left = bytes;

    public static LoadBudget ForFile(long fileLength) => new(Math.Min(long.MaxValue / 8, fileLength) * 4 + (64L << 20));

    public void Take(long n, string? target)
    {
        if (n > _left)
            throw new QuantToolsException(ErrorCode.CorruptFile,
                "the checkpoint's tensors would need more memory than four times its file size (storages viewed over and over?)", target);
        _left -= n;
    }
}
