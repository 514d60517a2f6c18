/* quench plan MODEL_OR_CONFIG [options]: hardware planning from config.json alone.
 * The numbers come from src/plan (qn_plan_build); this file only parses options and formats. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "quench/config.h"
#include "quench/plan.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

static const char *k_usage =
    "usage: quench plan MODEL_OR_CONFIG [--scheme NAME] [--sparsity 2:4] [--gpu NAME | --gpu-mem SIZE]\n"
    "                   [--gpus N] [--context 16k] [--batch B] [--kv-dtype fp16|fp8] [--json]\n"
    "\n"
    "Plans compression and serving from a model folder's config.json (or the file itself): parameter\n"
    "counts by component, the compressed checkpoint size for a scheme, tensor-parallel validity,\n"
    "weights and KV cache per GPU, the longest context per batch size, and the memory a compression\n"
    "run needs. Schemes: none, W4A16, W4A16_ASYM, W8A16, W8A8 (INT8), FP8, FP8_DYNAMIC, FP8_BLOCK,\n"
    "NVFP4A16, NVFP4. Sizes: 24GiB, 80GB (decimal), 24G (= GiB). Counts: 16k = 16384.\n"
    "--gpu list shows the built-in GPU table.\n";

/* 1234567 → "1,234,567" */
static const char *commas(int64_t v, char *buf, size_t n) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v));
    size_t len = strlen(tmp), k = 0;
    if (v < 0 && k + 1 < n) buf[k++] = '-';
    for (size_t i = 0; i < len && k + 2 < n; i++) {
        buf[k++] = tmp[i];
        size_t rest = len - i - 1;
        if (rest && rest % 3 == 0) buf[k++] = ',';
    }
    buf[k] = 0;
    return buf;
}

static const char *gib(int64_t b, char *buf, size_t n) {
    double g = (double)b / GIB;
    if (b == 0) snprintf(buf, n, "-");
    else if (b < 1024 * 1024 && b > -1024 * 1024) snprintf(buf, n, "%.1f KiB", (double)b / 1024.0);
    else if (g < 0.01 && g > -0.01) snprintf(buf, n, "%.1f MiB", (double)b / (1024.0 * 1024.0));
    else snprintf(buf, n, "%.2f GiB", g);
    return buf;
}

static const char *billions(int64_t v, char *buf, size_t n) {
    if (v >= 1000000000LL) snprintf(buf, n, "%.2f B", (double)v / 1e9);
    else snprintf(buf, n, "%.1f M", (double)v / 1e6);
    return buf;
}

static const char *ctx_str(int64_t t, char *buf, size_t n) {
    if (t <= 0) snprintf(buf, n, "-");
    else if (t >= 1024 && t % 1024 == 0) snprintf(buf, n, "%lldk", (long long)(t / 1024));
    else if (t >= 1024) snprintf(buf, n, "%.1fk", (double)t / 1024.0);
    else snprintf(buf, n, "%lld", (long long)t);
    return buf;
}

static const char *dtype_name(int dt) { return dt == 4 ? "fp32" : "16-bit"; }

static const char *stored_as(const qn_plan *p, const qn_plan_options *o, int c, const qn_plan_size *sz,
                             char *buf, size_t n) {
    const qn_plan_bytes *b = &sz->comp[c];
    if (b->total == 0) snprintf(buf, n, "-");
    else if (b->values == 0) snprintf(buf, n, "%s", dtype_name(p->dtype_bytes));
    else if (o->scheme.id == QN_PSCHEME_NONE) snprintf(buf, n, "2:4 sparse");
    else snprintf(buf, n, "%s%s", o->scheme.name, sz->n_kept_comp[c] ? "+16bit" : "");
    return buf;
}

static void print_params(const qn_model_config *cfg, const qn_plan *p) {
    const qn_param_counts *pc = &p->params;
    char a[32], b[32], c[32], d[32];
    printf("Parameters\n");
    printf("  %-18s %19s %19s\n", "component", "total", "active per token");
    for (int i = 0; i < QN_PLAN_NCOMP; i++) {
        if (pc->total[i] == 0 && (i == QN_PLAN_ROUTED || i == QN_PLAN_SHARED || i == QN_PLAN_ROUTER ||
                                  i == QN_PLAN_DENSE_MLP))
            continue;
        printf("  %-18s %19s %19s", qn_plan_comp_name(i), commas(pc->total[i], a, sizeof a),
               commas(pc->active[i], b, sizeof b));
        if (i == QN_PLAN_ATTN) printf("   %s per layer", commas(pc->attention_per_layer, c, sizeof c));
        if (i == QN_PLAN_DENSE_MLP) printf("   %lld layer(s)", (long long)pc->n_dense_layers);
        if (i == QN_PLAN_ROUTED)
            printf("   %lld layers x %lld experts, %s each, %lld active", (long long)pc->n_moe_layers,
                   (long long)cfg->num_experts, commas(pc->one_routed_expert, c, sizeof c),
                   (long long)cfg->num_experts_per_tok);
        if (i == QN_PLAN_LM_HEAD && cfg->tie_word_embeddings) printf("   tied to embed_tokens");
        printf("\n");
    }
    printf("  %-18s %19s %19s   (%s / %s)\n", "total", commas(pc->total_params, a, sizeof a),
           commas(pc->active_params, b, sizeof b), billions(pc->total_params, c, sizeof c),
           billions(pc->active_params, d, sizeof d));
    printf("  %-18s %19s %19s   (%s / %s)\n", "excl. embed+head", commas(pc->total_excl_embed, a, sizeof a),
           commas(pc->active_excl_embed, b, sizeof b), billions(pc->total_excl_embed, c, sizeof c),
           billions(pc->active_excl_embed, d, sizeof d));
    if (pc->n_mtp_layers > 0)
        printf("  %-18s %19s   (%lld layer(s) at index %lld; not in the totals, dropped by HF and thus "
               "by the compressed checkpoint)\n", "MTP layers", commas(pc->mtp_params, a, sizeof a),
               (long long)pc->n_mtp_layers, (long long)cfg->num_hidden_layers);
    printf("\n");
}

static void print_size_table(const qn_plan *p, const qn_plan_options *o, const qn_plan_size *sz,
                             const char *title) {
    char s[9][32];
    printf("%s\n", title);
    printf("  %-16s %-12s %11s %11s %11s %10s %11s %11s %11s\n", "component", "stored as", "values",
           "scales", "zero pts", "g_idx", "meta", "16-bit", "total");
    for (int i = 0; i < QN_PLAN_NCOMP; i++) {
        const qn_plan_bytes *b = &sz->comp[i];
        if (b->total == 0) continue;
        printf("  %-16s %-12s %11s %11s %11s %10s %11s %11s %11s\n", qn_plan_comp_name(i),
               stored_as(p, o, i, sz, s[8], 32), gib(b->values, s[0], 32), gib(b->scales + b->act_scales, s[1], 32),
               gib(b->zero_points, s[2], 32), gib(b->g_idx, s[3], 32),
               gib(b->shape_meta + b->sparse_meta, s[4], 32), gib(b->kept, s[5], 32),
               gib(b->total, s[6], 32));
    }
    const qn_plan_bytes *t = &sz->total;
    printf("  %-16s %-12s %11s %11s %11s %10s %11s %11s %11s\n", "total", "", gib(t->values, s[0], 32),
           gib(t->scales + t->act_scales, s[1], 32), gib(t->zero_points, s[2], 32),
           gib(t->g_idx, s[3], 32), gib(t->shape_meta + t->sparse_meta, s[4], 32),
           gib(t->kept, s[5], 32), gib(t->total, s[6], 32));
    char x[32], y[32];
    printf("  checkpoint: %s (%s bytes) vs %s unquantized, %.2fx smaller; %lld Linear modules quantized",
           gib(t->total, x, sizeof x), commas(t->total, y, sizeof y), gib(sz->original_bytes, s[7], 32),
           t->total ? (double)sz->original_bytes / (double)t->total : 0.0,
           (long long)sz->n_linear_quantized);
    if (sz->n_linear_kept) printf(", %lld kept 16-bit", (long long)sz->n_linear_kept);
    printf("\n");
    for (int i = 0; i < sz->n_notes; i++) printf("  note: %s\n", sz->notes[i]);
}

static void print_sizes(const qn_model_config *cfg, const qn_plan *p, const qn_plan_options *o) {
    char title[256];
    snprintf(title, sizeof title, "Compressed checkpoint: %s (%s)%s", o->scheme.name, o->scheme.format,
             o->sparsity == QN_SPARSE_24 ? ", 2:4 sparsity stored as dense zeros" : "");
    print_size_table(p, o, &p->size, title);
    printf("  scheme: %s\n", o->scheme.summary);
    if (o->scheme.id == QN_PSCHEME_W4A16_ASYM && cfg->num_experts > 0)
        printf("  note: asymmetric WNA16 for MoE experts needs vLLM with PR #44025 (2026); older vLLM "
               "loads only symmetric expert weights (spec §6.3a)\n");
    printf("  kept unquantized: embed_tokens, norms, routers (mlp.gate), lm_head — llm-compressor's "
           "usual ignore [\"lm_head\", \"re:.*mlp.gate$\"]\n");
    if (o->sparsity == QN_SPARSE_24) {
        printf("  2:4 stored as dense zeros: no bytes saved; the zeros are ordinary values, so any "
               "loader of %s reads it. vLLM before PR #36799 (March 2026) runs cutlass 2:4 kernels for "
               "it on SM 9.0 when the weights are unquantized or 8-bit W + 8-bit A, dense kernels "
               "otherwise (how later vLLM treats the sparsity_config is UNCONFIRMED)\n",
               o->scheme.id == QN_PSCHEME_NONE ? dtype_name(p->dtype_bytes) : o->scheme.name);
        if (p->has_sparse_alt) {
            printf("\n");
            print_size_table(p, o, &p->size_sparse, "Same, stored as sparse-24-bitmask (spec §5.7)");
            printf("  sparse-24-bitmask: compressed [out, in/2] + bitmask U8 [out, in/8] + shape I64 "
                   "[2,1]; written by compressed-tensors 0.9-0.14.x only; loaded by vLLM versions with "
                   "the CompressedTensors24 scheme (SM 9.0 only, all shards %% 8) until PR #36799 "
                   "(March 2026) removed 2:4 support; newer vLLM and CT >= 0.15 refuse it\n");
        } else {
            printf("  sparse-24-bitmask: not available for %s (it needs 8-bit weights and 8-bit "
                   "activations, or no quantization); llm-compressor used marlin-24 for 4-bit + 2:4, "
                   "which vLLM no longer loads\n", o->scheme.name);
        }
    }
    printf("\n");
}

static void print_tp(const qn_model_config *cfg, const qn_plan *p, const qn_plan_options *o) {
    char a[32], b[32], c[32], d[32], e[32];
    printf("Tensor parallel (KV cache %s, ", o->kv_bytes == 1 ? "fp8" : "fp16");
    if (p->mla)
        printf("MLA latent (kv_lora_rank %lld + rope %lld) x %lld layers, same on every GPU",
               (long long)cfg->kv_lora_rank, (long long)cfg->qk_rope_head_dim,
               (long long)cfg->num_hidden_layers);
    else
        printf("2 x %lld layers x %lld KV heads x %lld head_dim x %d bytes = %s bytes/token at TP 1",
               (long long)cfg->num_hidden_layers, (long long)cfg->num_key_value_heads,
               (long long)cfg->head_dim, o->kv_bytes, commas(p->kv_bytes_per_token, a, sizeof a));
    printf(")\n");
    if (o->have_gpu) {
        char ccs[48];
        if (o->gpu.cc > 0) snprintf(ccs, sizeof ccs, "compute capability %d.%d", o->gpu.cc / 10, o->gpu.cc % 10);
        else snprintf(ccs, sizeof ccs, "compute capability unknown");
        printf("  GPU %s: %s (%s), gpu_memory_utilization %.2f; verdict for context %s x batch %lld\n",
               o->gpu.name, gib(o->gpu.mem_bytes, a, sizeof a), ccs, o->gpu_util,
               ctx_str(p->context, b, sizeof b), (long long)o->batch);
    }
    if (o->have_gpu && p->n_tp > 0) {
        const qn_plan_tp *t0 = &p->tp[0];
        printf("  %-3s %-7s %11s %12s %10s %11s", "TP", "shards", "weights/GPU", "KV B/tok/GPU", "reserve",
               "KV budget");
        for (int k = 0; k < t0->n_batch; k++) {
            char h[24];
            snprintf(h, sizeof h, "ctx@b%lld", (long long)t0->batch[k]);
            printf(" %8s", h);
        }
        printf("  verdict\n");
    } else {
        printf("  %-3s %-7s %11s %12s\n", "TP", "shards", "weights/GPU", "KV B/tok/GPU");
    }
    for (int i = 0; i < p->n_tp; i++) {
        const qn_plan_tp *t = &p->tp[i];
        printf("  %-3d %-7s %11s %12s", t->tp, t->valid ? "ok" : "REFUSED",
               gib(t->weight_bytes_per_gpu, a, sizeof a), commas(t->kv_bytes_per_token, b, sizeof b));
        if (o->have_gpu) {
            printf(" %10s %11s", gib(t->reserve_bytes, c, sizeof c), gib(t->kv_budget_bytes, d, sizeof d));
            for (int k = 0; k < t->n_batch; k++) printf(" %8s", ctx_str(t->max_context[k], e, sizeof e));
            if (!t->valid) printf("  no (invalid TP)");
            else if (t->kernel_ok == 0) printf("  no (%s kernels need compute capability >= %d.%d)",
                                               o->scheme.name, o->scheme.min_cc / 10, o->scheme.min_cc % 10);
            else if (t->kv_budget_bytes <= 0) printf("  no (weights + reserve exceed memory)");
            else if (!t->fits) printf("  no (KV for %s x %lld needs %s)", ctx_str(p->context, e, sizeof e),
                                      (long long)o->batch,
                                      gib(t->kv_bytes_per_token * p->context * o->batch, c, sizeof c));
            else printf("  FITS%s", t->kernel_ok == 1 ? " (fallback kernel)" : "");
        }
        printf("\n");
    }
    for (int i = 0; i < p->n_tp; i++) {
        const qn_plan_tp *t = &p->tp[i];
        if (!t->valid) printf("  TP %d refused: %s\n", t->tp, t->reason);
        if (t->notes[0]) printf("  TP %d note: %s\n", t->tp, t->notes);
    }
    if (!o->have_gpu) printf("  (give --gpu NAME or --gpu-mem SIZE for the context and fit columns)\n");
    printf("\n");
}

static void print_compress(const qn_model_config *cfg, const qn_plan *p, const qn_plan_options *o) {
    const qn_plan_compress *r = &p->compress;
    char a[32], b[32], c[32], d[32];
    printf("Compression run (%lld calibration samples x %lld tokens)\n", (long long)o->calib_samples,
           (long long)o->calib_seq_len);
    printf("  quench compress, CPU RAM: %s = largest layer fp32 %s + Hessians %s + activations in/out %s\n",
           gib(r->quench_total_bytes, a, sizeof a), gib(r->layer_fp32_bytes, b, sizeof b),
           gib(r->hessian_bytes, c, sizeof c), gib(r->activation_bytes, d, sizeof d));
    if (cfg->num_experts > 0)
        printf("    routed experts one at a time: %s (Hessians %s)\n", gib(r->quench_total_seq_bytes, a, sizeof a),
               gib(r->hessian_bytes_seq, b, sizeof b));
    {
        char e[32], f[32];
        printf("  quench compress as built (experts streamed, shared gate/up Hessian): %s = layer %s + "
               "results %s + Hessians %s + GPTQ workspace %s + activations %s\n",
               gib(r->quench_built_bytes, a, sizeof a), gib(r->resident_layer_bytes, b, sizeof b),
               gib(r->result_bytes, c, sizeof c), gib(r->hessian_bytes_built, d, sizeof d),
               gib(r->gptq_workspace_bytes, e, sizeof e), gib(r->activation_bytes_built, f, sizeof f));
    }
    printf("  llm-compressor: CPU RAM %s (whole model in %s + cached layer inputs), GPU %s (one layer "
           "+ its Hessians)\n", gib(r->llmc_cpu_bytes, a, sizeof a), p->dtype_bytes == 4 ? "fp32" : "16-bit",
           gib(r->llmc_gpu_bytes, b, sizeof b));
}

/* ------------------------------------------------------------------------------------ JSON */

static cJSON *bytes_json(const qn_plan_bytes *b) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "values", (double)b->values);
    cJSON_AddNumberToObject(o, "scales", (double)b->scales);
    cJSON_AddNumberToObject(o, "zero_points", (double)b->zero_points);
    cJSON_AddNumberToObject(o, "g_idx", (double)b->g_idx);
    cJSON_AddNumberToObject(o, "activation_scales", (double)b->act_scales);
    cJSON_AddNumberToObject(o, "shape_meta", (double)b->shape_meta);
    cJSON_AddNumberToObject(o, "sparse_meta", (double)b->sparse_meta);
    cJSON_AddNumberToObject(o, "kept_16bit", (double)b->kept);
    cJSON_AddNumberToObject(o, "total", (double)b->total);
    return o;
}

static cJSON *size_json(const qn_plan *p, const qn_plan_options *o, const qn_plan_size *sz) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "scheme", o->scheme.name);
    cJSON_AddStringToObject(s, "format", o->scheme.format);
    cJSON_AddStringToObject(s, "sparsity_format", o->sparsity == QN_SPARSE_24
                                                      ? (sz->sparse_bitmask ? "sparse-24-bitmask" : "dense")
                                                      : "none");
    cJSON *comp = cJSON_AddObjectToObject(s, "components");
    for (int i = 0; i < QN_PLAN_NCOMP; i++) {
        if (sz->comp[i].total == 0) continue;
        cJSON *c = bytes_json(&sz->comp[i]);
        char sa[32];
        cJSON_AddStringToObject(c, "stored_as", stored_as(p, o, i, sz, sa, sizeof sa));
        cJSON_AddItemToObject(comp, qn_plan_comp_name(i), c);
    }
    cJSON_AddItemToObject(s, "total", bytes_json(&sz->total));
    cJSON_AddNumberToObject(s, "original_bytes", (double)sz->original_bytes);
    cJSON_AddNumberToObject(s, "linear_quantized", (double)sz->n_linear_quantized);
    cJSON_AddNumberToObject(s, "linear_kept", (double)sz->n_linear_kept);
    cJSON *notes = cJSON_AddArrayToObject(s, "notes");
    for (int i = 0; i < sz->n_notes; i++) cJSON_AddItemToArray(notes, cJSON_CreateString(sz->notes[i]));
    return s;
}

static int print_json(const qn_model_config *cfg, const qn_plan *p, const qn_plan_options *o) {
    cJSON *root = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "architecture", cfg->architecture);
    cJSON_AddStringToObject(m, "dtype", cfg->torch_dtype[0] ? cfg->torch_dtype : "bfloat16 (assumed)");
    cJSON_AddNumberToObject(m, "layers", (double)cfg->num_hidden_layers);
    cJSON_AddNumberToObject(m, "dense_layers", (double)p->params.n_dense_layers);
    cJSON_AddNumberToObject(m, "moe_layers", (double)p->params.n_moe_layers);
    cJSON_AddNumberToObject(m, "mtp_layers", (double)p->params.n_mtp_layers);
    cJSON_AddNumberToObject(m, "max_position_embeddings", (double)cfg->max_position_embeddings);

    const qn_param_counts *pc = &p->params;
    cJSON *pj = cJSON_AddObjectToObject(root, "parameters");
    cJSON *comp = cJSON_AddObjectToObject(pj, "components");
    for (int i = 0; i < QN_PLAN_NCOMP; i++) {
        cJSON *c = cJSON_AddObjectToObject(comp, qn_plan_comp_name(i));
        cJSON_AddNumberToObject(c, "total", (double)pc->total[i]);
        cJSON_AddNumberToObject(c, "active", (double)pc->active[i]);
    }
    cJSON_AddNumberToObject(pj, "attention_per_layer", (double)pc->attention_per_layer);
    cJSON_AddNumberToObject(pj, "one_routed_expert", (double)pc->one_routed_expert);
    cJSON_AddNumberToObject(pj, "total", (double)pc->total_params);
    cJSON_AddNumberToObject(pj, "total_excl_embed", (double)pc->total_excl_embed);
    cJSON_AddNumberToObject(pj, "active", (double)pc->active_params);
    cJSON_AddNumberToObject(pj, "active_excl_embed", (double)pc->active_excl_embed);
    cJSON_AddNumberToObject(pj, "mtp", (double)pc->mtp_params);

    cJSON_AddItemToObject(root, "size", size_json(p, o, &p->size));
    if (p->has_sparse_alt) cJSON_AddItemToObject(root, "size_sparse_24_bitmask", size_json(p, o, &p->size_sparse));

    cJSON *kv = cJSON_AddObjectToObject(root, "kv_cache");
    cJSON_AddStringToObject(kv, "dtype", o->kv_bytes == 1 ? "fp8" : "fp16");
    cJSON_AddBoolToObject(kv, "mla", p->mla);
    cJSON_AddNumberToObject(kv, "bytes_per_token", (double)p->kv_bytes_per_token);
    if (o->have_gpu) {
        cJSON *g = cJSON_AddObjectToObject(root, "gpu");
        cJSON_AddStringToObject(g, "name", o->gpu.name);
        cJSON_AddNumberToObject(g, "memory_bytes", (double)o->gpu.mem_bytes);
        if (o->gpu.cc > 0) cJSON_AddNumberToObject(g, "compute_capability", o->gpu.cc / 10.0);
        cJSON_AddNumberToObject(g, "gpu_memory_utilization", o->gpu_util);
        cJSON_AddNumberToObject(g, "context", (double)p->context);
        cJSON_AddNumberToObject(g, "batch", (double)o->batch);
    }
    cJSON *tps = cJSON_AddArrayToObject(root, "tensor_parallel");
    for (int i = 0; i < p->n_tp; i++) {
        const qn_plan_tp *t = &p->tp[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "tp", t->tp);
        cJSON_AddBoolToObject(x, "valid", t->valid);
        if (!t->valid) cJSON_AddStringToObject(x, "reason", t->reason);
        if (t->notes[0]) cJSON_AddStringToObject(x, "notes", t->notes);
        if (cfg->num_experts > 0) cJSON_AddBoolToObject(x, "expert_parallel_valid", t->ep_valid);
        if (!p->mla) {
            cJSON_AddNumberToObject(x, "kv_heads_per_gpu", (double)t->kv_heads_per_gpu);
            cJSON_AddBoolToObject(x, "kv_replicated", t->kv_replicated);
        }
        cJSON_AddNumberToObject(x, "weight_bytes_per_gpu", (double)t->weight_bytes_per_gpu);
        cJSON_AddNumberToObject(x, "kv_bytes_per_token_per_gpu", (double)t->kv_bytes_per_token);
        if (o->have_gpu) {
            cJSON_AddNumberToObject(x, "usable_bytes", (double)t->usable_bytes);
            cJSON_AddNumberToObject(x, "reserve_bytes", (double)t->reserve_bytes);
            cJSON_AddNumberToObject(x, "kv_budget_bytes", (double)t->kv_budget_bytes);
            cJSON_AddNumberToObject(x, "kv_tokens", (double)t->kv_tokens);
            cJSON *mc = cJSON_AddArrayToObject(x, "max_context");
            for (int k = 0; k < t->n_batch; k++) {
                cJSON *y = cJSON_CreateObject();
                cJSON_AddNumberToObject(y, "batch", (double)t->batch[k]);
                cJSON_AddNumberToObject(y, "context", (double)t->max_context[k]);
                cJSON_AddItemToArray(mc, y);
            }
            if (t->kernel_ok >= 0)
                cJSON_AddStringToObject(x, "kernel", t->kernel_ok == 2 ? "native" : t->kernel_ok == 1 ? "fallback" : "unsupported");
            cJSON_AddBoolToObject(x, "fits", t->fits);
        }
        cJSON_AddItemToArray(tps, x);
    }
    const qn_plan_compress *r = &p->compress;
    cJSON *cj = cJSON_AddObjectToObject(root, "compression");
    cJSON_AddNumberToObject(cj, "calibration_samples", (double)o->calib_samples);
    cJSON_AddNumberToObject(cj, "calibration_seq_len", (double)o->calib_seq_len);
    cJSON_AddNumberToObject(cj, "layer_fp32_bytes", (double)r->layer_fp32_bytes);
    cJSON_AddNumberToObject(cj, "hessian_bytes", (double)r->hessian_bytes);
    cJSON_AddNumberToObject(cj, "hessian_bytes_experts_sequential", (double)r->hessian_bytes_seq);
    cJSON_AddNumberToObject(cj, "activation_bytes", (double)r->activation_bytes);
    cJSON_AddNumberToObject(cj, "quench_cpu_bytes", (double)r->quench_total_bytes);
    cJSON_AddNumberToObject(cj, "quench_cpu_bytes_experts_sequential", (double)r->quench_total_seq_bytes);
    cJSON_AddNumberToObject(cj, "quench_cpu_bytes_as_built", (double)r->quench_built_bytes);
    cJSON_AddNumberToObject(cj, "llmcompressor_cpu_bytes", (double)r->llmc_cpu_bytes);
    cJSON_AddNumberToObject(cj, "llmcompressor_gpu_bytes", (double)r->llmc_gpu_bytes);

    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) {
        fprintf(stderr, "quench plan: out of memory formatting JSON\n");
        return 1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

static void list_gpus(void) {
    int n;
    const qn_gpu_info *g = qn_plan_gpu_table(&n);
    printf("%-28s %12s %8s\n", "GPU", "memory", "CC");
    for (int i = 0; i < n; i++) {
        char b[32];
        printf("%-28s %12s %5d.%d\n", g[i].name, gib(g[i].mem_bytes, b, sizeof b), g[i].cc / 10, g[i].cc % 10);
    }
}

int cmd_plan(int argc, char **argv) {
    const char *scheme = NULL, *sparsity = NULL, *gpu = NULL, *gpu_mem = NULL, *context = NULL,
               *kv_dtype = NULL, *actorder = NULL, *reserve = NULL;
    int64_t gpus = 0, batch = 1, samples = 512, seq_len = 2048;
    double util = 0.9;
    int json = 0;
    const cli_opt opts[] = {
        {"--scheme", CLI_STR, &scheme, "compression scheme (default none)", "NAME"},
        {"--sparsity", CLI_STR, &sparsity, "2:4 semi-structured sparsity", "2:4"},
        {"--gpu", CLI_STR, &gpu, "GPU from the built-in table (--gpu list shows it)", "NAME"},
        {"--gpu-mem", CLI_STR, &gpu_mem, "memory of another GPU (24GiB, 80GB)", "SIZE"},
        {"--gpus", CLI_INT, &gpus, "also evaluate this tensor-parallel size", "N"},
        {"--context", CLI_STR, &context, "tokens per sequence for the verdict (default max_position_embeddings)", "N"},
        {"--batch", CLI_INT, &batch, "sequences for the verdict (default 1)", "B"},
        {"--kv-dtype", CLI_STR, &kv_dtype, "KV cache dtype: fp16 (default), bf16, fp8", "DTYPE"},
        {"--actorder", CLI_STR, &actorder, "group: count weight_g_idx (W4A16 schemes)", "group|none"},
        {"--gpu-util", CLI_FLOAT, &util, "vLLM gpu_memory_utilization (default 0.9)", "F"},
        {"--reserve", CLI_STR, &reserve, "activation/runtime reserve per GPU (default estimated)", "SIZE"},
        {"--samples", CLI_INT, &samples, "calibration samples for the compression estimate (512)", "N"},
        {"--seq-len", CLI_INT, &seq_len, "calibration sequence length (2048)", "T"},
        {"--json", CLI_FLAG, &json, "machine-readable output", NULL},
        {NULL, 0, NULL, NULL, NULL},
    };
    char *pos[1];
    int npos = 0;
    int r = cli_parse(argc, argv, opts, k_usage, pos, 1, &npos);
    if (r == 1) return 0;
    if (r) return 2;
    if (gpu && !strcasecmp(gpu, "list")) {
        list_gpus();
        return 0;
    }
    if (npos != 1) {
        fprintf(stderr, "quench plan: expected one MODEL_OR_CONFIG argument (see quench plan --help)\n");
        return 2;
    }

    qn_plan_options o;
    qn_plan_options_default(&o);
    qn_error err = {0};
    if (scheme && qn_plan_scheme_lookup(scheme, &o.scheme, &err)) {
        fprintf(stderr, "quench plan: %s\n", err.msg);
        return 2;
    }
    if (sparsity) {
        if (!strcmp(sparsity, "2:4")) o.sparsity = QN_SPARSE_24;
        else if (strcasecmp(sparsity, "none") != 0) {
            fprintf(stderr, "quench plan: --sparsity accepts 2:4 or none, got '%s'\n", sparsity);
            return 2;
        }
    }
    if (gpu && gpu_mem) {
        fprintf(stderr, "quench plan: give either --gpu or --gpu-mem, not both\n");
        return 2;
    }
    if (gpu) {
        if (qn_plan_gpu_lookup(gpu, &o.gpu, &err)) {
            fprintf(stderr, "quench plan: %s\n", err.msg);
            return 2;
        }
        o.have_gpu = 1;
    }
    static char mem_name[64];
    if (gpu_mem) {
        int64_t b;
        if (qn_plan_parse_bytes(gpu_mem, &b)) {
            fprintf(stderr, "quench plan: --gpu-mem expects a size such as 24GiB or 80GB, got '%s'\n", gpu_mem);
            return 2;
        }
        snprintf(mem_name, sizeof mem_name, "custom %s", gpu_mem);
        o.gpu.name = mem_name;
        o.gpu.mem_bytes = b;
        o.gpu.cc = 0;
        o.have_gpu = 1;
    }
    if (gpus < 0 || gpus > 4096) { /* 0 = not given */
        fprintf(stderr, "quench plan: --gpus must be between 1 and 4096\n");
        return 2;
    }
    o.extra_tp = (int)gpus;
    if (context && qn_plan_parse_count(context, &o.context)) {
        fprintf(stderr, "quench plan: --context expects a token count such as 4096 or 16k, got '%s'\n", context);
        return 2;
    }
    if (batch < 1 || batch > 1000000) {
        fprintf(stderr, "quench plan: --batch must be between 1 and 1000000\n");
        return 2;
    }
    o.batch = batch;
    if (kv_dtype) {
        if (!strcasecmp(kv_dtype, "fp16") || !strcasecmp(kv_dtype, "bf16") || !strcasecmp(kv_dtype, "auto"))
            o.kv_bytes = 2;
        else if (!strcasecmp(kv_dtype, "fp8") || !strcasecmp(kv_dtype, "fp8_e4m3")) o.kv_bytes = 1;
        else {
            fprintf(stderr, "quench plan: --kv-dtype accepts fp16, bf16 or fp8, got '%s'\n", kv_dtype);
            return 2;
        }
    }
    if (actorder) {
        if (!strcasecmp(actorder, "group")) o.actorder_group = 1;
        else if (strcasecmp(actorder, "none") && strcasecmp(actorder, "weight") && strcasecmp(actorder, "static")) {
            fprintf(stderr, "quench plan: --actorder accepts group, weight, static or none, got '%s'\n", actorder);
            return 2;
        }
    }
    if (!(util > 0 && util <= 1)) {
        fprintf(stderr, "quench plan: --gpu-util must be in (0, 1]\n");
        return 2;
    }
    o.gpu_util = util;
    if (reserve && qn_plan_parse_bytes(reserve, &o.reserve_bytes)) {
        fprintf(stderr, "quench plan: --reserve expects a size such as 2GiB, got '%s'\n", reserve);
        return 2;
    }
    if (samples < 1 || samples > 10000000 || seq_len < 1 || seq_len > 10000000) {
        fprintf(stderr, "quench plan: --samples and --seq-len must be between 1 and 10000000\n");
        return 2;
    }
    o.calib_samples = samples;
    o.calib_seq_len = seq_len;

    /* a folder with config.json, or the file itself */
    qn_model_config cfg;
    struct stat st;
    qn_status s;
    if (stat(pos[0], &st) == 0 && S_ISDIR(st.st_mode)) s = qn_config_load_dir(pos[0], &cfg, &err);
    else s = qn_config_load_file(pos[0], &cfg, &err);
    if (s) return cli_fail("plan", &err);

    qn_plan *p = calloc(1, sizeof *p);
    if (!p) {
        qn_config_free(&cfg);
        fprintf(stderr, "quench plan: out of memory\n");
        return 1;
    }
    s = qn_plan_build(&cfg, &o, p, &err);
    if (s) {
        free(p);
        qn_config_free(&cfg);
        return cli_fail("plan", &err);
    }
    if (o.context > cfg.max_position_embeddings)
        fprintf(stderr, "quench plan: warning: --context %lld exceeds max_position_embeddings %lld "
                "(vLLM refuses a longer max_model_len without an override)\n", (long long)o.context,
                (long long)cfg.max_position_embeddings);

    int rc = 0;
    if (json) {
        rc = print_json(&cfg, p, &o);
    } else {
        printf("%s: %s, %s, %lld layers", pos[0], cfg.architecture,
               cfg.torch_dtype[0] ? cfg.torch_dtype : "dtype not given (16-bit assumed)",
               (long long)cfg.num_hidden_layers);
        if (cfg.num_experts > 0)
            printf(" (%lld dense + %lld MoE, %lld experts, top-%lld)", (long long)p->params.n_dense_layers,
                   (long long)p->params.n_moe_layers, (long long)cfg.num_experts,
                   (long long)cfg.num_experts_per_tok);
        if (cfg.num_nextn_predict_layers > 0) printf(" + %lld MTP", (long long)cfg.num_nextn_predict_layers);
        printf("\n");
        if (cfg.has_quantization_config)
            printf("note: config.json already carries a quantization_config; the plan assumes "
                   "unquantized weights\n");
        printf("\n");
        print_params(&cfg, p);
        print_sizes(&cfg, p, &o);
        print_tp(&cfg, p, &o);
        print_compress(&cfg, p, &o);
    }
    free(p);
    qn_config_free(&cfg);
    return rc;
}
