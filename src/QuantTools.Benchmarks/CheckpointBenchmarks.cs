using BenchmarkDotNet.Attributes;
using QuantTools.Core.Formats.Torch;
using QuantTools.Core.Tensors;
using CoreTensor = QuantTools.Core.Tensors.Tensor;

namespace QuantTools.Benchmarks;

/// <summary>
/// Loading a ~100 MB state_dict (random float32 weights plus quantized per-tensor and per-channel tensors, written
/// once by <see cref="TorchSaveWriter"/> into a temp folder) against reading the same file's bytes, warm page cache,
/// single thread. Issue #3's goal: the load within 1.5x of the read.
/// </summary>
[BenchmarkCategory("checkpoint")]
public class CheckpointBenchmarks
{
    private string _dir = "";
    private string _path = "";

    public static List<(string Name, object? Value)> StateDict()
    {
        var rng = new Random(20240611);
        var entries = new List<(string, object?)>();
        float[] Floats(int n)
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = rng.NextSingle() * 2 - 1;
            return x;
        }
        // 23 float layers of 1024 x 1024 (4 MiB each, 92 MiB) with biases
        for (int l = 0; l < 23; l++)
        {
            entries.Add(($"layers.{l}.weight", new CoreTensor(DType.Float32, [1024, 1024], Floats(1024 * 1024))));
            entries.Add(($"layers.{l}.bias", new CoreTensor(DType.Float32, [1024], Floats(1024))));
        }
        // quantized layers: per-channel qint8 conv weights and per-tensor quint8 / qint32
        for (int l = 0; l < 8; l++)
        {
            var w = new sbyte[256 * 128 * 3 * 3];
            rng.NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.AsSpan()));
            var scales = Enumerable.Range(0, 256).Select(_ => 1e-3 + rng.NextDouble() * 1e-2).ToArray();
            entries.Add(($"qconv.{l}.weight", new QTensor(new CoreTensor(DType.Int8, [256, 128, 3, 3], w),
                QParams.PerChannel(scales, new long[256], 0, DType.QInt8))));
            entries.Add(($"qconv.{l}.bias", new CoreTensor(DType.Float32, [256], Floats(256))));
            entries.Add(($"qconv.{l}.scale", 0.05 + l * 0.001));
            entries.Add(($"qconv.{l}.zero_point", (long)(l * 7)));
        }
        var act = new byte[2 * 1024 * 1024];
        rng.NextBytes(act);
        entries.Add(("qact", new QTensor(new CoreTensor(DType.UInt8, [2048, 1024], act), QParams.PerTensor(0.0197, 0, DType.QUInt8))));
        var acc = new int[256 * 1024];
        for (int i = 0; i < acc.Length; i++) acc[i] = rng.Next();
        entries.Add(("qacc", new QTensor(new CoreTensor(DType.Int32, [256, 1024], acc), QParams.PerTensor(1e-5, 0, DType.QInt32))));
        return entries;
    }

    [GlobalSetup]
    public void Setup()
    {
        CoreBindings.ForceSingleThread();
        _dir = Directory.CreateTempSubdirectory("qt-bench-ckpt-").FullName;
        _path = Path.Combine(_dir, "state_dict_100mb.pt");
        TorchSaveWriter.WriteStateDict(_path, StateDict());
        Console.WriteLine($"// checkpoint benchmark file: {_path} ({new FileInfo(_path).Length / (1024.0 * 1024.0):0.0} MiB)");
        // warm the page cache and check the file loads
        File.ReadAllBytes(_path);
        if (Load_Ours() == 0) throw new InvalidOperationException("benchmark checkpoint loaded empty");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    /// <summary>TorchCheckpoint.Load, then one read of the first and last element of every tensor.</summary>
    [Benchmark(Description = "load state_dict/ours")]
    public double Load_Ours()
    {
        var ck = TorchCheckpoint.Load(_path);
        double sum = 0;
        foreach (var (_, v) in ck.StateDict)
        {
            var t = v switch { CoreTensor d => d, QTensor q => q.IntRepr, _ => null };
            if (t is null || t.Length == 0) continue;
            sum += t.GetDouble(0) + t.GetDouble(t.Length - 1) + 1;
        }
        return sum;
    }

    /// <summary>
    /// The floor for any reader that hands out one array per tensor: one fresh array per <c>data/&lt;key&gt;</c> entry,
    /// filled by one positioned read (no pickle, no checks). Shows how much of the gap to read-bytes is the allocation
    /// pattern (100 MB of 0.3-4 MB arrays, which the GC decommits and re-faults between calls) rather than the reader.
    /// </summary>
    [Benchmark(Description = "load state_dict/read-per-storage")]
    public long Load_ReadPerStorage()
    {
        using var zip = ZipReader.Open(_path);
        long n = 0;
        foreach (var e in zip.Entries)
        {
            if (!e.Name.Contains("/data/", StringComparison.Ordinal)) continue;
            var a = GC.AllocateUninitializedArray<byte>((int)e.Size);
            zip.Read(e, 0, a);
            n += a[^1];
        }
        return n;
    }

    /// <summary>File.ReadAllBytes of the same file: the disk (page cache) bound.</summary>
    [Benchmark(Description = "load state_dict/read-bytes")]
    public int Load_ReadBytes() => File.ReadAllBytes(_path).Length;
}
