/* Calibration data: text / JSONL / JSON-array records → token-id samples (include/quench/calib.h). */
#include "quench/calib.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "quench/chat_template.h"

#define QN_CALIB_MAX_FILE (4ull << 30)

void qn_calib_opts_init(qn_calib_opts *o) {
    memset(o, 0, sizeof *o);
    o->mode = "stream";
    o->text_field = "text";
    o->num_samples = 512;
    o->max_seq_length = 2048;
    o->shuffle = 1;
    o->shuffle_seed = 42;
}

void qn_calib_free(qn_calib_set *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) free(s->samples[i].ids);
    free(s->samples);
    memset(s, 0, sizeof *s);
}

static const char k_alpaca_input[] =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n%s";
static const char k_alpaca_no_input[] =
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n%s\n\n### Response:\n%s";

char *qn_calib_alpaca_text(const char *instruction, const char *input, const char *output) {
    int has_input = input && *input;
    size_t n = strlen(instruction) + (has_input ? strlen(input) : 0) + strlen(output) + sizeof k_alpaca_input + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    if (has_input) snprintf(s, n, k_alpaca_input, instruction, input, output);
    else snprintf(s, n, k_alpaca_no_input, instruction, output);
    return s;
}

typedef struct {
    qn_sample *v;
    int64_t n, cap;
} sample_vec;

static qn_status push(sample_vec *sv, int32_t *ids, int64_t n, qn_error *err) {
    if (sv->n == sv->cap) {
        int64_t nc = sv->cap ? sv->cap * 2 : 64;
        qn_sample *p = realloc(sv->v, sizeof *p * (size_t)nc);
        if (!p) { free(ids); return qn_error_set(err, QN_ERR_NOMEM, "out of memory for calibration samples"); }
        sv->v = p;
        sv->cap = nc;
    }
    sv->v[sv->n].ids = ids;
    sv->v[sv->n].n = n;
    sv->n++;
    return QN_OK;
}

/* Encodes text and appends one sample truncated to max_len. */
static qn_status push_text(sample_vec *sv, const qn_tokenizer *tok, const char *text, size_t len, int add_special,
                           int64_t max_len, qn_error *err) {
    int32_t *ids;
    size_t n;
    qn_status st = qn_tokenizer_encode(tok, text, len, add_special, &ids, &n, err);
    if (st) return st;
    if (n == 0) { free(ids); return QN_OK; }
    if ((int64_t)n > max_len) n = (size_t)max_len;
    return push(sv, ids, (int64_t)n, err);
}

static qn_status read_all(const char *path, char **data, size_t *len, qn_error *err) {
    struct stat sb;
    if (stat(path, &sb)) return qn_error_set(err, QN_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return qn_error_set(err, QN_ERR_IO, "%s: not a regular file", path);
    if ((uint64_t)sb.st_size > QN_CALIB_MAX_FILE)
        return qn_error_set(err, QN_ERR_NOMEM, "%s: %lld bytes exceeds the 4 GB limit for calibration data", path,
                            (long long)sb.st_size);
    FILE *f = fopen(path, "rb");
    if (!f) return qn_error_set(err, QN_ERR_IO, "%s: %s", path, strerror(errno));
    char *b = malloc((size_t)sb.st_size + 1);
    if (!b) { fclose(f); return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", path); }
    size_t n = fread(b, 1, (size_t)sb.st_size, f);
    fclose(f);
    if (n != (size_t)sb.st_size) { free(b); return qn_error_set(err, QN_ERR_IO, "%s: short read", path); }
    b[n] = 0;
    *data = b;
    *len = n;
    return QN_OK;
}

static const char *str_field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

typedef struct {
    const qn_calib_opts *o;
    const qn_tokenizer *tok;
    const char *model_dir;
    qn_chat_template *tmpl;
    int tmpl_loaded;
    int kinds;   /* bit 0 text, 1 chat, 2 instruction */
} rec_ctx;

static qn_status do_record(rec_ctx *c, const cJSON *rec, const char *where, sample_vec *sv, qn_error *err) {
    if (!cJSON_IsObject(rec)) return qn_error_set(err, QN_ERR_FORMAT, "%s: expected a JSON object", where);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(rec, "messages");
    const char *text = str_field(rec, c->o->text_field ? c->o->text_field : "text");
    const char *ins = str_field(rec, "instruction"), *out = str_field(rec, "output");
    qn_status st;
    if (msgs) {
        if (!cJSON_IsArray(msgs)) return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'messages' must be a list", where);
        if (!c->tmpl_loaded) {
            c->tmpl_loaded = 1;
            if (c->model_dir && (st = qn_chat_template_load_dir(c->model_dir, &c->tmpl, err))) return st;
        }
        if (!c->tmpl)
            return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: a chat record ('messages') needs a chat template, and %s has none "
                                "(chat_template.jinja or tokenizer_config.json chat_template)", where,
                                c->model_dir ? c->model_dir : "the model");
        qn_chat_opts co = {.add_generation_prompt = 0, .enable_thinking = QN_CHAT_UNSET};
        char *s;
        size_t n;
        if ((st = qn_chat_template_render(c->tmpl, msgs, &co, &s, &n, err))) { qn_error_prefix(err, "%s", where); return st; }
        st = push_text(sv, c->tok, s, n, 0, c->o->max_seq_length, err);
        free(s);
        c->kinds |= 2;
        return st;
    }
    if (text) {
        c->kinds |= 1;
        return push_text(sv, c->tok, text, strlen(text), 1, c->o->max_seq_length, err);
    }
    if (ins && out) {
        char *s = qn_calib_alpaca_text(ins, str_field(rec, "input"), out);
        if (!s) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        st = push_text(sv, c->tok, s, strlen(s), 1, c->o->max_seq_length, err);
        free(s);
        c->kinds |= 4;
        return st;
    }
    char keys[256] = "";
    size_t k = 0;
    for (const cJSON *e = rec->child; e && k < sizeof keys - 40; e = e->next)
        k += (size_t)snprintf(keys + k, sizeof keys - k, "%s'%s'", k ? ", " : "", e->string);
    return qn_error_set(err, QN_ERR_FORMAT, "%s: record has no '%s', 'messages' or 'instruction'+'output' field (it has: %s)",
                        where, c->o->text_field ? c->o->text_field : "text", k ? keys : "nothing");
}

static qn_status load_json(rec_ctx *c, const char *path, char *data, size_t len, sample_vec *sv, qn_error *err) {
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r')) i++;
    char where[600];
    qn_status st = QN_OK;
    if (data[i] == '[') {
        cJSON *arr = cJSON_ParseWithLength(data, len);
        if (!arr || !cJSON_IsArray(arr)) { cJSON_Delete(arr); return qn_error_set(err, QN_ERR_FORMAT, "%s: invalid JSON array", path); }
        int idx = 0;
        for (cJSON *e = arr->child; e && !st; e = e->next, idx++) {
            snprintf(where, sizeof where, "%s: record %d", path, idx);
            st = do_record(c, e, where, sv, err);
        }
        cJSON_Delete(arr);
        return st;
    }
    size_t line = 0, b = 0;
    for (size_t p = 0; p <= len && !st; p++) {
        if (p < len && data[p] != '\n') continue;
        line++;
        size_t e = p;
        while (e > b && (data[e - 1] == '\r' || data[e - 1] == ' ' || data[e - 1] == '\t')) e--;
        size_t s0 = b;
        while (s0 < e && (data[s0] == ' ' || data[s0] == '\t')) s0++;
        b = p + 1;
        if (s0 == e) continue;
        if (e - s0 > (64u << 20)) return qn_error_set(err, QN_ERR_FORMAT, "%s: line %zu is longer than 64 MB", path, line);
        snprintf(where, sizeof where, "%s: line %zu", path, line);
        cJSON *rec = cJSON_ParseWithLength(data + s0, e - s0);
        if (!rec) return qn_error_set(err, QN_ERR_FORMAT, "%s: invalid JSON", where);
        st = do_record(c, rec, where, sv, err);
        cJSON_Delete(rec);
    }
    return st;
}

static qn_status load_text(const qn_calib_opts *o, const qn_tokenizer *tok, const char *path, char *data, size_t len,
                           sample_vec *sv, qn_error *err) {
    /* CRLF -> LF, as for perplexity */
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (!(data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')) data[n++] = data[i];
    data[n] = 0;
    len = n;
    const char *mode = o->mode ? o->mode : "stream";
    if (!strcmp(mode, "lines")) {
        size_t b = 0;
        for (size_t p = 0; p <= len; p++) {
            if (p < len && data[p] != '\n') continue;
            int blank = 1;
            for (size_t j = b; j < p; j++) if (data[j] != ' ' && data[j] != '\t') { blank = 0; break; }
            if (!blank) {
                qn_status st = push_text(sv, tok, data + b, p - b, 1, o->max_seq_length, err);
                if (st) return st;
            }
            b = p + 1;
        }
        return QN_OK;
    }
    if (strcmp(mode, "stream"))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "--dataset-mode '%s' is not one of stream, lines", mode);
    int32_t *ids;
    size_t nt;
    qn_status st = qn_tokenizer_encode(tok, data, len, 0, &ids, &nt, err);
    if (st) { qn_error_prefix(err, "%s", path); return st; }
    int32_t bos = qn_tokenizer_bos_id(tok);
    int64_t per = bos >= 0 ? o->max_seq_length - 1 : o->max_seq_length;
    for (size_t off = 0; off < nt && !st; off += (size_t)per) {
        int64_t k = (int64_t)(nt - off) < per ? (int64_t)(nt - off) : per;
        if (k + (bos >= 0) < 2) break;
        int32_t *s = malloc(sizeof(int32_t) * (size_t)(k + 1));
        if (!s) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory"); break; }
        int64_t w = 0;
        if (bos >= 0) s[w++] = bos;
        memcpy(s + w, ids + off, sizeof(int32_t) * (size_t)k);
        st = push(sv, s, w + k, err);
    }
    free(ids);
    return st;
}

qn_status qn_calib_load(const qn_calib_opts *o, const qn_tokenizer *tok, const char *model_dir, qn_calib_set *out,
                        qn_error *err) {
    memset(out, 0, sizeof *out);
    if (!o->path) return qn_error_set(err, QN_ERR_INVALID_ARG, "--dataset: a file is required");
    if (o->num_samples <= 0) return qn_error_set(err, QN_ERR_INVALID_ARG, "--num-calibration-samples must be positive");
    if (o->max_seq_length < 2 || o->max_seq_length > (1 << 20))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "--max-seq-length must be between 2 and 1048576");
    char *data = NULL;
    size_t len = 0;
    qn_status st = read_all(o->path, &data, &len, err);
    if (st) return st;
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r')) i++;
    int is_json = i < len && (data[i] == '{' || data[i] == '[');
    sample_vec sv = {0};
    rec_ctx c = {.o = o, .tok = tok, .model_dir = model_dir};
    if (is_json) st = load_json(&c, o->path, data, len, &sv, err);
    else st = load_text(o, tok, o->path, data, len, &sv, err);
    free(data);
    qn_chat_template_free(c.tmpl);
    if (!st && sv.n == 0) st = qn_error_set(err, QN_ERR_FORMAT, "%s: no calibration samples (the file has no text)", o->path);
    if (st) {
        for (int64_t k = 0; k < sv.n; k++) free(sv.v[k].ids);
        free(sv.v);
        return st;
    }
    if (o->shuffle && sv.n > 1) {
        uint64_t r = o->shuffle_seed ? o->shuffle_seed : 42;
        for (int64_t k = sv.n - 1; k > 0; k--) {
            r ^= r >> 12; r ^= r << 25; r ^= r >> 27;
            int64_t j = (int64_t)((r * 0x2545F4914F6CDD1DULL) % (uint64_t)(k + 1));
            qn_sample t = sv.v[k]; sv.v[k] = sv.v[j]; sv.v[j] = t;
        }
    }
    if (sv.n > o->num_samples) {
        for (int64_t k = o->num_samples; k < sv.n; k++) free(sv.v[k].ids);
        sv.n = o->num_samples;
    }
    out->samples = sv.v;
    out->n = sv.n;
    for (int64_t k = 0; k < sv.n; k++) out->tokens += sv.v[k].n;
    const char *kind = is_json ? (c.kinds == 1 ? "jsonl-text" : c.kinds == 2 ? "chat" : c.kinds == 4 ? "instruction" : "mixed")
                               : (o->mode && !strcmp(o->mode, "lines") ? "text-lines" : "text");
    snprintf(out->kind, sizeof out->kind, "%s", kind);
    return QN_OK;
}

qn_status qn_calib_split(qn_calib_set *set, int64_t n_holdout, qn_calib_set *holdout, qn_error *err) {
    memset(holdout, 0, sizeof *holdout);
    if (n_holdout <= 0) return QN_OK;
    if (n_holdout >= set->n)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%lld held-out samples leave none of the %lld for calibration",
                            (long long)n_holdout, (long long)set->n);
    holdout->samples = malloc(sizeof(qn_sample) * (size_t)n_holdout);
    if (!holdout->samples) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    memcpy(holdout->samples, set->samples + (set->n - n_holdout), sizeof(qn_sample) * (size_t)n_holdout);
    holdout->n = n_holdout;
    set->n -= n_holdout;
    for (int64_t k = 0; k < n_holdout; k++) { holdout->tokens += holdout->samples[k].n; set->tokens -= holdout->samples[k].n; }
    snprintf(holdout->kind, sizeof holdout->kind, "%s", set->kind);
    return QN_OK;
}
