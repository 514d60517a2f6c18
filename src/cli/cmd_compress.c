/* quench compress MODEL -o OUT (--recipe FILE | --scheme NAME ...): data-free (round-to-nearest)
 * compression to a compressed-tensors checkpoint. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "quench/config.h"
#include "quench/eval.h"
#include "quench/calib.h"
#include "quench/export.h"
#include "quench/pipeline.h"
#include "quench/recipe.h"
#include "quench/safetensors.h"

#define MAX_LIST 4096

typedef struct {
    char *items[MAX_LIST];
    size_t n;
} str_list;

static void list_free(str_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    l->n = 0;
}

/* Appends the comma-separated entries of v (empty entries dropped). */
static int list_add(str_list *l, const char *v) {
    const char *p = v;
    while (1) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len) {
            if (l->n >= MAX_LIST) return -1;
            char *s = malloc(len + 1);
            if (!s) return -1;
            memcpy(s, p, len);
            s[len] = 0;
            l->items[l->n++] = s;
        }
        if (!c) break;
        p = c + 1;
    }
    return 0;
}


typedef struct {
    cli_progress p;
} compress_progress;

static void progress_cb(void *user, int64_t done, int64_t total, uint64_t bytes_done, uint64_t bytes_total) {
    compress_progress *cp = user;
    if (!cp->p.enabled) return;
    double t = cli_now();
    if (t - cp->p.last < 0.2 && done != total) return;
    cp->p.last = t;
    double el = t - cp->p.t0;
    double mbs = el > 0 ? (double)bytes_done / el / 1e6 : 0;
    double eta = bytes_done > 0 ? el * (double)(bytes_total - bytes_done) / (double)bytes_done : 0;
    fprintf(stderr, "\rcompress: layer %lld/%lld  %.1f MB/s  ETA %.1fs   ", (long long)done, (long long)total, mbs, eta);
}

/* One line naming what in the recipe needs calibration data. */
static void calibration_reason(const qn_recipe *r, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < qn_recipe_modifier_count(r) && k < n; i++) {
        const qn_modifier *m = qn_recipe_modifier(r, i);
        const char *why = NULL;
        char tmp[256];
        if (m->kind != QN_MOD_QUANTIZATION) {
            snprintf(tmp, sizeof tmp, "%s (runs on calibration activations)", qn_modifier_kind_name(m->kind));
            why = tmp;
        } else if (m->has_kv_cache_scheme) {
            why = "kv_cache_scheme (k_scale/v_scale come from calibration)";
        } else {
            for (size_t g = 0; g < m->n_groups && !why; g++) {
                const qn_quant_scheme *s = &m->groups[g];
                if (s->has_weights && !strcmp(s->weights.observer, "imatrix_mse")) {
                    snprintf(tmp, sizeof tmp, "the imatrix_mse observer of config group %zu (activation statistics)", g);
                    why = tmp;
                } else if (s->has_input_activations && s->input_activations.dynamic != QN_DYNAMIC_TRUE) {
                    snprintf(tmp, sizeof tmp, "static input activations of config group %zu (input_scale%s)", g,
                             s->input_activations.dynamic == QN_DYNAMIC_LOCAL ? "/input_global_scale" : "");
                    why = tmp;
                } else if (s->has_output_activations && s->output_activations.dynamic != QN_DYNAMIC_TRUE) {
                    snprintf(tmp, sizeof tmp, "static output activations of config group %zu", g);
                    why = tmp;
                }
            }
        }
        if (why) k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? "; " : "", why);
    }
    if (!buf[0]) snprintf(buf, n, "the recipe");
}

static void sample(const char *dir, const char *prompt) {
    qn_model_config cfg;
    qn_error err = {0};
    if (qn_config_load_dir(dir, &cfg, &err)) return;
    int ok = qn_config_forward_supported(&cfg);
    qn_config_free(&cfg);
    if (!ok) {
        printf("sample          (skipped: quench has no forward pass for this architecture)\n");
        return;
    }
    qn_model *m;
    qn_tokenizer *tok;
    if (cli_load_model("compress", dir, 0, &m, &tok, NULL)) return;
    int32_t *pids = NULL;
    size_t pn = 0;
    qn_llm *llm = NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    char *text = NULL;
    const int64_t max_new = 32;
    if (qn_tokenizer_encode(tok, prompt, strlen(prompt), 1, &pids, &pn, &err)) goto fail;
    if (pn == 0) { free(pids); cli_unload_model(m, tok, NULL); return; }
    int64_t ctx = (int64_t)pn + max_new;
    if (ctx > m->cfg.max_position_embeddings) ctx = m->cfg.max_position_embeddings;
    if (ctx <= (int64_t)pn) goto done;
    if (qn_llm_create(m, ctx, &llm, &err)) goto fail;
    qn_gen_opts o = {.max_new_tokens = ctx - (int64_t)pn, .temperature = 0, .top_p = 1, .seed = 0,
                     .stop_ids = m->cfg.eos_token_ids, .n_stop = m->cfg.n_eos};
    if (qn_generate(llm, pids, (int64_t)pn, &o, &ids, &n, &err)) goto fail;
    if (qn_tokenizer_decode(tok, ids, (size_t)n, 1, &text, &err)) goto fail;
    for (char *c = text; *c; c++)
        if (*c == '\n') *c = ' ';
    printf("sample          %s\n", text);
    goto done;
fail:
    cli_fail("compress", &err);
done:
    free(text);
    free(ids);
    free(pids);
    cli_unload_model(m, tok, llm);
}

/* 1 when every modifier is a QuantizationModifier or GPTQModifier without kv-cache or static
 * activation scales (what the calibration pipeline runs today). */
static int gptq_only(const qn_recipe *r) {
    for (size_t i = 0; i < qn_recipe_modifier_count(r); i++) {
        const qn_modifier *m = qn_recipe_modifier(r, i);
        if (m->kind != QN_MOD_QUANTIZATION && m->kind != QN_MOD_GPTQ && m->kind != QN_MOD_SPARSEGPT &&
            m->kind != QN_MOD_SMOOTHQUANT && m->kind != QN_MOD_AWQ)
            return 0;
        for (size_t g = 0; g < m->n_groups; g++) {
            const qn_quant_scheme *s = &m->groups[g];
            if (s->has_input_activations && s->input_activations.dynamic == QN_DYNAMIC_LOCAL) return 0;
            if (s->has_output_activations && s->output_activations.dynamic == QN_DYNAMIC_FALSE) return 0;
            if (s->has_weights && !strcmp(s->weights.observer, "imatrix_mse")) return 0;
        }
    }
    return 1;
}

static void pipeline_progress(void *user, int64_t layer, int64_t n_layers, const char *phase) {
    compress_progress *cp = user;
    if (!cp->p.enabled) return;
    double el = cli_now() - cp->p.t0;
    fprintf(stderr, "\rcompress: layer %lld/%lld %-10s %.1fs elapsed, ETA %.1fs   ", (long long)layer + 1, (long long)n_layers,
            phase, el, layer > 0 ? el * (double)(n_layers - layer) / (double)layer : 0.0);
}

/* GPTQ summary: per-Linear output error against round-to-nearest of the same scheme. */
static void print_gptq_summary(const qn_pipeline_stats_t *s) {
    double sum_g = 0, sum_r = 0;
    int64_t n = 0, better = 0, damped = 0;
    for (size_t i = 0; i < s->n_linears; i++) {
        const qn_pipeline_linear *l = &s->linears[i];
        if (!l->gptq) continue;
        sum_g += l->rel_error;
        sum_r += l->rtn_rel_error;
        better += l->rel_error < l->rtn_rel_error;
        damped += l->retries > 0;
        n++;
    }
    printf("calibration     %lld samples, %lld tokens, %lld layers (forward %.2f s, GPTQ %.2f s)\n", (long long)s->samples,
           (long long)s->tokens, (long long)s->layers_run, s->seconds_forward, s->seconds_gptq);
    /* per decoder layer: mean relative output error of its GPTQ Linears, against round-to-nearest */
    for (int64_t L = 0; L < s->layers_run; L++) {
        char pre[64];
        int pl = snprintf(pre, sizeof pre, "model.layers.%lld.", (long long)L);
        double g = 0, r = 0;
        int64_t k = 0;
        for (size_t i = 0; i < s->n_linears; i++)
            if (s->linears[i].gptq && !strncmp(s->linears[i].name, pre, (size_t)pl)) {
                g += s->linears[i].rel_error;
                r += s->linears[i].rtn_rel_error;
                k++;
            }
        if (k) printf("  layer %-6lld  %lld Linears: output error %.5f (round-to-nearest %.5f)\n", (long long)L, (long long)k,
                      g / (double)k, r / (double)k);
    }
    if (n)
        printf("GPTQ            %lld Linear layers: mean output error %.5f vs %.5f round-to-nearest (lower on %lld of %lld)%s\n",
               (long long)n, sum_g / (double)n, sum_r / (double)n, (long long)better, (long long)n,
               damped ? " — some needed extra dampening" : "");
    for (size_t i = 0; i < s->n_linears; i++)
        if (s->linears[i].gptq && s->linears[i].retries > 0)
            printf("  dampening     %s needed %.3g (after %d failed factorizations)\n", s->linears[i].name,
                   s->linears[i].damp_frac, s->linears[i].retries);
    if (s->awq_mappings)
        printf("AWQ             %lld mappings (%.2f s): parent output MSE %.4g with the chosen scales vs %.4g without scaling%s\n",
               (long long)s->awq_mappings, s->seconds_awq, s->awq_loss, s->awq_loss_identity,
               s->awq_skipped ? "; the MoE blocks' post_attention_layernorm mappings left out" : "");
    if (s->experts_streamed)
        printf("  experts       %lld routed experts streamed (loaded, calibrated, quantized, freed one at a time)\n",
               (long long)s->experts_streamed);
    if (s->rtn_fallback_experts)
        printf("  fallback      %lld experts received no calibration token (routed-only statistics): round-to-nearest\n",
               (long long)s->rtn_fallback_experts);
    if (s->pruned_linears) printf("SparseGPT       %lld Linear layers pruned\n", (long long)s->pruned_linears);
    if (s->rtn_fallback_linears)
        printf("  fallback      %lld GPTQ-targeted Linear layers (MoE experts) quantized round-to-nearest\n",
               (long long)s->rtn_fallback_linears);
}

/* OUT/quench_report.json: what the calibration did, per Linear. */
static int write_report(const char *out, const qn_pipeline_stats_t *s, const char *dataset, const qn_compare_result *h,
                        double max_kl, int exceeded, qn_error *err) {
    cJSON *o = cJSON_CreateObject(), *c = cJSON_AddObjectToObject(o, "calibration"), *a = cJSON_AddArrayToObject(o, "linears");
    if (h) {
        cJSON *q = cJSON_AddObjectToObject(o, "heldout_check");
        cJSON_AddNumberToObject(q, "positions", (double)h->positions);
        cJSON_AddNumberToObject(q, "kl_mean", h->kl_mean);
        cJSON_AddNumberToObject(q, "kl_max", h->kl_max);
        cJSON_AddNumberToObject(q, "top1_agreement", h->top1_agreement);
        cJSON_AddNumberToObject(q, "original_ppl", h->original.ppl);
        cJSON_AddNumberToObject(q, "compressed_ppl", h->compressed.ppl);
        if (max_kl >= 0) cJSON_AddNumberToObject(q, "max_kl", max_kl);
        cJSON_AddBoolToObject(q, "max_kl_exceeded", exceeded);
    }
    cJSON_AddStringToObject(c, "dataset", dataset);
    cJSON_AddNumberToObject(c, "samples", (double)s->samples);
    cJSON_AddNumberToObject(c, "tokens", (double)s->tokens);
    cJSON_AddNumberToObject(c, "layers", (double)s->layers_run);
    cJSON_AddNumberToObject(c, "seconds_forward", s->seconds_forward);
    cJSON_AddNumberToObject(c, "seconds_gptq", s->seconds_gptq);
    cJSON_AddNumberToObject(c, "gptq_linears", (double)s->gptq_linears);
    cJSON_AddNumberToObject(c, "rtn_fallback_linears", (double)s->rtn_fallback_linears);
    cJSON_AddNumberToObject(c, "rtn_fallback_experts", (double)s->rtn_fallback_experts);
    cJSON_AddNumberToObject(c, "experts_streamed", (double)s->experts_streamed);
    cJSON_AddNumberToObject(c, "awq_mappings", (double)s->awq_mappings);
    cJSON_AddNumberToObject(c, "awq_skipped_moe_mappings", (double)s->awq_skipped);
    cJSON_AddNumberToObject(c, "awq_loss", s->awq_loss);
    cJSON_AddNumberToObject(c, "awq_loss_no_scaling", s->awq_loss_identity);
    cJSON_AddNumberToObject(c, "seconds_awq", s->seconds_awq);
    for (size_t i = 0; i < s->n_linears; i++) {
        const qn_pipeline_linear *l = &s->linears[i];
        if (!l->gptq) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", l->name);
        cJSON_AddStringToObject(e, "algorithm", "gptq");
        cJSON_AddNumberToObject(e, "output_rel_error", l->rel_error);
        cJSON_AddNumberToObject(e, "rtn_output_rel_error", l->rtn_rel_error);
        cJSON_AddNumberToObject(e, "dampening_frac", l->damp_frac);
        cJSON_AddNumberToObject(e, "damping_retries", l->retries);
        cJSON_AddNumberToObject(e, "dead_inputs", (double)l->dead);
        cJSON_AddItemToArray(a, e);
    }
    char *txt = cJSON_Print(o);
    cJSON_Delete(o);
    char path[4096];
    snprintf(path, sizeof path, "%s/quench_report.json", out);
    FILE *f = fopen(path, "w");
    int ok = f && txt && fputs(txt, f) >= 0;
    if (f && fclose(f)) ok = 0;
    free(txt);
    if (!ok) return qn_error_set(err, QN_ERR_IO, "%s: cannot write the report", path);
    return 0;
}

static const char k_usage[] =
    "usage: quench compress MODEL -o OUT (--recipe FILE | --scheme NAME [--targets T,...] [--ignore I,...])\n"
    "                       [--overwrite] [--max-shard-size 5GB] [--no-sample] [--quiet] [--strict-vllm]\n\n"
    "Writes a compressed-tensors checkpoint of MODEL to OUT (loadable by vLLM and transformers) with\n"
    "round-to-nearest quantization. Data-free schemes need no forward pass: weight-only int (W4A16,\n"
    "W4A16_ASYM, W8A16, ...), FP8_DYNAMIC, FP8_BLOCK, W8A8/INT8 (dynamic activations), NVFP4A16.\n"
    "Recipes with GPTQ, AWQ, SmoothQuant or SparseGPT modifiers, static activation or KV-cache scales\n"
    "run the layer-by-layer calibration pipeline on --dataset (per layer: SmoothQuant, AWQ, SparseGPT,\n"
    "then GPTQ or round-to-nearest). --targets / --ignore take comma-separated lists and may be repeated (defaults: Linear /\n"
    "lm_head). OUT is written beside itself as OUT.tmp-<pid> and renamed when complete.\n"
    "Before writing, the plan is checked against what vLLM cannot load or run (spec §6.5: dense-format,\n"
    "unpacked or tensor-strategy weight-only int, WNA16 bits / Marlin group sizes, asymmetric W8A8, 2:4\n"
    "sparsity, marlin-24; KV cache and MoE limits): each finding is a warning, or with --strict-vllm an\n"
    "error before anything is written.";

int cmd_compress(int argc, char **argv) {
    const char *out = NULL, *recipe_path = NULL, *scheme = NULL, *shard = "5GB", *prompt = "Once upon a time";
    const char *dummy = NULL, *dataset = NULL, *dataset_mode = "stream", *text_field = "text", *acts = "fp32",
               *offload = NULL, *sparse_format = "dense";
    int64_t num_samples = 512, max_seq_len = 2048, shuffle_seed = 42, holdout = 16;
    double max_kl = -1;
    int overwrite = 0, no_sample = 0, quiet = 0, no_all_experts = 0, all_experts = 0, strict_vllm = 0;
    const cli_opt opts[] = {
        {"--output", CLI_STR, &out, "output folder (also -o)", "OUT"},
        {"--recipe", CLI_STR, &recipe_path, "llm-compressor recipe YAML", "FILE"},
        {"--scheme", CLI_STR, &scheme, "preset scheme: W4A16, W4A16_ASYM, W8A16, W8A8, INT8, FP8_DYNAMIC, FP8_BLOCK, NVFP4A16, ...", "NAME"},
        {"--targets", CLI_STR, &dummy, "modules to quantize with --scheme (default Linear); comma list, repeatable", "T,..."},
        {"--ignore", CLI_STR, &dummy, "modules to leave unquantized (default lm_head); comma list, repeatable", "I,..."},
        {"--overwrite", CLI_FLAG, &overwrite, "replace an existing non-empty OUT", NULL},
        {"--max-shard-size", CLI_STR, &shard, "largest safetensors shard (default 5GB; decimal units, or GiB)", "SIZE"},
        {"--no-sample", CLI_FLAG, &no_sample, "skip the 32-token greedy sample from the compressed model", NULL},
        {"--sample-prompt", CLI_STR, &prompt, "prompt of the sample (default \"Once upon a time\")", "TEXT"},
        {"--quiet", CLI_FLAG, &quiet, "no progress output", NULL},
        {"--dataset", CLI_STR, &dataset, "calibration data for GPTQ: text, JSONL (text / messages / instruction records)", "PATH"},
        {"--dataset-mode", CLI_STR, &dataset_mode, "plain text: stream (default, windows) or lines", "MODE"},
        {"--num-calibration-samples", CLI_INT, &num_samples, "calibration samples (default 512)", "N"},
        {"--max-seq-length", CLI_INT, &max_seq_len, "tokens per sample (default 2048)", "N"},
        {"--shuffle-seed", CLI_INT, &shuffle_seed, "shuffle seed of the samples (default 42; 0 = file order)", "S"},
        {"--text-field", CLI_STR, &text_field, "JSONL field holding the text (default text)", "NAME"},
        {"--calibrate-all-experts", CLI_FLAG, &all_experts, "MoE: every calibration token through every expert for the statistics (default)", NULL},
        {"--no-calibrate-all-experts", CLI_FLAG, &no_all_experts, "MoE: statistics from the routed tokens only; unreached experts fall back to RTN", NULL},
        {"--sparse-format", CLI_STR, &sparse_format, "2:4 output: dense (default; zeros stored densely) or sparse-24-bitmask (legacy, 8-bit weights)", "FMT"},
        {"--activations", CLI_STR, &acts, "calibration activations in fp32 (default) or bf16", "fp32|bf16"},
        {"--offload-activations", CLI_STR, &offload, "keep the calibration activations in a disk-backed file in DIR", "DIR"},
        {"--holdout", CLI_INT, &holdout, "held-out samples for the quality check (default 16, at most a quarter; 0 = off)", "N"},
        {"--max-kl", CLI_FLOAT, &max_kl, "fail (exit 3, output kept and marked) when the held-out mean KL exceeds X", "X"},
        {"--strict-vllm", CLI_FLAG, &strict_vllm, "refuse (exit 1, nothing written) a plan vLLM cannot load or run, instead of warning", NULL},
        {0}};
    /* -o -> --output; --targets/--ignore collected here (cli_parse keeps one value per option) */
    str_list targets = {{0}, 0}, ignore = {{0}, 0};
    int ignore_given = 0;   /* none: the default ["lm_head"]; an explicit empty --ignore= means none */
    char **av = calloc((size_t)argc + 1, sizeof *av);
    if (!av) return cli_failf("compress", "out of memory");
    int ac = 0, rc = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        str_list *l = NULL;
        const char *v = NULL;
        if (i > 0 && (!strcmp(a, "--targets") || !strcmp(a, "--ignore"))) {
            l = a[2] == 't' ? &targets : &ignore;
            if (i + 1 >= argc) { rc = cli_failf("compress", "option %s needs a value", a) * 2; goto out; }
            v = argv[++i];
        } else if (i > 0 && (!strncmp(a, "--targets=", 10) || !strncmp(a, "--ignore=", 9))) {
            l = a[2] == 't' ? &targets : &ignore;
            v = strchr(a, '=') + 1;
        } else if (i > 0 && !strcmp(a, "-o")) {
            av[ac++] = "--output";
            continue;
        }
        if (l) {
            if (l == &ignore) ignore_given = 1;
            if (list_add(l, v)) { rc = cli_failf("compress", "too many --targets/--ignore entries"); goto out; }
            continue;
        }
        av[ac++] = argv[i];
    }
    char *pos[1];
    int np;
    rc = cli_parse(ac, av, opts, k_usage, pos, 1, &np);
    if (rc) { rc = rc == 1 ? 0 : 2; goto out; }
    rc = 2;
    if (np != 1) { cli_failf("compress", "expected one MODEL folder (see quench compress --help)"); goto out; }
    if (!out) { cli_failf("compress", "-o OUT is required"); goto out; }
    if (!recipe_path == !scheme) { cli_failf("compress", "give exactly one of --recipe FILE or --scheme NAME"); goto out; }
    if (recipe_path && (targets.n || ignore_given)) {
        cli_failf("compress", "--targets/--ignore go with --scheme; a recipe names its own targets and ignore list");
        goto out;
    }
    uint64_t shard_bytes;
    if (qn_export_parse_size(shard, &shard_bytes)) { cli_failf("compress", "--max-shard-size '%s' is not a size such as 5GB", shard); goto out; }
    rc = 1;

    qn_error err = {0};
    qn_recipe *r = NULL;
    qn_model_config cfg;
    int have_cfg = 0, have_plan = 0;
    qn_st_set *set = NULL;
    qn_module *mods = NULL;
    size_t nm = 0;
    qn_recipe_plan plan;
    qn_calib_set calib = {0}, held = {0};
    int have_calib = 0;
    qn_compare_result hres;
    int have_hres = 0, kl_exceeded = 0;
    qn_pipeline *pl = NULL;
    if (recipe_path) {
        if (qn_recipe_load(recipe_path, &r, &err)) { cli_fail("compress", &err); goto out; }
    } else if (qn_recipe_from_cli(scheme, (const char *const *)targets.items, targets.n,
                                  ignore_given ? (const char *const *)ignore.items : NULL, ignore.n, &r, &err)) {
        cli_fail("compress", &err);
        goto out;
    }
    int calibrated = qn_recipe_needs_calibration(r);
    if (calibrated && !gptq_only(r)) {
        char why[1024];
        calibration_reason(r, why, sizeof why);
        cli_failf("compress", "this recipe needs calibration data that this version does not collect yet: %s. "
                  "Supported: GPTQModifier with any weight scheme, and data-free QuantizationModifier schemes", why);
        goto cleanup;
    }
    if (calibrated && !dataset) {
        cli_failf("compress", "this recipe needs calibration data (GPTQModifier, SparseGPTModifier or static input activations): give --dataset PATH (e.g. data/tinystories/tinystories_valid_subset.txt)");
        goto cleanup;
    }
    if (qn_config_load_dir(pos[0], &cfg, &err)) { cli_fail("compress", &err); goto cleanup; }
    have_cfg = 1;
    if (qn_st_set_open_dir(pos[0], &set, &err)) { cli_fail("compress", &err); goto cleanup; }
    if (qn_export_list_modules(&cfg, set, &mods, &nm, &err)) { cli_fail("compress", &err); goto cleanup; }
    if (qn_recipe_resolve(r, mods, nm, &plan, &err)) { cli_fail("compress", &err); goto cleanup; }
    have_plan = 1;
    {   /* vLLM compatibility: warnings, or with --strict-vllm an error before anything is written */
        qn_vllm_check_opts vo = {.sparse_format = sparse_format};
        qn_vllm_warnings vw;
        if (qn_vllm_check(r, &plan, mods, nm, &vo, &vw, &err)) { cli_fail("compress", &err); goto cleanup; }
        for (size_t i = 0; i < plan.n_unmatched_targets; i++)
            fprintf(stderr, "quench compress: warning: %s\n", plan.unmatched_targets[i]);
        for (size_t i = 0; i < vw.n; i++) fprintf(stderr, "quench compress: warning: %s\n", vw.items[i].message);
        size_t nw = vw.n;
        qn_vllm_warnings_free(&vw);
        if (nw && strict_vllm) {
            cli_failf("compress", "--strict-vllm: %zu vLLM incompatibilit%s (warned above); nothing was written to %s", nw,
                      nw == 1 ? "y" : "ies", out);
            goto cleanup;
        }
    }
    uint64_t before = cli_safetensors_bytes(pos[0]);
    qn_st_set_free(set);   /* the exporter opens its own view */
    set = NULL;
    compress_progress cp;
    cli_progress_init(&cp.p, "compress", quiet);
    qn_export_opts o = {0};
    o.recipe_yaml = qn_recipe_yaml(r);
    o.max_shard_bytes = shard_bytes;
    o.overwrite = overwrite;
    o.progress = progress_cb;
    o.progress_user = &cp;
    qn_export_stats stats;
    if (calibrated) {
        qn_tokenizer *tok = NULL;
        if (qn_tokenizer_load_dir(pos[0], &tok, &err)) { cli_progress_end(&cp.p); cli_fail("compress", &err); goto cleanup; }
        qn_calib_opts co;
        qn_calib_opts_init(&co);
        co.path = dataset;
        co.mode = dataset_mode;
        co.text_field = text_field;
        co.num_samples = num_samples;
        co.max_seq_length = max_seq_len;
        co.shuffle = shuffle_seed != 0;
        co.shuffle_seed = (uint64_t)shuffle_seed;
        qn_status cst = qn_calib_load(&co, tok, pos[0], &calib, &err);
        qn_tokenizer_free(tok);
        if (cst) { cli_progress_end(&cp.p); cli_fail("compress", &err); goto cleanup; }
        have_calib = 1;
        int64_t nh = holdout < calib.n / 4 ? holdout : calib.n / 4;
        if (nh > 0 && qn_calib_split(&calib, nh, &held, &err)) { cli_progress_end(&cp.p); cli_fail("compress", &err); goto cleanup; }
        if (!quiet)
            fprintf(stderr, "quench compress: calibration: %lld samples, %lld tokens (%s) from %s\n", (long long)calib.n,
                    (long long)calib.tokens, calib.kind, dataset);
        if (strcmp(acts, "fp32") && strcmp(acts, "bf16")) {
            cli_progress_end(&cp.p);
            cli_failf("compress", "--activations '%s' is not one of fp32, bf16", acts);
            goto cleanup;
        }
        if (strcmp(sparse_format, "dense") && strcmp(sparse_format, "sparse-24-bitmask")) {
            cli_progress_end(&cp.p);
            cli_failf("compress", "--sparse-format '%s' is not one of dense, sparse-24-bitmask", sparse_format);
            goto cleanup;
        }
        qn_pipeline_opts po = {.progress = pipeline_progress, .progress_user = &cp, .activations_bf16 = !strcmp(acts, "bf16"),
                               .offload_dir = offload, .routed_only = no_all_experts && !all_experts,
                               .sparse24_bitmask = !strcmp(sparse_format, "sparse-24-bitmask")};
        if (qn_pipeline_create(pos[0], r, mods, nm, &plan, &calib, &po, &pl, &err)) { cli_progress_end(&cp.p); cli_fail("compress", &err); goto cleanup; }
        o.weight_hook = qn_pipeline_weight_hook;
        o.weight_hook_user = pl;
        o.sparsity_config_json = qn_pipeline_sparsity_config(pl);
        o.sparse24 = qn_pipeline_sparse24(pl);
        o.input_min = qn_pipeline_input_min(pl);
        if (plan.kv_cache_scheme) { o.kv_scales = qn_pipeline_kv_scales; o.kv_user = pl; }
        for (size_t k = 0; k < qn_recipe_modifier_count(r); k++)   /* SmoothQuant alone: a smoothed float model */
            if (qn_recipe_modifier(r, k)->kind == QN_MOD_SMOOTHQUANT) o.float_only_ok = 1;
        o.tensor_hook = qn_pipeline_tensor_hook;
        o.tensor_user = pl;
        o.input_max = qn_pipeline_input_max(pl);
    }
    qn_status st = qn_export_model(pos[0], out, mods, nm, &plan, &o, &stats, &err);
    cli_progress_end(&cp.p);
    if (st) { cli_fail("compress", &err); goto cleanup; }
    if (pl) {
        print_gptq_summary(qn_pipeline_stats(pl));
        if (held.n > 0) {   /* built-in quality check on samples the calibration did not see */
            qn_model *ma = NULL, *mb = NULL;
            qn_tokenizer *ta = NULL, *tb = NULL;
            qn_llm *la = NULL, *lb = NULL;
            int64_t ctx = 2;
            for (int64_t i = 0; i < held.n; i++) if (held.samples[i].n > ctx) ctx = held.samples[i].n;
            if (cli_load_model("compress", pos[0], ctx, &ma, &ta, &la)) goto cleanup;
            if (cli_load_model("compress", out, ctx, &mb, &tb, &lb)) { cli_unload_model(ma, ta, la); goto cleanup; }
            qn_status hs = qn_compare_samples(la, lb, &held, &hres, &err);
            cli_unload_model(ma, ta, la);
            cli_unload_model(mb, tb, lb);
            if (hs) { cli_fail("compress", &err); goto cleanup; }
            have_hres = 1;
            kl_exceeded = max_kl >= 0 && hres.kl_mean > max_kl;
            printf("held-out check  %lld samples (%lld positions): mean KL %.6f nats, top-1 agreement %.2f%%, ppl %.4f -> %.4f%s\n",
                   (long long)held.n, (long long)hres.positions, hres.kl_mean, 100.0 * hres.top1_agreement, hres.original.ppl,
                   hres.compressed.ppl, kl_exceeded ? "  ABOVE --max-kl" : "");
        }
        if (write_report(out, qn_pipeline_stats(pl), dataset, have_hres ? &hres : NULL, max_kl, kl_exceeded, &err)) {
            cli_fail("compress", &err);
            goto cleanup;
        }
        if (kl_exceeded) {
            fprintf(stderr, "quench compress: held-out mean KL %.6f exceeds --max-kl %g (output kept in %s, marked in quench_report.json)\n",
                    hres.kl_mean, max_kl, out);
            rc = 3;
            goto cleanup;
        }
    }
    for (const char *w = stats.warnings; *w;) {
        const char *e = strchr(w, '\n');
        int l = e ? (int)(e - w) : (int)strlen(w);
        fprintf(stderr, "quench compress: warning: %.*s\n", l, w);
        w += l + (e ? 1 : 0);
    }
    uint64_t after = cli_safetensors_bytes(out);
    char b1[32], b2[32], c1[32];
    printf("output          %s (%s)\n", out, stats.format);
    printf("linear layers   %lld quantized, %lld ignored (of %lld)\n", (long long)stats.linear_quantized,
           (long long)stats.linear_ignored, (long long)stats.linear_total);
    printf("quantized       %s weights\n", cli_count((double)stats.params_quantized, c1, sizeof c1));
    printf("size            %s -> %s (%.2fx smaller)\n", cli_bytes((double)before, b1, sizeof b1),
           cli_bytes((double)after, b2, sizeof b2), after ? (double)before / (double)after : 0.0);
    printf("time            %.2f s (%.1f MB/s)\n", stats.seconds,
           stats.seconds > 0 ? (double)stats.bytes_in / stats.seconds / 1e6 : 0.0);
    fflush(stdout);
    {
        struct rusage ru;
        if (!getrusage(RUSAGE_SELF, &ru)) printf("peak memory     %.1f MB resident (peak RSS)\n", (double)ru.ru_maxrss / 1000.0);
    }
    if (!no_sample) sample(out, prompt);
    rc = 0;
cleanup:
    qn_pipeline_free(pl);
    if (have_calib) qn_calib_free(&calib);
    qn_calib_free(&held);
    if (have_plan) qn_recipe_plan_free(&plan);
    qn_export_modules_free(mods, nm);
    qn_st_set_free(set);
    if (have_cfg) qn_config_free(&cfg);
    qn_recipe_free(r);
out:
    list_free(&targets);
    list_free(&ignore);
    free(av);
    return rc;
}
