# qrun --serve on loopback (tests/serve/serve_test.py CASE; docs/serving.md): the openai client
# (from PyPI, in build/serve-venv made by scripts/serve-venv.sh; skipped with the reason when PyPI
# is unreachable) and raw HTTP against small synthetic models on the CPU backend. Label cpu: they
# run in the normal `ctest -LE "emu|model"`. Where the server is not built (no libmicrohttpd or
# jansson at configure time) one test says so and skips.
#   serve_api serve_concurrent serve_disconnect serve_bad_input serve_auth serve_queue
#   serve_sigterm serve_soak serve_nginx serve_bench, and serve_model (label model) — what each
#   checks: serve_test.py's docstring
find_package(Python3 COMPONENTS Interpreter)
if(NOT Python3_Interpreter_FOUND)
  return()
endif()
if(NOT QP_HAVE_SERVE)
  add_test(NAME serve_not_built COMMAND ${CMAKE_COMMAND} -E echo "SKIP: qrun --serve is not built: ${QP_SERVE_WHY}")
  set_tests_properties(serve_not_built PROPERTIES LABELS cpu SKIP_REGULAR_EXPRESSION "SKIP:")
  return()
endif()
foreach(c api concurrent disconnect bad_input auth queue sigterm soak nginx bench)
  add_test(NAME serve_${c} COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/serve/serve_test.py
           ${CMAKE_BINARY_DIR} ${c})
  set_tests_properties(serve_${c} PROPERTIES LABELS "cpu;serve" TIMEOUT 300 SKIP_RETURN_CODE 77)
endforeach()
# the default model (label model): /health 503 while it loads, a real conversation and its next turn
add_test(NAME serve_model COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/serve/serve_test.py
         ${CMAKE_BINARY_DIR} model)
set_tests_properties(serve_model PROPERTIES LABELS "model;serve" TIMEOUT 600 SKIP_RETURN_CODE 77)
