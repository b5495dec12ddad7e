using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Kernels.Requantization;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models;

/// <summary>
/// One row of Get-QParams -Path: a layer's activation and weight qparams and, for conv and linear, the effective
/// requantization multiplier per output channel <c>M = s_in · s_w / s_out</c> with its fixed-point form.
/// Property names are relied on by scripts: keep them. Per-channel values are <see cref="PerChannel{T}"/> lists
/// (index and count like arrays; text form <c>a;b;c</c>, so they survive Export-Csv).
/// </summary>
public sealed class LayerQParams
{
    public required string Name { get; init; }
    public required string Kind { get; init; }
    /// <summary>Qparams of the value this layer reads (its first tensor input), as the executor feeds it.</summary>
    public double? InputScale { get; init; }
    public long? InputZeroPoint { get; init; }
    /// <summary>The layer (or quantize step) whose output feeds this one.</summary>
    public string? InputLayer { get; init; }
    /// <summary>
    /// Where <see cref="InputLayer"/> and the input qparams come from: <c>graph</c> (the model's forward code or
    /// architecture file: exact), <c>name</c> (an FX quantize step named after its consumer), <c>file order</c> (the
    /// previous layer of a state_dict, right for chains only), <c>unknown</c> (the file cannot tell: see the warning);
    /// null for layers that read the float model input.
    /// </summary>
    public string? InputSource { get; init; }
    public double? OutputScale { get; init; }
    public long? OutputZeroPoint { get; init; }
    public string? WeightDtype { get; init; }
    public string? WeightQScheme { get; init; }
    public int? WeightAxis { get; init; }
    public PerChannel<double>? WeightScales { get; init; }
    public PerChannel<long>? WeightZeroPoints { get; init; }
    public double? WeightScaleMin { get; init; }
    public double? WeightScaleMax { get; init; }
    /// <summary>max / min of the per-channel weight scales (1 for per-tensor).</summary>
    public double? WeightScaleSpread { get; init; }
    public bool HasBias { get; init; }
    public PerChannel<double>? Multipliers { get; init; }
    public PerChannel<int>? FixedPointMultipliers { get; init; }
    public PerChannel<int>? Shifts { get; init; }
    /// <summary>The integer weights (int_repr, PyTorch's layout: [out, in/groups, kh, kw] or [out, in]); not in CSV / JSON reports.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Tensor? IntWeight { get; init; }
    /// <summary>The float bias per output channel as stored.</summary>
    public PerChannel<float>? Bias { get; init; }
    /// <summary>
    /// The int32 bias per output channel as QNNPACK computes it and integer-only ports use it:
    /// <c>rne(b · f32(1 / f32(s_in · s_w)))</c>, saturated to int32 (FBGEMM, x86 and oneDNN keep the bias in float and add
    /// <c>b / f32(s_in · s_w)</c> to the accumulator instead).
    /// </summary>
    public PerChannel<int>? Int32Bias { get; init; }
    /// <summary>A QAT or observer layer's observed minimum (per channel for weight fake-quants), as numbers.</summary>
    public PerChannel<double>? ObserverMin { get; init; }
    public PerChannel<double>? ObserverMax { get; init; }

    /// <summary>Why some rows' input qparams are unknown, when they are (null otherwise).</summary>
    public static string? UnknownInputsReason(IReadOnlyList<LayerQParams> rows, QuantModel model)
    {
        var unknown = rows.Where(r => r.InputSource == "unknown").Select(r => r.Name).ToList();
        if (unknown.Count == 0) return null;
        var fx = model.Layers.Where(IsUnattributedFxQuantizer).Select(l => l.Name).ToList();
        string why = fx.Count > 0
            ? $"an FX state_dict keeps quantize steps ({string.Join(", ", fx)}) without naming the layer they feed"
            : $"a state_dict with joins ({string.Join(", ", model.Layers.Where(l => l.Kind == "QFunctional").Select(l => l.Name).Take(5))}{(model.Layers.Count(l => l.Kind == "QFunctional") > 5 ? ", ..." : "")}) has branches that its module order does not show";
        string layers = unknown.Count <= 8 ? string.Join(", ", unknown) : $"{string.Join(", ", unknown.Take(8))} and {unknown.Count - 8} more";
        return $"{Path.GetFileName(model.Source)}: {why}, so the input qparams of {layers} are unknown (InputSource 'unknown'); " +
               "pass -Architecture (an architecture file, or a built-in one), or use the TorchScript form";
    }

    /// <summary>Builds the rows for a model: from its graph when it has one (exact producers), else in file order.</summary>
    public static IReadOnlyList<LayerQParams> For(QuantModel model) => For(model, model.Graph);

    /// <summary>Builds the rows for a model with the given graph (TorchScript forward, or a state_dict's architecture); null: file order.</summary>
    public static IReadOnlyList<LayerQParams> For(QuantModel model, ModelGraph? graph) =>
        graph is null ? ByOrder(model) : ByGraph(model, graph);

    // ------------------------------------------------------------------ from the graph

    private static IReadOnlyList<LayerQParams> ByGraph(QuantModel model, ModelGraph graph)
    {
        var gq = new GraphQParams(graph);
        var layers = new Dictionary<string, ModelLayer>(StringComparer.Ordinal);
        foreach (var l in model.Layers) layers.TryAdd(l.Name, l);
        var fxQuantizers = model.Layers.Where(l => l.Kind == "Quantize" && l.Attributes.ContainsKey("fx")).ToList();
        var usedFx = new HashSet<ModelLayer>();
        var firstOutput = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (layer, value) in graph.LayerOutputs) firstOutput.TryAdd(layer, value);

        // every row-producing node: the first node of each layer (by module path), and root-level quantize / quantized ops
        var rowOf = new Dictionary<GraphNode, (string Name, ModelLayer Layer)>();
        var order = new List<GraphNode>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var functionalCount = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var n in graph.Nodes)
        {
            if (n.ModulePath.Length > 0)
            {
                if (seen.Contains(n.ModulePath)) continue;
                ModelLayer? layer = layers.GetValueOrDefault(n.ModulePath) ?? GraphLayer(graph, n.ModulePath);
                if (layer is null) continue;
                seen.Add(n.ModulePath);
                rowOf[n] = (n.ModulePath, layer);
                order.Add(n);
            }
            else if (n.Op == "aten::quantize_per_tensor" || n.Op.StartsWith("quantized::", StringComparison.Ordinal))
            {
                var fx = n.Op == "aten::quantize_per_tensor"
                    ? fxQuantizers.FirstOrDefault(l => !usedFx.Contains(l) && l.OutputScale == n.OutputScale && l.OutputZeroPoint == n.OutputZeroPoint)
                    : null;
                if (fx is not null) usedFx.Add(fx);
                var layer = fx ?? FunctionalLayer(n, functionalCount);
                if (!seen.Add(layer.Name)) continue;
                rowOf[n] = (layer.Name, layer);
                order.Add(n);
            }
        }
        var rowModules = new HashSet<string>(rowOf.Keys.Where(r => r.ModulePath.Length > 0).Select(r => r.ModulePath), StringComparer.Ordinal);
        var producerRow = new Dictionary<GraphNode, string>();
        foreach (var n in graph.Nodes)
            if (rowModules.Contains(n.ModulePath)) producerRow[n] = n.ModulePath;
        foreach (var (n, r) in rowOf) producerRow[n] = r.Name;

        string? LayerProducing(string? value)
        {
            // walk back through ops that belong to no row (root views, container code) to the row that made the value
            for (int guard = 0; value is not null && guard < graph.Nodes.Count; guard++)
            {
                var p = gq.Producer(value);
                if (p is null) return null;
                if (producerRow.TryGetValue(p, out var name)) return name;
                value = gq.FirstTensorInput(p);
            }
            return null;
        }

        var rows = new List<LayerQParams>();
        var emitted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in order)
        {
            var (name, layer) = rowOf[n];
            bool quantize = n.Op == "aten::quantize_per_tensor" && n.ModulePath.Length == 0 || layer.Kind is "Quantize" or "FakeQuantize" or "Observer";
            var firstIn = FirstExternalInput(graph, gq, n);
            ValueQParams? inQ = firstIn is null || quantize ? null : gq.Of(firstIn);
            string? outValue = n.ModulePath.Length == 0 ? n.Outputs.FirstOrDefault() : firstOutput.GetValueOrDefault(name);
            ValueQParams? outQ = outValue is null ? null : gq.Of(outValue);
            (double, long)? output = outQ is { } o ? (o.Scale, o.ZeroPoint)
                : layer.OutputScale is { } s && layer.OutputZeroPoint is { } z ? (s, z) : null;
            rows.Add(Row(layer, name, inQ is { } i ? (i.Scale, i.ZeroPoint) : null, quantize ? null : LayerProducing(firstIn),
                firstIn is null || quantize || gq.IsFloat(firstIn) && inQ is null ? null : "graph", output));
            emitted.Add(name);
        }
        // modules the forward never calls keep their own qparams only; FX qparams buffers that no quantize step uses
        // belong to a quantized op called in the graph code, which has its own row
        foreach (var l in model.Layers)
            if (!(l.Attributes.ContainsKey("fx") && !usedFx.Contains(l)) && emitted.Add(l.Name))
                rows.Add(Row(l, l.Name, null, null, null, l.OutputScale is { } s && l.OutputZeroPoint is { } z ? (s, z) : null));
        return rows;
    }

    private static readonly HashSet<string> NotLayers = new(StringComparer.Ordinal)
        { "Sequential", "ModuleList", "ModuleDict", "LinearPackedParams", "Identity", "Dropout" };

    /// <summary>
    /// A leaf module the graph calls but the checkpoint holds nothing for (an architecture file's relu6, pool, ...), as a
    /// layer: its kind from the graph, clamp bounds from its hardtanh / clamp call. Null for containers and identities.
    /// </summary>
    public static ModelLayer? GraphLayer(ModelGraph graph, string path)
    {
        if (!graph.LeafLayers.Contains(path) || !graph.LayerKinds.TryGetValue(path, out var kind) || NotLayers.Contains(kind)) return null;
        var attrs = new Dictionary<string, object?>(StringComparer.Ordinal);
        var clamp = graph.Nodes.FirstOrDefault(n => n.ModulePath == path && n.Op is "aten::hardtanh" or "aten::hardtanh_" or "aten::clamp" or "aten::clamp_");
        if (clamp is not null)
        {
            if (clamp.Inputs.Count > 1 && !clamp.Inputs[1].IsValue && clamp.Inputs[1].Constant is double lo) attrs["min_val"] = lo;
            if (clamp.Inputs.Count > 2 && !clamp.Inputs[2].IsValue && clamp.Inputs[2].Constant is double hi) attrs["max_val"] = hi;
        }
        return new ModelLayer { Name = path, Kind = kind, Attributes = attrs };
    }

    /// <summary>The model's layers, then the leaf modules only its graph knows (see <see cref="GraphLayer"/>).</summary>
    public static IReadOnlyList<ModelLayer> LayersOf(QuantModel model)
    {
        if (model.Graph is not { } g) return model.Layers;
        var list = model.Layers.ToList();
        var names = new HashSet<string>(list.Select(l => l.Name), StringComparer.Ordinal);
        foreach (var (path, _) in g.LayerOutputs)
            if (names.Add(path) && GraphLayer(g, path) is { } l) list.Add(l);
        return list;
    }

    /// <summary>The first tensor a layer's code reads that was made outside the layer (its input).</summary>
    private static string? FirstExternalInput(ModelGraph graph, GraphQParams gq, GraphNode first)
    {
        if (first.ModulePath.Length == 0) return gq.FirstTensorInput(first);
        foreach (var n in graph.Nodes)
        {
            if (n.Index < first.Index || n.ModulePath != first.ModulePath) continue;
            var v = gq.FirstTensorInput(n);
            if (v is null) continue;
            var p = gq.Producer(v);
            if (p is null || p.ModulePath != first.ModulePath) return v;
        }
        return gq.FirstTensorInput(first);
    }

    /// <summary>A quantized op called in graph code (FX: torch.ops.quantized.add(...)), as a layer named kind_N (add_0, add_1, ...).</summary>
    private static ModelLayer FunctionalLayer(GraphNode n, Dictionary<string, int> count)
    {
        QTensor? w = null;
        Tensor? b = null;
        foreach (var op in n.Inputs)
            switch (op.Constant)
            {
                case ConvPackedParams cp: w = cp.Weight; b = cp.Bias; break;
                case LinearPackedParams { Weight: QTensor lw } lp: w = lw; b = lp.Bias; break;
            }
        string kind = n.Op[(n.Op.IndexOf("::", StringComparison.Ordinal) + 2)..];
        string stem = n.Op == "aten::quantize_per_tensor" ? "quantize" : kind;
        int k = count.GetValueOrDefault(stem);
        count[stem] = k + 1;
        return new ModelLayer
        {
            Name = $"{stem}_{k}",
            Kind = n.Op == "aten::quantize_per_tensor" ? "Quantize" : kind,
            OutputScale = n.OutputScale, OutputZeroPoint = n.OutputZeroPoint,
            Weight = w, Bias = b,
            Attributes = new Dictionary<string, object?> { ["op"] = n.Op },
        };
    }

    // ------------------------------------------------------------------ in file order

    private static bool IsUnattributedFxQuantizer(ModelLayer l) =>
        l.Kind == "Quantize" && l.Attributes.TryGetValue("fx", out var k) && k is string key && FxConsumer(key) is null;

    /// <summary>The module an FX quantize buffer names as its consumer: <c>conv1_input_scale_0</c> feeds conv1; <c>_scale_0</c> names none.</summary>
    private static string? FxConsumer(string scaleKey)
    {
        var m = System.Text.RegularExpressions.Regex.Match(scaleKey, @"^(?<stem>.+)_input_scale_\d+$");
        return m.Success ? m.Groups["stem"].Value : null;
    }

    private static IReadOnlyList<LayerQParams> ByOrder(QuantModel model)
    {
        var rows = new List<LayerQParams>();
        var outputs = new Dictionary<string, (double Scale, long Zp)?>(StringComparer.Ordinal);
        // FX: input quantizers named after their consumer (module path with '.' as '_')
        var fxFeeds = new Dictionary<string, ModelLayer>(StringComparer.Ordinal);
        bool fxUnknown = false;
        foreach (var l in model.Layers)
        {
            if (l.Kind != "Quantize" || !l.Attributes.TryGetValue("fx", out var k) || k is not string key) continue;
            if (FxConsumer(key) is { } consumer) fxFeeds.TryAdd(consumer, l);
            else fxUnknown = true;
        }
        // a join (add, cat, mul) means branches: the previous module in the file is then not what feeds the next one
        bool joins = model.Layers.Any(l => l.Kind == "QFunctional");
        (double Scale, long Zp)? current = null;
        string? previous = null;
        foreach (var layer in model.Layers)
        {
            bool quantize = layer.Kind is "Quantize" or "FakeQuantize" or "Observer";
            string? inputName;
            (double Scale, long Zp)? input;
            string? source;
            if (layer.Inputs is { Count: > 0 } ins)
            {
                inputName = ins[0];
                input = outputs.TryGetValue(inputName, out var o) ? o : current;
                source = "graph";
            }
            else if (fxFeeds.TryGetValue(layer.Name.Replace('.', '_'), out var feeder))
            {
                inputName = feeder.Name;
                input = (feeder.OutputScale!.Value, feeder.OutputZeroPoint!.Value);
                source = "name";
            }
            else if ((fxUnknown || joins) && !quantize)
            {
                inputName = null;
                input = null;
                source = "unknown";
            }
            else
            {
                inputName = previous;
                input = current;
                source = "file order";
            }
            if (layer.Kind == "DynamicLinear") input = null;
            (double Scale, long Zp)? output = layer.OutputScale is { } s && layer.OutputZeroPoint is { } z ? (s, z)
                : PassesQParamsThrough(layer.Kind) ? input : null;
            rows.Add(Row(layer, layer.Name, quantize ? null : input, layer.Kind is "Quantize" ? null : inputName,
                quantize || layer.Kind == "DynamicLinear" || inputName is null && source != "unknown" ? null : source, output));
            outputs[layer.Name] = output;
            if (layer.Attributes.ContainsKey("fx")) continue; // FX quantize buffers are listed first, not in forward order
            if (output is not null || layer.Kind == "DeQuantize") current = layer.Kind == "DeQuantize" ? null : output;
            previous = layer.Name;
        }
        return rows;
    }

    // ------------------------------------------------------------------ one row

    private static LayerQParams Row(ModelLayer layer, string name, (double Scale, long Zp)? input, string? inputLayer, string? inputSource,
        (double Scale, long Zp)? output)
    {
        var wq = layer.Weight?.QParams ?? layer.WeightQParams;
        double[]? mult = null;
        int[]? fixedM = null, shifts = null, qbias = null;
        bool dynamic = layer.Kind is "DynamicLinear" or "linear_dynamic" or "linear_relu_dynamic";
        if (dynamic) input = null;
        if (layer.Weight is not null && wq is not null && input is { } inp && output is { } outp)
        {
            int n = wq.Scales.Length;
            mult = new double[n];
            fixedM = new int[n];
            shifts = new int[n];
            for (int c = 0; c < n; c++)
            {
                mult[c] = inp.Scale * wq.Scales[c] / outp.Scale;
                if (fixedM is not null && shifts is not null && double.IsFinite(mult[c]) && mult[c] >= 0)
                    (fixedM[c], shifts[c]) = FixedPointMultiplier.From(mult[c]);
                else fixedM = shifts = null; // a degenerate scale (reported by the linter) has no fixed-point form
            }
            qbias = QnnpackBias(layer, wq, inp.Scale, outp);
        }
        double[]? ws = wq?.Scales;
        return new LayerQParams
        {
            Name = name,
            Kind = layer.Kind,
            InputScale = input?.Scale,
            InputZeroPoint = input?.Zp,
            InputLayer = inputLayer,
            InputSource = inputSource,
            OutputScale = output?.Scale,
            OutputZeroPoint = output?.Zp,
            WeightDtype = wq?.DType.TorchName(),
            WeightQScheme = wq?.QScheme.TorchName(),
            WeightAxis = wq is { IsPerChannel: true } ? wq.Axis : null,
            WeightScales = PerChannel.Of(ws),
            WeightZeroPoints = PerChannel.Of(wq?.ZeroPoints),
            WeightScaleMin = ws?.Min(),
            WeightScaleMax = ws?.Max(),
            WeightScaleSpread = ws is { Length: > 0 } && ws.Min() > 0 ? ws.Max() / ws.Min() : null,
            HasBias = layer.Bias is not null,
            Multipliers = PerChannel.Of(mult),
            FixedPointMultipliers = PerChannel.Of(fixedM),
            Shifts = PerChannel.Of(shifts),
            IntWeight = layer.Weight?.IntRepr,
            Bias = layer.Bias is { } b ? new PerChannel<float>(b.ToFloat32().AsSpan<float>().ToArray()) : null,
            Int32Bias = PerChannel.Of(qbias),
            ObserverMin = Numbers(layer.Attributes.GetValueOrDefault("min_val")),
            ObserverMax = Numbers(layer.Attributes.GetValueOrDefault("max_val")),
        };
    }

    /// <summary>QNNPACK's int32 bias (the engine's own output stage computes it), null where it has none.</summary>
    private static int[]? QnnpackBias(ModelLayer layer, QParams wq, double inScale, (double Scale, long Zp) output)
    {
        if (layer.Bias is not { } bias || (wq.Scales.Length != 1 && bias.Length != wq.Scales.Length)) return null;
        // one weight scale per output channel (a per-tensor scale serves them all)
        var scales = Enumerable.Range(0, bias.Length).Select(c => (float)wq.Scales[wq.Scales.Length == 1 ? 0 : c]).ToArray();
        try
        {
            var stage = new OutputStage(QBackend.Qnnpack, inScale, scales,
                bias.ToFloat32().AsSpan<float>().ToArray(), output.Scale, Math.Clamp(output.Zp, 0, 255), relu: false, wq.IsPerChannel);
            return stage.QBias;
        }
        catch (QuantToolsException)
        {
            return null; // a degenerate output scale (the linter reports it)
        }
    }

    private static PerChannel<double>? Numbers(object? v) => v switch
    {
        Tensor t => new PerChannel<double>(Enumerable.Range(0, t.Length).Select(t.GetDouble).ToArray()),
        double d => new PerChannel<double>([d]),
        float f => new PerChannel<double>([f]),
        _ => null,
    };

    /// <summary>Modules whose quantized output keeps the input's qparams.</summary>
    public static bool PassesQParamsThrough(string kind) => kind is "ReLU" or "ReLU6" or "Hardtanh" or "Clamp" or "MaxPool2d"
        or "MaxPool1d" or "AdaptiveAvgPool2d" or "AvgPool2d" or "Flatten" or "Identity" or "Dropout" or "ChannelShuffle"
        or "Upsample" or "UpsamplingNearest2d" or "UpsamplingBilinear2d";
}
