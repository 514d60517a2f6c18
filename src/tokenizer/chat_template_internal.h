/* Internals of the chat-template engine (chat_template*.c): arena, values, AST. */
#ifndef QN_CHAT_TEMPLATE_INTERNAL_H
#define QN_CHAT_TEMPLATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "quench/chat_template.h"

#define CT_MAX_SOURCE (4u << 20)
#define CT_MAX_DEPTH 100
#define CT_MAX_MACRO_DEPTH 32
#define CT_MAX_RANGE 1000000
#define CT_MAX_STEPS 50000000ull
#define CT_MAX_MEM (256u << 20)

/* ---- arena: every allocation freed at once; a byte budget bounds the total ---- */
typedef struct ct_blk ct_blk;
typedef struct {
    ct_blk *head;
    size_t total, limit;
} ct_arena;
void *ct_alloc(ct_arena *a, size_t n); /* zeroed; NULL when the budget or malloc fails */
void ct_arena_free(ct_arena *a);

/* ---- values ---- */
enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS, V_MACRO, V_LOOP };
struct ct_list;
struct ct_dict;
struct ct_node;
struct ct_loop;
typedef struct {
    int t;
    union {
        int64_t i; /* V_BOOL, V_INT */
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct ct_list *l;
        struct ct_dict *d; /* V_DICT, V_NS */
        const struct ct_node *m;
        const struct ct_loop *lp;
    } u;
} ct_val;
typedef struct ct_list {
    ct_val *v;
    size_t n, cap;
} ct_list;
typedef struct ct_dict {
    ct_val *k, *v;
    size_t n, cap;
} ct_dict;
typedef struct ct_loop {
    const ct_list *items;
    size_t i;
    int depth;
} ct_loop;

/* ---- AST ---- */
enum {
    E_CONST, E_NAME, E_LIST, E_DICT, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST,
    E_NEG, E_POS, E_NOT, E_BIN, E_AND, E_OR, E_CMP, E_COND
};
enum { OP_FLOORDIV = 256, OP_POW, OP_EQ, OP_NE, OP_LE, OP_GE, OP_IN, OP_NOTIN };
typedef struct ct_expr {
    int k, op, line, col;
    ct_val c;          /* E_CONST */
    const char *name;  /* E_NAME, E_ATTR, E_FILTER, E_TEST (NUL-terminated) */
    struct ct_expr *a, *b, *x; /* operands; E_SLICE: a[b:x:y] with y in args[0] */
    struct ct_expr **args;     /* E_LIST/E_DICT (k,v pairs), E_CALL/E_FILTER/E_TEST args, E_CMP operands */
    int nargs;
    const char **kwn; /* keyword arguments */
    struct ct_expr **kwv;
    int nkw;
    int *ops; /* E_CMP */
    int neg;  /* E_TEST: is not */
} ct_expr;

enum { N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_BREAK, N_CONTINUE, N_BODY };
typedef struct ct_body {
    struct ct_node **v;
    int n;
} ct_body;
typedef struct ct_node {
    int k, line, col;
    const char *text; /* N_TEXT */
    size_t len;
    ct_expr *e;        /* N_OUT value, N_FOR iter, N_SET value */
    ct_expr **conds;   /* N_IF */
    ct_body *bodies;   /* N_IF: nconds bodies (+ else at [nconds] when has_else) */
    int nconds, has_else;
    const char **names; /* N_FOR / N_SET targets, N_MACRO params; attr for ns.attr set */
    int nnames;
    const char *attr;   /* N_SET ns.attr */
    ct_expr *filter;    /* N_FOR inline if */
    ct_expr **defaults; /* N_MACRO defaults (NULL entries = none) */
    const char *name;   /* N_MACRO name */
    ct_body body, els;
} ct_node;

struct qn_chat_template {
    ct_arena a;
    char *source;
    ct_body root;
    char **vn, **vv; /* string variables */
    int nv;
    struct cJSON *extra_tokens; /* additional_special_tokens array, or NULL */
};

qn_status ct_parse(qn_chat_template *t, const char *text, size_t len, qn_error *err);

#endif
