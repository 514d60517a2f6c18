/* quench — GPTQ (Frantar et al. 2022) as llm-compressor runs it.
 *
 * Reference: llm-compressor quantize_weight (modifiers/quantization/gptq/gptq_quantize.py; the
 * current modifiers/gptq/gptq_quantize.py keeps the same sweep). Verified there:
 *  - scales are observed BEFORE the sweep from the whole weight, in every version since actorder
 *    exists (no per-group re-observation while sweeping, unlike the original GPTQ code):
 *      none:            observer(W) on the original order;
 *      weight / static: observer(W) on the original order, then W and H permuted by
 *                       argsort(diag(H), descending); column j of the sweep uses the group of
 *                       original column perm[j] (g_idx = g_idx[perm]); no g_idx is stored;
 *      group / dynamic: W and H permuted first, observer(W) on the permuted weight (so groups are
 *                       runs of the permuted order); g_idx = (arange // g)[invperm] is stored.
 *    Old versions applied actorder only with the group strategy; HEAD permutes for any strategy
 *    (actorder "group" with a non-group strategy falls back to none with a warning there; CT's
 *    validation already rejects it, and so do we). We follow HEAD.
 *  - dead = diag(H) == 0 -> H[dead, dead] = 1 (diagonal entries), W[:, dead] = 0, after the
 *    observation; damp = dampening_frac * mean(diag(H)) on the diagonal; Hinv = cholesky(
 *    cholesky_inverse(cholesky(H)), upper=True); on a LinAlgError the reference uses the identity
 *    (RTN) with a warning — we retry with more damping and report it (hessian.c).
 *  - the sweep: blocks of block_size columns; per column q = fake_quantize(w) with the column's
 *    scale, loss += (w - q)^2 / d^2 / 2, err = (w - q) / d, W1[:, i:] -= err * Hinv1[i, i:];
 *    after the block W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]; finally W.to(model dtype).
 *  - preserve zeros (removed at HEAD by PR #2860, present in every earlier version): when
 *    tensor_sparsity(W) (exact zeros, after observation and permutation) >= SPARSITY_THRESHOLD
 *    (0.05), the updates skip the entries with isclose(W, 0) (|w| <= 1e-8), so they keep their
 *    value and quantize to 0. Equivalent here: such an entry is read as 0 when its column is
 *    swept (its own value is never read before that). Differs from the reference only for
 *    nonzero |w| <= 1e-8, whose tiny error the reference propagates.
 * Our choices:
 *  - scales in the model dtype (module observer on the bf16 weight, as HEAD); the reference's
 *    actorder "group" re-observes the fp32 copy, so its sweep uses fp32 scales that are rounded
 *    only when stored — we keep the stored and the swept scales identical;
 *  - the sweep arithmetic is fp32 (GPTQ_PRECISION) by default; sweep_f64 runs it in double (the
 *    quantizer still sees the fp32 value of each weight);
 *  - the factorization in double (factor_f64, see hessian.c); argsort ties keep column order.
 */
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#undef I

#include "algo/algo_internal.h"

#define QNA_ROW_CHUNK 128
#define QNA_SUB 16 /* second-level lazy batch inside a block */

void qn_gptq_opts_init(qn_gptq_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->block_size = 128;
    o->dampening_frac = 0.01;
    o->damp_max_frac = 1.0;
    o->identity_fallback = 0;
    o->zeros = QN_ZEROS_AUTO;
    o->global_scale = 0.0f;
    o->factor_f64 = 1;
    o->sweep_f64 = 0;
}

typedef struct {
    int64_t rows, cols, B, chunk, sub;
    void *W, *E, *work; /* QNA_T: [rows, cols], [rows, B], per chunk (2 sub + 1) x chunk */
    const void *U;      /* QNA_T [cols, cols] upper */
    float *qf;          /* [rows] */
    const uint8_t *zmask; /* [rows, cols] sweep order: 1 = preserved zero */
    qna_colq cq;
} gptq_ctx;

#define QNA_TMPL_GPTQ
#define QNA_T float
#define QNA_SUF f
#define QNA_GEMM cblas_sgemm
#include "algo/sweep_tmpl.h"
#undef QNA_T
#undef QNA_SUF
#undef QNA_GEMM
#define QNA_T double
#define QNA_SUF d
#define QNA_GEMM cblas_dgemm
#include "algo/sweep_tmpl.h"
#undef QNA_T
#undef QNA_SUF
#undef QNA_GEMM
#undef QNA_TMPL_GPTQ

/* Runs every block; returns the loss through *loss. */
static qn_status sweep(gptq_ctx *x, int f64, double *loss, qn_error *err) {
    const int64_t rows = x->rows, cols = x->cols, B = x->B, CH = x->chunk;
    const int64_t nchunks = (rows + CH - 1) / CH;
    double total = 0;
    for (int64_t i1 = 0; i1 < cols; i1 += B) {
        const int64_t count = cols - i1 < B ? cols - i1 : B;
        double lsum = 0;
        qn_status st = QN_OK;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : lsum) if (nchunks > 1 && rows * count > 8192)
        for (int64_t ch = 0; ch < nchunks; ch++) {
            const int64_t r0 = ch * CH, r1 = r0 + CH < rows ? r0 + CH : rows;
            qn_error e = {0};
            double l = 0;
            qn_status s = f64 ? gptq_chunk_d(x, i1, count, r0, r1, &l, &e)
                              : gptq_chunk_f(x, i1, count, r0, r1, &l, &e);
            lsum += l;
            if (s) {
#pragma omp critical(qna_gptq_err)
                if (!st) {
                    st = s;
                    if (err) *err = e;
                }
            }
        }
        if (st) return st;
        total += lsum / 2;
        if (f64) block_update_d(x->W, cols, rows, cols, x->E, B, x->U, i1, count);
        else block_update_f(x->W, cols, rows, cols, x->E, B, x->U, i1, count);
    }
    *loss = total;
    return QN_OK;
}

static int64_t row_chunk(int64_t rows) {
    int64_t nt = omp_get_max_threads();
    int64_t ch = (rows + nt - 1) / nt;
    if (ch > QNA_ROW_CHUNK) ch = QNA_ROW_CHUNK;
    if (ch < 8) ch = 8;
    return ch;
}

enum { AO_NONE, AO_WEIGHT, AO_GROUP };

/* Validates one target and initializes its qparams (freed again on error). */
static qn_status prepare_target(qn_gptq_target *t, size_t ti, int64_t cols, qn_dtype dtype,
                                const qn_gptq_opts *o, int *ao_out, qn_error *err) {
    if (t->p) memset(t->p, 0, sizeof *t->p);
    if (t->rep) memset(t->rep, 0, sizeof *t->rep);
    if (!t->w || !t->args || !t->p)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "gptq: weight %zu: NULL argument", ti);
    const int64_t rows = t->rows;
    if (rows <= 0 || rows > INT_MAX || (uint64_t)rows * (uint64_t)cols > (UINT64_C(1) << 40))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "gptq: invalid weight shape [%lld, %lld]",
                            (long long)rows, (long long)cols);
    qn_status st = qn_qparams_init(t->p, t->args, dtype, rows, cols, err);
    if (st) {
        qn_error_prefix(err, "gptq");
        return st;
    }
    qn_qparams *p = t->p;
    const qn_qstrategy strat = p->args.strategy;
    if (strat != QN_STRATEGY_TENSOR && strat != QN_STRATEGY_CHANNEL && strat != QN_STRATEGY_GROUP &&
        strat != QN_STRATEGY_TENSOR_GROUP && strat != QN_STRATEGY_BLOCK) {
        qn_qparams_free(p);
        return qn_error_set(err, QN_ERR_UNSUPPORTED,
                            "gptq: quantization strategy %s is not supported for GPTQ",
                            qn_qstrategy_name(strat) ? qn_qstrategy_name(strat) : "?");
    }
    const int grouped = strat == QN_STRATEGY_GROUP || strat == QN_STRATEGY_TENSOR_GROUP;
    int ao = AO_NONE;
    switch (p->args.actorder) {
    case QN_ACTORDER_GROUP: case QN_ACTORDER_DYNAMIC: ao = AO_GROUP; break;
    case QN_ACTORDER_WEIGHT: case QN_ACTORDER_STATIC: ao = AO_WEIGHT; break;
    default: break;
    }
    if (ao == AO_GROUP && (!grouped || !t->g_idx)) {
        qn_qparams_free(p);
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            !grouped ? "gptq: actorder \"group\" needs the group or tensor_group "
                                       "strategy"
                                     : "gptq: actorder \"group\" needs a g_idx output array");
    }
    if (strat == QN_STRATEGY_TENSOR_GROUP)
        p->global_scale = o->global_scale > 0
                              ? o->global_scale
                              : qn_nvfp4_global_scale(qn_quant_absmax(t->w, rows, cols, cols));
    *ao_out = ao;
    return QN_OK;
}

/* Observation, permutation, zeros, sweep and the way back for one weight with its factor. On
 * error the qparams are freed (the weight may be partially processed). */
static qn_status quantize_one(qn_gptq_target *t, int64_t cols, qn_dtype dtype,
                              const qn_gptq_opts *o, int ao, const int32_t *perm,
                              const uint8_t *dead, const qna_hinv *hv, qn_error *err) {
    float *w = t->w;
    qn_qparams *p = t->p;
    const int64_t rows = t->rows;
    const qn_qstrategy strat = p->args.strategy;
    const int grouped = strat == QN_STRATEGY_GROUP || strat == QN_STRATEGY_TENSOR_GROUP;
    const int f64 = o->sweep_f64 != 0;
    const size_t esz = f64 ? sizeof(double) : sizeof(float);
    const int64_t B = o->block_size < cols ? o->block_size : cols;
    if (ao == AO_NONE) perm = NULL;
    int32_t *gcol = NULL;
    uint8_t *zmask = NULL;
    float *qf = malloc((size_t)rows * sizeof(float));
    float *sbuf = malloc((size_t)rows * sizeof(float)), *zbuf = malloc((size_t)rows * sizeof(float));
    const int64_t CH = row_chunk(rows), nchunks = (rows + CH - 1) / CH;
    void *E = malloc((size_t)rows * (size_t)B * esz);
    void *work = malloc((size_t)nchunks * (size_t)(2 * QNA_SUB + 1) * (size_t)CH * esz);
    double *Wd = NULL;
    qn_status st;
    int oom = !qf || !sbuf || !zbuf || !E || !work;
    if (ao == AO_WEIGHT && (grouped || strat == QN_STRATEGY_BLOCK))
        oom |= !(gcol = malloc((size_t)cols * sizeof *gcol));
    if (f64) oom |= !(Wd = malloc((size_t)rows * (size_t)cols * sizeof *Wd));
    if (oom) {
        st = qn_error_set(err, QN_ERR_NOMEM, "gptq: out of memory (weight [%lld, %lld] work buffers)",
                          (long long)rows, (long long)cols);
        goto fail;
    }

    /* scales and the permuted weight */
    if (ao != AO_GROUP && (st = qn_qparams_observe(p, w, cols, 0, cols, err))) goto fail_prefix;
    if (perm && (st = qna_permute_cols(w, rows, cols, perm, 0, err))) goto fail;
    if (ao == AO_GROUP && (st = qn_qparams_observe(p, w, cols, 0, cols, err)))
        goto fail_prefix_unpermute;
    if (gcol)
        for (int64_t c = 0; c < cols; c++) gcol[c] = (int32_t)(perm[c] / p->tile_cols);

    /* zeros to preserve, dead columns */
    int preserve = o->zeros == QN_ZEROS_ON;
    if (o->zeros == QN_ZEROS_AUTO) {
        int64_t nz = 0;
#pragma omp parallel for reduction(+ : nz) schedule(static) if (rows * cols > 65536)
        for (int64_t k = 0; k < rows * cols; k++) nz += w[k] == 0.0f;
        preserve = (double)nz / ((double)rows * (double)cols) >= 0.05; /* SPARSITY_THRESHOLD */
    }
    if (preserve) {
        if (!(zmask = malloc((size_t)rows * (size_t)cols))) {
            st = qn_error_set(err, QN_ERR_NOMEM, "gptq: out of memory (zero mask)");
            goto fail_unpermute;
        }
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (int64_t k = 0; k < rows * cols; k++) zmask[k] = fabsf(w[k]) <= 1e-8f;
    }
    if (hv->dead)
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                if (dead[c]) w[r * cols + c] = 0.0f;
    if (f64)
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (int64_t k = 0; k < rows * cols; k++) Wd[k] = w[k];

    /* the sweep */
    gptq_ctx x = {rows, cols, B, CH, QNA_SUB, f64 ? (void *)Wd : (void *)w, E, work,
                  f64 ? (const void *)hv->ud : (const void *)hv->uf, qf, zmask,
                  {p, gcol, sbuf, zbuf}};
    double loss = 0;
    if ((st = sweep(&x, f64, &loss, err))) goto fail_prefix_unpermute;
    if (f64)
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (int64_t k = 0; k < rows * cols; k++) w[k] = (float)Wd[k];
    if (perm && (st = qna_permute_cols(w, rows, cols, perm, 1, err))) goto fail;
    if (ao == AO_GROUP) {
        for (int64_t c = 0; c < cols; c++) t->g_idx[perm[c]] = (int32_t)(c / p->tile_cols);
        p->g_idx = t->g_idx;
    }
    if (t->codes) {
        /* w holds grid values fake-quantized in fp32; quantizing one again with its own scale
         * (fp32 arithmetic as in the sweep) returns its code exactly */
        qn_qparams p32 = *p;
        p32.dtype = QN_DT_F32;
        if ((st = qn_quant_quantize(&p32, w, cols, 0, cols, t->codes, cols, err))) goto fail_prefix;
    }
    if (dtype != QN_DT_F32)
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (int64_t k = 0; k < rows * cols; k++) w[k] = qn_round_to_dtype(w[k], dtype);
    if (t->rep) {
        t->rep->loss = loss;
        t->rep->damp_frac = hv->damp_frac;
        t->rep->damp = hv->damp;
        t->rep->retries = hv->retries;
        t->rep->identity_fallback = hv->identity;
        t->rep->dead = hv->dead;
        t->rep->preserved_zeros = preserve;
        t->rep->permuted = perm != NULL;
    }
    st = QN_OK;
    goto done;

fail_prefix_unpermute:
    qn_error_prefix(err, "gptq");
fail_unpermute:
    if (perm) qna_permute_cols(w, rows, cols, perm, 1, NULL);
    goto fail;
fail_prefix:
    qn_error_prefix(err, "gptq");
fail:
    qn_qparams_free(p);
done:
    free(gcol);
    free(zmask);
    free(qf);
    free(sbuf);
    free(zbuf);
    free(E);
    free(work);
    free(Wd);
    return st;
}

qn_status qn_gptq_quantize_shared(qn_gptq_target *t, size_t nt, int64_t cols, float *h,
                                  qn_dtype dtype, const qn_gptq_opts *opts, qn_error *err) {
    qn_gptq_opts o;
    if (opts) o = *opts;
    else qn_gptq_opts_init(&o);
    if (!t || nt == 0 || nt > 4096 || !h)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "gptq: NULL argument or no weights");
    if (cols <= 0 || cols > INT_MAX)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "gptq: invalid input width %lld",
                            (long long)cols);
    if (o.block_size < 1 || !(o.dampening_frac >= 0) || !isfinite(o.dampening_frac) ||
        !(o.damp_max_frac >= 0) || !isfinite(o.damp_max_frac))
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "gptq: invalid options (block_size %lld, dampening_frac %g, "
                            "damp_max_frac %g)",
                            (long long)o.block_size, o.dampening_frac, o.damp_max_frac);
    int *ao = malloc(nt * sizeof *ao);
    if (!ao) return qn_error_set(err, QN_ERR_NOMEM, "gptq: out of memory");
    qn_status st = QN_OK;
    for (size_t i = 0; i < nt; i++) /* every qparams safe to free on error */
        if (t[i].p) memset(t[i].p, 0, sizeof *t[i].p);
    size_t ready = 0;
    for (; ready < nt; ready++)
        if ((st = prepare_target(&t[ready], ready, cols, dtype, &o, &ao[ready], err))) break;
    int need_id = 0, need_perm = 0;
    for (size_t i = 0; i < ready; i++) {
        need_id |= ao[i] == AO_NONE;
        need_perm |= ao[i] != AO_NONE;
    }
    /* one factor per order in use (the identity and the activation order differ) */
    int32_t *perm = NULL;
    uint8_t *dead_id = NULL, *dead_p = NULL;
    float *hcopy = NULL;
    qna_hinv hid = {0}, hp = {0};
    const qna_hinv_cfg cfg = {o.dampening_frac, o.damp_max_frac, o.identity_fallback,
                              o.factor_f64 != 0, o.sweep_f64 != 0};
    if (!st) {
        const size_t nn = (size_t)cols * (size_t)cols;
        int oom = 0;
        if (need_id) oom |= !(dead_id = malloc((size_t)cols));
        if (need_perm) {
            oom |= !(perm = malloc((size_t)cols * sizeof *perm));
            oom |= !(dead_p = malloc((size_t)cols));
        }
        if (need_id && need_perm) oom |= !(hcopy = malloc(nn * sizeof *hcopy));
        if (oom) st = qn_error_set(err, QN_ERR_NOMEM, "gptq: out of memory (Hessian %lld x %lld)",
                                   (long long)cols, (long long)cols);
    }
    if (!st && hcopy) memcpy(hcopy, h, (size_t)cols * (size_t)cols * sizeof *h);
    if (!st && need_perm) {
        qna_argsort_diag_desc(h, cols, perm);
        st = qna_hinv_build(h, cols, perm, &cfg, dead_p, &hp, "gptq", err);
    }
    if (!st && need_id) st = qna_hinv_build(hcopy ? hcopy : h, cols, NULL, &cfg, dead_id, &hid, "gptq", err);
    /* every check passed and H is factored: the weights change from here on */
    size_t done = 0;
    for (; !st && done < nt; done++) {
        const int a = ao[done];
        st = quantize_one(&t[done], cols, dtype, &o, a, perm, a == AO_NONE ? dead_id : dead_p,
                          a == AO_NONE ? &hid : &hp, err);
        if (st && nt > 1) qn_error_prefix(err, "weight %zu", done);
    }
    if (st) /* release every qparams still held (quantize_one freed the failing one) */
        for (size_t i = 0; i < nt; i++) qn_qparams_free(t[i].p);
    qna_hinv_free(&hid);
    qna_hinv_free(&hp);
    free(hcopy);
    free(perm);
    free(dead_id);
    free(dead_p);
    free(ao);
    return st;
}

qn_status qn_gptq_quantize(float *w, int64_t rows, int64_t cols, float *h,
                           const qn_quant_args *args, qn_dtype dtype, const qn_gptq_opts *opts,
                           qn_qparams *p, int32_t *g_idx, void *codes, qn_gptq_report *rep,
                           qn_error *err) {
    if (p) memset(p, 0, sizeof *p);
    if (rep) memset(rep, 0, sizeof *rep);
    if (!w || !h || !args || !p) return qn_error_set(err, QN_ERR_INVALID_ARG, "gptq: NULL argument");
    if (rows <= 0 || cols <= 0 || rows > INT_MAX || cols > INT_MAX ||
        (uint64_t)rows * (uint64_t)cols > (UINT64_C(1) << 40))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "gptq: invalid weight shape [%lld, %lld]",
                            (long long)rows, (long long)cols);
    qn_gptq_target t = {w, rows, args, p, g_idx, codes, rep};
    return qn_gptq_quantize_shared(&t, 1, cols, h, dtype, opts, err);
}

/* ---------- a factor kept for weights that come one at a time ---------- */

struct qn_gptq_factor {
    qn_gptq_opts o;
    int64_t cols;
    float *h;              /* the Hessian (a copy), kept until both orders are factored */
    int built[2];          /* [0] identity order, [1] activation order */
    qna_hinv hv[2];
    uint8_t *dead[2];
    float *work[2];        /* the factored copies of H (the factor may live in them) */
    int32_t *perm;
};

qn_status qn_gptq_factor_create(const float *h, int64_t cols, const qn_gptq_opts *opts, qn_gptq_factor **out,
                                qn_error *err) {
    *out = NULL;
    if (!h || cols <= 0 || cols > INT_MAX) return qn_error_set(err, QN_ERR_INVALID_ARG, "gptq: invalid factor arguments");
    qn_gptq_factor *f = calloc(1, sizeof *f);
    if (!f) return qn_error_set(err, QN_ERR_NOMEM, "gptq: out of memory");
    if (opts) f->o = *opts;
    else qn_gptq_opts_init(&f->o);
    f->cols = cols;
    size_t nn = (size_t)cols * (size_t)cols;
    if (!(f->h = malloc(nn * sizeof *f->h))) { free(f); return qn_error_set(err, QN_ERR_NOMEM, "gptq: out of memory (Hessian %lld x %lld)", (long long)cols, (long long)cols); }
    memcpy(f->h, h, nn * sizeof *f->h);
    *out = f;
    return QN_OK;
}

void qn_gptq_factor_free(qn_gptq_factor *f) {
    if (!f) return;
    for (int k = 0; k < 2; k++) { qna_hinv_free(&f->hv[k]); free(f->dead[k]); free(f->work[k]); }
    free(f->perm);
    free(f->h);
    free(f);
}

qn_status qn_gptq_factor_quantize(qn_gptq_factor *f, qn_gptq_target *t, qn_dtype dtype, qn_error *err) {
    if (!f || !t) return qn_error_set(err, QN_ERR_INVALID_ARG, "gptq: NULL argument");
    int ao;
    qn_status st = prepare_target(t, 0, f->cols, dtype, &f->o, &ao, err);
    if (st) return st;
    int k = ao != AO_NONE;
    if (!f->built[k]) {
        const qna_hinv_cfg cfg = {f->o.dampening_frac, f->o.damp_max_frac, f->o.identity_fallback,
                                  f->o.factor_f64 != 0, f->o.sweep_f64 != 0};
        size_t nn = (size_t)f->cols * (size_t)f->cols;
        /* qna_hinv_build factors in place: a working copy of H */
        float *hw = f->h ? malloc(nn * sizeof *hw) : NULL;
        if (!hw) st = qn_error_set(err, QN_ERR_NOMEM, "gptq: out of memory");
        if (!st) memcpy(hw, f->h, nn * sizeof *hw);
        if (!st && !(f->dead[k] = malloc((size_t)f->cols))) st = qn_error_set(err, QN_ERR_NOMEM, "gptq: out of memory");
        if (!st && k && !(f->perm = malloc((size_t)f->cols * sizeof *f->perm))) st = qn_error_set(err, QN_ERR_NOMEM, "gptq: out of memory");
        if (!st && k) qna_argsort_diag_desc(hw, f->cols, f->perm);
        if (!st) st = qna_hinv_build(hw, f->cols, k ? f->perm : NULL, &cfg, f->dead[k], &f->hv[k], "gptq", err);
        if (st) { free(hw); qn_qparams_free(t->p); return st; }
        f->work[k] = hw;   /* U may be stored in it */
        f->built[k] = 1;
        if (f->built[!k]) { free(f->h); f->h = NULL; }   /* both orders factored: H is no longer needed */
    }
    return quantize_one(t, f->cols, dtype, &f->o, ao, f->perm, f->dead[k], &f->hv[k], err);
}
