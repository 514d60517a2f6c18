/* MoE calibration with routed-only statistics (--no-calibrate-all-experts): the experts that fall
 * back to round-to-nearest are exactly those the router never selects on the calibration tokens
 * (routing recomputed here with the original model); with all experts calibrated, none does. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/calib.h"
#include "quench/model.h"
#include "testutil.h"

static int64_t report_fallback(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/quench_report.json", dir);
    char *s = tu_read_file(p, NULL);
    assert_non_null(s);
    cJSON *j = cJSON_Parse(s);
    int64_t v = (int64_t)cJSON_GetObjectItem(cJSON_GetObjectItem(j, "calibration"), "rtn_fallback_experts")->valuedouble;
    cJSON_Delete(j);
    free(s);
    return v;
}

static void test_routed_only_fallback(void **st) {
    (void)st;
    char *model = tu_shared("models/tiny-random-glm4-moe"), *recipe = tu_source("tests/data/recipes/gptq_layer1_experts.yaml");
    char *cal = tu_source("data/tinystories/tinystories_valid_subset.txt"), *tmp = tu_tmpdir(), cmd[8192];
    const char *common = "--max-seq-length 16 --num-calibration-samples 2 --holdout 0 --shuffle-seed 0 --no-sample --quiet";
    snprintf(cmd, sizeof cmd, "'%s/quench' compress '%s' -o '%s/routed' --recipe '%s' --dataset '%s' %s --no-calibrate-all-experts "
             "> /dev/null 2>&1 && '%s/quench' compress '%s' -o '%s/all' --recipe '%s' --dataset '%s' %s > /dev/null 2>&1",
             QN_BINARY_DIR, model, tmp, recipe, cal, common, QN_BINARY_DIR, model, tmp, recipe, cal, common);
    assert_int_equal(system(cmd), 0);
    /* the same samples, routed by the original model through layers 0 and 1 */
    qn_error err = {0};
    qn_model *m;
    qn_tokenizer *tok;
    if (qn_model_open(model, &m, &err)) fail_msg("%s", err.msg);
    if (qn_tokenizer_load_dir(model, &tok, &err)) fail_msg("%s", err.msg);
    qn_calib_opts o;
    qn_calib_opts_init(&o);
    o.path = cal;
    o.max_seq_length = 16;
    o.num_samples = 2;
    o.shuffle = 0;
    qn_calib_set set;
    if (qn_calib_load(&o, tok, model, &set, &err)) fail_msg("%s", err.msg);
    int used[64] = {0};
    int64_t E = m->cfg.num_experts, H = m->cfg.hidden_size;
    qn_layer l0, l1;
    if (qn_layer_load(m, 0, &l0, &err) || qn_layer_load(m, 1, &l1, &err)) fail_msg("%s", err.msg);
    assert_true(l1.is_moe && E <= 64);
    for (int64_t s = 0; s < set.n; s++) {
        int64_t T = set.samples[s].n;
        float *x = malloc(sizeof(float) * T * H);
        qn_scratch *sc;
        assert_int_equal(qn_scratch_create(&m->cfg, T, T, &sc, &err), QN_OK);
        assert_int_equal(qn_model_embed(m, set.samples[s].ids, T, x, &err), QN_OK);
        assert_int_equal(qn_layer_forward(&m->cfg, &l0, x, T, 0, NULL, sc, NULL, NULL, &err), QN_OK);
        assert_int_equal(qn_layer_forward(&m->cfg, &l1, x, T, 0, NULL, sc, NULL, NULL, &err), QN_OK);
        const int32_t *sel;
        const float *w;
        int64_t k = qn_scratch_last_routing(sc, &sel, &w);
        for (int64_t i = 0; i < T * k; i++) used[sel[i]] = 1;
        qn_scratch_free(sc);
        free(x);
    }
    int64_t unused = 0;
    for (int64_t e = 0; e < E; e++) unused += !used[e];
    char d1[4200], d2[4200];
    snprintf(d1, sizeof d1, "%s/routed", tmp);
    snprintf(d2, sizeof d2, "%s/all", tmp);
    print_message("layer 1: %lld of %lld experts unused on %lld calibration tokens\n", (long long)unused, (long long)E,
                  (long long)set.tokens);
    assert_true(unused > 0);   /* the tiny calibration set leaves experts unused */
    assert_int_equal(report_fallback(d1), unused);
    assert_int_equal(report_fallback(d2), 0);
    qn_layer_free(&l0);
    qn_layer_free(&l1);
    qn_calib_free(&set);
    qn_tokenizer_free(tok);
    qn_model_close(m);
    tu_rmrf(tmp);
    free(tmp); free(model); free(recipe); free(cal);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_routed_only_fallback)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
