/* quench — helpers shared by the safetensors reader (safetensors.c) and writer (st_writer.c).
 * Internal to src/io; not part of the public API. */
#ifndef QUENCH_IO_ST_INTERNAL_H
#define QUENCH_IO_ST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "quench/safetensors.h"

/* Strict UTF-8 check (as Rust's str::from_utf8: no overlong forms, no surrogates, <= U+10FFFF).
 * Returns 1 if valid; otherwise 0 and, if `bad_at` is non-NULL, the offset of the first bad byte. */
int qn__utf8_valid(const unsigned char *s, size_t n, size_t *bad_at);

/* String -> index hash map (open addressing, linear probing). Keys are borrowed: the caller keeps
 * them alive and unchanged while the map is in use. */
typedef struct {
    const char *key;
    uint64_t hash;
    size_t val;
} qn__hslot;

typedef struct {
    qn__hslot *slots; /* NULL key = empty */
    size_t cap;       /* power of two, or 0 */
    size_t count;
} qn__hmap;

/* Makes room for `n` keys in total. 0 on success, -1 when out of memory. */
int qn__hmap_reserve(qn__hmap *m, size_t n);
/* Inserts key -> val. Returns 0 if inserted, 1 if the key was already present (map unchanged,
 * *existing = its value if non-NULL), -1 when out of memory. */
int qn__hmap_put(qn__hmap *m, const char *key, size_t val, size_t *existing);
/* 1 and *val set if found, 0 otherwise. */
int qn__hmap_get(const qn__hmap *m, const char *key, size_t *val);
void qn__hmap_free(qn__hmap *m);

/* Position of a dtype in the safetensors Rust `Dtype` enum declaration order (ascending), used by
 * the writer to reproduce the reference tensor order. */
int qn__dtype_rank(qn_dtype dt);

/* numel of a shape with overflow and sign checks: 0 on success, -1 on a negative dim or
 * overflow of int64. */
int qn__shape_numel(int ndim, const int64_t *shape, uint64_t *numel);

#endif
