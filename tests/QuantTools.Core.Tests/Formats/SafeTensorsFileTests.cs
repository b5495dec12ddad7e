using System.Text;
using QuantTools.Core.Formats;
using QuantTools.Core.Tensors;
using static QuantTools.Core.Tests.Formats.FormatTestUtil;

namespace QuantTools.Core.Tests.Formats;

public class SafeTensorsFileTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    public static IEnumerable<object[]> GoldenFiles() =>
        Directory.EnumerateFiles(Fixtures.Path("golden"), "*.safetensors", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal)
            .Select(p => new object[] { Path.GetRelativePath(Fixtures.Path("golden"), p) });

    [Theory]
    [MemberData(nameof(GoldenFiles))]
    public void GoldenFilesRewriteByteIdentical(string relative)
    {
        var path = Fixtures.Path("golden", relative);
        var original = File.ReadAllBytes(path);
        var f = SafeTensorsFile.Open(path);
        var all = f.ReadAll();
        Assert.NotEmpty(all);
        Assert.Equal(original, SafeTensorsFile.ToBytes(all, f.Metadata));
    }

    [Fact]
    public void CraftedReferenceLayoutFile()
    {
        var path = Fixture("small.safetensors");
        var f = SafeTensorsFile.Open(path);
        Assert.Equal(["idx", "a.bias", "a.weight", "bf", "half", "mask"], f.Names);
        Assert.Equal(new Dictionary<string, string> { ["format"] = "pt", ["note"] = "crafted" }, f.Metadata);
        Assert.Equal(new[] { 1f, -2f, 0.25f, 3.5f }, f.GetFloats("a.weight"));
        Assert.Equal([2, 2], f.Get("a.weight").Shape);
        var bf = f.Get("bf");
        Assert.Equal(DType.BFloat16, bf.DType);
        Assert.Equal(new ushort[] { 0x3f80, 0xc000 }, bf.AsSpan<ushort>().ToArray());
        var bfw = f.Get("bf", widenHalf: true);
        Assert.Equal(DType.Float32, bfw.DType);
        Assert.Equal(new[] { 1f, -2f }, bfw.AsSpan<float>().ToArray());
        Assert.Equal(DType.Float16, f.Get("half").DType);
        Assert.Equal(new[] { 1f, 0.5f, -2f }, f.Get("half", widenHalf: true).AsSpan<float>().ToArray());
        Assert.Equal(new[] { 7L, -7L }, f.Get("idx").AsSpan<long>().ToArray());
        Assert.Equal(new[] { true, false, true }, f.Get("mask").AsSpan<bool>().ToArray());
        Assert.Equal(File.ReadAllBytes(path), SafeTensorsFile.ToBytes(f.ReadAll(), f.Metadata));
    }

    // Byte sequences from the reference library's own serializer tests.
    [Fact]
    public void MatchesTheReferenceSerializerBytes()
    {
        var t = new Tensor(DType.Float32, [1, 2, 3], new float[] { 0, 1, 2, 3, 4, 5 });
        var one = SafeTensorsFile.ToBytes([("attn.0", t)]);
        var json = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
        Assert.Equal(64, json.Length);
        Assert.Equal([.. BitConverter.GetBytes(64UL), .. Encoding.ASCII.GetBytes(json), .. t.AsBytes().ToArray()], one);

        var aligned = SafeTensorsFile.ToBytes([("attn0", t.Reshape(1, 1, 2, 3))]);
        var json2 = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ";
        Assert.Equal([.. BitConverter.GetBytes(72UL), .. Encoding.ASCII.GetBytes(json2), .. t.AsBytes().ToArray()], aligned);

        Assert.Equal(new byte[] { 8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32 }, SafeTensorsFile.ToBytes([]));
        var md = SafeTensorsFile.ToBytes([], new Dictionary<string, string> { ["framework"] = "pt" });
        Assert.Equal([.. BitConverter.GetBytes(40UL), .. Encoding.ASCII.GetBytes("{\"__metadata__\":{\"framework\":\"pt\"}}     ")], md);
    }

    [Fact]
    public void SortsByDtypeAlignmentThenNameLikeTheReference()
    {
        var tensors = new List<(string, Tensor)>
        {
            ("b", Sample(DType.Bool, [2])), ("u8", Sample(DType.UInt8, [1])), ("i8", Sample(DType.Int8, [1])),
            ("z", Sample(DType.Float32, [1])), ("a", Sample(DType.Float32, [1])), ("h", Sample(DType.Float16, [1])),
            ("bf", Sample(DType.BFloat16, [1])), ("i16", Sample(DType.Int16, [1])), ("i32", Sample(DType.Int32, [1])),
            ("d", Sample(DType.Float64, [1])), ("l", Sample(DType.Int64, [1])),
        };
        var f = SafeTensorsFile.FromBytes(SafeTensorsFile.ToBytes(tensors));
        Assert.Equal(["l", "d", "a", "z", "i32", "bf", "h", "i16", "i8", "u8", "b"], f.Names);
    }

    public static IEnumerable<object[]> DtypeShapeCases() =>
        from d in DenseTypes from s in Shapes select new object[] { d, s };

    [Theory]
    [MemberData(nameof(DtypeShapeCases))]
    public void RoundTripsEveryDtypeAndShape(DType dtype, int[] shape)
    {
        var t = Sample(dtype, shape);
        var path = _tmp.File("rt.safetensors");
        SafeTensorsFile.Write(path, [("t", t), ("other", Sample(DType.Float32, [3], seed: 2))]);
        var f = SafeTensorsFile.Open(path);
        AssertSameTensor(t, f.Get("t"));
        var lazy = SafeTensorsFile.Open(path, inMemoryLimit: 0); // the per-tensor disk path
        AssertSameTensor(t, lazy.Get("t"));
        if (dtype is DType.Float16 or DType.BFloat16)
        {
            var w = f.Get("t", widenHalf: true);
            Assert.Equal(DType.Float32, w.DType);
            for (int i = 0; i < t.Length; i++) Assert.Equal(t.GetDouble(i), w.GetDouble(i));
        }
    }

    [Fact]
    public void NamesAndMetadataNeedingEscapesSurvive()
    {
        var names = new[] { "quote\"d", "back\\slash", "tab\there", "nl\nx", "ctl\u0001", "unicodé/λ/💡", "slash/ok" };
        var md = new Dictionary<string, string> { ["z"] = "last-first", ["a"] = "\"q\"\n", ["ü"] = "λ" };
        var tensors = names.Select((n, i) => (n, Sample(DType.Float32, [i + 1]))).ToList();
        var bytes = SafeTensorsFile.ToBytes(tensors, md);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)BitConverter.ToUInt64(bytes));
        Assert.Contains("\"ctl\\u0001\"", header);
        Assert.Contains("\"nl\\nx\"", header);
        Assert.Contains("unicodé/λ/💡", header); // UTF-8 verbatim, '/' not escaped (serde_json style)
        var f = SafeTensorsFile.FromBytes(bytes);
        Assert.Equal(md.ToList(), f.Metadata!.ToList()); // order kept
        foreach (var (n, t) in tensors) AssertSameTensor(t, f.Get(n));
        Assert.Equal(bytes, SafeTensorsFile.ToBytes(f.ReadAll(), f.Metadata));
    }

    [Fact]
    public void WriterRejectsBadInput()
    {
        var p = _tmp.File("w.safetensors");
        var t = Sample(DType.Float32, [1]);
        AssertFails(ErrorCode.InvalidArgument, p, () => SafeTensorsFile.Write(p, [("x", t), ("x", t)]));
        AssertFails(ErrorCode.InvalidArgument, p, () => SafeTensorsFile.Write(p, [("__metadata__", t)]));
        Assert.False(File.Exists(p));
    }

    // ------------------------------------------------------------ bad files

    private static byte[] Craft(string json, byte[] data, ulong? claimed = null)
    {
        var h = Encoding.UTF8.GetBytes(json);
        return [.. BitConverter.GetBytes(claimed ?? (ulong)h.Length), .. h, .. data];
    }

    private string Bad(string json, byte[] data, ulong? claimed = null) =>
        _tmp.Write("bad.safetensors", Craft(json, data, claimed));

    private static string One(string dtype, string shape, string offsets) =>
        "{\"t\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}}";

    [Theory]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "JSON")] // truncated JSON
    [InlineData("[1,2]", "expected an object")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", "data_offsets")]
    [InlineData("{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", "data_offsets")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", "data_offsets")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", "malformed")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", "malformed")]
    [InlineData("{\"t\":7}", "malformed")]
    [InlineData("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "twice")]
    [InlineData("{\"__metadata__\":[1]}", "__metadata__")]
    public void MalformedHeaders(string json, string mentioned)
    {
        var p = Bad(json, new byte[8]);
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => SafeTensorsFile.Open(p));
        Assert.Contains(mentioned, ex.Message);
    }

    [Fact]
    public void UnknownDtype()
    {
        var p = Bad(One("C64", "[1]", "[0,8]"), new byte[8]);
        var ex = AssertFails(ErrorCode.UnsupportedDType, p, () => SafeTensorsFile.Open(p));
        Assert.Contains("C64", ex.Message);
        Assert.Contains("BF16", ex.Message);
    }

    [Theory]
    [InlineData("[-1]", "[0,8]")]
    [InlineData("[100000,100000,100000]", "[0,8]")]
    [InlineData("[9223372036854775807]", "[0,8]")]
    public void BadShapes(string shape, string offsets)
    {
        var p = Bad(One("F32", shape, offsets), new byte[8]);
        AssertFails(ErrorCode.CorruptFile, p, () => SafeTensorsFile.Open(p));
    }

    [Theory]
    [InlineData("[0,8]", 4, "ends at byte 8")] // truncated data
    [InlineData("[0,12]", 12, "needs 8 bytes")] // offsets disagree with shape
    [InlineData("[4,12]", 12, "starts at data byte 4")] // gap at the front
    [InlineData("[0,8]", 12, "cover 8 data bytes but 12")] // trailing bytes
    [InlineData("[0,9223372036854775807]", 8, "needs 8 bytes")]
    public void OffsetsThatDisagreeWithTheFile(string offsets, int dataBytes, string mentioned)
    {
        var p = Bad(One("F32", "[2]", offsets), new byte[dataBytes]);
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => SafeTensorsFile.Open(p));
        Assert.Contains(mentioned, ex.Message);
    }

    [Fact]
    public void OverlappingTensors()
    {
        var json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
        var p = Bad(json, new byte[8]);
        AssertFails(ErrorCode.CorruptFile, p, () => SafeTensorsFile.Open(p));
    }

    [Theory]
    [InlineData(1000UL, "only")]
    [InlineData(ulong.MaxValue, "limit")]
    [InlineData(200_000_000UL, "limit")]
    public void HeaderLengthThatLies(ulong claimed, string mentioned)
    {
        var p = Bad(One("F32", "[2]", "[0,8]"), new byte[8], claimed);
        var ex = AssertFails(ErrorCode.CorruptFile, p, () => SafeTensorsFile.Open(p));
        Assert.Contains(mentioned, ex.Message);
        var lazy = Assert.Throws<QuantToolsException>(() => SafeTensorsFile.Open(p, inMemoryLimit: 0));
        Assert.Equal(ErrorCode.CorruptFile, lazy.Code);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 1, 2, 3 })]
    public void ShorterThanTheLengthPrefix(byte[] bytes)
    {
        var p = _tmp.Write("tiny.safetensors", bytes);
        AssertFails(ErrorCode.CorruptFile, p, () => SafeTensorsFile.Open(p));
        AssertFails(ErrorCode.CorruptFile, p, () => SafeTensorsFile.Open(p, inMemoryLimit: 0));
    }

    [Fact]
    public void InvalidUtf8Header()
    {
        var b = Craft(One("F32", "[2]", "[0,8]"), new byte[8]);
        b[8 + 2] = 0xff;
        var p = _tmp.Write("utf.safetensors", b);
        AssertFails(ErrorCode.CorruptFile, p, () => SafeTensorsFile.Open(p));
    }

    [Fact]
    public void MissingTensorAndMissingFile()
    {
        var p = _tmp.File("t.safetensors");
        SafeTensorsFile.Write(p, [("a", Sample(DType.Int32, [2]))]);
        AssertFails(ErrorCode.InvalidArgument, p, () => SafeTensorsFile.Open(p).Get("b"));
        var missing = _tmp.File("none.safetensors");
        AssertFails(ErrorCode.IoError, missing, () => SafeTensorsFile.Open(missing));
    }

    [Fact]
    public void FileThatShrinksAfterOpeningIsReportedOnGet()
    {
        var p = _tmp.File("shrink.safetensors");
        SafeTensorsFile.Write(p, [("a", Sample(DType.Float64, [64]))]);
        var f = SafeTensorsFile.Open(p, inMemoryLimit: 0);
        using (var fs = new FileStream(p, FileMode.Open)) fs.SetLength(fs.Length - 9);
        AssertFails(ErrorCode.CorruptFile, p, () => f.Get("a"));
    }
}
