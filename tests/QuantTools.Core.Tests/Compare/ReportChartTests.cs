using System.Xml.Linq;
using QuantTools.Core.Compare;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Compare;

/// <summary>The HTML report's charts and table say what the numbers say: negative SQNR, counts, near-exact layers.</summary>
public class ReportChartTests
{
    private static XElement Svg(string svg) => XElement.Parse(svg);
    private static readonly XNamespace S = "http://www.w3.org/2000/svg";

    private static ComparisonSummary Summary(params (string Name, object Ref, object Dif)[] layers) =>
        QuantComparer.Compare(layers.Select(l => (l.Name, l.Ref)).ToList(), layers.Select(l => (l.Name, l.Dif)).ToList(), new CompareOptions { MinSqnr = 20 });

    [Fact]
    public void NegativeSqnrIsABarBelowTheZeroLine()
    {
        var x = Tensor.FromArray(Enumerable.Range(1, 64).Select(i => (float)Math.Sin(i)).ToArray(), 64);
        var neg = Tensor.FromArray(x.AsSpan<float>().ToArray().Select(v => -v).ToArray(), 64);   // ||x - (-x)|| = 2||x||: -6.02 dB
        var s = Summary(("same", x, x), ("flipped", x, neg));
        Assert.InRange(s.Results[1].Sqnr, -6.03, -6.01);
        var svg = Svg(ComparisonReport.SqnrChart(s));
        var bars = svg.Descendants(S + "rect").Where(r => (string?)r.Attribute("class") == "bar").ToList();
        Assert.Equal(2, bars.Count);
        double H(XElement r) => double.Parse((string)r.Attribute("height")!, System.Globalization.CultureInfo.InvariantCulture);
        double Y(XElement r) => double.Parse((string)r.Attribute("y")!, System.Globalization.CultureInfo.InvariantCulture);
        // the inf bar goes up from the zero line, the -6 dB one down from it: the flipped bar's top is the other's bottom
        Assert.True(H(bars[1]) > 10, $"negative bar height {H(bars[1])}");
        Assert.Equal(Y(bars[0]) + H(bars[0]), Y(bars[1]), 1);
        var ticks = svg.Descendants(S + "text").Where(t => (string?)t.Attribute("class") == "ytick").Select(t => t.Value).ToList();
        Assert.Contains("0", ticks);
        Assert.Contains(ticks, t => t.StartsWith('-'));
        Assert.Contains(svg.Descendants(S + "text"), t => t.Value == "SQNR (dB)");
    }

    [Fact]
    public void FiveDifferingElementsAreNotOneHundredPercent()
    {
        var qp = QParams.PerTensor(0.1, 0, DType.QUInt8);
        var a = new byte[100_000];
        for (int i = 0; i < a.Length; i++) a[i] = (byte)(i % 200);
        var b = (byte[])a.Clone();
        foreach (var i in new[] { 3, 99, 5000, 70000, 99999 }) b[i]++;
        var r = QuantComparer.CompareTensors(new QTensor(new Tensor(DType.UInt8, [a.Length], a), qp), new QTensor(new Tensor(DType.UInt8, [b.Length], b), qp));
        Assert.Equal(5, r.DifferingElements);
        Assert.Equal("99.995 % (5 differ)", ComparisonReport.Exact(r));
        var one = QuantComparer.CompareTensors(new QTensor(new Tensor(DType.UInt8, [a.Length], a), qp), new QTensor(new Tensor(DType.UInt8, [a.Length], (byte[])a.Clone()), qp));
        Assert.Equal("100 %", ComparisonReport.Exact(one));
        var s = new ComparisonSummary { Layers = 1, Passed = 0, Failed = 1, Results = [r], Alignment = "Name", UnmatchedReference = [], UnmatchedDifference = [] };
        var html = ComparisonReport.Html(s);
        Assert.Contains("99.995 % (5 differ)", html);
        Assert.DoesNotContain("100.0 %", html);
        // the histogram's y axis: counts at powers of ten, titled
        var hist = Svg(ComparisonReport.Histogram(s));
        var ticks = hist.Descendants(S + "text").Where(t => (string?)t.Attribute("class") == "ytick").Select(t => t.Value).ToList();
        Assert.Equal(["1", "10", "100", "1,000", "10,000"], ticks.Take(5));
        Assert.Contains(hist.Descendants(S + "text"), t => t.Value == "elements (log)");
    }
}
