/* quench — llm-compressor recipes: YAML tree -> ordered modifiers with their config groups.
 *
 * Recipe layout (llm-compressor recipe/recipe.py `Recipe.from_dict`, and the older
 * `extract_dict_stages` / `RecipeStage.extract_dict_modifiers` forms):
 *   <name>_stage:                     a stage ("quant_stage" -> stage "quant"); also "stages: {name:
 *     <group>_modifiers:              ...}" and any top-level key whose mapping holds a *_modifiers
 *       QuantizationModifier: {args}  or "modifiers" key. A modifier group maps modifier names to
 *       GPTQModifier: {args}          their arguments (or is a list of one-key mappings).
 *   <group>_modifiers: / modifiers:   the same at top level (default stage);
 *   QuantizationModifier: {args}      a flat recipe; a top-level list of {Modifier: args} too.
 *   version, args, metadata           recipe-level keys of older recipes: accepted, no effect
 *                                     (quench does not evaluate "eval(...)" recipe arguments).
 * llm-compressor silently skips keys it does not recognize; quench reports them (a misspelt key
 * would otherwise drop a modifier). Modifiers run in the order they appear.
 *
 * Modifier arguments (pydantic fields of the llm-compressor classes; unknown ones are errors):
 *   every modifier (Modifier): index, group, start, end, update — scheduling for training runs,
 *     no effect on a oneshot run; kept in params when given.
 *   QuantizationMixin (QuantizationModifier, GPTQModifier, AWQModifier): targets (str or list,
 *     default ["Linear"]), ignore (list), scheme (preset name or {PRESET: targets}), config_groups
 *     ({name: QuantizationScheme}), kv_cache_scheme (QuantizationArgs), weight_observer /
 *     input_observer / output_observer or observer {weights, input, output} (override the
 *     observer of every group's args, as `_apply_observer_overrides`), bypass_divisibility_checks
 *     (and the older validate_group_size) — kept in params.
 *     As in `resolve_quantization_config`: scheme and config_groups exclude each other; a string
 *     scheme uses the modifier's targets; {PRESET: targets} makes one group per entry named
 *     group_<i>. Without scheme and config_groups, llm-compressor adds a group that quantizes
 *     nothing (QuantizationScheme(targets=targets)); quench leaves it out, so a kv-cache-only
 *     modifier does not unset the layers an earlier modifier quantized.
 *   GPTQModifier: block_size (128), dampening_frac (0.01), actorder ("static" by default, see
 *     gptq/base.py resolve_actorder), offload_hessians (false), sequential_targets,
 *     sequential_update (deprecated, no effect).
 *   SparseGPTModifier: sparsity (required: fraction or list), sparsity_profile (null | "owl"),
 *     mask_structure ("0:0" = unstructured, "N:M"), owl_m, owl_lmbda (all or none with "owl"),
 *     block_size, dampening_frac, preserve_sparsity_mask, offload_hessians, sequential_update,
 *     sequential_targets, targets (["Linear"]), ignore.
 *   SmoothQuantModifier: smoothing_strength (0.5, in [0, 1]), mappings ([[balance list], smooth]),
 *     ignore, num_calibration_steps, calibration_function (only null: YAML cannot name a function).
 *   AWQModifier: QuantizationMixin + mappings ([{smooth_layer, balance_layers,
 *     activation_hook_target}]), duo_scaling (true | false | "both"), n_grid (20), offload_device,
 *     smooth_layer_quantization (false only),
 *     sequential_targets, cache_chunk_size_batches.
 * Every "re:" entry (targets, ignore, mappings) is compiled once here, so a bad regex fails before
 * a model is loaded.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "quench/recipe.h"
#include "recipe/recipe_internal.h"

static const char *const KIND_NAMES[QN_MOD_COUNT] = {
    [QN_MOD_QUANTIZATION] = "QuantizationModifier", [QN_MOD_GPTQ] = "GPTQModifier",
    [QN_MOD_SPARSEGPT] = "SparseGPTModifier",       [QN_MOD_SMOOTHQUANT] = "SmoothQuantModifier",
    [QN_MOD_AWQ] = "AWQModifier",
};

const char *qn_modifier_kind_name(qn_modifier_kind k) {
    return (unsigned)k < QN_MOD_COUNT ? KIND_NAMES[k] : "unknown modifier";
}

static int kind_from_name(const char *s) {
    for (int i = 0; i < QN_MOD_COUNT; i++)
        if (!strcmp(s, KIND_NAMES[i])) return i;
    return -1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && !strcmp(s + a - b, suffix);
}

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */

typedef struct {
    const char *name; /* file name for messages */
    qn_recipe *r;
    qn_error *err;
} builder;

static qn_status ferr(builder *b, const char *path, qn_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static qn_status ferr(builder *b, const char *path, qn_status code, const char *fmt, ...) {
    char msg[QN_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path && *path) return qn_error_set(b->err, code, "%s: %s: %s", b->name, path, msg);
    return qn_error_set(b->err, code, "%s: %s", b->name, msg);
}

static qn_status nomem(builder *b) {
    return qn_error_set(b->err, QN_ERR_NOMEM, "%s: out of memory", b->name);
}

static const char *jtype(const cJSON *j) {
    if (!j || cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "a list";
    if (cJSON_IsObject(j)) return "a mapping";
    return "an unknown value";
}

/* ---------------------------------------------------------------------------------------- */
/* Value checks                                                                              */

/* A target / ignore / mapping entry: a non-empty string; "re:" ones must compile. */
static qn_status check_entry(builder *b, const char *path, const char *field, const char *s) {
    if (!s || !*s) return ferr(b, path, QN_ERR_FORMAT, "%s: empty string", field);
    if (strncmp(s, "re:", 3)) return QN_OK;
    qnr_regex *re;
    qn_status st = qnr_regex_compile(s + 3, &re, b->err);
    if (st) {
        qn_error_prefix(b->err, "%s: %s: %s", b->name, path, field);
        return st;
    }
    qnr_regex_free(re);
    return QN_OK;
}

static void free_strv(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* A list of strings (or one string when allow_str) -> owned copies, each checked. */
static qn_status str_list(builder *b, const char *path, const char *field, const cJSON *v, int allow_str,
                          char ***out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    const char *what = allow_str ? "a string or a list of strings" : "a list of strings";
    if (cJSON_IsString(v) && allow_str) {
        qn_status st = check_entry(b, path, field, v->valuestring);
        if (st) return st;
        char **a = malloc(sizeof *a);
        if (!a || !(a[0] = strdup(v->valuestring))) { free(a); return nomem(b); }
        *out = a;
        *n_out = 1;
        return QN_OK;
    }
    if (!cJSON_IsArray(v))
        return ferr(b, path, QN_ERR_FORMAT, "%s must be %s (got %s)", field, what, jtype(v));
    size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
    char **a = n ? calloc(n, sizeof *a) : NULL;
    if (n && !a) return nomem(b);
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        char sub[96];
        snprintf(sub, sizeof sub, "%s[%zu]", field, i);
        if (!cJSON_IsString(e)) {
            free_strv(a, i);
            return ferr(b, path, QN_ERR_FORMAT, "%s must be a string (got %s)", sub, jtype(e));
        }
        qn_status st = check_entry(b, path, sub, e->valuestring);
        if (st) { free_strv(a, i); return st; }
        if (!(a[i] = strdup(e->valuestring))) { free_strv(a, i); return nomem(b); }
    }
    *out = a;
    *n_out = n;
    return QN_OK;
}

static cJSON *strv_json(char **v, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        cJSON *s = cJSON_CreateString(v[i]);
        if (!s || !cJSON_AddItemToArray(a, s)) { cJSON_Delete(s); cJSON_Delete(a); return NULL; }
    }
    return a;
}

static qn_status put(builder *b, cJSON *params, const char *key, cJSON *v) {
    if (!v) return nomem(b);
    cJSON_DeleteItemFromObjectCaseSensitive(params, key);
    if (!cJSON_AddItemToObject(params, key, v)) { cJSON_Delete(v); return nomem(b); }
    return QN_OK;
}

static int is_int(const cJSON *v) {
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble) &&
           fabs(v->valuedouble) < 9.0e15;
}

/* bool field (pydantic lax: true/false, 0/1). */
static qn_status p_bool(builder *b, const char *path, const cJSON *args, const char *key, int dflt,
                        cJSON *params) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    int val = dflt;
    if (v) {
        if (cJSON_IsBool(v)) val = cJSON_IsTrue(v);
        else if (is_int(v) && (v->valuedouble == 0 || v->valuedouble == 1)) val = v->valuedouble != 0;
        else return ferr(b, path, QN_ERR_FORMAT, "%s must be true or false (got %s)", key, jtype(v));
    }
    return put(b, params, key, cJSON_CreateBool(val));
}

/* integer field >= min; dflt_null / allow_null for Optional[int]. */
static qn_status p_int(builder *b, const char *path, const cJSON *args, const char *key, double dflt,
                       int dflt_null, int allow_null, double min, cJSON *params) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    if (!v) return put(b, params, key, dflt_null ? cJSON_CreateNull() : cJSON_CreateNumber(dflt));
    if (cJSON_IsNull(v) && allow_null) return put(b, params, key, cJSON_CreateNull());
    if (!is_int(v) || v->valuedouble < min)
        return ferr(b, path, QN_ERR_FORMAT, "%s must be an integer >= %g%s (got %s)", key, min,
                    allow_null ? " or null" : "", jtype(v));
    return put(b, params, key, cJSON_CreateNumber(v->valuedouble));
}

/* number field in [lo, hi]. */
static qn_status p_num(builder *b, const char *path, const cJSON *args, const char *key, double dflt,
                       int dflt_null, int allow_null, double lo, double hi, cJSON *params) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    if (!v) return put(b, params, key, dflt_null ? cJSON_CreateNull() : cJSON_CreateNumber(dflt));
    if (cJSON_IsNull(v) && allow_null) return put(b, params, key, cJSON_CreateNull());
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return ferr(b, path, QN_ERR_FORMAT, "%s must be a number in [%g, %g]%s (got %s)", key, lo, hi,
                    allow_null ? " or null" : "", cJSON_IsNumber(v) ? "an out-of-range number" : jtype(v));
    return put(b, params, key, cJSON_CreateNumber(v->valuedouble));
}

/* Optional[str | list[str]] (sequential_targets): kept as given, null by default. */
static qn_status p_str_or_list(builder *b, const char *path, const cJSON *args, const char *key,
                               cJSON *params) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
    if (!v || cJSON_IsNull(v)) return put(b, params, key, cJSON_CreateNull());
    char **a;
    size_t n;
    qn_status st = str_list(b, path, key, v, 1, &a, &n);
    if (st) return st;
    cJSON *j = cJSON_IsString(v) ? cJSON_CreateString(a[0]) : strv_json(a, n);
    free_strv(a, n);
    return put(b, params, key, j);
}

/* Modifier base fields (Modifier: index, group, start, end, update): kept when given. */
static qn_status base_fields(builder *b, const char *path, const cJSON *args, cJSON *params) {
    static const char *const NUMS[] = {"start", "end", "update"};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, NUMS[i]);
        if (!v) continue;
        if (!cJSON_IsNull(v) && !(cJSON_IsNumber(v) && isfinite(v->valuedouble)))
            return ferr(b, path, QN_ERR_FORMAT, "%s must be a number or null (got %s)", NUMS[i], jtype(v));
        qn_status st = put(b, params, NUMS[i], cJSON_Duplicate(v, 1));
        if (st) return st;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, "index");
    if (v) {
        if (!cJSON_IsNull(v) && !is_int(v))
            return ferr(b, path, QN_ERR_FORMAT, "index must be an integer or null (got %s)", jtype(v));
        qn_status st = put(b, params, "index", cJSON_Duplicate(v, 1));
        if (st) return st;
    }
    v = cJSON_GetObjectItemCaseSensitive(args, "group");
    if (v) {
        if (!cJSON_IsNull(v) && !cJSON_IsString(v))
            return ferr(b, path, QN_ERR_FORMAT, "group must be a string or null (got %s)", jtype(v));
        qn_status st = put(b, params, "group", cJSON_Duplicate(v, 1));
        if (st) return st;
    }
    return QN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Fields allowed per modifier                                                               */

static const char *const F_BASE[] = {"index", "group", "start", "end", "update", NULL};
static const char *const F_QMIXIN[] = {
    "config_groups", "targets", "ignore", "scheme", "kv_cache_scheme", "weight_observer",
    "input_observer", "output_observer", "observer", "bypass_divisibility_checks", NULL};
static const char *const F_QUANT[] = {"validate_group_size", NULL};
static const char *const F_GPTQ[] = {"block_size", "dampening_frac", "actorder", "offload_hessians",
                                     "sequential_targets", "sequential_update", NULL};
static const char *const F_SPARSEGPT[] = {
    "sparsity", "sparsity_profile", "mask_structure", "owl_m", "owl_lmbda", "block_size",
    "dampening_frac", "preserve_sparsity_mask", "offload_hessians", "sequential_update",
    "sequential_targets", "targets", "ignore", NULL};
static const char *const F_SMOOTHQUANT[] = {"smoothing_strength", "mappings", "ignore",
                                            "num_calibration_steps", "calibration_function", NULL};
static const char *const F_AWQ[] = {"sequential_targets", "mappings", "offload_device", "duo_scaling",
                                    "n_grid", "cache_chunk_size_batches", "smooth_layer_quantization", NULL};

static void kind_fields(qn_modifier_kind k, const char *const *lists[4]) {
    lists[0] = F_BASE;
    lists[1] = lists[2] = lists[3] = NULL;
    switch (k) {
    case QN_MOD_QUANTIZATION: lists[1] = F_QMIXIN; lists[2] = F_QUANT; break;
    case QN_MOD_GPTQ: lists[1] = F_QMIXIN; lists[2] = F_GPTQ; break;
    case QN_MOD_SPARSEGPT: lists[1] = F_SPARSEGPT; break;
    case QN_MOD_SMOOTHQUANT: lists[1] = F_SMOOTHQUANT; break;
    case QN_MOD_AWQ: lists[1] = F_QMIXIN; lists[2] = F_AWQ; break;
    default: break;
    }
}

static qn_status check_fields(builder *b, const char *path, qn_modifier_kind k, const cJSON *args) {
    const char *const *lists[4];
    kind_fields(k, lists);
    for (const cJSON *it = args->child; it; it = it->next) {
        int ok = 0;
        for (int l = 0; l < 4 && !ok; l++)
            for (int i = 0; lists[l] && lists[l][i] && !ok; i++) ok = !strcmp(it->string, lists[l][i]);
        if (ok) continue;
        char known[768];
        size_t pos = 0;
        known[0] = '\0';
        for (int l = 1; l < 4; l++)
            for (int i = 0; lists[l] && lists[l][i] && pos + 1 < sizeof known; i++)
                pos += (size_t)snprintf(known + pos, sizeof known - pos, "%s%s", pos ? ", " : "",
                                        lists[l][i]);
        if (pos + 1 < sizeof known)
            snprintf(known + pos, sizeof known - pos, ", and the Modifier fields index, group, start, "
                                                      "end, update");
        return ferr(b, path, QN_ERR_FORMAT, "unknown field '%s' (%s accepts: %s)", it->string,
                    KIND_NAMES[k], known);
    }
    return QN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Building the recipe                                                                       */

static qn_status push_group(builder *b, qn_quant_scheme *s, const char *name) {
    qn_recipe *r = b->r;
    if (r->n_groups == r->cap_groups) {
        size_t cap = r->cap_groups ? 2 * r->cap_groups : 8;
        qn_quant_scheme *g = realloc(r->groups, cap * sizeof *g);
        if (!g) return nomem(b);
        r->groups = g;
        char **nm = realloc(r->group_names, cap * sizeof *nm);
        if (!nm) return nomem(b);
        r->group_names = nm;
        r->cap_groups = cap;
    }
    char *n = strdup(name);
    if (!n) return nomem(b);
    r->groups[r->n_groups] = *s;
    r->group_names[r->n_groups] = n;
    r->n_groups++;
    qn_quant_scheme_init(s); /* moved */
    return QN_OK;
}

static void modifier_clear(qn_modifier *m) {
    free(m->stage);
    free(m->path);
    free_strv(m->ignore, m->n_ignore);
    cJSON_Delete(m->params);
    memset(m, 0, sizeof *m);
}

static const char *const OBSERVERS[] = {"minmax", "mse", "static_minmax", "static_mse",
                                        "memoryless_minmax", "memoryless_mse", "imatrix_mse", NULL};

/* An observer name (case-insensitive, stored lower case) or null (-> out[0] = 0). */
static qn_status observer_name(builder *b, const char *path, const char *field, const cJSON *v,
                               char out[QN_QARGS_OBSERVER_MAX]) {
    out[0] = '\0';
    if (!v || cJSON_IsNull(v)) return QN_OK;
    if (cJSON_IsString(v))
        for (int i = 0; OBSERVERS[i]; i++)
            if (!strcasecmp(v->valuestring, OBSERVERS[i])) {
                strcpy(out, OBSERVERS[i]);
                return QN_OK;
            }
    return ferr(b, path, QN_ERR_FORMAT,
                "%s must be null or an observer name: minmax, mse, static_minmax, static_mse, "
                "memoryless_minmax, memoryless_mse, imatrix_mse (got %s%s%s)",
                field, cJSON_IsString(v) ? "'" : jtype(v), cJSON_IsString(v) ? v->valuestring : "",
                cJSON_IsString(v) ? "'" : "");
}

/* weight_observer / input_observer / output_observer or observer {weights, input, output}. */
static qn_status observer_overrides(builder *b, const char *path, const cJSON *args, cJSON *params,
                                    char obs[3][QN_QARGS_OBSERVER_MAX]) {
    static const char *const IND[3] = {"weight_observer", "input_observer", "output_observer"};
    static const char *const DICT[3] = {"weights", "input", "output"};
    int individual = 0;
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, IND[i]);
        qn_status st = observer_name(b, path, IND[i], v, obs[i]);
        if (st) return st;
        individual |= obs[i][0] != '\0';
        if (v && (st = put(b, params, IND[i], obs[i][0] ? cJSON_CreateString(obs[i]) : cJSON_CreateNull())))
            return st;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(args, "observer");
    if (!d || cJSON_IsNull(d)) return QN_OK;
    if (!cJSON_IsObject(d))
        return ferr(b, path, QN_ERR_FORMAT, "observer must be a mapping {weights, input, output} (got %s)",
                    jtype(d));
    if (individual)
        return ferr(b, path, QN_ERR_INVALID_ARG,
                    "give either weight_observer/input_observer/output_observer or the observer "
                    "mapping, not both");
    for (const cJSON *it = d->child; it; it = it->next) {
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(it->string, DICT[i])) k = i;
        if (k < 0)
            return ferr(b, path, QN_ERR_FORMAT, "observer: invalid key '%s' (valid: weights, input, output)",
                        it->string);
        char field[32];
        snprintf(field, sizeof field, "observer.%s", DICT[k]);
        if (!cJSON_IsString(it))
            return ferr(b, path, QN_ERR_FORMAT, "%s must be a string (got %s)", field, jtype(it));
        qn_status st = observer_name(b, path, field, it, obs[k]);
        if (st) return st;
    }
    return put(b, params, "observer", cJSON_Duplicate(d, 1));
}

/* Preset `name` with `targets`. */
static qn_status preset_group(builder *b, const char *path, const char *name, char **targets, size_t n,
                              qn_quant_scheme *out) {
    qn_status st = qn_scheme_preset(name, out, b->err);
    if (st) {
        qn_error_prefix(b->err, "%s: %s: scheme", b->name, path);
        return st;
    }
    if ((st = qn_quant_scheme_set_targets(out, (const char *const *)targets, n, b->err))) {
        qn_quant_scheme_free(out);
        return st;
    }
    return QN_OK;
}

/* QuantizationMixin fields -> groups (pushed to the recipe), ignore, kv cache, params. */
static qn_status quant_mixin(builder *b, const char *path, qn_modifier_kind kind, const cJSON *args,
                             qn_modifier *m) {
    qn_status st;
    char **targets = NULL;
    size_t n_targets = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, "targets");
    if (v) {
        if ((st = str_list(b, path, "targets", v, 1, &targets, &n_targets))) return st;
        if (!n_targets) return ferr(b, path, QN_ERR_FORMAT, "targets must not be empty");
    } else {
        targets = malloc(sizeof *targets);
        if (!targets || !(targets[0] = strdup("Linear"))) { free(targets); return nomem(b); }
        n_targets = 1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(args, "ignore")) &&
        (st = str_list(b, path, "ignore", v, 0, &m->ignore, &m->n_ignore)))
        goto out;

    char obs[3][QN_QARGS_OBSERVER_MAX];
    if ((st = observer_overrides(b, path, args, m->params, obs))) goto out;
    if ((st = p_bool(b, path, args, "bypass_divisibility_checks", 0, m->params))) goto out;
    if (kind == QN_MOD_QUANTIZATION && cJSON_GetObjectItemCaseSensitive(args, "validate_group_size") &&
        (st = p_bool(b, path, args, "validate_group_size", 1, m->params)))
        goto out;

    const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(args, "scheme");
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(args, "config_groups");
    if (scheme && cJSON_IsNull(scheme)) scheme = NULL;
    if (groups && cJSON_IsNull(groups)) groups = NULL;
    if (scheme && groups) {
        st = ferr(b, path, QN_ERR_INVALID_ARG, "give either scheme or config_groups, not both");
        goto out;
    }
    size_t first = b->r->n_groups;
    char ctx[768], gname[32];
    if (scheme && cJSON_IsString(scheme)) {
        qn_quant_scheme s;
        if ((st = preset_group(b, path, scheme->valuestring, targets, n_targets, &s))) goto out;
        if ((st = push_group(b, &s, "group_0"))) { qn_quant_scheme_free(&s); goto out; }
    } else if (scheme && cJSON_IsObject(scheme)) {
        size_t i = 0;
        for (const cJSON *it = scheme->child; it; it = it->next, i++) {
            char **t;
            size_t nt;
            char field[160];
            snprintf(field, sizeof field, "scheme.%s", it->string);
            if ((st = str_list(b, path, field, it, 1, &t, &nt))) goto out;
            if (!nt) {
                st = ferr(b, path, QN_ERR_FORMAT, "%s: the list of targets must not be empty", field);
                goto out;
            }
            qn_quant_scheme s;
            st = preset_group(b, path, it->string, t, nt, &s);
            free_strv(t, nt);
            if (st) goto out;
            snprintf(gname, sizeof gname, "group_%zu", i);
            if ((st = push_group(b, &s, gname))) { qn_quant_scheme_free(&s); goto out; }
        }
    } else if (scheme) {
        st = ferr(b, path, QN_ERR_FORMAT,
                  "scheme must be a preset name such as W4A16 or a mapping {PRESET: targets} (got %s)",
                  jtype(scheme));
        goto out;
    } else if (groups) {
        if (!cJSON_IsObject(groups)) {
            st = ferr(b, path, QN_ERR_FORMAT,
                      "config_groups must be a mapping {group_name: QuantizationScheme} (got %s)",
                      jtype(groups));
            goto out;
        }
        for (const cJSON *it = groups->child; it; it = it->next) {
            snprintf(ctx, sizeof ctx, "%s: %s.config_groups.%s", b->name, path, it->string);
            qn_quant_scheme s;
            if ((st = qn_quant_scheme_from_json(it, &s, ctx, b->err))) goto out;
            for (size_t t = 0; t < s.n_targets && !st; t++) {
                char field[192];
                snprintf(field, sizeof field, "config_groups.%s.targets[%zu]", it->string, t);
                st = check_entry(b, path, field, s.targets[t]);
            }
            if (!st && !s.n_targets)
                st = ferr(b, path, QN_ERR_FORMAT, "config_groups.%s.targets must not be empty", it->string);
            if (st || (st = push_group(b, &s, it->string))) { qn_quant_scheme_free(&s); goto out; }
        }
    }
    m->n_groups = b->r->n_groups - first;
    /* observer overrides, as _apply_observer_overrides (set after validation, as llm-compressor) */
    for (size_t g = first; g < b->r->n_groups; g++) {
        qn_quant_scheme *s = &b->r->groups[g];
        if (obs[0][0] && s->has_weights) strcpy(s->weights.observer, obs[0]);
        if (obs[1][0] && s->has_input_activations) strcpy(s->input_activations.observer, obs[1]);
        if (obs[2][0] && s->has_output_activations) strcpy(s->output_activations.observer, obs[2]);
    }

    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(args, "kv_cache_scheme");
    if (kv && !cJSON_IsNull(kv)) {
        snprintf(ctx, sizeof ctx, "%s: %s.kv_cache_scheme", b->name, path);
        if ((st = qn_quant_args_from_json(kv, &m->kv_cache_scheme, ctx, b->err))) goto out;
        m->has_kv_cache_scheme = 1;
    }
    if (kind == QN_MOD_QUANTIZATION && !m->n_groups && !m->has_kv_cache_scheme) {
        st = ferr(b, path, QN_ERR_INVALID_ARG,
                  "QuantizationModifier needs scheme, config_groups or kv_cache_scheme");
        goto out;
    }
    st = QN_OK;
out:
    free_strv(targets, n_targets);
    return st;
}

static int actorder_from(const cJSON *v, const char **out) {
    if (cJSON_IsNull(v) || cJSON_IsFalse(v)) { *out = NULL; return 0; }
    if (cJSON_IsTrue(v)) { *out = "group"; return 0; }
    static const char *const A[] = {"group", "weight", "dynamic", "static"};
    if (cJSON_IsString(v))
        for (int i = 0; i < 4; i++)
            if (!strcasecmp(v->valuestring, A[i])) { *out = A[i]; return 0; }
    return -1;
}

static const char *actorder_name(qn_actorder a) {
    switch (a) {
    case QN_ACTORDER_GROUP: return "group";
    case QN_ACTORDER_WEIGHT: return "weight";
    case QN_ACTORDER_DYNAMIC: return "dynamic";
    case QN_ACTORDER_STATIC: return "static";
    default: return NULL;
    }
}

/* "group" == "dynamic", "weight" == "static" (CT ActivationOrdering aliases). */
static int actorder_canon(const char *s) {
    if (!s) return 0;
    return (!strcmp(s, "group") || !strcmp(s, "dynamic")) ? 1 : 2;
}

static qn_status gptq_fields(builder *b, const char *path, const cJSON *args, qn_modifier *m) {
    qn_status st;
    if ((st = p_int(b, path, args, "block_size", 128, 0, 0, 1, m->params))) return st;
    if ((st = p_num(b, path, args, "dampening_frac", 0.01, 0, 1, 0, 1e6, m->params))) return st;
    if ((st = p_bool(b, path, args, "offload_hessians", 0, m->params))) return st;
    if ((st = p_str_or_list(b, path, args, "sequential_targets", m->params))) return st;
    if (cJSON_GetObjectItemCaseSensitive(args, "sequential_update") &&
        (st = p_bool(b, path, args, "sequential_update", 1, m->params)))
        return st;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, "actorder");
    const char *ao = "static";
    if (v && actorder_from(v, &ao))
        return ferr(b, path, QN_ERR_FORMAT,
                    "actorder must be null, true, false, \"static\", \"weight\", \"group\" or "
                    "\"dynamic\" (got %s)", jtype(v));
    if ((st = put(b, m->params, "actorder", ao ? cJSON_CreateString(ao) : cJSON_CreateNull()))) return st;
    /* the default ("static") only fills groups without an actorder; an explicit one must agree */
    if ((st = put(b, m->params, "actorder_default", cJSON_CreateBool(v == NULL)))) return st;
    if (v) {
        for (size_t g = 0; g < m->n_groups; g++) {
            const qn_quant_scheme *s = &b->r->groups[b->r->n_groups - m->n_groups + g];
            const char *have = s->has_weights ? actorder_name(s->weights.actorder) : NULL;
            if (have && actorder_canon(have) != actorder_canon(ao))
                return ferr(b, path, QN_ERR_INVALID_ARG,
                            "actorder %s%s%s conflicts with actorder \"%s\" in config group '%s' "
                            "(remove one of them)", ao ? "\"" : "", ao ? ao : "null", ao ? "\"" : "",
                            have, b->r->group_names[b->r->n_groups - m->n_groups + g]);
        }
    }
    return QN_OK;
}

static qn_status sparsegpt_fields(builder *b, const char *path, const cJSON *args, qn_modifier *m) {
    qn_status st;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, "sparsity");
    if (!v || cJSON_IsNull(v))
        return ferr(b, path, QN_ERR_FORMAT, "sparsity is required (a fraction such as 0.5, or a list)");
    if (cJSON_IsArray(v)) {
        size_t i = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++)
            if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble <= 1))
                return ferr(b, path, QN_ERR_FORMAT, "sparsity[%zu] must be a number in [0, 1] (got %s)", i,
                            jtype(e));
        if (!i) return ferr(b, path, QN_ERR_FORMAT, "sparsity must not be an empty list");
    } else if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1)) {
        return ferr(b, path, QN_ERR_FORMAT, "sparsity must be a number in [0, 1] or a list of them (got %s)",
                    cJSON_IsNumber(v) ? "an out-of-range number" : jtype(v));
    }
    if ((st = put(b, m->params, "sparsity", cJSON_Duplicate(v, 1)))) return st;

    v = cJSON_GetObjectItemCaseSensitive(args, "sparsity_profile");
    int owl = 0;
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v) || strcasecmp(v->valuestring, "owl"))
            return ferr(b, path, QN_ERR_FORMAT, "sparsity_profile must be null or \"owl\"");
        owl = 1;
    }
    if ((st = put(b, m->params, "sparsity_profile", owl ? cJSON_CreateString("owl") : cJSON_CreateNull())))
        return st;

    v = cJSON_GetObjectItemCaseSensitive(args, "mask_structure");
    const char *ms = "0:0";
    if (v) {
        int n = -1, mm = -1, used = 0;
        if (!cJSON_IsString(v) || sscanf(v->valuestring, "%d:%d%n", &n, &mm, &used) != 2 ||
            v->valuestring[used] || n < 0 || mm < 0 || n > mm || (mm == 0) != (n == 0))
            return ferr(b, path, QN_ERR_FORMAT,
                        "mask_structure must be a string \"N:M\" such as \"2:4\" (\"0:0\" = unstructured; "
                        "quote it in YAML)");
        ms = v->valuestring;
    }
    if ((st = put(b, m->params, "mask_structure", cJSON_CreateString(ms)))) return st;
    if ((st = p_int(b, path, args, "owl_m", 0, 1, 1, 1, m->params))) return st;
    if ((st = p_num(b, path, args, "owl_lmbda", 0, 1, 1, 0, 1e6, m->params))) return st;
    int has_m = !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m->params, "owl_m"));
    int has_l = !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m->params, "owl_lmbda"));
    if ((has_m || has_l || owl) && !(has_m && has_l && owl))
        return ferr(b, path, QN_ERR_INVALID_ARG,
                    "give all of sparsity_profile: owl, owl_m and owl_lmbda, or none of them");
    if ((st = p_int(b, path, args, "block_size", 128, 0, 0, 1, m->params))) return st;
    if ((st = p_num(b, path, args, "dampening_frac", 0.01, 0, 1, 0, 1e6, m->params))) return st;
    if ((st = p_bool(b, path, args, "preserve_sparsity_mask", 0, m->params))) return st;
    if ((st = p_bool(b, path, args, "offload_hessians", 0, m->params))) return st;
    if (cJSON_GetObjectItemCaseSensitive(args, "sequential_update") &&
        (st = p_bool(b, path, args, "sequential_update", 1, m->params)))
        return st;
    if ((st = p_str_or_list(b, path, args, "sequential_targets", m->params))) return st;
    v = cJSON_GetObjectItemCaseSensitive(args, "targets");
    char **t = NULL;
    size_t nt = 0;
    if (v) {
        if ((st = str_list(b, path, "targets", v, 1, &t, &nt))) return st;
        if (!nt) return ferr(b, path, QN_ERR_FORMAT, "targets must not be empty");
        cJSON *j = strv_json(t, nt);
        free_strv(t, nt);
        if ((st = put(b, m->params, "targets", j))) return st;
    } else {
        cJSON *j = cJSON_CreateArray();
        if (!j || !cJSON_AddItemToArray(j, cJSON_CreateString("Linear"))) { cJSON_Delete(j); return nomem(b); }
        if ((st = put(b, m->params, "targets", j))) return st;
    }
    v = cJSON_GetObjectItemCaseSensitive(args, "ignore");
    if (v && !cJSON_IsNull(v) && (st = str_list(b, path, "ignore", v, 0, &m->ignore, &m->n_ignore)))
        return st;
    return QN_OK;
}

static qn_status smoothquant_fields(builder *b, const char *path, const cJSON *args, qn_modifier *m) {
    qn_status st;
    if ((st = p_num(b, path, args, "smoothing_strength", 0.5, 0, 0, 0, 1, m->params))) return st;
    if ((st = p_int(b, path, args, "num_calibration_steps", 0, 1, 1, 1, m->params))) return st;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, "calibration_function");
    if (v && !cJSON_IsNull(v))
        return ferr(b, path, QN_ERR_UNSUPPORTED,
                    "calibration_function must be null (a recipe file cannot name a Python function)");
    v = cJSON_GetObjectItemCaseSensitive(args, "mappings");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsArray(v))
            return ferr(b, path, QN_ERR_FORMAT,
                        "mappings must be a list of [[balance layers], smooth layer] pairs (got %s)", jtype(v));
        size_t i = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++) {
            char field[64];
            snprintf(field, sizeof field, "mappings[%zu]", i);
            const cJSON *bal = cJSON_GetArrayItem(e, 0), *sm = cJSON_GetArrayItem(e, 1);
            if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsArray(bal) || !cJSON_IsString(sm))
                return ferr(b, path, QN_ERR_FORMAT,
                            "%s must be a pair [[balance layers], smooth layer], e.g. "
                            "[[\"re:.*q_proj\", \"re:.*k_proj\", \"re:.*v_proj\"], \"re:.*input_layernorm\"]",
                            field);
            char **t;
            size_t nt;
            char sub[96];
            snprintf(sub, sizeof sub, "%s[0]", field);
            if ((st = str_list(b, path, sub, bal, 0, &t, &nt))) return st;
            free_strv(t, nt);
            if (!nt) return ferr(b, path, QN_ERR_FORMAT, "%s: no balance layers", field);
            snprintf(sub, sizeof sub, "%s[1]", field);
            if ((st = check_entry(b, path, sub, sm->valuestring))) return st;
        }
        if ((st = put(b, m->params, "mappings", cJSON_Duplicate(v, 1)))) return st;
    } else if ((st = put(b, m->params, "mappings", cJSON_CreateNull()))) {
        return st;
    }
    v = cJSON_GetObjectItemCaseSensitive(args, "ignore");
    if (v && !cJSON_IsNull(v) && (st = str_list(b, path, "ignore", v, 0, &m->ignore, &m->n_ignore)))
        return st;
    return QN_OK;
}

static qn_status awq_fields(builder *b, const char *path, const cJSON *args, qn_modifier *m) {
    qn_status st;
    if ((st = p_str_or_list(b, path, args, "sequential_targets", m->params))) return st;
    if ((st = p_int(b, path, args, "n_grid", 20, 0, 0, 1, m->params))) return st;
    if ((st = p_int(b, path, args, "cache_chunk_size_batches", 0, 1, 1, 1, m->params))) return st;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, "duo_scaling");
    cJSON *duo;
    if (!v) duo = cJSON_CreateBool(1);
    else if (cJSON_IsBool(v)) duo = cJSON_CreateBool(cJSON_IsTrue(v));
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "both")) duo = cJSON_CreateString("both");
    else return ferr(b, path, QN_ERR_FORMAT, "duo_scaling must be true, false or \"both\" (got %s)", jtype(v));
    if ((st = put(b, m->params, "duo_scaling", duo))) return st;
    /* llm-compressor HEAD's smooth_layer_quantization (default false): quench searches with the
     * smooth layer unquantized, as that default does */
    v = cJSON_GetObjectItemCaseSensitive(args, "smooth_layer_quantization");
    if (v && !cJSON_IsNull(v) && !cJSON_IsBool(v))
        return ferr(b, path, QN_ERR_FORMAT, "smooth_layer_quantization must be true or false (got %s)", jtype(v));
    if (cJSON_IsTrue(v))
        return ferr(b, path, QN_ERR_UNSUPPORTED, "smooth_layer_quantization: true is not supported (quench's AWQ search "
                    "quantizes the balance layers only, llm-compressor's default)");
    v = cJSON_GetObjectItemCaseSensitive(args, "offload_device");
    if (v && !cJSON_IsNull(v)) {
        const char *s = cJSON_IsString(v) ? v->valuestring : "";
        size_t k = 0;
        while (islower((unsigned char)s[k])) k++;
        if (s[k] == ':' && k > 0) {
            size_t d = ++k;
            while (isdigit((unsigned char)s[k])) k++;
            if (k == d) k = 0;
        }
        if (!k || s[k])
            return ferr(b, path, QN_ERR_FORMAT,
                        "offload_device must be null or a device such as \"cpu\" or \"cuda:0\"");
        if ((st = put(b, m->params, "offload_device", cJSON_CreateString(s)))) return st;
    } else if ((st = put(b, m->params, "offload_device", cJSON_CreateNull()))) {
        return st;
    }
    v = cJSON_GetObjectItemCaseSensitive(args, "mappings");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsArray(v))
            return ferr(b, path, QN_ERR_FORMAT,
                        "mappings must be a list of {smooth_layer, balance_layers} (got %s)", jtype(v));
        size_t i = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++) {
            char field[96];
            if (!cJSON_IsObject(e))
                return ferr(b, path, QN_ERR_FORMAT,
                            "mappings[%zu] must be a mapping {smooth_layer, balance_layers} (got %s)", i,
                            jtype(e));
            for (const cJSON *k = e->child; k; k = k->next)
                if (strcmp(k->string, "smooth_layer") && strcmp(k->string, "balance_layers") &&
                    strcmp(k->string, "activation_hook_target"))
                    return ferr(b, path, QN_ERR_FORMAT,
                                "mappings[%zu]: unknown field '%s' (AWQMapping accepts: smooth_layer, "
                                "balance_layers, activation_hook_target)", i, k->string);
            const cJSON *sm = cJSON_GetObjectItemCaseSensitive(e, "smooth_layer");
            const cJSON *bal = cJSON_GetObjectItemCaseSensitive(e, "balance_layers");
            const cJSON *hook = cJSON_GetObjectItemCaseSensitive(e, "activation_hook_target");
            if (!cJSON_IsString(sm))
                return ferr(b, path, QN_ERR_FORMAT, "mappings[%zu].smooth_layer must be a string (got %s)", i,
                            jtype(sm));
            snprintf(field, sizeof field, "mappings[%zu].smooth_layer", i);
            if ((st = check_entry(b, path, field, sm->valuestring))) return st;
            char **t;
            size_t nt;
            snprintf(field, sizeof field, "mappings[%zu].balance_layers", i);
            if (!bal) return ferr(b, path, QN_ERR_FORMAT, "%s is required", field);
            if ((st = str_list(b, path, field, bal, 0, &t, &nt))) return st;
            free_strv(t, nt);
            if (!nt) return ferr(b, path, QN_ERR_FORMAT, "%s must not be empty", field);
            if (hook && !cJSON_IsNull(hook) && !cJSON_IsString(hook))
                return ferr(b, path, QN_ERR_FORMAT,
                            "mappings[%zu].activation_hook_target must be a string or null (got %s)", i,
                            jtype(hook));
        }
        if ((st = put(b, m->params, "mappings", cJSON_Duplicate(v, 1)))) return st;
    } else if ((st = put(b, m->params, "mappings", cJSON_CreateNull()))) {
        return st;
    }
    return QN_OK;
}

static qn_status push_modifier(builder *b, qn_modifier *m, size_t goff) {
    qn_recipe *r = b->r;
    if (r->n_mods == r->cap_mods) {
        size_t cap = r->cap_mods ? 2 * r->cap_mods : 4;
        qn_modifier *mm = realloc(r->mods, cap * sizeof *mm);
        if (!mm) return nomem(b);
        r->mods = mm;
        size_t *g = realloc(r->goff, cap * sizeof *g);
        if (!g) return nomem(b);
        r->goff = g;
        r->cap_mods = cap;
    }
    r->mods[r->n_mods] = *m;
    r->goff[r->n_mods] = goff;
    r->n_mods++;
    memset(m, 0, sizeof *m);
    return QN_OK;
}

/* One modifier `type: args` found at `parent` (path of its modifier group). */
static qn_status parse_modifier(builder *b, const char *stage, const char *parent, const char *type,
                                const cJSON *args) {
    int kind = kind_from_name(type);
    if (kind < 0)
        return ferr(b, parent, QN_ERR_FORMAT,
                    "unknown modifier '%s' (known: QuantizationModifier, GPTQModifier, SparseGPTModifier, "
                    "SmoothQuantModifier, AWQModifier)", type);
    char path[512];
    snprintf(path, sizeof path, "%s%s%s", parent, *parent ? "." : "", type);
    cJSON empty;
    memset(&empty, 0, sizeof empty);
    empty.type = cJSON_Object;
    if (!args || cJSON_IsNull(args)) args = &empty;
    if (!cJSON_IsObject(args))
        return ferr(b, path, QN_ERR_FORMAT, "the arguments must be a mapping (got %s)", jtype(args));
    qn_status st = check_fields(b, path, (qn_modifier_kind)kind, args);
    if (st) return st;

    qn_modifier m;
    memset(&m, 0, sizeof m);
    m.kind = (qn_modifier_kind)kind;
    qn_quant_args_init(&m.kv_cache_scheme);
    size_t goff = b->r->n_groups;
    if (!(m.stage = strdup(stage)) || !(m.path = strdup(path)) || !(m.params = cJSON_CreateObject())) {
        modifier_clear(&m);
        return nomem(b);
    }
    st = base_fields(b, path, args, m.params);
    if (!st) {
        switch (m.kind) {
        case QN_MOD_QUANTIZATION: st = quant_mixin(b, path, m.kind, args, &m); break;
        case QN_MOD_GPTQ:
            st = quant_mixin(b, path, m.kind, args, &m);
            if (!st) st = gptq_fields(b, path, args, &m);
            break;
        case QN_MOD_SPARSEGPT: st = sparsegpt_fields(b, path, args, &m); break;
        case QN_MOD_SMOOTHQUANT: st = smoothquant_fields(b, path, args, &m); break;
        case QN_MOD_AWQ:
            st = quant_mixin(b, path, m.kind, args, &m);
            if (!st) st = awq_fields(b, path, args, &m);
            break;
        default: break;
        }
    }
    if (!st) st = push_modifier(b, &m, goff);
    if (st) {
        /* groups already pushed stay owned by the recipe (freed with it) */
        modifier_clear(&m);
    }
    return st;
}

static int is_group_key(const char *k) { return !strcmp(k, "modifiers") || ends_with(k, "_modifiers"); }

/* A modifier group: {Modifier: args, ...} or [{Modifier: args}, ...]. */
static qn_status walk_group(builder *b, const char *stage, const char *path, const cJSON *v) {
    if (cJSON_IsObject(v)) {
        for (const cJSON *it = v->child; it; it = it->next) {
            qn_status st = parse_modifier(b, stage, path, it->string, it);
            if (st) return st;
        }
        return QN_OK;
    }
    if (cJSON_IsArray(v)) {
        size_t i = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            if (!cJSON_IsObject(e) || !e->child || e->child->next)
                return ferr(b, sub, QN_ERR_FORMAT, "must be a mapping with one modifier {Modifier: arguments}");
            qn_status st = parse_modifier(b, stage, sub, e->child->string, e->child);
            if (st) return st;
        }
        return QN_OK;
    }
    return ferr(b, path, QN_ERR_FORMAT, "must be a mapping of modifiers {Modifier: arguments} (got %s)",
                jtype(v));
}

static qn_status walk_stage(builder *b, const char *key, const char *path, const cJSON *v) {
    char stage[256];
    snprintf(stage, sizeof stage, "%s", key);
    if (ends_with(stage, "_stage")) stage[strlen(stage) - 6] = '\0';
    if (!cJSON_IsObject(v))
        return ferr(b, path, QN_ERR_FORMAT, "a stage must be a mapping of modifier groups (got %s)", jtype(v));
    for (const cJSON *it = v->child; it; it = it->next) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s", path, it->string);
        qn_status st;
        if (is_group_key(it->string)) {
            if ((st = walk_group(b, stage, sub, it))) return st;
        } else if (!strcmp(it->string, "run_type")) {
            if (!cJSON_IsString(it) || (strcmp(it->valuestring, "oneshot") && strcmp(it->valuestring, "train")))
                return ferr(b, sub, QN_ERR_FORMAT, "must be \"oneshot\" or \"train\"");
            if (!strcmp(it->valuestring, "train"))
                return ferr(b, sub, QN_ERR_UNSUPPORTED, "training stages are not supported (quench runs oneshot)");
        } else if (kind_from_name(it->string) >= 0 || ends_with(it->string, "Modifier")) {
            return ferr(b, path, QN_ERR_FORMAT,
                        "modifier '%s' directly in a stage: put it under a '<name>_modifiers:' key "
                        "(llm-compressor ignores it here)", it->string);
        } else {
            return ferr(b, path, QN_ERR_FORMAT,
                        "unknown key '%s' in a stage (expected '<name>_modifiers' or 'run_type')", it->string);
        }
    }
    return QN_OK;
}

static int holds_group(const cJSON *v) {
    if (!cJSON_IsObject(v)) return 0;
    for (const cJSON *it = v->child; it; it = it->next)
        if (is_group_key(it->string)) return 1;
    return 0;
}

static qn_status walk_top(builder *b, const cJSON *root) {
    if (!root) return ferr(b, NULL, QN_ERR_FORMAT, "empty recipe");
    if (cJSON_IsArray(root)) return walk_group(b, "", "", root);
    if (!cJSON_IsObject(root))
        return ferr(b, NULL, QN_ERR_FORMAT, "a recipe must be a YAML mapping (got %s)", jtype(root));
    for (const cJSON *it = root->child; it; it = it->next) {
        const char *k = it->string;
        qn_status st = QN_OK;
        if (!strcmp(k, "version") || !strcmp(k, "metadata") || !strcmp(k, "args")) {
            continue; /* recipe-level attributes of older recipes; no effect */
        } else if (!strcmp(k, "stages")) {
            if (!cJSON_IsObject(it))
                return ferr(b, k, QN_ERR_FORMAT, "must be a mapping {stage_name: stage} (got %s)", jtype(it));
            for (const cJSON *s = it->child; s && !st; s = s->next) {
                char sub[512];
                snprintf(sub, sizeof sub, "stages.%s", s->string);
                st = walk_stage(b, s->string, sub, s);
            }
        } else if (ends_with(k, "_stage")) {
            st = walk_stage(b, k, k, it);
        } else if (is_group_key(k)) {
            st = walk_group(b, "", k, it);
        } else if (holds_group(it)) {
            st = walk_stage(b, k, k, it);
        } else if (kind_from_name(k) >= 0 || ends_with(k, "Modifier")) {
            st = parse_modifier(b, "", "", k, it);
        } else {
            return ferr(b, NULL, QN_ERR_FORMAT,
                        "unknown top-level key '%s' (expected '<name>_stage', '<name>_modifiers', "
                        "'modifiers' or a modifier such as QuantizationModifier)", k);
        }
        if (st) return st;
    }
    return QN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Public API                                                                                */

void qn_recipe_free(qn_recipe *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_mods; i++) modifier_clear(&r->mods[i]);
    for (size_t i = 0; i < r->n_groups; i++) {
        qn_quant_scheme_free(&r->groups[i]);
        free(r->group_names[i]);
    }
    free(r->groups);
    free(r->group_names);
    free(r->mods);
    free(r->goff);
    free(r->yaml);
    free(r->name);
    free(r);
}

static void supported_list(unsigned allowed, char *buf, size_t cap) {
    size_t pos = 0;
    buf[0] = '\0';
    for (int k = 0; k < QN_MOD_COUNT && pos + 1 < cap; k++)
        if (allowed & QN_RECIPE_ALLOW(k))
            pos += (size_t)snprintf(buf + pos, cap - pos, "%s%s", pos ? ", " : "", KIND_NAMES[k]);
}

qn_status qn_recipe_parse_ex(const char *yaml, size_t len, const char *name_for_errors, unsigned flags,
                             qn_recipe **out, qn_error *err) {
    if (!out || (!yaml && len)) return qn_error_set(err, QN_ERR_INVALID_ARG, "recipe: NULL argument");
    *out = NULL;
    const char *name = name_for_errors && *name_for_errors ? name_for_errors : "recipe";
    cJSON *root;
    qn_status st = qnr_yaml_parse(yaml, len, name, &root, err);
    if (st) return st;
    qn_recipe *r = calloc(1, sizeof *r);
    builder b = {name, r, err};
    if (!r || !(r->name = strdup(name)) || !(r->yaml = malloc(len + 1))) {
        cJSON_Delete(root);
        qn_recipe_free(r);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", name);
    }
    if (len) memcpy(r->yaml, yaml, len);
    r->yaml[len] = '\0';
    st = walk_top(&b, root);
    cJSON_Delete(root);
    if (!st && !r->n_mods)
        st = ferr(&b, NULL, QN_ERR_FORMAT,
                  "no modifiers found (expected e.g. quant_stage: {quant_modifiers: {QuantizationModifier: "
                  "{...}}})");
    if (!st) {
        for (size_t i = 0; i < r->n_mods; i++) {
            r->mods[i].groups = r->mods[i].n_groups ? r->groups + r->goff[i] : NULL;
            r->mods[i].group_names = r->mods[i].n_groups ? r->group_names + r->goff[i] : NULL;
        }
        unsigned allowed = QN_RECIPE_SUPPORTED | flags;
        for (size_t i = 0; i < r->n_mods && !st; i++) {
            if (allowed & QN_RECIPE_ALLOW(r->mods[i].kind)) continue;
            char list[256];
            supported_list(allowed, list, sizeof list);
            st = qn_error_set(err, QN_ERR_UNSUPPORTED,
                              "%s: %s is not supported yet by this version of quench (supported: %s)", name,
                              KIND_NAMES[r->mods[i].kind], list);
        }
    }
    if (st) {
        qn_recipe_free(r);
        return st;
    }
    *out = r;
    return QN_OK;
}

qn_status qn_recipe_parse(const char *yaml, size_t len, const char *name_for_errors, qn_recipe **out,
                          qn_error *err) {
    return qn_recipe_parse_ex(yaml, len, name_for_errors, 0, out, err);
}

qn_status qn_recipe_load_ex(const char *path, unsigned flags, qn_recipe **out, qn_error *err) {
    if (!path || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "recipe: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qn_error_set(err, QN_ERR_IO, "%s: cannot open recipe: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return qn_error_set(err, QN_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > QN_RECIPE_MAX_BYTES) {
        fclose(f);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: %lld bytes is more than the %zu-byte recipe limit", path,
                            (long long)sb.st_size, QN_RECIPE_MAX_BYTES);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f) || got != n;
    fclose(f);
    if (bad) {
        free(buf);
        return qn_error_set(err, QN_ERR_IO, "%s: short read", path);
    }
    buf[n] = '\0';
    qn_status st = qn_recipe_parse_ex(buf, n, path, flags, out, err);
    free(buf);
    return st;
}

qn_status qn_recipe_load(const char *path, qn_recipe **out, qn_error *err) {
    return qn_recipe_load_ex(path, 0, out, err);
}

/* ---------------------------------------------------------------------------------------- */
/* CLI recipes                                                                               */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* YAML double-quoted scalar. */
static void sb_quoted(sbuf *b, const char *s) {
    sb_str(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            sb_add(b, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", *p);
            sb_str(b, esc);
        } else {
            sb_add(b, (const char *)p, 1);
        }
    }
    sb_str(b, "\"");
}

static void sb_list(sbuf *b, const char *const *v, size_t n) {
    sb_str(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i) sb_str(b, ", ");
        sb_quoted(b, v[i]);
    }
    sb_str(b, "]\n");
}

qn_status qn_recipe_from_cli(const char *scheme, const char *const *targets, size_t n_targets,
                             const char *const *ignore, size_t n_ignore, qn_recipe **out, qn_error *err) {
    if (!out) return qn_error_set(err, QN_ERR_INVALID_ARG, "recipe: NULL argument");
    *out = NULL;
    if (!scheme || !*scheme) return qn_error_set(err, QN_ERR_INVALID_ARG, "--scheme: a preset name is required");
    /* default ignore: lm_head and the MoE routers (vLLM never quantizes mlp.gate; on a dense model
     * the regex matches nothing, which ignore entries may) */
    static const char *const DEF_T[] = {"Linear"}, *const DEF_I[] = {"lm_head", "re:.*mlp.gate$"};
    if (!targets || !n_targets) { targets = DEF_T; n_targets = 1; }
    if (!ignore) { ignore = DEF_I; n_ignore = 2; }
    for (size_t i = 0; i < n_targets; i++)
        if (!targets[i] || !*targets[i])
            return qn_error_set(err, QN_ERR_INVALID_ARG, "--targets: entry %zu is empty", i);
    for (size_t i = 0; i < n_ignore; i++)
        if (!ignore[i] || !*ignore[i])
            return qn_error_set(err, QN_ERR_INVALID_ARG, "--ignore: entry %zu is empty", i);
    /* the command line's own words in the errors (the generated YAML is an implementation detail) */
    qn_quant_scheme probe;
    qn_status st = qn_scheme_preset(scheme, &probe, err);
    if (st) {
        qn_error_prefix(err, "--scheme");
        return st;
    }
    qn_quant_scheme_free(&probe);
    for (int list = 0; list < 2; list++) {
        const char *const *v = list ? ignore : targets;
        size_t n = list ? n_ignore : n_targets;
        for (size_t i = 0; i < n; i++) {
            if (strncmp(v[i], "re:", 3)) continue;
            qnr_regex *re;
            if ((st = qnr_regex_compile(v[i] + 3, &re, err))) {
                qn_error_prefix(err, "%s", list ? "--ignore" : "--targets");
                return st;
            }
            qnr_regex_free(re);
        }
    }
    sbuf y = {0};
    sb_str(&y, "# quench recipe from the command line (--scheme ");
    sb_quoted(&y, scheme);
    sb_str(&y, ")\ndefault_stage:\n  default_modifiers:\n    QuantizationModifier:\n      targets: ");
    sb_list(&y, targets, n_targets);
    sb_str(&y, "      ignore: ");
    sb_list(&y, ignore, n_ignore);
    sb_str(&y, "      scheme: ");
    sb_quoted(&y, scheme);
    sb_str(&y, "\n");
    if (y.oom) {
        free(y.s);
        return qn_error_set(err, QN_ERR_NOMEM, "recipe: out of memory");
    }
    st = qn_recipe_parse_ex(y.s, y.n, "command line", 0, out, err);
    free(y.s);
    if (st) return st;
    for (size_t i = 0; i < (*out)->n_mods; i++) (*out)->mods[i].stage[0] = '\0';
    return QN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Accessors                                                                                 */

size_t qn_recipe_modifier_count(const qn_recipe *r) { return r ? r->n_mods : 0; }

const qn_modifier *qn_recipe_modifier(const qn_recipe *r, size_t i) {
    return r && i < r->n_mods ? &r->mods[i] : NULL;
}

const char *qn_recipe_yaml(const qn_recipe *r) { return r ? r->yaml : NULL; }

/* QuantizationMixin._set_requires_calibration_data: kv cache, static (or "local") input
 * activations, static output activations, the imatrix observer; every other algorithm needs data. */
int qn_recipe_needs_calibration(const qn_recipe *r) {
    if (!r) return 0;
    for (size_t i = 0; i < r->n_mods; i++) {
        const qn_modifier *m = &r->mods[i];
        if (m->kind != QN_MOD_QUANTIZATION) return 1;
        if (m->has_kv_cache_scheme) return 1;
        for (size_t g = 0; g < m->n_groups; g++) {
            const qn_quant_scheme *s = &m->groups[g];
            if (s->has_weights && !strcmp(s->weights.observer, "imatrix_mse")) return 1;
            if (s->has_input_activations && s->input_activations.dynamic != QN_DYNAMIC_TRUE) return 1;
            if (s->has_output_activations && s->output_activations.dynamic == QN_DYNAMIC_FALSE) return 1;
        }
    }
    return 0;
}
