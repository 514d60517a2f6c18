/* Chat templates: lexer (trim_blocks + lstrip_blocks, - / + whitespace control) and
 * recursive-descent parser of the Jinja subset into the AST of chat_template_internal.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_template_internal.h"

/* ---------------- arena ---------------- */

struct ct_blk {
    ct_blk *next;
    size_t size, off;
    max_align_t data[];
};

void *ct_alloc(ct_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    ct_blk *b = a->head;
    if (!b || b->size - b->off < n) {
        size_t sz = n > 65536 - sizeof(ct_blk) ? n : 65536 - sizeof(ct_blk);
        if (n > a->limit || a->total + sz + sizeof(ct_blk) > a->limit) return NULL;
        b = malloc(sizeof(ct_blk) + sz);
        if (!b) return NULL;
        a->total += sz + sizeof(ct_blk);
        b->size = sz;
        b->off = 0;
        if (a->head && n > 4096) { /* keep the current block for small allocations */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = (char *)b->data + b->off;
    b->off += n;
    memset(p, 0, n);
    return p;
}

void ct_arena_free(ct_arena *a) {
    ct_blk *b = a->head;
    while (b) {
        ct_blk *nx = b->next;
        free(b);
        b = nx;
    }
    a->head = NULL;
    a->total = 0;
}

/* ---------------- lexer ---------------- */

enum { T_TEXT, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT, T_OP, T_EOF };
typedef struct {
    int t, op, line, col;
    const char *s; /* TEXT / STR / NAME (NUL-terminated copy) */
    size_t n;
    int64_t i;
    double f;
} tok;

typedef struct {
    qn_chat_template *t;
    qn_error *err;
    const char *src;
    size_t n, pos;
    size_t lc_pos; /* line/col bookkeeping */
    int lc_line;
    size_t lc_ls;
    tok *toks;
    size_t nt, ct;
    size_t ti; /* parser cursor */
    int depth;
    int failed;
    qn_status code;
} P;

static const char *srcname(P *p) { return p->t->source ? p->t->source : "<template>"; }

static void lc_at(P *p, size_t off, int *line, int *col) {
    if (off < p->lc_pos) { p->lc_pos = 0; p->lc_line = 1; p->lc_ls = 0; }
    for (size_t i = p->lc_pos; i < off && i < p->n; i++)
        if (p->src[i] == '\n') { p->lc_line++; p->lc_ls = i + 1; }
    p->lc_pos = off;
    *line = p->lc_line;
    *col = (int)(off - p->lc_ls) + 1;
}

static int fail_at(P *p, int line, int col, qn_status code, const char *msg, const char *arg) {
    if (!p->failed) {
        qn_error_set(p->err, code, "%s:%d:%d: %s%s%s%s", srcname(p), line, col, msg, arg ? " '" : "", arg ? arg : "",
                     arg ? "'" : "");
        p->failed = 1;
        p->code = code;
    }
    return -1;
}
static int fail_off(P *p, size_t off, qn_status code, const char *msg, const char *arg) {
    int l, c;
    lc_at(p, off, &l, &c);
    return fail_at(p, l, c, code, msg, arg);
}
static int nomem(P *p) {
    if (!p->failed) { qn_error_set(p->err, QN_ERR_NOMEM, "%s: template too large", srcname(p)); p->failed = 1; p->code = QN_ERR_NOMEM; }
    return -1;
}

static tok *push(P *p, int type, size_t off) {
    if (p->nt == p->ct) {
        size_t nc = p->ct ? p->ct * 2 : 256;
        if (nc > (CT_MAX_SOURCE * 2u)) { nomem(p); return NULL; }
        tok *nt = realloc(p->toks, nc * sizeof(tok));
        if (!nt) { nomem(p); return NULL; }
        p->toks = nt;
        p->ct = nc;
    }
    tok *k = &p->toks[p->nt++];
    memset(k, 0, sizeof *k);
    k->t = type;
    lc_at(p, off, &k->line, &k->col);
    return k;
}

static char *adup(P *p, const char *s, size_t n) {
    char *d = ct_alloc(&p->t->a, n + 1);
    if (!d) { nomem(p); return NULL; }
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_id0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_id(char c) { return is_id0(c) || (c >= '0' && c <= '9'); }
static int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
static size_t put_utf8(char *o, uint32_t c) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 63)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 63)); o[2] = (char)(0x80 | (c & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 63));
    o[2] = (char)(0x80 | ((c >> 6) & 63)); o[3] = (char)(0x80 | (c & 63));
    return 4;
}

/* A string literal at p->src[pos] (the quote); Python escapes. */
static int lex_string(P *p, size_t *pos) {
    size_t start = *pos;
    char q = p->src[start];
    size_t i = start + 1;
    while (i < p->n && p->src[i] != q) i += (p->src[i] == '\\') ? 2 : 1;
    if (i >= p->n) return fail_off(p, start, QN_ERR_FORMAT, "unterminated string literal", NULL);
    char *o = ct_alloc(&p->t->a, i - start + 1);
    if (!o) return nomem(p);
    size_t on = 0;
    for (size_t j = start + 1; j < i; j++) {
        char c = p->src[j];
        if (c != '\\') { o[on++] = c; continue; }
        char e = p->src[++j];
        int nh = 0;
        switch (e) {
        case 'n': o[on++] = '\n'; break;
        case 't': o[on++] = '\t'; break;
        case 'r': o[on++] = '\r'; break;
        case '\\': o[on++] = '\\'; break;
        case '\'': o[on++] = '\''; break;
        case '"': o[on++] = '"'; break;
        case 'a': o[on++] = '\a'; break;
        case 'b': o[on++] = '\b'; break;
        case 'f': o[on++] = '\f'; break;
        case 'v': o[on++] = '\v'; break;
        case '0': o[on++] = '\0'; break;
        case '\n': break;
        case 'x': nh = 2; break;
        case 'u': nh = 4; break;
        case 'U': nh = 8; break;
        default: o[on++] = '\\'; o[on++] = e; break;
        }
        if (nh) {
            uint32_t cp = 0;
            for (int h = 0; h < nh; h++) {
                int v = j + 1 < i ? hexv(p->src[j + 1]) : -1;
                if (v < 0) return fail_off(p, j, QN_ERR_FORMAT, "bad escape in string literal", NULL);
                cp = cp * 16 + (uint32_t)v;
                j++;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return fail_off(p, j, QN_ERR_FORMAT, "bad code point in string literal", NULL);
            on += put_utf8(o + on, cp);
        }
    }
    tok *k = push(p, T_STR, start);
    if (!k) return -1;
    k->s = o;
    k->n = on;
    *pos = i + 1;
    return 0;
}

/* Tokens of one tag up to its end marker; returns 0 and sets *strip_after / *plus_after. */
static int lex_tag(P *p, int block, size_t tag_off, int *strip_after, int *plus_after) {
    size_t i = p->pos;
    int bal = 0;
    for (;;) {
        while (i < p->n && is_ws(p->src[i])) i++;
        if (i >= p->n) return fail_off(p, tag_off, QN_ERR_FORMAT, block ? "unclosed '{%' tag" : "unclosed '{{' tag", NULL);
        const char *s = p->src + i;
        size_t left = p->n - i;
        if (bal == 0) {
            const char *end = block ? "%}" : "}}";
            int m = 0;
            if ((s[0] == '-' || s[0] == '+') && left >= 3 && s[1] == end[0] && s[2] == end[1]) m = s[0] == '-' ? 1 : 2;
            if (m || (left >= 2 && s[0] == end[0] && s[1] == end[1])) {
                if (!push(p, block ? T_BEND : T_VEND, i)) return -1;
                *strip_after = m == 1;
                *plus_after = m == 2;
                p->pos = i + (m ? 3 : 2);
                return 0;
            }
        }
        char c = s[0];
        if (c == '\'' || c == '"') {
            if (lex_string(p, &i)) return -1;
            continue;
        }
        if (is_id0(c)) {
            size_t j = i;
            while (j < p->n && is_id(p->src[j])) j++;
            tok *k = push(p, T_NAME, i);
            if (!k) return -1;
            if (!(k->s = adup(p, s, j - i))) return -1;
            k->n = j - i;
            i = j;
            continue;
        }
        if (c >= '0' && c <= '9') {
            size_t j = i;
            int isf = 0;
            while (j < p->n && ((p->src[j] >= '0' && p->src[j] <= '9') || p->src[j] == '_')) j++;
            if (j + 1 < p->n && p->src[j] == '.' && p->src[j + 1] >= '0' && p->src[j + 1] <= '9') {
                isf = 1;
                j++;
                while (j < p->n && p->src[j] >= '0' && p->src[j] <= '9') j++;
            }
            if (j < p->n && (p->src[j] == 'e' || p->src[j] == 'E')) {
                size_t e = j + 1;
                if (e < p->n && (p->src[e] == '+' || p->src[e] == '-')) e++;
                if (e < p->n && p->src[e] >= '0' && p->src[e] <= '9') {
                    isf = 1;
                    j = e;
                    while (j < p->n && p->src[j] >= '0' && p->src[j] <= '9') j++;
                }
            }
            char buf[64];
            size_t bn = 0;
            for (size_t q = i; q < j && bn < sizeof buf - 1; q++)
                if (p->src[q] != '_') buf[bn++] = p->src[q];
            buf[bn] = 0;
            if (j - i >= sizeof buf - 1) return fail_off(p, i, QN_ERR_FORMAT, "number literal too long", NULL);
            tok *k = push(p, isf ? T_FLOAT : T_INT, i);
            if (!k) return -1;
            if (isf) k->f = strtod(buf, NULL);
            else {
                char *e;
                unsigned long long v = strtoull(buf, &e, 10);
                if (v > INT64_MAX) return fail_off(p, i, QN_ERR_UNSUPPORTED, "integer literal too large", NULL);
                k->i = (int64_t)v;
            }
            i = j;
            continue;
        }
        int op = 0, w = 1;
        if (left >= 2) {
            if (s[0] == '/' && s[1] == '/') op = OP_FLOORDIV;
            else if (s[0] == '*' && s[1] == '*') op = OP_POW;
            else if (s[0] == '=' && s[1] == '=') op = OP_EQ;
            else if (s[0] == '!' && s[1] == '=') op = OP_NE;
            else if (s[0] == '<' && s[1] == '=') op = OP_LE;
            else if (s[0] == '>' && s[1] == '=') op = OP_GE;
            if (op) w = 2;
        }
        if (!op && strchr("+-*/%~()[]{},.:|=<>", c) && c) op = c;
        if (!op) {
            char b[2] = {c, 0};
            return fail_off(p, i, QN_ERR_FORMAT, "unexpected character", b);
        }
        if (op == '(' || op == '[' || op == '{') {
            if (++bal > CT_MAX_DEPTH) return fail_off(p, i, QN_ERR_FORMAT, "brackets nested too deeply", NULL);
        } else if (op == ')' || op == ']' || op == '}') {
            if (bal == 0) {
                char b[2] = {c, 0};
                return fail_off(p, i, QN_ERR_FORMAT, "unbalanced", b);
            }
            bal--;
        }
        tok *k = push(p, T_OP, i);
        if (!k) return -1;
        k->op = op;
        i += (size_t)w;
    }
}

static int lex(P *p) {
    const char *s = p->src;
    size_t n = p->n;
    while (p->pos <= n) {
        size_t k = p->pos;
        while (k + 1 < n && !(s[k] == '{' && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#'))) k++;
        if (k + 1 >= n) k = n;
        size_t ts = p->pos, te = k;
        char kind = k < n ? s[k + 1] : 0;
        size_t q = k + 2;
        int strip_before = 0, plus = 0;
        if (kind) {
            if (q < n && s[q] == '-') strip_before = 1;
            else if (q < n && s[q] == '+') plus = 1;
            if (strip_before) {
                while (te > ts && is_ws(s[te - 1])) te--;
            } else if (kind != '{' && !plus) { /* lstrip_blocks */
                size_t ls = te;
                while (ls > ts && (s[ls - 1] == ' ' || s[ls - 1] == '\t')) ls--;
                if ((ls > ts && s[ls - 1] == '\n') || (ls == ts && (ts == 0 || s[ts - 1] == '\n'))) te = ls;
            }
            if (strip_before || plus) q++;
        }
        if (te > ts) {
            tok *t = push(p, T_TEXT, ts);
            if (!t) return -1;
            t->s = s + ts;
            t->n = te - ts;
        }
        if (!kind) break;
        int strip_after = 0, plus_after = 0;
        if (kind == '#') {
            size_t j = q;
            while (j + 1 < n && !(s[j] == '#' && s[j + 1] == '}')) j++;
            if (j + 1 >= n) return fail_off(p, k, QN_ERR_FORMAT, "unclosed comment", NULL);
            if (j > q && s[j - 1] == '-') strip_after = 1;
            else if (j > q && s[j - 1] == '+') plus_after = 1;
            p->pos = j + 2;
        } else {
            if (!push(p, kind == '%' ? T_BBEGIN : T_VBEGIN, k)) return -1;
            p->pos = q;
            if (kind == '%') { /* {% raw %} is lexer-level in Jinja: refuse it here */
                size_t j = q;
                while (j < n && is_ws(s[j])) j++;
                if (n - j >= 3 && !memcmp(s + j, "raw", 3) && (j + 3 >= n || !is_id(s[j + 3])))
                    return fail_off(p, j, QN_ERR_UNSUPPORTED, "unsupported tag", "raw");
            }
            if (lex_tag(p, kind == '%', k, &strip_after, &plus_after)) return -1;
        }
        if (strip_after) {
            while (p->pos < n && is_ws(s[p->pos])) p->pos++;
        } else if (kind != '{' && !plus_after && p->pos < n && s[p->pos] == '\n') {
            p->pos++; /* trim_blocks */
        }
    }
    tok *e = push(p, T_EOF, n);
    return e ? 0 : -1;
}

/* ---------------- parser ---------------- */

static tok *cur(P *p) { return &p->toks[p->ti]; }
static int is_op(P *p, int op) { return cur(p)->t == T_OP && cur(p)->op == op; }
static int is_name(P *p, const char *nm) { return cur(p)->t == T_NAME && !strcmp(cur(p)->s, nm); }
static int failt(P *p, tok *t, qn_status code, const char *msg, const char *arg) {
    return fail_at(p, t->line, t->col, code, msg, arg);
}
static const char *tokdesc(tok *t) {
    switch (t->t) {
    case T_TEXT: return "template text";
    case T_VBEGIN: return "'{{'";
    case T_VEND: return "'}}'";
    case T_BBEGIN: return "'{%'";
    case T_BEND: return "'%}'";
    case T_NAME: return "name";
    case T_STR: return "string";
    case T_INT: case T_FLOAT: return "number";
    case T_OP: return "operator";
    default: return "end of template";
    }
}
static int unexpected(P *p) {
    tok *t = cur(p);
    if (t->t == T_NAME) return failt(p, t, QN_ERR_FORMAT, "unexpected name", t->s);
    char b[3] = {0};
    if (t->t == T_OP && t->op < 256) b[0] = (char)t->op;
    return failt(p, t, QN_ERR_FORMAT, "unexpected", b[0] ? b : tokdesc(t));
}
static int expect_op(P *p, int op) {
    if (!is_op(p, op)) return unexpected(p);
    p->ti++;
    return 0;
}

static ct_expr *mk(P *p, int k, tok *at) {
    ct_expr *e = ct_alloc(&p->t->a, sizeof *e);
    if (!e) { nomem(p); return NULL; }
    e->k = k;
    e->line = at->line;
    e->col = at->col;
    return e;
}

/* growable pointer vector in the arena */
typedef struct {
    void **v;
    int n, cap;
} pvec;
static int pv_push(P *p, pvec *v, void *x) {
    if (v->n == v->cap) {
        int nc = v->cap ? v->cap * 2 : 4;
        void **nv = ct_alloc(&p->t->a, (size_t)nc * sizeof(void *));
        if (!nv) return nomem(p);
        if (v->n) memcpy(nv, v->v, (size_t)v->n * sizeof(void *));
        v->v = nv;
        v->cap = nc;
    }
    v->v[v->n++] = x;
    return 0;
}

static ct_expr *p_expr(P *p);
static ct_expr *p_or(P *p);
static ct_expr *p_unary(P *p, int with_filter);

static int enter(P *p) {
    if (++p->depth > CT_MAX_DEPTH) return failt(p, cur(p), QN_ERR_FORMAT, "nesting too deep", NULL);
    return 0;
}

/* ( args ) : positional then keyword */
static int p_callargs(P *p, ct_expr *e) {
    if (expect_op(p, '(')) return -1;
    pvec a = {0}, kn = {0}, kv = {0};
    while (!is_op(p, ')')) {
        if (a.n + kn.n && expect_op(p, ',')) return -1;
        if (is_op(p, ')')) break;
        if (is_op(p, '*') || is_op(p, OP_POW)) return failt(p, cur(p), QN_ERR_UNSUPPORTED, "*args / **kwargs are not supported", NULL);
        if (cur(p)->t == T_NAME && p->toks[p->ti + 1].t == T_OP && p->toks[p->ti + 1].op == '=') {
            if (pv_push(p, &kn, (void *)cur(p)->s)) return -1;
            p->ti += 2;
            ct_expr *v = p_expr(p);
            if (!v || pv_push(p, &kv, v)) return -1;
        } else {
            if (kn.n) return failt(p, cur(p), QN_ERR_FORMAT, "positional argument after keyword argument", NULL);
            ct_expr *v = p_expr(p);
            if (!v || pv_push(p, &a, v)) return -1;
        }
    }
    p->ti++;
    e->args = (ct_expr **)a.v;
    e->nargs = a.n;
    e->kwn = (const char **)kn.v;
    e->kwv = (ct_expr **)kv.v;
    e->nkw = kn.n;
    return 0;
}

static ct_expr *p_primary(P *p) {
    tok *t = cur(p);
    ct_expr *e;
    if (enter(p)) return NULL;
    switch (t->t) {
    case T_NAME:
        p->ti++;
        if (!(e = mk(p, E_CONST, t))) return NULL;
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True")) { e->c.t = V_BOOL; e->c.u.i = 1; }
        else if (!strcmp(t->s, "false") || !strcmp(t->s, "False")) { e->c.t = V_BOOL; e->c.u.i = 0; }
        else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) e->c.t = V_NONE;
        else { e->k = E_NAME; e->name = t->s; }
        break;
    case T_STR: {
        if (!(e = mk(p, E_CONST, t))) return NULL;
        e->c.t = V_STR;
        e->c.u.s.p = t->s;
        e->c.u.s.n = t->n;
        p->ti++;
        if (cur(p)->t == T_STR) { /* adjacent literals concatenate */
            size_t tot = t->n;
            size_t j = p->ti;
            while (p->toks[j].t == T_STR) tot += p->toks[j++].n;
            char *s = ct_alloc(&p->t->a, tot + 1);
            if (!s) { nomem(p); return NULL; }
            memcpy(s, t->s, t->n);
            size_t o = t->n;
            while (cur(p)->t == T_STR) { memcpy(s + o, cur(p)->s, cur(p)->n); o += cur(p)->n; p->ti++; }
            e->c.u.s.p = s;
            e->c.u.s.n = tot;
        }
        break;
    }
    case T_INT: case T_FLOAT:
        if (!(e = mk(p, E_CONST, t))) return NULL;
        if (t->t == T_INT) { e->c.t = V_INT; e->c.u.i = t->i; }
        else { e->c.t = V_FLOAT; e->c.u.f = t->f; }
        p->ti++;
        break;
    case T_OP:
        if (t->op == '(') {
            p->ti++;
            if (is_op(p, ')')) { /* empty tuple */
                p->ti++;
                if (!(e = mk(p, E_LIST, t))) return NULL;
                break;
            }
            ct_expr *x = p_expr(p);
            if (!x) return NULL;
            if (is_op(p, ',')) {
                pvec v = {0};
                if (pv_push(p, &v, x)) return NULL;
                while (is_op(p, ',')) {
                    p->ti++;
                    if (is_op(p, ')')) break;
                    ct_expr *y = p_expr(p);
                    if (!y || pv_push(p, &v, y)) return NULL;
                }
                if (!(e = mk(p, E_LIST, t))) return NULL;
                e->args = (ct_expr **)v.v;
                e->nargs = v.n;
            } else e = x;
            if (expect_op(p, ')')) return NULL;
            break;
        }
        if (t->op == '[' || t->op == '{') {
            int dict = t->op == '{', close = dict ? '}' : ']';
            p->ti++;
            pvec v = {0};
            while (!is_op(p, close)) {
                if (v.n && expect_op(p, ',')) return NULL;
                if (is_op(p, close)) break;
                ct_expr *x = p_expr(p);
                if (!x || pv_push(p, &v, x)) return NULL;
                if (dict) {
                    if (expect_op(p, ':')) return NULL;
                    x = p_expr(p);
                    if (!x || pv_push(p, &v, x)) return NULL;
                }
            }
            p->ti++;
            if (!(e = mk(p, dict ? E_DICT : E_LIST, t))) return NULL;
            e->args = (ct_expr **)v.v;
            e->nargs = v.n;
            break;
        }
        /* fallthrough */
    default:
        unexpected(p);
        return NULL;
    }
    p->depth--;
    return e;
}

static ct_expr *p_postfix(P *p, ct_expr *e) {
    for (;;) {
        tok *t = cur(p);
        if (is_op(p, '.')) {
            p->ti++;
            tok *nt = cur(p);
            ct_expr *x = mk(p, E_ATTR, nt);
            if (!x) return NULL;
            x->a = e;
            if (nt->t == T_NAME) x->name = nt->s;
            else if (nt->t == T_INT) { /* x.0 == x[0] */
                x->k = E_ITEM;
                if (!(x->b = mk(p, E_CONST, nt))) return NULL;
                x->b->c.t = V_INT;
                x->b->c.u.i = nt->i;
            } else { unexpected(p); return NULL; }
            p->ti++;
            e = x;
        } else if (is_op(p, '[')) {
            p->ti++;
            ct_expr *parts[3] = {0};
            int np = 0, slice = 0;
            for (;;) {
                if (!is_op(p, ':') && !is_op(p, ']')) {
                    if (!(parts[np] = p_expr(p))) return NULL;
                }
                if (is_op(p, ':') && np < 2) { slice = 1; np++; p->ti++; continue; }
                break;
            }
            if (expect_op(p, ']')) return NULL;
            ct_expr *x = mk(p, slice ? E_SLICE : E_ITEM, t);
            if (!x) return NULL;
            x->a = e;
            if (slice) {
                x->b = parts[0];
                x->x = parts[1];
                x->args = ct_alloc(&p->t->a, sizeof(ct_expr *));
                if (!x->args) { nomem(p); return NULL; }
                x->args[0] = parts[2];
            } else {
                if (!parts[0]) { unexpected(p); return NULL; }
                x->b = parts[0];
            }
            e = x;
        } else if (is_op(p, '(')) {
            ct_expr *x = mk(p, E_CALL, t);
            if (!x) return NULL;
            x->a = e;
            x->line = e->line; /* a call is reported where its callee starts */
            x->col = e->col;
            if (p_callargs(p, x)) return NULL;
            e = x;
        } else return e;
    }
}

static ct_expr *p_filters(P *p, ct_expr *e) {
    for (;;) {
        tok *t = cur(p);
        if (is_op(p, '|')) {
            p->ti++;
            if (cur(p)->t != T_NAME) { unexpected(p); return NULL; }
            ct_expr *x = mk(p, E_FILTER, cur(p));
            if (!x) return NULL;
            x->name = cur(p)->s;
            x->a = e;
            p->ti++;
            if (is_op(p, '(') && p_callargs(p, x)) return NULL;
            e = x;
        } else if (is_name(p, "is")) {
            p->ti++;
            ct_expr *x = mk(p, E_TEST, t);
            if (!x) return NULL;
            x->a = e;
            if (is_name(p, "not")) { x->neg = 1; p->ti++; }
            if (cur(p)->t != T_NAME) { unexpected(p); return NULL; }
            x->name = cur(p)->s;
            x->line = cur(p)->line;
            x->col = cur(p)->col;
            p->ti++;
            tok *a = cur(p);
            if (is_op(p, '(')) {
                if (p_callargs(p, x)) return NULL;
            } else if ((a->t == T_NAME || a->t == T_STR || a->t == T_INT || a->t == T_FLOAT || is_op(p, '[') ||
                        is_op(p, '{')) &&
                       !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
                if (is_name(p, "is")) { failt(p, a, QN_ERR_FORMAT, "tests cannot be chained", NULL); return NULL; }
                ct_expr *arg = p_primary(p);
                if (!arg || !(arg = p_postfix(p, arg))) return NULL;
                x->args = ct_alloc(&p->t->a, sizeof(ct_expr *));
                if (!x->args) { nomem(p); return NULL; }
                x->args[0] = arg;
                x->nargs = 1;
            }
            e = x;
        } else if (is_op(p, '(')) {
            ct_expr *x = mk(p, E_CALL, t);
            if (!x) return NULL;
            x->a = e;
            x->line = e->line; /* a call is reported where its callee starts */
            x->col = e->col;
            if (p_callargs(p, x)) return NULL;
            e = x;
        } else return e;
    }
}

static ct_expr *p_unary(P *p, int with_filter) {
    tok *t = cur(p);
    ct_expr *e;
    if (enter(p)) return NULL;
    if (is_op(p, '-') || is_op(p, '+')) {
        p->ti++;
        if (!(e = mk(p, t->op == '-' ? E_NEG : E_POS, t))) return NULL;
        if (!(e->a = p_unary(p, 0))) return NULL;
    } else if (!(e = p_primary(p))) return NULL;
    if (!(e = p_postfix(p, e))) return NULL;
    if (with_filter && !(e = p_filters(p, e))) return NULL;
    p->depth--;
    return e;
}

static ct_expr *bin(P *p, tok *t, int op, ct_expr *a, ct_expr *b) {
    ct_expr *e = mk(p, E_BIN, t);
    if (!e) return NULL;
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

static ct_expr *p_pow(P *p) {
    ct_expr *e = p_unary(p, 1);
    while (e && is_op(p, OP_POW)) {
        tok *t = cur(p);
        p->ti++;
        ct_expr *r = p_unary(p, 1);
        e = r ? bin(p, t, OP_POW, e, r) : NULL;
    }
    return e;
}
static ct_expr *p_math2(P *p) {
    ct_expr *e = p_pow(p);
    while (e && (is_op(p, '*') || is_op(p, '/') || is_op(p, OP_FLOORDIV) || is_op(p, '%'))) {
        tok *t = cur(p);
        p->ti++;
        ct_expr *r = p_pow(p);
        e = r ? bin(p, t, t->op, e, r) : NULL;
    }
    return e;
}
static ct_expr *p_concat(P *p) {
    ct_expr *e = p_math2(p);
    while (e && is_op(p, '~')) {
        tok *t = cur(p);
        p->ti++;
        ct_expr *r = p_math2(p);
        e = r ? bin(p, t, '~', e, r) : NULL;
    }
    return e;
}
static ct_expr *p_math1(P *p) {
    ct_expr *e = p_concat(p);
    while (e && (is_op(p, '+') || is_op(p, '-'))) {
        tok *t = cur(p);
        p->ti++;
        ct_expr *r = p_concat(p);
        e = r ? bin(p, t, t->op, e, r) : NULL;
    }
    return e;
}
static ct_expr *p_compare(P *p) {
    tok *t0 = cur(p);
    ct_expr *e = p_math1(p);
    if (!e) return NULL;
    pvec opnd = {0}, ops = {0};
    for (;;) {
        int op = 0;
        tok *t = cur(p);
        if (t->t == T_OP && (t->op == OP_EQ || t->op == OP_NE || t->op == '<' || t->op == '>' || t->op == OP_LE ||
                             t->op == OP_GE))
            op = t->op, p->ti++;
        else if (is_name(p, "in")) op = OP_IN, p->ti++;
        else if (is_name(p, "not") && p->toks[p->ti + 1].t == T_NAME && !strcmp(p->toks[p->ti + 1].s, "in"))
            op = OP_NOTIN, p->ti += 2;
        else break;
        if (!opnd.n && pv_push(p, &opnd, e)) return NULL;
        ct_expr *r = p_math1(p);
        if (!r || pv_push(p, &opnd, r) || pv_push(p, &ops, (void *)(intptr_t)op)) return NULL;
    }
    if (!opnd.n) return e;
    ct_expr *c = mk(p, E_CMP, t0);
    if (!c) return NULL;
    c->args = (ct_expr **)opnd.v;
    c->nargs = opnd.n;
    c->ops = ct_alloc(&p->t->a, (size_t)ops.n * sizeof(int));
    if (!c->ops) { nomem(p); return NULL; }
    for (int i = 0; i < ops.n; i++) c->ops[i] = (int)(intptr_t)ops.v[i];
    return c;
}
static ct_expr *p_not(P *p) {
    if (is_name(p, "not")) {
        tok *t = cur(p);
        p->ti++;
        if (enter(p)) return NULL;
        ct_expr *e = mk(p, E_NOT, t);
        if (!e || !(e->a = p_not(p))) return NULL;
        p->depth--;
        return e;
    }
    return p_compare(p);
}
static ct_expr *p_and(P *p) {
    ct_expr *e = p_not(p);
    while (e && is_name(p, "and")) {
        tok *t = cur(p);
        p->ti++;
        ct_expr *r = p_not(p), *x = r ? mk(p, E_AND, t) : NULL;
        if (x) { x->a = e; x->b = r; }
        e = x;
    }
    return e;
}
static ct_expr *p_or(P *p) {
    ct_expr *e = p_and(p);
    while (e && is_name(p, "or")) {
        tok *t = cur(p);
        p->ti++;
        ct_expr *r = p_and(p), *x = r ? mk(p, E_OR, t) : NULL;
        if (x) { x->a = e; x->b = r; }
        e = x;
    }
    return e;
}
/* A if C [else B] */
static ct_expr *p_expr(P *p) {
    if (enter(p)) return NULL;
    ct_expr *e = p_or(p);
    while (e && is_name(p, "if")) {
        tok *t = cur(p);
        p->ti++;
        ct_expr *x = mk(p, E_COND, t);
        if (!x) return NULL;
        x->a = e;
        if (!(x->b = p_or(p))) return NULL;
        if (is_name(p, "else")) {
            p->ti++;
            if (!(x->x = p_expr(p))) return NULL;
        }
        e = x;
    }
    if (e) p->depth--;
    return e;
}

/* ---- statements ---- */

static ct_node *mkn(P *p, int k, tok *at) {
    ct_node *n = ct_alloc(&p->t->a, sizeof *n);
    if (!n) { nomem(p); return NULL; }
    n->k = k;
    n->line = at->line;
    n->col = at->col;
    return n;
}

static int expect_bend(P *p) {
    if (cur(p)->t != T_BEND) return unexpected(p);
    p->ti++;
    return 0;
}

/* Parses nodes into *b until a block tag whose name is in `ends` (NULL-terminated); leaves the
 * cursor on that name. `open` is the opening tag (for "unclosed" errors). */
static int p_body(P *p, ct_body *b, const char *const *ends, tok *open, const char *what);

static int p_targets(P *p, pvec *names) {
    for (;;) {
        if (cur(p)->t != T_NAME) return unexpected(p);
        if (pv_push(p, names, (void *)cur(p)->s)) return -1;
        p->ti++;
        if (!is_op(p, ',')) return 0;
        p->ti++;
    }
}

static ct_node *p_stmt(P *p, tok *open) {
    tok *nt = cur(p);
    if (nt->t != T_NAME) { unexpected(p); return NULL; }
    const char *kw = nt->s;
    p->ti++;
    ct_node *n;
    if (!strcmp(kw, "if")) {
        static const char *const ends[] = {"elif", "else", "endif", NULL};
        if (!(n = mkn(p, N_IF, nt))) return NULL;
        pvec conds = {0}, bodies = {0};
        for (;;) {
            ct_expr *c = p_expr(p);
            if (!c || pv_push(p, &conds, c) || expect_bend(p)) return NULL;
            ct_body *bd = ct_alloc(&p->t->a, sizeof *bd);
            if (!bd) { nomem(p); return NULL; }
            if (pv_push(p, &bodies, bd) || p_body(p, bd, ends, open, "if")) return NULL;
            const char *e = cur(p)->s;
            p->ti++;
            if (!strcmp(e, "elif")) continue;
            if (!strcmp(e, "else")) {
                static const char *const ends2[] = {"endif", NULL};
                if (expect_bend(p)) return NULL;
                ct_body *bd2 = ct_alloc(&p->t->a, sizeof *bd2);
                if (!bd2) { nomem(p); return NULL; }
                if (pv_push(p, &bodies, bd2) || p_body(p, bd2, ends2, open, "if")) return NULL;
                p->ti++;
                n->has_else = 1;
            }
            break;
        }
        if (expect_bend(p)) return NULL;
        n->conds = (ct_expr **)conds.v;
        n->nconds = conds.n;
        n->bodies = ct_alloc(&p->t->a, (size_t)bodies.n * sizeof(ct_body));
        if (!n->bodies) { nomem(p); return NULL; }
        for (int i = 0; i < bodies.n; i++) n->bodies[i] = *(ct_body *)bodies.v[i];
        return n;
    }
    if (!strcmp(kw, "for")) {
        static const char *const ends[] = {"else", "endfor", NULL};
        if (!(n = mkn(p, N_FOR, nt))) return NULL;
        pvec names = {0};
        if (p_targets(p, &names)) return NULL;
        n->names = (const char **)names.v;
        n->nnames = names.n;
        if (!is_name(p, "in")) { unexpected(p); return NULL; }
        p->ti++;
        /* iterable: an or-expression (the inline `if` is the loop filter), or a bare tuple */
        ct_expr *it = p_or(p);
        if (!it) return NULL;
        if (is_op(p, ',')) {
            ct_expr *l = mk(p, E_LIST, cur(p));
            pvec v = {0};
            if (!l || pv_push(p, &v, it)) return NULL;
            while (is_op(p, ',')) {
                p->ti++;
                ct_expr *y = p_or(p);
                if (!y || pv_push(p, &v, y)) return NULL;
            }
            l->args = (ct_expr **)v.v;
            l->nargs = v.n;
            it = l;
        }
        n->e = it;
        if (is_name(p, "if")) {
            p->ti++;
            if (!(n->filter = p_expr(p))) return NULL;
        }
        if (is_name(p, "recursive")) { failt(p, cur(p), QN_ERR_UNSUPPORTED, "recursive loops are not supported", NULL); return NULL; }
        if (expect_bend(p) || p_body(p, &n->body, ends, open, "for")) return NULL;
        if (!strcmp(cur(p)->s, "else")) {
            static const char *const ends2[] = {"endfor", NULL};
            p->ti++;
            if (expect_bend(p) || p_body(p, &n->els, ends2, open, "for")) return NULL;
        }
        p->ti++;
        if (expect_bend(p)) return NULL;
        return n;
    }
    if (!strcmp(kw, "set")) {
        if (!(n = mkn(p, N_SET, nt))) return NULL;
        pvec names = {0};
        if (cur(p)->t == T_NAME && p->toks[p->ti + 1].t == T_OP && p->toks[p->ti + 1].op == '.') {
            if (pv_push(p, &names, (void *)cur(p)->s)) return NULL;
            p->ti += 2;
            if (cur(p)->t != T_NAME) { unexpected(p); return NULL; }
            n->attr = cur(p)->s;
            p->ti++;
        } else if (p_targets(p, &names)) return NULL;
        n->names = (const char **)names.v;
        n->nnames = names.n;
        if (cur(p)->t == T_BEND && names.n == 1 && !n->attr) { /* block set */
            static const char *const ends[] = {"endset", NULL};
            n->k = N_SETBLOCK;
            p->ti++;
            if (p_body(p, &n->body, ends, open, "set")) return NULL;
            p->ti++;
            if (expect_bend(p)) return NULL;
            return n;
        }
        if (is_op(p, '|')) { failt(p, cur(p), QN_ERR_UNSUPPORTED, "filtered block set is not supported", NULL); return NULL; }
        if (expect_op(p, '=')) return NULL;
        ct_expr *v = p_expr(p);
        if (!v) return NULL;
        if (is_op(p, ',')) { /* a, b = x, y */
            ct_expr *l = mk(p, E_LIST, cur(p));
            pvec vv = {0};
            if (!l || pv_push(p, &vv, v)) return NULL;
            while (is_op(p, ',')) {
                p->ti++;
                ct_expr *y = p_expr(p);
                if (!y || pv_push(p, &vv, y)) return NULL;
            }
            l->args = (ct_expr **)vv.v;
            l->nargs = vv.n;
            v = l;
        }
        n->e = v;
        if (expect_bend(p)) return NULL;
        return n;
    }
    if (!strcmp(kw, "macro")) {
        static const char *const ends[] = {"endmacro", NULL};
        if (!(n = mkn(p, N_MACRO, nt))) return NULL;
        if (cur(p)->t != T_NAME) { unexpected(p); return NULL; }
        n->name = cur(p)->s;
        p->ti++;
        if (expect_op(p, '(')) return NULL;
        pvec names = {0}, defs = {0};
        while (!is_op(p, ')')) {
            if (names.n && expect_op(p, ',')) return NULL;
            if (is_op(p, ')')) break;
            if (cur(p)->t != T_NAME) { unexpected(p); return NULL; }
            if (pv_push(p, &names, (void *)cur(p)->s)) return NULL;
            p->ti++;
            ct_expr *d = NULL;
            if (is_op(p, '=')) {
                p->ti++;
                if (!(d = p_expr(p))) return NULL;
            } else if (defs.n && defs.v[defs.n - 1]) {
                failt(p, cur(p), QN_ERR_FORMAT, "non-default argument follows default argument", NULL);
                return NULL;
            }
            if (pv_push(p, &defs, d)) return NULL;
        }
        p->ti++;
        n->names = (const char **)names.v;
        n->nnames = names.n;
        n->defaults = (ct_expr **)defs.v;
        if (expect_bend(p) || p_body(p, &n->body, ends, open, "macro")) return NULL;
        p->ti++;
        if (cur(p)->t == T_NAME) p->ti++; /* {% endmacro name %} */
        if (expect_bend(p)) return NULL;
        return n;
    }
    if (!strcmp(kw, "break") || !strcmp(kw, "continue")) {
        if (!(n = mkn(p, kw[0] == 'b' ? N_BREAK : N_CONTINUE, nt))) return NULL;
        if (expect_bend(p)) return NULL;
        return n;
    }
    if (!strcmp(kw, "generation")) {
        static const char *const ends[] = {"endgeneration", NULL};
        if (!(n = mkn(p, N_BODY, nt))) return NULL;
        if (expect_bend(p) || p_body(p, &n->body, ends, open, "generation")) return NULL;
        p->ti++;
        if (expect_bend(p)) return NULL;
        return n;
    }
    static const char *const known[] = {"filter", "call", "raw", "include", "import", "from", "extends", "block",
                                        "with", "autoescape", "do", NULL};
    for (int i = 0; known[i]; i++)
        if (!strcmp(kw, known[i])) { failt(p, nt, QN_ERR_UNSUPPORTED, "unsupported tag", kw); return NULL; }
    failt(p, nt, QN_ERR_FORMAT, "unknown tag", kw);
    return NULL;
}

static int p_body(P *p, ct_body *b, const char *const *ends, tok *open, const char *what) {
    pvec v = {0};
    if (enter(p)) return -1;
    for (;;) {
        tok *t = cur(p);
        ct_node *n = NULL;
        if (t->t == T_EOF) {
            if (ends) {
                char m[64];
                int last = 0;
                while (ends[last + 1]) last++;
                snprintf(m, sizeof m, "unclosed '%s' (expected '%s')", what, ends[last]);
                return failt(p, open, QN_ERR_FORMAT, m, NULL);
            }
            break;
        }
        if (t->t == T_TEXT) {
            if (!(n = mkn(p, N_TEXT, t))) return -1;
            n->text = t->s;
            n->len = t->n;
            p->ti++;
        } else if (t->t == T_VBEGIN) {
            p->ti++;
            if (!(n = mkn(p, N_OUT, t)) || !(n->e = p_expr(p))) return -1;
            if (cur(p)->t != T_VEND) return unexpected(p);
            p->ti++;
        } else if (t->t == T_BBEGIN) {
            tok *nm = &p->toks[p->ti + 1];
            if (nm->t == T_NAME && ends) {
                int hit = 0;
                for (int i = 0; ends[i]; i++) hit |= !strcmp(nm->s, ends[i]);
                if (hit) { p->ti++; break; }
            }
            if (nm->t == T_NAME && (!strncmp(nm->s, "end", 3) || !strcmp(nm->s, "elif") || !strcmp(nm->s, "else")))
                return failt(p, nm, QN_ERR_FORMAT, "unexpected tag", nm->s);
            p->ti++;
            if (!(n = p_stmt(p, t))) return -1;
        } else return unexpected(p);
        if (pv_push(p, &v, n)) return -1;
    }
    b->v = (ct_node **)v.v;
    b->n = v.n;
    p->depth--;
    return 0;
}

qn_status ct_parse(qn_chat_template *t, const char *text, size_t len, qn_error *err) {
    P p;
    memset(&p, 0, sizeof p);
    p.t = t;
    p.err = err;
    p.lc_line = 1;
    if (len > CT_MAX_SOURCE) return qn_error_set(err, QN_ERR_NOMEM, "%s: template larger than 4 MiB", srcname(&p));
    /* newlines normalised (CRLF / CR -> LF), one trailing newline dropped */
    char *s = ct_alloc(&t->a, len + 1);
    if (!s) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", srcname(&p));
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && text[i + 1] == '\n') i++;
        } else s[n++] = text[i];
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    p.src = s;
    p.n = n;
    int rc = lex(&p);
    if (!rc) rc = p_body(&p, &t->root, NULL, NULL, NULL);
    free(p.toks);
    if (rc) {
        if (!p.failed) return qn_error_set(err, QN_ERR_FORMAT, "%s: parse error", srcname(&p));
        return p.code;
    }
    return QN_OK;
}
