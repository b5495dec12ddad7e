using QuantTools.Core.Models;

namespace QuantTools.Core.Tests.Models;

public class LayerQParamsCsvTests
{
    [Fact]
    public void PerChannelTextRoundTripsBitForBit()
    {
        double[] d = [0.1, 1.0 / 3, 5e-324, double.Epsilon * 3, -0.0, 123456789.123456789, 2.5e-05];
        var back = PerChannel<double>.Parse(new PerChannel<double>(d).ToString());
        Assert.Equal(d.Select(BitConverter.DoubleToInt64Bits), back.Select(BitConverter.DoubleToInt64Bits));
        float[] f = [0.1f, 1f / 3, 1e-45f, -2.5f];
        Assert.Equal(f.Select(BitConverter.SingleToInt32Bits), PerChannel<float>.Parse(new PerChannel<float>(f).ToString()).Select(BitConverter.SingleToInt32Bits));
        Assert.Equal("1;-2;2147483647", new PerChannel<int>([1, -2, int.MaxValue]).ToString());
        Assert.Empty(PerChannel<int>.Parse(""));
        Assert.Contains("not a Int32", Assert.Throws<QuantToolsException>(() => PerChannel<int>.Parse("1;x")).Message);
    }

    public static TheoryData<string> Files() => new()
    {
        "relu6_eager.torchscript.pt", "relu6_fx.torchscript.pt", "shufflenet_v2_x0_5.torchscript.pt", "seed_convnet.qat.state_dict.pt", "dynamic_mlp.state_dict.pt",
    };

    [Theory]
    [MemberData(nameof(Files))]
    public void RowsRoundTripThroughCsv(string file)
    {
        var rows = LayerQParams.For(ModelLoader.Load(Fixtures.Core("models", file)));
        var back = LayerQParamsCsv.Parse(LayerQParamsCsv.ToCsv(rows));
        Assert.Equal(rows.Count, back.Count);
        int perChannel = 0;
        foreach (var p in typeof(LayerQParams).GetProperties().Where(p => p.Name != nameof(LayerQParams.IntWeight)))
            for (int i = 0; i < rows.Count; i++)
            {
                object? a = p.GetValue(rows[i]), b = p.GetValue(back[i]);
                if (a is System.Collections.IEnumerable ea && a is not string)
                {
                    Assert.Equal(ea.Cast<object>().Select(x => x.ToString()), ((System.Collections.IEnumerable)b!).Cast<object>().Select(x => x.ToString()));
                    Assert.Equal(a.ToString(), b!.ToString());
                    perChannel++;
                }
                else if (a is double da) Assert.Equal(BitConverter.DoubleToInt64Bits(da), BitConverter.DoubleToInt64Bits((double)b!));
                else Assert.Equal(a, b);
            }
        Assert.True(perChannel > 0 || file.StartsWith("dynamic"), "no per-channel values compared");
    }

    [Fact]
    public void QuotedFieldsAndUnknownColumns()
    {
        var rows = LayerQParamsCsv.Parse("Extra,Name,Kind,WeightScales\nx,\"a,\"\"b\"\"\",Conv2d,0.5;0.25\n");
        Assert.Equal("a,\"b\"", rows[0].Name);
        Assert.Equal([0.5, 0.25], rows[0].WeightScales!);
        Assert.Contains("no 'Kind' column", Assert.Throws<QuantToolsException>(() => LayerQParamsCsv.Parse("Name\nx\n")).Message);
    }
}
