/* quench compare ORIGINAL COMPRESSED: what compression cost (placeholder until compare.c lands). */
#include "cli.h"
#include "commands.h"

int cmd_compare(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_failf("compare", "not implemented yet");
}
