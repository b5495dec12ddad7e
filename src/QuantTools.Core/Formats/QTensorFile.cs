using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats;

/// <summary>What a tensor file holds: its values (<see cref="Tensor"/> or <see cref="QTensor"/>) in file order, and any other metadata.</summary>
public sealed class TensorFileContent
{
    public required string Source { get; init; }
    public required IReadOnlyList<(string Name, object Value)> Items { get; init; }
    /// <summary>Metadata that is not QuantTools' qparams records (safetensors only; empty otherwise).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();
}

/// <summary>How <see cref="QTensorFile.Write"/> writes.</summary>
public sealed class TensorFileWriteOptions
{
    /// <summary>Deflate the entries of an .npz file (ignored by the other formats).</summary>
    public bool Compress { get; init; }
    /// <summary>Other safetensors metadata to keep (qparams records are made from the values).</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }
    /// <summary>
    /// Called with the name of each quantized tensor written to a format that cannot hold qparams (.npy, .npz, a
    /// folder of .npy): those are written as their int_repr only. Null writes them silently.
    /// </summary>
    public Action<string>? QParamsDropped { get; init; }
}

/// <summary>
/// The one place that turns quantized and float tensors into files and back. By extension: <c>.safetensors</c> keeps
/// quantized tensors with their qparams (<see cref="QTensorCodec"/>: int_repr, per-channel companions, a metadata
/// record); <c>.npy</c> (one tensor, named after the file stem), <c>.npz</c> and folders of <c>.npy</c> files (one per
/// tensor, named by it) hold plain arrays, so quantized tensors go there as their int_repr.
/// </summary>
public static class QTensorFile
{
    public const string SupportedExtensions = TensorFile.SupportedExtensions;

    private static bool IsSafeTensors(string path) => path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);

    /// <summary>Every value in a file (or a folder of .npy files, in name order): QTensor where the file records qparams, else Tensor.</summary>
    public static TensorFileContent Load(string path)
    {
        if (Directory.Exists(path))
        {
            var files = Directory.GetFiles(path, "*.npy").Order(StringComparer.Ordinal).ToList();
            return new TensorFileContent
            {
                Source = path,
                Items = files.Select(f => (Path.GetFileNameWithoutExtension(f), (object)NpyFormat.Read(f))).ToList(),
            };
        }
        if (IsSafeTensors(path))
        {
            var f = SafeTensorsFile.Open(path);
            var other = new Dictionary<string, string>(StringComparer.Ordinal);
            if (f.Metadata is not null)
                foreach (var (k, v) in f.Metadata)
                    if (!k.StartsWith(QTensorCodec.MetadataPrefix, StringComparison.Ordinal)) other[k] = v;
            return new TensorFileContent { Source = path, Items = QTensorCodec.Decode(f.ReadAll(), f.Metadata, path), Metadata = other };
        }
        return new TensorFileContent { Source = path, Items = TensorFile.ReadAll(path).Select(t => (t.Name, (object)t.Tensor)).ToList() };
    }

    /// <summary>Every value in a file: QTensor where the file records qparams, else Tensor.</summary>
    public static IReadOnlyList<(string Name, object Value)> ReadAll(string path) => Load(path).Items;

    /// <summary>Every value as a float tensor (quantized ones dequantized), e.g. for model inputs.</summary>
    public static IReadOnlyList<(string Name, Tensor Tensor)> ReadAllFloat(string path) =>
        ReadAll(path).Select(x => (x.Name, AsFloat(x.Value))).ToList();

    private static Tensor AsFloat(object v) => v switch
    {
        QTensor q => Quantization.Quantizer.Dequantize(q),
        Tensor t => t,
        _ => throw new InvalidOperationException(v.GetType().Name),
    };

    /// <summary>The names a file holds, without reading its data where the format allows (safetensors).</summary>
    public static IReadOnlyList<string> Names(string path)
    {
        if (IsSafeTensors(path) && !Directory.Exists(path))
        {
            var f = SafeTensorsFile.Open(path);
            var companions = new HashSet<string>(StringComparer.Ordinal);
            foreach (var n in f.Names)
                if (f.Names.Contains(n + ".scales") && f.Metadata?.ContainsKey(QTensorCodec.MetadataPrefix + n) == true)
                {
                    companions.Add(n + ".scales");
                    companions.Add(n + ".zero_points");
                }
            return f.Names.Where(n => !companions.Contains(n)).ToList();
        }
        return ReadAll(path).Select(x => x.Name).ToList();
    }

    /// <summary>One value: the one named <paramref name="name"/>, or the only one when no name is given.</summary>
    public static object Read(string path, string? name = null)
    {
        var all = ReadAll(path);
        if (name is null)
        {
            if (all.Count == 1) return all[0].Value;
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"the file holds {Listing(all.Select(x => x.Name).ToList())}; name the tensor to read", path);
        }
        if (!Directory.Exists(path) && path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) return all[0].Value;
        foreach (var (n, v) in all)
            if (n == name) return v;
        throw NoSuchTensor(path, name, all.Select(x => x.Name).ToList());
    }

    /// <summary>The error for a tensor name a file does not hold, listing what it does hold.</summary>
    public static QuantToolsException NoSuchTensor(string path, string name, IReadOnlyList<string> names) =>
        new(ErrorCode.InvalidArgument, $"no tensor named '{name}'; the file holds {Listing(names)}", path);

    internal static string Listing(IReadOnlyList<string> names) => names.Count switch
    {
        0 => "no tensors",
        <= 10 => $"{names.Count} tensor(s): {string.Join(", ", names)}",
        _ => $"{names.Count} tensors: {string.Join(", ", names.Take(10))}, ...",
    };

    /// <summary>Writes values (Tensor or QTensor) by extension (<see cref="SupportedExtensions"/>), atomically.</summary>
    public static void Write(string path, IReadOnlyList<(string Name, object Value)> items, TensorFileWriteOptions? options = null)
    {
        options ??= new TensorFileWriteOptions();
        CheckNames(items, path);
        if (IsSafeTensors(path))
        {
            var metadata = options.Metadata is null ? new Dictionary<string, string>()
                : options.Metadata.Where(kv => !kv.Key.StartsWith(QTensorCodec.MetadataPrefix, StringComparison.Ordinal))
                    .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            var tensors = new List<(string, Tensor)>();
            foreach (var (name, value) in items)
            {
                if (value is QTensor q) tensors.AddRange(QTensorCodec.Encode(name, q, metadata));
                else tensors.Add((name, Plain(value, name, path)));
            }
            SafeTensorsFile.Write(path, tensors, metadata.Count > 0 ? metadata : null);
            return;
        }
        var plain = PlainArrays(items, options, path);
        if (path.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) && plain.Count != 1)
            throw new QuantToolsException(ErrorCode.InvalidArgument,
                $"a .npy file holds exactly one tensor, {plain.Count} were given; use .npz or .safetensors", path);
        TensorFile.Write(path, plain, options.Compress);
    }

    /// <summary>Writes values into a folder (created if needed) as one .npy file per tensor, named by it.</summary>
    public static void WriteFolder(string folder, IReadOnlyList<(string Name, object Value)> items, TensorFileWriteOptions? options = null)
    {
        options ??= new TensorFileWriteOptions();
        CheckNames(items, folder);
        var plain = PlainArrays(items, options, folder);
        Directory.CreateDirectory(folder);
        foreach (var (n, t) in plain) NpyFormat.Write(Path.Combine(folder, n + ".npy"), t);
    }

    private static void CheckNames(IReadOnlyList<(string Name, object Value)> items, string path)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (n, _) in items)
            if (!seen.Add(n)) throw new QuantToolsException(ErrorCode.InvalidArgument, $"two tensors are named '{n}'", path);
    }

    private static List<(string Name, Tensor Tensor)> PlainArrays(IReadOnlyList<(string Name, object Value)> items, TensorFileWriteOptions options, string path)
    {
        var plain = new List<(string Name, Tensor Tensor)>();
        foreach (var (name, value) in items)
        {
            if (value is QTensor q)
            {
                options.QParamsDropped?.Invoke(name);
                plain.Add((name, q.IntRepr));
            }
            else plain.Add((name, Plain(value, name, path)));
        }
        return plain;
    }

    private static Tensor Plain(object value, string name, string path) => value as Tensor
        ?? throw new QuantToolsException(ErrorCode.InvalidArgument, $"'{name}' is a {value?.GetType().Name ?? "null"}, not a tensor", path);
}
