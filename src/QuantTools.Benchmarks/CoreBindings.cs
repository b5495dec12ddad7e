using QuantTools.Core.Kernels;
using QuantTools.Core.Quantization;
using QuantTools.Core.Quantization.Observers;
using QuantTools.Core.Tensors;

namespace QuantTools.Benchmarks;

/// <summary>The Core entry points the benchmark rows call, in one place.</summary>
internal static class CoreBindings
{
    public delegate void QuantizeU8(ReadOnlySpan<float> x, Span<byte> q, double scale, long zeroPoint);
    public delegate void DequantizeU8(ReadOnlySpan<byte> q, Span<float> y, double scale, long zeroPoint);

    public static readonly QuantizeU8? Quantize = Quantizer.QuantizePerTensor;
    public static readonly DequantizeU8? Dequantize = Quantizer.DequantizePerTensor;

    /// <summary>Keeps our kernels on one thread (the rows compare single-thread times). Returns what was done.</summary>
    public static string ForceSingleThread()
    {
        Parallelism.MaxThreads = 1;
        return "ours: Parallelism.MaxThreads = 1 (single thread)";
    }

    public static bool HaveObservers => true;

    /// <summary>An observer from <c>ObserverFactory.Create(kind, new ObserverOptions())</c>.</summary>
    public sealed class Observer(string kind)
    {
        private readonly QuantTools.Core.Quantization.Observers.Observer _o = ObserverFactory.Create(kind, new ObserverOptions());

        public object? Forward(Tensor x)
        {
            _o.Forward(x);
            return null;
        }

        public object? CalculateQParams() => _o.CalculateQParams();
    }
}
