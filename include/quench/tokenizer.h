/* quench — Hugging Face tokenizer.json (BPE models: SentencePiece-style with byte_fallback, and
 * GPT-2 ByteLevel) encode/decode.
 *
 *   qn_tokenizer *tok;
 *   qn_tokenizer_load_dir("models/stories260K", &tok, &err);   // reads tokenizer.json (+ tokenizer_config.json)
 *   int32_t *ids; size_t n;
 *   qn_tokenizer_encode(tok, "Hello", 5, 1, &ids, &n, &err);    // 1 = add special tokens (post-processor)
 *   char *text; qn_tokenizer_decode(tok, ids, n, 1, &text, &err);  // 1 = skip special tokens
 *   free(ids); free(text); qn_tokenizer_free(tok);
 *
 * Semantics follow HF tokenizers (docs/architectures.md §9); the choices that are ours:
 *   - tokenizer.json components that quench does not support (model other than BPE, BPE dropout,
 *     normalizers other than NFC/NFD/NFKC/NFKD/Lowercase/Strip/Replace/Prepend, pre-tokenizers
 *     other than Split/ByteLevel/Metaspace, post-processors other than TemplateProcessing/
 *     ByteLevel/Bert/Roberta, decoders other than ByteLevel/Replace/ByteFallback/Fuse/Strip/
 *     Metaspace) fail at load with "<file>: <field>.type '<X>' is not supported".
 *     "truncation" and "padding" are ignored (transformers turns them off for a plain call).
 *   - Regexes run on PCRE2 (UTF + UCP, MULTILINE like onig's Ruby syntax).
 *   - tokenizer_config.json: bos_token / eos_token (string or {"content": ...}) set the BOS /
 *     EOS ids; for tokenizer_class Llama/CodeLlama/Gemma(Fast), whose transformers class
 *     rebuilds the post-processor, add_bos_token (default true) / add_eos_token (default
 *     false) replace the tokenizer.json template. Without a config, BOS / EOS are the
 *     single-id special tokens before / after $A in the template.
 *   - encode rejects text that is not valid UTF-8 (QN_ERR_INVALID_ARG, with the offset);
 *     decode skips ids that have no token, as HF does. Both are safe to call concurrently on
 *     one tokenizer.
 */
#ifndef QUENCH_TOKENIZER_H
#define QUENCH_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "quench/status.h"

typedef struct qn_tokenizer qn_tokenizer;

typedef enum {
    QN_TOK_SENTENCEPIECE_BPE, /* Metaspace / Replace+Prepend normalizer, byte_fallback */
    QN_TOK_BYTELEVEL_BPE      /* GPT-2 byte map, Split pre-tokenizer regex */
} qn_tokenizer_kind;

/* Loads `path` (a tokenizer.json file). */
qn_status qn_tokenizer_load(const char *path, qn_tokenizer **out, qn_error *err);
/* Loads dir/tokenizer.json; also reads dir/tokenizer_config.json when present (bos/eos, add_bos). */
qn_status qn_tokenizer_load_dir(const char *dir, qn_tokenizer **out, qn_error *err);
void qn_tokenizer_free(qn_tokenizer *t);

qn_tokenizer_kind qn_tokenizer_get_kind(const qn_tokenizer *t);
const char *qn_tokenizer_kind_name(qn_tokenizer_kind k);  /* "sentencepiece-bpe", "bytelevel-bpe" */
size_t qn_tokenizer_vocab_size(const qn_tokenizer *t);     /* model vocab + added tokens (max id + 1) */
/* The token string for an id (as in the vocab, e.g. "▁the", "<0x0A>", "Ġthe"); NULL if unknown. */
const char *qn_tokenizer_piece(const qn_tokenizer *t, int32_t id);
/* id of a token string (vocab or added token), -1 if none. */
int32_t qn_tokenizer_token_id(const qn_tokenizer *t, const char *piece);
/* BOS / EOS ids from the post-processor / tokenizer_config.json, -1 if none. */
int32_t qn_tokenizer_bos_id(const qn_tokenizer *t);
int32_t qn_tokenizer_eos_id(const qn_tokenizer *t);
int qn_tokenizer_is_special(const qn_tokenizer *t, int32_t id);

/* Encodes UTF-8 text (len bytes; need not be NUL-terminated). add_special applies the
 * post-processor (e.g. BOS for Llama-2). Added/special tokens in the text are matched first, as
 * HF does. *ids is malloc'ed; the caller frees it. */
qn_status qn_tokenizer_encode(const qn_tokenizer *t, const char *text, size_t len, int add_special,
                              int32_t **ids, size_t *n, qn_error *err);
/* Decodes ids to UTF-8 text (*text malloc'ed, NUL-terminated), with the tokenizer.json decoder
 * (Metaspace/Replace+Strip, ByteFallback, Fuse; or ByteLevel). */
qn_status qn_tokenizer_decode(const qn_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                              char **text, qn_error *err);

#endif
