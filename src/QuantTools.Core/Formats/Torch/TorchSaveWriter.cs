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
}
