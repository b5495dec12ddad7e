using QuantTools.Core.Conformance.Ops;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.ConvLinear;

/// <summary>
/// The one case we do not reproduce, on purpose: a oneDNN defect (numerics.md point 4). The kernel follows the
/// formula that matches every other oneDNN / x86 case; this test pins down that exactly output pixel (8,4) differs
/// (PyTorch gives 255 there for every batch item and channel) and every other integer is equal.
/// </summary>
public class KnownFailureTests
{
    public static IEnumerable<object[]> Defects() =>
        ConvLinearGoldenTests.KnownFailures.Select(kv => new object[] { kv.Key.Seed, kv.Key.Id, kv.Value });

    [Theory]
    [MemberData(nameof(Defects))]
    public void OnednnDilatedConvDefect(string seed, string id, string reason)
    {
        Assert.Equal(ConvLinearGoldenTests.OnednnDefect, reason);
        var c = ConvLinearGoldenTests.Find(seed, id);
        var expected = c.File.GetQTensor(c.Json.GetProperty("y"));
        var actual = (QTensor)OpCaseAdapters.Find(c.Op)!.Run(c);
        Assert.Equal(expected.Shape, actual.Shape);
        int n = expected.Shape[0], ch = expected.Shape[1], h = expected.Shape[2], w = expected.Shape[3];
        Assert.Equal((9, 10), (h, w)); // 13x14 input, k5 dilation 2 (extent 9), padding 2
        var e = expected.IntRepr.AsSpan<byte>();
        var a = actual.IntRepr.AsSpan<byte>();
        int differing = 0;
        for (int b = 0; b < n; b++)
            for (int o = 0; o < ch; o++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                    {
                        int i = ((b * ch + o) * h + y) * w + x;
                        if (y == 8 && x == 4)
                        {
                            Assert.Equal(255, e[i]);
                            Assert.NotEqual(e[i], a[i]);
                            differing++;
                        }
                        else Assert.True(e[i] == a[i], $"{id}: unexpected difference at [{b},{o},{y},{x}]: expected {e[i]}, got {a[i]}");
                    }
        Assert.Equal(n * ch, differing);
    }
}
