/* quench inspect CHECKPOINT [--json] [--all]: a checkpoint's quantization_config in plain words, what
 * vLLM makes of it, and whether the tensors match. The analysis is src/plan/inspect.c
 * (qn_inspect_path); this file only formats it. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "quench/plan.h"

static const char *k_usage =
    "usage: quench inspect CHECKPOINT [--json] [--all]\n"
    "\n"
    "Describes a checkpoint folder (or a config.json file: config analysis only): its config.json\n"
    "architecture, the quantization_config (each group's targets, weights and activations, format\n"
    "and matching preset), how many Linear layers each group, the ignore list and nothing at all\n"
    "take, the ignore list's entries (unused ones, non-Linear ones, fused q/k/v or gate/up shards\n"
    "split), KV-cache and sparsity settings, each scheme's vLLM kernel with its minimum GPU compute\n"
    "capability and the GPUs of `quench plan --gpu list` that can run it, and whether every tensor\n"
    "has the name, dtype and shape the config implies. Works on unquantized folders too.\n"
    "\n"
    "Exit status: 0 inspected, no errors found; 3 inspected, errors found (mismatched tensors,\n"
    "configurations vLLM refuses); 1 the checkpoint could not be read; 2 usage error.\n";

#define PER_KIND_SHOWN 12

/* ------------------------------------------------------------------------------------------ */
/* aligned tables                                                                              */

#define TBL_COLS 8
#define TBL_CELL 160

typedef struct {
    int ncol;
    size_t n, cap;
    char (*cells)[TBL_COLS][TBL_CELL];
    int width[TBL_COLS];
} table;

static void tbl_row(table *t, ...) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        void *p = realloc(t->cells, cap * sizeof *t->cells);
        if (!p) return;
        t->cells = p;
        t->cap = cap;
    }
    va_list ap;
    va_start(ap, t);
    for (int c = 0; c < t->ncol; c++) {
        const char *s = va_arg(ap, const char *);
        snprintf(t->cells[t->n][c], TBL_CELL, "%s", s ? s : "");
        int w = (int)strlen(t->cells[t->n][c]);
        if (w > t->width[c]) t->width[c] = w;
    }
    va_end(ap);
    t->n++;
}

static void tbl_print(table *t, const char *indent) {
    for (size_t r = 0; r < t->n; r++) {
        printf("%s", indent);
        for (int c = 0; c < t->ncol; c++) {
            if (c == t->ncol - 1) printf("%s", t->cells[r][c]);
            else printf("%-*s  ", t->width[c], t->cells[r][c]);
        }
        printf("\n");
    }
    free(t->cells);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------------------------ */

static const char *cc_text(int cc, char *b, size_t n) {
    if (cc == 1) snprintf(b, n, "any (CPU kernels)");
    else snprintf(b, n, "%d.%d", cc / 10, cc % 10);
    return b;
}

static void join_targets(const qn_quant_scheme *s, char *b, size_t n) {
    size_t k = 0;
    b[0] = 0;
    for (size_t i = 0; i < s->n_targets && k + 1 < n; i++)
        k += (size_t)snprintf(b + k, n - k, "%s%s", i ? ", " : "", s->targets[i]);
    if (!s->n_targets) snprintf(b, n, "(none)");
}

static void print_gpus(const qn_inspect_group *g) {
    int n = 0;
    const qn_gpu_info *gpus = qn_plan_gpu_table(&n);
    if (n > g->n_gpus) n = g->n_gpus;
    const char *labels[3] = {"cannot run", g->fallback[0] ? "fallback" : "", "runs on"};
    for (int want = 2; want >= 0; want--) {
        if (want == 1 && !g->fallback[0]) continue;
        char line[1024];
        size_t k = 0;
        line[0] = 0;
        for (int i = 0; i < n; i++) {
            if (g->gpu_ok[i] != want) continue;
            char cc[24];
            k += (size_t)snprintf(line + k, k < sizeof line ? sizeof line - k : 0, "%s%s (%s)", k ? ", " : "",
                                  gpus[i].name, cc_text(gpus[i].cc, cc, sizeof cc));
            if (k >= sizeof line) break;
        }
        if (want == 1 && !k) continue;
        if (want == 1)
            printf("      %-11s %s: %s\n", labels[want], g->fallback, line);
        else
            printf("      %-11s %s\n", labels[want], k ? line : "-");
    }
}

static void print_text(const qn_inspect *r, int all) {
    char a[64], b[64];
    printf("Checkpoint %s\n", r->path);
    printf("  config.json   %s: %s%s%s%s%s%s%s\n", r->config_path, r->architecture[0] ? r->architecture : "(no architectures)",
           r->model_type[0] ? " (" : "", r->model_type, r->model_type[0] ? ")" : "", r->torch_dtype[0] ? ", " : "",
           r->torch_dtype, r->arch_known ? "" : "; architecture not supported by quench (tensors alone define the modules)");
    if (r->has_tensors)
        printf("  tensors       %lld in %lld file(s), %s; model dtype %s\n", (long long)r->n_tensors, (long long)r->n_files,
               cli_bytes((double)r->tensor_bytes, a, sizeof a), r->has_model_dtype ? qn_dtype_name(r->model_dtype) : "?");
    else
        printf("  tensors       none (config analysis only; tensor checks skipped)\n");
    if (!r->quantized) {
        printf("  quantization  none: a plain (unquantized) checkpoint\n");
    } else if (r->quant_method[0] && strcmp(r->quant_method, "compressed-tensors")) {
        printf("  quantization  quant_method %s (not compressed-tensors; not analysed)\n", r->quant_method);
    } else {
        printf("  quantization  compressed-tensors %s, format %s, status %s\n", r->version[0] ? r->version : "(no version)",
               r->format[0] ? r->format : "(none)", r->status[0] ? r->status : "(none)");
    }
    printf("\n");

    if (r->n_groups) {
        printf("Config groups\n");
        table t = {.ncol = 7};
        tbl_row(&t, "group", "targets", "weights", "input activations", "format", "preset", "Linears");
        for (size_t i = 0; i < r->n_groups; i++) {
            const qn_inspect_group *g = &r->groups[i];
            char tg[TBL_CELL], nl[64];
            join_targets(&g->scheme, tg, sizeof tg);
            if (g->n_bad) snprintf(nl, sizeof nl, "%lld (%lld with mismatched tensors)", (long long)g->n_linear, (long long)g->n_bad);
            else snprintf(nl, sizeof nl, "%lld", (long long)g->n_linear);
            tbl_row(&t, g->name, tg, g->weights, g->inputs, g->format, g->preset[0] ? g->preset : "-",
                    r->modules_from == QN_MODULES_NONE ? "?" : nl);
        }
        tbl_print(&t, "  ");
        printf("\n");
    }

    if (r->modules_from != QN_MODULES_NONE) {
        const char *from = r->modules_from == QN_MODULES_TENSORS ? "the tensors" : "config.json";
        if (!r->quantized)
            printf("Linear layers   %lld (from %s), all unquantized", (long long)r->n_linear, from);
        else
            printf("Linear layers   %lld (from %s): %lld quantized, %lld ignored, %lld matched by nothing",
                   (long long)r->n_linear, from, (long long)r->n_quantized, (long long)r->n_ignored,
                   (long long)r->n_unmatched);
        if (r->n_unquantized_group) printf(", %lld in groups without weights", (long long)r->n_unquantized_group);
        printf("\n");
        if (r->n_mtp_modules)
            printf("                + %lld Linear modules of MTP layers (index >= num_hidden_layers = %lld): not "
                   "loaded by transformers, not checked\n", (long long)r->n_mtp_modules, (long long)r->num_hidden_layers);
        printf("\n");
    }

    if (r->quantized && (!r->quant_method[0] || !strcmp(r->quant_method, "compressed-tensors"))) {
        printf("Ignore list     %zu entr%s\n", r->n_ignore, r->n_ignore == 1 ? "y" : "ies");
        if (r->n_ignore && r->modules_from != QN_MODULES_NONE) {
            table t = {.ncol = 4};
            tbl_row(&t, "entry", "Linears", "effect", "other modules");
            size_t shown = 0;
            for (size_t i = 0; i < r->n_ignore; i++) {
                const qn_inspect_ignore *e = &r->ignore[i];
                if (!all && shown >= 24) continue;
                char x[32], y[64], z[48];
                snprintf(x, sizeof x, "%lld", (long long)e->n_linear);
                if (e->n_effective) snprintf(y, sizeof y, "%lld kept unquantized", (long long)e->n_effective);
                else if (e->n_linear) snprintf(y, sizeof y, "none (not targeted anyway)");
                else snprintf(y, sizeof y, "-");
                if (e->n_mtp) snprintf(z, sizeof z, "%lld (+%lld MTP)", (long long)e->n_other, (long long)e->n_mtp);
                else snprintf(z, sizeof z, "%lld", (long long)e->n_other);
                tbl_row(&t, e->entry, x, y, z);
                shown++;
            }
            tbl_print(&t, "  ");
            if (shown < r->n_ignore) printf("  ... %zu more (--all lists them)\n", r->n_ignore - shown);
        }
        printf("\n");
        if (r->has_kv_cache) {
            const qn_quant_args *kv = &r->kv_cache;
            printf("KV cache        %s%d %s %s; vLLM %s", kv->type == QN_QTYPE_FLOAT ? "fp" : "int", kv->num_bits,
                   kv->strategy == QN_STRATEGY_ATTN_HEAD ? "attn_head" : "tensor", kv->symmetric ? "sym" : "asym",
                   r->kv_cache_vllm_ok ? "accepts it (fp8 KV cache)" : "refuses it (needs fp8, tensor, symmetric)");
            if (r->has_tensors)
                printf("; k_scale/v_scale in %lld of %lld attention blocks", (long long)r->n_kv_scales,
                       (long long)r->n_attention);
            printf("\n");
        } else {
            printf("KV cache        not quantized\n");
        }
        if (r->has_sparsity)
            printf("Sparsity        %s, structure %s, global sparsity %.4f\n", r->sparsity_format,
                   r->sparsity_structure[0] ? r->sparsity_structure : "unstructured", r->global_sparsity);
        else
            printf("Sparsity        none\n");
        if (r->has_transforms) printf("Transforms      present (not checked)\n");
        printf("\n");

        if (r->n_groups) {
            printf("vLLM kernels (spec §6.2; GPUs of the built-in table)\n");
            for (size_t i = 0; i < r->n_groups; i++) {
                const qn_inspect_group *g = &r->groups[i];
                printf("  %s", g->name);
                if (g->preset[0]) printf(" (%s)", g->preset);
                if (!g->vllm_scheme[0]) {
                    printf(": no vLLM scheme\n");
                } else if (g->min_cc == 0) {
                    printf(": %s\n", g->vllm_scheme);
                } else {
                    printf(": %s, compute capability %s%s", g->vllm_scheme, g->exact_cc ? "exactly " : ">= ",
                           cc_text(g->min_cc, a, sizeof a));
                    if (g->fallback[0]) printf(" (%s from %s)", g->fallback, cc_text(g->fallback_cc, b, sizeof b));
                    printf("\n");
                    print_gpus(g);
                }
                if (g->vllm_note[0]) printf("      %-11s %s\n", "note", g->vllm_note);
            }
            printf("\n");
        }
    }

    if (r->has_tensors)
        printf("Tensors         %lld Linear modules checked against their decisions: %lld mismatch%s\n\n",
               (long long)r->n_checked, (long long)r->n_mismatches, r->n_mismatches == 1 ? "" : "es");

    printf("Findings        %lld error%s, %lld warning%s, %lld note%s\n", (long long)r->n_by_level[QN_FIND_ERROR],
           r->n_by_level[QN_FIND_ERROR] == 1 ? "" : "s", (long long)r->n_by_level[QN_FIND_WARNING],
           r->n_by_level[QN_FIND_WARNING] == 1 ? "" : "s", (long long)r->n_by_level[QN_FIND_NOTE],
           r->n_by_level[QN_FIND_NOTE] == 1 ? "" : "s");
    for (int lv = QN_FIND_ERROR; lv <= QN_FIND_NOTE; lv++) {
        for (int k = 0; k < QN_FIND_KIND_COUNT; k++) {
            int64_t shown = 0, total = 0;
            for (size_t i = 0; i < r->n_findings; i++) {
                const qn_finding *f = &r->findings[i];
                if ((int)f->level != lv || (int)f->kind != k) continue;
                total++;
                if (!all && shown >= PER_KIND_SHOWN) continue;
                printf("  %-7s %-17s %s%s%s\n", qn_find_level_name(f->level), qn_find_kind_name(f->kind), f->subject,
                       f->subject[0] ? ": " : "", f->message);
                shown++;
            }
            if (total > shown)
                printf("  %-7s %-17s ... %lld more (--all lists them)\n", qn_find_level_name((qn_find_level)lv),
                       qn_find_kind_name((qn_find_kind)k), (long long)(total - shown));
        }
    }
    for (int k = 0; k < QN_FIND_KIND_COUNT; k++) {
        int64_t stored = 0;
        for (size_t i = 0; i < r->n_findings; i++) stored += (int)r->findings[i].kind == k;
        if (r->n_by_kind[k] > stored)
            printf("  %-7s %-17s ... and %lld more not listed (at most %d of a kind are kept)\n", "",
                   qn_find_kind_name((qn_find_kind)k), (long long)(r->n_by_kind[k] - stored),
                   QN_INSPECT_MAX_FINDINGS_PER_KIND);
    }
}

static cJSON *args_json(const qn_quant_args *a) {
    cJSON *j = NULL;
    qn_error err = {0};
    if (qn_quant_args_to_json(a, &j, &err)) return cJSON_CreateNull();
    return j;
}

static int print_json(const qn_inspect *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "path", r->path);
    cJSON_AddStringToObject(root, "config", r->config_path);
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "architecture", r->architecture);
    cJSON_AddStringToObject(m, "model_type", r->model_type);
    cJSON_AddStringToObject(m, "torch_dtype", r->torch_dtype);
    cJSON_AddBoolToObject(m, "architecture_supported", r->arch_known);
    cJSON_AddNumberToObject(m, "num_hidden_layers", (double)r->num_hidden_layers);
    cJSON_AddNumberToObject(m, "num_experts", (double)r->num_experts);
    cJSON *t = cJSON_AddObjectToObject(root, "tensors");
    cJSON_AddBoolToObject(t, "present", r->has_tensors);
    cJSON_AddNumberToObject(t, "count", (double)r->n_tensors);
    cJSON_AddNumberToObject(t, "files", (double)r->n_files);
    cJSON_AddNumberToObject(t, "bytes", (double)r->tensor_bytes);
    if (r->has_model_dtype) cJSON_AddStringToObject(t, "model_dtype", qn_dtype_name(r->model_dtype));
    else cJSON_AddNullToObject(t, "model_dtype");
    cJSON_AddNumberToObject(t, "modules_checked", (double)r->n_checked);
    cJSON_AddNumberToObject(t, "mismatches", (double)r->n_mismatches);
    cJSON_AddStringToObject(root, "modules_from", r->modules_from == QN_MODULES_TENSORS ? "tensors"
                                                  : r->modules_from == QN_MODULES_CONFIG ? "config" : "none");

    cJSON *q = cJSON_AddObjectToObject(root, "quantization");
    cJSON_AddBoolToObject(q, "present", r->quantized);
    cJSON_AddStringToObject(q, "quant_method", r->quant_method);
    cJSON_AddStringToObject(q, "version", r->version);
    cJSON_AddStringToObject(q, "format", r->format);
    cJSON_AddStringToObject(q, "status", r->status);
    cJSON *gs = cJSON_AddArrayToObject(q, "groups");
    for (size_t i = 0; i < r->n_groups; i++) {
        const qn_inspect_group *g = &r->groups[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", g->name);
        cJSON *tg = cJSON_AddArrayToObject(o, "targets");
        for (size_t k = 0; k < g->scheme.n_targets; k++) cJSON_AddItemToArray(tg, cJSON_CreateString(g->scheme.targets[k]));
        cJSON_AddStringToObject(o, "format", g->format);
        if (g->preset[0]) cJSON_AddStringToObject(o, "preset", g->preset);
        else cJSON_AddNullToObject(o, "preset");
        cJSON_AddStringToObject(o, "weights_summary", g->weights);
        cJSON_AddStringToObject(o, "input_activations_summary", g->inputs);
        cJSON_AddItemToObject(o, "weights", g->scheme.has_weights ? args_json(&g->scheme.weights) : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "input_activations",
                              g->scheme.has_input_activations ? args_json(&g->scheme.input_activations) : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "output_activations",
                              g->scheme.has_output_activations ? args_json(&g->scheme.output_activations) : cJSON_CreateNull());
        cJSON_AddNumberToObject(o, "linear", (double)g->n_linear);
        cJSON_AddNumberToObject(o, "checked", (double)g->n_checked);
        cJSON_AddNumberToObject(o, "mismatched", (double)g->n_bad);
        cJSON *v = cJSON_AddObjectToObject(o, "vllm");
        if (g->vllm_scheme[0]) cJSON_AddStringToObject(v, "scheme", g->vllm_scheme);
        else cJSON_AddNullToObject(v, "scheme");
        cJSON_AddNumberToObject(v, "min_capability", g->min_cc / 10.0);
        cJSON_AddBoolToObject(v, "exact_capability", g->exact_cc);
        if (g->fallback[0]) {
            cJSON_AddStringToObject(v, "fallback", g->fallback);
            cJSON_AddNumberToObject(v, "fallback_capability", g->fallback_cc / 10.0);
        }
        cJSON_AddStringToObject(v, "note", g->vllm_note);
        int n = 0;
        const qn_gpu_info *gpus = qn_plan_gpu_table(&n);
        if (n > g->n_gpus) n = g->n_gpus;
        cJSON *ok = cJSON_AddArrayToObject(v, "gpus_native");
        cJSON *fb = cJSON_AddArrayToObject(v, "gpus_fallback");
        cJSON *no = cJSON_AddArrayToObject(v, "gpus_cannot");
        for (int k = 0; k < n; k++) {
            cJSON *dst = g->gpu_ok[k] == 2 ? ok : g->gpu_ok[k] == 1 ? fb : g->gpu_ok[k] == 0 ? no : NULL;
            if (dst) cJSON_AddItemToArray(dst, cJSON_CreateString(gpus[k].name));
        }
        cJSON_AddItemToArray(gs, o);
    }
    cJSON *ig = cJSON_AddArrayToObject(q, "ignore");
    for (size_t i = 0; i < r->n_ignore; i++) {
        const qn_inspect_ignore *e = &r->ignore[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "entry", e->entry);
        cJSON_AddBoolToObject(o, "regex", e->is_regex);
        cJSON_AddNumberToObject(o, "linear", (double)e->n_linear);
        cJSON_AddNumberToObject(o, "effective", (double)e->n_effective);
        cJSON_AddNumberToObject(o, "other", (double)e->n_other);
        cJSON_AddNumberToObject(o, "mtp", (double)e->n_mtp);
        cJSON_AddBoolToObject(o, "names_tensor", e->names_tensor);
        cJSON_AddBoolToObject(o, "by_class", e->by_class);
        cJSON_AddItemToArray(ig, o);
    }
    if (r->has_kv_cache) {
        cJSON *kv = cJSON_AddObjectToObject(q, "kv_cache");
        cJSON_AddItemToObject(kv, "scheme", args_json(&r->kv_cache));
        cJSON_AddBoolToObject(kv, "vllm_ok", r->kv_cache_vllm_ok);
        cJSON_AddNumberToObject(kv, "attention_blocks", (double)r->n_attention);
        cJSON_AddNumberToObject(kv, "scales_found", (double)r->n_kv_scales);
    } else {
        cJSON_AddNullToObject(q, "kv_cache");
    }
    if (r->has_sparsity) {
        cJSON *sp = cJSON_AddObjectToObject(q, "sparsity");
        cJSON_AddStringToObject(sp, "format", r->sparsity_format);
        cJSON_AddStringToObject(sp, "structure", r->sparsity_structure);
        cJSON_AddNumberToObject(sp, "global_sparsity", r->global_sparsity);
        cJSON_AddNumberToObject(sp, "linear", (double)r->n_sparse);
    } else {
        cJSON_AddNullToObject(q, "sparsity");
    }
    cJSON_AddBoolToObject(q, "transforms", r->has_transforms);

    cJSON *l = cJSON_AddObjectToObject(root, "linear");
    cJSON_AddNumberToObject(l, "total", (double)r->n_linear);
    cJSON_AddNumberToObject(l, "quantized", (double)r->n_quantized);
    cJSON_AddNumberToObject(l, "ignored", (double)r->n_ignored);
    cJSON_AddNumberToObject(l, "unmatched", (double)r->n_unmatched);
    cJSON_AddNumberToObject(l, "in_groups_without_weights", (double)r->n_unquantized_group);
    cJSON_AddNumberToObject(l, "mtp_modules", (double)r->n_mtp_modules);
    cJSON *im = cJSON_AddArrayToObject(l, "ignored_modules");
    for (size_t i = 0; i < r->n_ignored_modules; i++) cJSON_AddItemToArray(im, cJSON_CreateString(r->ignored_modules[i]));

    cJSON *fc = cJSON_AddObjectToObject(root, "finding_counts");
    cJSON_AddNumberToObject(fc, "error", (double)r->n_by_level[QN_FIND_ERROR]);
    cJSON_AddNumberToObject(fc, "warning", (double)r->n_by_level[QN_FIND_WARNING]);
    cJSON_AddNumberToObject(fc, "note", (double)r->n_by_level[QN_FIND_NOTE]);
    cJSON *bk = cJSON_AddObjectToObject(fc, "by_kind");
    for (int k = 0; k < QN_FIND_KIND_COUNT; k++)
        cJSON_AddNumberToObject(bk, qn_find_kind_name((qn_find_kind)k), (double)r->n_by_kind[k]);
    cJSON *fs = cJSON_AddArrayToObject(root, "findings");
    for (size_t i = 0; i < r->n_findings; i++) {
        const qn_finding *f = &r->findings[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "level", qn_find_level_name(f->level));
        cJSON_AddStringToObject(o, "kind", qn_find_kind_name(f->kind));
        cJSON_AddStringToObject(o, "subject", f->subject);
        cJSON_AddStringToObject(o, "message", f->message);
        cJSON_AddItemToArray(fs, o);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) return cli_failf("inspect", "out of memory printing JSON");
    printf("%s\n", s);
    free(s);
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    int json = 0, all = 0;
    const cli_opt opts[] = {
        {"--json", CLI_FLAG, &json, "machine-readable output", NULL},
        {"--all", CLI_FLAG, &all, "list every ignore entry and finding (text output)", NULL},
        {NULL, 0, NULL, NULL, NULL},
    };
    char *pos[1];
    int npos = 0;
    int rc = cli_parse(argc, argv, opts, k_usage, pos, 1, &npos);
    if (rc == 1) return 0;
    if (rc) return 2;
    if (npos != 1) {
        fprintf(stderr, "quench inspect: expected one CHECKPOINT argument (see quench inspect --help)\n");
        return 2;
    }
    qn_error err = {0};
    qn_inspect *r;
    if (qn_inspect_path(pos[0], &r, &err)) return cli_fail("inspect", &err);
    int out = json ? print_json(r) : (print_text(r, all), 0);
    int errors = r->n_by_level[QN_FIND_ERROR] > 0;
    qn_inspect_free(r);
    if (out) return out;
    return errors ? 3 : 0;
}
