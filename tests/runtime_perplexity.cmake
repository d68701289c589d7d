# Fidelity measures (issue 21; after reference.cmake, which defines qpref): the KL-divergence
# base file, and qrun --perplexity / --kl-divergence against the oracle on synthetic models (cpu)
# and on the default model (model).
if(TARGET qrunlib)
  qp_add_test(test_kld_base SOURCES test_kld_base.c LIBS qrunlib LABELS cpu)
endif()
