using QuantTools.Core.Kernels;
using QuantTools.Core.Models.Graph;

namespace QuantTools.Core.Export;

/// <summary>What Export-QuantModel writes.</summary>
public enum ExportFormat
{
    /// <summary>C99 sources: name.h, name.c, name_weights.c, qt_kernels.h, qt_kernels.c.</summary>
    C,
    /// <summary>name.json (every layer's integer parameters) and name.safetensors (weights, biases, tables).</summary>
    Json,
}

/// <summary>Options of one export.</summary>
public sealed record ExportOptions
{
    public QEngine Engine { get; init; } = QEngine.X86;
    /// <summary>
    /// The CPU class whose PyTorch the code reproduces (which library an x86 conv runs on, int16 pair saturation, ATen's
    /// vector widths); the golden host's class by default. <c>fbgemm-avx2</c> always means <see cref="CpuClass.Avx2"/>.
    /// </summary>
    public CpuClass Cpu { get; init; } = CpuClass.Avx512Vnni;
    public ExportFormat Format { get; init; } = ExportFormat.C;
    /// <summary>The float input's shape, e.g. [1, 3, 224, 224] (NCHW, batch included).</summary>
    public required int[] InputShape { get; init; }
    /// <summary>Prefix of file names and C identifiers (a C identifier).</summary>
    public string Name { get; init; } = "model";
    /// <summary>
    /// C only: requantize with fixed-point multipliers (int32 multiplier, shift; gemmlowp rounding) and int32 biases
    /// instead of PyTorch's float32 arithmetic, so run_q needs no FPU. Not PyTorch's numbers: results differ from
    /// PyTorch by the rounding of the approximated multipliers (the tests measure by how much).
    /// </summary>
    public bool IntegerOnly { get; init; }
}

/// <summary>The result of an export: sizes of the generated model and the files it consists of.</summary>
public sealed class ExportResult
{
    public required string Name { get; init; }
    public required string Source { get; init; }
    public required string Engine { get; init; }
    public required ExportFormat Format { get; init; }
    public required int[] InputShape { get; init; }
    public required int[] OutputShape { get; init; }
    /// <summary>Bytes of constant data (weights, biases, multipliers, tables): flash / ROM on a device.</summary>
    public required long FlashBytes { get; init; }
    /// <summary>Bytes of scratch memory a run needs (activations): RAM on a device.</summary>
    public required long RamBytes { get; init; }
    /// <summary>Steps that compute (views, transposes and chunks are not counted).</summary>
    public required int LayerCount { get; init; }
    /// <summary>True when the integer path (run_q) does float arithmetic: PyTorch's own requantization needs float32.</summary>
    public required bool FpuNeeded { get; init; }
    /// <summary>Full paths of the files (written, or that would be written under -WhatIf).</summary>
    public required IReadOnlyList<string> Files { get; init; }
    /// <summary>The C requantizes in fixed point (an approximation of PyTorch, see <see cref="ExportOptions.IntegerOnly"/>).</summary>
    public bool IntegerOnly { get; init; }
    /// <summary>False when nothing was written (-WhatIf, or a file was not confirmed).</summary>
    public bool Written { get; init; }
    /// <summary>The plan the files were made from.</summary>
    public required ExportPlan Plan { get; init; }

    public override string ToString() => $"{Name}: {LayerCount} layers, flash {FlashBytes} B, RAM {RamBytes} B, FPU {(FpuNeeded ? "needed" : "not needed")}";
}

/// <summary>
/// Exports a quantized model (its <see cref="ModelGraph"/>) as code that reproduces PyTorch on a device, or as a JSON
/// description of every layer's integer parameters. All file contents are made in memory first: when any op cannot be
/// expressed, the error names the layer and op and nothing is written.
/// </summary>
public static class ModelExporter
{
    /// <summary>The files an export would write (name, content), without writing them.</summary>
    public static (ExportPlan Plan, IReadOnlyList<(string File, byte[] Content)> Files, long FlashBytes) Render(ModelGraph graph, ExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(options);
        CheckName(options.Name);
        if (options.IntegerOnly && options.Format != ExportFormat.C)
            throw new QuantToolsException(ErrorCode.InvalidArgument, "-IntegerOnly applies to -Format C (the JSON gives every multiplier in both forms already)");
        var plan = ExportPlanner.Plan(graph, options.Engine, options.Cpu, options.InputShape, options.Name);
        if (options.Format == ExportFormat.C)
        {
            var (files, flash) = CWriter.Write(plan, options.IntegerOnly);
            return (plan, files.Select(f => (f.File, System.Text.Encoding.UTF8.GetBytes(f.Text))).ToList(), flash);
        }
        var (jfiles, jflash) = JsonWriter.Write(plan);
        return (plan, jfiles, jflash);
    }

    /// <summary>
    /// Exports into <paramref name="outputDir"/> (created when missing). Existing files are replaced only with
    /// <paramref name="force"/>; with <paramref name="write"/> false nothing is written (what -WhatIf lists).
    /// <paramref name="confirm"/>, when given, is asked about every file (full path) before anything is written; the
    /// files are written only when it says yes to all of them.
    /// </summary>
    public static ExportResult Export(ModelGraph graph, ExportOptions options, string outputDir, bool force, bool write = true,
        Func<string, bool>? confirm = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(outputDir);
        var (plan, files, flash) = Render(graph, options);
        var paths = files.Select(f => Path.GetFullPath(Path.Combine(outputDir, f.File))).ToList();
        if (write && confirm is not null)
        {
            bool all = true;
            foreach (var p in paths) all &= confirm(p);
            write = all;
        }
        if (write)
        {
            if (!force)
                foreach (var p in paths)
                    if (File.Exists(p))
                        throw new QuantToolsException(ErrorCode.IoError, "the file exists; use -Force to replace it", p);
            try
            {
                Directory.CreateDirectory(outputDir);
                for (int i = 0; i < files.Count; i++)
                {
                    // write next to the target, then move: a failed export never leaves half a file
                    string tmp = paths[i] + ".tmp";
                    File.WriteAllBytes(tmp, files[i].Content);
                    File.Move(tmp, paths[i], overwrite: true);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new QuantToolsException(ErrorCode.IoError, e.Message, outputDir, e);
            }
        }
        return new ExportResult
        {
            Name = options.Name, Source = graph.Source, Engine = options.Engine.TorchName(), Format = options.Format,
            InputShape = plan.InputShape, OutputShape = plan.Output.Shape, FlashBytes = flash, RamBytes = plan.ScratchBytes,
            LayerCount = plan.LayerCount, FpuNeeded = plan.FpuNeeded && !options.IntegerOnly, IntegerOnly = options.IntegerOnly,
            Files = paths, Plan = plan, Written = write,
        };
    }

    private static void CheckName(string name)
    {
        bool ok = name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');
        if (!ok || name.Length > 64)
            throw new QuantToolsException(ErrorCode.InvalidArgument, $"the name must be a C identifier (letters, digits, '_', not starting with a digit), got '{name}'");
    }
}
