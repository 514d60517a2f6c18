/* Helpers shared by the unit tests (cmocka). */
#ifndef QN_TESTUTIL_H
#define QN_TESTUTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Path under ../shared (QN_SHARED_DIR) or the source tree; returns a malloc'ed string. */
char *tu_shared(const char *rel);
char *tu_source(const char *rel);
/* A fresh empty temporary directory (malloc'ed path); tu_rmrf removes a tree. */
char *tu_tmpdir(void);
void tu_rmrf(const char *path);
/* Whole file into a malloc'ed NUL-terminated buffer (NULL on failure); *len set if non-NULL. */
char *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *data, size_t len);
#endif
