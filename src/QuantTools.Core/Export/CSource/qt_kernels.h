/*
 * qt_kernels.h - portable reference kernels for models exported by QuantTools (Export-QuantModel -Format C).
 *
 * Every kernel reproduces one PyTorch 2.11 quantized kernel bit for bit, as QuantTools' C# core does; the numbers
 * (multipliers, biases, tables, bounds) are computed by QuantTools and passed in. Tensors are dense, in logical
 * row-major (NCHW) order; where PyTorch rounds differently by memory format, the caller passes the flag that picks
 * PyTorch's path. 8-bit tensors are passed as bytes plus a signedness flag (quint8 0..255, qint8 two's complement).
 *
 * Requirements: C99; IEEE-754 binary32 float evaluated in float (FLT_EVAL_METHOD 0, checked below); round-to-nearest-
 * even (the default floating-point environment); no FMA contraction (compile with -ffp-contract=off, or a compiler
 * that does not contract): PyTorch's results depend on every float operation being rounded separately. No libm,
 * no allocation, no global state. Define QT_DUMP=dir to write every layer's output as dir/<layer>.npy (stdio).
 */
#ifndef QT_KERNELS_H
#define QT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of ATen's Vectorized<T> on the CPU class whose PyTorch this export reproduces: 64 (AVX-512, the default) or
   32 (AVX2). It sets where cpu_kernel_vec's vector blocks end and the scalar tail begins, and the vector channels of the
   NHWC average-pool kernels. Export-QuantModel writes the class's value here (-CpuClass). */
#define QT_ATEN_VEC_BYTES 64

#define QT_OK 0
#define QT_ERR_ARGUMENT 1      /* a NULL pointer or a misaligned scratch buffer */
#define QT_ERR_UNSUPPORTED 2   /* run_q of a model that does not start with quantize / end with dequantize */
#define QT_ERR_DUMP 3          /* QT_DUMP builds: a layer's .npy file could not be written */

/* requantization of conv / linear accumulators (QuantTools OutputStage) */
#define QT_RQ_FLOAT_BIAS 0     /* FBGEMM / oneDNN: v = ((float)raw + beta[n]) * m[n] */
#define QT_RQ_INT_BIAS 1       /* QNNPACK: v = (float)(raw + qbias[n]) * m[n] */
#define QT_RQ_FIXED_POINT 2    /* integer-only: (raw + qbias[n]) * fixed multiplier >> shift (not PyTorch's numbers) */

typedef struct {
    int32_t mode;
    const float *multiplier;     /* per output channel (float modes) */
    const float *beta;           /* QT_RQ_FLOAT_BIAS: float bias in accumulator units, or NULL */
    const int32_t *qbias;        /* QT_RQ_INT_BIAS / QT_RQ_FIXED_POINT: int32 bias, or NULL */
    const int32_t *fixed_mult;   /* QT_RQ_FIXED_POINT: multiplier in [2^30, 2^31) */
    const int32_t *fixed_shift;  /* QT_RQ_FIXED_POINT: right shift (negative: left) */
    int32_t zero_point, low, high;
} qt_requant;

typedef struct {
    int32_t in_c, out_c, kh, kw, sh, sw, ph, pw, dh, dw, groups, transposed;
    int32_t saturating;          /* FBGEMM depthwise, FBGEMM / oneDNN without VNNI: u8 x s8 product pairs saturate to int16 */
    int32_t tap_pairs;           /* saturating pairs stay inside each kernel tap (oneDNN without VNNI), else K order (FBGEMM) */
    const int8_t *weight;        /* [out_c][K], K in (kh, kw, in_c/groups) order */
    const int32_t *weight_zp;    /* per output channel */
    const int32_t *weight_sum;   /* per output channel, sum of the raw weights (saturating form only) */
} qt_conv;

typedef struct {
    int32_t in_features, out_features;
    int32_t saturating;
    const int8_t *weight;        /* [out][in] */
    const int32_t *weight_zp;
    const int32_t *weight_sum;
} qt_linear;

/* float32 <-> 8-bit (vector quantize form, scalar dequantize form) */
void qt_quantize(const float *x, uint8_t *y, int32_t n, float inv_scale, int32_t zp, int32_t is_signed);
void qt_dequantize(const uint8_t *x, float *y, int32_t n, float scale, int32_t zp, int32_t is_signed);

void qt_conv2d(const uint8_t *x, int32_t batch, int32_t h, int32_t w, int32_t x_zp, uint8_t *y, int32_t oh, int32_t ow,
               const qt_conv *p, const qt_requant *rq);
void qt_linear_u8(const uint8_t *x, int32_t rows, int32_t x_zp, uint8_t *y, const qt_linear *p, const qt_requant *rq);

void qt_clamp(const uint8_t *x, uint8_t *y, int32_t n, int32_t lo, int32_t hi, int32_t is_signed);
/* y[i] = (i < vector_prefix ? vec : sca)[x[i]] */
void qt_lut(const uint8_t *x, uint8_t *y, int32_t n, int32_t vector_prefix, const uint8_t *vec, const uint8_t *sca);
void qt_relu_f32(const float *x, float *y, int32_t n);

/* ATen qadd_kernel: memory order NCHW, or NHWC (nhwc != 0, dims = N, C, H, W) for the vector / scalar split */
typedef struct { float sa; int32_t za; float pa; float sb; int32_t zb; float pb; float inv; int32_t zo; int32_t relu; } qt_add_params;
void qt_add_aten(const uint8_t *a, const uint8_t *b, uint8_t *y, const int32_t *dims, int32_t rank, int32_t nhwc,
                 int32_t is_signed, const qt_add_params *p);
/* QNNPACK q8vadd (fixed point) */
typedef struct { int32_t zpp; uint32_t ma, mb; int32_t shift, mask, threshold, zo, out_min, out_max; } qt_qadd_params;
void qt_add_qnnpack(const uint8_t *a, const uint8_t *b, uint8_t *y, int32_t n, const qt_qadd_params *p);
/* ATen qmul_kernel */
void qt_mul(const uint8_t *a, const uint8_t *b, uint8_t *y, int32_t n, int32_t is_signed, int32_t za, int32_t zb, float m,
            int32_t zo, int32_t relu);

void qt_max_pool2d(const uint8_t *x, uint8_t *y, int32_t planes, int32_t h, int32_t w, int32_t oh, int32_t ow,
                   int32_t kh, int32_t kw, int32_t sh, int32_t sw, int32_t ph, int32_t pw, int32_t is_signed);

typedef struct {
    int32_t planes, channels, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
    int32_t count_include_pad, divisor_override;   /* divisor_override 0: none */
    int32_t zp, is_signed;
    float multiplier;                              /* qnnpack variants */
    const float *mult;                             /* by divisor / window size (or by output position, adaptive NCHW) */
    const float *tail_mult;                        /* NHWC scalar tail, by divisor */
    const int32_t *row_start, *row_end, *col_start, *col_end;  /* adaptive windows */
    const int32_t *fixed_mult, *fixed_shift;       /* integer-only exports: fixed-point multipliers (same indexing) */
} qt_pool;
void qt_avg_pool_qnnpack(const uint8_t *x, uint8_t *y, const qt_pool *p);
void qt_avg_pool_nchw(const uint8_t *x, uint8_t *y, const qt_pool *p);
void qt_avg_pool_nhwc(const uint8_t *x, uint8_t *y, const qt_pool *p);
void qt_adaptive_avg_nchw(const uint8_t *x, uint8_t *y, const qt_pool *p);
void qt_adaptive_avg_nhwc(const uint8_t *x, uint8_t *y, const qt_pool *p);
void qt_mean_qnnpack(const uint8_t *x, uint8_t *y, const qt_pool *p);
void qt_mean_inner(const uint8_t *x, uint8_t *y, const qt_pool *p);
void qt_mean_float(const uint8_t *x, uint8_t *y, const qt_pool *p, float scale, float inv_scale);

typedef struct {
    int32_t same; float scale; int32_t zp; float premul; int32_t vector_channels; int32_t channels;
    int32_t fixed_mult, fixed_shift;   /* integer-only exports (fixed_mult != 0): y = zo + fixed(q - zp) */
} qt_cat_part;
/* ATen's channels_last cat kernel (4-d, dim 1) */
void qt_cat_nhwc(const uint8_t *const *xs, const qt_cat_part *parts, int32_t count, uint8_t *y, int32_t batch, int32_t hw,
                 int32_t zo, float inv_vector, float inv_scalar, int32_t relu, int32_t is_signed);
/* qconcat's general path: dequantize (scalar form), cat, quantize (vector form) */
void qt_cat_general(const uint8_t *const *xs, const qt_cat_part *parts, const int32_t *run, int32_t count, uint8_t *y,
                    int32_t outer, int32_t out_run, int32_t zo, float inv, int32_t is_signed);

/* integer-only exports: mul with a fixed-point multiplier (an approximation of qt_mul) */
void qt_mul_fixed(const uint8_t *a, const uint8_t *b, uint8_t *y, int32_t n, int32_t is_signed, int32_t za, int32_t zb,
                  int32_t fixed_mult, int32_t fixed_shift, int32_t zo, int32_t relu);
/* gemmlowp: RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^max(-shift, 0), m), max(shift, 0)) */
int32_t qt_fixed_scale(int32_t x, int32_t m, int32_t shift);

/* y[i] = x[offset + sum_d idx_d * stride_d] over the row-major indices of shape */
void qt_gather(const void *x, void *y, int32_t elem_size, int32_t rank, const int32_t *shape, const int32_t *strides, int32_t offset);

#ifdef QT_DUMP
/* dtype: 0 uint8, 1 int8, 2 float32 */
int qt_dump_npy(const char *layer, const void *data, int32_t dtype, int32_t rank, const int32_t *shape);
#endif

#endif /* QT_KERNELS_H */
