#include "cli.h"

int cli_load_model(const char *cmd, const char *dir, int64_t ctx, qn_model **m, qn_tokenizer **tok, qn_llm **llm) {
    return cli_load_model_ex(cmd, dir, ctx, 1, m, tok, llm);
}

int cli_load_model_ex(const char *cmd, const char *dir, int64_t ctx, int act_quant, qn_model **m, qn_tokenizer **tok,
                      qn_llm **llm) {
    qn_error err = {0};
    *m = NULL;
    *tok = NULL;
    if (llm) *llm = NULL;
    if (qn_model_open(dir, m, &err)) return cli_fail(cmd, &err);
    (*m)->act_quant = act_quant;
    if (qn_tokenizer_load_dir(dir, tok, &err)) {
        qn_model_close(*m);
        *m = NULL;
        return cli_fail(cmd, &err);
    }
    if (llm && qn_llm_create(*m, ctx, llm, &err)) {
        cli_unload_model(*m, *tok, NULL);
        *m = NULL;
        *tok = NULL;
        return cli_fail(cmd, &err);
    }
    return 0;
}

void cli_unload_model(qn_model *m, qn_tokenizer *tok, qn_llm *llm) {
    qn_llm_free(llm);
    qn_tokenizer_free(tok);
    qn_model_close(m);
}
