/* Autoregressive generation with the KV cache: greedy or temperature + nucleus (top-p) sampling. */
#include "quench/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_next(uint64_t *s) {   /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static float rng_unit(uint64_t *s) { return (float)(rng_next(s) >> 40) / 16777216.0f; }

static int64_t argmax(const float *x, int64_t n) {
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

typedef struct { float p; int32_t id; } prob_id;
static int cmp_prob_desc(const void *a, const void *b) {
    float pa = ((const prob_id *)a)->p, pb = ((const prob_id *)b)->p;
    return (pa < pb) - (pa > pb);
}

/* Samples from softmax(logits / temp) restricted to the smallest prefix with mass >= top_p. */
static int32_t sample(float *logits, int64_t V, float temp, float top_p, prob_id *buf, uint64_t *rng) {
    float mx = logits[argmax(logits, V)];
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        float p = expf((logits[i] - mx) / temp);
        buf[i].p = p;
        buf[i].id = (int32_t)i;
        sum += p;
    }
    for (int64_t i = 0; i < V; i++) buf[i].p = (float)(buf[i].p / sum);
    int64_t n = V;
    if (top_p > 0.0f && top_p < 1.0f) {
        qsort(buf, (size_t)V, sizeof *buf, cmp_prob_desc);
        double c = 0;
        for (n = 0; n < V; n++) {
            c += buf[n].p;
            if (c >= top_p) { n++; break; }
        }
        if (n > V) n = V;
    }
    double mass = 0;
    for (int64_t i = 0; i < n; i++) mass += buf[i].p;
    double r = rng_unit(rng) * mass, c = 0;
    for (int64_t i = 0; i < n; i++) {
        c += buf[i].p;
        if (r < c) return buf[i].id;
    }
    return buf[n - 1].id;
}

qn_status qn_generate(qn_llm *llm, const int32_t *prompt, int64_t n_prompt, const qn_gen_opts *o, int32_t **out_ids,
                      int64_t *out_n, qn_error *err) {
    *out_ids = NULL;
    *out_n = 0;
    if (n_prompt <= 0) return qn_error_set(err, QN_ERR_INVALID_ARG, "the prompt has no tokens");
    int64_t V = qn_llm_config(llm)->vocab_size, total = n_prompt + o->max_new_tokens;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)total);
    float *logits = malloc(sizeof(float) * (size_t)V);
    prob_id *buf = o->temperature > 0 ? malloc(sizeof(prob_id) * (size_t)V) : NULL;
    if (!ids || !logits || (o->temperature > 0 && !buf)) {
        free(ids); free(logits); free(buf);
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory");
    }
    memcpy(ids, prompt, sizeof(int32_t) * (size_t)n_prompt);
    uint64_t rng = o->seed ? o->seed : 0x9E3779B97F4A7C15ULL;
    int64_t n = n_prompt;
    qn_status st = qn_llm_forward(llm, ids, n_prompt, 0, logits, 1, err);
    while (!st && n < total) {
        int32_t next = o->temperature > 0 ? sample(logits, V, o->temperature, o->top_p, buf, &rng)
                                          : (int32_t)argmax(logits, V);
        ids[n++] = next;
        int stop = 0;
        for (int i = 0; i < o->n_stop; i++) if (o->stop_ids[i] == next) stop = 1;
        if (stop || n >= total) break;
        st = qn_llm_forward(llm, &ids[n - 1], 1, n - 1, logits, 1, err);
    }
    free(logits);
    free(buf);
    if (st) { free(ids); return st; }
    *out_ids = ids;
    *out_n = n;
    return QN_OK;
}
