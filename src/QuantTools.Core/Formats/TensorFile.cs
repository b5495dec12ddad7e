using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats;

/// <summary>Reads and writes tensor files by extension: .npy (one tensor named after the file stem), .npz, .safetensors.</summary>
public static class TensorFile
{
    public const string SupportedExtensions = ".npy, .npz, .safetensors";

    private enum Kind { Npy, Npz, SafeTensors }

    private static Kind KindOf(string path)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        return ext switch
        {
            ".npy" => Kind.Npy,
            ".npz" => Kind.Npz,
            ".safetensors" => Kind.SafeTensors,
            _ => throw new QuantToolsException(ErrorCode.UnsupportedFormat,
                $"unsupported tensor file extension '{ext}'; expected one of {SupportedExtensions}", path),
        };
    }

    public static IReadOnlyList<(string Name, Tensor Tensor)> ReadAll(string path) => KindOf(path) switch
    {
        Kind.Npy => [(Path.GetFileNameWithoutExtension(path), NpyFormat.Read(path))],
        Kind.Npz => NpzFormat.Read(path),
        _ => SafeTensorsFile.Open(path).ReadAll(),
    };

    /// <summary>One tensor: the one named <paramref name="name"/>, or the only one when no name is given.</summary>
    public static Tensor Read(string path, string? name = null)
    {
        var kind = KindOf(path);
        if (kind == Kind.SafeTensors)
        {
            var f = SafeTensorsFile.Open(path);
            if (name is not null) return f.Get(name);
            if (f.Names.Count == 1) return f.Get(f.Names[0]);
            throw Ambiguous(path, f.Names);
        }
        var all = ReadAll(path);
        if (name is null)
        {
            if (all.Count == 1) return all[0].Tensor;
            throw Ambiguous(path, all.Select(x => x.Name).ToList());
        }
        if (kind == Kind.Npy) return all[0].Tensor; // a .npy holds one unnamed array
        foreach (var (n, t) in all)
            if (n == name) return t;
        throw new QuantToolsException(ErrorCode.InvalidArgument,
            $"no tensor named '{name}'; the file holds {Listing(all.Select(x => x.Name).ToList())}", path);
    }

    private static QuantToolsException Ambiguous(string path, IReadOnlyList<string> names) =>
        new(ErrorCode.InvalidArgument, $"the file holds {Listing(names)}; name the tensor to read", path);

    private static string Listing(IReadOnlyList<string> names) => names.Count switch
    {
        0 => "no tensors",
        <= 10 => $"{names.Count} tensor(s): {string.Join(", ", names)}",
        _ => $"{names.Count} tensors: {string.Join(", ", names.Take(10))}, ...",
    };

    /// <summary>Writes by extension. <paramref name="compress"/> deflates .npz entries and is ignored by the other formats.</summary>
    public static void Write(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, bool compress = false)
    {
        switch (KindOf(path))
        {
            case Kind.Npy:
                if (tensors.Count != 1)
                    throw new QuantToolsException(ErrorCode.InvalidArgument,
                        $"a .npy file holds exactly one tensor, {tensors.Count} were given; use .npz or .safetensors", path);
                NpyFormat.Write(path, tensors[0].Tensor);
                break;
            case Kind.Npz:
                NpzFormat.Write(path, tensors, compress);
                break;
            default:
                SafeTensorsFile.Write(path, tensors);
                break;
        }
    }
}
