using QuantTools.Core.Tensors;

namespace QuantTools.Torch.Tests;

/// <summary>
/// The Core quantizer entry points the cross-checks call (bound at compile time: a missing or renamed member is a
/// build error, never a silently skipped comparison).
/// </summary>
internal static class CoreQuantizer
{
    public delegate void QuantizeU8(ReadOnlySpan<float> x, Span<byte> q, double scale, long zeroPoint);
    public delegate void QuantizeI8(ReadOnlySpan<float> x, Span<sbyte> q, double scale, long zeroPoint);
    public delegate void QuantizeI32(ReadOnlySpan<float> x, Span<int> q, double scale, long zeroPoint);
    public delegate void DequantizeU8(ReadOnlySpan<byte> q, Span<float> y, double scale, long zeroPoint);
    public delegate void DequantizeI8(ReadOnlySpan<sbyte> q, Span<float> y, double scale, long zeroPoint);
    public delegate void DequantizeI32(ReadOnlySpan<int> q, Span<float> y, double scale, long zeroPoint);

    public static readonly Type? Type = typeof(QuantTools.Core.Quantization.Quantizer);

    public static readonly QuantizeU8? QuantizeSpanU8 = QuantTools.Core.Quantization.Quantizer.QuantizePerTensor;
    public static readonly QuantizeI8? QuantizeSpanI8 = QuantTools.Core.Quantization.Quantizer.QuantizePerTensor;
    public static readonly QuantizeI32? QuantizeSpanI32 = QuantTools.Core.Quantization.Quantizer.QuantizePerTensor;
    public static readonly DequantizeU8? DequantizeSpanU8 = QuantTools.Core.Quantization.Quantizer.DequantizePerTensor;
    public static readonly DequantizeI8? DequantizeSpanI8 = QuantTools.Core.Quantization.Quantizer.DequantizePerTensor;
    public static readonly DequantizeI32? DequantizeSpanI32 = QuantTools.Core.Quantization.Quantizer.DequantizePerTensor;
    public static readonly Func<Tensor, QParams, QTensor>? Quantize = QuantTools.Core.Quantization.Quantizer.Quantize;
    public static readonly Func<QTensor, Tensor>? Dequantize = QuantTools.Core.Quantization.Quantizer.Dequantize;

    public static string Describe() => Type is null
        ? "QuantTools.Core.Quantization.Quantizer not found: libtorch compared with the golden formula only"
        : $"Core Quantizer found: span quantize u8/i8/i32 {QuantizeSpanU8 != null}/{QuantizeSpanI8 != null}/{QuantizeSpanI32 != null}, " +
          $"span dequantize u8/i8/i32 {DequantizeSpanU8 != null}/{DequantizeSpanI8 != null}/{DequantizeSpanI32 != null}, " +
          $"Quantize(Tensor, QParams) {Quantize != null}, Dequantize(QTensor) {Dequantize != null}";

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
