using System.Text.RegularExpressions;
using QuantTools.Core.Formats;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models;

/// <summary>
/// Turns a checkpoint into a <see cref="QuantModel"/>: TorchScript archives through their module tree (class names
/// give the kind, e.g. ConvReLU2d), state_dict / legacy / QAT / FX files through their keys, in file order (a
/// state_dict's order is the module order). A state_dict cannot tell a fused ConvReLU2d from a Conv2d, and names no
/// parameter-free modules (ReLU6, pools): those need the TorchScript form or an architecture file.
/// </summary>
public static partial class ModelLoader
{
    /// <summary>
    /// Loads a checkpoint. A TorchScript file's forward becomes <see cref="QuantModel.Graph"/> (when QuantTools can read
    /// it; else <see cref="QuantModel.GraphError"/> says why); for a state_dict, <paramref name="architecture"/> (an
    /// architecture file, see <see cref="ArchitectureFrontEnd"/>) gives the graph.
    /// </summary>
    public static QuantModel Load(string path, string? architecture = null)
    {
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            var st = SafeTensorsFile.Open(path);
            var sd = new TorchStateDict();
            foreach (var n in st.Names) sd.Add(n, st.Get(n));
            if (architecture is not null)
                throw new QuantToolsException(ErrorCode.InvalidArgument, "-Architecture goes with a torch.save state_dict (.pt); a .safetensors file holds no module versions or qparams layout to build from", path);
            return FromStateDict(sd, path, "safetensors");
        }
        var ck = TorchCheckpoint.Load(path);
        if (ck.Kind == CheckpointKind.TorchScript && ck.Modules is { } root)
        {
            if (architecture is not null)
                throw new QuantToolsException(ErrorCode.InvalidArgument,
                    "this is a TorchScript archive, which carries its own graph: load it without an architecture", path);
            var m = FromTorchScript(root, path);
            Graph.ModelGraph? graph = null;
            string? error = null;
            try { graph = Graph.TorchScriptFrontEnd.Build(ck); }
            catch (QuantToolsException e) { error = e.Message; }
            return new QuantModel { Source = m.Source, Form = m.Form, Layers = m.Layers, Graph = graph, GraphError = error };
        }
        string form = ck.Kind == CheckpointKind.Legacy ? "legacy" : "state_dict";
        var versions = ModuleVersions(ck.Metadata);
        var model = FromStateDict(ck.StateDict, path, form, versions);
        var empty = TensorFreeLeaves(versions.Keys, ck.StateDict.Select(kv => kv.Key));
        var g = architecture is null ? null : Graph.ArchitectureFrontEnd.Build(path, architecture);
        return new QuantModel { Source = model.Source, Form = model.Form, Layers = model.Layers, Graph = g, ModulesWithoutTensors = empty };
    }

    /// <summary>
    /// The graph to run a model file by: a TorchScript file's forward, or a state_dict (zip or legacy) with its
    /// architecture. A state_dict without one is an error that says how to give it.
    /// </summary>
    public static Graph.ModelGraph LoadGraph(string path, string? architecture = null)
    {
        if (architecture is not null) return Graph.ArchitectureFrontEnd.Build(path, architecture);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                "a .safetensors file holds tensors only, no forward code: run the model's TorchScript file, or a torch.save state_dict with -Architecture", path);
        var ck = TorchCheckpoint.Load(path);
        if (ck.Kind == CheckpointKind.TorchScript) return Graph.TorchScriptFrontEnd.Build(ck);
        string what = ck.Kind == CheckpointKind.Legacy ? "a legacy torch.save state_dict" : "a torch.save state_dict";
        throw new QuantToolsException(ErrorCode.InvalidArgument,
            $"this is {what}: it holds weights and qparams but no forward code, so it needs its architecture. Pass -Architecture " +
            "with an architecture file (forward order, hyperparameters, wiring; see examples/architectures) or a built-in architecture " +
            "(torchvision:<name>), or run the model's TorchScript file (torch.jit.script / torch.jit.trace, then save)", path);
    }

    // ------------------------------------------------------------------ TorchScript

    private static readonly HashSet<string> Containers = new(StringComparer.Ordinal)
        { "Sequential", "ModuleList", "ModuleDict", "LinearPackedParams", "Identity", "Dropout" };

    public static QuantModel FromTorchScript(TorchModule root, string source)
    {
        var layers = new List<ModelLayer>();
        layers.AddRange(FxRootQuantizers(root.Attributes.Select(kv => (kv.Key, kv.Value)), source));
        foreach (var m in root.DescendantsAndSelf())
        {
            if (m.Path.Length == 0 || Containers.Contains(m.Kind)) continue;
            if (m.Name == "activation_post_process" && m.Kind == "Identity") continue;
            bool hasOwnQParams = m.Attributes.ContainsKey("scale");
            // modules that only hold children (user blocks such as QuantizableInvertedResidual) are not layers
            if (m.Children.Any(c => c.Name != "_packed_params") && !hasOwnQParams) continue;
            QTensor? weight = null;
            Tensor? bias = null;
            // scripted nnq.Conv*d keeps weight and bias in its __getstate__ tuple; Linear in a _packed_params child
            if (m.Attributes.TryGetValue("weight", out var aw) && aw is QTensor qw)
            {
                weight = qw;
                bias = m.Attributes.TryGetValue("bias", out var ab) ? ab as Tensor : null;
            }
            foreach (var v in m.Attributes.Values.Concat(m.Children.Where(c => c.Name == "_packed_params").SelectMany(c => c.Attributes.Values)))
            {
                switch (v)
                {
                    case ConvPackedParams cp: weight = cp.Weight; bias = cp.Bias; break;
                    case LinearPackedParams lp when lp.Weight is QTensor q: weight = q; bias = lp.Bias; break;
                }
            }
            string kind = m.Kind;
            if (m.ClassName.Contains(".dynamic.", StringComparison.Ordinal) && kind == "Linear") kind = "DynamicLinear";
            var attrs = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var key in new[] { "min_val", "max_val", "negative_slope", "alpha", "eps", "dim", "inplace" })
                if (m.Attributes.TryGetValue(key, out var av)) attrs[key] = Scalar(av) is { } d ? d : av;
            layers.Add(new ModelLayer
            {
                Name = m.Path,
                Kind = kind,
                TypeName = m.TypeName,
                OutputScale = kind != "DynamicLinear" && m.Attributes.TryGetValue("scale", out var s) ? Scalar(s) : null,
                OutputZeroPoint = kind != "DynamicLinear" && m.Attributes.TryGetValue("zero_point", out var z) && Scalar(z) is { } zd ? (long)zd : null,
                OutputDType = m.Attributes.TryGetValue("dtype", out var dt) && dt is DType { } qd && qd.IsQuantized() ? qd : DType.QUInt8,
                Weight = weight,
                Bias = bias,
                Attributes = attrs,
            });
        }
        return new QuantModel { Source = source, Form = "torchscript", Layers = layers };
    }

    // ------------------------------------------------------------------ state_dict

    /// <summary>Module prefixes of a state_dict's <c>_metadata</c> that are leaves (no sub-module) and own no key.</summary>
    private static List<string> TensorFreeLeaves(IEnumerable<string> modules, IEnumerable<string> keys)
    {
        var all = modules.Where(m => m.Length > 0).ToList();
        var owners = new HashSet<string>(StringComparer.Ordinal);
        foreach (var k in keys)
            for (int dot = k.LastIndexOf('.'); dot > 0; dot = k.LastIndexOf('.', dot - 1))
                owners.Add(k[..dot]);
        return all.Where(m => !owners.Contains(m) && !all.Any(o => o.Length > m.Length && o.StartsWith(m + ".", StringComparison.Ordinal))).ToList();
    }

    /// <summary>A state_dict's <c>_metadata</c>: module prefix → the module class's <c>_version</c>.</summary>
    private static Dictionary<string, long> ModuleVersions(Formats.Pickle.PyDict? metadata)
    {
        var d = new Dictionary<string, long>(StringComparer.Ordinal);
        if (metadata is null) return d;
        foreach (var (k, v) in metadata)
            if (k is string prefix && v is Formats.Pickle.PyDict m && m.TryGetValue("version", out var ver) && ver is long l)
                d[prefix] = l;
        return d;
    }

    public static QuantModel FromStateDict(IEnumerable<KeyValuePair<string, object?>> stateDict, string source, string form,
        IReadOnlyDictionary<string, long>? moduleVersions = null)
    {
        var groups = new List<(string Module, Dictionary<string, object?> Fields)>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var rootEntries = new List<(string, object?)>();
        foreach (var (key, value) in stateDict)
        {
            int dot = key.LastIndexOf('.');
            if (dot < 0)
            {
                rootEntries.Add((key, value));
                continue;
            }
            string module = key[..dot], field = key[(dot + 1)..];
            if (module.EndsWith("._packed_params", StringComparison.Ordinal))
            {
                field = "_packed_params." + field;
                module = module[..^"._packed_params".Length];
            }
            // an observer inside a FakeQuantize reports to its FakeQuantize
            if (module.EndsWith(".activation_post_process", StringComparison.Ordinal) && field is "min_val" or "max_val" &&
                index.ContainsKey(module[..^".activation_post_process".Length]))
                module = module[..^".activation_post_process".Length];
            if (!index.TryGetValue(module, out var gi))
            {
                gi = groups.Count;
                index[module] = gi;
                groups.Add((module, new Dictionary<string, object?>(StringComparer.Ordinal)));
            }
            groups[gi].Fields[field] = value;
        }
        var layers = new List<ModelLayer>();
        layers.AddRange(FxRootQuantizers(rootEntries, source));
        bool qat = false;
        foreach (var (module, f) in groups)
        {
            long version = moduleVersions is not null && moduleVersions.TryGetValue(module, out var v) ? v : -1;
            var layer = LayerFromFields(module, f, version);
            if (layer is null) continue;
            qat |= layer.Kind == "FakeQuantize";
            layers.Add(layer);
        }
        return new QuantModel { Source = source, Form = qat ? "qat" : layers.Any(l => l.Attributes.ContainsKey("fx")) ? "fx" : form, Layers = layers };
    }

    private static ModelLayer? LayerFromFields(string module, Dictionary<string, object?> f, long version)
    {
        double? scale = f.TryGetValue("scale", out var s) ? Scalar(s) : null;
        long? zp = f.TryGetValue("zero_point", out var z) && Scalar(z) is { } zd ? (long)zd : null;
        if (f.ContainsKey("fake_quant_enabled"))
        {
            // FakeQuantize: per-tensor scale [1] for activations; per-channel scales for weights
            var st = s as Tensor;
            var zt = z as Tensor;
            bool perChannel = st is { Length: > 1 } || module.EndsWith("weight_fake_quant", StringComparison.Ordinal);
            QParams? wq = null;
            if (perChannel && st is not null && zt is not null && st.Length == zt.Length && st.Length > 0)
            {
                var scales = Enumerable.Range(0, st.Length).Select(st.GetDouble).ToArray();
                var zps = Enumerable.Range(0, zt.Length).Select(i => (long)zt.GetDouble(i)).ToArray();
                wq = st.Length > 1
                    ? new QParams(QScheme.PerChannelSymmetric, DType.QInt8, scales, zps, 0)
                    : QParams.PerTensor(scales[0], zps[0], DType.QInt8, QScheme.PerTensorSymmetric);
            }
            var attrs = new Dictionary<string, object?>
            {
                ["fake_quant_enabled"] = Scalar(f["fake_quant_enabled"]),
                ["observer_enabled"] = f.TryGetValue("observer_enabled", out var oe) ? Scalar(oe) : null,
                ["min_val"] = f.TryGetValue("min_val", out var mn) ? mn : null,
                ["max_val"] = f.TryGetValue("max_val", out var mx) ? mx : null,
            };
            return new ModelLayer
            {
                Name = module, Kind = "FakeQuantize",
                OutputScale = wq is null ? scale : null,
                OutputZeroPoint = wq is null ? zp : null,
                WeightQParams = wq,
                Attributes = attrs,
            };
        }
        if (f.TryGetValue("_packed_params.weight", out var pw) && pw is QTensor lw)
        {
            // nnqd.Linear (version 4) keeps the scale / zero_point buffers of nnq.Linear (version 3) but never uses them
            bool dynamic = scale is null || version == 4;
            return new ModelLayer
            {
                Name = module, Kind = dynamic ? "DynamicLinear" : "Linear",
                OutputScale = dynamic ? null : scale, OutputZeroPoint = dynamic ? null : zp, Weight = lw,
                Bias = f.TryGetValue("_packed_params.bias", out var lb) ? lb as Tensor : null,
            };
        }
        if (f.TryGetValue("weight", out var w) && w is QTensor qw)
            return new ModelLayer
            {
                Name = module,
                Kind = qw.Shape.Length switch { 3 => "Conv1d", 4 => "Conv2d", 5 => "Conv3d", 2 => "Linear", _ => "Quantized" },
                OutputScale = scale, OutputZeroPoint = zp, Weight = qw,
                Bias = f.TryGetValue("bias", out var b) ? b as Tensor : null,
            };
        if (f.ContainsKey("min_val") && f.ContainsKey("max_val") && !f.ContainsKey("weight"))
            return new ModelLayer
            {
                Name = module, Kind = "Observer",
                Attributes = new Dictionary<string, object?> { ["min_val"] = f["min_val"], ["max_val"] = f["max_val"] },
            };
        if (scale is not null && zp is not null)
            return new ModelLayer
            {
                Name = module,
                // nnq.Quantize keeps scale as a [1] tensor; QFunctional (add, cat, mul) as a 0-dim tensor
                Kind = s is Tensor { Rank: 1 } ? "Quantize" : "QFunctional",
                OutputScale = scale, OutputZeroPoint = zp,
            };
        if (f.TryGetValue("weight", out var fw) && fw is Tensor)
            return new ModelLayer { Name = module, Kind = "Float", Bias = f.TryGetValue("bias", out var fb) ? fb as Tensor : null };
        return null;
    }

    [GeneratedRegex(@"^(?<stem>.*)_scale_(?<n>\d+)$")]
    private static partial Regex FxScaleName();

    /// <summary>FX-converted models keep each quantize step's qparams as root buffers: conv1_input_scale_0 / _zero_point_0.</summary>
    private static IEnumerable<ModelLayer> FxRootQuantizers(IEnumerable<(string Key, object? Value)> entries, string source)
    {
        var list = entries.ToList();
        var byKey = list.GroupBy(e => e.Key).ToDictionary(g => g.Key, g => g.First().Value, StringComparer.Ordinal);
        foreach (var (key, value) in list)
        {
            var m = FxScaleName().Match(key);
            if (!m.Success) continue;
            var stem = m.Groups["stem"].Value;
            var n = m.Groups["n"].Value;
            if (!byKey.TryGetValue($"{stem}_zero_point_{n}", out var zv)) continue;
            if (Scalar(value) is not { } scale || Scalar(zv) is not { } zp) continue;
            yield return new ModelLayer
            {
                Name = (stem.Length == 0 ? "quantize" : stem) + "_" + n,
                Kind = "Quantize",
                OutputScale = scale,
                OutputZeroPoint = (long)zp,
                Attributes = new Dictionary<string, object?> { ["fx"] = key },
            };
        }
    }

    /// <summary>A number held as a 0-dim / 1-element tensor, a double or a long.</summary>
    private static double? Scalar(object? v) => v switch
    {
        Tensor { Length: 1 } t => t.GetDouble(0),
        double d => d,
        float f => f,
        long l => l,
        int i => i,
        bool b => b ? 1 : 0,
        _ => null,
    };
}
