/* The sequential layer-by-layer calibration pipeline (include/quench/pipeline.h). */
#include "quench/pipeline.h"

#include <cblas.h>
#undef I
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "quench/algo.h"
#include "quench/awq.h"
#include "quench/model.h"
#include "export/export_internal.h"

/* Linear groups that share an input (one Hessian each). */
enum { HG_QKV, HG_O, HG_GATEUP, HG_DOWN, HG_N };
static int hgroup_of(qn_linear_id id) {
    switch (id) {
    case QN_LIN_Q: case QN_LIN_K: case QN_LIN_V: return HG_QKV;
    case QN_LIN_O: return HG_O;
    case QN_LIN_GATE: case QN_LIN_UP: return HG_GATEUP;
    default: return HG_DOWN;
    }
}

typedef struct {
    float *w;          /* GPTQ weight [out, in], handed to the exporter */
    qn_qparams p;
    int32_t *g_idx;
    int ready;
    float *fw, *fb;    /* AWQ-rescaled float weight of an unquantized module / bias of any, for the tensor hook */
} result;

/* An MoE layer whose attention, router and shared expert are done and whose routed experts are
 * processed one at a time. */
typedef struct {
    int64_t L;             /* -1: none */
    qn_layer layer;        /* without routed experts; attention already quantized */
    qn_scratch *sc;
    void **xs;             /* [samples] MoE input of the statistics pass (original attention), or NULL;
                            * fp32, or bf16 with --activations bf16 (moe_store / rows_decode) */
    int32_t **routes;      /* routed-only statistics: that pass's routing [T * top_k] */
    void **xp;             /* [samples] MoE input of the propagation (compressed attention), as xs */
    int32_t **rsel;        /* [samples] its routing [T * top_k] */
    float **rw;
    float **acc;           /* bf16 activations: the layer output accumulated in fp32; NULL: into x */
    uint8_t *done;         /* [experts] */
    qn_gptq_factor *fac;   /* the shared gate/up Hessian's GPTQ factor (calibrate-all-experts) */
    int64_t n_done;
} moe_state;

struct qn_pipeline {
    qn_model *m;
    const qn_recipe *recipe;
    const qn_module *mods;
    size_t n_mods;
    const qn_recipe_plan *plan;
    qn_pipeline_opts opts;
    void **x;             /* [samples] activations [T_i, H]: fp32, or bf16 (opts.activations_bf16) */
    int bf16;
    void *map;            /* --offload-activations: one shared mapping of an unlinked file */
    size_t map_bytes;
    float *xbuf;          /* [max_t, H] fp32 view of a bf16 sample */
    int64_t *len;
    int64_t n_samples, max_t;
    int64_t next_layer;   /* layers < next_layer are done */
    size_t *by_name;      /* module indices sorted by name */
    result *res;          /* [n_mods] */
    qn_pipeline_linear *lin;   /* [n_mods] */
    qn_pipeline_stats_t stats;
    /* per-layer Hessian accumulation */
    qn_hessian h[HG_N];
    int want[HG_N];
    qn_error *hook_err;
    qn_status hook_st;
    void **moe_in;         /* MoE layers: the MoE block's normed input per sample (for down_proj) */
    const qn_modifier **prune;   /* [n_mods]: the SparseGPTModifier pruning each module, or NULL */
    float *in_min, *in_max;      /* [n_mods] input ranges for static activation scales */
    uint8_t *in_seen;            /* [n_mods] */
    int want_range[HG_N];
    const qn_quant_args *kv;     /* kv_cache_scheme, NULL if none */
    const qn_modifier *sq;       /* SmoothQuantModifier, NULL if none */
    const qn_modifier *awq;      /* AWQModifier, NULL if none */
    int awq_map[4];              /* which mapping kinds it applies (AWQ_QKV ..) */
    int sq_map[2];               /* mapping 0: q/k/v <- input_layernorm; 1: gate/up <- post_attention_layernorm */
    float *sq_amax[2];           /* per-channel max |x| of the smoothed inputs [H] (this layer) */
    float *sq_norm[2];           /* rescaled norm weights of layer sq_layer [H] */
    int64_t sq_layer;
    uint8_t *smoothed;           /* [n_mods] the weight was rescaled: hand it to the exporter */
    float *moe_sq;               /* SmoothQuant column scales of the routed experts' gate/up [H] */
    int64_t moe_sq_layer;        /* the MoE layer they belong to, -1: none */
    float *k_scale, *v_scale;    /* [num_hidden_layers] */
    float kv_amax[2];
    float gmin[HG_N], gmax[HG_N];
    char *sparsity_json;   /* sparsity_config for the exporter, NULL when nothing is pruned */
    uint8_t *sparse24;     /* [n_mods] pruned 2:4 and written sparse-24-bitmask (opts.sparse24_bitmask) */
    int64_t cur_sample;
    moe_state moe;         /* the MoE layer in progress (routed experts streamed one at a time) */
    void *moe_map;         /* --offload-activations and MoE layers: the MoE inputs' mapping, or NULL */
    size_t moe_map_half, moe_map_bytes;
    size_t *moe_off;       /* [samples] byte offset of each sample's slot in one half */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const char *name;
    size_t index;
} name_index;

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const name_index *)a)->name, ((const name_index *)b)->name);
}

static long find_module(const qn_pipeline *pl, const char *name) {
    size_t lo = 0, hi = pl->n_mods;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(pl->mods[pl->by_name[mid]].name, name);
        if (!c) return (long)pl->by_name[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return -1;
}

/* The modifier that owns config group g (groups of a modifier are a contiguous slice). */
static const qn_modifier *modifier_of_group(const qn_pipeline *pl, int g) {
    const qn_quant_scheme *s = &pl->plan->groups[g];
    for (size_t k = 0; k < qn_recipe_modifier_count(pl->recipe); k++) {
        const qn_modifier *md = qn_recipe_modifier(pl->recipe, k);
        if (md->n_groups && s >= md->groups && s < md->groups + md->n_groups) return md;
    }
    return NULL;
}

static double param_num(const qn_modifier *md, const char *key, double def) {
    const cJSON *v = md && md->params ? cJSON_GetObjectItemCaseSensitive(md->params, key) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static qn_status plan_pruning(qn_pipeline *pl, qn_error *err);
static void moe_clear(qn_pipeline *pl);
static qn_status plan_smoothquant(qn_pipeline *pl, qn_error *err);
static qn_status plan_awq(qn_pipeline *pl, qn_error *err);

/* The fp32 activations of sample s: the stored array itself, or (bf16 storage) pl->xbuf. */
/* Activation rows as stored: fp32, or bf16 (--activations bf16). decode gives fp32 (the storage
 * itself for fp32, else buf); encode writes fp32 rows into the storage format. */
static float *rows_decode(const qn_pipeline *pl, void *p, int64_t n, float *buf) {
    if (!pl->bf16) return p;
    const uint16_t *b = p;
    for (int64_t i = 0; i < n; i++) buf[i] = qn_bf16_to_f32(b[i]);
    return buf;
}

static void rows_encode(const qn_pipeline *pl, void *dst, const float *x, int64_t n) {
    if (!pl->bf16) { if (dst != x) memcpy(dst, x, sizeof(float) * (size_t)n); return; }
    uint16_t *b = dst;
    for (int64_t i = 0; i < n; i++) b[i] = qn_f32_to_bf16(x[i]);
}

static float *act_load(qn_pipeline *pl, int64_t s) {
    return rows_decode(pl, pl->x[s], pl->len[s] * pl->m->cfg.hidden_size, pl->xbuf);
}

/* Writes fp32 activations x back to sample s (a no-op for fp32 storage, where x is the array). */
static void act_store(qn_pipeline *pl, int64_t s, const float *x) {
    rows_encode(pl, pl->x[s], x, pl->len[s] * pl->m->cfg.hidden_size);
}

/* 1 when module mi's scheme has static (calibrated) per-tensor input activations. */
static int static_input(const qn_pipeline *pl, long mi) {
    if (mi < 0 || pl->plan->group_of[mi] < 0) return 0;
    const qn_quant_scheme *s = &pl->plan->groups[pl->plan->group_of[mi]];
    return s->has_input_activations && s->input_activations.dynamic == QN_DYNAMIC_FALSE;
}

static void range_of(const float *x, size_t n, float *mn, float *mx) {
    float a = *mn, b = *mx;
    for (size_t i = 0; i < n; i++) {
        if (x[i] < a) a = x[i];
        if (x[i] > b) b = x[i];
    }
    *mn = a;
    *mx = b;
}

static void set_range(qn_pipeline *pl, long mi, float mn, float mx) {
    pl->in_min[mi] = mn;
    pl->in_max[mi] = mx;
    pl->in_seen[mi] = 1;
}

const float *qn_pipeline_input_min(const qn_pipeline *pl) { return pl->in_min; }
const float *qn_pipeline_input_max(const qn_pipeline *pl) { return pl->in_max; }

void qn_pipeline_free(qn_pipeline *pl) {
    if (!pl) return;
    if (!pl->map)
        for (int64_t i = 0; i < pl->n_samples; i++) free(pl->x ? pl->x[i] : NULL);
    if (pl->map) munmap(pl->map, pl->map_bytes);
    free(pl->x);
    free(pl->xbuf);
    free(pl->len);
    if (pl->res)
        for (size_t i = 0; i < pl->n_mods; i++) {
            free(pl->res[i].w);
            free(pl->res[i].g_idx);
            free(pl->res[i].fw);
            free(pl->res[i].fb);
            if (pl->res[i].ready) qn_qparams_free(&pl->res[i].p);
        }
    free(pl->res);
    free(pl->lin);
    free(pl->by_name);
    free(pl->prune);
    free(pl->sparsity_json);
    free(pl->sparse24);
    free(pl->in_min);
    free(pl->in_max);
    free(pl->k_scale);
    free(pl->v_scale);
    for (int k = 0; k < 2; k++) { free(pl->sq_amax[k]); free(pl->sq_norm[k]); }
    free(pl->smoothed);
    free(pl->moe_sq);
    free(pl->in_seen);
    moe_clear(pl);
    if (pl->moe_map) munmap(pl->moe_map, pl->moe_map_bytes);
    free(pl->moe_off);
    for (int g = 0; g < HG_N; g++) qn_hessian_free(&pl->h[g]);
    qn_model_close(pl->m);
    free(pl);
}

/* A shared read-write mapping of `bytes` of an already-unlinked temporary file in dir. */
static qn_status offload_map(const char *dir, size_t bytes, void **out, qn_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/quench-activations-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) return qn_error_set(err, QN_ERR_IO, "--offload-activations %s: %s", dir, strerror(errno));
    unlink(path);
    if (ftruncate(fd, (off_t)bytes)) {
        close(fd);
        return qn_error_set(err, QN_ERR_IO, "--offload-activations %s: cannot reserve %zu bytes: %s", dir, bytes, strerror(errno));
    }
    void *mp = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mp == MAP_FAILED) return qn_error_set(err, QN_ERR_IO, "--offload-activations %s: mmap: %s", dir, strerror(errno));
    *out = mp;
    return QN_OK;
}

qn_status qn_pipeline_create(const char *model_dir, const qn_recipe *recipe, const qn_module *mods, size_t n_mods,
                             const qn_recipe_plan *plan, const qn_calib_set *calib, const qn_pipeline_opts *opts,
                             qn_pipeline **out, qn_error *err) {
    *out = NULL;
    qn_pipeline *pl = calloc(1, sizeof *pl);
    if (!pl) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    pl->recipe = recipe;
    pl->mods = mods;
    pl->n_mods = n_mods;
    pl->plan = plan;
    pl->moe.L = -1;
    pl->moe_sq_layer = -1;
    if (opts) pl->opts = *opts;
    qn_status st = qn_model_open(model_dir, &pl->m, err);
    if (st) {
        qn_error_prefix(err, "calibration needs the forward pass");
        free(pl);
        return st;
    }
    const qn_model_config *c = &pl->m->cfg;
    int64_t H = c->hidden_size;
    pl->n_samples = calib->n;
    pl->x = calloc((size_t)calib->n, sizeof *pl->x);
    pl->len = calloc((size_t)calib->n, sizeof *pl->len);
    pl->by_name = malloc(sizeof(size_t) * (n_mods ? n_mods : 1));
    pl->res = calloc(n_mods ? n_mods : 1, sizeof *pl->res);
    pl->lin = calloc(n_mods ? n_mods : 1, sizeof *pl->lin);
    if (!pl->x || !pl->len || !pl->by_name || !pl->res || !pl->lin) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
    name_index *ni = malloc(sizeof *ni * (n_mods ? n_mods : 1));
    if (!ni) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
    for (size_t i = 0; i < n_mods; i++) { ni[i].name = mods[i].name; ni[i].index = i; pl->lin[i].name = mods[i].name; }
    qsort(ni, n_mods, sizeof *ni, cmp_name);
    for (size_t i = 0; i < n_mods; i++) pl->by_name[i] = ni[i].index;
    free(ni);
    if ((st = plan_pruning(pl, err))) goto fail;
    pl->in_min = calloc(n_mods ? n_mods : 1, sizeof *pl->in_min);
    pl->in_max = calloc(n_mods ? n_mods : 1, sizeof *pl->in_max);
    pl->in_seen = calloc(n_mods ? n_mods : 1, 1);
    if (!pl->in_min || !pl->in_max || !pl->in_seen) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
    if (plan->kv_cache_scheme) {
        const qn_quant_args *a = plan->kv_cache_scheme;
        if (a->type != QN_QTYPE_FLOAT || a->num_bits != 8 || a->strategy != QN_STRATEGY_TENSOR || !a->symmetric) {
            st = qn_error_set(err, QN_ERR_UNSUPPORTED, "kv_cache_scheme: vLLM accepts only fp8 (type float, num_bits 8), "
                              "strategy tensor, symmetric");
            goto fail;
        }
        pl->kv = a;
        pl->k_scale = calloc((size_t)c->num_hidden_layers, sizeof(float));
        pl->v_scale = calloc((size_t)c->num_hidden_layers, sizeof(float));
        if (!pl->k_scale || !pl->v_scale) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
    }
    double t0 = now_s();
    pl->bf16 = pl->opts.activations_bf16;
    size_t esz = pl->bf16 ? 2 : 4, total = 0;
    for (int64_t i = 0; i < calib->n; i++) {
        int64_t T = calib->samples[i].n;
        if (T > c->max_position_embeddings) T = c->max_position_embeddings;
        pl->len[i] = T;
        if (T > pl->max_t) pl->max_t = T;
        pl->stats.tokens += T;
        total += (size_t)(T * H) * esz;
    }
    if (pl->opts.offload_dir) {   /* disk-backed activations: a mapping of an unlinked temporary file */
        void *mp;
        if ((st = offload_map(pl->opts.offload_dir, total ? total : 1, &mp, err))) goto fail;
        pl->map = mp;
        pl->map_bytes = total ? total : 1;
        int any_moe = 0;
        for (int64_t L = 0; L < c->num_hidden_layers; L++) any_moe |= qn_config_layer_is_moe(c, L);
        if (any_moe) {   /* the MoE inputs of the statistics and propagation passes: a second mapping */
            if ((st = offload_map(pl->opts.offload_dir, 2 * (total ? total : 1), &pl->moe_map, err))) goto fail;
            pl->moe_map_half = total ? total : 1;
            pl->moe_map_bytes = 2 * pl->moe_map_half;
            pl->moe_off = malloc(sizeof(size_t) * (size_t)(calib->n ? calib->n : 1));
            if (!pl->moe_off) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
            size_t o = 0;
            for (int64_t i = 0; i < calib->n; i++) { pl->moe_off[i] = o; o += (size_t)(pl->len[i] * H) * esz; }
        }
    }
    if ((st = plan_smoothquant(pl, err))) goto fail;
    if ((st = plan_awq(pl, err))) goto fail;
    pl->xbuf = malloc(sizeof(float) * (size_t)((pl->max_t ? pl->max_t : 1) * H));
    if (!pl->xbuf) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
    size_t off = 0;
    for (int64_t i = 0; i < calib->n; i++) {
        int64_t T = pl->len[i];
        size_t nb = (size_t)(T * H) * esz;
        pl->x[i] = pl->map ? (char *)pl->map + off : malloc(nb ? nb : 1);
        off += nb;
        if (!pl->x[i]) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory for the calibration activations (%lld samples; try --activations bf16 or --offload-activations DIR)", (long long)calib->n); goto fail; }
        float *dst = pl->bf16 ? pl->xbuf : pl->x[i];
        if ((st = qn_model_embed(pl->m, calib->samples[i].ids, T, dst, err))) goto fail;
        if (pl->bf16) act_store(pl, i, dst);
    }
    pl->stats.samples = calib->n;
    pl->stats.seconds_forward += now_s() - t0;
    pl->stats.linears = pl->lin;
    pl->stats.n_linears = n_mods;
    *out = pl;
    return QN_OK;
fail:
    qn_pipeline_free(pl);
    return st;
}

const qn_pipeline_stats_t *qn_pipeline_stats(const qn_pipeline *pl) { return &pl->stats; }

/* MoE inputs kept per sample: fp32, or bf16 with --activations bf16 (half the memory); with
 * --offload-activations in fixed slots of a second disk-backed mapping (which 0: the statistics
 * pass's inputs, 1: the propagation's), else malloc'ed. */
static void *moe_slot(const qn_pipeline *pl, int which, int64_t s) {
    return (char *)pl->moe_map + (size_t)which * pl->moe_map_half + pl->moe_off[s];
}

static void moe_release(const qn_pipeline *pl, void *p) {
    if (!pl->moe_map) free(p);
}

static void *moe_store(const qn_pipeline *pl, int which, const float *x, int64_t n) {
    void *d = pl->moe_map ? moe_slot(pl, which, pl->cur_sample) : malloc((pl->bf16 ? 2 : 4) * (size_t)(n ? n : 1));
    if (d) rows_encode(pl, d, x, n);
    return d;
}

static void stats_hook(void *user, int64_t layer, qn_linear_id id, const float *x, int64_t T, int64_t in) {
    (void)layer;
    qn_pipeline *pl = user;
    if (id == QN_HOOK_K || id == QN_HOOK_V) {   /* keys after RoPE / values: the KV-cache ranges */
        if (pl->kv) {
            float *a = &pl->kv_amax[id == QN_HOOK_V];
            for (int64_t i = 0; i < T * in; i++) if (fabsf(x[i]) > *a) *a = fabsf(x[i]);
        }
        return;
    }
    if ((int)id < 0 || id >= QN_LIN_COUNT) return;
    int g = hgroup_of(id);
    if (pl->moe_in && id == QN_LIN_GATE && !pl->hook_st) {
        moe_release(pl, pl->moe_in[pl->cur_sample]);
        pl->moe_in[pl->cur_sample] = NULL;
        void *b = moe_store(pl, 0, x, T * in);
        if (!b) { pl->hook_st = qn_error_set(pl->hook_err, QN_ERR_NOMEM, "out of memory for the MoE inputs"); return; }
        pl->moe_in[pl->cur_sample] = b;
    }
    if (pl->want_range[g]) range_of(x, (size_t)(T * in), &pl->gmin[g], &pl->gmax[g]);
    if (!pl->want[g] || pl->hook_st) return;
    if (pl->h[g].n != in) return;
    pl->hook_st = qn_hessian_add(&pl->h[g], x, T, in, 1, pl->hook_err);
}

/* tr(D H Dᵀ) for D [rows, cols] with symmetric H: Σ_r d_r·(H d_r). */
static double quad_form(const float *d, int64_t rows, int64_t cols, const float *h, float *tmp) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)cols, 1.0f, d, (int)cols, h,
                (int)cols, 0.0f, tmp, (int)cols);
    double s = 0;
    for (int64_t i = 0; i < rows * cols; i++) s += (double)d[i] * (double)tmp[i];
    return s;
}

/* Relative output errors sqrt(tr(ΔW H ΔWᵀ) / tr(W H Wᵀ)) of two quantized versions wq1, wq2 of w
 * (H ∝ Σ xxᵀ, so this is ‖XΔWᵀ‖/‖XWᵀ‖); tr(W H Wᵀ) is computed once for both. The traces are sums
 * over output rows, so at most QN_ERROR_ROWS evenly spaced rows are used (exact below that): the
 * report then costs about QN_ERROR_ROWS/rows of a GPTQ sweep instead of three. */
#define QN_ERROR_ROWS 64
static qn_status rel_output_errors(const float *w, const float *wq1, const float *wq2, int64_t rows, int64_t cols,
                                   const float *h, double *e1, double *e2, qn_error *err) {
    int64_t nr = rows < QN_ERROR_ROWS ? rows : QN_ERROR_ROWS;
    size_t n = (size_t)(nr * cols);
    float *ws = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n), *tmp = malloc(sizeof(float) * n);
    if (!ws || !d || !tmp) { free(ws); free(d); free(tmp); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
    for (int64_t k = 0; k < nr; k++) memcpy(ws + k * cols, w + (k * rows / nr) * cols, sizeof(float) * (size_t)cols);
    double base = quad_form(ws, nr, cols, h, tmp);
    const float *wq[2] = {wq1, wq2};
    double *out[2] = {e1, e2};
    for (int q = 0; q < 2; q++) {
        for (int64_t k = 0; k < nr; k++) {
            const float *a = w + (k * rows / nr) * cols, *b = wq[q] + (k * rows / nr) * cols;
            for (int64_t j = 0; j < cols; j++) d[k * cols + j] = a[j] - b[j];
        }
        double e = quad_form(d, nr, cols, h, tmp);
        *out[q] = base > 0 ? sqrt(fmax(e, 0) / base) : 0;
    }
    free(ws);
    free(d);
    free(tmp);
    return QN_OK;
}

static qn_dtype weight_dtype(const qn_pipeline *pl, const char *module) {
    char name[400];
    snprintf(name, sizeof name, "%s.weight", module);
    const qn_tensor *t = qn_st_set_find(pl->m->tensors, name);
    if (t && (t->dtype == QN_DT_BF16 || t->dtype == QN_DT_F16)) return t->dtype;
    return QN_DT_F32;
}

static int mask_nm(const qn_modifier *md, int *n, int *m) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(md->params, "mask_structure");
    *n = *m = 0;
    return cJSON_IsString(v) && sscanf(v->valuestring, "%d:%d", n, m) == 2;
}

/* Which Linears each SparseGPTModifier prunes (its targets minus its ignore list), and the
 * sparsity_config that describes the result (compressed-tensors §3.8, format "dense": the pruned
 * zeros are stored densely, which current vLLM loads). */
static qn_status plan_pruning(qn_pipeline *pl, qn_error *err) {
    size_t n_mods = pl->n_mods;
    int64_t pruned = 0, pruned_params = 0, linears = 0;
    double zero_params = 0;
    char structure[32] = "unstructured";
    for (size_t k = 0; k < qn_recipe_modifier_count(pl->recipe); k++) {
        const qn_modifier *md = qn_recipe_modifier(pl->recipe, k);
        if (md->kind != QN_MOD_SPARSEGPT) continue;
        if (!pl->prune) {
            pl->prune = calloc(n_mods ? n_mods : 1, sizeof *pl->prune);
            if (!pl->prune) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        }
        const cJSON *targets = cJSON_GetObjectItemCaseSensitive(md->params, "targets");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(md->params, "sparsity");
        if (!cJSON_IsNumber(sp))
            return qn_error_set(err, QN_ERR_UNSUPPORTED, "SparseGPTModifier: a per-layer sparsity list is not supported yet (give one number)");
        int nn, mm;
        mask_nm(md, &nn, &mm);
        if (mm > 0) snprintf(structure, sizeof structure, "%d:%d", nn, mm);
        for (size_t i = 0; i < n_mods; i++) {
            int hit = 0;
            for (const cJSON *t = targets ? targets->child : NULL; t && !hit; t = t->next) {
                int r = qn_target_matches(t->valuestring, &pl->mods[i], err);
                if (r < 0) return QN_ERR_FORMAT;
                hit = r;
            }
            for (size_t g = 0; g < md->n_ignore && hit; g++) {
                int r = qn_target_matches(md->ignore[g], &pl->mods[i], err);
                if (r < 0) return QN_ERR_FORMAT;
                if (r) hit = 0;
            }
            if (!hit) continue;
            const char *nm = pl->mods[i].name;
            if (strstr(nm, ".mlp.experts.") || strstr(nm, ".mlp.shared_expert") || !strcmp(nm, "lm_head") ||
                strstr(nm, ".mlp.gate") == nm + strlen(nm) - 9)
                continue;   /* SparseGPT prunes the attention and dense MLP Linears of decoder layers */
            if (pl->plan->group_of[i] < 0)
                return qn_error_set(err, QN_ERR_UNSUPPORTED,
                                    "SparseGPTModifier: %s is pruned but not quantized; pruning alone is not supported yet "
                                    "(quantize it with a QuantizationModifier or GPTQModifier too, or add it to ignore)", nm);
            pl->prune[i] = md;
        }
    }
    if (!pl->prune) return QN_OK;
    for (size_t i = 0; i < n_mods; i++) {
        if (!strcmp(pl->mods[i].class_name, "Linear")) linears++;
        if (!pl->prune[i]) continue;
        int nn, mm;
        mask_nm(pl->prune[i], &nn, &mm);
        double frac = mm > 0 ? (double)nn / mm : cJSON_GetObjectItemCaseSensitive(pl->prune[i]->params, "sparsity")->valuedouble;
        pruned++;
        pruned_params += pl->mods[i].out * pl->mods[i].in;
        zero_params += frac * (double)(pl->mods[i].out * pl->mods[i].in);
    }
    if (!pruned) return qn_error_set(err, QN_ERR_FORMAT, "SparseGPTModifier: its targets match no prunable Linear");
    uint64_t total = 0;
    for (size_t i = 0; i < qn_st_set_count(pl->m->tensors); i++) total += (uint64_t)qn_tensor_numel(qn_st_set_get(pl->m->tensors, i));
    int bitmask = pl->opts.sparse24_bitmask;
    if (bitmask && strcmp(structure, "2:4")) {
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "--sparse-format sparse-24-bitmask needs mask_structure \"2:4\" (got %s)", structure);
    }
    if (bitmask) {
        pl->sparse24 = calloc(n_mods ? n_mods : 1, 1);
        if (!pl->sparse24) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n_mods; i++) pl->sparse24[i] = pl->prune[i] != NULL;
    }
    cJSON *o = cJSON_CreateObject(), *tg = cJSON_AddArrayToObject(o, "targets"), *ig = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "format", bitmask ? "sparse-24-bitmask" : "dense");
    cJSON_AddNumberToObject(o, "global_sparsity", total ? zero_params / (double)total : 0.0);
    cJSON_AddBoolToObject(o, "registry_requires_subclass", 0);
    cJSON_AddStringToObject(o, "sparsity_structure", structure);
    int by_class = pruned * 2 >= linears;   /* LLMC's inference: the class when at least half qualify */
    if (by_class) cJSON_AddItemToArray(tg, cJSON_CreateString("Linear"));
    for (size_t i = 0; i < n_mods; i++) {
        if (by_class && !pl->prune[i]) cJSON_AddItemToArray(ig, cJSON_CreateString(pl->mods[i].name));
        if (!by_class && pl->prune[i]) cJSON_AddItemToArray(tg, cJSON_CreateString(pl->mods[i].name));
    }
    cJSON_AddItemToObject(o, "ignore", ig);
    pl->sparsity_json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    (void)pruned_params;
    if (!pl->sparsity_json) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    return QN_OK;
}

const char *qn_pipeline_sparsity_config(const qn_pipeline *pl) { return pl->sparsity_json; }
const uint8_t *qn_pipeline_sparse24(const qn_pipeline *pl) { return pl->sparse24; }

/* SparseGPT of one Linear with Hessian h (copied), in place. */
static qn_status prune_linear(qn_pipeline *pl, long mi, qn_linear *lin, const float *h, qn_error *err) {
    const qn_modifier *md = pl->prune[mi];
    qn_sparsegpt_opts so;
    qn_sparsegpt_opts_init(&so);
    so.sparsity = cJSON_GetObjectItemCaseSensitive(md->params, "sparsity")->valuedouble;
    mask_nm(md, &so.prune_n, &so.prune_m);
    so.block_size = (int64_t)param_num(md, "block_size", 128);
    so.dampening_frac = param_num(md, "dampening_frac", 0.01);
    int64_t cols = lin->in;
    float *hc = malloc(sizeof(float) * (size_t)(cols * cols));
    if (!hc) return qn_error_set(err, QN_ERR_NOMEM, "out of memory for SparseGPT");
    memcpy(hc, h, sizeof(float) * (size_t)(cols * cols));
    qn_sparsegpt_report rep;
    qn_status st = qn_sparsegpt_prune(lin->w, lin->out, cols, hc, &so, NULL, NULL, &rep, err);
    free(hc);
    if (st) qn_error_prefix(err, "SparseGPT of %s", pl->mods[mi].name);
    else pl->stats.pruned_linears++;
    return st;
}

/* SmoothQuantModifier: which of the two default mappings apply (a recipe's mappings must name the
 * smooth layers input_layernorm / post_attention_layernorm; their balance layers are the Linears
 * that read those norms: q/k/v and gate/up). */
static qn_status plan_smoothquant(qn_pipeline *pl, qn_error *err) {
    for (size_t k = 0; k < qn_recipe_modifier_count(pl->recipe); k++) {
        const qn_modifier *md = qn_recipe_modifier(pl->recipe, k);
        if (md->kind != QN_MOD_SMOOTHQUANT) continue;
        if (pl->sq) return qn_error_set(err, QN_ERR_UNSUPPORTED, "recipe: more than one SmoothQuantModifier");
        pl->sq = md;
        const cJSON *maps = cJSON_GetObjectItemCaseSensitive(md->params, "mappings");
        if (!maps || cJSON_IsNull(maps)) {
            pl->sq_map[0] = pl->sq_map[1] = 1;
        } else {
            qn_module norms[2] = {{"model.layers.0.input_layernorm", "RMSNorm", 0, 0},
                                  {"model.layers.0.post_attention_layernorm", "RMSNorm", 0, 0}};
            for (const cJSON *e = maps->child; e; e = e->next) {
                const cJSON *sm = cJSON_GetArrayItem(e, 1);
                int hit = -1;
                for (int n = 0; n < 2 && hit < 0; n++) {
                    int r = qn_target_matches(sm->valuestring, &norms[n], err);
                    if (r < 0) return QN_ERR_FORMAT;
                    if (r) hit = n;
                }
                if (hit < 0)
                    return qn_error_set(err, QN_ERR_UNSUPPORTED, "SmoothQuantModifier: mapping smooth layer '%s' is not supported "
                                        "(supported: input_layernorm -> q/k/v_proj, post_attention_layernorm -> gate/up_proj)",
                                        sm->valuestring);
                pl->sq_map[hit] = 1;
            }
        }
        int64_t H = pl->m->cfg.hidden_size;
        for (int n = 0; n < 2; n++) {
            pl->sq_amax[n] = malloc(sizeof(float) * (size_t)H);
            pl->sq_norm[n] = malloc(sizeof(float) * (size_t)H);
            if (!pl->sq_amax[n] || !pl->sq_norm[n]) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        }
        pl->smoothed = calloc(pl->n_mods ? pl->n_mods : 1, 1);
        if (!pl->smoothed) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        pl->sq_layer = -1;
    }
    return QN_OK;
}

/* Keeps a module's rescaled (SmoothQuant / AWQ) weight, and bias, for the exporter: quantized
 * modules through quantize_linear (pl->smoothed), unquantized ones (an ignored gate_proj, the MoE
 * router, a smoothing-only recipe) as their new float weight via the tensor hook. */
static qn_status keep_modified(qn_pipeline *pl, const char *name, const qn_linear *lin, int bias, qn_error *err) {
    long mi = find_module(pl, name);
    if (mi < 0) return qn_error_set(err, QN_ERR_INTERNAL, "smoothing: no module %s", name);
    pl->smoothed[mi] = 1;
    result *r = &pl->res[mi];
    if (pl->plan->group_of[mi] < 0 || !pl->plan->groups[pl->plan->group_of[mi]].has_weights) {
        free(r->fw);
        if (!(r->fw = malloc(sizeof(float) * (size_t)(lin->out * lin->in)))) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        memcpy(r->fw, lin->w, sizeof(float) * (size_t)(lin->out * lin->in));
    }
    if (bias && lin->b) {
        free(r->fb);
        if (!(r->fb = malloc(sizeof(float) * (size_t)lin->out))) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        memcpy(r->fb, lin->b, sizeof(float) * (size_t)lin->out);
    }
    return QN_OK;
}

static qn_status keep_layer_linear(qn_pipeline *pl, int64_t L, qn_linear_id id, const qn_linear *lin, int bias, qn_error *err) {
    char name[256];
    snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)L, qn_linear_name(id));
    return keep_modified(pl, name, lin, bias, err);
}

/* Multiplies the columns of w [out, in] by s. */
static void scale_columns(float *w, int64_t out, int64_t in, const float *s) {
    for (int64_t r = 0; r < out; r++)
        for (int64_t j = 0; j < in; j++) w[r * in + j] *= s[j];
}

static void column_absmax(const float *w, int64_t out, int64_t in, float *mx) {
    for (int64_t r = 0; r < out; r++)
        for (int64_t j = 0; j < in; j++) mx[j] = fmaxf(mx[j], fabsf(w[r * in + j]));
}

static void sq_hook(void *user, int64_t layer, qn_linear_id id, const float *x, int64_t T, int64_t in) {
    (void)layer;
    qn_pipeline *pl = user;
    int n = id == QN_LIN_Q ? 0 : id == QN_LIN_GATE ? 1 : -1;
    if (n < 0 || !pl->sq_map[n] || in != pl->m->cfg.hidden_size) return;
    float *a = pl->sq_amax[n];
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < in; j++) {
            float v = fabsf(x[t * in + j]);
            if (v > a[j]) a[j] = v;
        }
}

#define QN_MIN_SMOOTHING_SCALE 1e-5f

/* SmoothQuant of layer L: s_j = max|X_j|^α / max|W_j|^(1-α) over the balance Linears (α =
 * smoothing_strength; where no weight is non-zero s_j = max|X_j|; clamped to >= 1e-5), the norm
 * weight divided by s and the balance Linears' columns multiplied by s: the layer computes the
 * same function with inputs that quantize better. */
static qn_status smooth_layer(qn_pipeline *pl, int64_t L, qn_layer *layer, qn_scratch *sc, float *tmp, qn_error *err) {
    const qn_model_config *c = &pl->m->cfg;
    int64_t H = c->hidden_size;
    double alpha = param_num(pl->sq, "smoothing_strength", 0.5);
    for (int n = 0; n < 2; n++) for (int64_t j = 0; j < H; j++) pl->sq_amax[n][j] = 0.0f;
    qn_status st = QN_OK;
    for (int64_t s = 0; s < pl->n_samples && !st; s++) {
        memcpy(tmp, act_load(pl, s), sizeof(float) * (size_t)(pl->len[s] * H));
        st = qn_layer_forward(c, layer, tmp, pl->len[s], 0, NULL, sc, sq_hook, pl, err);
    }
    if (st) return st;
    static const qn_linear_id bal[2][3] = {{QN_LIN_Q, QN_LIN_K, QN_LIN_V}, {QN_LIN_GATE, QN_LIN_UP, QN_LIN_COUNT}};
    float *wmax = malloc(sizeof(float) * (size_t)H), *sc_ = malloc(sizeof(float) * (size_t)H);
    if (!wmax || !sc_) { free(wmax); free(sc_); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
    for (int n = 0; n < 2 && !st; n++) {
        float *norm = n ? layer->mlp_norm : layer->attn_norm;
        memcpy(pl->sq_norm[n], norm, sizeof(float) * (size_t)H);
        if (!pl->sq_map[n]) continue;
        int moe = n == 1 && layer->is_moe;
        for (int64_t j = 0; j < H; j++) wmax[j] = 0.0f;
        /* the balance layers: every Linear that reads this norm's output — in an MoE block the
         * router, the shared expert's and every routed expert's gate/up (streamed) */
        if (!moe) {
            for (int b = 0; b < 3 && bal[n][b] != QN_LIN_COUNT; b++) column_absmax(layer->lin[bal[n][b]].w, layer->lin[bal[n][b]].out, H, wmax);
        } else {
            qn_moe *mo = &layer->moe;
            column_absmax(mo->router.w, mo->router.out, H, wmax);
            if (mo->has_shared) for (int p = 0; p < 2; p++) column_absmax(mo->shared[p].w, mo->shared[p].out, H, wmax);
            for (int64_t e = 0; e < mo->n_experts && !st; e++) {
                qn_linear ex[3];
                if ((st = qn_expert_load(pl->m, L, e, ex, err))) break;
                for (int p = 0; p < 2; p++) column_absmax(ex[p].w, ex[p].out, H, wmax);
                qn_expert_free(ex);
            }
            if (st) break;
        }
        for (int64_t j = 0; j < H; j++) {
            float a = pl->sq_amax[n][j];
            float sj = wmax[j] > 0.0f ? (float)(pow(a, alpha) / pow(wmax[j], 1.0 - alpha)) : a;
            if (!(sj >= QN_MIN_SMOOTHING_SCALE)) sj = QN_MIN_SMOOTHING_SCALE;
            sc_[j] = sj;
            norm[j] /= sj;
        }
        memcpy(pl->sq_norm[n], norm, sizeof(float) * (size_t)H);
        char name[256];
        if (!moe) {
            for (int b = 0; b < 3 && bal[n][b] != QN_LIN_COUNT && !st; b++) {
                qn_linear *lin = &layer->lin[bal[n][b]];
                scale_columns(lin->w, lin->out, H, sc_);
                st = keep_layer_linear(pl, L, bal[n][b], lin, 0, err);
            }
        } else {
            qn_moe *mo = &layer->moe;
            scale_columns(mo->router.w, mo->router.out, H, sc_);
            snprintf(name, sizeof name, "model.layers.%lld.mlp.gate", (long long)L);
            st = keep_modified(pl, name, &mo->router, 0, err);
            static const char *const gp[2] = {"gate_proj", "up_proj"};
            for (int p = 0; p < 2 && mo->has_shared && !st; p++) {
                scale_columns(mo->shared[p].w, mo->shared[p].out, H, sc_);
                snprintf(name, sizeof name, "model.layers.%lld.mlp.shared_experts.%s", (long long)L, gp[p]);
                st = keep_modified(pl, name, &mo->shared[p], 0, err);
            }
            /* the routed experts get the same column scales when they are streamed */
            if (!st && !pl->moe_sq && !(pl->moe_sq = malloc(sizeof(float) * (size_t)H))) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
            if (!st) { memcpy(pl->moe_sq, sc_, sizeof(float) * (size_t)H); pl->moe_sq_layer = L; }
        }
    }
    free(wmax);
    free(sc_);
    if (st) return st;
    pl->sq_layer = L;
    return QN_OK;
}

/* ---------- AWQ ---------- */

/* The four mapping kinds quench applies (llm-compressor's default list for the Llama family):
 * 0 input_layernorm -> q/k/v (parent: the attention block), 1 v_proj -> o_proj (parent o_proj;
 * skipped under grouped-query attention), 2 post_attention_layernorm -> gate/up (parent: the MLP),
 * 3 up_proj -> down_proj (parent down_proj). */
enum { AWQ_QKV, AWQ_VO, AWQ_GATEUP, AWQ_DOWN, AWQ_N };
static const char *const k_awq_smooth[AWQ_N] = {"input_layernorm", "self_attn.v_proj", "post_attention_layernorm",
                                                "mlp.up_proj"};

static qn_status plan_awq(qn_pipeline *pl, qn_error *err) {
    for (size_t k = 0; k < qn_recipe_modifier_count(pl->recipe); k++) {
        const qn_modifier *md = qn_recipe_modifier(pl->recipe, k);
        if (md->kind != QN_MOD_AWQ) continue;
        if (pl->awq) return qn_error_set(err, QN_ERR_UNSUPPORTED, "recipe: more than one AWQModifier");
        pl->awq = md;
        const cJSON *maps = cJSON_GetObjectItemCaseSensitive(md->params, "mappings");
        if (!maps || cJSON_IsNull(maps)) {
            for (int n = 0; n < AWQ_N; n++) pl->awq_map[n] = 1;
        } else {
            for (const cJSON *e = maps->child; e; e = e->next) {
                const cJSON *sm = cJSON_GetObjectItemCaseSensitive(e, "smooth_layer");
                int hit = -1;
                for (int n = 0; n < AWQ_N && hit < 0; n++) {
                    char name[128];
                    snprintf(name, sizeof name, "model.layers.0.%s", k_awq_smooth[n]);
                    qn_module mod = {name, n % 2 ? "Linear" : "RMSNorm", 0, 0};
                    int r = qn_target_matches(sm->valuestring, &mod, err);
                    if (r < 0) return QN_ERR_FORMAT;
                    if (r) hit = n;
                }
                if (hit < 0)
                    return qn_error_set(err, QN_ERR_UNSUPPORTED, "AWQModifier: mapping smooth_layer '%s' is not supported (supported: "
                                        "input_layernorm -> q/k/v_proj, v_proj -> o_proj, post_attention_layernorm -> "
                                        "gate/up_proj, up_proj -> down_proj)", sm->valuestring);
                pl->awq_map[hit] = 1;
            }
        }
        if (!pl->smoothed) pl->smoothed = calloc(pl->n_mods ? pl->n_mods : 1, 1);
        int64_t H = pl->m->cfg.hidden_size;
        for (int n = 0; n < 2; n++)
            if (!pl->sq_norm[n] && !(pl->sq_norm[n] = malloc(sizeof(float) * (size_t)H))) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        if (!pl->smoothed) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        pl->sq_layer = -1;
    }
    return QN_OK;
}

/* The AWQModifier's search options (n_grid, duo_scaling). */
static void awq_opts_of(const qn_pipeline *pl, qn_awq_opts *o) {
    qn_awq_opts_init(o);
    o->n_grid = (int)param_num(pl->awq, "n_grid", 20);
    const cJSON *duo = cJSON_GetObjectItemCaseSensitive(pl->awq->params, "duo_scaling");
    o->duo_scaling = cJSON_IsString(duo) ? QN_AWQ_DUO_BOTH : cJSON_IsFalse(duo) ? QN_AWQ_DUO_FALSE : QN_AWQ_DUO_TRUE;
}

static void awq_record(qn_pipeline *pl, const qn_awq_report *rep) {
    pl->stats.awq_mappings++;
    pl->stats.awq_loss += rep->best_loss;
    pl->stats.awq_loss_identity += rep->loss_identity;
}

typedef struct {
    qn_pipeline *pl;
    qn_layer *layer;
    qn_scratch *sc;
    int kind;
    const qn_linear_id *ids;
    int nb;
    float **orig;    /* [samples] the parent's original output */
    float **xin;     /* [samples] the MLP's normed input (kind AWQ_GATEUP) */
    float *buf;
} awq_ctx;

static qn_status awq_block_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err) {
    awq_ctx *a = user;
    qn_pipeline *pl = a->pl;
    const qn_model_config *c = &pl->m->cfg;
    float *saved[8];
    for (int b = 0; b < a->nb && b < n; b++) { saved[b] = a->layer->lin[a->ids[b]].w; a->layer->lin[a->ids[b]].w = (float *)wq[b]; }
    double sse = 0, cnt = 0;
    qn_status st = QN_OK;
    for (int64_t s = 0; s < pl->n_samples && !st; s++) {
        int64_t T = pl->len[s];
        st = a->kind == AWQ_QKV ? qn_layer_attn_forward(c, a->layer, act_load(pl, s), T, a->buf, a->sc, err)
                                : qn_layer_mlp_forward(c, a->layer, a->xin[s], T, a->buf, a->sc, err);
        if (st) break;
        sse += qn_awq_sse(a->buf, a->orig[s], (size_t)(T * c->hidden_size));
        cnt += (double)(T * c->hidden_size);
    }
    for (int b = 0; b < a->nb && b < n; b++) a->layer->lin[a->ids[b]].w = saved[b];
    *loss = cnt > 0 ? sse / cnt : 0;
    return st;
}

typedef struct {
    qn_pipeline *pl;
    qn_awq_xmean xm[AWQ_N];
    qn_hessian g[AWQ_N];   /* Gram of the o_proj / down_proj inputs */
    float **xin;           /* MLP normed inputs */
    const qn_layer *layer;
    float **orig_a, **orig_c;   /* the attention / MLP outputs of the same pass (o_proj, down_proj applied) */
    int64_t cur;
    qn_status st;
    qn_error *err;
} awq_stats;

/* Keeps lin(x) [T, out] as sample cur's parent output. */
static qn_status awq_keep_output(awq_stats *a, float **dst, const qn_linear *lin, const float *x, int64_t T) {
    free(dst[a->cur]);
    if (!(dst[a->cur] = malloc(sizeof(float) * (size_t)(T * lin->out))))
        return qn_error_set(a->err, QN_ERR_NOMEM, "out of memory for the AWQ outputs");
    return qn_linear_forward(lin, x, T, dst[a->cur], a->err);
}

static void awq_hook(void *user, int64_t layer, qn_linear_id id, const float *x, int64_t T, int64_t in) {
    (void)layer;
    awq_stats *a = user;
    if (a->st) return;
    if (id == QN_LIN_O && a->orig_a && (a->st = awq_keep_output(a, a->orig_a, &a->layer->lin[QN_LIN_O], x, T))) return;
    if (id == QN_LIN_DOWN && a->orig_c && (a->st = awq_keep_output(a, a->orig_c, &a->layer->lin[QN_LIN_DOWN], x, T))) return;
    int kind = id == QN_LIN_Q ? AWQ_QKV : id == QN_LIN_O ? AWQ_VO : id == QN_LIN_GATE ? AWQ_GATEUP : id == QN_LIN_DOWN ? AWQ_DOWN : -1;
    if (kind < 0 || !a->xm[kind].sum) return;
    if ((a->st = qn_awq_xmean_add(&a->xm[kind], x, T, in, a->err))) return;
    if (a->g[kind].h) a->st = qn_hessian_add(&a->g[kind], x, T, in, 1, a->err);
    if (kind == AWQ_GATEUP && a->xin) {
        float *b = malloc(sizeof(float) * (size_t)(T * in));
        if (!b) { a->st = qn_error_set(a->err, QN_ERR_NOMEM, "out of memory for the AWQ inputs"); return; }
        memcpy(b, x, sizeof(float) * (size_t)(T * in));
        free(a->xin[a->cur]);
        a->xin[a->cur] = b;
    }
}

/* AWQ of layer L (before SparseGPT / GPTQ / round-to-nearest): per mapping, mean |x| of the balance
 * layers' input, the grid search of the scales minimizing the parent's output error with the balance
 * weights quantized as their scheme says, then the fold: smooth layer / s, balance layers * s. The
 * statistics and the parents' original outputs come from one pass with the layer as it is (every
 * fold preserves the function). MoE layers: the attention mappings only. */
static qn_status awq_layer(qn_pipeline *pl, int64_t L, qn_layer *layer, qn_scratch *sc, float *tmp, qn_error *err) {
    const qn_model_config *c = &pl->m->cfg;
    int64_t H = c->hidden_size;
    static const qn_linear_id bal_ids[AWQ_N][3] = {{QN_LIN_Q, QN_LIN_K, QN_LIN_V}, {QN_LIN_O}, {QN_LIN_GATE, QN_LIN_UP}, {QN_LIN_DOWN}};
    static const int bal_n[AWQ_N] = {3, 1, 2, 1};
    int on[AWQ_N];
    qn_awq_balance bal[AWQ_N][3];
    for (int k = 0; k < AWQ_N; k++) {
        on[k] = pl->awq_map[k] && (k < AWQ_GATEUP || !layer->is_moe);
        if (k == AWQ_VO && on[k])
            on[k] = qn_awq_mapping_compatible("self_attn.v_proj", layer->lin[QN_LIN_V].out, "self_attn.o_proj", layer->lin[QN_LIN_O].in);
        int quantized = 0;
        for (int b = 0; b < bal_n[k] && on[k]; b++) {
            char name[256];
            snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)L, qn_linear_name(bal_ids[k][b]));
            long mi = find_module(pl, name);
            const qn_quant_scheme *sch = mi >= 0 && pl->plan->group_of[mi] >= 0 ? &pl->plan->groups[pl->plan->group_of[mi]] : NULL;
            int ign = 0;
            for (size_t g = 0; mi >= 0 && g < pl->awq->n_ignore && !ign; g++) {
                int r = qn_target_matches(pl->awq->ignore[g], &pl->mods[mi], err);
                if (r < 0) return QN_ERR_FORMAT;
                ign = r;
            }
            const qn_linear *lin = &layer->lin[bal_ids[k][b]];
            bal[k][b] = (qn_awq_balance){lin->w, lin->out, lin->in, sch && sch->has_weights && !ign ? &sch->weights : NULL,
                                         weight_dtype(pl, name)};
            quantized |= bal[k][b].args != NULL;
        }
        on[k] &= quantized;   /* as llm-compressor: a mapping none of whose balance layers is quantized is skipped */
        if (layer->is_moe && pl->awq_map[k] && k == AWQ_GATEUP) pl->stats.awq_skipped++;   /* AWQ_DOWN: per expert */
    }
    if (!(on[0] | on[1] | on[2] | on[3])) return QN_OK;
    if (pl->opts.progress) pl->opts.progress(pl->opts.progress_user, L, c->num_hidden_layers, "awq");
    awq_stats as = {.pl = pl, .err = err, .layer = layer};
    int64_t width[AWQ_N] = {H, c->num_attention_heads * c->head_dim, H, c->intermediate_size}, wmax = 0;
    for (int k = 0; k < AWQ_N; k++) if (width[k] > wmax) wmax = width[k];
    float **orig_a = NULL, **orig_c = NULL, *buf = malloc(sizeof(float) * (size_t)(pl->max_t * H));
    float *xmean = malloc(sizeof(float) * (size_t)(2 * wmax)), *scales = xmean ? xmean + wmax : NULL;
    qn_status st = buf && xmean ? QN_OK : qn_error_set(err, QN_ERR_NOMEM, "out of memory for AWQ");
    for (int k = 0; k < AWQ_N && !st; k++) {
        if (!on[k]) continue;
        st = qn_awq_xmean_init(&as.xm[k], width[k], err);
        if (!st && (k == AWQ_VO || k == AWQ_DOWN)) st = qn_hessian_init(&as.g[k], width[k], err);
    }
    if (!st && on[AWQ_QKV] && !(orig_a = calloc((size_t)pl->n_samples, sizeof *orig_a))) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    if (!st && on[AWQ_GATEUP] && (!(orig_c = calloc((size_t)pl->n_samples, sizeof *orig_c)) || !(as.xin = calloc((size_t)pl->n_samples, sizeof *as.xin))))
        st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    as.orig_a = orig_a;
    as.orig_c = orig_c;
    for (int64_t s = 0; s < pl->n_samples && !st; s++) {   /* one pass: statistics and the parents' outputs */
        int64_t T = pl->len[s];
        memcpy(tmp, act_load(pl, s), sizeof(float) * (size_t)(T * H));
        as.cur = s;
        if ((st = qn_layer_forward(c, layer, tmp, T, 0, NULL, sc, awq_hook, &as, err))) break;
        st = as.st;
    }
    for (int k = 0; k < AWQ_N && !st; k++) if (as.g[k].h) qn_hessian_finalize(&as.g[k]);
    qn_awq_opts o;
    awq_opts_of(pl, &o);
    for (int k = 0; k < AWQ_N && !st; k++) {
        if (!on[k]) continue;
        if ((st = qn_awq_xmean_finalize(&as.xm[k], xmean, err))) break;
        qn_awq_report rep;
        if (k == AWQ_VO || k == AWQ_DOWN) {
            qn_awq_gram_ctx g = {bal[k], bal_n[k], as.g[k].h, (double)as.g[k].nsamples / (2.0 * (double)as.xm[k].count)};
            st = qn_awq_search(bal[k], bal_n[k], NULL, xmean, &o, qn_awq_gram_loss, &g, scales, &rep, err);
        } else {
            awq_ctx a = {pl, layer, sc, k, bal_ids[k], bal_n[k], k == AWQ_QKV ? orig_a : orig_c, as.xin, buf};
            st = qn_awq_search(bal[k], bal_n[k], NULL, xmean, &o, awq_block_loss, &a, scales, &rep, err);
        }
        if (st) { qn_error_prefix(err, "AWQ of layer %lld (%s)", (long long)L, k_awq_smooth[k]); break; }
        awq_record(pl, &rep);
        /* the fold */
        char nn[256];
        if (k == AWQ_QKV || k == AWQ_GATEUP) {
            snprintf(nn, sizeof nn, "model.layers.%lld.%s", (long long)L, k_awq_smooth[k]);
            st = qn_awq_scale_norm(k == AWQ_QKV ? layer->attn_norm : layer->mlp_norm, H, scales, weight_dtype(pl, nn), err);
        } else {
            qn_linear_id sid = k == AWQ_VO ? QN_LIN_V : QN_LIN_UP;
            qn_linear *sl = &layer->lin[sid];
            snprintf(nn, sizeof nn, "model.layers.%lld.%s", (long long)L, qn_linear_name(sid));
            if (!(st = qn_awq_scale_smooth_rows(sl->w, sl->out, sl->in, sl->b, scales, sl->out, weight_dtype(pl, nn), err)))
                st = keep_layer_linear(pl, L, sid, sl, 1, err);
        }
        for (int b = 0; b < bal_n[k] && !st; b++) {
            qn_linear *lin = &layer->lin[bal_ids[k][b]];
            if (!(st = qn_awq_scale_balance(lin->w, lin->out, lin->in, scales, bal[k][b].dtype, err)))
                st = keep_layer_linear(pl, L, bal_ids[k][b], lin, 0, err);
        }
    }
    memcpy(pl->sq_norm[0], layer->attn_norm, sizeof(float) * (size_t)H);
    memcpy(pl->sq_norm[1], layer->mlp_norm, sizeof(float) * (size_t)H);
    pl->sq_layer = L;
    for (int64_t s = 0; s < pl->n_samples; s++) {
        if (orig_a) free(orig_a[s]);
        if (orig_c) free(orig_c[s]);
        if (as.xin) free(as.xin[s]);
    }
    free(orig_a); free(orig_c); free(as.xin); free(buf); free(xmean);
    for (int k = 0; k < AWQ_N; k++) { qn_awq_xmean_free(&as.xm[k]); qn_hessian_free(&as.g[k]); }
    return st;
}

/* Quantizes one Linear of the resident layer: GPTQ with Hessian h (h != NULL) — the result is
 * kept for the exporter — or round-to-nearest fake quantization (h == NULL); either way lin->w
 * becomes the quantized weight so the quantized outputs propagate. */
#define QN_GPTQ_F64_MAX_COLS 8192

/* The GPTQ options of a modifier. */
static void gptq_opts_of(const qn_modifier *md, qn_gptq_opts *go) {
    qn_gptq_opts_init(go);
    go->block_size = (int64_t)param_num(md, "block_size", 128);
    go->dampening_frac = param_num(md, "dampening_frac", 0.01);
}

static qn_status quantize_linear(qn_pipeline *pl, long mi, qn_linear *lin, const float *h, qn_gptq_factor **fac,
                                 qn_error *err) {
    const qn_quant_scheme *sch = &pl->plan->groups[pl->plan->group_of[mi]];
    if (!sch->has_weights) return QN_OK;
    qn_dtype dt = weight_dtype(pl, pl->mods[mi].name);
    int64_t rows = lin->out, cols = lin->in;
    size_t n = (size_t)(rows * cols);
    qn_status st = QN_OK;
    if (h) {
        const qn_modifier *md = modifier_of_group(pl, pl->plan->group_of[mi]);
        result *r = &pl->res[mi];
        float *hcopy = fac ? NULL : malloc(sizeof(float) * (size_t)(cols * cols));
        float *rtn = malloc(sizeof(float) * n);
        r->w = malloc(sizeof(float) * n);
        int group_ord = sch->weights.actorder == QN_ACTORDER_GROUP || sch->weights.actorder == QN_ACTORDER_DYNAMIC;
        if (group_ord) r->g_idx = malloc(sizeof(int32_t) * (size_t)cols);
        if ((!fac && !hcopy) || !rtn || !r->w || (group_ord && !r->g_idx)) {
            free(hcopy);
            free(rtn);
            return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory for GPTQ", pl->mods[mi].name);
        }
        memcpy(r->w, lin->w, sizeof(float) * n);
        qn_gptq_opts go;
        gptq_opts_of(md, &go);
        /* the double-precision factor costs 2x the Hessian's memory: above QN_GPTQ_F64_MAX_COLS
         * inputs (GLM-4.5-Air's o_proj reads 12288) factor in fp32, as llm-compressor always does */
        if (cols > QN_GPTQ_F64_MAX_COLS) go.factor_f64 = 0;
        qn_gptq_report rep;
        if (fac) {   /* Linears reading one input share one factor of H (computed once) */
            if (!*fac) st = qn_gptq_factor_create(h, cols, &go, fac, err);
            qn_gptq_target tg = {r->w, rows, &sch->weights, &r->p, r->g_idx, NULL, &rep};
            if (!st) st = qn_gptq_factor_quantize(*fac, &tg, dt, err);
        } else {
            memcpy(hcopy, h, sizeof(float) * (size_t)(cols * cols));
            st = qn_gptq_quantize(r->w, rows, cols, hcopy, &sch->weights, dt, &go, &r->p, r->g_idx, NULL, &rep, err);
        }
        free(hcopy);
        if (st) {
            free(rtn);
            qn_error_prefix(err, "GPTQ of %s", pl->mods[mi].name);
            return st;
        }
        r->ready = 1;
        /* round-to-nearest of the same scheme, for the error comparison */
        qn_qparams rp;
        memcpy(rtn, lin->w, sizeof(float) * n);
        if (!(st = qn_qparams_init(&rp, &sch->weights, dt, rows, cols, err))) {
            if (rp.args.strategy == QN_STRATEGY_TENSOR_GROUP) rp.global_scale = qn_nvfp4_global_scale(qn_quant_absmax(rtn, rows, cols, cols));
            if (!(st = qn_qparams_observe(&rp, rtn, cols, 0, cols, err))) st = qn_quant_fake(&rp, rtn, cols, 0, cols, err);
            qn_qparams_free(&rp);
        }
        if (!st) {
            qn_pipeline_linear *pli = &pl->lin[mi];
            pli->gptq = 1;
            st = rel_output_errors(lin->w, r->w, rtn, rows, cols, h, &pli->rel_error, &pli->rtn_rel_error, err);
            pli->damp_frac = rep.damp_frac;
            pli->retries = rep.retries;
            pli->dead = rep.dead;
            pl->stats.gptq_linears++;
        }
        free(rtn);
        if (st) return st;
        memcpy(lin->w, r->w, sizeof(float) * n);   /* propagate the quantized layer */
    } else if ((pl->prune && pl->prune[mi]) || (pl->smoothed && pl->smoothed[mi])) {
        /* pruned or smoothed, then round-to-nearest: the exporter gets the new weight and its scales */
        result *r = &pl->res[mi];
        r->w = malloc(sizeof(float) * n);
        if (!r->w) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        memcpy(r->w, lin->w, sizeof(float) * n);
        if ((st = qn_qparams_init(&r->p, &sch->weights, dt, rows, cols, err))) return st;
        r->ready = 1;
        if (r->p.args.strategy == QN_STRATEGY_TENSOR_GROUP) r->p.global_scale = qn_nvfp4_global_scale(qn_quant_absmax(lin->w, rows, cols, cols));
        if (!(st = qn_qparams_observe(&r->p, lin->w, cols, 0, cols, err))) st = qn_quant_fake(&r->p, lin->w, cols, 0, cols, err);
        if (st) return st;
    } else {
        qn_qparams rp;
        if ((st = qn_qparams_init(&rp, &sch->weights, dt, rows, cols, err))) return st;
        if (rp.args.strategy == QN_STRATEGY_TENSOR_GROUP) rp.global_scale = qn_nvfp4_global_scale(qn_quant_absmax(lin->w, rows, cols, cols));
        if (!(st = qn_qparams_observe(&rp, lin->w, cols, 0, cols, err))) st = qn_quant_fake(&rp, lin->w, cols, 0, cols, err);
        qn_qparams_free(&rp);
        if (st) return st;
    }
    if (sch->has_input_activations && sch->input_activations.dynamic == QN_DYNAMIC_TRUE) {
        lin->in_act = &sch->input_activations;   /* quantized activations propagate too */
        lin->act_dtype = dt;
    }
    return QN_OK;
}

/* The GPTQ targets among an expert's (or the shared expert's) three Linears; *any set when one is. */
static void expert_modules(const qn_pipeline *pl, const char *prefix, long mi[3], int gptq[3], int *any) {
    static const char *const proj[3] = {"gate_proj", "up_proj", "down_proj"};
    for (int p = 0; p < 3; p++) {
        char name[320];
        snprintf(name, sizeof name, "%s.%s", prefix, proj[p]);
        mi[p] = find_module(pl, name);
        gptq[p] = 0;
        if (mi[p] >= 0 && pl->plan->group_of[mi[p]] < 0) mi[p] = -1;
        if (mi[p] < 0) continue;
        const qn_modifier *md = modifier_of_group(pl, pl->plan->group_of[mi[p]]);
        gptq[p] = md && md->kind == QN_MOD_GPTQ && pl->plan->groups[pl->plan->group_of[mi[p]]].has_weights;
        *any |= gptq[p] || mi[p] >= 0;
    }
}

/* AWQ of one expert's up_proj -> down_proj: the grid search with the Gram loss of the down input
 * (hd), the fold (up rows / s, down columns * s, in the model dtype), and hd rescaled to the
 * smoothed input (H_ij / (s_i s_j)) for the GPTQ that follows. */
static qn_status awq_expert_down(qn_pipeline *pl, const char *prefix, qn_linear lin[3], qn_hessian *hd,
                                 const qn_awq_xmean *axm, qn_error *err) {
    int64_t inter = lin[2].in;
    char nd[320], nu[320];
    snprintf(nd, sizeof nd, "%s.down_proj", prefix);
    snprintf(nu, sizeof nu, "%s.up_proj", prefix);
    long md = find_module(pl, nd);
    const qn_quant_scheme *sch = &pl->plan->groups[pl->plan->group_of[md]];
    qn_awq_balance b = {lin[2].w, lin[2].out, inter, &sch->weights, weight_dtype(pl, nd)};
    float *xmean = malloc(sizeof(float) * (size_t)inter * 2), *sc = xmean ? xmean + inter : NULL;
    if (!xmean) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    qn_awq_opts o;
    awq_opts_of(pl, &o);
    qn_awq_report rep;
    qn_awq_gram_ctx g = {&b, 1, hd->h, (double)hd->nsamples / (2.0 * (double)axm->count)};
    qn_status st = qn_awq_xmean_finalize(axm, xmean, err);
    if (!st) st = qn_awq_search(&b, 1, NULL, xmean, &o, qn_awq_gram_loss, &g, sc, &rep, err);
    if (!st) st = qn_awq_scale_smooth_rows(lin[1].w, lin[1].out, lin[1].in, NULL, sc, lin[1].out, weight_dtype(pl, nu), err);
    if (!st) st = qn_awq_scale_balance(lin[2].w, lin[2].out, inter, sc, b.dtype, err);
    if (!st) st = keep_modified(pl, nu, &lin[1], 0, err);
    if (!st) st = keep_modified(pl, nd, &lin[2], 0, err);
    if (!st) {
        for (int64_t i = 0; i < inter; i++)
            for (int64_t j = 0; j < inter; j++) hd->h[i * inter + j] /= sc[i] * sc[j];
        awq_record(pl, &rep);
    } else {
        qn_error_prefix(err, "AWQ of %s", nd);
    }
    free(xmean);
    return st;
}

/* MoE layer, every calibration token through every expert (llm-compressor's calibrate-all-experts):
 * all experts' gate/up see the same input, the MoE block's normed input, so they share ONE Hessian
 * (pl->h[HG_GATEUP], accumulated by the statistics pass); each expert's down_proj gets its own,
 * from silu(x·W_gateᵀ)·(x·W_upᵀ) of all tokens with the original weights. Static input ranges of
 * the expert's Linears come from the same rows. lin = the expert's gate/up/down, quantized in place
 * (the propagation then uses the quantized expert). */
static qn_status calibrate_expert(qn_pipeline *pl, int64_t L, int64_t e, qn_linear lin[3], qn_error *err) {
    const qn_model_config *c = &pl->m->cfg;
    void **xs = pl->moe.xs;
    const float *hgu = pl->want[HG_GATEUP] ? pl->h[HG_GATEUP].h : NULL;
    char prefix[256];
    if (e < 0) snprintf(prefix, sizeof prefix, "model.layers.%lld.mlp.shared_experts", (long long)L);
    else snprintf(prefix, sizeof prefix, "model.layers.%lld.mlp.experts.%lld", (long long)L, (long long)e);
    long mi[3];
    int gq[3], any = 0;
    expert_modules(pl, prefix, mi, gq, &any);
    if (!any) return QN_OK;
    int rng[3];
    for (int p = 0; p < 3; p++) rng[p] = static_input(pl, mi[p]);
    float mn[2] = {INFINITY, INFINITY}, mx[2] = {-INFINITY, -INFINITY};   /* gate/up input, down input */
    qn_hessian hd = {0}, hg = {0};
    int routed = pl->moe.routes && e >= 0;   /* statistics from the tokens routed to this expert only */
    int64_t seen = 0;
    const int64_t H = c->hidden_size, k = pl->moe.layer.moe.top_k;
    qn_status st = QN_OK;
    /* AWQ up_proj -> down_proj of this expert (parent: its down_proj; loss from the down input's Gram) */
    int awq_down = pl->awq && pl->awq_map[AWQ_DOWN] && mi[1] >= 0 && mi[2] >= 0 && xs &&
                   pl->plan->groups[pl->plan->group_of[mi[2]]].has_weights;
    qn_awq_xmean axm = {0};
    int need_down = gq[2] || rng[2] || awq_down;
    if ((gq[0] || gq[1] || need_down || rng[0] || rng[1]) && xs) {
        int64_t inter = lin[0].out;
        float *g = malloc(sizeof(float) * (size_t)(pl->max_t * inter)), *u = malloc(sizeof(float) * (size_t)(pl->max_t * inter));
        float *xr = routed ? malloc(sizeof(float) * (size_t)(pl->max_t * H)) : NULL;
        float *xb = pl->bf16 ? malloc(sizeof(float) * (size_t)(pl->max_t * H)) : NULL;
        if (!g || !u || (routed && !xr) || (pl->bf16 && !xb)) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory for expert activations");
        if (!st && (gq[2] || awq_down)) st = qn_hessian_init(&hd, inter, err);
        if (!st && awq_down) st = qn_awq_xmean_init(&axm, inter, err);
        if (!st && routed && (gq[0] || gq[1])) st = qn_hessian_init(&hg, H, err);
        for (int64_t s = 0; s < pl->n_samples && !st; s++) {
            int64_t T = pl->len[s];
            const float *x = rows_decode(pl, xs[s], T * H, xb), *xall = x;
            if (routed) {   /* gather the rows routed to e */
                int64_t n = 0;
                for (int64_t t = 0; t < T; t++)
                    for (int64_t j = 0; j < k; j++)
                        if (pl->moe.routes[s] && pl->moe.routes[s][t * k + j] == e) { memcpy(xr + n * H, xall + t * H, sizeof(float) * H); n++; break; }
                if (!n) continue;
                T = n;
                x = xr;
                if (hg.n && (st = qn_hessian_add(&hg, x, T, H, 1, err))) break;
            }
            seen += T;
            if (rng[0] || rng[1]) range_of(x, (size_t)(T * H), &mn[0], &mx[0]);
            if (!need_down) continue;
            if (!(st = qn_linear_forward(&lin[0], x, T, g, err)) && !(st = qn_linear_forward(&lin[1], x, T, u, err))) {
                for (int64_t i = 0; i < T * inter; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
                if (rng[2]) range_of(g, (size_t)(T * inter), &mn[1], &mx[1]);
                if (hd.n) st = qn_hessian_add(&hd, g, T, inter, 1, err);
                if (!st && awq_down) st = qn_awq_xmean_add(&axm, g, T, inter, err);
            }
        }
        if (!st && hd.n) qn_hessian_finalize(&hd);
        if (!st && awq_down && axm.count > 0) st = awq_expert_down(pl, prefix, lin, &hd, &axm, err);
        qn_awq_xmean_free(&axm);
        if (!st && hg.n) qn_hessian_finalize(&hg);
        free(g);
        free(u);
        free(xr);
        free(xb);
    } else if (!routed && pl->want[HG_GATEUP] && (rng[0] || rng[1]) && pl->gmin[HG_GATEUP] <= pl->gmax[HG_GATEUP]) {
        mn[0] = pl->gmin[HG_GATEUP];
        mx[0] = pl->gmax[HG_GATEUP];
    }
    for (int p = 0; p < 3; p++) {
        int r = p == 2;
        if (rng[p] && mn[r] <= mx[r]) set_range(pl, mi[p], mn[r], mx[r]);
    }
    int no_data = routed && seen == 0;   /* an expert no calibration token was routed to: RTN */
    if (no_data && (gq[0] || gq[1] || gq[2])) pl->stats.rtn_fallback_experts++;
    for (int p = 0; p < 3 && !st; p++) {
        if (mi[p] < 0) continue;
        const float *h = !gq[p] || no_data ? NULL : p < 2 ? (routed ? hg.h : hgu) : (xs ? hd.h : NULL);
        /* all experts' gate/up (and the shared expert's) read the MoE input: one factor per layer */
        st = quantize_linear(pl, mi[p], &lin[p], h, h && h == hgu ? &pl->moe.fac : NULL, err);
    }
    qn_hessian_free(&hd);
    qn_hessian_free(&hg);
    return st;
}

/* Frees the state of the MoE layer in progress. */
static void moe_clear(qn_pipeline *pl) {
    moe_state *ms = &pl->moe;
    for (int64_t i = 0; i < pl->n_samples; i++) {
        if (ms->xs) moe_release(pl, ms->xs[i]);
        if (ms->xp) moe_release(pl, ms->xp[i]);
        if (ms->acc) free(ms->acc[i]);
        if (ms->rsel) free(ms->rsel[i]);
        if (ms->rw) free(ms->rw[i]);
        if (ms->routes) free(ms->routes[i]);
    }
    free(ms->xs); free(ms->xp); free(ms->acc); free(ms->rsel); free(ms->rw); free(ms->routes);
    free(ms->done);
    qn_gptq_factor_free(ms->fac);
    qn_scratch_free(ms->sc);
    if (ms->L >= 0) qn_layer_free(&ms->layer);
    for (int g = 0; g < HG_N; g++) qn_hessian_free(&pl->h[g]);
    memset(ms, 0, sizeof *ms);
    ms->L = -1;
    pl->moe_in = NULL;
}

/* Routed expert e of the MoE layer in progress: load it (fp32), calibrate and quantize it, add its
 * quantized output to the propagation, free it. One expert's weights are resident at a time. */
static qn_status moe_expert(qn_pipeline *pl, int64_t e, qn_error *err) {
    moe_state *ms = &pl->moe;
    if (ms->L < 0 || e < 0 || e >= ms->layer.moe.n_experts || ms->done[e]) return QN_OK;
    const qn_model_config *c = &pl->m->cfg;
    int64_t L = ms->L;
    qn_linear ex[3];
    double t0 = now_s();
    qn_status st = qn_expert_load(pl->m, L, e, ex, err);
    if (st) return st;
    if (pl->moe_sq && pl->moe_sq_layer == L) {   /* SmoothQuant of the MoE block: its columns too */
        static const char *const gp[2] = {"gate_proj", "up_proj"};
        for (int p = 0; p < 2 && !st; p++) {
            char name[256];
            snprintf(name, sizeof name, "model.layers.%lld.mlp.experts.%lld.%s", (long long)L, (long long)e, gp[p]);
            scale_columns(ex[p].w, ex[p].out, ex[p].in, pl->moe_sq);
            st = keep_modified(pl, name, &ex[p], 0, err);
        }
    }
    if (!st) st = calibrate_expert(pl, L, e, ex, err);
    pl->stats.seconds_gptq += now_s() - t0;
    t0 = now_s();
    float *xb = !st && pl->bf16 ? malloc(sizeof(float) * (size_t)(pl->max_t * c->hidden_size)) : NULL;
    if (!st && pl->bf16 && !xb) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    for (int64_t s = 0; s < pl->n_samples && !st; s++) {
        float *x = ms->acc ? ms->acc[s] : pl->x[s];
        const float *xn = rows_decode(pl, ms->xp[s], pl->len[s] * c->hidden_size, xb);
        st = qn_moe_expert_add(c, ex, e, xn, pl->len[s], ms->rsel[s], ms->rw[s], ms->layer.moe.top_k, x, ms->sc, err);
    }
    free(xb);
    pl->stats.seconds_forward += now_s() - t0;
    qn_expert_free(ex);
    if (st) return st;
    ms->done[e] = 1;
    ms->n_done++;
    pl->stats.experts_streamed++;
    if (pl->opts.progress && (ms->n_done % 16 == 0 || ms->n_done == ms->layer.moe.n_experts))
        pl->opts.progress(pl->opts.progress_user, L, c->num_hidden_layers, "experts");
    return QN_OK;
}

/* Finishes the MoE layer in progress: the experts not asked for yet, then the layer's output. */
static qn_status moe_end(qn_pipeline *pl, qn_error *err) {
    moe_state *ms = &pl->moe;
    if (ms->L < 0) return QN_OK;
    qn_status st = QN_OK;
    for (int64_t e = 0; e < ms->layer.moe.n_experts && !st; e++) st = moe_expert(pl, e, err);
    if (!st && ms->acc)
        for (int64_t s = 0; s < pl->n_samples; s++) act_store(pl, s, ms->acc[s]);
    moe_clear(pl);
    return st;
}

static void prop_hook(void *user, int64_t layer, qn_linear_id id, const float *x, int64_t T, int64_t in) {
    (void)layer;
    qn_pipeline *pl = user;
    if (id != QN_LIN_GATE || !pl->moe.xp || pl->hook_st) return;
    moe_release(pl, pl->moe.xp[pl->cur_sample]);
    pl->moe.xp[pl->cur_sample] = NULL;
    void *b = moe_store(pl, 1, x, T * in);
    if (!b) { pl->hook_st = qn_error_set(pl->hook_err, QN_ERR_NOMEM, "out of memory for the MoE inputs"); return; }
    pl->moe.xp[pl->cur_sample] = b;
}

/* Runs decoder layer L: statistics, GPTQ, propagation. An MoE layer is only begun: its attention,
 * router and shared expert are done here, the routed experts one at a time by moe_expert (as the
 * exporter asks for them) and the rest by moe_end. */
static qn_status run_layer(qn_pipeline *pl, int64_t L, qn_error *err) {
    const qn_model_config *c = &pl->m->cfg;
    int64_t H = c->hidden_size;
    qn_status st = moe_end(pl, err);
    if (st) return st;
    moe_state *ms = &pl->moe;
    qn_layer layer;
    qn_scratch *sc = NULL;
    float *tmp = NULL;
    void **xs = NULL;
    int32_t **routes = NULL;
    int is_moe = qn_config_layer_is_moe(c, L);
    if ((st = qn_layer_load_ex(pl->m, L, QN_LOAD_NO_EXPERTS, &layer, err))) return st;
    long mi_of[QN_LIN_COUNT];
    int gptq_of[QN_LIN_COUNT];
    qn_gptq_factor *fac[HG_N] = {0};   /* q/k/v and gate/up: one factor of their shared Hessian */
    memset(pl->want, 0, sizeof pl->want);
    memset(pl->want_range, 0, sizeof pl->want_range);
    for (int g = 0; g < HG_N; g++) { pl->gmin[g] = INFINITY; pl->gmax[g] = -INFINITY; }
    for (int id = 0; id < QN_LIN_COUNT; id++) {
        mi_of[id] = -1;
        gptq_of[id] = 0;
        if (!layer.lin[id].w) continue;
        char name[256];
        snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)L, qn_linear_name((qn_linear_id)id));
        long mi = find_module(pl, name);
        if (mi < 0 || pl->plan->group_of[mi] < 0) continue;
        mi_of[id] = mi;
        const qn_modifier *md = modifier_of_group(pl, pl->plan->group_of[mi]);
        if (md && md->kind == QN_MOD_GPTQ && pl->plan->groups[pl->plan->group_of[mi]].has_weights) {
            gptq_of[id] = 1;
            pl->want[hgroup_of((qn_linear_id)id)] = 1;
        }
        if (pl->prune && pl->prune[mi]) pl->want[hgroup_of((qn_linear_id)id)] = 1;
        if (static_input(pl, mi)) pl->want_range[hgroup_of((qn_linear_id)id)] = 1;
    }
    if (is_moe) {   /* which expert Linears need statistics */
        int need_x = 0;
        for (int64_t e = -1; e < layer.moe.n_experts; e++) {
            char prefix[256];
            if (e < 0 && !layer.moe.has_shared) continue;
            if (e < 0) snprintf(prefix, sizeof prefix, "model.layers.%lld.mlp.shared_experts", (long long)L);
            else snprintf(prefix, sizeof prefix, "model.layers.%lld.mlp.experts.%lld", (long long)L, (long long)e);
            long emi[3];
            int gq[3], any = 0;
            expert_modules(pl, prefix, emi, gq, &any);
            if (gq[0] || gq[1]) pl->want[HG_GATEUP] = 1;
            need_x |= gq[2] || static_input(pl, emi[2]);
            if (pl->awq && pl->awq_map[AWQ_DOWN] && emi[1] >= 0 && emi[2] >= 0) need_x = 1;   /* AWQ up -> down */
            if (static_input(pl, emi[0]) || static_input(pl, emi[1])) {
                pl->want_range[HG_GATEUP] = 1;
                if (pl->opts.routed_only) need_x = 1;
            }
        }
        if (pl->opts.routed_only && pl->want[HG_GATEUP]) need_x = 1;   /* per-expert gate/up need the inputs too */
        if (need_x) {
            xs = calloc((size_t)pl->n_samples, sizeof *xs);
            if (!xs) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
            pl->moe_in = xs;
        }
        if (need_x && pl->opts.routed_only) {
            routes = calloc((size_t)pl->n_samples, sizeof *routes);
            if (!routes) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
        }
    }
    for (int g = 0; g < HG_N; g++) {
        if (!pl->want[g]) continue;
        int64_t in = g == HG_QKV || g == HG_GATEUP ? H : g == HG_O ? c->num_attention_heads * c->head_dim : c->intermediate_size;
        if ((st = qn_hessian_init(&pl->h[g], in, err))) goto done;
    }
    if ((st = qn_scratch_create(c, pl->max_t, pl->max_t, &sc, err))) goto done;
    tmp = malloc(sizeof(float) * (size_t)(pl->max_t * H));
    if (!tmp) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto done; }
    int any = 0;
    for (int g = 0; g < HG_N; g++) any |= pl->want[g] | pl->want_range[g];
    any |= xs != NULL || pl->kv != NULL;
    pl->kv_amax[0] = pl->kv_amax[1] = 0.0f;
    double t0 = now_s();
    if (pl->sq) {
        if (pl->opts.progress) pl->opts.progress(pl->opts.progress_user, L, c->num_hidden_layers, "smoothquant");
        if ((st = smooth_layer(pl, L, &layer, sc, tmp, err))) goto done;
    }
    if (pl->awq) {
        double ta = now_s();
        st = awq_layer(pl, L, &layer, sc, tmp, err);
        pl->stats.seconds_awq += now_s() - ta;
        if (st) goto done;
    }
    if (any) {
        if (pl->opts.progress) pl->opts.progress(pl->opts.progress_user, L, c->num_hidden_layers, "statistics");
        pl->hook_err = err;
        pl->hook_st = QN_OK;
        for (int64_t s = 0; s < pl->n_samples && !st; s++) {
            memcpy(tmp, act_load(pl, s), sizeof(float) * (size_t)(pl->len[s] * H));
            pl->cur_sample = s;
            st = qn_layer_forward(c, &layer, tmp, pl->len[s], 0, NULL, sc, stats_hook, pl, err);
            if (!st && routes) {
                const int32_t *sel;
                const float *wts;
                int64_t k = qn_scratch_last_routing(sc, &sel, &wts);
                routes[s] = malloc(sizeof(int32_t) * (size_t)(pl->len[s] * (k ? k : 1)));
                if (!routes[s]) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory for the routing");
                else memcpy(routes[s], sel, sizeof(int32_t) * (size_t)(pl->len[s] * k));
            }
            if (!st) st = pl->hook_st;
        }
        if (st) goto done;
        for (int g = 0; g < HG_N; g++) if (pl->want[g]) qn_hessian_finalize(&pl->h[g]);
    }
    pl->stats.seconds_forward += now_s() - t0;
    /* GPTQ (and RTN fake quantization of the other quantized Linears, for the propagation) */
    t0 = now_s();
    if (pl->opts.progress) pl->opts.progress(pl->opts.progress_user, L, c->num_hidden_layers, "gptq");
    for (int id = 0; id < QN_LIN_COUNT; id++) {
        int g = hgroup_of((qn_linear_id)id);
        if (static_input(pl, mi_of[id]) && pl->gmin[g] <= pl->gmax[g]) set_range(pl, mi_of[id], pl->gmin[g], pl->gmax[g]);
    }
    if (pl->kv) {   /* k_scale / v_scale = amax / 448, in the model dtype (compressed-tensors §4.2) */
        char qn[256];
        snprintf(qn, sizeof qn, "model.layers.%lld.self_attn.q_proj", (long long)L);
        qn_dtype dt = weight_dtype(pl, qn);
        for (int k = 0; k < 2 && !st; k++) {
            float mn = -pl->kv_amax[k], mx = pl->kv_amax[k], scale = 0;
            st = qn_quant_calc_qparams(pl->kv, dt, &mn, &mx, 1, 0.0f, &scale, NULL, err);
            (k ? pl->v_scale : pl->k_scale)[L] = scale;
        }
        if (st) goto done;
        layer.k_scale = pl->k_scale[L];   /* the quantized cache propagates too */
        layer.v_scale = pl->v_scale[L];
    }
    for (int id = 0; id < QN_LIN_COUNT && !st; id++) {
        long mi = mi_of[id];
        if (mi < 0) continue;
        const float *h = pl->h[hgroup_of((qn_linear_id)id)].h;
        if (pl->prune && pl->prune[mi] && (st = prune_linear(pl, mi, &layer.lin[id], h, err))) break;
        int g = hgroup_of((qn_linear_id)id), users = 0;
        for (int j = 0; j < QN_LIN_COUNT; j++) users += gptq_of[j] && hgroup_of((qn_linear_id)j) == g;
        /* a factor shared by the group's Linears; a lone one (o_proj, down_proj) factors a copy */
        st = quantize_linear(pl, mi, &layer.lin[id], gptq_of[id] ? h : NULL, gptq_of[id] && users > 1 ? &fac[g] : NULL, err);
    }
    for (int g = 0; g < HG_N; g++)   /* only the experts' shared gate/up Hessian outlives this point */
        if (g != HG_GATEUP || !is_moe) qn_hessian_free(&pl->h[g]);
    if (!st && is_moe) {   /* the MoE layer stays in progress */
        ms->L = L;
        ms->layer = layer;
        ms->sc = sc;
        ms->xs = xs;
        ms->routes = routes;
        memset(&layer, 0, sizeof layer);   /* owned by ms now */
        sc = NULL;
        xs = NULL;
        routes = NULL;
        int64_t n = pl->n_samples ? pl->n_samples : 1;
        ms->xp = calloc((size_t)n, sizeof *ms->xp);
        ms->rsel = calloc((size_t)n, sizeof *ms->rsel);
        ms->rw = calloc((size_t)n, sizeof *ms->rw);
        ms->done = calloc((size_t)(ms->layer.moe.n_experts ? ms->layer.moe.n_experts : 1), 1);
        if (pl->bf16) ms->acc = calloc((size_t)n, sizeof *ms->acc);
        if (!ms->xp || !ms->rsel || !ms->rw || !ms->done || (pl->bf16 && !ms->acc)) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        if (!st && ms->layer.moe.has_shared) st = calibrate_expert(pl, L, -1, ms->layer.moe.shared, err);
    }
    pl->stats.seconds_gptq += now_s() - t0;
    if (st) goto done;
    /* propagation: X_{L+1} = compressed layer(X_L); in an MoE layer, everything but the routed
     * experts, keeping each sample's MoE input and routing for them */
    t0 = now_s();
    if (pl->opts.progress) pl->opts.progress(pl->opts.progress_user, L, c->num_hidden_layers, "propagate");
    const qn_layer *run = is_moe ? &ms->layer : &layer;
    qn_scratch *rsc = is_moe ? ms->sc : sc;
    pl->hook_err = err;
    pl->hook_st = QN_OK;
    for (int64_t s = 0; s < pl->n_samples && !st; s++) {
        float *xa = act_load(pl, s);
        pl->cur_sample = s;
        st = qn_layer_forward(c, run, xa, pl->len[s], 0, NULL, rsc, is_moe ? prop_hook : NULL, pl, err);
        if (!st) st = pl->hook_st;
        if (st || !is_moe) { if (!st) act_store(pl, s, xa); continue; }
        const int32_t *sel;
        const float *wts;
        int64_t k = qn_scratch_last_routing(rsc, &sel, &wts), T = pl->len[s];
        ms->rsel[s] = malloc(sizeof(int32_t) * (size_t)(T * k));
        ms->rw[s] = malloc(sizeof(float) * (size_t)(T * k));
        if (!ms->rsel[s] || !ms->rw[s]) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory for the routing"); break; }
        memcpy(ms->rsel[s], sel, sizeof(int32_t) * (size_t)(T * k));
        memcpy(ms->rw[s], wts, sizeof(float) * (size_t)(T * k));
        if (ms->acc) {   /* bf16 storage: the experts' outputs accumulate in fp32 */
            ms->acc[s] = malloc(sizeof(float) * (size_t)(T * H));
            if (!ms->acc[s]) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); break; }
            memcpy(ms->acc[s], xa, sizeof(float) * (size_t)(T * H));
        }
    }
    pl->stats.seconds_forward += now_s() - t0;
    pl->stats.layers_run++;
done:
    for (int g = 0; g < HG_N; g++) qn_gptq_factor_free(fac[g]);
    if (st && is_moe && ms->L == L) moe_clear(pl);
    for (int g = 0; g < HG_N; g++) if (!is_moe || ms->L != L) qn_hessian_free(&pl->h[g]);
    if (xs)
        for (int64_t i = 0; i < pl->n_samples; i++) moe_release(pl, xs[i]);
    free(xs);
    if (routes)
        for (int64_t i = 0; i < pl->n_samples; i++) free(routes[i]);
    free(routes);
    if (!is_moe || ms->L != L) pl->moe_in = NULL;
    free(tmp);
    qn_scratch_free(sc);
    if (!is_moe || ms->L != L) qn_layer_free(&layer);
    return st;
}

/* Makes layer L's results available: runs layers up to L (finishing an MoE layer in progress
 * before the next one begins); module mi, when it is a routed expert of the MoE layer in progress,
 * gets its expert processed. */
static qn_status ensure_layer(qn_pipeline *pl, int64_t L, long mi, qn_error *err) {
    while (pl->next_layer <= L) {
        qn_status st = run_layer(pl, pl->next_layer, err);
        if (st) return st;
        pl->next_layer++;
    }
    if (mi < 0 || pl->moe.L != L) return QN_OK;
    const char *rest = NULL;
    qnx_layer_of(pl->mods[mi].name, &rest);
    long long e;
    int n = 0;
    if (rest && sscanf(rest, "mlp.experts.%lld.%n", &e, &n) == 1 && n > 0) return moe_expert(pl, (int64_t)e, err);
    return QN_OK;
}


qn_status qn_pipeline_tensor_hook(void *user, const qn_tensor *t, void **data, qn_error *err) {
    qn_pipeline *pl = user;
    *data = NULL;
    if (!pl->sq && !pl->awq) return QN_OK;
    const char *rest = NULL;
    int64_t L = qnx_layer_of(t->name, &rest);
    if (L < 0 || L >= pl->m->cfg.num_hidden_layers || !rest) return QN_OK;
    qn_status st0 = ensure_layer(pl, L, -1, err);
    if (st0) return st0;
    int64_t H = pl->m->cfg.hidden_size, n = qn_tensor_numel(t);
    float *src = NULL, **owned = NULL;
    size_t len = strlen(t->name);
    int is_w = len > 7 && !strcmp(t->name + len - 7, ".weight"), is_b = len > 5 && !strcmp(t->name + len - 5, ".bias");
    if ((is_w || is_b) && len < 320) {   /* an AWQ-rescaled weight (unquantized module) or bias */
        char mod[320];
        snprintf(mod, sizeof mod, "%.*s", (int)(len - (is_w ? 7 : 5)), t->name);
        long mi = find_module(pl, mod);
        if (mi >= 0) owned = is_w ? &pl->res[mi].fw : &pl->res[mi].fb;
        if (owned && *owned) src = *owned;
    }
    int nn = !strcmp(rest, "input_layernorm.weight") ? 0 : !strcmp(rest, "post_attention_layernorm.weight") ? 1 : -1;
    if (!src && nn >= 0 && n == H) {
        if (pl->sq_layer != L) return qn_error_set(err, QN_ERR_INTERNAL, "%s: smoothing scales of layer %lld are gone", t->name, (long long)L);
        src = pl->sq_norm[nn];
    }
    if (!src) return QN_OK;
    size_t es = qn_dtype_size(t->dtype);
    void *b = malloc((size_t)n * es);
    if (!b) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    for (int64_t j = 0; j < n; j++) {
        float v = src[j];
        if (t->dtype == QN_DT_BF16) ((uint16_t *)b)[j] = qn_f32_to_bf16(v);
        else if (t->dtype == QN_DT_F16) ((uint16_t *)b)[j] = qn_f32_to_f16(v);
        else if (t->dtype == QN_DT_F32) ((float *)b)[j] = v;
        else { free(b); return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: smoothing needs a float tensor", t->name); }
    }
    if (owned && *owned == src) { free(*owned); *owned = NULL; }
    *data = b;
    return QN_OK;
}

qn_status qn_pipeline_kv_scales(void *user, int64_t layer, float *k_scale, float *v_scale, qn_error *err) {
    qn_pipeline *pl = user;
    if (!pl->kv || layer < 0 || layer >= pl->m->cfg.num_hidden_layers)
        return qn_error_set(err, QN_ERR_INTERNAL, "no KV-cache scales for layer %lld", (long long)layer);
    qn_status st = ensure_layer(pl, layer, -1, err);
    if (st) return st;
    *k_scale = pl->k_scale[layer];
    *v_scale = pl->v_scale[layer];
    return QN_OK;
}

qn_status qn_pipeline_weight_hook(void *user, size_t mi, const qn_module *m, float *w, qn_qparams *p, int *provided,
                                  qn_error *err) {
    qn_pipeline *pl = user;
    *provided = 0;
    int64_t L = qnx_layer_of(m->name, NULL);
    if (L < 0 || L >= pl->m->cfg.num_hidden_layers || mi >= pl->n_mods) return QN_OK;
    qn_status st = ensure_layer(pl, L, (long)mi, err);
    if (st) return st;
    if (static_input(pl, (long)mi) && !pl->in_seen[mi])
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: static input activations, but no calibration token reached this "
                            "Linear (an expert the router never chose: use --calibrate-all-experts), or it lies outside "
                            "the decoder layers (lm_head)", m->name);
    result *r = &pl->res[mi];
    if (!r->ready) {
        const qn_quant_scheme *sch = pl->plan->group_of[mi] >= 0 ? &pl->plan->groups[pl->plan->group_of[mi]] : NULL;
        const qn_modifier *md = sch ? modifier_of_group(pl, pl->plan->group_of[mi]) : NULL;
        if (md && md->kind == QN_MOD_GPTQ) pl->stats.rtn_fallback_linears++;
        return QN_OK;
    }
    if (p->rows != r->p.rows || p->cols != r->p.cols || p->srows != r->p.srows || p->scols != r->p.scols)
        return qn_error_set(err, QN_ERR_INTERNAL, "%s: GPTQ scales do not match the exporter's layout", m->name);
    size_t ns = (size_t)(p->srows * p->scols);
    memcpy(w, r->w, sizeof(float) * (size_t)(p->rows * p->cols));
    memcpy(p->scale, r->p.scale, sizeof(float) * ns);
    if (p->zero_point && r->p.zero_point) memcpy(p->zero_point, r->p.zero_point, sizeof(float) * ns);
    p->global_scale = r->p.global_scale;
    if (r->g_idx) p->g_idx = r->g_idx;   /* owned by the pipeline until it is freed */
    free(r->w);
    r->w = NULL;
    *provided = 1;
    return QN_OK;
}
