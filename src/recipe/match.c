/* quench — compressed-tensors target / ignore matching and the per-module plan of a recipe.
 *
 * Semantics (compressed-tensors utils/match.py `match_name`, `_match_class`, `match_targets`,
 * `is_match`; quantization/lifecycle/apply.py `apply_quantization_config`; checked at CT HEAD):
 *  - "re:<regex>" matches when Python `re.match(regex, name)` does: anchored at the start of the
 *    full module name only ("re:q_proj" does not match "model.layers.0.self_attn.q_proj",
 *    "re:.*q_proj$" does). PCRE2 with UTF + UCP (\d, \w are Unicode-aware as in Python 3 str
 *    patterns) and PCRE2_ANCHORED; lookahead etc. work natively. Regexes are not tried on class
 *    names: `_match_class` compares each class `__name__` in the MRO exactly (a ":" never occurs
 *    in a class name). CT <= 0.10 (`_find_matches`) also tried regexes on the class name; readers
 *    of today's checkpoints do not.
 *  - other strings: equal to the full name, or equal to the class name.
 *  - targets of all config groups are flattened into one target -> group map in group order (a
 *    target string listed in two groups belongs to the later one). A module's matching targets
 *    are ordered exact-name matches, then regex matches alphabetically, then class-name matches,
 *    and the first one picks the group (`_scheme_from_targets`).
 *  - ignore entries use the same rules (name, regex, class) and drop a targeted module.
 *  - only Linear modules get a scheme (apply_quantization_config: `isinstance(module,
 *    torch.nn.Linear)`; attention modules only for kv-cache / attention quantization).
 *  - several modifiers apply in order; a later one that assigns a module replaces the earlier
 *    scheme, a later one that ignores it leaves it alone (initialize_quantization resets only the
 *    modules it targets and does not ignore).
 * Checks beyond CT (which only warns about unmatched targets and never checks ignore entries):
 *  - an exact-name target that matches no module at all is an error (a typo); a "re:" target that
 *    matches nothing is listed in plan->unmatched_targets (recipes are shared between models,
 *    e.g. "re:.*experts.*" on a dense model) unless its modifier then quantizes nothing, which is
 *    an error naming it; an ignore entry that matches nothing is
 *    allowed (recipes are shared between dense and MoE models, e.g. "re:.*mlp.gate$") and listed in
 *    plan->unmatched_ignore;
 *  - a quantizing modifier whose groups quantize no Linear module is an error;
 *  - group / tensor_group weights need in % group_size == 0 where in >= group_size (llm-compressor
 *    group_size_validation.py; bypass_divisibility_checks: true skips it, as there);
 *  - vLLM fuses q_proj/k_proj/v_proj, gate_proj/up_proj and q_a_proj/kv_a_proj_with_mqa of one
 *    block into one layer and all experts of a MoE block into one FusedMoE layer: their members
 *    must end up with the same scheme (or all unquantized), else vLLM refuses the checkpoint
 *    ("Found a different quantization schemes for ...").
 * Cost: each regex is compiled (and JIT-compiled) once per resolve; exact names go through hash
 * tables, so a resolve is O(modules x regexes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "quench/recipe.h"
#include "recipe/recipe_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Regexes                                                                                   */

struct qnr_regex {
    pcre2_code *code;
    pcre2_match_data *md;
    char *pattern;
};

void qnr_regex_free(qnr_regex *re) {
    if (!re) return;
    pcre2_match_data_free(re->md);
    pcre2_code_free(re->code);
    free(re->pattern);
    free(re);
}

qn_status qnr_regex_compile(const char *pattern, qnr_regex **out, qn_error *err) {
    *out = NULL;
    int ec;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &ec, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(ec, msg, sizeof msg) < 0) strcpy((char *)msg, "unknown error");
        return qn_error_set(err, QN_ERR_FORMAT, "invalid regular expression 're:%s': %s at offset %zu",
                            pattern, (const char *)msg, (size_t)off);
    }
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* the interpreter runs when JIT is missing */
    qnr_regex *re = calloc(1, sizeof *re);
    if (re) {
        re->code = code;
        re->md = pcre2_match_data_create(1, NULL);
        re->pattern = strdup(pattern);
    }
    if (!re || !re->md || !re->pattern) {
        if (re) qnr_regex_free(re);
        else pcre2_code_free(code);
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory compiling 're:%s'", pattern);
    }
    *out = re;
    return QN_OK;
}

int qnr_regex_match(qnr_regex *re, const char *subject, qn_error *err) {
    int rc = pcre2_match(re->code, (PCRE2_SPTR)subject, PCRE2_ZERO_TERMINATED, 0, 0, re->md, NULL);
    if (rc >= 0) return 1; /* 0: matched, ovector too small for the groups (not needed) */
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    PCRE2_UCHAR msg[256];
    if (pcre2_get_error_message(rc, msg, sizeof msg) < 0) strcpy((char *)msg, "unknown error");
    qn_error_set(err, QN_ERR_FORMAT, "regular expression 're:%s' failed on '%s': %s", re->pattern, subject,
                 (const char *)msg);
    return -1;
}

int qn_target_matches(const char *target, const qn_module *m, qn_error *err) {
    if (!target || !m) {
        qn_error_set(err, QN_ERR_INVALID_ARG, "qn_target_matches: NULL argument");
        return -1;
    }
    const char *name = m->name ? m->name : "", *cls = m->class_name ? m->class_name : "";
    if (!strncmp(target, "re:", 3)) {
        qnr_regex *re;
        if (qnr_regex_compile(target + 3, &re, err)) return -1;
        int rc = qnr_regex_match(re, name, err);
        qnr_regex_free(re);
        return rc;
    }
    return !strcmp(target, name) || !strcmp(target, cls);
}

/* ---------------------------------------------------------------------------------------- */
/* String -> int hash map (open addressing; keys borrowed)                                    */

typedef struct {
    const char **keys;
    int *vals;
    size_t cap; /* power of two */
} strmap;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int sm_init(strmap *m, size_t n) {
    m->cap = 16;
    while (m->cap < 2 * n + 1) m->cap *= 2;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->vals = calloc(m->cap, sizeof *m->vals);
    return m->keys && m->vals ? 0 : -1;
}

static void sm_free(strmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Inserts or replaces; the map was sized for every key put into it. */
static void sm_put(strmap *m, const char *k, int v) {
    size_t i = (size_t)hash_str(k) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], k)) i = (i + 1) & (m->cap - 1);
    m->keys[i] = k;
    m->vals[i] = v;
}

static int sm_get(const strmap *m, const char *k) {
    if (!m->cap) return -1;
    size_t i = (size_t)hash_str(k) & (m->cap - 1);
    while (m->keys[i]) {
        if (!strcmp(m->keys[i], k)) return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Resolve                                                                                   */

void qn_recipe_plan_free(qn_recipe_plan *plan) {
    if (!plan) return;
    free(plan->group_of);
    free(plan->ignored);
    free((void *)plan->unmatched_ignore);
    for (size_t i = 0; i < plan->n_unmatched_targets; i++) free((void *)plan->unmatched_targets[i]);
    free((void *)plan->unmatched_targets);
    memset(plan, 0, sizeof *plan);
}

static int quantizing(qn_modifier_kind k) {
    return k == QN_MOD_QUANTIZATION || k == QN_MOD_GPTQ || k == QN_MOD_AWQ;
}

static int group_empty(const qn_quant_scheme *s) {
    return !s->has_weights && !s->has_input_activations && !s->has_output_activations;
}

static int is_linear(const qn_module *m) { return m->class_name && !strcmp(m->class_name, "Linear"); }

typedef struct {
    const char *s;
    int group; /* global group index */
    qnr_regex *re;
    int used;
} tentry;

static int cmp_entry(const void *a, const void *b, void *ctx) {
    const tentry *e = ctx;
    return strcmp(e[*(const int *)a].s, e[*(const int *)b].s);
}

/* insertion sort by string (few regexes; qsort_r is not C11) */
static void sort_idx(int *idx, int n, const tentry *e) {
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i - 1;
        while (j >= 0 && cmp_entry(&idx[j], &v, (void *)e) > 0) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = v;
    }
}

typedef struct {
    const qn_recipe *r;
    const qn_module *mods;
    size_t n;
    qn_recipe_plan *plan;
    int *target_ignored; /* [n] some modifier targeted and ignored the module */
    const char **unmatched;
    size_t n_unmatched;
    qn_error *err;
} resolver;

static qn_status resolve_modifier(resolver *R, const qn_modifier *m) {
    const qn_recipe *r = R->r;
    qn_status st = QN_OK;
    size_t goff = (size_t)(m->groups - r->groups);
    size_t nt = 0;
    for (size_t g = 0; g < m->n_groups; g++) nt += m->groups[g].n_targets;
    tentry *ent = calloc(nt ? nt : 1, sizeof *ent);
    int *rx = calloc(nt ? nt : 1, sizeof *rx);
    tentry *ign = calloc(m->n_ignore ? m->n_ignore : 1, sizeof *ign);
    int *irx = calloc(m->n_ignore ? m->n_ignore : 1, sizeof *irx);
    strmap exact = {0}, iexact = {0};
    int ne = 0, nrx = 0, nirx = 0;
    size_t assigned = 0, n_indiv = 0;
    char indiv[384] = "";
    /* llm-compressor validate_group_size_divisibility (group / tensor_group weights; columns >=
     * group_size and not a multiple), unless bypass_divisibility_checks or validate_group_size: false */
    const cJSON *bypass = cJSON_GetObjectItemCaseSensitive(m->params, "bypass_divisibility_checks");
    const cJSON *validate = cJSON_GetObjectItemCaseSensitive(m->params, "validate_group_size");
    int check_div = !cJSON_IsTrue(bypass) && !cJSON_IsFalse(validate);
    if (!ent || !rx || !ign || !irx || sm_init(&exact, nt) || sm_init(&iexact, m->n_ignore)) {
        st = qn_error_set(R->err, QN_ERR_NOMEM, "%s: out of memory resolving the recipe", r->name);
        goto out;
    }
    /* flatten: target string -> group (later group wins) */
    strmap seen;
    if (sm_init(&seen, nt)) {
        st = qn_error_set(R->err, QN_ERR_NOMEM, "%s: out of memory resolving the recipe", r->name);
        goto out;
    }
    for (size_t g = 0; g < m->n_groups; g++)
        for (size_t t = 0; t < m->groups[g].n_targets; t++) {
            const char *s = m->groups[g].targets[t];
            int k = sm_get(&seen, s);
            if (k < 0) {
                k = ne++;
                ent[k].s = s;
                sm_put(&seen, s, k);
            }
            ent[k].group = (int)(goff + g);
        }
    sm_free(&seen);
    for (int k = 0; k < ne && !st; k++) {
        if (!strncmp(ent[k].s, "re:", 3)) {
            if ((st = qnr_regex_compile(ent[k].s + 3, &ent[k].re, R->err)))
                qn_error_prefix(R->err, "%s: %s: targets", r->name, m->path);
            else
                rx[nrx++] = k;
        } else {
            sm_put(&exact, ent[k].s, k);
        }
    }
    for (size_t i = 0; i < m->n_ignore && !st; i++) {
        ign[i].s = m->ignore[i];
        if (!strncmp(ign[i].s, "re:", 3)) {
            if ((st = qnr_regex_compile(ign[i].s + 3, &ign[i].re, R->err)))
                qn_error_prefix(R->err, "%s: %s: ignore", r->name, m->path);
            else
                irx[nirx++] = (int)i;
        } else {
            sm_put(&iexact, ign[i].s, (int)i);
        }
    }
    if (st) goto out;
    sort_idx(rx, nrx, ent);

    for (size_t i = 0; i < R->n; i++) {
        const qn_module *mod = &R->mods[i];
        const char *name = mod->name, *cls = mod->class_name ? mod->class_name : "";
        int e = sm_get(&exact, name), c = sm_get(&exact, cls), best = e;
        if (e >= 0) ent[e].used = 1;
        if (c >= 0) ent[c].used = 1;
        for (int j = 0; j < nrx; j++) {
            tentry *t = &ent[rx[j]];
            if (best >= 0 && t->used) continue;
            int rc = qnr_regex_match(t->re, name, R->err);
            if (rc < 0) {
                qn_error_prefix(R->err, "%s: %s: targets", r->name, m->path);
                st = R->err ? R->err->code : QN_ERR_FORMAT;
                goto out;
            }
            if (rc) {
                t->used = 1;
                if (best < 0) best = rx[j];
            }
        }
        if (best < 0) best = c;
        int ie = sm_get(&iexact, name), ic = sm_get(&iexact, cls), ignored = ie >= 0 || ic >= 0;
        if (ie >= 0) ign[ie].used = 1;
        if (ic >= 0) ign[ic].used = 1;
        for (int j = 0; j < nirx; j++) {
            tentry *t = &ign[irx[j]];
            if (t->used && (best < 0 || ignored)) continue;
            int rc = qnr_regex_match(t->re, name, R->err);
            if (rc < 0) {
                qn_error_prefix(R->err, "%s: %s: ignore", r->name, m->path);
                st = R->err ? R->err->code : QN_ERR_FORMAT;
                goto out;
            }
            if (rc) {
                t->used = 1;
                ignored = 1;
            }
        }
        if (best < 0) continue;
        if (ignored) {
            R->target_ignored[i] = 1;
            continue;
        }
        if (!is_linear(mod)) continue;
        int g = ent[best].group;
        if (group_empty(&r->groups[g])) {
            R->plan->group_of[i] = -1;
            continue;
        }
        R->plan->group_of[i] = g;
        assigned++;
        const qn_quant_args *w = &r->groups[g].weights;
        if (check_div && r->groups[g].has_weights &&
            (w->strategy == QN_STRATEGY_GROUP || w->strategy == QN_STRATEGY_TENSOR_GROUP) &&
            w->has_group_size && w->group_size > 0 && mod->in >= w->group_size && mod->in % w->group_size) {
            if (!n_indiv) {
                snprintf(indiv, sizeof indiv, "'%s' (%lld columns, group_size %lld)", name,
                         (long long)mod->in, (long long)w->group_size);
            }
            n_indiv++;
        }
    }
    if (n_indiv) {
        st = qn_error_set(R->err, QN_ERR_INVALID_ARG,
                          "%s: %s: %zu layer%s weight columns not divisible by group_size, e.g. %s; "
                          "group quantization needs columns %% group_size == 0: add them to ignore, or "
                          "set bypass_divisibility_checks: true if the runtime supports it",
                          r->name, m->path, n_indiv, n_indiv > 1 ? "s have" : " has", indiv);
        goto out;
    }
    /* every exact-name target must match some module (in the order they are written); a regex
     * target that matches nothing is reported (plan->unmatched_targets) unless the modifier then
     * quantizes nothing at all */
    const char *first_rx = NULL, *first_rx_group = NULL;
    for (size_t g = 0; g < m->n_groups; g++)
        for (size_t t = 0; t < m->groups[g].n_targets; t++) {
            const char *s = m->groups[g].targets[t];
            for (int k = 0; k < ne; k++)
                if (!strcmp(ent[k].s, s) && !ent[k].used) {
                    if (strncmp(s, "re:", 3)) {
                        st = qn_error_set(R->err, QN_ERR_NOT_FOUND,
                                          "%s: %s: target '%s' (config group '%s') matches no module of the model",
                                          r->name, m->path, s, m->group_names[g]);
                        goto out;
                    }
                    if (!first_rx) { first_rx = s; first_rx_group = m->group_names[g]; }
                    char msg[768];
                    snprintf(msg, sizeof msg, "%s: %s: target '%s' (config group '%s') matches no module of the model "
                             "(a \"re:\" target is matched against module names only, as compressed-tensors does; "
                             "class names such as Linear match only as plain targets)", r->name, m->path, s,
                             m->group_names[g]);
                    char *dup = strdup(msg);
                    const char **nv = dup ? realloc((void *)R->plan->unmatched_targets,
                                                     (R->plan->n_unmatched_targets + 1) * sizeof *nv) : NULL;
                    if (!nv) {
                        free(dup);
                        st = qn_error_set(R->err, QN_ERR_NOMEM, "out of memory");
                        goto out;
                    }
                    nv[R->plan->n_unmatched_targets++] = dup;
                    R->plan->unmatched_targets = nv;
                    break;
                }
        }
    int any_content = 0;
    for (size_t g = 0; g < m->n_groups; g++) any_content |= !group_empty(&m->groups[g]);
    if (any_content && !assigned && first_rx) {
        st = qn_error_set(R->err, QN_ERR_NOT_FOUND,
                          "%s: %s: target '%s' (config group '%s') matches no module of the model, so the modifier "
                          "quantizes nothing", r->name, m->path, first_rx, first_rx_group);
        goto out;
    }
    if (any_content && !assigned) {
        st = qn_error_set(R->err, QN_ERR_NOT_FOUND,
                          "%s: %s: quantizes no module: its targets match only ignored modules or "
                          "modules that are not Linear", r->name, m->path);
        goto out;
    }
    for (size_t i = 0; i < m->n_ignore; i++) {
        if (ign[i].used) continue;
        int dup = 0;
        for (size_t k = 0; k < R->n_unmatched && !dup; k++) dup = !strcmp(R->unmatched[k], ign[i].s);
        if (!dup) R->unmatched[R->n_unmatched++] = ign[i].s;
    }
out:
    for (int k = 0; k < ne; k++) qnr_regex_free(ent[k].re);
    for (size_t i = 0; ign && i < m->n_ignore; i++) qnr_regex_free(ign[i].re);
    free(ent);
    free(rx);
    free(ign);
    free(irx);
    sm_free(&exact);
    sm_free(&iexact);
    return st;
}

static int args_same(int ha, const qn_quant_args *a, int hb, const qn_quant_args *b) {
    return ha == hb && (!ha || qn_quant_args_equal(a, b));
}

static int same_scheme(const qn_recipe_plan *p, size_t i, size_t j) {
    int a = p->group_of[i], b = p->group_of[j];
    if (a == b) return 1;
    if (a < 0 || b < 0) return 0;
    const qn_quant_scheme *x = &p->groups[a], *y = &p->groups[b];
    return args_same(x->has_weights, &x->weights, y->has_weights, &y->weights) &&
           args_same(x->has_input_activations, &x->input_activations, y->has_input_activations,
                     &y->input_activations) &&
           args_same(x->has_output_activations, &x->output_activations, y->has_output_activations,
                     &y->output_activations) &&
           !strcmp(x->format, y->format);
}

static void describe(const resolver *R, size_t i, char *buf, size_t cap) {
    int g = R->plan->group_of[i];
    if (g >= 0) snprintf(buf, cap, "config group '%s'", R->r->group_names[g]);
    else if (R->plan->ignored[i]) snprintf(buf, cap, "ignored");
    else snprintf(buf, cap, "not quantized");
}

static const char *const *const FUSED[] = {
    (const char *const[]){".q_proj", ".k_proj", ".v_proj", NULL},
    (const char *const[]){".gate_proj", ".up_proj", NULL},
    (const char *const[]){".q_a_proj", ".kv_a_proj_with_mqa", NULL},
};

static qn_status check_fused(resolver *R) {
    const qn_module *mods = R->mods;
    strmap names;
    qn_status st = QN_OK;
    if (sm_init(&names, R->n))
        return qn_error_set(R->err, QN_ERR_NOMEM, "%s: out of memory resolving the recipe", R->r->name);
    for (size_t i = 0; i < R->n; i++)
        if (is_linear(&mods[i])) sm_put(&names, mods[i].name, (int)i);
    char key[1024], d1[160], d2[160];
    for (size_t i = 0; i < R->n && !st; i++) {
        if (!is_linear(&mods[i])) continue;
        const char *name = mods[i].name;
        size_t len = strlen(name);
        for (size_t f = 0; f < sizeof FUSED / sizeof FUSED[0] && !st; f++) {
            const char *const *set = FUSED[f];
            for (int s = 0; set[s]; s++) {
                size_t sl = strlen(set[s]);
                if (len <= sl || strcmp(name + len - sl, set[s]) || len - sl + 32 > sizeof key) continue;
                int ref = -1;
                for (int t = 0; set[t] && ref < 0; t++) {
                    snprintf(key, sizeof key, "%.*s%s", (int)(len - sl), name, set[t]);
                    ref = sm_get(&names, key);
                }
                if (ref >= 0 && (size_t)ref != i && !same_scheme(R->plan, (size_t)ref, i)) {
                    describe(R, (size_t)ref, d1, sizeof d1);
                    describe(R, i, d2, sizeof d2);
                    char members[96] = "";
                    for (int t = 0; set[t]; t++)
                        snprintf(members + strlen(members), sizeof members - strlen(members), "%s%s",
                                 t ? "/" : "", set[t] + 1);
                    st = qn_error_set(R->err, QN_ERR_INVALID_ARG,
                                      "%s: fused layers '%s' (%s) and '%s' (%s) would be quantized "
                                      "differently; vLLM loads %s of a block as one layer, so quantize "
                                      "them alike (ignore all of them or none)",
                                      R->r->name, mods[ref].name, d1, name, d2, members);
                }
                break;
            }
        }
    }
    sm_free(&names);
    if (st) return st;

    /* experts of one MoE block: "<p>.experts.<n>.<leaf>" all share one scheme */
    strmap moe;
    char **keys = calloc(R->n ? R->n : 1, sizeof *keys);
    size_t nkeys = 0;
    if (!keys || sm_init(&moe, R->n)) {
        free(keys);
        return qn_error_set(R->err, QN_ERR_NOMEM, "%s: out of memory resolving the recipe", R->r->name);
    }
    for (size_t i = 0; i < R->n && !st; i++) {
        if (!is_linear(&mods[i])) continue;
        const char *name = mods[i].name, *p = name, *hit = NULL;
        while ((p = strstr(p, ".experts.")) != NULL) {
            const char *d = p + 9;
            const char *q = d;
            while (*q >= '0' && *q <= '9') q++;
            if (q > d && *q == '.') hit = p;
            p = d;
        }
        if (!hit) continue;
        size_t kl = (size_t)(hit - name);
        char *k = malloc(kl + 1);
        if (!k) {
            st = qn_error_set(R->err, QN_ERR_NOMEM, "%s: out of memory resolving the recipe", R->r->name);
            break;
        }
        memcpy(k, name, kl);
        k[kl] = '\0';
        int ref = sm_get(&moe, k);
        if (ref < 0) {
            keys[nkeys++] = k;
            sm_put(&moe, k, (int)i);
            continue;
        }
        if (!same_scheme(R->plan, (size_t)ref, i)) {
            describe(R, (size_t)ref, d1, sizeof d1);
            describe(R, i, d2, sizeof d2);
            st = qn_error_set(R->err, QN_ERR_INVALID_ARG,
                              "%s: experts of the MoE block '%s' would be quantized differently ('%s': %s, "
                              "'%s': %s); vLLM runs the experts of a block as one fused layer with one scheme",
                              R->r->name, k, mods[ref].name, d1, name, d2);
        }
        free(k);
    }
    for (size_t i = 0; i < nkeys; i++) free(keys[i]);
    free(keys);
    sm_free(&moe);
    return st;
}

qn_status qn_recipe_resolve(const qn_recipe *r, const qn_module *mods, size_t n, qn_recipe_plan *plan,
                            qn_error *err) {
    if (!plan) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_recipe_resolve: NULL plan");
    memset(plan, 0, sizeof *plan);
    if (!r || (!mods && n)) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_recipe_resolve: NULL argument");
    if (n > (size_t)INT32_MAX)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: too many modules (%zu)", r->name, n);
    for (size_t i = 0; i < n; i++)
        if (!mods[i].name)
            return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: module %zu has no name", r->name, i);
    size_t n_ign = 0;
    for (size_t k = 0; k < r->n_mods; k++) n_ign += r->mods[k].n_ignore;
    resolver R = {r, mods, n, plan, NULL, NULL, 0, err};
    plan->n_modules = n;
    plan->group_of = malloc((n ? n : 1) * sizeof *plan->group_of);
    plan->ignored = calloc(n ? n : 1, sizeof *plan->ignored);
    R.target_ignored = calloc(n ? n : 1, sizeof *R.target_ignored);
    R.unmatched = calloc(n_ign ? n_ign : 1, sizeof *R.unmatched);
    qn_status st = QN_OK;
    if (!plan->group_of || !plan->ignored || !R.target_ignored || !R.unmatched) {
        st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory resolving the recipe", r->name);
        goto out;
    }
    for (size_t i = 0; i < n; i++) plan->group_of[i] = -1;
    plan->groups = r->groups;
    plan->n_groups = r->n_groups;
    for (size_t k = 0; k < r->n_mods && !st; k++) {
        const qn_modifier *m = &r->mods[k];
        if (!quantizing(m->kind)) continue;
        if (m->n_groups) st = resolve_modifier(&R, m);
        if (m->has_kv_cache_scheme) plan->kv_cache_scheme = &m->kv_cache_scheme;
    }
    if (st) goto out;
    for (size_t i = 0; i < n; i++) plan->ignored[i] = R.target_ignored[i] && plan->group_of[i] < 0;
    if ((st = check_fused(&R))) goto out;
    plan->unmatched_ignore = R.unmatched;
    plan->n_unmatched_ignore = R.n_unmatched;
    R.unmatched = NULL;
out:
    free(R.target_ignored);
    free((void *)R.unmatched);
    if (st) qn_recipe_plan_free(plan);
    return st;
}
