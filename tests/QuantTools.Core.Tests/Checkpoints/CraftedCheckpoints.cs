using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace QuantTools.Core.Tests.Checkpoints;

/// <summary>Writes pickles opcode by opcode, for hostile and edge-case checkpoints made in the tests.</summary>
internal sealed class PickleBuilder
{
    private readonly MemoryStream _s = new();

    public PickleBuilder Op(params byte[] b) { _s.Write(b); return this; }
    public PickleBuilder Proto(int p = 2) => Op(0x80, (byte)p);
    public PickleBuilder Mark() => Op((byte)'(');
    public PickleBuilder Stop() => Op((byte)'.');
    public PickleBuilder None() => Op((byte)'N');
    public PickleBuilder False() => Op(0x89);
    public PickleBuilder EmptyTuple() => Op((byte)')');
    public PickleBuilder Tuple() => Op((byte)'t');
    public PickleBuilder Tuple1() => Op(0x85);
    public PickleBuilder Reduce() => Op((byte)'R');
    public PickleBuilder BinPersId() => Op((byte)'Q');
    public PickleBuilder EmptyDict() => Op((byte)'}');
    public PickleBuilder EmptyList() => Op((byte)']');
    public PickleBuilder Appends() => Op((byte)'e');
    public PickleBuilder SetItem() => Op((byte)'s');
    public PickleBuilder SetItems() => Op((byte)'u');
    public PickleBuilder Build() => Op((byte)'b');
    public PickleBuilder NewObj() => Op(0x81);

    public PickleBuilder Global(string module, string name) =>
        Op((byte)'c').Op(Encoding.ASCII.GetBytes(module + "\n" + name + "\n"));

    public PickleBuilder Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        Op((byte)'X');
        Span<byte> n = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(n, b.Length);
        _s.Write(n);
        return Op(b);
    }

    public PickleBuilder Int(long v)
    {
        if (v is >= 0 and < 256) return Op((byte)'K', (byte)v);
        if (v is >= int.MinValue and <= int.MaxValue)
        {
            var b = new byte[5];
            b[0] = (byte)'J';
            BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(1), (int)v);
            return Op(b);
        }
        var l = new byte[10];
        l[0] = 0x8a;
        l[1] = 8;
        BinaryPrimitives.WriteInt64LittleEndian(l.AsSpan(2), v);
        return Op(l);
    }

    public PickleBuilder Float(double d)
    {
        var b = new byte[9];
        b[0] = (byte)'G';
        BinaryPrimitives.WriteDoubleBigEndian(b.AsSpan(1), d);
        return Op(b);
    }

    public PickleBuilder Ints(params long[] v)
    {
        Mark();
        foreach (var x in v) Int(x);
        return Tuple();
    }

    /// <summary>Pushes ('storage', torch.&lt;type&gt;, key, 'cpu', numel) BINPERSID.</summary>
    public PickleBuilder Storage(string type, string key, long numel) =>
        Mark().Str("storage").Global("torch", type).Str(key).Str("cpu").Int(numel).Tuple().BinPersId();

    /// <summary>Pushes _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).</summary>
    public PickleBuilder Tensor(string type, string key, long numel, long offset, long[] size, long[] stride) =>
        Global("torch._utils", "_rebuild_tensor_v2").Mark().Storage(type, key, numel).Int(offset).Ints(size).Ints(stride).False()
            .Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();

    public byte[] ToArray() => _s.ToArray();
}

internal static class Crafted
{
    /// <summary>A torch.save-like zip: archive/data.pkl, archive/data/&lt;key&gt;..., archive/byteorder, archive/version.</summary>
    public static byte[] Zip(byte[] dataPkl, Dictionary<string, byte[]>? storages = null, string byteorder = "little", string prefix = "archive",
        Dictionary<string, string>? extra = null)
    {
        var ms = new MemoryStream();
        using (var z = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            void Add(string name, byte[] b)
            {
                var e = z.CreateEntry(prefix + "/" + name, CompressionLevel.NoCompression);
                using var s = e.Open();
                s.Write(b);
            }
            Add("data.pkl", dataPkl);
            Add("byteorder", Encoding.ASCII.GetBytes(byteorder));
            foreach (var (k, v) in storages ?? new()) Add("data/" + k, v);
            foreach (var (k, v) in extra ?? new()) Add(k, Encoding.UTF8.GetBytes(v));
            Add("version", "3\n"u8.ToArray());
        }
        return ms.ToArray();
    }

    public static byte[] Floats(params float[] v)
    {
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), v[i]);
        return b;
    }

    /// <summary>The legacy header pickles: magic number, protocol 1001, sys_info.</summary>
    public static byte[] LegacyHeader()
    {
        var magic = new PickleBuilder().Proto().Op(0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19).Stop();
        var proto = new PickleBuilder().Proto().Op((byte)'M', 0xe9, 0x03).Stop();
        var sys = new PickleBuilder().Proto().EmptyDict().Mark().Str("protocol_version").Op((byte)'M', 0xe9, 0x03)
            .Str("little_endian").Op(0x88).SetItems().Stop();
        return [.. magic.ToArray(), .. proto.ToArray(), .. sys.ToArray()];
    }
}

/// <summary>A temp folder removed after the test.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("qt-ckpt-").FullName;
    public string File(string name, byte[] content)
    {
        var p = System.IO.Path.Combine(Path, name);
        System.IO.File.WriteAllBytes(p, content);
        return p;
    }
    public void Dispose()
    {
        try { Directory.Delete(Path, true); } catch (IOException) { }
    }
}
