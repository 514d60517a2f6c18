/* quench — calibration data: text files and JSONL records → samples of token ids.
 *
 *   qn_calib_opts o; qn_calib_opts_init(&o);
 *   o.path = "data/calibration/tinystories_calib.txt"; o.num_samples = 128; o.max_seq_length = 512;
 *   qn_calib_set set;
 *   qn_calib_load(&o, tok, "models/stories260K", &set, &err);
 *   for (i < set.n) use set.samples[i].ids[0 .. set.samples[i].n)
 *   qn_calib_free(&set);
 *
 * Input kinds (chosen by content, as llm-compressor users pass them):
 *  - plain text (any file that is not JSON/JSONL): mode "stream" (default) encodes the whole file
 *    without special tokens and cuts it into windows of max_seq_length - 1 tokens, each preceded
 *    by BOS (when the tokenizer has one) — the same windows `quench ppl` scores; the last partial
 *    window is kept when it has at least 2 tokens. Mode "lines": every non-blank line is one
 *    sample, encoded with special tokens (BOS) and truncated to max_seq_length.
 *  - JSONL (one object per line) or a JSON array of objects. Each record is, in this order:
 *    * chat: a "messages" list of {role, content}, rendered with the model's chat template
 *      (chat_template.jinja or tokenizer_config.json), then encoded WITHOUT special tokens (the
 *      template writes BOS itself: no double BOS, as llm-compressor's examples do);
 *    * text: the `text_field` ("text") string, encoded with special tokens (tokenizer(text));
 *    * instruction: "instruction" (+ optional "input") + "output", rendered with the Alpaca
 *      template llm-compressor's open_platypus dataset uses, encoded with special tokens.
 *    Samples are truncated to max_seq_length tokens.
 * Order: records are read in file order; with shuffle on (default, seed 42 as llm-compressor's
 * shuffle) they are shuffled (Fisher-Yates, xorshift64*) before the first num_samples are taken.
 */
#ifndef QUENCH_CALIB_H
#define QUENCH_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "quench/status.h"
#include "quench/tokenizer.h"

typedef struct {
    int32_t *ids;
    int64_t n;
} qn_sample;

typedef struct {
    qn_sample *samples;
    int64_t n;
    int64_t tokens;      /* sum of sample lengths */
    char kind[16];       /* "text", "text-lines", "jsonl-text", "chat", "instruction", "mixed" */
} qn_calib_set;

typedef struct {
    const char *path;
    const char *mode;          /* "stream" (default) or "lines", for plain text */
    const char *text_field;    /* "text" */
    int64_t num_samples;       /* 512 */
    int64_t max_seq_length;    /* 2048 */
    int shuffle;               /* 1 */
    uint64_t shuffle_seed;     /* 42 */
} qn_calib_opts;

void qn_calib_opts_init(qn_calib_opts *o);
/* model_dir: where the chat template lives (NULL: chat records are refused). */
qn_status qn_calib_load(const qn_calib_opts *o, const qn_tokenizer *tok, const char *model_dir, qn_calib_set *out,
                        qn_error *err);
/* Moves the last n_holdout samples of `set` into `holdout` (for the held-out quality check). */
qn_status qn_calib_split(qn_calib_set *set, int64_t n_holdout, qn_calib_set *holdout, qn_error *err);
void qn_calib_free(qn_calib_set *s);

/* The Alpaca prompt + output text of an instruction record (malloc'ed). */
char *qn_calib_alpaca_text(const char *instruction, const char *input, const char *output);

#endif
