/* quench — small helpers for the safetensors reader and writer: strict UTF-8 validation and a
 * string -> index hash map (tensor-name lookup in O(1); models hold ~10^5 tensors). */
#include "io/st_internal.h"

#include <stdlib.h>
#include <string.h>

int qn__utf8_valid(const unsigned char *s, size_t n, size_t *bad_at) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; min = 0x10000; }
        else goto bad; /* continuation byte, C0/C1 (overlong), F5..FF */
        if (n - i < len) goto bad;
        for (size_t k = 1; k < len; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
        i += len;
    }
    return 1;
bad:
    if (bad_at) *bad_at = i;
    return 0;
}

/* FNV-1a, 64-bit. */
static uint64_t str_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h;
}

static void insert_slot(qn__hslot *slots, size_t cap, qn__hslot s) {
    size_t mask = cap - 1;
    for (size_t i = (size_t)s.hash & mask;; i = (i + 1) & mask) {
        if (!slots[i].key) { slots[i] = s; return; }
    }
}

int qn__hmap_reserve(qn__hmap *m, size_t n) {
    if (n > SIZE_MAX / 4 / sizeof(qn__hslot)) return -1;
    size_t want = 16;
    while (want < n * 2) want *= 2; /* load factor <= 0.5 */
    if (want <= m->cap) return 0;
    qn__hslot *ns = calloc(want, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) insert_slot(ns, want, m->slots[i]);
    free(m->slots);
    m->slots = ns;
    m->cap = want;
    return 0;
}

int qn__hmap_put(qn__hmap *m, const char *key, size_t val, size_t *existing) {
    if (qn__hmap_reserve(m, m->count + 1) != 0) return -1;
    uint64_t h = str_hash(key);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        qn__hslot *s = &m->slots[i];
        if (!s->key) {
            s->key = key;
            s->hash = h;
            s->val = val;
            m->count++;
            return 0;
        }
        if (s->hash == h && strcmp(s->key, key) == 0) {
            if (existing) *existing = s->val;
            return 1;
        }
    }
}

int qn__hmap_get(const qn__hmap *m, const char *key, size_t *val) {
    if (!m->cap || !key) return 0;
    uint64_t h = str_hash(key);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const qn__hslot *s = &m->slots[i];
        if (!s->key) return 0;
        if (s->hash == h && strcmp(s->key, key) == 0) {
            if (val) *val = s->val;
            return 1;
        }
    }
}

void qn__hmap_free(qn__hmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

int qn__shape_numel(int ndim, const int64_t *shape, uint64_t *numel) {
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (__builtin_mul_overflow(n, (uint64_t)shape[i], &n)) return -1;
    }
    if (n > (uint64_t)INT64_MAX) return -1;
    *numel = n;
    return 0;
}
