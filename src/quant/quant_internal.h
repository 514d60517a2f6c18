/* quench — src/quant private helpers: exact rounding to the model dtype and the per-element
 * quantization kernel shared by numerics.c (observers, quantize, dequantize) and args.c. */
#ifndef QN_QUANT_INTERNAL_H
#define QN_QUANT_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quench/quant.h"

static inline uint32_t qnq_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float qnq_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* fp32 -> nearest bf16 value (ties to even), as fp32. Same rounding as qn_f32_to_bf16 (inlined
 * here because it runs once or twice per weight element). */
static inline float qnq_round_bf16(float x) {
    uint32_t u = qnq_f2u(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return x; /* NaN stays NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return qnq_u2f(u & 0xFFFF0000u);
}

/* float8_e4m3fn byte -> value. */
static inline float qnq_e4m3_value(uint8_t v) {
    uint32_t e = (v >> 3) & 0xFu, m = v & 7u;
    float r;
    if (e == 15 && m == 7) return (v & 0x80) ? -NAN : NAN;
    if (e == 0) r = (float)m * 0.001953125f; /* m/8 * 2^-6 */
    else r = qnq_u2f(((e + 120u) << 23) | (m << 20));
    return (v & 0x80) ? -r : r;
}

float qnq_round_f16(float x);     /* via safetensors.h conversions */

/* fp32 -> nearest float8_e4m3fn value (ties to even), saturating at +-448, NaN kept; equals
 * decode(qn_f32_to_fp8e4m3_sat(x)) (checked by the tests) without the byte round trip. */
static inline float qnq_round_e4m3(float x) {
    float a = fabsf(x);
    if (!(a < 448.0f)) return (a != a) ? x : copysignf(448.0f, x);
    if (a < 0.015625f) return rintf(x * 512.0f) * 0.001953125f; /* subnormals: multiples of 2^-9 */
    uint32_t u = qnq_f2u(x);
    u += 0x7FFFFu + ((u >> 20) & 1u); /* keep 3 mantissa bits */
    return qnq_u2f(u & 0xFFF00000u);
}

static inline float qnq_rnd(float x, qn_dtype dt) {
    switch (dt) {
    case QN_DT_BF16: return qnq_round_bf16(x);
    case QN_DT_F16: return qnq_round_f16(x);
    default: return x;
    }
}

/* Constants of one QuantizationArgs for the element kernels. */
typedef struct {
    qn_qtype type;
    int bits;
    int sym;
    float qmin, qmax;
    float bit_range, half_range;
    qn_dtype dt;                 /* model dtype */
    qn_torch_dtype scale_dtype;  /* NONE, FLOAT8_E4M3FN, BFLOAT16, FLOAT16, FLOAT32, FLOAT64 */
    qn_torch_dtype zp_dtype;     /* resolved */
    float gs;                    /* global scale (tensor_group), 0 = none */
} qnq_kernel;

/* Checks that the args are supported by the numerics (int 1..8 bits, float 4/8, no fp4 asym, no
 * MX scales, model dtype BF16/F16/F32) and fills `k`. */
qn_status qnq_kernel_init(qnq_kernel *k, const qn_quant_args *a, qn_dtype dt, float gs,
                          qn_error *err);

/* calculate_qparams for one reduction set (min, max): scale and zero point (integer-valued). */
void qnq_calc(const qnq_kernel *k, float mn, float mx, float *scale, float *zp);

static inline float qnq_clamp(float y, float lo, float hi) {
    return y < lo ? lo : (y > hi ? hi : y); /* NaN passes through, as torch.clamp */
}

/* E2M1 value of y (already clamped to [-6, 6]), CT cast_to_fp4 semantics. */
static inline float qnq_fp4_value(float y) {
    static const float MAG[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    float a = fabsf(y);
    if (!(a == a)) return y;
    /* [0, .25] -> 0; (.25, .75) -> .5; [.75, 1.25] -> 1; (1.25, 1.75) -> 1.5; [1.75, 2.5] -> 2;
     * (2.5, 3.5) -> 3; [3.5, 5] -> 4; > 5 -> 6 (branch-free) */
    int idx = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) +
              (a > 5.0f);
    float m = MAG[idx];
    /* x * sign(x): sign(+-0) = 0 gives +0; a negative value rounding to 0 gives -0 */
    if (y > 0) return m;
    if (y < 0) return -m;
    return 0.0f;
}

/* Quantized value (an integer for int, an E4M3 / E2M1 value for float) of x with scale s and
 * zero point z (§4.3). */
static inline float qnq_quant(const qnq_kernel *k, float x, float s, float z) {
    float y;
    if (k->gs > 0) {
        float se = s / k->gs; /* bf16 scale / fp32 global scale -> fp32 */
        y = x / se;
        if (!k->sym) y = y + z;
    } else {
        y = qnq_rnd(x / s, k->dt);
        if (!k->sym) y = qnq_rnd(y + z, k->dt);
    }
    y = qnq_clamp(y, k->qmin, k->qmax);
    if (k->type == QN_QTYPE_INT) return (y == y) ? rintf(y) : 0.0f; /* torch.round: half to even */
    if (k->bits == 8) return qnq_round_e4m3(y);
    return qnq_fp4_value(y);
}

/* Dequantized value of quantized value q, rounded to the model dtype. */
static inline float qnq_dequant(const qnq_kernel *k, float q, float s, float z) {
    if (k->gs > 0) {
        float se = s / k->gs;
        return qnq_rnd((q - z) * se, k->dt);
    }
    return qnq_rnd(qnq_rnd(q - z, k->dt) * s, k->dt);
}

static inline float qnq_fake(const qnq_kernel *k, float x, float s, float z) {
    return qnq_dequant(k, qnq_quant(k, x, s, z), s, z);
}

#endif
