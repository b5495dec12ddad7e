namespace QuantTools.Core.Kernels;

/// <summary>
/// How many threads Core's kernels may use for one call. Large inputs are split into chunks whose results are combined
/// exactly, so the budget never changes a result, only the time.
/// <para>A run gets its own budget through <see cref="ExecutionOptions.MaxThreads"/> (<c>ModelExecutor.Run</c>, pipeline jobs)
/// or <see cref="Limit"/>: the budget holds for that async flow only (an <see cref="AsyncLocal{T}"/>, which flows into
/// the kernels' Parallel.For workers), so runs side by side in one process (parallel runspaces, pipeline jobs) each keep
/// theirs. Outside any such scope the process default applies (all cores; hosts and benchmarks may set it).</para>
/// </summary>
public static class Parallelism
{
    private static int _defaultMaxThreads = Environment.ProcessorCount;
    private static readonly AsyncLocal<int?> Scoped = new();

    /// <summary>
    /// The budget kernels honour now: the innermost <see cref="Limit"/> scope of this async flow, else the process default.
    /// Setting it changes the process default (every flow without a scope of its own); a single run should pass
    /// <see cref="ExecutionOptions"/> instead.
    /// </summary>
    public static int MaxThreads
    {
        get => Scoped.Value ?? _defaultMaxThreads;
        set => _defaultMaxThreads = Check(value);
    }

    /// <summary>
    /// Limits the kernels of the current async flow (and the tasks it starts) to <paramref name="maxThreads"/> threads until
    /// the returned scope is disposed; null leaves the budget as it is. Scopes nest.
    /// </summary>
    public static IDisposable Limit(int? maxThreads)
    {
        if (maxThreads is not { } n) return NoScope.Instance;
        var previous = Scoped.Value;
        Scoped.Value = Check(n);
        return new Scope(previous);
    }

    public static ParallelOptions Options => new() { MaxDegreeOfParallelism = MaxThreads };

    /// <summary>
    /// Runs <paramref name="body"/>(begin, end) over [0, n): in one call when n is below <paramref name="threshold"/>
    /// or one thread is allowed, else in chunks of <paramref name="chunk"/> elements across the allowed threads.
    /// </summary>
    public static void ForRanges(int n, int threshold, int chunk, Action<int, int> body)
    {
        int threads = MaxThreads;
        if (n < threshold || threads <= 1)
        {
            body(0, n);
            return;
        }
        Parallel.For(0, (n + chunk - 1) / chunk, new ParallelOptions { MaxDegreeOfParallelism = threads }, c =>
        {
            int b = c * chunk;
            body(b, Math.Min(n, b + chunk));
        });
    }

    private static int Check(int value) => value >= 1 ? value
        : throw new QuantToolsException(ErrorCode.InvalidArgument, $"MaxThreads must be at least 1, got {value}");

    private sealed class Scope(int? previous) : IDisposable
    {
        public void Dispose() => Scoped.Value = previous;
    }

    private sealed class NoScope : IDisposable
    {
        public static readonly NoScope Instance = new();
        public void Dispose() { }
    }
}

/// <summary>What a caller lets one run (a model batch, a pipeline job) use.</summary>
public sealed record ExecutionOptions
{
    /// <summary>Threads the run's kernels may use; null: the process default (<see cref="Parallelism.MaxThreads"/>, all cores).</summary>
    public int? MaxThreads { get; init; }

    public static ExecutionOptions Default { get; } = new();
}
