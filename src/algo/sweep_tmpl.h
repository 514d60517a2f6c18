/* quench — the in-block column sweeps of GPTQ and SparseGPT, instantiated for float and double.
 *
 * Included by gptq.c (QNA_TMPL_GPTQ) or sparsegpt.c (QNA_TMPL_SGPT) once per element type with
 * QNA_T (float / double), QNA_SUF (f / d) and QNA_GEMM (cblas_sgemm / cblas_dgemm) defined; no
 * include guard on purpose.
 *
 * The lazy-batch sweep (GPTQ paper §3.4) of one block of columns [i1, i1 + count) is independent
 * per row: for each column c in order, every row quantizes (or prunes) its element, computes
 * err = (w - q) / U_cc and subtracts err * U[c, c+1 .. block end) from the rest of its block. So a
 * chunk of rows (a parallel task) runs the whole block while its slice stays in cache, and the
 * update of the columns after the block, W[:, i2:] -= Err1 * U[i1:i2, i2:], is one gemm (the
 * caller's). Inside a block the same idea is applied once more: sub-blocks of `sub` columns are
 * swept on a transposed copy (each column a contiguous vector over the chunk's rows, so the
 * quantizer and the rank-1 updates run on long vectors), then the rest of the block receives the
 * sub-block's errors through a register-tiled product (sub_update). Every weight receives the
 * same updates in the same order as in the reference's column loop; only where they are summed
 * (gemm, tiles) differs.
 */
#ifndef QNA_VBYTES
#if defined(__AVX512F__)
#define QNA_VBYTES 64
#else
#define QNA_VBYTES 32
#endif
#endif
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

/* Rows [r0, r1): W[r, j0:end) -= E[r, s0:s0+nb) * U[c0:c0+nb, j0:end) (the second level of
 * lazy batching inside a block). The k loop runs in the same order as the rank-1 updates it
 * replaces, so the arithmetic is the same; tiles of 4 rows x 2 vectors keep 8 independent
 * accumulators in registers and share each load of U. */
typedef QNA_T QNA_FN(vec) __attribute__((vector_size(QNA_VBYTES)));
static inline QNA_FN(vec) QNA_FN(vload)(const QNA_T *p) {
    QNA_FN(vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void QNA_FN(vstore)(QNA_T *p, QNA_FN(vec) v) { memcpy(p, &v, sizeof v); }

static void QNA_FN(sub_update)(QNA_T *W, int64_t n, const QNA_T *E, int64_t B, int64_t s0,
                               int64_t nb, const QNA_T *U, int64_t c0, int64_t j0, int64_t end,
                               int64_t r0, int64_t r1) {
    typedef QNA_FN(vec) vec;
    enum { VL = QNA_VBYTES / sizeof(QNA_T) };
    const QNA_T *Uc = U + c0 * n;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        QNA_T *w0 = W + r * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
        const QNA_T *e0 = E + r * B + s0, *e1 = e0 + B, *e2 = e1 + B, *e3 = e2 + B;
        int64_t j = j0;
        for (; j + 2 * VL <= end; j += 2 * VL) {
            vec a00 = QNA_FN(vload)(w0 + j), a01 = QNA_FN(vload)(w0 + j + VL);
            vec a10 = QNA_FN(vload)(w1 + j), a11 = QNA_FN(vload)(w1 + j + VL);
            vec a20 = QNA_FN(vload)(w2 + j), a21 = QNA_FN(vload)(w2 + j + VL);
            vec a30 = QNA_FN(vload)(w3 + j), a31 = QNA_FN(vload)(w3 + j + VL);
            for (int64_t k = 0; k < nb; k++) {
                const vec u0 = QNA_FN(vload)(Uc + k * n + j), u1 = QNA_FN(vload)(Uc + k * n + j + VL);
                a00 -= e0[k] * u0;
                a01 -= e0[k] * u1;
                a10 -= e1[k] * u0;
                a11 -= e1[k] * u1;
                a20 -= e2[k] * u0;
                a21 -= e2[k] * u1;
                a30 -= e3[k] * u0;
                a31 -= e3[k] * u1;
            }
            QNA_FN(vstore)(w0 + j, a00);
            QNA_FN(vstore)(w0 + j + VL, a01);
            QNA_FN(vstore)(w1 + j, a10);
            QNA_FN(vstore)(w1 + j + VL, a11);
            QNA_FN(vstore)(w2 + j, a20);
            QNA_FN(vstore)(w2 + j + VL, a21);
            QNA_FN(vstore)(w3 + j, a30);
            QNA_FN(vstore)(w3 + j + VL, a31);
        }
        for (; j + VL <= end; j += VL) {
            vec a0 = QNA_FN(vload)(w0 + j), a1 = QNA_FN(vload)(w1 + j);
            vec a2 = QNA_FN(vload)(w2 + j), a3 = QNA_FN(vload)(w3 + j);
            for (int64_t k = 0; k < nb; k++) {
                const vec u = QNA_FN(vload)(Uc + k * n + j);
                a0 -= e0[k] * u;
                a1 -= e1[k] * u;
                a2 -= e2[k] * u;
                a3 -= e3[k] * u;
            }
            QNA_FN(vstore)(w0 + j, a0);
            QNA_FN(vstore)(w1 + j, a1);
            QNA_FN(vstore)(w2 + j, a2);
            QNA_FN(vstore)(w3 + j, a3);
        }
        for (; j < end; j++) {
            QNA_T a0 = w0[j], a1 = w1[j], a2 = w2[j], a3 = w3[j];
            for (int64_t k = 0; k < nb; k++) {
                const QNA_T u = Uc[k * n + j];
                a0 -= e0[k] * u;
                a1 -= e1[k] * u;
                a2 -= e2[k] * u;
                a3 -= e3[k] * u;
            }
            w0[j] = a0;
            w1[j] = a1;
            w2[j] = a2;
            w3[j] = a3;
        }
    }
    for (; r < r1; r++) {
        QNA_T *row = W + r * n;
        const QNA_T *e = E + r * B + s0;
        for (int64_t jt = j0; jt < end; jt++) {
            QNA_T a = row[jt];
            for (int64_t k = 0; k < nb; k++) a -= e[k] * Uc[k * n + jt];
            row[jt] = a;
        }
    }
}

/* Sub-block [c0, c0 + nb) of rows [r0, r0 + nr) into / out of the transposed scratch: ws[k * nr +
 * rr] = W[r0 + rr, c0 + k]; the way back also stores the errors es into E. */
static void QNA_FN(sub_load)(const QNA_T *W, int64_t n, int64_t r0, int64_t nr, int64_t c0,
                             int64_t nb, QNA_T *ws) {
    for (int64_t rr = 0; rr < nr; rr++) {
        const QNA_T *row = W + (r0 + rr) * n + c0;
        for (int64_t k = 0; k < nb; k++) ws[k * nr + rr] = row[k];
    }
}
static void QNA_FN(sub_store)(QNA_T *W, int64_t n, QNA_T *E, int64_t B, int64_t r0, int64_t nr,
                              int64_t c0, int64_t s0, int64_t nb, const QNA_T *ws,
                              const QNA_T *es) {
    for (int64_t rr = 0; rr < nr; rr++) {
        QNA_T *row = W + (r0 + rr) * n + c0, *erow = E + (r0 + rr) * B + s0;
        for (int64_t k = 0; k < nb; k++) {
            row[k] = ws[k * nr + rr];
            erow[k] = es[k * nr + rr];
        }
    }
}

/* Column k of the transposed sub-block: q given in qt, err = (w - q) / d, then the rank-1 update
 * of the sub-block's later columns; returns sum (w - q)^2. */
static double QNA_FN(sub_column)(QNA_T *ws, QNA_T *es, const QNA_T *qt, int64_t nr, int64_t k,
                                 int64_t nb, QNA_T d, const QNA_T *urow) {
    QNA_T *v = ws + k * nr, *ek = es + k * nr;
    double l = 0;
#pragma omp simd reduction(+ : l)
    for (int64_t rr = 0; rr < nr; rr++) {
        const QNA_T q = qt[rr];
        const QNA_T diff = v[rr] - q;
        l += (double)diff * (double)diff;
        v[rr] = q;
        ek[rr] = diff / d;
    }
    for (int64_t j = k + 1; j < nb; j++) {
        const QNA_T uj = urow[j];
        QNA_T *vj = ws + j * nr;
#pragma omp simd
        for (int64_t rr = 0; rr < nr; rr++) vj[rr] -= ek[rr] * uj;
    }
    return l;
}

#ifdef QNA_TMPL_GPTQ
/* Rows [r0, r1) of block [i1, i1 + count): quantize, propagate inside the block, record Err.
 * Sub-blocks of x->sub columns run on a transposed copy (columns contiguous over the rows); the
 * rest of the block gets the sub-block's errors through sub_update. */
static qn_status QNA_FN(gptq_chunk)(const gptq_ctx *x, int64_t i1, int64_t count, int64_t r0,
                                    int64_t r1, double *loss, qn_error *err) {
    QNA_T *W = x->W;
    const QNA_T *U = x->U;
    QNA_T *E = x->E;
    const int64_t n = x->cols, B = x->B, end = i1 + count, nr = r1 - r0, S = x->sub;
    QNA_T *ws = (QNA_T *)x->work + (r0 / x->chunk) * (2 * S + 1) * x->chunk, *es = ws + S * nr;
    QNA_T *qt = es + S * nr;
    float *qf = x->qf + r0;
    int64_t lastg = -1;
    qn_qparams view;
    double l = 0;
    qn_status st;
    for (int64_t s0 = 0; s0 < count; s0 += S) {
        const int64_t s1 = s0 + S < count ? s0 + S : count, nb = s1 - s0, c0 = i1 + s0;
        QNA_FN(sub_load)(W, n, r0, nr, c0, nb, ws);
        for (int64_t k = 0; k < nb; k++) {
            const int64_t c = c0 + k;
            const QNA_T d = U[c * n + c];
            const int64_t g = qna_colq_group(&x->cq, c);
            if (g != lastg) {
                qna_colq_view(&x->cq, r0, r1, g, &view);
                lastg = g;
            }
            QNA_T *v = ws + k * nr;
            if (x->zmask) /* preserved zeros: read as 0 */
                for (int64_t rr = 0; rr < nr; rr++)
                    if (x->zmask[(r0 + rr) * n + c]) v[rr] = 0;
            for (int64_t rr = 0; rr < nr; rr++) qf[rr] = (float)v[rr];
            if ((st = qn_quant_fake(&view, qf, 1, 0, 1, err))) return st;
            for (int64_t rr = 0; rr < nr; rr++) qt[rr] = (QNA_T)qf[rr];
            l += QNA_FN(sub_column)(ws, es, qt, nr, k, nb, d, U + c * n + c0) /
                 ((double)d * (double)d);
        }
        QNA_FN(sub_store)(W, n, E, B, r0, nr, c0, s0, nb, ws, es);
        if (i1 + s1 < end) QNA_FN(sub_update)(W, n, E, B, s0, nb, U, c0, i1 + s1, end, r0, r1);
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
    uint8_t *mask = x->mask;
    const int64_t n = x->cols, B = x->B, end = i1 + count, nr = r1 - r0, S = x->sub;
    const int pn = x->prune_n, pm = x->prune_m;
    QNA_T *ws = (QNA_T *)x->work + (r0 / x->chunk) * (2 * S + 1) * x->chunk, *es = ws + S * nr;
    QNA_T *qt = es + S * nr;
    float *qf = x->qf + r0;
    int64_t lastg = -1;
    qn_qparams view;
    double l = 0;
    qn_status st;
    for (int64_t s0 = 0; s0 < count; s0 += S) {
        const int64_t s1 = s0 + S < count ? s0 + S : count, nb = s1 - s0, c0 = i1 + s0;
        QNA_FN(sub_load)(W, n, r0, nr, c0, nb, ws);
        for (int64_t k = 0; k < nb; k++) {
            const int64_t c = c0 + k;
            const QNA_T d = U[c * n + c];
            if (pn && (s0 + k) % pm == 0) {
                /* per row, the N smallest w^2 / U_jj^2 of the next M columns (ties: the first);
                 * S is a multiple of M, so the group lies in this sub-block */
                const int64_t width = (count - s0 - k < pm) ? count - s0 - k : pm;
                QNA_T *vals = (QNA_T *)x->nmv + (r0 / x->chunk) * pm;
                uint8_t *taken = x->nmt + (r0 / x->chunk) * pm;
                for (int64_t rr = 0; rr < nr; rr++) {
                    uint8_t *mrow = mask + (r0 + rr) * n + c;
                    for (int64_t kk = 0; kk < width; kk++) {
                        const QNA_T w = ws[(k + kk) * nr + rr], dk = U[(c + kk) * n + c + kk];
                        QNA_T t = w * w;
                        if (x->preserve && mrow[kk]) t = 0;
                        vals[kk] = t / (dk * dk);
                        taken[kk] = 0;
                    }
                    for (int s = 0; s < pn; s++) {
                        int64_t best = -1;
                        for (int64_t kk = 0; kk < width; kk++)
                            if (!taken[kk] && (best < 0 || vals[kk] < vals[best])) best = kk;
                        taken[best] = 1;
                        mrow[best] = 1;
                    }
                }
            }
            const QNA_T *v = ws + k * nr;
            if (x->cq.p) { /* joint quantization of the kept weights */
                const int64_t g = qna_colq_group(&x->cq, c);
                if (g != lastg) {
                    qna_colq_view(&x->cq, r0, r1, g, &view);
                    lastg = g;
                }
                for (int64_t rr = 0; rr < nr; rr++)
                    qf[rr] = mask[(r0 + rr) * n + c] ? 0.0f : (float)v[rr];
                if ((st = qn_quant_fake(&view, qf, 1, 0, 1, err))) return st;
                for (int64_t rr = 0; rr < nr; rr++)
                    qt[rr] = mask[(r0 + rr) * n + c] ? 0 : (QNA_T)qf[rr];
            } else {
                for (int64_t rr = 0; rr < nr; rr++) qt[rr] = mask[(r0 + rr) * n + c] ? 0 : v[rr];
            }
            l += QNA_FN(sub_column)(ws, es, qt, nr, k, nb, d, U + c * n + c0) /
                 ((double)d * (double)d);
        }
        QNA_FN(sub_store)(W, n, E, B, r0, nr, c0, s0, nb, ws, es);
        if (i1 + s1 < end) QNA_FN(sub_update)(W, n, E, B, s0, nb, U, c0, i1 + s1, end, r0, r1);
    }
    *loss += l;
    return QN_OK;
}
#endif

#undef QNA_FN
#undef QNA_CAT2
#undef QNA_CAT2_
