/* tokenizer.json / tokenizer_config.json -> struct qn_tokenizer.
 *
 * Every field is type-checked; anything that this module does not implement is refused with
 * "<file>: <field> '<value>' is not supported" rather than tokenizing differently from HF. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

typedef struct {
    const char *path;
    qn_error *err;
    qn_tokenizer *t;
} L;

#define MAX_DEPTH 16

/* ---------- JSON helpers ---------- */

static const cJSON *jget(const cJSON *o, const char *key) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static int jnull(const cJSON *v) { return !v || cJSON_IsNull(v); }

static qn_status get_bool(L *l, const cJSON *o, const char *where, const char *key, int def,
                          int *out) {
    const cJSON *v = jget(o, key);
    if (jnull(v)) {
        *out = def;
        return QN_OK;
    }
    if (!cJSON_IsBool(v))
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.%s must be a boolean", l->path, where,
                            key);
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return QN_OK;
}

static qn_status check_utf8(L *l, const char *s, size_t n, const char *where, const char *key) {
    if (tk_utf8_valid_prefix(s, n) != n)
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s%s%s is not valid UTF-8", l->path, where,
                            key ? "." : "", key ? key : "");
    return QN_OK;
}

/* *out = NULL when missing or null. */
static qn_status get_str(L *l, const cJSON *o, const char *where, const char *key,
                         const char **out) {
    const cJSON *v = jget(o, key);
    *out = NULL;
    if (jnull(v)) return QN_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.%s must be a string", l->path, where,
                            key);
    qn_status st = check_utf8(l, v->valuestring, strlen(v->valuestring), where, key);
    if (st != QN_OK) return st;
    *out = v->valuestring;
    return QN_OK;
}

static int as_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi)) return 0;
    int64_t i = (int64_t)d;
    if ((double)i != d) return 0;
    *out = i;
    return 1;
}

static qn_status get_uint(L *l, const cJSON *o, const char *where, const char *key, int64_t def,
                          int64_t hi, int64_t *out) {
    const cJSON *v = jget(o, key);
    if (jnull(v)) {
        *out = def;
        return QN_OK;
    }
    if (!as_int(v, 0, hi, out))
        return qn_error_set(l->err, QN_ERR_FORMAT,
                            "%s: %s.%s must be an integer between 0 and %lld", l->path, where, key,
                            (long long)hi);
    return QN_OK;
}

static qn_status get_type(L *l, const cJSON *o, const char *where, const char **type) {
    if (!cJSON_IsObject(o))
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s must be an object or null", l->path,
                            where);
    const cJSON *v = jget(o, "type");
    if (!cJSON_IsString(v) || !v->valuestring)
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.type must be a string", l->path,
                            where);
    *type = v->valuestring;
    return QN_OK;
}

static qn_status unsupported_type(L *l, const char *where, const char *type) {
    return qn_error_set(l->err, QN_ERR_UNSUPPORTED, "%s: %s.type '%.100s' is not supported",
                        l->path, where, type);
}

/* A string field holding exactly one character (UTF-8 in rep, its code point in *cp). */
static qn_status get_char(L *l, const cJSON *o, const char *where, const char *key,
                          const char *def, char rep[4], int *rep_len, uint32_t *cp) {
    const char *s;
    qn_status st = get_str(l, o, where, key, &s);
    if (st != QN_OK) return st;
    if (!s) s = def;
    size_t n = strlen(s);
    if (n == 0 || n > 4 || tk_utf8_len((unsigned char)s[0]) != (int)n)
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.%s must be a single character",
                            l->path, where, key);
    memcpy(rep, s, n);
    *rep_len = (int)n;
    if (cp) tk_utf8_decode(s, cp);
    return QN_OK;
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static qn_status nomem(L *l) {
    return qn_error_set(l->err, QN_ERR_NOMEM, "%s: out of memory", l->path);
}

/* "pattern": {"String": s} | {"Regex": r} */
static qn_status parse_pattern(L *l, const cJSON *o, const char *where, tk_pattern *p) {
    const cJSON *pat = jget(o, "pattern");
    if (!cJSON_IsObject(pat))
        return qn_error_set(l->err, QN_ERR_FORMAT,
                            "%s: %s.pattern must be an object {\"String\": ...} or {\"Regex\": ...}",
                            l->path, where);
    const cJSON *s = jget(pat, "String"), *r = jget(pat, "Regex");
    char w[300];
    snprintf(w, sizeof w, "%s.pattern", where);
    if (cJSON_IsString(s) && s->valuestring) {
        size_t n = strlen(s->valuestring);
        qn_status st = check_utf8(l, s->valuestring, n, w, "String");
        if (st != QN_OK) return st;
        if (tk_pattern_literal(p, s->valuestring, n) != 0) return nomem(l);
        return QN_OK;
    }
    if (cJSON_IsString(r) && r->valuestring) {
        size_t n = strlen(r->valuestring);
        qn_status st = check_utf8(l, r->valuestring, n, w, "Regex");
        if (st != QN_OK) return st;
        char msg[300];
        if (tk_pattern_regex(p, r->valuestring, n, msg, sizeof msg) != 0)
            return qn_error_set(l->err, QN_ERR_UNSUPPORTED,
                                "%s: %s.Regex '%.200s' does not compile with PCRE2: %s", l->path,
                                w, r->valuestring, msg);
        return QN_OK;
    }
    return qn_error_set(l->err, QN_ERR_FORMAT,
                        "%s: %s must hold a string \"String\" or \"Regex\"", l->path, w);
}

/* ---------- component lists ---------- */

#define GROW(arr, n, l)                                                               \
    do {                                                                              \
        if ((n) >= TK_MAX_COMPONENTS)                                                 \
            return qn_error_set((l)->err, QN_ERR_UNSUPPORTED,                         \
                                "%s: more than %d components in one pipeline stage",  \
                                (l)->path, TK_MAX_COMPONENTS);                        \
        void *np_ = realloc((arr), ((n) + 1) * sizeof *(arr));                        \
        if (!np_) return nomem(l);                                                    \
        (arr) = np_;                                                                  \
        memset(&(arr)[(n)], 0, sizeof *(arr));                                        \
    } while (0)

static qn_status parse_normalizer(L *l, const cJSON *o, const char *where, int depth) {
    qn_tokenizer *t = l->t;
    if (jnull(o)) return QN_OK;
    if (depth > MAX_DEPTH)
        return qn_error_set(l->err, QN_ERR_UNSUPPORTED, "%s: %s: Sequence nested too deeply",
                            l->path, where);
    const char *type;
    qn_status st = get_type(l, o, where, &type);
    if (st != QN_OK) return st;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = jget(o, "normalizers");
        if (!cJSON_IsArray(arr))
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.normalizers must be an array",
                                l->path, where);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            char w[300];
            snprintf(w, sizeof w, "%s.normalizers[%d]", where, i++);
            if (jnull(it))
                return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s must be an object", l->path,
                                    w);
            st = parse_normalizer(l, it, w, depth + 1);
            if (st != QN_OK) return st;
        }
        return QN_OK;
    }
    tk_norm_kind kind;
    if (strcmp(type, "NFC") == 0) kind = TK_NORM_NFC;
    else if (strcmp(type, "NFD") == 0) kind = TK_NORM_NFD;
    else if (strcmp(type, "NFKC") == 0) kind = TK_NORM_NFKC;
    else if (strcmp(type, "NFKD") == 0) kind = TK_NORM_NFKD;
    else if (strcmp(type, "Lowercase") == 0) kind = TK_NORM_LOWERCASE;
    else if (strcmp(type, "Strip") == 0) kind = TK_NORM_STRIP;
    else if (strcmp(type, "Replace") == 0) kind = TK_NORM_REPLACE;
    else if (strcmp(type, "Prepend") == 0) kind = TK_NORM_PREPEND;
    else return unsupported_type(l, where, type);

    GROW(t->norms, t->n_norms, l);
    tk_norm *n = &t->norms[t->n_norms++];
    n->kind = kind;
    if (kind == TK_NORM_STRIP) {
        if ((st = get_bool(l, o, where, "strip_left", 0, &n->strip_left)) != QN_OK) return st;
        if ((st = get_bool(l, o, where, "strip_right", 0, &n->strip_right)) != QN_OK) return st;
    } else if (kind == TK_NORM_REPLACE || kind == TK_NORM_PREPEND) {
        const char *key = kind == TK_NORM_REPLACE ? "content" : "prepend";
        const char *s;
        if ((st = get_str(l, o, where, key, &s)) != QN_OK) return st;
        if (!s)
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.%s is missing", l->path, where,
                                key);
        n->content_len = strlen(s);
        if (!(n->content = dup_n(s, n->content_len))) return nomem(l);
        if (kind == TK_NORM_REPLACE && (st = parse_pattern(l, o, where, &n->pat)) != QN_OK)
            return st;
    }
    return QN_OK;
}

static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static qn_status parse_scheme(L *l, const cJSON *o, const char *where, tk_prepend_scheme *out) {
    const char *s;
    qn_status st = get_str(l, o, where, "prepend_scheme", &s);
    if (st != QN_OK) return st;
    if (s) {
        if (strcmp(s, "always") == 0) *out = TK_PREPEND_ALWAYS;
        else if (strcmp(s, "first") == 0) *out = TK_PREPEND_FIRST;
        else if (strcmp(s, "never") == 0) *out = TK_PREPEND_NEVER;
        else
            return qn_error_set(l->err, QN_ERR_UNSUPPORTED,
                                "%s: %s.prepend_scheme '%.50s' is not supported", l->path, where,
                                s);
        return QN_OK;
    }
    int aps; /* older files: add_prefix_space */
    if ((st = get_bool(l, o, where, "add_prefix_space", 1, &aps)) != QN_OK) return st;
    *out = aps ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER;
    return QN_OK;
}

static qn_status parse_pretokenizer(L *l, const cJSON *o, const char *where, int depth) {
    qn_tokenizer *t = l->t;
    if (jnull(o)) return QN_OK;
    if (depth > MAX_DEPTH)
        return qn_error_set(l->err, QN_ERR_UNSUPPORTED, "%s: %s: Sequence nested too deeply",
                            l->path, where);
    const char *type;
    qn_status st = get_type(l, o, where, &type);
    if (st != QN_OK) return st;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = jget(o, "pretokenizers");
        if (!cJSON_IsArray(arr))
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.pretokenizers must be an array",
                                l->path, where);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            char w[300];
            snprintf(w, sizeof w, "%s.pretokenizers[%d]", where, i++);
            if (jnull(it))
                return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s must be an object", l->path,
                                    w);
            st = parse_pretokenizer(l, it, w, depth + 1);
            if (st != QN_OK) return st;
        }
        return QN_OK;
    }
    tk_pre_kind kind;
    if (strcmp(type, "Split") == 0) kind = TK_PRE_SPLIT;
    else if (strcmp(type, "ByteLevel") == 0) kind = TK_PRE_BYTELEVEL;
    else if (strcmp(type, "Metaspace") == 0) kind = TK_PRE_METASPACE;
    else return unsupported_type(l, where, type);

    GROW(t->pres, t->n_pres, l);
    tk_pre *p = &t->pres[t->n_pres++];
    p->kind = kind;
    if (kind == TK_PRE_SPLIT) {
        if ((st = parse_pattern(l, o, where, &p->pat)) != QN_OK) return st;
        const char *b;
        if ((st = get_str(l, o, where, "behavior", &b)) != QN_OK) return st;
        if (!b)
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.behavior is missing", l->path,
                                where);
        if (strcmp(b, "Removed") == 0) p->behavior = TK_SPLIT_REMOVED;
        else if (strcmp(b, "Isolated") == 0) p->behavior = TK_SPLIT_ISOLATED;
        else if (strcmp(b, "MergedWithPrevious") == 0) p->behavior = TK_SPLIT_MERGED_PREV;
        else if (strcmp(b, "MergedWithNext") == 0) p->behavior = TK_SPLIT_MERGED_NEXT;
        else if (strcmp(b, "Contiguous") == 0) p->behavior = TK_SPLIT_CONTIGUOUS;
        else
            return qn_error_set(l->err, QN_ERR_UNSUPPORTED,
                                "%s: %s.behavior '%.50s' is not supported", l->path, where, b);
        if ((st = get_bool(l, o, where, "invert", 0, &p->invert)) != QN_OK) return st;
    } else if (kind == TK_PRE_BYTELEVEL) {
        int trim;
        if ((st = get_bool(l, o, where, "add_prefix_space", 1, &p->add_prefix_space)) != QN_OK)
            return st;
        if ((st = get_bool(l, o, where, "trim_offsets", 1, &trim)) != QN_OK) return st;
        if ((st = get_bool(l, o, where, "use_regex", 1, &p->use_regex)) != QN_OK) return st;
        if (p->use_regex) {
            char msg[300];
            if (tk_pattern_regex(&p->pat, GPT2_REGEX, sizeof GPT2_REGEX - 1, msg, sizeof msg) != 0)
                return qn_error_set(l->err, QN_ERR_INTERNAL, "%s: %s: GPT-2 regex: %s", l->path,
                                    where, msg);
        }
    } else {
        if ((st = get_char(l, o, where, "replacement", "\xE2\x96\x81", p->rep, &p->rep_len,
                           NULL)) != QN_OK)
            return st;
        if ((st = parse_scheme(l, o, where, &p->scheme)) != QN_OK) return st;
        if ((st = get_bool(l, o, where, "split", 1, &p->split)) != QN_OK) return st;
        if (tk_pattern_literal(&p->pat, p->rep, (size_t)p->rep_len) != 0) return nomem(l);
    }
    return QN_OK;
}

static qn_status parse_decoder(L *l, const cJSON *o, const char *where, int depth) {
    qn_tokenizer *t = l->t;
    if (jnull(o)) return QN_OK;
    if (depth > MAX_DEPTH)
        return qn_error_set(l->err, QN_ERR_UNSUPPORTED, "%s: %s: Sequence nested too deeply",
                            l->path, where);
    const char *type;
    qn_status st = get_type(l, o, where, &type);
    if (st != QN_OK) return st;
    t->has_decoder = 1;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = jget(o, "decoders");
        if (!cJSON_IsArray(arr))
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.decoders must be an array",
                                l->path, where);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            char w[300];
            snprintf(w, sizeof w, "%s.decoders[%d]", where, i++);
            if (jnull(it))
                return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s must be an object", l->path,
                                    w);
            st = parse_decoder(l, it, w, depth + 1);
            if (st != QN_OK) return st;
        }
        return QN_OK;
    }
    tk_dec_kind kind;
    if (strcmp(type, "ByteLevel") == 0) kind = TK_DEC_BYTELEVEL;
    else if (strcmp(type, "Replace") == 0) kind = TK_DEC_REPLACE;
    else if (strcmp(type, "ByteFallback") == 0) kind = TK_DEC_BYTEFALLBACK;
    else if (strcmp(type, "Fuse") == 0) kind = TK_DEC_FUSE;
    else if (strcmp(type, "Strip") == 0) kind = TK_DEC_STRIP;
    else if (strcmp(type, "Metaspace") == 0) kind = TK_DEC_METASPACE;
    else return unsupported_type(l, where, type);

    GROW(t->decs, t->n_decs, l);
    tk_dec *d = &t->decs[t->n_decs++];
    d->kind = kind;
    if (kind == TK_DEC_REPLACE) {
        const char *s;
        if ((st = get_str(l, o, where, "content", &s)) != QN_OK) return st;
        if (!s)
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.content is missing", l->path,
                                where);
        d->content_len = strlen(s);
        if (!(d->content = dup_n(s, d->content_len))) return nomem(l);
        if ((st = parse_pattern(l, o, where, &d->pat)) != QN_OK) return st;
    } else if (kind == TK_DEC_STRIP) {
        char rep[4];
        int rl;
        if ((st = get_char(l, o, where, "content", " ", rep, &rl, &d->strip_char)) != QN_OK)
            return st;
        int64_t v;
        if ((st = get_uint(l, o, where, "start", 0, 1 << 20, &v)) != QN_OK) return st;
        d->strip_start = (size_t)v;
        if ((st = get_uint(l, o, where, "stop", 0, 1 << 20, &v)) != QN_OK) return st;
        d->strip_stop = (size_t)v;
    } else if (kind == TK_DEC_METASPACE) {
        if ((st = get_char(l, o, where, "replacement", "\xE2\x96\x81", d->rep, &d->rep_len,
                           NULL)) != QN_OK)
            return st;
        if ((st = parse_scheme(l, o, where, &d->scheme)) != QN_OK) return st;
    }
    return QN_OK;
}

/* ---------- post-processor ---------- */

static qn_status post_add(L *l, tk_post **outp) {
    qn_tokenizer *t = l->t;
    GROW(t->posts, t->n_posts, l);
    *outp = &t->posts[t->n_posts++];
    return QN_OK;
}

static qn_status tmpl_push(L *l, tk_post *p, int is_seq, const int32_t *ids, size_t n) {
    if (p->n >= TK_MAX_TEMPLATE)
        return qn_error_set(l->err, QN_ERR_UNSUPPORTED, "%s: post_processor template too long",
                            l->path);
    tk_tmpl_item *ni = realloc(p->items, (p->n + 1) * sizeof *ni);
    if (!ni) return nomem(l);
    p->items = ni;
    tk_tmpl_item *it = &p->items[p->n++];
    memset(it, 0, sizeof *it);
    it->is_seq = is_seq;
    if (n) {
        if (!(it->ids = malloc(n * sizeof *ids))) return nomem(l);
        memcpy(it->ids, ids, n * sizeof *ids);
        it->n = n;
    }
    return QN_OK;
}

/* "cls"/"sep": [token, id] */
static qn_status get_tok_pair(L *l, const cJSON *o, const char *where, const char *key,
                              int32_t *id) {
    const cJSON *v = jget(o, key);
    const cJSON *i1 = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, 1) : NULL;
    int64_t x;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsString(cJSON_GetArrayItem(v, 0)) ||
        !as_int(i1, 0, TK_MAX_ID - 1, &x))
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.%s must be [token, id]", l->path,
                            where, key);
    *id = (int32_t)x;
    return QN_OK;
}

static qn_status parse_post(L *l, const cJSON *o, const char *where, int depth) {
    if (jnull(o)) return QN_OK;
    if (depth > MAX_DEPTH)
        return qn_error_set(l->err, QN_ERR_UNSUPPORTED, "%s: %s: Sequence nested too deeply",
                            l->path, where);
    const char *type;
    qn_status st = get_type(l, o, where, &type);
    if (st != QN_OK) return st;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *arr = jget(o, "processors");
        if (!cJSON_IsArray(arr))
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.processors must be an array",
                                l->path, where);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            char w[300];
            snprintf(w, sizeof w, "%s.processors[%d]", where, i++);
            if (jnull(it))
                return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s must be an object", l->path,
                                    w);
            st = parse_post(l, it, w, depth + 1);
            if (st != QN_OK) return st;
        }
        return QN_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return QN_OK; /* offsets only */
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        int32_t cls, sep;
        if ((st = get_tok_pair(l, o, where, "cls", &cls)) != QN_OK) return st;
        if ((st = get_tok_pair(l, o, where, "sep", &sep)) != QN_OK) return st;
        tk_post *p;
        if ((st = post_add(l, &p)) != QN_OK) return st;
        if ((st = tmpl_push(l, p, 0, &cls, 1)) != QN_OK) return st;
        if ((st = tmpl_push(l, p, 1, NULL, 0)) != QN_OK) return st;
        return tmpl_push(l, p, 0, &sep, 1);
    }
    if (strcmp(type, "TemplateProcessing") != 0) return unsupported_type(l, where, type);

    const cJSON *single = jget(o, "single"), *specials = jget(o, "special_tokens");
    if (!cJSON_IsArray(single))
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.single must be an array", l->path,
                            where);
    if (!jnull(specials) && !cJSON_IsObject(specials))
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.special_tokens must be an object",
                            l->path, where);
    tk_post *p;
    if ((st = post_add(l, &p)) != QN_OK) return st;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, single) {
        char w[300];
        snprintf(w, sizeof w, "%s.single[%d]", where, i++);
        const cJSON *sq = jget(it, "Sequence"), *sp = jget(it, "SpecialToken");
        if (cJSON_IsObject(sq)) {
            const cJSON *id = jget(sq, "id");
            if (!cJSON_IsString(id) || strcmp(id->valuestring, "A") != 0)
                return qn_error_set(l->err, QN_ERR_UNSUPPORTED,
                                    "%s: %s.Sequence.id must be \"A\" in the single template",
                                    l->path, w);
            if ((st = tmpl_push(l, p, 1, NULL, 0)) != QN_OK) return st;
        } else if (cJSON_IsObject(sp)) {
            const cJSON *id = jget(sp, "id");
            if (!cJSON_IsString(id) || !id->valuestring)
                return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.SpecialToken.id must be a string",
                                    l->path, w);
            const cJSON *def = jget(specials, id->valuestring);
            const cJSON *ids = jget(def, "ids");
            if (!cJSON_IsArray(ids))
                return qn_error_set(l->err, QN_ERR_FORMAT,
                                    "%s: %s.special_tokens['%.100s'].ids is missing or not an array",
                                    l->path, where, id->valuestring);
            int nids = cJSON_GetArraySize(ids);
            if (nids > TK_MAX_TEMPLATE)
                return qn_error_set(l->err, QN_ERR_UNSUPPORTED,
                                    "%s: %s.special_tokens['%.100s'] has too many ids", l->path,
                                    where, id->valuestring);
            int32_t buf[TK_MAX_TEMPLATE];
            int k = 0;
            const cJSON *x;
            cJSON_ArrayForEach(x, ids) {
                int64_t v;
                if (!as_int(x, 0, TK_MAX_ID - 1, &v))
                    return qn_error_set(l->err, QN_ERR_FORMAT,
                                        "%s: %s.special_tokens['%.100s'].ids must hold token ids",
                                        l->path, where, id->valuestring);
                buf[k++] = (int32_t)v;
            }
            if ((st = tmpl_push(l, p, 0, buf, (size_t)k)) != QN_OK) return st;
        } else {
            return qn_error_set(l->err, QN_ERR_FORMAT,
                                "%s: %s must be {\"Sequence\": ...} or {\"SpecialToken\": ...}",
                                l->path, w);
        }
    }
    return QN_OK;
}

/* ---------- model ---------- */

static qn_status parse_vocab(L *l, const cJSON *vocab) {
    qn_tokenizer *t = l->t;
    if (!cJSON_IsObject(vocab))
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: model.vocab must be an object", l->path);
    size_t count = 0;
    int64_t max_id = -1;
    size_t bytes = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int64_t id;
        if (!it->string || !as_int(it, 0, TK_MAX_ID - 1, &id))
            return qn_error_set(l->err, QN_ERR_FORMAT,
                                "%s: model.vocab['%.100s'] must be an integer id in [0, %d)",
                                l->path, it->string ? it->string : "", TK_MAX_ID);
        size_t n = strlen(it->string);
        qn_status st = check_utf8(l, it->string, n, "model.vocab", "key");
        if (st != QN_OK) return st;
        if (id > max_id) max_id = id;
        bytes += n + 1;
        count++;
        if (bytes > 0x7FFFFFFF)
            return qn_error_set(l->err, QN_ERR_UNSUPPORTED, "%s: model.vocab is too large",
                                l->path);
    }
    t->n_ids = (size_t)(max_id + 1);
    if (t->n_ids) {
        t->piece_off = malloc(t->n_ids * sizeof *t->piece_off);
        t->piece_len = malloc(t->n_ids * sizeof *t->piece_len);
        if (!t->piece_off || !t->piece_len) return nomem(l);
        memset(t->piece_off, 0xFF, t->n_ids * sizeof *t->piece_off);
    }
    if (tk_buf_reserve(&t->arena, bytes) != 0 || tk_map_init(&t->vocab, count) != 0)
        return nomem(l);
    cJSON_ArrayForEach(it, vocab) {
        int64_t id = 0;
        as_int(it, 0, TK_MAX_ID - 1, &id);
        size_t n = strlen(it->string);
        if (t->piece_off[id] != UINT32_MAX) {
            size_t ol = t->piece_len[id];
            const char *os = t->arena.p + t->piece_off[id];
            if (ol == n && memcmp(os, it->string, n) == 0) continue;
            return qn_error_set(l->err, QN_ERR_FORMAT,
                                "%s: model.vocab: id %lld is given to both '%.100s' and '%.100s'",
                                l->path, (long long)id, os, it->string);
        }
        t->piece_off[id] = (uint32_t)t->arena.len;
        t->piece_len[id] = (uint32_t)n;
        tk_buf_put(&t->arena, it->string, n + 1); /* reserved above: cannot fail */
        t->arena.len = t->piece_off[id] + n + 1;
    }
    /* the arena no longer moves: insert keys */
    for (size_t id = 0; id < t->n_ids; id++) {
        if (t->piece_off[id] == UINT32_MAX) continue;
        if (tk_map_put(&t->vocab, t->arena.p + t->piece_off[id], t->piece_len[id], (int32_t)id,
                       tk_vocab_key, t) != 0)
            return nomem(l);
    }
    /* duplicate keys with different ids: HF keeps the last one listed */
    cJSON_ArrayForEach(it, vocab) {
        int64_t id = 0;
        as_int(it, 0, TK_MAX_ID - 1, &id);
        if (tk_map_put(&t->vocab, it->string, strlen(it->string), (int32_t)id, tk_vocab_key, t) !=
            0)
            return nomem(l);
    }
    return QN_OK;
}

static int32_t vocab_id(const qn_tokenizer *t, const char *s, size_t n) {
    return tk_map_get(&t->vocab, s, n, tk_vocab_key, t);
}

static qn_status add_merge(L *l, size_t rank, const char *a, size_t an, const char *b, size_t bn) {
    qn_tokenizer *t = l->t;
    int32_t ia = vocab_id(t, a, an), ib = vocab_id(t, b, bn);
    if (ia < 0 || ib < 0)
        return qn_error_set(l->err, QN_ERR_FORMAT,
                            "%s: model.merges[%zu]: token '%.*s' is not in the vocab", l->path,
                            rank, (int)(ia < 0 ? (an > 100 ? 100 : an) : (bn > 100 ? 100 : bn)),
                            ia < 0 ? a : b);
    size_t skip = t->cont_prefix_len;
    if (skip > bn) skip = bn;
    char stackbuf[256];
    size_t nn = an + bn - skip;
    char *m = nn <= sizeof stackbuf ? stackbuf : malloc(nn);
    if (!m) return nomem(l);
    memcpy(m, a, an);
    memcpy(m + an, b + skip, bn - skip);
    int32_t inew = vocab_id(t, m, nn);
    if (m != stackbuf) free(m);
    if (inew < 0)
        return qn_error_set(l->err, QN_ERR_FORMAT,
                            "%s: model.merges[%zu]: merged token '%.*s%.*s' is not in the vocab",
                            l->path, rank, (int)(an > 100 ? 100 : an), a,
                            (int)(bn - skip > 100 ? 100 : bn - skip), b + skip);
    if (tk_merge_put(&t->merges, ia, ib, (uint32_t)rank, inew) != 0) return nomem(l);
    t->rank_new_id[rank] = inew;
    return QN_OK;
}

static qn_status parse_merges(L *l, const cJSON *merges) {
    if (jnull(merges)) return QN_OK;
    if (!cJSON_IsArray(merges))
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: model.merges must be an array", l->path);
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, merges) n++;
    if (n > TK_MAX_ID * (size_t)4)
        return qn_error_set(l->err, QN_ERR_UNSUPPORTED, "%s: model.merges has too many entries",
                            l->path);
    if (tk_merge_init(&l->t->merges, n) != 0) return nomem(l);
    l->t->rank_new_id = malloc((n ? n : 1) * sizeof *l->t->rank_new_id);
    if (!l->t->rank_new_id) return nomem(l);
    l->t->n_ranks = n;
    size_t rank = 0, idx = 0;
    cJSON_ArrayForEach(it, merges) {
        qn_status st;
        if (cJSON_IsString(it) && it->valuestring) {
            const char *s = it->valuestring;
            if (strncmp(s, "#version", 8) == 0) {
                idx++;
                continue;
            }
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return qn_error_set(l->err, QN_ERR_FORMAT,
                                    "%s: model.merges[%zu] '%.100s' must be two tokens separated by "
                                    "one space",
                                    l->path, idx, s);
            st = add_merge(l, rank, s, (size_t)(sp - s), sp + 1, strlen(sp + 1));
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring;
            const char *b = cJSON_GetArrayItem(it, 1)->valuestring;
            st = add_merge(l, rank, a, strlen(a), b, strlen(b));
        } else {
            return qn_error_set(l->err, QN_ERR_FORMAT,
                                "%s: model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", l->path,
                                idx);
        }
        if (st != QN_OK) return st;
        rank++;
        idx++;
    }
    return QN_OK;
}

static qn_status parse_model(L *l, const cJSON *m) {
    qn_tokenizer *t = l->t;
    if (!cJSON_IsObject(m))
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: model must be an object", l->path);
    const cJSON *type = jget(m, "type");
    if (!jnull(type)) {
        if (!cJSON_IsString(type))
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: model.type must be a string", l->path);
        if (strcmp(type->valuestring, "BPE") != 0)
            return qn_error_set(l->err, QN_ERR_UNSUPPORTED,
                                "%s: model.type '%.100s' is not supported (only BPE)", l->path,
                                type->valuestring);
    } else if (!jget(m, "merges")) {
        return qn_error_set(l->err, QN_ERR_UNSUPPORTED,
                            "%s: model.type is missing and the model has no merges (only BPE is "
                            "supported)",
                            l->path);
    }
    const cJSON *dropout = jget(m, "dropout");
    if (!jnull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0.0))
        return qn_error_set(l->err, QN_ERR_UNSUPPORTED,
                            "%s: model.dropout is not supported (must be null or 0)", l->path);
    qn_status st;
    const char *s;
    if ((st = get_str(l, m, "model", "continuing_subword_prefix", &s)) != QN_OK) return st;
    if (s && *s) {
        t->cont_prefix_len = strlen(s);
        if (!(t->cont_prefix = dup_n(s, t->cont_prefix_len))) return nomem(l);
    }
    if ((st = get_str(l, m, "model", "end_of_word_suffix", &s)) != QN_OK) return st;
    if (s && *s) {
        t->eow_suffix_len = strlen(s);
        if (!(t->eow_suffix = dup_n(s, t->eow_suffix_len))) return nomem(l);
    }
    if ((st = get_bool(l, m, "model", "fuse_unk", 0, &t->fuse_unk)) != QN_OK) return st;
    if ((st = get_bool(l, m, "model", "byte_fallback", 0, &t->byte_fallback)) != QN_OK) return st;
    if ((st = get_bool(l, m, "model", "ignore_merges", 0, &t->ignore_merges)) != QN_OK) return st;
    const cJSON *vocab = jget(m, "vocab");
    if (!vocab) return qn_error_set(l->err, QN_ERR_FORMAT, "%s: model.vocab is missing", l->path);
    if ((st = parse_vocab(l, vocab)) != QN_OK) return st;
    if ((st = get_str(l, m, "model", "unk_token", &s)) != QN_OK) return st;
    t->unk_id = -1;
    if (s) {
        t->unk_id = vocab_id(t, s, strlen(s));
        if (t->unk_id < 0) t->unk_id = -2; /* set but not in the vocab: an error if needed */
    }
    for (int b = 0; b < 256; b++) {
        char nm[8];
        snprintf(nm, sizeof nm, "<0x%02X>", b);
        t->byte_ids[b] = vocab_id(t, nm, 6);
    }
    return parse_merges(l, jget(m, "merges"));
}

/* ---------- added tokens ---------- */

static qn_status parse_added(L *l, const cJSON *arr) {
    qn_tokenizer *t = l->t;
    if (jnull(arr)) return QN_OK;
    if (!cJSON_IsArray(arr))
        return qn_error_set(l->err, QN_ERR_FORMAT, "%s: added_tokens must be an array", l->path);
    int n = cJSON_GetArraySize(arr);
    if (n > TK_MAX_ADDED)
        return qn_error_set(l->err, QN_ERR_UNSUPPORTED, "%s: more than %d added_tokens", l->path,
                            TK_MAX_ADDED);
    if (n == 0) return QN_OK;
    t->added = calloc((size_t)n, sizeof *t->added);
    if (!t->added) return nomem(l);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        char w[64];
        snprintf(w, sizeof w, "added_tokens[%d]", i++);
        if (!cJSON_IsObject(it))
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s must be an object", l->path, w);
        int64_t id;
        if (!as_int(jget(it, "id"), 0, TK_MAX_ID - 1, &id))
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.id must be an integer in [0, %d)",
                                l->path, w, TK_MAX_ID);
        const char *content;
        qn_status st = get_str(l, it, w, "content", &content);
        if (st != QN_OK) return st;
        if (!content || !*content)
            return qn_error_set(l->err, QN_ERR_FORMAT, "%s: %s.content must be a non-empty string",
                                l->path, w);
        int sw, ls, rs, norm, special;
        if ((st = get_bool(l, it, w, "special", 0, &special)) != QN_OK) return st;
        if ((st = get_bool(l, it, w, "single_word", 0, &sw)) != QN_OK) return st;
        if ((st = get_bool(l, it, w, "lstrip", 0, &ls)) != QN_OK) return st;
        if ((st = get_bool(l, it, w, "rstrip", 0, &rs)) != QN_OK) return st;
        if ((st = get_bool(l, it, w, "normalized", !special, &norm)) != QN_OK) return st;
        size_t len = strlen(content);
        int32_t prev = tk_map_get(&t->added_map, content, len, tk_added_key, t);
        tk_added *a;
        if (prev >= 0) { /* same content twice: the later entry wins */
            a = &t->added[prev];
            free(a->content);
        } else {
            a = &t->added[t->n_added];
        }
        memset(a, 0, sizeof *a);
        if (!(a->content = dup_n(content, len))) return nomem(l);
        a->len = len;
        a->id = (int32_t)id;
        a->single_word = (uint8_t)sw;
        a->lstrip = (uint8_t)ls;
        a->rstrip = (uint8_t)rs;
        a->normalized = (uint8_t)norm;
        a->special = (uint8_t)special;
        if (prev < 0) {
            int32_t idx = (int32_t)t->n_added++;
            if (tk_map_put(&t->added_map, a->content, len, idx, tk_added_key, t) != 0)
                return nomem(l);
        }
    }
    return QN_OK;
}

typedef struct {
    int32_t idx;
    unsigned char first;
    size_t len;
} mkey;

static int mkey_cmp(const void *pa, const void *pb) {
    const mkey *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static qn_status build_matcher(L *l, tk_matcher *m, int use_norm) {
    qn_tokenizer *t = l->t;
    m->use_norm = use_norm;
    size_t n = 0;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == use_norm && (use_norm ? t->added[i].norm_len : 1)) n++;
    if (n == 0) return QN_OK;
    mkey *k = malloc(n * sizeof *k);
    m->order = malloc(n * sizeof *m->order);
    if (!k || !m->order) {
        free(k);
        return nomem(l);
    }
    size_t j = 0;
    for (size_t i = 0; i < t->n_added; i++) {
        const tk_added *a = &t->added[i];
        if (a->normalized != use_norm) continue;
        const char *s = use_norm ? a->norm : a->content;
        size_t len = use_norm ? a->norm_len : a->len;
        if (len == 0) continue;
        k[j].idx = (int32_t)i;
        k[j].first = (unsigned char)s[0];
        k[j].len = len;
        j++;
    }
    qsort(k, n, sizeof *k, mkey_cmp);
    memset(m->first, 0, sizeof m->first);
    for (size_t i = 0; i < n; i++) {
        m->order[i] = k[i].idx;
        m->first[k[i].first + 1]++;
    }
    for (int c = 0; c < 256; c++) m->first[c + 1] += m->first[c];
    m->n = n;
    free(k);
    return QN_OK;
}

/* ---------- bigram set (see tok_internal.h) ---------- */

static size_t bigram_hash(uint64_t k) {
    k ^= k >> 31;
    k *= 0x9E3779B97F4A7C15ULL;
    k ^= k >> 29;
    return (size_t)k;
}

static int bigram_insert(qn_tokenizer *t, uint64_t key, size_t *n) {
    if ((*n + 1) * 2 > t->bigram_cap) {
        size_t cap = t->bigram_cap ? t->bigram_cap * 2 : 1024;
        uint64_t *nb = calloc(cap, sizeof *nb);
        if (!nb) return -1;
        for (size_t i = 0; i < t->bigram_cap; i++) {
            uint64_t k = t->bigram[i];
            if (!k) continue;
            size_t j = bigram_hash(k) & (cap - 1);
            while (nb[j]) j = (j + 1) & (cap - 1);
            nb[j] = k;
        }
        free(t->bigram);
        t->bigram = nb;
        t->bigram_cap = cap;
    }
    size_t j = bigram_hash(key) & (t->bigram_cap - 1);
    while (t->bigram[j] && t->bigram[j] != key) j = (j + 1) & (t->bigram_cap - 1);
    if (!t->bigram[j]) {
        t->bigram[j] = key;
        (*n)++;
    }
    return 0;
}

static qn_status build_bigrams(L *l) {
    qn_tokenizer *t = l->t;
    if (t->n_pres || t->cont_prefix || t->eow_suffix) return QN_OK;
    size_t n = 0;
    if (bigram_insert(t, 1, &n) != 0) return nomem(l); /* allocate even for a tiny vocab */
    for (size_t id = 0; id < t->n_ids; id++) {
        if (t->piece_off[id] == UINT32_MAX) continue;
        const char *s = t->arena.p + t->piece_off[id];
        size_t len = t->piece_len[id], i = 0;
        uint32_t prev = 0;
        int have = 0;
        while (i < len) {
            uint32_t cp;
            i += (size_t)tk_utf8_decode(s + i, &cp);
            if (have && bigram_insert(t, (((uint64_t)prev << 21) | cp) + 1, &n) != 0)
                return nomem(l);
            prev = cp;
            have = 1;
        }
    }
    return QN_OK;
}

/* ---------- whole file ---------- */

static qn_status finish(L *l) {
    qn_tokenizer *t = l->t;
    qn_status st;
    /* vocab size and id -> added token */
    size_t vs = t->n_ids;
    for (size_t i = 0; i < t->n_added; i++)
        if ((size_t)t->added[i].id + 1 > vs) vs = (size_t)t->added[i].id + 1;
    t->vocab_size = vs;
    if (vs) {
        t->added_by_id = malloc(vs * sizeof *t->added_by_id);
        if (!t->added_by_id) return nomem(l);
        memset(t->added_by_id, 0xFF, vs * sizeof *t->added_by_id);
        for (size_t i = 0; i < t->n_added; i++) t->added_by_id[t->added[i].id] = (int32_t)i;
    }
    /* normalized added tokens are matched in their normalized form */
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return nomem(l);
    for (size_t i = 0; i < t->n_added; i++) {
        tk_added *a = &t->added[i];
        if (!a->normalized) continue;
        tk_buf b = {0};
        if (tk_normalize(t, md, a->content, a->len, &b) != 0) {
            tk_buf_free(&b);
            pcre2_match_data_free(md);
            return qn_error_set(l->err, QN_ERR_FORMAT,
                                "%s: added token '%.100s': normalizer failed", l->path, a->content);
        }
        a->norm = b.p ? b.p : dup_n("", 0);
        a->norm_len = b.len;
        if (!a->norm) {
            pcre2_match_data_free(md);
            return nomem(l);
        }
    }
    pcre2_match_data_free(md);
    if ((st = build_matcher(l, &t->match_raw, 0)) != QN_OK) return st;
    if ((st = build_matcher(l, &t->match_norm, 1)) != QN_OK) return st;
    if ((st = build_bigrams(l)) != QN_OK) return st;

    t->kind = QN_TOK_SENTENCEPIECE_BPE;
    for (size_t i = 0; i < t->n_pres; i++)
        if (t->pres[i].kind == TK_PRE_BYTELEVEL) t->kind = QN_TOK_BYTELEVEL_BPE;
    for (size_t i = 0; i < t->n_decs; i++)
        if (t->decs[i].kind == TK_DEC_BYTELEVEL) t->kind = QN_TOK_BYTELEVEL_BPE;

    /* BOS / EOS from the (last) template: the single special token before / after $A */
    t->bos_id = t->eos_id = -1;
    for (size_t p = 0; p < t->n_posts; p++) {
        const tk_post *pp = &t->posts[p];
        int seen_seq = 0;
        for (size_t i = 0; i < pp->n; i++) {
            const tk_tmpl_item *it = &pp->items[i];
            if (it->is_seq) {
                seen_seq = 1;
                continue;
            }
            if (it->n != 1) continue;
            if (!seen_seq && t->bos_id < 0) t->bos_id = it->ids[0];
            if (seen_seq && t->eos_id < 0) t->eos_id = it->ids[0];
        }
    }
    return QN_OK;
}

qn_status tk_load_json(qn_tokenizer *t, const char *path, const char *data, size_t len,
                       qn_error *err) {
    L l = {path, err, t};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!root) {
        size_t off = end && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        return qn_error_set(err, QN_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, off);
    }
    qn_status st = QN_OK;
    if (!cJSON_IsObject(root)) {
        st = qn_error_set(err, QN_ERR_FORMAT, "%s: the top level must be a JSON object", path);
        goto out;
    }
    const cJSON *model = jget(root, "model");
    if (!model) {
        st = qn_error_set(err, QN_ERR_FORMAT, "%s: 'model' is missing", path);
        goto out;
    }
    if ((st = parse_model(&l, model)) != QN_OK) goto out;
    if ((st = parse_added(&l, jget(root, "added_tokens"))) != QN_OK) goto out;
    if ((st = parse_normalizer(&l, jget(root, "normalizer"), "normalizer", 0)) != QN_OK) goto out;
    if ((st = parse_pretokenizer(&l, jget(root, "pre_tokenizer"), "pre_tokenizer", 0)) != QN_OK)
        goto out;
    if ((st = parse_post(&l, jget(root, "post_processor"), "post_processor", 0)) != QN_OK)
        goto out;
    if ((st = parse_decoder(&l, jget(root, "decoder"), "decoder", 0)) != QN_OK) goto out;
    st = finish(&l);
out:
    cJSON_Delete(root);
    return st;
}

/* ---------- tokenizer_config.json ---------- */

/* bos_token / eos_token: string, {"content": ...} or null. *present = 0 when missing. */
static qn_status cfg_token(L *l, const cJSON *root, const char *key, const char **out,
                           int *present) {
    const cJSON *v = jget(root, key);
    *out = NULL;
    *present = v != NULL;
    if (jnull(v)) return QN_OK;
    if (cJSON_IsString(v)) {
        *out = v->valuestring;
        return QN_OK;
    }
    if (cJSON_IsObject(v)) {
        const cJSON *c = jget(v, "content");
        if (cJSON_IsString(c)) {
            *out = c->valuestring;
            return QN_OK;
        }
    }
    return qn_error_set(l->err, QN_ERR_FORMAT,
                        "%s: %s must be a string, {\"content\": string} or null", l->path, key);
}

static int32_t token_id(const qn_tokenizer *t, const char *s) {
    size_t n = strlen(s);
    int32_t a = tk_map_get(&t->added_map, s, n, tk_added_key, t);
    if (a >= 0) return t->added[a].id;
    return tk_map_get(&t->vocab, s, n, tk_vocab_key, t);
}

qn_status tk_load_config(qn_tokenizer *t, const char *path, const char *data, size_t len,
                         qn_error *err) {
    L l = {path, err, t};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!root) {
        size_t off = end && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        return qn_error_set(err, QN_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, off);
    }
    qn_status st = QN_OK;
    if (!cJSON_IsObject(root)) {
        st = qn_error_set(err, QN_ERR_FORMAT, "%s: the top level must be a JSON object", path);
        goto out;
    }
    const char *bos, *eos, *cls = NULL;
    int bos_present, eos_present, add_bos, add_eos;
    if ((st = cfg_token(&l, root, "bos_token", &bos, &bos_present)) != QN_OK) goto out;
    if ((st = cfg_token(&l, root, "eos_token", &eos, &eos_present)) != QN_OK) goto out;
    if ((st = get_str(&l, root, "tokenizer_config", "tokenizer_class", &cls)) != QN_OK) goto out;
    if ((st = get_bool(&l, root, "tokenizer_config", "add_bos_token", 1, &add_bos)) != QN_OK)
        goto out;
    if ((st = get_bool(&l, root, "tokenizer_config", "add_eos_token", 0, &add_eos)) != QN_OK)
        goto out;
    int32_t bos_id = bos ? token_id(t, bos) : -1, eos_id = eos ? token_id(t, eos) : -1;
    if (bos_present) t->bos_id = bos_id;
    if (eos_present) t->eos_id = eos_id;

    /* transformers' LlamaTokenizerFast (and CodeLlama/Gemma) rebuild the post-processor from
     * add_bos_token (default true) / add_eos_token (default false); other classes keep
     * tokenizer.json's post_processor. */
    static const char *const rebuild[] = {"LlamaTokenizer", "LlamaTokenizerFast",
                                          "CodeLlamaTokenizer", "CodeLlamaTokenizerFast",
                                          "GemmaTokenizer", "GemmaTokenizerFast"};
    int is_llama = 0;
    for (size_t i = 0; cls && i < sizeof rebuild / sizeof *rebuild; i++)
        if (strcmp(cls, rebuild[i]) == 0) is_llama = 1;
    if (is_llama) {
        if (add_bos && bos_id < 0) {
            st = qn_error_set(err, QN_ERR_FORMAT,
                              "%s: add_bos_token is true but bos_token '%.100s' is not a token",
                              path, bos ? bos : "(null)");
            goto out;
        }
        if (add_eos && eos_id < 0) {
            st = qn_error_set(err, QN_ERR_FORMAT,
                              "%s: add_eos_token is true but eos_token '%.100s' is not a token",
                              path, eos ? eos : "(null)");
            goto out;
        }
        for (size_t p = 0; p < t->n_posts; p++) {
            for (size_t i = 0; i < t->posts[p].n; i++) free(t->posts[p].items[i].ids);
            free(t->posts[p].items);
        }
        t->n_posts = 0;
        tk_post *p;
        if ((st = post_add(&l, &p)) != QN_OK) goto out;
        if (add_bos && (st = tmpl_push(&l, p, 0, &bos_id, 1)) != QN_OK) goto out;
        if ((st = tmpl_push(&l, p, 1, NULL, 0)) != QN_OK) goto out;
        if (add_eos && (st = tmpl_push(&l, p, 0, &eos_id, 1)) != QN_OK) goto out;
    }
out:
    cJSON_Delete(root);
    return st;
}

/* ---------- free ---------- */

void tk_free_contents(qn_tokenizer *t) {
    free(t->path);
    tk_buf_free(&t->arena);
    free(t->piece_off);
    free(t->piece_len);
    tk_map_free(&t->vocab);
    tk_merge_free(&t->merges);
    free(t->rank_new_id);
    free(t->bigram);
    free(t->cont_prefix);
    free(t->eow_suffix);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].norm);
    }
    free(t->added);
    tk_map_free(&t->added_map);
    free(t->added_by_id);
    free(t->match_raw.order);
    free(t->match_norm.order);
    for (size_t i = 0; i < t->n_norms; i++) {
        tk_pattern_free(&t->norms[i].pat);
        free(t->norms[i].content);
    }
    free(t->norms);
    for (size_t i = 0; i < t->n_pres; i++) tk_pattern_free(&t->pres[i].pat);
    free(t->pres);
    for (size_t p = 0; p < t->n_posts; p++) {
        for (size_t i = 0; i < t->posts[p].n; i++) free(t->posts[p].items[i].ids);
        free(t->posts[p].items);
    }
    free(t->posts);
    for (size_t i = 0; i < t->n_decs; i++) {
        tk_pattern_free(&t->decs[i].pat);
        free(t->decs[i].content);
    }
    free(t->decs);
}
