using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Kernels.Elementwise;
using QuantTools.Core.Kernels.Pooling;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Quantization;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Execution;

/// <summary>One layer's quantized output with its qparams, captured while a model ran.</summary>
public sealed record CapturedLayer(string Name, string Kind, QTensor Value)
{
    public QParams QParams => Value.QParams;
    public override string ToString() => $"{Name} ({Kind}): {Value}";
}

/// <summary>The result of running a model on one batch.</summary>
public sealed class ModelResult
{
    /// <summary>The model's outputs in order: <see cref="Tensor"/> (float) or <see cref="QTensor"/>.</summary>
    public required IReadOnlyList<object> Outputs { get; init; }
    /// <summary>The first output as a float tensor (dequantized when the model returns a quantized tensor).</summary>
    public Tensor Output => Outputs[0] switch
    {
        Tensor t => t,
        QTensor q => Quantizer.Dequantize(q),
        var o => throw new InvalidOperationException($"output is {o.GetType().Name}"),
    };
    /// <summary>The first output when it is quantized, else null.</summary>
    public QTensor? QuantizedOutput => Outputs[0] as QTensor;
    /// <summary>Every module's quantized output, by module path in call order (empty unless capture was asked for).</summary>
    public IReadOnlyList<CapturedLayer> Layers { get; init; } = [];

    public CapturedLayer? Layer(string name) => Layers.FirstOrDefault(l => l.Name == name);
}

/// <summary>Progress of a batch run.</summary>
public readonly record struct ModelProgress(int BatchesDone, int? BatchesTotal);

/// <summary>
/// Runs a <see cref="ModelGraph"/> with QuantTools' integer kernels under one engine. Conv and linear weights are
/// prepacked once when the executor is made; values are dropped after their last use so a run holds only the live
/// activations. Errors name the layer (module path), the op, the source line and the input shapes.
/// </summary>
public sealed class ModelExecutor
{
    public ModelGraph Graph { get; }
    public QEngine Engine { get; }
    /// <summary>
    /// The CPU class whose PyTorch the run reproduces (which library an <c>x86</c> conv runs on, FBGEMM's pair saturation,
    /// ATen's vector widths); <see cref="CpuClass.Avx512Vnni"/> unless asked otherwise.
    /// </summary>
    public CpuClass Cpu { get; }

    /// <summary>When set, called after every node with its wall time in milliseconds (profiling; null costs nothing).</summary>
    public Action<GraphNode, double>? NodeTimer { get; set; }

    private readonly object?[] _prepared;
    private readonly Dictionary<string, int> _lastUse = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _layersOfValue = new(StringComparer.Ordinal);
    // quint8 activation buffers freed by earlier layers / runs; a run takes the pool for itself (concurrent runs get a fresh one)
    private BufferPool? _pool = new();

    public ModelExecutor(ModelGraph graph, QEngine engine) : this(graph, engine, CpuClass.Avx512Vnni) { }

    public ModelExecutor(ModelGraph graph, QEngine engine, CpuClass cpu)
    {
        Graph = graph ?? throw new ArgumentNullException(nameof(graph));
        Engine = engine;
        Cpu = Kernels.Requantization.EngineProfile.EffectiveCpu(engine, cpu);
        _prepared = new object?[graph.Nodes.Count];
        foreach (var n in graph.Nodes)
        {
            foreach (var i in n.Inputs)
                if (i.IsValue) _lastUse[i.Value!] = n.Index;
            _prepared[n.Index] = Prepare(n);
        }
        foreach (var o in graph.Outputs) _lastUse[o] = int.MaxValue;
        foreach (var (layer, value) in graph.LayerOutputs)
        {
            if (!_layersOfValue.TryGetValue(value, out var l)) _layersOfValue[value] = l = new List<string>();
            l.Add(layer);
        }
    }

    /// <summary>Loads a TorchScript file, builds its graph and prepacks its weights.</summary>
    public static ModelExecutor Load(string path, QEngine engine) => new(TorchScriptFrontEnd.Build(path), engine);

    /// <summary>Loads a TorchScript file for PyTorch on a CPU of class <paramref name="cpu"/>.</summary>
    public static ModelExecutor Load(string path, QEngine engine, CpuClass cpu) => new(TorchScriptFrontEnd.Build(path), engine, cpu);

    // ------------------------------------------------------------------ prepacking


    private object? Prepare(GraphNode n)
    {
        switch (n.Op)
        {
            case "quantized::conv1d" or "quantized::conv1d_relu" or "quantized::conv2d" or "quantized::conv2d_relu"
                or "quantized::conv_transpose1d" or "quantized::conv_transpose2d":
            {
                if (n.Inputs.Count < 2 || n.Inputs[1].Constant is not ConvPackedParams cp)
                    throw NodeError(n, "conv packed params must be a module constant", null);
                int[] I(long[] v) => v.Select(x => checked((int)x)).ToArray();
                try
                {
                    return PackedConvWeight.Create(cp.Weight, cp.Bias, I(cp.Stride), I(cp.Padding), I(cp.Dilation), checked((int)cp.Groups),
                        cp.Transpose, I(cp.OutputPadding), Engine, Cpu);
                }
                catch (QuantToolsException e)
                {
                    throw NodeError(n, "prepacking: " + e.Message, null, e);
                }
            }
            case "quantized::linear" or "quantized::linear_relu" or "quantized::linear_dynamic" or "quantized::linear_relu_dynamic":
            {
                if (n.Inputs.Count < 2 || n.Inputs[1].Constant is not LinearPackedParams lp)
                    throw NodeError(n, "linear packed params must be a module constant", null);
                if (lp.Weight is not QTensor w)
                    throw NodeError(n, "float16 dynamic linear weights are not supported", null);
                try
                {
                    return PackedLinearWeight.Create(w, lp.Bias, Engine, Cpu);
                }
                catch (QuantToolsException e)
                {
                    throw NodeError(n, "prepacking: " + e.Message, null, e);
                }
            }
            default:
                return null;
        }
    }

    private static string Layer(GraphNode n) => n.ModulePath.Length > 0 ? n.ModulePath : "<root>";

    private static QuantToolsException NodeError(GraphNode n, string msg, object?[]? inputs, Exception? inner = null)
    {
        string shapes = inputs is null ? "" : " inputs: " + string.Join(", ", inputs.Select(Describe));
        string src = n.Source is null ? "" : $" ({n.Source})";
        var code = inner is QuantToolsException q ? q.Code : ErrorCode.InvalidArgument;
        return new QuantToolsException(code, $"{n.Op}: {msg};{shapes}{src}", $"layer '{Layer(n)}'", inner);
    }

    private static string Describe(object? v) => v switch
    {
        RtTensor t => t.ToString(),
        List<object?> l => "[" + string.Join(", ", l.Select(Describe)) + "]",
        _ => ModelGraph.Describe(v),
    };

    // ------------------------------------------------------------------ running

    /// <summary>Runs the model on one batch (a float tensor for a model whose forward takes one tensor).</summary>
    public ModelResult Run(Tensor input, bool captureLayers = false, CancellationToken cancel = default) =>
        Run([input], captureLayers, cancel);

    public ModelResult Run(IReadOnlyList<Tensor> inputs, bool captureLayers = false, CancellationToken cancel = default)
    {
        if (inputs.Count != Graph.Inputs.Count)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"the model takes {Graph.Inputs.Count} input(s), got {inputs.Count}", Graph.Source);
        var pool = Interlocked.Exchange(ref _pool, null) ?? new BufferPool();
        using var cpu = CpuClasses.Use(Cpu);
        try
        {
            return RunCore(inputs, captureLayers, pool, cancel);
        }
        finally
        {
            pool.EndRun();
            Volatile.Write(ref _pool, pool);
        }
    }

    private ModelResult RunCore(IReadOnlyList<Tensor> inputs, bool captureLayers, BufferPool pool, CancellationToken cancel)
    {
        var env = new Dictionary<string, object?>(StringComparer.Ordinal);
        // pooled arrays each live value holds (views share their source's array), counted per array; an array goes back
        // to the pool when no live value holds it and it was neither captured nor is a model output
        var held = new Dictionary<string, byte[][]>(StringComparer.Ordinal);
        var refs = new Dictionary<byte[], int>(ReferenceEqualityComparer.Instance);
        var pinned = new HashSet<byte[]>(ReferenceEqualityComparer.Instance);
        void Hold(string name, object? v)
        {
            var arrays = pool.OwnedIn(v);
            if (arrays.Length == 0) return;
            held[name] = arrays;
            foreach (var arr in arrays) refs[arr] = refs.TryGetValue(arr, out var c) ? c + 1 : 1;
        }
        void Drop(string name)
        {
            if (!env.Remove(name) || !held.Remove(name, out var arrays)) return;
            foreach (var arr in arrays)
            {
                int c = refs[arr] - 1;
                if (c > 0) { refs[arr] = c; continue; }
                refs.Remove(arr);
                if (!pinned.Contains(arr)) pool.Return(arr);
            }
        }
        for (int i = 0; i < inputs.Count; i++)
            env[Graph.Inputs[i]] = new RtTensor(inputs[i], Layout.Contiguous(inputs[i].Shape));
        var captured = new List<CapturedLayer>();
        void Capture(string value, object? v)
        {
            if (!captureLayers || !_layersOfValue.TryGetValue(value, out var names)) return;
            if (v is not RtTensor { Q: { } q }) return;
            if (q.IntRepr.Data is byte[] b) pinned.Add(b);
            foreach (var name in names)
                captured.Add(new CapturedLayer(name, Graph.LayerKinds.TryGetValue(name, out var k) ? k : "", q));
        }
        foreach (var inName in Graph.Inputs) Capture(inName, env[inName]);
        foreach (var n in Graph.Nodes)
        {
            cancel.ThrowIfCancellationRequested();
            var args = new object?[n.Inputs.Count];
            for (int i = 0; i < args.Length; i++)
            {
                var op = n.Inputs[i];
                args[i] = op.IsValue ? (env.TryGetValue(op.Value!, out var v) ? v : throw NodeError(n, $"value %{op.Value} is not computed", null)) : op.Constant;
            }
            object?[] outs;
            var timer = NodeTimer;
            long t0 = timer is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                outs = Execute(n, args, pool);
            }
            catch (QuantToolsException e) when (e.Target is null || !e.Target.StartsWith("layer '", StringComparison.Ordinal))
            {
                throw NodeError(n, e.Message, args, e);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IndexOutOfRangeException or InvalidCastException or OverflowException)
            {
                throw NodeError(n, e.Message, args, e);
            }
            timer?.Invoke(n, System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            for (int o = 0; o < n.Outputs.Count; o++)
            {
                env[n.Outputs[o]] = outs[o];
                Hold(n.Outputs[o], outs[o]);
                Capture(n.Outputs[o], outs[o]);
            }
            // drop values after their last use (values nothing reads are dropped at once)
            foreach (var i in n.Inputs)
                if (i.IsValue && _lastUse.TryGetValue(i.Value!, out var last) && last == n.Index) Drop(i.Value!);
            foreach (var o in n.Outputs)
                if (!_lastUse.ContainsKey(o)) Drop(o);
        }
        var results = Graph.Outputs.Select(o => env[o] switch
        {
            RtTensor { Q: { } q } => (object)q,
            RtTensor { F: { } f } => f,
            var x => x ?? throw new QuantToolsException(ErrorCode.InvalidArgument, "the model returned None", Graph.Source),
        }).ToList();
        // order captured layers by first call order of the graph
        var order = Graph.LayerOutputs.Select((kv, i) => (kv.Key, i)).ToDictionary(p => p.Key, p => p.i);
        captured.Sort((a, b) => order[a.Name].CompareTo(order[b.Name]));
        return new ModelResult { Outputs = results, Layers = captured };
    }

    /// <summary>Runs every batch in turn, reporting progress and stopping at cancellation between (and inside) batches.</summary>
    public IEnumerable<ModelResult> RunBatches(IEnumerable<Tensor> batches, bool captureLayers = false, IProgress<ModelProgress>? progress = null,
        CancellationToken cancel = default)
    {
        int? total = batches is ICollection<Tensor> c ? c.Count : null;
        int done = 0;
        foreach (var b in batches)
        {
            cancel.ThrowIfCancellationRequested();
            var r = Run(b, captureLayers, cancel);
            done++;
            progress?.Report(new ModelProgress(done, total));
            yield return r;
        }
    }

    // ------------------------------------------------------------------ ops

    private static RtTensor T(object? v, string what) => v as RtTensor
        ?? throw new QuantToolsException(ErrorCode.InvalidArgument, $"{what} must be a tensor, got {ScalarOps.TypeOf(v)}");

    private static QTensor QIn(object? v, string what)
    {
        var t = T(v, what);
        return t.Q ?? throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{what} must be a quantized tensor, got {t.F!.DType.TorchName()}");
    }

    private static long L(object? v, string what) => ScalarOps.ToLong(v, what);
    private static double D(object? v, string what) => ScalarOps.ToDouble(v, what);

    private static int[] Ints(object? v, string what) => v switch
    {
        List<object?> l => l.Select(x => checked((int)L(x, what))).ToArray(),
        object?[] t => t.Select(x => checked((int)L(x, what))).ToArray(),
        long x => [checked((int)x)],
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"{what} must be a list of ints, got {ScalarOps.TypeOf(v)}"),
    };

    private static object? Arg(object?[] a, int i, object? fallback = null) => i < a.Length ? a[i] : fallback;

    private static RtTensor Same(RtTensor like, QTensor q) => new(q, Layout.LikeSuggested(like.Shape, like.Strides));

    private object?[] Execute(GraphNode n, object?[] a, BufferPool pool)
    {
        var e = Engine;
        switch (n.Op)
        {
            case "aten::quantize_per_tensor":
            {
                var x = T(a[0], "input");
                if (x.F is null) throw new QuantToolsException(ErrorCode.UnsupportedDType, "quantize_per_tensor needs a float input");
                var dt = ScalarOps.DTypeOfCode(L(a[3], "dtype"));
                var q = Quantizer.Quantize(x.F.ToFloat32(), QParams.PerTensor(D(a[1], "scale"), (long)D(a[2], "zero_point"), dt));
                return [new RtTensor(q, Layout.LikeSuggested(x.Shape, x.Strides))];
            }
            case "aten::dequantize":
            {
                var x = T(a[0], "input");
                if (x.Q is null) return [x];
                return [new RtTensor(Quantizer.Dequantize(x.Q), Layout.LikeSuggested(x.Shape, x.Strides))];
            }
            case "aten::to":
            {
                var x = T(a[0], "input");
                var target = a.Length > 1 ? a[1] : null;
                if (x.F is not null && target is long code && ScalarOps.DTypeOfCode(code) == x.F.DType) return [x];
                if (x.F is not null && target is long code2 && ScalarOps.DTypeOfCode(code2) == DType.Float32) return [new RtTensor(x.F.ToFloat32(), x.Strides)];
                throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"aten::to with {Describe(target)} is not supported");
            }
            case "quantized::conv1d" or "quantized::conv1d_relu" or "quantized::conv2d" or "quantized::conv2d_relu"
                or "quantized::conv_transpose1d" or "quantized::conv_transpose2d":
            {
                var prep = (PackedConvWeight)_prepared[n.Index]!;
                var x = QIn(a[0], "input");
                var y = prep.Run(x, D(a[2], "scale"), (long)D(a[3], "zero_point"), n.Op.EndsWith("_relu", StringComparison.Ordinal),
                    pool.Rent(Numel(prep.OutputShape(x))));
                return [new RtTensor(y, y.Shape.Length == 4 ? Layout.ChannelsLast(y.Shape) : ChannelsLast1d(y.Shape))];
            }
            case "quantized::linear" or "quantized::linear_relu":
            {
                var prep = (PackedLinearWeight)_prepared[n.Index]!;
                var x = QIn(a[0], "input");
                byte[]? buf = x.DType == DType.QUInt8 && x.Shape.Length > 0 && x.Shape[^1] == prep.InFeatures
                    ? pool.Rent(Numel([.. x.Shape[..^1], prep.OutFeatures])) : null;
                var y = prep.Run(x, D(a[2], "scale"), (long)D(a[3], "zero_point"), n.Op.EndsWith("_relu", StringComparison.Ordinal), buf);
                return [new RtTensor(y, Layout.Contiguous(y.Shape))];
            }
            case "quantized::linear_dynamic" or "quantized::linear_relu_dynamic":
            {
                var prep = (PackedLinearWeight)_prepared[n.Index]!;
                var x = T(a[0], "input");
                if (x.F is null) throw new QuantToolsException(ErrorCode.UnsupportedDType, "dynamic linear needs a float input");
                bool reduce = a.Length > 2 && ScalarOps.ToBool(a[2], "reduce_range");
                var y = prep.RunDynamic(x.F, n.Op == "quantized::linear_relu_dynamic", reduce);
                return [new RtTensor(y, Layout.Contiguous(y.Shape))];
            }
            case "quantized::relu6":
            {
                var x = T(a[0], "input");
                var q = QIn(x, "input");
                if (q.DType != DType.QUInt8) return [QnnpackClamp(x, QActivation.Relu6(q, e), pool)];
                var buf = pool.Rent(q.Length);
                QActivation.Hardtanh(q, 0f, 6f, e, buf);
                return [QnnpackClamp(x, LikeInput(q, q.Shape, buf), pool)];
            }
            case "aten::relu" or "aten::relu_":
            {
                var x = T(a[0], "input");
                if (x.Q is { DType: DType.QUInt8 } xq)
                {
                    var buf = pool.Rent(xq.Length);
                    QActivation.Relu(xq, e, buf);
                    return [Same(x, LikeInput(xq, xq.Shape, buf))];
                }
                if (x.Q is not null) return [Same(x, QActivation.Relu(x.Q, e))];
                return [new RtTensor(FloatRelu(x.F!), Layout.LikeSuggested(x.Shape, x.Strides))];
            }
            case "aten::hardtanh" or "aten::hardtanh_" or "aten::clamp" or "aten::clamp_":
            {
                var x = T(a[0], "input");
                var q = QIn(x, "input");
                float lo = a.Length > 1 && a[1] is not null ? (float)D(a[1], "min") : float.NegativeInfinity;
                float hi = a.Length > 2 && a[2] is not null ? (float)D(a[2], "max") : float.PositiveInfinity;
                if (n.Op.StartsWith("aten::hardtanh", StringComparison.Ordinal))
                {
                    lo = a.Length > 1 ? (float)D(a[1], "min_val") : -1f;
                    hi = a.Length > 2 ? (float)D(a[2], "max_val") : 1f;
                }
                QTensor y;
                if (q.DType == DType.QUInt8)
                {
                    var buf = pool.Rent(q.Length);
                    QActivation.Hardtanh(q, lo, hi, e, buf);
                    y = LikeInput(q, q.Shape, buf);
                }
                else y = QActivation.Hardtanh(q, lo, hi, e);
                return [float.IsInfinity(lo) || float.IsInfinity(hi) ? Same(x, y) : QnnpackClamp(x, y, pool)];
            }
            case "quantized::hardswish":
            {
                var x = T(a[0], "input");
                return [Same(x, QActivation.Hardswish(QIn(x, "input"), D(a[1], "scale"), (long)D(a[2], "zero_point"), e))];
            }
            case "aten::hardswish":
            {
                var x = T(a[0], "input");
                var q = QIn(x, "input");
                return [Same(x, QActivation.Hardswish(q, q.QParams.Scale, q.QParams.ZeroPoint, e))];
            }
            case "aten::sigmoid": { var x = T(a[0], "input"); return [Same(x, QActivation.Sigmoid(QIn(x, "input"), e))]; }
            case "aten::tanh": { var x = T(a[0], "input"); return [Same(x, QActivation.Tanh(QIn(x, "input"), e))]; }
            case "aten::hardsigmoid": { var x = T(a[0], "input"); return [Same(x, QActivation.Hardsigmoid(QIn(x, "input"), e))]; }
            case "aten::leaky_relu":
            {
                var x = T(a[0], "input");
                var q = QIn(x, "input");
                return [Same(x, QActivation.LeakyRelu(q, (float)D(Arg(a, 1, 0.01), "negative_slope"), q.QParams.Scale, q.QParams.ZeroPoint, e))];
            }
            case "quantized::leaky_relu":
            {
                // quantized::leaky_relu(Tensor qx, Scalar negative_slope, bool inplace, float output_scale, int output_zero_point)
                var x = T(a[0], "input");
                return [Same(x, QActivation.LeakyRelu(QIn(x, "input"), (float)D(a[1], "negative_slope"), D(a[3], "scale"), (long)D(a[4], "zero_point"), e))];
            }
            case "quantized::elu":
            {
                // quantized::elu(Tensor self, float output_scale, int output_zero_point, Scalar alpha=1, Scalar scale=1, Scalar input_scale=1)
                var x = T(a[0], "input");
                if (a.Length > 4 && (D(a[4], "scale") != 1 || D(Arg(a, 5, 1.0), "input_scale") != 1))
                    throw new QuantToolsException(ErrorCode.UnsupportedOperator, "quantized::elu with scale / input_scale other than 1");
                return [Same(x, QActivation.Elu(QIn(x, "input"), (float)D(Arg(a, 3, 1.0), "alpha"), D(a[1], "scale"), (long)D(a[2], "zero_point"), e))];
            }
            case "aten::elu":
            {
                var x = T(a[0], "input");
                var q = QIn(x, "input");
                if (D(Arg(a, 2, 1.0), "scale") != 1 || D(Arg(a, 3, 1.0), "input_scale") != 1)
                    throw new QuantToolsException(ErrorCode.UnsupportedOperator, "elu with scale / input_scale other than 1");
                return [Same(x, QActivation.Elu(q, (float)D(Arg(a, 1, 1.0), "alpha"), q.QParams.Scale, q.QParams.ZeroPoint, e))];
            }
            case "aten::adaptive_avg_pool2d": return [AdaptiveAvgPool(T(a[0], "input"), Ints(a[1], "output_size"))];
            case "aten::avg_pool2d": return [AvgPool(T(a[0], "input"), a, pool)];
            case "aten::max_pool2d":
            {
                var x = T(a[0], "input");
                var q = QIn(x, "input");
                var k = Pair(Ints(a[1], "kernel_size"));
                var s = a.Length > 2 && Ints(a[2], "stride") is { Length: > 0 } st ? Pair(st) : k;
                var p = a.Length > 3 ? Pair(Ints(a[3], "padding")) : (0, 0);
                var d = a.Length > 4 ? Pair(Ints(a[4], "dilation")) : (1, 1);
                bool ceil = a.Length > 5 && ScalarOps.ToBool(a[5], "ceil_mode");
                if (d != (1, 1)) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "max_pool2d with dilation is not supported");
                QTensor y;
                if (q.DType == DType.QUInt8)
                {
                    var shape = QPool.MaxPool2dShape(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil);
                    var buf = pool.Rent(Numel(shape));
                    QPool.MaxPool2d(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, e, buf);
                    y = LikeInput(q, shape, buf);
                }
                else y = QPool.MaxPool2d(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, e);
                bool cl = Layout.IsChannelsLastContiguous(x.Shape, x.Strides) && !Layout.IsContiguous(x.Shape, x.Strides);
                return [new RtTensor(y, cl ? Layout.ChannelsLast(y.Shape) : Layout.Contiguous(y.Shape))];
            }
            case "aten::mean": return [Mean(T(a[0], "input"), a)];
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
                return [Restride(x, fmt == 2 ? Layout.ChannelsLast(x.Shape) : Layout.Contiguous(x.Shape))];
            }
            case "aten::transpose": return [Transpose(T(a[0], "input"), (int)L(a[1], "dim0"), (int)L(a[2], "dim1"))];
            case "aten::chunk": return [Chunk(T(a[0], "input"), (int)L(a[1], "chunks"), (int)L(Arg(a, 2, 0L), "dim"))];
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
            case "prim::dtype":
            {
                var x = T(a[0], "input");
                return [ScalarOps.ScalarTypeCode(x.Q?.DType ?? x.F!.DType)];
            }
            case "aten::channel_shuffle":
            {
                var x = T(a[0], "input");
                return [Same(x, QResample.ChannelShuffle(QIn(x, "input"), (int)L(a[1], "groups")))];
            }
            case "quantized::cat" or "quantized::cat_relu":
            {
                var xs = TensorList(a[0]);
                int dim = (int)L(a[1], "dim");
                double scale = a.Length > 2 && a[2] is not null ? D(a[2], "scale") : xs[0].Q!.QParams.Scale;
                long zp = a.Length > 3 && a[3] is not null ? (long)D(a[3], "zero_point") : xs[0].Q!.QParams.ZeroPoint;
                return [Cat(xs, dim, scale, zp, n.Op == "quantized::cat_relu")];
            }
            case "aten::cat":
            {
                var xs = TensorList(a[0]);
                int dim = (int)L(Arg(a, 1, 0L), "dim");
                if (xs.Any(x => x.Q is null)) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "float cat is not supported");
                return [Cat(xs, dim, xs[0].Q!.QParams.Scale, xs[0].Q!.QParams.ZeroPoint, false)];
            }
            case "quantized::add" or "quantized::add_relu" or "quantized::mul" or "quantized::mul_relu":
            {
                var x = T(a[0], "a");
                var xb = T(a[1], "b");
                var qa = QIn(x, "a");
                var qb = QIn(xb, "b");
                bool relu = n.Op.EndsWith("_relu", StringComparison.Ordinal);
                bool add = n.Op.StartsWith("quantized::add", StringComparison.Ordinal);
                if (!qa.Shape.SequenceEqual(qb.Shape))
                {
                    // mul is the same integer formula on its vector and scalar paths, so broadcasting by expansion is exact
                    if (add) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "quantized add with broadcasting is not supported");
                    var shape = BroadcastShape(qa.Shape, qb.Shape);
                    qa = Expand(qa, shape);
                    qb = Expand(qb, shape);
                }
                // element-wise kernels split vector blocks / scalar tail in memory order: run channels_last operands as NHWC
                bool nhwc = qa.Shape.Length == 4 && Layout.SuggestsChannelsLast(x.Shape, x.Strides) &&
                            Layout.IsChannelsLastContiguous(x.Shape, x.Strides) && Layout.IsChannelsLastContiguous(xb.Shape, xb.Strides) &&
                            !Layout.IsContiguous(x.Shape, x.Strides);
                double os = D(a[2], "scale");
                long oz = (long)D(a[3], "zero_point");
                QTensor y;
                if (qa.DType == DType.QUInt8 && qb.DType == DType.QUInt8 && qa.Shape.SequenceEqual(qb.Shape))
                {
                    // pooled buffers; the NHWC operands and result are temporaries that go straight back to the pool
                    var ta = nhwc ? ToNhwc(qa, pool) : qa;
                    var tb = nhwc ? ToNhwc(qb, pool) : qb;
                    var buf = pool.Rent(ta.Length);
                    if (add) QElementwise.Add(ta, tb, os, oz, relu, e, buf);
                    else QElementwise.Mul(ta, tb, os, oz, relu, e, buf);
                    y = new QTensor(new Tensor(DType.UInt8, (int[])ta.Shape.Clone(), buf), QParams.PerTensor(os, oz, DType.QUInt8));
                    if (nhwc)
                    {
                        var yn = y;
                        y = FromNhwc(yn, pool);
                        pool.Return((byte[])ta.IntRepr.Data);
                        pool.Return((byte[])tb.IntRepr.Data);
                        pool.Return(buf);
                    }
                }
                else
                {
                    if (nhwc)
                    {
                        qa = ToNhwc(qa);
                        qb = ToNhwc(qb);
                    }
                    y = add ? QElementwise.Add(qa, qb, os, oz, relu, e) : QElementwise.Mul(qa, qb, os, oz, relu, e);
                    if (nhwc) y = FromNhwc(y);
                }
                return [new RtTensor(y, Layout.SuggestsChannelsLast(x.Shape, x.Strides) ? Layout.ChannelsLast(y.Shape) : Layout.Contiguous(y.Shape))];
            }
            case "quantized::add_scalar" or "quantized::add_scalar_relu" or "quantized::mul_scalar" or "quantized::mul_scalar_relu":
            {
                var x = T(a[0], "input");
                bool relu = n.Op.EndsWith("_relu", StringComparison.Ordinal);
                var y = n.Op.Contains("add", StringComparison.Ordinal)
                    ? QElementwise.AddScalar(QIn(x, "input"), D(a[1], "other"), relu, e)
                    : QElementwise.MulScalar(QIn(x, "input"), D(a[1], "other"), relu, e);
                return [Same(x, y)];
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
                if (c != (bool)a[1]!) throw new QuantToolsException(ErrorCode.ShapeMismatch, $"the model's check failed: {a[2]}");
                return [];
            }
            default:
                if (ScalarOps.Names.Contains(n.Op)) return [ScalarOps.Eval(n.Op, a)];
                throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"op {n.Op} is not supported by the executor");
        }
    }

    /// <summary>
    /// PyTorch's <c>qnnpack_clamp</c> (relu6, hardtanh, clamp with both bounds; qnnpack engine, quint8) clamps the
    /// input's memory in its suggested format but allocates the output as NCHW-contiguous, so a channels_last input
    /// comes back with its NHWC memory read as NCHW: the channels, rows and columns are scrambled. PyTorch 2.11 does
    /// this (the qnnpack relu6_eager golden model proves it), so the executor does it too.
    /// </summary>
    private RtTensor QnnpackClamp(RtTensor x, QTensor clamped, BufferPool pool)
    {
        if (Engine != QEngine.Qnnpack || clamped.DType != DType.QUInt8 || x.Shape.Length != 4 || !Layout.SuggestsChannelsLast(x.Shape, x.Strides))
            return Same(x, clamped);
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        var src = clamped.IntRepr.AsSpan<byte>();
        var dst = pool.Rent(src.Length);
        int i = 0;
        for (int b = 0; b < n; b++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++)
                    for (int ch = 0; ch < c; ch++)
                        dst[i++] = src[((b * c + ch) * h + y) * w + xx];
        pool.Return(clamped.IntRepr.Data as byte[]); // the clamped tensor is a temporary (returned only when pooled)
        var q = new QTensor(new Tensor(DType.UInt8, (int[])x.Shape.Clone(), dst), clamped.QParams);
        return new RtTensor(q, Layout.Contiguous(x.Shape));
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

    private static QTensor Expand(QTensor q, int[] shape)
    {
        if (q.Shape.SequenceEqual(shape)) return q;
        int rank = shape.Length;
        var src = q.IntRepr;
        var inShape = Enumerable.Repeat(1, rank - q.Shape.Length).Concat(q.Shape).ToArray();
        var inStrides = Layout.Contiguous(inShape);
        int total = 1;
        foreach (var d in shape) total *= d;
        var strides = new long[rank];
        for (int d = 0; d < rank; d++) strides[d] = inShape[d] == 1 ? 0 : inStrides[d];
        Array dst = src.Data switch
        {
            byte[] b => Gather(b, shape, strides),
            sbyte[] sb => Gather(sb, shape, strides),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"broadcast of {q.DType.TorchName()} is not supported"),
        };
        _ = total;
        return new QTensor(new Tensor(src.DType, (int[])shape.Clone(), dst), q.QParams);
    }

    /// <summary>[N, C, H, W] → [N, H, W, C] (the memory order of a channels_last tensor).</summary>
    private static QTensor ToNhwc(QTensor q) =>
        new(Permute(Permute(q.IntRepr, 1, 2), 2, 3), q.QParams);

    /// <summary><see cref="ToNhwc(QTensor)"/> of a quint8 tensor into a pooled buffer.</summary>
    private static QTensor ToNhwc(QTensor q, BufferPool pool)
    {
        int n = q.Shape[0], c = q.Shape[1], h = q.Shape[2], w = q.Shape[3];
        int[] shape = [n, h, w, c];
        var dst = Gather((byte[])q.IntRepr.Data, shape, [(long)c * h * w, w, 1, (long)h * w], pool.Rent(q.Length));
        return new QTensor(new Tensor(DType.UInt8, shape, dst), q.QParams);
    }

    /// <summary><see cref="FromNhwc(QTensor)"/> of a quint8 tensor into a pooled buffer.</summary>
    private static QTensor FromNhwc(QTensor q, BufferPool pool)
    {
        int n = q.Shape[0], h = q.Shape[1], w = q.Shape[2], c = q.Shape[3];
        int[] shape = [n, c, h, w];
        var dst = Gather((byte[])q.IntRepr.Data, shape, [(long)h * w * c, 1, (long)w * c, c], pool.Rent(q.Length));
        return new QTensor(new Tensor(DType.UInt8, shape, dst), q.QParams);
    }

    private static int Numel(int[] shape) => checked((int)Tensor.CheckedNumel(shape));

    /// <summary>A quint8 result over <paramref name="buf"/> with <paramref name="like"/>'s qparams.</summary>
    private static QTensor LikeInput(QTensor like, int[] shape, byte[] buf) =>
        new(new Tensor(DType.UInt8, (int[])shape.Clone(), buf), QParams.PerTensor(like.QParams.Scale, like.QParams.ZeroPoint, like.DType));

    /// <summary>[N, H, W, C] → [N, C, H, W].</summary>
    private static QTensor FromNhwc(QTensor q) =>
        new(Permute(Permute(q.IntRepr, 2, 3), 1, 2), q.QParams);

    private static long[] ChannelsLast1d(int[] shape)
    {
        // conv1d runs as conv2d on [N, C, 1, W] in channels_last, then squeezes dim 2
        if (shape.Length != 3) return Layout.Contiguous(shape);
        var s4 = Layout.ChannelsLast([shape[0], shape[1], 1, shape[2]]);
        return [s4[0], s4[1], s4[3]];
    }

    private static (int, int) Pair(int[] v) => v.Length switch
    {
        1 => (v[0], v[0]),
        2 => (v[0], v[1]),
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"expected 1 or 2 values, got {v.Length}"),
    };

    private static List<RtTensor> TensorList(object? v) => v switch
    {
        List<object?> l => l.Select(x => T(x, "list element")).ToList(),
        object?[] t => t.Select(x => T(x, "list element")).ToList(),
        _ => throw new QuantToolsException(ErrorCode.InvalidArgument, $"expected a list of tensors, got {ScalarOps.TypeOf(v)}"),
    };

    private static Tensor FloatRelu(Tensor x)
    {
        var f = x.ToFloat32();
        var src = f.AsSpan<float>();
        var y = new float[src.Length];
        for (int i = 0; i < y.Length; i++) y[i] = src[i] > 0f || float.IsNaN(src[i]) ? src[i] : 0f;
        return new Tensor(DType.Float32, (int[])x.Shape.Clone(), y);
    }

    private static RtTensor Restride(RtTensor x, long[] strides) => x.Q is not null ? new RtTensor(x.Q, strides) : new RtTensor(x.F!, strides);

    private static RtTensor Reshape(RtTensor x, int[] shape, bool mustView)
    {
        long numel = 1;
        foreach (var s in x.Shape) numel *= s;
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
        // logical order never changes under view / reshape
        if (x.Q is not null) return new RtTensor(new QTensor(x.Q.IntRepr.Reshape(shape), x.Q.QParams), strides);
        return new RtTensor(x.F!.Reshape(shape), strides);
    }

    private static Tensor Permute(Tensor t, int d0, int d1)
    {
        int rank = t.Shape.Length;
        var shape = (int[])t.Shape.Clone();
        (shape[d0], shape[d1]) = (shape[d1], shape[d0]);
        var srcStrides = Layout.Contiguous(t.Shape);
        var perm = Enumerable.Range(0, rank).ToArray();
        (perm[d0], perm[d1]) = (perm[d1], perm[d0]);
        var map = new long[rank];
        for (int d = 0; d < rank; d++) map[d] = srcStrides[perm[d]];
        Array dst = t.Data switch
        {
            byte[] b => Gather(b, shape, map),
            sbyte[] sb => Gather(sb, shape, map),
            float[] f => Gather(f, shape, map),
            int[] i32 => Gather(i32, shape, map),
            long[] i64 => Gather(i64, shape, map),
            double[] f64 => Gather(f64, shape, map),
            _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"transpose of {t.DType.TorchName()} is not supported"),
        };
        return new Tensor(t.DType, shape, dst);
    }

    /// <summary>dst[i] = src[Σ idx_d * strides_d] over the row-major indices of <paramref name="shape"/>.</summary>
    private static T[] Gather<T>(T[] src, int[] shape, long[] strides, T[]? into = null)
    {
        int rank = shape.Length;
        long total = 1;
        foreach (var s in shape) total *= s;
        var dst = into ?? new T[total];
        if (total == 0) return dst;
        int last = shape[rank - 1];
        long lastStride = strides[rank - 1];
        var idx = new int[rank];
        long i = 0;
        while (i < total)
        {
            long off = 0;
            for (int d = 0; d < rank - 1; d++) off += idx[d] * strides[d];
            for (int x = 0; x < last; x++) dst[i++] = src[off + x * lastStride];
            for (int d = rank - 2; d >= 0; d--)
            {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
        return dst;
    }

    private static RtTensor Transpose(RtTensor x, int d0, int d1)
    {
        int rank = x.Shape.Length;
        if (d0 < 0) d0 += rank;
        if (d1 < 0) d1 += rank;
        if (d0 < 0 || d1 < 0 || d0 >= rank || d1 >= rank) throw new QuantToolsException(ErrorCode.InvalidArgument, $"transpose dims out of range for rank {rank}");
        var strides = (long[])x.Strides.Clone();
        (strides[d0], strides[d1]) = (strides[d1], strides[d0]);
        if (d0 == d1) return x;
        if (x.Q is not null) return new RtTensor(new QTensor(Permute(x.Q.IntRepr, d0, d1), x.Q.QParams), strides);
        return new RtTensor(Permute(x.F!, d0, d1), strides);
    }

    private static Tensor Narrow(Tensor t, int dim, int start, int len)
    {
        var shape = (int[])t.Shape.Clone();
        shape[dim] = len;
        int outer = 1, inner = 1;
        for (int d = 0; d < dim; d++) outer *= t.Shape[d];
        for (int d = dim + 1; d < t.Shape.Length; d++) inner *= t.Shape[d];
        var dst = Array.CreateInstance(t.Data.GetType().GetElementType()!, outer * len * inner);
        for (int o = 0; o < outer; o++)
            Array.Copy(t.Data, (o * t.Shape[dim] + start) * inner, dst, o * len * inner, len * inner);
        return new Tensor(t.DType, shape, dst);
    }

    private static List<object?> Chunk(RtTensor x, int chunks, int dim)
    {
        int rank = x.Shape.Length;
        if (dim < 0) dim += rank;
        if (chunks <= 0 || dim < 0 || dim >= rank) throw new QuantToolsException(ErrorCode.InvalidArgument, "chunk: bad chunks or dim");
        int size = x.Shape[dim];
        int each = (size + chunks - 1) / chunks;
        var list = new List<object?>();
        for (int start = 0; start < size || (size == 0 && list.Count == 0); start += each)
        {
            int len = Math.Min(each, size - start);
            if (each == 0) break;
            if (x.Q is not null) list.Add(new RtTensor(new QTensor(Narrow(x.Q.IntRepr, dim, start, len), x.Q.QParams), (long[])x.Strides.Clone()));
            else list.Add(new RtTensor(Narrow(x.F!, dim, start, len), (long[])x.Strides.Clone()));
        }
        return list;
    }

    // ------------------------------------------------------------------ layout-dependent kernels

    private RtTensor AdaptiveAvgPool(RtTensor x, int[] size)
    {
        var q = QIn(x, "input");
        if (q.Shape.Length != 4) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "adaptive_avg_pool2d needs a 4-d input");
        var (oh, ow) = Pair(size);
        int h = q.Shape[2], w = q.Shape[3];
        if (Engine == QEngine.Qnnpack && q.DType == DType.QUInt8 && h % oh == 0 && w % ow == 0)
        {
            var yq = QPool.AdaptiveAvgPool2d(q, oh, ow, Engine);
            return new RtTensor(yq, Layout.ChannelsLast(yq.Shape));
        }
        if (Layout.IsChannelsLastContiguous(x.Shape, x.Strides))
            return new RtTensor(AdaptiveAvgNhwc(q, oh, ow), Layout.ChannelsLast([q.Shape[0], q.Shape[1], oh, ow]));
        var y = QPool.AdaptiveAvgPool2d(q, oh, ow, Engine == QEngine.Qnnpack ? QEngine.X86 : Engine);
        return new RtTensor(y, Layout.Contiguous(y.Shape));
    }

    /// <summary>
    /// ATen's channels_last adaptive average pool (<c>qadaptive_avg_pool2d_nhwc_kernel</c>): per window
    /// <c>acc = Σq - zp·size</c>, <c>m = f32(f32(f32(s_in)/f32(s_out))/size)</c>, vector channel blocks and scalar tail as
    /// in <see cref="PoolKernels.AvgPoolNhwcElement"/>. Input and output share qparams.
    /// </summary>
    private static QTensor AdaptiveAvgNhwc(QTensor x, int oh, int ow)
    {
        QOps.RequirePerTensor(x, "adaptive_avg_pool2d");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        var y = QOps.NewLike(x, [n, c, oh, ow], out var dst);
        var src = QOps.Bytes(x);
        bool signed = QOps.IsSigned(x.DType);
        var (qmin, qmax) = QOps.Range(x.DType);
        int zp = (int)x.QParams.ZeroPoint;
        float ratio = (float)x.QParams.Scale / (float)x.QParams.Scale;
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
            {
                int p = b * c + ch;
                for (int oy = 0; oy < oh; oy++)
                {
                    int hs = (int)MathF.Floor((float)(oy * h) / oh), he = (int)MathF.Ceiling((float)((oy + 1) * h) / oh);
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int ws = (int)MathF.Floor((float)(ox * w) / ow), we = (int)MathF.Ceiling((float)((ox + 1) * w) / ow);
                        int size = (he - hs) * (we - ws);
                        float m = ratio / size;
                        int acc = -zp * size;
                        for (int iy = hs; iy < he; iy++)
                            for (int ix = ws; ix < we; ix++)
                                acc += QOps.Get(src, (p * h + iy) * w + ix, signed);
                        dst[(p * oh + oy) * ow + ox] = (byte)PoolKernels.AvgPoolNhwcElement(acc, m, ch, c, zp, qmin, qmax);
                    }
                }
            }
        return y;
    }

    private RtTensor AvgPool(RtTensor x, object?[] a, BufferPool pool)
    {
        // avg_pool2d(input, kernel_size, stride=[], padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None)
        var q = QIn(x, "input");
        var k = Pair(Ints(a[1], "kernel_size"));
        var s = a.Length > 2 && Ints(a[2], "stride") is { Length: > 0 } st ? Pair(st) : k;
        var p = a.Length > 3 ? Pair(Ints(a[3], "padding")) : (0, 0);
        bool ceil = a.Length > 4 && ScalarOps.ToBool(a[4], "ceil_mode");
        bool cip = a.Length <= 5 || ScalarOps.ToBool(a[5], "count_include_pad");
        int? div = a.Length > 6 && a[6] is not null ? (int)L(a[6], "divisor_override") : null;
        bool cl = Layout.IsChannelsLastContiguous(x.Shape, x.Strides) && !Layout.IsContiguous(x.Shape, x.Strides);
        QTensor y;
        if (q.DType == DType.QUInt8)
        {
            var shape = QPool.AvgPool2dShape(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, div);
            var buf = pool.Rent(Numel(shape));
            QPool.AvgPool2d(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, cip, div, Engine, cl, buf);
            y = LikeInput(q, shape, buf);
        }
        else y = QPool.AvgPool2d(q, k.Item1, k.Item2, s.Item1, s.Item2, p.Item1, p.Item2, ceil, cip, div, Engine, cl);
        return new RtTensor(y, cl ? Layout.ChannelsLast(y.Shape) : Layout.Contiguous(y.Shape));
    }

    private RtTensor Mean(RtTensor x, object?[] a)
    {
        // mean(self, dim, keepdim=False, dtype=None)
        var q = QIn(x, "input");
        var dims = Ints(a[1], "dim").Select(d => d < 0 ? d + q.Shape.Length : d).ToArray();
        bool keep = a.Length > 2 && ScalarOps.ToBool(a[2], "keepdim");
        if (a.Length > 3 && a[3] is not null) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "mean with a dtype");
        bool hw = q.Shape.Length == 4 && dims.Length == 2 && dims[0] == 2 && dims[1] == 3;
        if (hw && Engine == QEngine.Qnnpack && q.DType == DType.QUInt8)
        {
            var y = QPool.MeanHW(q, keep, Engine);
            return new RtTensor(y, Layout.Contiguous(y.Shape));
        }
        if (hw && Layout.IsContiguous(x.Shape, x.Strides))
        {
            var y = QPool.MeanHW(q, keep, QEngine.X86);
            return new RtTensor(y, Layout.Contiguous(y.Shape));
        }
        if (!hw) throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"quantized mean over dims [{string.Join(", ", dims)}] of a {q.Shape.Length}-d tensor");
        // general path: dequantize, float mean (sum in memory order, then divide), quantize with the input's qparams
        int n = q.Shape[0], c = q.Shape[1], h = q.Shape[2], w = q.Shape[3];
        var f = Quantizer.Dequantize(q).AsSpan<float>();
        var r = new float[n * c];
        float count = h * w;
        for (int p = 0; p < n * c; p++)
        {
            float sum = 0f;
            for (int i = 0; i < h * w; i++) sum += f[p * h * w + i];
            r[p] = sum / count;
        }
        int[] shape = keep ? [n, c, 1, 1] : [n, c];
        var yq = Quantizer.Quantize(new Tensor(DType.Float32, shape, r), QParams.PerTensor(q.QParams.Scale, q.QParams.ZeroPoint, q.DType));
        return new RtTensor(yq, Layout.Contiguous(shape));
    }

    private RtTensor Cat(List<RtTensor> xs, int dim, double scale, long zp, bool relu)
    {
        if (xs.Count == 0) throw new QuantToolsException(ErrorCode.InvalidArgument, "cat of an empty list");
        var qs = xs.Select(x => QIn(x, "cat input")).ToList();
        int rank = qs[0].Shape.Length;
        if (dim < 0) dim += rank;
        bool nhwc = dim == 1 && xs.All(x => x.Shape.Length == 4 && Layout.IsChannelsLastContiguous(x.Shape, x.Strides));
        if (nhwc)
        {
            var y = CatNhwc(qs, scale, zp, relu);
            return new RtTensor(y, Layout.ChannelsLast(y.Shape));
        }
        if (relu) throw new QuantToolsException(ErrorCode.UnsupportedOperator, "cat_relu outside the channels_last fast path");
        var yq = QElementwise.Cat(qs, dim, scale, zp, Engine);
        // the general path dequantizes, torch.cat's the floats (channels_last only if every input suggests it) and quantizes
        bool cl = xs.All(x => Layout.SuggestsChannelsLast(x.Shape, x.Strides));
        return new RtTensor(yq, cl ? Layout.ChannelsLast(yq.Shape) : Layout.Contiguous(yq.Shape));
    }

    /// <summary>
    /// <c>qcat_nhwc_kernel</c>: per pixel and input, channels with the output's qparams are copied;
    /// otherwise channels below <c>C/16*16</c> (AVX-512; <c>C/8*8</c> on AVX2) are dequantized with the FMA form and quantized with the vector form
    /// (<c>inv = f32(1.0/scale)</c> in double), the rest with <c>dequantize_val</c> / <c>quantize_val</c>.
    /// </summary>
    private static QTensor CatNhwc(List<QTensor> xs, double scale, long zp, bool relu)
    {
        var first = xs[0];
        int n = first.Shape[0], h = first.Shape[2], w = first.Shape[3];
        int cTotal = 0;
        foreach (var x in xs)
        {
            QOps.RequirePerTensor(x, "cat");
            if (x.DType != first.DType) throw new QuantToolsException(ErrorCode.InvalidArgument, "cat inputs must share a dtype");
            if (x.Shape[0] != n || x.Shape[2] != h || x.Shape[3] != w) throw new QuantToolsException(ErrorCode.ShapeMismatch, "cat inputs differ outside dim 1");
            cTotal += x.Shape[1];
        }
        var y = QOps.NewPerTensor(first.DType, [n, cTotal, h, w], scale, zp, out var dst);
        bool signed = QOps.IsSigned(first.DType);
        var (qmin, qmax) = QOps.Range(first.DType);
        int zpo = (int)zp;
        float invVec = (float)(1.0 / scale);
        float invScalar = 1.0f / (float)scale;
        int hw = h * w, cOff = 0;
        foreach (var x in xs)
        {
            var src = QOps.Bytes(x);
            int cc = x.Shape[1];
            bool same = x.QParams.Scale == scale && x.QParams.ZeroPoint == zp;
            float sf = (float)x.QParams.Scale;
            int zin = (int)x.QParams.ZeroPoint;
            float premul = QOps.Premul(sf, zin);
            int lanes = QOps.AtenVectorBytes / 4;   // Vectorized<float>::size(): 16 on AVX-512, 8 on AVX2
            int vecC = cc / lanes * lanes;
            for (int b = 0; b < n; b++)
                for (int ch = 0; ch < cc; ch++)
                {
                    int si = (b * cc + ch) * hw, di = (b * cTotal + cOff + ch) * hw;
                    for (int i = 0; i < hw; i++)
                    {
                        int v = QOps.Get(src, si + i, signed);
                        int o;
                        if (same) o = v;
                        else if (ch < vecC)
                        {
                            float fv = QOps.DqFma(v, sf, premul);
                            if (relu) fv = MathF.Max(fv, 0f);
                            o = QOps.QuantizeVector(fv, invVec, zpo, qmin, qmax);
                        }
                        else
                        {
                            float fv = QOps.DqScalar(v, sf, zin);
                            if (relu) fv = MathF.Max(fv, 0f);
                            o = QOps.QuantizeScalar(fv, invScalar, zpo, qmin, qmax);
                        }
                        if (relu && same) o = Math.Max(o, zpo);
                        dst[di + i] = (byte)o;
                    }
                }
            cOff += cc;
        }
        return y;
    }
}

/// <summary>
/// byte[] activation buffers by exact length, for one executor. Only arrays this pool handed out during the current run
/// ("owned") are ever taken back, so graph inputs, constants, weights and results from earlier runs are never reused.
/// </summary>
internal sealed class BufferPool
{
    private readonly Dictionary<int, Stack<byte[]>> _free = new();
    private readonly HashSet<byte[]> _owned = new(ReferenceEqualityComparer.Instance);

    /// <summary>A buffer of exactly <paramref name="length"/> bytes (contents undefined).</summary>
    public byte[] Rent(int length)
    {
        var b = _free.TryGetValue(length, out var st) && st.Count > 0 ? st.Pop() : new byte[length];
        _owned.Add(b);
        return b;
    }

    /// <summary>Takes back a buffer handed out this run and not returned since; anything else is ignored.</summary>
    public void Return(byte[]? b)
    {
        if (b is null || !_owned.Remove(b)) return;
        if (!_free.TryGetValue(b.Length, out var st)) _free[b.Length] = st = new Stack<byte[]>();
        st.Push(b);
    }

    /// <summary>The owned arrays a run value holds (through tensors, lists and tuples), each once.</summary>
    public byte[][] OwnedIn(object? v)
    {
        if (_owned.Count == 0) return [];
        List<byte[]>? found = null;
        void Walk(object? o)
        {
            switch (o)
            {
                case RtTensor { Q: { } q } when q.IntRepr.Data is byte[] b && _owned.Contains(b):
                    found ??= new List<byte[]>();
                    if (!found.Exists(x => ReferenceEquals(x, b))) found.Add(b);
                    break;
                case List<object?> l: foreach (var e in l) Walk(e); break;
                case object?[] t: foreach (var e in t) Walk(e); break;
            }
        }
        Walk(v);
        return found is null ? [] : found.ToArray();
    }

    /// <summary>Ends a run: buffers still out belong to its results (outputs, captured layers) and are never taken back.</summary>
    public void EndRun() => _owned.Clear();
}
