/* quench — quantization numerics (../shared/docs/compressed-tensors-format.md §4).
 *
 * Reference: compressed-tensors HEAD (quantization/utils/helpers.py calculate_qparams,
 * lifecycle/forward.py _quantize/_dequantize/_process_quantization) and llm-compressor's observers
 * (observers/min_max.py, observers/mse.py).
 *
 * Precision: the weight, its min/max and the scale live in the model dtype; every elementwise op is
 * evaluated in fp32 and rounded to the model dtype (qnq_rnd), as PyTorch does for bf16/fp16 tensors.
 * Exceptions that PyTorch's type promotion makes fp32: tensor_group (NVFP4) scales after
 * `global_scale * scale` and the quantize/dequantize arithmetic with `scale / global_scale`.
 *
 * Decisions (version-dependent references):
 *  - zero-scale guard: CT >= 0.13 (scale == 0 -> eps of the scale dtype, after the zero point);
 *  - NVFP4 global scale: 448*6/amax, non-finite -> 1.0 (spec §4.8; CT HEAD clamps amax to
 *    FLT_MIN instead, which gives +inf for an all-zero tensor);
 *  - MSE observer: llm-compressor's _grid_search_mse (p = 1 - i/grid for i < int(maxshrink*grid),
 *    error sum(|fq(x) - x|^norm) per reduction set, a set keeps a candidate only when its error is
 *    strictly lower, early stop after `patience` steps in which no set improved). The per-element
 *    error terms are rounded to the model dtype as torch does; they are summed in double (torch sums
 *    in fp32 with its own order), then rounded to the model dtype. For tensor_group the global scale
 *    is the caller's (minmax) one; only local scales are searched.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant_internal.h"

/* Parallelize only when the work is worth a thread team. */
#define QNQ_PAR_MIN 32768

/* ---------------------------------------------------------------------------------------- */
/* Scalars                                                                                   */

uint8_t qn_f32_to_fp8e4m3_sat(float x) {
    uint32_t u = qnq_f2u(x), a = u & 0x7FFFFFFFu;
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    if (a > 0x7F800000u) return sign | 0x7Fu;     /* NaN */
    if (a >= 0x43E00000u) return sign | 0x7Eu;    /* >= 448 (incl. inf): saturate */
    int e = (int)(a >> 23) - 127;                 /* unbiased fp32 exponent */
    uint32_t m = (a & 0x7FFFFFu) | 0x800000u;     /* 24-bit significand */
    if (a < 0x00800000u) return sign;             /* fp32 zero / subnormal: < 2^-126 -> 0 */
    int shift;                                    /* bits to drop from the 24-bit significand */
    uint32_t base;
    if (e >= -6) { /* normal e4m3: keep 4 significant bits */
        shift = 20;
        base = (uint32_t)(e + 7) << 3;            /* exponent field; the implicit bit adds 8 */
    } else {       /* subnormal e4m3: value = k * 2^-9, k = m * 2^(e - 23 + 9) */
        shift = 23 - 9 - e;                       /* >= 21 */
        base = 0;
    }
    uint32_t r;
    if (shift >= 32) r = 0;
    else {
        r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
    }
    uint32_t code;
    if (base) code = base + r - 8u;               /* r in [8, 16]; 16 carries into the exponent */
    else code = r;                                /* r in [0, 8]; 8 = smallest normal 0x08 */
    if (code > 0x7Eu) code = 0x7Eu;               /* cannot happen below 448; kept as a guard */
    return sign | (uint8_t)code;
}

float qnq_round_f16(float x) {
    if (!(x == x)) return x;
    return qn_f16_to_f32(qn_f32_to_f16(x));
}

float qn_round_to_dtype(float x, qn_dtype dt) {
    if (dt == QN_DT_F8_E4M3) return qnq_round_e4m3(x);
    return qnq_rnd(x, dt);
}

static const float E2M1_VALUES[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

/* Code of an exact E2M1 value (sign from the sign bit, so -0.0 -> 8, as CT's pack_fp4_to_uint8). */
static inline uint8_t e2m1_code(float v) {
    float a = fabsf(v);
    int idx = (a >= 0.5f) + (a >= 1.0f) + (a >= 1.5f) + (a >= 2.0f) + (a >= 3.0f) + (a >= 4.0f) +
              (a >= 6.0f);
    return (uint8_t)(idx | (signbit(v) ? 8 : 0));
}

uint8_t qn_f32_to_e2m1(float x) {
    if (!(x == x)) return 0;
    return e2m1_code(qnq_fp4_value(qnq_clamp(x, -6.0f, 6.0f)));
}

float qn_e2m1_to_f32(uint8_t code) {
    float v = E2M1_VALUES[code & 7u];
    return (code & 8u) ? -v : v;
}

float qn_nvfp4_global_scale(float amax) {
    if (!(amax > 0)) return 1.0f;
    float gs = 2688.0f / amax; /* FP8 max (448) * FP4 max (6), fp32 division */
    return isfinite(gs) ? gs : 1.0f;
}

float qn_quant_absmax(const float *w, int64_t rows, int64_t cols, int64_t ld) {
    float m = 0.0f;
    if (!w || rows <= 0 || cols <= 0) return 0.0f;
#pragma omp parallel for reduction(max : m) if (rows * cols > QNQ_PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *row = w + r * ld;
        float lm = 0.0f;
        for (int64_t c = 0; c < cols; c++) {
            float a = fabsf(row[c]);
            if (a > lm) lm = a;
        }
        if (lm > m) m = lm;
    }
    return m;
}

/* ---------------------------------------------------------------------------------------- */
/* Kernel constants and calculate_qparams                                                    */

static int is_int_torch(qn_torch_dtype d) {
    return d == QN_TORCH_UINT8 || d == QN_TORCH_INT8 || d == QN_TORCH_INT16 ||
           d == QN_TORCH_INT32 || d == QN_TORCH_INT64;
}

qn_status qn_quant_range(const qn_quant_args *a, float *qmin, float *qmax, qn_error *err) {
    if (!a) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: NULL args");
    float lo, hi;
    if (a->type == QN_QTYPE_INT) {
        if (a->num_bits < 1 || a->num_bits > 8)
            return qn_error_set(err, QN_ERR_UNSUPPORTED,
                                "quant: int quantization with num_bits %d is not supported (1..8)",
                                a->num_bits);
        lo = -ldexpf(1.0f, a->num_bits - 1);
        hi = ldexpf(1.0f, a->num_bits - 1) - 1.0f;
    } else if (a->type == QN_QTYPE_FLOAT) {
        if (a->num_bits == 8) { lo = -448.0f; hi = 448.0f; }
        else if (a->num_bits == 4) { lo = -6.0f; hi = 6.0f; }
        else
            return qn_error_set(err, QN_ERR_UNSUPPORTED,
                                "quant: float quantization with num_bits %d is not supported (4, 8)",
                                a->num_bits);
    } else {
        return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: invalid quantization type %d",
                            (int)a->type);
    }
    if (qmin) *qmin = lo;
    if (qmax) *qmax = hi;
    return QN_OK;
}

qn_status qnq_kernel_init(qnq_kernel *k, const qn_quant_args *a, qn_dtype dt, float gs,
                          qn_error *err) {
    memset(k, 0, sizeof *k);
    if (dt != QN_DT_BF16 && dt != QN_DT_F16 && dt != QN_DT_F32)
        return qn_error_set(err, QN_ERR_UNSUPPORTED,
                            "quant: model dtype %s is not supported (BF16, F16, F32)",
                            qn_dtype_name(dt));
    qn_status st = qn_quant_range(a, &k->qmin, &k->qmax, err);
    if (st) return st;
    k->type = a->type;
    k->bits = a->num_bits;
    k->sym = a->symmetric ? 1 : 0;
    k->bit_range = k->qmax - k->qmin;
    k->half_range = k->bit_range / 2.0f;
    k->dt = dt;
    if (!k->sym && a->type == QN_QTYPE_FLOAT && a->num_bits == 4)
        return qn_error_set(err, QN_ERR_UNSUPPORTED,
                            "quant: asymmetric quantization is not supported for FP4");
    switch (a->scale_dtype) {
    case QN_TORCH_NONE: case QN_TORCH_FLOAT8_E4M3FN: case QN_TORCH_BFLOAT16:
    case QN_TORCH_FLOAT16: case QN_TORCH_FLOAT32: case QN_TORCH_FLOAT64:
        break;
    default:
        return qn_error_set(err, QN_ERR_UNSUPPORTED,
                            "quant: scale_dtype %s is not supported (MX formats are out of scope)",
                            qn_torch_dtype_name(a->scale_dtype));
    }
    k->scale_dtype = a->scale_dtype;
    k->zp_dtype = a->zp_dtype;
    if (k->zp_dtype == QN_TORCH_NONE)
        k->zp_dtype = a->type == QN_QTYPE_FLOAT ? QN_TORCH_FLOAT8_E4M3FN : QN_TORCH_INT8;
    if (!is_int_torch(k->zp_dtype) && k->zp_dtype != QN_TORCH_FLOAT8_E4M3FN &&
        k->zp_dtype != QN_TORCH_BFLOAT16 && k->zp_dtype != QN_TORCH_FLOAT16 &&
        k->zp_dtype != QN_TORCH_FLOAT32 && k->zp_dtype != QN_TORCH_FLOAT64)
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "quant: zp_dtype %s is not supported",
                            qn_torch_dtype_name(k->zp_dtype));
    k->gs = gs > 0 ? gs : 0.0f;
    return QN_OK;
}

/* round_to_quantized_type_dtype(value, dtype) then back to `back` (the tensor's dtype). */
static float round_to_torch_dtype(float v, qn_torch_dtype d, qn_dtype back) {
    switch (d) {
    case QN_TORCH_FLOAT8_E4M3FN: v = qnq_round_e4m3(qnq_clamp(v, -448.0f, 448.0f)); break;
    case QN_TORCH_BFLOAT16: v = qnq_round_bf16(qnq_clamp(v, -3.38953139e38f, 3.38953139e38f)); break;
    case QN_TORCH_FLOAT16: v = qnq_round_f16(qnq_clamp(v, -65504.0f, 65504.0f)); break;
    default: break; /* fp32 / fp64: identity at fp32 precision */
    }
    return qnq_rnd(v, back);
}

static float dtype_eps(qn_torch_dtype scale_dtype, qn_dtype cur) {
    switch (scale_dtype) {
    case QN_TORCH_FLOAT8_E4M3FN: return 0.125f;
    case QN_TORCH_BFLOAT16: return 0.0078125f;
    case QN_TORCH_FLOAT16: return 0.0009765625f;
    case QN_TORCH_FLOAT32: return FLT_EPSILON;
    case QN_TORCH_FLOAT64: return (float)DBL_EPSILON;
    default: break;
    }
    switch (cur) {
    case QN_DT_BF16: return 0.0078125f;
    case QN_DT_F16: return 0.0009765625f;
    default: return FLT_EPSILON;
    }
}

/* Integer-valued zero point stored as zp_dtype (clamp to its range, round half even; NaN -> 0,
 * which is what the NaN -> int8 cast gives for all-zero asymmetric groups). */
static float round_zp(const qnq_kernel *k, float z) {
    if (!(z == z)) return 0.0f;
    switch (k->zp_dtype) {
    case QN_TORCH_INT8: return rintf(qnq_clamp(z, -128.0f, 127.0f));
    case QN_TORCH_UINT8: return rintf(qnq_clamp(z, 0.0f, 255.0f));
    case QN_TORCH_INT16: return rintf(qnq_clamp(z, -32768.0f, 32767.0f));
    case QN_TORCH_INT32: case QN_TORCH_INT64: return rintf(z);
    case QN_TORCH_FLOAT8_E4M3FN: return qnq_round_e4m3(qnq_clamp(z, -448.0f, 448.0f));
    case QN_TORCH_BFLOAT16: return qnq_round_bf16(z);
    case QN_TORCH_FLOAT16: return qnq_round_f16(z);
    default: return z;
    }
}

void qnq_calc(const qnq_kernel *k, float mn, float mx, float *scale, float *zp) {
    const qn_dtype dt = k->dt;
    /* 0 must be representable: min <= 0 <= max (NaN propagates as torch.min/max) */
    if (mn > 0) mn = 0.0f;
    if (mx < 0) mx = 0.0f;
    float s, z = 0.0f;
    if (k->sym) {
        float a = fabsf(mn), b = fabsf(mx);
        float amax = (a != a || b != b) ? NAN : (a > b ? a : b);
        s = qnq_rnd(amax / k->half_range, dt);
    } else {
        s = qnq_rnd(qnq_rnd(mx - mn, dt) / k->bit_range, dt);
        z = qnq_rnd(k->qmin - qnq_rnd(mn / s, dt), dt);
        z = qnq_clamp(z, k->qmin, k->qmax);
    }
    qn_dtype cur = dt;
    if (k->gs > 0) {
        s = k->gs * s; /* fp32 [1] * model-dtype tensor promotes to fp32 */
        cur = QN_DT_F32;
    }
    if (k->scale_dtype != QN_TORCH_NONE) s = round_to_torch_dtype(s, k->scale_dtype, cur);
    if (s == 0.0f) s = dtype_eps(k->scale_dtype, cur);
    *scale = qnq_rnd(s, dt); /* the scale parameter has the model dtype */
    if (zp) *zp = k->sym ? 0.0f : round_zp(k, z);
}

qn_status qn_quant_calc_qparams(const qn_quant_args *a, qn_dtype dtype, const float *min_v,
                                const float *max_v, size_t n, float global_scale, float *scale,
                                float *zp, qn_error *err) {
    if (!a || (!min_v && n) || (!max_v && n) || (!scale && n))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: calc_qparams: NULL argument");
    qnq_kernel k;
    qn_status st = qnq_kernel_init(&k, a, dtype, global_scale, err);
    if (st) return st;
    for (size_t i = 0; i < n; i++) qnq_calc(&k, min_v[i], max_v[i], &scale[i], zp ? &zp[i] : NULL);
    return QN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* qn_qparams                                                                                */

/* Strategy after null-inference (validation without the version-specific parts). */
static qn_status resolve_strategy(const qn_quant_args *a, qn_qstrategy *out, qn_error *err) {
    qn_qstrategy s = a->strategy;
    if (s == QN_STRATEGY_UNSET) {
        if (!a->has_group_size) s = QN_STRATEGY_TENSOR;
        else if (a->group_size > 0) s = QN_STRATEGY_GROUP;
        else if (a->group_size == -1) s = QN_STRATEGY_CHANNEL;
        else
            return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: invalid group_size %lld",
                                (long long)a->group_size);
    }
    *out = s;
    return QN_OK;
}

void qn_qparams_free(qn_qparams *p) {
    if (!p) return;
    free(p->scale);
    free(p->zero_point);
    p->scale = p->zero_point = NULL;
}

qn_status qn_qparams_init(qn_qparams *p, const qn_quant_args *a, qn_dtype dtype, int64_t rows,
                          int64_t cols, qn_error *err) {
    if (!p || !a) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: NULL argument");
    memset(p, 0, sizeof *p);
    if (rows <= 0 || cols <= 0 || rows > (INT64_C(1) << 40) / cols)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: invalid weight shape [%lld, %lld]",
                            (long long)rows, (long long)cols);
    p->args = *a;
    qn_status st = resolve_strategy(a, &p->args.strategy, err);
    if (st) return st;
    if (a->dynamic != QN_DYNAMIC_FALSE)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "quant: dynamic quantization has no stored qparams "
                            "(use qn_quant_fake_dynamic)");
    qnq_kernel k;
    if ((st = qnq_kernel_init(&k, &p->args, dtype, 0.0f, err))) return st;
    p->dtype = dtype;
    p->rows = rows;
    p->cols = cols;
    p->qmin = k.qmin;
    p->qmax = k.qmax;
    int64_t g;
    switch (p->args.strategy) {
    case QN_STRATEGY_TENSOR:
        p->srows = p->scols = 1;
        p->tile_rows = rows;
        p->tile_cols = cols;
        break;
    case QN_STRATEGY_CHANNEL:
    case QN_STRATEGY_ATTN_HEAD:
        p->srows = rows;
        p->scols = 1;
        p->tile_rows = 1;
        p->tile_cols = cols;
        break;
    case QN_STRATEGY_GROUP:
    case QN_STRATEGY_TENSOR_GROUP:
        if (!a->has_group_size || a->group_size <= 0)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "quant: strategy %s requires a positive group_size",
                                qn_qstrategy_name(p->args.strategy));
        g = a->group_size;
        if (cols % g != 0)
            return qn_error_set(err, QN_ERR_UNSUPPORTED,
                                "quant: %s quantization needs the input width %lld to be a "
                                "multiple of group_size %lld (compressed-tensors raises otherwise); "
                                "ignore the layer or use the channel strategy",
                                qn_qstrategy_name(p->args.strategy), (long long)cols, (long long)g);
        p->srows = rows;
        p->scols = cols / g;
        p->tile_rows = 1;
        p->tile_cols = g;
        break;
    case QN_STRATEGY_BLOCK:
        if (!a->has_block_structure || a->block_structure[0] <= 0 || a->block_structure[1] <= 0)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "quant: block strategy requires a positive block_structure");
        p->tile_rows = a->block_structure[0];
        p->tile_cols = a->block_structure[1];
        p->srows = (rows + p->tile_rows - 1) / p->tile_rows;
        p->scols = (cols + p->tile_cols - 1) / p->tile_cols;
        break;
    case QN_STRATEGY_TOKEN:
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "quant: token strategy is dynamic-only (use qn_quant_fake_dynamic)");
    default:
        return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: invalid strategy %d",
                            (int)p->args.strategy);
    }
    size_t n = (size_t)(p->srows * p->scols);
    p->scale = malloc(n * sizeof *p->scale);
    if (!p->scale) return qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory (%zu scales)", n);
    for (size_t i = 0; i < n; i++) p->scale[i] = 1.0f;
    if (!p->args.symmetric) {
        p->zero_point = calloc(n, sizeof *p->zero_point);
        if (!p->zero_point) {
            qn_qparams_free(p);
            return qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory (%zu zero points)", n);
        }
    }
    return QN_OK;
}

/* Whether p->g_idx selects groups (CT: g_idx None or containing -1 means column order). */
static qn_status check_g_idx(const qn_qparams *p, int *use, qn_error *err) {
    *use = 0;
    if (!p->g_idx) return QN_OK;
    if (p->args.strategy != QN_STRATEGY_GROUP && p->args.strategy != QN_STRATEGY_TENSOR_GROUP)
        return QN_OK;
    for (int64_t c = 0; c < p->cols; c++)
        if (p->g_idx[c] == -1) return QN_OK;
    for (int64_t c = 0; c < p->cols; c++)
        if (p->g_idx[c] < 0 || p->g_idx[c] >= p->scols)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "quant: g_idx[%lld] = %d outside [0, %lld)", (long long)c,
                                (int)p->g_idx[c], (long long)p->scols);
    *use = 1;
    return QN_OK;
}

static qn_status check_cols(const qn_qparams *p, int64_t c0, int64_t ncols, qn_error *err) {
    if (!p || !p->scale) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: qparams not initialized");
    if (c0 < 0 || ncols < 0 || c0 > p->cols || ncols > p->cols - c0)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "quant: column range [%lld, %lld) outside the weight's %lld columns",
                            (long long)c0, (long long)(c0 + ncols), (long long)p->cols);
    return QN_OK;
}

static qn_status make_kernel(const qn_qparams *p, qnq_kernel *k, qn_error *err) {
    float gs = 0.0f;
    if (p->args.strategy == QN_STRATEGY_TENSOR_GROUP) {
        if (!(p->global_scale > 0) || !isfinite(p->global_scale))
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "quant: tensor_group needs a positive finite global_scale "
                                "(set p->global_scale = qn_nvfp4_global_scale(amax))");
        gs = p->global_scale;
    }
    return qnq_kernel_init(k, &p->args, p->dtype, gs, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Observers                                                                                 */

typedef enum { OBS_MINMAX, OBS_MSE } obs_kind;

static qn_status observer_kind(const qn_quant_args *a, obs_kind *out, qn_error *err) {
    const char *o = a->observer;
    if (!o[0] || !strcmp(o, "minmax") || !strcmp(o, "memoryless_minmax") ||
        !strcmp(o, "static_minmax") || !strcmp(o, "memoryless")) {
        *out = OBS_MINMAX;
        return QN_OK;
    }
    if (!strcmp(o, "mse") || !strcmp(o, "memoryless_mse") || !strcmp(o, "static_mse")) {
        *out = OBS_MSE;
        return QN_OK;
    }
    return qn_error_set(err, QN_ERR_UNSUPPORTED,
                        "quant: observer '%s' is not supported (minmax, memoryless_minmax, "
                        "static_minmax, mse, memoryless_mse, static_mse)", o);
}

typedef struct {
    qnq_kernel k;
    int mse;
    int K;               /* number of grid steps */
    double grid, norm;
    int patience;
    float err_max;       /* torch.finfo(dtype).max */
} obs_ctx;

static void minmax_of(const float *x, int64_t n, float *mn, float *mx) {
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    if (n == 0) lo = hi = 0.0f;
    *mn = lo;
    *mx = hi;
}

static inline float shrink(double pf, float v, qn_dtype dt) { return qnq_rnd((float)pf * v, dt); }

/* Error of candidate (s, z) over x[0..n): sum of rnd(|rnd(fq(x) - x)|^norm). */
static double cand_err(const obs_ctx *o, const float *x, int64_t n, float s, float z) {
    double acc = 0.0;
    const qn_dtype dt = o->k.dt;
    const float nrm = (float)o->norm;
    for (int64_t i = 0; i < n; i++) {
        float d = qnq_rnd(qnq_fake(&o->k, x[i], s, z) - x[i], dt);
        float e = (nrm == 2.0f) ? d * d : powf(fabsf(d), nrm);
        acc += qnq_rnd(e, dt);
    }
    return acc;
}

/* Grid search over one set; sets bit i of `mask` when candidate i improved the set's best. */
static void mse_set(const obs_ctx *o, const float *x, int64_t n, float mn, float mx,
                    uint64_t *mask) {
    float best = o->err_max;
    for (int i = 0; i < o->K; i++) {
        double pf = 1.0 - (double)i / o->grid;
        float s, z;
        qnq_calc(&o->k, shrink(pf, mn, o->k.dt), shrink(pf, mx, o->k.dt), &s, &z);
        float e = qnq_rnd((float)cand_err(o, x, n, s, z), o->k.dt);
        if (e < best) {
            best = e;
            mask[i >> 6] |= UINT64_C(1) << (i & 63);
        }
    }
}

/* Early stop shared by all sets of the call: the last evaluated step. */
static int mse_stop(const obs_ctx *o, const uint64_t *any) {
    int no_improve = 0;
    for (int i = 0; i < o->K; i++) {
        if (any[i >> 6] >> (i & 63) & 1) no_improve = 0;
        else if (++no_improve >= o->patience) return i;
    }
    return o->K - 1;
}

/* Candidate chosen for a set: its last improvement at a step <= stop (-1: none -> plain min/max). */
static int mse_choice(const uint64_t *mask, int stop) {
    for (int i = stop; i >= 0; i--)
        if (mask[i >> 6] >> (i & 63) & 1) return i;
    return -1;
}

static qn_status obs_init(const qn_qparams *p, obs_ctx *o, qn_error *err) {
    memset(o, 0, sizeof *o);
    qn_status st = make_kernel(p, &o->k, err);
    if (st) return st;
    obs_kind kind = OBS_MINMAX;
    if ((st = observer_kind(&p->args, &kind, err))) return st;
    o->mse = kind == OBS_MSE;
    o->err_max = p->dtype == QN_DT_BF16 ? 3.38953139e38f : (p->dtype == QN_DT_F16 ? 65504.0f : FLT_MAX);
    if (o->mse) {
        qn_mse_params mp;
        if ((st = qn_quant_args_mse_params(&p->args, &mp, err))) return st;
        double steps = mp.maxshrink * mp.grid;
        if (!(mp.grid > 0) || !(steps >= 0) || steps > 100000)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "quant: mse observer: maxshrink * grid = %g steps is out of range",
                                steps);
        o->K = (int)steps; /* int() truncates */
        o->grid = mp.grid;
        o->norm = mp.norm;
        o->patience = mp.patience;
    }
    return QN_OK;
}

/* One reduction set of a non-tensor strategy. */
typedef struct {
    int64_t r0, nr;          /* rows */
    int64_t cs, nc;          /* absolute column start, count (contiguous case) */
    const int32_t *cols;     /* g_idx case: column list (absolute), nc entries */
} set_desc;

static void set_of(const qn_qparams *p, int64_t sr, int64_t sc, const int32_t *order,
                   const int64_t *gstart, set_desc *d) {
    d->cols = NULL;
    switch (p->args.strategy) {
    case QN_STRATEGY_BLOCK:
        d->r0 = sr * p->tile_rows;
        d->nr = p->tile_rows;
        if (d->r0 + d->nr > p->rows) d->nr = p->rows - d->r0;
        d->cs = sc * p->tile_cols;
        d->nc = p->tile_cols;
        if (d->cs + d->nc > p->cols) d->nc = p->cols - d->cs;
        break;
    case QN_STRATEGY_GROUP:
    case QN_STRATEGY_TENSOR_GROUP:
        d->r0 = sr;
        d->nr = 1;
        if (order) {
            d->cols = order + gstart[sc];
            d->cs = 0;
            d->nc = gstart[sc + 1] - gstart[sc];
        } else {
            d->cs = sc * p->tile_cols;
            d->nc = p->tile_cols;
        }
        break;
    default: /* channel, attn_head */
        d->r0 = sr;
        d->nr = 1;
        d->cs = 0;
        d->nc = p->cols;
        break;
    }
}

/* Pointer to the set's values: directly into w when contiguous, else gathered into buf. */
static const float *set_values(const set_desc *d, const float *w, int64_t ld, int64_t c0,
                               float *buf, int64_t *n) {
    if (!d->cols && d->nr == 1) {
        *n = d->nc;
        return w + d->r0 * ld + (d->cs - c0);
    }
    int64_t k = 0;
    for (int64_t r = d->r0; r < d->r0 + d->nr; r++) {
        const float *row = w + r * ld;
        if (d->cols)
            for (int64_t j = 0; j < d->nc; j++) buf[k++] = row[d->cols[j] - c0];
        else
            for (int64_t j = 0; j < d->nc; j++) buf[k++] = row[d->cs - c0 + j];
    }
    *n = k;
    return buf;
}

static qn_status observe_tensor(qn_qparams *p, const obs_ctx *o, const float *w, int64_t ld) {
    const int64_t rows = p->rows, cols = p->cols;
    float mn = INFINITY, mx = -INFINITY;
#pragma omp parallel for reduction(min : mn) reduction(max : mx) if (rows * cols > QNQ_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        float a, b;
        minmax_of(w + r * ld, cols, &a, &b);
        if (a < mn) mn = a;
        if (b > mx) mx = b;
    }
    float cmn = mn, cmx = mx;
    if (o->mse) {
        float best = o->err_max;
        int no_improve = 0;
        for (int i = 0; i < o->K; i++) {
            double pf = 1.0 - (double)i / o->grid;
            float smn = shrink(pf, mn, o->k.dt), smx = shrink(pf, mx, o->k.dt), s, z;
            qnq_calc(&o->k, smn, smx, &s, &z);
            double acc = 0.0;
#pragma omp parallel for reduction(+ : acc) if (rows * cols > QNQ_PAR_MIN)
            for (int64_t r = 0; r < rows; r++) acc += cand_err(o, w + r * ld, cols, s, z);
            float e = qnq_rnd((float)acc, o->k.dt);
            if (e < best) {
                best = e;
                cmn = smn;
                cmx = smx;
                no_improve = 0;
            } else if (++no_improve >= o->patience) {
                break;
            }
        }
    }
    qnq_calc(&o->k, cmn, cmx, &p->scale[0], p->zero_point ? &p->zero_point[0] : NULL);
    return QN_OK;
}

qn_status qn_qparams_observe(qn_qparams *p, const float *w, int64_t ld, int64_t c0, int64_t ncols,
                             qn_error *err) {
    qn_status st = check_cols(p, c0, ncols, err);
    if (st) return st;
    if (!w || ld < ncols) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: observe: bad weight pointer / ld");
    obs_ctx o;
    if ((st = obs_init(p, &o, err))) return st;
    int use_gidx;
    if ((st = check_g_idx(p, &use_gidx, err))) return st;
    const qn_qstrategy s = p->args.strategy;
    const int full = c0 == 0 && ncols == p->cols;
    if (s == QN_STRATEGY_TENSOR || s == QN_STRATEGY_CHANNEL || s == QN_STRATEGY_ATTN_HEAD ||
        use_gidx) {
        if (!full)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "quant: observe: %s%s needs the full width (columns [0, %lld))",
                                qn_qstrategy_name(s), use_gidx ? " with g_idx" : "",
                                (long long)p->cols);
    } else if (c0 % p->tile_cols || (ncols % p->tile_cols && c0 + ncols != p->cols)) {
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "quant: observe: columns [%lld, %lld) do not hold whole %s sets of %lld",
                            (long long)c0, (long long)(c0 + ncols), qn_qstrategy_name(s),
                            (long long)p->tile_cols);
    }
    if (ncols == 0) return QN_OK;
    if (s == QN_STRATEGY_TENSOR) return observe_tensor(p, &o, w, ld);

    /* Sets: every set row, set columns [sc0, sc1). */
    const int64_t sc0 = (s == QN_STRATEGY_CHANNEL || s == QN_STRATEGY_ATTN_HEAD) ? 0 : c0 / p->tile_cols;
    const int64_t sc1 = (s == QN_STRATEGY_CHANNEL || s == QN_STRATEGY_ATTN_HEAD)
                            ? 1 : (c0 + ncols + p->tile_cols - 1) / p->tile_cols;
    const int64_t nsc = sc1 - sc0, nsets = p->srows * nsc;

    int32_t *order = NULL;
    int64_t *gstart = NULL, maxset = p->tile_rows * p->tile_cols;
    if (use_gidx) { /* counting sort of the columns by group */
        order = malloc((size_t)p->cols * sizeof *order);
        gstart = calloc((size_t)p->scols + 1, sizeof *gstart);
        if (!order || !gstart) {
            free(order);
            free(gstart);
            return qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory (g_idx order)");
        }
        for (int64_t c = 0; c < p->cols; c++) gstart[p->g_idx[c] + 1]++;
        maxset = 0;
        for (int64_t g = 0; g < p->scols; g++) {
            if (gstart[g + 1] > maxset) maxset = gstart[g + 1];
            gstart[g + 1] += gstart[g];
        }
        int64_t *fill = malloc((size_t)p->scols * sizeof *fill);
        if (!fill) {
            free(order);
            free(gstart);
            return qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory (g_idx order)");
        }
        memcpy(fill, gstart, (size_t)p->scols * sizeof *fill);
        for (int64_t c = 0; c < p->cols; c++) order[fill[p->g_idx[c]]++] = (int32_t)c;
        free(fill);
    }
    const int need_buf = use_gidx || s == QN_STRATEGY_BLOCK;
    const int nw = (o.K + 63) / 64;
    uint64_t *masks = NULL;
    float *mns = NULL, *mxs = NULL;
    if (o.mse && o.K > 0) {
        masks = calloc((size_t)nsets * (size_t)nw, sizeof *masks);
        mns = malloc((size_t)nsets * sizeof *mns);
        mxs = malloc((size_t)nsets * sizeof *mxs);
        if (!masks || !mns || !mxs) {
            free(masks); free(mns); free(mxs); free(order); free(gstart);
            return qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory (mse observer, %lld sets)",
                                (long long)nsets);
        }
    }
    int oom = 0;
    const int64_t work = p->rows * ncols * (o.mse ? o.K : 1);
#pragma omp parallel if (work > QNQ_PAR_MIN)
    {
        float *buf = need_buf ? malloc((size_t)(maxset > 0 ? maxset : 1) * sizeof *buf) : NULL;
        if (need_buf && !buf) {
#pragma omp atomic write
            oom = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < nsets; i++) {
            if (need_buf && !buf) continue;
            int64_t sr = i / nsc, sc = sc0 + i % nsc, n;
            set_desc d;
            set_of(p, sr, sc, order, gstart, &d);
            const float *x = set_values(&d, w, ld, c0, buf, &n);
            float mn, mx;
            minmax_of(x, n, &mn, &mx);
            int64_t si = sr * p->scols + sc;
            if (masks) {
                mns[i] = mn;
                mxs[i] = mx;
                mse_set(&o, x, n, mn, mx, masks + (size_t)i * (size_t)nw);
            } else {
                qnq_calc(&o.k, mn, mx, &p->scale[si], p->zero_point ? &p->zero_point[si] : NULL);
            }
        }
        free(buf);
    }
    qn_status rc = QN_OK;
    if (oom) rc = qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory (observer buffers)");
    if (!rc && masks) {
        uint64_t *any = calloc((size_t)nw, sizeof *any);
        if (!any) rc = qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory");
        else {
            for (int64_t i = 0; i < nsets; i++)
                for (int j = 0; j < nw; j++) any[j] |= masks[(size_t)i * (size_t)nw + (size_t)j];
            int stop = mse_stop(&o, any);
            free(any);
            for (int64_t i = 0; i < nsets; i++) {
                int ch = mse_choice(masks + (size_t)i * (size_t)nw, stop);
                double pf = ch < 0 ? 1.0 : 1.0 - (double)ch / o.grid;
                int64_t sr = i / nsc, sc = sc0 + i % nsc, si = sr * p->scols + sc;
                qnq_calc(&o.k, shrink(pf, mns[i], o.k.dt), shrink(pf, mxs[i], o.k.dt),
                         &p->scale[si], p->zero_point ? &p->zero_point[si] : NULL);
            }
        }
    }
    free(masks);
    free(mns);
    free(mxs);
    free(order);
    free(gstart);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Quantize / dequantize / fake quantize                                                    */

typedef enum { OP_QUANT, OP_DEQUANT, OP_FAKE } qop;

/* Scale index of (r, c) and the end (exclusive) of the column run sharing it. */
static inline int64_t scale_index(const qn_qparams *p, int use_gidx, int64_t r, int64_t c,
                                  int64_t *run_end) {
    switch (p->args.strategy) {
    case QN_STRATEGY_TENSOR: *run_end = p->cols; return 0;
    case QN_STRATEGY_GROUP:
    case QN_STRATEGY_TENSOR_GROUP:
        if (use_gidx) { *run_end = c + 1; return r * p->scols + p->g_idx[c]; }
        *run_end = (c / p->tile_cols + 1) * p->tile_cols;
        return r * p->scols + c / p->tile_cols;
    case QN_STRATEGY_BLOCK:
        *run_end = (c / p->tile_cols + 1) * p->tile_cols;
        return (r / p->tile_rows) * p->scols + c / p->tile_cols;
    default: *run_end = p->cols; return r;
    }
}

static qn_status run_op(const qn_qparams *p, qop op, const float *win, float *wout, int64_t ld,
                        int64_t c0, int64_t ncols, const void *cin, void *cout, int64_t ldc,
                        qn_error *err) {
    qn_status st = check_cols(p, c0, ncols, err);
    if (st) return st;
    qnq_kernel k;
    if ((st = make_kernel(p, &k, err))) return st;
    int use_gidx;
    if ((st = check_g_idx(p, &use_gidx, err))) return st;
    if ((op != OP_DEQUANT && (!win || ld < ncols)) || (op != OP_QUANT && !wout) ||
        (op == OP_DEQUANT && (!cin || ldc < ncols || ld < ncols)) ||
        (op == OP_QUANT && (!cout || ldc < ncols)))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: NULL buffer or leading dimension too small");
    const int is_int = k.type == QN_QTYPE_INT, is_fp8 = !is_int && k.bits == 8;
    const int64_t rows = p->rows, end = c0 + ncols;
#pragma omp parallel for schedule(static) if (rows * ncols > QNQ_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t c = c0;
        while (c < end) {
            int64_t run_end;
            int64_t si = scale_index(p, use_gidx, r, c, &run_end);
            if (run_end > end) run_end = end;
            const float s = p->scale[si], z = p->zero_point ? p->zero_point[si] : 0.0f;
            for (; c < run_end; c++) {
                const int64_t j = c - c0;
                switch (op) {
                case OP_FAKE:
                    wout[r * ld + j] = qnq_fake(&k, win[r * ld + j], s, z);
                    break;
                case OP_QUANT: {
                    float q = qnq_quant(&k, win[r * ld + j], s, z);
                    if (is_int) ((int8_t *)cout)[r * ldc + j] = (int8_t)q;
                    else if (is_fp8) ((uint8_t *)cout)[r * ldc + j] = qn_f32_to_fp8e4m3_sat(q);
                    else ((uint8_t *)cout)[r * ldc + j] = e2m1_code(q);
                    break;
                }
                case OP_DEQUANT: {
                    float q;
                    if (is_int) q = (float)((const int8_t *)cin)[r * ldc + j];
                    else if (is_fp8) q = qnq_e4m3_value(((const uint8_t *)cin)[r * ldc + j]);
                    else q = qn_e2m1_to_f32(((const uint8_t *)cin)[r * ldc + j]);
                    wout[r * ld + j] = qnq_dequant(&k, q, s, z);
                    break;
                }
                }
            }
        }
    }
    return QN_OK;
}

qn_status qn_quant_quantize(const qn_qparams *p, const float *w, int64_t ld, int64_t c0,
                            int64_t ncols, void *codes, int64_t ldc, qn_error *err) {
    return run_op(p, OP_QUANT, w, NULL, ld, c0, ncols, NULL, codes, ldc, err);
}

qn_status qn_quant_dequantize(const qn_qparams *p, const void *codes, int64_t ldc, int64_t c0,
                              int64_t ncols, float *out, int64_t ld, qn_error *err) {
    return run_op(p, OP_DEQUANT, NULL, out, ld, c0, ncols, codes, NULL, ldc, err);
}

qn_status qn_quant_fake(const qn_qparams *p, float *w, int64_t ld, int64_t c0, int64_t ncols,
                        qn_error *err) {
    return run_op(p, OP_FAKE, w, w, ld, c0, ncols, NULL, NULL, ld, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Activations                                                                               */

static void fake_span(const qnq_kernel *k, float *x, int64_t n) {
    float mn, mx, s, z;
    minmax_of(x, n, &mn, &mx);
    qnq_calc(k, mn, mx, &s, &z);
    for (int64_t i = 0; i < n; i++) x[i] = qnq_fake(k, x[i], s, z);
}

qn_status qn_quant_fake_dynamic(const qn_quant_args *a, qn_dtype dtype, float *x, int64_t rows,
                                int64_t cols, int64_t ld, float global_scale, qn_error *err) {
    if (!a || (!x && rows > 0 && cols > 0)) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: NULL argument");
    if (rows < 0 || cols < 0 || ld < cols)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: invalid activation shape");
    qn_qstrategy s = QN_STRATEGY_UNSET;
    qn_status st = resolve_strategy(a, &s, err);
    if (st) return st;
    float gs = 0.0f;
    if (s == QN_STRATEGY_TENSOR_GROUP) {
        if (!(global_scale > 0) || !isfinite(global_scale))
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "quant: tensor_group activations need a positive global scale");
        gs = global_scale;
    }
    qnq_kernel k;
    if ((st = qnq_kernel_init(&k, a, dtype, gs, err))) return st;
    if (rows == 0 || cols == 0) return QN_OK;
    switch (s) {
    case QN_STRATEGY_TOKEN:
#pragma omp parallel for schedule(static) if (rows * cols > QNQ_PAR_MIN)
        for (int64_t r = 0; r < rows; r++) fake_span(&k, x + r * ld, cols);
        return QN_OK;
    case QN_STRATEGY_GROUP:
    case QN_STRATEGY_TENSOR_GROUP: {
        if (!a->has_group_size || a->group_size <= 0 || cols % a->group_size)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "quant: dynamic group quantization needs cols (%lld) to be a "
                                "multiple of group_size", (long long)cols);
        const int64_t g = a->group_size;
#pragma omp parallel for schedule(static) if (rows * cols > QNQ_PAR_MIN)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c += g) fake_span(&k, x + r * ld + c, g);
        return QN_OK;
    }
    case QN_STRATEGY_TENSOR: {
        float mn = INFINITY, mx = -INFINITY, sc, z;
#pragma omp parallel for reduction(min : mn) reduction(max : mx) if (rows * cols > QNQ_PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            float lo, hi;
            minmax_of(x + r * ld, cols, &lo, &hi);
            if (lo < mn) mn = lo;
            if (hi > mx) mx = hi;
        }
        qnq_calc(&k, mn, mx, &sc, &z);
#pragma omp parallel for schedule(static) if (rows * cols > QNQ_PAR_MIN)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) x[r * ld + c] = qnq_fake(&k, x[r * ld + c], sc, z);
        return QN_OK;
    }
    default:
        return qn_error_set(err, QN_ERR_UNSUPPORTED,
                            "quant: dynamic quantization supports token, tensor, group and "
                            "tensor_group, not %s", qn_qstrategy_name(s));
    }
}

qn_status qn_quant_fake_tensor(const qn_quant_args *a, qn_dtype dtype, float *x, size_t n,
                               float scale, float zero_point, qn_error *err) {
    if (!a || (!x && n)) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: NULL argument");
    qnq_kernel k;
    qn_status st = qnq_kernel_init(&k, a, dtype, 0.0f, err);
    if (st) return st;
    if (!(scale > 0) || !isfinite(scale))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: scale must be positive and finite");
    const float z = k.sym ? 0.0f : zero_point;
#pragma omp parallel for schedule(static) if (n > QNQ_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] = qnq_fake(&k, x[i], scale, z);
    return QN_OK;
}
