using System.Reflection;
using QuantTools.Core.Tensors;

namespace QuantTools.Torch.Tests;

/// <summary>
/// Binds to <c>QuantTools.Core.Quantization.Quantizer</c> (written in parallel on another branch) by name, so this
/// project compiles and runs before it lands: when the type or one of its members is missing, the corresponding
/// delegate is null and the tests compare libtorch with <see cref="GoldenFormula"/> only.
/// </summary>
internal static class CoreQuantizer
{
    public delegate void QuantizeU8(ReadOnlySpan<float> x, Span<byte> q, double scale, long zeroPoint);
    public delegate void QuantizeI8(ReadOnlySpan<float> x, Span<sbyte> q, double scale, long zeroPoint);
    public delegate void QuantizeI32(ReadOnlySpan<float> x, Span<int> q, double scale, long zeroPoint);
    public delegate void DequantizeU8(ReadOnlySpan<byte> q, Span<float> y, double scale, long zeroPoint);
    public delegate void DequantizeI8(ReadOnlySpan<sbyte> q, Span<float> y, double scale, long zeroPoint);
    public delegate void DequantizeI32(ReadOnlySpan<int> q, Span<float> y, double scale, long zeroPoint);

    public static readonly Type? Type = typeof(Tensor).Assembly.GetType("QuantTools.Core.Quantization.Quantizer");

    public static readonly QuantizeU8? QuantizeSpanU8 = Bind<QuantizeU8>("QuantizePerTensor");
    public static readonly QuantizeI8? QuantizeSpanI8 = Bind<QuantizeI8>("QuantizePerTensor");
    public static readonly QuantizeI32? QuantizeSpanI32 = Bind<QuantizeI32>("QuantizePerTensor");
    public static readonly DequantizeU8? DequantizeSpanU8 = Bind<DequantizeU8>("DequantizePerTensor");
    public static readonly DequantizeI8? DequantizeSpanI8 = Bind<DequantizeI8>("DequantizePerTensor");
    public static readonly DequantizeI32? DequantizeSpanI32 = Bind<DequantizeI32>("DequantizePerTensor");
    public static readonly Func<Tensor, QParams, QTensor>? Quantize = Bind<Func<Tensor, QParams, QTensor>>("Quantize");
    public static readonly Func<QTensor, Tensor>? Dequantize = Bind<Func<QTensor, Tensor>>("Dequantize");

    public static string Describe() => Type is null
        ? "QuantTools.Core.Quantization.Quantizer not found: libtorch compared with the golden formula only"
        : $"Core Quantizer found: span quantize u8/i8/i32 {QuantizeSpanU8 != null}/{QuantizeSpanI8 != null}/{QuantizeSpanI32 != null}, " +
          $"span dequantize u8/i8/i32 {DequantizeSpanU8 != null}/{DequantizeSpanI8 != null}/{DequantizeSpanI32 != null}, " +
          $"Quantize(Tensor, QParams) {Quantize != null}, Dequantize(QTensor) {Dequantize != null}";

    private static T? Bind<T>(string name) where T : Delegate
    {
        if (Type is null) return null;
        var invoke = typeof(T).GetMethod("Invoke")!;
        var parameters = invoke.GetParameters().Select(p => p.ParameterType).ToArray();
        var m = Type.GetMethod(name, BindingFlags.Public | BindingFlags.Static, parameters);
        return m is null || m.ReturnType != invoke.ReturnType ? null : (T)m.CreateDelegate(typeof(T));
    }

    /// <summary>Our span quantizer for one dtype, widened to int; null when not available.</summary>
    public static int[]? QuantizePerTensor(float[] x, double scale, long zp, DType dtype)
    {
        switch (dtype)
        {
            case DType.QUInt8 when QuantizeSpanU8 != null:
            {
                var q = new byte[x.Length];
                QuantizeSpanU8(x, q, scale, zp);
                return Array.ConvertAll(q, v => (int)v);
            }
            case DType.QInt8 when QuantizeSpanI8 != null:
            {
                var q = new sbyte[x.Length];
                QuantizeSpanI8(x, q, scale, zp);
                return Array.ConvertAll(q, v => (int)v);
            }
            case DType.QInt32 when QuantizeSpanI32 != null:
            {
                var q = new int[x.Length];
                QuantizeSpanI32(x, q, scale, zp);
                return q;
            }
            default:
                return null;
        }
    }

    /// <summary>Our span dequantizer for one dtype; null when not available.</summary>
    public static float[]? DequantizePerTensor(int[] q, double scale, long zp, DType dtype)
    {
        var y = new float[q.Length];
        switch (dtype)
        {
            case DType.QUInt8 when DequantizeSpanU8 != null:
                DequantizeSpanU8(Array.ConvertAll(q, v => (byte)v), y, scale, zp);
                return y;
            case DType.QInt8 when DequantizeSpanI8 != null:
                DequantizeSpanI8(Array.ConvertAll(q, v => (sbyte)v), y, scale, zp);
                return y;
            case DType.QInt32 when DequantizeSpanI32 != null:
                DequantizeSpanI32(q, y, scale, zp);
                return y;
            default:
                return null;
        }
    }
}
