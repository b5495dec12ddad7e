using System.Buffers.Binary;
using System.Text;
using QuantTools.Core.Formats.Pickle;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Checkpoints;

public class HostileInputTests
{
    private static QuantToolsException LoadFails(byte[] content, string name = "bad.pt")
    {
        using var dir = new TempDir();
        var path = dir.File(name, content);
        var e = Assert.Throws<QuantToolsException>(() => TorchCheckpoint.Load(path));
        Assert.Equal(path, e.Target);
        return e;
    }

    private static object? Unpickle(byte[] b) => Unpickler.Load(b, new TorchPickleResolver(null, null, LoadBudget.ForFile(b.Length)));

    // ------------------------------------------------------------ code execution attempts
    public static TheoryData<string, string> EvilGlobals() => new()
    {
        { "os", "system" }, { "posix", "system" }, { "nt", "system" }, { "builtins", "eval" }, { "builtins", "exec" },
        { "__builtin__", "eval" }, { "subprocess", "Popen" }, { "__main__", "Net" }, { "torch.storage", "_load_from_bytes" },
        { "torch.nn.modules.conv", "Conv2d" }, { "numpy.core.multiarray", "_reconstruct" }, { "some.unknown", "thing" },
    };

    [Theory]
    [MemberData(nameof(EvilGlobals))]
    public void ForbiddenGlobalInAStateDictFailsNamingItAndRunsNothing(string module, string name)
    {
        using var dir = new TempDir();
        var marker = Path.Combine(dir.Path, "pwned");
        var evil = new PickleBuilder().Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce()
            .Str("x").Global(module, name).Str($"touch {marker}").Tuple1().Reduce().SetItem().Stop().ToArray();
        var path = dir.File("evil.pt", Crafted.Zip(evil));
        var e = Assert.Throws<QuantToolsException>(() => TorchCheckpoint.Load(path));
        Assert.Equal(ErrorCode.NotSupported, e.Code);
        Assert.Contains($"'{module}.{name}'", e.Message);
        Assert.Contains("data.pkl", e.Message);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void StackGlobalProtocol4AndInstProtocol0AreCheckedToo()
    {
        // protocol 4: FRAME, SHORT_BINUNICODE module/name, STACK_GLOBAL, MEMOIZE
        var p4 = new List<byte> { 0x80, 4, 0x95 };
        p4.AddRange(new byte[8]);
        void Short(string s) { p4.Add(0x8c); p4.Add((byte)s.Length); p4.AddRange(Encoding.ASCII.GetBytes(s)); }
        Short("builtins"); Short("eval"); p4.Add(0x93); p4.Add(0x94);
        Short("print(1)"); p4.Add(0x85); p4.Add((byte)'R'); p4.Add((byte)'.');
        BinaryPrimitives.WriteInt64LittleEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(p4).Slice(3, 8), p4.Count - 11);
        var e = Assert.Throws<QuantToolsException>(() => Unpickle(p4.ToArray()));
        Assert.Contains("'builtins.eval'", e.Message);

        // protocol 0: INST posix system
        var p0 = Encoding.ASCII.GetBytes("(S'echo hi'\nipos" + "ix\nsystem\np0\n.");
        e = Assert.Throws<QuantToolsException>(() => Unpickle(p0));
        Assert.Contains("'posix.system'", e.Message);
    }

    [Fact]
    public void ForbiddenGlobalInALegacyFileFails()
    {
        var evil = new PickleBuilder().Proto().Global("os", "system").Str("rm -rf /").Tuple1().Reduce().Stop().ToArray();
        var keys = new PickleBuilder().Proto().EmptyList().Stop().ToArray();
        var e = LoadFails([.. Crafted.LegacyHeader(), .. evil, .. keys]);
        Assert.Contains("'os.system'", e.Message);
    }

    [Fact]
    public void AllowedBuiltinsAreHarmlessValues()
    {
        var b = new PickleBuilder().Proto().Global("builtins", "set").EmptyList().Mark().Int(3).Int(1).Appends().Tuple1().Reduce()
            .Stop().ToArray();
        var s = Assert.IsType<PySet>(Unpickle(b));
        Assert.Equal(new object?[] { 3L, 1L }, s.ToArray());
    }

    // ------------------------------------------------------------ order
    [Fact]
    public void DictAndOrderedDictKeepInsertionOrder()
    {
        var keys = new[] { "zeta", "alpha", "mid", "beta", "0", "10", "2" };
        foreach (var ordered in new[] { false, true })
        {
            var p = new PickleBuilder().Proto();
            if (ordered) p.Global("collections", "OrderedDict").EmptyTuple().Reduce();
            else p.EmptyDict();
            p.Mark();
            for (int i = 0; i < keys.Length; i++) p.Str(keys[i]).Int(i);
            p.SetItems().Str("alpha").Int(99).SetItem().Stop(); // reassignment keeps the position
            var d = Assert.IsType<PyDict>(Unpickle(p.ToArray()));
            Assert.Equal(ordered, d.IsOrderedDict);
            Assert.Equal(keys, d.Keys.Cast<string>());
            Assert.Equal(99L, d["alpha"]);
        }
    }

    [Fact]
    public void GoldenStateDictKeysComeInTheRecordedOrder()
    {
        var json = GoldenCheckpointTests.Case(Fixtures.Core("models", "relu6_eager.json"));
        var recorded = json.GetProperty("state_dict_keys").EnumerateObject().Select(p => p.Name).ToList();
        var root = Assert.IsType<PyDict>(TorchCheckpoint.Load(Fixtures.Core("models", "relu6_eager.state_dict.pt")).Root);
        Assert.Equal(recorded, root.Keys.Cast<string>());
    }

    // ------------------------------------------------------------ resource abuse
    [Fact]
    public void DeepNestingFailsClearly()
    {
        const int n = 100_000;
        // a chain of lists without MARKs: ]]]...]aaa...a.
        var chain = new byte[2 * n + 1];
        chain.AsSpan(0, n).Fill((byte)']');
        chain.AsSpan(n, n - 1).Fill((byte)'a');
        chain[^2] = (byte)'.';
        var e = Assert.Throws<QuantToolsException>(() => Unpickle(chain[..^1]));
        Assert.Contains("nested deeper", e.Message);
        // MARK nesting: (((((...
        var marks = Enumerable.Repeat((byte)'(', n).Append((byte)'.').ToArray();
        e = Assert.Throws<QuantToolsException>(() => Unpickle(marks));
        Assert.Contains("MARK", e.Message);
        // TUPLE1 chain
        var tuples = new[] { (byte)'N' }.Concat(Enumerable.Repeat((byte)0x85, n)).Append((byte)'.').ToArray();
        e = Assert.Throws<QuantToolsException>(() => Unpickle(tuples));
        Assert.Contains("nested deeper", e.Message);
        // and through the front door
        var le = LoadFails(Crafted.Zip(tuples));
        Assert.Equal(ErrorCode.CorruptFile, le.Code);
    }

    [Theory]
    [InlineData(new byte[] { 0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3 }, "remain")] // LONG4 2 GiB
    [InlineData(new byte[] { 0x80, 4, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x40, 1, 2 }, "remain")] // BINBYTES8 2^62
    [InlineData(new byte[] { 0x80, 4, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1 }, "remain")] // BINUNICODE8 2^64-1
    [InlineData(new byte[] { 0x80, 2, (byte)'X', 0xff, 0xff, 0xff, 0xff, 1 }, "remain")] // BINUNICODE 4 GiB
    [InlineData(new byte[] { 0x80, 4, 0x95, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, (byte)'N', (byte)'.' }, "FRAME")]
    [InlineData(new byte[] { 0x80, 2, (byte)'j', 0xff, 0xff, 0xff, 0xff, (byte)'.' }, "memo")] // LONG_BINGET never stored
    [InlineData(new byte[] { 0x80, 2, (byte)'N', (byte)'r', 0xff, 0xff, 0xff, 0xff, (byte)'.' }, null)] // sparse memo is fine
    [InlineData(new byte[] { 0x80, 2, (byte)'a', (byte)'.' }, "underflow")]
    [InlineData(new byte[] { 0x80, 2, (byte)'N', (byte)'N', (byte)'.' }, "STOP")]
    [InlineData(new byte[] { 0x80, 2, 0xff }, "opcode")]
    [InlineData(new byte[] { 0x80, 9 }, "protocol")]
    [InlineData(new byte[] { 0x80, 2, (byte)'N' }, "remain")] // no STOP
    public void OversizedLengthsAndBrokenPicklesFailClearly(byte[] pickle, string? message)
    {
        if (message is null)
        {
            Unpickle(pickle);
            return;
        }
        var e = Assert.Throws<QuantToolsException>(() => Unpickle(pickle));
        Assert.Contains(message, e.Message);
    }

    // ------------------------------------------------------------ archives
    [Fact]
    public void WrongMagicFailsNamingTheExpectedForms()
    {
        foreach (var content in new[] { Array.Empty<byte>(), "hello world, not a checkpoint"u8.ToArray(), new byte[] { 0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4 } })
        {
            var e = LoadFails(content);
            Assert.Equal(ErrorCode.UnsupportedFormat, e.Code);
            Assert.Contains("torch.save zip", e.Message);
            Assert.Contains("TorchScript", e.Message);
            Assert.Contains("legacy", e.Message);
        }
        var zipWithoutPickle = Crafted.Zip([], prefix: "x");
        using var ms = new MemoryStream(zipWithoutPickle);
        Assert.Equal(ErrorCode.UnsupportedFormat, LoadFails(Crafted.Zip(new PickleBuilder().Proto().None().Stop().ToArray(), prefix: "a/b")).Code);
    }

    [Fact]
    public void TruncatedArchivesFail()
    {
        var full = File.ReadAllBytes(Fixtures.Core("models", "relu6_eager.state_dict.pt"));
        foreach (var cut in new[] { 3, 100, full.Length / 2, full.Length - 30, full.Length - 1 })
            Assert.Equal(ErrorCode.CorruptFile, LoadFails(full[..cut]).Code);
        var legacy = File.ReadAllBytes(Fixtures.Core("models", "relu6_eager.state_dict.legacy.pt"));
        foreach (var cut in new[] { 20, 200, legacy.Length / 2, legacy.Length - 5 })
            Assert.Equal(ErrorCode.CorruptFile, LoadFails(legacy[..cut]).Code);
    }

    [Fact]
    public void AStorageSmallerThanTheViewFails()
    {
        // view of 10 floats over a storage of 4
        var pkl = new PickleBuilder().Proto().EmptyDict().Str("w").Tensor("FloatStorage", "0", 4, 0, [10], [1]).SetItem().Stop().ToArray();
        var e = LoadFails(Crafted.Zip(pkl, new() { ["0"] = Crafted.Floats(1, 2, 3, 4) }));
        Assert.Contains("holds only 4 elements", e.Message);
        // offset pushes the view out
        pkl = new PickleBuilder().Proto().EmptyDict().Str("w").Tensor("FloatStorage", "0", 4, 2, [2, 2], [2, 1]).SetItem().Stop().ToArray();
        e = LoadFails(Crafted.Zip(pkl, new() { ["0"] = Crafted.Floats(1, 2, 3, 4) }));
        Assert.Contains("storage '0'", e.Message);
        // storage declares more elements than its entry has bytes
        pkl = new PickleBuilder().Proto().EmptyDict().Str("w").Tensor("FloatStorage", "0", 1_000_000_000, 0, [4], [1]).SetItem().Stop().ToArray();
        e = LoadFails(Crafted.Zip(pkl, new() { ["0"] = Crafted.Floats(1, 2, 3, 4) }));
        Assert.Contains("holds 16 bytes", e.Message);
        // huge shape with stride 0 over a tiny storage is not expanded
        pkl = new PickleBuilder().Proto().EmptyDict().Str("w").Tensor("FloatStorage", "0", 4, 0, [1 << 30], [0]).SetItem().Stop().ToArray();
        e = LoadFails(Crafted.Zip(pkl, new() { ["0"] = Crafted.Floats(1, 2, 3, 4) }));
        Assert.Contains("refusing", e.Message);
        // missing storage entry
        pkl = new PickleBuilder().Proto().EmptyDict().Str("w").Tensor("FloatStorage", "7", 4, 0, [4], [1]).SetItem().Stop().ToArray();
        e = LoadFails(Crafted.Zip(pkl, new() { ["0"] = Crafted.Floats(1, 2, 3, 4) }));
        Assert.Contains("archive/data/7", e.Message);
    }

    [Fact]
    public void DeclaredSizesLargerThanTheFileFail()
    {
        var full = File.ReadAllBytes(Fixtures.Core("models", "relu6_eager.state_dict.pt"));
        // every central directory entry: set compressed and uncompressed size to 0x7fffffff, then to 0xffffffff with no ZIP64 field
        foreach (uint size in new[] { 0x7fffffffu, 0xffffffffu, 0x10000u })
        {
            var bad = (byte[])full.Clone();
            int cd = FindCentralDirectory(bad);
            BinaryPrimitives.WriteUInt32LittleEndian(bad.AsSpan(cd + 20), size);
            BinaryPrimitives.WriteUInt32LittleEndian(bad.AsSpan(cd + 24), size);
            var e = LoadFails(bad);
            Assert.Equal(ErrorCode.CorruptFile, e.Code);
        }
        // end-of-central-directory pointing past the end
        var eocdBad = (byte[])full.Clone();
        int eocd = LastIndexOf(eocdBad, [0x50, 0x4b, 0x05, 0x06]);
        int eocd64 = LastIndexOf(eocdBad, [0x50, 0x4b, 0x06, 0x06]); // torch writes ZIP64 records
        if (eocd64 >= 0) BinaryPrimitives.WriteUInt64LittleEndian(eocdBad.AsSpan(eocd64 + 48), 0x7ffffff0);
        else BinaryPrimitives.WriteUInt32LittleEndian(eocdBad.AsSpan(eocd + 16), 0x7ffffff0);
        Assert.Contains("central directory", LoadFails(eocdBad).Message);
        // legacy: a storage element count far beyond the file
        var legacy = File.ReadAllBytes(Fixtures.Core("models", "relu6_eager.state_dict.legacy.pt"));
        var keysEnd = LegacyDataStart(legacy);
        BinaryPrimitives.WriteInt64LittleEndian(legacy.AsSpan(keysEnd), long.MaxValue / 2);
        Assert.Contains("remain in the file", LoadFails(legacy).Message);
    }

    [Fact]
    public void Zip64EntriesWithAbsurdSizesFail()
    {
        var pkl = new PickleBuilder().Proto().EmptyDict().Stop().ToArray();
        var zip = Crafted.Zip(pkl);
        int cd = FindCentralDirectory(zip);
        // mark sizes as ZIP64 and append no extra: then sizes stay 0xffffffff -> past the end of the file
        BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(cd + 20), 0xffffffff);
        Assert.Equal(ErrorCode.CorruptFile, LoadFails(zip).Code);
    }

    internal static int FindCentralDirectory(byte[] b) => IndexOf(b, [0x50, 0x4b, 0x01, 0x02]);

    private static int IndexOf(byte[] b, byte[] pat) => b.AsSpan().IndexOf(pat);
    private static int LastIndexOf(byte[] b, byte[] pat) => b.AsSpan().LastIndexOf(pat);

    /// <summary>Offset of the first storage's element count in a legacy file (after the five pickles).</summary>
    private static int LegacyDataStart(byte[] file)
    {
        int pos = 0;
        for (int i = 0; i < 5; i++)
        {
            var u = new Unpickler(file, pos, file.Length - pos, new TorchPickleResolver(null, null, LoadBudget.ForFile(file.Length)));
            u.Load();
            pos = u.Position;
        }
        return pos;
    }

    // ------------------------------------------------------------ tensors built from crafted archives
    [Fact]
    public void NonContiguousViewsAndBigEndianStoragesMaterialize()
    {
        // a 2x3 view with strides (1, 2) over 6 floats = the transpose of [[0,1],[2,3],[4,5]]
        var pkl = new PickleBuilder().Proto().EmptyDict().Str("t").Tensor("FloatStorage", "0", 6, 0, [2, 3], [1, 2]).SetItem().Stop().ToArray();
        using var dir = new TempDir();
        var ck = TorchCheckpoint.Load(dir.File("t.pt", Crafted.Zip(pkl, new() { ["0"] = Crafted.Floats(0, 1, 2, 3, 4, 5) })));
        var t = ck.StateDict.GetTensor("t");
        Assert.Equal([2, 3], t.Shape);
        Assert.Equal(new float[] { 0, 2, 4, 1, 3, 5 }, (float[])t.Data);

        var be = Crafted.Floats(1.5f, -2f, 3.25f).Chunk(4).SelectMany(c => c.Reverse()).ToArray();
        pkl = new PickleBuilder().Proto().EmptyDict().Str("t").Tensor("FloatStorage", "0", 3, 1, [2], [1]).SetItem().Stop().ToArray();
        ck = TorchCheckpoint.Load(dir.File("b.pt", Crafted.Zip(pkl, new() { ["0"] = be }, byteorder: "big", prefix: "any_name")));
        Assert.True(ck.BigEndian);
        Assert.Equal("any_name", ck.ArchiveName);
        Assert.Equal(new float[] { -2f, 3.25f }, (float[])ck.StateDict.GetTensor("t").Data);
    }

    [Fact]
    public void FloatQParamsPerChannelTensorsRebuild()
    {
        // qtensor quint8 [2, 3] per-channel axis 0 with float32 scales and float zero points
        var p = new PickleBuilder().Proto().EmptyDict().Str("q")
            .Global("torch._utils", "_rebuild_qtensor").Mark().Storage("QUInt8Storage", "0", 6).Int(0).Ints(2, 3).Ints(3, 1)
            .Mark().Global("torch", "per_channel_affine_float_qparams")
            .Tensor("FloatStorage", "1", 2, 0, [2], [1]).Tensor("FloatStorage", "2", 2, 0, [2], [1]).Int(0).Tuple()
            .False().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce().SetItem().Stop().ToArray();
        using var dir = new TempDir();
        var ck = TorchCheckpoint.Load(dir.File("q.pt", Crafted.Zip(p, new()
        {
            ["0"] = [1, 2, 3, 4, 5, 6], ["1"] = Crafted.Floats(0.5f, 0.25f), ["2"] = Crafted.Floats(1.5f, -3f),
        })));
        var q = ck.StateDict.GetQTensor("q");
        Assert.Equal(QScheme.PerChannelAffineFloatQParams, q.QParams.QScheme);
        Assert.Equal(DType.QUInt8, q.DType);
        Assert.Equal(new[] { 0.5, 0.25 }, q.QParams.Scales);
        Assert.Equal(new[] { 1.5f, -3f }, q.QParams.FloatZeroPoints);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6 }, (byte[])q.IntRepr.Data);
    }

    // ------------------------------------------------------------ packed params state versions
    private static QTensor Weight() =>
        new(new Tensor(DType.Int8, [2, 1, 1, 1], new sbyte[] { 3, -4 }), QParams.PerTensor(0.1, 0, DType.QInt8));

    private static PickleObject Packed(object?[] state)
    {
        var o = new PickleObject(new PyGlobal("__torch__.torch.classes.quantized", "Conv2dPackedParamsBase"), []);
        typeof(PickleObject).GetProperty("State")!.SetValue(o, state);
        return o;
    }

    private static Tensor Scalar(long v) => new(DType.Int64, [1], new[] { v });

    [Fact]
    public void ConvPackedParamsVersions1To3Decode()
    {
        var w = Weight();
        var bias = new Tensor(DType.Float32, [2], new[] { 1f, 2f });
        var v1 = Packed([w, bias, new List<object?> { Scalar(2), Scalar(1) }, new List<object?> { Scalar(1), Scalar(0) },
            new List<object?> { Scalar(1), Scalar(1) }, Scalar(1)]);
        var v2 = Packed(["2", new List<object?> { new Tensor(DType.Int16, [11], new short[] { 2, 2, 1, 1, 0, 1, 1, 0, 0, 1, 0 }), w },
            new List<object?> { bias }]);
        var v3 = Packed([3L, new List<object?> { 2L, 2L, 1L, 1L, 0L, 1L, 1L, 1L, 0L, 1L, 1L }, new List<object?> { null, w, null }]);
        foreach (var (o, version) in new[] { (v1, 1), (v2, 2), (v3, 3) })
        {
            var p = Assert.IsType<ConvPackedParams>(TorchCheckpoint.DecodePackedParams(o));
            Assert.Equal(version, p.Version);
            Assert.Equal(2, p.SpatialDims);
            Assert.Same(w, p.Weight);
            Assert.Equal(new long[] { 2, 1 }, p.Stride);
            Assert.Equal(new long[] { 1, 0 }, p.Padding);
            Assert.Equal(new long[] { 1, 1 }, p.Dilation);
            Assert.Equal(1, p.Groups);
            Assert.Equal(version == 3, p.Transpose);
            Assert.Equal(version == 3 ? new long[] { 1, 0 } : new long[] { 0, 0 }, p.OutputPadding);
            Assert.Equal(version == 3 ? null : bias, p.Bias);
        }
        var bad = Packed([3L, new List<object?> { 2L, 1L }, new List<object?> { null, w, null }]);
        Assert.Throws<QuantToolsException>(() => TorchCheckpoint.DecodePackedParams(bad));
        var unknown = Packed(["7", new List<object?>(), new List<object?>()]);
        Assert.Contains("version", Assert.Throws<QuantToolsException>(() => TorchCheckpoint.DecodePackedParams(unknown)).Message);
    }
}
