namespace QuantTools.Core.Kernels;

/// <summary>
/// How many threads Core's kernels may use for one call (default: all cores). Large inputs are split into chunks
/// whose results are combined exactly, so the setting never changes a result, only the time. Benchmarks set it to 1
/// for single-thread rows; cmdlets map -ThrottleLimit to it.
/// </summary>
public static class Parallelism
{
    private static int _maxThreads = Environment.ProcessorCount;

    public static int MaxThreads
    {
        get => _maxThreads;
        set => _maxThreads = value >= 1 ? value
            : throw new QuantToolsException(ErrorCode.InvalidArgument, $"MaxThreads must be at least 1, got {value}");
    }

    public static ParallelOptions Options => new() { MaxDegreeOfParallelism = _maxThreads };

    /// <summary>
    /// Runs <paramref name="body"/>(begin, end) over [0, n): in one call when n is below <paramref name="threshold"/>
    /// or one thread is allowed, else in chunks of <paramref name="chunk"/> elements across the allowed threads.
    /// </summary>
    public static void ForRanges(int n, int threshold, int chunk, Action<int, int> body)
    {
        if (n < threshold || _maxThreads <= 1)
        {
            body(0, n);
            return;
        }
        Parallel.For(0, (n + chunk - 1) / chunk, Options, c =>
        {
            int b = c * chunk;
            body(b, Math.Min(n, b + chunk));
        });
    }
}
