/* quench — hardware planning from config.json alone: parameter counts, compressed-checkpoint size
 * per scheme, tensor-parallel divisibility, weights and KV cache per GPU, longest context, and the
 * memory a compression run needs.
 *
 *   qn_model_config cfg;  qn_config_load_dir("GLM-4.5-Air", &cfg, &err);
 *   qn_plan_options opt;  qn_plan_options_default(&opt);
 *   qn_plan_scheme_lookup("W4A16", &opt.scheme, &err);
 *   qn_plan_gpu_lookup("H100-80G", &opt.gpu, &err);  opt.have_gpu = 1;
 *   qn_plan plan;
 *   if (qn_plan_build(&cfg, &opt, &plan, &err) == QN_OK) ... plan.params.total ... plan.tp[i] ...
 *
 * The library fills structs and never prints; src/cli/cmd_plan.c formats them.
 *
 * Counting rules (docs/architectures.md §8): attention includes q/k/v/o biases and q/k norms (and for
 * MLA the q_a/kv_a layernorms); "norms" are the two per-layer norms + the final norm; routers are
 * mlp.gate.weight + e_score_correction_bias; MTP layers are counted separately and excluded from the
 * totals (HF drops them on load, so they are not part of a compressed checkpoint either).
 *
 * Scheme byte layouts follow docs/compressed-tensors-format.md §5.3–§5.7 and the §5.10 summary.
 */
#ifndef QUENCH_PLAN_H
#define QUENCH_PLAN_H

#include <stdint.h>

#include "quench/config.h"
#include "quench/status.h"

/* ---------------------------------------------------------------- parameter counts */

typedef enum {
    QN_PLAN_EMBED,      /* model.embed_tokens */
    QN_PLAN_ATTN,       /* q/k/v/o (+ biases, q/k norms; MLA projections and their norms) */
    QN_PLAN_DENSE_MLP,  /* gate/up/down of dense layers */
    QN_PLAN_ROUTED,     /* routed experts */
    QN_PLAN_SHARED,     /* shared experts */
    QN_PLAN_ROUTER,     /* mlp.gate.weight (+ e_score_correction_bias) */
    QN_PLAN_NORMS,      /* input/post-attention layernorms + final norm */
    QN_PLAN_LM_HEAD,    /* lm_head (0 when tied) */
    QN_PLAN_NCOMP
} qn_plan_comp;

const char *qn_plan_comp_name(qn_plan_comp c); /* "embed_tokens", "attention", ... */

typedef struct {
    int64_t total[QN_PLAN_NCOMP];  /* parameters per component, whole model (MTP excluded) */
    int64_t active[QN_PLAN_NCOMP]; /* touched per token (k of E routed experts) */
    int64_t n_dense_layers, n_moe_layers;
    int64_t attention_per_layer;   /* one decoder layer's attention */
    int64_t one_routed_expert;     /* 3·H·Im (0 when dense) */
    int64_t total_params, total_excl_embed;   /* excl. embed_tokens and lm_head */
    int64_t active_params, active_excl_embed;
    int64_t mtp_params;            /* num_nextn_predict_layers MTP layers (not in the totals) */
    int64_t n_mtp_layers;
} qn_param_counts;

qn_status qn_plan_count_params(const qn_model_config *cfg, qn_param_counts *out, qn_error *err);

/* ---------------------------------------------------------------- schemes (built-in presets) */

typedef enum {
    QN_PSCHEME_NONE,        /* no quantization: every tensor in the model dtype */
    QN_PSCHEME_W4A16,       /* int4 group 128 sym, pack-quantized */
    QN_PSCHEME_W4A16_ASYM,  /* int4 group 128 asym, pack-quantized (+ packed zero points) */
    QN_PSCHEME_W8A16,       /* int8 channel sym, pack-quantized (CT ≤0.17 preset) */
    QN_PSCHEME_W8A8,        /* = INT8: int8 channel sym W, int8 dynamic token A, int-quantized */
    QN_PSCHEME_FP8,         /* fp8 tensor W + static tensor A, float-quantized */
    QN_PSCHEME_FP8_DYNAMIC, /* fp8 channel W, dynamic token A */
    QN_PSCHEME_FP8_BLOCK,   /* fp8 128×128 block W, dynamic group-128 A */
    QN_PSCHEME_NVFP4A16,    /* fp4 tensor_group 16, fp8 scales, nvfp4-pack-quantized */
    QN_PSCHEME_NVFP4,       /* as NVFP4A16 + fp4 activations (input_global_scale) */
    QN_PSCHEME_COUNT
} qn_plan_scheme_id;

typedef struct {
    qn_plan_scheme_id id;
    const char *name;      /* "W4A16" */
    const char *format;    /* compressed-tensors format: "pack-quantized", ... ("dense" for NONE) */
    const char *summary;   /* one line: "int4 weights, group 128, symmetric; 16-bit activations" */
    int weight_bits;       /* 16 for NONE */
    int group_size;        /* >0 group (in must divide), 0 channel, -1 tensor, -2 block 128×128 */
    int act_bits;          /* 16 = weight-only */
    int sparse24_bitmask_ok; /* sparse-24-bitmask storage exists for this scheme (8-bit W+A or none) */
    int min_cc;            /* vLLM kernel minimum compute capability ×10 (spec §6.2) */
    int full_speed_cc;     /* capability from which the native (non-fallback) kernel runs, ×10 */
} qn_plan_scheme;

/* Case-insensitive; "INT8" is W8A8, "none"/"bf16"/"fp16"/"dense" are NONE. */
qn_status qn_plan_scheme_lookup(const char *name, qn_plan_scheme *out, qn_error *err);
const qn_plan_scheme *qn_plan_scheme_get(qn_plan_scheme_id id);
const char *qn_plan_scheme_names(void); /* "none, W4A16, W4A16_ASYM, ..." */

/* ---------------------------------------------------------------- GPUs */

typedef struct {
    const char *name;   /* "H100-80G" */
    int64_t mem_bytes;  /* total memory as the driver reports it (see the table in plan_gpu.c) */
    int cc;             /* compute capability ×10 (8.9 → 89, 12.0 → 120); 0 = unknown */
} qn_gpu_info;

const qn_gpu_info *qn_plan_gpu_table(int *n);
/* Case-insensitive, ignoring spaces, '-' and '_' ("rtx4090", "H100", "h200-141g"). */
qn_status qn_plan_gpu_lookup(const char *name, qn_gpu_info *out, qn_error *err);

/* ---------------------------------------------------------------- options */

typedef enum { QN_SPARSE_NONE, QN_SPARSE_24 } qn_plan_sparsity;

typedef struct {
    qn_plan_scheme scheme;      /* default NONE */
    int actorder_group;         /* group schemes (W4A16, W4A16_ASYM): actorder "group" → weight_g_idx I32 [in] */
    qn_plan_sparsity sparsity;
    int have_gpu;               /* gpu filled (from the table or --gpu-mem) */
    qn_gpu_info gpu;
    int extra_tp;               /* --gpus N: evaluated besides 1, 2, 4, 8 (0 = none) */
    int64_t context;            /* tokens per sequence for the verdict (0 = max_position_embeddings) */
    int64_t batch;              /* sequences for the verdict (default 1) */
    int kv_bytes;               /* 2 (fp16/bf16) or 1 (fp8) */
    double gpu_util;            /* vLLM gpu_memory_utilization (0.9) */
    int64_t reserve_bytes;      /* activation + runtime reserve per GPU (-1 = estimate) */
    int64_t max_batched_tokens; /* tokens of one forward step for the activation estimate (8192) */
    int64_t calib_samples;      /* compression estimate: calibration samples (512) */
    int64_t calib_seq_len;      /* and their length (2048) */
} qn_plan_options;

void qn_plan_options_default(qn_plan_options *o);

/* ---------------------------------------------------------------- results */

typedef struct {
    int64_t values;       /* quantized values (weight_packed / weight / compressed) */
    int64_t scales;       /* weight_scale (+ weight_global_scale) */
    int64_t zero_points;  /* weight_zero_point */
    int64_t g_idx;        /* weight_g_idx */
    int64_t act_scales;   /* input_scale / input_global_scale */
    int64_t shape_meta;   /* weight_shape I64 [2] */
    int64_t sparse_meta;  /* sparse-24-bitmask: bitmask U8 + shape I64 [2,1] */
    int64_t kept;         /* tensors kept unquantized in the model dtype (fp32 correction biases) */
    int64_t total;
} qn_plan_bytes;

#define QN_PLAN_MAX_NOTES 8
#define QN_PLAN_NOTE_LEN 200

typedef struct {
    qn_plan_bytes comp[QN_PLAN_NCOMP];
    qn_plan_bytes total;
    int64_t original_bytes;      /* the same tensors unquantized, in the model dtype */
    int64_t n_linear_quantized;  /* Linear modules written quantized (counting each expert) */
    int64_t n_linear_kept;       /* Linear modules in decoder layers kept 16-bit (shape unfit) */
    int64_t n_kept_comp[QN_PLAN_NCOMP]; /* the same per component */
    int sparse_bitmask;          /* 1: 2:4 stored as sparse-24-bitmask, 0: dense zeros */
    int n_notes;                 /* why Linears were kept, one line each */
    char notes[QN_PLAN_MAX_NOTES][QN_PLAN_NOTE_LEN];
} qn_plan_size;

#define QN_PLAN_MAX_TP 6
#define QN_PLAN_NBATCH 5

typedef struct {
    int tp;
    int valid;                       /* shardable dimensions divide */
    char reason[QN_PLAN_NOTE_LEN * 2]; /* why not (all failing dimensions), "" when valid */
    char notes[QN_PLAN_NOTE_LEN * 6];  /* warnings: KV replication, quantized shard constraints, EP */
    int ep_valid;                    /* experts divide for expert parallel (MoE only) */
    int64_t kv_heads_per_gpu;        /* after replication */
    int kv_replicated;
    int64_t weight_bytes_per_gpu;
    int64_t kv_bytes_per_token;      /* per GPU */
    /* with a GPU: */
    int64_t usable_bytes;            /* mem × gpu_util */
    int64_t reserve_bytes;
    int64_t kv_budget_bytes;         /* usable − weights − reserve (may be negative) */
    int64_t kv_tokens;               /* tokens of KV cache that fit (all sequences together) */
    int n_batch;
    int64_t batch[QN_PLAN_NBATCH];
    int64_t max_context[QN_PLAN_NBATCH]; /* per sequence, ≤ max_position_embeddings; 0 = none */
    int fits;                        /* valid, weights fit, and context × batch fits */
    int kernel_ok;                   /* scheme on this GPU: 2 native, 1 fallback kernel, 0 none,
                                        -1 not checked (no GPU / capability unknown) */
} qn_plan_tp;

typedef struct {
    /* quench compress (CPU RAM) */
    int64_t layer_fp32_bytes;        /* largest decoder layer in fp32 */
    int64_t hessian_bytes;           /* Hessians of that layer's Linears, all held at once */
    int64_t hessian_bytes_seq;       /* same, MoE experts processed one at a time */
    int64_t activation_bytes;        /* samples × seq × H × 4 × 2 */
    int64_t quench_total_bytes;      /* layer + hessians + activations */
    int64_t quench_total_seq_bytes;  /* with experts one at a time */
    /* what quench compress holds as built (calibrate-all-experts, experts streamed): */
    int64_t resident_layer_bytes;    /* the layer in fp32 without its routed experts, plus one expert */
    int64_t result_bytes;            /* GPTQ results of the attention Linears kept until written (fp32) */
    int64_t hessian_bytes_built;     /* q/k/v, o, gate/up (one shared by all experts), one down */
    int64_t gptq_workspace_bytes;    /* the largest Linear's Hessian copy + factor (double up to 8192
                                      * inputs) + its weight copies (GPTQ, round-to-nearest, export) */
    int64_t activation_bytes_built;  /* samples × seq × H × 4 × (1 dense; 3 MoE: the layer input, the MoE
                                      * inputs of the statistics and the propagation passes) */
    int64_t quench_built_bytes;      /* the sum of the five above */
    /* llm-compressor (its documented sequential pipeline) */
    int64_t llmc_cpu_bytes;          /* whole model in the model dtype + cached activations */
    int64_t llmc_gpu_bytes;          /* one layer in the model dtype + its Hessians (fp32) */
} qn_plan_compress;

typedef struct {
    qn_param_counts params;
    int dtype_bytes;                 /* model dtype: 2 (bf16/fp16; default) or 4 (fp32) */
    qn_plan_size size;               /* the chosen scheme (2:4 stored as dense zeros) */
    int has_sparse_alt;              /* 2:4 requested and sparse-24-bitmask applies */
    qn_plan_size size_sparse;        /* the same stored as sparse-24-bitmask */
    int64_t kv_bytes_per_token;      /* whole model (TP 1) */
    int mla;                         /* KV cache is the MLA latent (DeepSeek) */
    int64_t context;                 /* the context used for the verdict */
    int n_tp;
    qn_plan_tp tp[QN_PLAN_MAX_TP];   /* 1, 2, 4, 8 and the --gpus value */
    qn_plan_compress compress;
} qn_plan;

/* Why `tp` cannot shard the model (one line, every failing dimension); returns 1 when it can. */
int qn_plan_tp_check(const qn_model_config *cfg, int tp, char *reason, size_t reason_len);
/* KV-cache bytes per token on one GPU at tensor-parallel size `tp` (GQA/MLA aware). */
int64_t qn_plan_kv_bytes_per_token(const qn_model_config *cfg, int tp, int kv_bytes);
/* Bytes of one Linear [out, in] under a scheme; returns 0 and sets *why when the shape does not fit
 * the scheme (then it is kept in the model dtype by the caller). */
int qn_plan_linear_bytes(const qn_plan_scheme *s, int64_t out, int64_t in, int dtype_bytes,
                         int actorder_group, int sparse_bitmask, qn_plan_bytes *b, const char **why);

qn_status qn_plan_build(const qn_model_config *cfg, const qn_plan_options *opt, qn_plan *out,
                        qn_error *err);

/* Parse "24GiB", "80GB", "24G" (= GiB), "24" (= GiB), "512MiB" into bytes; "16k" (= 16384),
 * "128K", "2m", "4096" into tokens. Return 0 on success. */
int qn_plan_parse_bytes(const char *s, int64_t *out);
int qn_plan_parse_count(const char *s, int64_t *out);

/* ================================================================================================
 * inspect and diff (src/plan/inspect.c, src/plan/diff.c) — `quench inspect`, `quench diff`
 * ================================================================================================
 *
 *   qn_inspect *r;
 *   if (qn_inspect_path("out/W4A16", &r, &err)) ... err.msg ...;   // folder or a config.json path
 *   ... r->groups[i].preset, r->n_linear, r->findings[k] ...
 *   qn_inspect_free(r);
 *
 * inspect reads config.json and, when the folder has them, the safetensors headers (no tensor data
 * except the 16 bytes of each weight_shape). It describes the quantization_config (groups, ignore
 * list, KV cache, sparsity), decides every Linear module the way compressed-tensors does (§3.6:
 * ignore first, then the most specific target: exact name, regexes in alphabetical order, class
 * name), checks vLLM's rules (§6.1-§6.3a: fused shards, MoE blocks, kernel selection and minimum
 * compute capability) and verifies the tensors against what each module's group implies (§5.3-
 * §5.7, §5.10: names, dtypes, shapes; the 16-bit `weight` of unquantized Linears). Problems are
 * `findings` (error / warning / note); a malformed config.json or quantization_config is an error
 * of the call naming the file and the field.
 *
 * The Linear modules come from the tensors (as qn_export_list_modules defines them, also when stored
 * compressed) and from config.json (the shapes the model implies; for a supported architecture
 * this is the whole list when there are no tensors). Decoder layers at index >= num_hidden_layers
 * (MTP) are outside the HF model: counted, not checked. */

#include "quench/quant.h"
#include "quench/safetensors.h"

typedef enum { QN_FIND_ERROR, QN_FIND_WARNING, QN_FIND_NOTE } qn_find_level;

typedef enum {
    QN_FIND_CONFIG,            /* quantization_config inconsistencies: format, status, version */
    QN_FIND_VLLM,              /* a group no vLLM scheme takes, or one of its constraints (Marlin
                                * shapes and group sizes, MoE needing a "Linear" target) */
    QN_FIND_UNMATCHED_LINEAR,  /* a Linear neither targeted nor ignored */
    QN_FIND_IGNORE_UNUSED,     /* an ignore entry that matches no module */
    QN_FIND_IGNORE_NON_LINEAR, /* an ignore entry naming only non-Linear modules, or a parameter */
    QN_FIND_IGNORE_CLASS,      /* an ignore entry matching by class name (vLLM ignores by name only) */
    QN_FIND_FUSED_SPLIT,       /* q/k/v, gate/up or MLA q_a/kv_a of one block decided differently */
    QN_FIND_MOE_SPLIT,         /* the experts of one MoE block decided differently */
    QN_FIND_KV_CACHE,          /* a kv_cache_scheme vLLM refuses */
    QN_FIND_TENSOR_MISSING,    /* a tensor the config implies is absent */
    QN_FIND_TENSOR_DTYPE,      /* present with another dtype */
    QN_FIND_TENSOR_SHAPE,      /* present with another shape (or weight_shape values) */
    QN_FIND_TENSOR_UNEXPECTED, /* present but not implied (a symmetric zero point, a compressed
                                * tensor on an unquantized Linear, k_scale without a kv scheme) */
    QN_FIND_KIND_COUNT
} qn_find_kind;

const char *qn_find_kind_name(qn_find_kind k);    /* "tensor_missing", "fused_split", ... */
const char *qn_find_level_name(qn_find_level l);  /* "error", "warning", "note" */
/* 1 for the TENSOR_* kinds (what "mismatches" counts). */
int qn_find_kind_is_tensor(qn_find_kind k);

typedef struct {
    qn_find_level level;
    qn_find_kind kind;
    char *subject;     /* module, tensor, group or ignore entry ("" when general) */
    char *message;
} qn_finding;

/* At most this many findings of one kind are stored; n_by_kind counts them all. */
#define QN_INSPECT_MAX_FINDINGS_PER_KIND 256
#define QN_INSPECT_MAX_GPUS 32

typedef struct {
    char name[64];             /* config_groups key */
    qn_quant_scheme scheme;    /* owned: targets, weights / input / output args, own format */
    char format[32];           /* effective: the group's, else the top-level one, else inferred */
    char preset[24];           /* the preset whose args equal the group's (observers aside), "" */
    char weights[96];          /* "int4 group 128 sym", "fp8 channel sym", "-" */
    char inputs[96];           /* "fp8 token dynamic", "-" */
    int64_t n_linear;          /* Linear modules it owns (not ignored) */
    int64_t n_checked, n_bad;  /* of those, checked against tensors / with a tensor mismatch */
    /* vLLM (§6.2): the Linear scheme its modules get, "" when none takes the group */
    char vllm_scheme[48];
    int min_cc;                /* compute capability x10 of the scheme's kernels (0: none) */
    int exact_cc;              /* 1: only exactly min_cc (CompressedTensorsW4A8Fp8: SM 9.0) */
    char fallback[48];         /* a slower path below min_cc ("CompressedTensorsW8A16Fp8"), "" */
    int fallback_cc;
    char vllm_note[320];       /* why none, constraints, version notes */
    int n_gpus;                /* = qn_plan_gpu_table's n (capped) */
    signed char gpu_ok[QN_INSPECT_MAX_GPUS]; /* per table entry: 2 native, 1 fallback, 0 no */
} qn_inspect_group;

typedef struct {
    char *entry;
    int is_regex;
    int64_t n_linear;          /* Linear modules it matches */
    int64_t n_effective;       /* of those, owned by a group otherwise (what ignoring them changes) */
    int64_t n_other;           /* non-Linear modules it matches (norms, embeddings, attention) */
    int64_t n_mtp;             /* modules of MTP layers (outside the HF model) */
    int names_tensor;          /* equals a tensor (parameter) name, e.g. "...q_proj.bias" */
    int by_class;              /* matched a module by its class name */
} qn_inspect_ignore;

typedef enum { QN_MODULES_NONE, QN_MODULES_TENSORS, QN_MODULES_CONFIG } qn_modules_source;

typedef struct {
    char *path;                /* as given */
    char *config_path;         /* the config.json read */
    /* config.json */
    int arch_known;            /* qn_config_load accepted it (else architecture unsupported) */
    char architecture[64], model_type[32], torch_dtype[16];
    int64_t num_hidden_layers, num_experts;
    /* tensors */
    int has_tensors;
    int64_t n_tensors, n_files;
    uint64_t tensor_bytes;
    int has_model_dtype;
    qn_dtype model_dtype;      /* of the unquantized weights (embeddings), else torch_dtype */
    qn_modules_source modules_from;
    /* quantization_config */
    int quantized;             /* config.json has a quantization_config */
    char quant_method[32], version[32], format[32], status[32];
    qn_inspect_group *groups;
    size_t n_groups;
    qn_inspect_ignore *ignore;
    size_t n_ignore;
    int has_kv_cache;
    qn_quant_args kv_cache;
    int kv_cache_vllm_ok;
    int64_t n_attention, n_kv_scales;  /* attention blocks; k_scale/v_scale pairs found */
    int has_sparsity;          /* sparsity_config with a format */
    char sparsity_format[32], sparsity_structure[16];
    double global_sparsity;
    int64_t n_sparse;          /* Linear modules under the sparsity targets */
    int has_transforms;        /* transform_config non-empty (not checked) */
    /* Linear modules (MTP layers excluded) */
    int64_t n_linear, n_quantized, n_ignored, n_unmatched;
    int64_t n_unquantized_group;       /* owned by a group without weights */
    int64_t n_mtp_modules;             /* Linear modules of MTP layers (present in the tensors; not checked) */
    char **ignored_modules;    /* the Linear modules the ignore list matches (sorted) */
    size_t n_ignored_modules;
    /* tensor check */
    int64_t n_checked, n_mismatches;   /* Linear modules checked; TENSOR_* findings */
    /* findings, in the order found */
    qn_finding *findings;
    size_t n_findings;
    int64_t n_by_kind[QN_FIND_KIND_COUNT];
    int64_t n_by_level[3];
} qn_inspect;

qn_status qn_inspect_path(const char *path, qn_inspect **out, qn_error *err);
void qn_inspect_free(qn_inspect *r);

/* vLLM's kernel for a scheme (§6.2): fills the vllm_* / cc / gpu_ok fields of `g` from
 * g->scheme and g->format; `sparse24`: the group's Linears are 2:4 sparse (sparsity_config). */
void qn_inspect_vllm_scheme(qn_inspect_group *g, int sparse24);

/*   qn_diff *d;
 *   if (qn_diff_paths("GLM-4.5", "GLM-4.5-Air/config.json", &d, &err)) ...;
 *   for (size_t i = 0; i < d->n_config; i++) d->config[i].key, .a, .b ...
 *   qn_diff_free(d);
 *
 * Each side is a folder or a config.json path (a file path means config only). config.json
 * differences: every key that differs, nested objects flattened with dots ("rope_scaling.factor"),
 * arrays compared whole; values as Python's json.dumps writes them (1.0 stays "1.0"; 1 and 1.0
 * compare equal). quantization_config separately: its scalar/object keys the same way, config
 * groups by name (added / removed / changed fields, after filling defaults), ignore lists as sets
 * (and, when both sides have tensors, the Linear modules they match, regexes expanded), tensors
 * when both have them (names only in one, dtype or shape changes). */

typedef struct {
    char *key;
    char *a, *b;               /* JSON text of the values; NULL = absent on that side */
} qn_diff_value;

typedef enum { QN_DIFF_ONLY_A = 1, QN_DIFF_ONLY_B = 2, QN_DIFF_CHANGED = 3 } qn_diff_status;

typedef struct {
    char *name;
    qn_diff_status status;
    qn_diff_value *fields;     /* CHANGED: the fields that differ ("weights.num_bits") */
    size_t n_fields;
} qn_diff_group;

typedef struct {
    char *name;
    qn_dtype a_dtype, b_dtype;
    int a_ndim, b_ndim;
    int64_t a_shape[QN_MAX_DIMS], b_shape[QN_MAX_DIMS];
} qn_diff_tensor;

typedef struct {
    char *a_config, *b_config;         /* config.json paths */
    qn_diff_value *config;             /* config.json outside quantization_config, sorted by key */
    size_t n_config;
    int a_quantized, b_quantized;
    qn_diff_value *quant;              /* quantization_config.* except config_groups and ignore */
    size_t n_quant;
    qn_diff_group *groups;
    size_t n_groups;
    size_t n_groups_same;              /* groups present in both and equal */
    size_t n_ignore_a, n_ignore_b;     /* entries */
    char **ignore_only_a, **ignore_only_b;  /* entries (text), sorted */
    size_t n_ignore_only_a, n_ignore_only_b;
    int ignore_expanded;               /* both sides have tensors: modules compared too */
    char **ignored_only_a, **ignored_only_b; /* Linear modules ignored on one side only */
    size_t n_ignored_only_a, n_ignored_only_b;
    int tensors_compared;              /* both sides have tensors */
    int64_t n_tensors_a, n_tensors_b;
    char **tensors_only_a, **tensors_only_b; /* sorted */
    size_t n_tensors_only_a, n_tensors_only_b;
    qn_diff_tensor *tensors_changed;   /* same name, other dtype or shape; sorted */
    size_t n_tensors_changed;
    int identical;                     /* nothing above differs */
} qn_diff;

qn_status qn_diff_paths(const char *a, const char *b, qn_diff **out, qn_error *err);
void qn_diff_free(qn_diff *d);

/* ========================================================================= end inspect and diff */

#endif
