/* quench tokenize MODEL (--text S | --file F | --decode IDS): token ids or text. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "quench/tokenizer.h"

static int decode_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16, k = 0;
    int32_t *a = malloc(cap * sizeof *a);
    const char *p = s;
    while (a) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) { free(a); return -1; }
        if (k == cap) {
            int32_t *b = realloc(a, (cap *= 2) * sizeof *a);
            if (!b) { free(a); return -1; }
            a = b;
        }
        a[k++] = (int32_t)v;
        p = end;
    }
    if (!a) return -1;
    *ids = a;
    *n = k;
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *text = NULL, *file = NULL, *decode = NULL;
    int no_special = 0, json = 0, keep_special = 0;
    const cli_opt opts[] = {
        {"--text", CLI_STR, &text, "text to encode", "STRING"},
        {"--file", CLI_STR, &file, "file to encode", "FILE"},
        {"--decode", CLI_STR, &decode, "space-separated ids to decode to text", "IDS"},
        {"--no-special", CLI_FLAG, &no_special, "do not add special tokens (BOS) when encoding", NULL},
        {"--keep-special", CLI_FLAG, &keep_special, "--decode: keep special tokens such as <s> in the text", NULL},
        {"--json", CLI_FLAG, &json, "ids and pieces as JSON", NULL},
        {0}};
    char *pos[1];
    int np;
    int rc = cli_parse(argc, argv, opts,
                       "usage: quench tokenize MODEL (--text STRING | --file FILE) [--no-special] [--json]\n"
                       "       quench tokenize MODEL --decode \"IDS\"",
                       pos, 1, &np);
    if (rc) return rc == 1 ? 0 : 2;
    if (np != 1) return cli_failf("tokenize", "expected one MODEL folder (see quench tokenize --help)");
    if ((text != NULL) + (file != NULL) + (decode != NULL) != 1)
        return cli_failf("tokenize", "give exactly one of --text, --file, --decode");
    qn_error err = {0};
    qn_tokenizer *tok;
    if (qn_tokenizer_load_dir(pos[0], &tok, &err)) return cli_fail("tokenize", &err);
    int ret = 0;
    if (decode) {
        int32_t *ids;
        size_t n;
        char *out = NULL;
        if (decode_ids(decode, &ids, &n)) ret = cli_failf("tokenize", "--decode: expected non-negative integer ids, got '%s'", decode);
        else {
            if (qn_tokenizer_decode(tok, ids, n, !keep_special, &out, &err)) ret = cli_fail("tokenize", &err);
            else if (json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "text", out);
                char *s = cJSON_Print(o);
                printf("%s\n", s);
                free(s);
                cJSON_Delete(o);
            } else printf("%s\n", out);
            free(out);
            free(ids);
        }
    } else {
        char *buf = NULL;
        size_t len = 0;
        if (file) {
            if (cli_read_file(file, &buf, &len, &err)) { qn_tokenizer_free(tok); return cli_fail("tokenize", &err); }
        } else {
            len = strlen(text);
        }
        int32_t *ids = NULL;
        size_t n = 0;
        if (qn_tokenizer_encode(tok, file ? buf : text, len, !no_special, &ids, &n, &err)) ret = cli_fail("tokenize", &err);
        else if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON *a = cJSON_AddArrayToObject(o, "ids"), *p = cJSON_AddArrayToObject(o, "pieces");
            for (size_t i = 0; i < n; i++) {
                cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
                const char *pc = qn_tokenizer_piece(tok, ids[i]);
                cJSON_AddItemToArray(p, cJSON_CreateString(pc ? pc : ""));
            }
            char *s = cJSON_PrintUnformatted(o);
            printf("%s\n", s);
            free(s);
            cJSON_Delete(o);
        } else {
            for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
        free(ids);
        free(buf);
    }
    qn_tokenizer_free(tok);
    return ret;
}
