/* config.json (+ generation_config.json) → qn_model_config.
 *
 * Every value comes from config.json; a missing (or null) key takes the transformers class default
 * of the architecture (docs/architectures.md §2, §7). Values are range-checked so that later code
 * can size allocations from them. Errors name the file and the field.
 *
 * Choices that are ours:
 *  - architectures[0] selects the architecture; when `architectures` is absent, model_type does.
 *  - A JSON null counts as "absent" (class default), except sliding_window where null = none.
 *  - Integers may be written as integral floats (4096.0); booleans may be written as 0/1.
 *  - DeepSeek-V3: head_dim defaults to qk_rope_head_dim as in DeepseekV3Config; attention uses
 *    the MLA fields.
 *  - transformers ≥5 `rope_parameters` ({rope_type, rope_theta, factor, ...}) is read like
 *    rope_scaling (+ rope_theta, partial_rotary_factor) when rope_scaling is absent.
 */
#include "quench/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CFG_MAX_FILE_BYTES (16u << 20) /* a config.json is a few KiB; refuse anything absurd */
#define CFG_MAX_DIM ((int64_t)1 << 31) /* sizes must stay below 2^31 */
#define CFG_MAX_LAYERS 10000
#define CFG_MAX_EXPERTS 100000

typedef struct {
    const char *name;  /* architectures[0] */
    const char *mtype; /* model_type */
} arch_names;

static const arch_names k_arch[QN_ARCH_COUNT] = {
    [QN_ARCH_LLAMA] = {"LlamaForCausalLM", "llama"},
    [QN_ARCH_MISTRAL] = {"MistralForCausalLM", "mistral"},
    [QN_ARCH_QWEN2] = {"Qwen2ForCausalLM", "qwen2"},
    [QN_ARCH_QWEN3] = {"Qwen3ForCausalLM", "qwen3"},
    [QN_ARCH_QWEN3_MOE] = {"Qwen3MoeForCausalLM", "qwen3_moe"},
    [QN_ARCH_GLM4_MOE] = {"Glm4MoeForCausalLM", "glm4_moe"},
    [QN_ARCH_DEEPSEEK_V3] = {"DeepseekV3ForCausalLM", "deepseek_v3"},
};

const char *qn_arch_name(qn_arch a) {
    if ((int)a < 0 || a >= QN_ARCH_COUNT) return "unknown";
    return k_arch[a].name;
}

const char *qn_supported_architectures(void) {
    return "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, "
           "Qwen3MoeForCausalLM, Glm4MoeForCausalLM, DeepseekV3ForCausalLM";
}

int qn_config_forward_supported(const qn_model_config *cfg) {
    return cfg && (cfg->arch == QN_ARCH_LLAMA || cfg->arch == QN_ARCH_MISTRAL || cfg->arch == QN_ARCH_QWEN2 ||
                   cfg->arch == QN_ARCH_QWEN3 || cfg->arch == QN_ARCH_QWEN3_MOE || cfg->arch == QN_ARCH_GLM4_MOE);
}

int qn_config_layer_is_moe(const qn_model_config *cfg, int64_t layer) {
    if (!cfg || cfg->num_experts <= 0 || layer < 0) return 0;
    if (layer >= cfg->num_hidden_layers + cfg->num_nextn_predict_layers) return 0;
    switch (cfg->arch) {
    case QN_ARCH_QWEN3_MOE:
        for (int64_t i = 0; i < cfg->n_mlp_only_layers; i++)
            if (cfg->mlp_only_layers[i] == layer) return 0;
        return cfg->decoder_sparse_step > 0 && (layer + 1) % cfg->decoder_sparse_step == 0;
    case QN_ARCH_GLM4_MOE:
        return layer >= cfg->first_k_dense_replace;
    case QN_ARCH_DEEPSEEK_V3:
        return layer >= cfg->first_k_dense_replace && cfg->moe_layer_freq > 0 &&
               layer % cfg->moe_layer_freq == 0;
    default:
        return 0;
    }
}

void qn_config_free(qn_model_config *cfg) {
    if (!cfg) return;
    free(cfg->mlp_only_layers);
    memset(cfg, 0, sizeof *cfg);
}

/* ---------------------------------------------------------------------------------------------
 * File reading and JSON parsing
 * ------------------------------------------------------------------------------------------- */

static qn_status read_small_file(const char *path, char **out, size_t *len, qn_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return qn_error_set(err, e == ENOENT ? QN_ERR_NOT_FOUND : QN_ERR_IO, "%s: cannot open: %s",
                            path, strerror(e));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return qn_error_set(err, QN_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size > (off_t)CFG_MAX_FILE_BYTES) {
        fclose(f);
        return qn_error_set(err, QN_ERR_FORMAT, "%s: %lld bytes is too large for a config file",
                            path, (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return qn_error_set(err, QN_ERR_IO, "%s: short read", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return QN_OK;
}

static qn_status parse_json_file(const char *path, cJSON **root, qn_error *err) {
    char *buf;
    size_t len = 0;
    qn_status st = read_small_file(path, &buf, &len, err);
    if (st) return st;
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!*root) {
        size_t off = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : len;
        int line = 1;
        for (size_t i = 0; i < off; i++) line += buf[i] == '\n';
        free(buf);
        return qn_error_set(err, QN_ERR_FORMAT, "%s: invalid JSON near byte %zu (line %d)", path,
                            off, line);
    }
    free(buf);
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return qn_error_set(err, QN_ERR_FORMAT, "%s: top level is not a JSON object", path);
    }
    return QN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Typed field access
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *path;
    const char *prefix; /* "" or "rope_scaling." */
    qn_error *err;
} ctx;

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

/* The value of `key`, or NULL when absent or null. */
static const cJSON *field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static qn_status type_error(ctx *c, const char *key, const char *want, const cJSON *v) {
    return qn_error_set(c->err, QN_ERR_FORMAT, "%s: field '%s%s' must be %s, got %s", c->path,
                        c->prefix, key, want, json_type_name(v));
}

static qn_status num_to_int(ctx *c, const char *key, const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return type_error(c, key, "an integer", v);
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0)
        return qn_error_set(c->err, QN_ERR_FORMAT, "%s: field '%s%s' must be an integer, got %g",
                            c->path, c->prefix, key, d);
    *out = (int64_t)d;
    return QN_OK;
}

static qn_status get_int(ctx *c, const cJSON *obj, const char *key, int64_t def, int64_t *out) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = def;
        return QN_OK;
    }
    return num_to_int(c, key, v, out);
}

static qn_status get_double(ctx *c, const cJSON *obj, const char *key, double def, double *out) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = def;
        return QN_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return type_error(c, key, "a number", v);
    *out = v->valuedouble;
    return QN_OK;
}

static qn_status get_bool(ctx *c, const cJSON *obj, const char *key, int def, int *out) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = def;
        return QN_OK;
    }
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v) ? 1 : 0;
        return QN_OK;
    }
    if (cJSON_IsNumber(v) && (v->valuedouble == 0.0 || v->valuedouble == 1.0)) {
        *out = v->valuedouble != 0.0;
        return QN_OK;
    }
    return type_error(c, key, "a boolean", v);
}

/* Copies a string field into dst (size n); absent → def. Too long → format error. */
static qn_status get_str(ctx *c, const cJSON *obj, const char *key, const char *def, char *dst,
                         size_t n, int *present) {
    const cJSON *v = field(obj, key);
    if (present) *present = v != NULL;
    const char *s = def;
    if (v) {
        if (!cJSON_IsString(v) || !v->valuestring) return type_error(c, key, "a string", v);
        s = v->valuestring;
    }
    size_t l = strlen(s);
    if (l >= n)
        return qn_error_set(c->err, QN_ERR_FORMAT, "%s: field '%s%s' is too long (%zu bytes)",
                            c->path, c->prefix, key, l);
    memcpy(dst, s, l + 1);
    return QN_OK;
}

/* eos_token_id: an integer or a list of integers (null/absent → none). */
static qn_status get_eos(ctx *c, const cJSON *obj, int32_t *ids, int *n, int *present) {
    const cJSON *v = field(obj, "eos_token_id");
    *present = v != NULL;
    if (!v) return QN_OK;
    int64_t x;
    if (cJSON_IsNumber(v)) {
        qn_status st = num_to_int(c, "eos_token_id", v, &x);
        if (st) return st;
        if (x < 0 || x >= CFG_MAX_DIM)
            return qn_error_set(c->err, QN_ERR_FORMAT, "%s: field 'eos_token_id' = %lld is out of "
                                "range", c->path, (long long)x);
        ids[0] = (int32_t)x;
        *n = 1;
        return QN_OK;
    }
    if (!cJSON_IsArray(v)) return type_error(c, "eos_token_id", "an integer or a list of integers", v);
    int cnt = cJSON_GetArraySize(v);
    if (cnt > QN_MAX_EOS)
        return qn_error_set(c->err, QN_ERR_FORMAT, "%s: field 'eos_token_id' has %d ids (at most %d "
                            "supported)", c->path, cnt, QN_MAX_EOS);
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        if (!cJSON_IsNumber(it)) return type_error(c, "eos_token_id[]", "an integer", it);
        qn_status st = num_to_int(c, "eos_token_id[]", it, &x);
        if (st) return st;
        if (x < 0 || x >= CFG_MAX_DIM)
            return qn_error_set(c->err, QN_ERR_FORMAT, "%s: field 'eos_token_id' contains %lld, out "
                                "of range", c->path, (long long)x);
        ids[k++] = (int32_t)x;
    }
    *n = k;
    return QN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Class defaults (docs/architectures.md §2 table, §7)
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    int64_t vocab, hidden, inter, moe_inter, layers, heads, kv_heads; /* kv_heads 0 = heads */
    double eps;
    int64_t max_pos;
    int64_t experts, topk, shared, n_group, topk_group, first_dense;
    int norm_topk;
    double routed_scale;
    int64_t sliding_window;
} arch_defaults;

static const arch_defaults k_def[QN_ARCH_COUNT] = {
    [QN_ARCH_LLAMA] = {32000, 4096, 11008, 0, 32, 32, 0, 1e-6, 2048, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    [QN_ARCH_MISTRAL] = {32000, 4096, 14336, 0, 32, 32, 8, 1e-6, 131072, 0, 0, 0, 0, 0, 0, 0, 0,
                         4096},
    [QN_ARCH_QWEN2] = {151936, 4096, 22016, 0, 32, 32, 32, 1e-6, 32768, 0, 0, 0, 0, 0, 0, 0, 0, 4096},
    [QN_ARCH_QWEN3] = {151936, 4096, 22016, 0, 32, 32, 32, 1e-6, 32768, 0, 0, 0, 0, 0, 0, 0, 0, 4096},
    [QN_ARCH_QWEN3_MOE] = {151936, 2048, 6144, 768, 24, 32, 4, 1e-6, 32768, 128, 8, 0, 0, 0, 0, 0, 0,
                           4096},
    [QN_ARCH_GLM4_MOE] = {151552, 4096, 10944, 1408, 46, 96, 8, 1e-5, 131072, 128, 8, 1, 1, 1, 1, 1,
                          1.0, 0},
    [QN_ARCH_DEEPSEEK_V3] = {129280, 7168, 18432, 2048, 61, 128, 128, 1e-6, 4096, 256, 8, 1, 8, 4, 3,
                             1, 2.5, 0},
};

static int lookup_arch(const char *s, int by_model_type) {
    for (int a = 0; a < QN_ARCH_COUNT; a++)
        if (strcmp(s, by_model_type ? k_arch[a].mtype : k_arch[a].name) == 0) return a;
    return -1;
}

static qn_status check_range(ctx *c, const char *key, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
        return qn_error_set(c->err, QN_ERR_FORMAT, "%s: field '%s' = %lld is out of range "
                            "[%lld, %lld]", c->path, key, (long long)v, (long long)lo,
                            (long long)hi);
    return QN_OK;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        qn_status st_ = (x);                                                                       \
        if (st_ != QN_OK) return st_;                                                              \
    } while (0)

static qn_status parse_rope(ctx *c, const cJSON *rs, const char *what, qn_model_config *cfg) {
    ctx rc = *c;
    rc.prefix = what; /* "rope_scaling." or "rope_parameters." */
    char type[32];
    int present = 0;
    TRY(get_str(&rc, rs, "rope_type", "", type, sizeof type, &present));
    if (!present) TRY(get_str(&rc, rs, "type", "default", type, sizeof type, &present));
    if (!strcmp(type, "default")) cfg->rope_type = QN_ROPE_DEFAULT;
    else if (!strcmp(type, "llama3")) cfg->rope_type = QN_ROPE_LLAMA3;
    else if (!strcmp(type, "linear")) cfg->rope_type = QN_ROPE_LINEAR;
    else if (!strcmp(type, "yarn")) cfg->rope_type = QN_ROPE_YARN;
    else
        return qn_error_set(c->err, QN_ERR_UNSUPPORTED, "%s: %srope_type '%s' is not supported "
                            "(supported: default, llama3, linear, yarn)", c->path, what, type);
    int need_factor = cfg->rope_type != QN_ROPE_DEFAULT;
    if (need_factor && !field(rs, "factor"))
        return qn_error_set(c->err, QN_ERR_FORMAT, "%s: field '%sfactor' is required for rope_type "
                            "'%s'", c->path, what, type);
    TRY(get_double(&rc, rs, "factor", 1.0, &cfg->rope_factor));
    if (!(cfg->rope_factor > 0) || cfg->rope_factor > 1e6)
        return qn_error_set(c->err, QN_ERR_FORMAT, "%s: field '%sfactor' = %g is out of range",
                            c->path, what, cfg->rope_factor);
    TRY(get_double(&rc, rs, "low_freq_factor", 1.0, &cfg->rope_low_freq_factor));
    TRY(get_double(&rc, rs, "high_freq_factor", 4.0, &cfg->rope_high_freq_factor));
    TRY(get_int(&rc, rs, "original_max_position_embeddings", cfg->max_position_embeddings,
                &cfg->rope_original_max_position));
    TRY(get_double(&rc, rs, "beta_fast", 32.0, &cfg->rope_beta_fast));
    TRY(get_double(&rc, rs, "beta_slow", 1.0, &cfg->rope_beta_slow));
    TRY(get_double(&rc, rs, "mscale", 0.0, &cfg->rope_mscale));
    TRY(get_double(&rc, rs, "mscale_all_dim", 0.0, &cfg->rope_mscale_all_dim));
    if (cfg->rope_type == QN_ROPE_LLAMA3) {
        if (!(cfg->rope_low_freq_factor > 0) || !(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
            return qn_error_set(c->err, QN_ERR_FORMAT, "%s: %slow_freq_factor %g / high_freq_factor "
                                "%g must satisfy 0 < low < high", c->path, what,
                                cfg->rope_low_freq_factor, cfg->rope_high_freq_factor);
    }
    if (cfg->rope_original_max_position <= 0 || cfg->rope_original_max_position >= CFG_MAX_DIM)
        return qn_error_set(c->err, QN_ERR_FORMAT, "%s: field '%soriginal_max_position_embeddings' "
                            "= %lld is out of range", c->path, what,
                            (long long)cfg->rope_original_max_position);
    return QN_OK;
}

static qn_status parse_config(const char *path, const cJSON *root, qn_model_config *cfg,
                              qn_error *err) {
    ctx c = {path, "", err};

    /* --- architecture --- */
    const cJSON *archs = field(root, "architectures");
    int a = -1;
    TRY(get_str(&c, root, "model_type", "", cfg->model_type, sizeof cfg->model_type, NULL));
    if (archs) {
        if (!cJSON_IsArray(archs) || cJSON_GetArraySize(archs) < 1)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'architectures' must be a non-empty "
                                "list of strings", path);
        const cJSON *a0 = cJSON_GetArrayItem(archs, 0);
        if (!cJSON_IsString(a0) || !a0->valuestring)
            return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'architectures[0]' must be a string, "
                                "got %s", path, json_type_name(a0));
        a = lookup_arch(a0->valuestring, 0);
        if (a < 0)
            return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: architectures[0] '%.100s' is not "
                                "supported (supported: %s)", path, a0->valuestring,
                                qn_supported_architectures());
    } else {
        if (!cfg->model_type[0])
            return qn_error_set(err, QN_ERR_FORMAT, "%s: neither 'architectures' nor 'model_type' "
                                "is given", path);
        a = lookup_arch(cfg->model_type, 1);
        if (a < 0)
            return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported "
                                "(supported: %s)", path, cfg->model_type,
                                qn_supported_architectures());
    }
    cfg->arch = (qn_arch)a;
    snprintf(cfg->architecture, sizeof cfg->architecture, "%s", k_arch[a].name);
    if (!cfg->model_type[0]) snprintf(cfg->model_type, sizeof cfg->model_type, "%s", k_arch[a].mtype);
    const arch_defaults *d = &k_def[a];
    const int is_moe_arch = a == QN_ARCH_QWEN3_MOE || a == QN_ARCH_GLM4_MOE || a == QN_ARCH_DEEPSEEK_V3;
    const int is_qwen = a == QN_ARCH_QWEN2 || a == QN_ARCH_QWEN3 || a == QN_ARCH_QWEN3_MOE;

    /* --- dtype --- */
    int present = 0;
    TRY(get_str(&c, root, "torch_dtype", "", cfg->torch_dtype, sizeof cfg->torch_dtype, &present));
    if (!present) TRY(get_str(&c, root, "dtype", "", cfg->torch_dtype, sizeof cfg->torch_dtype, NULL));
    if (cfg->torch_dtype[0] && strcmp(cfg->torch_dtype, "bfloat16") &&
        strcmp(cfg->torch_dtype, "float16") && strcmp(cfg->torch_dtype, "float32"))
        return qn_error_set(err, QN_ERR_UNSUPPORTED, "%s: field '%s' = '%s' is not supported "
                            "(bfloat16, float16, float32)", path, present ? "torch_dtype" : "dtype",
                            cfg->torch_dtype);
    TRY(get_str(&c, root, "hidden_act", "silu", cfg->hidden_act, sizeof cfg->hidden_act, NULL));

    /* --- sizes --- */
    TRY(get_int(&c, root, "vocab_size", d->vocab, &cfg->vocab_size));
    TRY(get_int(&c, root, "hidden_size", d->hidden, &cfg->hidden_size));
    TRY(get_int(&c, root, "intermediate_size", d->inter, &cfg->intermediate_size));
    TRY(get_int(&c, root, "num_hidden_layers", d->layers, &cfg->num_hidden_layers));
    TRY(get_int(&c, root, "num_attention_heads", d->heads, &cfg->num_attention_heads));
    TRY(get_int(&c, root, "num_key_value_heads", d->kv_heads ? d->kv_heads : cfg->num_attention_heads,
                &cfg->num_key_value_heads));
    TRY(get_int(&c, root, "max_position_embeddings", d->max_pos, &cfg->max_position_embeddings));

    TRY(check_range(&c, "vocab_size", cfg->vocab_size, 1, CFG_MAX_DIM - 1));
    TRY(check_range(&c, "hidden_size", cfg->hidden_size, 1, CFG_MAX_DIM - 1));
    TRY(check_range(&c, "intermediate_size", cfg->intermediate_size, 1, CFG_MAX_DIM - 1));
    TRY(check_range(&c, "num_hidden_layers", cfg->num_hidden_layers, 1, CFG_MAX_LAYERS));
    TRY(check_range(&c, "num_attention_heads", cfg->num_attention_heads, 1, CFG_MAX_DIM - 1));
    TRY(check_range(&c, "num_key_value_heads", cfg->num_key_value_heads, 1, CFG_MAX_DIM - 1));
    TRY(check_range(&c, "max_position_embeddings", cfg->max_position_embeddings, 1, CFG_MAX_DIM - 1));
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: num_attention_heads %lld is not divisible by "
                            "num_key_value_heads %lld", path, (long long)cfg->num_attention_heads,
                            (long long)cfg->num_key_value_heads);

    /* --- DeepSeek MLA dims (read before head_dim: DeepseekV3Config sets head_dim = rope dim) --- */
    if (a == QN_ARCH_DEEPSEEK_V3) {
        /* q_lora_rank: null written explicitly means "no q compression" (q_proj instead). */
        const cJSON *ql = cJSON_GetObjectItemCaseSensitive(root, "q_lora_rank");
        if (ql && cJSON_IsNull(ql)) cfg->q_lora_rank = 0;
        else TRY(get_int(&c, root, "q_lora_rank", 1536, &cfg->q_lora_rank));
        TRY(get_int(&c, root, "kv_lora_rank", 512, &cfg->kv_lora_rank));
        TRY(get_int(&c, root, "qk_nope_head_dim", 128, &cfg->qk_nope_head_dim));
        TRY(get_int(&c, root, "qk_rope_head_dim", 64, &cfg->qk_rope_head_dim));
        TRY(get_int(&c, root, "v_head_dim", 128, &cfg->v_head_dim));
        TRY(check_range(&c, "q_lora_rank", cfg->q_lora_rank, 0, CFG_MAX_DIM - 1));
        TRY(check_range(&c, "kv_lora_rank", cfg->kv_lora_rank, 1, CFG_MAX_DIM - 1));
        TRY(check_range(&c, "qk_nope_head_dim", cfg->qk_nope_head_dim, 0, CFG_MAX_DIM - 1));
        TRY(check_range(&c, "qk_rope_head_dim", cfg->qk_rope_head_dim, 1, CFG_MAX_DIM - 1));
        TRY(check_range(&c, "v_head_dim", cfg->v_head_dim, 1, CFG_MAX_DIM - 1));
        TRY(get_bool(&c, root, "rope_interleave", 1, &cfg->rope_interleave));
    }

    int64_t hd_default = a == QN_ARCH_QWEN3         ? 128
                         : a == QN_ARCH_DEEPSEEK_V3 ? cfg->qk_rope_head_dim
                                                    : cfg->hidden_size / cfg->num_attention_heads;
    TRY(get_int(&c, root, "head_dim", hd_default, &cfg->head_dim));
    TRY(check_range(&c, "head_dim", cfg->head_dim, 1, CFG_MAX_DIM - 1));
    if (cfg->num_attention_heads * cfg->head_dim >= CFG_MAX_DIM)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: num_attention_heads %lld x head_dim %lld is too "
                            "large", path, (long long)cfg->num_attention_heads,
                            (long long)cfg->head_dim);

    /* --- norms, rope --- */
    TRY(get_double(&c, root, "rms_norm_eps", d->eps, &cfg->rms_norm_eps));
    if (!(cfg->rms_norm_eps > 0) || cfg->rms_norm_eps > 1)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'rms_norm_eps' = %g is out of range (0, 1]",
                            path, cfg->rms_norm_eps);

    const cJSON *rparams = field(root, "rope_parameters"); /* transformers >= 5 */
    if (rparams && !cJSON_IsObject(rparams)) return type_error(&c, "rope_parameters", "an object", rparams);
    ctx pc = c;
    pc.prefix = "rope_parameters.";
    TRY(get_double(&c, root, "rope_theta", 10000.0, &cfg->rope_theta));
    if (rparams && !field(root, "rope_theta"))
        TRY(get_double(&pc, rparams, "rope_theta", 10000.0, &cfg->rope_theta));
    if (!(cfg->rope_theta > 0))
        return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'rope_theta' = %g must be positive", path,
                            cfg->rope_theta);
    TRY(get_double(&c, root, "partial_rotary_factor", a == QN_ARCH_GLM4_MOE ? 0.5 : 1.0,
                   &cfg->partial_rotary_factor));
    if (rparams && !field(root, "partial_rotary_factor"))
        TRY(get_double(&pc, rparams, "partial_rotary_factor", cfg->partial_rotary_factor,
                       &cfg->partial_rotary_factor));
    if (!(cfg->partial_rotary_factor > 0) || cfg->partial_rotary_factor > 1)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'partial_rotary_factor' = %g is out of "
                            "range (0, 1]", path, cfg->partial_rotary_factor);

    cfg->rope_type = QN_ROPE_DEFAULT;
    cfg->rope_factor = 1.0;
    cfg->rope_low_freq_factor = 1.0;
    cfg->rope_high_freq_factor = 4.0;
    cfg->rope_original_max_position = cfg->max_position_embeddings;
    cfg->rope_beta_fast = 32.0;
    cfg->rope_beta_slow = 1.0;
    const cJSON *rs = field(root, "rope_scaling");
    if (rs) {
        if (!cJSON_IsObject(rs)) return type_error(&c, "rope_scaling", "an object or null", rs);
        TRY(parse_rope(&c, rs, "rope_scaling.", cfg));
    } else if (rparams) {
        TRY(parse_rope(&c, rparams, "rope_parameters.", cfg));
    }

    /* --- biases, norms, tying --- */
    int ab = 0;
    TRY(get_bool(&c, root, "attention_bias", 0, &ab));
    switch (a) {
    case QN_ARCH_LLAMA: cfg->attention_bias = ab; cfg->o_bias = ab; break;
    case QN_ARCH_MISTRAL: cfg->attention_bias = 0; cfg->o_bias = 0; break;
    case QN_ARCH_QWEN2: cfg->attention_bias = 1; cfg->o_bias = 0; break;
    case QN_ARCH_QWEN3:
    case QN_ARCH_QWEN3_MOE: cfg->attention_bias = ab; cfg->o_bias = ab; break;
    case QN_ARCH_GLM4_MOE: cfg->attention_bias = ab; cfg->o_bias = 0; break;
    case QN_ARCH_DEEPSEEK_V3: cfg->attention_bias = ab; cfg->o_bias = ab; break;
    default: break;
    }
    if (a == QN_ARCH_LLAMA) TRY(get_bool(&c, root, "mlp_bias", 0, &cfg->mlp_bias));
    if (a == QN_ARCH_QWEN3 || a == QN_ARCH_QWEN3_MOE) cfg->use_qk_norm = 1;
    else if (a == QN_ARCH_GLM4_MOE) TRY(get_bool(&c, root, "use_qk_norm", 0, &cfg->use_qk_norm));
    TRY(get_bool(&c, root, "tie_word_embeddings", 0, &cfg->tie_word_embeddings));

    /* sliding window: Mistral uses it when set (null = none); Qwen only with use_sliding_window. */
    cfg->sliding_window = 0;
    if (a == QN_ARCH_MISTRAL || is_qwen) {
        const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
        int64_t w = 0;
        if (!sw) w = d->sliding_window;
        else if (!cJSON_IsNull(sw)) TRY(num_to_int(&c, "sliding_window", sw, &w));
        TRY(check_range(&c, "sliding_window", w, 0, CFG_MAX_DIM - 1));
        int use = 1;
        if (is_qwen) TRY(get_bool(&c, root, "use_sliding_window", 0, &use));
        cfg->sliding_window = use ? w : 0;
    }

    /* --- MoE --- */
    cfg->decoder_sparse_step = 1;
    cfg->moe_layer_freq = 1;
    if (is_moe_arch) {
        /* num_experts (Qwen) / num_local_experts (Qwen attribute_map, Mixtral) / n_routed_experts */
        const char *ekey = NULL;
        static const char *const ekeys[] = {"num_experts", "num_local_experts", "n_routed_experts"};
        const char *const *order = ekeys;
        static const char *const glm_order[] = {"n_routed_experts", "num_experts", "num_local_experts"};
        if (a != QN_ARCH_QWEN3_MOE) order = glm_order;
        for (int i = 0; i < 3 && !ekey; i++)
            if (field(root, order[i])) ekey = order[i];
        TRY(get_int(&c, root, ekey ? ekey : order[0], d->experts, &cfg->num_experts));
        TRY(check_range(&c, ekey ? ekey : order[0], cfg->num_experts, 1, CFG_MAX_EXPERTS));
        TRY(get_int(&c, root, "num_experts_per_tok", d->topk, &cfg->num_experts_per_tok));
        TRY(check_range(&c, "num_experts_per_tok", cfg->num_experts_per_tok, 1, cfg->num_experts));
        TRY(get_int(&c, root, "moe_intermediate_size", d->moe_inter, &cfg->moe_intermediate_size));
        TRY(check_range(&c, "moe_intermediate_size", cfg->moe_intermediate_size, 1, CFG_MAX_DIM - 1));
        TRY(get_bool(&c, root, "norm_topk_prob", d->norm_topk, &cfg->norm_topk_prob));
        if (a == QN_ARCH_QWEN3_MOE) {
            TRY(get_int(&c, root, "decoder_sparse_step", 1, &cfg->decoder_sparse_step));
            TRY(check_range(&c, "decoder_sparse_step", cfg->decoder_sparse_step, 1,
                            cfg->num_hidden_layers));
            const cJSON *ml = field(root, "mlp_only_layers");
            if (ml) {
                if (!cJSON_IsArray(ml)) return type_error(&c, "mlp_only_layers", "a list of integers", ml);
                int cnt = cJSON_GetArraySize(ml);
                if (cnt > cfg->num_hidden_layers)
                    return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'mlp_only_layers' has %d "
                                        "entries, more than num_hidden_layers %lld", path, cnt,
                                        (long long)cfg->num_hidden_layers);
                if (cnt > 0) {
                    cfg->mlp_only_layers = calloc((size_t)cnt, sizeof *cfg->mlp_only_layers);
                    if (!cfg->mlp_only_layers)
                        return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", path);
                    const cJSON *it;
                    cJSON_ArrayForEach(it, ml) {
                        int64_t x;
                        TRY(num_to_int(&c, "mlp_only_layers[]", it, &x));
                        TRY(check_range(&c, "mlp_only_layers[]", x, 0, cfg->num_hidden_layers - 1));
                        cfg->mlp_only_layers[cfg->n_mlp_only_layers++] = x;
                    }
                }
            }
            TRY(get_int(&c, root, "shared_expert_intermediate_size", 0,
                        &cfg->shared_expert_intermediate_size));
            TRY(check_range(&c, "shared_expert_intermediate_size",
                            cfg->shared_expert_intermediate_size, 0, CFG_MAX_DIM - 1));
        } else {
            TRY(get_int(&c, root, "n_shared_experts", d->shared, &cfg->n_shared_experts));
            TRY(check_range(&c, "n_shared_experts", cfg->n_shared_experts, 0, CFG_MAX_EXPERTS));
            TRY(get_int(&c, root, "n_group", d->n_group, &cfg->n_group));
            TRY(check_range(&c, "n_group", cfg->n_group, 1, cfg->num_experts));
            if (cfg->num_experts % cfg->n_group != 0)
                return qn_error_set(err, QN_ERR_FORMAT, "%s: experts %lld are not divisible into "
                                    "n_group %lld groups", path, (long long)cfg->num_experts,
                                    (long long)cfg->n_group);
            TRY(get_int(&c, root, "topk_group", d->topk_group, &cfg->topk_group));
            TRY(check_range(&c, "topk_group", cfg->topk_group, 1, cfg->n_group));
            TRY(get_double(&c, root, "routed_scaling_factor", d->routed_scale,
                           &cfg->routed_scaling_factor));
            if (!(cfg->routed_scaling_factor > 0))
                return qn_error_set(err, QN_ERR_FORMAT, "%s: field 'routed_scaling_factor' = %g must "
                                    "be positive", path, cfg->routed_scaling_factor);
            TRY(get_int(&c, root, "first_k_dense_replace", d->first_dense, &cfg->first_k_dense_replace));
            TRY(check_range(&c, "first_k_dense_replace", cfg->first_k_dense_replace, 0,
                            cfg->num_hidden_layers));
            if (a == QN_ARCH_DEEPSEEK_V3) {
                TRY(get_int(&c, root, "moe_layer_freq", 1, &cfg->moe_layer_freq));
                TRY(check_range(&c, "moe_layer_freq", cfg->moe_layer_freq, 1, cfg->num_hidden_layers));
            }
            TRY(get_int(&c, root, "num_nextn_predict_layers", 0, &cfg->num_nextn_predict_layers));
            TRY(check_range(&c, "num_nextn_predict_layers", cfg->num_nextn_predict_layers, 0, 64));
        }
    }

    /* --- tokens --- */
    int64_t bos = -1;
    TRY(get_int(&c, root, "bos_token_id", -1, &bos));
    TRY(check_range(&c, "bos_token_id", bos, -1, CFG_MAX_DIM - 1));
    cfg->bos_token_id = (int32_t)bos;
    TRY(get_eos(&c, root, cfg->eos_token_ids, &cfg->n_eos, &present));

    cfg->has_quantization_config = field(root, "quantization_config") != NULL;
    return QN_OK;
}

qn_status qn_config_load_file(const char *path, qn_model_config *cfg, qn_error *err) {
    if (!cfg) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_config_load_file: cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    if (!path) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_config_load_file: path is NULL");
    cJSON *root = NULL;
    qn_status st = parse_json_file(path, &root, err);
    if (st) return st;
    st = parse_config(path, root, cfg, err);
    cJSON_Delete(root);
    if (st) qn_config_free(cfg);
    return st;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

qn_status qn_config_load_dir(const char *dir, qn_model_config *cfg, qn_error *err) {
    if (!cfg) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_config_load_dir: cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    if (!dir) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_config_load_dir: dir is NULL");
    char *cp = path_join(dir, "config.json");
    char *gp = path_join(dir, "generation_config.json");
    qn_status st = QN_OK;
    if (!cp || !gp) {
        st = qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    st = qn_config_load_file(cp, cfg, err);
    if (st) goto done;

    struct stat sb;
    if (stat(gp, &sb) == 0) {
        cJSON *root = NULL;
        st = parse_json_file(gp, &root, err);
        if (st) goto fail;
        ctx c = {gp, "", err};
        int32_t ids[QN_MAX_EOS] = {0};
        int n = 0, present = 0;
        st = get_eos(&c, root, ids, &n, &present);
        cJSON_Delete(root);
        if (st) goto fail;
        if (present) {
            memcpy(cfg->eos_token_ids, ids, sizeof ids);
            cfg->n_eos = n;
        }
    }
    goto done;
fail:
    qn_config_free(cfg);
done:
    free(cp);
    free(gp);
    return st;
}
