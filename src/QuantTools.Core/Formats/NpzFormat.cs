using System.IO.Compression;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Formats;

/// <summary>Limits that protect <see cref="NpzFormat"/> reads against zip bombs.</summary>
public sealed class NpzReadOptions
{
    /// <summary>Largest declared uncompressed size of one entry (default 1 GiB).</summary>
    public long MaxEntryBytes { get; init; } = 1L << 30;
    /// <summary>Largest declared uncompressed size of all entries together (default 4 GiB).</summary>
    public long MaxTotalBytes { get; init; } = 4L << 30;
    /// <summary>Largest uncompressed/compressed ratio of an entry above <see cref="RatioCheckFloorBytes"/> (default 1000).</summary>
    public double MaxCompressionRatio { get; init; } = 1000;
    /// <summary>Entries declaring less than this are not ratio-checked (tiny arrays of zeros compress very well).</summary>
    public long RatioCheckFloorBytes { get; init; } = 1L << 20;
}

/// <summary>
/// NumPy .npz archives: a zip of .npy members (stored or deflated), names without the .npy suffix, in archive order.
/// Declared sizes are checked against the archive and the limits in <see cref="NpzReadOptions"/> before anything
/// is decompressed.
/// </summary>
public static class NpzFormat
{
    public static IReadOnlyList<(string Name, Tensor Tensor)> Read(string path, NpzReadOptions? options = null)
    {
        using var fs = RawData.OpenRead(path);
        return Read(fs, path, options);
    }

    public static IReadOnlyList<(string Name, Tensor Tensor)> Read(Stream s, string source, NpzReadOptions? options = null)
    {
        options ??= new NpzReadOptions();
        if (!s.CanSeek)
        {
            var ms = new MemoryStream();
            try { s.CopyTo(ms); }
            catch (IOException ex) { throw new QuantToolsException(ErrorCode.IoError, $"read failed: {ex.Message}", source, ex); }
            ms.Position = 0;
            s = ms;
        }
        long archiveBytes = s.Length - s.Position;
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(s, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (Exception ex) when (IsZipError(ex))
        {
            throw new QuantToolsException(ErrorCode.CorruptFile,
                $"not a readable zip archive (expected an .npz made by numpy.savez): {ex.Message}", source, ex);
        }
        using (zip)
        {
            IReadOnlyList<ZipArchiveEntry> entries;
            try { entries = zip.Entries; }
            catch (Exception ex) when (IsZipError(ex))
            {
                throw new QuantToolsException(ErrorCode.CorruptFile, $"zip directory is damaged: {ex.Message}", source, ex);
            }
            var result = new List<(string, Tensor)>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            long total = 0;
            foreach (var e in entries)
            {
                if (e.FullName.EndsWith('/') && e.Length == 0) continue; // directory entry
                string where = $"{source}!{e.FullName}";
                long declared = e.Length, packed = e.CompressedLength;
                if (declared < 0 || packed < 0 || packed > archiveBytes)
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"entry '{e.FullName}' declares {packed} compressed bytes but the archive has {archiveBytes}", source);
                if (declared > options.MaxEntryBytes)
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"entry '{e.FullName}' declares {declared} uncompressed bytes, over the {options.MaxEntryBytes}-byte limit (raise NpzReadOptions.MaxEntryBytes if the file is trusted)", source);
                if (declared > options.RatioCheckFloorBytes && declared > packed * options.MaxCompressionRatio)
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"entry '{e.FullName}' declares {declared} bytes from {packed} compressed, a ratio over {options.MaxCompressionRatio} (possible zip bomb; raise NpzReadOptions.MaxCompressionRatio if the file is trusted)", source);
                total += declared;
                if (total > options.MaxTotalBytes)
                    throw new QuantToolsException(ErrorCode.CorruptFile,
                        $"entries declare more than {options.MaxTotalBytes} uncompressed bytes in total (raise NpzReadOptions.MaxTotalBytes if the file is trusted)", source);
                string name = e.FullName.EndsWith(".npy", StringComparison.Ordinal) ? e.FullName[..^4] : e.FullName;
                if (!seen.Add(name))
                    throw new QuantToolsException(ErrorCode.CorruptFile, $"entry '{name}' appears twice", source);
                Tensor t;
                try
                {
                    using var es = e.Open();
                    t = NpyFormat.ReadFile(es, where, declared).Tensor;
                }
                catch (QuantToolsException qe) when (qe.Target == where)
                {
                    // Re-target to the archive path, keep the entry name in the message.
                    throw new QuantToolsException(qe.Code, $"entry '{e.FullName}': {StripTarget(qe)}", source, qe);
                }
                catch (Exception ex) when (IsZipError(ex))
                {
                    throw new QuantToolsException(ErrorCode.CorruptFile, $"entry '{e.FullName}' cannot be decompressed: {ex.Message}", source, ex);
                }
                result.Add((name, t));
            }
            return result;
        }
    }

    private static string StripTarget(QuantToolsException e) =>
        e.Target is not null && e.Message.StartsWith(e.Target + ": ", StringComparison.Ordinal) ? e.Message[(e.Target.Length + 2)..] : e.Message;

    private static bool IsZipError(Exception ex) =>
        ex is InvalidDataException or IOException or NotSupportedException or ArgumentException or IndexOutOfRangeException or OverflowException;

    /// <summary>Writes an archive (stored entries, or deflated when <paramref name="compress"/>), one name.npy per tensor.</summary>
    public static void Write(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, bool compress = false) =>
        RawData.WriteFileAtomically(path, s => Write(s, tensors, compress));

    public static void Write(Stream s, IEnumerable<(string Name, Tensor Tensor)> tensors, bool compress = false)
    {
        var list = tensors.ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, t) in list)
        {
            if (string.IsNullOrEmpty(name))
                throw new QuantToolsException(ErrorCode.InvalidArgument, "an npz entry needs a non-empty name");
            if (!seen.Add(name))
                throw new QuantToolsException(ErrorCode.InvalidArgument, $"tensor name '{name}' is given twice");
            NpyFormat.ToDescr(t.DType); // fail before writing anything for unsupported dtypes
        }
        using var zip = new ZipArchive(s, ZipArchiveMode.Create, leaveOpen: true);
        foreach (var (name, t) in list)
        {
            var entry = zip.CreateEntry(name + ".npy", compress ? CompressionLevel.Optimal : CompressionLevel.NoCompression);
            entry.LastWriteTime = new DateTimeOffset(new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Unspecified)); // fixed stamp: same tensors, same bytes
            using var es = entry.Open();
            NpyFormat.Write(es, t);
        }
    }
}
