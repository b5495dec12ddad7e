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
}
