using System.Numerics;
using QuantTools.Core.Formats.Pickle;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats.Torch;

/// <summary>
/// The allow-list for PyTorch checkpoints, in the spirit of <c>torch.load(weights_only=True)</c>: tensor and
/// quantized-tensor rebuild functions, storage classes, dtypes, qschemes, <c>torch.Size</c>, TorchScript
/// <c>__torch__.*</c> classes and torchbind packed params (as plain <see cref="PickleObject"/>s with their state),
/// TorchScript list builders. Tensors are materialized as <see cref="Tensor"/> / <see cref="QTensor"/> while reading.
/// </summary>
public sealed class TorchPickleResolver : PickleResolver
{
    private readonly StorageSource? _source;
    private readonly string? _target;
    private readonly LoadBudget _budget;
    private readonly Dictionary<string, TorchStorage> _storages = new(StringComparer.Ordinal);

    /// <summary>Placeholder for tensors while storages are not yet known (first pass over a legacy file).</summary>
    internal static readonly object Deferred = new();

    /// <summary>Storage keys in first-seen order, with dtype and element count (legacy files need them to find the blobs).</summary>
    internal List<(string Key, DType DType, long Numel)> SeenStorages { get; } = new();

    internal TorchPickleResolver(StorageSource? source, string? target, LoadBudget budget)
    {
        _source = source;
        _target = target;
        _budget = budget;
    }

    private static readonly HashSet<string> OtherDTypes = new(StringComparer.Ordinal)
    {
        "complex32", "complex64", "complex128", "cfloat", "cdouble", "uint16", "uint32", "uint64", "float8_e4m3fn",
        "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "bits8", "bits16",
        "quint2x4", "int1", "int2", "int3", "int4", "int5", "int6", "int7", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
    };

    private static readonly HashSet<string> QSchemeNames = new(StringComparer.Ordinal)
        { "per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric", "per_channel_affine_float_qparams" };

    public override object ResolveGlobal(string module, string name)
    {
        switch (module)
        {
            case "torch" or "torch.cuda" or "torch.storage" when name.EndsWith("Storage", StringComparison.Ordinal):
                if (TorchStorageType.ByName.TryGetValue(name, out var sdt)) return new TorchStorageType(name, sdt);
                if (TorchStorageType.Unsupported.Contains(name)) return new PyGlobal(module, name);
                break;
            case "torch":
                if (QSchemeNames.Contains(name)) return QSchemeInfo.Parse(name);
                if (name is "Size" or "device" or "Tensor") return new PyGlobal(module, name);
                if (IsDTypeName(name)) return name == "quint2x4" ? DType.QUInt2x4 : DTypeInfo.Parse(name);
                if (OtherDTypes.Contains(name)) return new PyGlobal(module, name);
                break;
            case "torch._utils" when name is "_rebuild_tensor" or "_rebuild_tensor_v2" or "_rebuild_tensor_v3" or "_rebuild_qtensor"
                                         or "_rebuild_parameter" or "_rebuild_parameter_with_state":
            case "torch._tensor" when name is "_rebuild_from_type_v2" or "_rebuild_from_type":
            case "torch.nn.parameter" when name is "Parameter":
            case "torch.jit._pickle" when name is "build_intlist" or "build_doublelist" or "build_boollist" or "build_tensorlist"
                                            or "build_complexlist" or "restore_type_tag":
                return new PyGlobal(module, name);
            case "torch.classes.quantized" or "__torch__.torch.classes.quantized":
                return new PyGlobal(module, name);
        }
        if (module == "__torch__" || module.StartsWith("__torch__.", StringComparison.Ordinal))
            return new PyGlobal(module, name);
        return base.ResolveGlobal(module, name);
    }

    private static bool IsDTypeName(string name)
    {
        try
        {
            DTypeInfo.Parse(name);
            return true;
        }
        catch (QuantToolsException)
        {
            return name == "quint2x4";
        }
    }

    private static bool IsClass(PyGlobal g) =>
        g.Module == "__torch__" || g.Module.StartsWith("__torch__.", StringComparison.Ordinal) || g.Module == "torch.classes.quantized";

    public override object? New(object? cls, object?[] args) =>
        cls is PyGlobal g && IsClass(g) ? new PickleObject(g, args) : base.New(cls, args);

    public override object? Build(object? target, object? state) =>
        target is Tensor or QTensor || ReferenceEquals(target, Deferred) ? target : base.Build(target, state);

    public override object? Call(object? callable, object?[] args)
    {
        if (callable is not PyGlobal g) return base.Call(callable, args);
        if (IsClass(g)) return new PickleObject(g, args);
        switch (g.FullName)
        {
            case "torch._utils._rebuild_tensor":
                Need(args, 4, g);
                return RebuildTensor(args[0], args[1], args[2], args[3], null);
            case "torch._utils._rebuild_tensor_v2":
                Need(args, 4, g);
                return RebuildTensor(args[0], args[1], args[2], args[3], null);
            case "torch._utils._rebuild_tensor_v3":
                Need(args, 7, g);
                return RebuildTensor(args[0], args[1], args[2], args[3], args[6]);
            case "torch._utils._rebuild_qtensor":
                Need(args, 5, g);
                return RebuildQTensor(args[0], args[1], args[2], args[3], args[4]);
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                Need(args, 1, g);
                return CheckTensor(args[0], g);
            case "torch._tensor._rebuild_from_type_v2":
            case "torch._tensor._rebuild_from_type":
                Need(args, 3, g);
                if (args[2] is not object?[] inner) throw Malformed($"{g.FullName} arguments must be a tuple");
                if (args[1] is not PyGlobal { FullName: "torch.Tensor" or "torch.nn.parameter.Parameter" })
                    throw Malformed($"{g.FullName} of type {Describe(args[1])} is not supported (expected torch.Tensor or Parameter)");
                return Call(args[0], inner);
            case "torch.Size":
                if (args.Length == 0) return Array.Empty<object?>();
                return Iterate(args[0], "torch.Size argument").ToArray();
            case "torch.device":
                Need(args, 1, g);
                return args.Length > 1 && args[1] is long idx ? $"{args[0]}:{idx}" : args[0]?.ToString();
            case "torch.jit._pickle.build_intlist":
            case "torch.jit._pickle.build_doublelist":
            case "torch.jit._pickle.build_boollist":
            case "torch.jit._pickle.build_tensorlist":
            case "torch.jit._pickle.build_complexlist":
                Need(args, 1, g);
                return args[0] is List<object?> l ? l : throw Malformed($"{g.FullName} needs a list, got {Describe(args[0])}");
            case "torch.jit._pickle.restore_type_tag":
                Need(args, 1, g);
                return args[0];
            case "torch.nn.parameter.Parameter":
                Need(args, 1, g);
                return CheckTensor(args[0], g);
        }
        return base.Call(callable, args);
    }

    private static void Need(object?[] args, int n, PyGlobal g)
    {
        if (args.Length < n) throw Malformed($"{g.FullName} takes at least {n} arguments, got {args.Length}");
    }

    private static object CheckTensor(object? v, PyGlobal g) =>
        v is Tensor or QTensor || ReferenceEquals(v, Deferred) ? v : throw Malformed($"{g.FullName} needs a tensor, got {Describe(v)}");

    public override object? PersistentLoad(object? pid)
    {
        if (pid is not object?[] t || t.Length < 5 || t[0] is not "storage")
            throw Malformed($"persistent id {Describe(pid)} is not a ('storage', type, key, location, numel) tuple");
        if (t[1] is PyGlobal unsupported)
            throw new QuantToolsException(ErrorCode.UnsupportedDType, $"storage class {unsupported.FullName} holds a dtype QuantTools does not read", _target);
        if (t[1] is not TorchStorageType type) throw Malformed($"persistent id names {Describe(t[1])}, not a storage class");
        var key = t[2] switch { string s => s, long l => l.ToString(), _ => throw Malformed($"storage key must be a string, got {Describe(t[2])}") };
        var location = t[3] as string ?? "cpu";
        if (t[4] is not long numel || numel < 0) throw Malformed($"storage '{key}' element count must be a non-negative int, got {Describe(t[4])}");
        object? view = t.Length > 5 ? t[5] : null;

        if (!_storages.TryGetValue(key, out var root))
        {
            int es = type.DType.ElementSize();
            if (numel > long.MaxValue / 8) throw Malformed($"storage '{key}' declares {numel} elements");
            if (_source is not null)
            {
                long have = _source.GetLength(key);
                if (numel * es > have)
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"storage '{key}' declares {numel} {type.DType.TorchName()} elements ({numel * es} bytes) but its data holds {have} bytes", _target);
            }
            root = new TorchStorage { Key = key, DType = type.DType, Location = location, Numel = numel, Source = _source! };
            _storages[key] = root;
            SeenStorages.Add((key, type.DType, numel));
        }
        else if (root.DType.ElementSize() != type.DType.ElementSize() || root.Numel != numel)
            throw Malformed($"storage '{key}' is referenced as {type} x{numel} and as {root.DType.TorchName()} x{root.Numel}");
        if (view is null) return root;
        // legacy view: (view_key, offset, size) in elements of the root storage
        if (view is not object?[] { Length: 3 } v || v[1] is not long off || v[2] is not long vsize)
            throw Malformed($"storage '{key}' has malformed view metadata {Describe(view)}");
        if (off < 0 || vsize < 0 || off > numel - vsize)
            throw Malformed($"storage view of {vsize} elements at {off} does not fit in storage '{key}' of {numel} elements");
        return new TorchStorage
        {
            Key = key, DType = type.DType, Location = location, Numel = vsize, Source = _source!,
            ByteOffset = off * type.DType.ElementSize(),
        };
    }

    private object RebuildTensor(object? storageArg, object? offsetArg, object? sizeArg, object? strideArg, object? dtypeArg)
    {
        var storage = storageArg as TorchStorage ?? throw Malformed($"tensor storage must be a persistent storage, got {Describe(storageArg)}");
        if (dtypeArg is DType dt && dt != storage.DType)
        {
            if (storage.DType != DType.UInt8 || dt.IsQuantized())
                throw Malformed($"tensor dtype {dt.TorchName()} does not match its {storage.DType.TorchName()} storage");
            storage = Retype(storage, dt);
        }
        if (storage.DType.IsQuantized())
            throw Malformed($"a plain tensor cannot live in a {storage.DType.TorchName()} storage (expected _rebuild_qtensor)");
        var (offset, size, stride) = ViewArgs(offsetArg, sizeArg, strideArg);
        if (_source is null) return Deferred;
        return TensorBuilder.View(storage, offset, size, stride, _target, _budget);
    }

    private static TorchStorage Retype(TorchStorage s, DType dt)
    {
        int es = dt.ElementSize();
        return new TorchStorage { Key = s.Key, DType = dt, Location = s.Location, Numel = s.Numel / es, Source = s.Source, ByteOffset = s.ByteOffset };
    }

    private object RebuildQTensor(object? storageArg, object? offsetArg, object? sizeArg, object? strideArg, object? qparamsArg)
    {
        var storage = storageArg as TorchStorage ?? throw Malformed($"quantized tensor storage must be a persistent storage, got {Describe(storageArg)}");
        if (!storage.DType.IsQuantized())
            throw Malformed($"_rebuild_qtensor on a {storage.DType.TorchName()} storage (expected a quantized storage class)");
        var (offset, size, stride) = ViewArgs(offsetArg, sizeArg, strideArg);
        if (qparamsArg is not object?[] { Length: >= 3 } q || q[0] is not QScheme scheme)
            throw Malformed($"quantizer params must be a tuple starting with a qscheme, got {Describe(qparamsArg)}");
        if (_source is null) return Deferred;
        QParams qp;
        var dtype = storage.DType;
        if (!scheme.IsPerChannel())
        {
            double scale = AsDouble(q[1], "scale");
            long zp = q[2] is long z ? z : throw Malformed($"zero_point must be an int, got {Describe(q[2])}");
            qp = new QParams(scheme, dtype, [scale], [zp]);
        }
        else
        {
            if (q.Length < 4 || q[3] is not long axis) throw Malformed("per-channel quantizer params need (qscheme, scales, zero_points, axis)");
            var scales = Doubles(q[1], "scales", out _);
            var zpsD = Doubles(q[2], "zero_points", out bool zpFloat);
            if (axis < 0 || axis >= size.Length) throw Malformed($"per-channel axis {axis} is out of range for a {size.Length}-d tensor");
            if (scales.Length != size[axis] || zpsD.Length != scales.Length)
                throw Malformed($"axis {axis} has {size[axis]} channels but {scales.Length} scales and {zpsD.Length} zero points were stored");
            if (zpFloat || scheme == QScheme.PerChannelAffineFloatQParams)
                qp = new QParams(QScheme.PerChannelAffineFloatQParams, dtype, scales, [], (int)axis, zpsD.Select(x => (float)x).ToArray());
            else
                qp = new QParams(scheme, dtype, scales, zpsD.Select(x => (long)x).ToArray(), (int)axis);
        }
        var ints = TensorBuilder.View(storage, offset, size, stride, _target, _budget);
        return new QTensor(ints, qp);
    }

    private static double[] Doubles(object? v, string what, out bool floating)
    {
        switch (v)
        {
            case Tensor t:
                floating = t.DType.IsFloatingPoint();
                var r = new double[t.Length];
                for (int i = 0; i < r.Length; i++) r[i] = t.GetDouble(i);
                return r;
            case List<object?> or object?[]:
                var items = Iterate(v, what).ToArray();
                floating = items.Any(x => x is double);
                return items.Select(x => AsDouble(x, what)).ToArray();
            default:
                throw Malformed($"{what} must be a tensor or list, got {Describe(v)}");
        }
    }

    private static (long Offset, long[] Size, long[] Stride) ViewArgs(object? offset, object? size, object? stride)
    {
        if (offset is not long off) throw Malformed($"storage offset must be an int, got {Describe(offset)}");
        return (off, Longs(size, "size"), Longs(stride, "stride"));
    }

    private static long[] Longs(object? v, string what)
    {
        var items = Iterate(v, what);
        var r = new List<long>();
        foreach (var x in items)
        {
            if (r.Count >= 64) throw Malformed($"tensor {what} has more than 64 dimensions");
            r.Add(x is long l ? l : throw Malformed($"tensor {what} entries must be ints, got {Describe(x)}"));
        }
        return r.ToArray();
    }
}
