/* quench inspect / diff (src/plan/inspect.c, src/plan/diff.c).
 *
 * Clean checkpoints are written by the library itself (qn_export_model on the bundled
 * stories260K-hd64, as `quench compress` does); broken ones are copies rewritten with qn_st_writer
 * (a tensor dropped, reshaped, retyped, added) or with an edited config.json. Expected values are
 * the spec's (docs/compressed-tensors-format.md §5.10 shapes, §6.2 capabilities, §6.3 fused
 * shards) and counts done by hand for the model (5 layers x 7 Linears + lm_head = 36). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "quench/config.h"
#include "quench/export.h"
#include "quench/plan.h"
#include "quench/quant.h"
#include "quench/recipe.h"
#include "quench/safetensors.h"

static char *g_root;                     /* temporary folder of this run */
static char g_w4[1024], g_asym[1024], g_fp8[1024];

static void path_join(char *dst, size_t n, const char *a, const char *b) { snprintf(dst, n, "%s/%s", a, b); }

static void compress(const char *model, const char *scheme, const char *out) {
    qn_error err = {0};
    qn_model_config cfg;
    qn_st_set *set;
    if (qn_config_load_dir(model, &cfg, &err)) fail_msg("%s", err.msg);
    if (qn_st_set_open_dir(model, &set, &err)) fail_msg("%s", err.msg);
    qn_module *mods;
    size_t n;
    if (qn_export_list_modules(&cfg, set, &mods, &n, &err)) fail_msg("%s", err.msg);
    qn_recipe *r;
    if (qn_recipe_from_cli(scheme, NULL, 0, NULL, 0, &r, &err)) fail_msg("%s", err.msg);
    qn_recipe_plan plan;
    if (qn_recipe_resolve(r, mods, n, &plan, &err)) fail_msg("%s", err.msg);
    qn_export_opts o = {0};
    if (qn_export_model(model, out, mods, n, &plan, &o, NULL, &err)) fail_msg("%s", err.msg);
    qn_recipe_plan_free(&plan);
    qn_recipe_free(r);
    qn_export_modules_free(mods, n);
    qn_st_set_free(set);
    qn_config_free(&cfg);
}

static int setup(void **state) {
    (void)state;
    g_root = tu_tmpdir();
    if (!g_root) return -1;
    char *m = tu_shared("models/stories260K-hd64");
    path_join(g_w4, sizeof g_w4, g_root, "w4a16");
    path_join(g_asym, sizeof g_asym, g_root, "w4a16_asym");
    path_join(g_fp8, sizeof g_fp8, g_root, "fp8_dynamic");
    compress(m, "W4A16", g_w4);
    compress(m, "W4A16_ASYM", g_asym);
    compress(m, "FP8_DYNAMIC", g_fp8);
    free(m);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tu_rmrf(g_root);
    free(g_root);
    return 0;
}

static void copy_file(const char *src, const char *dst) {
    size_t len;
    char *b = tu_read_file(src, &len);
    assert_non_null(b);
    assert_int_equal(tu_write_file(dst, b, len), 0);
    free(b);
}

/* A copy of checkpoint `src` in a new folder `name`, its tensors rewritten: `drop` left out;
 * `change` written with dtype `dt` / shape `shape[nd]` (zero-filled); `add` added the same way. */
typedef struct {
    const char *drop, *change, *add;
    qn_dtype dt;
    int nd;
    int64_t shape[4];
} edit;

static char *rewrite(const char *src, const char *name, const edit *e) {
    char *dst = malloc(1024);
    path_join(dst, 1024, g_root, name);
    assert_int_equal(mkdir(dst, 0755), 0);
    char a[1100], b[1100];
    path_join(a, sizeof a, src, "config.json");
    path_join(b, sizeof b, dst, "config.json");
    copy_file(a, b);
    qn_error err = {0};
    qn_st_set *set;
    if (qn_st_set_open_dir(src, &set, &err)) fail_msg("%s", err.msg);
    qn_st_writer *w;
    if (qn_st_writer_open(dst, 0, &w, &err)) fail_msg("%s", err.msg);
    for (size_t i = 0; i < qn_st_set_count(set); i++) {
        const qn_tensor *t = qn_st_set_get(set, i);
        if (e->drop && !strcmp(t->name, e->drop)) continue;
        if (e->change && !strcmp(t->name, e->change)) {
            int64_t n = 1;
            for (int k = 0; k < e->nd; k++) n *= e->shape[k];
            size_t nb = (size_t)n * qn_dtype_size(e->dt);
            void *z = calloc(nb ? nb : 1, 1);
            if (qn_st_writer_add(w, t->name, e->dt, e->nd, e->shape, z, nb, &err)) fail_msg("%s", err.msg);
            free(z);
            continue;
        }
        if (qn_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes, &err)) fail_msg("%s", err.msg);
    }
    if (e->add) {
        int64_t n = 1;
        for (int k = 0; k < e->nd; k++) n *= e->shape[k];
        size_t nb = (size_t)n * qn_dtype_size(e->dt);
        void *z = calloc(nb ? nb : 1, 1);
        if (qn_st_writer_add(w, e->add, e->dt, e->nd, e->shape, z, nb, &err)) fail_msg("%s", err.msg);
        free(z);
    }
    if (qn_st_writer_finish(w, &err)) fail_msg("%s", err.msg);
    qn_st_set_free(set);
    return dst;
}

/* A folder holding only `config_json`. */
static char *config_only(const char *name, const char *config_json) {
    char *dst = malloc(1024);
    path_join(dst, 1024, g_root, name);
    assert_int_equal(mkdir(dst, 0755), 0);
    char p[1100];
    path_join(p, sizeof p, dst, "config.json");
    assert_int_equal(tu_write_file(p, config_json, strlen(config_json)), 0);
    return dst;
}

/* config.json of `src` with quantization_config.<key> replaced by JSON `value` (NULL: removed) */
static char *edited_config(const char *src, const char *key, const char *value) {
    char p[1100];
    path_join(p, sizeof p, src, "config.json");
    char *t = tu_read_file(p, NULL);
    assert_non_null(t);
    cJSON *root = cJSON_Parse(t);
    free(t);
    assert_non_null(root);
    cJSON *qc = cJSON_GetObjectItem(root, "quantization_config");
    assert_non_null(qc);
    cJSON_DeleteItemFromObject(qc, key);
    if (value) {
        cJSON *v = cJSON_Parse(value);
        assert_non_null(v);
        cJSON_AddItemToObject(qc, key, v);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

static qn_inspect *inspect_ok(const char *path) {
    qn_inspect *r;
    qn_error err = {0};
    if (qn_inspect_path(path, &r, &err)) fail_msg("%s", err.msg);
    return r;
}

static int count_kind(const qn_inspect *r, qn_find_kind k, const char *subject) {
    int n = 0;
    for (size_t i = 0; i < r->n_findings; i++)
        if (r->findings[i].kind == k && (!subject || !strcmp(r->findings[i].subject, subject))) n++;
    return n;
}

static const char *gpu_state(const qn_inspect_group *g, const char *name) {
    int n = 0;
    const qn_gpu_info *t = qn_plan_gpu_table(&n);
    for (int i = 0; i < n && i < g->n_gpus; i++)
        if (!strcmp(t[i].name, name)) return g->gpu_ok[i] == 2 ? "native" : g->gpu_ok[i] == 1 ? "fallback" : "no";
    return "?";
}

/* ------------------------------------------------------------------------------------------ */

static void test_clean_w4a16(void **state) {
    (void)state;
    qn_inspect *r = inspect_ok(g_w4);
    assert_true(r->quantized);
    assert_true(r->has_tensors);
    assert_int_equal(r->modules_from, QN_MODULES_TENSORS);
    assert_int_equal(r->n_linear, 36);
    assert_int_equal(r->n_quantized, 35);
    assert_int_equal(r->n_ignored, 1);
    assert_int_equal(r->n_unmatched, 0);
    assert_int_equal(r->n_checked, 36);
    assert_int_equal(r->n_mismatches, 0);
    assert_int_equal(r->n_by_level[QN_FIND_ERROR], 0);
    assert_int_equal(r->n_by_level[QN_FIND_WARNING], 0);
    assert_int_equal(r->n_groups, 1);
    const qn_inspect_group *g = &r->groups[0];
    assert_string_equal(g->name, "group_0");
    assert_string_equal(g->preset, "W4A16");
    assert_string_equal(g->format, "pack-quantized");
    assert_string_equal(g->weights, "int4 group 128 sym");
    assert_string_equal(g->vllm_scheme, "CompressedTensorsWNA16");
    assert_int_equal(g->min_cc, 80);
    assert_int_equal(g->n_linear, 35);
    assert_string_equal(gpu_state(g, "A100-80G"), "native");
    assert_string_equal(gpu_state(g, "RTX 3090"), "native");
    assert_int_equal(r->n_ignore, 1);
    assert_string_equal(r->ignore[0].entry, "lm_head");
    assert_int_equal(r->ignore[0].n_linear, 1);
    assert_int_equal(r->ignore[0].n_effective, 1);
    assert_int_equal(r->n_ignored_modules, 1);
    assert_string_equal(r->ignored_modules[0], "lm_head");
    assert_int_equal(r->model_dtype, QN_DT_F32);
    qn_inspect_free(r);
}

static void test_clean_asym_fp8(void **state) {
    (void)state;
    qn_inspect *r = inspect_ok(g_asym);
    assert_int_equal(r->n_mismatches, 0);
    assert_string_equal(r->groups[0].preset, "W4A16_ASYM");
    assert_non_null(strstr(r->groups[0].vllm_note, "asymmetric"));
    qn_inspect_free(r);
    r = inspect_ok(g_fp8);
    assert_int_equal(r->n_mismatches, 0);
    assert_int_equal(r->n_by_level[QN_FIND_ERROR], 0);
    const qn_inspect_group *g = &r->groups[0];
    assert_string_equal(g->preset, "FP8_DYNAMIC");
    assert_string_equal(g->vllm_scheme, "CompressedTensorsW8A8Fp8");
    assert_int_equal(g->min_cc, 89);
    assert_string_equal(g->fallback, "CompressedTensorsW8A16Fp8");
    assert_int_equal(g->fallback_cc, 80);
    assert_string_equal(gpu_state(g, "RTX 4090"), "native");   /* 8.9 */
    assert_string_equal(gpu_state(g, "H100-80G"), "native");
    assert_string_equal(gpu_state(g, "A100-80G"), "fallback"); /* 8.0 */
    assert_string_equal(gpu_state(g, "RTX 3090"), "fallback"); /* 8.6 */
    qn_inspect_free(r);
}

static void test_plain_and_config_only(void **state) {
    (void)state;
    char *m = tu_shared("models/stories260K-hd64");
    qn_inspect *r = inspect_ok(m);
    assert_false(r->quantized);
    assert_int_equal(r->n_linear, 36);
    assert_int_equal(r->n_mismatches, 0);
    assert_int_equal(r->n_by_level[QN_FIND_ERROR], 0);
    qn_inspect_free(r);
    /* the config.json path itself: config analysis only */
    char p[1100];
    path_join(p, sizeof p, g_w4, "config.json");
    r = inspect_ok(p);
    assert_false(r->has_tensors);
    assert_int_equal(r->modules_from, QN_MODULES_CONFIG);
    assert_int_equal(r->n_linear, 36);   /* from config.json: 5 x (q, k, v, o, gate, up, down) + lm_head */
    assert_int_equal(r->n_quantized, 35);
    assert_int_equal(r->n_checked, 0);
    assert_string_equal(r->groups[0].preset, "W4A16");
    qn_inspect_free(r);
    free(m);
}

static void test_missing_scale(void **state) {
    (void)state;
    edit e = {.drop = "model.layers.0.self_attn.q_proj.weight_scale"};
    char *d = rewrite(g_w4, "no_scale", &e);
    qn_inspect *r = inspect_ok(d);
    assert_int_equal(r->n_mismatches, 1);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_MISSING, "model.layers.0.self_attn.q_proj.weight_scale"), 1);
    assert_int_equal(r->groups[0].n_bad, 1);
    qn_inspect_free(r);
    free(d);
}

static void test_missing_packed(void **state) {
    (void)state;
    /* the module is still found from its other tensors */
    edit e = {.drop = "model.layers.2.mlp.down_proj.weight_packed"};
    char *d = rewrite(g_w4, "no_packed", &e);
    qn_inspect *r = inspect_ok(d);
    assert_int_equal(r->n_linear, 36);
    assert_int_equal(r->n_mismatches, 1);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_MISSING, "model.layers.2.mlp.down_proj.weight_packed"), 1);
    qn_inspect_free(r);
    free(d);
}

static void test_wrong_shape_dtype(void **state) {
    (void)state;
    /* q_proj [512, 128], group 128: weight_scale F32 [512, 1]; written [512, 2] */
    edit e = {.change = "model.layers.1.self_attn.q_proj.weight_scale", .dt = QN_DT_F32, .nd = 2, .shape = {512, 2}};
    char *d = rewrite(g_w4, "bad_shape", &e);
    qn_inspect *r = inspect_ok(d);
    assert_int_equal(r->n_mismatches, 1);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_SHAPE, "model.layers.1.self_attn.q_proj.weight_scale"), 1);
    qn_inspect_free(r);
    free(d);
    edit e2 = {.change = "model.layers.1.self_attn.q_proj.weight_scale", .dt = QN_DT_BF16, .nd = 2, .shape = {512, 1}};
    d = rewrite(g_w4, "bad_dtype", &e2);
    r = inspect_ok(d);
    assert_int_equal(r->n_mismatches, 1);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_DTYPE, "model.layers.1.self_attn.q_proj.weight_scale"), 1);
    qn_inspect_free(r);
    free(d);
    /* weight_shape holding other values: [0, 0] instead of [128, 256] */
    edit e3 = {.change = "model.layers.4.mlp.down_proj.weight_shape", .dt = QN_DT_I64, .nd = 1, .shape = {2}};
    d = rewrite(g_w4, "bad_weight_shape", &e3);
    r = inspect_ok(d);
    assert_true(r->n_mismatches >= 1);
    assert_true(count_kind(r, QN_FIND_TENSOR_SHAPE, "model.layers.4.mlp.down_proj.weight_shape") >= 1);
    qn_inspect_free(r);
    free(d);
}

static void test_symmetric_zero_point(void **state) {
    (void)state;
    edit e = {.add = "model.layers.0.mlp.up_proj.weight_zero_point", .dt = QN_DT_I32, .nd = 2, .shape = {32, 1}};
    char *d = rewrite(g_w4, "sym_zp", &e);
    qn_inspect *r = inspect_ok(d);
    assert_int_equal(r->n_mismatches, 1);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_UNEXPECTED, "model.layers.0.mlp.up_proj.weight_zero_point"), 1);
    qn_inspect_free(r);
    free(d);
    /* the asymmetric checkpoint without one zero point */
    edit e2 = {.drop = "model.layers.3.self_attn.o_proj.weight_zero_point"};
    d = rewrite(g_asym, "asym_no_zp", &e2);
    r = inspect_ok(d);
    assert_int_equal(r->n_mismatches, 1);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_MISSING, "model.layers.3.self_attn.o_proj.weight_zero_point"), 1);
    qn_inspect_free(r);
    free(d);
}

static void test_actorder_and_sparsity(void **state) {
    (void)state;
    /* actorder "group" in the config, tensors without weight_g_idx: one missing I32 [in] per Linear */
    char *cj = edited_config(g_w4, "config_groups",
                             "{\"group_0\": {\"targets\": [\"Linear\"], \"format\": \"pack-quantized\", \"weights\": "
                             "{\"num_bits\": 4, \"type\": \"int\", \"strategy\": \"group\", \"group_size\": 128, "
                             "\"actorder\": \"group\"}}}");
    edit none = {0};
    char *d = rewrite(g_w4, "actorder", &none);
    char p[1100];
    path_join(p, sizeof p, d, "config.json");
    assert_int_equal(tu_write_file(p, cj, strlen(cj)), 0);
    free(cj);
    qn_inspect *r = inspect_ok(d);
    assert_string_equal(r->groups[0].preset, "W4A16+actorder");
    assert_int_equal(r->n_mismatches, 35);
    assert_int_equal(r->n_by_kind[QN_FIND_TENSOR_MISSING], 35);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_MISSING, "model.layers.2.self_attn.o_proj.weight_g_idx"), 1);
    qn_inspect_free(r);
    free(d);

    /* 2:4 + FP8_DYNAMIC (spec §3.11 H), config only */
    cj = edited_config(g_fp8, "sparsity_config",
                       "{\"format\": \"sparse-24-bitmask\", \"global_sparsity\": 0.45, \"ignore\": [\"lm_head\"], "
                       "\"registry_requires_subclass\": false, \"sparsity_structure\": \"2:4\", \"targets\": [\"Linear\"]}");
    d = config_only("sparse24", cj);
    free(cj);
    r = inspect_ok(d);
    assert_true(r->has_sparsity);
    assert_string_equal(r->sparsity_format, "sparse-24-bitmask");
    assert_string_equal(r->sparsity_structure, "2:4");
    assert_string_equal(r->groups[0].vllm_scheme, "CompressedTensors24");
    assert_int_equal(r->groups[0].min_cc, 90);
    assert_int_equal(count_kind(r, QN_FIND_CONFIG, "sparsity_config"), 1); /* legacy format warning */
    qn_inspect_free(r);
    free(d);

    /* the FP8_DYNAMIC tensors under that sparsity config: every quantized weight should be compressed */
    cj = edited_config(g_fp8, "sparsity_config",
                       "{\"format\": \"sparse-24-bitmask\", \"sparsity_structure\": \"2:4\", \"targets\": [\"Linear\"], "
                       "\"ignore\": [\"lm_head\"]}");
    d = rewrite(g_fp8, "sparse24_dense_tensors", &none);
    path_join(p, sizeof p, d, "config.json");
    assert_int_equal(tu_write_file(p, cj, strlen(cj)), 0);
    free(cj);
    r = inspect_ok(d);
    assert_int_equal(r->n_sparse, 35);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_MISSING, "model.layers.0.mlp.up_proj.compressed"), 1);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_UNEXPECTED, "model.layers.0.mlp.up_proj.weight"), 1);
    /* per module: compressed, bitmask, shape missing + weight unexpected */
    assert_int_equal(r->n_mismatches, 35 * 4);
    qn_inspect_free(r);
    free(d);
}

static void test_fused_split_and_ignore(void **state) {
    (void)state;
    /* config only (the tensors would add their own errors): q_proj of layer 0 ignored alone */
    char *cj = edited_config(g_w4, "ignore",
                             "[\"lm_head\", \"model.layers.0.self_attn.q_proj\", \"model.layers.9.mlp.up_proj\", "
                             "\"model.norm\", \"model.layers.0.self_attn.q_proj.bias\", \"Linear\"]");
    char *d = config_only("split_cfg", cj);
    free(cj);
    qn_inspect *r = inspect_ok(d);
    /* "Linear" in ignore drops every Linear (compressed-tensors matches class names in ignore) */
    assert_int_equal(r->n_ignored, 36);
    assert_int_equal(r->n_quantized, 0);
    assert_int_equal(count_kind(r, QN_FIND_IGNORE_CLASS, "Linear"), 1);
    assert_int_equal(count_kind(r, QN_FIND_IGNORE_UNUSED, "model.layers.9.mlp.up_proj"), 1);
    assert_int_equal(count_kind(r, QN_FIND_IGNORE_NON_LINEAR, "model.norm"), 1);
    assert_int_equal(count_kind(r, QN_FIND_IGNORE_NON_LINEAR, "model.layers.0.self_attn.q_proj.bias"), 1);
    assert_int_equal(count_kind(r, QN_FIND_FUSED_SPLIT, NULL), 0); /* all ignored: no split */
    qn_inspect_free(r);
    free(d);

    cj = edited_config(g_w4, "ignore", "[\"lm_head\", \"model.layers.0.self_attn.q_proj\", \"re:.*layers\\\\.3\\\\.mlp\\\\.up_proj$\"]");
    d = config_only("split_cfg2", cj);
    free(cj);
    r = inspect_ok(d);
    assert_int_equal(r->n_ignored, 3);
    assert_int_equal(count_kind(r, QN_FIND_FUSED_SPLIT, NULL), 2);
    assert_int_equal(count_kind(r, QN_FIND_FUSED_SPLIT, "model.layers.0.self_attn (q_proj, k_proj, v_proj)"), 1);
    assert_int_equal(count_kind(r, QN_FIND_FUSED_SPLIT, "model.layers.3.mlp (gate_proj, up_proj)"), 1);
    assert_true(r->n_by_level[QN_FIND_ERROR] >= 2);
    assert_int_equal(r->ignore[2].is_regex, 1);
    assert_int_equal(r->ignore[2].n_linear, 1);
    qn_inspect_free(r);
    free(d);
}

static void test_unmatched_and_stored_plain(void **state) {
    (void)state;
    /* lm_head no longer ignored: "Linear" targets it, but it is stored as a plain weight */
    char *cj = edited_config(g_w4, "ignore", "[]");
    edit none = {0};
    char *d = rewrite(g_w4, "lm_head_targeted", &none);
    char p[1100];
    path_join(p, sizeof p, d, "config.json");
    assert_int_equal(tu_write_file(p, cj, strlen(cj)), 0);
    free(cj);
    qn_inspect *r = inspect_ok(d);
    assert_int_equal(r->n_quantized, 36);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_MISSING, "lm_head.weight_packed"), 1);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_MISSING, "lm_head.weight_scale"), 1);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_MISSING, "lm_head.weight_shape"), 1);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_UNEXPECTED, "lm_head.weight"), 1);
    assert_int_equal(r->n_mismatches, 4);
    qn_inspect_free(r);
    free(d);

    /* targets that leave some Linears to nothing */
    cj = edited_config(g_w4, "config_groups",
                       "{\"group_0\": {\"targets\": [\"re:.*_proj$\"], \"weights\": {\"num_bits\": 4, \"strategy\": \"group\", "
                       "\"group_size\": 128, \"symmetric\": true, \"type\": \"int\"}, \"format\": \"pack-quantized\"}}");
    d = config_only("unmatched_cfg", cj);
    free(cj);
    r = inspect_ok(d);
    assert_int_equal(r->n_quantized, 35);
    assert_int_equal(r->n_ignored, 1);
    assert_int_equal(r->n_unmatched, 0);
    assert_string_equal(r->groups[0].preset, "W4A16"); /* minimal args, same meaning */
    qn_inspect_free(r);
    free(d);
    cj = edited_config(g_w4, "config_groups",
                       "{\"group_0\": {\"targets\": [\"re:.*self_attn.*\"], \"weights\": {\"num_bits\": 8, \"strategy\": "
                       "\"channel\", \"symmetric\": true, \"type\": \"int\"}, \"format\": \"pack-quantized\"}}");
    d = config_only("unmatched_cfg2", cj);
    free(cj);
    r = inspect_ok(d);
    assert_int_equal(r->n_quantized, 20);
    assert_int_equal(r->n_unmatched, 15);
    assert_int_equal(count_kind(r, QN_FIND_UNMATCHED_LINEAR, NULL), 15);
    assert_string_equal(r->groups[0].preset, "W8A16");
    qn_inspect_free(r);
    free(d);
}

static void test_kv_and_malformed(void **state) {
    (void)state;
    char *cj = edited_config(g_w4, "kv_cache_scheme",
                             "{\"num_bits\": 8, \"type\": \"int\", \"strategy\": \"tensor\", \"symmetric\": true}");
    char *d = config_only("kv_int8", cj);
    free(cj);
    qn_inspect *r = inspect_ok(d);
    assert_true(r->has_kv_cache);
    assert_false(r->kv_cache_vllm_ok);
    assert_int_equal(count_kind(r, QN_FIND_KV_CACHE, NULL), 1);
    qn_inspect_free(r);
    free(d);

    /* an FP8 KV scheme on the real tensors: k_scale / v_scale missing in all 5 layers */
    cj = edited_config(g_w4, "kv_cache_scheme", "{\"num_bits\": 8, \"type\": \"float\", \"strategy\": \"tensor\"}");
    edit none = {0};
    d = rewrite(g_w4, "kv_fp8", &none);
    char p[1100];
    path_join(p, sizeof p, d, "config.json");
    assert_int_equal(tu_write_file(p, cj, strlen(cj)), 0);
    free(cj);
    r = inspect_ok(d);
    assert_true(r->kv_cache_vllm_ok);
    assert_int_equal(r->n_attention, 5);
    assert_int_equal(r->n_kv_scales, 0);
    assert_int_equal(count_kind(r, QN_FIND_TENSOR_MISSING, "model.layers.4.self_attn.k_scale"), 1);
    assert_int_equal(r->n_mismatches, 10);
    qn_inspect_free(r);
    free(d);

    struct { const char *key, *value, *want; } bad[] = {
        {"config_groups", "{\"group_0\": {\"targets\": \"Linear\"}}", "config_groups.group_0"},
        {"config_groups", "{\"group_0\": {\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": \"four\"}}}",
         "config_groups.group_0.weights"},
        {"config_groups", "[1, 2]", "quantization_config.config_groups"},
        {"ignore", "[\"lm_head\", 3]", "quantization_config.ignore[1]"},
        {"ignore", "[\"re:(unclosed\"]", "quantization_config.ignore[0]"},
        {"ignore", "\"lm_head\"", "quantization_config.ignore"},
        {"kv_cache_scheme", "{\"num_bits\": 8, \"bogus\": 1}", "kv_cache_scheme"},
        {"format", "\"packed\"", "quantization_config.format"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cj = edited_config(g_w4, bad[i].key, bad[i].value);
        char name[32];
        snprintf(name, sizeof name, "bad_%zu", i);
        d = config_only(name, cj);
        free(cj);
        qn_error err = {0};
        qn_inspect *x = NULL;
        assert_int_not_equal(qn_inspect_path(d, &x, &err), QN_OK);
        assert_null(x);
        if (!strstr(err.msg, bad[i].want) || !strstr(err.msg, "config.json"))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].want);
        /* diff refuses it too */
        qn_diff *df = NULL;
        if (strcmp(bad[i].key, "kv_cache_scheme") && strcmp(bad[i].key, "format") && !strstr(bad[i].value, "re:")) {
            assert_int_not_equal(qn_diff_paths(d, g_w4, &df, &err), QN_OK);
            assert_null(df);
            assert_non_null(strstr(err.msg, "config.json"));
        }
        free(d);
    }
    d = config_only("bad_json", "{\"architectures\": [\"LlamaForCausalLM\"],\n \"hidden_size\": 12,,}");
    qn_error err = {0};
    r = NULL;
    assert_int_not_equal(qn_inspect_path(d, &r, &err), QN_OK);
    assert_non_null(strstr(err.msg, "invalid JSON"));
    assert_non_null(strstr(err.msg, "line 2"));
    qn_diff *df = NULL;
    assert_int_not_equal(qn_diff_paths(g_w4, d, &df, &err), QN_OK);
    assert_non_null(strstr(err.msg, "invalid JSON"));
    free(d);
    assert_int_equal(qn_inspect_path("/nonexistent/quench", &r, &err), QN_ERR_NOT_FOUND);
}

static void test_moe_config_only(void **state) {
    (void)state;
    char *p = tu_source("tests/data/diff/GLM-4.5");
    qn_inspect *r = inspect_ok(p);
    free(p);
    assert_int_equal(r->modules_from, QN_MODULES_CONFIG);
    /* 92 x 4 attention + 3 x 3 dense + 89 x (160 x 3 experts + 3 shared + router) + lm_head */
    assert_int_equal(r->n_linear, 92 * 4 + 3 * 3 + 89 * (160 * 3 + 3 + 1) + 1);
    assert_int_equal(r->n_ignore, 743);
    assert_int_equal(r->n_ignored, 734);   /* 9 entries name the MTP layer 92 */
    assert_int_equal(r->n_quantized, r->n_linear - 734);
    assert_int_equal(r->n_by_level[QN_FIND_ERROR], 0);
    assert_string_equal(r->groups[0].preset, "FP8_BLOCK");
    assert_int_equal(r->groups[0].min_cc, 89);
    qn_inspect_free(r);

    /* the tiny GLM MoE: one expert's gate_proj ignored alone splits the block */
    char *m = tu_shared("models/tiny-random-glm4-moe/config.json");
    char *t = tu_read_file(m, NULL);
    free(m);
    assert_non_null(t);
    cJSON *root = cJSON_Parse(t);
    free(t);
    cJSON *q = cJSON_Parse("{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", "
                           "\"quantization_status\": \"compressed\", \"version\": \"0.13.0\", \"config_groups\": "
                           "{\"group_0\": {\"targets\": [\"re:.*experts.*\"], \"weights\": {\"num_bits\": 8, \"type\": "
                           "\"float\", \"strategy\": \"channel\"}, \"input_activations\": {\"num_bits\": 8, \"type\": "
                           "\"float\", \"strategy\": \"token\", \"dynamic\": true}}}, \"ignore\": [\"lm_head\", "
                           "\"re:.*mlp.gate$\", \"model.layers.1.mlp.experts.3.gate_proj\"]}");
    cJSON_AddItemToObject(root, "quantization_config", q);
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    char *d = config_only("glm_moe_split", s);
    free(s);
    r = inspect_ok(d);
    assert_int_equal(count_kind(r, QN_FIND_MOE_SPLIT, "model.layers.1.mlp.experts"), 1);
    assert_int_equal(count_kind(r, QN_FIND_MOE_SPLIT, NULL), 1);
    /* no "Linear" target: vLLM's MoE path (2025) finds no scheme */
    assert_int_equal(count_kind(r, QN_FIND_VLLM, NULL), 1);
    assert_int_equal(r->ignore[1].n_linear, 2);   /* routers of the 2 MoE layers */
    qn_inspect_free(r);
    free(d);
}

static qn_quant_scheme preset(const char *name) {
    qn_quant_scheme s;
    qn_error err = {0};
    if (qn_scheme_preset(name, &s, &err)) fail_msg("%s", err.msg);
    return s;
}

static void vllm_of(const char *name, const char *format, int sparse, qn_inspect_group *g) {
    memset(g, 0, sizeof *g);
    g->scheme = preset(name);
    snprintf(g->format, sizeof g->format, "%s", format);
    qn_inspect_vllm_scheme(g, sparse);
    qn_quant_scheme_free(&g->scheme);
}

static void test_vllm_table(void **state) {
    (void)state;
    /* spec §6.2: scheme and minimum capability */
    struct { const char *preset, *format; int sparse; const char *scheme; int cc, exact, fb_cc; } t[] = {
        {"W4A16", "pack-quantized", 0, "CompressedTensorsWNA16", 80, 0, 0},
        {"W8A16", "pack-quantized", 0, "CompressedTensorsWNA16", 80, 0, 0},
        {"W8A8", "int-quantized", 0, "CompressedTensorsW8A8Int8", 75, 0, 0},
        {"FP8", "float-quantized", 0, "CompressedTensorsW8A8Fp8", 89, 0, 80},
        {"FP8_DYNAMIC", "float-quantized", 0, "CompressedTensorsW8A8Fp8", 89, 0, 80},
        {"FP8_BLOCK", "float-quantized", 0, "CompressedTensorsW8A8Fp8", 89, 0, 80},
        {"W4AFP8", "pack-quantized", 0, "CompressedTensorsW4A8Fp8", 90, 1, 0},
        {"W4A8", "int-quantized", 0, "CompressedTensorsW4A8Int", 1, 0, 0},
        {"NVFP4A16", "nvfp4-pack-quantized", 0, "CompressedTensorsW4A16Fp4", 80, 0, 75},
        {"NVFP4", "nvfp4-pack-quantized", 0, "CompressedTensorsW4A4Fp4", 100, 0, 80},
        {"FP8_DYNAMIC", "float-quantized", 1, "CompressedTensors24", 90, 0, 0},
        {"W8A8", "int-quantized", 1, "CompressedTensors24", 90, 0, 0},
        {"W4A16", "naive-quantized", 0, "", 0, 0, 0},     /* weight-only int unpacked (§6.5) */
        {"W4A16", "dense", 0, "", 0, 0, 0},               /* frozen fake-quant */
        {"W4A16", "pack-quantized", 1, "", 0, 0, 0},      /* 2:4 needs 8-bit W and A */
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        qn_inspect_group g;
        vllm_of(t[i].preset, t[i].format, t[i].sparse, &g);
        if (strcmp(g.vllm_scheme, t[i].scheme) || g.min_cc != t[i].cc || g.exact_cc != t[i].exact ||
            g.fallback_cc != t[i].fb_cc)
            fail_msg("%s/%s/%d: got '%s' %d exact %d fallback %d (%s)", t[i].preset, t[i].format, t[i].sparse, g.vllm_scheme,
                     g.min_cc, g.exact_cc, g.fallback_cc, g.vllm_note);
    }
    qn_inspect_group g;
    vllm_of("W4AFP8", "pack-quantized", 0, &g);
    assert_string_equal(gpu_state(&g, "H100-80G"), "native");
    assert_string_equal(gpu_state(&g, "B200"), "no");       /* SM 9.0 exactly */
    assert_string_equal(gpu_state(&g, "RTX 4090"), "no");
    vllm_of("NVFP4", "nvfp4-pack-quantized", 0, &g);
    assert_string_equal(gpu_state(&g, "B200"), "native");
    assert_string_equal(gpu_state(&g, "H100-80G"), "fallback");
    vllm_of("W8A8", "int-quantized", 0, &g);
    assert_string_equal(gpu_state(&g, "RTX 3090"), "native");
    vllm_of("FP8", "float-quantized", 0, &g);
    assert_string_equal(gpu_state(&g, "L4"), "native");
    assert_string_equal(gpu_state(&g, "A10"), "fallback");
}

/* ------------------------------------------------------------------------------------------ */
/* diff                                                                                        */

static void test_diff_glm(void **state) {
    (void)state;
    char *a = tu_source("tests/data/diff/GLM-4.5");
    char *b = tu_source("tests/data/diff/GLM-4.5-Air/config.json");
    qn_diff *d;
    qn_error err = {0};
    if (qn_diff_paths(a, b, &d, &err)) fail_msg("%s", err.msg);
    const char *want[][3] = {
        {"first_k_dense_replace", "3", "1"},  {"hidden_size", "5120", "4096"},
        {"intermediate_size", "12288", "10944"}, {"moe_intermediate_size", "1536", "1408"},
        {"n_routed_experts", "160", "128"},   {"num_hidden_layers", "92", "46"},
        {"routed_scaling_factor", "2.5", "1.0"}, {"use_qk_norm", "true", "false"},
    };
    assert_int_equal(d->n_config, sizeof want / sizeof *want);
    for (size_t i = 0; i < d->n_config; i++) {
        assert_string_equal(d->config[i].key, want[i][0]);
        assert_string_equal(d->config[i].a, want[i][1]);
        assert_string_equal(d->config[i].b, want[i][2]);
    }
    assert_true(d->a_quantized && d->b_quantized);
    assert_int_equal(d->n_quant, 0);
    assert_int_equal(d->n_groups, 0);
    assert_int_equal(d->n_groups_same, 1);
    assert_int_equal(d->n_ignore_a, 743);
    assert_int_equal(d->n_ignore_b, 1);
    assert_int_equal(d->n_ignore_only_a, 742);
    assert_int_equal(d->n_ignore_only_b, 0);
    assert_string_equal(d->ignore_only_a[0], "model.layers.0.mlp.down_proj"); /* natural order */
    assert_false(d->ignore_expanded);
    assert_false(d->tensors_compared);
    assert_false(d->identical);
    qn_diff_free(d);
    /* a side against itself */
    if (qn_diff_paths(a, a, &d, &err)) fail_msg("%s", err.msg);
    assert_true(d->identical);
    qn_diff_free(d);
    free(a);
    free(b);
}

static void test_diff_checkpoints(void **state) {
    (void)state;
    qn_diff *d;
    qn_error err = {0};
    if (qn_diff_paths(g_w4, g_asym, &d, &err)) fail_msg("%s", err.msg);
    assert_int_equal(d->n_config, 0);
    assert_int_equal(d->n_groups, 1);
    assert_int_equal(d->groups[0].status, QN_DIFF_CHANGED);
    assert_int_equal(d->groups[0].n_fields, 2);
    assert_string_equal(d->groups[0].fields[0].key, "weights.symmetric");
    assert_string_equal(d->groups[0].fields[0].a, "true");
    assert_string_equal(d->groups[0].fields[0].b, "false");
    assert_string_equal(d->groups[0].fields[1].key, "weights.zp_dtype");
    assert_string_equal(d->groups[0].fields[1].a, "null");
    assert_string_equal(d->groups[0].fields[1].b, "\"torch.int8\"");
    assert_true(d->tensors_compared);
    assert_true(d->ignore_expanded);
    assert_int_equal(d->n_ignored_only_a + d->n_ignored_only_b, 0);
    assert_int_equal(d->n_tensors_only_a, 0);
    assert_int_equal(d->n_tensors_only_b, 35);  /* a weight_zero_point per quantized Linear */
    assert_int_equal(d->n_tensors_changed, 0);
    qn_diff_free(d);

    if (qn_diff_paths(g_w4, g_fp8, &d, &err)) fail_msg("%s", err.msg);
    assert_int_equal(d->n_groups, 1);
    /* W4A16 -> FP8_DYNAMIC: weight_packed + weight_shape only in A, weight only in B, scales reshaped
     * where in > 128 (o_proj [128, 4] -> [128, 1], down_proj [128, 2] -> [128, 1]) */
    assert_int_equal(d->n_tensors_only_a, 70);
    assert_int_equal(d->n_tensors_only_b, 35);
    assert_int_equal(d->n_tensors_changed, 10);
    assert_non_null(strstr(d->tensors_changed[0].name, "weight_scale"));
    assert_int_equal(d->n_quant, 1);
    assert_string_equal(d->quant[0].key, "quantization_config.format");
    qn_diff_free(d);

    /* ignore lists compared as module sets when both have tensors: the regex matches lm_head only */
    char *cj = edited_config(g_w4, "ignore", "[\"re:^lm_.*\"]");
    edit none = {0};
    char *x = rewrite(g_w4, "regex_ignore", &none);
    char p[1100];
    path_join(p, sizeof p, x, "config.json");
    assert_int_equal(tu_write_file(p, cj, strlen(cj)), 0);
    free(cj);
    if (qn_diff_paths(g_w4, x, &d, &err)) fail_msg("%s", err.msg);
    assert_int_equal(d->n_ignore_only_a, 1);
    assert_int_equal(d->n_ignore_only_b, 1);
    assert_true(d->ignore_expanded);
    assert_int_equal(d->n_ignored_only_a, 0);
    assert_int_equal(d->n_ignored_only_b, 0);
    assert_int_equal(d->n_tensors_only_a + d->n_tensors_only_b + d->n_tensors_changed, 0);
    qn_diff_free(d);
    free(x);

    /* 10000 and 10000.0 are equal; a nested key is flattened */
    x = config_only("num_a", "{\"architectures\": [\"LlamaForCausalLM\"], \"rope_theta\": 10000, "
                             "\"custom\": {\"factor\": 8.0, \"kind\": \"llama3\"}}");
    char *y = config_only("num_b", "{\"architectures\": [\"LlamaForCausalLM\"], \"rope_theta\": 10000.0, "
                                   "\"custom\": {\"factor\": 8, \"kind\": \"yarn\"}, \"extra\": [1, 2]}");
    if (qn_diff_paths(x, y, &d, &err)) fail_msg("%s", err.msg);
    assert_int_equal(d->n_config, 2);
    assert_string_equal(d->config[0].key, "custom.kind");
    assert_string_equal(d->config[0].a, "\"llama3\"");
    assert_string_equal(d->config[0].b, "\"yarn\"");
    assert_string_equal(d->config[1].key, "extra");
    assert_null(d->config[1].a);
    assert_string_equal(d->config[1].b, "[1, 2]");
    qn_diff_free(d);
    free(x);
    free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_w4a16),
        cmocka_unit_test(test_clean_asym_fp8),
        cmocka_unit_test(test_plain_and_config_only),
        cmocka_unit_test(test_missing_scale),
        cmocka_unit_test(test_missing_packed),
        cmocka_unit_test(test_wrong_shape_dtype),
        cmocka_unit_test(test_symmetric_zero_point),
        cmocka_unit_test(test_actorder_and_sparsity),
        cmocka_unit_test(test_fused_split_and_ignore),
        cmocka_unit_test(test_unmatched_and_stored_plain),
        cmocka_unit_test(test_kv_and_malformed),
        cmocka_unit_test(test_moe_config_only),
        cmocka_unit_test(test_vllm_table),
        cmocka_unit_test(test_diff_glm),
        cmocka_unit_test(test_diff_checkpoints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
