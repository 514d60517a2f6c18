/* quench — numerical cores of the calibration algorithms: Hessian accumulation, GPTQ, SparseGPT.
 *
 * A pure library: no I/O, no printing, no global mutable state. The layer-by-layer pipeline feeds
 * each Linear's inputs into a qn_hessian, then runs GPTQ (quantization) or SparseGPT (pruning) on
 * the layer's weight [rows = out_features, cols = in_features] (fp32 arrays, row-major).
 *
 *   qn_error err = {0};
 *   qn_hessian h;
 *   qn_hessian_init(&h, cols, &err);
 *   for (each calibration sequence s)                      // x: [ntok, cols] inputs of the Linear
 *       qn_hessian_add(&h, x_s, ntok_s, cols, 1, &err);    // 1 sample = one sequence (see below)
 *   qn_hessian_finalize(&h);                               // mirror the triangle: h.h is full
 *
 *   qn_gptq_opts o; qn_gptq_opts_init(&o);                 // block 128, dampening 0.01
 *   qn_qparams p; int32_t *g_idx = malloc(cols * 4);       // g_idx: only for actorder "group"
 *   int8_t *codes = malloc(rows * cols);                   // optional (NULL): integer codes
 *   qn_gptq_report rep;
 *   if (qn_gptq_quantize(w, rows, cols, h.h, &s.weights, QN_DT_BF16, &o, &p, g_idx, codes,
 *                        &rep, &err)) ... err.msg ...;     // h.h is consumed (workspace)
 *   // w now holds the fake-quantized weight (bf16 values); p the scales/zero points (and
 *   // p.g_idx == g_idx for actorder group); rep.loss, rep.damp_frac, rep.retries.
 *   qn_qparams_free(&p); qn_hessian_free(&h);
 *   // q/k/v_proj (or gate/up_proj) read the same input: one H, one factorization
 *   //   qn_gptq_quantize_shared(targets, 3, cols, h.h, QN_DT_BF16, &o, &err);
 *
 *   qn_sparsegpt_opts so; qn_sparsegpt_opts_init(&so);     // sparsity 0.5 unstructured
 *   so.prune_n = 2; so.prune_m = 4;                        // "2:4": 2 of every 4 weights zeroed
 *   qn_sparsegpt_prune(w, rows, cols, h2, &so, NULL, mask, &srep, &err);
 *
 * References (llm-compressor): modifiers/quantization/gptq/gptq_quantize.py (since moved to
 * modifiers/gptq/gptq_quantize.py) and modifiers/pruning/sparsegpt/sgpt_sparsify.py; the
 * decisions where quench differs or where the versions differ are listed at each function and in
 * src/algo/gptq.c, sparsegpt.c and hessian.c. In short:
 *  - H counts samples (sequences), not tokens, as the reference;
 *  - scales are observed before the sweep from the whole weight (original order; permuted order
 *    for actorder group), in the model dtype; the sweep quantizes in fp32;
 *  - U = cholesky(H^-1, upper) is computed in double by default from one Cholesky and one
 *    triangular inverse (the same matrix as the reference's three fp32 factorizations);
 *  - a Hessian that cannot be factored gets more damping (x10 up to damp_max_frac) instead of the
 *    reference's silent RTN fallback, and the damping used is reported;
 *  - GPTQ preserves existing zeros as llm-compressor did until PR #2860 (QN_ZEROS_AUTO).
 */
#ifndef QUENCH_ALGO_H
#define QUENCH_ALGO_H

#include <stddef.h>
#include <stdint.h>

#include "quench/quant.h"
#include "quench/status.h"

/* ------------------------------------------------------------------------------------------ */
/* Hessian H = 2/N * sum over tokens of x x^T  (accumulate_hessian)                            */

/* The reference keeps a running average: for a batch of B samples (sequences) with T tokens
 * each, H *= N/(N+B); N += B; H += (2/N) X^T X where X holds all B*T token rows. N counts samples
 * (the batch dimension of the [B, T, n] input), NOT tokens; the result is H = (2/N) sum x x^T over
 * every token seen. Feeding one sequence per call with nsamples = 1 gives the same H as the
 * reference's batches. The sums run in fp32 (cblas_ssyrk on the upper triangle). */
typedef struct {
    int64_t n;         /* columns (in_features) */
    int64_t nsamples;  /* N: samples accumulated */
    float *h;          /* [n, n] row-major, owned; the upper triangle (j >= i) is current after
                        * every add, the lower one only after qn_hessian_finalize */
} qn_hessian;

qn_status qn_hessian_init(qn_hessian *h, int64_t n, qn_error *err);  /* zeros, N = 0 */
void qn_hessian_free(qn_hessian *h);
/* Adds the rows of x [ntok, n] (row i at x + i*ld, ld >= n) counted as `nsamples` (>= 1)
 * samples. ntok may be 0 (the running average still counts the samples, as the reference does). */
qn_status qn_hessian_add(qn_hessian *h, const float *x, int64_t ntok, int64_t ld,
                         int64_t nsamples, qn_error *err);
/* Copies the upper triangle into the lower one (h->h is then the full symmetric matrix). Adding
 * more batches afterwards is allowed (finalize again). */
void qn_hessian_finalize(qn_hessian *h);

/* ------------------------------------------------------------------------------------------ */
/* Inverse-Hessian factor shared by GPTQ and SparseGPT                                          */

/* Both algorithms need U = cholesky(H^-1, upper) of the dampened Hessian. The reference adds
 * damp = dampening_frac * mean(diag H) and, when a Cholesky fails, falls back to identity (plain
 * RTN / magnitude order) with a warning. quench instead retries with the fraction multiplied by
 * 10 (0 starts at 1e-4) while it stays <= damp_max_frac, and records what it used; when no
 * damping works it returns an error unless identity_fallback asks for the reference's fallback
 * (then reported in the report's identity_fallback). */

/* How GPTQ treats weights that are already (near) zero (e.g. after SparseGPT). */
typedef enum {
    QN_ZEROS_AUTO = 0, /* llm-compressor until PR #2860: preserve when >= 5% of W is exactly 0 */
    QN_ZEROS_OFF,      /* llm-compressor HEAD (the preserving logic was removed) */
    QN_ZEROS_ON        /* always preserve */
} qn_zeros_mode;

/* ------------------------------------------------------------------------------------------ */
/* GPTQ                                                                                          */

typedef struct {
    int64_t block_size;       /* lazy-batch width, default 128 */
    double dampening_frac;    /* default 0.01 */
    double damp_max_frac;     /* retry ceiling, default 1.0 (of mean(diag H)) */
    int identity_fallback;    /* 0 (default): error when no damping works; 1: reference fallback */
    qn_zeros_mode zeros;      /* default QN_ZEROS_AUTO */
    float global_scale;       /* tensor_group (NVFP4): 0 = qn_nvfp4_global_scale(absmax(W));
                               * pass the shared value for fused layers (q/k/v, gate/up) */
    int factor_f64;           /* 1 (default): the Cholesky factorizations in double */
    int sweep_f64;            /* 0 (default): the sweep in fp32 as the reference; 1: in double */
} qn_gptq_opts;

void qn_gptq_opts_init(qn_gptq_opts *o);

typedef struct {
    double loss;              /* sum over elements of (w - q)^2 / d^2 / 2 (the reference's loss) */
    double damp_frac;         /* dampening fraction finally used */
    double damp;              /* value added to the diagonal */
    int retries;              /* factorizations that failed before the one used */
    int identity_fallback;    /* 1 when H^-1 was replaced by the identity */
    int64_t dead;             /* columns with diag(H) == 0 (zeroed) */
    int preserved_zeros;      /* 1 when the zero mask was preserved */
    int permuted;             /* 1 when an activation order was applied */
} qn_gptq_report;

/* GPTQ of w [rows, cols] (in place: the fake-quantized weight, rounded to `dtype`) with Hessian
 * h [cols, cols] (only the upper triangle is read; h is used as workspace and its contents are
 * unspecified on return). `args` (validated or not; validated here for this shape) gives the
 * scheme: int or float, tensor / channel / group / tensor_group / block strategies, and
 * args->actorder: none; "weight"/"static" (columns swept by descending diag(H), scales as
 * observed on the original weight); "group"/"dynamic" (columns permuted first, scales observed
 * on the permuted weight, g_idx written). Aliases behave alike.
 *   p      out: initialized here (qn_qparams_init; the caller frees it with qn_qparams_free);
 *          for actorder group p->g_idx = g_idx.
 *   g_idx  [cols] out: group of each column; required for actorder group, else may be NULL
 *          (then untouched).
 *   codes  optional [rows, cols] out (row-major, original column order): int8_t codes for int
 *          args, uint8_t fp8 / E2M1 codes for float args, exactly those of the returned weight
 *          (qn_quant_dequantize(p, codes) == w).
 *   rep    optional out.
 * Numerics: scales are observed in the model dtype (the module's observer on its weight); the
 * sweep quantizes in fp32 with those scales (the reference's GPTQ_PRECISION); the result is
 * rounded to `dtype` at the end (W.to(final_dtype)). */
qn_status qn_gptq_quantize(float *w, int64_t rows, int64_t cols, float *h,
                           const qn_quant_args *args, qn_dtype dtype, const qn_gptq_opts *opts,
                           qn_qparams *p, int32_t *g_idx, void *codes, qn_gptq_report *rep,
                           qn_error *err);

/* Several weights that read the same input (q/k/v_proj, gate/up_proj) share one Hessian: the
 * factor is computed once (twice when some use an activation order and some do not) and each
 * weight is swept with it, exactly as separate qn_gptq_quantize calls on copies of h would do.
 *   qn_gptq_target t[3] = {{wq, 2048, &a, &pq, NULL, NULL, &rq}, {wk, 256, &a, &pk, ...}, ...};
 *   qn_gptq_quantize_shared(t, 3, 2048, h.h, QN_DT_BF16, &o, &err);
 * On an argument error or a Hessian that cannot be factored no weight has changed and every
 * qparams is freed; after a later failure (out of memory) the weights are unspecified. */
typedef struct {
    float *w;                 /* [rows, cols] in place */
    int64_t rows;
    const qn_quant_args *args;
    qn_qparams *p;            /* out, as qn_gptq_quantize */
    int32_t *g_idx;           /* [cols] out for actorder group, else may be NULL */
    void *codes;              /* optional [rows, cols] out */
    qn_gptq_report *rep;      /* optional out */
} qn_gptq_target;

qn_status qn_gptq_quantize_shared(qn_gptq_target *t, size_t nt, int64_t cols, float *h,
                                  qn_dtype dtype, const qn_gptq_opts *opts, qn_error *err);

/* The same sharing for weights that arrive one at a time (streamed MoE experts, whose gate/up all
 * read the MoE block's input): the factor of H is computed on the first weight that needs it (one
 * per order: identity, activation order) and reused; each call equals qn_gptq_quantize on a copy
 * of h. h is copied at create. */
typedef struct qn_gptq_factor qn_gptq_factor;
qn_status qn_gptq_factor_create(const float *h, int64_t cols, const qn_gptq_opts *opts, qn_gptq_factor **out,
                                qn_error *err);
qn_status qn_gptq_factor_quantize(qn_gptq_factor *f, qn_gptq_target *t, qn_dtype dtype, qn_error *err);
void qn_gptq_factor_free(qn_gptq_factor *f);

/* ------------------------------------------------------------------------------------------ */
/* SparseGPT                                                                                     */

typedef struct {
    double sparsity;          /* unstructured target fraction, default 0.5 (also checked against
                               * the base sparsity when preserve_mask) */
    int prune_n, prune_m;     /* mask_structure "N:M": N of every M consecutive weights of a row
                               * are zeroed (M <= 4096); 0:0 (default) = unstructured */
    int64_t block_size;       /* default 128 */
    double dampening_frac;    /* default 0.01 */
    double damp_max_frac;     /* default 1.0 (see above) */
    int identity_fallback;    /* default 0 */
    int preserve_mask;        /* preserve_sparsity_mask: keep the existing zeros (default 0) */
    qn_dtype dtype;           /* the result is rounded to it (default QN_DT_F32: no rounding) */
    int factor_f64;           /* default 1 */
    int sweep_f64;            /* default 0 */
} qn_sparsegpt_opts;

void qn_sparsegpt_opts_init(qn_sparsegpt_opts *o);

typedef struct {
    double loss;
    double damp_frac, damp;
    int retries;
    int identity_fallback;
    int64_t dead;
    int64_t pruned;           /* weights in the mask */
} qn_sparsegpt_report;

/* SparseGPT of w [rows, cols] in place with Hessian h [cols, cols] (upper triangle read; used as
 * workspace). Mask selection as the reference: unstructured — per block of block_size columns,
 * over all rows of the block at once, the weights with w^2 / U_jj^2 <= the value of rank
 * int(numel * sparsity) (0-based) among them (int(numel * sparsity) + 1 weights without ties);
 * N:M — at every M-th column of a block (block-relative, so block_size should be a multiple of
 * M), per row, the N smallest w^2 / U_jj^2 of the next M columns, taken from the weights as
 * updated so far.
 *   quant  optional observed qparams of the same shape: the kept weights are fake-quantized
 *          during the sweep (the joint mode of the SparseGPT paper's code), pruned ones stay 0.
 *   mask   optional [rows, cols] out: 1 where the weight was pruned.
 *   rep    optional out. */
qn_status qn_sparsegpt_prune(float *w, int64_t rows, int64_t cols, float *h,
                             const qn_sparsegpt_opts *opts, const qn_qparams *quant,
                             uint8_t *mask, qn_sparsegpt_report *rep, qn_error *err);

#endif
