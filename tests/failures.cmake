# Failure behaviour: the built tools run as a user runs them, on broken inputs
# (tests/failures/failures.sh CASE): a clear message naming the file, exit 1 or 2 (never a
# crash), nothing on stdout, no output file or temporary file left behind.
#   gguf_corrupt      truncated (8 points) and corrupted (magic, version, counts, key length,
#                     random bytes, text) GGUF to qplan inspect and compile
#   plan_edited       a compiled plan edited by hand (11 edits) to qplan validate, and 5 edits
#                     only the model shows (a bias deleted, a weight swapped, rope_base, eps, a
#                     KV layer) to qplan validate plan model
#   plan_other_model  a plan with another model / a truncated copy of its own
#   missing_files     missing inputs, folders as files, unwritable outputs (missing folder, /proc)
#   disk_full         plan and model writes on a full disk (tmpfs) or past ulimit -f
#   clean_runs        ordinary runs of every tool (LeakSanitizer-clean in the ASan stage)
# and, once qrun is built (runtime/main.c):
#   qrun_refuses      edited plans, another model, missing plan/model/prompt file, truncated model
#   qrun_args         absurd -n / -c / sampling numbers (negative, huge, non-numeric)
#   qrun_context_full -c smaller than prompt + -n: clean stop; prompt longer than the context
#   qrun_invalid_utf8 invalid UTF-8 prompts (-p, -f) refused; generated text valid UTF-8
#   qrun_sigint       SIGINT during generation: exit 130, valid UTF-8 out, reason reported
find_program(QP_BASH bash REQUIRED)
set(QP_FAILURE_CASES gguf_corrupt plan_edited plan_other_model missing_files disk_full clean_runs)
if(TARGET qrun)
  list(APPEND QP_FAILURE_CASES qrun_refuses qrun_args qrun_context_full qrun_invalid_utf8 qrun_sigint)
endif()
foreach(c ${QP_FAILURE_CASES})
  add_test(NAME failures_${c}
           COMMAND ${QP_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/failures/failures.sh ${CMAKE_BINARY_DIR} ${c})
  set_tests_properties(failures_${c} PROPERTIES LABELS cpu TIMEOUT 300)
endforeach()
