/* quench — perplexity and generation on a resident model.
 *
 * Perplexity convention (../shared/models/stories260K/README.md): the text is split into
 * documents (stream: the whole text; lines: each non-empty line; stories: the pieces between
 * "<|endoftext|>" markers, whitespace-stripped, empty ones dropped). CRLF becomes LF first. Each
 * document is encoded without special tokens and cut into windows of up to window-1 tokens;
 * each window is preceded by BOS (when the tokenizer has one) and every window token is scored
 * (the BOS position is never a target). Windows do not overlap. max_tokens > 0 stops after the
 * window that brings the scored count to at least max_tokens.
 *
 *   qn_ppl_result r;
 *   qn_eval_ppl(llm, tok, text, len, QN_PPL_STORIES, 512, 0, NULL, NULL, &r, &err);
 *   printf("%.4f\n", r.ppl);
 */
#ifndef QUENCH_EVAL_H
#define QUENCH_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "quench/calib.h"
#include "quench/model.h"
#include "quench/status.h"
#include "quench/tokenizer.h"

typedef enum { QN_PPL_STREAM, QN_PPL_LINES, QN_PPL_STORIES } qn_ppl_mode;
/* "stream" | "lines" | "stories" -> mode; 0 on success. */
int qn_ppl_mode_from_name(const char *name, qn_ppl_mode *out);

typedef struct {
    int64_t docs, windows, tokens_scored;
    double nll_sum, mean_nll, ppl;
    double seconds, tokens_per_second;   /* forward throughput (tokens run, BOS included) */
} qn_ppl_result;

/* Progress callback: done/total windows (total is 0 when not known yet). */
typedef void (*qn_progress_fn)(void *user, int64_t done, int64_t total);

/* A copy of text with CRLF turned into LF (malloc'ed, NUL-terminated; NULL when out of memory). */
char *qn_text_crlf_to_lf(const char *text, size_t len, size_t *out_len);

/* Splits text into documents per mode; returns malloc'ed arrays of (start, length) into text. */
qn_status qn_ppl_split(const char *text, size_t len, qn_ppl_mode mode, size_t **starts, size_t **lens,
                       int64_t *n_docs, qn_error *err);

/* Scores already-tokenized windows: ids[0..n) with the first token unscored. Adds to *nll_sum
 * the sum of -log softmax(logits_p)[ids[p+1]] over p = 0..n-2 (float64 accumulation, fp32 logits). */
qn_status qn_eval_window(qn_llm *llm, const int32_t *ids, int64_t n, float *logits_buf, double *nll_sum,
                         qn_error *err);

qn_status qn_eval_ppl(qn_llm *llm, const qn_tokenizer *tok, const char *text, size_t len, qn_ppl_mode mode,
                      int64_t window, int64_t max_tokens, qn_progress_fn progress, void *user,
                      qn_ppl_result *out, qn_error *err);

typedef struct {
    int64_t max_new_tokens;   /* default 256 */
    float temperature;        /* 0 = greedy */
    float top_p;              /* 1.0 = off */
    uint64_t seed;
    const int32_t *stop_ids; int n_stop;   /* generation stops after emitting one of these */
} qn_gen_opts;

/* Generates from prompt ids[0..n_prompt); writes prompt + new ids to *out_ids (malloc'ed), count
 * in *out_n. Sampling: softmax(logits / T), nucleus top-p, xorshift64* PRNG from seed. */
qn_status qn_generate(qn_llm *llm, const int32_t *prompt, int64_t n_prompt, const qn_gen_opts *opts,
                      int32_t **out_ids, int64_t *out_n, qn_error *err);

/* ---------------------------------------------------------------------------------------- */
/* Original vs compressed (src/eval/compare.c)                                               */

/* Scores both resident models on the same windows (the qn_eval_ppl convention, same text, mode,
 * window and max_tokens) and compares their next-token distributions at every scored position:
 * KL(original || compressed) = sum_v p(v) (log p(v) - log q(v)) in nats (float64 from the fp32
 * logits), and whether the two argmaxes agree. Both models must share the vocabulary; `tok` is
 * the original's tokenizer. original/compressed hold exactly what qn_eval_ppl reports.
 *
 *   qn_compare_result r;
 *   qn_compare_eval(llm_a, llm_b, tok, text, len, QN_PPL_STORIES, 512, 0, NULL, NULL, &r, &err);
 *   printf("KL %.5f, top-1 %.3f\n", r.kl_mean, r.top1_agreement);
 */
typedef struct {
    qn_ppl_result original, compressed;
    int64_t positions;          /* scored positions compared */
    double kl_mean, kl_max;
    double top1_agreement;      /* fraction of positions with the same argmax */
} qn_compare_result;

qn_status qn_compare_eval(qn_llm *original, qn_llm *compressed, const qn_tokenizer *tok, const char *text,
                          size_t len, qn_ppl_mode mode, int64_t window, int64_t max_tokens, qn_progress_fn progress,
                          void *user, qn_compare_result *out, qn_error *err);

/* The same comparison over token samples (each scored like one window: position p predicts p+1),
 * e.g. the held-out calibration samples of `quench compress`. */
qn_status qn_compare_samples(qn_llm *original, qn_llm *compressed, const qn_calib_set *samples, qn_compare_result *out,
                             qn_error *err);

/* Relative weight error ||W - W'||_F / ||W||_F of one Linear (W from the original folder, W' as
 * the compressed folder stores it, dequantized). */
typedef struct {
    char name[256];
    int64_t out, in;
    double rel_error;
} qn_weight_error;

/* Every Linear module of `original` (qn_export_list_modules) that `compressed` stores compressed
 * or with different values, in module order; *errs malloc'ed (free()). Modules missing from the
 * compressed folder are an error naming them. */
qn_status qn_compare_weights(const qn_model *original, const qn_model *compressed, qn_weight_error **errs, size_t *n,
                             qn_error *err);

#endif
