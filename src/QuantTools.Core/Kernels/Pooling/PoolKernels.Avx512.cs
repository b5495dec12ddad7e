using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels.Pooling;

/// <summary>
/// The Avx512 path of the pools (AVX-512BW + VBMI). Per output row: the kH input rows are reduced vertically into a row
/// buffer (byte max, or int16 sums) that has neutral padding on both sides (qmin for max, 0 for sums), so that every
/// window reads exactly kW buffer entries; then each tap <c>kx</c> of up to 64 (max) / 32 (sums) outputs is gathered from a
/// 128-byte / 64-word slice of the buffer with one two-table permute (<c>vpermi2b</c> / <c>vpermi2w</c>) whose indices
/// <c>j*sW + kx</c> are the same for every slice, row and plane. Integer reductions are exact; the average's
/// requantization is the reference's formula per output element, with per-element divisor tables.
/// </summary>
public static partial class PoolKernels
{
    /// <summary>Planes per parallel work item is chosen so that each item reads at least this many bytes.</summary>
    private const int ParallelBytes = 1 << 17;

    /// <summary>Bytes of row buffer per group of output rows (stays in L1).</summary>
    private const int RowGroupBytes = 12 * 1024;

    private static bool Avx512PoolUsable => Avx512BW.IsSupported && Avx512Vbmi.IsSupported;

    private static readonly Vector512<byte> Iota = Vector512.Create(
        (byte)0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);

    private static readonly Vector512<short> IotaW = Vector512.Create(
        (short)0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> FirstBytes(int count) => Vector512.LessThan(Iota, Vector512.Create((byte)Math.Min(count, 64)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Max8(Vector512<byte> a, Vector512<byte> b, bool signed) =>
        signed ? Vector512.Max(a.AsSByte(), b.AsSByte()).AsByte() : Vector512.Max(a, b);

    /// <summary>Runs <paramref name="body"/>(first, end) over plane ranges, on up to <see cref="Parallelism.MaxThreads"/> threads.</summary>
    private static void ForPlanes(int planes, long bytesPerPlane, Action<int, int> body)
    {
        int threads = (int)Math.Min(Parallelism.MaxThreads, Math.Max(1, planes * bytesPerPlane / ParallelBytes));
        threads = Math.Min(threads, planes);
        if (threads <= 1) { body(0, planes); return; }
        int per = (planes + threads - 1) / threads;
        Parallel.For(0, threads, Parallelism.Options, t =>
        {
            int from = t * per, to = Math.Min(planes, from + per);
            if (from < to) body(from, to);
        });
    }

    // ------------------------------------------------------------------ max

    /// <summary>Whether the Avx512 max-pool path handles this geometry (else the caller uses another path).</summary>
    private static bool MaxPoolAvx512Fits(int w, int kW, int sW) => Avx512PoolUsable && kW <= 64 && sW <= 64 && w <= 16384;

    private static unsafe void MaxPoolAvx512(ReadOnlySpan<byte> src, Span<byte> dst, bool signed, int planes, int h, int w, int oh, int ow,
        int kH, int kW, int sH, int sW, int pH, int pW)
    {
        if (planes == 0 || oh == 0 || ow == 0) return;
        fixed (byte* ps = src, pd = dst)
        {
            nint s = (nint)ps, d = (nint)pd;
            ForPlanes(planes, (long)h * w, (from, to) =>
                MaxPlanes((byte*)s, (byte*)d, signed, from, to, h, w, oh, ow, kH, kW, sH, sW, pH, pW));
        }
    }

    private static unsafe void MaxPlanes(byte* src, byte* dst, bool signed, int from, int to, int h, int w, int oh, int ow,
        int kH, int kW, int sH, int sW, int pH, int pW)
    {
        int q = Math.Min(64, (128 - kW) / sW + 1);           // outputs per slice: (q-1)*sW + kW <= 128
        int slices = (ow + q - 1) / q;
        int bufLen = ((Math.Max(pW + w, (slices - 1) * q * sW + 128) + 63) & ~63) + 64;
        // Rows are reduced vertically a group at a time, then finished horizontally: the permutes then read buffer rows
        // written well before (a load right after overlapping, misaligned stores would stall on store forwarding).
        int group = Math.Clamp(RowGroupBytes / bufLen, 1, oh);
        byte* buf = stackalloc byte[bufLen * group];
        new Span<byte>(buf, bufLen * group).Fill(signed ? (byte)0x80 : (byte)0);
        Vector512<byte>* idx = stackalloc Vector512<byte>[kW];
        byte* tmp = stackalloc byte[64];
        for (int kx = 0; kx < kW; kx++)
        {
            for (int j = 0; j < 64; j++) tmp[j] = j < q ? (byte)(j * sW + kx) : (byte)0;
            idx[kx] = Vector512.Load(tmp);
        }
        var sliceMask = FirstBytes(q);
        var lastMask = FirstBytes(ow - (slices - 1) * q);
        var tailMask = FirstBytes(w % 64);
        for (int p = from; p < to; p++)
        {
            byte* plane = src + (long)p * h * w;
            byte* outPlane = dst + (long)p * oh * ow;
            for (int oy0 = 0; oy0 < oh; oy0 += group)
            {
                int rowsInGroup = Math.Min(group, oh - oy0);
                for (int gi = 0; gi < rowsInGroup; gi++)
                {
                    int oy = oy0 + gi;
                    int hs = oy * sH - pH, he = Math.Min(hs + kH, h);
                    hs = Math.Max(hs, 0);
                    byte* r0 = plane + (long)hs * w;
                    byte* row = buf + gi * bufLen + pW;
                    int x = 0;
                    for (; x + 64 <= w; x += 64)
                    {
                        var m = Vector512.Load(r0 + x);
                        for (int iy = 1; iy < he - hs; iy++) m = Max8(m, Vector512.Load(r0 + (long)iy * w + x), signed);
                        m.Store(row + x);
                    }
                    if (x < w)
                    {
                        var m = Avx512BW.MaskLoad(r0 + x, tailMask, Vector512<byte>.Zero);
                        for (int iy = 1; iy < he - hs; iy++) m = Max8(m, Avx512BW.MaskLoad(r0 + (long)iy * w + x, tailMask, Vector512<byte>.Zero), signed);
                        Avx512BW.MaskStore(row + x, tailMask, m);
                    }
                }
                for (int gi = 0; gi < rowsInGroup; gi++)
                {
                    byte* o = outPlane + (long)(oy0 + gi) * ow;
                    byte* rb = buf + gi * bufLen;
                    for (int c = 0; c < slices; c++)
                    {
                        byte* b = rb + c * q * sW;
                        var lo = Vector512.Load(b); var hi = Vector512.Load(b + 64);
                        var m = Avx512Vbmi.PermuteVar64x8x2(lo, idx[0], hi);
                        for (int kx = 1; kx < kW; kx++) m = Max8(m, Avx512Vbmi.PermuteVar64x8x2(lo, idx[kx], hi), signed);
                        Avx512BW.MaskStore(o + c * q, c == slices - 1 ? lastMask : sliceMask, m);
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------------ average

    /// <summary>How one average-pool output is requantized from its exact integer window sum.</summary>
    internal enum AvgMode
    {
        /// <summary>NCHW <c>avg_pool2d_out_frame</c>: <c>clamp(rne(f32(f32((float)acc * m) + zo)))</c>.</summary>
        Frame,
        /// <summary>channels_last vector channels (QuantizeAvx512): <c>clamp(cvtps2dq(min(f32((float)acc * m), cap)) + zo)</c>.</summary>
        NhwcVector,
        /// <summary>channels_last scalar channels (<c>quantize_val</c>): <c>clamp(zo + rne(f32((float)acc * m)))</c> (m = the 1/(1/m) table).</summary>
        NhwcScalar,
    }

    /// <summary>
    /// Whether the Avx512 average path handles this geometry: window sums must fit int16 (kH*kW &lt;= 128) and each slice
    /// of 64 buffer words must hold at least one output's window.
    /// </summary>
    private static bool AvgPoolAvx512Fits(Geometry g) => Avx512PoolUsable && g.KH * g.KW <= 128 && g.KW <= 32 && g.SW <= 32 && g.W <= 8192;

    /// <summary>
    /// Per-output tables shared by every plane: <c>corr = size*zp_in</c> (subtracted from the raw sum) and the multipliers
    /// (<paramref name="multiplier"/> of (div, size) for each output). Padded by 32 entries for whole-vector reads.
    /// </summary>
    private static (int[] Corr, float[] M, float[] M2, double MaxAbsX) AvgTables(Geometry g, int zpIn, Func<int, int, float> multiplier, Func<float, float>? second)
    {
        int n = g.OH * g.OW;
        var corr = ArrayPool<int>.Shared.Rent(n + 32);
        var mt = ArrayPool<float>.Shared.Rent(n + 32);
        var mt2 = second is null ? mt : ArrayPool<float>.Shared.Rent(n + 32);
        Span<int> colSize = g.OW <= 1024 ? stackalloc int[g.OW] : new int[g.OW];
        Span<int> colPool = g.OW <= 1024 ? stackalloc int[g.OW] : new int[g.OW];
        for (int ox = 0; ox < g.OW; ox++)
        {
            int ws = ox * g.SW - g.PW, we = Math.Min(ws + g.KW, g.W + g.PW);
            colPool[ox] = we - ws;
            colSize[ox] = Math.Min(we, g.W) - Math.Max(ws, 0);
        }
        float lastM = 0, lastM2 = 0; int lastDiv = -1, lastSize = -1;
        double maxAbsM = 0;
        for (int oy = 0; oy < g.OH; oy++)
        {
            int hs = oy * g.SH - g.PH, he = Math.Min(hs + g.KH, g.H + g.PH);
            int rowPool = he - hs, rowSize = Math.Min(he, g.H) - Math.Max(hs, 0);
            for (int ox = 0; ox < g.OW; ox++)
            {
                int size = rowSize * colSize[ox], pool = rowPool * colPool[ox];
                if (pool != lastDiv || size != lastSize)
                {
                    lastM = multiplier(pool, size); lastDiv = pool; lastSize = size;
                    if (second is not null) lastM2 = second(lastM);
                    maxAbsM = Math.Max(maxAbsM, Math.Max(Math.Abs((double)lastM), Math.Abs((double)lastM2)));
                    maxAbsM = Math.Max(maxAbsM, double.IsNaN(lastM) || double.IsNaN(lastM2) ? double.PositiveInfinity : 0);
                }
                corr[oy * g.OW + ox] = size * zpIn;
                mt[oy * g.OW + ox] = lastM;
                if (second is not null) mt2[oy * g.OW + ox] = lastM2;
            }
        }
        corr.AsSpan(n, 32).Clear();
        mt.AsSpan(n, 32).Clear();
        mt2.AsSpan(n, 32).Clear();
        // the largest |acc| any output can have: the window's integers plus its zero-point correction
        double maxAbsAcc = (256.0 + Math.Abs((double)zpIn)) * g.KH * g.KW;
        return (corr, mt, mt2, maxAbsM * maxAbsAcc);
    }

    /// <summary>
    /// The Avx512 average pool over planes: <paramref name="multiplier"/>(div = pool size, in-bounds size) gives the
    /// multiplier of the Frame / NhwcVector modes, <paramref name="second"/>(m) that of NhwcScalar, and
    /// <paramref name="modeOf"/>(plane) each plane's requantization. Multipliers must be finite.
    /// </summary>
    private static unsafe void AvgPoolAvx512(ReadOnlySpan<byte> src, Span<byte> dst, bool signed, Geometry g, int zpIn, int zpOut,
        Func<int, int, float> multiplier, Func<float, float>? second, Func<int, AvgMode> modeOf)
    {
        if (g.Planes == 0 || g.OH == 0 || g.OW == 0) return;
        var (corr, mt, mt2, maxAbsX) = AvgTables(g, zpIn, multiplier, second);
        try
        {
            fixed (byte* ps = src, pd = dst)
            fixed (int* pc = corr)
            fixed (float* pm = mt, pm2 = mt2)
            {
                nint s = (nint)ps, d = (nint)pd, c = (nint)pc, m = (nint)pm, m2 = (nint)pm2;
                ForPlanes(g.Planes, (long)g.H * g.W, (from, to) =>
                    AvgPlanes((byte*)s, (byte*)d, signed, from, to, g, (int*)c, (float*)m, (float*)m2, zpOut, modeOf, maxAbsX));
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(corr);
            ArrayPool<float>.Shared.Return(mt);
            if (!ReferenceEquals(mt, mt2)) ArrayPool<float>.Shared.Return(mt2);
        }
    }

    private static unsafe void AvgPlanes(byte* src, byte* dst, bool signed, int from, int to, Geometry g, int* corr, float* mt1, float* mt2,
        int zpOut, Func<int, AvgMode> modeOf, double maxAbsX)
    {
        int h = g.H, w = g.W, kW = g.KW, sW = g.SW;
        int q = Math.Min(32, (64 - kW) / sW + 1);            // outputs per slice: (q-1)*sW + kW <= 64 words
        int slices = (g.OW + q - 1) / q;
        int bufLen = ((Math.Max(g.PW + w, (slices - 1) * q * sW + 64) + 31) & ~31) + 32;
        int group = Math.Clamp(RowGroupBytes / (bufLen * 2), 1, g.OH);
        short* buf = stackalloc short[bufLen * group];
        new Span<short>(buf, bufLen * group).Clear();
        Vector512<short>* idx = stackalloc Vector512<short>[kW];
        short* tmp = stackalloc short[32];
        for (int kx = 0; kx < kW; kx++)
        {
            for (int j = 0; j < 32; j++) tmp[j] = j < q ? (short)(j * sW + kx) : (short)0;
            idx[kx] = Vector512.Load(tmp);
        }
        var sliceMask = FirstBytes(q);
        var lastMask = FirstBytes(g.OW - (slices - 1) * q);
        var tailBytes = FirstBytes(w % 32);
        var tailWords = Vector512.LessThan(IotaW, Vector512.Create((short)(w % 32)));
        var vzoF = Vector512.Create((float)zpOut);
        var vzo = Vector512.Create(zpOut);
        var cap = Vector512.Create(QuantizeKernels.VectorCap);
        var fLo = Vector512.Create(-1073741824f); var fHi = Vector512.Create(1073741824f);
        // Every |acc * m| < 2^29 and |zo| < 2^28: the float clamp before cvtps2dq can never act.
        bool clampFloat = !(maxAbsX * 1.001 < (1 << 29) && Math.Abs(zpOut) < (1 << 28));
        for (int p = from; p < to; p++)
        {
            var mode = modeOf(p);
            float* mt = mode == AvgMode.NhwcScalar ? mt2 : mt1;
            byte* plane = src + (long)p * h * w;
            byte* outPlane = dst + (long)p * g.OH * g.OW;
            for (int oy0 = 0; oy0 < g.OH; oy0 += group)
            {
                int rowsInGroup = Math.Min(group, g.OH - oy0);
                for (int gi = 0; gi < rowsInGroup; gi++)
                {
                    int oy = oy0 + gi;
                    int hs = oy * g.SH - g.PH, he = Math.Min(hs + g.KH, h);
                    hs = Math.Max(hs, 0);
                    byte* r0 = plane + (long)hs * w;
                    short* row = buf + gi * bufLen + g.PW;
                    int rows = he - hs;
                    int x = 0;
                    for (; x + 32 <= w; x += 32)
                    {
                        var acc = Widen16(Vector256.Load(r0 + x), signed);
                        for (int iy = 1; iy < rows; iy++) acc += Widen16(Vector256.Load(r0 + (long)iy * w + x), signed);
                        acc.Store(row + x);
                    }
                    if (x < w)
                    {
                        var acc = Widen16(Avx512BW.MaskLoad(r0 + x, tailBytes, Vector512<byte>.Zero).GetLower(), signed);
                        for (int iy = 1; iy < rows; iy++)
                            acc += Widen16(Avx512BW.MaskLoad(r0 + (long)iy * w + x, tailBytes, Vector512<byte>.Zero).GetLower(), signed);
                        Avx512BW.MaskStore(row + x, tailWords, acc);
                    }
                }
                for (int gi = 0; gi < rowsInGroup; gi++)
                {
                    int oy = oy0 + gi;
                    byte* o = outPlane + (long)oy * g.OW;
                    short* rb = buf + gi * bufLen;
                    int tab = oy * g.OW;
                    for (int c = 0; c < slices; c++)
                    {
                        short* b = rb + c * q * sW;
                        var lo = Vector512.Load(b); var hi = Vector512.Load(b + 32);
                        var sum = Avx512BW.PermuteVar32x16x2(lo, idx[0], hi);
                        for (int kx = 1; kx < kW; kx++) sum += Avx512BW.PermuteVar32x16x2(lo, idx[kx], hi);
                        int t = tab + c * q;
                        var a0 = Avx512F.ConvertToVector512Int32(sum.GetLower()) - Vector512.Load(corr + t);
                        var a1 = Avx512F.ConvertToVector512Int32(sum.GetUpper()) - Vector512.Load(corr + t + 16);
                        var r0v = Requant(a0, Vector512.Load(mt + t), mode, vzoF, vzo, cap, fLo, fHi, clampFloat);
                        var r1v = Requant(a1, Vector512.Load(mt + t + 16), mode, vzoF, vzo, cap, fLo, fHi, clampFloat);
                        // int32 -> int16 (signed saturation) -> 8-bit saturation is the clamp to [qmin, qmax]; vpermb restores the order
                        var words = Avx512BW.PackSignedSaturate(r0v, r1v);
                        var packed = signed ? Avx512BW.PackSignedSaturate(words, words).AsByte() : Avx512BW.PackUnsignedSaturate(words, words);
                        var bytes = Avx512Vbmi.PermuteVar64x8(packed, PackOrder32);
                        Avx512BW.MaskStore(o + c * q, c == slices - 1 ? lastMask : sliceMask, bytes);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Byte order after packing two vectors of 16 int32 (r0, r1) twice: 128-bit lane k holds r0[4k..4k+3], r1[4k..4k+3]
    /// (then the same again); output j &lt; 16 is r0[j], j &gt;= 16 is r1[j-16].
    /// </summary>
    private static readonly Vector512<byte> PackOrder32 = CreatePackOrder32();

    private static Vector512<byte> CreatePackOrder32()
    {
        Span<byte> ix = stackalloc byte[64];
        for (int j = 0; j < 64; j++)
        {
            int e = j & 31;
            ix[j] = e < 16 ? (byte)(16 * (e / 4) + e % 4) : (byte)(16 * ((e - 16) / 4) + 4 + (e - 16) % 4);
        }
        return Vector512.Create((ReadOnlySpan<byte>)ix);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Widen16(Vector256<byte> v, bool signed) =>
        signed ? Avx512BW.ConvertToVector512Int16(v.AsSByte()) : Avx512BW.ConvertToVector512Int16(v);

    /// <summary>One vector of 16 outputs as int32, before the clamp to [qmin, qmax] (see <see cref="AvgMode"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Requant(Vector512<int> acc, Vector512<float> m, AvgMode mode, Vector512<float> zoF, Vector512<int> zo,
        Vector512<float> cap, Vector512<float> fLo, Vector512<float> fHi, bool clampFloat)
    {
        var x = Avx512F.Multiply(Avx512F.ConvertToVector512Single(acc), m);
        if (mode == AvgMode.Frame)
        {
            // f32(x + zo), rounded to even; values beyond +-2^30 clamp to the same end as the reference's saturating cast
            // (the float clamp is skipped when no input can reach 2^30).
            var v = Avx512F.Add(x, zoF);
            if (clampFloat) v = Avx512F.Min(Avx512F.Max(v, fLo), fHi);
            return Avx512F.ConvertToVector512Int32(v);
        }
        if (mode == AvgMode.NhwcVector)
            return Avx512F.Add(Avx512F.ConvertToVector512Int32(Avx512F.Min(x, cap)), zo);
        // zo + rne(x) in float equals the int sum while |rne(x)| < 2^24; beyond, both clamp to the same end.
        if (clampFloat) x = Avx512F.Min(Avx512F.Max(x, fLo), fHi);
        return Avx512F.Add(Avx512F.ConvertToVector512Int32(x), zo);
    }
}
