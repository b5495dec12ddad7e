using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using QuantTools.Core.Formats.Pickle;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats.Torch;

/// <summary>The form a checkpoint file has.</summary>
public enum CheckpointKind
{
    /// <summary><c>torch.save</c> zip archive (PyTorch 1.6+), usually a state_dict.</summary>
    StateDict,
    /// <summary><c>torch.save(..., _use_new_zipfile_serialization=False)</c>: magic, protocol, sys_info, pickle, storages.</summary>
    Legacy,
    /// <summary><c>torch.jit.save</c> archive: module tree, constants and code.</summary>
    TorchScript,
}

/// <summary>
/// A PyTorch checkpoint read without Python and without running anything from the file:
/// <c>TorchCheckpoint.Load("model.pt")</c> detects the form, unpickles it through the allow-list and rebuilds
/// tensors (<see cref="Tensor"/>) and quantized tensors (<see cref="QTensor"/>) from their storages.
/// </summary>
public sealed class TorchCheckpoint
{
    public string Path { get; }
    public CheckpointKind Kind { get; }
    /// <summary>The unpickled object (state_dict <see cref="PyDict"/>, TorchScript root <see cref="PickleObject"/>...).</summary>
    public object? Root { get; }
    /// <summary>
    /// Name → value in file order. For a state_dict: its entries, with <c>x._packed_params._packed_params</c> tuples
    /// unpacked into <c>x._packed_params.weight</c> / <c>.bias</c>. For TorchScript: every module's attributes by path,
    /// with packed params unpacked into <c>&lt;module&gt;.weight</c>, <c>.bias</c>, <c>.stride</c>...
    /// </summary>
    public TorchStateDict StateDict { get; }
    /// <summary>The dict the state_dict came from when it was nested (e.g. <c>state_dict</c> in a training checkpoint), else null.</summary>
    public string? StateDictKey { get; }
    /// <summary>A state_dict's <c>_metadata</c> (module prefix → {'version': n}), or null.</summary>
    public PyDict? Metadata { get; }
    /// <summary>TorchScript module tree (null for other kinds).</summary>
    public TorchModule? Modules { get; }
    /// <summary>TorchScript source by path below <c>code/</c>, e.g. <c>__torch__/torch/ao/nn/quantized/modules/conv.py</c>.</summary>
    public IReadOnlyDictionary<string, string> Code { get; }
    /// <summary>TorchScript <c>constants.pkl</c> (a tuple), or null.</summary>
    public object?[]? Constants { get; }
    /// <summary>The archive's top folder (zip forms), its <c>version</c> entry, its byte order.</summary>
    public string? ArchiveName { get; }
    public string? Version { get; }
    public bool BigEndian { get; }

    private TorchCheckpoint(string path, CheckpointKind kind, object? root, TorchModule? modules, IReadOnlyDictionary<string, string> code,
        object?[]? constants, string? archiveName, string? version, bool bigEndian)
    {
        Path = path;
        Kind = kind;
        Root = root;
        Modules = modules;
        Code = code;
        Constants = constants;
        ArchiveName = archiveName;
        Version = version;
        BigEndian = bigEndian;
        StateDict = new TorchStateDict();
        if (modules is not null) FlattenModule(modules, StateDict);
        else if (root is PyDict d)
        {
            var sd = FindStateDict(d, out var key);
            StateDictKey = key;
            Metadata = sd.Attributes?.TryGetValue("_metadata", out var m) == true ? m as PyDict : null;
            FlattenDict("", sd, StateDict, 0);
        }
    }

    private static readonly byte[] LegacyMagic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    private static readonly BigInteger LegacyMagicNumber = BigInteger.Parse("119547037146038801333356");

    /// <summary>Reads a checkpoint: a torch.save zip archive, a TorchScript archive or a legacy torch.save file.</summary>
    public static TorchCheckpoint Load(string path)
    {
        byte[] head = new byte[16];
        int n;
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
            n = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new QuantToolsException(ErrorCode.IoError, e.Message, path, e);
        }
        try
        {
            if (n >= 2 && head[0] == 'P' && head[1] == 'K')
                return LoadZip(path);
            if (n >= LegacyMagic.Length && head.AsSpan(0, LegacyMagic.Length).SequenceEqual(LegacyMagic) ||
                n >= 2 && head[0] == 0x80 && head[1] <= 5 && n >= 3 && head[2] == 0x8a)
                return LoadLegacy(path);
        }
        catch (Exception e) when (e is InvalidCastException or ArgumentException or OverflowException or FormatException
                                       or IndexOutOfRangeException or KeyNotFoundException or InvalidOperationException or InvalidDataException)
        {
            throw new QuantToolsException(ErrorCode.CorruptFile, $"malformed checkpoint ({e.GetType().Name}: {e.Message})", path, e);
        }
        var found = n == 0 ? "an empty file" : "bytes " + Convert.ToHexString(head, 0, Math.Min(n, 8));
        throw new QuantToolsException(ErrorCode.UnsupportedFormat,
            $"not a PyTorch checkpoint: expected a torch.save zip archive ('PK\\x03\\x04'), a TorchScript archive (zip with code/) " +
            $"or a legacy torch.save file (pickled magic number 0x1950a86a20f9469cfc6c); found {found}", path);
    }

    // ---------------------------------------------------------------- zip forms
    private static TorchCheckpoint LoadZip(string path)
    {
        using var zip = ZipReader.Open(path);
        var pkls = zip.Entries.Where(e => e.Name == "data.pkl" || e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) && e.Name.IndexOf('/') == e.Name.Length - 9).ToList();
        if (pkls.Count == 0)
            throw new QuantToolsException(ErrorCode.UnsupportedFormat,
                $"zip archive without '<archive>/data.pkl' (found {string.Join(", ", zip.Entries.Take(5).Select(e => e.Name))}{(zip.Entries.Count > 5 ? ", ..." : "")}); not a torch.save or torch.jit.save file", path);
        if (pkls.Count > 1)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"archive holds {pkls.Count} data.pkl entries ({string.Join(", ", pkls.Select(p => p.Name))}); expected one archive folder", path);
        string prefix = pkls[0].Name[..^"data.pkl".Length];
        string? Text(string name)
        {
            var e = zip.Find(prefix + name);
            if (e is null) return null;
            if (e.Size > 1 << 20) throw new QuantToolsException(ErrorCode.CorruptFile, $"entry '{e.Name}' of {e.Size} bytes is too large for a text entry", path);
            return Encoding.UTF8.GetString(zip.ReadAll(e));
        }
        var order = Text("byteorder")?.Trim();
        bool big = order switch
        {
            null or "little" => false,
            "big" => true,
            _ => throw new QuantToolsException(ErrorCode.CorruptFile, $"byteorder entry says '{order}' (expected 'little' or 'big')", path),
        };
        var version = (Text("version") ?? Text(".data/version"))?.Trim();
        bool script = zip.Entries.Any(e => e.Name.StartsWith(prefix + "code/", StringComparison.Ordinal)) || zip.Find(prefix + "constants.pkl") is not null;
        var budget = LoadBudget.ForFile(zip.FileLength);

        object? Unpickle(string name, string folder)
        {
            var e = zip.Find(prefix + name)!;
            var bytes = zip.ReadAll(e);
            var resolver = new TorchPickleResolver(new ZipStorageSource(zip, prefix, folder) { BigEndian = big }, path, budget);
            return new Unpickler(bytes, 0, bytes.Length, resolver, name, path).Load();
        }

        var root = Unpickle("data.pkl", "data/");
        var archiveName = prefix.TrimEnd('/');
        if (!script)
            return new TorchCheckpoint(path, CheckpointKind.StateDict, root, null, new Dictionary<string, string>(), null, archiveName, version, big);

        object?[]? constants = null;
        if (zip.Find(prefix + "constants.pkl") is not null)
            constants = Unpickle("constants.pkl", "constants/") as object?[]
                        ?? throw new QuantToolsException(ErrorCode.CorruptFile, "constants.pkl does not hold a tuple", path);
        var code = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in zip.Entries)
            if (e.Name.StartsWith(prefix + "code/", StringComparison.Ordinal) && e.Name.EndsWith(".py", StringComparison.Ordinal))
                code[e.Name[(prefix.Length + 5)..]] = Encoding.UTF8.GetString(zip.ReadAll(e));
        if (root is not PickleObject rootObj)
            throw new QuantToolsException(ErrorCode.CorruptFile, $"TorchScript data.pkl holds {PickleResolver.Describe(root)}, not a module object", path);
        var modules = BuildModule("", rootObj, path, 0);
        return new TorchCheckpoint(path, CheckpointKind.TorchScript, root, modules, code, constants, archiveName, version, big);
    }

    // ---------------------------------------------------------------- legacy
    private sealed class LegacyStorageSource(byte[] file, Dictionary<string, (long Offset, long Length)> blobs, string path) : StorageSource
    {
        private (long Offset, long Length) Blob(string key) => blobs.TryGetValue(key, out var b) ? b
            : throw new QuantToolsException(ErrorCode.CorruptFile, $"storage '{key}' is not in the file's storage key list", path);

        public override long GetLength(string key) => Blob(key).Length;

        public override void Read(string key, long offset, Span<byte> dest)
        {
            var b = Blob(key);
            if (offset < 0 || offset > b.Length - dest.Length)
                throw new QuantToolsException(ErrorCode.CorruptFile, $"read of {dest.Length} bytes at {offset} is outside storage '{key}' ({b.Length} bytes)", path);
            file.AsSpan((int)(b.Offset + offset), dest.Length).CopyTo(dest);
        }
    }

    private static TorchCheckpoint LoadLegacy(string path)
    {
        byte[] file;
        try
        {
            file = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OutOfMemoryException)
        {
            throw new QuantToolsException(ErrorCode.IoError, e.Message, path, e);
        }
        int pos = 0;
        object? Next(PickleResolver r, string what)
        {
            var u = new Unpickler(file, pos, file.Length - pos, r, what, path);
            var v = u.Load();
            pos = u.Position;
            return v;
        }
        var magic = Next(new PickleResolver(), "magic number");
        if (magic is not BigInteger bm || bm != LegacyMagicNumber)
            throw new QuantToolsException(ErrorCode.UnsupportedFormat,
                $"legacy checkpoint magic number is {magic ?? "None"}, expected 0x1950a86a20f9469cfc6c", path);
        var protocol = Next(new PickleResolver(), "protocol version");
        if (protocol is not 1001L)
            throw new QuantToolsException(ErrorCode.UnsupportedFormat, $"legacy checkpoint protocol {protocol ?? "None"}, expected 1001", path);
        var sysInfo = Next(new PickleResolver(), "sys_info") as PyDict
                      ?? throw new QuantToolsException(ErrorCode.CorruptFile, "legacy sys_info is not a dict", path);
        bool little = !sysInfo.TryGetValue("little_endian", out var le) || le is not false;
        int objStart = pos;
        var budget = LoadBudget.ForFile(file.Length);
        // pass 1: find the storages the object references (their bytes come after the pickles)
        var scan = new TorchPickleResolver(null, path, budget);
        Next(scan, "object pickle");
        var keys = Next(new PickleResolver(), "storage key list") as List<object?>
                   ?? throw new QuantToolsException(ErrorCode.CorruptFile, "legacy storage key list is not a list", path);
        var info = scan.SeenStorages.GroupBy(s => s.Key).ToDictionary(g => g.Key, g => g.First());
        var blobs = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        foreach (var k in keys)
        {
            if (k is not string key) throw new QuantToolsException(ErrorCode.CorruptFile, $"legacy storage key {PickleResolver.Describe(k)} is not a str", path);
            if (!info.TryGetValue(key, out var s))
                throw new QuantToolsException(ErrorCode.CorruptFile, $"legacy storage key '{key}' is listed but never referenced", path);
            if (file.Length - pos < 8) throw new QuantToolsException(ErrorCode.CorruptFile, $"file ends before storage '{key}' (truncated?)", path);
            long count = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(pos));
            if (!little) count = BinaryPrimitives.ReverseEndianness(count);
            pos += 8;
            int es = s.DType.ElementSize();
            if (count < 0 || count > (file.Length - pos) / es)
                throw new QuantToolsException(ErrorCode.CorruptFile,
                    $"storage '{key}' declares {count} elements of {es} bytes but only {file.Length - pos} bytes remain in the file", path);
            blobs[key] = (pos, count * es);
            pos += (int)(count * es);
        }
        // pass 2: the same pickle with storages available
        pos = objStart;
        var resolver = new TorchPickleResolver(new LegacyStorageSource(file, blobs, path) { BigEndian = !little }, path, budget);
        var root = Next(resolver, "object pickle");
        return new TorchCheckpoint(path, CheckpointKind.Legacy, root, null, new Dictionary<string, string>(), null, null, "1001", !little);
    }

    // ---------------------------------------------------------------- state_dict view
    private static readonly string[] NestedStateDictKeys = ["state_dict", "model_state_dict", "model", "net", "module"];

    private static PyDict FindStateDict(PyDict root, out string? key)
    {
        key = null;
        if (root.Values.Any(v => v is Tensor or QTensor)) return root;
        foreach (var k in NestedStateDictKeys)
            if (root.TryGetValue(k, out var v) && v is PyDict d && d.Values.Any(x => x is Tensor or QTensor or object?[]))
            {
                key = k;
                return d;
            }
        return root;
    }

    private static void FlattenDict(string prefix, PyDict d, TorchStateDict into, int depth)
    {
        if (depth > 32) return;
        foreach (var kv in d)
        {
            var name = prefix + (kv.Key switch { string s => s, long l => l.ToString(), var o => o?.ToString() ?? "None" });
            if (kv.Value is object?[] tuple && name.EndsWith("_packed_params", StringComparison.Ordinal) && TryLinearPacked(tuple, out var lp))
            {
                var parent = name.Contains('.') ? name[..name.LastIndexOf('.')] : name;
                into.Add(parent + ".weight", lp.Weight);
                into.Add(parent + ".bias", lp.Bias);
            }
            else if (kv.Value is PyDict nested && nested.Count > 0 && nested.Keys.All(k => k is string))
                FlattenDict(name + ".", nested, into, depth + 1);
            else into.Add(name, kv.Value);
        }
    }

    private static bool TryLinearPacked(object?[] t, out LinearPackedParams p)
    {
        p = null!;
        if (t.Length != 2 || t[0] is not (QTensor or Tensor) || t[1] is not (null or Tensor)) return false;
        p = new LinearPackedParams { Weight = t[0]!, Bias = t[1] as Tensor };
        return true;
    }

    // ---------------------------------------------------------------- TorchScript
    private static readonly string[] ConvStateNames =
    [
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "transposed", "output_padding",
        "groups", "padding_mode", "weight", "bias", "scale", "zero_point", "training",
    ];

    private static bool IsModule(PickleObject o) =>
        o.ClassName.StartsWith("__torch__.", StringComparison.Ordinal) && !o.ClassName.Contains(".torch.classes.", StringComparison.Ordinal);

    private static bool IsPackedParams(PickleObject o) =>
        o.ClassName.Contains("classes.quantized.", StringComparison.Ordinal) && o.ClassName.EndsWith("PackedParamsBase", StringComparison.Ordinal);

    private static TorchModule BuildModule(string path, PickleObject obj, string file, int depth)
    {
        if (depth > 200) throw new QuantToolsException(ErrorCode.CorruptFile, "TorchScript modules nested deeper than 200 levels", file);
        var attrs = new TorchStateDict();
        var children = new List<TorchModule>();
        var order = new List<(string, TorchModule?)>();
        IEnumerable<(string, object?)> members = obj.State switch
        {
            PyDict d => d.Select(kv => (kv.Key as string ?? kv.Key?.ToString() ?? "None", kv.Value)),
            object?[] t when t.Length == ConvStateNames.Length && obj.ClassName.Contains(".quantized.", StringComparison.Ordinal) &&
                             obj.ClassName.Contains("Conv", StringComparison.Ordinal) => ConvStateNames.Zip(t),
            null => [],
            var s => [("__getstate__", s)],
        };
        foreach (var (name, value) in members)
        {
            if (value is PickleObject po && IsModule(po))
            {
                var child = BuildModule(path.Length == 0 ? name : path + "." + name, po, file, depth + 1);
                children.Add(child);
                order.Add((name, child));
                continue;
            }
            object? v = value;
            if (value is PickleObject pp && IsPackedParams(pp)) v = DecodePackedParams(pp, path, file);
            else if (name == "dtype" && value is long st && ScalarTypes.TryGetValue(st, out var dt)) v = dt;
            attrs.Add(name, v);
            order.Add((name, null));
        }
        return new TorchModule { Path = path, ClassName = obj.ClassName, Attributes = attrs, Children = children, Object = obj, Order = order };
    }

    /// <summary>c10::ScalarType numbers, as TorchScript stores <c>dtype</c> attributes.</summary>
    private static readonly Dictionary<long, DType> ScalarTypes = new()
    {
        [0] = DType.UInt8, [1] = DType.Int8, [2] = DType.Int16, [3] = DType.Int32, [4] = DType.Int64, [5] = DType.Float16,
        [6] = DType.Float32, [7] = DType.Float64, [11] = DType.Bool, [12] = DType.QInt8, [13] = DType.QUInt8, [14] = DType.QInt32,
        [15] = DType.BFloat16, [16] = DType.QUInt4x2, [17] = DType.QUInt2x4,
    };

    private static void FlattenModule(TorchModule m, TorchStateDict into)
    {
        foreach (var (name, child) in m.Order)
        {
            if (child is not null)
            {
                FlattenModule(child, into);
                continue;
            }
            var value = m.Attributes[name];
            string at = m.Path.Length == 0 ? "" : m.Path + ".";
            switch (value)
            {
                case LinearPackedParams lp:
                    into.Add(at + "weight", lp.Weight);
                    into.Add(at + "bias", lp.Bias);
                    break;
                case ConvPackedParams cp:
                    into.Add(at + "weight", cp.Weight);
                    into.Add(at + "bias", cp.Bias);
                    into.Add(at + "stride", Tuple(cp.Stride));
                    into.Add(at + "padding", Tuple(cp.Padding));
                    into.Add(at + "dilation", Tuple(cp.Dilation));
                    into.Add(at + "output_padding", Tuple(cp.OutputPadding));
                    into.Add(at + "groups", cp.Groups);
                    into.Add(at + "transposed", cp.Transpose);
                    break;
                default:
                    into.Add(at + name, value);
                    break;
            }
        }
    }

    private static object?[] Tuple(long[] v) => v.Select(x => (object?)x).ToArray();

    /// <summary>Decodes a torchbind packed-params object's state (Linear, or Conv versions 1, 2 and 3).</summary>
    public static object DecodePackedParams(PickleObject o, string modulePath = "", string? file = null)
    {
        QuantToolsException Bad(string msg) => new(ErrorCode.CorruptFile, $"{o.ClassName} at '{modulePath}': {msg}", file);
        if (o.State is not object?[] s) throw Bad($"state is {PickleResolver.Describe(o.State)}, expected a tuple");
        if (o.ClassName.EndsWith("LinearPackedParamsBase", StringComparison.Ordinal))
        {
            if (s.Length >= 2 && s[0] is QTensor or Tensor && s[1] is null or Tensor)
                return new LinearPackedParams { Weight = s[0]!, Bias = s[1] as Tensor };
            throw Bad("expected (weight, bias) state");
        }
        if (!o.ClassName.Contains("Conv", StringComparison.Ordinal)) throw Bad("unknown packed params class");
        if (s.Length == 0) throw Bad("empty state");
        long[] config;
        QTensor weight;
        Tensor? bias;
        int version;
        if (s[0] is QTensor w1)
        {
            // v1: (weight, bias, [stride tensors], [padding tensors], [dilation tensors], groups tensor)
            version = 1;
            if (s.Length < 6) throw Bad("version 1 state needs 6 fields");
            weight = w1;
            bias = s[1] as Tensor;
            long[] L(object? v) => PickleResolver.Iterate(v, "conv params").Select(x => x is Tensor { Length: >= 1 } t ? (long)t.GetDouble(0) : throw Bad("expected a list of tensors")).ToArray();
            var stride = L(s[2]);
            var padding = L(s[3]);
            var dilation = L(s[4]);
            long groups = s[5] is Tensor { Length: >= 1 } g ? (long)g.GetDouble(0) : throw Bad("groups must be a tensor");
            int d = stride.Length;
            if (padding.Length != d || dilation.Length != d) throw Bad("stride, padding and dilation differ in length");
            config = [d, .. stride, .. padding, .. dilation, .. new long[d], groups, 0];
        }
        else if (s[0] is "2")
        {
            version = 2;
            if (s.Length < 3) throw Bad("version 2 state needs 3 fields");
            var tensors = PickleResolver.Iterate(s[1], "conv tensors").ToList();
            var optional = PickleResolver.Iterate(s[2], "conv optional tensors").ToList();
            if (tensors.Count < 2 || tensors[0] is not Tensor p || tensors[1] is not QTensor w2) throw Bad("expected [params, weight] tensors");
            config = Enumerable.Range(0, p.Length).Select(i => (long)p.GetDouble(i)).ToArray();
            weight = w2;
            bias = optional.Count > 0 ? optional[0] as Tensor : null;
        }
        else if (s[0] is 3L)
        {
            version = 3;
            if (s.Length < 3) throw Bad("version 3 state needs 3 fields");
            config = PickleResolver.Iterate(s[1], "conv config").Select(x => x is long l ? l : throw Bad("config values must be ints")).ToArray();
            var optional = PickleResolver.Iterate(s[2], "conv tensors").ToList();
            if (optional.Count < 3 || optional[1] is not QTensor w3) throw Bad("expected [None, weight, bias] tensors");
            weight = w3;
            bias = optional[2] as Tensor;
        }
        else throw Bad($"unknown serialization version {PickleResolver.Describe(s[0])}");
        if (config.Length < 1 || config[0] is < 1 or > 3 || config.Length != 1 + 4 * config[0] + 2)
            throw Bad($"config of {config.Length} values does not match a {(config.Length > 0 ? config[0] : 0)}-d convolution");
        int k = (int)config[0];
        long flags = config[^1];
        if (version == 3 && (flags & ~1L) != 0) throw Bad($"unknown flags {flags}");
        return new ConvPackedParams
        {
            Version = version, SpatialDims = k, Weight = weight, Bias = bias,
            Stride = config[1..(1 + k)], Padding = config[(1 + k)..(1 + 2 * k)], Dilation = config[(1 + 2 * k)..(1 + 3 * k)],
            OutputPadding = config[(1 + 3 * k)..(1 + 4 * k)], Groups = config[1 + 4 * k], Transpose = (flags & 1) != 0,
        };
    }

    /// <summary>
    /// The TorchScript source file that defines <paramref name="qualifiedClassName"/>
    /// (<c>__torch__.torch.ao.nn.quantized.modules.conv.Conv2d</c> → <c>__torch__/torch/ao/nn/quantized/modules/conv.py</c>).
    /// </summary>
    public string GetCode(string qualifiedClassName)
    {
        int dot = qualifiedClassName.LastIndexOf('.');
        var file = (dot < 0 ? qualifiedClassName : qualifiedClassName[..dot]).Replace('.', '/') + ".py";
        return Code.TryGetValue(file, out var text) ? text
            : throw new QuantToolsException(ErrorCode.InvalidArgument, $"no code/{file} for class {qualifiedClassName} in the archive", Path);
    }

    public override string ToString() => $"{Kind} checkpoint '{System.IO.Path.GetFileName(Path)}' ({StateDict.Count} entries)";
}
