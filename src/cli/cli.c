#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void print_usage(const cli_opt *opts, const char *usage, FILE *f) {
    fprintf(f, "%s\n", usage);
    if (!opts || !opts->name) return;
    fprintf(f, "\nOptions:\n");
    for (const cli_opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->kind == CLI_FLAG ? "" : " ",
                 o->kind == CLI_FLAG ? "" : (o->metavar ? o->metavar : "VALUE"));
        fprintf(f, "  %-28s %s\n", left, o->help ? o->help : "");
    }
    fprintf(f, "  %-28s %s\n", "--help", "show this help");
}

int cli_parse(int argc, char **argv, const cli_opt *opts, const char *usage, char **pos, int max_pos, int *n_pos) {
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage(opts, usage, stdout);
            return 1;
        }
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a, '=');
            size_t nl = eq ? (size_t)(eq - a) : strlen(a);
            const cli_opt *o = NULL;
            for (const cli_opt *p = opts; p && p->name; p++)
                if (strlen(p->name) == nl && !strncmp(p->name, a, nl)) { o = p; break; }
            if (!o) {
                fprintf(stderr, "quench %s: unknown option '%.*s' (see quench %s --help)\n", argv[0], (int)nl, a, argv[0]);
                return 2;
            }
            if (o->kind == CLI_FLAG) {
                if (eq) { fprintf(stderr, "quench %s: option %s takes no value\n", argv[0], o->name); return 2; }
                *(int *)o->dst = 1;
                continue;
            }
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) { fprintf(stderr, "quench %s: option %s needs a value\n", argv[0], o->name); return 2; }
            char *end = NULL;
            errno = 0;
            if (o->kind == CLI_STR) *(const char **)o->dst = v;
            else if (o->kind == CLI_INT) {
                long long x = strtoll(v, &end, 10);
                if (errno || !*v || *end) { fprintf(stderr, "quench %s: %s expects an integer, got '%s'\n", argv[0], o->name, v); return 2; }
                *(int64_t *)o->dst = x;
            } else {
                double x = strtod(v, &end);
                if (errno || !*v || *end) { fprintf(stderr, "quench %s: %s expects a number, got '%s'\n", argv[0], o->name, v); return 2; }
                *(double *)o->dst = x;
            }
            continue;
        }
        if (*n_pos >= max_pos) {
            fprintf(stderr, "quench %s: unexpected argument '%s' (see quench %s --help)\n", argv[0], a, argv[0]);
            return 2;
        }
        pos[(*n_pos)++] = argv[i];
    }
    return 0;
}

int cli_fail(const char *cmd, const qn_error *err) {
    fprintf(stderr, "quench %s: %s\n", cmd, err->msg[0] ? err->msg : qn_status_name(err->code));
    return 1;
}

int cli_failf(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "quench %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_init(cli_progress *p, const char *what, int quiet) {
    p->what = what;
    p->enabled = !quiet && isatty(STDERR_FILENO) && !getenv("CI");
    p->t0 = p->last = cli_now();
}

void cli_progress_cb(void *user, int64_t done, int64_t total) {
    cli_progress *p = user;
    if (!p->enabled) return;
    double t = cli_now();
    if (t - p->last < 0.2 && done != total) return;
    p->last = t;
    double el = t - p->t0;
    if (total > 0) {
        double eta = done > 0 ? el * (double)(total - done) / (double)done : 0;
        fprintf(stderr, "\r%s %lld/%lld  %.1fs elapsed, ETA %.1fs   ", p->what, (long long)done, (long long)total, el, eta);
    } else {
        fprintf(stderr, "\r%s %lld  %.1fs elapsed   ", p->what, (long long)done, el);
    }
}

void cli_progress_end(cli_progress *p) {
    if (p->enabled) fprintf(stderr, "\r\033[K");
}

int cli_read_file(const char *path, char **data, size_t *len, qn_error *err) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qn_error_set(err, QN_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return qn_error_set(err, QN_ERR_IO, "%s: not a regular file", path);
    }
    char *b = malloc((size_t)sb.st_size + 1);
    if (!b) { fclose(f); return qn_error_set(err, QN_ERR_NOMEM, "%s: out of memory", path); }
    size_t n = fread(b, 1, (size_t)sb.st_size, f);
    fclose(f);
    if (n != (size_t)sb.st_size) { free(b); return qn_error_set(err, QN_ERR_IO, "%s: short read", path); }
    b[n] = 0;
    *data = b;
    *len = n;
    return 0;
}

const char *cli_bytes(double b, char *buf, size_t n) {
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000.0 && i < 4) { b /= 1000.0; i++; }
    snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", b, u[i]);
    return buf;
}

const char *cli_count(double x, char *buf, size_t n) {
    const char *u[] = {"", " K", " M", " B", " T"};
    int i = 0;
    while (x >= 1000.0 && i < 4) { x /= 1000.0; i++; }
    snprintf(buf, n, i ? "%.2f%s" : "%.0f%s", x, u[i]);
    return buf;
}

uint64_t cli_safetensors_bytes(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t total = 0;
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 12 || strcmp(e->d_name + l - 12, ".safetensors")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (!stat(p, &sb) && S_ISREG(sb.st_mode)) total += (uint64_t)sb.st_size;
    }
    closedir(d);
    return total;
}
