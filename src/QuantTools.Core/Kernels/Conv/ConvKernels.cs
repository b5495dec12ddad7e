using System.Buffers;
using System.Runtime.CompilerServices;
using QuantTools.Core.Kernels.Linear;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using QuantTools.Core.Kernels.Requantization;

namespace QuantTools.Core.Kernels.Conv;

/// <summary>
/// Conv accumulators and requantization. <see cref="AccumulateReference"/> reads like the formula (one output at a time);
/// the fast path builds a zero-point-centered im2col panel per (image, group) and runs <see cref="PairGemm"/>.
/// Both give identical int32 accumulators, then share <see cref="OutputStage"/>.
/// </summary>
internal static unsafe class ConvKernels
{
    /// <summary>Work (MACs) above which images / panels are spread over cores.</summary>
    public static long ParallelThreshold { get; set; } = 1 << 21;

    /// <summary>
    /// Runs the layer on <paramref name="n"/> images along <paramref name="plan"/> (from <see cref="ConvPaths.Resolve(PackedConvWeight)"/>):
    /// accumulators per image, then the output stage per output channel.
    /// </summary>
    public static void Run(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int n, int h, int w, int oh, int ow,
        OutputStage stage, Span<byte> y, ConvPlan plan)
    {
        if (plan.Accumulation == ConvAccumulation.NativeAvx512Vnni)
        {
            Native.NativeGemm.Conv(pw, x, azp, n, h, w, oh, ow, stage, y, default);
            return;
        }
        var s = pw.Shape;
        int p = oh * ow, oc = s.OutChannels;
        int[] raw = ArrayPool<int>.Shared.Rent(oc * p);
        try
        {
            for (int b = 0; b < n; b++)
            {
                var xb = x.Slice(b * s.InChannels * h * w, s.InChannels * h * w);
                var rb = raw.AsSpan(0, oc * p);
                Accumulate(pw, xb, azp, h, w, oh, ow, rb, plan.Accumulation);
                var yb = y.Slice(b * oc * p, oc * p);
                for (int o = 0; o < oc; o++)
                    stage.ApplyChannel(rb.Slice(o * p, p), yb.Slice(o * p, p), o, plan.Requantization);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(raw);
        }
    }

    /// <summary>The accumulators of one image, [C_out][OH·OW], along <paramref name="accumulation"/>.</summary>
    public static void Accumulate(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int h, int w, int oh, int ow, Span<int> raw,
        ConvAccumulation accumulation)
    {
        switch (accumulation)
        {
            case ConvAccumulation.Avx512Depthwise or ConvAccumulation.Avx512DepthwiseSat16:
                AccumulateDepthwiseAvx512(pw, x, azp, h, w, oh, ow, raw);
                break;
            case ConvAccumulation.Avx2PairGemm:
                AccumulateGemm(pw, x, azp, h, w, oh, ow, raw, KernelPath.Avx2);
                break;
            case ConvAccumulation.Avx512PairGemm:
                AccumulateGemm(pw, x, azp, h, w, oh, ow, raw, KernelPath.Avx512);
                break;
            case ConvAccumulation.NativeAvx512Vnni:
                AccumulateGemm(pw, x, azp, h, w, oh, ow, raw, KernelPath.NativeVnni);
                break;
            default: // Scalar, ScalarSat16 (the reference reads the saturation from the layer)
                AccumulateReference(pw, x, azp, h, w, oh, ow, raw);
                break;
        }
    }

    /// <summary>Saturates to int16, as <c>vpmaddubsw</c> does to each product pair.</summary>
    public static int Sat16(int v) => Math.Clamp(v, short.MinValue, short.MaxValue);

    /// <summary>
    /// The accumulators of one image, [C_out][OH·OW], straight from the definition:
    /// exact backends: <c>Σ_k (a − a_zp)(w − w_zp)</c> with padding reading a_zp;
    /// FBGEMM depthwise (any host), fbgemm-avx2 and onednn-avx2: <c>Σ_pairs sat16(a₀w₀ + a₁w₁) − a_zp·Σw − w_zp·Σa + K·a_zp·w_zp</c>
    /// on raw uint8 / int8 values. FBGEMM takes pairs in K order (taps row-major for depthwise; (kh, kw, c) for the
    /// im2col GEMM, so a pair can span two taps when C_in/groups is odd); oneDNN pairs channels (2j, 2j+1) within each tap.
    /// </summary>
    public static void AccumulateReference(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int h, int w, int oh, int ow, Span<int> raw)
    {
        var s = pw.Shape;
        int icg = s.InPerGroup, ocg = s.OutPerGroup, k = s.K, p = oh * ow;
        bool saturating = pw.FbgemmDepthwise || pw.Backend.SaturatesPairs();
        bool tapPairs = pw.Backend == QBackend.OnednnAvx2;
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
                        // a pair is (i, i+1) unless it would cross a tap where pairs stay inside taps (run = icg)
                        int run = tapPairs ? icg : k;
                        for (int t0 = 0; t0 < k; t0 += run)
                            for (int i = t0; i < t0 + run; i += 2)
                            {
                                bool two = i + 1 < t0 + run;
                                int pair = av[i] * wo[i] + (two ? av[i + 1] * wo[i + 1] : 0);
                                acc += Sat16(pair);
                                asum += av[i] + (two ? av[i + 1] : 0);
                            }
                        acc = unchecked(acc - azp * pw.WSum[o] - wzp * asum + k * azp * wzp);
                    }
                    raw[o * p + yy * ow + xx] = acc;
                }
        }
    }

    /// <summary>
    /// FBGEMM's depthwise accumulators (tap pairs saturated to int16), 32 outputs per zmm. Each input channel is copied
    /// once into a padded plane (padding = a_zp, row width Wp); output (y, x) at tap (ky, kx) then reads byte
    /// <c>y·sH·Wp + sW·x + ky·Wp + kx</c>, so over the flattened index j = y·(sH·Wp/sW) + x every tap is one contiguous
    /// (stride 1) or even-byte (stride 2) load, whatever the row width. Columns x ≥ OW are computed and dropped.
    /// Per pair: the two u8 x s8 products are exact in int16 and their saturating add is sat16(a₀w₀ + a₁w₁), exactly
    /// <c>vpmaddubsw</c>; pair sums are widened to int32 and accumulated, then <c>− a_zp·Σw − w_zp·Σa + T·a_zp·w_zp</c>.
    /// </summary>
    public static void AccumulateDepthwiseAvx512(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int h, int w, int oh, int ow, Span<int> raw)
    {
        var s = pw.Shape;
        int cin = s.InChannels;
        long work = (long)s.OutChannels * oh * ow * s.Taps;
        int parts = work >= ParallelThreshold / 4 && Parallelism.MaxThreads > 1 ? Math.Min(Parallelism.MaxThreads, cin) : 1;
        fixed (byte* xp = x)
        fixed (int* rp = raw)
        {
            if (parts == 1)
            {
                DepthwiseChannels(pw, xp, azp, h, w, oh, ow, rp, 0, cin);
                return;
            }
            nint xa = (nint)xp, ra = (nint)rp;
            Parallel.For(0, parts, Parallelism.Options, i =>
                DepthwiseChannels(pw, (byte*)xa, azp, h, w, oh, ow, (int*)ra, (int)((long)cin * i / parts), (int)((long)cin * (i + 1) / parts)));
        }
    }

    /// <summary>Input channels [c0, c1) of <see cref="AccumulateDepthwiseAvx512"/> (and their output channels).</summary>
    private static void DepthwiseChannels(PackedConvWeight pw, byte* xp, int azp, int h, int w, int oh, int ow, int* rp, int c0, int c1)
    {
        var s = pw.Shape;
        int kh = s.KernelH, kw = s.KernelW, taps = kh * kw, p = oh * ow, mult = s.OutChannels / s.Groups;
        int sh = s.StrideH, sw = s.StrideW, ph = s.PadH, pwd = s.PadW;
        // one input channel per group: oneDNN's pairs (within a tap) hold a single product, which cannot saturate
        bool saturating = pw.FbgemmDepthwise || pw.Backend == QBackend.FbgemmAvx2;
        int hp = h + 2 * ph, wp = w + 2 * pwd;
        if (sw == 2 && (wp & 1) != 0) wp++;
        int wo = sh * wp / sw;                        // flattened outputs per output row
        int blocks = (oh * wo + 31) / 32;
        // last byte a block may read: sW·(32·blocks − 1) + (sW − 1) + (kh − 1)·Wp + kw − 1
        int planeLen = Math.Max(hp * wp, sw * 32 * blocks + (kh - 1) * wp + kw) + 64;
        byte[] planeArr = ArrayPool<byte>.Shared.Rent(planeLen);
        int[] tmpArr = ArrayPool<int>.Shared.Rent(blocks * 32);
        try
        {
            fixed (byte* plane = planeArr)
            fixed (int* tmp = tmpArr)
            fixed (sbyte* wtp = pw.W)
            {
                int* off = stackalloc int[taps];
                for (int t = 0; t < taps; t++) off[t] = (t / kw) * wp + t % kw;
                var wv = stackalloc Vector512<short>[taps];
                byte zb = (byte)azp;
                // the padding that never changes: top and bottom rows, the slack after the plane
                new Span<byte>(plane, ph * wp).Fill(zb);
                new Span<byte>(plane + (long)(ph + h) * wp, planeLen - (ph + h) * wp).Fill(zb);
                for (int c = c0; c < c1; c++)
                {
                    byte* xc = xp + (long)c * h * w;
                    for (int r = 0; r < h; r++)
                    {
                        byte* row = plane + (long)(r + ph) * wp;
                        for (int i = 0; i < pwd; i++) row[i] = zb;
                        new ReadOnlySpan<byte>(xc + (long)r * w, w).CopyTo(new Span<byte>(row + pwd, w));
                        for (int i = pwd + w; i < wp; i++) row[i] = zb;
                    }
                    for (int m = 0; m < mult; m++)
                    {
                        int o = c * mult + m;
                        for (int t = 0; t < taps; t++) wv[t] = Vector512.Create((short)wtp[o * taps + t]);
                        int wzp = pw.WZp[o];
                        int corr = unchecked(-azp * pw.WSum[o] + taps * azp * wzp);
                        if (saturating)
                        {
                            if (sw == 1) DepthwiseBlocks<Stride1, Saturate>(plane, off, wv, taps, blocks, corr, wzp, tmp);
                            else DepthwiseBlocks<Stride2, Saturate>(plane, off, wv, taps, blocks, corr, wzp, tmp);
                        }
                        else
                        {
                            // (w[t], w[t+1]) in every int32 lane, a zero weight after an odd last tap
                            for (int t = 0; t < taps; t += 2)
                            {
                                int w0 = (ushort)(short)wtp[o * taps + t], w1 = t + 1 < taps ? (ushort)(short)wtp[o * taps + t + 1] : 0;
                                wv[t] = Vector512.Create(w0 | (w1 << 16)).AsInt16();
                            }
                            if (sw == 1) DepthwiseBlocksExact<Stride1>(plane, off, wv, taps, blocks, corr, wzp, tmp);
                            else DepthwiseBlocksExact<Stride2>(plane, off, wv, taps, blocks, corr, wzp, tmp);
                        }
                        int* ro = rp + (long)o * p;
                        for (int y = 0; y < oh; y++)
                            new ReadOnlySpan<int>(tmp + (long)y * wo, ow).CopyTo(new Span<int>(ro + (long)y * ow, ow));
                    }
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(planeArr);
            ArrayPool<int>.Shared.Return(tmpArr);
        }
    }

    private interface ITapLoad { static abstract Vector512<short> Load(byte* p); static abstract int Step { get; } }

    private struct Stride1 : ITapLoad
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<short> Load(byte* p) => Avx512BW.ConvertToVector512Int16(Vector256.Load(p));
        public static int Step => 32;
    }

    private struct Stride2 : ITapLoad
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<short> Load(byte* p) => Vector512.Load((short*)p) & Vector512.Create((short)0xFF);
        public static int Step => 64;
    }

    /// <summary>
    /// Exact (unsaturated) pair sums: the two taps' words are interleaved per 128-bit lane (vpunpck[lh]wd) and
    /// <c>vpmaddwd</c> against (w[t], w[t+1]) gives a₀w₀ + a₁w₁ in int32; lane order is restored once per block.
    /// </summary>
    private static void DepthwiseBlocksExact<TL>(byte* plane, int* off, Vector512<short>* wv, int taps, int blocks, int corr, int wzp, int* dst)
        where TL : ITapLoad
    {
        var vcorr = Vector512.Create(corr);
        var vwzp = Vector512.Create(wzp);
        var i0 = Vector512.Create(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
        var i1 = Vector512.Create(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
        byte* bp = plane;
        for (int b = 0; b < blocks; b++, bp += TL.Step)
        {
            Vector512<int> lo = Vector512<int>.Zero, hi = Vector512<int>.Zero;
            Vector512<short> asum = Vector512<short>.Zero;
            for (int t = 0; t < taps; t += 2)
            {
                var a0 = TL.Load(bp + off[t]);
                var a1 = t + 1 < taps ? TL.Load(bp + off[t + 1]) : Vector512<short>.Zero;
                lo += Avx512BW.MultiplyAddAdjacent(Avx512BW.UnpackLow(a0, a1), wv[t]);
                hi += Avx512BW.MultiplyAddAdjacent(Avx512BW.UnpackHigh(a0, a1), wv[t]);
                if (wzp != 0) asum += a0 + a1;
            }
            var acc0 = Avx512F.PermuteVar16x32x2(lo, i0, hi) + vcorr;
            var acc1 = Avx512F.PermuteVar16x32x2(lo, i1, hi) + vcorr;
            if (wzp != 0)
            {
                acc0 -= vwzp * Avx512F.ConvertToVector512Int32(asum.GetLower());
                acc1 -= vwzp * Avx512F.ConvertToVector512Int32(asum.GetUpper());
            }
            acc0.Store(dst + b * 32);
            acc1.Store(dst + b * 32 + 16);
        }
    }

    private interface IPairSum { static abstract bool Saturating { get; } }
    private struct Saturate : IPairSum { public static bool Saturating => true; }
    private struct Exact : IPairSum { public static bool Saturating => false; }

    private static void DepthwiseBlocks<TL, TS>(byte* plane, int* off, Vector512<short>* wv, int taps, int blocks, int corr, int wzp, int* dst)
        where TL : ITapLoad where TS : IPairSum
    {
        var vcorr = Vector512.Create(corr);
        var vwzp = Vector512.Create(wzp);
        byte* bp = plane;
        for (int b = 0; b < blocks; b++, bp += TL.Step)
        {
            Vector512<int> acc0 = Vector512<int>.Zero, acc1 = Vector512<int>.Zero;
            Vector512<short> asum = Vector512<short>.Zero;   // ≤ 49·255, fits
            int t = 0;
            for (; t + 1 < taps; t += 2)
            {
                var a0 = TL.Load(bp + off[t]);
                var a1 = TL.Load(bp + off[t + 1]);
                // |a·w| ≤ 255·128 is exact in int16; the saturating add is sat16(a0·w0 + a1·w1) (vpmaddubsw)
                var p0 = Avx512BW.MultiplyLow(a0, wv[t]);
                var p1 = Avx512BW.MultiplyLow(a1, wv[t + 1]);
                if (TS.Saturating)
                {
                    var pr = Avx512BW.AddSaturate(p0, p1);
                    acc0 += Avx512F.ConvertToVector512Int32(pr.GetLower());
                    acc1 += Avx512F.ConvertToVector512Int32(pr.GetUpper());
                }
                else
                {
                    acc0 += Avx512F.ConvertToVector512Int32(p0.GetLower()) + Avx512F.ConvertToVector512Int32(p1.GetLower());
                    acc1 += Avx512F.ConvertToVector512Int32(p0.GetUpper()) + Avx512F.ConvertToVector512Int32(p1.GetUpper());
                }
                if (wzp != 0) asum += a0 + a1;
            }
            if (t < taps)
            {
                var a0 = TL.Load(bp + off[t]);
                var pr = Avx512BW.MultiplyLow(a0, wv[t]);
                acc0 += Avx512F.ConvertToVector512Int32(pr.GetLower());
                acc1 += Avx512F.ConvertToVector512Int32(pr.GetUpper());
                if (wzp != 0) asum += a0;
            }
            acc0 += vcorr; acc1 += vcorr;
            if (wzp != 0)
            {
                acc0 -= vwzp * Avx512F.ConvertToVector512Int32(asum.GetLower());
                acc1 -= vwzp * Avx512F.ConvertToVector512Int32(asum.GetUpper());
            }
            acc0.Store(dst + b * 32);
            acc1.Store(dst + b * 32 + 16);
        }
    }

    /// <summary>im2col (centered int16, panel-packed) + <see cref="PairGemm"/>, per group.</summary>
    /// <summary>
    /// The GEMM route for one image on an explicit ISA: <see cref="KernelPath.NativeVnni"/> runs the native library
    /// (the widest PairGemm tiles where it does not apply), Avx512 / Avx2 run PairGemm's tiles on zero-point-centered
    /// im2col panels, any other path PairGemm's portable scalar tile (tested against the reference, never chosen by
    /// <see cref="ConvPaths"/>). Exact arithmetic only: saturating layers take <see cref="AccumulateReference"/>.
    /// </summary>
    public static void AccumulateGemm(PackedConvWeight pw, ReadOnlySpan<byte> x, int azp, int h, int w, int oh, int ow, Span<int> raw,
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
