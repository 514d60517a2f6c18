#include "quench/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

qn_status qn_error_set(qn_error *err, qn_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void qn_error_prefix(qn_error *err, const char *fmt, ...) {
    if (!err) return;
    char pre[QN_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char both[2 * QN_ERROR_MSG_MAX + 4];
    snprintf(both, sizeof both, "%s: %s", pre, err->msg);
    memcpy(err->msg, both, QN_ERROR_MSG_MAX - 1);
    err->msg[QN_ERROR_MSG_MAX - 1] = 0;
}

const char *qn_status_name(qn_status s) {
    switch (s) {
    case QN_OK: return "ok";
    case QN_ERR_IO: return "I/O error";
    case QN_ERR_FORMAT: return "format error";
    case QN_ERR_UNSUPPORTED: return "unsupported";
    case QN_ERR_INVALID_ARG: return "invalid argument";
    case QN_ERR_NOMEM: return "out of memory";
    case QN_ERR_NOT_FOUND: return "not found";
    case QN_ERR_INTERNAL: return "internal error";
    }
    return "unknown";
}
