/* quench — vLLM compatibility check of a resolved recipe plan (include/quench/recipe.h, last block).
 *
 * Rules, each from docs/compressed-tensors-format.md (the spec):
 *  §6.5  dense-format quantized checkpoints; weight-only int with strategy tensor; weight-only int
 *        stored unpacked (naive/int-quantized without activations); asymmetric weights for W8A8
 *        int8/fp8; WNA16 bit widths other than 4/8; Marlin group sizes other than
 *        32/64/128/channel; 2:4 sparse (after March 2026); marlin-24.
 *  §6.4  kv_cache_scheme: fp8 (float, 8 bits), strategy tensor, symmetric only.
 *  §6.3a MoE experts take the scheme of the "Linear" target; routers are built unquantized.
 *
 * The format each group is written in is the exporter's own choice (qn_export_group_format), so
 * the check sees what qn_export_model will write. Group names: the recipe path of the modifier and
 * its config_groups key, plus the `group_N` name the exporter gives it in config.json (numbered in
 * order of the first module each group quantizes, as build_quant_config does).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/export.h"
#include "quench/recipe.h"
#include "recipe/recipe_internal.h"

static const char *const k_rule_names[QN_VLLM_RULE_COUNT] = {
    "dense-format", "int-tensor",  "int-unpacked", "asymmetric-weights", "wna16-bits", "marlin-group-size",
    "sparse-2:4",   "marlin-24",   "kv-cache",     "moe-scheme",         "router",
};

const char *qn_vllm_rule_name(qn_vllm_rule r) {
    return (unsigned)r < QN_VLLM_RULE_COUNT ? k_rule_names[r] : "unknown";
}

typedef struct {
    qn_vllm_warnings *out;
    size_t cap;
    qn_error *err;
    int failed;
} sink;

static void add(sink *s, qn_vllm_rule rule, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(sink *s, qn_vllm_rule rule, const char *fmt, ...) {
    if (s->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (msg) {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    if (msg && s->out->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 8;
        qn_vllm_warning *ni = realloc(s->out->items, nc * sizeof *ni);
        if (ni) { s->out->items = ni; s->cap = nc; }
        else { free(msg); msg = NULL; }
    }
    if (!msg) {
        s->failed = 1;
        qn_error_set(s->err, QN_ERR_NOMEM, "vLLM check: out of memory");
        return;
    }
    s->out->items[s->out->n].rule = rule;
    s->out->items[s->out->n].message = msg;
    s->out->n++;
}

void qn_vllm_warnings_free(qn_vllm_warnings *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->items[i].message);
    free(w->items);
    w->items = NULL;
    w->n = 0;
}

/* "int4 group 128 asym", "fp8 channel", "fp8 block [128, 128]" */
static void args_summary(const qn_quant_args *a, char *buf, size_t n) {
    const char *st = qn_qstrategy_name(a->strategy);
    int k = snprintf(buf, n, "%s%d %s", a->type == QN_QTYPE_INT ? "int" : "fp", a->num_bits, st ? st : "(no strategy)");
    if (k < 0 || (size_t)k >= n) return;
    if ((a->strategy == QN_STRATEGY_GROUP || a->strategy == QN_STRATEGY_TENSOR_GROUP) && a->has_group_size)
        k += snprintf(buf + k, n - (size_t)k, " %lld", (long long)a->group_size);
    else if (a->strategy == QN_STRATEGY_BLOCK && a->has_block_structure)
        k += snprintf(buf + k, n - (size_t)k, " [%lld, %lld]", (long long)a->block_structure[0],
                      (long long)a->block_structure[1]);
    if (k >= 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "%s", a->symmetric ? " sym" : " asym");
}

/* "weights int8 channel sym, input activations int8 token sym dynamic" */
static void scheme_summary(const qn_quant_scheme *s, char *buf, size_t n) {
    char w[96] = "none", in[96] = "none";
    if (s->has_weights) args_summary(&s->weights, w, sizeof w);
    if (s->has_input_activations) {
        args_summary(&s->input_activations, in, sizeof in);
        size_t l = strlen(in);
        if (s->input_activations.dynamic != QN_DYNAMIC_FALSE && l + 9 < sizeof in)
            snprintf(in + l, sizeof in - l, " dynamic");
    }
    snprintf(buf, n, "weights %s, input activations %s", w, in);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int is_router(const char *name) {
    return ends_with(name, ".mlp.gate") || ends_with(name, ".mlp.shared_expert_gate");
}

static int is_expert(const char *name) { return strstr(name, ".mlp.experts.") != NULL; }

static int has_target(const qn_quant_scheme *s, const char *t) {
    for (size_t i = 0; i < s->n_targets; i++)
        if (!strcmp(s->targets[i], t)) return 1;
    return 0;
}

static int same_args(int ha, const qn_quant_args *a, int hb, const qn_quant_args *b) {
    return ha == hb && (!ha || qn_quant_args_equal(a, b));
}

static int same_scheme(const qn_quant_scheme *x, const qn_quant_scheme *y) {
    return same_args(x->has_weights, &x->weights, y->has_weights, &y->weights) &&
           same_args(x->has_input_activations, &x->input_activations, y->has_input_activations, &y->input_activations);
}

/* The modifier and config_groups key of plan group g (plan->groups borrows the recipe's array,
 * each modifier's groups are a slice of it). */
static void group_origin(const qn_recipe *r, const qn_recipe_plan *plan, size_t g, const char **path, const char **name) {
    *path = "recipe";
    *name = "?";
    const qn_quant_scheme *s = &plan->groups[g];
    for (size_t k = 0; k < qn_recipe_modifier_count(r); k++) {
        const qn_modifier *m = qn_recipe_modifier(r, k);
        for (size_t i = 0; i < m->n_groups; i++)
            if (&m->groups[i] == s) {
                *path = m->path;
                *name = m->group_names[i];
                return;
            }
    }
}

typedef struct {
    int used;          /* Linears it quantizes */
    int written;       /* index N of the "group_N" the exporter writes */
    size_t first;      /* first module it quantizes */
    int experts;       /* MoE expert Linears among them */
    size_t first_expert;
    char label[512];   /* "<recipe>: <path> config group '<key>' (written as group_N; K Linears, e.g. X)" */
} group_info;

/* SparseGPT's pruned set, as the pipeline computes it (src/calib/pipeline.c plan_pruning): the
 * modifier's targets minus its ignore list, restricted to the attention and dense-MLP Linears of
 * decoder layers (no experts, shared experts, routers or lm_head). 1 / 0, -1 on a regex error. */
static int pruned_by(const qn_modifier *m, const qn_module *mod, qn_error *err) {
    const char *nm = mod->name;
    if (strstr(nm, ".mlp.experts.") || strstr(nm, ".mlp.shared_expert") || !strcmp(nm, "lm_head") || ends_with(nm, ".mlp.gate"))
        return 0;
    const cJSON *targets = cJSON_GetObjectItemCaseSensitive(m->params, "targets");
    int hit = 0;
    for (const cJSON *t = targets ? targets->child : NULL; t && !hit; t = t->next) {
        if (!cJSON_IsString(t)) continue;
        int rc = qn_target_matches(t->valuestring, mod, err);
        if (rc < 0) return -1;
        hit = rc;
    }
    for (size_t i = 0; i < m->n_ignore && hit; i++) {
        int rc = qn_target_matches(m->ignore[i], mod, err);
        if (rc < 0) return -1;
        if (rc) hit = 0;
    }
    return hit;
}

/* vLLM's CompressedTensors24 condition (spec §6.2): unquantized, or 8-bit weights (tensor /
 * channel) with 8-bit input activations (tensor / token) of the same type. */
static int cutlass24_ok(const qn_quant_scheme *s) {
    if (!s) return 1;
    if (!s->has_weights || !s->has_input_activations) return 0;
    const qn_quant_args *w = &s->weights, *a = &s->input_activations;
    return w->num_bits == 8 && (w->strategy == QN_STRATEGY_TENSOR || w->strategy == QN_STRATEGY_CHANNEL) &&
           a->num_bits == 8 && (a->strategy == QN_STRATEGY_TENSOR || a->strategy == QN_STRATEGY_TOKEN) &&
           w->type == a->type;
}

static void check_group(sink *S, const qn_quant_scheme *s, const group_info *gi, const char *fmt) {
    if (!s->has_weights) return;   /* nothing stored; the exporter refuses activation-only groups */
    const qn_quant_args *w = &s->weights;
    char sum[256];
    scheme_summary(s, sum, sizeof sum);
    if (!strcmp(fmt, "dense")) {
        add(S, QN_VLLM_DENSE_FORMAT,
            "%s: format \"dense\" (%s; weights stored fake-quantized, quantization_status frozen): "
            "vLLM does not support dense-format quantized checkpoints (spec §6.5; it has no scheme for them) — "
            "leave the format to quench so a compressed one is written",
            gi->label, sum);
        return;
    }
    if (!strcmp(fmt, "marlin-24")) {
        add(S, QN_VLLM_MARLIN24,
            "%s: format \"marlin-24\" (%s): vLLM does not support marlin-24 (spec §6.5: deprecated, "
            "CompressedTensorsW4A16Sparse24 is removed from current vLLM; quench does not write it either) — "
            "use pack-quantized",
            gi->label, sum);
        return;
    }
    int weight_only = !s->has_input_activations;
    if (w->type == QN_QTYPE_INT && weight_only) {
        const char *st = qn_qstrategy_name(w->strategy);
        if (w->strategy != QN_STRATEGY_CHANNEL && w->strategy != QN_STRATEGY_GROUP)
            add(S, QN_VLLM_INT_TENSOR,
                "%s: weight-only int%d weights with strategy %s: vLLM does not support weight-only int with "
                "strategy tensor (spec §6.5: CompressedTensorsWNA16 takes strategy channel or group only)",
                gi->label, w->num_bits, st ? st : "null");
        if (strcmp(fmt, "pack-quantized"))
            add(S, QN_VLLM_INT_UNPACKED,
                "%s: weight-only int%d weights stored unpacked as \"%s\": vLLM does not support weight-only int "
                "stored unpacked (spec §6.5: naive/int-quantized without activations; CompressedTensorsWNA16 "
                "needs pack-quantized, which compressed-tensors <= 0.14 writes for 4 and 8 bits only)",
                gi->label, w->num_bits, fmt);
        if (w->num_bits != 4 && w->num_bits != 8)
            add(S, QN_VLLM_WNA16_BITS,
                "%s: weight-only int%d weights: vLLM does not support WNA16 bit widths other than 4/8 "
                "(spec §6.5: CompressedTensorsWNA16 takes num_bits 4 or 8)",
                gi->label, w->num_bits);
        if (w->strategy == QN_STRATEGY_GROUP && w->has_group_size && w->group_size != 32 && w->group_size != 64 &&
            w->group_size != 128)
            add(S, QN_VLLM_MARLIN_GROUP,
                "%s: weight-only int%d weights with group_size %lld: vLLM does not support Marlin group sizes "
                "other than 32/64/128/channel (spec §6.5, §6.2: WNA16 runs on Marlin with group_size 32, 64, 128 "
                "or strategy channel)",
                gi->label, w->num_bits, (long long)w->group_size);
    }
    if (!w->symmetric && (!weight_only || w->type == QN_QTYPE_FLOAT))
        add(S, QN_VLLM_ASYM_WEIGHTS,
            "%s: %s: vLLM does not support asymmetric weights for W8A8 int8/fp8 (spec §6.5, §6.2: "
            "CompressedTensorsW8A8Int8, W8A8Fp8, W8A16Fp8 and W4A8 take symmetric weights only) — set "
            "weights.symmetric: true",
            gi->label, sum);
}

qn_status qn_vllm_check(const qn_recipe *r, const qn_recipe_plan *plan, const qn_module *mods, size_t n,
                        const qn_vllm_check_opts *opts, qn_vllm_warnings *out, qn_error *err) {
    if (!out) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_vllm_check: NULL output");
    out->items = NULL;
    out->n = 0;
    if (!r || !plan || (!mods && n)) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_vllm_check: NULL argument");
    if (plan->n_modules != n || (n && !plan->group_of))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_vllm_check: the plan was resolved for %zu modules, not %zu",
                            plan->n_modules, n);
    qn_vllm_check_opts dflt = {0};
    if (!opts) opts = &dflt;
    int v = opts->ct_version > 0 ? opts->ct_version : QN_CT_VERSION_DEFAULT;
    int bitmask = opts->sparse_format && !strcmp(opts->sparse_format, "sparse-24-bitmask");
    const char *rname = r->name ? r->name : "recipe";
    sink S = {out, 0, err, 0};
    group_info *gi = calloc(plan->n_groups ? plan->n_groups : 1, sizeof *gi);
    if (!gi) return qn_error_set(err, QN_ERR_NOMEM, "vLLM check: out of memory");
    qn_status st = QN_OK;

    /* which groups own modules, in the exporter's group_N order */
    int written = 0;
    size_t routers = 0, first_router = 0;
    for (size_t i = 0; i < n; i++) {
        int g = plan->group_of[i];
        if (g < 0 || (size_t)g >= plan->n_groups) continue;
        if (!gi[g].used++) { gi[g].first = i; gi[g].written = written++; }
        if (is_expert(mods[i].name) && !gi[g].experts++) gi[g].first_expert = i;
        if (is_router(mods[i].name) && !routers++) first_router = i;
    }
    for (size_t g = 0; g < plan->n_groups; g++) {
        if (!gi[g].used) continue;
        const char *path, *key;
        group_origin(r, plan, g, &path, &key);
        snprintf(gi[g].label, sizeof gi[g].label, "%s: %s config group '%s' (written as group_%d; %d Linear%s, e.g. %s)", rname,
                 path, key, gi[g].written, gi[g].used, gi[g].used == 1 ? "" : "s", mods[gi[g].first].name);
    }

    /* §6.5 per group, in written order */
    for (int k = 0; k < written && !S.failed; k++)
        for (size_t g = 0; g < plan->n_groups; g++) {
            if (!gi[g].used || gi[g].written != k) continue;
            char fmt[32];
            if (opts->format) snprintf(fmt, sizeof fmt, "%s", opts->format);
            else qn_export_group_format(&plan->groups[g], v, fmt, sizeof fmt);
            check_group(&S, &plan->groups[g], &gi[g], fmt);
        }

    /* §6.5 2:4 sparsity, per SparseGPTModifier */
    for (size_t k = 0; k < qn_recipe_modifier_count(r) && !S.failed; k++) {
        const qn_modifier *m = qn_recipe_modifier(r, k);
        if (m->kind != QN_MOD_SPARSEGPT) continue;
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(m->params, "mask_structure");
        int nn = 0, mm = 0;
        if (!cJSON_IsString(ms) || sscanf(ms->valuestring, "%d:%d", &nn, &mm) != 2 || nn != 2 || mm != 4) continue;
        size_t pruned = 0, first = 0;
        int all_ok = 1;
        for (size_t i = 0; i < n; i++) {
            int rc = pruned_by(m, &mods[i], err);
            if (rc < 0) {
                qn_error_prefix(err, "%s: %s", rname, m->path);
                st = err ? err->code : QN_ERR_FORMAT;
                goto done;
            }
            if (!rc) continue;
            if (!pruned++) first = i;
            int g = plan->group_of[i];
            if (!cutlass24_ok(g >= 0 ? &plan->groups[g] : NULL)) all_ok = 0;
        }
        if (!pruned) continue;   /* the pipeline refuses a SparseGPTModifier that prunes nothing */
        if (bitmask)
            add(&S, QN_VLLM_SPARSE24,
                "%s: %s (mask_structure \"2:4\", %zu Linears pruned, e.g. %s) written as sparse-24-bitmask "
                "(--sparse-format): vLLM does not support 2:4 sparse checkpoints after March 2026 (spec §6.5; "
                "PR #36799 removed its 2:4 path): current vLLM and compressed-tensors >= 0.15 refuse this layout; "
                "only vLLM before the removal loads it (cutlass 2:4 kernels, SM 9.0, every shard %% 8) — use "
                "--sparse-format dense",
                rname, m->path, pruned, mods[first].name);
        else
            add(&S, QN_VLLM_SPARSE24,
                "%s: %s (mask_structure \"2:4\", %zu Linears pruned, e.g. %s; sparsity_config format dense): vLLM "
                "does not support 2:4 sparse checkpoints after March 2026 (spec §6.5; PR #36799 removed its 2:4 "
                "path): vLLM after the removal loads the zeros as ordinary weights of the quantization scheme, with "
                "no sparse speed-up; vLLM before it %s",
                rname, m->path, pruned, mods[first].name,
                all_ok ? "ran cutlass 2:4 kernels for it (SM 9.0, every shard % 8)"
                       : "ran it without 2:4 kernels too (they need unquantized or 8-bit weights with 8-bit "
                         "activations of one type; weight-only int4 needed marlin-24)");
    }

    /* §6.4 KV cache */
    if (plan->kv_cache_scheme && !S.failed) {
        const qn_quant_args *kv = plan->kv_cache_scheme;
        if (!(kv->type == QN_QTYPE_FLOAT && kv->num_bits == 8 && kv->symmetric &&
              (kv->strategy == QN_STRATEGY_TENSOR || kv->strategy == QN_STRATEGY_UNSET))) {
            const char *path = "recipe";
            for (size_t k = 0; k < qn_recipe_modifier_count(r); k++) {
                const qn_modifier *m = qn_recipe_modifier(r, k);
                if (m->has_kv_cache_scheme && &m->kv_cache_scheme == kv) path = m->path;
            }
            char sum[96];
            args_summary(kv, sum, sizeof sum);
            add(&S, QN_VLLM_KV_CACHE,
                "%s: %s kv_cache_scheme (%s): vLLM accepts only an fp8 KV cache scheme (type float, num_bits 8, "
                "strategy tensor, symmetric; spec §6.4, §3.7)",
                rname, path, sum);
        }
    }

    /* §6.3a MoE experts: FusedMoE takes the scheme of the "Linear" target */
    for (size_t g = 0; g < plan->n_groups && !S.failed; g++) {
        if (!gi[g].experts || has_target(&plan->groups[g], "Linear")) continue;
        int any_linear = 0, same = 0;
        for (size_t h = 0; h < plan->n_groups; h++) {
            if (!gi[h].used || !has_target(&plan->groups[h], "Linear")) continue;
            any_linear = 1;
            same |= same_scheme(&plan->groups[h], &plan->groups[g]);
        }
        if (same) continue;
        char tg[256];
        size_t l = 0;
        tg[0] = 0;
        for (size_t t = 0; t < plan->groups[g].n_targets && l + 4 < sizeof tg; t++)
            l += (size_t)snprintf(tg + l, sizeof tg - l, "%s\"%s\"", t ? ", " : "", plan->groups[g].targets[t]);
        add(&S, QN_VLLM_MOE_SCHEME,
            "%s: quantizes %d MoE expert Linears (e.g. %s) with targets [%s], not \"Linear\": vLLM's FusedMoE "
            "reads the experts' scheme from the group targeting \"Linear\" (spec §6.3a; newer vLLM UNCONFIRMED), %s",
            gi[g].label, gi[g].experts, mods[gi[g].first_expert].name, tg,
            any_linear ? "which here is another scheme" : "and no group targets \"Linear\"");
    }

    /* §6.3a routers */
    if (routers && !S.failed) {
        int g = plan->group_of[first_router];
        const char *path, *key;
        group_origin(r, plan, (size_t)g, &path, &key);
        add(&S, QN_VLLM_ROUTER,
            "%s: %s config group '%s' (written as group_%d) quantizes %zu MoE router Linear%s (e.g. %s): vLLM "
            "builds MoE routers unquantized (quant_config=None) and does not load quantized router weights "
            "(spec §6.3a: routers belong in ignore) — add \"re:.*mlp.gate$\" to ignore",
            rname, path, key, gi[g].written, routers, routers == 1 ? "" : "s", mods[first_router].name);
    }
    if (S.failed) st = err ? err->code : QN_ERR_NOMEM;
done:
    free(gi);
    if (st) qn_vllm_warnings_free(out);
    return st;
}
