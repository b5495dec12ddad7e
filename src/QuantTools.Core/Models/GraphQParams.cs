using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models;

/// <summary>The per-tensor qparams a graph value carries when the model runs (known without running it).</summary>
public readonly record struct ValueQParams(double Scale, long ZeroPoint, DType DType);

/// <summary>
/// Which qparams every value of a <see cref="ModelGraph"/> carries, derived from the graph alone the way the executor
/// produces them: quantize and requantizing ops (conv, linear, add, mul, cat, hardswish, leaky_relu, elu) set their
/// output qparams, the clamp family, pools, views and lists pass their input's on, sigmoid / hardsigmoid / tanh have
/// PyTorch's fixed output qparams, dequantize and dynamic ops give float. What is not known this way (scalar add / mul,
/// ops on values whose qparams are unknown) stays unknown rather than guessed.
/// </summary>
public sealed class GraphQParams
{
    private readonly Dictionary<string, ValueQParams> _q = new(StringComparer.Ordinal);
    private readonly Dictionary<string, GraphNode> _producer = new(StringComparer.Ordinal);
    private readonly HashSet<string> _float = new(StringComparer.Ordinal);

    public ModelGraph Graph { get; }

    public GraphQParams(ModelGraph graph)
    {
        Graph = graph ?? throw new ArgumentNullException(nameof(graph));
        foreach (var i in graph.Inputs) _float.Add(i);
        foreach (var n in graph.Nodes)
        {
            foreach (var o in n.Outputs) _producer[o] = n;
            Propagate(n);
        }
    }

    /// <summary>The qparams of a quantized value; null for float values and values whose qparams cannot be known statically.</summary>
    public ValueQParams? Of(string value) => _q.TryGetValue(value, out var q) ? q : null;

    /// <summary>True when the value is known to be a float tensor (a model input, a dequantize or dynamic op's output).</summary>
    public bool IsFloat(string value) => _float.Contains(value);

    /// <summary>The node that produced a value (null for a graph input).</summary>
    public GraphNode? Producer(string value) => _producer.GetValueOrDefault(value);

    /// <summary>The first tensor a node reads: its first value operand, the first element of a list it reads.</summary>
    public string? FirstTensorInput(GraphNode n)
    {
        foreach (var op in n.Inputs)
        {
            if (!op.IsValue) continue;
            var v = op.Value!;
            if (_producer.TryGetValue(v, out var p) && p.Op == "prim::ListConstruct")
                return p.Inputs.FirstOrDefault(i => i.IsValue).Value;
            return v;
        }
        return null;
    }

    private static readonly HashSet<string> PassThrough = new(StringComparer.Ordinal)
    {
        "quantized::relu6", "aten::relu", "aten::relu_", "aten::hardtanh", "aten::hardtanh_", "aten::clamp", "aten::clamp_",
        "aten::adaptive_avg_pool2d", "aten::avg_pool2d", "aten::max_pool2d", "aten::mean", "aten::flatten", "aten::reshape",
        "aten::view", "aten::transpose", "aten::contiguous", "aten::chunk", "aten::channel_shuffle", "aten::hardswish",
        "aten::leaky_relu", "aten::elu", "aten::cat", "prim::ListConstruct", "prim::ListUnpack", "prim::TupleConstruct",
        "aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::dropout",
    };

    private void Propagate(GraphNode n)
    {
        var input = FirstTensorInput(n);
        ValueQParams? inQ = input is null ? null : Of(input);
        ValueQParams? outQ = null;
        bool isFloat = false;
        switch (n.Op)
        {
            case "aten::quantize_per_tensor":
                if (Const(n, 1) is { } s && Const(n, 2) is { } z && n.Inputs.Count > 3 && n.Inputs[3].Constant is long code)
                    outQ = new ValueQParams(s, (long)z, ScalarOps.DTypeOfCode(code));
                break;
            case "aten::dequantize" or "quantized::linear_dynamic" or "quantized::linear_relu_dynamic":
                isFloat = true;
                break;
            case "aten::to":
                if (input is not null && IsFloat(input)) isFloat = true;
                break;
            case "quantized::conv1d" or "quantized::conv1d_relu" or "quantized::conv2d" or "quantized::conv2d_relu"
                or "quantized::conv_transpose1d" or "quantized::conv_transpose2d" or "quantized::linear" or "quantized::linear_relu"
                or "quantized::add" or "quantized::add_relu" or "quantized::mul" or "quantized::mul_relu" or "quantized::hardswish":
                // output scale / zero point operands: after the packed weights for conv / linear, after both inputs for add / mul
                int at = n.Op == "quantized::hardswish" ? 1 : 2;
                if (Const(n, at) is { } s2 && Const(n, at + 1) is { } z2)
                    outQ = new ValueQParams(s2, (long)z2, n.Op.StartsWith("quantized::add", StringComparison.Ordinal) || n.Op.StartsWith("quantized::mul", StringComparison.Ordinal)
                        ? DType.QUInt8 : inQ?.DType ?? DType.QUInt8);
                break;
            case "quantized::cat" or "quantized::cat_relu":
                // scale / zero point may be None: the first input's
                outQ = Const(n, 2) is { } cs && Const(n, 3) is { } cz ? new ValueQParams(cs, (long)cz, inQ?.DType ?? DType.QUInt8) : inQ;
                break;
            case "quantized::leaky_relu":
                if (Const(n, 3) is { } ls && Const(n, 4) is { } lz && inQ is { } li) outQ = new ValueQParams(ls, (long)lz, li.DType);
                break;
            case "quantized::elu":
                if (Const(n, 1) is { } es && Const(n, 2) is { } ez && inQ is { } ei) outQ = new ValueQParams(es, (long)ez, ei.DType);
                break;
            case "aten::sigmoid" or "aten::hardsigmoid":
                // PyTorch's fixed output qparams (qsigmoid / qhardsigmoid): 1/256 with zero point 0 (quint8) or -128 (qint8)
                if (inQ is { } si) outQ = new ValueQParams(1.0 / 256, si.DType == DType.QInt8 ? -128 : 0, si.DType);
                break;
            case "aten::tanh":
                // qtanh: 2/256 with zero point 128 (quint8) or 0 (qint8)
                if (inQ is { } ti) outQ = new ValueQParams(2.0 / 256, ti.DType == DType.QInt8 ? 0 : 128, ti.DType);
                break;
            default:
                if (PassThrough.Contains(n.Op))
                {
                    outQ = inQ;
                    isFloat = inQ is null && input is not null && IsFloat(input);
                }
                break;
        }
        foreach (var o in n.Outputs)
        {
            if (outQ is { } q) _q[o] = q;
            else if (isFloat) _float.Add(o);
        }
    }

    private static double? Const(GraphNode n, int i)
    {
        if (n.Inputs.Count <= i || n.Inputs[i].IsValue || n.Inputs[i].Constant is null) return null;
        try { return ScalarOps.ToDouble(n.Inputs[i].Constant, n.Op); }
        catch (QuantToolsException) { return null; }
    }
}
