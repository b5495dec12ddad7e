using System.Reflection;
using QuantTools.Core.Tensors;

namespace QuantTools.Benchmarks;

/// <summary>
/// Binds by name to Core APIs that other engineers are still writing (QuantTools.Core.Quantization.Quantizer and
/// Observers.ObserverFactory), so this project compiles before they land; rows whose API is missing are skipped.
/// Delegates are created once, so a call costs the same as a direct call.
/// </summary>
internal static class CoreBindings
{
    public delegate void QuantizeU8(ReadOnlySpan<float> x, Span<byte> q, double scale, long zeroPoint);
    public delegate void DequantizeU8(ReadOnlySpan<byte> q, Span<float> y, double scale, long zeroPoint);

    private static readonly Assembly Core = typeof(Tensor).Assembly;
    private static readonly Type? Quantizer = Core.GetType("QuantTools.Core.Quantization.Quantizer");
    private static readonly Type? Factory = Core.GetType("QuantTools.Core.Quantization.Observers.ObserverFactory");
    private static readonly Type? Options = Core.GetType("QuantTools.Core.Quantization.Observers.ObserverOptions");

    public static readonly QuantizeU8? Quantize = Bind<QuantizeU8>(Quantizer, "QuantizePerTensor");
    public static readonly DequantizeU8? Dequantize = Bind<DequantizeU8>(Quantizer, "DequantizePerTensor");

    /// <summary>
    /// Keeps our kernels on one thread (the rows compare single-thread times): Core's quantize/dequantize kernels split
    /// inputs of at least <c>QuantizeKernels.ParallelThreshold</c> elements across cores. Returns what was done.
    /// </summary>
    public static string ForceSingleThread()
    {
        var p = Core.GetType("QuantTools.Core.Kernels.QuantizeKernels")?.GetProperty("ParallelThreshold", BindingFlags.Public | BindingFlags.Static);
        if (p is null || !p.CanWrite) return "ours: no QuantizeKernels.ParallelThreshold in this build (nothing to force)";
        p.SetValue(null, int.MaxValue);
        return "ours: QuantizeKernels.ParallelThreshold = int.MaxValue (single thread)";
    }

    public static bool HaveObservers => CreateMethod != null && Options != null;

    private static MethodInfo? CreateMethod => Factory?.GetMethod("Create", BindingFlags.Public | BindingFlags.Static,
        Options is null ? [typeof(string)] : [typeof(string), Options]);

    private static T? Bind<T>(Type? type, string name) where T : Delegate
    {
        if (type is null) return null;
        var invoke = typeof(T).GetMethod("Invoke")!;
        var m = type.GetMethod(name, BindingFlags.Public | BindingFlags.Static,
            invoke.GetParameters().Select(p => p.ParameterType).ToArray());
        return m is null ? null : (T)m.CreateDelegate(typeof(T));
    }

    /// <summary>An observer from <c>ObserverFactory.Create(kind, new ObserverOptions())</c>, with Forward and CalculateQParams bound.</summary>
    public sealed class Observer
    {
        private readonly object _o;
        private readonly MethodInfo _forward, _calc;

        public Observer(string kind)
        {
            if (!HaveObservers) throw new InvalidOperationException("ObserverFactory is not available in QuantTools.Core yet");
            _o = CreateMethod!.Invoke(null, [kind, Activator.CreateInstance(Options!)])!;
            var t = _o.GetType();
            _forward = t.GetMethod("Forward", [typeof(Tensor)]) ?? throw new MissingMethodException(t.FullName, "Forward(Tensor)");
            _calc = t.GetMethod("CalculateQParams", Type.EmptyTypes) ?? throw new MissingMethodException(t.FullName, "CalculateQParams()");
        }

        public object? Forward(Tensor x) => _forward.Invoke(_o, [x]);
        public object? CalculateQParams() => _calc.Invoke(_o, null);
    }
}
