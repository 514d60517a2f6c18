/* Decoding: ids -> token strings -> decoder chain (HF decoders/<name>.rs decode_chain) -> joined. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* A list of token strings held in one buffer. */
typedef struct {
    tk_buf b;
    size_t *off, *len;
    size_t n, cap;
} toks;

static int toks_add(toks *t, const char *s, size_t n) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        size_t *o = realloc(t->off, cap * sizeof *o);
        if (!o) return -1;
        t->off = o;
        size_t *l = realloc(t->len, cap * sizeof *l);
        if (!l) return -1;
        t->len = l;
        t->cap = cap;
    }
    t->off[t->n] = t->b.len;
    t->len[t->n] = n;
    if (tk_buf_put(&t->b, s, n) != 0) return -1;
    t->n++;
    return 0;
}

/* Opens a new (empty) token at the end of the buffer; append with tk_buf_put then close. */
static int toks_open(toks *t) { return toks_add(t, "", 0); }
static void toks_close(toks *t) { t->len[t->n - 1] = t->b.len - t->off[t->n - 1]; }

static void toks_free(toks *t) {
    tk_buf_free(&t->b);
    free(t->off);
    free(t->len);
    memset(t, 0, sizeof *t);
}

#define TOK(l, i) ((l)->b.p + (l)->off[i])

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xXX>" -> byte (u8::from_str_radix of the two characters, which also accepts "+X"). */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    unsigned char a = (unsigned char)s[3], b = (unsigned char)s[4];
    if (a == '+') return hexval(b);
    int h = hexval(a), l = hexval(b);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

static int dec_one(const tk_dec *d, pcre2_match_data *md, const toks *in, toks *out) {
    switch (d->kind) {
    case TK_DEC_BYTELEVEL: {
        tk_buf raw = {0};
        for (size_t i = 0; i < in->n; i++) {
            const char *s = TOK(in, i);
            size_t n = in->len[i], start = raw.len, k = 0;
            int ok = 1;
            while (k < n) {
                uint32_t cp;
                k += (size_t)tk_utf8_decode(s + k, &cp);
                int b = tk_cp_to_byte(cp);
                if (b < 0) {
                    ok = 0;
                    break;
                }
                unsigned char ub = (unsigned char)b;
                if (tk_buf_put(&raw, &ub, 1) != 0) goto fail_bl;
            }
            if (!ok) {
                raw.len = start;
                if (tk_buf_put(&raw, s, n) != 0) goto fail_bl;
            }
        }
        if (toks_open(out) != 0) goto fail_bl;
        if (tk_buf_put_lossy(&out->b, (const unsigned char *)raw.p, raw.len) != 0) goto fail_bl;
        toks_close(out);
        tk_buf_free(&raw);
        return 0;
    fail_bl:
        tk_buf_free(&raw);
        return -1;
    }
    case TK_DEC_REPLACE: {
        tk_spans sp = {0};
        for (size_t i = 0; i < in->n; i++) {
            const char *s = TOK(in, i);
            int r = tk_find_matches(&d->pat, md, s, in->len[i], &sp);
            if (r != 0 || toks_open(out) != 0) {
                free(sp.p);
                return r ? r : -1;
            }
            for (size_t j = 0; j < sp.len; j++) {
                const tk_span *x = &sp.p[j];
                int rc = x->is_match ? tk_buf_put(&out->b, d->content, d->content_len)
                                     : tk_buf_put(&out->b, s + x->start, x->end - x->start);
                if (rc != 0) {
                    free(sp.p);
                    return -1;
                }
            }
            toks_close(out);
        }
        free(sp.p);
        return 0;
    }
    case TK_DEC_BYTEFALLBACK: {
        tk_buf bytes = {0};
        for (size_t i = 0; i <= in->n; i++) {
            int b = i < in->n ? byte_token(TOK(in, i), in->len[i]) : -1;
            if (b >= 0) {
                unsigned char ub = (unsigned char)b;
                if (tk_buf_put(&bytes, &ub, 1) != 0) goto fail_bf;
                continue;
            }
            if (bytes.len) {
                if (tk_utf8_valid_prefix(bytes.p, bytes.len) == bytes.len) {
                    if (toks_add(out, bytes.p, bytes.len) != 0) goto fail_bf;
                } else {
                    for (size_t k = 0; k < bytes.len; k++)
                        if (toks_add(out, "\xEF\xBF\xBD", 3) != 0) goto fail_bf;
                }
                bytes.len = 0;
            }
            if (i < in->n && toks_add(out, TOK(in, i), in->len[i]) != 0) goto fail_bf;
        }
        tk_buf_free(&bytes);
        return 0;
    fail_bf:
        tk_buf_free(&bytes);
        return -1;
    }
    case TK_DEC_FUSE:
        if (toks_open(out) != 0) return -1;
        for (size_t i = 0; i < in->n; i++)
            if (tk_buf_put(&out->b, TOK(in, i), in->len[i]) != 0) return -1;
        toks_close(out);
        return 0;
    case TK_DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = TOK(in, i);
            size_t n = in->len[i], a = 0, e = n;
            for (size_t k = 0; k < d->strip_start && a < n; k++) {
                uint32_t cp;
                int cl = tk_utf8_decode(s + a, &cp);
                if (cp != d->strip_char) break;
                a += (size_t)cl;
            }
            for (size_t k = 0; k < d->strip_stop && e > a; k++) {
                size_t p = e - 1;
                while (p > a && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
                uint32_t cp;
                tk_utf8_decode(s + p, &cp);
                if (cp != d->strip_char) break;
                e = p;
            }
            if (toks_add(out, s + a, e - a) != 0) return -1;
        }
        return 0;
    case TK_DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = TOK(in, i);
            size_t n = in->len[i], k = 0;
            if (toks_open(out) != 0) return -1;
            while (k < n) {
                size_t cl = (size_t)tk_utf8_len((unsigned char)s[k]);
                if (cl == (size_t)d->rep_len && memcmp(s + k, d->rep, cl) == 0) {
                    if (!(i == 0 && d->scheme != TK_PREPEND_NEVER) &&
                        tk_buf_put(&out->b, " ", 1) != 0)
                        return -1;
                } else if (tk_buf_put(&out->b, s + k, cl) != 0) {
                    return -1;
                }
                k += cl;
            }
            toks_close(out);
        }
        return 0;
    }
    return -2;
}

qn_status qn_tokenizer_decode(const qn_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                              char **text, qn_error *err) {
    if (text) *text = NULL;
    if (!t || !text || (!ids && n))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_tokenizer_decode: NULL argument");
    toks a = {0}, b = {0};
    pcre2_match_data *md = NULL;
    qn_status st = QN_OK;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = tk_piece(t, ids[i], &len); /* unknown ids are skipped, as HF does */
        if (!p) continue;
        if (skip_special) {
            int32_t ai = tk_map_get(&t->added_map, p, len, tk_added_key, t);
            if (ai >= 0 && t->added[ai].special) continue;
        }
        if (toks_add(&a, p, len) != 0) goto nomem;
    }
    if (t->n_decs) {
        md = pcre2_match_data_create(1, NULL);
        if (!md) goto nomem;
    }
    for (size_t k = 0; k < t->n_decs; k++) {
        b.n = 0;
        b.b.len = 0;
        int r = dec_one(&t->decs[k], md, &a, &b);
        if (r == -1) goto nomem;
        if (r != 0) {
            st = qn_error_set(err, QN_ERR_INTERNAL, "%s: decoder[%zu] failed", t->path, k);
            goto out;
        }
        toks x = a;
        a = b;
        b = x;
    }
    {
        tk_buf res = {0};
        for (size_t i = 0; i < a.n; i++) {
            if (!t->has_decoder && i > 0 && tk_buf_put(&res, " ", 1) != 0) {
                tk_buf_free(&res);
                goto nomem;
            }
            if (tk_buf_put(&res, TOK(&a, i), a.len[i]) != 0) {
                tk_buf_free(&res);
                goto nomem;
            }
        }
        if (!res.p && tk_buf_put(&res, "", 0) != 0) goto nomem;
        *text = res.p;
    }
    goto out;
nomem:
    st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory while decoding", t->path);
out:
    if (md) pcre2_match_data_free(md);
    toks_free(&a);
    toks_free(&b);
    return st;
}
