using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Kernels.Pooling;
using QuantTools.Core.Kernels.Requantization;
using QuantTools.Core.Models.Execution;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Export;

/// <summary>
/// Walks a <see cref="ModelGraph"/> for one input shape the way <see cref="ModelExecutor"/> runs it, without data:
/// every tensor's shape, dtype, qparams and PyTorch strides are known statically, scalar ops fold to constants, and
/// each tensor op becomes an <see cref="ExportStep"/> whose numbers come from Core itself: conv / linear weights are
/// prepacked by <see cref="PackedConvWeight"/> / <see cref="PackedLinearWeight"/> and requantized by the
/// <see cref="OutputStage"/> the kernels use; add parameters come from <see cref="AddKernels"/>; clamp bounds and
/// activation tables come from running Core's kernels on every input integer. The kernel path each op takes (the
/// layout-dependent choices of the executor: channels_last average pooling, the NHWC cat kernel, mean, the NHWC
/// order of element-wise splits, the qnnpack clamp layout) is decided exactly as the executor decides it.
/// An op the exporter cannot express is an error naming the layer and the op.
/// </summary>
public sealed class ExportPlanner
{
    private readonly ModelGraph _graph;
    private readonly QEngine _engine;
    private readonly CpuClass _cpu;
    private readonly List<ExportStep> _steps = new();
    private readonly List<ExportBuffer> _buffers = new();
    private readonly Dictionary<string, object?> _env = new(StringComparer.Ordinal);
    private readonly Dictionary<int, List<(string, ExportTensor)>> _dumps = new();
    private readonly Dictionary<string, List<string>> _layersOfValue = new(StringComparer.Ordinal);
    private GraphNode? _node;

    private ExportPlanner(ModelGraph graph, QEngine engine, CpuClass cpu)
    {
        _graph = graph;
        _engine = engine;
        _cpu = EngineProfile.EffectiveCpu(engine, cpu);
        foreach (var (layer, value) in graph.LayerOutputs)
        {
            if (!_layersOfValue.TryGetValue(value, out var l)) _layersOfValue[value] = l = new List<string>();
            l.Add(layer);
        }
    }

    /// <summary>Plans <paramref name="graph"/> for a float input of <paramref name="inputShape"/> under <paramref name="engine"/>.</summary>
    public static ExportPlan Plan(ModelGraph graph, QEngine engine, int[] inputShape, string name) =>
        Plan(graph, engine, CpuClass.Avx512Vnni, inputShape, name);

    /// <summary>As the other overload, for PyTorch on a CPU of class <paramref name="cpu"/>.</summary>
    public static ExportPlan Plan(ModelGraph graph, QEngine engine, CpuClass cpu, int[] inputShape, string name)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(inputShape);
        if (graph.Inputs.Count != 1)
            throw new QuantToolsException(ErrorCode.NotSupported, $"the exporter needs a model with one input tensor, this one takes {graph.Inputs.Count}", graph.Source);
        if (graph.Outputs.Count != 1)
            throw new QuantToolsException(ErrorCode.NotSupported, $"the exporter needs a model with one output tensor, this one returns {graph.Outputs.Count}", graph.Source);
        if (inputShape.Length == 0 || inputShape.Any(d => d <= 0))
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"input shape must have positive dimensions, got [{string.Join(", ", inputShape)}]");
        long numel = Tensor.CheckedNumel(inputShape);
        if (numel > int.MaxValue / 4)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"input shape [{string.Join(", ", inputShape)}] is too large");
        var planner = new ExportPlanner(graph, engine, cpu);
        // Core's width-dependent kernels and tables (vector/scalar splits) follow the class while planning
        using var scope = CpuClasses.Use(planner._cpu);
        return planner.Run(inputShape, name);
    }

    private ExportPlan Run(int[] inputShape, string name)
    {
        var inBuf = new ExportBuffer { Id = 0, Bytes = Tensor.CheckedNumel(inputShape) * 4, IsModelInput = true, FirstStep = -1 };
        _buffers.Add(inBuf);
        var input = new ExportTensor
        {
            Shape = (int[])inputShape.Clone(), Strides = Layout.Contiguous(inputShape), DType = DType.Float32, Buffer = inBuf,
            Value = _graph.Inputs[0],
        };
        _env[_graph.Inputs[0]] = input;
        foreach (var n in _graph.Nodes)
        {
            _node = n;
            var args = new object?[n.Inputs.Count];
            for (int i = 0; i < args.Length; i++)
            {
                var op = n.Inputs[i];
                args[i] = op.IsValue
                    ? (_env.TryGetValue(op.Value!, out var v) ? v : throw Error($"value %{op.Value} is not computed"))
                    : op.Constant;
            }
            object?[] outs;
            try
            {
                outs = Execute(n, args);
            }
            catch (QuantToolsException e) when (e.Target is null || !e.Target.StartsWith("layer '", StringComparison.Ordinal))
            {
                throw Error(e.Message, e);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IndexOutOfRangeException or InvalidCastException or OverflowException)
            {
                throw Error(e.Message, e);
            }
            if (outs.Length != n.Outputs.Count) throw Error($"produced {outs.Length} values for {n.Outputs.Count} outputs");
            for (int o = 0; o < outs.Length; o++)
            {
                _env[n.Outputs[o]] = outs[o];
                if (outs[o] is ExportTensor { IsQuantized: true } t && _layersOfValue.TryGetValue(n.Outputs[o], out var layers))
                {
                    int at = _steps.Count - 1;
                    if (!_dumps.TryGetValue(at, out var l)) _dumps[at] = l = new List<(string, ExportTensor)>();
                    foreach (var layer in layers) l.Add((layer, t));
                }
            }
        }
        _node = null;
        if (_env[_graph.Outputs[0]] is not ExportTensor output)
            throw new QuantToolsException(ErrorCode.NotSupported, $"the model returns {ScalarOps.TypeOf(_env[_graph.Outputs[0]])}, not a tensor", _graph.Source);
        if (output.Buffer.IsModelInput)
            throw new QuantToolsException(ErrorCode.NotSupported, "the model returns its input unchanged", _graph.Source);
        Touch(output, int.MaxValue);

        // run_q: the model's integer part, from the quantized input to the quantized output
        ExportStep? firstQ = null, lastDq = null;
        ExportTensor? qin = null, qout = null;
        var readers = _steps.Where(s => s.Inputs.Any(i => i.Buffer.IsModelInput)).ToList();
        if (readers.Count == 1 && readers[0] is QuantizeStep qs && qs.Inputs.Count == 1)
        {
            firstQ = qs;
            qin = qs.Output;
        }
        if (output.IsQuantized) qout = output;
        else if (_steps.LastOrDefault(s => ReferenceEquals(s.Output.Buffer, output.Buffer)) is DequantizeStep dq &&
                 !_steps.Skip(_steps.IndexOf(dq) + 1).Any(s => s.Inputs.Any(i => ReferenceEquals(i.Buffer, dq.Output.Buffer))))
        {
            lastDq = dq;
            qout = dq.Inputs[0];
        }
        if (!output.IsQuantized) output.Buffer.IsModelOutput = true;
        long scratch = AssignOffsets();
        return new ExportPlan
        {
            Name = name, Source = _graph.Source, Engine = _engine, Cpu = _cpu, InputShape = (int[])inputShape.Clone(), Input = input,
            QuantizedInput = qin, Output = output, QuantizedOutput = qout, Steps = _steps.ToList(),
            Dumps = _dumps.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<(string, ExportTensor)>)kv.Value),
            Buffers = _buffers.ToList(), ScratchBytes = scratch, FirstQuantize = firstQ, LastDequantize = lastDq,
        };
    }

    /// <summary>
    /// Scratch offsets by lifetime: largest buffers first, each at the lowest 16-byte aligned offset that overlaps no
    /// placed buffer live at the same time (the greedy-by-size plan of arena allocators). A step's output never shares
    /// memory with its inputs (their lifetimes overlap at that step).
    /// </summary>
    private long AssignOffsets()
    {
        var scratch = _buffers.Where(b => !b.IsModelInput && !b.IsModelOutput)
            .OrderByDescending(b => Align(b.Bytes)).ThenBy(b => b.FirstStep).ThenBy(b => b.Id).ToList();
        var placed = new List<ExportBuffer>();
        long top = 0;
        foreach (var b in scratch)
        {
            long size = Align(b.Bytes);
            long offset = 0;
            foreach (var o in placed.Where(o => o.FirstStep <= b.LastStep && b.FirstStep <= o.LastStep).OrderBy(o => o.Offset))
            {
                if (offset + size <= o.Offset) break;
                offset = Math.Max(offset, o.Offset + Align(o.Bytes));
            }
            b.Offset = offset;
            placed.Add(b);
            top = Math.Max(top, offset + size);
        }
        return top;
    }

    private static long Align(long n) => (n + 15) / 16 * 16;

    // ------------------------------------------------------------------ helpers

    private string LayerName => _node is null ? "" : _node.ModulePath;

    private QuantToolsException Error(string msg, Exception? inner = null)
    {
        var n = _node;
        string layer = n is null || n.ModulePath.Length == 0 ? "<root>" : n.ModulePath;
        string src = n?.Source is null ? "" : $" ({n.Source})";
        var code = inner is QuantToolsException q ? q.Code : ErrorCode.UnsupportedOperator;
        return new QuantToolsException(code, $"{n?.Op ?? "export"}: {msg}{src}", $"layer '{layer}'", inner);
    }

    private static QuantToolsException NotExpressible(string what) =>
        new(ErrorCode.UnsupportedOperator, $"the exporter cannot express {what}");

    private ExportTensor NewTensor(int[] shape, long[] strides, DType dtype, double scale = 0, long zp = 0)
    {
        long bytes = Tensor.CheckedNumel(shape) * (dtype == DType.Float32 ? 4 : 1);
        var buf = new ExportBuffer { Id = _buffers.Count, Bytes = bytes, FirstStep = _steps.Count, LastStep = _steps.Count };
        _buffers.Add(buf);
        return new ExportTensor
        {
            Shape = (int[])shape.Clone(), Strides = strides, DType = dtype, Scale = scale, ZeroPoint = zp, Buffer = buf,
            Value = _node?.Outputs.FirstOrDefault() ?? "value",
        };
    }

    private static ExportTensor View(ExportTensor x, int[] shape, long[] strides) => new()
    {
        Shape = (int[])shape.Clone(), Strides = strides, DType = x.DType, Scale = x.Scale, ZeroPoint = x.ZeroPoint, Buffer = x.Buffer,
        Value = x.Value,
    };

    private static void Touch(ExportTensor t, int step) => t.Buffer.LastStep = Math.Max(t.Buffer.LastStep, step);

    private T Add<T>(T step) where T : ExportStep
    {
        foreach (var i in step.Inputs) Touch(i, _steps.Count);
        _steps.Add(step);
        return step;
    }

    private string StepLayer => LayerName;

    private static ExportTensor T(object? v, string what) => v as ExportTensor
        ?? throw new QuantToolsException(ErrorCode.InvalidArgument, $"{what} must be a tensor, got {ScalarOps.TypeOf(v)}");

    private static ExportTensor QIn(object? v, string what)
    {
        var t = T(v, what);
        if (!t.IsQuantized) throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{what} must be a quantized tensor, got {t.DType.TorchName()}");
        return t;
    }

    private static long L(object? v, string what) => ScalarOps.ToLong(v, what);
    private static double D(object? v, string what) => ScalarOps.ToDouble(v, what);
    private static object? Arg(object?[] a, int i, object? fallback = null) => i < a.Length ? a[i] : fallback;

    private static int[] Ints(object? v, string what) => v switch
    {
        List<object?> l => l.Select(x => checked((int)L(x, what))).ToArray(),
        object?[] t => t.Select(x => checked((int)L(x, what))).ToArray(),
        long x => [checked((int)x)],
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"{what} must be a list of ints, got {ScalarOps.TypeOf(v)}"),
    };

    private static (int, int) Pair(int[] v) => v.Length switch
    {
        1 => (v[0], v[0]),
        2 => (v[0], v[1]),
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"expected 1 or 2 values, got {v.Length}"),
    };

    private static QParams QP(ExportTensor t) => QParams.PerTensor(t.Scale, t.ZeroPoint, t.DType);

    /// <summary>A tensor holding every integer of <paramref name="qp"/>'s dtype once, qmin first (for probing kernels).</summary>
    private static QTensor AllIntegers(QParams qp, int count = 256)
    {
        bool signed = qp.DType == DType.QInt8;
        if (signed)
        {
            var d = new sbyte[count];
            for (int i = 0; i < count; i++) d[i] = (sbyte)(i % 256 - 128);
            return new QTensor(new Tensor(DType.Int8, [count], d), qp);
        }
        var b = new byte[count];
        for (int i = 0; i < count; i++) b[i] = (byte)(i % 256);
        return new QTensor(new Tensor(DType.UInt8, [count], b), qp);
    }

    /// <summary>The output integers of a probe as a table indexed by the raw input byte.</summary>
    private static byte[] TableOf(QTensor probeOut, bool signed)
    {
        var src = QOps.Bytes(probeOut);
        var t = new byte[256];
        for (int i = 0; i < 256; i++)
        {
            int raw = signed ? (byte)(sbyte)(i - 128) : i;
            t[raw] = src[i];
        }
        return t;
    }

    private ExportTensor Same(ExportTensor like, int[] shape, DType dtype, double scale, long zp) =>
        NewTensor(shape, Layout.LikeSuggested(like.Shape, like.Strides), dtype, scale, zp);

    // ------------------------------------------------------------------ ops

    private object?[] Execute(GraphNode n, object?[] a)
    {
        var e = _engine;
        switch (n.Op)
        {
            case "aten::quantize_per_tensor":
            {
                var x = T(a[0], "input");
                if (x.DType != DType.Float32) throw new QuantToolsException(ErrorCode.UnsupportedDType, "quantize_per_tensor needs a float input");
                var dt = ScalarOps.DTypeOfCode(L(a[3], "dtype"));
                if (dt is not (DType.QUInt8 or DType.QInt8)) throw NotExpressible($"quantize_per_tensor to {dt.TorchName()}");
                double scale = D(a[1], "scale");
                long zp = (long)D(a[2], "zero_point");
                var qp = QParams.PerTensor(scale, zp, dt); // validates like Quantizer.Quantize
                var y = NewTensor(x.Shape, Layout.LikeSuggested(x.Shape, x.Strides), dt, qp.Scale, qp.ZeroPoint);
                Add(new QuantizeStep { Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, InverseScale = QuantizeKernels.InverseScale(scale) });
                return [y];
            }
            case "aten::dequantize":
            {
                var x = T(a[0], "input");
                if (!x.IsQuantized) return [x];
                var y = NewTensor(x.Shape, Layout.LikeSuggested(x.Shape, x.Strides), DType.Float32);
                Add(new DequantizeStep { Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y });
                return [y];
            }
            case "aten::to":
            {
                var x = T(a[0], "input");
                var target = a.Length > 1 ? a[1] : null;
                if (!x.IsQuantized && target is long code && ScalarOps.DTypeOfCode(code) == DType.Float32) return [x];
                throw NotExpressible($"aten::to with {ModelGraph.Describe(target)}");
            }
            case "quantized::conv1d" or "quantized::conv1d_relu" or "quantized::conv2d" or "quantized::conv2d_relu"
                or "quantized::conv_transpose1d" or "quantized::conv_transpose2d":
                return [Conv(n, a)];
            case "quantized::linear" or "quantized::linear_relu":
                return [Linear(n, a)];
            case "quantized::linear_dynamic" or "quantized::linear_relu_dynamic":
                throw NotExpressible("dynamic quantized linear (the input qparams are chosen from each input's range at run time)");
            case "quantized::relu6":
            {
                var x = QIn(a[0], "input");
                return [ClampLike(n, x, 0f, 6f, true)];
            }
            case "aten::relu" or "aten::relu_":
            {
                var x = T(a[0], "input");
                if (!x.IsQuantized)
                {
                    var yf = NewTensor(x.Shape, Layout.LikeSuggested(x.Shape, x.Strides), DType.Float32);
                    Add(new FloatReluStep { Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = yf });
                    return [yf];
                }
                // QActivation.Relu: max(q, zp) on every engine; bounds read off the kernel's own output
                var probe = QActivation.Relu(AllIntegers(QP(x)), e);
                var (lo, hi) = Bounds(probe, x.Signed);
                var y = Same(x, x.Shape, x.DType, x.Scale, x.ZeroPoint);
                Add(new ClampStep { Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Low = lo, High = hi });
                return [y];
            }
            case "aten::hardtanh" or "aten::hardtanh_" or "aten::clamp" or "aten::clamp_":
            {
                var x = QIn(a[0], "input");
                float lo = a.Length > 1 && a[1] is not null ? (float)D(a[1], "min") : float.NegativeInfinity;
                float hi = a.Length > 2 && a[2] is not null ? (float)D(a[2], "max") : float.PositiveInfinity;
                if (n.Op.StartsWith("aten::hardtanh", StringComparison.Ordinal))
                {
                    lo = a.Length > 1 ? (float)D(a[1], "min_val") : -1f;
                    hi = a.Length > 2 ? (float)D(a[2], "max_val") : 1f;
                }
                return [ClampLike(n, x, lo, hi, !(float.IsInfinity(lo) || float.IsInfinity(hi)))];
            }
            case "quantized::hardswish":
            {
                var x = QIn(a[0], "input");
                return [Lut(n, x, "hardswish", QActivation.HardswishPlan(Probe(x), D(a[1], "scale"), (long)D(a[2], "zero_point"), e))];
            }
            case "aten::hardswish":
            {
                var x = QIn(a[0], "input");
                return [Lut(n, x, "hardswish", QActivation.HardswishPlan(Probe(x), x.Scale, x.ZeroPoint, e))];
            }
            case "aten::sigmoid": { var x = QIn(a[0], "input"); return [Lut(n, x, "sigmoid", QActivation.SigmoidPlan(Probe(x), e))]; }
            case "aten::tanh": { var x = QIn(a[0], "input"); return [Lut(n, x, "tanh", QActivation.TanhPlan(Probe(x), e))]; }
            case "aten::hardsigmoid": { var x = QIn(a[0], "input"); return [Lut(n, x, "hardsigmoid", QActivation.HardsigmoidPlan(Probe(x), e))]; }
            case "aten::leaky_relu":
            {
                var x = QIn(a[0], "input");
                return [Lut(n, x, "leaky_relu", QActivation.LeakyReluPlan(Probe(x), (float)D(Arg(a, 1, 0.01), "negative_slope"), x.Scale, x.ZeroPoint, e))];
            }
            case "quantized::leaky_relu":
            {
                var x = QIn(a[0], "input");
                return [Lut(n, x, "leaky_relu", QActivation.LeakyReluPlan(Probe(x), (float)D(a[1], "negative_slope"), D(a[3], "scale"), (long)D(a[4], "zero_point"), e))];
            }
            case "quantized::elu":
            {
                var x = QIn(a[0], "input");
                if (a.Length > 4 && (D(a[4], "scale") != 1 || D(Arg(a, 5, 1.0), "input_scale") != 1))
                    throw new QuantToolsException(ErrorCode.UnsupportedOperator, "quantized::elu with scale / input_scale other than 1");
                return [Lut(n, x, "elu", QActivation.EluPlan(Probe(x), (float)D(Arg(a, 3, 1.0), "alpha"), D(a[1], "scale"), (long)D(a[2], "zero_point"), e))];
            }
            case "aten::elu":
            {
                var x = QIn(a[0], "input");
                if (D(Arg(a, 2, 1.0), "scale") != 1 || D(Arg(a, 3, 1.0), "input_scale") != 1)
                    throw new QuantToolsException(ErrorCode.UnsupportedOperator, "elu with scale / input_scale other than 1");
                return [Lut(n, x, "elu", QActivation.EluPlan(Probe(x), (float)D(Arg(a, 1, 1.0), "alpha"), x.Scale, x.ZeroPoint, e))];
            }
            case "aten::adaptive_avg_pool2d": return [AdaptiveAvgPool(n, QIn(a[0], "input"), Ints(a[1], "output_size"))];
            case "aten::avg_pool2d": return [AvgPool(n, QIn(a[0], "input"), a)];
            case "aten::max_pool2d":
            {
                var x = QIn(a[0], "input");
                var k = Pair(Ints(a[1], "kernel_size"));
                var s = a.Length > 2 && Ints(a[2], "stride") is { Length: > 0 } st ? Pair(st) : k;
                var p = a.Length > 3 ? Pair(Ints(a[3], "padding")) : (0, 0);
                var d = a.Length > 4 ? Pair(Ints(a[4], "dilation")) : (1, 1);
                bool ceil = a.Length > 5 && ScalarOps.ToBool(a[5], "ceil_mode");
                if (d != (1, 1)) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "max_pool2d with dilation is not supported");
                var shape = QPool.MaxPool2dShape(Probe4d(x), k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil);
                shape[0] = x.Shape[0]; shape[1] = x.Shape[1];
                bool cl = Layout.IsChannelsLastContiguous(x.Shape, x.Strides) && !Layout.IsContiguous(x.Shape, x.Strides);
                var y = NewTensor(shape, cl ? Layout.ChannelsLast(shape) : Layout.Contiguous(shape), x.DType, x.Scale, x.ZeroPoint);
                Add(new MaxPoolStep
                {
                    Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, KH = k.Item1, KW = k.Item2, SH = s.Item1, SW = s.Item2,
                    PH = p.Item1, PW = p.Item2,
                });
                return [y];
            }
            case "aten::mean": return [Mean(n, QIn(a[0], "input"), a)];
            case "aten::flatten":
            {
                var x = T(a[0], "input");
                int rank = x.Shape.Length;
                int sd = (int)L(Arg(a, 1, 0L), "start_dim"), ed = (int)L(Arg(a, 2, -1L), "end_dim");
                if (sd < 0) sd += rank;
                if (ed < 0) ed += rank;
                if (rank == 0) return [Reshape(x, [1], false)];
                if (sd < 0 || ed >= rank || sd > ed) throw new QuantToolsException(ErrorCode.InvalidArgument, $"flatten dims {sd}..{ed} out of range for rank {rank}");
                if (sd == ed) return [x];
                var shape = new List<int>();
                for (int i = 0; i < sd; i++) shape.Add(x.Shape[i]);
                int m = 1;
                for (int i = sd; i <= ed; i++) m *= x.Shape[i];
                shape.Add(m);
                for (int i = ed + 1; i < rank; i++) shape.Add(x.Shape[i]);
                return [Reshape(x, shape.ToArray(), false)];
            }
            case "aten::reshape": return [Reshape(T(a[0], "input"), Ints(a[1], "shape"), false)];
            case "aten::view": return [Reshape(T(a[0], "input"), Ints(a[1], "size"), true)];
            case "aten::contiguous":
            {
                var x = T(a[0], "input");
                long fmt = a.Length > 1 && a[1] is long f ? f : 0;
                return [View(x, x.Shape, fmt == 2 ? Layout.ChannelsLast(x.Shape) : Layout.Contiguous(x.Shape))];
            }
            case "aten::transpose": return [Transpose(n, T(a[0], "input"), (int)L(a[1], "dim0"), (int)L(a[2], "dim1"))];
            case "aten::chunk": return [Chunk(n, T(a[0], "input"), (int)L(a[1], "chunks"), (int)L(Arg(a, 2, 0L), "dim"))];
            case "aten::size":
            {
                var x = T(a[0], "input");
                if (a.Length > 1)
                {
                    long d = L(a[1], "dim");
                    if (d < 0) d += x.Shape.Length;
                    return [(long)x.Shape[d]];
                }
                return [x.Shape.Select(s => (object?)(long)s).ToList()];
            }
            case "aten::dim": return [(long)T(a[0], "input").Shape.Length];
            case "prim::dtype": return [ScalarOps.ScalarTypeCode(T(a[0], "input").DType)];
            case "aten::channel_shuffle":
            {
                var x = QIn(a[0], "input");
                int groups = (int)L(a[1], "groups");
                QResample.ChannelShuffle(Probe(x, [1, x.Shape.Length > 1 ? x.Shape[1] : 0, 1]), groups); // the kernel's own checks
                if (x.Shape.Length < 3) throw new QuantToolsException(ErrorCode.ShapeMismatch, "channel_shuffle expects at least a 3-d input");
                int nb = x.Shape[0], c = x.Shape[1], per = c / groups;
                int inner = 1;
                for (int d = 2; d < x.Shape.Length; d++) inner *= x.Shape[d];
                // output channel j*g + i is input channel i*(C/g) + j: view [N, per, g, inner] reading [N, g, per, inner]
                var y = Same(x, x.Shape, x.DType, x.Scale, x.ZeroPoint);
                Add(new GatherStep
                {
                    Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Why = "channel_shuffle", Shape = [nb, per, groups, inner],
                    SourceStrides = [(long)c * inner, inner, (long)per * inner, 1], SourceOffset = 0,
                });
                return [y];
            }
            case "quantized::cat" or "quantized::cat_relu":
            {
                var xs = TensorList(a[0]);
                int dim = (int)L(a[1], "dim");
                double scale = a.Length > 2 && a[2] is not null ? D(a[2], "scale") : xs[0].Scale;
                long zp = a.Length > 3 && a[3] is not null ? (long)D(a[3], "zero_point") : xs[0].ZeroPoint;
                return [Cat(n, xs, dim, scale, zp, n.Op == "quantized::cat_relu")];
            }
            case "aten::cat":
            {
                var xs = TensorList(a[0]);
                int dim = (int)L(Arg(a, 1, 0L), "dim");
                if (xs.Any(x => !x.IsQuantized)) throw NotExpressible("a float cat");
                return [Cat(n, xs, dim, xs[0].Scale, xs[0].ZeroPoint, false)];
            }
            case "quantized::add" or "quantized::add_relu" or "quantized::mul" or "quantized::mul_relu":
                return [Binary(n, a)];
            case "quantized::add_scalar" or "quantized::add_scalar_relu" or "quantized::mul_scalar" or "quantized::mul_scalar_relu":
            {
                var x = QIn(a[0], "input");
                bool relu = n.Op.EndsWith("_relu", StringComparison.Ordinal);
                double c = D(a[1], "other");
                bool isAdd = n.Op.Contains("add", StringComparison.Ordinal);
                // a function of the input integer alone (no vector/scalar split): the table is the kernel's output
                var probe = isAdd ? QElementwise.AddScalar(AllIntegers(QP(x)), c, relu, e) : QElementwise.MulScalar(AllIntegers(QP(x)), c, relu, e);
                var table = TableOf(probe, x.Signed);
                var y = Same(x, x.Shape, probe.DType, probe.QParams.Scale, probe.QParams.ZeroPoint);
                Add(new LutStep
                {
                    Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Function = isAdd ? "add_scalar" : "mul_scalar",
                    VectorTable = table, ScalarTable = table,
                });
                return [y];
            }
            case "prim::ListUnpack":
            {
                IReadOnlyList<object?> seq = a[0] switch
                {
                    List<object?> l => l,
                    object?[] t => t,
                    _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"cannot unpack {ScalarOps.TypeOf(a[0])}"),
                };
                if (seq.Count != n.Outputs.Count)
                    throw new QuantToolsException(ErrorCode.ShapeMismatch, $"expected {n.Outputs.Count} values to unpack, got {seq.Count}");
                return seq.ToArray();
            }
            case "prim::RaiseIf":
            {
                bool c = ScalarOps.ToBool(a[0], "condition");
                if (c != (bool)a[1]!) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"the model's check failed for input shape [{string.Join(", ", ((ExportTensor)_env[_graph.Inputs[0]]!).Shape)}]: {a[2]}");
                return [];
            }
            default:
                if (ScalarOps.Names.Contains(n.Op))
                {
                    if (n.Op is not ("prim::ListConstruct" or "prim::TupleConstruct") && a.Any(v => v is ExportTensor))
                        throw NotExpressible($"{n.Op} on a tensor");
                    return [ScalarOps.Eval(n.Op, a)];
                }
                throw NotExpressible($"op {n.Op}");
        }
    }

    /// <summary>A small quantized tensor with <paramref name="x"/>'s qparams, for Core APIs that check or plan from a tensor.</summary>
    private static QTensor Probe(ExportTensor x, int[]? shape = null)
    {
        shape ??= [1];
        var qp = QP(x);
        var n = (int)Tensor.CheckedNumel(shape);
        return new QTensor(Tensor.Zeros(qp.DType.IntReprType(), shape), qp);
    }

    /// <summary>
    /// One [1, 1, H, W] plane with x's qparams, for Core's pooling shape functions (they check the arguments and compute
    /// the spatial output size; the caller puts N and C back).
    /// </summary>
    private static QTensor Probe4d(ExportTensor x)
    {
        if (x.Shape.Length != 4) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"expected a 4-d input, got [{string.Join(", ", x.Shape)}]");
        return new QTensor(Tensor.Zeros(QP(x).DType.IntReprType(), [1, 1, x.Shape[2], x.Shape[3]]), QP(x));
    }

    private static (int Lo, int Hi) Bounds(QTensor probe, bool signed)
    {
        // probe input ran qmin..qmax in order: the output at qmin is the low bound, at qmax the high one
        var b = QOps.Bytes(probe);
        return signed ? ((sbyte)b[0], (sbyte)b[255]) : (b[0], b[255]);
    }

    private ExportTensor ClampLike(GraphNode n, ExportTensor x, float lo, float hi, bool qnnpackLayout)
    {
        var probe = QActivation.Hardtanh(AllIntegers(QP(x)), lo, hi, _engine);
        var (qlo, qhi) = Bounds(probe, x.Signed);
        // PyTorch's qnnpack_clamp (qnnpack, quint8, both bounds): channels_last input comes back as its NHWC memory read
        // as NCHW (ModelExecutor.QnnpackClamp; the qnnpack relu6_eager golden model proves it)
        bool scramble = qnnpackLayout && _engine == QEngine.Qnnpack && x.DType == DType.QUInt8 && x.Shape.Length == 4 &&
                        Layout.SuggestsChannelsLast(x.Shape, x.Strides);
        var y = scramble ? NewTensor(x.Shape, Layout.ChannelsLast(x.Shape), x.DType, x.Scale, x.ZeroPoint) : Same(x, x.Shape, x.DType, x.Scale, x.ZeroPoint);
        Add(new ClampStep
        {
            Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Low = qlo, High = qhi,
            FloatLow = float.IsNegativeInfinity(lo) ? null : lo, FloatHigh = float.IsPositiveInfinity(hi) ? null : hi,
        });
        if (!scramble) return y;
        int nb = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        var z = NewTensor(x.Shape, Layout.Contiguous(x.Shape), x.DType, x.Scale, x.ZeroPoint);
        Add(new GatherStep
        {
            Layer = StepLayer, TorchOp = n.Op, Inputs = [y], Output = z, Why = "qnnpack_clamp NHWC memory read as NCHW",
            Shape = [nb, h, w, c], SourceStrides = [(long)c * h * w, w, 1, (long)h * w], SourceOffset = 0,
        });
        return z;
    }

    private ExportTensor Lut(GraphNode n, ExportTensor x, string fn, QActivation.Plan plan)
    {
        var (vec, sca) = QActivation.Tables(plan);
        var y = Same(x, x.Shape, plan.DType, plan.OutScale, plan.OutZp);
        Add(new LutStep { Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Function = fn, VectorTable = vec, ScalarTable = sca });
        return y;
    }

    private ExportTensor Conv(GraphNode n, object?[] a)
    {
        if (n.Inputs.Count < 2 || n.Inputs[1].Constant is not ConvPackedParams cp)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "conv packed params must be a module constant");
        int[] I(long[] v) => v.Select(x => checked((int)x)).ToArray();
        // exactly the executor's prepacking (ModelExecutor.Prepare)
        var pw = PackedConvWeight.Create(cp.Weight, cp.Bias, I(cp.Stride), I(cp.Padding), I(cp.Dilation), checked((int)cp.Groups),
            cp.Transpose, I(cp.OutputPadding), _engine, _cpu);
        var x = QIn(a[0], "input");
        if (x.DType != DType.QUInt8)
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"quantized conv needs quint8 input, got {x.DType.TorchName()}");
        if (x.Shape.Length != pw.SpatialDims + 2 || x.Shape[1] != pw.Shape.InChannels)
            throw new QuantToolsException(ErrorCode.ShapeMismatch,
                $"input [{string.Join(", ", x.Shape)}] does not match the layer ({pw.Shape.InChannels} input channels, {pw.SpatialDims}-d)");
        int h = pw.SpatialDims == 2 ? x.Shape[2] : 1, w = x.Shape[^1];
        var (oh, ow) = pw.Shape.OutputSize(h, w);
        int[] shape = pw.SpatialDims == 2 ? [x.Shape[0], pw.Shape.OutChannels, oh, ow] : [x.Shape[0], pw.Shape.OutChannels, ow];
        bool relu = n.Op.EndsWith("_relu", StringComparison.Ordinal);
        double os = D(a[2], "scale");
        long oz = (long)D(a[3], "zero_point");
        var stage = new OutputStage(pw.Backend, x.Scale, pw.WScale, pw.Bias, os, oz, relu, pw.PerChannel);
        CheckAccumulator((long)pw.Shape.K, n.Op);
        var strides = shape.Length == 4 ? Layout.ChannelsLast(shape) : ChannelsLast1d(shape);
        var y = NewTensor(shape, strides, DType.QUInt8, os, oz);
        Add(new ConvStep { Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Weight = pw, OriginalWeight = cp.Weight, FloatBias = cp.Bias, Stage = stage, Relu = relu });
        return y;
    }

    private static void CheckAccumulator(long k, string op)
    {
        // int32 accumulators: PyTorch's own limit; beyond it the exact sum could wrap where int32 arithmetic wraps too
        if (k > 33_000)
            throw new QuantToolsException(ErrorCode.NotSupported, $"{op}: reduction length {k} is too long for the exported int32 accumulators");
    }

    private static long[] ChannelsLast1d(int[] shape)
    {
        if (shape.Length != 3) return Layout.Contiguous(shape);
        var s4 = Layout.ChannelsLast([shape[0], shape[1], 1, shape[2]]);
        return [s4[0], s4[1], s4[3]];
    }

    private ExportTensor Linear(GraphNode n, object?[] a)
    {
        if (n.Inputs.Count < 2 || n.Inputs[1].Constant is not LinearPackedParams lp)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "linear packed params must be a module constant");
        if (lp.Weight is not QTensor wq) throw NotExpressible("float16 dynamic linear weights");
        var pw = PackedLinearWeight.Create(wq, lp.Bias, _engine, _cpu);
        var x = QIn(a[0], "input");
        if (x.DType != DType.QUInt8)
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"quantized linear needs quint8 input, got {x.DType.TorchName()}");
        if (x.Shape.Length < 1 || x.Shape[^1] != pw.InFeatures)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"input [{string.Join(", ", x.Shape)}] does not end in {pw.InFeatures} features");
        int rows = 1;
        for (int i = 0; i < x.Shape.Length - 1; i++) rows *= x.Shape[i];
        bool relu = n.Op.EndsWith("_relu", StringComparison.Ordinal);
        double os = D(a[2], "scale");
        long oz = (long)D(a[3], "zero_point");
        var stage = new OutputStage(pw.Backend, x.Scale, pw.WScale, pw.Bias, os, oz, relu, pw.PerChannel);
        CheckAccumulator(pw.InFeatures, n.Op);
        int[] shape = [.. x.Shape[..^1], pw.OutFeatures];
        var y = NewTensor(shape, Layout.Contiguous(shape), DType.QUInt8, os, oz);
        Add(new LinearStep { Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Weight = pw, OriginalWeight = wq, FloatBias = lp.Bias, Stage = stage, Relu = relu, Rows = rows });
        return y;
    }

    private ExportTensor AdaptiveAvgPool(GraphNode n, ExportTensor x, int[] size)
    {
        if (x.Shape.Length != 4) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "adaptive_avg_pool2d needs a 4-d input");
        var (oh, ow) = Pair(size);
        if (oh <= 0 || ow <= 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "adaptive_avg_pool2d: output size must be positive");
        int h = x.Shape[2], w = x.Shape[3];
        int[] shape = [x.Shape[0], x.Shape[1], oh, ow];
        if (_engine == QEngine.Qnnpack && x.DType == DType.QUInt8 && h % oh == 0 && w % ow == 0)
        {
            // QPool.AdaptiveAvgPool2d → QNNPACK average pooling with kernel = stride = input / output
            int kh = h / oh, kw = w / ow;
            var yq = NewTensor(shape, Layout.ChannelsLast(shape), x.DType, x.Scale, x.ZeroPoint);
            Add(new AvgPoolStep
            {
                Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = yq, Variant = AvgPoolVariant.Qnnpack, KH = kh, KW = kw, SH = kh, SW = kw,
                Multiplier = QnnpackAvgMultiplier(x.Scale, kh * kw),
            });
            return yq;
        }
        var rs = new int[oh]; var re = new int[oh]; var cs = new int[ow]; var ce = new int[ow];
        // window [floor(f32(o*I)/O), ceil(f32((o+1)*I)/O)) (PoolKernels.AdaptiveAvgNchw, ModelExecutor.AdaptiveAvgNhwc)
        for (int o = 0; o < oh; o++) { rs[o] = (int)MathF.Floor((float)(o * h) / oh); re[o] = (int)MathF.Ceiling((float)((o + 1) * h) / oh); }
        for (int o = 0; o < ow; o++) { cs[o] = (int)MathF.Floor((float)(o * w) / ow); ce[o] = (int)MathF.Ceiling((float)((o + 1) * w) / ow); }
        bool nhwc = Layout.IsChannelsLastContiguous(x.Shape, x.Strides);
        ExportTensor y;
        if (nhwc)
        {
            // ModelExecutor.AdaptiveAvgNhwc: m = f32(f32(s_in)/f32(s_out)) / size, then PoolKernels.AvgPoolNhwcElement
            float ratio = (float)x.Scale / (float)x.Scale;
            int maxSize = Enumerable.Range(0, oh).Max(o => re[o] - rs[o]) * Enumerable.Range(0, ow).Max(o => ce[o] - cs[o]);
            var (mv, ms) = NhwcMultipliers(ratio, maxSize);
            y = NewTensor(shape, Layout.ChannelsLast(shape), x.DType, x.Scale, x.ZeroPoint);
            Add(new AvgPoolStep
            {
                Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Variant = AvgPoolVariant.AdaptiveNhwc,
                Multipliers = mv, TailMultipliers = ms, RowStart = rs, RowEnd = re, ColStart = cs, ColEnd = ce,
            });
            return y;
        }
        // PoolKernels.AdaptiveAvgNchw: r = f32(f32(1/kH)/kW) per output position
        var r = new float[oh * ow];
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                r[oy * ow + ox] = (float)(1.0 / (re[oy] - rs[oy])) / (ce[ox] - cs[ox]);
        y = NewTensor(shape, Layout.Contiguous(shape), x.DType, x.Scale, x.ZeroPoint);
        Add(new AvgPoolStep
        {
            Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Variant = AvgPoolVariant.AdaptiveNchw, Multipliers = r,
            RowStart = rs, RowEnd = re, ColStart = cs, ColEnd = ce,
        });
        return y;
    }

    /// <summary>QPool.AvgPool2dCore's qnnpack multiplier <c>f32(s_in / f32(s_out·kH·kW))</c> (input and output share the scale).</summary>
    private static float QnnpackAvgMultiplier(double scale, int taps) => (float)scale / ((float)scale * taps);

    /// <summary>
    /// PoolKernels.AvgPoolNhwcElement's two multipliers for every divisor: vector lanes <c>m = f32(ratio / div)</c>,
    /// scalar tail <c>f32(1 / f32(1/m))</c>.
    /// </summary>
    private static (float[] Vector, float[] Tail) NhwcMultipliers(float ratio, int maxDiv)
    {
        var mv = new float[maxDiv + 1];
        var ms = new float[maxDiv + 1];
        for (int d = 1; d <= maxDiv; d++)
        {
            float m = ratio / d;
            float scale = 1.0f / m;
            mv[d] = m;
            ms[d] = 1.0f / scale;
        }
        return (mv, ms);
    }

    private ExportTensor AvgPool(GraphNode n, ExportTensor x, object?[] a)
    {
        var k = Pair(Ints(a[1], "kernel_size"));
        var s = a.Length > 2 && Ints(a[2], "stride") is { Length: > 0 } st ? Pair(st) : k;
        var p = a.Length > 3 ? Pair(Ints(a[3], "padding")) : (0, 0);
        bool ceil = a.Length > 4 && ScalarOps.ToBool(a[4], "ceil_mode");
        bool cip = a.Length <= 5 || ScalarOps.ToBool(a[5], "count_include_pad");
        int? div = a.Length > 6 && a[6] is not null ? (int)L(a[6], "divisor_override") : null;
        bool cl = Layout.IsChannelsLastContiguous(x.Shape, x.Strides) && !Layout.IsContiguous(x.Shape, x.Strides);
        var shape = QPool.AvgPool2dShape(Probe4d(x), k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, div);
        shape[0] = x.Shape[0]; shape[1] = x.Shape[1];
        var y = NewTensor(shape, cl ? Layout.ChannelsLast(shape) : Layout.Contiguous(shape), x.DType, x.Scale, x.ZeroPoint);
        int maxDiv = div ?? (k.Item1 * k.Item2);
        AvgPoolStep step;
        if (_engine == QEngine.Qnnpack && x.DType == DType.QUInt8 && !ceil)
        {
            step = new AvgPoolStep
            {
                Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Variant = AvgPoolVariant.Qnnpack,
                Multiplier = QnnpackAvgMultiplier(x.Scale, k.Item1 * k.Item2),
                KH = k.Item1, KW = k.Item2, SH = s.Item1, SW = s.Item2, PH = p.Item1, PW = p.Item2,
            };
        }
        else if (cl)
        {
            // QPool.AvgPool2dCore passes scaleRatio 1.0f to PoolKernels.AvgPoolNhwc (input and output share qparams)
            var (mv, ms) = NhwcMultipliers(1.0f, maxDiv);
            step = new AvgPoolStep
            {
                Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Variant = AvgPoolVariant.Nhwc, Multipliers = mv, TailMultipliers = ms,
                KH = k.Item1, KW = k.Item2, SH = s.Item1, SW = s.Item2, PH = p.Item1, PW = p.Item2, CountIncludePad = cip, DivisorOverride = div,
            };
        }
        else
        {
            // PoolKernels.AvgNchwOut with scaleFactor 1.0 (double): m = f32(1.0 / div)
            var m = new float[maxDiv + 1];
            for (int d = 1; d <= maxDiv; d++) m[d] = (float)(1.0 / d);
            step = new AvgPoolStep
            {
                Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Variant = AvgPoolVariant.Nchw, Multipliers = m,
                KH = k.Item1, KW = k.Item2, SH = s.Item1, SW = s.Item2, PH = p.Item1, PW = p.Item2, CountIncludePad = cip, DivisorOverride = div,
            };
        }
        Add(step);
        return y;
    }

    private ExportTensor Mean(GraphNode n, ExportTensor x, object?[] a)
    {
        var dims = Ints(a[1], "dim").Select(d => d < 0 ? d + x.Shape.Length : d).ToArray();
        bool keep = a.Length > 2 && ScalarOps.ToBool(a[2], "keepdim");
        if (a.Length > 3 && a[3] is not null) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "mean with a dtype");
        bool hw = x.Shape.Length == 4 && dims.Length == 2 && dims[0] == 2 && dims[1] == 3;
        if (!hw) throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"quantized mean over dims [{string.Join(", ", dims)}] of a {x.Shape.Length}-d tensor");
        int nb = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        if (h * w == 0) throw new QuantToolsException(ErrorCode.ShapeMismatch, "mean over an empty H x W");
        int[] shape = keep ? [nb, c, 1, 1] : [nb, c];
        var y = NewTensor(shape, Layout.Contiguous(shape), x.DType, x.Scale, x.ZeroPoint);
        AvgPoolVariant v;
        float mult = 0;
        if (_engine == QEngine.Qnnpack && x.DType == DType.QUInt8)
        {
            v = AvgPoolVariant.MeanQnnpack;
            float sc = (float)x.Scale;
            mult = sc / (sc * (float)(h * w)); // QPool.MeanHW's qnnpack multiplier
        }
        else if (Layout.IsContiguous(x.Shape, x.Strides)) v = AvgPoolVariant.MeanInner;
        else v = AvgPoolVariant.MeanFloat;
        Add(new AvgPoolStep { Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Variant = v, Multiplier = mult, KH = h, KW = w });
        return y;
    }

    private ExportTensor Cat(GraphNode n, List<ExportTensor> xs, int dim, double scale, long zp, bool relu)
    {
        if (xs.Count == 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "cat of an empty list");
        foreach (var x in xs)
        {
            if (!x.IsQuantized) throw new QuantToolsException(ErrorCode.UnsupportedDType, "cat input must be a quantized tensor");
            if (x.DType != xs[0].DType) throw new QuantToolsException(ErrorCode.InvalidArgument, "cat inputs must share a dtype");
        }
        int rank = xs[0].Shape.Length;
        if (dim < 0) dim += rank;
        if (dim < 0 || dim >= rank) throw new QuantToolsException(ErrorCode.InvalidArgument, $"cat dim {dim} is out of range for rank {rank}");
        var shape = (int[])xs[0].Shape.Clone();
        shape[dim] = 0;
        foreach (var x in xs)
        {
            if (x.Shape.Length != rank) throw new QuantToolsException(ErrorCode.ShapeMismatch, "cat inputs must share a rank");
            for (int d = 0; d < rank; d++)
                if (d != dim && x.Shape[d] != xs[0].Shape[d]) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"cat inputs differ in dimension {d}");
            shape[dim] += x.Shape[dim];
        }
        var dt = xs[0].DType;
        QParams.PerTensor(scale, zp, dt);
        bool nhwc = dim == 1 && xs.All(x => x.Shape.Length == 4 && Layout.IsChannelsLastContiguous(x.Shape, x.Strides));
        if (!nhwc && relu) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "cat_relu outside the channels_last fast path");
        // ModelExecutor.CatNhwc / QElementwise.Cat
        var parts = xs.Select(x =>
        {
            float sf = (float)x.Scale;
            int zin = (int)x.ZeroPoint;
            return new CatInput(x.Scale == scale && x.ZeroPoint == zp, sf, zin, QOps.Premul(sf, zin), x.Shape[1] / (QOps.AtenVectorBytes / 4) * (QOps.AtenVectorBytes / 4));
        }).ToList();
        bool cl = nhwc || xs.All(x => Layout.SuggestsChannelsLast(x.Shape, x.Strides));
        var y = NewTensor(shape, cl ? Layout.ChannelsLast(shape) : Layout.Contiguous(shape), dt, scale, zp);
        Add(new CatStep
        {
            Layer = StepLayer, TorchOp = n.Op, Inputs = xs, Output = y, Nhwc = nhwc, Dim = dim, Relu = relu, Parts = parts,
            InverseVector = (float)(1.0 / scale), InverseScalar = QuantizeKernels.InverseScale(scale),
        });
        return y;
    }

    private ExportTensor Binary(GraphNode n, object?[] a)
    {
        var x = QIn(a[0], "a");
        var xb = QIn(a[1], "b");
        bool relu = n.Op.EndsWith("_relu", StringComparison.Ordinal);
        bool add = n.Op.StartsWith("quantized::add", StringComparison.Ordinal);
        if (x.DType != xb.DType) throw new QuantToolsException(ErrorCode.InvalidArgument, $"inputs must share a dtype ({x.DType.TorchName()} vs {xb.DType.TorchName()})");
        var qa = x;
        var qb = xb;
        if (!qa.Shape.SequenceEqual(qb.Shape))
        {
            if (add) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "quantized add with broadcasting is not supported");
            var shape = BroadcastShape(qa.Shape, qb.Shape);
            qa = Expand(n, qa, shape);
            qb = Expand(n, qb, shape);
        }
        // the executor's NHWC test: element-wise kernels split vector blocks / scalar tail in memory order
        bool nhwc = qa.Shape.Length == 4 && Layout.SuggestsChannelsLast(x.Shape, x.Strides) &&
                    Layout.IsChannelsLastContiguous(x.Shape, x.Strides) && Layout.IsChannelsLastContiguous(xb.Shape, xb.Strides) &&
                    !Layout.IsContiguous(x.Shape, x.Strides);
        double os = D(a[2], "scale");
        long oz = (long)D(a[3], "zero_point");
        QParams.PerTensor(os, oz, qa.DType);
        var outStrides = Layout.SuggestsChannelsLast(x.Shape, x.Strides) ? Layout.ChannelsLast(qa.Shape) : Layout.Contiguous(qa.Shape);
        var y = NewTensor(qa.Shape, outStrides, qa.DType, os, oz);
        BinaryStep step;
        if (add)
        {
            // QElementwise.Add: QNNPACK's fixed-point add for quint8 under qnnpack, ATen's qadd_kernel otherwise
            if (_engine == QEngine.Qnnpack && qa.DType == DType.QUInt8)
                step = new BinaryStep
                {
                    Layer = StepLayer, TorchOp = n.Op, Inputs = [qa, qb], Output = y, Mul = false, Relu = relu, Nhwc = nhwc,
                    QnnpackAdd = AddKernels.QnnpackParams(QP(qa), QP(qb), os, oz, relu),
                };
            else
                step = new BinaryStep
                {
                    Layer = StepLayer, TorchOp = n.Op, Inputs = [qa, qb], Output = y, Mul = false, Relu = relu, Nhwc = nhwc,
                    AtenAdd = AddKernels.AtenParams(QP(qa), QP(qb), os, oz, relu),
                };
        }
        else
            step = new BinaryStep
            {
                Layer = StepLayer, TorchOp = n.Op, Inputs = [qa, qb], Output = y, Mul = true, Relu = relu, Nhwc = nhwc,
                MulMultiplier = QElementwise.MulMultiplier(qa.Scale, qb.Scale, os),
            };
        Add(step);
        return y;
    }

    private static int[] BroadcastShape(int[] a, int[] b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) >= 0 ? a[i - (rank - a.Length)] : 1;
            int db = i - (rank - b.Length) >= 0 ? b[i - (rank - b.Length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new QuantToolsException(ErrorCode.ShapeMismatch, $"shapes [{string.Join(", ", a)}] and [{string.Join(", ", b)}] do not broadcast");
            r[i] = Math.Max(da, db);
        }
        return r;
    }

    private ExportTensor Expand(GraphNode n, ExportTensor q, int[] shape)
    {
        if (q.Shape.SequenceEqual(shape)) return q;
        int rank = shape.Length;
        var inShape = Enumerable.Repeat(1, rank - q.Shape.Length).Concat(q.Shape).ToArray();
        var inStrides = Layout.Contiguous(inShape);
        var strides = new long[rank];
        for (int d = 0; d < rank; d++) strides[d] = inShape[d] == 1 ? 0 : inStrides[d];
        // the executor's expanded operand is a fresh tensor with the input's strides object; only its data matters here
        var y = NewTensor(shape, q.Strides.Length == rank ? q.Strides : Layout.Contiguous(shape), q.DType, q.Scale, q.ZeroPoint);
        Add(new GatherStep { Layer = StepLayer, TorchOp = n.Op, Inputs = [q], Output = y, Why = "broadcast", Shape = shape, SourceStrides = strides, SourceOffset = 0 });
        return new ExportTensor { Shape = y.Shape, Strides = q.Strides, DType = y.DType, Scale = y.Scale, ZeroPoint = y.ZeroPoint, Buffer = y.Buffer, Value = y.Value };
    }

    private ExportTensor Reshape(ExportTensor x, int[] shape, bool mustView)
    {
        long numel = x.Numel;
        int infer = Array.IndexOf(shape, -1);
        if (infer >= 0)
        {
            long rest = 1;
            for (int i = 0; i < shape.Length; i++) if (i != infer) rest *= shape[i];
            if (rest == 0 || numel % rest != 0) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"shape [{string.Join(", ", shape)}] is invalid for {numel} elements");
            shape = (int[])shape.Clone();
            shape[infer] = (int)(numel / rest);
        }
        long n2 = 1;
        foreach (var s in shape) n2 *= s;
        if (n2 != numel) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"shape [{string.Join(", ", shape)}] is invalid for input of size {numel}");
        var strides = Layout.ViewStrides(x.Shape, x.Strides, shape);
        if (strides is null)
        {
            if (mustView) throw new QuantToolsException(ErrorCode.ShapeMismatch, "view size is not compatible with input tensor's size and stride; use reshape");
            strides = Layout.Contiguous(shape);
        }
        // logical order never changes under view / reshape: the same buffer
        return View(x, shape, strides);
    }

    private ExportTensor Transpose(GraphNode n, ExportTensor x, int d0, int d1)
    {
        int rank = x.Shape.Length;
        if (d0 < 0) d0 += rank;
        if (d1 < 0) d1 += rank;
        if (d0 < 0 || d1 < 0 || d0 >= rank || d1 >= rank) throw new QuantToolsException(ErrorCode.InvalidArgument, $"transpose dims out of range for rank {rank}");
        if (d0 == d1) return x;
        var strides = (long[])x.Strides.Clone();
        (strides[d0], strides[d1]) = (strides[d1], strides[d0]);
        var shape = (int[])x.Shape.Clone();
        (shape[d0], shape[d1]) = (shape[d1], shape[d0]);
        var src = Layout.Contiguous(x.Shape);
        var map = (long[])src.Clone();
        (map[d0], map[d1]) = (map[d1], map[d0]);
        var y = NewTensor(shape, strides, x.DType, x.Scale, x.ZeroPoint);
        Add(new GatherStep { Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Why = "transpose", Shape = shape, SourceStrides = map, SourceOffset = 0 });
        return y;
    }

    private List<object?> Chunk(GraphNode n, ExportTensor x, int chunks, int dim)
    {
        int rank = x.Shape.Length;
        if (dim < 0) dim += rank;
        if (chunks <= 0 || dim < 0 || dim >= rank) throw new QuantToolsException(ErrorCode.InvalidArgument, "chunk: bad chunks or dim");
        int size = x.Shape[dim];
        int each = (size + chunks - 1) / chunks;
        var list = new List<object?>();
        var src = Layout.Contiguous(x.Shape);
        for (int start = 0; start < size || (size == 0 && list.Count == 0); start += each)
        {
            int len = Math.Min(each, size - start);
            if (each == 0) break;
            var shape = (int[])x.Shape.Clone();
            shape[dim] = len;
            var y = NewTensor(shape, (long[])x.Strides.Clone(), x.DType, x.Scale, x.ZeroPoint);
            Add(new GatherStep
            {
                Layer = StepLayer, TorchOp = n.Op, Inputs = [x], Output = y, Why = "chunk", Shape = shape, SourceStrides = src,
                SourceOffset = start * src[dim],
            });
            list.Add(y);
        }
        return list;
    }

    private static List<ExportTensor> TensorList(object? v) => v switch
    {
        List<object?> l => l.Select(x => T(x, "list element")).ToList(),
        object?[] t => t.Select(x => T(x, "list element")).ToList(),
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"expected a list of tensors, got {ScalarOps.TypeOf(v)}"),
    };
}
