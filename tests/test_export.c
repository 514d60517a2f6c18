/* compressed-tensors export and read-back: layout per the spec's §5.10 table, config.json bytes,
 * bit-exact round trips against in-memory fake quantization, logits, perplexity, folder safety. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/pyjson.h"
#include "quench/eval.h"
#include "quench/export.h"
#include "quench/model.h"
#include "quench/tokenizer.h"
#include "testutil.h"

#define HD64 "models/stories260K-hd64"
#define S260 "models/stories260K"
#define TEXT "data/tinystories/tinystories_sample.txt"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                   */

static float *tensor_f32(const qn_st_set *set, const char *name) {
    const qn_tensor *t = qn_st_set_find(set, name);
    if (!t) fail_msg("tensor %s missing", name);
    float *f = malloc(sizeof(float) * (size_t)qn_tensor_numel(t));
    qn_error err = {0};
    if (qn_tensor_to_f32(t, f, &err)) fail_msg("%s", err.msg);
    return f;
}

typedef struct {
    char *dir;
    qn_model_config cfg;
    qn_st_set *set;
    qn_module *mods;
    size_t n;
} model_view;

static model_view open_view(const char *rel) {
    model_view v = {0};
    qn_error err = {0};
    v.dir = tu_shared(rel);
    if (qn_config_load_dir(v.dir, &v.cfg, &err)) fail_msg("%s", err.msg);
    if (qn_st_set_open_dir(v.dir, &v.set, &err)) fail_msg("%s", err.msg);
    if (qn_export_list_modules(&v.cfg, v.set, &v.mods, &v.n, &err)) fail_msg("%s", err.msg);
    return v;
}

static void close_view(model_view *v) {
    qn_export_modules_free(v->mods, v->n);
    qn_st_set_free(v->set);
    qn_config_free(&v->cfg);
    free(v->dir);
}

/* One config group (the scheme) for every Linear except lm_head. */
typedef struct {
    qn_quant_scheme s;
    qn_recipe_plan plan;
} one_plan;

static void make_plan(one_plan *p, const qn_quant_scheme *s, const model_view *v) {
    qn_error err = {0};
    if (qn_quant_scheme_copy(&p->s, s, &err)) fail_msg("%s", err.msg);
    memset(&p->plan, 0, sizeof p->plan);
    p->plan.n_modules = v->n;
    p->plan.group_of = calloc(v->n, sizeof(int));
    p->plan.ignored = calloc(v->n, sizeof(int));
    for (size_t i = 0; i < v->n; i++) {
        int lm = !strcmp(v->mods[i].name, "lm_head");
        p->plan.group_of[i] = lm ? -1 : 0;
        p->plan.ignored[i] = lm;
    }
    p->plan.groups = &p->s;
    p->plan.n_groups = 1;
}

static void free_plan(one_plan *p) {
    free(p->plan.group_of);
    free(p->plan.ignored);
    qn_quant_scheme_free(&p->s);
}

static void preset(const char *name, qn_quant_scheme *s) {
    qn_error err = {0};
    if (qn_scheme_preset(name, s, &err)) fail_msg("%s", err.msg);
}

/* W4A16 with channel-wise scales (stories260K: 172 and 64 are not multiples of 128). */
static void w4a16_channel(qn_quant_scheme *s) {
    preset("W4A16", s);
    s->weights.strategy = QN_STRATEGY_CHANNEL;
    s->weights.has_group_size = 0;
    qn_error err = {0};
    if (qn_quant_args_validate(&s->weights, QN_CT_VERSION_DEFAULT, "test", &err)) fail_msg("%s", err.msg);
}

/* Input ranges of every Linear over the first tokens of the sample text (for static FP8). */
typedef struct {
    const model_view *v;
    float *mn, *mx;
} calib_ctx;

static void calib_hook(void *user, int64_t layer, qn_linear_id id, const float *x, int64_t T, int64_t in) {
    calib_ctx *c = user;
    const char *group[3] = {NULL, NULL, NULL};
    if (id == QN_LIN_Q) { group[0] = "self_attn.q_proj"; group[1] = "self_attn.k_proj"; group[2] = "self_attn.v_proj"; }
    else if (id == QN_LIN_GATE) { group[0] = "mlp.gate_proj"; group[1] = "mlp.up_proj"; }
    else group[0] = qn_linear_name(id);
    float a = INFINITY, b = -INFINITY;
    for (int64_t i = 0; i < T * in; i++) { if (x[i] < a) a = x[i]; if (x[i] > b) b = x[i]; }
    for (int g = 0; g < 3 && group[g]; g++) {
        char name[128];
        snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)layer, group[g]);
        for (size_t i = 0; i < c->v->n; i++)
            if (!strcmp(c->v->mods[i].name, name)) {
                if (a < c->mn[i]) c->mn[i] = a;
                if (b > c->mx[i]) c->mx[i] = b;
            }
    }
}

static void calibrate(const model_view *v, float **mn, float **mx) {
    qn_error err = {0};
    qn_model *m;
    qn_tokenizer *tok;
    if (qn_model_open(v->dir, &m, &err)) fail_msg("%s", err.msg);
    if (qn_tokenizer_load_dir(v->dir, &tok, &err)) fail_msg("%s", err.msg);
    char *tp = tu_shared(TEXT);
    size_t len;
    char *text = tu_read_file(tp, &len);
    assert_non_null(text);
    int32_t *ids;
    size_t n;
    if (qn_tokenizer_encode(tok, text, len < 4000 ? len : 4000, 1, &ids, &n, &err)) fail_msg("%s", err.msg);
    int64_t T = n < 256 ? (int64_t)n : 256;
    float *x = malloc(sizeof(float) * (size_t)(T * m->cfg.hidden_size));
    if (qn_model_embed(m, ids, T, x, &err)) fail_msg("%s", err.msg);
    qn_scratch *s;
    if (qn_scratch_create(&m->cfg, T, T, &s, &err)) fail_msg("%s", err.msg);
    *mn = malloc(sizeof(float) * v->n);
    *mx = malloc(sizeof(float) * v->n);
    for (size_t i = 0; i < v->n; i++) { (*mn)[i] = INFINITY; (*mx)[i] = -INFINITY; }
    calib_ctx c = {v, *mn, *mx};
    for (int64_t L = 0; L < m->cfg.num_hidden_layers; L++) {
        qn_layer l;
        if (qn_layer_load(m, L, &l, &err)) fail_msg("%s", err.msg);
        if (qn_layer_forward(&m->cfg, &l, x, T, 0, NULL, s, calib_hook, &c, &err)) fail_msg("%s", err.msg);
        qn_layer_free(&l);
    }
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->mods[i].name, "lm_head")) assert_true((*mn)[i] <= (*mx)[i]);
    qn_scratch_free(s);
    free(x);
    free(ids);
    free(text);
    free(tp);
    qn_tokenizer_free(tok);
    qn_model_close(m);
}

static char *export_to(const model_view *v, const qn_quant_scheme *s, const char *sub, const float *mn,
                       const float *mx, char **tmp_root) {
    *tmp_root = tu_tmpdir();
    size_t l = strlen(*tmp_root) + strlen(sub) + 2;
    char *out = malloc(l);
    snprintf(out, l, "%s/%s", *tmp_root, sub);
    one_plan p;
    make_plan(&p, s, v);
    qn_export_opts o = {0};
    o.recipe_yaml = "# test\n";
    o.input_min = mn;
    o.input_max = mx;
    qn_export_stats st;
    qn_error err = {0};
    if (qn_export_model(v->dir, out, v->mods, v->n, &p.plan, &o, &st, &err)) fail_msg("%s", err.msg);
    assert_int_equal(st.linear_total, (int64_t)v->n);
    assert_int_equal(st.linear_quantized, (int64_t)v->n - 1);
    assert_int_equal(st.linear_ignored, 1);
    free_plan(&p);
    return out;
}

/* Siblings sharing fused parameters (q/k/v, gate/up) of module i, by name. */
static int siblings(const model_view *v, size_t i, size_t *sib) {
    const char *name = v->mods[i].name, *dot = strrchr(name, '.');
    const char *leaf = dot + 1;
    const char *const qkv[] = {"q_proj", "k_proj", "v_proj", NULL}, *const gu[] = {"gate_proj", "up_proj", NULL};
    const char *const *set = NULL;
    for (int k = 0; qkv[k]; k++) if (!strcmp(leaf, qkv[k])) set = qkv;
    for (int k = 0; gu[k]; k++) if (!strcmp(leaf, gu[k])) set = gu;
    if (!set) { sib[0] = i; return 1; }
    int n = 0;
    for (int k = 0; set[k]; k++) {
        char nm[256];
        snprintf(nm, sizeof nm, "%.*s.%s", (int)(dot - name), name, set[k]);
        for (size_t j = 0; j < v->n; j++) if (!strcmp(v->mods[j].name, nm)) sib[n++] = j;
    }
    return n;
}

/* In-memory fake quantization of module i's weight with the quant module (fused scales as
 * vLLM needs them: shared tensor scale from the shards' min/max, shared NVFP4 global scale). */
static float *ref_fake(const model_view *v, size_t i, const qn_quant_scheme *s, int via_codes) {
    const qn_module *m = &v->mods[i];
    char wn[256];
    snprintf(wn, sizeof wn, "%s.weight", m->name);
    float *w = tensor_f32(v->set, wn);
    qn_dtype dt = qn_st_set_find(v->set, wn)->dtype;
    qn_qparams p;
    qn_error err = {0};
    if (qn_qparams_init(&p, &s->weights, dt, m->out, m->in, &err)) fail_msg("%s", err.msg);
    size_t sib[4];
    int ns = siblings(v, i, sib);
    float mn = INFINITY, mx = -INFINITY;
    for (int k = 0; k < ns; k++) {
        char sn[256];
        snprintf(sn, sizeof sn, "%s.weight", v->mods[sib[k]].name);
        float *x = tensor_f32(v->set, sn);
        for (int64_t e = 0; e < v->mods[sib[k]].out * v->mods[sib[k]].in; e++) {
            if (x[e] < mn) mn = x[e];
            if (x[e] > mx) mx = x[e];
        }
        free(x);
    }
    if (p.args.strategy == QN_STRATEGY_TENSOR) {
        float zp = 0;
        if (qn_quant_calc_qparams(&p.args, dt, &mn, &mx, 1, 0, p.scale, &zp, &err)) fail_msg("%s", err.msg);
        if (p.zero_point) p.zero_point[0] = zp;
    } else {
        if (p.args.strategy == QN_STRATEGY_TENSOR_GROUP) p.global_scale = qn_nvfp4_global_scale(fmaxf(-mn, mx));
        if (qn_qparams_observe(&p, w, m->in, 0, m->in, &err)) fail_msg("%s", err.msg);
    }
    if (via_codes) {
        uint8_t *codes = malloc((size_t)(m->out * m->in));
        if (qn_quant_quantize(&p, w, m->in, 0, m->in, codes, m->in, &err)) fail_msg("%s", err.msg);
        if (qn_quant_dequantize(&p, codes, m->in, 0, m->in, w, m->in, &err)) fail_msg("%s", err.msg);
        free(codes);
    } else if (qn_quant_fake(&p, w, m->in, 0, m->in, &err)) {
        fail_msg("%s", err.msg);
    }
    qn_qparams_free(&p);
    return w;
}

static cJSON *read_json(const char *dir, const char *file) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    char *s = tu_read_file(p, NULL);
    if (!s) fail_msg("cannot read %s", p);
    cJSON *j = cJSON_Parse(s);
    free(s);
    assert_non_null(j);
    return j;
}

/* ---------------------------------------------------------------------------------------- */
/* Python-style JSON                                                                          */

static void test_pyjson_dump_like_python(void **state) {
    (void)state;
    /* expected bytes produced by CPython 3 json.dumps(json.loads(src), indent=2, sort_keys=True) */
    const char *src =
        "{\"b\": 1.0, \"a\": [1, 2.5e-06, \"\xc3\xa9\\n\\u0001\\ud83d\\ude00/\", -0], \"c\": {}, \"d\": [], "
        "\"e\": 10000.0, \"f\": 1e16, \"g\": 0.0001, \"h\": true, \"i\": null, "
        "\"j\": 123456789012345678901234567890, \"Z\": 1E400, \"k\": {\"y\": 0.1, \"x\": -1.5e-300}, \"b\": 2.0}";
    const char *want =
        "{\n  \"Z\": Infinity,\n  \"a\": [\n    1,\n    2.5e-06,\n    \"\\u00e9\\n\\u0001\\ud83d\\ude00/\",\n    0\n  ],\n"
        "  \"b\": 2.0,\n  \"c\": {},\n  \"d\": [],\n  \"e\": 10000.0,\n  \"f\": 1e+16,\n  \"g\": 0.0001,\n  \"h\": true,\n"
        "  \"i\": null,\n  \"j\": 123456789012345678901234567890,\n  \"k\": {\n    \"x\": -1.5e-300,\n    \"y\": 0.1\n  }\n}";
    qn_pyjson *j;
    qn_error err = {0};
    if (qn_pyjson_parse(src, strlen(src), "t", &j, &err)) fail_msg("%s", err.msg);
    char *out;
    assert_int_equal(qn_pyjson_dump(j, 2, &out, &err), QN_OK);
    assert_string_equal(out, want);
    free(out);
    qn_pyjson_free(j);
    /* repr(float) */
    const struct { double v; const char *s; } cases[] = {
        {5e-06, "5e-06"}, {1e-05, "1e-05"}, {0.1, "0.1"}, {1.0 / 3, "0.3333333333333333"}, {1e22, "1e+22"},
        {123456789.0, "123456789.0"}, {1.5e300, "1.5e+300"}, {-0.0, "-0.0"}, {5e-324, "5e-324"}, {1e16, "1e+16"},
        {1e15, "1000000000000000.0"}, {0.00012345, "0.00012345"}, {2.5, "2.5"}, {100.0, "100.0"},
        {1.7976931348623157e308, "1.7976931348623157e+308"}, {448.0, "448.0"}, {0.0078125, "0.0078125"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char b[64];
        qn_pyjson_float_repr(cases[i].v, b, sizeof b);
        assert_string_equal(b, cases[i].s);
    }
    /* malformed inputs are refused with a position */
    const char *bad[] = {"{\"a\": }", "[1, 2", "{\"a\" 1}", "\"\\x\"", "01", "[1] x", "{\"a\": tru}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_not_equal(qn_pyjson_parse(bad[i], strlen(bad[i]), "bad.json", &j, &err), QN_OK);
        assert_non_null(strstr(err.msg, "bad.json"));
    }
}

static void test_config_json_bytes(void **state) {
    (void)state;
    /* hand-computed: input keys unsorted, a float, a nested list; quantization_config inserted */
    const char *cfg = "{\"vocab_size\": 512, \"rope_theta\": 10000.0, \"architectures\": [\"LlamaForCausalLM\"],\n"
                      "\"rms_norm_eps\": 1e-05, \"rope_scaling\": null}\n";
    const char *qc = "{\"quant_method\": \"compressed-tensors\", \"ignore\": [\"lm_head\"], \"config_groups\": {}}";
    const char *want = "{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n  \"quantization_config\": {\n"
                       "    \"config_groups\": {},\n    \"ignore\": [\n      \"lm_head\"\n    ],\n"
                       "    \"quant_method\": \"compressed-tensors\"\n  },\n  \"rms_norm_eps\": 1e-05,\n"
                       "  \"rope_scaling\": null,\n  \"rope_theta\": 10000.0,\n  \"vocab_size\": 512\n}";
    char *out;
    qn_error err = {0};
    if (qn_export_config_json(cfg, strlen(cfg), qc, &out, &err)) fail_msg("%s", err.msg);
    assert_string_equal(out, want);
    free(out);
}

static void test_parse_size(void **state) {
    (void)state;
    uint64_t b;
    assert_int_equal(qn_export_parse_size("5GB", &b), 0);
    assert_true(b == 5000000000ull);
    assert_int_equal(qn_export_parse_size("500MB", &b), 0);
    assert_true(b == 500000000ull);
    assert_int_equal(qn_export_parse_size("2GiB", &b), 0);
    assert_true(b == 2147483648ull);
    assert_int_equal(qn_export_parse_size("123", &b), 0);
    assert_true(b == 123);
    assert_int_equal(qn_export_parse_size("1.5kb", &b), 0);
    assert_true(b == 1500);
    assert_int_equal(qn_export_parse_size("5 XB", &b), -1);
    assert_int_equal(qn_export_parse_size("", &b), -1);
    assert_int_equal(qn_export_parse_size("-1GB", &b), -1);
}

/* ---------------------------------------------------------------------------------------- */
/* Modules                                                                                   */

static void test_list_modules(void **state) {
    (void)state;
    const char *order[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                            "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
    const char *models[2] = {HD64, S260};
    for (int mi = 0; mi < 2; mi++) {
        model_view v = open_view(models[mi]);
        assert_int_equal(v.n, 5 * 7 + 1);
        for (size_t i = 0; i < 35; i++) {
            char want[128];
            snprintf(want, sizeof want, "model.layers.%zu.%s", i / 7, order[i % 7]);
            assert_string_equal(v.mods[i].name, want);
            assert_string_equal(v.mods[i].class_name, "Linear");
        }
        assert_string_equal(v.mods[35].name, "lm_head");   /* tied in stories260K: the module still exists */
        assert_int_equal(v.mods[35].out, 512);
        assert_int_equal(v.mods[35].in, mi == 0 ? 128 : 64);
        assert_int_equal(v.mods[6].out, mi == 0 ? 128 : 64);   /* down_proj [H, I] */
        assert_int_equal(v.mods[6].in, mi == 0 ? 256 : 172);
        close_view(&v);
    }
}

static void test_group_format(void **state) {
    (void)state;
    const struct { const char *preset; const char *fmt; } c[] = {
        {"W4A16", "pack-quantized"}, {"W4A16_ASYM", "pack-quantized"}, {"W8A16", "pack-quantized"},
        {"W8A8", "int-quantized"},   {"INT8", "int-quantized"},        {"W4A8", "int-quantized"},
        {"W4AFP8", "pack-quantized"}, {"FP8", "float-quantized"},      {"FP8_DYNAMIC", "float-quantized"},
        {"FP8_BLOCK", "float-quantized"}, {"NVFP4A16", "nvfp4-pack-quantized"}, {"NVFP4", "nvfp4-pack-quantized"}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        qn_quant_scheme s;
        preset(c[i].preset, &s);
        char f[32];
        qn_export_group_format(&s, QN_CT_VERSION_DEFAULT, f, sizeof f);
        if (strcmp(f, c[i].fmt)) fail_msg("%s: format %s, expected %s", c[i].preset, f, c[i].fmt);
        qn_quant_scheme_free(&s);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Layout per §5.10, config.json, round trip, logits                                         */

enum { MD = -1 };   /* the model dtype (F32 for these models) */
typedef enum { S_OUT_IN, S_OUT_IN8, S_OUT_IN4, S_OUT_IN2, S_OUT_IN16, S_OUT_G128, S_OUT_1, S_ZP8, S_2, S_1, S_BLOCK } shape_kind;

typedef struct {
    const char *param;
    int dtype;        /* qn_dtype or MD */
    shape_kind shape;
} tensor_spec;

typedef struct {
    const char *preset;
    const char *format;
    tensor_spec t[5];
    /* weights args */
    int bits; const char *type; const char *strategy; int group; int sym;
    /* input args: NULL = none */
    const char *in_strategy; int in_dynamic; const char *in_type;
} preset_case;

static const preset_case k_cases[] = {
    {"W4A16", "pack-quantized", {{"weight_packed", QN_DT_I32, S_OUT_IN8}, {"weight_scale", MD, S_OUT_G128}, {"weight_shape", QN_DT_I64, S_2}},
     4, "int", "group", 128, 1, NULL, 0, NULL},
    {"W4A16_ASYM", "pack-quantized", {{"weight_packed", QN_DT_I32, S_OUT_IN8}, {"weight_scale", MD, S_OUT_G128},
      {"weight_shape", QN_DT_I64, S_2}, {"weight_zero_point", QN_DT_I32, S_ZP8}},
     4, "int", "group", 128, 0, NULL, 0, NULL},
    {"W8A16", "pack-quantized", {{"weight_packed", QN_DT_I32, S_OUT_IN4}, {"weight_scale", MD, S_OUT_1}, {"weight_shape", QN_DT_I64, S_2}},
     8, "int", "channel", 0, 1, NULL, 0, NULL},
    {"W8A8", "int-quantized", {{"weight", QN_DT_I8, S_OUT_IN}, {"weight_scale", MD, S_OUT_1}}, 8, "int", "channel", 0, 1, "token", 1, "int"},
    {"INT8", "int-quantized", {{"weight", QN_DT_I8, S_OUT_IN}, {"weight_scale", MD, S_OUT_1}}, 8, "int", "channel", 0, 1, "token", 1, "int"},
    {"FP8", "float-quantized", {{"weight", QN_DT_F8_E4M3, S_OUT_IN}, {"weight_scale", MD, S_1}, {"input_scale", MD, S_1}},
     8, "float", "tensor", 0, 1, "tensor", 0, "float"},
    {"FP8_DYNAMIC", "float-quantized", {{"weight", QN_DT_F8_E4M3, S_OUT_IN}, {"weight_scale", MD, S_OUT_1}},
     8, "float", "channel", 0, 1, "token", 1, "float"},
    {"FP8_BLOCK", "float-quantized", {{"weight", QN_DT_F8_E4M3, S_OUT_IN}, {"weight_scale", MD, S_BLOCK}},
     8, "float", "block", 0, 1, "group", 1, "float"},
    {"NVFP4A16", "nvfp4-pack-quantized", {{"weight_packed", QN_DT_U8, S_OUT_IN2}, {"weight_scale", QN_DT_F8_E4M3, S_OUT_IN16},
      {"weight_global_scale", QN_DT_F32, S_1}},
     4, "float", "tensor_group", 16, 1, NULL, 0, NULL},
};

static void expect_shape(shape_kind k, int64_t out, int64_t in, int *nd, int64_t *s) {
    *nd = 2;
    switch (k) {
    case S_OUT_IN: s[0] = out; s[1] = in; break;
    case S_OUT_IN8: s[0] = out; s[1] = (in + 7) / 8; break;
    case S_OUT_IN4: s[0] = out; s[1] = (in + 3) / 4; break;
    case S_OUT_IN2: s[0] = out; s[1] = in / 2; break;
    case S_OUT_IN16: s[0] = out; s[1] = in / 16; break;
    case S_OUT_G128: s[0] = out; s[1] = in / 128; break;
    case S_OUT_1: s[0] = out; s[1] = 1; break;
    case S_ZP8: s[0] = (out + 7) / 8; s[1] = in / 128; break;
    case S_BLOCK: s[0] = (out + 127) / 128; s[1] = (in + 127) / 128; break;
    case S_2: *nd = 1; s[0] = 2; break;
    case S_1: *nd = 1; s[0] = 1; break;
    }
}

static void check_args_json(const cJSON *a, int bits, const char *type, const char *strategy, int group, int sym,
                            int dynamic, const char *what) {
    static const char *const keys[] = {"actorder", "block_structure", "dynamic", "group_size", "num_bits", "observer",
                                       "observer_kwargs", "scale_dtype", "strategy", "symmetric", "type", "zp_dtype"};
    assert_true(cJSON_IsObject(a));
    assert_int_equal(cJSON_GetArraySize(a), 12);
    for (size_t i = 0; i < 12; i++)
        if (!cJSON_GetObjectItemCaseSensitive(a, keys[i])) fail_msg("%s: QuantizationArgs field %s missing", what, keys[i]);
    assert_int_equal(cJSON_GetObjectItem(a, "num_bits")->valueint, bits);
    assert_string_equal(cJSON_GetObjectItem(a, "type")->valuestring, type);
    assert_string_equal(cJSON_GetObjectItem(a, "strategy")->valuestring, strategy);
    const cJSON *g = cJSON_GetObjectItem(a, "group_size");
    if (group) assert_int_equal(g->valueint, group);
    else assert_true(cJSON_IsNull(g));
    assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(a, "symmetric")), sym);
    assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(a, "dynamic")), dynamic);
    const cJSON *zp = cJSON_GetObjectItem(a, "zp_dtype");
    if (sym) assert_true(cJSON_IsNull(zp));
    else assert_string_equal(zp->valuestring, "torch.int8");
}

static void check_layout(const model_view *v, const char *out, const preset_case *c, qn_dtype md) {
    qn_st_set *o;
    qn_error err = {0};
    if (qn_st_set_open_dir(out, &o, &err)) fail_msg("%s", err.msg);
    size_t expected_tensors = 0;
    for (size_t i = 0; i < v->n; i++) {
        const qn_module *m = &v->mods[i];
        if (!strcmp(m->name, "lm_head")) continue;
        int nt = 0;
        for (; nt < 5 && c->t[nt].param; nt++) {
            char name[256];
            snprintf(name, sizeof name, "%s.%s", m->name, c->t[nt].param);
            const qn_tensor *t = qn_st_set_find(o, name);
            if (!t) fail_msg("%s: tensor %s missing", c->preset, name);
            qn_dtype want = c->t[nt].dtype == MD ? md : (qn_dtype)c->t[nt].dtype;
            if (t->dtype != want) fail_msg("%s: %s is %s, expected %s", c->preset, name, qn_dtype_name(t->dtype), qn_dtype_name(want));
            int nd = 0;
            int64_t s[2] = {0, 0};
            expect_shape(c->t[nt].shape, m->out, m->in, &nd, s);
            if (t->ndim != nd || t->shape[0] != s[0] || (nd == 2 && t->shape[1] != s[1]))
                fail_msg("%s: %s has shape [%lld, %lld] (ndim %d), expected [%lld, %lld]", c->preset, name, (long long)t->shape[0],
                         (long long)(t->ndim > 1 ? t->shape[1] : 0), t->ndim, (long long)s[0], (long long)(nd > 1 ? s[1] : 0));
            if (!strcmp(c->t[nt].param, "weight_shape")) {
                int64_t ws[2];
                memcpy(ws, t->data, sizeof ws);
                assert_int_equal(ws[0], m->out);
                assert_int_equal(ws[1], m->in);
            }
        }
        expected_tensors += (size_t)nt;
        /* nothing else for the module: no float weight in compressed formats, no symmetric zero point */
        size_t count = 0, ml = strlen(m->name);
        for (size_t k = 0; k < qn_st_set_count(o); k++) {
            const char *n = qn_st_set_get(o, k)->name;
            if (!strncmp(n, m->name, ml) && n[ml] == '.') count++;
        }
        if (count != (size_t)nt) fail_msg("%s: %s has %zu tensors, expected %d", c->preset, m->name, count, nt);
    }
    /* every other tensor copied unchanged (same dtype, shape, bytes) */
    for (size_t k = 0; k < qn_st_set_count(v->set); k++) {
        const qn_tensor *t = qn_st_set_get(v->set, k);
        int quantized = 0;
        for (size_t i = 0; i < v->n; i++) {
            char wn[256];
            snprintf(wn, sizeof wn, "%s.weight", v->mods[i].name);
            if (strcmp(v->mods[i].name, "lm_head") && !strcmp(wn, t->name)) quantized = 1;
        }
        if (quantized) continue;
        const qn_tensor *u = qn_st_set_find(o, t->name);
        if (!u) fail_msg("%s: %s not copied", c->preset, t->name);
        assert_int_equal(u->dtype, t->dtype);
        assert_int_equal(u->nbytes, t->nbytes);
        assert_memory_equal(u->data, t->data, t->nbytes);
        expected_tensors++;
    }
    assert_int_equal(qn_st_set_count(o), expected_tensors);
    qn_st_set_free(o);

    /* config.json */
    cJSON *cfg = read_json(out, "config.json");
    const cJSON *qc = cJSON_GetObjectItem(cfg, "quantization_config");
    assert_non_null(qc);
    assert_int_equal(cJSON_GetArraySize(qc), 10);
    assert_string_equal(cJSON_GetObjectItem(qc, "format")->valuestring, c->format);
    assert_string_equal(cJSON_GetObjectItem(qc, "quant_method")->valuestring, "compressed-tensors");
    assert_string_equal(cJSON_GetObjectItem(qc, "quantization_status")->valuestring, "compressed");
    assert_string_equal(cJSON_GetObjectItem(qc, "version")->valuestring, "0.13.0");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(qc, "kv_cache_scheme")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(qc, "global_compression_ratio")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(qc, "sparsity_config")), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(qc, "transform_config")), 0);
    const cJSON *ig = cJSON_GetObjectItem(qc, "ignore");
    assert_int_equal(cJSON_GetArraySize(ig), 1);
    assert_string_equal(cJSON_GetArrayItem(ig, 0)->valuestring, "lm_head");
    const cJSON *groups = cJSON_GetObjectItem(qc, "config_groups");
    assert_int_equal(cJSON_GetArraySize(groups), 1);
    const cJSON *g0 = cJSON_GetObjectItem(groups, "group_0");
    assert_non_null(g0);
    assert_int_equal(cJSON_GetArraySize(g0), 5);
    assert_string_equal(cJSON_GetObjectItem(g0, "format")->valuestring, c->format);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(g0, "targets"), 0)->valuestring, "Linear");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(g0, "output_activations")));
    check_args_json(cJSON_GetObjectItem(g0, "weights"), c->bits, c->type, c->strategy, c->group, c->sym, 0, c->preset);
    const cJSON *in = cJSON_GetObjectItem(g0, "input_activations");
    if (!c->in_strategy) assert_true(cJSON_IsNull(in));
    else check_args_json(in, 8, c->in_type, c->in_strategy, !strcmp(c->in_strategy, "group") ? 128 : 0, 1, c->in_dynamic, c->preset);
    const cJSON *w = cJSON_GetObjectItem(g0, "weights");
    const cJSON *bs = cJSON_GetObjectItem(w, "block_structure");
    if (!strcmp(c->strategy, "block")) {
        assert_int_equal(cJSON_GetArraySize(bs), 2);
        assert_int_equal(cJSON_GetArrayItem(bs, 0)->valueint, 128);
        assert_int_equal(cJSON_GetArrayItem(bs, 1)->valueint, 128);
    } else {
        assert_true(cJSON_IsNull(bs));
    }
    const cJSON *sd = cJSON_GetObjectItem(w, "scale_dtype");
    if (!strcmp(c->preset, "NVFP4A16")) assert_string_equal(sd->valuestring, "torch.float8_e4m3fn");
    else assert_true(cJSON_IsNull(sd));
    /* the rest of config.json is the input's */
    cJSON *orig = read_json(v->dir, "config.json");
    for (const cJSON *e = orig->child; e; e = e->next) {
        const cJSON *f = cJSON_GetObjectItem(cfg, e->string);
        assert_non_null(f);
        assert_true(cJSON_Compare(e, f, 1));
    }
    assert_int_equal(cJSON_GetArraySize(cfg), cJSON_GetArraySize(orig) + 1);
    cJSON_Delete(orig);
    cJSON_Delete(cfg);
    /* config.json bytes: indent 2, sorted, no trailing newline (re-printing is the identity) */
    char p[1024];
    snprintf(p, sizeof p, "%s/config.json", out);
    size_t len;
    char *bytes = tu_read_file(p, &len);
    assert_true(len > 2 && bytes[len - 1] == '}' && bytes[0] == '{' && bytes[1] == '\n' && !strchr(bytes, '\t'));
    qn_pyjson *pj;
    if (qn_pyjson_parse(bytes, len, p, &pj, &err)) fail_msg("%s", err.msg);
    char *again;
    assert_int_equal(qn_pyjson_dump(pj, 2, &again, &err), QN_OK);
    assert_string_equal(again, bytes);
    free(again);
    qn_pyjson_free(pj);
    free(bytes);
    /* copied files and recipe.yaml */
    const char *copied[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                            "generation_config.json"};
    for (size_t i = 0; i < 5; i++) {
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/%s", v->dir, copied[i]);
        snprintf(b, sizeof b, "%s/%s", out, copied[i]);
        size_t la, lb;
        char *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
        assert_non_null(x);
        assert_non_null(y);
        assert_int_equal(la, lb);
        assert_memory_equal(x, y, la);
        free(x);
        free(y);
    }
    snprintf(p, sizeof p, "%s/recipe.yaml", out);
    char *r = tu_read_file(p, NULL);
    assert_non_null(r);
    assert_string_equal(r, "# test\n");
    free(r);
}

/* Read-back weights: bit for bit the in-memory quantize + dequantize of the quant module (so
 * pack, write, read and unpack lose nothing), and equal to its fake quantization (as values:
 * like torch, fake quantization keeps the sign of a zero, -0.0, that an integer code drops). */
static void check_roundtrip(const model_view *v, const char *out, const qn_quant_scheme *s, const char *what) {
    qn_st_set *o;
    qn_error err = {0};
    if (qn_st_set_open_dir(out, &o, &err)) fail_msg("%s", err.msg);
    for (size_t i = 0; i < v->n; i++) {
        const qn_module *m = &v->mods[i];
        if (!strcmp(m->name, "lm_head")) continue;
        char wn[256];
        snprintf(wn, sizeof wn, "%s.weight", m->name);
        assert_int_equal(qn_ct_is_compressed(o, wn), 1);
        float *got;
        if (qn_ct_load_weight(out, o, wn, &got, &err)) fail_msg("%s: %s", what, err.msg);
        float *want = ref_fake(v, i, s, 0), *qdq = ref_fake(v, i, s, 1);
        size_t n = (size_t)(m->out * m->in), zeros = 0;
        for (size_t e = 0; e < n; e++) {
            if (got[e] != want[e])
                fail_msg("%s: %s[%zu] read back %.9g, fake-quantized %.9g", what, m->name, e, got[e], want[e]);
            if (memcmp(&got[e], &qdq[e], 4))
                fail_msg("%s: %s[%zu] read back %.9g, quantize+dequantize %.9g", what, m->name, e, got[e], qdq[e]);
            zeros += got[e] == 0;
        }
        assert_true(zeros < n);
        free(got);
        free(want);
        free(qdq);
    }
    assert_int_equal(qn_ct_is_compressed(o, "lm_head.weight"), 0);
    assert_int_equal(qn_ct_is_compressed(o, "model.norm.weight"), 0);
    qn_st_set_free(o);
}

/* Logits of the compressed folder (loaded by qn_model_open) vs the original with fake-quantized weights. */
static void check_logits(const model_view *v, const char *out, const qn_quant_scheme *s, const char *what) {
    qn_error err = {0};
    qn_model *ma, *mb;
    if (qn_model_open(out, &ma, &err)) fail_msg("%s: %s", what, err.msg);
    ma->act_quant = 0;   /* weights-only view: compared with fake-quantized weights */
    if (qn_model_open(v->dir, &mb, &err)) fail_msg("%s", err.msg);
    qn_llm *la, *lb;
    const int64_t T = 48;
    if (qn_llm_create(ma, T, &la, &err)) fail_msg("%s: %s", what, err.msg);
    if (qn_llm_create(mb, T, &lb, &err)) fail_msg("%s", err.msg);
    for (size_t i = 0; i < v->n; i++) {
        const qn_module *m = &v->mods[i];
        const char *rest;
        long long L;
        char lin[64];
        if (sscanf(m->name, "model.layers.%lld.%63s", &L, lin) != 2) continue;
        rest = lin;
        int id = -1;
        for (int k = 0; k < QN_LIN_COUNT; k++) if (!strcmp(qn_linear_name((qn_linear_id)k), rest)) id = k;
        assert_true(id >= 0);
        float *fq = ref_fake(v, i, s, 0);
        qn_layer *l = qn_llm_layer(lb, L);
        memcpy(l->lin[id].w, fq, sizeof(float) * (size_t)(m->out * m->in));
        free(fq);
    }
    int32_t ids[48];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)(t == 0 ? 1 : (t * 37 + 11) % 512);
    int64_t V = ma->cfg.vocab_size;
    float *a = malloc(sizeof(float) * (size_t)(T * V)), *b = malloc(sizeof(float) * (size_t)(T * V));
    if (qn_llm_forward(la, ids, T, 0, a, 0, &err)) fail_msg("%s", err.msg);
    if (qn_llm_forward(lb, ids, T, 0, b, 0, &err)) fail_msg("%s", err.msg);
    double md = 0;
    for (int64_t k = 0; k < T * V; k++) md = fmax(md, fabs((double)a[k] - (double)b[k]));
    if (md > 1e-5) fail_msg("%s: logits differ by %g", what, md);
    free(a);
    free(b);
    qn_llm_free(la);
    qn_llm_free(lb);
    qn_model_close(ma);
    qn_model_close(mb);
}

/* A bf16 copy of a model folder (tensors rounded to bf16, torch_dtype "bfloat16"). */
static char *bf16_copy(const char *rel, char **root) {
    *root = tu_tmpdir();
    char *src = tu_shared(rel);
    size_t l = strlen(*root) + 16;
    char *dst = malloc(l);
    snprintf(dst, l, "%s/bf16", *root);
    mkdir(dst, 0755);
    qn_st_set *set;
    qn_st_writer *w;
    qn_error err = {0};
    if (qn_st_set_open_dir(src, &set, &err)) fail_msg("%s", err.msg);
    if (qn_st_writer_open(dst, 0, &w, &err)) fail_msg("%s", err.msg);
    if (qn_st_writer_set_metadata(w, "format", "pt", &err)) fail_msg("%s", err.msg);
    for (size_t i = 0; i < qn_st_set_count(set); i++) {
        const qn_tensor *t = qn_st_set_get(set, i);
        size_t n = (size_t)qn_tensor_numel(t);
        float *f = tensor_f32(set, t->name);
        uint16_t *b = malloc(2 * n);
        for (size_t k = 0; k < n; k++) b[k] = qn_f32_to_bf16(f[k]);
        if (qn_st_writer_add(w, t->name, QN_DT_BF16, t->ndim, t->shape, b, 2 * n, &err)) fail_msg("%s", err.msg);
        free(f);
        free(b);
    }
    if (qn_st_writer_finish(w, &err)) fail_msg("%s", err.msg);
    qn_st_set_free(set);
    const char *files[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "tokenizer.model", "generation_config.json"};
    for (int i = 0; i < 6; i++) {
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/%s", src, files[i]);
        snprintf(b, sizeof b, "%s/%s", dst, files[i]);
        size_t n;
        char *x = tu_read_file(a, &n);
        assert_non_null(x);
        char *dt = i == 0 ? strstr(x, "\"float32\"") : NULL;
        if (dt) {
            char *y = malloc(n + 8);
            size_t pre = (size_t)(dt - x);
            memcpy(y, x, pre);
            size_t k = pre + (size_t)sprintf(y + pre, "\"bfloat16\"");
            memcpy(y + k, dt + 9, n - pre - 9);
            assert_int_equal(tu_write_file(b, y, k + n - pre - 9), 0);
            free(y);
        } else {
            assert_int_equal(tu_write_file(b, x, n), 0);
        }
        free(x);
    }
    free(src);
    return dst;
}

static void presets_on(const model_view *v, qn_dtype md) {
    float *mn, *mx;
    calibrate(v, &mn, &mx);
    for (size_t c = 0; c < sizeof k_cases / sizeof *k_cases; c++) {
        qn_quant_scheme s;
        preset(k_cases[c].preset, &s);
        char *root;
        char *out = export_to(v, &s, "out", mn, mx, &root);
        check_layout(v, out, &k_cases[c], md);
        check_roundtrip(v, out, &s, k_cases[c].preset);
        check_logits(v, out, &s, k_cases[c].preset);
        tu_rmrf(root);
        free(root);
        free(out);
        qn_quant_scheme_free(&s);
    }
    free(mn);
    free(mx);
}

static void test_presets_hd64(void **state) {
    (void)state;
    model_view v = open_view(HD64);
    presets_on(&v, QN_DT_F32);
    close_view(&v);
}

/* The same table walk on a bf16 model: scales in BF16 as §5.10 lists them. */
static void test_presets_hd64_bf16(void **state) {
    (void)state;
    char *root;
    char *dir = bf16_copy(HD64, &root);
    model_view v = {0};
    qn_error err = {0};
    v.dir = dir;
    if (qn_config_load_dir(v.dir, &v.cfg, &err)) fail_msg("%s", err.msg);
    if (qn_st_set_open_dir(v.dir, &v.set, &err)) fail_msg("%s", err.msg);
    if (qn_export_list_modules(&v.cfg, v.set, &v.mods, &v.n, &err)) fail_msg("%s", err.msg);
    presets_on(&v, QN_DT_BF16);
    close_view(&v);
    tu_rmrf(root);
    free(root);
}

/* The values themselves: fused per-tensor scales equal across q/k/v and gate/up (the max), the
 * FP8 input_scale = absmax / 448, NVFP4 global scales shared. */
static void test_fused_scales(void **state) {
    (void)state;
    model_view v = open_view(HD64);
    float *mn, *mx;
    calibrate(&v, &mn, &mx);
    const char *presets[2] = {"FP8", "NVFP4A16"};
    for (int pi = 0; pi < 2; pi++) {
        qn_quant_scheme s;
        preset(presets[pi], &s);
        char *root;
        char *out = export_to(&v, &s, "m", mn, mx, &root);
        qn_st_set *o;
        qn_error err = {0};
        if (qn_st_set_open_dir(out, &o, &err)) fail_msg("%s", err.msg);
        const char *param = pi == 0 ? "weight_scale" : "weight_global_scale";
        for (int L = 0; L < 5; L++) {
            const char *grp[2][3] = {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, {"mlp.gate_proj", "mlp.up_proj", NULL}};
            for (int g = 0; g < 2; g++) {
                float first = 0, maxind = 0;
                for (int k = 0; k < 3 && grp[g][k]; k++) {
                    char n[128];
                    snprintf(n, sizeof n, "model.layers.%d.%s.%s", L, grp[g][k], param);
                    float *tmp = tensor_f32(o, n);
                    float val = tmp[0];
                    free(tmp);
                    if (k == 0) first = val;
                    else assert_true(val == first);
                    /* the shard's own scale: amax / 448 (fp32 model) */
                    snprintf(n, sizeof n, "model.layers.%d.%s.weight", L, grp[g][k]);
                    const qn_tensor *t = qn_st_set_find(v.set, n);
                    float *w = tensor_f32(v.set, n), amax = 0;
                    for (int64_t e = 0; e < qn_tensor_numel(t); e++) amax = fmaxf(amax, fabsf(w[e]));
                    free(w);
                    float own = pi == 0 ? amax / 448.0f : qn_nvfp4_global_scale(amax);
                    if (k == 0 || (pi == 0 ? own > maxind : own < maxind)) maxind = own;
                }
                assert_true(first == maxind);   /* FP8: max scale; NVFP4: min global scale (= max amax) */
            }
            if (pi == 0) {
                /* input_scale = absmax / 448 of the calibrated input range */
                char n[128];
                snprintf(n, sizeof n, "model.layers.%d.mlp.down_proj", L);
                size_t mi = 0;
                for (size_t i = 0; i < v.n; i++) if (!strcmp(v.mods[i].name, n)) mi = i;
                snprintf(n, sizeof n, "model.layers.%d.mlp.down_proj.input_scale", L);
                float *is = tensor_f32(o, n);
                assert_true(is[0] == fmaxf(-mn[mi], mx[mi]) / 448.0f);
                free(is);
            }
        }
        qn_st_set_free(o);
        tu_rmrf(root);
        free(root);
        free(out);
        qn_quant_scheme_free(&s);
    }
    free(mn);
    free(mx);
    close_view(&v);
}

/* Hand-checked bytes: one int4 row of the spec's §4.7 example packs to 0xA8C0DA78 (sym). */
static void test_pack_example_through_reader(void **state) {
    (void)state;
    /* weight_packed [1, 1] + scale [1, 1] (group 8) + shape, written by hand, read by qn_ct */
    char *dir = tu_tmpdir();
    const char *cfg =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"quantization_config\": {\"config_groups\": {\"group_0\": {"
        "\"format\": \"pack-quantized\", \"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 4, \"group_size\": 8, "
        "\"strategy\": \"group\", \"symmetric\": true, \"type\": \"int\"}}}, \"format\": \"pack-quantized\", "
        "\"ignore\": [\"lm_head\"], \"quant_method\": \"compressed-tensors\", \"quantization_status\": \"compressed\"}}";
    char p[1024];
    snprintf(p, sizeof p, "%s/config.json", dir);
    assert_int_equal(tu_write_file(p, cfg, strlen(cfg)), 0);
    qn_st_writer *w;
    qn_error err = {0};
    if (qn_st_writer_open(dir, 0, &w, &err)) fail_msg("%s", err.msg);
    int32_t word = (int32_t)0xA8C0DA78u;
    uint16_t scale = 0x3E4D; /* bf16 0.2001953125 */
    int64_t shp[2] = {1, 8}, s11[2] = {1, 1}, two = 2;
    assert_int_equal(qn_st_writer_add(w, "x.weight_packed", QN_DT_I32, 2, s11, &word, 4, &err), QN_OK);
    assert_int_equal(qn_st_writer_add(w, "x.weight_scale", QN_DT_BF16, 2, s11, &scale, 2, &err), QN_OK);
    assert_int_equal(qn_st_writer_add(w, "x.weight_shape", QN_DT_I64, 1, &two, shp, 16, &err), QN_OK);
    assert_int_equal(qn_st_writer_finish(w, &err), QN_OK);
    qn_st_set *set;
    if (qn_st_set_open_dir(dir, &set, &err)) fail_msg("%s", err.msg);
    float *x;
    if (qn_ct_load_weight(dir, set, "x.weight", &x, &err)) fail_msg("%s", err.msg);
    /* q = [0, -1, 2, 5, -8, 4, 0, 2] times 0.2001953125, rounded to bf16 */
    const float want[8] = {0.0f, -0.2001953125f, 0.400390625f, 1.0f, -1.6015625f, 0.80078125f, 0.0f, 0.400390625f};
    for (int i = 0; i < 8; i++) assert_true(x[i] == want[i]);
    free(x);
    qn_st_set_free(set);
    /* the asymmetric example of §4.7: q = [2, 0, 4, 7, -8, 6, 1, 3] -> 0xB9E0FC8A, scale
     * 0.1669921875 (bf16 0x3E2B), zero point 1 packed along the output dim -> nibble 9 */
    const char *cfga =
        "{\"quantization_config\": {\"config_groups\": {\"group_0\": {\"format\": \"pack-quantized\", \"targets\": [\"Linear\"], "
        "\"weights\": {\"num_bits\": 4, \"group_size\": 8, \"strategy\": \"group\", \"symmetric\": false, \"type\": \"int\"}}}, "
        "\"format\": \"pack-quantized\", \"quant_method\": \"compressed-tensors\"}}";
    assert_int_equal(tu_write_file(p, cfga, strlen(cfga)), 0);
    if (qn_st_writer_open(dir, 0, &w, &err)) fail_msg("%s", err.msg);
    word = (int32_t)0xB9E0FC8Au;
    scale = 0x3E2B;
    int32_t zpw = 9;
    assert_int_equal(qn_st_writer_add(w, "x.weight_packed", QN_DT_I32, 2, s11, &word, 4, &err), QN_OK);
    assert_int_equal(qn_st_writer_add(w, "x.weight_scale", QN_DT_BF16, 2, s11, &scale, 2, &err), QN_OK);
    assert_int_equal(qn_st_writer_add(w, "x.weight_zero_point", QN_DT_I32, 2, s11, &zpw, 4, &err), QN_OK);
    assert_int_equal(qn_st_writer_add(w, "x.weight_shape", QN_DT_I64, 1, &two, shp, 16, &err), QN_OK);
    assert_int_equal(qn_st_writer_finish(w, &err), QN_OK);
    if (qn_st_set_open_dir(dir, &set, &err)) fail_msg("%s", err.msg);
    if (qn_ct_load_weight(dir, set, "x.weight", &x, &err)) fail_msg("%s", err.msg);
    /* (q - 1) * 0.1669921875 rounded to bf16 */
    const float wa[8] = {0.1669921875f, -0.1669921875f, 0.5f, 1.0f, -1.5f, 0.8359375f, 0.0f, 0.333984375f};
    for (int i = 0; i < 8; i++)
        if (x[i] != wa[i]) fail_msg("asym [%d] = %.10g, expected %.10g", i, x[i], wa[i]);
    free(x);
    qn_st_set_free(set);
    tu_rmrf(dir);
    free(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Quality                                                                                   */

static double ppl_of(const char *dir, const float *swap_unused) {
    (void)swap_unused;
    qn_error err = {0};
    qn_model *m;
    qn_tokenizer *tok;
    qn_llm *llm;
    if (qn_model_open(dir, &m, &err)) fail_msg("%s", err.msg);
    m->act_quant = 0;   /* the weights' cost (activation emulation is tested in cli_act_quant) */
    if (qn_tokenizer_load_dir(dir, &tok, &err)) fail_msg("%s", err.msg);
    if (qn_llm_create(m, 512, &llm, &err)) fail_msg("%s", err.msg);
    char *tp = tu_shared(TEXT);
    size_t len;
    char *text = tu_read_file(tp, &len);
    qn_ppl_result r;
    if (qn_eval_ppl(llm, tok, text, len, QN_PPL_STORIES, 512, 0, NULL, NULL, &r, &err)) fail_msg("%s", err.msg);
    assert_int_equal(r.tokens_scored, 1804);
    free(text);
    free(tp);
    qn_llm_free(llm);
    qn_tokenizer_free(tok);
    qn_model_close(m);
    return r.ppl;
}

static void quality(const char *rel) {
    model_view v = open_view(rel);
    float *mn, *mx;
    calibrate(&v, &mn, &mx);
    double base = ppl_of(v.dir, NULL);
    const char *names[3] = {"FP8", "W8A16", "W4A16"};
    double ppl[3];
    for (int k = 0; k < 3; k++) {
        qn_quant_scheme s;
        if (k == 2 && !strcmp(rel, S260)) w4a16_channel(&s);
        else preset(names[k], &s);
        char *root;
        char *out = export_to(&v, &s, "q", mn, mx, &root);
        ppl[k] = ppl_of(out, NULL);
        print_message("%s %s: ppl %.4f (original %.4f, %+.2f%%)\n", rel, names[k], ppl[k], base, 100 * (ppl[k] / base - 1));
        tu_rmrf(root);
        free(root);
        free(out);
        qn_quant_scheme_free(&s);
    }
    assert_true(fabs(ppl[0] / base - 1) < 0.01);
    assert_true(fabs(ppl[1] / base - 1) < 0.01);
    assert_true(ppl[2] > ppl[0]);
    free(mn);
    free(mx);
    close_view(&v);
}

static void test_quality_hd64(void **state) { (void)state; quality(HD64); }
static void test_quality_stories260k(void **state) { (void)state; quality(S260); }

/* ---------------------------------------------------------------------------------------- */
/* Folder safety and refusals                                                                 */

static void test_existing_out_refused(void **state) {
    (void)state;
    model_view v = open_view(HD64);
    qn_quant_scheme s;
    preset("W8A16", &s);
    one_plan p;
    make_plan(&p, &s, &v);
    char *root = tu_tmpdir();
    char out[1024], stray[1100];
    snprintf(out, sizeof out, "%s/out", root);
    mkdir(out, 0755);
    snprintf(stray, sizeof stray, "%s/keep.txt", out);
    assert_int_equal(tu_write_file(stray, "x", 1), 0);
    qn_error err = {0};
    qn_export_opts o = {0};
    assert_int_not_equal(qn_export_model(v.dir, out, v.mods, v.n, &p.plan, &o, NULL, &err), QN_OK);
    assert_non_null(strstr(err.msg, "already exists"));
    struct stat sb;
    assert_int_equal(stat(stray, &sb), 0);     /* untouched */
    /* an empty OUT is fine; then --overwrite replaces a full one */
    tu_rmrf(out);
    mkdir(out, 0755);
    if (qn_export_model(v.dir, out, v.mods, v.n, &p.plan, &o, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(tu_write_file(stray, "x", 1), 0);
    o.overwrite = 1;
    if (qn_export_model(v.dir, out, v.mods, v.n, &p.plan, &o, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_not_equal(stat(stray, &sb), 0);
    char cfgp[1100];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", out);
    assert_int_equal(stat(cfgp, &sb), 0);
    /* nothing left beside OUT */
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s/out.tmp-%ld", root, (long)getpid());
    assert_int_not_equal(stat(tmp, &sb), 0);
    /* OUT inside the input folder is refused */
    char inner[1024];
    snprintf(inner, sizeof inner, "%s/sub", v.dir);
    assert_int_not_equal(qn_export_model(v.dir, inner, v.mods, v.n, &p.plan, &o, NULL, &err), QN_OK);
    assert_non_null(strstr(err.msg, "inside the input"));
    tu_rmrf(root);
    free(root);
    free_plan(&p);
    qn_quant_scheme_free(&s);
    close_view(&v);
}

static void test_refusals(void **state) {
    (void)state;
    model_view v = open_view(HD64);
    char *root = tu_tmpdir();
    char out[1024];
    snprintf(out, sizeof out, "%s/out", root);
    qn_error err = {0};
    struct stat sb;
    /* static activations without calibration ranges */
    qn_quant_scheme s;
    preset("FP8", &s);
    one_plan p;
    make_plan(&p, &s, &v);
    assert_int_equal(qn_export_model(v.dir, out, v.mods, v.n, &p.plan, NULL, NULL, &err), QN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "calibrat"));
    assert_non_null(strstr(err.msg, "model.layers.0.self_attn.q_proj"));
    assert_int_not_equal(stat(out, &sb), 0);
    /* a kv cache scheme */
    qn_quant_args kv;
    qn_quant_args_init(&kv);
    kv.type = QN_QTYPE_FLOAT;
    kv.strategy = QN_STRATEGY_TENSOR;
    free_plan(&p);
    qn_quant_scheme_free(&s);
    preset("W8A16", &s);
    make_plan(&p, &s, &v);
    p.plan.kv_cache_scheme = &kv;
    assert_int_equal(qn_export_model(v.dir, out, v.mods, v.n, &p.plan, NULL, NULL, &err), QN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "kv_cache_scheme"));
    free_plan(&p);
    qn_quant_scheme_free(&s);
    /* group 128 on stories260K (64 / 172 wide inputs) names the module */
    model_view w = open_view(S260);
    preset("W4A16", &s);
    make_plan(&p, &s, &w);
    assert_int_equal(qn_export_model(w.dir, out, w.mods, w.n, &p.plan, NULL, NULL, &err), QN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "model.layers.0.self_attn.q_proj"));
    assert_non_null(strstr(err.msg, "group_size"));
    free_plan(&p);
    qn_quant_scheme_free(&s);
    /* the tied lm_head cannot be quantized */
    preset("W8A16", &s);
    make_plan(&p, &s, &w);
    p.plan.group_of[w.n - 1] = 0;
    assert_int_equal(qn_export_model(w.dir, out, w.mods, w.n, &p.plan, NULL, NULL, &err), QN_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "tied"));
    assert_int_not_equal(stat(out, &sb), 0);
    free_plan(&p);
    qn_quant_scheme_free(&s);
    close_view(&w);
    /* an already-compressed input */
    preset("W8A16", &s);
    char *root2;
    char *o2 = export_to(&v, &s, "c", NULL, NULL, &root2);
    w = (model_view){0};
    qn_error e2 = {0};
    w.dir = strdup(o2);
    if (qn_config_load_dir(w.dir, &w.cfg, &e2)) fail_msg("%s", e2.msg);
    if (qn_st_set_open_dir(w.dir, &w.set, &e2)) fail_msg("%s", e2.msg);
    if (qn_export_list_modules(&w.cfg, w.set, &w.mods, &w.n, &e2)) fail_msg("%s", e2.msg);
    assert_int_equal(w.n, 1);   /* only lm_head still has a float weight */
    one_plan p2;
    make_plan(&p2, &s, &w);
    p2.plan.group_of[0] = 0;
    assert_int_equal(qn_export_model(w.dir, out, w.mods, w.n, &p2.plan, NULL, NULL, &e2), QN_ERR_UNSUPPORTED);
    assert_non_null(strstr(e2.msg, "already has a quantization_config"));
    free_plan(&p2);
    close_view(&w);
    tu_rmrf(root);
    free(root);
    tu_rmrf(root2);
    free(root2);
    free(o2);
    qn_quant_scheme_free(&s);
    close_view(&v);
}

/* Sharded output (max shard 1 MB) reads back to the same weights as a single file. */
static void test_sharded(void **state) {
    (void)state;
    model_view v = open_view(HD64);
    qn_quant_scheme s;
    preset("W8A16", &s);
    one_plan p;
    make_plan(&p, &s, &v);
    char *root = tu_tmpdir();
    char out[1024];
    snprintf(out, sizeof out, "%s/sh", root);
    qn_export_opts o = {0};
    o.max_shard_bytes = 1000000;
    qn_error err = {0};
    qn_export_stats st;
    if (qn_export_model(v.dir, out, v.mods, v.n, &p.plan, &o, &st, &err)) fail_msg("%s", err.msg);
    char idx[1100];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", out);
    struct stat sb;
    assert_int_equal(stat(idx, &sb), 0);
    qn_st_set *set;
    if (qn_st_set_open_dir(out, &set, &err)) fail_msg("%s", err.msg);
    assert_true(qn_st_set_file_count(set) >= 2);
    assert_int_equal(qn_st_set_count(set), st.tensors_out);
    for (size_t i = 0; i < qn_st_set_file_count(set); i++) {
        uint64_t b = 0;
        const qn_st_file *f = qn_st_set_file(set, i);
        for (size_t k = 0; k < qn_st_file_count(f); k++) b += qn_st_file_get(f, k)->nbytes;
        assert_true(b <= 1000000 || qn_st_file_count(f) == 1);
    }
    qn_st_set_free(set);
    check_roundtrip(&v, out, &s, "sharded W8A16");
    tu_rmrf(root);
    free(root);
    free_plan(&p);
    qn_quant_scheme_free(&s);
    close_view(&v);
}


/* Layout variants: legacy 3-bit packing, asymmetric channel / tensor zero points, actorder
 * g_idx, the dense (frozen) format, and two groups (mixed-precision). */
static qn_quant_scheme int_scheme(int bits, qn_qstrategy strat, int64_t group, int sym, const char *fmt, qn_actorder ao) {
    qn_quant_scheme s;
    qn_quant_scheme_init(&s);
    const char *t[] = {"Linear"};
    qn_error err = {0};
    if (qn_quant_scheme_set_targets(&s, t, 1, &err)) fail_msg("%s", err.msg);
    s.has_weights = 1;
    qn_quant_args_init(&s.weights);
    s.weights.num_bits = bits;
    s.weights.strategy = strat;
    s.weights.symmetric = sym;
    s.weights.actorder = ao;
    if (group) { s.weights.has_group_size = 1; s.weights.group_size = group; }
    if (qn_quant_args_validate(&s.weights, QN_CT_VERSION_DEFAULT, "test", &err)) fail_msg("%s", err.msg);
    if (fmt) snprintf(s.format, sizeof s.format, "%s", fmt);
    return s;
}

static const qn_tensor *must_find(const qn_st_set *o, const char *mod, const char *param, qn_dtype dt, int nd, int64_t d0,
                                  int64_t d1) {
    char n[256];
    snprintf(n, sizeof n, "%s.%s", mod, param);
    const qn_tensor *t = qn_st_set_find(o, n);
    if (!t) fail_msg("%s missing", n);
    if (t->dtype != dt || t->ndim != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1))
        fail_msg("%s: %s ndim %d [%lld, %lld]", n, qn_dtype_name(t->dtype), t->ndim, (long long)t->shape[0],
                 (long long)(t->ndim > 1 ? t->shape[1] : 0));
    return t;
}

static void test_variants(void **state) {
    (void)state;
    model_view v = open_view(HD64);
    const char *q = "model.layers.1.self_attn.q_proj";   /* [512, 128] */
    const char *down = "model.layers.1.mlp.down_proj";    /* [128, 256] */
    qn_error err = {0};
    for (int c = 0; c < 4; c++) {
        qn_quant_scheme s;
        if (c == 0) s = int_scheme(3, QN_STRATEGY_GROUP, 32, 1, "pack-quantized", QN_ACTORDER_NONE);
        else if (c == 1) s = int_scheme(4, QN_STRATEGY_CHANNEL, 0, 0, NULL, QN_ACTORDER_NONE);
        else if (c == 2) s = int_scheme(8, QN_STRATEGY_TENSOR, 0, 0, NULL, QN_ACTORDER_NONE);
        else s = int_scheme(4, QN_STRATEGY_GROUP, 64, 1, NULL, QN_ACTORDER_GROUP);
        char *root;
        char *out = export_to(&v, &s, "v", NULL, NULL, &root);
        qn_st_set *o;
        if (qn_st_set_open_dir(out, &o, &err)) fail_msg("%s", err.msg);
        if (c == 0) {   /* CT <= 0.16 layout: 10 values per word -> ceil(128 / 10) = 13 words */
            must_find(o, q, "weight_packed", QN_DT_I32, 2, 512, 13);
            must_find(o, down, "weight_packed", QN_DT_I32, 2, 128, 26);
            must_find(o, q, "weight_scale", QN_DT_F32, 2, 512, 4);
        } else if (c == 1) {   /* zero points packed along the output dim: [ceil(512 / 8), 1] */
            must_find(o, q, "weight_zero_point", QN_DT_I32, 2, 64, 1);
            must_find(o, q, "weight_scale", QN_DT_F32, 2, 512, 1);
        } else if (c == 2) {   /* asymmetric tensor: unpacked I8 [1] */
            must_find(o, q, "weight_zero_point", QN_DT_I8, 1, 1, 0);
            must_find(o, q, "weight_scale", QN_DT_F32, 1, 1, 0);
        } else {
            const qn_tensor *g = must_find(o, down, "weight_g_idx", QN_DT_I32, 1, 256, 0);
            for (int j = 0; j < 256; j++) {
                int32_t x;
                memcpy(&x, (const char *)g->data + 4 * j, 4);
                assert_int_equal(x, j / 64);
            }
        }
        qn_st_set_free(o);
        cJSON *cfg = read_json(out, "config.json");
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(cfg, "quantization_config"), "format")->valuestring,
                            c == 0 ? "pack-quantized" : "pack-quantized");
        cJSON_Delete(cfg);
        check_roundtrip(&v, out, &s, "variant");
        check_logits(&v, out, &s, "variant");
        tu_rmrf(root);
        free(root);
        free(out);
        qn_quant_scheme_free(&s);
    }
    /* 3 bits without an override: CT 0.13 writes naive-quantized (int8 weight) */
    {
        qn_quant_scheme s = int_scheme(3, QN_STRATEGY_CHANNEL, 0, 1, NULL, QN_ACTORDER_NONE);
        char f[32];
        qn_export_group_format(&s, QN_CT_VERSION_DEFAULT, f, sizeof f);
        assert_string_equal(f, "naive-quantized");
        qn_export_group_format(&s, QN_CT_VERSION(0, 18), f, sizeof f);
        assert_string_equal(f, "pack-quantized");
        qn_quant_scheme_free(&s);
    }
    /* dense: fake-quantized float weights + every qparam, status frozen */
    {
        qn_quant_scheme s;
        preset("W4A16_ASYM", &s);
        snprintf(s.format, sizeof s.format, "dense");
        char *root;
        char *out = export_to(&v, &s, "d", NULL, NULL, &root);
        qn_st_set *o;
        if (qn_st_set_open_dir(out, &o, &err)) fail_msg("%s", err.msg);
        must_find(o, q, "weight", QN_DT_F32, 2, 512, 128);
        must_find(o, q, "weight_scale", QN_DT_F32, 2, 512, 1);
        must_find(o, q, "weight_zero_point", QN_DT_I8, 2, 512, 1);
        char wn[256];
        snprintf(wn, sizeof wn, "%s.weight", q);
        assert_int_equal(qn_ct_is_compressed(o, wn), 0);
        for (size_t i = 0; i < v.n; i++) {
            if (strcmp(v.mods[i].name, q)) continue;
            float *want = ref_fake(&v, i, &s, 0), *got = tensor_f32(o, wn);
            for (int e = 0; e < 512 * 128; e++) assert_true(want[e] == got[e]);
            free(want);
            free(got);
        }
        qn_st_set_free(o);
        cJSON *cfg = read_json(out, "config.json");
        const cJSON *qc = cJSON_GetObjectItem(cfg, "quantization_config");
        assert_string_equal(cJSON_GetObjectItem(qc, "format")->valuestring, "dense");
        assert_string_equal(cJSON_GetObjectItem(qc, "quantization_status")->valuestring, "frozen");
        cJSON_Delete(cfg);
        check_logits(&v, out, &s, "dense");
        tu_rmrf(root);
        free(root);
        free(out);
        qn_quant_scheme_free(&s);
    }
    /* two groups: attention W8A16 (pack), MLP FP8_DYNAMIC (float) -> mixed-precision */
    {
        qn_quant_scheme g[2];
        preset("W8A16", &g[0]);
        preset("FP8_DYNAMIC", &g[1]);
        const char *ta[] = {"re:.*self_attn.*"}, *tm[] = {"re:.*mlp.*"};
        assert_int_equal(qn_quant_scheme_set_targets(&g[0], ta, 1, &err), QN_OK);
        assert_int_equal(qn_quant_scheme_set_targets(&g[1], tm, 1, &err), QN_OK);
        qn_recipe_plan plan = {0};
        plan.n_modules = v.n;
        plan.group_of = calloc(v.n, sizeof(int));
        plan.ignored = calloc(v.n, sizeof(int));
        for (size_t i = 0; i < v.n; i++)
            plan.group_of[i] = strstr(v.mods[i].name, "self_attn") ? 0 : strstr(v.mods[i].name, "mlp") ? 1 : -1;
        plan.groups = g;
        plan.n_groups = 2;
        char *root = tu_tmpdir(), out[1024];
        snprintf(out, sizeof out, "%s/mixed", root);
        if (qn_export_model(v.dir, out, v.mods, v.n, &plan, NULL, NULL, &err)) fail_msg("%s", err.msg);
        cJSON *cfg = read_json(out, "config.json");
        const cJSON *qc = cJSON_GetObjectItem(cfg, "quantization_config");
        assert_string_equal(cJSON_GetObjectItem(qc, "format")->valuestring, "mixed-precision");
        const cJSON *gs = cJSON_GetObjectItem(qc, "config_groups");
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(gs, "group_0"), "format")->valuestring, "pack-quantized");
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(gs, "group_1"), "format")->valuestring, "float-quantized");
        assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(gs, "group_1"), "targets"), 0)->valuestring,
                            "re:.*mlp.*");
        cJSON_Delete(cfg);
        qn_st_set *o;
        if (qn_st_set_open_dir(out, &o, &err)) fail_msg("%s", err.msg);
        must_find(o, q, "weight_packed", QN_DT_I32, 2, 512, 32);
        must_find(o, down, "weight", QN_DT_F8_E4M3, 2, 128, 256);
        for (size_t i = 0; i < v.n; i++) {
            if (plan.group_of[i] < 0) continue;
            char wn[256];
            snprintf(wn, sizeof wn, "%s.weight", v.mods[i].name);
            float *got;
            if (qn_ct_load_weight(out, o, wn, &got, &err)) fail_msg("%s", err.msg);
            float *want = ref_fake(&v, i, &g[plan.group_of[i]], 1);
            assert_memory_equal(got, want, sizeof(float) * (size_t)(v.mods[i].out * v.mods[i].in));
            free(got);
            free(want);
        }
        qn_st_set_free(o);
        tu_rmrf(root);
        free(root);
        free(plan.group_of);
        free(plan.ignored);
        qn_quant_scheme_free(&g[0]);
        qn_quant_scheme_free(&g[1]);
    }
    close_view(&v);
}

/* Hostile compressed folders: wrong packed width, missing scale, bad weight_shape. */
static void test_reader_rejects(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    const char *cfg =
        "{\"quantization_config\": {\"config_groups\": {\"group_0\": {\"format\": \"pack-quantized\", \"targets\": [\"Linear\"], "
        "\"weights\": {\"num_bits\": 4, \"group_size\": 8, \"strategy\": \"group\", \"symmetric\": true, \"type\": \"int\"}}}, "
        "\"format\": \"pack-quantized\", \"quant_method\": \"compressed-tensors\"}}";
    char p[1024];
    snprintf(p, sizeof p, "%s/config.json", dir);
    assert_int_equal(tu_write_file(p, cfg, strlen(cfg)), 0);
    for (int c = 0; c < 3; c++) {
        qn_st_writer *w;
        qn_error err = {0};
        if (qn_st_writer_open(dir, 0, &w, &err)) fail_msg("%s", err.msg);
        int32_t words[4] = {0, 0, 0, 0};
        float sc[4] = {1, 1, 1, 1};
        int64_t s12[2] = {1, c == 0 ? 2 : 1}, s11[2] = {1, 1}, two = 2, shp[2] = {1, c == 2 ? -8 : 8};
        assert_int_equal(qn_st_writer_add(w, "x.weight_packed", QN_DT_I32, 2, s12, words, (size_t)(4 * s12[1]), &err), QN_OK);
        if (c != 1) assert_int_equal(qn_st_writer_add(w, "x.weight_scale", QN_DT_F32, 2, s11, sc, 4, &err), QN_OK);
        assert_int_equal(qn_st_writer_add(w, "x.weight_shape", QN_DT_I64, 1, &two, shp, 16, &err), QN_OK);
        assert_int_equal(qn_st_writer_finish(w, &err), QN_OK);
        qn_st_set *set;
        if (qn_st_set_open_dir(dir, &set, &err)) fail_msg("%s", err.msg);
        float *x = NULL;
        qn_status st = qn_ct_load_weight(dir, set, "x.weight", &x, &err);
        assert_int_not_equal(st, QN_OK);
        assert_null(x);
        const char *want = c == 0 ? "x.weight_packed" : c == 1 ? "x.weight_scale" : "weight_shape";
        if (!strstr(err.msg, want)) fail_msg("case %d: '%s' does not name %s", c, err.msg, want);
        qn_st_set_free(set);
    }
    tu_rmrf(dir);
    free(dir);
}

/* qn_export_quantization_config (no writing) gives the object written into config.json. */
static void test_quantization_config_dry(void **state) {
    (void)state;
    model_view v = open_view(HD64);
    qn_quant_scheme s;
    preset("W4A16_ASYM", &s);
    one_plan p;
    make_plan(&p, &s, &v);
    char *json;
    qn_error err = {0};
    if (qn_export_quantization_config(v.mods, v.n, &p.plan, NULL, &json, &err)) fail_msg("%s", err.msg);
    char *root;
    char *out = export_to(&v, &s, "dry", NULL, NULL, &root);
    cJSON *cfg = read_json(out, "config.json"), *dry = cJSON_Parse(json);
    assert_non_null(dry);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(cfg, "quantization_config"), dry, 1));
    cJSON_Delete(cfg);
    cJSON_Delete(dry);
    free(json);
    tu_rmrf(root);
    free(root);
    free(out);
    free_plan(&p);
    qn_quant_scheme_free(&s);
    close_view(&v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pyjson_dump_like_python),
        cmocka_unit_test(test_config_json_bytes),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_list_modules),
        cmocka_unit_test(test_group_format),
        cmocka_unit_test(test_pack_example_through_reader),
        cmocka_unit_test(test_presets_hd64),
        cmocka_unit_test(test_presets_hd64_bf16),
        cmocka_unit_test(test_fused_scales),
        cmocka_unit_test(test_quality_hd64),
        cmocka_unit_test(test_quality_stories260k),
        cmocka_unit_test(test_existing_out_refused),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_reader_rejects),
        cmocka_unit_test(test_quantization_config_dry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
