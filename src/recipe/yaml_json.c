/* quench — recipe YAML -> cJSON tree (libyaml event parser).
 *
 * The tree is what llm-compressor sees after `yaml.safe_load` (PyYAML, YAML 1.1 resolvers) and
 * pydantic's lax coercion of the values:
 *  - quoted, block (| >) and "!"-tagged scalars are strings;
 *  - plain scalars: "", ~, null, Null, NULL -> null; yes/no/true/false/on/off (lower, Capitalized
 *    or UPPER case) -> booleans; YAML 1.1 ints (decimal with "_" separators, 0b binary, 0x hex,
 *    leading-0 octal) -> numbers; floats with a "." (1.5, 1., .5, 1.0e-5), .inf/.nan -> numbers;
 *    everything else -> strings.
 *  - Deviations, all towards the value llm-compressor ends up with: PyYAML keeps "1e-5", "1E5" and
 *    "1.0e5" (exponent without "." or without a sign) as strings, which pydantic then converts for
 *    float fields; here they are numbers directly. PyYAML reads the sexagesimal "2:4" as the int
 *    124 (and llm-compressor then rejects an unquoted `mask_structure: 2:4`); here "N:M" plain
 *    scalars stay strings. Timestamps stay strings (no recipe field takes a date).
 *  - Explicit core tags !!str, !!int, !!float, !!bool, !!null, !!seq, !!map are honoured; other
 *    tags, anchors (&a) and aliases (*a) are refused (aliases also make "billion laughs" inputs
 *    impossible). Duplicate keys (PyYAML silently keeps the last) and non-scalar keys are errors;
 *    so are several documents (safe_load refuses them too).
 * Bounds: QN_RECIPE_MAX_BYTES of input, QN_RECIPE_MAX_DEPTH nested collections, QNR_MAX_NODES
 * nodes.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "quench/recipe.h"
#include "recipe/recipe_internal.h"

typedef struct {
    cJSON *node;
    char *key; /* mappings: the key waiting for its value, NULL while a key is expected */
    int is_map;
} frame;

typedef struct {
    const char *name;
    frame stack[QN_RECIPE_MAX_DEPTH];
    int depth;
    cJSON *root;
    int have_root;
    size_t nodes;
    int docs;
    qn_error *err;
} ystate;

static qn_status at(ystate *y, yaml_mark_t m, qn_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static qn_status at(ystate *y, yaml_mark_t m, qn_status code, const char *fmt, ...) {
    char msg[QN_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qn_error_set(y->err, code, "%s:%zu:%zu: %s", y->name, (size_t)m.line + 1,
                        (size_t)m.column + 1, msg);
}

/* ---------------------------------------------------------------------------------------- */
/* Scalars                                                                                   */

static int is_null_lit(const char *s) {
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int bool_lit(const char *s, int *out) {
    static const char *const T[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
    static const char *const F[] = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        if (!strcmp(s, T[i])) { *out = 1; return 1; }
        if (!strcmp(s, F[i])) { *out = 0; return 1; }
    }
    return 0;
}

static int digit_val(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 99;
}

/* YAML 1.1 int (PyYAML's resolver minus sexagesimal): [-+]? (0b[01_]+ | 0x[0-9a-fA-F_]+ |
 * 0[0-7_]+ | 0 | [1-9][0-9_]*), at least one digit after a prefix. */
static int int_lit(const char *s, double *out) {
    const char *p = s;
    int neg = 0;
    if (*p == '-' || *p == '+') neg = *p++ == '-';
    int base = 10;
    if (p[0] == '0' && p[1] == 'b') { base = 2; p += 2; }
    else if (p[0] == '0' && p[1] == 'x') { base = 16; p += 2; }
    else if (p[0] == '0' && p[1]) { base = 8; p += 1; }
    else if (p[0] == '0') { *out = 0.0; return 1; }
    else if (!(p[0] >= '1' && p[0] <= '9')) return 0;
    double v = 0.0;
    int digits = 0;
    for (; *p; p++) {
        if (*p == '_') continue;
        int d = digit_val(*p);
        if (d >= base) return 0;
        v = v * base + d;
        digits++;
    }
    if (!digits) return 0;
    *out = neg ? -v : v;
    return 1;
}

/* Floats: [-+]? (digits [. digits*] | . digits) ([eE][-+]?[0-9]+)?, with a "." or an exponent
 * ("_" allowed in digits after the first); [-+]?.inf, .nan (three spellings each). */
static int float_lit(const char *s, double *out) {
    const char *p = s;
    int neg = 0;
    if (*p == '-' || *p == '+') neg = *p++ == '-';
    if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF")) {
        *out = neg ? -INFINITY : INFINITY;
        return 1;
    }
    if (p == s && (!strcmp(p, ".nan") || !strcmp(p, ".NaN") || !strcmp(p, ".NAN"))) {
        *out = NAN;
        return 1;
    }
    size_t n = strlen(s);
    if (n > 256) return 0;
    char buf[260];
    size_t k = 0;
    if (neg) buf[k++] = '-';
    int int_digits = 0, frac_digits = 0, dot = 0, expo = 0;
    if (*p >= '0' && *p <= '9') {
        for (; (*p >= '0' && *p <= '9') || *p == '_'; p++)
            if (*p != '_') { buf[k++] = *p; int_digits++; }
    }
    if (*p == '.') {
        dot = 1;
        buf[k++] = *p++;
        for (; (*p >= '0' && *p <= '9') || *p == '_'; p++)
            if (*p != '_') { buf[k++] = *p; frac_digits++; }
    }
    if (!int_digits && !frac_digits) return 0;
    if (*p == 'e' || *p == 'E') {
        expo = 1;
        buf[k++] = *p++;
        if (*p == '-' || *p == '+') buf[k++] = *p++;
        int ed = 0;
        for (; *p >= '0' && *p <= '9'; p++) { buf[k++] = *p; ed++; }
        if (!ed) return 0;
    }
    if (*p || (!dot && !expo)) return 0;
    buf[k] = '\0';
    *out = strtod(buf, NULL);
    return 1;
}

#define TAG_PREFIX "tag:yaml.org,2002:"

/* The cJSON value of a scalar event (NULL with err set). */
static cJSON *scalar_node(ystate *y, const yaml_event_t *ev, qn_status *st) {
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    *st = QN_OK;
    if (memchr(s, '\0', len)) {
        *st = at(y, ev->start_mark, QN_ERR_FORMAT, "NUL character in a YAML scalar");
        return NULL;
    }
    enum { R_IMPLICIT, R_STR, R_NULL, R_BOOL, R_INT, R_FLOAT } how;
    if (!tag) how = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? R_IMPLICIT : R_STR;
    else if (!strcmp(tag, "!") || !strcmp(tag, TAG_PREFIX "str")) how = R_STR;
    else if (!strcmp(tag, TAG_PREFIX "null")) how = R_NULL;
    else if (!strcmp(tag, TAG_PREFIX "bool")) how = R_BOOL;
    else if (!strcmp(tag, TAG_PREFIX "int")) how = R_INT;
    else if (!strcmp(tag, TAG_PREFIX "float")) how = R_FLOAT;
    else {
        *st = at(y, ev->start_mark, QN_ERR_UNSUPPORTED,
                 "YAML tag '%s' is not supported (only !!str, !!int, !!float, !!bool, !!null)", tag);
        return NULL;
    }
    double d;
    int b;
    cJSON *r = NULL;
    switch (how) {
    case R_IMPLICIT:
        if (is_null_lit(s)) r = cJSON_CreateNull();
        else if (bool_lit(s, &b)) r = cJSON_CreateBool(b);
        else if (int_lit(s, &d) || float_lit(s, &d)) r = cJSON_CreateNumber(d);
        else r = cJSON_CreateString(s);
        break;
    case R_STR: r = cJSON_CreateString(s); break;
    case R_NULL: r = cJSON_CreateNull(); break;
    case R_BOOL:
        if (!bool_lit(s, &b)) {
            *st = at(y, ev->start_mark, QN_ERR_FORMAT, "'%s' is not a boolean (!!bool)", s);
            return NULL;
        }
        r = cJSON_CreateBool(b);
        break;
    case R_INT:
        if (!int_lit(s, &d)) {
            *st = at(y, ev->start_mark, QN_ERR_FORMAT, "'%s' is not an integer (!!int)", s);
            return NULL;
        }
        r = cJSON_CreateNumber(d);
        break;
    case R_FLOAT:
        if (!float_lit(s, &d) && !int_lit(s, &d)) {
            *st = at(y, ev->start_mark, QN_ERR_FORMAT, "'%s' is not a number (!!float)", s);
            return NULL;
        }
        r = cJSON_CreateNumber(d);
        break;
    }
    if (!r) *st = qn_error_set(y->err, QN_ERR_NOMEM, "%s: out of memory parsing YAML", y->name);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Tree building                                                                             */

/* Puts `item` into the current container (or makes it the root); takes ownership. */
static qn_status attach(ystate *y, cJSON *item) {
    if (y->depth == 0) {
        y->root = item;
        y->have_root = 1;
        return QN_OK;
    }
    frame *f = &y->stack[y->depth - 1];
    int ok;
    if (f->is_map) {
        ok = cJSON_AddItemToObject(f->node, f->key, item);
        free(f->key);
        f->key = NULL;
    } else {
        ok = cJSON_AddItemToArray(f->node, item);
    }
    if (!ok) {
        cJSON_Delete(item);
        return qn_error_set(y->err, QN_ERR_NOMEM, "%s: out of memory parsing YAML", y->name);
    }
    return QN_OK;
}

static qn_status count_node(ystate *y, yaml_mark_t m) {
    if (++y->nodes > QNR_MAX_NODES)
        return at(y, m, QN_ERR_NOMEM, "more than %d YAML nodes", QNR_MAX_NODES);
    return QN_OK;
}

static int awaiting_key(const ystate *y) {
    return y->depth > 0 && y->stack[y->depth - 1].is_map && !y->stack[y->depth - 1].key;
}

static qn_status on_start(ystate *y, const yaml_event_t *ev, int is_map) {
    const char *anchor = (const char *)(is_map ? ev->data.mapping_start.anchor
                                               : ev->data.sequence_start.anchor);
    const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    if (anchor)
        return at(y, ev->start_mark, QN_ERR_UNSUPPORTED,
                  "YAML anchors ('&%s') and aliases are not supported; write the values out", anchor);
    if (tag && strcmp(tag, is_map ? TAG_PREFIX "map" : TAG_PREFIX "seq") && strcmp(tag, "!"))
        return at(y, ev->start_mark, QN_ERR_UNSUPPORTED, "YAML tag '%s' is not supported", tag);
    if (awaiting_key(y))
        return at(y, ev->start_mark, QN_ERR_UNSUPPORTED,
                  "complex (non-scalar) YAML mapping keys are not supported");
    if (y->depth >= QN_RECIPE_MAX_DEPTH)
        return at(y, ev->start_mark, QN_ERR_FORMAT, "YAML nested deeper than %d levels",
                  QN_RECIPE_MAX_DEPTH);
    qn_status st = count_node(y, ev->start_mark);
    if (st) return st;
    cJSON *c = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
    if (!c) return qn_error_set(y->err, QN_ERR_NOMEM, "%s: out of memory parsing YAML", y->name);
    if ((st = attach(y, c))) return st;
    y->stack[y->depth].node = c;
    y->stack[y->depth].key = NULL;
    y->stack[y->depth].is_map = is_map;
    y->depth++;
    return QN_OK;
}

static qn_status on_scalar(ystate *y, const yaml_event_t *ev) {
    const char *anchor = (const char *)ev->data.scalar.anchor;
    if (anchor)
        return at(y, ev->start_mark, QN_ERR_UNSUPPORTED,
                  "YAML anchors ('&%s') and aliases are not supported; write the values out", anchor);
    qn_status st = count_node(y, ev->start_mark);
    if (st) return st;
    if (awaiting_key(y)) {
        frame *f = &y->stack[y->depth - 1];
        const char *k = (const char *)ev->data.scalar.value;
        if (memchr(k, '\0', ev->data.scalar.length))
            return at(y, ev->start_mark, QN_ERR_FORMAT, "NUL character in a YAML key");
        if (cJSON_GetObjectItemCaseSensitive(f->node, k))
            return at(y, ev->start_mark, QN_ERR_FORMAT, "duplicate key '%s'", k);
        f->key = strdup(k);
        if (!f->key) return qn_error_set(y->err, QN_ERR_NOMEM, "%s: out of memory parsing YAML", y->name);
        return QN_OK;
    }
    cJSON *v = scalar_node(y, ev, &st);
    if (!v) return st;
    return attach(y, v);
}

static qn_status on_event(ystate *y, const yaml_event_t *ev, int *done) {
    switch (ev->type) {
    case YAML_STREAM_END_EVENT: *done = 1; return QN_OK;
    case YAML_DOCUMENT_START_EVENT:
        if (++y->docs > 1)
            return at(y, ev->start_mark, QN_ERR_FORMAT,
                      "several YAML documents ('---'); a recipe is a single document");
        return QN_OK;
    case YAML_ALIAS_EVENT:
        return at(y, ev->start_mark, QN_ERR_UNSUPPORTED,
                  "YAML aliases ('*%s') and anchors are not supported; write the values out",
                  (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT: return on_scalar(y, ev);
    case YAML_SEQUENCE_START_EVENT: return on_start(y, ev, 0);
    case YAML_MAPPING_START_EVENT: return on_start(y, ev, 1);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (y->depth > 0) {
            y->depth--;
            free(y->stack[y->depth].key);
            y->stack[y->depth].key = NULL;
        }
        return QN_OK;
    default: return QN_OK;
    }
}

static qn_status parser_error(ystate *y, const yaml_parser_t *p) {
    if (p->error == YAML_MEMORY_ERROR)
        return qn_error_set(y->err, QN_ERR_NOMEM, "%s: out of memory parsing YAML", y->name);
    const char *problem = p->problem ? p->problem : "syntax error";
    if (p->error == YAML_READER_ERROR)
        return qn_error_set(y->err, QN_ERR_FORMAT, "%s: malformed YAML: %s at byte %zu", y->name,
                            problem, (size_t)p->problem_offset);
    if (p->context)
        return at(y, p->problem_mark, QN_ERR_FORMAT, "malformed YAML: %s (%s, line %zu)", problem,
                  p->context, (size_t)p->context_mark.line + 1);
    return at(y, p->problem_mark, QN_ERR_FORMAT, "malformed YAML: %s", problem);
}

qn_status qnr_yaml_parse(const char *text, size_t len, const char *name, cJSON **out, qn_error *err) {
    if (!out || (!text && len)) return qn_error_set(err, QN_ERR_INVALID_ARG, "recipe: NULL argument");
    *out = NULL;
    name = name ? name : "recipe";
    if (len > QN_RECIPE_MAX_BYTES)
        return qn_error_set(err, QN_ERR_NOMEM, "%s: %zu bytes is more than the %zu-byte recipe limit",
                            name, len, QN_RECIPE_MAX_BYTES);
    ystate *y = calloc(1, sizeof *y);
    if (!y) return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory parsing YAML", name);
    y->name = name;
    y->err = err;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        free(y);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory parsing YAML", name);
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)(text ? text : ""), len);
    qn_status st = QN_OK;
    for (int done = 0; !done && !st;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            st = parser_error(y, &p);
            break;
        }
        st = on_event(y, &ev, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    for (int i = 0; i < y->depth; i++) free(y->stack[i].key);
    if (st) {
        cJSON_Delete(y->root);
    } else {
        *out = y->root;
    }
    free(y);
    return st;
}
