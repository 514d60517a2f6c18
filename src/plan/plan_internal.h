/* plan: the model described as a list of tensor kinds (one entry per distinct tensor of a layer
 * type, with how many instances the model holds), from which counts, sizes and per-GPU shares are
 * all derived. */
#ifndef QN_PLAN_INTERNAL_H
#define QN_PLAN_INTERNAL_H

#include "quench/plan.h"

typedef enum {
    PT_COL,    /* column-parallel: output rows split over TP */
    PT_ROW,    /* row-parallel: input columns split over TP */
    PT_KV,     /* k/v projections: split by KV heads, replicated when TP > KV heads */
    PT_REPL,   /* replicated on every GPU (norms, routers, MLA down-projections, row biases) */
    PT_VOCAB,  /* vocab-parallel embedding / lm_head */
    PT_EXPERT, /* routed experts: TP splits Im, EP splits experts; 1/TP either way */
} pt_shard;

typedef enum { PT_LAYER_GLOBAL, PT_LAYER_ALL, PT_LAYER_DENSE, PT_LAYER_MOE } pt_layer;

typedef struct {
    qn_plan_comp comp;
    const char *name;    /* "self_attn.q_proj.weight" */
    int64_t rows, cols;  /* [out, in]; cols 0 for 1-D tensors */
    int64_t per_layer;   /* instances per layer (E for routed experts) */
    int64_t count;       /* instances in the model (MTP excluded) */
    int64_t active;      /* instances touched per token */
    int linear;          /* a Linear weight inside a decoder layer: quantization target */
    int fp32;            /* stored in float32 regardless of the model dtype */
    pt_shard shard;
    pt_layer layer;
    int mtp;             /* belongs to the MTP layer(s) only (count = MTP layers) */
} pt_entry;

#define PT_MAX 64

/* Fills e[0..*n); the configuration must have been validated by qn_config_load_*. */
qn_status pt_build(const qn_model_config *cfg, pt_entry *e, int *n, qn_error *err);

static inline int64_t pt_numel(const pt_entry *e) { return e->rows * (e->cols ? e->cols : 1); }

int pt_dtype_bytes(const qn_model_config *cfg);

#endif
