/* src/algo: Hessian accumulation and GPTQ.
 *
 * The reference here is deliberately simple and independent of the library's sweep: double
 * precision throughout, one column at a time with the whole rest of the row updated at once (no
 * lazy blocks), U = upper Cholesky factor of the explicit inverse (naive O(n^3) loops), and its own
 * round-to-nearest (torch.round = rint, clamp to [-2^(b-1), 2^(b-1)-1]; x/s, + zp, (q - zp) * s in
 * fp32 as fake_quantize does with an fp32 weight). Only the scales come from the quant module
 * (qn_qparams_observe, tested in test_quant.c): the observation is not what is under test. The
 * library runs with sweep_f64 for the exact comparisons (the quantizer sees fp32 weights in both),
 * and in its default fp32 mode against looser bounds. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/algo.h"

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

static qn_quant_args int_args(int bits, qn_qstrategy s, int sym, int64_t group, qn_actorder ao) {
    qn_quant_args a;
    qn_quant_args_init(&a);
    a.num_bits = bits;
    a.strategy = s;
    a.symmetric = sym;
    a.actorder = ao;
    if (group) {
        a.has_group_size = 1;
        a.group_size = group;
    }
    qn_error err = {0};
    /* CT 0.18: actorder weight/static is valid with any strategy */
    ok(qn_quant_args_validate(&a, QN_CT_VERSION(0, 18), "test", &err), &err);
    return a;
}

/* Correlated calibration inputs: X = Z M, M = I + 1.2 * gaussian / sqrt(n), plus per-column
 * scales spread over 0.25..4 so that diag(H) varies (actorder matters). */
static float *make_x(rng *r, int64_t T, int64_t n) {
    double *M = malloc((size_t)(n * n) * sizeof *M);
    double *cs = malloc((size_t)n * sizeof *cs);
    for (int64_t i = 0; i < n; i++) {
        cs[i] = pow(2.0, 4.0 * rng_unif(r) - 2.0);
        for (int64_t j = 0; j < n; j++) M[i * n + j] = (i == j) + 1.2 * rng_gauss(r) / sqrt((double)n);
    }
    float *x = malloc((size_t)(T * n) * sizeof *x);
    double *z = malloc((size_t)n * sizeof *z);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < n; i++) z[i] = rng_gauss(r);
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++) s += z[i] * M[i * n + j];
            x[t * n + j] = (float)(s * cs[j]);
        }
    }
    free(M);
    free(cs);
    free(z);
    return x;
}

static float *make_w(rng *r, int64_t rows, int64_t cols, double scale) {
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    for (int64_t k = 0; k < rows * cols; k++) w[k] = (float)(scale * rng_gauss(r));
    return w;
}

/* H of x through the library (checked against a direct sum in test_hessian_accumulate). */
static float *hessian_of(const float *x, int64_t T, int64_t n, int64_t per_call) {
    qn_hessian h;
    qn_error err = {0};
    ok(qn_hessian_init(&h, n, &err), &err);
    for (int64_t t = 0; t < T; t += per_call) {
        int64_t k = T - t < per_call ? T - t : per_call;
        ok(qn_hessian_add(&h, x + t * n, k, n, 1, &err), &err);
    }
    qn_hessian_finalize(&h);
    float *H = h.h;
    h.h = NULL;
    return H;
}

static float *dup_f(const float *a, size_t n) {
    float *b = malloc(n * sizeof *b);
    memcpy(b, a, n * sizeof *b);
    return b;
}

/* ------------------------------------------------------------------------------------------ */
/* the reference                                                                              */

/* U upper with U^T U = inverse(A) (A symmetric positive definite, n x n, destroyed). */
static int ref_hinv_factor(double *A, int64_t n, double *U) {
    for (int64_t j = 0; j < n; j++) { /* A = L L^T in place (lower) */
        double s = A[j * n + j];
        for (int64_t k = 0; k < j; k++) s -= A[j * n + k] * A[j * n + k];
        if (!(s > 0)) return -1;
        A[j * n + j] = sqrt(s);
        for (int64_t i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (int64_t k = 0; k < j; k++) t -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = t / A[j * n + j];
        }
    }
    double *inv = calloc((size_t)(n * n), sizeof *inv), *y = malloc((size_t)n * sizeof *y);
    for (int64_t c = 0; c < n; c++) { /* column c of A^-1: L y = e_c, L^T x = y */
        for (int64_t i = 0; i < n; i++) {
            double t = (i == c);
            for (int64_t k = 0; k < i; k++) t -= A[i * n + k] * y[k];
            y[i] = t / A[i * n + i];
        }
        for (int64_t i = n - 1; i >= 0; i--) {
            double t = y[i];
            for (int64_t k = i + 1; k < n; k++) t -= A[k * n + i] * inv[k * n + c];
            inv[i * n + c] = t / A[i * n + i];
        }
    }
    memset(U, 0, (size_t)(n * n) * sizeof *U);
    for (int64_t i = 0; i < n; i++) { /* inv = U^T U, row by row */
        double s = inv[i * n + i];
        for (int64_t k = 0; k < i; k++) s -= U[k * n + i] * U[k * n + i];
        if (!(s > 0)) {
            free(inv);
            free(y);
            return -1;
        }
        U[i * n + i] = sqrt(s);
        for (int64_t j = i + 1; j < n; j++) {
            double t = inv[i * n + j];
            for (int64_t k = 0; k < i; k++) t -= U[k * n + i] * U[k * n + j];
            U[i * n + j] = t / U[i * n + i];
        }
    }
    free(inv);
    free(y);
    return 0;
}

static void ref_argsort_desc(const float *H, int64_t n, int32_t *perm) {
    for (int64_t a = 0; a < n; a++) perm[a] = (int32_t)a;
    for (int64_t a = 1; a < n; a++) { /* stable insertion sort by descending diag */
        int32_t v = perm[a];
        int64_t b = a;
        while (b > 0 && H[(int64_t)perm[b - 1] * n + perm[b - 1]] < H[(int64_t)v * n + v]) {
            perm[b] = perm[b - 1];
            b--;
        }
        perm[b] = v;
    }
}

/* Dead columns, damping and the factor of the permuted H (perm NULL = identity). */
static double *ref_factor(const float *H, int64_t n, const int32_t *perm, double frac, uint8_t *dead) {
    double *A = malloc((size_t)(n * n) * sizeof *A), *U = malloc((size_t)(n * n) * sizeof *U);
    double mean = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t pi = perm ? perm[i] : i;
        for (int64_t j = 0; j < n; j++) A[i * n + j] = H[pi * n + (perm ? perm[j] : j)];
        dead[i] = A[i * n + i] == 0;
        if (dead[i]) A[i * n + i] = 1;
        mean += A[i * n + i];
    }
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) A[i * n + i] += frac * mean;
    assert_int_equal(ref_hinv_factor(A, n, U), 0);
    free(A);
    return U;
}

/* The test's RTN of one fp32 value with scale s and zero point z, b-bit int. */
static float ref_rtn(float x, float s, float z, int bits, int sym, int *code) {
    const float qmin = (float)-(1 << (bits - 1)), qmax = (float)((1 << (bits - 1)) - 1);
    float y = x / s;
    if (!sym) y = y + z;
    y = y < qmin ? qmin : (y > qmax ? qmax : y);
    float q = rintf(y);
    *code = (int)q;
    return (q - (sym ? 0.0f : z)) * s;
}

static int64_t ref_scale_index(const qn_qparams *p, int64_t r, int64_t g) {
    switch (p->args.strategy) {
    case QN_STRATEGY_TENSOR: return 0;
    case QN_STRATEGY_CHANNEL: return r;
    case QN_STRATEGY_BLOCK: return (r / p->tile_rows) * p->scols + g;
    default: return r * p->scols + g;
    }
}

/* Factors already computed for one H (index 0: identity order, 1: actorder permutation). */
typedef struct {
    double frac;
    double *U[2];
    uint8_t *dead[2];
} ref_cache;

static void ref_cache_free(ref_cache *c) {
    for (int i = 0; i < 2; i++) {
        free(c->U[i]);
        free(c->dead[i]);
    }
    memset(c, 0, sizeof *c);
}

typedef struct {
    float *w;        /* result, original column order, rounded to dtype */
    int8_t *codes;
    int32_t *g_idx;  /* actorder group */
    qn_qparams p;
    double loss;
    int64_t dead;
} ref_out;

/* GPTQ of w with H (full) as llm-compressor, column by column in double. cache (may be NULL)
 * keeps the factors of this H between calls. */
static void ref_gptq(const float *w0, int64_t rows, int64_t cols, const float *H,
                     const qn_quant_args *a, qn_dtype dtype, double frac, ref_cache *cache,
                     ref_out *o) {
    qn_error err = {0};
    const int ao = (a->actorder == QN_ACTORDER_GROUP || a->actorder == QN_ACTORDER_DYNAMIC) ? 2
                   : (a->actorder == QN_ACTORDER_WEIGHT || a->actorder == QN_ACTORDER_STATIC) ? 1
                                                                                             : 0;
    int32_t *perm = malloc((size_t)cols * sizeof *perm);
    if (ao) ref_argsort_desc(H, cols, perm);
    else
        for (int64_t c = 0; c < cols; c++) perm[c] = (int32_t)c;
    float *wp = malloc((size_t)(rows * cols) * sizeof *wp);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) wp[r * cols + c] = w0[r * cols + perm[c]];
    ok(qn_qparams_init(&o->p, a, dtype, rows, cols, &err), &err);
    /* scales: original order (none, weight) or permuted (group) */
    ok(qn_qparams_observe(&o->p, ao == 2 ? wp : w0, cols, 0, cols, &err), &err);
    const int ci = ao ? 1 : 0;
    uint8_t *dead;
    double *U;
    if (cache && cache->U[ci] && cache->frac == frac) {
        U = cache->U[ci];
        dead = cache->dead[ci];
    } else {
        dead = malloc((size_t)cols);
        U = ref_factor(H, cols, ao ? perm : NULL, frac, dead);
        if (cache) {
            if (cache->frac != frac) ref_cache_free(cache);
            cache->frac = frac;
            cache->U[ci] = U;
            cache->dead[ci] = dead;
        }
    }
    double *W = malloc((size_t)(rows * cols) * sizeof *W);
    o->dead = 0;
    for (int64_t c = 0; c < cols; c++) o->dead += dead[c];
    for (int64_t k = 0; k < rows * cols; k++) W[k] = dead[k % cols] ? 0.0 : (double)wp[k];
    const int64_t tile = o->p.tile_cols;
    int8_t *cp = malloc((size_t)(rows * cols));
    double loss = 0;
    for (int64_t j = 0; j < cols; j++) {
        const int64_t g = ao == 1 ? perm[j] / tile : j / tile;
        const double d = U[j * cols + j];
        for (int64_t r = 0; r < rows; r++) {
            const int64_t si = ref_scale_index(&o->p, r, g);
            const float s = o->p.scale[si], z = o->p.zero_point ? o->p.zero_point[si] : 0.0f;
            int code;
            const double wv = W[r * cols + j];
            const double q = ref_rtn((float)wv, s, z, a->num_bits, a->symmetric, &code);
            cp[r * cols + j] = (int8_t)code;
            const double e = (wv - q) / d;
            loss += (wv - q) * (wv - q) / (d * d) / 2;
            W[r * cols + j] = q;
            for (int64_t k = j + 1; k < cols; k++) W[r * cols + k] -= e * U[j * cols + k];
        }
    }
    o->loss = loss;
    o->w = malloc((size_t)(rows * cols) * sizeof *o->w);
    o->codes = malloc((size_t)(rows * cols));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) {
            o->w[r * cols + perm[j]] = qn_round_to_dtype((float)W[r * cols + j], dtype);
            o->codes[r * cols + perm[j]] = cp[r * cols + j];
        }
    o->g_idx = NULL;
    if (ao == 2) {
        o->g_idx = malloc((size_t)cols * sizeof *o->g_idx);
        for (int64_t j = 0; j < cols; j++) o->g_idx[perm[j]] = (int32_t)(j / tile);
    }
    free(perm);
    free(wp);
    if (!cache) {
        free(dead);
        free(U);
    }
    free(W);
    free(cp);
}

static void ref_free(ref_out *o) {
    free(o->w);
    free(o->codes);
    free(o->g_idx);
    qn_qparams_free(&o->p);
}

/* ------------------------------------------------------------------------------------------ */
/* Hessian accumulation                                                                       */

static void test_hessian_accumulate(void **state) {
    (void)state;
    rng r = {11};
    const int64_t n = 48, T = 40;
    float *x = make_x(&r, 3 * T, n);
    qn_error err = {0};
    /* three sequences of T tokens one by one, and the same three as one batch of B = 3 */
    qn_hessian a, b;
    ok(qn_hessian_init(&a, n, &err), &err);
    ok(qn_hessian_init(&b, n, &err), &err);
    for (int s = 0; s < 3; s++) ok(qn_hessian_add(&a, x + s * T * n, T, n, 1, &err), &err);
    ok(qn_hessian_add(&b, x, 3 * T, n, 3, &err), &err);
    assert_int_equal(a.nsamples, 3);
    assert_int_equal(b.nsamples, 3);
    qn_hessian_finalize(&a);
    qn_hessian_finalize(&b);
    /* the reference's result: (2 / N) * sum over all tokens of x x^T, N = 3 samples */
    double maxrel = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t t = 0; t < 3 * T; t++) s += (double)x[t * n + i] * x[t * n + j];
            s *= 2.0 / 3.0;
            double ea = fabs(a.h[i * n + j] - s), eb = fabs(b.h[i * n + j] - s);
            double den = sqrt(fabs((double)a.h[i * n + i] * a.h[j * n + j])) + 1e-30;
            if (ea / den > maxrel) maxrel = ea / den;
            if (eb / den > maxrel) maxrel = eb / den;
            assert_true(a.h[i * n + j] == a.h[j * n + i]); /* finalized: symmetric */
        }
    assert_true(maxrel < 1e-5);
    /* an empty sequence still counts as a sample (H *= N / (N + 1)) */
    float h01 = a.h[1];
    ok(qn_hessian_add(&a, NULL, 0, n, 1, &err), &err);
    assert_int_equal(a.nsamples, 4);
    assert_float_equal(a.h[1], h01 * 0.75f, fabsf(h01) * 1e-6f);
    /* bad arguments */
    assert_int_equal(qn_hessian_add(&a, x, T, n, 0, &err), QN_ERR_INVALID_ARG);
    assert_int_equal(qn_hessian_add(&a, x, T, n - 1, 1, &err), QN_ERR_INVALID_ARG);
    assert_int_equal(qn_hessian_add(&a, NULL, T, n, 1, &err), QN_ERR_INVALID_ARG);
    qn_hessian_free(&a);
    qn_hessian_free(&b);
    assert_int_equal(qn_hessian_init(&b, 0, &err), QN_ERR_INVALID_ARG);
    assert_null(b.h);
    free(x);
}

/* ------------------------------------------------------------------------------------------ */
/* GPTQ against the reference                                                                 */

typedef struct {
    int64_t rows, cols;
    float *w, *H;
    ref_cache cache;
} fixture;

static void fixture_make(fixture *f, uint64_t seed, int64_t rows, int64_t cols, int64_t T,
                         const int64_t *dead_cols, int ndead) {
    rng r = {seed};
    float *x = make_x(&r, T, cols);
    for (int d = 0; d < ndead; d++)
        for (int64_t t = 0; t < T; t++) x[t * cols + dead_cols[d]] = 0.0f;
    memset(f, 0, sizeof *f);
    f->rows = rows;
    f->cols = cols;
    f->H = hessian_of(x, T, cols, 64);
    f->w = make_w(&r, rows, cols, 0.05);
    free(x);
}

static void fixture_free(fixture *f) {
    free(f->w);
    free(f->H);
    ref_cache_free(&f->cache);
}

/* Runs the library on a copy and compares with the reference: returns the fraction of codes that
 * differ; *maxdiff the largest |w - w_ref|. */
static double compare_one(fixture *f, const qn_quant_args *a, qn_dtype dt,
                          const qn_gptq_opts *o, double *maxdiff, double *lossrel, int check_gidx) {
    const int64_t rows = f->rows, cols = f->cols;
    float *w = dup_f(f->w, (size_t)(rows * cols)), *H = dup_f(f->H, (size_t)(cols * cols));
    int8_t *codes = malloc((size_t)(rows * cols));
    int32_t *g_idx = malloc((size_t)cols * sizeof *g_idx);
    qn_qparams p;
    qn_gptq_report rep;
    qn_error err = {0};
    ok(qn_gptq_quantize(w, rows, cols, H, a, dt, o, &p, g_idx, codes, &rep, &err), &err);
    ref_out ref;
    ref_gptq(f->w, rows, cols, f->H, a, dt, o->dampening_frac, &f->cache, &ref);
    /* scales identical (same observer input) */
    for (int64_t k = 0; k < p.srows * p.scols; k++) {
        assert_true(p.scale[k] == ref.p.scale[k]);
        if (p.zero_point) assert_true(p.zero_point[k] == ref.p.zero_point[k]);
    }
    if (check_gidx) {
        assert_non_null(ref.g_idx);
        assert_ptr_equal(p.g_idx, g_idx);
        for (int64_t c = 0; c < cols; c++) assert_int_equal(g_idx[c], ref.g_idx[c]);
    } else {
        assert_null(p.g_idx);
    }
    assert_int_equal(rep.dead, ref.dead);
    int64_t diff = 0;
    double md = 0;
    for (int64_t k = 0; k < rows * cols; k++) {
        diff += codes[k] != ref.codes[k];
        double d = fabs((double)w[k] - ref.w[k]);
        if (d > md) md = d;
    }
    /* the codes are those of the returned weight */
    float *dq = malloc((size_t)(rows * cols) * sizeof *dq);
    ok(qn_quant_dequantize(&p, codes, cols, 0, cols, dq, cols, &err), &err);
    for (int64_t k = 0; k < rows * cols; k++) assert_true(dq[k] == w[k]);
    *maxdiff = md;
    *lossrel = fabs(rep.loss - ref.loss) / ref.loss;
    free(dq);
    ref_free(&ref);
    qn_qparams_free(&p);
    free(w);
    free(H);
    free(codes);
    free(g_idx);
    return (double)diff / (double)(rows * cols);
}

static void test_gptq_matches_reference(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 7, 64, 256, 1024, NULL, 0);
    const int64_t blocks[] = {32, 128};
    const struct {
        qn_qstrategy s;
        int64_t g;
    } strat[] = {{QN_STRATEGY_CHANNEL, 0}, {QN_STRATEGY_GROUP, 32}, {QN_STRATEGY_GROUP, 64}};
    const qn_actorder aos[] = {QN_ACTORDER_NONE, QN_ACTORDER_GROUP, QN_ACTORDER_WEIGHT};
    int cases = 0;
    for (size_t bi = 0; bi < 2; bi++)
        for (size_t si = 0; si < 3; si++)
            for (int sym = 0; sym <= 1; sym++)
                for (size_t ai = 0; ai < 3; ai++) {
                    if (aos[ai] == QN_ACTORDER_GROUP && strat[si].s != QN_STRATEGY_GROUP) continue;
                    qn_quant_args a = int_args(4, strat[si].s, sym, strat[si].g, aos[ai]);
                    qn_gptq_opts o;
                    qn_gptq_opts_init(&o);
                    o.block_size = blocks[bi];
                    o.sweep_f64 = 1;
                    double md, lr;
                    double frac = compare_one(&f, &a, QN_DT_F32, &o, &md, &lr,
                                              aos[ai] == QN_ACTORDER_GROUP);
                    if (frac != 0 || md > 1e-5 || lr > 1e-6)
                        fail_msg("block %lld strategy %d g %lld sym %d actorder %d: %.5f%% codes "
                                 "differ, max |dw| %g, loss rel %g",
                                 (long long)blocks[bi], (int)strat[si].s, (long long)strat[si].g,
                                 sym, (int)aos[ai], 100 * frac, md, lr);
                    cases++;
                }
    assert_int_equal(cases, 2 * (2 * 2 + 2 * 2 * 3));
    fixture_free(&f);
}

/* bf16 model dtype, int8 tensor, block strategy, aliases static/dynamic, fp32 factorization. */
static void test_gptq_more_schemes(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 21, 48, 128, 512, NULL, 0);
    for (int64_t k = 0; k < f.rows * f.cols; k++) f.w[k] = qn_round_to_dtype(f.w[k], QN_DT_BF16);
    qn_gptq_opts o;
    qn_gptq_opts_init(&o);
    o.sweep_f64 = 1;
    o.block_size = 64;
    double md, lr, frac;
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 1, 32, QN_ACTORDER_DYNAMIC);
    frac = compare_one(&f, &a, QN_DT_BF16, &o, &md, &lr, 1);
    assert_true(frac == 0 && md == 0 && lr < 1e-6);
    a = int_args(4, QN_STRATEGY_CHANNEL, 0, 0, QN_ACTORDER_STATIC);
    frac = compare_one(&f, &a, QN_DT_BF16, &o, &md, &lr, 0);
    assert_true(frac == 0 && md == 0 && lr < 1e-6);
    a = int_args(8, QN_STRATEGY_TENSOR, 1, 0, QN_ACTORDER_NONE);
    frac = compare_one(&f, &a, QN_DT_F32, &o, &md, &lr, 0);
    assert_true(frac == 0 && md < 1e-5 && lr < 1e-6);
    qn_quant_args_init(&a);
    a.num_bits = 4;
    a.strategy = QN_STRATEGY_BLOCK;
    a.has_block_structure = 1;
    a.block_structure[0] = 16;
    a.block_structure[1] = 32;
    a.actorder = QN_ACTORDER_WEIGHT;
    frac = compare_one(&f, &a, QN_DT_F32, &o, &md, &lr, 0);
    assert_true(frac == 0 && md < 1e-5 && lr < 1e-6);
    /* odd shapes: rows not a multiple of the 4-row tiles, a last block of 8 columns */
    fixture g;
    fixture_make(&g, 22, 37, 200, 512, NULL, 0);
    a = int_args(4, QN_STRATEGY_CHANNEL, 0, 0, QN_ACTORDER_WEIGHT);
    frac = compare_one(&g, &a, QN_DT_F32, &o, &md, &lr, 0);
    assert_true(frac == 0 && md < 1e-5 && lr < 1e-6);
    a = int_args(4, QN_STRATEGY_GROUP, 1, 40, QN_ACTORDER_GROUP);
    frac = compare_one(&g, &a, QN_DT_F32, &o, &md, &lr, 1);
    assert_true(frac == 0 && md < 1e-5 && lr < 1e-6);
    fixture_free(&g);
    /* the fp32 factorization gives the same codes on this well-conditioned H */
    o.factor_f64 = 0;
    a = int_args(4, QN_STRATEGY_GROUP, 1, 32, QN_ACTORDER_NONE);
    frac = compare_one(&f, &a, QN_DT_F32, &o, &md, &lr, 0);
    assert_true(frac < 0.002 && lr < 1e-3);
    fixture_free(&f);
}

/* The default fp32 sweep: the same result up to rounding decisions that fp32 accumulation moves
 * across a .5 boundary (each such flip then changes the rest of its row). */
static void test_gptq_fp32_sweep(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 8, 64, 256, 1024, NULL, 0);
    qn_gptq_opts o;
    qn_gptq_opts_init(&o);
    o.block_size = 32;
    const qn_actorder aos[] = {QN_ACTORDER_NONE, QN_ACTORDER_GROUP, QN_ACTORDER_WEIGHT};
    for (int sym = 0; sym <= 1; sym++)
        for (size_t ai = 0; ai < 3; ai++) {
            qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, sym, 64, aos[ai]);
            double md, lr;
            double frac = compare_one(&f, &a, QN_DT_F32, &o, &md, &lr, aos[ai] == QN_ACTORDER_GROUP);
            if (getenv("QN_TEST_VERBOSE"))
                printf("  fp32 sweep: %.4f%% codes differ, loss rel %.2g\n", 100 * frac, lr);
            if (frac > 0.01 || lr > 1e-3)
                fail_msg("sym %d actorder %d: %.4f%% codes differ, loss rel %g", sym, (int)aos[ai],
                         100 * frac, lr);
        }
    fixture_free(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* GPTQ's purpose: lower output error than RTN on correlated inputs                           */

static double out_err(const float *x, int64_t T, int64_t n, const float *w, const float *wq,
                      int64_t rows) {
    double s = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t r = 0; r < rows; r++) {
            double acc = 0;
            for (int64_t j = 0; j < n; j++) acc += (double)x[t * n + j] * (w[r * n + j] - wq[r * n + j]);
            s += acc * acc;
        }
    return sqrt(s);
}

static void check_beats_rtn(const qn_quant_args *a, uint64_t seed, double max_ratio) {
    rng r = {seed};
    const int64_t rows = 64, n = 128, T = 512;
    float *x = make_x(&r, T, n);
    float *H = hessian_of(x, T, n, 128);
    float *w = make_w(&r, rows, n, 0.05), *wg = dup_f(w, (size_t)(rows * n)), *wr = dup_f(w, (size_t)(rows * n));
    qn_qparams p, pr;
    qn_gptq_report rep;
    qn_error err = {0};
    uint8_t *codes = malloc((size_t)(rows * n));
    ok(qn_gptq_quantize(wg, rows, n, H, a, QN_DT_BF16, NULL, &p, NULL, codes, &rep, &err), &err);
    /* the codes (int8, fp8 bytes or E2M1 nibbles) are exactly those of the returned weight */
    float *dq = malloc((size_t)(rows * n) * sizeof *dq);
    ok(qn_quant_dequantize(&p, codes, n, 0, n, dq, n, &err), &err);
    for (int64_t k = 0; k < rows * n; k++) assert_true(dq[k] == wg[k]);
    free(dq);
    free(codes);
    ok(qn_qparams_init(&pr, a, QN_DT_BF16, rows, n, &err), &err);
    if (pr.args.strategy == QN_STRATEGY_TENSOR_GROUP) pr.global_scale = p.global_scale;
    ok(qn_qparams_observe(&pr, w, n, 0, n, &err), &err);
    ok(qn_quant_fake(&pr, wr, n, 0, n, &err), &err);
    double eg = out_err(x, T, n, w, wg, rows), er = out_err(x, T, n, w, wr, rows);
    if (getenv("QN_TEST_VERBOSE")) printf("  gptq/rtn output error %.4f\n", eg / er);
    if (!(eg < max_ratio * er))
        fail_msg("GPTQ output error %g is not below %.2f x RTN's %g", eg, max_ratio, er);
    assert_true(rep.loss > 0);
    qn_qparams_free(&p);
    qn_qparams_free(&pr);
    free(x);
    free(H);
    free(w);
    free(wg);
    free(wr);
}

static void test_gptq_beats_rtn(void **state) {
    (void)state;
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 1, 32, QN_ACTORDER_WEIGHT);
    check_beats_rtn(&a, 31, 0.85);
    a = int_args(4, QN_STRATEGY_CHANNEL, 0, 0, QN_ACTORDER_NONE);
    check_beats_rtn(&a, 32, 0.85);
    /* float formats through the same sweep: fp8 per channel, NVFP4 (tensor_group, g 16) */
    qn_quant_scheme s;
    qn_error err = {0};
    ok(qn_scheme_preset("FP8", &s, &err), &err);
    check_beats_rtn(&s.weights, 33, 0.95);
    qn_quant_scheme_free(&s);
    ok(qn_scheme_preset("NVFP4", &s, &err), &err);
    check_beats_rtn(&s.weights, 34, 0.9);
    qn_quant_scheme_free(&s);
}

/* ------------------------------------------------------------------------------------------ */
/* dead inputs, damping retries, zeros, arguments                                             */

static void test_gptq_dead_inputs(void **state) {
    (void)state;
    const int64_t dead[] = {3, 100, 101};
    fixture f;
    fixture_make(&f, 9, 32, 128, 512, dead, 3);
    assert_true(f.H[3 * 128 + 3] == 0.0f);
    qn_gptq_opts o;
    qn_gptq_opts_init(&o);
    o.sweep_f64 = 1;
    o.block_size = 32;
    double md, lr;
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 0, 32, QN_ACTORDER_GROUP);
    assert_true(compare_one(&f, &a, QN_DT_F32, &o, &md, &lr, 1) == 0 && md < 1e-5);
    a = int_args(4, QN_STRATEGY_CHANNEL, 1, 0, QN_ACTORDER_NONE);
    assert_true(compare_one(&f, &a, QN_DT_F32, &o, &md, &lr, 0) == 0 && md < 1e-5);
    /* the dead columns come out exactly 0 */
    float *w = dup_f(f.w, (size_t)(32 * 128)), *H = dup_f(f.H, (size_t)(128 * 128));
    qn_qparams p;
    qn_gptq_report rep;
    qn_error err = {0};
    ok(qn_gptq_quantize(w, 32, 128, H, &a, QN_DT_F32, NULL, &p, NULL, NULL, &rep, &err), &err);
    assert_int_equal(rep.dead, 3);
    for (int64_t r = 0; r < 32; r++)
        for (int d = 0; d < 3; d++) assert_true(w[r * 128 + dead[d]] == 0.0f);
    qn_qparams_free(&p);
    free(w);
    free(H);
    fixture_free(&f);
}

/* H = Q diag(lambda) Q^T with one eigenvalue -0.05 * mean(lambda): indefinite; 1% damping is not
 * enough, 10% is. */
static float *indefinite_h(int64_t n, uint64_t seed) {
    rng r = {seed};
    double *Q = malloc((size_t)(n * n) * sizeof *Q), *lam = malloc((size_t)n * sizeof *lam);
    for (int64_t k = 0; k < n * n; k++) Q[k] = rng_gauss(&r);
    for (int64_t i = 0; i < n; i++) { /* Gram-Schmidt on the rows */
        for (int64_t k = 0; k < i; k++) {
            double d = 0;
            for (int64_t j = 0; j < n; j++) d += Q[i * n + j] * Q[k * n + j];
            for (int64_t j = 0; j < n; j++) Q[i * n + j] -= d * Q[k * n + j];
        }
        double s = 0;
        for (int64_t j = 0; j < n; j++) s += Q[i * n + j] * Q[i * n + j];
        for (int64_t j = 0; j < n; j++) Q[i * n + j] /= sqrt(s);
    }
    double mean = 0;
    for (int64_t i = 0; i < n; i++) mean += (lam[i] = 0.5 + rng_unif(&r));
    mean /= (double)n;
    lam[n / 2] = -0.05 * mean;
    float *H = malloc((size_t)(n * n) * sizeof *H);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++) s += Q[k * n + i] * lam[k] * Q[k * n + j];
            H[i * n + j] = (float)s;
        }
    for (int64_t i = 0; i < n; i++) /* exactly symmetric */
        for (int64_t j = i + 1; j < n; j++) H[j * n + i] = H[i * n + j];
    free(Q);
    free(lam);
    return H;
}

static void test_gptq_damping_retry(void **state) {
    (void)state;
    const int64_t rows = 16, n = 64;
    rng r = {5};
    float *H = indefinite_h(n, 77), *w0 = make_w(&r, rows, n, 0.05);
    qn_quant_args a = int_args(4, QN_STRATEGY_CHANNEL, 1, 0, QN_ACTORDER_NONE);
    qn_error err = {0};
    qn_qparams p;
    qn_gptq_report rep;
    qn_gptq_opts o;
    qn_gptq_opts_init(&o);
    o.sweep_f64 = 1;
    /* retried once, at 10x the fraction, and then equal to the reference with damping 0.1 */
    float *w = dup_f(w0, (size_t)(rows * n)), *Hc = dup_f(H, (size_t)(n * n));
    int8_t *codes = malloc((size_t)(rows * n));
    ok(qn_gptq_quantize(w, rows, n, Hc, &a, QN_DT_F32, &o, &p, NULL, codes, &rep, &err), &err);
    assert_int_equal(rep.retries, 1);
    assert_int_equal(rep.identity_fallback, 0);
    assert_true(fabs(rep.damp_frac - 0.1) < 1e-12);
    ref_out ref;
    ref_gptq(w0, rows, n, H, &a, QN_DT_F32, 0.1, NULL, &ref);
    for (int64_t k = 0; k < rows * n; k++) {
        assert_int_equal(codes[k], ref.codes[k]);
        assert_true(fabs(w[k] - ref.w[k]) < 1e-5);
    }
    ref_free(&ref);
    qn_qparams_free(&p);
    /* with the ceiling below what works: an error naming the problem, w untouched */
    memcpy(w, w0, (size_t)(rows * n) * sizeof *w);
    memcpy(Hc, H, (size_t)(n * n) * sizeof *Hc);
    o.damp_max_frac = 0.05;
    assert_int_equal(qn_gptq_quantize(w, rows, n, Hc, &a, QN_DT_F32, &o, &p, NULL, NULL, &rep, &err),
                     QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "not positive definite"));
    assert_memory_equal(w, w0, (size_t)(rows * n) * sizeof *w);
    qn_qparams_free(&p); /* harmless after a failure */
    /* the reference's identity fallback on request: plain RTN, reported */
    memcpy(Hc, H, (size_t)(n * n) * sizeof *Hc);
    o.identity_fallback = 1;
    ok(qn_gptq_quantize(w, rows, n, Hc, &a, QN_DT_F32, &o, &p, NULL, NULL, &rep, &err), &err);
    assert_int_equal(rep.identity_fallback, 1);
    float *rtn = dup_f(w0, (size_t)(rows * n));
    ok(qn_quant_fake(&p, rtn, n, 0, n, &err), &err);
    assert_memory_equal(w, rtn, (size_t)(rows * n) * sizeof *w);
    qn_qparams_free(&p);
    /* NaN in H: an error at once */
    memcpy(Hc, H, (size_t)(n * n) * sizeof *Hc);
    Hc[5 * n + 9] = NAN;
    assert_int_equal(qn_gptq_quantize(w, rows, n, Hc, &a, QN_DT_F32, &o, &p, NULL, NULL, &rep, &err),
                     QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "not finite"));
    free(rtn);
    free(codes);
    free(w);
    free(Hc);
    free(H);
    free(w0);
}

static void test_gptq_preserve_zeros(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 12, 32, 128, 512, NULL, 0);
    for (int64_t k = 0; k < 32 * 128; k++) /* 2:4 pattern */
        if (k % 4 < 2) f.w[k] = 0.0f;
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 0, 32, QN_ACTORDER_WEIGHT);
    for (int mode = 0; mode < 2; mode++) {
        float *w = dup_f(f.w, (size_t)(32 * 128)), *H = dup_f(f.H, (size_t)(128 * 128));
        qn_gptq_opts o;
        qn_gptq_opts_init(&o);
        o.zeros = mode ? QN_ZEROS_OFF : QN_ZEROS_AUTO;
        qn_qparams p;
        qn_gptq_report rep;
        qn_error err = {0};
        ok(qn_gptq_quantize(w, 32, 128, H, &a, QN_DT_BF16, &o, &p, NULL, NULL, &rep, &err), &err);
        assert_int_equal(rep.preserved_zeros, !mode);
        int64_t kept = 0;
        for (int64_t k = 0; k < 32 * 128; k++)
            if (k % 4 < 2) kept += w[k] == 0.0f;
        if (getenv("QN_TEST_VERBOSE")) printf("  zeros kept %lld / %d\n", (long long)kept, 32 * 128 / 2);
        if (!mode) assert_int_equal(kept, 32 * 128 / 2);
        else assert_true(kept < 32 * 128 / 2 * 9 / 10); /* HEAD: the zeros receive updates */
        qn_qparams_free(&p);
        free(w);
        free(H);
    }
    fixture_free(&f);
}

/* Weights sharing one Hessian: identical to separate calls on copies of H, with mixed orders. */
static void test_gptq_shared(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 13, 48, 128, 512, NULL, 0);
    const int64_t rows[3] = {48, 16, 32};
    const qn_actorder aos[3] = {QN_ACTORDER_NONE, QN_ACTORDER_STATIC, QN_ACTORDER_GROUP};
    qn_quant_args a[3];
    float *ws[3], *wsep[3];
    qn_qparams ps[3], psep[3];
    int32_t gs[3][128], gsep[128];
    int8_t *cs[3];
    qn_gptq_report rs[3], rsep;
    qn_gptq_target t[3];
    qn_error err = {0};
    for (int i = 0; i < 3; i++) {
        a[i] = int_args(4, QN_STRATEGY_GROUP, i != 1, 32, aos[i]);
        ws[i] = dup_f(f.w, (size_t)(rows[i] * 128));
        wsep[i] = dup_f(f.w, (size_t)(rows[i] * 128));
        cs[i] = malloc((size_t)(rows[i] * 128));
        t[i] = (qn_gptq_target){ws[i], rows[i], &a[i], &ps[i], gs[i], cs[i], &rs[i]};
    }
    float *H = dup_f(f.H, 128 * 128);
    ok(qn_gptq_quantize_shared(t, 3, 128, H, QN_DT_BF16, NULL, &err), &err);
    for (int i = 0; i < 3; i++) {
        memcpy(H, f.H, sizeof(float) * 128 * 128);
        ok(qn_gptq_quantize(wsep[i], rows[i], 128, H, &a[i], QN_DT_BF16, NULL, &psep[i], gsep, NULL,
                            &rsep, &err), &err);
        assert_memory_equal(ws[i], wsep[i], sizeof(float) * (size_t)(rows[i] * 128));
        assert_true(rs[i].loss == rsep.loss);
        assert_int_equal(rs[i].permuted, i != 0);
        if (i == 2) assert_memory_equal(gs[2], gsep, sizeof gsep);
        qn_qparams_free(&ps[i]);
        qn_qparams_free(&psep[i]);
    }
    /* only the upper triangle of H is read: garbage below the diagonal changes nothing */
    for (int i = 0; i < 3; i++) memcpy(wsep[i], f.w, sizeof(float) * (size_t)(rows[i] * 128));
    memcpy(H, f.H, sizeof(float) * 128 * 128);
    for (int64_t r = 1; r < 128; r++)
        for (int64_t c = 0; c < r; c++) H[r * 128 + c] = NAN;
    qn_gptq_target t2[3];
    for (int i = 0; i < 3; i++) t2[i] = (qn_gptq_target){wsep[i], rows[i], &a[i], &psep[i], gsep, NULL, NULL};
    ok(qn_gptq_quantize_shared(t2, 3, 128, H, QN_DT_BF16, NULL, &err), &err);
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(ws[i], wsep[i], sizeof(float) * (size_t)(rows[i] * 128));
        qn_qparams_free(&psep[i]);
    }
    /* the persistent factor (streamed experts): the same weights and losses, one call at a time */
    qn_gptq_factor *fac = NULL;
    ok(qn_gptq_factor_create(f.H, 128, NULL, &fac, &err), &err);
    for (int i = 0; i < 3; i++) {
        memcpy(wsep[i], f.w, sizeof(float) * (size_t)(rows[i] * 128));
        qn_gptq_target tf = {wsep[i], rows[i], &a[i], &psep[i], gsep, NULL, &rsep};
        ok(qn_gptq_factor_quantize(fac, &tf, QN_DT_BF16, &err), &err);
        assert_memory_equal(ws[i], wsep[i], sizeof(float) * (size_t)(rows[i] * 128));
        assert_true(rs[i].loss == rsep.loss);
        if (i == 2) assert_memory_equal(gs[2], gsep, sizeof gsep);
        qn_qparams_free(&psep[i]);
    }
    /* again, after both orders were factored (H itself is no longer kept) */
    memcpy(wsep[0], f.w, sizeof(float) * (size_t)(rows[0] * 128));
    qn_gptq_target tf0 = {wsep[0], rows[0], &a[0], &psep[0], NULL, NULL, NULL};
    ok(qn_gptq_factor_quantize(fac, &tf0, QN_DT_BF16, &err), &err);
    assert_memory_equal(ws[0], wsep[0], sizeof(float) * (size_t)(rows[0] * 128));
    qn_qparams_free(&psep[0]);
    qn_gptq_factor_free(fac);
    /* a failing target: nothing changed, nothing held */
    a[1].num_bits = 0;
    for (int i = 0; i < 3; i++) memcpy(ws[i], f.w, sizeof(float) * (size_t)(rows[i] * 128));
    memcpy(H, f.H, sizeof(float) * 128 * 128);
    assert_int_not_equal(qn_gptq_quantize_shared(t, 3, 128, H, QN_DT_BF16, NULL, &err), QN_OK);
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(ws[i], f.w, sizeof(float) * (size_t)(rows[i] * 128));
        assert_null(ps[i].scale);
        free(ws[i]);
        free(wsep[i]);
        free(cs[i]);
    }
    free(H);
    fixture_free(&f);
}

static void test_gptq_bad_args(void **state) {
    (void)state;
    float w[64], H[64];
    memset(w, 0, sizeof w);
    memset(H, 0, sizeof H);
    qn_error err = {0};
    qn_qparams p;
    qn_gptq_opts o;
    qn_gptq_opts_init(&o);
    qn_quant_args a = int_args(4, QN_STRATEGY_GROUP, 1, 4, QN_ACTORDER_GROUP);
    /* actorder group needs the g_idx output */
    assert_int_equal(qn_gptq_quantize(w, 8, 8, H, &a, QN_DT_F32, &o, &p, NULL, NULL, NULL, &err),
                     QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "g_idx"));
    /* group size must divide the width */
    a = int_args(4, QN_STRATEGY_GROUP, 1, 3, QN_ACTORDER_NONE);
    assert_int_equal(qn_gptq_quantize(w, 8, 8, H, &a, QN_DT_F32, &o, &p, NULL, NULL, NULL, &err),
                     QN_ERR_UNSUPPORTED);
    a = int_args(4, QN_STRATEGY_CHANNEL, 1, 0, QN_ACTORDER_NONE);
    o.block_size = 0;
    assert_int_equal(qn_gptq_quantize(w, 8, 8, H, &a, QN_DT_F32, &o, &p, NULL, NULL, NULL, &err),
                     QN_ERR_INVALID_ARG);
    qn_gptq_opts_init(&o);
    o.dampening_frac = -1;
    assert_int_equal(qn_gptq_quantize(w, 8, 8, H, &a, QN_DT_F32, &o, &p, NULL, NULL, NULL, &err),
                     QN_ERR_INVALID_ARG);
    assert_int_equal(qn_gptq_quantize(w, 0, 8, H, &a, QN_DT_F32, NULL, &p, NULL, NULL, NULL, &err),
                     QN_ERR_INVALID_ARG);
    assert_int_equal(qn_gptq_quantize(NULL, 8, 8, H, &a, QN_DT_F32, NULL, &p, NULL, NULL, NULL, &err),
                     QN_ERR_INVALID_ARG);
    /* an all-zero H: every column dead, H = I: plain RTN with zeroed weights */
    for (int k = 0; k < 64; k++) w[k] = (float)(k % 7) - 3.0f;
    ok(qn_gptq_quantize(w, 8, 8, H, &a, QN_DT_F32, NULL, &p, NULL, NULL, NULL, &err), &err);
    for (int k = 0; k < 64; k++) assert_true(w[k] == 0.0f);
    qn_qparams_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hessian_accumulate),
        cmocka_unit_test(test_gptq_matches_reference),
        cmocka_unit_test(test_gptq_more_schemes),
        cmocka_unit_test(test_gptq_fp32_sweep),
        cmocka_unit_test(test_gptq_beats_rtn),
        cmocka_unit_test(test_gptq_dead_inputs),
        cmocka_unit_test(test_gptq_damping_retry),
        cmocka_unit_test(test_gptq_preserve_zeros),
        cmocka_unit_test(test_gptq_shared),
        cmocka_unit_test(test_gptq_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
