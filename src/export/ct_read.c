/* Reading compressed-tensors checkpoints: quantization_config, per-module lookup, dequantization. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export/export_internal.h"

struct qn_ct {
    char format[32];
    char status[32];
    int version;                  /* parsed "version", or QN_CT_VERSION_DEFAULT */
    int has_version;
    qn_quant_scheme *groups;
    size_t n_groups;
    char **ignore;
    size_t n_ignore;
    int has_model_dtype;
    qn_dtype model_dtype;         /* from torch_dtype / dtype */
};

void qn_ct_free(qn_ct *ct) {
    if (!ct) return;
    for (size_t i = 0; i < ct->n_groups; i++) qn_quant_scheme_free(&ct->groups[i]);
    free(ct->groups);
    for (size_t i = 0; i < ct->n_ignore; i++) free(ct->ignore[i]);
    free(ct->ignore);
    free(ct);
}

const char *qn_ct_format(const qn_ct *ct) { return ct ? ct->format : NULL; }
const char *qn_ct_status(const qn_ct *ct) { return ct ? ct->status : NULL; }
size_t qn_ct_group_count(const qn_ct *ct) { return ct ? ct->n_groups : 0; }
const qn_quant_scheme *qn_ct_group(const qn_ct *ct, size_t i) {
    return ct && i < ct->n_groups ? &ct->groups[i] : NULL;
}

#define QN_CT_MAX_GROUPS 4096
#define QN_CT_MAX_IGNORE (1 << 20)

qn_status qn_ct_parse(const char *text, size_t len, const char *name, qn_ct **out, qn_error *err) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qn_error_set(err, QN_ERR_FORMAT, "%s: not a JSON object", name);
    }
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (!qc) qc = cJSON_GetObjectItemCaseSensitive(root, "compression_config");
    if (!qc) {
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
        if (cJSON_IsObject(tc)) qc = cJSON_GetObjectItemCaseSensitive(tc, "quantization_config");
    }
    if (!qc || cJSON_IsNull(qc)) { cJSON_Delete(root); return QN_OK; }
    qn_status st = QN_OK;
    qn_ct *ct = calloc(1, sizeof *ct);
    if (!ct) { cJSON_Delete(root); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
    if (!cJSON_IsObject(qc)) { st = qn_error_set(err, QN_ERR_FORMAT, "%s: quantization_config is not an object", name); goto fail; }
    const cJSON *qm = cJSON_GetObjectItemCaseSensitive(qc, "quant_method");
    if (qm && (!cJSON_IsString(qm) || strcmp(qm->valuestring, "compressed-tensors"))) {
        st = qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: quantization_config.quant_method '%s' is not compressed-tensors", name,
                          cJSON_IsString(qm) ? qm->valuestring : "?");
        goto fail;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(qc, "version");
    ct->version = QN_CT_VERSION_DEFAULT;
    if (cJSON_IsString(ver) && qnx_parse_version(ver->valuestring) >= 0) {
        ct->version = qnx_parse_version(ver->valuestring);
        ct->has_version = 1;
    }
    int pv = ct->version < QN_CT_VERSION(0, 11) ? QN_CT_VERSION(0, 11) : ct->version; /* tolerant parsing */
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(qc, "format");
    snprintf(ct->format, sizeof ct->format, "%s", cJSON_IsString(fmt) ? fmt->valuestring : "");
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(qc, "quantization_status");
    snprintf(ct->status, sizeof ct->status, "%s", cJSON_IsString(qs) ? qs->valuestring : "");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(qc, "sparsity_config");
    if (cJSON_IsObject(sp)) {
        const cJSON *sf = cJSON_GetObjectItemCaseSensitive(sp, "format");
        if (cJSON_IsString(sf) && strcmp(sf->valuestring, "dense") && strcmp(sf->valuestring, "sparse-24-bitmask")) {
            st = qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: sparsity_config.format '%s' is not supported by the reader", name,
                              sf->valuestring);
            goto fail;
        }
    }
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(qc, "config_groups");
    if (groups && !cJSON_IsObject(groups)) {
        st = qn_error_set(err, QN_ERR_FORMAT, "%s: quantization_config.config_groups is not an object", name);
        goto fail;
    }
    size_t ng = groups ? (size_t)cJSON_GetArraySize(groups) : 0;
    if (ng > QN_CT_MAX_GROUPS) { st = qn_error_set(err, QN_ERR_FORMAT, "%s: too many config_groups (%zu)", name, ng); goto fail; }
    ct->groups = calloc(ng ? ng : 1, sizeof *ct->groups);
    if (!ct->groups) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
    for (const cJSON *g = groups ? groups->child : NULL; g; g = g->next) {
        char ctx[320];
        snprintf(ctx, sizeof ctx, "%s: quantization_config.config_groups.%s", name, g->string ? g->string : "?");
        qn_quant_scheme *s = &ct->groups[ct->n_groups];
        if (cJSON_IsArray(g)) {   /* "PRESET": [targets] */
            if ((st = qn_scheme_preset_v(g->string ? g->string : "", pv, s, err))) { qn_error_prefix(err, "%s", ctx); goto fail; }
            ct->n_groups++;
            size_t nt = (size_t)cJSON_GetArraySize(g), k = 0;
            const char **t = calloc(nt ? nt : 1, sizeof *t);
            if (!t) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
            for (const cJSON *e = g->child; e; e = e->next) {
                if (!cJSON_IsString(e)) { free(t); st = qn_error_set(err, QN_ERR_FORMAT, "%s: targets must be strings", ctx); goto fail; }
                t[k++] = e->valuestring;
            }
            st = qn_quant_scheme_set_targets(s, t, k, err);
            free(t);
            if (st) goto fail;
        } else {
            if ((st = qn_quant_scheme_from_json_v(g, pv, s, ctx, err))) goto fail;
            ct->n_groups++;
        }
    }
    const cJSON *ig = cJSON_GetObjectItemCaseSensitive(qc, "ignore");
    if (cJSON_IsArray(ig)) {
        size_t ni = (size_t)cJSON_GetArraySize(ig);
        if (ni > QN_CT_MAX_IGNORE) { st = qn_error_set(err, QN_ERR_FORMAT, "%s: ignore list too long", name); goto fail; }
        ct->ignore = calloc(ni ? ni : 1, sizeof *ct->ignore);
        if (!ct->ignore) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
        for (const cJSON *e = ig->child; e; e = e->next) {
            if (!cJSON_IsString(e)) { st = qn_error_set(err, QN_ERR_FORMAT, "%s: ignore entries must be strings", name); goto fail; }
            if (!(ct->ignore[ct->n_ignore] = strdup(e->valuestring))) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
            ct->n_ignore++;
        }
    } else if (ig && !cJSON_IsNull(ig)) {
        st = qn_error_set(err, QN_ERR_FORMAT, "%s: quantization_config.ignore is not a list", name);
        goto fail;
    }
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    if (!cJSON_IsString(td)) td = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    if (cJSON_IsString(td)) {
        const char *d = td->valuestring;
        if (!strcmp(d, "bfloat16")) { ct->model_dtype = QN_DT_BF16; ct->has_model_dtype = 1; }
        else if (!strcmp(d, "float16")) { ct->model_dtype = QN_DT_F16; ct->has_model_dtype = 1; }
        else if (!strcmp(d, "float32")) { ct->model_dtype = QN_DT_F32; ct->has_model_dtype = 1; }
    }
    cJSON_Delete(root);
    *out = ct;
    return QN_OK;
fail:
    cJSON_Delete(root);
    qn_ct_free(ct);
    return st;
}

qn_status qn_ct_open(const char *dir, qn_ct **out, qn_error *err) {
    *out = NULL;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return qn_error_set(err, QN_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode) || sb.st_size > (1 << 26)) {
        fclose(f);
        return qn_error_set(err, QN_ERR_IO, "%s: not a regular file of at most 64 MB", path);
    }
    char *b = malloc((size_t)sb.st_size + 1);
    if (!b) { fclose(f); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
    size_t n = fread(b, 1, (size_t)sb.st_size, f);
    fclose(f);
    if (n != (size_t)sb.st_size) { free(b); return qn_error_set(err, QN_ERR_IO, "%s: short read", path); }
    b[n] = 0;
    qn_status st = qn_ct_parse(b, n, path, out, err);
    free(b);
    return st;
}

/* ---------- module lookup ---------- */

/* 0 exact name, 1 regex, 2 class name; -1 no match; -2 error. */
static int target_rank(const char *target, const qn_module *m, qn_error *err) {
    if (!strcmp(target, m->name)) return 0;
    int r = qn_target_matches(target, m, err);
    if (r < 0) return -2;
    if (!r) return -1;
    return !strncmp(target, "re:", 3) ? 1 : 2;
}

static qn_status find_group(const qn_ct *ct, const char *module, int64_t out, int64_t in, int *group, qn_error *err) {
    qn_module m = {module, "Linear", out, in};
    *group = -1;
    for (size_t i = 0; i < ct->n_ignore; i++) {
        int r = target_rank(ct->ignore[i], &m, err);
        if (r == -2) return err ? err->code : QN_ERR_FORMAT;
        if (r >= 0) return QN_OK;
    }
    int best = 3;
    for (size_t g = 0; g < ct->n_groups; g++)
        for (size_t t = 0; t < ct->groups[g].n_targets; t++) {
            int r = target_rank(ct->groups[g].targets[t], &m, err);
            if (r == -2) return err ? err->code : QN_ERR_FORMAT;
            if (r >= 0 && r <= best) { best = r; *group = (int)g; } /* later group wins ties */
        }
    return QN_OK;
}

static const qn_tensor *find_param(const qn_st_set *set, const char *module, const char *param) {
    char n[700];
    int k = snprintf(n, sizeof n, "%s.%s", module, param);
    if (k < 0 || (size_t)k >= sizeof n) return NULL;
    return qn_st_set_find(set, n);
}

int qn_ct_is_compressed(const qn_st_set *set, const char *weight_name) {
    size_t l = strlen(weight_name);
    if (l < 8 || strcmp(weight_name + l - 7, ".weight") || l > 590) return 0;
    char mod[600];
    snprintf(mod, sizeof mod, "%.*s", (int)(l - 7), weight_name);
    if (find_param(set, mod, "weight_packed")) return 1;
    if (find_param(set, mod, "compressed") && find_param(set, mod, "bitmask")) return 1;
    const qn_tensor *w = qn_st_set_find(set, weight_name);
    return w && (w->dtype == QN_DT_I8 || w->dtype == QN_DT_F8_E4M3) && find_param(set, mod, "weight_scale");
}

static void shape_str(const qn_tensor *t, char *b, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(b + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++) k += (size_t)snprintf(b + k, n - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (k < n) snprintf(b + k, n - k, "]");
}

static qn_status bad_tensor(const qn_tensor *t, const char *want, qn_error *err) {
    char s[96];
    shape_str(t, s, sizeof s);
    return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' (%s %s) does not match its quantization_config: expected %s",
                        t->file, t->name, qn_dtype_name(t->dtype), s, want);
}

static int is_2d(const qn_tensor *t, int64_t a, int64_t b) { return t->ndim == 2 && t->shape[0] == a && t->shape[1] == b; }

qn_status qn_ct_find(const qn_ct *ct, const qn_st_set *set, const char *module, qn_ct_weight *w, qn_error *err) {
    memset(w, 0, sizeof *w);
    if (!ct) return qn_error_set(err, QN_ERR_NOT_FOUND, "module '%s': the folder has no quantization_config", module);
    if (strlen(module) >= sizeof w->module) return qn_error_set(err, QN_ERR_INVALID_ARG, "module name too long");
    snprintf(w->module, sizeof w->module, "%s", module);
    char wn[600];
    snprintf(wn, sizeof wn, "%s.weight", module);
    const qn_tensor *packed = find_param(set, module, "weight_packed");
    const qn_tensor *plain = qn_st_set_find(set, wn);
    const qn_tensor *scale = find_param(set, module, "weight_scale");
    const qn_tensor *comp = find_param(set, module, "compressed"), *bm = find_param(set, module, "bitmask");
    if (!packed && !plain && comp && bm) {   /* sparse-24-bitmask (§5.7): 2 kept values of every 4 */
        const qn_tensor *shp = find_param(set, module, "shape");
        if (!shp || shp->dtype != QN_DT_I64 || qn_tensor_numel(shp) != 2)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s': sparse-24-bitmask needs shape I64 [2, 1]", comp->file, module);
        int64_t v[2];
        memcpy(v, shp->data, sizeof v);
        if (v[0] <= 0 || v[1] <= 0 || v[1] % 4 || !is_2d(comp, v[0], v[1] / 2) || bm->dtype != QN_DT_U8 ||
            !is_2d(bm, v[0], (v[1] + 7) / 8) || !(comp->dtype == QN_DT_I8 || comp->dtype == QN_DT_F8_E4M3))
            return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s': compressed/bitmask do not match shape [%lld, %lld]",
                                comp->file, module, (long long)v[0], (long long)v[1]);
        if (!scale) return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s.weight_scale' is missing", comp->file, module);
        w->rows = v[0];
        w->cols = v[1];
        w->packed = comp;
        w->bitmask = bm;
        w->scale = scale;
        w->zero_point = find_param(set, module, "weight_zero_point");
        int g;
        qn_status st = find_group(ct, module, v[0], v[1], &g, err);
        if (st) return st;
        w->group = g < 0 ? 0 : g;
        const qn_quant_scheme *s = &ct->groups[w->group];
        if (!s->has_weights || s->weights.num_bits != 8)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s': sparse-24-bitmask with non-8-bit weights", comp->file, module);
        snprintf(w->format, sizeof w->format, "%s", s->weights.type == QN_QTYPE_INT ? "int-quantized" : "float-quantized");
        w->dtype = scale->dtype == QN_DT_BF16 || scale->dtype == QN_DT_F16 ? scale->dtype : QN_DT_F32;
        return QN_OK;
    }
    if (!packed && !(plain && (plain->dtype == QN_DT_I8 || plain->dtype == QN_DT_F8_E4M3) && scale))
        return qn_error_set(err, QN_ERR_NOT_FOUND, "tensor '%s' is missing", wn);
    if (!scale) return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s.weight_scale' is missing", (packed ? packed : plain)->file, module);
    /* original shape */
    const qn_tensor *ws = find_param(set, module, "weight_shape");
    int64_t rows, cols;
    if (ws) {
        if (!(ws->ndim == 1 && ws->shape[0] == 2 && (ws->dtype == QN_DT_I64 || ws->dtype == QN_DT_I32)))
            return bad_tensor(ws, "I64 [2]", err);
        if (ws->dtype == QN_DT_I64) {
            int64_t v[2];
            memcpy(v, ws->data, sizeof v);
            rows = v[0]; cols = v[1];
        } else {
            int32_t v[2];
            memcpy(v, ws->data, sizeof v);
            rows = v[0]; cols = v[1];
        }
    } else if (packed && packed->dtype == QN_DT_U8 && packed->ndim == 2) {
        rows = packed->shape[0];
        cols = packed->shape[1] * 2;
    } else if (!packed && plain->ndim == 2) {
        rows = plain->shape[0];
        cols = plain->shape[1];
    } else {
        return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s.weight_shape' is missing", packed->file, module);
    }
    if (rows <= 0 || cols <= 0 || rows > (INT64_C(1) << 40) / cols)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s' has an invalid weight_shape [%lld, %lld]",
                            (ws ? ws : packed ? packed : plain)->file, module, (long long)rows, (long long)cols);
    w->rows = rows;
    w->cols = cols;
    int g;
    qn_status st = find_group(ct, module, rows, cols, &g, err);
    if (st) return st;
    if (g < 0) {
        if (ct->n_groups != 1)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s' is stored compressed but no config group targets it",
                                scale->file, module);
        g = 0;
    }
    w->group = g;
    const qn_quant_scheme *s = &ct->groups[g];
    if (!s->has_weights)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s': config group %d has no weights args", scale->file, module, g);
    if (s->format[0]) snprintf(w->format, sizeof w->format, "%s", s->format);
    else if (ct->format[0] && strcmp(ct->format, "mixed-precision")) snprintf(w->format, sizeof w->format, "%s", ct->format);
    else qn_export_group_format(s, ct->version, w->format, sizeof w->format);
    const qn_quant_args *a = &s->weights;
    qnx_format kind = qnx_format_kind(w->format);
    char want[128];
    switch (kind) {
    case QNX_FMT_PACK: {
        if (!packed) return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s' (pack-quantized) has no weight_packed", scale->file, module);
        if (a->type != QN_QTYPE_INT || a->num_bits < 1 || a->num_bits > 8)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s': pack-quantized needs 1-8 bit int weights", scale->file, module);
        int64_t wd = qn_pack_int32_words(cols, a->num_bits, qnx_pack_layout(ct->version));
        int64_t wo = qn_pack_int32_words(cols, a->num_bits, qnx_pack_layout(ct->version) == QN_PACK_DENSE ? QN_PACK_LEGACY : QN_PACK_DENSE);
        snprintf(want, sizeof want, "I32 [%lld, %lld]", (long long)rows, (long long)wd);
        if (packed->dtype != QN_DT_I32 || !(is_2d(packed, rows, wd) || is_2d(packed, rows, wo))) return bad_tensor(packed, want, err);
        break;
    }
    case QNX_FMT_NAIVE: {
        if (!plain) return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s' (%s) has no weight", scale->file, module, w->format);
        qn_dtype dt = a->type == QN_QTYPE_INT ? QN_DT_I8 : QN_DT_F8_E4M3;
        if ((a->type == QN_QTYPE_INT && a->num_bits > 8) || (a->type == QN_QTYPE_FLOAT && a->num_bits != 8))
            return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: module '%s': %s with %d-bit %s weights is not supported",
                                scale->file, module, w->format, a->num_bits, a->type == QN_QTYPE_INT ? "int" : "float");
        snprintf(want, sizeof want, "%s [%lld, %lld]", qn_dtype_name(dt), (long long)rows, (long long)cols);
        if (plain->dtype != dt || !is_2d(plain, rows, cols)) return bad_tensor(plain, want, err);
        packed = plain;
        break;
    }
    case QNX_FMT_NVFP4: {
        if (!packed || a->type != QN_QTYPE_FLOAT || a->num_bits != 4 || (cols & 1))
            return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s': nvfp4-pack-quantized needs fp4 weights and weight_packed",
                                scale->file, module);
        snprintf(want, sizeof want, "U8 [%lld, %lld]", (long long)rows, (long long)(cols / 2));
        if (packed->dtype != QN_DT_U8 || !is_2d(packed, rows, cols / 2)) return bad_tensor(packed, want, err);
        w->global_scale = find_param(set, module, "weight_global_scale");
        if (!w->global_scale || w->global_scale->dtype != QN_DT_F32 || qn_tensor_numel(w->global_scale) != 1)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s': weight_global_scale (F32 [1]) is missing or malformed",
                                scale->file, module);
        break;
    }
    default:
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: module '%s': compression format '%s' is not supported by the reader",
                            scale->file, module, w->format);
    }
    w->packed = packed;
    w->scale = scale;
    /* arithmetic dtype */
    if (qnx_arith_dtype(scale->dtype, &w->dtype)) {
        /* fp8 scales (NVFP4): the model dtype, from the stored embeddings, else torch_dtype */
        if (!qn_dtype_is_float(scale->dtype)) return bad_tensor(scale, "a floating scale", err);
        const qn_tensor *e = qn_st_set_find(set, "model.embed_tokens.weight");
        if (!e || qnx_arith_dtype(e->dtype, &w->dtype)) w->dtype = ct->has_model_dtype ? ct->model_dtype : QN_DT_BF16;
    }
    /* scale grid */
    qn_qparams p;
    if ((st = qn_qparams_init(&p, a, w->dtype, rows, cols, err))) {
        qn_error_prefix(err, "%s: module '%s'", scale->file, module);
        return st;
    }
    int64_t sr = p.srows, sc = p.scols;
    qn_qstrategy strat = p.args.strategy;
    qn_qparams_free(&p);
    snprintf(want, sizeof want, "[%lld, %lld]", (long long)sr, (long long)sc);
    int ok = qn_tensor_numel(scale) == sr * sc &&
             ((scale->ndim == 2 && scale->shape[0] == sr && scale->shape[1] == sc) ||
              (strat == QN_STRATEGY_TENSOR && scale->ndim <= 1));
    if (!ok) return bad_tensor(scale, want, err);
    if (!a->symmetric) {
        const qn_tensor *zp = find_param(set, module, "weight_zero_point");
        if (!zp) return qn_error_set(err, QN_ERR_FORMAT, "%s: module '%s' is asymmetric but has no weight_zero_point", scale->file, module);
        if (kind == QNX_FMT_PACK && strat != QN_STRATEGY_TENSOR) {
            int64_t zw = qn_pack_int32_words(sr, a->num_bits, qnx_pack_layout(ct->version));
            int64_t zo = qn_pack_int32_words(sr, a->num_bits, qnx_pack_layout(ct->version) == QN_PACK_DENSE ? QN_PACK_LEGACY : QN_PACK_DENSE);
            snprintf(want, sizeof want, "I32 [%lld, %lld]", (long long)zw, (long long)sc);
            if (zp->dtype != QN_DT_I32 || !(is_2d(zp, zw, sc) || is_2d(zp, zo, sc))) return bad_tensor(zp, want, err);
        } else {
            snprintf(want, sizeof want, "%lld zero points", (long long)(sr * sc));
            if (qn_tensor_numel(zp) != sr * sc || zp->dtype == QN_DT_BOOL) return bad_tensor(zp, want, err);
        }
        w->zero_point = zp;
    }
    const qn_tensor *gi = find_param(set, module, "weight_g_idx");
    if (gi) {
        snprintf(want, sizeof want, "I32 [%lld]", (long long)cols);
        if (gi->dtype != QN_DT_I32 || gi->ndim != 1 || gi->shape[0] != cols) return bad_tensor(gi, want, err);
        w->g_idx = gi;
    }
    return QN_OK;
}

/* Copies a tensor's int32 words (the mmap may not be 4-byte aligned for a hostile file). */
static int32_t *words_of(const qn_tensor *t) {
    int32_t *b = malloc(t->nbytes ? t->nbytes : 4);
    if (b) memcpy(b, t->data, t->nbytes);
    return b;
}

qn_status qn_ct_dequantize(const qn_ct *ct, const qn_st_set *set, const qn_ct_weight *w, float *out, qn_error *err) {
    (void)set;
    const qn_quant_scheme *s = &ct->groups[w->group];
    const qn_quant_args *a = &s->weights;
    const int64_t rows = w->rows, cols = w->cols;
    const size_t n = (size_t)(rows * cols);
    qnx_format kind = qnx_format_kind(w->format);
    qn_qparams p;
    qn_status st = qn_qparams_init(&p, a, w->dtype, rows, cols, err);
    if (st) return st;
    void *codes = NULL;
    int32_t *words = NULL, *gidx = NULL;
    int8_t *zq = NULL;
    const void *cptr = NULL;
    const size_t ns = (size_t)(p.srows * p.scols);
    if ((st = qn_tensor_to_f32(w->scale, p.scale, err))) goto done;
    if (w->global_scale) {
        float g;
        if ((st = qn_tensor_to_f32(w->global_scale, &g, err))) goto done;
        p.global_scale = g;
    }
    if (p.zero_point && w->zero_point) {
        if (w->zero_point->dtype == QN_DT_I32 && kind == QNX_FMT_PACK && p.args.strategy != QN_STRATEGY_TENSOR) {
            words = words_of(w->zero_point);
            zq = malloc(ns);
            if (!words || !zq) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
            int64_t wd = qn_pack_int32_words(p.srows, a->num_bits, QN_PACK_DENSE);
            qn_pack_layout lay = w->zero_point->shape[0] == wd ? QN_PACK_DENSE : QN_PACK_LEGACY;
            if (qnx_pack_layout(ct->version) == QN_PACK_LEGACY &&
                w->zero_point->shape[0] == qn_pack_int32_words(p.srows, a->num_bits, QN_PACK_LEGACY))
                lay = QN_PACK_LEGACY;
            if ((st = qn_unpack_int32_cols(words, p.srows, p.scols, a->num_bits, lay, zq, err))) goto done;
            for (size_t i = 0; i < ns; i++) p.zero_point[i] = (float)zq[i];
            free(words);
            words = NULL;
        } else if ((st = qn_tensor_to_f32(w->zero_point, p.zero_point, err))) {
            goto done;
        }
    }
    if (w->g_idx) {
        gidx = (int32_t *)words_of(w->g_idx);
        if (!gidx) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
        p.g_idx = gidx;
    }
    switch (kind) {
    case QNX_FMT_PACK: {
        words = words_of(w->packed);
        codes = malloc(n ? n : 1);
        if (!words || !codes) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->module); goto done; }
        int64_t wl = qn_pack_int32_words(cols, a->num_bits, qnx_pack_layout(ct->version));
        qn_pack_layout lay = qnx_pack_layout(ct->version);
        if (w->packed->shape[1] != wl) lay = lay == QN_PACK_DENSE ? QN_PACK_LEGACY : QN_PACK_DENSE;
        if ((st = qn_unpack_int32_rows(words, rows, cols, a->num_bits, lay, codes, err))) goto done;
        cptr = codes;
        break;
    }
    case QNX_FMT_NAIVE:
        if (w->bitmask) {   /* scatter the kept values to the positions the bitmask marks */
            codes = calloc(n ? n : 1, 1);
            if (!codes) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->module); goto done; }
            const uint8_t *cv = w->packed->data, *bmk = w->bitmask->data;
            int64_t bpr = (cols + 7) / 8, half = cols / 2;
            for (int64_t r = 0; r < rows; r++) {
                int64_t k = 0;
                for (int64_t j = 0; j < cols; j++)
                    if (bmk[r * bpr + j / 8] >> (j % 8) & 1) {
                        if (k >= half) { st = qn_error_set(err, QN_ERR_FORMAT, "%s: bitmask row %lld marks more than half the values", w->module, (long long)r); goto done; }
                        ((uint8_t *)codes)[r * cols + j] = cv[r * half + k++];
                    }
            }
            cptr = codes;
        } else {
            cptr = w->packed->data;
        }
        break;
    case QNX_FMT_NVFP4:
        codes = malloc(n ? n : 1);
        if (!codes) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->module); goto done; }
        if ((st = qn_unpack_fp4(w->packed->data, rows, cols, codes, err))) goto done;
        cptr = codes;
        break;
    default: st = qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: format '%s' cannot be dequantized", w->module, w->format); goto done;
    }
    st = qn_quant_dequantize(&p, cptr, cols, 0, cols, out, cols, err);
    if (st) qn_error_prefix(err, "%s: module '%s'", w->packed->file, w->module);
done:
    qn_qparams_free(&p);
    free(codes);
    free(words);
    free(gidx);
    free(zq);
    return st;
}

/* ---------- hooks for src/model ---------- */

static qn_status open_and_find(const char *dir, const qn_st_set *set, const char *weight_name, qn_ct **ct,
                               qn_ct_weight *w, qn_error *err) {
    size_t l = strlen(weight_name);
    if (l < 8 || strcmp(weight_name + l - 7, ".weight") || l > 590)
        return qn_error_set(err, QN_ERR_NOT_FOUND, "%s: tensor '%s' is missing", dir, weight_name);
    qn_status st = qn_ct_open(dir, ct, err);
    if (st) return st;
    if (!*ct) return qn_error_set(err, QN_ERR_NOT_FOUND, "%s: tensor '%s' is missing", dir, weight_name);
    char mod[600];
    snprintf(mod, sizeof mod, "%.*s", (int)(l - 7), weight_name);
    st = qn_ct_find(*ct, set, mod, w, err);
    if (st == QN_ERR_NOT_FOUND) qn_error_set(err, QN_ERR_NOT_FOUND, "%s: tensor '%s' is missing", dir, weight_name);
    if (st) { qn_ct_free(*ct); *ct = NULL; }
    return st;
}

qn_status qn_ct_check_weight(const char *dir, const qn_st_set *set, const char *weight_name, int64_t d0, int64_t d1,
                             qn_error *err) {
    qn_ct *ct;
    qn_ct_weight w;
    qn_status st = open_and_find(dir, set, weight_name, &ct, &w, err);
    if (st) return st;
    qn_ct_free(ct);
    if (w.rows != d0 || w.cols != d1)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: compressed tensor '%s' has shape [%lld, %lld], expected [%lld, %lld] (from config.json)",
                            w.packed->file, weight_name, (long long)w.rows, (long long)w.cols, (long long)d0, (long long)d1);
    return QN_OK;
}

qn_status qn_ct_load_weight(const char *dir, const qn_st_set *set, const char *weight_name, float **out, qn_error *err) {
    *out = NULL;
    qn_ct *ct;
    qn_ct_weight w;
    qn_status st = open_and_find(dir, set, weight_name, &ct, &w, err);
    if (st) return st;
    float *b = malloc((size_t)(w.rows * w.cols) * sizeof *b);
    if (!b) { qn_ct_free(ct); return qn_error_set(err, QN_ERR_NOMEM, "out of memory loading '%s'", weight_name); }
    st = qn_ct_dequantize(ct, set, &w, b, err);
    qn_ct_free(ct);
    if (st) { free(b); return st; }
    *out = b;
    return QN_OK;
}
