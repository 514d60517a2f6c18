/* quench export — internal helpers shared by the writer and the reader. */
#ifndef QN_EXPORT_INTERNAL_H
#define QN_EXPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "quench/export.h"

/* Longest module name the exporter handles (tensor names are module + ".weight_zero_point"). */
#define QNX_MAX_MODULE_NAME 480

/* Compression formats quench writes / reads. */
typedef enum {
    QNX_FMT_DENSE,
    QNX_FMT_NAIVE,      /* naive-quantized = int-quantized = float-quantized (same bytes) */
    QNX_FMT_PACK,       /* pack-quantized */
    QNX_FMT_NVFP4,      /* nvfp4-pack-quantized */
    QNX_FMT_OTHER       /* known to CT, not handled here (marlin-24, mxfp4/8, ...) */
} qnx_format;

qnx_format qnx_format_kind(const char *name);
int qnx_format_known(const char *name);

/* Key of the fused group (q/k/v, gate/up, MLA q_a + kv_a) a module belongs to: writes
 * "<parent>#<kind>" into buf and returns 1; 0 when the module is not a fused shard. */
int qnx_fused_key(const char *module, char *buf, size_t n);

/* Splits "model.layers.N.rest": returns N and sets *rest, or -1 when not a decoder-layer name. */
int64_t qnx_layer_of(const char *name, const char **rest);

/* 1 when `rest` (the part after "model.layers.N.") names a Linear the exporter quantizes:
 * self_attn.*proj, mlp.X_proj, mlp.gate / shared_expert_gate, mlp.experts.E.X_proj,
 * mlp.shared_expert(s).X_proj. */
int qnx_is_linear_in_layer(const char *rest);

/* Natural order of tensor / module names for streaming: pre-layer tensors, layers by number
 * (module rank inside a layer), then model.norm / lm_head. */
int qnx_name_cmp(const char *a, const char *b, qn_arch arch);
/* Stable sort of idx[0..n) by names[idx[i]] with qnx_name_cmp; 0 ok, -1 out of memory. */
int qnx_sort_names(size_t *idx, size_t n, const char *const *names, qn_arch arch);

/* Pack layout of the given CT version for b-bit values. */
qn_pack_layout qnx_pack_layout(int ct_version);

/* "0.13.0" -> QN_CT_VERSION(0, 13); -1 when unparsable. */
int qnx_parse_version(const char *s);

/* The model dtype used for arithmetic given a weight dtype: BF16/F16/F32 as is, else -1. */
int qnx_arith_dtype(qn_dtype dt, qn_dtype *out);

#endif
