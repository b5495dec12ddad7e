using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats.Onnx;

/// <summary>
/// Reads .onnx files with a hand-written protobuf wire reader (<see cref="ProtoReader"/>) rather than generated
/// code: every length, count and dimension is checked against the bytes actually present before anything is
/// allocated, tensor data is not copied until used, nesting depth is bounded, and external data is opened only
/// inside the model's own folder, within the file's bounds. Malformed input is a <see cref="QuantToolsException"/>
/// (CorruptFile) naming the file, the message and the byte offset; a graph whose nodes form a cycle, that uses a
/// value nobody produces, or produces a value twice is rejected with the node's name.
/// </summary>
public static class OnnxReader
{
    /// <summary>Rank above which a tensor is refused (ONNX sets none; real models stay far below).</summary>
    public const int MaxRank = 32;

    public static OnnxModel Load(string path)
    {
        var full = Path.GetFullPath(path);
        byte[] bytes;
        try
        {
            var info = new FileInfo(full);
            if (!info.Exists) throw new QuantToolsException(ErrorCode.IoError, "file not found", path);
            if (info.Length > int.MaxValue)
                throw new QuantToolsException(ErrorCode.CorruptFile, $"{info.Length} bytes is beyond protobuf's 2 GiB message limit; large models keep tensors as external data", path);
            bytes = File.ReadAllBytes(full);
        }
        catch (IOException e)
        {
            throw new QuantToolsException(ErrorCode.IoError, e.Message, path, e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new QuantToolsException(ErrorCode.IoError, e.Message, path, e);
        }
        return Parse(bytes, full);
    }

    /// <summary>Parses model bytes; <paramref name="source"/> names the file (and its folder resolves external data).</summary>
    public static OnnxModel Parse(byte[] bytes, string source)
    {
        var ctx = new Context(bytes, source);
        var r = new ProtoReader(bytes, 0, "ModelProto", source, 0);
        long ir = 0;
        string producer = "", producerVersion = "";
        var opsets = new Dictionary<string, long>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        OnnxGraph? graph = null;
        while (!r.End)
        {
            var (f, w) = r.ReadKey();
            switch (f)
            {
                case OnnxFields.Model.IrVersion when w == WireType.Varint: ir = r.ReadInt64(); break;
                case OnnxFields.Model.ProducerName when w == WireType.LengthDelimited: producer = r.ReadString(); break;
                case OnnxFields.Model.ProducerVersion when w == WireType.LengthDelimited: producerVersion = r.ReadString(); break;
                case OnnxFields.Model.OpsetImport when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("OperatorSetIdProto");
                    string domain = "";
                    long version = 0;
                    while (!m.End)
                    {
                        var (g, gw) = m.ReadKey();
                        if (g == OnnxFields.OpsetId.Domain && gw == WireType.LengthDelimited) domain = m.ReadString();
                        else if (g == OnnxFields.OpsetId.Version && gw == WireType.Varint) version = m.ReadInt64();
                        else m.Skip(gw);
                    }
                    opsets[domain] = version;
                    break;
                }
                case OnnxFields.Model.MetadataProps when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("StringStringEntryProto");
                    var (k, v) = ReadEntry(ref m);
                    metadata[k] = v;
                    break;
                }
                case OnnxFields.Model.Graph when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("GraphProto");
                    graph = ReadGraph(ref m, ctx, topLevel: true);
                    break;
                }
                default: r.Skip(w); break;
            }
        }
        if (graph is null)
            throw new QuantToolsException(ErrorCode.CorruptFile, "no graph (ModelProto field 7); is this an ONNX model?", source);
        if (ir <= 0)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"ir_version {ir}; an ONNX model states its IR version (field 1)", source);
        return new OnnxModel
        {
            Source = source, IrVersion = ir, ProducerName = producer, ProducerVersion = producerVersion,
            Opsets = opsets, Graph = graph, Metadata = metadata,
        };
    }

    private sealed class Context(byte[] bytes, string source)
    {
        public readonly byte[] Bytes = bytes;
        public readonly string Source = source;
        public readonly string Folder = Path.GetDirectoryName(Path.GetFullPath(source)) ?? ".";
    }

    private static (string Key, string Value) ReadEntry(ref ProtoReader m)
    {
        string k = "", v = "";
        while (!m.End)
        {
            var (g, gw) = m.ReadKey();
            if (g == OnnxFields.StringStringEntry.Key && gw == WireType.LengthDelimited) k = m.ReadString();
            else if (g == OnnxFields.StringStringEntry.Value && gw == WireType.LengthDelimited) v = m.ReadString();
            else m.Skip(gw);
        }
        return (k, v);
    }

    private static OnnxGraph ReadGraph(ref ProtoReader r, Context ctx, bool topLevel)
    {
        var nodes = new List<OnnxNode>();
        var inits = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        var inputs = new List<OnnxValueInfo>();
        var outputs = new List<OnnxValueInfo>();
        var valueInfo = new List<OnnxValueInfo>();
        string name = "";
        while (!r.End)
        {
            var (f, w) = r.ReadKey();
            switch (f)
            {
                case OnnxFields.Graph.Name when w == WireType.LengthDelimited: name = r.ReadString(); break;
                case OnnxFields.Graph.Node when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("NodeProto");
                    nodes.Add(ReadNode(ref m, ctx, nodes.Count));
                    break;
                }
                case OnnxFields.Graph.Initializer when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("TensorProto");
                    var t = ReadTensor(ref m, ctx);
                    if (t.Name.Length == 0) throw r.Error("an initializer has no name");
                    if (!inits.TryAdd(t.Name, t)) throw r.Error($"initializer '{t.Name}' appears twice");
                    break;
                }
                case OnnxFields.Graph.SparseInitializer when w == WireType.LengthDelimited:
                    throw new QuantToolsException(ErrorCode.NotSupported, "sparse initializers are not supported", ctx.Source);
                case OnnxFields.Graph.Input when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("ValueInfoProto");
                    inputs.Add(ReadValueInfo(ref m));
                    break;
                }
                case OnnxFields.Graph.Output when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("ValueInfoProto");
                    outputs.Add(ReadValueInfo(ref m));
                    break;
                }
                case OnnxFields.Graph.ValueInfo when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("ValueInfoProto");
                    valueInfo.Add(ReadValueInfo(ref m));
                    break;
                }
                default: r.Skip(w); break;
            }
        }
        // IR < 4 lists initializers among the inputs too; what a caller feeds is the rest
        var fed = inputs.Where(i => !inits.ContainsKey(i.Name)).ToList();
        var g = new OnnxGraph { Name = name, Nodes = nodes, Initializers = inits, Inputs = fed, Outputs = outputs, ValueInfo = valueInfo };
        if (topLevel) g = new OnnxGraph
        {
            Name = name, Nodes = TopologicalOrder(g, ctx.Source), Initializers = inits, Inputs = fed, Outputs = outputs, ValueInfo = valueInfo,
        };
        return g;
    }

    /// <summary>
    /// The nodes in an order where each input is produced before use (file order when it already is, as the spec
    /// requires). A value produced twice, an input nobody produces, or a cycle is an error naming the node.
    /// </summary>
    private static IReadOnlyList<OnnxNode> TopologicalOrder(OnnxGraph g, string source)
    {
        var producer = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var i in g.Inputs) producer[i.Name] = -1;
        foreach (var k in g.Initializers.Keys) producer[k] = -1;
        for (int n = 0; n < g.Nodes.Count; n++)
            foreach (var o in g.Nodes[n].Outputs)
            {
                if (o.Length == 0) continue;
                if (!producer.TryAdd(o, n))
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"value '{o}' is produced twice (node '{g.Nodes[n].Name}' and {(producer[o] < 0 ? "a graph input or initializer" : $"node '{g.Nodes[producer[o]].Name}'")})", source);
            }
        var pending = new int[g.Nodes.Count];
        var users = new List<int>[g.Nodes.Count];
        for (int n = 0; n < g.Nodes.Count; n++) users[n] = [];
        for (int n = 0; n < g.Nodes.Count; n++)
        {
            foreach (var i in g.Nodes[n].Inputs)
            {
                if (i.Length == 0) continue;
                if (!producer.TryGetValue(i, out var p))
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"node '{g.Nodes[n].Name}' ({g.Nodes[n].OpType}) reads '{i}', which no node, input or initializer provides", source);
                if (p >= 0) { pending[n]++; users[p].Add(n); }
            }
        }
        foreach (var o in g.Outputs)
            if (!producer.ContainsKey(o.Name))
                throw new QuantToolsException(ErrorCode.CorruptFile, $"graph output '{o.Name}' is not produced by any node", source);
        // Kahn's algorithm, taking the lowest index first so that a sorted file keeps its order
        var ready = new PriorityQueue<int, int>();
        for (int n = 0; n < pending.Length; n++) if (pending[n] == 0) ready.Enqueue(n, n);
        var order = new List<OnnxNode>(g.Nodes.Count);
        while (ready.TryDequeue(out var n, out _))
        {
            order.Add(g.Nodes[n]);
            foreach (var u in users[n]) if (--pending[u] == 0) ready.Enqueue(u, u);
        }
        if (order.Count != g.Nodes.Count)
        {
            var stuck = Enumerable.Range(0, pending.Length).First(n => pending[n] > 0);
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"the graph has a cycle: node '{g.Nodes[stuck].Name}' ({g.Nodes[stuck].OpType}) depends on its own output", source);
        }
        return order;
    }

    private static OnnxNode ReadNode(ref ProtoReader r, Context ctx, int index)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        var attrs = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        string name = "", op = "", domain = "";
        while (!r.End)
        {
            var (f, w) = r.ReadKey();
            switch (f)
            {
                case OnnxFields.Node.Input when w == WireType.LengthDelimited: inputs.Add(r.ReadString()); break;
                case OnnxFields.Node.Output when w == WireType.LengthDelimited: outputs.Add(r.ReadString()); break;
                case OnnxFields.Node.Name when w == WireType.LengthDelimited: name = r.ReadString(); break;
                case OnnxFields.Node.OpType when w == WireType.LengthDelimited: op = r.ReadString(); break;
                case OnnxFields.Node.Domain when w == WireType.LengthDelimited: domain = r.ReadString(); break;
                case OnnxFields.Node.Attribute when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("AttributeProto");
                    var a = ReadAttribute(ref m, ctx);
                    if (!attrs.TryAdd(a.Name, a)) throw r.Error($"attribute '{a.Name}' appears twice in node '{name}'");
                    break;
                }
                default: r.Skip(w); break;
            }
        }
        if (op.Length == 0) throw r.Error($"node #{index} '{name}' has no op_type");
        if (domain == "ai.onnx") domain = "";
        return new OnnxNode
        {
            Name = name.Length > 0 ? name : $"{op}_{index}", OpType = op, Domain = domain, Inputs = inputs, Outputs = outputs, Attributes = attrs,
        };
    }

    private static OnnxAttribute ReadAttribute(ref ProtoReader r, Context ctx)
    {
        string name = "", s = "";
        var type = OnnxAttributeType.Undefined;
        float fv = 0;
        long iv = 0;
        OnnxTensor? t = null;
        OnnxGraph? g = null;
        var floats = new List<float>();
        var ints = new List<long>();
        var strings = new List<string>();
        while (!r.End)
        {
            var (f, w) = r.ReadKey();
            switch (f)
            {
                case OnnxFields.Attribute.Name when w == WireType.LengthDelimited: name = r.ReadString(); break;
                case OnnxFields.Attribute.Type when w == WireType.Varint: type = (OnnxAttributeType)r.ReadInt32(); break;
                case OnnxFields.Attribute.F when w == WireType.Fixed32: fv = r.ReadFloat(); break;
                case OnnxFields.Attribute.I when w == WireType.Varint: iv = r.ReadInt64(); break;
                case OnnxFields.Attribute.S when w == WireType.LengthDelimited:
                {
                    // bytes in the schema; ONNX uses them for text (auto_pad, mode, ...)
                    var (off, len) = r.ReadLengthDelimited();
                    s = System.Text.Encoding.UTF8.GetString(r.Slice(off, len));
                    break;
                }
                case OnnxFields.Attribute.T when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("TensorProto");
                    t = ReadTensor(ref m, ctx);
                    break;
                }
                case OnnxFields.Attribute.G when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("GraphProto");
                    g = ReadGraph(ref m, ctx, topLevel: false);
                    break;
                }
                case OnnxFields.Attribute.Floats: r.ReadRepeatedFloat(w, floats); break;
                case OnnxFields.Attribute.Ints: r.ReadRepeatedInt64(w, ints); break;
                case OnnxFields.Attribute.Strings when w == WireType.LengthDelimited:
                {
                    var (off, len) = r.ReadLengthDelimited();
                    strings.Add(System.Text.Encoding.UTF8.GetString(r.Slice(off, len)));
                    break;
                }
                case OnnxFields.Attribute.Graphs when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("GraphProto");
                    ReadGraph(ref m, ctx, topLevel: false);
                    break;
                }
                default: r.Skip(w); break;
            }
        }
        if (name.Length == 0) throw r.Error("an attribute has no name");
        if (type == OnnxAttributeType.Undefined)
        {
            // IR < 3 files may omit the type: infer it from the field that is set
            type = t is not null ? OnnxAttributeType.Tensor : g is not null ? OnnxAttributeType.Graph
                : ints.Count > 0 ? OnnxAttributeType.Ints : floats.Count > 0 ? OnnxAttributeType.Floats
                : strings.Count > 0 ? OnnxAttributeType.Strings : s.Length > 0 ? OnnxAttributeType.String
                : fv != 0 ? OnnxAttributeType.Float : OnnxAttributeType.Int;
        }
        return new OnnxAttribute
        {
            Name = name, Type = type, F = fv, I = iv, S = s, T = t, G = g,
            Floats = floats.ToArray(), Ints = ints.ToArray(), Strings = strings.ToArray(),
        };
    }

    private static OnnxValueInfo ReadValueInfo(ref ProtoReader r)
    {
        string name = "";
        var elem = OnnxDataType.Undefined;
        long?[]? shape = null;
        while (!r.End)
        {
            var (f, w) = r.ReadKey();
            if (f == OnnxFields.ValueInfo.Name && w == WireType.LengthDelimited) name = r.ReadString();
            else if (f == OnnxFields.ValueInfo.Type && w == WireType.LengthDelimited)
            {
                var tp = r.ReadMessage("TypeProto");
                while (!tp.End)
                {
                    var (g, gw) = tp.ReadKey();
                    if (g != OnnxFields.TypeProto.TensorType || gw != WireType.LengthDelimited) { tp.Skip(gw); continue; }
                    var tt = tp.ReadMessage("TypeProto.Tensor");
                    while (!tt.End)
                    {
                        var (h, hw) = tt.ReadKey();
                        if (h == OnnxFields.TensorType.ElemType && hw == WireType.Varint) elem = (OnnxDataType)tt.ReadInt32();
                        else if (h == OnnxFields.TensorType.Shape && hw == WireType.LengthDelimited)
                        {
                            var sh = tt.ReadMessage("TensorShapeProto");
                            var dims = new List<long?>();
                            while (!sh.End)
                            {
                                var (d, dw) = sh.ReadKey();
                                if (d != OnnxFields.Shape.Dim || dw != WireType.LengthDelimited) { sh.Skip(dw); continue; }
                                var dm = sh.ReadMessage("TensorShapeProto.Dimension");
                                long? v = null;
                                while (!dm.End)
                                {
                                    var (e, ew) = dm.ReadKey();
                                    if (e == OnnxFields.Dimension.DimValue && ew == WireType.Varint) v = dm.ReadInt64();
                                    else dm.Skip(ew);
                                }
                                dims.Add(v is >= 0 ? v : null);
                                if (dims.Count > MaxRank) throw sh.Error($"value '{name}' has more than {MaxRank} dimensions");
                            }
                            shape = dims.ToArray();
                        }
                        else tt.Skip(hw);
                    }
                }
            }
            else r.Skip(w);
        }
        return new OnnxValueInfo(name, elem, shape);
    }

    private static OnnxTensor ReadTensor(ref ProtoReader r, Context ctx)
    {
        var dims = new List<long>();
        var type = OnnxDataType.Undefined;
        string name = "";
        (int Off, int Len)? raw = null;
        var floatData = new List<float>();
        var int32Data = new List<long>();
        var int64Data = new List<long>();
        var uint64Data = new List<long>();
        var doubleData = new List<double>();
        var external = new Dictionary<string, string>(StringComparer.Ordinal);
        long location = 0;
        int start = r.FileOffset;
        while (!r.End)
        {
            var (f, w) = r.ReadKey();
            switch (f)
            {
                case OnnxFields.Tensor.Dims:
                    r.ReadRepeatedInt64(w, dims);
                    if (dims.Count > MaxRank) throw r.Error($"tensor '{name}' has more than {MaxRank} dimensions");
                    break;
                case OnnxFields.Tensor.DataType when w == WireType.Varint: type = (OnnxDataType)r.ReadInt32(); break;
                case OnnxFields.Tensor.Name when w == WireType.LengthDelimited: name = r.ReadString(); break;
                case OnnxFields.Tensor.RawData when w == WireType.LengthDelimited: raw = r.ReadLengthDelimited(); break;
                case OnnxFields.Tensor.FloatData: r.ReadRepeatedFloat(w, floatData); break;
                case OnnxFields.Tensor.Int32Data: r.ReadRepeatedInt64(w, int32Data); break;
                case OnnxFields.Tensor.Int64Data: r.ReadRepeatedInt64(w, int64Data); break;
                case OnnxFields.Tensor.Uint64Data: r.ReadRepeatedInt64(w, uint64Data); break;
                case OnnxFields.Tensor.DoubleData: r.ReadRepeatedDouble(w, doubleData); break;
                case OnnxFields.Tensor.DataLocation when w == WireType.Varint: location = r.ReadInt64(); break;
                case OnnxFields.Tensor.ExternalData when w == WireType.LengthDelimited:
                {
                    var m = r.ReadMessage("StringStringEntryProto");
                    var (k, v) = ReadEntry(ref m);
                    external[k] = v;
                    break;
                }
                case OnnxFields.Tensor.Segment when w == WireType.LengthDelimited:
                    throw r.Error($"tensor '{name}' is segmented (TensorProto.segment), which ONNX runtimes do not accept");
                default: r.Skip(w); break;
            }
        }
        string target = $"tensor '{name}'";
        var dimsArr = dims.ToArray();
        int count;
        try
        {
            count = Tensor.CheckedNumel(dimsArr, ctx.Source);
        }
        catch (QuantToolsException e)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile, $"{target} at byte {start}: {e.Message.Replace(ctx.Source + ": ", "")}", ctx.Source);
        }
        var dtype = DenseType(type);
        int es = dtype?.ElementSize() ?? 0;
        var bytes = ctx.Bytes;
        Func<Tensor> decode;
        QuantToolsException Bad(string m) => new(ErrorCode.CorruptFile, $"{target} [{string.Join(", ", dimsArr)}] {type}: {m}", ctx.Source);
        if (location == 1 || external.Count > 0)
        {
            if (dtype is null) throw Unsupported(type, target, ctx.Source);
            var (file, offset, length) = ResolveExternal(external, ctx, target);
            long want = (long)count * es;
            if (length is { } l && l != want) throw Bad($"external data length {l} does not match the shape ({want} bytes)");
            long fileLen = new FileInfo(file).Length;
            if (offset > fileLen || want > fileLen - offset)
                throw Bad($"external data [{offset}, {offset + want}) lies beyond the end of {Path.GetFileName(file)} ({fileLen} bytes)");
            decode = () => ReadExternal(file, offset, (int)want, dtype.Value, dimsArr, target);
        }
        else if (raw is { } rr)
        {
            if (dtype is null) throw Unsupported(type, target, ctx.Source);
            if ((long)count * es != rr.Len) throw Bad($"raw_data holds {rr.Len} bytes, the shape needs {(long)count * es}");
            decode = () => Tensor.FromBytes(dtype.Value, ToInt(dimsArr), bytes.AsSpan(rr.Off, rr.Len));
        }
        else
        {
            int have = type switch
            {
                OnnxDataType.Float => floatData.Count,
                OnnxDataType.Double => doubleData.Count,
                OnnxDataType.Int64 => int64Data.Count,
                OnnxDataType.UInt64 or OnnxDataType.UInt32 => uint64Data.Count,
                _ => int32Data.Count,
            };
            if (dtype is null)
            {
                // a string or other tensor QuantTools does not decode: keep its shape, refuse its values when asked
                var t0 = type;
                decode = () => throw Unsupported(t0, target, ctx.Source);
            }
            else
            {
                if (have != count) throw Bad($"holds {have} values, the shape needs {count}");
                var d = dtype.Value;
                var fd = floatData; var i32 = int32Data; var i64 = int64Data; var dd = doubleData;
                var t1 = type;
                decode = () => FromTyped(t1, d, ToInt(dimsArr), fd, i32, i64, dd, target, ctx.Source);
            }
        }
        return new OnnxTensor { Name = name, DataType = type, Dims = dimsArr, Count = count, Decode = decode };
    }

    private static int[] ToInt(long[] dims) => dims.Select(d => (int)d).ToArray();

    private static QuantToolsException Unsupported(OnnxDataType t, string target, string source) =>
        new(ErrorCode.UnsupportedDType, $"{target}: element type {t} is not supported", source);

    /// <summary>The dense dtype holding an ONNX element type, or null when QuantTools has none for it.</summary>
    public static DType? DenseType(OnnxDataType t) => t switch
    {
        OnnxDataType.Float => DType.Float32,
        OnnxDataType.Double => DType.Float64,
        OnnxDataType.Float16 => DType.Float16,
        OnnxDataType.BFloat16 => DType.BFloat16,
        OnnxDataType.UInt8 => DType.UInt8,
        OnnxDataType.Int8 => DType.Int8,
        OnnxDataType.Int16 => DType.Int16,
        OnnxDataType.Int32 => DType.Int32,
        OnnxDataType.Int64 => DType.Int64,
        OnnxDataType.Bool => DType.Bool,
        _ => null,
    };

    private static Tensor FromTyped(OnnxDataType t, DType d, int[] shape, List<float> fd, List<long> i32, List<long> i64,
        List<double> dd, string target, string source)
    {
        int n = (int)Tensor.CheckedNumel(shape);
        switch (d)
        {
            case DType.Float32: return new Tensor(d, shape, fd.ToArray());
            case DType.Float64: return new Tensor(d, shape, dd.ToArray());
            case DType.Int64: return new Tensor(d, shape, i64.ToArray());
        }
        // int32_data holds int32, int16, int8, uint8, bool and the bits of float16 / bfloat16
        var res = Tensor.Zeros(d, shape);
        for (int i = 0; i < n; i++)
        {
            long v = i32[i];
            bool fits = d switch
            {
                DType.UInt8 => v is >= 0 and <= 255,
                DType.Int8 => v is >= -128 and <= 127,
                DType.Int16 => v is >= short.MinValue and <= short.MaxValue,
                DType.Float16 or DType.BFloat16 => v is >= 0 and <= ushort.MaxValue,
                DType.Bool => v is 0 or 1,
                _ => v is >= int.MinValue and <= int.MaxValue,
            };
            if (!fits)
                throw new QuantToolsException(ErrorCode.CorruptFile, $"{target}: int32_data[{i}] = {v} does not fit {t}", source);
            switch (d)
            {
                case DType.UInt8: ((byte[])res.Data)[i] = (byte)v; break;
                case DType.Int8: ((sbyte[])res.Data)[i] = (sbyte)v; break;
                case DType.Int16: ((short[])res.Data)[i] = (short)v; break;
                case DType.Int32: ((int[])res.Data)[i] = (int)v; break;
                case DType.Bool: ((bool[])res.Data)[i] = v != 0; break;
                case DType.Float16: ((Half[])res.Data)[i] = BitConverter.UInt16BitsToHalf((ushort)v); break;
                case DType.BFloat16: ((ushort[])res.Data)[i] = (ushort)v; break;
            }
        }
        return res;
    }

    /// <summary>
    /// Resolves an external-data location to a file inside the model's folder: the location must be a relative path
    /// without <c>..</c> segments, must not be rooted, and its full path (links resolved) must stay inside the folder.
    /// </summary>
    private static (string File, long Offset, long? Length) ResolveExternal(Dictionary<string, string> kv, Context ctx, string target)
    {
        QuantToolsException Bad(string m) => new(ErrorCode.CorruptFile, $"{target}: external data {m}", ctx.Source);
        if (!kv.TryGetValue("location", out var loc) || loc.Length == 0) throw Bad("has no 'location'");
        if (loc.Contains('\0')) throw Bad("location contains a NUL character");
        var parts = loc.Replace('\\', '/').Split('/');
        if (Path.IsPathRooted(loc) || loc.StartsWith('/') || loc.StartsWith('\\') || (loc.Length > 1 && loc[1] == ':') || parts.Any(p => p == ".."))
            throw Bad($"location '{loc}' leaves the model's folder; only files beside the model (or below it) are read");
        var folder = ctx.Folder.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        var full = Path.GetFullPath(Path.Combine(ctx.Folder, Path.Combine(parts)));
        if (!full.StartsWith(folder, StringComparison.Ordinal)) throw Bad($"location '{loc}' resolves outside the model's folder");
        if (!File.Exists(full)) throw Bad($"file '{loc}' not found beside the model");
        try
        {
            var linked = new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true);
            if (linked is not null && !Path.GetFullPath(linked.FullName).StartsWith(folder, StringComparison.Ordinal))
                throw Bad($"location '{loc}' is a link to a file outside the model's folder");
        }
        catch (IOException e)
        {
            throw Bad($"location '{loc}' cannot be resolved: {e.Message}");
        }
        long offset = 0;
        long? length = null;
        if (kv.TryGetValue("offset", out var o) && (!long.TryParse(o, out offset) || offset < 0)) throw Bad($"offset '{o}' is not a non-negative integer");
        if (kv.TryGetValue("length", out var l))
        {
            if (!long.TryParse(l, out var len) || len < 0) throw Bad($"length '{l}' is not a non-negative integer");
            length = len;
        }
        return (full, offset, length);
    }

    private static Tensor ReadExternal(string file, long offset, int length, DType dtype, long[] dims, string target)
    {
        var buf = new byte[length];
        try
        {
            using var fs = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (offset + length > fs.Length)
                throw new QuantToolsException(ErrorCode.CorruptFile, $"{target}: external data shrank below offset {offset} + {length}", file);
            fs.Seek(offset, SeekOrigin.Begin);
            fs.ReadExactly(buf);
        }
        catch (IOException e)
        {
            throw new QuantToolsException(ErrorCode.IoError, $"{target}: {e.Message}", file, e);
        }
        return Tensor.FromBytes(dtype, ToInt(dims), buf);
    }
}
