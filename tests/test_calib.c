/* Calibration data: each input kind yields the expected token ids for a hand-made file. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/calib.h"
#include "quench/chat_template.h"
#include "testutil.h"

static qn_tokenizer *load_tok(const char *rel) {
    char *d = tu_shared(rel);
    qn_tokenizer *t;
    qn_error err = {0};
    if (qn_tokenizer_load_dir(d, &t, &err)) fail_msg("%s", err.msg);
    free(d);
    return t;
}

static void ids_equal_text(const qn_tokenizer *tok, const qn_sample *s, const char *text, int add_special) {
    int32_t *ids;
    size_t n;
    qn_error err = {0};
    if (qn_tokenizer_encode(tok, text, strlen(text), add_special, &ids, &n, &err)) fail_msg("%s", err.msg);
    if ((int64_t)n != s->n) fail_msg("sample has %lld ids, expected %zu for '%s'", (long long)s->n, n, text);
    for (size_t i = 0; i < n; i++) assert_int_equal(s->ids[i], ids[i]);
    free(ids);
}

static char *write_tmp(const char *dir, const char *name, const char *content) {
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    assert_int_equal(tu_write_file(p, content, strlen(content)), 0);
    return p;
}

static void test_text_lines_jsonl_alpaca(void **st) {
    (void)st;
    qn_tokenizer *tok = load_tok("models/stories260K");
    char *dir = tu_tmpdir();
    qn_calib_opts o;
    qn_calib_opts_init(&o);
    o.shuffle = 0;
    qn_calib_set s;
    qn_error err = {0};
    /* lines: each non-blank line a sample with BOS; hand-checked ids for the first */
    o.path = write_tmp(dir, "a.txt", "Once upon a time\n\n  \nThe cat sat.\n");
    o.mode = "lines";
    assert_int_equal(qn_calib_load(&o, tok, NULL, &s, &err), QN_OK);
    assert_int_equal(s.n, 2);
    const int32_t want[5] = {1, 403, 407, 261, 378};
    assert_int_equal(s.samples[0].n, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(s.samples[0].ids[i], want[i]);
    ids_equal_text(tok, &s.samples[1], "The cat sat.", 1);
    assert_string_equal(s.kind, "text-lines");
    qn_calib_free(&s);
    /* stream: BOS + (max_seq_length - 1) tokens per window; the last window keeps the rest */
    o.mode = "stream";
    o.max_seq_length = 4;
    assert_int_equal(qn_calib_load(&o, tok, NULL, &s, &err), QN_OK);
    int32_t *all;
    size_t n;
    char *p = tu_read_file(o.path, NULL);
    assert_int_equal(qn_tokenizer_encode(tok, p, strlen(p), 0, &all, &n, &err), QN_OK);
    assert_int_equal(s.n, (int64_t)((n + 2) / 3));
    for (int64_t k = 0; k < s.n; k++) {
        assert_int_equal(s.samples[k].ids[0], 1);
        int64_t exp_len = (int64_t)n - 3 * k >= 3 ? 4 : 1 + (int64_t)n - 3 * k;
        assert_int_equal(s.samples[k].n, exp_len);
        for (int64_t j = 1; j < s.samples[k].n; j++) assert_int_equal(s.samples[k].ids[j], all[3 * k + j - 1]);
    }
    free(all);
    free(p);
    qn_calib_free(&s);
    free((char *)o.path);
    /* JSONL text records (custom field), instruction records (Alpaca template), truncation */
    o.max_seq_length = 2048;
    o.path = write_tmp(dir, "b.jsonl", "{\"body\": \"Once upon a time\"}\n\n{\"body\": \"A dog ran.\"}\n");
    o.text_field = "body";
    assert_int_equal(qn_calib_load(&o, tok, NULL, &s, &err), QN_OK);
    assert_int_equal(s.n, 2);
    ids_equal_text(tok, &s.samples[0], "Once upon a time", 1);
    ids_equal_text(tok, &s.samples[1], "A dog ran.", 1);
    assert_string_equal(s.kind, "jsonl-text");
    qn_calib_free(&s);
    free((char *)o.path);
    o.text_field = "text";
    o.path = write_tmp(dir, "c.json", "[{\"instruction\": \"Add 2 and 3.\", \"input\": \"\", \"output\": \"5\"},"
                                      " {\"instruction\": \"Sum\", \"input\": \"2, 3\", \"output\": \"5\"}]");
    assert_int_equal(qn_calib_load(&o, tok, NULL, &s, &err), QN_OK);
    assert_int_equal(s.n, 2);
    ids_equal_text(tok, &s.samples[0],
                   "Below is an instruction that describes a task. Write a response that appropriately completes the "
                   "request.\n\n### Instruction:\nAdd 2 and 3.\n\n### Response:\n5", 1);
    ids_equal_text(tok, &s.samples[1],
                   "Below is an instruction that describes a task, paired with an input that provides further context. "
                   "Write a response that appropriately completes the request.\n\n### Instruction:\nSum\n\n### Input:\n2, 3"
                   "\n\n### Response:\n5", 1);
    assert_string_equal(s.kind, "instruction");
    qn_calib_free(&s);
    free((char *)o.path);
    /* num_samples and shuffle: a permutation of the first records */
    o.path = write_tmp(dir, "d.txt", "a\nb\nc\nd\ne\nf\n");
    o.mode = "lines";
    o.num_samples = 3;
    o.shuffle = 1;
    assert_int_equal(qn_calib_load(&o, tok, NULL, &s, &err), QN_OK);
    assert_int_equal(s.n, 3);
    qn_calib_free(&s);
    free((char *)o.path);
    /* errors naming the file and line */
    o.path = write_tmp(dir, "e.jsonl", "{\"text\": \"ok\"}\n{\"nope\": 1}\n");
    assert_int_not_equal(qn_calib_load(&o, tok, NULL, &s, &err), QN_OK);
    assert_non_null(strstr(err.msg, "e.jsonl: line 2"));
    assert_non_null(strstr(err.msg, "'nope'"));
    free((char *)o.path);
    o.path = write_tmp(dir, "f.jsonl", "{\"text\": \"ok\"}\n{\"text\": \n");
    assert_int_not_equal(qn_calib_load(&o, tok, NULL, &s, &err), QN_OK);
    assert_non_null(strstr(err.msg, "f.jsonl: line 2"));
    free((char *)o.path);
    o.path = write_tmp(dir, "g.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
    assert_int_not_equal(qn_calib_load(&o, tok, NULL, &s, &err), QN_OK);   /* no model dir: no template */
    assert_non_null(strstr(err.msg, "chat template"));
    free((char *)o.path);
    o.path = write_tmp(dir, "h.txt", "\n\n");
    assert_int_not_equal(qn_calib_load(&o, tok, NULL, &s, &err), QN_OK);
    assert_non_null(strstr(err.msg, "no calibration samples"));
    free((char *)o.path);
    tu_rmrf(dir);
    free(dir);
    qn_tokenizer_free(tok);
}

/* Chat records: rendered with the Qwen3 template (architectures.md §10.2), encoded without
 * special tokens. */
static void test_chat_records(void **st) {
    (void)st;
    qn_tokenizer *tok = load_tok("tokenizers/qwen3");
    char *dir = tu_tmpdir();
    qn_calib_opts o;
    qn_calib_opts_init(&o);
    o.shuffle = 0;
    o.path = write_tmp(dir, "chat.jsonl",
                       "{\"messages\": [{\"role\": \"system\", \"content\": \"You are a helpful assistant.\"}, "
                       "{\"role\": \"user\", \"content\": \"Hello!\"}, {\"role\": \"assistant\", \"content\": \"Hi there!\"}]}\n");
    qn_calib_set s;
    qn_error err = {0};
    char *mdir = tu_shared("tokenizers/qwen3");
    if (qn_calib_load(&o, tok, mdir, &s, &err)) fail_msg("%s", err.msg);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.kind, "chat");
    ids_equal_text(tok, &s.samples[0],
                   "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
                   "<|im_start|>assistant\n<think>\n\n</think>\n\nHi there!<|im_end|>\n", 0);
    qn_calib_free(&s);
    free((char *)o.path);
    free(mdir);
    tu_rmrf(dir);
    free(dir);
    qn_tokenizer_free(tok);
}

static void test_split(void **st) {
    (void)st;
    qn_calib_set s = {0}, h;
    s.n = 5;
    s.samples = calloc(5, sizeof *s.samples);
    for (int i = 0; i < 5; i++) { s.samples[i].ids = malloc(sizeof(int32_t) * (i + 1)); s.samples[i].n = i + 1; s.tokens += i + 1; }
    qn_error err = {0};
    assert_int_equal(qn_calib_split(&s, 2, &h, &err), QN_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.samples[0].n, 4);
    assert_int_equal(s.tokens, 6);
    assert_int_equal(h.tokens, 9);
    qn_calib_set h2;
    assert_int_not_equal(qn_calib_split(&s, 3, &h2, &err), QN_OK);
    assert_int_equal(h2.n, 0);
    qn_calib_free(&h);
    qn_calib_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_text_lines_jsonl_alpaca), cmocka_unit_test(test_chat_records),
                                       cmocka_unit_test(test_split)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
