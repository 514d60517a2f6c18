/* Tokenizer tests. Expected values come from outside this code:
 *   - shared/tokenizers/{llama2-32k,qwen3}/reference_encodings.json (sentencepiece / HF JS /
 *     llama.cpp fixtures made with HF tokenizers)
 *   - shared/models/stories260K reference outputs and READMEs (prompt ids, greedy decode, token
 *     counts behind the published perplexities, the wiki.test.raw whole-file count)
 *   - docs/architectures.md §9 (worked regex split examples, byte table)
 *   - small hand-built tokenizer.json files whose results are derived by hand from the HF
 *     tokenizers semantics (each test says how). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "quench/tokenizer.h"
#include "testutil.h"

static char *g_tmp; /* per-run scratch directory */

/* ---------- helpers ---------- */

static qn_tokenizer *load_dir_ok(const char *rel) {
    char *d = tu_shared(rel);
    qn_tokenizer *t = NULL;
    qn_error err = {0};
    qn_status st = qn_tokenizer_load_dir(d, &t, &err);
    if (st != QN_OK) fprintf(stderr, "load %s: %s\n", d, err.msg);
    assert_int_equal(st, QN_OK);
    assert_non_null(t);
    free(d);
    return t;
}

static int32_t *enc(const qn_tokenizer *t, const char *s, size_t len, int add, size_t *n) {
    int32_t *ids = NULL;
    qn_error err = {0};
    qn_status st = qn_tokenizer_encode(t, s, len, add, &ids, n, &err);
    if (st != QN_OK) fprintf(stderr, "encode: %s\n", err.msg);
    assert_int_equal(st, QN_OK);
    assert_non_null(ids);
    return ids;
}

static char *dec(const qn_tokenizer *t, const int32_t *ids, size_t n, int skip) {
    char *s = NULL;
    qn_error err = {0};
    qn_status st = qn_tokenizer_decode(t, ids, n, skip, &s, &err);
    if (st != QN_OK) fprintf(stderr, "decode: %s\n", err.msg);
    assert_int_equal(st, QN_OK);
    assert_non_null(s);
    return s;
}

/* Token strings of encode(text) joined with '|'. */
static char *pieces(const qn_tokenizer *t, const char *text, int add) {
    size_t n;
    int32_t *ids = enc(t, text, strlen(text), add, &n);
    size_t cap = 16;
    for (size_t i = 0; i < n; i++) {
        const char *p = qn_tokenizer_piece(t, ids[i]);
        assert_non_null(p);
        cap += strlen(p) + 1;
    }
    char *out = calloc(1, cap);
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(out, "|");
        strcat(out, qn_tokenizer_piece(t, ids[i]));
    }
    free(ids);
    return out;
}

/* Each id decoded on its own, joined with '|' (shows pre-token boundaries in byte-level). */
static char *decoded_pieces(const qn_tokenizer *t, const char *text) {
    size_t n;
    int32_t *ids = enc(t, text, strlen(text), 0, &n);
    size_t cap = 16, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        char *s = dec(t, &ids[i], 1, 0);
        size_t k = strlen(s);
        if (len + k + 2 > cap) {
            cap = (len + k + 2) * 2;
            out = realloc(out, cap);
        }
        if (i) out[len++] = '|';
        memcpy(out + len, s, k + 1);
        len += k;
        free(s);
    }
    free(ids);
    return out;
}

static void assert_ids(const int32_t *got, size_t n, const int32_t *want, size_t wn) {
    if (n != wn) fprintf(stderr, "length %zu, expected %zu\n", n, wn);
    assert_int_equal(n, wn);
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i]) fprintf(stderr, "at %zu: %d, expected %d\n", i, got[i], want[i]);
        assert_int_equal(got[i], want[i]);
    }
}

static void assert_json_ids(const int32_t *got, size_t n, const cJSON *arr, const char *what) {
    assert_true(cJSON_IsArray(arr));
    int wn = cJSON_GetArraySize(arr);
    int ok = (int)n == wn;
    for (int i = 0; ok && i < wn; i++) ok = got[i] == cJSON_GetArrayItem(arr, i)->valueint;
    if (!ok) {
        fprintf(stderr, "mismatch for %.80s\n got:", what);
        for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, "\n exp:");
        for (int i = 0; i < wn && i < 40; i++)
            fprintf(stderr, " %d", cJSON_GetArrayItem(arr, i)->valueint);
        fprintf(stderr, "\n");
    }
    assert_true(ok);
}

static cJSON *read_json(const char *rel) {
    char *p = tu_shared(rel);
    size_t n;
    char *s = tu_read_file(p, &n);
    assert_non_null(s);
    cJSON *j = cJSON_ParseWithLength(s, n);
    assert_non_null(j);
    free(s);
    free(p);
    return j;
}

/* JSON string escaping for the synthetic files */
static void jesc(char *out, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = 0;
}

typedef struct {
    const char *vocab, *merges, *model_extra, *added, *normalizer, *pre, *post, *decoder;
} spec;

static char *mkjson(const spec *s) {
    const char *fmt =
        "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[%s],"
        "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":%s,\"decoder\":%s,"
        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"vocab\":{%s},\"merges\":[%s]%s}}";
    size_t n = strlen(fmt) + 64;
    const char *parts[] = {s->added, s->normalizer, s->pre, s->post, s->decoder,
                           s->vocab, s->merges, s->model_extra};
    for (size_t i = 0; i < 8; i++) n += parts[i] ? strlen(parts[i]) : 4;
    char *j = malloc(n);
    snprintf(j, n, fmt, s->added ? s->added : "", s->normalizer ? s->normalizer : "null",
             s->pre ? s->pre : "null", s->post ? s->post : "null",
             s->decoder ? s->decoder : "null", s->vocab ? s->vocab : "",
             s->merges ? s->merges : "", s->model_extra ? s->model_extra : "");
    return j;
}

static char *write_tmp(const char *name, const char *data, size_t len) {
    size_t n = strlen(g_tmp) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", g_tmp, name);
    assert_int_equal(tu_write_file(p, data, len), 0);
    return p;
}

/* Loads a JSON text; returns the status, the tokenizer in *out (if OK) and the message. */
static qn_status load_text(const char *json, size_t len, qn_tokenizer **out, qn_error *err) {
    char *p = write_tmp("tokenizer.json", json, len);
    *out = NULL;
    memset(err, 0, sizeof *err);
    qn_status st = qn_tokenizer_load(p, out, err);
    if (st != QN_OK) {
        assert_null(*out);
        assert_non_null(strstr(err->msg, p)); /* every message names the file */
    }
    free(p);
    return st;
}

static qn_tokenizer *tok_from(const spec *s) {
    char *j = mkjson(s);
    qn_tokenizer *t;
    qn_error err;
    qn_status st = load_text(j, strlen(j), &t, &err);
    if (st != QN_OK) fprintf(stderr, "synthetic tokenizer: %s\n", err.msg);
    assert_int_equal(st, QN_OK);
    free(j);
    return t;
}

static void expect_load_error(const char *json, qn_status code, const char *needle) {
    qn_tokenizer *t;
    qn_error err;
    qn_status st = load_text(json, strlen(json), &t, &err);
    if (st != code || (needle && !strstr(err.msg, needle)))
        fprintf(stderr, "status %d (want %d), message: %s\n", st, code, err.msg);
    assert_int_equal(st, code);
    if (needle) assert_non_null(strstr(err.msg, needle));
}

/* ---------- reference files ---------- */

static void check_reference_file(const char *dir, int lossless_decode) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizers/%s/reference_encodings.json", dir);
    cJSON *ref = read_json(rel);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(ref, "add_special_tokens")));
    snprintf(rel, sizeof rel, "tokenizers/%s", dir);
    qn_tokenizer *t = load_dir_ok(rel);
    const cJSON *lists[2] = {cJSON_GetObjectItem(ref, "cases"),
                             cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "fixture"), "cases")};
    int checked = 0, decoded = 0;
    for (int l = 0; l < 2; l++) {
        assert_true(cJSON_IsArray(lists[l]));
        const cJSON *c;
        cJSON_ArrayForEach(c, lists[l]) {
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            size_t n;
            int32_t *ids = enc(t, text, strlen(text), 0, &n);
            assert_json_ids(ids, n, cJSON_GetObjectItem(c, "ids"), text);
            checked++;
            if (lossless_decode) {
                /* byte-level / Llama-2 legacy: decode(encode(x)) == x (NFC(x) for Qwen: the
                 * file's "decoded" field) */
                const cJSON *want = cJSON_GetObjectItem(c, "decoded");
                char *s = dec(t, ids, n, 0);
                assert_string_equal(s, want ? want->valuestring : text);
                free(s);
                decoded++;
            }
            free(ids);
        }
    }
    assert_true(checked >= 98);
    if (lossless_decode) assert_int_equal(decoded, checked);
    qn_tokenizer_free(t);
    cJSON_Delete(ref);
}

static void test_llama2_reference(void **state) {
    (void)state;
    check_reference_file("llama2-32k", 1);
    qn_tokenizer *t = load_dir_ok("tokenizers/llama2-32k");
    /* README: <unk>=0, <s>=1, </s>=2, <0x00>..<0xFF> = 3..258 */
    assert_int_equal(qn_tokenizer_get_kind(t), QN_TOK_SENTENCEPIECE_BPE);
    assert_string_equal(qn_tokenizer_kind_name(QN_TOK_SENTENCEPIECE_BPE), "sentencepiece-bpe");
    assert_int_equal(qn_tokenizer_vocab_size(t), 32000);
    assert_string_equal(qn_tokenizer_piece(t, 1), "<s>");
    assert_string_equal(qn_tokenizer_piece(t, 3), "<0x00>");
    assert_string_equal(qn_tokenizer_piece(t, 13), "<0x0A>");
    assert_string_equal(qn_tokenizer_piece(t, 258), "<0xFF>");
    assert_null(qn_tokenizer_piece(t, 32000));
    assert_null(qn_tokenizer_piece(t, -1));
    assert_int_equal(qn_tokenizer_token_id(t, "<0x0A>"), 13);
    assert_int_equal(qn_tokenizer_token_id(t, "</s>"), 2);
    assert_int_equal(qn_tokenizer_token_id(t, "no such piece"), -1);
    assert_int_equal(qn_tokenizer_bos_id(t), 1);
    assert_int_equal(qn_tokenizer_eos_id(t), 2);
    assert_true(qn_tokenizer_is_special(t, 1));
    assert_false(qn_tokenizer_is_special(t, 13));
    /* ByteFallback decoder: a complete UTF-8 run decodes; a broken one gives one U+FFFD per
     * byte (HF decoders/byte_fallback.rs). € = E2 82 AC -> ids 3 + byte. */
    int32_t euro[] = {3 + 0xE2, 3 + 0x82, 3 + 0xAC}, broken[] = {3 + 0xE2, 3 + 0x82};
    char *s = dec(t, euro, 3, 1);
    assert_string_equal(s, "\xE2\x82\xAC");
    free(s);
    s = dec(t, broken, 2, 1);
    assert_string_equal(s, "\xEF\xBF\xBD\xEF\xBF\xBD");
    free(s);
    qn_tokenizer_free(t);
}

static void test_qwen3_reference(void **state) {
    (void)state;
    check_reference_file("qwen3", 1);
    qn_tokenizer *t = load_dir_ok("tokenizers/qwen3");
    assert_int_equal(qn_tokenizer_get_kind(t), QN_TOK_BYTELEVEL_BPE);
    assert_string_equal(qn_tokenizer_kind_name(QN_TOK_BYTELEVEL_BPE), "bytelevel-bpe");
    /* README: 151,643 BPE tokens + 26 added; bos null, eos <|im_end|>; <think> not special */
    assert_int_equal(qn_tokenizer_vocab_size(t), 151643 + 26);
    assert_int_equal(qn_tokenizer_bos_id(t), -1);
    assert_int_equal(qn_tokenizer_eos_id(t), 151645);
    assert_string_equal(qn_tokenizer_piece(t, 151644), "<|im_start|>");
    assert_int_equal(qn_tokenizer_token_id(t, "<|endoftext|>"), 151643);
    assert_true(qn_tokenizer_is_special(t, 151643));
    assert_true(qn_tokenizer_is_special(t, 151656));
    int32_t think = qn_tokenizer_token_id(t, "<think>");
    assert_true(think >= 151657);
    assert_false(qn_tokenizer_is_special(t, think));
    /* README: Qwen's familiar prefix */
    const char *chat = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>";
    const int32_t want[] = {151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645};
    size_t n;
    int32_t *ids = enc(t, chat, strlen(chat), 1, &n); /* post-processor ByteLevel adds nothing */
    assert_ids(ids, n, want, 10);
    char *s = dec(t, ids, n, 1);
    assert_string_equal(s, "system\nYou are a helpful assistant.");
    free(s);
    free(ids);
    /* skip_special keeps the non-special <think> */
    ids = enc(t, "<|im_start|><think>x", 20, 0, &n);
    s = dec(t, ids, n, 1);
    assert_string_equal(s, "<think>x");
    free(s);
    free(ids);
    qn_tokenizer_free(t);
}

/* ---------- models/stories260K ---------- */

static void test_stories260k_reference_outputs(void **state) {
    (void)state;
    qn_tokenizer *t = load_dir_ok("models/stories260K");
    cJSON *ref = read_json("models/stories260K/reference_outputs.json");
    assert_int_equal(qn_tokenizer_bos_id(t), 1);
    assert_int_equal(qn_tokenizer_eos_id(t), 2);
    assert_int_equal(qn_tokenizer_vocab_size(t), 512);

    size_t n;
    int32_t *ids = enc(t, "Once upon a time", 16, 1, &n);
    assert_json_ids(ids, n, cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "prompt_once_upon_a_time"), "ids"),
                    "Once upon a time");
    free(ids);
    ids = enc(t, "Once upon a time", 16, 0, &n); /* the same without BOS */
    const int32_t want[] = {403, 407, 261, 378};
    assert_ids(ids, n, want, 4);
    free(ids);

    /* greedy ids decode to the reference text (skip_special drops the leading BOS) */
    const cJSON *g = cJSON_GetObjectItem(ref, "greedy_from_bos_ids");
    size_t gn = (size_t)cJSON_GetArraySize(g);
    int32_t *gids = malloc(gn * sizeof *gids);
    for (size_t i = 0; i < gn; i++) gids[i] = cJSON_GetArrayItem(g, (int)i)->valueint;
    const char *gtext = cJSON_GetObjectItem(ref, "greedy_from_bos_text")->valuestring;
    char *s = dec(t, gids, gn, 1);
    assert_string_equal(s, gtext);
    free(s);
    /* without skipping: "<s>" + " Once..." (Replace ▁→' ', Fuse; Strip only strips a leading
     * space, and the text now starts with '<') */
    s = dec(t, gids, gn, 0);
    assert_int_equal(strncmp(s, "<s> ", 4), 0);
    assert_string_equal(s + 4, gtext);
    free(s);
    free(gids);
    cJSON_Delete(ref);

    /* The tiny-random models' first sequence: story 1 of tinystories_sample.txt (text before the
     * first <|endoftext|>, stripped), encoded with BOS, first 48 ids. */
    cJSON *m = read_json("models/tiny-random-mistral/reference_outputs.json");
    const cJSON *seq0 = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "sequences"), 0);
    char *p = tu_shared("data/tinystories/tinystories_sample.txt");
    char *txt = tu_read_file(p, NULL);
    assert_non_null(txt);
    char *end = strstr(txt, "<|endoftext|>");
    assert_non_null(end);
    char *b = txt;
    while (b < end && (*b == ' ' || *b == '\n' || *b == '\t' || *b == '\r')) b++;
    while (end > b && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    ids = enc(t, b, (size_t)(end - b), 1, &n);
    assert_true(n >= 48);
    assert_json_ids(ids, 48, cJSON_GetObjectItem(seq0, "input_ids"), "story 1, first 48");
    free(ids);
    free(txt);
    free(p);
    cJSON_Delete(m);
    qn_tokenizer_free(t);
}

static size_t count_tokens(const qn_tokenizer *t, const char *s, size_t len, int strip) {
    if (strip) {
        while (len && (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')) s++, len--;
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\t' ||
                       s[len - 1] == '\r'))
            len--;
    }
    size_t n;
    int32_t *ids = enc(t, s, len, 0, &n);
    free(ids);
    return n;
}

/* The perplexity tables (models/stories260K/README.md and the data READMEs) give tokens_scored;
 * with 512-token windows that each start with BOS and score the following tokens, that is the
 * number of text tokens. */
static void test_stories260k_token_counts(void **state) {
    (void)state;
    qn_tokenizer *t = load_dir_ok("models/stories260K");
    cJSON *ref = read_json("models/stories260K/reference_outputs.json");
    const cJSON *ppl = cJSON_GetObjectItem(ref, "perplexity");

    /* wiki.test.raw as one stream, no special tokens: 806,350 tokens */
    char *p = tu_shared("data/wikitext-2-raw/wiki.test.raw");
    size_t len;
    char *w = tu_read_file(p, &len);
    assert_non_null(w);
    assert_int_equal(len, 1287656);
    assert_int_equal(count_tokens(t, w, len, 0), 806350);
    free(w);
    free(p);

    /* tinystories_sample.txt: one document per <|endoftext|> story (stripped) */
    const cJSON *ts = cJSON_GetObjectItem(ppl, "tinystories_sample.txt");
    p = tu_shared("data/tinystories/tinystories_sample.txt");
    char *s = tu_read_file(p, NULL);
    size_t tot = 0, docs = 0;
    for (char *q = s;;) {
        char *e = strstr(q, "<|endoftext|>");
        size_t l = e ? (size_t)(e - q) : strlen(q);
        size_t c = count_tokens(t, q, l, 1);
        if (c) tot += c, docs++;
        if (!e) break;
        q = e + strlen("<|endoftext|>");
    }
    assert_int_equal(docs, cJSON_GetObjectItem(ts, "docs")->valueint);
    assert_int_equal(tot, cJSON_GetObjectItem(ts, "tokens_scored")->valueint);
    free(s);
    free(p);

    /* tinystories_valid_subset.txt: one document per line */
    const cJSON *tv = cJSON_GetObjectItem(ppl, "tinystories_valid_subset.txt");
    p = tu_shared("data/tinystories/tinystories_valid_subset.txt");
    s = tu_read_file(p, NULL);
    tot = docs = 0;
    for (char *q = s; *q;) {
        char *e = strchr(q, '\n');
        size_t l = e ? (size_t)(e - q) : strlen(q);
        size_t c = count_tokens(t, q, l, 0);
        if (c) tot += c, docs++;
        q += l;
        if (*q) q++;
    }
    assert_int_equal(docs, cJSON_GetObjectItem(tv, "docs")->valueint);
    assert_int_equal(tot, cJSON_GetObjectItem(tv, "tokens_scored")->valueint);
    free(s);
    free(p);
    cJSON_Delete(ref);
    qn_tokenizer_free(t);
}

/* What stories260K's normalizer does to spaces (Replace "\A +"->"", " +\z"->"", " {2,}"->" "). */
static char *squeeze_spaces(const char *x) {
    size_t n = strlen(x);
    char *o = malloc(n + 1);
    size_t a = 0, b = n, k = 0;
    while (a < b && x[a] == ' ') a++;
    while (b > a && x[b - 1] == ' ') b--;
    for (size_t i = a; i < b; i++) {
        if (x[i] == ' ' && k && o[k - 1] == ' ') continue;
        o[k++] = x[i];
    }
    o[k] = 0;
    return o;
}

/* Round trips. Llama-2 legacy and byte-level tokenizers are lossless: decode(encode(x)) == x
 * (checked on every reference case above and on the whole wiki file below). stories260K's
 * normalizer drops leading/trailing spaces and collapses runs, so only decode(encode(x)) ==
 * squeeze(x) and encode(decode(encode(x))) == encode(x) hold. */
static void test_round_trips(void **state) {
    (void)state;
    qn_tokenizer *st = load_dir_ok("models/stories260K");
    cJSON *ref = read_json("tokenizers/llama2-32k/reference_encodings.json");
    const cJSON *c;
    int n_checked = 0, n_changed = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "cases")) {
        const char *x = cJSON_GetObjectItem(c, "text")->valuestring;
        size_t n, n2;
        int32_t *ids = enc(st, x, strlen(x), 0, &n);
        char *d = dec(st, ids, n, 1);
        char *sq = squeeze_spaces(x);
        assert_string_equal(d, sq);
        if (strcmp(sq, x) != 0) n_changed++;
        int32_t *ids2 = enc(st, d, strlen(d), 0, &n2);
        assert_ids(ids2, n2, ids, n);
        free(ids);
        free(ids2);
        free(d);
        free(sq);
        n_checked++;
    }
    assert_true(n_checked >= 55);
    assert_true(n_changed > 10); /* the wiki lines start with a space: the rule is exercised */
    cJSON_Delete(ref);
    qn_tokenizer_free(st);

    /* whole wiki.test.raw through the lossless tokenizers */
    char *p = tu_shared("data/wikitext-2-raw/wiki.test.raw");
    size_t len;
    char *w = tu_read_file(p, &len);
    const char *dirs[] = {"tokenizers/llama2-32k", "tokenizers/qwen3"};
    for (int i = 0; i < 2; i++) {
        qn_tokenizer *t = load_dir_ok(dirs[i]);
        size_t n;
        int32_t *ids = enc(t, w, len, 0, &n);
        assert_true(n > 250000 && n < 400000);
        char *d = dec(t, ids, n, 1);
        assert_int_equal(strlen(d), len);
        assert_memory_equal(d, w, len);
        free(d);
        free(ids);
        qn_tokenizer_free(t);
    }
    free(w);
    free(p);
}

/* ---------- synthetic tokenizers: BPE model ---------- */

static const char *ABC_VOCAB = "\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4,\"abc\":5,\"aa\":6";

static void test_bpe_rank_order(void **state) {
    (void)state;
    size_t n;
    int32_t *ids;
    /* "abc": (b,c) has rank 0 < (a,b) rank 1, so bc first, then (a,bc) -> abc */
    spec s = {.vocab = ABC_VOCAB, .merges = "\"b c\",\"a b\",\"a bc\""};
    qn_tokenizer *t = tok_from(&s);
    ids = enc(t, "abc", 3, 1, &n);
    assert_ids(ids, n, (int32_t[]){5}, 1);
    free(ids);
    /* no decoder: HF joins the tokens with spaces */
    char *d = dec(t, (int32_t[]){3, 2}, 2, 0);
    assert_string_equal(d, "ab c");
    free(d);
    qn_tokenizer_free(t);

    /* the same merges as ["a","b"] pairs, with a #version line in the string form */
    spec s2 = {.vocab = ABC_VOCAB, .merges = "[\"b\",\"c\"],[\"a\",\"b\"],[\"a\",\"bc\"]"};
    t = tok_from(&s2);
    ids = enc(t, "abc", 3, 0, &n);
    assert_ids(ids, n, (int32_t[]){5}, 1);
    free(ids);
    qn_tokenizer_free(t);
    spec s3 = {.vocab = ABC_VOCAB, .merges = "\"#version: 0.2\",\"a b\",\"b c\",\"a bc\""};
    t = tok_from(&s3);
    ids = enc(t, "abc", 3, 0, &n); /* (a,b) first now: ab + c, and there is no (ab,c) merge */
    assert_ids(ids, n, (int32_t[]){3, 2}, 2);
    free(ids);
    qn_tokenizer_free(t);

    /* equal ranks: the leftmost pair merges first: aaa -> aa a, aaaa -> aa aa */
    spec s4 = {.vocab = ABC_VOCAB, .merges = "\"a a\""};
    t = tok_from(&s4);
    ids = enc(t, "aaa", 3, 0, &n);
    assert_ids(ids, n, (int32_t[]){6, 0}, 2);
    free(ids);
    ids = enc(t, "aaaaa", 5, 0, &n);
    assert_ids(ids, n, (int32_t[]){6, 6, 0}, 3);
    free(ids);
    qn_tokenizer_free(t);
}

static void test_bpe_ignore_merges(void **state) {
    (void)state;
    size_t n;
    int32_t *ids;
    /* merges only make "ab"; "abc" is in the vocab but unreachable by merging */
    spec s = {.vocab = ABC_VOCAB, .merges = "\"a b\""};
    qn_tokenizer *t = tok_from(&s);
    ids = enc(t, "abc", 3, 0, &n);
    assert_ids(ids, n, (int32_t[]){3, 2}, 2);
    free(ids);
    qn_tokenizer_free(t);
    s.model_extra = ",\"ignore_merges\":true"; /* Llama-3: a word in the vocab is one token */
    t = tok_from(&s);
    ids = enc(t, "abc", 3, 0, &n);
    assert_ids(ids, n, (int32_t[]){5}, 1);
    free(ids);
    ids = enc(t, "abca", 4, 0, &n); /* not in the vocab: merged as usual */
    assert_ids(ids, n, (int32_t[]){3, 2, 0}, 3);
    free(ids);
    qn_tokenizer_free(t);
}

static void test_bpe_unk_and_byte_fallback(void **state) {
    (void)state;
    size_t n;
    int32_t *ids;
    const char *vocab = "\"<unk>\":0,\"a\":1,\"<0xC3>\":2,\"<0xA9>\":3";
    const char *decoder = "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},"
                          "{\"type\":\"Fuse\"}]}";
    /* é = C3 A9: both byte tokens exist; € = E2 82 AC: they do not -> <unk> */
    spec s = {.vocab = vocab,
              .model_extra = ",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true",
              .decoder = decoder};
    qn_tokenizer *t = tok_from(&s);
    ids = enc(t, "a\xC3\xA9" "a", 4, 0, &n);
    assert_ids(ids, n, (int32_t[]){1, 2, 3, 1}, 4);
    free(ids);
    ids = enc(t, "a\xE2\x82\xAC\xE2\x82\xAC" "a", 8, 0, &n); /* fused: one <unk> */
    assert_ids(ids, n, (int32_t[]){1, 0, 1}, 3);
    free(ids);
    char *d = dec(t, (int32_t[]){2, 3, 1}, 3, 0);
    assert_string_equal(d, "\xC3\xA9" "a");
    free(d);
    d = dec(t, (int32_t[]){2, 1}, 2, 0); /* a lone C3: one U+FFFD */
    assert_string_equal(d, "\xEF\xBF\xBD" "a");
    free(d);
    qn_tokenizer_free(t);

    s.model_extra = ",\"unk_token\":\"<unk>\",\"fuse_unk\":false,\"byte_fallback\":false";
    t = tok_from(&s);
    ids = enc(t, "a\xE2\x82\xAC\xC3\xA9" "a", 7, 0, &n); /* one <unk> per unknown character */
    assert_ids(ids, n, (int32_t[]){1, 0, 0, 1}, 4);
    free(ids);
    qn_tokenizer_free(t);

    s.model_extra = ""; /* no unk, no fallback: unknown characters vanish (HF) */
    t = tok_from(&s);
    ids = enc(t, "a\xE2\x82\xAC" "a", 5, 0, &n);
    assert_ids(ids, n, (int32_t[]){1, 1}, 2);
    free(ids);
    qn_tokenizer_free(t);
}

static void test_bpe_prefix_suffix(void **state) {
    (void)state;
    size_t n;
    int32_t *ids;
    /* continuing_subword_prefix "##": non-first characters are looked up as "##x"; the merge
     * (a, ##b) makes "a" + "b" */
    spec s = {.vocab = "\"a\":0,\"##b\":1,\"ab\":2,\"b\":3",
              .merges = "\"a ##b\"",
              .model_extra = ",\"continuing_subword_prefix\":\"##\""};
    qn_tokenizer *t = tok_from(&s);
    ids = enc(t, "ab", 2, 0, &n);
    assert_ids(ids, n, (int32_t[]){2}, 1);
    free(ids);
    qn_tokenizer_free(t);
    /* end_of_word_suffix "</w>" on the last character */
    spec s2 = {.vocab = "\"a\":0,\"b</w>\":1,\"ab</w>\":2,\"b\":3",
               .merges = "\"a b</w>\"",
               .model_extra = ",\"end_of_word_suffix\":\"</w>\""};
    t = tok_from(&s2);
    ids = enc(t, "ab", 2, 0, &n);
    assert_ids(ids, n, (int32_t[]){2}, 1);
    free(ids);
    ids = enc(t, "b", 1, 0, &n);
    assert_ids(ids, n, (int32_t[]){1}, 1);
    free(ids);
    qn_tokenizer_free(t);
}

/* ---------- synthetic tokenizers: Metaspace, added tokens ---------- */

#define MS_VOCAB                                                                             \
    "\"\xE2\x96\x81\":0,\"a\":1,\"b\":2,\"c\":3,\"\xE2\x96\x81" "a\":4,\"\xE2\x96\x81" "b\":5," \
    "\"\xE2\x96\x81" "c\":6,\"a\xE2\x96\x81\":7,\"<s>\":8"
#define MS_MERGES                                                                            \
    "\"a \xE2\x96\x81\",\"\xE2\x96\x81 a\",\"\xE2\x96\x81 b\",\"\xE2\x96\x81 c\""
#define MS_ADDED                                                                             \
    "{\"id\":8,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false," \
    "\"normalized\":false,\"special\":true}"

static qn_tokenizer *metaspace_tok(const char *scheme, int split, const char *extra_added) {
    char pre[256], decd[256], added[1024];
    snprintf(pre, sizeof pre,
             "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"%s\","
             "\"split\":%s}",
             scheme, split ? "true" : "false");
    snprintf(decd, sizeof decd,
             "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"%s\","
             "\"split\":true}",
             scheme);
    snprintf(added, sizeof added, "%s%s%s", MS_ADDED, extra_added ? "," : "",
             extra_added ? extra_added : "");
    spec s = {.vocab = MS_VOCAB, .merges = MS_MERGES, .added = added, .pre = pre, .decoder = decd};
    return tok_from(&s);
}

static void expect_pieces(const qn_tokenizer *t, const char *text, const char *want) {
    char *p = pieces(t, text, 0);
    if (strcmp(p, want)) fprintf(stderr, "'%s' -> '%s', expected '%s'\n", text, p, want);
    assert_string_equal(p, want);
    free(p);
}

static void test_metaspace(void **state) {
    (void)state;
    /* "a b<s>c": the segment "a b" starts the text; "c" follows an added token, so
     * prepend_scheme "first" does not prepend there (metaspace.rs: offsets_original().0 == 0) */
    qn_tokenizer *t = metaspace_tok("first", 1, NULL);
    expect_pieces(t, "a b<s>c", "\xE2\x96\x81" "a|\xE2\x96\x81" "b|<s>|c");
    /* a leading space already gives the ▁: no second one */
    expect_pieces(t, " a", "\xE2\x96\x81" "a");
    /* decoder: the first token's ▁ is dropped, the others become spaces */
    size_t n;
    int32_t *ids = enc(t, "a b<s>c", 7, 0, &n);
    char *d = dec(t, ids, n, 0);
    assert_string_equal(d, "a b<s>c");
    free(d);
    d = dec(t, ids, n, 1);
    assert_string_equal(d, "a bc");
    free(d);
    free(ids);
    ids = enc(t, " a", 2, 0, &n); /* the leading space is lost on the way back */
    d = dec(t, ids, n, 0);
    assert_string_equal(d, "a");
    free(d);
    free(ids);
    qn_tokenizer_free(t);

    t = metaspace_tok("always", 1, NULL);
    expect_pieces(t, "a b<s>c", "\xE2\x96\x81" "a|\xE2\x96\x81" "b|<s>|\xE2\x96\x81" "c");
    qn_tokenizer_free(t);

    t = metaspace_tok("never", 1, NULL);
    expect_pieces(t, "a b<s>c", "a|\xE2\x96\x81" "b|<s>|c");
    ids = enc(t, "a b", 3, 0, &n);
    d = dec(t, ids, n, 0); /* never: every ▁ becomes a space */
    assert_string_equal(d, "a b");
    free(d);
    free(ids);
    qn_tokenizer_free(t);

    /* split=false: "▁a▁b" is one word; (a,▁) has the best rank -> ▁ | a▁ | b */
    t = metaspace_tok("first", 0, NULL);
    expect_pieces(t, "a b", "\xE2\x96\x81|a\xE2\x96\x81|b");
    qn_tokenizer_free(t);
}

static void test_added_token_flags(void **state) {
    (void)state;
    const char *fmt = "{\"id\":9,\"content\":\"<m>\",\"single_word\":false,\"lstrip\":%s,"
                      "\"rstrip\":%s,\"normalized\":false,\"special\":true}";
    char added[512];
    /* no stripping: "a  " -> "a▁▁" -> a | ▁ | ▁ */
    snprintf(added, sizeof added, fmt, "false", "false");
    qn_tokenizer *t = metaspace_tok("never", 1, added);
    expect_pieces(t, "a  <m> b", "a|\xE2\x96\x81|\xE2\x96\x81|<m>|\xE2\x96\x81" "b");
    qn_tokenizer_free(t);
    /* lstrip: the token swallows the spaces on its left */
    snprintf(added, sizeof added, fmt, "true", "false");
    t = metaspace_tok("never", 1, added);
    expect_pieces(t, "a  <m> b", "a|<m>|\xE2\x96\x81" "b");
    qn_tokenizer_free(t);
    /* rstrip: ... and on its right */
    snprintf(added, sizeof added, fmt, "false", "true");
    t = metaspace_tok("never", 1, added);
    expect_pieces(t, "a  <m> b", "a|\xE2\x96\x81|\xE2\x96\x81|<m>|b");
    qn_tokenizer_free(t);

    /* single_word: "ab" inside "cab" is not a match */
    const char *sw = "{\"id\":10,\"content\":\"ab\",\"single_word\":%s,\"lstrip\":false,"
                     "\"rstrip\":false,\"normalized\":false,\"special\":false}";
    size_t n;
    int32_t *ids;
    snprintf(added, sizeof added, sw, "true");
    t = metaspace_tok("never", 1, added);
    ids = enc(t, "ab cab ab", 9, 0, &n); /* ab | "▁cab▁" -> ▁c a b ▁ | ab */
    assert_ids(ids, n, (int32_t[]){10, 6, 1, 2, 0, 10}, 6);
    free(ids);
    assert_false(qn_tokenizer_is_special(t, 10));
    assert_int_equal(qn_tokenizer_vocab_size(t), 11);
    qn_tokenizer_free(t);
    snprintf(added, sizeof added, sw, "false");
    t = metaspace_tok("never", 1, added);
    ids = enc(t, "ab cab ab", 9, 0, &n); /* ab | ▁c | ab | ▁ | ab */
    assert_ids(ids, n, (int32_t[]){10, 6, 10, 0, 10}, 5);
    free(ids);
    qn_tokenizer_free(t);

    /* leftmost-longest: with "<m>" and "<m>>" both added, "<m>>" wins at the same start */
    char two[1024];
    snprintf(two, sizeof two, fmt, "false", "false");
    strcat(two, ",{\"id\":11,\"content\":\"<m>>\",\"special\":true,\"normalized\":false}");
    t = metaspace_tok("never", 1, two);
    ids = enc(t, "a<m>>b<m>", 9, 0, &n);
    assert_ids(ids, n, (int32_t[]){1, 11, 2, 9}, 4);
    free(ids);
    qn_tokenizer_free(t);
}

static void test_normalized_added_tokens(void **state) {
    (void)state;
    const char *vocab = "\"h\":0,\"i\":1,\"H\":2,\"I\":3,\" \":4";
    const char *fmt = "{\"id\":5,\"content\":\"%s\",\"normalized\":%s,\"special\":false}";
    char added[256];
    size_t n;
    int32_t *ids;
    /* normalized: matched on the lowercased text; the pattern itself is normalized too */
    snprintf(added, sizeof added, fmt, "HI", "true");
    spec s = {.vocab = vocab, .added = added, .normalizer = "{\"type\":\"Lowercase\"}"};
    qn_tokenizer *t = tok_from(&s);
    ids = enc(t, "Hi hI", 5, 0, &n);
    assert_ids(ids, n, (int32_t[]){5, 4, 5}, 3);
    free(ids);
    qn_tokenizer_free(t);
    /* not normalized: matched on the raw text only */
    snprintf(added, sizeof added, fmt, "hi", "false");
    t = tok_from(&s);
    ids = enc(t, "HI hi", 5, 0, &n);
    assert_ids(ids, n, (int32_t[]){0, 1, 4, 5}, 4);
    free(ids);
    qn_tokenizer_free(t);
}

/* ---------- synthetic tokenizers: Split behaviors ---------- */

static void test_split_behaviors(void **state) {
    (void)state;
    /* pieces of "a-b--c" split on "-": a | - | b | - | - | c. Merges join any neighbours
     * inside a piece, so the token strings show where the pieces are (normalizer.rs split). */
    const char *vocab = "\"a\":0,\"b\":1,\"c\":2,\"-\":3,\"a-\":4,\"-b\":5,\"--\":6,\"b-\":7,"
                        "\"-c\":8";
    const char *merges = "\"a -\",\"- b\",\"- -\",\"b -\",\"- c\"";
    struct {
        const char *behavior, *invert, *want;
    } cases[] = {
        {"Removed", "false", "a|b|c"},
        {"Isolated", "false", "a|-|b|-|-|c"},
        {"MergedWithPrevious", "false", "a-|b-|-|c"},
        {"MergedWithNext", "false", "a|-b|-|-c"},
        {"Contiguous", "false", "a|-|b|--|c"},
        {"Removed", "true", "-|-|-"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char pre[256];
        snprintf(pre, sizeof pre,
                 "{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"%s\","
                 "\"invert\":%s}",
                 cases[i].behavior, cases[i].invert);
        spec s = {.vocab = vocab, .merges = merges, .pre = pre};
        qn_tokenizer *t = tok_from(&s);
        expect_pieces(t, "a-b--c", cases[i].want);
        qn_tokenizer_free(t);
    }
    /* a Regex pattern, inside a Sequence */
    spec s = {.vocab = vocab,
              .merges = merges,
              .pre = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                     "{\"Regex\":\"-+\"},\"behavior\":\"Isolated\",\"invert\":false}]}"};
    qn_tokenizer *t = tok_from(&s);
    expect_pieces(t, "a-b--c", "a|-|b|--|c");
    qn_tokenizer_free(t);
    /* without any pre-tokenizer the whole text is one word: (a,-) r0, (-,-) r2 ... */
    spec s2 = {.vocab = vocab, .merges = merges};
    t = tok_from(&s2);
    expect_pieces(t, "a-b--c", "a-|b|--|c");
    qn_tokenizer_free(t);
}

/* ---------- synthetic tokenizers: byte level ---------- */

/* transformers bytes_to_unicode, written out independently of the library */
static void bytes_to_unicode(uint32_t cs[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cs[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
    }
}

static int put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    o[0] = (char)(0xC0 | (cp >> 6)); /* every table code point is < U+0800 */
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* raw bytes -> byte-level string */
static void bl_map(const char *s, char *out) {
    uint32_t cs[256];
    bytes_to_unicode(cs);
    size_t o = 0;
    for (; *s; s++) o += (size_t)put_utf8(out + o, cs[(unsigned char)*s]);
    out[o] = 0;
}

/* A byte-level tokenizer: the 256 byte characters (id = byte) + extra tokens (ids 256..). */
static qn_tokenizer *bytelevel_tok(const char *const *extra, size_t n_extra, const char *merges,
                                   const char *pre, const char *model_extra) {
    uint32_t cs[256];
    bytes_to_unicode(cs);
    size_t cap = 65536;
    char *vocab = malloc(cap), esc[512], u[8];
    size_t o = 0;
    for (int b = 0; b < 256; b++) {
        int k = put_utf8(u, cs[b]);
        u[k] = 0;
        jesc(esc, sizeof esc, u);
        o += (size_t)snprintf(vocab + o, cap - o, "%s\"%s\":%d", b ? "," : "", esc, b);
    }
    for (size_t i = 0; i < n_extra; i++) {
        char m[512];
        bl_map(extra[i], m);
        jesc(esc, sizeof esc, m);
        o += (size_t)snprintf(vocab + o, cap - o, ",\"%s\":%zu", esc, 256 + i);
    }
    spec s = {.vocab = vocab,
              .merges = merges,
              .pre = pre,
              .model_extra = model_extra,
              .decoder = "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
                         "\"use_regex\":true}"};
    qn_tokenizer *t = tok_from(&s);
    free(vocab);
    return t;
}

static void test_byte_table(void **state) {
    (void)state;
    /* docs/architectures.md §9.5 examples */
    uint32_t cs[256];
    bytes_to_unicode(cs);
    assert_int_equal(cs[0x00], 0x100);
    assert_int_equal(cs[0x0A], 0x10A);
    assert_int_equal(cs[0x20], 0x120);
    assert_int_equal(cs[0x7F], 0x121);
    assert_int_equal(cs[0xA0], 0x142);
    assert_int_equal(cs[0xAD], 0x143);
    assert_int_equal(cs['A'], 'A');
    /* and the library agrees: "Ġ" (U+0120) is the space of the Qwen vocab */
    qn_tokenizer *t = load_dir_ok("tokenizers/qwen3");
    int32_t sp = qn_tokenizer_token_id(t, "\xC4\xA0");
    assert_true(sp >= 0);
    char *d = dec(t, &sp, 1, 0);
    assert_string_equal(d, " ");
    free(d);
    int32_t nl = qn_tokenizer_token_id(t, "\xC4\x8A"); /* Ċ = \n */
    d = dec(t, &nl, 1, 0);
    assert_string_equal(d, "\n");
    free(d);
    qn_tokenizer_free(t);
}

static void test_bytelevel_pretokenizer(void **state) {
    (void)state;
    const char *extra[] = {"hi", " hi", " t", "he", " the", "re", " there"};
    const char *merges = "\"h i\",\"\xC4\xA0 hi\",\"\xC4\xA0 t\",\"h e\",\"\xC4\xA0t he\",\"r e\","
                         "\"\xC4\xA0the re\"";
    /* GPT-2 style: ByteLevel does the regex split itself and adds a prefix space */
    qn_tokenizer *t = bytelevel_tok(extra, 7, merges,
                                    "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
                                    "\"trim_offsets\":true,\"use_regex\":true}",
                                    NULL);
    assert_int_equal(qn_tokenizer_get_kind(t), QN_TOK_BYTELEVEL_BPE);
    expect_pieces(t, "hi there", "\xC4\xA0hi|\xC4\xA0there");
    size_t n;
    int32_t *ids = enc(t, "hi there", 8, 0, &n);
    char *d = dec(t, ids, n, 0);
    assert_string_equal(d, " hi there");
    free(d);
    free(ids);
    /* é = C3 A9 -> Ã © ; a lone C3 decodes to U+FFFD (lossy UTF-8) */
    expect_pieces(t, "\xC3\xA9", "\xC4\xA0|\xC3\x83|\xC2\xA9");
    int32_t c3 = 0xC3;
    d = dec(t, &c3, 1, 0);
    assert_string_equal(d, "\xEF\xBF\xBD");
    free(d);
    qn_tokenizer_free(t);

    t = bytelevel_tok(extra, 7, merges,
                      "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}",
                      NULL);
    expect_pieces(t, "hi there", "hi|\xC4\xA0there");
    ids = enc(t, "hi there", 8, 0, &n);
    d = dec(t, ids, n, 0);
    assert_string_equal(d, "hi there");
    free(d);
    free(ids);
    qn_tokenizer_free(t);
}

static qn_tokenizer *split_regex_tok(const char *regex, const char *const *pcs, size_t n) {
    char esc[1024], pre[2048];
    jesc(esc, sizeof esc, regex);
    snprintf(pre, sizeof pre,
             "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
             "\"%s\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
             "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}",
             esc);
    /* every expected piece is a vocab word and ignore_merges emits a vocab word whole, so the
     * ids show the pre-token boundaries */
    return bytelevel_tok(pcs, n, "", pre, ",\"ignore_merges\":true");
}

static void test_split_regex_worked_examples(void **state) {
    (void)state;
    /* docs/architectures.md §9.3 (computed with a Unicode regex engine and with Python regex) */
    const char *llama3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                         "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    const char *qwen = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                       "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    const char *text = "Hello world, it's 2024!!  \xC3\x9Cn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9\n\n  x=12345;";
    const char *l3[] = {"Hello", " world", ",", " it", "'s", " ", "202", "4", "!!", " ",
                        " \xC3\x9Cn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9", "\n\n", " ", " x", "=",
                        "123", "45", ";"};
    qn_tokenizer *t = split_regex_tok(llama3, l3, sizeof l3 / sizeof *l3);
    char *got = decoded_pieces(t, text);
    assert_string_equal(got, "Hello| world|,| it|'s| |202|4|!!| | \xC3\x9Cn\xC3\xAF" "c\xC3\xB6"
                             "d\xC3\xA9|\n\n| | x|=|123|45|;");
    free(got);
    qn_tokenizer_free(t);

    const char *qw[] = {"Hello", " world", ",", " it", "'s", " ", "2", "0", "4", "!!",
                        " \xC3\x9Cn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9", "\n\n", " x", "=", "1",
                        "3", "5", ";", "IT", "'S", "\xC2\xBD", "\xC2\xB2", "\t", "\ty"};
    t = split_regex_tok(qwen, qw, sizeof qw / sizeof *qw);
    got = decoded_pieces(t, text);
    assert_string_equal(got, "Hello| world|,| it|'s| |2|0|2|4|!!| | \xC3\x9Cn\xC3\xAF" "c\xC3\xB6"
                             "d\xC3\xA9|\n\n| | x|=|1|2|3|4|5|;");
    free(got);
    /* second probe: IT'S 12 ½² x⇥⇥y */
    got = decoded_pieces(t, "IT'S 12 \xC2\xBD\xC2\xB2 x\t\ty");
    assert_string_equal(got, "IT|'S| |1|2| |\xC2\xBD|\xC2\xB2| x|\t|\ty");
    free(got);
    qn_tokenizer_free(t);
}

/* ---------- post-processing, tokenizer_config.json ---------- */

static void test_post_processors(void **state) {
    (void)state;
    const char *vocab = "\"a\":0,\"b\":1,\"[CLS]\":5,\"[SEP]\":6";
    const char *added = "{\"id\":5,\"content\":\"[CLS]\",\"special\":true},"
                        "{\"id\":6,\"content\":\"[SEP]\",\"special\":true}";
    size_t n;
    int32_t *ids;
    const char *tmpl =
        "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\"},"
        "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"[CLS]\","
        "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":"
        "\"[SEP]\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{\"[CLS]\":{\"id\":\"[CLS]\","
        "\"ids\":[5],\"tokens\":[\"[CLS]\"]},\"[SEP]\":{\"id\":\"[SEP]\",\"ids\":[6],\"tokens\":"
        "[\"[SEP]\"]}}}]}";
    const char *bert = "{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",6],\"cls\":[\"[CLS]\",5]}";
    const char *posts[] = {tmpl, bert};
    for (int i = 0; i < 2; i++) {
        spec s = {.vocab = vocab, .added = added, .post = posts[i]};
        qn_tokenizer *t = tok_from(&s);
        ids = enc(t, "ab", 2, 1, &n);
        assert_ids(ids, n, (int32_t[]){5, 0, 1, 6}, 4);
        free(ids);
        ids = enc(t, "ab", 2, 0, &n);
        assert_ids(ids, n, (int32_t[]){0, 1}, 2);
        free(ids);
        ids = enc(t, "", 0, 1, &n); /* empty text still gets the template */
        assert_ids(ids, n, (int32_t[]){5, 6}, 2);
        free(ids);
        assert_int_equal(qn_tokenizer_bos_id(t), 5);
        assert_int_equal(qn_tokenizer_eos_id(t), 6);
        qn_tokenizer_free(t);
    }
}

static void test_tokenizer_config(void **state) {
    (void)state;
    /* LlamaTokenizerFast rebuilds the template from add_bos_token / add_eos_token */
    const char *tmpl =
        "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\","
        "\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":"
        "{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}}";
    spec s = {.vocab = "\"a\":0,\"<s>\":1,\"</s>\":2",
              .added = "{\"id\":1,\"content\":\"<s>\",\"special\":true},"
                       "{\"id\":2,\"content\":\"</s>\",\"special\":true}",
              .post = tmpl};
    char *j = mkjson(&s);
    char *p = write_tmp("tokenizer.json", j, strlen(j));
    free(j);
    free(p);
    const char *cfg = "{\"tokenizer_class\":\"LlamaTokenizerFast\",\"add_bos_token\":false,"
                      "\"add_eos_token\":true,\"bos_token\":\"<s>\","
                      "\"eos_token\":{\"content\":\"</s>\",\"lstrip\":false}}";
    p = write_tmp("tokenizer_config.json", cfg, strlen(cfg));
    qn_tokenizer *t;
    qn_error err = {0};
    assert_int_equal(qn_tokenizer_load_dir(g_tmp, &t, &err), QN_OK);
    size_t n;
    int32_t *ids = enc(t, "a", 1, 1, &n);
    assert_ids(ids, n, (int32_t[]){0, 2}, 2);
    free(ids);
    assert_int_equal(qn_tokenizer_bos_id(t), 1);
    assert_int_equal(qn_tokenizer_eos_id(t), 2);
    qn_tokenizer_free(t);
    unlink(p);
    free(p);
    /* a malformed tokenizer_config.json is an error naming it */
    p = write_tmp("tokenizer_config.json", "{\"bos_token\": 7}", 16);
    err.msg[0] = 0;
    assert_int_equal(qn_tokenizer_load_dir(g_tmp, &t, &err), QN_ERR_FORMAT);
    assert_null(t);
    assert_non_null(strstr(err.msg, "tokenizer_config.json"));
    assert_non_null(strstr(err.msg, "bos_token"));
    unlink(p);
    free(p);
    /* without tokenizer_config.json: the template's BOS, no EOS */
    assert_int_equal(qn_tokenizer_load_dir(g_tmp, &t, &err), QN_OK);
    assert_int_equal(qn_tokenizer_bos_id(t), 1);
    assert_int_equal(qn_tokenizer_eos_id(t), -1);
    ids = enc(t, "a", 1, 1, &n);
    assert_ids(ids, n, (int32_t[]){1, 0}, 2);
    free(ids);
    qn_tokenizer_free(t);
}

static void test_normalizers(void **state) {
    (void)state;
    size_t n;
    int32_t *ids;
    /* NFKC: "ﬁ" (U+FB01) -> "fi"; Strip; Replace with a regex; Prepend */
    spec s = {.vocab = "\"f\":0,\"i\":1,\"x\":2,\"_\":3",
              .normalizer = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},"
                            "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true},"
                            "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},"
                            "\"content\":\"_\"},{\"type\":\"Prepend\",\"prepend\":\"x\"}]}"};
    qn_tokenizer *t = tok_from(&s);
    ids = enc(t, " \t\xEF\xAC\x81 \n f ", 10, 0, &n); /* -> "ﬁ \n f" -> "fi_f" -> "xfi_f" */
    assert_ids(ids, n, (int32_t[]){2, 0, 1, 3, 0}, 5);
    free(ids);
    ids = enc(t, "   ", 3, 0, &n); /* stripped to "": Prepend leaves an empty string alone */
    assert_int_equal(n, 0);
    free(ids);
    qn_tokenizer_free(t);
}

/* ---------- bad inputs ---------- */

static void test_missing_files(void **state) {
    (void)state;
    qn_tokenizer *t = (qn_tokenizer *)1;
    qn_error err = {0};
    assert_int_equal(qn_tokenizer_load("/nonexistent/dir/tokenizer.json", &t, &err), QN_ERR_IO);
    assert_null(t);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/tokenizer.json"));
    char *d = tu_tmpdir();
    assert_int_equal(qn_tokenizer_load_dir(d, &t, &err), QN_ERR_IO);
    assert_non_null(strstr(err.msg, d));
    assert_non_null(strstr(err.msg, "tokenizer.json"));
    tu_rmrf(d);
    free(d);
    assert_int_equal(qn_tokenizer_load(NULL, &t, &err), QN_ERR_INVALID_ARG);
}

static void test_malformed_json(void **state) {
    (void)state;
    char *p = tu_shared("models/stories260K/tokenizer.json");
    size_t len;
    char *full = tu_read_file(p, &len);
    assert_non_null(full);
    free(p);
    /* truncated at many points: always an error that names the file, never a crash */
    for (size_t cut = 0; cut < len; cut += 61) {
        qn_tokenizer *t;
        qn_error err;
        qn_status st = load_text(full, cut, &t, &err);
        assert_int_equal(st, QN_ERR_FORMAT);
    }
    free(full);
    expect_load_error("", QN_ERR_FORMAT, "invalid JSON");
    expect_load_error("[]", QN_ERR_FORMAT, "top level");
    expect_load_error("null", QN_ERR_FORMAT, "top level");
    expect_load_error("{}", QN_ERR_FORMAT, "'model' is missing");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}}", QN_ERR_FORMAT,
                      "model.vocab must be an object");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"1\"},\"merges\":[]}}",
                      QN_ERR_FORMAT, "model.vocab['a']");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}",
                      QN_ERR_FORMAT, "model.vocab['a']");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1.5},\"merges\":[]}}",
                      QN_ERR_FORMAT, "model.vocab['a']");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":99999999},\"merges\":[]}}",
                      QN_ERR_FORMAT, "model.vocab['a']");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}",
                      QN_ERR_FORMAT, "id 0");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]}}",
                      QN_ERR_FORMAT, "model.merges[0]");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a\"]}}",
                      QN_ERR_FORMAT, "model.merges[0]");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}",
                      QN_ERR_FORMAT, "'b' is not in the vocab");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a a\"]}}",
                      QN_ERR_FORMAT, "merged token 'aa'");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],"
                      "\"byte_fallback\":\"yes\"}}",
                      QN_ERR_FORMAT, "model.byte_fallback must be a boolean");
    expect_load_error("{\"added_tokens\":[{\"id\":\"1\",\"content\":\"x\"}],\"model\":{\"type\":"
                      "\"BPE\",\"vocab\":{},\"merges\":[]}}",
                      QN_ERR_FORMAT, "added_tokens[0].id");
    expect_load_error("{\"added_tokens\":{},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
                      QN_ERR_FORMAT, "added_tokens must be an array");
    expect_load_error("{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(\"},"
                      "\"content\":\"\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
                      QN_ERR_UNSUPPORTED, "normalizer.pattern.Regex");
    expect_load_error("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},"
                      "\"behavior\":\"Sideways\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},"
                      "\"merges\":[]}}",
                      QN_ERR_UNSUPPORTED, "pre_tokenizer.behavior 'Sideways'");
    expect_load_error("{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":"
                      "[{\"SpecialToken\":{\"id\":\"<s>\"}}],\"special_tokens\":{}},"
                      "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
                      QN_ERR_FORMAT, "special_tokens['<s>']");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\xC3\x28\":0},\"merges\":[]}}",
                      QN_ERR_FORMAT, "not valid UTF-8");
}

static void test_unsupported_components(void **state) {
    (void)state;
    char *p = tu_shared("models/stories260K/tokenizer.json");
    size_t len;
    char *full = tu_read_file(p, &len);
    free(p);
    struct {
        const char *from, *to, *needle;
    } cases[] = {
        {"\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "model.type 'WordPiece' is not supported"},
        {"\"pre_tokenizer\": null", "\"pre_tokenizer\": {\"type\": \"Whitespace\"}",
         "pre_tokenizer.type 'Whitespace' is not supported"},
        {"\"type\": \"Prepend\"", "\"type\": \"Precompiled\"",
         "normalizer.normalizers[3].type 'Precompiled' is not supported"},
        {"\"type\": \"Fuse\"", "\"type\": \"CTC\"", "decoder.decoders[2].type 'CTC' is not supported"},
        {"\"type\": \"TemplateProcessing\"", "\"type\": \"Fancy\"",
         "post_processor.type 'Fancy' is not supported"},
        {"\"dropout\": null", "\"dropout\": 0.1", "model.dropout"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *at = strstr(full, cases[i].from);
        assert_non_null(at);
        size_t a = (size_t)(at - full), fl = strlen(cases[i].from), tl = strlen(cases[i].to);
        char *m = malloc(len - fl + tl + 1);
        memcpy(m, full, a);
        memcpy(m + a, cases[i].to, tl);
        memcpy(m + a + tl, at + fl, len - a - fl + 1);
        expect_load_error(m, QN_ERR_UNSUPPORTED, cases[i].needle);
        free(m);
    }
    free(full);
}

/* Random byte mutations of a small tokenizer.json: load either fails cleanly or gives a
 * tokenizer that encodes and decodes without crashing (run under ASan/UBSan in CI). */
static void test_fuzz_mutations(void **state) {
    (void)state;
    char *p = tu_shared("models/stories260K/tokenizer.json");
    size_t len;
    char *full = tu_read_file(p, &len);
    free(p);
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    const char *sample = "Once upon a time, <s> there was \xC3\xA9 a \xF0\x9F\x98\x80 cat.\n";
    char *m = malloc(len + 1);
    int loaded = 0;
    for (int iter = 0; iter < 300; iter++) {
        memcpy(m, full, len + 1);
        int k = 1 + iter % 4;
        for (int j = 0; j < k; j++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (size_t)(rng >> 33) % len;
            static const char pool[] = "{}[]\":,0123456789 \\abtnu-";
            m[pos] = (iter & 1) ? pool[(rng >> 20) % (sizeof pool - 1)] : (char)(rng >> 13);
        }
        qn_tokenizer *t;
        qn_error err;
        if (load_text(m, len, &t, &err) != QN_OK) continue;
        loaded++;
        int32_t *ids = NULL;
        size_t n = 0;
        if (qn_tokenizer_encode(t, sample, strlen(sample), 1, &ids, &n, &err) == QN_OK) {
            char *s = NULL;
            if (qn_tokenizer_decode(t, ids, n, 0, &s, &err) == QN_OK) free(s);
            free(ids);
        }
        qn_tokenizer_free(t);
    }
    assert_true(loaded > 0); /* some mutations land in strings and still load */
    free(m);
    free(full);
}

static void test_bad_arguments(void **state) {
    (void)state;
    qn_tokenizer *t = load_dir_ok("models/stories260K");
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    qn_error err = {0};
    /* invalid UTF-8 (a lone continuation byte, an overlong form, a surrogate) */
    const char *bad[] = {"ab\x80", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(qn_tokenizer_encode(t, bad[i], strlen(bad[i]), 0, &ids, &n, &err),
                         QN_ERR_INVALID_ARG);
        assert_null(ids);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err.msg, "UTF-8"));
    }
    assert_int_equal(qn_tokenizer_encode(t, NULL, 3, 0, &ids, &n, &err), QN_ERR_INVALID_ARG);
    /* empty text: a valid (freeable) array of 0 ids */
    ids = enc(t, NULL, 0, 0, &n);
    assert_int_equal(n, 0);
    free(ids);
    /* NUL bytes inside the text are text too (byte fallback <0x00> = id 3) */
    ids = enc(t, "a\0b", 3, 0, &n);
    assert_true(n >= 3);
    char *s = dec(t, ids, n, 1);
    assert_memory_equal(s, "a\0b", 3);
    free(s);
    free(ids);
    /* ids outside the vocab are skipped by decode, as HF does */
    int32_t odd[] = {-5, 403, 1000000, 512, 407};
    s = dec(t, odd, 5, 1);
    assert_string_equal(s, "Once upon");
    free(s);
    s = dec(t, NULL, 0, 1);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(qn_tokenizer_decode(t, odd, 5, 1, NULL, &err), QN_ERR_INVALID_ARG);
    qn_tokenizer_free(t);
    qn_tokenizer_free(NULL);
}

/* One tokenizer, several threads: the library keeps no shared mutable state. */
typedef struct {
    const qn_tokenizer *t;
    const char *text;
    size_t len, n;
    int32_t *ids;
} job;

static void *run_job(void *arg) {
    job *j = arg;
    qn_error err;
    if (qn_tokenizer_encode(j->t, j->text, j->len, 0, &j->ids, &j->n, &err) != QN_OK) j->ids = NULL;
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    qn_tokenizer *t = load_dir_ok("tokenizers/qwen3");
    char *p = tu_shared("data/tinystories/tinystories_valid_subset.txt");
    size_t len;
    char *text = tu_read_file(p, &len);
    free(p);
    size_t n1;
    int32_t *ref = enc(t, text, len, 0, &n1);
    job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){t, text, len, 0, NULL};
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_non_null(jobs[i].ids);
        assert_ids(jobs[i].ids, jobs[i].n, ref, n1);
        free(jobs[i].ids);
    }
    free(ref);
    free(text);
    qn_tokenizer_free(t);
}

static int setup(void **state) {
    (void)state;
    g_tmp = tu_tmpdir();
    return g_tmp ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    tu_rmrf(g_tmp);
    free(g_tmp);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2_reference),
        cmocka_unit_test(test_qwen3_reference),
        cmocka_unit_test(test_stories260k_reference_outputs),
        cmocka_unit_test(test_stories260k_token_counts),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_bpe_rank_order),
        cmocka_unit_test(test_bpe_ignore_merges),
        cmocka_unit_test(test_bpe_unk_and_byte_fallback),
        cmocka_unit_test(test_bpe_prefix_suffix),
        cmocka_unit_test(test_metaspace),
        cmocka_unit_test(test_added_token_flags),
        cmocka_unit_test(test_normalized_added_tokens),
        cmocka_unit_test(test_split_behaviors),
        cmocka_unit_test(test_byte_table),
        cmocka_unit_test(test_bytelevel_pretokenizer),
        cmocka_unit_test(test_split_regex_worked_examples),
        cmocka_unit_test(test_post_processors),
        cmocka_unit_test(test_tokenizer_config),
        cmocka_unit_test(test_normalizers),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_unsupported_components),
        cmocka_unit_test(test_fuzz_mutations),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
