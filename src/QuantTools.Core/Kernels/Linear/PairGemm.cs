using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace QuantTools.Core.Kernels.Linear;

/// <summary>
/// Exact int16 x int16 → int32 GEMM on zero-point-centered operands: <c>C[r, c] = Σ_k A[r, k]·V[k, c]</c> with
/// |A|, |V| ≤ 255 so that a pair sum (≤ 130 050) never saturates <c>vpmaddwd</c>.
/// <para>Layouts: A ("broadcast" operand) is row-major int32 pairs, <c>A2[r·K2 + j] = (A[r,2j] & 0xFFFF) | A[r,2j+1] &lt;&lt; 16</c>.
/// V ("vector" operand) is packed in panels of <see cref="PanelCols"/> columns: panel p holds, for each pair index j,
/// 64 columns × 2 int16 (<c>V[2j, c], V[2j+1, c]</c> adjacent), zero-padded past the last column.</para>
/// Linear uses A = activations (rows = batch), V = packed weights; conv uses A = packed weights (rows = output
/// channels), V = the im2col of the input (columns = output pixels), so C comes out NCHW.
/// </summary>
internal static unsafe class PairGemm
{
    public const int PanelCols = 64;
    public const int PanelShortsPerPair = PanelCols * 2;
    public const KernelPath Implemented = KernelPath.Scalar | KernelPath.Avx2 | KernelPath.Avx512;

    public static int Panels(int cols) => (cols + PanelCols - 1) / PanelCols;
    public static int PackedLength(int k2, int cols) => Panels(cols) * k2 * PanelShortsPerPair;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Pair(int lo, int hi) => (lo & 0xFFFF) | (hi << 16);

    /// <summary>Index of V[k, c] in the packed panel layout.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PackedIndex(int k, int c, int k2) =>
        (c / PanelCols) * k2 * PanelShortsPerPair + (k >> 1) * PanelShortsPerPair + (c % PanelCols) * 2 + (k & 1);

    /// <summary>
    /// Computes rows [r0, r1) x column panels [p0, p1) of C (row stride <paramref name="ldc"/>, <paramref name="cols"/> valid columns).
    /// </summary>
    public static void Run(KernelPath path, int* a2, int k2, short* v, int cols, int* c, int ldc, int r0, int r1, int p0, int p1)
    {
        for (int p = p0; p < p1; p++)
        {
            short* vp = v + (long)p * k2 * PanelShortsPerPair;
            int c0 = p * PanelCols;
            int valid = Math.Min(PanelCols, cols - c0);
            int r = r0;
            switch (path)
            {
                case KernelPath.Avx512:
                    // K blocks of KC pairs keep a 64-column panel slice (KC x 256 bytes) in L1 while every row tile
                    // streams over it; accumulators are reloaded from C after the first block.
                    for (int kb = 0; kb < k2; kb += KC)
                    {
                        int kn = Math.Min(KC, k2 - kb);
                        bool first = kb == 0;
                        short* vb = vp + (long)kb * PanelShortsPerPair;
                        r = r0;
                        // a remainder of 2 rows is better served by two 4-row tiles than by 1-row tiles
                        int sixEnd = (r1 - r0) % 6 == 2 && r1 - r0 >= 8 ? r1 - 8 : r1;
                        for (; r + 6 <= sixEnd; r += 6) Tile6Avx512(a2 + (long)r * k2 + kb, k2, vb, kn, c + (long)r * ldc + c0, ldc, valid, first);
                        for (; r + 4 <= r1; r += 4) Tile4Avx512(a2 + (long)r * k2 + kb, k2, vb, kn, c + (long)r * ldc + c0, ldc, valid, first);
                        for (; r < r1; r++) Tile1Avx512(a2 + (long)r * k2 + kb, vb, kn, c + (long)r * ldc + c0, valid, first);
                    }
                    break;
                case KernelPath.Avx2:
                    for (int q = 0; q < PanelCols / 16 && q * 16 < valid; q++)
                    {
                        int vq = Math.Min(16, valid - q * 16);
                        int rr = r0;
                        for (; rr + 4 <= r1; rr += 4) Tile4Avx2(a2 + (long)rr * k2, k2, vp + q * 32, c + (long)rr * ldc + c0 + q * 16, ldc, vq);
                        for (; rr < r1; rr++) Tile1Avx2(a2 + (long)rr * k2, k2, vp + q * 32, c + (long)rr * ldc + c0 + q * 16, vq);
                    }
                    break;
                default:
                    for (; r < r1; r++) TileScalar(a2 + (long)r * k2, k2, vp, c + (long)r * ldc + c0, valid);
                    break;
            }
        }
    }

    private static void TileScalar(int* a, int k2, short* vp, int* c, int valid)
    {
        for (int col = 0; col < valid; col++)
        {
            int acc = 0;
            for (int j = 0; j < k2; j++)
            {
                int pair = a[j];
                short* vv = vp + (long)j * PanelShortsPerPair + col * 2;
                acc += (short)pair * vv[0] + (pair >> 16) * vv[1];
            }
            c[col] = acc;
        }
    }

    /// <summary>Pairs per K block of the AVX-512 kernel (64 pairs x 256 bytes = 16 KiB of the panel).</summary>
    public const int KC = 64;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Bcast512(int* p) => Vector512.Create(*p).AsInt16();

    private static void Tile6Avx512(int* a, int lda, short* vp, int kn, int* c, int ldc, int valid, bool first)
    {
        Vector512<int> c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23;
        Vector512<int> c30, c31, c32, c33, c40, c41, c42, c43, c50, c51, c52, c53;
        Load4x512(c, valid, first, out c00, out c01, out c02, out c03);
        Load4x512(c + ldc, valid, first, out c10, out c11, out c12, out c13);
        Load4x512(c + 2 * ldc, valid, first, out c20, out c21, out c22, out c23);
        Load4x512(c + 3 * ldc, valid, first, out c30, out c31, out c32, out c33);
        Load4x512(c + 4 * ldc, valid, first, out c40, out c41, out c42, out c43);
        Load4x512(c + 5 * ldc, valid, first, out c50, out c51, out c52, out c53);
        int* a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda, a4 = a + 4 * lda, a5 = a + 5 * lda;
        for (int j = 0; j < kn; j++)
        {
            short* vv = vp + (long)j * PanelShortsPerPair;
            var v0 = Vector512.Load(vv);
            var v1 = Vector512.Load(vv + 32);
            var v2 = Vector512.Load(vv + 64);
            var v3 = Vector512.Load(vv + 96);
            var b = Bcast512(a0 + j);
            c00 += Avx512BW.MultiplyAddAdjacent(v0, b); c01 += Avx512BW.MultiplyAddAdjacent(v1, b);
            c02 += Avx512BW.MultiplyAddAdjacent(v2, b); c03 += Avx512BW.MultiplyAddAdjacent(v3, b);
            b = Bcast512(a1 + j);
            c10 += Avx512BW.MultiplyAddAdjacent(v0, b); c11 += Avx512BW.MultiplyAddAdjacent(v1, b);
            c12 += Avx512BW.MultiplyAddAdjacent(v2, b); c13 += Avx512BW.MultiplyAddAdjacent(v3, b);
            b = Bcast512(a2 + j);
            c20 += Avx512BW.MultiplyAddAdjacent(v0, b); c21 += Avx512BW.MultiplyAddAdjacent(v1, b);
            c22 += Avx512BW.MultiplyAddAdjacent(v2, b); c23 += Avx512BW.MultiplyAddAdjacent(v3, b);
            b = Bcast512(a3 + j);
            c30 += Avx512BW.MultiplyAddAdjacent(v0, b); c31 += Avx512BW.MultiplyAddAdjacent(v1, b);
            c32 += Avx512BW.MultiplyAddAdjacent(v2, b); c33 += Avx512BW.MultiplyAddAdjacent(v3, b);
            b = Bcast512(a4 + j);
            c40 += Avx512BW.MultiplyAddAdjacent(v0, b); c41 += Avx512BW.MultiplyAddAdjacent(v1, b);
            c42 += Avx512BW.MultiplyAddAdjacent(v2, b); c43 += Avx512BW.MultiplyAddAdjacent(v3, b);
            b = Bcast512(a5 + j);
            c50 += Avx512BW.MultiplyAddAdjacent(v0, b); c51 += Avx512BW.MultiplyAddAdjacent(v1, b);
            c52 += Avx512BW.MultiplyAddAdjacent(v2, b); c53 += Avx512BW.MultiplyAddAdjacent(v3, b);
        }
        Store4x512(c, valid, c00, c01, c02, c03);
        Store4x512(c + ldc, valid, c10, c11, c12, c13);
        Store4x512(c + 2 * ldc, valid, c20, c21, c22, c23);
        Store4x512(c + 3 * ldc, valid, c30, c31, c32, c33);
        Store4x512(c + 4 * ldc, valid, c40, c41, c42, c43);
        Store4x512(c + 5 * ldc, valid, c50, c51, c52, c53);
    }

    private static void Tile4Avx512(int* a, int lda, short* vp, int kn, int* c, int ldc, int valid, bool first)
    {
        Vector512<int> c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
        Load4x512(c, valid, first, out c00, out c01, out c02, out c03);
        Load4x512(c + ldc, valid, first, out c10, out c11, out c12, out c13);
        Load4x512(c + 2 * ldc, valid, first, out c20, out c21, out c22, out c23);
        Load4x512(c + 3 * ldc, valid, first, out c30, out c31, out c32, out c33);
        int* a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda;
        for (int j = 0; j < kn; j++)
        {
            short* vv = vp + (long)j * PanelShortsPerPair;
            var v0 = Vector512.Load(vv);
            var v1 = Vector512.Load(vv + 32);
            var v2 = Vector512.Load(vv + 64);
            var v3 = Vector512.Load(vv + 96);
            var b = Bcast512(a0 + j);
            c00 += Avx512BW.MultiplyAddAdjacent(v0, b); c01 += Avx512BW.MultiplyAddAdjacent(v1, b);
            c02 += Avx512BW.MultiplyAddAdjacent(v2, b); c03 += Avx512BW.MultiplyAddAdjacent(v3, b);
            b = Bcast512(a1 + j);
            c10 += Avx512BW.MultiplyAddAdjacent(v0, b); c11 += Avx512BW.MultiplyAddAdjacent(v1, b);
            c12 += Avx512BW.MultiplyAddAdjacent(v2, b); c13 += Avx512BW.MultiplyAddAdjacent(v3, b);
            b = Bcast512(a2 + j);
            c20 += Avx512BW.MultiplyAddAdjacent(v0, b); c21 += Avx512BW.MultiplyAddAdjacent(v1, b);
            c22 += Avx512BW.MultiplyAddAdjacent(v2, b); c23 += Avx512BW.MultiplyAddAdjacent(v3, b);
            b = Bcast512(a3 + j);
            c30 += Avx512BW.MultiplyAddAdjacent(v0, b); c31 += Avx512BW.MultiplyAddAdjacent(v1, b);
            c32 += Avx512BW.MultiplyAddAdjacent(v2, b); c33 += Avx512BW.MultiplyAddAdjacent(v3, b);
        }
        Store4x512(c, valid, c00, c01, c02, c03);
        Store4x512(c + ldc, valid, c10, c11, c12, c13);
        Store4x512(c + 2 * ldc, valid, c20, c21, c22, c23);
        Store4x512(c + 3 * ldc, valid, c30, c31, c32, c33);
    }

    private static void Tile1Avx512(int* a, short* vp, int kn, int* c, int valid, bool first)
    {
        Load4x512(c, valid, first, out var c0, out var c1, out var c2, out var c3);
        for (int j = 0; j < kn; j++)
        {
            short* vv = vp + (long)j * PanelShortsPerPair;
            var b = Bcast512(a + j);
            c0 += Avx512BW.MultiplyAddAdjacent(Vector512.Load(vv), b);
            c1 += Avx512BW.MultiplyAddAdjacent(Vector512.Load(vv + 32), b);
            c2 += Avx512BW.MultiplyAddAdjacent(Vector512.Load(vv + 64), b);
            c3 += Avx512BW.MultiplyAddAdjacent(Vector512.Load(vv + 96), b);
        }
        Store4x512(c, valid, c0, c1, c2, c3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Load4x512(int* c, int valid, bool first, out Vector512<int> x0, out Vector512<int> x1, out Vector512<int> x2, out Vector512<int> x3)
    {
        if (first)
        {
            x0 = x1 = x2 = x3 = Vector512<int>.Zero;
            return;
        }
        if (valid == PanelCols)
        {
            x0 = Vector512.Load(c); x1 = Vector512.Load(c + 16); x2 = Vector512.Load(c + 32); x3 = Vector512.Load(c + 48);
            return;
        }
        int* tmp = stackalloc int[PanelCols];
        for (int i = 0; i < PanelCols; i++) tmp[i] = i < valid ? c[i] : 0;
        x0 = Vector512.Load(tmp); x1 = Vector512.Load(tmp + 16); x2 = Vector512.Load(tmp + 32); x3 = Vector512.Load(tmp + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store4x512(int* c, int valid, Vector512<int> x0, Vector512<int> x1, Vector512<int> x2, Vector512<int> x3)
    {
        if (valid == PanelCols)
        {
            x0.Store(c); x1.Store(c + 16); x2.Store(c + 32); x3.Store(c + 48);
            return;
        }
        int* tmp = stackalloc int[PanelCols];
        x0.Store(tmp); x1.Store(tmp + 16); x2.Store(tmp + 32); x3.Store(tmp + 48);
        for (int i = 0; i < valid; i++) c[i] = tmp[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Bcast256(int* p) => Vector256.Create(*p).AsInt16();

    /// <summary>4 rows x 16 columns (two ymm) of one panel quarter.</summary>
    private static void Tile4Avx2(int* a, int k2, short* vq, int* c, int ldc, int valid)
    {
        Vector256<int> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector256<int> c20 = default, c21 = default, c30 = default, c31 = default;
        int* a0 = a, a1 = a + k2, a2 = a + 2 * k2, a3 = a + 3 * k2;
        for (int j = 0; j < k2; j++)
        {
            short* vv = vq + (long)j * PanelShortsPerPair;
            var v0 = Vector256.Load(vv);
            var v1 = Vector256.Load(vv + 16);
            var b = Bcast256(a0 + j);
            c00 = Avx2.Add(c00, Avx2.MultiplyAddAdjacent(v0, b)); c01 = Avx2.Add(c01, Avx2.MultiplyAddAdjacent(v1, b));
            b = Bcast256(a1 + j);
            c10 = Avx2.Add(c10, Avx2.MultiplyAddAdjacent(v0, b)); c11 = Avx2.Add(c11, Avx2.MultiplyAddAdjacent(v1, b));
            b = Bcast256(a2 + j);
            c20 = Avx2.Add(c20, Avx2.MultiplyAddAdjacent(v0, b)); c21 = Avx2.Add(c21, Avx2.MultiplyAddAdjacent(v1, b));
            b = Bcast256(a3 + j);
            c30 = Avx2.Add(c30, Avx2.MultiplyAddAdjacent(v0, b)); c31 = Avx2.Add(c31, Avx2.MultiplyAddAdjacent(v1, b));
        }
        Store2x256(c, valid, c00, c01);
        Store2x256(c + ldc, valid, c10, c11);
        Store2x256(c + 2 * ldc, valid, c20, c21);
        Store2x256(c + 3 * ldc, valid, c30, c31);
    }

    private static void Tile1Avx2(int* a, int k2, short* vq, int* c, int valid)
    {
        Vector256<int> c0 = default, c1 = default;
        for (int j = 0; j < k2; j++)
        {
            short* vv = vq + (long)j * PanelShortsPerPair;
            var b = Bcast256(a + j);
            c0 = Avx2.Add(c0, Avx2.MultiplyAddAdjacent(Vector256.Load(vv), b));
            c1 = Avx2.Add(c1, Avx2.MultiplyAddAdjacent(Vector256.Load(vv + 16), b));
        }
        Store2x256(c, valid, c0, c1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store2x256(int* c, int valid, Vector256<int> x0, Vector256<int> x1)
    {
        if (valid == 16)
        {
            x0.Store(c); x1.Store(c + 8);
            return;
        }
        int* tmp = stackalloc int[16];
        x0.Store(tmp); x1.Store(tmp + 8);
        for (int i = 0; i < valid; i++) c[i] = tmp[i];
    }
}
