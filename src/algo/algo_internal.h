/* quench — src/algo private helpers shared by gptq.c and sparsegpt.c (implemented in hessian.c):
 * the dampened inverse-Hessian factor with the damping retries, permutations, and the one-column
 * quantization view over qn_quant_fake / qn_quant_quantize. */
#ifndef QN_ALGO_INTERNAL_H
#define QN_ALGO_INTERNAL_H

#include <stdint.h>

#include "quench/algo.h"

/* ---------------------------------------------------------------------------------------- */
/* U = cholesky((P H P^T + damp I)^-1, upper)                                                  */

typedef struct {
    double damp_frac;      /* first fraction tried */
    double damp_max_frac;  /* retry ceiling */
    int identity_fallback;
    int factor_f64;        /* factorize in double */
    int out_f64;           /* U wanted in double (else float) */
} qna_hinv_cfg;

typedef struct {
    int64_t n;
    float *uf;             /* out_f64 == 0: U row-major, upper triangle (U(a,b) at a*n + b) */
    double *ud;            /* out_f64 == 1 */
    float *own_f;          /* what qna_hinv_free releases (uf may alias the caller's h) */
    double damp_frac, damp;
    int retries, identity;
    int64_t dead;
} qna_hinv;

/* Builds U for the Hessian h [n, n] (upper triangle read) permuted by perm (column a of the
 * permuted problem is column perm[a] of h; NULL = identity). dead[a] (n bytes, out) is set to 1
 * for the permuted columns with a zero diagonal. h is used as workspace: with a permutation it is
 * mirrored in place, and a float U may be written into it (then uf == h). `who` names the
 * algorithm in messages. On error nothing is allocated. */
qn_status qna_hinv_build(float *h, int64_t n, const int32_t *perm, const qna_hinv_cfg *cfg,
                         uint8_t *dead, qna_hinv *out, const char *who, qn_error *err);
void qna_hinv_free(qna_hinv *u);

/* Stable argsort of diag(h) in descending order (ties keep the column order). */
void qna_argsort_diag_desc(const float *h, int64_t n, int32_t *perm);

/* In place: row r of w becomes w[r, perm[:]] (forward) or its inverse (w[r, perm[j]] = old j).
 * Returns QN_ERR_NOMEM (with the message) when the row buffers cannot be allocated. */
qn_status qna_permute_cols(float *w, int64_t rows, int64_t cols, const int32_t *perm, int inverse,
                           qn_error *err);

/* ---------------------------------------------------------------------------------------- */
/* One-column quantization                                                                      */

/* Maps (row, sweep column) to the scale of an observed qn_qparams and builds views that
 * quantize a contiguous run of rows of one column with qn_quant_fake: a channel-strategy view
 * (tensor_group keeps its strategy so the global scale applies) over per-row gathered scales,
 * with fp32 arithmetic (GPTQ_PRECISION). */
typedef struct {
    const qn_qparams *p;
    const int32_t *gcol;   /* scale column of each sweep column (group/block); NULL = c / tile */
    float *s, *z;          /* [rows] gathered scale / zero point of the current column */
} qna_colq;

/* Scale column of sweep column c (0 for tensor/channel). */
static inline int64_t qna_colq_group(const qna_colq *q, int64_t c) {
    switch (q->p->args.strategy) {
    case QN_STRATEGY_GROUP:
    case QN_STRATEGY_TENSOR_GROUP:
    case QN_STRATEGY_BLOCK:
        return q->gcol ? q->gcol[c] : c / q->p->tile_cols;
    default: return 0;
    }
}

/* Gathers the scales of rows [r0, r1) for scale column g into q->s / q->z and fills *view. */
void qna_colq_view(const qna_colq *q, int64_t r0, int64_t r1, int64_t g, qn_qparams *view);

#endif
