using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace QuantTools.Core.Formats.Torch;

/// <summary>One entry of a zip archive, located and bounds-checked against the file.</summary>
public sealed class ZipEntryInfo
{
    public required string Name { get; init; }
    /// <summary>0 = stored, 8 = deflate.</summary>
    public required int Method { get; init; }
    public required long CompressedSize { get; init; }
    public required long Size { get; init; }
    /// <summary>File offset of the entry's (compressed) data.</summary>
    public long DataOffset { get; internal set; } = -1;
    internal long LocalHeaderOffset { get; init; }
    public override string ToString() => $"{Name} ({Size} bytes)";
}

/// <summary>
/// A minimal zip reader for PyTorch archives (stored or deflated entries, ZIP64): reads the central directory,
/// checks every offset and size against the file before anything is allocated, and reads entry bytes straight
/// into caller buffers (so a storage is copied once, from disk into the tensor).
/// </summary>
public sealed class ZipReader : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, ZipEntryInfo> _byName = new(StringComparer.Ordinal);
    public string Path { get; }
    public long FileLength { get; }
    public IReadOnlyList<ZipEntryInfo> Entries { get; }

    /// <summary>Most deflate can expand (a bit over 1032:1); larger declared sizes are refused before inflating.</summary>
    private const long MaxDeflateRatio = 1040;

    private ZipReader(string path, SafeFileHandle handle)
    {
        Path = path;
        _handle = handle;
        FileLength = RandomAccess.GetLength(handle);
        Entries = ReadCentralDirectory();
        foreach (var e in Entries) _byName.TryAdd(e.Name, e);
    }

    public static ZipReader Open(string path)
    {
        SafeFileHandle h;
        try
        {
            h = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new QuantToolsException(ErrorCode.IoError, e.Message, path, e);
        }
        try
        {
            return new ZipReader(path, h);
        }
        catch
        {
            h.Dispose();
            throw;
        }
    }

    public ZipEntryInfo? Find(string name) => _byName.GetValueOrDefault(name);

    public void Dispose() => _handle.Dispose();

    private QuantToolsException Corrupt(string msg) => new(ErrorCode.CorruptFile, msg, Path);

    private void ReadAt(long offset, Span<byte> dest)
    {
        if (offset < 0 || offset > FileLength - dest.Length)
            throw Corrupt($"read of {dest.Length} bytes at offset {offset} is outside the file ({FileLength} bytes)");
        while (dest.Length > 0)
        {
            int n;
            try
            {
                n = RandomAccess.Read(_handle, dest, offset);
            }
            catch (IOException e)
            {
                throw new QuantToolsException(ErrorCode.IoError, e.Message, Path, e);
            }
            if (n <= 0) throw Corrupt($"unexpected end of file at offset {offset}");
            dest = dest[n..];
            offset += n;
        }
    }

    private List<ZipEntryInfo> ReadCentralDirectory()
    {
        const int EocdSize = 22;
        if (FileLength < EocdSize) throw Corrupt($"file of {FileLength} bytes is too small to be a zip archive");
        int tailLen = (int)Math.Min(FileLength, EocdSize + 65535 + 20);
        var tail = new byte[tailLen];
        ReadAt(FileLength - tailLen, tail);
        int eocd = -1;
        for (int i = tailLen - EocdSize; i >= 0; i--)
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == 0x06054b50) { eocd = i; break; }
        if (eocd < 0) throw Corrupt("no zip end-of-central-directory record (truncated archive?)");
        var e = tail.AsSpan(eocd);
        long count = BinaryPrimitives.ReadUInt16LittleEndian(e[10..]);
        long cdSize = BinaryPrimitives.ReadUInt32LittleEndian(e[12..]);
        long cdOffset = BinaryPrimitives.ReadUInt32LittleEndian(e[16..]);
        // ZIP64 locator just before the EOCD
        if (eocd >= 20 && BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(eocd - 20)) == 0x07064b50)
        {
            long z64Offset = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(tail.AsSpan(eocd - 12)), long.MaxValue);
            var z = new byte[56];
            ReadAt(z64Offset, z);
            if (BinaryPrimitives.ReadUInt32LittleEndian(z) != 0x06064b50) throw Corrupt("bad ZIP64 end-of-central-directory record");
            count = Clamp(BinaryPrimitives.ReadUInt64LittleEndian(z.AsSpan(32)));
            cdSize = Clamp(BinaryPrimitives.ReadUInt64LittleEndian(z.AsSpan(40)));
            cdOffset = Clamp(BinaryPrimitives.ReadUInt64LittleEndian(z.AsSpan(48)));
        }
        if (cdOffset > FileLength || cdSize > FileLength - cdOffset)
            throw Corrupt($"central directory ({cdSize} bytes at offset {cdOffset}) extends past the end of the file ({FileLength} bytes)");
        if (count > cdSize / 46) throw Corrupt($"{count} entries cannot fit in a central directory of {cdSize} bytes");
        var cd = new byte[cdSize];
        ReadAt(cdOffset, cd);
        var entries = new List<ZipEntryInfo>((int)count);
        int p = 0;
        for (long i = 0; i < count; i++)
        {
            if (p + 46 > cd.Length || BinaryPrimitives.ReadUInt32LittleEndian(cd.AsSpan(p)) != 0x02014b50)
                throw Corrupt($"central directory entry {i} is malformed");
            var h = cd.AsSpan(p);
            int flags = BinaryPrimitives.ReadUInt16LittleEndian(h[8..]);
            int method = BinaryPrimitives.ReadUInt16LittleEndian(h[10..]);
            long csize = BinaryPrimitives.ReadUInt32LittleEndian(h[20..]);
            long usize = BinaryPrimitives.ReadUInt32LittleEndian(h[24..]);
            int nameLen = BinaryPrimitives.ReadUInt16LittleEndian(h[28..]);
            int extraLen = BinaryPrimitives.ReadUInt16LittleEndian(h[30..]);
            int commentLen = BinaryPrimitives.ReadUInt16LittleEndian(h[32..]);
            long local = BinaryPrimitives.ReadUInt32LittleEndian(h[42..]);
            if (p + 46L + nameLen + extraLen + commentLen > cd.Length) throw Corrupt($"central directory entry {i} is truncated");
            string name = Encoding.UTF8.GetString(h.Slice(46, nameLen));
            var extra = h.Slice(46 + nameLen, extraLen);
            // ZIP64 extended information: only the fields that are 0xFFFFFFFF in the header are present, in order
            for (int x = 0; x + 4 <= extra.Length;)
            {
                int id = BinaryPrimitives.ReadUInt16LittleEndian(extra[x..]);
                int len = BinaryPrimitives.ReadUInt16LittleEndian(extra[(x + 2)..]);
                if (x + 4 + len > extra.Length) break;
                if (id == 1)
                {
                    var f = extra.Slice(x + 4, len);
                    int q = 0;
                    if (usize == 0xFFFFFFFF && q + 8 <= f.Length) { usize = Clamp(BinaryPrimitives.ReadUInt64LittleEndian(f[q..])); q += 8; }
                    if (csize == 0xFFFFFFFF && q + 8 <= f.Length) { csize = Clamp(BinaryPrimitives.ReadUInt64LittleEndian(f[q..])); q += 8; }
                    if (local == 0xFFFFFFFF && q + 8 <= f.Length) { local = Clamp(BinaryPrimitives.ReadUInt64LittleEndian(f[q..])); }
                }
                x += 4 + len;
            }
            if ((flags & 1) != 0) throw new QuantToolsException(ErrorCode.NotSupported, $"zip entry '{name}' is encrypted", Path);
            if (method != 0 && method != 8)
                throw new QuantToolsException(ErrorCode.NotSupported, $"zip entry '{name}' uses compression method {method} (expected stored or deflate)", Path);
            if (csize > FileLength || local > FileLength - csize)
                throw Corrupt($"zip entry '{name}' declares {csize} bytes at offset {local}, past the end of the file ({FileLength} bytes)");
            if (method == 0 && usize != csize)
                throw Corrupt($"stored zip entry '{name}' declares {usize} bytes but holds {csize}");
            if (method == 8 && usize / MaxDeflateRatio > csize + 1)
                throw Corrupt($"deflated zip entry '{name}' declares {usize} bytes from {csize} compressed bytes, more than deflate can expand");
            entries.Add(new ZipEntryInfo { Name = name, Method = method, CompressedSize = csize, Size = usize, LocalHeaderOffset = local });
            p += 46 + nameLen + extraLen + commentLen;
        }
        return entries;
    }

    private static long Clamp(ulong v) => v > long.MaxValue ? long.MaxValue : (long)v;

    private long DataOffset(ZipEntryInfo e)
    {
        if (e.DataOffset >= 0) return e.DataOffset;
        Span<byte> lh = stackalloc byte[30];
        ReadAt(e.LocalHeaderOffset, lh);
        if (BinaryPrimitives.ReadUInt32LittleEndian(lh) != 0x04034b50)
            throw Corrupt($"zip entry '{e.Name}' has no local header at offset {e.LocalHeaderOffset}");
        long start = e.LocalHeaderOffset + 30 + BinaryPrimitives.ReadUInt16LittleEndian(lh[26..]) + BinaryPrimitives.ReadUInt16LittleEndian(lh[28..]);
        if (start > FileLength - e.CompressedSize)
            throw Corrupt($"zip entry '{e.Name}' ({e.CompressedSize} bytes from offset {start}) extends past the end of the file ({FileLength} bytes)");
        e.DataOffset = start;
        return start;
    }

    /// <summary>Reads <paramref name="dest"/>.Length bytes of entry <paramref name="e"/> starting at <paramref name="offset"/> (uncompressed).</summary>
    public void Read(ZipEntryInfo e, long offset, Span<byte> dest)
    {
        if (offset < 0 || offset > e.Size - dest.Length)
            throw Corrupt($"read of {dest.Length} bytes at {offset} is outside zip entry '{e.Name}' ({e.Size} bytes)");
        if (e.Method == 0)
        {
            ReadAt(DataOffset(e) + offset, dest);
            return;
        }
        var all = ReadAll(e);
        all.AsSpan((int)offset, dest.Length).CopyTo(dest);
    }

    /// <summary>The whole (uncompressed) entry.</summary>
    public byte[] ReadAll(ZipEntryInfo e)
    {
        if (e.Size > Array.MaxLength) throw new QuantToolsException(ErrorCode.NotSupported, $"zip entry '{e.Name}' of {e.Size} bytes is too large", Path);
        var result = new byte[e.Size];
        if (e.Method == 0)
        {
            ReadAt(DataOffset(e), result);
            return result;
        }
        if (e.CompressedSize > Array.MaxLength) throw Corrupt($"zip entry '{e.Name}' is too large");
        var packed = new byte[e.CompressedSize];
        ReadAt(DataOffset(e), packed);
        try
        {
            using var ds = new DeflateStream(new MemoryStream(packed), CompressionMode.Decompress);
            int got = 0;
            while (got < result.Length)
            {
                int n = ds.Read(result, got, result.Length - got);
                if (n <= 0) break;
                got += n;
            }
            if (got != result.Length || ds.Read(new byte[1], 0, 1) != 0)
                throw Corrupt($"deflated zip entry '{e.Name}' does not inflate to its declared {e.Size} bytes");
        }
        catch (InvalidDataException ex)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile, $"zip entry '{e.Name}' is not valid deflate data: {ex.Message}", Path, ex);
        }
        return result;
    }
}
