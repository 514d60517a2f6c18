/* SparseGPT 2:4 + GPTQ W8 through `quench compress`: every group of 4 consecutive input weights of
 * every pruned Linear holds at least 2 zeros in the written checkpoint, the sparsity_config says
 * so, and SparseGPT's pruning beats magnitude pruning to the same pattern (implemented here). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/eval.h"
#include "quench/model.h"
#include "testutil.h"

static double ppl_of(qn_model *m, const char *text_rel) {
    qn_error err = {0};
    qn_tokenizer *tok;
    qn_llm *llm;
    char *dir = tu_shared("models/stories260K");
    if (qn_tokenizer_load_dir(dir, &tok, &err)) fail_msg("%s", err.msg);
    if (qn_llm_create(m, 512, &llm, &err)) fail_msg("%s", err.msg);
    char *tp = tu_source(text_rel);
    size_t len;
    char *text = tu_read_file(tp, &len);
    qn_ppl_result r;
    if (qn_eval_ppl(llm, tok, text, len, QN_PPL_STORIES, 512, 0, NULL, NULL, &r, &err)) fail_msg("%s", err.msg);
    free(text); free(tp); free(dir);
    qn_llm_free(llm);
    qn_tokenizer_free(tok);
    return r.ppl;
}

static void test_sparsegpt_2of4(void **st) {
    (void)st;
    char *out = tu_tmpdir(), cmd[4096];
    char *model = tu_shared("models/stories260K"), *recipe = tu_source("tests/data/recipes/sparsegpt_2of4_gptq_w8.yaml");
    char *cal = tu_source("data/tinystories/tinystories_valid_subset.txt");
    snprintf(cmd, sizeof cmd, "'%s/quench' compress '%s' -o '%s/m' --recipe '%s' --dataset '%s' --max-seq-length 512 "
             "--no-sample --quiet > /dev/null 2>&1", QN_BINARY_DIR, model, out, recipe, cal);
    assert_int_equal(system(cmd), 0);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/m", out);
    /* sparsity_config */
    char cfgp[4300];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    char *cfg = tu_read_file(cfgp, NULL);
    cJSON *j = cJSON_Parse(cfg);
    cJSON *sc = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "quantization_config"), "sparsity_config");
    assert_string_equal(cJSON_GetObjectItem(sc, "format")->valuestring, "dense");
    assert_string_equal(cJSON_GetObjectItem(sc, "sparsity_structure")->valuestring, "2:4");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "targets"), 0)->valuestring, "Linear");
    cJSON_Delete(j);
    free(cfg);
    /* 2:4 in every pruned Linear of the checkpoint as read back */
    qn_model *m;
    qn_error err = {0};
    if (qn_model_open(dir, &m, &err)) fail_msg("%s", err.msg);
    for (int64_t l = 0; l < m->cfg.num_hidden_layers; l++) {
        qn_layer L;
        if (qn_layer_load(m, l, &L, &err)) fail_msg("%s", err.msg);
        for (int id = 0; id < QN_LIN_COUNT; id++) {
            const qn_linear *lin = &L.lin[id];
            int64_t zeros = 0;
            for (int64_t r = 0; r < lin->out; r++)
                for (int64_t c = 0; c < lin->in; c += 4) {
                    int z = 0;
                    for (int k = 0; k < 4; k++) z += lin->w[r * lin->in + c + k] == 0.0f;
                    if (z < 2) fail_msg("layer %lld %s row %lld cols %lld..: %d zeros", (long long)l, qn_linear_name((qn_linear_id)id), (long long)r, (long long)c, z);
                    zeros += z;
                }
            assert_true(zeros >= lin->out * lin->in / 2);
        }
        qn_layer_free(&L);
    }
    double sgpt = ppl_of(m, "data/tinystories/tinystories_sample.txt");
    qn_model_close(m);
    /* magnitude pruning to 2:4 (the 2 smallest |w| of every 4) of the original weights */
    char *odir = tu_shared("models/stories260K");
    if (qn_model_open(odir, &m, &err)) fail_msg("%s", err.msg);
    qn_tokenizer *tok;
    qn_llm *llm;
    if (qn_tokenizer_load_dir(odir, &tok, &err)) fail_msg("%s", err.msg);
    if (qn_llm_create(m, 512, &llm, &err)) fail_msg("%s", err.msg);
    for (int64_t l = 0; l < m->cfg.num_hidden_layers; l++) {
        qn_layer *L = qn_llm_layer(llm, l);
        for (int id = 0; id < QN_LIN_COUNT; id++) {
            qn_linear *lin = &L->lin[id];
            for (int64_t r = 0; r < lin->out; r++)
                for (int64_t c = 0; c < lin->in; c += 4) {
                    float *g = lin->w + r * lin->in + c;
                    for (int rep = 0; rep < 2; rep++) {
                        int best = -1;
                        for (int k = 0; k < 4; k++)
                            if (g[k] != 0.0f && (best < 0 || fabsf(g[k]) < fabsf(g[best]))) best = k;
                        if (best >= 0) g[best] = 0.0f;
                    }
                }
        }
    }
    char *tp = tu_source("data/tinystories/tinystories_sample.txt");
    size_t len;
    char *text = tu_read_file(tp, &len);
    qn_ppl_result r;
    if (qn_eval_ppl(llm, tok, text, len, QN_PPL_STORIES, 512, 0, NULL, NULL, &r, &err)) fail_msg("%s", err.msg);
    print_message("2:4 ppl: SparseGPT + GPTQ W8 %.3f, magnitude pruning (fp32) %.3f\n", sgpt, r.ppl);
    assert_true(sgpt < r.ppl);
    free(text); free(tp);
    qn_llm_free(llm);
    qn_tokenizer_free(tok);
    qn_model_close(m);
    free(odir);
    tu_rmrf(out);
    free(out); free(model); free(recipe); free(cal);
}

/* --sparse-format sparse-24-bitmask (SparseGPT 2:4 + GPTQ W8A8): compressed [out, in/2] I8,
 * bitmask U8 [out, in/8] with two marks per group of 4, shape I64 [2, 1]; read back, the weights are
 * bit for bit those of the dense-format output. */
static void test_sparse24_bitmask_roundtrip(void **st) {
    (void)st;
    char *tmp = tu_tmpdir(), cmd[8192], *model = tu_shared("models/stories260K");
    char *recipe = tu_source("tests/data/recipes/sparsegpt_2of4_gptq_w8a8.yaml");
    char *cal = tu_source("data/tinystories/tinystories_valid_subset.txt");
    snprintf(cmd, sizeof cmd, "for f in dense sparse-24-bitmask; do '%s/quench' compress '%s' -o '%s/'$f --recipe '%s' "
             "--dataset '%s' --max-seq-length 512 --no-sample --quiet --sparse-format $f > /dev/null 2>&1 || exit 1; done",
             QN_BINARY_DIR, model, tmp, recipe, cal);
    assert_int_equal(system(cmd), 0);
    char da[4200], db[4200];
    snprintf(da, sizeof da, "%s/dense", tmp);
    snprintf(db, sizeof db, "%s/sparse-24-bitmask", tmp);
    qn_error err = {0};
    qn_st_set *set;
    if (qn_st_set_open_dir(db, &set, &err)) fail_msg("%s", err.msg);
    const qn_tensor *c = qn_st_set_find(set, "model.layers.0.mlp.down_proj.compressed");
    const qn_tensor *b = qn_st_set_find(set, "model.layers.0.mlp.down_proj.bitmask");
    const qn_tensor *sh = qn_st_set_find(set, "model.layers.0.mlp.down_proj.shape");
    assert_non_null(c); assert_non_null(b); assert_non_null(sh);
    assert_null(qn_st_set_find(set, "model.layers.0.mlp.down_proj.weight"));
    assert_int_equal(c->dtype, QN_DT_I8);
    assert_true(c->ndim == 2 && c->shape[0] == 64 && c->shape[1] == 86);
    assert_true(b->dtype == QN_DT_U8 && b->ndim == 2 && b->shape[0] == 64 && b->shape[1] == 22);
    assert_true(sh->dtype == QN_DT_I64 && sh->ndim == 2 && sh->shape[0] == 2 && sh->shape[1] == 1);
    const uint8_t *bits = b->data;
    for (int64_t r = 0; r < 64; r++)
        for (int64_t j = 0; j < 172; j += 4) {
            int marks = 0;
            for (int k = 0; k < 4; k++) marks += bits[r * 22 + (j + k) / 8] >> ((j + k) % 8) & 1;
            assert_int_equal(marks, 2);
        }
    qn_st_set_free(set);
    char cfgp[4300];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", db);
    char *cfg = tu_read_file(cfgp, NULL);
    assert_non_null(strstr(cfg, "\"sparse-24-bitmask\""));
    free(cfg);
    qn_model *ma, *mb;
    if (qn_model_open(da, &ma, &err) || qn_model_open(db, &mb, &err)) fail_msg("%s", err.msg);
    for (int64_t l = 0; l < ma->cfg.num_hidden_layers; l++) {
        qn_layer x, y;
        if (qn_layer_load(ma, l, &x, &err) || qn_layer_load(mb, l, &y, &err)) fail_msg("%s", err.msg);
        for (int id = 0; id < QN_LIN_COUNT; id++)
            assert_memory_equal(x.lin[id].w, y.lin[id].w, sizeof(float) * (size_t)(x.lin[id].out * x.lin[id].in));
        qn_layer_free(&x);
        qn_layer_free(&y);
    }
    qn_model_close(ma);
    qn_model_close(mb);
    tu_rmrf(tmp);
    free(tmp); free(model); free(recipe); free(cal);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sparsegpt_2of4), cmocka_unit_test(test_sparse24_bitmask_roundtrip)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
