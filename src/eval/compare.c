/* Original vs compressed: perplexity on the same windows, per-token KL, top-1 agreement, and the
 * relative error of every Linear weight. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quench/eval.h"
#include "quench/export.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* KL and argmax agreement over the first n positions of two [n, V] logit blocks. */
static void compare_logits(const float *a, const float *b, int64_t n, int64_t V, double *kl_sum, double *kl_max,
                           int64_t *agree) {
    double ks = 0, km = *kl_max;
    int64_t ag = 0;
#pragma omp parallel for reduction(+ : ks, ag) reduction(max : km)
    for (int64_t p = 0; p < n; p++) {
        const float *x = a + p * V, *y = b + p * V;
        float mx = x[0], my = y[0];
        int64_t ax = 0, ay = 0;
        for (int64_t v = 1; v < V; v++) {
            if (x[v] > mx) { mx = x[v]; ax = v; }
            if (y[v] > my) { my = y[v]; ay = v; }
        }
        double sx = 0, sy = 0;
        for (int64_t v = 0; v < V; v++) {
            sx += exp((double)(x[v] - mx));
            sy += exp((double)(y[v] - my));
        }
        double lx = log(sx), ly = log(sy), kl = 0;
        for (int64_t v = 0; v < V; v++) {
            double lp = (double)(x[v] - mx) - lx, lq = (double)(y[v] - my) - ly;
            kl += exp(lp) * (lp - lq);
        }
        if (kl < 0) kl = 0;   /* rounding */
        ks += kl;
        if (kl > km) km = kl;
        ag += ax == ay;
    }
    *kl_sum += ks;
    *kl_max = km;
    *agree += ag;
}


static void finish_ppl(qn_ppl_result *r, double seconds, double run_tokens) {
    r->seconds = seconds;
    r->tokens_per_second = seconds > 0 ? run_tokens / seconds : 0;
    r->mean_nll = r->tokens_scored ? r->nll_sum / (double)r->tokens_scored : 0;
    r->ppl = exp(r->mean_nll);
}

/* One window through both models: NLL sums, KL, agreement, counts. */
static qn_status compare_window(qn_llm *A, qn_llm *B, const int32_t *win, int64_t w, float *la, float *lb,
                                qn_compare_result *out, double *kl_sum, int64_t *agree, double *ta, double *tb,
                                qn_error *err) {
    double t0 = now_s();
    qn_status st = qn_eval_window(A, win, w, la, &out->original.nll_sum, err);
    if (st) return st;
    double t1 = now_s();
    if ((st = qn_eval_window(B, win, w, lb, &out->compressed.nll_sum, err))) return st;
    *tb += now_s() - t1;
    *ta += t1 - t0;
    compare_logits(la, lb, w - 1, qn_llm_config(A)->vocab_size, kl_sum, &out->kl_max, agree);
    out->positions += w - 1;
    out->original.tokens_scored += w - 1;
    out->compressed.tokens_scored += w - 1;
    out->original.windows++;
    out->compressed.windows++;
    return QN_OK;
}

qn_status qn_compare_samples(qn_llm *A, qn_llm *B, const qn_calib_set *set, qn_compare_result *out, qn_error *err) {
    memset(out, 0, sizeof *out);
    const qn_model_config *ca = qn_llm_config(A), *cb = qn_llm_config(B);
    if (ca->vocab_size != cb->vocab_size)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "the models have different vocabularies (%lld vs %lld tokens)",
                            (long long)ca->vocab_size, (long long)cb->vocab_size);
    int64_t maxn = 0;
    for (int64_t i = 0; i < set->n; i++) if (set->samples[i].n > maxn) maxn = set->samples[i].n;
    float *la = malloc(sizeof(float) * (size_t)(maxn ? maxn : 1) * (size_t)ca->vocab_size);
    float *lb = malloc(sizeof(float) * (size_t)(maxn ? maxn : 1) * (size_t)ca->vocab_size);
    qn_status st = QN_OK;
    if (!la || !lb) st = qn_error_set(err, QN_ERR_NOMEM, "out of memory for the held-out logits");
    double kl_sum = 0, ta = 0, tb = 0, run = 0;
    int64_t agree = 0;
    for (int64_t i = 0; i < set->n && !st; i++) {
        if (set->samples[i].n < 2) continue;
        st = compare_window(A, B, set->samples[i].ids, set->samples[i].n, la, lb, out, &kl_sum, &agree, &ta, &tb, err);
        run += (double)set->samples[i].n;
        out->original.docs++;
        out->compressed.docs++;
    }
    free(la);
    free(lb);
    if (st) return st;
    if (!out->positions) return qn_error_set(err, QN_ERR_INVALID_ARG, "no held-out positions to compare");
    finish_ppl(&out->original, ta, run);
    finish_ppl(&out->compressed, tb, run);
    out->kl_mean = kl_sum / (double)out->positions;
    out->top1_agreement = (double)agree / (double)out->positions;
    return QN_OK;
}

qn_status qn_compare_eval(qn_llm *A, qn_llm *B, const qn_tokenizer *tok, const char *text_in, size_t len_in,
                          qn_ppl_mode mode, int64_t window, int64_t max_tokens, qn_progress_fn progress, void *user,
                          qn_compare_result *out, qn_error *err) {
    memset(out, 0, sizeof *out);
    if (window < 2) return qn_error_set(err, QN_ERR_INVALID_ARG, "--window must be at least 2 (got %lld)", (long long)window);
    const qn_model_config *ca = qn_llm_config(A), *cb = qn_llm_config(B);
    if (ca->vocab_size != cb->vocab_size)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "the models have different vocabularies (%lld vs %lld tokens)",
                            (long long)ca->vocab_size, (long long)cb->vocab_size);
    const int64_t V = ca->vocab_size;
    int32_t bos = qn_tokenizer_bos_id(tok);
    if (bos < 0) bos = ca->bos_token_id;
    int64_t per = bos >= 0 ? window - 1 : window;
    size_t len;
    char *text = qn_text_crlf_to_lf(text_in, len_in, &len);
    if (!text) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    size_t *starts = NULL, *lens = NULL;
    int64_t ndocs = 0;
    int32_t *ids = NULL, *win = NULL;
    float *la = NULL, *lb = NULL;
    qn_status st = qn_ppl_split(text, len, mode, &starts, &lens, &ndocs, err);
    if (st) goto done;
    win = malloc(sizeof(int32_t) * (size_t)window);
    la = malloc(sizeof(float) * (size_t)window * (size_t)V);
    lb = malloc(sizeof(float) * (size_t)window * (size_t)V);
    if (!win || !la || !lb) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory for %lld-token windows", (long long)window); goto done; }
    double ta = 0, tb = 0, run = 0, kl_sum = 0;
    int64_t agree = 0;
    int stop = 0;
    for (int64_t d = 0; d < ndocs && !stop; d++) {
        size_t n = 0;
        free(ids);
        ids = NULL;
        if ((st = qn_tokenizer_encode(tok, text + starts[d], lens[d], 0, &ids, &n, err))) goto done;
        out->original.docs++;
        out->compressed.docs++;
        for (size_t off = 0; off < n && !stop; off += (size_t)per) {
            int64_t k = (int64_t)(n - off) < per ? (int64_t)(n - off) : per, w = 0;
            if (bos >= 0) win[w++] = bos;
            memcpy(win + w, ids + off, sizeof(int32_t) * (size_t)k);
            w += k;
            if (w < 2) continue;
            if ((st = compare_window(A, B, win, w, la, lb, out, &kl_sum, &agree, &ta, &tb, err))) goto done;
            run += (double)w;
            if (progress) progress(user, out->original.windows, 0);
            if (max_tokens > 0 && out->original.tokens_scored >= max_tokens) stop = 1;
        }
    }
    if (out->positions == 0) { st = qn_error_set(err, QN_ERR_INVALID_ARG, "the text has no tokens to score"); goto done; }
    finish_ppl(&out->original, ta, run);
    finish_ppl(&out->compressed, tb, run);
    out->kl_mean = kl_sum / (double)out->positions;
    out->top1_agreement = (double)agree / (double)out->positions;
done:
    free(text);
    free(starts);
    free(lens);
    free(ids);
    free(win);
    free(la);
    free(lb);
    return st;
}

/* A weight as fp32: plain tensor, or dequantized from a compressed-tensors folder. */
static qn_status weight_f32(const qn_model *m, const char *name, int64_t numel, float **out, qn_error *err) {
    *out = NULL;
    if (m->cfg.has_quantization_config && qn_ct_is_compressed(m->tensors, name))
        return qn_ct_load_weight(m->dir, m->tensors, name, out, err);
    const qn_tensor *t = qn_st_set_find(m->tensors, name);
    if (!t) return qn_error_set(err, QN_ERR_NOT_FOUND, "%s: tensor '%s' is missing", m->dir, name);
    if (qn_tensor_numel(t) != numel)
        return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s' has %lld values, expected %lld", t->file, name,
                            (long long)qn_tensor_numel(t), (long long)numel);
    float *b = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
    if (!b) return qn_error_set(err, QN_ERR_NOMEM, "out of memory loading '%s'", name);
    qn_status st = qn_tensor_to_f32(t, b, err);
    if (st) { free(b); return st; }
    *out = b;
    return QN_OK;
}

qn_status qn_compare_weights(const qn_model *a, const qn_model *b, qn_weight_error **errs, size_t *n_out,
                             qn_error *err) {
    *errs = NULL;
    *n_out = 0;
    qn_module *mods;
    size_t nm;
    qn_status st = qn_export_list_modules(&a->cfg, a->tensors, &mods, &nm, err);
    if (st) return st;
    qn_weight_error *res = calloc(nm ? nm : 1, sizeof *res);
    size_t n = 0;
    if (!res) { qn_export_modules_free(mods, nm); return qn_error_set(err, QN_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < nm && !st; i++) {
        char wn[600];
        snprintf(wn, sizeof wn, "%s.weight", mods[i].name);
        if (!qn_st_set_find(a->tensors, wn)) continue;   /* tied lm_head */
        int compressed = b->cfg.has_quantization_config && qn_ct_is_compressed(b->tensors, wn);
        int64_t numel = mods[i].out * mods[i].in;
        float *x = NULL, *y = NULL;
        if ((st = weight_f32(a, wn, numel, &x, err))) break;
        if ((st = weight_f32(b, wn, numel, &y, err))) { free(x); break; }
        double num = 0, den = 0;
#pragma omp parallel for reduction(+ : num, den) if (numel > 65536)
        for (int64_t e = 0; e < numel; e++) {
            double d = (double)x[e] - (double)y[e];
            num += d * d;
            den += (double)x[e] * (double)x[e];
        }
        free(x);
        free(y);
        if (!compressed && num == 0) continue;
        snprintf(res[n].name, sizeof res[n].name, "%s", mods[i].name);
        res[n].out = mods[i].out;
        res[n].in = mods[i].in;
        res[n].rel_error = den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
        n++;
    }
    qn_export_modules_free(mods, nm);
    if (st) { free(res); return st; }
    *errs = res;
    *n_out = n;
    return QN_OK;
}
