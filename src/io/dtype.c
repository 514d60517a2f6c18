/* quench — safetensors dtypes and exact scalar conversions to/from fp32.
 *
 * Rounding: every f32 -> narrow conversion rounds to nearest, ties to even (as PyTorch's casts).
 * Special values follow PyTorch (c10):
 *   f32 -> bf16: NaN -> 0x7FC0 (c10::detail::round_to_nearest_even); overflow -> +-inf by RNE.
 *   f32 -> f16 : NaN -> sign|0x7E00; |x| >= 65520 -> +-inf.
 *   f32 -> F8_E4M3 (float8_e4m3fn): no infinities; NaN, +-inf and |x| > 464 -> sign|0x7F (NaN);
 *                 464 (the tie between 448 and the absent 480) rounds to even = 448. Not saturating.
 *   f32 -> F8_E5M2: IEEE-like; NaN -> sign|0x7F; |x| >= 61440 -> +-inf.
 * f32 subnormals are handled exactly (they round to zero in every narrow format but bf16). */
#include <math.h>
#include <string.h>

#include "io/st_internal.h"
#include "quench/safetensors.h"

typedef struct {
    const char *name;
    size_t size;
    int is_float;
    int rank; /* position in the Rust safetensors `Dtype` enum (HEAD), ascending */
} dtype_info;

/* Rust enum order at HEAD: BOOL < F4 < F6_E2M3 < F6_E3M2 < U8 < I8 < F8_E5M2 < F8_E4M3 < F8_E8M0 <
 * F8_E4M3FNUZ < F8_E5M2FNUZ < I16 < U16 < F16 < BF16 < I32 < U32 < F32 < C64 < F64 < I64 < U64. */
static const dtype_info DTYPES[QN_DT_COUNT] = {
    [QN_DT_F64] = {"F64", 8, 1, 19},      [QN_DT_F32] = {"F32", 4, 1, 17},
    [QN_DT_F16] = {"F16", 2, 1, 13},      [QN_DT_BF16] = {"BF16", 2, 1, 14},
    [QN_DT_I64] = {"I64", 8, 0, 20},      [QN_DT_I32] = {"I32", 4, 0, 15},
    [QN_DT_I16] = {"I16", 2, 0, 11},      [QN_DT_I8] = {"I8", 1, 0, 5},
    [QN_DT_U64] = {"U64", 8, 0, 21},      [QN_DT_U32] = {"U32", 4, 0, 16},
    [QN_DT_U16] = {"U16", 2, 0, 12},      [QN_DT_U8] = {"U8", 1, 0, 4},
    [QN_DT_BOOL] = {"BOOL", 1, 0, 0},     [QN_DT_F8_E4M3] = {"F8_E4M3", 1, 1, 7},
    [QN_DT_F8_E5M2] = {"F8_E5M2", 1, 1, 6}, [QN_DT_F8_E8M0] = {"F8_E8M0", 1, 1, 8},
};

static int valid_dt(qn_dtype dt) { return (int)dt >= 0 && dt < QN_DT_COUNT; }

size_t qn_dtype_size(qn_dtype dt) { return valid_dt(dt) ? DTYPES[dt].size : 0; }
const char *qn_dtype_name(qn_dtype dt) { return valid_dt(dt) ? DTYPES[dt].name : "?"; }
int qn_dtype_is_float(qn_dtype dt) { return valid_dt(dt) && DTYPES[dt].is_float; }
int qn__dtype_rank(qn_dtype dt) { return valid_dt(dt) ? DTYPES[dt].rank : -1; }

int qn_dtype_from_name(const char *name, qn_dtype *out) {
    if (!name) return -1;
    for (int i = 0; i < QN_DT_COUNT; i++) {
        if (strcmp(DTYPES[i].name, name) == 0) {
            if (out) *out = (qn_dtype)i;
            return 0;
        }
    }
    return -1;
}

/* ---- scalar conversions ---- */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float qn_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t qn_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float qn_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0) {
        float v = ldexpf((float)m, -24); /* zero or subnormal, exact */
        return sign ? -v : v;
    }
    if (e == 31) return u2f(sign | 0x7F800000u | (m << 13));
    return u2f(sign | ((e + 112) << 23) | (m << 13));
}

/* Rounds v / 2^shift to nearest, ties to even. */
static inline uint32_t rne_shift(uint32_t v, int shift) {
    if (shift <= 0) return v;
    if (shift >= 32) return 0; /* v < 2^24 here, far below half a unit */
    uint32_t r = v >> shift, rem = v & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return r;
}

/* |x| (finite f32 bits, sign cleared) -> unsigned code of a binary float with `mbits` mantissa
 * bits and exponent bias `bias` (IEEE layout, subnormals), RNE. Results above the format's range
 * come back as codes >= its first non-finite code; callers clamp. */
static uint32_t f32_to_mini(uint32_t x, int mbits, int bias) {
    int e = (int)(x >> 23);
    if (e == 0) return 0; /* f32 zero/subnormal: < 2^-126, rounds to 0 in every target here */
    uint32_t m = (x & 0x7FFFFFu) | 0x800000u;
    int te = e - 127 + bias;
    if (te >= 1) return ((uint32_t)(te - 1) << mbits) + rne_shift(m, 23 - mbits);
    return rne_shift(m, 23 - mbits + 1 - te);
}

uint16_t qn_f32_to_f16(float f) {
    uint32_t u = f2u(f), x = u & 0x7FFFFFFFu;
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    if (x > 0x7F800000u) return sign | 0x7E00;
    if (x >= 0x477FF000u) return sign | 0x7C00; /* >= 65520 (incl. inf) */
    return sign | (uint16_t)f32_to_mini(x, 10, 15);
}

float qn_fp8e4m3_to_f32(uint8_t v) {
    uint32_t sign = (uint32_t)(v & 0x80u) << 24;
    uint32_t e = (v >> 3) & 0xFu, m = v & 7u;
    if (e == 15 && m == 7) return u2f(sign | 0x7FC00000u);
    if (e == 0) {
        float r = ldexpf((float)m, -9);
        return sign ? -r : r;
    }
    return u2f(sign | ((e + 120) << 23) | (m << 20));
}

float qn_fp8e5m2_to_f32(uint8_t v) { return qn_f16_to_f32((uint16_t)(v << 8)); }

uint8_t qn_f32_to_fp8e4m3(float f) {
    uint32_t u = f2u(f), x = u & 0x7FFFFFFFu;
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    if (x >= 0x7F800000u) return sign | 0x7F;
    uint32_t c = f32_to_mini(x, 3, 7);
    return sign | (uint8_t)(c > 0x7Eu ? 0x7Fu : c);
}

uint8_t qn_f32_to_fp8e5m2(float f) {
    uint32_t u = f2u(f), x = u & 0x7FFFFFFFu;
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    if (x > 0x7F800000u) return sign | 0x7F;
    if (x == 0x7F800000u) return sign | 0x7C;
    uint32_t c = f32_to_mini(x, 2, 15);
    return sign | (uint8_t)(c >= 0x7Cu ? 0x7Cu : c);
}

float qn_fp8e8m0_to_f32(uint8_t v) {
    if (v == 0xFF) return NAN;
    return ldexpf(1.0f, (int)v - 127);
}

/* ---- whole tensors ---- */

int64_t qn_tensor_numel(const qn_tensor *t) {
    uint64_t n;
    if (!t || t->ndim < 0 || t->ndim > QN_MAX_DIMS || qn__shape_numel(t->ndim, t->shape, &n) != 0)
        return -1;
    return (int64_t)n;
}

#define PAR_MIN 65536

#define CONVERT_LOOP(T, EXPR)                                                                       \
    do {                                                                                            \
        const unsigned char *src = t->data;                                                         \
        _Pragma("omp parallel for schedule(static) if (n >= PAR_MIN)")                             \
        for (int64_t i = 0; i < n; i++) {                                                           \
            T v;                                                                                    \
            memcpy(&v, src + (size_t)i * sizeof(T), sizeof(T));                                    \
            out[i] = (EXPR);                                                                        \
        }                                                                                           \
    } while (0)

qn_status qn_tensor_to_f32(const qn_tensor *t, float *out, qn_error *err) {
    if (!t) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_tensor_to_f32: NULL tensor");
    const char *file = t->file ? t->file : "(memory)";
    const char *name = t->name ? t->name : "?";
    if (!valid_dt(t->dtype))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: tensor '%s': invalid dtype %d", file, name,
                            (int)t->dtype);
    int64_t n = qn_tensor_numel(t);
    if (n < 0)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: tensor '%s': invalid shape", file, name);
    uint64_t need;
    if (__builtin_mul_overflow((uint64_t)n, (uint64_t)DTYPES[t->dtype].size, &need) ||
        need != (uint64_t)t->nbytes)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: tensor '%s': %zu bytes but %s with %lld elements needs %llu", file,
                            name, t->nbytes, DTYPES[t->dtype].name, (long long)n,
                            (unsigned long long)((uint64_t)n * DTYPES[t->dtype].size));
    if (n == 0) return QN_OK;
    if (!t->data || !out)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: tensor '%s': NULL data or output", file,
                            name);
    switch (t->dtype) {
    case QN_DT_F64: CONVERT_LOOP(double, (float)v); break;
    case QN_DT_F32: memcpy(out, t->data, (size_t)n * 4); break;
    case QN_DT_F16: CONVERT_LOOP(uint16_t, qn_f16_to_f32(v)); break;
    case QN_DT_BF16: CONVERT_LOOP(uint16_t, u2f((uint32_t)v << 16)); break;
    case QN_DT_I64: CONVERT_LOOP(int64_t, (float)v); break;
    case QN_DT_I32: CONVERT_LOOP(int32_t, (float)v); break;
    case QN_DT_I16: CONVERT_LOOP(int16_t, (float)v); break;
    case QN_DT_I8: CONVERT_LOOP(int8_t, (float)v); break;
    case QN_DT_U64: CONVERT_LOOP(uint64_t, (float)v); break;
    case QN_DT_U32: CONVERT_LOOP(uint32_t, (float)v); break;
    case QN_DT_U16: CONVERT_LOOP(uint16_t, (float)v); break;
    case QN_DT_U8: CONVERT_LOOP(uint8_t, (float)v); break;
    case QN_DT_BOOL: CONVERT_LOOP(uint8_t, v ? 1.0f : 0.0f); break;
    case QN_DT_F8_E4M3: CONVERT_LOOP(uint8_t, qn_fp8e4m3_to_f32(v)); break;
    case QN_DT_F8_E5M2: CONVERT_LOOP(uint8_t, qn_f16_to_f32((uint16_t)(v << 8))); break;
    case QN_DT_F8_E8M0: CONVERT_LOOP(uint8_t, qn_fp8e8m0_to_f32(v)); break;
    case QN_DT_COUNT: break;
    }
    return QN_OK;
}
