/* config.json parsing: the bundled models' values (from their READMEs), class defaults per
 * architecture (docs/architectures.md §2), rope_scaling variants, and crafted bad configs. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quench/config.h"

static qn_status load_shared(const char *rel, qn_model_config *cfg, qn_error *err) {
    char *p = tu_shared(rel);
    qn_status st = qn_config_load_dir(p, cfg, err);
    free(p);
    return st;
}

/* Writes `json` as <tmp>/config.json (and `gen` as generation_config.json when non-NULL), loads
 * the folder. */
static qn_status load_text(const char *json, const char *gen, qn_model_config *cfg, qn_error *err) {
    char *dir = tu_tmpdir();
    assert_non_null(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_int_equal(tu_write_file(path, json, strlen(json)), 0);
    if (gen) {
        snprintf(path, sizeof path, "%s/generation_config.json", dir);
        assert_int_equal(tu_write_file(path, gen, strlen(gen)), 0);
    }
    qn_status st = qn_config_load_dir(dir, cfg, err);
    tu_rmrf(dir);
    free(dir);
    return st;
}

/* Expects failure with `code` and a message containing every non-NULL needle. */
static void expect_fail(const char *json, qn_status code, const char *n1, const char *n2) {
    qn_model_config cfg;
    qn_error err = {0};
    qn_status st = load_text(json, NULL, &cfg, &err);
    if (st != code) fprintf(stderr, "got %d (%s) for: %s\n", st, err.msg, json);
    assert_int_equal(st, code);
    assert_non_null(strstr(err.msg, "config.json"));
    if (n1 && !strstr(err.msg, n1)) fail_msg("message '%s' lacks '%s'", err.msg, n1);
    if (n2 && !strstr(err.msg, n2)) fail_msg("message '%s' lacks '%s'", err.msg, n2);
}

static void test_stories260k(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_shared("models/stories260K", &c, &err), QN_OK);
    assert_int_equal(c.arch, QN_ARCH_LLAMA);
    assert_string_equal(c.architecture, "LlamaForCausalLM");
    assert_string_equal(c.model_type, "llama");
    assert_string_equal(c.torch_dtype, "float32");
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.intermediate_size, 172);
    assert_int_equal(c.num_hidden_layers, 5);
    assert_int_equal(c.num_attention_heads, 8);
    assert_int_equal(c.num_key_value_heads, 4);
    assert_int_equal(c.head_dim, 8);
    assert_int_equal(c.vocab_size, 512);
    assert_int_equal(c.max_position_embeddings, 512);
    assert_true(c.rms_norm_eps == 1e-5);
    assert_true(c.rope_theta == 10000.0);
    assert_true(c.partial_rotary_factor == 1.0);
    assert_int_equal(c.rope_type, QN_ROPE_DEFAULT);
    assert_int_equal(c.tie_word_embeddings, 1);
    assert_int_equal(c.attention_bias, 0);
    assert_int_equal(c.o_bias, 0);
    assert_int_equal(c.mlp_bias, 0);
    assert_int_equal(c.num_experts, 0);
    assert_int_equal(c.bos_token_id, 1);
    /* generation_config.json's [2, 1] replaces config.json's 2 */
    assert_int_equal(c.n_eos, 2);
    assert_int_equal(c.eos_token_ids[0], 2);
    assert_int_equal(c.eos_token_ids[1], 1);
    assert_int_equal(c.has_quantization_config, 0);
    assert_true(qn_config_forward_supported(&c));
    assert_int_equal(qn_config_layer_is_moe(&c, 0), 0);
    qn_config_free(&c);

    /* the file alone keeps config.json's eos */
    char *p = tu_shared("models/stories260K/config.json");
    assert_int_equal(qn_config_load_file(p, &c, &err), QN_OK);
    free(p);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_token_ids[0], 2);
    qn_config_free(&c);
}

static void test_stories260k_hd64(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_shared("models/stories260K-hd64", &c, &err), QN_OK);
    assert_int_equal(c.hidden_size, 128);
    assert_int_equal(c.intermediate_size, 256);
    assert_int_equal(c.num_attention_heads, 8);
    assert_int_equal(c.num_key_value_heads, 4);
    assert_int_equal(c.head_dim, 64); /* explicit, != H/nh = 16 */
    assert_true(c.rms_norm_eps == 5e-6);
    assert_int_equal(c.tie_word_embeddings, 0);
    qn_config_free(&c);
}

static void test_tiny_mistral(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_shared("models/tiny-random-mistral", &c, &err), QN_OK);
    assert_int_equal(c.arch, QN_ARCH_MISTRAL);
    assert_string_equal(c.torch_dtype, "bfloat16"); /* from "dtype" */
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.num_hidden_layers, 2);
    assert_int_equal(c.num_attention_heads, 4);
    assert_int_equal(c.num_key_value_heads, 2);
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.intermediate_size, 128);
    assert_true(c.rope_theta == 1e6);
    assert_int_equal(c.sliding_window, 0); /* null */
    assert_int_equal(c.attention_bias, 0);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_token_ids[0], 2);
    assert_true(qn_config_forward_supported(&c));
    qn_config_free(&c);
}

static void test_tiny_qwen2(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_shared("models/tiny-random-qwen2", &c, &err), QN_OK);
    assert_int_equal(c.arch, QN_ARCH_QWEN2);
    assert_int_equal(c.hidden_size, 128);
    assert_int_equal(c.num_attention_heads, 8);
    assert_int_equal(c.num_key_value_heads, 2);
    assert_int_equal(c.head_dim, 16); /* no head_dim key: H/nh */
    assert_int_equal(c.attention_bias, 1); /* always for Qwen2 */
    assert_int_equal(c.o_bias, 0);
    assert_int_equal(c.use_qk_norm, 0);
    assert_int_equal(c.sliding_window, 0);
    assert_true(c.rms_norm_eps == 1e-6);
    assert_true(qn_config_forward_supported(&c));
    qn_config_free(&c);
}

static void test_tiny_qwen3(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_shared("models/tiny-random-qwen3", &c, &err), QN_OK);
    assert_int_equal(c.arch, QN_ARCH_QWEN3);
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.head_dim, 32);
    assert_int_equal(c.use_qk_norm, 1);
    assert_int_equal(c.attention_bias, 0);
    assert_int_equal(c.num_experts, 0);
    qn_config_free(&c);
}

static void test_tiny_qwen3_moe(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_shared("models/tiny-random-qwen3-moe", &c, &err), QN_OK);
    assert_int_equal(c.arch, QN_ARCH_QWEN3_MOE);
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.num_hidden_layers, 3);
    assert_int_equal(c.head_dim, 32);
    assert_int_equal(c.intermediate_size, 128);
    assert_int_equal(c.moe_intermediate_size, 32);
    assert_int_equal(c.num_experts, 8);
    assert_int_equal(c.num_experts_per_tok, 2);
    assert_int_equal(c.n_shared_experts, 0);
    assert_int_equal(c.norm_topk_prob, 1);
    assert_int_equal(c.decoder_sparse_step, 1);
    assert_int_equal(c.n_mlp_only_layers, 1);
    assert_int_equal(c.mlp_only_layers[0], 0);
    assert_int_equal(c.use_qk_norm, 1);
    assert_int_equal(qn_config_layer_is_moe(&c, 0), 0);
    assert_int_equal(qn_config_layer_is_moe(&c, 1), 1);
    assert_int_equal(qn_config_layer_is_moe(&c, 2), 1);
    assert_int_equal(qn_config_layer_is_moe(&c, 3), 0);
    qn_config_free(&c);
}

static void test_tiny_glm4_moe(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_shared("models/tiny-random-glm4-moe", &c, &err), QN_OK);
    assert_int_equal(c.arch, QN_ARCH_GLM4_MOE);
    assert_string_equal(c.torch_dtype, "bfloat16");
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.num_hidden_layers, 3);
    assert_int_equal(c.num_attention_heads, 4);
    assert_int_equal(c.num_key_value_heads, 2);
    assert_int_equal(c.head_dim, 32);
    assert_true(c.partial_rotary_factor == 0.5);
    assert_true(c.rope_theta == 1e6);
    assert_true(c.rms_norm_eps == 1e-5);
    assert_int_equal(c.intermediate_size, 128);
    assert_int_equal(c.moe_intermediate_size, 32);
    assert_int_equal(c.num_experts, 8);
    assert_int_equal(c.num_experts_per_tok, 2);
    assert_int_equal(c.n_shared_experts, 1);
    assert_int_equal(c.first_k_dense_replace, 1);
    assert_int_equal(c.n_group, 2);
    assert_int_equal(c.topk_group, 1);
    assert_true(c.routed_scaling_factor == 1.0);
    assert_int_equal(c.norm_topk_prob, 1);
    assert_int_equal(c.num_nextn_predict_layers, 1);
    assert_int_equal(c.attention_bias, 1);
    assert_int_equal(c.o_bias, 0);
    assert_int_equal(c.use_qk_norm, 0);
    assert_int_equal(c.tie_word_embeddings, 0);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_token_ids[0], 2);
    assert_int_equal(qn_config_layer_is_moe(&c, 0), 0);
    assert_int_equal(qn_config_layer_is_moe(&c, 1), 1);
    assert_int_equal(qn_config_layer_is_moe(&c, 2), 1);
    assert_int_equal(qn_config_layer_is_moe(&c, 3), 1); /* MTP layer is a MoE layer */
    assert_int_equal(qn_config_layer_is_moe(&c, 4), 0);
    assert_true(qn_config_forward_supported(&c));
    qn_config_free(&c);
}

static void test_shipped_large_configs(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    char *p = tu_source("tests/data/configs/GLM-4.5-Air");
    assert_int_equal(qn_config_load_dir(p, &c, &err), QN_OK);
    free(p);
    assert_int_equal(c.arch, QN_ARCH_GLM4_MOE);
    assert_int_equal(c.num_attention_heads, 96);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.num_experts, 128);
    assert_int_equal(c.n_eos, 3);
    assert_int_equal(c.eos_token_ids[2], 151338);
    qn_config_free(&c);

    p = tu_source("tests/data/configs/Qwen3-30B-A3B");
    assert_int_equal(qn_config_load_dir(p, &c, &err), QN_OK);
    free(p);
    assert_int_equal(c.arch, QN_ARCH_QWEN3_MOE);
    assert_int_equal(c.head_dim, 128); /* explicit; H/nh would be 64 */
    assert_int_equal(c.num_hidden_layers, 48);
    qn_config_free(&c);

    p = tu_source("tests/data/configs/Llama-3-8B/config.json");
    assert_int_equal(qn_config_load_file(p, &c, &err), QN_OK);
    free(p);
    assert_int_equal(c.arch, QN_ARCH_LLAMA);
    assert_int_equal(c.vocab_size, 128256);
    assert_int_equal(c.head_dim, 128);
    assert_true(c.rope_theta == 500000.0);
    qn_config_free(&c);
}

/* --- class defaults --- */

static void test_defaults(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};

    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"]}", NULL, &c, &err), QN_OK);
    assert_int_equal(c.vocab_size, 32000);
    assert_int_equal(c.hidden_size, 4096);
    assert_int_equal(c.intermediate_size, 11008);
    assert_int_equal(c.num_key_value_heads, 32); /* = heads */
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.max_position_embeddings, 2048);
    assert_true(c.rms_norm_eps == 1e-6);
    assert_string_equal(c.model_type, "llama");
    assert_string_equal(c.torch_dtype, "");
    assert_int_equal(c.bos_token_id, -1);
    assert_int_equal(c.n_eos, 0);
    qn_config_free(&c);

    /* Llama: kv default follows the given head count */
    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"],\"num_attention_heads\":16,"
                               "\"hidden_size\":1024}", NULL, &c, &err), QN_OK);
    assert_int_equal(c.num_key_value_heads, 16);
    assert_int_equal(c.head_dim, 64);
    qn_config_free(&c);

    assert_int_equal(load_text("{\"architectures\":[\"MistralForCausalLM\"]}", NULL, &c, &err), QN_OK);
    assert_int_equal(c.num_key_value_heads, 8);
    assert_int_equal(c.intermediate_size, 14336);
    assert_int_equal(c.sliding_window, 4096);
    assert_int_equal(c.max_position_embeddings, 131072);
    qn_config_free(&c);

    assert_int_equal(load_text("{\"architectures\":[\"Qwen2ForCausalLM\"],\"sliding_window\":4096}",
                               NULL, &c, &err), QN_OK);
    assert_int_equal(c.vocab_size, 151936);
    assert_int_equal(c.intermediate_size, 22016);
    assert_int_equal(c.sliding_window, 0); /* use_sliding_window defaults to false */
    qn_config_free(&c);

    /* Qwen3: num_key_value_heads defaults to the fixed 32 of the class, not to the head count */
    expect_fail("{\"architectures\":[\"Qwen3ForCausalLM\"],\"num_attention_heads\":16}", QN_ERR_FORMAT,
                "num_key_value_heads 32", NULL);
    assert_int_equal(load_text("{\"architectures\":[\"Qwen3ForCausalLM\"],\"hidden_size\":1024,"
                               "\"num_attention_heads\":16,\"num_key_value_heads\":4}", NULL, &c, &err),
                     QN_OK);
    assert_int_equal(c.head_dim, 128); /* H/nh would be 64 */
    assert_int_equal(c.use_qk_norm, 1);
    qn_config_free(&c);

    assert_int_equal(load_text("{\"architectures\":[\"Qwen3MoeForCausalLM\"]}", NULL, &c, &err), QN_OK);
    assert_int_equal(c.hidden_size, 2048);
    assert_int_equal(c.head_dim, 64); /* H/nh when the key is absent */
    assert_int_equal(c.num_experts, 128);
    assert_int_equal(c.num_experts_per_tok, 8);
    assert_int_equal(c.moe_intermediate_size, 768);
    assert_int_equal(c.num_key_value_heads, 4);
    assert_int_equal(c.num_hidden_layers, 24);
    assert_int_equal(c.norm_topk_prob, 0);
    assert_int_equal(c.n_mlp_only_layers, 0);
    assert_int_equal(qn_config_layer_is_moe(&c, 0), 1);
    qn_config_free(&c);

    /* num_local_experts spelling; decoder_sparse_step 2 */
    assert_int_equal(load_text("{\"architectures\":[\"Qwen3MoeForCausalLM\"],\"num_local_experts\":16,"
                               "\"decoder_sparse_step\":2}", NULL, &c, &err), QN_OK);
    assert_int_equal(c.num_experts, 16);
    assert_int_equal(qn_config_layer_is_moe(&c, 0), 0);
    assert_int_equal(qn_config_layer_is_moe(&c, 1), 1);
    qn_config_free(&c);

    assert_int_equal(load_text("{\"architectures\":[\"Glm4MoeForCausalLM\"]}", NULL, &c, &err), QN_OK);
    assert_int_equal(c.vocab_size, 151552);
    assert_int_equal(c.num_hidden_layers, 46);
    assert_int_equal(c.num_attention_heads, 96);
    assert_int_equal(c.num_key_value_heads, 8);
    assert_int_equal(c.head_dim, 4096 / 96);
    assert_true(c.rms_norm_eps == 1e-5);
    assert_true(c.partial_rotary_factor == 0.5);
    assert_int_equal(c.intermediate_size, 10944);
    assert_int_equal(c.moe_intermediate_size, 1408);
    assert_int_equal(c.num_experts, 128);
    assert_int_equal(c.n_shared_experts, 1);
    assert_int_equal(c.first_k_dense_replace, 1);
    assert_int_equal(c.n_group, 1);
    assert_int_equal(c.topk_group, 1);
    assert_int_equal(c.norm_topk_prob, 1);
    assert_int_equal(c.num_nextn_predict_layers, 0);
    qn_config_free(&c);

    assert_int_equal(load_text("{\"architectures\":[\"DeepseekV3ForCausalLM\"]}", NULL, &c, &err), QN_OK);
    assert_int_equal(c.hidden_size, 7168);
    assert_int_equal(c.num_hidden_layers, 61);
    assert_int_equal(c.num_experts, 256);
    assert_int_equal(c.moe_intermediate_size, 2048);
    assert_int_equal(c.n_group, 8);
    assert_int_equal(c.topk_group, 4);
    assert_true(c.routed_scaling_factor == 2.5);
    assert_int_equal(c.first_k_dense_replace, 3);
    assert_int_equal(c.q_lora_rank, 1536);
    assert_int_equal(c.kv_lora_rank, 512);
    assert_int_equal(c.qk_nope_head_dim, 128);
    assert_int_equal(c.qk_rope_head_dim, 64);
    assert_int_equal(c.v_head_dim, 128);
    assert_int_equal(c.rope_interleave, 1);
    assert_int_equal(qn_config_layer_is_moe(&c, 2), 0);
    assert_int_equal(qn_config_layer_is_moe(&c, 3), 1);
    qn_config_free(&c);

    /* model_type alone selects the architecture when `architectures` is absent */
    assert_int_equal(load_text("{\"model_type\":\"qwen2\"}", NULL, &c, &err), QN_OK);
    assert_int_equal(c.arch, QN_ARCH_QWEN2);
    assert_string_equal(c.architecture, "Qwen2ForCausalLM");
    qn_config_free(&c);
}

static void test_rope_scaling(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"],\"max_position_embeddings\":131072,"
                               "\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,"
                               "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192,"
                               "\"rope_type\":\"llama3\"},\"rope_theta\":500000.0}", NULL, &c, &err),
                     QN_OK);
    assert_int_equal(c.rope_type, QN_ROPE_LLAMA3);
    assert_true(c.rope_factor == 8.0);
    assert_true(c.rope_low_freq_factor == 1.0);
    assert_true(c.rope_high_freq_factor == 4.0);
    assert_int_equal(c.rope_original_max_position, 8192);
    assert_true(c.rope_theta == 500000.0);
    qn_config_free(&c);

    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"],"
                               "\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}}", NULL, &c, &err),
                     QN_OK);
    assert_int_equal(c.rope_type, QN_ROPE_LINEAR);
    assert_true(c.rope_factor == 2.0);
    qn_config_free(&c);

    assert_int_equal(load_text("{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"rope_scaling\":{"
                               "\"type\":\"yarn\",\"factor\":40,\"original_max_position_embeddings\":4096,"
                               "\"beta_fast\":32,\"beta_slow\":1,\"mscale\":1.0,\"mscale_all_dim\":1.0}}",
                               NULL, &c, &err), QN_OK);
    assert_int_equal(c.rope_type, QN_ROPE_YARN);
    assert_true(c.rope_factor == 40.0);
    assert_int_equal(c.rope_original_max_position, 4096);
    assert_true(c.rope_mscale_all_dim == 1.0);
    qn_config_free(&c);

    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"],"
                               "\"rope_scaling\":{\"rope_type\":\"default\"}}", NULL, &c, &err), QN_OK);
    assert_int_equal(c.rope_type, QN_ROPE_DEFAULT);
    qn_config_free(&c);

    /* transformers v5 rope_parameters */
    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"],"
                               "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":250000}}",
                               NULL, &c, &err), QN_OK);
    assert_true(c.rope_theta == 250000.0);
    qn_config_free(&c);

    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"rope_scaling\":{\"rope_type\":\"dynamic\","
                "\"factor\":2}}", QN_ERR_UNSUPPORTED, "dynamic", "llama3");
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"rope_scaling\":{\"rope_type\":\"llama3\"}}",
                QN_ERR_FORMAT, "rope_scaling.factor", NULL);
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"rope_scaling\":{\"rope_type\":\"linear\","
                "\"factor\":\"2\"}}", QN_ERR_FORMAT, "rope_scaling.factor", "a string");
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"rope_scaling\":[1]}", QN_ERR_FORMAT,
                "rope_scaling", "an array");
}

static void test_eos_variants(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"],\"eos_token_id\":[128001,128008,"
                               "128009]}", NULL, &c, &err), QN_OK);
    assert_int_equal(c.n_eos, 3);
    assert_int_equal(c.eos_token_ids[1], 128008);
    qn_config_free(&c);

    /* generation_config.json's int replaces the config list */
    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"],\"eos_token_id\":[5,6]}",
                               "{\"eos_token_id\":7}", &c, &err), QN_OK);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_token_ids[0], 7);
    qn_config_free(&c);

    /* generation_config.json without eos keeps config.json's */
    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"],\"eos_token_id\":[5,6]}",
                               "{\"do_sample\":false}", &c, &err), QN_OK);
    assert_int_equal(c.n_eos, 2);
    qn_config_free(&c);

    /* a malformed generation_config.json is an error naming that file */
    qn_status st = load_text("{\"architectures\":[\"LlamaForCausalLM\"]}", "{\"eos_token_id\":", &c, &err);
    assert_int_equal(st, QN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "generation_config.json"));
    st = load_text("{\"architectures\":[\"LlamaForCausalLM\"]}", "{\"eos_token_id\":\"x\"}", &c, &err);
    assert_int_equal(st, QN_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "generation_config.json"));
    assert_non_null(strstr(err.msg, "eos_token_id"));

    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"eos_token_id\":[1,2,3,4,5,6,7,8,9]}",
                QN_ERR_FORMAT, "eos_token_id", NULL);
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"eos_token_id\":[1,\"2\"]}", QN_ERR_FORMAT,
                "eos_token_id", NULL);
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"eos_token_id\":-3}", QN_ERR_FORMAT,
                "eos_token_id", NULL);
}

/* --- bad configs --- */

static void test_bad_configs(void **state) {
    (void)state;
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64", QN_ERR_FORMAT,
                "invalid JSON", NULL);
    expect_fail("", QN_ERR_FORMAT, "invalid JSON", NULL);
    expect_fail("[1,2]", QN_ERR_FORMAT, "not a JSON object", NULL);
    expect_fail("{\"architectures\":[\"FooForCausalLM\"]}", QN_ERR_UNSUPPORTED,
                "architectures[0] 'FooForCausalLM' is not supported (supported: LlamaForCausalLM, "
                "MistralForCausalLM", "DeepseekV3ForCausalLM)");
    expect_fail("{\"architectures\":[]}", QN_ERR_FORMAT, "architectures", NULL);
    expect_fail("{\"architectures\":[42]}", QN_ERR_FORMAT, "architectures[0]", "a number");
    expect_fail("{\"architectures\":\"LlamaForCausalLM\"}", QN_ERR_FORMAT, "architectures", NULL);
    expect_fail("{\"hidden_size\":64}", QN_ERR_FORMAT, "architectures", "model_type");
    expect_fail("{\"model_type\":\"gpt2\"}", QN_ERR_UNSUPPORTED, "gpt2", "LlamaForCausalLM");
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":-64}", QN_ERR_FORMAT,
                "hidden_size", "-64");
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":0}", QN_ERR_FORMAT,
                "hidden_size", NULL);
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"num_attention_heads\":8,"
                "\"num_key_value_heads\":3}", QN_ERR_FORMAT, "num_attention_heads 8",
                "num_key_value_heads 3");
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":\"64\"}", QN_ERR_FORMAT,
                "field 'hidden_size' must be an integer", "a string");
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64.5}", QN_ERR_FORMAT,
                "hidden_size", NULL);
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"tie_word_embeddings\":\"yes\"}",
                QN_ERR_FORMAT, "tie_word_embeddings", "a boolean");
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"rms_norm_eps\":\"1e-5\"}", QN_ERR_FORMAT,
                "rms_norm_eps", NULL);
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"rms_norm_eps\":0}", QN_ERR_FORMAT,
                "rms_norm_eps", NULL);
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"torch_dtype\":7}", QN_ERR_FORMAT,
                "torch_dtype", NULL);
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"torch_dtype\":\"int8\"}", QN_ERR_UNSUPPORTED,
                "torch_dtype", "int8");
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"num_hidden_layers\":20000}", QN_ERR_FORMAT,
                "num_hidden_layers", NULL);
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":4294967296}", QN_ERR_FORMAT,
                "vocab_size", NULL);
    expect_fail("{\"architectures\":[\"LlamaForCausalLM\"],\"head_dim\":-1}", QN_ERR_FORMAT,
                "head_dim", NULL);
    expect_fail("{\"architectures\":[\"Qwen3MoeForCausalLM\"],\"num_experts\":200000}", QN_ERR_FORMAT,
                "num_experts", NULL);
    expect_fail("{\"architectures\":[\"Qwen3MoeForCausalLM\"],\"num_experts\":4,\"num_experts_per_tok\":8}",
                QN_ERR_FORMAT, "num_experts_per_tok", NULL);
    expect_fail("{\"architectures\":[\"Qwen3MoeForCausalLM\"],\"mlp_only_layers\":[0,99]}", QN_ERR_FORMAT,
                "mlp_only_layers", NULL);
    expect_fail("{\"architectures\":[\"Qwen3MoeForCausalLM\"],\"mlp_only_layers\":3}", QN_ERR_FORMAT,
                "mlp_only_layers", NULL);
    expect_fail("{\"architectures\":[\"Glm4MoeForCausalLM\"],\"n_routed_experts\":\"128\"}", QN_ERR_FORMAT,
                "n_routed_experts", "a string");
    expect_fail("{\"architectures\":[\"Glm4MoeForCausalLM\"],\"first_k_dense_replace\":47}", QN_ERR_FORMAT,
                "first_k_dense_replace", NULL);
    expect_fail("{\"architectures\":[\"Glm4MoeForCausalLM\"],\"n_group\":3}", QN_ERR_FORMAT,
                "n_group", NULL);
    expect_fail("{\"architectures\":[\"Glm4MoeForCausalLM\"],\"partial_rotary_factor\":1.5}", QN_ERR_FORMAT,
                "partial_rotary_factor", NULL);
}

static void test_missing_file(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    char *dir = tu_tmpdir();
    assert_int_equal(qn_config_load_dir(dir, &c, &err), QN_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, "config.json"));
    char p[1024];
    snprintf(p, sizeof p, "%s/nope.json", dir);
    assert_int_equal(qn_config_load_file(p, &c, &err), QN_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "nope.json"));
    /* a directory given as the file */
    assert_int_equal(qn_config_load_file(dir, &c, &err), QN_ERR_IO);
    tu_rmrf(dir);
    free(dir);
}

static void test_names(void **state) {
    (void)state;
    assert_string_equal(qn_arch_name(QN_ARCH_GLM4_MOE), "Glm4MoeForCausalLM");
    assert_string_equal(qn_arch_name(QN_ARCH_COUNT), "unknown");
    const char *s = qn_supported_architectures();
    for (int a = 0; a < QN_ARCH_COUNT; a++) assert_non_null(strstr(s, qn_arch_name((qn_arch)a)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),      cmocka_unit_test(test_stories260k_hd64),
        cmocka_unit_test(test_tiny_mistral),     cmocka_unit_test(test_tiny_qwen2),
        cmocka_unit_test(test_tiny_qwen3),       cmocka_unit_test(test_tiny_qwen3_moe),
        cmocka_unit_test(test_tiny_glm4_moe),    cmocka_unit_test(test_shipped_large_configs),
        cmocka_unit_test(test_defaults),         cmocka_unit_test(test_rope_scaling),
        cmocka_unit_test(test_eos_variants),     cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_missing_file),     cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
