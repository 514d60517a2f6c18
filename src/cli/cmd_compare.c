/* quench compare ORIGINAL COMPRESSED --text FILE: what compression cost. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "commands.h"
#include "quench/eval.h"


static int by_error_desc(const void *a, const void *b) {
    const qn_weight_error *x = a, *y = b;
    if (x->rel_error != y->rel_error) return x->rel_error < y->rel_error ? 1 : -1;
    return strcmp(x->name, y->name);
}

/* Greedy continuation of prompt ids (text malloc'ed, NULL on failure with err set). */
static char *continuation(qn_llm *llm, const qn_model *m, const qn_tokenizer *tok, const int32_t *pids, size_t pn,
                          int64_t max_new, qn_error *err) {
    qn_gen_opts o = {.max_new_tokens = max_new, .temperature = 0, .top_p = 1, .seed = 0,
                     .stop_ids = m->cfg.eos_token_ids, .n_stop = m->cfg.n_eos};
    int32_t *ids = NULL;
    int64_t n = 0;
    char *text = NULL;
    if (qn_generate(llm, pids, (int64_t)pn, &o, &ids, &n, err)) return NULL;
    if (qn_tokenizer_decode(tok, ids + pn, (size_t)(n - (int64_t)pn), 1, &text, err)) text = NULL;
    free(ids);
    return text;
}

int cmd_compare(int argc, char **argv) {
    const char *text_path = NULL, *mode_name = "stream", *prompt = NULL;
    int64_t window = 512, max_tokens = 0, max_new = 64;
    int json = 0, quiet = 0, no_act_quant = 0;
    const cli_opt opts[] = {
        {"--text", CLI_STR, &text_path, "text file to score (required)", "FILE"},
        {"--window", CLI_INT, &window, "tokens per window including BOS (default 512)", "N"},
        {"--mode", CLI_STR, &mode_name, "stream (default) | lines | stories (split on <|endoftext|>)", "MODE"},
        {"--max-tokens", CLI_INT, &max_tokens, "stop after the window that reaches N scored tokens", "N"},
        {"--prompt", CLI_STR, &prompt, "also print the greedy continuations of both models", "TEXT"},
        {"--max-new-tokens", CLI_INT, &max_new, "tokens of each continuation (default 64)", "N"},
        {"--json", CLI_FLAG, &json, "machine-readable output", NULL},
        {"--no-act-quant", CLI_FLAG, &no_act_quant, "do not emulate the compressed model's activation quantization", NULL},
        {"--quiet", CLI_FLAG, &quiet, "no progress output", NULL},
        {0}};
    char *pos[2];
    int np;
    int rc = cli_parse(argc, argv, opts,
                       "usage: quench compare ORIGINAL COMPRESSED --text FILE [--mode stream|lines|stories] [--window 512]\n"
                       "                      [--max-tokens N] [--prompt TEXT] [--json]\n\n"
                       "Scores both models on the same windows (as quench ppl): perplexity of each, mean and max per-token\n"
                       "KL(original || compressed), top-1 agreement of the next-token predictions; size on disk of both;\n"
                       "relative weight error ||W - W'|| / ||W|| of every compressed Linear with the worst 10.\n"
                       "Either folder may be a compressed-tensors checkpoint (dequantized on load).",
                       pos, 2, &np);
    if (rc) return rc == 1 ? 0 : 2;
    if (np != 2) return cli_failf("compare", "expected ORIGINAL and COMPRESSED folders (see quench compare --help)");
    if (!text_path) return cli_failf("compare", "--text FILE is required");
    qn_ppl_mode mode;
    if (qn_ppl_mode_from_name(mode_name, &mode)) return cli_failf("compare", "--mode '%s' is not one of stream, lines, stories", mode_name);
    if (window < 2 || window > 1 << 20) return cli_failf("compare", "--window must be between 2 and 1048576 (got %lld)", (long long)window);
    if (max_new < 0 || max_new > 1 << 16) return cli_failf("compare", "--max-new-tokens must be between 0 and 65536");
    qn_error err = {0};
    char *text;
    size_t len;
    if (cli_read_file(text_path, &text, &len, &err)) return cli_fail("compare", &err);
    qn_model *ma = NULL, *mb = NULL;
    qn_tokenizer *ta = NULL, *tb = NULL;
    qn_llm *la = NULL, *lb = NULL;
    qn_weight_error *we = NULL;
    size_t nwe = 0;
    char *ca = NULL, *cb = NULL;
    int32_t *pids = NULL;
    size_t pn = 0;
    rc = 1;
    if (cli_load_model("compare", pos[0], window, &ma, &ta, &la)) goto out;
    if (cli_load_model_ex("compare", pos[1], window, !no_act_quant, &mb, &tb, &lb)) goto out;
    cli_progress pr;
    cli_progress_init(&pr, "compare: windows", quiet);
    qn_compare_result r;
    qn_status st = qn_compare_eval(la, lb, ta, text, len, mode, window, max_tokens, cli_progress_cb, &pr, &r, &err);
    cli_progress_end(&pr);
    if (st) { cli_fail("compare", &err); goto out; }
    if (qn_compare_weights(ma, mb, &we, &nwe, &err)) { cli_fail("compare", &err); goto out; }
    /* schemes that quantize activations: also the weights-only figure */
    int has_act = 0;
    qn_ppl_result wonly = {0};
    for (int64_t i = 0; i < mb->cfg.num_hidden_layers && !no_act_quant; i++) {
        qn_layer *l = qn_llm_layer(lb, i);
        for (int id = 0; id < QN_LIN_COUNT; id++) has_act |= l->lin[id].in_act != NULL;
    }
    if (has_act) {
        qn_model *mw = NULL;
        qn_tokenizer *tw = NULL;
        qn_llm *lw = NULL;
        if (cli_load_model_ex("compare", pos[1], window, 0, &mw, &tw, &lw)) goto out;
        st = qn_eval_ppl(lw, tw, text, len, mode, window, max_tokens, NULL, NULL, &wonly, &err);
        cli_unload_model(mw, tw, lw);
        if (st) { cli_fail("compare", &err); goto out; }
    }
    if (prompt) {
        if (qn_tokenizer_encode(ta, prompt, strlen(prompt), 1, &pids, &pn, &err)) { cli_fail("compare", &err); goto out; }
        if (pn == 0 || (int64_t)pn + max_new > window) {
            int64_t ctx = (int64_t)pn + max_new;
            if (pn == 0 || ctx > ma->cfg.max_position_embeddings) {
                cli_failf("compare", "the prompt (%zu tokens) + %lld new tokens do not fit the context", pn, (long long)max_new);
                goto out;
            }
            qn_llm_free(la);
            qn_llm_free(lb);
            la = lb = NULL;
            if (qn_llm_create(ma, ctx, &la, &err) || qn_llm_create(mb, ctx, &lb, &err)) { cli_fail("compare", &err); goto out; }
        }
        if (!(ca = continuation(la, ma, ta, pids, pn, max_new, &err)) || !(cb = continuation(lb, mb, ta, pids, pn, max_new, &err))) {
            cli_fail("compare", &err);
            goto out;
        }
    }
    uint64_t sa = cli_safetensors_bytes(pos[0]), sb = cli_safetensors_bytes(pos[1]);
    double ratio = sb ? (double)sa / (double)sb : 0;
    qn_weight_error *sorted = malloc(sizeof *sorted * (nwe ? nwe : 1));
    if (!sorted) { cli_failf("compare", "out of memory"); goto out; }
    memcpy(sorted, we, sizeof *we * nwe);
    qsort(sorted, nwe, sizeof *sorted, by_error_desc);
    size_t nworst = nwe < 10 ? nwe : 10;
    double mean_err = 0;
    for (size_t i = 0; i < nwe; i++) mean_err += we[i].rel_error;
    if (nwe) mean_err /= (double)nwe;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "original_model", pos[0]);
        cJSON_AddStringToObject(o, "compressed_model", pos[1]);
        cJSON_AddStringToObject(o, "text", text_path);
        cJSON_AddStringToObject(o, "mode", mode_name);
        cJSON_AddNumberToObject(o, "window", (double)window);
        const qn_ppl_result *pr2[2] = {&r.original, &r.compressed};
        const char *nm[2] = {"original", "compressed"};
        for (int k = 0; k < 2; k++) {
            cJSON *p = cJSON_AddObjectToObject(o, nm[k]);
            cJSON_AddNumberToObject(p, "ppl", pr2[k]->ppl);
            cJSON_AddNumberToObject(p, "mean_nll", pr2[k]->mean_nll);
            cJSON_AddNumberToObject(p, "tokens_scored", (double)pr2[k]->tokens_scored);
            cJSON_AddNumberToObject(p, "windows", (double)pr2[k]->windows);
            cJSON_AddNumberToObject(p, "bytes", (double)(k ? sb : sa));
        }
        if (has_act) cJSON_AddNumberToObject(o, "compressed_weights_only_ppl", wonly.ppl);
        cJSON_AddBoolToObject(o, "activation_quantization_emulated", has_act);
        cJSON_AddNumberToObject(o, "positions", (double)r.positions);
        cJSON_AddNumberToObject(o, "kl_mean", r.kl_mean);
        cJSON_AddNumberToObject(o, "kl_max", r.kl_max);
        cJSON_AddNumberToObject(o, "top1_agreement", r.top1_agreement);
        cJSON_AddNumberToObject(o, "size_ratio", ratio);
        cJSON_AddNumberToObject(o, "weight_error_mean", mean_err);
        cJSON *ls = cJSON_AddArrayToObject(o, "layers");
        for (size_t i = 0; i < nwe; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", we[i].name);
            cJSON_AddNumberToObject(e, "rel_error", we[i].rel_error);
            cJSON_AddItemToArray(ls, e);
        }
        cJSON *ws = cJSON_AddArrayToObject(o, "worst");
        for (size_t i = 0; i < nworst; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", sorted[i].name);
            cJSON_AddNumberToObject(e, "rel_error", sorted[i].rel_error);
            cJSON_AddItemToArray(ws, e);
        }
        if (prompt) {
            cJSON *c = cJSON_AddObjectToObject(o, "continuation");
            cJSON_AddStringToObject(c, "prompt", prompt);
            cJSON_AddStringToObject(c, "original", ca);
            cJSON_AddStringToObject(c, "compressed", cb);
        }
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        char b1[32], b2[32];
        printf("text            %s (%s mode, %lld windows of <= %lld, %lld positions)\n", text_path, mode_name,
               (long long)r.original.windows, (long long)window, (long long)r.positions);
        printf("perplexity      %.4f -> %.4f (%+.2f%%)\n", r.original.ppl, r.compressed.ppl,
               100.0 * (r.compressed.ppl / r.original.ppl - 1.0));
        if (has_act)
            printf("                %.4f with weights only (--no-act-quant): activations cost %+.2f%%\n", wonly.ppl,
                   100.0 * (r.compressed.ppl / wonly.ppl - 1.0));
        printf("KL per token    mean %.6f, max %.6f nats\n", r.kl_mean, r.kl_max);
        printf("top-1 agreement %.2f%%\n", 100.0 * r.top1_agreement);
        printf("size            %s -> %s (%.2fx smaller)\n", cli_bytes((double)sa, b1, sizeof b1),
               cli_bytes((double)sb, b2, sizeof b2), ratio);
        printf("weight error    %zu Linear layers, mean ||W-W'||/||W|| = %.5f\n", nwe, mean_err);
        if (nworst) {
            printf("worst layers\n");
            for (size_t i = 0; i < nworst; i++) printf("  %.5f  %s\n", sorted[i].rel_error, sorted[i].name);
        }
        if (prompt) {
            printf("prompt          %s\n", prompt);
            printf("original:       %s\n", ca);
            printf("compressed:     %s\n", cb);
        }
    }
    free(sorted);
    rc = 0;
out:
    free(text);
    free(we);
    free(ca);
    free(cb);
    free(pids);
    cli_unload_model(ma, ta, la);
    cli_unload_model(mb, tb, lb);
    return rc;
}
