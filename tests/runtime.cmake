# Runtime tests: sampler, chat template, executor vs the oracle, generation control.
if(TARGET qrunlib)
  qp_add_test(test_sampler SOURCES test_sampler.c LIBS qrunlib LABELS cpu)
  qp_add_test(test_chat SOURCES test_chat.c LIBS qrunlib LABELS cpu)
endif()
# End to end (need the compiler's plan reader/writer and `qplan compile`, the tokenizer, the
# oracle library qpref from tests/reference.cmake).
if(TARGET qrunlib AND TARGET qpref AND TARGET qplan)
  qp_add_test(test_runtime_synth SOURCES test_runtime_synth.c LIBS qrunlib qpref LABELS cpu)
  add_dependencies(test_runtime_synth qplan)
  qp_add_test(test_batch_synth SOURCES test_batch_synth.c LIBS qrunlib qpref LABELS cpu)
  add_dependencies(test_batch_synth qplan)
  qp_add_test(test_runtime_model SOURCES test_runtime_model.c LIBS qrunlib qpref LABELS model)
  add_dependencies(test_runtime_model qplan)
  # minutes on 2 cores (the oracle's forward passes of the real model): ctest -j starts it first
  set_tests_properties(test_runtime_model PROPERTIES COST 280)
endif()
