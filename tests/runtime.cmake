# Runtime tests (issue 6): sampler, chat template, executor vs the oracle, generation control.
if(TARGET qrunlib)
  qp_add_test(test_sampler SOURCES test_sampler.c LIBS qrunlib LABELS cpu)
  qp_add_test(test_chat SOURCES test_chat.c LIBS qrunlib LABELS cpu)
endif()
