using System.Text;
using QuantTools.Core.Kernels;
using QuantTools.Core.Tensors;
using Xunit.Abstractions;

namespace QuantTools.Torch.Tests;

/// <summary>
/// Quantizes thousands of random tensors through libtorch (in-process) and through the golden formula and,
/// once it exists, the Core quantizer, and requires identical integers (and identical float bits after
/// dequantize). Nothing is loosened: a disagreement is reported with its exact inputs.
/// </summary>
public sealed class CrossCheckTests(ITestOutputHelper output)
{
    private const int MaxReported = 25;

    static CrossCheckTests()
    {
        LibTorchReference.EnsureLoaded();
        LibTorchReference.NumThreads = 1;
    }

    private sealed class Report(string what)
    {
        private readonly StringBuilder _sb = new();
        public long Tensors, Elements, CoreElements, Mismatches;

        public void Mismatch(string line)
        {
            if (++Mismatches <= MaxReported) _sb.AppendLine(line);
        }

        public string Summary(bool core) =>
            $"{what}: {Tensors} tensors, {Elements} elements compared libtorch vs golden formula" +
            (core ? $", {CoreElements} element comparisons vs Core Quantizer (all kernel paths for per-tensor)" : ", Core Quantizer not available") +
            $"; {Mismatches} mismatches";

        public void AssertClean(ITestOutputHelper output, bool core)
        {
            output.WriteLine(Summary(core));
            if (Mismatches > 0) output.WriteLine(_sb.ToString());
            Assert.True(Mismatches == 0, Summary(core) + Environment.NewLine + _sb);
        }
    }

    private static string F(float v) => $"{v:R} (0x{BitConverter.SingleToInt32Bits(v):x8})";

    [Fact]
    public void QuantizePerTensor_MatchesLibTorch()
    {
        output.WriteLine(CoreQuantizer.Describe());
        var data = new TestData(20260611);
        var report = new Report("quantize_per_tensor");
        var dequant = new Report("dequantize (per-tensor, of the quantized results)");
        bool core = false;
        int u8 = 0, i8 = 0;
        const int cases = 6000;
        for (int c = 0; c < cases; c++)
        {
            int d = c % 10;
            DType dtype = d < 4 ? DType.QUInt8 : d < 8 ? DType.QInt8 : DType.QInt32;
            long zp = dtype switch
            {
                DType.QUInt8 => u8++ % 256,          // every zero point of the range, ~9 times each
                DType.QInt8 => -128 + i8++ % 256,
                _ => data.Int32ZeroPoint(),
            };
            double scale = data.Scale();
            int n = c switch { 7 => 65_537, 1_008 => 1_000_003, 2_009 => 4_194_309, 3_012 => 300_001, _ => data.Length() };
            var x = data.Values(n, scale, zp, dtype, out var kind);

            var lt = LibTorchReference.QuantizePerTensor(x, scale, zp, dtype);
            report.Tensors++;
            report.Elements += n;
            for (int i = 0; i < n; i++)
            {
                int g = GoldenFormula.QuantizePerTensor(x[i], scale, zp, dtype);
                if (g != lt[i])
                    report.Mismatch($"{dtype.TorchName()} scale={scale:R} zp={zp} x={F(x[i])} [{kind}, case {c}, i {i}/{n}]: libtorch {lt[i]}, golden {g}");
            }

            // Ours on every kernel path this CPU supports (scalar reference and each SIMD path).
            foreach (var path in KernelPaths.AllSupported())
            {
                int[]? ours;
                using (KernelPaths.Force(path))
                    ours = CoreQuantizer.QuantizePerTensor(x, scale, zp, dtype);
                if (ours == null) break;
                core = true;
                report.CoreElements += n;
                for (int i = 0; i < n; i++)
                    if (ours[i] != lt[i])
                        report.Mismatch($"{dtype.TorchName()} scale={scale:R} zp={zp} x={F(x[i])} [{kind}, case {c}, i {i}/{n}, path {path}]: libtorch {lt[i]}, Core {ours[i]}");
            }

            // Dequantize what libtorch produced, through libtorch, the golden formula and ours.
            if (c % 3 == 0 || n > 100_000)
            {
                var y = LibTorchReference.Dequantize(lt, scale, zp, dtype);
                dequant.Tensors++;
                dequant.Elements += n;
                for (int i = 0; i < n; i++)
                {
                    float g = GoldenFormula.DequantizePerTensor(lt[i], scale, zp);
                    if (BitConverter.SingleToInt32Bits(g) != BitConverter.SingleToInt32Bits(y[i]))
                        dequant.Mismatch($"{dtype.TorchName()} scale={scale:R} zp={zp} q={lt[i]}: libtorch {F(y[i])}, golden {F(g)}");
                }
                foreach (var path in KernelPaths.AllSupported())
                {
                    float[]? oursY;
                    using (KernelPaths.Force(path))
                        oursY = CoreQuantizer.DequantizePerTensor(lt, scale, zp, dtype);
                    if (oursY == null) break;
                    dequant.CoreElements += n;
                    for (int i = 0; i < n; i++)
                        if (BitConverter.SingleToInt32Bits(oursY[i]) != BitConverter.SingleToInt32Bits(y[i]))
                            dequant.Mismatch($"{dtype.TorchName()} scale={scale:R} zp={zp} q={lt[i]} [path {path}]: libtorch {F(y[i])}, Core {F(oursY[i])}");
                }
            }
        }
        output.WriteLine(dequant.Summary(core));
        report.AssertClean(output, core);
        dequant.AssertClean(output, core);
    }

    [Fact]
    public void DequantizePerTensor_FullIntegerRanges_MatchLibTorch()
    {
        var data = new TestData(7);
        var report = new Report("dequantize per-tensor, every integer x every zero point (8-bit), random and extreme (qint32)");
        bool core = false;
        foreach (var dtype in new[] { DType.QUInt8, DType.QInt8 })
        {
            var (lo, hi) = dtype.QuantRange();
            var q = new int[256 * 4];
            for (int i = 0; i < q.Length; i++) q[i] = (int)(lo + i % 256);
            for (long zp = lo; zp <= hi; zp++)
                Check(dtype, q, data.Scale(), zp);
        }
        for (int c = 0; c < 400; c++)
        {
            var q = new int[data.Rng.Next(0, 300)];
            for (int i = 0; i < q.Length; i++)
                q[i] = data.Rng.Next(6) switch { 0 => int.MinValue, 1 => int.MaxValue, 2 => data.Rng.Next(-1000, 1000), _ => data.Rng.Next(int.MinValue, int.MaxValue) };
            Check(DType.QInt32, q, data.Scale(), data.Int32ZeroPoint());
        }
        report.AssertClean(output, core);

        void Check(DType dtype, int[] q, double scale, long zp)
        {
            var y = LibTorchReference.Dequantize(q, scale, zp, dtype);
            var ours = CoreQuantizer.DequantizePerTensor(q, scale, zp, dtype);
            report.Tensors++;
            report.Elements += q.Length;
            if (ours != null) { core = true; report.CoreElements += q.Length; }
            for (int i = 0; i < q.Length; i++)
            {
                float g = GoldenFormula.DequantizePerTensor(q[i], scale, zp);
                if (BitConverter.SingleToInt32Bits(g) != BitConverter.SingleToInt32Bits(y[i]))
                    report.Mismatch($"{dtype.TorchName()} scale={scale:R} zp={zp} q={q[i]}: libtorch {F(y[i])}, golden {F(g)}");
                if (ours != null && BitConverter.SingleToInt32Bits(ours[i]) != BitConverter.SingleToInt32Bits(y[i]))
                    report.Mismatch($"{dtype.TorchName()} scale={scale:R} zp={zp} q={q[i]}: libtorch {F(y[i])}, Core {F(ours[i])}");
            }
        }
    }

    [Fact]
    public void QuantizePerChannel_MatchesLibTorch()
    {
        var data = new TestData(424242);
        var report = new Report("quantize_per_channel");
        var dequant = new Report("dequantize (per-channel)");
        bool core = false;
        var rng = data.Rng;
        for (int c = 0; c < 2000; c++)
        {
            DType dtype = (c % 5) switch { 0 or 1 => DType.QUInt8, 2 or 3 => DType.QInt8, _ => DType.QInt32 };
            var (lo, hi) = dtype.QuantRange();
            int rank = 1 + rng.Next(4);
            var shape = new int[rank];
            for (int r = 0; r < rank; r++) shape[r] = rank == 1 ? rng.Next(1, 300) : rng.Next(1, rank == 2 ? 40 : 9);
            if (c == 11) shape = [64, 3, 33, 31];
            int axis = rng.Next(rank);
            int channels = shape[axis];
            int n = (int)Tensor.CheckedNumel(shape);
            var scales = new double[channels];
            var zps = new long[channels];
            for (int ch = 0; ch < channels; ch++)
            {
                scales[ch] = data.Scale();
                zps[ch] = dtype == DType.QInt32 ? data.Int32ZeroPoint() : rng.NextInt64(lo, hi + 1);
            }
            // Values drawn around a typical channel, then a per-element mix of kinds.
            var x = data.Values(n, scales[0], zps[0], dtype, out var kind);
            int inner = 1;
            for (int r = axis + 1; r < rank; r++) inner *= shape[r];

            var lt = LibTorchReference.QuantizePerChannel(x, shape, scales, zps, axis, dtype);
            report.Tensors++;
            report.Elements += n;
            for (int i = 0; i < n; i++)
            {
                int ch = i / inner % channels;
                int g = GoldenFormula.QuantizePerChannelElement(x[i], scales[ch], zps[ch], dtype);
                if (g != lt[i])
                    report.Mismatch($"{dtype.TorchName()} per-channel scale={scales[ch]:R} zp={zps[ch]} x={F(x[i])} [{kind}, case {c}, shape [{string.Join(",", shape)}] axis {axis}, i {i}]: libtorch {lt[i]}, golden {g}");
            }

            var qp = QParams.PerChannel(scales, zps, axis, dtype);
            if (CoreQuantizer.Quantize != null)
            {
                core = true;
                var ours = CoreQuantizer.Quantize(new Tensor(DType.Float32, shape, x), qp);
                report.CoreElements += n;
                for (int i = 0; i < n; i++)
                {
                    int v = (int)ours.IntRepr.GetDouble(i);
                    if (v != lt[i])
                        report.Mismatch($"{dtype.TorchName()} per-channel x={F(x[i])} [case {c}, i {i}]: libtorch {lt[i]}, Core {v}");
                }
            }

            if (c % 2 == 0)
            {
                var y = LibTorchReference.DequantizePerChannel(lt, shape, scales, zps, axis, dtype);
                dequant.Tensors++;
                dequant.Elements += n;
                float[]? ours = null;
                if (CoreQuantizer.Dequantize != null)
                {
                    var qt = new QTensor(IntTensor(lt, shape, dtype), qp);
                    ours = CoreQuantizer.Dequantize(qt).AsSpan<float>().ToArray();
                    dequant.CoreElements += n;
                }
                for (int i = 0; i < n; i++)
                {
                    int ch = i / inner % channels;
                    float g = GoldenFormula.DequantizePerChannelElement(lt[i], scales[ch], zps[ch]);
                    if (BitConverter.SingleToInt32Bits(g) != BitConverter.SingleToInt32Bits(y[i]))
                        dequant.Mismatch($"{dtype.TorchName()} per-channel scale={scales[ch]:R} zp={zps[ch]} q={lt[i]}: libtorch {F(y[i])}, golden {F(g)}");
                    if (ours != null && BitConverter.SingleToInt32Bits(ours[i]) != BitConverter.SingleToInt32Bits(y[i]))
                        dequant.Mismatch($"{dtype.TorchName()} per-channel scale={scales[ch]:R} zp={zps[ch]} q={lt[i]}: libtorch {F(y[i])}, Core {F(ours[i])}");
                }
            }
        }
        output.WriteLine(dequant.Summary(core));
        report.AssertClean(output, core);
        dequant.AssertClean(output, core);
    }

    internal static Tensor IntTensor(int[] q, int[] shape, DType dtype) => dtype switch
    {
        DType.QUInt8 => new Tensor(DType.UInt8, shape, Array.ConvertAll(q, v => (byte)v)),
        DType.QInt8 => new Tensor(DType.Int8, shape, Array.ConvertAll(q, v => (sbyte)v)),
        _ => new Tensor(DType.Int32, shape, (int[])q.Clone()),
    };

    /// <summary>The documented edge cases, named.</summary>
    [Theory]
    [InlineData("qint8", -5, -1e30f, 127)]                       // huge negative wraps to qmax when zp < 0
    [InlineData("qint8", -5, float.NegativeInfinity, 127)]
    [InlineData("qint8", 5, float.NegativeInfinity, -128)]
    [InlineData("quint8", 128, float.PositiveInfinity, 0)]       // +inf wraps to qmin when zp >= 128
    [InlineData("quint8", 127, float.PositiveInfinity, 255)]
    [InlineData("quint8", 128, float.NaN, 0)]
    [InlineData("quint8", 0, float.NaN, 255)]
    [InlineData("quint8", 0, float.NegativeInfinity, 0)]
    public void DocumentedEdgeCases(string dtypeName, long zp, float x, int expected)
    {
        var dtype = DTypeInfo.Parse(dtypeName);
        Assert.Equal(expected, GoldenFormula.QuantizePerTensor(x, 0.1, zp, dtype));
        // Short (scalar tail) and long (vector body) tensors alike.
        foreach (int n in new[] { 1, 7, 100, 1000 })
        {
            var xs = Enumerable.Repeat(x, n).ToArray();
            Assert.All(LibTorchReference.QuantizePerTensor(xs, 0.1, zp, dtype), v => Assert.Equal(expected, v));
            var ours = CoreQuantizer.QuantizePerTensor(xs, 0.1, zp, dtype);
            if (ours != null) Assert.All(ours, v => Assert.Equal(expected, v));
        }
    }

    [Fact]
    public void FbgemmReciprocalExample_RoundsUp()
    {
        // Multiply by the float reciprocal: 0.273939937 * f32(1/0.00214854861) = 127.5 -> 128 (division would give 127).
        Assert.Equal(128, LibTorchReference.QuantizePerTensor([0.273939937f], 0.00214854861, 0, DType.QUInt8)[0]);
        Assert.Equal(128, GoldenFormula.QuantizePerTensor(0.273939937f, 0.00214854861, 0, DType.QUInt8));
    }

    [Fact]
    public void QInt32Dequantize_WrapsBeforeConverting()
    {
        var y = LibTorchReference.Dequantize([int.MinValue], 1.0, 17, DType.QInt32);
        Assert.True(y[0] > 0, $"expected a wrapped (positive) result, got {y[0]:R}"); // -2^31 - 17 wraps to 2^31 - 17
        Assert.Equal(y[0], GoldenFormula.DequantizePerTensor(int.MinValue, 1.0, 17));
    }
}

/// <summary>
/// Where libtorch disagrees with numerics.md section 4 as written: per-channel dequantize converts q and zp to
/// float separately before subtracting, so for qint32 there is no int32 wraparound and large operands round
/// first. (8-bit types are unaffected: the float subtraction is exact there.)
/// </summary>
public sealed class DocumentedDisagreementTests
{
    [Theory]
    [InlineData(32.0, 2147483487L, 2147483647, 4096f, 5120f)]
    [InlineData(0.0019915183899578037, 63L, int.MinValue, -4276753f, 4276753f)]
    [InlineData(0.0016018638277009256, -2147483608L, int.MinValue, 0f, -0.06407455f)]
    public void QInt32PerChannelDequantize_SubtractsInFloat(double scale, long zp, int q, float libtorch, float asDocumented)
    {
        var y = LibTorchReference.DequantizePerChannel([q], [1], [scale], [zp], 0, DType.QInt32);
        Assert.Equal(libtorch, y[0]);
        Assert.Equal(libtorch, GoldenFormula.DequantizePerChannelElement(q, scale, zp));
        Assert.Equal(asDocumented, GoldenFormula.DequantizePerChannelElementAsDocumented(q, scale, zp));
        Assert.NotEqual(BitConverter.SingleToInt32Bits(asDocumented), BitConverter.SingleToInt32Bits(y[0]));
    }
}
