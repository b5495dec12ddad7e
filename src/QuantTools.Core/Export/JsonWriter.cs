using System.Text;
using System.Text.Json;
using QuantTools.Core.Formats;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Requantization;
using QuantTools.Core.Models;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Export;

/// <summary>
/// Writes an <see cref="ExportPlan"/> as <c>name.json</c> (every layer: op, in / out qparams, weight qparams, clamp
/// bounds in the quantized domain, requantization multipliers as float and as (int32, shift), the formula and its
/// rounding) and <c>name.safetensors</c> (integer weights, float / int32 biases, tables). The schema is
/// src/QuantTools.Core/Export/JsonSchema.md.
/// </summary>
internal static class JsonWriter
{
    public const int SchemaVersion = 1;

    public static (IReadOnlyList<(string File, byte[] Content)> Files, long FlashBytes) Write(ExportPlan plan)
    {
        // width-dependent values (vector blocks) are the plan's CPU class's
        using var cpu = CpuClasses.Use(plan.Cpu);
        var tensors = new List<(string, Tensor)>();
        long flash = 0;
        string Add(string name, Tensor t)
        {
            tensors.Add((name, t));
            flash += t.Length * (t.DType switch { DType.Float32 or DType.Int32 => 4, _ => 1 });
            return name;
        }
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", "quanttools-export");
            w.WriteNumber("schema_version", SchemaVersion);
            w.WriteString("name", plan.Name);
            w.WriteString("source", Path.GetFileName(plan.Source));
            w.WriteString("engine", plan.Engine.TorchName());
            w.WriteString("cpu_class", plan.Cpu.Name());
            w.WriteString("tensors", plan.Name + ".safetensors");
            w.WritePropertyName("input");
            Value(w, plan.Input);
            if (plan.QuantizedInput is { } qi) { w.WritePropertyName("quantized_input"); Value(w, qi); }
            w.WritePropertyName("output");
            Value(w, plan.Output);
            if (plan.QuantizedOutput is { } qo) { w.WritePropertyName("quantized_output"); Value(w, qo); }
            w.WriteNumber("scratch_bytes", plan.ScratchBytes);
            w.WriteNumber("layer_count", plan.LayerCount);
            w.WriteBoolean("fpu_needed", plan.FpuNeeded);
            w.WriteStartArray("layers");
            var names = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < plan.Steps.Count; i++)
            {
                var s = plan.Steps[i];
                string key = s.Layer.Length == 0 ? "root" : s.Layer;
                if (!names.Add(key)) key = $"{key}#{i}";
                Layer(w, s, i, key, Add);
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        var meta = new Dictionary<string, string> { ["format"] = "quanttools-export", ["model"] = plan.Name, ["engine"] = plan.Engine.TorchName() };
        var st = SafeTensorsFile.ToBytes(tensors, meta);
        return ([(plan.Name + ".json", ms.ToArray()), (plan.Name + ".safetensors", st)], flash);
    }

    private static void Value(Utf8JsonWriter w, ExportTensor t)
    {
        w.WriteStartObject();
        w.WriteString("value", t.Value);
        w.WriteString("dtype", t.DType.TorchName());
        w.WritePropertyName("shape");
        Ints(w, t.Shape);
        w.WriteString("memory_format", t.Shape.Length == 4 && Layout.IsChannelsLastContiguous(t.Shape, t.Strides) && !Layout.IsContiguous(t.Shape, t.Strides)
            ? "channels_last" : "contiguous");
        if (t.IsQuantized)
        {
            w.WriteNumber("scale", t.Scale);
            w.WriteNumber("scale_f32", (float)t.Scale);
            w.WriteNumber("zero_point", t.ZeroPoint);
            var (lo, hi) = t.Range;
            w.WriteNumber("qmin", lo);
            w.WriteNumber("qmax", hi);
        }
        w.WriteEndObject();
    }

    private static void Ints(Utf8JsonWriter w, IEnumerable<int> v)
    {
        w.WriteStartArray();
        foreach (var x in v) w.WriteNumberValue(x);
        w.WriteEndArray();
    }

    private static void Floats(Utf8JsonWriter w, string name, IEnumerable<float> v)
    {
        w.WriteStartArray(name);
        foreach (var x in v)
        {
            if (float.IsFinite(x)) w.WriteNumberValue(x);
            else w.WriteStringValue(float.IsNaN(x) ? "nan" : x > 0 ? "inf" : "-inf");
        }
        w.WriteEndArray();
    }

    private const string FixedPointRule =
        "M ~= multiplier * 2^-31 * 2^-shift (TFLite QuantizeMultiplier: frexp, round half away from zero of q*2^31); apply as " +
        "RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc * 2^max(-shift,0), multiplier), max(shift,0)) (gemmlowp; round half away from zero). " +
        "An approximation of the float multiplier: PyTorch itself uses the float form in 'formula'.";

    private static void FixedPoint(Utf8JsonWriter w, IReadOnlyList<float> m)
    {
        w.WriteStartObject("fixed_point");
        var pairs = m.Select(v => float.IsFinite(v) && v >= 0 ? FixedPointMultiplier.From(v) : (0, 0)).ToList();
        w.WriteStartArray("multiplier");
        foreach (var p in pairs) w.WriteNumberValue(p.Item1);
        w.WriteEndArray();
        w.WriteStartArray("shift");
        foreach (var p in pairs) w.WriteNumberValue(p.Item2);
        w.WriteEndArray();
        w.WriteString("rounding", FixedPointRule);
        w.WriteEndObject();
    }

    private static void Layer(Utf8JsonWriter w, ExportStep s, int index, string key, Func<string, Tensor, string> add)
    {
        w.WriteStartObject();
        w.WriteNumber("index", index);
        w.WriteString("name", s.Layer);
        w.WriteString("op", s.TorchOp);
        w.WriteString("kind", s.Kind);
        w.WriteStartArray("inputs");
        foreach (var i in s.Inputs) Value(w, i);
        w.WriteEndArray();
        w.WritePropertyName("output");
        Value(w, s.Output);
        w.WriteBoolean("uses_float", s.UsesFloat);
        switch (s)
        {
            case QuantizeStep q:
                w.WriteNumber("inverse_scale", q.InverseScale);
                w.WriteString("formula", "q = clamp(cvtps2dq(min(f32(x * inverse_scale), 2147483520)) + zero_point, qmin, qmax); cvtps2dq rounds half to even, NaN -> INT32_MIN; int32 wraparound on + zero_point");
                break;
            case DequantizeStep:
                w.WriteString("formula", "x = f32(scale_f32 * (float)(q - zero_point))");
                break;
            case ConvStep c: ConvLayer(w, c, key, add); break;
            case LinearStep l: LinearLayer(w, l, key, add); break;
            case ClampStep c:
                w.WritePropertyName("clamp");
                Ints(w, [c.Low, c.High]);
                if (c.FloatLow is { } fl) w.WriteNumber("float_min", fl);
                if (c.FloatHigh is { } fh) w.WriteNumber("float_max", fh);
                w.WriteString("formula", "y = min(max(q, clamp[0]), clamp[1]); bounds = clamp(quantize_val(float bound) with the input qparams, qmin, qmax)");
                break;
            case LutStep l:
                w.WriteString("function", l.Function);
                w.WriteString("table", add(key + ".lut", new Tensor(DType.UInt8, [256], (byte[])l.VectorTable.Clone())));
                if (!l.SingleTable)
                {
                    w.WriteString("tail_table", add(key + ".lut_tail", new Tensor(DType.UInt8, [256], (byte[])l.ScalarTable.Clone())));
                    w.WriteNumber("vector_block", QOps.VectorBlock);
                    w.WriteString("formula", "y[i] = (i < n - n % vector_block ? table : tail_table)[raw byte of q[i]] (ATen's vector lambda, then its scalar lambda; i in logical order)");
                }
                else w.WriteString("formula", "y[i] = table[raw byte of q[i]]");
                break;
            case FloatReluStep:
                w.WriteString("formula", "y = x > 0 || isnan(x) ? x : 0");
                break;
            case MaxPoolStep m:
                w.WritePropertyName("kernel_size"); Ints(w, [m.KH, m.KW]);
                w.WritePropertyName("stride"); Ints(w, [m.SH, m.SW]);
                w.WritePropertyName("padding"); Ints(w, [m.PH, m.PW]);
                w.WriteString("formula", "y = max over the in-bounds taps (padding never wins)");
                break;
            case AvgPoolStep a: PoolLayer(w, a); break;
            case CatStep c:
                w.WriteNumber("dim", c.Dim);
                w.WriteBoolean("relu", c.Relu);
                w.WriteString("kernel", c.Nhwc ? "qcat_nhwc" : "general");
                w.WriteNumber("inverse_vector", c.InverseVector);
                w.WriteNumber("inverse_scalar", c.InverseScalar);
                w.WriteStartArray("parts");
                foreach (var p in c.Parts)
                {
                    w.WriteStartObject();
                    w.WriteBoolean("copied", p.Same);
                    w.WriteNumber("scale_f32", p.Scale);
                    w.WriteNumber("zero_point", p.ZeroPoint);
                    w.WriteNumber("premul", p.Premul);
                    w.WriteNumber("vector_channels", p.VectorChannels);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteString("formula", c.Nhwc
                    ? "inputs with the output's qparams are copied; else channels < vector_channels: quantize_vector(fma(scale, q, premul), inverse_vector), others: quantize_val(scale*(q-zp), inverse_scalar)"
                    : "each input dequantized (scale_f32*(q-zp)), concatenated, quantized with the output qparams (vector form, inverse_scalar)");
                break;
            case BinaryStep b: BinaryLayer(w, b); break;
            case GatherStep g:
                w.WriteString("movement", g.Why);
                w.WritePropertyName("shape"); Ints(w, g.Shape);
                w.WriteStartArray("source_strides");
                foreach (var v in g.SourceStrides) w.WriteNumberValue(v);
                w.WriteEndArray();
                w.WriteNumber("source_offset", g.SourceOffset);
                w.WriteString("formula", "out[i] = in[source_offset + sum_d idx_d * source_strides[d]] over the row-major indices of shape");
                break;
        }
        w.WriteEndObject();
    }

    private static void WeightInfo(Utf8JsonWriter w, QTensor weight, string tensor)
    {
        w.WriteStartObject("weight");
        w.WriteString("tensor", tensor);
        w.WriteString("dtype", weight.DType.TorchName());
        w.WritePropertyName("shape"); Ints(w, weight.Shape);
        var qp = weight.QParams;
        w.WriteString("qscheme", qp.QScheme.TorchName());
        if (qp.IsPerChannel) w.WriteNumber("axis", qp.Axis);
        w.WriteStartArray("scale");
        foreach (var v in qp.Scales) w.WriteNumberValue(v);
        w.WriteEndArray();
        w.WriteStartArray("zero_point");
        foreach (var v in qp.ZeroPoints) w.WriteNumberValue(v);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Requant(Utf8JsonWriter w, OutputStage st, bool perChannel, string key, Tensor? floatBias, Func<string, Tensor, string> add, bool saturating)
    {
        w.WriteString("backend", st.Backend.ToString().ToLowerInvariant());
        w.WriteString("accumulator", saturating
            ? "sum over K pairs (raw u8 x s8, K order) of sat16(a0*w0 + a1*w1) - a_zp*sum(w) - w_zp*sum(a) + K*a_zp*w_zp (FBGEMM vpmaddubsw)"
            : "sum over K of (a - a_zp)*(w - w_zp), int32");
        w.WriteStartObject("bias");
        if (floatBias is not null) w.WriteString("float_tensor", add(key + ".bias", floatBias.ToFloat32()));
        if (st.QBias is not null)
        {
            w.WriteString("int32_tensor", add(key + ".bias_int32", new Tensor(DType.Int32, [st.QBias.Length], (int[])st.QBias.Clone())));
            w.WriteString("int32_rule", "clamp_int32(rne(f32(b * f32(1 / f32(s_w * s_in)))))  (QNNPACK quantizes the bias per run)");
        }
        if (st.Beta is not null)
        {
            w.WriteString("accumulator_tensor", add(key + ".bias_acc", new Tensor(DType.Float32, [st.Beta.Length], (float[])st.Beta.Clone())));
            w.WriteString("accumulator_rule", perChannel || st.Backend == QBackend.Onednn
                ? "beta = f32(b / f32(s_in * s_w))  (bias kept float, in accumulator units)"
                : "beta = f32(b * f32(1 / f32(s_in * s_w)))  (bias kept float, in accumulator units; reciprocal in double)");
        }
        if (floatBias is null) w.WriteBoolean("none", true);
        w.WriteEndObject();
        w.WriteStartObject("requantization");
        Floats(w, "multiplier", st.Multiplier);
        w.WriteString("multiplier_rule", st.Backend == QBackend.Qnnpack
            ? "R = f32(f32(s_w * s_in) * f32(1 / s_out))"
            : "M = f32(f32(s_in * s_w) / s_out)");
        FixedPoint(w, st.Multiplier);
        w.WriteString("formula", st.Backend == QBackend.Qnnpack
            ? "v = f32((float)(acc + bias_int32) * R); r = cvtps2dq(v) (round half to even); y = clamp(sat16(sat16(r) + zero_point), clamp[0], clamp[1])"
            : "v = f32(f32((float)acc + beta) * M); r = cvtps2dq(v) (round half to even); y = clamp(sat16(sat16(r) + zero_point), clamp[0], clamp[1])");
        w.WriteNumber("zero_point", st.ZeroPoint);
        w.WritePropertyName("clamp");
        Ints(w, [st.Low, st.High]);
        w.WriteEndObject();
    }

    private static void ConvLayer(Utf8JsonWriter w, ConvStep c, string key, Func<string, Tensor, string> add)
    {
        var sh = c.Weight.Shape;
        w.WriteStartObject("conv");
        w.WriteNumber("spatial_dims", c.Weight.SpatialDims);
        w.WriteNumber("in_channels", sh.InChannels);
        w.WriteNumber("out_channels", sh.OutChannels);
        w.WritePropertyName("kernel_size"); Ints(w, [sh.KernelH, sh.KernelW]);
        w.WritePropertyName("stride"); Ints(w, [sh.StrideH, sh.StrideW]);
        w.WritePropertyName("padding"); Ints(w, [sh.PadH, sh.PadW]);
        w.WritePropertyName("dilation"); Ints(w, [sh.DilationH, sh.DilationW]);
        w.WriteNumber("groups", sh.Groups);
        w.WriteBoolean("transposed", sh.Transposed);
        if (sh.Transposed) { w.WritePropertyName("output_padding"); Ints(w, [sh.OutputPadH, sh.OutputPadW]); }
        w.WriteBoolean("relu", c.Relu);
        w.WriteEndObject();
        WeightInfo(w, c.OriginalWeight, add(key + ".weight", c.OriginalWeight.IntRepr));
        Requant(w, c.Stage, c.Weight.PerChannel, key, c.FloatBias, add, c.Saturating);
    }

    private static void LinearLayer(Utf8JsonWriter w, LinearStep l, string key, Func<string, Tensor, string> add)
    {
        w.WriteStartObject("linear");
        w.WriteNumber("in_features", l.Weight.InFeatures);
        w.WriteNumber("out_features", l.Weight.OutFeatures);
        w.WriteBoolean("relu", l.Relu);
        w.WriteEndObject();
        WeightInfo(w, l.OriginalWeight, add(key + ".weight", l.OriginalWeight.IntRepr));
        Requant(w, l.Stage, l.Weight.PerChannel, key, l.FloatBias, add, l.Saturating);
    }

    private static void PoolLayer(Utf8JsonWriter w, AvgPoolStep a)
    {
        w.WriteString("variant", a.Variant.ToString());
        if (a.Variant is not (AvgPoolVariant.MeanFloat or AvgPoolVariant.MeanInner or AvgPoolVariant.MeanQnnpack or AvgPoolVariant.AdaptiveNchw or AvgPoolVariant.AdaptiveNhwc))
        {
            w.WritePropertyName("kernel_size"); Ints(w, [a.KH, a.KW]);
            w.WritePropertyName("stride"); Ints(w, [a.SH, a.SW]);
            w.WritePropertyName("padding"); Ints(w, [a.PH, a.PW]);
            w.WriteBoolean("count_include_pad", a.CountIncludePad);
            if (a.DivisorOverride is { } d) w.WriteNumber("divisor_override", d);
        }
        if (a.Variant is AvgPoolVariant.Qnnpack or AvgPoolVariant.MeanQnnpack) w.WriteNumber("multiplier", a.Multiplier);
        if (a.Multipliers.Length > 0) Floats(w, "multipliers", a.Multipliers);
        if (a.TailMultipliers.Length > 0) Floats(w, "tail_multipliers", a.TailMultipliers);
        if (a.RowStart.Length > 0)
        {
            w.WritePropertyName("row_start"); Ints(w, a.RowStart);
            w.WritePropertyName("row_end"); Ints(w, a.RowEnd);
            w.WritePropertyName("col_start"); Ints(w, a.ColStart);
            w.WritePropertyName("col_end"); Ints(w, a.ColEnd);
        }
        w.WriteString("formula", a.Variant switch
        {
            AvgPoolVariant.Qnnpack => "acc = sum over kH*kW taps of (q - zp) (padding reads zp); y = clamp(rne(f32((float)acc * multiplier)) + zp, 0, 255)",
            AvgPoolVariant.Nchw => "sum = sum of in-bounds q - size*zp; y = clamp(rne(f32(f32((float)sum * multipliers[div]) + zp))); div = divisor_override, pool size (count_include_pad) or in-bounds size",
            AvgPoolVariant.Nhwc => "acc = sum of in-bounds q - size*zp; channel < C/16*16: y = quantize_vector(acc, multipliers[div], zp), else quantize_val(acc, tail_multipliers[div], zp)",
            AvgPoolVariant.AdaptiveNchw => "y = rne(f32((float)sum(q over [row_start,row_end) x [col_start,col_end)) * multipliers[oy*OW+ox])), no zero point",
            AvgPoolVariant.AdaptiveNhwc => "acc = sum(q) - size*zp over the window; channel < C/16*16: quantize_vector(acc, multipliers[size], zp), else quantize_val(acc, tail_multipliers[size], zp)",
            AvgPoolVariant.MeanQnnpack => "acc = sum(q) - HW*zp; y = clamp(rne(f32((float)acc * multiplier)) + zp, 0, 255)",
            AvgPoolVariant.MeanInner => "y = rne(f32((float)sum(q) / HW))",
            _ => "f = float sum in memory order of scale_f32*(q - zp); y = quantize_vector(f / HW) with the input qparams",
        });
    }

    private static void BinaryLayer(Utf8JsonWriter w, BinaryStep b)
    {
        w.WriteBoolean("relu", b.Relu);
        w.WriteString("memory_order", b.Nhwc ? "nhwc" : "logical");
        if (b.QnnpackAdd is { } q)
        {
            w.WriteString("kernel", "qnnpack_q8vadd");
            w.WriteStartObject("fixed_point");
            w.WriteNumber("a_multiplier", q.Ma);
            w.WriteNumber("b_multiplier", q.Mb);
            w.WriteNumber("shift", q.Shift);
            w.WriteNumber("zero_point_product", q.ZeroPointProduct);
            w.WriteNumber("remainder_mask", q.RemainderMask);
            w.WriteNumber("remainder_threshold", q.RemainderThreshold);
            w.WriteEndObject();
            w.WritePropertyName("clamp"); Ints(w, [q.OutMin, q.OutMax]);
            w.WriteString("formula", "acc = zero_point_product + a_multiplier*a + b_multiplier*b (int32); rem = (acc & mask) - (acc < 0); n = (acc >> shift) + (rem > threshold) (round half away from zero); y = clamp(n + zero_point, clamp[0], clamp[1])");
        }
        else if (b.AtenAdd is { } p)
        {
            w.WriteString("kernel", "aten_qadd");
            w.WriteNumber("a_scale_f32", p.Sa); w.WriteNumber("a_zero_point", p.Za); w.WriteNumber("a_premul", p.Pa);
            w.WriteNumber("b_scale_f32", p.Sb); w.WriteNumber("b_zero_point", p.Zb); w.WriteNumber("b_premul", p.Pb);
            w.WriteNumber("inverse_output_scale", p.Inv);
            w.WriteNumber("vector_block", QOps.VectorBlock);
            w.WriteString("formula", "first n - n % vector_block elements (in memory_order): c = fma(sa, a, a_premul) + fma(sb, b, b_premul), y = quantize_vector(c); the rest: c = sa*(a-za) + sb*(b-zb), y = quantize_val(c); relu: max(c, 0) first");
        }
        else
        {
            w.WriteString("kernel", "aten_qmul");
            w.WriteNumber("multiplier", b.MulMultiplier);
            w.WriteString("multiplier_rule", "M = f32(f32(sa * sb) * f32(1 / so))");
            FixedPoint(w, [b.MulMultiplier]);
            w.WriteString("formula", "y = clamp(zo + lrintf(f32((float)((a - za)*(b - zb)) * M))); relu: max(y, zo)");
        }
    }
}
