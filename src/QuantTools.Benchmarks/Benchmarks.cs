using BenchmarkDotNet.Attributes;
using QuantTools.Core.Tensors;
using QuantTools.Torch;
using TorchSharp;
using static TorchSharp.torch;
using CoreTensor = QuantTools.Core.Tensors.Tensor;

namespace QuantTools.Benchmarks;

internal static class Inputs
{
    public const int N = 4 * 1024 * 1024;

    /// <summary>4M float32 values, normal(0, 1), fixed seed.</summary>
    public static float[] Normal(int seed = 1234, float sigma = 1f)
    {
        var rng = new Random(seed);
        var x = new float[N];
        for (int i = 0; i < x.Length; i++)
            x[i] = sigma * (float)(Math.Sqrt(-2.0 * Math.Log(1.0 - rng.NextDouble())) * Math.Cos(2.0 * Math.PI * rng.NextDouble()));
        return x;
    }

    // qparams a quint8 MinMaxObserver would give for normal(0, 1) data of this size (about [-5.2, 5.2]).
    public const double Scale = 10.4 / 255;
    public const long ZeroPoint = 128;
}

/// <summary>quantize_per_tensor, 4M float32 -> quint8, single thread: ours vs libtorch vs a plain copy.</summary>
[BenchmarkCategory("quantize")]
public class QuantizeBenchmarks
{
    private float[] _x = [];
    private byte[] _q = [];
    private float[] _copy = [];
    private torch.Tensor? _xt;

    [GlobalSetup]
    public void Setup()
    {
        CoreBindings.ForceSingleThread();
        _x = Inputs.Normal();
        _q = new byte[_x.Length];
        _copy = new float[_x.Length];
        LibTorchReference.EnsureLoaded();
        torch.set_num_threads(1);
        _xt = TorchBridge.ToTorch(new CoreTensor(DType.Float32, [_x.Length], _x));
    }

    [GlobalCleanup]
    public void Cleanup() => _xt?.Dispose();

    [Benchmark(Description = "quantize/ours")]
    public void Quantize_Ours() => CoreBindings.Quantize!(_x, _q, Inputs.Scale, Inputs.ZeroPoint);

    [Benchmark(Description = "quantize/libtorch")]
    public void Quantize_LibTorch()
    {
        using var q = torch.quantize_per_tensor(_xt!, Inputs.Scale, Inputs.ZeroPoint, ScalarType.QUInt8);
    }

    [Benchmark(Description = "quantize/copy")]
    public void Quantize_Copy() => _x.AsSpan().CopyTo(_copy);
}

/// <summary>dequantize, 4M quint8 -> float32, single thread: ours vs libtorch vs a plain copy.</summary>
[BenchmarkCategory("dequantize")]
public class DequantizeBenchmarks
{
    private byte[] _q = [];
    private float[] _y = [];
    private float[] _src = [];
    private torch.Tensor? _qt;

    [GlobalSetup]
    public void Setup()
    {
        CoreBindings.ForceSingleThread();
        var x = Inputs.Normal();
        LibTorchReference.EnsureLoaded();
        torch.set_num_threads(1);
        using var xt = TorchBridge.ToTorch(new CoreTensor(DType.Float32, [x.Length], x));
        _qt = torch.quantize_per_tensor(xt, Inputs.Scale, Inputs.ZeroPoint, ScalarType.QUInt8);
        using var ir = _qt.int_repr();
        _q = ir.bytes.ToArray();
        _y = new float[x.Length];
        _src = x;
    }

    [GlobalCleanup]
    public void Cleanup() => _qt?.Dispose();

    [Benchmark(Description = "dequantize/ours")]
    public void Dequantize_Ours() => CoreBindings.Dequantize!(_q, _y, Inputs.Scale, Inputs.ZeroPoint);

    [Benchmark(Description = "dequantize/libtorch")]
    public void Dequantize_LibTorch()
    {
        using var y = _qt!.dequantize();
    }

    [Benchmark(Description = "dequantize/copy")]
    public void Dequantize_Copy() => _src.AsSpan().CopyTo(_y);
}

/// <summary>Observer updates on 4M float32 (ours only; PyTorch's Xeon times are a printed reference).</summary>
[BenchmarkCategory("observer")]
public class ObserverBenchmarks
{
    private CoreTensor _x = null!;
    private CoreTensor _wider = null!;
    private CoreBindings.Observer _minmax = null!;
    private CoreBindings.Observer _histFed = null!;

    [GlobalSetup]
    public void Setup()
    {
        _x = new CoreTensor(DType.Float32, [Inputs.N], Inputs.Normal());
        _wider = new CoreTensor(DType.Float32, [Inputs.N], Inputs.Normal(seed: 99, sigma: 1.5f));
        _minmax = new CoreBindings.Observer("MinMax");
        _minmax.Forward(_x);
        _minmax.Forward(_wider);
        _histFed = new CoreBindings.Observer("Histogram");
        _histFed.Forward(_x);
        _histFed.Forward(_wider);
    }

    [Benchmark(Description = "MinMaxObserver.update")]
    public object? MinMaxObserver_Update() => _minmax.Forward(_x);

    [Benchmark(Description = "HistogramObserver.calculate_qparams")]
    public object? HistogramObserver_CalculateQParams() => _histFed.CalculateQParams();
}

/// <summary>
/// One HistogramObserver update whose range grows past the previous one (PyTorch's "update_growing"): each
/// invocation gets a fresh observer that has seen normal(0, 1) and is then fed normal(0, 1.5).
/// </summary>
[BenchmarkCategory("observer")]
[InvocationCount(1, 1)]
public class HistogramUpdateBenchmarks
{
    private CoreTensor _x = null!;
    private CoreTensor _wider = null!;
    private CoreBindings.Observer _hist = null!;

    [GlobalSetup]
    public void Setup()
    {
        _x = new CoreTensor(DType.Float32, [Inputs.N], Inputs.Normal());
        _wider = new CoreTensor(DType.Float32, [Inputs.N], Inputs.Normal(seed: 99, sigma: 1.5f));
    }

    [IterationSetup]
    public void FreshObserver()
    {
        _hist = new CoreBindings.Observer("Histogram");
        _hist.Forward(_x);
    }

    [Benchmark(Description = "HistogramObserver.update")]
    public object? HistogramObserver_Update() => _hist.Forward(_wider);
}
