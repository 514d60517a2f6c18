/* Chat templates: evaluator of the parsed Jinja subset (chat_template_parse.c), values, filters,
 * tests, methods, JSON <-> values, and the public API of include/quench/chat_template.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "tokenizer/chat_template_internal.h"

/* ---------------- render context ---------------- */

typedef struct scope {
    struct scope *parent;
    ct_dict vars;
} scope;

typedef struct {
    char *p;
    size_t n, cap;
} buf;

typedef struct {
    const qn_chat_template *t;
    const qn_chat_opts *opts;
    ct_arena a;
    qn_error *err;
    int failed;
    qn_status code;
    uint64_t steps;
    int mdepth, depth;
    size_t bufmem; /* bytes held by output buffers */
    scope *root;
} R;

static const char *rsrc(R *r) { return r->t->source ? r->t->source : "<template>"; }

__attribute__((format(printf, 5, 6))) static int rerr(R *r, int line, int col, qn_status code, const char *fmt, ...) {
    if (!r->failed) {
        char m[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m, sizeof m, fmt, ap);
        va_end(ap);
        qn_error_set(r->err, code, "%s:%d:%d: %s", rsrc(r), line, col, m);
        r->failed = 1;
        r->code = code;
    }
    return -1;
}
#define EERR(r, e, ...) rerr((r), (e)->line, (e)->col, QN_ERR_FORMAT, __VA_ARGS__)
static int oom(R *r) {
    if (!r->failed) {
        qn_error_set(r->err, QN_ERR_NOMEM, "%s: rendering exceeds the 256 MiB memory bound", rsrc(r));
        r->failed = 1;
        r->code = QN_ERR_NOMEM;
    }
    return -1;
}
static void *ra(R *r, size_t n) {
    void *p = ct_alloc(&r->a, n);
    if (!p) oom(r);
    return p;
}

static int bput(R *r, buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        if (nc > CT_MAX_MEM || r->bufmem + (nc - b->cap) + r->a.total > CT_MAX_MEM) return oom(r);
        char *np = realloc(b->p, nc);
        if (!np) return oom(r);
        r->bufmem += nc - b->cap;
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}
static int bputs(R *r, buf *b, const char *s) { return bput(r, b, s, strlen(s)); }
static void bfree(R *r, buf *b) {
    r->bufmem -= b->cap;
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---------------- values ---------------- */

static ct_val V(int t) {
    ct_val v;
    memset(&v, 0, sizeof v);
    v.t = t;
    return v;
}
static ct_val vbool(int b) { ct_val v = V(V_BOOL); v.u.i = b != 0; return v; }
static ct_val vint(int64_t i) { ct_val v = V(V_INT); v.u.i = i; return v; }
static ct_val vfloat(double f) { ct_val v = V(V_FLOAT); v.u.f = f; return v; }
static ct_val vstr_ref(const char *p, size_t n) { ct_val v = V(V_STR); v.u.s.p = p; v.u.s.n = n; return v; }
static int vstr(R *r, const char *p, size_t n, ct_val *out) {
    char *d = ra(r, n + 1);
    if (!d) return -1;
    if (n) memcpy(d, p, n);
    *out = vstr_ref(d, n);
    return 0;
}
static int vstr_buf(R *r, buf *b, ct_val *out) {
    int rc = vstr(r, b->p ? b->p : "", b->n, out);
    bfree(r, b);
    return rc;
}
static ct_list *newlist(R *r, size_t cap) {
    ct_list *l = ra(r, sizeof *l);
    if (!l) return NULL;
    if (cap) {
        if (cap > CT_MAX_MEM / sizeof(ct_val) || !(l->v = ra(r, cap * sizeof(ct_val)))) { oom(r); return NULL; }
        l->cap = cap;
    }
    return l;
}
static int lpush(R *r, ct_list *l, ct_val v) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        ct_val *nv = ra(r, nc * sizeof(ct_val));
        if (!nv) return -1;
        if (l->n) memcpy(nv, l->v, l->n * sizeof(ct_val));
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = v;
    return 0;
}
static ct_val vlist(ct_list *l) { ct_val v = V(V_LIST); v.u.l = l; return v; }
static ct_val vdict(ct_dict *d) { ct_val v = V(V_DICT); v.u.d = d; return v; }

static int is_num(const ct_val *v) { return v->t == V_INT || v->t == V_BOOL || v->t == V_FLOAT; }
static double numf(const ct_val *v) { return v->t == V_FLOAT ? v->u.f : (double)v->u.i; }

static int veq(const ct_val *a, const ct_val *b);
static int dfind(const ct_dict *d, const ct_val *k, size_t *at) {
    for (size_t i = 0; i < d->n; i++)
        if (veq(&d->k[i], k)) { *at = i; return 1; }
    return 0;
}
static int dfind_s(const ct_dict *d, const char *k, size_t kn, size_t *at) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == V_STR && d->k[i].u.s.n == kn && !memcmp(d->k[i].u.s.p, k, kn)) { *at = i; return 1; }
    return 0;
}
static int dset(R *r, ct_dict *d, ct_val k, ct_val v) {
    size_t at;
    if (dfind(d, &k, &at)) { d->v[at] = v; return 0; }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 4;
        ct_val *nk = ra(r, nc * sizeof(ct_val)), *nv = ra(r, nc * sizeof(ct_val));
        if (!nk || !nv) return -1;
        if (d->n) { memcpy(nk, d->k, d->n * sizeof(ct_val)); memcpy(nv, d->v, d->n * sizeof(ct_val)); }
        d->k = nk;
        d->v = nv;
        d->cap = nc;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
    return 0;
}
static int dset_s(R *r, ct_dict *d, const char *k, ct_val v) { return dset(r, d, vstr_ref(k, strlen(k)), v); }

static int truthy(const ct_val *v) {
    switch (v->t) {
    case V_UNDEF: case V_NONE: return 0;
    case V_BOOL: case V_INT: return v->u.i != 0;
    case V_FLOAT: return v->u.f != 0.0;
    case V_STR: return v->u.s.n != 0;
    case V_LIST: return v->u.l->n != 0;
    case V_DICT: return v->u.d->n != 0;
    default: return 1;
    }
}

static int veq(const ct_val *a, const ct_val *b) {
    if (is_num(a) && is_num(b)) {
        if (a->t != V_FLOAT && b->t != V_FLOAT) return a->u.i == b->u.i;
        return numf(a) == numf(b);
    }
    if (a->t != b->t) return 0;
    switch (a->t) {
    case V_UNDEF: case V_NONE: return 1;
    case V_STR: return a->u.s.n == b->u.s.n && !memcmp(a->u.s.p, b->u.s.p, a->u.s.n);
    case V_LIST:
        if (a->u.l->n != b->u.l->n) return 0;
        for (size_t i = 0; i < a->u.l->n; i++)
            if (!veq(&a->u.l->v[i], &b->u.l->v[i])) return 0;
        return 1;
    case V_DICT:
        if (a->u.d->n != b->u.d->n) return 0;
        for (size_t i = 0; i < a->u.d->n; i++) {
            size_t at;
            if (!dfind(b->u.d, &a->u.d->k[i], &at) || !veq(&a->u.d->v[i], &b->u.d->v[at])) return 0;
        }
        return 1;
    case V_NS: return a->u.d == b->u.d;
    case V_MACRO: return a->u.m == b->u.m;
    default: return 0;
    }
}

static const char *tname(const ct_val *v) {
    static const char *const n[] = {"undefined", "none", "bool", "int", "float", "string", "list", "dict",
                                    "namespace", "macro", "loop"};
    return n[v->t];
}

/* ---- UTF-8 helpers (code point indexing, as Python str) ---- */

static size_t u8len(const char *s, size_t n, size_t i) { /* bytes of the sequence at i */
    unsigned char c = (unsigned char)s[i];
    size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (i + l > n) l = n - i;
    for (size_t k = 1; k < l; k++)
        if (((unsigned char)s[i + k] & 0xC0) != 0x80) return k;
    return l ? l : 1;
}
static int32_t u8dec(const char *s, size_t n, size_t i, size_t *len) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
    if (k <= 0) { *len = 1; return 0xFFFD; }
    *len = (size_t)k;
    return cp;
}
static size_t cpcount(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i += u8len(s, n, i)) c++;
    return c;
}
/* byte offsets of each code point (ncp + 1 entries) */
static size_t *cpoffs(R *r, const char *s, size_t n, size_t *ncp) {
    size_t c = cpcount(s, n);
    size_t *o = ra(r, (c + 1) * sizeof(size_t));
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i += u8len(s, n, i)) o[k++] = i;
    o[k] = n;
    *ncp = c;
    return o;
}
static int py_space(int32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
static int in_chars(int32_t c, const ct_val *chars) {
    if (!chars) return py_space(c);
    const char *s = chars->u.s.p;
    size_t n = chars->u.s.n;
    for (size_t i = 0; i < n;) {
        size_t l;
        if (u8dec(s, n, i, &l) == c) return 1;
        i += l;
    }
    return 0;
}
/* strip: which 1 = left, 2 = right, 3 = both; chars NULL = whitespace */
static ct_val sstrip(const ct_val *s, const ct_val *chars, int which) {
    const char *p = s->u.s.p;
    size_t a = 0, b = s->u.s.n;
    if (which & 1)
        while (a < b) {
            size_t l;
            int32_t c = u8dec(p, b, a, &l);
            if (!in_chars(c, chars)) break;
            a += l;
        }
    if (which & 2)
        while (b > a) {
            size_t st = b - 1;
            while (st > a && ((unsigned char)p[st] & 0xC0) == 0x80) st--;
            size_t l;
            int32_t c = u8dec(p, b, st, &l);
            if (!in_chars(c, chars)) break;
            b = st;
        }
    return vstr_ref(p + a, b - a);
}

/* case mapping with utf8proc's simple mappings; mode 0 lower, 1 upper, 2 capitalize, 3 title */
static int scase(R *r, const ct_val *s, int mode, ct_val *out) {
    buf b = {0};
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
    int prev_cased = 0, first = 1;
    for (size_t i = 0; i < n;) {
        size_t l;
        int32_t c = u8dec(p, n, i, &l);
        int up;
        if (mode == 0) up = 0;
        else if (mode == 1) up = 1;
        else if (mode == 2) up = first;
        else up = !prev_cased;
        int32_t m = up ? utf8proc_toupper(c) : utf8proc_tolower(c);
        if (mode == 3) {
            utf8proc_category_t cat = utf8proc_category(c);
            prev_cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
        }
        char e[4];
        size_t el = (size_t)utf8proc_encode_char(m, (utf8proc_uint8_t *)e);
        if (c == 0xFFFD && l == 1) { e[0] = p[i]; el = 1; } /* keep invalid bytes */
        if (bput(r, &b, e, el)) { bfree(r, &b); return -1; }
        i += l;
        first = 0;
    }
    return vstr_buf(r, &b, out);
}

/* ---- Python str() / repr() and float formatting ---- */

static void fmt_float(double x, char *o, size_t on) {
    if (isnan(x)) { snprintf(o, on, "nan"); return; }
    if (isinf(x)) { snprintf(o, on, x < 0 ? "-inf" : "inf"); return; }
    char e[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, x);
        if (strtod(e, NULL) == x) break;
    }
    /* e = [-]d[.ddd]e[+-]XX */
    char dig[32];
    int nd = 0, neg = e[0] == '-';
    const char *q = e + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') dig[nd++] = *q;
    int ex = atoi(q + 1);
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    dig[nd] = 0;
    char *w = o;
    size_t left = on;
#define PUT(...) do { int k_ = snprintf(w, left, __VA_ARGS__); if (k_ < 0 || (size_t)k_ >= left) return; w += k_; left -= (size_t)k_; } while (0)
    if (neg) PUT("-");
    if (ex >= -4 && ex < 16) {
        if (ex >= 0) {
            for (int i = 0; i <= ex; i++) PUT("%c", i < nd ? dig[i] : '0');
            PUT(".");
            if (nd > ex + 1) PUT("%s", dig + ex + 1);
            else PUT("0");
        } else {
            PUT("0.");
            for (int i = 0; i < -ex - 1; i++) PUT("0");
            PUT("%s", dig);
        }
    } else {
        PUT("%c", dig[0]);
        if (nd > 1) PUT(".%s", dig + 1);
        PUT("e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
    }
#undef PUT
}

static int vrepr(R *r, buf *b, const ct_val *v, int depth);
static int vtostr(R *r, buf *b, const ct_val *v, int depth) {
    char t[48];
    switch (v->t) {
    case V_UNDEF: return 0;
    case V_NONE: return bputs(r, b, "None");
    case V_BOOL: return bputs(r, b, v->u.i ? "True" : "False");
    case V_INT: snprintf(t, sizeof t, "%lld", (long long)v->u.i); return bputs(r, b, t);
    case V_FLOAT: fmt_float(v->u.f, t, sizeof t); return bputs(r, b, t);
    case V_STR: return bput(r, b, v->u.s.p, v->u.s.n);
    case V_LIST:
    case V_DICT: return vrepr(r, b, v, depth);
    case V_NS: return bputs(r, b, "<Namespace>");
    case V_MACRO: return bputs(r, b, "<Macro>");
    default: return bputs(r, b, "<LoopContext>");
    }
}
static int vrepr(R *r, buf *b, const ct_val *v, int depth) {
    if (depth > CT_MAX_DEPTH) return rerr(r, 0, 0, QN_ERR_FORMAT, "value nested too deeply");
    if (v->t == V_STR) {
        const char *p = v->u.s.p;
        size_t n = v->u.s.n;
        char q = (memchr(p, '\'', n) && !memchr(p, '"', n)) ? '"' : '\'';
        if (bput(r, b, &q, 1)) return -1;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            char e[8];
            const char *s = NULL;
            if (c == '\\') s = "\\\\";
            else if (c == (unsigned char)q) s = q == '\'' ? "\\'" : "\\\"";
            else if (c == '\n') s = "\\n";
            else if (c == '\r') s = "\\r";
            else if (c == '\t') s = "\\t";
            else if (c < 0x20 || c == 0x7f) { snprintf(e, sizeof e, "\\x%02x", c); s = e; }
            if (s ? bputs(r, b, s) : bput(r, b, p + i, 1)) return -1;
        }
        return bput(r, b, &q, 1);
    }
    if (v->t == V_LIST) {
        if (bputs(r, b, "[")) return -1;
        for (size_t i = 0; i < v->u.l->n; i++)
            if ((i && bputs(r, b, ", ")) || vrepr(r, b, &v->u.l->v[i], depth + 1)) return -1;
        return bputs(r, b, "]");
    }
    if (v->t == V_DICT) {
        if (bputs(r, b, "{")) return -1;
        for (size_t i = 0; i < v->u.d->n; i++)
            if ((i && bputs(r, b, ", ")) || vrepr(r, b, &v->u.d->k[i], depth + 1) || bputs(r, b, ": ") ||
                vrepr(r, b, &v->u.d->v[i], depth + 1))
                return -1;
        return bputs(r, b, "}");
    }
    if (v->t == V_UNDEF) return bputs(r, b, "Undefined");
    return vtostr(r, b, v, depth);
}
static int tostr_val(R *r, const ct_val *v, ct_val *out) {
    if (v->t == V_STR) { *out = *v; return 0; }
    buf b = {0};
    if (vtostr(r, &b, v, 0)) { bfree(r, &b); return -1; }
    return vstr_buf(r, &b, out);
}

/* ---- tojson (Python json.dumps) ---- */

typedef struct {
    const char *indent; /* NULL: none */
    size_t indent_n;
    const char *item_sep, *key_sep;
    int ensure_ascii, sort_keys;
} jopts;

static int json_str(R *r, buf *b, const char *p, size_t n, int ascii) {
    if (bputs(r, b, "\"")) return -1;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        char e[16];
        const char *s = NULL;
        size_t adv = 1;
        if (c == '"') s = "\\\"";
        else if (c == '\\') s = "\\\\";
        else if (c == '\n') s = "\\n";
        else if (c == '\r') s = "\\r";
        else if (c == '\t') s = "\\t";
        else if (c == '\b') s = "\\b";
        else if (c == '\f') s = "\\f";
        else if (c < 0x20 || (ascii && c == 0x7f)) { snprintf(e, sizeof e, "\\u%04x", c); s = e; }
        else if (ascii && c >= 0x80) {
            int32_t cp = u8dec(p, n, i, &adv);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else snprintf(e, sizeof e, "\\u%04x", cp);
            s = e;
        }
        if (s ? bputs(r, b, s) : bput(r, b, p + i, 1)) return -1;
        i += adv;
    }
    return bputs(r, b, "\"");
}
static int json_nl(R *r, buf *b, const jopts *o, int level) {
    if (bputs(r, b, "\n")) return -1;
    for (int i = 0; i < level; i++)
        if (bput(r, b, o->indent, o->indent_n)) return -1;
    return 0;
}
static int json_key(R *r, buf *b, const ct_val *k, const jopts *o, int line, int col) {
    char t[48];
    switch (k->t) {
    case V_STR: return json_str(r, b, k->u.s.p, k->u.s.n, o->ensure_ascii);
    case V_BOOL: return json_str(r, b, k->u.i ? "true" : "false", k->u.i ? 4 : 5, 0);
    case V_NONE: return json_str(r, b, "null", 4, 0);
    case V_INT: snprintf(t, sizeof t, "%lld", (long long)k->u.i); return json_str(r, b, t, strlen(t), 0);
    case V_FLOAT: fmt_float(k->u.f, t, sizeof t); return json_str(r, b, t, strlen(t), 0);
    default: return rerr(r, line, col, QN_ERR_FORMAT, "tojson: keys must be str, int, float, bool or None, not %s", tname(k));
    }
}
static int json_cmpkeys(const void *a, const void *b) {
    const ct_val *x = *(const ct_val *const *)a, *y = *(const ct_val *const *)b;
    size_t n = x->u.s.n < y->u.s.n ? x->u.s.n : y->u.s.n;
    int c = memcmp(x->u.s.p, y->u.s.p, n);
    return c ? c : (x->u.s.n > y->u.s.n) - (x->u.s.n < y->u.s.n);
}
static int tojson(R *r, buf *b, const ct_val *v, const jopts *o, int level, int line, int col) {
    char t[48];
    if (level > CT_MAX_DEPTH) return rerr(r, line, col, QN_ERR_FORMAT, "tojson: value nested too deeply");
    switch (v->t) {
    case V_NONE: return bputs(r, b, "null");
    case V_BOOL: return bputs(r, b, v->u.i ? "true" : "false");
    case V_INT: snprintf(t, sizeof t, "%lld", (long long)v->u.i); return bputs(r, b, t);
    case V_FLOAT:
        if (isnan(v->u.f)) return bputs(r, b, "NaN");
        if (isinf(v->u.f)) return bputs(r, b, v->u.f < 0 ? "-Infinity" : "Infinity");
        fmt_float(v->u.f, t, sizeof t);
        return bputs(r, b, t);
    case V_STR: return json_str(r, b, v->u.s.p, v->u.s.n, o->ensure_ascii);
    case V_LIST: {
        const ct_list *l = v->u.l;
        if (!l->n) return bputs(r, b, "[]");
        if (bputs(r, b, "[")) return -1;
        for (size_t i = 0; i < l->n; i++) {
            if (i && bputs(r, b, o->item_sep)) return -1;
            if (o->indent && json_nl(r, b, o, level + 1)) return -1;
            if (tojson(r, b, &l->v[i], o, level + 1, line, col)) return -1;
        }
        if (o->indent && json_nl(r, b, o, level)) return -1;
        return bputs(r, b, "]");
    }
    case V_DICT: {
        const ct_dict *d = v->u.d;
        if (!d->n) return bputs(r, b, "{}");
        size_t *ord = ra(r, d->n * sizeof(size_t));
        if (!ord) return -1;
        for (size_t i = 0; i < d->n; i++) ord[i] = i;
        if (o->sort_keys) {
            const ct_val **ks = ra(r, d->n * sizeof(ct_val *));
            if (!ks) return -1;
            for (size_t i = 0; i < d->n; i++) {
                if (d->k[i].t != V_STR) return rerr(r, line, col, QN_ERR_UNSUPPORTED, "tojson: sort_keys needs string keys");
                ks[i] = &d->k[i];
            }
            qsort(ks, d->n, sizeof *ks, json_cmpkeys);
            for (size_t i = 0; i < d->n; i++) ord[i] = (size_t)(ks[i] - d->k);
        }
        if (bputs(r, b, "{")) return -1;
        for (size_t j = 0; j < d->n; j++) {
            size_t i = ord[j];
            if (j && bputs(r, b, o->item_sep)) return -1;
            if (o->indent && json_nl(r, b, o, level + 1)) return -1;
            if (json_key(r, b, &d->k[i], o, line, col) || bputs(r, b, o->key_sep) ||
                tojson(r, b, &d->v[i], o, level + 1, line, col))
                return -1;
        }
        if (o->indent && json_nl(r, b, o, level)) return -1;
        return bputs(r, b, "}");
    }
    default: return rerr(r, line, col, QN_ERR_FORMAT, "tojson: object of type %s is not JSON serializable", tname(v));
    }
}

/* ---------------- scopes ---------------- */

static scope *newscope(R *r, scope *parent) {
    scope *s = ra(r, sizeof *s);
    if (s) s->parent = parent;
    return s;
}
static int lookup(const scope *s, const char *name, ct_val *out) {
    size_t nl = strlen(name);
    for (; s; s = s->parent) {
        size_t at;
        if (dfind_s(&s->vars, name, nl, &at)) { *out = s->vars.v[at]; return 1; }
    }
    *out = V(V_UNDEF);
    return 0;
}

/* ---------------- evaluation ---------------- */

static int ev(R *r, scope *s, const ct_expr *e, ct_val *out);
static int exec_body(R *r, scope *s, const ct_body *b, buf *o);

static int step(R *r, int line, int col) {
    if (++r->steps > CT_MAX_STEPS) return rerr(r, line, col, QN_ERR_NOMEM, "template exceeds 5e7 evaluation steps");
    return 0;
}

static int iter_list(R *r, const ct_expr *at, const ct_val *v, const ct_list **out) {
    static const ct_list empty = {0};
    if (v->t == V_LIST) { *out = v->u.l; return 0; }
    if (v->t == V_UNDEF) { *out = &empty; return 0; }
    if (v->t == V_DICT) {
        ct_list *l = newlist(r, v->u.d->n);
        if (!l) return -1;
        for (size_t i = 0; i < v->u.d->n; i++) l->v[l->n++] = v->u.d->k[i];
        *out = l;
        return 0;
    }
    if (v->t == V_STR) {
        size_t nc;
        size_t *o = cpoffs(r, v->u.s.p, v->u.s.n, &nc);
        ct_list *l = o ? newlist(r, nc) : NULL;
        if (!l) return -1;
        for (size_t i = 0; i < nc; i++) l->v[l->n++] = vstr_ref(v->u.s.p + o[i], o[i + 1] - o[i]);
        *out = l;
        return 0;
    }
    return EERR(r, at, "'%s' object is not iterable", tname(v));
}

static int getattr_v(R *r, const ct_expr *at, const ct_val *o, const char *name, ct_val *out) {
    size_t at_i;
    size_t nl = strlen(name);
    switch (o->t) {
    case V_UNDEF: return EERR(r, at, "undefined value has no attribute '%s'", name);
    case V_DICT:
    case V_NS:
        *out = dfind_s(o->u.d, name, nl, &at_i) ? o->u.d->v[at_i] : V(V_UNDEF);
        return 0;
    case V_LOOP: {
        const ct_loop *lp = o->u.lp;
        int64_t i = (int64_t)lp->i, n = (int64_t)lp->items->n;
        if (!strcmp(name, "index")) *out = vint(i + 1);
        else if (!strcmp(name, "index0")) *out = vint(i);
        else if (!strcmp(name, "revindex")) *out = vint(n - i);
        else if (!strcmp(name, "revindex0")) *out = vint(n - i - 1);
        else if (!strcmp(name, "first")) *out = vbool(i == 0);
        else if (!strcmp(name, "last")) *out = vbool(i == n - 1);
        else if (!strcmp(name, "length")) *out = vint(n);
        else if (!strcmp(name, "depth")) *out = vint(lp->depth);
        else if (!strcmp(name, "depth0")) *out = vint(lp->depth - 1);
        else if (!strcmp(name, "previtem")) *out = i > 0 ? lp->items->v[i - 1] : V(V_UNDEF);
        else if (!strcmp(name, "nextitem")) *out = i + 1 < n ? lp->items->v[i + 1] : V(V_UNDEF);
        else *out = V(V_UNDEF);
        return 0;
    }
    default: *out = V(V_UNDEF); return 0;
    }
}

static int getitem_v(R *r, const ct_expr *at, const ct_val *o, const ct_val *k, ct_val *out) {
    if (o->t == V_UNDEF) return EERR(r, at, "undefined value is not subscriptable");
    if (o->t == V_DICT || o->t == V_NS) {
        size_t i;
        *out = dfind(o->u.d, k, &i) ? o->u.d->v[i] : V(V_UNDEF);
        return 0;
    }
    if (o->t == V_LOOP && k->t == V_STR) return getattr_v(r, at, o, k->u.s.p, out);
    if ((o->t == V_LIST || o->t == V_STR) && (k->t == V_INT || k->t == V_BOOL)) {
        int64_t i = k->u.i;
        if (o->t == V_LIST) {
            int64_t n = (int64_t)o->u.l->n;
            if (i < 0) i += n;
            *out = (i >= 0 && i < n) ? o->u.l->v[i] : V(V_UNDEF);
            return 0;
        }
        size_t nc;
        size_t *of = cpoffs(r, o->u.s.p, o->u.s.n, &nc);
        if (!of) return -1;
        if (i < 0) i += (int64_t)nc;
        *out = (i >= 0 && i < (int64_t)nc) ? vstr_ref(o->u.s.p + of[i], of[i + 1] - of[i]) : V(V_UNDEF);
        return 0;
    }
    *out = V(V_UNDEF);
    return 0;
}

static int slice_v(R *r, const ct_expr *e, const ct_val *o, const ct_val *sv, ct_val *out) {
    int64_t idx[3];
    int has[3];
    for (int i = 0; i < 3; i++) {
        has[i] = sv[i].t != V_UNDEF && sv[i].t != V_NONE;
        if (has[i] && sv[i].t != V_INT && sv[i].t != V_BOOL) return EERR(r, e, "slice indices must be integers");
        idx[i] = has[i] ? sv[i].u.i : 0;
    }
    int64_t stp = has[2] ? idx[2] : 1;
    if (stp == 0) return EERR(r, e, "slice step cannot be zero");
    size_t nc = 0, *of = NULL;
    if (o->t == V_STR) {
        if (!(of = cpoffs(r, o->u.s.p, o->u.s.n, &nc))) return -1;
    } else if (o->t == V_LIST) nc = o->u.l->n;
    else if (o->t == V_UNDEF) return EERR(r, e, "undefined value is not subscriptable");
    else return EERR(r, e, "'%s' object cannot be sliced", tname(o));
    int64_t L = (int64_t)nc, st, en;
    if (!has[0]) st = stp < 0 ? L - 1 : 0;
    else {
        st = idx[0];
        if (st < 0) { st += L; if (st < 0) st = stp < 0 ? -1 : 0; }
        else if (st >= L) st = stp < 0 ? L - 1 : L;
    }
    if (!has[1]) en = stp < 0 ? -1 : L;
    else {
        en = idx[1];
        if (en < 0) { en += L; if (en < 0) en = stp < 0 ? -1 : 0; }
        else if (en >= L) en = stp < 0 ? L - 1 : L;
    }
    int64_t cnt = 0;
    if (stp > 0 && en > st) cnt = (en - st - 1) / stp + 1;
    if (stp < 0 && st > en) cnt = (st - en - 1) / (-stp) + 1;
    if (o->t == V_LIST) {
        ct_list *l = newlist(r, (size_t)cnt);
        if (!l) return -1;
        for (int64_t i = 0, j = st; i < cnt; i++, j += stp) l->v[l->n++] = o->u.l->v[j];
        *out = vlist(l);
        return 0;
    }
    if (stp == 1) { *out = vstr_ref(o->u.s.p + of[st], cnt ? of[en] - of[st] : 0); return 0; }
    buf b = {0};
    for (int64_t i = 0, j = st; i < cnt; i++, j += stp)
        if (bput(r, &b, o->u.s.p + of[j], of[j + 1] - of[j])) { bfree(r, &b); return -1; }
    return vstr_buf(r, &b, out);
}

static int contains(R *r, const ct_expr *e, const ct_val *x, const ct_val *c, int *res) {
    if (c->t == V_STR) {
        if (x->t != V_STR) return EERR(r, e, "'in <string>' requires string as left operand, not %s", tname(x));
        *res = x->u.s.n == 0 || memmem(c->u.s.p, c->u.s.n, x->u.s.p, x->u.s.n) != NULL;
        return 0;
    }
    if (c->t == V_LIST) {
        *res = 0;
        for (size_t i = 0; i < c->u.l->n && !*res; i++) *res = veq(x, &c->u.l->v[i]);
        return 0;
    }
    if (c->t == V_DICT) {
        size_t at;
        *res = dfind(c->u.d, x, &at);
        return 0;
    }
    if (c->t == V_UNDEF) { *res = 0; return 0; }
    return EERR(r, e, "argument of type '%s' is not iterable", tname(c));
}

static int compare(R *r, const ct_expr *e, int op, const ct_val *a, const ct_val *b, int *res) {
    if (op == OP_EQ) { *res = veq(a, b); return 0; }
    if (op == OP_NE) { *res = !veq(a, b); return 0; }
    if (op == OP_IN || op == OP_NOTIN) {
        if (contains(r, e, a, b, res)) return -1;
        if (op == OP_NOTIN) *res = !*res;
        return 0;
    }
    int c;
    if (is_num(a) && is_num(b)) {
        if (a->t != V_FLOAT && b->t != V_FLOAT) c = (a->u.i > b->u.i) - (a->u.i < b->u.i);
        else c = (numf(a) > numf(b)) - (numf(a) < numf(b));
    } else if (a->t == V_STR && b->t == V_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        c = memcmp(a->u.s.p, b->u.s.p, n);
        if (!c) c = (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
    } else return EERR(r, e, "'<' not supported between %s and %s", tname(a), tname(b));
    *res = op == '<' ? c < 0 : op == '>' ? c > 0 : op == OP_LE ? c <= 0 : c >= 0;
    return 0;
}

static int64_t floordiv_i(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static int binop(R *r, const ct_expr *e, int op, const ct_val *a, const ct_val *b, ct_val *out) {
    if (op == '~') {
        buf bb = {0};
        if (vtostr(r, &bb, a, 0) || vtostr(r, &bb, b, 0)) { bfree(r, &bb); return -1; }
        return vstr_buf(r, &bb, out);
    }
    if (op == '+' && a->t == V_STR && b->t == V_STR) {
        size_t n = a->u.s.n + b->u.s.n;
        char *d = ra(r, n + 1);
        if (!d) return -1;
        memcpy(d, a->u.s.p, a->u.s.n);
        memcpy(d + a->u.s.n, b->u.s.p, b->u.s.n);
        *out = vstr_ref(d, n);
        return 0;
    }
    if (op == '+' && a->t == V_LIST && b->t == V_LIST) {
        ct_list *l = newlist(r, a->u.l->n + b->u.l->n);
        if (!l) return -1;
        for (size_t i = 0; i < a->u.l->n; i++) l->v[l->n++] = a->u.l->v[i];
        for (size_t i = 0; i < b->u.l->n; i++) l->v[l->n++] = b->u.l->v[i];
        *out = vlist(l);
        return 0;
    }
    if (op == '*' && ((a->t == V_STR && (b->t == V_INT || b->t == V_BOOL)) || (b->t == V_STR && (a->t == V_INT || a->t == V_BOOL)))) {
        const ct_val *s = a->t == V_STR ? a : b;
        int64_t k = a->t == V_STR ? b->u.i : a->u.i;
        if (k <= 0) { *out = vstr_ref("", 0); return 0; }
        if (s->u.s.n && (uint64_t)k > CT_MAX_MEM / s->u.s.n) return oom(r);
        size_t n = s->u.s.n * (size_t)k;
        char *d = ra(r, n + 1);
        if (!d) return -1;
        for (int64_t i = 0; i < k; i++) memcpy(d + (size_t)i * s->u.s.n, s->u.s.p, s->u.s.n);
        *out = vstr_ref(d, n);
        return 0;
    }
    if (!is_num(a) || !is_num(b)) {
        static const char *const nm[] = {"+", "-", "*", "/", "//", "%", "**"};
        int k = op == '+' ? 0 : op == '-' ? 1 : op == '*' ? 2 : op == '/' ? 3 : op == OP_FLOORDIV ? 4 : op == '%' ? 5 : 6;
        return EERR(r, e, "unsupported operand types for %s: %s and %s", nm[k], tname(a), tname(b));
    }
    int fl = a->t == V_FLOAT || b->t == V_FLOAT;
    if (!fl) {
        int64_t x = a->u.i, y = b->u.i, z;
        switch (op) {
        case '+': if (__builtin_add_overflow(x, y, &z)) goto ovf; *out = vint(z); return 0;
        case '-': if (__builtin_sub_overflow(x, y, &z)) goto ovf; *out = vint(z); return 0;
        case '*': if (__builtin_mul_overflow(x, y, &z)) goto ovf; *out = vint(z); return 0;
        case '/': if (!y) goto div0; *out = vfloat((double)x / (double)y); return 0;
        case OP_FLOORDIV:
            if (!y) goto div0;
            if (x == INT64_MIN && y == -1) goto ovf;
            *out = vint(floordiv_i(x, y));
            return 0;
        case '%':
            if (!y) goto div0;
            if (y == -1) { *out = vint(0); return 0; }
            z = x % y;
            if (z && ((z < 0) != (y < 0))) z += y;
            *out = vint(z);
            return 0;
        default: /* ** */
            if (y < 0) { *out = vfloat(pow((double)x, (double)y)); return 0; }
            z = 1;
            for (int64_t i = 0; i < y; i++) {
                if (__builtin_mul_overflow(z, x, &z)) goto ovf;
                if (z == 0 || z == 1) break;
                if (z == -1) { z = (y % 2) ? -1 : 1; break; }
            }
            *out = vint(z);
            return 0;
        }
    }
    double x = numf(a), y = numf(b);
    switch (op) {
    case '+': *out = vfloat(x + y); return 0;
    case '-': *out = vfloat(x - y); return 0;
    case '*': *out = vfloat(x * y); return 0;
    case '/': if (y == 0) goto div0; *out = vfloat(x / y); return 0;
    case OP_FLOORDIV: if (y == 0) goto div0; *out = vfloat(floor(x / y)); return 0;
    case '%': {
        if (y == 0) goto div0;
        double m = fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        *out = vfloat(m);
        return 0;
    }
    default: *out = vfloat(pow(x, y)); return 0;
    }
ovf:
    return EERR(r, e, "integer overflow");
div0:
    return EERR(r, e, "division by zero");
}

/* ---- tests ---- */

static int apply_test(R *r, const ct_expr *e, const char *name, const ct_val *v, const ct_val *args, int nargs, int *res) {
    const ct_val *a0 = nargs > 0 ? &args[0] : NULL;
#define NEED1 do { if (!a0) return EERR(r, e, "test '%s' needs an argument", name); } while (0)
    if (!strcmp(name, "defined")) *res = v->t != V_UNDEF;
    else if (!strcmp(name, "undefined")) *res = v->t == V_UNDEF;
    else if (!strcmp(name, "none")) *res = v->t == V_NONE;
    else if (!strcmp(name, "string")) *res = v->t == V_STR;
    else if (!strcmp(name, "number")) *res = is_num(v);
    else if (!strcmp(name, "integer")) *res = v->t == V_INT;
    else if (!strcmp(name, "float")) *res = v->t == V_FLOAT;
    else if (!strcmp(name, "boolean")) *res = v->t == V_BOOL;
    else if (!strcmp(name, "true")) *res = v->t == V_BOOL && v->u.i;
    else if (!strcmp(name, "false")) *res = v->t == V_BOOL && !v->u.i;
    else if (!strcmp(name, "mapping")) *res = v->t == V_DICT;
    else if (!strcmp(name, "iterable")) *res = v->t == V_LIST || v->t == V_DICT || v->t == V_STR || v->t == V_UNDEF;
    else if (!strcmp(name, "sequence")) *res = v->t == V_LIST || v->t == V_DICT || v->t == V_STR;
    else if (!strcmp(name, "callable")) *res = v->t == V_MACRO;
    else if (!strcmp(name, "odd") || !strcmp(name, "even")) {
        if (v->t != V_INT && v->t != V_BOOL) return EERR(r, e, "test '%s' needs an integer", name);
        *res = (v->u.i % 2 != 0) == (name[0] == 'o');
    } else if (!strcmp(name, "divisibleby")) {
        NEED1;
        if ((v->t != V_INT && v->t != V_BOOL) || (a0->t != V_INT && a0->t != V_BOOL) || a0->u.i == 0)
            return EERR(r, e, "test 'divisibleby' needs non-zero integers");
        *res = a0->u.i == -1 || v->u.i % a0->u.i == 0;
    } else if (!strcmp(name, "sameas")) {
        NEED1;
        if (v->t != a0->t) *res = 0;
        else if (v->t == V_LIST) *res = v->u.l == a0->u.l;
        else if (v->t == V_DICT || v->t == V_NS) *res = v->u.d == a0->u.d;
        else *res = veq(v, a0);
    } else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        if (v->t != V_STR) { *res = 0; return 0; }
        ct_val c;
        if (scase(r, v, name[0] == 'u', &c)) return -1;
        *res = veq(&c, v);
    } else {
        static const struct { const char *n; int op; } cmp[] = {
            {"eq", OP_EQ}, {"equalto", OP_EQ}, {"==", OP_EQ}, {"ne", OP_NE}, {"!=", OP_NE},
            {"lt", '<'}, {"lessthan", '<'}, {"<", '<'}, {"le", OP_LE}, {"<=", OP_LE},
            {"gt", '>'}, {"greaterthan", '>'}, {">", '>'}, {"ge", OP_GE}, {">=", OP_GE}, {"in", OP_IN}};
        for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++)
            if (!strcmp(name, cmp[i].n)) {
                NEED1;
                return compare(r, e, cmp[i].op, v, a0, res);
            }
        return rerr(r, e->line, e->col, QN_ERR_UNSUPPORTED, "unsupported test '%s'", name);
    }
#undef NEED1
    return 0;
}

/* ---- call arguments ---- */

typedef struct {
    ct_val *a;
    int n;
    const char **kn;
    ct_val *kv;
    int nk;
} args_t;

static int eval_args(R *r, scope *s, const ct_expr *e, args_t *A) {
    memset(A, 0, sizeof *A);
    if (e->nargs) {
        if (!(A->a = ra(r, (size_t)e->nargs * sizeof(ct_val)))) return -1;
        for (int i = 0; i < e->nargs; i++)
            if (ev(r, s, e->args[i], &A->a[i])) return -1;
    }
    if (e->nkw) {
        if (!(A->kv = ra(r, (size_t)e->nkw * sizeof(ct_val)))) return -1;
        for (int i = 0; i < e->nkw; i++)
            if (ev(r, s, e->kwv[i], &A->kv[i])) return -1;
    }
    A->n = e->nargs;
    A->kn = e->kwn;
    A->nk = e->nkw;
    return 0;
}
/* positional i, else keyword `name`, else NULL; rejects unknown keywords via check_kw */
static const ct_val *arg(const args_t *A, int i, const char *name) {
    if (i >= 0 && i < A->n) return &A->a[i];
    for (int k = 0; name && k < A->nk; k++)
        if (!strcmp(A->kn[k], name)) return &A->kv[k];
    return NULL;
}
static int check_args(R *r, const ct_expr *e, const char *what, const args_t *A, int maxpos, const char *const *kw) {
    if (A->n > maxpos) return EERR(r, e, "%s: too many arguments", what);
    for (int k = 0; k < A->nk; k++) {
        int ok = 0;
        for (int j = 0; kw && kw[j]; j++) ok |= !strcmp(A->kn[k], kw[j]);
        if (!ok) return EERR(r, e, "%s: unexpected keyword argument '%s'", what, A->kn[k]);
    }
    return 0;
}
static int want_str(R *r, const ct_expr *e, const char *what, const ct_val *v) {
    if (!v || v->t != V_STR) return EERR(r, e, "%s: expected a string argument, got %s", what, v ? tname(v) : "nothing");
    return 0;
}

/* ---- filters ---- */

static int apply_filter(R *r, scope *s, const ct_expr *e, const char *name, const ct_val *v, const args_t *A, ct_val *out);

static int f_tojson(R *r, const ct_expr *e, const ct_val *v, const args_t *A, ct_val *out) {
    static const char *const kw[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
    if (check_args(r, e, "tojson", A, 0, kw)) return -1;
    jopts o = {NULL, 0, ", ", ": ", 0, 0};
    const ct_val *x;
    char spaces[64];
    if ((x = arg(A, -1, "ensure_ascii"))) o.ensure_ascii = truthy(x);
    if ((x = arg(A, -1, "sort_keys"))) o.sort_keys = truthy(x);
    if ((x = arg(A, -1, "indent")) && x->t != V_NONE) {
        if (x->t == V_STR) { o.indent = x->u.s.p; o.indent_n = x->u.s.n; }
        else if (x->t == V_INT) {
            int64_t k = x->u.i < 0 ? 0 : x->u.i > 63 ? 63 : x->u.i;
            memset(spaces, ' ', (size_t)k);
            spaces[k] = 0;
            o.indent = spaces;
            o.indent_n = (size_t)k;
        } else return EERR(r, e, "tojson: indent must be an int or a string");
        o.item_sep = ",";
    }
    char *seps[2] = {0};
    if ((x = arg(A, -1, "separators")) && x->t != V_NONE) {
        if (x->t != V_LIST || x->u.l->n != 2 || x->u.l->v[0].t != V_STR || x->u.l->v[1].t != V_STR)
            return EERR(r, e, "tojson: separators must be a pair of strings");
        for (int i = 0; i < 2; i++) {
            if (!(seps[i] = ra(r, x->u.l->v[i].u.s.n + 1))) return -1;
            memcpy(seps[i], x->u.l->v[i].u.s.p, x->u.l->v[i].u.s.n);
        }
        o.item_sep = seps[0];
        o.key_sep = seps[1];
    }
    buf b = {0};
    if (tojson(r, &b, v, &o, 0, e->line, e->col)) { bfree(r, &b); return -1; }
    return vstr_buf(r, &b, out);
}

static int f_join(R *r, const ct_expr *e, const ct_val *v, const args_t *A, ct_val *out) {
    static const char *const kw[] = {"d", "attribute", NULL};
    if (check_args(r, e, "join", A, 2, kw)) return -1;
    const ct_val *sep = arg(A, 0, "d"), *attr = arg(A, 1, "attribute");
    if (sep && sep->t != V_STR && want_str(r, e, "join", sep)) return -1;
    const ct_list *l;
    if (iter_list(r, e, v, &l)) return -1;
    buf b = {0};
    for (size_t i = 0; i < l->n; i++) {
        ct_val it = l->v[i];
        if (attr && getattr_v(r, e, &it, attr->t == V_STR ? attr->u.s.p : "", &it)) goto fail;
        if ((i && sep && bput(r, &b, sep->u.s.p, sep->u.s.n)) || vtostr(r, &b, &it, 0)) goto fail;
    }
    return vstr_buf(r, &b, out);
fail:
    bfree(r, &b);
    return -1;
}

/* select / reject / selectattr / rejectattr */
static int f_select(R *r, const ct_expr *e, const char *name, const ct_val *v, const args_t *A, ct_val *out) {
    int attr = strstr(name, "attr") != NULL, rej = name[0] == 'r';
    if (check_args(r, e, name, A, 64, NULL)) return -1;
    int ti = 0;
    const char *aname = NULL;
    if (attr) {
        if (A->n < 1 || want_str(r, e, name, &A->a[0])) return -1;
        aname = A->a[0].u.s.p;
        ti = 1;
    }
    const char *test = NULL;
    if (A->n > ti) {
        if (want_str(r, e, name, &A->a[ti])) return -1;
        test = A->a[ti].u.s.p;
    }
    const ct_list *l;
    if (iter_list(r, e, v, &l)) return -1;
    ct_list *o = newlist(r, l->n);
    if (!o) return -1;
    for (size_t i = 0; i < l->n; i++) {
        ct_val it = l->v[i];
        if (aname && getattr_v(r, e, &l->v[i], aname, &it)) return -1;
        int res;
        if (test) {
            if (apply_test(r, e, test, &it, A->a + ti + 1, A->n - ti - 1, &res)) return -1;
        } else res = truthy(&it);
        if (res != rej) o->v[o->n++] = l->v[i];
    }
    *out = vlist(o);
    return 0;
}

static int f_map(R *r, scope *s, const ct_expr *e, const ct_val *v, const args_t *A, ct_val *out) {
    const ct_list *l;
    if (iter_list(r, e, v, &l)) return -1;
    ct_list *o = newlist(r, l->n);
    if (!o) return -1;
    const ct_val *attr = arg(A, -1, "attribute");
    if (attr) {
        static const char *const kw[] = {"attribute", "default", NULL};
        if (check_args(r, e, "map", A, 0, kw) || want_str(r, e, "map", attr)) return -1;
        const ct_val *def = arg(A, -1, "default");
        for (size_t i = 0; i < l->n; i++) {
            ct_val it;
            if (getattr_v(r, e, &l->v[i], attr->u.s.p, &it)) return -1;
            if (it.t == V_UNDEF && def) it = *def;
            o->v[o->n++] = it;
        }
    } else {
        if (A->n < 1 || want_str(r, e, "map", &A->a[0])) return -1;
        args_t B = *A;
        B.a++;
        B.n--;
        for (size_t i = 0; i < l->n; i++)
            if (apply_filter(r, s, e, A->a[0].u.s.p, &l->v[i], &B, &o->v[o->n++])) return -1;
    }
    *out = vlist(o);
    return 0;
}

static int s_replace(R *r, const ct_expr *e, const ct_val *v, const ct_val *old, const ct_val *nw, const ct_val *cnt, ct_val *out) {
    if (want_str(r, e, "replace", old) || want_str(r, e, "replace", nw)) return -1;
    int64_t max = cnt && (cnt->t == V_INT) ? cnt->u.i : -1;
    buf b = {0};
    const char *p = v->u.s.p;
    size_t n = v->u.s.n, i = 0;
    int64_t done = 0;
    if (old->u.s.n == 0) { /* Python inserts between every code point */
        for (;;) {
            if ((max < 0 || done < max) && (bput(r, &b, nw->u.s.p, nw->u.s.n))) goto fail;
            done++;
            if (i >= n) break;
            size_t l = u8len(p, n, i);
            if (bput(r, &b, p + i, l)) goto fail;
            i += l;
        }
        return vstr_buf(r, &b, out);
    }
    while (i < n) {
        const char *f = (max < 0 || done < max) ? memmem(p + i, n - i, old->u.s.p, old->u.s.n) : NULL;
        if (!f) break;
        if (bput(r, &b, p + i, (size_t)(f - (p + i))) || bput(r, &b, nw->u.s.p, nw->u.s.n)) goto fail;
        i = (size_t)(f - p) + old->u.s.n;
        done++;
    }
    if (bput(r, &b, p + i, n - i)) goto fail;
    return vstr_buf(r, &b, out);
fail:
    bfree(r, &b);
    return -1;
}

static int length_of(R *r, const ct_expr *e, const ct_val *v, int64_t *n) {
    switch (v->t) {
    case V_STR: *n = (int64_t)cpcount(v->u.s.p, v->u.s.n); return 0;
    case V_LIST: *n = (int64_t)v->u.l->n; return 0;
    case V_DICT: *n = (int64_t)v->u.d->n; return 0;
    case V_UNDEF: *n = 0; return 0;
    default: return EERR(r, e, "object of type '%s' has no length", tname(v));
    }
}

static int items_of(R *r, const ct_expr *e, const ct_val *v, ct_val *out) {
    if (v->t == V_UNDEF) { *out = vlist(newlist(r, 0)); return out->u.l ? 0 : -1; }
    if (v->t != V_DICT) return EERR(r, e, "items: expected a mapping, got %s", tname(v));
    ct_list *l = newlist(r, v->u.d->n);
    if (!l) return -1;
    for (size_t i = 0; i < v->u.d->n; i++) {
        ct_list *p = newlist(r, 2);
        if (!p) return -1;
        p->v[0] = v->u.d->k[i];
        p->v[1] = v->u.d->v[i];
        p->n = 2;
        l->v[l->n++] = vlist(p);
    }
    *out = vlist(l);
    return 0;
}

static int apply_filter(R *r, scope *s, const ct_expr *e, const char *name, const ct_val *v, const args_t *A, ct_val *out) {
    if (step(r, e->line, e->col)) return -1;
    if (!strcmp(name, "tojson")) return f_tojson(r, e, v, A, out);
    if (!strcmp(name, "safe")) { *out = *v; return 0; }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        int64_t n = 0;
        if (check_args(r, e, name, A, 0, NULL) || length_of(r, e, v, &n)) return -1;
        *out = vint(n);
        return 0;
    }
    if (!strcmp(name, "join")) return f_join(r, e, v, A, out);
    if (!strcmp(name, "items")) return check_args(r, e, name, A, 0, NULL) ? -1 : items_of(r, e, v, out);
    if (!strcmp(name, "select") || !strcmp(name, "reject") || !strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
        return f_select(r, e, name, v, A, out);
    if (!strcmp(name, "map")) return f_map(r, s, e, v, A, out);
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        static const char *const kw[] = {"default_value", "boolean", NULL};
        if (check_args(r, e, name, A, 2, kw)) return -1;
        const ct_val *dv = arg(A, 0, "default_value"), *bo = arg(A, 1, "boolean");
        int use = bo && truthy(bo) ? !truthy(v) : v->t == V_UNDEF;
        *out = use ? (dv ? *dv : vstr_ref("", 0)) : *v;
        return 0;
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        if (check_args(r, e, name, A, 0, NULL)) return -1;
        const ct_list *l;
        if (iter_list(r, e, v, &l)) return -1;
        *out = l->n ? l->v[name[0] == 'f' ? 0 : l->n - 1] : V(V_UNDEF);
        return 0;
    }
    if (!strcmp(name, "list")) {
        const ct_list *l;
        if (check_args(r, e, name, A, 0, NULL) || iter_list(r, e, v, &l)) return -1;
        ct_list *o = newlist(r, l->n);
        if (!o) return -1;
        for (size_t i = 0; i < l->n; i++) o->v[o->n++] = l->v[i];
        *out = vlist(o);
        return 0;
    }
    if (!strcmp(name, "reverse")) {
        if (check_args(r, e, name, A, 0, NULL)) return -1;
        ct_val sv[3] = {V(V_UNDEF), V(V_UNDEF), vint(-1)};
        if (v->t == V_STR || v->t == V_LIST) return slice_v(r, e, v, sv, out);
        const ct_list *l;
        if (iter_list(r, e, v, &l)) return -1;
        ct_val lv = vlist((ct_list *)l);
        return slice_v(r, e, &lv, sv, out);
    }
    if (!strcmp(name, "unique")) {
        const ct_list *l;
        if (check_args(r, e, name, A, 0, NULL) || iter_list(r, e, v, &l)) return -1;
        ct_list *o = newlist(r, l->n);
        if (!o) return -1;
        for (size_t i = 0; i < l->n; i++) {
            int seen = 0;
            for (size_t j = 0; j < o->n && !seen; j++) {
                if (step(r, e->line, e->col)) return -1;
                seen = veq(&o->v[j], &l->v[i]);
            }
            if (!seen) o->v[o->n++] = l->v[i];
        }
        *out = vlist(o);
        return 0;
    }
    if (!strcmp(name, "string")) return check_args(r, e, name, A, 0, NULL) ? -1 : tostr_val(r, v, out);
    if (!strcmp(name, "int") || !strcmp(name, "float")) {
        if (check_args(r, e, name, A, 1, (const char *const[]){"default", NULL})) return -1;
        const ct_val *dv = arg(A, 0, "default");
        int isint = name[0] == 'i';
        ct_val d = dv ? *dv : (isint ? vint(0) : vfloat(0.0));
        if (v->t == V_INT || v->t == V_BOOL) *out = isint ? vint(v->u.i) : vfloat((double)v->u.i);
        else if (v->t == V_FLOAT) {
            if (isint && !(v->u.f > -9.2e18 && v->u.f < 9.2e18)) *out = d;
            else *out = isint ? vint((int64_t)v->u.f) : *v;
        } else if (v->t == V_STR) {
            char tmp[64];
            ct_val t = sstrip(v, NULL, 3);
            if (t.u.s.n == 0 || t.u.s.n >= sizeof tmp) { *out = d; return 0; }
            memcpy(tmp, t.u.s.p, t.u.s.n);
            tmp[t.u.s.n] = 0;
            char *end;
            if (isint) {
                long long x = strtoll(tmp, &end, 10);
                if (*end) {
                    double f = strtod(tmp, &end);
                    *out = (*end || !(f > -9.2e18 && f < 9.2e18)) ? d : vint((int64_t)f);
                } else *out = vint(x);
            } else {
                double f = strtod(tmp, &end);
                *out = *end ? d : vfloat(f);
            }
        } else *out = d;
        return 0;
    }
    if (!strcmp(name, "abs")) {
        if (check_args(r, e, name, A, 0, NULL)) return -1;
        if (v->t == V_FLOAT) *out = vfloat(fabs(v->u.f));
        else if (v->t == V_INT || v->t == V_BOOL) {
            if (v->u.i == INT64_MIN) return EERR(r, e, "integer overflow");
            *out = vint(v->u.i < 0 ? -v->u.i : v->u.i);
        } else return EERR(r, e, "abs: bad operand type %s", tname(v));
        return 0;
    }
    /* string filters */
    ct_val sv;
    if (!strcmp(name, "trim") || !strcmp(name, "lower") || !strcmp(name, "upper") || !strcmp(name, "capitalize") ||
        !strcmp(name, "title") || !strcmp(name, "replace")) {
        if (v->t == V_UNDEF) sv = vstr_ref("", 0);
        else if (tostr_val(r, v, &sv)) return -1;
        if (!strcmp(name, "trim")) {
            if (check_args(r, e, name, A, 1, (const char *const[]){"chars", NULL})) return -1;
            const ct_val *ch = arg(A, 0, "chars");
            if (ch && ch->t == V_NONE) ch = NULL;
            if (ch && want_str(r, e, name, ch)) return -1;
            *out = sstrip(&sv, ch, 3);
            return 0;
        }
        if (!strcmp(name, "replace")) {
            if (check_args(r, e, name, A, 3, (const char *const[]){"old", "new", "count", NULL})) return -1;
            return s_replace(r, e, &sv, arg(A, 0, "old"), arg(A, 1, "new"), arg(A, 2, "count"), out);
        }
        if (check_args(r, e, name, A, 0, NULL)) return -1;
        int mode = name[0] == 'l' ? 0 : name[0] == 'u' ? 1 : name[0] == 'c' ? 2 : 3;
        if (mode == 2) { /* first upper, rest lower */
            ct_val lo;
            if (scase(r, &sv, 0, &lo) || scase(r, &lo, 2, out)) return -1;
            return 0;
        }
        return scase(r, &sv, mode, out);
    }
    return rerr(r, e->line, e->col, QN_ERR_UNSUPPORTED, "unsupported filter '%s'", name);
}

/* ---- methods of str and dict ---- */

static int s_split(R *r, const ct_expr *e, const ct_val *v, const args_t *A, int rev, ct_val *out) {
    static const char *const kw[] = {"sep", "maxsplit", NULL};
    if (check_args(r, e, rev ? "rsplit" : "split", A, 2, kw)) return -1;
    const ct_val *sep = arg(A, 0, "sep"), *ms = arg(A, 1, "maxsplit");
    if (sep && sep->t == V_NONE) sep = NULL;
    if (sep && want_str(r, e, "split", sep)) return -1;
    if (sep && sep->u.s.n == 0) return EERR(r, e, "split: empty separator");
    int64_t max = ms && ms->t == V_INT ? ms->u.i : -1;
    ct_list *l = newlist(r, 0);
    if (!l) return -1;
    const char *p = v->u.s.p;
    size_t n = v->u.s.n;
    if (sep) {
        const char *q = sep->u.s.p;
        size_t qn = sep->u.s.n;
        if (!rev) {
            size_t i = 0;
            int64_t k = 0;
            for (;;) {
                const char *f = (max < 0 || k < max) ? memmem(p + i, n - i, q, qn) : NULL;
                if (!f) break;
                if (lpush(r, l, vstr_ref(p + i, (size_t)(f - p) - i))) return -1;
                i = (size_t)(f - p) + qn;
                k++;
            }
            if (lpush(r, l, vstr_ref(p + i, n - i))) return -1;
        } else {
            size_t end = n;
            int64_t k = 0;
            while ((max < 0 || k < max) && end >= qn) {
                size_t j = end - qn;
                int found = 0;
                for (;; j--) {
                    if (!memcmp(p + j, q, qn)) { found = 1; break; }
                    if (j == 0) break;
                }
                if (!found) break;
                if (lpush(r, l, vstr_ref(p + j + qn, end - j - qn))) return -1;
                end = j;
                k++;
            }
            if (lpush(r, l, vstr_ref(p, end))) return -1;
            for (size_t a = 0, b = l->n - 1; a < b; a++, b--) { ct_val t = l->v[a]; l->v[a] = l->v[b]; l->v[b] = t; }
        }
    } else { /* runs of whitespace; empty strings dropped */
        size_t i = 0;
        int64_t k = 0;
        if (rev) {
            size_t end = n;
            for (;;) {
                ct_val t = sstrip(&(ct_val){.t = V_STR, .u.s = {p, end}}, NULL, 2);
                end = t.u.s.n;
                if (!end) break;
                if (max >= 0 && k >= max) { if (lpush(r, l, vstr_ref(p, end))) return -1; break; }
                size_t j = end;
                while (j > 0) {
                    size_t st = j - 1, ln;
                    while (st > 0 && ((unsigned char)p[st] & 0xC0) == 0x80) st--;
                    if (py_space(u8dec(p, end, st, &ln))) break;
                    j = st;
                }
                if (lpush(r, l, vstr_ref(p + j, end - j))) return -1;
                end = j;
                k++;
            }
            for (size_t a = 0, b = l->n ? l->n - 1 : 0; a < b; a++, b--) { ct_val t = l->v[a]; l->v[a] = l->v[b]; l->v[b] = t; }
        } else
            for (;;) {
                size_t ln;
                while (i < n && py_space(u8dec(p, n, i, &ln))) i += ln;
                if (i >= n) break;
                if (max >= 0 && k >= max) {
                    ct_val t = sstrip(&(ct_val){.t = V_STR, .u.s = {p + i, n - i}}, NULL, 2);
                    if (lpush(r, l, t)) return -1;
                    break;
                }
                size_t j = i;
                while (j < n && !py_space(u8dec(p, n, j, &ln))) j += ln;
                if (lpush(r, l, vstr_ref(p + i, j - i))) return -1;
                i = j;
                k++;
            }
    }
    *out = vlist(l);
    return 0;
}

static int affix(R *r, const ct_expr *e, const ct_val *v, const ct_val *x, int end, int *res) {
    if (x && x->t == V_LIST) {
        *res = 0;
        for (size_t i = 0; i < x->u.l->n && !*res; i++)
            if (affix(r, e, v, &x->u.l->v[i], end, res)) return -1;
        return 0;
    }
    if (want_str(r, e, end ? "endswith" : "startswith", x)) return -1;
    size_t n = x->u.s.n;
    *res = n <= v->u.s.n && !memcmp(v->u.s.p + (end ? v->u.s.n - n : 0), x->u.s.p, n);
    return 0;
}

static int call_method(R *r, const ct_expr *e, const ct_val *o, const char *m, const args_t *A, ct_val *out, int *handled) {
    *handled = 1;
    if (o->t == V_STR) {
        if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
            if (check_args(r, e, m, A, 1, NULL)) return -1;
            const ct_val *ch = arg(A, 0, NULL);
            if (ch && ch->t == V_NONE) ch = NULL;
            if (ch && want_str(r, e, m, ch)) return -1;
            *out = sstrip(o, ch, m[0] == 'l' ? 1 : m[0] == 'r' ? 2 : 3);
            return 0;
        }
        if (!strcmp(m, "split") || !strcmp(m, "rsplit")) return s_split(r, e, o, A, m[0] == 'r', out);
        if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
            int res;
            if (check_args(r, e, m, A, 1, NULL) || affix(r, e, o, arg(A, 0, NULL), m[0] == 'e', &res)) return -1;
            *out = vbool(res);
            return 0;
        }
        if (!strcmp(m, "upper") || !strcmp(m, "lower") || !strcmp(m, "title") || !strcmp(m, "capitalize")) {
            if (check_args(r, e, m, A, 0, NULL)) return -1;
            if (m[0] == 'c') {
                ct_val lo;
                return scase(r, o, 0, &lo) || scase(r, &lo, 2, out) ? -1 : 0;
            }
            return scase(r, o, m[0] == 'l' ? 0 : m[0] == 'u' ? 1 : 3, out);
        }
        if (!strcmp(m, "replace")) {
            if (check_args(r, e, m, A, 3, NULL)) return -1;
            return s_replace(r, e, o, arg(A, 0, NULL), arg(A, 1, NULL), arg(A, 2, NULL), out);
        }
        if (!strcmp(m, "find") || !strcmp(m, "count")) {
            const ct_val *x = arg(A, 0, NULL);
            if (check_args(r, e, m, A, 1, NULL) || want_str(r, e, m, x)) return -1;
            if (m[0] == 'f') {
                const char *f = x->u.s.n ? memmem(o->u.s.p, o->u.s.n, x->u.s.p, x->u.s.n) : o->u.s.p;
                *out = vint(f ? (int64_t)cpcount(o->u.s.p, (size_t)(f - o->u.s.p)) : -1);
            } else {
                int64_t c = 0;
                if (!x->u.s.n) c = (int64_t)cpcount(o->u.s.p, o->u.s.n) + 1;
                else
                    for (size_t i = 0; i < o->u.s.n;) {
                        const char *f = memmem(o->u.s.p + i, o->u.s.n - i, x->u.s.p, x->u.s.n);
                        if (!f) break;
                        c++;
                        i = (size_t)(f - o->u.s.p) + x->u.s.n;
                    }
                *out = vint(c);
            }
            return 0;
        }
        if (!strcmp(m, "splitlines")) {
            if (check_args(r, e, m, A, 0, NULL)) return -1;
            ct_list *l = newlist(r, 0);
            if (!l) return -1;
            const char *p = o->u.s.p;
            size_t n = o->u.s.n, i = 0, st = 0;
            while (i < n) {
                if (p[i] == '\n' || p[i] == '\r') {
                    if (lpush(r, l, vstr_ref(p + st, i - st))) return -1;
                    if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') i++;
                    st = ++i;
                } else i++;
            }
            if (st < n && lpush(r, l, vstr_ref(p + st, n - st))) return -1;
            *out = vlist(l);
            return 0;
        }
    } else if (o->t == V_DICT) {
        if (!strcmp(m, "items")) return check_args(r, e, m, A, 0, NULL) ? -1 : items_of(r, e, o, out);
        if (!strcmp(m, "keys") || !strcmp(m, "values")) {
            if (check_args(r, e, m, A, 0, NULL)) return -1;
            ct_list *l = newlist(r, o->u.d->n);
            if (!l) return -1;
            for (size_t i = 0; i < o->u.d->n; i++) l->v[l->n++] = m[0] == 'k' ? o->u.d->k[i] : o->u.d->v[i];
            *out = vlist(l);
            return 0;
        }
        if (!strcmp(m, "get")) {
            if (check_args(r, e, m, A, 2, NULL) || A->n < 1) return A->n < 1 ? EERR(r, e, "get: missing key") : -1;
            size_t at;
            *out = dfind(o->u.d, &A->a[0], &at) ? o->u.d->v[at] : (A->n > 1 ? A->a[1] : V(V_NONE));
            return 0;
        }
    }
    *handled = 0;
    return 0;
}

/* ---- macros and globals ---- */

static int call_macro(R *r, const ct_expr *e, const ct_node *m, const args_t *A, ct_val *out) {
    if (r->mdepth >= CT_MAX_MACRO_DEPTH) return EERR(r, e, "macro recursion deeper than %d", CT_MAX_MACRO_DEPTH);
    if (A->n > m->nnames) return EERR(r, e, "macro '%s' takes %d arguments, %d given", m->name, m->nnames, A->n);
    scope *s = newscope(r, r->root);
    if (!s) return -1;
    for (int k = 0; k < A->nk; k++) {
        int ok = 0;
        for (int i = 0; i < m->nnames; i++) ok |= !strcmp(A->kn[k], m->names[i]);
        if (!ok) return EERR(r, e, "macro '%s' has no argument '%s'", m->name, A->kn[k]);
    }
    for (int i = 0; i < m->nnames; i++) {
        const ct_val *a = arg(A, i, m->names[i]);
        ct_val v = V(V_UNDEF);
        if (a) v = *a;
        else if (m->defaults[i] && ev(r, s, m->defaults[i], &v)) return -1;
        if (dset_s(r, &s->vars, m->names[i], v)) return -1;
    }
    buf b = {0};
    r->mdepth++;
    int rc = exec_body(r, s, &m->body, &b);
    r->mdepth--;
    if (rc < 0) { bfree(r, &b); return -1; }
    return vstr_buf(r, &b, out);
}

static int call_global(R *r, const ct_expr *e, const char *name, const args_t *A, ct_val *out) {
    if (!strcmp(name, "raise_exception")) {
        const ct_val *m = arg(A, 0, NULL);
        ct_val sv = vstr_ref("", 0);
        if (m && tostr_val(r, m, &sv)) return -1;
        return rerr(r, e->line, e->col, QN_ERR_INVALID_ARG, "raise_exception: %.*s", (int)(sv.u.s.n > 600 ? 600 : sv.u.s.n), sv.u.s.p);
    }
    if (!strcmp(name, "namespace")) {
        ct_dict *d = ra(r, sizeof *d);
        if (!d) return -1;
        for (int i = 0; i < A->n; i++) {
            if (A->a[i].t != V_DICT) return EERR(r, e, "namespace: positional arguments must be mappings");
            for (size_t j = 0; j < A->a[i].u.d->n; j++)
                if (dset(r, d, A->a[i].u.d->k[j], A->a[i].u.d->v[j])) return -1;
        }
        for (int k = 0; k < A->nk; k++)
            if (dset_s(r, d, A->kn[k], A->kv[k])) return -1;
        *out = V(V_NS);
        out->u.d = d;
        return 0;
    }
    if (!strcmp(name, "strftime_now")) {
        const ct_val *f = arg(A, 0, NULL);
        if (check_args(r, e, name, A, 1, NULL) || want_str(r, e, name, f)) return -1;
        if (f->u.s.n > 256 || memchr(f->u.s.p, 0, f->u.s.n)) return EERR(r, e, "strftime_now: bad format");
        time_t now = r->opts && r->opts->now ? (time_t)r->opts->now : time(NULL);
        struct tm tm;
        if (!localtime_r(&now, &tm)) return EERR(r, e, "strftime_now: bad time");
        char fmt[260], o[1024];
        memcpy(fmt, f->u.s.p, f->u.s.n);
        fmt[f->u.s.n] = 0;
        size_t n = fmt[0] ? strftime(o, sizeof o, fmt, &tm) : 0;
        return vstr(r, o, n, out);
    }
    if (!strcmp(name, "range")) {
        if (check_args(r, e, name, A, 3, NULL) || A->n < 1) return A->n < 1 ? EERR(r, e, "range: missing argument") : -1;
        int64_t a[3] = {0, 0, 1};
        for (int i = 0; i < A->n; i++) {
            if (A->a[i].t != V_INT && A->a[i].t != V_BOOL) return EERR(r, e, "range: arguments must be integers");
            a[i] = A->a[i].u.i;
        }
        int64_t st = A->n == 1 ? 0 : a[0], en = A->n == 1 ? a[0] : a[1], sp = A->n == 3 ? a[2] : 1;
        if (sp == 0) return EERR(r, e, "range: step must not be zero");
        double cnt = sp > 0 ? (en > st ? ((double)en - (double)st) / (double)sp : 0)
                            : (st > en ? ((double)st - (double)en) / (double)-sp : 0);
        if (cnt > CT_MAX_RANGE) return rerr(r, e->line, e->col, QN_ERR_NOMEM, "range: more than 1e6 items");
        ct_list *l = newlist(r, (size_t)ceil(cnt));
        if (!l) return -1;
        for (int64_t x = st; sp > 0 ? x < en : x > en; x += sp) l->v[l->n++] = vint(x);
        *out = vlist(l);
        return 0;
    }
    return EERR(r, e, "'%s' is undefined (not callable)", name);
}

static int ev_call(R *r, scope *s, const ct_expr *e, ct_val *out) {
    const ct_expr *c = e->a;
    args_t A;
    if (c->k == E_ATTR) {
        ct_val o;
        if (ev(r, s, c->a, &o) || eval_args(r, s, e, &A)) return -1;
        int handled;
        if (call_method(r, e, &o, c->name, &A, out, &handled)) return -1;
        if (handled) return 0;
        ct_val f;
        if (getattr_v(r, c, &o, c->name, &f)) return -1;
        if (f.t == V_MACRO) return call_macro(r, e, f.u.m, &A, out);
        return EERR(r, e, "'%s' of %s is not callable", c->name, tname(&o));
    }
    if (c->k == E_NAME) {
        ct_val f;
        int found = lookup(s, c->name, &f);
        if (eval_args(r, s, e, &A)) return -1;
        if (found && f.t == V_MACRO) return call_macro(r, e, f.u.m, &A, out);
        if (found && f.t != V_UNDEF) return EERR(r, e, "'%s' (%s) is not callable", c->name, tname(&f));
        return call_global(r, e, c->name, &A, out);
    }
    ct_val f;
    if (ev(r, s, c, &f) || eval_args(r, s, e, &A)) return -1;
    if (f.t == V_MACRO) return call_macro(r, e, f.u.m, &A, out);
    return EERR(r, e, "%s is not callable", tname(&f));
}

static int ev(R *r, scope *s, const ct_expr *e, ct_val *out) {
    if (step(r, e->line, e->col)) return -1;
    switch (e->k) {
    case E_CONST: *out = e->c; return 0;
    case E_NAME: lookup(s, e->name, out); return 0;
    case E_LIST: {
        ct_list *l = newlist(r, (size_t)e->nargs);
        if (!l) return -1;
        for (int i = 0; i < e->nargs; i++)
            if (ev(r, s, e->args[i], &l->v[l->n++])) return -1;
        *out = vlist(l);
        return 0;
    }
    case E_DICT: {
        ct_dict *d = ra(r, sizeof *d);
        if (!d) return -1;
        for (int i = 0; i + 1 < e->nargs; i += 2) {
            ct_val k, v;
            if (ev(r, s, e->args[i], &k) || ev(r, s, e->args[i + 1], &v)) return -1;
            if (k.t == V_LIST || k.t == V_DICT || k.t == V_UNDEF) return EERR(r, e, "unhashable dict key (%s)", tname(&k));
            if (dset(r, d, k, v)) return -1;
        }
        *out = vdict(d);
        return 0;
    }
    case E_ATTR: {
        ct_val o;
        if (ev(r, s, e->a, &o)) return -1;
        return getattr_v(r, e, &o, e->name, out);
    }
    case E_ITEM: {
        ct_val o, k;
        if (ev(r, s, e->a, &o) || ev(r, s, e->b, &k)) return -1;
        if (getitem_v(r, e, &o, &k, out)) return -1;
        if (out->t == V_UNDEF && k.t == V_STR && (o.t == V_DICT || o.t == V_NS)) return 0;
        return 0;
    }
    case E_SLICE: {
        ct_val o, sv[3] = {V(V_UNDEF), V(V_UNDEF), V(V_UNDEF)};
        if (ev(r, s, e->a, &o)) return -1;
        if (e->b && ev(r, s, e->b, &sv[0])) return -1;
        if (e->x && ev(r, s, e->x, &sv[1])) return -1;
        if (e->args[0] && ev(r, s, e->args[0], &sv[2])) return -1;
        return slice_v(r, e, &o, sv, out);
    }
    case E_CALL: return ev_call(r, s, e, out);
    case E_FILTER: {
        ct_val v;
        args_t A;
        if (ev(r, s, e->a, &v) || eval_args(r, s, e, &A)) return -1;
        return apply_filter(r, s, e, e->name, &v, &A, out);
    }
    case E_TEST: {
        ct_val v;
        args_t A;
        int res;
        if (ev(r, s, e->a, &v) || eval_args(r, s, e, &A)) return -1;
        if (A.nk) return EERR(r, e, "test '%s': keyword arguments are not supported", e->name);
        if (apply_test(r, e, e->name, &v, A.a, A.n, &res)) return -1;
        *out = vbool(res != e->neg);
        return 0;
    }
    case E_NEG:
    case E_POS: {
        ct_val v;
        if (ev(r, s, e->a, &v)) return -1;
        if (v.t == V_FLOAT) *out = vfloat(e->k == E_NEG ? -v.u.f : v.u.f);
        else if (v.t == V_INT || v.t == V_BOOL) {
            if (e->k == E_NEG && v.u.i == INT64_MIN) return EERR(r, e, "integer overflow");
            *out = vint(e->k == E_NEG ? -v.u.i : v.u.i);
        } else return EERR(r, e, "bad operand type for unary %c: %s", e->k == E_NEG ? '-' : '+', tname(&v));
        return 0;
    }
    case E_NOT: {
        ct_val v;
        if (ev(r, s, e->a, &v)) return -1;
        *out = vbool(!truthy(&v));
        return 0;
    }
    case E_AND:
    case E_OR: {
        if (ev(r, s, e->a, out)) return -1;
        if (truthy(out) == (e->k == E_OR)) return 0;
        return ev(r, s, e->b, out);
    }
    case E_BIN: {
        ct_val a, b;
        if (ev(r, s, e->a, &a) || ev(r, s, e->b, &b)) return -1;
        if ((a.t == V_UNDEF || b.t == V_UNDEF) && e->op != '~')
            return EERR(r, e, "undefined value in arithmetic / concatenation");
        return binop(r, e, e->op, &a, &b, out);
    }
    case E_CMP: {
        ct_val a, b;
        if (ev(r, s, e->args[0], &a)) return -1;
        for (int i = 1; i < e->nargs; i++) {
            int res;
            if (ev(r, s, e->args[i], &b) || compare(r, e, e->ops[i - 1], &a, &b, &res)) return -1;
            if (!res) { *out = vbool(0); return 0; }
            a = b;
        }
        *out = vbool(1);
        return 0;
    }
    case E_COND: {
        ct_val c;
        if (ev(r, s, e->b, &c)) return -1;
        if (truthy(&c)) return ev(r, s, e->a, out);
        if (e->x) return ev(r, s, e->x, out);
        *out = V(V_UNDEF);
        return 0;
    }
    default: return EERR(r, e, "internal: bad expression");
    }
}

/* ---------------- statements ---------------- */

static int assign(R *r, scope *s, const ct_node *n, const ct_val *v) {
    if (n->nnames == 1) return dset_s(r, &s->vars, n->names[0], *v);
    if (v->t != V_LIST || v->u.l->n != (size_t)n->nnames)
        return rerr(r, n->line, n->col, QN_ERR_FORMAT, "cannot unpack %s into %d names", tname(v), n->nnames);
    for (int i = 0; i < n->nnames; i++)
        if (dset_s(r, &s->vars, n->names[i], v->u.l->v[i])) return -1;
    return 0;
}

static int exec_node(R *r, scope *s, const ct_node *n, buf *o) {
    if (step(r, n->line, n->col)) return -1;
    switch (n->k) {
    case N_TEXT: return bput(r, o, n->text, n->len);
    case N_OUT: {
        ct_val v;
        if (ev(r, s, n->e, &v)) return -1;
        return vtostr(r, o, &v, 0);
    }
    case N_IF:
        for (int i = 0; i < n->nconds; i++) {
            ct_val c;
            if (ev(r, s, n->conds[i], &c)) return -1;
            if (truthy(&c)) return exec_body(r, s, &n->bodies[i], o);
        }
        return n->has_else ? exec_body(r, s, &n->bodies[n->nconds], o) : 0;
    case N_FOR: {
        ct_val it;
        const ct_list *l;
        if (ev(r, s, n->e, &it) || iter_list(r, n->e, &it, &l)) return -1;
        scope *ls = newscope(r, s);
        if (!ls) return -1;
        if (n->filter) { /* the inline `if` filters items before loop.* counts them */
            ct_list *f = newlist(r, l->n);
            if (!f) return -1;
            for (size_t i = 0; i < l->n; i++) {
                ct_val c;
                if (assign(r, ls, n, &l->v[i]) || ev(r, ls, n->filter, &c)) return -1;
                if (truthy(&c)) f->v[f->n++] = l->v[i];
            }
            l = f;
        }
        ct_val outer;
        int depth = 1;
        if (lookup(s, "loop", &outer) && outer.t == V_LOOP) depth = outer.u.lp->depth + 1;
        ct_loop *lp = ra(r, sizeof *lp);
        if (!lp) return -1;
        lp->items = l;
        lp->depth = depth;
        ct_val lv = V(V_LOOP);
        lv.u.lp = lp;
        for (size_t i = 0; i < l->n; i++) {
            lp->i = i;
            if (step(r, n->line, n->col) || dset_s(r, &ls->vars, "loop", lv) || assign(r, ls, n, &l->v[i])) return -1;
            int rc = exec_body(r, ls, &n->body, o);
            if (rc < 0) return -1;
            if (rc == 1) break;
        }
        if (!l->n && n->els.n) return exec_body(r, s, &n->els, o);
        return 0;
    }
    case N_SET: {
        ct_val v;
        if (ev(r, s, n->e, &v)) return -1;
        if (n->attr) {
            ct_val ns;
            lookup(s, n->names[0], &ns);
            if (ns.t != V_NS) return rerr(r, n->line, n->col, QN_ERR_FORMAT, "cannot assign attribute on non-namespace object '%s'", n->names[0]);
            return dset_s(r, ns.u.d, n->attr, v);
        }
        return assign(r, s, n, &v);
    }
    case N_SETBLOCK: {
        buf b = {0};
        ct_val v;
        if (exec_body(r, s, &n->body, &b) < 0) { bfree(r, &b); return -1; }
        if (vstr_buf(r, &b, &v)) return -1;
        return dset_s(r, &s->vars, n->names[0], v);
    }
    case N_MACRO: {
        ct_val m = V(V_MACRO);
        m.u.m = n;
        return dset_s(r, &s->vars, n->name, m);
    }
    case N_BREAK: return 1;
    case N_CONTINUE: return 2;
    case N_BODY: return exec_body(r, s, &n->body, o);
    default: return rerr(r, n->line, n->col, QN_ERR_INTERNAL, "bad node");
    }
}

static int exec_body(R *r, scope *s, const ct_body *b, buf *o) {
    if (++r->depth > CT_MAX_DEPTH + CT_MAX_MACRO_DEPTH * 4) { r->depth--; return rerr(r, 0, 0, QN_ERR_NOMEM, "render nesting too deep"); }
    int rc = 0;
    for (int i = 0; i < b->n && rc == 0; i++) rc = exec_node(r, s, b->v[i], o);
    r->depth--;
    return rc;
}

/* ---------------- JSON -> values ---------------- */

static int from_json(R *r, const cJSON *j, ct_val *out, int depth) {
    if (depth > 1000) return rerr(r, 0, 0, QN_ERR_FORMAT, "messages nested too deeply");
    if (cJSON_IsNull(j)) *out = V(V_NONE);
    else if (cJSON_IsBool(j)) *out = vbool(cJSON_IsTrue(j));
    else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0) *out = vint((int64_t)d);
        else *out = vfloat(d);
    } else if (cJSON_IsString(j)) {
        const char *s = j->valuestring ? j->valuestring : "";
        *out = vstr_ref(s, strlen(s));
    } else if (cJSON_IsArray(j)) {
        ct_list *l = newlist(r, 0);
        if (!l) return -1;
        for (const cJSON *c = j->child; c; c = c->next) {
            ct_val v;
            if (from_json(r, c, &v, depth + 1) || lpush(r, l, v)) return -1;
        }
        *out = vlist(l);
    } else if (cJSON_IsObject(j)) {
        ct_dict *d = ra(r, sizeof *d);
        if (!d) return -1;
        for (const cJSON *c = j->child; c; c = c->next) {
            ct_val v;
            if (!c->string) continue;
            if (from_json(r, c, &v, depth + 1) || dset(r, d, vstr_ref(c->string, strlen(c->string)), v)) return -1;
        }
        *out = vdict(d);
    } else *out = V(V_NONE);
    return 0;
}

/* ---------------- public API ---------------- */

static char *xstrdup(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

qn_status qn_chat_template_parse(const char *text, size_t len, const char *source, qn_chat_template **out, qn_error *err) {
    if (!out || (!text && len)) return qn_error_set(err, QN_ERR_INVALID_ARG, "chat template: bad arguments");
    *out = NULL;
    qn_chat_template *t = calloc(1, sizeof *t);
    if (!t) return qn_error_set(err, QN_ERR_NOMEM, "chat template: out of memory");
    t->a.limit = CT_MAX_MEM;
    if (source && !(t->source = xstrdup(source))) {
        free(t);
        return qn_error_set(err, QN_ERR_NOMEM, "chat template: out of memory");
    }
    qn_status st = ct_parse(t, text ? text : "", len, err);
    if (st != QN_OK) {
        qn_chat_template_free(t);
        return st;
    }
    *out = t;
    return QN_OK;
}

void qn_chat_template_free(qn_chat_template *t) {
    if (!t) return;
    ct_arena_free(&t->a);
    for (int i = 0; i < t->nv; i++) { free(t->vn[i]); free(t->vv[i]); }
    free(t->vn);
    free(t->vv);
    cJSON_Delete(t->extra_tokens);
    free(t->source);
    free(t);
}

const char *qn_chat_template_source(const qn_chat_template *t) { return t && t->source ? t->source : "<template>"; }

qn_status qn_chat_template_set_var(qn_chat_template *t, const char *name, const char *value, qn_error *err) {
    if (!t || !name) return qn_error_set(err, QN_ERR_INVALID_ARG, "chat template: bad arguments");
    for (int i = 0; i < t->nv; i++)
        if (!strcmp(t->vn[i], name)) {
            if (value) {
                char *d = xstrdup(value);
                if (!d) return qn_error_set(err, QN_ERR_NOMEM, "chat template: out of memory");
                free(t->vv[i]);
                t->vv[i] = d;
            } else {
                free(t->vn[i]);
                free(t->vv[i]);
                t->vn[i] = t->vn[t->nv - 1];
                t->vv[i] = t->vv[t->nv - 1];
                t->nv--;
            }
            return QN_OK;
        }
    if (!value) return QN_OK;
    char **nn = realloc(t->vn, (size_t)(t->nv + 1) * sizeof(char *));
    if (!nn) return qn_error_set(err, QN_ERR_NOMEM, "chat template: out of memory");
    t->vn = nn;
    char **nv = realloc(t->vv, (size_t)(t->nv + 1) * sizeof(char *));
    if (!nv) return qn_error_set(err, QN_ERR_NOMEM, "chat template: out of memory");
    t->vv = nv;
    char *a = xstrdup(name), *b = xstrdup(value);
    if (!a || !b) {
        free(a);
        free(b);
        return qn_error_set(err, QN_ERR_NOMEM, "chat template: out of memory");
    }
    t->vn[t->nv] = a;
    t->vv[t->nv++] = b;
    return QN_OK;
}

const char *qn_chat_template_get_var(const qn_chat_template *t, const char *name) {
    if (!t || !name) return NULL;
    for (int i = 0; i < t->nv; i++)
        if (!strcmp(t->vn[i], name)) return t->vv[i];
    return NULL;
}

qn_status qn_chat_template_render(const qn_chat_template *t, const cJSON *messages, const qn_chat_opts *opts, char **out,
                                  size_t *out_len, qn_error *err) {
    if (!t || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "chat template: bad arguments");
    *out = NULL;
    if (out_len) *out_len = 0;
    if (messages && !cJSON_IsArray(messages))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: messages must be a JSON array", qn_chat_template_source(t));
    if (opts && opts->extra && !cJSON_IsObject(opts->extra))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: opts.extra must be a JSON object", qn_chat_template_source(t));
    R r;
    memset(&r, 0, sizeof r);
    r.t = t;
    r.opts = opts;
    r.err = err;
    r.a.limit = CT_MAX_MEM;
    buf o = {0};
    int rc = -1;
    scope *g = newscope(&r, NULL);
    if (!g) goto done;
    r.root = g;
    ct_val v;
    if (messages) {
        if (from_json(&r, messages, &v, 0)) goto done;
    } else {
        ct_list *l = newlist(&r, 0);
        if (!l) goto done;
        v = vlist(l);
    }
    if (dset_s(&r, &g->vars, "messages", v) ||
        dset_s(&r, &g->vars, "add_generation_prompt", vbool(opts && opts->add_generation_prompt)) ||
        dset_s(&r, &g->vars, "tools", V(V_NONE)) || dset_s(&r, &g->vars, "documents", V(V_NONE)))
        goto done;
    for (int i = 0; i < t->nv; i++)
        if (dset_s(&r, &g->vars, t->vn[i], vstr_ref(t->vv[i], strlen(t->vv[i])))) goto done;
    if (t->extra_tokens) {
        if (from_json(&r, t->extra_tokens, &v, 0) || dset_s(&r, &g->vars, "additional_special_tokens", v)) goto done;
    }
    if (opts && opts->enable_thinking != QN_CHAT_UNSET && dset_s(&r, &g->vars, "enable_thinking", vbool(opts->enable_thinking)))
        goto done;
    if (opts && opts->extra)
        for (const cJSON *c = opts->extra->child; c; c = c->next) {
            if (!c->string) continue;
            if (from_json(&r, c, &v, 0) || dset_s(&r, &g->vars, c->string, v)) goto done;
        }
    scope *top = newscope(&r, g); /* template-level sets shadow the inputs */
    if (!top) goto done;
    r.root = top;
    rc = exec_body(&r, top, &t->root, &o);
    if (rc > 0) rc = 0; /* break / continue outside a loop: ignored */
done:
    if (rc < 0 || r.failed) {
        if (!r.failed) oom(&r);
        bfree(&r, &o);
        ct_arena_free(&r.a);
        return r.code;
    }
    ct_arena_free(&r.a);
    if (!o.p && bput(&r, &o, "", 0)) return r.code;
    *out = o.p;
    if (out_len) *out_len = o.n;
    return QN_OK;
}

/* ---- loading from a model folder ---- */

static qn_status read_file_bounded(const char *path, size_t max, char **buf_out, size_t *len, qn_error *err) {
    *buf_out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return QN_ERR_NOT_FOUND;
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return qn_error_set(err, QN_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: file larger than %zu bytes", path, max);
    }
    char *b = malloc((size_t)st.st_size + 1);
    if (!b) {
        fclose(f);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(b, 1, (size_t)st.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n != (size_t)st.st_size) {
        free(b);
        return qn_error_set(err, QN_ERR_IO, "%s: read failed", path);
    }
    b[n] = 0;
    *buf_out = b;
    *len = n;
    return QN_OK;
}

static const char *token_str(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

qn_status qn_chat_template_load_dir(const char *dir, qn_chat_template **out, qn_error *err) {
    if (!dir || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "chat template: bad arguments");
    *out = NULL;
    size_t dl = strlen(dir);
    char *jpath = malloc(dl + 32), *cpath = malloc(dl + 32);
    if (!jpath || !cpath) {
        free(jpath);
        free(cpath);
        return qn_error_set(err, QN_ERR_NOMEM, "chat template: out of memory");
    }
    snprintf(jpath, dl + 32, "%s/chat_template.jinja", dir);
    snprintf(cpath, dl + 32, "%s/tokenizer_config.json", dir);
    char *jtext = NULL, *ctext = NULL;
    size_t jn = 0, cn = 0;
    cJSON *cfg = NULL;
    qn_chat_template *t = NULL;
    qn_status st = read_file_bounded(jpath, CT_MAX_SOURCE, &jtext, &jn, err);
    if (st != QN_OK && st != QN_ERR_NOT_FOUND) goto done;
    st = read_file_bounded(cpath, (size_t)256 << 20, &ctext, &cn, err);
    if (st != QN_OK && st != QN_ERR_NOT_FOUND) goto done;
    st = QN_OK;
    if (ctext) {
        cfg = cJSON_ParseWithLength(ctext, cn);
        if (!cfg || !cJSON_IsObject(cfg)) {
            st = qn_error_set(err, QN_ERR_FORMAT, "%s: not a JSON object", cpath);
            goto done;
        }
    }
    if (jtext) {
        st = qn_chat_template_parse(jtext, jn, jpath, &t, err);
    } else if (cfg) {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        const char *text = NULL;
        if (cJSON_IsString(ct)) text = ct->valuestring;
        else if (cJSON_IsArray(ct)) {
            for (const cJSON *c = ct->child; c; c = c->next) {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(c, "name");
                const cJSON *tx = cJSON_GetObjectItemCaseSensitive(c, "template");
                if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default") && cJSON_IsString(tx)) text = tx->valuestring;
            }
            if (!text) {
                st = qn_error_set(err, QN_ERR_FORMAT, "%s: chat_template list has no entry named 'default'", cpath);
                goto done;
            }
        } else if (ct && !cJSON_IsNull(ct)) {
            st = qn_error_set(err, QN_ERR_FORMAT, "%s: chat_template must be a string or a list", cpath);
            goto done;
        }
        if (text) st = qn_chat_template_parse(text, strlen(text), cpath, &t, err);
    }
    if (st != QN_OK || !t) goto done;
    if (cfg) {
        static const char *const names[] = {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token", NULL};
        for (int i = 0; names[i]; i++) {
            const char *v = token_str(cJSON_GetObjectItemCaseSensitive(cfg, names[i]));
            if (v && (st = qn_chat_template_set_var(t, names[i], v, err)) != QN_OK) goto done;
        }
        const cJSON *ast = cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens");
        if (cJSON_IsArray(ast)) {
            cJSON *l = cJSON_CreateArray();
            if (!l) { st = qn_error_set(err, QN_ERR_NOMEM, "chat template: out of memory"); goto done; }
            t->extra_tokens = l;
            for (const cJSON *c = ast->child; c; c = c->next) {
                const char *v = token_str(c);
                cJSON *s = v ? cJSON_CreateString(v) : NULL;
                if (!v) continue;
                if (!s || !cJSON_AddItemToArray(l, s)) {
                    cJSON_Delete(s);
                    st = qn_error_set(err, QN_ERR_NOMEM, "chat template: out of memory");
                    goto done;
                }
            }
        }
    }
done:
    if (st != QN_OK) {
        qn_chat_template_free(t);
        t = NULL;
    }
    *out = t;
    cJSON_Delete(cfg);
    free(jtext);
    free(ctext);
    free(jpath);
    free(cpath);
    return st;
}
