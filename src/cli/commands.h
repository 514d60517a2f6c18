/* quench CLI: one function per command, each in src/cli/cmd_<name>.c, dispatched by main.c.
 * argv[0] is the command name; the function returns the process exit code (0 ok, 1 error,
 * 2 usage error) and prints errors as one line "quench <cmd>: <message>" on stderr. */
#ifndef QN_CLI_COMMANDS_H
#define QN_CLI_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_compress(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_diff(int argc, char **argv);

#endif
