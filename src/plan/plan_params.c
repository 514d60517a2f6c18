/* Parameter counts by component (docs/architectures.md §3, §8, §12.2). */
#include <string.h>

#include "plan_internal.h"

const char *qn_plan_comp_name(qn_plan_comp c) {
    static const char *const names[QN_PLAN_NCOMP] = {
        [QN_PLAN_EMBED] = "embed_tokens",   [QN_PLAN_ATTN] = "attention",
        [QN_PLAN_DENSE_MLP] = "dense MLP",  [QN_PLAN_ROUTED] = "routed experts",
        [QN_PLAN_SHARED] = "shared experts", [QN_PLAN_ROUTER] = "routers",
        [QN_PLAN_NORMS] = "norms",          [QN_PLAN_LM_HEAD] = "lm_head",
    };
    return (int)c >= 0 && c < QN_PLAN_NCOMP ? names[c] : "?";
}

int pt_dtype_bytes(const qn_model_config *cfg) {
    return strcmp(cfg->torch_dtype, "float32") == 0 ? 4 : 2;
}

typedef struct {
    pt_entry *e;
    int n;
    int overflow;
} pt_list;

static void add(pt_list *l, qn_plan_comp comp, const char *name, int64_t rows, int64_t cols,
                int64_t per_layer, int linear, pt_shard sh, pt_layer layer) {
    if (l->n >= PT_MAX) {
        l->overflow = 1;
        return;
    }
    pt_entry *x = &l->e[l->n++];
    memset(x, 0, sizeof *x);
    x->comp = comp;
    x->name = name;
    x->rows = rows;
    x->cols = cols;
    x->per_layer = per_layer;
    x->linear = linear;
    x->shard = sh;
    x->layer = layer;
}

/* Tensors of one decoder layer's attention + its two norms (layer kind `lk`). */
static void add_attention(pt_list *l, const qn_model_config *c, pt_layer lk) {
    const int64_t H = c->hidden_size, nh = c->num_attention_heads, nkv = c->num_key_value_heads,
                  hd = c->head_dim;
    if (c->arch == QN_ARCH_DEEPSEEK_V3) {
        const int64_t ql = c->q_lora_rank, kvl = c->kv_lora_rank, nope = c->qk_nope_head_dim,
                      rope = c->qk_rope_head_dim, vd = c->v_head_dim;
        if (ql > 0) {
            add(l, QN_PLAN_ATTN, "self_attn.q_a_proj.weight", ql, H, 1, 1, PT_REPL, lk);
            add(l, QN_PLAN_ATTN, "self_attn.q_a_layernorm.weight", ql, 0, 1, 0, PT_REPL, lk);
            add(l, QN_PLAN_ATTN, "self_attn.q_b_proj.weight", nh * (nope + rope), ql, 1, 1, PT_COL, lk);
        } else {
            add(l, QN_PLAN_ATTN, "self_attn.q_proj.weight", nh * (nope + rope), H, 1, 1, PT_COL, lk);
        }
        add(l, QN_PLAN_ATTN, "self_attn.kv_a_proj_with_mqa.weight", kvl + rope, H, 1, 1, PT_REPL, lk);
        add(l, QN_PLAN_ATTN, "self_attn.kv_a_layernorm.weight", kvl, 0, 1, 0, PT_REPL, lk);
        add(l, QN_PLAN_ATTN, "self_attn.kv_b_proj.weight", nh * (nope + vd), kvl, 1, 1, PT_COL, lk);
        add(l, QN_PLAN_ATTN, "self_attn.o_proj.weight", H, nh * vd, 1, 1, PT_ROW, lk);
        if (c->attention_bias) { /* DeepSeek biases follow attention_bias (false in releases) */
            if (ql > 0) add(l, QN_PLAN_ATTN, "self_attn.q_a_proj.bias", ql, 0, 1, 0, PT_REPL, lk);
            add(l, QN_PLAN_ATTN, "self_attn.kv_a_proj_with_mqa.bias", kvl + rope, 0, 1, 0, PT_REPL, lk);
            add(l, QN_PLAN_ATTN, "self_attn.o_proj.bias", H, 0, 1, 0, PT_REPL, lk);
        }
    } else {
        add(l, QN_PLAN_ATTN, "self_attn.q_proj.weight", nh * hd, H, 1, 1, PT_COL, lk);
        add(l, QN_PLAN_ATTN, "self_attn.k_proj.weight", nkv * hd, H, 1, 1, PT_KV, lk);
        add(l, QN_PLAN_ATTN, "self_attn.v_proj.weight", nkv * hd, H, 1, 1, PT_KV, lk);
        add(l, QN_PLAN_ATTN, "self_attn.o_proj.weight", H, nh * hd, 1, 1, PT_ROW, lk);
        if (c->attention_bias) {
            add(l, QN_PLAN_ATTN, "self_attn.q_proj.bias", nh * hd, 0, 1, 0, PT_COL, lk);
            add(l, QN_PLAN_ATTN, "self_attn.k_proj.bias", nkv * hd, 0, 1, 0, PT_KV, lk);
            add(l, QN_PLAN_ATTN, "self_attn.v_proj.bias", nkv * hd, 0, 1, 0, PT_KV, lk);
        }
        if (c->o_bias) add(l, QN_PLAN_ATTN, "self_attn.o_proj.bias", H, 0, 1, 0, PT_REPL, lk);
        if (c->use_qk_norm) {
            add(l, QN_PLAN_ATTN, "self_attn.q_norm.weight", hd, 0, 1, 0, PT_REPL, lk);
            add(l, QN_PLAN_ATTN, "self_attn.k_norm.weight", hd, 0, 1, 0, PT_REPL, lk);
        }
    }
    add(l, QN_PLAN_NORMS, "input_layernorm.weight", H, 0, 1, 0, PT_REPL, lk);
    add(l, QN_PLAN_NORMS, "post_attention_layernorm.weight", H, 0, 1, 0, PT_REPL, lk);
}

static void add_dense_mlp(pt_list *l, const qn_model_config *c, pt_layer lk) {
    const int64_t H = c->hidden_size, I = c->intermediate_size;
    add(l, QN_PLAN_DENSE_MLP, "mlp.gate_proj.weight", I, H, 1, 1, PT_COL, lk);
    add(l, QN_PLAN_DENSE_MLP, "mlp.up_proj.weight", I, H, 1, 1, PT_COL, lk);
    add(l, QN_PLAN_DENSE_MLP, "mlp.down_proj.weight", H, I, 1, 1, PT_ROW, lk);
    if (c->mlp_bias) {
        add(l, QN_PLAN_DENSE_MLP, "mlp.gate_proj.bias", I, 0, 1, 0, PT_COL, lk);
        add(l, QN_PLAN_DENSE_MLP, "mlp.up_proj.bias", I, 0, 1, 0, PT_COL, lk);
        add(l, QN_PLAN_DENSE_MLP, "mlp.down_proj.bias", H, 0, 1, 0, PT_REPL, lk);
    }
}

static void add_moe(pt_list *l, const qn_model_config *c, pt_layer lk) {
    const int64_t H = c->hidden_size, Im = c->moe_intermediate_size, E = c->num_experts;
    add(l, QN_PLAN_ROUTED, "mlp.experts.*.gate_proj.weight", Im, H, E, 1, PT_EXPERT, lk);
    add(l, QN_PLAN_ROUTED, "mlp.experts.*.up_proj.weight", Im, H, E, 1, PT_EXPERT, lk);
    add(l, QN_PLAN_ROUTED, "mlp.experts.*.down_proj.weight", H, Im, E, 1, PT_EXPERT, lk);
    if (c->n_shared_experts > 0) {
        const int64_t S = c->n_shared_experts * Im;
        add(l, QN_PLAN_SHARED, "mlp.shared_experts.gate_proj.weight", S, H, 1, 1, PT_COL, lk);
        add(l, QN_PLAN_SHARED, "mlp.shared_experts.up_proj.weight", S, H, 1, 1, PT_COL, lk);
        add(l, QN_PLAN_SHARED, "mlp.shared_experts.down_proj.weight", H, S, 1, 1, PT_ROW, lk);
    }
    /* The router is a Linear but is never quantized (ignore "re:.*mlp.gate$"). */
    add(l, QN_PLAN_ROUTER, "mlp.gate.weight", E, H, 1, 0, PT_REPL, lk);
    if (c->arch == QN_ARCH_GLM4_MOE || c->arch == QN_ARCH_DEEPSEEK_V3) {
        add(l, QN_PLAN_ROUTER, "mlp.gate.e_score_correction_bias", E, 0, 1, 0, PT_REPL, lk);
        l->e[l->n - 1].fp32 = 1; /* float32 in HF (architectures.md §3.3) */
    }
}

static void set_counts(pt_entry *e, int from, int to, int64_t layers, int64_t active_per_layer_k,
                       int mtp) {
    for (int i = from; i < to; i++) {
        e[i].count = layers * e[i].per_layer;
        /* routed experts: k of E are active per token */
        e[i].active = e[i].comp == QN_PLAN_ROUTED ? layers * active_per_layer_k : e[i].count;
        e[i].mtp = mtp;
    }
}

qn_status pt_build(const qn_model_config *c, pt_entry *e, int *n, qn_error *err) {
    pt_list l = {e, 0, 0};
    const int64_t L = c->num_hidden_layers, H = c->hidden_size, V = c->vocab_size;
    int64_t n_moe = 0;
    for (int64_t i = 0; i < L; i++) n_moe += qn_config_layer_is_moe(c, i);
    const int64_t n_dense = L - n_moe, k = c->num_experts_per_tok;

    int s = l.n;
    add(&l, QN_PLAN_EMBED, "model.embed_tokens.weight", V, H, 1, 0, PT_VOCAB, PT_LAYER_GLOBAL);
    add(&l, QN_PLAN_NORMS, "model.norm.weight", H, 0, 1, 0, PT_REPL, PT_LAYER_GLOBAL);
    if (!c->tie_word_embeddings)
        add(&l, QN_PLAN_LM_HEAD, "lm_head.weight", V, H, 1, 0, PT_VOCAB, PT_LAYER_GLOBAL);
    set_counts(e, s, l.n, 1, 0, 0);

    s = l.n;
    add_attention(&l, c, PT_LAYER_ALL);
    set_counts(e, s, l.n, L, 0, 0);
    if (n_dense > 0) {
        s = l.n;
        add_dense_mlp(&l, c, PT_LAYER_DENSE);
        set_counts(e, s, l.n, n_dense, 0, 0);
    }
    if (n_moe > 0) {
        s = l.n;
        add_moe(&l, c, PT_LAYER_MOE);
        set_counts(e, s, l.n, n_moe, k, 0);
    }

    /* MTP layers (GLM-4.5, DeepSeek-V3): a full decoder layer at index L.. plus eh_proj [H, 2H],
     * enorm, hnorm, shared_head.norm (embed/head copies not counted; architectures.md §3.3). */
    const int64_t nm = c->num_nextn_predict_layers;
    if (nm > 0) {
        s = l.n;
        add_attention(&l, c, PT_LAYER_ALL);
        if (qn_config_layer_is_moe(c, L)) {
            add_moe(&l, c, PT_LAYER_MOE);
        } else {
            add_dense_mlp(&l, c, PT_LAYER_DENSE);
        }
        add(&l, QN_PLAN_ATTN, "eh_proj.weight", H, 2 * H, 1, 1, PT_REPL, PT_LAYER_ALL);
        add(&l, QN_PLAN_NORMS, "enorm.weight", H, 0, 1, 0, PT_REPL, PT_LAYER_ALL);
        add(&l, QN_PLAN_NORMS, "hnorm.weight", H, 0, 1, 0, PT_REPL, PT_LAYER_ALL);
        add(&l, QN_PLAN_NORMS, "shared_head.norm.weight", H, 0, 1, 0, PT_REPL, PT_LAYER_ALL);
        set_counts(e, s, l.n, nm, k, 1);
    }
    if (l.overflow) return qn_error_set(err, QN_ERR_INTERNAL, "plan: tensor list overflow");
    *n = l.n;
    return QN_OK;
}

qn_status qn_plan_count_params(const qn_model_config *cfg, qn_param_counts *o, qn_error *err) {
    if (!cfg || !o) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_plan_count_params: NULL argument");
    memset(o, 0, sizeof *o);
    pt_entry e[PT_MAX];
    int n = 0;
    qn_status st = pt_build(cfg, e, &n, err);
    if (st) return st;
    for (int64_t i = 0; i < cfg->num_hidden_layers; i++) o->n_moe_layers += qn_config_layer_is_moe(cfg, i);
    o->n_dense_layers = cfg->num_hidden_layers - o->n_moe_layers;
    o->n_mtp_layers = cfg->num_nextn_predict_layers;
    for (int i = 0; i < n; i++) {
        const int64_t ne = pt_numel(&e[i]);
        if (e[i].mtp) {
            o->mtp_params += ne * e[i].count;
            continue;
        }
        o->total[e[i].comp] += ne * e[i].count;
        o->active[e[i].comp] += ne * e[i].active;
        if (e[i].layer == PT_LAYER_ALL && e[i].comp == QN_PLAN_ATTN) o->attention_per_layer += ne;
        if (e[i].comp == QN_PLAN_ROUTED) o->one_routed_expert += ne;
    }
    for (int c = 0; c < QN_PLAN_NCOMP; c++) {
        o->total_params += o->total[c];
        o->active_params += o->active[c];
    }
    const int64_t emb = o->total[QN_PLAN_EMBED] + o->total[QN_PLAN_LM_HEAD];
    o->total_excl_embed = o->total_params - emb;
    o->active_excl_embed = o->active_params - emb;
    return QN_OK;
}
