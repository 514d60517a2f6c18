/* quench — streaming safetensors writer, optionally sharded as transformers' save_pretrained.
 *
 * Streaming: qn_st_writer_add writes a tensor's bytes at once to its shard's hidden data file
 * "<dir>/.quench-shard-<k>.data.tmp" and keeps only the header entry in memory. At finish every
 * shard becomes "<dir>/.<final name>.tmp" = 8-byte little-endian N + header + data, copied in with
 * copy_file_range (buffered pread/write where that is unavailable), then renamed to its final
 * name; the data file is removed.
 *
 * Layout = the reference writer's (huggingface/safetensors safetensors/src/tensor.rs `prepare`,
 * used by safetensors.torch.save_file; docs/compressed-tensors-format.md §2.2), so that a shard
 * holding the same tensors is byte-identical to what save_file writes:
 *   - Tensor order, in the header AND in the data section: dtype descending in the Rust `Dtype`
 *     enum declaration order (U64, I64, F64, F32, U32, I32, BF16, F16, U16, I16, F8_E8M0,
 *     F8_E4M3, F8_E5M2, I8, U8, BOOL), then name ascending (byte-wise). Data thus does NOT keep
 *     insertion order: the finish step copies each tensor's bytes from the data file into the final
 *     file in this order, so offsets are contiguous from 0 and every tensor starts at a multiple
 *     of its element size.
 *   - Header: compact JSON (serde_json), `__metadata__` first when any metadata was set (its keys
 *     in the order they were first set; the reference uses a hash map, so it has no fixed order),
 *     then the tensors, each {"dtype":..,"shape":[..],"data_offsets":[b,e]}. Strings escaped as
 *     serde_json does (", \, \b \f \n \r \t, other control characters as \u00xx; UTF-8 raw).
 *   - Padding: spaces after the JSON up to a multiple of 8 bytes, so 8 + N is a multiple of 8.
 * Sharding follows huggingface_hub split_state_dict_into_shards_factory (§2.4): tensors in the
 * order added; one larger than max_shard_bytes gets a shard of its own at that point (the open
 * shard stays open); otherwise the open shard is closed first when the tensor would push it past
 * the limit. One shard -> model.safetensors and no index; N > 1 -> model-%05d-of-%05d.safetensors
 * + model.safetensors.index.json = json.dumps({"metadata": {["total_parameters": P,]
 * "total_size": S}, "weight_map": {...}}, indent=2, sort_keys=True) + "\n", S = sum of tensor
 * bytes; total_parameters only when qn_st_writer_set_total_parameters was called (transformers 5.x
 * writes it; 4.x does not). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* copy_file_range */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/st_internal.h"
#include "quench/safetensors.h"

typedef struct {
    char *name;
    qn_dtype dt;
    int ndim;
    int64_t shape[QN_MAX_DIMS];
    uint64_t nbytes;
    uint64_t src_off; /* offset in the shard's data file */
} w_entry;

typedef struct {
    char *data_path; /* NULL until the data file exists */
    int fd;          /* -1 once closed */
    uint64_t bytes;
    size_t *idx; /* entries, in order added */
    size_t n, cap;
} w_shard;

struct qn_st_writer {
    char *dir;
    uint64_t max_shard;
    w_entry *e;
    size_t ne, cape;
    qn__hmap names;
    w_shard *shards; /* closed shards, in final order */
    size_t nshards, capshards;
    w_shard cur;
    unsigned next_id;
    char **meta_k, **meta_v;
    size_t nmeta, capmeta;
    int has_params;
    uint64_t params;
    int failed; /* an I/O error left a data file inconsistent */
    char **created; /* final files already renamed into place (removed if finish fails) */
    size_t ncreated;
};

/* ---- small string builder ---- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_grow(sbuf *b, size_t more) {
    if (b->oom) return;
    if (b->n + more + 1 <= b->cap) return;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + more + 1) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) { b->oom = 1; return; }
    b->p = np;
    b->cap = nc;
}
static void sb_put(sbuf *b, const char *s, size_t n) {
    sb_grow(b, n);
    if (b->oom) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_u64(sbuf *b, uint64_t v) {
    char t[24];
    int n = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    sb_put(b, t, (size_t)n);
}

/* serde_json string escaping. */
static void sb_json_serde(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        char t[8];
        switch (c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                snprintf(t, sizeof t, "\\u%04x", c);
                sb_put(b, t, 6);
            } else {
                sb_put(b, (const char *)p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

/* Python json.dumps(ensure_ascii=True) string escaping (input is valid UTF-8). */
static void sb_json_py(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    char t[16];
    while (*p) {
        unsigned c = *p;
        if (c == '"') { sb_put(b, "\\\"", 2); p++; continue; }
        if (c == '\\') { sb_put(b, "\\\\", 2); p++; continue; }
        if (c == '\b') { sb_put(b, "\\b", 2); p++; continue; }
        if (c == '\f') { sb_put(b, "\\f", 2); p++; continue; }
        if (c == '\n') { sb_put(b, "\\n", 2); p++; continue; }
        if (c == '\r') { sb_put(b, "\\r", 2); p++; continue; }
        if (c == '\t') { sb_put(b, "\\t", 2); p++; continue; }
        if (c >= 0x20 && c < 0x7F) { sb_put(b, (const char *)p, 1); p++; continue; }
        uint32_t cp;
        int len;
        if (c < 0x80) { cp = c; len = 1; }
        else if (c < 0xE0) { cp = c & 0x1F; len = 2; }
        else if (c < 0xF0) { cp = c & 0x0F; len = 3; }
        else { cp = c & 0x07; len = 4; }
        for (int k = 1; k < len; k++) cp = (cp << 6) | (p[k] & 0x3F);
        p += len;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            snprintf(t, sizeof t, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            sb_put(b, t, 12);
        } else {
            snprintf(t, sizeof t, "\\u%04x", cp);
            sb_put(b, t, 6);
        }
    }
    sb_put(b, "\"", 1);
}

/* ---- files ---- */

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/') a--;
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int mkdir_p(const char *dir) {
    char *p = strdup(dir);
    if (!p) { errno = ENOMEM; return -1; }
    for (char *q = p + 1;; q++) {
        if (*q == '/' || *q == 0) {
            char c = *q;
            *q = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) { free(p); return -1; }
            *q = c;
            if (!c) break;
        }
    }
    struct stat sb;
    int ok = stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
    free(p);
    if (!ok) { errno = ENOTDIR; return -1; }
    return 0;
}

static int write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copies n bytes at in_off of `in` to the current position of `out`. */
static int copy_range(int in, uint64_t in_off, int out, uint64_t n) {
    loff_t off = (loff_t)in_off;
    int use_cfr = 1;
    while (n) {
        if (use_cfr) {
            size_t chunk = n > (1ull << 30) ? (size_t)(1ull << 30) : (size_t)n;
            ssize_t c = copy_file_range(in, &off, out, NULL, chunk, 0);
            if (c > 0) { n -= (uint64_t)c; continue; }
            if (c < 0 && errno == EINTR) continue;
            if (c == 0) { errno = EIO; return -1; } /* data file shorter than recorded */
            if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP &&
                errno != EBADF && errno != EPERM)
                return -1;
            use_cfr = 0;
        }
        char buf[1 << 16];
        size_t chunk = n > sizeof buf ? sizeof buf : (size_t)n;
        ssize_t r = pread(in, buf, chunk, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { if (r == 0) errno = EIO; return -1; }
        if (write_all(out, buf, (size_t)r) != 0) return -1;
        off += r;
        n -= (uint64_t)r;
    }
    return 0;
}

static void shard_discard(w_shard *s) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    if (s->data_path) unlink(s->data_path);
    free(s->data_path);
    s->data_path = NULL;
    free(s->idx);
    s->idx = NULL;
    s->n = s->cap = 0;
    s->bytes = 0;
}

static void writer_free(qn_st_writer *w, int remove_created) {
    shard_discard(&w->cur);
    for (size_t i = 0; i < w->nshards; i++) shard_discard(&w->shards[i]);
    free(w->shards);
    for (size_t i = 0; i < w->ne; i++) free(w->e[i].name);
    free(w->e);
    qn__hmap_free(&w->names);
    for (size_t i = 0; i < w->nmeta; i++) { free(w->meta_k[i]); free(w->meta_v[i]); }
    free(w->meta_k);
    free(w->meta_v);
    for (size_t i = 0; i < w->ncreated; i++) {
        if (remove_created) unlink(w->created[i]);
        free(w->created[i]);
    }
    free(w->created);
    free(w->dir);
    free(w);
}

/* ---- API ---- */

qn_status qn_st_writer_open(const char *dir, uint64_t max_shard_bytes, qn_st_writer **out,
                            qn_error *err) {
    if (!dir || !*dir || !out)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_st_writer_open: NULL or empty argument");
    *out = NULL;
    if (mkdir_p(dir) != 0)
        return qn_error_set(err, QN_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
    qn_st_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", dir);
    }
    w->max_shard = max_shard_bytes;
    w->cur.fd = -1;
    *out = w;
    return QN_OK;
}

qn_status qn_st_writer_set_metadata(qn_st_writer *w, const char *key, const char *value,
                                    qn_error *err) {
    if (!w || !key || !value)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_st_writer_set_metadata: NULL argument");
    if (!qn__utf8_valid((const unsigned char *)key, strlen(key), NULL) ||
        !qn__utf8_valid((const unsigned char *)value, strlen(value), NULL))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: metadata '%s' is not valid UTF-8", w->dir,
                            key);
    char *v = strdup(value);
    if (!v) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->dir);
    for (size_t i = 0; i < w->nmeta; i++) {
        if (strcmp(w->meta_k[i], key) == 0) {
            free(w->meta_v[i]);
            w->meta_v[i] = v;
            return QN_OK;
        }
    }
    if (w->nmeta == w->capmeta) {
        size_t nc = w->capmeta ? w->capmeta * 2 : 4;
        char **nk = realloc(w->meta_k, nc * sizeof *nk);
        if (nk) w->meta_k = nk;
        char **nv = nk ? realloc(w->meta_v, nc * sizeof *nv) : NULL;
        if (nv) w->meta_v = nv;
        if (!nk || !nv) { free(v); return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->dir); }
        w->capmeta = nc;
    }
    char *k = strdup(key);
    if (!k) { free(v); return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->dir); }
    w->meta_k[w->nmeta] = k;
    w->meta_v[w->nmeta] = v;
    w->nmeta++;
    return QN_OK;
}

void qn_st_writer_set_total_parameters(qn_st_writer *w, uint64_t n) {
    if (!w) return;
    w->has_params = 1;
    w->params = n;
}

static qn_status shard_start(qn_st_writer *w, w_shard *s, qn_error *err) {
    memset(s, 0, sizeof *s);
    s->fd = -1;
    char nm[64];
    snprintf(nm, sizeof nm, ".quench-shard-%u.data.tmp", w->next_id++);
    if (!(s->data_path = path_join(w->dir, nm)))
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->dir);
    s->fd = open(s->data_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        qn_status st = qn_error_set(err, QN_ERR_IO, "%s: cannot create: %s", s->data_path,
                                    strerror(errno));
        free(s->data_path);
        s->data_path = NULL;
        return st;
    }
    return QN_OK;
}

/* Moves `s` (closing its data file) to the list of finished shards. */
static qn_status shard_close(qn_st_writer *w, w_shard *s, qn_error *err) {
    if (w->nshards == w->capshards) {
        size_t nc = w->capshards ? w->capshards * 2 : 8;
        w_shard *ns = realloc(w->shards, nc * sizeof *ns);
        if (!ns) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->dir);
        w->shards = ns;
        w->capshards = nc;
    }
    if (s->fd >= 0 && close(s->fd) != 0) {
        s->fd = -1;
        w->failed = 1;
        return qn_error_set(err, QN_ERR_IO, "%s: write failed: %s", s->data_path, strerror(errno));
    }
    s->fd = -1;
    w->shards[w->nshards++] = *s;
    memset(s, 0, sizeof *s);
    s->fd = -1;
    return QN_OK;
}

static qn_status shard_append(qn_st_writer *w, w_shard *s, size_t ei, const void *data,
                              qn_error *err) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        size_t *ni = realloc(s->idx, nc * sizeof *ni);
        if (!ni) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->dir);
        s->idx = ni;
        s->cap = nc;
    }
    w_entry *e = &w->e[ei];
    if (e->nbytes && write_all(s->fd, data, (size_t)e->nbytes) != 0) {
        w->failed = 1;
        return qn_error_set(err, QN_ERR_IO, "%s: tensor '%s': write failed: %s", s->data_path,
                            e->name, strerror(errno));
    }
    e->src_off = s->bytes;
    s->bytes += e->nbytes;
    s->idx[s->n++] = ei;
    return QN_OK;
}

qn_status qn_st_writer_add(qn_st_writer *w, const char *name, qn_dtype dt, int ndim,
                           const int64_t *shape, const void *data, size_t nbytes, qn_error *err) {
    if (!w || !name) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_st_writer_add: NULL argument");
    const char *d = w->dir;
    if (w->failed)
        return qn_error_set(err, QN_ERR_IO, "%s: tensor '%s': writer failed earlier", d, name);
    if (!qn__utf8_valid((const unsigned char *)name, strlen(name), NULL))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: tensor name is not valid UTF-8", d);
    if (strcmp(name, "__metadata__") == 0)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: '__metadata__' cannot name a tensor", d);
    if ((int)dt < 0 || dt >= QN_DT_COUNT)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: tensor '%s': invalid dtype %d", d, name,
                            (int)dt);
    if (ndim < 0 || ndim > QN_MAX_DIMS || (ndim > 0 && !shape))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: tensor '%s': %d dimensions (0..%d allowed)",
                            d, name, ndim, QN_MAX_DIMS);
    uint64_t numel, need;
    if (qn__shape_numel(ndim, shape, &numel) != 0 ||
        __builtin_mul_overflow(numel, (uint64_t)qn_dtype_size(dt), &need))
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: tensor '%s': shape has a negative dimension or overflows", d, name);
    if (need != (uint64_t)nbytes)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: tensor '%s': %zu bytes given but %s with %llu elements needs %llu", d,
                            name, nbytes, qn_dtype_name(dt), (unsigned long long)numel,
                            (unsigned long long)need);
    if (nbytes && !data)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: tensor '%s': NULL data", d, name);
    if (qn__hmap_get(&w->names, name, NULL))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: tensor '%s' added twice", d, name);

    if (w->ne == w->cape) {
        size_t nc = w->cape ? w->cape * 2 : 64;
        w_entry *ne = realloc(w->e, nc * sizeof *ne);
        if (!ne) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", d);
        w->e = ne;
        w->cape = nc;
    }
    w_entry *e = &w->e[w->ne];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", d);
    e->dt = dt;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = nbytes;
    if (qn__hmap_put(&w->names, e->name, w->ne, NULL) != 0) {
        free(e->name);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", d);
    }
    size_t ei = w->ne++;
    /* From here on the entry is registered; a failure marks the writer failed. */
    qn_status st = QN_OK;
    if (w->max_shard && nbytes > w->max_shard) {
        w_shard own;
        if ((st = shard_start(w, &own, err)) == QN_OK &&
            (st = shard_append(w, &own, ei, data, err)) == QN_OK)
            st = shard_close(w, &own, err);
        if (st != QN_OK) shard_discard(&own);
    } else {
        if (w->max_shard && w->cur.n > 0 && w->cur.bytes + nbytes > w->max_shard)
            st = shard_close(w, &w->cur, err);
        if (st == QN_OK && !w->cur.data_path) st = shard_start(w, &w->cur, err);
        if (st == QN_OK) st = shard_append(w, &w->cur, ei, data, err);
    }
    if (st != QN_OK) w->failed = 1;
    return st;
}

/* Reference tensor order: dtype rank descending, then name ascending (byte-wise). */
typedef struct {
    const w_entry *e;
} sort_ref;
static int cmp_ref_order(const void *a, const void *b) {
    const w_entry *x = ((const sort_ref *)a)->e, *y = ((const sort_ref *)b)->e;
    int rx = qn__dtype_rank(x->dt), ry = qn__dtype_rank(y->dt);
    if (rx != ry) return rx > ry ? -1 : 1;
    return strcmp(x->name, y->name);
}

static qn_status write_shard(qn_st_writer *w, const w_shard *s, const char *final_name,
                             qn_error *err) {
    qn_status st = QN_OK;
    sort_ref *ord = calloc(s->n ? s->n : 1, sizeof *ord);
    sbuf h = {0};
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, ".%s.tmp", final_name);
    char *tmp = path_join(w->dir, tmpname), *fin = path_join(w->dir, final_name);
    int in = -1, out = -1;
    if (!ord || !tmp || !fin) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->dir); goto out; }
    for (size_t i = 0; i < s->n; i++) ord[i].e = &w->e[s->idx[i]];
    qsort(ord, s->n, sizeof *ord, cmp_ref_order);

    sb_put(&h, "{", 1);
    int first = 1;
    if (w->nmeta) {
        sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < w->nmeta; i++) {
            if (i) sb_put(&h, ",", 1);
            sb_json_serde(&h, w->meta_k[i]);
            sb_put(&h, ":", 1);
            sb_json_serde(&h, w->meta_v[i]);
        }
        sb_put(&h, "}", 1);
        first = 0;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < s->n; i++) {
        const w_entry *e = ord[i].e;
        if (!first) sb_put(&h, ",", 1);
        first = 0;
        sb_json_serde(&h, e->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, qn_dtype_name(e->dt));
        sb_str(&h, "\",\"shape\":[");
        for (int k = 0; k < e->ndim; k++) {
            if (k) sb_put(&h, ",", 1);
            sb_u64(&h, (uint64_t)e->shape[k]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_u64(&h, off);
        sb_put(&h, ",", 1);
        off += e->nbytes;
        sb_u64(&h, off);
        sb_str(&h, "]}");
    }
    sb_put(&h, "}", 1);
    while (h.n % 8) sb_put(&h, " ", 1);
    if (h.oom) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory for the header", w->dir); goto out; }
    if (h.n > 100000000u) {
        st = qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: header of %zu bytes exceeds the 100,000,000-byte limit",
                          fin, h.n);
        goto out;
    }

    if (s->data_path) {
        in = open(s->data_path, O_RDONLY | O_CLOEXEC);
        if (in < 0) { st = qn_error_set(err, QN_ERR_IO, "%s: cannot open: %s", s->data_path, strerror(errno)); goto out; }
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) { st = qn_error_set(err, QN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno)); goto out; }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    if (write_all(out, len8, 8) != 0 || write_all(out, h.p, h.n) != 0) {
        st = qn_error_set(err, QN_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < s->n; i++) {
        const w_entry *e = ord[i].e;
        if (e->nbytes && copy_range(in, e->src_off, out, e->nbytes) != 0) {
            st = qn_error_set(err, QN_ERR_IO, "%s: tensor '%s': copy failed: %s", tmp, e->name,
                              strerror(errno));
            goto out;
        }
    }
    int rc = close(out);
    out = -1;
    if (rc != 0) { st = qn_error_set(err, QN_ERR_IO, "%s: write failed: %s", tmp, strerror(errno)); goto out; }
    if (rename(tmp, fin) != 0) {
        st = qn_error_set(err, QN_ERR_IO, "%s: cannot rename to %s: %s", tmp, fin, strerror(errno));
        goto out;
    }
    w->created[w->ncreated++] = fin;
    fin = NULL;
out:
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    if (st != QN_OK && tmp) unlink(tmp);
    free(tmp);
    free(fin);
    free(h.p);
    free(ord);
    return st;
}

typedef struct {
    const char *name;
    size_t shard;
} wm_item;
static int cmp_wm(const void *a, const void *b) {
    return strcmp(((const wm_item *)a)->name, ((const wm_item *)b)->name);
}

static qn_status write_index(qn_st_writer *w, char **names, qn_error *err) {
    qn_status st = QN_OK;
    wm_item *items = calloc(w->ne ? w->ne : 1, sizeof *items);
    sbuf b = {0};
    char *tmp = path_join(w->dir, ".model.safetensors.index.json.tmp");
    char *fin = path_join(w->dir, "model.safetensors.index.json");
    if (!items || !tmp || !fin) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->dir); goto out; }
    size_t k = 0;
    uint64_t total = 0;
    for (size_t s = 0; s < w->nshards; s++)
        for (size_t i = 0; i < w->shards[s].n; i++) {
            const w_entry *e = &w->e[w->shards[s].idx[i]];
            items[k].name = e->name;
            items[k].shard = s;
            total += e->nbytes;
            k++;
        }
    qsort(items, k, sizeof *items, cmp_wm);
    sb_str(&b, "{\n  \"metadata\": {\n");
    if (w->has_params) {
        sb_str(&b, "    \"total_parameters\": ");
        sb_u64(&b, w->params);
        sb_str(&b, ",\n");
    }
    sb_str(&b, "    \"total_size\": ");
    sb_u64(&b, total);
    sb_str(&b, "\n  },\n  \"weight_map\": {");
    for (size_t i = 0; i < k; i++) {
        sb_str(&b, i ? ",\n    " : "\n    ");
        sb_json_py(&b, items[i].name);
        sb_str(&b, ": ");
        sb_json_py(&b, names[items[i].shard]);
    }
    sb_str(&b, k ? "\n  }\n}\n" : "}\n}\n");
    if (b.oom) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory for the index", w->dir); goto out; }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { st = qn_error_set(err, QN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno)); goto out; }
    int bad = write_all(fd, b.p, b.n) != 0;
    if (close(fd) != 0) bad = 1;
    if (bad) {
        st = qn_error_set(err, QN_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, fin) != 0) {
        st = qn_error_set(err, QN_ERR_IO, "%s: cannot rename: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    w->created[w->ncreated++] = fin;
    fin = NULL;
out:
    free(items);
    free(b.p);
    free(tmp);
    free(fin);
    return st;
}

qn_status qn_st_writer_finish(qn_st_writer *w, qn_error *err) {
    if (!w) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_st_writer_finish: NULL writer");
    qn_status st = QN_OK;
    char **names = NULL;
    if (w->failed) {
        st = qn_error_set(err, QN_ERR_IO, "%s: writer failed earlier; nothing written", w->dir);
        goto out;
    }
    if (w->cur.n > 0 || w->nshards == 0) {
        if (!w->cur.data_path && (st = shard_start(w, &w->cur, err)) != QN_OK) goto out;
        if ((st = shard_close(w, &w->cur, err)) != QN_OK) goto out;
    }
    size_t n = w->nshards;
    names = calloc(n, sizeof *names);
    w->created = calloc(n + 1, sizeof *w->created);
    if (!names || !w->created) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->dir); goto out; }
    for (size_t i = 0; i < n; i++) {
        char nm[64];
        if (n == 1) snprintf(nm, sizeof nm, "model.safetensors");
        else snprintf(nm, sizeof nm, "model-%05zu-of-%05zu.safetensors", i + 1, n);
        if (!(names[i] = strdup(nm))) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", w->dir); goto out; }
    }
    for (size_t i = 0; i < n; i++) {
        if ((st = write_shard(w, &w->shards[i], names[i], err)) != QN_OK) goto out;
        /* The data file is no longer needed (the entry list is, for the index). */
        unlink(w->shards[i].data_path);
        free(w->shards[i].data_path);
        w->shards[i].data_path = NULL;
    }
    if (n > 1) st = write_index(w, names, err);
out:
    if (names)
        for (size_t i = 0; i < w->nshards; i++) free(names[i]);
    free(names);
    writer_free(w, st != QN_OK);
    return st;
}

void qn_st_writer_abort(qn_st_writer *w) {
    if (w) writer_free(w, 1);
}
