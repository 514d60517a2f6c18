/* quench inspect: what a checkpoint's quantization_config says, what vLLM makes of it, and whether
 * the tensors on disk are the ones it implies.
 *
 * References (docs/compressed-tensors-format.md): §3 quantization_config, §3.6 matching, §3.7 KV
 * cache, §3.8 sparsity, §5.3-§5.7 and §5.10 tensors per format, §6.1-§6.4 vLLM (discovery, Linear
 * schemes and their minimum compute capability, fused layers, MoE, KV cache).
 *
 * Steps:
 *  1. config.json: parsed as JSON (errors name the byte and line), then by qn_config_load_file for
 *     the architecture (an unsupported one is a note: the module list then comes from the tensors).
 *  2. The modules: Linear modules named as qn_export_list_modules names them (self_attn.*proj*,
 *     mlp.*_proj, experts, shared experts, the router mlp.gate, lm_head), found from any tensor of
 *     theirs (weight, weight_packed, weight_scale, ...) so that a module whose weight tensor was
 *     lost still shows up; plus the Linears config.json implies (plan_params.c's tensor list
 *     expanded per layer and expert), which give the expected [out, in]. Every other tensor prefix
 *     (norms, embeddings, and the parents self_attn / mlp / layers.N) is a non-Linear module, for
 *     the ignore-list analysis.
 *  3. Decisions as compressed-tensors makes them (§3.6): an ignore entry (name, "re:" regex,
 *     class) drops the module; otherwise the most specific target owns it: exact name, then the
 *     regexes in alphabetical order, then class names; the same target string in two groups
 *     belongs to the later one.
 *  4. vLLM: fused shards and MoE blocks must agree (§6.3, §6.3a); each group's Linear scheme and
 *     its kernels' minimum compute capability (§6.2), checked against the GPUs of plan_gpu.c.
 *  5. Tensors of every Linear against its decision (§5.10): quantized ones per format, unquantized
 *     ones a plain float `weight` and no quantization parameters.
 *
 * Choices that are ours:
 *  - Scales must have the dtype of the model's unquantized weights (model.embed_tokens.weight,
 *    else torch_dtype): compressed-tensors stores them in the weight dtype (§5.3); vLLM would
 *    convert another float dtype, so a deviation is still reported (as a dtype mismatch).
 *  - Unquantized Linears may keep any of F16 / BF16 / F32 (HF writes the model dtype, but an F32
 *    lm_head is loadable).
 *  - A tensor-strategy scale may be stored as [1] or [] or [1, 1] (numel 1).
 *  - Pack layouts: CT >= 0.17 dense, older per-word (§5.4), from the config's version (0.13 when
 *    absent); for 1, 2, 4, 8 bits both are the same.
 */
#define _GNU_SOURCE /* strverscmp */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "plan_internal.h"
#include "quench/export.h"
#include "quench/plan.h"
#include "export/export_internal.h"
#include "quench/quant.h"
#include "quench/recipe.h"
#include "quench/safetensors.h"
#include "recipe/recipe_internal.h"

#define MAX_CONFIG_BYTES (64u << 20)
#define MAX_MODULES (1u << 22)

/* ------------------------------------------------------------------------------------------ */
/* Names                                                                                       */

const char *qn_find_kind_name(qn_find_kind k) {
    static const char *const n[QN_FIND_KIND_COUNT] = {
        [QN_FIND_CONFIG] = "config",
        [QN_FIND_VLLM] = "vllm",
        [QN_FIND_UNMATCHED_LINEAR] = "unmatched_linear",
        [QN_FIND_IGNORE_UNUSED] = "ignore_unused",
        [QN_FIND_IGNORE_NON_LINEAR] = "ignore_non_linear",
        [QN_FIND_IGNORE_CLASS] = "ignore_class",
        [QN_FIND_FUSED_SPLIT] = "fused_split",
        [QN_FIND_MOE_SPLIT] = "moe_split",
        [QN_FIND_KV_CACHE] = "kv_cache",
        [QN_FIND_TENSOR_MISSING] = "tensor_missing",
        [QN_FIND_TENSOR_DTYPE] = "tensor_dtype",
        [QN_FIND_TENSOR_SHAPE] = "tensor_shape",
        [QN_FIND_TENSOR_UNEXPECTED] = "tensor_unexpected",
    };
    return (int)k >= 0 && k < QN_FIND_KIND_COUNT ? n[k] : "?";
}

const char *qn_find_level_name(qn_find_level l) {
    return l == QN_FIND_ERROR ? "error" : l == QN_FIND_WARNING ? "warning" : "note";
}

int qn_find_kind_is_tensor(qn_find_kind k) {
    return k == QN_FIND_TENSOR_MISSING || k == QN_FIND_TENSOR_DTYPE || k == QN_FIND_TENSOR_SHAPE ||
           k == QN_FIND_TENSOR_UNEXPECTED;
}

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                               */

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* String -> index hash map; keys borrowed (they must outlive the map). */
typedef struct {
    const char **keys;
    size_t *vals;
    size_t cap, n;
} smap;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void smap_free(smap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static int smap_grow(smap *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    const char **k = calloc(cap, sizeof *k);
    size_t *v = calloc(cap, sizeof *v);
    if (!k || !v) { free(k); free(v); return -1; }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = (size_t)hash_str(m->keys[i]) & (cap - 1);
        while (k[j]) j = (j + 1) & (cap - 1);
        k[j] = m->keys[i];
        v[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = k;
    m->vals = v;
    m->cap = cap;
    return 0;
}

/* Returns the slot value pointer of `key` (NULL when absent). */
static size_t *smap_get(const smap *m, const char *key) {
    if (!m->cap) return NULL;
    size_t j = (size_t)hash_str(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (!strcmp(m->keys[j], key)) return &m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

/* Inserts key -> v when absent (returns 0), or leaves the existing value (returns 1); -1 no memory. */
static int smap_put(smap *m, const char *key, size_t v) {
    if (smap_get(m, key)) return 1;
    if ((m->n + 1) * 2 > m->cap && smap_grow(m)) return -1;
    size_t j = (size_t)hash_str(key) & (m->cap - 1);
    while (m->keys[j]) j = (j + 1) & (m->cap - 1);
    m->keys[j] = key;
    m->vals[j] = v;
    m->n++;
    return 0;
}

static void shape_text(int ndim, const int64_t *s, char *b, size_t n) {
    size_t k = (size_t)snprintf(b, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(b + k, n - k, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (k < n) snprintf(b + k, n - k, "]");
}

/* Natural order ("layers.2" before "layers.10"), ties broken byte-wise so it is a total order. */
static int natcmp(const char *a, const char *b) {
    int c = strverscmp(a, b);
    return c ? c : strcmp(a, b);
}

static int cmp_str_ptr(const void *a, const void *b) {
    return natcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ------------------------------------------------------------------------------------------ */
/* Findings                                                                                    */

typedef struct {
    qn_inspect *r;
    size_t cap;
    int oom;
} findings;

static void add_finding(findings *f, qn_find_level lv, qn_find_kind kind, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void add_finding(findings *f, qn_find_level lv, qn_find_kind kind, const char *subject, const char *fmt, ...) {
    qn_inspect *r = f->r;
    r->n_by_level[lv]++;
    if (r->n_by_kind[kind]++ >= QN_INSPECT_MAX_FINDINGS_PER_KIND) return;
    if (r->n_findings == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 32;
        qn_finding *nf = realloc(r->findings, cap * sizeof *nf);
        if (!nf) { f->oom = 1; return; }
        r->findings = nf;
        f->cap = cap;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qn_finding *x = &r->findings[r->n_findings];
    x->level = lv;
    x->kind = kind;
    x->subject = xstrdup(subject ? subject : "");
    x->message = xstrdup(msg);
    if (!x->subject || !x->message) {
        free(x->subject);
        free(x->message);
        f->oom = 1;
        return;
    }
    r->n_findings++;
}

/* ------------------------------------------------------------------------------------------ */
/* Scheme descriptions, presets                                                                */

static const char *torch_short(qn_torch_dtype d) {
    const char *n = qn_torch_dtype_name(d);
    if (!n) return "?";
    if (!strncmp(n, "torch.", 6)) n += 6;
    if (!strcmp(n, "float8_e4m3fn")) return "fp8";
    return n;
}

static void args_text(const qn_quant_args *a, int activation, char *b, size_t n) {
    size_t k = 0;
    if (a->type == QN_QTYPE_FLOAT) k += (size_t)snprintf(b + k, n - k, "fp%d", a->num_bits);
    else k += (size_t)snprintf(b + k, n - k, "int%d", a->num_bits);
    const char *st = qn_qstrategy_name(a->strategy);
    if (k < n) {
        if (a->strategy == QN_STRATEGY_GROUP || a->strategy == QN_STRATEGY_TENSOR_GROUP)
            k += (size_t)snprintf(b + k, n - k, " %s %lld", st, (long long)a->group_size);
        else if (a->strategy == QN_STRATEGY_BLOCK && a->has_block_structure)
            k += (size_t)snprintf(b + k, n - k, " block %lldx%lld", (long long)a->block_structure[0],
                                  (long long)a->block_structure[1]);
        else
            k += (size_t)snprintf(b + k, n - k, " %s", st ? st : "?");
    }
    if (k < n) k += (size_t)snprintf(b + k, n - k, a->symmetric ? " sym" : " asym");
    if (k < n) {
        if (a->dynamic == QN_DYNAMIC_TRUE) k += (size_t)snprintf(b + k, n - k, " dynamic");
        else if (a->dynamic == QN_DYNAMIC_LOCAL) k += (size_t)snprintf(b + k, n - k, " dynamic local");
        else if (activation) k += (size_t)snprintf(b + k, n - k, " static");
    }
    if (k < n && a->actorder != QN_ACTORDER_NONE) {
        const char *ao = a->actorder == QN_ACTORDER_GROUP ? "group" : a->actorder == QN_ACTORDER_WEIGHT ? "weight"
                         : a->actorder == QN_ACTORDER_DYNAMIC ? "dynamic" : "static";
        k += (size_t)snprintf(b + k, n - k, ", actorder %s", ao);
    }
    if (k < n && a->scale_dtype != QN_TORCH_NONE) snprintf(b + k, n - k, ", %s scales", torch_short(a->scale_dtype));
}

static int args_eq_loose(const qn_quant_args *a, const qn_quant_args *b, int ignore_actorder) {
    qn_quant_args x = *a, y = *b;
    x.observer[0] = y.observer[0] = 0;
    snprintf(x.observer_kwargs, sizeof x.observer_kwargs, "{}");
    snprintf(y.observer_kwargs, sizeof y.observer_kwargs, "{}");
    if (ignore_actorder) x.actorder = y.actorder = QN_ACTORDER_NONE;
    return qn_quant_args_equal(&x, &y);
}

static int scheme_eq_loose(const qn_quant_scheme *a, const qn_quant_scheme *b, int ignore_actorder) {
    if (!a->has_weights != !b->has_weights || !a->has_input_activations != !b->has_input_activations ||
        !a->has_output_activations != !b->has_output_activations)
        return 0;
    if (a->has_weights && !args_eq_loose(&a->weights, &b->weights, ignore_actorder)) return 0;
    if (a->has_input_activations && !args_eq_loose(&a->input_activations, &b->input_activations, 0)) return 0;
    if (a->has_output_activations && !args_eq_loose(&a->output_activations, &b->output_activations, 0)) return 0;
    return 1;
}

static void find_preset(qn_inspect_group *g, int version) {
    const int vs[] = {version, QN_CT_VERSION(0, 13), QN_CT_VERSION(0, 14), QN_CT_VERSION(0, 18)};
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; qn_scheme_preset_name(i); i++) {
            const char *name = qn_scheme_preset_name(i);
            for (size_t v = 0; v < sizeof vs / sizeof *vs; v++) {
                qn_quant_scheme p;
                if (qn_scheme_preset_v(name, vs[v], &p, NULL) != QN_OK) continue;
                int eq = scheme_eq_loose(&p, &g->scheme, pass);
                qn_quant_scheme_free(&p);
                if (eq) {
                    if (pass) snprintf(g->preset, sizeof g->preset, "%s+actorder", name);
                    else snprintf(g->preset, sizeof g->preset, "%s", name);
                    return;
                }
            }
        }
        if (!g->scheme.has_weights || g->scheme.weights.actorder == QN_ACTORDER_NONE) break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* vLLM Linear schemes (§6.2)                                                                  */

static void set_scheme(qn_inspect_group *g, const char *name, int cc, int exact, const char *fb, int fb_cc) {
    snprintf(g->vllm_scheme, sizeof g->vllm_scheme, "%s", name);
    g->min_cc = cc;
    g->exact_cc = exact;
    snprintf(g->fallback, sizeof g->fallback, "%s", fb ? fb : "");
    g->fallback_cc = fb ? fb_cc : 0;
}

static void note(qn_inspect_group *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(qn_inspect_group *g, const char *fmt, ...) {
    size_t k = strlen(g->vllm_note);
    if (k && k + 2 < sizeof g->vllm_note) { memcpy(g->vllm_note + k, "; ", 3); k += 2; }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->vllm_note + k, sizeof g->vllm_note - k, fmt, ap);
    va_end(ap);
}

static qn_qstrategy strat(const qn_quant_args *a) {
    if (a->strategy != QN_STRATEGY_UNSET) return a->strategy;
    if (!a->has_group_size) return QN_STRATEGY_TENSOR;
    return a->group_size > 0 ? QN_STRATEGY_GROUP : QN_STRATEGY_CHANNEL;
}

void qn_inspect_vllm_scheme(qn_inspect_group *g, int sparse24) {
    g->vllm_scheme[0] = g->fallback[0] = g->vllm_note[0] = 0;
    g->min_cc = g->exact_cc = g->fallback_cc = 0;
    const qn_quant_scheme *s = &g->scheme;
    const qn_quant_args *w = s->has_weights ? &s->weights : NULL;
    const qn_quant_args *in = s->has_input_activations ? &s->input_activations : NULL;
    const char *fmt = g->format;
    int n_gpu = 0;
    const qn_gpu_info *gpus = qn_plan_gpu_table(&n_gpu);
    if (n_gpu > QN_INSPECT_MAX_GPUS) n_gpu = QN_INSPECT_MAX_GPUS;
    g->n_gpus = n_gpu;
    memset(g->gpu_ok, 0, sizeof g->gpu_ok);

    if (!w && !in) {
        set_scheme(g, "unquantized", 0, 0, NULL, 0);
        note(g, "the group quantizes nothing: its Linears stay in the model dtype");
    } else if (!w) {
        note(g, "input activations without weights: no vLLM Linear scheme");
    } else if (!strcmp(fmt, "dense")) {
        note(g, "format dense (fake-quantized, quantization_status frozen): vLLM has no scheme for it (§5.2, §6.5)");
    } else if (sparse24) {
        qn_qstrategy ws = strat(w), is = in ? strat(in) : QN_STRATEGY_UNSET;
        int ok8 = w->num_bits == 8 && (ws == QN_STRATEGY_TENSOR || ws == QN_STRATEGY_CHANNEL) && in &&
                  in->num_bits == 8 && (is == QN_STRATEGY_TENSOR || is == QN_STRATEGY_TOKEN) && w->type == in->type;
        if (ok8) {
            set_scheme(g, "CompressedTensors24", 90, 0, NULL, 0);
            note(g, "2:4 sparse cutlass kernels, every shard %% 8; removed from vLLM by PR #36799 (March 2026)");
        } else if (!strcmp(fmt, "marlin-24")) {
            set_scheme(g, "CompressedTensorsW4A16Sparse24", 80, 0, NULL, 0);
            note(g, "marlin-24: fp16 models only, deprecated and removed from current vLLM");
        } else {
            note(g, "2:4 sparsity with this scheme: vLLM's 2:4 kernels need 8-bit weights and 8-bit activations of one type");
        }
    } else {
        qn_qstrategy ws = strat(w);
        int wint = w->type == QN_QTYPE_INT, wfl = !wint;
        int wfp4 = wfl && w->num_bits == 4 && ws == QN_STRATEGY_TENSOR_GROUP && w->group_size == 16 && w->symmetric;
        int ifp4 = in && in->type == QN_QTYPE_FLOAT && in->num_bits == 4 && strat(in) == QN_STRATEGY_TENSOR_GROUP &&
                   in->group_size == 16 && in->symmetric;
        int wstatic = w->dynamic == QN_DYNAMIC_FALSE;
        if (wfp4 && !in) {
            set_scheme(g, "CompressedTensorsW4A16Fp4", 80, 0, "emulation", 75);
            note(g, "Marlin FP4 from 8.0, emulation from 7.5 (§6.2: 75-80); in %% 16 == 0");
        } else if (wint && w->num_bits == 4 && ws == QN_STRATEGY_GROUP && w->symmetric && wstatic && in &&
                   in->type == QN_QTYPE_FLOAT && in->num_bits == 8 && strat(in) == QN_STRATEGY_TOKEN &&
                   in->dynamic == QN_DYNAMIC_TRUE && in->symmetric) {
            set_scheme(g, "CompressedTensorsW4A8Fp8", 90, 1, NULL, 0);
            note(g, "runs on SM 9.0 exactly");
            if (w->group_size != 128) note(g, "needs group_size 128 (this group has %lld)", (long long)w->group_size);
            if (strcmp(fmt, "pack-quantized")) note(g, "needs format pack-quantized (weight_packed), not %s", fmt);
        } else if (wint && (ws == QN_STRATEGY_CHANNEL || ws == QN_STRATEGY_GROUP) && wstatic && !in &&
                   !strcmp(fmt, "pack-quantized")) {
            if (w->num_bits != 4 && w->num_bits != 8) {
                note(g, "CompressedTensorsWNA16 loads 4- and 8-bit weights only (this group: %d-bit)", w->num_bits);
            } else {
                set_scheme(g, "CompressedTensorsWNA16", 80, 0, NULL, 0);
                note(g, "Marlin: out %% 64 == 0, in %% 128 == 0 per shard");
                if (ws == QN_STRATEGY_GROUP && w->group_size != 32 && w->group_size != 64 && w->group_size != 128)
                    note(g, "Marlin takes group sizes 32, 64, 128 or channel, not %lld", (long long)w->group_size);
                if (!w->symmetric)
                    note(g, "asymmetric weights need vLLM with PR #14211 (2025; Linear) / #44025 (2026; MoE)");
            }
        } else if (wint && !in && strcmp(fmt, "pack-quantized") && strcmp(fmt, "marlin-24")) {
            note(g, "weight-only int weights must be stored pack-quantized for vLLM (this group: %s)", fmt);
        } else if (wint && !in && ws == QN_STRATEGY_TENSOR) {
            note(g, "weight-only int with strategy tensor has no vLLM kernel");
        } else if (!strcmp(fmt, "marlin-24")) {
            set_scheme(g, "CompressedTensorsW4A16Sparse24", 80, 0, NULL, 0);
            note(g, "marlin-24: fp16 models only, deprecated and removed from current vLLM");
        } else if (wfp4 && ifp4) {
            set_scheme(g, "CompressedTensorsW4A4Fp4", 100, 0, "emulation", 80);
            note(g, "FP4 kernels from 10.0; 8.0 with the emulation environment variable");
        } else if (wfl && w->num_bits == 8 && w->symmetric && wstatic &&
                   (ws == QN_STRATEGY_TENSOR || ws == QN_STRATEGY_CHANNEL || ws == QN_STRATEGY_BLOCK) &&
                   w->scale_dtype != QN_TORCH_UINT8) {
            int ifp8 = in && in->type == QN_QTYPE_FLOAT && in->num_bits == 8 &&
                       (in->dynamic != QN_DYNAMIC_FALSE || (strat(in) == QN_STRATEGY_TENSOR && in->symmetric));
            if (ifp8) {
                set_scheme(g, "CompressedTensorsW8A8Fp8", 89, 0, "CompressedTensorsW8A16Fp8", 80);
                note(g, "below 8.9 vLLM falls back to the weight-only W8A16Fp8 kernel");
            } else if (!in) {
                set_scheme(g, "CompressedTensorsW8A16Fp8", 80, 0, NULL, 0);
            } else {
                note(g, "fp8 weights with these input activations match no vLLM scheme");
            }
            if (ws == QN_STRATEGY_BLOCK && g->vllm_scheme[0])
                note(g, "block: every shard but the last of a fused layer, and every TP split, %% block size");
        } else if (wint && w->num_bits == 8 && wstatic && (ws == QN_STRATEGY_TENSOR || ws == QN_STRATEGY_CHANNEL) && in &&
                   in->type == QN_QTYPE_INT && in->num_bits == 8 &&
                   ((in->dynamic == QN_DYNAMIC_FALSE && strat(in) == QN_STRATEGY_TENSOR) ||
                    (in->dynamic == QN_DYNAMIC_TRUE && strat(in) == QN_STRATEGY_TOKEN))) {
            if (!w->symmetric) {
                note(g, "asymmetric weights: vLLM's W8A8 int8 scheme needs symmetric weights");
            } else {
                set_scheme(g, "CompressedTensorsW8A8Int8", 75, 0, NULL, 0);
            }
        } else if (wint && w->num_bits == 4 && w->symmetric && (ws == QN_STRATEGY_GROUP || ws == QN_STRATEGY_CHANNEL) && in &&
                   in->type == QN_QTYPE_INT && in->num_bits == 8 && strat(in) == QN_STRATEGY_TOKEN &&
                   in->dynamic == QN_DYNAMIC_TRUE) {
            set_scheme(g, "CompressedTensorsW4A8Int", 1, 0, NULL, 0);
            note(g, "CPU kernels (minimum capability 1 in §6.2); weight stored unpacked as int8");
        } else if (wfl && w->scale_dtype == QN_TORCH_UINT8) {
            note(g, "MX formats are not among the vLLM schemes of spec §6.2 (support varies by version, UNCONFIRMED)");
        } else {
            note(g, "no vLLM Linear scheme of spec §6.2 takes these weights/activations");
        }
    }
    if (!g->vllm_scheme[0]) return;
    for (int i = 0; i < n_gpu; i++) {
        int cc = gpus[i].cc;
        if (cc <= 0) g->gpu_ok[i] = -1;
        else if (g->exact_cc) g->gpu_ok[i] = cc == g->min_cc ? 2 : 0;
        else if (cc >= g->min_cc) g->gpu_ok[i] = 2;
        else if (g->fallback_cc && cc >= g->fallback_cc) g->gpu_ok[i] = 1;
        else g->gpu_ok[i] = 0;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Modules                                                                                     */

#define DEC_IGNORED (-2)
#define DEC_NONE (-1)

typedef struct {
    char *name;
    const char *cls;      /* class name used for class-name matching */
    int linear;           /* a Linear (quantizable) module */
    int mtp;              /* in a decoder layer >= num_hidden_layers */
    int64_t out, in;      /* shape config.json implies (0: unknown) */
    int from_tensors, from_config;
    size_t first_tensor;  /* SIZE_MAX: none; chain through tnext */
    int decision;         /* group index, DEC_IGNORED, DEC_NONE */
    int owner;            /* group it would have without the ignore list */
} imod;

typedef struct {
    imod *m;
    size_t n, cap;
    smap map;
    const qn_model_config *cfg;   /* NULL when the architecture is unknown */
    char cls_norm[96], cls_attn[96], cls_mlp[96];
    size_t *tnext;                /* [n_tensors] */
} modules;

static void modules_free(modules *M) {
    for (size_t i = 0; i < M->n; i++) free(M->m[i].name);
    free(M->m);
    smap_free(&M->map);
    free(M->tnext);
    memset(M, 0, sizeof *M);
}



/* classify a module name: linear / mtp / class */
static void classify(const modules *M, const char *name, int *linear, int *mtp, const char **cls) {
    const char *rest;
    int64_t li = qnx_layer_of(name, &rest);
    *linear = 0;
    *mtp = 0;
    *cls = "Module";
    if (!strcmp(name, "lm_head")) { *linear = 1; *cls = "Linear"; return; }
    if (li >= 0) {
        if (M->cfg && li >= M->cfg->num_hidden_layers) *mtp = 1;
        if (qnx_is_linear_in_layer(rest)) { *linear = 1; *cls = "Linear"; return; }
        if (!strcmp(rest, "self_attn")) { *cls = M->cls_attn; return; }
        if (!strcmp(rest, "mlp")) { *cls = M->cls_mlp; return; }
    }
    if (ends_with(name, "embed_tokens")) { *cls = "Embedding"; return; }
    const char *leaf = strrchr(name, '.');
    leaf = leaf ? leaf + 1 : name;
    if (strstr(leaf, "norm")) *cls = M->cls_norm;
}

/* Index of module `name`, added when absent; SIZE_MAX on out of memory. */
static size_t module_add(modules *M, const char *name) {
    size_t *v = smap_get(&M->map, name);
    if (v) return *v;
    if (M->n >= MAX_MODULES) return SIZE_MAX;
    if (M->n == M->cap) {
        size_t cap = M->cap ? M->cap * 2 : 256;
        imod *nm = realloc(M->m, cap * sizeof *nm);
        if (!nm) return SIZE_MAX;
        M->m = nm;
        M->cap = cap;
    }
    imod *x = &M->m[M->n];
    memset(x, 0, sizeof *x);
    x->name = xstrdup(name);
    if (!x->name) return SIZE_MAX;
    classify(M, name, &x->linear, &x->mtp, &x->cls);
    x->first_tensor = SIZE_MAX;
    x->decision = DEC_NONE;
    x->owner = DEC_NONE;
    if (smap_put(&M->map, x->name, M->n) < 0) { free(x->name); return SIZE_MAX; }
    return M->n++;
}

/* The parents of a module ("a.b.c" -> "a.b", "a"), as non-Linear modules. */
static int add_parents(modules *M, const char *name) {
    char buf[1024];
    size_t l = strlen(name);
    if (l >= sizeof buf) return 0;
    memcpy(buf, name, l + 1);
    for (char *p = strrchr(buf, '.'); p; p = strrchr(buf, '.')) {
        *p = 0;
        if (smap_get(&M->map, buf)) break;   /* its parents are there too */
        if (module_add(M, buf) == SIZE_MAX) return -1;
    }
    return 0;
}

static void arch_prefix(const qn_model_config *cfg, modules *M) {
    char pre[64] = "";
    if (cfg) {
        const char *a = cfg->architecture;
        const char *e = strstr(a, "ForCausalLM");
        size_t l = e ? (size_t)(e - a) : strlen(a);
        if (l >= sizeof pre) l = sizeof pre - 1;
        memcpy(pre, a, l);
        pre[l] = 0;
    }
    snprintf(M->cls_norm, sizeof M->cls_norm, "%sRMSNorm", pre);
    snprintf(M->cls_attn, sizeof M->cls_attn, "%sAttention", pre);
    snprintf(M->cls_mlp, sizeof M->cls_mlp, "%sMLP", pre);
}

static qn_status modules_from_tensors(modules *M, const qn_st_set *set, qn_error *err) {
    size_t nt = qn_st_set_count(set);
    M->tnext = malloc((nt ? nt : 1) * sizeof *M->tnext);
    if (!M->tnext) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nt; i++) {
        const qn_tensor *t = qn_st_set_get(set, i);
        M->tnext[i] = SIZE_MAX;
        const char *dot = strrchr(t->name, '.');
        if (!dot || dot == t->name) continue;
        size_t l = (size_t)(dot - t->name);
        char mod[1024];
        if (l >= sizeof mod) continue;
        memcpy(mod, t->name, l);
        mod[l] = 0;
        size_t k = module_add(M, mod);
        if (k == SIZE_MAX || add_parents(M, mod)) return qn_error_set(err, QN_ERR_NOMEM, "out of memory listing modules");
        imod *x = &M->m[k];
        x->from_tensors = 1;
        /* prepend to the module's tensor chain (order does not matter) */
        M->tnext[i] = x->first_tensor;
        x->first_tensor = i;
    }
    return QN_OK;
}

static qn_status add_config_module(modules *M, const char *name, int64_t rows, int64_t cols, int is_weight, qn_error *err) {
    /* name: the module's full name; rows/cols of its weight (cols 0: 1-D parameter) */
    size_t k = module_add(M, name);
    if (k == SIZE_MAX || add_parents(M, name)) return qn_error_set(err, QN_ERR_NOMEM, "out of memory listing modules");
    imod *x = &M->m[k];
    x->from_config = 1;
    if (x->linear && is_weight && cols > 0) {
        x->out = rows;
        x->in = cols;
    }
    return QN_OK;
}

static qn_status modules_from_config(modules *M, const qn_model_config *cfg, qn_error *err) {
    pt_entry e[PT_MAX];
    int n = 0;
    qn_status st = pt_build(cfg, e, &n, err);
    if (st) return st;
    const int64_t L = cfg->num_hidden_layers, nm = cfg->num_nextn_predict_layers;
    char name[1024];
    for (int i = 0; i < n; i++) {
        if (e[i].layer != PT_LAYER_GLOBAL) continue;
        const char *pn = e[i].name;
        const char *dot = strrchr(pn, '.');
        snprintf(name, sizeof name, "%.*s", (int)(dot - pn), pn);
        if ((st = add_config_module(M, name, e[i].rows, e[i].cols, !strcmp(dot + 1, "weight"), err))) return st;
    }
    if (cfg->tie_word_embeddings && (st = add_config_module(M, "lm_head", cfg->vocab_size, cfg->hidden_size, 1, err)))
        return st;
    for (int64_t li = 0; li < L + nm; li++) {
        int mtp = li >= L, moe = qn_config_layer_is_moe(cfg, li);
        for (int i = 0; i < n; i++) {
            const pt_entry *x = &e[i];
            if (x->layer == PT_LAYER_GLOBAL || x->mtp != mtp) continue;
            if (!mtp && ((x->layer == PT_LAYER_DENSE && moe) || (x->layer == PT_LAYER_MOE && !moe))) continue;
            const char *dot = strrchr(x->name, '.');
            int is_w = !strcmp(dot + 1, "weight");
            const char *star = strstr(x->name, ".*.");
            if (star) {
                for (int64_t ex = 0; ex < x->per_layer; ex++) {
                    snprintf(name, sizeof name, "model.layers.%lld.%.*s.%lld.%.*s", (long long)li,
                             (int)(star - x->name), x->name, (long long)ex, (int)(dot - star - 3), star + 3);
                    if ((st = add_config_module(M, name, x->rows, x->cols, is_w, err))) return st;
                }
            } else {
                snprintf(name, sizeof name, "model.layers.%lld.%.*s", (long long)li, (int)(dot - x->name), x->name);
                if ((st = add_config_module(M, name, x->rows, x->cols, is_w, err))) return st;
            }
        }
    }
    return QN_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Matchers                                                                                    */

typedef struct {
    const char *s;
    int group;        /* for targets */
    qnr_regex *re;    /* "re:" entries */
} mentry;

typedef struct {
    smap exact;          /* exact target -> group (the later group wins) */
    mentry *re;          /* regex targets sorted by string */
    size_t n_re;
    mentry *cls;         /* other targets (class names), sorted by string */
    size_t n_cls;
    mentry *all;         /* every target: [n_all] (for "matches nothing") */
    size_t n_all;
    int64_t *hits;       /* [n_all] */
} tmatch;

static void tmatch_free(tmatch *t) {
    for (size_t i = 0; i < t->n_all; i++) qnr_regex_free(t->all[i].re);
    free(t->all);
    free(t->re);
    free(t->cls);
    free(t->hits);
    smap_free(&t->exact);
    memset(t, 0, sizeof *t);
}

static int cmp_mentry(const void *a, const void *b) {
    const mentry *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    if (c) return c;
    return x->group < y->group ? -1 : x->group > y->group;
}

static qn_status compile_entry(const char *s, qnr_regex **re, const char *cfgname, const char *field, qn_error *err) {
    *re = NULL;
    if (strncmp(s, "re:", 3)) return QN_OK;
    qn_status st = qnr_regex_compile(s + 3, re, err);
    if (st) qn_error_prefix(err, "%s: %s", cfgname, field);
    return st;
}

/* Owner group of a module by the targets, or DEC_NONE; counts the target used in t->hits. The exact map
 * holds every non-regex target, so looking the module's name up is the "exact name" rule and the
 * sorted class list the "class name" rule. */
static int tmatch_owner(tmatch *t, const imod *m, qn_error *err, int *failed) {
    size_t *v = smap_get(&t->exact, m->name);
    if (v) { t->hits[*v]++; return t->all[*v].group; }
    for (size_t i = 0; i < t->n_re; i++) {
        int r = qnr_regex_match(t->re[i].re, m->name, err);
        if (r < 0) { *failed = 1; return DEC_NONE; }
        if (r) {
            /* the same regex in a later group wins */
            size_t j = i;
            while (j + 1 < t->n_re && !strcmp(t->re[j + 1].s, t->re[i].s)) j++;
            for (size_t k = 0; k < t->n_all; k++)
                if (t->all[k].re == t->re[j].re) t->hits[k]++;
            return t->re[j].group;
        }
    }
    for (size_t i = 0; i < t->n_cls; i++) {
        if (!strcmp(t->cls[i].s, m->cls)) {
            size_t j = i;
            while (j + 1 < t->n_cls && !strcmp(t->cls[j + 1].s, t->cls[i].s)) j++;
            for (size_t k = 0; k < t->n_all; k++)
                if (t->all[k].s == t->cls[j].s && t->all[k].group == t->cls[j].group) t->hits[k]++;
            return t->cls[j].group;
        }
    }
    return DEC_NONE;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading config.json                                                                         */

static qn_status read_text(const char *path, char **out, size_t *len, qn_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qn_error_set(err, errno == ENOENT ? QN_ERR_NOT_FOUND : QN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return qn_error_set(err, QN_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > MAX_CONFIG_BYTES) {
        fclose(f);
        return qn_error_set(err, QN_ERR_FORMAT, "%s: %lld bytes is too large for a config file", path, (long long)sb.st_size);
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

static qn_status parse_json(const char *path, const char *text, size_t len, cJSON **root, qn_error *err) {
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!*root) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
        int line = 1;
        for (size_t i = 0; i < off; i++) line += text[i] == '\n';
        return qn_error_set(err, QN_ERR_FORMAT, "%s: invalid JSON near byte %zu (line %d)", path, off, line);
    }
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return qn_error_set(err, QN_ERR_FORMAT, "%s: top level is not a JSON object", path);
    }
    return QN_OK;
}

static int parse_version(const char *s) {
    char *e;
    long a = strtol(s, &e, 10);
    if (e == s || *e != '.' || a < 0 || a > 1000) return -1;
    const char *p = e + 1;
    long b = strtol(p, &e, 10);
    if (e == p || b < 0 || b > 999) return -1;
    return QN_CT_VERSION((int)a, (int)b);
}

static qn_status get_string(const cJSON *obj, const char *key, char *dst, size_t n, const char *cfgname, const char *ctx,
                            qn_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    dst[0] = 0;
    if (!v || cJSON_IsNull(v)) return QN_OK;
    if (!cJSON_IsString(v))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s.%s' must be a string", cfgname, ctx, key);
    snprintf(dst, n, "%s", v->valuestring);
    return QN_OK;
}

/* A list of strings (or null) -> owned array. */
static qn_status get_string_list(const cJSON *v, char ***out, size_t *n, const char *cfgname, const char *field, qn_error *err) {
    *out = NULL;
    *n = 0;
    if (!v || cJSON_IsNull(v)) return QN_OK;
    if (!cJSON_IsArray(v)) return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s' must be a list of strings", cfgname, field);
    size_t cnt = (size_t)cJSON_GetArraySize(v), i = 0;
    char **a = calloc(cnt ? cnt : 1, sizeof *a);
    if (!a) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e)) {
            for (size_t k = 0; k < i; k++) free(a[k]);
            free(a);
            return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s[%zu]' must be a string", cfgname, field, i);
        }
        if (!(a[i] = xstrdup(e->valuestring))) {
            for (size_t k = 0; k < i; k++) free(a[k]);
            free(a);
            return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        }
    }
    *out = a;
    *n = cnt;
    return QN_OK;
}

static void free_list(char **a, size_t n) {
    for (size_t i = 0; i < n; i++) free(a[i]);
    free(a);
}

/* ------------------------------------------------------------------------------------------ */
/* Tensor expectations (§5.3-§5.7, §5.10)                                                      */

enum { DT_MODEL = -1, DT_FLOAT = -2, DT_ANY = -3 };

typedef struct {
    const char *param;
    int dt;             /* qn_dtype, or DT_MODEL / DT_FLOAT / DT_ANY */
    int nd;             /* -1: any shape */
    int64_t s[3];
    int numel1;         /* any shape with one element */
    int optional;
    int64_t values[2];  /* weight_shape / shape content (0: not checked) */
} iexp;

typedef struct {
    iexp e[16];
    int n;
    char why[320];      /* the module's decision in words, for messages */
    int skip;           /* format not checked */
} iexpset;

static iexp *push(iexpset *x, const char *param, int dt, int nd, int64_t a, int64_t b) {
    iexp *e = &x->e[x->n++];
    memset(e, 0, sizeof *e);
    e->param = param;
    e->dt = dt;
    e->nd = nd;
    e->s[0] = a;
    e->s[1] = b;
    return e;
}

static int64_t cdiv(int64_t a, int64_t b) { return b > 0 ? (a + b - 1) / b : 0; }

/* The scale grid of weights args for [out, in]; 0 ok, -1 with a reason. */
static int scale_grid(const qn_quant_args *a, int64_t out, int64_t in, int64_t *sr, int64_t *sc, char *why, size_t n) {
    switch (strat(a)) {
    case QN_STRATEGY_TENSOR: *sr = 1; *sc = 1; return 0;
    case QN_STRATEGY_CHANNEL: *sr = out; *sc = 1; return 0;
    case QN_STRATEGY_GROUP:
    case QN_STRATEGY_TENSOR_GROUP:
        if (a->group_size <= 0 || in % a->group_size) {
            snprintf(why, n, "in_features %lld is not a multiple of group_size %lld", (long long)in, (long long)a->group_size);
            return -1;
        }
        *sr = out;
        *sc = in / a->group_size;
        return 0;
    case QN_STRATEGY_BLOCK:
        if (!a->has_block_structure || a->block_structure[0] <= 0 || a->block_structure[1] <= 0) {
            snprintf(why, n, "block strategy without block_structure");
            return -1;
        }
        *sr = cdiv(out, a->block_structure[0]);
        *sc = cdiv(in, a->block_structure[1]);
        return 0;
    default:
        snprintf(why, n, "weights with strategy %s have no stored scale", qn_qstrategy_name(a->strategy));
        return -1;
    }
}

static void push_scale(iexpset *x, const char *param, int dt, int64_t sr, int64_t sc, int tensor) {
    iexp *e = push(x, param, dt, 2, sr, sc);
    if (tensor) { e->numel1 = 1; e->nd = 1; e->s[0] = 1; }
}

static void push_input(iexpset *x, const qn_quant_args *a, const char *scale, const char *zp) {
    if (a->dynamic != QN_DYNAMIC_FALSE) return;
    iexp *e = push(x, scale, DT_MODEL, 1, 1, 0);
    e->numel1 = 1;
    if (!a->symmetric) {
        e = push(x, zp, QN_DT_I8, 1, 1, 0);
        e->numel1 = 1;
    }
}

/* The tensors a quantized Linear [out, in] of group scheme `s` with format `fmt` must have.
 * sparse: 0 none, 1 sparse-bitmask, 2 sparse-24-bitmask (the value tensor is replaced). */
static int build_expect(iexpset *x, const qn_quant_scheme *s, const char *fmt, int version, int64_t out, int64_t in,
                        int sparse, char *why, size_t whyn) {
    const qn_quant_args *w = &s->weights;
    int64_t sr = 1, sc = 1;
    int tensor = strat(w) == QN_STRATEGY_TENSOR;
    const char *value = "weight";
    int value_dt;
    if (!strcmp(fmt, "dense")) {
        value_dt = DT_FLOAT;
        if (scale_grid(w, out, in, &sr, &sc, why, whyn)) return -1;
        push(x, "weight", DT_FLOAT, 2, out, in);
        push_scale(x, "weight_scale", DT_FLOAT, sr, sc, tensor);
        push(x, "weight_zero_point", DT_ANY, -1, 0, 0)->optional = 1;
        push(x, "weight_g_idx", QN_DT_I32, 1, in, 0)->optional = 1;
        push(x, "input_scale", DT_ANY, -1, 0, 0)->optional = 1;
        push(x, "input_zero_point", DT_ANY, -1, 0, 0)->optional = 1;
        push(x, "weight_global_scale", DT_ANY, -1, 0, 0)->optional = 1;
        push(x, "input_global_scale", DT_ANY, -1, 0, 0)->optional = 1;
        return 0;
    }
    if (!strcmp(fmt, "naive-quantized") || !strcmp(fmt, "int-quantized") || !strcmp(fmt, "float-quantized") ||
        !strcmp(fmt, "mxfp8-quantized")) {
        if (w->type == QN_QTYPE_INT) value_dt = w->num_bits <= 8 ? QN_DT_I8 : w->num_bits <= 16 ? QN_DT_I16 : QN_DT_I32;
        else if (w->num_bits == 8) value_dt = QN_DT_F8_E4M3;
        else {
            snprintf(why, whyn, "%s cannot hold %d-bit float weights", fmt, w->num_bits);
            return -1;
        }
        int mx = w->scale_dtype == QN_TORCH_UINT8;
        if (scale_grid(w, out, in, &sr, &sc, why, whyn)) return -1;
        if (sparse == 2) {
            push(x, "compressed", value_dt, 2, out, in / 2);
            push(x, "bitmask", QN_DT_U8, 2, out, cdiv(in, 8));
            iexp *e = push(x, "shape", QN_DT_I64, 2, 2, 1);
            e->values[0] = out;
            e->values[1] = in;
        } else if (sparse == 1) {
            push(x, "compressed", value_dt, -1, 0, 0);
            push(x, "bitmask", QN_DT_U8, 2, out, cdiv(in, 8));
            push(x, "row_offsets", QN_DT_I64, 1, out, 0);
            iexp *e = push(x, "shape", QN_DT_I64, 1, 2, 0);
            e->values[0] = out;
            e->values[1] = in;
        } else {
            push(x, value, value_dt, 2, out, in);
        }
        push_scale(x, "weight_scale", mx ? QN_DT_U8 : DT_MODEL, sr, sc, tensor);
        if (!w->symmetric) push_scale(x, "weight_zero_point", w->type == QN_QTYPE_INT ? QN_DT_I8 : QN_DT_F8_E4M3, sr, sc, tensor);
        if (w->actorder == QN_ACTORDER_GROUP || w->actorder == QN_ACTORDER_DYNAMIC) push(x, "weight_g_idx", QN_DT_I32, 1, in, 0);
    } else if (!strcmp(fmt, "pack-quantized")) {
        if (w->type != QN_QTYPE_INT || w->num_bits < 1 || w->num_bits > 8) {
            snprintf(why, whyn, "pack-quantized needs 1-8 bit int weights");
            return -1;
        }
        if (scale_grid(w, out, in, &sr, &sc, why, whyn)) return -1;
        qn_pack_layout lay = version >= QN_CT_VERSION(0, 17) ? QN_PACK_DENSE : QN_PACK_LEGACY;
        push(x, "weight_packed", QN_DT_I32, 2, out, qn_pack_int32_words(in, w->num_bits, lay));
        iexp *e = push(x, "weight_shape", QN_DT_I64, 1, 2, 0);
        e->values[0] = out;
        e->values[1] = in;
        push_scale(x, "weight_scale", DT_MODEL, sr, sc, tensor);
        if (!w->symmetric) {
            if (tensor) push_scale(x, "weight_zero_point", QN_DT_I8, 1, 1, 1);
            else push(x, "weight_zero_point", QN_DT_I32, 2, qn_pack_int32_words(sr, w->num_bits, lay), sc);
        }
        if (w->actorder == QN_ACTORDER_GROUP || w->actorder == QN_ACTORDER_DYNAMIC) push(x, "weight_g_idx", QN_DT_I32, 1, in, 0);
    } else if (!strcmp(fmt, "nvfp4-pack-quantized") || !strcmp(fmt, "mxfp4-pack-quantized")) {
        int nv = fmt[0] == 'n';
        int64_t g = nv ? 16 : 32;
        if (w->type != QN_QTYPE_FLOAT || w->num_bits != 4 || in % 2 || in % g) {
            snprintf(why, whyn, "%s needs fp4 weights and in_features %% %lld == 0", fmt, (long long)g);
            return -1;
        }
        push(x, "weight_packed", QN_DT_U8, 2, out, in / 2);
        push(x, "weight_scale", nv ? QN_DT_F8_E4M3 : QN_DT_U8, 2, out, in / g);
        if (nv) push(x, "weight_global_scale", QN_DT_F32, 1, 1, 0)->numel1 = 1;
        if (s->has_input_activations && nv && s->input_activations.dynamic != QN_DYNAMIC_TRUE)
            push(x, "input_global_scale", QN_DT_F32, 1, 1, 0)->numel1 = 1;
        return 0;
    } else {
        x->skip = 1;
        return 0;
    }
    if (s->has_input_activations) push_input(x, &s->input_activations, "input_scale", "input_zero_point");
    if (s->has_output_activations) push_input(x, &s->output_activations, "output_scale", "output_zero_point");
    return 0;
}

/* Parameter names that only quantized (or sparse-compressed) Linears carry. */
static int is_quant_param(const char *p) {
    static const char *const q[] = {"weight_packed", "weight_scale", "weight_zero_point", "weight_g_idx", "weight_shape",
                                    "weight_global_scale", "input_scale", "input_zero_point", "input_global_scale",
                                    "output_scale", "output_zero_point", "compressed", "bitmask", "shape",
                                    "row_offsets", "scale_packed", "meta"};
    for (size_t i = 0; i < sizeof q / sizeof *q; i++)
        if (!strcmp(p, q[i])) return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The inspection                                                                              */

typedef struct {
    qn_inspect *r;
    findings F;
    const char *cfgname;
    cJSON *root;
    qn_model_config cfg;
    int have_cfg;
    qn_st_set *set;
    modules M;
    int version;
    char **sp_targets, **sp_ignore;
    size_t n_sp_targets, n_sp_ignore;
    int sparse_kind;       /* 0 none, 1 sparse-bitmask, 2 sparse-24-bitmask */
    qnr_regex **ig_re;     /* [n_ignore] */
    smap tensor_names;     /* tensor name -> index (for "names a tensor") */
} ictx;

void qn_inspect_free(qn_inspect *r) {
    if (!r) return;
    free(r->path);
    free(r->config_path);
    for (size_t i = 0; i < r->n_groups; i++) qn_quant_scheme_free(&r->groups[i].scheme);
    free(r->groups);
    for (size_t i = 0; i < r->n_ignore; i++) free(r->ignore[i].entry);
    free(r->ignore);
    free_list(r->ignored_modules, r->n_ignored_modules);
    for (size_t i = 0; i < r->n_findings; i++) {
        free(r->findings[i].subject);
        free(r->findings[i].message);
    }
    free(r->findings);
    free(r);
}

static int dir_has_safetensors(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (ends_with(e->d_name, ".safetensors") || !strcmp(e->d_name, "model.safetensors.index.json")) found = 1;
    }
    closedir(d);
    return found;
}

static qn_status parse_quant_config(ictx *C, qn_error *err) {
    qn_inspect *r = C->r;
    const char *cf = C->cfgname;
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(C->root, "quantization_config");
    const char *qname = "quantization_config";
    if (!qc || cJSON_IsNull(qc)) {
        qc = cJSON_GetObjectItemCaseSensitive(C->root, "compression_config");
        qname = "compression_config";
    }
    if (!qc || cJSON_IsNull(qc)) {
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(C->root, "text_config");
        if (cJSON_IsObject(tc)) qc = cJSON_GetObjectItemCaseSensitive(tc, "quantization_config");
        qname = "text_config.quantization_config";
    }
    if (!qc || cJSON_IsNull(qc)) return QN_OK;
    if (!cJSON_IsObject(qc)) return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s' must be an object", cf, qname);
    r->quantized = 1;
    qn_status st;
    if ((st = get_string(qc, "quant_method", r->quant_method, sizeof r->quant_method, cf, qname, err))) return st;
    if (!r->quant_method[0]) {
        add_finding(&C->F, QN_FIND_WARNING, QN_FIND_CONFIG, "quant_method",
                    "%s has no quant_method: transformers and vLLM dispatch on \"compressed-tensors\"", qname);
    } else if (strcmp(r->quant_method, "compressed-tensors")) {
        add_finding(&C->F, QN_FIND_NOTE, QN_FIND_CONFIG, "quant_method",
                    "quant_method \"%s\" is not compressed-tensors: the quantization_config is not analysed", r->quant_method);
        return QN_OK;
    }
    if ((st = get_string(qc, "version", r->version, sizeof r->version, cf, qname, err))) return st;
    if ((st = get_string(qc, "format", r->format, sizeof r->format, cf, qname, err))) return st;
    if ((st = get_string(qc, "quantization_status", r->status, sizeof r->status, cf, qname, err))) return st;
    C->version = QN_CT_VERSION_DEFAULT;
    if (r->version[0] && parse_version(r->version) >= 0) C->version = parse_version(r->version);
    else if (!r->version[0])
        add_finding(&C->F, QN_FIND_NOTE, QN_FIND_CONFIG, "version",
                    "no version: written by compressed-tensors <= 0.10 or another tool; read as %d.%d",
                    QN_CT_VERSION_DEFAULT / 1000, QN_CT_VERSION_DEFAULT % 1000);
    else
        add_finding(&C->F, QN_FIND_WARNING, QN_FIND_CONFIG, "version", "version \"%s\" is not MAJOR.MINOR[.PATCH]", r->version);
    int pv = C->version < QN_CT_VERSION(0, 11) ? QN_CT_VERSION(0, 11) : C->version;
    if (r->format[0]) {
        static const char *const known[] = {"dense", "int-quantized", "float-quantized", "naive-quantized", "pack-quantized",
                                            "marlin-24", "mixed-precision", "nvfp4-pack-quantized", "mxfp4-pack-quantized",
                                            "mxfp8-quantized", "sparse-bitmask", "sparse-24-bitmask"};
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++) ok |= !strcmp(known[i], r->format);
        if (!ok)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s.format' is \"%s\", not a compression format", cf, qname,
                                r->format);
    }

    /* config groups */
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(qc, "config_groups");
    if (groups && !cJSON_IsNull(groups) && !cJSON_IsObject(groups))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s.config_groups' must be an object", cf, qname);
    size_t ng = cJSON_IsObject(groups) ? (size_t)cJSON_GetArraySize(groups) : 0;
    if (ng > 4096) return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s.config_groups' has %zu groups", cf, qname, ng);
    r->groups = calloc(ng ? ng : 1, sizeof *r->groups);
    if (!r->groups) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    for (const cJSON *g = cJSON_IsObject(groups) ? groups->child : NULL; g; g = g->next) {
        char ctx[512];
        snprintf(ctx, sizeof ctx, "%s: %s.config_groups.%s", cf, qname, g->string ? g->string : "?");
        qn_inspect_group *G = &r->groups[r->n_groups];
        snprintf(G->name, sizeof G->name, "%s", g->string ? g->string : "?");
        if (cJSON_IsArray(g)) { /* "PRESET": [targets] */
            if ((st = qn_scheme_preset_v(G->name, pv, &G->scheme, err))) { qn_error_prefix(err, "%s", ctx); return st; }
            r->n_groups++;
            char **t;
            size_t nt;
            char field[300];
            snprintf(field, sizeof field, "%s.config_groups.%s", qname, G->name);
            if ((st = get_string_list(g, &t, &nt, cf, field, err))) return st;
            st = qn_quant_scheme_set_targets(&G->scheme, (const char *const *)t, nt, err);
            free_list(t, nt);
            if (st) return st;
        } else {
            if ((st = qn_quant_scheme_from_json_v(g, pv, &G->scheme, ctx, err))) return st;
            r->n_groups++;
        }
        if (G->scheme.n_targets == 0)
            add_finding(&C->F, QN_FIND_WARNING, QN_FIND_CONFIG, G->name, "config group %s has no targets", G->name);
    }
    if (!r->n_groups && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(qc, "kv_cache_scheme")))
        add_finding(&C->F, QN_FIND_NOTE, QN_FIND_CONFIG, "config_groups",
                    "no config groups and no kv_cache_scheme: transformers does not apply this quantization_config");

    /* ignore */
    char **ig;
    size_t ni;
    char field[300];
    snprintf(field, sizeof field, "%s.ignore", qname);
    if ((st = get_string_list(cJSON_GetObjectItemCaseSensitive(qc, "ignore"), &ig, &ni, cf, field, err))) return st;
    r->ignore = calloc(ni ? ni : 1, sizeof *r->ignore);
    C->ig_re = calloc(ni ? ni : 1, sizeof *C->ig_re);
    if (!r->ignore || !C->ig_re) { free_list(ig, ni); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < ni; i++) {
        r->ignore[i].entry = ig[i];
        r->ignore[i].is_regex = !strncmp(ig[i], "re:", 3);
    }
    free(ig);
    r->n_ignore = ni;
    for (size_t i = 0; i < ni; i++) {
        snprintf(field, sizeof field, "field '%s.ignore[%zu]'", qname, i);
        if ((st = compile_entry(r->ignore[i].entry, &C->ig_re[i], cf, field, err))) return st;
    }

    /* kv cache */
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(qc, "kv_cache_scheme");
    if (kv && !cJSON_IsNull(kv)) {
        char ctx[320];
        snprintf(ctx, sizeof ctx, "%s: %s.kv_cache_scheme", cf, qname);
        if ((st = qn_quant_args_from_json_v(kv, pv, &r->kv_cache, ctx, err))) return st;
        r->has_kv_cache = 1;
        const qn_quant_args *a = &r->kv_cache;
        r->kv_cache_vllm_ok = a->type == QN_QTYPE_FLOAT && a->num_bits == 8 && strat(a) == QN_STRATEGY_TENSOR && a->symmetric;
        if (!r->kv_cache_vllm_ok) {
            char t[96];
            args_text(a, 1, t, sizeof t);
            add_finding(&C->F, QN_FIND_ERROR, QN_FIND_KV_CACHE, "kv_cache_scheme",
                        "kv_cache_scheme is %s: vLLM accepts only fp8 (float, 8 bits), strategy tensor, symmetric (§6.4)", t);
        }
    }

    /* sparsity */
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(qc, "sparsity_config");
    if (sp && !cJSON_IsNull(sp) && !cJSON_IsObject(sp))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s.sparsity_config' must be an object", cf, qname);
    if (cJSON_IsObject(sp) && sp->child) {
        snprintf(field, sizeof field, "%s.sparsity_config", qname);
        if ((st = get_string(sp, "format", r->sparsity_format, sizeof r->sparsity_format, cf, field, err))) return st;
        if ((st = get_string(sp, "sparsity_structure", r->sparsity_structure, sizeof r->sparsity_structure, cf, field, err)))
            return st;
        const cJSON *gs = cJSON_GetObjectItemCaseSensitive(sp, "global_sparsity");
        if (gs && !cJSON_IsNull(gs) && !cJSON_IsNumber(gs))
            return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s.global_sparsity' must be a number", cf, field);
        r->global_sparsity = cJSON_IsNumber(gs) ? gs->valuedouble : 0.0;
        char f2[340];
        snprintf(f2, sizeof f2, "%s.targets", field);
        if ((st = get_string_list(cJSON_GetObjectItemCaseSensitive(sp, "targets"), &C->sp_targets, &C->n_sp_targets, cf, f2, err)))
            return st;
        snprintf(f2, sizeof f2, "%s.ignore", field);
        if ((st = get_string_list(cJSON_GetObjectItemCaseSensitive(sp, "ignore"), &C->sp_ignore, &C->n_sp_ignore, cf, f2, err)))
            return st;
        r->has_sparsity = r->sparsity_format[0] != 0;
        if (!r->sparsity_structure[0] && !strcmp(r->sparsity_format, "sparse-24-bitmask"))
            snprintf(r->sparsity_structure, sizeof r->sparsity_structure, "2:4");
        if (!strcmp(r->sparsity_format, "sparse-24-bitmask")) C->sparse_kind = 2;
        else if (!strcmp(r->sparsity_format, "sparse-bitmask")) C->sparse_kind = 1;
        if (r->has_sparsity && strcmp(r->sparsity_format, "dense") && C->sparse_kind == 0)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s.format' is \"%s\", not a sparsity format", cf, field,
                                r->sparsity_format);
        if (C->sparse_kind)
            add_finding(&C->F, QN_FIND_WARNING, QN_FIND_CONFIG, "sparsity_config",
                        "%s is written by compressed-tensors <= 0.14 only; CT >= 0.15 and current vLLM (after PR #36799, "
                        "March 2026) refuse it", r->sparsity_format);
    }
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(qc, "transform_config");
    if (cJSON_IsObject(tc) && tc->child) {
        r->has_transforms = 1;
        add_finding(&C->F, QN_FIND_NOTE, QN_FIND_CONFIG, "transform_config",
                    "transform_config is not empty: transforms are not checked (§3.9)");
    }
    return QN_OK;
}

/* effective format of each group + consistency of the top-level format / status */
static void check_formats(ictx *C) {
    qn_inspect *r = C->r;
    char first[32] = "";
    int distinct = 0, any_missing = 0;
    for (size_t g = 0; g < r->n_groups; g++) {
        qn_inspect_group *G = &r->groups[g];
        if (G->scheme.format[0]) snprintf(G->format, sizeof G->format, "%s", G->scheme.format);
        else if (r->format[0] && strcmp(r->format, "mixed-precision")) snprintf(G->format, sizeof G->format, "%s", r->format);
        else {
            qn_export_group_format(&G->scheme, C->version, G->format, sizeof G->format);
            if (G->scheme.has_weights || G->scheme.has_input_activations) any_missing = 1;
        }
        if (!G->scheme.has_weights && !G->scheme.has_input_activations) continue;
        if (!first[0]) { snprintf(first, sizeof first, "%s", G->format); distinct = 1; }
        else if (strcmp(first, G->format)) distinct = 2;
    }
    if (any_missing && !r->format[0])
        add_finding(&C->F, QN_FIND_ERROR, QN_FIND_CONFIG, "format",
                    "neither the groups nor quantization_config name a format: vLLM raises \"No compressed-tensors "
                    "compatible scheme was found\" (§6.1); inferred %s", first);
    else if (any_missing && !strcmp(r->format, "mixed-precision"))
        add_finding(&C->F, QN_FIND_ERROR, QN_FIND_CONFIG, "format",
                    "format is mixed-precision but some groups have no format of their own (§5.9)");
    if (distinct == 2 && r->format[0] && strcmp(r->format, "mixed-precision"))
        add_finding(&C->F, QN_FIND_WARNING, QN_FIND_CONFIG, "format",
                    "groups use several formats but the top-level format is \"%s\" (expected mixed-precision)", r->format);
    if (distinct == 1 && r->format[0] && strcmp(r->format, first) && strcmp(r->format, "mixed-precision"))
        add_finding(&C->F, QN_FIND_WARNING, QN_FIND_CONFIG, "format",
                    "top-level format \"%s\" differs from the groups' \"%s\" (CT >= 0.18 uses the group's)", r->format, first);
    if (r->status[0] && distinct) {
        int dense = !strcmp(first, "dense") && distinct == 1;
        if (dense && strcmp(r->status, "frozen"))
            add_finding(&C->F, QN_FIND_WARNING, QN_FIND_CONFIG, "quantization_status",
                        "format dense is saved with quantization_status \"frozen\", not \"%s\"", r->status);
        if (!dense && strcmp(r->status, "compressed"))
            add_finding(&C->F, QN_FIND_WARNING, QN_FIND_CONFIG, "quantization_status",
                        "compressed formats are saved with quantization_status \"compressed\", not \"%s\"", r->status);
    }
}

static qn_status build_targets(ictx *C, tmatch *T, qn_error *err) {
    qn_inspect *r = C->r;
    size_t n = 0;
    for (size_t g = 0; g < r->n_groups; g++) n += r->groups[g].scheme.n_targets;
    T->all = calloc(n ? n : 1, sizeof *T->all);
    T->re = calloc(n ? n : 1, sizeof *T->re);
    T->cls = calloc(n ? n : 1, sizeof *T->cls);
    T->hits = calloc(n ? n : 1, sizeof *T->hits);
    if (!T->all || !T->re || !T->cls || !T->hits) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    for (size_t g = 0; g < r->n_groups; g++) {
        const qn_quant_scheme *s = &r->groups[g].scheme;
        for (size_t t = 0; t < s->n_targets; t++) {
            mentry *e = &T->all[T->n_all];
            e->s = s->targets[t];
            e->group = (int)g;
            char field[400];
            snprintf(field, sizeof field, "field 'quantization_config.config_groups.%s.targets[%zu]'", r->groups[g].name, t);
            qn_status st = compile_entry(e->s, &e->re, C->cfgname, field, err);
            if (st) return st;
            size_t idx = T->n_all++;
            if (e->re) T->re[T->n_re++] = *e;
            else {
                T->cls[T->n_cls++] = *e;
                size_t *v = smap_get(&T->exact, e->s);
                if (v) *v = idx; /* later group wins */
                else if (smap_put(&T->exact, e->s, idx) < 0) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
            }
        }
    }
    qsort(T->re, T->n_re, sizeof *T->re, cmp_mentry);
    qsort(T->cls, T->n_cls, sizeof *T->cls, cmp_mentry);
    return QN_OK;
}

/* 1 when the module matches ignore entry i (name, regex, class). */
static int ignore_match(ictx *C, size_t i, const imod *m, int *by_class, qn_error *err) {
    const char *e = C->r->ignore[i].entry;
    *by_class = 0;
    if (C->ig_re[i]) return qnr_regex_match(C->ig_re[i], m->name, err);
    if (!strcmp(e, m->name)) return 1;
    if (!strcmp(e, m->cls)) { *by_class = 1; return 1; }
    return 0;
}

static qn_status decide(ictx *C, tmatch *T, qn_error *err) {
    qn_inspect *r = C->r;
    modules *M = &C->M;
    int failed = 0;
    /* exact ignore entries through a map: entry -> first index with that text; canon[i] = that index */
    smap exact = {0};
    size_t *canon_ig = malloc((r->n_ignore ? r->n_ignore : 1) * sizeof *canon_ig);
    if (!canon_ig) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < r->n_ignore; i++) {
        canon_ig[i] = i;
        if (C->ig_re[i]) continue;
        if (smap_put(&exact, r->ignore[i].entry, i) < 0) { failed = 2; break; }
        canon_ig[i] = *smap_get(&exact, r->ignore[i].entry);
    }
    size_t n_ig_mods = 0, cap_ig = 0;
    char **ig_mods = NULL;
    for (size_t k = 0; k < M->n && !failed; k++) {
        imod *m = &M->m[k];
        int ignored = 0;
        const size_t *v = smap_get(&exact, m->name);
        for (size_t i = 0; i < r->n_ignore; i++) {
            int bc = 0, hit;
            if (C->ig_re[i]) {
                hit = qnr_regex_match(C->ig_re[i], m->name, err);
                if (hit < 0) { failed = 1; break; }
            } else if (v && canon_ig[i] == *v) {
                hit = 1;
            } else {
                hit = bc = !strcmp(r->ignore[i].entry, m->cls);
            }
            if (!hit) continue;
            qn_inspect_ignore *I = &r->ignore[i];
            if (m->mtp) I->n_mtp++;
            else if (m->linear) I->n_linear++;
            else I->n_other++;
            if (bc) I->by_class = 1;
            if (m->linear && !m->mtp) I->n_effective++; /* corrected below when not owned */
            ignored = 1;
        }
        if (failed || !m->linear) continue;
        m->owner = tmatch_owner(T, m, err, &failed);
        if (failed) break;
        m->decision = ignored ? DEC_IGNORED : m->owner;
        if (!ignored) continue;
        if (m->owner < 0 && !m->mtp) { /* ignoring it changes nothing: undo n_effective */
            for (size_t i = 0; i < r->n_ignore; i++) {
                int bc, hit;
                if (C->ig_re[i]) hit = qnr_regex_match(C->ig_re[i], m->name, err) > 0;
                else hit = ignore_match(C, i, m, &bc, err) > 0;
                if (hit) r->ignore[i].n_effective--;
            }
        }
        if (n_ig_mods == cap_ig) {
            cap_ig = cap_ig ? cap_ig * 2 : 64;
            char **nm = realloc(ig_mods, cap_ig * sizeof *nm);
            if (!nm) { failed = 2; break; }
            ig_mods = nm;
        }
        if (!(ig_mods[n_ig_mods] = xstrdup(m->name))) { failed = 2; break; }
        n_ig_mods++;
    }
    smap_free(&exact);
    free(canon_ig);
    if (ig_mods) qsort(ig_mods, n_ig_mods, sizeof *ig_mods, cmp_str_ptr);
    r->ignored_modules = ig_mods;
    r->n_ignored_modules = n_ig_mods;
    if (failed == 2) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    if (failed) return err ? err->code : QN_ERR_FORMAT;
    return QN_OK;
}

static const char *decision_text(const qn_inspect *r, int d, char *b, size_t n) {
    if (d == DEC_IGNORED) snprintf(b, n, "ignored");
    else if (d == DEC_NONE) snprintf(b, n, "no target");
    else snprintf(b, n, "%s", r->groups[d].name);
    return b;
}

/* canonical group: the first group with the same args and format (decisions equal for vLLM) */
static int canon(const qn_inspect *r, int d) {
    if (d < 0) return d;
    for (int g = 0; g < d; g++)
        if (scheme_eq_loose(&r->groups[g].scheme, &r->groups[d].scheme, 0) && !strcmp(r->groups[g].format, r->groups[d].format))
            return g;
    return d;
}

typedef struct {
    char *key;
    int first;         /* canonical decision of the first member */
    int split;
    char members[480];
} fslot;

static qn_status check_fused(ictx *C, int moe, qn_error *err) {
    qn_inspect *r = C->r;
    modules *M = &C->M;
    smap map = {0};
    fslot *slots = NULL;
    size_t ns = 0, cap = 0;
    qn_status st = QN_OK;
    for (size_t k = 0; k < M->n && !st; k++) {
        const imod *m = &M->m[k];
        if (!m->linear || m->mtp) continue;
        char key[1100];
        const char *leaf = strrchr(m->name, '.');
        if (!leaf) continue;
        leaf++;
        if (moe) {
            const char *p = strstr(m->name, ".experts.");
            if (!p) continue;
            snprintf(key, sizeof key, "%.*s.experts", (int)(p - m->name), m->name);
        } else {
            size_t plen = (size_t)(leaf - 1 - m->name);
            int attn = plen >= 9 && !strncmp(leaf - 10, "self_attn", 9);
            const char *kind = NULL;
            if (attn && (!strcmp(leaf, "q_proj") || !strcmp(leaf, "k_proj") || !strcmp(leaf, "v_proj"))) kind = "q_proj, k_proj, v_proj";
            else if (attn && (!strcmp(leaf, "q_a_proj") || !strcmp(leaf, "kv_a_proj_with_mqa"))) kind = "q_a_proj, kv_a_proj_with_mqa";
            else if (!attn && (!strcmp(leaf, "gate_proj") || !strcmp(leaf, "up_proj")) && !strstr(m->name, ".experts.")) kind = "gate_proj, up_proj";
            if (!kind) continue;
            snprintf(key, sizeof key, "%.*s (%s)", (int)plen, m->name, kind);
        }
        int d = canon(r, m->decision);
        char dt[80];
        decision_text(r, m->decision, dt, sizeof dt);
        size_t *v = smap_get(&map, key);
        fslot *s;
        if (!v) {
            if (ns == cap) {
                cap = cap ? cap * 2 : 64;
                fslot *n2 = realloc(slots, cap * sizeof *n2);
                if (!n2) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); break; }
                slots = n2; /* the map holds indices and the key strings, which do not move */
            }
            s = &slots[ns];
            memset(s, 0, sizeof *s);
            if (!(s->key = xstrdup(key)) || smap_put(&map, s->key, ns) < 0) {
                free(s->key);
                st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
                break;
            }
            ns++;
            s->first = d;
        } else {
            s = &slots[*v];
        }
        if (d != s->first) s->split = 1;
        /* members: "leaf: decision" (MoE: only the first of each distinct decision) */
        size_t l = strlen(s->members);
        const char *who = moe ? m->name + strlen(key) - 7 : leaf;  /* MoE: "experts.N.leaf" */
        if (moe && strstr(s->members, dt)) continue;
        if (l + strlen(who) + strlen(dt) + 6 < sizeof s->members)
            snprintf(s->members + l, sizeof s->members - l, "%s%s: %s", l ? ", " : "", who, dt);
    }
    for (size_t i = 0; i < ns; i++) {
        if (!st && slots[i].split) {
            if (moe)
                add_finding(&C->F, QN_FIND_ERROR, QN_FIND_MOE_SPLIT, slots[i].key,
                            "experts decided differently (%s): vLLM runs the experts of a block as one FusedMoE layer "
                            "with one scheme, ignore decisions all-or-nothing (§6.3a)", slots[i].members);
            else
                add_finding(&C->F, QN_FIND_ERROR, QN_FIND_FUSED_SPLIT, slots[i].key,
                            "shards decided differently (%s): vLLM loads them as one fused layer and raises \"Found a "
                            "different quantization schemes\" (§6.3)", slots[i].members);
        }
        free(slots[i].key);
    }
    free(slots);
    smap_free(&map);
    return st;
}

static void check_ignore_entries(ictx *C) {
    qn_inspect *r = C->r;
    if (C->r->modules_from == QN_MODULES_NONE) return;
    for (size_t i = 0; i < r->n_ignore; i++) {
        qn_inspect_ignore *I = &r->ignore[i];
        I->names_tensor = (C->tensor_names.n && smap_get(&C->tensor_names, I->entry)) ||
                          (!I->is_regex && (ends_with(I->entry, ".weight") || ends_with(I->entry, ".bias")) && !I->n_linear &&
                           !I->n_other && !I->n_mtp);
        if (I->names_tensor && !I->n_linear && !I->n_other && !I->n_mtp)
            add_finding(&C->F, QN_FIND_WARNING, QN_FIND_IGNORE_NON_LINEAR, I->entry,
                        "names a parameter, not a module: ignore entries match module names, so it matches nothing "
                        "(biases and norms are never quantized anyway)");
        else if (!I->n_linear && !I->n_other && !I->n_mtp)
            add_finding(&C->F, QN_FIND_WARNING, QN_FIND_IGNORE_UNUSED, I->entry,
                        "matches no module of this model (harmless for compressed-tensors and vLLM, but a typo would "
                        "leave the intended module quantized)");
        else if (!I->n_linear && I->n_other)
            add_finding(&C->F, QN_FIND_NOTE, QN_FIND_IGNORE_NON_LINEAR, I->entry,
                        "matches only non-Linear modules (%lld: norms, embeddings, containers), which are never "
                        "quantized: no effect", (long long)I->n_other);
        else if (!I->n_linear && I->n_mtp)
            add_finding(&C->F, QN_FIND_NOTE, QN_FIND_IGNORE_UNUSED, I->entry,
                        "matches only modules of MTP layers (%lld), which transformers does not load", (long long)I->n_mtp);
        if (I->by_class && I->n_linear)
            add_finding(&C->F, QN_FIND_WARNING, QN_FIND_IGNORE_CLASS, I->entry,
                        "matches by class name: compressed-tensors ignores those modules, vLLM (names and regexes "
                        "only) does not (§3.6)");
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Tensor checks                                                                               */

static const qn_tensor *mod_param(const ictx *C, const imod *m, const char *param) {
    size_t l = strlen(m->name);
    for (size_t i = m->first_tensor; i != SIZE_MAX; i = C->M.tnext[i]) {
        const qn_tensor *t = qn_st_set_get(C->set, i);
        if (!strcmp(t->name + l + 1, param)) return t;
    }
    return NULL;
}

static int read_pair(const qn_tensor *t, int64_t v[2]) {
    if (t->ndim < 1 || qn_tensor_numel(t) != 2) return -1;
    if (t->dtype == QN_DT_I64) { memcpy(v, t->data, 16); return 0; }
    if (t->dtype == QN_DT_I32) {
        int32_t w[2];
        memcpy(w, t->data, 8);
        v[0] = w[0];
        v[1] = w[1];
        return 0;
    }
    return -1;
}

/* [out, in] from the stored tensors (0 when not derivable). */
static void stored_shape(const ictx *C, const imod *m, int64_t *out, int64_t *in) {
    *out = *in = 0;
    int64_t v[2];
    const qn_tensor *t;
    if ((t = mod_param(C, m, "weight_shape")) && !read_pair(t, v)) { *out = v[0]; *in = v[1]; return; }
    if ((t = mod_param(C, m, "shape")) && !read_pair(t, v)) { *out = v[0]; *in = v[1]; return; }
    if ((t = mod_param(C, m, "weight")) && t->ndim == 2) { *out = t->shape[0]; *in = t->shape[1]; return; }
    if ((t = mod_param(C, m, "weight_packed")) && t->ndim == 2 && t->dtype == QN_DT_U8) { *out = t->shape[0]; *in = t->shape[1] * 2; return; }
    if ((t = mod_param(C, m, "bitmask")) && t->ndim == 2) { *out = t->shape[0]; return; }
}

static const char *dt_text(int dt, const ictx *C) {
    if (dt == DT_MODEL) return C->r->has_model_dtype ? qn_dtype_name(C->r->model_dtype) : "the model dtype";
    if (dt == DT_FLOAT) return "F16/BF16/F32";
    if (dt == DT_ANY) return "any dtype";
    return qn_dtype_name((qn_dtype)dt);
}

static int dt_ok(int dt, qn_dtype have, const ictx *C) {
    if (dt == DT_ANY) return 1;
    if (dt == DT_FLOAT || (dt == DT_MODEL && !C->r->has_model_dtype))
        return have == QN_DT_F16 || have == QN_DT_BF16 || have == QN_DT_F32;
    if (dt == DT_MODEL) return have == C->r->model_dtype;
    return (int)have == dt;
}

static void exp_shape_text(const iexp *e, char *b, size_t n) {
    if (e->nd < 0) snprintf(b, n, "any shape");
    else if (e->numel1) snprintf(b, n, "[1]");
    else shape_text(e->nd, e->s, b, n);
}

/* Checks one module's tensors against `x`; returns the number of mismatches. */
static int check_against(ictx *C, const imod *m, const iexpset *x, int unknown_shape) {
    int bad = 0;
    char tn[1200], want[96], have[96];
    for (int i = 0; i < x->n; i++) {
        const iexp *e = &x->e[i];
        const qn_tensor *t = mod_param(C, m, e->param);
        snprintf(tn, sizeof tn, "%s.%s", m->name, e->param);
        if (!t) {
            if (e->optional) continue;
            exp_shape_text(e, want, sizeof want);
            add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_MISSING, tn, "missing: expected %s %s (%s)",
                        dt_text(e->dt, C), unknown_shape && e->nd >= 0 ? "(shape unknown)" : want, x->why);
            bad++;
            continue;
        }
        if (!dt_ok(e->dt, t->dtype, C)) {
            add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_DTYPE, tn, "dtype %s, expected %s (%s)", qn_dtype_name(t->dtype),
                        dt_text(e->dt, C), x->why);
            bad++;
        }
        if (e->nd >= 0 && !unknown_shape) {
            int ok;
            if (e->numel1) ok = qn_tensor_numel(t) == 1 && t->ndim <= 2;
            else {
                ok = t->ndim == e->nd;
                for (int d = 0; ok && d < e->nd; d++) ok = t->shape[d] == e->s[d];
            }
            if (!ok) {
                shape_text(t->ndim, t->shape, have, sizeof have);
                exp_shape_text(e, want, sizeof want);
                add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_SHAPE, tn, "shape %s, expected %s (%s)", have, want, x->why);
                bad++;
            }
        }
        if (e->values[0] && !unknown_shape) {
            int64_t v[2];
            if (!read_pair(t, v) && (v[0] != e->values[0] || v[1] != e->values[1])) {
                add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_SHAPE, tn, "holds [%lld, %lld], expected [%lld, %lld]",
                            (long long)v[0], (long long)v[1], (long long)e->values[0], (long long)e->values[1]);
                bad++;
            }
        }
    }
    /* quantization parameters not implied */
    size_t l = strlen(m->name);
    for (size_t ti = m->first_tensor; ti != SIZE_MAX; ti = C->M.tnext[ti]) {
        const qn_tensor *t = qn_st_set_get(C->set, ti);
        const char *p = t->name + l + 1;
        int expected = 0;
        for (int i = 0; i < x->n && !expected; i++) expected = !strcmp(x->e[i].param, p);
        if (expected) continue;
        if (!is_quant_param(p) && strcmp(p, "weight")) continue;
        const char *why;
        if (!strcmp(p, "weight_zero_point"))
            why = "the weights are symmetric: compressed formats drop symmetric zero points and vLLM does not accept them";
        else if (!strcmp(p, "weight"))
            why = "a plain weight beside the compressed tensors";
        else
            why = "not implied by the module's decision";
        add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_UNEXPECTED, t->name, "unexpected (%s): %s", x->why, why);
        bad++;
    }
    return bad;
}

static int sparse_target(ictx *C, const imod *m, qn_error *err) {
    if (!C->sparse_kind) return 0;
    int hit = 0;
    for (size_t i = 0; i < C->n_sp_targets && !hit; i++) {
        const char *t = C->sp_targets[i];
        if (!strncmp(t, "re:", 3)) {
            qn_module qm = {m->name, m->cls, m->out, m->in};
            hit = qn_target_matches(t, &qm, err) > 0;
        } else hit = !strcmp(t, m->name) || !strcmp(t, m->cls);
    }
    for (size_t i = 0; i < C->n_sp_ignore && hit; i++) {
        const char *t = C->sp_ignore[i];
        qn_module qm = {m->name, m->cls, m->out, m->in};
        if (qn_target_matches(t, &qm, err) > 0) hit = 0;
    }
    return hit;
}

static void check_tensors(ictx *C, qn_error *err) {
    qn_inspect *r = C->r;
    modules *M = &C->M;
    int skipped_note = 0;
    for (size_t k = 0; k < M->n; k++) {
        imod *m = &M->m[k];
        if (!m->linear || m->mtp) continue;
        int d = m->decision;
        qn_inspect_group *G = d >= 0 ? &r->groups[d] : NULL;
        int quant = G && G->scheme.has_weights;
        int sparse = sparse_target(C, m, err) ? C->sparse_kind : 0;
        if (sparse) r->n_sparse++;
        if (m->first_tensor == SIZE_MAX) {
            if (!strcmp(m->name, "lm_head") && C->have_cfg && C->cfg.tie_word_embeddings && !quant) continue;
            add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_MISSING, m->name,
                        "no tensors for this Linear (config.json implies [%lld, %lld]; %s)", (long long)m->out,
                        (long long)m->in, quant ? G->name : d == DEC_IGNORED ? "ignored" : "unquantized");
            r->n_checked++;
            if (G) G->n_checked++, G->n_bad++;
            continue;
        }
        int64_t so, si;
        stored_shape(C, m, &so, &si);
        int64_t out = m->out ? m->out : so, in = m->in ? m->in : si;
        int bad = 0;
        const int64_t lim = INT64_C(1) << 40;   /* weight_shape values come from the file */
        if (out > lim || in > lim || out < 0 || in < 0) {
            add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_SHAPE, m->name, "implausible stored shape [%lld, %lld]",
                        (long long)out, (long long)in);
            out = in = 0;
            bad++;
        }
        int unknown = out <= 0 || in <= 0;
        if (m->out && so && (so != m->out || (si && si != m->in))) {
            add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_SHAPE, m->name,
                        "stored as [%lld, %lld] but config.json implies [%lld, %lld]", (long long)so, (long long)si,
                        (long long)m->out, (long long)m->in);
            bad++;
        }
        iexpset x;
        memset(&x, 0, sizeof x);
        char why[200] = "";
        if (quant) {
            char wt[96];
            args_text(&G->scheme.weights, 0, wt, sizeof wt);
            snprintf(x.why, sizeof x.why, "%s, %s %s", G->name, G->format, wt);
            /* unknown shape: a size every usual group / block size divides (shapes are then not compared) */
            const int64_t any = INT64_C(5040) * 4096;
            if (build_expect(&x, &G->scheme, G->format, C->version, unknown ? any : out, unknown ? any : in, sparse, why,
                             sizeof why)) {
                add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_SHAPE, m->name, "[%lld, %lld] cannot be stored by %s: %s",
                            (long long)out, (long long)in, G->name, why);
                bad++;
                x.n = 0;
                x.skip = 1;
            } else if (x.skip && !skipped_note) {
                add_finding(&C->F, QN_FIND_NOTE, QN_FIND_CONFIG, G->name, "tensors of format %s are not checked", G->format);
                skipped_note = 1;
            }
        } else {
            snprintf(x.why, sizeof x.why, "%s",
                     d == DEC_IGNORED ? "ignored, kept unquantized"
                     : G ? "its group quantizes nothing"
                         : "matched by no target, kept unquantized");
            if (sparse == 2) {
                push(&x, "compressed", DT_FLOAT, 2, out, in / 2);
                push(&x, "bitmask", QN_DT_U8, 2, out, cdiv(in, 8));
                iexp *e = push(&x, "shape", QN_DT_I64, 2, 2, 1);
                e->values[0] = out;
                e->values[1] = in;
            } else if (sparse == 1) {
                push(&x, "compressed", DT_FLOAT, -1, 0, 0);
                push(&x, "bitmask", QN_DT_U8, 2, out, cdiv(in, 8));
                push(&x, "row_offsets", QN_DT_I64, 1, out, 0);
                push(&x, "shape", QN_DT_I64, 1, 2, 0);
            } else {
                push(&x, "weight", DT_FLOAT, 2, out, in);
            }
        }
        if (!x.skip) bad += check_against(C, m, &x, unknown);
        if (!quant && !x.skip) {
            const qn_tensor *q = mod_param(C, m, "weight_packed");
            if (!q) q = mod_param(C, m, "weight_scale");
            if (q)
                add_finding(&C->F, QN_FIND_ERROR, QN_FIND_VLLM, m->name,
                            "stored compressed (%s) but %s: vLLM builds it unquantized and cannot load the compressed "
                            "tensors", q->name + strlen(m->name) + 1, x.why);
        }
        r->n_checked++;
        if (G) {
            G->n_checked++;
            if (bad) G->n_bad++;
        }
    }
}

static void check_kv_tensors(ictx *C) {
    qn_inspect *r = C->r;
    modules *M = &C->M;
    for (size_t k = 0; k < M->n; k++) {
        imod *m = &M->m[k];
        if (m->mtp || !ends_with(m->name, ".self_attn") || qnx_layer_of(m->name, NULL) < 0) continue;
        r->n_attention++;
        if (!C->set) continue;
        const qn_tensor *ks = mod_param(C, m, "k_scale"), *vs = mod_param(C, m, "v_scale");
        char tn[1200];
        if (ks && vs) r->n_kv_scales++;
        if (!r->has_kv_cache) {
            const qn_tensor *t = ks ? ks : vs;
            if (t) add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_UNEXPECTED, t->name,
                               "unexpected: KV-cache scale but quantization_config has no kv_cache_scheme");
            continue;
        }
        int attn_head = r->kv_cache.strategy == QN_STRATEGY_ATTN_HEAD;
        int64_t nkv = C->have_cfg ? C->cfg.num_key_value_heads : 0;
        const qn_tensor *ts[2] = {ks, vs};
        const char *pn[2] = {"k_scale", "v_scale"};
        for (int j = 0; j < 2; j++) {
            snprintf(tn, sizeof tn, "%s.%s", m->name, pn[j]);
            const qn_tensor *t = ts[j];
            if (!t) {
                add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_MISSING, tn, "missing: kv_cache_scheme needs %s %s",
                            pn[j], attn_head ? "[num_kv_heads, 1, 1]" : "[1]");
                continue;
            }
            if (!dt_ok(DT_MODEL, t->dtype, C))
                add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_DTYPE, t->name, "dtype %s, expected %s (kv_cache_scheme)",
                            qn_dtype_name(t->dtype), dt_text(DT_MODEL, C));
            int ok = attn_head ? (t->ndim == 3 && (!nkv || t->shape[0] == nkv) && t->shape[1] == 1 && t->shape[2] == 1)
                               : qn_tensor_numel(t) == 1;
            if (!ok) {
                char have[96];
                shape_text(t->ndim, t->shape, have, sizeof have);
                add_finding(&C->F, QN_FIND_ERROR, QN_FIND_TENSOR_SHAPE, t->name, "shape %s, expected %s (kv_cache_scheme)",
                            have, attn_head ? "[num_kv_heads, 1, 1]" : "[1]");
            }
        }
    }
}

static void check_vllm(ictx *C) {
    qn_inspect *r = C->r;
    modules *M = &C->M;
    int sparse24 = r->has_sparsity && !strcmp(r->sparsity_structure, "2:4");
    for (size_t g = 0; g < r->n_groups; g++) {
        qn_inspect_group *G = &r->groups[g];
        qn_inspect_vllm_scheme(G, sparse24);
        if (G->scheme.has_weights) args_text(&G->scheme.weights, 0, G->weights, sizeof G->weights);
        else snprintf(G->weights, sizeof G->weights, "-");
        if (G->scheme.has_input_activations) args_text(&G->scheme.input_activations, 1, G->inputs, sizeof G->inputs);
        else snprintf(G->inputs, sizeof G->inputs, "-");
        find_preset(G, C->version);
        if (!G->vllm_scheme[0] && (G->n_linear > 0 || r->modules_from == QN_MODULES_NONE)) {
            int mx = G->scheme.has_weights && G->scheme.weights.scale_dtype == QN_TORCH_UINT8;
            add_finding(&C->F, mx ? QN_FIND_WARNING : QN_FIND_ERROR, QN_FIND_VLLM, G->name, "no vLLM Linear scheme: %s",
                        G->vllm_note);
        } else if (G->vllm_scheme[0] && strstr(G->vllm_note, "needs ") && G->exact_cc) {
            add_finding(&C->F, QN_FIND_ERROR, QN_FIND_VLLM, G->name, "%s: %s", G->vllm_scheme, G->vllm_note);
        } else if (!strcmp(G->vllm_scheme, "CompressedTensorsWNA16") && G->scheme.weights.strategy == QN_STRATEGY_GROUP &&
                   G->scheme.weights.group_size != 32 && G->scheme.weights.group_size != 64 &&
                   G->scheme.weights.group_size != 128) {
            add_finding(&C->F, QN_FIND_ERROR, QN_FIND_VLLM, G->name,
                        "group_size %lld: vLLM's Marlin kernels take 32, 64, 128 or channel (§6.5)",
                        (long long)G->scheme.weights.group_size);
        }
    }
    /* per module: Marlin shapes, MoE needs a literal "Linear" target, MoE asymmetric WNA16 */
    int has_linear_target = 0;
    for (size_t g = 0; g < r->n_groups; g++)
        for (size_t t = 0; t < r->groups[g].scheme.n_targets; t++)
            has_linear_target |= !strcmp(r->groups[g].scheme.targets[t], "Linear");
    int moe_warned = 0, asym_warned = 0;
    size_t ng = r->n_groups ? r->n_groups : 1;
    int64_t *marlin_n = calloc(ng, sizeof *marlin_n);
    size_t *marlin_first = calloc(ng, sizeof *marlin_first);
    int64_t (*marlin_shape)[2] = calloc(ng, sizeof *marlin_shape);
    if (!marlin_n || !marlin_first || !marlin_shape) {
        free(marlin_n);
        free(marlin_first);
        free(marlin_shape);
        C->F.oom = 1;
        return;
    }
    for (size_t k = 0; k < M->n; k++) {
        const imod *m = &M->m[k];
        if (!m->linear || m->mtp || m->decision < 0) continue;
        const qn_inspect_group *G = &r->groups[m->decision];
        if (!G->scheme.has_weights) continue;
        int expert = strstr(m->name, ".experts.") != NULL;
        if (expert && !has_linear_target && !moe_warned) {
            add_finding(&C->F, QN_FIND_WARNING, QN_FIND_VLLM, m->name,
                        "MoE experts are quantized but no group targets the literal \"Linear\": vLLM (2025) reads the "
                        "MoE scheme from target \"Linear\" (§6.3a)");
            moe_warned = 1;
        }
        if (expert && !asym_warned && !strcmp(G->vllm_scheme, "CompressedTensorsWNA16") && !G->scheme.weights.symmetric) {
            add_finding(&C->F, QN_FIND_NOTE, QN_FIND_VLLM, m->name,
                        "asymmetric WNA16 MoE experts need vLLM with PR #44025 (2026) (§6.3a)");
            asym_warned = 1;
        }
        int64_t out = m->out, in = m->in;
        if (!out && C->set) stored_shape(C, m, &out, &in);
        if (out > 0 && in > 0 && !strcmp(G->vllm_scheme, "CompressedTensorsWNA16") && (out % 64 || in % 128)) {
            if (!marlin_n[m->decision]++) {
                marlin_first[m->decision] = k;
                marlin_shape[m->decision][0] = out;
                marlin_shape[m->decision][1] = in;
            }
        }
    }
    for (size_t g = 0; g < r->n_groups; g++)
        if (marlin_n[g])
            add_finding(&C->F, QN_FIND_WARNING, QN_FIND_VLLM, r->groups[g].name,
                        "%lld Linear module(s) do not fit vLLM's Marlin kernels (out %% 64 == 0 and in %% 128 == 0 per "
                        "tensor-parallel shard, §6.2), e.g. %s [%lld, %lld]", (long long)marlin_n[g],
                        M->m[marlin_first[g]].name, (long long)marlin_shape[g][0], (long long)marlin_shape[g][1]);
    free(marlin_n);
    free(marlin_first);
    free(marlin_shape);
}

static void count_modules(ictx *C, tmatch *T) {
    qn_inspect *r = C->r;
    modules *M = &C->M;
    for (size_t k = 0; k < M->n; k++) {
        imod *m = &M->m[k];
        if (m->mtp) {
            if (m->linear && (C->set ? m->from_tensors : 1)) r->n_mtp_modules++;
            continue;
        }
        if (!m->linear) continue;
        r->n_linear++;
        if (m->decision == DEC_IGNORED) r->n_ignored++;
        else if (m->decision == DEC_NONE) r->n_unmatched++;
        else {
            r->groups[m->decision].n_linear++;
            if (r->groups[m->decision].scheme.has_weights) r->n_quantized++;
            else r->n_unquantized_group++;
        }
    }
    if (!r->quantized || strcmp(r->quant_method[0] ? r->quant_method : "compressed-tensors", "compressed-tensors")) return;
    for (size_t k = 0; k < M->n; k++) {
        imod *m = &M->m[k];
        if (!m->linear || m->mtp || m->decision != DEC_NONE || !r->n_groups) continue;
        int stored = C->set && (mod_param(C, m, "weight_packed") || mod_param(C, m, "weight_scale"));
        if (stored) continue; /* reported by the tensor check */
        add_finding(&C->F, QN_FIND_WARNING, QN_FIND_UNMATCHED_LINEAR, m->name,
                    "neither targeted nor ignored: compressed-tensors leaves it unquantized; vLLM of mid-2025 raises "
                    "\"Unable to find matching target\" (§6.1) — list it in ignore");
    }
    for (size_t i = 0; i < T->n_all; i++)
        if (!T->hits[i] && r->modules_from != QN_MODULES_NONE)
            add_finding(&C->F, QN_FIND_NOTE, QN_FIND_CONFIG, r->groups[T->all[i].group].name,
                        "target \"%s\" of %s matches no Linear module (the module may be ignored or owned by a more "
                        "specific target)", T->all[i].s, r->groups[T->all[i].group].name);
}

static qn_status run(ictx *C, const char *path, qn_error *err) {
    qn_inspect *r = C->r;
    qn_status st;
    struct stat sb;
    if (stat(path, &sb)) return qn_error_set(err, QN_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    const char *dir = NULL;
    char cfgpath[PATH_MAX + 16];
    if (S_ISDIR(sb.st_mode)) {
        dir = path;
        snprintf(cfgpath, sizeof cfgpath, "%s/config.json", path);
    } else {
        snprintf(cfgpath, sizeof cfgpath, "%s", path);
    }
    if (!(r->config_path = xstrdup(cfgpath))) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    C->cfgname = r->config_path;
    char *text;
    size_t len;
    if ((st = read_text(cfgpath, &text, &len, err))) return st;
    st = parse_json(cfgpath, text, len, &C->root, err);
    free(text);
    if (st) return st;

    /* architecture */
    qn_error e2 = {0};
    st = qn_config_load_file(cfgpath, &C->cfg, &e2);
    if (st == QN_OK) {
        C->have_cfg = 1;
        r->arch_known = 1;
        snprintf(r->architecture, sizeof r->architecture, "%s", C->cfg.architecture);
        snprintf(r->model_type, sizeof r->model_type, "%s", C->cfg.model_type);
        snprintf(r->torch_dtype, sizeof r->torch_dtype, "%s", C->cfg.torch_dtype);
        r->num_hidden_layers = C->cfg.num_hidden_layers;
        r->num_experts = C->cfg.num_experts;
    } else if (st == QN_ERR_UNSUPPORTED) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(C->root, "architectures");
        const cJSON *a0 = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, 0) : NULL;
        if (cJSON_IsString(a0)) snprintf(r->architecture, sizeof r->architecture, "%s", a0->valuestring);
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(C->root, "model_type");
        if (cJSON_IsString(mt)) snprintf(r->model_type, sizeof r->model_type, "%s", mt->valuestring);
        const cJSON *td = cJSON_GetObjectItemCaseSensitive(C->root, "torch_dtype");
        if (!cJSON_IsString(td)) td = cJSON_GetObjectItemCaseSensitive(C->root, "dtype");
        if (cJSON_IsString(td)) snprintf(r->torch_dtype, sizeof r->torch_dtype, "%s", td->valuestring);
        add_finding(&C->F, QN_FIND_NOTE, QN_FIND_CONFIG, "architectures",
                    "%s; the Linear modules come from the tensors alone", e2.msg);
    } else {
        *err = e2;
        return st;
    }
    if (!strcmp(r->torch_dtype, "bfloat16")) { r->model_dtype = QN_DT_BF16; r->has_model_dtype = 1; }
    else if (!strcmp(r->torch_dtype, "float16")) { r->model_dtype = QN_DT_F16; r->has_model_dtype = 1; }
    else if (!strcmp(r->torch_dtype, "float32")) { r->model_dtype = QN_DT_F32; r->has_model_dtype = 1; }

    if ((st = parse_quant_config(C, err))) return st;
    int ct = r->quantized && (!r->quant_method[0] || !strcmp(r->quant_method, "compressed-tensors"));

    /* tensors */
    if (dir && dir_has_safetensors(dir)) {
        if ((st = qn_st_set_open_dir(dir, &C->set, err))) return st;
        r->has_tensors = 1;
        r->n_tensors = (int64_t)qn_st_set_count(C->set);
        r->n_files = (int64_t)qn_st_set_file_count(C->set);
        r->tensor_bytes = qn_st_set_total_bytes(C->set);
        const qn_tensor *emb = qn_st_set_find(C->set, "model.embed_tokens.weight");
        if (emb && (emb->dtype == QN_DT_BF16 || emb->dtype == QN_DT_F16 || emb->dtype == QN_DT_F32)) {
            r->model_dtype = emb->dtype;
            r->has_model_dtype = 1;
        }
        for (size_t i = 0; i < qn_st_set_count(C->set); i++)
            if (smap_put(&C->tensor_names, qn_st_set_get(C->set, i)->name, i) < 0)
                return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    } else {
        add_finding(&C->F, QN_FIND_NOTE, QN_FIND_CONFIG, "",
                    "no safetensors files: config analysis only, tensor checks skipped");
    }
    if (!r->quantized)
        add_finding(&C->F, QN_FIND_NOTE, QN_FIND_CONFIG, "", "no quantization_config: a plain (unquantized) checkpoint");

    /* modules */
    C->M.cfg = C->have_cfg ? &C->cfg : NULL;
    arch_prefix(C->M.cfg, &C->M);
    if (C->set && (st = modules_from_tensors(&C->M, C->set, err))) return st;
    if (C->have_cfg && (st = modules_from_config(&C->M, &C->cfg, err))) return st;
    r->modules_from = C->set ? QN_MODULES_TENSORS : C->have_cfg ? QN_MODULES_CONFIG : QN_MODULES_NONE;
    if (r->modules_from == QN_MODULES_NONE)
        add_finding(&C->F, QN_FIND_NOTE, QN_FIND_CONFIG, "",
                    "no tensors and an unsupported architecture: targets and ignore entries are not matched");

    if (ct) check_formats(C);
    tmatch T;
    memset(&T, 0, sizeof T);
    if ((st = build_targets(C, &T, err))) { tmatch_free(&T); return st; }
    if ((st = decide(C, &T, err))) { tmatch_free(&T); return st; }
    count_modules(C, &T);
    tmatch_free(&T);
    if (ct) {
        check_ignore_entries(C);
        if ((st = check_fused(C, 0, err)) || (st = check_fused(C, 1, err))) return st;
        check_vllm(C);
    }
    if (C->set) {
        check_tensors(C, err);
        check_kv_tensors(C);
    } else {
        check_kv_tensors(C); /* counts attention blocks */
    }
    for (int k = 0; k < QN_FIND_KIND_COUNT; k++)
        if (qn_find_kind_is_tensor((qn_find_kind)k)) r->n_mismatches += r->n_by_kind[k];
    if (C->F.oom) return qn_error_set(err, QN_ERR_NOMEM, "out of memory recording findings");
    return QN_OK;
}

qn_status qn_inspect_path(const char *path, qn_inspect **out, qn_error *err) {
    if (!path || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_inspect_path: NULL argument");
    *out = NULL;
    ictx C;
    memset(&C, 0, sizeof C);
    C.version = QN_CT_VERSION_DEFAULT;
    C.r = calloc(1, sizeof *C.r);
    if (!C.r) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    C.F.r = C.r;
    if (!(C.r->path = xstrdup(path))) { free(C.r); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
    qn_status st = run(&C, path, err);
    cJSON_Delete(C.root);
    if (C.have_cfg) qn_config_free(&C.cfg);
    modules_free(&C.M);
    smap_free(&C.tensor_names);
    if (C.ig_re)
        for (size_t i = 0; i < C.r->n_ignore; i++) qnr_regex_free(C.ig_re[i]);
    free(C.ig_re);
    free_list(C.sp_targets, C.n_sp_targets);
    free_list(C.sp_ignore, C.n_sp_ignore);
    qn_st_set_free(C.set);
    if (st) {
        qn_inspect_free(C.r);
        return st;
    }
    *out = C.r;
    return QN_OK;
}
