/* bench/gptq_core: the numerical cores of GPTQ on TinyLlama-1.1B shapes, against OpenBLAS sgemm
 * measured in the same run with the same threads.
 *
 *   gptq_core [--tokens 65536] [--seq 512] [--reps 3] [--shape q|gate|down|all]
 *
 * Every figure is the best of --reps runs (the machine may be shared).
 *
 * Per shape (q_proj 2048x2048, gate/up_proj 5632x2048, down_proj 2048x5632; weight rows x cols)
 * with random calibration inputs X [tokens, cols] fed one sequence of --seq tokens at a time:
 *  - Hessian: qn_hessian_add over all sequences; GFLOP/s = cols^2 * tokens / s (the useful
 *    multiply-adds of the symmetric product, 2 flops each, counted once), next to cblas_sgemm
 *    computing the full X^T X of the first sequences (2 * cols^2 * K flops);
 *  - GPTQ (W4A16: int4 symmetric, group 128, actorder static, block 128): the inverse-Hessian
 *    factor alone (potrf + trtri in double, 2/3 cols^3 flops) and the whole qn_gptq_quantize; the
 *    sweep is the difference, GFLOP/s = (lazy-batch gemm + in-block flops) / sweep s, next to
 *    cblas_sgemm of rows x cols x 128 (the sweep's gemm shape) and rows x cols x 1024.
 * Prints figures; never fails on time. */
#include <cblas.h>
#undef I
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quench/algo.h"
#include "../src/algo/algo_internal.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *a, size_t n, uint64_t seed, float scale) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        /* sum of 4 uniforms: roughly gaussian, mean 0 */
        double s = 0;
        for (int k = 0; k < 4; k++) s += (double)((z >> (16 * k)) & 0xFFFF) / 65536.0 - 0.5;
        a[i] = (float)(s * scale);
    }
}

/* Seconds of one rows x cols x k sgemm (best of reps after a warm-up). */
static double time_sgemm(int64_t m, int64_t n, int64_t k, int transa, int reps) {
    float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(k * n));
    float *c = malloc(sizeof(float) * (size_t)(m * n));
    fill(a, (size_t)(m * k), 1, 1.0f);
    fill(b, (size_t)(k * n), 2, 1.0f);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        if (transa) /* C = A^T B with A [k, m] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, a,
                        (int)m, b, (int)n, 0.0f, c, (int)n);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, a,
                        (int)k, b, (int)n, 0.0f, c, (int)n);
        double dt = now() - t0;
        if (r && dt < best) best = dt;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

static int fail(const qn_error *err) {
    fprintf(stderr, "gptq_core: %s\n", err->msg);
    return 1;
}

static int run_shape(const char *name, int64_t rows, int64_t cols, int64_t tokens, int64_t seq,
                     int reps) {
    qn_error err = {0};
    printf("%s: weight %lld x %lld, X %lld tokens (%lld sequences of %lld), best of %d\n", name,
           (long long)rows, (long long)cols, (long long)tokens, (long long)((tokens + seq - 1) / seq),
           (long long)seq, reps);
    /* Hessian, one sequence per call as the pipeline feeds it */
    float *x = malloc(sizeof(float) * (size_t)(tokens * cols));
    if (!x) { fprintf(stderr, "gptq_core: out of memory for X\n"); return 1; }
    fill(x, (size_t)(tokens * cols), 3, 1.0f);
    qn_hessian h;
    double th = 1e30;
    for (int r = 0; r < reps; r++) {
        if (qn_hessian_init(&h, cols, &err)) return fail(&err);
        double t0 = now();
        for (int64_t t = 0; t < tokens; t += seq)
            if (qn_hessian_add(&h, x + t * cols, tokens - t < seq ? tokens - t : seq, cols, 1, &err))
                return fail(&err);
        qn_hessian_finalize(&h);
        double dt = now() - t0;
        if (dt < th) th = dt;
        if (r + 1 < reps) qn_hessian_free(&h);
    }
    const double hflops = (double)cols * (double)cols * (double)tokens;
    free(x);
    const int64_t K = tokens < 8192 ? tokens : 8192;
    const double ts = time_sgemm(cols, cols, K, 1, reps);
    const double hg = hflops / th * 1e-9, sg = 2.0 * cols * cols * K / ts * 1e-9;
    printf("  hessian   %8.3f s  %7.1f GFLOP/s | sgemm %lldx%lldx%lld %7.1f GFLOP/s | ratio %5.1f%%\n",
           th, hg, (long long)cols, (long long)cols, (long long)K, sg, 100 * hg / sg);

    /* GPTQ: the factor alone (fp64 as used, and fp32), then the whole call */
    float *H = malloc(sizeof(float) * (size_t)(cols * cols));
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)cols);
    uint8_t *dead = malloc((size_t)cols);
    double tf = 1e30, tf32 = 1e30;
    for (int r = 0; r < 2 * reps; r++) {
        memcpy(H, h.h, sizeof(float) * (size_t)(cols * cols));
        qna_hinv_cfg cfg = {0.01, 1.0, 0, r % 2 == 0, 0};
        qna_hinv hv;
        double t0 = now();
        qna_argsort_diag_desc(H, cols, perm);
        if (qna_hinv_build(H, cols, perm, &cfg, dead, &hv, "bench", &err)) return fail(&err);
        double dt = now() - t0;
        qna_hinv_free(&hv);
        if (r % 2 == 0 && dt < tf) tf = dt;
        if (r % 2 == 1 && dt < tf32) tf32 = dt;
    }
    float *w0 = malloc(sizeof(float) * (size_t)(rows * cols)), *w = malloc(sizeof(float) * (size_t)(rows * cols));
    fill(w0, (size_t)(rows * cols), 4, 0.05f);
    qn_quant_scheme s;
    if (qn_scheme_preset("W4A16", &s, &err)) return fail(&err);
    s.weights.actorder = QN_ACTORDER_STATIC; /* GPTQModifier's default */
    qn_gptq_opts o;
    qn_gptq_opts_init(&o);
    qn_qparams p;
    qn_gptq_report rep;
    int8_t *codes = malloc((size_t)(rows * cols));
    double tg = 1e30;
    for (int r = 0; r < reps; r++) {
        memcpy(H, h.h, sizeof(float) * (size_t)(cols * cols));
        memcpy(w, w0, sizeof(float) * (size_t)(rows * cols));
        double t0 = now();
        if (qn_gptq_quantize(w, rows, cols, H, &s.weights, QN_DT_BF16, &o, &p, NULL, codes, &rep, &err))
            return fail(&err);
        double dt = now() - t0;
        if (dt < tg) tg = dt;
        qn_qparams_free(&p);
    }
    double sflops = 0;
    for (int64_t i1 = 0; i1 < cols; i1 += o.block_size) {
        const int64_t cnt = cols - i1 < o.block_size ? cols - i1 : o.block_size;
        sflops += 2.0 * rows * cnt * (double)(cols - i1 - cnt) + (double)rows * cnt * (cnt - 1);
    }
    const double tsw = tg - tf > 1e-9 ? tg - tf : 1e-9;
    const double fflops = 2.0 / 3.0 * (double)cols * cols * cols;
    const double s128 = time_sgemm(rows, cols, 128, 0, reps), s1k = time_sgemm(rows, cols, 1024, 0, reps);
    const double g128 = 2.0 * rows * cols * 128 / s128 * 1e-9, g1k = 2.0 * rows * cols * 1024 / s1k * 1e-9;
    const double gs = sflops / tsw * 1e-9;
    printf("  factor    %8.3f s  %7.1f GFLOP/s (fp64 potrf + trtri; fp32 would take %.3f s)\n", tf,
           fflops / tf * 1e-9, tf32);
    printf("  sweep     %8.3f s  %7.1f GFLOP/s | sgemm %lldx%lldx128 %7.1f, x1024 %7.1f GFLOP/s | "
           "ratio %5.1f%% / %5.1f%%\n",
           tsw, gs, (long long)rows, (long long)cols, g128, g1k, 100 * gs / g128, 100 * gs / g1k);
    printf("  gptq call %8.3f s  (%.1f%% factor; with codes), loss %.4g, damp %.3g, retries %d\n",
           tg, 100 * tf / tg, rep.loss, rep.damp_frac, rep.retries);
    qn_quant_scheme_free(&s);
    qn_hessian_free(&h);
    free(codes);
    free(w0);
    free(w);
    free(H);
    free(perm);
    free(dead);
    return 0;
}

int main(int argc, char **argv) {
    int64_t tokens = 128 * 512, seq = 512;
    int reps = 3;
    const char *shape = "all";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens")) tokens = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--seq")) seq = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--shape")) shape = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: gptq_core [--tokens N] [--seq T] [--reps R] [--shape q|gate|down|all]\n");
            return 2;
        }
    }
    if (tokens < 1 || seq < 1 || reps < 1) return 2;
    printf("gptq_core: %d threads\n", omp_get_max_threads());
    int all = !strcmp(shape, "all"), rc = 0;
    if (all || !strcmp(shape, "q")) rc |= run_shape("q_proj", 2048, 2048, tokens, seq, reps);
    if (all || !strcmp(shape, "gate")) rc |= run_shape("gate/up_proj", 5632, 2048, tokens, seq, reps);
    if (all || !strcmp(shape, "down")) rc |= run_shape("down_proj", 2048, 5632, tokens, seq, reps);
    return rc;
}
