using System.Globalization;
using System.Reflection;
using System.Text;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Requantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Export;

/// <summary>
/// Writes an <see cref="ExportPlan"/> as C99: <c>name.h</c> (sizes, qparams, entry points), <c>name.c</c> (the layer
/// sequence), <c>name_weights.c</c> (const arrays) and the kernel library <c>qt_kernels.h/.c</c> (embedded resources).
/// Float constants are written as hexadecimal float literals, so the compiler reads back exactly the bits Core computed.
/// </summary>
internal sealed class CWriter
{
    private readonly ExportPlan _plan;
    private readonly string _n;       // identifier prefix
    private readonly string _N;       // macro prefix
    private readonly StringBuilder _weights = new();
    private readonly StringBuilder _decls = new();
    private readonly StringBuilder _body = new();
    private readonly HashSet<string> _symbols = new(StringComparer.Ordinal);
    private readonly Dictionary<ExportBuffer, string> _bufName = new();
    private long _flash;
    private bool _usesMathH;
    private readonly bool _int;

    public long FlashBytes => _flash;

    private CWriter(ExportPlan plan, bool integerOnly)
    {
        _plan = plan;
        _int = integerOnly;
        _n = plan.Name;
        _N = plan.Name.ToUpperInvariant();
    }

    /// <summary>The C files of <paramref name="plan"/> (name, content) and the bytes of constant data they hold.</summary>
    public static (IReadOnlyList<(string File, string Text)> Files, long FlashBytes) Write(ExportPlan plan, bool integerOnly = false)
    {
        var w = new CWriter(plan, integerOnly);
        return (w.Files(), w._flash);
    }

    public static string Resource(string file)
    {
        var asm = typeof(CWriter).Assembly;
        string name = asm.GetManifestResourceNames().Single(n => n.EndsWith("." + file, StringComparison.Ordinal));
        using var s = asm.GetManifestResourceStream(name)!;
        using var r = new StreamReader(s, Encoding.UTF8);
        return r.ReadToEnd();
    }

    private List<(string, string)> Files()
    {
        EmitBody();
        var files = new List<(string, string)>
        {
            (_n + ".h", Header()),
            (_n + ".c", Model()),
            (_n + "_weights.c", WeightsFile()),
            ("qt_kernels.h", Resource("qt_kernels.h").Replace("#define QT_ATEN_VEC_BYTES 64", $"#define QT_ATEN_VEC_BYTES {_plan.AtenVectorBytes}")),
            ("qt_kernels.c", Resource("qt_kernels.c")),
        };
        return files;
    }

    // ------------------------------------------------------------------ literals

    public static string F(float v)
    {
        if (float.IsNaN(v)) return "NAN";
        if (float.IsPositiveInfinity(v)) return "HUGE_VALF";
        if (float.IsNegativeInfinity(v)) return "(-HUGE_VALF)";
        uint bits = BitConverter.SingleToUInt32Bits(v);
        string sign = (bits >> 31) != 0 ? "-" : "";
        int exp = (int)((bits >> 23) & 0xFF);
        uint man = bits & 0x7FFFFF;
        if (exp == 0 && man == 0) return sign + "0.0f";
        string lead = exp == 0 ? "0" : "1";
        int e = exp == 0 ? -126 : exp - 127;
        string frac = (man << 1).ToString("x6", CultureInfo.InvariantCulture).TrimEnd('0');
        return $"{sign}0x{lead}{(frac.Length > 0 ? "." + frac : "")}p{(e >= 0 ? "+" : "")}{e}f";
    }

    private static string I(long v) => v == int.MinValue ? "INT32_MIN" : v.ToString(CultureInfo.InvariantCulture);

    private static string Comment(string s) => s.Replace("*/", "* /", StringComparison.Ordinal);

    private static string Ident(string s)
    {
        var sb = new StringBuilder();
        foreach (var ch in s) sb.Append(char.IsAsciiLetterOrDigit(ch) ? ch : '_');
        var r = sb.ToString().Trim('_');
        return r.Length == 0 ? "root" : r;
    }

    private string Symbol(ExportStep step, int index, string what)
    {
        string baseName = $"{_n}_{Ident(step.Layer)}_{what}";
        if (_symbols.Add(baseName)) return baseName;
        string s = $"{_n}_{Ident(step.Layer)}_{index}_{what}";
        _symbols.Add(s);
        return s;
    }

    private void Array<T>(string ctype, string name, IReadOnlyList<T> values, Func<T, string> fmt, int elemSize, string comment)
    {
        _flash += (long)values.Count * elemSize;
        _decls.Append("extern const ").Append(ctype).Append(' ').Append(name).AppendLine("[];");
        _weights.Append("/* ").Append(Comment(comment)).AppendLine(" */");
        _weights.Append("const ").Append(ctype).Append(' ').Append(name).Append('[').Append(Math.Max(1, values.Count)).Append("] = {");
        int perLine = ctype == "float" ? 6 : 16;
        if (values.Count == 0) _weights.Append('0');
        for (int i = 0; i < values.Count; i++)
        {
            if (i % perLine == 0) _weights.AppendLine().Append("    ");
            string s = fmt(values[i]);
            if (s.Contains("HUGE_VALF") || s == "NAN") _usesMathH = true;
            _weights.Append(s);
            if (i + 1 < values.Count) _weights.Append(", ");
        }
        _weights.AppendLine().AppendLine("};").AppendLine();
    }

    private string FloatArray(ExportStep s, int idx, string what, IReadOnlyList<float> v, string comment)
    {
        var name = Symbol(s, idx, what);
        Array("float", name, v, F, 4, comment);
        return name;
    }

    private string IntArray(ExportStep s, int idx, string what, IReadOnlyList<int> v, string comment)
    {
        var name = Symbol(s, idx, what);
        Array("int32_t", name, v, x => I(x), 4, comment);
        return name;
    }

    private string ByteArray(ExportStep s, int idx, string what, IReadOnlyList<byte> v, string comment)
    {
        var name = Symbol(s, idx, what);
        Array("uint8_t", name, v, x => x.ToString(CultureInfo.InvariantCulture), 1, comment);
        return name;
    }

    private string SByteArray(ExportStep s, int idx, string what, IReadOnlyList<sbyte> v, string comment)
    {
        var name = Symbol(s, idx, what);
        Array("int8_t", name, v, x => x.ToString(CultureInfo.InvariantCulture), 1, comment);
        return name;
    }

    // ------------------------------------------------------------------ buffers

    private string Buf(ExportTensor t) => _bufName[t.Buffer];

    private string U8(ExportTensor t) => Buf(t);
    private string F32(ExportTensor t) => $"(float *)(void *){Buf(t)}";
    private string CF32(ExportTensor t) => t.Buffer.IsModelInput ? "input" : $"(const float *)(const void *){Buf(t)}";

    private static string Sig(ExportTensor t) => t.Signed ? "1" : "0";

    private static string Shape(int[] s) => "[" + string.Join(", ", s) + "]";

    private static string IntList(IEnumerable<long> v) => "(const int32_t[]){" + string.Join(", ", v.Select(x => I(x))) + "}";
    private static string IntList(IEnumerable<int> v) => IntList(v.Select(x => (long)x));

    private void EmitBuffers()
    {
        foreach (var b in _plan.Buffers)
        {
            string name = "b" + b.Id.ToString(CultureInfo.InvariantCulture);
            _bufName[b] = name;
        }
    }

    private static bool IsOutputBuffer(ExportBuffer b) => b.IsModelOutput;

    // ------------------------------------------------------------------ the layer sequence

    private void EmitBody()
    {
        EmitBuffers();
        var body = _body;
        var used = new HashSet<ExportBuffer>();
        foreach (var s in _plan.Steps) { used.Add(s.Output.Buffer); foreach (var i in s.Inputs) used.Add(i.Buffer); }
        foreach (var b in _plan.Buffers.Where(used.Contains))
        {
            if (b.IsModelInput) continue;
            var users = _plan.Steps.Where(s => ReferenceEquals(s.Output.Buffer, b)).Select(s => s.Output).FirstOrDefault();
            string what = users is null ? "" : $" /* {Comment(users.Value)}: {users} */";
            if (IsOutputBuffer(b))
                body.AppendLine($"    unsigned char *{_bufName[b]} = (unsigned char *)(void *)output;{what}");
            else if (_plan.QuantizedInput is { } qi && ReferenceEquals(qi.Buffer, b))
                body.AppendLine($"    unsigned char *{_bufName[b]} = qin ? (unsigned char *)(uintptr_t)qin : s + {b.Offset};{what}");
            else
                body.AppendLine($"    unsigned char *{_bufName[b]} = s + {b.Offset};{what}");
        }
        body.AppendLine("    int rc = QT_OK;");
        body.AppendLine("    (void)rc;");
        body.AppendLine();
        for (int i = 0; i < _plan.Steps.Count; i++)
        {
            var st = _plan.Steps[i];
            body.AppendLine($"    /* {i}: {Comment(st.Layer.Length > 0 ? st.Layer : "<root>")} ({st.TorchOp}, {st.Kind}) -> {Comment(st.Output.ToString())} */");
            string code = Step(st, i);
            bool skipInQ = ReferenceEquals(st, _plan.FirstQuantize) || ReferenceEquals(st, _plan.LastDequantize);
            if (ReferenceEquals(st, _plan.FirstQuantize)) body.AppendLine("    if (!qin) {").Append(Indent(code)).AppendLine("    }");
            else if (ReferenceEquals(st, _plan.LastDequantize)) body.AppendLine("    if (!qout) {").Append(Indent(code)).AppendLine("    }");
            else body.Append(code);
            _ = skipInQ;
            if (_plan.Dumps.TryGetValue(i, out var dumps))
            {
                body.AppendLine("#ifdef QT_DUMP");
                foreach (var (layer, t) in dumps)
                    body.AppendLine($"    if ((rc = qt_dump_npy(\"{Escape(layer)}\", {Buf(t)}, {(t.Signed ? 1 : 0)}, {t.Shape.Length}, {IntList(t.Shape)})) != QT_OK) return rc;");
                body.AppendLine("#endif");
            }
        }
    }

    private static string Escape(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);

    private static string Indent(string code) =>
        string.Concat(code.Split('\n').Where(l => l.Length > 0).Select(l => "    " + l + "\n"));

    private QuantToolsException NotInteger(ExportStep st, string why) =>
        new(ErrorCode.NotSupported, $"{st.TorchOp}: an integer-only export cannot express {why}; export without -IntegerOnly", $"layer '{(st.Layer.Length == 0 ? "<root>" : st.Layer)}'");

    private static (int[] M, int[] S) Fixed(IEnumerable<double> multipliers)
    {
        var pairs = multipliers.Select(m => m > 0 && double.IsFinite(m) ? Models.FixedPointMultiplier.From(m) : (0, 0)).ToList();
        return (pairs.Select(p => p.Item1).ToArray(), pairs.Select(p => p.Item2).ToArray());
    }

    private string Step(ExportStep st, int idx)
    {
        var x = st.Inputs.Count > 0 ? st.Inputs[0] : null;
        var y = st.Output;
        if (_int && st is QuantizeStep && !ReferenceEquals(st, _plan.FirstQuantize)) throw NotInteger(st, "a quantize inside the model (float input)");
        if (_int && st is DequantizeStep && !ReferenceEquals(st, _plan.LastDequantize)) throw NotInteger(st, "a dequantize inside the model (float output)");
        if (_int && st is FloatReluStep) throw NotInteger(st, "a float relu");
        switch (st)
        {
            case QuantizeStep q:
                return $"    qt_quantize({CF32(x!)}, {U8(y)}, {y.Numel}, {F(q.InverseScale)} /* 1/{(float)y.Scale:R} */, {y.ZeroPoint}, {Sig(y)});\n";
            case DequantizeStep:
                return $"    qt_dequantize({U8(x!)}, {F32(y)}, {x!.Numel}, {F((float)x.Scale)}, {x.ZeroPoint}, {Sig(x)});\n";
            case ConvStep c: return Conv(c, idx);
            case LinearStep l: return Linear(l, idx);
            case ClampStep c:
                return $"    qt_clamp({U8(x!)}, {U8(y)}, {y.Numel}, {c.Low}, {c.High}, {Sig(x!)});\n";
            case LutStep l:
            {
                string v = ByteArray(l, idx, "lut", l.VectorTable, $"{l.Layer} {l.Function}: output integer by input byte" + (l.SingleTable ? "" : " (ATen vector lambda)"));
                string sc = l.SingleTable ? v : ByteArray(l, idx, "lut_tail", l.ScalarTable, $"{l.Layer} {l.Function}: scalar lambda (the last n % {_plan.VectorBlock} elements)");
                int prefix = l.SingleTable ? (int)y.Numel : (int)(y.Numel - y.Numel % _plan.VectorBlock);
                return $"    qt_lut({U8(x!)}, {U8(y)}, {y.Numel}, {prefix}, {v}, {sc});\n";
            }
            case FloatReluStep:
                return $"    qt_relu_f32({CF32(x!)}, {F32(y)}, {y.Numel});\n";
            case MaxPoolStep m:
                return $"    qt_max_pool2d({U8(x!)}, {U8(y)}, {x!.Shape[0] * x.Shape[1]}, {x.Shape[2]}, {x.Shape[3]}, {y.Shape[2]}, {y.Shape[3]}, " +
                       $"{m.KH}, {m.KW}, {m.SH}, {m.SW}, {m.PH}, {m.PW}, {Sig(x)});\n";
            case AvgPoolStep a: return Pool(a, idx);
            case CatStep c: return Cat(c, idx);
            case BinaryStep b: return Binary(b);
            case GatherStep g:
                return $"    qt_gather({(x!.Buffer.IsModelInput ? "input" : Buf(x))}, {Buf(y)}, {x.ElementSize}, {g.Shape.Length}, {IntList(g.Shape)}, {IntList(g.SourceStrides)}, {g.SourceOffset}); /* {g.Why} */\n";
            default:
                throw new QuantToolsException(ErrorCode.NotSupported, $"no C for step {st.Kind}", $"layer '{st.Layer}'");
        }
    }

    private string Requant(ExportStep s, int idx, OutputStage st, bool perChannel, string what)
    {
        bool q = st.Backend == QBackend.Qnnpack;
        if (_int)
        {
            var (fm, fs) = Fixed(st.Multiplier.Select(v => (double)v));
            string fmn = IntArray(s, idx, "fixed_mult", fm, $"{s.Layer}: fixed-point multiplier per output channel (TFLite QuantizeMultiplier of the float multiplier; integer-only export)");
            string fsn = IntArray(s, idx, "fixed_shift", fs, $"{s.Layer}: right shift per output channel");
            string qbn = "NULL";
            if (st.QBias is not null) qbn = IntArray(s, idx, "bias", st.QBias, $"{s.Layer}: int32 bias, rne(b * f32(1/s_aw)) (QNNPACK)");
            else if (st.Beta is not null)
                qbn = IntArray(s, idx, "bias", st.Beta.Select(b => float.IsNaN(b) ? 0 : (int)Math.Clamp(Math.Round((double)b, MidpointRounding.ToEven), int.MinValue, int.MaxValue)).ToArray(),
                    $"{s.Layer}: int32 bias rne(b / s_aw) (integer-only export; the engine keeps it float)");
            string nameI = Symbol(s, idx, what);
            _decls.AppendLine($"static const qt_requant {nameI} = {{ QT_RQ_FIXED_POINT, NULL, NULL, {qbn}, {fmn}, {fsn}, {st.ZeroPoint}, {st.Low}, {st.High} }};");
            return nameI;
        }
        string m = FloatArray(s, idx, "multiplier", st.Multiplier,
            q ? $"{s.Layer}: QNNPACK requantization scale R = f32(f32(s_w*s_in) * f32(1/s_out)) per output channel"
              : $"{s.Layer}: FBGEMM/oneDNN output multiplier M = f32(f32(s_in*s_w) / s_out) per output channel");
        string beta = "NULL", qb = "NULL";
        if (st.Beta is not null)
            beta = FloatArray(s, idx, "beta", st.Beta, $"{s.Layer}: float bias in accumulator units, beta = b / s_aw ({(perChannel || st.Backend == QBackend.Onednn ? "division" : "times f32(1/s_aw)")})");
        if (st.QBias is not null)
            qb = IntArray(s, idx, "bias", st.QBias, $"{s.Layer}: int32 bias, rne(b * f32(1/s_aw)) (QNNPACK)");
        string mode = q ? "QT_RQ_INT_BIAS" : "QT_RQ_FLOAT_BIAS";
        string name = Symbol(s, idx, what);
        _decls.AppendLine($"static const qt_requant {name} = {{ {mode}, {m}, {beta}, {qb}, NULL, NULL, {st.ZeroPoint}, {st.Low}, {st.High} }};");
        return name;
    }

    private string Conv(ConvStep c, int idx)
    {
        var pw = c.Weight;
        var sh = pw.Shape;
        var x = c.Inputs[0];
        var y = c.Output;
        string w = SByteArray(c, idx, "weight", pw.W, $"{c.Layer}: int8 weights [{sh.OutChannels}][{sh.K}], K in (kh, kw, c_in/groups) order; engine backend {pw.Backend}");
        string wzp = IntArray(c, idx, "weight_zp", pw.WZp, $"{c.Layer}: weight zero point per output channel");
        string wsum = "NULL";
        if (c.Saturating) wsum = IntArray(c, idx, "weight_sum", pw.WSum, $"{c.Layer}: sum of the raw weights per output channel (int16-saturating form)");
        string rq = Requant(c, idx, c.Stage, pw.PerChannel, "rq");
        string p = Symbol(c, idx, "conv");
        _decls.AppendLine($"static const qt_conv {p} = {{ {sh.InChannels}, {sh.OutChannels}, {sh.KernelH}, {sh.KernelW}, {sh.StrideH}, {sh.StrideW}, " +
                          $"{sh.PadH}, {sh.PadW}, {sh.DilationH}, {sh.DilationW}, {sh.Groups}, {(sh.Transposed ? 1 : 0)}, {(c.Saturating ? 1 : 0)}, {(c.TapPairs ? 1 : 0)}, {w}, {wzp}, {wsum} }};");
        int h = pw.SpatialDims == 2 ? x.Shape[2] : 1, wd = x.Shape[^1];
        int oh = pw.SpatialDims == 2 ? y.Shape[2] : 1, ow = y.Shape[^1];
        return $"    qt_conv2d({U8(x)}, {x.Shape[0]}, {h}, {wd}, {x.ZeroPoint}, {U8(y)}, {oh}, {ow}, &{p}, &{rq});\n";
    }

    private string Linear(LinearStep l, int idx)
    {
        var pw = l.Weight;
        var x = l.Inputs[0];
        string w = SByteArray(l, idx, "weight", pw.W, $"{l.Layer}: int8 weights [{pw.OutFeatures}][{pw.InFeatures}]");
        string wzp = IntArray(l, idx, "weight_zp", pw.WZp, $"{l.Layer}: weight zero point per output feature");
        string wsum = "NULL";
        if (l.Saturating) wsum = IntArray(l, idx, "weight_sum", pw.WSum, $"{l.Layer}: sum of the raw weights per output feature (int16-saturating form)");
        string rq = Requant(l, idx, l.Stage, pw.PerChannel, "rq");
        string p = Symbol(l, idx, "linear");
        _decls.AppendLine($"static const qt_linear {p} = {{ {pw.InFeatures}, {pw.OutFeatures}, {(l.Saturating ? 1 : 0)}, {w}, {wzp}, {wsum} }};");
        return $"    qt_linear_u8({U8(x)}, {l.Rows}, {x.ZeroPoint}, {U8(l.Output)}, &{p}, &{rq});\n";
    }

    private string Pool(AvgPoolStep a, int idx)
    {
        var x = a.Inputs[0];
        var y = a.Output;
        int planes = x.Shape[0] * x.Shape[1];
        int oh = y.Shape.Length == 4 ? y.Shape[2] : 1, ow = y.Shape.Length == 4 ? y.Shape[3] : 1;
        string mult = "NULL", tail = "NULL", rs = "NULL", re = "NULL", cs = "NULL", ce = "NULL";
        if (a.Multipliers.Length > 0)
            mult = FloatArray(a, idx, "pool_mult", a.Multipliers, a.Variant == AvgPoolVariant.AdaptiveNchw
                ? $"{a.Layer}: multiplier per output position, f32(f32(1/kh)/kw)" : $"{a.Layer}: multiplier by divisor (index = divisor)");
        if (a.TailMultipliers.Length > 0)
            tail = FloatArray(a, idx, "pool_tail", a.TailMultipliers, $"{a.Layer}: scalar-tail multiplier f32(1/f32(1/m)) by divisor");
        if (a.RowStart.Length > 0)
        {
            rs = IntArray(a, idx, "row_start", a.RowStart, $"{a.Layer}: adaptive window rows [start, end)");
            re = IntArray(a, idx, "row_end", a.RowEnd, $"{a.Layer}: adaptive window row ends");
            cs = IntArray(a, idx, "col_start", a.ColStart, $"{a.Layer}: adaptive window columns [start, end)");
            ce = IntArray(a, idx, "col_end", a.ColEnd, $"{a.Layer}: adaptive window column ends");
        }
        string fmn = "NULL", fsn = "NULL";
        if (_int)
        {
            IEnumerable<double> ms = a.Variant switch
            {
                AvgPoolVariant.Qnnpack or AvgPoolVariant.MeanQnnpack => [a.Multiplier],
                AvgPoolVariant.MeanInner or AvgPoolVariant.MeanFloat => [1.0 / (x.Shape[2] * x.Shape[3])],
                _ => a.Multipliers.Select(v => (double)v),
            };
            var (fm, fs) = Fixed(ms);
            fmn = IntArray(a, idx, "pool_fixed_mult", fm, $"{a.Layer}: fixed-point pooling multipliers (integer-only export)");
            fsn = IntArray(a, idx, "pool_fixed_shift", fs, $"{a.Layer}: their right shifts");
        }
        string p = Symbol(a, idx, "pool");
        _decls.AppendLine($"static const qt_pool {p} = {{ {planes}, {x.Shape[1]}, {x.Shape[2]}, {x.Shape[3]}, {oh}, {ow}, {a.KH}, {a.KW}, {a.SH}, {a.SW}, {a.PH}, {a.PW}, " +
                          $"{(a.CountIncludePad ? 1 : 0)}, {a.DivisorOverride ?? 0}, {x.ZeroPoint}, {Sig(x)}, {F(a.Multiplier)}, {mult}, {tail}, {rs}, {re}, {cs}, {ce}, {fmn}, {fsn} }};");
        string fn = a.Variant switch
        {
            AvgPoolVariant.Qnnpack => "qt_avg_pool_qnnpack",
            AvgPoolVariant.Nchw => "qt_avg_pool_nchw",
            AvgPoolVariant.Nhwc => "qt_avg_pool_nhwc",
            AvgPoolVariant.AdaptiveNchw => "qt_adaptive_avg_nchw",
            AvgPoolVariant.AdaptiveNhwc => "qt_adaptive_avg_nhwc",
            AvgPoolVariant.MeanQnnpack => "qt_mean_qnnpack",
            AvgPoolVariant.MeanInner => "qt_mean_inner",
            _ => "qt_mean_float",
        };
        if (a.Variant == AvgPoolVariant.MeanFloat)
            return $"    qt_mean_float({U8(x)}, {U8(y)}, &{p}, {F((float)x.Scale)}, {F(QuantizeKernels.InverseScale(x.Scale))});\n";
        return $"    {fn}({U8(x)}, {U8(y)}, &{p});\n";
    }

    private string Cat(CatStep c, int idx)
    {
        var y = c.Output;
        string parts = Symbol(c, idx, "cat");
        var items = c.Parts.Select((p, i) =>
        {
            var (fm, fs) = _int && !p.Same ? Models.FixedPointMultiplier.From((double)p.Scale * c.InverseScalar) : (0, 0);
            return $"{{ {(p.Same ? 1 : 0)}, {F(p.Scale)}, {p.ZeroPoint}, {F(p.Premul)}, {p.VectorChannels}, {c.Inputs[i].Shape[1]}, {fm}, {fs} }}";
        });
        _decls.AppendLine($"static const qt_cat_part {parts}[{c.Parts.Count}] = {{ {string.Join(", ", items)} }};");
        string xs = "(const uint8_t *const[]){" + string.Join(", ", c.Inputs.Select(Buf)) + "}";
        if (c.Nhwc)
            return $"    qt_cat_nhwc({xs}, {parts}, {c.Parts.Count}, {U8(y)}, {y.Shape[0]}, {y.Shape[2] * y.Shape[3]}, {y.ZeroPoint}, " +
                   $"{F(c.InverseVector)}, {F(c.InverseScalar)}, {(c.Relu ? 1 : 0)}, {Sig(y)});\n";
        int outer = 1, inner = 1;
        for (int d = 0; d < c.Dim; d++) outer *= y.Shape[d];
        for (int d = c.Dim + 1; d < y.Shape.Length; d++) inner *= y.Shape[d];
        var runs = c.Inputs.Select(t => t.Shape[c.Dim] * inner);
        return $"    qt_cat_general({xs}, {parts}, {IntList(runs)}, {c.Parts.Count}, {U8(y)}, {outer}, {y.Shape[c.Dim] * inner}, {y.ZeroPoint}, {F(c.InverseScalar)}, {Sig(y)});\n";
    }

    private string Binary(BinaryStep b)
    {
        var (x, z, y) = (b.Inputs[0], b.Inputs[1], b.Output);
        if (_int && b.AtenAdd is not null)
        {
            if (y.DType != DType.QUInt8) throw NotInteger(b, "a qint8 add (QNNPACK's fixed-point add is quint8 only)");
            try
            {
                var qa = QParams.PerTensor(x.Scale, x.ZeroPoint, x.DType);
                var qb = QParams.PerTensor(z.Scale, z.ZeroPoint, z.DType);
                var fixedAdd = AddKernels.QnnpackParams(qa, qb, y.Scale, y.ZeroPoint, b.Relu);
                return $"    qt_add_qnnpack({U8(x)}, {U8(z)}, {U8(y)}, {y.Numel}, &(const qt_qadd_params){{ {fixedAdd.ZeroPointProduct}, {fixedAdd.Ma}u, {fixedAdd.Mb}u, {fixedAdd.Shift}, " +
                       $"{fixedAdd.RemainderMask}, {fixedAdd.RemainderThreshold}, {fixedAdd.Zo}, {fixedAdd.OutMin}, {fixedAdd.OutMax} }}); /* integer-only: QNNPACK's fixed-point add */\n";
            }
            catch (QuantToolsException e)
            {
                throw NotInteger(b, "this add: " + e.Message);
            }
        }
        if (_int && b.Mul)
        {
            var (fm, fs) = Models.FixedPointMultiplier.From(b.MulMultiplier);
            return $"    qt_mul_fixed({U8(x)}, {U8(z)}, {U8(y)}, {y.Numel}, {Sig(y)}, {x.ZeroPoint}, {z.ZeroPoint}, {fm}, {fs}, {y.ZeroPoint}, {(b.Relu ? 1 : 0)});\n";
        }
        if (b.QnnpackAdd is { } q)
            return $"    qt_add_qnnpack({U8(x)}, {U8(z)}, {U8(y)}, {y.Numel}, &(const qt_qadd_params){{ {q.ZeroPointProduct}, {q.Ma}u, {q.Mb}u, {q.Shift}, " +
                   $"{q.RemainderMask}, {q.RemainderThreshold}, {q.Zo}, {q.OutMin}, {q.OutMax} }});\n";
        if (b.AtenAdd is { } p)
        {
            string dims = IntList(y.Shape);
            return $"    qt_add_aten({U8(x)}, {U8(z)}, {U8(y)}, {dims}, {y.Shape.Length}, {(b.Nhwc ? 1 : 0)}, {Sig(y)}, " +
                   $"&(const qt_add_params){{ {F(p.Sa)}, {p.Za}, {F(p.Pa)}, {F(p.Sb)}, {p.Zb}, {F(p.Pb)}, {F(p.Inv)}, {p.Zo}, {(p.Relu ? 1 : 0)} }});\n";
        }
        return $"    qt_mul({U8(x)}, {U8(z)}, {U8(y)}, {y.Numel}, {Sig(y)}, {x.ZeroPoint}, {z.ZeroPoint}, {F(b.MulMultiplier)}, {y.ZeroPoint}, {(b.Relu ? 1 : 0)});\n";
    }

    // ------------------------------------------------------------------ files

    private string Banner(string what) =>
        $"/* {what}\n * Generated by QuantTools Export-QuantModel from {Comment(Path.GetFileName(_plan.Source))}, engine {_plan.Engine.TorchName()},\n" +
        $" * input [{string.Join(", ", _plan.InputShape)}]. Reproduces PyTorch 2.11's quantized arithmetic bit for bit (see qt_kernels.h for\n" +
        " * the compiler requirements: C99, float evaluated in float, no FMA contraction: -ffp-contract=off). */\n";

    private string Header()
    {
        var sb = new StringBuilder();
        string guard = _N + "_H";
        sb.Append(Banner($"{_n}.h - entry points, sizes and qparams of the exported model."));
        sb.AppendLine($"#ifndef {guard}").AppendLine($"#define {guard}").AppendLine();
        sb.AppendLine("#include <stddef.h>").AppendLine("#include <stdint.h>").AppendLine();
        var i = _plan.Input;
        var o = _plan.Output;
        sb.AppendLine($"#define {_N}_INPUT_COUNT {i.Numel} /* float elements of the input, NCHW {Shape(i.Shape)} */");
        sb.AppendLine($"#define {_N}_INPUT_RANK {i.Shape.Length}");
        sb.AppendLine($"#define {_N}_INPUT_SHAPE {{{string.Join(", ", i.Shape)}}}");
        sb.AppendLine($"#define {_N}_OUTPUT_COUNT {o.Numel} /* elements of the output {Shape(o.Shape)} */");
        sb.AppendLine($"#define {_N}_OUTPUT_RANK {o.Shape.Length}");
        sb.AppendLine($"#define {_N}_OUTPUT_SHAPE {{{string.Join(", ", o.Shape)}}}");
        if (_plan.QuantizedInput is { } qi)
        {
            sb.AppendLine($"/* quantized input of {_n}_run_q: {qi.DType.TorchName()}, q = clamp(rne(x * (1/scale)) + zero_point) */");
            sb.AppendLine($"#define {_N}_INPUT_SCALE {F((float)qi.Scale)} /* {qi.Scale:R} */");
            sb.AppendLine($"#define {_N}_INPUT_ZERO_POINT {qi.ZeroPoint}");
            sb.AppendLine($"#define {_N}_INPUT_SIGNED {(qi.Signed ? 1 : 0)}");
        }
        if (_plan.QuantizedOutput is { } qo)
        {
            sb.AppendLine($"/* quantized output of {_n}_run_q: {qo.DType.TorchName()}, x = scale * (q - zero_point) */");
            sb.AppendLine($"#define {_N}_OUTPUT_SCALE {F((float)qo.Scale)} /* {qo.Scale:R} */");
            sb.AppendLine($"#define {_N}_OUTPUT_ZERO_POINT {qo.ZeroPoint}");
            sb.AppendLine($"#define {_N}_OUTPUT_SIGNED {(qo.Signed ? 1 : 0)}");
        }
        sb.AppendLine($"#define {_N}_SCRATCH_SIZE {_plan.ScratchBytes} /* bytes; the scratch buffer must be 4-byte aligned */");
        sb.AppendLine($"#define {_N}_LAYER_COUNT {_plan.LayerCount}");
        if (_int)
            sb.AppendLine($"#define {_N}_FPU_NEEDED 0 /* integer-only export: {_n}_run_q uses no float (fixed-point requantization: an approximation of PyTorch; {_n}_run quantizes and dequantizes in float) */");
        else
            sb.AppendLine($"#define {_N}_FPU_NEEDED {(_plan.FpuNeeded ? 1 : 0)} /* {_n}_run_q does float arithmetic (PyTorch's own requantization) */");
        sb.AppendLine();
        sb.AppendLine($"/* Bytes of scratch memory {_n}_run and {_n}_run_q need (no other memory is written). */");
        sb.AppendLine($"size_t {_n}_scratch_size(void);");
        sb.AppendLine($"/* float NCHW input -> float output, as the PyTorch forward; returns 0 or a QT_ERR_* code (qt_kernels.h). */");
        sb.AppendLine($"int {_n}_run(const float *input, float *output, void *scratch);");
        sb.AppendLine($"/* quantized input -> quantized output (int_repr bytes; qint8 as two's complement), skipping the model's first");
        sb.AppendLine($"   quantize and last dequantize; returns QT_ERR_UNSUPPORTED when the model does not start and end that way. */");
        sb.AppendLine($"int {_n}_run_q(const uint8_t *qinput, uint8_t *qoutput, void *scratch);");
        sb.AppendLine().AppendLine($"#endif /* {guard} */");
        return sb.ToString();
    }

    private string Model()
    {
        var sb = new StringBuilder();
        sb.Append(Banner($"{_n}.c - the layer sequence."));
        sb.AppendLine($"#include \"{_n}.h\"").AppendLine("#include \"qt_kernels.h\"").AppendLine();
        sb.Append(_decls).AppendLine();
        sb.AppendLine($"size_t {_n}_scratch_size(void)").AppendLine("{").AppendLine($"    return {_plan.ScratchBytes};").AppendLine("}").AppendLine();
        sb.AppendLine($"static int {_n}_graph(const float *input, float *output, const uint8_t *qin, uint8_t *qout, unsigned char *s)");
        sb.AppendLine("{");
        sb.AppendLine("    (void)input; (void)output; (void)qin; (void)qout; (void)s;");
        sb.Append(_body);
        var o = _plan.Output;
        sb.AppendLine();
        if (_plan.QuantizedOutput is { } qo)
        {
            sb.AppendLine("    if (qout) {");
            sb.AppendLine($"        int32_t i;");
            sb.AppendLine($"        for (i = 0; i < {qo.Numel}; i++) qout[i] = {Buf(qo)}[i];");
            sb.AppendLine("        return QT_OK;");
            sb.AppendLine("    }");
        }
        if (o.IsQuantized)
            sb.AppendLine($"    qt_dequantize({Buf(o)}, output, {o.Numel}, {F((float)o.Scale)}, {o.ZeroPoint}, {Sig(o)});");
        sb.AppendLine("    return QT_OK;");
        sb.AppendLine("}").AppendLine();
        sb.AppendLine($"int {_n}_run(const float *input, float *output, void *scratch)");
        sb.AppendLine("{");
        sb.AppendLine("    if (!input || !output || !scratch || ((uintptr_t)scratch & 3u)) return QT_ERR_ARGUMENT;");
        sb.AppendLine($"    return {_n}_graph(input, output, NULL, NULL, (unsigned char *)scratch);");
        sb.AppendLine("}").AppendLine();
        sb.AppendLine($"int {_n}_run_q(const uint8_t *qinput, uint8_t *qoutput, void *scratch)");
        sb.AppendLine("{");
        if (_plan.QuantizedInput is null || _plan.QuantizedOutput is null)
        {
            sb.AppendLine("    (void)qinput; (void)qoutput; (void)scratch;");
            sb.AppendLine("    return QT_ERR_UNSUPPORTED;");
        }
        else
        {
            sb.AppendLine("    if (!qinput || !qoutput || !scratch || ((uintptr_t)scratch & 3u)) return QT_ERR_ARGUMENT;");
            sb.AppendLine($"    return {_n}_graph(NULL, NULL, qinput, qoutput, (unsigned char *)scratch);");
        }
        sb.AppendLine("}");
        return sb.ToString();
    }

    private string WeightsFile()
    {
        var sb = new StringBuilder();
        sb.Append(Banner($"{_n}_weights.c - constant data: weights, biases, multipliers, tables ({_flash} bytes)."));
        sb.AppendLine("#include <stdint.h>");
        if (_usesMathH) sb.AppendLine("#include <math.h> /* HUGE_VALF, NAN */");
        sb.AppendLine();
        sb.Append(_decls.ToString().Split('\n').Where(l => l.StartsWith("extern", StringComparison.Ordinal)).Aggregate(new StringBuilder(), (a, l) => a.AppendLine(l)));
        sb.AppendLine();
        sb.Append(_weights);
        return sb.ToString();
    }
}
