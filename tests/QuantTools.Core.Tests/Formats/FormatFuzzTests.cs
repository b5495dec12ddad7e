using System.Diagnostics;
using System.Text;
using QuantTools.Core.Formats;
using QuantTools.Core.Tensors;
using Xunit.Abstractions;
using static QuantTools.Core.Tests.Formats.FormatTestUtil;

namespace QuantTools.Core.Tests.Formats;

/// <summary>
/// Mutates every format fixture many times with a fixed seed and reads each mutant: only success or a
/// QuantToolsException naming the source may come out, and no read may hang.
/// </summary>
public class FormatFuzzTests(ITestOutputHelper output)
{
    private const int Seed = 20240611;
    private const int MutantsPerFixture = 500;
    private static readonly TimeSpan PerMutantLimit = TimeSpan.FromSeconds(10);

    private static readonly string[] FixtureNames =
    [
        "f4_c_v1.npy", "f8_fortran_v1.npy", "i4_be_v1.npy", "i8_v2.npy", "f2_v3.npy", "b1_scalar.npy",
        "u1_empty.npy", "i2_be_fortran_3d.npy", "stored.npz", "deflated.npz", "small.safetensors",
    ];

    public static IEnumerable<object[]> Cases() => FixtureNames.Select(n => new object[] { n });

    [Theory]
    [MemberData(nameof(Cases))]
    public void MutantsOnlyFailWithOurError(string fixture)
    {
        var original = FixtureBytes(fixture);
        Assert.Null(ReadOnce(fixture, original, 0)); // the fixture itself reads
        var rng = new Random(Seed + StableHash(fixture));
        int ok = 0, rejected = 0;
        var failures = new List<string>();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < MutantsPerFixture; i++)
        {
            var (mutant, how) = Mutate(original, rng);
            Exception? error = null;
            var task = Task.Run(() => { error = ReadOnce(fixture, mutant, i); });
            if (!task.Wait(PerMutantLimit))
            {
                failures.Add($"#{i} {how}: no result within {PerMutantLimit.TotalSeconds}s (hang)");
                break;
            }
            if (error is null) ok++;
            else if (error is QuantToolsException q && q.Target is not null && q.Target.Contains($"mutant{i}-") && q.Message.Contains(q.Target)) rejected++;
            else failures.Add($"#{i} {how}: {error.GetType().Name}: {error.Message}\n{error.StackTrace}");
        }
        output.WriteLine($"{fixture}: {ok} read, {rejected} rejected, {failures.Count} bad, {sw.ElapsedMilliseconds} ms");
        Assert.True(failures.Count == 0, string.Join("\n\n", failures.Take(5)));
        Assert.True(rejected > MutantsPerFixture / 10, $"only {rejected} mutants were rejected; the fuzzer is not biting");
    }

    private static int StableHash(string s)
    {
        int h = 17;
        foreach (var c in s) h = unchecked(h * 31 + c);
        return h & 0x3fffffff;
    }

    /// <summary>Reads a mutant the way callers would; returns the exception, if any.</summary>
    private static Exception? ReadOnce(string fixture, byte[] bytes, int i)
    {
        string source = $"mutant{i}-{fixture}";
        try
        {
            if (fixture.EndsWith(".npy"))
            {
                var f = NpyFormat.ReadFile(new MemoryStream(bytes), source);
                // Also the unknown-length path on every other mutant.
                if (i % 2 == 0) NpyFormat.Read(new NonSeekable(new MemoryStream(bytes)), source);
                // Whatever was read must write back and read again.
                var ms = new MemoryStream();
                NpyFormat.WriteFile(ms, f);
                NpyFormat.Read(new MemoryStream(ms.ToArray()), source);
            }
            else if (fixture.EndsWith(".npz"))
            {
                NpzFormat.Read(new MemoryStream(bytes), source);
            }
            else
            {
                var f = SafeTensorsFile.FromBytes(bytes, source);
                foreach (var n in f.Names)
                {
                    f.Get(n);
                    f.Get(n, widenHalf: true);
                }
                SafeTensorsFile.ToBytes(f.ReadAll(), f.Metadata);
                if (i % 10 == 0)
                {
                    // The header-only path that big files take, reading each tensor from disk.
                    var path = Path.Combine(Path.GetTempPath(), $"mutant{i}-qt-fuzz-{Environment.ProcessId}.safetensors");
                    File.WriteAllBytes(path, bytes);
                    try { SafeTensorsFile.Open(path, inMemoryLimit: 0).ReadAll(widenHalf: true); }
                    finally { File.Delete(path); }
                }
            }
            return null;
        }
        catch (Exception ex)
        {
            return ex;
        }
    }

    private static readonly string[] InterestingNumbers =
    [
        "0", "1", "-1", "2", "255", "65535", "65536", "2147483647", "2147483648", "4294967295", "4294967296",
        "9223372036854775807", "9223372036854775808", "18446744073709551615", "99999999999999999999999999",
        "-9223372036854775808", "1e9", "3.5", "0x10",
    ];

    private static readonly uint[] InterestingWords = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

    internal static (byte[] Mutant, string How) Mutate(byte[] src, Random rng)
    {
        var b = (byte[])src.Clone();
        int kind = rng.Next(9);
        switch (kind)
        {
            case 0:
            {
                int flips = rng.Next(1, 5);
                for (int k = 0; k < flips; k++) { int p = rng.Next(b.Length); b[p] ^= (byte)(1 << rng.Next(8)); }
                return (b, $"{flips} bit flips");
            }
            case 1:
            {
                int p = HeaderBiased(b, rng);
                byte v = rng.Next(3) switch { 0 => 0, 1 => 0xff, _ => (byte)rng.Next(256) };
                b[p] = v;
                return (b, $"byte {p} = 0x{v:x2}");
            }
            case 2:
            {
                int n = rng.Next(b.Length);
                return (b[..n], $"truncated to {n}");
            }
            case 3:
            {
                int p = rng.Next(b.Length + 1), n = rng.Next(1, 17);
                var ins = new byte[n];
                rng.NextBytes(ins);
                return ([.. b[..p], .. ins, .. b[p..]], $"{n} bytes inserted at {p}");
            }
            case 4:
            {
                int p = rng.Next(b.Length), n = Math.Min(rng.Next(1, 33), b.Length - p);
                return ([.. b[..p], .. b[(p + n)..]], $"{n} bytes deleted at {p}");
            }
            case 5:
            {
                // Replace a run of ASCII digits in the header region with an interesting number.
                int limit = Math.Min(b.Length, 1024);
                var runs = new List<(int Start, int Len)>();
                for (int i = 0; i < limit;)
                {
                    if (b[i] is >= (byte)'0' and <= (byte)'9')
                    {
                        int s = i;
                        while (i < limit && b[i] is >= (byte)'0' and <= (byte)'9') i++;
                        runs.Add((s, i - s));
                    }
                    else i++;
                }
                if (runs.Count == 0) goto case 0;
                var (start, len) = runs[rng.Next(runs.Count)];
                var num = InterestingNumbers[rng.Next(InterestingNumbers.Length)];
                return ([.. b[..start], .. Encoding.ASCII.GetBytes(num), .. b[(start + len)..]], $"number at {start} -> {num}");
            }
            case 6:
            {
                // Length prefixes: npy header length at 8, safetensors at 0, zip fields anywhere.
                int p = rng.Next(3) switch { 0 => 0, 1 => 8, _ => rng.Next(Math.Max(1, b.Length - 4)) };
                uint w = InterestingWords[rng.Next(InterestingWords.Length)];
                for (int k = 0; k < 4 && p + k < b.Length; k++) b[p + k] = (byte)(w >> (8 * k));
                return (b, $"word at {p} = 0x{w:x}");
            }
            case 7:
            {
                // Swap a header token for another plausible one.
                string[] from = ["'<f4'", "'<f8'", "'>i4'", "'<i8'", "'<f2'", "'|b1'", "'|u1'", "False", "True", "\"F32\"", "\"I64\"", "\"BF16\"", "\"shape\"", "(", ")", ",", "{", "}", "[", "]"];
                string[] to = ["'<c16'", "'<u8'", "'|O'", "True", "False", "None", "\"X\"", "\"F16\"", "\"BOOL\"", "((", "", "[", "]", "{}", "'", "\"", ",,", "\\"];
                var text = Encoding.Latin1.GetString(b);
                var f = from[rng.Next(from.Length)];
                int at = text.IndexOf(f, StringComparison.Ordinal);
                if (at < 0) goto case 1;
                var t = to[rng.Next(to.Length)];
                return ([.. b[..at], .. Encoding.Latin1.GetBytes(t), .. b[(at + f.Length)..]], $"'{f}' at {at} -> '{t}'");
            }
            default:
            {
                // Several mutations stacked.
                var (m, h1) = Mutate(b, rng);
                var (m2, h2) = Mutate(m.Length == 0 ? b : m, rng);
                return (m2, h1 + " + " + h2);
            }
        }
    }

    private static int HeaderBiased(byte[] b, Random rng) =>
        rng.Next(2) == 0 ? rng.Next(Math.Min(b.Length, 160)) : rng.Next(b.Length);

    [Fact]
    public void RandomGarbageOfEveryLength()
    {
        var rng = new Random(Seed);
        foreach (var fixture in new[] { "x.npy", "x.npz", "x.safetensors" })
            for (int n = 0; n < 300; n++)
            {
                var b = new byte[n];
                rng.NextBytes(b);
                if (n > 8 && fixture.EndsWith(".npy")) { "\x93NUMPY"u8.ToArray().CopyTo(b, 0); b[6] = (byte)rng.Next(1, 4); b[7] = 0; }
                if (n > 8 && fixture.EndsWith(".safetensors")) BitConverter.GetBytes((ulong)rng.Next(n)).CopyTo(b, 0);
                var ex = ReadOnce(fixture, b, n);
                Assert.True(ex is null or QuantToolsException, $"{fixture} garbage of {n} bytes: {ex}");
            }
    }
}
