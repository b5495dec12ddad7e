using System.Diagnostics;
using System.Text;
using QuantTools.Core.Export;
using QuantTools.Core.Models.Graph;
using QuantTools.Core.Tensors;

namespace QuantTools.Core.Tests.Export;

/// <summary>The C compiler the generated code is built with in these tests: gcc on PATH.</summary>
public static class Gcc
{
    private static readonly Lazy<string?> Found = new(() =>
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var p = Path.Combine(dir, OperatingSystem.IsWindows() ? "gcc.exe" : "gcc");
            if (File.Exists(p)) return p;
        }
        return null;
    });

    public static string? Path_ => Found.Value;

    public const string MissingReason = "needs gcc on PATH to compile and run the generated C (not found here)";

    /// <summary>The flags the issue promises the generated code is clean with, plus -ffp-contract=off (see qt_kernels.h).</summary>
    public static readonly string[] Flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-ffp-contract=off"];

    public static (int Code, string Output) Run(string exe, string workDir, IEnumerable<string> args, int timeoutMs = 600_000)
    {
        var psi = new ProcessStartInfo(exe) { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var outp = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(true);
            throw new TimeoutException($"{exe} {string.Join(" ", args)} did not finish in {timeoutMs / 1000} s");
        }
        return (p.ExitCode, outp.Result + err.Result);
    }
}

/// <summary>A [Fact] that is skipped, with the reason, where gcc is missing.</summary>
public sealed class GccFactAttribute : FactAttribute
{
    public GccFactAttribute()
    {
        if (Gcc.Path_ is null) Skip = Gcc.MissingReason;
    }
}

/// <summary>A [Theory] that is skipped, with the reason, where gcc is missing.</summary>
public sealed class GccTheoryAttribute : TheoryAttribute
{
    public GccTheoryAttribute()
    {
        if (Gcc.Path_ is null) Skip = Gcc.MissingReason;
    }
}

/// <summary>
/// Several exported models compiled into one test program (one gcc call): <c>run NAME f|q IN OUT</c> reads the float
/// (f: NAME_run) or quantized (q: NAME_run_q) input from IN and writes the output to OUT. Built with -DQT_DUMP=dumps,
/// so every run writes each layer's output to ./dumps of its working directory.
/// </summary>
public sealed class CBuild : IDisposable
{
    public string Dir { get; }
    public string Exe => Path.Combine(Dir, "run");
    public Dictionary<string, ExportResult> Models { get; } = new(StringComparer.Ordinal);
    private int _runs;

    public CBuild(string tag)
    {
        Dir = Path.Combine(Path.GetTempPath(), "qt-export-tests", tag + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Dir);
    }

    public ExportResult Add(ModelGraph graph, ExportOptions options)
    {
        var r = ModelExporter.Export(graph, options with { Format = ExportFormat.C }, Dir, force: true);
        Models[options.Name] = r;
        return r;
    }

    /// <summary>Compiles every added model and the harness with <see cref="Gcc.Flags"/>; fails the test with gcc's output.</summary>
    public void Compile(bool dump = true)
    {
        File.WriteAllText(Path.Combine(Dir, "main.c"), Harness(Models.Keys));
        var args = new List<string>(Gcc.Flags);
        if (dump) args.Add("-DQT_DUMP=dumps");
        args.AddRange(["-o", "run", "main.c", "qt_kernels.c"]);
        foreach (var n in Models.Keys) args.AddRange([n + ".c", n + "_weights.c"]);
        var (code, output) = Gcc.Run(Gcc.Path_!, Dir, args);
        Assert.True(code == 0, $"gcc {string.Join(" ", args)} failed ({code}):\n{output}");
    }

    /// <summary>Runs NAME_run on <paramref name="input"/>: the float output and the folder holding the run's layer dumps.</summary>
    public (float[] Output, string Dumps) Run(string name, Tensor input)
    {
        var run = NewRunDir();
        var f = input.ToFloat32().AsSpan<float>();
        File.WriteAllBytes(Path.Combine(run, "in.bin"), System.Runtime.InteropServices.MemoryMarshal.AsBytes(f).ToArray());
        var (code, output) = Gcc.Run(Exe, run, [name, "f", "in.bin", "out.bin"]);
        Assert.True(code == 0, $"{name}_run returned {code}: {output}");
        var bytes = File.ReadAllBytes(Path.Combine(run, "out.bin"));
        var y = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, y, 0, bytes.Length);
        return (y, Path.Combine(run, "dumps"));
    }

    /// <summary>Runs NAME_run_q on the quantized input bytes; returns the exit code and the output bytes.</summary>
    public (int Code, byte[] Output) RunQ(string name, byte[] qinput)
    {
        var run = NewRunDir();
        File.WriteAllBytes(Path.Combine(run, "in.bin"), qinput);
        var (code, _) = Gcc.Run(Exe, run, [name, "q", "in.bin", "out.bin"]);
        var path = Path.Combine(run, "out.bin");
        return (code, File.Exists(path) ? File.ReadAllBytes(path) : []);
    }

    private string NewRunDir()
    {
        var run = Path.Combine(Dir, "run" + Interlocked.Increment(ref _runs));
        Directory.CreateDirectory(Path.Combine(run, "dumps"));
        return run;
    }

    private static string Harness(IEnumerable<string> names)
    {
        var sb = new StringBuilder();
        sb.AppendLine("#include <stdio.h>").AppendLine("#include <string.h>").AppendLine("#include <stdint.h>");
        foreach (var n in names) sb.AppendLine($"#include \"{n}.h\"");
        sb.AppendLine("""
            static int rd(const char *p, void *d, size_t n) { FILE *f = fopen(p, "rb"); size_t r; if (!f) return 1; r = fread(d, 1, n, f); fclose(f); return r != n; }
            static int wr(const char *p, const void *d, size_t n) { FILE *f = fopen(p, "wb"); if (!f) return 1; fwrite(d, 1, n, f); return fclose(f) != 0; }
            int main(int argc, char **argv)
            {
                int q;
                if (argc != 5) return 100;
                q = argv[2][0] == 'q';
            """);
        foreach (var n in names)
        {
            var N = n.ToUpperInvariant();
            sb.AppendLine($$"""
                    if (strcmp(argv[1], "{{n}}") == 0) {
                        static float in[{{N}}_INPUT_COUNT], out[{{N}}_OUTPUT_COUNT];
                        static uint8_t qin[{{N}}_INPUT_COUNT], qout[{{N}}_OUTPUT_COUNT];
                        static double scratch[{{N}}_SCRATCH_SIZE / 8 + 1];
                        int rc;
                        if (q) {
                            if (rd(argv[3], qin, sizeof qin)) return 101;
                            rc = {{n}}_run_q(qin, qout, scratch);
                            if (rc) return rc;
                            return wr(argv[4], qout, sizeof qout) ? 102 : 0;
                        }
                        if (rd(argv[3], in, sizeof in)) return 101;
                        rc = {{n}}_run(in, out, scratch);
                        if (rc) return rc;
                        return wr(argv[4], out, sizeof out) ? 102 : 0;
                    }
                """);
        }
        sb.AppendLine("    return 103;").AppendLine("}");
        return sb.ToString();
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
