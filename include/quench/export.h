/* quench — compressed-tensors checkpoints: writing them (round-to-nearest export) and reading
 * them back (dequantization on load).
 *
 * Format: ../shared/docs/compressed-tensors-format.md (§2 container, §3 quantization_config,
 * §4 numerics, §5 tensors). Emulated writer: compressed-tensors QN_CT_VERSION_DEFAULT (0.13,
 * "version": "0.13.0"), i.e. llm-compressor's save_pretrained(save_compressed=True).
 *
 * Writing:
 *   qn_model_config cfg; qn_config_load_dir(dir, &cfg, &err);
 *   qn_st_set *set; qn_st_set_open_dir(dir, &set, &err);
 *   qn_module *mods; size_t n;
 *   qn_export_list_modules(&cfg, set, &mods, &n, &err);           // every Linear, HF order
 *   qn_recipe_plan plan; qn_recipe_resolve(recipe, mods, n, &plan, &err);
 *   qn_export_opts o = {0}; o.recipe_yaml = qn_recipe_yaml(recipe);
 *   qn_export_stats s;
 *   qn_export_model(dir, "out", mods, n, &plan, &o, &s, &err);    // OUT.tmp-<pid>, then rename
 *   qn_export_modules_free(mods, n);
 *
 * Reading (model.c does this when `X.weight` is absent from a compressed folder):
 *   qn_ct *ct; qn_ct_open(dir, &ct, &err);                           // NULL ct: not compressed
 *   qn_ct_weight info; qn_ct_find(ct, set, "model.layers.0.mlp.up_proj", &info, &err);
 *   float *w = malloc(info.rows * info.cols * 4); qn_ct_dequantize(ct, set, &info, w, &err);
 *   qn_ct_free(ct);
 *
 * Choices that are ours (the references leave them open or differ by version):
 *  - Module order (ignore list, shard order): HF registration order per decoder layer (q, k, v, o;
 *    MLA q_a/q_b/kv_a/kv_b; mlp gate_proj/up_proj/down_proj; router, experts, shared experts),
 *    then lm_head.
 *  - Per-tensor weight scales of fused shards (q/k/v, gate/up, MLA q_a + kv_a): one shared scale
 *    from the union of the shards' min/max (= the max of their scales when symmetric). vLLM
 *    re-quantizes such shards to the max scale at load; llm-compressor itself only shares the
 *    NVFP4 global scale (update_fused_layer_weight_global_scales), which quench always does.
 *    opts.no_fuse_tensor_scales = 1 gives llm-compressor's per-shard tensor scales.
 *  - actorder "group" with RTN (no GPTQ): weight_g_idx = column / group_size (column order).
 *  - A bf16/fp16/fp32 weight's dtype is the arithmetic and scale dtype (§4.2); other float weight
 *    dtypes are refused for quantization.
 */
#ifndef QUENCH_EXPORT_H
#define QUENCH_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "quench/config.h"
#include "quench/quant.h"
#include "quench/recipe.h"
#include "quench/safetensors.h"
#include "quench/status.h"

#define QN_EXPORT_DEFAULT_SHARD_BYTES 5000000000ull /* "5GB" (decimal, as transformers) */

/* ------------------------------------------------------------------------------------------ */
/* Modules                                                                                     */

/* The Linear modules of a model folder, as compressed-tensors sees them: every 2-D floating
 * `X.weight` whose module X is a Linear in the HF model (decoder layers < num_hidden_layers:
 * self_attn.*proj*, mlp.*_proj, mlp.experts.N.*_proj, mlp.shared_expert(s).*_proj, the router
 * mlp.gate and mlp.shared_expert_gate), plus lm_head (also when tied to the embeddings: the
 * module exists, its weight is the embedding's). Class name "Linear", out/in = weight shape.
 * *mods is malloc'ed (names owned); free with qn_export_modules_free. */
qn_status qn_export_list_modules(const qn_model_config *cfg, const qn_st_set *set, qn_module **mods,
                                 size_t *n, qn_error *err);
void qn_export_modules_free(qn_module *mods, size_t n);

/* Compression format chosen for one config group under ct_version (§3.10; the 0.11-0.14 rules
 * for versions < 0.15, the HEAD priority list otherwise): the scheme's own `format` when set,
 * else inferred from the weights/input args. W4AFP8-style (int weights, float activations) is
 * written pack-quantized, as vLLM needs. Writes at most n bytes of the name into buf. */
void qn_export_group_format(const qn_quant_scheme *s, int ct_version, char *buf, size_t n);

/* "5GB", "500MB", "2GiB", "123" (bytes) -> bytes; 0 ok, -1 unparsable. */
int qn_export_parse_size(const char *s, uint64_t *out);

/* ------------------------------------------------------------------------------------------ */
/* Export                                                                                      */

/* done/total steps (decoder layers + 1 for the tensors outside them) and input bytes done. */
typedef void (*qn_export_progress_fn)(void *user, int64_t done, int64_t total, uint64_t bytes_done,
                                      uint64_t bytes_total);

/* Calibrated weights (GPTQ): called for each quantized Linear just before it is quantized, in
 * streaming order (every module of decoder layer L before any of layer L+1). `w` [out, in] fp32
 * holds the weight as loaded; the hook may overwrite it with the algorithm's (fake-quantized)
 * weight and fill `p` (initialized by the exporter for the module's args and shape) with the
 * scales / zero points / g_idx to use, setting *provided = 1; with *provided = 0 the exporter
 * observes the weight itself (round-to-nearest). */
typedef qn_status (*qn_export_weight_fn)(void *user, size_t module_index, const qn_module *m, float *w,
                                         qn_qparams *p, int *provided, qn_error *err);

typedef struct {
    const char *recipe_yaml;      /* written to OUT/recipe.yaml when non-NULL */
    qn_export_weight_fn weight_hook;
    void *weight_hook_user;
    /* Calibrated KV-cache scales (plan->kv_cache_scheme): called before each decoder layer's tensors
     * are written; fills that layer's k_scale / v_scale, written as <layer>.self_attn.k_scale /
     * v_scale [1] in the model dtype. Without it a kv_cache_scheme is refused. */
    qn_status (*kv_scales)(void *user, int64_t layer, float *k_scale, float *v_scale, qn_error *err);
    void *kv_user;
    /* Replacement bytes for a tensor copied unchanged (e.g. a norm weight SmoothQuant rescaled): may set
     * *data (malloc'ed, t->nbytes bytes in t->dtype; the exporter frees it). NULL: copy as is. */
    qn_status (*tensor_hook)(void *user, const qn_tensor *t, void **data, qn_error *err);
    void *tensor_user;
    /* Modules [n_mods] whose 8-bit weights are written in the legacy sparse-24-bitmask layout
     * (compressed / bitmask / shape instead of weight; §5.7); NULL: none. */
    const uint8_t *sparse24;
    /* sparsity_config object (JSON text) written into quantization_config (CT >= 0.11); NULL: {} */
    const char *sparsity_config_json;
    uint64_t max_shard_bytes;     /* 0: QN_EXPORT_DEFAULT_SHARD_BYTES; UINT64_MAX: one file */
    int overwrite;                /* replace an existing non-empty OUT */
    int ct_version;               /* 0: QN_CT_VERSION_DEFAULT */
    const char *format;           /* NULL, or a format for every quantized module (LLMC quantization_format) */
    int no_fuse_tensor_scales;    /* see the header comment */
    int float_only_ok;            /* 1: a plan that quantizes nothing is written as a float checkpoint
                                  * (no quantization_config) — a smoothing-only recipe, whose rescaled
                                  * weights come through tensor_hook */
    /* Static (non-dynamic) per-tensor input activations need calibrated ranges: input_min/max
     * [n_modules] (NULL: such schemes are refused). */
    const float *input_min, *input_max;
    qn_export_progress_fn progress;
    void *progress_user;
} qn_export_opts;

typedef struct {
    int64_t linear_total;         /* Linear modules (qn_export_list_modules) */
    int64_t linear_quantized;
    int64_t linear_ignored;       /* the `ignore` list written */
    uint64_t bytes_in;            /* tensor bytes read (data only) */
    uint64_t bytes_out;           /* tensor bytes written (data only) */
    uint64_t params_quantized;    /* weight elements of the quantized modules */
    int64_t tensors_out;
    char format[32];              /* top-level format */
    double seconds;
    /* Compatibility notes (the checkpoint is valid, but a consumer will refuse some layers):
     * vLLM Marlin shapes for pack-quantized (out % 64, in % 128), transformers' decompressor
     * and FP8_BLOCK layers with in <= 128 < out (§9.10, §9.14). One line per kind, '\n'-separated,
     * each naming the first module and the count. */
    char warnings[1024];
} qn_export_stats;

/* Writes the compressed checkpoint of `model_dir` to `out_dir` (§0): config.json with
 * quantization_config (json.dump(indent=2, sort_keys=True), no trailing newline), the tensors
 * (model.safetensors or shards + index), tokenizer files, generation_config.json, recipe.yaml.
 * mods/plan: qn_export_list_modules + qn_recipe_resolve (plan.group_of[i] for mods[i]).
 * Everything is validated before the first byte is written (shapes vs group sizes, formats,
 * calibration needs: kv_cache_scheme, static input activations without ranges, output
 * activations are refused naming the module). Work goes to OUT.tmp-<pid> beside OUT, renamed
 * into place when complete; an existing non-empty OUT is refused unless opts->overwrite; the
 * input folder is only read. One decoder layer is resident (fp32) at a time. */
qn_status qn_export_model(const char *model_dir, const char *out_dir, const qn_module *mods, size_t n_mods,
                          const qn_recipe_plan *plan, const qn_export_opts *opts, qn_export_stats *stats,
                          qn_error *err);

/* The quantization_config object (pretty-printed as it appears in config.json, indent 2 at
 * top level) for a plan, without writing anything; *json malloc'ed. */
qn_status qn_export_quantization_config(const qn_module *mods, size_t n_mods, const qn_recipe_plan *plan,
                                        const qn_export_opts *opts, char **json, qn_error *err);

/* config.json bytes as compressed-tensors rewrites them: input JSON text + quantization_config
 * (a JSON object text; NULL: none), sorted keys, indent 2, ensure_ascii, no trailing newline. */
qn_status qn_export_config_json(const char *config_text, size_t len, const char *quant_config_json,
                                char **out, qn_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Reading compressed checkpoints                                                              */

typedef struct qn_ct qn_ct;

/* Parses dir/config.json's quantization_config (or legacy compression_config). *out = NULL and
 * QN_OK when there is none. Tolerant as §11 asks: naive/int/float-quantized alike, actorder
 * aliases, string block_structure, missing version. */
qn_status qn_ct_open(const char *dir, qn_ct **out, qn_error *err);
/* Same from config.json text (`name` for messages). */
qn_status qn_ct_parse(const char *config_text, size_t len, const char *name, qn_ct **out, qn_error *err);
void qn_ct_free(qn_ct *ct);
const char *qn_ct_format(const qn_ct *ct);          /* top-level format */
const char *qn_ct_status(const qn_ct *ct);          /* quantization_status */
size_t qn_ct_group_count(const qn_ct *ct);
const qn_quant_scheme *qn_ct_group(const qn_ct *ct, size_t i);

/* One stored-compressed Linear weight. */
typedef struct {
    char module[256];
    int group;                  /* config group index */
    char format[32];            /* its compression format */
    int64_t rows, cols;         /* original [out, in] */
    qn_dtype dtype;             /* arithmetic dtype (the scale's for int/fp8, the model's for nvfp4) */
    const qn_tensor *packed;    /* weight_packed (pack/nvfp4) or weight (naive) */
    const qn_tensor *scale, *zero_point, *g_idx, *global_scale;
    const qn_tensor *bitmask;   /* sparse-24-bitmask: `packed` is <m>.compressed [rows, cols/2] */
} qn_ct_weight;

/* Looks up module `module` (no ".weight"): QN_ERR_NOT_FOUND when it has no compressed weight
 * in `set`; otherwise checks every tensor's dtype and shape against its group's args. */
qn_status qn_ct_find(const qn_ct *ct, const qn_st_set *set, const char *module, qn_ct_weight *out,
                     qn_error *err);
/* Dequantized weight (fp32, [rows, cols]) = (q - zp) * scale as compressed-tensors computes it. */
qn_status qn_ct_dequantize(const qn_ct *ct, const qn_st_set *set, const qn_ct_weight *w, float *out,
                           qn_error *err);

/* 1 when `weight_name` ("X.weight") is stored compressed in `set`: X.weight_packed exists, or
 * X.weight is I8 / F8_E4M3 with an X.weight_scale (naive/int/float-quantized). A dense (frozen)
 * checkpoint's float weights are not "compressed". Cheap: no parsing. */
int qn_ct_is_compressed(const qn_st_set *set, const char *weight_name);

/* Hooks for src/model, for a `weight_name` ("X.weight") that qn_ct_is_compressed says is stored
 * compressed in `set` of folder `dir` (each call parses dir/config.json).
 * qn_ct_check_weight: QN_OK when X is stored compressed with shape [d0, d1]; otherwise an error
 * naming the tensor (QN_ERR_NOT_FOUND "tensor 'X.weight' is missing" when X is not compressed).
 * qn_ct_load_weight: the dequantized fp32 weight (*out malloc'ed). */
qn_status qn_ct_check_weight(const char *dir, const qn_st_set *set, const char *weight_name, int64_t d0,
                             int64_t d1, qn_error *err);
qn_status qn_ct_load_weight(const char *dir, const qn_st_set *set, const char *weight_name, float **out,
                            qn_error *err);

#endif
