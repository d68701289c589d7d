# qplan tune's machinery on the CPU backend (tests/tune/tune.sh says what it checks); the GPU run
# that measures is scripts/device-e2e.sh's.
if(TARGET qplan AND TARGET qrun)
  find_program(QP_BASH bash REQUIRED)
  add_test(NAME test_tune COMMAND ${QP_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/tune/tune.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(test_tune PROPERTIES LABELS cpu TIMEOUT 300)
endif()
