using QuantTools.Core.Conformance;
using QuantTools.Core.Formats;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Execution;

namespace QuantTools.Core.Tests.Execution;

/// <summary>
/// A larger model made the same way as the golden ones: torchvision's quantizable MobileNetV2 (random weights, x86
/// PTQ, 224x224), run by PyTorch 2.11 on an AVX512-VNNI Xeon (tests/fixtures/bench). Our x86 profile must give its
/// output bit for bit.
/// </summary>
public class LargerModelTests
{
    [Fact]
    public void MobileNetV2OutputEqualsPyTorchBitForBit()
    {
        var dir = Fixtures.Path("bench");
        var st = SafeTensorsFile.Open(Path.Combine(dir, "mobilenet_v2_224.safetensors"));
        var exec = ModelExecutor.Load(Path.Combine(dir, "mobilenet_v2_224.torchscript.pt"), QEngine.X86);
        var r = exec.Run(st.Get("input"));
        Assert.Equal("", OpsCases.CompareF(st.Get("output"), r.Output));
        Assert.Equal([1, 1000], r.Output.Shape);
    }
}
