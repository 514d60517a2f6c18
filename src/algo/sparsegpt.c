/* quench — SparseGPT (Frantar & Alistarh 2023) as llm-compressor runs it.
 *
 * Reference: llm-compressor sparsify_weight (modifiers/pruning/sparsegpt/sgpt_sparsify.py; the
 * same algorithm as the older utils/sgpt_wrapper.py and IST-DASLab/sparsegpt fasterprune).
 * Verified there:
 *  - dead = diag(H) == 0 -> H[dead, dead] = 1, W[:, dead] = 0; damping and Hinv as GPTQ;
 *  - preserve_sparsity_mask: mask = (W == 0) after the dead columns were zeroed; an error when
 *    mask.sum() / numel > sparsity; the update of the later blocks is multiplied by ~mask;
 *  - unstructured (prune_n == 0), per block of columns, over all rows of the block at once:
 *    tmp = W1^2 / diag(Hinv1)^2 (with preserve: (~mask) * W1^2 / diag^2, extended only when
 *    int(numel * sparsity) > mask1.sum(), else mask1 = the base mask), thresh = sort(tmp)[
 *    int(numel * sparsity)], mask1 = tmp <= thresh — so a block prunes int(numel * s) + 1
 *    weights (plus ties), not a per-row count;
 *  - N:M (mask_structure "N:M" split as prune_n = N, prune_m = M): at each block-relative column
 *    i with i % M == 0, per row, topk(W1[:, i:i+M]^2 / diag^2 (* ~mask), N, largest=False) is
 *    added to the mask: N of every M zeroed, chosen from the weights as updated so far; `sparsity`
 *    is then only used by the preserve check;
 *  - per column: q = w with the mask zeroed, loss += (w - q)^2 / d^2 / 2, err = (w - q) / d,
 *    W1[:, i:] -= err * Hinv1[i, i:], then W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]; W.to(dtype).
 * Our choices:
 *  - masked later-block updates (preserve) are realized by zeroing the base-masked entries of a
 *    block when it starts (they were 0 and received only in-block updates in the reference);
 *  - torch.topk's order among equal values is unspecified: ties go to the lower column;
 *  - a partial N:M group narrower than N is an error (torch.topk raises);
 *  - joint quantization (optional `quant`): llm-compressor HEAD does not quantize inside
 *    SparseGPT (its GPTQ/RTN modifier runs afterwards); the SparseGPT paper's code quantizes each
 *    column after masking (q = quantize(q)) and so do we when given observed qparams, with fp32
 *    arithmetic as GPTQ; pruned weights are forced to exactly 0.
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

void qn_sparsegpt_opts_init(qn_sparsegpt_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->sparsity = 0.5;
    o->prune_n = o->prune_m = 0;
    o->block_size = 128;
    o->dampening_frac = 0.01;
    o->damp_max_frac = 1.0;
    o->identity_fallback = 0;
    o->preserve_mask = 0;
    o->dtype = QN_DT_F32;
    o->factor_f64 = 1;
    o->sweep_f64 = 0;
}

typedef struct {
    int64_t rows, cols, B, chunk;
    int64_t sub;        /* second-level batch: a multiple of M so N:M groups stay inside */
    void *W, *E;        /* QNA_T [rows, cols], [rows, B] */
    void *work;         /* QNA_T per chunk (2 sub + 1) x chunk */
    const void *U;      /* QNA_T [cols, cols] upper */
    void *tmp, *sel;    /* QNA_T [rows * B] (unstructured) */
    void *nmv;          /* QNA_T [nchunks * M] (N:M) */
    uint8_t *nmt;       /* [nchunks * M] */
    float *qf;          /* [rows] (joint quantization) */
    uint8_t *mask;      /* [rows, cols] 1 = pruned */
    int prune_n, prune_m, preserve;
    qna_colq cq;        /* cq.p == NULL: no quantization */
} sgpt_ctx;

#define QNA_TMPL_SGPT
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
#undef QNA_TMPL_SGPT

static int64_t row_chunk(int64_t rows) {
    int64_t nt = omp_get_max_threads();
    int64_t ch = (rows + nt - 1) / nt;
    if (ch > QNA_ROW_CHUNK) ch = QNA_ROW_CHUNK;
    if (ch < 8) ch = 8;
    return ch;
}

static qn_status sweep(sgpt_ctx *x, int f64, double sparsity, double *loss, qn_error *err) {
    const int64_t rows = x->rows, cols = x->cols, B = x->B, CH = x->chunk;
    const int64_t nchunks = (rows + CH - 1) / CH;
    double total = 0;
    for (int64_t i1 = 0; i1 < cols; i1 += B) {
        const int64_t count = cols - i1 < B ? cols - i1 : B;
        if (x->preserve) { /* base-masked entries: 0 plus in-block updates only */
#pragma omp parallel for schedule(static) if (rows * count > 65536)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = i1; c < i1 + count; c++)
                    if (x->mask[r * cols + c]) {
                        if (f64) ((double *)x->W)[r * cols + c] = 0;
                        else ((float *)x->W)[r * cols + c] = 0;
                    }
        }
        if (!x->prune_n) {
            const int64_t kk = (int64_t)((double)(rows * count) * sparsity);
            int extend = 1;
            if (x->preserve) {
                int64_t nb = 0;
#pragma omp parallel for reduction(+ : nb) schedule(static) if (rows * count > 65536)
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = i1; c < i1 + count; c++) nb += x->mask[r * cols + c];
                extend = kk > nb;
            }
            if (extend) {
                if (f64) sgpt_block_mask_d(x, i1, count, kk);
                else sgpt_block_mask_f(x, i1, count, kk);
            }
        }
        double lsum = 0;
        qn_status st = QN_OK;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : lsum) if (nchunks > 1 && rows * count > 8192)
        for (int64_t ch = 0; ch < nchunks; ch++) {
            const int64_t r0 = ch * CH, r1 = r0 + CH < rows ? r0 + CH : rows;
            qn_error e = {0};
            double l = 0;
            qn_status s = f64 ? sgpt_chunk_d(x, i1, count, r0, r1, &l, &e)
                              : sgpt_chunk_f(x, i1, count, r0, r1, &l, &e);
            lsum += l;
            if (s) {
#pragma omp critical(qna_sgpt_err)
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

qn_status qn_sparsegpt_prune(float *w, int64_t rows, int64_t cols, float *h,
                             const qn_sparsegpt_opts *opts, const qn_qparams *quant,
                             uint8_t *mask, qn_sparsegpt_report *rep, qn_error *err) {
    qn_sparsegpt_opts o;
    if (opts) o = *opts;
    else qn_sparsegpt_opts_init(&o);
    if (rep) memset(rep, 0, sizeof *rep);
    if (!w || !h) return qn_error_set(err, QN_ERR_INVALID_ARG, "sparsegpt: NULL argument");
    if (rows <= 0 || cols <= 0 || rows > INT_MAX || cols > INT_MAX ||
        (uint64_t)rows * (uint64_t)cols > (UINT64_C(1) << 40))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "sparsegpt: invalid weight shape [%lld, %lld]",
                            (long long)rows, (long long)cols);
    if (o.block_size < 1 || !(o.dampening_frac >= 0) || !isfinite(o.dampening_frac) ||
        !(o.damp_max_frac >= 0) || !isfinite(o.damp_max_frac))
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "sparsegpt: invalid options (block_size %lld, dampening_frac %g, "
                            "damp_max_frac %g)",
                            (long long)o.block_size, o.dampening_frac, o.damp_max_frac);
    if (o.prune_n < 0 || o.prune_m < 0 || o.prune_m > 4096 ||
        (o.prune_n > 0 && o.prune_m < o.prune_n))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "sparsegpt: invalid mask_structure %d:%d",
                            o.prune_n, o.prune_m);
    if (!(o.sparsity >= 0) || !(o.prune_n ? o.sparsity <= 1 : o.sparsity < 1))
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "sparsegpt: sparsity %g outside [0, 1)", o.sparsity);
    if (o.dtype != QN_DT_F32 && o.dtype != QN_DT_BF16 && o.dtype != QN_DT_F16)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "sparsegpt: dtype %s is not a model dtype",
                            qn_dtype_name(o.dtype));
    const int64_t B = o.block_size < cols ? o.block_size : cols;
    if (o.prune_n) /* every block's last group must hold N columns (torch.topk) */
        for (int64_t i1 = 0; i1 < cols; i1 += B) {
            const int64_t count = cols - i1 < B ? cols - i1 : B;
            const int64_t width = count - ((count - 1) / o.prune_m) * o.prune_m;
            if (width < o.prune_n)
                return qn_error_set(
                    err, QN_ERR_INVALID_ARG,
                    "sparsegpt: %d:%d group at column %lld is only %lld wide (the width %lld and "
                    "block_size %lld should be multiples of %d)",
                    o.prune_n, o.prune_m, (long long)(i1 + count - width), (long long)width,
                    (long long)cols, (long long)B, o.prune_m);
        }
    const int32_t *gcol = NULL;
    if (quant) {
        const qn_qstrategy s = quant->args.strategy;
        if (!quant->scale || quant->rows != rows || quant->cols != cols)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "sparsegpt: quantization parameters do not match the weight "
                                "[%lld, %lld]", (long long)rows, (long long)cols);
        if (s == QN_STRATEGY_TOKEN || s == QN_STRATEGY_UNSET)
            return qn_error_set(err, QN_ERR_UNSUPPORTED,
                                "sparsegpt: quantization strategy %s is not supported",
                                qn_qstrategy_name(s) ? qn_qstrategy_name(s) : "null");
        if ((s == QN_STRATEGY_GROUP || s == QN_STRATEGY_TENSOR_GROUP) && quant->g_idx) {
            gcol = quant->g_idx;
            for (int64_t c = 0; c < cols; c++)
                if (gcol[c] < 0 || gcol[c] >= quant->scols) {
                    gcol = NULL; /* CT: an array holding -1 means column order */
                    break;
                }
        }
    }

    const int f64 = o.sweep_f64 != 0;
    const size_t esz = f64 ? sizeof(double) : sizeof(float);
    const int64_t CH = row_chunk(rows), nchunks = (rows + CH - 1) / CH;
    uint8_t *dead = malloc((size_t)cols), *m = mask ? mask : malloc((size_t)rows * (size_t)cols);
    void *E = malloc((size_t)rows * (size_t)B * esz), *tmp = NULL, *sel = NULL, *nmv = NULL;
    uint8_t *nmt = NULL;
    float *qf = malloc((size_t)rows * sizeof *qf), *sbuf = NULL, *zbuf = NULL;
    double *Wd = NULL;
    const int64_t sub = o.prune_n ? o.prune_m * (o.prune_m < 16 ? 16 / o.prune_m : 1) : 16;
    void *work = malloc((size_t)nchunks * (size_t)(2 * sub + 1) * (size_t)CH * esz);
    qna_hinv hv = {0};
    qn_status st;
    int oom = !dead || !m || !E || !qf || !work;
    if (!o.prune_n) {
        oom |= !(tmp = malloc((size_t)rows * (size_t)B * esz));
        oom |= !(sel = malloc((size_t)rows * (size_t)B * esz));
    } else {
        oom |= !(nmv = malloc((size_t)nchunks * (size_t)o.prune_m * esz));
        oom |= !(nmt = malloc((size_t)nchunks * (size_t)o.prune_m));
    }
    if (quant) {
        oom |= !(sbuf = malloc((size_t)rows * sizeof *sbuf));
        oom |= !(zbuf = malloc((size_t)rows * sizeof *zbuf));
    }
    if (f64) oom |= !(Wd = malloc((size_t)rows * (size_t)cols * sizeof *Wd));
    if (oom) {
        st = qn_error_set(err, QN_ERR_NOMEM,
                          "sparsegpt: out of memory (weight [%lld, %lld] work buffers)",
                          (long long)rows, (long long)cols);
        goto done;
    }

    qna_hinv_cfg cfg = {o.dampening_frac, o.damp_max_frac, o.identity_fallback, o.factor_f64 != 0, f64};
    if ((st = qna_hinv_build(h, cols, NULL, &cfg, dead, &hv, "sparsegpt", err))) goto done;

    /* base mask (W == 0 once the dead columns are zeroed); checked before w changes */
    int64_t nbase = 0;
#pragma omp parallel for reduction(+ : nbase) schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const uint8_t z = o.preserve_mask && (dead[c] || w[r * cols + c] == 0.0f);
            m[r * cols + c] = z;
            nbase += z;
        }
    if (o.preserve_mask && (double)nbase / ((double)rows * (double)cols) > o.sparsity) {
        st = qn_error_set(err, QN_ERR_INVALID_ARG,
                          "sparsegpt: the weight is already %.4g sparse, more than the target "
                          "sparsity %g; disable preserve_sparsity_mask or raise the sparsity",
                          (double)nbase / ((double)rows * (double)cols), o.sparsity);
        goto done;
    }
    if (hv.dead)
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                if (dead[c]) w[r * cols + c] = 0.0f;
    if (f64)
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (int64_t k = 0; k < rows * cols; k++) Wd[k] = w[k];

    sgpt_ctx x = {rows, cols, B, CH, sub, f64 ? (void *)Wd : (void *)w, E, work,
                  f64 ? (const void *)hv.ud : (const void *)hv.uf, tmp, sel, nmv, nmt, qf, m,
                  o.prune_n, o.prune_m, o.preserve_mask != 0, {quant, gcol, sbuf, zbuf}};
    double loss = 0;
    if ((st = sweep(&x, f64, o.sparsity, &loss, err))) {
        qn_error_prefix(err, "sparsegpt");
        goto done;
    }
    if (f64)
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (int64_t k = 0; k < rows * cols; k++) w[k] = (float)Wd[k];
    if (o.dtype != QN_DT_F32)
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
        for (int64_t k = 0; k < rows * cols; k++) w[k] = qn_round_to_dtype(w[k], o.dtype);
    int64_t pruned = 0;
#pragma omp parallel for reduction(+ : pruned) schedule(static) if (rows * cols > 65536)
    for (int64_t k = 0; k < rows * cols; k++) pruned += m[k];
    if (rep) {
        rep->loss = loss;
        rep->damp_frac = hv.damp_frac;
        rep->damp = hv.damp;
        rep->retries = hv.retries;
        rep->identity_fallback = hv.identity;
        rep->dead = hv.dead;
        rep->pruned = pruned;
    }
    st = QN_OK;
done:
    qna_hinv_free(&hv);
    free(dead);
    if (m != mask) free(m);
    free(E);
    free(tmp);
    free(sel);
    free(nmv);
    free(nmt);
    free(qf);
    free(sbuf);
    free(zbuf);
    free(Wd);
    free(work);
    return st;
}
