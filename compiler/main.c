/* main.c — the qplan executable: dispatches `qplan <command> args...` to the table below.
 * It owns only the table, the top-level usage and the dispatch; each command parses its own
 * arguments (compiler/cmd_<name>.c, prototypes in compiler/commands.h).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

/* One line per command, alphabetical. */
// clang-format off
static const struct command commands[] = {
    {"compile", qp_cmd_compile, "compile a GGUF model into a YAML execution plan"},
    {"header", qp_cmd_header, "write a model's metadata and tensor table without data"},
    {"inspect", qp_cmd_inspect, "print a GGUF file's header, hyperparameters, tokenizer and tensors"},
    {"synth", qp_cmd_synth, "write a synthetic model (random weights) of a given or tiny shape"},
    {"tune", qp_cmd_tune, "choose every node's kernel and launch by measuring them on this GPU"},
    {"validate", qp_cmd_validate, "check a plan on its own and against its model"},
};
// clang-format on

static void usage(FILE *f) {
    fprintf(f, "usage: qplan <command> [args...]\n"
               "       qplan <command> --help\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "qplan: no command given\n");
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qplan: unknown command '%s' (run 'qplan --help' for the list)\n", argv[1]);
    return 2;
}
