using QuantTools.Core.Conformance;
using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Models.Onnx;
using QuantTools.Core.Quantization.Ort;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Onnx;

/// <summary>
/// ORT's calibrators fed as Get-QParams feeds them (one tensor per batch): the golden models' input qparams are what
/// quantize_static computed from the 16 calibration batches with each method, so they must come out bit for bit.
/// </summary>
public class OrtCalibratorTests
{
    private static (float Scale, long Zp) ModelInputQParams(string variant)
    {
        var g = OrtGraph.FromModel(OnnxReader.Load(Fixtures.Core("onnx", $"smallcnn.{variant}.onnx")));
        var q = g.Nodes.First(n => n.Op == "QuantizeLinear" && n.Input(0) == "input");
        return (g.Constants[q.Input(1)].AsSpan<float>()[0], (long)g.Constants[q.Input(2)].GetDouble(0));
    }

    private static IEnumerable<Tensor> Batches()
    {
        using var file = new GoldenFile(OnnxConformanceTests.Json);
        var calib = file.Tensors.Get("calib");
        int per = calib.Length / calib.Shape[0];
        for (int i = 0; i < calib.Shape[0]; i++)
        {
            var d = new float[per];
            Array.Copy(calib.Data, i * per, d, 0, per);
            yield return new Tensor(DType.Float32, [1, 3, 24, 24], d);
        }
    }

    [Theory]
    [InlineData("qdq_minmax_pt", "MinMax")]
    [InlineData("qdq_entropy", "Entropy")]
    [InlineData("qdq_percentile", "Percentile")]
    public void BatchedCalibrationGivesTheModelsInputQParams(string variant, string method)
    {
        var m = OrtCalibrationMethodInfo.Parse(method);
        OrtObserver o = m == OrtCalibrationMethod.MinMax ? new OrtMinMaxObserver(new OrtCalibrationOptions()) : new OrtHistogramObserver(m, new OrtCalibrationOptions());
        foreach (var b in Batches()) o.Forward(b);
        var qp = o.CalculateQParams();
        var (s, z) = ModelInputQParams(variant);
        Assert.Equal(BitConverter.SingleToInt32Bits(s), BitConverter.SingleToInt32Bits((float)qp.Scale));
        Assert.Equal(z, qp.ZeroPoint);
        (o as IDisposable)?.Dispose();
    }

    [Fact]
    public void Int8ActivationsUseTheSignedRange()
    {
        var o = new OrtMinMaxObserver(new OrtCalibrationOptions { Dtype = DType.QInt8 });
        foreach (var b in Batches()) o.Forward(b);
        var qp = o.CalculateQParams();
        var (s, z) = ModelInputQParams("qdq_minmax_s8s8");
        Assert.Equal(s, (float)qp.Scale);
        Assert.Equal(z, qp.ZeroPoint);
        Assert.Equal(-128, qp.QuantMin);
    }

    [Fact]
    public void SpilledBatchesEqualOneCollectAndPerBatchMerges()
    {
        var all = Batches().SelectMany(b => b.AsSpan<float>().ToArray()).ToArray();
        foreach (var method in new[] { OrtCalibrationMethod.Entropy, OrtCalibrationMethod.Percentile })
            foreach (bool sym in new[] { false, true })
            {
                var one = new OrtHistogramCollector(method, sym, method == OrtCalibrationMethod.Entropy ? 128 : 2048);
                one.Collect(all);
                using var streamed = new OrtHistogramObserver(method, new OrtCalibrationOptions { Symmetric = sym });
                foreach (var b in Batches()) streamed.Forward(b);
                var a = one.Compute();
                var r = streamed.Result();
                Assert.Equal(a.Hist, r.Hist);
                Assert.Equal(a.Edges, r.Edges);
                Assert.Equal(a.Lowest, r.Lowest);
                Assert.Equal(a.Highest, r.Highest);
                // per-batch collect() merges histograms (merge_histogram) and grows them by whole bins; numpy drops values
                // beyond a grown range whose float32 threshold rounded below them, as it does in ORT
                using var merged = new OrtHistogramObserver(method, new OrtCalibrationOptions { Symmetric = sym, CollectPerBatch = true });
                foreach (var b in Batches()) merged.Forward(b);
                var m = merged.Result();
                Assert.InRange(m.Hist.Sum(), all.Length - 16, all.Length);
                Assert.True(m.Hist.Length > a.Hist.Length || m.Edges[^1] >= a.Edges[^1]);
            }
    }

    [Fact]
    public void ComputeScaleZpFollowsQuantUtils()
    {
        Assert.Equal((0, 254), OrtQParams.Range(DType.QUInt8, false, true));
        Assert.Equal((-64, 64), OrtQParams.Range(DType.QInt8, true, false));
        var (s, z) = OrtQParams.Compute(-1f, 3f, 0, 255, false);
        Assert.Equal((float)(4.0 / 255), s);
        Assert.Equal(64, z);
        Assert.Equal((1f, 0L), OrtQParams.Compute(0f, 0f, 0, 255, false));
        Assert.Equal(127, OrtQParams.Compute(-2f, 1f, 0, 254, true).ZeroPoint);
    }
}
