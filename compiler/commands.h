/* commands.h — the qplan subcommands. Each lives in its own compiler/cmd_<name>.c and is listed
 * in compiler/main.c's table (one line per command, alphabetical).
 *
 * Contract for every command: argv[0] is the command's name, argv[1..argc-1] its arguments.
 * `--help` / `-h` prints the command's usage to stdout and returns 0; a usage error prints a
 * message and the usage to stderr and returns 2; a failure (bad file, I/O) prints one message
 * naming the file and the problem to stderr and returns 1; success returns 0.
 */
#pragma once

/* qplan compile model.gguf [-o plan.yaml] [--ctx N] [--kv-type f16|f32] [--chunk N]
 * [--no-fuse NAME]... — compiles a GGUF into a YAML execution plan and prints a summary. */
int qp_cmd_compile(int argc, char **argv);
/* qplan inspect [--header-only] model.gguf — prints the file's header, architecture,
 * hyperparameters, tokenizer summary, other metadata and tensor table with totals. */
int qp_cmd_inspect(int argc, char **argv);

/* qplan header MODEL.gguf -o HEADER.gguf — writes the model's metadata and tensor table
 * without data (compiler/cmd_header.c). */
int qp_cmd_header(int argc, char **argv);

/* qplan synth (--like MODEL_OR_HEADER.gguf | --arch qwen2 ...) -o OUT.gguf [--seed N] —
 * writes a synthetic model of random, well-scaled weights (compiler/cmd_synth.c). */
int qp_cmd_synth(int argc, char **argv);

/* qplan tune plan.yaml [-o out.yaml] ... — times every node's kernels and launch shapes on the
 * GPU and writes the fastest that pass into the plan (compiler/cmd_tune.c; links libqrun). */
int qp_cmd_tune(int argc, char **argv);

/* qplan validate plan.yaml [model.gguf] — checks a plan alone and against a model. */
int qp_cmd_validate(int argc, char **argv);
