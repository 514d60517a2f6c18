/* quench export — JSON as Python's json module reads and writes it (internal).
 *
 * compressed-tensors rewrites config.json with json.dump(obj, f, indent=2, sort_keys=True)
 * (ensure_ascii=True, no trailing newline). Reproducing those bytes needs what cJSON drops:
 * whether a number was an int ("512") or a float ("10000.0"), and Python's float repr. This
 * module keeps number literals as Python would see them (json.load: a literal with '.', 'e' or
 * 'E' is a float, otherwise an int; NaN / Infinity / -Infinity accepted as Python does; a
 * duplicate key keeps the last value, as a dict does) and prints:
 *   - objects with keys sorted by code point (Python str order), "key": value, 2-space indent,
 *     "{}" / "[]" when empty;
 *   - strings with ensure_ascii escapes (\" \\ \n \r \t \b \f, other bytes outside 0x20..0x7E
 *     as \uXXXX, astral code points as surrogate pairs);
 *   - ints as the literal's digits (arbitrary size), floats as repr(float).
 *
 *   qn_pyjson *j; qn_pyjson_parse(text, len, "config.json", &j, &err);
 *   qn_pyjson_set(j, "quantization_config", other);            // takes ownership of `other`
 *   char *s; qn_pyjson_dump(j, 2, &s, &err);                     // malloc'ed, no trailing newline
 *   qn_pyjson_free(j);
 */
#ifndef QN_EXPORT_PYJSON_H
#define QN_EXPORT_PYJSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "quench/status.h"

typedef enum { QN_PJ_NULL, QN_PJ_BOOL, QN_PJ_INT, QN_PJ_FLOAT, QN_PJ_STRING, QN_PJ_ARRAY, QN_PJ_OBJECT } qn_pj_type;

typedef struct qn_pyjson qn_pyjson;
struct qn_pyjson {
    qn_pj_type type;
    int boolean;
    double number;   /* FLOAT */
    char *text;      /* INT: the digits (with '-'); STRING: UTF-8 bytes (may hold NUL: see len) */
    size_t len;      /* STRING length */
    char *key;       /* member name when inside an object (UTF-8, key_len bytes) */
    size_t key_len;
    qn_pyjson **items;
    size_t n, cap;
};

/* Parses JSON text (depth <= 512). `name` prefixes error messages. */
qn_status qn_pyjson_parse(const char *text, size_t len, const char *name, qn_pyjson **out, qn_error *err);
void qn_pyjson_free(qn_pyjson *j);

/* Constructors (NULL on out of memory). */
qn_pyjson *qn_pyjson_new(qn_pj_type type);
qn_pyjson *qn_pyjson_new_string(const char *s);
qn_pyjson *qn_pyjson_new_int(long long v);
qn_pyjson *qn_pyjson_new_float(double v);
qn_pyjson *qn_pyjson_new_bool(int v);
/* Converts a cJSON tree (numbers: integral values within +-2^53 become ints, others floats). */
qn_pyjson *qn_pyjson_from_cjson(const cJSON *c);

/* Object member by name (NULL if absent). */
qn_pyjson *qn_pyjson_get(const qn_pyjson *obj, const char *key);
/* Sets obj[key] = v (replacing an existing member); takes ownership of v. 0 ok, -1 no memory. */
int qn_pyjson_set(qn_pyjson *obj, const char *key, qn_pyjson *v);
/* Appends to an array; takes ownership. 0 ok, -1 no memory. */
int qn_pyjson_append(qn_pyjson *arr, qn_pyjson *v);

/* json.dumps(obj, indent=indent, sort_keys=True) (ensure_ascii). indent < 0: compact with
 * Python's default separators (", ", ": "). Result malloc'ed, NUL-terminated. */
qn_status qn_pyjson_dump(const qn_pyjson *j, int indent, char **out, qn_error *err);

/* repr(float) into buf (>= 32 bytes): "0.5", "1e-05", "10000.0", "1e+16", "nan" -> "NaN",
 * "inf" -> "Infinity" (as json.dumps writes them). */
void qn_pyjson_float_repr(double v, char *buf, size_t n);

#endif
