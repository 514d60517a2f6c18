/* quench — quantization numerics, scheme presets and packing (compressed-tensors semantics).
 *
 * A pure library: no I/O, no printing, no global mutable state. Numerics follow
 * ../shared/docs/compressed-tensors-format.md §4 (CT = compressed-tensors); the JSON follows §3.4/§3.11.
 *
 * 1. Schemes and QuantizationArgs (presets, validation, JSON as written into config.json)
 *
 *   qn_quant_scheme s; qn_error err = {0};
 *   if (qn_scheme_preset("W4A16", &s, &err)) ... err.msg ...;        // targets = ["Linear"]
 *   cJSON *j; qn_quant_scheme_to_json(&s, &j, &err);                  // sorted keys, every field
 *   qn_quant_scheme_free(&s);
 *
 *   qn_quant_args a;                                                  // from a recipe / config.json
 *   if (qn_quant_args_from_json(obj, &a, "recipe.yaml: group_0.weights", &err)) ...;
 *
 * 2. Weight quantization (RTN): scales from the observer, integer/fp8/fp4 codes, dequantization.
 *    All arrays are fp32; `dtype` is the model dtype (QN_DT_BF16, QN_DT_F16 or QN_DT_F32) and every
 *    intermediate is rounded to it exactly as PyTorch evaluates bf16/fp16 ops (§4.2).
 *
 *   qn_qparams p;
 *   qn_qparams_init(&p, &s.weights, QN_DT_BF16, rows, cols, &err);    // allocates scale/zp
 *   if (s.weights.strategy == QN_STRATEGY_TENSOR_GROUP)               // NVFP4: global scale first
 *       p.global_scale = qn_nvfp4_global_scale(qn_quant_absmax(w, rows, cols, cols));
 *   qn_qparams_observe(&p, w, cols, 0, cols, &err);                   // minmax or mse observer
 *   qn_quant_quantize(&p, w, cols, 0, cols, codes, cols, &err);       // int8_t / uint8_t codes
 *   qn_pack_int32_rows(codes, rows, cols, 4, QN_PACK_DENSE, packed, &err);   // weight_packed
 *   qn_quant_fake(&p, w, cols, 0, cols, &err);                        // in place: w = dq(q(w))
 *   qn_qparams_free(&p);
 *
 *    GPTQ-style column updates: `qn_quant_fake(&p, W1 + j, ld, c0 + j, 1, &err)` quantizes one column
 *    (column c0 + j of the full weight) with its group's scale; p.g_idx may point at a per-column
 *    group index (actorder "group") and every function then uses scale[:, g_idx[c]].
 *
 * 3. Activations: qn_quant_fake_dynamic (token / tensor / group / tensor_group at runtime) and
 *    qn_quant_fake_tensor (static per-tensor input_scale).
 *
 * Decisions where the references differ by version (see also the .c files):
 *  - Numerics follow CT >= 0.13 (HEAD): the zero-scale guard replaces scale == 0 by the machine
 *    epsilon of the scale dtype (bf16 2^-7, fp16 2^-10, fp32 2^-23; 0.125 when scale_dtype is fp8)
 *    AFTER the zero point was computed (all-zero asymmetric groups get zero point 0).
 *  - JSON/preset defaults follow a target CT version (QN_CT_VERSION_DEFAULT = 0.13, the version of
 *    the spec's §3.11 examples); the *_v functions take another one.
 *  - The MSE observer is llm-compressor's grid search (observers/mse.py): defaults maxshrink 0.20,
 *    patience 5, grid 100, norm 2.4 (overridable through observer_kwargs); early stopping is global
 *    over one observe call, as in the reference where one call = one tensor (or one GPTQ block).
 */
#ifndef QUENCH_QUANT_H
#define QUENCH_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "quench/safetensors.h" /* qn_dtype */
#include "quench/status.h"

/* ------------------------------------------------------------------------------------------ */
/* Target compressed-tensors version (what JSON and presets emulate).                          */

#define QN_CT_VERSION(major, minor) ((major) * 1000 + (minor))
#define QN_CT_VERSION_DEFAULT QN_CT_VERSION(0, 13)

/* ------------------------------------------------------------------------------------------ */
/* QuantizationArgs                                                                             */

typedef enum { QN_QTYPE_INT = 0, QN_QTYPE_FLOAT } qn_qtype;

typedef enum {
    QN_STRATEGY_UNSET = 0, /* JSON null: inferred by validation from group_size */
    QN_STRATEGY_TENSOR,
    QN_STRATEGY_CHANNEL,
    QN_STRATEGY_GROUP,
    QN_STRATEGY_BLOCK,
    QN_STRATEGY_TOKEN,
    QN_STRATEGY_TENSOR_GROUP,
    QN_STRATEGY_ATTN_HEAD /* numerics: per row of the 2-D view (caller makes rows = heads) */
} qn_qstrategy;

typedef enum { QN_DYNAMIC_FALSE = 0, QN_DYNAMIC_TRUE, QN_DYNAMIC_LOCAL } qn_qdynamic;

/* The spelling given is kept (aliases compare equal but serialize as written). */
typedef enum {
    QN_ACTORDER_NONE = 0,
    QN_ACTORDER_GROUP,
    QN_ACTORDER_WEIGHT,
    QN_ACTORDER_DYNAMIC, /* alias of group */
    QN_ACTORDER_STATIC   /* alias of weight */
} qn_actorder;

/* torch dtypes as CT serializes them ("torch.<name>"). */
typedef enum {
    QN_TORCH_NONE = 0,
    QN_TORCH_FLOAT8_E4M3FN,
    QN_TORCH_FLOAT8_E5M2,
    QN_TORCH_UINT8,
    QN_TORCH_INT8,
    QN_TORCH_INT16,
    QN_TORCH_INT32,
    QN_TORCH_INT64,
    QN_TORCH_BFLOAT16,
    QN_TORCH_FLOAT16,
    QN_TORCH_FLOAT32,
    QN_TORCH_FLOAT64,
    QN_TORCH_COUNT
} qn_torch_dtype;

#define QN_QARGS_OBSERVER_MAX 48
#define QN_QARGS_KWARGS_MAX 512

typedef struct {
    int num_bits;                 /* default 8 */
    qn_qtype type;                /* default int */
    int symmetric;                /* default 1 */
    int has_group_size;           /* 0: JSON null */
    int64_t group_size;           /* >0 group/tensor_group; -1 historically "channel" */
    qn_qstrategy strategy;        /* default UNSET (null) */
    int has_block_structure;      /* 0: null */
    int64_t block_structure[2];   /* [rows, cols] */
    qn_qdynamic dynamic;          /* default false */
    qn_actorder actorder;         /* default none */
    qn_torch_dtype scale_dtype;   /* default none */
    qn_torch_dtype zp_dtype;      /* default none (inferred by validation) */
    char observer[QN_QARGS_OBSERVER_MAX];        /* "" = null (validation picks the default) */
    char observer_kwargs[QN_QARGS_KWARGS_MAX];   /* compact JSON object text, "{}" by default */
} qn_quant_args;

/* Pydantic defaults (before validation), e.g.
 *   qn_quant_args a; qn_quant_args_init(&a); a.num_bits = 4; a.strategy = QN_STRATEGY_GROUP; ... */
void qn_quant_args_init(qn_quant_args *a);

/* QuantizationArgs.validate_model_after for `ct_version`: infers the strategy from group_size,
 * checks the combinations (token needs dynamic; group/tensor_group need group_size > 0; a positive
 * group_size needs group/tensor_group; block <=> block_structure; actorder group needs
 * group/tensor_group; dynamic only with token/tensor/tensor_group/group; "local" only with
 * tensor_group), sets the observer default (non-dynamic: "minmax" before 0.14,
 * "memoryless_minmax" from 0.14; dynamic true: null; "local": "minmax") and infers zp_dtype.
 * Idempotent. `ctx` prefixes messages (may be NULL).
 *   if (qn_quant_args_validate(&a, QN_CT_VERSION_DEFAULT, "weights", &err)) ... */
qn_status qn_quant_args_validate(qn_quant_args *a, int ct_version, const char *ctx, qn_error *err);

/* Parses a QuantizationArgs JSON object (config.json, or a recipe converted to cJSON) and validates
 * it for QN_CT_VERSION_DEFAULT (the _v form: another version). extra="forbid": an unknown key is an
 * error naming it. Accepted spellings follow pydantic: "type"/"strategy"/"actorder"/"dynamic"
 * strings case-insensitive, actorder true/false, block_structure "AxB", scale_dtype/zp_dtype
 * "torch.x" or "x"; integral numbers or decimal strings for integer fields, true/false (or
 * "true"/"false", 0/1) for booleans.
 *   qn_quant_args a;
 *   if (qn_quant_args_from_json(cJSON_GetObjectItem(g, "weights"), &a, "group_0.weights", &err)) ... */
qn_status qn_quant_args_from_json(const cJSON *j, qn_quant_args *out, const char *ctx, qn_error *err);
qn_status qn_quant_args_from_json_v(const cJSON *j, int ct_version, qn_quant_args *out,
                                    const char *ctx, qn_error *err);

/* Serializes as CT's model_dump: every field, keys sorted, null where unset, zp_dtype null when
 * symmetric. Version differences: scale_dtype/zp_dtype only from 0.13; block_structure as "AxB"
 * before 0.11. *out is a new object the caller frees with cJSON_Delete.
 *   cJSON *o; if (qn_quant_args_to_json(&a, &o, &err) == QN_OK) cJSON_AddItemToObject(g, "weights", o); */
qn_status qn_quant_args_to_json(const qn_quant_args *a, cJSON **out, qn_error *err);
qn_status qn_quant_args_to_json_v(const qn_quant_args *a, int ct_version, cJSON **out, qn_error *err);

/* 1 when the two args are equal field by field (aliases of actorder count as different spellings). */
int qn_quant_args_equal(const qn_quant_args *a, const qn_quant_args *b);

/* Enum <-> string ("tensor", "int", "torch.float8_e4m3fn", ...). *_from_name: 0 ok, -1 unknown. */
const char *qn_qstrategy_name(qn_qstrategy s);   /* NULL for UNSET */
int qn_qstrategy_from_name(const char *name, qn_qstrategy *out);  /* case-insensitive */
const char *qn_torch_dtype_name(qn_torch_dtype d);  /* "torch.bfloat16"; NULL for NONE */
int qn_torch_dtype_from_name(const char *name, qn_torch_dtype *out);  /* "torch.x" or "x", aliases */

/* MSE observer parameters taken from observer_kwargs (defaults maxshrink 0.20, patience 5,
 * grid 100.0, norm 2.4; other keys are ignored, as llm-compressor does). */
typedef struct {
    double maxshrink, grid, norm;
    int patience;
} qn_mse_params;
qn_status qn_quant_args_mse_params(const qn_quant_args *a, qn_mse_params *out, qn_error *err);

/* ------------------------------------------------------------------------------------------ */
/* QuantizationScheme (config group) and presets                                              */

typedef struct {
    char **targets;               /* owned */
    size_t n_targets;
    int has_weights, has_input_activations, has_output_activations;
    qn_quant_args weights, input_activations, output_activations;
    char format[32];              /* per-group compression format; "" = null */
} qn_quant_scheme;

void qn_quant_scheme_init(qn_quant_scheme *s);   /* empty: no targets, no args, format null */
void qn_quant_scheme_free(qn_quant_scheme *s);   /* frees targets; leaves an empty scheme */
/* Deep copy; `dst` is overwritten (free it first if it held a scheme). */
qn_status qn_quant_scheme_copy(qn_quant_scheme *dst, const qn_quant_scheme *src, qn_error *err);
/* Replaces the targets with copies of `targets[0..n)`.
 *   const char *t[] = {"re:.*mlp.*"}; qn_quant_scheme_set_targets(&s, t, 1, &err); */
qn_status qn_quant_scheme_set_targets(qn_quant_scheme *s, const char *const *targets, size_t n,
                                      qn_error *err);
/* QuantizationScheme.validate_model_after: input strategies token/tensor/group/tensor_group/
 * attn_head only, no actorder on activations, format != "mixed-precision" and a known format. */
qn_status qn_quant_scheme_validate(const qn_quant_scheme *s, const char *ctx, qn_error *err);

/* {targets (required list of strings), weights, input_activations, output_activations, format};
 * extra keys forbidden. */
qn_status qn_quant_scheme_from_json(const cJSON *j, qn_quant_scheme *out, const char *ctx,
                                    qn_error *err);
qn_status qn_quant_scheme_from_json_v(const cJSON *j, int ct_version, qn_quant_scheme *out,
                                      const char *ctx, qn_error *err);
/* Sorted keys; "format" only from CT 0.11. */
qn_status qn_quant_scheme_to_json(const qn_quant_scheme *s, cJSON **out, qn_error *err);
qn_status qn_quant_scheme_to_json_v(const qn_quant_scheme *s, int ct_version, cJSON **out,
                                    qn_error *err);

/* The CT preset `name` (case-insensitive, as preset_name_to_scheme) with targets ["Linear"] and
 * format null, validated for QN_CT_VERSION_DEFAULT (_v: another version; W8A16 is per-channel
 * before 0.18 and group 128 from 0.18; observers follow the version's defaults). Unknown name:
 * QN_ERR_NOT_FOUND with the list of known presets.
 *   qn_quant_scheme s; if (qn_scheme_preset("fp8_dynamic", &s, &err)) ...; qn_quant_scheme_free(&s); */
qn_status qn_scheme_preset(const char *name, qn_quant_scheme *out, qn_error *err);
qn_status qn_scheme_preset_v(const char *name, int ct_version, qn_quant_scheme *out, qn_error *err);
/* Names in CT's PRESET_SCHEMES order: i = 0.. until NULL. */
const char *qn_scheme_preset_name(size_t i);

/* ------------------------------------------------------------------------------------------ */
/* Scalars                                                                                     */

/* Quantized range (§4.1): int b bits [-2^(b-1), 2^(b-1)-1] (b = 1..8); float 8 = E4M3 [-448, 448];
 * float 4 = E2M1 [-6, 6]. */
qn_status qn_quant_range(const qn_quant_args *a, float *qmin, float *qmax, qn_error *err);

/* x rounded (nearest, ties to even) to a value representable in `dt` (QN_DT_BF16, QN_DT_F16,
 * QN_DT_F32 = identity, QN_DT_F8_E4M3 = saturating fp8), returned as fp32. */
float qn_round_to_dtype(float x, qn_dtype dt);

/* f32 -> float8_e4m3fn byte, round to nearest even, SATURATING: |x| > 448 (and +-inf) -> +-448
 * (0x7E/0xFE); NaN -> 0x7F with the sign bit kept (0xFF); -0.0 -> 0x80. For |x| <= 448 this equals
 * torch's cast (the non-saturating qn_f32_to_fp8e4m3 of safetensors.h). */
uint8_t qn_f32_to_fp8e4m3_sat(float x);

/* FP4 E2M1: code (bit 3 sign, bits 0-2 index into {0, .5, 1, 1.5, 2, 3, 4, 6}) <-> value.
 * qn_f32_to_e2m1 rounds as CT's cast_to_fp4 after clamping to [-6, 6] (ties to the even code); a
 * negative value that rounds to zero keeps its sign (code 8), -0.0 itself gives code 0, NaN 0. */
uint8_t qn_f32_to_e2m1(float x);
float qn_e2m1_to_f32(uint8_t code);

/* NVFP4 global scale (§4.8): (448 * 6) / amax in fp32; 1.0 when amax <= 0 or the result is not
 * finite. For fused layers pass the max of the shards' amax so they share it. */
float qn_nvfp4_global_scale(float amax);
/* max |w| over a [rows, cols] array with leading dimension ld (OpenMP); NaN ignored. */
float qn_quant_absmax(const float *w, int64_t rows, int64_t cols, int64_t ld);

/* calculate_qparams (§4.2) for n reduction sets given their min and max: scale[i] (exactly
 * representable in `dtype`) and, when zp != NULL, zero_point[i] (an integer-valued float, 0 for
 * symmetric args). `global_scale` > 0 only for tensor_group (else pass 0). */
qn_status qn_quant_calc_qparams(const qn_quant_args *a, qn_dtype dtype, const float *min_v,
                                const float *max_v, size_t n, float global_scale, float *scale,
                                float *zp, qn_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Quantization parameters of one 2-D weight [rows, cols] (out x in)                           */

typedef struct {
    qn_quant_args args;      /* validated copy */
    qn_dtype dtype;          /* model / arithmetic dtype: QN_DT_BF16, QN_DT_F16, QN_DT_F32 */
    int64_t rows, cols;      /* weight shape */
    int64_t srows, scols;    /* scale grid (§4.2.1): tensor 1x1, channel rows x 1,
                              * group rows x cols/g, block ceil(rows/bh) x ceil(cols/bw) */
    int64_t tile_rows, tile_cols; /* elements of one reduction set (tensor: rows x cols) */
    float *scale;            /* [srows * scols], owned */
    float *zero_point;       /* [srows * scols] integer values, owned; NULL when symmetric */
    float global_scale;      /* tensor_group: set before observe; 0 otherwise */
    const int32_t *g_idx;    /* optional [cols] group of each column (borrowed); NULL = columns in
                              * order. As in CT, an array containing -1 means column order. */
    float qmin, qmax;
} qn_qparams;

/* Validates args for a weight of this shape (group needs cols % g == 0; token/dynamic and
 * MX (uint8 scale_dtype) are refused) and allocates scale (and zero_point when asymmetric),
 * initialized to 1 and 0. Free with qn_qparams_free. */
qn_status qn_qparams_init(qn_qparams *p, const qn_quant_args *a, qn_dtype dtype, int64_t rows,
                          int64_t cols, qn_error *err);
void qn_qparams_free(qn_qparams *p);

/* Runs the args' observer (minmax, memoryless_minmax, static_minmax: min/max; mse,
 * memoryless_mse, static_mse: grid search) over columns [c0, c0 + ncols) and fills their scales
 * and zero points. `w` points at column c0 of row 0: element (r, c0 + j) is w[r * ld + j].
 * The range must hold whole reduction sets: tensor/channel/token/attn_head need the full width;
 * group and block ranges start at a multiple of g / bw and end at one (or at cols); with g_idx the
 * full width. tensor_group needs p->global_scale set (qn_nvfp4_global_scale). */
qn_status qn_qparams_observe(qn_qparams *p, const float *w, int64_t ld, int64_t c0, int64_t ncols,
                             qn_error *err);

/* Codes of columns [c0, c0 + ncols) (`w` as for observe; code (r, c0 + j) at codes[r * ldc + j]):
 * int8_t values in [qmin, qmax] for int args; uint8_t float8_e4m3fn bytes for float 8 bits;
 * uint8_t E2M1 codes (0..15, one per byte; qn_pack_fp4 pairs them) for float 4 bits. */
qn_status qn_quant_quantize(const qn_qparams *p, const float *w, int64_t ld, int64_t c0,
                            int64_t ncols, void *codes, int64_t ldc, qn_error *err);
/* Inverse: out (r, c0 + j) at out[r * ld + j] = (q - zp) * scale rounded to p->dtype. */
qn_status qn_quant_dequantize(const qn_qparams *p, const void *codes, int64_t ldc, int64_t c0,
                              int64_t ncols, float *out, int64_t ld, qn_error *err);
/* In place w = dequantize(quantize(w)) (CT fake_quantize), the values calibration propagates. */
qn_status qn_quant_fake(const qn_qparams *p, float *w, int64_t ld, int64_t c0, int64_t ncols,
                        qn_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Activations                                                                                 */

/* Dynamic fake quantization of activations x [rows = tokens, cols] as the runtime does
 * (compute_dynamic_scales_and_zp + fake_quantize): token per row, tensor over everything, group /
 * tensor_group per row and group of cols (cols % g == 0). tensor_group ("local") uses the
 * calibrated global_scale; other strategies ignore it. No allocation. */
qn_status qn_quant_fake_dynamic(const qn_quant_args *a, qn_dtype dtype, float *x, int64_t rows,
                                int64_t cols, int64_t ld, float global_scale, qn_error *err);

/* Static per-tensor fake quantization of n contiguous values with a given scale / zero point
 * (input_scale, k_scale): x = dq(q(x)). */
qn_status qn_quant_fake_tensor(const qn_quant_args *a, qn_dtype dtype, float *x, size_t n,
                               float scale, float zero_point, qn_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Packing (§5.4, §5.5)                                                                        */

typedef enum {
    QN_PACK_DENSE = 0, /* CT >= 0.17: element j at bit j*b of the row, values straddle words */
    QN_PACK_LEGACY     /* CT <= 0.16: floor(32/b) values per word, top bits unused */
} qn_pack_layout;       /* identical bytes for b in {1, 2, 4, 8} */

/* int32 words needed for n b-bit values (b = 1..8). */
int64_t qn_pack_int32_words(int64_t n, int bits, qn_pack_layout layout);

/* Packs signed codes q [rows, cols] (row-major int8, in [-2^(b-1), 2^(b-1)-1]) offset to
 * unsigned (q + 2^(b-1)) into int32 words, low bits first, padding bits 0.
 * _rows packs along dim 1 (weight_packed): out [rows, words(cols)].
 * _cols packs along dim 0 (weight_zero_point): out [words(rows), cols].
 *   qn_pack_int32_rows(q, out, in, 4, QN_PACK_DENSE, packed, &err);   // packed: out x in/8 */
qn_status qn_pack_int32_rows(const int8_t *q, int64_t rows, int64_t cols, int bits,
                             qn_pack_layout layout, int32_t *out, qn_error *err);
qn_status qn_unpack_int32_rows(const int32_t *packed, int64_t rows, int64_t cols, int bits,
                               qn_pack_layout layout, int8_t *q, qn_error *err);
qn_status qn_pack_int32_cols(const int8_t *q, int64_t rows, int64_t cols, int bits,
                             qn_pack_layout layout, int32_t *out, qn_error *err);
qn_status qn_unpack_int32_cols(const int32_t *packed, int64_t rows, int64_t cols, int bits,
                               qn_pack_layout layout, int8_t *q, qn_error *err);

/* E2M1 codes [rows, cols] (cols even) -> bytes [rows, cols/2]: element 2k in bits 0-3, 2k+1 in
 * bits 4-7. */
qn_status qn_pack_fp4(const uint8_t *codes, int64_t rows, int64_t cols, uint8_t *out, qn_error *err);
qn_status qn_unpack_fp4(const uint8_t *packed, int64_t rows, int64_t cols, uint8_t *codes,
                        qn_error *err);

#endif
