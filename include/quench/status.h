/* quench — status codes and error messages shared by every module.
 *
 * Every fallible library function returns a qn_status and, on failure, fills a caller-owned
 * qn_error with one line naming the file, tensor or field at fault. The library never prints
 * and never exits; src/cli turns an error into one stderr line and a non-zero exit code.
 *
 *   qn_error err = {0};
 *   if (qn_st_open("m.safetensors", &f, &err) != QN_OK) fprintf(stderr, "%s\n", err.msg);
 */
#ifndef QUENCH_STATUS_H
#define QUENCH_STATUS_H

#include <stddef.h>

typedef enum {
    QN_OK = 0,
    QN_ERR_IO,          /* file missing, unreadable, short read, write failure */
    QN_ERR_FORMAT,      /* malformed input: bad header, bad JSON, inconsistent sizes */
    QN_ERR_UNSUPPORTED, /* valid input that quench does not handle (architecture, dtype, scheme) */
    QN_ERR_INVALID_ARG, /* bad argument from the caller / command line */
    QN_ERR_NOMEM,       /* allocation failed or a size exceeds a bound */
    QN_ERR_NOT_FOUND,   /* a named tensor / field / file does not exist */
    QN_ERR_INTERNAL
} qn_status;

#define QN_ERROR_MSG_MAX 1024

typedef struct {
    qn_status code;
    char msg[QN_ERROR_MSG_MAX];
} qn_error;

/* Records an error (printf-style) and returns `code`, so callers can write
 *   return qn_error_set(err, QN_ERR_FORMAT, "%s: tensor '%s': ...", path, name);
 * `err` may be NULL. */
qn_status qn_error_set(qn_error *err, qn_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (for adding context while unwinding). */
void qn_error_prefix(qn_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *qn_status_name(qn_status s);

#endif
