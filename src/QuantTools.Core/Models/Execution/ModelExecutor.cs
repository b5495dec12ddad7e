using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Execution.Ops;
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
/// Runs a <see cref="ModelGraph"/> with QuantTools' integer kernels under one engine. The executor schedules: each
/// node runs through its op family's handler (<see cref="OpRegistry"/>), which prepacked its weights once when the
/// executor was made; values are dropped after their last use so a run holds only the live activations, and quint8
/// activation buffers are reused through a <see cref="BufferPool"/>. Errors name the layer (module path), the op, the
/// source line and the input shapes.
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

    private readonly OpHandler?[] _handlers;
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
        _handlers = new OpHandler?[graph.Nodes.Count];
        _prepared = new object?[graph.Nodes.Count];
        foreach (var n in graph.Nodes)
        {
            _handlers[n.Index] = OpRegistry.Find(n.Op);
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
        var h = _handlers[n.Index];
        if (h is null) return null; // unknown ops fail when they run, naming the op, layer and line
        try
        {
            return h.Prepack(n, Engine, Cpu);
        }
        catch (QuantToolsException e)
        {
            throw NodeError(n, e.Message, null, e);
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

    /// <summary>
    /// Runs the model on one batch (a float tensor for a model whose forward takes one tensor). <paramref name="options"/>
    /// gives this run its thread budget (null: the process default); runs side by side keep their own.
    /// </summary>
    public ModelResult Run(Tensor input, bool captureLayers = false, CancellationToken cancel = default, ExecutionOptions? options = null) =>
        Run([input], captureLayers, cancel, options);

    public ModelResult Run(IReadOnlyList<Tensor> inputs, bool captureLayers = false, CancellationToken cancel = default, ExecutionOptions? options = null)
    {
        if (inputs.Count != Graph.Inputs.Count)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"the model takes {Graph.Inputs.Count} input(s), got {inputs.Count}", Graph.Source);
        using var budget = Parallelism.Limit(options?.MaxThreads);
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
                var h = _handlers[n.Index]
                    ?? throw new QuantToolsException(ErrorCode.UnsupportedOperator, $"op {n.Op} is not supported by the executor");
                outs = h.Run(new OpContext(n.Op, Engine, _prepared[n.Index], n.Outputs.Count, pool), args);
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
        CancellationToken cancel = default, ExecutionOptions? options = null)
    {
        int? total = batches is ICollection<Tensor> c ? c.Count : null;
        int done = 0;
        foreach (var b in batches)
        {
            cancel.ThrowIfCancellationRequested();
            var r = Run(b, captureLayers, cancel, options);
            done++;
            progress?.Report(new ModelProgress(done, total));
            yield return r;
        }
    }
}
