/* Activation-quantization emulation of a Linear (issue: evaluate as vLLM runs the checkpoint):
 * a 2x8 input through an 8x4 Linear, outputs against values computed by hand in the test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/eval.h"
#include "quench/model.h"
#include "quench/quant.h"
#include "testutil.h"

static const float X[2][8] = {{1, 2, 3, 4, 5, 6, 7, 8}, {-0.5f, 0.25f, 3.0f, -6.0f, 1.5f, 0.0f, 2.0f, 0.75f}};

/* W [4, 8]: rows pick/combine input columns. */
static void make_w(float *w) {
    memset(w, 0, sizeof(float) * 32);
    w[0 * 8 + 0] = 1;                     /* y0 = x0 */
    w[1 * 8 + 3] = 1;                     /* y1 = x3 */
    w[2 * 8 + 7] = 1;                     /* y2 = x7 */
    for (int j = 0; j < 8; j++) w[3 * 8 + j] = 0.5f;   /* y3 = 0.5 * sum x */
}

static void run(const qn_quant_args *a, float scale, float zp, float *y) {
    float w[32];
    make_w(w);
    qn_linear lin = {.w = w, .out = 4, .in = 8, .in_act = a, .act_dtype = QN_DT_F32, .in_scale = scale, .in_zero_point = zp};
    qn_error err = {0};
    if (qn_linear_forward(&lin, &X[0][0], 2, y, &err)) fail_msg("%s", err.msg);
}

static void expect_rows(const float q[2][8], const float *y) {
    for (int t = 0; t < 2; t++) {
        double s = 0;
        for (int j = 0; j < 8; j++) s += q[t][j];
        double want[4] = {q[t][0], q[t][3], q[t][7], 0.5 * s};
        for (int o = 0; o < 4; o++)
            if (fabs(y[t * 4 + o] - want[o]) > 1e-5) fail_msg("row %d out %d: %f, expected %f", t, o, y[t * 4 + o], want[o]);
    }
}

/* int8 symmetric dynamic per token as vLLM runs it: scale = max|x_t| / 127, q = round-half-even(x / scale). */
static void test_token_int8(void **st) {
    (void)st;
    qn_quant_scheme s;
    qn_error err = {0};
    assert_int_equal(qn_scheme_preset("W8A8", &s, &err), QN_OK);
    float y[8], q[2][8];
    run(&s.input_activations, 1, 0, y);
    /* row 0: scale 8/127; x/scale = x * 15.875: 15.875, 31.75, 47.625, 63.5 (tie -> 64), 79.375, ... */
    const float q0[8] = {16, 32, 48, 64, 79, 95, 111, 127};
    for (int j = 0; j < 8; j++) q[0][j] = q0[j] * (8.0f / 127.0f);
    /* row 1: max 6, scale 6/127: x * 21.1667: -10.58, 5.29, 63.5 (-> 64), -127, 31.75, 0, 42.33, 15.875 */
    const float q1[8] = {-11, 5, 64, -127, 32, 0, 42, 16};
    for (int j = 0; j < 8; j++) q[1][j] = q1[j] * (6.0f / 127.0f);
    expect_rows(q, y);
    /* without emulation the output is the exact product */
    float w[32], y2[8];
    make_w(w);
    qn_linear plain = {.w = w, .out = 4, .in = 8};
    assert_int_equal(qn_linear_forward(&plain, &X[0][0], 2, y2, &err), QN_OK);
    assert_true(fabsf(y2[0 * 4 + 0] - 1.0f) < 1e-6f && fabsf(y[0] - 1.0f) > 1e-3f);
    qn_quant_scheme_free(&s);
}

/* static per-tensor int8 symmetric with a stored input_scale of 0.05 (saturating beyond 6.35). */
static void test_static_int8(void **st) {
    (void)st;
    qn_quant_args a;
    qn_quant_args_init(&a);
    a.num_bits = 8;
    a.type = QN_QTYPE_INT;
    a.symmetric = 1;
    a.strategy = QN_STRATEGY_TENSOR;
    a.dynamic = QN_DYNAMIC_FALSE;
    qn_error err = {0};
    assert_int_equal(qn_quant_args_validate(&a, QN_CT_VERSION_DEFAULT, "test", &err), QN_OK);
    float y[8], q[2][8];
    run(&a, 0.05f, 0, y);
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < 8; j++) {
            float v = rintf(X[t][j] / 0.05f);
            if (v > 127) v = 127;
            if (v < -128) v = -128;
            q[t][j] = v * 0.05f;
        }
    /* by hand: 7 / 0.05 = 140 -> clamps to 127 -> 6.35; 8 -> 6.35 */
    assert_true(fabsf(q[0][6] - 6.35f) < 1e-5f && fabsf(q[0][7] - 6.35f) < 1e-5f);
    expect_rows(q, y);
}

/* fp8 E4M3 dynamic per token (FP8_DYNAMIC): scale = max|x_t| / 448; x / scale rounded to E4M3 by hand:
 * row 0 (x = 1..8, scale 1/56): 56, 112, 168 -> 160 (tie, even mantissa), 224, 280 -> 288, 336 -> 320
 * (tie), 392 -> 384, 448. */
static void test_token_fp8(void **st) {
    (void)st;
    qn_quant_scheme s;
    qn_error err = {0};
    assert_int_equal(qn_scheme_preset("FP8_DYNAMIC", &s, &err), QN_OK);
    float y[8], q[2][8];
    run(&s.input_activations, 1, 0, y);
    const float q0[8] = {56, 112, 160, 224, 288, 320, 384, 448};
    for (int j = 0; j < 8; j++) q[0][j] = q0[j] * (8.0f / 448.0f);
    /* row 1: max 6, scale 6/448; x/scale = x * 74.667: -37.33 -> -36, 18.67 -> 18, 224, -448, 112, 0,
     * 149.33 -> 144, 56 */
    const float q1[8] = {-36, 18, 224, -448, 112, 0, 144, 56};
    for (int j = 0; j < 8; j++) q[1][j] = q1[j] * (6.0f / 448.0f);
    expect_rows(q, y);
    qn_quant_scheme_free(&s);
}

/* fp8 dynamic per group of 128 (FP8_BLOCK activations) on a 256-wide input: each half of a row has
 * its own scale = max|x_g| / 448. Inputs are chosen so x / scale is exactly representable. */
static void test_group128_fp8(void **st) {
    (void)st;
    qn_quant_scheme s;
    qn_error err = {0};
    assert_int_equal(qn_scheme_preset("FP8_BLOCK", &s, &err), QN_OK);
    static float x[2 * 256], w[2 * 256], y[4];
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < 256; j++) x[t * 256 + j] = (j < 128 ? 1.0f : 10.0f) * (float)((j % 8) + 1) * (t ? -1.0f : 1.0f);
    x[5] = 0.3f;   /* group 0, row 0: 0.3 / (8/448) = 16.8 -> 16 (E4M3 step 1 at 16..32) */
    memset(w, 0, sizeof w);
    w[0 * 256 + 5] = 1;            /* y0 = x5 */
    w[1 * 256 + 135] = 1;          /* y1 = x135 (= 10 * 8: the group-1 maximum) */
    qn_linear lin = {.w = w, .out = 2, .in = 256, .in_act = &s.input_activations, .act_dtype = QN_DT_F32};
    assert_int_equal(qn_linear_forward(&lin, x, 2, y, &err), QN_OK);
    assert_true(fabsf(y[0] - 16.0f * (8.0f / 448.0f)) < 1e-6f);   /* 0.2857, not 0.3 */
    assert_true(fabsf(y[1] - 80.0f) < 1e-5f);
    assert_true(fabsf(y[2] + 320.0f / 56.0f) < 1e-5f);            /* row 1, x5 = -6: -336 -> -320 (tie, even) */
    assert_true(fabsf(y[3] + 80.0f) < 1e-5f);
    qn_quant_scheme_free(&s);
}

/* static int8 asymmetric: q = clamp(round(x / s) + zp, -128, 127), x' = (q - zp) * s, with s = 0.05,
 * zp = -20: x = 8 -> 160 - 20 = 140 -> 127 -> 7.35; x = -6 -> -120 - 20 = -140 -> -128 -> -5.4. */
static void test_static_int8_asym(void **st) {
    (void)st;
    qn_quant_args a;
    qn_quant_args_init(&a);
    a.num_bits = 8;
    a.type = QN_QTYPE_INT;
    a.symmetric = 0;
    a.strategy = QN_STRATEGY_TENSOR;
    a.dynamic = QN_DYNAMIC_FALSE;
    qn_error err = {0};
    assert_int_equal(qn_quant_args_validate(&a, QN_CT_VERSION_DEFAULT, "test", &err), QN_OK);
    float y[8], q[2][8];
    run(&a, 0.05f, -20.0f, y);
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < 8; j++) {
            float v = rintf(X[t][j] / 0.05f) - 20.0f;
            v = fminf(fmaxf(v, -128.0f), 127.0f);
            q[t][j] = (v + 20.0f) * 0.05f;
        }
    assert_true(fabsf(q[0][7] - 7.35f) < 1e-5f && fabsf(q[1][3] + 5.4f) < 1e-5f);
    expect_rows(q, y);
}

/* A static FP8 checkpoint (calibrated input_scale) whose input_scale tensors are replaced by a tiny
 * value evaluates much worse: proof that evaluation uses the stored scales. */
static double ppl_dir(const char *dir, int act_quant) {
    qn_error err = {0};
    qn_model *m;
    qn_tokenizer *tok;
    qn_llm *llm;
    if (qn_model_open(dir, &m, &err)) fail_msg("%s", err.msg);
    m->act_quant = act_quant;
    if (qn_tokenizer_load_dir(dir, &tok, &err)) fail_msg("%s", err.msg);
    if (qn_llm_create(m, 512, &llm, &err)) fail_msg("%s", err.msg);
    char *tp = tu_source("data/tinystories/tinystories_sample.txt");
    size_t len;
    char *text = tu_read_file(tp, &len);
    qn_ppl_result r;
    if (qn_eval_ppl(llm, tok, text, len, QN_PPL_STORIES, 512, 0, NULL, NULL, &r, &err)) fail_msg("%s", err.msg);
    free(text);
    free(tp);
    qn_llm_free(llm);
    qn_tokenizer_free(tok);
    qn_model_close(m);
    return r.ppl;
}

static void test_static_fp8_scales_used(void **st) {
    (void)st;
    char *tmp = tu_tmpdir(), cmd[4096], *model = tu_shared("models/stories260K");
    char *cal = tu_source("data/tinystories/tinystories_valid_subset.txt");
    snprintf(cmd, sizeof cmd, "'%s/quench' compress '%s' -o '%s/fp8' --scheme FP8 --dataset '%s' --max-seq-length 512 "
             "--no-sample --quiet > /dev/null 2>&1 && mkdir '%s/bad' && cp '%s/fp8/'*.json '%s/fp8/tokenizer.model' '%s/bad/'",
             QN_BINARY_DIR, model, tmp, cal, tmp, tmp, tmp, tmp);
    assert_int_equal(system(cmd), 0);
    /* copy the tensors, input_scale -> 1e-6 */
    char src[4200], dst[4200];
    snprintf(src, sizeof src, "%s/fp8", tmp);
    snprintf(dst, sizeof dst, "%s/bad", tmp);
    qn_error err = {0};
    qn_st_set *set;
    qn_st_writer *w;
    if (qn_st_set_open_dir(src, &set, &err)) fail_msg("%s", err.msg);
    if (qn_st_writer_open(dst, 0, &w, &err)) fail_msg("%s", err.msg);
    int replaced = 0;
    for (size_t i = 0; i < qn_st_set_count(set); i++) {
        const qn_tensor *t = qn_st_set_get(set, i);
        size_t l = strlen(t->name);
        uint8_t buf[4];
        const void *data = t->data;
        if (l > 12 && !strcmp(t->name + l - 12, ".input_scale")) {
            float tiny = 1e-6f;
            assert_int_equal((int)t->dtype, (int)QN_DT_F32);   /* the model is fp32 */
            memcpy(buf, &tiny, 4);
            data = buf;
            replaced++;
        }
        if (qn_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, data, t->nbytes, &err)) fail_msg("%s", err.msg);
    }
    if (qn_st_writer_finish(w, &err)) fail_msg("%s", err.msg);
    qn_st_set_free(set);
    assert_int_equal(replaced, 35);
    double good = ppl_dir(src, 1), good_w = ppl_dir(src, 0), bad = ppl_dir(dst, 1), bad_w = ppl_dir(dst, 0);
    print_message("FP8 static: ppl %.4f (weights only %.4f); tiny input_scale: %.4f (weights only %.4f)\n", good, good_w, bad, bad_w);
    assert_true(good > good_w);              /* emulation costs something */
    assert_true(bad > 10 * good);            /* saturated activations: much worse */
    assert_true(fabs(bad_w - good_w) < 1e-9); /* the weights are the same */
    tu_rmrf(tmp);
    free(tmp);
    free(model);
    free(cal);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_token_int8), cmocka_unit_test(test_static_int8),
                                       cmocka_unit_test(test_token_fp8), cmocka_unit_test(test_group128_fp8),
                                       cmocka_unit_test(test_static_int8_asym),
                                       cmocka_unit_test(test_static_fp8_scales_used)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
