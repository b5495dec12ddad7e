using System.Buffers;
using QuantTools.Core.Kernels.Linear;
using QuantTools.Core.Kernels.Requantization;

namespace QuantTools.Core.Kernels.Conv;

/// <summary>
/// Conv accumulators and requantization. <see cref="RawReference"/> reads like the formula (one output at a time);
/// the fast path builds a zero-point-centered im2col panel per (image, group) and runs <see cref="PairGemm"/>.
/// Both give identical int32 accumulators, then share <see cref="OutputStage"/>.
/// </summary>
internal static unsafe class ConvKernels
{
    /// <summary>Work (MACs) above which images / panels are spread over cores.</summary>
    public static long ParallelThreshold { get; set; } = 1 << 21;

    public static void Run(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int n, int h, int w, int oh, int ow,
        OutputStage stage, Span<byte> y, KernelPath path)
    {
        var s = pw.Shape;
        int p = oh * ow, oc = s.OutChannels;
        bool saturating = pw.FbgemmDepthwise || pw.Backend == QBackend.FbgemmAvx2;
        int[] raw = ArrayPool<int>.Shared.Rent(oc * p);
        try
        {
            for (int b = 0; b < n; b++)
            {
                var xb = x.Slice(b * s.InChannels * h * w, s.InChannels * h * w);
                var rb = raw.AsSpan(0, oc * p);
                if (path == KernelPath.Scalar || saturating)
                    RawReference(pw, xb, azp, h, w, oh, ow, rb);
                else
                    RawFast(pw, xb, azp, h, w, oh, ow, rb, path);
                var yb = y.Slice(b * oc * p, oc * p);
                var rpath = KernelPaths.Choose(OutputStage.Implemented);
                for (int o = 0; o < oc; o++)
                    stage.ApplyChannel(rb.Slice(o * p, p), yb.Slice(o * p, p), o, rpath);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(raw);
        }
    }

    /// <summary>Saturates to int16, as <c>vpmaddubsw</c> does to each product pair.</summary>
    public static int Sat16(int v) => Math.Clamp(v, short.MinValue, short.MaxValue);

    /// <summary>
    /// The accumulators of one image, [C_out][OH·OW], straight from the definition:
    /// exact backends: <c>Σ_k (a − a_zp)(w − w_zp)</c> with padding reading a_zp;
    /// FBGEMM depthwise (any host) and fbgemm-avx2 GEMM: <c>Σ_pairs sat16(a₀w₀ + a₁w₁) − a_zp·Σw − w_zp·Σa + K·a_zp·w_zp</c>
    /// on raw uint8 / int8 values, pairs taken in K order (taps row-major for depthwise; (kh, kw, c) for the GEMM).
    /// </summary>
    public static void RawReference(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int h, int w, int oh, int ow, Span<int> raw)
    {
        var s = pw.Shape;
        int icg = s.InPerGroup, ocg = s.OutPerGroup, k = s.K, p = oh * ow;
        bool saturating = pw.FbgemmDepthwise || pw.Backend == QBackend.FbgemmAvx2;
        int[] av = new int[k];
        for (int o = 0; o < s.OutChannels; o++)
        {
            int g = o / ocg, wzp = pw.WZp[o];
            var wo = pw.W.AsSpan(o * k, k);
            for (int yy = 0; yy < oh; yy++)
                for (int xx = 0; xx < ow; xx++)
                {
                    for (int ky = 0; ky < s.KernelH; ky++)
                    {
                        int ih = s.InputRow(yy, ky, h);
                        for (int kx = 0; kx < s.KernelW; kx++)
                        {
                            int iw = ih < 0 ? -1 : s.InputCol(xx, kx, w);
                            for (int c = 0; c < icg; c++)
                                av[(ky * s.KernelW + kx) * icg + c] = iw < 0 ? azp : x[((g * icg + c) * h + ih) * w + iw];
                        }
                    }
                    int acc = 0;
                    if (!saturating)
                    {
                        for (int i = 0; i < k; i++) acc += (av[i] - azp) * (wo[i] - wzp);
                    }
                    else
                    {
                        int asum = 0;
                        for (int i = 0; i < k; i += 2)
                        {
                            int pair = av[i] * wo[i] + (i + 1 < k ? av[i + 1] * wo[i + 1] : 0);
                            acc += Sat16(pair);
                            asum += av[i] + (i + 1 < k ? av[i + 1] : 0);
                        }
                        acc = unchecked(acc - azp * pw.WSum[o] - wzp * asum + k * azp * wzp);
                    }
                    raw[o * p + yy * ow + xx] = acc;
                }
        }
    }

    /// <summary>im2col (centered int16, panel-packed) + <see cref="PairGemm"/>, per group.</summary>
    public static void RawFast(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int h, int w, int oh, int ow, Span<int> raw,
        KernelPath path)
    {
        var s = pw.Shape;
        int icg = s.InPerGroup, ocg = s.OutPerGroup, k = s.K, k2 = pw.K2, p = oh * ow;
        int len = PairGemm.PackedLength(k2, p);
        short[] col = ArrayPool<short>.Shared.Rent(len);
        try
        {
            fixed (byte* xp = x)
            fixed (short* cp = col)
            fixed (int* a2 = pw.A2)
            fixed (int* rp = raw)
            {
                for (int g = 0; g < s.Groups; g++)
                {
                    Im2Col(s, xp + (long)g * icg * h * w, azp, h, w, oh, ow, k, k2, cp, len);
                    int* ag = a2 + (long)g * ocg * k2;
                    int* cg = rp + (long)g * ocg * p;
                    int panels = PairGemm.Panels(p);
                    long work = (long)ocg * k * p;
                    if (work >= ParallelThreshold && panels > 1)
                    {
                        short* cpp = cp;
                        Parallel.For(0, panels, pi =>
                            PairGemm.Run(path, ag, k2, cpp, p, cg, p, 0, ocg, pi, pi + 1));
                    }
                    else
                        PairGemm.Run(path, ag, k2, cp, p, cg, p, 0, ocg, 0, panels);
                }
            }
        }
        finally
        {
            ArrayPool<short>.Shared.Return(col);
        }
    }

    /// <summary>Fills the panel-packed, zero-point-centered im2col of one group: V[k][pixel], k = (kh, kw, c).</summary>
    private static void Im2Col(ConvShape s, byte* xg, int azp, int h, int w, int oh, int ow, int k, int k2, short* v, int len)
    {
        new Span<short>(v, len).Clear();
        int icg = s.InPerGroup;
        long panelStride = (long)k2 * PairGemm.PanelShortsPerPair;
        // offset of each output column inside a packed pair row, and the input column each (kx, ox) reads
        int[] offs = ArrayPool<int>.Shared.Rent(oh * ow);
        int[] icol = ArrayPool<int>.Shared.Rent(s.KernelW * ow);
        try
        {
            for (int pix = 0; pix < oh * ow; pix++)
                offs[pix] = (int)((pix / PairGemm.PanelCols) * panelStride + (pix % PairGemm.PanelCols) * 2);
            for (int kx = 0; kx < s.KernelW; kx++)
                for (int xx = 0; xx < ow; xx++) icol[kx * ow + xx] = s.InputCol(xx, kx, w);
            fixed (int* op = offs)
            fixed (int* ic = icol)
            {
                for (int ky = 0; ky < s.KernelH; ky++)
                    for (int kx = 0; kx < s.KernelW; kx++)
                    {
                        int* icx = ic + kx * ow;
                        // valid output columns form one contiguous range for a plain conv
                        int x0 = 0, x1 = ow;
                        if (!s.Transposed)
                        {
                            while (x0 < ow && icx[x0] < 0) x0++;
                            while (x1 > x0 && icx[x1 - 1] < 0) x1--;
                        }
                        for (int c = 0; c < icg; c++)
                        {
                            int kk = (ky * s.KernelW + kx) * icg + c;
                            short* vk = v + (kk >> 1) * PairGemm.PanelShortsPerPair + (kk & 1);
                            byte* xc = xg + (long)c * h * w;
                            for (int yy = 0; yy < oh; yy++)
                            {
                                int ih = s.InputRow(yy, ky, h);
                                if (ih < 0) continue;   // padding: centered value 0 (already cleared)
                                byte* row = xc + (long)ih * w;
                                int* po = op + yy * ow;
                                if (!s.Transposed)
                                {
                                    if (s.StrideW == 1)
                                    {
                                        byte* src = row + icx[x0];
                                        for (int xx = x0; xx < x1; xx++) vk[po[xx]] = (short)(*src++ - azp);
                                    }
                                    else
                                        for (int xx = x0; xx < x1; xx++) vk[po[xx]] = (short)(row[icx[xx]] - azp);
                                }
                                else
                                    for (int xx = 0; xx < ow; xx++)
                                    {
                                        int iw = icx[xx];
                                        if (iw >= 0) vk[po[xx]] = (short)(row[iw] - azp);
                                    }
                            }
                        }
                    }
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(offs);
            ArrayPool<int>.Shared.Return(icol);
        }
    }
}
