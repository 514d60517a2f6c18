/* quench plan: compressed size, tensor-parallel validity, weights and KV cache per GPU, longest
 * context, compression-run memory. Everything derives from config.json (plan_params.c) and the
 * built-in scheme layouts (plan_scheme.c); nothing is printed here.
 *
 * Modelling choices (ours; the numbers are estimates where vLLM measures at run time):
 *  - Sharding as vLLM does it: q/o, gate/up/down, experts, embed/lm_head split 1/TP; norms, routers
 *    and the MLA down-projections (q_a_proj, kv_a_proj_with_mqa) replicated; k/v split by KV heads
 *    and replicated when TP > KV heads (each GPU then holds one KV head). Vocab padding ignored.
 *  - TP validity: heads % TP, KV heads % TP (or TP % KV heads when replicating), dense
 *    intermediate % TP, shared-expert width % TP, and for routed experts either
 *    moe_intermediate % TP (experts split by TP) or experts % TP (expert parallel, an even split).
 *  - Usable memory = total × gpu_memory_utilization (0.9). Reserve for activations and runtime
 *    (when not given): 1 GiB (CUDA context, cuBLAS/NCCL workspaces, CUDA graphs) + one forward step
 *    of max_batched_tokens (8192) tokens × dtype × (4·H + (nh/TP + 2·kv_heads_per_gpu)·hd + 3·F/TP)
 *    where F = max(dense intermediate, k·Im + shared width): residual/norm buffers, qkv, gate_up and
 *    activation outputs. MLA uses nh/TP·(nope+rope+v) + kv_lora + rope for the attention term.
 *  - KV bytes per token per GPU: 2 · layers · kv_heads_per_gpu · head_dim · kv_bytes (GQA), or for
 *    MLA (kv_lora_rank + qk_rope_head_dim) · layers · kv_bytes, the same on every GPU. The KV budget
 *    is rounded down to vLLM's 16-token blocks. MTP layers are not counted.
 *  - Compression run (quench, CPU RAM): the largest decoder layer in fp32, the Hessians XᵀX (d_in²
 *    fp32) of that layer's Linears with one Hessian per distinct input (q/k/v share one, gate/up
 *    share one; every routed expert has its own gate/up and down Hessians since it sees a different
 *    token subset; routers are not quantized), and the calibration activations in and out of the
 *    layer, samples × seq_len × H × 4 bytes × 2. "_seq" figures process routed experts one at a
 *    time (one expert's Hessians live at once).
 *  - llm-compressor (its sequential pipeline as documented): the whole model in CPU RAM in the model
 *    dtype plus the cached layer inputs (samples × seq_len × H × dtype, offloaded to CPU); on the
 *    GPU one decoder layer in the model dtype plus all its Hessians (fp32).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "plan_internal.h"

#define GIB (1024LL * 1024LL * 1024LL)

void qn_plan_options_default(qn_plan_options *o) {
    memset(o, 0, sizeof *o);
    o->scheme = *qn_plan_scheme_get(QN_PSCHEME_NONE);
    o->batch = 1;
    o->kv_bytes = 2;
    o->gpu_util = 0.9;
    o->reserve_bytes = -1;
    o->max_batched_tokens = 8192;
    o->calib_samples = 512;
    o->calib_seq_len = 2048;
}

/* appends "; text" (or "text" when empty) to buf */
static void append(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t n, const char *fmt, ...) {
    size_t l = strlen(buf);
    if (l + 3 >= n) return;
    if (l) {
        memcpy(buf + l, "; ", 3);
        l += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + l, n - l, fmt, ap);
    va_end(ap);
}

static int64_t n_moe_layers(const qn_model_config *c) {
    int64_t n = 0;
    for (int64_t i = 0; i < c->num_hidden_layers; i++) n += qn_config_layer_is_moe(c, i);
    return n;
}

static int tp_check(const qn_model_config *c, int tp, char *reason, size_t rn, char *notes,
                    size_t nn, int *ep_valid) {
    if (reason && rn) reason[0] = 0;
    if (ep_valid) *ep_valid = 0;
    char dummy[8];
    if (!reason || !rn) {
        reason = dummy;
        rn = sizeof dummy;
        reason[0] = 0;
    }
    if (tp < 1) {
        snprintf(reason, rn, "tensor-parallel size must be at least 1");
        return 0;
    }
    const int64_t nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    if (nh % tp)
        append(reason, rn, "%lld attention heads are not divisible by %d", (long long)nh, tp);
    if (c->arch != QN_ARCH_DEEPSEEK_V3) {
        if (nkv >= tp && nkv % tp)
            append(reason, rn, "%lld KV heads are not divisible by %d", (long long)nkv, tp);
        else if (nkv < tp && tp % nkv)
            append(reason, rn, "TP %d is not a multiple of the %lld KV heads (needed to replicate them)",
                   tp, (long long)nkv);
        else if (nkv < tp && notes)
            append(notes, nn, "KV heads replicated: %lld KV heads < TP %d, each GPU holds 1",
                   (long long)nkv, tp);
    }
    const int64_t nmoe = n_moe_layers(c), ndense = c->num_hidden_layers - nmoe;
    if (ndense > 0 && c->intermediate_size % tp)
        append(reason, rn, "intermediate_size %lld is not divisible by %d",
               (long long)c->intermediate_size, tp);
    if (nmoe > 0) {
        const int64_t Im = c->moe_intermediate_size, E = c->num_experts;
        int ep = E % tp == 0;
        if (ep_valid) *ep_valid = ep;
        if (Im % tp) {
            if (ep) {
                if (notes)
                    append(notes, nn, "moe_intermediate_size %lld is not divisible by %d: needs expert "
                           "parallel (vLLM --enable-expert-parallel, %lld experts per GPU)",
                           (long long)Im, tp, (long long)(E / tp));
            } else {
                append(reason, rn, "moe_intermediate_size %lld is not divisible by %d and %lld experts "
                       "do not split evenly over %d GPUs (expert parallel)", (long long)Im, tp,
                       (long long)E, tp);
            }
        } else if (!ep && notes) {
            append(notes, nn, "expert parallel unavailable: %lld experts %% %d != 0", (long long)E, tp);
        }
        if (c->n_shared_experts > 0 && (c->n_shared_experts * Im) % tp)
            append(reason, rn, "shared-expert width %lld is not divisible by %d",
                   (long long)(c->n_shared_experts * Im), tp);
    }
    return reason[0] == 0;
}

int qn_plan_tp_check(const qn_model_config *cfg, int tp, char *reason, size_t reason_len) {
    if (!cfg) return 0;
    return tp_check(cfg, tp, reason, reason_len, NULL, 0, NULL);
}

static int64_t kv_heads_per_gpu(const qn_model_config *c, int tp) {
    const int64_t nkv = c->num_key_value_heads;
    return nkv >= tp ? (nkv + tp - 1) / tp : 1;
}

int64_t qn_plan_kv_bytes_per_token(const qn_model_config *c, int tp, int kv_bytes) {
    if (!c || tp < 1) return 0;
    const int64_t L = c->num_hidden_layers;
    if (c->arch == QN_ARCH_DEEPSEEK_V3) return (c->kv_lora_rank + c->qk_rope_head_dim) * L * kv_bytes;
    return 2 * L * kv_heads_per_gpu(c, tp) * c->head_dim * kv_bytes;
}

static void bytes_add(qn_plan_bytes *d, const qn_plan_bytes *s, int64_t times) {
    d->values += s->values * times;
    d->scales += s->scales * times;
    d->zero_points += s->zero_points * times;
    d->g_idx += s->g_idx * times;
    d->act_scales += s->act_scales * times;
    d->shape_meta += s->shape_meta * times;
    d->sparse_meta += s->sparse_meta * times;
    d->kept += s->kept * times;
    d->total += s->total * times;
}

/* Sizes of every (non-MTP) entry under the scheme; ebytes[i] = bytes of entry i (all instances). */
static void compute_size(const qn_model_config *c, const pt_entry *e, int n, const qn_plan_options *o,
                         int dt, int sparse_bitmask, qn_plan_size *sz, int64_t *ebytes) {
    memset(sz, 0, sizeof *sz);
    sz->sparse_bitmask = sparse_bitmask;
    const int quant = o->scheme.id != QN_PSCHEME_NONE;
    const int sparse = o->sparsity == QN_SPARSE_24 && sparse_bitmask;
    for (int i = 0; i < n; i++) {
        ebytes[i] = 0;
        if (e[i].mtp) continue;
        const int64_t ne = pt_numel(&e[i]);
        const int eb = e[i].fp32 ? 4 : dt;
        sz->original_bytes += ne * eb * e[i].count;
        qn_plan_bytes one;
        memset(&one, 0, sizeof one);
        if (e[i].linear && (quant || sparse)) {
            const char *why = NULL;
            int act = o->actorder_group && o->scheme.group_size > 0;
            if (qn_plan_linear_bytes(&o->scheme, e[i].rows, e[i].cols, dt, act, sparse, &one, &why)) {
                if (quant) sz->n_linear_quantized += e[i].count;
            } else {
                memset(&one, 0, sizeof one);
                one.kept = one.total = ne * dt;
                sz->n_linear_kept += e[i].count;
                sz->n_kept_comp[e[i].comp] += e[i].count;
                if (sz->n_notes < QN_PLAN_MAX_NOTES) {
                    const char *where = e[i].layer == PT_LAYER_DENSE ? "dense layer"
                                        : e[i].layer == PT_LAYER_MOE ? "MoE layer"
                                                                     : "layer";
                    snprintf(sz->notes[sz->n_notes++], QN_PLAN_NOTE_LEN,
                             "%s [%lld, %lld] x%lld (%s): %s; kept in %s", e[i].name,
                             (long long)e[i].rows, (long long)e[i].cols, (long long)e[i].count, where,
                             why ? why : "does not fit the scheme", dt == 4 ? "fp32" : "16 bit");
                }
            }
        } else {
            one.kept = one.total = ne * eb;
        }
        bytes_add(&sz->comp[e[i].comp], &one, e[i].count);
        bytes_add(&sz->total, &one, e[i].count);
        ebytes[i] = one.total * e[i].count;
    }
    (void)c;
}

static double shard_frac(const qn_model_config *c, const pt_entry *e, int tp) {
    switch (e->shard) {
    case PT_REPL: return 1.0;
    case PT_KV: return (double)kv_heads_per_gpu(c, tp) / (double)c->num_key_value_heads;
    default: return 1.0 / tp;
    }
}

/* vLLM kernel shard constraints for the quantized Linears (spec §6.2), as warnings. vLLM checks
 * the fused layers (qkv_proj, gate_up_proj, experts' w13) on their combined per-GPU output. */
static void quant_shard_notes(const qn_model_config *c, const pt_entry *e, int n,
                              const qn_plan_options *o, int dt, int tp, int ep_valid, char *notes,
                              size_t nn) {
    const qn_plan_scheme *s = &o->scheme;
    int wna16 = s->id == QN_PSCHEME_W4A16 || s->id == QN_PSCHEME_W4A16_ASYM || s->id == QN_PSCHEME_W8A16;
    int block = s->id == QN_PSCHEME_FP8_BLOCK;
    int fp4 = s->id == QN_PSCHEME_NVFP4 || s->id == QN_PSCHEME_NVFP4A16;
    if (!wna16 && !block && !fp4) return;
    char bad[QN_PLAN_NOTE_LEN * 4] = "";
    int expert_bad = 0;
    for (int i = 0; i < n; i++) {
        if (e[i].mtp || !e[i].linear) continue;
        const char *nm = e[i].name;
        if (strstr(nm, "k_proj.") || strstr(nm, "v_proj.") || strstr(nm, "up_proj.")) continue; /* fused */
        qn_plan_bytes tmp;
        if (!qn_plan_linear_bytes(s, e[i].rows, e[i].cols, dt, 0, 0, &tmp, NULL)) continue; /* kept */
        int64_t out = e[i].rows, in = e[i].cols;
        int row = e[i].shard == PT_ROW || (e[i].shard == PT_EXPERT && e[i].rows == c->hidden_size);
        if (e[i].shard != PT_REPL) {
            if (row) in /= tp;
            else out /= tp;
        }
        const char *shown = nm;
        if (strstr(nm, "q_proj.") && e[i].shard == PT_COL && c->arch != QN_ARCH_DEEPSEEK_V3) {
            out = (c->num_attention_heads / tp + 2 * kv_heads_per_gpu(c, tp)) * c->head_dim;
            shown = "self_attn.qkv_proj";
        } else if (strstr(nm, "gate_proj.")) {
            out *= 2;
            shown = e[i].comp == QN_PLAN_ROUTED ? "experts.w13" : e[i].comp == QN_PLAN_SHARED
                                                                     ? "shared_experts.gate_up_proj"
                                                                     : "mlp.gate_up_proj";
        } else if (strstr(nm, "down_proj.")) {
            shown = e[i].comp == QN_PLAN_ROUTED   ? "experts.w2"
                    : e[i].comp == QN_PLAN_SHARED ? "shared_experts.down_proj"
                                                  : "mlp.down_proj";
        }
        int ok = 1;
        if (wna16) ok = out % 64 == 0 && in % 128 == 0 && (s->group_size <= 0 || in % s->group_size == 0);
        if (block) ok = (row || e[i].shard == PT_REPL || out % 128 == 0) && (!row || in % 128 == 0);
        if (fp4) ok = in % 16 == 0;
        if (!ok) {
            char nmbuf[64];
            snprintf(nmbuf, sizeof nmbuf, "%s", shown);
            char *w = strstr(nmbuf, ".weight");
            if (w) *w = 0;
            append(bad, sizeof bad, "%s [%lld, %lld]", nmbuf, (long long)out, (long long)in);
            if (e[i].shard == PT_EXPERT) expert_bad = 1;
        }
    }
    if (bad[0]) {
        const char *need = wna16 ? "Marlin: out % 64, in % 128 per GPU"
                           : block ? "FP8 block: shards % 128"
                                   : "FP4: in % 16 per GPU";
        append(notes, nn, "%s kernel shapes fail (spec 6.2, %s): %s%s", s->name, need, bad,
               expert_bad && ep_valid ? " - expert parallel keeps experts whole" : "");
    }
}

static void fill_tp(const qn_model_config *c, const pt_entry *e, int n, const int64_t *ebytes,
                    const qn_plan_options *o, int dt, int64_t context, int tp, qn_plan_tp *t) {
    memset(t, 0, sizeof *t);
    t->tp = tp;
    t->valid = tp_check(c, tp, t->reason, sizeof t->reason, t->notes, sizeof t->notes, &t->ep_valid);
    if (t->valid) quant_shard_notes(c, e, n, o, dt, tp, t->ep_valid, t->notes, sizeof t->notes);
    t->kv_heads_per_gpu = c->arch == QN_ARCH_DEEPSEEK_V3 ? 0 : kv_heads_per_gpu(c, tp);
    t->kv_replicated = c->arch != QN_ARCH_DEEPSEEK_V3 && c->num_key_value_heads < tp;
    double w = 0;
    for (int i = 0; i < n; i++)
        if (!e[i].mtp) w += (double)ebytes[i] * shard_frac(c, &e[i], tp);
    t->weight_bytes_per_gpu = (int64_t)(w + 0.999);
    t->kv_bytes_per_token = qn_plan_kv_bytes_per_token(c, tp, o->kv_bytes);

    t->n_batch = 0;
    static const int64_t bs[] = {1, 8, 32, 128};
    int have = 0;
    for (int i = 0; i < 4; i++) {
        t->batch[t->n_batch++] = bs[i];
        if (bs[i] == o->batch) have = 1;
    }
    if (!have && o->batch > 0) t->batch[t->n_batch++] = o->batch;

    if (!o->have_gpu) {
        t->kernel_ok = -1;
        return;
    }
    if (o->gpu.cc <= 0) t->kernel_ok = -1; /* --gpu-mem: capability unknown, not checked */
    else t->kernel_ok = o->gpu.cc >= o->scheme.full_speed_cc ? 2 : o->gpu.cc >= o->scheme.min_cc ? 1 : 0;
    t->usable_bytes = (int64_t)((double)o->gpu.mem_bytes * o->gpu_util);
    if (o->reserve_bytes >= 0) {
        t->reserve_bytes = o->reserve_bytes;
    } else {
        const int64_t H = c->hidden_size;
        int64_t F = 0;
        int64_t nmoe = n_moe_layers(c);
        if (nmoe < c->num_hidden_layers) F = c->intermediate_size;
        if (nmoe > 0) {
            int64_t moe_w = c->num_experts_per_tok * c->moe_intermediate_size +
                            c->n_shared_experts * c->moe_intermediate_size;
            if (moe_w > F) F = moe_w;
        }
        int64_t attn;
        if (c->arch == QN_ARCH_DEEPSEEK_V3)
            attn = c->num_attention_heads / tp * (c->qk_nope_head_dim + c->qk_rope_head_dim + c->v_head_dim) +
                   c->kv_lora_rank + c->qk_rope_head_dim;
        else
            attn = (c->num_attention_heads / tp + 2 * kv_heads_per_gpu(c, tp)) * c->head_dim;
        int64_t per_tok = (int64_t)dt * (4 * H + attn + 3 * F / tp);
        t->reserve_bytes = GIB + o->max_batched_tokens * per_tok;
    }
    t->kv_budget_bytes = t->usable_bytes - t->weight_bytes_per_gpu - t->reserve_bytes;
    if (t->valid && t->kv_budget_bytes > 0 && t->kv_bytes_per_token > 0) {
        t->kv_tokens = t->kv_budget_bytes / t->kv_bytes_per_token / 16 * 16;
        for (int b = 0; b < t->n_batch; b++) {
            int64_t ctx = t->kv_tokens / t->batch[b] / 16 * 16;
            if (ctx > c->max_position_embeddings) ctx = c->max_position_embeddings;
            t->max_context[b] = ctx;
        }
    }
    t->fits = t->valid && t->kernel_ok != 0 && t->kv_budget_bytes > 0 &&
              t->kv_tokens >= context * o->batch;
}

static void compress_estimate(const qn_model_config *c, const pt_entry *e, int n,
                              const qn_param_counts *pc, const qn_plan_options *o, int dt,
                              qn_plan_compress *r) {
    memset(r, 0, sizeof *r);
    int64_t all = 0, dense = 0, moe = 0;
    for (int i = 0; i < n; i++) {
        if (e[i].mtp) continue;
        int64_t ne = pt_numel(&e[i]) * e[i].per_layer;
        if (e[i].layer == PT_LAYER_ALL) all += ne;
        else if (e[i].layer == PT_LAYER_DENSE) dense += ne;
        else if (e[i].layer == PT_LAYER_MOE) moe += ne;
    }
    const int64_t nmoe = pc->n_moe_layers, ndense = pc->n_dense_layers;
    int64_t layer = all + (nmoe > 0 && moe > dense ? moe : (ndense > 0 ? dense : moe));
    r->layer_fp32_bytes = layer * 4;

    const int64_t H = c->hidden_size;
    int64_t h_attn;
    if (c->arch == QN_ARCH_DEEPSEEK_V3) {
        int64_t ql = c->q_lora_rank, kvl = c->kv_lora_rank, nh = c->num_attention_heads;
        h_attn = H * H + (ql > 0 ? ql * ql : 0) + kvl * kvl + (nh * c->v_head_dim) * (nh * c->v_head_dim);
    } else {
        int64_t q = c->num_attention_heads * c->head_dim;
        h_attn = H * H + q * q;
    }
    int64_t h_dense = ndense > 0 ? H * H + c->intermediate_size * c->intermediate_size : 0;
    int64_t h_moe = 0, h_moe_seq = 0;
    if (nmoe > 0) {
        const int64_t Im = c->moe_intermediate_size, S = c->n_shared_experts * Im;
        int64_t one = H * H + Im * Im, shared = S > 0 ? H * H + S * S : 0;
        h_moe = c->num_experts * one + shared;
        h_moe_seq = one + shared;
    }
    int64_t hmax = h_dense > h_moe ? h_dense : h_moe;
    int64_t hmax_seq = h_dense > h_moe_seq ? h_dense : h_moe_seq;
    r->hessian_bytes = (h_attn + hmax) * 4;
    r->hessian_bytes_seq = (h_attn + hmax_seq) * 4;
    r->activation_bytes = o->calib_samples * o->calib_seq_len * H * 4 * 2;
    r->quench_total_bytes = r->layer_fp32_bytes + r->hessian_bytes + r->activation_bytes;
    int64_t layer_seq = r->layer_fp32_bytes;
    r->quench_total_seq_bytes = layer_seq + r->hessian_bytes_seq + r->activation_bytes;
    /* as built: routed experts streamed one at a time, calibrate-all-experts */
    {
        const int64_t Im = c->moe_intermediate_size, S = c->n_shared_experts * Im, E = c->num_experts;
        const int64_t q = c->arch == QN_ARCH_DEEPSEEK_V3 ? c->num_attention_heads * c->v_head_dim
                                                         : c->num_attention_heads * c->head_dim;
        int64_t moe_one = nmoe > 0 ? moe - (E > 1 ? (E - 1) * 3 * H * Im : 0) : 0;
        int64_t mlp = ndense > 0 ? dense : 0;
        if (moe_one > mlp) mlp = moe_one;
        r->resident_layer_bytes = (all + mlp) * 4;
        r->result_bytes = all * 4;   /* (norms included: a few H) */
        int64_t hd = ndense > 0 ? H * H + c->intermediate_size * c->intermediate_size : 0;
        int64_t hm = nmoe > 0 ? H * H + (Im * Im > S * S ? Im * Im : S * S) : 0;
        r->hessian_bytes_built = (h_attn + (hd > hm ? hd : hm)) * 4;
        /* the widest input among the Linears, and the largest Linear */
        int64_t widest = H > q ? H : q, wmax = H * q;
        if (ndense > 0) {
            if (c->intermediate_size > widest) widest = c->intermediate_size;
            if (H * c->intermediate_size > wmax) wmax = H * c->intermediate_size;
        }
        if (nmoe > 0 && S > widest) widest = S;
        int64_t d2 = widest * widest;
        r->gptq_workspace_bytes = d2 * 4 + (widest <= 8192 ? d2 * 8 : 0) + 3 * wmax * 4;
        r->activation_bytes_built = o->calib_samples * o->calib_seq_len * H * 4 * (nmoe > 0 ? 3 : 1);
        r->quench_built_bytes = r->resident_layer_bytes + r->result_bytes + r->hessian_bytes_built +
                                r->gptq_workspace_bytes + r->activation_bytes_built;
    }
    r->llmc_cpu_bytes = pc->total_params * dt + o->calib_samples * o->calib_seq_len * H * dt;
    r->llmc_gpu_bytes = layer * dt + r->hessian_bytes;
}


qn_status qn_plan_build(const qn_model_config *c, const qn_plan_options *o, qn_plan *p,
                        qn_error *err) {
    if (!c || !o || !p) return qn_error_set(err, QN_ERR_INVALID_ARG, "qn_plan_build: NULL argument");
    memset(p, 0, sizeof *p);
    if (o->kv_bytes != 1 && o->kv_bytes != 2)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "KV-cache bytes must be 1 (fp8) or 2 (fp16)");
    if (!(o->gpu_util > 0 && o->gpu_util <= 1))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "gpu memory utilization %g is not in (0, 1]",
                            o->gpu_util);
    if (o->batch < 1 || o->batch > 1000000)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "batch %lld is out of range [1, 1000000]",
                            (long long)o->batch);
    if (o->context < 0 || o->context > ((int64_t)1 << 31))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "context %lld is out of range",
                            (long long)o->context);
    if (o->extra_tp < 0 || o->extra_tp > 4096)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "GPU count %d is out of range [1, 4096]",
                            o->extra_tp);
    if (o->have_gpu && o->gpu.mem_bytes <= 0)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "GPU memory must be positive");
    if (o->calib_samples < 1 || o->calib_seq_len < 1 || o->calib_samples > 10000000 ||
        o->calib_seq_len > 10000000 || o->max_batched_tokens < 1 || o->max_batched_tokens > 100000000)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "calibration sizes are out of range");

    qn_status st = qn_plan_count_params(c, &p->params, err);
    if (st) return st;
    pt_entry e[PT_MAX];
    int n = 0;
    st = pt_build(c, e, &n, err);
    if (st) return st;
    const int dt = pt_dtype_bytes(c);
    p->dtype_bytes = dt;

    int64_t eb[PT_MAX], eb_sparse[PT_MAX];
    compute_size(c, e, n, o, dt, 0, &p->size, eb);
    if (o->sparsity == QN_SPARSE_24 && o->scheme.sparse24_bitmask_ok) {
        p->has_sparse_alt = 1;
        compute_size(c, e, n, o, dt, 1, &p->size_sparse, eb_sparse);
    }
    p->mla = c->arch == QN_ARCH_DEEPSEEK_V3;
    p->kv_bytes_per_token = qn_plan_kv_bytes_per_token(c, 1, o->kv_bytes);
    p->context = o->context > 0 ? o->context : c->max_position_embeddings;

    static const int tps[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) fill_tp(c, e, n, eb, o, dt, p->context, tps[i], &p->tp[p->n_tp++]);
    if (o->extra_tp > 0 && o->extra_tp != 1 && o->extra_tp != 2 && o->extra_tp != 4 && o->extra_tp != 8)
        fill_tp(c, e, n, eb, o, dt, p->context, o->extra_tp, &p->tp[p->n_tp++]);

    compress_estimate(c, e, n, &p->params, o, dt, &p->compress);
    return QN_OK;
}
