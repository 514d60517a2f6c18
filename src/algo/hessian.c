/* quench — Hessian accumulation and the inverse-Hessian factor of GPTQ / SparseGPT.
 *
 * Reference: llm-compressor accumulate_hessian (modifiers/quantization/gptq/gptq_quantize.py and
 * modifiers/pruning/sparsegpt/sgpt_sparsify.py, identical): `num_added = inp.shape[0]` is the
 * batch dimension of the [B, T, n] input (a 2-D input is unsqueezed to B = 1), so N counts
 * samples, not tokens; H *= N/(N+B); N += B; inp *= sqrt(2/N); H += inp^T inp. (The newest
 * modifiers/gptq version sums 2 x x^T unscaled and divides by N once before GPTQ: the same H.)
 * We compute the same running average with one ssyrk: H = (2/N) X^T X + (N_old/N) H on the upper
 * triangle, mirrored on request.
 *
 * The factor: the reference computes Hinv = cholesky(cholesky_inverse(cholesky(H + damp I)),
 * upper=True) in fp32 (three O(n^3) steps). U is the unique upper Cholesky factor of H^-1, which
 * we obtain with half the work: with J the reversal permutation and J H J = R^T R (potrf, upper),
 * U = J R^-T J (trtri + a reversal of the buffer). By default in double (factor_f64), a documented
 * robustness choice: fp32 Cholesky of a badly conditioned H is what makes the reference fall back
 * to RTN; the double factorization costs about the reference's fp32 one (half the flops).
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>
#undef I

#include "algo/algo_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* Hessian accumulation                                                                      */

qn_status qn_hessian_init(qn_hessian *h, int64_t n, qn_error *err) {
    if (!h) return qn_error_set(err, QN_ERR_INVALID_ARG, "hessian: NULL argument");
    memset(h, 0, sizeof *h);
    if (n <= 0 || n > INT_MAX || (uint64_t)n * (uint64_t)n > (UINT64_C(1) << 34))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "hessian: invalid size %lld", (long long)n);
    h->h = calloc((size_t)n * (size_t)n, sizeof *h->h);
    if (!h->h)
        return qn_error_set(err, QN_ERR_NOMEM, "hessian: out of memory (%lld x %lld fp32)",
                            (long long)n, (long long)n);
    h->n = n;
    return QN_OK;
}

void qn_hessian_free(qn_hessian *h) {
    if (!h) return;
    free(h->h);
    memset(h, 0, sizeof *h);
}

qn_status qn_hessian_add(qn_hessian *h, const float *x, int64_t ntok, int64_t ld,
                         int64_t nsamples, qn_error *err) {
    if (!h || !h->h) return qn_error_set(err, QN_ERR_INVALID_ARG, "hessian: not initialized");
    const int64_t n = h->n;
    if (ntok < 0 || ntok > INT_MAX || (ntok > 0 && (!x || ld < n || ld > INT_MAX)))
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "hessian: invalid batch (%lld tokens, ld %lld, %lld columns)",
                            (long long)ntok, (long long)ld, (long long)n);
    if (nsamples < 1 || nsamples > (INT64_C(1) << 40) - h->nsamples)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "hessian: invalid sample count %lld",
                            (long long)nsamples);
    const int64_t total = h->nsamples + nsamples;
    const float beta = (float)((double)h->nsamples / (double)total);
    const float alpha = (float)(2.0 / (double)total);
    if (ntok > 0) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)n, (int)ntok, alpha, x, (int)ld,
                    beta, h->h, (int)n);
    } else if (beta != 1.0f) {
#pragma omp parallel for schedule(static) if (n > 512)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i; j < n; j++) h->h[i * n + j] *= beta;
    }
    h->nsamples = total;
    return QN_OK;
}

/* Upper triangle -> lower, in cache-sized tiles. */
static void mirror_upper(float *a, int64_t n) {
    const int64_t T = 64;
#pragma omp parallel for schedule(dynamic, 1) if (n > 256)
    for (int64_t ib = 0; ib < n; ib += T) {
        const int64_t ie = ib + T < n ? ib + T : n;
        for (int64_t jb = ib; jb < n; jb += T) {
            const int64_t je = jb + T < n ? jb + T : n;
            for (int64_t i = ib; i < ie; i++)
                for (int64_t j = (jb > i ? jb : i + 1); j < je; j++) a[j * n + i] = a[i * n + j];
        }
    }
}

void qn_hessian_finalize(qn_hessian *h) {
    if (h && h->h) mirror_upper(h->h, h->n);
}

/* ---------------------------------------------------------------------------------------- */
/* Permutations                                                                              */

typedef struct {
    float v;
    int32_t i;
} diag_key;

static int cmp_desc(const void *pa, const void *pb) {
    const diag_key *a = pa, *b = pb;
    if (a->v > b->v) return -1;
    if (a->v < b->v) return 1;
    return (a->i > b->i) - (a->i < b->i);
}

void qna_argsort_diag_desc(const float *h, int64_t n, int32_t *perm) {
    diag_key *k = malloc((size_t)n * sizeof *k);
    if (!k) { /* fallback without allocation: insertion sort (stable), O(n^2) but no failure */
        for (int64_t a = 0; a < n; a++) {
            int64_t b = a;
            const float v = h[a * n + a];
            while (b > 0 && h[(int64_t)perm[b - 1] * n + perm[b - 1]] < v) {
                perm[b] = perm[b - 1];
                b--;
            }
            perm[b] = (int32_t)a;
        }
        return;
    }
    for (int64_t a = 0; a < n; a++) {
        k[a].v = h[a * n + a];
        k[a].i = (int32_t)a;
    }
    qsort(k, (size_t)n, sizeof *k, cmp_desc);
    for (int64_t a = 0; a < n; a++) perm[a] = k[a].i;
    free(k);
}

qn_status qna_permute_cols(float *w, int64_t rows, int64_t cols, const int32_t *perm, int inverse,
                           qn_error *err) {
    int fail = 0;
#pragma omp parallel if (rows * cols > 65536)
    {
        float *tmp = malloc((size_t)cols * sizeof *tmp);
        if (!tmp) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!tmp) continue;
            float *row = w + r * cols;
            if (inverse)
                for (int64_t j = 0; j < cols; j++) tmp[perm[j]] = row[j];
            else
                for (int64_t j = 0; j < cols; j++) tmp[j] = row[perm[j]];
            memcpy(row, tmp, (size_t)cols * sizeof *tmp);
        }
        free(tmp);
    }
    if (fail)
        return qn_error_set(err, QN_ERR_NOMEM, "algo: out of memory (column permutation buffers)");
    return QN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* One-column quantization views                                                             */

void qna_colq_view(const qna_colq *q, int64_t r0, int64_t r1, int64_t g, qn_qparams *v) {
    const qn_qparams *p = q->p;
    const qn_qstrategy s = p->args.strategy;
    for (int64_t r = r0; r < r1; r++) {
        int64_t si;
        switch (s) {
        case QN_STRATEGY_TENSOR: si = 0; break;
        case QN_STRATEGY_GROUP:
        case QN_STRATEGY_TENSOR_GROUP: si = r * p->scols + g; break;
        case QN_STRATEGY_BLOCK: si = (r / p->tile_rows) * p->scols + g; break;
        default: si = r; break; /* channel, attn_head */
        }
        q->s[r] = p->scale[si];
        if (p->zero_point) q->z[r] = p->zero_point[si];
    }
    *v = *p;
    v->dtype = QN_DT_F32; /* GPTQ_PRECISION: the sweep's arithmetic is fp32 */
    v->g_idx = NULL;
    v->rows = v->srows = r1 - r0;
    v->cols = v->scols = 1;
    v->tile_rows = v->tile_cols = 1;
    if (s != QN_STRATEGY_TENSOR_GROUP) v->args.strategy = QN_STRATEGY_CHANNEL;
    v->scale = q->s + r0;
    v->zero_point = p->zero_point ? q->z + r0 : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Inverse-Hessian factor                                                                    */

void qna_hinv_free(qna_hinv *u) {
    if (!u) return;
    free(u->own_f);
    free(u->ud);
    memset(u, 0, sizeof *u);
}

/* Fills the row-major lower triangle of A (= the column-major upper one) with J P H P^T J and
 * sets the dead diagonal entries to 1; returns mean(diag). */
#define FILL_BODY(T)                                                                            \
    double sum = 0;                                                                             \
    _Pragma("omp parallel for schedule(dynamic, 16) reduction(+ : sum) if (n > 256)")           \
    for (int64_t i = 0; i < n; i++) {                                                           \
        const int64_t a = n - 1 - i;                                                            \
        const int64_t qi = perm ? perm[a] : a;                                                  \
        const float *src = h + qi * n;                                                          \
        T *dst = A + i * n;                                                                     \
        if (perm)                                                                               \
            for (int64_t j = 0; j < i; j++) dst[j] = (T)src[perm[n - 1 - j]];                   \
        else                                                                                    \
            for (int64_t j = 0; j < i; j++) dst[j] = (T)src[n - 1 - j];                         \
        T d = (T)src[qi];                                                                       \
        if (dead[a]) d = 1;                                                                     \
        dst[i] = d;                                                                             \
        sum += (double)d;                                                                       \
    }                                                                                           \
    return sum / (double)n;

static double fill_d(double *A, const float *h, int64_t n, const int32_t *perm,
                     const uint8_t *dead) {
    FILL_BODY(double)
}
static double fill_f(float *A, const float *h, int64_t n, const int32_t *perm,
                     const uint8_t *dead) {
    FILL_BODY(float)
}
#undef FILL_BODY

static void reverse_d(double *a, size_t nn) {
#pragma omp parallel for schedule(static) if (nn > 65536)
    for (size_t k = 0; k < nn / 2; k++) {
        double t = a[k];
        a[k] = a[nn - 1 - k];
        a[nn - 1 - k] = t;
    }
}
static void reverse_f(float *a, size_t nn) {
#pragma omp parallel for schedule(static) if (nn > 65536)
    for (size_t k = 0; k < nn / 2; k++) {
        float t = a[k];
        a[k] = a[nn - 1 - k];
        a[nn - 1 - k] = t;
    }
}

qn_status qna_hinv_build(float *h, int64_t n, const int32_t *perm, const qna_hinv_cfg *cfg,
                         uint8_t *dead, qna_hinv *out, const char *who, qn_error *err) {
    memset(out, 0, sizeof *out);
    if (n <= 0 || n > INT_MAX || (uint64_t)n * (uint64_t)n > (UINT64_C(1) << 34))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "%s: invalid Hessian size %lld", who,
                            (long long)n);
    const size_t nn = (size_t)n * (size_t)n;
    /* non-finite entries cannot be dampened away */
    int64_t bad = -1;
#pragma omp parallel for schedule(static) if (n > 256)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++)
            if (!isfinite(h[i * n + j])) {
#pragma omp critical(qna_bad)
                if (bad < 0 || i * n + j < bad) bad = i * n + j;
                break;
            }
    if (bad >= 0)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "%s: Hessian entry (%lld, %lld) is not finite (NaN/Inf inputs?)", who,
                            (long long)(bad / n), (long long)(bad % n));
    int64_t ndead = 0;
    for (int64_t a = 0; a < n; a++) {
        const int64_t c = perm ? perm[a] : a;
        dead[a] = h[c * n + c] == 0.0f;
        ndead += dead[a];
    }
    if (perm) mirror_upper(h, n);

    void *A = malloc(nn * (cfg->factor_f64 ? sizeof(double) : sizeof(float)));
    if (!A)
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory (Hessian factor %lld x %lld)",
                            who, (long long)n, (long long)n);
    double frac = cfg->damp_frac, damp = 0;
    int retries = 0, ok = 0;
    for (;;) {
        double mean = cfg->factor_f64 ? fill_d(A, h, n, perm, dead) : fill_f(A, h, n, perm, dead);
        damp = frac * mean;
        lapack_int info;
        if (cfg->factor_f64) {
            double *Ad = A;
            for (int64_t i = 0; i < n; i++) Ad[i * n + i] += damp;
            info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', (lapack_int)n, Ad, (lapack_int)n);
            if (!info) info = LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'U', 'N', (lapack_int)n, Ad, (lapack_int)n);
        } else {
            float *Af = A;
            const float df = (float)damp;
            for (int64_t i = 0; i < n; i++) Af[i * n + i] += df;
            info = LAPACKE_spotrf(LAPACK_COL_MAJOR, 'U', (lapack_int)n, Af, (lapack_int)n);
            if (!info) info = LAPACKE_strtri(LAPACK_COL_MAJOR, 'U', 'N', (lapack_int)n, Af, (lapack_int)n);
        }
        if (info == 0) {
            ok = 1;
            break;
        }
        double next = frac > 0 ? frac * 10.0 : 1e-4;
        if (!(next <= cfg->damp_max_frac * (1.0 + 1e-9))) break;
        retries++;
        frac = next;
    }
    out->n = n;
    out->dead = ndead;
    out->damp_frac = frac;
    out->damp = damp;
    out->retries = retries;
    if (!ok) {
        if (!cfg->identity_fallback) {
            free(A);
            return qn_error_set(
                err, QN_ERR_INVALID_ARG,
                "%s: the Hessian [%lld x %lld] is not positive definite even with "
                "dampening_frac %g (%d factorizations from %g up to the limit %g); use more "
                "calibration samples, shuffle the dataset or raise dampening_frac",
                who, (long long)n, (long long)n, frac, retries + 1, cfg->damp_frac,
                cfg->damp_max_frac);
        }
        out->identity = 1;
        out->retries = retries + 1;
        if (cfg->out_f64) {
            free(A);
            out->ud = calloc(nn, sizeof *out->ud);
            if (!out->ud) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", who);
            for (int64_t i = 0; i < n; i++) out->ud[i * n + i] = 1.0;
        } else {
            free(A);
            memset(h, 0, nn * sizeof *h);
            for (int64_t i = 0; i < n; i++) h[i * n + i] = 1.0f;
            out->uf = h;
        }
        return QN_OK;
    }
    /* the buffer holds R^-1 in its column-major upper triangle; reversed, its row-major upper
     * triangle is U = J R^-T J (see the header comment) */
    if (cfg->factor_f64 && cfg->out_f64) {
        reverse_d(A, nn);
        out->ud = A;
    } else if (!cfg->factor_f64 && !cfg->out_f64) {
        reverse_f(A, nn);
        out->uf = out->own_f = A;
    } else if (cfg->factor_f64) {
        const double *Ad = A;
#pragma omp parallel for schedule(static) if (nn > 65536)
        for (size_t k = 0; k < nn; k++) h[k] = (float)Ad[nn - 1 - k];
        free(A);
        out->uf = h;
    } else {
        const float *Af = A;
        out->ud = malloc(nn * sizeof *out->ud);
        if (!out->ud) {
            free(A);
            return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", who);
        }
#pragma omp parallel for schedule(static) if (nn > 65536)
        for (size_t k = 0; k < nn; k++) out->ud[k] = (double)Af[nn - 1 - k];
        free(A);
    }
    return QN_OK;
}
