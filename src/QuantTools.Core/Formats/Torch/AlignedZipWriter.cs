using System.Buffers.Binary;
using System.Text;

namespace QuantTools.Core.Formats.Torch;

/// <summary>
/// The zip layout of PyTorch's stream writer (miniz): stored entries, flags 0x0808 (data descriptor, UTF-8 names),
/// zero time and CRC in the local header, an <c>FB</c> extra field padding each entry's data to 64 bytes, a data
/// descriptor after the data, then the central directory, a ZIP64 end record and locator, and the classic end record.
/// </summary>
internal sealed class AlignedZipWriter(Stream s)
{
    /// <summary>Entry data start on multiples of this (torch.save's <c>.storage_alignment</c>).</summary>
    public const int Alignment = 64;
    private const ushort FlagsDescriptorUtf8 = 0x0808;

    private readonly List<(byte[] Name, long Offset, long Size, uint Crc)> _entries = new();
    private long _pos;

    public uint Add(string name, ReadOnlySpan<byte> data)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        long offset = _pos;
        long size = data.Length;
        bool z64 = size >= 0xFFFFFFFF || offset >= 0xFFFFFFFF;
        int z64Len = z64 ? 4 + (size >= 0xFFFFFFFF ? 16 : 0) + (offset >= 0xFFFFFFFF ? 8 : 0) : 0;
        long start = offset + 30 + nameBytes.Length + z64Len + 4;
        int pad = (int)((Alignment - start % Alignment) % Alignment);

        Span<byte> h = stackalloc byte[30];
        BinaryPrimitives.WriteUInt32LittleEndian(h, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], (ushort)(z64 ? 45 : 0));
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], FlagsDescriptorUtf8);
        h[8..26].Clear(); // method 0 (stored), time, date, crc and sizes (in the data descriptor)
        BinaryPrimitives.WriteUInt16LittleEndian(h[26..], (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(h[28..], (ushort)(z64Len + 4 + pad));
        Write(h);
        Write(nameBytes);
        if (z64)
        {
            Span<byte> z = stackalloc byte[z64Len];
            z.Clear();
            BinaryPrimitives.WriteUInt16LittleEndian(z, 1);
            BinaryPrimitives.WriteUInt16LittleEndian(z[2..], (ushort)(z64Len - 4));
            if (offset >= 0xFFFFFFFF) BinaryPrimitives.WriteUInt64LittleEndian(z[^8..], (ulong)offset);
            Write(z);
        }
        Span<byte> fb = stackalloc byte[4 + Alignment];
        fb[0] = (byte)'F';
        fb[1] = (byte)'B';
        BinaryPrimitives.WriteUInt16LittleEndian(fb[2..], (ushort)pad);
        fb.Slice(4, pad).Fill((byte)'Z');
        Write(fb[..(4 + pad)]);

        uint crc = Crc32.Compute(data);
        Write(data);

        Span<byte> dd = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(dd, 0x08074b50);
        BinaryPrimitives.WriteUInt32LittleEndian(dd[4..], crc);
        if (z64)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(dd[8..], (ulong)size);
            BinaryPrimitives.WriteUInt64LittleEndian(dd[16..], (ulong)size);
            Write(dd);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(dd[8..], (uint)size);
            BinaryPrimitives.WriteUInt32LittleEndian(dd[12..], (uint)size);
            Write(dd[..16]);
        }
        _entries.Add((nameBytes, offset, size, crc));
        return crc;
    }

    public void Finish()
    {
        long cdStart = _pos;
        Span<byte> h = stackalloc byte[46];
        Span<byte> z = stackalloc byte[28];
        foreach (var (name, offset, size, crc) in _entries)
        {
            bool bigSize = size >= 0xFFFFFFFF, bigOffset = offset >= 0xFFFFFFFF;
            int zl = 0;
            if (bigSize || bigOffset)
            {
                zl = 4;
                if (bigSize)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(z[zl..], (ulong)size);
                    BinaryPrimitives.WriteUInt64LittleEndian(z[(zl + 8)..], (ulong)size);
                    zl += 16;
                }
                if (bigOffset)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(z[zl..], (ulong)offset);
                    zl += 8;
                }
                BinaryPrimitives.WriteUInt16LittleEndian(z, 1);
                BinaryPrimitives.WriteUInt16LittleEndian(z[2..], (ushort)(zl - 4));
            }
            h.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(h, 0x02014b50);
            BinaryPrimitives.WriteUInt16LittleEndian(h[6..], (ushort)(zl > 0 ? 45 : 0));
            BinaryPrimitives.WriteUInt16LittleEndian(h[8..], FlagsDescriptorUtf8);
            BinaryPrimitives.WriteUInt32LittleEndian(h[16..], crc);
            BinaryPrimitives.WriteUInt32LittleEndian(h[20..], bigSize ? 0xFFFFFFFF : (uint)size);
            BinaryPrimitives.WriteUInt32LittleEndian(h[24..], bigSize ? 0xFFFFFFFF : (uint)size);
            BinaryPrimitives.WriteUInt16LittleEndian(h[28..], (ushort)name.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(h[30..], (ushort)zl);
            BinaryPrimitives.WriteUInt32LittleEndian(h[42..], bigOffset ? 0xFFFFFFFF : (uint)offset);
            Write(h);
            Write(name);
            Write(z[..zl]);
        }
        long cdSize = _pos - cdStart;
        long eocd64 = _pos;
        Span<byte> e = stackalloc byte[56 + 20 + 22];
        e.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(e, 0x06064b50);
        BinaryPrimitives.WriteUInt64LittleEndian(e[4..], 44);
        BinaryPrimitives.WriteUInt16LittleEndian(e[12..], 0x031e);
        BinaryPrimitives.WriteUInt16LittleEndian(e[14..], 45);
        BinaryPrimitives.WriteUInt64LittleEndian(e[24..], (ulong)_entries.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(e[32..], (ulong)_entries.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(e[40..], (ulong)cdSize);
        BinaryPrimitives.WriteUInt64LittleEndian(e[48..], (ulong)cdStart);
        var loc = e[56..];
        BinaryPrimitives.WriteUInt32LittleEndian(loc, 0x07064b50);
        BinaryPrimitives.WriteUInt64LittleEndian(loc[8..], (ulong)eocd64);
        BinaryPrimitives.WriteUInt32LittleEndian(loc[16..], 1);
        var end = e[76..];
        ushort count16 = (ushort)Math.Min(_entries.Count, 0xFFFF);
        BinaryPrimitives.WriteUInt32LittleEndian(end, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(end[8..], count16);
        BinaryPrimitives.WriteUInt16LittleEndian(end[10..], count16);
        BinaryPrimitives.WriteUInt32LittleEndian(end[12..], (uint)Math.Min(cdSize, 0xFFFFFFFF));
        BinaryPrimitives.WriteUInt32LittleEndian(end[16..], (uint)Math.Min(cdStart, 0xFFFFFFFF));
        Write(e);
        s.Flush();
    }

    private void Write(ReadOnlySpan<byte> b)
    {
        s.Write(b);
        _pos += b.Length;
    }
}
