using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using QuantTools.Core.Formats.Pickle;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Checkpoints;

public class TorchSaveWriterTests
{
    private static Tensor Dense(DType dtype, int[] shape, int seed)
    {
        var rng = new Random(seed);
        var t = Tensor.Zeros(dtype, shape);
        var bytes = new byte[t.AsBytes().Length];
        rng.NextBytes(bytes);
        if (dtype == DType.Bool)
            for (int i = 0; i < bytes.Length; i++) bytes[i] &= 1;
        if (dtype is DType.Float32 or DType.Float64 or DType.Float16)
        {
            // finite values only, so equality of the loaded values is meaningful too
            for (int i = 0; i < t.Length; i++) SetFinite(dtype, bytes, i, rng);
        }
        return Tensor.FromBytes(dtype, shape, bytes);
    }

    private static void SetFinite(DType dtype, byte[] b, int i, Random rng)
    {
        double v = rng.NextDouble() * 20 - 10;
        switch (dtype)
        {
            case DType.Float32: BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), (float)v); break;
            case DType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(b.AsSpan(i * 8), v); break;
            case DType.Float16: BinaryPrimitives.WriteHalfLittleEndian(b.AsSpan(i * 2), (Half)v); break;
        }
    }

    private static QTensor Quantized(DType qdtype, int[] shape, int seed, QParams qp)
    {
        var rng = new Random(seed);
        var ints = Tensor.Zeros(qdtype.IntReprType(), shape);
        var (lo, hi) = qdtype.QuantRange();
        for (int i = 0; i < ints.Length; i++)
        {
            long v = qdtype == DType.QInt32 ? rng.Next(int.MinValue, int.MaxValue) : rng.NextInt64(lo, hi + 1);
            switch (ints.Data)
            {
                case byte[] u: u[i] = (byte)v; break;
                case sbyte[] s: s[i] = (sbyte)v; break;
                case int[] n: n[i] = (int)v; break;
            }
        }
        return new QTensor(ints, qp);
    }

    private static TorchCheckpoint RoundTrip(TempDir dir, IEnumerable<(string, object?)> entries, string name = "model.pt")
    {
        var path = Path.Combine(dir.Path, name);
        TorchSaveWriter.WriteStateDict(path, entries);
        return TorchCheckpoint.Load(path);
    }

    internal static void AssertSameValue(object? a, object? b, string what)
    {
        switch (a)
        {
            case QTensor qa:
                var qb = Assert.IsType<QTensor>(b);
                Assert.Equal(qa.Shape, qb.Shape);
                Assert.Equal(qa.DType, qb.DType);
                Assert.True(qa.IntRepr.AsBytes().SequenceEqual(qb.IntRepr.AsBytes()), what + " int_repr");
                Assert.Equal(qa.QParams.QScheme, qb.QParams.QScheme);
                Assert.Equal(qa.QParams.Axis, qb.QParams.Axis);
                Assert.Equal(qa.QParams.Scales, qb.QParams.Scales);
                Assert.Equal(qa.QParams.ZeroPoints, qb.QParams.ZeroPoints);
                Assert.Equal(qa.QParams.FloatZeroPoints, qb.QParams.FloatZeroPoints);
                break;
            case Tensor ta:
                var tb = Assert.IsType<Tensor>(b);
                Assert.Equal(ta.DType, tb.DType);
                Assert.Equal(ta.Shape, tb.Shape);
                Assert.True(ta.AsBytes().SequenceEqual(tb.AsBytes()), what);
                break;
            case object?[] xa:
                var xb = Assert.IsType<object?[]>(b);
                Assert.Equal(xa.Length, xb.Length);
                for (int i = 0; i < xa.Length; i++) AssertSameValue(xa[i], xb[i], $"{what}[{i}]");
                break;
            default:
                Assert.Equal(a, b);
                break;
        }
    }

    public static TheoryData<DType> DenseDTypes() =>
        new(DType.Float32, DType.Float64, DType.Float16, DType.BFloat16, DType.Int8, DType.UInt8, DType.Int16, DType.Int32, DType.Int64, DType.Bool);

    [Theory]
    [MemberData(nameof(DenseDTypes))]
    public void EveryDenseDTypeRoundTrips(DType dtype)
    {
        using var dir = new TempDir();
        var entries = new List<(string, object?)>
        {
            ("w", Dense(dtype, [3, 5, 2], 1)),
            ("scalar", Dense(dtype, [], 2)),
            ("vec", Dense(dtype, [7], 3)),
            ("empty", Dense(dtype, [0, 4], 4)),
            ("rank5", Dense(dtype, [2, 1, 3, 1, 2], 5)),
        };
        var ck = RoundTrip(dir, entries);
        Assert.Equal(CheckpointKind.StateDict, ck.Kind);
        Assert.Equal(entries.Select(e => e.Item1), ck.StateDict.Keys);
        foreach (var (k, v) in entries) AssertSameValue(v, ck.StateDict[k], k);
    }

    [Fact]
    public void ScalarsNoneAndStringsRoundTripInOrder()
    {
        using var dir = new TempDir();
        var entries = new List<(string, object?)>
        {
            ("zeta", 1.5), ("alpha", 42L), ("m.10", -7L), ("m.2", "per_tensor"), ("none", null), ("big", long.MaxValue),
            ("neg", long.MinValue), ("i32", -70000L), ("u16", 65535L), ("nan", double.NaN), ("tiny", double.Epsilon),
            ("unicode", "Grüße ✓"), ("flag", true), ("tuple", new object?[] { 1L, 2.0, "three", null }),
            ("dtype", DType.QInt8),
        };
        var ck = RoundTrip(dir, entries);
        Assert.Equal(entries.Select(e => e.Item1), ck.StateDict.Keys);
        foreach (var (k, v) in entries) AssertSameValue(v, ck.StateDict[k], k);
        var root = Assert.IsType<PyDict>(ck.Root);
        Assert.True(root.IsOrderedDict);
        Assert.Null(ck.Metadata);
        Assert.Equal("model", ck.ArchiveName);
        Assert.Equal("3", ck.Version);
        Assert.False(ck.BigEndian);
    }

    [Fact]
    public void PerTensorQuantizedRoundTrips()
    {
        using var dir = new TempDir();
        var entries = new List<(string, object?)>
        {
            ("qu8", Quantized(DType.QUInt8, [4, 3, 3, 3], 1, QParams.PerTensor(0.0197, 0, DType.QUInt8))),
            ("qi8", Quantized(DType.QInt8, [16, 8], 2, QParams.PerTensor(0.1234567890123, -3, DType.QInt8))),
            ("qi32", Quantized(DType.QInt32, [5], 3, QParams.PerTensor(1e-6, 0, DType.QInt32))),
            ("q4", Quantized(DType.QUInt4x2, [3, 5], 4, QParams.PerTensor(0.5, 8, DType.QUInt4x2))),
            ("q2", Quantized(DType.QUInt2x4, [7], 5, QParams.PerTensor(0.25, 1, DType.QUInt2x4))),
            ("q0d", Quantized(DType.QUInt8, [], 6, QParams.PerTensor(0.5, 255, DType.QUInt8))),
        };
        var ck = RoundTrip(dir, entries);
        Assert.Equal(entries.Select(e => e.Item1), ck.StateDict.Keys);
        foreach (var (k, v) in entries) AssertSameValue(v, ck.StateDict[k], k);
    }

    [Fact]
    public void PerChannelQuantizedRoundTrips()
    {
        using var dir = new TempDir();
        double[] s8 = Enumerable.Range(0, 8).Select(i => 0.001 * (i + 1) / 3).ToArray();
        var entries = new List<(string, object?)>
        {
            ("conv.weight", Quantized(DType.QInt8, [8, 3, 3, 3], 1, QParams.PerChannel(s8, new long[8], 0, DType.QInt8))),
            ("axis1", Quantized(DType.QUInt8, [2, 8, 4], 2, QParams.PerChannel(s8, Enumerable.Range(0, 8).Select(i => (long)i * 10).ToArray(), 1, DType.QUInt8))),
            ("emb.weight", Quantized(DType.QUInt8, [8, 16], 3, new QParams(QScheme.PerChannelAffineFloatQParams, DType.QUInt8,
                s8.Select(x => (double)(float)x).ToArray(), [], 0, Enumerable.Range(0, 8).Select(i => i * 0.5f - 1).ToArray()))),
            ("emb4.weight", Quantized(DType.QUInt4x2, [8, 5], 4, new QParams(QScheme.PerChannelAffineFloatQParams, DType.QUInt4x2,
                s8.Select(x => (double)(float)x).ToArray(), [], 0, Enumerable.Range(0, 8).Select(i => i * 0.25f).ToArray()))),
            ("conv.bias", Dense(DType.Float32, [8], 5)),
        };
        var ck = RoundTrip(dir, entries);
        Assert.Equal(entries.Select(e => e.Item1), ck.StateDict.Keys);
        foreach (var (k, v) in entries) AssertSameValue(v, ck.StateDict[k], k);
    }

    [Fact]
    public void SymmetricSchemesAreWrittenAsTheirAffineForm()
    {
        using var dir = new TempDir();
        var pt = Quantized(DType.QInt8, [4], 1, QParams.PerTensor(0.5, 0, DType.QInt8, QScheme.PerTensorSymmetric));
        var pc = Quantized(DType.QInt8, [2, 2], 2, QParams.PerChannel([0.1, 0.2], [0, 0], 0, DType.QInt8, QScheme.PerChannelSymmetric));
        var ck = RoundTrip(dir, [("pt", pt), ("pc", pc)]);
        Assert.Equal(QScheme.PerTensorAffine, ck.StateDict.Get<QTensor>("pt").QParams.QScheme);
        Assert.Equal(QScheme.PerChannelAffine, ck.StateDict.Get<QTensor>("pc").QParams.QScheme);
        Assert.Equal([0.1, 0.2], ck.StateDict.Get<QTensor>("pc").QParams.Scales);
    }

    [Fact]
    public void ManyEntriesKeepOrderAcrossSetItemsBatchesAndLongMemoIds()
    {
        using var dir = new TempDir();
        var rng = new Random(7);
        var entries = Enumerable.Range(0, 2500)
            .Select(i => ($"layer{rng.Next(100000)}_{i}", (object?)(i % 3 == 0 ? Dense(DType.Float32, [2], i) : i % 3 == 1 ? (object)(long)i : $"s{i}")))
            .ToList();
        var ck = RoundTrip(dir, entries);
        Assert.Equal(entries.Select(e => e.Item1), ck.StateDict.Keys);
        foreach (var (k, v) in entries) AssertSameValue(v, ck.StateDict[k], k);
    }

    [Fact]
    public void TensorsOverOneArrayShareAStorage()
    {
        using var dir = new TempDir();
        var a = Dense(DType.Float32, [4, 6], 1);
        var path = Path.Combine(dir.Path, "shared.pt");
        TorchSaveWriter.WriteStateDict(path, [("a", a), ("b", a.Reshape(24)), ("c", a)]);
        using (var z = ZipFile.OpenRead(path))
            Assert.Single(z.Entries, e => e.FullName.StartsWith("shared/data/", StringComparison.Ordinal));
        var ck = TorchCheckpoint.Load(path);
        AssertSameValue(a, ck.StateDict["a"], "a");
        AssertSameValue(a.Reshape(24), ck.StateDict["b"], "b");
        AssertSameValue(a, ck.StateDict["c"], "c");
    }

    private sealed record LocalEntry(string Name, int Version, int Flags, int Method, int ExtraLen, long DataOffset);

    /// <summary>Walks the local headers and data descriptors from the start of the file (independent of our reader).</summary>
    private static List<LocalEntry> LocalEntries(byte[] f, IReadOnlyDictionary<string, long> sizes)
    {
        var r = new List<LocalEntry>();
        int p = 0;
        while (BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(p)) == 0x04034b50)
        {
            int nameLen = BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(p + 26));
            int extraLen = BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(p + 28));
            var name = Encoding.UTF8.GetString(f, p + 30, nameLen);
            long data = p + 30 + nameLen + extraLen;
            r.Add(new LocalEntry(name, BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(p + 4)), BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(p + 6)),
                BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(p + 8)), extraLen, data));
            p = (int)(data + sizes[name]);
            Assert.Equal(0x08074b50u, BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(p)));
            p += 16;
        }
        return r;
    }

    [Fact]
    public void LayoutMatchesTorchSave()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "net.v2.pt");
        TorchSaveWriter.WriteStateDict(path,
        [
            ("conv.weight", Quantized(DType.QInt8, [8, 1, 3, 3], 1, QParams.PerChannel(Enumerable.Repeat(0.01, 8).ToArray(), new long[8], 0, DType.QInt8))),
            ("conv.bias", Dense(DType.Float32, [8], 2)),
            ("conv.scale", 0.5), ("conv.zero_point", 3L),
        ]);
        var f = File.ReadAllBytes(path);
        using var z = ZipFile.OpenRead(path);
        var names = z.Entries.Select(e => e.FullName).ToList();
        Assert.Equal(
        [
            "net.v2/data.pkl", "net.v2/.format_version", "net.v2/.storage_alignment", "net.v2/byteorder",
            "net.v2/data/0", "net.v2/data/1", "net.v2/data/2", "net.v2/data/3", "net.v2/version", "net.v2/.data/serialization_id",
        ], names);
        string Text(string n)
        {
            using var s = z.GetEntry("net.v2/" + n)!.Open();
            return new StreamReader(s).ReadToEnd();
        }
        Assert.Equal("1", Text(".format_version"));
        Assert.Equal("64", Text(".storage_alignment"));
        Assert.Equal("little", Text("byteorder"));
        Assert.Equal("3\n", Text("version"));
        Assert.Matches("^[0-9]{40}$", Text(".data/serialization_id"));
        Assert.All(z.Entries, e => Assert.Equal(e.Length, e.CompressedLength));
        // storages in first-use order: weight (qint8, 72 bytes), scales (float64 x8), zero points (int64 x8), bias (float32 x8)
        Assert.Equal([72L, 64, 64, 32], Enumerable.Range(0, 4).Select(i => z.GetEntry($"net.v2/data/{i}")!.Length));

        var locals = LocalEntries(f, z.Entries.ToDictionary(e => e.FullName, e => e.Length));
        Assert.Equal(names, locals.Select(l => l.Name));
        Assert.All(locals, l =>
        {
            Assert.Equal(0, l.DataOffset % 64);
            Assert.Equal(0x0808, l.Flags);
            Assert.Equal(0, l.Method);
        });
        // CRCs in the central directory are right (System.IO.Compression checks them while reading to the end)
        foreach (var e in z.Entries)
        {
            using var s = e.Open();
            s.CopyTo(Stream.Null);
            Assert.Equal(Crc(ReadEntry(e)), e.Crc32);
        }
        var pkl = ReadEntry(z.GetEntry("net.v2/data.pkl")!);
        Assert.Equal([0x80, 0x02], pkl[..2]);
        Assert.Equal((byte)'.', pkl[^1]);
        Assert.Contains("ctorch._utils\n_rebuild_qtensor\n", Encoding.ASCII.GetString(pkl));
        Assert.Contains("ctorch\nper_channel_affine\n", Encoding.ASCII.GetString(pkl));
        // ZIP64 end record + locator + end record, as PyTorch writes them
        Assert.Equal(0x06054b50u, BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(f.Length - 22)));
        Assert.Equal(0x07064b50u, BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(f.Length - 42)));
        Assert.Equal(0x06064b50u, BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(f.Length - 98)));
    }

    private static byte[] ReadEntry(ZipArchiveEntry e)
    {
        using var s = e.Open();
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    private static uint Crc(byte[] b)
    {
        uint c = 0xFFFFFFFF;
        foreach (var x in b)
        {
            c ^= x;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }

    [Fact]
    public void SameInputGivesSameBytes()
    {
        using var dir = new TempDir();
        var entries = new List<(string, object?)> { ("a", Dense(DType.Float32, [3], 1)), ("b", 2L) };
        var p1 = Path.Combine(dir.Path, "x.pt");
        var p2 = Path.Combine(dir.Path, "y", "x.pt");
        Directory.CreateDirectory(Path.GetDirectoryName(p2)!);
        TorchSaveWriter.WriteStateDict(p1, entries);
        TorchSaveWriter.WriteStateDict(p2, entries);
        Assert.Equal(File.ReadAllBytes(p1), File.ReadAllBytes(p2));
    }

    [Theory]
    [InlineData("model.pt", "model")]
    [InlineData("seed_convnet.state_dict.pt", "seed_convnet.state_dict")]
    [InlineData("noext", "noext")]
    [InlineData("modèle.pt", "archive")]
    public void ArchiveNameFollowsTorchSave(string file, string expected) =>
        Assert.Equal(expected, TorchSaveWriter.ArchiveName(Path.Combine("some", "dir", file)));

    [Fact]
    public void BadInputIsRefusedAndLeavesNoFile()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "bad.pt");
        var e1 = Assert.Throws<QuantToolsException>(() => TorchSaveWriter.WriteStateDict(path, [("a", 1L), ("a", 2L)]));
        Assert.Contains("'a'", e1.Message);
        var e2 = Assert.Throws<QuantToolsException>(() => TorchSaveWriter.WriteStateDict(path, [("a", new object())]));
        Assert.Equal(ErrorCode.InvalidArgument, e2.Code);
        Assert.False(File.Exists(path));
    }

    // ---------------------------------------------------------------- golden
    private static readonly string GoldenPath = Fixtures.Core("models", "seed_convnet.state_dict.pt");

    [Fact]
    public void RewritingTheGoldenStateDictLoadsToIdenticalValues()
    {
        using var dir = new TempDir();
        var golden = TorchCheckpoint.Load(GoldenPath);
        var path = Path.Combine(dir.Path, "seed_convnet.state_dict.pt");
        TorchSaveWriter.WriteStateDict(path, golden.StateDict);
        var ours = TorchCheckpoint.Load(path);
        Assert.Equal(golden.StateDict.Keys, ours.StateDict.Keys);
        foreach (var (k, v) in golden.StateDict) AssertSameValue(v, ours.StateDict[k], k);
        Assert.Equal(golden.ArchiveName, ours.ArchiveName);
        Assert.Equal(golden.Version, ours.Version);
    }

    [Fact]
    public void RewrittenGoldenHasTheGoldenZipStructure()
    {
        using var dir = new TempDir();
        var golden = TorchCheckpoint.Load(GoldenPath);
        var path = Path.Combine(dir.Path, "seed_convnet.state_dict.pt");
        TorchSaveWriter.WriteStateDict(path, golden.StateDict);
        using var zg = ZipFile.OpenRead(GoldenPath);
        using var zo = ZipFile.OpenRead(path);
        // same entries in the same order with the same sizes: same storages, keyed in the same first-use order
        Assert.Equal(zg.Entries.Select(e => e.FullName), zo.Entries.Select(e => e.FullName));
        foreach (var (g, o) in zg.Entries.Zip(zo.Entries))
        {
            if (g.FullName.EndsWith("data.pkl", StringComparison.Ordinal)) continue;
            Assert.Equal(g.Length, o.Length);
            if (!g.FullName.EndsWith("serialization_id", StringComparison.Ordinal))
                Assert.Equal(ReadEntry(g), ReadEntry(o));
        }
        // the same local-header layout: flags, versions, the FB padding extra field, hence the same data offsets
        var fg = File.ReadAllBytes(GoldenPath);
        var fo = File.ReadAllBytes(path);
        var lg = LocalEntries(fg, zg.Entries.ToDictionary(e => e.FullName, e => e.Length));
        var lo = LocalEntries(fo, zo.Entries.ToDictionary(e => e.FullName, e => e.Length));
        Assert.Equal(lg.Select(l => (l.Name, l.Version, l.Flags, l.Method)), lo.Select(l => (l.Name, l.Version, l.Flags, l.Method)));
        Assert.All(lo, l => Assert.Equal(0, l.DataOffset % 64));
        // the pickles reference the same storages (class, key, numel) in the same order and name the same globals
        // (the golden's conv biases are Parameters; we write plain tensors)
        var rg = Recording.Of(ReadEntry(zg.Entries[0]));
        var ro = Recording.Of(ReadEntry(zo.Entries[0]));
        Assert.Equal(rg.Storages, ro.Storages);
        rg.Globals.Remove("torch._utils._rebuild_parameter");
        Assert.Equal(rg.Globals.Order(), ro.Globals.Order());
    }

    /// <summary>Unpickles through the torch allow-list without storages, noting the globals and persistent ids it meets.</summary>
    private sealed class Recording : PickleResolver
    {
        private readonly TorchPickleResolver _inner = new(null, null, LoadBudget.ForFile(1 << 20));
        public readonly HashSet<string> Globals = new(StringComparer.Ordinal);
        public readonly List<string> Storages = new();

        public static Recording Of(byte[] pkl)
        {
            var r = new Recording();
            Unpickler.Load(pkl, r, "data.pkl");
            return r;
        }

        public override object ResolveGlobal(string module, string name)
        {
            Globals.Add(module + "." + name);
            return _inner.ResolveGlobal(module, name);
        }

        public override object? Call(object? callable, object?[] args) => _inner.Call(callable, args);
        public override object? New(object? cls, object?[] args) => _inner.New(cls, args);
        public override object? Build(object? target, object? state) => _inner.Build(target, state);

        public override object? PersistentLoad(object? pid)
        {
            var t = (object?[])pid!;
            Storages.Add($"{t[0]} {t[1]} {t[2]} {t[3]} {t[4]}");
            return _inner.PersistentLoad(pid);
        }
    }
}
