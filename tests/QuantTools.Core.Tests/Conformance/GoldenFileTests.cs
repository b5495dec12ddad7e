using QuantTools.Core.Conformance;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Conformance;

public class GoldenFileTests
{
    [Fact]
    public void ReadsQuantizeInputsAndPackedSubByteRecords()
    {
        using var g = new GoldenFile(Fixtures.Core("quantize.json"));
        var x = g.Tensors.Get("x");
        Assert.Equal(DType.Float32, x.DType);
        Assert.Equal([4096], x.Shape);
        var special = g.Tensors.GetFloats("special");
        Assert.Equal(9, special.Length);
        Assert.Equal(1e30f, special[2]);
        Assert.True(float.IsPositiveInfinity(special[4]));
        // quint4x2 int_repr is stored packed: 64 values in 32 bytes
        var packed = g.Tensors.Get("q0241/int");
        Assert.Equal([32], packed.Shape);
    }

    [Fact]
    public void UnknownCategoriesAreReportedNotRunNeverPassed()
    {
        // a category this build cannot run reports each case NotRun with the reason (here the onnx cases, as they were
        // reported before the onnx category existed)
        var notYet = new NotYetRunnableCategory("onnx", p => Path.GetFileName(Path.GetDirectoryName(p)) == "onnx", "not runnable in this test");
        var results = new ConformanceRunner([notYet]).Run(Fixtures.Core("onnx")).ToList();
        Assert.Equal(14, results.Count);
        Assert.All(results, r => Assert.Equal(CaseStatus.NotRun, r.Status));
        Assert.All(results, r => Assert.Equal("onnx", r.Category));
        // the registered categories run them: 6 models, 8 collector cases and ORT's 2 refusals, all passing
        var run = new ConformanceRunner().Run(Fixtures.Core("onnx")).ToList();
        Assert.Equal(16, run.Count);
        Assert.All(run, r => Assert.Equal(CaseStatus.Passed, r.Status));
    }
}
