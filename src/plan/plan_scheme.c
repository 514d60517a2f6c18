/* Built-in description of the compressed-tensors presets and the bytes each writes per Linear.
 *
 * Layouts (docs/compressed-tensors-format.md §5.3, §5.4, §5.5, §5.7, summary §5.10), Linear [out, in],
 * model dtype bytes `dt` (2 for bf16/fp16):
 *   W4A16        weight_packed I32 [out, ceil(in/8)], weight_scale dt [out, in/128], weight_shape I64 [2]
 *   W4A16_ASYM   + weight_zero_point I32 [ceil(out/8), in/128]   (packed along the output dim, §5.4)
 *   actorder     + weight_g_idx I32 [in]                           (group strategies only)
 *   W8A16        weight_packed I32 [out, ceil(in/4)], weight_scale dt [out, 1], weight_shape I64 [2]
 *                (the CT ≤0.17 per-channel preset; 0.18 changed it to group 128)
 *   W8A8 / INT8  weight I8 [out, in], weight_scale dt [out, 1]   (activations dynamic: nothing stored)
 *   FP8          weight F8 [out, in], weight_scale dt [1], input_scale dt [1]
 *   FP8_DYNAMIC  weight F8 [out, in], weight_scale dt [out, 1]
 *   FP8_BLOCK    weight F8 [out, in], weight_scale dt [ceil(out/128), ceil(in/128)]
 *   NVFP4A16     weight_packed U8 [out, in/2], weight_scale F8 [out, in/16], weight_global_scale F32 [1]
 *   NVFP4        + input_global_scale F32 [1]
 *   2:4 sparse-24-bitmask (8-bit W+A schemes or unquantized): the weight becomes
 *                compressed [out, in/2] (value dtype), bitmask U8 [out, ceil(in/8)], shape I64 [2, 1];
 *                scales unchanged.
 * Group strategies need in % group == 0 (CT raises otherwise, §4.2.1): such Linears are kept in the
 * model dtype and reported.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "plan_internal.h"

static const qn_plan_scheme k_schemes[QN_PSCHEME_COUNT] = {
    /* id, name, format, summary, wbits, group, abits, sparse24_bitmask_ok, min_cc, full_cc */
    {QN_PSCHEME_NONE, "none", "dense", "no quantization: weights kept in the model dtype", 16, 0, 16,
     1, 70, 80},
    {QN_PSCHEME_W4A16, "W4A16", "pack-quantized", "int4 weights, group 128, symmetric; 16-bit "
     "activations", 4, 128, 16, 0, 80, 80},
    {QN_PSCHEME_W4A16_ASYM, "W4A16_ASYM", "pack-quantized", "int4 weights, group 128, asymmetric "
     "(zero points); 16-bit activations", 4, 128, 16, 0, 80, 80},
    {QN_PSCHEME_W8A16, "W8A16", "pack-quantized", "int8 weights, per channel, symmetric (CT <=0.17 "
     "preset); 16-bit activations", 8, 0, 16, 0, 80, 80},
    {QN_PSCHEME_W8A8, "W8A8", "int-quantized", "int8 weights per channel, int8 dynamic per-token "
     "activations", 8, 0, 8, 1, 75, 75},
    {QN_PSCHEME_FP8, "FP8", "float-quantized", "fp8 e4m3 weights per tensor, static per-tensor fp8 "
     "activations", 8, -1, 8, 1, 80, 89},
    {QN_PSCHEME_FP8_DYNAMIC, "FP8_DYNAMIC", "float-quantized", "fp8 e4m3 weights per channel, dynamic "
     "per-token fp8 activations", 8, 0, 8, 1, 80, 89},
    {QN_PSCHEME_FP8_BLOCK, "FP8_BLOCK", "float-quantized", "fp8 e4m3 weights in 128x128 blocks, "
     "dynamic group-128 fp8 activations", 8, -2, 8, 0, 80, 89},
    {QN_PSCHEME_NVFP4A16, "NVFP4A16", "nvfp4-pack-quantized", "fp4 e2m1 weights, groups of 16 with "
     "fp8 scales + global scale; 16-bit activations", 4, 16, 16, 0, 75, 80},
    {QN_PSCHEME_NVFP4, "NVFP4", "nvfp4-pack-quantized", "fp4 e2m1 weights and activations, groups "
     "of 16 with fp8 scales + global scales", 4, 16, 4, 0, 80, 100},
};

const qn_plan_scheme *qn_plan_scheme_get(qn_plan_scheme_id id) {
    return (int)id >= 0 && id < QN_PSCHEME_COUNT ? &k_schemes[id] : NULL;
}

const char *qn_plan_scheme_names(void) {
    return "none, W4A16, W4A16_ASYM, W8A16, W8A8 (= INT8), FP8, FP8_DYNAMIC, FP8_BLOCK, NVFP4A16, "
           "NVFP4";
}

qn_status qn_plan_scheme_lookup(const char *name, qn_plan_scheme *out, qn_error *err) {
    if (!name || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "scheme: NULL argument");
    const char *n = name;
    if (!strcasecmp(n, "INT8")) n = "W8A8";
    if (!strcasecmp(n, "bf16") || !strcasecmp(n, "fp16") || !strcasecmp(n, "dense") ||
        !strcasecmp(n, "float16") || !strcasecmp(n, "bfloat16"))
        n = "none";
    for (int i = 0; i < QN_PSCHEME_COUNT; i++) {
        if (!strcasecmp(n, k_schemes[i].name)) {
            *out = k_schemes[i];
            return QN_OK;
        }
    }
    return qn_error_set(err, QN_ERR_UNSUPPORTED, "unknown scheme '%.64s' (known: %s)", name,
                        qn_plan_scheme_names());
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int qn_plan_linear_bytes(const qn_plan_scheme *s, int64_t out, int64_t in, int dt, int actorder,
                         int sparse, qn_plan_bytes *b, const char **why) {
    memset(b, 0, sizeof *b);
    if (why) *why = NULL;
    if (s->group_size > 0 && in % s->group_size != 0) {
        if (why) *why = s->group_size == 16 ? "in_features is not a multiple of 16"
                                            : "in_features is not a multiple of the group size 128";
        return 0;
    }
    if (sparse && (!s->sparse24_bitmask_ok || in % 4 != 0)) sparse = 0; /* dense zeros instead */
    const int64_t ng = s->group_size > 0 ? in / s->group_size : 0;
    switch (s->id) {
    case QN_PSCHEME_NONE:
        if (sparse) b->values = out * (in / 2) * dt;
        else b->kept = out * in * dt;
        break;
    case QN_PSCHEME_W4A16:
    case QN_PSCHEME_W4A16_ASYM:
        b->values = out * cdiv(in, 8) * 4;
        b->scales = out * ng * dt;
        if (s->id == QN_PSCHEME_W4A16_ASYM) b->zero_points = cdiv(out, 8) * ng * 4;
        if (actorder) b->g_idx = in * 4;
        b->shape_meta = 2 * 8;
        break;
    case QN_PSCHEME_W8A16:
        b->values = out * cdiv(in, 4) * 4;
        b->scales = out * dt;
        b->shape_meta = 2 * 8;
        break;
    case QN_PSCHEME_W8A8:
    case QN_PSCHEME_FP8:
    case QN_PSCHEME_FP8_DYNAMIC:
    case QN_PSCHEME_FP8_BLOCK:
        b->values = sparse ? out * (in / 2) : out * in;
        if (s->id == QN_PSCHEME_FP8) {
            b->scales = dt;
            b->act_scales = dt;
        } else if (s->id == QN_PSCHEME_FP8_BLOCK) {
            b->scales = cdiv(out, 128) * cdiv(in, 128) * dt;
        } else {
            b->scales = out * dt;
        }
        break;
    case QN_PSCHEME_NVFP4A16:
    case QN_PSCHEME_NVFP4:
        b->values = out * (in / 2);
        b->scales = out * (in / 16) + 4; /* F8 group scales + F32 weight_global_scale */
        if (s->id == QN_PSCHEME_NVFP4) b->act_scales = 4;
        break;
    default:
        return 0;
    }
    if (sparse) b->sparse_meta = out * cdiv(in, 8) + 2 * 8;
    b->total = b->values + b->scales + b->zero_points + b->g_idx + b->act_scales + b->shape_meta +
               b->sparse_meta + b->kept;
    return 1;
}
