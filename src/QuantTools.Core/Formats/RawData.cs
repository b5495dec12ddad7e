using System.Buffers.Binary;
using System.Runtime.InteropServices;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats;

/// <summary>
/// Element data moved between streams and tensors in bounded chunks (no span ever exceeds int.MaxValue bytes),
/// with optional byte swapping and Fortran/C reordering. Shared by the npy, npz and safetensors code.
/// </summary>
internal static class RawData
{
    private const int ChunkBytes = 1 << 20;

    /// <summary>Bytes a tensor of this dtype and element count occupies on disk.</summary>
    public static long ByteCount(DType dtype, long numel) => numel * dtype.ElementSize();

    /// <summary>Allocates a tensor and fills it from <paramref name="s"/>; the caller has already checked that
    /// the stream holds the bytes where it can. A short read is a <see cref="ErrorCode.CorruptFile"/>.</summary>
    public static Tensor ReadTensor(Stream s, DType dtype, int[] shape, bool bigEndian, string source, string what)
    {
        var t = Tensor.Zeros(dtype, shape);
        switch (t.Data)
        {
            case float[] a: Fill(s, a, source, what); break;
            case double[] a: Fill(s, a, source, what); break;
            case Half[] a: Fill(s, a, source, what); break;
            case ushort[] a: Fill(s, a, source, what); break;
            case sbyte[] a: Fill(s, a, source, what); break;
            case byte[] a: Fill(s, a, source, what); break;
            case short[] a: Fill(s, a, source, what); break;
            case int[] a: Fill(s, a, source, what); break;
            case long[] a: Fill(s, a, source, what); break;
            case bool[] a:
                Fill(s, a, source, what);
                NormalizeBools(a);
                break;
            default: throw new QuantToolsException(ErrorCode.UnsupportedDType, $"cannot read {dtype.TorchName()}", source);
        }
        if (bigEndian) SwapInPlace(t);
        return t;
    }

    private static void Fill<T>(Stream s, T[] a, string source, string what) where T : unmanaged
    {
        int es = Marshal.SizeOf<T>();
        int per = Math.Max(1, ChunkBytes / es);
        long total = (long)a.Length * es;
        long done = 0;
        for (int off = 0; off < a.Length; off += per)
        {
            int n = Math.Min(per, a.Length - off);
            var bytes = MemoryMarshal.AsBytes(a.AsSpan(off, n));
            int got = ReadFully(s, bytes, source);
            done += got;
            if (got < bytes.Length)
                throw new QuantToolsException(ErrorCode.CorruptFile,
                    $"{what}: expected {total} data bytes but the data ends after {done}", source);
        }
    }

    /// <summary>Reads until the span is full or the stream ends; decoder errors become CorruptFile.</summary>
    public static int ReadFully(Stream s, Span<byte> buf, string source)
    {
        int got = 0;
        try
        {
            while (got < buf.Length)
            {
                int r = s.Read(buf[got..]);
                if (r <= 0) break;
                got += r;
            }
        }
        catch (InvalidDataException ex)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile, $"compressed data is damaged: {ex.Message}", source, ex);
        }
        catch (IOException ex)
        {
            throw new QuantToolsException(ErrorCode.IoError, $"read failed: {ex.Message}", source, ex);
        }
        return got;
    }

    private static void NormalizeBools(bool[] a)
    {
        // Any nonzero byte is true (as numpy reads it); keep .NET bools canonical 0/1.
        var b = MemoryMarshal.AsBytes(a.AsSpan());
        for (int i = 0; i < b.Length; i++) if (b[i] > 1) b[i] = 1;
    }

    /// <summary>Reverses the bytes of every element (1-byte types are left alone).</summary>
    public static void SwapInPlace(Tensor t)
    {
        switch (t.Data)
        {
            case float[] a: { var u = MemoryMarshal.Cast<float, uint>(a.AsSpan()); BinaryPrimitives.ReverseEndianness(u, u); break; }
            case double[] a: { var u = MemoryMarshal.Cast<double, ulong>(a.AsSpan()); BinaryPrimitives.ReverseEndianness(u, u); break; }
            case Half[] a: { var u = MemoryMarshal.Cast<Half, ushort>(a.AsSpan()); BinaryPrimitives.ReverseEndianness(u, u); break; }
            case ushort[] a: BinaryPrimitives.ReverseEndianness(a.AsSpan(), a.AsSpan()); break;
            case short[] a: BinaryPrimitives.ReverseEndianness(a.AsSpan(), a.AsSpan()); break;
            case int[] a: BinaryPrimitives.ReverseEndianness(a.AsSpan(), a.AsSpan()); break;
            case long[] a: BinaryPrimitives.ReverseEndianness(a.AsSpan(), a.AsSpan()); break;
        }
    }

    /// <summary>Writes the elements, little-endian unless <paramref name="bigEndian"/>, in bounded chunks.</summary>
    public static void WriteTensor(Stream s, Tensor t, bool bigEndian)
    {
        switch (t.Data)
        {
            case float[] a: Emit(s, a, bigEndian); break;
            case double[] a: Emit(s, a, bigEndian); break;
            case Half[] a: Emit(s, a, bigEndian); break;
            case ushort[] a: Emit(s, a, bigEndian); break;
            case sbyte[] a: Emit(s, a, false); break;
            case byte[] a: Emit(s, a, false); break;
            case short[] a: Emit(s, a, bigEndian); break;
            case int[] a: Emit(s, a, bigEndian); break;
            case long[] a: Emit(s, a, bigEndian); break;
            case bool[] a: Emit(s, a, false); break;
            default: throw new QuantToolsException(ErrorCode.UnsupportedDType, $"cannot write {t.DType.TorchName()}");
        }
    }

    private static void Emit<T>(Stream s, T[] a, bool swap) where T : unmanaged
    {
        int es = Marshal.SizeOf<T>();
        int per = Math.Max(1, ChunkBytes / es);
        byte[]? tmp = swap && es > 1 ? new byte[Math.Min((long)per, a.Length) * es] : null;
        for (int off = 0; off < a.Length; off += per)
        {
            int n = Math.Min(per, a.Length - off);
            var bytes = MemoryMarshal.AsBytes(a.AsSpan(off, n));
            if (tmp is null) { s.Write(bytes); continue; }
            var dst = tmp.AsSpan(0, bytes.Length);
            bytes.CopyTo(dst);
            switch (es)
            {
                case 2: { var u = MemoryMarshal.Cast<byte, ushort>(dst); BinaryPrimitives.ReverseEndianness(u, u); break; }
                case 4: { var u = MemoryMarshal.Cast<byte, uint>(dst); BinaryPrimitives.ReverseEndianness(u, u); break; }
                case 8: { var u = MemoryMarshal.Cast<byte, ulong>(dst); BinaryPrimitives.ReverseEndianness(u, u); break; }
            }
            s.Write(dst);
        }
    }

    /// <summary>
    /// Reorders between Fortran (column-major) and C (row-major) layouts of the same shape.
    /// <paramref name="fortranToC"/>: the input holds column-major data and a C-contiguous tensor comes out;
    /// otherwise a C-contiguous tensor comes out holding the column-major element sequence.
    /// </summary>
    public static Tensor Reorder(Tensor t, bool fortranToC)
    {
        if (t.Rank < 2 || t.Length == 0) return t;
        var dst = Array.CreateInstance(Tensor.ElementTypeOf(t.DType), t.Length);
        switch (t.Data)
        {
            case float[] a: Permute(a, (float[])dst, t.Shape, fortranToC); break;
            case double[] a: Permute(a, (double[])dst, t.Shape, fortranToC); break;
            case Half[] a: Permute(a, (Half[])dst, t.Shape, fortranToC); break;
            case ushort[] a: Permute(a, (ushort[])dst, t.Shape, fortranToC); break;
            case sbyte[] a: Permute(a, (sbyte[])dst, t.Shape, fortranToC); break;
            case byte[] a: Permute(a, (byte[])dst, t.Shape, fortranToC); break;
            case short[] a: Permute(a, (short[])dst, t.Shape, fortranToC); break;
            case int[] a: Permute(a, (int[])dst, t.Shape, fortranToC); break;
            case long[] a: Permute(a, (long[])dst, t.Shape, fortranToC); break;
            case bool[] a: Permute(a, (bool[])dst, t.Shape, fortranToC); break;
        }
        return new Tensor(t.DType, t.Shape, dst);
    }

    private static void Permute<T>(T[] src, T[] dst, int[] shape, bool fortranToC)
    {
        int rank = shape.Length;
        // C strides of each axis; walk the elements in Fortran order (first axis fastest).
        var cStride = new long[rank];
        long st = 1;
        for (int d = rank - 1; d >= 0; d--) { cStride[d] = st; st *= shape[d]; }
        var idx = new int[rank];
        long c = 0;
        for (int f = 0; f < src.Length; f++)
        {
            if (fortranToC) dst[c] = src[f];
            else dst[f] = src[c];
            for (int d = 0; d < rank; d++)
            {
                idx[d]++;
                c += cStride[d];
                if (idx[d] < shape[d]) break;
                c -= cStride[d] * shape[d];
                idx[d] = 0;
            }
        }
    }

    /// <summary>Opens a file for reading, mapping OS errors to <see cref="ErrorCode.IoError"/>.</summary>
    public static FileStream OpenRead(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new QuantToolsException(ErrorCode.IoError, $"cannot open for reading: {ex.Message}", path, ex);
        }
    }

    /// <summary>Writes a file through a temporary sibling and renames it into place, so a failure leaves no half file.</summary>
    public static void WriteFileAtomically(string path, Action<Stream> write)
    {
        string tmp;
        try
        {
            var full = Path.GetFullPath(path);
            tmp = Path.Combine(Path.GetDirectoryName(full) ?? ".", "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                try { write(fs); }
                catch { fs.Dispose(); TryDelete(tmp); throw; }
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch (QuantToolsException ex) when (ex.Target is null)
        {
            throw new QuantToolsException(ex.Code, ex.Message, path, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new QuantToolsException(ErrorCode.IoError, $"cannot write: {ex.Message}", path, ex);
        }
    }

    private static void TryDelete(string p)
    {
        try { File.Delete(p); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
