/* quench diff: two checkpoints (or config.json files) side by side.
 *
 *  - config.json outside quantization_config: every key whose value differs or that one side lacks,
 *    nested objects flattened with dots ("rope_scaling.rope_type"), arrays and empty objects
 *    compared whole. Values are kept as Python's json module reads and writes them
 *    (src/export/pyjson.c), so 1.0 prints as "1.0"; an int and a float of the same value are equal
 *    (as in Python, 1 == 1.0).
 *  - quantization_config: the same for its own keys except config_groups and ignore; config groups
 *    matched by name, each parsed as a QuantizationScheme (preset lists expanded) and written back
 *    with every field (compressed-tensors' model_dump for QN_CT_VERSION_DEFAULT), so a minimal
 *    group and a full one with the same meaning compare equal; ignore lists as sets of entries
 *    and, when both sides have tensors, as the sets of Linear modules they match (regexes
 *    expanded).
 *  - Both sides are first read by qn_inspect_path, so a malformed config.json or
 *    quantization_config is refused with the same message as `quench inspect` gives.
 *  - tensors when both sides have them: names only in one, and dtype / shape changes.
 */
#define _GNU_SOURCE /* strverscmp */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "export/pyjson.h"
#include "quench/plan.h"
#include "quench/quant.h"
#include "quench/safetensors.h"

#define MAX_CONFIG_BYTES (64u << 20)

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

/* Natural order ("layers.2" before "layers.10"), ties broken byte-wise so it is a total order. */
static int natcmp(const char *a, const char *b) {
    int c = strverscmp(a, b);
    return c ? c : strcmp(a, b);
}

static int cmp_str_ptr(const void *a, const void *b) {
    return natcmp(*(const char *const *)a, *(const char *const *)b);
}

static void free_list(char **a, size_t n) {
    for (size_t i = 0; i < n; i++) free(a[i]);
    free(a);
}

static void free_values(qn_diff_value *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        free(v[i].a);
        free(v[i].b);
    }
    free(v);
}

void qn_diff_free(qn_diff *d) {
    if (!d) return;
    free(d->a_config);
    free(d->b_config);
    free_values(d->config, d->n_config);
    free_values(d->quant, d->n_quant);
    for (size_t i = 0; i < d->n_groups; i++) {
        free(d->groups[i].name);
        free_values(d->groups[i].fields, d->groups[i].n_fields);
    }
    free(d->groups);
    free_list(d->ignore_only_a, d->n_ignore_only_a);
    free_list(d->ignore_only_b, d->n_ignore_only_b);
    free_list(d->ignored_only_a, d->n_ignored_only_a);
    free_list(d->ignored_only_b, d->n_ignored_only_b);
    free_list(d->tensors_only_a, d->n_tensors_only_a);
    free_list(d->tensors_only_b, d->n_tensors_only_b);
    for (size_t i = 0; i < d->n_tensors_changed; i++) free(d->tensors_changed[i].name);
    free(d->tensors_changed);
    free(d);
}

/* ------------------------------------------------------------------------------------------ */
/* Growable arrays                                                                             */

typedef struct {
    void *p;
    size_t n, cap, elem;
} vec;

static void *vec_push(vec *v) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        void *np = realloc(v->p, cap * v->elem);
        if (!np) return NULL;
        v->p = np;
        v->cap = cap;
    }
    void *slot = (char *)v->p + v->n * v->elem;
    memset(slot, 0, v->elem);
    v->n++;
    return slot;
}

static int push_str(vec *v, const char *s) {
    char **slot = vec_push(v);
    if (!slot) return -1;
    if (!(*slot = xstrdup(s))) { v->n--; return -1; }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Flattening                                                                                  */

typedef struct {
    char *key;
    const qn_pyjson *v;
} flat;

typedef struct {
    flat *f;
    size_t n, cap;
    int oom;
} flatlist;

static void flat_add(flatlist *L, const char *key, const qn_pyjson *v) {
    if (L->oom) return;
    if (L->n == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 64;
        flat *nf = realloc(L->f, cap * sizeof *nf);
        if (!nf) { L->oom = 1; return; }
        L->f = nf;
        L->cap = cap;
    }
    if (!(L->f[L->n].key = xstrdup(key))) { L->oom = 1; return; }
    L->f[L->n++].v = v;
}

static void flat_free(flatlist *L) {
    for (size_t i = 0; i < L->n; i++) free(L->f[i].key);
    free(L->f);
    memset(L, 0, sizeof *L);
}

/* Members of `obj` (skipping the keys in `skip`, top level only) flattened under `prefix`. */
static void flatten(flatlist *L, const qn_pyjson *obj, const char *prefix, const char *const *skip) {
    for (size_t i = 0; i < obj->n && !L->oom; i++) {
        const qn_pyjson *m = obj->items[i];
        const char *k = m->key ? m->key : "";
        int skipped = 0;
        for (size_t s = 0; skip && skip[s]; s++) skipped |= !strcmp(skip[s], k);
        if (skipped) continue;
        size_t kl = strlen(prefix) + strlen(k) + 2;
        char *key = malloc(kl);
        if (!key) { L->oom = 1; return; }
        snprintf(key, kl, "%s%s%s", prefix, prefix[0] ? "." : "", k);
        if (m->type == QN_PJ_OBJECT && m->n > 0) flatten(L, m, key, NULL);
        else flat_add(L, key, m);
        free(key);
    }
}

static int cmp_flat(const void *a, const void *b) {
    return strcmp(((const flat *)a)->key, ((const flat *)b)->key);
}

static int is_number(const qn_pyjson *v) { return v->type == QN_PJ_INT || v->type == QN_PJ_FLOAT; }

static double number_of(const qn_pyjson *v) { return v->type == QN_PJ_FLOAT ? v->number : strtod(v->text, NULL); }

/* Values equal as Python compares them (1 == 1.0); *a_text / *b_text get the JSON texts. */
static int values_equal(const qn_pyjson *a, const qn_pyjson *b, char **at, char **bt, qn_error *err) {
    *at = *bt = NULL;
    if (qn_pyjson_dump(a, -1, at, err) || qn_pyjson_dump(b, -1, bt, err)) return -1;
    if (is_number(a) && is_number(b)) {
        if (a->type == QN_PJ_INT && b->type == QN_PJ_INT) return !strcmp(*at, *bt);
        return number_of(a) == number_of(b);
    }
    return !strcmp(*at, *bt);
}

/* Merges two sorted flat lists into diff values. */
static qn_status diff_flat(flatlist *A, flatlist *B, qn_diff_value **out, size_t *n_out, qn_error *err) {
    if (A->n > 1) qsort(A->f, A->n, sizeof *A->f, cmp_flat);
    if (B->n > 1) qsort(B->f, B->n, sizeof *B->f, cmp_flat);
    vec v = {NULL, 0, 0, sizeof(qn_diff_value)};
    size_t i = 0, j = 0;
    qn_status st = QN_OK;
    while ((i < A->n || j < B->n) && !st) {
        int c = i >= A->n ? 1 : j >= B->n ? -1 : strcmp(A->f[i].key, B->f[j].key);
        char *at = NULL, *bt = NULL;
        const char *key;
        if (c == 0) {
            int eq = values_equal(A->f[i].v, B->f[j].v, &at, &bt, err);
            key = A->f[i].key;
            i++;
            j++;
            if (eq < 0) { st = QN_ERR_NOMEM; break; }
            if (eq) { free(at); free(bt); continue; }
        } else if (c < 0) {
            key = A->f[i].key;
            if (qn_pyjson_dump(A->f[i].v, -1, &at, err)) { st = QN_ERR_NOMEM; break; }
            i++;
        } else {
            key = B->f[j].key;
            if (qn_pyjson_dump(B->f[j].v, -1, &bt, err)) { st = QN_ERR_NOMEM; break; }
            j++;
        }
        qn_diff_value *dv = vec_push(&v);
        if (!dv || !(dv->key = xstrdup(key))) {
            free(at);
            free(bt);
            st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
            break;
        }
        dv->a = at;
        dv->b = bt;
    }
    if (st) {
        free_values(v.p, v.n);
        return st;
    }
    *out = v.p;
    *n_out = v.n;
    return QN_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* One side                                                                                    */

typedef struct {
    char *config;           /* path */
    const char *dir;        /* folder (tensors) or NULL */
    qn_pyjson *pj;          /* config.json */
    cJSON *cj;
    const qn_pyjson *qc;    /* quantization_config (pj) */
    const cJSON *qcj;       /* the same in cJSON */
    int has_tensors;
} side;

static void side_free(side *s) {
    free(s->config);
    qn_pyjson_free(s->pj);
    cJSON_Delete(s->cj);
    memset(s, 0, sizeof *s);
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

static qn_status side_open(side *s, const char *path, qn_error *err) {
    memset(s, 0, sizeof *s);
    struct stat sb;
    if (stat(path, &sb)) return qn_error_set(err, QN_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    char cfg[PATH_MAX + 16];
    if (S_ISDIR(sb.st_mode)) {
        s->dir = path;
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
    } else {
        snprintf(cfg, sizeof cfg, "%s", path);
    }
    if (!(s->config = xstrdup(cfg))) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    FILE *f = fopen(cfg, "rb");
    if (!f) return qn_error_set(err, errno == ENOENT ? QN_ERR_NOT_FOUND : QN_ERR_IO, "%s: cannot open: %s", cfg, strerror(errno));
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > MAX_CONFIG_BYTES) {
        fclose(f);
        return qn_error_set(err, QN_ERR_IO, "%s: not a regular file of at most 64 MB", cfg);
    }
    char *text = malloc((size_t)sb.st_size + 1);
    if (!text) { fclose(f); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
    size_t len = fread(text, 1, (size_t)sb.st_size, f);
    fclose(f);
    if (len != (size_t)sb.st_size) { free(text); return qn_error_set(err, QN_ERR_IO, "%s: short read", cfg); }
    text[len] = 0;
    const char *end = NULL;
    s->cj = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!s->cj) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
        int line = 1;
        for (size_t i = 0; i < off; i++) line += text[i] == '\n';
        free(text);
        return qn_error_set(err, QN_ERR_FORMAT, "%s: invalid JSON near byte %zu (line %d)", cfg, off, line);
    }
    qn_status st = qn_pyjson_parse(text, len, cfg, &s->pj, err);
    free(text);
    if (st) return st;
    if (!cJSON_IsObject(s->cj) || s->pj->type != QN_PJ_OBJECT)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: top level is not a JSON object", cfg);
    static const char *const qk[] = {"quantization_config", "compression_config"};
    for (int i = 0; i < 2 && !s->qc; i++) {
        const qn_pyjson *q = qn_pyjson_get(s->pj, qk[i]);
        if (!q || q->type == QN_PJ_NULL) continue;
        if (q->type != QN_PJ_OBJECT) return qn_error_set(err, QN_ERR_FORMAT, "%s: field '%s' must be an object", cfg, qk[i]);
        s->qc = q;
        s->qcj = cJSON_GetObjectItemCaseSensitive(s->cj, qk[i]);
    }
    s->has_tensors = s->dir && dir_has_safetensors(s->dir);
    return QN_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Config groups                                                                               */

static int version_of(const cJSON *qc) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(qc, "version");
    if (!cJSON_IsString(v)) return QN_CT_VERSION_DEFAULT;
    char *e;
    long a = strtol(v->valuestring, &e, 10);
    if (e == v->valuestring || *e != '.' || a < 0 || a > 1000) return QN_CT_VERSION_DEFAULT;
    const char *p = e + 1;
    long b = strtol(p, &e, 10);
    if (e == p || b < 0 || b > 999) return QN_CT_VERSION_DEFAULT;
    int ver = QN_CT_VERSION((int)a, (int)b);
    return ver < QN_CT_VERSION(0, 11) ? QN_CT_VERSION(0, 11) : ver;
}

/* The group's fields, filled in: a pyjson object (caller frees). */
static qn_status group_normalized(const side *s, const cJSON *g, qn_pyjson **out, qn_error *err) {
    *out = NULL;
    char ctx[512];
    const char *qname = cJSON_GetObjectItemCaseSensitive(s->cj, "quantization_config") ? "quantization_config" : "compression_config";
    snprintf(ctx, sizeof ctx, "%s: %s.config_groups.%s", s->config, qname, g->string ? g->string : "?");
    int v = version_of(s->qcj);
    qn_quant_scheme sc;
    qn_status st;
    if (cJSON_IsArray(g)) {
        if ((st = qn_scheme_preset_v(g->string ? g->string : "", v, &sc, err))) { qn_error_prefix(err, "%s", ctx); return st; }
        size_t n = (size_t)cJSON_GetArraySize(g), k = 0;
        const char **t = calloc(n ? n : 1, sizeof *t);
        if (!t) { qn_quant_scheme_free(&sc); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
        for (const cJSON *e = g->child; e; e = e->next) {
            if (!cJSON_IsString(e)) {
                free(t);
                qn_quant_scheme_free(&sc);
                return qn_error_set(err, QN_ERR_FORMAT, "%s[%zu] must be a string", ctx, k);
            }
            t[k++] = e->valuestring;
        }
        st = qn_quant_scheme_set_targets(&sc, t, k, err);
        free(t);
        if (st) { qn_quant_scheme_free(&sc); return st; }
    } else if ((st = qn_quant_scheme_from_json_v(g, v, &sc, ctx, err))) {
        return st;
    }
    cJSON *j;
    st = qn_quant_scheme_to_json(&sc, &j, err);
    qn_quant_scheme_free(&sc);
    if (st) return st;
    *out = qn_pyjson_from_cjson(j);
    cJSON_Delete(j);
    if (!*out) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    return QN_OK;
}

static qn_status diff_groups(qn_diff *d, const side *A, const side *B, qn_error *err) {
    const cJSON *ga = A->qcj ? cJSON_GetObjectItemCaseSensitive(A->qcj, "config_groups") : NULL;
    const cJSON *gb = B->qcj ? cJSON_GetObjectItemCaseSensitive(B->qcj, "config_groups") : NULL;
    const side *sides[2] = {A, B};
    const cJSON *gs[2] = {ga, gb};
    for (int s = 0; s < 2; s++)
        if (gs[s] && !cJSON_IsNull(gs[s]) && !cJSON_IsObject(gs[s]))
            return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'quantization_config.config_groups' must be an object",
                                sides[s]->config);
    vec v = {NULL, 0, 0, sizeof(qn_diff_group)};
    qn_status st = QN_OK;
    /* names of both sides, sorted, deduplicated */
    vec names = {NULL, 0, 0, sizeof(char *)};
    for (int s = 0; s < 2 && !st; s++)
        for (const cJSON *g = cJSON_IsObject(gs[s]) ? gs[s]->child : NULL; g && !st; g = g->next)
            if (push_str(&names, g->string ? g->string : "")) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    char **nm = names.p;
    if (!st && names.n > 1) qsort(nm, names.n, sizeof *nm, cmp_str_ptr);
    for (size_t i = 0; i < names.n && !st; i++) {
        if (i && !strcmp(nm[i], nm[i - 1])) continue;
        const cJSON *a = cJSON_IsObject(ga) ? cJSON_GetObjectItemCaseSensitive(ga, nm[i]) : NULL;
        const cJSON *b = cJSON_IsObject(gb) ? cJSON_GetObjectItemCaseSensitive(gb, nm[i]) : NULL;
        qn_pyjson *pa = NULL, *pb = NULL;
        if (a && (st = group_normalized(A, a, &pa, err))) break;
        if (b && (st = group_normalized(B, b, &pb, err))) { qn_pyjson_free(pa); break; }
        qn_diff_value *fields = NULL;
        size_t nf = 0;
        if (pa && pb) {
            flatlist la = {0}, lb = {0};
            flatten(&la, pa, "", NULL);
            flatten(&lb, pb, "", NULL);
            if (la.oom || lb.oom) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
            else st = diff_flat(&la, &lb, &fields, &nf, err);
            flat_free(&la);
            flat_free(&lb);
        }
        qn_pyjson_free(pa);
        qn_pyjson_free(pb);
        if (st) break;
        if (a && b && nf == 0) {
            d->n_groups_same++;
            free(fields);
            continue;
        }
        qn_diff_group *g = vec_push(&v);
        if (!g || !(g->name = xstrdup(nm[i]))) {
            free_values(fields, nf);
            st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
            break;
        }
        g->status = a && b ? QN_DIFF_CHANGED : a ? QN_DIFF_ONLY_A : QN_DIFF_ONLY_B;
        g->fields = fields;
        g->n_fields = nf;
    }
    free_list(names.p, names.n);
    d->groups = v.p;
    d->n_groups = v.n;
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Sets                                                                                        */

/* Sorted, deduplicated copies of strings. */
static qn_status sorted_set(const char *const *s, size_t n, char ***out, size_t *n_out, qn_error *err) {
    char **a = calloc(n ? n : 1, sizeof *a);
    if (!a) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (!(a[i] = xstrdup(s[i]))) { free_list(a, i); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
    if (n > 1) qsort(a, n, sizeof *a, cmp_str_ptr);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && !strcmp(a[k - 1], a[i])) { free(a[i]); continue; }
        a[k++] = a[i];
    }
    *out = a;
    *n_out = k;
    return QN_OK;
}

/* a \ b and b \ a of two sorted sets */
static qn_status set_diff(char **a, size_t na, char **b, size_t nb, char ***oa, size_t *noa, char ***ob, size_t *nob,
                          qn_error *err) {
    vec va = {NULL, 0, 0, sizeof(char *)}, vb = {NULL, 0, 0, sizeof(char *)};
    size_t i = 0, j = 0;
    int oom = 0;
    while ((i < na || j < nb) && !oom) {
        int c = i >= na ? 1 : j >= nb ? -1 : natcmp(a[i], b[j]);
        if (c == 0) { i++; j++; }
        else if (c < 0) oom = push_str(&va, a[i++]);
        else oom = push_str(&vb, b[j++]);
    }
    *oa = va.p;
    *noa = va.n;
    *ob = vb.p;
    *nob = vb.n;
    return oom ? qn_error_set(err, QN_ERR_NOMEM, "out of memory") : QN_OK;
}

static qn_status ignore_list(const side *s, char ***out, size_t *n, qn_error *err) {
    *out = NULL;
    *n = 0;
    const cJSON *ig = s->qcj ? cJSON_GetObjectItemCaseSensitive(s->qcj, "ignore") : NULL;
    if (!ig || cJSON_IsNull(ig)) return sorted_set(NULL, 0, out, n, err);
    if (!cJSON_IsArray(ig))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'quantization_config.ignore' must be a list of strings", s->config);
    size_t cnt = (size_t)cJSON_GetArraySize(ig), k = 0;
    const char **t = calloc(cnt ? cnt : 1, sizeof *t);
    if (!t) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    for (const cJSON *e = ig->child; e; e = e->next, k++) {
        if (!cJSON_IsString(e)) {
            free(t);
            return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'quantization_config.ignore[%zu]' must be a string", s->config, k);
        }
        t[k] = e->valuestring;
    }
    qn_status st = sorted_set(t, cnt, out, n, err);
    free(t);
    return st;
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    return natcmp((*(const qn_tensor *const *)a)->name, (*(const qn_tensor *const *)b)->name);
}

static qn_status diff_tensors(qn_diff *d, const side *A, const side *B, qn_error *err) {
    qn_st_set *sa = NULL, *sb = NULL;
    qn_status st = qn_st_set_open_dir(A->dir, &sa, err);
    if (!st) st = qn_st_set_open_dir(B->dir, &sb, err);
    const qn_tensor **ta = NULL, **tb = NULL;
    size_t na = sa ? qn_st_set_count(sa) : 0, nb = sb ? qn_st_set_count(sb) : 0;
    if (!st) {
        ta = malloc((na ? na : 1) * sizeof *ta);
        tb = malloc((nb ? nb : 1) * sizeof *tb);
        if (!ta || !tb) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    }
    vec oa = {NULL, 0, 0, sizeof(char *)}, ob = {NULL, 0, 0, sizeof(char *)}, ch = {NULL, 0, 0, sizeof(qn_diff_tensor)};
    if (!st) {
        for (size_t i = 0; i < na; i++) ta[i] = qn_st_set_get(sa, i);
        for (size_t i = 0; i < nb; i++) tb[i] = qn_st_set_get(sb, i);
        qsort(ta, na, sizeof *ta, cmp_tensor_ptr);
        qsort(tb, nb, sizeof *tb, cmp_tensor_ptr);
        d->n_tensors_a = (int64_t)na;
        d->n_tensors_b = (int64_t)nb;
        size_t i = 0, j = 0;
        int oom = 0;
        while ((i < na || j < nb) && !oom) {
            int c = i >= na ? 1 : j >= nb ? -1 : natcmp(ta[i]->name, tb[j]->name);
            if (c < 0) { oom = push_str(&oa, ta[i++]->name); continue; }
            if (c > 0) { oom = push_str(&ob, tb[j++]->name); continue; }
            const qn_tensor *x = ta[i++], *y = tb[j++];
            int same = x->dtype == y->dtype && x->ndim == y->ndim;
            for (int k = 0; same && k < x->ndim; k++) same = x->shape[k] == y->shape[k];
            if (same) continue;
            qn_diff_tensor *t = vec_push(&ch);
            if (!t || !(t->name = xstrdup(x->name))) { oom = 1; break; }
            t->a_dtype = x->dtype;
            t->b_dtype = y->dtype;
            t->a_ndim = x->ndim;
            t->b_ndim = y->ndim;
            memcpy(t->a_shape, x->shape, sizeof t->a_shape);
            memcpy(t->b_shape, y->shape, sizeof t->b_shape);
        }
        if (oom) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    }
    d->tensors_only_a = oa.p;
    d->n_tensors_only_a = oa.n;
    d->tensors_only_b = ob.p;
    d->n_tensors_only_b = ob.n;
    d->tensors_changed = ch.p;
    d->n_tensors_changed = ch.n;
    free(ta);
    free(tb);
    qn_st_set_free(sa);
    qn_st_set_free(sb);
    return st;
}

/* ------------------------------------------------------------------------------------------ */

static qn_status run(qn_diff *d, side *A, side *B, const qn_inspect *ra, const qn_inspect *rb, qn_error *err) {
    qn_status st;
    if (!(d->a_config = xstrdup(A->config)) || !(d->b_config = xstrdup(B->config)))
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    /* config.json */
    static const char *const skip_top[] = {"quantization_config", "compression_config", NULL};
    flatlist la = {0}, lb = {0};
    flatten(&la, A->pj, "", skip_top);
    flatten(&lb, B->pj, "", skip_top);
    if (la.oom || lb.oom) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    else st = diff_flat(&la, &lb, &d->config, &d->n_config, err);
    flat_free(&la);
    flat_free(&lb);
    if (st) return st;
    /* quantization_config */
    d->a_quantized = A->qc != NULL;
    d->b_quantized = B->qc != NULL;
    static const char *const skip_q[] = {"config_groups", "ignore", NULL};
    if (A->qc) flatten(&la, A->qc, "quantization_config", skip_q);
    if (B->qc) flatten(&lb, B->qc, "quantization_config", skip_q);
    if (la.oom || lb.oom) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    else st = diff_flat(&la, &lb, &d->quant, &d->n_quant, err);
    flat_free(&la);
    flat_free(&lb);
    if (st) return st;
    if ((st = diff_groups(d, A, B, err))) return st;
    /* ignore lists */
    char **ia, **ib;
    size_t nia, nib;
    if ((st = ignore_list(A, &ia, &nia, err))) return st;
    if ((st = ignore_list(B, &ib, &nib, err))) { free_list(ia, nia); return st; }
    d->n_ignore_a = nia;
    d->n_ignore_b = nib;
    st = set_diff(ia, nia, ib, nib, &d->ignore_only_a, &d->n_ignore_only_a, &d->ignore_only_b, &d->n_ignore_only_b, err);
    free_list(ia, nia);
    free_list(ib, nib);
    if (st) return st;
    /* with tensors: modules matched by the ignore lists, and the tensor sets */
    if (A->has_tensors && B->has_tensors) {
        if (A->qc || B->qc) {
            d->ignore_expanded = 1;
            st = set_diff(ra->ignored_modules, ra->n_ignored_modules, rb->ignored_modules, rb->n_ignored_modules,
                          &d->ignored_only_a, &d->n_ignored_only_a, &d->ignored_only_b, &d->n_ignored_only_b, err);
            if (st) return st;
        }
        d->tensors_compared = 1;
        if ((st = diff_tensors(d, A, B, err))) return st;
    }
    d->identical = !d->n_config && !d->n_quant && !d->n_groups && !d->n_ignore_only_a && !d->n_ignore_only_b &&
                   !d->n_ignored_only_a && !d->n_ignored_only_b && !d->n_tensors_only_a && !d->n_tensors_only_b &&
                   !d->n_tensors_changed && d->a_quantized == d->b_quantized;
    return QN_OK;
}

qn_status qn_diff_paths(const char *a, const char *b, qn_diff **out, qn_error *err) {
    if (!a || !b || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_diff_paths: NULL argument");
    *out = NULL;
    qn_diff *d = calloc(1, sizeof *d);
    if (!d) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    side A, B;
    memset(&B, 0, sizeof B);
    /* inspect validates both sides as `quench inspect` does (config.json fields, quantization_config,
     * regexes) and gives the Linear modules each ignore list matches */
    qn_inspect *ra = NULL, *rb = NULL;
    qn_status st = side_open(&A, a, err);
    if (!st) st = side_open(&B, b, err);
    if (!st) st = qn_inspect_path(a, &ra, err);
    if (!st) st = qn_inspect_path(b, &rb, err);
    if (!st) st = run(d, &A, &B, ra, rb, err);
    qn_inspect_free(ra);
    qn_inspect_free(rb);
    side_free(&A);
    side_free(&B);
    if (st) {
        qn_diff_free(d);
        return st;
    }
    *out = d;
    return QN_OK;
}
