# What a user sees (tests/cli/cli.sh CASE): the built tools and the scripts run as a user runs
# them, on a terminal (script(1)) and off one, each checked for its output, exit status and
# message.
#   qrun_newline           generated text ends with a newline on a terminal and in a file
#   qrun_seed              the seed printed only for random sampling, after the plan loaded
#   qrun_values            --temp below 0 and -c 0 said at run time
#   qrun_context_advice    a too-small context's advice: -c, the qplan command, or neither
#   qrun_progress          prompt and --bench (also --batch) progress on a terminal only
#   qrun_load_bar          the loading bar redrawn only on change, at most 10 times a second
#   qrun_tokenize_verbose  --tokenize [-v] output and --help agree
#   qrun_threads           -t/--threads N
#   fetch_progress         scripts/fetch-model.sh's parts on a terminal (pip replaced by a stand-in)
#   errors_appendix        docs/errors.md's appendix is what scripts/list-errors.py generates
#   test_sh_stages         scripts/test.sh's stages, QP_TEST_QUICK and the stage-time summary
#   test_sh_skips          scripts/ctest-skips.py prints each skipped test's reason
find_program(QP_BASH bash REQUIRED)
set(QP_CLI_CASES fetch_progress errors_appendix test_sh_stages test_sh_skips)
if(TARGET qrun AND TARGET qplan)
  list(APPEND QP_CLI_CASES qrun_newline qrun_seed qrun_values qrun_context_advice qrun_progress
       qrun_load_bar qrun_tokenize_verbose qrun_threads)
endif()
foreach(c ${QP_CLI_CASES})
  add_test(NAME cli_${c} COMMAND ${QP_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/cli/cli.sh ${CMAKE_BINARY_DIR} ${c})
  set_tests_properties(cli_${c} PROPERTIES LABELS cpu TIMEOUT 300 SKIP_RETURN_CODE 77)
endforeach()
