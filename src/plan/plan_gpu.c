/* Built-in GPU table and the size/count parsers of `quench plan`.
 *
 * Memory figures. NVIDIA states GPU memory in "GB" that are binary (GiB) for all of these boards:
 * 24 GB on an RTX 3090 is 24 GiB of GDDR6X, 80 GB on an H100 is 80 GiB of HBM3. What a process can
 * use is the total the driver reports (nvidia-smi "memory.total"), which is a little lower (driver
 * reservation), and 1/16 lower again on GDDR6 datacenter boards that ship with ECC on (L4, L40S,
 * A10). vLLM's gpu_memory_utilization multiplies that reported total, so the table uses it:
 *
 *   GPU                        vendor figure          used here (MiB)   note
 *   RTX 3090                   24 GB GDDR6X           24576            = 24 GiB
 *   RTX 4090                   24 GB GDDR6X           24564
 *   RTX 5090                   32 GB GDDR7            32607
 *   L4                         24 GB GDDR6            23034            ECC on (15/16)
 *   L40S                       48 GB GDDR6            46068            ECC on (15/16)
 *   A10                        24 GB GDDR6            23028            ECC on (15/16)
 *   A100-40G                   40 GB HBM2             40960            = 40 GiB (SXM4; PCIe reports ~40536)
 *   A100-80G                   80 GB HBM2e            81920            = 80 GiB
 *   A800-80G                   80 GB HBM2e            81920            = 80 GiB
 *   H100-80G                   80 GB HBM3             81559            SXM5
 *   H200-141G                  141 GB HBM3e           143771           141 GiB − driver reservation
 *   B200                       180 GB HBM3e           183359           (192 GB physical; 180 exposed)
 *   RTX PRO 6000 Blackwell 96G 96 GB GDDR7            97887
 *
 * The MiB totals are the usual nvidia-smi readings from public logs (approximate to well under 1%);
 * anything else: --gpu-mem. Compute capabilities from NVIDIA's CUDA GPU list.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan_internal.h"

#define MIB (1024LL * 1024LL)

static const qn_gpu_info k_gpus[] = {
    {"RTX 3090", 24576 * MIB, 86},
    {"RTX 4090", 24564 * MIB, 89},
    {"RTX 5090", 32607 * MIB, 120},
    {"L4", 23034 * MIB, 89},
    {"L40S", 46068 * MIB, 89},
    {"A10", 23028 * MIB, 86},
    {"A100-40G", 40960 * MIB, 80},
    {"A100-80G", 81920 * MIB, 80},
    {"A800-80G", 81920 * MIB, 80},
    {"H100-80G", 81559 * MIB, 90},
    {"H200-141G", 143771 * MIB, 90},
    {"B200", 183359 * MIB, 100},
    {"RTX PRO 6000 Blackwell 96G", 97887 * MIB, 120},
};
#define N_GPUS ((int)(sizeof k_gpus / sizeof k_gpus[0]))

const qn_gpu_info *qn_plan_gpu_table(int *n) {
    if (n) *n = N_GPUS;
    return k_gpus;
}

/* lower-case, without spaces, '-' and '_' */
static void norm_name(const char *s, char *d, size_t n) {
    size_t k = 0;
    for (; *s && k + 1 < n; s++) {
        if (*s == ' ' || *s == '-' || *s == '_') continue;
        d[k++] = (char)tolower((unsigned char)*s);
    }
    d[k] = 0;
}

qn_status qn_plan_gpu_lookup(const char *name, qn_gpu_info *out, qn_error *err) {
    if (!name || !out) return qn_error_set(err, QN_ERR_INVALID_ARG, "gpu: NULL argument");
    char want[96], have[96];
    norm_name(name, want, sizeof want);
    if (!want[0]) return qn_error_set(err, QN_ERR_INVALID_ARG, "empty GPU name");
    for (int i = 0; i < N_GPUS; i++) {
        norm_name(k_gpus[i].name, have, sizeof have);
        if (!strcmp(want, have)) {
            *out = k_gpus[i];
            return QN_OK;
        }
    }
    int hit = -1, nhit = 0;
    char cand[512] = "";
    for (int i = 0; i < N_GPUS; i++) {
        norm_name(k_gpus[i].name, have, sizeof have);
        if (!strncmp(want, have, strlen(want))) {
            hit = i;
            nhit++;
            size_t l = strlen(cand);
            snprintf(cand + l, sizeof cand - l, "%s%s", l ? ", " : "", k_gpus[i].name);
        }
    }
    if (nhit == 1) {
        *out = k_gpus[hit];
        return QN_OK;
    }
    if (nhit > 1)
        return qn_error_set(err, QN_ERR_INVALID_ARG, "GPU '%.64s' is ambiguous (%s)", name, cand);
    char all[512] = "";
    for (int i = 0; i < N_GPUS; i++) {
        size_t l = strlen(all);
        snprintf(all + l, sizeof all - l, "%s%s", i ? ", " : "", k_gpus[i].name);
    }
    return qn_error_set(err, QN_ERR_INVALID_ARG, "unknown GPU '%.64s' (known: %s; or use --gpu-mem)",
                        name, all);
}

/* number (decimal point allowed) followed by an optional suffix; returns suffix pointer */
static int parse_num(const char *s, double *v, const char **suffix) {
    if (!s) return -1;
    while (isspace((unsigned char)*s)) s++;
    if (!*s || *s == '-' || *s == '+') return -1;
    errno = 0;
    char *end;
    double d = strtod(s, &end);
    if (end == s || errno || !isfinite(d) || d < 0) return -1;
    while (isspace((unsigned char)*end)) end++;
    *v = d;
    *suffix = end;
    return 0;
}

int qn_plan_parse_bytes(const char *s, int64_t *out) {
    double v;
    const char *u;
    if (parse_num(s, &v, &u)) return -1;
    struct {
        const char *suf;
        double mul;
    } const units[] = {
        {"", 1073741824.0},    {"b", 1.0},           {"k", 1024.0},          {"kib", 1024.0},
        {"kb", 1e3},           {"m", 1048576.0},     {"mib", 1048576.0},     {"mb", 1e6},
        {"g", 1073741824.0},   {"gib", 1073741824.0}, {"gb", 1e9},           {"t", 1099511627776.0},
        {"tib", 1099511627776.0}, {"tb", 1e12},
    };
    char low[8];
    size_t n = strlen(u);
    if (n >= sizeof low) return -1;
    for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)u[i]);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcmp(low, units[i].suf)) {
            double b = v * units[i].mul;
            if (b < 1 || b > 9.0e18) return -1;
            *out = (int64_t)llround(b);
            return 0;
        }
    }
    return -1;
}

int qn_plan_parse_count(const char *s, int64_t *out) {
    double v;
    const char *u;
    if (parse_num(s, &v, &u)) return -1;
    double mul = 1;
    if (!strcmp(u, "")) mul = 1;
    else if (!strcmp(u, "k") || !strcmp(u, "K")) mul = 1024;
    else if (!strcmp(u, "m") || !strcmp(u, "M")) mul = 1048576;
    else return -1;
    double r = v * mul;
    if (r < 1 || r > 4.0e15 || r != floor(r)) return -1;
    *out = (int64_t)r;
    return 0;
}
