using QuantTools.Core.Conformance;
using QuantTools.Core.Export;
using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Export;


/// <summary>
/// -IntegerOnly: fixed-point requantization (TFLite multipliers, gemmlowp rounding, int32 biases, QNNPACK's fixed-point
/// add) so run_q needs no FPU. It is not PyTorch's arithmetic, so these tests pin the measured distance to PyTorch's
/// golden outputs instead of equality: where an engine keeps the bias float (x86 / fbgemm) rounding it to int32 moves
/// many outputs by one or two steps; under qnnpack (int32 bias already) only the multiplier's approximation shows.
/// </summary>
public class ExportIntegerOnlyTests
{
    private static (int Differ, int Total, double MaxLsb) Distance(string engineModel, string engine, int[] shape)
    {
        using var file = new GoldenFile(Fixtures.Core("engines", engineModel + ".json"));
        var graph = TorchScriptFrontEnd.Build(Fixtures.Core("engines", engineModel + ".torchscript.pt"));
        using var build = new CBuild("int-" + engineModel);
        var r = build.Add(graph, new ExportOptions { Engine = QEngineInfo.Parse(engine), InputShape = shape, IntegerOnly = true, Name = "m" });
        Assert.False(r.FpuNeeded);
        Assert.True(r.IntegerOnly);
        Assert.Contains("#define M_FPU_NEEDED 0", File.ReadAllText(Path.Combine(build.Dir, "m.h")));
        Assert.Contains("QT_RQ_FIXED_POINT", File.ReadAllText(Path.Combine(build.Dir, "m.c")));
        build.Compile();
        var want = file.Tensors.Get("output").AsSpan<float>().ToArray();
        var (got, _) = build.Run("m", file.Tensors.Get("input"));
        double scale = r.Plan.QuantizedOutput!.Scale;
        int differ = 0;
        double max = 0;
        for (int i = 0; i < want.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(got[i]) == BitConverter.SingleToInt32Bits(want[i])) continue;
            differ++;
            max = Math.Max(max, Math.Round(Math.Abs(got[i] - (double)want[i]) / scale));
        }
        return (differ, want.Length, max);
    }

    [GccFact]
    public void UnderQnnpackOnlyTheMultiplierApproximationShows()
    {
        var (differ, total, max) = Distance("seed_convnet_qnnpack", "qnnpack", [4, 1, 24, 24]);
        Assert.Equal(2304, total);
        Assert.InRange(differ, 1, 10);   // measured: 4 of 2304
        Assert.Equal(1, max);
    }

    [GccFact]
    public void UnderX86TheInt32BiasMovesOutputsByUpToTwoSteps()
    {
        var (differ, total, max) = Distance("seed_convnet_x86", "x86", [4, 1, 24, 24]);
        Assert.Equal(2304, total);
        Assert.InRange(differ, 500, 900); // measured: 691 of 2304
        Assert.InRange(max, 1, 2);
    }

    [GccFact]
    public void EveryFixedPointKernelStaysNearTheExecutor()
    {
        // the synthetic graph of every op (ExportKernelTests), integer-only, against the executor's PyTorch arithmetic:
        // per layer the largest integer distance; the differences of early layers carry into later ones (each layer
        // reads the integer-only run's own inputs)
        using var build = new CBuild("int-kernels");
        foreach (var e in new[] { "x86", "qnnpack" })
            build.Add(ExportKernelTests.Model(e), new ExportOptions { Engine = QEngineInfo.Parse(e), InputShape = [2, 3, 11, 13], IntegerOnly = true, Name = "m_" + e });
        build.Compile();
        var worst = new List<string>();
        foreach (var e in new[] { "x86", "qnnpack" })
        {
            var input = ExportKernelTests.Input(1);
            var want = new QuantTools.Core.Models.Execution.ModelExecutor(ExportKernelTests.Model(e), QEngineInfo.Parse(e)).Run(input, captureLayers: true);
            var (_, dumps) = build.Run("m_" + e, input);
            foreach (var layer in want.Layers)
            {
                var got = QuantTools.Core.Formats.NpyFormat.Read(Path.Combine(dumps, ExportGoldenModelTests.DumpName(layer.Name) + ".npy"));
                var a = layer.Value.IntRepr;
                int max = 0;
                for (int i = 0; i < a.Length; i++) max = Math.Max(max, (int)Math.Abs(a.GetDouble(i) - got.GetDouble(i)));
                worst.Add($"{e}/{layer.Name}: {max}");
                // measured: 0-3 steps for most layers (conv1 1: the multiplier alone); up to 8 after tanh's steep table
                // and the broadcast mul, 10 after the transposed conv and 12 after mul_relu, whose inputs already differ
                Assert.True(max <= 12, $"{e}, layer '{layer.Name}': integer-only differs from PyTorch's arithmetic by {max} steps");
            }
        }
        Assert.Contains(worst, w => !w.EndsWith(": 0", StringComparison.Ordinal)); // it is an approximation
    }

    [Fact]
    public void AFloatTensorInsideTheModelIsRefusedNamingTheLayer()
    {
        // relu6_fx dequantizes before flatten and quantizes again: float inside the model
        var graph = TorchScriptFrontEnd.Build(Fixtures.Core("models", "relu6_fx.torchscript.pt"));
        var e = Assert.Throws<QuantToolsException>(() => ModelExporter.Render(graph, new ExportOptions { InputShape = [1, 3, 20, 20], IntegerOnly = true }));
        Assert.Contains("integer-only", e.Message);
        Assert.Contains("aten::dequantize", e.Message);
        Assert.Throws<QuantToolsException>(() => ModelExporter.Render(graph, new ExportOptions { InputShape = [1, 3, 20, 20], IntegerOnly = true, Format = ExportFormat.Json }));
    }
}
