/* quench — a Hugging Face model folder and the forward pass (CPU, fp32 compute).
 *
 * The unit of work is one decoder layer: qn_layer_load converts that layer's weights to fp32,
 * qn_layer_forward runs it over a sequence [T, H] in place. The sequential calibration pipeline
 * loads, runs and frees one layer at a time; evaluation (qn_llm) keeps every layer resident.
 *
 *   qn_model *m; qn_model_open("models/stories260K", &m, &err);
 *   qn_llm *llm; qn_llm_create(m, 512, &llm, &err);           // all layers fp32 + KV cache of 512
 *   float *logits = malloc(T * vocab * 4);
 *   qn_llm_forward(llm, ids, T, 0, logits, 0, &err);           // positions 0..T-1, all logits
 *   qn_llm_free(llm); qn_model_close(m);
 */
#ifndef QUENCH_MODEL_H
#define QUENCH_MODEL_H

#include <stdint.h>

#include "quench/config.h"
#include "quench/quant.h"
#include "quench/safetensors.h"
#include "quench/status.h"

struct qn_ct;

typedef struct qn_model {
    char *dir;
    qn_model_config cfg;
    qn_st_set *tensors;
    struct qn_ct *ct;   /* quantization_config of a compressed-tensors folder, NULL otherwise */
    int act_quant;      /* 1 (default): Linears whose scheme quantizes input activations quantize
                         * their input as vLLM does (emulation); 0: weights-only view. Set before
                         * layers are loaded. */
} qn_model;

/* Reads dir/config.json (+ generation_config.json) and the safetensors of `dir`, and checks that
 * every tensor the forward pass needs exists with the right shape and a float dtype. */
qn_status qn_model_open(const char *dir, qn_model **out, qn_error *err);
void qn_model_close(qn_model *m);

/* One Linear: y = q(x)·Wᵀ + b. w is [out, in] row-major fp32, b may be NULL. With in_act the input
 * is fake-quantized first as the scheme's input_activations say (dynamic per token / group /
 * tensor, or static per-tensor with in_scale / in_zero_point), in act_dtype arithmetic. */
typedef struct {
    float *w;
    float *b;
    int64_t out, in;
    const qn_quant_args *in_act;   /* borrowed from the model's quantization_config; NULL: none */
    qn_dtype act_dtype;
    float in_scale, in_zero_point, in_global_scale;
} qn_linear;

/* y[T, out] = q(x)·Wᵀ (+ b) for one Linear (x is not modified). */
qn_status qn_linear_forward(const qn_linear *lin, const float *x, int64_t T, float *y, qn_error *err);

/* Which Linear of a dense decoder layer. */
typedef enum {
    QN_LIN_Q, QN_LIN_K, QN_LIN_V, QN_LIN_O, QN_LIN_GATE, QN_LIN_UP, QN_LIN_DOWN, QN_LIN_COUNT
} qn_linear_id;
const char *qn_linear_name(qn_linear_id id);   /* "self_attn.q_proj", ..., "mlp.down_proj" */

/* Mixture-of-experts MLP of one layer (Qwen3-MoE softmax router; GLM-4.5 sigmoid router with
 * e_score_correction_bias, group-limited top-k and a shared expert). */
typedef struct {
    int64_t n_experts, top_k;
    qn_linear router;          /* mlp.gate [E, H] */
    float *score_bias;         /* mlp.gate.e_score_correction_bias [E] or NULL */
    qn_linear *experts;        /* [E * 3]: gate_proj, up_proj, down_proj of expert e at 3e.. */
    int has_shared;
    qn_linear shared[3];       /* mlp.shared_experts.{gate,up,down}_proj */
} qn_moe;

typedef struct {
    int64_t index;
    qn_linear lin[QN_LIN_COUNT];   /* gate/up/down unused (w == NULL) in MoE layers */
    int is_moe;
    qn_moe moe;
    float *attn_norm;   /* input_layernorm [H] */
    float *mlp_norm;    /* post_attention_layernorm [H] */
    float *q_norm;      /* [hd] or NULL */
    float *k_norm;      /* [hd] or NULL */
    float k_scale, v_scale;   /* fp8 KV-cache scales (self_attn.k_scale / v_scale); 0 = none */
} qn_layer;

qn_status qn_layer_load(const qn_model *m, int64_t index, qn_layer *out, qn_error *err);
/* QN_LOAD_NO_EXPERTS: an MoE layer without its routed experts (moe.experts == NULL; router, shared
 * expert and attention are loaded). qn_layer_forward of such a layer routes and runs the shared
 * expert but adds no routed expert: the caller adds them one at a time with qn_moe_expert_add. */
#define QN_LOAD_NO_EXPERTS 1u
qn_status qn_layer_load_ex(const qn_model *m, int64_t index, unsigned flags, qn_layer *out, qn_error *err);
void qn_layer_free(qn_layer *l);
/* Routed expert e of MoE layer `layer`: ex[0..2] = gate_proj, up_proj, down_proj in fp32. */
qn_status qn_expert_load(const qn_model *m, int64_t layer, int64_t e, qn_linear ex[3], qn_error *err);
void qn_expert_free(qn_linear ex[3]);

/* Called with the input of every Linear group just before its product: x is [T, in]. q/k/v share
 * one call (id = QN_LIN_Q), gate/up share one (id = QN_LIN_GATE). Used by calibration. */
typedef void (*qn_linear_hook)(void *user, int64_t layer, qn_linear_id id, const float *x,
                               int64_t T, int64_t in);
/* Hook ids past the Linears: the keys after RoPE and the values [T, n_kv_heads * head_dim], as they
 * enter the KV cache (for k_scale / v_scale). */
#define QN_HOOK_K ((qn_linear_id)QN_LIN_COUNT)
#define QN_HOOK_V ((qn_linear_id)(QN_LIN_COUNT + 1))

/* Per-layer KV cache: k and v are [cap, n_kv_heads * head_dim]; k is stored after RoPE. */
typedef struct {
    float *k, *v;
    int64_t cap;
} qn_kv_layer;

/* Scratch buffers for one forward over up to max_t tokens (attention up to max_ctx keys). */
typedef struct qn_scratch qn_scratch;
qn_status qn_scratch_create(const qn_model_config *cfg, int64_t max_t, int64_t max_ctx,
                            qn_scratch **out, qn_error *err);
void qn_scratch_free(qn_scratch *s);

/* Runs decoder layer `l` over x [T, H] in place, for positions pos0..pos0+T-1. With kv != NULL the
 * keys/values are appended to the cache at pos0 and attention covers cache positions 0..pos0+t;
 * with kv == NULL the sequence attends only to itself (pos0 must then be 0). */
qn_status qn_layer_forward(const qn_model_config *cfg, const qn_layer *l, float *x, int64_t T,
                           int64_t pos0, qn_kv_layer *kv, qn_scratch *s, qn_linear_hook hook,
                           void *hook_user, qn_error *err);

/* Block outputs without the residual (x unchanged, no KV cache, positions 0..T-1), for searches
 * that compare a block's output under different weights (AWQ):
 *   attn: out[T, H] = o_proj(attention(input_layernorm(x))), x = the layer input;
 *   mlp:  out[T, H] = mlp(xn), xn = the MLP's normed input (post_attention_layernorm's output;
 *         an MoE block: router, the resident routed experts, shared expert).
 * out must not be one of the scratch's buffers. */
qn_status qn_layer_attn_forward(const qn_model_config *cfg, const qn_layer *l, const float *x, int64_t T,
                                float *out, qn_scratch *s, qn_error *err);
qn_status qn_layer_mlp_forward(const qn_model_config *cfg, const qn_layer *l, const float *xn, int64_t T,
                               float *out, qn_scratch *s, qn_error *err);

/* The routing of the last MoE layer run with this scratch: sel [T, top_k] expert ids in selection
 * order and w [T, top_k] their weights; returns top_k, or 0 when no MoE layer ran. */
int64_t qn_scratch_last_routing(const qn_scratch *s, const int32_t **sel, const float **w);

/* x[t] += w[t,j] · expert(xn[t]) for every token t whose routing (sel/w [T, k], as
 * qn_scratch_last_routing returns them) chose expert e at slot j. ex = the expert's gate/up/down. */
qn_status qn_moe_expert_add(const qn_model_config *cfg, const qn_linear ex[3], int64_t e, const float *xn, int64_t T,
                            const int32_t *sel, const float *w, int64_t k, float *x, qn_scratch *s, qn_error *err);

/* Embedding rows for ids into out [T, H] (fp32). */
qn_status qn_model_embed(const qn_model *m, const int32_t *ids, int64_t T, float *out, qn_error *err);

/* The whole model resident in fp32, with a KV cache of max_ctx positions. */
typedef struct qn_llm qn_llm;
qn_status qn_llm_create(const qn_model *m, int64_t max_ctx, qn_llm **out, qn_error *err);
void qn_llm_free(qn_llm *llm);
const qn_model_config *qn_llm_config(const qn_llm *llm);
/* Layer `i` of the resident model (to swap in compressed weights for evaluation). */
qn_layer *qn_llm_layer(qn_llm *llm, int64_t i);
/* Forward of T tokens at positions pos0.. (the KV cache must hold positions < pos0 from earlier
 * calls). logits: [T, vocab] when last_only == 0, [vocab] for the last token when last_only == 1. */
qn_status qn_llm_forward(qn_llm *llm, const int32_t *ids, int64_t T, int64_t pos0, float *logits,
                         int last_only, qn_error *err);

#endif
