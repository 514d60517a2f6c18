/* The Linear modules of a model, their order, fused groups and compression formats. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/export_internal.h"

/* ---------- names ---------- */

int64_t qnx_layer_of(const char *name, const char **rest) {
    static const char pre[] = "model.layers.";
    if (strncmp(name, pre, sizeof pre - 1)) return -1;
    const char *p = name + sizeof pre - 1;
    if (!isdigit((unsigned char)*p)) return -1;
    int64_t v = 0;
    while (isdigit((unsigned char)*p)) {
        if (v > (INT64_C(1) << 40)) return -1;
        v = v * 10 + (*p++ - '0');
    }
    if (*p != '.') return -1;
    if (rest) *rest = p + 1;
    return v;
}

static int proj_rank(const char *leaf) {
    if (!strncmp(leaf, "gate_proj", 9)) return 0;
    if (!strncmp(leaf, "up_proj", 7)) return 1;
    if (!strncmp(leaf, "down_proj", 9)) return 2;
    return 3;
}

/* Rank of a name (module or tensor) inside a decoder layer, following HF registration order. */
static int layer_rank(const char *rest, qn_arch arch, int64_t *sub) {
    *sub = 0;
    static const char *const attn[] = {"q_proj", "q_a_proj", "q_a_layernorm", "q_b_proj", "k_proj", "v_proj",
                                       "kv_a_proj_with_mqa", "kv_a_layernorm", "kv_b_proj", "o_proj"};
    if (!strncmp(rest, "input_layernorm", 15)) return 0;
    if (!strncmp(rest, "self_attn.", 10)) {
        const char *leaf = rest + 10;
        for (size_t i = 0; i < sizeof attn / sizeof *attn; i++) {
            size_t l = strlen(attn[i]);
            if (!strncmp(leaf, attn[i], l) && (leaf[l] == '.' || !leaf[l])) return 10 + (int)i;
        }
        return 29;
    }
    if (!strncmp(rest, "post_attention_layernorm", 24)) return 30;
    if (!strncmp(rest, "mlp.", 4)) {
        const char *m = rest + 4;
        int moe_experts_first = arch == QN_ARCH_DEEPSEEK_V3 || arch == QN_ARCH_GLM4_MOE;
        if (!strncmp(m, "experts.", 8) && isdigit((unsigned char)m[8])) {
            const char *q = m + 8;
            int64_t e = 0;
            while (isdigit((unsigned char)*q) && e < (INT64_C(1) << 40)) e = e * 10 + (*q++ - '0');
            *sub = e * 4 + (*q == '.' ? proj_rank(q + 1) : 3);
            return moe_experts_first ? 41 : 43;
        }
        if (!strncmp(m, "gate.", 5) || !strcmp(m, "gate")) return moe_experts_first ? 43 : 41;
        if (!strncmp(m, "shared_expert_gate", 18)) return 46;
        if (!strncmp(m, "shared_expert", 13)) {
            const char *q = strchr(m, '.');
            *sub = q ? proj_rank(q + 1) : 3;
            return 45;
        }
        return 36 + proj_rank(m); /* mlp.gate_proj, up_proj, down_proj, other */
    }
    return 50;
}

static int section_of(const char *name) {
    if (qnx_layer_of(name, NULL) >= 0) return 1;
    if (!strncmp(name, "model.norm.", 11) || !strcmp(name, "model.norm")) return 2;
    if (!strncmp(name, "lm_head.", 8) || !strcmp(name, "lm_head")) return 3;
    return 0;
}

int qnx_name_cmp(const char *a, const char *b, qn_arch arch) {
    int sa = section_of(a), sb = section_of(b);
    if (sa != sb) return sa < sb ? -1 : 1;
    if (sa == 1) {
        const char *ra, *rb;
        int64_t la = qnx_layer_of(a, &ra), lb = qnx_layer_of(b, &rb);
        if (la != lb) return la < lb ? -1 : 1;
        int64_t xa, xb;
        int ka = layer_rank(ra, arch, &xa), kb = layer_rank(rb, arch, &xb);
        if (ka != kb) return ka < kb ? -1 : 1;
        if (xa != xb) return xa < xb ? -1 : 1;
    }
    return strcmp(a, b);
}

int qnx_fused_key(const char *module, char *buf, size_t n) {
    const char *dot = strrchr(module, '.');
    if (!dot) return 0;
    const char *leaf = dot + 1;
    size_t plen = (size_t)(dot - module);
    const char *kind = NULL;
    int attn = plen >= 9 && !strncmp(dot - 9, "self_attn", 9);
    if (attn && (!strcmp(leaf, "q_proj") || !strcmp(leaf, "k_proj") || !strcmp(leaf, "v_proj"))) kind = "qkv";
    else if (attn && (!strcmp(leaf, "q_a_proj") || !strcmp(leaf, "kv_a_proj_with_mqa"))) kind = "mla_a";
    else if (!attn && (!strcmp(leaf, "gate_proj") || !strcmp(leaf, "up_proj"))) kind = "gate_up";
    if (!kind) return 0;
    snprintf(buf, n, "%.*s#%s", (int)plen, module, kind);
    return 1;
}

/* ---------- module list ---------- */

int qnx_is_linear_in_layer(const char *rest) {
    if (!strncmp(rest, "self_attn.", 10)) {
        const char *leaf = rest + 10;
        return strchr(leaf, '.') == NULL && strstr(leaf, "proj") != NULL;
    }
    if (!strncmp(rest, "mlp.", 4)) {
        const char *m = rest + 4;
        if (!strcmp(m, "gate") || !strcmp(m, "shared_expert_gate")) return 1;
        const char *leaf = strrchr(m, '.');
        leaf = leaf ? leaf + 1 : m;
        size_t l = strlen(leaf);
        if (l < 5 || strcmp(leaf + l - 5, "_proj")) return 0;
        if (leaf == m) return 1;                                   /* mlp.X_proj */
        if (!strncmp(m, "experts.", 8)) {                          /* mlp.experts.N.X_proj */
            const char *q = m + 8;
            if (!isdigit((unsigned char)*q)) return 0;
            while (isdigit((unsigned char)*q)) q++;
            return *q == '.' && q + 1 == leaf;
        }
        if (!strncmp(m, "shared_expert.", 14)) return m + 14 == leaf;
        if (!strncmp(m, "shared_experts.", 15)) return m + 15 == leaf;
        return 0;
    }
    return 0;
}

static void msort(size_t *a, size_t *tmp, size_t n, const char *const *names, qn_arch arch) {
    if (n < 2) return;
    size_t h = n / 2;
    msort(a, tmp, h, names, arch);
    msort(a + h, tmp, n - h, names, arch);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = qnx_name_cmp(names[a[j]], names[a[i]], arch) < 0 ? a[j++] : a[i++];
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof *a);
}

int qnx_sort_names(size_t *idx, size_t n, const char *const *names, qn_arch arch) {
    size_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp) return -1;
    msort(idx, tmp, n, names, arch);
    free(tmp);
    return 0;
}

static int mod_sort(qn_module *m, size_t n, qn_arch arch) {
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    const char **names = malloc((n ? n : 1) * sizeof *names);
    qn_module *copy = malloc((n ? n : 1) * sizeof *copy);
    int rc = -1;
    if (idx && names && copy) {
        for (size_t i = 0; i < n; i++) { idx[i] = i; names[i] = m[i].name; copy[i] = m[i]; }
        if (!qnx_sort_names(idx, n, names, arch)) {
            for (size_t i = 0; i < n; i++) m[i] = copy[idx[i]];
            rc = 0;
        }
    }
    free(idx);
    free(names);
    free(copy);
    return rc;
}

void qn_export_modules_free(qn_module *mods, size_t n) {
    if (!mods) return;
    for (size_t i = 0; i < n; i++) free((char *)mods[i].name);
    free(mods);
}

qn_status qn_export_list_modules(const qn_model_config *cfg, const qn_st_set *set, qn_module **out, size_t *n_out,
                                 qn_error *err) {
    *out = NULL;
    *n_out = 0;
    size_t nt = qn_st_set_count(set), n = 0;
    qn_module *mods = calloc(nt + 1, sizeof *mods);
    if (!mods) return qn_error_set(err, QN_ERR_NOMEM, "out of memory listing modules");
    int have_lm_head = 0;
    for (size_t i = 0; i < nt; i++) {
        const qn_tensor *t = qn_st_set_get(set, i);
        size_t l = strlen(t->name);
        if (l < 8 || strcmp(t->name + l - 7, ".weight") || t->ndim != 2 || !qn_dtype_is_float(t->dtype)) continue;
        char mod[512];
        if (l - 7 >= sizeof mod) continue;
        memcpy(mod, t->name, l - 7);
        mod[l - 7] = 0;
        const char *rest;
        int64_t li = qnx_layer_of(mod, &rest);
        int lin = 0;
        if (!strcmp(mod, "lm_head")) { lin = 1; have_lm_head = 1; }
        else if (li >= 0 && li < cfg->num_hidden_layers) lin = qnx_is_linear_in_layer(rest);
        if (!lin) continue;
        mods[n].name = strdup(mod);
        if (!mods[n].name) { qn_export_modules_free(mods, n); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
        mods[n].class_name = "Linear";
        mods[n].out = t->shape[0];
        mods[n].in = t->shape[1];
        n++;
    }
    if (!have_lm_head) {
        const qn_tensor *e = qn_st_set_find(set, "model.embed_tokens.weight");
        if (e && e->ndim == 2 && cfg->tie_word_embeddings) {
            mods[n].name = strdup("lm_head");
            if (!mods[n].name) { qn_export_modules_free(mods, n); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
            mods[n].class_name = "Linear";
            mods[n].out = e->shape[0];
            mods[n].in = e->shape[1];
            n++;
        }
    }
    if (mod_sort(mods, n, cfg->arch)) {
        qn_export_modules_free(mods, n);
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory sorting modules");
    }
    *out = mods;
    *n_out = n;
    return QN_OK;
}

/* ---------- formats ---------- */

static const char *const k_formats[] = {"dense", "sparse-bitmask", "sparse-24-bitmask", "int-quantized",
                                        "float-quantized", "naive-quantized", "pack-quantized", "marlin-24",
                                        "mixed-precision", "nvfp4-pack-quantized", "mxfp4-pack-quantized",
                                        "mxfp8-quantized"};

int qnx_format_known(const char *name) {
    for (size_t i = 0; i < sizeof k_formats / sizeof *k_formats; i++)
        if (!strcmp(name, k_formats[i])) return 1;
    return 0;
}

qnx_format qnx_format_kind(const char *name) {
    if (!strcmp(name, "dense")) return QNX_FMT_DENSE;
    if (!strcmp(name, "naive-quantized") || !strcmp(name, "int-quantized") || !strcmp(name, "float-quantized"))
        return QNX_FMT_NAIVE;
    if (!strcmp(name, "pack-quantized")) return QNX_FMT_PACK;
    if (!strcmp(name, "nvfp4-pack-quantized")) return QNX_FMT_NVFP4;
    return QNX_FMT_OTHER;
}

void qn_export_group_format(const qn_quant_scheme *s, int v, char *buf, size_t n) {
    const char *f;
    if (v <= 0) v = QN_CT_VERSION_DEFAULT;
    if (s->format[0]) { snprintf(buf, n, "%s", s->format); return; }
    if (!s->has_weights) { snprintf(buf, n, "dense"); return; }
    const qn_quant_args *w = &s->weights, *in = s->has_input_activations ? &s->input_activations : NULL;
    int64_t g = w->has_group_size ? w->group_size : 0;
    int is_int = w->type == QN_QTYPE_INT, is_float = !is_int;
    if (is_int && in && in->type == QN_QTYPE_FLOAT && w->num_bits <= 8) {
        f = "pack-quantized"; /* W4AFP8: vLLM's CompressedTensorsW4A8Fp8 loads weight_packed (§3.5) */
    } else if (v < QN_CT_VERSION(0, 15)) {
        /* compressed-tensors 0.11-0.14 (_get_quant_compression_format) */
        if (is_float && w->num_bits == 4) f = g == 32 ? "mxfp4-pack-quantized" : "nvfp4-pack-quantized";
        else if (!in) f = (is_int && (w->num_bits == 4 || w->num_bits == 8)) ? "pack-quantized" : "naive-quantized";
        else if (is_float && w->num_bits == 8) f = "float-quantized";
        else if (is_int) f = "int-quantized";
        else f = "naive-quantized";
    } else {
        /* HEAD: COMPRESSION_FORMAT_PRIORITY */
        if (is_float && w->num_bits == 4 && g == 32) f = "mxfp4-pack-quantized";
        else if (is_float && w->num_bits == 8 && g == 32 && w->scale_dtype == QN_TORCH_UINT8) f = "mxfp8-quantized";
        else if (is_float && w->num_bits == 4 && g == 16) f = "nvfp4-pack-quantized";
        else if (is_int && in) f = "int-quantized";
        else if (is_int && w->num_bits >= 1 && w->num_bits <= 8) f = "pack-quantized";
        else if (is_float && in) f = "float-quantized";
        else f = "naive-quantized";
    }
    snprintf(buf, n, "%s", f);
}

qn_pack_layout qnx_pack_layout(int v) {
    return v >= QN_CT_VERSION(0, 17) ? QN_PACK_DENSE : QN_PACK_LEGACY;
}

int qnx_parse_version(const char *s) {
    if (!s) return -1;
    char *e;
    long a = strtol(s, &e, 10);
    if (e == s || *e != '.' || a < 0 || a > 1000) return -1;
    const char *p = e + 1;
    long b = strtol(p, &e, 10);
    if (e == p || b < 0 || b > 999) return -1;
    return QN_CT_VERSION((int)a, (int)b);
}

int qnx_arith_dtype(qn_dtype dt, qn_dtype *out) {
    if (dt == QN_DT_BF16 || dt == QN_DT_F16 || dt == QN_DT_F32) { *out = dt; return 0; }
    return -1;
}

int qn_export_parse_size(const char *s, uint64_t *out) {
    if (!s || !*s) return -1;
    char *e;
    double v = strtod(s, &e);
    if (e == s || !(v >= 0)) return -1;
    while (*e == ' ') e++;
    char u[8] = {0};
    size_t k = 0;
    while (*e && k < sizeof u - 1) u[k++] = (char)toupper((unsigned char)*e++);
    if (*e) return -1;
    double m;
    if (!k || !strcmp(u, "B")) m = 1;
    else if (!strcmp(u, "KB")) m = 1e3;
    else if (!strcmp(u, "MB")) m = 1e6;
    else if (!strcmp(u, "GB")) m = 1e9;
    else if (!strcmp(u, "TB")) m = 1e12;
    else if (!strcmp(u, "KIB")) m = 1024.0;
    else if (!strcmp(u, "MIB")) m = 1024.0 * 1024;
    else if (!strcmp(u, "GIB")) m = 1024.0 * 1024 * 1024;
    else if (!strcmp(u, "TIB")) m = 1024.0 * 1024 * 1024 * 1024;
    else return -1;
    double b = v * m;
    if (b < 1 || b > 1.8e19) return -1;
    *out = (uint64_t)b;
    return 0;
}
