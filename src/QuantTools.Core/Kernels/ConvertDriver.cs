using System.Runtime.CompilerServices;

namespace QuantTools.Core.Kernels;

/// <summary>
/// An element-wise conversion (quantize, dequantize) written once per width, in the style of .NET's TensorPrimitives
/// operators: the scalar <see cref="Invoke(TIn)"/> is the reference formula, and each vector method converts one block
/// of <c>Block*</c> consecutive elements so that every element equals <see cref="Invoke(TIn)"/> of it. A block size of
/// 0 means the operator has no such path. <see cref="ConvertDriver"/> picks the width and runs the tail through the scalar form.
/// </summary>
internal unsafe interface IConvertOperator<TIn, TOut> where TIn : unmanaged where TOut : unmanaged
{
    static abstract int Vector128Block { get; }
    static abstract int Vector256Block { get; }
    static abstract int Vector512Block { get; }
    /// <summary>Elements per block of the raw AVX2 intrinsics path (0: none).</summary>
    static abstract int Avx2Block { get; }
    /// <summary>Elements per block of the raw AVX-512 intrinsics path (0: none, or the CPU lacks the instructions it uses).</summary>
    static abstract int Avx512Block { get; }

    TOut Invoke(TIn x);
    void Invoke128(TIn* x, TOut* y);
    void Invoke256(TIn* x, TOut* y);
    void Invoke512(TIn* x, TOut* y);
    void InvokeAvx2(TIn* x, TOut* y);
    void InvokeAvx512(TIn* x, TOut* y);
}

/// <summary>
/// The one loop behind every quantize / dequantize path: checks lengths, resolves the family's path, splits large
/// inputs across the run's thread budget (<see cref="Parallelism.ForRanges"/>; chunks are a multiple of every block,
/// so block boundaries do not depend on the split), runs whole blocks of the chosen width, then the scalar tail.
/// </summary>
internal static unsafe class ConvertDriver
{
    /// <summary>Inputs at least this long are split across cores (in chunks of <see cref="ParallelChunk"/>).</summary>
    public static int ParallelThreshold { get; set; } = 1 << 20;
    public const int ParallelChunk = 1 << 18;

    public static void Run<TIn, TOut, TOp>(in TOp op, KernelFamily family, ReadOnlySpan<TIn> x, Span<TOut> y)
        where TIn : unmanaged where TOut : unmanaged where TOp : struct, IConvertOperator<TIn, TOut>
    {
        CheckLengths(x.Length, y.Length);
        var path = family.Resolve();
        if (path == KernelPath.Scalar)
        {
            Scalar(op, x, y);
            return;
        }
        fixed (TIn* px = x)
        fixed (TOut* py = y)
        {
            if (x.Length < ParallelThreshold || Parallelism.MaxThreads <= 1)
            {
                Run(op, path, px, py, x.Length); // what ForRanges would do, without a delegate per call
                return;
            }
            var o = op;
            nint sx = (nint)px, sy = (nint)py;
            Parallelism.ForRanges(x.Length, ParallelThreshold, ParallelChunk, (b, e) => Run(o, path, (TIn*)sx + b, (TOut*)sy + b, e - b));
        }
    }

    /// <summary>
    /// One explicit path, whether or not this CPU accelerates it and without a thread split (tests: portable
    /// <c>Vector512&lt;T&gt;</c> code runs in software on an AVX2 host). A raw-intrinsics path the CPU lacks runs the scalar form.
    /// </summary>
    public static void RunOnPath<TIn, TOut, TOp>(in TOp op, KernelPath path, ReadOnlySpan<TIn> x, Span<TOut> y)
        where TIn : unmanaged where TOut : unmanaged where TOp : struct, IConvertOperator<TIn, TOut>
    {
        CheckLengths(x.Length, y.Length);
        fixed (TIn* px = x)
        fixed (TOut* py = y)
            Run(op, path, px, py, x.Length);
    }

    /// <summary>The reference: the scalar form for every element.</summary>
    public static void Scalar<TIn, TOut, TOp>(in TOp op, ReadOnlySpan<TIn> x, Span<TOut> y)
        where TIn : unmanaged where TOut : unmanaged where TOp : struct, IConvertOperator<TIn, TOut>
    {
        for (int i = 0; i < x.Length; i++) y[i] = op.Invoke(x[i]);
    }

    /// <summary>Blocks of <paramref name="path"/>'s width over [0, n), then the scalar tail.</summary>
    /// <remarks>
    /// Not inlined: <paramref name="op"/> is this frame's own copy, so the JIT keeps its pre-broadcast vectors in
    /// registers across the loop (through a reference it would reload them after every store, which may alias).
    /// </remarks>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Run<TIn, TOut, TOp>(TOp op, KernelPath path, TIn* x, TOut* y, int n)
        where TIn : unmanaged where TOut : unmanaged where TOp : struct, IConvertOperator<TIn, TOut>
    {
        int i = 0;
        switch (path)
        {
            case KernelPath.Avx512 when TOp.Avx512Block > 0:
                for (; i <= n - TOp.Avx512Block; i += TOp.Avx512Block) op.InvokeAvx512(x + i, y + i);
                break;
            case KernelPath.Avx2 when TOp.Avx2Block > 0:
                for (; i <= n - TOp.Avx2Block; i += TOp.Avx2Block) op.InvokeAvx2(x + i, y + i);
                break;
            case KernelPath.Vector512 when TOp.Vector512Block > 0:
                for (; i <= n - TOp.Vector512Block; i += TOp.Vector512Block) op.Invoke512(x + i, y + i);
                break;
            case KernelPath.Vector256 when TOp.Vector256Block > 0:
                for (; i <= n - TOp.Vector256Block; i += TOp.Vector256Block) op.Invoke256(x + i, y + i);
                break;
            case KernelPath.Vector128 when TOp.Vector128Block > 0:
                for (; i <= n - TOp.Vector128Block; i += TOp.Vector128Block) op.Invoke128(x + i, y + i);
                break;
        }
        for (; i < n; i++) y[i] = op.Invoke(x[i]);
    }

    internal static void CheckLengths(int a, int b)
    {
        if (a != b)
            throw new QuantToolsException(ErrorCode.ShapeMismatch, $"input has {a} elements but output has {b}");
    }
}
