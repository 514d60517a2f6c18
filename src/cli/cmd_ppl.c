/* quench ppl MODEL --text FILE: perplexity with BOS-prefixed, non-overlapping windows. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "quench/eval.h"

int cmd_ppl(int argc, char **argv) {
    const char *text_path = NULL, *mode_name = "stream";
    int64_t window = 512, max_tokens = 0;
    int json = 0, quiet = 0, no_act_quant = 0;
    const cli_opt opts[] = {
        {"--text", CLI_STR, &text_path, "text file to score (required)", "FILE"},
        {"--window", CLI_INT, &window, "tokens per window including BOS (default 512)", "N"},
        {"--mode", CLI_STR, &mode_name, "stream (default) | lines | stories (split on <|endoftext|>)", "MODE"},
        {"--max-tokens", CLI_INT, &max_tokens, "stop after the window that reaches N scored tokens", "N"},
        {"--json", CLI_FLAG, &json, "machine-readable output", NULL},
        {"--quiet", CLI_FLAG, &quiet, "no progress output", NULL},
        {"--no-act-quant", CLI_FLAG, &no_act_quant, "compressed checkpoints: do not emulate activation quantization (weights-only view)", NULL},
        {0}};
    char *pos[1];
    int np;
    int rc = cli_parse(argc, argv, opts,
                       "usage: quench ppl MODEL --text FILE [--window 512] [--mode stream|lines|stories] [--max-tokens N]\n\n"
                       "Perplexity: each document is cut into windows of up to window-1 tokens, each preceded by BOS;\n"
                       "every window token is scored; windows do not overlap.",
                       pos, 1, &np);
    if (rc) return rc == 1 ? 0 : 2;
    if (np != 1) return cli_failf("ppl", "expected one MODEL folder (see quench ppl --help)");
    if (!text_path) return cli_failf("ppl", "--text FILE is required");
    qn_ppl_mode mode;
    if (qn_ppl_mode_from_name(mode_name, &mode)) return cli_failf("ppl", "--mode '%s' is not one of stream, lines, stories", mode_name);
    if (window < 2 || window > 1 << 20) return cli_failf("ppl", "--window must be between 2 and 1048576 (got %lld)", (long long)window);
    qn_error err = {0};
    char *text;
    size_t len;
    if (cli_read_file(text_path, &text, &len, &err)) return cli_fail("ppl", &err);
    qn_model *m;
    qn_tokenizer *tok;
    qn_llm *llm;
    if (cli_load_model_ex("ppl", pos[0], window, !no_act_quant, &m, &tok, &llm)) { free(text); return 1; }
    cli_progress pr;
    cli_progress_init(&pr, "ppl: windows", quiet);
    qn_ppl_result r;
    qn_status st = qn_eval_ppl(llm, tok, text, len, mode, window, max_tokens, cli_progress_cb, &pr, &r, &err);
    cli_progress_end(&pr);
    free(text);
    cli_unload_model(m, tok, llm);
    if (st) return cli_fail("ppl", &err);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", pos[0]);
        cJSON_AddStringToObject(o, "text", text_path);
        cJSON_AddStringToObject(o, "mode", mode_name);
        cJSON_AddNumberToObject(o, "window", (double)window);
        cJSON_AddNumberToObject(o, "docs", (double)r.docs);
        cJSON_AddNumberToObject(o, "windows", (double)r.windows);
        cJSON_AddNumberToObject(o, "tokens_scored", (double)r.tokens_scored);
        cJSON_AddNumberToObject(o, "mean_nll", r.mean_nll);
        cJSON_AddNumberToObject(o, "ppl", r.ppl);
        cJSON_AddNumberToObject(o, "seconds", r.seconds);
        cJSON_AddNumberToObject(o, "tokens_per_second", r.tokens_per_second);
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("text           %s (%s mode, %lld documents, %lld windows of <= %lld)\n", text_path, mode_name,
               (long long)r.docs, (long long)r.windows, (long long)window);
        printf("tokens scored  %lld\n", (long long)r.tokens_scored);
        printf("mean NLL       %.6f\n", r.mean_nll);
        printf("PPL            %.4f\n", r.ppl);
        printf("speed          %.0f tokens/s (%.2f s)\n", r.tokens_per_second, r.seconds);
    }
    return 0;
}
