/* SmoothQuant + GPTQ W8A8 through `quench compress`: the norms are rescaled (input_layernorm and
 * post_attention_layernorm change), the balance Linears carry the inverse scales, so the product
 * norm_j * W[:, j] of the checkpoint equals the original's up to the int8 quantization error; the
 * compressed model stays close to the original (held-out KL). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/model.h"
#include "testutil.h"

static void test_smoothquant_folds(void **st) {
    (void)st;
    char *tmp = tu_tmpdir(), cmd[8192], *model = tu_shared("models/stories260K");
    char *recipe = tu_source("tests/data/recipes/smoothquant_gptq_w8a8_run.yaml");
    char *cal = tu_source("data/tinystories/tinystories_valid_subset.txt");
    snprintf(cmd, sizeof cmd, "'%s/quench' compress '%s' -o '%s/sq' --recipe '%s' --dataset '%s' --max-seq-length 512 "
             "--no-sample --quiet > /dev/null 2>&1", QN_BINARY_DIR, model, tmp, recipe, cal);
    assert_int_equal(system(cmd), 0);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/sq", tmp);
    qn_error err = {0};
    qn_model *a, *b;
    if (qn_model_open(model, &a, &err) || qn_model_open(dir, &b, &err)) fail_msg("%s", err.msg);
    int64_t H = a->cfg.hidden_size;
    int changed = 0;
    for (int64_t l = 0; l < a->cfg.num_hidden_layers; l++) {
        qn_layer la, lb;
        if (qn_layer_load(a, l, &la, &err) || qn_layer_load(b, l, &lb, &err)) fail_msg("%s", err.msg);
        const float *na[2] = {la.attn_norm, la.mlp_norm}, *nb[2] = {lb.attn_norm, lb.mlp_norm};
        const qn_linear_id bal[2][3] = {{QN_LIN_Q, QN_LIN_K, QN_LIN_V}, {QN_LIN_GATE, QN_LIN_UP, QN_LIN_UP}};
        for (int n = 0; n < 2; n++) {
            for (int64_t j = 0; j < H; j++) changed += fabsf(na[n][j] - nb[n][j]) > 1e-6f * fabsf(na[n][j]) + 1e-9f;
            for (int k = 0; k < 3; k++) {
                const qn_linear *wa = &la.lin[bal[n][k]], *wb = &lb.lin[bal[n][k]];
                double num = 0, den = 0;
                for (int64_t r = 0; r < wa->out; r++)
                    for (int64_t j = 0; j < H; j++) {
                        double pa = (double)na[n][j] * wa->w[r * H + j], pb = (double)nb[n][j] * wb->w[r * H + j];
                        num += (pa - pb) * (pa - pb);
                        den += pa * pa;
                    }
                double rel = sqrt(num / den);
                if (rel > 0.02) fail_msg("layer %lld %s: norm*W differs by %.4f", (long long)l, qn_linear_name(bal[n][k]), rel);
            }
        }
        qn_layer_free(&la);
        qn_layer_free(&lb);
    }
    assert_true(changed > H);   /* the norms were rescaled */
    qn_model_close(a);
    qn_model_close(b);
    /* held-out check from the report: the model still computes nearly the same function */
    char rp[4300];
    snprintf(rp, sizeof rp, "%s/quench_report.json", dir);
    char *r = tu_read_file(rp, NULL);
    cJSON *j = cJSON_Parse(r);
    double kl = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "heldout_check"), "kl_mean")->valuedouble;
    print_message("SmoothQuant + GPTQ W8A8: held-out KL %.5f\n", kl);
    assert_true(kl < 0.01);
    cJSON_Delete(j);
    free(r);
    tu_rmrf(tmp);
    free(tmp); free(model); free(recipe); free(cal);
}

/* Smoothing alone (a SmoothQuantModifier-only recipe writes the smoothed float model): on the fp32
 * stories260K the norms and q/k/v, gate/up change, and the logits equal the original's within
 * 1e-4 relative (issue #6: SmoothQuant preserves the function before quantization). */
static void test_smoothquant_function(void **st) {
    (void)st;
    char *tmp = tu_tmpdir(), cmd[20000], *model = tu_shared("models/stories260K");
    char *cal = tu_source("data/tinystories/tinystories_valid_subset.txt");
    char recipe[4200], dir[4200];
    snprintf(recipe, sizeof recipe, "%s/sq.yaml", tmp);
    FILE *f = fopen(recipe, "w");
    assert_non_null(f);
    fputs("SmoothQuantModifier:\n  smoothing_strength: 0.8\n", f);
    fclose(f);
    snprintf(dir, sizeof dir, "%s/sq", tmp);
    snprintf(cmd, sizeof cmd, "'%s/quench' compress '%s' -o '%s' --recipe '%s' --dataset '%s' --num-calibration-samples 16 "
             "--max-seq-length 256 --holdout 0 --no-sample --quiet > /dev/null 2>&1", QN_BINARY_DIR, model, dir, recipe, cal);
    assert_int_equal(system(cmd), 0);
    qn_error err = {0};
    qn_model *a, *b;
    if (qn_model_open(model, &a, &err) || qn_model_open(dir, &b, &err)) fail_msg("%s", err.msg);
    assert_null(b->ct);   /* a float checkpoint: no quantization_config */
    int64_t H = a->cfg.hidden_size, changed = 0;
    for (int64_t l = 0; l < a->cfg.num_hidden_layers; l++) {
        qn_layer la, lb;
        if (qn_layer_load(a, l, &la, &err) || qn_layer_load(b, l, &lb, &err)) fail_msg("%s", err.msg);
        for (int64_t j = 0; j < H; j++) changed += la.attn_norm[j] != lb.attn_norm[j];
        for (int64_t j = 0; j < H; j++) changed += la.mlp_norm[j] != lb.mlp_norm[j];
        for (int64_t j = 0; j < H; j++) changed += la.lin[QN_LIN_Q].w[j] != lb.lin[QN_LIN_Q].w[j];
        qn_layer_free(&la);
        qn_layer_free(&lb);
    }
    assert_true(changed > 3 * H);
    qn_llm *la, *lb;
    if (qn_llm_create(a, 64, &la, &err) || qn_llm_create(b, 64, &lb, &err)) fail_msg("%s", err.msg);
    int32_t ids[48];
    for (int i = 0; i < 48; i++) ids[i] = (int32_t)(1 + (i * 37) % (a->cfg.vocab_size - 1));
    int64_t V = a->cfg.vocab_size;
    float *ya = malloc(sizeof(float) * (size_t)(48 * V)), *yb = malloc(sizeof(float) * (size_t)(48 * V));
    assert_non_null(ya);
    assert_non_null(yb);
    if (qn_llm_forward(la, ids, 48, 0, ya, 0, &err) || qn_llm_forward(lb, ids, 48, 0, yb, 0, &err)) fail_msg("%s", err.msg);
    double md = 0, mx = 0;
    for (int64_t i = 0; i < 48 * V; i++) {
        md = fmax(md, fabs((double)ya[i] - yb[i]));
        mx = fmax(mx, fabs((double)ya[i]));
    }
    print_message("SmoothQuant 0.8 alone: max |logit difference| %.3g of max |logit| %.3g (%.2g relative)\n", md, mx, md / mx);
    assert_true(md <= 1e-4 * mx);
    free(ya);
    free(yb);
    qn_llm_free(la);
    qn_llm_free(lb);
    qn_model_close(a);
    qn_model_close(b);
    tu_rmrf(tmp);
    free(tmp); free(model); free(cal);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_smoothquant_folds), cmocka_unit_test(test_smoothquant_function)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
