/* cmd_header.c — `qplan header MODEL.gguf -o HEADER.gguf`: a model's metadata and tensor table
 * without its data (kilobytes to a few MB instead of gigabytes), to carry a real model's
 * shape where the model cannot go; `qplan synth --like HEADER.gguf` makes a same-shaped model
 * there. The work is qp_synth_write_header (compiler/synth.c).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "qp_synth.h"

static void print_usage(FILE *f) {
    fprintf(f, "usage: qplan header MODEL.gguf -o HEADER.gguf\n"
               "  Writes the model's header (every metadata key and the tensor table, no tensor\n"
               "  data). Read it with 'qplan inspect --header-only'; 'qplan synth --like' makes a\n"
               "  synthetic model of the same shape from it.\n");
}

int qp_cmd_header(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] != '-' && !in) {
            in = argv[i];
        } else {
            fprintf(stderr, "qplan header: unexpected argument '%s'\n", argv[i]);
            print_usage(stderr);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "qplan header: give MODEL.gguf and -o HEADER.gguf\n");
        print_usage(stderr);
        return 2;
    }
    struct qp_error err = {{0}};
    if (qp_synth_write_header(in, out, &err) != QP_OK) {
        fprintf(stderr, "qplan header: %s\n", err.msg);
        return 1;
    }
    return 0;
}
