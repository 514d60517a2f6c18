/* Encoding, in HF tokenizers order (tokenizer/mod.rs encode_single_sequence):
 *   1. split out added tokens with normalized=false on the raw text (leftmost-longest)
 *   2. normalize each remaining segment, then split out normalized added tokens
 *   3. pre-tokenize (Split / ByteLevel / Metaspace, depth-first over the chain)
 *   4. BPE each pre-token (merge by rank with a heap, as models/bpe/word.rs merge_all)
 *   5. post-process (template) when add_special is set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

#define CACHE_MAX_KEY 256       /* words longer than this are not cached */
#define CACHE_MAX_ENTRIES (1u << 20)

/* ---------- normalizers ---------- */

static int put_cp(tk_buf *o, uint32_t cp) {
    char u[4];
    int k = tk_utf8_encode(cp, u);
    return tk_buf_put(o, u, (size_t)k);
}

static int norm_one(const tk_norm *n, pcre2_match_data *md, const char *s, size_t len, tk_buf *o,
                    tk_spans *sp) {
    o->len = 0;
    switch (n->kind) {
    case TK_NORM_NFC: case TK_NORM_NFD: case TK_NORM_NFKC: case TK_NORM_NFKD: {
        if (len == 0) return tk_buf_put(o, "", 0);
        int opt = UTF8PROC_STABLE;
        if (n->kind == TK_NORM_NFC || n->kind == TK_NORM_NFKC) opt |= UTF8PROC_COMPOSE;
        else opt |= UTF8PROC_DECOMPOSE;
        if (n->kind == TK_NORM_NFKC || n->kind == TK_NORM_NFKD) opt |= UTF8PROC_COMPAT;
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &dst,
                                          (utf8proc_option_t)opt);
        if (r < 0) {
            free(dst);
            return -2;
        }
        int rc = tk_buf_put(o, dst, (size_t)r);
        free(dst);
        return rc;
    }
    case TK_NORM_LOWERCASE: {
        if (tk_buf_reserve(o, len) != 0) return -1;
        size_t i = 0;
        while (i < len) {
            uint32_t cp;
            int k = tk_utf8_decode(s + i, &cp);
            i += (size_t)k;
            if (cp == 0x130) { /* char::to_lowercase('İ') = "i\u0307" */
                if (tk_buf_put(o, "i\xCC\x87", 3) != 0) return -1;
                continue;
            }
            if (put_cp(o, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp)) != 0) return -1;
        }
        return tk_buf_put(o, "", 0);
    }
    case TK_NORM_STRIP: {
        size_t a = 0, b = len;
        if (n->strip_left)
            while (a < b) {
                uint32_t cp;
                int k = tk_utf8_decode(s + a, &cp);
                if (!tk_is_white_space(cp)) break;
                a += (size_t)k;
            }
        if (n->strip_right)
            while (b > a) {
                size_t p = b - 1;
                while (p > a && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
                uint32_t cp;
                tk_utf8_decode(s + p, &cp);
                if (!tk_is_white_space(cp)) break;
                b = p;
            }
        return tk_buf_put(o, s + a, b - a);
    }
    case TK_NORM_REPLACE: {
        int r = tk_find_matches(&n->pat, md, s, len, sp);
        if (r != 0) return r;
        if (tk_buf_reserve(o, len) != 0) return -1;
        for (size_t i = 0; i < sp->len; i++) {
            const tk_span *x = &sp->p[i];
            if (x->is_match) {
                if (tk_buf_put(o, n->content, n->content_len) != 0) return -1;
            } else if (tk_buf_put(o, s + x->start, x->end - x->start) != 0) {
                return -1;
            }
        }
        return tk_buf_put(o, "", 0);
    }
    case TK_NORM_PREPEND:
        if (len == 0) return tk_buf_put(o, "", 0); /* HF: only a non-empty string */
        if (tk_buf_put(o, n->content, n->content_len) != 0) return -1;
        return tk_buf_put(o, s, len);
    }
    return -2;
}

int tk_normalize(const qn_tokenizer *t, pcre2_match_data *md, const char *s, size_t len,
                 tk_buf *out) {
    tk_buf tmp = {0};
    tk_spans sp = {0};
    out->len = 0;
    int rc = tk_buf_put(out, s, len);
    for (size_t i = 0; rc == 0 && i < t->n_norms; i++) {
        rc = norm_one(&t->norms[i], md, out->p, out->len, &tmp, &sp);
        if (rc == 0) {
            tk_buf x = *out;
            *out = tmp;
            tmp = x;
        }
    }
    tk_buf_free(&tmp);
    free(sp.p);
    return rc;
}

/* ---------- encode context ---------- */

typedef struct {
    tk_buf a, b;
    tk_spans spans;
} level;

typedef struct {
    int32_t c, prev, next;
    uint32_t len;
} sym;

typedef struct {
    uint32_t key_off, key_len, ids_off, ids_n;
} centry;

typedef struct {
    int32_t id;   /* -1: a gap (text) */
    size_t start, end;
} piece;

typedef struct {
    piece *p;
    size_t len, cap;
} pieces;

typedef struct {
    const qn_tokenizer *t;
    qn_error *err;
    pcre2_match_data *md;
    tk_ivec out;
    level *lv; /* [n_pres] */
    tk_buf norm;
    pieces raw, normp;
    sym *sym;
    size_t sym_cap;
    uint64_t *heap;
    size_t heap_cap;
    tk_buf tmp; /* char + prefix/suffix */
    /* word cache (per call) */
    tk_map cache;
    tk_buf ckeys;
    tk_ivec cids;
    centry *cent;
    size_t n_cent, cap_cent;
} ectx;

static const char *cache_key(const void *ctx, int32_t val, size_t *len) {
    const ectx *c = ctx;
    *len = c->cent[val].key_len;
    return c->ckeys.p + c->cent[val].key_off;
}

static qn_status e_nomem(ectx *c) {
    return qn_error_set(c->err, QN_ERR_NOMEM, "%s: out of memory while encoding", c->t->path);
}

static qn_status e_code(ectx *c, int rc, const char *what) {
    if (rc == -1) return e_nomem(c);
    return qn_error_set(c->err, QN_ERR_INTERNAL, "%s: %s failed while encoding", c->t->path, what);
}

/* ---------- BPE ---------- */

/* 4-ary min-heap of (rank << 32 | pos): pops the lowest rank, then the leftmost position, like
 * HF's BinaryHeap<Merge>. The merged id is rank_new_id[rank]. */
static int heap_push(ectx *c, size_t *n, uint32_t rank, uint32_t pos) {
    if (*n == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 256;
        uint64_t *h = realloc(c->heap, cap * sizeof *h);
        if (!h) return -1;
        c->heap = h;
        c->heap_cap = cap;
    }
    uint64_t *h = c->heap, x = ((uint64_t)rank << 32) | pos;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 4;
        if (h[p] <= x) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
    return 0;
}

static void heap_sift_down(uint64_t *h, size_t m, size_t i) {
    uint64_t x = h[i];
    for (;;) {
        size_t c0 = 4 * i + 1;
        if (c0 >= m) break;
        size_t b = c0, end = c0 + 4 < m ? c0 + 4 : m;
        for (size_t j = c0 + 1; j < end; j++)
            if (h[j] < h[b]) b = j;
        if (x <= h[b]) break;
        h[i] = h[b];
        i = b;
    }
    h[i] = x;
}

static uint64_t heap_pop(ectx *c, size_t *n) {
    uint64_t *h = c->heap, top = h[0];
    h[0] = h[--(*n)];
    if (*n) heap_sift_down(h, *n, 0);
    return top;
}

static int sym_add(ectx *c, size_t *n, int32_t id, uint32_t len) {
    if (*n == c->sym_cap) {
        size_t cap = c->sym_cap ? c->sym_cap * 2 : 256;
        sym *s = realloc(c->sym, cap * sizeof *s);
        if (!s) return -1;
        c->sym = s;
        c->sym_cap = cap;
    }
    sym *s = &c->sym[*n];
    s->c = id;
    s->prev = (int32_t)*n - 1;
    s->next = (int32_t)*n + 1;
    s->len = len;
    (*n)++;
    return 0;
}

/* BPE of one word (or of an independent chunk of it), with the per-call cache. */
static qn_status bpe_merge(ectx *c, const char *w, size_t len) {
    const qn_tokenizer *t = c->t;
    int cacheable = len <= CACHE_MAX_KEY;
    if (cacheable && c->n_cent) {
        int32_t e = tk_map_get(&c->cache, w, len, cache_key, c);
        if (e >= 0) {
            const centry *ce = &c->cent[e];
            return tk_ivec_put(&c->out, c->cids.p + ce->ids_off, ce->ids_n) ? e_nomem(c) : QN_OK;
        }
    }

    /* merge_word: one symbol per character (prefix/suffix, byte fallback, unk) */
    size_t n = 0;
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    int have_unk = 0;
    size_t i = 0;
    while (i < len) {
        size_t cl = (size_t)tk_utf8_len((unsigned char)w[i]);
        int is_first = i == 0, is_last = i + cl >= len;
        const char *s = w + i;
        size_t sl = cl;
        if ((!is_first && t->cont_prefix) || (is_last && t->eow_suffix)) {
            c->tmp.len = 0;
            if (!is_first && t->cont_prefix &&
                tk_buf_put(&c->tmp, t->cont_prefix, t->cont_prefix_len) != 0)
                return e_nomem(c);
            if (tk_buf_put(&c->tmp, w + i, cl) != 0) return e_nomem(c);
            if (is_last && t->eow_suffix && tk_buf_put(&c->tmp, t->eow_suffix, t->eow_suffix_len))
                return e_nomem(c);
            s = c->tmp.p;
            sl = c->tmp.len;
        }
        i += cl;
        int32_t id = tk_map_get(&t->vocab, s, sl, tk_vocab_key, t);
        if (id >= 0) {
            if (have_unk) {
                if (sym_add(c, &n, unk_id, unk_len) != 0) return e_nomem(c);
                have_unk = 0;
            }
            if (sym_add(c, &n, id, (uint32_t)cl) != 0) return e_nomem(c);
            continue;
        }
        if (t->byte_fallback) {
            int ok = 1;
            for (size_t k = 0; k < sl; k++)
                if (t->byte_ids[(unsigned char)s[k]] < 0) ok = 0;
            if (ok) { /* as HF: a pending unk is not flushed first */
                for (size_t k = 0; k < sl; k++)
                    if (sym_add(c, &n, t->byte_ids[(unsigned char)s[k]], 1) != 0)
                        return e_nomem(c);
                continue;
            }
        }
        if (t->unk_id != -1) {
            if (t->unk_id < 0)
                return qn_error_set(c->err, QN_ERR_FORMAT,
                                    "%s: model.unk_token is needed but is not in the vocab",
                                    t->path);
            if (have_unk && t->fuse_unk) {
                unk_len += (uint32_t)cl;
            } else {
                if (have_unk && sym_add(c, &n, unk_id, unk_len) != 0) return e_nomem(c);
                unk_id = t->unk_id;
                unk_len = (uint32_t)cl;
                have_unk = 1;
            }
        }
    }
    if (have_unk && sym_add(c, &n, unk_id, unk_len) != 0) return e_nomem(c);
    if (n == 0) return QN_OK;
    c->sym[n - 1].next = -1;

    /* merge_all */
    sym *S = c->sym;
    size_t hn = 0;
    if (n > c->heap_cap) {
        uint64_t *h = realloc(c->heap, n * sizeof *h);
        if (!h) return e_nomem(c);
        c->heap = h;
        c->heap_cap = n;
    }
    for (size_t k = 0; k + 1 < n; k++) {
        const tk_merge_slot *m = tk_merge_get(&t->merges, S[k].c, S[k + 1].c);
        if (m) c->heap[hn++] = ((uint64_t)m->rank << 32) | (uint32_t)k;
    }
    for (size_t k = hn / 4 + 1; k-- > 0;)
        if (k < hn) heap_sift_down(c->heap, hn, k);
    while (hn) {
        uint64_t top = heap_pop(c, &hn);
        uint32_t rank = (uint32_t)(top >> 32), pos = (uint32_t)top;
        int32_t new_id = t->rank_new_id[rank];
        sym *cur = &S[pos];
        if (cur->len == 0 || cur->next == -1) continue;
        int32_t next_pos = cur->next;
        sym right = S[next_pos];
        const tk_merge_slot *m = tk_merge_get(&t->merges, cur->c, right.c);
        if (!m || m->new_id != new_id) continue; /* stale entry */
        cur->c = new_id;
        cur->len += right.len;
        cur->next = right.next;
        S[next_pos].len = 0;
        if (right.next >= 0) S[right.next].prev = (int32_t)pos;
        if (cur->prev >= 0) {
            const tk_merge_slot *pm = tk_merge_get(&t->merges, S[cur->prev].c, cur->c);
            if (pm && heap_push(c, &hn, pm->rank, (uint32_t)cur->prev) != 0) return e_nomem(c);
        }
        if (cur->next >= 0) {
            const tk_merge_slot *nm = tk_merge_get(&t->merges, cur->c, S[cur->next].c);
            if (nm && heap_push(c, &hn, nm->rank, pos) != 0) return e_nomem(c);
        }
    }
    size_t first = c->out.len;
    for (size_t k = 0; k < n; k++)
        if (S[k].len && tk_ivec_push(&c->out, S[k].c) != 0) return e_nomem(c);

    if (cacheable && c->n_cent < CACHE_MAX_ENTRIES && c->ckeys.len < 0x40000000 &&
        c->cids.len < 0x40000000) {
        if (c->n_cent == c->cap_cent) {
            size_t cap = c->cap_cent ? c->cap_cent * 2 : 1024;
            centry *ne = realloc(c->cent, cap * sizeof *ne);
            if (!ne) return e_nomem(c);
            c->cent = ne;
            c->cap_cent = cap;
        }
        centry *ce = &c->cent[c->n_cent];
        ce->key_off = (uint32_t)c->ckeys.len;
        ce->key_len = (uint32_t)len;
        ce->ids_off = (uint32_t)c->cids.len;
        ce->ids_n = (uint32_t)(c->out.len - first);
        if (tk_buf_put(&c->ckeys, w, len) != 0 ||
            tk_ivec_put(&c->cids, c->out.p + first, ce->ids_n) != 0)
            return e_nomem(c);
        if (tk_map_put(&c->cache, w, len, (int32_t)c->n_cent, cache_key, c) != 0)
            return e_nomem(c);
        c->n_cent++;
    }
    return QN_OK;
}

static int bigram_has(const qn_tokenizer *t, uint32_t a, uint32_t b) {
    uint64_t key = (((uint64_t)a << 21) | b) + 1, k = key;
    k ^= k >> 31;
    k *= 0x9E3779B97F4A7C15ULL;
    k ^= k >> 29;
    size_t j = (size_t)k & (t->bigram_cap - 1);
    for (;;) {
        uint64_t v = t->bigram[j];
        if (v == key) return 1;
        if (!v) return 0;
        j = (j + 1) & (t->bigram_cap - 1);
    }
}

static qn_status bpe_word(ectx *c, const char *w, size_t len) {
    const qn_tokenizer *t = c->t;
    if (len == 0) return QN_OK;
    if (t->ignore_merges) {
        int32_t id = tk_map_get(&t->vocab, w, len, tk_vocab_key, t);
        if (id >= 0) return tk_ivec_push(&c->out, id) ? e_nomem(c) : QN_OK;
    }
    if (!t->bigram) return bpe_merge(c, w, len);
    /* split where no merge can cross (both characters are tokens, their pair is in no token) */
    size_t start = 0, i = 0;
    uint32_t prev = 0;
    int prev_tok = 0;
    while (i < len) {
        uint32_t cp;
        int cl = tk_utf8_decode(w + i, &cp);
        int is_tok = tk_map_get(&t->vocab, w + i, (size_t)cl, tk_vocab_key, t) >= 0;
        if (i > start && prev_tok && is_tok && !bigram_has(t, prev, cp)) {
            qn_status st = bpe_merge(c, w + start, i - start);
            if (st != QN_OK) return st;
            start = i;
        }
        prev = cp;
        prev_tok = is_tok;
        i += (size_t)cl;
    }
    return bpe_merge(c, w + start, len - start);
}

/* ---------- pre-tokenizers ---------- */

/* Applies a split behavior to spans (HF NormalizedString::split); afterwards each span's
 * is_match means "remove". Returns the range [*b, *e) of resulting spans. */
static void apply_behavior(tk_spans *sp, tk_split_behavior beh, int invert, size_t *b,
                           size_t *e) {
    tk_span *p = sp->p;
    size_t n = sp->len;
    for (size_t i = 0; i < n; i++) p[i].is_match = (p[i].is_match != 0) != (invert != 0);
    *b = 0;
    *e = n;
    switch (beh) {
    case TK_SPLIT_REMOVED:
        return;
    case TK_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++) p[i].is_match = 0;
        return;
    case TK_SPLIT_CONTIGUOUS:
    case TK_SPLIT_MERGED_PREV: {
        size_t w = 0;
        int prev = 0;
        for (size_t i = 0; i < n; i++) {
            int m = p[i].is_match;
            int merge = beh == TK_SPLIT_CONTIGUOUS ? (m == prev) : (m && !prev);
            if (merge && w > 0) {
                p[w - 1].end = p[i].end;
            } else {
                p[w] = p[i];
                p[w].is_match = 0;
                w++;
            }
            prev = m;
        }
        *e = w;
        return;
    }
    case TK_SPLIT_MERGED_NEXT: {
        size_t w = n;
        int prev = 0;
        for (size_t i = n; i-- > 0;) {
            int m = p[i].is_match;
            if (m && !prev && w < n) {
                p[w].start = p[i].start;
            } else {
                size_t s0 = p[i].start, e0 = p[i].end;
                w--;
                p[w].start = s0;
                p[w].end = e0;
                p[w].is_match = 0;
            }
            prev = m;
        }
        *b = w;
        return;
    }
    }
}

static qn_status pretok(ectx *c, size_t k, const char *s, size_t len, int at_start);

static qn_status split_and_recurse(ectx *c, size_t k, const tk_pattern *pat, tk_split_behavior beh,
                                   int invert, const char *s, size_t len, int at_start) {
    level *L = &c->lv[k];
    int r = tk_find_matches(pat, c->md, s, len, &L->spans);
    if (r != 0) return e_code(c, r, "pre_tokenizer regex");
    size_t b, e;
    apply_behavior(&L->spans, beh, invert, &b, &e);
    for (size_t i = b; i < e; i++) {
        tk_span x = c->lv[k].spans.p[i];
        if (x.is_match || x.end == x.start) continue;
        qn_status st = pretok(c, k + 1, s + x.start, x.end - x.start, at_start && x.start == 0);
        if (st != QN_OK) return st;
    }
    return QN_OK;
}

static int map_bytes(const char *s, size_t len, tk_buf *o) {
    o->len = 0;
    if (tk_buf_reserve(o, len * 2) != 0) return -1;
    char *d = o->p;
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = tk_byte_to_cp((unsigned char)s[i]);
        if (cp < 0x80) {
            *d++ = (char)cp;
        } else {
            *d++ = (char)(0xC0 | (cp >> 6));
            *d++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    o->len = (size_t)(d - o->p);
    o->p[o->len] = 0;
    return 0;
}

static qn_status pretok(ectx *c, size_t k, const char *s, size_t len, int at_start) {
    const qn_tokenizer *t = c->t;
    if (len == 0) return QN_OK;
    if (k == t->n_pres) return bpe_word(c, s, len);
    const tk_pre *p = &t->pres[k];
    level *L = &c->lv[k];
    switch (p->kind) {
    case TK_PRE_SPLIT:
        return split_and_recurse(c, k, &p->pat, p->behavior, p->invert, s, len, at_start);
    case TK_PRE_BYTELEVEL: {
        const char *u = s;
        size_t ul = len;
        if (p->add_prefix_space && s[0] != ' ') {
            L->a.len = 0;
            if (tk_buf_put(&L->a, " ", 1) != 0 || tk_buf_put(&L->a, s, len) != 0)
                return e_nomem(c);
            u = L->a.p;
            ul = L->a.len;
        }
        if (!p->use_regex) {
            if (map_bytes(u, ul, &L->b) != 0) return e_nomem(c);
            return pretok(c, k + 1, L->b.p, L->b.len, at_start);
        }
        int r = tk_find_matches(&p->pat, c->md, u, ul, &L->spans);
        if (r != 0) return e_code(c, r, "ByteLevel regex");
        for (size_t i = 0; i < L->spans.len; i++) {
            tk_span x = L->spans.p[i];
            if (x.end == x.start) continue;
            if (map_bytes(u + x.start, x.end - x.start, &L->b) != 0) return e_nomem(c);
            qn_status st = pretok(c, k + 1, L->b.p, L->b.len, at_start && x.start == 0);
            if (st != QN_OK) return st;
        }
        return QN_OK;
    }
    case TK_PRE_METASPACE: {
        L->a.len = 0;
        int starts = 0;
        if (s[0] == ' ') starts = 1;
        else if (len >= (size_t)p->rep_len && memcmp(s, p->rep, (size_t)p->rep_len) == 0)
            starts = 1;
        int prepend = !starts && (p->scheme == TK_PREPEND_ALWAYS ||
                                  (p->scheme == TK_PREPEND_FIRST && at_start));
        if (tk_buf_reserve(&L->a, len * 4 + 4) != 0) return e_nomem(c);
        if (prepend) tk_buf_put(&L->a, p->rep, (size_t)p->rep_len);
        size_t i = 0;
        while (i < len) {
            size_t j = i;
            while (j < len && s[j] != ' ') j++;
            tk_buf_put(&L->a, s + i, j - i);
            if (j < len) {
                tk_buf_put(&L->a, p->rep, (size_t)p->rep_len);
                j++;
            }
            i = j;
        }
        if (!p->split) return pretok(c, k + 1, L->a.p, L->a.len, at_start);
        return split_and_recurse(c, k, &p->pat, TK_SPLIT_MERGED_NEXT, 0, L->a.p, L->a.len,
                                 at_start);
    }
    }
    return QN_OK;
}

/* ---------- added tokens ---------- */

static int pieces_push(pieces *v, int32_t id, size_t s, size_t e) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        piece *p = realloc(v->p, cap * sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->len].id = id;
    v->p[v->len].start = s;
    v->p[v->len].end = e;
    v->len++;
    return 0;
}

static uint32_t cp_before(const char *s, size_t at) {
    size_t p = at - 1;
    while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
    uint32_t cp;
    tk_utf8_decode(s + p, &cp);
    return cp;
}

/* AddedVocabulary::find_matches: the text split into gaps (id -1) and added tokens. */
static int split_added(const qn_tokenizer *t, const tk_matcher *m, const char *s, size_t len,
                       pieces *out) {
    out->len = 0;
    size_t start_offset = 0, i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)s[i];
        uint32_t lo = m->first[ch], hi = m->first[ch + 1];
        if (lo == hi) {
            i++;
            continue;
        }
        const tk_added *hit = NULL;
        for (uint32_t q = lo; q < hi; q++) {
            const tk_added *a = &t->added[m->order[q]];
            const char *c = m->use_norm ? a->norm : a->content;
            size_t cl = m->use_norm ? a->norm_len : a->len;
            if (cl <= len - i && memcmp(s + i, c, cl) == 0) {
                hit = a;
                break; /* longest first */
            }
        }
        if (!hit) {
            i++;
            continue;
        }
        size_t start = i, stop = i + (m->use_norm ? hit->norm_len : hit->len);
        i = stop; /* the automaton resumes after the match, whatever happens to it below */
        if (start < start_offset) continue;
        if (hit->single_word) {
            uint32_t cp;
            int start_space = start == 0 || !tk_is_word_char(cp_before(s, start));
            int stop_space = stop == len || (tk_utf8_decode(s + stop, &cp), !tk_is_word_char(cp));
            if (!start_space || !stop_space) continue;
        }
        if (hit->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                uint32_t cp = cp_before(s, ns);
                if (!tk_is_white_space(cp)) break;
                char u[4];
                ns -= (size_t)tk_utf8_encode(cp, u);
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (hit->rstrip) {
            while (stop < len) {
                uint32_t cp;
                int k = tk_utf8_decode(s + stop, &cp);
                if (!tk_is_white_space(cp)) break;
                stop += (size_t)k;
            }
            if (stop > i) i = stop;
        }
        if (start_offset < start && pieces_push(out, -1, start_offset, start) != 0) return -1;
        if (pieces_push(out, hit->id, start, stop) != 0) return -1;
        start_offset = stop;
    }
    if (start_offset != len && pieces_push(out, -1, start_offset, len) != 0) return -1;
    return 0;
}

static qn_status segment(ectx *c, const char *s, size_t len, int at_start) {
    const qn_tokenizer *t = c->t;
    if (len == 0) return QN_OK;
    const char *ns = s;
    size_t nl = len;
    if (t->n_norms) {
        int r = tk_normalize(t, c->md, s, len, &c->norm);
        if (r == -2)
            return qn_error_set(c->err, QN_ERR_INTERNAL, "%s: normalizer failed while encoding",
                                t->path);
        if (r != 0) return e_nomem(c);
        ns = c->norm.p;
        nl = c->norm.len;
    }
    if (nl == 0) return QN_OK;
    if (!t->match_norm.n) return pretok(c, 0, ns, nl, at_start);
    if (split_added(t, &t->match_norm, ns, nl, &c->normp) != 0) return e_nomem(c);
    for (size_t i = 0; i < c->normp.len; i++) {
        piece p = c->normp.p[i];
        qn_status st;
        if (p.id >= 0)
            st = tk_ivec_push(&c->out, p.id) ? e_nomem(c) : QN_OK;
        else
            st = pretok(c, 0, ns + p.start, p.end - p.start, at_start && p.start == 0);
        if (st != QN_OK) return st;
    }
    return QN_OK;
}

static qn_status post_process(ectx *c) {
    const qn_tokenizer *t = c->t;
    for (size_t p = 0; p < t->n_posts; p++) {
        const tk_post *pp = &t->posts[p];
        tk_ivec nv = {0};
        for (size_t i = 0; i < pp->n; i++) {
            const tk_tmpl_item *it = &pp->items[i];
            int r = it->is_seq ? tk_ivec_put(&nv, c->out.p, c->out.len)
                               : tk_ivec_put(&nv, it->ids, it->n);
            if (r != 0) {
                free(nv.p);
                return e_nomem(c);
            }
        }
        free(c->out.p);
        c->out = nv;
    }
    return QN_OK;
}

static void ectx_free(ectx *c) {
    if (c->md) pcre2_match_data_free(c->md);
    free(c->out.p);
    if (c->lv) {
        for (size_t i = 0; i < c->t->n_pres; i++) {
            tk_buf_free(&c->lv[i].a);
            tk_buf_free(&c->lv[i].b);
            free(c->lv[i].spans.p);
        }
        free(c->lv);
    }
    tk_buf_free(&c->norm);
    free(c->raw.p);
    free(c->normp.p);
    free(c->sym);
    free(c->heap);
    tk_buf_free(&c->tmp);
    tk_map_free(&c->cache);
    tk_buf_free(&c->ckeys);
    free(c->cids.p);
    free(c->cent);
}

qn_status qn_tokenizer_encode(const qn_tokenizer *t, const char *text, size_t len, int add_special,
                              int32_t **ids, size_t *n, qn_error *err) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!t || !ids || !n || (!text && len))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_tokenizer_encode: NULL argument");
    if (len > TK_MAX_TEXT)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "qn_tokenizer_encode: text of %zu bytes is too large (max %zu)", len,
                            (size_t)TK_MAX_TEXT);
    size_t v = len ? tk_utf8_valid_prefix(text, len) : 0;
    if (v != len)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "qn_tokenizer_encode: text is not valid UTF-8 at byte offset %zu", v);
    ectx c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.err = err;
    qn_status st = QN_OK;
    c.md = pcre2_match_data_create(1, NULL);
    c.lv = calloc(t->n_pres ? t->n_pres : 1, sizeof *c.lv);
    if (!c.md || !c.lv) {
        st = e_nomem(&c);
        goto out;
    }
    if (len && t->match_raw.n) {
        if (split_added(t, &t->match_raw, text, len, &c.raw) != 0) {
            st = e_nomem(&c);
            goto out;
        }
        for (size_t i = 0; i < c.raw.len && st == QN_OK; i++) {
            piece p = c.raw.p[i];
            if (p.id >= 0)
                st = tk_ivec_push(&c.out, p.id) ? e_nomem(&c) : QN_OK;
            else
                st = segment(&c, text + p.start, p.end - p.start, p.start == 0);
        }
    } else if (len) {
        st = segment(&c, text, len, 1);
    }
    if (st == QN_OK && add_special) st = post_process(&c);
    if (st == QN_OK) {
        if (!c.out.p) c.out.p = malloc(sizeof(int32_t)); /* a valid pointer even when empty */
        if (!c.out.p) {
            st = e_nomem(&c);
            goto out;
        }
        *ids = c.out.p;
        *n = c.out.len;
        c.out.p = NULL;
    }
out:
    ectx_free(&c);
    return st;
}
