/* AWQ (activation-aware weight quantization): statistics, grid search, scale application.
 *
 * Reference: llm-compressor (vllm-project/llm-compressor). Read, not copied:
 *   HEAD   src/llmcompressor/modifiers/transform/awq/base.py (AWQModifier as a transform, after
 *          PR #2640 of April 2026) and transform/awq/mappings.py;
 *   before src/llmcompressor/modifiers/awq/base.py (+ awq/helpers.py in the last versions there:
 *          compute_scale_losses, compute_scales_for_ratio, apply_quantized_balance_weights,
 *          select_best_scales_from_losses, accumulate_mean, apply_scale_to_module) and
 *          modifiers/awq/mappings.py.
 * What the reference does, point by point, and where quench differs:
 *
 *  x_mean  The forward hook on balance_layers[0] (or activation_hook_target) takes args[0].abs(),
 *          flattened to [tokens, in]; HEAD keeps a running fp32 sum (.float().sum(0)) and a token
 *          count per smooth layer and divides once (x_sum / count) in _compute_best_scale. Older
 *          versions kept a running mean (accumulate_mean; the first versions forgot the .abs() and
 *          returned the first batch's SUM instead of its mean). quench: sum in double, one
 *          division, fp32 result (qn_awq_xmean_*). Token masks (use_loss_mask) are the caller's.
 *  w_mean  _compute_layer_means: per balance layer, weight.clone() (model dtype) reshaped into
 *          the sets quantized together (TENSOR: numel, CHANNEL: size(1), GROUP/TENSOR_GROUP:
 *          group_size, BLOCK: the blocks), abs_(), div_(amax(dim=1) + 1e-6) in the weight dtype,
 *          back to [out, in], then weight.sum(0) in high precision accumulated over the layers
 *          with the row count; w_mean = total sum / total rows, i.e. the mean over the
 *          concatenation along the output dim (the older base.py literally concatenated and used
 *          view(-1, group_size); same numbers for the group strategy). Layers without a quantization
 *          scheme are skipped with a warning (and their rows not counted). quench: the same sets (a
 *          block grid that does not divide the shape gets partial edge blocks, where torch's
 *          unflatten would raise), the +1e-6 and the division rounded to the layer's dtype as
 *          PyTorch evaluates bf16/fp16 ops, sums in double, fp32 result.
 *  grid    compute_scales_for_ratio / the loop in _compute_best_scale: duo
 *          s = (x_mean^r / (w_mean^(1-r) + 1e-4)).clamp(min=1e-4), else x_mean^r clamp(1e-4);
 *          s = s / sqrt(s.max() * s.min()); then s[isinf] = 1, s[isnan] = 1. Points (HEAD,
 *          _get_grid_search_params): duo False -> r = i/(n_grid-1); True -> (0, False) first (the
 *          identity, added by PR #2640) then r = i/(n_grid-2) with duo, i < n_grid-1; "both" ->
 *          m = int(n_grid/2), r = i/(m-1), False then True for each i. Before PR #2640: r = i/n_grid
 *          (never 1), and "both" = product(range(m), [False, True]) with r = i/m. The dtype there
 *          is float64 in duo mode (w_mean is float64) and fp32 otherwise; quench computes the
 *          scales in double and stores them as fp32 (qn_awq_scales). Zero denominators (n_grid 1
 *          with False, 2 with True, 2-3 with "both") raise ZeroDivisionError in the reference;
 *          quench uses the single ratio 0 there.
 *  cand.   HEAD _rescale_layer (and apply_quantized_balance_weights before it): the balance
 *          weight's data is copy_()'d from orig * s (so rounded to the model dtype), a
 *          memoryless_minmax observer (patched in for the duration of the search) computes its
 *          scales (and the global scale for TENSOR_GROUP), forward_quantize fake-quantizes it,
 *          and the weight becomes quantized / s, divided in the scales' dtype without rounding
 *          back (older versions: .to(weight.dtype)). The smooth layer is untouched unless
 *          smooth_layer_quantization: then its last in rows are divided by s and quantized (not
 *          divided back). Fusing the NVFP4 global scales of the balance layers happens after they
 *          were fake-quantized, so it does not change the loss. quench: round_dtype(W * s), the
 *          project's qn_qparams_observe + qn_quant_fake (exactly what the exporter computes for
 *          that weight; min-max observer unless opts.scheme_observer), then / s in fp32.
 *  loss    _compute_loss: for every cached batch, mse_loss(fp16_out, int_w_out, reduction="sum")
 *          (loss-masked tokens only when a mask exists), summed over batches, divided by the total
 *          number of output elements: a token-weighted MSE, not a mean of per-batch means. The
 *          reference compares the parent's outputs (its first output when it returns a tuple),
 *          the parent being the lowest common ancestor of the balance layers above any ModuleList
 *          (self_attn for q/k/v, mlp for gate/up and for MoE experts), or the balance layer itself
 *          when there is only one. The callbacks here do that; qn_awq_linear_loss computes
 *          X (W - Wq)^T directly instead of the difference of two rounded outputs.
 *  select  HEAD: strict `loss < best` from +inf, so the first minimum wins and NaN is never
 *          chosen; best_ratio == -1 (no finite loss) raises "No finite loss was found in best
 *          scalesgrid search". (helpers.py's select_best_scales_from_losses used min(), which
 *          returns NaN when the FIRST loss is NaN and then raises even if others were finite.)
 *          quench: the HEAD rule; QN_ERR_FORMAT when no loss is finite. The reference skips the
 *          mapping before the search when the parent's original outputs are empty or not finite
 *          (should_skip_smoothing_for_outputs): the caller's check.
 *  apply   apply_scale_to_module / _smooth: balance weight = orig * s.view(1, -1); a 1-D smooth
 *          weight (norm) /= s; a 2-D smooth weight (v_proj, up_proj): weight[-n:] /= s.view(-1, 1)
 *          (the last n rows; all of them when out == n); bias /= s. All stored in the model dtype.
 *          duo_scaling with the TENSOR strategy is refused (on_start / on_initialize).
 *  skip    _check_layers_are_compatible: a Linear smooth "*.v_proj" whose out_features differs
 *          from the "*.o_proj" balance in_features (GQA), or "*.qkv_proj" with out != 3 x in,
 *          skips the mapping instance; also skipped: no balance layer found, no layer of the
 *          mapping targeted for quantization.
 *  maps    AWQ_MAPPING_REGISTRY in mappings.py (see awq.h): Llama, Mistral, Qwen2, Qwen3 the default
 *          list; Qwen3Moe the MoE list, which since PR #2451 (March 2026) starts with the router
 *          "re:.*mlp.gate$" (before it, the router read the smoothed activation uncompensated);
 *          DeepseekV3 its own list (router included); Glm4Moe the default list before PR #2451
 *          and the MoE list in later snapshots. Layers without a quantization scheme (the router)
 *          are skipped by _compute_layer_means and by the candidate patching, but scaled by
 *          apply_scale_to_module: args == NULL here.
 *  quant.  The older modifiers/awq/base.py quantized candidates with its own _pseudo_quantize_tensor
 *          (AutoAWQ's convention: symmetric scale = amax / (2^(b-1) - 1), clamp(min=1e-5);
 *          asymmetric with unsigned zero points), not what compressed-tensors then writes; the later
 *          versions use the scheme's own fake quantization, as quench does.
 */
#include "quench/awq.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AWQ_PAR_MIN 32768   /* elements below which loops stay serial */
#define AWQ_MAX_BAL 64

/* ------------------------------------------------------------------------------------------ */
/* Mappings                                                                                    */

static const qn_awq_mapping MAP_DEFAULT[] = {
    {"re:.*input_layernorm$", {"re:.*q_proj$", "re:.*k_proj$", "re:.*v_proj$", NULL}, QN_AWQ_PARENT_ATTN},
    {"re:.*v_proj$", {"re:.*o_proj$", NULL}, QN_AWQ_PARENT_LINEAR},
    {"re:.*post_attention_layernorm$", {"re:.*gate_proj$", "re:.*up_proj$", NULL}, QN_AWQ_PARENT_MLP},
    {"re:.*up_proj$", {"re:.*down_proj$", NULL}, QN_AWQ_PARENT_LINEAR},
};

/* HEAD _moe_default_mappings: the router first (PR #2451), then the routed experts */
static const qn_awq_mapping MAP_MOE[] = {
    {"re:.*input_layernorm$", {"re:.*q_proj$", "re:.*k_proj$", "re:.*v_proj$", NULL}, QN_AWQ_PARENT_ATTN},
    {"re:.*v_proj$", {"re:.*o_proj$", NULL}, QN_AWQ_PARENT_LINEAR},
    {"re:.*post_attention_layernorm$",
     {"re:.*mlp.gate$", "re:.*mlp.experts.*.gate_proj$", "re:.*mlp.experts.*.up_proj$", NULL},
     QN_AWQ_PARENT_MLP},
    {"re:.*up_proj$", {"re:.*down_proj$", NULL}, QN_AWQ_PARENT_LINEAR},
};

/* quench's GLM-4.5 list: the router, then every gate_proj / up_proj of the layer (routed experts,
 * shared experts, or the dense MLP of the first_k_dense_replace layers), as DeepseekV3's MLP entry.
 * The reference registers Glm4Moe with the default list before PR #2451 (router not balanced) and
 * with the MoE list after it (shared experts not balanced): both change the model's function. */
static const qn_awq_mapping MAP_GLM4_MOE[] = {
    {"re:.*input_layernorm$", {"re:.*q_proj$", "re:.*k_proj$", "re:.*v_proj$", NULL}, QN_AWQ_PARENT_ATTN},
    {"re:.*v_proj$", {"re:.*o_proj$", NULL}, QN_AWQ_PARENT_LINEAR},
    {"re:.*post_attention_layernorm$", {"re:.*mlp.gate$", "re:.*gate_proj$", "re:.*up_proj$", NULL}, QN_AWQ_PARENT_MLP},
    {"re:.*up_proj$", {"re:.*down_proj$", NULL}, QN_AWQ_PARENT_LINEAR},
};

static const qn_awq_mapping MAP_DEEPSEEK[] = {
    {"re:.*input_layernorm$", {"re:.*(q|q_a)_proj$", "re:.*kv_a_proj_with_mqa$", NULL}, QN_AWQ_PARENT_ATTN},
    {"re:.*q_a_layernorm$", {"re:.*q_b_proj$", NULL}, QN_AWQ_PARENT_LINEAR},
    {"re:.*kv_a_layernorm$", {"re:.*kv_b_proj$", NULL}, QN_AWQ_PARENT_LINEAR},
    {"re:.*post_attention_layernorm$", {"re:.*mlp.gate$", "re:.*gate_proj$", "re:.*up_proj$", NULL}, QN_AWQ_PARENT_MLP},
    {"re:.*up_proj$", {"re:.*down_proj$", NULL}, QN_AWQ_PARENT_LINEAR},
};

#define NMAP(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
    const char *arch;
    const qn_awq_mapping *m;
    size_t n;
} REGISTRY[] = {
    {"LlamaForCausalLM", MAP_DEFAULT, NMAP(MAP_DEFAULT)},
    {"MistralForCausalLM", MAP_DEFAULT, NMAP(MAP_DEFAULT)},
    {"Qwen2ForCausalLM", MAP_DEFAULT, NMAP(MAP_DEFAULT)},
    {"Qwen3ForCausalLM", MAP_DEFAULT, NMAP(MAP_DEFAULT)},
    {"Qwen3MoeForCausalLM", MAP_MOE, NMAP(MAP_MOE)},
    {"Glm4MoeForCausalLM", MAP_GLM4_MOE, NMAP(MAP_GLM4_MOE)},
    {"DeepseekV3ForCausalLM", MAP_DEEPSEEK, NMAP(MAP_DEEPSEEK)},
};

const qn_awq_mapping *qn_awq_default_mappings(const char *architecture, size_t *n, int *is_default) {
    for (size_t i = 0; architecture && i < NMAP(REGISTRY); i++)
        if (!strcmp(architecture, REGISTRY[i].arch)) {
            if (n) *n = REGISTRY[i].n;
            if (is_default) *is_default = 0;
            return REGISTRY[i].m;
        }
    if (n) *n = NMAP(MAP_DEFAULT);
    if (is_default) *is_default = 1;
    return MAP_DEFAULT;
}

static int ends_with(const char *s, const char *suffix) {
    if (!s) return 0;
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !memcmp(s + a - b, suffix, b);
}

int qn_awq_mapping_compatible(const char *smooth_name, int64_t smooth_out, const char *balance_name,
                              int64_t balance_in) {
    if (smooth_out <= 0 || !ends_with(balance_name, ".o_proj")) return 1;
    if (ends_with(smooth_name, ".v_proj") && smooth_out != balance_in) return 0;
    if (ends_with(smooth_name, ".qkv_proj") && smooth_out != 3 * balance_in) return 0;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* x_mean                                                                                       */

#define AWQ_MAX_CHANNELS (INT64_C(1) << 31)

qn_status qn_awq_xmean_init(qn_awq_xmean *a, int64_t n, qn_error *err) {
    if (!a) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: x_mean: NULL accumulator");
    memset(a, 0, sizeof *a);
    if (n <= 0 || n > AWQ_MAX_CHANNELS)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: x_mean: invalid channel count %lld", (long long)n);
    a->sum = calloc((size_t)n, sizeof(double));
    if (!a->sum) return qn_error_set(err, QN_ERR_NOMEM, "awq: x_mean: out of memory for %lld channels", (long long)n);
    a->n = n;
    return QN_OK;
}

void qn_awq_xmean_free(qn_awq_xmean *a) {
    if (!a) return;
    free(a->sum);
    memset(a, 0, sizeof *a);
}

#define XM_CHUNK 256

qn_status qn_awq_xmean_add(qn_awq_xmean *a, const float *x, int64_t ntok, int64_t ld, qn_error *err) {
    if (!a || !a->sum) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: x_mean: accumulator not initialized");
    if (ntok < 0) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: x_mean: negative token count %lld", (long long)ntok);
    if (ntok == 0) return QN_OK;
    if (!x) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: x_mean: NULL activations");
    if (ld < a->n)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "awq: x_mean: leading dimension %lld is smaller than the %lld channels",
                            (long long)ld, (long long)a->n);
    int64_t n = a->n;
    double *sum = a->sum;
#pragma omp parallel for schedule(static) if (ntok * n > AWQ_PAR_MIN)
    for (int64_t c0 = 0; c0 < n; c0 += XM_CHUNK) {
        int64_t c1 = c0 + XM_CHUNK < n ? c0 + XM_CHUNK : n;
        double acc[XM_CHUNK] = {0};
        for (int64_t t = 0; t < ntok; t++) {
            const float *row = x + t * ld;
            for (int64_t c = c0; c < c1; c++) acc[c - c0] += fabsf(row[c]);
        }
        for (int64_t c = c0; c < c1; c++) sum[c] += acc[c - c0];
    }
    a->count += ntok;
    return QN_OK;
}

qn_status qn_awq_xmean_finalize(const qn_awq_xmean *a, float *x_mean, qn_error *err) {
    if (!a || !a->sum || !x_mean) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: x_mean: NULL argument");
    if (a->count <= 0)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "awq: x_mean: no tokens were added (no activations to scale)");
    for (int64_t j = 0; j < a->n; j++) x_mean[j] = (float)(a->sum[j] / (double)a->count);
    return QN_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Balance layers: validation, w_mean                                                          */

static int dtype_ok(qn_dtype d) { return d == QN_DT_BF16 || d == QN_DT_F16 || d == QN_DT_F32; }

static qn_status check_layer(const qn_awq_balance *b, const char *what, int i, int64_t in, int need_args,
                             qn_error *err) {
    if (!b->w) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: %s %d: NULL weight", what, i);
    if (need_args && !b->args)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: %s %d: NULL quantization args", what, i);
    if (b->out <= 0 || b->in <= 0 || b->out > (INT64_C(1) << 40) / b->in)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: %s %d: invalid shape [%lld, %lld]", what, i,
                            (long long)b->out, (long long)b->in);
    if (in > 0 && b->in != in)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "awq: %s %d has %lld input channels, balance layer 0 has %lld (the "
                            "balance layers of a mapping must read the same input)",
                            what, i, (long long)b->in, (long long)in);
    if (!dtype_ok(b->dtype))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: %s %d: dtype must be bf16, f16 or f32", what, i);
    return QN_OK;
}

static qn_status check_balance(const qn_awq_balance *bal, int n_bal, qn_error *err) {
    if (!bal) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: NULL balance layers");
    if (n_bal < 1 || n_bal > AWQ_MAX_BAL)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: %d balance layers (1..%d)", n_bal, AWQ_MAX_BAL);
    int quantized = 0;
    for (int b = 0; b < n_bal; b++) {
        qn_status st = check_layer(&bal[b], "balance layer", b, b ? bal[0].in : 0, 0, err);
        if (st) return st;
        quantized += bal[b].args != NULL;
    }
    if (!quantized)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "awq: none of the %d balance layers is quantized (no quantization args)", n_bal);
    return QN_OK;
}

/* Quantization-set geometry of a balance layer (strategy resolved as the quant module does). */
static qn_status layer_tiles(const qn_awq_balance *b, int i, int64_t *th, int64_t *tw, qn_error *err) {
    qn_qparams p;
    qn_status st = qn_qparams_init(&p, b->args, b->dtype, b->out, b->in, err);
    if (st) {
        qn_error_prefix(err, "awq: balance layer %d", i);
        return st;
    }
    *th = p.tile_rows;
    *tw = p.tile_cols;
    qn_qparams_free(&p);
    return QN_OK;
}

qn_status qn_awq_w_mean(const qn_awq_balance *bal, int n_bal, float *w_mean, qn_error *err) {
    qn_status st = check_balance(bal, n_bal, err);
    if (st) return st;
    if (!w_mean) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: w_mean: NULL output");
    int64_t in = bal[0].in, rows = 0;
    double *total = calloc((size_t)in, sizeof(double));
    if (!total) return qn_error_set(err, QN_ERR_NOMEM, "awq: w_mean: out of memory");
    for (int b = 0; b < n_bal && !st; b++) {
        int64_t th, tw;
        if (!bal[b].args) continue;   /* not quantized (a router): not part of w_mean */
        if ((st = layer_tiles(&bal[b], b, &th, &tw, err))) break;
        const float *w = bal[b].w;
        int64_t out = bal[b].out, nbr = (out + th - 1) / th, nbc = (in + tw - 1) / tw;
        qn_dtype dt = bal[b].dtype;
        int fail = 0;
#pragma omp parallel if (out * in > AWQ_PAR_MIN)
        {
            double *part = calloc((size_t)in, sizeof(double));
            if (!part) {
#pragma omp atomic write
                fail = 1;
            }
#pragma omp for schedule(dynamic)
            for (int64_t br = 0; br < nbr; br++) {
                if (!part) continue;
                int64_t r0 = br * th, r1 = r0 + th < out ? r0 + th : out;
                for (int64_t bc = 0; bc < nbc; bc++) {
                    int64_t c0 = bc * tw, c1 = c0 + tw < in ? c0 + tw : in;
                    float m = 0.0f;   /* amax, NaN propagating as torch's */
                    for (int64_t r = r0; r < r1; r++)
                        for (int64_t c = c0; c < c1; c++) {
                            float a = fabsf(w[r * in + c]);
                            if (a > m || a != a) m = (m != m) ? m : a;
                        }
                    float den = qn_round_to_dtype(m + 1e-6f, dt);
                    for (int64_t r = r0; r < r1; r++)
                        for (int64_t c = c0; c < c1; c++)
                            part[c] += (double)qn_round_to_dtype(fabsf(w[r * in + c]) / den, dt);
                }
            }
            if (part) {
#pragma omp critical(qn_awq_wmean)
                for (int64_t c = 0; c < in; c++) total[c] += part[c];
                free(part);
            }
        }
        if (fail) st = qn_error_set(err, QN_ERR_NOMEM, "awq: w_mean: out of memory");
        rows += out;
    }
    if (!st)
        for (int64_t c = 0; c < in; c++) w_mean[c] = (float)(total[c] / (double)rows);
    free(total);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Grid and scales                                                                              */

void qn_awq_opts_init(qn_awq_opts *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->n_grid = 20;
    o->duo_scaling = QN_AWQ_DUO_TRUE;
    o->grid = QN_AWQ_GRID_HEAD;
}

static double ratio_of(int i, int den) { return den > 0 ? (double)i / (double)den : 0.0; }

qn_status qn_awq_grid_points(const qn_awq_opts *o, double *ratio, int *duo, int *n, qn_error *err) {
    if (!o || !ratio || !duo || !n) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: grid: NULL argument");
    *n = 0;
    int g = o->n_grid;
    if (g < 1 || g > QN_AWQ_GRID_MAX)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: n_grid must be in 1..%d (got %d)", QN_AWQ_GRID_MAX, g);
    if (o->grid != QN_AWQ_GRID_HEAD && o->grid != QN_AWQ_GRID_LEGACY)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: unknown grid convention %d", (int)o->grid);
    int head = o->grid == QN_AWQ_GRID_HEAD, k = 0;
    switch (o->duo_scaling) {
    case QN_AWQ_DUO_FALSE:
    case QN_AWQ_DUO_TRUE: {
        int d = o->duo_scaling;
        if (head && d) {   /* identity first, then n_grid - 1 duo points over [0, 1] */
            ratio[k] = 0.0;
            duo[k++] = 0;
            for (int i = 0; i < g - 1; i++, k++) {
                ratio[k] = ratio_of(i, g - 2);
                duo[k] = 1;
            }
        } else {
            for (int i = 0; i < g; i++, k++) {
                ratio[k] = head ? ratio_of(i, g - 1) : ratio_of(i, g);
                duo[k] = d;
            }
        }
        break;
    }
    case QN_AWQ_DUO_BOTH: {
        int m = g / 2;
        if (m < 1)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "awq: duo_scaling \"both\" needs n_grid >= 2 (got %d)", g);
        for (int i = 0; i < m; i++)
            for (int d = 0; d < 2; d++, k++) {
                ratio[k] = head ? ratio_of(i, m - 1) : ratio_of(i, m);
                duo[k] = d;
            }
        break;
    }
    default:
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "awq: duo_scaling must be 0 (false), 1 (true) or 2 (\"both\"), got %d",
                            o->duo_scaling);
    }
    *n = k;
    return QN_OK;
}

qn_status qn_awq_scales(const float *x_mean, const float *w_mean, int64_t n, double ratio, int duo,
                        float *s, qn_error *err) {
    if (!x_mean || !s || (duo && !w_mean))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: scales: NULL argument");
    if (n <= 0) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: scales: invalid channel count %lld", (long long)n);
    if (!(ratio >= 0.0 && ratio <= 1.0))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: scales: ratio %g is outside [0, 1]", ratio);
    double *v = malloc(sizeof(double) * (size_t)n);
    if (!v) return qn_error_set(err, QN_ERR_NOMEM, "awq: scales: out of memory");
    double mx = -INFINITY, mn = INFINITY;
    int nan = 0;
    for (int64_t j = 0; j < n; j++) {
        double x = pow((double)x_mean[j], ratio);
        if (duo) x = x / (pow((double)w_mean[j], 1.0 - ratio) + 1e-4);
        if (x < 1e-4) x = 1e-4;   /* clamp(min): NaN stays NaN */
        if (x != x) nan = 1;
        if (x > mx) mx = x;
        if (x < mn) mn = x;
        v[j] = x;
    }
    double norm = nan ? NAN : sqrt(mx * mn);   /* torch's max/min propagate NaN */
    for (int64_t j = 0; j < n; j++) {
        double y = v[j] / norm;
        float f = (float)y;
        s[j] = isfinite(f) ? f : 1.0f;
    }
    free(v);
    return QN_OK;
}

double qn_awq_sse(const float *a, const float *b, size_t n) {
    double acc = 0.0;
    if (!a || !b) return NAN;
#pragma omp parallel for reduction(+ : acc) schedule(static) if (n > AWQ_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        acc += d * d;
    }
    return acc;
}

/* ------------------------------------------------------------------------------------------ */
/* Search                                                                                       */

typedef struct {
    int n_bal, has_smooth;
    int64_t in;
    const qn_awq_balance *bal, *smooth;
    qn_qparams p[AWQ_MAX_BAL + 1];
    int p_ok[AWQ_MAX_BAL + 1];
    float *buf[AWQ_MAX_BAL + 1];
    int shared_gs;
} search_ws;

static void ws_free(search_ws *w) {
    for (int b = 0; b <= AWQ_MAX_BAL; b++) {
        if (w->p_ok[b]) qn_qparams_free(&w->p[b]);
        free(w->buf[b]);
        w->p_ok[b] = 0;
        w->buf[b] = NULL;
    }
}

/* Quantizes buf (already scaled) with layer i's qparams. */
static qn_status quantize_buf(search_ws *w, int i, int64_t rows, int64_t cols, float gs, qn_error *err) {
    qn_qparams *p = &w->p[i];
    float *x = w->buf[i];
    if (p->args.strategy == QN_STRATEGY_TENSOR_GROUP)
        p->global_scale = gs > 0.0f ? gs : qn_nvfp4_global_scale(qn_quant_absmax(x, rows, cols, cols));
    qn_status st = qn_qparams_observe(p, x, cols, 0, cols, err);
    if (!st) st = qn_quant_fake(p, x, cols, 0, cols, err);
    return st;
}

/* The candidates of scales s: balance b -> fake_quant(round(W_b * s)) / s; smooth -> fake_quant(
 * round(W_s with its last `in` rows / s)). */
static qn_status build_candidates(search_ws *w, const float *s, qn_error *err) {
    int64_t in = w->in;
    for (int b = 0; b < w->n_bal; b++) {
        if (!w->p_ok[b]) continue;
        const float *src = w->bal[b].w;
        float *dst = w->buf[b];
        int64_t out = w->bal[b].out;
        qn_dtype dt = w->bal[b].dtype;
#pragma omp parallel for schedule(static) if (out * in > AWQ_PAR_MIN)
        for (int64_t r = 0; r < out; r++)
            for (int64_t c = 0; c < in; c++) dst[r * in + c] = qn_round_to_dtype(src[r * in + c] * s[c], dt);
    }
    float gs = 0.0f;
    if (w->shared_gs) {
        float amax = 0.0f;
        for (int b = 0; b < w->n_bal; b++) {
            if (!w->p_ok[b]) continue;
            float a = qn_quant_absmax(w->buf[b], w->bal[b].out, in, in);
            if (a > amax) amax = a;
        }
        gs = qn_nvfp4_global_scale(amax);
    }
    for (int b = 0; b < w->n_bal; b++) {
        if (!w->p_ok[b]) continue;
        qn_status st = quantize_buf(w, b, w->bal[b].out, in, gs, err);
        if (st) {
            qn_error_prefix(err, "awq: balance layer %d", b);
            return st;
        }
        float *dst = w->buf[b];
        int64_t out = w->bal[b].out;
#pragma omp parallel for schedule(static) if (out * in > AWQ_PAR_MIN)
        for (int64_t r = 0; r < out; r++)
            for (int64_t c = 0; c < in; c++) dst[r * in + c] /= s[c];
    }
    if (w->has_smooth) {
        const qn_awq_balance *sm = w->smooth;
        int64_t out = sm->out, cols = sm->in, r0 = out - in;
        float *dst = w->buf[w->n_bal];
        memcpy(dst, sm->w, sizeof(float) * (size_t)(out * cols));
#pragma omp parallel for schedule(static) if (in * cols > AWQ_PAR_MIN)
        for (int64_t j = 0; j < in; j++)
            for (int64_t c = 0; c < cols; c++)
                dst[(r0 + j) * cols + c] = qn_round_to_dtype(sm->w[(r0 + j) * cols + c] / s[j], sm->dtype);
        qn_status st = quantize_buf(w, w->n_bal, out, cols, 0.0f, err);
        if (st) {
            qn_error_prefix(err, "awq: smooth layer");
            return st;
        }
    }
    return QN_OK;
}

static qn_status eval_point(search_ws *w, const float *s, qn_awq_loss_fn loss, void *user, double *l,
                            qn_error *err) {
    qn_status st = build_candidates(w, s, err);
    if (st) return st;
    const float *wq[AWQ_MAX_BAL + 1];
    for (int b = 0; b < w->n_bal + w->has_smooth; b++) wq[b] = w->p_ok[b] ? w->buf[b] : w->bal[b].w;
    *l = NAN;
    return loss(user, wq, w->n_bal + w->has_smooth, l, err);
}

qn_status qn_awq_search(const qn_awq_balance *bal, int n_bal, const qn_awq_balance *smooth,
                        const float *x_mean, const qn_awq_opts *o, qn_awq_loss_fn loss, void *user,
                        float *scales_out, qn_awq_report *rep, qn_error *err) {
    qn_status st = check_balance(bal, n_bal, err);
    if (st) return st;
    if (!x_mean || !o || !loss || !scales_out)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: search: NULL x_mean, options, loss or output");
    int64_t in = bal[0].in;
    if (smooth) {
        if ((st = check_layer(smooth, "smooth layer", 0, 0, 1, err))) return st;
        if (smooth->out < in)
            return qn_error_set(err, QN_ERR_INVALID_ARG,
                                "awq: smooth layer has %lld outputs, fewer than the %lld balance "
                                "input channels", (long long)smooth->out, (long long)in);
    }
    double ratio[QN_AWQ_GRID_MAX];
    int duo[QN_AWQ_GRID_MAX], np = 0, any_duo = 0;
    if ((st = qn_awq_grid_points(o, ratio, duo, &np, err))) return st;
    for (int k = 0; k < np; k++) any_duo |= duo[k];

    search_ws w;
    memset(&w, 0, sizeof w);
    w.n_bal = n_bal;
    w.has_smooth = smooth != NULL;
    w.in = in;
    w.bal = bal;
    w.smooth = smooth;
    for (int b = 0; b < n_bal + w.has_smooth; b++) {
        const qn_awq_balance *L = b < n_bal ? &bal[b] : smooth;
        if (!L->args) continue;   /* scaled, not quantized: the candidate is the original weight */
        qn_quant_args a = *L->args;
        if (!o->scheme_observer) {
            strcpy(a.observer, "memoryless_minmax");
            strcpy(a.observer_kwargs, "{}");
        }
        a.actorder = QN_ACTORDER_NONE;   /* the search quantizes columns in order */
        if ((st = qn_qparams_init(&w.p[b], &a, L->dtype, L->out, L->in, err))) {
            if (b < n_bal) qn_error_prefix(err, "awq: balance layer %d", b);
            else qn_error_prefix(err, "awq: smooth layer");
            ws_free(&w);
            return st;
        }
        w.p_ok[b] = 1;
        if (b < n_bal && any_duo && w.p[b].args.strategy == QN_STRATEGY_TENSOR) {
            ws_free(&w);
            return qn_error_set(err, QN_ERR_UNSUPPORTED,
                                "awq: duo_scaling is only supported with per-channel quantization "
                                "strategies (group or channel), but balance layer %d uses the tensor "
                                "strategy; set duo_scaling to false or use a per-channel strategy", b);
        }
        w.buf[b] = malloc(sizeof(float) * (size_t)(L->out * L->in));
        if (!w.buf[b]) {
            ws_free(&w);
            return qn_error_set(err, QN_ERR_NOMEM, "awq: out of memory for the candidate weights");
        }
    }
    w.shared_gs = o->shared_global_scale != 0;
    for (int b = 0; b < n_bal; b++)
        if (w.p_ok[b] && w.p[b].args.strategy != QN_STRATEGY_TENSOR_GROUP) w.shared_gs = 0;

    float *w_mean = NULL, *s = malloc(sizeof(float) * (size_t)in);
    if (!s) {
        ws_free(&w);
        return qn_error_set(err, QN_ERR_NOMEM, "awq: out of memory");
    }
    if (any_duo) {
        w_mean = malloc(sizeof(float) * (size_t)in);
        if (!w_mean) st = qn_error_set(err, QN_ERR_NOMEM, "awq: out of memory");
        else st = qn_awq_w_mean(bal, n_bal, w_mean, err);
    }

    qn_awq_report r;
    memset(&r, 0, sizeof r);
    r.best = -1;
    r.identity_point = -1;
    r.loss_identity = NAN;
    double best = INFINITY;
    for (int k = 0; k < np && !st; k++) {
        if ((st = qn_awq_scales(x_mean, w_mean, in, ratio[k], duo[k], s, err))) break;
        int ident = 1;
        for (int64_t j = 0; j < in && ident; j++) ident = s[j] == 1.0f;
        double l;
        if ((st = eval_point(&w, s, loss, user, &l, err))) {
            qn_error_prefix(err, "awq: grid point %d (ratio %g, %s)", k, ratio[k],
                            duo[k] ? "duo scaling" : "activations only");
            break;
        }
        r.ratio[k] = ratio[k];
        r.duo[k] = duo[k];
        r.loss[k] = l;
        r.n_points = k + 1;
        if (ident && r.identity_point < 0) {
            r.identity_point = k;
            r.loss_identity = l;
        }
        if (l < best) {   /* strict: the first minimum; NaN never */
            best = l;
            r.best = k;
        }
    }
    if (!st && r.identity_point < 0) {
        for (int64_t j = 0; j < in; j++) s[j] = 1.0f;
        if ((st = eval_point(&w, s, loss, user, &r.loss_identity, err)))
            qn_error_prefix(err, "awq: identity scales");
    }
    if (!st && r.best < 0)
        st = qn_error_set(err, QN_ERR_FORMAT,
                          "awq: no finite loss in the %d-point grid search (NaN or inf in the parent "
                          "module's forward or in the calibration statistics)", np);
    if (!st) {
        r.best_ratio = ratio[r.best];
        r.best_duo = duo[r.best];
        r.best_loss = r.loss[r.best];
        st = qn_awq_scales(x_mean, w_mean, in, r.best_ratio, r.best_duo, scales_out, err);
    }
    if (!st && rep) *rep = r;
    free(s);
    free(w_mean);
    ws_free(&w);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Ready losses                                                                                 */

static qn_status check_ctx_weights(const qn_awq_balance *bal, int n_bal, const float *const *wq, int n,
                                   const char *who, qn_error *err) {
    if (!wq) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: %s: NULL candidate weights", who);
    if (n != n_bal)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "awq: %s: %d candidate weights for %d balance layers (a quantized smooth "
                            "layer needs a parent forward that includes it)", who, n, n_bal);
    qn_status st = check_balance(bal, n_bal, err);
    if (st) {
        qn_error_prefix(err, "awq: %s", who);
        return st;
    }
    for (int b = 0; b < n; b++)
        if (!wq[b]) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: %s: NULL candidate weight %d", who, b);
    return QN_OK;
}

#define BLAS_MAX ((int64_t)2147483647)
#define LOSS_BLOCK_ELEMS (INT64_C(1) << 22)

qn_status qn_awq_linear_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err) {
    const qn_awq_linear_ctx *c = user;
    if (!c || !loss) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: linear loss: NULL context or output");
    qn_status st = check_ctx_weights(c->bal, c->n_bal, wq, n, "linear loss", err);
    if (st) return st;
    int64_t in = c->bal[0].in;
    if (!c->x || c->ntok <= 0)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: linear loss: no calibration inputs");
    if (c->ld < in || c->ld > BLAS_MAX || c->ntok > BLAS_MAX)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "awq: linear loss: inputs [%lld, ld %lld] do not fit %lld channels",
                            (long long)c->ntok, (long long)c->ld, (long long)in);
    double sse = 0.0;
    int64_t total = 0;
    for (int b = 0; b < n && !st; b++) {
        int64_t out = c->bal[b].out;
        int64_t tb = LOSS_BLOCK_ELEMS / out;
        if (tb < 1) tb = 1;
        if (tb > c->ntok) tb = c->ntok;
        float *d = malloc(sizeof(float) * (size_t)(out * in)), *y = malloc(sizeof(float) * (size_t)(tb * out));
        if (!d || !y) {
            free(d);
            free(y);
            return qn_error_set(err, QN_ERR_NOMEM, "awq: linear loss: out of memory");
        }
        const float *w0 = c->bal[b].w, *w1 = wq[b];
#pragma omp parallel for schedule(static) if (out * in > AWQ_PAR_MIN)
        for (int64_t i = 0; i < out * in; i++) d[i] = w0[i] - w1[i];
        for (int64_t t0 = 0; t0 < c->ntok; t0 += tb) {
            int64_t m = c->ntok - t0 < tb ? c->ntok - t0 : tb;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)out, (int)in, 1.0f,
                        c->x + t0 * c->ld, (int)c->ld, d, (int)in, 0.0f, y, (int)out);
            double part = 0.0;
#pragma omp parallel for reduction(+ : part) schedule(static) if (m * out > AWQ_PAR_MIN)
            for (int64_t i = 0; i < m * out; i++) part += (double)y[i] * (double)y[i];
            sse += part;
        }
        total += out;
        free(d);
        free(y);
    }
    *loss = sse / ((double)c->ntok * (double)total);
    return QN_OK;
}

qn_status qn_awq_gram_loss(void *user, const float *const *wq, int n, double *loss, qn_error *err) {
    const qn_awq_gram_ctx *c = user;
    if (!c || !loss) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: gram loss: NULL context or output");
    qn_status st = check_ctx_weights(c->bal, c->n_bal, wq, n, "gram loss", err);
    if (st) return st;
    int64_t in = c->bal[0].in;
    if (!c->g) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: gram loss: NULL Gram matrix");
    if (!(c->scale >= 0.0) || !isfinite(c->scale))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: gram loss: scale %g must be finite and >= 0", c->scale);
    if (in > BLAS_MAX) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: gram loss: too many channels");
    double acc = 0.0;
    int64_t total = 0;
    for (int b = 0; b < n; b++) {
        int64_t out = c->bal[b].out;
        int64_t rb = LOSS_BLOCK_ELEMS / in;
        if (rb < 1) rb = 1;
        if (rb > out) rb = out;
        float *d = malloc(sizeof(float) * (size_t)(rb * in)), *m = malloc(sizeof(float) * (size_t)(rb * in));
        if (!d || !m) {
            free(d);
            free(m);
            return qn_error_set(err, QN_ERR_NOMEM, "awq: gram loss: out of memory");
        }
        for (int64_t r0 = 0; r0 < out; r0 += rb) {
            int64_t k = out - r0 < rb ? out - r0 : rb;
            const float *w0 = c->bal[b].w + r0 * in, *w1 = wq[b] + r0 * in;
#pragma omp parallel for schedule(static) if (k * in > AWQ_PAR_MIN)
            for (int64_t i = 0; i < k * in; i++) d[i] = w0[i] - w1[i];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k, (int)in, (int)in, 1.0f, d,
                        (int)in, c->g, (int)in, 0.0f, m, (int)in);
            double part = 0.0;
#pragma omp parallel for reduction(+ : part) schedule(static) if (k * in > AWQ_PAR_MIN)
            for (int64_t i = 0; i < k * in; i++) part += (double)m[i] * (double)d[i];
            acc += part;
        }
        total += out;
        free(d);
        free(m);
    }
    *loss = c->scale * acc / (double)total;
    return QN_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Applying the scales                                                                          */

static qn_status check_scales(const float *s, int64_t n, const char *who, qn_error *err) {
    if (!s) return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: %s: NULL scales", who);
    for (int64_t j = 0; j < n; j++)
        if (!(s[j] > 0.0f) || !isfinite(s[j]))
            return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: %s: scale %lld is %g (must be finite and > 0)",
                                who, (long long)j, (double)s[j]);
    return QN_OK;
}

qn_status qn_awq_scale_balance(float *w, int64_t out, int64_t in, const float *s, qn_dtype dtype,
                               qn_error *err) {
    if (!w || out <= 0 || in <= 0 || !dtype_ok(dtype))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: scale balance: invalid weight, shape or dtype");
    qn_status st = check_scales(s, in, "scale balance", err);
    if (st) return st;
#pragma omp parallel for schedule(static) if (out * in > AWQ_PAR_MIN)
    for (int64_t r = 0; r < out; r++)
        for (int64_t c = 0; c < in; c++) w[r * in + c] = qn_round_to_dtype(w[r * in + c] * s[c], dtype);
    return QN_OK;
}

qn_status qn_awq_scale_norm(float *w, int64_t n, const float *s, qn_dtype dtype, qn_error *err) {
    if (!w || n <= 0 || !dtype_ok(dtype))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: scale norm: invalid weight, size or dtype");
    qn_status st = check_scales(s, n, "scale norm", err);
    if (st) return st;
    for (int64_t j = 0; j < n; j++) w[j] = qn_round_to_dtype(w[j] / s[j], dtype);
    return QN_OK;
}

qn_status qn_awq_scale_smooth_rows(float *w, int64_t out, int64_t in, float *bias, const float *s,
                                   int64_t n, qn_dtype dtype, qn_error *err) {
    if (!w || out <= 0 || in <= 0 || !dtype_ok(dtype))
        return qn_error_set(err, QN_ERR_INVALID_ARG, "awq: scale smooth rows: invalid weight, shape or dtype");
    if (n <= 0 || n > out)
        return qn_error_set(err, QN_ERR_INVALID_ARG,
                            "awq: scale smooth rows: %lld scales for a smooth layer with %lld outputs",
                            (long long)n, (long long)out);
    qn_status st = check_scales(s, n, "scale smooth rows", err);
    if (st) return st;
    int64_t r0 = out - n;
#pragma omp parallel for schedule(static) if (n * in > AWQ_PAR_MIN)
    for (int64_t j = 0; j < n; j++)
        for (int64_t c = 0; c < in; c++) w[(r0 + j) * in + c] = qn_round_to_dtype(w[(r0 + j) * in + c] / s[j], dtype);
    if (bias)
        for (int64_t j = 0; j < n; j++) bias[r0 + j] = qn_round_to_dtype(bias[r0 + j] / s[j], dtype);
    return QN_OK;
}
