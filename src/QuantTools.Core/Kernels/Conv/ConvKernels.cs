using System.Buffers;
using System.Runtime.CompilerServices;
using QuantTools.Core.Kernels.Linear;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
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

    /// <summary>Paths of the conv accumulators: the managed pair GEMM's and the native VNNI library.</summary>
    public const KernelPath Implemented = PairGemm.Implemented | KernelPath.NativeVnni;

    public static void Run(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int n, int h, int w, int oh, int ow,
        OutputStage stage, Span<byte> y, KernelPath path)
    {
        if (path == KernelPath.NativeVnni)
        {
            if (Native.NativeGemm.Applies(pw))
            {
                Native.NativeGemm.Conv(pw, x, azp, n, h, w, oh, ow, stage, y, default);
                return;
            }
            path = KernelPaths.Widest(PairGemm.Implemented);
        }
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
                if (pw.FbgemmDepthwise && path == KernelPath.Avx512)
                    RawDepthwiseAvx512(pw, xb, azp, h, w, oh, ow, rb);
                else if (path == KernelPath.Scalar || saturating)
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

    /// <summary>
    /// FBGEMM's depthwise accumulators (tap pairs saturated to int16) for 16 output columns at a time: interior column
    /// blocks of stride-1 layers load 16 consecutive input bytes per tap; everything else (borders, stride 2) goes
    /// through the same formula one pixel at a time.
    /// </summary>
    public static void RawDepthwiseAvx512(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int h, int w, int oh, int ow, Span<int> raw)
    {
        var s = pw.Shape;
        int kh = s.KernelH, kw = s.KernelW, taps = kh * kw, p = oh * ow, mult = s.OutChannels / s.Groups;
        int sh = s.StrideH, sw = s.StrideW, ph = s.PadH, pwd = s.PadW;
        fixed (byte* xp = x)
        fixed (sbyte* wp = pw.W)
        fixed (int* rp = raw)
        {
            int* wt = stackalloc int[taps + 1];
            for (int o = 0; o < s.OutChannels; o++)
            {
                byte* xc = xp + (long)(o / mult) * h * w;
                for (int t = 0; t < taps; t++) wt[t] = wp[o * taps + t];
                wt[taps] = 0;
                int corr = -azp * pw.WSum[o] + taps * azp * pw.WZp[o], wzp = pw.WZp[o];
                int* ro = rp + (long)o * p;
                // interior columns [xa, xb): every tap of all 16 lanes is inside the row
                int xa = sw == 1 ? Math.Max(0, pwd) : ow, xb = sw == 1 ? Math.Min(ow, w - (kw - 1) + pwd) : ow;
                for (int yy = 0; yy < oh; yy++)
                {
                    int xx = 0;
                    for (; xx < ow; xx++)
                    {
                        if (xx >= xa && xx + 16 <= xb) break;
                        ro[yy * ow + xx] = DepthwisePixel(xc, wt, taps, kh, kw, yy * sh - ph, xx * sw - pwd, h, w, azp, corr, wzp);
                    }
                    var vzp = Vector512.Create(azp);
                    var lo = Vector512.Create(-32768); var hi = Vector512.Create(32767);
                    for (; xx + 16 <= xb; xx += 16)
                    {
                        Vector512<int> acc = Vector512<int>.Zero, asum = Vector512<int>.Zero;
                        int iy0 = yy * sh - ph, ix0 = xx - pwd;
                        for (int t = 0; t < taps; t += 2)
                        {
                            var a0 = TapRow(xc, iy0 + t / kw, ix0 + t % kw, h, w, vzp);
                            var a1 = t + 1 < taps ? TapRow(xc, iy0 + (t + 1) / kw, ix0 + (t + 1) % kw, h, w, vzp) : Vector512<int>.Zero;
                            var pr = a0 * Vector512.Create(wt[t]) + a1 * Vector512.Create(wt[t + 1]);
                            acc += Vector512.Max(Vector512.Min(pr, hi), lo);
                            asum += a0 + a1;
                        }
                        (acc + Vector512.Create(corr) - asum * Vector512.Create(wzp)).Store(ro + yy * ow + xx);
                    }
                    for (; xx < ow; xx++)
                        ro[yy * ow + xx] = DepthwisePixel(xc, wt, taps, kh, kw, yy * sh - ph, xx * sw - pwd, h, w, azp, corr, wzp);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> TapRow(byte* xc, int iy, int ix, int h, int w, Vector512<int> vzp) =>
        (uint)iy < (uint)h ? Avx512F.ConvertToVector512Int32(Vector128.Load(xc + (long)iy * w + ix)) : vzp;

    private static int DepthwisePixel(byte* xc, int* wt, int taps, int kh, int kw, int iy0, int ix0, int h, int w, int azp, int corr, int wzp)
    {
        int acc = 0, asum = 0;
        for (int t = 0; t < taps; t += 2)
        {
            int iy = iy0 + t / kw, ix = ix0 + t % kw;
            int a0 = (uint)iy < (uint)h && (uint)ix < (uint)w ? xc[iy * w + ix] : azp;
            int a1 = 0;
            if (t + 1 < taps)
            {
                iy = iy0 + (t + 1) / kw; ix = ix0 + (t + 1) % kw;
                a1 = (uint)iy < (uint)h && (uint)ix < (uint)w ? xc[iy * w + ix] : azp;
            }
            acc += Sat16(a0 * wt[t] + a1 * wt[t + 1]);
            asum += a0 + a1;
        }
        return unchecked(acc + corr - wzp * asum);
    }

    /// <summary>im2col (centered int16, panel-packed) + <see cref="PairGemm"/>, per group.</summary>
    public static void RawFast(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int h, int w, int oh, int ow, Span<int> raw,
        KernelPath path)
    {
        if (path == KernelPath.NativeVnni)
        {
            if (Native.NativeGemm.Applies(pw))
            {
                Native.NativeGemm.Conv(pw, x, azp, 1, h, w, oh, ow, null, default, raw);
                return;
            }
            path = KernelPaths.Widest(PairGemm.Implemented);
        }
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
                    if (work >= ParallelThreshold && panels > 1 && Parallelism.MaxThreads > 1)
                    {
                        short* cpp = cp;
                        Parallel.For(0, panels, Parallelism.Options, pi =>
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
                        int c0 = 0;
                        if (!s.Transposed && icg % 2 == 0)
                        {
                            // channel pairs (c, c+1) of one tap form one K pair: write whole int32 pairs
                            for (; c0 < icg; c0 += 2)
                            {
                                int kk = (ky * s.KernelW + kx) * icg + c0;
                                int* vi = (int*)(v + (kk >> 1) * PairGemm.PanelShortsPerPair);
                                byte* xa = xg + (long)c0 * h * w, xb = xa + (long)h * w;
                                for (int yy = 0; yy < oh; yy++)
                                {
                                    int ih = s.InputRow(yy, ky, h);
                                    if (ih < 0) continue;
                                    int* po = op + yy * ow;
                                    if (s.StrideW == 1)
                                    {
                                        byte* ra = xa + (long)ih * w + icx[x0], rb = xb + (long)ih * w + icx[x0];
                                        int xx = x0;
                                        if (Sse41.IsSupported)
                                        {
                                            var vz = Vector128.Create((short)azp);
                                            for (; xx + 8 <= x1; xx += 8, ra += 8, rb += 8)
                                            {
                                                int o0 = po[xx];
                                                if (po[xx + 7] - o0 != 14)
                                                {
                                                    // these 8 columns straddle two panels
                                                    for (int t = 0; t < 8; t++) vi[po[xx + t] >> 1] = PairGemm.Pair(ra[t] - azp, rb[t] - azp);
                                                    continue;
                                                }
                                                var va = Sse41.ConvertToVector128Int16(ra) - vz;
                                                var vb = Sse41.ConvertToVector128Int16(rb) - vz;
                                                short* d = v + (kk >> 1) * PairGemm.PanelShortsPerPair + o0;
                                                Sse2.UnpackLow(va, vb).Store(d);
                                                Sse2.UnpackHigh(va, vb).Store(d + 8);
                                            }
                                        }
                                        for (; xx < x1; xx++, ra++, rb++)
                                            vi[po[xx] >> 1] = PairGemm.Pair(*ra - azp, *rb - azp);
                                    }
                                    else
                                    {
                                        byte* ra = xa + (long)ih * w, rb = xb + (long)ih * w;
                                        for (int xx = x0; xx < x1; xx++)
                                        {
                                            int iw = icx[xx];
                                            vi[po[xx] >> 1] = PairGemm.Pair(ra[iw] - azp, rb[iw] - azp);
                                        }
                                    }
                                }
                            }
                        }
                        for (int c = c0; c < icg; c++)
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
