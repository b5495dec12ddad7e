/*
 * qt_kernels.c - portable reference kernels for models exported by QuantTools. See qt_kernels.h.
 * Each function names the PyTorch kernel (and the QuantTools C# code) whose arithmetic it repeats.
 */
#include "qt_kernels.h"

#include <float.h>
#include <limits.h>

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "qt_kernels needs float expressions evaluated in float (FLT_EVAL_METHOD 0, e.g. SSE or a single-precision FPU)"
#endif

/* ------------------------------------------------------------------ arithmetic helpers */

/* uint32 -> int32 with two's complement wraparound (C# unchecked arithmetic), without implementation-defined casts */
static int32_t qt_wrap(uint32_t u)
{
    return u <= 0x7FFFFFFFu ? (int32_t)u : (int32_t)(u - 0x80000000u) - INT32_MAX - 1;
}

/* arithmetic shift right (floor division by 2^s) without relying on >> of a negative value */
static int32_t qt_asr(int32_t v, int32_t s)
{
    return v >= 0 ? (v >> s) : ~((~v) >> s);
}

static int32_t qt_clampi(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* round half to even (rintf in the default rounding mode): values of magnitude >= 2^23 are integers already */
static float qt_rne(float x)
{
    if (!(x < 8388608.0f && x > -8388608.0f)) return x;
    return x >= 0.0f ? (x + 8388608.0f) - 8388608.0f : (x - 8388608.0f) + 8388608.0f;
}

/* x86 cvtps2dq: round half to even; NaN and values outside int32 give INT32_MIN */
static int32_t qt_cvtps2dq(float v)
{
    if (v >= -2147483648.0f && v < 2147483648.0f) return (int32_t)qt_rne(v);
    return INT32_MIN;
}

/* C lrintf on x86-64 (int64 result): NaN and out of range give INT64_MIN */
static int64_t qt_lrintf(float v)
{
    if (v >= -9.223372e18f && v < 9.223372e18f) return (int64_t)qt_rne(v);
    return INT64_MIN;
}

/* std::max(x, 0.f) as MathF.Max: NaN stays NaN */
static float qt_relu0(float x)
{
    return x != x ? x : (x > 0.0f ? x : 0.0f);
}

/*
 * ATen's vector dequantize fma(sf, (float)q, premul) with premul = f32(sf * -zp), exact without an FMA unit:
 * sf = m*2^e (24-bit m) times an 8-bit q is a multiple of 2^e below 2^34 * 2^e, and premul (zero, or of magnitude
 * >= sf) is a multiple of 2^e too, so the sum is exact in double and rounds once to float, as fmaf does.
 */
static float qt_dq_fma(int32_t q, float sf, float premul)
{
    return (float)((double)sf * (double)q + (double)premul);
}

/* at::native::dequantize_val: f32(sf * (float)(q - zp)) */
static float qt_dq_scalar(int32_t q, float sf, int32_t zp)
{
    return sf * (float)(q - zp);
}

/* QuantizeAvx2/512 per element: cvtps2dq(min(x*inv, 2^31-128)) + zp with int32 wraparound, then clamp */
static int32_t qt_quantize_vector(float x, float inv, int32_t zp, int32_t qmin, int32_t qmax)
{
    float t = x * inv;
    int32_t r;
    if (!(t < 2147483520.0f)) t = 2147483520.0f;       /* minps: NaN and large values become the cap */
    r = t < -2147483648.0f ? INT32_MIN : (int32_t)qt_rne(t);
    return qt_clampi(qt_wrap((uint32_t)r + (uint32_t)zp), qmin, qmax);
}

/* at::native::quantize_val: (float)zp + rne(x*inv), clamped in double; NaN gives 0 */
static int32_t qt_quantize_scalar(float x, float inv, int32_t zp, int32_t qmin, int32_t qmax)
{
    float v = (float)zp + qt_rne(x * inv);
    if (v != v) return 0;
    if (v <= (float)qmin) return qmin;
    if (v >= (float)qmax) return qmax;
    return (int32_t)v;
}

static int32_t qt_get(const uint8_t *p, int32_t i, int32_t is_signed)
{
    return is_signed ? (p[i] >= 128 ? (int32_t)p[i] - 256 : (int32_t)p[i]) : (int32_t)p[i];
}

static uint8_t qt_put(int32_t v)
{
    return (uint8_t)(v & 0xFF);
}

/* ------------------------------------------------------------------ quantize / dequantize */

void qt_quantize(const float *x, uint8_t *y, int32_t n, float inv_scale, int32_t zp, int32_t is_signed)
{
    int32_t i, qmin = is_signed ? -128 : 0, qmax = is_signed ? 127 : 255;
    for (i = 0; i < n; i++) y[i] = qt_put(qt_quantize_vector(x[i], inv_scale, zp, qmin, qmax));
}

void qt_dequantize(const uint8_t *x, float *y, int32_t n, float scale, int32_t zp, int32_t is_signed)
{
    int32_t i;
    for (i = 0; i < n; i++) y[i] = qt_dq_scalar(qt_get(x, i, is_signed), scale, zp);
}

/* ------------------------------------------------------------------ fixed point (integer-only exports) */

int32_t qt_fixed_scale(int32_t x, int32_t m, int32_t shift)
{
    int32_t left = shift < 0 ? -shift : 0, right = shift > 0 ? shift : 0, hi, mask, rem, thr;
    int64_t a = (int64_t)x * ((int64_t)1 << (left > 31 ? 31 : left)), ab;
    if (a > INT32_MAX) a = INT32_MAX;
    if (a < INT32_MIN) a = INT32_MIN;
    if (a == INT32_MIN && m == INT32_MIN) hi = INT32_MAX;
    else {
        ab = a * (int64_t)m;
        ab = ab >= 0 ? ab + ((int64_t)1 << 30) : ab + 1 - ((int64_t)1 << 30);
        hi = (int32_t)(ab / ((int64_t)1 << 31));            /* C division truncates toward zero, as gemmlowp's */
    }
    if (right > 31) right = 31;
    mask = right > 0 ? (int32_t)(((int64_t)1 << right) - 1) : 0;
    rem = (int32_t)((uint32_t)hi & (uint32_t)mask);
    thr = (mask >> 1) + (hi < 0 ? 1 : 0);
    return qt_asr(hi, right) + (rem > thr ? 1 : 0);
}

/* ------------------------------------------------------------------ conv / linear requantization (OutputStage.Apply) */

static uint8_t qt_requant_one(const qt_requant *rq, int32_t raw, int32_t n)
{
    int32_t r, s;
    if (rq->mode == QT_RQ_FIXED_POINT) {
        int32_t acc = rq->qbias ? qt_wrap((uint32_t)raw + (uint32_t)rq->qbias[n]) : raw;
        r = qt_fixed_scale(acc, rq->fixed_mult[n], rq->fixed_shift[n]);
    } else {
        float v;
        if (rq->mode == QT_RQ_INT_BIAS) {
            int32_t acc = rq->qbias ? qt_wrap((uint32_t)raw + (uint32_t)rq->qbias[n]) : raw;
            v = (float)acc * rq->multiplier[n];
        } else {
            float f = (float)raw;
            if (rq->beta) f = f + rq->beta[n];
            v = f * rq->multiplier[n];
        }
        r = qt_cvtps2dq(v);
    }
    /* saturating packs of the AVX2 epilogue: int32 -> int16, + zp (int16), -> uint8, then the ReLU floor */
    s = qt_clampi(r, -32768, 32767);
    s = qt_clampi(s + rq->zero_point, -32768, 32767);
    return (uint8_t)qt_clampi(s, rq->low, rq->high);
}

/* ------------------------------------------------------------------ conv (ConvKernels.RawReference) */

static int32_t qt_conv_row(const qt_conv *p, int32_t o, int32_t k, int32_t size, int32_t stride, int32_t pad, int32_t dil)
{
    int32_t t;
    if (!p->transposed) {
        t = o * stride - pad + k * dil;
        return t >= 0 && t < size ? t : -1;
    }
    t = o + pad - k * dil;
    if (t < 0 || t % stride != 0) return -1;
    t /= stride;
    return t < size ? t : -1;
}

static int32_t qt_sat16(int32_t v)
{
    return qt_clampi(v, -32768, 32767);
}

void qt_conv2d(const uint8_t *x, int32_t batch, int32_t h, int32_t w, int32_t x_zp, uint8_t *y, int32_t oh, int32_t ow,
               const qt_conv *p, const qt_requant *rq)
{
    int32_t icg = p->in_c / p->groups, ocg = p->out_c / p->groups, taps = p->kh * p->kw, k = icg * taps, plane = h * w;
    int32_t b, o, oy, ox, ky, kx, c;
    for (b = 0; b < batch; b++) {
        const uint8_t *xb = x + (size_t)b * p->in_c * plane;
        uint8_t *yb = y + (size_t)b * p->out_c * oh * ow;
        for (o = 0; o < p->out_c; o++) {
            int32_t g = o / ocg, wzp = p->weight_zp[o];
            const int8_t *wo = p->weight + (size_t)o * k;
            const uint8_t *xg = xb + (size_t)g * icg * plane;
            for (oy = 0; oy < oh; oy++)
                for (ox = 0; ox < ow; ox++) {
                    uint32_t acc = 0;
                    if (!p->saturating) {
                        /* sum of (a - a_zp)(w - w_zp); padding reads a_zp and adds nothing */
                        for (ky = 0; ky < p->kh; ky++) {
                            int32_t ih = qt_conv_row(p, oy, ky, h, p->sh, p->ph, p->dh);
                            if (ih < 0) continue;
                            for (kx = 0; kx < p->kw; kx++) {
                                int32_t iw = qt_conv_row(p, ox, kx, w, p->sw, p->pw, p->dw);
                                const int8_t *wk = wo + (ky * p->kw + kx) * icg;
                                const uint8_t *xp;
                                if (iw < 0) continue;
                                xp = xg + (size_t)ih * w + iw;
                                for (c = 0; c < icg; c++)
                                    acc += (uint32_t)(((int32_t)xp[(size_t)c * plane] - x_zp) * ((int32_t)wk[c] - wzp));
                            }
                        }
                    } else {
                        /* FBGEMM: raw u8 x s8 products paired in K order, each pair saturated to int16 (vpmaddubsw),
                           then - a_zp * sum(w) - w_zp * sum(a) + K * a_zp * w_zp */
                        int32_t pa = 0, pw = 0, have = 0;
                        uint32_t asum = 0;
                        for (ky = 0; ky < p->kh; ky++) {
                            int32_t ih = qt_conv_row(p, oy, ky, h, p->sh, p->ph, p->dh);
                            for (kx = 0; kx < p->kw; kx++) {
                                int32_t iw = ih < 0 ? -1 : qt_conv_row(p, ox, kx, w, p->sw, p->pw, p->dw);
                                const int8_t *wk = wo + (ky * p->kw + kx) * icg;
                                for (c = 0; c < icg; c++) {
                                    int32_t a = iw < 0 ? x_zp : (int32_t)xg[((size_t)c * h + ih) * w + iw];
                                    if (p->tap_pairs && c == 0 && have) {
                                        /* oneDNN: a tap's odd last channel pairs with zero padding */
                                        acc += (uint32_t)qt_sat16(pa * pw);
                                        asum += (uint32_t)pa;
                                        have = 0;
                                    }
                                    if (!have) { pa = a; pw = wk[c]; have = 1; }
                                    else {
                                        acc += (uint32_t)qt_sat16(pa * pw + a * wk[c]);
                                        asum += (uint32_t)(pa + a);
                                        have = 0;
                                    }
                                }
                            }
                        }
                        if (have) { acc += (uint32_t)qt_sat16(pa * pw); asum += (uint32_t)pa; }
                        acc = acc - (uint32_t)x_zp * (uint32_t)p->weight_sum[o] - (uint32_t)wzp * asum
                              + (uint32_t)k * (uint32_t)x_zp * (uint32_t)wzp;
                    }
                    yb[((size_t)o * oh + oy) * ow + ox] = qt_requant_one(rq, qt_wrap(acc), o);
                }
        }
    }
}

/* ------------------------------------------------------------------ linear (LinearKernels.RawReference) */

void qt_linear_u8(const uint8_t *x, int32_t rows, int32_t x_zp, uint8_t *y, const qt_linear *p, const qt_requant *rq)
{
    int32_t r, j, i, k = p->in_features, n = p->out_features;
    for (r = 0; r < rows; r++) {
        const uint8_t *xr = x + (size_t)r * k;
        for (j = 0; j < n; j++) {
            const int8_t *wj = p->weight + (size_t)j * k;
            int32_t wzp = p->weight_zp[j];
            uint32_t acc = 0;
            if (!p->saturating) {
                for (i = 0; i < k; i++) acc += (uint32_t)(((int32_t)xr[i] - x_zp) * ((int32_t)wj[i] - wzp));
            } else {
                uint32_t xs = 0;
                for (i = 0; i < k; i += 2) {
                    int32_t pair = (int32_t)xr[i] * wj[i] + (i + 1 < k ? (int32_t)xr[i + 1] * wj[i + 1] : 0);
                    acc += (uint32_t)qt_sat16(pair);
                    xs += (uint32_t)xr[i] + (i + 1 < k ? (uint32_t)xr[i + 1] : 0u);
                }
                acc = acc - (uint32_t)x_zp * (uint32_t)p->weight_sum[j] - (uint32_t)wzp * xs + (uint32_t)k * (uint32_t)x_zp * (uint32_t)wzp;
            }
            y[(size_t)r * n + j] = qt_requant_one(rq, qt_wrap(acc), j);
        }
    }
}

/* ------------------------------------------------------------------ element-wise */

void qt_clamp(const uint8_t *x, uint8_t *y, int32_t n, int32_t lo, int32_t hi, int32_t is_signed)
{
    int32_t i;
    for (i = 0; i < n; i++) y[i] = qt_put(qt_clampi(qt_get(x, i, is_signed), lo, hi));
}

void qt_lut(const uint8_t *x, uint8_t *y, int32_t n, int32_t vector_prefix, const uint8_t *vec, const uint8_t *sca)
{
    int32_t i;
    for (i = 0; i < n; i++) y[i] = (i < vector_prefix ? vec : sca)[x[i]];
}

void qt_relu_f32(const float *x, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++) y[i] = (x[i] > 0.0f || x[i] != x[i]) ? x[i] : 0.0f;
}

/* logical (row-major NCHW) index of memory position i of an NHWC tensor */
static int32_t qt_nhwc_logical(int32_t i, const int32_t *dims)
{
    int32_t c = i % dims[1], t = i / dims[1], xx = t % dims[3], yy, b;
    t /= dims[3];
    yy = t % dims[2];
    b = t / dims[2];
    return ((b * dims[1] + c) * dims[2] + yy) * dims[3] + xx;
}

/* ATen qadd_kernel: the first n - n % (2 * QT_ATEN_VEC_BYTES) elements in memory order take the vector lambda (FMA
   dequantize, vector quantize), the rest the scalar lambda (cpu_kernel_vec blocks of two registers;
   AddKernels.AtenAddReference) */
void qt_add_aten(const uint8_t *a, const uint8_t *b, uint8_t *y, const int32_t *dims, int32_t rank, int32_t nhwc,
                 int32_t is_signed, const qt_add_params *p)
{
    int32_t i, n = 1, prefix, qmin = is_signed ? -128 : 0, qmax = is_signed ? 127 : 255;
    for (i = 0; i < rank; i++) n *= dims[i];
    prefix = n - n % (2 * QT_ATEN_VEC_BYTES);
    for (i = 0; i < n; i++) {
        int32_t li = nhwc ? qt_nhwc_logical(i, dims) : i;
        int32_t qa = qt_get(a, li, is_signed), qb = qt_get(b, li, is_signed), o;
        float c;
        if (i < prefix) {
            c = qt_dq_fma(qa, p->sa, p->pa) + qt_dq_fma(qb, p->sb, p->pb);
            if (p->relu) c = qt_relu0(c);
            o = qt_quantize_vector(c, p->inv, p->zo, qmin, qmax);
        } else {
            c = qt_dq_scalar(qa, p->sa, p->za) + qt_dq_scalar(qb, p->sb, p->zb);
            if (p->relu) c = qt_relu0(c);
            o = qt_quantize_scalar(c, p->inv, p->zo, qmin, qmax);
        }
        y[li] = qt_put(o);
    }
}

/* QNNPACK q8vadd (AddKernels.QnnpackAdd): acc = zpp + ma*a + mb*b, rounding shift (half away from zero), clamps */
void qt_add_qnnpack(const uint8_t *a, const uint8_t *b, uint8_t *y, int32_t n, const qt_qadd_params *p)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        int32_t acc = qt_wrap((uint32_t)p->zpp + p->ma * (uint32_t)a[i] + p->mb * (uint32_t)b[i]);
        int32_t rem = (int32_t)((uint32_t)acc & (uint32_t)p->mask) - (acc < 0 ? 1 : 0);
        int32_t v = qt_asr(acc, p->shift) + (rem > p->threshold ? 1 : 0);
        v = qt_clampi(v, -32768, 32767);
        v = qt_clampi(v + p->zo, -32768, 32767);
        v = qt_clampi(v, 0, 255);
        y[i] = (uint8_t)qt_clampi(v, p->out_min, p->out_max);
    }
}

/* ATen qmul_kernel (MulKernels.Reference): clamp(zo + lrintf(f32((float)c * M))) */
void qt_mul(const uint8_t *a, const uint8_t *b, uint8_t *y, int32_t n, int32_t is_signed, int32_t za, int32_t zb, float m,
            int32_t zo, int32_t relu)
{
    int32_t i, qmin = is_signed ? -128 : 0, qmax = is_signed ? 127 : 255;
    for (i = 0; i < n; i++) {
        int32_t c = (qt_get(a, i, is_signed) - za) * (qt_get(b, i, is_signed) - zb), v;
        int64_t r = qt_lrintf((float)c * m);
        r = r == INT64_MIN ? INT64_MIN : r + zo;
        v = r < qmin ? qmin : r > qmax ? qmax : (int32_t)r;
        if (relu && v < zo) v = zo;
        y[i] = qt_put(v);
    }
}

void qt_mul_fixed(const uint8_t *a, const uint8_t *b, uint8_t *y, int32_t n, int32_t is_signed, int32_t za, int32_t zb,
                  int32_t fixed_mult, int32_t fixed_shift, int32_t zo, int32_t relu)
{
    int32_t i, qmin = is_signed ? -128 : 0, qmax = is_signed ? 127 : 255;
    for (i = 0; i < n; i++) {
        int32_t c = (qt_get(a, i, is_signed) - za) * (qt_get(b, i, is_signed) - zb);
        int32_t v = qt_clampi(zo + qt_fixed_scale(c, fixed_mult, fixed_shift), qmin, qmax);
        if (relu && v < zo) v = zo;
        y[i] = qt_put(v);
    }
}

/* ------------------------------------------------------------------ pooling (PoolKernels, QPool) */

void qt_max_pool2d(const uint8_t *x, uint8_t *y, int32_t planes, int32_t h, int32_t w, int32_t oh, int32_t ow,
                   int32_t kh, int32_t kw, int32_t sh, int32_t sw, int32_t ph, int32_t pw, int32_t is_signed)
{
    int32_t p, oy, ox, iy, ix;
    for (p = 0; p < planes; p++)
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                int32_t hs = oy * sh - ph, ws = ox * sw - pw, he, we, m = is_signed ? -128 : 0;
                he = hs + kh < h ? hs + kh : h;
                we = ws + kw < w ? ws + kw : w;
                if (hs < 0) hs = 0;
                if (ws < 0) ws = 0;
                for (iy = hs; iy < he; iy++)
                    for (ix = ws; ix < we; ix++) {
                        int32_t v = qt_get(x, (p * h + iy) * w + ix, is_signed);
                        if (v > m) m = v;
                    }
                y[(p * oh + oy) * ow + ox] = qt_put(m);
            }
}

/* PoolKernels.Window: the window clipped to the padded extent (pool size) and to the input (size) */
static void qt_window(const qt_pool *p, int32_t oy, int32_t ox, int32_t *hs, int32_t *he, int32_t *ws, int32_t *we, int32_t *pool)
{
    *hs = oy * p->sh - p->ph;
    *ws = ox * p->sw - p->pw;
    *he = *hs + p->kh < p->h + p->ph ? *hs + p->kh : p->h + p->ph;
    *we = *ws + p->kw < p->w + p->pw ? *ws + p->kw : p->w + p->pw;
    *pool = (*he - *hs) * (*we - *ws);
    if (*hs < 0) *hs = 0;
    if (*ws < 0) *ws = 0;
    if (*he > p->h) *he = p->h;
    if (*we > p->w) *we = p->w;
}

/* rne(f32((float)acc * m)), or in integer-only exports the fixed-point multiplier of the same index */
static int32_t qt_pool_scale(const qt_pool *p, int32_t acc, int32_t idx, float m)
{
    if (p->fixed_mult) return qt_fixed_scale(acc, p->fixed_mult[idx], p->fixed_shift[idx]);
    return (int32_t)qt_rne((float)acc * m);
}

/* QNNPACK q8avgpool (PoolKernels.AvgPoolQnnpack): kH*kW taps, padding reads zp, y = clamp(rne(acc * r) + zp) */
void qt_avg_pool_qnnpack(const uint8_t *x, uint8_t *y, const qt_pool *p)
{
    int32_t q, oy, ox, ky, kx;
    for (q = 0; q < p->planes; q++)
        for (oy = 0; oy < p->oh; oy++)
            for (ox = 0; ox < p->ow; ox++) {
                int32_t acc = -p->zp * p->kh * p->kw;
                for (ky = 0; ky < p->kh; ky++)
                    for (kx = 0; kx < p->kw; kx++) {
                        int32_t iy = oy * p->sh - p->ph + ky, ix = ox * p->sw - p->pw + kx;
                        acc += iy >= 0 && iy < p->h && ix >= 0 && ix < p->w ? (int32_t)x[(q * p->h + iy) * p->w + ix] : p->zp;
                    }
                y[(q * p->oh + oy) * p->ow + ox] = (uint8_t)qt_clampi(qt_pool_scale(p, acc, 0, p->multiplier) + p->zp, 0, 255);
            }
}

/* ATen avg_pool2d_out_frame (PoolKernels.AvgNchwOut): zero point added in float before rounding */
void qt_avg_pool_nchw(const uint8_t *x, uint8_t *y, const qt_pool *p)
{
    int32_t q, oy, ox, iy, ix, qmin = p->is_signed ? -128 : 0, qmax = p->is_signed ? 127 : 255;
    for (q = 0; q < p->planes; q++)
        for (oy = 0; oy < p->oh; oy++)
            for (ox = 0; ox < p->ow; ox++) {
                int32_t hs, he, ws, we, pool, size, div, sum = 0;
                float v;
                qt_window(p, oy, ox, &hs, &he, &ws, &we, &pool);
                for (iy = hs; iy < he; iy++)
                    for (ix = ws; ix < we; ix++) sum += qt_get(x, (q * p->h + iy) * p->w + ix, p->is_signed);
                size = (he - hs) * (we - ws);
                div = p->divisor_override ? p->divisor_override : (p->count_include_pad ? pool : size);
                sum -= size * p->zp;
                if (p->fixed_mult) {
                    y[(q * p->oh + oy) * p->ow + ox] = qt_put(qt_clampi(qt_fixed_scale(sum, p->fixed_mult[div], p->fixed_shift[div]) + p->zp, qmin, qmax));
                    continue;
                }
                v = (float)sum * p->mult[div] + (float)p->zp;
                y[(q * p->oh + oy) * p->ow + ox] = qt_put(qt_clampi((int32_t)qt_rne(v), qmin, qmax));
            }
}

/* PoolKernels.AvgPoolNhwcElement: channels below C/v*v (v = QT_ATEN_VEC_BYTES / 4 floats) take the vector quantize, the
   rest quantize_val(1/m) */
static int32_t qt_nhwc_element(int32_t acc, int32_t div, int32_t ch, const qt_pool *p)
{
    int32_t qmin = p->is_signed ? -128 : 0, qmax = p->is_signed ? 127 : 255;
    if (p->fixed_mult) return qt_clampi(qt_fixed_scale(acc, p->fixed_mult[div], p->fixed_shift[div]) + p->zp, qmin, qmax);
    if (ch < p->channels / (QT_ATEN_VEC_BYTES / 4) * (QT_ATEN_VEC_BYTES / 4)) return qt_quantize_vector((float)acc, p->mult[div], p->zp, qmin, qmax);
    return qt_quantize_scalar((float)acc, p->tail_mult[div], p->zp, qmin, qmax);
}

/* ATen qavg_pool2d_nhwc (PoolKernels.AvgPoolNhwcReference) */
void qt_avg_pool_nhwc(const uint8_t *x, uint8_t *y, const qt_pool *p)
{
    int32_t q, oy, ox, iy, ix;
    for (q = 0; q < p->planes; q++)
        for (oy = 0; oy < p->oh; oy++)
            for (ox = 0; ox < p->ow; ox++) {
                int32_t hs, he, ws, we, pool, size, div, acc;
                qt_window(p, oy, ox, &hs, &he, &ws, &we, &pool);
                size = (he - hs) * (we - ws);
                div = p->divisor_override ? p->divisor_override : (p->count_include_pad ? pool : size);
                acc = -p->zp * size;
                for (iy = hs; iy < he; iy++)
                    for (ix = ws; ix < we; ix++) acc += qt_get(x, (q * p->h + iy) * p->w + ix, p->is_signed);
                y[(q * p->oh + oy) * p->ow + ox] = qt_put(qt_nhwc_element(acc, div, q % p->channels, p));
            }
}

/* ATen NCHW adaptive average pool (PoolKernels.AdaptiveAvgNchw): rne(f32((float)sum * r)), no zero point */
void qt_adaptive_avg_nchw(const uint8_t *x, uint8_t *y, const qt_pool *p)
{
    int32_t q, oy, ox, iy, ix;
    for (q = 0; q < p->planes; q++)
        for (oy = 0; oy < p->oh; oy++)
            for (ox = 0; ox < p->ow; ox++) {
                int64_t sum = 0;
                for (iy = p->row_start[oy]; iy < p->row_end[oy]; iy++)
                    for (ix = p->col_start[ox]; ix < p->col_end[ox]; ix++) sum += qt_get(x, (q * p->h + iy) * p->w + ix, p->is_signed);
                y[(q * p->oh + oy) * p->ow + ox] = qt_put(p->fixed_mult
                    ? qt_fixed_scale((int32_t)sum, p->fixed_mult[oy * p->ow + ox], p->fixed_shift[oy * p->ow + ox])
                    : (int32_t)qt_rne((float)sum * p->mult[oy * p->ow + ox]));
            }
}

/* ATen channels_last adaptive average pool (ModelExecutor.AdaptiveAvgNhwc) */
void qt_adaptive_avg_nhwc(const uint8_t *x, uint8_t *y, const qt_pool *p)
{
    int32_t q, oy, ox, iy, ix;
    for (q = 0; q < p->planes; q++)
        for (oy = 0; oy < p->oh; oy++)
            for (ox = 0; ox < p->ow; ox++) {
                int32_t size = (p->row_end[oy] - p->row_start[oy]) * (p->col_end[ox] - p->col_start[ox]);
                int32_t acc = -p->zp * size;
                for (iy = p->row_start[oy]; iy < p->row_end[oy]; iy++)
                    for (ix = p->col_start[ox]; ix < p->col_end[ox]; ix++) acc += qt_get(x, (q * p->h + iy) * p->w + ix, p->is_signed);
                y[(q * p->oh + oy) * p->ow + ox] = qt_put(qt_nhwc_element(acc, size, q % p->channels, p));
            }
}

/* QNNPACK global average pool (QPool.MeanHW, qnnpack): clamp(rne(f32((sum - zp*HW) * r)) + zp) */
void qt_mean_qnnpack(const uint8_t *x, uint8_t *y, const qt_pool *p)
{
    int32_t q, i, hw = p->h * p->w;
    for (q = 0; q < p->planes; q++) {
        int32_t acc = -p->zp * hw;
        for (i = 0; i < hw; i++) acc += x[q * hw + i];
        y[q] = (uint8_t)qt_clampi(qt_pool_scale(p, acc, 0, p->multiplier) + p->zp, 0, 255);
    }
}

/* ATen qmean_inner_dim_kernel (QPool.MeanHW): rne(f32((float)sum / HW)) */
void qt_mean_inner(const uint8_t *x, uint8_t *y, const qt_pool *p)
{
    int32_t q, i, hw = p->h * p->w;
    for (q = 0; q < p->planes; q++) {
        int64_t sum = 0;
        for (i = 0; i < hw; i++) sum += qt_get(x, q * hw + i, p->is_signed);
        y[q] = qt_put(p->fixed_mult ? qt_fixed_scale((int32_t)sum, p->fixed_mult[0], p->fixed_shift[0]) : (int32_t)qt_rne((float)sum / (float)hw));
    }
}

/* mean's general path (ModelExecutor.Mean): dequantize, float sum in order, divide, quantize with the input qparams */
void qt_mean_float(const uint8_t *x, uint8_t *y, const qt_pool *p, float scale, float inv_scale)
{
    int32_t q, i, hw = p->h * p->w, qmin = p->is_signed ? -128 : 0, qmax = p->is_signed ? 127 : 255;
    for (q = 0; q < p->planes; q++) {
        float sum = 0.0f;
        if (p->fixed_mult) {
            /* integer-only: (sum(q) - zp*HW) / HW in fixed point, + zp */
            int32_t acc = -p->zp * hw;
            for (i = 0; i < hw; i++) acc += qt_get(x, q * hw + i, p->is_signed);
            y[q] = qt_put(qt_clampi(qt_fixed_scale(acc, p->fixed_mult[0], p->fixed_shift[0]) + p->zp, qmin, qmax));
            continue;
        }
        for (i = 0; i < hw; i++) sum += qt_dq_scalar(qt_get(x, q * hw + i, p->is_signed), scale, p->zp);
        y[q] = qt_put(qt_quantize_vector(sum / (float)hw, inv_scale, p->zp, qmin, qmax));
    }
}

/* ------------------------------------------------------------------ cat (ModelExecutor.CatNhwc, QElementwise.Cat) */

void qt_cat_nhwc(const uint8_t *const *xs, const qt_cat_part *parts, int32_t count, uint8_t *y, int32_t batch, int32_t hw,
                 int32_t zo, float inv_vector, float inv_scalar, int32_t relu, int32_t is_signed)
{
    int32_t j, b, ch, i, c_total = 0, c_off = 0, qmin = is_signed ? -128 : 0, qmax = is_signed ? 127 : 255;
    for (j = 0; j < count; j++) c_total += parts[j].channels;
    for (j = 0; j < count; j++) {
        const qt_cat_part *pt = &parts[j];
        int32_t cc = pt->channels;
        for (b = 0; b < batch; b++)
            for (ch = 0; ch < cc; ch++) {
                const uint8_t *src = xs[j] + ((size_t)b * cc + ch) * hw;
                uint8_t *dst = y + ((size_t)b * c_total + c_off + ch) * hw;
                for (i = 0; i < hw; i++) {
                    int32_t v = qt_get(src, i, is_signed), o;
                    if (pt->same) o = v;
                    else if (pt->fixed_mult) o = qt_clampi(zo + qt_fixed_scale(v - pt->zp, pt->fixed_mult, pt->fixed_shift), qmin, qmax);
                    else if (ch < pt->vector_channels) {
                        float f = qt_dq_fma(v, pt->scale, pt->premul);
                        if (relu) f = qt_relu0(f);
                        o = qt_quantize_vector(f, inv_vector, zo, qmin, qmax);
                    } else {
                        float f = qt_dq_scalar(v, pt->scale, pt->zp);
                        if (relu) f = qt_relu0(f);
                        o = qt_quantize_scalar(f, inv_scalar, zo, qmin, qmax);
                    }
                    if (relu && pt->same && o < zo) o = zo;
                    dst[i] = qt_put(o);
                }
            }
        c_off += cc;
    }
}

void qt_cat_general(const uint8_t *const *xs, const qt_cat_part *parts, const int32_t *run, int32_t count, uint8_t *y,
                    int32_t outer, int32_t out_run, int32_t zo, float inv, int32_t is_signed)
{
    int32_t o, j, i, off, qmin = is_signed ? -128 : 0, qmax = is_signed ? 127 : 255;
    for (o = 0; o < outer; o++) {
        off = 0;
        for (j = 0; j < count; j++) {
            const uint8_t *src = xs[j] + (size_t)o * run[j];
            uint8_t *dst = y + (size_t)o * out_run + off;
            for (i = 0; i < run[j]; i++)
                dst[i] = parts[j].fixed_mult
                    ? qt_put(qt_clampi(zo + qt_fixed_scale(qt_get(src, i, is_signed) - parts[j].zp, parts[j].fixed_mult, parts[j].fixed_shift), qmin, qmax))
                    : qt_put(qt_quantize_vector(qt_dq_scalar(qt_get(src, i, is_signed), parts[j].scale, parts[j].zp), inv, zo, qmin, qmax));
            off += run[j];
        }
    }
}

/* ------------------------------------------------------------------ data movement */

void qt_gather(const void *x, void *y, int32_t elem_size, int32_t rank, const int32_t *shape, const int32_t *strides, int32_t offset)
{
    const uint8_t *src = (const uint8_t *)x;
    uint8_t *dst = (uint8_t *)y;
    int32_t idx[8] = {0, 0, 0, 0, 0, 0, 0, 0}, d, e;
    int32_t total = 1, i;
    for (d = 0; d < rank; d++) total *= shape[d];
    for (i = 0; i < total; i++) {
        int32_t off = offset;
        for (d = 0; d < rank; d++) off += idx[d] * strides[d];
        for (e = 0; e < elem_size; e++) dst[(size_t)i * elem_size + e] = src[(size_t)off * elem_size + e];
        for (d = rank - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
}

/* ------------------------------------------------------------------ -DQT_DUMP=dir */

#ifdef QT_DUMP
#include <stdio.h>

#define QT_STR2(x) #x
#define QT_STR(x) QT_STR2(x)

int qt_dump_npy(const char *layer, const void *data, int32_t dtype, int32_t rank, const int32_t *shape)
{
    char path[1024], header[256], name[512];
    const char *descr;
    union { uint32_t u; uint8_t b[4]; } probe;
    int32_t d, len, total = 1, i;
    size_t esize;
    FILE *f;
    probe.u = 1;
    descr = dtype == 0 ? "|u1" : dtype == 1 ? "|i1" : (probe.b[0] == 1 ? "<f4" : ">f4");
    esize = dtype == 2 ? 4 : 1;
    for (i = 0; layer[i] && i < (int32_t)sizeof(name) - 1; i++) {
        char ch = layer[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        name[i] = ok ? ch : '_';
    }
    name[i] = 0;
    snprintf(path, sizeof(path), "%s/%s.npy", QT_STR(QT_DUMP), name);
    len = snprintf(header, sizeof(header), "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (d = 0; d < rank; d++) {
        len += snprintf(header + len, sizeof(header) - (size_t)len, d + 1 < rank || rank > 1 ? "%ld, " : "%ld,", (long)shape[d]);
        total *= shape[d];
    }
    if (rank > 1) len -= 2;
    len += snprintf(header + len, sizeof(header) - (size_t)len, "), }");
    while ((10 + len + 1) % 64 != 0) header[len++] = ' ';
    header[len++] = '\n';
    f = fopen(path, "wb");
    if (!f) return QT_ERR_DUMP;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(len & 0xFF, f);
    fputc((len >> 8) & 0xFF, f);
    fwrite(header, 1, (size_t)len, f);
    fwrite(data, esize, (size_t)total, f);
    return fclose(f) == 0 ? QT_OK : QT_ERR_DUMP;
}
#endif
