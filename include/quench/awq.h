/* quench — numerical core of AWQ (activation-aware weight quantization), as llm-compressor's
 * AWQModifier does it: per input channel scales s for the Linears that read one activation
 * ("balance" layers), chosen by a grid search that minimizes the output error of the module that
 * contains them ("parent") when each balance weight W is replaced by fake_quant(W·diag(s))·diag(s)⁻¹;
 * then the layer that produces the activation ("smooth" layer: a norm or a Linear) is divided by s
 * and the balance layers are multiplied by s, which leaves the unquantized model's function
 * unchanged.
 *
 * A pure library: no I/O, no printing, no global mutable state, no dependency on the model code.
 * The parent's forward is the caller's (a callback), so attention / MLP / MoE blocks plug in; for
 * mappings whose parent is the balance Linear itself (v_proj -> o_proj, up_proj -> down_proj) two
 * ready losses are provided. Reference and every decision where quench differs: src/algo/awq.c.
 *
 *   qn_error err = {0};
 *   // 1. statistics during calibration: mean |x| per channel of the balance layers' input
 *   qn_awq_xmean xm;
 *   qn_awq_xmean_init(&xm, in, &err);
 *   for (each batch)  qn_awq_xmean_add(&xm, x, ntok, in, &err);        // x [ntok, in]
 *   float *x_mean = malloc(in * 4);
 *   qn_awq_xmean_finalize(&xm, x_mean, &err);  qn_awq_xmean_free(&xm);
 *
 *   // 2. the grid search (here: v_proj -> o_proj, parent = o_proj, inputs X [T, in] kept)
 *   qn_awq_balance b = {o_proj_w, out, in, &scheme.weights, QN_DT_BF16};
 *   qn_awq_linear_ctx lc = {&b, 1, X, T, in};
 *   qn_awq_opts o;  qn_awq_opts_init(&o);                              // n_grid 20, duo true
 *   qn_awq_report rep;
 *   float *s = malloc(in * 4);
 *   if (qn_awq_search(&b, 1, NULL, x_mean, &o, qn_awq_linear_loss, &lc, s, &rep, &err)) ...;
 *
 *   // 3. apply: the balance layers' columns *= s, the smooth layer / s
 *   qn_awq_scale_balance(o_proj_w, out, in, s, QN_DT_BF16, &err);
 *   qn_awq_scale_smooth_rows(v_proj_w, v_out, v_in, v_bias, s, in, QN_DT_BF16, &err);
 *   //   (a norm smooth layer: qn_awq_scale_norm(norm_w, in, s, QN_DT_BF16, &err))
 *   // then quantize the balance layers as usual (RTN or GPTQ) from their scaled weights.
 *
 * Layout: weights row-major [out, in] fp32 (the model dtype's values widened), activations
 * [tokens, in].
 */
#ifndef QUENCH_AWQ_H
#define QUENCH_AWQ_H

#include <stddef.h>
#include <stdint.h>

#include "quench/quant.h"
#include "quench/safetensors.h" /* qn_dtype */
#include "quench/status.h"

/* ------------------------------------------------------------------------------------------ */
/* Default mappings (llm-compressor modifiers/transform/awq/mappings.py, AWQ_MAPPING_REGISTRY)  */

#define QN_AWQ_MAX_BALANCE 8

/* The module whose output the loss compares, as the reference resolves it for these models: the
 * lowest common ancestor of the matched balance layers, moving up past ModuleLists (so the
 * routed experts of an MoE block give the whole block), or the balance Linear itself when only
 * one matches. */
typedef enum {
    QN_AWQ_PARENT_ATTN = 0, /* self_attn: q/k/v -> attention -> o_proj, the attention output */
    QN_AWQ_PARENT_MLP,      /* mlp: a dense MLP, or the MoE block (router, routed experts with the
                             * normal top-k routing, shared experts) */
    QN_AWQ_PARENT_LINEAR    /* the single balance Linear (v_proj -> o_proj, up_proj -> down_proj,
                             * q_a_layernorm -> q_b_proj): qn_awq_linear_loss / qn_awq_gram_loss */
} qn_awq_parent;

/* One mapping, in the reference's own spelling so that recipe mappings and these defaults go
 * through the same matcher (qn_target_matches: "re:" = PCRE2 search on the module's full name).
 * The smooth pattern matches modules anywhere in the model; the balance patterns are matched
 * inside the smooth module's parent (the decoder layer for the norms, self_attn for v_proj, the
 * MLP or the expert for up_proj: one mapping instance per expert e pairs experts.e.up_proj with
 * experts.e.down_proj). Balance layers are listed pattern by pattern, in module order within a
 * pattern (all gate_proj matches before all up_proj matches). */
typedef struct {
    const char *smooth;                          /* e.g. "re:.*input_layernorm$" */
    const char *balance[QN_AWQ_MAX_BALANCE + 1]; /* NULL-terminated */
    qn_awq_parent parent;
} qn_awq_mapping;

/* The default mappings of an architecture (HF class name, e.g. "LlamaForCausalLM"), for the
 * architectures quench runs (and DeepseekV3). Other names get the default (Llama) list, as the
 * reference does for names it does not register; *is_default is then 1 (may be NULL).
 *   Llama, Mistral, Qwen2, Qwen3:
 *       input_layernorm          -> q_proj, k_proj, v_proj        (parent self_attn)
 *       v_proj                   -> o_proj                        (parent o_proj; see
 *                                                                  qn_awq_mapping_compatible)
 *       post_attention_layernorm -> gate_proj, up_proj            (parent mlp)
 *       up_proj                  -> down_proj                     (parent down_proj)
 *   Qwen3Moe (the reference's MoE list since PR #2451): post_attention_layernorm -> mlp.gate (the
 *     router), mlp.experts.*.gate_proj, mlp.experts.*.up_proj. Dense layers (mlp_only_layers)
 *     match none of these and get no norm mapping; their up -> down mapping applies.
 *   Glm4Moe (quench's choice, see awq.c): post_attention_layernorm -> mlp.gate, every gate_proj and
 *     up_proj of the layer (routed experts, shared experts, or the dense MLP of the first layers).
 *   DeepseekV3: input_layernorm -> (q|q_a)_proj, kv_a_proj_with_mqa; q_a_layernorm -> q_b_proj;
 *     kv_a_layernorm -> kv_b_proj; post_attention_layernorm -> mlp.gate, gate_proj, up_proj;
 *     up -> down.
 * The router (mlp.gate) is scaled like every balance layer but not quantized (pass it with args
 * NULL). Every module that reads the smooth layer's output must be a balance layer, or smoothing
 * changes the model's function. *n receives the count; the array is static and read-only. */
const qn_awq_mapping *qn_awq_default_mappings(const char *architecture, size_t *n, int *is_default);

/* The reference's shape rule for a resolved (smooth, balance) pair: a Linear smooth layer named
 * "*.v_proj" with out_features != the balance "*.o_proj" in_features (grouped-query attention:
 * num_key_value_heads < num_attention_heads), or "*.qkv_proj" with out_features != 3 x in_features,
 * makes the whole mapping instance incompatible (skipped). Returns 1 when compatible. Pass
 * smooth_out <= 0 for a smooth layer that is not a Linear (norms are always compatible). */
int qn_awq_mapping_compatible(const char *smooth_name, int64_t smooth_out, const char *balance_name,
                              int64_t balance_in);

/* ------------------------------------------------------------------------------------------ */
/* Statistics                                                                                   */

/* Streaming mean of |x| per input channel over every calibration token (the input of the first
 * balance layer = the output of the smooth layer). Sums in double. */
typedef struct {
    int64_t n;      /* channels */
    int64_t count;  /* tokens added */
    double *sum;    /* [n], owned */
} qn_awq_xmean;

qn_status qn_awq_xmean_init(qn_awq_xmean *a, int64_t n, qn_error *err);
/* Adds x [ntok, n] (row t at x + t*ld, ld >= n); ntok may be 0. */
qn_status qn_awq_xmean_add(qn_awq_xmean *a, const float *x, int64_t ntok, int64_t ld, qn_error *err);
/* x_mean[j] = sum_j / count as fp32. Error when no token was added (the reference then skips the
 * mapping: "no activations found to scale", e.g. an MoE expert no token reached). */
qn_status qn_awq_xmean_finalize(const qn_awq_xmean *a, float *x_mean, qn_error *err);
void qn_awq_xmean_free(qn_awq_xmean *a);

/* One balance layer: weight [out, in] (read only), its weight quantization args (the scheme's
 * "weights"; int or float, tensor / channel / group / tensor_group / block) and the model dtype
 * (QN_DT_BF16, QN_DT_F16 or QN_DT_F32) its values are stored in. Every balance layer of a
 * mapping reads the same input, so all have the same `in`. args NULL: a layer that is scaled but
 * not quantized (an MoE router the recipe ignores): it is left out of w_mean and its candidate is
 * its original weight, as the reference does for layers without a quantization scheme; at least
 * one balance layer must be quantized. */
typedef struct {
    const float *w;
    int64_t out, in;
    const qn_quant_args *args;
    qn_dtype dtype;
} qn_awq_balance;

/* duo_scaling's weight statistic: each quantized balance weight is cut into the sets its args
 * quantize together (tensor: the whole weight; channel: a row; group / tensor_group: group_size
 * columns of a row; block: a block), |w| is divided by (max |w| of its set + 1e-6) in the layer's
 * dtype, and w_mean[j] = mean over all rows of the quantized balance layers (their concatenation
 * along the output dim) of the normalized |w[:, j]|, summed in double. w_mean [in]. */
qn_status qn_awq_w_mean(const qn_awq_balance *bal, int n_bal, float *w_mean, qn_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Grid search                                                                                  */

/* Which grid convention (the reference changed it in PR #2640, April 2026). */
typedef enum {
    QN_AWQ_GRID_HEAD = 0, /* current llm-compressor (transform/awq/base.py _get_grid_search_params):
                           *  duo false:  ratio = i/(n_grid-1), i = 0..n_grid-1 (0 and 1 included)
                           *  duo true:   (0, activation-only) = identity first, then
                           *              ratio = i/(n_grid-2) with duo, i = 0..n_grid-2
                           *  "both":     m = n_grid/2; for i = 0..m-1: (i/(m-1), false),
                           *              (i/(m-1), true)
                           *  (a zero denominator gives the single ratio 0, where the reference
                           *  raises ZeroDivisionError) */
    QN_AWQ_GRID_LEGACY    /* llm-compressor before PR #2640 (modifiers/awq/base.py and helpers.py):
                           *  ratio = i/n_grid, i = 0..n_grid-1 (1 never reached); "both":
                           *  m = n_grid/2; for i = 0..m-1: (i/m, false), (i/m, true) */
} qn_awq_grid;

#define QN_AWQ_DUO_FALSE 0
#define QN_AWQ_DUO_TRUE 1
#define QN_AWQ_DUO_BOTH 2

typedef struct {
    int n_grid;              /* grid points, 1..QN_AWQ_GRID_MAX (default 20) */
    int duo_scaling;         /* QN_AWQ_DUO_FALSE / _TRUE (default) / _BOTH ("both") */
    qn_awq_grid grid;        /* default QN_AWQ_GRID_HEAD */
    int scheme_observer;     /* 0 (default, the reference): candidates are quantized with min-max
                              * scales (the reference swaps in memoryless_minmax for the search);
                              * 1: with the scheme's own observer (e.g. mse) */
    int shared_global_scale; /* tensor_group (NVFP4): 0 (default, the reference's search) each
                              * balance layer's global scale from its own W·diag(s); 1: one shared
                              * from the max over the balance layers, as the exporter writes fused
                              * q/k/v and gate/up shards */
} qn_awq_opts;

void qn_awq_opts_init(qn_awq_opts *o);

#define QN_AWQ_GRID_MAX 256

/* The (ratio, duo) points the search evaluates, in order: ratio[k], duo[k] (0 activation-only,
 * 1 duo) for k < *n. Arrays of QN_AWQ_GRID_MAX entries. Error for n_grid outside
 * 1..QN_AWQ_GRID_MAX, "both" with n_grid < 2, an unknown duo_scaling or grid. */
qn_status qn_awq_grid_points(const qn_awq_opts *o, double *ratio, int *duo, int *n, qn_error *err);

/* The scales of one grid point: v_j = x_mean_j^ratio / (w_mean_j^(1-ratio) + 1e-4) (duo) or
 * x_mean_j^ratio (w_mean unused, may be NULL), clamped to >= 1e-4, divided by sqrt(max v * min v)
 * (NaN propagates through max/min as torch's does), then every inf or NaN becomes 1. In double;
 * s [n] as fp32 (a value that does not fit fp32 becomes 1 too). */
qn_status qn_awq_scales(const float *x_mean, const float *w_mean, int64_t n, double ratio, int duo,
                        float *s, qn_error *err);

/* Loss of one candidate. wq[b] (b < n_bal) is balance layer b's effective weight [out_b, in]:
 * fake_quant(round_dtype(W_b·diag(s)))·diag(s)⁻¹ (the division in fp32; W_b itself for a layer
 * without args). When qn_awq_search got a smooth Linear, wq[n_bal] is its candidate (see there)
 * and n = n_bal + 1, else n = n_bal. The callback runs the parent module with these weights on the
 * calibration inputs of the smooth layer's output and returns the mean squared error against the
 * parent's original output: the sum over all batches of the squared differences divided by the
 * total number of output elements (tokens x outputs; qn_awq_sse helps). Returns QN_OK or an error
 * (which stops the search). */
typedef qn_status (*qn_awq_loss_fn)(void *user, const float *const *wq, int n, double *loss,
                                    qn_error *err);

typedef struct {
    int n_points;                    /* grid points evaluated */
    double ratio[QN_AWQ_GRID_MAX];   /* per point, in evaluation order */
    int duo[QN_AWQ_GRID_MAX];        /* 1 when the point used duo scaling */
    double loss[QN_AWQ_GRID_MAX];    /* the callback's loss (may be inf / NaN) */
    int best;                        /* index of the chosen point */
    double best_ratio, best_loss;
    int best_duo;
    double loss_identity;            /* loss with s = 1 (plain quantization, no AWQ) */
    int identity_point;              /* index of a grid point whose scales are exactly 1, or -1
                                      * when the identity was evaluated separately (legacy grid
                                      * with duo true) */
} qn_awq_report;

/* The grid search of one mapping instance. For every grid point (qn_awq_grid_points) it computes
 * the scales (qn_awq_scales, with w_mean = qn_awq_w_mean(bal) when the point uses duo), builds
 * the candidates and calls loss(); the chosen point is the first one with the smallest finite loss.
 *   bal, n_bal  the balance layers (1..64), all with the same in = the length of x_mean.
 *   smooth      optional (NULL: the reference's default smooth_layer_quantization = false): a
 *               smooth Linear [out_s >= in, in_s] that is itself quantized; its candidate (passed
 *               as wq[n_bal]) is fake_quant(W_s with rows out_s-in+j divided by s_j, rounded to its
 *               dtype), not divided back; the callback's parent then includes it (up_proj and
 *               down_proj -> the MLP).
 *   x_mean      [in] from qn_awq_xmean_finalize.
 *   scales_out  [in] out: the chosen scales (fp32).
 *   rep         optional out.
 * The identity s = 1 is always evaluated for the report (one extra loss call only for the legacy
 * grid with duo true, whose grid lacks it); it is chosen only when it is a grid point. Errors: bad
 * arguments (each named), duo scaling with the tensor strategy (as the reference refuses), the
 * callback's error (prefixed with the grid point), and no finite loss at any grid point (NaN or
 * inf in the parent's forward; the reference raises, and skips the mapping beforehand when the
 * original output is not finite). */
qn_status qn_awq_search(const qn_awq_balance *bal, int n_bal, const qn_awq_balance *smooth,
                        const float *x_mean, const qn_awq_opts *o, qn_awq_loss_fn loss, void *user,
                        float *scales_out, qn_awq_report *rep, qn_error *err);

/* Sum over n elements of (a - b)^2 in double, for callbacks that compute a parent's output. */
double qn_awq_sse(const float *a, const float *b, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* Ready losses for a parent that is the balance Linear(s) themselves                          */

/* user = qn_awq_linear_ctx: the calibration inputs X [ntok, in] (row t at x + t*ld) of the
 * balance layers. loss = sum_b ||X (W_b - Wq_b)^T||^2 / (ntok * sum_b out_b): the MSE of the
 * balance layers' outputs (their concatenation when n_bal > 1; the reference's parent for one
 * balance layer; a bias cancels). Computed from the weight difference (cblas_sgemm over blocks of
 * tokens, sums in double), which equals the difference of the two outputs without its rounding. */
typedef struct {
    const qn_awq_balance *bal;   /* the same array given to qn_awq_search (original weights) */
    int n_bal;
    const float *x;
    int64_t ntok, ld;
} qn_awq_linear_ctx;

qn_status qn_awq_linear_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err);

/* user = qn_awq_gram_ctx: the same loss from the Gram matrix G = sum_t x_t x_t^T [in, in] (full,
 * both triangles) instead of the tokens: loss = scale * sum_b sum_o d_o G d_o^T / sum_b out_b with
 * d = W_b - Wq_b. scale = 1/ntok for G = sum x x^T; for a qn_hessian (H = 2/N sum x x^T, N
 * samples, after qn_hessian_finalize) pass its matrix with scale = N / (2 ntok). Cheaper than the
 * token form when ntok > in. */
typedef struct {
    const qn_awq_balance *bal;
    int n_bal;
    const float *g;
    double scale;
} qn_awq_gram_ctx;

qn_status qn_awq_gram_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Applying the scales (reference: apply_scale_to_module / _smooth)                            */

/* Balance layer: w[r, j] = round_dtype(w[r, j] * s[j]), w [out, in]. */
qn_status qn_awq_scale_balance(float *w, int64_t out, int64_t in, const float *s, qn_dtype dtype,
                               qn_error *err);
/* Norm smooth layer (1-D weight, y = w * x_hat): w[j] = round_dtype(w[j] / s[j]), j < n. */
qn_status qn_awq_scale_norm(float *w, int64_t n, const float *s, qn_dtype dtype, qn_error *err);
/* Linear smooth layer w [out, in] (v_proj, up_proj): its last n output rows are divided by s
 * (row out-n+j by s[j]; out == n for v_proj/up_proj, the reference keeps "the last rows" for a
 * fused qkv_proj), and so is the bias (bias[out-n+j] /= s[j]; bias may be NULL), rounded to dtype. */
qn_status qn_awq_scale_smooth_rows(float *w, int64_t out, int64_t in, float *bias, const float *s,
                                   int64_t n, qn_dtype dtype, qn_error *err);

#endif
