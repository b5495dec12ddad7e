using System.Text;
using QuantTools.Core.Formats;
using QuantTools.Core.Tensors;
using static QuantTools.Core.Tests.Formats.FormatTestUtil;

namespace QuantTools.Core.Tests.Formats;

public class NpyFormatTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    public static IEnumerable<object[]> DtypeShapeCases() =>
        from d in DenseTypes where d != DType.BFloat16
        from s in Shapes
        select new object[] { d, s };

    [Theory]
    [MemberData(nameof(DtypeShapeCases))]
    public void RoundTripsEveryDtypeShapeAndLayout(DType dtype, int[] shape)
    {
        var t = Sample(dtype, shape);
        foreach (var o in new[]
                 {
                     new NpyWriteOptions(),
                     new NpyWriteOptions { FortranOrder = true },
                     new NpyWriteOptions { BigEndian = true },
                     new NpyWriteOptions { FortranOrder = true, BigEndian = true, FormatVersion = 2 },
                     new NpyWriteOptions { FormatVersion = 3 },
                 })
        {
            var ms = new MemoryStream();
            NpyFormat.Write(ms, t, o);
            var bytes = ms.ToArray();
            Assert.Equal(0, (bytes.Length - t.Length * dtype.ElementSize()) % 64); // data starts 64-aligned
            var f = NpyFormat.ReadFile(new MemoryStream(bytes), "mem.npy");
            AssertSameTensor(t, f.Tensor);
            Assert.Equal(o.FortranOrder, f.FortranOrder);
            Assert.Equal(o.FormatVersion ?? 1, f.FormatVersion);
            var again = new MemoryStream();
            NpyFormat.WriteFile(again, f);
            Assert.Equal(bytes, again.ToArray());
        }
    }

    [Fact]
    public void WritesNumpysHeaderLayout()
    {
        // np.save of np.array([1., 2., 3.]): magic, v1.0, header length 0x76, data at byte 128.
        var ms = new MemoryStream();
        NpyFormat.Write(ms, new Tensor(DType.Float64, [3], new double[] { 1, 2, 3 }));
        var b = ms.ToArray();
        Assert.Equal(128 + 24, b.Length);
        Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, 0x76, 0 }, b[..10]);
        var header = Encoding.ASCII.GetString(b, 10, 118);
        Assert.Equal("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }" + new string(' ', 60) + "\n", header);
    }

    [Theory]
    [InlineData("f4_c_v1.npy", 1, false, "<f4")]
    [InlineData("f8_fortran_v1.npy", 1, true, "<f8")]
    [InlineData("i4_be_v1.npy", 1, false, ">i4")]
    [InlineData("i8_v2.npy", 2, false, "<i8")]
    [InlineData("f2_v3.npy", 3, false, "<f2")]
    [InlineData("b1_scalar.npy", 1, false, "|b1")]
    [InlineData("u1_empty.npy", 1, false, "|u1")]
    [InlineData("i2_be_fortran_3d.npy", 1, true, ">i2")]
    public void CraftedNumpyFilesRewriteByteIdentical(string name, int version, bool fortran, string descr)
    {
        var original = FixtureBytes(name);
        var f = NpyFormat.ReadFile(Fixture(name));
        Assert.Equal(version, f.FormatVersion);
        Assert.Equal(fortran, f.FortranOrder);
        Assert.Equal(descr, f.Descr);
        Assert.Equal(descr[0], f.ByteOrder);
        var path = _tmp.File(name);
        NpyFormat.WriteFile(path, f);
        Assert.Equal(original, File.ReadAllBytes(path));
        // Without the record, the same options reproduce it too.
        var ms = new MemoryStream();
        NpyFormat.Write(ms, f.Tensor, new NpyWriteOptions { FormatVersion = version, FortranOrder = fortran, BigEndian = descr[0] == '>' });
        Assert.Equal(original, ms.ToArray());
    }

    [Fact]
    public void CraftedFilesHoldTheExpectedValues()
    {
        var f4 = NpyFormat.Read(Fixture("f4_c_v1.npy"));
        Assert.Equal([2, 3], f4.Shape);
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5 }, f4.AsSpan<float>().ToArray());

        var f8 = NpyFormat.Read(Fixture("f8_fortran_v1.npy")); // Fortran on disk, C-contiguous in memory
        Assert.Equal(new double[] { 0, 1, 2, 3, 4, 5 }, f8.AsSpan<double>().ToArray());

        var i4 = NpyFormat.Read(Fixture("i4_be_v1.npy"));
        Assert.Equal(new[] { 1, -2, 300000, int.MinValue }, i4.AsSpan<int>().ToArray());

        var i8 = NpyFormat.Read(Fixture("i8_v2.npy"));
        Assert.Equal(new[] { 1L, -1L, 1L << 62 }, i8.AsSpan<long>().ToArray());

        var f2 = NpyFormat.Read(Fixture("f2_v3.npy"));
        Assert.Equal(new[] { (Half)0.5, (Half)(-1.0), Half.MaxValue, (Half)0 }, f2.AsSpan<Half>().ToArray());

        var b1 = NpyFormat.Read(Fixture("b1_scalar.npy"));
        Assert.Empty(b1.Shape);
        Assert.True(b1.AsSpan<bool>()[0]);

        var u1 = NpyFormat.Read(Fixture("u1_empty.npy"));
        Assert.Equal([0, 3], u1.Shape);

        var i2 = NpyFormat.Read(Fixture("i2_be_fortran_3d.npy"));
        var v = i2.AsSpan<short>();
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                for (int k = 0; k < 2; k++)
                    Assert.Equal(i + 2 * j + 4 * k, v[i * 4 + j * 2 + k]);
    }

    [Fact]
    public void ReadsOtherwiseValidHeaderSpellings()
    {
        // Key order, double quotes, no trailing comma, '=' byte order, Python 2 long suffix, no growth padding.
        var b = Npy("{\"shape\": (2L,), \"fortran_order\": False, \"descr\": \"=f4\"}", Floats(1.5f, -2f));
        var f = NpyFormat.ReadFile(new MemoryStream(b), "x.npy");
        Assert.Equal(new[] { 1.5f, -2f }, f.Tensor.AsSpan<float>().ToArray());
        Assert.Equal('=', f.ByteOrder);
        // Non-seekable streams take the buffered path.
        var t = NpyFormat.Read(new NonSeekable(new MemoryStream(b)), "pipe");
        Assert.Equal(new[] { 1.5f, -2f }, t.AsSpan<float>().ToArray());
    }

    [Fact]
    public void BoolBytesOtherThanOneReadAsTrue()
    {
        var f = NpyFormat.Read(new MemoryStream(Npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", [0, 1, 7])), "b.npy");
        Assert.Equal(new[] { false, true, true }, f.AsSpan<bool>().ToArray());
        Assert.Equal(new byte[] { 0, 1, 1 }, f.AsBytes().ToArray());
    }

    // ------------------------------------------------------------ bad files

    private string Bad(string header, byte[] data, int version = 1) => _tmp.Write("bad.npy", Npy(header, data, version));

    private const string F4x2 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";

    [Fact]
    public void TruncatedData()
    {
        var p = Bad(F4x2, Floats(1f)[..3]);
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpyFormat.Read(p));
        Assert.Contains("needs 8 data bytes", ex.Message);
        Assert.Contains("3", ex.Message);
    }

    [Fact]
    public void TruncatedDataOnANonSeekableStream()
    {
        var b = Npy(F4x2, Floats(1f));
        var ex = Assert.Throws<QuantToolsException>(() => NpyFormat.Read(new NonSeekable(new MemoryStream(b)), "pipe.npy"));
        Assert.Equal(ErrorCode.CorruptFile, ex.Code);
        Assert.Equal("pipe.npy", ex.Target);
    }

    [Fact]
    public void HeaderLengthBeyondTheFile()
    {
        var b = Npy(F4x2, Floats(1f, 2f));
        b[8] = 0xff; b[9] = 0xff; // claims 65535 header bytes
        var p = _tmp.Write("lie.npy", b);
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpyFormat.Read(p));
        Assert.Contains("65535", ex.Message);
    }

    [Fact]
    public void HugeHeaderLengthIsRefusedBeforeAllocating()
    {
        var b = Npy(F4x2, Floats(1f, 2f), version: 2);
        b[8] = b[9] = b[10] = b[11] = 0xff;
        var p = _tmp.Write("huge.npy", b);
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpyFormat.Read(p));
        Assert.Contains("4294967295", ex.Message);
        // also on a stream whose length is unknown
        var ex2 = Assert.Throws<QuantToolsException>(() => NpyFormat.Read(new NonSeekable(new MemoryStream(b)), "pipe"));
        Assert.Equal(ErrorCode.CorruptFile, ex2.Code);
    }

    [Fact]
    public void ShapeLargerThanTheData()
    {
        var p = Bad("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000), }", Floats(1f, 2f));
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpyFormat.Read(p));
        Assert.Contains("8000000000", ex.Message);
    }

    [Fact]
    public void HugeShapeOnAStreamOfUnknownLengthDoesNotAllocateIt()
    {
        // 2^31-1 float64 elements would be 16 GiB; only the bytes that really arrive are buffered.
        var b = Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2147483647,), }", new byte[4096]);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<QuantToolsException>(() => NpyFormat.Read(new NonSeekable(new MemoryStream(b)), "pipe.npy"));
        Assert.Equal(ErrorCode.CorruptFile, ex.Code);
        Assert.Contains("17179869176", ex.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
    }

    [Theory]
    [InlineData("'<c8'")]
    [InlineData("'<u4'")]
    [InlineData("'<U10'")]
    [InlineData("'|O'")]
    [InlineData("[('a', '<f4'), ('b', '<i4')]")]
    [InlineData("'bfloat16'")]
    public void UnknownDtypes(string descr)
    {
        var p = Bad("{'descr': " + descr + ", 'fortran_order': False, 'shape': (2,), }", Floats(1f, 2f));
        var ex = AssertFails(ErrorCode.UnsupportedDType, p, () => NpyFormat.Read(p));
        Assert.Contains("f4", ex.Message); // says what is supported
    }

    [Theory]
    [InlineData("(100000, 100000, 100000)")]
    [InlineData("(9223372036854775807,)")]
    [InlineData("(99999999999999999999999,)")]
    [InlineData("(4294967296, 0)")]
    public void ShapesWhoseProductOverflows(string shape)
    {
        var p = Bad("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }", Floats(1f, 2f));
        AssertFails(ErrorCode.CorruptFile, p, () => NpyFormat.Read(p));
    }

    [Fact]
    public void NegativeDimension()
    {
        var p = Bad("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2), }", Floats(1f, 2f));
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpyFormat.Read(p));
        Assert.Contains("negative", ex.Message);
    }

    [Theory]
    [InlineData("[1, 2, 3]", "not a dict")]
    [InlineData("'descr'", "not a dict")]
    [InlineData("{'descr': '<f4', 'shape': (2,), }", "fortran_order")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, }", "shape")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }", "extra")]
    [InlineData("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", "fortran_order")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", "shape is a list")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,), }", "integers")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (True,), }", "bool")]
    [InlineData("{'descr': __import__('os').system('echo hi'), 'fortran_order': False, 'shape': (2,), }", "__import__")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", "expected a string key")]
    [InlineData("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "twice")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", "after the literal")]
    [InlineData("{'a': ((((((((((((((((((((1,),),),),),),),),),),),),),),),),),),),)}", "nesting")]
    public void MalformedHeaders(string header, string mentioned)
    {
        var p = Bad(header, Floats(1f, 2f));
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpyFormat.Read(p));
        Assert.Contains(mentioned, ex.Message);
    }

    [Fact]
    public void InvalidUtf8InAVersion3Header()
    {
        var b = Npy(F4x2, Floats(1f, 2f), version: 3);
        b[12 + 3] = 0xc3; b[12 + 4] = 0x28; // inside 'descr'
        var p = _tmp.Write("utf.npy", b);
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => NpyFormat.Read(p));
        Assert.Contains("UTF-8", ex.Message);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0, 0, 0 })]
    [InlineData(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M' })]
    public void GarbageIsNotAnNpyFile(byte[] bytes)
    {
        var p = _tmp.Write("garbage.npy", bytes);
        var ex = AssertFails(ErrorCode.UnsupportedFormat, p, () => NpyFormat.Read(p));
        Assert.Contains("NUMPY", ex.Message);
    }

    [Theory]
    [InlineData(4, 0)]
    [InlineData(1, 1)]
    [InlineData(0, 0)]
    public void UnknownFormatVersion(byte major, byte minor)
    {
        var b = Npy(F4x2, Floats(1f, 2f));
        b[6] = major; b[7] = minor;
        var p = _tmp.Write("ver.npy", b);
        var ex = AssertFails(ErrorCode.UnsupportedFormat, p, () => NpyFormat.Read(p));
        Assert.Contains($"{major}.{minor}", ex.Message);
        Assert.Contains("1.0, 2.0 or 3.0", ex.Message);
    }

    [Fact]
    public void TruncatedInsideThePrefix()
    {
        var p = _tmp.Write("short.npy", Npy(F4x2, [])[..9]);
        AssertFails(ErrorCode.CorruptFile, p, () => NpyFormat.Read(p));
    }

    [Fact]
    public void MissingFileIsAnIoError()
    {
        var p = _tmp.File("nope.npy");
        AssertFails(ErrorCode.IoError, p, () => NpyFormat.Read(p));
    }

    [Fact]
    public void BFloat16CannotBeWritten()
    {
        var p = _tmp.File("bf.npy");
        var ex = AssertFails(ErrorCode.UnsupportedDType, p, () => NpyFormat.Write(p, Sample(DType.BFloat16, [2])));
        Assert.Contains("bfloat16", ex.Message);
        Assert.False(File.Exists(p));
    }
}

/// <summary>Hides Length/Seek, like a pipe or a decompression stream.</summary>
internal sealed class NonSeekable(Stream inner) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, Math.Min(count, 7));
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
