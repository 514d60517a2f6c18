/* bench/make_model: writes a model folder with random bf16 weights at real widths, so speed can be
 * measured without downloading anything: LlamaForCausalLM presets, and a Glm4MoeForCausalLM one.
 *
 *   make_model --preset tinyllama-1.1b --layers 4 --out bench/out/tinyllama-4l [--tokenizer stories|bytelevel]
 *   make_model --preset glm-4.5-air --layers 1 --first-dense 0 --vocab 256 --tokenizer bytelevel \
 *              --out bench/out/glm-4.5-air-1l          (one MoE layer at GLM-4.5-Air's widths)
 *   make_model --preset glm-4.5-air --layers 2 --first-dense 1 --hidden 256 --heads 4 --kv-heads 2 \
 *              --head-dim 64 --experts 16 --moe-inter 128 --vocab 256 --tokenizer bytelevel --out DIR
 *
 * Presets:
 *   tinyllama-1.1b  Llama: hidden 2048, intermediate 5632, 32/4 heads, vocab 32000, 22 layers.
 *   llama3-8b       Llama: hidden 4096, intermediate 14336, 32/8 heads, vocab 128256, 32 layers,
 *                   rope 500000.
 *   glm-4.5-air     Glm4MoeForCausalLM (docs/architectures.md §3.3, §7.6, §12.1): hidden 4096,
 *                   96/8 heads, head_dim 128, 46 layers of which the first first_k_dense_replace = 1
 *                   are dense (intermediate_size 10944) and the rest MoE (128 routed experts of
 *                   moe_intermediate_size 1408, top-8, 1 shared expert of width 1408 x
 *                   n_shared_experts), attention_bias (q/k/v biases, no o_proj bias), no q/k norm,
 *                   partial_rotary_factor 0.5, rope_theta 1e6, rms_norm_eps 1e-5, n_group =
 *                   topk_group = 1, norm_topk_prob, routed_scaling_factor 1.0, vocab 151552,
 *                   max_position_embeddings 131072. The router's mlp.gate.e_score_correction_bias
 *                   is float32 on disk (as in the tiny reference checkpoint); everything else bf16.
 *                   No MTP layer is written, so num_nextn_predict_layers is 0 (the real config: 1).
 * Overrides (every preset): --layers N, --hidden N, --inter N, --heads N, --kv-heads N,
 *   --head-dim N (default hidden/heads for Llama, 128 for GLM), --vocab N; GLM only: --experts N,
 *   --moe-inter N, --top-k N, --first-dense N (first_k_dense_replace; 0 = every layer MoE).
 * Weights ~ N(0, 0.02) (norms 1.0), seeded (--seed). The tokenizer is a copy of the bundled
 * stories260K one (512 tokens), or a generated 256-token byte-level BPE (no merges); --vocab must
 * be at least the tokenizer's size. The Llama presets' output at default options is unchanged
 * from earlier versions of this tool (same bytes for the same seed). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "quench/safetensors.h"

typedef enum { ARCH_LLAMA, ARCH_GLM4_MOE } arch_kind;

typedef struct {
    const char *name;
    arch_kind arch;
    int64_t hidden, inter, heads, kv, vocab, layers, max_pos;
    double theta, eps;
    int64_t head_dim;                                   /* 0 = hidden / heads */
    int64_t experts, moe_inter, shared, topk, first_dense; /* MoE (GLM) only */
} preset;

static const preset k_presets[] = {
    {"tinyllama-1.1b", ARCH_LLAMA, 2048, 5632, 32, 4, 32000, 22, 2048, 10000.0, 1e-5, 0, 0, 0, 0, 0, 0},
    {"llama3-8b", ARCH_LLAMA, 4096, 14336, 32, 8, 128256, 32, 8192, 500000.0, 1e-5, 0, 0, 0, 0, 0, 0},
    {"glm-4.5-air", ARCH_GLM4_MOE, 4096, 10944, 96, 8, 151552, 46, 131072, 1000000.0, 1e-5, 128, 128, 1408, 1, 8, 1},
};

static uint64_t rng_state = 0x243F6A8885A308D3ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}
/* approximately normal: sum of 4 uniforms, scaled to unit variance */
static float gauss(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) s += (float)(rnd() >> 40) / 16777216.0f;
    return (s - 2.0f) * 1.7320508f;
}

static int add_dt(qn_st_writer *w, const char *name, qn_dtype dt, int64_t rows, int64_t cols, float stdv, float constant) {
    int64_t n = rows * (cols ? cols : 1);
    size_t esz = dt == QN_DT_F32 ? sizeof(float) : sizeof(uint16_t);
    void *buf = malloc(esz * (size_t)n);
    if (!buf) { fprintf(stderr, "make_model: out of memory for %s\n", name); return -1; }
    for (int64_t i = 0; i < n; i++) {
        float v = stdv > 0 ? stdv * gauss() : constant;
        if (dt == QN_DT_F32) ((float *)buf)[i] = v;
        else ((uint16_t *)buf)[i] = qn_f32_to_bf16(v);
    }
    int64_t shape[2] = {rows, cols};
    qn_error err = {0};
    int rc = qn_st_writer_add(w, name, dt, cols ? 2 : 1, shape, buf, esz * (size_t)n, &err);
    if (rc) fprintf(stderr, "make_model: %s\n", err.msg);
    free(buf);
    return rc;
}

static int add(qn_st_writer *w, const char *name, int64_t rows, int64_t cols, float stdv, float constant) {
    return add_dt(w, name, QN_DT_BF16, rows, cols, stdv, constant);
}

static int write_text(const char *dir, const char *name, const char *text) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) { fprintf(stderr, "make_model: %s: %s\n", p, strerror(errno)); return -1; }
    fputs(text, f);
    return fclose(f);
}

static int copy_file(const char *src, const char *dir, const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *in = fopen(src, "rb"), *out = in ? fopen(p, "wb") : NULL;
    if (!in || !out) { fprintf(stderr, "make_model: cannot copy %s to %s\n", src, p); if (in) fclose(in); return -1; }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    return fclose(out);
}

/* GPT-2 byte -> unicode code point */
static int byte_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256 + n;
}

static int write_bytelevel_tokenizer(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fprintf(f, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],\"normalizer\":null,"
               "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
               "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
               "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
               "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{");
    for (int b = 0; b < 256; b++) {
        int cp = byte_cp(b);
        char u[8];
        int n;
        if (cp < 0x80) { u[0] = (char)cp; n = 1; }
        else { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
        u[n] = 0;
        if (cp == '"' || cp == '\\') fprintf(f, "%s\"\\%s\":%d", b ? "," : "", u, b);
        else fprintf(f, "%s\"%s\":%d", b ? "," : "", u, b);
    }
    fprintf(f, "},\"merges\":[]}}\n");
    return fclose(f);
}

/* a decimal integer option value in [lo, hi], or -1 after a message */
static int64_t parse_dim(const char *opt, const char *s, int64_t lo, int64_t hi) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "make_model: %s %s: expected an integer in [%lld, %lld]\n", opt, s, (long long)lo, (long long)hi);
        return -1;
    }
    return (int64_t)v;
}

static void usage(void) {
    fprintf(stderr, "usage: make_model --preset tinyllama-1.1b|llama3-8b|glm-4.5-air --out DIR [--layers N] "
                    "[--hidden N] [--inter N] [--heads N] [--kv-heads N] [--head-dim N] [--vocab N] "
                    "[--experts N] [--moe-inter N] [--top-k N] [--first-dense N] "
                    "[--tokenizer stories|bytelevel] [--seed S] [--source-dir REPO]\n");
}

static int write_llama_config(const char *out, const preset *p, int64_t layers, int64_t hd) {
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n  \"hidden_size\": %lld,\n"
             "  \"intermediate_size\": %lld,\n  \"num_hidden_layers\": %lld,\n  \"num_attention_heads\": %lld,\n"
             "  \"num_key_value_heads\": %lld,\n  \"head_dim\": %lld,\n  \"vocab_size\": %lld,\n"
             "  \"max_position_embeddings\": %lld,\n  \"rms_norm_eps\": %g,\n  \"rope_theta\": %.1f,\n  \"rope_scaling\": null,\n"
             "  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"mlp_bias\": false,\n  \"tie_word_embeddings\": false,\n"
             "  \"torch_dtype\": \"bfloat16\",\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n",
             (long long)p->hidden, (long long)p->inter, (long long)layers, (long long)p->heads, (long long)p->kv, (long long)hd,
             (long long)p->vocab, (long long)p->max_pos, p->eps, p->theta);
    if (write_text(out, "config.json", cfg)) return 1;
    return write_text(out, "generation_config.json", "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n") ? 1 : 0;
}

/* Keys and spellings of GLM-4.5-Air's config.json (docs/architectures.md §2, §12.1), sorted as
 * transformers' save_pretrained writes them. GLM's real eos/pad ids only where the vocabulary holds
 * them; a small vocabulary gets bos 1 / eos 2 as the Llama presets (the stories260K ids). */
static int write_glm_config(const char *out, const preset *p, int64_t layers, int64_t hd) {
    const int real_ids = p->vocab > 151338;
    const char *ids = real_ids ? "  \"eos_token_id\": [\n    151329,\n    151336,\n    151338\n  ],\n  \"pad_token_id\": 151329,\n"
                               : "  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n";
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "{\n  \"architectures\": [\n    \"Glm4MoeForCausalLM\"\n  ],\n  \"attention_bias\": true,\n"
             "  \"attention_dropout\": 0.0,\n%s  \"first_k_dense_replace\": %lld,\n  \"head_dim\": %lld,\n"
             "  \"hidden_act\": \"silu\",\n  \"hidden_size\": %lld,\n  \"initializer_range\": 0.02,\n"
             "  \"intermediate_size\": %lld,\n  \"max_position_embeddings\": %lld,\n  \"model_type\": \"glm4_moe\",\n"
             "  \"moe_intermediate_size\": %lld,\n  \"n_group\": 1,\n  \"n_routed_experts\": %lld,\n"
             "  \"n_shared_experts\": %lld,\n  \"norm_topk_prob\": true,\n  \"num_attention_heads\": %lld,\n"
             "  \"num_experts_per_tok\": %lld,\n  \"num_hidden_layers\": %lld,\n  \"num_key_value_heads\": %lld,\n"
             "  \"num_nextn_predict_layers\": 0,\n  \"partial_rotary_factor\": 0.5,\n  \"rms_norm_eps\": %g,\n"
             "  \"rope_scaling\": null,\n  \"rope_theta\": %.1f,\n  \"routed_scaling_factor\": 1.0,\n"
             "  \"tie_word_embeddings\": false,\n  \"topk_group\": 1,\n  \"torch_dtype\": \"bfloat16\",\n"
             "  \"use_cache\": true,\n  \"use_qk_norm\": false,\n  \"vocab_size\": %lld\n}\n",
             ids, (long long)p->first_dense, (long long)hd, (long long)p->hidden, (long long)p->inter,
             (long long)p->max_pos, (long long)p->moe_inter, (long long)p->experts, (long long)p->shared,
             (long long)p->heads, (long long)p->topk, (long long)layers, (long long)p->kv, p->eps, p->theta,
             (long long)p->vocab);
    if (write_text(out, "config.json", cfg)) return 1;
    const char *gen = real_ids ? "{\n  \"eos_token_id\": [\n    151329,\n    151336,\n    151338\n  ],\n  \"pad_token_id\": 151329\n}\n"
                               : "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n";
    return write_text(out, "generation_config.json", gen) ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *pname = "tinyllama-1.1b", *out = NULL, *tok = "stories", *src = NULL;
    int64_t layers = -1, hidden = -1, inter = -1, heads = -1, kvh = -1, hdim = -1, vocab = -1;
    int64_t experts = -1, moe_inter = -1, topk = -1, first_dense = -1;
    const int64_t big = (int64_t)1 << 24;
    struct { const char *opt; int64_t *dst, lo; } dims[] = {
        {"--layers", &layers, 1}, {"--hidden", &hidden, 1}, {"--inter", &inter, 1}, {"--heads", &heads, 1},
        {"--kv-heads", &kvh, 1}, {"--head-dim", &hdim, 1}, {"--vocab", &vocab, 1}, {"--experts", &experts, 1},
        {"--moe-inter", &moe_inter, 1}, {"--top-k", &topk, 1}, {"--first-dense", &first_dense, 0},
    };
    for (int i = 1; i < argc; i++) {
        int done = 0;
        for (size_t k = 0; k < sizeof dims / sizeof *dims && !done; k++)
            if (!strcmp(argv[i], dims[k].opt) && i + 1 < argc) {
                if ((*dims[k].dst = parse_dim(argv[i], argv[i + 1], dims[k].lo, big)) < 0) return 2;
                i++;
                done = 1;
            }
        if (done) continue;
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) pname = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) rng_state ^= strtoull(argv[++i], NULL, 10) * 0x9E3779B97F4A7C15ULL;
        else if (!strcmp(argv[i], "--source-dir") && i + 1 < argc) src = argv[++i];
        else { usage(); return 2; }
    }
    const preset *pp = NULL;
    for (size_t i = 0; i < sizeof k_presets / sizeof *k_presets; i++) if (!strcmp(k_presets[i].name, pname)) pp = &k_presets[i];
    if (!pp || !out) { fprintf(stderr, "make_model: need a known --preset and --out\n"); return 2; }
    if (strcmp(tok, "stories") && strcmp(tok, "bytelevel")) {
        fprintf(stderr, "make_model: --tokenizer must be stories or bytelevel\n");
        return 2;
    }
    preset P = *pp, *p = &P;
    const int glm = p->arch == ARCH_GLM4_MOE;
    if (!glm && (experts >= 0 || moe_inter >= 0 || topk >= 0 || first_dense >= 0)) {
        fprintf(stderr, "make_model: --experts, --moe-inter, --top-k and --first-dense apply to the glm-4.5-air preset only\n");
        return 2;
    }
    if (layers < 0) layers = p->layers;
    if (hidden > 0) p->hidden = hidden;
    if (inter > 0) p->inter = inter;
    if (heads > 0) p->heads = heads;
    if (kvh > 0) p->kv = kvh;
    if (vocab > 0) p->vocab = vocab;
    if (experts > 0) p->experts = experts;
    if (moe_inter > 0) p->moe_inter = moe_inter;
    if (topk > 0) p->topk = topk;
    if (first_dense >= 0) p->first_dense = first_dense;
    int64_t hd = hdim > 0 ? hdim : p->head_dim ? p->head_dim : p->hidden / p->heads;
    if (p->heads % p->kv) { fprintf(stderr, "make_model: --heads %lld is not a multiple of --kv-heads %lld\n", (long long)p->heads, (long long)p->kv); return 2; }
    if (hd < 1) { fprintf(stderr, "make_model: head_dim is 0 (hidden %lld / heads %lld); give --head-dim\n", (long long)p->hidden, (long long)p->heads); return 2; }
    if (glm && p->topk > p->experts) { fprintf(stderr, "make_model: --top-k %lld exceeds --experts %lld\n", (long long)p->topk, (long long)p->experts); return 2; }
    if (glm && p->first_dense > layers) { fprintf(stderr, "make_model: --first-dense %lld exceeds --layers %lld\n", (long long)p->first_dense, (long long)layers); return 2; }
    const int64_t tok_vocab = !strcmp(tok, "stories") ? 512 : 256;
    if (p->vocab < tok_vocab) { fprintf(stderr, "make_model: --vocab %lld is smaller than the %s tokenizer (%lld tokens)\n", (long long)p->vocab, tok, (long long)tok_vocab); return 2; }
    if (mkdir(out, 0755) && errno != EEXIST) { fprintf(stderr, "make_model: %s: %s\n", out, strerror(errno)); return 1; }
    if (glm ? write_glm_config(out, p, layers, hd) : write_llama_config(out, p, layers, hd)) return 1;
    if (!strcmp(tok, "stories")) {
        const char *base = src ? src : ".";
        const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
        for (int i = 0; i < 3; i++) {
            char s[4096];
            snprintf(s, sizeof s, "%s/models/stories260K/%s", base, files[i]);
            if (copy_file(s, out, files[i])) return 1;
        }
    } else {
        if (write_bytelevel_tokenizer(out)) return 1;
    }
    qn_st_writer *w;
    qn_error err = {0};
    if (qn_st_writer_open(out, 5000000000ULL, &w, &err)) { fprintf(stderr, "make_model: %s\n", err.msg); return 1; }
    qn_st_writer_set_metadata(w, "format", "pt", &err);
    float sd = 0.02f;
    int rc = add(w, "model.embed_tokens.weight", p->vocab, p->hidden, sd, 0);
    char n[256];
    const int64_t H = p->hidden, qd = p->heads * hd, kvd = p->kv * hd;
    for (int64_t l = 0; l < layers && !rc; l++) {
#define L(fmt) (snprintf(n, sizeof n, "model.layers.%lld." fmt, (long long)l), n)
        if (!glm) {
            rc |= add(w, L("input_layernorm.weight"), H, 0, 0, 1.0f);
            rc |= add(w, L("mlp.down_proj.weight"), H, p->inter, sd, 0);
            rc |= add(w, L("mlp.gate_proj.weight"), p->inter, H, sd, 0);
            rc |= add(w, L("mlp.up_proj.weight"), p->inter, H, sd, 0);
            rc |= add(w, L("post_attention_layernorm.weight"), H, 0, 0, 1.0f);
            rc |= add(w, L("self_attn.k_proj.weight"), kvd, H, sd, 0);
            rc |= add(w, L("self_attn.o_proj.weight"), H, qd, sd, 0);
            rc |= add(w, L("self_attn.q_proj.weight"), qd, H, sd, 0);
            rc |= add(w, L("self_attn.v_proj.weight"), kvd, H, sd, 0);
        } else {
            rc |= add(w, L("input_layernorm.weight"), H, 0, 0, 1.0f);
            if (l < p->first_dense) {
                rc |= add(w, L("mlp.down_proj.weight"), H, p->inter, sd, 0);
                rc |= add(w, L("mlp.gate_proj.weight"), p->inter, H, sd, 0);
                rc |= add(w, L("mlp.up_proj.weight"), p->inter, H, sd, 0);
            } else {
                const int64_t im = p->moe_inter, is = p->moe_inter * p->shared;
                for (int64_t e = 0; e < p->experts && !rc; e++) {
                    snprintf(n, sizeof n, "model.layers.%lld.mlp.experts.%lld.down_proj.weight", (long long)l, (long long)e);
                    rc |= add(w, n, H, im, sd, 0);
                    snprintf(n, sizeof n, "model.layers.%lld.mlp.experts.%lld.gate_proj.weight", (long long)l, (long long)e);
                    rc |= add(w, n, im, H, sd, 0);
                    snprintf(n, sizeof n, "model.layers.%lld.mlp.experts.%lld.up_proj.weight", (long long)l, (long long)e);
                    rc |= add(w, n, im, H, sd, 0);
                }
                rc |= add_dt(w, L("mlp.gate.e_score_correction_bias"), QN_DT_F32, p->experts, 0, sd, 0);
                rc |= add(w, L("mlp.gate.weight"), p->experts, H, sd, 0);
                if (is > 0) {
                    rc |= add(w, L("mlp.shared_experts.down_proj.weight"), H, is, sd, 0);
                    rc |= add(w, L("mlp.shared_experts.gate_proj.weight"), is, H, sd, 0);
                    rc |= add(w, L("mlp.shared_experts.up_proj.weight"), is, H, sd, 0);
                }
            }
            rc |= add(w, L("post_attention_layernorm.weight"), H, 0, 0, 1.0f);
            rc |= add(w, L("self_attn.k_proj.bias"), kvd, 0, sd, 0);
            rc |= add(w, L("self_attn.k_proj.weight"), kvd, H, sd, 0);
            rc |= add(w, L("self_attn.o_proj.weight"), H, qd, sd, 0);
            rc |= add(w, L("self_attn.q_proj.bias"), qd, 0, sd, 0);
            rc |= add(w, L("self_attn.q_proj.weight"), qd, H, sd, 0);
            rc |= add(w, L("self_attn.v_proj.bias"), kvd, 0, sd, 0);
            rc |= add(w, L("self_attn.v_proj.weight"), kvd, H, sd, 0);
        }
#undef L
        fprintf(stderr, "\rmake_model: layer %lld/%lld", (long long)l + 1, (long long)layers);
    }
    if (!rc) rc = add(w, "model.norm.weight", H, 0, 0, 1.0f);
    if (!rc) rc = add(w, "lm_head.weight", p->vocab, H, sd, 0);
    if (rc) { qn_st_writer_abort(w); return 1; }
    if (qn_st_writer_finish(w, &err)) { fprintf(stderr, "\nmake_model: %s\n", err.msg); return 1; }
    fprintf(stderr, "\nmake_model: wrote %s (%s, %lld layers)\n", out, p->name, (long long)layers);
    return 0;
}
