/* bench/forward: forward-pass throughput of a model folder against OpenBLAS sgemm of the same
 * matrix shapes, measured in the same run with the same thread count.
 *
 *   forward MODEL [--tokens 512] [--windows 4]
 *
 * Prints tokens/s of qn_llm_forward over windows of T tokens, the achieved GFLOP/s of its matrix
 * products (2·T·(Linear + lm_head parameters) per window / forward time: everything else the
 * forward does counts against it), the GFLOP/s of bare cblas_sgemm on the same shapes, and the ratio. */
#include <cblas.h>
#undef I
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quench/model.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double time_sgemm(int64_t T, int64_t out, int64_t in, int reps) {
    float *x = malloc(sizeof(float) * T * in), *w = malloc(sizeof(float) * out * in), *y = malloc(sizeof(float) * T * out);
    for (int64_t i = 0; i < T * in; i++) x[i] = (float)((i * 7919) % 1000) * 1e-3f;
    for (int64_t i = 0; i < out * in; i++) w[i] = (float)((i * 104729) % 1000) * 1e-3f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)out, (int)in, 1.0f, x, (int)in, w, (int)in, 0.0f, y, (int)out);
    double t0 = now();
    for (int r = 0; r < reps; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)out, (int)in, 1.0f, x, (int)in, w, (int)in, 0.0f, y, (int)out);
    double dt = (now() - t0) / reps;
    free(x); free(w); free(y);
    return dt;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: forward MODEL [--tokens T] [--windows N]\n"); return 2; }
    int64_t T = 512, windows = 4;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens")) T = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--windows")) windows = atoll(argv[i + 1]);
    }
    qn_error err = {0};
    qn_model *m;
    if (qn_model_open(argv[1], &m, &err)) { fprintf(stderr, "forward: %s\n", err.msg); return 1; }
    const qn_model_config *c = &m->cfg;
    qn_llm *llm;
    double tl = now();
    if (qn_llm_create(m, T, &llm, &err)) { fprintf(stderr, "forward: %s\n", err.msg); return 1; }
    double load_s = now() - tl;
    int32_t *ids = malloc(sizeof(int32_t) * T);
    float *logits = malloc(sizeof(float) * T * c->vocab_size);
    uint64_t s = 42;
    for (int64_t i = 0; i < T; i++) { s = s * 6364136223846793005ULL + 1; ids[i] = (int32_t)((s >> 33) % 500); }
    qn_llm_forward(llm, ids, T, 0, logits, 0, &err);  /* warm-up */
    double t0 = now();
    for (int64_t w = 0; w < windows; w++)
        if (qn_llm_forward(llm, ids, T, 0, logits, 0, &err)) { fprintf(stderr, "forward: %s\n", err.msg); return 1; }
    double fw = (now() - t0) / windows;
    /* the shapes of one window */
    int64_t H = c->hidden_size, q = c->num_attention_heads * c->head_dim, kv = c->num_key_value_heads * c->head_dim;
    int64_t I = c->intermediate_size, V = c->vocab_size, L = c->num_hidden_layers;
    struct { int64_t out, in, count; } sh[] = {{q, H, L}, {kv, H, 2 * L}, {H, q, L}, {I, H, 2 * L}, {H, I, L}, {V, H, 1}};
    double flops = 0, sg = 0;
    int reps = 3;
    for (size_t i = 0; i < sizeof sh / sizeof *sh; i++) {
        double f = 2.0 * T * sh[i].out * sh[i].in * sh[i].count;
        flops += f;
        sg += time_sgemm(T, sh[i].out, sh[i].in, reps) * sh[i].count;
    }
    printf("model            %s (%lld layers, hidden %lld, intermediate %lld, vocab %lld)\n", argv[1], (long long)L,
           (long long)H, (long long)I, (long long)V);
    printf("threads          %d (OpenMP), load %.2f s\n", omp_get_max_threads(), load_s);
    printf("forward          %.3f s per %lld-token window = %.1f tokens/s\n", fw, (long long)T, T / fw);
    printf("matmul GFLOP     %.2f per window\n", flops * 1e-9);
    printf("forward rate     %.2f GFLOP/s (matrix-product FLOPs / whole forward time)\n", flops / fw * 1e-9);
    printf("sgemm rate       %.2f GFLOP/s (cblas_sgemm, same shapes, same threads)\n", flops / sg * 1e-9);
    printf("ratio            %.1f%% of sgemm (target >= 60%%)\n", 100.0 * sg / fw);
    free(ids); free(logits);
    qn_llm_free(llm);
    qn_model_close(m);
    return 0;
}
