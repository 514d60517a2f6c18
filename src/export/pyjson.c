/* JSON that keeps Python's view of numbers, printed like json.dump(indent=2, sort_keys=True). */
#include "export/pyjson.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PJ_MAX_DEPTH 512

/* ---------- tree ---------- */

qn_pyjson *qn_pyjson_new(qn_pj_type type) {
    qn_pyjson *j = calloc(1, sizeof *j);
    if (j) j->type = type;
    return j;
}

qn_pyjson *qn_pyjson_new_string(const char *s) {
    qn_pyjson *j = qn_pyjson_new(QN_PJ_STRING);
    if (!j) return NULL;
    j->len = strlen(s);
    j->text = malloc(j->len + 1);
    if (!j->text) { free(j); return NULL; }
    memcpy(j->text, s, j->len + 1);
    return j;
}

qn_pyjson *qn_pyjson_new_int(long long v) {
    qn_pyjson *j = qn_pyjson_new(QN_PJ_INT);
    if (!j) return NULL;
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    j->text = strdup(b);
    if (!j->text) { free(j); return NULL; }
    return j;
}

qn_pyjson *qn_pyjson_new_float(double v) {
    qn_pyjson *j = qn_pyjson_new(QN_PJ_FLOAT);
    if (j) j->number = v;
    return j;
}

qn_pyjson *qn_pyjson_new_bool(int v) {
    qn_pyjson *j = qn_pyjson_new(QN_PJ_BOOL);
    if (j) j->boolean = !!v;
    return j;
}

void qn_pyjson_free(qn_pyjson *j) {
    if (!j) return;
    for (size_t i = 0; i < j->n; i++) qn_pyjson_free(j->items[i]);
    free(j->items);
    free(j->text);
    free(j->key);
    free(j);
}

static int push_item(qn_pyjson *c, qn_pyjson *v) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        qn_pyjson **p = realloc(c->items, nc * sizeof *p);
        if (!p) return -1;
        c->items = p;
        c->cap = nc;
    }
    c->items[c->n++] = v;
    return 0;
}

static qn_pyjson *find_member(const qn_pyjson *obj, const char *key, size_t klen, size_t *idx) {
    if (!obj || obj->type != QN_PJ_OBJECT) return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (obj->items[i]->key_len == klen && !memcmp(obj->items[i]->key, key, klen)) {
            if (idx) *idx = i;
            return obj->items[i];
        }
    return NULL;
}

qn_pyjson *qn_pyjson_get(const qn_pyjson *obj, const char *key) {
    return find_member(obj, key, strlen(key), NULL);
}

/* obj[key] = v with a key of klen bytes; replaces in place (a dict keeps the first position). */
static int set_member(qn_pyjson *obj, const char *key, size_t klen, qn_pyjson *v) {
    free(v->key);
    v->key = malloc(klen + 1);
    if (!v->key) return -1;
    memcpy(v->key, key, klen);
    v->key[klen] = 0;
    v->key_len = klen;
    size_t idx;
    if (find_member(obj, key, klen, &idx)) {
        qn_pyjson_free(obj->items[idx]);
        obj->items[idx] = v;
        return 0;
    }
    return push_item(obj, v);
}

int qn_pyjson_set(qn_pyjson *obj, const char *key, qn_pyjson *v) {
    if (!obj || obj->type != QN_PJ_OBJECT || !v) { qn_pyjson_free(v); return -1; }
    if (set_member(obj, key, strlen(key), v)) { qn_pyjson_free(v); return -1; }
    return 0;
}

int qn_pyjson_append(qn_pyjson *arr, qn_pyjson *v) {
    if (!arr || arr->type != QN_PJ_ARRAY || !v) { qn_pyjson_free(v); return -1; }
    if (push_item(arr, v)) { qn_pyjson_free(v); return -1; }
    return 0;
}

qn_pyjson *qn_pyjson_from_cjson(const cJSON *c) {
    if (!c) return NULL;
    qn_pyjson *j = NULL;
    if (cJSON_IsNull(c)) return qn_pyjson_new(QN_PJ_NULL);
    if (cJSON_IsBool(c)) return qn_pyjson_new_bool(cJSON_IsTrue(c));
    if (cJSON_IsNumber(c)) {
        double v = c->valuedouble;
        if (isfinite(v) && v == floor(v) && fabs(v) <= 9007199254740992.0) return qn_pyjson_new_int((long long)v);
        return qn_pyjson_new_float(v);
    }
    if (cJSON_IsString(c)) return qn_pyjson_new_string(c->valuestring ? c->valuestring : "");
    if (cJSON_IsArray(c) || cJSON_IsObject(c)) {
        int obj = cJSON_IsObject(c);
        j = qn_pyjson_new(obj ? QN_PJ_OBJECT : QN_PJ_ARRAY);
        if (!j) return NULL;
        for (const cJSON *e = c->child; e; e = e->next) {
            qn_pyjson *v = qn_pyjson_from_cjson(e);
            if (!v) { qn_pyjson_free(j); return NULL; }
            int rc = obj ? set_member(j, e->string ? e->string : "", e->string ? strlen(e->string) : 0, v)
                         : push_item(j, v);
            if (rc) { qn_pyjson_free(v); qn_pyjson_free(j); return NULL; }
        }
        return j;
    }
    return NULL;
}

/* ---------- parser ---------- */

typedef struct {
    const char *s;
    size_t n, i;
    const char *name;
    qn_error *err;
    qn_status st;
} pj_parser;

static void pj_fail(pj_parser *p, qn_status code, const char *what) {
    if (p->st) return;
    size_t line = 1, col = 1;
    for (size_t k = 0; k < p->i && k < p->n; k++) {
        if (p->s[k] == '\n') { line++; col = 1; } else col++;
    }
    p->st = qn_error_set(p->err, code, "%s: invalid JSON at line %zu column %zu: %s", p->name, line, col, what);
}

static void skip_ws(pj_parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int lit(pj_parser *p, const char *w) {
    size_t l = strlen(w);
    if (p->n - p->i >= l && !memcmp(p->s + p->i, w, l)) { p->i += l; return 1; }
    return 0;
}

typedef struct { char *b; size_t n, cap; } pj_buf;

static int buf_put(pj_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1) nc *= 2;
        char *q = realloc(b->b, nc);
        if (!q) return -1;
        b->b = q;
        b->cap = nc;
    }
    memcpy(b->b + b->n, s, n);
    b->n += n;
    b->b[b->n] = 0;
    return 0;
}

static int put_utf8(pj_buf *b, uint32_t cp) {
    char u[4];
    size_t k;
    if (cp < 0x80) { u[0] = (char)cp; k = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); k = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[2] = (char)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F));
        k = 4;
    }
    return buf_put(b, u, k);
}

static int hex4(pj_parser *p, uint32_t *v) {
    if (p->n - p->i < 4) return -1;
    uint32_t x = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i + k];
        x <<= 4;
        if (c >= '0' && c <= '9') x |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') x |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') x |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    p->i += 4;
    *v = x;
    return 0;
}

/* A string starting at the opening quote; the bytes go to *out (malloc'ed), length *len. */
static int parse_string(pj_parser *p, char **out, size_t *len) {
    pj_buf b = {0};
    p->i++; /* " */
    if (buf_put(&b, "", 0)) { pj_fail(p, QN_ERR_NOMEM, "out of memory"); return -1; }
    while (1) {
        if (p->i >= p->n) { free(b.b); pj_fail(p, QN_ERR_FORMAT, "unterminated string"); return -1; }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) { free(b.b); pj_fail(p, QN_ERR_FORMAT, "control character in string"); return -1; }
        if (c != '\\') {
            size_t st = p->i;
            while (p->i < p->n && p->s[p->i] != '"' && p->s[p->i] != '\\' && (unsigned char)p->s[p->i] >= 0x20) p->i++;
            if (buf_put(&b, p->s + st, p->i - st)) { free(b.b); pj_fail(p, QN_ERR_NOMEM, "out of memory"); return -1; }
            continue;
        }
        p->i++;
        if (p->i >= p->n) { free(b.b); pj_fail(p, QN_ERR_FORMAT, "unterminated escape"); return -1; }
        char e = p->s[p->i++];
        int rc = 0;
        switch (e) {
        case '"': rc = buf_put(&b, "\"", 1); break;
        case '\\': rc = buf_put(&b, "\\", 1); break;
        case '/': rc = buf_put(&b, "/", 1); break;
        case 'b': rc = buf_put(&b, "\b", 1); break;
        case 'f': rc = buf_put(&b, "\f", 1); break;
        case 'n': rc = buf_put(&b, "\n", 1); break;
        case 'r': rc = buf_put(&b, "\r", 1); break;
        case 't': rc = buf_put(&b, "\t", 1); break;
        case 'u': {
            uint32_t cp;
            if (hex4(p, &cp)) { free(b.b); pj_fail(p, QN_ERR_FORMAT, "bad \\u escape"); return -1; }
            if (cp >= 0xD800 && cp < 0xDC00 && p->n - p->i >= 6 && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
                size_t save = p->i;
                uint32_t lo;
                p->i += 2;
                if (!hex4(p, &lo) && lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else p->i = save;
            }
            rc = put_utf8(&b, cp); /* lone surrogates kept as their 3-byte form, as Python keeps them */
            break;
        }
        default: free(b.b); pj_fail(p, QN_ERR_FORMAT, "bad escape"); return -1;
        }
        if (rc) { free(b.b); pj_fail(p, QN_ERR_NOMEM, "out of memory"); return -1; }
    }
    *out = b.b;
    *len = b.n;
    return 0;
}

static qn_pyjson *parse_value(pj_parser *p, int depth);

static qn_pyjson *parse_number(pj_parser *p) {
    size_t st = p->i;
    int is_float = 0;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (lit(p, "Infinity")) {
        qn_pyjson *j = qn_pyjson_new_float(p->s[st] == '-' ? -INFINITY : INFINITY);
        if (!j) pj_fail(p, QN_ERR_NOMEM, "out of memory");
        return j;
    }
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') { pj_fail(p, QN_ERR_FORMAT, "bad number"); return NULL; }
    if (p->s[p->i] == '0') p->i++;
    else while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        size_t d = ++p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (p->i == d) { pj_fail(p, QN_ERR_FORMAT, "bad number"); return NULL; }
        is_float = 1;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        size_t d = p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (p->i == d) { pj_fail(p, QN_ERR_FORMAT, "bad number"); return NULL; }
        is_float = 1;
    }
    size_t l = p->i - st;
    char *t = malloc(l + 1);
    if (!t) { pj_fail(p, QN_ERR_NOMEM, "out of memory"); return NULL; }
    memcpy(t, p->s + st, l);
    t[l] = 0;
    qn_pyjson *j = qn_pyjson_new(is_float ? QN_PJ_FLOAT : QN_PJ_INT);
    if (!j) { free(t); pj_fail(p, QN_ERR_NOMEM, "out of memory"); return NULL; }
    if (is_float) {
        j->number = strtod(t, NULL);
        free(t);
    } else {
        if (!strcmp(t, "-0")) { t[0] = '0'; t[1] = 0; }   /* int("-0") == 0 */
        j->text = t;
    }
    return j;
}

static qn_pyjson *parse_container(pj_parser *p, int depth, int obj) {
    if (depth > PJ_MAX_DEPTH) { pj_fail(p, QN_ERR_FORMAT, "nesting too deep"); return NULL; }
    qn_pyjson *c = qn_pyjson_new(obj ? QN_PJ_OBJECT : QN_PJ_ARRAY);
    if (!c) { pj_fail(p, QN_ERR_NOMEM, "out of memory"); return NULL; }
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) { p->i++; return c; }
    while (1) {
        char *key = NULL;
        size_t klen = 0;
        skip_ws(p);
        if (obj) {
            if (p->i >= p->n || p->s[p->i] != '"') { pj_fail(p, QN_ERR_FORMAT, "expected a string key"); goto fail; }
            if (parse_string(p, &key, &klen)) goto fail;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') { free(key); pj_fail(p, QN_ERR_FORMAT, "expected ':'"); goto fail; }
            p->i++;
        }
        qn_pyjson *v = parse_value(p, depth + 1);
        if (!v) { free(key); goto fail; }
        int rc = obj ? set_member(c, key, klen, v) : push_item(c, v);
        free(key);
        if (rc) { qn_pyjson_free(v); pj_fail(p, QN_ERR_NOMEM, "out of memory"); goto fail; }
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) { p->i++; return c; }
        pj_fail(p, QN_ERR_FORMAT, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        goto fail;
    }
fail:
    qn_pyjson_free(c);
    return NULL;
}

static qn_pyjson *parse_value(pj_parser *p, int depth) {
    skip_ws(p);
    if (p->i >= p->n) { pj_fail(p, QN_ERR_FORMAT, "unexpected end of input"); return NULL; }
    char c = p->s[p->i];
    qn_pyjson *j = NULL;
    if (c == '{' || c == '[') return parse_container(p, depth, c == '{');
    if (c == '"') {
        j = qn_pyjson_new(QN_PJ_STRING);
        if (!j) { pj_fail(p, QN_ERR_NOMEM, "out of memory"); return NULL; }
        if (parse_string(p, &j->text, &j->len)) { free(j); return NULL; }
        return j;
    }
    if (lit(p, "true")) j = qn_pyjson_new_bool(1);
    else if (lit(p, "false")) j = qn_pyjson_new_bool(0);
    else if (lit(p, "null")) j = qn_pyjson_new(QN_PJ_NULL);
    else if (lit(p, "NaN")) j = qn_pyjson_new_float(NAN);
    else if (c == '-' || (c >= '0' && c <= '9') || c == 'I') return parse_number(p);
    else { pj_fail(p, QN_ERR_FORMAT, "unexpected character"); return NULL; }
    if (!j) pj_fail(p, QN_ERR_NOMEM, "out of memory");
    return j;
}

qn_status qn_pyjson_parse(const char *text, size_t len, const char *name, qn_pyjson **out, qn_error *err) {
    *out = NULL;
    pj_parser p = {text, len, 0, name ? name : "JSON", err, QN_OK};
    qn_pyjson *j = parse_value(&p, 0);
    if (!j) return p.st ? p.st : qn_error_set(err, QN_ERR_FORMAT, "%s: invalid JSON", p.name);
    skip_ws(&p);
    if (p.i != p.n) {
        qn_pyjson_free(j);
        pj_fail(&p, QN_ERR_FORMAT, "extra data after the value");
        return p.st;
    }
    *out = j;
    return QN_OK;
}

/* ---------- printer ---------- */

void qn_pyjson_float_repr(double v, char *buf, size_t n) {
    if (isnan(v)) { snprintf(buf, n, "NaN"); return; }
    if (isinf(v)) { snprintf(buf, n, v > 0 ? "Infinity" : "-Infinity"); return; }
    if (v == 0) { snprintf(buf, n, signbit(v) ? "-0.0" : "0.0"); return; }
    /* shortest digits that round-trip (as Python's repr) */
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e = [-]d[.ddd]e[+-]XX -> sign, digits, decimal exponent */
    const char *q = e;
    int neg = 0;
    if (*q == '-') { neg = 1; q++; }
    char digits[24];
    int nd = 0;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9' && nd < 23) digits[nd++] = *q;
    digits[nd] = 0;
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
    char out[64];
    int k = 0;
    if (neg) out[k++] = '-';
    if (exp10 < -4 || exp10 >= 16) {
        out[k++] = digits[0];
        if (nd > 1) {
            out[k++] = '.';
            for (int i = 1; i < nd; i++) out[k++] = digits[i];
        }
        k += snprintf(out + k, sizeof out - (size_t)k, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    } else if (exp10 < 0) {
        out[k++] = '0';
        out[k++] = '.';
        for (int i = 0; i < -exp10 - 1; i++) out[k++] = '0';
        for (int i = 0; i < nd; i++) out[k++] = digits[i];
        out[k] = 0;
    } else {
        for (int i = 0; i <= exp10; i++) out[k++] = i < nd ? digits[i] : '0';
        out[k++] = '.';
        if (nd > exp10 + 1)
            for (int i = exp10 + 1; i < nd; i++) out[k++] = digits[i];
        else
            out[k++] = '0';
        out[k] = 0;
    }
    snprintf(buf, n, "%s", out);
}

static int put_escaped(pj_buf *b, const char *s, size_t len) {
    if (buf_put(b, "\"", 1)) return -1;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        char tmp[16];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            size_t st = i;
            while (i < len && (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7F && s[i] != '"' && s[i] != '\\') i++;
            if (buf_put(b, s + st, i - st)) return -1;
            continue;
        }
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default: break;
        }
        if (esc) {
            if (buf_put(b, esc, strlen(esc))) return -1;
            i++;
            continue;
        }
        /* decode one UTF-8 sequence (invalid bytes become U+FFFD-free \u00XX of the byte) */
        uint32_t cp = c;
        size_t k = 1;
        if (c >= 0xC0 && c < 0xE0 && i + 1 < len) { cp = ((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F); k = 2; }
        else if (c >= 0xE0 && c < 0xF0 && i + 2 < len) {
            cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
            k = 3;
        } else if (c >= 0xF0 && i + 3 < len) {
            cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
                 ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
            k = 4;
        }
        i += k;
        if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
        } else {
            snprintf(tmp, sizeof tmp, "\\u%04x", cp);
        }
        if (buf_put(b, tmp, strlen(tmp))) return -1;
    }
    return buf_put(b, "\"", 1);
}

static int key_cmp(const void *a, const void *b) {
    const qn_pyjson *x = *(const qn_pyjson *const *)a, *y = *(const qn_pyjson *const *)b;
    size_t m = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, m);
    if (c) return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int put_newline(pj_buf *b, int indent, int level) {
    if (indent < 0) return 0;
    if (buf_put(b, "\n", 1)) return -1;
    for (int i = 0; i < indent * level; i++)
        if (buf_put(b, " ", 1)) return -1;
    return 0;
}

static int dump_value(pj_buf *b, const qn_pyjson *j, int indent, int level) {
    char tmp[64];
    switch (j->type) {
    case QN_PJ_NULL: return buf_put(b, "null", 4);
    case QN_PJ_BOOL: return j->boolean ? buf_put(b, "true", 4) : buf_put(b, "false", 5);
    case QN_PJ_INT: return buf_put(b, j->text, strlen(j->text));
    case QN_PJ_FLOAT: qn_pyjson_float_repr(j->number, tmp, sizeof tmp); return buf_put(b, tmp, strlen(tmp));
    case QN_PJ_STRING: return put_escaped(b, j->text, j->len);
    case QN_PJ_ARRAY:
    case QN_PJ_OBJECT: {
        int obj = j->type == QN_PJ_OBJECT;
        if (j->n == 0) return buf_put(b, obj ? "{}" : "[]", 2);
        const qn_pyjson **it = malloc(j->n * sizeof *it);
        if (!it) return -1;
        memcpy(it, j->items, j->n * sizeof *it);
        if (obj) qsort(it, j->n, sizeof *it, key_cmp);
        int rc = buf_put(b, obj ? "{" : "[", 1);
        for (size_t i = 0; i < j->n && !rc; i++) {
            if (i) rc = buf_put(b, indent < 0 ? ", " : ",", indent < 0 ? 2 : 1);
            if (!rc) rc = put_newline(b, indent, level + 1);
            if (!rc && obj) {
                rc = put_escaped(b, it[i]->key, it[i]->key_len);
                if (!rc) rc = buf_put(b, ": ", 2);
            }
            if (!rc) rc = dump_value(b, it[i], indent, level + 1);
        }
        if (!rc) rc = put_newline(b, indent, level);
        if (!rc) rc = buf_put(b, obj ? "}" : "]", 1);
        free(it);
        return rc;
    }
    }
    return -1;
}

qn_status qn_pyjson_dump(const qn_pyjson *j, int indent, char **out, qn_error *err) {
    *out = NULL;
    pj_buf b = {0};
    if (buf_put(&b, "", 0) || dump_value(&b, j, indent, 0)) {
        free(b.b);
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory printing JSON");
    }
    *out = b.b;
    return QN_OK;
}
