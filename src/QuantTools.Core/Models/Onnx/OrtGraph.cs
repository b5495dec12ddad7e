using QuantTools.Core.Formats.Onnx;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Models.Onnx;

/// <summary>One node of the graph QuantTools runs: an ONNX node, or a QLinear node that a fusion made.</summary>
public sealed class OrtNode
{
    public required string Name { get; set; }
    public required string Op { get; set; }
    public string Domain { get; set; } = "";
    public required List<string> Inputs { get; set; }
    public required List<string> Outputs { get; set; }
    public Dictionary<string, OnnxAttribute> Attributes { get; set; } = new(StringComparer.Ordinal);
    /// <summary>Names of the file's nodes this node replaces (itself for an unchanged node).</summary>
    public List<string> Origin { get; set; } = [];
    /// <summary>Which fusion made it (null for a node of the file).</summary>
    public string? Fusion { get; set; }

    public string Input(int i) => i < Inputs.Count ? Inputs[i] : "";
    public long Int(string name, long fallback) => Attributes.TryGetValue(name, out var a) && a.Type == OnnxAttributeType.Int ? a.I : fallback;
    public float Float(string name, float fallback) => Attributes.TryGetValue(name, out var a) && a.Type == OnnxAttributeType.Float ? a.F : fallback;
    public string? String(string name) => Attributes.TryGetValue(name, out var a) && a.Type == OnnxAttributeType.String ? a.S : null;
    public long[]? Ints(string name) => Attributes.TryGetValue(name, out var a) && a.Type == OnnxAttributeType.Ints ? a.Ints : null;

    public override string ToString() =>
        $"{(Domain.Length > 0 ? Domain + "." : "")}{Op} '{Name}' ({string.Join(", ", Inputs)}) -> ({string.Join(", ", Outputs)}){(Fusion is null ? "" : " [" + Fusion + "]")}";
}

/// <summary>
/// The graph after the rewrites ONNX Runtime 1.30's CPU provider applies at its default optimization level
/// (ORT_ENABLE_ALL) that change which kernels run: Constant nodes folded; on x86 (where QDQIsInt8Allowed() is false)
/// int8 Q→DQ activation pairs turned into uint8 with the zero point + 128 (QDQS8ToU8Transformer); Relu / Clip before a
/// QuantizeLinear dropped where the quantization range already clips (ReluQuantFusion, ClipQuantFusion); then the
/// QDQ node groups replaced by QLinear kernels (QDQSelectorActionTransformer: Conv→QLinearConv, Gemm→QGemm,
/// MatMul→QLinearMatMul / MatMulIntegerToFloat, Add / Mul→QLinearAdd / QLinearMul, Concat→QLinearConcat,
/// AveragePool / GlobalAveragePool / LeakyRelu / Sigmoid→QLinear*, DQ→Flatten / Reshape / Transpose / MaxPool...→Q
/// with equal qparams run on the integers); DQ→Q pairs with equal qparams removed (QDQFinalCleanupTransformer).
/// The NHWC layout transformer of level 3 changes no value and is not emulated.
/// </summary>
public sealed class OrtGraph
{
    public required List<OrtNode> Nodes { get; init; }
    public required Dictionary<string, Tensor> Constants { get; init; }
    public required IReadOnlyList<OnnxValueInfo> Inputs { get; init; }
    public required IReadOnlyList<string> Outputs { get; init; }
    public required OnnxModel Model { get; init; }
    /// <summary>What was rewritten, one line per fusion (for -Verbose and tests).</summary>
    public List<string> Log { get; } = [];
    /// <summary>Values QDQS8ToU8 renamed: new name → the file's name and its int8 zero point (the integers differ by 128).</summary>
    public Dictionary<string, (string Original, int Int8ZeroPoint)> Int8Renames { get; } = new(StringComparer.Ordinal);

    public override string ToString() => $"{Path.GetFileName(Model.Source)}: {Nodes.Count} nodes after ORT's rewrites";

    public string Dump() => string.Join("\n", Nodes.Select(n => n.ToString()));

    /// <summary>The file's graph as nodes to run, before any rewrite (ORT_DISABLE_ALL).</summary>
    public static OrtGraph FromModel(OnnxModel model)
    {
        var consts = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, t) in model.Graph.Initializers) consts[name] = t.ToTensor();
        var nodes = model.Graph.Nodes.Select(n => new OrtNode
        {
            Name = n.Name, Op = n.OpType, Domain = n.Domain, Inputs = n.Inputs.ToList(), Outputs = n.Outputs.ToList(),
            Attributes = new Dictionary<string, OnnxAttribute>(n.Attributes, StringComparer.Ordinal), Origin = [n.Name],
        }).ToList();
        return new OrtGraph
        {
            Nodes = nodes, Constants = consts, Inputs = model.Graph.Inputs, Outputs = model.Graph.Outputs.Select(o => o.Name).ToList(), Model = model,
        };
    }

    /// <summary>The graph ORT runs at its default level on an x86 CPU.</summary>
    public static OrtGraph Optimize(OnnxModel model)
    {
        var g = FromModel(model);
        g.FoldConstantNodes();
        g.RemoveDeadNodes();
        g.S8ToU8();
        g.DropReluClipBeforeQ();
        g.FuseQdqGroups();
        g.DropDqQPairs();
        g.RemoveDeadNodes();
        return g;
    }

    // ------------------------------------------------------------------ helpers

    private Dictionary<string, List<OrtNode>> Consumers()
    {
        var d = new Dictionary<string, List<OrtNode>>(StringComparer.Ordinal);
        foreach (var n in Nodes)
            foreach (var i in n.Inputs)
                if (i.Length > 0)
                {
                    if (!d.TryGetValue(i, out var l)) d[i] = l = [];
                    if (!l.Contains(n)) l.Add(n);
                }
        return d;
    }

    private Dictionary<string, OrtNode> Producers()
    {
        var d = new Dictionary<string, OrtNode>(StringComparer.Ordinal);
        foreach (var n in Nodes) foreach (var o in n.Outputs) if (o.Length > 0) d[o] = n;
        return d;
    }

    private bool IsGraphOutput(string v) => Outputs.Contains(v);

    private static bool IsQ(OrtNode n) => n.Op == "QuantizeLinear" && n.Domain is "" or "com.microsoft";
    private static bool IsDQ(OrtNode n) => n.Op == "DequantizeLinear" && n.Domain is "" or "com.microsoft";

    internal Tensor? Const(string name) => name.Length > 0 && Constants.TryGetValue(name, out var t) ? t : null;

    /// <summary>A Q or DQ node's scale and zero point, when both are constant and per-tensor (one value).</summary>
    private (float Scale, int Zp, DType ZpType)? ScalarQParams(OrtNode qdq)
    {
        var s = Const(qdq.Input(1));
        if (s is null || s.Length != 1 || s.DType != DType.Float32) return null;
        var zpName = qdq.Input(2);
        if (zpName.Length == 0) return (s.AsSpan<float>()[0], 0, DType.UInt8);
        var z = Const(zpName);
        if (z is null || z.Length != 1) return null;
        return z.DType switch
        {
            DType.UInt8 => (s.AsSpan<float>()[0], z.AsSpan<byte>()[0], DType.UInt8),
            DType.Int8 => (s.AsSpan<float>()[0], z.AsSpan<sbyte>()[0], DType.Int8),
            _ => null,
        };
    }

    /// <summary>The integer type a Q produces / a DQ reads (uint8 when the zero point is omitted).</summary>
    private DType? QType(OrtNode qdq)
    {
        var zpName = qdq.Input(2);
        if (zpName.Length == 0) return IsDQ(qdq) && Const(qdq.Input(0)) is { } c ? c.DType : DType.UInt8;
        return Const(zpName)?.DType;
    }

    private string NewName(string stem)
    {
        var used = new HashSet<string>(Nodes.SelectMany(n => n.Outputs).Concat(Constants.Keys), StringComparer.Ordinal);
        for (int i = 0; ; i++)
        {
            var name = i == 0 ? stem : $"{stem}_token_{i}";
            if (!used.Contains(name)) return name;
        }
    }

    private void Replace(string oldValue, string newValue)
    {
        foreach (var n in Nodes)
            for (int i = 0; i < n.Inputs.Count; i++)
                if (n.Inputs[i] == oldValue) n.Inputs[i] = newValue;
    }

    // ------------------------------------------------------------------ passes

    /// <summary>Constant nodes become initializers (ORT's constant folding).</summary>
    private void FoldConstantNodes()
    {
        foreach (var n in Nodes.Where(n => n.Op == "Constant" && n.Domain == "").ToList())
        {
            if (n.Attributes.TryGetValue("value", out var a) && a.T is { } t) Constants[n.Outputs[0]] = t.ToTensor();
            else if (n.Attributes.TryGetValue("value_float", out var f)) Constants[n.Outputs[0]] = new Tensor(DType.Float32, [], new[] { f.F });
            else if (n.Attributes.TryGetValue("value_floats", out var fs)) Constants[n.Outputs[0]] = new Tensor(DType.Float32, [fs.Floats.Length], fs.Floats);
            else if (n.Attributes.TryGetValue("value_int", out var i)) Constants[n.Outputs[0]] = new Tensor(DType.Int64, [], new[] { i.I });
            else if (n.Attributes.TryGetValue("value_ints", out var iss)) Constants[n.Outputs[0]] = new Tensor(DType.Int64, [iss.Ints.Length], iss.Ints);
            else throw new QuantToolsException(ErrorCode.NotSupported, $"Constant node '{n.Name}' has no value attribute QuantTools reads", Model.Source);
            Nodes.Remove(n);
        }
    }

    /// <summary>Nodes none of whose outputs reach a graph output.</summary>
    private void RemoveDeadNodes()
    {
        var live = new HashSet<string>(Outputs, StringComparer.Ordinal);
        var keep = new bool[Nodes.Count];
        for (int i = Nodes.Count - 1; i >= 0; i--)
        {
            if (!Nodes[i].Outputs.Any(live.Contains)) continue;
            keep[i] = true;
            foreach (var v in Nodes[i].Inputs) if (v.Length > 0) live.Add(v);
        }
        var removed = Nodes.Where((_, i) => !keep[i]).ToList();
        foreach (var r in removed) Log.Add($"removed unused node '{r.Name}' ({r.Op})");
        Nodes.RemoveAll(n => removed.Contains(n));
    }

    /// <summary>
    /// QDQS8ToU8Transformer: a QuantizeLinear with exactly one consumer, a DequantizeLinear, both with the same constant
    /// int8 scalar zero point, becomes a uint8 pair with zero point + 128 (the integers shift by 128, the values do not change).
    /// </summary>
    private void S8ToU8()
    {
        var consumers = Consumers();
        foreach (var q in Nodes.Where(IsQ).ToList())
        {
            if (q.Inputs.Count != 3 || IsGraphOutput(q.Outputs[0])) continue;
            if (!consumers.TryGetValue(q.Outputs[0], out var cs) || cs.Count != 1 || !IsDQ(cs[0])) continue;
            var dq = cs[0];
            if (dq.Inputs.Count != 3 || dq.Inputs.Count(i => i == q.Outputs[0]) != 1 || dq.Inputs[0] != q.Outputs[0]) continue;
            var qz = Const(q.Inputs[2]);
            var dz = Const(dq.Inputs[2]);
            if (qz is not { DType: DType.Int8, Length: 1 } || dz is not { DType: DType.Int8, Length: 1 }) continue;
            int zq = qz.AsSpan<sbyte>()[0] + 128, zd = dz.AsSpan<sbyte>()[0] + 128;
            if (zq != zd) continue;
            var zpName = NewName("qdq_s8_to_u8_zp_conversion");
            Constants[zpName] = new Tensor(DType.UInt8, [], new[] { (byte)zq });
            var outName = NewName("qdq_s8_to_u8_quant");
            Int8Renames[outName] = (q.Outputs[0], zq - 128);
            q.Outputs[0] = outName;
            dq.Inputs[0] = outName;
            q.Inputs[2] = zpName;
            dq.Inputs[2] = zpName;
            Log.Add($"int8 Q/DQ pair '{q.Name}' / '{dq.Name}' runs as uint8 (zero point {zq})");
        }
    }

    /// <summary>
    /// ReluQuantFusion / ClipQuantFusion: a Relu (Clip) whose only consumer is a QuantizeLinear is dropped when the
    /// quantized range already clips at its bounds: Relu when the zero point is the type's minimum, Clip when
    /// (qmin − zp)·s ≥ min and (qmax − zp)·s ≤ max.
    /// </summary>
    private void DropReluClipBeforeQ()
    {
        var consumers = Consumers();
        foreach (var act in Nodes.Where(n => n.Domain == "" && n.Op is "Relu" or "Clip").ToList())
        {
            var outName = act.Outputs[0];
            if (IsGraphOutput(outName) || !consumers.TryGetValue(outName, out var cs) || cs.Count != 1 || !IsQ(cs[0])) continue;
            var q = cs[0];
            if (ScalarQParams(q) is not { } qp) continue;
            var (qmin, qmax) = qp.ZpType == DType.Int8 ? (-128, 127) : (0, 255);
            bool drop;
            if (act.Op == "Relu") drop = qp.Zp == qmin;
            else
            {
                float lo = float.NegativeInfinity, hi = float.PositiveInfinity;
                if (act.Attributes.ContainsKey("min") || act.Attributes.ContainsKey("max"))
                {
                    lo = act.Float("min", float.NegativeInfinity);
                    hi = act.Float("max", float.PositiveInfinity);
                }
                else
                {
                    if (act.Input(1).Length > 0) { if (Const(act.Input(1)) is { Length: 1 } t) lo = (float)t.GetDouble(0); else continue; }
                    if (act.Input(2).Length > 0) { if (Const(act.Input(2)) is { Length: 1 } t) hi = (float)t.GetDouble(0); else continue; }
                }
                float rlo = (qmin - qp.Zp) * qp.Scale, rhi = (qmax - qp.Zp) * qp.Scale;
                drop = rlo >= lo && rhi <= hi;
            }
            if (!drop) continue;
            q.Inputs[0] = act.Inputs[0];
            Nodes.Remove(act);
            Log.Add($"{act.Op} '{act.Name}' dropped: QuantizeLinear '{q.Name}' clips the same range");
        }
    }

    private static readonly HashSet<string> DropQdqOps = new(StringComparer.Ordinal)
    {
        "Expand", "Flatten", "Gather", "GatherElements", "Reshape", "Slice", "Squeeze", "Tile", "Transpose", "Unsqueeze",
        "MaxPool", "ReduceMax", "ReduceMin", "Resize",
    };

    /// <summary>QDQSelectorActionTransformer: each DQ → op → Q node group ORT's selectors accept becomes its integer kernel.</summary>
    private void FuseQdqGroups()
    {
        bool changed = true;
        while (changed)
        {
            changed = false;
            var consumers = Consumers();
            var producers = Producers();
            foreach (var n in Nodes.ToList())
            {
                if (n.Domain != "" || n.Fusion is not null) continue;
                if (TryFuse(n, consumers, producers))
                {
                    changed = true;
                    break;
                }
            }
        }
    }

    private OrtNode? ProducerDQ(string value, Dictionary<string, OrtNode> producers) =>
        producers.TryGetValue(value, out var p) && IsDQ(p) ? p : null;

    /// <summary>
    /// A DQ feeding a node group. Its output must not be a graph output; other consumers do not matter, because ORT's
    /// EnsureUniqueDQForNodeUnit (level 1) first gives every consumer its own copy of a shared DQ.
    /// </summary>
    private bool DqOnlyFeeds(OrtNode dq, OrtNode target, Dictionary<string, List<OrtNode>> consumers) =>
        !IsGraphOutput(dq.Outputs[0]) && consumers.TryGetValue(dq.Outputs[0], out var cs) && cs.Contains(target);

    private OrtNode? SoleQConsumer(OrtNode target, Dictionary<string, List<OrtNode>> consumers)
    {
        if (target.Outputs.Count < 1 || IsGraphOutput(target.Outputs[0])) return null;
        if (!consumers.TryGetValue(target.Outputs[0], out var cs) || cs.Count != 1 || !IsQ(cs[0])) return null;
        return cs[0].Inputs[0] == target.Outputs[0] ? cs[0] : null;
    }

    private bool TryFuse(OrtNode n, Dictionary<string, List<OrtNode>> consumers, Dictionary<string, OrtNode> producers)
    {
        switch (n.Op)
        {
            case "Conv": return FuseConv(n, consumers, producers);
            case "Gemm": return FuseGemm(n, consumers, producers);
            case "MatMul": return FuseMatMul(n, consumers, producers);
            case "Add" or "Mul": return FuseBinary(n, consumers, producers);
            case "Concat": return FuseConcat(n, consumers, producers);
            case "AveragePool" or "GlobalAveragePool" or "LeakyRelu" or "Sigmoid" or "Softmax": return FuseUnary(n, consumers, producers);
            default:
                if (DropQdqOps.Contains(n.Op)) return DropAround(n, consumers, producers);
                return false;
        }
    }

    /// <summary>An activation DQ with constant per-tensor qparams, of the given integer type, feeding only the target.</summary>
    private bool ActivationDq(OrtNode? dq, OrtNode target, Dictionary<string, List<OrtNode>> consumers, out (float Scale, int Zp, DType ZpType) qp)
    {
        qp = default;
        if (dq is null || !DqOnlyFeeds(dq, target, consumers)) return false;
        if (ScalarQParams(dq) is not { } p) return false;
        qp = p;
        return true;
    }

    private void RemoveIfUnused(OrtNode node)
    {
        if (!Nodes.Contains(node)) return;
        var used = Nodes.Where(n => n != node).SelectMany(n => n.Inputs).ToHashSet(StringComparer.Ordinal);
        if (node.Outputs.Any(o => used.Contains(o) || IsGraphOutput(o))) return;
        Nodes.Remove(node);
    }

    private void ReplaceGroup(OrtNode target, OrtNode fused, IEnumerable<OrtNode?> dqs, OrtNode? q)
    {
        int at = Nodes.IndexOf(target);
        Nodes[at] = fused;
        fused.Origin = dqs.Where(d => d is not null).Select(d => d!.Name).Append(target.Name).Concat(q is null ? [] : [q.Name]).ToList();
        if (q is not null) Nodes.Remove(q);
        foreach (var d in dqs) if (d is not null) RemoveIfUnused(d);
        Log.Add($"{target.Op} '{target.Name}' runs as {fused.Op} ({fused.Fusion})");
    }

    private bool FuseConv(OrtNode conv, Dictionary<string, List<OrtNode>> consumers, Dictionary<string, OrtNode> producers)
    {
        var dqx = ProducerDQ(conv.Input(0), producers);
        var dqw = ProducerDQ(conv.Input(1), producers);
        var dqb = conv.Input(2).Length > 0 ? ProducerDQ(conv.Input(2), producers) : null;
        var q = SoleQConsumer(conv, consumers);
        if (q is null || dqw is null || (conv.Input(2).Length > 0 && dqb is null)) return false;
        if (!ActivationDq(dqx, conv, consumers, out var xq) || ScalarQParams(q) is not { } yq) return false;
        // x86: int8 activations are not fused (QDQIsInt8Allowed() is false); input and output types must agree
        if (xq.ZpType != DType.UInt8 || yq.ZpType != DType.UInt8) return false;
        if (!DqOnlyFeeds(dqw, conv, consumers) || Const(dqw.Input(0)) is not { } w || w.DType is not (DType.Int8 or DType.UInt8)) return false;
        if (Const(dqw.Input(1)) is null || (dqw.Input(2).Length > 0 && Const(dqw.Input(2)) is null)) return false;
        if (dqb is not null && (!DqOnlyFeeds(dqb, conv, consumers) || Const(dqb.Input(0)) is not { DType: DType.Int32 })) return false;
        var fused = new OrtNode
        {
            Name = conv.Name, Op = "QLinearConv", Inputs =
            [
                dqx!.Input(0), dqx.Input(1), dqx.Input(2), dqw.Input(0), dqw.Input(1), WeightZp(dqw, w.DType),
                q.Input(1), q.Input(2), .. dqb is null ? Array.Empty<string>() : [dqb.Input(0)],
            ],
            Outputs = [q.Outputs[0]], Attributes = conv.Attributes, Fusion = "DQ-Conv-Q",
        };
        ReplaceGroup(conv, fused, [dqx, dqw, dqb], q);
        return true;
    }

    /// <summary>A weight DQ's zero-point input, or a zero constant of the weight's type when the DQ omits it.</summary>
    private string WeightZp(OrtNode dq, DType type)
    {
        if (dq.Input(2).Length > 0) return dq.Input(2);
        var name = NewName(dq.Input(0) + "_zero_point");
        Constants[name] = type == DType.Int8 ? new Tensor(DType.Int8, [], new sbyte[1]) : new Tensor(DType.UInt8, [], new byte[1]);
        return name;
    }

    private bool FuseGemm(OrtNode gemm, Dictionary<string, List<OrtNode>> consumers, Dictionary<string, OrtNode> producers)
    {
        var dqa = ProducerDQ(gemm.Input(0), producers);
        var dqb = ProducerDQ(gemm.Input(1), producers);
        var dqc = gemm.Input(2).Length > 0 ? ProducerDQ(gemm.Input(2), producers) : null;
        if (dqb is null || (gemm.Input(2).Length > 0 && dqc is null)) return false;
        if (!ActivationDq(dqa, gemm, consumers, out var aq) || aq.ZpType != DType.UInt8) return false;
        if (!DqOnlyFeeds(dqb, gemm, consumers) || Const(dqb.Input(0)) is not { } b || b.DType is not (DType.Int8 or DType.UInt8)) return false;
        if (dqc is not null && (!DqOnlyFeeds(dqc, gemm, consumers) || Const(dqc.Input(0)) is not { DType: DType.Int32 })) return false;
        if (dqc is not null && gemm.Float("beta", 1f) != 1f) return false;
        var q = SoleQConsumer(gemm, consumers);
        if (q is not null && (ScalarQParams(q) is not { } yq || yq.ZpType != DType.UInt8)) q = null;
        var attrs = new Dictionary<string, OnnxAttribute>(gemm.Attributes, StringComparer.Ordinal);
        attrs.Remove("beta");
        var fused = new OrtNode
        {
            Name = gemm.Name, Op = "QGemm", Domain = "com.microsoft", Inputs =
            [
                dqa!.Input(0), dqa.Input(1), dqa.Input(2), dqb.Input(0), dqb.Input(1), WeightZp(dqb, b.DType),
                dqc?.Input(0) ?? "", .. q is null ? Array.Empty<string>() : [q.Input(1), q.Input(2)],
            ],
            Outputs = [q?.Outputs[0] ?? gemm.Outputs[0]], Attributes = attrs, Fusion = q is null ? "DQ-Gemm" : "DQ-Gemm-Q",
        };
        ReplaceGroup(gemm, fused, [dqa, dqb, dqc], q);
        return true;
    }

    private bool FuseMatMul(OrtNode mm, Dictionary<string, List<OrtNode>> consumers, Dictionary<string, OrtNode> producers)
    {
        var dqa = ProducerDQ(mm.Input(0), producers);
        var dqb = ProducerDQ(mm.Input(1), producers);
        if (!ActivationDq(dqa, mm, consumers, out var aq) || aq.ZpType != DType.UInt8) return false;
        if (dqb is null || !DqOnlyFeeds(dqb, mm, consumers) || QType(dqb) is not (DType.Int8 or DType.UInt8)) return false;
        if (ScalarQParams(dqb) is null && !(Const(dqb.Input(0)) is not null && Const(dqb.Input(1)) is not null)) return false;
        var q = SoleQConsumer(mm, consumers);
        if (q is not null && (ScalarQParams(q) is not { } yq || yq.ZpType != DType.UInt8)) q = null;
        var bzp = dqb.Input(2).Length > 0 ? dqb.Input(2) : WeightZp(dqb, QType(dqb)!.Value);
        var fused = q is not null
            ? new OrtNode
            {
                Name = mm.Name, Op = "QLinearMatMul",
                Inputs = [dqa!.Input(0), dqa.Input(1), dqa.Input(2), dqb.Input(0), dqb.Input(1), bzp, q.Input(1), q.Input(2)],
                Outputs = [q.Outputs[0]], Fusion = "DQ-MatMul-Q",
            }
            : new OrtNode
            {
                Name = mm.Name, Op = "MatMulIntegerToFloat", Domain = "com.microsoft",
                Inputs = [dqa!.Input(0), dqb.Input(0), dqa.Input(1), dqb.Input(1), dqa.Input(2), bzp],
                Outputs = [mm.Outputs[0]], Fusion = "DQ-MatMul",
            };
        ReplaceGroup(mm, fused, [dqa, dqb], q);
        return true;
    }

    private bool FuseBinary(OrtNode op, Dictionary<string, List<OrtNode>> consumers, Dictionary<string, OrtNode> producers)
    {
        var dqa = ProducerDQ(op.Input(0), producers);
        var dqb = ProducerDQ(op.Input(1), producers);
        var q = SoleQConsumer(op, consumers);
        if (q is null || dqa == dqb) return false;
        if (!ActivationDq(dqa, op, consumers, out var aq) || !ActivationDq(dqb, op, consumers, out var bq) || ScalarQParams(q) is not { } yq) return false;
        if (aq.ZpType != yq.ZpType || bq.ZpType != yq.ZpType) return false;
        var fused = new OrtNode
        {
            Name = op.Name, Op = "QLinear" + op.Op, Domain = "com.microsoft",
            Inputs = [dqa!.Input(0), dqa.Input(1), dqa.Input(2), dqb!.Input(0), dqb.Input(1), dqb.Input(2), q.Input(1), q.Input(2)],
            Outputs = [q.Outputs[0]], Fusion = $"DQ-{op.Op}-Q",
        };
        ReplaceGroup(op, fused, [dqa, dqb], q);
        return true;
    }

    private bool FuseConcat(OrtNode op, Dictionary<string, List<OrtNode>> consumers, Dictionary<string, OrtNode> producers)
    {
        var q = SoleQConsumer(op, consumers);
        if (q is null || ScalarQParams(q) is not { } yq) return false;
        var dqs = op.Inputs.Select(i => ProducerDQ(i, producers)).ToList();
        if (dqs.Distinct().Count() != dqs.Count) return false;
        foreach (var d in dqs)
            if (!ActivationDq(d, op, consumers, out var dq) || dq.ZpType != yq.ZpType) return false;
        var inputs = new List<string> { q.Input(1), q.Input(2) };
        foreach (var d in dqs) inputs.AddRange([d!.Input(0), d.Input(1), d.Input(2)]);
        var fused = new OrtNode
        {
            Name = op.Name, Op = "QLinearConcat", Domain = "com.microsoft", Inputs = inputs, Outputs = [q.Outputs[0]],
            Attributes = op.Attributes, Fusion = "DQ*-Concat-Q",
        };
        ReplaceGroup(op, fused, dqs, q);
        return true;
    }

    private bool FuseUnary(OrtNode op, Dictionary<string, List<OrtNode>> consumers, Dictionary<string, OrtNode> producers)
    {
        var dq = ProducerDQ(op.Input(0), producers);
        var q = SoleQConsumer(op, consumers);
        if (q is null || !ActivationDq(dq, op, consumers, out var xq) || ScalarQParams(q) is not { } yq || xq.ZpType != yq.ZpType) return false;
        var fused = new OrtNode
        {
            Name = op.Name, Op = "QLinear" + op.Op, Domain = "com.microsoft",
            Inputs = [dq!.Input(0), dq.Input(1), dq.Input(2), q.Input(1), q.Input(2)], Outputs = [q.Outputs[0]],
            Attributes = op.Attributes, Fusion = $"DQ-{op.Op}-Q",
        };
        ReplaceGroup(op, fused, [dq], q);
        return true;
    }

    /// <summary>DropQDQNodesRules: DQ → (data movement op) → Q with equal qparams runs the op on the integers.</summary>
    private bool DropAround(OrtNode op, Dictionary<string, List<OrtNode>> consumers, Dictionary<string, OrtNode> producers)
    {
        var dq = ProducerDQ(op.Input(0), producers);
        var q = SoleQConsumer(op, consumers);
        if (q is null || !ActivationDq(dq, op, consumers, out var xq) || ScalarQParams(q) is not { } yq) return false;
        if (xq.ZpType != yq.ZpType || BitConverter.SingleToInt32Bits(xq.Scale) != BitConverter.SingleToInt32Bits(yq.Scale) || xq.Zp != yq.Zp) return false;
        if (op.Op is "MaxPool" or "ReduceMax" or "ReduceMin" && !(xq.Scale > 0)) return false;
        if (op.Op == "MaxPool" && op.Outputs.Count > 1 && op.Outputs[1].Length > 0) return false;
        int at = Nodes.IndexOf(op);
        var moved = new OrtNode
        {
            Name = op.Name, Op = op.Op, Domain = op.Domain, Inputs = [dq!.Input(0), .. op.Inputs.Skip(1)], Outputs = [q.Outputs[0]],
            Attributes = op.Attributes, Fusion = $"DQ-{op.Op}-Q dropped",
        };
        Nodes[at] = moved;
        moved.Origin = [dq.Name, op.Name, q.Name];
        Nodes.Remove(q);
        RemoveIfUnused(dq);
        Log.Add($"{op.Op} '{op.Name}' runs on the integers (equal Q/DQ qparams dropped)");
        return true;
    }

    /// <summary>QDQFinalCleanupTransformer: a DQ whose only consumer is a Q with the same qparams is removed with it.</summary>
    private void DropDqQPairs()
    {
        var consumers = Consumers();
        foreach (var dq in Nodes.Where(IsDQ).ToList())
        {
            if (!Nodes.Contains(dq) || IsGraphOutput(dq.Outputs[0])) continue;
            if (!consumers.TryGetValue(dq.Outputs[0], out var cs) || cs.Count != 1 || !IsQ(cs[0])) continue;
            var q = cs[0];
            if (ScalarQParams(dq) is not { } a || ScalarQParams(q) is not { } b) continue;
            if (a.ZpType != b.ZpType || a.Zp != b.Zp || BitConverter.SingleToInt32Bits(a.Scale) != BitConverter.SingleToInt32Bits(b.Scale)) continue;
            if (IsGraphOutput(q.Outputs[0]))
            {
                continue;
            }
            Replace(q.Outputs[0], dq.Inputs[0]);
            Nodes.Remove(q);
            Nodes.Remove(dq);
            Log.Add($"DQ '{dq.Name}' → Q '{q.Name}' with equal qparams removed");
            consumers = Consumers();
        }
    }
}
