/* quench — src/recipe private interfaces: YAML -> cJSON, regex helpers shared by the recipe
 * parser (which checks every "re:" entry once) and the matcher. */
#ifndef QN_RECIPE_INTERNAL_H
#define QN_RECIPE_INTERNAL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "quench/recipe.h"
#include "quench/status.h"

struct qn_recipe {
    char *name;                  /* for error messages: the file name, or "command line" */
    char *yaml;                  /* source text, NUL-terminated */
    qn_modifier *mods;
    size_t n_mods, cap_mods;
    size_t *goff;                /* [n_mods] offset of each modifier's groups in `groups` */
    qn_quant_scheme *groups;     /* every modifier's groups, in recipe order (mods[i].groups points
                                  * into it, so plans can borrow one array) */
    char **group_names;
    size_t n_groups, cap_groups;
};

/* Parses YAML `text[0..len)` (one document) into a cJSON tree as PyYAML's safe_load would see it
 * (yaml_json.c documents the scalar rules and the deviations). *out is NULL for an empty document.
 * Anchors, aliases, tags other than the core ones, duplicate keys, complex keys, several documents,
 * more than QN_RECIPE_MAX_DEPTH levels and more than QNR_MAX_NODES nodes are errors
 * "<name>:<line>:<col>: ...". */
#define QNR_MAX_NODES 1000000
qn_status qnr_yaml_parse(const char *text, size_t len, const char *name, cJSON **out, qn_error *err);

/* A compiled "re:" pattern (PCRE2, UTF + UCP, anchored at the start = Python re.match). */
typedef struct qnr_regex qnr_regex;
/* `pattern` without the "re:" prefix. Error: "invalid regular expression 're:<pattern>': <PCRE2
 * message> at offset N" (the caller prefixes its context). */
qn_status qnr_regex_compile(const char *pattern, qnr_regex **out, qn_error *err);
/* 1 match, 0 no match, -1 error (err set). */
int qnr_regex_match(qnr_regex *re, const char *subject, qn_error *err);
void qnr_regex_free(qnr_regex *re);

#endif
