/* quench — safetensors reading (mmap, validated) and streaming writing (optionally sharded).
 *
 * Reading:
 *   qn_st_set *set; qn_error err = {0};
 *   if (qn_st_set_open_dir("model_dir", &set, &err)) { ... err.msg ... }   // single or sharded
 *   const qn_tensor *t = qn_st_set_find(set, "model.norm.weight");
 *   float *f = malloc(qn_tensor_numel(t) * 4); qn_tensor_to_f32(t, f, &err);
 *   qn_st_set_free(set);
 *
 * Validation follows the reference safetensors library: header length <= 100 MB, UTF-8 JSON
 * object, no duplicate names, known dtype, non-negative shape, byte span = dtype size x
 * product(shape), spans inside the file, contiguous from offset 0 and non-overlapping.
 * Every violation fails with an error naming the file and the tensor.
 *
 * Writing (streaming: tensor bytes go to disk as they are added, the header is written at the end):
 *   qn_st_writer *w;
 *   qn_st_writer_open("out_dir", 5ull << 30, &w, &err);   // 0 = never shard
 *   qn_st_writer_add(w, "a.weight", QN_DT_BF16, 2, shape, data, nbytes, &err);
 *   qn_st_writer_finish(w, &err);   // writes model.safetensors, or model-0000i-of-0000N.safetensors
 *                                   // + model.safetensors.index.json; frees w
 */
#ifndef QUENCH_SAFETENSORS_H
#define QUENCH_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "quench/status.h"

typedef enum {
    QN_DT_F64, QN_DT_F32, QN_DT_F16, QN_DT_BF16,
    QN_DT_I64, QN_DT_I32, QN_DT_I16, QN_DT_I8,
    QN_DT_U64, QN_DT_U32, QN_DT_U16, QN_DT_U8,
    QN_DT_BOOL, QN_DT_F8_E4M3, QN_DT_F8_E5M2, QN_DT_F8_E8M0,
    QN_DT_COUNT
} qn_dtype;

#define QN_MAX_DIMS 8

size_t qn_dtype_size(qn_dtype dt);              /* bytes per element */
const char *qn_dtype_name(qn_dtype dt);         /* "F32", "BF16", "F8_E4M3", ... (safetensors spelling) */
int qn_dtype_from_name(const char *name, qn_dtype *out); /* 0 on success, -1 if unknown */
int qn_dtype_is_float(qn_dtype dt);

typedef struct {
    const char *name;         /* owned by the set/file */
    qn_dtype dtype;
    int ndim;
    int64_t shape[QN_MAX_DIMS];
    const void *data;         /* points into the mmap, read-only */
    size_t nbytes;
    const char *file;         /* path of the file it lives in */
} qn_tensor;

int64_t qn_tensor_numel(const qn_tensor *t);

/* Converts a floating tensor (F64, F32, F16, BF16, F8_E4M3, F8_E5M2) or an integer one to fp32.
 * `out` must hold qn_tensor_numel(t) floats. */
qn_status qn_tensor_to_f32(const qn_tensor *t, float *out, qn_error *err);

/* Scalar conversions (exact; NaN/Inf preserved; f32->bf16/f16 round to nearest even). */
float qn_bf16_to_f32(uint16_t h);
uint16_t qn_f32_to_bf16(float f);
float qn_f16_to_f32(uint16_t h);
uint16_t qn_f32_to_f16(float f);
float qn_fp8e4m3_to_f32(uint8_t v);
float qn_fp8e5m2_to_f32(uint8_t v);
/* f32 -> fp8 (round to nearest even, as torch's casts; not saturating): E4M3 (float8_e4m3fn) has
 * no infinities, so NaN, +-inf and |x| > 464 give sign|0x7F (NaN); E5M2 overflows to +-inf. */
uint8_t qn_f32_to_fp8e4m3(float f);
uint8_t qn_f32_to_fp8e5m2(float f);
float qn_fp8e8m0_to_f32(uint8_t v);   /* 2^(v-127); 0xFF = NaN */

/* One .safetensors file. */
typedef struct qn_st_file qn_st_file;
qn_status qn_st_file_open(const char *path, qn_st_file **out, qn_error *err);
void qn_st_file_free(qn_st_file *f);
size_t qn_st_file_count(const qn_st_file *f);
const qn_tensor *qn_st_file_get(const qn_st_file *f, size_t i);   /* in header (offset) order */
const qn_tensor *qn_st_file_find(const qn_st_file *f, const char *name);
/* `__metadata__` entries (string -> string); NULL if absent. */
const char *qn_st_file_metadata(const qn_st_file *f, const char *key);
size_t qn_st_file_metadata_count(const qn_st_file *f);
/* i-th `__metadata__` entry in header order; NULL if i is out of range. */
const char *qn_st_file_metadata_key(const qn_st_file *f, size_t i);
const char *qn_st_file_metadata_value(const qn_st_file *f, size_t i);
const char *qn_st_file_path(const qn_st_file *f);

/* All tensors of a model folder: model.safetensors, or the shards listed by
 * model.safetensors.index.json (every weight_map file must exist and hold exactly the tensors the
 * map assigns to it), or else every *.safetensors file in the folder. */
typedef struct qn_st_set qn_st_set;
qn_status qn_st_set_open_dir(const char *dir, qn_st_set **out, qn_error *err);
void qn_st_set_free(qn_st_set *s);
size_t qn_st_set_count(const qn_st_set *s);
const qn_tensor *qn_st_set_get(const qn_st_set *s, size_t i);      /* files in order, then offset */
const qn_tensor *qn_st_set_find(const qn_st_set *s, const char *name);
/* Drops the pages of tensor t (one of this set's) from the process's resident set once its bytes
 * have been used: they stay in the page cache and a later read faults them back in. Keeps peak RSS
 * near what is in use when a model is streamed one layer or expert at a time. */
void qn_st_set_release(const qn_st_set *s, const qn_tensor *t);
size_t qn_st_set_file_count(const qn_st_set *s);
const qn_st_file *qn_st_set_file(const qn_st_set *s, size_t i);
uint64_t qn_st_set_total_bytes(const qn_st_set *s);               /* sum of tensor bytes */

/* Streaming writer. Each shard is laid out as safetensors.torch.save_file lays it out (byte-identical
 * for the same tensors and a single metadata key): tensors in the header and in the data ordered by
 * dtype descending in the Rust `Dtype` enum order (U64, I64, F64, F32, U32, I32, BF16, F16, U16,
 * I16, F8_E8M0, F8_E4M3, F8_E5M2, I8, U8, BOOL), then by name (byte-wise); `__metadata__` first
 * (keys in the order first set); compact JSON padded with spaces to a multiple of 8. Tensor bytes
 * are streamed to a hidden per-shard data file and copied into place in that order at finish. */
typedef struct qn_st_writer qn_st_writer;
/* `max_shard_bytes` = 0: one file model.safetensors. Otherwise a new shard starts when adding a
 * tensor would push the current shard's tensor bytes past the limit (a tensor larger than the
 * limit gets a shard of its own), as transformers' save_pretrained(max_shard_size=) does. */
qn_status qn_st_writer_open(const char *dir, uint64_t max_shard_bytes, qn_st_writer **out, qn_error *err);
qn_status qn_st_writer_set_metadata(qn_st_writer *w, const char *key, const char *value, qn_error *err);
/* Optional: also write "total_parameters" in the index's metadata (transformers 5.x does; 4.x
 * writes only "total_size"). */
void qn_st_writer_set_total_parameters(qn_st_writer *w, uint64_t n);
qn_status qn_st_writer_add(qn_st_writer *w, const char *name, qn_dtype dt, int ndim,
                           const int64_t *shape, const void *data, size_t nbytes, qn_error *err);
/* Finalizes every shard (header padded with spaces to a multiple of 8, as the reference writer
 * does) and the index when sharded; frees `w` whether it succeeds or not. */
qn_status qn_st_writer_finish(qn_st_writer *w, qn_error *err);
/* Discards everything written so far (removes the partial files) and frees `w`. */
void qn_st_writer_abort(qn_st_writer *w);

#endif
