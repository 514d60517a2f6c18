/* quench — chat templates: the Jinja2 subset that Hugging Face chat templates use, rendered the
 * way transformers' apply_chat_template renders them (docs/architectures.md §10).
 *
 *   qn_chat_template *t;
 *   qn_chat_template_load_dir("models/Qwen3-8B", &t, &err);      // chat_template.jinja or tokenizer_config.json
 *   cJSON *msgs = cJSON_Parse("[{\"role\":\"user\",\"content\":\"Hello!\"}]");
 *   qn_chat_opts o = {.add_generation_prompt = 1, .enable_thinking = QN_CHAT_UNSET};
 *   char *text; size_t n;
 *   qn_chat_template_render(t, msgs, &o, &text, &n, &err);        // then encode with add_special = 0
 *   free(text); cJSON_Delete(msgs); qn_chat_template_free(t);
 *
 * Environment (as transformers sets it up): trim_blocks and lstrip_blocks on, the loop-controls
 * extension ({% break %}, {% continue %}), `tojson` = Python json.dumps(x, ensure_ascii=False,
 * indent=None, separators=None, sort_keys=False), globals raise_exception(msg), namespace(...),
 * strftime_now(fmt) and range(...). One trailing newline of the template is dropped and CRLF / CR
 * become LF (Jinja's defaults). Variables: messages, add_generation_prompt, tools = none,
 * documents = none, the special-token strings of tokenizer_config.json (bos_token, eos_token,
 * unk_token, pad_token, sep_token, cls_token, mask_token, additional_special_tokens) when set,
 * enable_thinking when given, then the entries of opts->extra (which override all of these).
 *
 * Supported (anything else is refused with "<source>:<line>:<col>: ..."; tags, *args, unknown
 * syntax at parse time, unknown filters / tests when first evaluated):
 *   {{ }}, {% %}, {# #}, whitespace control - and +; if/elif/else, for (tuple targets, inline
 *   `if` filter, else, loop.index/index0/revindex/revindex0/first/last/length/previtem/
 *   nextitem/depth/depth0), set (name, a, b = ..., ns.attr = ..., block set), macro (positional,
 *   keyword and default arguments; a macro sees its arguments and the template's top-level
 *   names), break, continue, and transformers' {% generation %} block (rendered as its body);
 *   literals (strings with Python escapes, adjacent strings joined, ints, floats,
 *   true/false/none (also True/False/None), lists, dicts, tuples), + - * / // % ** ~, unary - +,
 *   comparisons (chained), and/or/not, in / not in, A if C [else B], subscripts, slices
 *   ([::-1]; strings index by code point), attribute access (m.role == m['role']), calls;
 *   tests: defined undefined none string number integer float boolean true false mapping
 *   iterable sequence callable eq/equalto/== ne/!= lt/lessthan/< le/<= gt/greaterthan/> ge/>= in
 *   odd even divisibleby sameas lower upper;
 *   filters: trim length count tojson (ensure_ascii, indent, separators, sort_keys) first last
 *   join items reject select rejectattr selectattr map (attribute= or a filter name) list
 *   string lower upper capitalize title replace default/d int float abs reverse safe unique;
 *   str methods: strip lstrip rstrip (with chars) split rsplit (sep, maxsplit) startswith
 *   endswith (str or tuple) upper lower replace title capitalize find count splitlines; dict
 *   methods: items keys values get. Undefined follows Jinja's default Undefined: prints as '',
 *   is falsy, iterates empty, has length 0; attribute / item access on it, or arithmetic with it,
 *   is an error.
 * Not supported: {% filter %}, {% call %}, {% raw %}, include/import/from/extends/block/with/
 * autoescape/do, recursive loops, *args / **kwargs, string % formatting, str.format, list /
 * dict mutation methods (append, update: the sandbox transformers uses refuses them too),
 * loop.cycle. Tuples are lists (str() prints [..], not (..)). upper/lower/title use utf8proc's
 * simple case mapping ("ß".upper() stays "ß"; Python gives "SS"); title/capitalize treat a
 * letter after a non-letter as a word start.
 *
 * strftime_now(fmt) formats opts->now (seconds since the epoch; 0 = the current time) in local
 * time with strftime, as transformers does with datetime.now(); pass a fixed `now` for
 * reproducible output. JSON numbers that are integral and below 2^53 become ints (cJSON keeps no
 * int/float distinction, so 1.0 in the input is rendered as 1).
 *
 * Bounds (hostile templates): template source 4 MiB, nesting depth 100 (brackets, expressions,
 * blocks), macro recursion 32, range() 1e6 items, 5e7 evaluation steps and 256 MiB of memory per
 * render (everything a render allocates is freed when it ends, so a loop that builds big values
 * hits the memory bound). Errors: QN_ERR_FORMAT (syntax, type errors), QN_ERR_UNSUPPORTED
 * (constructs above), QN_ERR_NOMEM (bounds), QN_ERR_INVALID_ARG (raise_exception(msg); the
 * message is "<source>:<line>:<col>: raise_exception: <msg>"). */
#ifndef QUENCH_CHAT_TEMPLATE_H
#define QUENCH_CHAT_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "quench/status.h"

struct cJSON;
typedef struct qn_chat_template qn_chat_template;

#define QN_CHAT_UNSET (-1)

typedef struct {
    int add_generation_prompt;     /* 0 / 1 */
    int enable_thinking;           /* QN_CHAT_UNSET: not passed (undefined in the template); 0 / 1 */
    int64_t now;                   /* strftime_now time, seconds since the epoch; 0 = now */
    const struct cJSON *extra;     /* a JSON object of more variables (tools, date_string, ...); may be NULL */
} qn_chat_opts;

/* Parses template text (len bytes). `source` names it in error messages (e.g. the file). */
qn_status qn_chat_template_parse(const char *text, size_t len, const char *source, qn_chat_template **out,
                                 qn_error *err);
/* Loads a model folder's template: dir/chat_template.jinja when present, else the
 * "chat_template" of dir/tokenizer_config.json (a string, or a list of {name, template} of which
 * the one named "default" is used), and the special-token strings of tokenizer_config.json.
 * Sets *out = NULL and returns QN_OK when the folder has no template. */
qn_status qn_chat_template_load_dir(const char *dir, qn_chat_template **out, qn_error *err);
void qn_chat_template_free(qn_chat_template *t);

/* The name used in messages ("<dir>/chat_template.jinja", "<dir>/tokenizer_config.json", ...). */
const char *qn_chat_template_source(const qn_chat_template *t);
/* Sets (value != NULL) or removes a string variable such as "bos_token". */
qn_status qn_chat_template_set_var(qn_chat_template *t, const char *name, const char *value, qn_error *err);
/* The string variable `name` as loaded from tokenizer_config.json or set, NULL if none. */
const char *qn_chat_template_get_var(const qn_chat_template *t, const char *name);

/* Renders `messages` (a JSON array of {role, content, ...} objects, passed to the template as
 * is). *out is malloc'ed and NUL-terminated; *out_len (may be NULL) gets its length. Safe to call
 * concurrently on one template. */
qn_status qn_chat_template_render(const qn_chat_template *t, const struct cJSON *messages, const qn_chat_opts *opts,
                                  char **out, size_t *out_len, qn_error *err);

#endif
