# Fidelity measures (issue 21; after reference.cmake, which defines qpref): the KL-divergence
# base file, and qrun --perplexity / --kl-divergence against the oracle on synthetic models (cpu)
# and on the default model (model).
if(TARGET qrunlib)
  qp_add_test(test_kld_base SOURCES test_kld_base.c LIBS qrunlib LABELS cpu)
endif()
if(TARGET qrunlib AND TARGET qpref AND TARGET qplan AND TARGET qrun)
  qp_add_test(test_perplexity_synth SOURCES test_perplexity_synth.c LIBS qrunlib qpref LABELS cpu)
  add_dependencies(test_perplexity_synth qplan qrun)
endif()
if(TARGET qrunlib)
  qp_add_test(test_perplexity_model SOURCES test_perplexity_model.c LIBS qrunlib LABELS model)
  # minutes on 2 cores (two 512-token chunks, the scored halves decoded a token a step): started first
  set_tests_properties(test_perplexity_model PROPERTIES COST 380)
endif()
