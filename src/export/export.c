/* compressed-tensors export: validation, quantization_config, streaming tensors, folder commit. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "export/export_internal.h"
#include "export/pyjson.h"

/* ------------------------------------------------------------------------------------------ */
/* Small utilities                                                                             */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb; (void)flag; (void)f;
    return remove(p);
}

/* rm -rf of a folder this module created. */
static void rm_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb)) return;
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static qn_status read_text(const char *path, char **out, size_t *len, qn_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qn_error_set(err, errno == ENOENT ? QN_ERR_NOT_FOUND : QN_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode) || sb.st_size > (1 << 26)) {
        fclose(f);
        return qn_error_set(err, QN_ERR_IO, "%s: not a regular file of at most 64 MB", path);
    }
    char *b = malloc((size_t)sb.st_size + 1);
    if (!b) { fclose(f); return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", path); }
    size_t n = fread(b, 1, (size_t)sb.st_size, f);
    fclose(f);
    if (n != (size_t)sb.st_size) { free(b); return qn_error_set(err, QN_ERR_IO, "%s: short read", path); }
    b[n] = 0;
    *out = b;
    *len = n;
    return QN_OK;
}

static qn_status write_file(const char *path, const void *data, size_t len, qn_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return qn_error_set(err, QN_ERR_IO, "%s: %s", path, strerror(errno));
    size_t n = len ? fwrite(data, 1, len, f) : 0;
    int bad = n != len;
    if (fclose(f)) bad = 1;
    if (bad) return qn_error_set(err, QN_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return QN_OK;
}

static qn_status copy_file(const char *src, const char *dst, qn_error *err) {
    FILE *in = fopen(src, "rb");
    if (!in) return qn_error_set(err, QN_ERR_IO, "%s: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) { fclose(in); return qn_error_set(err, QN_ERR_IO, "%s: %s", dst, strerror(errno)); }
    char buf[1 << 16];
    size_t n;
    int bad = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) { bad = 1; break; }
    if (ferror(in)) bad = 1;
    fclose(in);
    if (fclose(out)) bad = 1;
    if (bad) return qn_error_set(err, QN_ERR_IO, "copying %s to %s failed: %s", src, dst, strerror(errno));
    return QN_OK;
}

/* FNV-1a string -> index map (open addressing). */
typedef struct {
    const char **keys;
    size_t *vals;
    size_t cap;
} name_map;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) { h ^= (unsigned char)*s++; h *= 1099511628211ull; }
    return h;
}

static int map_init(name_map *m, size_t n) {
    m->cap = 16;
    while (m->cap < 2 * n + 16) m->cap *= 2;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->vals = calloc(m->cap, sizeof *m->vals);
    return m->keys && m->vals ? 0 : -1;
}

static void map_free(name_map *m) { free(m->keys); free(m->vals); }

static void map_put(name_map *m, const char *k, size_t v) {
    size_t i = (size_t)(hash_str(k) & (m->cap - 1));
    while (m->keys[i] && strcmp(m->keys[i], k)) i = (i + 1) & (m->cap - 1);
    m->keys[i] = k;
    m->vals[i] = v;
}

static int map_get(const name_map *m, const char *k, size_t *v) {
    size_t i = (size_t)(hash_str(k) & (m->cap - 1));
    while (m->keys[i]) {
        if (!strcmp(m->keys[i], k)) { *v = m->vals[i]; return 1; }
        i = (i + 1) & (m->cap - 1);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Per-module plan                                                                             */

typedef struct {
    int group;                   /* plan group or -1 */
    char format[32];
    qnx_format kind;
    const qn_quant_scheme *s;
    const qn_tensor *w;          /* X.weight */
    qn_dtype dtype;              /* arithmetic dtype */
    qn_dtype scale_dt;           /* stored scale dtype */
    int static_input;            /* input_scale to write */
    /* fused shared parameters (set by the layer pre-pass) */
    int fused_tensor;            /* use fmin/fmax for the tensor scale */
    float fmin, fmax;
    int fused_gs;
    float gs_amax;
} mod_plan;

static int observer_is_minmax(const qn_quant_args *a) {
    return !a->observer[0] || !strcmp(a->observer, "minmax") || !strcmp(a->observer, "memoryless_minmax") ||
           !strcmp(a->observer, "static_minmax");
}

static qn_status scale_dtype_of(const qn_quant_args *a, qn_dtype model, qn_dtype *out, const char *mod, qn_error *err) {
    switch (a->scale_dtype) {
    case QN_TORCH_NONE: *out = model; return QN_OK;
    case QN_TORCH_FLOAT8_E4M3FN: *out = QN_DT_F8_E4M3; return QN_OK;
    case QN_TORCH_BFLOAT16: *out = QN_DT_BF16; return QN_OK;
    case QN_TORCH_FLOAT16: *out = QN_DT_F16; return QN_OK;
    case QN_TORCH_FLOAT32: *out = QN_DT_F32; return QN_OK;
    default:
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: weights.scale_dtype %s is not supported by the exporter", mod,
                            qn_torch_dtype_name(a->scale_dtype));
    }
}

/* Checks one quantized module against its format; fills mp. */
static qn_status plan_module(const qn_module *m, int group, const qn_recipe_plan *plan, const qn_st_set *set,
                             const qn_export_opts *o, int v, size_t mi, mod_plan *mp, qn_error *err) {
    const qn_quant_scheme *s = &plan->groups[group];
    if (strlen(m->name) > QNX_MAX_MODULE_NAME)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "module name longer than %d bytes: %.64s...", QNX_MAX_MODULE_NAME, m->name);
    mp->group = group;
    mp->s = s;
    if (!s->has_weights)
        return qn_error_set(err, QN_ERR_UNSUPPORTED,
                            "%s: config group %d has no weights args (activation-only schemes are not exported)", m->name, group);
    if (o->format) snprintf(mp->format, sizeof mp->format, "%s", o->format);
    else qn_export_group_format(s, v, mp->format, sizeof mp->format);
    if (!qnx_format_known(mp->format))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: unknown compression format '%s'", m->name, mp->format);
    mp->kind = qnx_format_kind(mp->format);
    if (mp->kind == QNX_FMT_OTHER)
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: compression format '%s' is not written by quench", m->name,
                            mp->format);
    const qn_quant_args *w = &s->weights;
    if (w->dynamic != QN_DYNAMIC_FALSE)
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: dynamic weight quantization cannot be stored", m->name);
    int is_int = w->type == QN_QTYPE_INT;
    if (mp->kind == QNX_FMT_PACK && !(is_int && w->num_bits >= 1 && w->num_bits <= 8))
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: pack-quantized needs int weights of 1-8 bits", m->name);
    if (mp->kind == QNX_FMT_NAIVE && !((is_int && w->num_bits <= 8) || (!is_int && w->num_bits == 8)))
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: %s needs int weights of <= 8 bits or fp8 weights", m->name,
                            mp->format);
    if (mp->kind == QNX_FMT_NVFP4 && !(!is_int && w->num_bits == 4 && w->strategy == QN_STRATEGY_TENSOR_GROUP))
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: nvfp4-pack-quantized needs fp4 tensor_group weights", m->name);
    if (!is_int && w->num_bits == 4 && mp->kind != QNX_FMT_NVFP4 && mp->kind != QNX_FMT_DENSE)
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: fp4 weights need nvfp4-pack-quantized", m->name);
    if (!strcmp(m->name, "lm_head") && !qn_st_set_find(set, "lm_head.weight"))
        return qn_error_set(err, QN_ERR_UNSUPPORTED,
                            "lm_head is tied to model.embed_tokens; quantizing a tied output head is not supported "
                            "(leave it in ignore)");
    char wn[QNX_MAX_MODULE_NAME + 16];
    snprintf(wn, sizeof wn, "%s.weight", m->name);
    mp->w = qn_st_set_find(set, wn);
    if (!mp->w) return qn_error_set(err, QN_ERR_NOT_FOUND, "tensor '%s' is missing", wn);
    if (mp->w->ndim != 2 || mp->w->shape[0] != m->out || mp->w->shape[1] != m->in)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: shape differs from the module list", wn);
    if (qnx_arith_dtype(mp->w->dtype, &mp->dtype))
        return qn_error_set(err, QN_ERR_UNSUPPORTED,
                            "%s: tensor '%s' has dtype %s; quantization needs a BF16, F16 or F32 weight", mp->w->file, wn,
                            qn_dtype_name(mp->w->dtype));
    qn_status st = scale_dtype_of(w, mp->dtype, &mp->scale_dt, m->name, err);
    if (st) return st;
    qn_qparams p;
    if ((st = qn_qparams_init(&p, w, mp->dtype, m->out, m->in, err))) {
        qn_error_prefix(err, "%s (config group %d)", m->name, group);
        return st;
    }
    qn_qparams_free(&p);
    if (s->has_input_activations) {
        const qn_quant_args *a = &s->input_activations;
        if (a->dynamic == QN_DYNAMIC_LOCAL)
            return qn_error_set(err, QN_ERR_UNSUPPORTED,
                                "%s: input activations with dynamic \"local\" need a calibrated input_global_scale "
                                "(calibration is not available in this version)", m->name);
        if (a->dynamic == QN_DYNAMIC_FALSE) {
            if (a->strategy != QN_STRATEGY_TENSOR)
                return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: static input activations with strategy %s are not supported",
                                    m->name, qn_qstrategy_name(a->strategy));
            if (!o->input_min || !o->input_max)
                return qn_error_set(err, QN_ERR_UNSUPPORTED,
                                    "%s: static input activations need calibrated ranges for input_scale "
                                    "(calibration is not available in this version; use a dynamic scheme such as FP8_DYNAMIC)",
                                    m->name);
            if (!isfinite(o->input_min[mi]) || !isfinite(o->input_max[mi]))
                return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: calibrated input range is not finite", m->name);
            mp->static_input = 1;
        }
    }
    if (s->has_output_activations && s->output_activations.dynamic == QN_DYNAMIC_FALSE)
        return qn_error_set(err, QN_ERR_UNSUPPORTED,
                            "%s: static output activations need calibration (not available in this version)", m->name);
    return QN_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* quantization_config                                                                         */

/* Replaces args["observer_kwargs"] by the literal JSON of a.observer_kwargs (int/float kept). */
static int fix_kwargs(qn_pyjson *args, const qn_quant_args *a) {
    if (!args || args->type != QN_PJ_OBJECT) return 0;
    qn_pyjson *kw;
    qn_error e = {0};
    const char *t = a->observer_kwargs[0] ? a->observer_kwargs : "{}";
    if (qn_pyjson_parse(t, strlen(t), "observer_kwargs", &kw, &e)) return 0; /* keep cJSON's */
    return qn_pyjson_set(args, "observer_kwargs", kw);
}

static qn_status build_quant_config(const qn_module *mods, size_t n, const qn_recipe_plan *plan, const mod_plan *mp,
                                    int v, qn_pyjson **out, char *top_format, qn_error *err) {
    *out = NULL;
    qn_pyjson *qc = qn_pyjson_new(QN_PJ_OBJECT), *groups = qn_pyjson_new(QN_PJ_OBJECT),
              *ignore = qn_pyjson_new(QN_PJ_ARRAY);
    int *seen = calloc(plan->n_groups + 1, sizeof *seen);
    qn_status st = QN_OK;
    if (!qc || !groups || !ignore || !seen) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
    char first_fmt[32] = "";
    int n_fmt = 0, n_groups_out = 0;
    for (size_t i = 0; i < n; i++) {
        int g = plan->group_of[i];
        if (g < 0) {
            if (qn_pyjson_append(ignore, qn_pyjson_new_string(mods[i].name))) goto nomem;
            continue;
        }
        if (mp[i].kind != QNX_FMT_DENSE) { /* top level: the single non-dense format (§3.10) */
            if (!n_fmt) { snprintf(first_fmt, sizeof first_fmt, "%s", mp[i].format); n_fmt = 1; }
            else if (strcmp(first_fmt, mp[i].format)) n_fmt = 2;
        }
        if (seen[g]) continue;
        seen[g] = 1;
        qn_quant_scheme sc;
        if ((st = qn_quant_scheme_copy(&sc, &plan->groups[g], err))) goto done;
        snprintf(sc.format, sizeof sc.format, "%s", mp[i].format);
        cJSON *cj = NULL;
        st = qn_quant_scheme_to_json_v(&sc, v, &cj, err);
        qn_pyjson *pj = st ? NULL : qn_pyjson_from_cjson(cj);
        cJSON_Delete(cj);
        if (st) { qn_quant_scheme_free(&sc); goto done; }
        if (!pj) { qn_quant_scheme_free(&sc); goto nomem; }
        if ((sc.has_weights && fix_kwargs(qn_pyjson_get(pj, "weights"), &sc.weights)) ||
            (sc.has_input_activations && fix_kwargs(qn_pyjson_get(pj, "input_activations"), &sc.input_activations)) ||
            (sc.has_output_activations && fix_kwargs(qn_pyjson_get(pj, "output_activations"), &sc.output_activations))) {
            qn_quant_scheme_free(&sc);
            qn_pyjson_free(pj);
            goto nomem;
        }
        qn_quant_scheme_free(&sc);
        char gname[32];
        snprintf(gname, sizeof gname, "group_%d", n_groups_out++);
        if (qn_pyjson_set(groups, gname, pj)) goto nomem;
    }
    const char *fmt = n_fmt == 0 ? "dense" : n_fmt == 1 ? first_fmt : "mixed-precision";
    snprintf(top_format, 32, "%s", fmt);
    int dense = !strcmp(fmt, "dense");
    char ver[32];
    snprintf(ver, sizeof ver, "%d.%d.0", v / 1000, v % 1000);
    if (qn_pyjson_set(qc, "config_groups", groups)) { groups = NULL; goto nomem; }
    groups = NULL;
    if (qn_pyjson_set(qc, "format", qn_pyjson_new_string(fmt)) ||
        qn_pyjson_set(qc, "global_compression_ratio", qn_pyjson_new(QN_PJ_NULL)))
        goto nomem;
    if (qn_pyjson_set(qc, "ignore", ignore)) { ignore = NULL; goto nomem; }
    ignore = NULL;
    qn_pyjson *kvj = qn_pyjson_new(QN_PJ_NULL);
    if (plan->kv_cache_scheme) {
        cJSON *kc = NULL;
        qn_error kerr = {0};
        qn_pyjson_free(kvj);
        kvj = qn_quant_args_to_json(plan->kv_cache_scheme, &kc, &kerr) ? NULL : qn_pyjson_from_cjson(kc);
        cJSON_Delete(kc);
    }
    if (qn_pyjson_set(qc, "kv_cache_scheme", kvj) ||
        qn_pyjson_set(qc, "quant_method", qn_pyjson_new_string("compressed-tensors")) ||
        qn_pyjson_set(qc, "quantization_status", qn_pyjson_new_string(dense ? "frozen" : "compressed")))
        goto nomem;
    if (v >= QN_CT_VERSION(0, 11)) {
        if (qn_pyjson_set(qc, "sparsity_config", qn_pyjson_new(QN_PJ_OBJECT)) ||
            qn_pyjson_set(qc, "transform_config", qn_pyjson_new(QN_PJ_OBJECT)) ||
            qn_pyjson_set(qc, "version", qn_pyjson_new_string(ver)))
            goto nomem;
    }
    *out = qc;
    qc = NULL;
    goto done;
nomem:
    st = qn_error_set(err, QN_ERR_NOMEM, "out of memory building quantization_config");
done:
    qn_pyjson_free(qc);
    qn_pyjson_free(groups);
    qn_pyjson_free(ignore);
    free(seen);
    return st;
}

qn_status qn_export_config_json(const char *config_text, size_t len, const char *quant_config_json, char **out,
                                qn_error *err) {
    *out = NULL;
    qn_pyjson *cfg, *qc = NULL;
    qn_status st = qn_pyjson_parse(config_text, len, "config.json", &cfg, err);
    if (st) return st;
    if (cfg->type != QN_PJ_OBJECT) {
        qn_pyjson_free(cfg);
        return qn_error_set(err, QN_ERR_FORMAT, "config.json: not a JSON object");
    }
    if (quant_config_json) {
        if ((st = qn_pyjson_parse(quant_config_json, strlen(quant_config_json), "quantization_config", &qc, err))) {
            qn_pyjson_free(cfg);
            return st;
        }
        if (qn_pyjson_set(cfg, "quantization_config", qc)) {
            qn_pyjson_free(cfg);
            return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        }
    }
    st = qn_pyjson_dump(cfg, 2, out, err);
    qn_pyjson_free(cfg);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Tensors of one quantized Linear                                                             */

typedef struct {
    qn_st_writer *w;
    qn_export_stats *stats;
    int v;
    qn_pack_layout layout;
} emit_ctx;

/* Adds `mod.param` (or the tensor `mod` itself when param is NULL). */
static qn_status emit(emit_ctx *c, const char *mod, const char *param, qn_dtype dt, int ndim, const int64_t *shape,
                      const void *data, size_t nbytes, qn_error *err) {
    char buf[QNX_MAX_MODULE_NAME + 32];
    const char *name = mod;
    if (param) {
        int k = snprintf(buf, sizeof buf, "%s.%s", mod, param);
        if (k < 0 || (size_t)k >= sizeof buf) return qn_error_set(err, QN_ERR_INVALID_ARG, "module name too long: %s", mod);
        name = buf;
    }
    qn_status st = qn_st_writer_add(c->w, name, dt, ndim, shape, data, nbytes, err);
    if (!st) {
        c->stats->bytes_out += nbytes;
        c->stats->tensors_out++;
    }
    return st;
}

/* fp32 values -> bytes of dt (BF16/F16/F32/F8_E4M3). malloc'ed. */
static void *to_bytes(const float *x, size_t n, qn_dtype dt, size_t *nbytes) {
    size_t es = qn_dtype_size(dt);
    void *b = malloc(n * es + 1);
    if (!b) return NULL;
    for (size_t i = 0; i < n; i++) {
        switch (dt) {
        case QN_DT_BF16: ((uint16_t *)b)[i] = qn_f32_to_bf16(x[i]); break;
        case QN_DT_F16: ((uint16_t *)b)[i] = qn_f32_to_f16(x[i]); break;
        case QN_DT_F8_E4M3: ((uint8_t *)b)[i] = qn_f32_to_fp8e4m3_sat(x[i]); break;
        case QN_DT_I8: ((int8_t *)b)[i] = (int8_t)x[i]; break;
        default: ((float *)b)[i] = x[i]; break;
        }
    }
    *nbytes = n * es;
    return b;
}

static qn_status emit_floats(emit_ctx *c, const char *mod, const char *param, qn_dtype dt, int ndim,
                             const int64_t *shape, const float *x, size_t n, qn_error *err) {
    size_t nb;
    void *b = to_bytes(x, n, dt, &nb);
    if (!b) return qn_error_set(err, QN_ERR_NOMEM, "%s.%s: out of memory", mod, param);
    qn_status st = emit(c, mod, param, dt, ndim, shape, b, nb, err);
    free(b);
    return st;
}

static void minmax_f32(const float *x, size_t n, float *mn, float *mx) {
    float a = INFINITY, b = -INFINITY;
#pragma omp parallel for reduction(min : a) reduction(max : b) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        if (x[i] < a) a = x[i];
        if (x[i] > b) b = x[i];
    }
    *mn = a;
    *mx = b;
}

static qn_status load_weight(const qn_tensor *t, float **out, qn_error *err) {
    size_t n = (size_t)qn_tensor_numel(t);
    float *w = malloc((n ? n : 1) * sizeof *w);
    if (!w) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory for tensor '%s' (%zu values)", t->file, t->name, n);
    qn_status st = qn_tensor_to_f32(t, w, err);
    if (st) { free(w); return st; }
    *out = w;
    return QN_OK;
}

/* The two kept positions of a group of 4 int8 / fp8 codes, as compressed-tensors' get_24_bytemasks
 * picks them (torch.topk(k=2) of abs() of the int8 view): two or more non-zero keys -> the two
 * largest (lower position first on ties); fewer -> the positions torch's CPU top-k returns for such
 * groups (§5.7): none {2,3}; one at 0 {0,2}, at 1 {1,3}, at 2 or 3 {2,3}. One deliberate
 * difference: compressed-tensors' abs(-128) overflows to -128 and drops int8 -128 codes (and fp8
 * bytes that view as negative int8 rank by that view) below the zeros or out of order; quench ranks
 * int8 by |v| and fp8 by its magnitude bits, so every kept value survives (the file stays valid:
 * two marks per group). */
static void keep24(const uint8_t *g, int fp8, int keep[2]) {
    int key[4], npos = 0;
    for (int i = 0; i < 4; i++) {
        int v = (int8_t)g[i];
        key[i] = fp8 ? (g[i] & 0x7F) : (v < 0 ? -v : v);   /* fp8: the magnitude bits (-0.0 is zero) */
        npos += key[i] > 0;
    }
    if (npos >= 2) {
        int a = -1, b = -1;
        for (int i = 0; i < 4; i++) {
            if (a < 0 || key[i] > key[a]) { b = a; a = i; }
            else if (b < 0 || key[i] > key[b]) b = i;
        }
        keep[0] = a < b ? a : b;
        keep[1] = a < b ? b : a;
        return;
    }
    int p = -1;
    for (int i = 0; i < 4; i++) if (key[i] > 0) p = i;
    static const int table[5][2] = {{2, 3}, {0, 2}, {1, 3}, {2, 3}, {2, 3}};
    keep[0] = table[p + 1][0];
    keep[1] = table[p + 1][1];
}

/* sparse-24-bitmask (§5.7): <m>.compressed [rows, cols/2] (the kept codes in column order),
 * <m>.bitmask U8 [rows, ceil(cols/8)] (LSB-first), <m>.shape I64 [2, 1]. */
static qn_status emit_sparse24(emit_ctx *c, const char *mod, qn_dtype dt, int64_t rows, int64_t cols, const void *codes,
                               qn_error *err) {
    if (cols % 4) return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: sparse-24-bitmask needs input width %% 4 == 0", mod);
    int64_t half = cols / 2, bpr = (cols + 7) / 8;
    uint8_t *cv = malloc((size_t)(rows * half)), *bm = calloc((size_t)(rows * bpr), 1);
    if (!cv || !bm) { free(cv); free(bm); return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", mod); }
    const uint8_t *q = codes;
    for (int64_t r = 0; r < rows; r++) {
        int64_t k = 0;
        for (int64_t j = 0; j < cols; j += 4) {
            int keep[2];
            keep24(q + r * cols + j, dt == QN_DT_F8_E4M3, keep);
            for (int t = 0; t < 2; t++) {
                int64_t col = j + keep[t];
                uint8_t v = q[r * cols + col];
                if (dt == QN_DT_F8_E4M3 && v == 0x80) v = 0;   /* pruned zeros must be +0 */
                cv[r * half + k++] = v;
                bm[r * bpr + col / 8] |= (uint8_t)(1u << (col % 8));
            }
        }
    }
    int64_t cshape[2] = {rows, half}, bshape[2] = {rows, bpr}, sshape[2] = {2, 1}, sv[2] = {rows, cols};
    qn_status st = emit(c, mod, "compressed", dt, 2, cshape, cv, (size_t)(rows * half), err);
    if (!st) st = emit(c, mod, "bitmask", QN_DT_U8, 2, bshape, bm, (size_t)(rows * bpr), err);
    if (!st) st = emit(c, mod, "shape", QN_DT_I64, 2, sshape, sv, sizeof sv, err);
    free(cv);
    free(bm);
    return st;
}

static qn_status quantize_module(emit_ctx *c, const qn_module *m, const mod_plan *mp, const qn_export_opts *o,
                                 size_t mi, qn_error *err) {
    const qn_quant_args *wa = &mp->s->weights;
    const int64_t rows = m->out, cols = m->in;
    const size_t n = (size_t)(rows * cols);
    float *w = NULL;
    void *codes = NULL;
    int32_t *gidx = NULL, *packed = NULL;
    int8_t *zq = NULL;
    qn_qparams p;
    int have_p = 0;
    qn_status st = load_weight(mp->w, &w, err);
    if (st) return st;
    if ((st = qn_qparams_init(&p, wa, mp->dtype, rows, cols, err))) goto done;
    have_p = 1;
    const qn_qstrategy strat = p.args.strategy;
    if (strat == QN_STRATEGY_TENSOR_GROUP)
        p.global_scale = qn_nvfp4_global_scale(mp->fused_gs ? mp->gs_amax : qn_quant_absmax(w, rows, cols, cols));
    int group_ord = (wa->actorder == QN_ACTORDER_GROUP || wa->actorder == QN_ACTORDER_DYNAMIC) &&
                    (strat == QN_STRATEGY_GROUP || strat == QN_STRATEGY_TENSOR_GROUP);
    if (group_ord) {
        gidx = malloc((size_t)cols * sizeof *gidx);
        if (!gidx) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
        for (int64_t j = 0; j < cols; j++) gidx[j] = (int32_t)(j / p.tile_cols);
        p.g_idx = gidx;
    }
    int provided = 0;
    if (o->weight_hook && (st = o->weight_hook(o->weight_hook_user, mi, m, w, &p, &provided, err))) goto done;
    if (provided) {
        /* the algorithm's scales (and g_idx) */
    } else if (mp->fused_tensor && strat == QN_STRATEGY_TENSOR) {
        float zp = 0;
        if ((st = qn_quant_calc_qparams(&p.args, mp->dtype, &mp->fmin, &mp->fmax, 1, 0.0f, p.scale,
                                        p.zero_point ? &zp : NULL, err)))
            goto done;
        if (p.zero_point) p.zero_point[0] = zp;
    } else if ((st = qn_qparams_observe(&p, w, cols, 0, cols, err))) {
        goto done;
    }
    codes = malloc(n ? n : 1);
    if (!codes) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", m->name); goto done; }
    if ((st = qn_quant_quantize(&p, w, cols, 0, cols, codes, cols, err))) goto done;

    const size_t ns = (size_t)(p.srows * p.scols);
    int64_t sshape[2] = {p.srows, p.scols};
    int sndim = 2;
    if (strat == QN_STRATEGY_TENSOR) { sndim = 1; sshape[0] = 1; }
    const int is_int = wa->type == QN_QTYPE_INT;
    int64_t wshape[2] = {rows, cols};
    if (o->sparse24 && o->sparse24[mi] && mp->kind != QNX_FMT_NAIVE) {
        st = qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: sparse-24-bitmask needs 8-bit int or fp8 weights (int-/float-quantized); "
                          "2:4 with 4-bit weights needs marlin-24, which quench does not write: use --sparse-format dense", m->name);
        goto done;
    }
    switch (mp->kind) {
    case QNX_FMT_DENSE: {
        if ((st = qn_quant_dequantize(&p, codes, cols, 0, cols, w, cols, err))) goto done;
        if ((st = emit_floats(c, m->name, "weight", mp->w->dtype, 2, wshape, w, n, err))) goto done;
        break;
    }
    case QNX_FMT_NAIVE:
        if (o->sparse24 && o->sparse24[mi]) {
            if ((st = emit_sparse24(c, m->name, is_int ? QN_DT_I8 : QN_DT_F8_E4M3, rows, cols, codes, err))) goto done;
        } else if ((st = emit(c, m->name, "weight", is_int ? QN_DT_I8 : QN_DT_F8_E4M3, 2, wshape, codes, n, err))) {
            goto done;
        }
        break;
    case QNX_FMT_PACK: {
        int64_t words = qn_pack_int32_words(cols, wa->num_bits, c->layout);
        packed = malloc((size_t)(rows * words) * sizeof *packed + 1);
        if (!packed) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", m->name); goto done; }
        if ((st = qn_pack_int32_rows(codes, rows, cols, wa->num_bits, c->layout, packed, err))) goto done;
        int64_t pshape[2] = {rows, words};
        if ((st = emit(c, m->name, "weight_packed", QN_DT_I32, 2, pshape, packed, (size_t)(rows * words) * 4, err)))
            goto done;
        int64_t shp[2] = {rows, cols}, two = 2;
        if ((st = emit(c, m->name, "weight_shape", QN_DT_I64, 1, &two, shp, sizeof shp, err))) goto done;
        break;
    }
    case QNX_FMT_NVFP4: {
        packed = malloc(n / 2 + 1);
        if (!packed) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", m->name); goto done; }
        if ((st = qn_pack_fp4(codes, rows, cols, (uint8_t *)packed, err))) goto done;
        int64_t pshape[2] = {rows, cols / 2};
        if ((st = emit(c, m->name, "weight_packed", QN_DT_U8, 2, pshape, packed, n / 2, err))) goto done;
        break;
    }
    default: st = qn_error_set(err, QN_ERR_INTERNAL, "%s: unexpected format", m->name); goto done;
    }
    if ((st = emit_floats(c, m->name, "weight_scale", mp->scale_dt, sndim, sshape, p.scale, ns, err))) goto done;
    if (strat == QN_STRATEGY_TENSOR_GROUP) {
        int64_t one = 1;
        if ((st = emit(c, m->name, "weight_global_scale", QN_DT_F32, 1, &one, &p.global_scale, 4, err))) goto done;
    }
    /* zero points: asymmetric in compressed formats; always in dense */
    if (!wa->symmetric || mp->kind == QNX_FMT_DENSE) {
        float *zf = calloc(ns, sizeof *zf);
        if (!zf) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
        if (p.zero_point) memcpy(zf, p.zero_point, ns * sizeof *zf);
        if (mp->kind == QNX_FMT_PACK && strat != QN_STRATEGY_TENSOR) {
            zq = malloc(ns);
            int64_t words = qn_pack_int32_words(p.srows, wa->num_bits, c->layout);
            int32_t *zp32 = zq ? malloc((size_t)(words * p.scols) * sizeof *zp32 + 1) : NULL;
            if (!zp32) { free(zf); st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
            for (size_t i = 0; i < ns; i++) zq[i] = (int8_t)zf[i];
            st = qn_pack_int32_cols(zq, p.srows, p.scols, wa->num_bits, c->layout, zp32, err);
            int64_t zshape[2] = {words, p.scols};
            if (!st) st = emit(c, m->name, "weight_zero_point", QN_DT_I32, 2, zshape, zp32, (size_t)(words * p.scols) * 4, err);
            free(zp32);
        } else {
            qn_dtype zdt = is_int ? QN_DT_I8 : QN_DT_F8_E4M3;
            st = emit_floats(c, m->name, "weight_zero_point", zdt, sndim, sshape, zf, ns, err);
        }
        free(zf);
        if (st) goto done;
    }
    if (gidx) {
        int64_t gshape = cols;
        const int32_t *gi = p.g_idx ? p.g_idx : gidx;
        if ((st = emit(c, m->name, "weight_g_idx", QN_DT_I32, 1, &gshape, gi, (size_t)cols * 4, err))) goto done;
    }
    if (mp->static_input) {
        const qn_quant_args *ia = &mp->s->input_activations;
        float mn = o->input_min[mi], mx = o->input_max[mi], s = 1, z = 0;
        if ((st = qn_quant_calc_qparams(ia, mp->dtype, &mn, &mx, 1, 0.0f, &s, &z, err))) goto done;
        int64_t one = 1;
        if ((st = emit_floats(c, m->name, "input_scale", mp->dtype, 1, &one, &s, 1, err))) goto done;
        if (!ia->symmetric || mp->kind == QNX_FMT_DENSE) {
            qn_dtype zdt = ia->type == QN_QTYPE_INT ? QN_DT_I8 : QN_DT_F8_E4M3;
            if ((st = emit_floats(c, m->name, "input_zero_point", zdt, 1, &one, &z, 1, err))) goto done;
        }
    }
    c->stats->params_quantized += n;
done:
    if (have_p) qn_qparams_free(&p);
    free(w);
    free(codes);
    free(gidx);
    free(packed);
    free(zq);
    return st;
}

/* Shared parameters of fused shards in one streaming step: tensor-strategy min/max (unless
 * disabled or the observer is not min/max) and the NVFP4 global-scale amax. */
static qn_status fuse_step(const qn_module *mods, mod_plan *mp, const size_t *step_mods, size_t n_step,
                           const qn_export_opts *o, const qn_st_set *set, qn_error *err) {
    size_t cnt = n_step ? n_step : 1;
    char (*keys)[256] = calloc(cnt, sizeof *keys);
    float *mn = malloc(cnt * sizeof *mn), *mx = malloc(cnt * sizeof *mx);
    char *member = calloc(cnt, 1);
    qn_status st = QN_OK;
    if (!keys || !mn || !mx || !member) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
    for (size_t a = 0; a < n_step; a++) {
        size_t i = step_mods[a];
        mn[a] = INFINITY;
        mx[a] = -INFINITY;
        if (mp[i].group < 0 || !qnx_fused_key(mods[i].name, keys[a], sizeof keys[a])) keys[a][0] = 0;
    }
    for (size_t a = 0; a < n_step; a++) {
        if (!keys[a][0]) continue;
        const qn_quant_args *wa = &mp[step_mods[a]].s->weights;
        int tensor = wa->strategy == QN_STRATEGY_TENSOR && !o->no_fuse_tensor_scales && observer_is_minmax(wa);
        int tg = wa->strategy == QN_STRATEGY_TENSOR_GROUP;
        size_t members = 0;
        for (size_t b = a; b < n_step; b++) {
            member[b] = keys[b][0] && !strcmp(keys[a], keys[b]) && qn_quant_args_equal(&mp[step_mods[b]].s->weights, wa);
            members += (size_t)member[b];
        }
        if ((tensor || tg) && members >= 2) {
            float fmn = INFINITY, fmx = -INFINITY;
            for (size_t b = a; b < n_step; b++) {
                if (!member[b]) continue;
                size_t j = step_mods[b];
                float *w;
                if ((st = load_weight(mp[j].w, &w, err))) goto done;
                minmax_f32(w, (size_t)(mods[j].out * mods[j].in), &mn[b], &mx[b]);
                free(w);
                qn_st_set_release(set, mp[j].w);
                if (mn[b] < fmn) fmn = mn[b];
                if (mx[b] > fmx) fmx = mx[b];
            }
            for (size_t b = a; b < n_step; b++) {
                if (!member[b]) continue;
                size_t j = step_mods[b];
                if (tensor) { mp[j].fused_tensor = 1; mp[j].fmin = fmn; mp[j].fmax = fmx; }
                if (tg) { mp[j].fused_gs = 1; mp[j].gs_amax = fmaxf(fabsf(fmn), fabsf(fmx)); }
            }
        }
        for (size_t b = a; b < n_step; b++)
            if (member[b]) keys[b][0] = 0;
    }
done:
    free(keys);
    free(mn);
    free(mx);
    free(member);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Output folder                                                                               */

static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    int empty = 1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) { empty = 0; break; }
    closedir(d);
    return empty;
}

/* Absolute path of `p` with symlinks of its longest existing prefix resolved (the rest is
 * appended as written, "." and ".." components removed lexically). */
static qn_status abs_path(const char *p, char *out, size_t n, qn_error *err) {
    char buf[PATH_MAX * 2];
    if (p[0] == '/') snprintf(buf, sizeof buf, "%s", p);
    else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return qn_error_set(err, QN_ERR_IO, "getcwd: %s", strerror(errno));
        snprintf(buf, sizeof buf, "%s/%s", cwd, p);
    }
    /* lexical normalization */
    char norm[PATH_MAX * 2] = "";
    size_t nl = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (!strcmp(tok, ".")) continue;
        if (!strcmp(tok, "..")) {
            while (nl > 0 && norm[nl - 1] != '/') nl--;
            if (nl > 0) nl--;
            norm[nl] = 0;
            continue;
        }
        size_t tl = strlen(tok);
        if (nl + tl + 2 >= sizeof norm) return qn_error_set(err, QN_ERR_INVALID_ARG, "path too long: %s", p);
        norm[nl++] = '/';
        memcpy(norm + nl, tok, tl + 1);
        nl += tl;
    }
    if (!nl) { norm[0] = '/'; norm[1] = 0; nl = 1; }
    /* resolve the longest existing prefix */
    size_t cut = nl;
    while (1) {
        char pre[PATH_MAX * 2];
        memcpy(pre, norm, cut);
        pre[cut] = 0;
        char rp[PATH_MAX];
        if (realpath(cut ? pre : "/", rp)) {
            int k = snprintf(out, n, "%s%s%s", rp, (cut < nl && strcmp(rp, "/")) ? "" : "", norm + cut);
            if (k < 0 || (size_t)k >= n) return qn_error_set(err, QN_ERR_INVALID_ARG, "path too long: %s", p);
            return QN_OK;
        }
        if (cut == 0) break;
        while (cut > 0 && norm[cut - 1] != '/') cut--;
        if (cut > 0) cut--;
    }
    return qn_error_set(err, QN_ERR_IO, "%s: cannot resolve path", p);
}

static int path_within(const char *inner, const char *outer) {
    size_t l = strlen(outer);
    if (!strcmp(outer, "/")) return 1;
    return !strncmp(inner, outer, l) && (inner[l] == 0 || inner[l] == '/');
}

static qn_status mkdir_p(const char *path, qn_error *err) {
    char tmp[PATH_MAX * 2];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *q = tmp + 1; *q; q++) {
        if (*q != '/') continue;
        *q = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return qn_error_set(err, QN_ERR_IO, "%s: %s", tmp, strerror(errno));
        *q = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) return qn_error_set(err, QN_ERR_IO, "%s: %s", tmp, strerror(errno));
    return QN_OK;
}

/* Removes leftovers "<base>.tmp-<pid>" of runs whose process no longer exists. */
static void clean_stale_tmp(const char *parent, const char *base) {
    DIR *d = opendir(parent);
    if (!d) return;
    size_t bl = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, base, bl) || strncmp(e->d_name + bl, ".tmp-", 5)) continue;
        const char *q = e->d_name + bl + 5;
        if (!*q) continue;
        char *end;
        long pid = strtol(q, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char full[PATH_MAX * 2 + NAME_MAX + 2];
        snprintf(full, sizeof full, "%s/%s", parent, e->d_name);
        rm_tree(full);
    }
    closedir(d);
}

typedef struct {
    char out[PATH_MAX * 2];
    char parent[PATH_MAX * 2];
    char base[NAME_MAX + 1];
    char tmp[PATH_MAX * 2 + 32];
} out_paths;

static qn_status prepare_out(const char *model_dir, const char *out_dir, int overwrite, out_paths *op, qn_error *err) {
    char mabs[PATH_MAX * 2];
    qn_status st;
    if (!out_dir || !*out_dir) return qn_error_set(err, QN_ERR_INVALID_ARG, "no output folder given");
    if ((st = abs_path(model_dir, mabs, sizeof mabs, err))) return st;
    if ((st = abs_path(out_dir, op->out, sizeof op->out, err))) return st;
    if (!strcmp(op->out, "/")) return qn_error_set(err, QN_ERR_INVALID_ARG, "refusing to write to /");
    if (path_within(op->out, mabs))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: the output folder is inside the input folder %s (the input is never modified)",
                            out_dir, model_dir);
    if (path_within(mabs, op->out))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: the output folder contains the input folder %s", out_dir, model_dir);
    const char *slash = strrchr(op->out, '/');
    size_t pl = (size_t)(slash - op->out);
    memcpy(op->parent, op->out, pl ? pl : 1);
    op->parent[pl ? pl : 1] = 0;
    if (strlen(slash + 1) > NAME_MAX - 32) return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: name too long", out_dir);
    snprintf(op->base, sizeof op->base, "%s", slash + 1);
    snprintf(op->tmp, sizeof op->tmp, "%s.tmp-%ld", op->out, (long)getpid());
    struct stat sb;
    if (!lstat(op->out, &sb)) {
        int empty_dir = S_ISDIR(sb.st_mode) && dir_is_empty(op->out);
        if (!empty_dir && !overwrite)
            return qn_error_set(err, QN_ERR_INVALID_ARG, "%s already exists and is not empty (use --overwrite to replace it)", out_dir);
    }
    if ((st = mkdir_p(op->parent, err))) return st;
    clean_stale_tmp(op->parent, op->base);
    rm_tree(op->tmp);
    if (mkdir(op->tmp, 0755)) return qn_error_set(err, QN_ERR_IO, "%s: %s", op->tmp, strerror(errno));
    return QN_OK;
}

static qn_status commit_out(out_paths *op, int overwrite, const char *out_dir, qn_error *err) {
    struct stat sb;
    if (!lstat(op->out, &sb)) {
        int empty_dir = S_ISDIR(sb.st_mode) && dir_is_empty(op->out);
        if (empty_dir) {
            if (rmdir(op->out)) return qn_error_set(err, QN_ERR_IO, "%s: %s", op->out, strerror(errno));
        } else {
            if (!overwrite)
                return qn_error_set(err, QN_ERR_INVALID_ARG, "%s appeared while writing and is not empty", out_dir);
            char old[sizeof op->tmp + 8];
            snprintf(old, sizeof old, "%s.old-%ld", op->out, (long)getpid());
            rm_tree(old);
            if (rename(op->out, old)) return qn_error_set(err, QN_ERR_IO, "moving %s aside: %s", op->out, strerror(errno));
            if (rename(op->tmp, op->out)) {
                int e = errno;
                (void)rename(old, op->out);
                return qn_error_set(err, QN_ERR_IO, "renaming %s to %s: %s", op->tmp, op->out, strerror(e));
            }
            rm_tree(old);
            return QN_OK;
        }
    }
    if (rename(op->tmp, op->out)) return qn_error_set(err, QN_ERR_IO, "renaming %s to %s: %s", op->tmp, op->out, strerror(errno));
    return QN_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Export                                                                                      */

static const char *const k_copy_files[] = {
    "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "tokenizer.model", "added_tokens.json", "vocab.json", "merges.txt", "vocab.txt", "chat_template.jinja",
    "chat_template.json", NULL};

/* Consumer limits worth a warning (§9.10, §9.14); the checkpoint itself is valid. */
static void note_compat(const qn_module *mods, size_t n, const mod_plan *mp, qn_export_stats *stats) {
    size_t cnt[2] = {0, 0}, first[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        if (mp[i].group < 0 || !mp[i].s) continue;
        const qn_quant_args *w = &mp[i].s->weights;
        int k = -1;
        if (mp[i].kind == QNX_FMT_PACK && (w->num_bits == 4 || w->num_bits == 8) &&
            (mods[i].out % 64 || mods[i].in % 128))
            k = 0;
        else if (w->strategy == QN_STRATEGY_BLOCK && w->has_block_structure && mods[i].in <= w->block_structure[1] &&
                 mods[i].out > w->block_structure[0])
            k = 1;
        if (k < 0) continue;
        if (!cnt[k]++) first[k] = i;
    }
    size_t len = 0;
    if (cnt[0])
        len += (size_t)snprintf(stats->warnings + len, sizeof stats->warnings - len,
                                "%zu pack-quantized layers (e.g. %s [%lld, %lld]) do not fit vLLM's Marlin kernels "
                                "(out %% 64 == 0 and in %% 128 == 0)\n",
                                cnt[0], mods[first[0]].name, (long long)mods[first[0]].out, (long long)mods[first[0]].in);
    if (cnt[1] && len < sizeof stats->warnings)
        snprintf(stats->warnings + len, sizeof stats->warnings - len,
                 "%zu block-quantized layers (e.g. %s [%lld, %lld]) have in <= block width < out: transformers' "
                 "compressed-tensors decompressor mistakes them for channel scales (vLLM loads them)\n",
                 cnt[1], mods[first[1]].name, (long long)mods[first[1]].out, (long long)mods[first[1]].in);
}

static qn_status plan_all(const qn_module *mods, size_t n, const qn_recipe_plan *plan, const qn_st_set *set,
                          const qn_export_opts *o, int v, mod_plan *mp, qn_export_stats *stats, qn_error *err) {
    if (!plan || plan->n_modules != n || (n && !plan->group_of))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "export: the plan was resolved for %zu modules, not %zu",
                            plan ? plan->n_modules : 0, n);
    if (plan->kv_cache_scheme && !o->kv_scales)
        return qn_error_set(err, QN_ERR_UNSUPPORTED,
                            "kv_cache_scheme needs calibrated k_scale/v_scale (run with calibration data)");
    if (o->format && !qnx_format_known(o->format))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "unknown compression format '%s'", o->format);
    stats->linear_total = (int64_t)n;
    for (size_t i = 0; i < n; i++) {
        int g = plan->group_of[i];
        mp[i].group = -1;
        if (g < 0) { stats->linear_ignored++; continue; }
        if ((size_t)g >= plan->n_groups)
            return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: config group %d out of range", mods[i].name, g);
        if (set) {
            qn_status st = plan_module(&mods[i], g, plan, set, o, v, i, &mp[i], err);
            if (st) return st;
        } else {
            mp[i].group = g;
            mp[i].s = &plan->groups[g];
            if (o->format) snprintf(mp[i].format, sizeof mp[i].format, "%s", o->format);
            else qn_export_group_format(mp[i].s, v, mp[i].format, sizeof mp[i].format);
            mp[i].kind = qnx_format_kind(mp[i].format);
        }
        stats->linear_quantized++;
    }
    note_compat(mods, n, mp, stats);
    if (!stats->linear_quantized && !o->float_only_ok)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "the recipe quantizes none of the %zu Linear modules", n);
    return QN_OK;
}

qn_status qn_export_quantization_config(const qn_module *mods, size_t n_mods, const qn_recipe_plan *plan,
                                        const qn_export_opts *opts, char **json, qn_error *err) {
    *json = NULL;
    qn_export_opts o0 = {0};
    const qn_export_opts *o = opts ? opts : &o0;
    int v = o->ct_version ? o->ct_version : QN_CT_VERSION_DEFAULT;
    qn_export_stats stats = {0};
    mod_plan *mp = calloc(n_mods ? n_mods : 1, sizeof *mp);
    if (!mp) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    qn_pyjson *qc = NULL;
    char fmt[32];
    qn_status st = plan_all(mods, n_mods, plan, NULL, o, v, mp, &stats, err);
    if (!st) st = build_quant_config(mods, n_mods, plan, mp, v, &qc, fmt, err);
    if (!st) st = qn_pyjson_dump(qc, 2, json, err);
    qn_pyjson_free(qc);
    free(mp);
    return st;
}

qn_status qn_export_model(const char *model_dir, const char *out_dir, const qn_module *mods, size_t n_mods,
                          const qn_recipe_plan *plan, const qn_export_opts *opts, qn_export_stats *stats_out,
                          qn_error *err) {
    qn_export_opts o0 = {0};
    const qn_export_opts *o = opts ? opts : &o0;
    qn_export_stats stats_local;
    qn_export_stats *stats = stats_out ? stats_out : &stats_local;
    memset(stats, 0, sizeof *stats);
    double t0 = now_s();
    int v = o->ct_version ? o->ct_version : QN_CT_VERSION_DEFAULT;
    qn_model_config cfg;
    int have_cfg = 0, tmp_made = 0;
    qn_st_set *set = NULL;
    qn_st_writer *w = NULL;
    mod_plan *mp = NULL;
    qn_pyjson *qc = NULL, *cj = NULL;
    char *cfg_text = NULL, *cfg_out = NULL, *path = NULL;
    size_t *order = NULL, *step_mods = NULL;
    const char **names = NULL;
    name_map map = {0};
    out_paths op;
    qn_status st;
    size_t cfg_len = 0;

    if ((st = qn_config_load_dir(model_dir, &cfg, err))) return st;
    have_cfg = 1;
    if (cfg.has_quantization_config) {
        st = qn_error_set(err, QN_ERR_UNSUPPORTED,
                          "%s/config.json already has a quantization_config: compress an uncompressed model", model_dir);
        goto done;
    }
    path = malloc(PATH_MAX * 3);
    if (!path) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
    snprintf(path, PATH_MAX * 3, "%s/config.json", model_dir);
    if ((st = read_text(path, &cfg_text, &cfg_len, err))) goto done;
    if ((st = qn_pyjson_parse(cfg_text, cfg_len, path, &cj, err))) goto done;
    if (cj->type != QN_PJ_OBJECT) { st = qn_error_set(err, QN_ERR_FORMAT, "%s: not a JSON object", path); goto done; }
    if ((st = qn_st_set_open_dir(model_dir, &set, err))) goto done;
    mp = calloc(n_mods ? n_mods : 1, sizeof *mp);
    if (!mp) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
    if ((st = plan_all(mods, n_mods, plan, set, o, v, mp, stats, err))) goto done;
    int float_only = !stats->linear_quantized;   /* (float_only_ok) no quantization_config at all */
    if (float_only) snprintf(stats->format, sizeof stats->format, "none (float)");
    if (!float_only && (st = build_quant_config(mods, n_mods, plan, mp, v, &qc, stats->format, err))) goto done;
    if (!float_only && o->sparsity_config_json && v >= QN_CT_VERSION(0, 11)) {
        cJSON *sc = cJSON_Parse(o->sparsity_config_json);
        qn_pyjson *pj = sc ? qn_pyjson_from_cjson(sc) : NULL;
        cJSON_Delete(sc);
        if (!pj || qn_pyjson_set(qc, "sparsity_config", pj)) {
            st = qn_error_set(err, QN_ERR_INTERNAL, "invalid sparsity_config");
            goto done;
        }
    }
    if (!float_only && qn_pyjson_set(cj, "quantization_config", qc)) {
        qc = NULL;
        st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        goto done;
    }
    qc = NULL;
    if ((st = qn_pyjson_dump(cj, 2, &cfg_out, err))) goto done;

    /* streaming order */
    size_t nt = qn_st_set_count(set);
    order = malloc((nt ? nt : 1) * sizeof *order);
    names = malloc((nt ? nt : 1) * sizeof *names);
    step_mods = malloc((n_mods ? n_mods : 1) * sizeof *step_mods);
    if (!order || !names || !step_mods || map_init(&map, n_mods)) {
        st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        goto done;
    }
    uint64_t bytes_total = 0;
    for (size_t i = 0; i < nt; i++) {
        order[i] = i;
        names[i] = qn_st_set_get(set, i)->name;
        bytes_total += qn_st_set_get(set, i)->nbytes;
    }
    if (qnx_sort_names(order, nt, names, cfg.arch)) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < n_mods; i++) map_put(&map, mods[i].name, i);
    int64_t total_steps = 0;
    for (size_t k = 0; k < nt; k++) {
        const char *a = names[order[k]], *b = k ? names[order[k - 1]] : NULL;
        if (!b || qnx_layer_of(a, NULL) != qnx_layer_of(b, NULL)) total_steps++;
    }

    if ((st = prepare_out(model_dir, out_dir, o->overwrite, &op, err))) goto done;
    tmp_made = 1;
    uint64_t shard = o->max_shard_bytes == 0 ? QN_EXPORT_DEFAULT_SHARD_BYTES
                   : o->max_shard_bytes == UINT64_MAX ? 0 : o->max_shard_bytes;
    if ((st = qn_st_writer_open(op.tmp, shard, &w, err))) goto done;
    if ((st = qn_st_writer_set_metadata(w, "format", "pt", err))) goto done;
    emit_ctx ec = {w, stats, v, qnx_pack_layout(v)};

    int64_t step = 0;
    uint64_t bytes_done = 0;
    for (size_t k = 0; k < nt;) {
        int64_t layer = qnx_layer_of(names[order[k]], NULL);
        size_t e = k;
        while (e < nt && qnx_layer_of(names[order[e]], NULL) == layer) e++;
        if (plan->kv_cache_scheme && layer >= 0 && layer < cfg.num_hidden_layers) {
            float ks = 0, vs = 0;
            if ((st = o->kv_scales(o->kv_user, layer, &ks, &vs, err))) goto done;
            const qn_tensor *et = qn_st_set_find(set, "model.embed_tokens.weight");
            qn_dtype kdt = et && (et->dtype == QN_DT_BF16 || et->dtype == QN_DT_F16) ? et->dtype : QN_DT_F32;
            char attn[96];
            int64_t one = 1;
            snprintf(attn, sizeof attn, "model.layers.%lld.self_attn", (long long)layer);
            if ((st = emit_floats(&ec, attn, "k_scale", kdt, 1, &one, &ks, 1, err))) goto done;
            if ((st = emit_floats(&ec, attn, "v_scale", kdt, 1, &one, &vs, 1, err))) goto done;
        }
        /* quantized modules of this step */
        size_t ns = 0;
        for (size_t q = k; q < e; q++) {
            const qn_tensor *t = qn_st_set_get(set, order[q]);
            size_t l = strlen(t->name), mi;
            if (l > 7 && l - 7 <= QNX_MAX_MODULE_NAME && !strcmp(t->name + l - 7, ".weight")) {
                char mod[QNX_MAX_MODULE_NAME + 1];
                snprintf(mod, sizeof mod, "%.*s", (int)(l - 7), t->name);
                if (map_get(&map, mod, &mi) && mp[mi].group >= 0) step_mods[ns++] = mi;
            }
        }
        if ((st = fuse_step(mods, mp, step_mods, ns, o, set, err))) goto done;
        for (size_t q = k; q < e; q++) {
            const qn_tensor *t = qn_st_set_get(set, order[q]);
            size_t l = strlen(t->name), mi;
            int quant = 0;
            if (l > 7 && l - 7 <= QNX_MAX_MODULE_NAME && !strcmp(t->name + l - 7, ".weight")) {
                char mod[QNX_MAX_MODULE_NAME + 1];
                snprintf(mod, sizeof mod, "%.*s", (int)(l - 7), t->name);
                if (map_get(&map, mod, &mi) && mp[mi].group >= 0) quant = 1;
            }
            if (quant) st = quantize_module(&ec, &mods[mi], &mp[mi], o, mi, err);
            else {
                void *repl = NULL;
                if (o->tensor_hook) st = o->tensor_hook(o->tensor_user, t, &repl, err);
                if (!st) st = emit(&ec, t->name, NULL, t->dtype, t->ndim, t->shape, repl ? repl : t->data, t->nbytes, err);
                free(repl);
            }
            if (st) goto done;
            qn_st_set_release(set, t);   /* written: its input pages need not stay resident */
            stats->bytes_in += t->nbytes;
            bytes_done += t->nbytes;
        }
        step++;
        if (o->progress) o->progress(o->progress_user, step, total_steps, bytes_done, bytes_total);
        k = e;
    }
    st = qn_st_writer_finish(w, err);
    w = NULL;
    if (st) goto done;

    snprintf(path, PATH_MAX * 3, "%s/config.json", op.tmp);
    if ((st = write_file(path, cfg_out, strlen(cfg_out), err))) goto done;
    for (int i = 0; k_copy_files[i]; i++) {
        char src[PATH_MAX * 2];
        snprintf(src, sizeof src, "%s/%s", model_dir, k_copy_files[i]);
        struct stat sb;
        if (stat(src, &sb) || !S_ISREG(sb.st_mode)) continue;
        snprintf(path, PATH_MAX * 3, "%s/%s", op.tmp, k_copy_files[i]);
        if ((st = copy_file(src, path, err))) goto done;
    }
    if (o->recipe_yaml) {
        snprintf(path, PATH_MAX * 3, "%s/recipe.yaml", op.tmp);
        if ((st = write_file(path, o->recipe_yaml, strlen(o->recipe_yaml), err))) goto done;
    }
    if ((st = commit_out(&op, o->overwrite, out_dir, err))) goto done;
    tmp_made = 0;
    stats->seconds = now_s() - t0;
done:
    if (w) qn_st_writer_abort(w);
    if (tmp_made) rm_tree(op.tmp);
    map_free(&map);
    free(order);
    free(names);
    free(step_mods);
    free(path);
    free(cfg_text);
    free(cfg_out);
    qn_pyjson_free(qc);
    qn_pyjson_free(cj);
    free(mp);
    qn_st_set_free(set);
    if (have_cfg) qn_config_free(&cfg);
    return st;
}
