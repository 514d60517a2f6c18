/* quench generate MODEL --prompt TEXT: greedy (default) or sampled continuation. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "quench/eval.h"

int cmd_generate(int argc, char **argv) {
    const char *prompt = "";
    int64_t max_new = 256, seed = 0;
    double temperature = 0.0, top_p = 1.0;
    int json = 0, no_stop = 0, no_act_quant = 0;
    const cli_opt opts[] = {
        {"--prompt", CLI_STR, &prompt, "prompt text (default: empty, i.e. BOS only)", "TEXT"},
        {"--max-new-tokens", CLI_INT, &max_new, "tokens to generate (default 256)", "N"},
        {"--temperature", CLI_FLOAT, &temperature, "sampling temperature; 0 = greedy (default)", "T"},
        {"--top-p", CLI_FLOAT, &top_p, "nucleus sampling mass (default 1.0 = off)", "P"},
        {"--seed", CLI_INT, &seed, "random seed for sampling", "S"},
        {"--ignore-eos", CLI_FLAG, &no_stop, "do not stop at the eos ids of generation_config.json", NULL},
        {"--json", CLI_FLAG, &json, "machine-readable output (ids and text)", NULL},
        {"--no-act-quant", CLI_FLAG, &no_act_quant, "compressed checkpoints: do not emulate activation quantization", NULL},
        {0}};
    char *pos[1];
    int np;
    int rc = cli_parse(argc, argv, opts,
                       "usage: quench generate MODEL [--prompt TEXT] [--max-new-tokens N] [--temperature T --top-p P --seed S]\n\n"
                       "Prints the prompt followed by the generated text. Stops at the eos ids of generation_config.json\n"
                       "(or config.json).",
                       pos, 1, &np);
    if (rc) return rc == 1 ? 0 : 2;
    if (np != 1) return cli_failf("generate", "expected one MODEL folder (see quench generate --help)");
    if (max_new < 0 || max_new > 1 << 20) return cli_failf("generate", "--max-new-tokens must be between 0 and 1048576");
    if (temperature < 0) return cli_failf("generate", "--temperature must be >= 0");
    if (top_p <= 0 || top_p > 1) return cli_failf("generate", "--top-p must be in (0, 1]");
    qn_error err = {0};
    qn_model *m;
    qn_tokenizer *tok;
    if (cli_load_model_ex("generate", pos[0], 0, !no_act_quant, &m, &tok, NULL)) return 1;
    int32_t *pids = NULL;
    size_t pn = 0;
    if (qn_tokenizer_encode(tok, prompt, strlen(prompt), 1, &pids, &pn, &err)) {
        cli_unload_model(m, tok, NULL);
        return cli_fail("generate", &err);
    }
    if (pn == 0) {   /* no BOS in the post-processor and an empty prompt: start from BOS/eos id */
        int32_t b = qn_tokenizer_bos_id(tok) >= 0 ? qn_tokenizer_bos_id(tok) : m->cfg.bos_token_id;
        if (b < 0) { free(pids); cli_unload_model(m, tok, NULL); return cli_failf("generate", "empty prompt and the model has no BOS token"); }
        free(pids);
        pids = malloc(sizeof *pids);
        pids[0] = b;
        pn = 1;
    }
    int64_t ctx = (int64_t)pn + max_new;
    if (ctx > m->cfg.max_position_embeddings) {
        free(pids);
        cli_unload_model(m, tok, NULL);
        return cli_failf("generate", "prompt (%zu tokens) + --max-new-tokens %lld exceeds max_position_embeddings %lld", pn,
                         (long long)max_new, (long long)m->cfg.max_position_embeddings);
    }
    qn_llm *llm;
    if (qn_llm_create(m, ctx, &llm, &err)) { free(pids); cli_unload_model(m, tok, NULL); return cli_fail("generate", &err); }
    qn_gen_opts o = {.max_new_tokens = max_new, .temperature = (float)temperature, .top_p = (float)top_p,
                     .seed = (uint64_t)seed, .stop_ids = no_stop ? NULL : m->cfg.eos_token_ids,
                     .n_stop = no_stop ? 0 : m->cfg.n_eos};
    int32_t *ids = NULL;
    int64_t n = 0;
    double t0 = cli_now();
    qn_status st = qn_generate(llm, pids, (int64_t)pn, &o, &ids, &n, &err);
    double dt = cli_now() - t0;
    char *text = NULL;
    if (!st) st = qn_tokenizer_decode(tok, ids, (size_t)n, 1, &text, &err);
    if (!st) {
        if (json) {
            cJSON *obj = cJSON_CreateObject();
            cJSON *a = cJSON_AddArrayToObject(obj, "ids");
            for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
            cJSON_AddNumberToObject(obj, "prompt_tokens", (double)pn);
            cJSON_AddNumberToObject(obj, "new_tokens", (double)(n - (int64_t)pn));
            cJSON_AddStringToObject(obj, "text", text);
            cJSON_AddNumberToObject(obj, "tokens_per_second", dt > 0 ? (double)(n - (int64_t)pn) / dt : 0);
            char *s = cJSON_Print(obj);
            printf("%s\n", s);
            free(s);
            cJSON_Delete(obj);
        } else {
            printf("%s\n", text);
        }
    }
    free(text);
    free(ids);
    free(pids);
    cli_unload_model(m, tok, llm);
    return st ? cli_fail("generate", &err) : 0;
}
