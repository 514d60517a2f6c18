/* src/algo: SparseGPT.
 *
 * The reference here is deliberately simple: double precision, U from the explicit inverse
 * (naive loops), and every column's error applied at once to the whole rest of its row (the
 * later blocks' part masked by the base mask when preserving), instead of the library's lazy
 * blocks and gemm. The mask selection follows llm-compressor's sgpt_sparsify.py: unstructured per
 * block over all its rows (sort(tmp)[int(numel * sparsity)] as threshold, tmp <= thresh), N:M per
 * row at every M-th block-relative column from the current weights. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/algo.h"

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

static float *dup_f(const float *a, size_t n) {
    float *b = malloc(n * sizeof *b);
    memcpy(b, a, n * sizeof *b);
    return b;
}

/* Correlated inputs X = Z M with spread column scales (as in test_gptq.c). */
static float *make_x(rng *r, int64_t T, int64_t n) {
    double *M = malloc((size_t)(n * n) * sizeof *M), *cs = malloc((size_t)n * sizeof *cs);
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

typedef struct {
    int64_t rows, cols, T;
    float *x, *w, *H;
} fixture;

static void fixture_make(fixture *f, uint64_t seed, int64_t rows, int64_t cols, int64_t T,
                         const int64_t *dead, int ndead) {
    rng r = {seed};
    f->rows = rows;
    f->cols = cols;
    f->T = T;
    f->x = make_x(&r, T, cols);
    for (int d = 0; d < ndead; d++)
        for (int64_t t = 0; t < T; t++) f->x[t * cols + dead[d]] = 0.0f;
    qn_hessian h;
    qn_error err = {0};
    ok(qn_hessian_init(&h, cols, &err), &err);
    for (int64_t t = 0; t < T; t += 128)
        ok(qn_hessian_add(&h, f->x + t * cols, T - t < 128 ? T - t : 128, cols, 1, &err), &err);
    qn_hessian_finalize(&h);
    f->H = h.h;
    f->w = malloc((size_t)(rows * cols) * sizeof *f->w);
    for (int64_t k = 0; k < rows * cols; k++) f->w[k] = (float)(0.05 * rng_gauss(&r));
}

static void fixture_free(fixture *f) {
    free(f->x);
    free(f->w);
    free(f->H);
}

/* ------------------------------------------------------------------------------------------ */
/* the reference                                                                              */

static int ref_hinv_factor(double *A, int64_t n, double *U) {
    for (int64_t j = 0; j < n; j++) {
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
    for (int64_t c = 0; c < n; c++) {
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
    for (int64_t i = 0; i < n; i++) {
        double s = inv[i * n + i];
        for (int64_t k = 0; k < i; k++) s -= U[k * n + i] * U[k * n + i];
        if (!(s > 0)) return -1;
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

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* RTN of an fp32 value (int, as fake_quantize with an fp32 weight). */
static float ref_rtn(const qn_qparams *p, int64_t r, int64_t c, float x) {
    int64_t si = p->args.strategy == QN_STRATEGY_CHANNEL ? r
                 : p->args.strategy == QN_STRATEGY_TENSOR ? 0
                                                          : r * p->scols + c / p->tile_cols;
    const float s = p->scale[si], z = p->zero_point ? p->zero_point[si] : 0.0f;
    const int b = p->args.num_bits;
    const float qmin = (float)-(1 << (b - 1)), qmax = (float)((1 << (b - 1)) - 1);
    float y = x / s;
    if (p->zero_point) y = y + z;
    y = y < qmin ? qmin : (y > qmax ? qmax : y);
    return (rintf(y) - z) * s;
}

static void ref_sgpt(const fixture *f, const qn_sparsegpt_opts *o, const qn_qparams *quant,
                     float *wout, uint8_t *mout, double *loss_out) {
    const int64_t rows = f->rows, n = f->cols, B = o->block_size;
    double *A = malloc((size_t)(n * n) * sizeof *A), *U = malloc((size_t)(n * n) * sizeof *U);
    uint8_t *dead = malloc((size_t)n);
    double mean = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < n; j++) A[i * n + j] = f->H[i * n + j];
        dead[i] = A[i * n + i] == 0;
        if (dead[i]) A[i * n + i] = 1;
        mean += A[i * n + i];
    }
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) A[i * n + i] += o->dampening_frac * mean;
    assert_int_equal(ref_hinv_factor(A, n, U), 0);
    double *W = malloc((size_t)(rows * n) * sizeof *W);
    uint8_t *base = calloc((size_t)(rows * n), 1), *mask = calloc((size_t)(rows * n), 1);
    for (int64_t k = 0; k < rows * n; k++) {
        W[k] = dead[k % n] ? 0.0 : f->w[k];
        if (o->preserve_mask) base[k] = mask[k] = W[k] == 0.0;
    }
    double loss = 0;
    double *tmp = malloc((size_t)(rows * B) * sizeof *tmp), *srt = malloc((size_t)(rows * B) * sizeof *srt);
    for (int64_t i1 = 0; i1 < n; i1 += B) {
        const int64_t i2 = i1 + B < n ? i1 + B : n, count = i2 - i1;
        if (!o->prune_n) {
            const int64_t numel = rows * count, kk = (int64_t)((double)numel * o->sparsity);
            int64_t nb = 0;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = i1; c < i2; c++) nb += base[r * n + c];
            if (!o->preserve_mask || kk > nb) {
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = i1; c < i2; c++) {
                        const double w = W[r * n + c], d = U[c * n + c];
                        tmp[r * count + c - i1] = (base[r * n + c] ? 0.0 : w * w) / (d * d);
                    }
                memcpy(srt, tmp, (size_t)numel * sizeof *srt);
                qsort(srt, (size_t)numel, sizeof *srt, cmp_d);
                const double th = srt[kk];
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = i1; c < i2; c++) mask[r * n + c] = tmp[r * count + c - i1] <= th;
            }
        }
        for (int64_t j = i1; j < i2; j++) {
            if (o->prune_n && (j - i1) % o->prune_m == 0) {
                const int64_t width = i2 - j < o->prune_m ? i2 - j : o->prune_m;
                for (int64_t r = 0; r < rows; r++) {
                    double v[64];
                    int taken[64] = {0};
                    for (int64_t k = 0; k < width; k++) {
                        const double w = W[r * n + j + k], d = U[(j + k) * n + j + k];
                        v[k] = mask[r * n + j + k] ? 0.0 : w * w / (d * d);
                    }
                    for (int s = 0; s < o->prune_n; s++) {
                        int64_t best = -1;
                        for (int64_t k = 0; k < width; k++)
                            if (!taken[k] && (best < 0 || v[k] < v[best])) best = k;
                        taken[best] = 1;
                        mask[r * n + j + best] = 1;
                    }
                }
            }
            const double d = U[j * n + j];
            for (int64_t r = 0; r < rows; r++) {
                const double w = W[r * n + j];
                double q = w;
                if (quant) q = ref_rtn(quant, r, j, mask[r * n + j] ? 0.0f : (float)w);
                if (mask[r * n + j]) q = 0;
                const double e = (w - q) / d;
                loss += (w - q) * (w - q) / (d * d) / 2;
                W[r * n + j] = q;
                for (int64_t k = j + 1; k < n; k++)
                    if (k < i2 || !base[r * n + k]) W[r * n + k] -= e * U[j * n + k];
            }
        }
    }
    for (int64_t k = 0; k < rows * n; k++) wout[k] = (float)W[k];
    if (mout) memcpy(mout, mask, (size_t)(rows * n));
    if (loss_out) *loss_out = loss;
    free(A);
    free(U);
    free(dead);
    free(W);
    free(base);
    free(mask);
    free(tmp);
    free(srt);
}

/* Library (on copies) vs reference: masks identical, weights within tol, losses close. */
static void compare(const fixture *f, const qn_sparsegpt_opts *o, const qn_qparams *quant,
                    float *wlib, uint8_t *mlib) {
    const int64_t rows = f->rows, n = f->cols;
    float *w = dup_f(f->w, (size_t)(rows * n)), *H = dup_f(f->H, (size_t)(n * n));
    float *wr = malloc((size_t)(rows * n) * sizeof *wr);
    uint8_t *m = malloc((size_t)(rows * n)), *mr = malloc((size_t)(rows * n));
    qn_sparsegpt_report rep;
    qn_error err = {0};
    ok(qn_sparsegpt_prune(w, rows, n, H, o, quant, m, &rep, &err), &err);
    double loss;
    ref_sgpt(f, o, quant, wr, mr, &loss);
    int64_t md = 0, pruned = 0;
    double mw = 0;
    for (int64_t k = 0; k < rows * n; k++) {
        md += m[k] != mr[k];
        pruned += mr[k];
        double d = fabs((double)w[k] - wr[k]);
        if (d > mw) mw = d;
        if (m[k]) assert_true(w[k] == 0.0f);
    }
    if (md || mw > 1e-5 || fabs(rep.loss - loss) > 1e-6 * loss)
        fail_msg("%d:%d s %g block %lld preserve %d quant %d: %lld mask entries differ, max |dw| "
                 "%g, loss %g vs %g",
                 o->prune_n, o->prune_m, o->sparsity, (long long)o->block_size, o->preserve_mask,
                 quant != NULL, (long long)md, mw, rep.loss, loss);
    assert_int_equal(rep.pruned, pruned);
    if (wlib) memcpy(wlib, w, (size_t)(rows * n) * sizeof *w);
    if (mlib) memcpy(mlib, m, (size_t)(rows * n));
    free(w);
    free(H);
    free(wr);
    free(m);
    free(mr);
}

/* ------------------------------------------------------------------------------------------ */

static void test_sgpt_2of4(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 1, 64, 256, 1024, NULL, 0);
    float *w = malloc((size_t)(64 * 256) * sizeof *w);
    uint8_t *m = malloc((size_t)(64 * 256));
    const int64_t blocks[] = {128, 32};
    for (int b = 0; b < 2; b++) {
        qn_sparsegpt_opts o;
        qn_sparsegpt_opts_init(&o);
        o.prune_n = 2;
        o.prune_m = 4;
        o.block_size = blocks[b];
        o.sweep_f64 = 1;
        compare(&f, &o, NULL, w, m);
        int64_t zeros = 0;
        for (int64_t r = 0; r < 64; r++)
            for (int64_t g = 0; g < 256; g += 4) {
                int z = 0;
                for (int k = 0; k < 4; k++) z += w[r * 256 + g + k] == 0.0f;
                assert_true(z >= 2);
                zeros += z;
            }
        assert_int_equal(zeros, 64 * 256 / 2);
    }
    /* 4:8 and the default fp32 sweep (same masks here, close weights) */
    qn_sparsegpt_opts o;
    qn_sparsegpt_opts_init(&o);
    o.prune_n = 4;
    o.prune_m = 8;
    o.sweep_f64 = 1;
    compare(&f, &o, NULL, NULL, NULL);
    o.sweep_f64 = 0;
    float *H = dup_f(f.H, 256 * 256);
    memcpy(w, f.w, (size_t)(64 * 256) * sizeof *w);
    qn_error err = {0};
    ok(qn_sparsegpt_prune(w, 64, 256, H, &o, NULL, m, NULL, &err), &err);
    for (int64_t r = 0; r < 64; r++)
        for (int64_t g = 0; g < 256; g += 8) {
            int z = 0;
            for (int k = 0; k < 8; k++) z += m[r * 256 + g + k];
            assert_int_equal(z, 4);
        }
    free(H);
    free(w);
    free(m);
    fixture_free(&f);
}

static void test_sgpt_unstructured(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 2, 64, 256, 1024, NULL, 0);
    float *w = malloc((size_t)(64 * 256) * sizeof *w);
    const double sp[] = {0.5, 0.3};
    const int64_t blocks[] = {128, 32};
    for (int si = 0; si < 2; si++)
        for (int b = 0; b < 2; b++) {
            qn_sparsegpt_opts o;
            qn_sparsegpt_opts_init(&o);
            o.sparsity = sp[si];
            o.block_size = blocks[b];
            o.sweep_f64 = 1;
            compare(&f, &o, NULL, w, NULL);
            /* the reference's count: per block (all rows), int(numel * s) + 1 (no ties here) */
            for (int64_t i1 = 0; i1 < 256; i1 += blocks[b]) {
                int64_t z = 0;
                for (int64_t r = 0; r < 64; r++)
                    for (int64_t c = i1; c < i1 + blocks[b]; c++) z += w[r * 256 + c] == 0.0f;
                assert_int_equal(z, (int64_t)(64 * blocks[b] * sp[si]) + 1);
            }
        }
    free(w);
    fixture_free(&f);
}

static double out_err(const fixture *f, const float *wq) {
    const int64_t n = f->cols;
    double s = 0;
    for (int64_t t = 0; t < f->T; t++)
        for (int64_t r = 0; r < f->rows; r++) {
            double acc = 0;
            for (int64_t j = 0; j < n; j++)
                acc += (double)f->x[t * n + j] * (f->w[r * n + j] - wq[r * n + j]);
            s += acc * acc;
        }
    return sqrt(s);
}

/* Magnitude pruning to the same pattern: the N smallest |w| of each M, or per row the same
 * fraction. */
static void magnitude(const fixture *f, int pn, int pm, double sparsity, float *w) {
    const int64_t n = f->cols;
    memcpy(w, f->w, (size_t)(f->rows * n) * sizeof *w);
    for (int64_t r = 0; r < f->rows; r++) {
        float *row = w + r * n;
        if (pn) {
            for (int64_t g = 0; g < n; g += pm)
                for (int s = 0; s < pn; s++) {
                    int64_t best = -1;
                    for (int64_t k = g; k < g + pm; k++)
                        if (row[k] != 0.0f && (best < 0 || fabsf(row[k]) < fabsf(row[best]))) best = k;
                    row[best] = 0.0f;
                }
        } else {
            int64_t kk = (int64_t)(sparsity * (double)n);
            for (int64_t s = 0; s < kk; s++) {
                int64_t best = -1;
                for (int64_t k = 0; k < n; k++)
                    if (row[k] != 0.0f && (best < 0 || fabsf(row[k]) < fabsf(row[best]))) best = k;
                row[best] = 0.0f;
            }
        }
    }
}

static void test_sgpt_beats_magnitude(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 3, 48, 128, 512, NULL, 0);
    float *ws = malloc((size_t)(48 * 128) * sizeof *ws), *wm = malloc((size_t)(48 * 128) * sizeof *wm);
    for (int nm = 0; nm < 2; nm++) {
        qn_sparsegpt_opts o;
        qn_sparsegpt_opts_init(&o);
        if (nm) {
            o.prune_n = 2;
            o.prune_m = 4;
        }
        memcpy(ws, f.w, (size_t)(48 * 128) * sizeof *ws);
        float *H = dup_f(f.H, 128 * 128);
        qn_error err = {0};
        ok(qn_sparsegpt_prune(ws, 48, 128, H, &o, NULL, NULL, NULL, &err), &err);
        magnitude(&f, o.prune_n, o.prune_m, 0.5, wm);
        double es = out_err(&f, ws), em = out_err(&f, wm);
        if (getenv("QN_TEST_VERBOSE")) printf("  sparsegpt/magnitude output error %.4f\n", es / em);
        if (!(es < 0.8 * em))
            fail_msg("%s: SparseGPT output error %g is not below 0.8 x magnitude's %g",
                     nm ? "2:4" : "50%", es, em);
        free(H);
    }
    free(ws);
    free(wm);
    fixture_free(&f);
}

static void test_sgpt_preserve_mask(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 4, 32, 128, 512, NULL, 0);
    rng r = {99};
    uint8_t *base = calloc(32 * 128, 1);
    for (int64_t k = 0; k < 32 * 128; k++)
        if (rng_unif(&r) < 0.2) {
            f.w[k] = 0.0f;
            base[k] = 1;
        }
    float *w = malloc((size_t)(32 * 128) * sizeof *w);
    uint8_t *m = malloc(32 * 128);
    for (int nm = 0; nm < 2; nm++)
        for (int64_t bs = 32; bs <= 128; bs *= 4) {
            qn_sparsegpt_opts o;
            qn_sparsegpt_opts_init(&o);
            o.preserve_mask = 1;
            o.block_size = bs;
            o.sweep_f64 = 1;
            if (nm) {
                o.prune_n = 2;
                o.prune_m = 4;
            }
            compare(&f, &o, NULL, w, m);
            for (int64_t k = 0; k < 32 * 128; k++)
                if (base[k]) assert_true(m[k] && w[k] == 0.0f);
        }
    /* a base already sparser than the target: refused, w untouched */
    qn_sparsegpt_opts o;
    qn_sparsegpt_opts_init(&o);
    o.preserve_mask = 1;
    o.sparsity = 0.15;
    memcpy(w, f.w, (size_t)(32 * 128) * sizeof *w);
    float *H = dup_f(f.H, 128 * 128);
    qn_error err = {0};
    assert_int_equal(qn_sparsegpt_prune(w, 32, 128, H, &o, NULL, NULL, NULL, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "preserve_sparsity_mask"));
    assert_memory_equal(w, f.w, (size_t)(32 * 128) * sizeof *w);
    free(H);
    free(w);
    free(m);
    free(base);
    fixture_free(&f);
}

static void test_sgpt_joint_quant(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f, 5, 32, 128, 512, NULL, 0);
    qn_quant_args a;
    qn_quant_args_init(&a);
    a.num_bits = 4;
    a.strategy = QN_STRATEGY_GROUP;
    a.has_group_size = 1;
    a.group_size = 32;
    a.symmetric = 0;
    qn_qparams p;
    qn_error err = {0};
    ok(qn_qparams_init(&p, &a, QN_DT_F32, 32, 128, &err), &err);
    ok(qn_qparams_observe(&p, f.w, 128, 0, 128, &err), &err);
    float *w = malloc((size_t)(32 * 128) * sizeof *w);
    qn_sparsegpt_opts o;
    qn_sparsegpt_opts_init(&o);
    o.prune_n = 2;
    o.prune_m = 4;
    o.sweep_f64 = 1;
    o.block_size = 64;
    compare(&f, &o, &p, w, NULL);
    /* kept weights lie on the grid: quantizing again changes nothing */
    float *w2 = dup_f(w, 32 * 128);
    ok(qn_quant_fake(&p, w2, 128, 0, 128, &err), &err);
    for (int64_t k = 0; k < 32 * 128; k++) assert_true(w[k] == w2[k]); /* == : -0.0 == 0.0 */
    o.prune_n = o.prune_m = 0;
    o.sparsity = 0.4;
    compare(&f, &o, &p, NULL, NULL);
    free(w2);
    free(w);
    qn_qparams_free(&p);
    fixture_free(&f);
}

static void test_sgpt_dead_and_args(void **state) {
    (void)state;
    const int64_t dead[] = {0, 77};
    fixture f;
    fixture_make(&f, 6, 16, 128, 512, dead, 2);
    qn_sparsegpt_opts o;
    qn_sparsegpt_opts_init(&o);
    o.sweep_f64 = 1;
    o.block_size = 64;
    float *w = malloc((size_t)(16 * 128) * sizeof *w);
    compare(&f, &o, NULL, w, NULL);
    for (int64_t r = 0; r < 16; r++) assert_true(w[r * 128] == 0.0f && w[r * 128 + 77] == 0.0f);
    o.prune_n = 2;
    o.prune_m = 4;
    compare(&f, &o, NULL, NULL, NULL);
    /* odd shapes: 37 rows, a last block of 8 columns */
    fixture g;
    fixture_make(&g, 7, 37, 200, 512, NULL, 0);
    qn_sparsegpt_opts og;
    qn_sparsegpt_opts_init(&og);
    og.sweep_f64 = 1;
    og.block_size = 64;
    compare(&g, &og, NULL, NULL, NULL);
    og.prune_n = 2;
    og.prune_m = 4;
    compare(&g, &og, NULL, NULL, NULL);
    fixture_free(&g);
    /* report and bf16 rounding */
    memcpy(w, f.w, (size_t)(16 * 128) * sizeof *w);
    float *H = dup_f(f.H, 128 * 128);
    qn_sparsegpt_report rep;
    qn_error err = {0};
    o.dtype = QN_DT_BF16;
    ok(qn_sparsegpt_prune(w, 16, 128, H, &o, NULL, NULL, &rep, &err), &err);
    assert_int_equal(rep.dead, 2);
    assert_int_equal(rep.pruned, 16 * 128 / 2);
    assert_int_equal(rep.retries, 0);
    for (int64_t k = 0; k < 16 * 128; k++) assert_true(w[k] == qn_round_to_dtype(w[k], QN_DT_BF16));
    /* bad arguments */
    o.prune_n = 3; /* 3:4 on a 130-wide weight leaves a 2-wide group */
    float *w130 = calloc(16 * 130, sizeof *w130), *H130 = calloc(130 * 130, sizeof *H130);
    assert_int_equal(qn_sparsegpt_prune(w130, 16, 130, H130, &o, NULL, NULL, NULL, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "wide"));
    o.prune_n = 5;
    assert_int_equal(qn_sparsegpt_prune(w, 16, 128, H, &o, NULL, NULL, NULL, &err), QN_ERR_INVALID_ARG);
    qn_sparsegpt_opts_init(&o);
    o.sparsity = 1.0;
    assert_int_equal(qn_sparsegpt_prune(w, 16, 128, H, &o, NULL, NULL, NULL, &err), QN_ERR_INVALID_ARG);
    qn_sparsegpt_opts_init(&o);
    o.block_size = 0;
    assert_int_equal(qn_sparsegpt_prune(w, 16, 128, H, &o, NULL, NULL, NULL, &err), QN_ERR_INVALID_ARG);
    assert_int_equal(qn_sparsegpt_prune(NULL, 16, 128, H, NULL, NULL, NULL, NULL, &err), QN_ERR_INVALID_ARG);
    free(w130);
    free(H130);
    free(H);
    free(w);
    fixture_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgpt_2of4),
        cmocka_unit_test(test_sgpt_unstructured),
        cmocka_unit_test(test_sgpt_beats_magnitude),
        cmocka_unit_test(test_sgpt_preserve_mask),
        cmocka_unit_test(test_sgpt_joint_quant),
        cmocka_unit_test(test_sgpt_dead_and_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
