using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Pooling;
using QuantTools.Core.Tensors;
using TorchSharp;

namespace QuantTools.Benchmarks;

// The conv / linear rows: ours vs libtorch vs onnxruntime on the models of tests/fixtures/bench, on 1 and on 2 threads.
// Method names are unique across classes (Program.cs keys the medians by method name). Each GlobalSetup builds the
// three implementations for its thread count and checks ours == libtorch bit for bit before anything is timed.

/// <summary>Shared setup: one <see cref="KernelModel"/> per benchmark case, disposed after it.</summary>
public abstract class KernelModelBenchmarks
{
    private KernelModel? _m;
    internal KernelModel M => _m!;

    protected void Setup(string model, int threads)
    {
        _m = new KernelModel(model, threads);
        Console.WriteLine("// " + _m.Describe());
    }

    private protected static void Torch(KernelModel m)
    {
        // torch.set_num_threads is OpenMP's per-thread setting: keep it right on the thread that runs the workload
        if (torch.get_num_threads() != m.Threads) torch.set_num_threads(m.Threads);
        m.RunTorch();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _m?.Dispose();
        _m = null;
        Parallelism.MaxThreads = 1;
        torch.set_num_threads(1);
    }
}

[BenchmarkCategory("kernels", "linear")]
public class QLinearBenchmarks : KernelModelBenchmarks
{
    [GlobalSetup(Targets = [nameof(Linear_Ours_T1), nameof(Linear_LibTorch_T1), nameof(Linear_Ort_T1)])]
    public void Setup1() => Setup("qlinear_256x1024x1024", 1);

    [GlobalSetup(Targets = [nameof(Linear_Ours_T2), nameof(Linear_LibTorch_T2), nameof(Linear_Ort_T2)])]
    public void Setup2() => Setup("qlinear_256x1024x1024", 2);

    [Benchmark(Description = "linear/ours/1T")] public void Linear_Ours_T1() => M.RunOurs();
    [Benchmark(Description = "linear/libtorch/1T")] public void Linear_LibTorch_T1() => Torch(M);
    [Benchmark(Description = "linear/onnxruntime/1T")] public void Linear_Ort_T1() => M.RunOrt();
    [Benchmark(Description = "linear/ours/2T")] public void Linear_Ours_T2() => M.RunOurs();
    [Benchmark(Description = "linear/libtorch/2T")] public void Linear_LibTorch_T2() => Torch(M);
    [Benchmark(Description = "linear/onnxruntime/2T")] public void Linear_Ort_T2() => M.RunOrt();
}

[BenchmarkCategory("kernels", "conv")]
public class QConv64Benchmarks : KernelModelBenchmarks
{
    [GlobalSetup(Targets = [nameof(Conv64_Ours_T1), nameof(Conv64_LibTorch_T1), nameof(Conv64_Ort_T1)])]
    public void Setup1() => Setup("qconv_64x56x56_k3", 1);

    [GlobalSetup(Targets = [nameof(Conv64_Ours_T2), nameof(Conv64_LibTorch_T2), nameof(Conv64_Ort_T2)])]
    public void Setup2() => Setup("qconv_64x56x56_k3", 2);

    [Benchmark(Description = "conv64/ours/1T")] public void Conv64_Ours_T1() => M.RunOurs();
    [Benchmark(Description = "conv64/libtorch/1T")] public void Conv64_LibTorch_T1() => Torch(M);
    [Benchmark(Description = "conv64/onnxruntime/1T")] public void Conv64_Ort_T1() => M.RunOrt();
    [Benchmark(Description = "conv64/ours/2T")] public void Conv64_Ours_T2() => M.RunOurs();
    [Benchmark(Description = "conv64/libtorch/2T")] public void Conv64_LibTorch_T2() => Torch(M);
    [Benchmark(Description = "conv64/onnxruntime/2T")] public void Conv64_Ort_T2() => M.RunOrt();
}

[BenchmarkCategory("kernels", "conv")]
public class QConv128Benchmarks : KernelModelBenchmarks
{
    [GlobalSetup(Targets = [nameof(Conv128_Ours_T1), nameof(Conv128_LibTorch_T1), nameof(Conv128_Ort_T1)])]
    public void Setup1() => Setup("qconv_128x28x28_k3", 1);

    [GlobalSetup(Targets = [nameof(Conv128_Ours_T2), nameof(Conv128_LibTorch_T2), nameof(Conv128_Ort_T2)])]
    public void Setup2() => Setup("qconv_128x28x28_k3", 2);

    [Benchmark(Description = "conv128/ours/1T")] public void Conv128_Ours_T1() => M.RunOurs();
    [Benchmark(Description = "conv128/libtorch/1T")] public void Conv128_LibTorch_T1() => Torch(M);
    [Benchmark(Description = "conv128/onnxruntime/1T")] public void Conv128_Ort_T1() => M.RunOrt();
    [Benchmark(Description = "conv128/ours/2T")] public void Conv128_Ours_T2() => M.RunOurs();
    [Benchmark(Description = "conv128/libtorch/2T")] public void Conv128_LibTorch_T2() => Torch(M);
    [Benchmark(Description = "conv128/onnxruntime/2T")] public void Conv128_Ort_T2() => M.RunOrt();
}

/// <summary>Int8 dot-product instruction peaks, <see cref="DotProductPeak.Macs"/> MACs per invocation.</summary>
[BenchmarkCategory("kernels", "peak")]
public class DotProductPeakBenchmarks
{
    private Vector256<byte> _a8;
    private Vector256<sbyte> _b8;
    private Vector512<short> _a16;

    [GlobalSetup]
    public void Setup()
    {
        if (DotProductPeak.EvexUnavailable is null) DotProductPeak.EnsureEvex();
        _a8 = Vector256.Create((byte)3);
        _b8 = Vector256.Create((sbyte)-2);
        _a16 = Vector512.Create((short)1);
    }

    [Benchmark(Description = "vpdpbusd zmm (EVEX machine code)/1T")]
    public void Vpdpbusd512_Peak() => DotProductPeak.Vpdpbusd512();

    [Benchmark(Description = "vpdpbusd zmm (EVEX machine code)/2T")]
    public void Vpdpbusd512_Peak_T2() =>
        Parallel.For(0, 2, new ParallelOptions { MaxDegreeOfParallelism = 2 }, _ => DotProductPeak.Vpdpbusd512(DotProductPeak.Macs / 2));

    [Benchmark(Description = "vpdpbusd ymm (EVEX machine code)/1T")]
    public void Vpdpbusd256_Peak() => DotProductPeak.Vpdpbusd256();

    [Benchmark(Description = "vpdpbusd ymm (EVEX machine code)/2T")]
    public void Vpdpbusd256_Peak_T2() =>
        Parallel.For(0, 2, new ParallelOptions { MaxDegreeOfParallelism = 2 }, _ => DotProductPeak.Vpdpbusd256(DotProductPeak.Macs / 2));

    [Benchmark(Description = "AvxVnni.MultiplyWideningAndAdd ymm/1T")]
    public Vector256<int> AvxVnni256_Peak() => DotProductPeak.AvxVnni256(_a8, _b8);

    [Benchmark(Description = "Avx512BW.MultiplyAddAdjacent + Add zmm/1T")]
    public Vector512<int> Vpmaddwd512_Peak() => DotProductPeak.Vpmaddwd512(_a16);
}

/// <summary>
/// Memory-bound quantized ops on a 1x64x112x112 quint8 tensor (784 KiB, the size of a ResNet stem output), single
/// thread (these kernels do not split work over cores), vs a copy of the bytes they read.
/// </summary>
[BenchmarkCategory("kernels", "elementwise")]
public class MemoryBoundBenchmarks
{
    public static readonly int[] Shape = [1, 64, 112, 112];
    private QTensor _a = null!, _b = null!;
    private byte[] _src1 = [], _src2 = [], _dst1 = [], _dst2 = [], _out = [], _poolOut = [];

    [GlobalSetup]
    public void Setup()
    {
        Parallelism.MaxThreads = 1;
        var rng = new Random(11);
        QTensor Random(double scale, long zp)
        {
            var t = Tensor.Zeros(DType.UInt8, Shape);
            rng.NextBytes(t.AsSpan<byte>());
            return new QTensor(t, QParams.PerTensor(scale, zp, DType.QUInt8));
        }
        _a = Random(0.05, 128);
        _b = Random(0.04, 120);
        _src1 = _a.IntRepr.AsSpan<byte>().ToArray();
        _src2 = _b.IntRepr.AsSpan<byte>().ToArray();
        _dst1 = new byte[_src1.Length];
        _dst2 = new byte[_src2.Length];
        _out = new byte[_src1.Length];
        _poolOut = new byte[Shape[0] * Shape[1] * (Shape[2] / 2) * (Shape[3] / 2)];
    }

    [Benchmark(Description = "quantized add/ours")]
    public QTensor Add_Ours() => QElementwise.Add(_a, _b, 0.07, 125, relu: false, QEngine.X86);

    [Benchmark(Description = "relu/ours")]
    public QTensor Relu_Ours() => QActivation.Relu(_a, QEngine.X86);

    [Benchmark(Description = "max_pool2d 3x3 s2 p1/ours")]
    public QTensor MaxPool_Ours() => QPool.MaxPool2d(_a, 3, 3, 2, 2, 1, 1, ceilMode: false, QEngine.X86);

    [Benchmark(Description = "avg_pool2d 3x3 s2 p1/ours")]
    public QTensor AvgPool_Ours() => QPool.AvgPool2d(_a, 3, 3, 2, 2, 1, 1, ceilMode: false, countIncludePad: true, divisorOverride: null, QEngine.X86);

    // The same ops into a caller's output buffer (the span overloads): no per-call allocation, like the copy peers.

    [Benchmark(Description = "quantized add into output/ours")]
    public void Add_Into() => QElementwise.Add(_a, _b, 0.07, 125, relu: false, QEngine.X86, _out);

    [Benchmark(Description = "relu into output/ours")]
    public void Relu_Into() => QActivation.Relu(_a, QEngine.X86, _out);

    [Benchmark(Description = "max_pool2d 3x3 s2 p1 into output/ours")]
    public void MaxPool_Into() => QPool.MaxPool2d(_a, 3, 3, 2, 2, 1, 1, ceilMode: false, QEngine.X86, _poolOut);

    [Benchmark(Description = "avg_pool2d 3x3 s2 p1 into output/ours")]
    public void AvgPool_Into() => QPool.AvgPool2d(_a, 3, 3, 2, 2, 1, 1, ceilMode: false, countIncludePad: true, divisorOverride: null, QEngine.X86, channelsLast: false, _poolOut);

    /// <summary>The bytes one input tensor holds, copied to a second buffer (peer of the single-input ops).</summary>
    [Benchmark(Description = "copy 1 input/copy")]
    public void Copy_OneInput() => _src1.AsSpan().CopyTo(_dst1);

    /// <summary>Both inputs of add copied (peer of add).</summary>
    [Benchmark(Description = "copy 2 inputs/copy")]
    public void Copy_TwoInputs()
    {
        _src1.AsSpan().CopyTo(_dst1);
        _src2.AsSpan().CopyTo(_dst2);
    }
}
