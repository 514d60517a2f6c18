/* Model folder: config + tensors, per-layer fp32 weights, and the dense decoder-layer forward. */
#include "quench/model.h"
#include "quench/export.h"   /* compressed-tensors folders: dequantize on load */

#include <cblas.h>
#undef I /* complex.h (pulled in by openblas) defines I */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- model folder ---------- */

#define QN_MAX_EXPERT_GROUPS 64   /* n_group bound of the router (DeepSeek-V3 uses 8) */

static const char *const k_linear_names[QN_LIN_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

const char *qn_linear_name(qn_linear_id id) {
    return (id >= 0 && id < QN_LIN_COUNT) ? k_linear_names[id] : "?";
}

/* Expected [out, in] of each Linear of a dense layer. */
static void linear_shape(const qn_model_config *c, qn_linear_id id, int64_t *out, int64_t *in) {
    int64_t q = c->num_attention_heads * c->head_dim, kv = c->num_key_value_heads * c->head_dim;
    switch (id) {
    case QN_LIN_Q: *out = q; *in = c->hidden_size; break;
    case QN_LIN_K: case QN_LIN_V: *out = kv; *in = c->hidden_size; break;
    case QN_LIN_O: *out = c->hidden_size; *in = q; break;
    case QN_LIN_GATE: case QN_LIN_UP: *out = c->intermediate_size; *in = c->hidden_size; break;
    default: *out = c->hidden_size; *in = c->intermediate_size; break;
    }
}

static int linear_has_bias(const qn_model_config *c, qn_linear_id id) {
    if (id == QN_LIN_Q || id == QN_LIN_K || id == QN_LIN_V) return c->attention_bias;
    if (id == QN_LIN_O) return c->o_bias;
    return c->mlp_bias;
}

/* Finds `name` and checks a float dtype and the expected shape (ndim 1 or 2). */
static qn_status find_checked(const qn_model *m, const char *name, int ndim, int64_t d0, int64_t d1,
                              const qn_tensor **out, qn_error *err) {
    *out = NULL;
    if (m->ct && qn_ct_is_compressed(m->tensors, name)) {
        char mod[320];
        snprintf(mod, sizeof mod, "%.*s", (int)(strlen(name) - 7), name);   /* strip ".weight" */
        qn_ct_weight w;
        qn_status st = qn_ct_find(m->ct, m->tensors, mod, &w, err);
        if (st) return st;
        if (ndim != 2 || w.rows != d0 || w.cols != d1)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: compressed tensor '%s' has shape [%lld, %lld], expected [%lld, %lld] (from config.json)",
                                w.packed->file, name, (long long)w.rows, (long long)w.cols, (long long)d0, (long long)d1);
        *out = w.packed;
        return QN_OK;
    }
    const qn_tensor *t = qn_st_set_find(m->tensors, name);
    if (!t)
        return qn_error_set(err, QN_ERR_NOT_FOUND, "%s: tensor '%s' is missing", m->dir, name);
    if (!qn_dtype_is_float(t->dtype))
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, expected a float type",
                            t->file, name, qn_dtype_name(t->dtype));
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        char got[128] = "", want[64];
        int n = 0;
        for (int i = 0; i < t->ndim && n < 100; i++)
            n += snprintf(got + n, sizeof got - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (ndim == 2) snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
        else snprintf(want, sizeof want, "[%lld]", (long long)d0);
        return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' has shape [%s], expected %s (from config.json)",
                            t->file, name, got, want);
    }
    *out = t;
    return QN_OK;
}

/* Checks `<prefix>.weight` [out, in] (and `<prefix>.bias` [out] when bias). */
static qn_status check_linear(const qn_model *m, const char *prefix, int64_t out, int64_t in, int bias, qn_error *err) {
    char name[320];
    const qn_tensor *t;
    snprintf(name, sizeof name, "%s.weight", prefix);
    qn_status st = find_checked(m, name, 2, out, in, &t, err);
    if (st || !bias) return st;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return find_checked(m, name, 1, out, 0, &t, err);
}

/* The MoE MLP's shapes: expert width Im; shared expert width Im * n_shared. */
static int64_t moe_shared_width(const qn_model_config *c) {
    return c->shared_expert_intermediate_size > 0 ? c->shared_expert_intermediate_size
                                                  : c->moe_intermediate_size * c->n_shared_experts;
}

static const char *const k_mlp_proj[3] = {"gate_proj", "up_proj", "down_proj"};

static qn_status check_layer_tensors(const qn_model *m, int64_t i, qn_error *err) {
    const qn_model_config *c = &m->cfg;
    char name[256];
    const qn_tensor *t;
    qn_status st;
    int moe = qn_config_layer_is_moe(c, i);
    int64_t H = c->hidden_size;
    for (int id = 0; id < QN_LIN_COUNT; id++) {
        if (moe && id >= QN_LIN_GATE) break;
        int64_t o, in;
        linear_shape(c, (qn_linear_id)id, &o, &in);
        snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)i, k_linear_names[id]);
        if ((st = check_linear(m, name, o, in, linear_has_bias(c, (qn_linear_id)id), err))) return st;
    }
    if (moe) {
        int64_t Im = c->moe_intermediate_size;
        snprintf(name, sizeof name, "model.layers.%lld.mlp.gate", (long long)i);
        if ((st = check_linear(m, name, c->num_experts, H, 0, err))) return st;
        if (c->arch == QN_ARCH_GLM4_MOE || c->arch == QN_ARCH_DEEPSEEK_V3) {
            snprintf(name, sizeof name, "model.layers.%lld.mlp.gate.e_score_correction_bias", (long long)i);
            if ((st = find_checked(m, name, 1, c->num_experts, 0, &t, err))) return st;
        }
        for (int64_t e = 0; e < c->num_experts; e++)
            for (int p = 0; p < 3; p++) {
                snprintf(name, sizeof name, "model.layers.%lld.mlp.experts.%lld.%s", (long long)i, (long long)e, k_mlp_proj[p]);
                if ((st = check_linear(m, name, p == 2 ? H : Im, p == 2 ? Im : H, 0, err))) return st;
            }
        if (c->n_shared_experts > 0) {
            int64_t S = moe_shared_width(c);
            for (int p = 0; p < 3; p++) {
                snprintf(name, sizeof name, "model.layers.%lld.mlp.shared_experts.%s", (long long)i, k_mlp_proj[p]);
                if ((st = check_linear(m, name, p == 2 ? H : S, p == 2 ? S : H, 0, err))) return st;
            }
        }
    }
    snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight", (long long)i);
    if ((st = find_checked(m, name, 1, c->hidden_size, 0, &t, err))) return st;
    snprintf(name, sizeof name, "model.layers.%lld.post_attention_layernorm.weight", (long long)i);
    if ((st = find_checked(m, name, 1, c->hidden_size, 0, &t, err))) return st;
    if (c->use_qk_norm) {
        snprintf(name, sizeof name, "model.layers.%lld.self_attn.q_norm.weight", (long long)i);
        if ((st = find_checked(m, name, 1, c->head_dim, 0, &t, err))) return st;
        snprintf(name, sizeof name, "model.layers.%lld.self_attn.k_norm.weight", (long long)i);
        if ((st = find_checked(m, name, 1, c->head_dim, 0, &t, err))) return st;
    }
    return QN_OK;
}

/* The output head: lm_head.weight unless tied (qn_model_open checked it exists, possibly
 * stored compressed). */
static const char *lm_head_name(const qn_model *m) {
    return m->cfg.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
}

qn_status qn_model_open(const char *dir, qn_model **out, qn_error *err) {
    *out = NULL;
    qn_model *m = calloc(1, sizeof *m);
    if (!m) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    m->dir = strdup(dir);
    qn_status st = qn_config_load_dir(dir, &m->cfg, err);
    if (st) { free(m->dir); free(m); return st; }
    if (!qn_config_forward_supported(&m->cfg)) {
        st = qn_error_set(err, QN_ERR_UNSUPPORTED,
                          "%s/config.json: architecture %s has no forward pass in quench yet (forward supported: LlamaForCausalLM, "
                          "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM, Glm4MoeForCausalLM)",
                          dir, m->cfg.architecture);
        goto fail;
    }
    if (m->cfg.num_experts > 0 && m->cfg.n_group > QN_MAX_EXPERT_GROUPS) {
        st = qn_error_set(err, QN_ERR_UNSUPPORTED, "%s/config.json: n_group %lld exceeds the %d expert groups quench supports",
                          dir, (long long)m->cfg.n_group, QN_MAX_EXPERT_GROUPS);
        goto fail;
    }
    if ((st = qn_st_set_open_dir(dir, &m->tensors, err))) goto fail;
    m->act_quant = 1;
    if (m->cfg.has_quantization_config && (st = qn_ct_open(dir, &m->ct, err))) goto fail;
    const qn_model_config *c = &m->cfg;
    const qn_tensor *t;
    if ((st = find_checked(m, "model.embed_tokens.weight", 2, c->vocab_size, c->hidden_size, &t, err))) goto fail;
    if ((st = find_checked(m, "model.norm.weight", 1, c->hidden_size, 0, &t, err))) goto fail;
    if (!c->tie_word_embeddings &&
        (st = find_checked(m, "lm_head.weight", 2, c->vocab_size, c->hidden_size, &t, err))) goto fail;
    for (int64_t i = 0; i < c->num_hidden_layers; i++)
        if ((st = check_layer_tensors(m, i, err))) goto fail;
    *out = m;
    return QN_OK;
fail:
    qn_model_close(m);
    return st;
}

void qn_model_close(qn_model *m) {
    if (!m) return;
    qn_ct_free(m->ct);
    qn_st_set_free(m->tensors);
    qn_config_free(&m->cfg);
    free(m->dir);
    free(m);
}

/* ---------- per-layer weights ---------- */

static qn_status load_f32(const qn_model *m, const char *name, float **out, qn_error *err) {
    if (m->ct && qn_ct_is_compressed(m->tensors, name)) {
        char mod[320];
        snprintf(mod, sizeof mod, "%.*s", (int)(strlen(name) - 7), name);
        qn_ct_weight w;
        qn_status st = qn_ct_find(m->ct, m->tensors, mod, &w, err);
        if (st) return st;
        float *b = malloc(sizeof(float) * (size_t)(w.rows * w.cols));
        if (!b) return qn_error_set(err, QN_ERR_NOMEM, "out of memory loading '%s'", name);
        if ((st = qn_ct_dequantize(m->ct, m->tensors, &w, b, err))) { free(b); return st; }
        *out = b;
        return QN_OK;
    }
    const qn_tensor *t = qn_st_set_find(m->tensors, name);
    if (!t) return qn_error_set(err, QN_ERR_NOT_FOUND, "%s: tensor '%s' is missing", m->dir, name);
    int64_t n = qn_tensor_numel(t);
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!p) return qn_error_set(err, QN_ERR_NOMEM, "out of memory loading '%s'", name);
    qn_status st = qn_tensor_to_f32(t, p, err);
    if (st) { free(p); return st; }
    qn_st_set_release(m->tensors, t);   /* the fp32 copy is what is used from here on */
    *out = p;
    return QN_OK;
}

/* Input-activation quantization of a compressed Linear (static scales read from input_scale /
 * input_zero_point). */
static qn_status load_act_quant(const qn_model *m, const char *module, qn_linear *lin, qn_error *err) {
    char name[320];
    snprintf(name, sizeof name, "%s.weight", module);
    if (!qn_ct_is_compressed(m->tensors, name)) return QN_OK;
    qn_ct_weight w;
    qn_status st = qn_ct_find(m->ct, m->tensors, module, &w, err);
    if (st) return st;
    const qn_quant_scheme *s = qn_ct_group(m->ct, (size_t)w.group);
    if (!s || !s->has_input_activations) return QN_OK;
    const qn_quant_args *a = &s->input_activations;
    lin->in_act = a;
    lin->act_dtype = w.dtype == QN_DT_BF16 || w.dtype == QN_DT_F16 ? w.dtype : QN_DT_F32;
    lin->in_scale = 1.0f;
    lin->in_zero_point = 0.0f;
    lin->in_global_scale = 0.0f;
    if (a->dynamic == QN_DYNAMIC_TRUE) return QN_OK;
    const char *params[3] = {"input_scale", "input_zero_point", "input_global_scale"};
    float *dst[3] = {&lin->in_scale, &lin->in_zero_point, &lin->in_global_scale};
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%s.%s", module, params[k]);
        const qn_tensor *t = qn_st_set_find(m->tensors, name);
        if (!t) {
            if (k == 0 && a->dynamic == QN_DYNAMIC_FALSE)
                return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' is missing (static input activations)", m->dir, name);
            continue;
        }
        if (qn_tensor_numel(t) != 1)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' must hold one value (per-tensor)", t->file, name);
        if ((st = qn_tensor_to_f32(t, dst[k], err))) return st;
    }
    return QN_OK;
}

static qn_status load_linear(const qn_model *m, const char *prefix, int64_t out, int64_t in, int bias, qn_linear *lin,
                             qn_error *err) {
    char name[320];
    lin->out = out;
    lin->in = in;
    snprintf(name, sizeof name, "%s.weight", prefix);
    qn_status st = load_f32(m, name, &lin->w, err);
    if (!st && m->ct && m->act_quant) st = load_act_quant(m, prefix, lin, err);
    if (st || !bias) return st;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return load_f32(m, name, &lin->b, err);
}

static void free_linear(qn_linear *l) {
    free(l->w);
    free(l->b);
    l->w = l->b = NULL;
}

qn_status qn_expert_load(const qn_model *m, int64_t layer, int64_t e, qn_linear ex[3], qn_error *err) {
    const qn_model_config *c = &m->cfg;
    memset(ex, 0, 3 * sizeof *ex);
    if (layer < 0 || layer >= c->num_hidden_layers || !qn_config_layer_is_moe(c, layer) || e < 0 || e >= c->num_experts)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "no expert %lld in layer %lld", (long long)e, (long long)layer);
    int64_t H = c->hidden_size, Im = c->moe_intermediate_size;
    char name[256];
    for (int p = 0; p < 3; p++) {
        snprintf(name, sizeof name, "model.layers.%lld.mlp.experts.%lld.%s", (long long)layer, (long long)e, k_mlp_proj[p]);
        qn_status st = load_linear(m, name, p == 2 ? H : Im, p == 2 ? Im : H, 0, &ex[p], err);
        if (st) { qn_expert_free(ex); return st; }
    }
    return QN_OK;
}

void qn_expert_free(qn_linear ex[3]) {
    for (int p = 0; p < 3; p++) free_linear(&ex[p]);
}

qn_status qn_layer_load(const qn_model *m, int64_t index, qn_layer *l, qn_error *err) {
    return qn_layer_load_ex(m, index, 0, l, err);
}

qn_status qn_layer_load_ex(const qn_model *m, int64_t index, unsigned flags, qn_layer *l, qn_error *err) {
    memset(l, 0, sizeof *l);
    l->index = index;
    const qn_model_config *c = &m->cfg;
    if (index < 0 || index >= c->num_hidden_layers)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "layer %lld out of range", (long long)index);
    char name[256];
    qn_status st;
    l->is_moe = qn_config_layer_is_moe(c, index);
    int64_t H = c->hidden_size;
    for (int id = 0; id < QN_LIN_COUNT; id++) {
        if (l->is_moe && id >= QN_LIN_GATE) break;
        int64_t o, in;
        linear_shape(c, (qn_linear_id)id, &o, &in);
        snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)index, k_linear_names[id]);
        if ((st = load_linear(m, name, o, in, linear_has_bias(c, (qn_linear_id)id), &l->lin[id], err))) goto fail;
    }
    if (l->is_moe) {
        qn_moe *moe = &l->moe;
        int64_t E = c->num_experts;
        moe->n_experts = E;
        moe->top_k = c->num_experts_per_tok;
        snprintf(name, sizeof name, "model.layers.%lld.mlp.gate", (long long)index);
        if ((st = load_linear(m, name, E, H, 0, &moe->router, err))) goto fail;
        if (c->arch == QN_ARCH_GLM4_MOE || c->arch == QN_ARCH_DEEPSEEK_V3) {
            snprintf(name, sizeof name, "model.layers.%lld.mlp.gate.e_score_correction_bias", (long long)index);
            if ((st = load_f32(m, name, &moe->score_bias, err))) goto fail;
        }
        if (!(flags & QN_LOAD_NO_EXPERTS)) {
            moe->experts = calloc((size_t)E * 3, sizeof *moe->experts);
            if (!moe->experts) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory for %lld experts", (long long)E); goto fail; }
            for (int64_t e = 0; e < E; e++)
                if ((st = qn_expert_load(m, index, e, &moe->experts[3 * e], err))) goto fail;
        }
        if (c->n_shared_experts > 0) {
            int64_t S = moe_shared_width(c);
            moe->has_shared = 1;
            for (int p = 0; p < 3; p++) {
                snprintf(name, sizeof name, "model.layers.%lld.mlp.shared_experts.%s", (long long)index, k_mlp_proj[p]);
                if ((st = load_linear(m, name, p == 2 ? H : S, p == 2 ? S : H, 0, &moe->shared[p], err))) goto fail;
            }
        }
    }
    if (m->ct && m->act_quant) {   /* fp8 KV cache scales of a checkpoint with kv_cache_scheme */
        const char *kvn[2] = {"k_scale", "v_scale"};
        float *dst[2] = {&l->k_scale, &l->v_scale};
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "model.layers.%lld.self_attn.%s", (long long)index, kvn[k]);
            const qn_tensor *t = qn_st_set_find(m->tensors, name);
            if (!t) continue;
            if (qn_tensor_numel(t) != 1) { st = qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' must hold one value", t->file, name); goto fail; }
            if ((st = qn_tensor_to_f32(t, dst[k], err))) goto fail;
            if (!(*dst[k] > 0) || !isfinite(*dst[k])) { st = qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' is not a positive scale", t->file, name); goto fail; }
        }
    }
    snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight", (long long)index);
    if ((st = load_f32(m, name, &l->attn_norm, err))) goto fail;
    snprintf(name, sizeof name, "model.layers.%lld.post_attention_layernorm.weight", (long long)index);
    if ((st = load_f32(m, name, &l->mlp_norm, err))) goto fail;
    if (c->use_qk_norm) {
        snprintf(name, sizeof name, "model.layers.%lld.self_attn.q_norm.weight", (long long)index);
        if ((st = load_f32(m, name, &l->q_norm, err))) goto fail;
        snprintf(name, sizeof name, "model.layers.%lld.self_attn.k_norm.weight", (long long)index);
        if ((st = load_f32(m, name, &l->k_norm, err))) goto fail;
    }
    return QN_OK;
fail:
    qn_layer_free(l);
    return st;
}

void qn_layer_free(qn_layer *l) {
    if (!l) return;
    for (int id = 0; id < QN_LIN_COUNT; id++) free_linear(&l->lin[id]);
    if (l->is_moe) {
        free_linear(&l->moe.router);
        free(l->moe.score_bias);
        if (l->moe.experts)
            for (int64_t e = 0; e < 3 * l->moe.n_experts; e++) free_linear(&l->moe.experts[e]);
        free(l->moe.experts);
        for (int p = 0; p < 3; p++) free_linear(&l->moe.shared[p]);
    }
    free(l->attn_norm);
    free(l->mlp_norm);
    free(l->q_norm);
    free(l->k_norm);
    memset(l, 0, sizeof *l);
}

/* ---------- kernels ---------- */

struct qn_scratch {
    int64_t max_t, max_ctx;
    float *xn, *q, *k, *v, *att, *gate, *up, *tmp;
    float *scores;     /* [nthreads, max_ctx] */
    float *probs;      /* [max_t, max_ctx] attention probabilities of one head (prefill) */
    int nthreads;
    float *inv_freq;   /* [rot_dim / 2] */
    int64_t rot_dim;
    /* MoE: router scores [T, E], the routed (expert, weight) pairs [T, k], gathered rows [T, H],
     * expert output [T, H], tokens of one expert [T] */
    float *rlogits, *rsc, *rw, *xg, *eo, *ew;
    int32_t *rsel, *etok;
    int64_t last_k;   /* top_k of the last MoE layer run, 0 if none */
};

int64_t qn_scratch_last_routing(const qn_scratch *s, const int32_t **sel, const float **w) {
    *sel = s->rsel;
    *w = s->rw;
    return s->last_k;
}

qn_status qn_scratch_create(const qn_model_config *c, int64_t max_t, int64_t max_ctx, qn_scratch **out,
                            qn_error *err) {
    *out = NULL;
    if (max_t <= 0 || max_ctx < max_t)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "scratch: bad sizes (tokens %lld, context %lld)",
                            (long long)max_t, (long long)max_ctx);
    qn_scratch *s = calloc(1, sizeof *s);
    if (!s) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    int64_t H = c->hidden_size, q = c->num_attention_heads * c->head_dim;
    int64_t kv = c->num_key_value_heads * c->head_dim, I = c->intermediate_size;
    if (c->moe_intermediate_size > I) I = c->moe_intermediate_size;
    if (c->num_experts > 0 && moe_shared_width(c) > I) I = moe_shared_width(c);
    s->max_t = max_t;
    s->max_ctx = max_ctx;
    s->nthreads = omp_get_max_threads();
    s->xn = malloc(sizeof(float) * max_t * (H > q ? H : q));
    s->q = malloc(sizeof(float) * max_t * q);
    s->k = malloc(sizeof(float) * max_t * kv);
    s->v = malloc(sizeof(float) * max_t * kv);
    s->att = malloc(sizeof(float) * max_t * q);
    s->gate = malloc(sizeof(float) * max_t * I);
    s->up = malloc(sizeof(float) * max_t * I);
    s->tmp = malloc(sizeof(float) * max_t * H);
    s->scores = malloc(sizeof(float) * max_ctx * s->nthreads);
    /* the prefill path needs T x ctx scores; bounded so huge contexts fall back to the loops */
    if (max_t >= 16 && (double)max_t * (double)max_ctx <= 64.0 * 1024 * 1024) s->probs = malloc(sizeof(float) * max_t * max_ctx);
    if (c->num_experts > 0) {
        int64_t E = c->num_experts, k = c->num_experts_per_tok;
        s->rlogits = malloc(sizeof(float) * max_t * E);
        s->rsc = malloc(sizeof(float) * max_t * E);
        s->rw = malloc(sizeof(float) * max_t * k);
        s->rsel = malloc(sizeof(int32_t) * max_t * k);
        s->xg = malloc(sizeof(float) * max_t * H);
        s->eo = malloc(sizeof(float) * max_t * H);
        s->ew = malloc(sizeof(float) * max_t);
        s->etok = malloc(sizeof(int32_t) * max_t);
        if (!s->rlogits || !s->rsc || !s->rw || !s->rsel || !s->xg || !s->eo || !s->ew || !s->etok) {
            qn_scratch_free(s);
            return qn_error_set(err, QN_ERR_NOMEM, "out of memory for MoE routing of %lld tokens", (long long)max_t);
        }
    }
    s->rot_dim = (int64_t)(c->head_dim * c->partial_rotary_factor);
    if (s->rot_dim < 2 || s->rot_dim > c->head_dim) s->rot_dim = c->head_dim;
    s->rot_dim &= ~(int64_t)1;
    s->inv_freq = malloc(sizeof(float) * (s->rot_dim / 2 + 1));
    if (!s->xn || !s->q || !s->k || !s->v || !s->att || !s->gate || !s->up || !s->tmp || !s->scores ||
        !s->inv_freq) {
        qn_scratch_free(s);
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory for activations of %lld tokens", (long long)max_t);
    }
    /* inv_freq[j] = 1 / theta^(2j/rd), exponent in fp32 as HF computes it; llama3 scaling applied once. */
    for (int64_t j = 0; j < s->rot_dim / 2; j++) {
        float e = (float)(2 * j) / (float)s->rot_dim;
        float f = (float)(1.0 / pow(c->rope_theta, (double)e));
        if (c->rope_type == QN_ROPE_LLAMA3) {
            double orig = (double)c->rope_original_max_position, factor = c->rope_factor;
            double lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            double low_wl = orig / lo, high_wl = orig / hi, wl = 2.0 * M_PI / f;
            if (wl > low_wl) f = (float)(f / factor);
            else if (wl >= high_wl) {
                double sm = (orig / wl - lo) / (hi - lo);
                f = (float)((1 - sm) * f / factor + sm * f);
            }
        } else if (c->rope_type == QN_ROPE_LINEAR) {
            f = (float)(f / c->rope_factor);
        }
        s->inv_freq[j] = f;
    }
    *out = s;
    return QN_OK;
}

void qn_scratch_free(qn_scratch *s) {
    if (!s) return;
    free(s->xn); free(s->q); free(s->k); free(s->v); free(s->att);
    free(s->gate); free(s->up); free(s->tmp); free(s->scores); free(s->probs); free(s->inv_freq);
    free(s->rlogits); free(s->rsc); free(s->rw); free(s->rsel); free(s->xg); free(s->eo); free(s->ew); free(s->etok);
    free(s);
}

/* x = fp8_e4m3(x / scale) * scale, saturating at ±448: what an fp8 KV cache stores. */
static void fp8_cache_rows(float *x, int64_t n, float scale) {
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) x[i] = qn_fp8e4m3_to_f32(qn_f32_to_fp8e4m3_sat(x[i] / scale)) * scale;
}

/* vLLM's dynamic per-token int8 (scaled_int8_quant): scale = max|x_t| / 127 in fp32, q = x / scale
 * rounded half to even and clamped to [-128, 127]. (compressed-tensors' own fake quantization
 * divides by 127.5; evaluation follows the serving engine.) */
static void vllm_int8_per_token(float *x, int64_t T, int64_t n) {
#pragma omp parallel for if (T * n > 65536)
    for (int64_t t = 0; t < T; t++) {
        float *r = x + t * n, amax = 0.0f;
        for (int64_t j = 0; j < n; j++) amax = fmaxf(amax, fabsf(r[j]));
        if (amax == 0.0f) continue;
        float scale = amax / 127.0f;
        for (int64_t j = 0; j < n; j++) {
            float q = nearbyintf(r[j] / scale);
            r[j] = fminf(fmaxf(q, -128.0f), 127.0f) * scale;
        }
    }
}

/* y[T, out] = q(x)[T, in] · Wᵀ (+ b) */
qn_status qn_linear_forward(const qn_linear *lin, const float *x, int64_t T, float *y, qn_error *err) {
    float *xq = NULL;
    if (lin->in_act) {
        xq = malloc(sizeof(float) * (size_t)(T * lin->in));
        if (!xq) return qn_error_set(err, QN_ERR_NOMEM, "out of memory for the quantized activations");
        memcpy(xq, x, sizeof(float) * (size_t)(T * lin->in));
        const qn_quant_args *a = lin->in_act;
        qn_status st = QN_OK;
        if (a->dynamic == QN_DYNAMIC_TRUE && a->type == QN_QTYPE_INT && a->symmetric && a->strategy == QN_STRATEGY_TOKEN &&
            a->num_bits == 8)
            vllm_int8_per_token(xq, T, lin->in);
        else st = a->dynamic == QN_DYNAMIC_TRUE
                           ? qn_quant_fake_dynamic(lin->in_act, lin->act_dtype, xq, T, lin->in, lin->in, lin->in_global_scale, err)
                           : qn_quant_fake_tensor(lin->in_act, lin->act_dtype, xq, (size_t)(T * lin->in), lin->in_scale,
                                                  lin->in_zero_point, err);
        if (st) { free(xq); return st; }
        x = xq;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)lin->out, (int)lin->in, 1.0f, x,
                (int)lin->in, lin->w, (int)lin->in, 0.0f, y, (int)lin->out);
    free(xq);
    if (lin->b) {
        for (int64_t t = 0; t < T; t++)
            for (int64_t o = 0; o < lin->out; o++) y[t * lin->out + o] += lin->b[o];
    }
    return QN_OK;
}

#define linear_apply(lin, x, T, y)                                          \
    do {                                                                    \
        qn_status st_la_ = qn_linear_forward((lin), (x), (T), (y), err);    \
        if (st_la_) return st_la_;                                          \
    } while (0)

/* RMSNorm over rows of length n: y = w · x · rsqrt(mean(x²) + eps), fp32 throughout. */
static void rmsnorm_rows(float *y, const float *x, const float *w, int64_t rows, int64_t n, double eps) {
#pragma omp parallel for if (rows * n > 32768)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float ss = 0.0f;
        for (int64_t i = 0; i < n; i++) ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / (float)n + (float)eps);
        for (int64_t i = 0; i < n; i++) yr[i] = w[i] * (xr[i] * inv);
    }
}

/* rotate-half RoPE on the first rot_dim dims of each head of rows [T, heads*hd]. */
static void rope_rows(float *x, int64_t T, int64_t heads, int64_t hd, int64_t pos0, const qn_scratch *s) {
    int64_t h2 = s->rot_dim / 2;
#pragma omp parallel for if (T * heads * hd > 32768)
    for (int64_t t = 0; t < T; t++) {
        float p = (float)(pos0 + t);
        for (int64_t j = 0; j < h2; j++) {
            float a = p * s->inv_freq[j];
            float cs = cosf(a), sn = sinf(a);
            for (int64_t h = 0; h < heads; h++) {
                float *v = x + t * heads * hd + h * hd;
                float x0 = v[j], x1 = v[j + h2];
                v[j] = x0 * cs - x1 * sn;
                v[j + h2] = x1 * cs + x0 * sn;
            }
        }
    }
}

/* Causal GQA attention: q [T, nh*hd] at positions pos0.., keys/values kc/vc [pos0+T, nkv*hd].
 * Prefill (T >= 16): per head, scores = Q_h·K_hᵀ and out = P·V_h as two sgemm calls (the
 * masked upper triangle is computed and discarded: cheaper than scalar loops); decoding (small T):
 * scalar loops parallel over heads × tokens. */
static void softmax_causal_row(float *sc, int64_t n, float scale) {
    float mx = -INFINITY;
    for (int64_t u = 0; u < n; u++) {
        sc[u] *= scale;
        if (sc[u] > mx) mx = sc[u];
    }
    float sum = 0.0f;
    for (int64_t u = 0; u < n; u++) {
        sc[u] = expf(sc[u] - mx);
        sum += sc[u];
    }
    float inv = 1.0f / sum;
    for (int64_t u = 0; u < n; u++) sc[u] *= inv;
}

static void attention(const qn_model_config *c, const float *q, const float *kc, const float *vc, int64_t T,
                      int64_t pos0, float *out, qn_scratch *s) {
    int64_t nh = c->num_attention_heads, nkv = c->num_key_value_heads, hd = c->head_dim;
    int64_t group = nh / nkv, qs = nh * hd, ks = nkv * hd, S = pos0 + T;
    float scale = 1.0f / sqrtf((float)hd);
    if (T >= 16 && s->probs) {
        for (int64_t h = 0; h < nh; h++) {
            int64_t kh = h / group;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)S, (int)hd, 1.0f, q + h * hd, (int)qs,
                        kc + kh * hd, (int)ks, 0.0f, s->probs, (int)S);
#pragma omp parallel for schedule(dynamic, 8)
            for (int64_t t = 0; t < T; t++) {
                float *row = s->probs + t * S;
                int64_t n = pos0 + t + 1;
                softmax_causal_row(row, n, scale);
                for (int64_t u = n; u < S; u++) row[u] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)S, 1.0f, s->probs, (int)S,
                        vc + kh * hd, (int)ks, 0.0f, out + h * hd, (int)qs);
        }
        return;
    }
#pragma omp parallel for collapse(2) schedule(dynamic, 4)
    for (int64_t h = 0; h < nh; h++) {
        for (int64_t t = 0; t < T; t++) {
            float *sc = s->scores + (int64_t)omp_get_thread_num() * s->max_ctx;
            const float *qv = q + t * qs + h * hd;
            int64_t kh = h / group, n = pos0 + t + 1;
            for (int64_t u = 0; u < n; u++) {
                const float *kv = kc + u * ks + kh * hd;
                float d = 0.0f;
                for (int64_t i = 0; i < hd; i++) d += qv[i] * kv[i];
                sc[u] = d;
            }
            softmax_causal_row(sc, n, scale);
            float *o = out + t * qs + h * hd;
            for (int64_t i = 0; i < hd; i++) o[i] = 0.0f;
            for (int64_t u = 0; u < n; u++) {
                const float *vv = vc + u * ks + kh * hd;
                float p = sc[u];
                for (int64_t i = 0; i < hd; i++) o[i] += p * vv[i];
            }
        }
    }
}

static void add_inplace(float *x, const float *y, int64_t n) {
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

/* SwiGLU y[T, H] = down(silu(gate(x)) * up(x)) with scratch g/u of [T, inter]. */
static qn_status swiglu(const qn_linear *gate, const qn_linear *up, const qn_linear *down, const float *x, int64_t T,
                        float *g, float *u, float *y, qn_error *err) {
    int64_t inter = gate->out;
    linear_apply(gate, x, T, g);
    linear_apply(up, x, T, u);
#pragma omp parallel for if (T * inter > 65536)
    for (int64_t i = 0; i < T * inter; i++) {
        float a = g[i];
        g[i] = a / (1.0f + expf(-a)) * u[i];
    }
    linear_apply(down, g, T, y);
    return QN_OK;
}

/* Top-k routing per token into s->rsel / s->rw (architectures.md §1.5). */
static void moe_route(const qn_model_config *c, const qn_moe *moe, int64_t T, qn_scratch *s) {
    int64_t E = moe->n_experts, k = moe->top_k;
    int sigmoid = moe->score_bias != NULL || c->arch == QN_ARCH_GLM4_MOE || c->arch == QN_ARCH_DEEPSEEK_V3;
#pragma omp parallel for if (T * E > 4096)
    for (int64_t t = 0; t < T; t++) {
        float *lg = s->rlogits + t * E;
        float *pp = lg, *cc = s->rsc + t * E;   /* probabilities (in place of the logits), selection scores */
        if (sigmoid) {
            for (int64_t e = 0; e < E; e++) {
                pp[e] = 1.0f / (1.0f + expf(-lg[e]));
                cc[e] = pp[e] + (moe->score_bias ? moe->score_bias[e] : 0.0f);
            }
            int64_t ng = c->n_group > 0 ? c->n_group : 1, tg = c->topk_group > 0 ? c->topk_group : ng;
            if (ng > 1 && E % ng == 0 && tg < ng) {
                int64_t per = E / ng;
                float gs[QN_MAX_EXPERT_GROUPS];
                int keep[QN_MAX_EXPERT_GROUPS];
                for (int64_t g = 0; g < ng; g++) {   /* group score: sum of the two largest */
                    float a = -INFINITY, b = -INFINITY;
                    for (int64_t e = g * per; e < (g + 1) * per; e++) {
                        if (cc[e] > a) { b = a; a = cc[e]; } else if (cc[e] > b) b = cc[e];
                    }
                    gs[g] = a + (per > 1 ? b : 0.0f);
                    keep[g] = 0;
                }
                for (int64_t r = 0; r < tg; r++) {
                    int64_t best = -1;
                    for (int64_t g = 0; g < ng; g++)
                        if (!keep[g] && (best < 0 || gs[g] > gs[best])) best = g;
                    if (best >= 0) keep[best] = 1;
                }
                for (int64_t e = 0; e < E; e++) if (!keep[e / per]) cc[e] = 0.0f;   /* HF masks with 0.0 */
            }
        } else {
            float mx = lg[0];
            for (int64_t e = 1; e < E; e++) if (lg[e] > mx) mx = lg[e];
            float sum = 0.0f;
            for (int64_t e = 0; e < E; e++) { pp[e] = expf(lg[e] - mx); sum += pp[e]; }
            for (int64_t e = 0; e < E; e++) { pp[e] /= sum; cc[e] = pp[e]; }
        }
        int32_t *rs = s->rsel + t * k;
        float *rw = s->rw + t * k, wsum = 0.0f;
        for (int64_t j = 0; j < k; j++) {   /* top-k by the selection score, first index wins ties */
            int64_t best = -1;
            for (int64_t e = 0; e < E; e++) {
                int taken = 0;
                for (int64_t q = 0; q < j; q++) if (rs[q] == e) { taken = 1; break; }
                if (!taken && (best < 0 || cc[e] > cc[best])) best = e;
            }
            rs[j] = (int32_t)best;
            rw[j] = pp[best];
            wsum += rw[j];
        }
        if (c->norm_topk_prob)
            for (int64_t j = 0; j < k; j++) rw[j] /= sigmoid ? (wsum + 1e-20f) : wsum;
        if (sigmoid)
            for (int64_t j = 0; j < k; j++) rw[j] *= (float)c->routed_scaling_factor;
    }
}

qn_status qn_moe_expert_add(const qn_model_config *c, const qn_linear ex[3], int64_t e, const float *xn, int64_t T,
                            const int32_t *sel, const float *w, int64_t k, float *x, qn_scratch *s, qn_error *err) {
    int64_t H = c->hidden_size, n = 0;
    if (T > s->max_t || !s->etok)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "expert %lld: %lld tokens exceed the scratch", (long long)e, (long long)T);
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < k; j++)
            if (sel[t * k + j] == e) { s->etok[n] = (int32_t)t; s->ew[n] = w[t * k + j]; n++; }
    if (!n) return QN_OK;
    for (int64_t i = 0; i < n; i++) memcpy(s->xg + i * H, xn + (int64_t)s->etok[i] * H, sizeof(float) * H);
    qn_status st = swiglu(&ex[0], &ex[1], &ex[2], s->xg, n, s->gate, s->up, s->eo, err);
    if (st) return st;
    for (int64_t i = 0; i < n; i++) {
        float *xr = x + (int64_t)s->etok[i] * H, wt = s->ew[i];
        const float *o = s->eo + i * H;
        for (int64_t h = 0; h < H; h++) xr[h] += wt * o[h];
    }
    return QN_OK;
}

/* MoE MLP: route, run each expert on the tokens routed to it, add the weighted outputs (and the
 * shared expert) to x. */
static qn_status moe_forward(const qn_model_config *c, const qn_moe *moe, float *x, const float *xn, int64_t T,
                             qn_scratch *s, qn_error *err) {
    int64_t H = c->hidden_size, E = moe->n_experts, k = moe->top_k;
    linear_apply(&moe->router, xn, T, s->rlogits);
    moe_route(c, moe, T, s);
    s->last_k = k;
    for (int64_t e = 0; e < E && moe->experts; e++) {
        qn_status st = qn_moe_expert_add(c, &moe->experts[3 * e], e, xn, T, s->rsel, s->rw, k, x, s, err);
        if (st) return st;
    }
    if (moe->has_shared) {
        qn_status st = swiglu(&moe->shared[0], &moe->shared[1], &moe->shared[2], xn, T, s->gate, s->up, s->tmp, err);
        if (st) return st;
        add_inplace(x, s->tmp, T * H);
    }
    return QN_OK;
}

/* The attention block: out[T, H] = o_proj(attention(norm(x))) (x unchanged). */
static qn_status attn_block(const qn_model_config *c, const qn_layer *l, const float *x, int64_t T, int64_t pos0,
                            qn_kv_layer *kv, qn_scratch *s, qn_linear_hook hook, void *hook_user, float *out,
                            qn_error *err) {
    int64_t H = c->hidden_size, hd = c->head_dim;
    int64_t nh = c->num_attention_heads, nkv = c->num_key_value_heads, ks = nkv * hd;
    if (T <= 0 || T > s->max_t || pos0 < 0 || pos0 + T > s->max_ctx || (!kv && pos0 != 0) ||
        (kv && pos0 + T > kv->cap))
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "layer %lld: %lld tokens at position %lld exceed the context (%lld)",
                            (long long)l->index, (long long)T, (long long)pos0,
                            (long long)(kv ? kv->cap : s->max_ctx));
    rmsnorm_rows(s->xn, x, l->attn_norm, T, H, c->rms_norm_eps);
    if (hook) hook(hook_user, l->index, QN_LIN_Q, s->xn, T, H);
    float *kdst = kv ? kv->k + pos0 * ks : s->k;
    float *vdst = kv ? kv->v + pos0 * ks : s->v;
    linear_apply(&l->lin[QN_LIN_Q], s->xn, T, s->q);
    linear_apply(&l->lin[QN_LIN_K], s->xn, T, kdst);
    linear_apply(&l->lin[QN_LIN_V], s->xn, T, vdst);
    if (l->q_norm) rmsnorm_rows(s->q, s->q, l->q_norm, T * nh, hd, c->rms_norm_eps);
    if (l->k_norm) rmsnorm_rows(kdst, kdst, l->k_norm, T * nkv, hd, c->rms_norm_eps);
    rope_rows(s->q, T, nh, hd, pos0, s);
    rope_rows(kdst, T, nkv, hd, pos0, s);
    if (hook) {
        hook(hook_user, l->index, QN_HOOK_K, kdst, T, ks);
        hook(hook_user, l->index, QN_HOOK_V, vdst, T, ks);
    }
    if (l->k_scale > 0) fp8_cache_rows(kdst, T * ks, l->k_scale);   /* vLLM's fp8 KV cache */
    if (l->v_scale > 0) fp8_cache_rows(vdst, T * ks, l->v_scale);
    attention(c, s->q, kv ? kv->k : s->k, kv ? kv->v : s->v, T, pos0, s->att, s);
    if (hook) hook(hook_user, l->index, QN_LIN_O, s->att, T, nh * hd);
    linear_apply(&l->lin[QN_LIN_O], s->att, T, out);
    return QN_OK;
}

/* The dense MLP block: out[T, H] = down(silu(gate(xn)) * up(xn)) for the normed input xn. */
static qn_status mlp_block(const qn_model_config *c, const qn_layer *l, const float *xn, int64_t T, qn_scratch *s,
                           qn_linear_hook hook, void *hook_user, float *out, qn_error *err) {
    (void)c;
    int64_t inter = l->lin[QN_LIN_GATE].out;
    linear_apply(&l->lin[QN_LIN_GATE], xn, T, s->gate);
    linear_apply(&l->lin[QN_LIN_UP], xn, T, s->up);
#pragma omp parallel for if (T * inter > 65536)
    for (int64_t i = 0; i < T * inter; i++) {
        float g = s->gate[i];
        s->gate[i] = g / (1.0f + expf(-g)) * s->up[i];
    }
    if (hook) hook(hook_user, l->index, QN_LIN_DOWN, s->gate, T, inter);
    linear_apply(&l->lin[QN_LIN_DOWN], s->gate, T, out);
    return QN_OK;
}

qn_status qn_layer_attn_forward(const qn_model_config *c, const qn_layer *l, const float *x, int64_t T, float *out,
                                qn_scratch *s, qn_error *err) {
    return attn_block(c, l, x, T, 0, NULL, s, NULL, NULL, out, err);
}

qn_status qn_layer_mlp_forward(const qn_model_config *c, const qn_layer *l, const float *xn, int64_t T, float *out,
                               qn_scratch *s, qn_error *err) {
    if (T <= 0 || T > s->max_t) return qn_error_set(err, QN_ERR_INVALID_ARG, "layer %lld: %lld tokens exceed the scratch", (long long)l->index, (long long)T);
    if (!l->is_moe) return mlp_block(c, l, xn, T, s, NULL, NULL, out, err);
    memset(out, 0, sizeof(float) * (size_t)(T * c->hidden_size));
    return moe_forward(c, &l->moe, out, xn, T, s, err);
}

qn_status qn_layer_forward(const qn_model_config *c, const qn_layer *l, float *x, int64_t T, int64_t pos0,
                           qn_kv_layer *kv, qn_scratch *s, qn_linear_hook hook, void *hook_user,
                           qn_error *err) {
    int64_t H = c->hidden_size;
    qn_status st = attn_block(c, l, x, T, pos0, kv, s, hook, hook_user, s->tmp, err);
    if (st) return st;
    add_inplace(x, s->tmp, T * H);
    /* MLP block */
    rmsnorm_rows(s->xn, x, l->mlp_norm, T, H, c->rms_norm_eps);
    if (hook) hook(hook_user, l->index, QN_LIN_GATE, s->xn, T, H);
    if (l->is_moe) return moe_forward(c, &l->moe, x, s->xn, T, s, err);
    if ((st = mlp_block(c, l, s->xn, T, s, hook, hook_user, s->tmp, err))) return st;
    add_inplace(x, s->tmp, T * H);
    return QN_OK;
}

/* ---------- embeddings and the resident model ---------- */

qn_status qn_model_embed(const qn_model *m, const int32_t *ids, int64_t T, float *out, qn_error *err) {
    const qn_tensor *e = qn_st_set_find(m->tensors, "model.embed_tokens.weight");
    int64_t V = m->cfg.vocab_size, H = m->cfg.hidden_size;
    size_t esz = qn_dtype_size(e->dtype);
    for (int64_t t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= V)
            return qn_error_set(err, QN_ERR_INVALID_ARG, "token id %d is outside the vocabulary (%lld)", ids[t],
                                (long long)V);
        qn_tensor row = *e;
        row.ndim = 1;
        row.shape[0] = H;
        row.data = (const char *)e->data + (size_t)ids[t] * (size_t)H * esz;
        row.nbytes = (size_t)H * esz;
        qn_status st = qn_tensor_to_f32(&row, out + t * H, err);
        if (st) return st;
    }
    return QN_OK;
}

struct qn_llm {
    const qn_model *m;
    qn_layer *layers;
    qn_kv_layer *kv;
    float *final_norm;
    float *lm_head;   /* [V, H] */
    float *x;         /* [max_ctx, H] */
    qn_scratch *s;
    int64_t max_ctx;
};

qn_status qn_llm_create(const qn_model *m, int64_t max_ctx, qn_llm **out, qn_error *err) {
    *out = NULL;
    const qn_model_config *c = &m->cfg;
    if (max_ctx <= 0) return qn_error_set(err, QN_ERR_INVALID_ARG, "context must be positive");
    qn_llm *llm = calloc(1, sizeof *llm);
    if (!llm) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    llm->m = m;
    llm->max_ctx = max_ctx;
    int64_t L = c->num_hidden_layers, ks = c->num_key_value_heads * c->head_dim;
    qn_status st = QN_OK;
    llm->layers = calloc((size_t)L, sizeof *llm->layers);
    llm->kv = calloc((size_t)L, sizeof *llm->kv);
    llm->x = malloc(sizeof(float) * max_ctx * c->hidden_size);
    if (!llm->layers || !llm->kv || !llm->x) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); goto fail; }
    for (int64_t i = 0; i < L; i++) {
        if ((st = qn_layer_load(m, i, &llm->layers[i], err))) goto fail;
        llm->kv[i].cap = max_ctx;
        llm->kv[i].k = malloc(sizeof(float) * max_ctx * ks);
        llm->kv[i].v = malloc(sizeof(float) * max_ctx * ks);
        if (!llm->kv[i].k || !llm->kv[i].v) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory for the KV cache"); goto fail; }
    }
    if ((st = load_f32(m, "model.norm.weight", &llm->final_norm, err))) goto fail;
    if ((st = load_f32(m, lm_head_name(m), &llm->lm_head, err))) goto fail;
    if ((st = qn_scratch_create(c, max_ctx, max_ctx, &llm->s, err))) goto fail;
    *out = llm;
    return QN_OK;
fail:
    qn_llm_free(llm);
    return st;
}

void qn_llm_free(qn_llm *llm) {
    if (!llm) return;
    int64_t L = llm->m->cfg.num_hidden_layers;
    for (int64_t i = 0; i < L; i++) {
        if (llm->layers) qn_layer_free(&llm->layers[i]);
        if (llm->kv) { free(llm->kv[i].k); free(llm->kv[i].v); }
    }
    free(llm->layers);
    free(llm->kv);
    free(llm->final_norm);
    free(llm->lm_head);
    free(llm->x);
    qn_scratch_free(llm->s);
    free(llm);
}

const qn_model_config *qn_llm_config(const qn_llm *llm) { return &llm->m->cfg; }
qn_layer *qn_llm_layer(qn_llm *llm, int64_t i) {
    return (i >= 0 && i < llm->m->cfg.num_hidden_layers) ? &llm->layers[i] : NULL;
}

qn_status qn_llm_forward(qn_llm *llm, const int32_t *ids, int64_t T, int64_t pos0, float *logits, int last_only,
                         qn_error *err) {
    const qn_model_config *c = &llm->m->cfg;
    int64_t H = c->hidden_size, V = c->vocab_size;
    if (T <= 0 || pos0 < 0 || pos0 + T > llm->max_ctx)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%lld tokens at position %lld exceed the context of %lld",
                            (long long)T, (long long)pos0, (long long)llm->max_ctx);
    qn_status st = qn_model_embed(llm->m, ids, T, llm->x, err);
    if (st) return st;
    for (int64_t i = 0; i < c->num_hidden_layers; i++)
        if ((st = qn_layer_forward(c, &llm->layers[i], llm->x, T, pos0, &llm->kv[i], llm->s, NULL, NULL, err)))
            return st;
    const float *xs = llm->x;
    int64_t rows = T;
    if (last_only) { xs = llm->x + (T - 1) * H; rows = 1; }
    rmsnorm_rows(llm->s->xn, xs, llm->final_norm, rows, H, c->rms_norm_eps);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)V, (int)H, 1.0f, llm->s->xn, (int)H,
                llm->lm_head, (int)H, 0.0f, logits, (int)V);
    return QN_OK;
}
