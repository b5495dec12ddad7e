using System.Globalization;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Tensors;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace QuantTools.Core.Models.Graph;

/// <summary>
/// Builds a <see cref="ModelGraph"/> from an eager-mode state_dict (zip or legacy .pt) and an architecture file that
/// lists the modules in forward order, what each one does, and, where it is not simply the previous layer, what
/// feeds it (residual adds, cats). A state_dict holds weights and qparams but no hyperparameters (stride,
/// padding ...), no parameter-free modules (ReLU6, pools) and no wiring: the architecture file supplies those.
/// <code>
/// input: x
/// layers:
///   - {name: quant, op: quantize}
///   - {name: conv1, op: conv2d, relu: true, padding: 1}
///   - {name: relu6, op: relu6}
///   - {name: skip, op: add, inputs: [conv1, relu6]}
///   - {name: pool, op: adaptive_avg_pool2d, output_size: 1}
///   - {name: flat, op: flatten, start_dim: 1}
///   - {name: fc, op: linear}
///   - {name: dequant, op: dequantize}
/// </code>
/// Unknown keys, ops, missing tensors and wrong types are errors with file:line:column.
/// </summary>
public static class ArchitectureFrontEnd
{
    public static readonly IReadOnlyList<string> Ops =
    [
        "quantize", "dequantize", "conv1d", "conv2d", "linear", "dynamic_linear", "relu", "relu6", "hardtanh", "clamp",
        "add", "add_relu", "mul", "cat", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "flatten", "identity",
    ];

    private static readonly HashSet<string> LayerKeys = new(StringComparer.Ordinal)
    {
        "name", "op", "inputs", "relu", "stride", "padding", "dilation", "groups", "min", "max", "kernel_size", "ceil_mode",
        "count_include_pad", "output_size", "start_dim", "end_dim", "dim", "reduce_range",
    };

    public static ModelGraph Build(string stateDictPath, string architecturePath)
    {
        var ck = TorchCheckpoint.Load(stateDictPath);
        if (ck.Kind == CheckpointKind.TorchScript)
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                "this is a TorchScript archive, which carries its own graph: run it without an architecture file", stateDictPath);
        string text;
        try { text = File.ReadAllText(architecturePath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QuantToolsException(ErrorCode.IoError, e.Message, architecturePath, e);
        }
        return Build(ck.StateDict, text, architecturePath, stateDictPath);
    }

    public static ModelGraph Build(TorchStateDict sd, string yaml, string archSource, string modelSource)
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(yaml)); }
        catch (YamlException e) { throw Err(archSource, e.Start, e.Message); }
        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "expected a mapping with 'layers' (and optionally 'input')", archSource);
        string input = "x";
        YamlSequenceNode? layers = null;
        foreach (var (k, v) in root.Children)
        {
            var key = ((YamlScalarNode)k).Value;
            if (key == "input") input = Scalar(v, archSource, "input");
            else if (key == "layers") layers = v as YamlSequenceNode ?? throw Err(archSource, v.Start, "'layers' must be a list");
            else throw Err(archSource, k.Start, $"unknown key '{key}'; expected input, layers");
        }
        if (layers is null) throw Err(archSource, root.Start, "the key 'layers' is required");

        var nodes = new List<GraphNode>();
        var layerOutputs = new List<KeyValuePair<string, string>>();
        var kinds = new Dictionary<string, string>(StringComparer.Ordinal);
        var known = new HashSet<string>(StringComparer.Ordinal) { input };
        string previous = input;
        foreach (var item in layers.Children)
        {
            if (item is not YamlMappingNode m) throw Err(archSource, item.Start, "each layer must be a mapping such as {name: conv1, op: conv2d}");
            var f = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
            foreach (var (k, v) in m.Children)
            {
                var key = ((YamlScalarNode)k).Value ?? "";
                if (!LayerKeys.Contains(key)) throw Err(archSource, k.Start, $"unknown key '{key}'; expected one of {string.Join(", ", LayerKeys)}");
                f[key] = v;
            }
            if (!f.TryGetValue("name", out var nameNode)) throw Err(archSource, m.Start, "a layer needs a 'name' (its module path in the state_dict)");
            if (!f.TryGetValue("op", out var opNode)) throw Err(archSource, m.Start, "a layer needs an 'op'");
            string name = Scalar(nameNode, archSource, "name");
            string op = Scalar(opNode, archSource, "op");
            if (!known.Add(name)) throw Err(archSource, nameNode.Start, $"layer name '{name}' is used twice");
            var inputs = f.TryGetValue("inputs", out var insNode)
                ? (insNode as YamlSequenceNode ?? throw Err(archSource, insNode.Start, "'inputs' must be a list of layer names")).Children
                    .Select(c => Scalar(c, archSource, "inputs")).ToList()
                : [previous];
            foreach (var i in inputs)
                if (!known.Contains(i) || i == name) throw Err(archSource, (insNode ?? m).Start, $"input '{i}' of layer '{name}' is not an earlier layer or the model input");
            var loc = new SourceLocation(archSource, (int)m.Start.Line, $"{name}: {op}");
            var ctx = new LayerContext(sd, name, f, archSource, modelSource, m.Start);
            string outValue = name;
            if (op == "cat")
            {
                // quantized::cat takes a tensor list, built as TorchScript does
                string list = name + ".inputs";
                nodes.Add(new GraphNode { Index = nodes.Count, Op = "prim::ListConstruct", Inputs = inputs.Select(Operand.Of).ToList(), Outputs = [list], ModulePath = name, Source = loc });
                inputs = [list];
            }
            var (torchOp, operands, kind) = Translate(op, inputs, ctx, opNode);
            nodes.Add(new GraphNode
            {
                Index = nodes.Count, Op = torchOp, Inputs = operands, Outputs = [outValue], ModulePath = name, ModuleKind = kind, Source = loc,
            });
            layerOutputs.Add(new KeyValuePair<string, string>(name, outValue));
            kinds[name] = kind;
            previous = name;
        }
        return new ModelGraph
        {
            Source = modelSource, Inputs = [input], Outputs = [previous], Nodes = nodes, LayerOutputs = layerOutputs,
            LayerKinds = kinds, LeafLayers = new HashSet<string>(kinds.Keys, StringComparer.Ordinal),
        };
    }

    private sealed record LayerContext(TorchStateDict Sd, string Name, Dictionary<string, YamlNode> F, string Arch, string Model, Mark At)
    {
        public object? Get(string field) => Sd.TryGetValue(Name + "." + field, out var v) ? v
            : throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"{Arch}:{At.Line}:{At.Column}: layer '{Name}' needs '{Name}.{field}' in the state_dict, which does not have it", Model);
        public double Number(string field) => Get(field) switch
        {
            Tensor { Length: 1 } t => t.GetDouble(0),
            double d => d,
            long l => l,
            var o => throw new QuantToolsException(ErrorCode.InvalidArgument, $"'{Name}.{field}' is {o?.GetType().Name ?? "null"}, not a number", Model),
        };
        public long[] Ints(string key, int dims, long fallback)
        {
            if (!F.TryGetValue(key, out var n)) return Enumerable.Repeat(fallback, dims).ToArray();
            if (n is YamlScalarNode s) return Enumerable.Repeat(ParseLong(s), dims).ToArray();
            var list = ((YamlSequenceNode)n).Children.Select(c => ParseLong((YamlScalarNode)c)).ToArray();
            if (list.Length != dims) throw Err(Arch, n.Start, $"'{key}' needs {dims} values, got {list.Length}");
            return list;
        }
        public long Int(string key, long fallback) => F.TryGetValue(key, out var n) ? ParseLong((YamlScalarNode)n) : fallback;
        public double? Double(string key) => F.TryGetValue(key, out var n)
            ? double.TryParse(((YamlScalarNode)n).Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d
                : throw Err(Arch, n.Start, $"'{key}' must be a number") : null;
        public bool Bool(string key) => F.TryGetValue(key, out var n) && ((YamlScalarNode)n).Value?.ToLowerInvariant() switch
        {
            "true" or "yes" => true,
            "false" or "no" => false,
            _ => throw Err(Arch, n.Start, $"'{key}' must be true or false"),
        };
        private long ParseLong(YamlScalarNode s) =>
            long.TryParse(s.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw Err(Arch, s.Start, $"expected an integer, found '{s.Value}'");
    }

    private static (string Op, IReadOnlyList<Operand> Inputs, string Kind) Translate(string op, List<string> ins, LayerContext c, YamlNode opNode)
    {
        Operand X(int i = 0) => Operand.Of(ins[i]);
        Operand K(object? v) => Operand.Const(v);
        void One() { if (ins.Count != 1) throw Err(c.Arch, opNode.Start, $"{op} takes one input, got {ins.Count}"); }
        switch (op)
        {
            case "quantize":
                One();
                return ("aten::quantize_per_tensor", [X(), K(c.Number("scale")), K((long)c.Number("zero_point")), K(13L)], "Quantize");
            case "dequantize":
                One();
                return ("aten::dequantize", [X()], "DeQuantize");
            case "identity":
                One();
                return ("aten::contiguous", [X()], "Identity");
            case "conv1d" or "conv2d":
            {
                One();
                int d = op == "conv1d" ? 1 : 2;
                var w = c.Get("weight") as QTensor ?? throw new QuantToolsException(ErrorCode.InvalidArgument, $"'{c.Name}.weight' is not a quantized tensor", c.Model);
                var bias = c.Sd.TryGetValue(c.Name + ".bias", out var b) ? b as Tensor : null;
                var cp = new ConvPackedParams
                {
                    Version = 3, SpatialDims = d, Weight = w, Bias = bias,
                    Stride = c.Ints("stride", d, 1), Padding = c.Ints("padding", d, 0), Dilation = c.Ints("dilation", d, 1),
                    OutputPadding = new long[d], Groups = c.Int("groups", 1), Transpose = false,
                };
                bool relu = c.Bool("relu");
                return ($"quantized::{op}{(relu ? "_relu" : "")}", [X(), K(cp), K(c.Number("scale")), K((long)c.Number("zero_point"))],
                    relu ? (d == 1 ? "ConvReLU1d" : "ConvReLU2d") : (d == 1 ? "Conv1d" : "Conv2d"));
            }
            case "linear" or "dynamic_linear":
            {
                One();
                var w = (c.Sd.TryGetValue(c.Name + "._packed_params.weight", out var pw) ? pw : c.Get("weight")) as QTensor
                        ?? throw new QuantToolsException(ErrorCode.InvalidArgument, $"'{c.Name}' has no quantized weight", c.Model);
                var bias = (c.Sd.TryGetValue(c.Name + "._packed_params.bias", out var pb) ? pb : c.Sd.TryGetValue(c.Name + ".bias", out var lb) ? lb : null) as Tensor;
                var lp = new LinearPackedParams { Weight = w, Bias = bias };
                bool relu = c.Bool("relu");
                if (op == "dynamic_linear")
                    return (relu ? "quantized::linear_relu_dynamic" : "quantized::linear_dynamic", [X(), K(lp), K(!c.F.ContainsKey("reduce_range") || c.Bool("reduce_range"))], "DynamicLinear");
                return (relu ? "quantized::linear_relu" : "quantized::linear", [X(), K(lp), K(c.Number("scale")), K((long)c.Number("zero_point"))], relu ? "LinearReLU" : "Linear");
            }
            case "relu": One(); return ("aten::relu", [X()], "ReLU");
            case "relu6": One(); return ("quantized::relu6", [X(), K(false)], "ReLU6");
            case "hardtanh":
                One();
                return ("aten::hardtanh", [X(), K(c.Double("min") ?? -1.0), K(c.Double("max") ?? 1.0)], "Hardtanh");
            case "clamp":
                One();
                return ("aten::clamp", [X(), K(c.Double("min")), K(c.Double("max"))], "Clamp");
            case "add" or "add_relu" or "mul":
                if (ins.Count != 2) throw Err(c.Arch, opNode.Start, $"{op} takes two inputs (inputs: [a, b]), got {ins.Count}");
                return ($"quantized::{op}", [X(0), X(1), K(c.Number("scale")), K((long)c.Number("zero_point"))], "QFunctional");
            case "cat":
                return ("quantized::cat", [X(), K(c.Int("dim", 0)), K(c.Number("scale")), K((long)c.Number("zero_point"))], "QFunctional");
            case "max_pool2d":
            {
                One();
                var k = c.Ints("kernel_size", 2, 1);
                return ("aten::max_pool2d", [X(), K(L(k)), K(L(c.F.ContainsKey("stride") ? c.Ints("stride", 2, 1) : k)), K(L(c.Ints("padding", 2, 0))), K(L([1, 1])), K(c.Bool("ceil_mode"))], "MaxPool2d");
            }
            case "avg_pool2d":
            {
                One();
                var k = c.Ints("kernel_size", 2, 1);
                return ("aten::avg_pool2d", [X(), K(L(k)), K(L(c.F.ContainsKey("stride") ? c.Ints("stride", 2, 1) : k)), K(L(c.Ints("padding", 2, 0))),
                    K(c.Bool("ceil_mode")), K(!c.F.ContainsKey("count_include_pad") || c.Bool("count_include_pad")), K(null)], "AvgPool2d");
            }
            case "adaptive_avg_pool2d":
                One();
                return ("aten::adaptive_avg_pool2d", [X(), K(L(c.Ints("output_size", 2, 1)))], "AdaptiveAvgPool2d");
            case "flatten":
                One();
                return ("aten::flatten", [X(), K(c.Int("start_dim", 1)), K(c.Int("end_dim", -1))], "Flatten");
            default:
                throw new QuantToolsException(ErrorCode.UnsupportedOperator,
                    $"{c.Arch}:{opNode.Start.Line}:{opNode.Start.Column}: unknown op '{op}'; expected one of {string.Join(", ", Ops)}", c.Arch);
        }
    }

    private static List<object?> L(long[] v) => v.Select(x => (object?)x).ToList();

    private static string Scalar(YamlNode n, string source, string what) =>
        n is YamlScalarNode { Value: { } s } ? s : throw Err(source, n.Start, $"'{what}' must be a single value");

    private static QuantToolsException Err(string source, Mark m, string message) =>
        new(ErrorCode.InvalidArgument, $"{source}:{m.Line}:{m.Column}: {message}", source);
}
