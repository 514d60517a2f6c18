/* src/algo/awq.c: AWQ statistics, scales, grid search, ready losses, scale application, mappings.
 *
 * Expected values are computed here independently of the library: hand-computed statistics, the
 * scale formula in double, an own int4 symmetric group fake-quantizer (compressed-tensors
 * numerics for an fp32 weight: scale = amax / 7.5, zero scale -> 2^-23, y = clamp(x / s, -8, 7),
 * round half to even, y * s) and the output MSE summed in double over every token and output. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/awq.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

typedef struct {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unif(rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0; }
static double rng_gauss(rng *r) {
    double u = rng_unif(r), v = rng_unif(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void ok(qn_status st, const qn_error *err) {
    if (st != QN_OK) fail_msg("unexpected error %d: %s", st, err->msg);
}

static qn_quant_args int_args(int bits, qn_qstrategy s, int sym, int64_t group) {
    qn_quant_args a;
    qn_quant_args_init(&a);
    a.num_bits = bits;
    a.strategy = s;
    a.symmetric = sym;
    if (group) {
        a.has_group_size = 1;
        a.group_size = group;
    }
    qn_error err = {0};
    ok(qn_quant_args_validate(&a, QN_CT_VERSION_DEFAULT, "test", &err), &err);
    return a;
}

/* bf16 round to nearest even (finite inputs) */
static float t_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* int4 symmetric group fake quantization of an fp32 weight [out, in] */
static void t_fake_int4_group(const float *w, int64_t out, int64_t in, int64_t g, float *q) {
    for (int64_t r = 0; r < out; r++)
        for (int64_t c0 = 0; c0 < in; c0 += g) {
            float amax = 0.0f;
            for (int64_t c = c0; c < c0 + g; c++) amax = fmaxf(amax, fabsf(w[r * in + c]));
            float s = amax / 7.5f;
            if (s == 0.0f) s = 1.1920928955078125e-07f;
            for (int64_t c = c0; c < c0 + g; c++) {
                float y = w[r * in + c] / s;
                y = y < -8.0f ? -8.0f : (y > 7.0f ? 7.0f : y);
                q[r * in + c] = rintf(y) * s;
            }
        }
}

/* the candidate: fake_quant(W * s) / s (fp32) */
static void t_candidate(const float *w, int64_t out, int64_t in, int64_t g, const float *s, float *q) {
    float *t = malloc(sizeof(float) * (size_t)(out * in));
    assert_non_null(t);
    for (int64_t r = 0; r < out; r++)
        for (int64_t c = 0; c < in; c++) t[r * in + c] = w[r * in + c] * s[c];
    t_fake_int4_group(t, out, in, g, q);
    for (int64_t r = 0; r < out; r++)
        for (int64_t c = 0; c < in; c++) q[r * in + c] /= s[c];
    free(t);
}

/* mean over tokens and outputs of (X W^T - X Wq^T)^2, in double */
static double t_loss(const float *x, int64_t T, const float *w, const float *wq, int64_t out, int64_t in) {
    double sse = 0.0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t o = 0; o < out; o++) {
            double a = 0.0, b = 0.0;
            for (int64_t c = 0; c < in; c++) {
                a += (double)x[t * in + c] * w[o * in + c];
                b += (double)x[t * in + c] * wq[o * in + c];
            }
            sse += (a - b) * (a - b);
        }
    return sse / ((double)T * (double)out);
}

/* the reference's scale formula, in double */
static void t_scales(const float *xm, const float *wm, int64_t n, double r, int duo, float *s) {
    double *v = malloc(sizeof(double) * (size_t)n), mx = 0, mn = INFINITY;
    for (int64_t j = 0; j < n; j++) {
        double x = pow(xm[j], r);
        if (duo) x /= pow(wm[j], 1.0 - r) + 1e-4;
        v[j] = x < 1e-4 ? 1e-4 : x;
        mx = fmax(mx, v[j]);
        mn = fmin(mn, v[j]);
    }
    for (int64_t j = 0; j < n; j++) s[j] = (float)(v[j] / sqrt(mx * mn));
    free(v);
}

/* ------------------------------------------------------------------------------------------ */
/* statistics on hand-made examples                                                            */

static void test_x_mean_hand(void **st) {
    (void)st;
    qn_error err = {0};
    qn_awq_xmean a;
    ok(qn_awq_xmean_init(&a, 3, &err), &err);
    const float b1[] = {1, -2, 3, 99, -4, 5, -6, 99};   /* 2 tokens, ld 4 (padding ignored) */
    const float b2[] = {0.5f, 0, -1};
    ok(qn_awq_xmean_add(&a, b1, 2, 4, &err), &err);
    ok(qn_awq_xmean_add(&a, b2, 1, 3, &err), &err);
    ok(qn_awq_xmean_add(&a, NULL, 0, 3, &err), &err);     /* an empty batch counts nothing */
    float m[3];
    ok(qn_awq_xmean_finalize(&a, m, &err), &err);
    assert_int_equal(a.count, 3);
    assert_float_equal(m[0], 5.5 / 3, 1e-6);
    assert_float_equal(m[1], 7.0 / 3, 1e-6);
    assert_float_equal(m[2], 10.0 / 3, 1e-6);
    /* bad input */
    assert_int_not_equal(qn_awq_xmean_add(&a, b1, 2, 2, &err), QN_OK);   /* ld < channels */
    assert_non_null(strstr(err.msg, "leading dimension"));
    qn_awq_xmean_free(&a);
    ok(qn_awq_xmean_init(&a, 3, &err), &err);
    err.msg[0] = 0;
    assert_int_not_equal(qn_awq_xmean_finalize(&a, m, &err), QN_OK);
    assert_non_null(strstr(err.msg, "no tokens"));
    qn_awq_xmean_free(&a);
    assert_int_not_equal(qn_awq_xmean_init(&a, 0, &err), QN_OK);
}

static void test_w_mean_hand(void **st) {
    (void)st;
    qn_error err = {0};
    /* two balance layers, in = 4 */
    const float w1[] = {1, -2, 4, 0, 3, 1, -1, 2};
    const float w2[] = {-2, 2, 0, 8};
    const double e = 1e-6;
    /* group 2: |w| / (group max + 1e-6), mean over the 3 rows */
    qn_quant_args g2 = int_args(4, QN_STRATEGY_GROUP, 1, 2);
    qn_awq_balance b[2] = {{w1, 2, 4, &g2, QN_DT_F32}, {w2, 1, 4, &g2, QN_DT_F32}};
    float m[4];
    ok(qn_awq_w_mean(b, 2, m, &err), &err);
    double eg[4] = {(1 / (2 + e) + 3 / (3 + e) + 2 / (2 + e)) / 3, (2 / (2 + e) + 1 / (3 + e) + 2 / (2 + e)) / 3,
                    (4 / (4 + e) + 1 / (2 + e) + 0) / 3, (0 + 2 / (2 + e) + 8 / (8 + e)) / 3};
    for (int j = 0; j < 4; j++) assert_float_equal(m[j], eg[j], 1e-6);
    assert_float_equal(m[1], 7.0 / 9, 2e-6);   /* the rounded hand values: 2.5/3, 7/9, 1/2, 2/3 */
    assert_float_equal(m[0], 2.5 / 3, 2e-6);
    /* channel: a row is one set */
    qn_quant_args ch = int_args(4, QN_STRATEGY_CHANNEL, 1, 0);
    b[0].args = b[1].args = &ch;
    ok(qn_awq_w_mean(b, 2, m, &err), &err);
    double ec[4] = {0.5, 13.0 / 36, 4.0 / 9, 5.0 / 9};
    for (int j = 0; j < 4; j++) assert_float_equal(m[j], ec[j], 2e-6);
    /* tensor: the whole weight of each layer is one set */
    qn_quant_args tn = int_args(8, QN_STRATEGY_TENSOR, 1, 0);
    b[0].args = b[1].args = &tn;
    ok(qn_awq_w_mean(b, 2, m, &err), &err);
    double et[4] = {(0.25 + 0.75 + 0.25) / 3, (0.5 + 0.25 + 0.25) / 3, (1 + 0.25 + 0) / 3, (0 + 0.5 + 1) / 3};
    for (int j = 0; j < 4; j++) assert_float_equal(m[j], et[j], 2e-6);
    /* bf16: the normalized values are rounded to bf16 (1/3 -> 0.333984375, 2/3 -> 0.66796875) */
    b[0].args = b[1].args = &ch;
    b[0].dtype = b[1].dtype = QN_DT_BF16;
    ok(qn_awq_w_mean(b, 2, m, &err), &err);
    float third = t_bf16(1.0f / t_bf16(3.0f + 1e-6f)), twothirds = t_bf16(2.0f / t_bf16(3.0f + 1e-6f));
    assert_float_equal(third, 0.333984375f, 0);
    assert_float_equal(m[1], (0.5 + third + 0.25) / 3, 1e-6);
    assert_float_equal(m[3], (0 + twothirds + 1) / 3, 1e-6);
    /* mismatched input widths */
    qn_awq_balance bad[2] = {{w1, 2, 4, &g2, QN_DT_F32}, {w2, 2, 2, &g2, QN_DT_F32}};
    assert_int_equal(qn_awq_w_mean(bad, 2, m, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "input channels"));
}

/* ------------------------------------------------------------------------------------------ */
/* scales and grid                                                                               */

static void test_scales_normalization(void **st) {
    (void)st;
    qn_error err = {0};
    enum { N = 64 };
    float xm[N], wm[N], s[N], e[N];
    rng r = {7};
    for (int j = 0; j < N; j++) {
        xm[j] = (float)(0.01 + 5.0 * rng_unif(&r));
        wm[j] = (float)(0.05 + 0.9 * rng_unif(&r));
    }
    xm[3] = 0.0f;   /* clamped to 1e-4 */
    for (int duo = 0; duo < 2; duo++)
        for (int k = 0; k <= 10; k++) {
            double ratio = k / 10.0;
            ok(qn_awq_scales(xm, wm, N, ratio, duo, s, &err), &err);
            t_scales(xm, wm, N, ratio, duo, e);
            float mx = 0, mn = INFINITY;
            for (int j = 0; j < N; j++) {
                assert_float_equal(s[j], e[j], 1e-6 * e[j]);
                mx = fmaxf(mx, s[j]);
                mn = fminf(mn, s[j]);
            }
            assert_float_equal((double)mx * mn, 1.0, 1e-6);
        }
    /* activation-only ratio 0 is the identity */
    ok(qn_awq_scales(xm, NULL, N, 0.0, 0, s, &err), &err);
    for (int j = 0; j < N; j++) assert_true(s[j] == 1.0f);
    /* x = [0, 4, 1], ratio 0.5: v = [1e-4, 2, 1], divided by sqrt(2e-4) */
    const float x3[] = {0.0f, 4.0f, 1.0f};
    ok(qn_awq_scales(x3, NULL, 3, 0.5, 0, s, &err), &err);
    assert_float_equal(s[0], 1e-4 / sqrt(2e-4), 1e-7);
    assert_float_equal(s[1], 2 / sqrt(2e-4), 1e-4);
    assert_float_equal(s[2], 1 / sqrt(2e-4), 1e-4);
    /* NaN in x_mean: max/min become NaN, every scale NaN -> 1 */
    float xn[3] = {1.0f, NAN, 2.0f};
    ok(qn_awq_scales(xn, NULL, 3, 0.5, 0, s, &err), &err);
    for (int j = 0; j < 3; j++) assert_true(s[j] == 1.0f);
    /* inf in x_mean: the norm is inf, finite entries become 0, inf / inf = NaN -> 1 */
    float xi[3] = {1.0f, INFINITY, 2.0f};
    ok(qn_awq_scales(xi, NULL, 3, 0.5, 0, s, &err), &err);
    assert_true(s[0] == 0.0f && s[1] == 1.0f && s[2] == 0.0f);
    /* duo with a zero weight mean: x^r / (0 + 1e-4) */
    const float xz[2] = {4.0f, 1.0f}, wz[2] = {0.0f, 1.0f};
    ok(qn_awq_scales(xz, wz, 2, 0.5, 1, s, &err), &err);
    double v0 = 2.0 / 1e-4, v1 = 1.0 / (1.0 + 1e-4);
    assert_float_equal(s[0], v0 / sqrt(v0 * v1), 1e-2);
    assert_float_equal(s[1], v1 / sqrt(v0 * v1), 1e-9);
    /* bad arguments */
    assert_int_not_equal(qn_awq_scales(xm, NULL, N, 0.5, 1, s, &err), QN_OK);   /* duo needs w_mean */
    assert_int_not_equal(qn_awq_scales(xm, wm, N, 1.5, 1, s, &err), QN_OK);
    assert_non_null(strstr(err.msg, "ratio"));
}

static void test_grid_points(void **st) {
    (void)st;
    qn_error err = {0};
    qn_awq_opts o;
    qn_awq_opts_init(&o);
    assert_int_equal(o.n_grid, 20);
    assert_int_equal(o.duo_scaling, QN_AWQ_DUO_TRUE);
    double r[QN_AWQ_GRID_MAX];
    int d[QN_AWQ_GRID_MAX], n;
    ok(qn_awq_grid_points(&o, r, d, &n, &err), &err);   /* HEAD, duo true: identity + 19 */
    assert_int_equal(n, 20);
    assert_true(r[0] == 0.0 && d[0] == 0);
    for (int i = 0; i < 19; i++) assert_true(d[1 + i] == 1 && fabs(r[1 + i] - i / 18.0) < 1e-15);
    o.duo_scaling = QN_AWQ_DUO_FALSE;
    ok(qn_awq_grid_points(&o, r, d, &n, &err), &err);
    assert_int_equal(n, 20);
    assert_true(r[19] == 1.0 && d[19] == 0);
    o.duo_scaling = QN_AWQ_DUO_BOTH;
    ok(qn_awq_grid_points(&o, r, d, &n, &err), &err);
    assert_int_equal(n, 20);
    for (int i = 0; i < 10; i++)
        assert_true(d[2 * i] == 0 && d[2 * i + 1] == 1 && fabs(r[2 * i] - i / 9.0) < 1e-15 && r[2 * i + 1] == r[2 * i]);
    o.grid = QN_AWQ_GRID_LEGACY;
    ok(qn_awq_grid_points(&o, r, d, &n, &err), &err);
    assert_int_equal(n, 20);
    assert_true(fabs(r[18] - 0.9) < 1e-15 && d[18] == 0 && d[19] == 1);
    o.duo_scaling = QN_AWQ_DUO_TRUE;
    ok(qn_awq_grid_points(&o, r, d, &n, &err), &err);
    assert_int_equal(n, 20);
    assert_true(d[0] == 1 && r[0] == 0.0 && fabs(r[19] - 0.95) < 1e-15);
    /* single-point grids where the reference divides by zero */
    o.grid = QN_AWQ_GRID_HEAD;
    o.duo_scaling = QN_AWQ_DUO_FALSE;
    o.n_grid = 1;
    ok(qn_awq_grid_points(&o, r, d, &n, &err), &err);
    assert_true(n == 1 && r[0] == 0.0);
    /* bad options */
    o.n_grid = 0;
    assert_int_equal(qn_awq_grid_points(&o, r, d, &n, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "n_grid"));
    o.n_grid = 1;
    o.duo_scaling = QN_AWQ_DUO_BOTH;
    assert_int_equal(qn_awq_grid_points(&o, r, d, &n, &err), QN_ERR_INVALID_ARG);
    o.duo_scaling = 3;
    o.n_grid = 20;
    assert_int_equal(qn_awq_grid_points(&o, r, d, &n, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "duo_scaling"));
}

/* ------------------------------------------------------------------------------------------ */
/* the search on a constructed layer with outlier input channels                                */

enum { IN = 128, OUT = 64, T = 256, G = 32 };

typedef struct {
    float *x, *w, *xm;
} layer;

static layer make_layer(uint64_t seed) {
    layer L;
    rng r = {seed};
    L.x = malloc(sizeof(float) * T * IN);
    L.w = malloc(sizeof(float) * OUT * IN);
    L.xm = malloc(sizeof(float) * IN);
    const int outl[4] = {5, 40, 77, 120};
    for (int t = 0; t < T; t++)
        for (int c = 0; c < IN; c++) {
            double v = rng_gauss(&r);
            for (int k = 0; k < 4; k++)
                if (c == outl[k]) v = v * 25.0 + 10.0;
            L.x[t * IN + c] = (float)v;
        }
    for (int i = 0; i < OUT * IN; i++) L.w[i] = (float)(0.05 * rng_gauss(&r));
    for (int c = 0; c < IN; c++) {   /* x_mean computed here, independently of qn_awq_xmean */
        double s = 0;
        for (int t = 0; t < T; t++) s += fabs(L.x[t * IN + c]);
        L.xm[c] = (float)(s / T);
    }
    return L;
}

static void free_layer(layer *L) {
    free(L->x);
    free(L->w);
    free(L->xm);
}

/* w_mean for one fp32 layer with group G, computed here */
static void t_w_mean(const float *w, float *wm) {
    for (int c = 0; c < IN; c++) wm[c] = 0;
    double acc[IN] = {0};
    for (int r = 0; r < OUT; r++)
        for (int c0 = 0; c0 < IN; c0 += G) {
            float m = 0;
            for (int c = c0; c < c0 + G; c++) m = fmaxf(m, fabsf(w[r * IN + c]));
            for (int c = c0; c < c0 + G; c++) acc[c] += fabsf(w[r * IN + c]) / (m + 1e-6f);
        }
    for (int c = 0; c < IN; c++) wm[c] = (float)(acc[c] / OUT);
}

static void test_search_outliers(void **st) {
    (void)st;
    qn_error err = {0};
    layer L = make_layer(2024);
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 1, G);
    qn_awq_balance b = {L.w, OUT, IN, &a, QN_DT_F32};
    qn_awq_linear_ctx lc = {&b, 1, L.x, T, IN};
    float wm[IN], wm_lib[IN], s[IN], q[OUT * IN], best_s[IN];
    t_w_mean(L.w, wm);
    ok(qn_awq_w_mean(&b, 1, wm_lib, &err), &err);
    for (int c = 0; c < IN; c++) assert_float_equal(wm_lib[c], wm[c], 1e-6 * wm[c]);
    /* identity loss: plain RTN */
    for (int c = 0; c < IN; c++) s[c] = 1.0f;
    t_candidate(L.w, OUT, IN, G, s, q);
    double l_rtn = t_loss(L.x, T, L.w, q, OUT, IN);

    struct {
        int duo;
        qn_awq_grid grid;
    } cfg[5] = {{1, QN_AWQ_GRID_HEAD}, {0, QN_AWQ_GRID_HEAD}, {2, QN_AWQ_GRID_HEAD}, {1, QN_AWQ_GRID_LEGACY},
                {2, QN_AWQ_GRID_LEGACY}};
    for (int ci = 0; ci < 5; ci++) {
        qn_awq_opts o;
        qn_awq_opts_init(&o);
        o.duo_scaling = cfg[ci].duo;
        o.grid = cfg[ci].grid;
        qn_awq_report rep;
        ok(qn_awq_search(&b, 1, NULL, L.xm, &o, qn_awq_linear_loss, &lc, best_s, &rep, &err), &err);
        /* the exhaustive evaluation, with the grid written out here */
        double ratio[40];
        int duo[40], n = 0;
        int head = cfg[ci].grid == QN_AWQ_GRID_HEAD;
        if (cfg[ci].duo == 2) {
            for (int i = 0; i < 10; i++)
                for (int d = 0; d < 2; d++, n++) {
                    ratio[n] = head ? i / 9.0 : i / 10.0;
                    duo[n] = d;
                }
        } else if (cfg[ci].duo == 1 && head) {
            ratio[n] = 0;
            duo[n++] = 0;
            for (int i = 0; i < 19; i++, n++) {
                ratio[n] = i / 18.0;
                duo[n] = 1;
            }
        } else {
            for (int i = 0; i < 20; i++, n++) {
                ratio[n] = head ? i / 19.0 : i / 20.0;
                duo[n] = cfg[ci].duo;
            }
        }
        assert_int_equal(rep.n_points, n);
        int arg = -1;
        double lmin = INFINITY, l2 = INFINITY;
        for (int k = 0; k < n; k++) {
            t_scales(L.xm, wm, IN, ratio[k], duo[k], s);
            t_candidate(L.w, OUT, IN, G, s, q);
            double l = t_loss(L.x, T, L.w, q, OUT, IN);
            assert_true(fabs(rep.ratio[k] - ratio[k]) < 1e-15 && rep.duo[k] == duo[k]);
            assert_float_equal(rep.loss[k], l, 1e-4 * l);
            if (l < lmin) {
                l2 = lmin;
                lmin = l;
                arg = k;
            } else if (l < l2) {
                l2 = l;
            }
        }
        assert_true(l2 > lmin * (1 + 1e-3));   /* no near tie: the argmin is well defined */
        assert_int_equal(rep.best, arg);
        assert_true(fabs(rep.best_ratio - ratio[arg]) < 1e-15 && rep.best_duo == duo[arg]);
        t_scales(L.xm, wm, IN, ratio[arg], duo[arg], s);
        for (int c = 0; c < IN; c++) assert_float_equal(best_s[c], s[c], 1e-6 * s[c]);
        /* AWQ reduces the quantized output MSE against no scaling */
        assert_float_equal(rep.loss_identity, l_rtn, 1e-4 * l_rtn);
        assert_true(rep.best_loss < 0.8 * l_rtn);
        t_candidate(L.w, OUT, IN, G, best_s, q);
        assert_true(t_loss(L.x, T, L.w, q, OUT, IN) < 0.8 * l_rtn);
        /* the identity is a grid point except for the legacy grid with duo true */
        if (cfg[ci].duo == 1 && !head) assert_int_equal(rep.identity_point, -1);
        else assert_int_equal(rep.identity_point, 0);
    }
    free_layer(&L);
}

/* bf16 weights through the same search: the candidate weight W*s is rounded to bf16 first */
static qn_status capture_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err) {
    void **u = user;
    memcpy(u[1], wq[0], sizeof(float) * OUT * IN);
    return qn_awq_linear_loss(u[0], wq, n, loss, err);
}

static void test_search_bf16(void **st) {
    (void)st;
    qn_error err = {0};
    layer L = make_layer(99);
    for (int i = 0; i < OUT * IN; i++) L.w[i] = t_bf16(L.w[i]);
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 1, G);
    qn_awq_balance b = {L.w, OUT, IN, &a, QN_DT_BF16};
    qn_awq_linear_ctx lc = {&b, 1, L.x, T, IN};
    float *last = malloc(sizeof(float) * OUT * IN), s[IN];
    void *u[2] = {&lc, last};
    qn_awq_opts o;
    qn_awq_opts_init(&o);
    o.duo_scaling = QN_AWQ_DUO_FALSE;
    o.n_grid = 3;   /* ratios 0, 0.5, 1: the last call is ratio 1 */
    qn_awq_report rep;
    ok(qn_awq_search(&b, 1, NULL, L.xm, &o, capture_loss, u, s, &rep, &err), &err);
    assert_true(rep.best_loss < rep.loss_identity);
    /* the ratio-1 candidate, bf16 codes: q = round(bf16(W*s) / scale) etc. recomputed here */
    float sc[IN], ws[OUT * IN];
    t_scales(L.xm, NULL, IN, 1.0, 0, sc);
    for (int r = 0; r < OUT; r++)
        for (int c = 0; c < IN; c++) ws[r * IN + c] = t_bf16(L.w[r * IN + c] * sc[c]);
    int bad = 0;
    for (int r = 0; r < OUT; r++)
        for (int c0 = 0; c0 < IN; c0 += G) {
            float amax = 0;
            for (int c = c0; c < c0 + G; c++) amax = fmaxf(amax, fabsf(ws[r * IN + c]));
            float scale = t_bf16(amax / 7.5f);
            for (int c = c0; c < c0 + G; c++) {
                float y = t_bf16(ws[r * IN + c] / scale);
                y = y < -8.0f ? -8.0f : (y > 7.0f ? 7.0f : y);
                float dq = t_bf16(rintf(y) * scale) / sc[c];
                bad += fabsf(dq - last[r * IN + c]) > 1e-6f * fabsf(dq);
            }
        }
    assert_int_equal(bad, 0);
    free(last);
    free_layer(&L);
}

/* the Gram-matrix loss equals the token loss */
static void test_gram_loss(void **st) {
    (void)st;
    qn_error err = {0};
    layer L = make_layer(5);
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 1, G);
    qn_awq_balance b = {L.w, OUT, IN, &a, QN_DT_F32};
    float *g = calloc(IN * IN, sizeof(float)), q[OUT * IN], s[IN];
    for (int i = 0; i < IN; i++)
        for (int j = 0; j < IN; j++) {
            double acc = 0;
            for (int t = 0; t < T; t++) acc += (double)L.x[t * IN + i] * L.x[t * IN + j];
            g[i * IN + j] = (float)acc;
        }
    t_scales(L.xm, NULL, IN, 0.5, 0, s);
    t_candidate(L.w, OUT, IN, G, s, q);
    const float *wq[1] = {q};
    qn_awq_linear_ctx lc = {&b, 1, L.x, T, IN};
    qn_awq_gram_ctx gc = {&b, 1, g, 1.0 / T};
    double l1, l2, le = t_loss(L.x, T, L.w, q, OUT, IN);
    ok(qn_awq_linear_loss(&lc, wq, 1, &l1, &err), &err);
    ok(qn_awq_gram_loss(&gc, wq, 1, &l2, &err), &err);
    assert_float_equal(l1, le, 1e-4 * le);
    assert_float_equal(l2, le, 1e-3 * le);
    /* the search picks the same point with either loss */
    qn_awq_opts o;
    qn_awq_opts_init(&o);
    qn_awq_report r1, r2;
    ok(qn_awq_search(&b, 1, NULL, L.xm, &o, qn_awq_linear_loss, &lc, s, &r1, &err), &err);
    ok(qn_awq_search(&b, 1, NULL, L.xm, &o, qn_awq_gram_loss, &gc, s, &r2, &err), &err);
    assert_int_equal(r1.best, r2.best);
    /* a candidate count that does not match the balance layers */
    assert_int_equal(qn_awq_linear_loss(&lc, wq, 2, &l1, &err), QN_ERR_INVALID_ARG);
    free(g);
    free_layer(&L);
}

/* ------------------------------------------------------------------------------------------ */
/* several balance layers, a quantized smooth layer, applying the scales                       */

typedef struct {
    int calls;
    float cand[64][3][16 * 16];
} smooth_rec;

static qn_status record_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err) {
    (void)err;
    smooth_rec *r = user;
    assert_int_equal(n, 3);
    memcpy(r->cand[r->calls][0], wq[0], sizeof(float) * 8 * 16);
    memcpy(r->cand[r->calls][1], wq[1], sizeof(float) * 4 * 16);
    memcpy(r->cand[r->calls][2], wq[2], sizeof(float) * 16 * 16);
    *loss = 10.0 - r->calls++;   /* decreasing: the last point wins */
    return QN_OK;
}

static void test_smooth_layer_and_apply(void **st) {
    (void)st;
    qn_error err = {0};
    rng r = {11};
    enum { N = 16 };
    float w0[8 * N], w1[4 * N], sm[N * N], xm[N], bias[N];
    for (int i = 0; i < 8 * N; i++) w0[i] = (float)rng_gauss(&r);
    for (int i = 0; i < 4 * N; i++) w1[i] = (float)rng_gauss(&r);
    for (int i = 0; i < N * N; i++) sm[i] = (float)rng_gauss(&r);
    for (int i = 0; i < N; i++) {
        xm[i] = (float)(0.1 + 3 * rng_unif(&r));
        bias[i] = (float)rng_gauss(&r);
    }
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 1, 8);
    qn_awq_balance bal[2] = {{w0, 8, N, &a, QN_DT_F32}, {w1, 4, N, &a, QN_DT_F32}};
    qn_awq_balance smooth = {sm, N, N, &a, QN_DT_F32};
    smooth_rec *rec = calloc(1, sizeof *rec);
    qn_awq_opts o;
    qn_awq_opts_init(&o);
    o.n_grid = 4;
    qn_awq_report rep;
    float s[N];
    ok(qn_awq_search(bal, 2, &smooth, xm, &o, record_loss, rec, s, &rep, &err), &err);
    assert_int_equal(rec->calls, 4);
    assert_int_equal(rep.best, 3);
    /* recompute the candidates of the last point (duo, ratio 1) here */
    float wm[N], sc[N], q[N * N];
    double acc[N] = {0};
    const float *ws[2] = {w0, w1};
    const int rows[2] = {8, 4};
    for (int b = 0; b < 2; b++)
        for (int rr = 0; rr < rows[b]; rr++)
            for (int c0 = 0; c0 < N; c0 += 8) {
                float m = 0;
                for (int c = c0; c < c0 + 8; c++) m = fmaxf(m, fabsf(ws[b][rr * N + c]));
                for (int c = c0; c < c0 + 8; c++) acc[c] += fabsf(ws[b][rr * N + c]) / (m + 1e-6f);
            }
    for (int c = 0; c < N; c++) wm[c] = (float)(acc[c] / 12);
    t_scales(xm, wm, N, 1.0, 1, sc);
    for (int c = 0; c < N; c++) assert_float_equal(s[c], sc[c], 1e-6 * sc[c]);
    for (int b = 0; b < 2; b++) {
        t_candidate(ws[b], rows[b], N, 8, sc, q);
        for (int i = 0; i < rows[b] * N; i++) assert_float_equal(rec->cand[3][b][i], q[i], 1e-5 * fabsf(q[i]) + 1e-7);
    }
    /* smooth candidate: row j divided by s_j, quantized, not divided back */
    float t[N * N];
    for (int j = 0; j < N; j++)
        for (int c = 0; c < N; c++) t[j * N + c] = sm[j * N + c] / sc[j];
    t_fake_int4_group(t, N, N, 8, q);
    for (int i = 0; i < N * N; i++) assert_float_equal(rec->cand[3][2][i], q[i], 1e-6 * fabsf(q[i]) + 1e-7);
    free(rec);

    /* applying: smooth rows / s (with bias), balance columns * s: the unquantized product is unchanged */
    float x[N], h0[N], h1[N], y0[8], y1[8];
    for (int c = 0; c < N; c++) x[c] = (float)rng_gauss(&r);
    for (int j = 0; j < N; j++) {
        double v = bias[j];
        for (int c = 0; c < N; c++) v += (double)sm[j * N + c] * x[c];
        h0[j] = (float)v;
    }
    for (int o2 = 0; o2 < 8; o2++) {
        double v = 0;
        for (int j = 0; j < N; j++) v += (double)w0[o2 * N + j] * h0[j];
        y0[o2] = (float)v;
    }
    float sm2[N * N], w02[8 * N], bias2[N];
    memcpy(sm2, sm, sizeof sm);
    memcpy(w02, w0, sizeof w0);
    memcpy(bias2, bias, sizeof bias);
    ok(qn_awq_scale_smooth_rows(sm2, N, N, bias2, s, N, QN_DT_F32, &err), &err);
    ok(qn_awq_scale_balance(w02, 8, N, s, QN_DT_F32, &err), &err);
    for (int j = 0; j < N; j++) {
        double v = bias2[j];
        for (int c = 0; c < N; c++) v += (double)sm2[j * N + c] * x[c];
        h1[j] = (float)v;
        assert_float_equal(h1[j], h0[j] / s[j], 1e-5 * fabs(h0[j] / s[j]) + 1e-6);
    }
    for (int o2 = 0; o2 < 8; o2++) {
        double v = 0;
        for (int j = 0; j < N; j++) v += (double)w02[o2 * N + j] * h1[j];
        y1[o2] = (float)v;
        assert_float_equal(y1[o2], y0[o2], 1e-4 * (fabs(y0[o2]) + 1));
    }
    /* a norm smooth layer: w / s, rounded to bf16 */
    float nw[N];
    for (int j = 0; j < N; j++) nw[j] = t_bf16(1.0f + 0.1f * (float)j);
    ok(qn_awq_scale_norm(nw, N, s, QN_DT_BF16, &err), &err);
    for (int j = 0; j < N; j++) assert_true(nw[j] == t_bf16(t_bf16(1.0f + 0.1f * (float)j) / s[j]));
    /* the last rows only when the smooth layer is wider (fused qkv_proj) */
    float wide[2 * N * 2], wide0[2 * N * 2];
    for (int i = 0; i < 4 * N; i++) wide[i] = wide0[i] = (float)(i + 1);
    ok(qn_awq_scale_smooth_rows(wide, 2 * N, 2, NULL, s, N, QN_DT_F32, &err), &err);
    for (int rr = 0; rr < 2 * N; rr++)
        for (int c = 0; c < 2; c++)
            assert_true(wide[rr * 2 + c] == (rr < N ? wide0[rr * 2 + c] : wide0[rr * 2 + c] / s[rr - N]));
    /* bad scales */
    float zs[N];
    for (int j = 0; j < N; j++) zs[j] = 1.0f;
    zs[4] = 0.0f;
    assert_int_equal(qn_awq_scale_balance(w02, 8, N, zs, QN_DT_F32, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "scale 4"));
    assert_int_equal(qn_awq_scale_smooth_rows(sm2, N, N, NULL, s, N + 1, QN_DT_F32, &err), QN_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------------------------ */
/* losses that are not finite, callback errors, bad arguments                                  */

static qn_status nan_first_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err) {
    (void)wq;
    (void)n;
    (void)err;
    int *calls = user;
    static const double seq[6] = {NAN, 3.0, INFINITY, 2.0, 2.0, 5.0};
    *loss = seq[(*calls)++ % 6];
    return QN_OK;
}

static qn_status all_nan_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err) {
    (void)user;
    (void)wq;
    (void)n;
    (void)err;
    *loss = NAN;
    return QN_OK;
}

static qn_status failing_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err) {
    (void)wq;
    (void)n;
    (void)loss;
    int *calls = user;
    if ((*calls)++ == 2) return qn_error_set(err, QN_ERR_IO, "parent forward failed");
    *loss = 1.0;
    return QN_OK;
}

static void test_search_losses_and_bad_args(void **st) {
    (void)st;
    qn_error err = {0};
    float w[4 * 8], xm[8], s[8];
    for (int i = 0; i < 32; i++) w[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 8; i++) xm[i] = 1.0f + (float)i;
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 1, 4);
    qn_awq_balance b = {w, 4, 8, &a, QN_DT_F32};
    qn_awq_opts o;
    qn_awq_opts_init(&o);
    o.n_grid = 6;
    qn_awq_report rep;
    int calls = 0;
    /* NaN first, ties: the first finite minimum (point 3) */
    ok(qn_awq_search(&b, 1, NULL, xm, &o, nan_first_loss, &calls, s, &rep, &err), &err);
    assert_int_equal(rep.best, 3);
    assert_true(rep.best_loss == 2.0 && isnan(rep.loss[0]));
    /* no finite loss */
    assert_int_equal(qn_awq_search(&b, 1, NULL, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "no finite loss"));
    /* the callback's error stops the search, with the grid point named */
    calls = 0;
    assert_int_equal(qn_awq_search(&b, 1, NULL, xm, &o, failing_loss, &calls, s, &rep, &err), QN_ERR_IO);
    assert_non_null(strstr(err.msg, "grid point 2"));
    assert_non_null(strstr(err.msg, "parent forward failed"));
    assert_int_equal(calls, 3);
    /* n_grid <= 0 */
    o.n_grid = 0;
    err.msg[0] = 0;
    assert_int_equal(qn_awq_search(&b, 1, NULL, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "n_grid"));
    o.n_grid = -3;
    assert_int_equal(qn_awq_search(&b, 1, NULL, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_ERR_INVALID_ARG);
    o.n_grid = 20;
    /* mismatched input widths */
    float w2[4 * 4] = {0};
    qn_awq_balance two[2] = {b, {w2, 4, 4, &a, QN_DT_F32}};
    err.msg[0] = 0;
    assert_int_equal(qn_awq_search(two, 2, NULL, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "balance layer 1 has 4 input channels"));
    /* group size that does not divide the width */
    qn_quant_args a3 = int_args(4, QN_STRATEGY_GROUP, 1, 3);
    qn_awq_balance b3 = {w, 4, 8, &a3, QN_DT_F32};
    assert_int_not_equal(qn_awq_search(&b3, 1, NULL, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_OK);
    assert_non_null(strstr(err.msg, "group_size"));
    /* duo scaling with the tensor strategy is refused; activation-only is fine */
    qn_quant_args at = int_args(8, QN_STRATEGY_TENSOR, 1, 0);
    qn_awq_balance bt = {w, 4, 8, &at, QN_DT_F32};
    assert_int_equal(qn_awq_search(&bt, 1, NULL, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "tensor strategy"));
    o.duo_scaling = QN_AWQ_DUO_FALSE;
    calls = 0;
    ok(qn_awq_search(&bt, 1, NULL, xm, &o, nan_first_loss, &calls, s, &rep, &err), &err);
    /* NULLs, empty lists, a smooth layer narrower than the balance input */
    assert_int_equal(qn_awq_search(&b, 1, NULL, xm, &o, NULL, NULL, s, &rep, &err), QN_ERR_INVALID_ARG);
    assert_int_equal(qn_awq_search(&b, 0, NULL, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_ERR_INVALID_ARG);
    assert_int_equal(qn_awq_search(NULL, 1, NULL, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_ERR_INVALID_ARG);
    qn_awq_balance narrow = {w2, 4, 4, &a, QN_DT_F32};
    assert_int_equal(qn_awq_search(&b, 1, &narrow, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "smooth layer"));
    qn_awq_balance nw = {NULL, 4, 8, &a, QN_DT_F32};
    assert_int_equal(qn_awq_search(&nw, 1, NULL, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_ERR_INVALID_ARG);
    qn_awq_balance bd = {w, 4, 8, &a, QN_DT_I8};
    assert_int_equal(qn_awq_search(&bd, 1, NULL, xm, &o, all_nan_loss, NULL, s, &rep, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "dtype"));
}

/* ------------------------------------------------------------------------------------------ */
/* a router: scaled, not quantized                                                             */

typedef struct {
    const float *router;
    int calls, router_untouched;
} router_rec;

static qn_status router_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err) {
    (void)err;
    router_rec *r = user;
    assert_int_equal(n, 2);
    r->router_untouched += wq[0] == r->router;
    *loss = 1.0 + r->calls++;
    return QN_OK;
}

static void test_router_balance(void **st) {
    (void)st;
    qn_error err = {0};
    rng g = {3};
    enum { N = 16 };
    float router[4 * N], w[8 * N], xm[N], wm1[N], wm2[N], s[N];
    for (int i = 0; i < 4 * N; i++) router[i] = (float)(10 * rng_gauss(&g));
    for (int i = 0; i < 8 * N; i++) w[i] = (float)rng_gauss(&g);
    for (int i = 0; i < N; i++) xm[i] = (float)(0.5 + rng_unif(&g));
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 1, 8);
    qn_awq_balance b[2] = {{router, 4, N, NULL, QN_DT_F32}, {w, 8, N, &a, QN_DT_F32}};
    /* the router's rows are not part of w_mean */
    ok(qn_awq_w_mean(b, 2, wm1, &err), &err);
    ok(qn_awq_w_mean(&b[1], 1, wm2, &err), &err);
    for (int j = 0; j < N; j++) assert_true(wm1[j] == wm2[j]);
    /* its candidate is its original weight */
    router_rec rec = {router, 0, 0};
    qn_awq_opts o;
    qn_awq_opts_init(&o);
    o.n_grid = 5;
    qn_awq_report rep;
    ok(qn_awq_search(b, 2, NULL, xm, &o, router_loss, &rec, s, &rep, &err), &err);
    assert_int_equal(rec.calls, 5);
    assert_int_equal(rec.router_untouched, 5);
    assert_int_equal(rep.best, 0);
    /* no quantized layer at all */
    b[1].args = NULL;
    assert_int_equal(qn_awq_search(b, 2, NULL, xm, &o, router_loss, &rec, s, &rep, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "none of the 2 balance layers is quantized"));
}

/* ------------------------------------------------------------------------------------------ */
/* mappings                                                                                      */

static void test_mappings(void **st) {
    (void)st;
    size_t n;
    int def;
    const qn_awq_mapping *m = qn_awq_default_mappings("Qwen3ForCausalLM", &n, &def);
    assert_int_equal(n, 4);
    assert_int_equal(def, 0);
    assert_string_equal(m[0].smooth, "re:.*input_layernorm$");
    assert_string_equal(m[0].balance[2], "re:.*v_proj$");
    assert_null(m[0].balance[3]);
    assert_int_equal(m[0].parent, QN_AWQ_PARENT_ATTN);
    assert_string_equal(m[1].smooth, "re:.*v_proj$");
    assert_int_equal(m[1].parent, QN_AWQ_PARENT_LINEAR);
    assert_int_equal(m[2].parent, QN_AWQ_PARENT_MLP);
    assert_string_equal(m[3].balance[0], "re:.*down_proj$");
    m = qn_awq_default_mappings("Qwen3MoeForCausalLM", &n, &def);
    assert_int_equal(n, 4);
    assert_string_equal(m[2].balance[0], "re:.*mlp.gate$");   /* the router first */
    assert_string_equal(m[2].balance[1], "re:.*mlp.experts.*.gate_proj$");
    assert_string_equal(m[2].balance[2], "re:.*mlp.experts.*.up_proj$");
    assert_null(m[2].balance[3]);
    assert_int_equal(m[2].parent, QN_AWQ_PARENT_MLP);
    m = qn_awq_default_mappings("Glm4MoeForCausalLM", &n, &def);
    assert_int_equal(def, 0);
    assert_string_equal(m[2].balance[0], "re:.*mlp.gate$");
    assert_string_equal(m[2].balance[1], "re:.*gate_proj$");   /* routed, shared and dense */
    assert_string_equal(m[3].smooth, "re:.*up_proj$");
    m = qn_awq_default_mappings("DeepseekV3ForCausalLM", &n, &def);
    assert_int_equal(n, 5);
    assert_string_equal(m[0].balance[0], "re:.*(q|q_a)_proj$");
    assert_string_equal(m[1].smooth, "re:.*q_a_layernorm$");
    assert_string_equal(m[3].balance[0], "re:.*mlp.gate$");
    m = qn_awq_default_mappings("SomethingForCausalLM", &n, &def);
    assert_int_equal(def, 1);
    assert_int_equal(n, 4);
    assert_string_equal(m[0].smooth, "re:.*input_layernorm$");
    /* v_proj -> o_proj: skipped under GQA */
    assert_int_equal(qn_awq_mapping_compatible("model.layers.0.self_attn.v_proj", 256,
                                               "model.layers.0.self_attn.o_proj", 1024), 0);
    assert_int_equal(qn_awq_mapping_compatible("model.layers.0.self_attn.v_proj", 1024,
                                               "model.layers.0.self_attn.o_proj", 1024), 1);
    assert_int_equal(qn_awq_mapping_compatible("model.layers.0.self_attn.qkv_proj", 3072,
                                               "model.layers.0.self_attn.o_proj", 1024), 1);
    assert_int_equal(qn_awq_mapping_compatible("model.layers.0.self_attn.qkv_proj", 1536,
                                               "model.layers.0.self_attn.o_proj", 1024), 0);
    assert_int_equal(qn_awq_mapping_compatible("model.layers.0.mlp.up_proj", 512,
                                               "model.layers.0.mlp.down_proj", 256), 1);
    assert_int_equal(qn_awq_mapping_compatible("model.layers.0.input_layernorm", 0,
                                               "model.layers.0.self_attn.o_proj", 256), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x_mean_hand),
        cmocka_unit_test(test_w_mean_hand),
        cmocka_unit_test(test_scales_normalization),
        cmocka_unit_test(test_grid_points),
        cmocka_unit_test(test_search_outliers),
        cmocka_unit_test(test_search_bf16),
        cmocka_unit_test(test_gram_loss),
        cmocka_unit_test(test_smooth_layer_and_apply),
        cmocka_unit_test(test_search_losses_and_bad_args),
        cmocka_unit_test(test_router_balance),
        cmocka_unit_test(test_mappings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
