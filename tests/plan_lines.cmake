# Every line of a plan deleted in turn (tests/test_plan_lines.c): the checks of `qplan validate
# plan model` refuse the edit naming a line, or qrun's CPU answer (logits and greedy tokens of a
# fixed prompt) is unchanged; none both validates and changes the answer. Label cpu: a synthetic
# model made at test time (also every line swapped with the next, targeted edits, plans compiled
# with other kernels and options); label model: the checked-in plan with the default model.
if(TARGET qrunlib)
  qp_add_test(test_plan_lines SOURCES test_plan_lines.c LIBS qrunlib qpcompiler LABELS cpu ARGS cpu)
  add_test(NAME test_plan_lines_model COMMAND test_plan_lines model)
  set_tests_properties(test_plan_lines_model PROPERTIES LABELS model SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()
