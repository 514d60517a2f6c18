/* quench — safetensors reading: one file (mmap, validated as the reference Rust reader does) and
 * a model folder (single file, index + shards, or every *.safetensors file).
 *
 * Validation of one file, in order (huggingface/safetensors safetensors/src/tensor.rs,
 * SafeTensors::read_metadata + Metadata::validate; docs/compressed-tensors-format.md §2.1):
 *   file >= 8 bytes; header length N <= 100,000,000 and 8 + N <= file size; header valid UTF-8,
 *   starting with '{', one JSON object followed only by whitespace (the writer's space padding);
 *   `__metadata__` (at most once) an object of string values; every other key a tensor, named once,
 *   whose value is an object with a known `dtype`, a `shape` of <= 8 non-negative integers whose
 *   product does not overflow, and `data_offsets` [begin, end] with begin <= end <= data size
 *   and end - begin == dtype size x numel. Sorted by (begin, end), the spans must start at 0 and
 *   follow each other without gap or overlap, and the last end must be the end of the file
 *   (trailing bytes are rejected, as the reference reader's MetadataIncompleteBuffer).
 * Stricter than the reference on purpose: duplicate names are an error (serde keeps the last one). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/st_internal.h"
#include "quench/safetensors.h"

#define QN_ST_MAX_HEADER 100000000ull
#define QN_ST_MAX_INDEX (1ull << 30) /* index JSON bound: ~10^7 tensors */
#define JSON_MAX_INT 9007199254740992.0 /* 2^53: integers above are not exact in a double */

struct qn_st_file {
    char *path;
    void *map;
    size_t map_size;
    size_t header_len;
    size_t data_size;
    size_t ntensors;
    qn_tensor *tensors; /* sorted by data offset; names malloc'ed */
    size_t nmeta;
    char **meta_keys, **meta_vals;
    qn__hmap index; /* name -> position in tensors */
};

struct qn_st_set {
    size_t nfiles;
    qn_st_file **files;
    size_t ntensors;
    const qn_tensor **tensors;
    qn__hmap index;
    uint64_t total_bytes;
};

/* ---------------------------------------------------------------------------------------------- */
/* One file                                                                                        */

typedef struct {
    size_t pos;   /* position in the header's key order (tie-break, for a stable sort) */
    uint64_t begin, end;
    qn_tensor t;
} raw_tensor;

static int cmp_raw(const void *a, const void *b) {
    const raw_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

/* "[3, 4]" into buf. */
static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

/* A JSON number that is an exact non-negative integer (<= 2^53). */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > JSON_MAX_INT || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

void qn_st_file_free(qn_st_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->ntensors; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    qn__hmap_free(&f->index);
    if (f->map) munmap(f->map, f->map_size);
    free(f->path);
    free(f);
}

static qn_status parse_metadata(qn_st_file *f, const cJSON *meta, qn_error *err) {
    if (!cJSON_IsObject(meta))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: '__metadata__' is not an object", f->path);
    size_t n = 0;
    for (const cJSON *c = meta->child; c; c = c->next) n++;
    f->meta_keys = calloc(n ? n : 1, sizeof(char *));
    f->meta_vals = calloc(n ? n : 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_vals)
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory reading '__metadata__'", f->path);
    for (const cJSON *c = meta->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: '__metadata__' entry '%s' is not a string",
                                f->path, c->string ? c->string : "");
        for (size_t i = 0; i < f->nmeta; i++)
            if (strcmp(f->meta_keys[i], c->string) == 0)
                return qn_error_set(err, QN_ERR_FORMAT, "%s: '__metadata__' has key '%s' twice",
                                    f->path, c->string);
        f->meta_keys[f->nmeta] = strdup(c->string);
        f->meta_vals[f->nmeta] = strdup(c->valuestring);
        f->nmeta++;
        if (!f->meta_keys[f->nmeta - 1] || !f->meta_vals[f->nmeta - 1])
            return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory reading '__metadata__'",
                                f->path);
    }
    return QN_OK;
}

/* Parses one tensor entry into r (name already set). */
static qn_status parse_tensor(const qn_st_file *f, const cJSON *v, raw_tensor *r, qn_error *err) {
    const char *p = f->path, *name = r->t.name;
    if (!cJSON_IsObject(v))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s': entry is not an object", p, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(v, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(v, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(v, "data_offsets");
    if (!jd || !js || !jo)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s': missing '%s'", p, name,
                            !jd ? "dtype" : !js ? "shape" : "data_offsets");
    if (!cJSON_IsString(jd) || !jd->valuestring)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s': dtype is not a string", p, name);
    if (qn_dtype_from_name(jd->valuestring, &r->t.dtype) != 0)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", p, name,
                            jd->valuestring);
    if (!cJSON_IsArray(js))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s': shape is not an array", p, name);
    int nd = cJSON_GetArraySize(js);
    if (nd > QN_MAX_DIMS)
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: tensor '%s': shape has %d dimensions (at most %d)",
                            p, name, nd, QN_MAX_DIMS);
    r->t.ndim = nd;
    int i = 0;
    for (const cJSON *d = js->child; d; d = d->next, i++) {
        uint64_t u;
        if (!json_uint(d, &u)) {
            char txt[64] = "?";
            if (cJSON_IsNumber(d)) snprintf(txt, sizeof txt, "%.17g", d->valuedouble);
            return qn_error_set(err, QN_ERR_FORMAT,
                                "%s: tensor '%s': shape[%d] = %s is not a non-negative integer", p,
                                name, i, txt);
        }
        r->t.shape[i] = (int64_t)u;
    }
    uint64_t numel, need;
    char sb[256];
    size_t esize = qn_dtype_size(r->t.dtype);
    if (qn__shape_numel(nd, r->t.shape, &numel) != 0 ||
        __builtin_mul_overflow(numel, (uint64_t)esize, &need))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s': shape %s overflows", p, name,
                            shape_str(sb, sizeof sb, nd, r->t.shape));
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &r->begin) ||
        !json_uint(jo->child->next, &r->end))
        return qn_error_set(err, QN_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets is not a pair of non-negative integers", p,
                            name);
    if (r->begin > r->end)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin",
                            p, name, (unsigned long long)r->begin, (unsigned long long)r->end);
    if (r->end > f->data_size)
        return qn_error_set(err, QN_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the data section "
                            "(%zu bytes)",
                            p, name, (unsigned long long)r->begin, (unsigned long long)r->end,
                            f->data_size);
    if (r->end - r->begin != need)
        return qn_error_set(err, QN_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] but %s %s needs %llu bytes", p,
                            name, (unsigned long long)r->begin, (unsigned long long)r->end,
                            qn_dtype_name(r->t.dtype), shape_str(sb, sizeof sb, nd, r->t.shape),
                            (unsigned long long)need);
    r->t.nbytes = (size_t)need;
    r->t.data = (const unsigned char *)f->map + 8 + f->header_len + r->begin;
    r->t.file = f->path;
    return QN_OK;
}

static qn_status parse_header(qn_st_file *f, qn_error *err) {
    const char *p = f->path;
    const unsigned char *base = f->map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | base[i];
    if (n > QN_ST_MAX_HEADER)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes",
                            p, (unsigned long long)n, QN_ST_MAX_HEADER);
    if (n > f->map_size - 8)
        return qn_error_set(err, QN_ERR_FORMAT,
                            "%s: header length %llu but only %zu bytes follow the length field", p,
                            (unsigned long long)n, f->map_size - 8);
    f->header_len = (size_t)n;
    f->data_size = f->map_size - 8 - f->header_len;
    const char *hdr = (const char *)base + 8;
    size_t bad;
    if (!qn__utf8_valid((const unsigned char *)hdr, f->header_len, &bad))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: header is not valid UTF-8 (byte %zu of the header)",
                            p, bad);
    if (f->header_len == 0 || hdr[0] != '{')
        return qn_error_set(err, QN_ERR_FORMAT, "%s: header does not start with '{'", p);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, f->header_len, &end, 0);
    if (!root)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: header is not valid JSON (error near byte %td)",
                            p, end ? end - hdr : (ptrdiff_t)0);
    qn_status st = QN_OK;
    for (const char *q = end; q < hdr + f->header_len; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            st = qn_error_set(err, QN_ERR_FORMAT,
                              "%s: header is not valid JSON (trailing characters at byte %td)", p,
                              q - hdr);
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        st = qn_error_set(err, QN_ERR_FORMAT, "%s: header is not a JSON object", p);
        goto done;
    }
    size_t count = 0;
    for (const cJSON *c = root->child; c; c = c->next) count++;
    raw_tensor *raw = calloc(count ? count : 1, sizeof *raw);
    if (!raw) {
        st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory for %zu header entries", p, count);
        goto done;
    }
    size_t nt = 0;
    int seen_meta = 0;
    qn__hmap names = {0};
    if (qn__hmap_reserve(&names, count) != 0) {
        st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory for %zu header entries", p, count);
        goto fail_raw;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        const char *key = c->string ? c->string : "";
        if (strcmp(key, "__metadata__") == 0) {
            if (seen_meta) {
                st = qn_error_set(err, QN_ERR_FORMAT, "%s: '__metadata__' appears twice", p);
                goto fail_raw;
            }
            seen_meta = 1;
            if ((st = parse_metadata(f, c, err)) != QN_OK) goto fail_raw;
            continue;
        }
        raw_tensor *r = &raw[nt];
        r->pos = nt;
        if (!(r->t.name = strdup(key))) {
            st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", p);
            goto fail_raw;
        }
        nt++;
        int rc = qn__hmap_put(&names, r->t.name, nt - 1, NULL);
        if (rc < 0) {
            st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", p);
            goto fail_raw;
        }
        if (rc > 0) {
            st = qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", p,
                              key);
            goto fail_raw;
        }
        if ((st = parse_tensor(f, c, r, err)) != QN_OK) goto fail_raw;
    }
    qn__hmap_free(&names);

    qsort(raw, nt, sizeof *raw, cmp_raw);
    uint64_t expect = 0;
    for (size_t i = 0; i < nt; i++) {
        const raw_tensor *r = &raw[i];
        if (r->begin > expect) {
            if (i == 0)
                st = qn_error_set(err, QN_ERR_FORMAT,
                                  "%s: tensor '%s': data_offsets [%llu, %llu] leave a gap of %llu bytes "
                                  "at the start of the data section",
                                  p, r->t.name, (unsigned long long)r->begin,
                                  (unsigned long long)r->end, (unsigned long long)r->begin);
            else
                st = qn_error_set(err, QN_ERR_FORMAT,
                                  "%s: tensor '%s': data_offsets [%llu, %llu] leave a gap of %llu bytes "
                                  "after tensor '%s' [%llu, %llu]",
                                  p, r->t.name, (unsigned long long)r->begin,
                                  (unsigned long long)r->end, (unsigned long long)(r->begin - expect),
                                  raw[i - 1].t.name, (unsigned long long)raw[i - 1].begin,
                                  (unsigned long long)raw[i - 1].end);
            goto fail_raw;
        }
        if (r->begin < expect) {
            st = qn_error_set(err, QN_ERR_FORMAT,
                              "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
                              p, r->t.name, (unsigned long long)r->begin, (unsigned long long)r->end,
                              raw[i - 1].t.name, (unsigned long long)raw[i - 1].begin,
                              (unsigned long long)raw[i - 1].end);
            goto fail_raw;
        }
        expect = r->end;
    }
    if (expect != f->data_size) {
        st = qn_error_set(err, QN_ERR_FORMAT,
                          "%s: the tensors cover %llu bytes of the %zu-byte data section (%llu trailing "
                          "bytes)",
                          p, (unsigned long long)expect, f->data_size,
                          (unsigned long long)(f->data_size - expect));
        goto fail_raw;
    }

    f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
    if (!f->tensors || qn__hmap_reserve(&f->index, nt) != 0) {
        st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory for %zu tensors", p, nt);
        goto fail_raw;
    }
    for (size_t i = 0; i < nt; i++) {
        f->tensors[i] = raw[i].t;
        qn__hmap_put(&f->index, f->tensors[i].name, i, NULL); /* reserved, unique: cannot fail */
    }
    f->ntensors = nt;
    free(raw);
    goto done;

fail_raw:
    qn__hmap_free(&names);
    for (size_t i = 0; i < nt; i++) free((char *)raw[i].t.name);
    free(raw);
done:
    cJSON_Delete(root);
    return st;
}

qn_status qn_st_file_open(const char *path, qn_st_file **out, qn_error *err) {
    if (!path || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_st_file_open: NULL argument");
    *out = NULL;
    qn_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        qn_st_file_free(f);
        return qn_error_set(err, e == ENOENT ? QN_ERR_NOT_FOUND : QN_ERR_IO, "%s: cannot open: %s",
                            path, strerror(e));
    }
    struct stat sb;
    qn_status st = QN_OK;
    if (fstat(fd, &sb) != 0) {
        st = qn_error_set(err, QN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = qn_error_set(err, QN_ERR_IO, "%s: not a regular file", path);
    } else if (sb.st_size < 8) {
        st = qn_error_set(err, QN_ERR_FORMAT,
                          "%s: file is %lld bytes, too small for a safetensors header (8 bytes)", path,
                          (long long)sb.st_size);
    } else {
        f->map_size = (size_t)sb.st_size;
        void *m = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            st = qn_error_set(err, QN_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
        else
            f->map = m;
    }
    close(fd);
    if (st == QN_OK) st = parse_header(f, err);
    if (st != QN_OK) {
        qn_st_file_free(f);
        return st;
    }
    *out = f;
    return QN_OK;
}

size_t qn_st_file_count(const qn_st_file *f) { return f ? f->ntensors : 0; }

const qn_tensor *qn_st_file_get(const qn_st_file *f, size_t i) {
    return f && i < f->ntensors ? &f->tensors[i] : NULL;
}

const qn_tensor *qn_st_file_find(const qn_st_file *f, const char *name) {
    size_t i;
    if (!f || !qn__hmap_get(&f->index, name, &i)) return NULL;
    return &f->tensors[i];
}

const char *qn_st_file_metadata(const qn_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

size_t qn_st_file_metadata_count(const qn_st_file *f) { return f ? f->nmeta : 0; }
const char *qn_st_file_metadata_key(const qn_st_file *f, size_t i) {
    return f && i < f->nmeta ? f->meta_keys[i] : NULL;
}
const char *qn_st_file_metadata_value(const qn_st_file *f, size_t i) {
    return f && i < f->nmeta ? f->meta_vals[i] : NULL;
}
const char *qn_st_file_path(const qn_st_file *f) { return f ? f->path : NULL; }

/* ---------------------------------------------------------------------------------------------- */
/* A model folder                                                                                  */

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

static int is_regular(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void qn_st_set_free(qn_st_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nfiles; i++) qn_st_file_free(s->files[i]);
    free(s->files);
    free(s->tensors);
    qn__hmap_free(&s->index);
    free(s);
}

/* Opens `names` (relative to dir) in order into s->files and builds the combined index. */
static qn_status set_open_files(qn_st_set *s, const char *dir, const char *const *names, size_t n,
                                qn_error *err) {
    s->files = calloc(n ? n : 1, sizeof *s->files);
    if (!s->files) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", dir);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = path_join(dir, names[i]);
        if (!p) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", dir);
        qn_status st = qn_st_file_open(p, &s->files[i], err);
        free(p);
        if (st != QN_OK) return st;
        s->nfiles++;
        total += s->files[i]->ntensors;
    }
    s->tensors = calloc(total ? total : 1, sizeof *s->tensors);
    if (!s->tensors || qn__hmap_reserve(&s->index, total) != 0)
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory for %zu tensors", dir, total);
    for (size_t i = 0; i < s->nfiles; i++) {
        const qn_st_file *f = s->files[i];
        for (size_t k = 0; k < f->ntensors; k++) {
            const qn_tensor *t = &f->tensors[k];
            size_t prev;
            if (qn__hmap_put(&s->index, t->name, s->ntensors, &prev) == 1)
                return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' is also in %s", t->file,
                                    t->name, s->tensors[prev]->file);
            s->tensors[s->ntensors++] = t;
            s->total_bytes += t->nbytes;
        }
    }
    return QN_OK;
}

static int plain_file_name(const char *s) {
    return *s && !strchr(s, '/') && !strstr(s, "..");
}

static qn_status open_indexed(qn_st_set *s, const char *dir, const char *ipath, qn_error *err) {
    size_t len = 0;
    struct stat sb;
    if (stat(ipath, &sb) != 0)
        return qn_error_set(err, QN_ERR_IO, "%s: cannot stat: %s", ipath, strerror(errno));
    if ((unsigned long long)sb.st_size > QN_ST_MAX_INDEX)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: %lld bytes, larger than the %llu-byte limit",
                            ipath, (long long)sb.st_size, QN_ST_MAX_INDEX);
    FILE *fp = fopen(ipath, "rb");
    if (!fp) return qn_error_set(err, QN_ERR_IO, "%s: cannot open: %s", ipath, strerror(errno));
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        fclose(fp);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", ipath);
    }
    len = fread(buf, 1, (size_t)sb.st_size, fp);
    int rerr = ferror(fp);
    fclose(fp);
    if (rerr || len != (size_t)sb.st_size) {
        free(buf);
        return qn_error_set(err, QN_ERR_IO, "%s: short read", ipath);
    }
    buf[len] = 0;
    qn_status st = QN_OK;
    cJSON *root = NULL;
    const char **files = NULL;
    size_t nfiles = 0;
    qn__hmap map = {0}; /* tensor name -> weight_map entry position */
    const cJSON **entries = NULL;
    size_t bad;
    if (!qn__utf8_valid((unsigned char *)buf, len, &bad)) {
        st = qn_error_set(err, QN_ERR_FORMAT, "%s: not valid UTF-8 (byte %zu)", ipath, bad);
        goto out;
    }
    root = cJSON_ParseWithLength(buf, len);
    if (!root || !cJSON_IsObject(root)) {
        st = qn_error_set(err, QN_ERR_FORMAT, "%s: not a JSON object", ipath);
        goto out;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        st = qn_error_set(err, QN_ERR_FORMAT, "%s: missing 'weight_map' object", ipath);
        goto out;
    }
    size_t n = 0;
    for (const cJSON *c = wm->child; c; c = c->next) n++;
    entries = calloc(n ? n : 1, sizeof *entries);
    files = calloc(n ? n : 1, sizeof *files);
    if (!entries || !files || qn__hmap_reserve(&map, n) != 0) {
        st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", ipath);
        goto out;
    }
    size_t ne = 0;
    for (const cJSON *c = wm->child; c; c = c->next) {
        const char *name = c->string ? c->string : "";
        if (!cJSON_IsString(c) || !c->valuestring) {
            st = qn_error_set(err, QN_ERR_FORMAT, "%s: weight_map['%s'] is not a string", ipath, name);
            goto out;
        }
        if (!plain_file_name(c->valuestring)) {
            st = qn_error_set(err, QN_ERR_FORMAT,
                              "%s: weight_map['%s'] = '%s' is not a plain file name", ipath, name,
                              c->valuestring);
            goto out;
        }
        if (qn__hmap_put(&map, name, ne, NULL) != 0) {
            st = qn_error_set(err, QN_ERR_FORMAT, "%s: weight_map lists tensor '%s' twice", ipath,
                              name);
            goto out;
        }
        entries[ne++] = c;
        files[nfiles++] = c->valuestring; /* deduplicated below */
    }
    qsort(files, nfiles, sizeof *files, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < nfiles; i++)
        if (u == 0 || strcmp(files[u - 1], files[i]) != 0) files[u++] = files[i];
    nfiles = u;
    if (nfiles == 0) {
        st = qn_error_set(err, QN_ERR_NOT_FOUND, "%s: weight_map is empty", ipath);
        goto out;
    }
    if ((st = set_open_files(s, dir, files, nfiles, err)) != QN_OK) goto out;
    /* Every tensor where the map says, every map entry present. */
    for (size_t i = 0; i < s->ntensors; i++) {
        const qn_tensor *t = s->tensors[i];
        size_t e;
        if (!qn__hmap_get(&map, t->name, &e)) {
            st = qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' is not listed in %s", t->file,
                              t->name, ipath);
            goto out;
        }
        const char *want = entries[e]->valuestring, *slash = strrchr(t->file, '/');
        const char *base = slash ? slash + 1 : t->file;
        if (strcmp(base, want) != 0) {
            st = qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s': %s maps it to '%s'", t->file,
                              t->name, ipath, want);
            goto out;
        }
    }
    for (size_t e = 0; e < ne; e++) {
        if (!qn__hmap_get(&s->index, entries[e]->string, NULL)) {
            st = qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' mapped to '%s' is not in that file",
                              ipath, entries[e]->string, entries[e]->valuestring);
            goto out;
        }
    }
out:
    qn__hmap_free(&map);
    free(entries);
    free(files);
    cJSON_Delete(root);
    free(buf);
    return st;
}

static qn_status open_scanned(qn_st_set *s, const char *dir, qn_error *err) {
    DIR *d = opendir(dir);
    if (!d) return qn_error_set(err, QN_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    qn_status st = QN_OK;
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        size_t l = strlen(nm);
        if (nm[0] == '.' || l <= 12 || strcmp(nm + l - 12, ".safetensors") != 0) continue;
        char *full = path_join(dir, nm);
        int reg = full && is_regular(full);
        free(full);
        if (!reg) continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nn = realloc(names, nc * sizeof *nn);
            if (!nn) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", dir); break; }
            names = nn;
            cap = nc;
        }
        if (!(names[n] = strdup(nm))) { st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", dir); break; }
        n++;
    }
    closedir(d);
    if (st == QN_OK && n == 0)
        st = qn_error_set(err, QN_ERR_NOT_FOUND,
                          "%s: no model.safetensors.index.json, model.safetensors or *.safetensors "
                          "file", dir);
    if (st == QN_OK) {
        qsort(names, n, sizeof *names, cmp_str);
        st = set_open_files(s, dir, (const char *const *)names, n, err);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

qn_status qn_st_set_open_dir(const char *dir, qn_st_set **out, qn_error *err) {
    if (!dir || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_st_set_open_dir: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        int e = errno;
        return qn_error_set(err, e == ENOENT ? QN_ERR_NOT_FOUND : QN_ERR_IO, "%s: %s", dir,
                            strerror(e));
    }
    if (!S_ISDIR(sb.st_mode)) return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: not a folder", dir);
    qn_st_set *s = calloc(1, sizeof *s);
    if (!s) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", dir);
    char *ipath = path_join(dir, "model.safetensors.index.json");
    char *spath = path_join(dir, "model.safetensors");
    qn_status st;
    if (!ipath || !spath) {
        st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", dir);
    } else if (is_regular(ipath)) {
        st = open_indexed(s, dir, ipath, err);
    } else if (is_regular(spath)) {
        const char *one = "model.safetensors";
        st = set_open_files(s, dir, &one, 1, err);
    } else {
        st = open_scanned(s, dir, err);
    }
    free(ipath);
    free(spath);
    if (st != QN_OK) {
        qn_st_set_free(s);
        return st;
    }
    *out = s;
    return QN_OK;
}

size_t qn_st_set_count(const qn_st_set *s) { return s ? s->ntensors : 0; }
const qn_tensor *qn_st_set_get(const qn_st_set *s, size_t i) {
    return s && i < s->ntensors ? s->tensors[i] : NULL;
}
const qn_tensor *qn_st_set_find(const qn_st_set *s, const char *name) {
    size_t i;
    if (!s || !qn__hmap_get(&s->index, name, &i)) return NULL;
    return s->tensors[i];
}
size_t qn_st_set_file_count(const qn_st_set *s) { return s ? s->nfiles : 0; }
const qn_st_file *qn_st_set_file(const qn_st_set *s, size_t i) {
    return s && i < s->nfiles ? s->files[i] : NULL;
}
uint64_t qn_st_set_total_bytes(const qn_st_set *s) { return s ? s->total_bytes : 0; }

void qn_st_set_release(const qn_st_set *s, const qn_tensor *t) {
    if (!s || !t || !t->nbytes) return;
    const unsigned char *p = t->data;
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    for (size_t i = 0; i < s->nfiles; i++) {
        const qn_st_file *f = s->files[i];
        const unsigned char *base = f->map;
        if (!base || p < base || p + t->nbytes > base + f->map_size) continue;
        /* The mapping is read-only and private, so dropping pages only means a later read faults
         * them back in from the file (the page cache keeps them). Reads map pages in aligned 64 KiB
         * windows ("fault-around"), neighbours included, so the whole windows go. */
        uintptr_t win = pg > 65536 ? (uintptr_t)pg : 65536;
        uintptr_t lo = (uintptr_t)p & ~(win - 1), hi = ((uintptr_t)(p + t->nbytes) + win - 1) & ~(win - 1);
        uintptr_t b0 = (uintptr_t)base, end = ((uintptr_t)(base + f->map_size) + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
        if (lo < b0) lo = b0;   /* the mapping itself starts page-aligned */
        if (hi > end) hi = end;
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
        return;
    }
}
