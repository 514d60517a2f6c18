/* quench — config.json (and generation_config.json) of a Hugging Face model folder.
 *
 *   qn_model_config cfg;
 *   if (qn_config_load_dir("models/stories260K", &cfg, &err)) ...;     // or qn_config_load_file
 *   ... cfg.hidden_size, cfg.head_dim ...
 *   qn_config_free(&cfg);
 *
 * Every value comes from config.json; a missing key takes the transformers class default of that
 * architecture (../shared/docs/architectures.md §2). Unknown architectures are refused with a
 * message listing the supported ones. Values are range-checked (positive sizes, heads dividing,
 * bounded counts) so later allocations can trust them.
 */
#ifndef QUENCH_CONFIG_H
#define QUENCH_CONFIG_H

#include <stdint.h>

#include "quench/status.h"

typedef enum {
    QN_ARCH_LLAMA,       /* LlamaForCausalLM / llama */
    QN_ARCH_MISTRAL,     /* MistralForCausalLM / mistral */
    QN_ARCH_QWEN2,       /* Qwen2ForCausalLM / qwen2 */
    QN_ARCH_QWEN3,       /* Qwen3ForCausalLM / qwen3 */
    QN_ARCH_QWEN3_MOE,   /* Qwen3MoeForCausalLM / qwen3_moe */
    QN_ARCH_GLM4_MOE,    /* Glm4MoeForCausalLM / glm4_moe */
    QN_ARCH_DEEPSEEK_V3, /* DeepseekV3ForCausalLM / deepseek_v3 (config/planning only) */
    QN_ARCH_COUNT
} qn_arch;

typedef enum { QN_ROPE_DEFAULT, QN_ROPE_LLAMA3, QN_ROPE_LINEAR, QN_ROPE_YARN } qn_rope_type;

#define QN_MAX_EOS 8

typedef struct {
    qn_arch arch;
    char architecture[64];   /* architectures[0] as written */
    char model_type[32];
    char torch_dtype[16];    /* "bfloat16", "float16", "float32" (torch_dtype or dtype), "" if absent */

    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t num_key_value_heads;
    int64_t head_dim;
    int64_t max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    double partial_rotary_factor;   /* 1.0 unless given (GLM-4.5: 0.5) */
    qn_rope_type rope_type;
    double rope_factor;                         /* rope_scaling.factor */
    double rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    int64_t rope_original_max_position;         /* llama3/yarn: original_max_position_embeddings */
    double rope_beta_fast, rope_beta_slow;      /* yarn (defaults 32 / 1) */
    double rope_mscale, rope_mscale_all_dim;    /* yarn (0 = absent) */
    int rope_interleave;     /* DeepSeek rope_interleave (default true); 0 elsewhere */
    char hidden_act[16];     /* "silu" unless given */

    int attention_bias;      /* q,k,v biases (Qwen2 always; GLM-4.5 from config) */
    int o_bias;              /* o_proj bias (Llama attention_bias) */
    int mlp_bias;
    int use_qk_norm;         /* Qwen3, Qwen3-MoE always; GLM-4.5 from config */
    int tie_word_embeddings;
    int64_t sliding_window;  /* 0 = none / not used */

    /* MoE (0 when dense) */
    int64_t num_experts;             /* num_experts / num_local_experts / n_routed_experts */
    int64_t num_experts_per_tok;
    int64_t moe_intermediate_size;
    int64_t n_shared_experts;
    int64_t shared_expert_intermediate_size; /* 0 unless given */
    int64_t n_group, topk_group;
    int norm_topk_prob;
    double routed_scaling_factor;
    int64_t first_k_dense_replace;
    int64_t decoder_sparse_step;
    int64_t moe_layer_freq;          /* DeepSeek (default 1); 1 elsewhere */
    int64_t *mlp_only_layers; int64_t n_mlp_only_layers;   /* owned */
    int64_t num_nextn_predict_layers; /* MTP layers after num_hidden_layers (GLM-4.5, DeepSeek) */

    /* DeepSeek MLA */
    int64_t q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim;

    int32_t bos_token_id;            /* -1 if absent */
    int32_t eos_token_ids[QN_MAX_EOS]; int n_eos;   /* config.json, replaced by generation_config.json's when present */
    int has_quantization_config;     /* config.json carries quantization_config */
} qn_model_config;

qn_status qn_config_load_file(const char *config_json_path, qn_model_config *cfg, qn_error *err);
/* dir/config.json, plus dir/generation_config.json for eos ids when present. */
qn_status qn_config_load_dir(const char *dir, qn_model_config *cfg, qn_error *err);
void qn_config_free(qn_model_config *cfg);

const char *qn_arch_name(qn_arch a);             /* "LlamaForCausalLM", ... */
/* "LlamaForCausalLM, MistralForCausalLM, ..." */
const char *qn_supported_architectures(void);
/* 1 when layer `i` has a routed-experts MoE block (per first_k_dense_replace, mlp_only_layers,
 * decoder_sparse_step), 0 when it is a dense MLP. */
int qn_config_layer_is_moe(const qn_model_config *cfg, int64_t layer);
/* 1 if quench can run the forward pass of this architecture (Llama family for now). */
int qn_config_forward_supported(const qn_model_config *cfg);

#endif
