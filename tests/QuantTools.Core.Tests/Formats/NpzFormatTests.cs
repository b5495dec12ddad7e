using System.IO.Compression;
using QuantTools.Core.Formats;
using QuantTools.Core.Tensors;
using static QuantTools.Core.Tests.Formats.FormatTestUtil;

namespace QuantTools.Core.Tests.Formats;

public class NpzFormatTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    private static List<(string, Tensor)> Mixed() =>
    [
        ("zeta", Sample(DType.Float32, [2, 3])),
        ("alpha/beta", Sample(DType.Int64, [4])),
        ("scalar", Sample(DType.Float64, [])),
        ("empty", Sample(DType.UInt8, [0, 5])),
        ("flags", Sample(DType.Bool, [2, 2, 2])),
        ("h", Sample(DType.Float16, [3, 1, 2, 1, 2])),
        ("i8", Sample(DType.Int8, [7])),
        ("i16", Sample(DType.Int16, [2, 2])),
        ("i32", Sample(DType.Int32, [1, 3])),
    ];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RoundTripsInArchiveOrder(bool compress)
    {
        var tensors = Mixed();
        var p = _tmp.File("x.npz");
        NpzFormat.Write(p, tensors, compress);
        using (var z = ZipFile.OpenRead(p))
        {
            Assert.Equal(tensors.Select(t => t.Item1 + ".npy"), z.Entries.Select(e => e.FullName));
            Assert.All(z.Entries, e => Assert.Equal(compress, e.CompressedLength != e.Length));
        }
        var back = NpzFormat.Read(p);
        Assert.Equal(tensors.Select(t => t.Item1), back.Select(t => t.Name));
        for (int i = 0; i < tensors.Count; i++) AssertSameTensor(tensors[i].Item2, back[i].Tensor);
        // Deterministic: same tensors, same bytes.
        var p2 = _tmp.File("y.npz");
        NpzFormat.Write(p2, back, compress);
        Assert.Equal(File.ReadAllBytes(p), File.ReadAllBytes(p2));
    }

    [Theory]
    [InlineData("stored.npz")]
    [InlineData("deflated.npz")]
    public void ReadsArchivesMadeByPythonZipfile(string name)
    {
        var all = NpzFormat.Read(Fixture(name));
        Assert.Equal(["weight", "bias", "flag"], all.Select(x => x.Name));
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5 }, all[0].Tensor.AsSpan<float>().ToArray());
        Assert.Equal(new[] { 1L, -1L, 1L << 62 }, all[1].Tensor.AsSpan<long>().ToArray());
        Assert.Empty(all[2].Tensor.Shape);
        // Through a non-seekable stream as well.
        var again = NpzFormat.Read(new NonSeekable(new MemoryStream(FixtureBytes(name))), name);
        Assert.Equal(3, again.Count);
    }

    [Fact]
    public void RefusesAnEntryDeclaringMoreThanTheLimit()
    {
        var p = _tmp.File("bomb.npz");
        NpzFormat.Write(p, [("a", Sample(DType.Float32, [4]))]);
        var b = File.ReadAllBytes(p);
        // Patch the central directory's uncompressed size to 2^31 - 1 (> 1 GiB).
        int cd = IndexOf(b, [0x50, 0x4b, 0x01, 0x02]);
        Assert.True(cd > 0);
        BitConverter.GetBytes(int.MaxValue).CopyTo(b, cd + 24);
        File.WriteAllBytes(p, b);
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpzFormat.Read(p));
        Assert.Contains("MaxEntryBytes", ex.Message);
    }

    [Fact]
    public void RefusesSuspiciousCompressionRatios()
    {
        var p = _tmp.File("zeros.npz");
        NpzFormat.Write(p, [("z", Tensor.Zeros(DType.Float32, 64, 1024))], compress: true);
        Assert.Single(NpzFormat.Read(p)); // fine under the defaults (small)
        var strict = new NpzReadOptions { RatioCheckFloorBytes = 0, MaxCompressionRatio = 10 };
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpzFormat.Read(p, strict));
        Assert.Contains("ratio", ex.Message);
        var total = new NpzReadOptions { MaxTotalBytes = 1000 };
        AssertFails(ErrorCode.CorruptFile, p, () => NpzFormat.Read(p, total));
    }

    [Fact]
    public void DamagedCompressedData()
    {
        var b = FixtureBytes("deflated.npz");
        int lh = IndexOf(b, [0x50, 0x4b, 0x03, 0x04]);
        int nameLen = BitConverter.ToUInt16(b, lh + 26), extra = BitConverter.ToUInt16(b, lh + 28);
        int data = lh + 30 + nameLen + extra;
        for (int i = 0; i < 12; i++) b[data + i] ^= 0x5a;
        var p = _tmp.Write("damaged.npz", b);
        AssertFails(ErrorCode.CorruptFile, p, () => NpzFormat.Read(p));
    }

    [Fact]
    public void TruncatedAndGarbageArchives()
    {
        var b = FixtureBytes("stored.npz");
        var p = _tmp.Write("trunc.npz", b[..(b.Length / 2)]);
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpzFormat.Read(p));
        Assert.Contains("zip", ex.Message);
        var g = _tmp.Write("garbage.npz", [.. "this is not a zip file at all, just text"u8]);
        AssertFails(ErrorCode.CorruptFile, g, () => NpzFormat.Read(g));
        var e = _tmp.Write("empty.npz", []);
        AssertFails(ErrorCode.CorruptFile, e, () => NpzFormat.Read(e));
    }

    [Fact]
    public void MemberThatIsNotAnNpy()
    {
        var p = _tmp.File("odd.npz");
        using (var z = ZipFile.Open(p, ZipArchiveMode.Create))
        {
            using var s = z.CreateEntry("readme.txt").Open();
            s.Write("hello"u8);
        }
        var ex = AssertFails(ErrorCode.UnsupportedFormat, p, () => NpzFormat.Read(p));
        Assert.Contains("readme.txt", ex.Message);
    }

    [Fact]
    public void MemberWithABadHeaderNamesTheArchiveAndTheEntry()
    {
        var p = _tmp.File("bad.npz");
        using (var z = ZipFile.Open(p, ZipArchiveMode.Create))
        {
            using var s = z.CreateEntry("w.npy").Open();
            s.Write(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }", Floats(1f)));
        }
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpzFormat.Read(p));
        Assert.Contains("w.npy", ex.Message);
        Assert.Contains("4000", ex.Message);
    }

    [Fact]
    public void WriterRejectsDuplicatesAndBFloat16()
    {
        var p = _tmp.File("w.npz");
        var t = Sample(DType.Float32, [1]);
        AssertFails(ErrorCode.InvalidArgument, p, () => NpzFormat.Write(p, [("a", t), ("a", t)]));
        AssertFails(ErrorCode.UnsupportedDType, p, () => NpzFormat.Write(p, [("a", Sample(DType.BFloat16, [1]))]));
        Assert.False(File.Exists(p));
    }

    private static int IndexOf(byte[] b, byte[] pattern)
    {
        for (int i = 0; i + pattern.Length <= b.Length; i++)
            if (b.AsSpan(i, pattern.Length).SequenceEqual(pattern)) return i;
        return -1;
    }
}
