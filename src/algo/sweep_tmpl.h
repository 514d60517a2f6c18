/* quench — the in-block column sweeps of GPTQ and SparseGPT, instantiated for float and double.
 *
 * Included by gptq.c (QNA_TMPL_GPTQ) or sparsegpt.c (QNA_TMPL_SGPT) once per element type with
 * QNA_T (float / double), QNA_SUF (f / d) and QNA_GEMM (cblas_sgemm / cblas_dgemm) defined; no
 * include guard on purpose.
 *
 * The lazy-batch sweep (GPTQ paper §3.4) of one block of columns [i1, i1 + count) is independent
 * per row: for each column c in order, every row quantizes (or prunes) its element, computes
 * err = (w - q) / U_cc and subtracts err * U[c, c+1 .. block end) from the rest of its block. So a
 * chunk of rows runs the whole block while its slice of the block stays in cache; the update of
 * the columns after the block, W[:, i2:] -= Err1 * U[i1:i2, i2:], is one gemm (the caller's).
 */
#define QNA_CAT2_(a, b) a##_##b
#define QNA_CAT2(a, b) QNA_CAT2_(a, b)
#define QNA_FN(name) QNA_CAT2(name, QNA_SUF)

/* W[:, i2:] -= E[:, :count] * U[i1:i2, i2:] (E: rows x count, leading dimension ldE). */
static void QNA_FN(block_update)(QNA_T *W, int64_t ldw, int64_t rows, int64_t cols,
                                 const QNA_T *E, int64_t ldE, const QNA_T *U, int64_t i1,
                                 int64_t count) {
    const int64_t i2 = i1 + count, N = cols - i2;
    if (N <= 0 || rows <= 0) return;
    QNA_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)N, (int)count, -1, E,
             (int)ldE, U + i1 * cols + i2, (int)cols, 1, W + i2, (int)ldw);
}

#ifdef QNA_TMPL_GPTQ
/* Rows [r0, r1) of block [i1, i1 + count): quantize, propagate inside the block, record Err. */
static qn_status QNA_FN(gptq_chunk)(const gptq_ctx *x, int64_t i1, int64_t count, int64_t r0,
                                    int64_t r1, double *loss, qn_error *err) {
    QNA_T *W = x->W;
    const QNA_T *U = x->U;
    QNA_T *E = x->E;
    QNA_T *wv = x->wv;
    float *qf = x->qf;
    const int64_t n = x->cols, B = x->B, end = i1 + count;
    int64_t lastg = -1;
    qn_qparams view;
    double l = 0;
    qn_status st;
    for (int64_t i = 0; i < count; i++) {
        const int64_t c = i1 + i;
        const QNA_T d = U[c * n + c];
        const int64_t g = qna_colq_group(&x->cq, c);
        if (g != lastg) {
            qna_colq_view(&x->cq, r0, r1, g, &view);
            lastg = g;
        }
        for (int64_t r = r0; r < r1; r++) {
            QNA_T v = W[r * n + c];
            if (x->zmask && x->zmask[r * n + c]) v = 0; /* preserved zero */
            wv[r] = v;
            qf[r] = (float)v;
        }
        if (x->codes) {
            if ((st = qn_quant_quantize(&view, qf + r0, 1, 0, 1, x->ctmp + r0, 1, err))) return st;
            const int64_t oc = x->perm ? x->perm[c] : c;
            for (int64_t r = r0; r < r1; r++) x->codes[r * n + oc] = x->ctmp[r];
        }
        if ((st = qn_quant_fake(&view, qf + r0, 1, 0, 1, err))) return st;
        const QNA_T *u = U + c * n;
        for (int64_t r = r0; r < r1; r++) {
            const QNA_T q = (QNA_T)qf[r];
            const QNA_T diff = wv[r] - q;
            const QNA_T e = diff / d;
            l += (double)diff * (double)diff / ((double)d * (double)d);
            QNA_T *row = W + r * n;
            row[c] = q;
            E[r * B + i] = e;
#pragma omp simd
            for (int64_t j = c + 1; j < end; j++) row[j] -= e * u[j];
        }
    }
    *loss += l;
    return QN_OK;
}
#endif

#ifdef QNA_TMPL_SGPT
/* Value of rank k (0-based) of a[0..n) (reorders a): Hoare-partition quickselect. */
static QNA_T QNA_FN(kth)(QNA_T *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        QNA_T x = a[lo], y = a[mid], z = a[hi], pv; /* median of three */
        if (x < y) pv = y < z ? y : (x < z ? z : x);
        else pv = x < z ? x : (y < z ? z : y);
        int64_t i = lo - 1, j = hi + 1;
        for (;;) {
            do i++; while (a[i] < pv);
            do j--; while (a[j] > pv);
            if (i >= j) break;
            QNA_T t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        if (k <= j) hi = j;
        else lo = j + 1;
    }
    return a[k];
}

/* Unstructured mask of block [i1, i1 + count): tmp = w^2 / U_jj^2 (0 where the base mask holds
 * when preserving), thresh = its value of rank kk, mask = tmp <= thresh. */
static void QNA_FN(sgpt_block_mask)(const sgpt_ctx *x, int64_t i1, int64_t count, int64_t kk) {
    const QNA_T *W = x->W, *U = x->U;
    QNA_T *tmp = x->tmp, *sel = x->sel;
    const int64_t n = x->cols, rows = x->rows, numel = rows * count;
#pragma omp parallel for schedule(static) if (numel > 65536)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < count; i++) {
            const int64_t c = i1 + i;
            const QNA_T w = W[r * n + c], d = U[c * n + c];
            QNA_T t = w * w;
            if (x->preserve && x->mask[r * n + c]) t = 0;
            t = t / (d * d);
            tmp[r * count + i] = t;
            sel[r * count + i] = t;
        }
    const QNA_T thresh = QNA_FN(kth)(sel, numel, kk);
#pragma omp parallel for schedule(static) if (numel > 65536)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < count; i++) x->mask[r * n + i1 + i] = tmp[r * count + i] <= thresh;
}

static qn_status QNA_FN(sgpt_chunk)(const sgpt_ctx *x, int64_t i1, int64_t count, int64_t r0,
                                    int64_t r1, double *loss, qn_error *err) {
    QNA_T *W = x->W;
    const QNA_T *U = x->U;
    QNA_T *E = x->E;
    float *qf = x->qf;
    uint8_t *mask = x->mask;
    const int64_t n = x->cols, B = x->B, end = i1 + count;
    const int pn = x->prune_n, pm = x->prune_m;
    int64_t lastg = -1;
    qn_qparams view;
    double l = 0;
    qn_status st;
    for (int64_t i = 0; i < count; i++) {
        const int64_t c = i1 + i;
        const QNA_T d = U[c * n + c];
        if (pn && i % pm == 0) {
            /* the N smallest w^2 / U_jj^2 of the next M columns (ties: the first ones) */
            const int64_t width = (count - i < pm) ? count - i : pm;
            QNA_T *vals = (QNA_T *)x->nmv + (r0 / x->chunk) * pm;
            uint8_t *taken = x->nmt + (r0 / x->chunk) * pm;
            for (int64_t r = r0; r < r1; r++) {
                uint8_t *mrow = mask + r * n + c;
                for (int64_t k = 0; k < width; k++) {
                    const QNA_T w = W[r * n + c + k], dk = U[(c + k) * n + c + k];
                    QNA_T t = w * w;
                    if (x->preserve && mrow[k]) t = 0;
                    vals[k] = t / (dk * dk);
                    taken[k] = 0;
                }
                for (int s = 0; s < pn; s++) {
                    int64_t best = -1;
                    for (int64_t k = 0; k < width; k++)
                        if (!taken[k] && (best < 0 || vals[k] < vals[best])) best = k;
                    taken[best] = 1;
                    mrow[best] = 1;
                }
            }
        }
        if (x->cq.p) {
            const int64_t g = qna_colq_group(&x->cq, c);
            if (g != lastg) {
                qna_colq_view(&x->cq, r0, r1, g, &view);
                lastg = g;
            }
            for (int64_t r = r0; r < r1; r++)
                qf[r] = mask[r * n + c] ? 0.0f : (float)W[r * n + c];
            if ((st = qn_quant_fake(&view, qf + r0, 1, 0, 1, err))) return st;
        }
        const QNA_T *u = U + c * n;
        for (int64_t r = r0; r < r1; r++) {
            QNA_T *row = W + r * n;
            const QNA_T w = row[c];
            QNA_T q = x->cq.p ? (QNA_T)qf[r] : w;
            if (mask[r * n + c]) q = 0;
            const QNA_T diff = w - q;
            const QNA_T e = diff / d;
            l += (double)diff * (double)diff / ((double)d * (double)d);
            row[c] = q;
            E[r * B + i] = e;
#pragma omp simd
            for (int64_t j = c + 1; j < end; j++) row[j] -= e * u[j];
        }
    }
    *loss += l;
    return QN_OK;
}
#endif

#undef QNA_FN
#undef QNA_CAT2
#undef QNA_CAT2_
