/* quench — command-line entry point: dispatches `quench <command> ...`. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command k_commands[] = {
    {"info", cmd_info, "architecture, parameters by component, dtype, size, tokenizer of a model folder"},
    {"generate", cmd_generate, "generate text from a prompt (greedy by default)"},
    {"ppl", cmd_ppl, "perplexity of a model on a text file"},
    {"tokenize", cmd_tokenize, "encode text to token ids, or decode ids to text"},
    {"compress", cmd_compress, "quantize a model (round-to-nearest) into a compressed-tensors checkpoint"},
    {"compare", cmd_compare, "original vs compressed: perplexity, KL, top-1 agreement, size, weight error"},
    {"plan", cmd_plan, "hardware planning from config.json: parameters, sizes, TP, KV cache, context"},
    {"inspect", cmd_inspect, "a checkpoint's quantization_config in plain words, vLLM kernels, tensor checks"},
    {"diff", cmd_diff, "two checkpoints or config.json files side by side: config, quantization, tensors"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: quench <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
        fprintf(f, "  %-10s %s\n", k_commands[i].name, k_commands[i].summary);
    fprintf(f, "\n`quench <command> --help` shows the options of a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
        if (!strcmp(argv[1], k_commands[i].name)) return k_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "quench: unknown command '%s' (see quench --help)\n", argv[1]);
    return 2;
}
