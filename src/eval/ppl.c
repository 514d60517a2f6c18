/* Perplexity over documents cut into BOS-prefixed windows. */
#include "quench/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int qn_ppl_mode_from_name(const char *name, qn_ppl_mode *out) {
    if (!strcmp(name, "stream")) *out = QN_PPL_STREAM;
    else if (!strcmp(name, "lines")) *out = QN_PPL_LINES;
    else if (!strcmp(name, "stories")) *out = QN_PPL_STORIES;
    else return -1;
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

static qn_status push_doc(size_t **starts, size_t **lens, int64_t *n, int64_t *cap, size_t s, size_t l,
                          qn_error *err) {
    if (*n == *cap) {
        int64_t nc = *cap ? *cap * 2 : 64;
        size_t *a = realloc(*starts, sizeof(size_t) * nc), *b;
        if (!a) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        *starts = a;
        b = realloc(*lens, sizeof(size_t) * nc);
        if (!b) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
        *lens = b;
        *cap = nc;
    }
    (*starts)[*n] = s;
    (*lens)[*n] = l;
    (*n)++;
    return QN_OK;
}

qn_status qn_ppl_split(const char *text, size_t len, qn_ppl_mode mode, size_t **starts, size_t **lens,
                       int64_t *n_docs, qn_error *err) {
    *starts = NULL; *lens = NULL; *n_docs = 0;
    int64_t cap = 0;
    qn_status st = QN_OK;
    if (mode == QN_PPL_STREAM) {
        if (len) st = push_doc(starts, lens, n_docs, &cap, 0, len, err);
    } else if (mode == QN_PPL_LINES) {
        size_t b = 0;
        for (size_t i = 0; i <= len && !st; i++) {
            if (i == len || text[i] == '\n') {
                size_t e = i;
                if (e > b && text[e - 1] == '\r') e--;
                int blank = 1;
                for (size_t j = b; j < e; j++) if (!is_space(text[j])) { blank = 0; break; }
                if (!blank) st = push_doc(starts, lens, n_docs, &cap, b, e - b, err);
                b = i + 1;
            }
        }
    } else {
        static const char marker[] = "<|endoftext|>";
        size_t ml = sizeof marker - 1, b = 0;
        while (b <= len && !st) {
            const char *p = NULL;
            for (size_t i = b; i + ml <= len; i++)
                if (text[i] == '<' && !memcmp(text + i, marker, ml)) { p = text + i; break; }
            size_t e = p ? (size_t)(p - text) : len;
            size_t s0 = b, e0 = e;
            while (s0 < e0 && is_space(text[s0])) s0++;
            while (e0 > s0 && is_space(text[e0 - 1])) e0--;
            if (e0 > s0) st = push_doc(starts, lens, n_docs, &cap, s0, e0 - s0, err);
            if (!p) break;
            b = e + ml;
        }
    }
    if (st) { free(*starts); free(*lens); *starts = NULL; *lens = NULL; *n_docs = 0; }
    return st;
}

qn_status qn_eval_window(qn_llm *llm, const int32_t *ids, int64_t n, float *logits, double *nll_sum,
                         qn_error *err) {
    if (n < 2) return QN_OK;
    qn_status st = qn_llm_forward(llm, ids, n, 0, logits, 0, err);
    if (st) return st;
    int64_t V = qn_llm_config(llm)->vocab_size;
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum)
    for (int64_t p = 0; p < n - 1; p++) {
        const float *lg = logits + p * V;
        float mx = lg[0];
        for (int64_t v = 1; v < V; v++) if (lg[v] > mx) mx = lg[v];
        double se = 0.0;
        for (int64_t v = 0; v < V; v++) se += exp((double)(lg[v] - mx));
        sum += (double)mx + log(se) - (double)lg[ids[p + 1]];
    }
    *nll_sum += sum;
    return QN_OK;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *qn_text_crlf_to_lf(const char *text, size_t len, size_t *out_len) {
    char *b = malloc(len + 1);
    if (!b) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n') continue;
        b[n++] = text[i];
    }
    b[n] = 0;
    *out_len = n;
    return b;
}

qn_status qn_eval_ppl(qn_llm *llm, const qn_tokenizer *tok, const char *text_in, size_t len_in, qn_ppl_mode mode,
                      int64_t window, int64_t max_tokens, qn_progress_fn progress, void *user,
                      qn_ppl_result *out, qn_error *err) {
    memset(out, 0, sizeof *out);
    if (window < 2) return qn_error_set(err, QN_ERR_INVALID_ARG, "--window must be at least 2 (got %lld)", (long long)window);
    const qn_model_config *c = qn_llm_config(llm);
    int32_t bos = qn_tokenizer_bos_id(tok);
    if (bos < 0) bos = c->bos_token_id;
    int64_t per = bos >= 0 ? window - 1 : window;  /* tokens of the document per window */
    size_t len;
    char *text = qn_text_crlf_to_lf(text_in, len_in, &len);
    if (!text) return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    size_t *starts = NULL, *lens = NULL;
    int64_t ndocs = 0;
    int32_t *ids = NULL, *win = NULL;
    float *logits = NULL;
    qn_status st = qn_ppl_split(text, len, mode, &starts, &lens, &ndocs, err);
    if (st) goto done;
    win = malloc(sizeof(int32_t) * (size_t)window);
    logits = malloc(sizeof(float) * (size_t)window * (size_t)c->vocab_size);
    if (!win || !logits) { st = qn_error_set(err, QN_ERR_NOMEM, "out of memory for %lld-token windows", (long long)window); goto done; }
    double t0 = now_s(), run_tokens = 0;
    int stop = 0;
    for (int64_t d = 0; d < ndocs && !stop; d++) {
        size_t n = 0;
        free(ids); ids = NULL;
        if ((st = qn_tokenizer_encode(tok, text + starts[d], lens[d], 0, &ids, &n, err))) goto done;
        out->docs++;
        for (size_t off = 0; off < n && !stop; off += (size_t)per) {
            int64_t k = (int64_t)(n - off) < per ? (int64_t)(n - off) : per, w = 0;
            if (bos >= 0) win[w++] = bos;
            memcpy(win + w, ids + off, sizeof(int32_t) * (size_t)k);
            w += k;
            if (bos < 0 && w < 2) continue;
            if ((st = qn_eval_window(llm, win, w, logits, &out->nll_sum, err))) goto done;
            out->tokens_scored += w - 1;
            out->windows++;
            run_tokens += (double)w;
            if (progress) progress(user, out->windows, 0);
            if (max_tokens > 0 && out->tokens_scored >= max_tokens) stop = 1;
        }
    }
    out->seconds = now_s() - t0;
    out->tokens_per_second = out->seconds > 0 ? run_tokens / out->seconds : 0;
    if (out->tokens_scored == 0) { st = qn_error_set(err, QN_ERR_INVALID_ARG, "the text has no tokens to score"); goto done; }
    out->mean_nll = out->nll_sum / (double)out->tokens_scored;
    out->ppl = exp(out->mean_nll);
done:
    free(text); free(starts); free(lens); free(ids); free(win); free(logits);
    return st;
}
