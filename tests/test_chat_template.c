/* Chat-template tests. Expected strings:
 *   - the five real templates (tests/data/chat_templates, README there) against the rendered
 *     strings of docs/architectures.md §10.2 (copied verbatim as C literals below);
 *   - small templates whose output is derived by hand from Jinja2's documented semantics with
 *     transformers' settings (trim_blocks, lstrip_blocks, json.dumps-style tojson);
 *   - bad input: unsupported tags, malformed templates, random mutations (must fail cleanly or
 *     render, never crash; run under ASan in the sanitizer build), hostile loops / nesting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "quench/chat_template.h"
#include "testutil.h"

#define SYS_USER_ASST                                                                                                 \
    "[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"Hello!\"},"  \
    "{\"role\":\"assistant\",\"content\":\"Hi there!\"}]"
#define SYS_USER                                                                                                      \
    "[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"Hello!\"}]"
#define USER_ONLY "[{\"role\":\"user\",\"content\":\"Hello!\"}]"
#define MULTI_TURN                                                                                                    \
    "[{\"role\":\"user\",\"content\":\"Q1\"},{\"role\":\"assistant\",\"content\":\"<think>r1</think>\\nA1\"},"        \
    "{\"role\":\"user\",\"content\":\"Q2\"},{\"role\":\"assistant\",\"content\":\"<think>r2</think>\\nA2\"}]"

/* ---------- helpers ---------- */

static qn_chat_template *load_file(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/chat_templates/%s", name);
    char *path = tu_source(rel);
    size_t n;
    char *text = tu_read_file(path, &n);
    assert_non_null(text);
    qn_chat_template *t = NULL;
    qn_error err = {0};
    qn_status st = qn_chat_template_parse(text, n, path, &t, &err);
    if (st != QN_OK) fprintf(stderr, "parse %s: %s\n", path, err.msg);
    assert_int_equal(st, QN_OK);
    assert_non_null(t);
    free(text);
    free(path);
    return t;
}

/* Renders; returns the malloc'ed output or NULL (then *err holds the message). */
static char *render_e(const qn_chat_template *t, const char *msgs, int gen, int think, const char *extra, qn_error *err) {
    cJSON *m = cJSON_Parse(msgs);
    assert_non_null(m);
    cJSON *x = extra ? cJSON_Parse(extra) : NULL;
    if (extra) assert_non_null(x);
    qn_chat_opts o = {.add_generation_prompt = gen, .enable_thinking = think, .now = 0, .extra = x};
    char *out = NULL;
    size_t n = 0;
    qn_status st = qn_chat_template_render(t, m, &o, &out, &n, err);
    cJSON_Delete(m);
    cJSON_Delete(x);
    if (st != QN_OK) {
        assert_null(out);
        return NULL;
    }
    assert_non_null(out);
    assert_int_equal(n, strlen(out));
    return out;
}

static void check(const qn_chat_template *t, const char *msgs, int gen, int think, const char *extra, const char *want) {
    qn_error err = {0};
    char *out = render_e(t, msgs, gen, think, extra, &err);
    if (!out) fprintf(stderr, "render failed: %s\n", err.msg);
    assert_non_null(out);
    if (strcmp(out, want)) fprintf(stderr, "got:  [%s]\nwant: [%s]\n", out, want);
    assert_string_equal(out, want);
    free(out);
}

/* Parses + renders a small template with the given messages / extra. */
static void check_src(const char *src, const char *msgs, const char *extra, const char *want) {
    qn_chat_template *t = NULL;
    qn_error err = {0};
    qn_status st = qn_chat_template_parse(src, strlen(src), "inline", &t, &err);
    if (st != QN_OK) fprintf(stderr, "parse [%s]: %s\n", src, err.msg);
    assert_int_equal(st, QN_OK);
    check(t, msgs ? msgs : "[]", 0, QN_CHAT_UNSET, extra, want);
    qn_chat_template_free(t);
}

/* A template that must fail to parse with a message containing `want`. */
static void parse_fails(const char *src, qn_status code, const char *want) {
    qn_chat_template *t = (qn_chat_template *)1;
    qn_error err = {0};
    qn_status st = qn_chat_template_parse(src, strlen(src), "bad.jinja", &t, &err);
    assert_null(t);
    if (st == QN_OK || !strstr(err.msg, want)) fprintf(stderr, "[%s] -> %d '%s' (want '%s')\n", src, st, err.msg, want);
    assert_int_not_equal(st, QN_OK);
    if (code != QN_OK) assert_int_equal(st, code);
    assert_non_null(strstr(err.msg, want));
}

/* A template that parses but fails to render with a message containing `want`. */
static void render_fails(const char *src, const char *msgs, qn_status code, const char *want) {
    qn_chat_template *t = NULL;
    qn_error err = {0};
    assert_int_equal(qn_chat_template_parse(src, strlen(src), "bad.jinja", &t, &err), QN_OK);
    char *out = render_e(t, msgs ? msgs : "[]", 0, QN_CHAT_UNSET, NULL, &err);
    if (out || !strstr(err.msg, want)) fprintf(stderr, "[%s] -> '%s' (want '%s')\n", src, err.msg, want);
    assert_null(out);
    assert_int_equal(err.code, code);
    assert_non_null(strstr(err.msg, want));
    qn_chat_template_free(t);
}

/* ---------- §10.2: the real templates ---------- */

static void test_llama3(void **state) {
    (void)state;
    qn_chat_template *t = load_file("meta-llama-Meta-Llama-3-8B-Instruct.jinja");
    qn_error err = {0};
    assert_int_equal(qn_chat_template_set_var(t, "bos_token", "<|begin_of_text|>", &err), QN_OK);
    assert_string_equal(qn_chat_template_get_var(t, "bos_token"), "<|begin_of_text|>");
    check(t, SYS_USER_ASST, 0, QN_CHAT_UNSET, NULL,
          "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there!<|eot_id|>");
    check(t, SYS_USER, 1, QN_CHAT_UNSET, NULL,
          "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    /* content is trimmed */
    check(t, "[{\"role\":\"user\",\"content\":\"  Hello!\\n\"}]", 0, QN_CHAT_UNSET, NULL,
          "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>");
    /* removing the variable: bos_token undefined renders as '' (Jinja's default Undefined) */
    assert_int_equal(qn_chat_template_set_var(t, "bos_token", NULL, &err), QN_OK);
    assert_null(qn_chat_template_get_var(t, "bos_token"));
    qn_chat_template_free(t);
}

static void test_llama33(void **state) {
    (void)state;
    qn_chat_template *t = load_file("meta-llama-Llama-3.3-70B-Instruct.jinja");
    qn_error err = {0};
    assert_int_equal(qn_chat_template_set_var(t, "bos_token", "<|begin_of_text|>", &err), QN_OK);
    static const char full[] =
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there!<|eot_id|>";
    static const char user_gen[] =
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    check(t, SYS_USER_ASST, 0, QN_CHAT_UNSET, NULL, full);
    check(t, USER_ONLY, 1, QN_CHAT_UNSET, NULL, user_gen);
    /* date_string passed explicitly (as transformers users do) */
    check(t, SYS_USER_ASST, 0, QN_CHAT_UNSET, "{\"date_string\":\"26 Jul 2024\"}", full);
    check(t, USER_ONLY, 0, QN_CHAT_UNSET, "{\"date_string\":\"01 Jan 2025\"}",
          "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>");
    /* raise_exception's message is reported */
    char *out = render_e(t,
                         "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":["
                         "{\"function\":{\"name\":\"a\",\"arguments\":{}}},{\"function\":{\"name\":\"b\",\"arguments\":{}}}]}]",
                         0, QN_CHAT_UNSET, NULL, &err);
    assert_null(out);
    assert_int_equal(err.code, QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "This model only supports single tool-calls at once!"));
    assert_non_null(strstr(err.msg, "meta-llama-Llama-3.3-70B-Instruct.jinja:"));
    /* a single tool call renders as JSON (hand-derived from the template text) */
    check(t,
          "[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":["
          "{\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1,\"b\":\"c\"}}}]}]",
          0, QN_CHAT_UNSET, NULL,
          "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"f\", \"parameters\": {\"a\": 1, \"b\": \"c\"}}<|eot_id|>");
    qn_chat_template_free(t);
}

static void test_qwen25(void **state) {
    (void)state;
    qn_chat_template *t = load_file("Qwen-Qwen2.5-7B-Instruct.jinja");
    check(t, SYS_USER_ASST, 0, QN_CHAT_UNSET, NULL,
          "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n");
    check(t, SYS_USER, 1, QN_CHAT_UNSET, NULL,
          "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n");
    check(t, USER_ONLY, 1, QN_CHAT_UNSET, NULL,
          "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n");
    /* tools branch: tool | tojson with json.dumps separators (hand-derived) */
    check(t, USER_ONLY, 0, QN_CHAT_UNSET, "{\"tools\":[{\"name\":\"f\",\"x\":[1,2.5,true,null]}]}",
          "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
          "{\"name\": \"f\", \"x\": [1, 2.5, true, null]}"
          "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
          "<|im_start|>user\nHello!<|im_end|>\n");
    qn_chat_template_free(t);
}

static const char Q3_FULL[] =
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHi there!<|im_end|>\n";
static const char Q3_GEN[] =
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n";
static const char Q3_GEN_NOTHINK[] =
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
static const char Q3_MULTI[] =
    "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2<|im_end|>\n";

static void check_qwen3(const qn_chat_template *t) {
    check(t, SYS_USER_ASST, 0, QN_CHAT_UNSET, NULL, Q3_FULL);
    check(t, SYS_USER, 1, QN_CHAT_UNSET, NULL, Q3_GEN);
    check(t, SYS_USER, 1, 1, NULL, Q3_GEN);
    check(t, SYS_USER, 1, 0, NULL, Q3_GEN_NOTHINK);
    check(t, MULTI_TURN, 0, QN_CHAT_UNSET, NULL, Q3_MULTI);
}

static void test_qwen3(void **state) {
    (void)state;
    qn_chat_template *t = load_file("Qwen-Qwen3-0.6B.jinja");
    check_qwen3(t);
    qn_chat_template_free(t);
}

static void test_qwen3_load_dir(void **state) {
    (void)state;
    char *d = tu_shared("tokenizers/qwen3");
    qn_chat_template *t = NULL;
    qn_error err = {0};
    qn_status st = qn_chat_template_load_dir(d, &t, &err);
    if (st != QN_OK) fprintf(stderr, "load_dir: %s\n", err.msg);
    assert_int_equal(st, QN_OK);
    assert_non_null(t);
    assert_non_null(strstr(qn_chat_template_source(t), "tokenizer_config.json"));
    assert_string_equal(qn_chat_template_get_var(t, "eos_token"), "<|im_end|>");
    assert_string_equal(qn_chat_template_get_var(t, "pad_token"), "<|endoftext|>");
    assert_null(qn_chat_template_get_var(t, "bos_token")); /* null in the config */
    check_qwen3(t);
    qn_chat_template_free(t);
    free(d);
}

static void test_load_dir_variants(void **state) {
    (void)state;
    char *d = tu_tmpdir();
    qn_chat_template *t = (qn_chat_template *)1;
    qn_error err = {0};
    /* empty folder: no template */
    assert_int_equal(qn_chat_template_load_dir(d, &t, &err), QN_OK);
    assert_null(t);
    char p[1024], q[1024];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", d);
    /* config without chat_template: no template */
    const char *c0 = "{\"eos_token\":\"</s>\"}";
    assert_int_equal(tu_write_file(p, c0, strlen(c0)), 0);
    t = (qn_chat_template *)1;
    assert_int_equal(qn_chat_template_load_dir(d, &t, &err), QN_OK);
    assert_null(t);
    /* list form: the one named "default"; AddedToken-style special tokens */
    const char *c1 = "{\"bos_token\":{\"content\":\"<s>\",\"lstrip\":false},\"eos_token\":\"</s>\","
                     "\"additional_special_tokens\":[\"<a>\",{\"content\":\"<b>\"}],"
                     "\"chat_template\":[{\"name\":\"tool_use\",\"template\":\"T\"},{\"name\":\"default\","
                     "\"template\":\"{{ bos_token }}|{{ additional_special_tokens | join(',') }}|{{ eos_token }}\"}]}";
    assert_int_equal(tu_write_file(p, c1, strlen(c1)), 0);
    assert_int_equal(qn_chat_template_load_dir(d, &t, &err), QN_OK);
    assert_non_null(t);
    check(t, "[]", 0, QN_CHAT_UNSET, NULL, "<s>|<a>,<b>|</s>");
    qn_chat_template_free(t);
    /* chat_template.jinja wins over the config key; special tokens still come from the config */
    snprintf(q, sizeof q, "%s/chat_template.jinja", d);
    const char *j = "J{{ eos_token }}\n";
    assert_int_equal(tu_write_file(q, j, strlen(j)), 0);
    assert_int_equal(qn_chat_template_load_dir(d, &t, &err), QN_OK);
    assert_non_null(t);
    assert_non_null(strstr(qn_chat_template_source(t), "chat_template.jinja"));
    check(t, "[]", 0, QN_CHAT_UNSET, NULL, "J</s>"); /* trailing newline dropped */
    qn_chat_template_free(t);
    /* broken config */
    remove(q);
    assert_int_equal(tu_write_file(p, "{\"chat_template\":", 17), 0);
    t = (qn_chat_template *)1;
    assert_int_equal(qn_chat_template_load_dir(d, &t, &err), QN_ERR_FORMAT);
    assert_null(t);
    /* a parse error names the file */
    const char *c2 = "{\"chat_template\":\"{% if x %}\"}";
    assert_int_equal(tu_write_file(p, c2, strlen(c2)), 0);
    assert_int_not_equal(qn_chat_template_load_dir(d, &t, &err), QN_OK);
    assert_non_null(strstr(err.msg, "tokenizer_config.json:1:1:"));
    tu_rmrf(d);
    free(d);
}

static const char GLM_FULL[] =
    "[gMASK]<sop><|system|>\nYou are a helpful assistant.<|user|>\nHello!<|assistant|>\n<think></think>\nHi there!";
static const char GLM_GEN[] = "[gMASK]<sop><|system|>\nYou are a helpful assistant.<|user|>\nHello!<|assistant|>";
static const char GLM_GEN_NOTHINK[] =
    "[gMASK]<sop><|system|>\nYou are a helpful assistant.<|user|>\nHello!/nothink<|assistant|>\n<think></think>";
static const char GLM_MULTI[] =
    "[gMASK]<sop><|user|>\nQ1<|assistant|>\n<think></think>\nA1<|user|>\nQ2<|assistant|>\n<think>r2</think>\nA2";

/* llama.cpp's copy writes "<|user|>\n{%- set user_content = ... -%}": the `{%-` eats that newline,
 * so under Jinja2 (checked with Jinja2 3.1.6 set up as transformers does) its user turns have no
 * "\n" after <|user|>; the §10.2 strings are those of the canonical copy. `user_nl` selects. */
static char *drop_user_nl(const char *s) {
    char *o = malloc(strlen(s) + 1);
    assert_non_null(o);
    char *w = o;
    while (*s) {
        if (!strncmp(s, "<|user|>\n", 9)) { memcpy(w, "<|user|>", 8); w += 8; s += 9; }
        else *w++ = *s++;
    }
    *w = 0;
    return o;
}
static void check_glm(const char *file, int user_nl) {
    qn_chat_template *t = load_file(file);
    const char *want[4] = {GLM_FULL, GLM_GEN, GLM_GEN_NOTHINK, GLM_MULTI};
    char *w[4];
    for (int i = 0; i < 4; i++) w[i] = user_nl ? strdup(want[i]) : drop_user_nl(want[i]);
    check(t, SYS_USER_ASST, 0, QN_CHAT_UNSET, NULL, w[0]);
    check(t, SYS_USER, 1, QN_CHAT_UNSET, NULL, w[1]);
    check(t, SYS_USER, 1, 1, NULL, w[1]);
    check(t, SYS_USER, 1, 0, NULL, w[2]);
    check(t, MULTI_TURN, 0, QN_CHAT_UNSET, NULL, w[3]);
    for (int i = 0; i < 4; i++) free(w[i]);
    /* content given as a list of parts goes through the visible_text macro */
    check(t, "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hel\"},{\"type\":\"image\"},\"lo!\"]}]", 1,
          QN_CHAT_UNSET, NULL, user_nl ? "[gMASK]<sop><|user|>\nHello!<|assistant|>" : "[gMASK]<sop><|user|>Hello!<|assistant|>");
    qn_chat_template_free(t);
}
static void test_glm_llamacpp(void **state) { (void)state; check_glm("glm_4_5.jinja", 0); }
static void test_glm_canonical(void **state) { (void)state; check_glm("zai-org-GLM-4.5.jinja", 1); }

static void test_glm_tool_call(void **state) {
    (void)state;
    /* hand-derived from zai-org-GLM-4.5.jinja: tool call args as <arg_key>/<arg_value> lines */
    qn_chat_template *t = load_file("zai-org-GLM-4.5.jinja");
    check(t,
          "[{\"role\":\"user\",\"content\":\"w\"},{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":"
          "{\"name\":\"get\",\"arguments\":{\"city\":\"Paris\",\"n\":2}}}]},{\"role\":\"tool\",\"content\":\"sunny\"}]",
          0, QN_CHAT_UNSET, NULL,
          "[gMASK]<sop><|user|>\nw<|assistant|>\n<think></think>\n<tool_call>get\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"
          "<arg_key>n</arg_key>\n<arg_value>2</arg_value>\n</tool_call><|observation|>\n<tool_response>\nsunny\n</tool_response>");
    qn_chat_template_free(t);
}

/* ---------- semantics on small templates (hand-derived from Jinja2 semantics) ---------- */

static void test_whitespace(void **state) {
    (void)state;
    /* trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it */
    check_src("a\n  {% if true %}\n  b\n  {% endif %}\nc", NULL, NULL, "a\n  b\nc");
    check_src("a  {{- 'x' -}}  \n b", NULL, NULL, "axb");
    check_src("a\n  {%+ if true %}b{% endif +%}\nc", NULL, NULL, "a\n  b\nc");
    check_src("x {# c #}\ny\n  {#- c -#}  z", NULL, NULL, "x yz");
    check_src("{{ 'a' }}\n", NULL, NULL, "a");     /* one trailing newline dropped */
    check_src("{{ 'a' }}\n\n", NULL, NULL, "a\n"); /* only one */
    check_src("a\r\nb\rc", NULL, NULL, "a\nb\nc");
    check_src("{{ 'a' }}\nb", NULL, NULL, "a\nb"); /* no trim after {{ }} */
}

static void test_expressions(void **state) {
    (void)state;
    check_src("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 / 2 }} {{ 4 / 2 }}",
              NULL, NULL, "7 3 -4 1 2 1024 0.5 2.0");
    check_src("{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1, 2] + [3] }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-7 }}",
              NULL, NULL, "a1NoneTrue ababab [1, 2, 3] 0.30000000000000004 1e+20 1.5e-07");
    check_src("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'b' > 'a' }} {{ 1 == 1.0 }} {{ 'a' in 'cat' }} {{ 2 not in [1, 3] }}",
              NULL, NULL, "True False True True True True");
    check_src("{{ 'x' if false }}|{{ 'y' if 0 else 'z' }}|{{ not none and 1 or 2 }}|{{ none or 'd' }}", NULL, NULL,
              "|z|1|d");
    check_src("{{ 'héllo'[1] }} {{ 'héllo'[::-1] }} {{ 'héllo'[1:3] }} {{ [1,2,3,4][-2:] }} {{ [1,2,3][5] is defined }}",
              NULL, NULL, "é olléh él [3, 4] False");
    check_src("{{ {'a': 1, 'b': [1, 'x']} }} {{ ('a', 1) | list }} {{ \"it's\" }} {{ 'a\\tb\\u00e9\\x41' }}", NULL, NULL,
              "{'a': 1, 'b': [1, 'x']} ['a', 1] it's a\tbéA");
    check_src("{{ messages[0].role }}{{ messages[0]['content'] }}{{ messages.0.role }}{{ messages[0].nope }}",
              USER_ONLY, NULL, "userHello!user");
    check_src("{{ 'a' 'b' }}{{ x | default('dflt') }}{{ '' | default('e', true) }}", NULL, NULL, "abdflte");
}

static void test_statements(void **state) {
    (void)state;
    check_src("{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}"
              "{{ loop.length }}|{% endfor %}",
              NULL, NULL, "103TrueFalse3|212FalseFalse3|321FalseTrue3|");
    check_src("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}"
              "{% for x in [] %}x{% else %}empty{% endfor %}",
              NULL, NULL, "2242empty");
    check_src("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}"
              "{% endfor %}",
              NULL, NULL, "0134");
    check_src("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in {'c': 3} | items %}"
              "{{ k }}{{ v }}{% endfor %}",
              NULL, NULL, "a=1;b=2;c3");
    /* set inside a loop does not leak; namespace attributes do */
    check_src("{% set x = 1 %}{% set ns = namespace(n=0) %}{% for i in [1, 2] %}{% set x = i %}{% set ns.n = ns.n + i %}"
              "{% endfor %}{{ x }} {{ ns.n }}",
              NULL, NULL, "1 3");
    check_src("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c %}<{{ a }}>{% endset %}{{ c }}", NULL, NULL, "12<1>");
    check_src("{% macro m(a, b='B', c=none) %}[{{ a }}{{ b }}{{ c }}]{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m('x', c=3) }}",
              NULL, NULL, "[1BNone][12None][xB3]");
    check_src("{% for a in [[1, 2], [3]] %}{% for b in a %}{{ loop.depth }}{{ b }}{% endfor %}{% endfor %}", NULL, NULL,
              "212223");
    check_src("{% if false %}a{% elif 0 %}b{% elif 'x' %}c{% else %}d{% endif %}", NULL, NULL, "c");
    check_src("{% generation %}g{% endgeneration %}", NULL, NULL, "g");
    check_src("{% for c in 'ab' %}{{ c }}.{% endfor %}", NULL, NULL, "a.b.");
}

static void test_filters_tests_methods(void **state) {
    (void)state;
    check_src("{{ [1, 'a', none] | tojson }} {{ {'k': 'é\"\\n'} | tojson }} {{ 'é' | tojson(ensure_ascii=true) }}",
              NULL, NULL, "[1, \"a\", null] {\"k\": \"é\\\"\\n\"} \"\\u00e9\"");
    check_src("{{ {'a': [1, {}], 'b': []} | tojson(indent=2) }}", NULL, NULL,
              "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}");
    check_src("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true, separators=[',', ':']) }}", NULL, NULL, "{\"a\":2,\"b\":1}");
    check_src("{{ ['a', 'b', 'code_interpreter'] | reject('equalto', 'code_interpreter') | join(', ') }}|"
              "{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2] | first }}{{ [1, 2] | last }}|{{ 'abc' | length }}",
              NULL, NULL, "a, b|[1, 3]|12|3");
    check_src("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join }}|"
              "{{ messages | rejectattr('role', 'eq', 'user') | list | length }}",
              SYS_USER_ASST, NULL, "Hello!|2");
    check_src("{{ ' x ' | trim }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}|{{ 'aXb' | upper }}{{ 'AxB' | lower }}"
              "|{{ 'aaa' | replace('a', 'b', 2) }}|{{ '42' | int + 1 }}|{{ '2.5' | float }}|{{ -3 | abs }}|"
              "{{ [3, 1, 3] | unique | list }}|{{ [1, 2] | reverse | list }}|{{ 12 | string }}",
              NULL, NULL, "x|Hello World|Hello|AXBaxb|bba|43|2.5|3|[3, 1]|[2, 1]|12");
    check_src("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.rsplit(',', 1) }} {{ 'xxhixx'.strip('x') }}"
              " {{ '\\n\\nq'.lstrip('\\n') }} {{ 'q  '.rstrip() }} {{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }}",
              NULL, NULL, "['a', 'b', '', 'c'] ['a', 'b'] ['a,b', 'c'] hi q q True True");
    check_src("{{ 'abcb'.find('b') }}{{ 'abcb'.count('b') }}{{ 'a\\nb'.splitlines() }}{{ 'Ab'.upper() }}"
              "{{ {'a': 1}.get('a') }}{{ {'a': 1}.get('z', 5) }}{{ {'a': 1}.keys() | list }}{{ {'a': 1}.values() | list }}",
              NULL, NULL, "12['a', 'b']AB15['a'][1]");
    check_src("{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is number }}{{ 1 is integer }}"
              "{{ 1.0 is float }}{{ true is boolean }}{{ false is false }}{{ {} is mapping }}{{ [] is iterable }}"
              "{{ 'a' is sequence }}{{ 4 is divisibleby 2 }}{{ 3 is odd }}{{ 'ab' is lower }}{{ 2 is in [1, 2] }}"
              "{{ none is sameas none }}{{ 1 is not eq 2 }}",
              NULL, NULL, "FalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue");
    check_src("{{ strftime_now('%Y') | length }}{{ range(3) | list }}{{ range(1, 7, 2) | list }}", NULL, NULL,
              "4[0, 1, 2][1, 3, 5]");
    /* extra overrides built-ins; enable_thinking only when given */
    check_src("{{ tools }}|{{ documents }}|{{ enable_thinking is defined }}|{{ add_generation_prompt }}", NULL,
              "{\"tools\":[1]}", "[1]|None|False|False");
}

static void test_strftime_fixed(void **state) {
    (void)state;
    qn_chat_template *t = NULL;
    qn_error err = {0};
    const char *src = "{{ strftime_now('%Y') }}";
    assert_int_equal(qn_chat_template_parse(src, strlen(src), "s", &t, &err), QN_OK);
    cJSON *m = cJSON_Parse("[]");
    qn_chat_opts o = {.add_generation_prompt = 0, .enable_thinking = QN_CHAT_UNSET, .now = 1721952000 /* 2024-07-26 */};
    char *out = NULL;
    assert_int_equal(qn_chat_template_render(t, m, &o, &out, NULL, &err), QN_OK);
    assert_string_equal(out, "2024");
    free(out);
    cJSON_Delete(m);
    qn_chat_template_free(t);
}

/* ---------- errors ---------- */

static void test_unsupported(void **state) {
    (void)state;
    parse_fails("ab\n  {% filter upper %}x{% endfilter %}", QN_ERR_UNSUPPORTED, "bad.jinja:2:6: unsupported tag 'filter'");
    parse_fails("{% raw %}{{ x }}{% endraw %}", QN_ERR_UNSUPPORTED, "bad.jinja:1:4: unsupported tag 'raw'");
    parse_fails("\n\n{%- include 'x.jinja' %}", QN_ERR_UNSUPPORTED, "bad.jinja:3:5: unsupported tag 'include'");
    parse_fails("{% call m() %}x{% endcall %}", QN_ERR_UNSUPPORTED, "1:4: unsupported tag 'call'");
    parse_fails("{% extends 'base' %}", QN_ERR_UNSUPPORTED, "unsupported tag 'extends'");
    parse_fails("{% for x in y recursive %}{% endfor %}", QN_ERR_UNSUPPORTED, "1:15:");
    parse_fails("{{ f(*args) }}", QN_ERR_UNSUPPORTED, "1:6:");
    render_fails("{{ 'a' | wordwrap }}", NULL, QN_ERR_UNSUPPORTED, "bad.jinja:1:10: unsupported filter 'wordwrap'");
    render_fails("{{ 1 is prime }}", NULL, QN_ERR_UNSUPPORTED, "unsupported test 'prime'");
}

static void test_malformed(void **state) {
    (void)state;
    parse_fails("{% if x %}a", QN_ERR_FORMAT, "bad.jinja:1:1: unclosed 'if' (expected 'endif')");
    parse_fails("a\n{% for x in y %}", QN_ERR_FORMAT, "bad.jinja:2:1: unclosed 'for'");
    parse_fails("{{ x ", QN_ERR_FORMAT, "bad.jinja:1:1: unclosed '{{' tag");
    parse_fails("{% if x", QN_ERR_FORMAT, "unclosed '{%' tag");
    parse_fails("{# x", QN_ERR_FORMAT, "unclosed comment");
    parse_fails("{{ 'abc }}", QN_ERR_FORMAT, "1:4: unterminated string literal");
    parse_fails("{{ 1 + }}", QN_ERR_FORMAT, "1:8: unexpected");
    parse_fails("{{ (1 }}", QN_ERR_FORMAT, "1:8: unbalanced");
    parse_fails("{{ ) }}", QN_ERR_FORMAT, "1:4: unbalanced");
    parse_fails("{% endif %}", QN_ERR_FORMAT, "1:4: unexpected tag 'endif'");
    parse_fails("{% frobnicate %}", QN_ERR_FORMAT, "unknown tag 'frobnicate'");
    parse_fails("{{ a $ b }}", QN_ERR_FORMAT, "1:6: unexpected character '$'");
    parse_fails("{% set %}", QN_ERR_FORMAT, "1:8:");
    parse_fails("{{ x is }}", QN_ERR_FORMAT, "1:9:");
    parse_fails("{% macro m(a=1, b) %}{% endmacro %}", QN_ERR_FORMAT, "non-default argument");
    render_fails("{{ x.y }}", NULL, QN_ERR_FORMAT, "bad.jinja:1:6: undefined value has no attribute 'y'");
    render_fails("{{ 'a' + 1 }}", NULL, QN_ERR_FORMAT, "1:8: unsupported operand types for +: string and int");
    render_fails("{{ 1 // 0 }}", NULL, QN_ERR_FORMAT, "division by zero");
    render_fails("{{ raise_exception('boom: ' ~ messages | length) }}", USER_ONLY, QN_ERR_INVALID_ARG,
                 "bad.jinja:1:4: raise_exception: boom: 1");
    render_fails("{% set x = 1 %}{% set x.a = 2 %}", NULL, QN_ERR_FORMAT, "non-namespace");
    render_fails("{% for a, b in [1] %}{% endfor %}", NULL, QN_ERR_FORMAT, "cannot unpack");
    qn_error err = {0};
    qn_chat_template *t = NULL;
    assert_int_equal(qn_chat_template_parse("x", 1, "s", &t, &err), QN_OK);
    cJSON *o = cJSON_Parse("{}");
    char *out = (char *)1;
    assert_int_equal(qn_chat_template_render(t, o, NULL, &out, NULL, &err), QN_ERR_INVALID_ARG);
    assert_null(out);
    cJSON_Delete(o);
    qn_chat_template_free(t);
}

static void test_bounds(void **state) {
    (void)state;
    render_fails("{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}", NULL, QN_ERR_NOMEM,
                 "evaluation steps");
    /* a fresh million-item list per iteration hits the memory bound instead */
    render_fails("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", NULL, QN_ERR_NOMEM,
                 "256 MiB");
    render_fails("{{ range(10000000) }}", NULL, QN_ERR_NOMEM, "1e6");
    render_fails("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", NULL, QN_ERR_FORMAT, "macro recursion");
    render_fails("{% set ns = namespace(s='xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') %}"
                 "{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                 NULL, QN_ERR_NOMEM, "256 MiB");
    render_fails("{{ 'x' * 1000000000000 }}", NULL, QN_ERR_NOMEM, "256 MiB");
    /* deep nesting of brackets, unary ops, statements */
    char *s = malloc(40000);
    assert_non_null(s);
    strcpy(s, "{{ ");
    for (int i = 0; i < 5000; i++) strcat(s, "(");
    strcat(s, "1 }}");
    parse_fails(s, QN_ERR_FORMAT, "nested too deeply");
    strcpy(s, "{{ ");
    for (int i = 0; i < 5000; i++) strcat(s, "not ");
    strcat(s, "1 }}");
    parse_fails(s, QN_ERR_FORMAT, "nesting too deep");
    s[0] = 0;
    for (int i = 0; i < 500; i++) strcat(s, "{% if 1 %}");
    parse_fails(s, QN_ERR_FORMAT, "nesting too deep");
    free(s);
    qn_error err = {0};
    qn_chat_template *t = NULL;
    char *big = calloc((4u << 20) + 2, 1);
    assert_non_null(big);
    memset(big, 'a', (4u << 20) + 1);
    assert_int_equal(qn_chat_template_parse(big, (4u << 20) + 1, "big", &t, &err), QN_ERR_NOMEM);
    assert_null(t);
    free(big);
}

/* ---------- random mutations of the real templates ---------- */

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_fuzz(void **state) {
    (void)state;
    static const char *const files[] = {"meta-llama-Meta-Llama-3-8B-Instruct.jinja", "meta-llama-Llama-3.3-70B-Instruct.jinja",
                                        "Qwen-Qwen2.5-7B-Instruct.jinja", "Qwen-Qwen3-0.6B.jinja", "glm_4_5.jinja",
                                        "zai-org-GLM-4.5.jinja"};
    static const char *const frags[] = {"{{", "}}", "{%", "%}", "{#", "#}", "-", "(", ")", "[", "]", "'", "\"", "|",
                                        " if ", " for ", "endif", "endfor", " not ", ".", ",", "{% endmacro %}",
                                        "{% else %}", "loop", "\\", "*", "**", "~", ":", "=", "{"};
    const char *convs[] = {SYS_USER_ASST, MULTI_TURN, USER_ONLY};
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    int parsed = 0, rendered = 0;
    for (int f = 0; f < 6; f++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/data/chat_templates/%s", files[f]);
        char *path = tu_source(rel);
        size_t n;
        char *text = tu_read_file(path, &n);
        assert_non_null(text);
        free(path);
        char *m = malloc(n + 256);
        assert_non_null(m);
        for (int it = 0; it < 170; it++) {
            memcpy(m, text, n);
            size_t mn = n;
            int nm = 1 + (int)(rng_next(&seed) % 4);
            for (int k = 0; k < nm && mn > 0; k++) {
                size_t pos = rng_next(&seed) % mn;
                int kind = (int)(rng_next(&seed) % 4);
                if (kind == 0) { /* delete a run */
                    size_t len = 1 + rng_next(&seed) % 8;
                    if (pos + len > mn) len = mn - pos;
                    memmove(m + pos, m + pos + len, mn - pos - len);
                    mn -= len;
                } else if (kind == 1) { /* flip a byte */
                    m[pos] = (char)(rng_next(&seed) & 0xFF);
                } else if (kind == 2 && mn + 32 < n + 256) { /* insert a fragment */
                    const char *fr = frags[rng_next(&seed) % (sizeof frags / sizeof frags[0])];
                    size_t fl = strlen(fr);
                    memmove(m + pos + fl, m + pos, mn - pos);
                    memcpy(m + pos, fr, fl);
                    mn += fl;
                } else { /* truncate */
                    mn = pos;
                }
            }
            qn_chat_template *t = NULL;
            qn_error err = {0};
            qn_status st = qn_chat_template_parse(m, mn, "fuzz", &t, &err);
            if (st != QN_OK) {
                assert_null(t);
                assert_true(err.msg[0] != 0);
                continue;
            }
            parsed++;
            for (int c = 0; c < 3; c++) {
                char *out = render_e(t, convs[c], it & 1, (it & 2) ? 0 : QN_CHAT_UNSET, NULL, &err);
                if (out) rendered++;
                else assert_true(err.msg[0] != 0);
                free(out);
            }
            qn_chat_template_free(t);
        }
        free(m);
        free(text);
    }
    /* the mutations must exercise both paths */
    assert_true(parsed > 50);
    assert_true(rendered > 50);
}

/* concurrent renders of one template */
#include <pthread.h>
static qn_chat_template *g_thr_t;
static void *thr_render(void *arg) {
    (void)arg;
    for (int i = 0; i < 50; i++) {
        qn_error err = {0};
        char *out = render_e(g_thr_t, MULTI_TURN, 0, QN_CHAT_UNSET, NULL, &err);
        if (!out || strcmp(out, Q3_MULTI)) { free(out); return (void *)1; }
        free(out);
    }
    return NULL;
}
static void test_threads(void **state) {
    (void)state;
    g_thr_t = load_file("Qwen-Qwen3-0.6B.jinja");
    pthread_t th[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, thr_render, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        assert_null(rv);
    }
    qn_chat_template_free(g_thr_t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama3),         cmocka_unit_test(test_llama33),
        cmocka_unit_test(test_qwen25),         cmocka_unit_test(test_qwen3),
        cmocka_unit_test(test_qwen3_load_dir), cmocka_unit_test(test_load_dir_variants),
        cmocka_unit_test(test_glm_llamacpp),   cmocka_unit_test(test_glm_canonical),
        cmocka_unit_test(test_glm_tool_call),  cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_expressions),    cmocka_unit_test(test_statements),
        cmocka_unit_test(test_filters_tests_methods), cmocka_unit_test(test_strftime_fixed),
        cmocka_unit_test(test_unsupported),    cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bounds),         cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
