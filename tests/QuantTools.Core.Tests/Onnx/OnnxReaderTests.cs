using System.Diagnostics;
using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Models.Onnx;
using QuantTools.Core.Tensors;
using Xunit.Abstractions;
using W = QuantTools.Core.Formats.Onnx.OnnxWriter;

namespace QuantTools.Core.Tests.Onnx;

/// <summary>The ONNX reader on the golden models and on hostile files: every bad input is a QuantToolsException naming what is wrong.</summary>
public class OnnxReaderTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qt-onnx-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    public static IEnumerable<string> GoldenModels() =>
        Directory.EnumerateFiles(Fixtures.Core("onnx"), "*.onnx").Concat(Directory.EnumerateFiles(Fixtures.Path("bench"), "*.onnx")).Order();

    [Fact]
    public void GoldenModelsReadWithTheirGraphs()
    {
        var m = OnnxReader.Load(Fixtures.Core("onnx", "smallcnn.qop_minmax_pc.onnx"));
        Assert.Equal(17, m.Opset);
        Assert.Equal(1, m.Opsets["com.microsoft"]);
        Assert.Equal(["QuantizeLinear", "QLinearConv", "QLinearConv", "QLinearConv", "QLinearGlobalAveragePool", "Flatten", "QGemm", "DequantizeLinear"],
            m.Graph.Nodes.Where(n => n.OpType != "Constant").Select(n => n.OpType).ToArray());
        var w = m.Graph.Initializers["onnx::Conv_29_quantized"].ToTensor();
        Assert.Equal(DType.Int8, w.DType);
        Assert.Equal([16, 3, 3, 3], w.Shape);
        Assert.Equal(-81, w.AsSpan<sbyte>()[0]);
        Assert.Equal(42, w.AsSpan<sbyte>()[1]);
        Assert.Equal(0.03263817f, m.Graph.Initializers["input_scale"].ToTensor().AsSpan<float>()[0], 7);
        Assert.Equal("input", m.Graph.Inputs.Single().Name);
        Assert.Equal([1L, 3, 24, 24], m.Graph.Inputs[0].Shape!.Select(d => d!.Value).ToArray());
        foreach (var f in GoldenModels())
        {
            var g = OnnxReader.Load(f);
            foreach (var t in g.Graph.Initializers.Values) Assert.Equal(t.Count, t.ToTensor().Length);
            output.WriteLine(g.ToString());
        }
    }

    [Fact]
    public void OrtGraphOfTheQdqModelIsTheOneOnnxRuntimeSaves()
    {
        // ORT 1.30 at ORT_ENABLE_EXTENDED (SessionOptions.optimized_model_filepath) saved exactly this node list
        foreach (var v in new[] { "qdq_minmax_pc", "qdq_minmax_pt", "qdq_entropy", "qdq_percentile", "qdq_minmax_s8s8", "qop_minmax_pc" })
        {
            var g = OrtGraph.Optimize(OnnxReader.Load(Fixtures.Core("onnx", $"smallcnn.{v}.onnx")));
            Assert.Equal(["QuantizeLinear", "QLinearConv", "QLinearConv", "QLinearConv", "QLinearGlobalAveragePool", "Flatten", "QGemm", "DequantizeLinear"],
                g.Nodes.Select(n => n.Op).ToArray());
            Assert.Equal(["/c1/Conv", "/c2/Conv", "/c3/Conv"], g.Nodes.Where(n => n.Op == "QLinearConv").Select(n => n.Name.Replace("_quant", "")).ToArray());
        }
        var s8 = OrtGraph.Optimize(OnnxReader.Load(Fixtures.Core("onnx", "smallcnn.qdq_minmax_s8s8.onnx")));
        Assert.Equal(7, s8.Int8Renames.Count); // input, two ReLU, Clip, pool, flatten and output Q/DQ pairs
        Assert.All(s8.Nodes, n => Assert.All(n.Inputs.Where(i => s8.Constants.ContainsKey(i) && i.Contains("zp_conversion")),
            i => Assert.Equal(DType.UInt8, s8.Constants[i].DType)));
    }

    private string Write(string name, byte[] bytes)
    {
        var p = Path.Combine(_dir, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    private static byte[] Tiny(IEnumerable<W.Node>? nodes = null, IEnumerable<(string, Tensor)>? inits = null) =>
        W.Write(nodes ?? [new W.Node("Relu", ["x"], ["y"], "relu")], inits ?? [],
            [new W.Value("x", OnnxDataType.Float, [1, 4])], [new W.Value("y", OnnxDataType.Float, [1, 4])]);

    private QuantToolsException Refused(byte[] bytes, string expect)
    {
        var e = Assert.Throws<QuantToolsException>(() => OnnxReader.Load(Write($"m{Guid.NewGuid():N}.onnx", bytes)));
        Assert.Contains(expect, e.Message);
        return e;
    }

    [Fact]
    public void MalformedWireDataIsRefused()
    {
        var ok = Tiny();
        Assert.Single(OnnxReader.Load(Write("ok.onnx", ok)).Graph.Nodes);
        Refused(ok[..^3], "past the end");
        // an 11-byte varint as the first key
        Refused([.. Enumerable.Repeat((byte)0xFF, 10), 0x01, .. ok], "varint");
        // a group wire type
        Refused([(7 << 3) | 3, .. ok], "groups");
        // a graph-sized length field pointing far beyond the file
        Refused([(7 << 3) | 2, 0xFF, 0xFF, 0xFF, 0xFF, 0x07], "runs past the end");
        Refused([0x08, 0x08], "no graph");
    }

    [Fact]
    public void DeepNestingIsRefused()
    {
        // a graph attribute holding a graph attribute ... 100 levels deep
        var inner = new ProtoWriter().String(OnnxFields.Graph.Name, "g");
        for (int i = 0; i < 100; i++)
        {
            var attr = new ProtoWriter().String(OnnxFields.Attribute.Name, "body").Message(OnnxFields.Attribute.G, inner);
            var node = new ProtoWriter().String(OnnxFields.Node.OpType, "If").Message(OnnxFields.Node.Attribute, attr);
            inner = new ProtoWriter().Message(OnnxFields.Graph.Node, node);
        }
        var model = new ProtoWriter().Int(OnnxFields.Model.IrVersion, 8).Message(OnnxFields.Model.Graph, inner);
        Refused(model.ToArray(), "nested deeper");
    }

    [Fact]
    public void GraphErrorsNameTheNode()
    {
        Refused(Tiny([new W.Node("Relu", ["x"], ["a"], "one"), new W.Node("Relu", ["b"], ["y"], "two"), new W.Node("Relu", ["y"], ["b"], "three")]), "cycle");
        Refused(Tiny([new W.Node("Relu", ["nowhere"], ["y"], "lost")]), "'lost' (Relu) reads 'nowhere'");
        Refused(Tiny([new W.Node("Relu", ["x"], ["y"], "a"), new W.Node("Relu", ["x"], ["y"], "b")]), "produced twice");
    }

    [Fact]
    public void HugeDimsAndShortDataAreRefused()
    {
        var t = new ProtoWriter().PackedInts(OnnxFields.Tensor.Dims, [1L << 40, 1L << 40]).Int(OnnxFields.Tensor.DataType, 1)
            .String(OnnxFields.Tensor.Name, "w").Bytes(OnnxFields.Tensor.RawData, new byte[16]);
        var g = new ProtoWriter().Message(OnnxFields.Graph.Initializer, t);
        Refused(new ProtoWriter().Int(1, 8).Message(7, g).ToArray(), "tensor 'w'");
        var t2 = new ProtoWriter().PackedInts(OnnxFields.Tensor.Dims, [4L]).Int(OnnxFields.Tensor.DataType, 1)
            .String(OnnxFields.Tensor.Name, "w").Bytes(OnnxFields.Tensor.RawData, new byte[12]);
        Refused(new ProtoWriter().Int(1, 8).Message(7, new ProtoWriter().Message(OnnxFields.Graph.Initializer, t2)).ToArray(), "raw_data holds 12 bytes, the shape needs 16");
        var t3 = new ProtoWriter().PackedInts(OnnxFields.Tensor.Dims, [-3L]).Int(OnnxFields.Tensor.DataType, 1).String(OnnxFields.Tensor.Name, "n");
        Refused(new ProtoWriter().Int(1, 8).Message(7, new ProtoWriter().Message(OnnxFields.Graph.Initializer, t3)).ToArray(), "invalid dimension");
    }

    private static byte[] ExternalModel(string location, long offset, long length)
    {
        var t = new ProtoWriter().PackedInts(OnnxFields.Tensor.Dims, [4L]).Int(OnnxFields.Tensor.DataType, 1).String(OnnxFields.Tensor.Name, "w")
            .Message(OnnxFields.Tensor.ExternalData, new ProtoWriter().String(1, "location").String(2, location))
            .Message(OnnxFields.Tensor.ExternalData, new ProtoWriter().String(1, "offset").String(2, offset.ToString()))
            .Message(OnnxFields.Tensor.ExternalData, new ProtoWriter().String(1, "length").String(2, length.ToString()))
            .Int(OnnxFields.Tensor.DataLocation, 1);
        return new ProtoWriter().Int(1, 8).Message(7, new ProtoWriter().Message(OnnxFields.Graph.Initializer, t)).ToArray();
    }

    [Fact]
    public void ExternalDataStaysInsideTheModelsFolder()
    {
        var sub = Directory.CreateDirectory(Path.Combine(_dir, "model")).FullName;
        var data = new byte[32];
        BitConverter.TryWriteBytes(data.AsSpan(8), 1.5f);
        File.WriteAllBytes(Path.Combine(sub, "weights.bin"), data);
        File.WriteAllBytes(Path.Combine(_dir, "secret.bin"), data);
        string M(byte[] b) { var p = Path.Combine(sub, $"m{Guid.NewGuid():N}.onnx"); File.WriteAllBytes(p, b); return p; }
        var good = OnnxReader.Load(M(ExternalModel("weights.bin", 8, 16)));
        Assert.Equal(1.5f, good.Graph.Initializers["w"].ToTensor().AsSpan<float>()[0]);
        foreach (var (loc, why) in new[] { ("../secret.bin", "leaves the model's folder"), ("/etc/passwd", "leaves the model's folder"),
                     ("sub/../../secret.bin", "leaves the model's folder"), ("missing.bin", "not found") })
        {
            var e = Assert.Throws<QuantToolsException>(() => OnnxReader.Load(M(ExternalModel(loc, 0, 16))));
            Assert.Contains(why, e.Message);
        }
        Assert.Contains("beyond the end", Assert.Throws<QuantToolsException>(() => OnnxReader.Load(M(ExternalModel("weights.bin", 24, 16)))).Message);
        Assert.Contains("length 8 does not match", Assert.Throws<QuantToolsException>(() => OnnxReader.Load(M(ExternalModel("weights.bin", 0, 8)))).Message);
        File.CreateSymbolicLink(Path.Combine(sub, "link.bin"), Path.Combine(_dir, "secret.bin"));
        Assert.Contains("link to a file outside", Assert.Throws<QuantToolsException>(() => OnnxReader.Load(M(ExternalModel("link.bin", 0, 16)))).Message);
    }

    /// <summary>
    /// Mutants of every golden model (bit flips, byte sets, truncations, insertions, varint-length edits) either load
    /// (and then build ORT's graph or fail with QuantToolsException) or throw QuantToolsException; nothing else, no hang.
    /// </summary>
    [Fact]
    public void FuzzedModelsFailOnlyWithQuantToolsException()
    {
        var failures = new List<string>();
        int loaded = 0, rejected = 0;
        var sw = Stopwatch.StartNew();
        foreach (var f in GoldenModels().Where(f => new FileInfo(f).Length < 200_000))
        {
            var src = File.ReadAllBytes(f);
            var rng = new Random(f.Length);
            for (int i = 0; i < 150; i++)
            {
                var b = (byte[])src.Clone();
                string what;
                switch (rng.Next(5))
                {
                    case 0: { int n = 1 + rng.Next(6); for (int k = 0; k < n; k++) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8)); what = "bit flips"; break; }
                    case 1: b[rng.Next(b.Length)] = (byte)new[] { 0, 0x7F, 0x80, 0xFF }[rng.Next(4)]; what = "byte set"; break;
                    case 2: b = b[..rng.Next(b.Length)]; what = "truncated"; break;
                    case 3: { int p = rng.Next(b.Length); var ins = new byte[1 + rng.Next(8)]; rng.NextBytes(ins); b = [.. b[..p], .. ins, .. b[p..]]; what = "insertion"; break; }
                    default: { int p = rng.Next(b.Length - 5); for (int k = 0; k < 4; k++) b[p + k] = 0xFF; b[p + 4] = 0x07; what = "huge length"; break; }
                }
                var path = Write("fuzz.onnx", b);
                var task = Task.Run(() =>
                {
                    var m = OnnxReader.Load(path);
                    foreach (var t in m.Graph.Initializers.Values) t.ToTensor();
                    try { _ = new OnnxExecutor(m); } catch (QuantToolsException) { }
                });
                try
                {
                    if (!task.Wait(TimeSpan.FromSeconds(10))) { failures.Add($"{Path.GetFileName(f)} #{i} {what}: no result in 10 s"); break; }
                    loaded++;
                }
                catch (AggregateException ae) when (ae.InnerException is QuantToolsException) { rejected++; }
                catch (AggregateException ae) { failures.Add($"{Path.GetFileName(f)} #{i} {what}: {ae.InnerException!.GetType().Name}: {ae.InnerException.Message}\n{ae.InnerException.StackTrace}"); }
            }
        }
        output.WriteLine($"{loaded} mutants loaded, {rejected} rejected, {sw.ElapsedMilliseconds} ms");
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(5)));
        Assert.True(rejected > 100);
    }
}
