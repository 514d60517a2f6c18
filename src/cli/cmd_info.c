/* quench info MODEL: what a model folder holds. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "quench/config.h"
#include "quench/plan.h"
#include "quench/safetensors.h"
#include "quench/tokenizer.h"

enum { C_EMBED, C_ATTN, C_MLP, C_EXPERTS, C_SHARED, C_ROUTER, C_NORM, C_LMHEAD, C_MTP, C_OTHER, C_N };
static const char *const k_comp[C_N] = {"embeddings", "attention", "dense_mlp", "routed_experts", "shared_experts",
                                        "routers", "norms", "lm_head", "mtp_layers", "other"};

static int classify(const char *name, int64_t n_layers) {
    if (!strncmp(name, "model.layers.", 13)) {
        long long li = atoll(name + 13);
        if (li >= n_layers) return C_MTP;
    }
    if (strstr(name, "embed_tokens")) return C_EMBED;
    if (!strncmp(name, "lm_head", 7)) return C_LMHEAD;
    if (strstr(name, "norm")) return C_NORM;
    if (strstr(name, ".self_attn.")) return C_ATTN;
    if (strstr(name, ".mlp.experts.")) return C_EXPERTS;
    if (strstr(name, ".mlp.shared_expert")) return C_SHARED;
    if (strstr(name, ".mlp.gate.") || strstr(name, "e_score_correction_bias") || strstr(name, "shared_expert_gate"))
        return C_ROUTER;
    if (strstr(name, ".mlp.")) return C_MLP;
    return C_OTHER;
}

static uint64_t dir_size(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t total = 0;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (!stat(p, &sb)) total += S_ISDIR(sb.st_mode) ? dir_size(p) : (uint64_t)sb.st_size;
    }
    closedir(d);
    return total;
}

int cmd_info(int argc, char **argv) {
    int json = 0;
    const cli_opt opts[] = {{"--json", CLI_FLAG, &json, "machine-readable output", NULL}, {0}};
    char *pos[1];
    int np;
    int rc = cli_parse(argc, argv, opts,
                       "usage: quench info MODEL [--json]\n\n"
                       "Architecture, parameter count by component, dtypes, size on disk, tensor count and\n"
                       "tokenizer kind of a Hugging Face model folder.",
                       pos, 1, &np);
    if (rc) return rc == 1 ? 0 : 2;
    if (np != 1) return cli_failf("info", "expected one MODEL folder (see quench info --help)");
    const char *dir = pos[0];
    qn_error err = {0};
    qn_model_config cfg;
    if (qn_config_load_dir(dir, &cfg, &err)) return cli_fail("info", &err);
    qn_st_set *set = NULL;
    if (qn_st_set_open_dir(dir, &set, &err)) { qn_config_free(&cfg); return cli_fail("info", &err); }
    int64_t counts[C_N] = {0}, total = 0;
    int64_t dtype_counts[QN_DT_COUNT] = {0};
    size_t nt = qn_st_set_count(set);
    for (size_t i = 0; i < nt; i++) {
        const qn_tensor *t = qn_st_set_get(set, i);
        int64_t n = qn_tensor_numel(t);
        counts[classify(t->name, cfg.num_hidden_layers)] += n;
        dtype_counts[t->dtype] += n;
        total += n;
    }
    qn_tokenizer *tok = NULL;
    qn_error terr = {0};
    int have_tok = qn_tokenizer_load_dir(dir, &tok, &terr) == QN_OK;
    uint64_t disk = dir_size(dir);
    /* active parameters per token from config.json (MoE: k of E routed experts) */
    qn_param_counts cnt;
    qn_error perr = {0};
    int have_pc = qn_plan_count_params(&cfg, &cnt, &perr) == QN_OK;
    int64_t n_moe = 0;
    for (int64_t i = 0; i < cfg.num_hidden_layers; i++) n_moe += qn_config_layer_is_moe(&cfg, i);
    char b1[32], b2[32];
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", dir);
        cJSON_AddStringToObject(o, "architecture", cfg.architecture);
        cJSON_AddStringToObject(o, "model_type", cfg.model_type);
        cJSON_AddStringToObject(o, "torch_dtype", cfg.torch_dtype);
        cJSON_AddNumberToObject(o, "num_hidden_layers", (double)cfg.num_hidden_layers);
        cJSON_AddNumberToObject(o, "hidden_size", (double)cfg.hidden_size);
        cJSON_AddNumberToObject(o, "vocab_size", (double)cfg.vocab_size);
        cJSON_AddNumberToObject(o, "parameters", (double)total);
        cJSON *pc = cJSON_AddObjectToObject(o, "parameters_by_component");
        for (int c = 0; c < C_N; c++) if (counts[c]) cJSON_AddNumberToObject(pc, k_comp[c], (double)counts[c]);
        cJSON *dc = cJSON_AddObjectToObject(o, "parameters_by_dtype");
        for (int d = 0; d < QN_DT_COUNT; d++) if (dtype_counts[d]) cJSON_AddNumberToObject(dc, qn_dtype_name((qn_dtype)d), (double)dtype_counts[d]);
        cJSON_AddNumberToObject(o, "tensors", (double)nt);
        cJSON_AddNumberToObject(o, "safetensors_files", (double)qn_st_set_file_count(set));
        cJSON_AddNumberToObject(o, "tensor_bytes", (double)qn_st_set_total_bytes(set));
        cJSON_AddNumberToObject(o, "size_on_disk", (double)disk);
        cJSON_AddBoolToObject(o, "quantized", cfg.has_quantization_config);
        cJSON *ly = cJSON_AddObjectToObject(o, "layers");
        cJSON_AddNumberToObject(ly, "dense", (double)(cfg.num_hidden_layers - n_moe));
        cJSON_AddNumberToObject(ly, "moe", (double)n_moe);
        cJSON_AddNumberToObject(ly, "mtp", (double)cfg.num_nextn_predict_layers);
        if (cfg.num_experts) {
            cJSON_AddNumberToObject(o, "experts_per_moe_layer", (double)cfg.num_experts);
            cJSON_AddNumberToObject(o, "experts_per_token", (double)cfg.num_experts_per_tok);
        }
        if (have_pc) cJSON_AddNumberToObject(o, "active_parameters_per_token", (double)cnt.active_params);
        if (have_tok) {
            cJSON_AddStringToObject(o, "tokenizer", qn_tokenizer_kind_name(qn_tokenizer_get_kind(tok)));
            cJSON_AddNumberToObject(o, "tokenizer_vocab", (double)qn_tokenizer_vocab_size(tok));
        } else {
            cJSON_AddNullToObject(o, "tokenizer");
        }
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("model         %s\n", dir);
        printf("architecture  %s (model_type %s)\n", cfg.architecture, cfg.model_type);
        printf("shape         %lld layers, hidden %lld, intermediate %lld, heads %lld/%lld kv, head_dim %lld, vocab %lld\n",
               (long long)cfg.num_hidden_layers, (long long)cfg.hidden_size, (long long)cfg.intermediate_size,
               (long long)cfg.num_attention_heads, (long long)cfg.num_key_value_heads, (long long)cfg.head_dim,
               (long long)cfg.vocab_size);
        if (cfg.num_experts)
            printf("experts       %lld routed (top-%lld), %lld shared, moe_intermediate %lld\n", (long long)cfg.num_experts,
                   (long long)cfg.num_experts_per_tok, (long long)cfg.n_shared_experts, (long long)cfg.moe_intermediate_size);
        printf("layers        %lld dense, %lld MoE", (long long)(cfg.num_hidden_layers - n_moe), (long long)n_moe);
        if (cfg.num_nextn_predict_layers)
            printf(", %lld MTP (layers %lld.., not run; carried unchanged)", (long long)cfg.num_nextn_predict_layers,
                   (long long)cfg.num_hidden_layers);
        printf("\n");
        if (cfg.num_experts && have_pc)
            printf("active        %lld parameters per token (%s), of %lld in config.json's decoder\n", (long long)cnt.active_params,
                   cli_count((double)cnt.active_params, b1, sizeof b1), (long long)cnt.total_params);
        printf("dtype         %s (config)", cfg.torch_dtype[0] ? cfg.torch_dtype : "unspecified");
        for (int d = 0; d < QN_DT_COUNT; d++)
            if (dtype_counts[d]) printf("; %s %s", qn_dtype_name((qn_dtype)d), cli_count((double)dtype_counts[d], b1, sizeof b1));
        printf(" parameters\n");
        printf("parameters    %lld (%s)\n", (long long)total, cli_count((double)total, b1, sizeof b1));
        for (int c = 0; c < C_N; c++)
            if (counts[c]) printf("  %-16s %14lld  %6.2f%%\n", k_comp[c], (long long)counts[c], 100.0 * (double)counts[c] / (double)(total ? total : 1));
        printf("tensors       %zu in %zu safetensors file(s), %s of tensor data\n", nt, qn_st_set_file_count(set),
               cli_bytes((double)qn_st_set_total_bytes(set), b1, sizeof b1));
        printf("size on disk  %s\n", cli_bytes((double)disk, b2, sizeof b2));
        printf("quantized     %s\n", cfg.has_quantization_config ? "yes (quantization_config present)" : "no");
        if (have_tok)
            printf("tokenizer     %s, %zu tokens\n", qn_tokenizer_kind_name(qn_tokenizer_get_kind(tok)), qn_tokenizer_vocab_size(tok));
        else
            printf("tokenizer     none (%s)\n", terr.msg);
    }
    qn_tokenizer_free(tok);
    qn_st_set_free(set);
    qn_config_free(&cfg);
    return 0;
}
