/*
 * QuantTools native int8 GEMM / conv microkernels (AVX512-VNNI, VPDPBUSD).
 *
 * Exact int32 semantics: every accumulator is
 *     raw = sum_k a[k] * w[k]  -  a_zp * sum_k w[k]  -  w_zp * sum_k a[k]  +  K * a_zp * w_zp      (mod 2^32)
 * with a = quint8 activations (u8 operand of vpdpbusd), w = qint8 weights (s8 operand). vpdpbusd adds the four u8 x s8
 * products of a lane to the int32 accumulator without saturation, so the result equals sum (a - a_zp)(w - w_zp) taken
 * in int32 bit for bit (the managed reference of QuantTools.Core). The requantization epilogue reproduces
 * OutputStage.Apply of QuantTools.Core (see that file): float ops in the same order, no contraction
 * (compile with -ffp-contract=off), cvtps2dq under the default MXCSR rounding (round half to even).
 *
 * Layouts (built by QuantTools.Core):
 *   linear: activations row-major u8 [M][lda] (lda >= 4*kq, K padded with zeros), weights packed s8
 *           [panel = 64 columns][kq][64][4] (4 consecutive K values of one output feature per int32 lane, zero padded).
 *   conv:   weights s8 [OC][4*kq] (K order (kh, kw, c), zero padded); activations are packed here, per 64 output pixels,
 *           into a u8 panel [kq][64][4] straight from the NCHW input (padding reads a_zp, K padding is 0).
 *
 * Work is cut into units (column panel x 6-row tile); callers split [0, units) over threads.
 *
 * Written for QuantTools; no code from other libraries.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define QT_EXPORT __attribute__((visibility("default")))
#define NR 64 /* columns per panel: 4 zmm of 16 int32 */
#define MR 6  /* rows per tile */
#define INLINE static inline __attribute__((always_inline))

typedef struct {
    const float *mult;    /* per channel: FBGEMM/oneDNN M, QNNPACK R */
    const float *beta;    /* per channel float bias (FBGEMM/oneDNN) or NULL */
    const int32_t *qbias; /* per channel int32 bias (QNNPACK) or NULL */
    int32_t qnnpack, zp, lo, hi;
} qt_requant;

typedef struct {
    int32_t m, n, k, kq, lda;
    int32_t azp, need_xsum, pad_;
    const int8_t *wp;     /* packed weights */
    const int32_t *wsum;  /* [n] raw weight sums */
    const int32_t *wzp;   /* [n] */
    const int32_t *xsum;  /* [m] activation row sums (when need_xsum) */
} qt_linear_args;

typedef struct {
    int32_t batch, cin, h, w, oc, groups;
    int32_t kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
    int32_t k, kq, azp, need_xsum;
    const int8_t *wq;     /* [oc][4*kq] */
    const int32_t *wsum;  /* [oc] */
    const int32_t *wzp;   /* [oc] */
} qt_conv_args;

QT_EXPORT int32_t qt_version(void) { return 1; }

/* 1 when the CPU runs this library's instructions (the managed side checks CPUID and OS state too). */
QT_EXPORT int32_t qt_cpu_ok(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

/* ---------------------------------------------------------------- requantization (OutputStage.Apply, 16 lanes) */

INLINE __m512i requant16(__m512i raw, __m512 m, __m512 beta, __m512i qb, int qnnpack, __m512i zp, __m512i lo, __m512i hi)
{
    __m512 f = qnnpack ? _mm512_cvtepi32_ps(_mm512_add_epi32(raw, qb)) : _mm512_add_ps(_mm512_cvtepi32_ps(raw), beta);
    __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(f, m));
    r = _mm512_max_epi32(_mm512_min_epi32(r, _mm512_set1_epi32(32767)), _mm512_set1_epi32(-32768));
    r = _mm512_add_epi32(r, zp);
    r = _mm512_max_epi32(_mm512_min_epi32(r, hi), lo);
    return r;
}

INLINE __mmask16 lanes(int valid) { return valid >= 16 ? (__mmask16)0xFFFF : valid <= 0 ? 0 : (__mmask16)((1u << valid) - 1); }

/* ---------------------------------------------------------------- linear: rows = activations (u8, broadcast) */

/* Explicit accumulator variables (an array indexed in loops ends up in memory). */
#define ACC_DECL(i) __m512i c##i##0 = _mm512_setzero_si512(), c##i##1 = c##i##0, c##i##2 = c##i##0, c##i##3 = c##i##0;
#define ACC_OUT(i)                                                                                                     \
    if (mr > i) { acc[i][0] = c##i##0; acc[i][1] = c##i##1; acc[i][2] = c##i##2; acc[i][3] = c##i##3; }
#define ACC_STEP(i, bc, v0, v1, v2, v3, U, S)                                                                          \
    if (mr > i) {                                                                                                      \
        __m512i bb = bc;                                                                                               \
        c##i##0 = _mm512_dpbusd_epi32(c##i##0, U(v0, bb), S(v0, bb));                                                  \
        c##i##1 = _mm512_dpbusd_epi32(c##i##1, U(v1, bb), S(v1, bb));                                                  \
        c##i##2 = _mm512_dpbusd_epi32(c##i##2, U(v2, bb), S(v2, bb));                                                  \
        c##i##3 = _mm512_dpbusd_epi32(c##i##3, U(v3, bb), S(v3, bb));                                                  \
    }
/* linear: the broadcast is the u8 operand; conv: the vector is */
#define FIRST(v, b) (b)
#define SECOND(v, b) (v)

INLINE __m512i bcast4(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

INLINE void linear_tile(int mr, const uint8_t *a, int64_t lda, const int8_t *bp, int kq, __m512i acc[MR][4])
{
    ACC_DECL(0) ACC_DECL(1) ACC_DECL(2) ACC_DECL(3) ACC_DECL(4) ACC_DECL(5)
    for (int q = 0; q < kq; q++) {
        const int8_t *b = bp + (int64_t)q * (NR * 4);
        const uint8_t *aq = a + (int64_t)q * 4;
        __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
        __m512i b2 = _mm512_loadu_si512(b + 128), b3 = _mm512_loadu_si512(b + 192);
        ACC_STEP(0, bcast4(aq), b0, b1, b2, b3, FIRST, SECOND)
        ACC_STEP(1, bcast4(aq + lda), b0, b1, b2, b3, FIRST, SECOND)
        ACC_STEP(2, bcast4(aq + 2 * lda), b0, b1, b2, b3, FIRST, SECOND)
        ACC_STEP(3, bcast4(aq + 3 * lda), b0, b1, b2, b3, FIRST, SECOND)
        ACC_STEP(4, bcast4(aq + 4 * lda), b0, b1, b2, b3, FIRST, SECOND)
        ACC_STEP(5, bcast4(aq + 5 * lda), b0, b1, b2, b3, FIRST, SECOND)
    }
    ACC_OUT(0) ACC_OUT(1) ACC_OUT(2) ACC_OUT(3) ACC_OUT(4) ACC_OUT(5)
}

INLINE void linear_store(int mr, const qt_linear_args *la, const qt_requant *rq, __m512i acc[MR][4], int r0, int c0, int valid,
                         uint8_t *y, int32_t *raw)
{
    int n = la->n;
    uint32_t azp = (uint32_t)la->azp, kk = (uint32_t)la->k;
    for (int v = 0; v < 4; v++) {
        int cv = c0 + v * 16, vv = valid - v * 16;
        if (vv <= 0) break;
        __mmask16 mk = lanes(vv);
        __m512i ws = _mm512_maskz_loadu_epi32(mk, la->wsum + cv);
        __m512i wz = _mm512_maskz_loadu_epi32(mk, la->wzp + cv);
        /* column term: -azp*wsum + K*azp*wzp */
        __m512i colt = _mm512_sub_epi32(_mm512_mullo_epi32(wz, _mm512_set1_epi32((int32_t)(kk * azp))),
                                        _mm512_mullo_epi32(ws, _mm512_set1_epi32((int32_t)azp)));
        __m512 m = _mm512_setzero_ps(), beta = _mm512_setzero_ps();
        __m512i qb = _mm512_setzero_si512();
        if (y) {
            m = _mm512_maskz_loadu_ps(mk, rq->mult + cv);
            if (rq->beta) beta = _mm512_maskz_loadu_ps(mk, rq->beta + cv);
            if (rq->qbias) qb = _mm512_maskz_loadu_epi32(mk, rq->qbias + cv);
        }
        for (int i = 0; i < mr; i++) {
            __m512i r = _mm512_add_epi32(acc[i][v], colt);
            if (la->need_xsum) r = _mm512_sub_epi32(r, _mm512_mullo_epi32(wz, _mm512_set1_epi32(la->xsum[r0 + i])));
            int64_t off = (int64_t)(r0 + i) * n + cv;
            if (y) {
                __m512i q = requant16(r, m, beta, qb, rq->qnnpack, _mm512_set1_epi32(rq->zp), _mm512_set1_epi32(rq->lo),
                                      _mm512_set1_epi32(rq->hi));
                _mm512_mask_cvtepi32_storeu_epi8(y + off, mk, q);
            } else
                _mm512_mask_storeu_epi32(raw + off, mk, r);
        }
    }
}

#define LINEAR_CASE(R)                                                                                                 \
    case R: {                                                                                                          \
        __m512i acc[MR][4];                                                                                            \
        linear_tile(R, a, la->lda, bp, la->kq, acc);                                                                   \
        linear_store(R, la, rq, acc, r0, c0, valid, y, raw);                                                           \
    } break;

/* Units: panel-major, unit = panel * rtiles + rowtile. y (u8, requantized with rq) or raw (int32) [m][n]. */
QT_EXPORT void qt_linear(const qt_linear_args *la, const qt_requant *rq, const uint8_t *x, uint8_t *y, int32_t *raw,
                         int64_t u0, int64_t u1)
{
    int rtiles = (la->m + MR - 1) / MR;
    for (int64_t u = u0; u < u1; u++) {
        int p = (int)(u / rtiles), rt = (int)(u % rtiles);
        int r0 = rt * MR, mr = la->m - r0 < MR ? la->m - r0 : MR;
        int c0 = p * NR, valid = la->n - c0 < NR ? la->n - c0 : NR;
        const uint8_t *a = x + (int64_t)r0 * la->lda;
        const int8_t *bp = la->wp + (int64_t)p * la->kq * NR * 4;
        switch (mr) {
            LINEAR_CASE(6)
            LINEAR_CASE(5)
            LINEAR_CASE(4)
            LINEAR_CASE(3)
            LINEAR_CASE(2)
            LINEAR_CASE(1)
        default: break;
        }
    }
}

/* Row sums of u8 rows (lda bytes apart, first `len` bytes each). */
QT_EXPORT void qt_row_sums(const uint8_t *x, int32_t m, int32_t len, int32_t lda, int32_t *out)
{
    for (int r = 0; r < m; r++) {
        const uint8_t *p = x + (int64_t)r * lda;
        __m512i s = _mm512_setzero_si512();
        int i = 0;
        for (; i + 64 <= len; i += 64) s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_loadu_si512(p + i), _mm512_setzero_si512()));
        if (i < len) {
            __mmask64 mk = (len - i) >= 64 ? ~0ULL : ((1ULL << (len - i)) - 1);
            s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(mk, p + i), _mm512_setzero_si512()));
        }
        out[r] = (int32_t)_mm512_reduce_add_epi64(s);
    }
}

/* ---------------------------------------------------------------- conv: rows = weights (s8, broadcast), cols = pixels */

/* Packs columns [p0, p0 + valid) of the im2col of one (image, group) into panel [kq][64][4]; xg points at the group's
 * first input channel. Out-of-image taps read azp, K padding reads 0; columns past `valid` are left as they are. */
__attribute__((noinline)) static void pack_panel(const qt_conv_args *ca, const uint8_t *xg, int p0, int valid, uint8_t *panel)
{
    const int icg = ca->cin / ca->groups, hw = ca->h * ca->w, ow = ca->ow, K = ca->k;
    /* chunks: runs of <= 16 columns inside one output row */
    int cy[NR], cx[NR], co[NR], cl[NR], nch = 0;
    for (int c = 0; c < valid;) {
        int p = p0 + c, oy = p / ow, ox = p % ow;
        int len = ow - ox;
        if (len > valid - c) len = valid - c;
        if (len > 16) len = 16;
        cy[nch] = oy; cx[nch] = ox; co[nch] = c; cl[nch] = len; nch++;
        c += len;
    }
    /* 4x4 dword transpose across 128-bit lanes, then a per-lane byte transpose */
    const __m512i perm = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    const __m512i shuf = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    if (ca->sw == 2 && icg % 4 == 0) {
        /* stride 2: each channel's 16 columns are the even bytes of 32 input bytes; two channels per zmm, vpmovwb keeps
         * the low byte of every word. Only the even bytes of valid columns are loaded (borders keep azp). */
        const int cq = icg / 4;
        const __m512i vazp = _mm512_set1_epi8((char)ca->azp);
        for (int ch = 0; ch < nch; ch++) {
            int oy = cy[ch], ox = cx[ch], len = cl[ch];
            __mmask16 sm = lanes(len);
            for (int tap = 0; tap < ca->kh * ca->kw; tap++) {
                int ky = tap / ca->kw, kx = tap % ca->kw;
                uint8_t *d = panel + (int64_t)tap * cq * (NR * 4) + (int64_t)co[ch] * 4;
                int ih = oy * ca->sh - ca->ph + ky * ca->dh;
                int off = kx * ca->dw - ca->pw;           /* iw = 2 * (ox + j) + off */
                int base = 2 * ox + off;
                /* lanes j with 0 <= base + 2j < w */
                int lo = base >= 0 ? 0 : (-base + 1) / 2, hi = base >= ca->w ? 0 : (ca->w - base + 1) / 2;
                if (hi > len) hi = len;
                if ((unsigned)ih >= (unsigned)ca->h || hi <= lo) {
                    for (int c = 0; c < cq; c++, d += NR * 4) _mm512_mask_storeu_epi32(d, sm, vazp);
                    continue;
                }
                uint64_t even = 0x5555555555555555ULL;
                uint64_t m32 = even & (hi >= 32 ? ~0ULL : ((1ULL << (2 * hi)) - 1)) & ~((1ULL << (2 * lo)) - 1);
                __mmask64 mk = (__mmask64)(m32 | m32 << 32);
                uintptr_t src = (uintptr_t)(xg + (int64_t)ih * ca->w) + (uintptr_t)(intptr_t)base;
                for (int c = 0; c < cq; c++, d += NR * 4, src += 4 * (uintptr_t)hw) {
                    __m512i r01 = _mm512_mask_loadu_epi8(vazp, mk & 0xFFFFFFFFULL, (const void *)src);
                    r01 = _mm512_mask_loadu_epi8(r01, mk & 0xFFFFFFFF00000000ULL, (const void *)(src + hw - 32));
                    __m512i r23 = _mm512_mask_loadu_epi8(vazp, mk & 0xFFFFFFFFULL, (const void *)(src + 2 * (uintptr_t)hw));
                    r23 = _mm512_mask_loadu_epi8(r23, mk & 0xFFFFFFFF00000000ULL, (const void *)(src + 3 * (uintptr_t)hw - 32));
                    __m512i r = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi16_epi8(r01)), _mm512_cvtepi16_epi8(r23), 1);
                    r = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(perm, r), shuf);
                    _mm512_mask_storeu_epi32(d, sm, r);
                }
            }
        }
        return;
    }
    if (ca->sw == 1 && icg % 4 == 0) {
        /* fast path: the 4 K values of a quad are 4 channels of one tap, so a chunk of a tap shares rows and masks */
        const int cq = icg / 4;
        const __m512i vazp = _mm512_set1_epi8((char)ca->azp);
        for (int ch = 0; ch < nch; ch++) {
            int oy = cy[ch], ox = cx[ch], len = cl[ch];
            __mmask16 sm = lanes(len);
            for (int tap = 0; tap < ca->kh * ca->kw; tap++) {
                int ky = tap / ca->kw, kx = tap % ca->kw;
                uint8_t *d = panel + (int64_t)tap * cq * (NR * 4) + (int64_t)co[ch] * 4;
                int ih = oy * ca->sh - ca->ph + ky * ca->dh;
                if ((unsigned)ih >= (unsigned)ca->h) {
                    for (int c = 0; c < cq; c++, d += NR * 4) _mm512_mask_storeu_epi32(d, sm, vazp);
                    continue;
                }
                int off = kx * ca->dw - ca->pw;
                int lo = -off - ox, hi = ca->w - off - ox;
                if (lo < 0) lo = 0;
                if (hi > len) hi = len;
                if (hi <= lo) {
                    for (int c = 0; c < cq; c++, d += NR * 4) _mm512_mask_storeu_epi32(d, sm, vazp);
                    continue;
                }
                uint64_t m16 = (uint64_t)(((1u << hi) - 1) & ~((1u << lo) - 1));
                __mmask64 mk = (__mmask64)(m16 | m16 << 16 | m16 << 32 | m16 << 48);
                const uint8_t *src = xg + (int64_t)ih * ca->w + ox + off;
                if (mk == ~(__mmask64)0) {
                    for (int c = 0; c < cq; c++, d += NR * 4, src += 4 * (int64_t)hw) {
                        __m512i r = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)src));
                        r = _mm512_inserti32x4(r, _mm_loadu_si128((const __m128i *)(src + hw)), 1);
                        r = _mm512_inserti32x4(r, _mm_loadu_si128((const __m128i *)(src + 2 * (int64_t)hw)), 2);
                        r = _mm512_inserti32x4(r, _mm_loadu_si128((const __m128i *)(src + 3 * (int64_t)hw)), 3);
                        r = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(perm, r), shuf);
                        _mm512_storeu_si512(d, r);
                    }
                } else {
                    for (int c = 0; c < cq; c++, d += NR * 4, src += 4 * (int64_t)hw) {
                        uintptr_t s0 = (uintptr_t)src;
                        __m512i r = _mm512_mask_loadu_epi8(vazp, mk & 0xFFFF, (const void *)s0);
                        r = _mm512_mask_loadu_epi8(r, mk & 0xFFFF0000ULL, (const void *)(s0 + hw - 16));
                        r = _mm512_mask_loadu_epi8(r, mk & 0xFFFF00000000ULL, (const void *)(s0 + 2 * (uintptr_t)hw - 32));
                        r = _mm512_mask_loadu_epi8(r, mk & 0xFFFF000000000000ULL, (const void *)(s0 + 3 * (uintptr_t)hw - 48));
                        r = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(perm, r), shuf);
                        _mm512_mask_storeu_epi32(d, sm, r);
                    }
                }
            }
        }
        return;
    }
    for (int q = 0; q < ca->kq; q++) {
        const uint8_t *plane[4];
        int ky[4], kx[4], live[4];
        uint8_t dflt[4];
        for (int t = 0; t < 4; t++) {
            int kk = q * 4 + t;
            live[t] = kk < K;
            if (live[t]) {
                int c = kk % icg, tap = kk / icg;
                ky[t] = tap / ca->kw; kx[t] = tap % ca->kw;
                plane[t] = xg + (int64_t)c * hw;
                dflt[t] = (uint8_t)ca->azp;
            } else {
                ky[t] = kx[t] = 0; plane[t] = xg; dflt[t] = 0;
            }
        }
        uint8_t *dq = panel + (int64_t)q * (NR * 4);
        __m512i base = _mm512_set_epi32(
            dflt[3] * 0x01010101, dflt[3] * 0x01010101, dflt[3] * 0x01010101, dflt[3] * 0x01010101,
            dflt[2] * 0x01010101, dflt[2] * 0x01010101, dflt[2] * 0x01010101, dflt[2] * 0x01010101,
            dflt[1] * 0x01010101, dflt[1] * 0x01010101, dflt[1] * 0x01010101, dflt[1] * 0x01010101,
            dflt[0] * 0x01010101, dflt[0] * 0x01010101, dflt[0] * 0x01010101, dflt[0] * 0x01010101);
        for (int ch = 0; ch < nch; ch++) {
            int oy = cy[ch], ox = cx[ch], len = cl[ch];
            if (ca->sw == 1) {
                __m512i r = base;
                for (int t = 0; t < 4; t++) {
                    if (!live[t]) continue;
                    int ih = oy * ca->sh - ca->ph + ky[t] * ca->dh;
                    if ((unsigned)ih >= (unsigned)ca->h) continue;
                    int off = kx[t] * ca->dw - ca->pw; /* iw = ox + off */
                    int lo = -off - ox, hi = ca->w - off - ox;  /* lanes j with 0 <= ox + j + off < w */
                    if (lo < 0) lo = 0;
                    if (hi > len) hi = len;
                    if (hi <= lo) continue;
                    uint32_t m16 = (uint32_t)(((1u << hi) - 1) & ~((1u << lo) - 1));
                    __mmask64 mk = (__mmask64)m16 << (16 * t);
                    uintptr_t src = (uintptr_t)(plane[t] + (int64_t)ih * ca->w) + (uintptr_t)(intptr_t)(ox + off) -
                                    (uintptr_t)(16 * t);
                    r = _mm512_mask_loadu_epi8(r, mk, (const void *)src);
                }
                r = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(perm, r), shuf);
                _mm512_mask_storeu_epi32(dq + (int64_t)co[ch] * 4, lanes(len), r);
            } else {
                for (int j = 0; j < len; j++) {
                    uint8_t *d = dq + (int64_t)(co[ch] + j) * 4;
                    for (int t = 0; t < 4; t++) {
                        uint8_t v = dflt[t];
                        if (live[t]) {
                            int ih = oy * ca->sh - ca->ph + ky[t] * ca->dh;
                            int iw = (ox + j) * ca->sw - ca->pw + kx[t] * ca->dw;
                            if ((unsigned)ih < (unsigned)ca->h && (unsigned)iw < (unsigned)ca->w)
                                v = plane[t][(int64_t)ih * ca->w + iw];
                        }
                        d[t] = v;
                    }
                }
            }
        }
    }
}

/* Column sums (sum over K) of a packed u8 panel: dpbusd against ones. */
__attribute__((noinline)) static void panel_sums(const uint8_t *panel, int kq, int32_t *out)
{
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    for (int q = 0; q < kq; q++) {
        const uint8_t *p = panel + (int64_t)q * NR * 4;
        s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(p), ones);
        s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(p + 64), ones);
        s2 = _mm512_dpbusd_epi32(s2, _mm512_loadu_si512(p + 128), ones);
        s3 = _mm512_dpbusd_epi32(s3, _mm512_loadu_si512(p + 192), ones);
    }
    _mm512_storeu_si512(out, s0);
    _mm512_storeu_si512(out + 16, s1);
    _mm512_storeu_si512(out + 32, s2);
    _mm512_storeu_si512(out + 48, s3);
}

INLINE void conv_tile(int mr, const int8_t *w, int64_t ldw, const uint8_t *panel, int kq, __m512i acc[MR][4])
{
    ACC_DECL(0) ACC_DECL(1) ACC_DECL(2) ACC_DECL(3) ACC_DECL(4) ACC_DECL(5)
    for (int q = 0; q < kq; q++) {
        const uint8_t *p = panel + (int64_t)q * (NR * 4);
        const int8_t *wq = w + (int64_t)q * 4;
        __m512i x0 = _mm512_loadu_si512(p), x1 = _mm512_loadu_si512(p + 64);
        __m512i x2 = _mm512_loadu_si512(p + 128), x3 = _mm512_loadu_si512(p + 192);
        ACC_STEP(0, bcast4(wq), x0, x1, x2, x3, SECOND, FIRST)
        ACC_STEP(1, bcast4(wq + ldw), x0, x1, x2, x3, SECOND, FIRST)
        ACC_STEP(2, bcast4(wq + 2 * ldw), x0, x1, x2, x3, SECOND, FIRST)
        ACC_STEP(3, bcast4(wq + 3 * ldw), x0, x1, x2, x3, SECOND, FIRST)
        ACC_STEP(4, bcast4(wq + 4 * ldw), x0, x1, x2, x3, SECOND, FIRST)
        ACC_STEP(5, bcast4(wq + 5 * ldw), x0, x1, x2, x3, SECOND, FIRST)
    }
    ACC_OUT(0) ACC_OUT(1) ACC_OUT(2) ACC_OUT(3) ACC_OUT(4) ACC_OUT(5)
}

INLINE void conv_store(int mr, const qt_conv_args *ca, const qt_requant *rq, __m512i acc[MR][4], int o0, const int32_t *xsum,
                       int valid, int64_t outoff, int64_t p, uint8_t *y, int32_t *raw)
{
    uint32_t azp = (uint32_t)ca->azp, kk = (uint32_t)ca->k;
    for (int i = 0; i < mr; i++) {
        int o = o0 + i;
        uint32_t wz = (uint32_t)ca->wzp[o];
        int32_t rowt = (int32_t)(kk * azp * wz - azp * (uint32_t)ca->wsum[o]);
        __m512i rt = _mm512_set1_epi32(rowt), wzv = _mm512_set1_epi32((int32_t)wz);
        __m512 m = _mm512_set1_ps(y ? rq->mult[o] : 0.f);
        __m512 beta = _mm512_set1_ps(y && rq->beta ? rq->beta[o] : 0.f);
        __m512i qb = _mm512_set1_epi32(y && rq->qbias ? rq->qbias[o] : 0);
        int64_t off = outoff + (int64_t)o * p;
        for (int v = 0; v < 4; v++) {
            int vv = valid - v * 16;
            if (vv <= 0) break;
            __mmask16 mk = lanes(vv);
            __m512i r = _mm512_add_epi32(acc[i][v], rt);
            if (ca->need_xsum) r = _mm512_sub_epi32(r, _mm512_mullo_epi32(wzv, _mm512_loadu_si512(xsum + v * 16)));
            if (y) {
                __m512i q = requant16(r, m, beta, qb, rq->qnnpack, _mm512_set1_epi32(rq->zp), _mm512_set1_epi32(rq->lo),
                                      _mm512_set1_epi32(rq->hi));
                _mm512_mask_cvtepi32_storeu_epi8(y + off + v * 16, mk, q);
            } else
                _mm512_mask_storeu_epi32(raw + off + v * 16, mk, r);
        }
    }
}

#define CONV_CASE(R)                                                                                                   \
    case R: {                                                                                                          \
        __m512i acc[MR][4];                                                                                            \
        conv_tile(R, ca->wq + (int64_t)o0 * ldw, ldw, panel, ca->kq, acc);                                             \
        conv_store(R, ca, rq, acc, o0, xsum, valid, outoff, p, y, raw);                                                \
    } break;

/* Number of work units of a conv call: batch x groups x panels x row tiles. */
QT_EXPORT int64_t qt_conv_units(const qt_conv_args *ca)
{
    int64_t p = (int64_t)ca->oh * ca->ow;
    int64_t panels = (p + NR - 1) / NR, ocg = ca->oc / ca->groups, rtiles = (ocg + MR - 1) / MR;
    return (int64_t)ca->batch * ca->groups * panels * rtiles;
}

/* Bytes of scratch one caller needs (panel + column sums). */
QT_EXPORT int64_t qt_conv_scratch(const qt_conv_args *ca) { return (int64_t)ca->kq * NR * 4 + NR * 4 + 64; }

/* Units [u0, u1) of a conv: output y (u8, NCHW, requantized) or raw (int32 NCHW accumulators). */
QT_EXPORT void qt_conv(const qt_conv_args *ca, const qt_requant *rq, const uint8_t *x, uint8_t *y, int32_t *raw,
                       int64_t u0, int64_t u1, uint8_t *scratch)
{
    const int64_t p = (int64_t)ca->oh * ca->ow;
    const int panels = (int)((p + NR - 1) / NR), ocg = ca->oc / ca->groups, rtiles = (ocg + MR - 1) / MR;
    const int icg = ca->cin / ca->groups;
    const int64_t ldw = (int64_t)ca->kq * 4;
    uint8_t *panel = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    int32_t *xsum = (int32_t *)(panel + (int64_t)ca->kq * NR * 4);
    int64_t packed = -1;
    for (int64_t u = u0; u < u1; u++) {
        int64_t pu = u / rtiles;
        int rt = (int)(u % rtiles);
        int pn = (int)(pu % panels);
        int64_t bg = pu / panels;
        int g = (int)(bg % ca->groups), b = (int)(bg / ca->groups);
        int c0 = pn * NR, valid = p - c0 < NR ? (int)(p - c0) : NR;
        if (pu != packed) {
            const uint8_t *xg = x + ((int64_t)b * ca->cin + (int64_t)g * icg) * ca->h * ca->w;
            pack_panel(ca, xg, c0, valid, panel);
            if (ca->need_xsum) panel_sums(panel, ca->kq, xsum);
            packed = pu;
        }
        int o0 = g * ocg + rt * MR, mr = ocg - rt * MR < MR ? ocg - rt * MR : MR;
        int64_t outoff = (int64_t)b * ca->oc * p + c0;
        switch (mr) {
            CONV_CASE(6)
            CONV_CASE(5)
            CONV_CASE(4)
            CONV_CASE(3)
            CONV_CASE(2)
            CONV_CASE(1)
        default: break;
        }
    }
}
