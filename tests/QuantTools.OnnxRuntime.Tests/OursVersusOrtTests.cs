using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Models.Onnx;
using QuantTools.Core.Tensors;
using Xunit.Abstractions;

namespace QuantTools.OnnxRuntime.Tests;

/// <summary>
/// QuantTools' ORT emulation (<see cref="OnnxExecutor"/>) against real ONNX Runtime 1.30 in-process on random models and
/// inputs: every output and every captured quantized value equal bit for bit, with ORT's default optimization level
/// (fusions, NHWC layout) and with optimizations off.
/// </summary>
public class OursVersusOrtTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qt-ort-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string Save(string name, byte[] bytes)
    {
        var p = Path.Combine(_dir, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    private static string? Diff(Tensor a, Tensor b)
    {
        if (!a.Shape.SequenceEqual(b.Shape)) return $"shape [{string.Join(",", a.Shape)}] vs [{string.Join(",", b.Shape)}]";
        if (a.DType != b.DType) return $"dtype {a.DType} vs {b.DType}";
        var x = a.AsBytes(); var y = b.AsBytes();
        int bad = 0;
        for (int i = 0; i < x.Length; i++) if (x[i] != y[i]) bad++;
        return bad == 0 ? null : $"{bad} of {x.Length} bytes differ";
    }

    private void Compare(string path, Tensor input, bool optimize)
    {
        var ours = OnnxExecutor.Load(path, optimize ? OrtOptimization.Default : OrtOptimization.None);
        using var ort = OrtSessionModel.Load(path, 1, optimize);
        var a = ours.Run(input, true);
        var b = ort.Run(input, true, default);
        Assert.Equal(b.Outputs.Count, a.Outputs.Count);
        for (int i = 0; i < a.Outputs.Count; i++)
        {
            var ta = a.Outputs[i] is QTensor qa ? qa.IntRepr : (Tensor)a.Outputs[i];
            var d = Diff(ta, (Tensor)b.Outputs[i]);
            Assert.True(d is null, $"{Path.GetFileName(path)} output {i}: {d}");
        }
        int compared = 0;
        foreach (var l in b.Layers)
        {
            var mine = a.Layer(l.Name);
            Assert.True(mine is not null, $"{l.Name} captured by ONNX Runtime, not by QuantTools");
            var d = Diff(mine!.Value.IntRepr, l.Value.IntRepr);
            Assert.True(d is null, $"{Path.GetFileName(path)} layer {l.Name} ({l.Kind}): {d}");
            Assert.Equal(l.Value.QParams.Scale, mine.Value.QParams.Scale);
            Assert.Equal(l.Value.QParams.ZeroPoint, mine.Value.QParams.ZeroPoint);
            compared++;
        }
        output.WriteLine($"{Path.GetFileName(path)} ({(optimize ? "ORT_ENABLE_ALL" : "ORT_DISABLE_ALL")}): outputs and {compared} captured values bit-exact; ours: {ours.Graph.Nodes.Count} nodes");
        if (optimize) Assert.True(compared > 0);
    }

    [Theory]
    [InlineData(1, 8, 12, false)]
    [InlineData(2, 16, 9, false)]
    [InlineData(3, 8, 16, true)]
    public void QdqCnnMatchesOnnxRuntime(int seed, int c, int h, bool withAdd)
    {
        var m = new RandomModels(seed);
        var path = Save($"qdq{seed}.onnx", m.QdqCnn(c, h, withAdd));
        for (int i = 0; i < 3; i++) Compare(path, m.Input(h), optimize: true);
    }

    [Theory]
    [InlineData(4, 4, 8)]
    [InlineData(5, 6, 11)]
    public void QOperatorNodesMatchOnnxRuntime(int seed, int c, int h)
    {
        var m = new RandomModels(seed);
        var path = Save($"qop{seed}.onnx", m.QOperator(c, h));
        for (int i = 0; i < 3; i++)
        {
            var x = m.Input(h);
            Compare(path, x, optimize: true);
            Compare(path, x, optimize: false);
        }
    }
}
