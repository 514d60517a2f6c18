/* quench — llm-compressor recipes (YAML) and CLI shortcuts → an ordered list of modifiers, and
 * compressed-tensors target/ignore matching against a model's modules.
 *
 *   qn_recipe *r;
 *   qn_recipe_load("recipe.yaml", &r, &err);            // or qn_recipe_from_cli("W4A16", ...)
 *   qn_module mods[] = {{"model.layers.0.self_attn.q_proj", "Linear", 64, 64}, ...};
 *   qn_recipe_plan plan;
 *   qn_recipe_resolve(r, mods, n, &plan, &err);          // plan.group_of[i]: config group or -1
 *   ... qn_recipe_plan_free(&plan); qn_recipe_free(r);
 *
 * Matching (compressed-tensors §3.6 of docs/compressed-tensors-format.md; CT utils/match.py): a
 * target/ignore entry matches a module when it equals the module's full name, or its class name
 * ("Linear"), or — for "re:" entries — when the Python-`re.match` of the regex (anchored at the
 * start only, PCRE2 with lookahead) succeeds on the full name. As in CT >= 0.11, regexes are not
 * applied to class names (`_match_class` compares `__name__` exactly; CT <= 0.10 also tried them).
 * A module is owned by its most specific matching target: exact name, then regexes in
 * alphabetical order, then class name; only "Linear" modules are quantized (CT applies schemes to
 * torch.nn.Linear only).
 */
#ifndef QUENCH_RECIPE_H
#define QUENCH_RECIPE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "quench/quant.h"
#include "quench/status.h"

/* A module of the model, as compressed-tensors sees it: full dotted name and class name
 * ("Linear", "Embedding", "LlamaRMSNorm", ...). out/in = weight shape for Linear, else 0. */
typedef struct {
    const char *name;
    const char *class_name;
    int64_t out, in;
} qn_module;

typedef enum {
    QN_MOD_QUANTIZATION,   /* QuantizationModifier (round-to-nearest; data-free unless static activations) */
    QN_MOD_GPTQ,           /* GPTQModifier */
    QN_MOD_SPARSEGPT,      /* SparseGPTModifier */
    QN_MOD_SMOOTHQUANT,    /* SmoothQuantModifier */
    QN_MOD_AWQ,            /* AWQModifier */
    QN_MOD_COUNT
} qn_modifier_kind;

const char *qn_modifier_kind_name(qn_modifier_kind k);   /* "QuantizationModifier", ... */

typedef struct {
    qn_modifier_kind kind;
    char *stage;                 /* stage name from the YAML ("" for a flat recipe / CLI) */
    qn_quant_scheme *groups;     /* config groups, each with its targets (presets expanded). Only
                                  * quantizing modifiers (Quantization, GPTQ, AWQ) have groups; a
                                  * group may quantize nothing (preset UNQUANTIZED): it still owns
                                  * the modules it matches best, which then stay unquantized */
    size_t n_groups;
    char **group_names;          /* [n_groups]: config_groups keys, or "group_<i>" for schemes */
    char **ignore;
    size_t n_ignore;
    int has_kv_cache_scheme;
    qn_quant_args kv_cache_scheme;
    cJSON *params;               /* the modifier's other arguments with their defaults filled in
                                  * (GPTQ: block_size, dampening_frac, actorder, actorder_default
                                  * = true when actorder was not given and "static" only fills
                                  * groups without one, offload_hessians, sequential_targets;
                                  * SparseGPT: sparsity, mask_structure, targets, ...; SmoothQuant:
                                  * smoothing_strength, mappings; AWQ: mappings, duo_scaling,
                                  * n_grid, ...; QuantizationMixin ones: observer overrides,
                                  * bypass_divisibility_checks) */
    char *path;                  /* "quant_stage.quant_modifiers.QuantizationModifier" (for errors) */
} qn_modifier;

typedef struct qn_recipe qn_recipe;

/* Parses llm-compressor recipe YAML: either `<stage>: {<name>_modifiers|modifiers: {Modifier: args}}`
 * stages, or a flat `{Modifier: args}` mapping. QuantizationModifier args: targets, scheme (preset
 * name, or a mapping preset -> targets), config_groups, ignore, kv_cache_scheme. Unknown keys,
 * unknown modifiers, and modifiers quench does not run yet are errors naming the file and field. */
qn_status qn_recipe_load(const char *path, qn_recipe **out, qn_error *err);
qn_status qn_recipe_parse(const char *yaml, size_t len, const char *name_for_errors, qn_recipe **out,
                          qn_error *err);

/* Inputs larger than this or nested deeper are rejected. */
#define QN_RECIPE_MAX_BYTES ((size_t)16 << 20)
#define QN_RECIPE_MAX_DEPTH 64

/* Which modifiers qn_recipe_parse_ex accepts besides those this version runs (QuantizationModifier).
 * Without the flag, a recipe naming another modifier is parsed and validated, then refused with
 * "<name>: GPTQModifier is not supported yet by this version of quench (supported: ...)". */
#define QN_RECIPE_ALLOW(kind) (1u << (unsigned)(kind))
#define QN_RECIPE_ALLOW_ALL ((1u << (unsigned)QN_MOD_COUNT) - 1u)
/* The modifiers qn_recipe_parse / qn_recipe_load accept. */
#define QN_RECIPE_SUPPORTED \
    (QN_RECIPE_ALLOW(QN_MOD_QUANTIZATION) | QN_RECIPE_ALLOW(QN_MOD_GPTQ) | QN_RECIPE_ALLOW(QN_MOD_SPARSEGPT) | \
     QN_RECIPE_ALLOW(QN_MOD_SMOOTHQUANT) | QN_RECIPE_ALLOW(QN_MOD_AWQ))

qn_status qn_recipe_parse_ex(const char *yaml, size_t len, const char *name_for_errors, unsigned flags,
                             qn_recipe **out, qn_error *err);
qn_status qn_recipe_load_ex(const char *path, unsigned flags, qn_recipe **out, qn_error *err);
/* `--scheme NAME [--targets ...] [--ignore ...]`: one QuantizationModifier; targets default to
 * ["Linear"] (targets NULL or n_targets 0), ignore to ["lm_head", "re:.*mlp.gate$"] (ignore NULL; a non-NULL ignore
 * with n_ignore 0 means no ignore list). The recipe's YAML is the equivalent llm-compressor recipe. */
qn_status qn_recipe_from_cli(const char *scheme, const char *const *targets, size_t n_targets,
                             const char *const *ignore, size_t n_ignore, qn_recipe **out, qn_error *err);
void qn_recipe_free(qn_recipe *r);

size_t qn_recipe_modifier_count(const qn_recipe *r);
const qn_modifier *qn_recipe_modifier(const qn_recipe *r, size_t i);
/* 1 when a modifier needs calibration data (GPTQ, SparseGPT, SmoothQuant, AWQ, static activations,
 * kv cache scales); 0 for data-free recipes (weight RTN, dynamic activations). */
int qn_recipe_needs_calibration(const qn_recipe *r);
/* The YAML text the recipe came from (or an equivalent one for CLI recipes), for recipe.yaml. */
const char *qn_recipe_yaml(const qn_recipe *r);

/* 1 if `target` (exact name, class name, or "re:regex") matches the module; -1 with err on a bad regex. */
int qn_target_matches(const char *target, const qn_module *m, qn_error *err);

/* Which config group each module falls in, over all quantizing modifiers of the recipe (the
 * last modifier that assigns a module wins, as llm-compressor applies them in order). */
typedef struct {
    size_t n_modules;
    int *group_of;              /* [n_modules]: index into groups, or -1 (not quantized) */
    int *ignored;               /* [n_modules]: 1 when an ignore entry matched a targeted module */
    const qn_quant_scheme *groups;   /* borrowed from the recipe, merged in order */
    size_t n_groups;
    const qn_quant_args *kv_cache_scheme;   /* NULL if none */
    const char **unmatched_ignore;  /* ignore entries matching no module at all (borrowed strings):
                                     * allowed, as in llm-compressor / compressed-tensors, which
                                     * never check them; a CLI may warn about them */
    size_t n_unmatched_ignore;
    const char **unmatched_targets; /* owned messages: "re:" targets matching no module (their
                                     * modifier quantizes other modules); a CLI warns about them */
    size_t n_unmatched_targets;
} qn_recipe_plan;

/* Errors (naming the recipe, the modifier and the entry): an exact-name target that matches no
 * module (or a "re:" one whose modifier then quantizes nothing), a
 * quantizing modifier that quantizes no Linear module, group-quantized weights whose `in` is not a
 * multiple of group_size (unless bypass_divisibility_checks), a regex that does not compile or fails
 * to match, fused shards (q/k/v, gate/up, q_a/kv_a) of one layer or the experts of one MoE layer
 * quantized differently or partly ignored (vLLM loads them as one layer). */
qn_status qn_recipe_resolve(const qn_recipe *r, const qn_module *mods, size_t n, qn_recipe_plan *plan,
                            qn_error *err);
void qn_recipe_plan_free(qn_recipe_plan *plan);

/* ========================================================================================== */
/* vLLM compatibility check (src/recipe/vllm_compat.c)                                        */
/*                                                                                            */
/* What a resolved plan would write, checked before anything is written against what vLLM     */
/* does not load or run (docs/compressed-tensors-format.md §6.5, plus §6.3a MoE and §6.4 KV   */
/* cache). The library only returns the messages; `quench compress` prints each as a warning  */
/* (or, with --strict-vllm, refuses to write).                                                */
/*                                                                                            */
/*   qn_vllm_check_opts vo = {.sparse_format = "dense"};                                      */
/*   qn_vllm_warnings w;                                                                      */
/*   if (qn_vllm_check(recipe, &plan, mods, n, &vo, &w, &err)) ... err.msg ...;               */
/*   for (size_t i = 0; i < w.n; i++) fprintf(stderr, "warning: %s\n", w.items[i].message);   */
/*   qn_vllm_warnings_free(&w);                                                               */
/* ========================================================================================== */

typedef enum {
    QN_VLLM_DENSE_FORMAT,     /* a quantized group stored format "dense" (fake-quantized, frozen) */
    QN_VLLM_INT_TENSOR,       /* weight-only int weights with strategy tensor (or block / tensor_group) */
    QN_VLLM_INT_UNPACKED,     /* weight-only int weights stored naive/int-quantized (not packed) */
    QN_VLLM_ASYM_WEIGHTS,     /* asymmetric weights with input activations (W8A8 int8/fp8), or fp weights */
    QN_VLLM_WNA16_BITS,       /* weight-only int weights of num_bits other than 4 or 8 */
    QN_VLLM_MARLIN_GROUP,     /* weight-only int group_size other than 32, 64, 128 (or channel) */
    QN_VLLM_SPARSE24,         /* a SparseGPTModifier with mask_structure "2:4" (either sparse layout) */
    QN_VLLM_MARLIN24,         /* a group stored format "marlin-24" */
    QN_VLLM_KV_CACHE,         /* kv_cache_scheme other than fp8 per-tensor symmetric (§6.4) */
    QN_VLLM_MOE_SCHEME,       /* MoE experts whose scheme no group targeting "Linear" carries (§6.3a) */
    QN_VLLM_ROUTER,           /* a MoE router (mlp.gate, mlp.shared_expert_gate) quantized (§6.3a) */
    QN_VLLM_RULE_COUNT
} qn_vllm_rule;

const char *qn_vllm_rule_name(qn_vllm_rule r);   /* "dense-format", "int-tensor", ... */

typedef struct {
    const char *format;          /* NULL, or the format forced on every quantized module (as
                                  * qn_export_opts.format); NULL: each group's own or inferred one */
    const char *sparse_format;   /* 2:4 output layout (--sparse-format): NULL or "dense", or
                                  * "sparse-24-bitmask" */
    int ct_version;              /* 0: QN_CT_VERSION_DEFAULT (as qn_export_opts.ct_version) */
} qn_vllm_check_opts;

typedef struct {
    qn_vllm_rule rule;
    char *message;               /* one line: the recipe, the config group (its recipe path and the
                                  * group_N name it is written under, its Linear count and first
                                  * module) or setting, and the vLLM limitation it runs into */
} qn_vllm_warning;

typedef struct {
    qn_vllm_warning *items;
    size_t n;
} qn_vllm_warnings;

/* Checks the plan (qn_recipe_resolve of `r` on mods[0..n)) against vLLM's limits. Only config
 * groups that own at least one module are checked; one warning per group and rule, one per
 * SparseGPTModifier for 2:4, one for all quantized routers. *out is filled (n = 0: nothing to
 * report) and freed with qn_vllm_warnings_free; errors only for bad arguments or memory. */
qn_status qn_vllm_check(const qn_recipe *r, const qn_recipe_plan *plan, const qn_module *mods, size_t n,
                        const qn_vllm_check_opts *opts, qn_vllm_warnings *out, qn_error *err);
void qn_vllm_warnings_free(qn_vllm_warnings *w);

#endif
