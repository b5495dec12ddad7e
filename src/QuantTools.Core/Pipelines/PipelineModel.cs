using System.Text.Json.Serialization;

namespace QuantTools.Core.Pipelines;

/// <summary>A problem in a pipeline file, with its place (1-based line and column).</summary>
public sealed record PipelineError(string File, int Line, int Column, string Message)
{
    public override string ToString() => $"{File}:{Line}:{Column}: {Message}";
}

/// <summary>One input of a job: tensors from a file (optionally selected by name pattern) or a seeded random tensor.</summary>
public sealed class PipelineInput
{
    /// <summary>The tensor file (absolute), or null for a random input.</summary>
    public string? File { get; init; }
    /// <summary>Tensor name patterns (wildcards) to take from <see cref="File"/>; empty: every tensor.</summary>
    public IReadOnlyList<string> Tensors { get; init; } = [];
    public int[]? RandomShape { get; init; }
    public long RandomSeed { get; init; }
    /// <summary>normal or uniform.</summary>
    public string Distribution { get; init; } = "normal";
    /// <summary>normal: mean and standard deviation; uniform: low and high.</summary>
    public double A { get; init; }
    public double B { get; init; } = 1;

    public override string ToString() => File is not null
        ? Path.GetFileName(File) + (Tensors.Count > 0 ? "#" + string.Join(",", Tensors) : "")
        : $"random [{string.Join(", ", RandomShape ?? [])}] seed {RandomSeed} {Distribution}";
}

/// <summary>
/// One expanded job: a job of the YAML file for one matrix combination and one model file. Its <see cref="Id"/> is
/// stable (name, matrix values, model), sharding and result files are keyed by it.
/// </summary>
public sealed class PipelineJob
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    /// <summary>Position in the whole expanded job list (before sharding); reports are ordered by it.</summary>
    public int Index { get; internal set; }
    public string? Model { get; init; }
    /// <summary>The model path relative to the pipeline file's folder (as reports show it).</summary>
    public string? ModelName { get; init; }
    public string? Architecture { get; init; }
    public IReadOnlyList<string> Engines { get; init; } = ["x86"];
    public IReadOnlyDictionary<string, string> Matrix { get; init; } = new Dictionary<string, string>();
    public IReadOnlyList<PipelineInput> Inputs { get; init; } = [];
    public IReadOnlyList<PipelineStep> Steps { get; init; } = [];
    /// <summary>Step kind → file name (under the job's output folder) for the step's artifact.</summary>
    public IReadOnlyDictionary<string, string> Outputs { get; init; } = new Dictionary<string, string>();
    /// <summary>The job's definition after variable and matrix substitution, in a canonical text form (hashed for -Resume).</summary>
    public required string Definition { get; init; }
    /// <summary>Every file the job reads (models, architecture, inputs, golden files), hashed for -Resume.</summary>
    public IReadOnlyList<string> Files { get; init; } = [];
    public required string Source { get; init; }
    public int Line { get; init; }

    /// <summary>A file-system-safe name for the job's result file, unique per id.</summary>
    public string FileName => PipelineHash.SafeName(Id);

    public override string ToString() => Id;
}

/// <summary>A parsed, validated and expanded pipeline file.</summary>
public sealed class PipelineDefinition
{
    public required string Source { get; init; }
    public string? Name { get; init; }
    public required IReadOnlyList<PipelineJob> Jobs { get; init; }
}

[JsonConverter(typeof(JsonStringEnumConverter<PipelineStatus>))]
public enum PipelineStatus { Passed, Failed, Error, Skipped }

/// <summary>One checked threshold (one JUnit test case).</summary>
public sealed class AssertionResult
{
    public required string Name { get; init; }
    public required string Metric { get; init; }
    public string? Layer { get; init; }
    public string? Engine { get; init; }
    public string? Expected { get; init; }
    public double? Actual { get; init; }
    public bool Passed { get; init; }
    public string? Message { get; init; }
    public override string ToString() => $"{(Passed ? "passed" : "FAILED")} {Name}" + (Message is null ? "" : $": {Message}");
}

/// <summary>The result of one step of one job.</summary>
public sealed class StepResult
{
    public required string Step { get; init; }
    public PipelineStatus Status { get; set; }
    public TimeSpan Duration { get; set; }
    public SortedDictionary<string, double> Metrics { get; init; } = new(StringComparer.Ordinal);
    public List<AssertionResult> Assertions { get; init; } = new();
    /// <summary>The artifact written by the step, relative to the output folder.</summary>
    public string? Output { get; set; }
    public string? Message { get; set; }
    /// <summary>A compare step's per-layer rows (null for other steps).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<CompareLayerRow>? Layers { get; set; }
    public override string ToString() => $"{Step}: {Status}" + (Message is null ? "" : $" ({Message})");
}

/// <summary>What went wrong, naming the job, step, layer and metric.</summary>
public sealed class PipelineFailure
{
    public required string Job { get; init; }
    public required string Step { get; init; }
    public string? Layer { get; init; }
    public required string Metric { get; init; }
    public string? Engine { get; init; }
    public string? Expected { get; init; }
    public double? Actual { get; init; }
    public required string Message { get; init; }
    public override string ToString() =>
        $"{Job}: {Step} {Metric}" + (Layer is null ? "" : $" layer '{Layer}'") + (Engine is null ? "" : $" [{Engine}]") + $": {Message}";
}

/// <summary>The result of one job, as streamed by Invoke-QuantPipeline and written to jobs/&lt;id&gt;.json.</summary>
public sealed class PipelineJobResult
{
    public required string Job { get; init; }
    public string Name { get; init; } = "";
    public int Index { get; set; }
    public string? Pipeline { get; init; }
    public string? Model { get; init; }
    public IReadOnlyList<string> Engines { get; init; } = [];
    public IReadOnlyDictionary<string, string> Matrix { get; init; } = new Dictionary<string, string>();
    public PipelineStatus Status { get; set; }
    public TimeSpan Duration { get; set; }
    public DateTimeOffset Started { get; set; }
    public List<StepResult> Steps { get; init; } = new();
    public List<PipelineFailure> Failures { get; init; } = new();
    public string? Error { get; set; }
    public string InputHash { get; init; } = "";
    /// <summary>The golden files -UpdateGolden rewrote for this job (null otherwise).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<string>? GoldenWritten { get; set; }
    /// <summary>Identifies the process run that produced this result.</summary>
    public string RunId { get; init; } = "";
    /// <summary>True when -Resume reused a result recorded by an earlier run (not saved).</summary>
    [JsonIgnore] public bool Resumed { get; set; }

    public override string ToString() => $"{Job}: {Status}";
}
