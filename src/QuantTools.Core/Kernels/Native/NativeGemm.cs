using System.Buffers;
using QuantTools.Core.Kernels.Conv;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Kernels.Requantization;

namespace QuantTools.Core.Kernels.Native;

/// <summary>
/// Conv and linear on <see cref="NativeVnni"/>: exact int32 accumulators <c>Σ a·w − a_zp·Σw − w_zp·Σa + K·a_zp·w_zp</c>
/// (u8 activations x s8 weights through VPDPBUSD, no saturation), so only the backends whose reference is that exact
/// sum use it (not fbgemm-avx2, not FBGEMM's depthwise kernel). With an <see cref="OutputStage"/> the native tile store
/// requantizes to quint8 exactly as <see cref="OutputStage.Apply"/>; without one it writes the int32 accumulators.
/// Work is cut into (column panel x 6-row tile) units, split evenly over <see cref="Parallelism.MaxThreads"/> threads.
/// </summary>
internal static unsafe class NativeGemm
{
    public static bool Applies(PackedLinearWeight pw) => NativeVnni.Available && !pw.Backend.SaturatesPairs();

    public static bool Applies(PackedConvWeight pw) =>
        NativeVnni.Available && !pw.Shape.Transposed && !pw.FbgemmDepthwise && !pw.Backend.SaturatesPairs();

    private static NativeVnni.Requant MakeRequant(OutputStage s, float* mult, float* beta, int* qbias) => new()
    {
        Mult = mult, Beta = beta, QBias = qbias,
        Qnnpack = s.Backend == QBackend.Qnnpack ? 1 : 0, Zp = s.ZeroPoint, Lo = s.Low, Hi = s.High,
    };

    private static int Parts(long macs, long threshold, long units) =>
        macs >= threshold && Parallelism.MaxThreads > 1 ? (int)Math.Min(Parallelism.MaxThreads, units) : 1;

    /// <summary>Linear over <paramref name="m"/> rows of <paramref name="x"/>: requantized into <paramref name="y"/> when
    /// <paramref name="stage"/> is given, else int32 into <paramref name="raw"/> ([m][n] either way).</summary>
    public static void Linear(PackedLinearWeight pw, ReadOnlySpan<byte> x, int azp, int m, OutputStage? stage, Span<byte> y, Span<int> raw)
    {
        int k = pw.InFeatures, n = pw.OutFeatures, kq = (k + 3) / 4;
        if (m == 0 || n == 0) return;
        sbyte[] wp = pw.VnniPacked();
        bool needXSum = pw.AnyWeightZeroPoint;
        int lda = k % 4 == 0 ? k : kq * 4;
        byte[]? padded = lda != k ? ArrayPool<byte>.Shared.Rent(m * lda) : null;
        int[]? xsum = needXSum ? ArrayPool<int>.Shared.Rent(m) : null;
        try
        {
            if (padded is not null)
            {
                var ps = padded.AsSpan(0, m * lda);
                for (int r = 0; r < m; r++)
                {
                    x.Slice(r * k, k).CopyTo(ps.Slice(r * lda, k));
                    ps.Slice(r * lda + k, lda - k).Clear();
                }
            }
            fixed (byte* xp0 = x)
            fixed (byte* xpad = padded)
            fixed (sbyte* wpp = wp)
            fixed (int* ws = pw.WSum)
            fixed (int* wz = pw.WZp)
            fixed (int* xs = xsum)
            fixed (byte* yp = y)
            fixed (int* rp = raw)
            fixed (float* mult = stage?.Multiplier)
            fixed (float* beta = stage?.Beta)
            fixed (int* qb = stage?.QBias)
            {
                byte* xp = padded is not null ? xpad : xp0;
                if (needXSum) NativeVnni.RowSums(xp, m, lda, lda, xs);
                var args = new NativeVnni.LinearArgs
                {
                    M = m, N = n, K = k, Kq = kq, Lda = lda, AZp = azp, NeedXSum = needXSum ? 1 : 0,
                    Wp = wpp, WSum = ws, WZp = wz, XSum = xs,
                };
                var rq = stage is null ? default : MakeRequant(stage, mult, beta, qb);
                byte* yo = stage is null ? null : yp;
                int* ro = stage is null ? rp : null;
                long units = (long)((n + NativeVnni.PanelCols - 1) / NativeVnni.PanelCols) * ((m + NativeVnni.TileRows - 1) / NativeVnni.TileRows);
                int parts = Parts((long)m * k * n, PackedLinearWeight.ParallelThreshold, units);
                if (parts == 1)
                    NativeVnni.Linear(&args, &rq, xp, yo, ro, 0, units);
                else
                {
                    nint a = (nint)(&args), q = (nint)(&rq), xa = (nint)xp, ya = (nint)yo, ra = (nint)ro;
                    Parallel.For(0, parts, Parallelism.Options, i =>
                    {
                        var (u0, u1) = NativeVnni.Range(units, parts, i);
                        NativeVnni.Linear((NativeVnni.LinearArgs*)a, (NativeVnni.Requant*)q, (byte*)xa, (byte*)ya, (int*)ra, u0, u1);
                    });
                }
            }
        }
        finally
        {
            if (padded is not null) ArrayPool<byte>.Shared.Return(padded);
            if (xsum is not null) ArrayPool<int>.Shared.Return(xsum);
        }
    }

    /// <summary>Conv over <paramref name="batch"/> NCHW images: requantized into <paramref name="y"/> when
    /// <paramref name="stage"/> is given, else int32 accumulators into <paramref name="raw"/> ([batch][oc][oh·ow]).</summary>
    public static void Conv(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int batch, int h, int w, int oh, int ow,
        OutputStage? stage, Span<byte> y, Span<int> raw)
    {
        var s = pw.Shape;
        if (batch == 0) return;
        sbyte[] wq = pw.VnniPacked();
        int kq = (s.K + 3) / 4;
        fixed (byte* xp = x)
        fixed (sbyte* wqp = wq)
        fixed (int* ws = pw.WSum)
        fixed (int* wz = pw.WZp)
        fixed (byte* yp = y)
        fixed (int* rp = raw)
        fixed (float* mult = stage?.Multiplier)
        fixed (float* beta = stage?.Beta)
        fixed (int* qb = stage?.QBias)
        {
            var args = new NativeVnni.ConvArgs
            {
                Batch = batch, Cin = s.InChannels, H = h, W = w, Oc = s.OutChannels, Groups = s.Groups,
                Kh = s.KernelH, Kw = s.KernelW, Sh = s.StrideH, Sw = s.StrideW, Ph = s.PadH, Pw = s.PadW,
                Dh = s.DilationH, Dw = s.DilationW, Oh = oh, Ow = ow,
                K = s.K, Kq = kq, AZp = azp, NeedXSum = pw.AnyWeightZeroPoint ? 1 : 0,
                Wq = wqp, WSum = ws, WZp = wz,
            };
            var rq = stage is null ? default : MakeRequant(stage, mult, beta, qb);
            byte* yo = stage is null ? null : yp;
            int* ro = stage is null ? rp : null;
            long units = NativeVnni.ConvUnits(&args);
            int scratchBytes = checked((int)NativeVnni.ConvScratch(&args));
            long macs = (long)batch * s.OutChannels * oh * ow * s.K;
            int parts = Parts(macs, ConvKernels.ParallelThreshold, units);
            if (parts == 1)
            {
                byte[] scratch = ArrayPool<byte>.Shared.Rent(scratchBytes);
                try
                {
                    fixed (byte* sp = scratch) NativeVnni.Conv(&args, &rq, xp, yo, ro, 0, units, sp);
                }
                finally { ArrayPool<byte>.Shared.Return(scratch); }
            }
            else
            {
                nint a = (nint)(&args), q = (nint)(&rq), xa = (nint)xp, ya = (nint)yo, ra = (nint)ro;
                Parallel.For(0, parts, Parallelism.Options, i =>
                {
                    var (u0, u1) = NativeVnni.Range(units, parts, i);
                    byte[] scratch = ArrayPool<byte>.Shared.Rent(scratchBytes);
                    try
                    {
                        fixed (byte* sp = scratch)
                            NativeVnni.Conv((NativeVnni.ConvArgs*)a, (NativeVnni.Requant*)q, (byte*)xa, (byte*)ya, (int*)ra, u0, u1, sp);
                    }
                    finally { ArrayPool<byte>.Shared.Return(scratch); }
                });
            }
        }
    }
}
