/* Tokenizer helpers: buffers, UTF-8, hash maps, the GPT-2 byte table and regex/literal
 * pattern matching with HF (onig find_iter) semantics. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tok_internal.h"

/* ---------- buffers ---------- */

int tk_buf_reserve(tk_buf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) return -1;
    size_t need = b->len + extra + 1; /* room for a NUL */
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tk_buf_put(tk_buf *b, const void *s, size_t n) {
    if (tk_buf_reserve(b, n) != 0) return -1;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

void tk_buf_free(tk_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int tk_ivec_put(tk_ivec *v, const int32_t *x, size_t n) {
    if (n > (SIZE_MAX / sizeof(int32_t)) / 2 - v->len) return -1;
    if (v->len + n > v->cap) {
        size_t cap = v->cap ? v->cap : 64;
        while (cap < v->len + n) cap *= 2;
        int32_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    if (n) memcpy(v->p + v->len, x, n * sizeof *x);
    v->len += n;
    return 0;
}

int tk_ivec_push(tk_ivec *v, int32_t x) {
    if (v->len < v->cap) {
        v->p[v->len++] = x;
        return 0;
    }
    return tk_ivec_put(v, &x, 1);
}

/* ---------- UTF-8 ---------- */

/* Length of the valid sequence starting at s[i] (1..4), or 0 if invalid. */
static int utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3) return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4) return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        return 4;
    }
    return 0;
}

size_t tk_utf8_valid_prefix(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int k = utf8_seq_len(u + i, len - i);
        if (!k) return i;
        i += (size_t)k;
    }
    return len;
}

int tk_utf8_decode(const char *s, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    if (u[0] < 0xE0) {
        *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        return 2;
    }
    if (u[0] < 0xF0) {
        *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
          ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    return 4;
}

int tk_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Number of bytes of the maximal prefix of a valid sequence at s (>= 1), for an invalid one. */
static size_t utf8_maximal_subpart(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c < 0xE0) need = 2;
    else if (c >= 0xE0 && c < 0xF0) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c < 0xF5) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 1;
    size_t i = 1;
    if (i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i < need && i < n && (s[i] & 0xC0) == 0x80) i++;
    }
    return i;
}

int tk_buf_put_lossy(tk_buf *b, const unsigned char *s, size_t n) {
    static const char repl[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n) {
            if (s[j] < 0x80) {
                j++;
                continue;
            }
            int k = utf8_seq_len(s + j, n - j);
            if (!k) break;
            j += (size_t)k;
        }
        if (j > i && tk_buf_put(b, s + i, j - i) != 0) return -1;
        if (j >= n) break;
        if (tk_buf_put(b, repl, 3) != 0) return -1;
        i = j + utf8_maximal_subpart(s + j, n - j);
    }
    return 0;
}

int tk_is_white_space(uint32_t cp) {
    if (cp >= 0x09 && cp <= 0x0D) return 1;
    switch (cp) {
    case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F:
    case 0x205F: case 0x3000:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

int tk_is_word_char(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               cp == '_';
    if (cp == 0x200C || cp == 0x200D) return 1; /* Join_Control */
    /* Other_Alphabetic symbols (circled / squared letters) */
    if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) ||
        (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189))
        return 1;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

/* ---------- string map ---------- */

uint32_t tk_hash(const char *s, size_t n) {
    /* FNV-1a, 32-bit */
    uint32_t h = 2166136261u;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        h ^= u[i];
        h *= 16777619u;
    }
    return h;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

int tk_map_init(tk_map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    if (expected > ((size_t)1 << 28)) return -1;
    m->cap = pow2_at_least(expected * 2 + 1);
    m->hash = malloc(m->cap * sizeof *m->hash);
    m->val = malloc(m->cap * sizeof *m->val);
    if (!m->hash || !m->val) {
        tk_map_free(m);
        return -1;
    }
    memset(m->val, 0xFF, m->cap * sizeof *m->val);
    return 0;
}

void tk_map_free(tk_map *m) {
    free(m->hash);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static int32_t map_find_slot(const tk_map *m, const char *k, size_t n, uint32_t h, tk_keyfn kf,
                             const void *ctx, size_t *slot) {
    size_t mask = m->cap - 1, i = h & mask;
    for (;;) {
        int32_t v = m->val[i];
        if (v < 0) {
            *slot = i;
            return -1;
        }
        if (m->hash[i] == h) {
            size_t kl;
            const char *ks = kf(ctx, v, &kl);
            if (kl == n && (n == 0 || memcmp(ks, k, n) == 0)) {
                *slot = i;
                return v;
            }
        }
        i = (i + 1) & mask;
    }
}

int32_t tk_map_get(const tk_map *m, const char *k, size_t n, tk_keyfn kf, const void *ctx) {
    if (!m->cap) return -1;
    size_t slot;
    return map_find_slot(m, k, n, tk_hash(k, n), kf, ctx, &slot);
}

static int map_grow(tk_map *m, tk_keyfn kf, const void *ctx) {
    tk_map nm;
    if (tk_map_init(&nm, m->cap) != 0) return -1; /* doubles the capacity */
    for (size_t i = 0; i < m->cap; i++) {
        if (m->val[i] < 0) continue;
        size_t mask = nm.cap - 1, j = m->hash[i] & mask;
        while (nm.val[j] >= 0) j = (j + 1) & mask;
        nm.val[j] = m->val[i];
        nm.hash[j] = m->hash[i];
        nm.n++;
    }
    (void)kf;
    (void)ctx;
    tk_map_free(m);
    *m = nm;
    return 0;
}

int tk_map_put(tk_map *m, const char *k, size_t n, int32_t val, tk_keyfn kf, const void *ctx) {
    if (!m->cap && tk_map_init(m, 16) != 0) return -1;
    if ((m->n + 1) * 2 > m->cap && map_grow(m, kf, ctx) != 0) return -1;
    uint32_t h = tk_hash(k, n);
    size_t slot;
    int32_t old = map_find_slot(m, k, n, h, kf, ctx, &slot);
    if (old < 0) m->n++;
    m->val[slot] = val;
    m->hash[slot] = h;
    return 0;
}

/* ---------- merge map ---------- */

static inline uint64_t merge_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static inline size_t merge_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (size_t)k;
}

int tk_merge_init(tk_merge_map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    if (expected > ((size_t)1 << 28)) return -1;
    m->cap = pow2_at_least(expected * 2 + 1);
    m->slot = malloc(m->cap * sizeof *m->slot);
    if (!m->slot) return -1;
    for (size_t i = 0; i < m->cap; i++) m->slot[i].key = UINT64_MAX;
    return 0;
}

void tk_merge_free(tk_merge_map *m) {
    free(m->slot);
    memset(m, 0, sizeof *m);
}

int tk_merge_put(tk_merge_map *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    if (!m->cap && tk_merge_init(m, 16) != 0) return -1;
    if ((m->n + 1) * 2 > m->cap) {
        tk_merge_map nm;
        if (tk_merge_init(&nm, m->cap) != 0) return -1;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slot[i].key == UINT64_MAX) continue;
            size_t j = merge_hash(m->slot[i].key) & (nm.cap - 1);
            while (nm.slot[j].key != UINT64_MAX) j = (j + 1) & (nm.cap - 1);
            nm.slot[j] = m->slot[i];
            nm.n++;
        }
        tk_merge_free(m);
        *m = nm;
    }
    uint64_t k = merge_key(a, b);
    size_t j = merge_hash(k) & (m->cap - 1);
    while (m->slot[j].key != UINT64_MAX && m->slot[j].key != k) j = (j + 1) & (m->cap - 1);
    if (m->slot[j].key == UINT64_MAX) m->n++;
    m->slot[j].key = k;
    m->slot[j].rank = rank;
    m->slot[j].new_id = new_id;
    return 0;
}

const tk_merge_slot *tk_merge_get(const tk_merge_map *m, int32_t a, int32_t b) {
    if (!m->cap) return NULL;
    uint64_t k = merge_key(a, b);
    size_t j = merge_hash(k) & (m->cap - 1);
    for (;;) {
        const tk_merge_slot *s = &m->slot[j];
        if (s->key == k) return s;
        if (s->key == UINT64_MAX) return NULL;
        j = (j + 1) & (m->cap - 1);
    }
}

/* ---------- GPT-2 byte table ---------- */

uint32_t tk_byte_to_cp(unsigned char b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b <= 0x20) return 256u + b;        /* 0x00..0x20 -> U+0100..U+0120 */
    if (b <= 0xA0) return 289u + (b - 0x7F); /* 0x7F..0xA0 -> U+0121..U+0142 */
    return 323u;                           /* 0xAD -> U+0143 */
}

int tk_cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 256 && cp <= 288) return (int)(cp - 256);
    if (cp >= 289 && cp <= 322) return (int)(cp - 289 + 0x7F);
    if (cp == 323) return 0xAD;
    return -1;
}

/* ---------- patterns ---------- */

int tk_pattern_regex(tk_pattern *p, const char *re, size_t re_len, char *errbuf, size_t errlen) {
    memset(p, 0, sizeof *p);
    int ec;
    PCRE2_SIZE eoff;
    /* UTF + UCP: \p{L}, Unicode \s and case folding, like onig on UTF-8 text. MULTILINE: onig's
     * default (Ruby) syntax makes ^ and $ line anchors. */
    p->re = pcre2_compile((PCRE2_SPTR)re, re_len, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &ec,
                          &eoff, NULL);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(errbuf, errlen, "%s at offset %zu", (const char *)msg, (size_t)eoff);
        return -1;
    }
    (void)pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    p->is_regex = 1;
    return 0;
}

int tk_pattern_literal(tk_pattern *p, const char *s, size_t n) {
    memset(p, 0, sizeof *p);
    p->lit = malloc(n + 1);
    if (!p->lit) return -1;
    if (n) memcpy(p->lit, s, n);
    p->lit[n] = 0;
    p->lit_len = n;
    return 0;
}

void tk_pattern_free(tk_pattern *p) {
    if (p->re) pcre2_code_free(p->re);
    free(p->lit);
    memset(p, 0, sizeof *p);
}

static int spans_push(tk_spans *o, size_t s, size_t e, int m) {
    if (o->len == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        tk_span *np = realloc(o->p, cap * sizeof *np);
        if (!np) return -1;
        o->p = np;
        o->cap = cap;
    }
    o->p[o->len].start = s;
    o->p[o->len].end = e;
    o->p[o->len].is_match = m;
    o->len++;
    return 0;
}

/* One regex search from `from`; 1 found, 0 none, -2 error. */
static int regex_search(const tk_pattern *p, pcre2_match_data *md, const char *s, size_t len,
                        size_t from, size_t *ms, size_t *me) {
    int rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                         NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) return -2;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *ms = ov[0];
    *me = ov[1];
    if (*me < *ms) *me = *ms; /* \K tricks; keep spans sane */
    return 1;
}

int tk_find_matches(const tk_pattern *p, pcre2_match_data *md, const char *s, size_t len,
                    tk_spans *out) {
    out->len = 0;
    if (len == 0) return spans_push(out, 0, 0, 0);
    size_t prev = 0;
    if (p->is_regex) {
        size_t pos = 0;
        int have_last = 0;
        size_t last_end = 0;
        while (pos <= len) {
            size_t ms, me;
            int r = regex_search(p, md, s, len, pos, &ms, &me);
            if (r < 0) return -2;
            if (r == 0) break;
            if (ms == me && have_last && last_end == me) {
                /* onig find_iter: no empty match right after the previous match */
                if (pos >= len) break;
                pos += (size_t)tk_utf8_len((unsigned char)s[pos]);
                continue;
            }
            if (ms < prev) ms = prev;
            if (prev != ms && spans_push(out, prev, ms, 0) != 0) return -1;
            if (spans_push(out, ms, me, 1) != 0) return -1;
            prev = me;
            pos = me;
            last_end = me;
            have_last = 1;
        }
    } else if (p->lit_len > 0) {
        size_t i = 0;
        while (i + p->lit_len <= len) {
            const char *f = memmem(s + i, len - i, p->lit, p->lit_len);
            if (!f) break;
            size_t ms = (size_t)(f - s);
            if (prev != ms && spans_push(out, prev, ms, 0) != 0) return -1;
            if (spans_push(out, ms, ms + p->lit_len, 1) != 0) return -1;
            prev = i = ms + p->lit_len;
        }
    }
    if (prev != len && spans_push(out, prev, len, 0) != 0) return -1;
    return 0;
}
