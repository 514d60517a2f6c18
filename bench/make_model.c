/* bench/make_model: writes a Llama-shaped model folder with random bf16 weights at real widths,
 * so speed can be measured without downloading anything.
 *
 *   make_model --preset tinyllama-1.1b --layers 4 --out bench/out/tinyllama-4l [--tokenizer stories|bytelevel]
 *
 * Presets: tinyllama-1.1b (hidden 2048, intermediate 5632, 32/4 heads, vocab 32000, 22 layers),
 * llama3-8b (hidden 4096, intermediate 14336, 32/8 heads, vocab 128256, 32 layers, rope 500000).
 * Weights ~ N(0, 0.02) (norms 1.0), bf16, seeded (--seed). The tokenizer is a copy of the bundled
 * stories260K one, or a generated 256-token byte-level BPE (no merges). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "quench/safetensors.h"

typedef struct {
    const char *name;
    int64_t hidden, inter, heads, kv, vocab, layers, max_pos;
    double theta, eps;
} preset;

static const preset k_presets[] = {
    {"tinyllama-1.1b", 2048, 5632, 32, 4, 32000, 22, 2048, 10000.0, 1e-5},
    {"llama3-8b", 4096, 14336, 32, 8, 128256, 32, 8192, 500000.0, 1e-5},
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

static int add(qn_st_writer *w, const char *name, int64_t rows, int64_t cols, float stdv, float constant) {
    int64_t n = rows * (cols ? cols : 1);
    uint16_t *buf = malloc(sizeof(uint16_t) * (size_t)n);
    if (!buf) return -1;
    for (int64_t i = 0; i < n; i++) buf[i] = qn_f32_to_bf16(stdv > 0 ? stdv * gauss() : constant);
    int64_t shape[2] = {rows, cols};
    qn_error err = {0};
    int rc = qn_st_writer_add(w, name, QN_DT_BF16, cols ? 2 : 1, shape, buf, sizeof(uint16_t) * (size_t)n, &err);
    if (rc) fprintf(stderr, "make_model: %s\n", err.msg);
    free(buf);
    return rc;
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

int main(int argc, char **argv) {
    const char *pname = "tinyllama-1.1b", *out = NULL, *tok = "stories", *src = NULL;
    int64_t layers = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) pname = argv[++i];
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) rng_state ^= strtoull(argv[++i], NULL, 10) * 0x9E3779B97F4A7C15ULL;
        else if (!strcmp(argv[i], "--source-dir") && i + 1 < argc) src = argv[++i];
        else {
            fprintf(stderr, "usage: make_model --preset tinyllama-1.1b|llama3-8b [--layers N] --out DIR "
                            "[--tokenizer stories|bytelevel] [--seed S] [--source-dir REPO]\n");
            return 2;
        }
    }
    const preset *p = NULL;
    for (size_t i = 0; i < sizeof k_presets / sizeof *k_presets; i++) if (!strcmp(k_presets[i].name, pname)) p = &k_presets[i];
    if (!p || !out) { fprintf(stderr, "make_model: need a known --preset and --out\n"); return 2; }
    if (layers < 0) layers = p->layers;
    if (mkdir(out, 0755) && errno != EEXIST) { fprintf(stderr, "make_model: %s: %s\n", out, strerror(errno)); return 1; }
    int64_t hd = p->hidden / p->heads;
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
    if (write_text(out, "generation_config.json", "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n")) return 1;
    if (!strcmp(tok, "stories")) {
        const char *base = src ? src : ".";
        const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
        for (int i = 0; i < 3; i++) {
            char s[4096];
            snprintf(s, sizeof s, "%s/models/stories260K/%s", base, files[i]);
            if (copy_file(s, out, files[i])) return 1;
        }
    } else if (!strcmp(tok, "bytelevel")) {
        if (write_bytelevel_tokenizer(out)) return 1;
    } else {
        fprintf(stderr, "make_model: --tokenizer must be stories or bytelevel\n");
        return 2;
    }
    qn_st_writer *w;
    qn_error err = {0};
    if (qn_st_writer_open(out, 5000000000ULL, &w, &err)) { fprintf(stderr, "make_model: %s\n", err.msg); return 1; }
    qn_st_writer_set_metadata(w, "format", "pt", &err);
    float sd = 0.02f;
    int rc = add(w, "model.embed_tokens.weight", p->vocab, p->hidden, sd, 0);
    char n[256];
    for (int64_t l = 0; l < layers && !rc; l++) {
#define L(fmt) (snprintf(n, sizeof n, "model.layers.%lld." fmt, (long long)l), n)
        rc |= add(w, L("input_layernorm.weight"), p->hidden, 0, 0, 1.0f);
        rc |= add(w, L("mlp.down_proj.weight"), p->hidden, p->inter, sd, 0);
        rc |= add(w, L("mlp.gate_proj.weight"), p->inter, p->hidden, sd, 0);
        rc |= add(w, L("mlp.up_proj.weight"), p->inter, p->hidden, sd, 0);
        rc |= add(w, L("post_attention_layernorm.weight"), p->hidden, 0, 0, 1.0f);
        rc |= add(w, L("self_attn.k_proj.weight"), p->kv * hd, p->hidden, sd, 0);
        rc |= add(w, L("self_attn.o_proj.weight"), p->hidden, p->heads * hd, sd, 0);
        rc |= add(w, L("self_attn.q_proj.weight"), p->heads * hd, p->hidden, sd, 0);
        rc |= add(w, L("self_attn.v_proj.weight"), p->kv * hd, p->hidden, sd, 0);
#undef L
        fprintf(stderr, "\rmake_model: layer %lld/%lld", (long long)l + 1, (long long)layers);
    }
    if (!rc) rc = add(w, "model.norm.weight", p->hidden, 0, 0, 1.0f);
    if (!rc) rc = add(w, "lm_head.weight", p->vocab, p->hidden, sd, 0);
    if (rc) { qn_st_writer_abort(w); return 1; }
    if (qn_st_writer_finish(w, &err)) { fprintf(stderr, "\nmake_model: %s\n", err.msg); return 1; }
    fprintf(stderr, "\nmake_model: wrote %s (%s, %lld layers)\n", out, p->name, (long long)layers);
    return 0;
}
