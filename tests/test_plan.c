/* quench plan: parameter counts against docs/architectures.md §12.2, KV-cache bytes, TP verdicts,
 * hand-computed checkpoint sizes per scheme (compressed-tensors-format.md §5.10), context fitting,
 * option parsing, and the `quench plan` command end to end when the binary is built. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "quench/config.h"
#include "quench/plan.h"

static void load_cfg(const char *name, qn_model_config *c) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/configs/%s", name);
    char *p = tu_source(rel);
    qn_error err = {0};
    qn_status st = qn_config_load_dir(p, c, &err);
    if (st) fail_msg("%s: %s", p, err.msg);
    free(p);
}

static qn_status load_text(const char *json, qn_model_config *c, qn_error *err) {
    char *dir = tu_tmpdir();
    assert_non_null(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_int_equal(tu_write_file(path, json, strlen(json)), 0);
    qn_status st = qn_config_load_file(path, c, err);
    tu_rmrf(dir);
    free(dir);
    return st;
}

/* ------------------------------------------------------------------ §12.2 parameter counts */

static void test_params_glm45_air(void **state) {
    (void)state;
    qn_model_config c;
    load_cfg("GLM-4.5-Air", &c);
    qn_param_counts p;
    qn_error err = {0};
    assert_int_equal(qn_plan_count_params(&c, &p, &err), QN_OK);
    assert_int_equal(p.attention_per_layer, 109066240LL);
    assert_int_equal(p.total[QN_PLAN_ATTN], 5017047040LL);
    assert_int_equal(p.total[QN_PLAN_DENSE_MLP], 134479872LL);
    assert_int_equal(p.n_dense_layers, 1);
    assert_int_equal(p.n_moe_layers, 45);
    assert_int_equal(p.one_routed_expert, 17301504LL);
    assert_int_equal(p.total[QN_PLAN_ROUTED], 99656663040LL);
    assert_int_equal(p.total[QN_PLAN_SHARED], 778567680LL);
    assert_int_equal(p.total[QN_PLAN_ROUTER], 23598720LL);
    assert_int_equal(p.total[QN_PLAN_NORMS], 380928LL);
    assert_int_equal(p.total[QN_PLAN_EMBED], 620756992LL);
    assert_int_equal(p.total[QN_PLAN_LM_HEAD], 620756992LL);
    assert_int_equal(p.total_params, 106852251264LL);
    assert_int_equal(p.total_excl_embed, 105610737280LL);
    assert_int_equal(p.active_params, 13424129664LL);
    assert_int_equal(p.active_excl_embed, 12182615680LL);
    assert_int_equal(p.active[QN_PLAN_ROUTED], 45LL * 8 * 17301504LL);
    assert_int_equal(p.n_mtp_layers, 1);
    assert_int_equal(p.mtp_params, 2375059584LL); /* §12.2 "Extra" */
    qn_config_free(&c);
}

static void test_params_qwen3_30b(void **state) {
    (void)state;
    qn_model_config c;
    load_cfg("Qwen3-30B-A3B", &c);
    qn_param_counts p;
    qn_error err = {0};
    assert_int_equal(qn_plan_count_params(&c, &p, &err), QN_OK);
    assert_int_equal(p.attention_per_layer, 18874624LL);
    assert_int_equal(p.total[QN_PLAN_ATTN], 905981952LL);
    assert_int_equal(p.total[QN_PLAN_DENSE_MLP], 0);
    assert_int_equal(p.one_routed_expert, 4718592LL);
    assert_int_equal(p.total[QN_PLAN_ROUTED], 28991029248LL);
    assert_int_equal(p.total[QN_PLAN_SHARED], 0);
    assert_int_equal(p.total[QN_PLAN_ROUTER], 12582912LL);
    assert_int_equal(p.total[QN_PLAN_NORMS], 198656LL);
    assert_int_equal(p.total[QN_PLAN_EMBED], 311164928LL);
    assert_int_equal(p.total[QN_PLAN_LM_HEAD], 311164928LL);
    assert_int_equal(p.total_params, 30532122624LL);
    assert_int_equal(p.total_excl_embed, 29909792768LL);
    assert_int_equal(p.active_params, 3353032704LL);
    assert_int_equal(p.active_excl_embed, 2730702848LL);
    assert_int_equal(p.mtp_params, 0);
    qn_config_free(&c);
}

static void test_params_llama3_8b(void **state) {
    (void)state;
    qn_model_config c;
    load_cfg("Llama-3-8B", &c);
    qn_param_counts p;
    qn_error err = {0};
    assert_int_equal(qn_plan_count_params(&c, &p, &err), QN_OK);
    assert_int_equal(p.attention_per_layer, 41943040LL);
    assert_int_equal(p.total[QN_PLAN_ATTN], 1342177280LL);
    assert_int_equal(p.total[QN_PLAN_DENSE_MLP], 5637144576LL);
    assert_int_equal(p.n_dense_layers, 32);
    assert_int_equal(p.total[QN_PLAN_ROUTED], 0);
    assert_int_equal(p.total[QN_PLAN_ROUTER], 0);
    assert_int_equal(p.total[QN_PLAN_NORMS], 266240LL);
    assert_int_equal(p.total[QN_PLAN_EMBED], 525336576LL);
    assert_int_equal(p.total[QN_PLAN_LM_HEAD], 525336576LL);
    assert_int_equal(p.total_params, 8030261248LL);
    assert_int_equal(p.total_excl_embed, 6979588096LL);
    assert_int_equal(p.active_params, 8030261248LL);
    assert_int_equal(p.active_excl_embed, 6979588096LL);
    qn_config_free(&c);
}

/* GLM-4.5 (355B) from §12.1/§12.2's reference line, and the bundled tiny models. */
static void test_params_other(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_text("{\"architectures\":[\"Glm4MoeForCausalLM\"],\"hidden_size\":5120,"
                               "\"num_hidden_layers\":92,\"first_k_dense_replace\":3,\"intermediate_size\":12288,"
                               "\"moe_intermediate_size\":1536,\"n_routed_experts\":160,\"use_qk_norm\":true,"
                               "\"num_attention_heads\":96,\"num_key_value_heads\":8,\"head_dim\":128,"
                               "\"vocab_size\":151552,\"attention_bias\":true,\"num_experts_per_tok\":8}",
                               &c, &err), QN_OK);
    qn_param_counts p;
    assert_int_equal(qn_plan_count_params(&c, &p, &err), QN_OK);
    assert_int_equal(p.total_params, 352797829024LL);
    assert_int_equal(p.active_excl_embed, 32080373664LL);
    qn_config_free(&c);

    /* stories260K: tied, 5 layers, H 64, I 172, 8 heads x hd 8, 4 kv heads, V 512 (README) */
    char *d = tu_shared("models/stories260K");
    assert_int_equal(qn_config_load_dir(d, &c, &err), QN_OK);
    free(d);
    assert_int_equal(qn_plan_count_params(&c, &p, &err), QN_OK);
    int64_t attn = 64 * 64 + 2 * 64 * 32 + 64 * 64, mlp = 3 * 64 * 172;
    assert_int_equal(p.total_params, 5 * (attn + mlp + 2 * 64) + 512 * 64 + 64);
    assert_int_equal(p.total[QN_PLAN_LM_HEAD], 0);
    qn_config_free(&c);

    /* tiny GLM: MTP layer = attention(with qkv bias) + norms + MoE + eh_proj + 3 norms */
    d = tu_shared("models/tiny-random-glm4-moe");
    assert_int_equal(qn_config_load_dir(d, &c, &err), QN_OK);
    free(d);
    assert_int_equal(qn_plan_count_params(&c, &p, &err), QN_OK);
    int64_t a = 64 * 128 + 2 * 64 * 64 + 128 * 64 + 128 + 2 * 64; /* q,k,v,o + q/k/v biases */
    int64_t moe = 8 * 3 * 64 * 32 + 3 * 64 * 32 + 8 * 64 + 8;    /* routed + shared + router + bias */
    assert_int_equal(p.attention_per_layer, a);
    assert_int_equal(p.total_params, 3 * (a + 128) + 3 * 64 * 128 + 2 * moe + 2 * 512 * 64 + 64);
    assert_int_equal(p.mtp_params, a + 128 + moe + 64 * 128 + 3 * 64);
    qn_config_free(&c);
}

/* ------------------------------------------------------------------ KV cache and TP */

static void test_kv_bytes(void **state) {
    (void)state;
    qn_model_config c;
    load_cfg("GLM-4.5-Air", &c);
    assert_int_equal(qn_plan_kv_bytes_per_token(&c, 1, 2), 2LL * 46 * 8 * 128 * 2); /* 188,416 */
    assert_int_equal(qn_plan_kv_bytes_per_token(&c, 1, 2), 188416);
    assert_int_equal(qn_plan_kv_bytes_per_token(&c, 1, 1), 94208);
    assert_int_equal(qn_plan_kv_bytes_per_token(&c, 8, 2), 188416 / 8);
    /* TP 16 > 8 KV heads: each GPU still holds one KV head */
    assert_int_equal(qn_plan_kv_bytes_per_token(&c, 16, 2), 2LL * 46 * 1 * 128 * 2);
    qn_config_free(&c);

    load_cfg("Llama-3-8B", &c);
    assert_int_equal(qn_plan_kv_bytes_per_token(&c, 1, 2), 2LL * 32 * 8 * 128 * 2);
    qn_config_free(&c);

    /* DeepSeek-V3 MLA: (kv_lora_rank + qk_rope_head_dim) x layers x bytes, not divided by TP */
    qn_error err = {0};
    assert_int_equal(load_text("{\"architectures\":[\"DeepseekV3ForCausalLM\"]}", &c, &err), QN_OK);
    assert_int_equal(qn_plan_kv_bytes_per_token(&c, 1, 2), (512 + 64) * 61 * 2);
    assert_int_equal(qn_plan_kv_bytes_per_token(&c, 8, 2), (512 + 64) * 61 * 2);
    qn_config_free(&c);
}

static void test_tp_verdicts(void **state) {
    (void)state;
    qn_model_config c;
    char why[512];
    load_cfg("GLM-4.5-Air", &c);
    for (int tp = 1; tp <= 8; tp *= 2) {
        if (!qn_plan_tp_check(&c, tp, why, sizeof why)) fail_msg("TP %d refused: %s", tp, why);
        assert_string_equal(why, "");
    }
    /* 96 % 3 == 0 and 10944 % 3 == 0, but 8 KV heads, Im 1408 and 128 experts do not divide */
    assert_false(qn_plan_tp_check(&c, 3, why, sizeof why));
    assert_null(strstr(why, "attention heads"));
    assert_null(strstr(why, "intermediate_size 10944"));
    assert_non_null(strstr(why, "8 KV heads are not divisible by 3"));
    assert_non_null(strstr(why, "moe_intermediate_size 1408"));
    assert_non_null(strstr(why, "128 experts"));
    assert_false(qn_plan_tp_check(&c, 6, why, sizeof why));
    assert_non_null(strstr(why, "8 KV heads are not divisible by 6"));
    assert_null(strstr(why, "attention heads"));
    /* TP 16: KV heads replicated (16 % 8 == 0), 96 % 16 == 0, 1408 % 16 == 0 */
    assert_true(qn_plan_tp_check(&c, 16, why, sizeof why));
    assert_false(qn_plan_tp_check(&c, 0, why, sizeof why));
    qn_config_free(&c);

    load_cfg("Llama-3-8B", &c);
    assert_false(qn_plan_tp_check(&c, 3, why, sizeof why));
    assert_non_null(strstr(why, "32 attention heads are not divisible by 3"));
    assert_non_null(strstr(why, "intermediate_size 14336"));
    assert_true(qn_plan_tp_check(&c, 8, why, sizeof why));
    /* 12 > 8 KV heads but not a multiple of 8 */
    assert_false(qn_plan_tp_check(&c, 12, why, sizeof why));
    qn_config_free(&c);

    /* Qwen3-30B-A3B: 4 KV heads; TP 8 replicates them */
    load_cfg("Qwen3-30B-A3B", &c);
    qn_plan_options o;
    qn_plan_options_default(&o);
    qn_plan *p = calloc(1, sizeof *p);
    qn_error err = {0};
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    assert_int_equal(p->n_tp, 4);
    assert_int_equal(p->tp[3].tp, 8);
    assert_true(p->tp[3].valid);
    assert_true(p->tp[3].kv_replicated);
    assert_int_equal(p->tp[3].kv_heads_per_gpu, 1);
    assert_non_null(strstr(p->tp[3].notes, "KV heads replicated"));
    assert_int_equal(p->tp[3].kv_bytes_per_token, 2LL * 48 * 1 * 128 * 2);
    assert_int_equal(p->tp[2].kv_bytes_per_token, 2LL * 48 * 1 * 128 * 2);
    assert_int_equal(p->tp[1].kv_bytes_per_token, 2LL * 48 * 2 * 128 * 2);
    free(p);
    qn_config_free(&c);
}

/* --gpus 3 and 6 through qn_plan_build: refused with the reason, extra row appended. */
static void test_build_extra_tp(void **state) {
    (void)state;
    qn_model_config c;
    load_cfg("GLM-4.5-Air", &c);
    qn_plan_options o;
    qn_plan_options_default(&o);
    o.extra_tp = 6;
    qn_plan *p = calloc(1, sizeof *p);
    qn_error err = {0};
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    assert_int_equal(p->n_tp, 5);
    for (int i = 0; i < 4; i++) assert_true(p->tp[i].valid);
    assert_int_equal(p->tp[4].tp, 6);
    assert_false(p->tp[4].valid);
    assert_non_null(strstr(p->tp[4].reason, "KV heads"));
    assert_false(p->tp[4].fits);
    assert_int_equal(p->kv_bytes_per_token, 188416);
    o.extra_tp = 4; /* already in the list: no extra row */
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    assert_int_equal(p->n_tp, 4);
    free(p);
    qn_config_free(&c);
}

/* ------------------------------------------------------------------ checkpoint sizes */

/* Small Llama: H 256, I 512, 2 layers, 4 heads x 64, 2 KV heads, V 1000, untied, bf16.
 * Linears per layer [out, in]: q [256,256], k [128,256], v [128,256], o [256,256],
 * gate [512,256], up [512,256], down [256,512]. */
static const char *k_small =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":256,\"intermediate_size\":512,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"vocab_size\":1000,"
    "\"torch_dtype\":\"bfloat16\"}";

static int64_t plan_total(const char *json, const char *scheme, int sparse, int actorder,
                          qn_plan_size *out) {
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_text(json, &c, &err), QN_OK);
    qn_plan_options o;
    qn_plan_options_default(&o);
    assert_int_equal(qn_plan_scheme_lookup(scheme, &o.scheme, &err), QN_OK);
    o.sparsity = sparse ? QN_SPARSE_24 : QN_SPARSE_NONE;
    o.actorder_group = actorder;
    qn_plan *p = calloc(1, sizeof *p);
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    if (out) *out = sparse && p->has_sparse_alt ? p->size_sparse : p->size;
    int64_t t = sparse && p->has_sparse_alt ? p->size_sparse.total.total : p->size.total.total;
    free(p);
    qn_config_free(&c);
    return t;
}

static void test_size_w4a16_hand(void **state) {
    (void)state;
    qn_plan_size s;
    /* W4A16 per Linear: weight_packed out*in/8 words*4 B, weight_scale out*(in/128)*2 B, shape 16 B
     *  q    256*256/2 = 32768 + 256*2*2 = 1024 + 16 = 33808
     *  k,v  128*256/2 = 16384 + 128*2*2 =  512 + 16 = 16912 each
     *  o                                             33808
     *  gate,up 512*256/2 = 65536 + 512*2*2 = 2048 + 16 = 67600 each
     *  down 256*512/2 = 65536 + 256*4*2 = 2048 + 16 = 67600
     *  per layer 304240 + norms 2*256*2 = 1024 → 305264; x2 layers = 610528
     *  embed 1000*256*2 = 512000, lm_head 512000, final norm 512 → 1,635,040 */
    assert_int_equal(plan_total(k_small, "W4A16", 0, 0, &s), 1635040);
    assert_int_equal(s.total.values, 2 * (32768 + 16384 * 2 + 32768 + 65536 * 3));
    assert_int_equal(s.total.scales, 2 * (1024 + 512 * 2 + 1024 + 2048 * 3));
    assert_int_equal(s.total.shape_meta, 2 * 7 * 16);
    assert_int_equal(s.total.zero_points, 0);
    assert_int_equal(s.total.kept, 1024 * 2 + 512000 * 2 + 512);
    assert_int_equal(s.n_linear_quantized, 14);
    assert_int_equal(s.n_linear_kept, 0);
    assert_int_equal(s.original_bytes, 2 * (2 * (256 * 256 * 2 + 128 * 256 * 2 + 3 * 512 * 256) + 2 * 256 * 2) +
                                           2 * 1000 * 256 * 2 + 256 * 2);

    /* ASYM adds weight_zero_point I32 [ceil(out/8), in/128]:
     * q 32*2*4=256, k,v 16*2*4=128, o 256, gate,up 64*2*4=512, down 32*4*4=512 → 2304/layer */
    assert_int_equal(plan_total(k_small, "W4A16_ASYM", 0, 0, &s), 1635040 + 2 * 2304);
    assert_int_equal(s.total.zero_points, 4608);
    /* actorder group adds weight_g_idx I32 [in]: 5 Linears with in 256 and down with in 512 */
    assert_int_equal(plan_total(k_small, "W4A16", 0, 1, &s), 1635040 + 2 * (6 * 256 * 4 + 512 * 4));

    /* FP8_DYNAMIC: F8 [out, in] + bf16 scale [out, 1]
     * per layer values 65536*2 + 32768*2 + 131072*3 = 589824, scales 2*(256+128+128+256+512+512+256) */
    int64_t fp8_lin = 589824 + 2 * 2048;
    int64_t kept = 1024 * 2 + 512000 * 2 + 512;
    assert_int_equal(plan_total(k_small, "FP8_DYNAMIC", 0, 0, &s), 2 * fp8_lin + kept);
    /* FP8 (static): scale [1] and input_scale [1], 2 bytes each */
    assert_int_equal(plan_total(k_small, "FP8", 0, 0, &s), 2 * (589824 + 7 * 4) + kept);
    assert_int_equal(s.total.act_scales, 2 * 7 * 2);
    /* FP8_BLOCK: scale [ceil(out/128), ceil(in/128)]: q 2x2, k,v 1x2, o 2x2, gate,up 4x2, down 2x4 */
    assert_int_equal(plan_total(k_small, "FP8_BLOCK", 0, 0, &s),
                     2 * (589824 + 2 * (4 + 2 + 2 + 4 + 8 + 8 + 8)) + kept);
    /* W8A8 = INT8: I8 [out, in] + scale [out, 1], same bytes as FP8_DYNAMIC */
    assert_int_equal(plan_total(k_small, "INT8", 0, 0, &s), 2 * fp8_lin + kept);
    /* W8A16 (channel): I32 [out, in/4] (= out*in bytes) + scale [out,1] + shape 16 */
    assert_int_equal(plan_total(k_small, "W8A16", 0, 0, &s), 2 * (fp8_lin + 7 * 16) + kept);
    /* NVFP4A16: U8 [out, in/2] + F8 [out, in/16] + F32 global [1]; NVFP4 + F32 input_global_scale */
    int64_t nv = 589824 / 2 + 589824 / 16 + 7 * 4;
    assert_int_equal(plan_total(k_small, "NVFP4A16", 0, 0, &s), 2 * nv + kept);
    assert_int_equal(plan_total(k_small, "NVFP4", 0, 0, &s), 2 * (nv + 7 * 4) + kept);
    /* none: everything in bf16 */
    assert_int_equal(plan_total(k_small, "none", 0, 0, &s), s.original_bytes);
    assert_int_equal(s.n_linear_quantized, 0);
}

static void test_size_sparse24(void **state) {
    (void)state;
    qn_plan_size s;
    int64_t kept = 1024 * 2 + 512000 * 2 + 512;
    /* FP8_DYNAMIC + 2:4 as sparse-24-bitmask: compressed F8 [out, in/2] + bitmask U8 [out, in/8]
     * + shape I64 [2,1]; scales unchanged */
    int64_t per_layer = 589824 / 2 + 589824 / 8 + 7 * 16 + 2 * 2048;
    assert_int_equal(plan_total(k_small, "FP8_DYNAMIC", 1, 0, &s), 2 * per_layer + kept);
    assert_int_equal(s.sparse_bitmask, 1);
    assert_int_equal(s.total.sparse_meta, 2 * (589824 / 8 + 7 * 16));
    /* unquantized + 2:4 bitmask: compressed bf16 [out, in/2] */
    assert_int_equal(plan_total(k_small, "none", 1, 0, &s), 2 * (589824 + 589824 / 8 + 7 * 16) + kept);
    /* W4A16 + 2:4: no bitmask storage (8-bit W+A only), dense zeros = plain W4A16 bytes */
    assert_int_equal(plan_total(k_small, "W4A16", 1, 0, &s), 1635040);
    assert_int_equal(s.sparse_bitmask, 0);
}

/* in_features not a multiple of the group size: kept in the model dtype, with a note. */
static void test_size_group_unfit(void **state) {
    (void)state;
    const char *j = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":256,\"intermediate_size\":320,"
                    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                    "\"vocab_size\":1000,\"torch_dtype\":\"bfloat16\"}";
    qn_plan_size s;
    int64_t t = plan_total(j, "W4A16", 0, 0, &s);
    /* down_proj [256, 320]: 320 % 128 != 0 → bf16 256*320*2 = 163840 per layer */
    int64_t gate = 320 * 256 / 2 + 320 * 2 * 2 + 16;
    int64_t per_layer = 33808 + 2 * 16912 + 33808 + 2 * gate + 163840 + 1024;
    assert_int_equal(t, 2 * per_layer + 512000 * 2 + 512);
    assert_int_equal(s.n_linear_kept, 2);
    assert_int_equal(s.n_kept_comp[QN_PLAN_DENSE_MLP], 2);
    assert_int_equal(s.n_notes, 1);
    assert_non_null(strstr(s.notes[0], "mlp.down_proj"));
    assert_non_null(strstr(s.notes[0], "group size 128"));
    /* GLM-4.5-Air: the dense layer's down_proj (in 10944 = 85.5 x 128) is the only one */
    qn_model_config c;
    load_cfg("GLM-4.5-Air", &c);
    qn_plan_options o;
    qn_plan_options_default(&o);
    qn_error err = {0};
    assert_int_equal(qn_plan_scheme_lookup("w4a16", &o.scheme, &err), QN_OK);
    qn_plan *p = calloc(1, sizeof *p);
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    assert_int_equal(p->size.n_linear_kept, 1);
    /* 46 x 4 attention + 2 dense + 45 x (128 x 3 + 3 shared) */
    assert_int_equal(p->size.n_linear_quantized, 46 * 4 + 2 + 45 * (128 * 3 + 3));
    assert_int_equal(p->size.original_bytes, 106852251264LL * 2 + 45LL * 128 * 2); /* fp32 corr. bias */
    /* TP 1 holds everything */
    assert_int_equal(p->tp[0].weight_bytes_per_gpu, p->size.total.total);
    assert_true(p->tp[3].weight_bytes_per_gpu < p->tp[0].weight_bytes_per_gpu / 8 + 200000000LL);
    assert_true(p->tp[3].weight_bytes_per_gpu > p->tp[0].weight_bytes_per_gpu / 8);
    free(p);
    qn_config_free(&c);
}

/* ------------------------------------------------------------------ fitting */

static void test_fit_llama(void **state) {
    (void)state;
    qn_model_config c;
    load_cfg("Llama-3-8B", &c);
    qn_plan_options o;
    qn_plan_options_default(&o);
    qn_error err = {0};
    assert_int_equal(qn_plan_gpu_lookup("H100", &o.gpu, &err), QN_OK);
    o.have_gpu = 1;
    o.reserve_bytes = 2LL << 30;
    o.batch = 128;
    o.context = 4096;
    qn_plan *p = calloc(1, sizeof *p);
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    const qn_plan_tp *t = &p->tp[0];
    /* bf16 weights 8,030,261,248 x 2; usable floor(81559 MiB x 0.9); KV 131,072 B/token */
    assert_int_equal(t->weight_bytes_per_gpu, 16060522496LL);
    assert_int_equal(t->usable_bytes, 76968728985LL);
    assert_int_equal(t->kv_budget_bytes, 76968728985LL - 16060522496LL - 2147483648LL);
    assert_int_equal(t->kv_bytes_per_token, 131072);
    assert_int_equal(t->kv_tokens, 448304); /* floor(58,760,722,841 / 131,072) = 448,308 → 16-token blocks */
    assert_int_equal(t->n_batch, 4);        /* batch 128 is already a column */
    assert_int_equal(t->batch[0], 1);
    assert_int_equal(t->max_context[0], 8192); /* capped at max_position_embeddings */
    assert_int_equal(t->batch[3], 128);
    assert_int_equal(t->max_context[3], 3488); /* 448304 / 128 = 3502 → 3488 */
    assert_false(t->fits);                     /* 4096 x 128 > 448,304 */
    assert_true(p->tp[1].fits);                /* TP 2: half the weights and KV per token */
    assert_int_equal(t->kernel_ok, 2);

    o.kv_bytes = 1; /* fp8 KV: twice the tokens */
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    assert_int_equal(p->tp[0].kv_tokens, (76968728985LL - 16060522496LL - 2147483648LL) / 65536 / 16 * 16);
    assert_true(p->tp[0].fits);

    /* RTX 4090 (24 GiB): bf16 weights (15 GiB) + 8k context fit for one sequence, not for 8 */
    qn_plan_options_default(&o);
    assert_int_equal(qn_plan_gpu_lookup("rtx 4090", &o.gpu, &err), QN_OK);
    o.have_gpu = 1;
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    assert_int_equal(p->context, 8192);
    assert_true(p->tp[0].fits);
    assert_int_equal(p->tp[0].max_context[0], 8192);
    o.batch = 8;
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    assert_false(p->tp[0].fits);
    assert_true(p->tp[0].max_context[1] < 8192); /* batch 8 column */
    /* W4A16 (about 5.4 GiB of weights) makes 8 x 8k fit */
    assert_int_equal(qn_plan_scheme_lookup("W4A16", &o.scheme, &err), QN_OK);
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    assert_true(p->tp[0].fits);
    /* NVFP4 needs compute capability 10.0 natively; on 8.9 only emulation → fallback */
    assert_int_equal(qn_plan_scheme_lookup("NVFP4", &o.scheme, &err), QN_OK);
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    assert_int_equal(p->tp[0].kernel_ok, 1);
    /* FP8 on an RTX 3090 (8.6): weight-only fp8 Marlin fallback */
    assert_int_equal(qn_plan_gpu_lookup("RTX 3090", &o.gpu, &err), QN_OK);
    assert_int_equal(qn_plan_scheme_lookup("FP8_DYNAMIC", &o.scheme, &err), QN_OK);
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    assert_int_equal(p->tp[0].kernel_ok, 1);
    free(p);
    qn_config_free(&c);
}

static void test_compress_estimate(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    assert_int_equal(load_text(k_small, &c, &err), QN_OK);
    qn_plan_options o;
    qn_plan_options_default(&o);
    o.calib_samples = 16;
    o.calib_seq_len = 128;
    qn_plan *p = calloc(1, sizeof *p);
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    const qn_plan_compress *r = &p->compress;
    int64_t layer = 256 * 256 * 2 + 128 * 256 * 2 + 3 * 512 * 256 + 2 * 256;
    assert_int_equal(r->layer_fp32_bytes, layer * 4);
    /* Hessians: qkv input 256², o input 256², gate/up input 256², down input 512² (fp32) */
    assert_int_equal(r->hessian_bytes, (3 * 256 * 256 + 512 * 512) * 4);
    assert_int_equal(r->activation_bytes, 16 * 128 * 256 * 4 * 2);
    assert_int_equal(r->quench_total_bytes, r->layer_fp32_bytes + r->hessian_bytes + r->activation_bytes);
    assert_int_equal(r->llmc_cpu_bytes, p->params.total_params * 2 + 16 * 128 * 256 * 2);
    assert_int_equal(r->llmc_gpu_bytes, layer * 2 + r->hessian_bytes);
    /* as built: the same layer, the attention results, the widest input's (512) Hessian copy +
     * double factor and 3 copies of the largest Linear (256 x 512), one activation copy */
    int64_t attn = layer - 3 * 512 * 256;
    assert_int_equal(r->resident_layer_bytes, layer * 4);
    assert_int_equal(r->result_bytes, attn * 4);
    assert_int_equal(r->hessian_bytes_built, r->hessian_bytes);
    assert_int_equal(r->gptq_workspace_bytes, 512 * 512 * 12 + 3 * 256 * 512 * 4);
    assert_int_equal(r->activation_bytes_built, 16 * 128 * 256 * 4);
    assert_int_equal(r->quench_built_bytes, layer * 4 + attn * 4 + r->hessian_bytes + 512 * 512 * 12 + 3 * 256 * 512 * 4 +
                                            16 * 128 * 256 * 4);
    free(p);
    qn_config_free(&c);

    /* MoE: every routed expert has its own gate/up (H²) and down (Im²) Hessian */
    load_cfg("Qwen3-30B-A3B", &c);
    qn_plan_options_default(&o);
    p = calloc(1, sizeof *p);
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_OK);
    int64_t H = 2048, q = 32 * 128, Im = 768;
    assert_int_equal(p->compress.hessian_bytes, (H * H + q * q + 128 * (H * H + Im * Im)) * 4);
    assert_int_equal(p->compress.hessian_bytes_seq, (H * H + q * q + (H * H + Im * Im)) * 4);
    assert_int_equal(p->compress.activation_bytes, 512LL * 2048 * 2048 * 4 * 2);
    /* as built: one shared gate/up Hessian and one expert's down Hessian; three activation copies */
    assert_int_equal(p->compress.hessian_bytes_built, (H * H + q * q + H * H + Im * Im) * 4);
    assert_int_equal(p->compress.gptq_workspace_bytes, q * q * 12 + 3 * H * q * 4);
    assert_int_equal(p->compress.activation_bytes_built, 512LL * 2048 * 2048 * 4 * 3);
    assert_int_equal(p->compress.resident_layer_bytes, p->compress.layer_fp32_bytes - 127 * 3 * H * Im * 4);   /* 1 of 128 experts */
    free(p);
    qn_config_free(&c);
}

/* ------------------------------------------------------------------ lookups and parsing */

static void test_lookups(void **state) {
    (void)state;
    qn_plan_scheme s;
    qn_error err = {0};
    assert_int_equal(qn_plan_scheme_lookup("int8", &s, &err), QN_OK);
    assert_int_equal(s.id, QN_PSCHEME_W8A8);
    assert_string_equal(s.format, "int-quantized");
    assert_int_equal(qn_plan_scheme_lookup("w4a16_asym", &s, &err), QN_OK);
    assert_int_equal(s.id, QN_PSCHEME_W4A16_ASYM);
    assert_string_equal(s.format, "pack-quantized");
    assert_int_equal(qn_plan_scheme_lookup("nvfp4a16", &s, &err), QN_OK);
    assert_string_equal(s.format, "nvfp4-pack-quantized");
    assert_int_equal(qn_plan_scheme_lookup("W3A16", &s, &err), QN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "W3A16"));
    assert_non_null(strstr(err.msg, "FP8_BLOCK"));

    qn_gpu_info g;
    assert_int_equal(qn_plan_gpu_lookup("H100", &g, &err), QN_OK);
    assert_string_equal(g.name, "H100-80G");
    assert_int_equal(g.cc, 90);
    assert_int_equal(qn_plan_gpu_lookup("l4", &g, &err), QN_OK); /* exact beats prefix of L40S */
    assert_string_equal(g.name, "L4");
    assert_int_equal(qn_plan_gpu_lookup("A10", &g, &err), QN_OK);
    assert_string_equal(g.name, "A10");
    assert_int_equal(qn_plan_gpu_lookup("rtx-5090", &g, &err), QN_OK);
    assert_int_equal(g.cc, 120);
    assert_int_equal(qn_plan_gpu_lookup("RTX PRO 6000", &g, &err), QN_OK);
    assert_int_equal(g.cc, 120);
    assert_int_equal(qn_plan_gpu_lookup("b200", &g, &err), QN_OK);
    assert_int_equal(g.cc, 100);
    assert_int_equal(qn_plan_gpu_lookup("A100", &g, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "ambiguous"));
    assert_int_equal(qn_plan_gpu_lookup("TPUv5", &g, &err), QN_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "--gpu-mem"));
    int n = 0;
    const qn_gpu_info *t = qn_plan_gpu_table(&n);
    assert_int_equal(n, 13);
    for (int i = 0; i < n; i++) assert_true(t[i].mem_bytes > (20LL << 30) && t[i].cc >= 80);

    int64_t v;
    assert_int_equal(qn_plan_parse_bytes("24GiB", &v), 0);
    assert_int_equal(v, 24LL << 30);
    assert_int_equal(qn_plan_parse_bytes("80GB", &v), 0);
    assert_int_equal(v, 80000000000LL);
    assert_int_equal(qn_plan_parse_bytes("24", &v), 0);
    assert_int_equal(v, 24LL << 30);
    assert_int_equal(qn_plan_parse_bytes("1.5G", &v), 0);
    assert_int_equal(v, 3LL << 29);
    assert_int_equal(qn_plan_parse_bytes("512MiB", &v), 0);
    assert_int_equal(v, 512LL << 20);
    assert_int_not_equal(qn_plan_parse_bytes("abc", &v), 0);
    assert_int_not_equal(qn_plan_parse_bytes("-1GiB", &v), 0);
    assert_int_not_equal(qn_plan_parse_bytes("12XB", &v), 0);
    assert_int_not_equal(qn_plan_parse_bytes("", &v), 0);
    assert_int_equal(qn_plan_parse_count("16k", &v), 0);
    assert_int_equal(v, 16384);
    assert_int_equal(qn_plan_parse_count("128K", &v), 0);
    assert_int_equal(v, 131072);
    assert_int_equal(qn_plan_parse_count("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_not_equal(qn_plan_parse_count("1.5", &v), 0);
    assert_int_not_equal(qn_plan_parse_count("0", &v), 0);
    assert_int_not_equal(qn_plan_parse_count("16kb", &v), 0);
}

static void test_bad_inputs(void **state) {
    (void)state;
    qn_model_config c;
    qn_error err = {0};
    /* malformed config.json never reaches the planner */
    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"],", &c, &err), QN_ERR_FORMAT);
    assert_int_equal(load_text("{\"architectures\":[\"LlamaForCausalLM\"],\"num_attention_heads\":6,"
                               "\"num_key_value_heads\":4}", &c, &err), QN_ERR_FORMAT);
    /* bad options */
    load_cfg("Llama-3-8B", &c);
    qn_plan_options o;
    qn_plan_options_default(&o);
    qn_plan *p = calloc(1, sizeof *p);
    o.kv_bytes = 3;
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_ERR_INVALID_ARG);
    qn_plan_options_default(&o);
    o.gpu_util = 1.5;
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_ERR_INVALID_ARG);
    qn_plan_options_default(&o);
    o.batch = 0;
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_ERR_INVALID_ARG);
    qn_plan_options_default(&o);
    o.have_gpu = 1; /* memory 0 */
    assert_int_equal(qn_plan_build(&c, &o, p, &err), QN_ERR_INVALID_ARG);
    assert_int_equal(qn_plan_build(NULL, &o, p, &err), QN_ERR_INVALID_ARG);
    free(p);
    qn_config_free(&c);
}

/* ------------------------------------------------------------------ CLI end to end */

static int run(const char *cmd, const char *out_path, const char *err_path) {
    char full[8192];
    snprintf(full, sizeof full, "%s >'%s' 2>'%s'", cmd, out_path, err_path);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **state) {
    (void)state;
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/quench", QN_BINARY_DIR);
    struct stat sb;
    if (stat(bin, &sb) != 0) {
        fprintf(stderr, "skipping CLI checks: %s not built\n", bin);
        skip();
    }
    char *dir = tu_tmpdir();
    char out[1100], errp[1100], cmd[3000];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(errp, sizeof errp, "%s/err", dir);
    char *glm = tu_source("tests/data/configs/GLM-4.5-Air/config.json"); /* a file path works too */

    snprintf(cmd, sizeof cmd, "'%s' plan '%s' --scheme W4A16 --gpu H200 --gpus 3 --json", bin, glm);
    assert_int_equal(run(cmd, out, errp), 0);
    char *txt = tu_read_file(out, NULL);
    assert_non_null(txt);
    cJSON *j = cJSON_Parse(txt);
    assert_non_null(j);
    cJSON *params = cJSON_GetObjectItem(j, "parameters");
    assert_true(cJSON_GetObjectItem(params, "total")->valuedouble == 106852251264.0);
    assert_true(cJSON_GetObjectItem(params, "active")->valuedouble == 13424129664.0);
    cJSON *kv = cJSON_GetObjectItem(j, "kv_cache");
    assert_true(cJSON_GetObjectItem(kv, "bytes_per_token")->valuedouble == 188416.0);
    cJSON *tps = cJSON_GetObjectItem(j, "tensor_parallel");
    assert_int_equal(cJSON_GetArraySize(tps), 5);
    cJSON *t3 = cJSON_GetArrayItem(tps, 4);
    assert_true(cJSON_GetObjectItem(t3, "tp")->valuedouble == 3.0);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(t3, "valid")));
    assert_non_null(strstr(cJSON_GetObjectItem(t3, "reason")->valuestring, "KV heads"));
    cJSON *size = cJSON_GetObjectItem(j, "size");
    assert_string_equal(cJSON_GetObjectItem(size, "format")->valuestring, "pack-quantized");
    cJSON_Delete(j);
    free(txt);

    /* the table output names the refused TP and its reason */
    snprintf(cmd, sizeof cmd, "'%s' plan '%s' --scheme FP8_DYNAMIC --sparsity 2:4 --gpu-mem 80GiB --gpus 6",
             bin, glm);
    assert_int_equal(run(cmd, out, errp), 0);
    txt = tu_read_file(out, NULL);
    assert_non_null(strstr(txt, "106,852,251,264"));
    assert_non_null(strstr(txt, "TP 6 refused"));
    assert_non_null(strstr(txt, "sparse-24-bitmask"));
    free(txt);

    /* usage errors → 2, bad config → 1, each with one "quench plan:" line */
    snprintf(cmd, sizeof cmd, "'%s' plan '%s' --scheme W3A7", bin, glm);
    assert_int_equal(run(cmd, out, errp), 2);
    txt = tu_read_file(errp, NULL);
    assert_true(strncmp(txt, "quench plan: ", 13) == 0);
    free(txt);
    snprintf(cmd, sizeof cmd, "'%s' plan '%s' --gpu H100 --gpu-mem 80GiB", bin, glm);
    assert_int_equal(run(cmd, out, errp), 2);
    snprintf(cmd, sizeof cmd, "'%s' plan", bin);
    assert_int_equal(run(cmd, out, errp), 2);
    char bad[1100];
    snprintf(bad, sizeof bad, "%s/config.json", dir);
    assert_int_equal(tu_write_file(bad, "{\"architectures\":[\"FooForCausalLM\"]}", 36), 0);
    snprintf(cmd, sizeof cmd, "'%s' plan '%s'", bin, dir);
    assert_int_equal(run(cmd, out, errp), 1);
    txt = tu_read_file(errp, NULL);
    assert_non_null(strstr(txt, "quench plan: "));
    assert_non_null(strstr(txt, "FooForCausalLM"));
    assert_non_null(strchr(txt, '\n') == txt + strlen(txt) - 1 ? txt : NULL); /* one line */
    free(txt);
    snprintf(cmd, sizeof cmd, "'%s' plan '%s/missing'", bin, dir);
    assert_int_equal(run(cmd, out, errp), 1);

    free(glm);
    tu_rmrf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_glm45_air), cmocka_unit_test(test_params_qwen3_30b),
        cmocka_unit_test(test_params_llama3_8b), cmocka_unit_test(test_params_other),
        cmocka_unit_test(test_kv_bytes),         cmocka_unit_test(test_tp_verdicts),
        cmocka_unit_test(test_build_extra_tp),   cmocka_unit_test(test_size_w4a16_hand),
        cmocka_unit_test(test_size_sparse24),    cmocka_unit_test(test_size_group_unfit),
        cmocka_unit_test(test_fit_llama),        cmocka_unit_test(test_compress_estimate),
        cmocka_unit_test(test_lookups),          cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
