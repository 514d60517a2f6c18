/* Public tokenizer API: loading from files, lookups, free. Encoding is in tok_encode.c,
 * decoding in tok_decode.c, JSON parsing in tok_load.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/tok_internal.h"

#define TK_MAX_FILE ((size_t)1 << 30) /* tokenizer.json of 1 GiB is far beyond any real one */

const char *tk_vocab_key(const void *ctx, int32_t val, size_t *len) {
    const qn_tokenizer *t = ctx;
    *len = t->piece_len[val];
    return t->arena.p + t->piece_off[val];
}

const char *tk_added_key(const void *ctx, int32_t val, size_t *len) {
    const qn_tokenizer *t = ctx;
    *len = t->added[val].len;
    return t->added[val].content;
}

/* Reads a whole file. A missing file is QN_ERR_IO with *missing set (optional files). */
static qn_status read_file(const char *path, char **out, size_t *len, int *missing,
                           qn_error *err) {
    *out = NULL;
    *len = 0;
    *missing = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *missing = errno == ENOENT;
        return qn_error_set(err, QN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return qn_error_set(err, QN_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > TK_MAX_FILE) {
        fclose(f);
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: file is too large (%lld bytes)", path,
                            (long long)sb.st_size);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory reading the file", path);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (got != n || bad) {
        free(buf);
        return qn_error_set(err, QN_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return QN_OK;
}

static qn_status load_common(const char *path, const char *config_path, qn_tokenizer **out,
                             qn_error *err) {
    if (!path || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    char *data;
    size_t len;
    int missing;
    qn_status st = read_file(path, &data, &len, &missing, err);
    if (st != QN_OK) return st;
    qn_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(data);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", path);
    }
    t->bos_id = t->eos_id = -1;
    t->unk_id = -1;
    t->path = strdup(path);
    if (!t->path) {
        free(data);
        free(t);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", path);
    }
    st = tk_load_json(t, path, data, len, err);
    free(data);
    if (st == QN_OK && config_path) {
        st = read_file(config_path, &data, &len, &missing, err);
        if (st != QN_OK && missing) {
            st = QN_OK; /* tokenizer_config.json is optional */
            if (err) err->code = QN_OK, err->msg[0] = 0;
        } else if (st == QN_OK) {
            st = tk_load_config(t, config_path, data, len, err);
            free(data);
        }
    }
    if (st != QN_OK) {
        qn_tokenizer_free(t);
        return st;
    }
    *out = t;
    return QN_OK;
}

qn_status qn_tokenizer_load(const char *path, qn_tokenizer **out, qn_error *err) {
    return load_common(path, NULL, out, err);
}

qn_status qn_tokenizer_load_dir(const char *dir, qn_tokenizer **out, qn_error *err) {
    if (!dir || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "tokenizer: NULL argument");
    size_t n = strlen(dir) + 32;
    char *p = malloc(n), *c = malloc(n);
    if (!p || !c) {
        free(p);
        free(c);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", dir);
    }
    snprintf(p, n, "%s/tokenizer.json", dir);
    snprintf(c, n, "%s/tokenizer_config.json", dir);
    qn_status st = load_common(p, c, out, err);
    free(p);
    free(c);
    return st;
}

void qn_tokenizer_free(qn_tokenizer *t) {
    if (!t) return;
    tk_free_contents(t);
    free(t);
}

qn_tokenizer_kind qn_tokenizer_get_kind(const qn_tokenizer *t) { return t->kind; }

const char *qn_tokenizer_kind_name(qn_tokenizer_kind k) {
    switch (k) {
    case QN_TOK_SENTENCEPIECE_BPE: return "sentencepiece-bpe";
    case QN_TOK_BYTELEVEL_BPE: return "bytelevel-bpe";
    }
    return "unknown";
}

size_t qn_tokenizer_vocab_size(const qn_tokenizer *t) { return t ? t->vocab_size : 0; }

const char *tk_piece(const qn_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || (size_t)id >= t->vocab_size) return NULL;
    int32_t a = t->added_by_id[id];
    if (a >= 0) {
        *len = t->added[a].len;
        return t->added[a].content;
    }
    if ((size_t)id >= t->n_ids || t->piece_off[id] == UINT32_MAX) return NULL;
    *len = t->piece_len[id];
    return t->arena.p + t->piece_off[id];
}

const char *qn_tokenizer_piece(const qn_tokenizer *t, int32_t id) {
    size_t len;
    return t ? tk_piece(t, id, &len) : NULL;
}

int32_t qn_tokenizer_token_id(const qn_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    size_t n = strlen(piece);
    int32_t a = tk_map_get(&t->added_map, piece, n, tk_added_key, t);
    if (a >= 0) return t->added[a].id;
    return tk_map_get(&t->vocab, piece, n, tk_vocab_key, t);
}

int32_t qn_tokenizer_bos_id(const qn_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t qn_tokenizer_eos_id(const qn_tokenizer *t) { return t ? t->eos_id : -1; }

int qn_tokenizer_is_special(const qn_tokenizer *t, int32_t id) {
    if (!t || id < 0 || (size_t)id >= t->vocab_size) return 0;
    int32_t a = t->added_by_id[id];
    return a >= 0 && t->added[a].special;
}
