/* Tests for src/io: safetensors reading (bundled models, crafted bad files), streaming writing
 * (round trips, byte-identity with the reference writer's shards, sharding + index), and the dtype
 * conversions (hand-computed values). */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "quench/safetensors.h"

/* ---- helpers ---- */

static char *join2(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static float f32_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t u32_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (!strstr((hay), (needle))) {                                                            \
            print_error("'%s' does not contain '%s'\n", (hay), (needle));                          \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Writes 8-byte length + header (padded with spaces to `hlen` if hlen > strlen) + `ndata` data
 * bytes (0, 1, 2, ...). The length field says `declared` if non-zero. */
static void craft(const char *path, const char *header, uint64_t declared, size_t ndata) {
    size_t h = strlen(header);
    size_t pad = (8 - h % 8) % 8;
    size_t n = 8 + h + pad + ndata;
    unsigned char *b = malloc(n);
    uint64_t len = declared ? declared : h + pad;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(len >> (8 * i));
    memcpy(b + 8, header, h);
    memset(b + 8 + h, ' ', pad);
    for (size_t i = 0; i < ndata; i++) b[8 + h + pad + i] = (unsigned char)i;
    assert_int_equal(tu_write_file(path, b, n), 0);
    free(b);
}

/* Opening `path` must fail with `code`; the message must name the file and each of `needles`. */
static void expect_bad(const char *path, qn_status code, const char *n1, const char *n2) {
    qn_st_file *f = (qn_st_file *)0x1;
    qn_error err = {0};
    qn_status st = qn_st_file_open(path, &f, &err);
    if (st == QN_OK) {
        print_error("%s opened but should have failed\n", path);
        qn_st_file_free(f);
        fail();
    }
    assert_null(f);
    if (getenv("QN_TEST_VERBOSE")) print_message("%s\n", err.msg);
    assert_int_equal(err.code, st);
    if (code != QN_OK) assert_int_equal(st, code);
    assert_contains(err.msg, path);
    if (n1) assert_contains(err.msg, n1);
    if (n2) assert_contains(err.msg, n2);
}

static int count_entries(const char *dir, int hidden_only) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (hidden_only && de->d_name[0] != '.') continue;
        n++;
    }
    closedir(d);
    return n;
}

static int file_exists(const char *dir, const char *name) {
    char *p = join2(dir, name);
    struct stat sb;
    int r = stat(p, &sb) == 0;
    free(p);
    return r;
}

/* ---- reading the bundled models ---- */

static void test_read_stories260k(void **state) {
    (void)state;
    char *dir = tu_shared("models/stories260K");
    qn_st_set *s = NULL;
    qn_error err = {0};
    assert_int_equal(qn_st_set_open_dir(dir, &s, &err), QN_OK);
    assert_int_equal(qn_st_set_count(s), 47);
    assert_int_equal(qn_st_set_file_count(s), 1);
    const qn_st_file *f = qn_st_set_file(s, 0);
    assert_string_equal(qn_st_file_metadata(f, "format"), "pt");
    assert_null(qn_st_file_metadata(f, "nope"));
    assert_int_equal(qn_st_file_metadata_count(f), 1);
    /* header length 4848 (file 1,044,984 bytes): data = 1,040,128 bytes */
    assert_int_equal(qn_st_set_total_bytes(s), 1044984 - 8 - 4848);

    const qn_tensor *t = qn_st_set_find(s, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, QN_DT_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 512);
    assert_int_equal(t->shape[1], 64);
    assert_int_equal(t->nbytes, 512 * 64 * 4);
    assert_int_equal(qn_tensor_numel(t), 512 * 64);
    char *mpath = join2(dir, "model.safetensors");
    assert_string_equal(t->file, mpath);
    free(mpath);
    float *v = malloc(512 * 64 * sizeof *v);
    assert_int_equal(qn_tensor_to_f32(t, v, &err), QN_OK);
    /* values read from the file independently (python struct) */
    assert_true(v[0] == -0.29474878311157227f);
    assert_true(v[1] == 0.5618956089019775f);
    assert_true(v[100] == 0.2752683162689209f);
    free(v);

    t = qn_st_set_find(s, "model.layers.4.mlp.down_proj.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 64);
    assert_int_equal(t->shape[1], 172);
    t = qn_st_set_find(s, "model.layers.0.self_attn.k_proj.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 32);
    assert_null(qn_st_set_find(s, "lm_head.weight")); /* tied */
    assert_null(qn_st_set_find(s, ""));

    /* offset order, contiguous, find agrees with get */
    const unsigned char *prev_end = NULL;
    for (size_t i = 0; i < qn_st_set_count(s); i++) {
        const qn_tensor *a = qn_st_set_get(s, i);
        assert_ptr_equal(a, qn_st_set_find(s, a->name));
        assert_ptr_equal(a, qn_st_file_get(f, i));
        assert_ptr_equal(a, qn_st_file_find(f, a->name));
        if (prev_end) assert_ptr_equal(a->data, prev_end);
        prev_end = (const unsigned char *)a->data + a->nbytes;
    }
    assert_null(qn_st_set_get(s, 47));
    qn_st_set_free(s);
    free(dir);
}

static void test_read_sharded_glm4(void **state) {
    (void)state;
    char *dir = tu_shared("models/tiny-random-glm4-moe");
    qn_st_set *s = NULL;
    qn_error err = {0};
    assert_int_equal(qn_st_set_open_dir(dir, &s, &err), QN_OK);
    assert_int_equal(qn_st_set_file_count(s), 2);
    assert_int_equal(qn_st_set_count(s), 135);
    assert_int_equal(qn_st_set_total_bytes(s), 862816); /* index metadata.total_size */
    assert_int_equal(qn_st_file_count(qn_st_set_file(s, 0)) + qn_st_file_count(qn_st_set_file(s, 1)), 135);
    assert_null(qn_st_set_find(s, "seq0.logits")); /* reference_tensors.safetensors is not a shard */

    /* every weight_map entry is found, in the file the map names */
    char *ipath = join2(dir, "model.safetensors.index.json");
    char *js = tu_read_file(ipath, NULL);
    assert_non_null(js);
    cJSON *root = cJSON_Parse(js);
    const cJSON *wm = cJSON_GetObjectItem(root, "weight_map");
    int n = 0;
    for (const cJSON *c = wm->child; c; c = c->next, n++) {
        const qn_tensor *t = qn_st_set_find(s, c->string);
        assert_non_null(t);
        const char *base = strrchr(t->file, '/') + 1;
        assert_string_equal(base, c->valuestring);
    }
    assert_int_equal(n, 135);
    cJSON_Delete(root);
    free(js);
    free(ipath);

    const qn_tensor *t = qn_st_set_find(s, "lm_head.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, QN_DT_BF16);
    assert_int_equal(t->shape[0], 512);
    assert_int_equal(t->shape[1], 64);
    assert_non_null(strstr(t->file, "model-00002-of-00002.safetensors"));
    t = qn_st_set_find(s, "model.layers.1.mlp.gate.e_score_correction_bias");
    assert_int_equal(t->dtype, QN_DT_F32);
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], 8);
    t = qn_st_set_find(s, "model.embed_tokens.weight");
    float *v = malloc(512 * 64 * sizeof *v);
    assert_int_equal(qn_tensor_to_f32(t, v, &err), QN_OK);
    assert_true(v[0] == -0.042236328125f); /* bf16 values read independently */
    assert_true(v[1] == 0.0272216796875f);
    assert_true(v[100] == -0.017822265625f);
    free(v);
    /* set order: files in order, then offsets */
    assert_ptr_equal(qn_st_set_get(s, 0), qn_st_file_get(qn_st_set_file(s, 0), 0));
    assert_ptr_equal(qn_st_set_get(s, qn_st_file_count(qn_st_set_file(s, 0))),
                     qn_st_file_get(qn_st_set_file(s, 1), 0));
    qn_st_set_free(s);
    free(dir);
}

/* The glm4 shards were written by safetensors.torch.save_file: re-writing their tensors (added in
 * reverse order) must give the identical bytes. */
static void test_writer_matches_reference_bytes(void **state) {
    (void)state;
    const char *shards[] = {"models/tiny-random-glm4-moe/model-00001-of-00002.safetensors",
                            "models/tiny-random-glm4-moe/model-00002-of-00002.safetensors"};
    for (int k = 0; k < 2; k++) {
        char *src = tu_shared(shards[k]);
        qn_st_file *f;
        qn_error err = {0};
        assert_int_equal(qn_st_file_open(src, &f, &err), QN_OK);
        char *dir = tu_tmpdir();
        qn_st_writer *w;
        assert_int_equal(qn_st_writer_open(dir, 0, &w, &err), QN_OK);
        assert_int_equal(qn_st_writer_set_metadata(w, "format", "pt", &err), QN_OK);
        for (size_t i = qn_st_file_count(f); i-- > 0;) {
            const qn_tensor *t = qn_st_file_get(f, i);
            assert_int_equal(qn_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data,
                                              t->nbytes, &err), QN_OK);
        }
        assert_int_equal(qn_st_writer_finish(w, &err), QN_OK);
        char *out = join2(dir, "model.safetensors");
        size_t la, lb;
        char *a = tu_read_file(src, &la), *b = tu_read_file(out, &lb);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        assert_int_equal(count_entries(dir, 0), 1);
        free(a);
        free(b);
        free(out);
        tu_rmrf(dir);
        free(dir);
        qn_st_file_free(f);
        free(src);
    }
}

/* ---- writing ---- */

typedef struct {
    const char *name;
    qn_dtype dt;
    int ndim;
    int64_t shape[QN_MAX_DIMS];
} spec;

static const spec ALL[] = {
    {"f64", QN_DT_F64, 2, {3, 5}},       {"f32", QN_DT_F32, 1, {7}},
    {"f16", QN_DT_F16, 3, {2, 3, 3}},    {"bf16", QN_DT_BF16, 2, {5, 3}},
    {"i64", QN_DT_I64, 1, {3}},          {"i32", QN_DT_I32, 2, {1, 9}},
    {"i16", QN_DT_I16, 1, {5}},          {"i8", QN_DT_I8, 1, {11}},
    {"u64", QN_DT_U64, 0, {0}},          {"u32", QN_DT_U32, 1, {2}},
    {"u16", QN_DT_U16, 1, {3}},          {"u8", QN_DT_U8, 2, {3, 3}},
    {"bool", QN_DT_BOOL, 1, {5}},        {"fp8.e4m3", QN_DT_F8_E4M3, 2, {4, 4}},
    {"fp8.e5m2", QN_DT_F8_E5M2, 1, {3}}, {"fp8.e8m0", QN_DT_F8_E8M0, 1, {6}},
    {"empty", QN_DT_F32, 2, {0, 3}},     {"w\"eird\\ name\n\xc3\xa9", QN_DT_BF16, 8, {1, 2, 1, 1, 1, 1, 1, 3}},
};
#define NALL (sizeof ALL / sizeof ALL[0])

static unsigned char *make_data(size_t i, size_t *nbytes) {
    uint64_t numel = 1;
    for (int k = 0; k < ALL[i].ndim; k++) numel *= (uint64_t)ALL[i].shape[k];
    *nbytes = (size_t)numel * qn_dtype_size(ALL[i].dt);
    unsigned char *d = malloc(*nbytes + 1);
    uint32_t x = 2463534242u + (uint32_t)i * 7919u;
    for (size_t k = 0; k < *nbytes; k++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        d[k] = (unsigned char)x;
    }
    return d;
}

static void check_set_has_all(const qn_st_set *s, size_t *nfound) {
    size_t found = 0;
    for (size_t i = 0; i < NALL; i++) {
        const qn_tensor *t = qn_st_set_find(s, ALL[i].name);
        assert_non_null(t);
        size_t nb;
        unsigned char *d = make_data(i, &nb);
        assert_int_equal(t->dtype, ALL[i].dt);
        assert_int_equal(t->ndim, ALL[i].ndim);
        for (int k = 0; k < t->ndim; k++) assert_int_equal(t->shape[k], ALL[i].shape[k]);
        assert_int_equal(t->nbytes, nb);
        if (nb) assert_memory_equal(t->data, d, nb);
        /* the reference layout keeps every tensor aligned to its element size */
        assert_int_equal((uintptr_t)t->data % qn_dtype_size(t->dtype), 0);
        free(d);
        found++;
    }
    *nfound = found;
}

static void test_roundtrip_single_all_dtypes(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    char *sub = join2(dir, "a/b"); /* created by open */
    qn_st_writer *w;
    qn_error err = {0};
    assert_int_equal(qn_st_writer_open(sub, 0, &w, &err), QN_OK);
    assert_int_equal(qn_st_writer_set_metadata(w, "format", "pt", &err), QN_OK);
    assert_int_equal(qn_st_writer_set_metadata(w, "note", "x", &err), QN_OK);
    assert_int_equal(qn_st_writer_set_metadata(w, "note", "quote \" back \\ nl \n \xe2\x82\xac", &err), QN_OK);
    for (size_t i = 0; i < NALL; i++) {
        size_t nb;
        unsigned char *d = make_data(i, &nb);
        assert_int_equal(qn_st_writer_add(w, ALL[i].name, ALL[i].dt, ALL[i].ndim, ALL[i].shape, d,
                                          nb, &err), QN_OK);
        free(d);
    }
    assert_int_equal(count_entries(sub, 1), 1); /* one hidden data file while streaming */
    assert_int_equal(qn_st_writer_finish(w, &err), QN_OK);
    assert_int_equal(count_entries(sub, 0), 1);
    assert_true(file_exists(sub, "model.safetensors"));
    assert_false(file_exists(sub, "model.safetensors.index.json"));

    qn_st_set *s;
    assert_int_equal(qn_st_set_open_dir(sub, &s, &err), QN_OK);
    assert_int_equal(qn_st_set_count(s), NALL);
    size_t found;
    check_set_has_all(s, &found);
    assert_int_equal(found, NALL);
    const qn_st_file *f = qn_st_set_file(s, 0);
    assert_string_equal(qn_st_file_metadata(f, "format"), "pt");
    assert_string_equal(qn_st_file_metadata(f, "note"), "quote \" back \\ nl \n \xe2\x82\xac");
    assert_int_equal(qn_st_file_metadata_count(f), 2);
    /* header order = reference order: dtype (enum) descending, then name */
    static const char *order[] = {"u64", "i64", "f64", "empty", "f32", "u32", "i32", "bf16",
                                  "w\"eird\\ name\n\xc3\xa9", "f16", "u16", "i16", "fp8.e8m0",
                                  "fp8.e4m3", "fp8.e5m2", "i8", "u8", "bool"};
    for (size_t i = 0; i < NALL; i++) assert_string_equal(qn_st_file_get(f, i)->name, order[i]);
    qn_st_set_free(s);

    /* raw bytes: padding and the header's first bytes */
    char *path = join2(sub, "model.safetensors");
    size_t len;
    unsigned char *b = (unsigned char *)tu_read_file(path, &len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
    assert_int_equal((8 + n) % 8, 0);
    const char *head = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"quote \\\" back \\\\ nl \\n "
                       "\xe2\x82\xac\"},\"u64\":{\"dtype\":\"U64\",\"shape\":[],\"data_offsets\":[0,8]},"
                       "\"i64\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[8,32]},";
    assert_memory_equal(b + 8, head, strlen(head));
    size_t jl = (size_t)n;
    while (jl && b[8 + jl - 1] == ' ') jl--;
    assert_int_equal(b[8 + jl - 1], '}');
    assert_true(n - jl < 8);
    free(b);
    free(path);
    free(sub);
    tu_rmrf(dir);
    free(dir);
}

static void test_padding_to_8(void **state) {
    (void)state;
    /* names of every length mod 8 */
    for (int L = 1; L <= 9; L++) {
        char *dir = tu_tmpdir();
        qn_st_writer *w;
        qn_error err = {0};
        assert_int_equal(qn_st_writer_open(dir, 0, &w, &err), QN_OK);
        char name[16];
        memset(name, 'x', (size_t)L);
        name[L] = 0;
        int64_t shape[1] = {1};
        float one = 1.0f;
        assert_int_equal(qn_st_writer_add(w, name, QN_DT_F32, 1, shape, &one, 4, &err), QN_OK);
        assert_int_equal(qn_st_writer_finish(w, &err), QN_OK);
        char *path = join2(dir, "model.safetensors");
        size_t len;
        unsigned char *b = (unsigned char *)tu_read_file(path, &len);
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = (n << 8) | b[i];
        /* {"x..":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} = 53 + L bytes */
        assert_int_equal(n, (53 + (uint64_t)L + 7) / 8 * 8);
        assert_int_equal(len, 8 + n + 4);
        for (uint64_t i = 53 + (uint64_t)L; i < n; i++) assert_int_equal(b[8 + i], ' ');
        free(b);
        free(path);
        tu_rmrf(dir);
        free(dir);
    }
    /* no tensors, no metadata: {} + 6 spaces, as the reference's test_empty */
    char *dir = tu_tmpdir();
    qn_st_writer *w;
    qn_error err = {0};
    assert_int_equal(qn_st_writer_open(dir, 0, &w, &err), QN_OK);
    assert_int_equal(qn_st_writer_finish(w, &err), QN_OK);
    char *path = join2(dir, "model.safetensors");
    size_t len;
    char *b = tu_read_file(path, &len);
    assert_int_equal(len, 16);
    assert_memory_equal(b, "\x08\0\0\0\0\0\0\0{}      ", 16);
    free(b);
    free(path);
    qn_st_file *f;
    path = join2(dir, "model.safetensors");
    assert_int_equal(qn_st_file_open(path, &f, &err), QN_OK);
    assert_int_equal(qn_st_file_count(f), 0);
    qn_st_file_free(f);
    free(path);
    tu_rmrf(dir);
    free(dir);
}

static void test_sharded_write(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    qn_st_writer *w;
    qn_error err = {0};
    assert_int_equal(qn_st_writer_open(dir, 1000, &w, &err), QN_OK);
    assert_int_equal(qn_st_writer_set_metadata(w, "format", "pt", &err), QN_OK);
    /* bytes: t0 400, t1 400 -> shard 1; t2 400 (1200 > 1000) opens shard 3; big 2000 (> limit) gets
     * shard 2 of its own right away; t3 600 (400 + 600 = 1000 fits in shard 3); "té4" 8 (1008 > 1000)
     * -> shard 4. As huggingface_hub's split_state_dict_into_shards_factory. */
    const char *names[] = {"t0", "t1", "t2", "big", "t3", "t\xc3\xa9\x34"};
    int64_t sizes[] = {100, 100, 100, 500, 150, 2};
    unsigned char *bufs[6];
    for (int i = 0; i < 6; i++) {
        bufs[i] = malloc((size_t)sizes[i] * 4);
        for (int k = 0; k < sizes[i] * 4; k++) bufs[i][k] = (unsigned char)(k * 31 + i);
        assert_int_equal(qn_st_writer_add(w, names[i], QN_DT_F32, 1, &sizes[i], bufs[i],
                                          (size_t)sizes[i] * 4, &err), QN_OK);
    }
    qn_st_writer_set_total_parameters(w, 952);
    assert_int_equal(qn_st_writer_finish(w, &err), QN_OK);
    assert_false(file_exists(dir, "model.safetensors"));
    assert_int_equal(count_entries(dir, 1), 0); /* no temporaries left */
    assert_int_equal(count_entries(dir, 0), 5);
    char *ipath = join2(dir, "model.safetensors.index.json");
    char *idx = tu_read_file(ipath, NULL);
    assert_non_null(idx);
    const char *expect =
        "{\n"
        "  \"metadata\": {\n"
        "    \"total_parameters\": 952,\n"
        "    \"total_size\": 3808\n"
        "  },\n"
        "  \"weight_map\": {\n"
        "    \"big\": \"model-00002-of-00004.safetensors\",\n"
        "    \"t0\": \"model-00001-of-00004.safetensors\",\n"
        "    \"t1\": \"model-00001-of-00004.safetensors\",\n"
        "    \"t2\": \"model-00003-of-00004.safetensors\",\n"
        "    \"t3\": \"model-00003-of-00004.safetensors\",\n"
        "    \"t\\u00e94\": \"model-00004-of-00004.safetensors\"\n"
        "  }\n"
        "}\n";
    assert_string_equal(idx, expect);
    free(idx);
    free(ipath);

    qn_st_set *s;
    assert_int_equal(qn_st_set_open_dir(dir, &s, &err), QN_OK);
    assert_int_equal(qn_st_set_file_count(s), 4);
    assert_int_equal(qn_st_set_count(s), 6);
    assert_int_equal(qn_st_set_total_bytes(s), 3808);
    for (int i = 0; i < 6; i++) {
        const qn_tensor *t = qn_st_set_find(s, names[i]);
        assert_non_null(t);
        assert_int_equal(t->nbytes, (size_t)sizes[i] * 4);
        assert_memory_equal(t->data, bufs[i], t->nbytes);
        free(bufs[i]);
    }
    assert_string_equal(qn_st_file_metadata(qn_st_set_file(s, 3), "format"), "pt");
    qn_st_set_free(s);
    tu_rmrf(dir);
    free(dir);

    /* everything fits: one plain model.safetensors, no index */
    dir = tu_tmpdir();
    assert_int_equal(qn_st_writer_open(dir, 1u << 20, &w, &err), QN_OK);
    int64_t sh[1] = {4};
    float v[4] = {1, 2, 3, 4};
    assert_int_equal(qn_st_writer_add(w, "a", QN_DT_F32, 1, sh, v, 16, &err), QN_OK);
    assert_int_equal(qn_st_writer_add(w, "b", QN_DT_F32, 1, sh, v, 16, &err), QN_OK);
    assert_int_equal(qn_st_writer_finish(w, &err), QN_OK);
    assert_true(file_exists(dir, "model.safetensors"));
    assert_int_equal(count_entries(dir, 0), 1);
    tu_rmrf(dir);
    free(dir);
}

static void test_writer_validation_and_abort(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    qn_st_writer *w;
    qn_error err = {0};
    assert_int_equal(qn_st_writer_open(dir, 0, &w, &err), QN_OK);
    int64_t sh[9] = {2, 2, 1, 1, 1, 1, 1, 1, 1};
    float v[4] = {1, 2, 3, 4};
    assert_int_equal(qn_st_writer_add(w, "ok", QN_DT_F32, 2, sh, v, 16, &err), QN_OK);
    assert_int_equal(qn_st_writer_add(w, "ok", QN_DT_F32, 2, sh, v, 16, &err), QN_ERR_INVALID_ARG);
    assert_contains(err.msg, "'ok'");
    assert_contains(err.msg, dir);
    assert_int_equal(qn_st_writer_add(w, "size", QN_DT_F32, 2, sh, v, 12, &err), QN_ERR_INVALID_ARG);
    assert_contains(err.msg, "'size'");
    assert_int_equal(qn_st_writer_add(w, "ndim", QN_DT_F32, 9, sh, v, 16, &err), QN_ERR_INVALID_ARG);
    assert_contains(err.msg, "'ndim'");
    int64_t neg[2] = {-2, -2};
    assert_int_equal(qn_st_writer_add(w, "neg", QN_DT_F32, 2, neg, v, 16, &err), QN_ERR_INVALID_ARG);
    assert_contains(err.msg, "'neg'");
    assert_int_equal(qn_st_writer_add(w, "__metadata__", QN_DT_F32, 2, sh, v, 16, &err),
                     QN_ERR_INVALID_ARG);
    assert_int_equal(qn_st_writer_add(w, "bad\xff", QN_DT_F32, 2, sh, v, 16, &err), QN_ERR_INVALID_ARG);
    assert_int_equal(qn_st_writer_add(w, "dt", QN_DT_COUNT, 2, sh, v, 16, &err), QN_ERR_INVALID_ARG);
    assert_int_equal(qn_st_writer_add(w, "ok2", QN_DT_BF16, 2, sh, v, 8, &err), QN_OK);
    assert_true(count_entries(dir, 0) > 0);
    qn_st_writer_abort(w);
    assert_int_equal(count_entries(dir, 0), 0);
    tu_rmrf(dir);
    free(dir);
}

/* ---- crafted bad files ---- */

#define F32A "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"

static void test_bad_files(void **state) {
    (void)state;
    char *dir = tu_tmpdir();
    char *p = join2(dir, "bad.safetensors");
    qn_error err = {0};
    qn_st_file *f;

    /* sanity: the crafting helper makes good files */
    craft(p, "{\"a\":" F32A "}", 0, 4);
    assert_int_equal(qn_st_file_open(p, &f, &err), QN_OK);
    qn_st_file_free(f);

    craft(p, "{}", 100000001, 0); /* header too large */
    expect_bad(p, QN_ERR_FORMAT, "100000001", NULL);
    craft(p, "{}", 1000, 10); /* header length beyond the file */
    expect_bad(p, QN_ERR_FORMAT, "1000", NULL);
    assert_int_equal(tu_write_file(p, "\x08\0\0", 3), 0); /* shorter than the length field */
    expect_bad(p, QN_ERR_FORMAT, NULL, NULL);
    craft(p, "{\"a\":{\"dtype\":\"F32\",", 0, 0); /* invalid JSON */
    expect_bad(p, QN_ERR_FORMAT, "JSON", NULL);
    craft(p, "{\"a\":" F32A "} x", 0, 4); /* trailing garbage after the JSON */
    expect_bad(p, QN_ERR_FORMAT, "JSON", NULL);
    craft(p, "[1,2]", 0, 0); /* not an object */
    expect_bad(p, QN_ERR_FORMAT, NULL, NULL);
    craft(p, "{\"a\xff\":" F32A "}", 0, 4); /* invalid UTF-8 */
    expect_bad(p, QN_ERR_FORMAT, "UTF-8", NULL);
    craft(p, "{\"a\xc0\xaf\":" F32A "}", 0, 4); /* overlong encoding */
    expect_bad(p, QN_ERR_FORMAT, "UTF-8", NULL);
    craft(p, "{\"a\xed\xa0\x80\":" F32A "}", 0, 4); /* surrogate */
    expect_bad(p, QN_ERR_FORMAT, "UTF-8", NULL);
    craft(p, "{\"dup\":" F32A ",\"dup\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8);
    expect_bad(p, QN_ERR_FORMAT, "'dup'", "twice");
    craft(p, "{\"w.q\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4);
    expect_bad(p, QN_ERR_FORMAT, "'w.q'", "F33");
    craft(p, "{\"neg\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 0, 4);
    expect_bad(p, QN_ERR_FORMAT, "'neg'", "shape");
    craft(p, "{\"frac\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 0, 4);
    expect_bad(p, QN_ERR_FORMAT, "'frac'", "shape");
    craft(p, "{\"big\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 0, 4);
    expect_bad(p, QN_ERR_FORMAT, "'big'", "overflow");
    craft(p, "{\"nd\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 0, 4);
    expect_bad(p, QN_OK, "'nd'", "dimensions");
    craft(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,10]}}", 0, 10);
    expect_bad(p, QN_ERR_FORMAT, "tensor 'a': data_offsets [0, 10] but F32 [3] needs 12 bytes", NULL);
    craft(p, "{\"out\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", 0, 8);
    expect_bad(p, QN_ERR_FORMAT, "'out'", "outside");
    craft(p, "{\"rev\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 0, 4);
    expect_bad(p, QN_ERR_FORMAT, "'rev'", NULL);
    craft(p, "{\"a\":" F32A ",\"gap\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 0, 12);
    expect_bad(p, QN_ERR_FORMAT, "'gap'", "gap");
    craft(p, "{\"late\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8);
    expect_bad(p, QN_ERR_FORMAT, "'late'", "gap");
    craft(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"ov\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8);
    expect_bad(p, QN_ERR_FORMAT, "'ov'", "overlap tensor 'a'");
    craft(p, "{\"a\":" F32A "}", 0, 6); /* trailing bytes after the last tensor */
    expect_bad(p, QN_ERR_FORMAT, "trailing", NULL);
    craft(p, "{\"__metadata__\":{\"format\":1},\"a\":" F32A "}", 0, 4);
    expect_bad(p, QN_ERR_FORMAT, "'format'", "not a string");
    craft(p, "{\"__metadata__\":[\"pt\"],\"a\":" F32A "}", 0, 4);
    expect_bad(p, QN_ERR_FORMAT, "__metadata__", NULL);
    craft(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, 4);
    expect_bad(p, QN_ERR_FORMAT, "'a'", "data_offsets");
    craft(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", 0, 4);
    expect_bad(p, QN_ERR_FORMAT, "'a'", "data_offsets");
    craft(p, "{\"a\":[1]}", 0, 0);
    expect_bad(p, QN_ERR_FORMAT, "'a'", NULL);

    char *missing = join2(dir, "none.safetensors");
    expect_bad(missing, QN_ERR_NOT_FOUND, NULL, NULL);
    free(missing);
    free(p);
    tu_rmrf(dir);
    free(dir);
}

static void test_truncated_stories(void **state) {
    (void)state;
    char *src = tu_shared("models/stories260K/model.safetensors");
    size_t len;
    char *b = tu_read_file(src, &len);
    assert_non_null(b);
    char *dir = tu_tmpdir();
    char *p = join2(dir, "model.safetensors");
    size_t cuts[] = {0, 4, 8, 100, 8 + 4848 - 1, 8 + 4848, 8 + 4848 + 1000, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_int_equal(tu_write_file(p, b, cuts[i]), 0);
        expect_bad(p, QN_ERR_FORMAT, NULL, NULL);
        qn_st_set *s;
        qn_error err = {0};
        assert_int_not_equal(qn_st_set_open_dir(dir, &s, &err), QN_OK);
        assert_contains(err.msg, p);
    }
    /* the last tensor is the one that runs past the end */
    assert_int_equal(tu_write_file(p, b, len - 1), 0);
    expect_bad(p, QN_ERR_FORMAT, "'model.norm.weight'", NULL);
    free(p);
    tu_rmrf(dir);
    free(dir);
    free(b);
    free(src);
}

/* ---- folders ---- */

static void write_one(const char *dir, const char *file, const char *tname) {
    char *p = join2(dir, file);
    char hdr[256];
    snprintf(hdr, sizeof hdr, "{\"%s\":" F32A "}", tname);
    craft(p, hdr, 0, 4);
    free(p);
}

static void test_folders(void **state) {
    (void)state;
    qn_error err = {0};
    qn_st_set *s;
    char *dir = tu_tmpdir();

    assert_int_equal(qn_st_set_open_dir(dir, &s, &err), QN_ERR_NOT_FOUND);
    assert_contains(err.msg, dir);
    char *nodir = join2(dir, "nope");
    assert_int_equal(qn_st_set_open_dir(nodir, &s, &err), QN_ERR_NOT_FOUND);
    assert_contains(err.msg, nodir);
    free(nodir);

    /* scan: every *.safetensors, sorted by name */
    write_one(dir, "b.safetensors", "tb");
    write_one(dir, "a.safetensors", "ta");
    write_one(dir, "notes.txt", "x");
    assert_int_equal(qn_st_set_open_dir(dir, &s, &err), QN_OK);
    assert_int_equal(qn_st_set_file_count(s), 2);
    assert_string_equal(qn_st_set_get(s, 0)->name, "ta");
    assert_string_equal(qn_st_set_get(s, 1)->name, "tb");
    qn_st_set_free(s);
    /* duplicate across files */
    write_one(dir, "c.safetensors", "ta");
    assert_int_equal(qn_st_set_open_dir(dir, &s, &err), QN_ERR_FORMAT);
    assert_contains(err.msg, "'ta'");
    assert_contains(err.msg, "c.safetensors");
    assert_contains(err.msg, "a.safetensors");

    /* model.safetensors wins over the others */
    write_one(dir, "model.safetensors", "tm");
    assert_int_equal(qn_st_set_open_dir(dir, &s, &err), QN_OK);
    assert_int_equal(qn_st_set_count(s), 1);
    assert_non_null(qn_st_set_find(s, "tm"));
    qn_st_set_free(s);

    /* the index wins over model.safetensors */
    char *ip = join2(dir, "model.safetensors.index.json");
#define IDX(body) "{\"metadata\":{\"total_size\":8},\"weight_map\":{" body "}}"
    const char *good = IDX("\"ta\":\"a.safetensors\",\"tb\":\"b.safetensors\"");
    assert_int_equal(tu_write_file(ip, good, strlen(good)), 0);
    assert_int_equal(qn_st_set_open_dir(dir, &s, &err), QN_OK);
    assert_int_equal(qn_st_set_count(s), 2);
    assert_null(qn_st_set_find(s, "tm"));
    qn_st_set_free(s);

    char *pair = join2(dir, "pair.safetensors");
    craft(pair, "{\"p1\":" F32A ",\"p2\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8);
    free(pair);
    struct {
        const char *json;
        const char *n1, *n2;
    } bad[] = {
        {IDX("\"ta\":\"a.safetensors\",\"tb\":\"a.safetensors\""), "'tb'", NULL}, /* wrong file */
        {IDX("\"ta\":\"b.safetensors\",\"tb\":\"a.safetensors\""), "'ta'", "maps it to 'b.safetensors'"},
        {IDX("\"p1\":\"pair.safetensors\""), "'p2'", "not listed"},              /* unlisted tensor */
        {IDX("\"ta\":\"a.safetensors\",\"tb\":\"b.safetensors\",\"tz\":\"b.safetensors\""), "'tz'", NULL},
        {IDX("\"ta\":\"a.safetensors\",\"tb\":\"zz.safetensors\""), "zz.safetensors", NULL},
        {IDX("\"ta\":\"../a.safetensors\""), "../a.safetensors", NULL},
        {IDX("\"ta\":\"sub/a.safetensors\""), "sub/a.safetensors", NULL},
        {IDX("\"ta\":\"a.safetensors\",\"ta\":\"a.safetensors\""), "'ta'", "twice"},
        {IDX("\"ta\":1"), "'ta'", NULL},
        {"{\"weight_map\":[]}", "weight_map", NULL},
        {"{\"weight_map\":", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tu_write_file(ip, bad[i].json, strlen(bad[i].json)), 0);
        s = (qn_st_set *)0x1;
        qn_status st = qn_st_set_open_dir(dir, &s, &err);
        if (st == QN_OK) {
            print_error("index %zu accepted: %s\n", i, bad[i].json);
            fail();
        }
        assert_null(s);
        if (getenv("QN_TEST_VERBOSE")) print_message("%s\n", err.msg);
        assert_contains(err.msg, dir);
        if (bad[i].n1) assert_contains(err.msg, bad[i].n1);
        if (bad[i].n2) assert_contains(err.msg, bad[i].n2);
    }
    free(ip);
    tu_rmrf(dir);
    free(dir);
}

/* ---- conversions ---- */

static void test_scalar_conversions(void **state) {
    (void)state;
    /* bf16 */
    assert_true(qn_bf16_to_f32(0x3F80) == 1.0f);
    assert_true(qn_bf16_to_f32(0xC000) == -2.0f);
    assert_true(qn_bf16_to_f32(0x0001) == ldexpf(1.0f, -133)); /* smallest subnormal */
    assert_true(isinf(qn_bf16_to_f32(0x7F80)));
    assert_true(isnan(qn_bf16_to_f32(0x7FC1)));
    assert_int_equal(qn_f32_to_bf16(1.0f), 0x3F80);
    assert_int_equal(qn_f32_to_bf16(f32_of(0x3F808000)), 0x3F80); /* tie, even stays */
    assert_int_equal(qn_f32_to_bf16(f32_of(0x3F818000)), 0x3F82); /* tie, odd rounds up */
    assert_int_equal(qn_f32_to_bf16(f32_of(0x3F808001)), 0x3F81); /* above the tie */
    assert_int_equal(qn_f32_to_bf16(f32_of(0x7F7FFFFF)), 0x7F80); /* FLT_MAX -> inf */
    assert_int_equal(qn_f32_to_bf16(-INFINITY), 0xFF80);
    assert_true(isnan(qn_bf16_to_f32(qn_f32_to_bf16(NAN))));
    assert_int_equal(qn_f32_to_bf16(f32_of(0x7F800001)), 0x7FC0); /* NaN that would round to inf */
    assert_int_equal(qn_f32_to_bf16(-0.0f), 0x8000);

    /* f16 */
    assert_true(qn_f16_to_f32(0x3C00) == 1.0f);
    assert_true(qn_f16_to_f32(0xC000) == -2.0f);
    assert_true(qn_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(qn_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(qn_f16_to_f32(0x03FF) == ldexpf(1023.0f, -24));
    assert_true(qn_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
    assert_true(qn_f16_to_f32(0x3555) == 0x155 * ldexpf(1.0f, -12) + 0.25f /* 0.333251953125 */);
    assert_true(isinf(qn_f16_to_f32(0x7C00)) && qn_f16_to_f32(0xFC00) < 0);
    assert_true(isnan(qn_f16_to_f32(0x7E00)));
    assert_true(signbit(qn_f16_to_f32(0x8000)) && qn_f16_to_f32(0x8000) == 0.0f);
    assert_int_equal(qn_f32_to_f16(1.0f), 0x3C00);
    assert_int_equal(qn_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3C00);      /* tie -> even */
    assert_int_equal(qn_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3C02);  /* tie -> even (up) */
    assert_int_equal(qn_f32_to_f16(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)), 0x3C01);
    assert_int_equal(qn_f32_to_f16(65504.0f), 0x7BFF);
    assert_int_equal(qn_f32_to_f16(65519.996f), 0x7BFF);
    assert_int_equal(qn_f32_to_f16(65520.0f), 0x7C00); /* tie with odd 0x7BFF -> inf */
    assert_int_equal(qn_f32_to_f16(-1e10f), 0xFC00);
    assert_int_equal(qn_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(qn_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);               /* tie -> 0 */
    assert_int_equal(qn_f32_to_f16(ldexpf(1.0f, -25) * 1.0001f), 0x0001);
    assert_int_equal(qn_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);               /* 1.5 ulp -> 2 */
    assert_int_equal(qn_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);            /* to the first normal */
    assert_int_equal(qn_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(qn_f32_to_f16(ldexpf(1.0f, -140)), 0x0000);
    assert_int_equal(qn_f32_to_f16(NAN) & 0x7FFF, 0x7E00);
    /* every finite f16 round-trips */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00) continue;
        assert_int_equal(qn_f32_to_f16(qn_f16_to_f32((uint16_t)h)), h);
    }
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7F80) == 0x7F80) continue;
        assert_int_equal(qn_f32_to_bf16(qn_bf16_to_f32((uint16_t)h)), h);
    }

    /* fp8 e4m3fn */
    assert_true(qn_fp8e4m3_to_f32(0x38) == 1.0f);
    assert_true(qn_fp8e4m3_to_f32(0x7E) == 448.0f);
    assert_true(qn_fp8e4m3_to_f32(0xFE) == -448.0f);
    assert_true(isnan(qn_fp8e4m3_to_f32(0x7F)));
    assert_true(isnan(qn_fp8e4m3_to_f32(0xFF)));
    assert_true(qn_fp8e4m3_to_f32(0x78) == 256.0f); /* e=15, m=0 is a normal number (no inf) */
    assert_true(qn_fp8e4m3_to_f32(0x01) == ldexpf(1.0f, -9));
    assert_true(qn_fp8e4m3_to_f32(0x07) == ldexpf(7.0f, -9));
    assert_true(qn_fp8e4m3_to_f32(0x08) == ldexpf(1.0f, -6));
    assert_true(qn_fp8e4m3_to_f32(0x3C) == 1.5f);
    assert_true(qn_fp8e4m3_to_f32(0x80) == 0.0f && signbit(qn_fp8e4m3_to_f32(0x80)));
    assert_int_equal(qn_f32_to_fp8e4m3(448.0f), 0x7E);
    assert_int_equal(qn_f32_to_fp8e4m3(464.0f), 0x7E); /* tie between 448 and 480: even */
    assert_int_equal(qn_f32_to_fp8e4m3(464.5f), 0x7F); /* past it: NaN (not saturating) */
    assert_int_equal(qn_f32_to_fp8e4m3(-1000.0f), 0xFF);
    assert_int_equal(qn_f32_to_fp8e4m3(INFINITY), 0x7F);
    assert_int_equal(qn_f32_to_fp8e4m3(1.0625f), 0x38);  /* tie 1.0/1.125 -> even 1.0 */
    assert_int_equal(qn_f32_to_fp8e4m3(1.1875f), 0x3A);  /* tie 1.125/1.25 -> even 1.25 */
    assert_int_equal(qn_f32_to_fp8e4m3(ldexpf(1.0f, -10)), 0x00); /* half the smallest: tie -> 0 */
    assert_int_equal(qn_f32_to_fp8e4m3(ldexpf(3.0f, -10)), 0x02); /* 1.5 units -> 2 */
    assert_int_equal(qn_f32_to_fp8e4m3(ldexpf(15.0f, -10)), 0x08); /* 7.5 units -> 2^-6 */
    assert_int_equal(qn_f32_to_fp8e4m3(NAN) & 0x7F, 0x7F);
    for (int v = 0; v < 256; v++) {
        if ((v & 0x7F) == 0x7F) continue;
        assert_int_equal(qn_f32_to_fp8e4m3(qn_fp8e4m3_to_f32((uint8_t)v)), v);
    }

    /* fp8 e5m2 */
    assert_true(qn_fp8e5m2_to_f32(0x3C) == 1.0f);
    assert_true(qn_fp8e5m2_to_f32(0x7B) == 57344.0f);
    assert_true(isinf(qn_fp8e5m2_to_f32(0x7C)));
    assert_true(isnan(qn_fp8e5m2_to_f32(0x7D)));
    assert_true(qn_fp8e5m2_to_f32(0x01) == ldexpf(1.0f, -16));
    assert_true(qn_fp8e5m2_to_f32(0xC0) == -2.0f);
    assert_int_equal(qn_f32_to_fp8e5m2(57344.0f), 0x7B);
    assert_int_equal(qn_f32_to_fp8e5m2(61440.0f), 0x7C); /* tie with odd max -> inf */
    assert_int_equal(qn_f32_to_fp8e5m2(61439.0f), 0x7B);
    assert_int_equal(qn_f32_to_fp8e5m2(1.125f), 0x3C);   /* tie -> even */
    assert_int_equal(qn_f32_to_fp8e5m2(1.375f), 0x3E);   /* tie -> even (up) */
    for (int v = 0; v < 256; v++) {
        if ((v & 0x7C) == 0x7C) continue;
        assert_int_equal(qn_f32_to_fp8e5m2(qn_fp8e5m2_to_f32((uint8_t)v)), v);
    }

    /* e8m0 */
    assert_true(qn_fp8e8m0_to_f32(127) == 1.0f);
    assert_true(qn_fp8e8m0_to_f32(0) == ldexpf(1.0f, -127));
    assert_true(qn_fp8e8m0_to_f32(254) == ldexpf(1.0f, 127));
    assert_true(isnan(qn_fp8e8m0_to_f32(255)));
    (void)u32_of;
}

static void test_dtype_table(void **state) {
    (void)state;
    for (int i = 0; i < QN_DT_COUNT; i++) {
        qn_dtype d;
        assert_int_equal(qn_dtype_from_name(qn_dtype_name((qn_dtype)i), &d), 0);
        assert_int_equal(d, i);
    }
    qn_dtype d;
    assert_int_equal(qn_dtype_from_name("F8_E4M3FN", &d), -1);
    assert_int_equal(qn_dtype_from_name("f32", &d), -1);
    assert_int_equal(qn_dtype_size(QN_DT_BF16), 2);
    assert_int_equal(qn_dtype_size(QN_DT_I64), 8);
    assert_int_equal(qn_dtype_size(QN_DT_F8_E4M3), 1);
    assert_int_equal(qn_dtype_size(QN_DT_BOOL), 1);
    assert_string_equal(qn_dtype_name(QN_DT_F8_E4M3), "F8_E4M3");
    assert_true(qn_dtype_is_float(QN_DT_BF16));
    assert_false(qn_dtype_is_float(QN_DT_I32));
}

static void test_tensor_to_f32(void **state) {
    (void)state;
    qn_error err = {0};
    float out[8];
    struct {
        qn_dtype dt;
        const void *data;
        float expect[4];
    } cases[] = {
        {QN_DT_F64, (const double[]){1.5, -2.0, 1e300, 0.1}, {1.5f, -2.0f, INFINITY, 0.1f}},
        {QN_DT_F32, (const float[]){1.5f, -2.0f, 3.0f, 0.1f}, {1.5f, -2.0f, 3.0f, 0.1f}},
        {QN_DT_F16, (const uint16_t[]){0x3C00, 0xC000, 0x7BFF, 0x0001}, {1, -2, 65504, 5.9604644775390625e-08f}},
        {QN_DT_BF16, (const uint16_t[]){0x3F80, 0xC000, 0x4049, 0x0000}, {1, -2, 3.140625f, 0}},
        {QN_DT_I64, (const int64_t[]){-3, 7, 1ll << 40, 0}, {-3, 7, 1099511627776.0f, 0}},
        {QN_DT_I32, (const int32_t[]){-3, 7, 123456, 0}, {-3, 7, 123456, 0}},
        {QN_DT_I16, (const int16_t[]){-3, 7, -32768, 0}, {-3, 7, -32768, 0}},
        {QN_DT_I8, (const int8_t[]){-3, 7, -128, 127}, {-3, 7, -128, 127}},
        {QN_DT_U64, (const uint64_t[]){3, 7, 0, 1}, {3, 7, 0, 1}},
        {QN_DT_U32, (const uint32_t[]){3, 7, 4000000000u, 1}, {3, 7, 4e9f, 1}},
        {QN_DT_U16, (const uint16_t[]){3, 7, 65535, 1}, {3, 7, 65535, 1}},
        {QN_DT_U8, (const uint8_t[]){3, 7, 255, 1}, {3, 7, 255, 1}},
        {QN_DT_BOOL, (const uint8_t[]){0, 1, 1, 0}, {0, 1, 1, 0}},
        {QN_DT_F8_E4M3, (const uint8_t[]){0x38, 0x7E, 0x01, 0xB8}, {1, 448, 0.001953125f, -1}},
        {QN_DT_F8_E5M2, (const uint8_t[]){0x3C, 0x7B, 0x01, 0xBC}, {1, 57344, 1.52587890625e-05f, -1}},
        {QN_DT_F8_E8M0, (const uint8_t[]){127, 128, 126, 0}, {1, 2, 0.5f, 5.877471754111438e-39f}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qn_tensor t = {.name = "t", .dtype = cases[i].dt, .ndim = 2, .shape = {2, 2},
                       .data = cases[i].data, .nbytes = 4 * qn_dtype_size(cases[i].dt)};
        assert_int_equal(qn_tensor_to_f32(&t, out, &err), QN_OK);
        for (int k = 0; k < 4; k++) {
            if (out[k] != cases[i].expect[k]) {
                print_error("dtype %s element %d: %g != %g\n", qn_dtype_name(cases[i].dt), k,
                            (double)out[k], (double)cases[i].expect[k]);
                fail();
            }
        }
    }
    /* size mismatch is an error naming the tensor */
    qn_tensor t = {.name = "w.x", .file = "/f.safetensors", .dtype = QN_DT_F32, .ndim = 1,
                   .shape = {3}, .data = out, .nbytes = 8};
    assert_int_not_equal(qn_tensor_to_f32(&t, out, &err), QN_OK);
    assert_contains(err.msg, "'w.x'");
    assert_contains(err.msg, "/f.safetensors");

    /* large (parallel) bf16 and fp8 conversions agree with the scalar ones */
    size_t n = 1 << 20;
    uint16_t *h = malloc(n * 2);
    uint8_t *q = malloc(n);
    float *f = malloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        h[i] = (uint16_t)(i * 2654435761u >> 7);
        q[i] = (uint8_t)(i * 40503u >> 3);
    }
    qn_tensor tb = {.name = "big", .dtype = QN_DT_BF16, .ndim = 2, .shape = {1024, 1024}, .data = h, .nbytes = n * 2};
    assert_int_equal(qn_tensor_to_f32(&tb, f, &err), QN_OK);
    for (size_t i = 0; i < n; i++) assert_int_equal(u32_of(f[i]), (uint32_t)h[i] << 16);
    qn_tensor tq = {.name = "big8", .dtype = QN_DT_F8_E4M3, .ndim = 1, .shape = {(int64_t)n}, .data = q, .nbytes = n};
    assert_int_equal(qn_tensor_to_f32(&tq, f, &err), QN_OK);
    for (size_t i = 0; i < n; i++) {
        float e = qn_fp8e4m3_to_f32(q[i]);
        assert_true(isnan(e) ? isnan(f[i]) : u32_of(f[i]) == u32_of(e));
    }
    free(h);
    free(q);
    free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_scalar_conversions),
        cmocka_unit_test(test_tensor_to_f32),
        cmocka_unit_test(test_read_stories260k),
        cmocka_unit_test(test_read_sharded_glm4),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_truncated_stories),
        cmocka_unit_test(test_folders),
        cmocka_unit_test(test_writer_matches_reference_bytes),
        cmocka_unit_test(test_roundtrip_single_all_dtypes),
        cmocka_unit_test(test_padding_to_8),
        cmocka_unit_test(test_sharded_write),
        cmocka_unit_test(test_writer_validation_and_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
