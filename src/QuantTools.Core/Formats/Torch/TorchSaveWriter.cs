using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using QuantTools.Core.Formats.Pickle;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats.Torch;

/// <summary>
/// Writes a state_dict the way <c>torch.save(state_dict, path)</c> does (PyTorch 2.x zip format), so that
/// <c>torch.load</c> and <see cref="TorchCheckpoint.Load"/> read it:
/// a zip of stored entries whose data start on 64-byte boundaries (padding in an <c>FB</c> local-header extra field),
/// <c>&lt;archive&gt;/data.pkl</c> (protocol 2: a <c>collections.OrderedDict</c> in the given order, no <c>_metadata</c>),
/// <c>.format_version</c>, <c>.storage_alignment</c>, <c>byteorder</c> (<c>little</c>), <c>data/&lt;key&gt;</c> (raw
/// little-endian storage bytes, keys "0", "1"... in first-use order), <c>version</c> (<c>3</c>) and
/// <c>.data/serialization_id</c>; ZIP64 end records as PyTorch always writes them.
/// </summary>
/// <remarks>
/// Values: <see cref="Tensor"/> (every dtype; <c>torch._utils._rebuild_tensor_v2</c>), <see cref="QTensor"/>
/// (<c>_rebuild_qtensor</c>; per-tensor, per-channel and per-channel float-qparams; symmetric schemes are written as
/// their affine form, as a PyTorch quantized tensor holds them; quint4x2 / quint2x4 packed), double, float, long, int,
/// bool, string, null, plus <see cref="DType"/> (e.g. <c>torch.qint8</c>), byte[] and nested tuples (object?[]), lists
/// and <see cref="PyDict"/>s, so a state_dict read by <see cref="TorchCheckpoint"/> can be written back.
/// Tensors sharing one data array share one storage. The serialization id is derived from the content, so the same
/// input gives the same bytes.
/// </remarks>
public static class TorchSaveWriter
{
    private const int Alignment = 64;
    private const ushort FlagsDescriptorUtf8 = 0x0808;

    /// <summary>Writes <paramref name="entries"/> (state_dict name → value, in order) to <paramref name="path"/>.</summary>
    public static void WriteStateDict(string path, IEnumerable<(string Name, object? Value)> entries)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(entries);
        if (!BitConverter.IsLittleEndian)
            throw new QuantToolsException(ErrorCode.NotSupported, "writing checkpoints needs a little-endian host", path);

        var state = new PickleState();
        var w = state.Writer;
        w.Proto(2).Global("collections", "OrderedDict").EmptyTuple().Reduce().Put();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int batch = 0;
        foreach (var (name, value) in entries)
        {
            if (name is null) throw new QuantToolsException(ErrorCode.InvalidArgument, "a state_dict entry has a null name", path);
            if (!seen.Add(name)) throw new QuantToolsException(ErrorCode.InvalidArgument, $"state_dict entry '{name}' appears twice", path);
            // CPython's _batch_setitems: SETITEMS per 1000 pairs, SETITEM for a lone pair
            if (batch == 0) w.Mark();
            w.Str(name);
            state.Value(value, name, 0);
            if (++batch == 1000)
            {
                w.SetItems();
                batch = 0;
            }
        }
        if (batch > 0) w.SetItems();
        w.Stop();
        var pickle = w.ToArray();

        string archive = ArchiveName(path);
        try
        {
            using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            var zip = new AlignedZipWriter(fs);
            zip.Add(archive + "/data.pkl", pickle);
            zip.Add(archive + "/.format_version", "1"u8);
            zip.Add(archive + "/.storage_alignment", "64"u8);
            zip.Add(archive + "/byteorder", "little"u8);
            var crcs = new List<uint>();
            foreach (var s in state.Storages)
                crcs.Add(zip.Add(archive + "/data/" + s.Key, s.Tensor.AsBytes()));
            zip.Add(archive + "/version", "3\n"u8);
            zip.Add(archive + "/.data/serialization_id", SerializationId(pickle, crcs));
            zip.Finish();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            TryDelete(path);
            throw new QuantToolsException(ErrorCode.IoError, e.Message, path, e);
        }
        catch
        {
            TryDelete(path);
            throw;
        }
    }

    /// <summary>Writes a loaded checkpoint's state_dict view back (names and values as <see cref="TorchCheckpoint.StateDict"/> has them).</summary>
    public static void WriteStateDict(string path, TorchStateDict stateDict) =>
        WriteStateDict(path, stateDict.Select(kv => (kv.Key, kv.Value)));

    /// <summary>The archive folder torch.save uses: the file name without its last extension, or <c>archive</c> when that is not plain ASCII.</summary>
    internal static string ArchiveName(string path)
    {
        var name = Path.GetFileName(path);
        int dot = name.LastIndexOf('.');
        if (dot >= 0) name = name[..dot];
        return name.Length == 0 || name.Any(c => c is < ' ' or > '~' or '/' or '\\') ? "archive" : name;
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    private static byte[] SerializationId(byte[] pickle, List<uint> crcs)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(pickle);
        Span<byte> b = stackalloc byte[4];
        foreach (var c in crcs)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b, c);
            h.AppendData(b);
        }
        var digits = new BigInteger(h.GetHashAndReset(), isUnsigned: true).ToString().PadLeft(40, '0');
        return Encoding.ASCII.GetBytes(digits[..40]);
    }

    // ------------------------------------------------------------------ pickle
    private sealed record StorageEntry(string Key, Tensor Tensor);

    private sealed class PickleState
    {
        public readonly PickleWriter Writer = new();
        public readonly List<StorageEntry> Storages = new();
        // data array → key, per storage class (an int8 tensor and a qint8 tensor over one array are two storages)
        private readonly Dictionary<(Array, string), string> _byArray = new(ArrayKeyComparer.Instance);

        public void Value(object? v, string name, int depth)
        {
            if (depth > 100) throw new QuantToolsException(ErrorCode.InvalidArgument, $"entry '{name}' is nested deeper than 100 levels");
            var w = Writer;
            switch (v)
            {
                case null: w.None(); break;
                case bool b: w.Bool(b); break;
                case long l: w.Int(l); break;
                case int i: w.Int(i); break;
                case short s: w.Int(s); break;
                case sbyte sb: w.Int(sb); break;
                case byte by: w.Int(by); break;
                case ushort us: w.Int(us); break;
                case uint ui: w.Int(ui); break;
                case double d: w.Float(d); break;
                case float f: w.Float(f); break;
                case string str: w.Str(str); break;
                case Tensor t: DenseTensor(t); break;
                case QTensor q: QuantizedTensor(q); break;
                case DType dt: w.Global("torch", dt.TorchName()); break;
                case QScheme qs: w.Global("torch", qs.TorchName()); break;
                case byte[] bytes: w.Bytes(bytes); break;
                case object?[] tuple:
                    if (PickleWriter.NeedsMark(tuple.Length)) w.Mark();
                    foreach (var x in tuple) Value(x, name, depth + 1);
                    w.TupleEnd(tuple.Length);
                    if (tuple.Length > 0) w.Put();
                    break;
                case List<object?> list:
                    w.EmptyList().Put();
                    if (list.Count > 0)
                    {
                        w.Mark();
                        foreach (var x in list) Value(x, name, depth + 1);
                        w.Appends();
                    }
                    break;
                case PyDict dict:
                    if (dict.IsOrderedDict) w.Global("collections", "OrderedDict").EmptyTuple().Reduce().Put();
                    else w.EmptyDict().Put();
                    if (dict.Count > 0)
                    {
                        w.Mark();
                        foreach (var kv in dict)
                        {
                            Value(kv.Key, name, depth + 1);
                            Value(kv.Value, name, depth + 1);
                        }
                        w.SetItems();
                    }
                    break;
                default:
                    throw new QuantToolsException(ErrorCode.InvalidArgument,
                        $"state_dict entry '{name}' holds a {v.GetType().Name}; a checkpoint holds tensors, quantized tensors, numbers, strings, None and tuples/lists/dicts of those");
            }
        }

        private void DenseTensor(Tensor t)
        {
            var w = Writer;
            w.Global("torch._utils", "_rebuild_tensor_v2").Mark();
            Persistent(t, StorageClass(t.DType), t.Length, packed: null);
            w.Int(0);
            Shape(t.Shape);
            Strides(t.Shape);
            w.Bool(false);
            EmptyOrderedDict();
            w.TupleEnd(6).Put().Reduce().Put();
        }

        private void QuantizedTensor(QTensor q)
        {
            var w = Writer;
            var ints = q.IntRepr;
            bool subByte = q.DType is DType.QUInt4x2 or DType.QUInt2x4;
            Tensor? packed = null;
            long numel = ints.Length; // a typed storage counts elements of its dtype
            if (subByte)
            {
                var bytes = q.PackedBytes();
                packed = new Tensor(DType.UInt8, [bytes.Length], bytes);
                numel = bytes.Length;
            }
            w.Global("torch._utils", "_rebuild_qtensor").Mark();
            Persistent(ints, StorageClass(q.DType), numel, packed);
            w.Int(0);
            Shape(ints.Shape);
            Strides(ints.Shape);
            var qp = q.QParams;
            if (!qp.IsPerChannel)
            {
                w.Global("torch", "per_tensor_affine").Float(qp.Scale).Int(qp.ZeroPoint).TupleEnd(3).Put();
            }
            else
            {
                // torch.save writes per_channel_affine for float-qparams too; float32 zero points mark the scheme on load
                w.Mark().Global("torch", "per_channel_affine");
                if (qp.QScheme == QScheme.PerChannelAffineFloatQParams)
                {
                    DenseTensor(new Tensor(DType.Float32, [qp.Scales.Length], qp.Scales.Select(s => (float)s).ToArray()));
                    DenseTensor(new Tensor(DType.Float32, [qp.Scales.Length], (float[])qp.FloatZeroPoints!.Clone()));
                }
                else
                {
                    DenseTensor(new Tensor(DType.Float64, [qp.Scales.Length], (double[])qp.Scales.Clone()));
                    DenseTensor(new Tensor(DType.Int64, [qp.ZeroPoints.Length], (long[])qp.ZeroPoints.Clone()));
                }
                w.Int(qp.Axis).TupleEnd(4).Put();
            }
            w.Bool(false);
            EmptyOrderedDict();
            w.TupleEnd(7).Put().Reduce().Put();
        }

        /// <summary>BINPERSID of ('storage', torch.&lt;Class&gt;, key, 'cpu', numel), registering the storage's bytes.</summary>
        private void Persistent(Tensor t, string storageClass, long numel, Tensor? packed)
        {
            var data = packed ?? t;
            if (!_byArray.TryGetValue((data.Data, storageClass), out var key))
            {
                key = Storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                Storages.Add(new StorageEntry(key, data));
                _byArray[(data.Data, storageClass)] = key;
            }
            Writer.Mark().Str("storage").Global("torch", storageClass).Str(key).Str("cpu").Int(numel).TupleEnd(5).Put().BinPersId();
        }

        private void EmptyOrderedDict() => Writer.Global("collections", "OrderedDict").EmptyTuple().Reduce().Put();

        private void Shape(int[] shape) => Longs(shape.Select(x => (long)x).ToArray());

        private void Strides(int[] shape)
        {
            var s = new long[shape.Length];
            long acc = 1;
            for (int i = shape.Length - 1; i >= 0; i--)
            {
                s[i] = acc;
                acc *= Math.Max(shape[i], 1);
            }
            Longs(s);
        }

        private void Longs(long[] v)
        {
            var w = Writer;
            if (PickleWriter.NeedsMark(v.Length)) w.Mark();
            foreach (var x in v) w.Int(x);
            w.TupleEnd(v.Length);
            if (v.Length > 0) w.Put();
        }
    }

    internal static string StorageClass(DType d) => d switch
    {
        DType.Float32 => "FloatStorage",
        DType.Float64 => "DoubleStorage",
        DType.Float16 => "HalfStorage",
        DType.BFloat16 => "BFloat16Storage",
        DType.Int8 => "CharStorage",
        DType.UInt8 => "ByteStorage",
        DType.Int16 => "ShortStorage",
        DType.Int32 => "IntStorage",
        DType.Int64 => "LongStorage",
        DType.Bool => "BoolStorage",
        DType.QUInt8 => "QUInt8Storage",
        DType.QInt8 => "QInt8Storage",
        DType.QInt32 => "QInt32Storage",
        DType.QUInt4x2 => "QUInt4x2Storage",
        DType.QUInt2x4 => "QUInt2x4Storage",
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"no storage class for {d}"),
    };

    private sealed class ArrayKeyComparer : IEqualityComparer<(Array, string)>
    {
        public static readonly ArrayKeyComparer Instance = new();
        public bool Equals((Array, string) a, (Array, string) b) => ReferenceEquals(a.Item1, b.Item1) && a.Item2 == b.Item2;
        public int GetHashCode((Array, string) k) => HashCode.Combine(RuntimeHelpers.GetHashCode(k.Item1), k.Item2);
    }

    // ------------------------------------------------------------------ zip
    /// <summary>
    /// The zip layout of PyTorch's stream writer (miniz): stored entries, flags 0x0808 (data descriptor, UTF-8 names),
    /// zero time and CRC in the local header, an <c>FB</c> extra field padding each entry's data to 64 bytes, a data
    /// descriptor after the data, then the central directory, a ZIP64 end record and locator, and the classic end record.
    /// </summary>
    private sealed class AlignedZipWriter(Stream s)
    {
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
}

/// <summary>CRC-32 (ISO-HDLC, as zip uses), slicing by 8.</summary>
internal static class Crc32
{
    private static readonly uint[] Table = Build();

    private static uint[] Build()
    {
        var t = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        for (int i = 0; i < 256; i++)
            for (int s = 1; s < 8; s++)
                t[s * 256 + i] = (t[(s - 1) * 256 + i] >> 8) ^ t[t[(s - 1) * 256 + i] & 0xFF];
        return t;
    }

    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        var t = Table;
        uint c = ~crc;
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            uint lo = BinaryPrimitives.ReadUInt32LittleEndian(data[i..]) ^ c;
            uint hi = BinaryPrimitives.ReadUInt32LittleEndian(data[(i + 4)..]);
            c = t[7 * 256 + (lo & 0xFF)] ^ t[6 * 256 + ((lo >> 8) & 0xFF)] ^ t[5 * 256 + ((lo >> 16) & 0xFF)] ^ t[4 * 256 + (lo >> 24)] ^
                t[3 * 256 + (hi & 0xFF)] ^ t[2 * 256 + ((hi >> 8) & 0xFF)] ^ t[256 + ((hi >> 16) & 0xFF)] ^ t[hi >> 24];
        }
        for (; i < data.Length; i++) c = t[(c ^ data[i]) & 0xFF] ^ (c >> 8);
        return ~c;
    }
}
