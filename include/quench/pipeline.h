/* quench — the sequential calibration pipeline: one decoder layer resident at a time.
 *
 * The pipeline holds the calibration activations X_L [samples × T × H] (fp32) and advances one
 * layer at a time, driven by the exporter (qn_export_opts.weight_hook = qn_pipeline_weight_hook):
 * when the exporter reaches the first quantized Linear of decoder layer L, the pipeline
 *   1. loads layer L (fp32), runs it over every sample with hooks that accumulate the Hessian
 *      H = 2/N Σ xxᵀ of each Linear group (q/k/v share one, gate/up share one, o, down),
 *   2. runs GPTQ on each Linear whose config group comes from a GPTQModifier (other quantized
 *      Linears of the layer are fake-quantized round-to-nearest for the propagation),
 *   3. runs the compressed layer over the samples again: X_{L+1} (quantized outputs propagate,
 *      as in llm-compressor), and frees the layer;
 * and hands each Linear's GPTQ weight and scales to the exporter, which writes them.
 *
 *   qn_pipeline *pl;
 *   qn_pipeline_create(model_dir, recipe, mods, n, &plan, &calib, &popts, &pl, &err);
 *   export_opts.weight_hook = qn_pipeline_weight_hook; export_opts.weight_hook_user = pl;
 *   qn_export_model(model_dir, out, mods, n, &plan, &export_opts, &stats, &err);
 *   qn_pipeline_stats(pl) ... per-Linear relative output error ‖XWᵀ − XŴᵀ‖/‖XWᵀ‖
 *   qn_pipeline_free(pl);
 *
 * MoE layers: every calibration token goes through every expert for the statistics (llm-compressor's
 * calibrate-all-experts) while the layer output keeps the normal routing. All experts' gate_proj and
 * up_proj then see the same input, so they share ONE Hessian per layer; each expert's down_proj gets
 * its own, built and consumed one expert at a time. With routed_only, each expert's statistics come
 * from the tokens the router sends to it (its own gate/up Hessian), and an expert that receives
 * none is quantized round-to-nearest and counted. The router (mlp.gate) is never calibrated.
 */
#ifndef QUENCH_PIPELINE_H
#define QUENCH_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "quench/calib.h"
#include "quench/quant.h"
#include "quench/recipe.h"
#include "quench/status.h"

typedef struct qn_pipeline qn_pipeline;

typedef void (*qn_pipeline_progress_fn)(void *user, int64_t layer, int64_t n_layers, const char *phase);

typedef struct {
    qn_pipeline_progress_fn progress;
    void *progress_user;
    int activations_bf16;      /* store the activations in bf16 (half the memory; fp32 compute) */
    const char *offload_dir;   /* store them in a mapped, already-unlinked file in this folder */
    int sparse24_bitmask;      /* SparseGPT 2:4: write the legacy sparse-24-bitmask layout (8-bit weights) */
    int routed_only;           /* MoE: statistics from the routed tokens only (--no-calibrate-all-experts);
                                * experts that receive none fall back to round-to-nearest (counted) */
} qn_pipeline_opts;

/* What happened to one Linear. */
typedef struct {
    const char *name;          /* module name (borrowed from mods) */
    int gptq;                  /* 1: GPTQ, 0: round-to-nearest fallback */
    double rel_error;          /* ‖XWᵀ − XŴᵀ‖ / ‖XWᵀ‖ on the calibration data (GPTQ Linears) */
    double rtn_rel_error;      /* the same for round-to-nearest with the same scheme */
    double damp_frac;          /* dampening used */
    int retries;               /* failed factorizations before the one used */
    int64_t dead;              /* inputs never active (diag(H) == 0) */
} qn_pipeline_linear;

typedef struct {
    int64_t layers_run;
    int64_t gptq_linears, rtn_fallback_linears, pruned_linears;
    int64_t awq_mappings;           /* AWQ mapping instances searched and folded */
    int64_t awq_skipped;            /* MoE MLP mappings left out (the parent is the whole MoE block) */
    double awq_loss, awq_loss_identity;   /* summed parent-output MSE: chosen scales / no scaling */
    double seconds_awq;
    int64_t experts_streamed;       /* routed experts loaded, calibrated, quantized and freed one at a time */
    int64_t rtn_fallback_experts;   /* routed-only: experts no calibration token reached */
    int64_t samples, tokens;
    double seconds_forward, seconds_gptq;
    const qn_pipeline_linear *linears;   /* [n_linears], modules in the pipeline's order */
    size_t n_linears;
} qn_pipeline_stats_t;

qn_status qn_pipeline_create(const char *model_dir, const qn_recipe *recipe, const qn_module *mods, size_t n_mods,
                             const qn_recipe_plan *plan, const qn_calib_set *calib, const qn_pipeline_opts *opts,
                             qn_pipeline **out, qn_error *err);
/* The sparsity_config (JSON text) of the recipe's SparseGPTModifier, for qn_export_opts; NULL when
 * the recipe prunes nothing. SparseGPT runs before GPTQ / round-to-nearest on the same Hessian
 * (GPTQ then keeps the zeros); pruned Linears must also be quantized. */
const char *qn_pipeline_sparsity_config(const qn_pipeline *pl);
/* qn_export_opts.sparse24: the modules written as sparse-24-bitmask, NULL when none. */
const uint8_t *qn_pipeline_sparse24(const qn_pipeline *pl);
/* Calibrated input ranges [n_mods] (global min / max over every calibration token of each Linear's
 * input, static_minmax semantics) for static per-tensor input activations: qn_export_opts
 * input_min / input_max. Filled layer by layer as the exporter advances. */
const float *qn_pipeline_input_min(const qn_pipeline *pl);
const float *qn_pipeline_input_max(const qn_pipeline *pl);
/* qn_export_opts.kv_scales for a recipe with kv_cache_scheme (fp8, per tensor): k_scale / v_scale
 * of a layer = amax / 448 of its keys after RoPE / values over the calibration tokens. */
qn_status qn_pipeline_kv_scales(void *user, int64_t layer, float *k_scale, float *v_scale, qn_error *err);
/* qn_export_opts.tensor_hook: the SmoothQuant-rescaled input_layernorm / post_attention_layernorm
 * weights (in their dtype). */
qn_status qn_pipeline_tensor_hook(void *user, const qn_tensor *t, void **data, qn_error *err);
/* qn_export_weight_fn for the exporter; `user` is the pipeline. */
qn_status qn_pipeline_weight_hook(void *user, size_t module_index, const qn_module *m, float *w, qn_qparams *p,
                                  int *provided, qn_error *err);
const qn_pipeline_stats_t *qn_pipeline_stats(const qn_pipeline *pl);
void qn_pipeline_free(qn_pipeline *pl);

#endif
