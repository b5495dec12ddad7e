using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Kernels.Requantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Export;

/// <summary>What a tensor's elements are in the exported code: quint8 / qint8 integers or float32.</summary>
public enum ExportElement
{
    UInt8,
    Int8,
    Float32,
}

/// <summary>
/// A block of memory one or more tensors live in (views share their source's). Offsets into the scratch arena are
/// assigned after planning from the buffers' lifetimes; the model input and output are the caller's memory.
/// </summary>
public sealed class ExportBuffer
{
    public int Id { get; init; }
    public long Bytes { get; init; }
    /// <summary>Index of the step that first writes it (-1 for the model input).</summary>
    public int FirstStep { get; set; }
    /// <summary>Index of the last step that reads it (or a view of it).</summary>
    public int LastStep { get; set; }
    public long Offset { get; set; } = -1;
    /// <summary>The float model input (not in scratch).</summary>
    public bool IsModelInput { get; init; }
    /// <summary>The float model output, written straight into the caller's output array (not in scratch).</summary>
    public bool IsModelOutput { get; set; }
}

/// <summary>
/// A tensor at one point of the model, as the executor would hold it: shape, element type, per-tensor qparams, and
/// the strides PyTorch's tensor would have (data is always in logical row-major order; strides only pick the kernel
/// path where PyTorch rounds differently by memory format).
/// </summary>
public sealed class ExportTensor
{
    public required int[] Shape { get; init; }
    public required long[] Strides { get; init; }
    public required DType DType { get; init; }
    public double Scale { get; init; }
    public long ZeroPoint { get; init; }
    public required ExportBuffer Buffer { get; init; }
    /// <summary>A name for the value (the graph value it was made for).</summary>
    public required string Value { get; init; }

    public bool IsQuantized => DType is DType.QUInt8 or DType.QInt8;
    public ExportElement Element => DType switch
    {
        DType.QUInt8 => ExportElement.UInt8,
        DType.QInt8 => ExportElement.Int8,
        DType.Float32 => ExportElement.Float32,
        _ => throw new InvalidOperationException($"no export element for {DType}"),
    };
    public long Numel
    {
        get
        {
            long n = 1;
            foreach (var d in Shape) n *= d;
            return n;
        }
    }
    public int ElementSize => Element == ExportElement.Float32 ? 4 : 1;
    public (int Min, int Max) Range => DType == DType.QInt8 ? (-128, 127) : (0, 255);
    public bool Signed => DType == DType.QInt8;

    public override string ToString() =>
        $"{DType.TorchName()} [{string.Join(", ", Shape)}]" + (IsQuantized ? $" ({Scale:R}, {ZeroPoint})" : "");
}

/// <summary>One operation of the exported model (a kernel call in C, a layer record in JSON).</summary>
public abstract class ExportStep
{
    /// <summary>The module path of the layer the graph node came from ("" for the root module).</summary>
    public required string Layer { get; init; }
    /// <summary>The TorchScript op (<c>quantized::conv2d_relu</c>).</summary>
    public required string TorchOp { get; init; }
    public required IReadOnlyList<ExportTensor> Inputs { get; init; }
    public required ExportTensor Output { get; init; }
    /// <summary>Short kind used in the JSON and in the C comments (conv2d, linear, add, lut, clamp, ...).</summary>
    public abstract string Kind { get; }
    /// <summary>True when the step does float arithmetic (needs an FPU or float emulation on the device).</summary>
    public abstract bool UsesFloat { get; }
    /// <summary>True for steps that only move integers (views, transposes, chunks): not counted as layers.</summary>
    public virtual bool IsDataMovement => false;
}

/// <summary><c>quantize_per_tensor</c> (vector form for every element, numerics.md point 1).</summary>
public sealed class QuantizeStep : ExportStep
{
    public override string Kind => "quantize";
    public override bool UsesFloat => true;
    public required float InverseScale { get; init; }
}

/// <summary><c>dequantize()</c> per tensor, scalar form <c>f32(sf * (float)(q - zp))</c>.</summary>
public sealed class DequantizeStep : ExportStep
{
    public override string Kind => "dequantize";
    public override bool UsesFloat => true;
}

/// <summary>quantized conv1d / conv2d / conv_transpose with the layer's prepacked weights and output stage.</summary>
public sealed class ConvStep : ExportStep
{
    public override string Kind => Weight.Shape.Transposed ? "conv_transpose2d" : Weight.SpatialDims == 1 ? "conv1d" : "conv2d";
    public override bool UsesFloat => true;
    public required PackedConvWeight Weight { get; init; }
    /// <summary>The layer's qint8 weight as PyTorch holds it ([C_out, C_in/groups, kH, kW]; transposed: [C_in, C_out/groups, kH, kW]).</summary>
    public required QTensor OriginalWeight { get; init; }
    public Tensor? FloatBias { get; init; }
    public required OutputStage Stage { get; init; }
    /// <summary>FBGEMM's depthwise kernel, or FBGEMM / oneDNN without VNNI: u8 x s8 product pairs saturate to int16.</summary>
    public bool Saturating => Weight.FbgemmDepthwise || Weight.Backend.SaturatesPairs();
    /// <summary>oneDNN without VNNI pairs input channels (2j, 2j+1) within each kernel tap instead of FBGEMM's K order.</summary>
    public bool TapPairs => Weight.Backend == QBackend.OnednnAvx2;
    public bool Relu { get; init; }
}

/// <summary>quantized linear (static) with the layer's prepacked weights and output stage.</summary>
public sealed class LinearStep : ExportStep
{
    public override string Kind => "linear";
    public override bool UsesFloat => true;
    public required PackedLinearWeight Weight { get; init; }
    public required QTensor OriginalWeight { get; init; }
    public Tensor? FloatBias { get; init; }
    public required OutputStage Stage { get; init; }
    public bool Saturating => Weight.Backend.SaturatesPairs();
    public bool Relu { get; init; }
    public int Rows { get; init; }
}

/// <summary>relu / relu6 / hardtanh / clamp: an integer clamp with bounds in the quantized domain.</summary>
public sealed class ClampStep : ExportStep
{
    public override string Kind => "clamp";
    public override bool UsesFloat => false;
    public required int Low { get; init; }
    public required int High { get; init; }
    /// <summary>The float bounds the op was given (null for relu).</summary>
    public float? FloatLow { get; init; }
    public float? FloatHigh { get; init; }
}

/// <summary>
/// An element-wise op whose output integer is a function of the input integer alone: 256-entry tables made by running
/// Core's kernel on every input value. <see cref="VectorTable"/> serves the first <see cref="QOps.VectorPrefix"/>
/// elements (ATen's vector lambda), <see cref="ScalarTable"/> the rest; they are the same array where the engine has
/// one table (QNNPACK).
/// </summary>
public sealed class LutStep : ExportStep
{
    public override string Kind => "lut";
    public override bool UsesFloat => false;
    public required string Function { get; init; }
    public required byte[] VectorTable { get; init; }
    public required byte[] ScalarTable { get; init; }
    public bool SingleTable => VectorTable.AsSpan().SequenceEqual(ScalarTable);
}

/// <summary>relu on a float tensor.</summary>
public sealed class FloatReluStep : ExportStep
{
    public override string Kind => "relu_float";
    public override bool UsesFloat => true;
}

/// <summary>max_pool2d (integer maximum over in-bounds taps).</summary>
public sealed class MaxPoolStep : ExportStep
{
    public override string Kind => "max_pool2d";
    public override bool UsesFloat => false;
    public required int KH { get; init; }
    public required int KW { get; init; }
    public required int SH { get; init; }
    public required int SW { get; init; }
    public required int PH { get; init; }
    public required int PW { get; init; }
}

/// <summary>Which of PyTorch's average-pooling kernels a step reproduces (they round differently).</summary>
public enum AvgPoolVariant
{
    /// <summary>QNNPACK q8avgpool: every window has kH·kW taps, padding reads the zero point, one multiplier.</summary>
    Qnnpack,
    /// <summary>ATen <c>avg_pool2d_out_frame</c> on NCHW memory: zero point added in float before rounding.</summary>
    Nchw,
    /// <summary>ATen <c>qavg_pool2d_nhwc</c> on channels_last memory: vector channel blocks and a scalar tail.</summary>
    Nhwc,
    /// <summary>ATen NCHW adaptive average pool: <c>rne(Σq · r)</c>, no zero-point handling.</summary>
    AdaptiveNchw,
    /// <summary>ATen channels_last adaptive average pool (the NHWC element formula over adaptive windows).</summary>
    AdaptiveNhwc,
    /// <summary>QNNPACK global average pool (<c>mean</c> over H, W).</summary>
    MeanQnnpack,
    /// <summary>ATen <c>qmean_inner_dim_kernel</c>: <c>rne(Σq / HW)</c>.</summary>
    MeanInner,
    /// <summary>mean's general path: dequantize, float sum in memory order, divide, quantize.</summary>
    MeanFloat,
}

/// <summary>avg_pool2d / adaptive_avg_pool2d / mean over H, W.</summary>
public sealed class AvgPoolStep : ExportStep
{
    public override string Kind => Variant switch
    {
        AvgPoolVariant.AdaptiveNchw or AvgPoolVariant.AdaptiveNhwc => "adaptive_avg_pool2d",
        AvgPoolVariant.MeanQnnpack or AvgPoolVariant.MeanInner or AvgPoolVariant.MeanFloat => "mean",
        _ => "avg_pool2d",
    };
    public override bool UsesFloat => true;
    public required AvgPoolVariant Variant { get; init; }
    public int KH { get; init; }
    public int KW { get; init; }
    public int SH { get; init; }
    public int SW { get; init; }
    public int PH { get; init; }
    public int PW { get; init; }
    public bool CountIncludePad { get; init; } = true;
    public int? DivisorOverride { get; init; }
    /// <summary>QNNPACK variants: the one multiplier.</summary>
    public float Multiplier { get; init; }
    /// <summary>
    /// Nchw / Nhwc: multiplier by divisor (index = divisor, 0 unused); for Nhwc this is the vector-lane multiplier.
    /// AdaptiveNchw: multiplier per output position; AdaptiveNhwc: by window size.
    /// </summary>
    public float[] Multipliers { get; init; } = [];
    /// <summary>Nhwc / AdaptiveNhwc: the scalar-tail multiplier <c>f32(1/f32(1/m))</c> by divisor.</summary>
    public float[] TailMultipliers { get; init; } = [];
    /// <summary>Adaptive variants: window starts / ends per output row and column.</summary>
    public int[] RowStart { get; init; } = [];
    public int[] RowEnd { get; init; } = [];
    public int[] ColStart { get; init; } = [];
    public int[] ColEnd { get; init; } = [];
}

/// <summary>One input of <see cref="CatStep"/>: its requantization onto the output grid.</summary>
public sealed record CatInput(bool Same, float Scale, int ZeroPoint, float Premul, int VectorChannels);

/// <summary>quantized cat along a dim: the NHWC kernel or the general dequantize / cat / quantize path.</summary>
public sealed class CatStep : ExportStep
{
    public override string Kind => "cat";
    public override bool UsesFloat => !Nhwc || Parts.Any(p => !p.Same);
    /// <summary>ATen's channels_last cat kernel (all inputs 4-d channels_last, dim 1).</summary>
    public required bool Nhwc { get; init; }
    public required int Dim { get; init; }
    public required bool Relu { get; init; }
    public required IReadOnlyList<CatInput> Parts { get; init; }
    /// <summary>NHWC kernel: <c>f32(1.0/scale)</c> (vector lanes) and <c>1.0f/f32(scale)</c> (scalar); general path: the latter.</summary>
    public required float InverseVector { get; init; }
    public required float InverseScalar { get; init; }
}

/// <summary>quantized add / add_relu / mul / mul_relu on equal shapes.</summary>
public sealed class BinaryStep : ExportStep
{
    public override string Kind => Mul ? "mul" : "add";
    public override bool UsesFloat => !(QnnpackAdd is not null);
    public required bool Mul { get; init; }
    public required bool Relu { get; init; }
    /// <summary>The kernel runs in NHWC memory order (both operands channels_last): the vector/scalar split follows it.</summary>
    public required bool Nhwc { get; init; }
    public AddKernels.AtenAddParams? AtenAdd { get; init; }
    public AddKernels.QnnpackAddParams? QnnpackAdd { get; init; }
    /// <summary>mul: <c>M = f32(f32(sa·sb)·f32(1/so))</c>.</summary>
    public float MulMultiplier { get; init; }
}

/// <summary>
/// Integers copied from a strided view of the input: <c>out[i] = in[offset + Σ idx_d·stride_d]</c> over the output's
/// row-major indices. Transpose, chunk, channel_shuffle, broadcasting and the qnnpack clamp layout are all this.
/// </summary>
public sealed class GatherStep : ExportStep
{
    public override string Kind => "gather";
    public override bool UsesFloat => false;
    public override bool IsDataMovement => true;
    public required int[] Shape { get; init; }
    public required long[] SourceStrides { get; init; }
    public required long SourceOffset { get; init; }
    public required string Why { get; init; }
}

/// <summary>The model as exported: its steps in order, the values they read and write, and the scratch layout.</summary>
public sealed class ExportPlan
{
    public required string Name { get; init; }
    public required string Source { get; init; }
    public required QEngine Engine { get; init; }
    /// <summary>The CPU class reproduced (after <see cref="EngineProfile.EffectiveCpu"/>).</summary>
    public CpuClass Cpu { get; init; } = CpuClass.Avx512Vnni;
    /// <summary>Bytes of ATen's <c>Vectorized&lt;T&gt;</c> on that class: 64 (AVX-512) or 32 (AVX2).</summary>
    public int AtenVectorBytes => Cpu.AtenVectorBytes();
    /// <summary>Elements per vector block of <c>cpu_kernel_vec</c> (two registers of quint8).</summary>
    public int VectorBlock => 2 * AtenVectorBytes;
    public required int[] InputShape { get; init; }
    public required ExportTensor Input { get; init; }
    /// <summary>The quantized input (the first quantize's output) when the model starts with one quantize of its input.</summary>
    public ExportTensor? QuantizedInput { get; init; }
    public required ExportTensor Output { get; init; }
    /// <summary>The quantized tensor the final dequantize reads, when the model ends with one.</summary>
    public ExportTensor? QuantizedOutput { get; init; }
    public required IReadOnlyList<ExportStep> Steps { get; init; }
    /// <summary>Layer names (module paths) whose quantized output appears after step i (for -DQT_DUMP), by step index.</summary>
    public required IReadOnlyDictionary<int, IReadOnlyList<(string Layer, ExportTensor Value)>> Dumps { get; init; }
    public required IReadOnlyList<ExportBuffer> Buffers { get; init; }
    public required long ScratchBytes { get; init; }

    /// <summary>Steps that compute (not only move integers).</summary>
    public int LayerCount => Steps.Count(s => !s.IsDataMovement);

    /// <summary>True when <c>run_q</c> (quantized in, quantized out) does any float arithmetic.</summary>
    public bool FpuNeeded => Steps.Any(s => s.UsesFloat && !ReferenceEquals(s, FirstQuantize) && !ReferenceEquals(s, LastDequantize));

    /// <summary>The quantize step of the model input that run_q skips.</summary>
    public ExportStep? FirstQuantize { get; init; }
    /// <summary>The dequantize step of the model output that run_q skips.</summary>
    public ExportStep? LastDequantize { get; init; }
}
