/* Shared helpers of the quench CLI: option parsing, error lines, progress, file reading. */
#ifndef QN_CLI_H
#define QN_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "quench/status.h"

typedef enum { CLI_FLAG, CLI_STR, CLI_INT, CLI_FLOAT } cli_kind;

typedef struct {
    const char *name;   /* "--max-new-tokens" */
    cli_kind kind;
    void *dst;          /* int* for FLAG, const char** for STR, int64_t* for INT, double* for FLOAT */
    const char *help;
    const char *metavar;
} cli_opt;

/* Parses argv[1..] (argv[0] = command name). Positionals go to pos[] (at most max_pos).
 * Returns 0 ok, 1 when --help was given (usage printed to stdout), 2 on a usage error (printed). */
int cli_parse(int argc, char **argv, const cli_opt *opts, const char *usage, char **pos, int max_pos, int *n_pos);

/* "quench <cmd>: <message>" on stderr; returns 1. */
int cli_fail(const char *cmd, const qn_error *err);
int cli_failf(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Progress on stderr, only when stderr is a terminal and not quiet. */
typedef struct {
    const char *what;
    int enabled;
    double t0, last;
} cli_progress;
void cli_progress_init(cli_progress *p, const char *what, int quiet);
void cli_progress_cb(void *user, int64_t done, int64_t total);
void cli_progress_end(cli_progress *p);

double cli_now(void);
/* Reads a whole file (malloc'ed, NUL-terminated); 0 ok, otherwise err filled. */
int cli_read_file(const char *path, char **data, size_t *len, qn_error *err);
/* Bytes of the *.safetensors files of a folder (what a loader reads); 0 if unreadable. */
uint64_t cli_safetensors_bytes(const char *dir);
/* Human-readable byte count ("1.04 MB"); returns buf. */
const char *cli_bytes(double bytes, char *buf, size_t n);
/* Human-readable count ("1.10 B", "260.1 K"); returns buf. */
const char *cli_count(double n, char *buf, size_t sz);

#endif

#include "quench/model.h"
#include "quench/tokenizer.h"
/* Opens model + tokenizer (+ a resident model with `ctx` positions when llm != NULL).
 * On failure prints the error line for `cmd` and returns 1 with everything freed. */
int cli_load_model(const char *cmd, const char *dir, int64_t ctx, qn_model **m, qn_tokenizer **tok, qn_llm **llm);
/* Same, with act_quant = 0 for the weights-only view (no activation-quantization emulation). */
int cli_load_model_ex(const char *cmd, const char *dir, int64_t ctx, int act_quant, qn_model **m, qn_tokenizer **tok,
                      qn_llm **llm);
void cli_unload_model(qn_model *m, qn_tokenizer *tok, qn_llm *llm);
