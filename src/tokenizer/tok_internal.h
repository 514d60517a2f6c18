/* quench — tokenizer internals shared by the files in src/tokenizer (not a public header).
 *
 * Layout of a loaded tokenizer (all owned by struct qn_tokenizer, freed by qn_tokenizer_free):
 *   - model vocab: id -> piece (offsets into one string arena), piece -> id (open-addressing map)
 *   - merges: (left id, right id) -> (rank, merged id) (open-addressing map on a 64-bit key)
 *   - added tokens (tokenizer.json "added_tokens"), matched leftmost-longest like HF's
 *     Aho-Corasick trie: one set on the raw text (normalized: false), one on normalized text
 *   - flattened lists of normalizers, pre-tokenizers, post-processor template and decoders
 * Everything is read-only after load, so one tokenizer may be used from several threads; all
 * per-call state (regex match data, word cache, BPE work arrays) lives in the encode call. */
#ifndef QN_TOK_INTERNAL_H
#define QN_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "quench/tokenizer.h"

/* Bounds on untrusted counts (hostile files must not drive huge allocations). */
#define TK_MAX_ID (1 << 22)          /* largest accepted token id + 1 (real vocabs: <= 262k) */
#define TK_MAX_ADDED 65536           /* added_tokens entries */
#define TK_MAX_COMPONENTS 256        /* normalizers / pre-tokenizers / decoders after flattening */
#define TK_MAX_TEMPLATE 64           /* items of a TemplateProcessing template */
#define TK_MAX_TEXT ((size_t)1 << 30) /* one encode call: at most 1 GiB of text */

/* ---------- growable byte buffer ---------- */
typedef struct {
    char *p;
    size_t len, cap;
} tk_buf;

int tk_buf_reserve(tk_buf *b, size_t extra); /* 0 ok, -1 out of memory */
int tk_buf_put(tk_buf *b, const void *s, size_t n);
void tk_buf_free(tk_buf *b);

/* ---------- growable int32 vector ---------- */
typedef struct {
    int32_t *p;
    size_t len, cap;
} tk_ivec;

int tk_ivec_push(tk_ivec *v, int32_t x);
int tk_ivec_put(tk_ivec *v, const int32_t *x, size_t n);

/* ---------- UTF-8 ---------- */
/* Length of the valid UTF-8 prefix: returns len when all of s is valid (Rust str rules: no
 * overlong forms, no surrogates, max U+10FFFF). */
size_t tk_utf8_valid_prefix(const char *s, size_t len);
/* Decodes one code point of VALID UTF-8 at s; returns its byte length (1..4). */
int tk_utf8_decode(const char *s, uint32_t *cp);
/* Byte length of the valid UTF-8 character starting with lead byte c. */
static inline int tk_utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
int tk_utf8_encode(uint32_t cp, char out[4]);
/* Appends bytes decoded lossily (Rust String::from_utf8_lossy: one U+FFFD per maximal invalid
 * subpart). */
int tk_buf_put_lossy(tk_buf *b, const unsigned char *s, size_t n);
int tk_is_white_space(uint32_t cp); /* Unicode White_Space (Rust char::is_whitespace, \s) */
int tk_is_word_char(uint32_t cp);   /* Rust regex \w (Unicode) */

/* ---------- string -> int32 map (open addressing; keys live elsewhere) ---------- */
typedef const char *(*tk_keyfn)(const void *ctx, int32_t val, size_t *len);
typedef struct {
    uint32_t *hash;
    int32_t *val; /* -1 = empty */
    size_t cap, n;
} tk_map;

uint32_t tk_hash(const char *s, size_t n);
int tk_map_init(tk_map *m, size_t expected);
void tk_map_free(tk_map *m);
int32_t tk_map_get(const tk_map *m, const char *k, size_t n, tk_keyfn kf, const void *ctx);
/* Inserts or overwrites; 0 ok, -1 out of memory. */
int tk_map_put(tk_map *m, const char *k, size_t n, int32_t val, tk_keyfn kf, const void *ctx);

/* ---------- merges: (a,b) -> (rank, new id) ---------- */
typedef struct {
    uint64_t key; /* UINT64_MAX = empty */
    uint32_t rank;
    int32_t new_id;
} tk_merge_slot;
typedef struct {
    tk_merge_slot *slot;
    size_t cap, n;
} tk_merge_map;

int tk_merge_init(tk_merge_map *m, size_t expected);
void tk_merge_free(tk_merge_map *m);
int tk_merge_put(tk_merge_map *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id);
const tk_merge_slot *tk_merge_get(const tk_merge_map *m, int32_t a, int32_t b);

/* ---------- GPT-2 byte <-> unicode table ---------- */
/* The code point that byte b maps to (tokenizers byte_level.rs bytes_char). */
uint32_t tk_byte_to_cp(unsigned char b);
/* Byte for a code point of the table, or -1 if cp is not in it. */
int tk_cp_to_byte(uint32_t cp);

/* ---------- patterns (literal string or PCRE2 regex) ---------- */
typedef struct {
    int is_regex;
    char *lit; /* literal (String pattern); may be empty */
    size_t lit_len;
    pcre2_code *re;
} tk_pattern;

typedef struct {
    size_t start, end;
    int is_match;
} tk_span;

typedef struct {
    tk_span *p;
    size_t len, cap;
} tk_spans;

/* Compiles a regex with PCRE2_UTF | PCRE2_UCP (and JIT when available). On failure writes a
 * message to errbuf and returns -1. */
int tk_pattern_regex(tk_pattern *p, const char *re, size_t re_len, char *errbuf, size_t errlen);
int tk_pattern_literal(tk_pattern *p, const char *s, size_t n);
void tk_pattern_free(tk_pattern *p);
/* HF Pattern::find_matches: the spans (matches and the gaps between them) that cover
 * s[0..len), in order. Regex matches follow onig find_iter (an empty match right after the
 * previous match is skipped by one character). Returns 0, -1 on out of memory, -2 on a regex
 * engine error. md: match data from pcre2_match_data_create(1, NULL). */
int tk_find_matches(const tk_pattern *p, pcre2_match_data *md, const char *s, size_t len,
                    tk_spans *out);

/* ---------- components ---------- */
typedef enum {
    TK_NORM_NFC,
    TK_NORM_NFD,
    TK_NORM_NFKC,
    TK_NORM_NFKD,
    TK_NORM_LOWERCASE,
    TK_NORM_STRIP,
    TK_NORM_REPLACE,
    TK_NORM_PREPEND
} tk_norm_kind;

typedef struct {
    tk_norm_kind kind;
    tk_pattern pat;   /* REPLACE */
    char *content;    /* REPLACE content / PREPEND string */
    size_t content_len;
    int strip_left, strip_right; /* STRIP */
} tk_norm;

typedef enum {
    TK_SPLIT_REMOVED,
    TK_SPLIT_ISOLATED,
    TK_SPLIT_MERGED_PREV,
    TK_SPLIT_MERGED_NEXT,
    TK_SPLIT_CONTIGUOUS
} tk_split_behavior;

typedef enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER } tk_prepend_scheme;

typedef enum { TK_PRE_SPLIT, TK_PRE_BYTELEVEL, TK_PRE_METASPACE } tk_pre_kind;

typedef struct {
    tk_pre_kind kind;
    tk_pattern pat; /* SPLIT pattern; BYTELEVEL GPT-2 regex when use_regex */
    tk_split_behavior behavior;
    int invert;
    int add_prefix_space, use_regex; /* BYTELEVEL */
    char rep[4];                     /* METASPACE replacement (UTF-8 of one char) */
    int rep_len;
    tk_prepend_scheme scheme;
    int split;
} tk_pre;

typedef enum {
    TK_DEC_BYTELEVEL,
    TK_DEC_REPLACE,
    TK_DEC_BYTEFALLBACK,
    TK_DEC_FUSE,
    TK_DEC_STRIP,
    TK_DEC_METASPACE
} tk_dec_kind;

typedef struct {
    tk_dec_kind kind;
    tk_pattern pat; /* REPLACE */
    char *content;
    size_t content_len;
    uint32_t strip_char; /* STRIP content */
    size_t strip_start, strip_stop;
    char rep[4]; /* METASPACE */
    int rep_len;
    tk_prepend_scheme scheme;
} tk_dec;

/* One post-processing step, for a single sequence: items are fixed ids or the sequence. */
typedef struct {
    int is_seq;
    int32_t *ids;
    size_t n;
} tk_tmpl_item;

typedef struct {
    tk_tmpl_item *items;
    size_t n;
} tk_post;

typedef struct {
    char *content;
    size_t len;
    char *norm; /* content passed through the normalizer (normalized tokens only) */
    size_t norm_len;
    int32_t id;
    uint8_t single_word, lstrip, rstrip, normalized, special;
} tk_added;

/* Leftmost-longest matcher over a set of added tokens. */
typedef struct {
    int32_t *order;       /* indices into added[], grouped by first byte, longest first */
    uint32_t first[257];  /* order[first[c] .. first[c+1]) start with byte c */
    size_t n;
    int use_norm;         /* match against tk_added.norm instead of .content */
} tk_matcher;

struct qn_tokenizer {
    qn_tokenizer_kind kind;
    char *path; /* for messages */

    /* model vocab */
    tk_buf arena;       /* NUL-separated piece strings */
    uint32_t *piece_off; /* [n_ids]; UINT32_MAX = no token at this id */
    uint32_t *piece_len;
    size_t n_ids;        /* max model id + 1 */
    tk_map vocab;
    tk_merge_map merges;
    int32_t *rank_new_id; /* [n_ranks]: merged id of the merge with this rank */
    size_t n_ranks;
    /* Adjacent character pairs that occur inside some vocab token (built only when nothing
     * pre-tokenizes, so a "word" can be a whole text). Between two characters that are tokens
     * themselves and whose pair occurs in no token, no merge can ever cross: BPE splits there
     * exactly, which keeps a 1 MB word fast and lets the word cache work. */
    uint64_t *bigram; /* open addressing; 0 = empty; key = (cp1 << 21 | cp2) + 1 */
    size_t bigram_cap;
    int32_t unk_id; /* -1 if none */
    int fuse_unk, byte_fallback, ignore_merges;
    char *cont_prefix; /* continuing_subword_prefix, NULL if none/empty */
    size_t cont_prefix_len;
    char *eow_suffix; /* end_of_word_suffix */
    size_t eow_suffix_len;
    int32_t byte_ids[256]; /* <0xXX> ids for byte_fallback, -1 if missing */

    /* added tokens */
    tk_added *added;
    size_t n_added;
    tk_map added_map;        /* content -> index into added */
    int32_t *added_by_id;    /* [vocab_size] -> index into added or -1 */
    size_t vocab_size;       /* max(model ids, added ids) + 1 */
    tk_matcher match_raw, match_norm;

    tk_norm *norms;
    size_t n_norms;
    tk_pre *pres;
    size_t n_pres;
    tk_post *posts;
    size_t n_posts;
    int has_decoder; /* 0: tokens joined with " " (HF without decoder) */
    tk_dec *decs;
    size_t n_decs;

    int32_t bos_id, eos_id;
};

/* Loading (tok_load.c). */
qn_status tk_load_json(qn_tokenizer *t, const char *path, const char *data, size_t len,
                       qn_error *err);
qn_status tk_load_config(qn_tokenizer *t, const char *path, const char *data, size_t len,
                         qn_error *err);
void tk_free_contents(qn_tokenizer *t);

/* Normalizers (tok_encode.c): applies the normalizer chain to s; result in *out. */
int tk_normalize(const qn_tokenizer *t, pcre2_match_data *md, const char *s, size_t len,
                 tk_buf *out);

/* Piece lookups (tokenizer.c). */
const char *tk_piece(const qn_tokenizer *t, int32_t id, size_t *len);
const char *tk_vocab_key(const void *ctx, int32_t val, size_t *len);
const char *tk_added_key(const void *ctx, int32_t val, size_t *len);

#endif
