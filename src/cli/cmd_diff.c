/* quench diff A B [--json] [--all]: two checkpoints or config.json files side by side. The comparison
 * is src/plan/diff.c (qn_diff_paths); this file only formats it. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "quench/plan.h"

static const char *k_usage =
    "usage: quench diff A B [--json] [--all]\n"
    "\n"
    "Compares two checkpoint folders or config.json files (a file means config only):\n"
    "  - config.json: every key that differs or that one side lacks, nested keys flattened with dots,\n"
    "    values as written (1.0 stays 1.0; 1 and 1.0 are equal);\n"
    "  - quantization_config: its keys the same way; config groups by name (added, removed, changed\n"
    "    fields after filling in defaults); ignore lists as sets of entries and, when both sides have\n"
    "    tensors, as the Linear modules they match (regexes expanded);\n"
    "  - tensors, when both sides have them: names only in A or B, dtype or shape changes.\n"
    "\n"
    "Exit status: 0 compared (identical or not; --json has \"identical\"), 1 a side could not be read,\n"
    "2 usage error.\n";

#define SHOWN 20

static const char *val(const char *s) { return s ? s : "(absent)"; }

/* "abc..." when longer than lim (all: never); malloc'ed */
static char *cut(const char *s, size_t lim) {
    size_t l = strlen(s);
    char *b = malloc((l < lim ? l : lim) + 4);
    if (!b) return NULL;
    if (l <= lim) memcpy(b, s, l + 1);
    else snprintf(b, lim + 4, "%.*s...", (int)(lim - 3), s);
    return b;
}

/* rows of key / A / B, aligned; long values cut in the text output unless --all */
static void print_values(const qn_diff_value *v, size_t n, const char *indent, int all) {
    const size_t lim = all ? (size_t)1 << 30 : 60;
    size_t wk = 3, wa = 1;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(v[i].key), a = strlen(val(v[i].a));
        if (k > wk) wk = k;
        if (a > wa) wa = a;
    }
    if (wa > lim) wa = lim;
    printf("%s%-*s  %-*s  %s\n", indent, (int)wk, "key", (int)wa, "A", "B");
    for (size_t i = 0; i < n; i++) {
        char *a = cut(val(v[i].a), lim), *b = cut(val(v[i].b), lim);
        if (a && b) printf("%s%-*s  %-*s  %s\n", indent, (int)wk, v[i].key, (int)wa, a, b);
        free(a);
        free(b);
    }
}

static void print_list(const char *title, char **s, size_t n, int all) {
    if (!n) return;
    printf("    %s (%zu):", title, n);
    size_t lim = all ? n : (n < SHOWN ? n : SHOWN);
    for (size_t i = 0; i < lim; i++) printf("%s%s", i ? ", " : " ", s[i]);
    if (lim < n) printf(", ... %zu more (--all or --json)", n - lim);
    printf("\n");
}

static void shape_text(int nd, const int64_t *s, char *b, size_t n) {
    size_t k = (size_t)snprintf(b, n, "[");
    for (int i = 0; i < nd && k < n; i++) k += (size_t)snprintf(b + k, n - k, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (k < n) snprintf(b + k, n - k, "]");
}

static void print_text(const qn_diff *d, int all) {
    printf("A  %s\nB  %s\n\n", d->a_config, d->b_config);
    if (d->identical) {
        if (d->tensors_compared) printf("identical: config.json and tensor names, dtypes, shapes\n");
        else printf("identical config.json; tensors not compared (both sides need safetensors files)\n");
        return;
    }
    if (d->n_config) {
        printf("config.json: %zu key%s differ%s\n", d->n_config, d->n_config == 1 ? "" : "s", d->n_config == 1 ? "s" : "");
        print_values(d->config, d->n_config, "  ", all);
    } else {
        printf("config.json: same (outside quantization_config)\n");
    }
    printf("\n");
    if (!d->a_quantized && !d->b_quantized) {
        printf("quantization_config: neither has one\n");
    } else {
        printf("quantization_config%s\n", !d->a_quantized ? ": only B has one" : !d->b_quantized ? ": only A has one" : "");
        if (d->n_quant) print_values(d->quant, d->n_quant, "  ", all);
        else printf("  other keys: same\n");
        size_t total = d->n_groups + d->n_groups_same;
        printf("  config groups: %zu same%s\n", d->n_groups_same, total > d->n_groups_same ? ", differing:" : "");
        for (size_t i = 0; i < d->n_groups; i++) {
            const qn_diff_group *g = &d->groups[i];
            if (g->status == QN_DIFF_ONLY_A) printf("    %s: only in A\n", g->name);
            else if (g->status == QN_DIFF_ONLY_B) printf("    %s: only in B\n", g->name);
            else {
                printf("    %s: %zu field%s changed\n", g->name, g->n_fields, g->n_fields == 1 ? "" : "s");
                print_values(g->fields, g->n_fields, "      ", all);
            }
        }
        printf("  ignore: %zu entr%s in A, %zu in B; %zu only in A, %zu only in B (entries compared as text)\n",
               d->n_ignore_a, d->n_ignore_a == 1 ? "y" : "ies", d->n_ignore_b, d->n_ignore_only_a, d->n_ignore_only_b);
        print_list("only in A", d->ignore_only_a, d->n_ignore_only_a, all);
        print_list("only in B", d->ignore_only_b, d->n_ignore_only_b, all);
        if (d->ignore_expanded) {
            printf("  ignored Linear modules (regexes expanded against the tensors): %zu only in A, %zu only in B\n",
                   d->n_ignored_only_a, d->n_ignored_only_b);
            print_list("ignored only in A", d->ignored_only_a, d->n_ignored_only_a, all);
            print_list("ignored only in B", d->ignored_only_b, d->n_ignored_only_b, all);
        }
    }
    printf("\n");
    if (!d->tensors_compared) {
        printf("tensors: not compared (both sides need safetensors files)\n");
        return;
    }
    printf("tensors: %lld in A, %lld in B; %zu only in A, %zu only in B, %zu changed\n", (long long)d->n_tensors_a,
           (long long)d->n_tensors_b, d->n_tensors_only_a, d->n_tensors_only_b, d->n_tensors_changed);
    print_list("only in A", d->tensors_only_a, d->n_tensors_only_a, all);
    print_list("only in B", d->tensors_only_b, d->n_tensors_only_b, all);
    size_t lim = all ? d->n_tensors_changed : (d->n_tensors_changed < SHOWN ? d->n_tensors_changed : SHOWN);
    for (size_t i = 0; i < lim; i++) {
        const qn_diff_tensor *t = &d->tensors_changed[i];
        char a[128], b[128];
        shape_text(t->a_ndim, t->a_shape, a, sizeof a);
        shape_text(t->b_ndim, t->b_shape, b, sizeof b);
        printf("    %s: %s %s -> %s %s\n", t->name, qn_dtype_name(t->a_dtype), a, qn_dtype_name(t->b_dtype), b);
    }
    if (lim < d->n_tensors_changed) printf("    ... %zu more changed (--all or --json)\n", d->n_tensors_changed - lim);
}

/* a JSON value text back into cJSON (raw when it does not parse) */
static cJSON *value_json(const char *s) {
    if (!s) return cJSON_CreateNull();
    cJSON *j = cJSON_Parse(s);
    return j ? j : cJSON_CreateString(s);
}

static cJSON *values_json(const qn_diff_value *v, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key", v[i].key);
        cJSON_AddItemToObject(o, "a", value_json(v[i].a));
        cJSON_AddItemToObject(o, "b", value_json(v[i].b));
        cJSON_AddStringToObject(o, "a_text", val(v[i].a));
        cJSON_AddStringToObject(o, "b_text", val(v[i].b));
        cJSON_AddBoolToObject(o, "in_a", v[i].a != NULL);
        cJSON_AddBoolToObject(o, "in_b", v[i].b != NULL);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *strings_json(char **s, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(s[i]));
    return a;
}

static cJSON *shape_json(int nd, const int64_t *s) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < nd; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)s[i]));
    return a;
}

static int print_json(const qn_diff *d) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "a", d->a_config);
    cJSON_AddStringToObject(root, "b", d->b_config);
    cJSON_AddBoolToObject(root, "identical", d->identical);
    cJSON_AddItemToObject(root, "config", values_json(d->config, d->n_config));
    cJSON *q = cJSON_AddObjectToObject(root, "quantization_config");
    cJSON_AddBoolToObject(q, "in_a", d->a_quantized);
    cJSON_AddBoolToObject(q, "in_b", d->b_quantized);
    cJSON_AddItemToObject(q, "keys", values_json(d->quant, d->n_quant));
    cJSON_AddNumberToObject(q, "groups_same", (double)d->n_groups_same);
    cJSON *gs = cJSON_AddArrayToObject(q, "groups");
    for (size_t i = 0; i < d->n_groups; i++) {
        const qn_diff_group *g = &d->groups[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", g->name);
        cJSON_AddStringToObject(o, "status", g->status == QN_DIFF_ONLY_A ? "only_a" : g->status == QN_DIFF_ONLY_B ? "only_b" : "changed");
        cJSON_AddItemToObject(o, "fields", values_json(g->fields, g->n_fields));
        cJSON_AddItemToArray(gs, o);
    }
    cJSON *ig = cJSON_AddObjectToObject(q, "ignore");
    cJSON_AddNumberToObject(ig, "count_a", (double)d->n_ignore_a);
    cJSON_AddNumberToObject(ig, "count_b", (double)d->n_ignore_b);
    cJSON_AddItemToObject(ig, "only_a", strings_json(d->ignore_only_a, d->n_ignore_only_a));
    cJSON_AddItemToObject(ig, "only_b", strings_json(d->ignore_only_b, d->n_ignore_only_b));
    cJSON_AddBoolToObject(ig, "expanded", d->ignore_expanded);
    if (d->ignore_expanded) {
        cJSON_AddItemToObject(ig, "modules_only_a", strings_json(d->ignored_only_a, d->n_ignored_only_a));
        cJSON_AddItemToObject(ig, "modules_only_b", strings_json(d->ignored_only_b, d->n_ignored_only_b));
    }
    cJSON *t = cJSON_AddObjectToObject(root, "tensors");
    cJSON_AddBoolToObject(t, "compared", d->tensors_compared);
    if (d->tensors_compared) {
        cJSON_AddNumberToObject(t, "count_a", (double)d->n_tensors_a);
        cJSON_AddNumberToObject(t, "count_b", (double)d->n_tensors_b);
        cJSON_AddItemToObject(t, "only_a", strings_json(d->tensors_only_a, d->n_tensors_only_a));
        cJSON_AddItemToObject(t, "only_b", strings_json(d->tensors_only_b, d->n_tensors_only_b));
        cJSON *ch = cJSON_AddArrayToObject(t, "changed");
        for (size_t i = 0; i < d->n_tensors_changed; i++) {
            const qn_diff_tensor *x = &d->tensors_changed[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", x->name);
            cJSON_AddStringToObject(o, "a_dtype", qn_dtype_name(x->a_dtype));
            cJSON_AddItemToObject(o, "a_shape", shape_json(x->a_ndim, x->a_shape));
            cJSON_AddStringToObject(o, "b_dtype", qn_dtype_name(x->b_dtype));
            cJSON_AddItemToObject(o, "b_shape", shape_json(x->b_ndim, x->b_shape));
            cJSON_AddItemToArray(ch, o);
        }
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) return cli_failf("diff", "out of memory printing JSON");
    printf("%s\n", s);
    free(s);
    return 0;
}

int cmd_diff(int argc, char **argv) {
    int json = 0, all = 0;
    const cli_opt opts[] = {
        {"--json", CLI_FLAG, &json, "machine-readable output", NULL},
        {"--all", CLI_FLAG, &all, "list everything, values uncut (text output)", NULL},
        {NULL, 0, NULL, NULL, NULL},
    };
    char *pos[2];
    int npos = 0;
    int rc = cli_parse(argc, argv, opts, k_usage, pos, 2, &npos);
    if (rc == 1) return 0;
    if (rc) return 2;
    if (npos != 2) {
        fprintf(stderr, "quench diff: expected two arguments A and B (see quench diff --help)\n");
        return 2;
    }
    qn_error err = {0};
    qn_diff *d;
    if (qn_diff_paths(pos[0], pos[1], &d, &err)) return cli_fail("diff", &err);
    int out = json ? print_json(d) : (print_text(d, all), 0);
    qn_diff_free(d);
    return out;
}
