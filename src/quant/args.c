/* quench — QuantizationArgs / QuantizationScheme: defaults, validation, JSON, presets.
 *
 * Reference: compressed-tensors quantization/quant_args.py, quant_scheme.py (HEAD and 0.14.0.1;
 * ../shared/docs/compressed-tensors-format.md §3.3-§3.5, §3.11).
 *
 * Version-dependent behaviour (target CT version `v`, default 0.13):
 *  - observer default for static args: "minmax" before 0.14, "memoryless_minmax" from 0.14;
 *  - preset W8A16: per-channel before 0.18, group 128 from 0.18 (#785);
 *  - preset FP8 input observer "static_minmax" from 0.16 (CT #705, merged May 2026; the exact
 *    release is UNCONFIRMED), NVFP4 input observer "static_minmax" from 0.12 (CT #493, Oct 2025);
 *  - actorder: before 0.18 any actorder needs group/tensor_group; from 0.18 only "group"/"dynamic";
 *  - JSON: scale_dtype/zp_dtype keys from 0.13; the group "format" key from 0.11; block_structure
 *    serialized as "AxB" before 0.11.
 * Presets are available under every target version (their names never reach config.json; only the
 * QuantizationArgs they expand to do).
 * Parsing always forbids unknown keys (CT >= 0.11 behaviour).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "quant/quant_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Names                                                                                     */

static const char *const STRATEGY_NAMES[] = {
    [QN_STRATEGY_TENSOR] = "tensor",          [QN_STRATEGY_CHANNEL] = "channel",
    [QN_STRATEGY_GROUP] = "group",            [QN_STRATEGY_BLOCK] = "block",
    [QN_STRATEGY_TOKEN] = "token",            [QN_STRATEGY_TENSOR_GROUP] = "tensor_group",
    [QN_STRATEGY_ATTN_HEAD] = "attn_head",
};

const char *qn_qstrategy_name(qn_qstrategy s) {
    if ((int)s <= 0 || s > QN_STRATEGY_ATTN_HEAD) return NULL;
    return STRATEGY_NAMES[s];
}

int qn_qstrategy_from_name(const char *name, qn_qstrategy *out) {
    if (!name) return -1;
    for (int i = QN_STRATEGY_TENSOR; i <= QN_STRATEGY_ATTN_HEAD; i++)
        if (!strcasecmp(name, STRATEGY_NAMES[i])) {
            if (out) *out = (qn_qstrategy)i;
            return 0;
        }
    return -1;
}

static const char *const ACTORDER_NAMES[] = {
    [QN_ACTORDER_GROUP] = "group", [QN_ACTORDER_WEIGHT] = "weight",
    [QN_ACTORDER_DYNAMIC] = "dynamic", [QN_ACTORDER_STATIC] = "static",
};

static const char *const TORCH_NAMES[QN_TORCH_COUNT] = {
    [QN_TORCH_FLOAT8_E4M3FN] = "torch.float8_e4m3fn", [QN_TORCH_FLOAT8_E5M2] = "torch.float8_e5m2",
    [QN_TORCH_UINT8] = "torch.uint8",       [QN_TORCH_INT8] = "torch.int8",
    [QN_TORCH_INT16] = "torch.int16",       [QN_TORCH_INT32] = "torch.int32",
    [QN_TORCH_INT64] = "torch.int64",       [QN_TORCH_BFLOAT16] = "torch.bfloat16",
    [QN_TORCH_FLOAT16] = "torch.float16",   [QN_TORCH_FLOAT32] = "torch.float32",
    [QN_TORCH_FLOAT64] = "torch.float64",
};

const char *qn_torch_dtype_name(qn_torch_dtype d) {
    if ((int)d <= 0 || d >= QN_TORCH_COUNT) return NULL;
    return TORCH_NAMES[d];
}

int qn_torch_dtype_from_name(const char *name, qn_torch_dtype *out) {
    static const struct { const char *alias; qn_torch_dtype d; } ALIASES[] = {
        {"half", QN_TORCH_FLOAT16}, {"float", QN_TORCH_FLOAT32}, {"double", QN_TORCH_FLOAT64},
        {"short", QN_TORCH_INT16},  {"int", QN_TORCH_INT32},     {"long", QN_TORCH_INT64},
    };
    if (!name) return -1;
    const char *n = strncmp(name, "torch.", 6) == 0 ? name + 6 : name; /* removeprefix */
    for (int i = 1; i < QN_TORCH_COUNT; i++)
        if (!strcmp(n, TORCH_NAMES[i] + 6)) {
            if (out) *out = (qn_torch_dtype)i;
            return 0;
        }
    for (size_t i = 0; i < sizeof ALIASES / sizeof ALIASES[0]; i++)
        if (!strcmp(n, ALIASES[i].alias)) {
            if (out) *out = ALIASES[i].d;
            return 0;
        }
    return -1;
}

static const char *const FORMATS[] = {
    "dense", "sparse-bitmask", "sparse-24-bitmask", "int-quantized", "float-quantized",
    "naive-quantized", "pack-quantized", "marlin-24", "mixed-precision", "nvfp4-pack-quantized",
    "mxfp4-pack-quantized", "mxfp8-quantized",
};

static int known_format(const char *f) {
    for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
        if (!strcmp(f, FORMATS[i])) return 1;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Defaults and validation                                                                   */

void qn_quant_args_init(qn_quant_args *a) {
    memset(a, 0, sizeof *a);
    a->num_bits = 8;
    a->type = QN_QTYPE_INT;
    a->symmetric = 1;
    a->strategy = QN_STRATEGY_UNSET;
    a->dynamic = QN_DYNAMIC_FALSE;
    a->actorder = QN_ACTORDER_NONE;
    strcpy(a->observer_kwargs, "{}");
}

#define CTX(c) ((c) ? (c) : "quantization args")

static int is_group_like(qn_qstrategy s) {
    return s == QN_STRATEGY_GROUP || s == QN_STRATEGY_TENSOR_GROUP;
}

qn_status qn_quant_args_validate(qn_quant_args *a, int v, const char *ctx, qn_error *err) {
    if (!a) return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: NULL args", CTX(ctx));
    if (a->type != QN_QTYPE_INT && a->type != QN_QTYPE_FLOAT)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: invalid type", CTX(ctx));
    if (a->num_bits < 1 || a->num_bits > 64)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: num_bits %d is not a positive bit width",
                            CTX(ctx), a->num_bits);
    if (a->has_group_size && a->group_size < -1)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: invalid group_size %lld (use group_size > 0 for strategy 'group' "
                            "and -1 for 'channel')", CTX(ctx), (long long)a->group_size);
    qn_qstrategy s = a->strategy;
    if (s == QN_STRATEGY_UNSET) {
        if (!a->has_group_size) s = QN_STRATEGY_TENSOR;
        else if (a->group_size > 0) s = QN_STRATEGY_GROUP;
        else if (a->group_size == -1) s = QN_STRATEGY_CHANNEL;
        else
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "%s: invalid group_size %lld (use group_size > 0 for strategy "
                                "'group' and -1 for 'channel')", CTX(ctx), (long long)a->group_size);
    } else if ((int)s < QN_STRATEGY_TENSOR || s > QN_STRATEGY_ATTN_HEAD) {
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: invalid strategy", CTX(ctx));
    }
    const char *sn = qn_qstrategy_name(s);
    if (s == QN_STRATEGY_TOKEN && a->dynamic == QN_DYNAMIC_FALSE)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: static token quantization is not possible; use dynamic: true",
                            CTX(ctx));
    if (is_group_like(s) && (!a->has_group_size || a->group_size <= 0))
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: strategy '%s' requires group_size to be set to a positive value",
                            CTX(ctx), sn);
    if (a->has_group_size && a->group_size > 0 && !is_group_like(s))
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: group_size %lld requires strategy 'group' or 'tensor_group' "
                            "(got '%s')", CTX(ctx), (long long)a->group_size, sn);
    if (s == QN_STRATEGY_BLOCK && !a->has_block_structure)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: strategy 'block' requires block_structure",
                            CTX(ctx));
    if (s != QN_STRATEGY_BLOCK && a->has_block_structure)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: block_structure requires strategy 'block' (got '%s')", CTX(ctx), sn);
    if ((int)a->actorder < QN_ACTORDER_NONE || a->actorder > QN_ACTORDER_STATIC)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: invalid actorder", CTX(ctx));
    int restricted = v >= QN_CT_VERSION(0, 18)
                         ? (a->actorder == QN_ACTORDER_GROUP || a->actorder == QN_ACTORDER_DYNAMIC)
                         : a->actorder != QN_ACTORDER_NONE;
    if (restricted && !is_group_like(s))
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: actorder '%s' requires strategy 'group' or 'tensor_group' (got '%s')",
                            CTX(ctx), ACTORDER_NAMES[a->actorder], sn);
    if ((int)a->dynamic < QN_DYNAMIC_FALSE || a->dynamic > QN_DYNAMIC_LOCAL)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: invalid dynamic", CTX(ctx));
    if (a->dynamic != QN_DYNAMIC_FALSE) {
        if (s != QN_STRATEGY_TOKEN && s != QN_STRATEGY_TENSOR && s != QN_STRATEGY_TENSOR_GROUP &&
            s != QN_STRATEGY_GROUP)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "%s: dynamic quantization needs strategy token, tensor, "
                                "tensor_group or group (got '%s')", CTX(ctx), sn);
        if (a->dynamic == QN_DYNAMIC_LOCAL && s != QN_STRATEGY_TENSOR_GROUP)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "%s: dynamic 'local' is only supported with strategy 'tensor_group'",
                                CTX(ctx));
        if (a->observer[0]) {
            if (a->dynamic == QN_DYNAMIC_TRUE) a->observer[0] = '\0'; /* no observer */
        } else if (a->dynamic == QN_DYNAMIC_LOCAL) {
            strcpy(a->observer, "minmax");
        }
    } else if (!a->observer[0]) {
        strcpy(a->observer, v >= QN_CT_VERSION(0, 14) ? "memoryless_minmax" : "minmax");
    }
    if ((int)a->scale_dtype < 0 || a->scale_dtype >= QN_TORCH_COUNT ||
        (int)a->zp_dtype < 0 || a->zp_dtype >= QN_TORCH_COUNT)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: invalid scale_dtype / zp_dtype", CTX(ctx));
    if (a->zp_dtype == QN_TORCH_NONE) {
        if (a->type == QN_QTYPE_FLOAT) {
            if (a->num_bits != 4 && a->num_bits != 8)
                return qn_error_set(err, QN_ERR_INVALID_ARG,
                                    "%s: float quantization supports num_bits 4 and 8 (got %d)",
                                    CTX(ctx), a->num_bits);
            a->zp_dtype = QN_TORCH_FLOAT8_E4M3FN;
        } else {
            a->zp_dtype = a->num_bits <= 8    ? QN_TORCH_INT8
                          : a->num_bits <= 16 ? QN_TORCH_INT16 : QN_TORCH_INT32;
        }
    }
    a->strategy = s;
    return QN_OK;
}

int qn_quant_args_equal(const qn_quant_args *a, const qn_quant_args *b) {
    if (a->num_bits != b->num_bits || a->type != b->type || !a->symmetric != !b->symmetric ||
        a->has_group_size != b->has_group_size || a->strategy != b->strategy ||
        a->has_block_structure != b->has_block_structure || a->dynamic != b->dynamic ||
        a->actorder != b->actorder || a->scale_dtype != b->scale_dtype ||
        a->zp_dtype != b->zp_dtype || strcmp(a->observer, b->observer) ||
        strcmp(a->observer_kwargs, b->observer_kwargs))
        return 0;
    if (a->has_group_size && a->group_size != b->group_size) return 0;
    if (a->has_block_structure && (a->block_structure[0] != b->block_structure[0] ||
                                   a->block_structure[1] != b->block_structure[1]))
        return 0;
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON -> args                                                                              */

/* Integer field (pydantic lax int: integral numbers, decimal strings). */
static int json_int(const cJSON *it, int64_t *out) {
    if (cJSON_IsNumber(it)) {
        double d = it->valuedouble;
        if (!isfinite(d) || d != floor(d) || fabs(d) > 9.0e15) return -1;
        *out = (int64_t)d;
        return 0;
    }
    if (cJSON_IsString(it) && it->valuestring) {
        const char *s = it->valuestring;
        while (isspace((unsigned char)*s)) s++;
        if (!*s) return -1;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s) return -1;
        while (isspace((unsigned char)*end)) end++;
        if (*end) return -1;
        *out = v;
        return 0;
    }
    return -1;
}

/* Boolean field (pydantic lax bool). */
static int json_bool(const cJSON *it, int *out) {
    if (cJSON_IsBool(it)) { *out = cJSON_IsTrue(it) ? 1 : 0; return 0; }
    if (cJSON_IsNumber(it)) {
        if (it->valuedouble == 0) { *out = 0; return 0; }
        if (it->valuedouble == 1) { *out = 1; return 0; }
        return -1;
    }
    if (cJSON_IsString(it) && it->valuestring) {
        static const char *const T[] = {"1", "on", "t", "true", "y", "yes"};
        static const char *const F[] = {"0", "off", "f", "false", "n", "no"};
        for (int i = 0; i < 6; i++) {
            if (!strcasecmp(it->valuestring, T[i])) { *out = 1; return 0; }
            if (!strcasecmp(it->valuestring, F[i])) { *out = 0; return 0; }
        }
    }
    return -1;
}

static const char ARGS_KEYS[] =
    "num_bits, type, symmetric, group_size, strategy, block_structure, dynamic, actorder, "
    "scale_dtype, zp_dtype, observer, observer_kwargs";

static qn_status parse_block(const cJSON *it, qn_quant_args *a, const char *ctx, qn_error *err) {
    if (cJSON_IsNull(it)) { a->has_block_structure = 0; return QN_OK; }
    int64_t v[2];
    if (cJSON_IsString(it) && it->valuestring) { /* backward-compatible "AxB" */
        const char *s = it->valuestring, *x = strchr(s, 'x');
        char part[64];
        if (!x || strchr(x + 1, 'x') || (size_t)(x - s) >= sizeof part || strlen(x + 1) >= sizeof part)
            goto bad;
        cJSON tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.type = cJSON_String;
        memcpy(part, s, (size_t)(x - s));
        part[x - s] = '\0';
        tmp.valuestring = part;
        if (json_int(&tmp, &v[0])) goto bad;
        snprintf(part, sizeof part, "%s", x + 1);
        if (json_int(&tmp, &v[1])) goto bad;
    } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2) {
        for (int i = 0; i < 2; i++) {
            const cJSON *e = cJSON_GetArrayItem(it, i);
            if (!cJSON_IsNumber(e) || json_int(e, &v[i])) goto bad;
        }
    } else {
        goto bad;
    }
    a->has_block_structure = 1;
    a->block_structure[0] = v[0];
    a->block_structure[1] = v[1];
    return QN_OK;
bad:
    return qn_error_set(err, QN_ERR_FORMAT,
                        "%s: invalid block_structure (must be a list of two ints [rows, cols])", ctx);
}

static qn_status parse_torch(const cJSON *it, qn_torch_dtype *out, const char *key, const char *ctx,
                             qn_error *err) {
    if (cJSON_IsNull(it)) { *out = QN_TORCH_NONE; return QN_OK; }
    if (!cJSON_IsString(it) || qn_torch_dtype_from_name(it->valuestring, out))
        return qn_error_set(err, QN_ERR_FORMAT,
                            "%s: %s must be null or a torch dtype such as \"torch.float8_e4m3fn\"%s%s%s",
                            ctx, key, cJSON_IsString(it) ? " (got \"" : "",
                            cJSON_IsString(it) ? it->valuestring : "",
                            cJSON_IsString(it) ? "\")" : "");
    return QN_OK;
}

static qn_status args_from_json(const cJSON *j, int v, qn_quant_args *a, const char *ctx,
                                qn_error *err) {
    ctx = CTX(ctx);
    qn_quant_args_init(a);
    if (!cJSON_IsObject(j))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: QuantizationArgs must be a JSON object", ctx);
    int64_t iv;
    int bv;
    for (const cJSON *it = j->child; it; it = it->next) {
        const char *k = it->string ? it->string : "";
        if (!strcmp(k, "num_bits")) {
            if (json_int(it, &iv) || iv < 1 || iv > 64)
                return qn_error_set(err, QN_ERR_FORMAT, "%s: num_bits must be a positive integer", ctx);
            a->num_bits = (int)iv;
        } else if (!strcmp(k, "type")) {
            if (cJSON_IsString(it) && !strcasecmp(it->valuestring, "int")) a->type = QN_QTYPE_INT;
            else if (cJSON_IsString(it) && !strcasecmp(it->valuestring, "float")) a->type = QN_QTYPE_FLOAT;
            else return qn_error_set(err, QN_ERR_FORMAT, "%s: type must be \"int\" or \"float\"", ctx);
        } else if (!strcmp(k, "symmetric")) {
            if (json_bool(it, &bv))
                return qn_error_set(err, QN_ERR_FORMAT, "%s: symmetric must be a boolean", ctx);
            a->symmetric = bv;
        } else if (!strcmp(k, "group_size")) {
            if (cJSON_IsNull(it)) {
                a->has_group_size = 0;
            } else {
                if (json_int(it, &iv))
                    return qn_error_set(err, QN_ERR_FORMAT, "%s: group_size must be an integer or null", ctx);
                if (iv < -1)
                    return qn_error_set(err, QN_ERR_FORMAT,
                                        "%s: invalid group_size %lld (use group_size > 0 for "
                                        "strategy 'group' and -1 for 'channel')", ctx, (long long)iv);
                a->has_group_size = 1;
                a->group_size = iv;
            }
        } else if (!strcmp(k, "strategy")) {
            if (cJSON_IsNull(it)) a->strategy = QN_STRATEGY_UNSET;
            else if (!cJSON_IsString(it) || qn_qstrategy_from_name(it->valuestring, &a->strategy))
                return qn_error_set(err, QN_ERR_FORMAT,
                                    "%s: strategy must be one of tensor, channel, group, block, "
                                    "token, tensor_group, attn_head (or null)", ctx);
        } else if (!strcmp(k, "block_structure")) {
            qn_status st = parse_block(it, a, ctx, err);
            if (st) return st;
        } else if (!strcmp(k, "dynamic")) {
            if (cJSON_IsString(it)) {
                if (strcasecmp(it->valuestring, "local"))
                    return qn_error_set(err, QN_ERR_FORMAT,
                                        "%s: dynamic must be true, false or \"local\"", ctx);
                a->dynamic = QN_DYNAMIC_LOCAL;
            } else if (!cJSON_IsNull(it) && !json_bool(it, &bv)) {
                a->dynamic = bv ? QN_DYNAMIC_TRUE : QN_DYNAMIC_FALSE;
            } else {
                return qn_error_set(err, QN_ERR_FORMAT, "%s: dynamic must be true, false or \"local\"", ctx);
            }
        } else if (!strcmp(k, "actorder")) {
            if (cJSON_IsNull(it) || cJSON_IsFalse(it)) a->actorder = QN_ACTORDER_NONE;
            else if (cJSON_IsTrue(it)) a->actorder = QN_ACTORDER_GROUP;
            else {
                int found = 0;
                for (int i = QN_ACTORDER_GROUP; cJSON_IsString(it) && i <= QN_ACTORDER_STATIC; i++)
                    if (!strcasecmp(it->valuestring, ACTORDER_NAMES[i])) {
                        a->actorder = (qn_actorder)i;
                        found = 1;
                    }
                if (!found)
                    return qn_error_set(err, QN_ERR_FORMAT,
                                        "%s: actorder must be null, a boolean, \"group\", \"weight\", "
                                        "\"dynamic\" or \"static\"", ctx);
            }
        } else if (!strcmp(k, "scale_dtype")) {
            qn_status st = parse_torch(it, &a->scale_dtype, k, ctx, err);
            if (st) return st;
        } else if (!strcmp(k, "zp_dtype")) {
            qn_status st = parse_torch(it, &a->zp_dtype, k, ctx, err);
            if (st) return st;
        } else if (!strcmp(k, "observer")) {
            if (cJSON_IsNull(it)) a->observer[0] = '\0';
            else if (!cJSON_IsString(it) || strlen(it->valuestring) >= QN_QARGS_OBSERVER_MAX)
                return qn_error_set(err, QN_ERR_FORMAT,
                                    "%s: observer must be null or a string of < %d characters", ctx,
                                    QN_QARGS_OBSERVER_MAX);
            else strcpy(a->observer, it->valuestring);
        } else if (!strcmp(k, "observer_kwargs")) {
            if (!cJSON_IsObject(it))
                return qn_error_set(err, QN_ERR_FORMAT, "%s: observer_kwargs must be an object", ctx);
            char *txt = cJSON_PrintUnformatted(it);
            if (!txt) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", ctx);
            size_t n = strlen(txt);
            if (n >= QN_QARGS_KWARGS_MAX) {
                free(txt);
                return qn_error_set(err, QN_ERR_UNSUPPORTED,
                                    "%s: observer_kwargs longer than %d characters", ctx,
                                    QN_QARGS_KWARGS_MAX - 1);
            }
            memcpy(a->observer_kwargs, txt, n + 1);
            free(txt);
        } else {
            return qn_error_set(err, QN_ERR_FORMAT,
                                "%s: unknown key '%s' (QuantizationArgs forbids extra keys; known: %s)",
                                ctx, k, ARGS_KEYS);
        }
    }
    return qn_quant_args_validate(a, v, ctx, err);
}

qn_status qn_quant_args_from_json_v(const cJSON *j, int v, qn_quant_args *out, const char *ctx,
                                    qn_error *err) {
    if (!out) return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: NULL output", CTX(ctx));
    qn_quant_args a;
    qn_status st = args_from_json(j, v, &a, ctx, err);
    if (st == QN_OK) *out = a;
    return st;
}

qn_status qn_quant_args_from_json(const cJSON *j, qn_quant_args *out, const char *ctx, qn_error *err) {
    return qn_quant_args_from_json_v(j, QN_CT_VERSION_DEFAULT, out, ctx, err);
}

qn_status qn_quant_args_mse_params(const qn_quant_args *a, qn_mse_params *out, qn_error *err) {
    out->maxshrink = 0.20;
    out->patience = 5;
    out->grid = 100.0;
    out->norm = 2.4;
    cJSON *kw = cJSON_Parse(a->observer_kwargs[0] ? a->observer_kwargs : "{}");
    if (!cJSON_IsObject(kw)) {
        cJSON_Delete(kw);
        return qn_error_set(err, QN_ERR_FORMAT, "quant: observer_kwargs is not a JSON object");
    }
    static const char *const KEYS[] = {"maxshrink", "patience", "grid", "norm"};
    for (int i = 0; i < 4; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(kw, KEYS[i]);
        if (!it) continue;
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
            cJSON_Delete(kw);
            return qn_error_set(err, QN_ERR_FORMAT, "quant: observer_kwargs.%s must be a number",
                                KEYS[i]);
        }
        double d = it->valuedouble;
        if (i == 0) out->maxshrink = d;
        else if (i == 1) out->patience = d > 1e9 ? 1000000000 : (d < -1e9 ? -1000000000 : (int)ceil(d));
        else if (i == 2) out->grid = d;
        else out->norm = d;
    }
    cJSON_Delete(kw);
    return QN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* args -> JSON                                                                              */

static int add_str_or_null(cJSON *o, const char *k, const char *s) {
    return (s ? cJSON_AddStringToObject(o, k, s) : cJSON_AddNullToObject(o, k)) != NULL;
}

qn_status qn_quant_args_to_json_v(const qn_quant_args *a, int v, cJSON **out, qn_error *err) {
    if (!a || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: to_json: NULL argument");
    *out = NULL;
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    /* keys in sorted order, as json.dump(sort_keys=True) writes them */
    ok = ok && add_str_or_null(o, "actorder", a->actorder > QN_ACTORDER_NONE &&
                                                      a->actorder <= QN_ACTORDER_STATIC
                                                  ? ACTORDER_NAMES[a->actorder] : NULL);
    if (ok) {
        if (!a->has_block_structure) {
            ok = cJSON_AddNullToObject(o, "block_structure") != NULL;
        } else if (v < QN_CT_VERSION(0, 11)) {
            char b[48];
            snprintf(b, sizeof b, "%lldx%lld", (long long)a->block_structure[0],
                     (long long)a->block_structure[1]);
            ok = cJSON_AddStringToObject(o, "block_structure", b) != NULL;
        } else {
            cJSON *arr = cJSON_AddArrayToObject(o, "block_structure");
            ok = arr && cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)a->block_structure[0])) &&
                 cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)a->block_structure[1]));
        }
    }
    if (ok) {
        if (a->dynamic == QN_DYNAMIC_LOCAL) ok = cJSON_AddStringToObject(o, "dynamic", "local") != NULL;
        else ok = cJSON_AddBoolToObject(o, "dynamic", a->dynamic == QN_DYNAMIC_TRUE) != NULL;
    }
    if (ok) ok = (a->has_group_size ? cJSON_AddNumberToObject(o, "group_size", (double)a->group_size)
                                    : cJSON_AddNullToObject(o, "group_size")) != NULL;
    ok = ok && cJSON_AddNumberToObject(o, "num_bits", a->num_bits);
    ok = ok && add_str_or_null(o, "observer", a->observer[0] ? a->observer : NULL);
    if (ok) {
        cJSON *kw = cJSON_Parse(a->observer_kwargs[0] ? a->observer_kwargs : "{}");
        if (!cJSON_IsObject(kw)) {
            cJSON_Delete(kw);
            cJSON_Delete(o);
            return qn_error_set(err, QN_ERR_FORMAT, "quant: observer_kwargs is not a JSON object");
        }
        cJSON_AddItemToObject(o, "observer_kwargs", kw);
    }
    if (ok && v >= QN_CT_VERSION(0, 13)) ok = add_str_or_null(o, "scale_dtype", qn_torch_dtype_name(a->scale_dtype));
    ok = ok && add_str_or_null(o, "strategy", qn_qstrategy_name(a->strategy));
    ok = ok && cJSON_AddBoolToObject(o, "symmetric", a->symmetric != 0);
    ok = ok && cJSON_AddStringToObject(o, "type", a->type == QN_QTYPE_FLOAT ? "float" : "int");
    if (ok && v >= QN_CT_VERSION(0, 13)) {
        /* field_serializer: null whenever symmetric; otherwise str(dtype) (inferred when unset) */
        const char *zp = NULL;
        if (!a->symmetric) {
            qn_torch_dtype d = a->zp_dtype;
            if (d == QN_TORCH_NONE)
                d = a->type == QN_QTYPE_FLOAT ? QN_TORCH_FLOAT8_E4M3FN
                    : a->num_bits <= 8        ? QN_TORCH_INT8
                    : a->num_bits <= 16       ? QN_TORCH_INT16 : QN_TORCH_INT32;
            zp = qn_torch_dtype_name(d);
        }
        ok = add_str_or_null(o, "zp_dtype", zp);
    }
    if (!ok) {
        cJSON_Delete(o);
        return qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory building JSON");
    }
    *out = o;
    return QN_OK;
}

qn_status qn_quant_args_to_json(const qn_quant_args *a, cJSON **out, qn_error *err) {
    return qn_quant_args_to_json_v(a, QN_CT_VERSION_DEFAULT, out, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Schemes                                                                                   */

void qn_quant_scheme_init(qn_quant_scheme *s) {
    memset(s, 0, sizeof *s);
    qn_quant_args_init(&s->weights);
    qn_quant_args_init(&s->input_activations);
    qn_quant_args_init(&s->output_activations);
}

void qn_quant_scheme_free(qn_quant_scheme *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_targets; i++) free(s->targets[i]);
    free(s->targets);
    qn_quant_scheme_init(s);
}

qn_status qn_quant_scheme_set_targets(qn_quant_scheme *s, const char *const *targets, size_t n,
                                      qn_error *err) {
    if (!s || (n && !targets))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: set_targets: NULL argument");
    char **t = n ? calloc(n, sizeof *t) : NULL;
    if (n && !t) return qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory (targets)");
    for (size_t i = 0; i < n; i++) {
        t[i] = targets[i] ? strdup(targets[i]) : NULL;
        if (!t[i]) {
            for (size_t k = 0; k < i; k++) free(t[k]);
            free(t);
            return qn_error_set(err, targets[i] ? QN_ERR_NOMEM : QN_ERR_INVALID_ARG,
                                "quant: target %zu is %s", i, targets[i] ? "out of memory" : "NULL");
        }
    }
    for (size_t i = 0; i < s->n_targets; i++) free(s->targets[i]);
    free(s->targets);
    s->targets = t;
    s->n_targets = n;
    return QN_OK;
}

qn_status qn_quant_scheme_copy(qn_quant_scheme *dst, const qn_quant_scheme *src, qn_error *err) {
    if (!dst || !src) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: scheme copy: NULL argument");
    qn_quant_scheme tmp;
    qn_quant_scheme_init(&tmp);
    qn_status st = qn_quant_scheme_set_targets(&tmp, (const char *const *)src->targets,
                                               src->n_targets, err);
    if (st) return st;
    char **t = tmp.targets;
    size_t n = tmp.n_targets;
    tmp = *src;
    tmp.targets = t;
    tmp.n_targets = n;
    *dst = tmp;
    return QN_OK;
}

qn_status qn_quant_scheme_validate(const qn_quant_scheme *s, const char *ctx, qn_error *err) {
    ctx = ctx ? ctx : "quantization scheme";
    if (!s) return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: NULL scheme", ctx);
    if (s->has_input_activations) {
        qn_qstrategy st = s->input_activations.strategy;
        if (st != QN_STRATEGY_TOKEN && st != QN_STRATEGY_TENSOR && st != QN_STRATEGY_GROUP &&
            st != QN_STRATEGY_TENSOR_GROUP && st != QN_STRATEGY_ATTN_HEAD)
            return qn_error_set(err, QN_ERR_UNSUPPORTED,
                                "%s: strategy '%s' is not supported for activation quantization",
                                ctx, st == QN_STRATEGY_UNSET ? "null" : qn_qstrategy_name(st));
        if (s->input_activations.actorder != QN_ACTORDER_NONE)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "%s: actorder cannot be applied to input activations", ctx);
    }
    if (s->has_output_activations && s->output_activations.actorder != QN_ACTORDER_NONE)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: actorder cannot be applied to output activations", ctx);
    if (s->format[0]) {
        if (!strcmp(s->format, "mixed-precision"))
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "%s: mixed-precision cannot be set as the format of a scheme", ctx);
        if (!known_format(s->format))
            return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: unknown compression format '%s'", ctx,
                                s->format);
    }
    return QN_OK;
}

static qn_status scheme_from_json(const cJSON *j, int v, qn_quant_scheme *s, const char *ctx,
                                  qn_error *err) {
    char sub[512];
    if (!cJSON_IsObject(j))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: QuantizationScheme must be a JSON object", ctx);
    int have_targets = 0;
    for (const cJSON *it = j->child; it; it = it->next) {
        const char *k = it->string ? it->string : "";
        if (!strcmp(k, "targets")) {
            if (!cJSON_IsArray(it))
                return qn_error_set(err, QN_ERR_FORMAT, "%s: targets must be a list of strings", ctx);
            size_t n = (size_t)cJSON_GetArraySize(it), i = 0;
            const char **t = n ? calloc(n, sizeof *t) : NULL;
            if (n && !t) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", ctx);
            for (const cJSON *e = it->child; e; e = e->next, i++) {
                if (!cJSON_IsString(e) || !e->valuestring) {
                    free(t);
                    return qn_error_set(err, QN_ERR_FORMAT, "%s: targets[%zu] must be a string", ctx, i);
                }
                t[i] = e->valuestring;
            }
            qn_status st = qn_quant_scheme_set_targets(s, t, n, err);
            free(t);
            if (st) return st;
            have_targets = 1;
        } else if (!strcmp(k, "weights") || !strcmp(k, "input_activations") ||
                   !strcmp(k, "output_activations")) {
            int *has = k[0] == 'w' ? &s->has_weights
                       : k[0] == 'i' ? &s->has_input_activations : &s->has_output_activations;
            qn_quant_args *a = k[0] == 'w' ? &s->weights
                               : k[0] == 'i' ? &s->input_activations : &s->output_activations;
            if (cJSON_IsNull(it)) {
                *has = 0;
                qn_quant_args_init(a);
                continue;
            }
            snprintf(sub, sizeof sub, "%s.%s", ctx, k);
            qn_status st = qn_quant_args_from_json_v(it, v, a, sub, err);
            if (st) return st;
            *has = 1;
        } else if (!strcmp(k, "format")) {
            if (cJSON_IsNull(it)) {
                s->format[0] = '\0';
            } else if (!cJSON_IsString(it) || !known_format(it->valuestring)) {
                return qn_error_set(err, QN_ERR_FORMAT,
                                    "%s: format must be null or a compression format such as "
                                    "\"pack-quantized\"%s%s%s", ctx, cJSON_IsString(it) ? " (got \"" : "",
                                    cJSON_IsString(it) ? it->valuestring : "",
                                    cJSON_IsString(it) ? "\")" : "");
            } else {
                snprintf(s->format, sizeof s->format, "%s", it->valuestring);
            }
        } else {
            return qn_error_set(err, QN_ERR_FORMAT,
                                "%s: unknown key '%s' (QuantizationScheme forbids extra keys; known: "
                                "targets, weights, input_activations, output_activations, format)",
                                ctx, k);
        }
    }
    if (!have_targets)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: targets is required", ctx);
    return qn_quant_scheme_validate(s, ctx, err);
}

qn_status qn_quant_scheme_from_json_v(const cJSON *j, int v, qn_quant_scheme *out, const char *ctx,
                                      qn_error *err) {
    if (!out) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: NULL output");
    qn_quant_scheme s;
    qn_quant_scheme_init(&s);
    qn_status st = scheme_from_json(j, v, &s, ctx ? ctx : "quantization scheme", err);
    if (st) {
        qn_quant_scheme_free(&s);
        return st;
    }
    *out = s;
    return QN_OK;
}

qn_status qn_quant_scheme_from_json(const cJSON *j, qn_quant_scheme *out, const char *ctx,
                                    qn_error *err) {
    return qn_quant_scheme_from_json_v(j, QN_CT_VERSION_DEFAULT, out, ctx, err);
}

qn_status qn_quant_scheme_to_json_v(const qn_quant_scheme *s, int v, cJSON **out, qn_error *err) {
    if (!s || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: to_json: NULL argument");
    *out = NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory building JSON");
    int ok = 1;
    if (v >= QN_CT_VERSION(0, 11)) ok = add_str_or_null(o, "format", s->format[0] ? s->format : NULL);
    const struct { const char *key; int has; const qn_quant_args *a; } parts[] = {
        {"input_activations", s->has_input_activations, &s->input_activations},
        {"output_activations", s->has_output_activations, &s->output_activations},
    };
    for (int i = 0; ok && i < 2; i++) {
        if (!parts[i].has) {
            ok = cJSON_AddNullToObject(o, parts[i].key) != NULL;
            continue;
        }
        cJSON *a;
        qn_status st = qn_quant_args_to_json_v(parts[i].a, v, &a, err);
        if (st) { cJSON_Delete(o); return st; }
        cJSON_AddItemToObject(o, parts[i].key, a);
    }
    if (ok) {
        cJSON *t = cJSON_AddArrayToObject(o, "targets");
        ok = t != NULL;
        for (size_t i = 0; ok && i < s->n_targets; i++)
            ok = cJSON_AddItemToArray(t, cJSON_CreateString(s->targets[i]));
    }
    if (ok) {
        if (!s->has_weights) {
            ok = cJSON_AddNullToObject(o, "weights") != NULL;
        } else {
            cJSON *a;
            qn_status st = qn_quant_args_to_json_v(&s->weights, v, &a, err);
            if (st) { cJSON_Delete(o); return st; }
            cJSON_AddItemToObject(o, "weights", a);
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return qn_error_set(err, QN_ERR_NOMEM, "quant: out of memory building JSON");
    }
    *out = o;
    return QN_OK;
}

qn_status qn_quant_scheme_to_json(const qn_quant_scheme *s, cJSON **out, qn_error *err) {
    return qn_quant_scheme_to_json_v(s, QN_CT_VERSION_DEFAULT, out, err);
}

/* ---------------------------------------------------------------------------------------- */
/* Presets (quant_scheme.py PRESET_SCHEMES)                                                  */

static const char *const PRESET_NAMES[] = {
    "UNQUANTIZED", "W8A16", "W4A16", "W4A16_ASYM", "W8A8", "INT8", "W4A8", "W4AFP8", "FP8",
    "FP8_DYNAMIC", "FP8_BLOCK", "NVFP4A16", "NVFP4", "MXFP4A16", "MXFP4", "MXFP8A16", "MXFP8",
    "W2A4", "W2A8", "W2A16", "W3A4", "W3A8", "W3A16", "W4A4", "W5A8", "W5A16", "W6A8", "W6A16",
    "W7A8", "W7A16", NULL,
};

const char *qn_scheme_preset_name(size_t i) {
    if (i >= sizeof PRESET_NAMES / sizeof PRESET_NAMES[0]) return NULL;
    return PRESET_NAMES[i];
}

/* QuantizationArgs(num_bits, type, strategy, symmetric, dynamic, group_size) (group 0 = None) */
static qn_quant_args qa(int bits, qn_qtype t, qn_qstrategy s, int sym, qn_qdynamic dyn, int64_t group) {
    qn_quant_args a;
    qn_quant_args_init(&a);
    a.num_bits = bits;
    a.type = t;
    a.strategy = s;
    a.symmetric = sym;
    a.dynamic = dyn;
    if (group) {
        a.has_group_size = 1;
        a.group_size = group;
    }
    return a;
}

static qn_quant_args int_group128(int bits) {
    return qa(bits, QN_QTYPE_INT, QN_STRATEGY_GROUP, 1, QN_DYNAMIC_FALSE, 128);
}
static qn_quant_args int_token(int bits) {
    return qa(bits, QN_QTYPE_INT, QN_STRATEGY_TOKEN, 1, QN_DYNAMIC_TRUE, 0);
}
static qn_quant_args fp_args(int bits, qn_qstrategy s, qn_qdynamic dyn, int64_t group,
                             qn_torch_dtype scale_zp) {
    qn_quant_args a = qa(bits, QN_QTYPE_FLOAT, s, 1, dyn, group);
    a.scale_dtype = a.zp_dtype = scale_zp;
    return a;
}

static int canonical_wa(const char *n, int wb, int ab) {
    char c[16];
    snprintf(c, sizeof c, "W%dA%d", wb, ab);
    return !strcmp(c, n);
}

/* Fills w / in (has_* set) for preset `n` under version v; 0 if unknown. */
static int preset_args(const char *n, int v, qn_quant_scheme *s) {
    qn_quant_args *w = &s->weights, *in = &s->input_activations;
    int wb, ab;
    char tail;
    if (!strcmp(n, "UNQUANTIZED")) return 1;
    s->has_weights = 1;
    if (!strcmp(n, "W8A16")) {
        *w = v >= QN_CT_VERSION(0, 18) ? int_group128(8)
                                       : qa(8, QN_QTYPE_INT, QN_STRATEGY_CHANNEL, 1, QN_DYNAMIC_FALSE, 0);
    } else if (!strcmp(n, "W4A16_ASYM")) {
        *w = qa(4, QN_QTYPE_INT, QN_STRATEGY_GROUP, 0, QN_DYNAMIC_FALSE, 128);
    } else if (!strcmp(n, "W8A8") || !strcmp(n, "INT8")) {
        *w = qa(8, QN_QTYPE_INT, QN_STRATEGY_CHANNEL, 1, QN_DYNAMIC_FALSE, 0);
        *in = int_token(8);
        s->has_input_activations = 1;
    } else if (!strcmp(n, "W4AFP8")) {
        *w = int_group128(4);
        *in = fp_args(8, QN_STRATEGY_TOKEN, QN_DYNAMIC_TRUE, 0, QN_TORCH_NONE);
        s->has_input_activations = 1;
    } else if (!strcmp(n, "FP8")) {
        *w = fp_args(8, QN_STRATEGY_TENSOR, QN_DYNAMIC_FALSE, 0, QN_TORCH_NONE);
        *in = fp_args(8, QN_STRATEGY_TENSOR, QN_DYNAMIC_FALSE, 0, QN_TORCH_NONE);
        if (v >= QN_CT_VERSION(0, 16)) strcpy(in->observer, "static_minmax");
        s->has_input_activations = 1;
    } else if (!strcmp(n, "FP8_DYNAMIC")) {
        *w = fp_args(8, QN_STRATEGY_CHANNEL, QN_DYNAMIC_FALSE, 0, QN_TORCH_NONE);
        *in = fp_args(8, QN_STRATEGY_TOKEN, QN_DYNAMIC_TRUE, 0, QN_TORCH_NONE);
        s->has_input_activations = 1;
    } else if (!strcmp(n, "FP8_BLOCK")) {
        *w = fp_args(8, QN_STRATEGY_BLOCK, QN_DYNAMIC_FALSE, 0, QN_TORCH_NONE);
        w->has_block_structure = 1;
        w->block_structure[0] = w->block_structure[1] = 128;
        *in = fp_args(8, QN_STRATEGY_GROUP, QN_DYNAMIC_TRUE, 128, QN_TORCH_NONE);
        s->has_input_activations = 1;
    } else if (!strcmp(n, "NVFP4A16") || !strcmp(n, "NVFP4")) {
        *w = fp_args(4, QN_STRATEGY_TENSOR_GROUP, QN_DYNAMIC_FALSE, 16, QN_TORCH_FLOAT8_E4M3FN);
        if (n[5] == '\0') {
            *in = fp_args(4, QN_STRATEGY_TENSOR_GROUP, QN_DYNAMIC_LOCAL, 16, QN_TORCH_FLOAT8_E4M3FN);
            if (v >= QN_CT_VERSION(0, 12)) strcpy(in->observer, "static_minmax");
            s->has_input_activations = 1;
        }
    } else if (!strcmp(n, "MXFP4A16") || !strcmp(n, "MXFP4") || !strcmp(n, "MXFP8A16") ||
               !strcmp(n, "MXFP8")) {
        int bits = n[4] == '4' ? 4 : 8;
        *w = fp_args(bits, QN_STRATEGY_GROUP, QN_DYNAMIC_FALSE, 32, QN_TORCH_UINT8);
        if (n[5] == '\0') {
            *in = fp_args(bits, QN_STRATEGY_GROUP, QN_DYNAMIC_TRUE, 32, QN_TORCH_UINT8);
            s->has_input_activations = 1;
        }
    } else if (sscanf(n, "W%dA%d%c", &wb, &ab, &tail) == 2 && wb >= 2 && wb <= 8 &&
               (ab == 4 || ab == 8 || ab == 16) && wb <= ab && !(wb == 8 && ab == 8) &&
               canonical_wa(n, wb, ab)) {
        /* _int_wnam (0.18; W4A16 and W4A8 were the same before) */
        *w = int_group128(wb);
        if (ab < 16) {
            *in = int_token(ab);
            s->has_input_activations = 1;
        }
    } else {
        s->has_weights = 0;
        return 0;
    }
    return 1;
}

qn_status qn_scheme_preset_v(const char *name, int v, qn_quant_scheme *out, qn_error *err) {
    if (!name || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "quant: preset: NULL argument");
    char up[32];
    size_t len = strlen(name);
    if (len < sizeof up) {
        for (size_t i = 0; i <= len; i++) up[i] = (char)toupper((unsigned char)name[i]);
    }
    qn_quant_scheme s;
    qn_quant_scheme_init(&s);
    if (len >= sizeof up || !preset_args(up, v, &s)) {
        char list[512] = "";
        size_t pos = 0;
        for (size_t i = 0; PRESET_NAMES[i] && pos + 1 < sizeof list; i++)
            pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", i ? ", " : "", PRESET_NAMES[i]);
        return qn_error_set(err, QN_ERR_NOT_FOUND, "unknown quantization preset '%s' (known: %s)",
                            name, list);
    }
    qn_status st = QN_OK;
    char ctx[64];
    snprintf(ctx, sizeof ctx, "preset %s weights", up);
    if (s.has_weights) st = qn_quant_args_validate(&s.weights, v, ctx, err);
    snprintf(ctx, sizeof ctx, "preset %s input_activations", up);
    if (!st && s.has_input_activations) st = qn_quant_args_validate(&s.input_activations, v, ctx, err);
    const char *linear = "Linear";
    if (!st) st = qn_quant_scheme_set_targets(&s, &linear, 1, err);
    if (!st) st = qn_quant_scheme_validate(&s, ctx, err);
    if (st) {
        qn_quant_scheme_free(&s);
        return st;
    }
    *out = s;
    return QN_OK;
}

qn_status qn_scheme_preset(const char *name, qn_quant_scheme *out, qn_error *err) {
    return qn_scheme_preset_v(name, QN_CT_VERSION_DEFAULT, out, err);
}
