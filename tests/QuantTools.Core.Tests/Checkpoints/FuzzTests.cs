using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using QuantTools.Core.Formats.Torch;
using Xunit.Abstractions;

namespace QuantTools.Core.Tests.Checkpoints;

/// <summary>
/// Mutates every golden checkpoint with a fixed seed (bit flips, byte sets, truncations, insertions, size-field
/// edits), biased toward the pickles and zip directories where structure lives, and loads each mutant with a
/// timeout: a load either succeeds or throws <see cref="QuantToolsException"/>; nothing else, and no hang.
/// </summary>
public class FuzzTests(ITestOutputHelper output)
{
    private const int MutantsPerFile = 120;
    private static readonly TimeSpan PerMutant = TimeSpan.FromSeconds(10);

    public static TheoryData<string> Files()
    {
        var t = new TheoryData<string>();
        foreach (var f in GoldenCheckpointTests.AllPt()) t.Add(GoldenCheckpointTests.Rel(f));
        return t;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void MutantsFailOnlyWithQuantToolsException(string rel)
    {
        var original = File.ReadAllBytes(GoldenCheckpointTests.Abs(rel));
        var rng = new Random(StableHash(rel));
        var hot = HotRegions(original);
        using var dir = new TempDir();
        var failures = new List<string>();
        int ok = 0, rejected = 0;
        var netted = new List<string>();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < MutantsPerFile; i++)
        {
            var (mutant, what) = Mutate(original, hot, rng);
            var path = dir.File($"m{i}.pt", mutant);
            var task = Task.Run(() => TorchCheckpoint.Load(path));
            try
            {
                if (!task.Wait(PerMutant))
                {
                    failures.Add($"#{i} {what}: no result after {PerMutant.TotalSeconds} s");
                    break;
                }
                ok++;
            }
            catch (AggregateException ae) when (ae.InnerException is QuantToolsException q)
            {
                rejected++;
                // errors the readers did not foresee reach the front door's net as CorruptFile with the .NET type named
                if (q.Message.Contains("malformed checkpoint (") || q.Message.Contains("malformed pickle (")) netted.Add($"{what}: {q.Message}");
            }
            catch (AggregateException ae)
            {
                failures.Add($"#{i} {what}: {ae.InnerException!.GetType().Name}: {ae.InnerException.Message}\n{ae.InnerException.StackTrace}");
            }
            File.Delete(path);
        }
        output.WriteLine($"{rel}: {ok} loaded, {rejected} rejected ({netted.Count} by the safety net), {sw.ElapsedMilliseconds} ms");
        foreach (var n in netted.Take(3)) output.WriteLine("  net: " + n);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static int StableHash(string s)
    {
        int h = 20251127;
        foreach (var c in s) h = h * 31 + c;
        return h;
    }

    /// <summary>Byte ranges where structure lives: pickles (data.pkl, constants.pkl, the legacy pickles), zip headers and directory.</summary>
    private static List<(int Start, int End)> HotRegions(byte[] b)
    {
        var r = new List<(int, int)>();
        if (b.Length > 4 && b[0] == 'P' && b[1] == 'K')
        {
            int cd = b.AsSpan().IndexOf("PK\x01\x02"u8);
            if (cd >= 0) r.Add((cd, b.Length));
            for (int p = 0; (p = b.AsSpan(p).IndexOf("PK\x03\x04"u8) is var k and >= 0 ? p + k : -1) >= 0 && p + 30 < b.Length; p += 4)
            {
                int nameLen = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(p + 26));
                int extraLen = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(p + 28));
                int size = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(p + 18)), int.MaxValue);
                if (p + 30 + nameLen > b.Length) break;
                var name = Encoding.ASCII.GetString(b, p + 30, nameLen);
                int data = p + 30 + nameLen + extraLen;
                r.Add((p, Math.Min(data, b.Length)));
                if (name.EndsWith(".pkl") && !name.Contains("/code/")) r.Add((data, Math.Min(data + size, b.Length)));
            }
        }
        else r.Add((0, Math.Min(b.Length, 4096)));
        return r.Where(x => x.Item2 > x.Item1).ToList();
    }

    private static readonly long[] Interesting =
        [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, long.MaxValue, -1, 1L << 40];

    private static (byte[] Mutant, string What) Mutate(byte[] src, List<(int Start, int End)> hot, Random rng)
    {
        int Pos(int len)
        {
            if (hot.Count > 0 && rng.Next(4) != 0)
            {
                var (s, e) = hot[rng.Next(hot.Count)];
                return Math.Min(s + rng.Next(e - s), len - 1);
            }
            return rng.Next(len);
        }
        var b = (byte[])src.Clone();
        int kind = rng.Next(6);
        switch (kind)
        {
            case 0:
            {
                int n = 1 + rng.Next(8);
                for (int i = 0; i < n; i++) { int p = Pos(b.Length); b[p] ^= (byte)(1 << rng.Next(8)); }
                return (b, $"{n} bit flips");
            }
            case 1:
            {
                int p = Pos(b.Length);
                b[p] = (byte)Interesting[rng.Next(Interesting.Length)];
                return (b, $"byte set at {p}");
            }
            case 2:
            {
                int len = rng.Next(b.Length);
                return (b[..len], $"truncated to {len}");
            }
            case 3:
            {
                int p = Pos(b.Length);
                var ins = new byte[1 + rng.Next(16)];
                rng.NextBytes(ins);
                return ([.. b[..p], .. ins, .. b[p..]], $"{ins.Length} bytes inserted at {p}");
            }
            case 4:
            {
                // size-like field edit: 2, 4 or 8 bytes at a header / pickle position
                int p = Pos(b.Length);
                int width = new[] { 2, 4, 8 }[rng.Next(3)];
                if (p + width > b.Length) p = b.Length - width;
                long v = Interesting[rng.Next(Interesting.Length)];
                if (rng.Next(3) == 0) v = src.Length + rng.Next(1 << 20);
                for (int i = 0; i < width; i++) b[p + i] = (byte)(v >> (8 * i));
                return (b, $"{width}-byte field at {p} set to {v}");
            }
            default:
            {
                // zip central directory sizes / offsets
                int cd = b.AsSpan().IndexOf("PK\x01\x02"u8);
                if (cd < 0 || cd + 46 > b.Length) goto case 4;
                int entries = 0;
                for (int p = cd; p + 46 <= b.Length && b.AsSpan(p, 4).SequenceEqual("PK\x01\x02"u8); entries++)
                {
                    if (rng.Next(3) == 0)
                    {
                        int field = new[] { 20, 24, 42, 28, 30 }[rng.Next(5)];
                        uint v = (uint)Interesting[rng.Next(Interesting.Length)];
                        if (field is 28 or 30) BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(p + field), (ushort)v);
                        else BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(p + field), v);
                        return (b, $"central directory entry {entries} field {field} set to {v}");
                    }
                    p += 46 + BinaryPrimitives.ReadUInt16LittleEndian(src.AsSpan(p + 28)) + BinaryPrimitives.ReadUInt16LittleEndian(src.AsSpan(p + 30))
                         + BinaryPrimitives.ReadUInt16LittleEndian(src.AsSpan(p + 32));
                }
                goto case 4;
            }
        }
    }
}
