using System.Buffers;
using QuantTools.Core.Kernels.Requantization;

namespace QuantTools.Core.Kernels.Linear;

/// <summary>Linear accumulators: the scalar reference, the packed pair GEMM and the native library (identical int32 results).</summary>
internal static unsafe class LinearKernels
{
    /// <summary>The accumulators <c>raw[m][n]</c> along <paramref name="accumulation"/> (from <see cref="LinearPaths.Resolve(PackedLinearWeight)"/>).</summary>
    public static void Accumulate(PackedLinearWeight pw, ReadOnlySpan<byte> x, int azp, int m, Span<int> raw, LinearAccumulation accumulation)
    {
        switch (accumulation)
        {
            case LinearAccumulation.NativeAvx512Vnni: Native.NativeGemm.Linear(pw, x, azp, m, null, default, raw); break;
            case LinearAccumulation.Avx512PairGemm: AccumulateGemm(pw, x, azp, m, raw, KernelPath.Avx512); break;
            case LinearAccumulation.Avx2PairGemm: AccumulateGemm(pw, x, azp, m, raw, KernelPath.Avx2); break;
            default: AccumulateReference(pw, x, azp, m, raw); break; // Scalar, ScalarSat16 (saturation read from the layer)
        }
    }

    /// <summary>
    /// <c>raw[r, j] = Σ_k (x[r,k] − a_zp)(w[j,k] − w_zp[j])</c>; for fbgemm-avx2 and onednn-avx2 each even-aligned pair of raw u8 x s8
    /// products saturates to int16 first, then <c>− a_zp·Σw − w_zp·Σx + K·a_zp·w_zp</c>.
    /// </summary>
    public static void AccumulateReference(PackedLinearWeight pw, ReadOnlySpan<byte> x, int azp, int m, Span<int> raw)
    {
        int k = pw.InFeatures, n = pw.OutFeatures;
        bool sat = pw.Backend.SaturatesPairs();
        for (int r = 0; r < m; r++)
        {
            var xr = x.Slice(r * k, k);
            for (int j = 0; j < n; j++)
            {
                var wj = pw.W.AsSpan(j * k, k);
                int wzp = pw.WZp[j], acc = 0;
                if (!sat)
                {
                    for (int i = 0; i < k; i++) acc += (xr[i] - azp) * (wj[i] - wzp);
                }
                else
                {
                    int xs = 0;
                    for (int i = 0; i < k; i += 2)
                    {
                        int pair = xr[i] * wj[i] + (i + 1 < k ? xr[i + 1] * wj[i + 1] : 0);
                        acc += Math.Clamp(pair, short.MinValue, short.MaxValue);
                        xs += xr[i] + (i + 1 < k ? xr[i + 1] : 0);
                    }
                    acc = unchecked(acc - azp * pw.WSum[j] - wzp * xs + k * azp * wzp);
                }
                raw[r * n + j] = acc;
            }
        }
    }

    /// <summary>
    /// PairGemm over the packed weights on an explicit ISA: Avx512 / Avx2 tiles, any other path the portable scalar
    /// tile (tested against the reference, never chosen by <see cref="LinearPaths"/>). Exact arithmetic only.
    /// </summary>
    public static void AccumulateGemm(PackedLinearWeight pw, ReadOnlySpan<byte> x, int azp, int m, Span<int> raw, KernelPath path)
    {
        int k = pw.InFeatures, n = pw.OutFeatures, k2 = pw.K2;
        int[] a2 = ArrayPool<int>.Shared.Rent(Math.Max(1, m * k2));
        try
        {
            for (int r = 0; r < m; r++)
            {
                var xr = x.Slice(r * k, k);
                int baseIdx = r * k2;
                int i = 0;
                for (; i + 1 < k; i += 2) a2[baseIdx + (i >> 1)] = PairGemm.Pair(xr[i] - azp, xr[i + 1] - azp);
                if (i < k) a2[baseIdx + (i >> 1)] = PairGemm.Pair(xr[i] - azp, 0);
            }
            fixed (int* ap = a2)
            fixed (short* vp = pw.V)
            fixed (int* cp = raw)
            {
                int panels = PairGemm.Panels(n);
                long work = (long)m * k * n;
                int* app = ap; short* vpp = vp; int* cpp = cp;
                if (work >= PackedLinearWeight.ParallelThreshold && Parallelism.MaxThreads > 1)
                {
                    // split rows (in blocks of 4) x panels over cores; each task writes its own block of C
                    int rowBlocks = (m + 31) / 32;
                    Parallel.For(0, rowBlocks * panels, Parallelism.Options, t =>
                    {
                        int rb = t / panels, pi = t % panels;
                        PairGemm.Run(path, app, k2, vpp, n, cpp, n, rb * 32, Math.Min(m, rb * 32 + 32), pi, pi + 1);
                    });
                }
                else
                    PairGemm.Run(path, ap, k2, vp, n, cp, n, 0, m, 0, panels);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(a2);
        }
    }
}
