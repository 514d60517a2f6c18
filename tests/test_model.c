/* Forward pass, generation and perplexity against the references shipped with the shared models. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/eval.h"
#include "quench/model.h"
#include "quench/tokenizer.h"
#include "testutil.h"

static cJSON *load_json(const char *rel) {
    char *p = tu_shared(rel);
    char *s = tu_read_file(p, NULL);
    assert_non_null(s);
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    free(s);
    free(p);
    return j;
}

typedef struct {
    qn_model *m;
    qn_tokenizer *tok;
    qn_llm *llm;
} loaded;

static loaded load(const char *rel, int64_t ctx) {
    loaded L = {0};
    qn_error err = {0};
    char *dir = tu_shared(rel);
    if (qn_model_open(dir, &L.m, &err)) fail_msg("%s", err.msg);
    if (qn_tokenizer_load_dir(dir, &L.tok, &err)) fail_msg("%s", err.msg);
    if (qn_llm_create(L.m, ctx, &L.llm, &err)) fail_msg("%s", err.msg);
    free(dir);
    return L;
}

static void unload(loaded *L) {
    qn_llm_free(L->llm);
    qn_tokenizer_free(L->tok);
    qn_model_close(L->m);
}

static void check_greedy(const char *model_rel, const char *ref_rel) {
    cJSON *ref = load_json(ref_rel);
    cJSON *ids = cJSON_GetObjectItem(ref, "greedy_from_bos_ids");
    assert_non_null(ids);
    int n = cJSON_GetArraySize(ids);
    assert_int_equal(n, 257);
    loaded L = load(model_rel, n);
    int32_t bos = 1;
    qn_gen_opts o = {.max_new_tokens = n - 1, .stop_ids = L.m->cfg.eos_token_ids, .n_stop = L.m->cfg.n_eos};
    int32_t *out;
    int64_t on;
    qn_error err = {0};
    if (qn_generate(L.llm, &bos, 1, &o, &out, &on, &err)) fail_msg("%s", err.msg);
    assert_int_equal(on, n);
    for (int i = 0; i < n; i++) assert_int_equal(out[i], cJSON_GetArrayItem(ids, i)->valueint);
    /* decoded text equals the reference text */
    cJSON *txt = cJSON_GetObjectItem(ref, "greedy_from_bos_text");
    if (txt) {
        char *s;
        if (qn_tokenizer_decode(L.tok, out, (size_t)on, 1, &s, &err)) fail_msg("%s", err.msg);
        assert_string_equal(s, txt->valuestring);
        free(s);
    }
    free(out);
    unload(&L);
    cJSON_Delete(ref);
}

static void test_stories_greedy(void **st) {
    (void)st;
    check_greedy("models/stories260K", "models/stories260K/reference_outputs.json");
}

/* hd64 computes the same function: its greedy ids are stories260K's (greedy_from_bos_identical). */
static void test_hd64_greedy(void **st) {
    (void)st;
    cJSON *r = load_json("models/stories260K-hd64/reference_outputs.json");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "greedy_from_bos_identical")));
    cJSON_Delete(r);
    check_greedy("models/stories260K-hd64", "models/stories260K/reference_outputs.json");
}

static void check_top5(loaded *L, const int32_t *ids, int n, cJSON *want_ids, cJSON *want_logits) {
    int64_t V = L->m->cfg.vocab_size;
    float *lg = malloc(sizeof(float) * V);
    qn_error err = {0};
    if (qn_llm_forward(L->llm, ids, n, 0, lg, 1, &err)) fail_msg("%s", err.msg);
    for (int k = 0; k < 5; k++) {
        int id = cJSON_GetArrayItem(want_ids, k)->valueint;
        double want = cJSON_GetArrayItem(want_logits, k)->valuedouble;
        if (fabs(lg[id] - want) > 2e-3) fail_msg("logit[%d] = %f, expected %f", id, lg[id], want);
        /* ranks: the k-th reference id has exactly k logits above it */
        int above = 0;
        for (int64_t v = 0; v < V; v++) above += lg[v] > lg[id];
        assert_int_equal(above, k);
    }
    free(lg);
}

static void test_stories_logits(void **st) {
    (void)st;
    cJSON *ref = load_json("models/stories260K/reference_outputs.json");
    loaded L = load("models/stories260K", 64);
    cJSON *p = cJSON_GetObjectItem(ref, "prompt_once_upon_a_time");
    cJSON *pids = cJSON_GetObjectItem(p, "ids");
    int32_t ids[16];
    int n = cJSON_GetArraySize(pids);
    for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(pids, i)->valueint;
    /* the tokenizer produces the same prompt ids */
    int32_t *enc;
    size_t en;
    qn_error err = {0};
    if (qn_tokenizer_encode(L.tok, "Once upon a time", 16, 1, &enc, &en, &err)) fail_msg("%s", err.msg);
    assert_int_equal((int)en, n);
    for (int i = 0; i < n; i++) assert_int_equal(enc[i], ids[i]);
    free(enc);
    check_top5(&L, ids, n, cJSON_GetObjectItem(p, "last_top5_ids"), cJSON_GetObjectItem(p, "last_top5_logits"));
    cJSON *b = cJSON_GetObjectItem(ref, "bos_only_top5");
    int32_t bos = 1;
    check_top5(&L, &bos, 1, cJSON_GetObjectItem(b, "ids"), cJSON_GetObjectItem(b, "logits"));
    unload(&L);
    cJSON_Delete(ref);
}

/* Perplexity entries of reference_outputs.json: file name -> data path and mode. */
static void check_ppl(const char *model_rel) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/reference_outputs.json", model_rel);
    cJSON *ref = load_json(rel);
    cJSON *pp = cJSON_GetObjectItem(ref, "perplexity");
    assert_non_null(pp);
    loaded L = load(model_rel, 512);
    int checked = 0;
    for (cJSON *e = pp->child; e; e = e->next) {
        const char *data = NULL;
        int64_t max_tokens = 0;
        if (!strcmp(e->string, "tinystories_sample.txt")) data = "data/tinystories/tinystories_sample.txt";
        else if (!strcmp(e->string, "tinystories_valid_subset.txt")) data = "data/tinystories/tinystories_valid_subset.txt";
        else if (!strncmp(e->string, "wiki.test.raw(first 65536", 25)) { data = "data/wikitext-2-raw/wiki.test.raw"; max_tokens = 65536; }
        else fail_msg("unknown perplexity entry '%s'", e->string);
        qn_ppl_mode mode;
        assert_int_equal(qn_ppl_mode_from_name(cJSON_GetObjectItem(e, "mode")->valuestring, &mode), 0);
        char *path = tu_shared(data);
        size_t len;
        char *text = tu_read_file(path, &len);
        assert_non_null(text);
        qn_ppl_result r;
        qn_error err = {0};
        if (qn_eval_ppl(L.llm, L.tok, text, len, mode, 512, max_tokens, NULL, NULL, &r, &err)) fail_msg("%s", err.msg);
        double want = cJSON_GetObjectItem(e, "ppl")->valuedouble;
        double want_nll = cJSON_GetObjectItem(e, "mean_nll")->valuedouble;
        print_message("%s %s: %lld tokens, nll %.6f (ref %.6f), ppl %.4f (ref %.4f)\n", model_rel, e->string,
                      (long long)r.tokens_scored, r.mean_nll, want_nll, r.ppl, want);
        assert_int_equal(r.tokens_scored, cJSON_GetObjectItem(e, "tokens_scored")->valueint);
        cJSON *docs = cJSON_GetObjectItem(e, "docs");
        if (docs) assert_int_equal(r.docs, docs->valueint);
        /* 4 significant digits */
        if (fabs(r.ppl - want) > 5e-4 * want) fail_msg("ppl %.5f, expected %.5f", r.ppl, want);
        if (fabs(r.mean_nll - want_nll) > 2e-4) fail_msg("mean nll %.6f, expected %.6f", r.mean_nll, want_nll);
        free(text);
        free(path);
        checked++;
    }
    assert_true(checked >= 2);
    unload(&L);
    cJSON_Delete(ref);
}

static void test_stories_ppl(void **st) { (void)st; check_ppl("models/stories260K"); }
static void test_hd64_ppl(void **st) { (void)st; check_ppl("models/stories260K-hd64"); }

/* Random-weight Llama-family models: full logits matrices from reference_tensors.safetensors. */
static void check_random_model(const char *model_rel) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/reference_outputs.json", model_rel);
    cJSON *ref = load_json(rel);
    snprintf(rel, sizeof rel, "%s/reference_tensors.safetensors", model_rel);
    char *tp = tu_shared(rel);
    qn_st_file *rt;
    qn_error err = {0};
    if (qn_st_file_open(tp, &rt, &err)) fail_msg("%s", err.msg);
    loaded L = load(model_rel, 64);
    int64_t V = L.m->cfg.vocab_size;
    cJSON *seqs = cJSON_GetObjectItem(ref, "sequences");
    int s = 0;
    for (cJSON *q = seqs->child; q; q = q->next, s++) {
        cJSON *jids = cJSON_GetObjectItem(q, "input_ids");
        int n = cJSON_GetArraySize(jids);
        int32_t *ids = malloc(sizeof(int32_t) * n);
        for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(jids, i)->valueint;
        float *lg = malloc(sizeof(float) * n * V), *want = malloc(sizeof(float) * n * V);
        if (qn_llm_forward(L.llm, ids, n, 0, lg, 0, &err)) fail_msg("%s", err.msg);
        char name[64];
        snprintf(name, sizeof name, "seq%d.logits", s);
        const qn_tensor *t = qn_st_file_find(rt, name);
        assert_non_null(t);
        assert_int_equal(qn_tensor_numel(t), n * V);
        if (qn_tensor_to_f32(t, want, &err)) fail_msg("%s", err.msg);
        double md = 0;
        for (int64_t i = 0; i < n * V; i++) md = fmax(md, fabs((double)lg[i] - want[i]));
        print_message("%s seq%d: max |logit - ref| = %.3g\n", model_rel, s, md);
        assert_true(md < 1e-4);
        /* argmax per position */
        cJSON *am = cJSON_GetObjectItem(q, "argmax");
        for (int p = 0; p < n; p++) {
            int64_t b = 0;
            for (int64_t v = 1; v < V; v++) if (lg[p * V + v] > lg[p * V + b]) b = v;
            assert_int_equal(b, cJSON_GetArrayItem(am, p)->valueint);
        }
        double nll = 0;
        assert_int_equal(qn_eval_window(L.llm, ids, n, lg, &nll, &err), QN_OK);
        assert_true(fabs(nll / (n - 1) - cJSON_GetObjectItem(q, "mean_nll")->valuedouble) < 1e-5);
        free(ids); free(lg); free(want);
    }
    assert_true(s >= 1);
    unload(&L);
    qn_st_file_free(rt);
    free(tp);
    cJSON_Delete(ref);
}

/* Layer by layer: hidden states after each decoder layer equal seq.layer_output.i and, for MoE
 * layers, the selected experts equal seq.moe.i.expert_ids (as sets, HF's GLM top-k is unsorted). */
static void check_layers(const char *model_rel) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/reference_tensors.safetensors", model_rel);
    char *tp = tu_shared(rel), *dir = tu_shared(model_rel);
    qn_st_file *rt;
    qn_error err = {0};
    if (qn_st_file_open(tp, &rt, &err)) fail_msg("%s", err.msg);
    qn_model *m;
    if (qn_model_open(dir, &m, &err)) fail_msg("%s", err.msg);
    const qn_model_config *c = &m->cfg;
    int64_t H = c->hidden_size, moe_layers = 0;
    for (int s = 0; s < 2; s++) {
        char name[96];
        snprintf(name, sizeof name, "seq%d.input_ids", s);
        const qn_tensor *it = qn_st_file_find(rt, name);
        assert_non_null(it);
        int64_t T = qn_tensor_numel(it);
        float *idf = malloc(sizeof(float) * T), *x = malloc(sizeof(float) * T * H), *want = malloc(sizeof(float) * T * H);
        int32_t *ids = malloc(sizeof(int32_t) * T);
        assert_int_equal(qn_tensor_to_f32(it, idf, &err), QN_OK);
        for (int64_t t = 0; t < T; t++) ids[t] = (int32_t)idf[t];
        assert_int_equal(qn_model_embed(m, ids, T, x, &err), QN_OK);
        qn_scratch *sc;
        assert_int_equal(qn_scratch_create(c, T, T, &sc, &err), QN_OK);
        for (int64_t i = 0; i < c->num_hidden_layers; i++) {
            qn_layer l;
            if (qn_layer_load(m, i, &l, &err)) fail_msg("%s", err.msg);
            assert_int_equal(qn_layer_forward(c, &l, x, T, 0, NULL, sc, NULL, NULL, &err), QN_OK);
            snprintf(name, sizeof name, "seq%d.layer_output.%lld", s, (long long)i);
            const qn_tensor *lt = qn_st_file_find(rt, name);
            assert_non_null(lt);
            assert_int_equal(qn_tensor_to_f32(lt, want, &err), QN_OK);
            double md = 0, scale = 0;
            for (int64_t j = 0; j < T * H; j++) { md = fmax(md, fabs(x[j] - want[j])); scale = fmax(scale, fabs(want[j])); }
            assert_true(md <= 1e-4 * fmax(1.0, scale));
            if (l.is_moe) {
                const int32_t *sel;
                const float *w;
                int64_t k = qn_scratch_last_routing(sc, &sel, &w);
                assert_int_equal(k, c->num_experts_per_tok);
                snprintf(name, sizeof name, "seq%d.moe.%lld.expert_ids", s, (long long)i);
                const qn_tensor *et = qn_st_file_find(rt, name);
                assert_non_null(et);
                assert_int_equal(qn_tensor_numel(et), T * k);
                float *ef = malloc(sizeof(float) * T * k);
                assert_int_equal(qn_tensor_to_f32(et, ef, &err), QN_OK);
                for (int64_t t = 0; t < T; t++)
                    for (int64_t a = 0; a < k; a++) {
                        int found = 0;
                        for (int64_t b = 0; b < k; b++) found |= sel[t * k + b] == (int32_t)ef[t * k + a];
                        if (!found) fail_msg("%s layer %lld token %lld: expert %d not selected", model_rel, (long long)i, (long long)t, (int)ef[t * k + a]);
                    }
                free(ef);
                moe_layers++;
            }
            qn_layer_free(&l);
        }
        qn_scratch_free(sc);
        free(idf); free(x); free(want); free(ids);
    }
    if (c->num_experts > 0) assert_true(moe_layers > 0);
    qn_model_close(m);
    qn_st_file_free(rt);
    free(tp); free(dir);
}

static void test_layers_and_routing(void **st) {
    (void)st;
    const char *models[] = {"models/tiny-random-mistral", "models/tiny-random-qwen2", "models/tiny-random-qwen3",
                            "models/tiny-random-qwen3-moe", "models/tiny-random-glm4-moe"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) check_layers(models[i]);
}

static void test_mistral_logits(void **st) { (void)st; check_random_model("models/tiny-random-mistral"); }
static void test_qwen2_logits(void **st) { (void)st; check_random_model("models/tiny-random-qwen2"); }
static void test_qwen3_logits(void **st) { (void)st; check_random_model("models/tiny-random-qwen3"); }
static void test_qwen3_moe_logits(void **st) { (void)st; check_random_model("models/tiny-random-qwen3-moe"); }
static void test_glm4_moe_logits(void **st) { (void)st; check_random_model("models/tiny-random-glm4-moe"); }

/* KV-cache decoding gives the same logits as a full forward. */
static void test_kv_cache_matches_full(void **st) {
    (void)st;
    loaded L = load("models/tiny-random-mistral", 32);
    int32_t ids[12] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315};
    int64_t V = L.m->cfg.vocab_size;
    float *full = malloc(sizeof(float) * 12 * V), *step = malloc(sizeof(float) * V);
    qn_error err = {0};
    assert_int_equal(qn_llm_forward(L.llm, ids, 12, 0, full, 0, &err), QN_OK);
    assert_int_equal(qn_llm_forward(L.llm, ids, 5, 0, step, 1, &err), QN_OK);
    for (int64_t v = 0; v < V; v++) assert_true(fabsf(step[v] - full[4 * V + v]) < 1e-4f);
    for (int t = 5; t < 12; t++) {
        assert_int_equal(qn_llm_forward(L.llm, ids + t, 1, t, step, 1, &err), QN_OK);
        for (int64_t v = 0; v < V; v++) assert_true(fabsf(step[v] - full[t * V + v]) < 1e-4f);
    }
    /* beyond the cache: a clear error, not a crash */
    assert_int_not_equal(qn_llm_forward(L.llm, ids, 1, 32, step, 1, &err), QN_OK);
    assert_non_null(strstr(err.msg, "context"));
    free(full); free(step);
    unload(&L);
}

/* An architecture quench reads configs of but cannot run (DeepSeek-V3, MLA attention). */
static void test_unsupported_arch_refused(void **st) {
    (void)st;
    char *dir = tu_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *cfg = "{\"architectures\": [\"DeepseekV3ForCausalLM\"], \"model_type\": \"deepseek_v3\", "
                      "\"hidden_size\": 64, \"intermediate_size\": 128, \"moe_intermediate_size\": 32, "
                      "\"num_hidden_layers\": 4, \"first_k_dense_replace\": 1, \"num_attention_heads\": 4, \"num_key_value_heads\": 4, "
                      "\"n_routed_experts\": 8, \"num_experts_per_tok\": 2, \"n_group\": 2, \"topk_group\": 1, "
                      "\"vocab_size\": 512}";
    assert_int_equal(tu_write_file(path, cfg, strlen(cfg)), 0);
    qn_model *m = NULL;
    qn_error err = {0};
    assert_int_not_equal(qn_model_open(dir, &m, &err), QN_OK);
    assert_null(m);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "config.json"));
    assert_non_null(strstr(err.msg, "DeepseekV3ForCausalLM"));
    tu_rmrf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_greedy),   cmocka_unit_test(test_hd64_greedy),
        cmocka_unit_test(test_stories_logits),   cmocka_unit_test(test_stories_ppl),
        cmocka_unit_test(test_hd64_ppl),         cmocka_unit_test(test_mistral_logits),
        cmocka_unit_test(test_qwen2_logits),     cmocka_unit_test(test_qwen3_logits),
        cmocka_unit_test(test_qwen3_moe_logits), cmocka_unit_test(test_glm4_moe_logits),
        cmocka_unit_test(test_layers_and_routing),
        cmocka_unit_test(test_kv_cache_matches_full), cmocka_unit_test(test_unsupported_arch_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
