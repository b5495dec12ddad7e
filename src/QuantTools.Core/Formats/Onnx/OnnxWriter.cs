using System.Text;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats.Onnx;

/// <summary>Protocol-buffers encoding of the fields QuantTools writes (keys, varints, length-delimited bytes, floats).</summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _s = new();

    public byte[] ToArray() => _s.ToArray();

    public ProtoWriter Varint(ulong v)
    {
        while (v >= 0x80)
        {
            _s.WriteByte((byte)(v | 0x80));
            v >>= 7;
        }
        _s.WriteByte((byte)v);
        return this;
    }

    private ProtoWriter Key(int field, WireType w) => Varint(((ulong)field << 3) | (ulong)w);

    public ProtoWriter Int(int field, long v) => Key(field, WireType.Varint).Varint((ulong)v);

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> b)
    {
        Key(field, WireType.LengthDelimited).Varint((ulong)b.Length);
        _s.Write(b);
        return this;
    }

    public ProtoWriter String(int field, string s) => Bytes(field, Encoding.UTF8.GetBytes(s));

    public ProtoWriter Message(int field, ProtoWriter m) => Bytes(field, m.ToArray());

    public ProtoWriter Float(int field, float f)
    {
        Key(field, WireType.Fixed32);
        Span<byte> b = stackalloc byte[4];
        BitConverter.TryWriteBytes(b, f);
        _s.Write(b);
        return this;
    }

    public ProtoWriter PackedInts(int field, IEnumerable<long> values)
    {
        var inner = new ProtoWriter();
        foreach (var v in values) inner.Varint((ulong)v);
        return Bytes(field, inner.ToArray());
    }

    public ProtoWriter Raw(ReadOnlySpan<byte> b)
    {
        _s.Write(b);
        return this;
    }
}

/// <summary>
/// Writes ONNX: small models built from nodes and initializers (for tests and generated cases), and a copy of a model
/// file with extra graph outputs (how per-node values are captured from ONNX Runtime, which returns only graph outputs).
/// </summary>
public static class OnnxWriter
{
    public sealed record Node(string OpType, string[] Inputs, string[] Outputs, string Name = "", string Domain = "",
        IReadOnlyDictionary<string, object>? Attributes = null);

    public sealed record Value(string Name, OnnxDataType ElemType, long[]? Shape);

    /// <summary>A model with one graph; initializers are written as raw_data. Attributes: long, float, string, long[], float[].</summary>
    public static byte[] Write(IEnumerable<Node> nodes, IEnumerable<(string Name, Tensor Value)> initializers, IEnumerable<Value> inputs,
        IEnumerable<Value> outputs, IReadOnlyDictionary<string, long>? opsets = null, long irVersion = 8, string graphName = "graph")
    {
        var g = new ProtoWriter();
        int i = 0;
        foreach (var n in nodes)
        {
            var m = new ProtoWriter();
            foreach (var x in n.Inputs) m.String(OnnxFields.Node.Input, x);
            foreach (var x in n.Outputs) m.String(OnnxFields.Node.Output, x);
            m.String(OnnxFields.Node.Name, n.Name.Length > 0 ? n.Name : $"{n.OpType}_{i}");
            m.String(OnnxFields.Node.OpType, n.OpType);
            if (n.Domain.Length > 0) m.String(OnnxFields.Node.Domain, n.Domain);
            foreach (var (k, v) in n.Attributes ?? new Dictionary<string, object>()) m.Message(OnnxFields.Node.Attribute, Attribute(k, v));
            g.Message(OnnxFields.Graph.Node, m);
            i++;
        }
        g.String(OnnxFields.Graph.Name, graphName);
        foreach (var (name, t) in initializers) g.Message(OnnxFields.Graph.Initializer, TensorProto(name, t));
        foreach (var v in inputs) g.Message(OnnxFields.Graph.Input, ValueInfo(v));
        foreach (var v in outputs) g.Message(OnnxFields.Graph.Output, ValueInfo(v));
        var model = new ProtoWriter().Int(OnnxFields.Model.IrVersion, irVersion).String(OnnxFields.Model.ProducerName, "QuantTools");
        foreach (var (domain, version) in opsets ?? new Dictionary<string, long> { [""] = 17 })
        {
            var o = new ProtoWriter();
            if (domain.Length > 0) o.String(OnnxFields.OpsetId.Domain, domain);
            o.Int(OnnxFields.OpsetId.Version, version);
            model.Message(OnnxFields.Model.OpsetImport, o);
        }
        model.Message(OnnxFields.Model.Graph, g);
        return model.ToArray();
    }

    private static ProtoWriter Attribute(string name, object v)
    {
        var a = new ProtoWriter().String(OnnxFields.Attribute.Name, name);
        switch (v)
        {
            case long l: a.Int(OnnxFields.Attribute.I, l).Int(OnnxFields.Attribute.Type, (int)OnnxAttributeType.Int); break;
            case int n: a.Int(OnnxFields.Attribute.I, n).Int(OnnxFields.Attribute.Type, (int)OnnxAttributeType.Int); break;
            case float f: a.Float(OnnxFields.Attribute.F, f).Int(OnnxFields.Attribute.Type, (int)OnnxAttributeType.Float); break;
            case string s: a.String(OnnxFields.Attribute.S, s).Int(OnnxFields.Attribute.Type, (int)OnnxAttributeType.String); break;
            case long[] ls: a.PackedInts(OnnxFields.Attribute.Ints, ls).Int(OnnxFields.Attribute.Type, (int)OnnxAttributeType.Ints); break;
            case int[] ns: a.PackedInts(OnnxFields.Attribute.Ints, ns.Select(x => (long)x)).Int(OnnxFields.Attribute.Type, (int)OnnxAttributeType.Ints); break;
            case float[] fs:
                foreach (var f in fs) a.Float(OnnxFields.Attribute.Floats, f);
                a.Int(OnnxFields.Attribute.Type, (int)OnnxAttributeType.Floats);
                break;
            case Tensor t: a.Message(OnnxFields.Attribute.T, TensorProto("", t)).Int(OnnxFields.Attribute.Type, (int)OnnxAttributeType.Tensor); break;
            default: throw new QuantToolsException(ErrorCode.InvalidArgument, $"attribute '{name}' of type {v.GetType().Name} cannot be written");
        }
        return a;
    }

    public static OnnxDataType TypeOf(DType d) => d switch
    {
        DType.Float32 => OnnxDataType.Float,
        DType.Float64 => OnnxDataType.Double,
        DType.Float16 => OnnxDataType.Float16,
        DType.BFloat16 => OnnxDataType.BFloat16,
        DType.UInt8 => OnnxDataType.UInt8,
        DType.Int8 => OnnxDataType.Int8,
        DType.Int16 => OnnxDataType.Int16,
        DType.Int32 => OnnxDataType.Int32,
        DType.Int64 => OnnxDataType.Int64,
        DType.Bool => OnnxDataType.Bool,
        _ => throw new QuantToolsException(ErrorCode.UnsupportedDType, $"{d.TorchName()} has no ONNX element type"),
    };

    private static ProtoWriter TensorProto(string name, Tensor t)
    {
        var w = new ProtoWriter();
        if (t.Shape.Length > 0) w.PackedInts(OnnxFields.Tensor.Dims, t.Shape.Select(d => (long)d));
        w.Int(OnnxFields.Tensor.DataType, (int)TypeOf(t.DType));
        if (name.Length > 0) w.String(OnnxFields.Tensor.Name, name);
        w.Bytes(OnnxFields.Tensor.RawData, t.AsBytes());
        return w;
    }

    private static ProtoWriter ValueInfo(Value v)
    {
        var tt = new ProtoWriter().Int(OnnxFields.TensorType.ElemType, (int)v.ElemType);
        if (v.Shape is { } s)
        {
            var shape = new ProtoWriter();
            foreach (var d in s)
            {
                var dim = new ProtoWriter();
                if (d >= 0) dim.Int(OnnxFields.Dimension.DimValue, d);
                else dim.String(OnnxFields.Dimension.DimParam, "N");
                shape.Message(OnnxFields.Shape.Dim, dim);
            }
            tt.Message(OnnxFields.TensorType.Shape, shape);
        }
        var type = new ProtoWriter().Message(OnnxFields.TypeProto.TensorType, tt);
        return new ProtoWriter().String(OnnxFields.ValueInfo.Name, v.Name).Message(OnnxFields.ValueInfo.Type, type);
    }

    /// <summary>
    /// The model bytes with <paramref name="extra"/> appended to the graph's outputs (element type only, no shape). Every
    /// other field is copied byte for byte.
    /// </summary>
    public static byte[] WithExtraOutputs(byte[] model, IEnumerable<Value> extra, string source = "model")
    {
        var outp = new ProtoWriter();
        var r = new ProtoReader(model, 0, "ModelProto", source, 0);
        bool sawGraph = false;
        while (!r.End)
        {
            int start = r.FileOffset;
            var (f, w) = r.ReadKey();
            if (f == OnnxFields.Model.Graph && w == WireType.LengthDelimited && !sawGraph)
            {
                sawGraph = true;
                var (off, len) = r.ReadLengthDelimited();
                var g = new ProtoWriter().Raw(model.AsSpan(off, len));
                foreach (var v in extra) g.Message(OnnxFields.Graph.Output, ValueInfo(v));
                outp.Message(OnnxFields.Model.Graph, g);
                continue;
            }
            r.Skip(w);
            outp.Raw(model.AsSpan(start, r.FileOffset - start));
        }
        if (!sawGraph) throw new QuantToolsException(ErrorCode.CorruptFile, "no graph to add outputs to", source);
        return outp.ToArray();
    }
}
